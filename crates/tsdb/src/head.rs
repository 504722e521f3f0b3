//! The in-memory head: per-series open chunk, closed chunks not yet on disk, and
//! references to the series' data in segment files. Pure: no I/O here.

use std::sync::Arc;

use crate::chunk::{self, Appender};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::segment::{IndexEntry, SegmentFile};
use crate::types::ValueKind;

/// A closed, immutable chunk still held in memory.
#[derive(Clone, Debug)]
pub(crate) struct ClosedChunk {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) n: u32,
    /// Value bits of the newest sample.
    pub(crate) last: u64,
}

/// Where one series' data lives inside one segment file.
#[derive(Clone, Debug)]
pub(crate) struct DiskRef {
    pub(crate) file: Arc<SegmentFile>,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    /// Value bits of the series' newest raw sample in this segment.
    pub(crate) last: u64,
    /// Raw samples the data covers.
    pub(crate) samples: u64,
}

impl DiskRef {
    /// The series' entry `e` in the segment `file`.
    pub(crate) fn new(file: Arc<SegmentFile>, e: &IndexEntry) -> DiskRef {
        DiskRef {
            file,
            offset: e.offset,
            len: e.len,
            crc: e.crc,
            mint: e.mint,
            maxt: e.maxt,
            last: e.last,
            samples: e.samples,
        }
    }
}

/// Adds `r` to a series' list of references, keeping the list's capacity at its length.
/// Every series holds one reference per segment with its data (~16 after a day), and
/// doubling would leave up to half of that unused in thousands of series; a segment is
/// added to a list once per flush or compaction, so the copy is cheap.
pub(crate) fn push_ref(list: &mut Vec<DiskRef>, r: DiskRef) {
    list.reserve_exact(1);
    list.push(r);
}

/// Removes the references to the segments `gone`, giving back the room they took.
pub(crate) fn drop_refs(list: &mut Vec<DiskRef>, gone: &std::collections::HashSet<u64>) {
    let before = list.len();
    list.retain(|r| !gone.contains(&r.file.seq));
    if list.len() < before {
        list.shrink_to_fit();
    }
}

/// Limits that decide when the open chunk is closed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CutPolicy {
    pub(crate) max_samples: u32,
    pub(crate) max_span_ms: i64,
}

/// What happened to one appended sample.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Stored,
    /// Same timestamp and value as the last sample: nothing to store.
    Duplicate,
}

pub(crate) struct MemSeries {
    pub(crate) labels: Labels,
    pub(crate) kind: ValueKind,
    /// Newest timestamp ever accepted (in the head or on disk), `i64::MIN` if none.
    pub(crate) last_t: i64,
    pub(crate) last_bits: u64,
    pub(crate) open: Appender,
    pub(crate) closed: Vec<ClosedChunk>,
    pub(crate) raw: Vec<DiskRef>,
    pub(crate) rollups: [Vec<DiskRef>; 2],
}

impl MemSeries {
    pub(crate) fn new(labels: Labels, kind: ValueKind) -> Self {
        Self {
            labels,
            kind,
            last_t: i64::MIN,
            last_bits: 0,
            open: Appender::new(),
            closed: Vec::new(),
            raw: Vec::new(),
            rollups: [Vec::new(), Vec::new()],
        }
    }

    #[inline]
    pub(crate) fn append(
        &mut self,
        t: i64,
        kind: ValueKind,
        bits: u64,
        cut: CutPolicy,
    ) -> Result<Appended> {
        if kind != self.kind {
            return Err(Error::TypeConflict {
                labels: self.labels.to_string(),
                existing: self.kind,
                got: kind,
            });
        }
        if t <= self.last_t {
            if t == self.last_t {
                if bits == self.last_bits {
                    return Ok(Appended::Duplicate);
                }
                return Err(Error::DuplicateTimestamp { t });
            }
            return Err(Error::OutOfOrder {
                t,
                last: self.last_t,
            });
        }
        if self.open.len() > 0 && t.saturating_sub(self.open.mint()) >= cut.max_span_ms {
            self.cut();
        }
        self.open.append(t, bits);
        self.last_t = t;
        self.last_bits = bits;
        if self.open.len() >= cut.max_samples {
            self.cut();
        }
        Ok(Appended::Stored)
    }

    /// Closes the open chunk (if it has samples).
    pub(crate) fn cut(&mut self) {
        if self.open.len() == 0 {
            return;
        }
        let open = std::mem::take(&mut self.open);
        let (mint, maxt, n, last) = (open.mint(), open.maxt(), open.len(), open.last_bits());
        let bytes = open.finish(self.kind);
        self.closed.push(ClosedChunk {
            bytes: bytes.into(),
            mint,
            maxt,
            n,
            last,
        });
    }

    /// In-memory chunks (closed then open), as encoded bytes, oldest first.
    pub(crate) fn head_chunks(&self) -> Vec<(Arc<[u8]>, i64, i64)> {
        let mut v: Vec<_> = self
            .closed
            .iter()
            .map(|c| (c.bytes.clone(), c.mint, c.maxt))
            .collect();
        if self.open.len() > 0 {
            v.push((
                self.open.to_bytes().into(),
                self.open.mint(),
                self.open.maxt(),
            ));
        }
        v
    }

    /// Decodes head samples with timestamps in `[start, end]`.
    pub(crate) fn head_samples(
        &self,
        start: i64,
        end: i64,
        out: &mut Vec<(i64, u64)>,
    ) -> Result<()> {
        for c in &self.closed {
            if c.maxt >= start && c.mint <= end {
                decode_range(&c.bytes, start, end, out)?;
            }
        }
        if self.open.len() > 0 && self.open.maxt() >= start && self.open.mint() <= end {
            decode_range(&self.open.to_bytes(), start, end, out)?;
        }
        Ok(())
    }

    pub(crate) fn head_sample_count(&self) -> u64 {
        self.closed.iter().map(|c| u64::from(c.n)).sum::<u64>() + u64::from(self.open.len())
    }

    /// Whether any raw sample overlaps `[start, end]`.
    pub(crate) fn overlaps(&self, start: i64, end: i64) -> bool {
        self.raw.iter().any(|r| r.maxt >= start && r.mint <= end)
            || self.closed.iter().any(|c| c.maxt >= start && c.mint <= end)
            || (self.open.len() > 0 && self.open.maxt() >= start && self.open.mint() <= end)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.raw.is_empty()
            && self.closed.is_empty()
            && self.open.len() == 0
            && self.rollups.iter().all(Vec::is_empty)
    }

    pub(crate) fn mem_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.labels.heap_size()
            + self.open.mem_size()
            + self
                .closed
                .iter()
                .map(|c| c.bytes.len() + 48)
                .sum::<usize>()
            + (self.raw.len() + self.rollups[0].len() + self.rollups[1].len())
                * std::mem::size_of::<DiskRef>()
    }
}

/// Decodes one chunk, keeping samples in `[start, end]`.
pub(crate) fn decode_range(
    bytes: &[u8],
    start: i64,
    end: i64,
    out: &mut Vec<(i64, u64)>,
) -> Result<()> {
    let from = out.len();
    chunk::decode_into(bytes, out)?;
    let mut w = from;
    for r in from..out.len() {
        let s = out[r];
        if s.0 >= start && s.0 <= end {
            out[w] = s;
            w += 1;
        }
    }
    out.truncate(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_rules() {
        let l = Labels::with_name("x", []).unwrap();
        let mut s = MemSeries::new(l, ValueKind::Float);
        let cut = CutPolicy {
            max_samples: 3,
            max_span_ms: 1000,
        };
        assert_eq!(
            s.append(10, ValueKind::Float, 1, cut).unwrap(),
            Appended::Stored
        );
        assert_eq!(
            s.append(10, ValueKind::Float, 1, cut).unwrap(),
            Appended::Duplicate
        );
        assert!(matches!(
            s.append(10, ValueKind::Float, 2, cut),
            Err(Error::DuplicateTimestamp { t: 10 })
        ));
        assert!(matches!(
            s.append(5, ValueKind::Float, 2, cut),
            Err(Error::OutOfOrder { t: 5, last: 10 })
        ));
        assert!(matches!(
            s.append(11, ValueKind::Integer, 2, cut),
            Err(Error::TypeConflict { .. })
        ));
        for t in 11..20 {
            s.append(t, ValueKind::Float, t as u64, cut).unwrap();
        }
        s.append(5000, ValueKind::Float, 0, cut).unwrap();
        assert_eq!(s.closed.len(), 4);
        let mut out = Vec::new();
        s.head_samples(0, i64::MAX, &mut out).unwrap();
        assert_eq!(out.len(), 11);
    }
}
