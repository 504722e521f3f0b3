//! Downsampled rollups: per-bucket aggregates that merge associatively, so partial
//! buckets from different segments and the head combine into exact answers.
//!
//! A [`Bucket`] keeps count, sum, min, max, the first and last sample, and the
//! counter-reset-adjusted increase between its first and last sample. Rate and
//! increase over many buckets are [`increase`]: the in-bucket increases plus the
//! reset-adjusted steps between neighbouring buckets, which is exactly what the raw
//! samples would give.

use crate::bits::{BitReader, BitWriter, ByteReader, put_uvarint, read_varbit, write_varbit};
use crate::chunk::{XorState, xor_get, xor_put};
use crate::error::{Error, Result};

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
pub(crate) fn aggregate(samples: impl IntoIterator<Item = (i64, f64)>, res_ms: i64, out: &mut Vec<Bucket>) {
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

/// Encodes buckets compactly (delta timestamps, XOR floats).
pub(crate) fn encode(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = Vec::new();
    put_uvarint(&mut out, buckets.len() as u64);
    let mut w = BitWriter::new();
    let mut xs = [XorState::default(); 6];
    let mut prev_start = 0i64;
    let mut prev_count = 0i64;
    for (i, b) in buckets.iter().enumerate() {
        if i == 0 {
            w.write_bits(b.start as u64, 64);
        } else {
            write_varbit(&mut w, b.start.wrapping_sub(prev_start));
        }
        write_varbit(&mut w, (b.count as i64).wrapping_sub(prev_count));
        write_varbit(&mut w, b.first_t.wrapping_sub(b.start));
        write_varbit(&mut w, b.last_t.wrapping_sub(b.first_t));
        for (x, v) in xs.iter_mut().zip([b.sum, b.min, b.max, b.first, b.last, b.increase]) {
            xor_put(x, &mut w, i == 0, v.to_bits());
        }
        prev_start = b.start;
        prev_count = b.count as i64;
    }
    out.extend_from_slice(&w.into_bytes());
    out
}

/// Decodes [`encode`]d buckets; never panics.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Bucket>> {
    let mut br = ByteReader::new(bytes);
    let n = br.uvarint()?;
    let rest = br.bytes(br.remaining())?;
    if n > rest.len() as u64 {
        return Err(Error::CorruptChunk("bucket count past the end"));
    }
    let mut r = BitReader::new(rest);
    let mut xs = [XorState::default(); 6];
    let mut out = Vec::with_capacity(n as usize);
    let mut prev_start = 0i64;
    let mut prev_count = 0i64;
    for i in 0..n {
        let start = if i == 0 {
            r.read_bits(64)? as i64
        } else {
            prev_start.wrapping_add(read_varbit(&mut r)?)
        };
        let count = prev_count.wrapping_add(read_varbit(&mut r)?);
        let first_t = start.wrapping_add(read_varbit(&mut r)?);
        let last_t = first_t.wrapping_add(read_varbit(&mut r)?);
        let mut f = [0f64; 6];
        for (x, slot) in xs.iter_mut().zip(f.iter_mut()) {
            *slot = f64::from_bits(xor_get(x, &mut r, i == 0)?);
        }
        out.push(Bucket {
            start,
            count: count as u64,
            sum: f[0],
            min: f[1],
            max: f[2],
            first_t,
            first: f[3],
            last_t,
            last: f[4],
            increase: f[5],
        });
        prev_start = start;
        prev_count = count;
    }
    Ok(out)
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
