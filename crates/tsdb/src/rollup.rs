//! Downsampled rollups: per-bucket aggregates that merge associatively, so partial
//! buckets from different segments and the head combine into exact answers.
//!
//! A [`Bucket`] keeps count, sum, min, max, the first and last sample, and the
//! counter-reset-adjusted increase between its first and last sample. Rate and
//! increase over many buckets are [`increase`]: the in-bucket increases plus the
//! reset-adjusted steps between neighbouring buckets, which is exactly what the raw
//! samples would give.

use crate::bits::{BitReader, BitWriter, ByteReader, put_uvarint};
use crate::chunk;
use crate::error::{Error, Result};
use crate::intcol;
use crate::types::ValueKind;

/// A rollup resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// One-minute buckets.
    Minute,
    /// One-hour buckets.
    Hour,
}

impl Resolution {
    /// Bucket width in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Minute => 0,
            Self::Hour => 1,
        }
    }
}

/// Aggregates of the samples whose timestamps fall in `[start, start + resolution)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Bucket start (aligned to the resolution).
    pub start: i64,
    /// Number of samples.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Timestamp of the first sample.
    pub first_t: i64,
    /// Value of the first sample.
    pub first: f64,
    /// Timestamp of the last sample.
    pub last_t: i64,
    /// Value of the last sample.
    pub last: f64,
    /// Counter increase from the first to the last sample, adjusted for resets.
    pub increase: f64,
}

/// Reset-adjusted counter step from `a` to `b`.
pub(crate) fn counter_step(a: f64, b: f64) -> f64 {
    if b >= a { b - a } else { b }
}

impl Bucket {
    pub(crate) fn new(start: i64, t: i64, v: f64) -> Self {
        Self {
            start,
            count: 1,
            sum: v,
            min: v,
            max: v,
            first_t: t,
            first: v,
            last_t: t,
            last: v,
            increase: 0.0,
        }
    }

    pub(crate) fn push(&mut self, t: i64, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.increase += counter_step(self.last, v);
        self.last_t = t;
        self.last = v;
    }

    /// Folds in a bucket that covers later samples of the same interval.
    pub fn merge(&mut self, later: &Bucket) {
        self.count += later.count;
        self.sum += later.sum;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.increase += counter_step(self.last, later.first) + later.increase;
        self.last_t = later.last_t;
        self.last = later.last;
    }

    /// Mean value.
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Total reset-adjusted counter increase across consecutive buckets.
pub fn increase(buckets: &[Bucket]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for b in buckets {
        if let Some(p) = prev {
            total += counter_step(p, b.first);
        }
        total += b.increase;
        prev = Some(b.last);
    }
    total
}

/// Aggregates time-ordered samples into buckets of `res_ms`.
pub(crate) fn aggregate(
    samples: impl IntoIterator<Item = (i64, f64)>,
    res_ms: i64,
    out: &mut Vec<Bucket>,
) {
    for (t, v) in samples {
        let start = t.div_euclid(res_ms).saturating_mul(res_ms);
        match out.last_mut() {
            Some(b) if b.start == start => b.push(t, v),
            _ => out.push(Bucket::new(start, t, v)),
        }
    }
}

/// Merges neighbouring buckets with the same start (input in time order).
pub(crate) fn merge_adjacent(buckets: Vec<Bucket>) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match out.last_mut() {
            Some(last) if last.start == b.start => last.merge(&b),
            _ => out.push(b),
        }
    }
    out
}

/// Encodes buckets column by column: integer columns for start, count and the
/// first/last offsets, value columns (decimal-integer or XOR) for the six floats.
pub(crate) fn encode(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = Vec::new();
    put_uvarint(&mut out, buckets.len() as u64);
    let mut w = BitWriter::new();
    let int_cols: [fn(&Bucket) -> i64; 4] = [
        |b| b.start,
        |b| b.count as i64,
        |b| b.first_t.wrapping_sub(b.start),
        |b| b.last_t.wrapping_sub(b.first_t),
    ];
    for f in int_cols {
        let col: Vec<i64> = buckets.iter().map(f).collect();
        intcol::encode(&col, &mut out, &mut w);
    }
    // A column equal to an earlier one (min = first and max = last for counters) is
    // stored as a reference to it.
    let cols: Vec<Vec<u64>> = FLOAT_COLS
        .iter()
        .map(|f| buckets.iter().map(|b| f(b).to_bits()).collect())
        .collect();
    for (c, col) in cols.iter().enumerate() {
        match cols[..c].iter().position(|earlier| earlier == col) {
            Some(j) => out.push(j as u8),
            None => {
                out.push(OWN_DATA);
                chunk::encode_values(col, ValueKind::Float, &mut out, &mut w);
            }
        }
    }
    out.extend_from_slice(&w.into_bytes());
    out
}

const OWN_DATA: u8 = 0xff;

const FLOAT_COLS: [fn(&Bucket) -> f64; 6] = [
    |b| b.sum,
    |b| b.min,
    |b| b.max,
    |b| b.first,
    |b| b.last,
    |b| b.increase,
];

/// Decodes [`encode`]d buckets; never panics.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Bucket>> {
    let mut br = ByteReader::new(bytes);
    let n = br.uvarint()?;
    // A day of minutes or 30 days of hours per series and segment; far below this cap.
    if n > 1 << 18 {
        return Err(Error::CorruptChunk("bucket count too large"));
    }
    let n = n as usize;
    let mut int_heads = Vec::with_capacity(4);
    for _ in 0..4 {
        int_heads.push(intcol::Column::read_header(&mut br)?);
    }
    // Per float column: its own header, or the index of an earlier column it copies.
    let mut float_heads: Vec<Result<chunk::ValuesHeader, usize>> = Vec::with_capacity(6);
    for c in 0..6 {
        let src = br.u8()?;
        if src == OWN_DATA {
            float_heads.push(Ok(chunk::ValuesHeader::read(&mut br)?));
        } else if (src as usize) < c {
            float_heads.push(Err(src as usize));
        } else {
            return Err(Error::CorruptChunk("bad column reference"));
        }
    }
    let rest = br.bytes(br.remaining())?;
    let mut r = BitReader::new(rest);
    let mut ints = vec![[0i64; 4]; n];
    for (c, h) in int_heads.iter().enumerate() {
        h.decode(&mut r, n, |i, v| ints[i][c] = v)?;
    }
    let mut floats = vec![[0f64; 6]; n];
    for (c, h) in float_heads.iter().enumerate() {
        match h {
            Ok(h) => h.decode(&mut r, n, |i, v| floats[i][c] = f64::from_bits(v))?,
            Err(src) => {
                for f in floats.iter_mut() {
                    f[c] = f[*src];
                }
            }
        }
    }
    Ok(ints
        .iter()
        .zip(&floats)
        .map(|(iv, f)| {
            let first_t = iv[0].wrapping_add(iv[2]);
            Bucket {
                start: iv[0],
                count: iv[1] as u64,
                sum: f[0],
                min: f[1],
                max: f[2],
                first_t,
                first: f[3],
                last_t: first_t.wrapping_add(iv[3]),
                last: f[4],
                increase: f[5],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn split_and_merge_equals_whole(vals in proptest::collection::vec(0u32..50, 1..60), cut in 0usize..60) {
            let samples: Vec<(i64, f64)> = vals.iter().enumerate().map(|(i, &v)| (i as i64 * 7_000, f64::from(v))).collect();
            let mut whole = Vec::new();
            aggregate(samples.iter().copied(), 60_000, &mut whole);
            let cut = cut.min(samples.len());
            let mut parts = Vec::new();
            aggregate(samples[..cut].iter().copied(), 60_000, &mut parts);
            aggregate(samples[cut..].iter().copied(), 60_000, &mut parts);
            let merged = merge_adjacent(parts);
            prop_assert_eq!(&merged, &whole);
            let raw: f64 = samples.windows(2).map(|w| counter_step(w[0].1, w[1].1)).sum();
            prop_assert_eq!(increase(&whole), raw);
            prop_assert_eq!(decode(&encode(&whole)).unwrap(), whole);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
