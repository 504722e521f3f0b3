//! Compressed chunks of samples: Gorilla XOR while a chunk is open, and at
//! close the smaller of XOR and a decimal-integer delta or delta-of-delta encoding.
//!
//! Timestamps always use delta-of-delta with prefix-coded widths (`bits::write_varbit`),
//! so a regular scrape interval costs one bit per sample. Values:
//!
//! * tag 1, XOR: Gorilla's float XOR with leading/trailing-zero windows.
//! * tag 2, integer: values that are exactly `m / 10^k` for small `k` (all integers,
//!   counters in bytes or nanoseconds, percentages with few decimals) are stored as
//!   the integers `m` with delta (gauges) or delta-of-delta (steady counters) coding.
//!
//! Samples are `(timestamp ms, value bits)`; the series' [`ValueKind`] says how to read the bits.
//! [`decode`] never panics on arbitrary bytes.

use crate::bits::{BitReader, BitWriter, ByteReader, put_uvarint, read_varbit, write_varbit};
use crate::error::{Error, Result};
use crate::types::ValueKind;

const TAG_XOR: u8 = 1;
const TAG_INT: u8 = 2;
const MAX_SAMPLES: u64 = 1 << 20;

const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
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
pub(crate) struct XorEnc {
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
            return Err(Error::CorruptChunk("xor reuses a window before defining one"));
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = r.read_bits(sig)?;
        let x = if self.trailing >= 64 { 0 } else { bits << self.trailing };
        self.last ^= x;
        Ok(self.last)
    }
}

pub(crate) type XorState = XorEnc;

pub(crate) fn xor_put(x: &mut XorEnc, w: &mut BitWriter, first: bool, v: u64) {
    x.put(w, first, v);
}

pub(crate) fn xor_get(x: &mut XorEnc, r: &mut BitReader<'_>, first: bool) -> Result<u64> {
    x.get(r, first)
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
        match encode_int(&samples, kind) {
            Some(int) if int.len() < xor.len() => int,
            _ => xor,
        }
    }
}

/// The decimal scale `k` such that every value is exactly `m / 10^k`, if any.
fn decimal_scale(samples: &[(i64, u64)]) -> Option<usize> {
    'scales: for k in SCALES {
        let p = POW10[k];
        for &(_, bits) in samples {
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

fn encode_int(samples: &[(i64, u64)], kind: ValueKind) -> Option<Vec<u8>> {
    let (mode, k) = match kind {
        ValueKind::Integer | ValueKind::Bool => (0u8, 0usize),
        ValueKind::Float => (1u8, decimal_scale(samples)?),
    };
    let ints: Vec<i64> = samples
        .iter()
        .map(|&(_, bits)| {
            if mode == 0 {
                bits as i64
            } else {
                (f64::from_bits(bits) * POW10[k]).round() as i64
            }
        })
        .collect();
    let mut best: Option<Vec<u8>> = None;
    for order in [1u8, 2] {
        let mut w = BitWriter::new();
        let mut ts = TsEnc::default();
        for (i, &(t, _)) in samples.iter().enumerate() {
            ts.put(&mut w, i as u32, t);
        }
        let mut last = 0i64;
        let mut delta = 0i64;
        for (i, &m) in ints.iter().enumerate() {
            if i == 0 {
                w.write_bits(m as u64, 64);
            } else {
                let d = m.wrapping_sub(last);
                if order == 1 || i == 1 {
                    write_varbit(&mut w, d);
                } else {
                    write_varbit(&mut w, d.wrapping_sub(delta));
                }
                delta = d;
            }
            last = m;
        }
        let mut out = vec![TAG_INT];
        put_uvarint(&mut out, samples.len() as u64);
        out.extend_from_slice(&[mode, k as u8, order]);
        out.extend_from_slice(&w.into_bytes());
        if best.as_ref().is_none_or(|b| out.len() < b.len()) {
            best = Some(out);
        }
    }
    best
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
        TAG_INT => {
            let mode = br.u8()?;
            let k = br.u8()? as usize;
            let order = br.u8()?;
            if mode > 1 || k >= POW10.len() || !(1..=2).contains(&order) {
                return Err(Error::CorruptChunk("bad integer chunk header"));
            }
            let rest = br.bytes(br.remaining())?;
            if n > rest.len() * 4 {
                return Err(Error::CorruptChunk("sample count past the end"));
            }
            let mut r = BitReader::new(rest);
            let mut ts = TsEnc::default();
            let start = out.len();
            out.reserve(n);
            for i in 0..n {
                out.push((ts.get(&mut r, i)?, 0));
            }
            let mut last = 0i64;
            let mut delta = 0i64;
            for (i, slot) in out[start..].iter_mut().enumerate() {
                let m = if i == 0 {
                    r.read_bits(64)? as i64
                } else {
                    let x = read_varbit(&mut r)?;
                    delta = if order == 1 || i == 1 { x } else { delta.wrapping_add(x) };
                    last.wrapping_add(delta)
                };
                last = m;
                slot.1 = if mode == 0 {
                    m as u64
                } else {
                    (m as f64 / POW10[k]).to_bits()
                };
            }
            Ok(())
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
        let s: Vec<_> = (0..240).map(|i| (1_700_000_000_000 + i * 10_000, ((i * 4096) as f64).to_bits())).collect();
        let (xor, best) = roundtrip(&s, ValueKind::Float);
        assert!(best < xor);
        assert!(best < 100, "{best} bytes for 240 samples");
    }

    #[test]
    fn decimal_and_special_values() {
        let vals = [0.25, -0.0, f64::NAN, f64::INFINITY, 1e300, 12.5];
        let s: Vec<_> = vals.iter().enumerate().map(|(i, v)| (i as i64, v.to_bits())).collect();
        roundtrip(&s, ValueKind::Float);
        let s: Vec<_> = [i64::MIN, i64::MAX, 0, -1].iter().enumerate().map(|(i, &v)| (i as i64 * 7, v as u64)).collect();
        roundtrip(&s, ValueKind::Integer);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
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
    }
}
