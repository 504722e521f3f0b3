//! Downsampled rollups: per-bucket aggregates that merge associatively, so partial
//! buckets from different segments and the head combine into exact answers.
//!
//! A [`Bucket`] keeps count, sum, min, max, the first and last sample, and the
//! counter-reset-adjusted increase between its first and last sample. Rate and
//! increase over many buckets are [`increase`]: the in-bucket increases plus the
//! reset-adjusted steps between neighbouring buckets, which is exactly what the raw
//! samples would give.

use crate::bits::{BitReader, BitWriter, ByteReader, put_uvarint, put_varint};
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

/// Puts buckets of one series into time order and merges those with the same start.
/// The buckets may come from several sources (segments, raw samples, the head), each
/// covering other samples of the series, so their first samples order them.
pub(crate) fn merge_adjacent(mut buckets: Vec<Bucket>) -> Vec<Bucket> {
    buckets.sort_by_key(|b| b.first_t);
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match out.last_mut() {
            Some(last) if last.start == b.start => last.merge(&b),
            _ => out.push(b),
        }
    }
    out
}

/// Decodes the buckets of a blob written in segment format `version`; never panics.
pub(crate) fn decode(bytes: &[u8], version: u8) -> Result<Vec<Bucket>> {
    if version < 2 {
        decode_v1(bytes)
    } else {
        decode_v2(bytes)
    }
}

// Segment format 2. Everything is predicted from what is already known and only the
// residuals are stored, each as an integer column of its own (`put_direct`):
//
// * times: bucket starts (delta-coded), counts, the gap from the previous bucket's last
//   sample to this bucket's first (the scrape interval: constant for regular scrapes),
//   and the span from first to last sample minus `(count - 1)` times the median gap;
// * per bucket whether min and max equal the first or the last value (a code 0..9),
//   and only the other mins and maxes;
// * values, when first, last, min and max are all decimals of one scale `k` (integers,
//   2-decimal prices, nanosecond counters printed as seconds): as integers `m = v·10^k`,
//   first minus the previous bucket's last, last minus first, min below and max above
//   them, the sum minus `count · min`, the increase minus 0 or `last - first`; sum and
//   increase are float results, so each also stores its distance in ulps from `m/10^k`
//   (0 when exact). Otherwise the value columns of raw chunks (decimal, XOR or, from
//   format 3 on, binary) per field.

const MODE_DECIMAL: u8 = 0;
const MODE_FLOAT: u8 = 1;
/// Min/max code: equal to the bucket's first value, its last, or stored.
const EQ_FIRST: u8 = 0;
const EQ_LAST: u8 = 1;
const OWN: u8 = 2;
/// Largest `|v · 10^k|` kept as an integer: far inside `i64` and exact in `f64`.
const DEC_LIMIT: f64 = 9.0e15;

fn eq_code(v: f64, b: &Bucket) -> u8 {
    if v.to_bits() == b.first.to_bits() {
        EQ_FIRST
    } else if v.to_bits() == b.last.to_bits() {
        EQ_LAST
    } else {
        OWN
    }
}

/// Stores values as themselves rather than as deltas: the integer column of their
/// running sums, whose deltas are the values.
fn put_direct(xs: impl IntoIterator<Item = i64>, head: &mut Vec<u8>, w: &mut BitWriter) {
    let mut acc = 0i64;
    let sums: Vec<i64> = xs
        .into_iter()
        .map(|x| {
            acc = acc.wrapping_add(x);
            acc
        })
        .collect();
    intcol::encode(&sums, head, w);
}

fn get_direct(col: &intcol::Column, r: &mut BitReader<'_>, n: usize) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(n);
    let mut prev = 0i64;
    col.decode(r, n, |_, s| {
        out.push(s.wrapping_sub(prev));
        prev = s;
    })?;
    Ok(out)
}

/// `(m, ulps)`: the integer at scale `p` nearest to `v` and `v`'s distance from `m / p`
/// in its bit pattern.
fn to_dec(v: f64, p: f64) -> (i64, i64) {
    let m = (v * p).round() as i64;
    let ulps = (v.to_bits() as i64).wrapping_sub((m as f64 / p).to_bits() as i64);
    (m, ulps)
}

fn from_dec(m: i64, ulps: i64, p: f64) -> f64 {
    f64::from_bits(((m as f64 / p).to_bits() as i64).wrapping_add(ulps) as u64)
}

/// The common decimal scale of first, last, min and max, if sum and increase fit too.
fn decimal_scale(buckets: &[Bucket]) -> Option<usize> {
    let vals: Vec<u64> = buckets
        .iter()
        .flat_map(|b| [b.first, b.last, b.min, b.max])
        .map(f64::to_bits)
        .collect();
    let k = chunk::decimal_scale(&vals)?;
    let p = chunk::POW10[k];
    let fits = |v: f64| (v * p).is_finite() && (v * p).abs() < DEC_LIMIT;
    buckets
        .iter()
        .all(|b| fits(b.sum) && fits(b.increase))
        .then_some(k)
}

/// Encodes buckets in segment format 2 (see above; format 3 buckets are the same, their
/// float and integer columns may use format 3's column modes).
pub(crate) fn encode(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = Vec::new();
    put_uvarint(&mut out, buckets.len() as u64);
    let mut w = BitWriter::new();
    let starts: Vec<i64> = buckets.iter().map(|b| b.start).collect();
    intcol::encode(&starts, &mut out, &mut w);
    put_direct(buckets.iter().map(|b| b.count as i64), &mut out, &mut w);
    let mut prev_last = None;
    let gaps: Vec<i64> = buckets
        .iter()
        .map(|b| {
            let gap = b.first_t.wrapping_sub(prev_last.unwrap_or(b.start));
            prev_last = Some(b.last_t);
            gap
        })
        .collect();
    put_direct(gaps.iter().copied(), &mut out, &mut w);
    let mut sorted = gaps.get(1..).unwrap_or_default().to_vec();
    sorted.sort_unstable();
    let g = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    put_varint(&mut out, g);
    put_direct(
        buckets.iter().map(|b| {
            (b.last_t.wrapping_sub(b.first_t))
                .wrapping_sub((b.count as i64).wrapping_sub(1).wrapping_mul(g))
        }),
        &mut out,
        &mut w,
    );
    let codes: Vec<(u8, u8)> = buckets
        .iter()
        .map(|b| (eq_code(b.min, b), eq_code(b.max, b)))
        .collect();
    put_direct(
        codes.iter().map(|&(lo, hi)| i64::from(lo * 3 + hi)),
        &mut out,
        &mut w,
    );
    let own = |pick: fn(&(u8, u8)) -> u8| {
        move |(b, c): (&Bucket, &(u8, u8))| (pick(c) == OWN).then_some(*b)
    };
    let own_min: Vec<Bucket> = buckets
        .iter()
        .zip(&codes)
        .filter_map(own(|c| c.0))
        .collect();
    let own_max: Vec<Bucket> = buckets
        .iter()
        .zip(&codes)
        .filter_map(own(|c| c.1))
        .collect();
    match decimal_scale(buckets) {
        Some(k) => {
            out.extend_from_slice(&[MODE_DECIMAL, k as u8]);
            let p = chunk::POW10[k];
            let m = |v: f64| to_dec(v, p).0;
            let mut prev_last = 0i64;
            put_direct(
                buckets.iter().map(|b| {
                    let r = m(b.first).wrapping_sub(prev_last);
                    prev_last = m(b.last);
                    r
                }),
                &mut out,
                &mut w,
            );
            put_direct(
                buckets.iter().map(|b| m(b.last).wrapping_sub(m(b.first))),
                &mut out,
                &mut w,
            );
            put_direct(
                own_min
                    .iter()
                    .map(|b| m(b.first).min(m(b.last)).wrapping_sub(m(b.min))),
                &mut out,
                &mut w,
            );
            put_direct(
                own_max
                    .iter()
                    .map(|b| m(b.max).wrapping_sub(m(b.first).max(m(b.last)))),
                &mut out,
                &mut w,
            );
            let sums: Vec<(i64, i64)> = buckets.iter().map(|b| to_dec(b.sum, p)).collect();
            put_direct(
                buckets
                    .iter()
                    .zip(&sums)
                    .map(|(b, s)| s.0.wrapping_sub((b.count as i64).wrapping_mul(m(b.min)))),
                &mut out,
                &mut w,
            );
            put_direct(sums.iter().map(|s| s.1), &mut out, &mut w);
            let incs: Vec<(i64, i64)> = buckets.iter().map(|b| to_dec(b.increase, p)).collect();
            let counter = |b: &Bucket| m(b.last).wrapping_sub(m(b.first));
            let cost = |pred: &dyn Fn(&Bucket) -> i64| -> u128 {
                buckets
                    .iter()
                    .zip(&incs)
                    .map(|(b, i)| i.0.wrapping_sub(pred(b)).unsigned_abs() as u128)
                    .sum()
            };
            let as_counter = cost(&counter) <= cost(&|_| 0);
            out.push(u8::from(as_counter));
            put_direct(
                buckets
                    .iter()
                    .zip(&incs)
                    .map(|(b, i)| i.0.wrapping_sub(if as_counter { counter(b) } else { 0 })),
                &mut out,
                &mut w,
            );
            put_direct(incs.iter().map(|i| i.1), &mut out, &mut w);
        }
        None => {
            out.extend_from_slice(&[MODE_FLOAT, 0]);
            let cols: [Vec<u64>; 6] = [
                buckets.iter().map(|b| b.first.to_bits()).collect(),
                buckets.iter().map(|b| b.last.to_bits()).collect(),
                own_min.iter().map(|b| b.min.to_bits()).collect(),
                own_max.iter().map(|b| b.max.to_bits()).collect(),
                buckets.iter().map(|b| b.sum.to_bits()).collect(),
                buckets.iter().map(|b| b.increase.to_bits()).collect(),
            ];
            for col in &cols {
                chunk::encode_values(col, ValueKind::Float, &mut out, &mut w);
            }
        }
    }
    out.extend_from_slice(&w.into_bytes());
    out
}

fn decode_v2(bytes: &[u8]) -> Result<Vec<Bucket>> {
    let mut br = ByteReader::new(bytes);
    let n = br.uvarint()?;
    if n > MAX_BUCKETS {
        return Err(Error::CorruptChunk("bucket count too large"));
    }
    let n = n as usize;
    let start_h = intcol::Column::read_header(&mut br)?;
    let count_h = intcol::Column::read_header(&mut br)?;
    let gap_h = intcol::Column::read_header(&mut br)?;
    let g = br.varint()?;
    let span_h = intcol::Column::read_header(&mut br)?;
    let code_h = intcol::Column::read_header(&mut br)?;
    let mode = br.u8()?;
    let k = usize::from(br.u8()?);
    let p = *chunk::POW10
        .get(k)
        .ok_or(Error::CorruptChunk("bad decimal scale"))?;
    enum Vals {
        /// first, last, min, max, sum, sum ulps, increase, increase ulps; whether the
        /// increase is predicted as `last - first`.
        Dec(Vec<intcol::Column>, bool),
        Float(Vec<chunk::ValuesHeader>),
    }
    let vals = match mode {
        MODE_DECIMAL => {
            let mut hs = Vec::with_capacity(8);
            let mut as_counter = false;
            for i in 0..8 {
                if i == 6 {
                    as_counter = br.u8()? != 0;
                }
                hs.push(intcol::Column::read_header(&mut br)?);
            }
            Vals::Dec(hs, as_counter)
        }
        MODE_FLOAT => {
            let mut hs = Vec::with_capacity(6);
            for _ in 0..6 {
                hs.push(chunk::ValuesHeader::read(&mut br)?);
            }
            Vals::Float(hs)
        }
        _ => return Err(Error::CorruptChunk("bad rollup value mode")),
    };
    let rest = br.bytes(br.remaining())?;
    let mut r = BitReader::new(rest);
    let mut out = Vec::with_capacity(n);
    let mut prev_last = None;
    let starts = {
        let mut v = Vec::with_capacity(n);
        start_h.decode(&mut r, n, |_, x| v.push(x))?;
        v
    };
    let counts = get_direct(&count_h, &mut r, n)?;
    let gaps = get_direct(&gap_h, &mut r, n)?;
    let spans = get_direct(&span_h, &mut r, n)?;
    let mut codes = Vec::with_capacity(n);
    for c in get_direct(&code_h, &mut r, n)? {
        match u8::try_from(c) {
            Ok(c) if c < 9 => codes.push((c / 3, c % 3)),
            _ => return Err(Error::CorruptChunk("bad min/max code")),
        }
    }
    for i in 0..n {
        let (start, count) = (starts[i], counts[i]);
        let first_t = prev_last.unwrap_or(start).wrapping_add(gaps[i]);
        let last_t = first_t
            .wrapping_add(spans[i])
            .wrapping_add(count.wrapping_sub(1).wrapping_mul(g));
        prev_last = Some(last_t);
        out.push(Bucket {
            start,
            count: count as u64,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            first_t,
            first: 0.0,
            last_t,
            last: 0.0,
            increase: 0.0,
        });
    }
    let n_min = codes.iter().filter(|c| c.0 == OWN).count();
    let n_max = codes.iter().filter(|c| c.1 == OWN).count();
    let pick = |code: u8, own: &mut dyn Iterator<Item = f64>, b: &Bucket| -> Result<f64> {
        match code {
            EQ_FIRST => Ok(b.first),
            EQ_LAST => Ok(b.last),
            _ => own.next().ok_or(Error::CorruptChunk("missing min or max")),
        }
    };
    match vals {
        Vals::Dec(hs, as_counter) => {
            let firsts = get_direct(&hs[0], &mut r, n)?;
            let lasts = get_direct(&hs[1], &mut r, n)?;
            let mins = get_direct(&hs[2], &mut r, n_min)?;
            let maxs = get_direct(&hs[3], &mut r, n_max)?;
            let sums = get_direct(&hs[4], &mut r, n)?;
            let sum_ulps = get_direct(&hs[5], &mut r, n)?;
            let incs = get_direct(&hs[6], &mut r, n)?;
            let inc_ulps = get_direct(&hs[7], &mut r, n)?;
            let (mut mins, mut maxs) = (mins.into_iter(), maxs.into_iter());
            let mut prev_last = 0i64;
            for (i, b) in out.iter_mut().enumerate() {
                let mf = prev_last.wrapping_add(firsts[i]);
                let ml = mf.wrapping_add(lasts[i]);
                prev_last = ml;
                let (lo, hi) = (mf.min(ml), mf.max(ml));
                let mmin = match codes[i].0 {
                    EQ_FIRST => mf,
                    EQ_LAST => ml,
                    _ => lo.wrapping_sub(mins.next().ok_or(Error::CorruptChunk("missing min"))?),
                };
                let mmax = match codes[i].1 {
                    EQ_FIRST => mf,
                    EQ_LAST => ml,
                    _ => hi.wrapping_add(maxs.next().ok_or(Error::CorruptChunk("missing max"))?),
                };
                b.first = from_dec(mf, 0, p);
                b.last = from_dec(ml, 0, p);
                b.min = from_dec(mmin, 0, p);
                b.max = from_dec(mmax, 0, p);
                let msum = sums[i].wrapping_add((b.count as i64).wrapping_mul(mmin));
                b.sum = from_dec(msum, sum_ulps[i], p);
                let pred = if as_counter { ml.wrapping_sub(mf) } else { 0 };
                b.increase = from_dec(incs[i].wrapping_add(pred), inc_ulps[i], p);
            }
        }
        Vals::Float(hs) => {
            let mut cols: [Vec<f64>; 6] = Default::default();
            for (c, (h, len)) in hs.iter().zip([n, n, n_min, n_max, n, n]).enumerate() {
                let mut v = Vec::with_capacity(len);
                h.decode(&mut r, len, |_, bits| v.push(f64::from_bits(bits)))?;
                cols[c] = v;
            }
            let [firsts, lasts, mins, maxs, sums, incs] = cols;
            let (mut mins, mut maxs) = (mins.into_iter(), maxs.into_iter());
            for (i, b) in out.iter_mut().enumerate() {
                b.first = firsts[i];
                b.last = lasts[i];
                b.min = pick(codes[i].0, &mut mins, b)?;
                b.max = pick(codes[i].1, &mut maxs, b)?;
                b.sum = sums[i];
                b.increase = incs[i];
            }
        }
    }
    Ok(out)
}

/// Most buckets one blob holds: a day of minutes or 30 days of hours per series and
/// segment are far below it.
const MAX_BUCKETS: u64 = 1 << 18;

/// The format of segment version 1: integer columns for start, count and the
/// first/last offsets, value columns (decimal-integer or XOR) for the six floats, a
/// column equal to an earlier one stored as a reference to it. Only tests write it now.
#[cfg(test)]
pub(crate) fn encode_v1(buckets: &[Bucket]) -> Vec<u8> {
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

#[cfg(test)]
const FLOAT_COLS: [fn(&Bucket) -> f64; 6] = [
    |b| b.sum,
    |b| b.min,
    |b| b.max,
    |b| b.first,
    |b| b.last,
    |b| b.increase,
];

/// Decodes buckets of segment version 1; never panics.
fn decode_v1(bytes: &[u8]) -> Result<Vec<Bucket>> {
    let mut br = ByteReader::new(bytes);
    let n = br.uvarint()?;
    if n > MAX_BUCKETS {
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

    fn bucket_bits(b: &Bucket) -> [u64; 10] {
        [
            b.start as u64,
            b.count,
            b.sum.to_bits(),
            b.min.to_bits(),
            b.max.to_bits(),
            b.first_t as u64,
            b.first.to_bits(),
            b.last_t as u64,
            b.last.to_bits(),
            b.increase.to_bits(),
        ]
    }

    /// Minute buckets of a 2-decimal random walk scraped every 7.2 s: format 2 is
    /// a fraction of format 1.
    #[test]
    fn format_2_is_smaller() {
        let mut x = 50_000i64;
        let mut seed = 7u64;
        let samples: Vec<(i64, f64)> = (0..500)
            .map(|i| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                x += (seed >> 33) as i64 % 201 - 100;
                (1_765_000_000_000 + i * 7_200, x as f64 / 100.0)
            })
            .collect();
        let mut buckets = Vec::new();
        aggregate(samples.iter().copied(), 60_000, &mut buckets);
        let (v1, v2) = (encode_v1(&buckets).len(), encode(&buckets).len());
        assert_eq!(decode(&encode(&buckets), 2).unwrap(), buckets);
        assert!(v2 * 2 < v1, "format 1: {v1} bytes, format 2: {v2}");
    }

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
            prop_assert_eq!(&decode(&encode(&whole), 2).unwrap(), &whole);
            prop_assert_eq!(decode(&encode_v1(&whole), 1).unwrap(), whole);
        }

        #[test]
        fn any_buckets_roundtrip_bit_exact(
            shape in 0u8..5,
            raw in proptest::collection::vec((1i64..20_000, any::<u64>(), -300i64..300), 1..200),
            res in prop_oneof![Just(60_000i64), Just(3_600_000)],
        ) {
            // Samples of several shapes: 2-decimal walks, counters, nanosecond seconds,
            // any float bits (NaN, infinities, -0.0), huge integers.
            let mut t = 1_765_000_000_000i64;
            let mut acc = 0i64;
            let samples: Vec<(i64, f64)> = raw
                .iter()
                .map(|&(dt, bits, step)| {
                    t += dt;
                    acc += step;
                    let v = match shape {
                        0 => acc as f64 / 100.0,
                        1 => (acc.abs() * 1_000) as f64,
                        2 => (1_000_000_000_000 + acc * 7_919) as f64 / 1e9,
                        3 => f64::from_bits(bits),
                        _ => (bits >> 8) as f64,
                    };
                    (t, v)
                })
                .collect();
            let mut buckets = Vec::new();
            aggregate(samples.iter().copied(), res, &mut buckets);
            let got = decode(&encode(&buckets), 2).unwrap();
            prop_assert_eq!(got.iter().map(bucket_bits).collect::<Vec<_>>(), buckets.iter().map(bucket_bits).collect::<Vec<_>>());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, 1);
            let _ = decode(&bytes, 2);
        }
    }
}
