//! The write-ahead log: framed, CRC-checked records appended with one `write(2)`
//! per batch and fsynced in groups, in generations `wal-<n>`; `checkpoint-<n>` holds
//! the head as it was when generation `n` started, so older generations can go.
//!
//! Frame: `payload_len(u32 LE) crc32c(u32 LE) payload`, payload starting with a
//! record type. Reading stops at the first frame that is short or fails its CRC:
//! that is a torn tail from a crash, and it is dropped (opening starts a new
//! generation and a new checkpoint, so the torn file is deleted).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bits::{ByteReader, put_bytes, put_uvarint, put_varint};
use crate::crc::crc32c;
use crate::error::{Error, Result, io_err};
use crate::labels::Labels;
use crate::types::{Metadata, MetricType, ValueKind};

const MAX_RECORD: u32 = 1 << 30;

/// Capacity a [`Frames`] keeps when cleared: enough for a round of ~20,000 samples. A
/// larger batch (the first round after the series appear: every series record) gets its
/// buffer freed, rather than held for the rest of the run (issue 16: 5.6 MiB).
const KEEP_BYTES: usize = 1 << 20;

/// A decoded WAL record.
#[derive(Debug)]
pub(crate) enum Record {
    /// A series definition: WAL-local reference, kind, labels.
    Series {
        r: u64,
        kind: ValueKind,
        labels: Labels,
    },
    /// Samples: `(series ref, t, value bits)`.
    Samples(Vec<(u64, i64, u64)>),
    /// A chunk of samples of one series (written by checkpoints).
    Chunk { r: u64, bytes: Vec<u8> },
    /// Metric metadata.
    Meta { name: String, meta: Metadata },
}

const T_SERIES: u8 = 1;
const T_SAMPLES: u8 = 2;
const T_CHUNK: u8 = 3;
const T_META: u8 = 4;

/// Builds framed records into one buffer.
#[derive(Default)]
pub(crate) struct Frames {
    pub(crate) buf: Vec<u8>,
    start: usize,
    /// Timestamp of the previous sample in the open samples record.
    prev_t: i64,
}

impl Frames {
    /// Empties the buffer, giving back capacity beyond [`KEEP_BYTES`].
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.buf.shrink_to(KEEP_BYTES);
    }

    fn begin(&mut self, t: u8) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; 8]);
        self.buf.push(t);
    }

    fn end(&mut self) {
        let payload = &self.buf[self.start + 8..];
        let len = (payload.len() as u32).to_le_bytes();
        let crc = crc32c(payload).to_le_bytes();
        self.buf[self.start..self.start + 4].copy_from_slice(&len);
        self.buf[self.start + 4..self.start + 8].copy_from_slice(&crc);
    }

    pub(crate) fn series(&mut self, r: u64, kind: ValueKind, labels: &Labels) {
        self.begin(T_SERIES);
        put_uvarint(&mut self.buf, r);
        self.buf.push(kind.to_u8());
        labels.encode(&mut self.buf);
        self.end();
    }

    pub(crate) fn chunk(&mut self, r: u64, bytes: &[u8]) {
        self.begin(T_CHUNK);
        put_uvarint(&mut self.buf, r);
        put_bytes(&mut self.buf, bytes);
        self.end();
    }

    pub(crate) fn meta(&mut self, name: &str, meta: &Metadata) {
        self.begin(T_META);
        put_bytes(&mut self.buf, name.as_bytes());
        self.buf.push(meta.metric_type.to_u8());
        put_bytes(&mut self.buf, meta.help.as_bytes());
        put_bytes(&mut self.buf, meta.unit.as_bytes());
        self.end();
    }

    /// Starts a samples record; call [`Frames::sample`] then [`Frames::end_samples`].
    pub(crate) fn begin_samples(&mut self) {
        self.begin(T_SAMPLES);
        self.prev_t = 0;
    }

    /// Adds a sample; its timestamp is stored as a delta to the previous one.
    #[inline]
    pub(crate) fn sample(&mut self, r: u64, t: i64, bits: u64) {
        put_uvarint(&mut self.buf, r);
        put_varint(&mut self.buf, t.wrapping_sub(self.prev_t));
        self.prev_t = t;
        self.buf.extend_from_slice(&bits.to_le_bytes());
    }

    /// Closes the samples record, or removes it when it holds no samples.
    pub(crate) fn end_samples(&mut self) {
        if self.buf.len() == self.start + 9 {
            self.buf.truncate(self.start);
        } else {
            self.end();
        }
    }
}

fn decode(payload: &[u8]) -> Result<Record> {
    let mut r = ByteReader::new(payload);
    match r.u8()? {
        T_SERIES => {
            let re = r.uvarint()?;
            let kind = ValueKind::from_u8(r.u8()?).ok_or(Error::CorruptChunk("bad value kind"))?;
            let labels = Labels::decode(&mut r)?;
            Ok(Record::Series {
                r: re,
                kind,
                labels,
            })
        }
        T_SAMPLES => {
            let mut v = Vec::with_capacity(r.remaining() / 10);
            let mut t = 0i64;
            while !r.is_empty() {
                let re = r.uvarint()?;
                t = t.wrapping_add(r.varint()?);
                v.push((re, t, r.u64_le()?));
            }
            Ok(Record::Samples(v))
        }
        T_CHUNK => Ok(Record::Chunk {
            r: r.uvarint()?,
            bytes: r.len_bytes()?.to_vec(),
        }),
        T_META => {
            let name = r.string()?;
            let metric_type =
                MetricType::from_u8(r.u8()?).ok_or(Error::CorruptChunk("bad metric type"))?;
            let help = r.string()?;
            let unit = r.string()?;
            Ok(Record::Meta {
                name,
                meta: Metadata {
                    metric_type,
                    help,
                    unit,
                },
            })
        }
        _ => Err(Error::CorruptChunk("unknown wal record type")),
    }
}

/// Reads every intact record; a torn or corrupt tail ends the log.
/// Returns the records and the length of the intact prefix.
#[cfg(test)]
pub(crate) fn read(path: &Path) -> Result<(Vec<Record>, u64)> {
    let mut out = Vec::new();
    let valid = for_each(path, |rec| out.push(rec))?;
    Ok((out, valid))
}

/// Streams every intact record to `f`, in order; a torn or corrupt tail ends the log.
/// Returns the length of the intact prefix (0 for a missing file).
///
/// The file is read through a small buffer and each record is handed over as soon as
/// it is decoded, so replay never holds the whole log or all its records at once: on
/// open those temporary buffers would be freed after the head's long-lived allocations
/// were made above them, and glibc keeps such freed memory resident (issue 16).
pub(crate) fn for_each(path: &Path, mut f: impl FnMut(Record)) -> Result<u64> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(path)(e)),
    };
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut reader = std::io::BufReader::with_capacity(64 << 10, file);
    let mut payload = Vec::new();
    let mut pos = 0u64;
    loop {
        let mut head = [0u8; 8];
        if size - pos < 8 || !read_full(&mut reader, &mut head, path)? {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD || u64::from(len) > size - pos - 8 {
            break;
        }
        payload.clear();
        payload.resize(len as usize, 0);
        if !read_full(&mut reader, &mut payload, path)? || crc32c(&payload) != crc {
            break;
        }
        match decode(&payload) {
            Ok(rec) => f(rec),
            Err(e) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("record at offset {pos}: {e}"),
                });
            }
        }
        pos += 8 + u64::from(len);
    }
    Ok(pos)
}

/// Fills `buf`; `false` if the file ends first.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8], path: &Path) -> Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The file name of WAL generation `generation`.
pub(crate) fn wal_name(generation: u64) -> String {
    format!("wal-{generation:016}")
}

/// The file name of the checkpoint that starts WAL generation `generation`.
pub(crate) fn checkpoint_name(generation: u64) -> String {
    format!("checkpoint-{generation:016}")
}

/// WAL and checkpoint files in `dir`, each sorted by generation.
pub(crate) struct Files {
    pub(crate) wals: Vec<(u64, PathBuf)>,
    pub(crate) checkpoints: Vec<(u64, PathBuf)>,
}

impl Files {
    pub(crate) fn list(dir: &Path) -> Result<Files> {
        let mut f = Files {
            wals: Vec::new(),
            checkpoints: Vec::new(),
        };
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(g) = name.strip_prefix("wal-").and_then(|g| g.parse().ok()) {
                f.wals.push((g, entry.path()));
            } else if let Some(g) = name
                .strip_prefix("checkpoint-")
                .and_then(|g| g.parse().ok())
            {
                f.checkpoints.push((g, entry.path()));
            }
        }
        f.wals.sort();
        f.checkpoints.sort();
        Ok(f)
    }

    pub(crate) fn max_generation(&self) -> u64 {
        let w = self.wals.last().map_or(0, |w| w.0);
        let c = self.checkpoints.last().map_or(0, |c| c.0);
        w.max(c)
    }

    /// The files to replay, in order: the newest checkpoint, then every WAL
    /// generation from the checkpoint's on (all of them without a checkpoint).
    /// Each path comes with whether it is a checkpoint.
    pub(crate) fn replay_order(&self) -> Vec<(PathBuf, bool)> {
        let from = self.checkpoints.last().map_or(0, |c| c.0);
        let mut v: Vec<(PathBuf, bool)> = self
            .checkpoints
            .last()
            .map(|c| (c.1.clone(), true))
            .into_iter()
            .collect();
        v.extend(
            self.wals
                .iter()
                .filter(|w| w.0 >= from)
                .map(|w| (w.1.clone(), false)),
        );
        v
    }
}

/// Writes checkpoint `generation` atomically (temp file, fsync, rename, dir fsync)
/// and returns its size.
pub(crate) fn write_checkpoint(dir: &Path, generation: u64, frames: &[u8]) -> Result<u64> {
    let path = dir.join(checkpoint_name(generation));
    let tmp = dir.join(format!("{}.tmp", checkpoint_name(generation)));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(frames).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    crate::segment::sync_dir(dir)?;
    Ok(frames.len() as u64)
}

/// Deletes WAL and checkpoint files of generations before `generation`.
pub(crate) fn remove_before(dir: &Path, generation: u64) -> Result<()> {
    let files = Files::list(dir)?;
    for (g, p) in files.wals.iter().chain(&files.checkpoints) {
        if *g < generation {
            std::fs::remove_file(p).map_err(io_err(p))?;
        }
    }
    Ok(())
}

/// The open log file of one generation.
pub(crate) struct Wal {
    pub(crate) generation: u64,
    path: PathBuf,
    file: File,
    pub(crate) len: u64,
    pub(crate) synced_len: u64,
    pub(crate) last_sync: Instant,
}

impl Wal {
    /// Creates generation `generation` (its directory entry fsynced).
    pub(crate) fn create(dir: &Path, generation: u64) -> Result<Wal> {
        let path = dir.join(wal_name(generation));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        crate::segment::sync_dir(dir)?;
        Ok(Wal {
            generation,
            path,
            file,
            len: 0,
            synced_len: 0,
            last_sync: Instant::now(),
        })
    }

    /// Appends framed records with one write.
    pub(crate) fn write(&mut self, frames: &[u8]) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        self.file.write_all(frames).map_err(io_err(&self.path))?;
        self.len += frames.len() as u64;
        Ok(())
    }

    /// fsyncs what was written so far.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if self.synced_len != self.len {
            self.file.sync_data().map_err(io_err(&self.path))?;
            self.synced_len = self.len;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    #[cfg(test)]
    /// Test hook: loses everything written since the last fsync, as a power cut would.
    pub(crate) fn lose_unsynced(&self) -> Result<()> {
        self.file
            .set_len(self.synced_len)
            .map_err(io_err(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_frames() -> Frames {
        let mut f = Frames::default();
        f.series(1, ValueKind::Float, &Labels::with_name("up", []).unwrap());
        f.begin_samples();
        f.sample(1, 10, 5);
        f.sample(1, 20, 6);
        f.end_samples();
        f.begin_samples();
        f.end_samples();
        f
    }

    #[test]
    fn torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = sample_frames();
        let full = f.buf.clone();
        write_checkpoint(dir.path(), 3, &full).unwrap();
        let path = dir.path().join(checkpoint_name(3));
        let (recs, len) = read(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(len, full.len() as u64);
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (recs, _) = read(&path).unwrap();
            assert!(recs.len() < 2);
        }
        let mut garbage = full.clone();
        garbage.extend_from_slice(&[0xff; 37]);
        std::fs::write(&path, &garbage).unwrap();
        assert_eq!(read(&path).unwrap().0.len(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }
}
