//! Integer column coding for closed chunks: per column the smallest of
//! delta or delta-of-delta with prefix-coded widths, frame-of-reference bit
//! packing of the deltas divided by their common factor, (format 3) bit packing
//! of the residuals from a straight line, or (format 4) a bit per delta for whether it
//! is zero plus the nonzero ones, divided by their common factor, bit packed.
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
/// Residuals from the line `first + i × slope`, bit packed above their minimum (segment
/// format 3 on): a scrape interval with a few ms of jitter costs `log2(jitter range)`
/// bits where the deltas, differences of two jitters, take one bit more.
const LINEAR: u8 = 3;
/// Deltas divided by their common factor, each a flag bit (zero or not) and the
/// nonzero ones bit packed above their minimum (segment format 4 on): a gauge that
/// changes in a fifth of the rounds by a few 4 KiB pages costs about 2 bits per sample
/// where frame of reference takes 5 and varbit deltas ~5.6.
const SPARSE: u8 = 4;

/// Sparse parameters: common factor, minimum nonzero quotient, bit width, and how
/// many deltas are nonzero. `None` when no delta is zero (frame of reference is as
/// good then) or a value does not fit.
fn sparse_params(xs: &[i64]) -> Option<(u64, i64, u32, u64)> {
    let mut g = 0u64;
    let mut nonzero = 0u64;
    for w in xs.windows(2) {
        let d = w[1].wrapping_sub(w[0]);
        if d != 0 {
            nonzero += 1;
            if g != 1 {
                g = gcd(g, d.unsigned_abs());
            }
        }
    }
    if nonzero == 0 || nonzero + 1 >= xs.len() as u64 {
        return None;
    }
    let g128 = i128::from(g);
    let (mut lo, mut hi) = (i128::MAX, i128::MIN);
    for w in xs.windows(2) {
        let d = w[1].wrapping_sub(w[0]);
        if d != 0 {
            let q = i128::from(d) / g128;
            lo = lo.min(q);
            hi = hi.max(q);
        }
    }
    let base = i64::try_from(lo).ok()?;
    let range = u64::try_from(hi - lo).ok()?;
    Some((g, base, 64 - range.leading_zeros(), nonzero))
}

/// Line parameters: slope, minimum residual, bit width.
fn linear_params(xs: &[i64]) -> Option<(i64, i64, u32)> {
    let n = xs.len();
    if n < 3 {
        return None;
    }
    let first = i128::from(xs[0]);
    let span = i128::from(xs[n - 1]) - first;
    let steps = n as i128 - 1;
    // Rounded to nearest.
    let slope = (2 * span + steps).div_euclid(2 * steps);
    let slope64 = i64::try_from(slope).ok()?;
    let mut lo = i128::MAX;
    let mut hi = i128::MIN;
    for (i, &x) in xs.iter().enumerate() {
        let r = i128::from(x) - first - slope * i as i128;
        lo = lo.min(r);
        hi = hi.max(r);
    }
    let base = i64::try_from(lo).ok()?;
    let range = u64::try_from(hi - lo).ok()?;
    Some((slope64, base, 64 - range.leading_zeros()))
}

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
    let lin_p = linear_params(xs);
    let lin_bits = lin_p.map_or(u64::MAX, |(_, _, width)| {
        u64::from(width) * (xs.len() as u64 - 1) + 80
    });
    let sparse_p = sparse_params(xs);
    let sparse_bits = sparse_p.map_or(u64::MAX, |(_, _, width, nonzero)| {
        (xs.len() as u64 - 1) + u64::from(width) * nonzero + 80
    });
    let method = if sparse_bits < lin_bits.min(for_bits).min(delta_bits).min(dod_bits) {
        SPARSE
    } else if lin_bits < for_bits.min(delta_bits).min(dod_bits) {
        LINEAR
    } else if for_bits <= delta_bits.min(dod_bits) {
        FOR
    } else if dod_bits < delta_bits {
        DOD
    } else {
        DELTA
    };
    head.push(method);
    put_varint(head, first);
    match (method, for_p) {
        (SPARSE, _) => {
            let (g, base, width, _) = sparse_p.unwrap_or((1, 0, 0, 0));
            put_uvarint(head, g);
            put_varint(head, base);
            head.push(width as u8);
            for win in xs.windows(2) {
                let d = win[1].wrapping_sub(win[0]);
                if d == 0 {
                    w.write_bits(0, 1);
                } else {
                    // Exact: g divides d; computed wide, as in `sparse_params`.
                    let q = (i128::from(d) / i128::from(g)) as i64;
                    w.write_bits(1, 1);
                    w.write_bits(q.wrapping_sub(base) as u64, width);
                }
            }
        }
        (LINEAR, _) => {
            let (slope, base, width) = lin_p.unwrap_or_default();
            put_varint(head, slope);
            put_varint(head, base);
            head.push(width as u8);
            for (i, &x) in xs.iter().enumerate().skip(1) {
                let line = first.wrapping_add(slope.wrapping_mul(i as i64));
                let r = x.wrapping_sub(line).wrapping_sub(base) as u64;
                w.write_bits(r, width);
            }
        }
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
            LINEAR => {
                // `base` is the slope, `g` holds the minimum residual's bits.
                base = r.varint()?;
                g = r.varint()? as u64;
                width = u32::from(r.u8()?);
                if width > 64 {
                    return Err(Error::CorruptChunk("bit width over 64"));
                }
            }
            FOR => {
                base = r.varint()?;
                g = r.uvarint()?;
                width = u32::from(r.u8()?);
                if width > 64 {
                    return Err(Error::CorruptChunk("bit width over 64"));
                }
            }
            SPARSE => {
                g = r.uvarint()?;
                base = r.varint()?;
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
        if self.method == LINEAR {
            let (slope, min) = (self.base, self.g as i64);
            for i in 1..n {
                let r = r.read_bits(self.width)? as i64;
                let line = self.first.wrapping_add(slope.wrapping_mul(i as i64));
                f(i, line.wrapping_add(min).wrapping_add(r));
            }
            return Ok(());
        }
        if self.method == SPARSE {
            for i in 1..n {
                if r.read_bits(1)? != 0 {
                    let q = self.base.wrapping_add(r.read_bits(self.width)? as i64);
                    x = x.wrapping_add(q.wrapping_mul(self.g as i64));
                }
                f(i, x);
            }
            return Ok(());
        }
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
        roundtrip(&[i64::MIN, i64::MAX, 0, i64::MIN, i64::MAX, 7]);
    }

    #[test]
    fn rarely_changing_gauge_is_sparse() {
        // Memory in 4 KiB pages, changing by -8..=8 pages in about a fifth of the rounds.
        let mut seed = 7u64;
        let mut x = 1i64 << 30;
        let xs: Vec<i64> = (0..240)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                if (seed >> 33).is_multiple_of(5) {
                    x += (((seed >> 40) % 17) as i64 - 8) * 4096;
                }
                x
            })
            .collect();
        let mut head = Vec::new();
        encode(&xs, &mut head, &mut BitWriter::new());
        assert_eq!(head[0], SPARSE);
        let n = roundtrip(&xs);
        // 239 flag bits and 5 bits per change (about 48): ~60 bytes; frame of reference
        // took 239 × 5 bits, ~150.
        assert!(n <= 75, "{n}");
        // Extremes: deltas of i64::MIN and a common factor of 2^63.
        roundtrip(&[0, i64::MIN, i64::MIN, 0, 0, 0]);
        roundtrip(&[5, 5, 5, 5 + (1 << 62), 5 + (1 << 62), 5, 5, 5]);
    }

    #[test]
    fn jittered_interval_is_linear() {
        // 7.2 s rounds starting 0-5 ms late: residuals in 0..=5, 3 bits each.
        let mut seed = 1u64;
        let ts: Vec<i64> = (0..240)
            .map(|i| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                1_700_000_000_000 + i * 7_200 + (seed >> 33) as i64 % 6
            })
            .collect();
        let mut head = Vec::new();
        encode(&ts, &mut head, &mut BitWriter::new());
        assert_eq!(head[0], LINEAR);
        let n = roundtrip(&ts);
        assert!(n <= 239 * 3 / 8 + 20, "{n}");
    }

    proptest! {
        #[test]
        fn any_column_roundtrips(xs in proptest::collection::vec(any::<i64>(), 0..50), small in proptest::collection::vec(-300i64..300, 0..50)) {
            roundtrip(&xs);
            roundtrip(&small);
        }

        #[test]
        fn sparse_columns_roundtrip(start in any::<i64>(), steps in proptest::collection::vec((any::<bool>(), any::<i64>(), -9i64..9), 0..60), factor in any::<i64>()) {
            let mut x = start;
            let xs: Vec<i64> = steps.iter().map(|&(change, big, small)| {
                if change {
                    x = x.wrapping_add(if small == 0 { big } else { small.wrapping_mul(factor) });
                }
                x
            }).collect();
            roundtrip(&xs);
        }

        #[test]
        fn garbage_sparse_header_never_panics(first in any::<i64>(), g in any::<u64>(), base in any::<i64>(), width in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..40), n in 0usize..100) {
            let mut head = vec![SPARSE];
            put_varint(&mut head, first);
            put_uvarint(&mut head, g);
            put_varint(&mut head, base);
            head.push(width);
            if let Ok(col) = Column::read_header(&mut ByteReader::new(&head)) {
                let _ = col.decode(&mut BitReader::new(&body), n, |_, _| {});
            }
        }

        #[test]
        fn lines_with_noise_roundtrip(start in any::<i64>(), slope in any::<i64>(), noise in proptest::collection::vec(-8i64..8, 0..60)) {
            let xs: Vec<i64> = noise.iter().enumerate().map(|(i, e)| start.wrapping_add(slope.wrapping_mul(i as i64)).wrapping_add(*e)).collect();
            roundtrip(&xs);
            let small: Vec<i64> = noise.iter().enumerate().map(|(i, e)| 1_000 + 7_200 * i as i64 + e).collect();
            roundtrip(&small);
        }

        #[test]
        fn garbage_linear_header_never_panics(first in any::<i64>(), slope in any::<i64>(), min in any::<i64>(), width in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..40), n in 0usize..100) {
            let mut head = vec![LINEAR];
            put_varint(&mut head, first);
            put_varint(&mut head, slope);
            put_varint(&mut head, min);
            head.push(width);
            if let Ok(col) = Column::read_header(&mut ByteReader::new(&head)) {
                let _ = col.decode(&mut BitReader::new(&body), n, |_, _| {});
            }
        }
    }
}
