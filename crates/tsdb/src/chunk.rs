//! Compressed chunks of samples: Gorilla while a chunk is open, a columnar
//! encoding at close when it is smaller.
//!
//! * tag 1, open-chunk format: interleaved delta-of-delta timestamps (prefix-coded
//!   widths, `bits::write_varbit`) and Gorilla float XOR with leading/trailing-zero
//!   windows. Appending costs a few nanoseconds.
//! * tag 2, columnar, chosen at close when smaller: timestamps as an integer column
//!   (`intcol.rs`: delta, delta-of-delta or frame-of-reference packing, so a regular
//!   interval costs 0 bits); values as an integer column when the series is integer or
//!   bool, or when every float is exactly `m / 10^k` for a small `k` (whole numbers,
//!   counters in bytes, nanoseconds as seconds, percentages with few decimals);
//!   otherwise the smaller of Gorilla XOR and a binary integer column: every finite
//!   float is `m × 2^e` for one `e` per chunk (the smallest unit any value needs), and
//!   the integers `m` go through `intcol`. A random walk at full precision steps by a
//!   few binades' worth of units, so its deltas take `log2(step range / unit)` bits
//!   where XOR, whose flipped bits spread with every carry, takes about the whole
//!   52-bit mantissa (value column modes: `VALUES_*` below).
//!
//! Samples are `(timestamp ms, value bits)`; the series' [`ValueKind`] says how to read
//! the bits. [`decode`] never panics on arbitrary bytes.

use crate::bits::{
    BitReader, BitWriter, ByteReader, put_uvarint, put_varint, read_varbit, write_varbit,
};
use crate::error::{Error, Result};
use crate::intcol;
use crate::types::ValueKind;

const TAG_XOR: u8 = 1;
const TAG_COLUMNAR: u8 = 2;
const MAX_SAMPLES: u64 = 1 << 20;

pub(crate) const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
const SCALES: [usize; 6] = [0, 1, 2, 3, 6, 9];

/// Timestamp delta-of-delta state.
#[derive(Clone, Debug, Default)]
struct TsEnc {
    last: i64,
    delta: i64,
}

impl TsEnc {
    fn put(&mut self, w: &mut BitWriter, n: u32, t: i64) {
        match n {
            0 => w.write_bits(t as u64, 64),
            1 => {
                self.delta = t.wrapping_sub(self.last);
                write_varbit(w, self.delta);
            }
            _ => {
                let d = t.wrapping_sub(self.last);
                write_varbit(w, d.wrapping_sub(self.delta));
                self.delta = d;
            }
        }
        self.last = t;
    }

    fn get(&mut self, r: &mut BitReader<'_>, n: usize) -> Result<i64> {
        let t = match n {
            0 => r.read_bits(64)? as i64,
            1 => {
                self.delta = read_varbit(r)?;
                self.last.wrapping_add(self.delta)
            }
            _ => {
                self.delta = self.delta.wrapping_add(read_varbit(r)?);
                self.last.wrapping_add(self.delta)
            }
        };
        self.last = t;
        Ok(t)
    }
}

/// Gorilla XOR state.
#[derive(Clone, Copy, Debug, Default)]
struct XorEnc {
    last: u64,
    leading: u32,
    trailing: u32,
}

impl XorEnc {
    fn put(&mut self, w: &mut BitWriter, first: bool, v: u64) {
        if first {
            w.write_bits(v, 64);
            self.last = v;
            self.leading = u32::MAX;
            return;
        }
        let x = v ^ self.last;
        self.last = v;
        if x == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let leading = x.leading_zeros().min(31);
        let trailing = x.trailing_zeros();
        if self.leading != u32::MAX && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(x >> self.trailing, sig);
        } else {
            w.write_bit(true);
            let sig = 64 - leading - trailing;
            w.write_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0.
            w.write_bits(u64::from(sig & 63), 6);
            w.write_bits(x >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    fn get(&mut self, r: &mut BitReader<'_>, first: bool) -> Result<u64> {
        if first {
            self.last = r.read_bits(64)?;
            self.leading = u32::MAX;
            return Ok(self.last);
        }
        if !r.read_bit()? {
            return Ok(self.last);
        }
        if r.read_bit()? {
            let leading = r.read_bits(5)? as u32;
            let mut sig = r.read_bits(6)? as u32;
            if sig == 0 {
                sig = 64;
            }
            if leading + sig > 64 {
                return Err(Error::CorruptChunk("xor window out of range"));
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else if self.leading == u32::MAX {
            return Err(Error::CorruptChunk(
                "xor reuses a window before defining one",
            ));
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = r.read_bits(sig)?;
        let x = if self.trailing >= 64 {
            0
        } else {
            bits << self.trailing
        };
        self.last ^= x;
        Ok(self.last)
    }
}

/// The open chunk of a series: streaming Gorilla encoding.
#[derive(Clone, Debug, Default)]
pub(crate) struct Appender {
    w: BitWriter,
    n: u32,
    mint: i64,
    ts: TsEnc,
    xor: XorEnc,
}

impl Appender {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub(crate) fn append(&mut self, t: i64, bits: u64) {
        if self.n == 0 {
            self.mint = t;
        }
        self.ts.put(&mut self.w, self.n, t);
        self.xor.put(&mut self.w, self.n == 0, bits);
        self.n += 1;
    }

    pub(crate) fn len(&self) -> u32 {
        self.n
    }

    pub(crate) fn mint(&self) -> i64 {
        self.mint
    }

    /// Bits of the newest value (0 when empty).
    pub(crate) fn last_bits(&self) -> u64 {
        self.xor.last
    }

    pub(crate) fn maxt(&self) -> i64 {
        self.ts.last
    }

    pub(crate) fn mem_size(&self) -> usize {
        self.w.capacity() + std::mem::size_of::<Self>()
    }

    /// The chunk so far in the XOR chunk format.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.w.len_bits() / 8 + 8);
        out.push(TAG_XOR);
        put_uvarint(&mut out, u64::from(self.n));
        self.w.copy_to(&mut out);
        out
    }

    /// Closes the chunk, returning the smallest encoding of its samples.
    pub(crate) fn finish(self, kind: ValueKind) -> Vec<u8> {
        let xor = self.to_bytes();
        let Ok(samples) = decode(&xor) else {
            return xor;
        };
        let col = encode_columnar(&samples, kind);
        if col.len() < xor.len() { col } else { xor }
    }
}

/// The decimal scale `k` such that every value is exactly `m / 10^k`, if any.
pub(crate) fn decimal_scale(vals: &[u64]) -> Option<usize> {
    'scales: for k in SCALES {
        let p = POW10[k];
        for &bits in vals {
            let v = f64::from_bits(bits);
            let x = v * p;
            if !x.is_finite() || x.abs() >= 9.007_199_254_740_992e15 {
                continue 'scales;
            }
            let m = x.round() as i64;
            if (m as f64 / p).to_bits() != bits {
                continue 'scales;
            }
        }
        return Some(k);
    }
    None
}

/// Largest magnitude of a binary column integer: deltas of two stay inside `i64`.
const BINARY_LIMIT: u32 = 62;
/// Range of the binary column's unit exponent: the lowest set bit of any finite `f64`.
const BINARY_EXP: std::ops::RangeInclusive<i64> = -1074..=971;

/// `2^e` for `e` in [`BINARY_EXP`], exactly.
fn pow2(e: i64) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// The unit exponent `e` and integers `m` with every value exactly `m × 2^e`, when
/// the values are finite (no `-0.0`) and the integers stay below 2^62.
pub(crate) fn binary_scale(vals: &[u64]) -> Option<(i64, Vec<i64>)> {
    // (mantissa with its trailing zeros shifted out, exponent of its lowest bit)
    let mut low = i64::MAX;
    let mut high = i64::MIN;
    for &bits in vals {
        let (m, e) = split(bits)?;
        if m != 0 {
            low = low.min(e);
            high = high.max(e + i64::from(64 - m.leading_zeros()));
        }
    }
    if low == i64::MAX {
        // All zeros.
        return Some((0, vec![0; vals.len()]));
    }
    if high - low > i64::from(BINARY_LIMIT) {
        return None;
    }
    let scale = pow2(low);
    let mut out = Vec::with_capacity(vals.len());
    for &bits in vals {
        let (m, e) = split(bits)?;
        let m = if m == 0 { 0 } else { (m << (e - low)) as i64 };
        let m = if bits >> 63 == 1 { -m } else { m };
        if (m as f64 * scale).to_bits() != bits {
            return None;
        }
        out.push(m);
    }
    Some((low, out))
}

/// A finite float's magnitude as `m × 2^e` with `m` odd (or 0); `None` for NaN,
/// infinities and `-0.0`.
fn split(bits: u64) -> Option<(u64, i64)> {
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    if exp == 0x7ff || bits == 1 << 63 {
        return None;
    }
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | 1 << 52, exp - 1075)
    };
    if m == 0 {
        return Some((0, 0));
    }
    let tz = m.trailing_zeros();
    Some((m >> tz, e + i64::from(tz)))
}

/// Value column modes: integers (integer and bool series), decimals `m / 10^k`,
/// Gorilla XOR, binary `m × 2^e` (segment format 3 on).
const VALUES_INT: u8 = 0;
const VALUES_DECIMAL: u8 = 1;
const VALUES_XOR: u8 = 2;
const VALUES_BINARY: u8 = 3;

/// Encodes a value column (bits of `kind` values): header bytes into `head`, bits into `w`.
pub(crate) fn encode_values(vals: &[u64], kind: ValueKind, head: &mut Vec<u8>, w: &mut BitWriter) {
    let ints = match kind {
        ValueKind::Integer | ValueKind::Bool => Some((VALUES_INT, 0)),
        ValueKind::Float => decimal_scale(vals).map(|k| (VALUES_DECIMAL, k)),
    };
    match ints {
        Some((mode, k)) => {
            head.extend_from_slice(&[mode, k as u8]);
            let ints: Vec<i64> = vals
                .iter()
                .map(|&bits| {
                    if mode == VALUES_INT {
                        bits as i64
                    } else {
                        (f64::from_bits(bits) * POW10[k]).round() as i64
                    }
                })
                .collect();
            intcol::encode(&ints, head, w);
        }
        None => {
            let mut xw = BitWriter::new();
            let mut x = XorEnc::default();
            for (i, &bits) in vals.iter().enumerate() {
                x.put(&mut xw, i == 0, bits);
            }
            if let Some((e, ms)) = binary_scale(vals) {
                let mut bh = vec![VALUES_BINARY, 0];
                put_varint(&mut bh, e);
                let mut bw = BitWriter::new();
                intcol::encode(&ms, &mut bh, &mut bw);
                if (bh.len() - 2) * 8 + bw.len_bits() < xw.len_bits() {
                    head.extend_from_slice(&bh);
                    w.append(&bw);
                    return;
                }
            }
            head.extend_from_slice(&[VALUES_XOR, 0]);
            w.append(&xw);
        }
    }
}

/// A decoded value column header.
pub(crate) struct ValuesHeader {
    mode: u8,
    k: usize,
    /// `2^e`, the unit of a binary column.
    scale: f64,
    col: Option<intcol::Column>,
}

impl ValuesHeader {
    pub(crate) fn read(br: &mut ByteReader<'_>) -> Result<Self> {
        let mode = br.u8()?;
        let k = br.u8()? as usize;
        if mode > VALUES_BINARY || k >= POW10.len() {
            return Err(Error::CorruptChunk("bad value column header"));
        }
        let mut scale = 1.0;
        if mode == VALUES_BINARY {
            let e = br.varint()?;
            if !BINARY_EXP.contains(&e) {
                return Err(Error::CorruptChunk("bad binary exponent"));
            }
            scale = pow2(e);
        }
        let col = if mode == VALUES_XOR {
            None
        } else {
            Some(intcol::Column::read_header(br)?)
        };
        Ok(Self {
            mode,
            k,
            scale,
            col,
        })
    }

    /// Decodes `n` value bits, calling `f(i, bits)`.
    pub(crate) fn decode(
        &self,
        r: &mut BitReader<'_>,
        n: usize,
        mut f: impl FnMut(usize, u64),
    ) -> Result<()> {
        match &self.col {
            Some(col) => match self.mode {
                VALUES_INT => col.decode(r, n, |i, m| f(i, m as u64)),
                VALUES_BINARY => col.decode(r, n, |i, m| f(i, (m as f64 * self.scale).to_bits())),
                _ => col.decode(r, n, |i, m| f(i, (m as f64 / POW10[self.k]).to_bits())),
            },
            None => {
                let mut x = XorEnc::default();
                for i in 0..n {
                    f(i, x.get(r, i == 0)?);
                }
                Ok(())
            }
        }
    }
}

/// Columnar encoding: timestamps as an integer column, then a value column.
fn encode_columnar(samples: &[(i64, u64)], kind: ValueKind) -> Vec<u8> {
    let mut out = vec![TAG_COLUMNAR];
    put_uvarint(&mut out, samples.len() as u64);
    let mut w = BitWriter::new();
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    intcol::encode(&ts, &mut out, &mut w);
    let vals: Vec<u64> = samples.iter().map(|s| s.1).collect();
    encode_values(&vals, kind, &mut out, &mut w);
    out.extend_from_slice(&w.into_bytes());
    out
}

/// Decodes a chunk into `(timestamp, value bits)` pairs.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(i64, u64)>> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Decodes a chunk, appending to `out`.
pub(crate) fn decode_into(bytes: &[u8], out: &mut Vec<(i64, u64)>) -> Result<()> {
    let mut br = ByteReader::new(bytes);
    let tag = br.u8()?;
    let n = br.uvarint()?;
    if n > MAX_SAMPLES {
        return Err(Error::CorruptChunk("sample count too large"));
    }
    let n = n as usize;
    match tag {
        TAG_XOR => {
            let rest = br.bytes(br.remaining())?;
            if n > rest.len() * 4 {
                return Err(Error::CorruptChunk("sample count past the end"));
            }
            let mut r = BitReader::new(rest);
            let mut ts = TsEnc::default();
            let mut xor = XorEnc::default();
            out.reserve(n);
            for i in 0..n {
                let t = ts.get(&mut r, i)?;
                let v = xor.get(&mut r, i == 0)?;
                out.push((t, v));
            }
            Ok(())
        }
        TAG_COLUMNAR => {
            let ts_col = intcol::Column::read_header(&mut br)?;
            let vh = ValuesHeader::read(&mut br)?;
            let rest = br.bytes(br.remaining())?;
            // Zero-width columns cost no bits, so the count is only bounded by MAX_SAMPLES.
            let start = out.len();
            out.reserve(n.min(1 << 16));
            let mut r = BitReader::new(rest);
            ts_col.decode(&mut r, n, |_, t| out.push((t, 0)))?;
            let vals = &mut out[start..];
            vh.decode(&mut r, n, |i, bits| {
                if let Some(slot) = vals.get_mut(i) {
                    slot.1 = bits;
                }
            })
        }
        _ => Err(Error::CorruptChunk("unknown chunk encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(samples: &[(i64, u64)], kind: ValueKind) -> (usize, usize) {
        let mut a = Appender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        let open = a.to_bytes();
        assert_eq!(decode(&open).unwrap(), samples);
        let closed = a.finish(kind);
        assert_eq!(decode(&closed).unwrap(), samples);
        (open.len(), closed.len())
    }

    #[test]
    fn regular_counter_is_tiny() {
        let s: Vec<_> = (0..240)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 10_000,
                    ((i * 4096) as f64).to_bits(),
                )
            })
            .collect();
        let (xor, best) = roundtrip(&s, ValueKind::Float);
        assert!(best < xor);
        assert!(best < 100, "{best} bytes for 240 samples");
    }

    #[test]
    fn decimal_and_special_values() {
        let vals = [0.25, -0.0, f64::NAN, f64::INFINITY, 1e300, 12.5];
        let s: Vec<_> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.to_bits()))
            .collect();
        roundtrip(&s, ValueKind::Float);
        let s: Vec<_> = [i64::MIN, i64::MAX, 0, -1]
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 7, v as u64))
            .collect();
        roundtrip(&s, ValueKind::Integer);
    }

    /// Encodes a float value column and decodes it again; returns its mode and bytes.
    fn values_roundtrip(vals: &[u64]) -> (u8, usize) {
        let mut head = Vec::new();
        let mut w = BitWriter::new();
        encode_values(vals, ValueKind::Float, &mut head, &mut w);
        let body = w.into_bytes();
        let mut br = ByteReader::new(&head);
        let h = ValuesHeader::read(&mut br).unwrap();
        assert!(br.is_empty());
        let mut out = vec![0u64; vals.len()];
        h.decode(&mut BitReader::new(&body), vals.len(), |i, b| out[i] = b)
            .unwrap();
        assert_eq!(out, vals, "mode {}", h.mode);
        (h.mode, head.len() + body.len())
    }

    /// A random walk at full precision, as `x += u * 2 - 1` with `u` uniform in [0, 1).
    fn walk(seed: u64, start: f64, n: usize) -> Vec<u64> {
        let mut state = seed;
        let mut x = start;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                x += (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                x.to_bits()
            })
            .collect()
    }

    #[test]
    fn full_precision_walk_is_binary_and_smaller_than_xor() {
        for (seed, start) in [(1, 700.25), (2, 3.0), (3, 130.0), (4, -40.0)] {
            let vals = walk(seed, start, 240);
            let (mode, bytes) = values_roundtrip(&vals);
            assert_eq!(mode, VALUES_BINARY);
            let mut xw = BitWriter::new();
            let mut x = XorEnc::default();
            for (i, &b) in vals.iter().enumerate() {
                x.put(&mut xw, i == 0, b);
            }
            assert!(
                bytes < xw.len_bits() / 8,
                "{bytes} vs xor {}",
                xw.len_bits() / 8
            );
        }
        // Crossing zero needs too many bits per unit: XOR.
        let mut vals = walk(5, 0.5, 100);
        vals.push(1e-30f64.to_bits());
        assert_eq!(values_roundtrip(&vals).0, VALUES_XOR);
    }

    #[test]
    fn binary_column_edge_values() {
        let cases: [&[f64]; 7] = [
            &[0.0, 0.0],
            &[0.0, 1.5, -1.5, 0.0],
            &[f64::MIN_POSITIVE, f64::MIN_POSITIVE * 3.0],
            &[5e-324, 1e-323, -5e-324, 0.0],
            &[f64::MAX, f64::MAX / 2.0, -f64::MAX],
            &[1.0, 2f64.powi(61), 3.0],
            &[1.0, 2f64.powi(63), 3.0],
        ];
        for c in cases {
            let vals: Vec<u64> = c.iter().map(|v| v.to_bits()).collect();
            values_roundtrip(&vals);
        }
        for bits in [
            (-0.0f64).to_bits(),
            f64::NAN.to_bits(),
            0x7ff0_0000_0000_0002,
            f64::INFINITY.to_bits(),
        ] {
            assert_eq!(binary_scale(&[1.5f64.to_bits(), bits]), None);
        }
        assert_eq!(
            binary_scale(&[1.0f64.to_bits(), 2f64.powi(70).to_bits()]),
            None
        );
        assert_eq!(
            binary_scale(&[0.75f64.to_bits(), (-2.5f64).to_bits()]),
            Some((-2, vec![3, -10]))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any float bits, special ones included, round-trip bit for bit through every
        /// value column mode the encoder picks, and through closed chunks.
        #[test]
        fn any_floats_roundtrip_bit_exactly(
            vals in proptest::collection::vec(prop_oneof![
                any::<u64>(),
                any::<f64>().prop_map(f64::to_bits),
                (-1e6f64..1e6).prop_map(f64::to_bits),
                (0u64..64).prop_map(|i| [0.0, -0.0, f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY,
                    5e-324, f64::MIN_POSITIVE, f64::MAX, 0x7ff0_0000_0000_0002u64 as f64][i as usize % 10].to_bits()),
                (0u64..64).prop_map(|i| if i == 0 { 0x7ff0_0000_0000_0002 } else { 0x7ff8_0000_0000_0001 + i }),
            ], 0..80),
            walk_seed in any::<u64>(),
            start in -1e4f64..1e4,
            walk_len in 0usize..300,
        ) {
            values_roundtrip(&vals);
            let w = walk(walk_seed, start, walk_len);
            values_roundtrip(&w);
            let mut mixed = w.clone();
            mixed.extend(&vals);
            values_roundtrip(&mixed);
            let s: Vec<_> = mixed.iter().enumerate().map(|(i, &v)| (i as i64 * 7_200, v)).collect();
            roundtrip(&s, ValueKind::Float);
        }

        #[test]
        fn any_samples_roundtrip(
            start in any::<i64>(),
            deltas in proptest::collection::vec(0i64..100_000, 0..100),
            vals in proptest::collection::vec(prop_oneof![any::<u64>(), (-1000i64..1000).prop_map(|v| (v as f64 / 4.0).to_bits())], 100),
            kind in prop_oneof![Just(ValueKind::Float), Just(ValueKind::Integer)],
        ) {
            let mut t = start;
            let s: Vec<_> = deltas.iter().zip(&vals).map(|(d, &v)| { t = t.wrapping_add(*d); (t, v) }).collect();
            roundtrip(&s, kind);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_with_valid_header(tag in 1u8..3, n in 0u64..300, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = vec![tag];
            put_uvarint(&mut b, n);
            b.extend(body);
            let _ = decode(&b);
        }

        #[test]
        fn decode_never_panics_on_binary_columns(n in 0u64..300, e in -1200i64..1200, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            // A regular timestamp column, then a binary value column header and garbage.
            let mut b = vec![TAG_COLUMNAR];
            put_uvarint(&mut b, n);
            intcol::encode(&[0, 10], &mut b, &mut BitWriter::new());
            b.extend_from_slice(&[VALUES_BINARY, 0]);
            put_varint(&mut b, e);
            b.extend(body);
            let _ = decode(&b);
        }
    }
}
