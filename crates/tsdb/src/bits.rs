//! Bit-level writer and reader plus byte varints, the building blocks of chunk encodings.
//!
//! The reader never panics: reading past the end is an [`Error::CorruptChunk`].

use crate::error::{Error, Result};

/// Appends bits most-significant first.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    nacc: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `v` (`n <= 64`).
    #[inline]
    pub(crate) fn write_bits(&mut self, v: u64, n: u32) {
        if n > 32 {
            self.write_small(v >> 32, n - 32);
            self.write_small(v & 0xffff_ffff, 32);
        } else {
            self.write_small(v, n);
        }
    }

    #[inline]
    fn write_small(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        let v = v & ((1u64 << n) - 1);
        self.acc = (self.acc << n) | v;
        self.nacc += n;
        while self.nacc >= 8 {
            self.nacc -= 8;
            self.buf.push((self.acc >> self.nacc) as u8);
        }
        self.acc &= (1u64 << self.nacc) - 1;
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, b: bool) {
        self.write_small(u64::from(b), 1);
    }

    /// Appends every bit written to `other`.
    pub(crate) fn append(&mut self, other: &BitWriter) {
        for &b in &other.buf {
            self.write_small(u64::from(b), 8);
        }
        self.write_small(other.acc, other.nacc);
    }

    /// Number of bits written.
    pub(crate) fn len_bits(&self) -> usize {
        self.buf.len() * 8 + self.nacc as usize
    }

    /// Bytes allocated, for memory accounting.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends the bytes written so far (the last byte zero padded) to `out`.
    pub(crate) fn copy_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf);
        if self.nacc > 0 {
            out.push((self.acc << (8 - self.nacc)) as u8);
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let mut out = self.buf;
        if self.nacc > 0 {
            out.push((self.acc << (8 - self.nacc)) as u8);
        }
        out
    }
}

/// Reads bits most-significant first from a byte slice.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

const EOF: Error = Error::CorruptChunk("unexpected end of bit stream");

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn remaining_bits(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Result<bool> {
        // `let else`, not `ok_or`: an eagerly built error costs a drop call per bit.
        let Some(&byte) = self.data.get(self.pos / 8) else {
            return Err(EOF);
        };
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n <= 64` bits.
    #[inline]
    pub(crate) fn read_bits(&mut self, mut n: u32) -> Result<u64> {
        if n > 64 || self.remaining_bits() < n as usize {
            return Err(EOF);
        }
        let mut v: u64 = 0;
        while n > 0 {
            let Some(&byte) = self.data.get(self.pos / 8) else {
                return Err(EOF);
            };
            let off = (self.pos % 8) as u32;
            let avail = 8 - off;
            let take = avail.min(n);
            let bits = (u64::from(byte) >> (avail - take)) & ((1u64 << take) - 1);
            v = if take == 64 { bits } else { (v << take) | bits };
            n -= take;
            self.pos += take as usize;
        }
        Ok(v)
    }
}

/// Writes a signed integer in a prefix-coded number of bits: small values are cheap.
///
/// Buckets: `0` for zero, `10`+8, `110`+14, `1110`+20, `11110`+32, `11111`+64 bits.
#[inline]
pub(crate) fn write_varbit(w: &mut BitWriter, v: i64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    for (prefix, plen, bits) in [
        (0b10u64, 2u32, 8u32),
        (0b110, 3, 14),
        (0b1110, 4, 20),
        (0b11110, 5, 32),
    ] {
        let lim = 1i64 << (bits - 1);
        if (-lim..lim).contains(&v) {
            w.write_bits(prefix, plen);
            w.write_bits(v as u64, bits);
            return;
        }
    }
    w.write_bits(0b11111, 5);
    w.write_bits(v as u64, 64);
}

/// Reads a value written by [`write_varbit`].
#[inline]
pub(crate) fn read_varbit(r: &mut BitReader<'_>) -> Result<i64> {
    let mut ones = 0;
    while ones < 5 && r.read_bit()? {
        ones += 1;
    }
    let bits = match ones {
        0 => return Ok(0),
        1 => 8,
        2 => 14,
        3 => 20,
        4 => 32,
        _ => 64,
    };
    let raw = r.read_bits(bits)?;
    if bits == 64 {
        return Ok(raw as i64);
    }
    // Sign-extend.
    let shift = 64 - bits;
    Ok(((raw << shift) as i64) >> shift)
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over bytes whose reads fail instead of panicking.
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

const BYTES_EOF: Error = Error::CorruptChunk("unexpected end of data");

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let Some(&b) = self.data.get(self.pos) else {
            return Err(BYTES_EOF);
        };
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::CorruptChunk("varint too long"))
    }

    pub(crate) fn varint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A length that must fit in the remaining bytes.
    pub(crate) fn len(&mut self) -> Result<usize> {
        let n = self.uvarint()?;
        if n > self.remaining() as u64 {
            return Err(Error::CorruptChunk("length past the end"));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let Some(s) = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
        else {
            return Err(BYTES_EOF);
        };
        let end = self.pos + n;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn len_bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.bytes(n)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let b = self.len_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::CorruptChunk("invalid utf-8"))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_roundtrip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..50)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items { w.write_bits(v, n); }
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n).unwrap(), v & mask);
            }
        }

        #[test]
        fn append_is_writing_the_same_bits(a in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..20), b in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..20)) {
            let mut whole = BitWriter::new();
            let (mut first, mut second) = (BitWriter::new(), BitWriter::new());
            for &(v, n) in &a { whole.write_bits(v, n); first.write_bits(v, n); }
            for &(v, n) in &b { whole.write_bits(v, n); second.write_bits(v, n); }
            first.append(&second);
            prop_assert_eq!(first.len_bits(), whole.len_bits());
            prop_assert_eq!(first.into_bytes(), whole.into_bytes());
        }

        #[test]
        fn varbit_roundtrip(vals in proptest::collection::vec(any::<i64>(), 0..50), small in proptest::collection::vec(-70000i64..70000, 0..50)) {
            let mut w = BitWriter::new();
            for &v in vals.iter().chain(&small) { write_varbit(&mut w, v); }
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            for &v in vals.iter().chain(&small) { prop_assert_eq!(read_varbit(&mut r).unwrap(), v); }
        }

        #[test]
        fn varint_roundtrip(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            put_uvarint(&mut out, u);
            let mut r = ByteReader::new(&out);
            prop_assert_eq!(r.varint().unwrap(), v);
            prop_assert_eq!(r.uvarint().unwrap(), u);
            prop_assert!(r.is_empty());
        }
    }
}
