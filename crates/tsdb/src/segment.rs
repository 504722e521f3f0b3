//! Immutable segment files: raw chunks or rollup buckets of many series, written
//! once (temp file, fsync, rename, directory fsync) and read with positioned reads.
//!
//! Layout: `magic(8) kind(1)`, then one data blob per series, then the index, then a
//! 28-byte footer `index_offset(u64) index_len(u64) index_crc(u32) magic(8)`.
//! The index lists the segments this one replaces (set by compaction, so a crash
//! after the rename but before the sources are deleted cannot double data), the
//! time range, a symbol table of label names and values, and per series its labels
//! (symbol numbers), value kind, blob length, blob CRC, time range, newest value bits
//! and sample count. Every blob is checked against its CRC when read.
//!
//! Formats: 1 and 2 store each entry's blob offset and its time range as absolute
//! varints; format 3 leaves the offset out (blobs follow each other in index order)
//! and stores the time range as `mint - segment mint` and `maxt - mint` (~10 bytes
//! less per series and segment); in a raw blob each chunk's start is relative to the
//! previous chunk's end (`maint::for_raw_chunks`, ~5 bytes less per chunk). Format 3
//! chunks may also hold binary value columns (`chunk.rs`) and line-residual integer
//! columns (`intcol.rs`), which format 2 readers do not know; format 4 chunks also
//! sparse integer columns, which format 3 readers do not know.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::bits::{ByteReader, put_bytes, put_uvarint, put_varint};
use crate::crc::crc32c;
use crate::error::{Error, Result, io_err};
use crate::labels::Labels;
use crate::rollup::Resolution;
use crate::types::ValueKind;

/// Written at the start and end of every new segment. Format 2 changed the rollup
/// blobs (`rollup::encode`); format 3 the index entries and the value columns; format 4
/// added sparse integer columns (`intcol.rs`), which format 3 readers do not know.
const MAGIC: &[u8; 8] = b"SLWSEG04";
/// Format 3, still read.
const MAGIC_V3: &[u8; 8] = b"SLWSEG03";
/// Format 2, still read.
const MAGIC_V2: &[u8; 8] = b"SLWSEG02";
/// Format 1, still read.
const MAGIC_V1: &[u8; 8] = b"SLWSEG01";
/// The format version new segments are written in.
pub(crate) const VERSION: u8 = 4;
const FOOTER: u64 = 28;

/// What a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SegKind {
    Raw,
    Rollup(Resolution),
}

impl SegKind {
    pub(crate) const ALL: [SegKind; 3] = [
        SegKind::Raw,
        SegKind::Rollup(Resolution::Minute),
        SegKind::Rollup(Resolution::Hour),
    ];

    fn to_u8(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Rollup(Resolution::Minute) => 1,
            Self::Rollup(Resolution::Hour) => 2,
        }
    }

    fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Raw),
            1 => Some(Self::Rollup(Resolution::Minute)),
            2 => Some(Self::Rollup(Resolution::Hour)),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Rollup(Resolution::Minute) => "1m",
            Self::Rollup(Resolution::Hour) => "1h",
        }
    }
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) kind: SegKind,
    /// Format version (1 to 4): how its rollup blobs are encoded (1 or later).
    pub(crate) version: u8,
    pub(crate) seq: u64,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) size: u64,
    /// Raw samples covered by all entries.
    pub(crate) samples: u64,
    /// Position in flush order: its own seq when flushed, the smallest source order when
    /// merged. Per series, data in a lower-order segment is older.
    pub(crate) order: u64,
    /// 0 when flushed; a merge of level-`n` segments of a filling window is level `n + 1`.
    pub(crate) level: u8,
}

impl SegmentFile {
    /// Reads one series blob and checks its CRC.
    pub(crate) fn read_blob(&self, offset: u64, len: u32, crc: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_err(&self.path))?;
        if crc32c(&buf) != crc {
            return Err(self.corrupt("blob checksum mismatch"));
        }
        Ok(buf)
    }

    fn corrupt(&self, detail: &str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }
}

/// One series in a segment's index.
#[derive(Clone, Debug)]
pub(crate) struct IndexEntry {
    pub(crate) labels: Labels,
    pub(crate) kind: ValueKind,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    /// Value bits of the series' newest raw sample (restores duplicate detection on open).
    pub(crate) last: u64,
    /// Raw samples the data covers.
    pub(crate) samples: u64,
}

/// The file name of segment `seq` of `kind`.
pub(crate) fn file_name(kind: SegKind, seq: u64) -> String {
    format!("{}-{seq:016}.seg", kind.prefix())
}

/// Parses a segment file name into `(kind, seq)`.
pub(crate) fn parse_name(name: &str) -> Option<(SegKind, u64)> {
    let stem = name.strip_suffix(".seg")?;
    let (prefix, seq) = stem.split_once('-')?;
    let kind = SegKind::ALL.into_iter().find(|k| k.prefix() == prefix)?;
    Some((kind, seq.parse().ok()?))
}

/// Time range and newest value of one series' data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) last: u64,
    pub(crate) samples: u64,
}

/// Writes a new segment.
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    kind: SegKind,
    seq: u64,
    replaces: Vec<u64>,
    order: u64,
    level: u8,
    entries: Vec<IndexEntry>,
}

impl SegmentWriter {
    pub(crate) fn create(
        dir: &Path,
        kind: SegKind,
        seq: u64,
        (order, level): (u64, u8),
        replaces: Vec<u64>,
    ) -> Result<Self> {
        let tmp = dir.join(format!("{}.tmp", file_name(kind, seq)));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(MAGIC).map_err(io_err(&tmp))?;
        out.write_all(&[kind.to_u8()]).map_err(io_err(&tmp))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tmp,
            out,
            pos: 9,
            kind,
            seq,
            replaces,
            order,
            level,
            entries: Vec::new(),
        })
    }

    pub(crate) fn add(
        &mut self,
        labels: &Labels,
        kind: ValueKind,
        span: Span,
        blob: &[u8],
    ) -> Result<()> {
        let len =
            u32::try_from(blob.len()).map_err(|_| Error::CorruptChunk("series blob over 4 GiB"))?;
        self.out.write_all(blob).map_err(io_err(&self.tmp))?;
        self.entries.push(IndexEntry {
            labels: labels.clone(),
            kind,
            offset: self.pos,
            len,
            crc: crc32c(blob),
            mint: span.mint,
            maxt: span.maxt,
            last: span.last,
            samples: span.samples,
        });
        self.pos += blob.len() as u64;
        Ok(())
    }

    /// Writes the index and footer, fsyncs, renames into place and fsyncs the directory.
    pub(crate) fn finish(self) -> Result<(SegmentFile, Vec<IndexEntry>)> {
        self.finish_as(VERSION)
    }

    /// [`SegmentWriter::finish`] with the index and magic of format `version` (older
    /// formats only for tests: the blobs are the caller's to match).
    fn finish_as(mut self, version: u8) -> Result<(SegmentFile, Vec<IndexEntry>)> {
        let magic = match version {
            1 => MAGIC_V1,
            2 => MAGIC_V2,
            3 => MAGIC_V3,
            _ => MAGIC,
        };
        let mint = self.entries.iter().map(|e| e.mint).min().unwrap_or(0);
        let maxt = self.entries.iter().map(|e| e.maxt).max().unwrap_or(0);
        let mut ix = Vec::new();
        ix.push(self.kind.to_u8());
        put_uvarint(&mut ix, self.order);
        ix.push(self.level);
        put_uvarint(&mut ix, self.replaces.len() as u64);
        for &r in &self.replaces {
            put_uvarint(&mut ix, r);
        }
        put_varint(&mut ix, mint);
        put_varint(&mut ix, maxt);
        // Label names and values go into a symbol table once; entries refer to them.
        let mut symbols: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        let mut table: Vec<&str> = Vec::new();
        for e in &self.entries {
            for (k, v) in e.labels.iter() {
                for s in [k, v] {
                    symbols.entry(s).or_insert_with(|| {
                        table.push(s);
                        table.len() as u64 - 1
                    });
                }
            }
        }
        put_uvarint(&mut ix, table.len() as u64);
        for s in &table {
            put_bytes(&mut ix, s.as_bytes());
        }
        put_uvarint(&mut ix, self.entries.len() as u64);
        for e in &self.entries {
            put_uvarint(&mut ix, e.labels.len() as u64);
            for (k, v) in e.labels.iter() {
                put_uvarint(&mut ix, symbols.get(k).copied().unwrap_or(0));
                put_uvarint(&mut ix, symbols.get(v).copied().unwrap_or(0));
            }
            ix.push(e.kind.to_u8());
            if version < 3 {
                put_uvarint(&mut ix, e.offset);
            }
            put_uvarint(&mut ix, u64::from(e.len));
            ix.extend_from_slice(&e.crc.to_le_bytes());
            if version < 3 {
                put_varint(&mut ix, e.mint);
                put_varint(&mut ix, e.maxt);
            } else {
                put_uvarint(&mut ix, e.mint.wrapping_sub(mint) as u64);
                put_uvarint(&mut ix, e.maxt.wrapping_sub(e.mint) as u64);
            }
            ix.extend_from_slice(&e.last.to_le_bytes());
            put_uvarint(&mut ix, e.samples);
        }
        let mut footer = Vec::with_capacity(FOOTER as usize);
        footer.extend_from_slice(&self.pos.to_le_bytes());
        footer.extend_from_slice(&(ix.len() as u64).to_le_bytes());
        footer.extend_from_slice(&crc32c(&ix).to_le_bytes());
        footer.extend_from_slice(magic);
        let tmp = self.tmp.clone();
        self.out.write_all(&ix).map_err(io_err(&tmp))?;
        self.out.write_all(&footer).map_err(io_err(&tmp))?;
        let file = self.out.into_inner().map_err(|e| Error::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        if magic != MAGIC {
            file.write_all_at(magic, 0).map_err(io_err(&tmp))?;
        }
        file.sync_all().map_err(io_err(&tmp))?;
        let path = self.dir.join(file_name(self.kind, self.seq));
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        let size = self.pos + ix.len() as u64 + FOOTER;
        Ok((
            SegmentFile {
                path,
                file,
                kind: self.kind,
                version,
                seq: self.seq,
                mint,
                maxt,
                size,
                samples: self.entries.iter().map(|e| e.samples).sum(),
                order: self.order,
                level: self.level,
            },
            self.entries,
        ))
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A segment's file, its format version and its verified index bytes.
struct RawIndex {
    file: File,
    size: u64,
    version: u8,
    ix_off: u64,
    ix: Vec<u8>,
}

/// The start of a segment's index.
struct Header {
    kind: SegKind,
    order: u64,
    level: u8,
    /// The segments this one replaces (set by compaction).
    replaces: Vec<u64>,
}

fn read_header(r: &mut ByteReader<'_>) -> Result<Header> {
    let kind = SegKind::from_u8(r.u8()?).ok_or(Error::CorruptChunk("bad segment kind"))?;
    let order = r.uvarint()?;
    let level = r.u8()?;
    let nrep = r.len()?;
    let mut replaces = Vec::with_capacity(nrep);
    for _ in 0..nrep {
        replaces.push(r.uvarint()?);
    }
    Ok(Header {
        kind,
        order,
        level,
        replaces,
    })
}

/// How much of an index [`replaces`] reads first: the header (kind, order, level and the
/// replaced segments) of any compaction of up to ~1,000 segments.
const HEADER_PEEK: u64 = 4096;

/// The segments that the one at `path` replaces (it names them in its header) and that
/// `present` says exist, without decoding the rest of its index.
///
/// Usually nothing it names exists (a compaction deletes its sources right after), so
/// only the footer and the start of the index are read, unchecked: a corrupt header can
/// only name segments that are not there, and [`open`] verifies the whole index later.
/// When it names a present segment (a compaction that crashed before deleting them),
/// the index is read whole and its checksum verified before they are deleted.
pub(crate) fn replaces(path: &Path, present: impl Fn(u64) -> bool) -> Result<Vec<u64>> {
    let corrupt = |e: Error| Error::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let footer = read_footer(path)?;
    let peek = footer.ix_len.min(HEADER_PEEK);
    let mut head = vec![0u8; peek as usize];
    footer
        .file
        .read_exact_at(&mut head, footer.ix_off)
        .map_err(io_err(path))?;
    if let Ok(h) = read_header(&mut ByteReader::new(&head))
        && !h.replaces.iter().any(|&seq| present(seq))
    {
        return Ok(Vec::new());
    }
    let raw = read_index(path)?;
    let h = read_header(&mut ByteReader::new(&raw.ix)).map_err(corrupt)?;
    Ok(h.replaces.into_iter().filter(|&seq| present(seq)).collect())
}

/// A segment's footer: where its index is, its checksum and the format version.
struct Footer {
    file: File,
    size: u64,
    version: u8,
    ix_off: u64,
    ix_len: u64,
    ix_crc: u32,
}

fn read_index(path: &Path) -> Result<RawIndex> {
    let Footer {
        file,
        size,
        version,
        ix_off,
        ix_len,
        ix_crc,
    } = read_footer(path)?;
    let mut ix = vec![0u8; ix_len as usize];
    file.read_exact_at(&mut ix, ix_off).map_err(io_err(path))?;
    if crc32c(&ix) != ix_crc {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: "index checksum mismatch".into(),
        });
    }
    Ok(RawIndex {
        file,
        size,
        version,
        ix_off,
        ix,
    })
}

fn read_footer(path: &Path) -> Result<Footer> {
    let corrupt = |detail: &str| Error::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    if size < 9 + FOOTER {
        return Err(corrupt("file too short"));
    }
    let mut footer = [0u8; FOOTER as usize];
    file.read_exact_at(&mut footer, size - FOOTER)
        .map_err(io_err(path))?;
    let mut fr = ByteReader::new(&footer);
    let ix_off = fr.u64_le()?;
    let ix_len = fr.u64_le()?;
    let ix_crc = fr.u32_le()?;
    let version = match fr.bytes(8)? {
        m if m == MAGIC => VERSION,
        m if m == MAGIC_V3 => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        m if m.starts_with(b"SLWSEG") => {
            return Err(corrupt(
                "segment written by a newer version of the store (unknown format)",
            ));
        }
        _ => return Err(corrupt("bad footer magic")),
    };
    if ix_off < 9 || ix_off.checked_add(ix_len) != Some(size - FOOTER) {
        return Err(corrupt("bad index position"));
    }
    Ok(Footer {
        file,
        size,
        version,
        ix_off,
        ix_len,
        ix_crc,
    })
}

/// Opens a segment and decodes its index (the segments it replaces are read by
/// [`replaces`] before any segment is opened).
pub(crate) fn open(path: &Path, seq: u64) -> Result<(SegmentFile, Vec<IndexEntry>)> {
    let corrupt = |detail: &str| Error::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let RawIndex {
        file,
        size,
        version,
        ix_off,
        ix,
    } = read_index(path)?;
    let parse = || -> Result<_> {
        let mut r = ByteReader::new(&ix);
        let header = read_header(&mut r)?;
        let mint = r.varint()?;
        let maxt = r.varint()?;
        let nsym = r.len()?;
        let mut table = Vec::with_capacity(nsym);
        for _ in 0..nsym {
            table.push(r.string()?);
        }
        let sym = |i: u64| -> Result<&String> {
            table
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .ok_or(Error::CorruptChunk("bad symbol reference"))
        };
        let n = r.len()?;
        let mut entries = Vec::with_capacity(n);
        // Format 3: blobs follow each other from just after the header.
        let mut next_offset = 9u64;
        for _ in 0..n {
            let npairs = r.len()?;
            let mut pairs = Vec::with_capacity(npairs);
            for _ in 0..npairs {
                // Borrowed from the symbol table: the label set copies them once, packed.
                pairs.push((sym(r.uvarint()?)?.as_str(), sym(r.uvarint()?)?.as_str()));
            }
            let labels =
                Labels::build(pairs).map_err(|_| Error::CorruptChunk("invalid label set"))?;
            let kind = ValueKind::from_u8(r.u8()?).ok_or(Error::CorruptChunk("bad value kind"))?;
            let offset = if version >= 3 {
                next_offset
            } else {
                r.uvarint()?
            };
            let len =
                u32::try_from(r.uvarint()?).map_err(|_| Error::CorruptChunk("bad blob length"))?;
            next_offset = offset.saturating_add(u64::from(len));
            let crc = r.u32_le()?;
            let (emint, emaxt) = if version >= 3 {
                let emint = mint.wrapping_add(r.uvarint()? as i64);
                (emint, emint.wrapping_add(r.uvarint()? as i64))
            } else {
                (r.varint()?, r.varint()?)
            };
            let last = r.u64_le()?;
            let samples = r.uvarint()?;
            if offset < 9 || offset.saturating_add(u64::from(len)) > ix_off {
                return Err(Error::CorruptChunk("blob outside the data section"));
            }
            entries.push(IndexEntry {
                labels,
                kind,
                offset,
                len,
                crc,
                mint: emint,
                maxt: emaxt,
                last,
                samples,
            });
        }
        Ok((header, mint, maxt, entries))
    };
    let (header, mint, maxt, entries) = parse().map_err(|e| corrupt(&e.to_string()))?;
    Ok((
        SegmentFile {
            path: path.to_path_buf(),
            file,
            kind: header.kind,
            version,
            seq,
            mint,
            maxt,
            size,
            samples: entries.iter().map(|e| e.samples).sum(),
            order: header.order,
            level: header.level,
        },
        entries,
    ))
}

/// Writes a one-series rollup segment in format 1, as the previous version did.
#[cfg(test)]
pub(crate) fn write_v1_rollup(
    dir: &Path,
    kind: SegKind,
    seq: u64,
    labels: &Labels,
    vkind: ValueKind,
    buckets: &[crate::rollup::Bucket],
) {
    let mut w = SegmentWriter::create(dir, kind, seq, (seq, 0), Vec::new()).unwrap();
    let span = Span {
        mint: buckets[0].first_t,
        maxt: buckets[buckets.len() - 1].last_t,
        last: buckets[buckets.len() - 1].last.to_bits(),
        samples: buckets.iter().map(|b| b.count).sum(),
    };
    w.add(labels, vkind, span, &crate::rollup::encode_v1(buckets))
        .unwrap();
    w.finish_as(1).unwrap();
}

#[cfg(test)]
pub(crate) type TestSeries = (Labels, ValueKind, Vec<(i64, u64)>);

/// Writes a raw segment in format 2 (absolute index entries, chunks without binary
/// value columns), as the previous version did. `series`: labels, kind and the
/// samples of each series, in label order; every series' samples go into one chunk.
#[cfg(test)]
pub(crate) fn write_v2_raw(dir: &Path, seq: u64, series: &[TestSeries]) {
    let mut w = SegmentWriter::create(dir, SegKind::Raw, seq, (seq, 0), Vec::new()).unwrap();
    for (labels, vkind, samples) in series {
        let mut a = crate::chunk::Appender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        // The open-chunk (XOR) format: what format 2 could hold.
        let bytes = a.to_bytes();
        let mut blob = Vec::new();
        let (mint, maxt) = (samples[0].0, samples[samples.len() - 1].0);
        put_varint(&mut blob, mint);
        put_varint(&mut blob, maxt.wrapping_sub(mint));
        put_bytes(&mut blob, &bytes);
        let span = Span {
            mint,
            maxt,
            last: samples[samples.len() - 1].1,
            samples: samples.len() as u64,
        };
        w.add(labels, *vkind, span, &blob).unwrap();
    }
    w.finish_as(2).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_open_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), SegKind::Raw, 7, (3, 0), vec![3, 4]).unwrap();
        let l = Labels::with_name("up", [("job", "a")]).unwrap();
        w.add(
            &l,
            ValueKind::Float,
            Span {
                mint: 10,
                maxt: 20,
                last: 5,
                samples: 2,
            },
            b"hello",
        )
        .unwrap();
        let (seg, entries) = w.finish().unwrap();
        assert_eq!(seg.path.file_name().unwrap(), "raw-0000000000000007.seg");
        let (seg2, entries2) = open(&seg.path, 7).unwrap();
        assert_eq!(replaces(&seg.path, |_| true).unwrap(), vec![3, 4]);
        assert_eq!(replaces(&seg.path, |s| s == 4).unwrap(), vec![4]);
        assert!(replaces(&seg.path, |_| false).unwrap().is_empty());
        // A damaged index is only read whole (and refused) when it names a present
        // segment: nothing is deleted on its word.
        let good = std::fs::read(&seg.path).unwrap();
        let mut bad = good.clone();
        let at = bad.len() - FOOTER as usize - 1;
        bad[at] ^= 0x40;
        std::fs::write(&seg.path, &bad).unwrap();
        assert!(replaces(&seg.path, |_| false).unwrap().is_empty());
        let err = replaces(&seg.path, |_| true).unwrap_err().to_string();
        assert!(err.contains("index checksum mismatch"), "{err}");
        std::fs::write(&seg.path, &good).unwrap();
        assert_eq!((seg2.mint, seg2.maxt), (10, 20));
        assert_eq!(entries2[0].labels, entries[0].labels);
        let e = &entries2[0];
        assert_eq!(seg2.read_blob(e.offset, e.len, e.crc).unwrap(), b"hello");
        assert!(seg2.read_blob(e.offset, e.len, e.crc ^ 1).is_err());
        // Truncated or garbage files give errors.
        let bytes = std::fs::read(&seg.path).unwrap();
        for cut in [0, 5, 20, bytes.len() - 1] {
            std::fs::write(&seg.path, &bytes[..cut]).unwrap();
            assert!(open(&seg.path, 7).is_err());
        }
        // Formats 2 and 1 have absolute offsets and time ranges in the index.
        for version in [1, 2, 3, 4] {
            let mut w = SegmentWriter::create(dir.path(), SegKind::Raw, 8, (8, 0), vec![]).unwrap();
            for (i, l) in [&l, &Labels::with_name("up", [("job", "b")]).unwrap()]
                .into_iter()
                .enumerate()
            {
                let i = i as i64;
                let span = Span {
                    mint: -5 + i,
                    maxt: 1 << 40,
                    last: 9,
                    samples: 3,
                };
                w.add(l, ValueKind::Integer, span, &[i as u8; 3]).unwrap();
            }
            w.finish_as(version).unwrap();
            let (old, entries) = open(&dir.path().join(file_name(SegKind::Raw, 8)), 8).unwrap();
            assert_eq!(old.version, version);
            assert_eq!((old.mint, old.maxt), (-5, 1 << 40));
            let e = &entries[1];
            assert_eq!(
                (e.offset, e.len, e.mint, e.maxt, e.samples),
                (12, 3, -4, 1 << 40, 3)
            );
            assert_eq!(old.read_blob(e.offset, e.len, e.crc).unwrap(), [1, 1, 1]);
        }
        assert_eq!(
            parse_name("1h-0000000000000012.seg"),
            Some((SegKind::Rollup(Resolution::Hour), 12))
        );
    }
}
