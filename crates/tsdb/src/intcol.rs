//! Integer column coding for closed chunks: per column the smallest of
//! delta or delta-of-delta with prefix-coded widths, or frame-of-reference bit
//! packing of the deltas divided by their common factor.
//!
//! Frame of reference makes a steady counter or a regular scrape interval cost zero
//! bits per sample, and a gauge moving in 4 KiB pages cost `log2(range / 4096)` bits.
//! Decoding uses wrapping arithmetic, so it never panics on arbitrary input and gives
//! back exactly what was encoded.

use crate::bits::{
    BitReader, BitWriter, ByteReader, put_uvarint, put_varint, read_varbit, write_varbit,
};
use crate::error::{Error, Result};

const DELTA: u8 = 0;
const DOD: u8 = 1;
const FOR: u8 = 2;

fn varbit_len(v: i64) -> u64 {
    match v {
        0 => 1,
        -128..=127 => 10,
        -8192..=8191 => 17,
        -524_288..=524_287 => 24,
        -2_147_483_648..=2_147_483_647 => 37,
        _ => 69,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Frame-of-reference parameters: base delta, common factor, bit width.
fn for_params(xs: &[i64]) -> Option<(i64, u64, u32)> {
    let deltas = xs.windows(2).map(|w| i128::from(w[1]) - i128::from(w[0]));
    let base = deltas.clone().min()?;
    let base64 = i64::try_from(base).ok()?;
    let mut g = 0u64;
    let mut max = 0u64;
    for d in deltas {
        let r = u64::try_from(d - base).ok()?;
        if g != 1 {
            g = gcd(g, r);
        }
        max = max.max(r);
    }
    let g = g.max(1);
    let width = 64 - (max / g).leading_zeros();
    Some((base64, g, width))
}

/// Encodes a column: a header into `head` and the bits into `w`.
pub(crate) fn encode(xs: &[i64], head: &mut Vec<u8>, w: &mut BitWriter) {
    let Some(&first) = xs.first() else {
        head.push(DELTA);
        put_varint(head, 0);
        return;
    };
    let mut delta_bits = 0u64;
    let mut dod_bits = 0u64;
    let mut prev_d = 0i64;
    for (i, win) in xs.windows(2).enumerate() {
        let d = win[1].wrapping_sub(win[0]);
        delta_bits += varbit_len(d);
        dod_bits += varbit_len(if i == 0 { d } else { d.wrapping_sub(prev_d) });
        prev_d = d;
    }
    let for_p = for_params(xs);
    let for_bits = for_p.map_or(u64::MAX, |(_, _, width)| {
        u64::from(width) * (xs.len() as u64 - 1) + 80
    });
    let method = if for_bits <= delta_bits.min(dod_bits) {
        FOR
    } else if dod_bits < delta_bits {
        DOD
    } else {
        DELTA
    };
    head.push(method);
    put_varint(head, first);
    match (method, for_p) {
        (FOR, Some((base, g, width))) => {
            put_varint(head, base);
            put_uvarint(head, g);
            head.push(width as u8);
            for win in xs.windows(2) {
                let r = (win[1].wrapping_sub(win[0])).wrapping_sub(base) as u64;
                w.write_bits(r / g, width);
            }
        }
        _ => {
            let mut prev_d = 0i64;
            for (i, win) in xs.windows(2).enumerate() {
                let d = win[1].wrapping_sub(win[0]);
                if method == DOD && i > 0 {
                    write_varbit(w, d.wrapping_sub(prev_d));
                } else {
                    write_varbit(w, d);
                }
                prev_d = d;
            }
        }
    }
}

/// A decoded column header.
pub(crate) struct Column {
    method: u8,
    first: i64,
    base: i64,
    g: u64,
    width: u32,
}

impl Column {
    pub(crate) fn read_header(r: &mut ByteReader<'_>) -> Result<Self> {
        let method = r.u8()?;
        let first = r.varint()?;
        let (mut base, mut g, mut width) = (0, 1, 0);
        match method {
            DELTA | DOD => {}
            FOR => {
                base = r.varint()?;
                g = r.uvarint()?;
                width = u32::from(r.u8()?);
                if width > 64 {
                    return Err(Error::CorruptChunk("bit width over 64"));
                }
            }
            _ => return Err(Error::CorruptChunk("unknown column method")),
        }
        Ok(Self {
            method,
            first,
            base,
            g,
            width,
        })
    }

    /// Decodes `n` values, calling `f(i, value)` for each.
    pub(crate) fn decode(
        &self,
        r: &mut BitReader<'_>,
        n: usize,
        mut f: impl FnMut(usize, i64),
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut x = self.first;
        f(0, x);
        let mut d = 0i64;
        for i in 1..n {
            d = match self.method {
                FOR => self
                    .base
                    .wrapping_add((r.read_bits(self.width)?.wrapping_mul(self.g)) as i64),
                DOD if i > 1 => d.wrapping_add(read_varbit(r)?),
                _ => read_varbit(r)?,
            };
            x = x.wrapping_add(d);
            f(i, x);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(xs: &[i64]) -> usize {
        let mut head = Vec::new();
        let mut w = BitWriter::new();
        encode(xs, &mut head, &mut w);
        let bits = w.into_bytes();
        let mut hr = ByteReader::new(&head);
        let col = Column::read_header(&mut hr).unwrap();
        let mut out = vec![0; xs.len()];
        col.decode(&mut BitReader::new(&bits), xs.len(), |i, v| out[i] = v)
            .unwrap();
        assert_eq!(out, xs);
        head.len() + bits.len()
    }

    #[test]
    fn steady_and_paged_columns_are_small() {
        let steady: Vec<i64> = (0..240).map(|i| 1_700_000_000_000 + i * 10_000).collect();
        assert!(roundtrip(&steady) < 20);
        let pages: Vec<i64> = (0..240)
            .map(|i| (1 << 30) + ((i * 7919) % 65 - 32) * 4096)
            .collect();
        let n = roundtrip(&pages);
        assert!(n < 240 * 7 / 8 + 30, "{n}");
        roundtrip(&[i64::MIN, i64::MAX, 0, i64::MIN]);
    }

    proptest! {
        #[test]
        fn any_column_roundtrips(xs in proptest::collection::vec(any::<i64>(), 0..50), small in proptest::collection::vec(-300i64..300, 0..50)) {
            roundtrip(&xs);
            roundtrip(&small);
        }
    }
}
