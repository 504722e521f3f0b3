//! The database: options, open and recovery, batched appends, WAL checkpoints,
//! metadata and statistics. Flush, compaction and retention are in `maint.rs`,
//! queries in `query.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::chunk;
use crate::error::{Error, Result, io_err};
use crate::head::{Appended, CutPolicy, DiskRef, MemSeries};
use crate::index::{Index, SeriesByLabels, SeriesId};
use crate::labels::{self, BuildPassThrough, Labels};
use crate::segment::{self, SegKind, SegmentFile};
use crate::types::{Metadata, Point, ValueKind};
use crate::wal::{self, Frames, Record, Wal};

pub(crate) const SHARDS: usize = 16;
const DAY_MS: i64 = 86_400_000;

/// Tuning knobs; [`Options::default`] gives the documented defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most series the database will hold; more gives [`Error::TooManySeries`]. Default 1,000,000.
    pub max_series: usize,
    /// Group fsync interval of the WAL. Default 1 s.
    pub sync_interval: Duration,
    /// How often [`Db::tick`] flushes closed chunks to segments. Default 5 min.
    pub flush_interval: Duration,
    /// Raw data retention in ms. Default 15 days.
    pub retention_ms: i64,
    /// Retention of the 1-minute rollups in ms. Default 90 days.
    pub rollup_minute_retention_ms: i64,
    /// Retention of the 1-hour rollups in ms. Default 2 years.
    pub rollup_hour_retention_ms: i64,
    /// Samples per chunk before it is closed. Default 240 (40 min at 10 s).
    pub chunk_samples: u32,
    /// Longest time span of one chunk in ms. Default 2 h.
    pub chunk_span_ms: i64,
    /// Compaction windows in ms for raw, 1 m and 1 h segments: segments whose start
    /// falls into the same window are merged. Defaults 1 day, 30 days, 1 year.
    ///
    /// Every series keeps a ~56-byte reference per segment holding its data, so the
    /// windows bound memory: with the default retention about 16 raw, 4 one-minute and
    /// 3 one-hour segments, plus up to 15 per level (a few levels) for windows still filling.
    pub compaction_windows_ms: [i64; 3],
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_series: 1_000_000,
            sync_interval: Duration::from_secs(1),
            flush_interval: Duration::from_secs(300),
            retention_ms: 15 * DAY_MS,
            rollup_minute_retention_ms: 90 * DAY_MS,
            rollup_hour_retention_ms: 730 * DAY_MS,
            chunk_samples: 240,
            chunk_span_ms: 2 * 3_600_000,
            compaction_windows_ms: [DAY_MS, 30 * DAY_MS, 365 * DAY_MS],
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let mut errs = Vec::new();
        if self.chunk_samples == 0 {
            errs.push("chunk_samples must be at least 1");
        }
        if self.chunk_span_ms <= 0 {
            errs.push("chunk_span_ms must be positive");
        }
        if self.compaction_windows_ms.iter().any(|&w| w <= 0) {
            errs.push("compaction windows must be positive");
        }
        if self.retention_ms <= 0
            || self.rollup_minute_retention_ms <= 0
            || self.rollup_hour_retention_ms <= 0
        {
            errs.push("retention periods must be positive");
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidOptions(errs.join("; ")))
        }
    }

    pub(crate) fn cut(&self) -> CutPolicy {
        CutPolicy {
            max_samples: self.chunk_samples,
            max_span_ms: self.chunk_span_ms,
        }
    }
}

/// Why samples of a batch were not stored, by count; [`AppendReport::errors`] has details.
#[derive(Debug, Default)]
pub struct AppendReport {
    /// Samples stored.
    pub accepted: usize,
    /// Samples identical to the series' last sample (same timestamp and value), ignored.
    pub duplicates: usize,
    /// Rejected samples: index in the batch and the reason.
    pub errors: Vec<(usize, Error)>,
}

impl AppendReport {
    /// The first rejection as an error, for callers that treat any rejection as failure.
    pub fn into_result(self) -> Result<usize> {
        match self.errors.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.accepted),
        }
    }
}

/// Counters and sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Series known (in memory or on disk).
    pub series: usize,
    /// Samples held in memory (open and closed chunks not yet flushed).
    pub head_samples: u64,
    /// Samples accepted since open.
    pub samples_appended: u64,
    /// Samples rejected as out of order since open.
    pub rejected_out_of_order: u64,
    /// Samples rejected for repeating a timestamp with another value since open.
    pub rejected_duplicate_timestamp: u64,
    /// Samples rejected for a value-kind conflict since open.
    pub rejected_type_conflict: u64,
    /// Samples rejected because the series limit was reached since open.
    pub rejected_too_many_series: u64,
    /// Samples rejected as older than the retention floor since open.
    pub rejected_too_old: u64,
    /// Identical repeated samples ignored since open.
    pub duplicates_ignored: u64,
    /// Segment files.
    pub segments: usize,
    /// Samples in raw segment files.
    pub raw_samples_on_disk: u64,
    /// Bytes of raw segment files (divide by `raw_samples_on_disk` for bytes/sample).
    pub raw_bytes_on_disk: u64,
    /// Bytes of rollup segment files.
    pub rollup_bytes_on_disk: u64,
    /// Bytes of the write-ahead log (current generation plus its checkpoint).
    pub wal_bytes: u64,
    /// Estimated bytes of memory held by series, chunks and the index.
    pub bytes_in_memory: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) appended: AtomicU64,
    pub(crate) out_of_order: AtomicU64,
    pub(crate) dup_ts: AtomicU64,
    pub(crate) type_conflict: AtomicU64,
    pub(crate) too_many: AtomicU64,
    pub(crate) too_old: AtomicU64,
    pub(crate) dups: AtomicU64,
}

pub(crate) struct Registry {
    pub(crate) by_labels: SeriesByLabels,
    pub(crate) index: Index,
    pub(crate) next_id: SeriesId,
    pub(crate) metadata: BTreeMap<String, Metadata>,
}

/// One shard's series, by id. A map rather than a vector indexed by id: ids are never
/// reused, so a vector would keep a slot for every series that ever expired. The series
/// are boxed: a table keeps up to half of its slots empty after it grows, and an empty
/// slot then costs a pointer instead of a whole `MemSeries` (~220 bytes; 7.9 MiB of
/// tables for 18,500 series unboxed, issue 16).
#[derive(Default)]
pub(crate) struct Shard {
    pub(crate) series: HashMap<SeriesId, Box<MemSeries>, BuildPassThrough>,
}

impl Shard {
    pub(crate) fn get(&self, id: SeriesId) -> Option<&MemSeries> {
        self.series.get(&id).map(Box::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: SeriesId) -> Option<&mut MemSeries> {
        self.series.get_mut(&id).map(Box::as_mut)
    }

    fn insert(&mut self, id: SeriesId, s: MemSeries) {
        self.series.insert(id, Box::new(s));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SeriesId, &MemSeries)> {
        self.series.iter().map(|(&id, s)| (id, &**s))
    }
}

pub(crate) struct WalState {
    pub(crate) wal: Wal,
    pub(crate) frames: Frames,
    /// Bit per series id: its `Series` record is in the current generation's replay
    /// files (its checkpoint or the generation itself). A series whose data is all in
    /// segments is left out of a checkpoint (the segment index has its labels); its
    /// record goes into the WAL with its next sample instead.
    pub(crate) logged: Vec<u64>,
}

impl WalState {
    fn is_logged(&self, id: SeriesId) -> bool {
        self.logged
            .get(id as usize / 64)
            .is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    fn set_logged(&mut self, id: SeriesId, on: bool) {
        let i = id as usize / 64;
        if i >= self.logged.len() {
            self.logged.resize(i + 1, 0);
        }
        if on {
            self.logged[i] |= 1 << (id % 64);
        } else {
            self.logged[i] &= !(1 << (id % 64));
        }
    }
}

pub(crate) struct Maint {
    pub(crate) last_flush: Instant,
    /// Raw segments whose complete window's hour rollups are written
    /// (`Db::roll_up_complete_windows`).
    pub(crate) hours_checked: std::collections::HashSet<u64>,
}

/// An embedded time-series database. `Send + Sync`: share it behind an `Arc`.
//
// Lock order (never take an earlier one while holding a later one):
// maint → wal → registry → one shard → segments.
pub struct Db {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) wal: Mutex<WalState>,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) shards: Box<[Mutex<Shard>]>,
    pub(crate) segments: Mutex<Vec<Arc<SegmentFile>>>,
    pub(crate) maint: Mutex<Maint>,
    pub(crate) next_seq: AtomicU64,
    pub(crate) retention_floor: AtomicI64,
    pub(crate) counters: Counters,
    pub(crate) checkpoint_bytes: AtomicU64,
    /// Holds an exclusive `flock` on `dir/LOCK` while open.
    _lock: std::fs::File,
}

impl Drop for Db {
    /// Best-effort fsync of the WAL; a caller that needs to know uses [`Db::sync`].
    fn drop(&mut self) {
        let _ = lock(&self.wal).wal.sync();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}

/// Shard of a series id.
pub(crate) fn shard_of(id: SeriesId) -> usize {
    id as usize % SHARDS
}

impl Db {
    /// Opens (creating if needed) the database in `dir`: loads segments, replays the
    /// WAL (dropping a torn tail), and writes a fresh WAL checkpoint.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            } else if let Some((_, seq)) = segment::parse_name(&name) {
                found.push((seq, entry.path()));
            }
        }
        found.sort();
        // Which segments a later one replaces (a compaction that crashed before deleting
        // its inputs), from the headers alone; then the live ones are loaded one at a
        // time, so that only one segment's index is decoded in memory at once.
        let mut superseded = std::collections::HashSet::new();
        let present: std::collections::HashSet<u64> = found.iter().map(|(s, _)| *s).collect();
        for (_, path) in &found {
            superseded.extend(segment::replaces(path, |seq| present.contains(&seq))?);
        }
        let max_seq = found.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let wal_files = wal::Files::list(&dir)?;
        // A new generation receives appends; the checkpoint below starts the next one.
        let first = Wal::create(&dir, wal_files.max_generation() + 1)?;
        let db = Db {
            dir: dir.clone(),
            opts,
            wal: Mutex::new(WalState {
                wal: first,
                frames: Frames::default(),
                logged: Vec::new(),
            }),
            registry: RwLock::new(Registry {
                by_labels: SeriesByLabels::default(),
                index: Index::default(),
                next_id: 0,
                metadata: BTreeMap::new(),
            }),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            segments: Mutex::new(Vec::new()),
            maint: Mutex::new(Maint {
                last_flush: Instant::now(),
                hours_checked: std::collections::HashSet::new(),
            }),
            next_seq: AtomicU64::new(max_seq + 1),
            retention_floor: AtomicI64::new(i64::MIN),
            counters: Counters::default(),
            checkpoint_bytes: AtomicU64::new(0),
            _lock: lock_file,
        };
        for (seq, path) in &found {
            if superseded.contains(seq) {
                std::fs::remove_file(path).map_err(io_err(path))?;
                continue;
            }
            let (seg, entries) = segment::open(path, *seq)?;
            let seg = Arc::new(seg);
            for e in entries {
                let Some(id) = db.series_for_load(&e.labels, e.kind) else {
                    continue;
                };
                let mut sh = lock(&db.shards[shard_of(id)]);
                let Some(s) = sh.get_mut(id) else { continue };
                let r = DiskRef::new(seg.clone(), &e);
                if e.maxt > s.last_t {
                    s.last_t = e.maxt;
                    s.last_bits = e.last;
                }
                let list = match seg.kind {
                    SegKind::Raw => &mut s.raw,
                    SegKind::Rollup(res) => &mut s.rollups[res.index()],
                };
                list.push(r);
                list.sort_by_key(|r| r.file.order);
            }
            lock(&db.segments).push(seg);
        }
        // From here on lists grow one reference at a time (`head::push_ref`).
        for shard in db.shards.iter() {
            for s in lock(shard).series.values_mut() {
                s.raw.shrink_to_fit();
                s.rollups.iter_mut().for_each(Vec::shrink_to_fit);
            }
        }
        db.replay(&wal_files.replay_order())?;
        db.checkpoint(lock(&db.wal))?;
        Ok(db)
    }

    /// Finds or creates a series while loading; `None` past the series limit.
    fn series_for_load(&self, labels: &Labels, kind: ValueKind) -> Option<SeriesId> {
        let mut reg = write(&self.registry);
        if let Some(id) = reg.by_labels.get(labels) {
            return Some(id);
        }
        self.create_series(&mut reg, labels, kind).ok()
    }

    fn create_series(
        &self,
        reg: &mut Registry,
        labels: &Labels,
        kind: ValueKind,
    ) -> Result<SeriesId> {
        if reg.by_labels.len() >= self.opts.max_series {
            return Err(Error::TooManySeries {
                limit: self.opts.max_series,
            });
        }
        let id = reg.next_id;
        reg.next_id = id.checked_add(1).ok_or(Error::TooManySeries {
            limit: self.opts.max_series,
        })?;
        reg.by_labels.insert(labels.clone(), id);
        reg.index.add(id, labels);
        lock(&self.shards[shard_of(id)]).insert(id, MemSeries::new(labels.clone(), kind));
        Ok(id)
    }

    /// Applies the WAL files in order, each record as it is read (see [`wal::for_each`]).
    fn replay(&self, files: &[(PathBuf, bool)]) -> Result<()> {
        let cut = self.opts.cut();
        let mut refs: HashMap<u64, (SeriesId, ValueKind)> = HashMap::new();
        let apply = |(id, kind): (SeriesId, ValueKind), t: i64, bits: u64| {
            let mut sh = lock(&self.shards[shard_of(id)]);
            if let Some(s) = sh.get_mut(id) {
                // Samples already in a segment are older than the series' last timestamp
                // and are rejected here: that is how a crash between a flush and its
                // checkpoint avoids duplicates. A kind other than the series' is rejected.
                let _ = s.append(t, kind, bits, cut);
            }
        };
        let mut apply_record = |rec| match rec {
            Record::Series { r, kind, labels } => {
                if let Some(id) = self.series_for_load(&labels, kind) {
                    refs.insert(r, (id, kind));
                }
            }
            Record::Samples(samples) => {
                for (r, t, bits) in samples {
                    if let Some(&series) = refs.get(&r) {
                        apply(series, t, bits);
                    }
                }
            }
            Record::Chunk { r, bytes } => {
                if let (Some(&series), Ok(samples)) = (refs.get(&r), chunk::decode(&bytes)) {
                    for (t, bits) in samples {
                        apply(series, t, bits);
                    }
                }
            }
            Record::Meta { name, meta } => {
                write(&self.registry).metadata.insert(name, meta);
            }
        };
        for (path, is_checkpoint) in files {
            let valid = wal::for_each(path, &mut apply_record)?;
            // A checkpoint is renamed into place only when complete, so unlike a WAL
            // generation it cannot have a torn tail: a bad record is corruption.
            let size = std::fs::metadata(path).map_err(io_err(path))?.len();
            if *is_checkpoint && valid != size {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    detail: format!("bad record at offset {valid}"),
                });
            }
        }
        Ok(())
    }

    /// Checkpoints the WAL. Under the WAL lock (no append in flight) it encodes the
    /// head (metadata, every series with in-memory chunks or without any segment data,
    /// and the chunks), fsyncs the current WAL generation and switches appends to a new
    /// one; then, with appends running again, it writes `checkpoint-<new generation>`
    /// and deletes older generations. Series whose data is all in segments are left
    /// out: opening finds them in the segment index, and their next append logs them
    /// again ([`WalState::logged`]).
    /// Replay is "newest checkpoint, then WAL generations from its own on".
    /// Returns how long appends were blocked.
    pub(crate) fn checkpoint(&self, mut ws: MutexGuard<'_, WalState>) -> Result<Duration> {
        let started = Instant::now();
        let mut f = Frames::default();
        {
            let reg = read(&self.registry);
            for (name, meta) in &reg.metadata {
                f.meta(name, meta);
            }
        }
        ws.logged.clear();
        for shard in self.shards.iter() {
            let sh = lock(shard);
            for (id, s) in sh.iter() {
                let chunks = s.head_chunks();
                let on_disk = !s.raw.is_empty() || s.rollups.iter().any(|r| !r.is_empty());
                if chunks.is_empty() && on_disk {
                    continue;
                }
                ws.set_logged(id, true);
                f.series(u64::from(id), s.kind, &s.labels);
                for (bytes, _, _) in chunks {
                    f.chunk(u64::from(id), &bytes);
                }
            }
        }
        ws.wal.sync()?;
        let generation = ws.wal.generation + 1;
        ws.wal = Wal::create(&self.dir, generation)?;
        drop(ws);
        let pause = started.elapsed();
        let size = wal::write_checkpoint(&self.dir, generation, &f.buf)?;
        self.checkpoint_bytes.store(size, Ordering::Relaxed);
        wal::remove_before(&self.dir, generation)?;
        Ok(pause)
    }

    /// Appends a batch. Each sample is stored or rejected on its own (see
    /// [`AppendReport`]); `Err` means the WAL write failed.
    ///
    /// Rules: a sample older than its series' newest sample is rejected
    /// ([`Error::OutOfOrder`]); one at the newest timestamp is ignored if its value is
    /// bitwise identical and rejected otherwise ([`Error::DuplicateTimestamp`]); the
    /// first sample of a series fixes its value kind ([`Error::TypeConflict`]).
    /// On return the accepted samples are in the OS page cache via one `write(2)`;
    /// the WAL is fsynced when [`Options::sync_interval`] has passed since the last fsync.
    pub fn append(&self, points: &[Point]) -> Result<AppendReport> {
        let mut report = AppendReport::default();
        let mut guard = lock(&self.wal);
        let ws = &mut *guard;
        ws.frames.clear();
        const NONE: SeriesId = SeriesId::MAX;
        let mut ids: Vec<SeriesId> = Vec::with_capacity(points.len());
        let mut missing = Vec::new();
        {
            let reg = read(&self.registry);
            for (i, p) in points.iter().enumerate() {
                match reg.by_labels.get(&p.labels) {
                    Some(id) => ids.push(id),
                    None => {
                        ids.push(NONE);
                        missing.push(i);
                    }
                }
            }
        }
        if !missing.is_empty() {
            let mut reg = write(&self.registry);
            for i in missing {
                let p = &points[i];
                if let Some(id) = reg.by_labels.get(&p.labels) {
                    ids[i] = id;
                    continue;
                }
                match self.create_series(&mut reg, &p.labels, p.v.kind()) {
                    Ok(id) => {
                        ids[i] = id;
                        ws.frames.series(u64::from(id), p.v.kind(), &p.labels);
                        ws.set_logged(id, true);
                    }
                    Err(e) => {
                        self.counters.too_many.fetch_add(1, Ordering::Relaxed);
                        report.errors.push((i, e));
                    }
                }
            }
        }
        // Series left out of the checkpoint (all their data in segments) are logged
        // again before their first sample of this generation.
        let mut relogged = Vec::new();
        for &id in &ids {
            if id != NONE && !ws.is_logged(id) {
                let sh = lock(&self.shards[shard_of(id)]);
                if let Some(s) = sh.get(id) {
                    ws.frames.series(u64::from(id), s.kind, &s.labels);
                }
                ws.set_logged(id, true);
                relogged.push(id);
            }
        }
        // Group by shard, keeping batch order within a shard.
        let mut counts = [0usize; SHARDS + 1];
        for &id in &ids {
            if id != NONE {
                counts[shard_of(id) + 1] += 1;
            }
        }
        for s in 0..SHARDS {
            counts[s + 1] += counts[s];
        }
        let mut order = vec![0u32; counts[SHARDS]];
        let mut fill = counts;
        for (i, &id) in ids.iter().enumerate() {
            if id != NONE {
                let s = shard_of(id);
                order[fill[s]] = i as u32;
                fill[s] += 1;
            }
        }
        let floor = self.retention_floor.load(Ordering::Relaxed);
        let cut = self.opts.cut();
        ws.frames.begin_samples();
        for s in 0..SHARDS {
            let range = counts[s]..counts[s + 1];
            if range.is_empty() {
                continue;
            }
            let mut sh = lock(&self.shards[s]);
            for &i in &order[range] {
                let i = i as usize;
                let p = &points[i];
                let id = ids[i];
                if p.t < floor {
                    self.counters.too_old.fetch_add(1, Ordering::Relaxed);
                    report.errors.push((i, Error::TooOld { t: p.t, floor }));
                    continue;
                }
                let Some(series) = sh.get_mut(id) else {
                    continue;
                };
                let bits = p.v.to_bits();
                match series.append(p.t, p.v.kind(), bits, cut) {
                    Ok(Appended::Stored) => {
                        ws.frames.sample(u64::from(id), p.t, bits);
                        report.accepted += 1;
                    }
                    Ok(Appended::Duplicate) => report.duplicates += 1,
                    Err(e) => {
                        let c = match e {
                            Error::OutOfOrder { .. } => &self.counters.out_of_order,
                            Error::DuplicateTimestamp { .. } => &self.counters.dup_ts,
                            _ => &self.counters.type_conflict,
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        report.errors.push((i, e));
                    }
                }
            }
        }
        ws.frames.end_samples();
        self.counters
            .appended
            .fetch_add(report.accepted as u64, Ordering::Relaxed);
        self.counters
            .dups
            .fetch_add(report.duplicates as u64, Ordering::Relaxed);
        if let Err(e) = ws.wal.write(&ws.frames.buf) {
            for id in relogged {
                ws.set_logged(id, false);
            }
            return Err(e);
        }
        ws.frames.clear();
        if ws.wal.last_sync.elapsed() >= self.opts.sync_interval {
            ws.wal.sync()?;
        }
        report.errors.sort_by_key(|(i, _)| *i);
        Ok(report)
    }

    /// The store's own copy of `labels` when that series exists, else `labels`. A caller
    /// that keeps label sets to append with again (a cache of series) should keep this
    /// copy: [`Db::append`] then finds the series by comparing a pointer, not the labels.
    pub fn intern(&self, labels: Labels) -> Labels {
        let reg = read(&self.registry);
        match reg.by_labels.get_key_value(&labels) {
            Some((own, _)) => own.clone(),
            None => labels,
        }
    }

    /// The label set `name{pairs}` (as [`Labels::with_name`] builds it): the store's own
    /// copy when that series exists, found without building a label set, else a new one.
    /// A collector that appends the same series every round builds label sets only for
    /// new series, and [`Db::append`] finds the others by comparing a pointer.
    pub fn labels_for<'a>(
        &self,
        name: &'a str,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Labels> {
        let mut sorted: Vec<(&str, &str)> = std::iter::once((labels::METRIC_NAME, name))
            .chain(pairs)
            .filter(|(_, v)| !v.is_empty())
            .collect();
        sorted.sort_unstable();
        if let Some(own) = read(&self.registry).by_labels.find_sorted(&sorted) {
            return Ok(own.clone());
        }
        Labels::build(sorted)
    }

    /// fsyncs the WAL now.
    pub fn sync(&self) -> Result<()> {
        lock(&self.wal).wal.sync()
    }

    /// Stores type, help and unit for a metric name (logged in the WAL).
    pub fn set_metadata(&self, metric: &str, meta: Metadata) -> Result<()> {
        let mut guard = lock(&self.wal);
        let ws = &mut *guard;
        ws.frames.clear();
        ws.frames.meta(metric, &meta);
        write(&self.registry)
            .metadata
            .insert(metric.to_string(), meta);
        ws.wal.write(&ws.frames.buf)
    }

    /// Metadata of one metric name, or of all when `metric` is `None`.
    pub fn metadata(&self, metric: Option<&str>) -> Vec<(String, Metadata)> {
        let reg = read(&self.registry);
        match metric {
            Some(m) => reg
                .metadata
                .get(m)
                .map(|md| (m.to_string(), md.clone()))
                .into_iter()
                .collect(),
            None => reg
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        let (series, index_mem) = {
            let reg = read(&self.registry);
            (
                reg.by_labels.len(),
                reg.index.mem_size() + reg.by_labels.capacity() * 24,
            )
        };
        let mut head_samples = 0;
        let mut mem = index_mem as u64;
        for shard in self.shards.iter() {
            let sh = lock(shard);
            mem += (sh.series.capacity() * 16) as u64;
            for (_, s) in sh.iter() {
                head_samples += s.head_sample_count();
                mem += s.mem_size() as u64;
            }
        }
        // Lock order is WAL before segments (retention holds both): read the WAL first.
        let wal_bytes = lock(&self.wal).wal.len + self.checkpoint_bytes.load(Ordering::Relaxed);
        let segs = lock(&self.segments);
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            series,
            head_samples,
            samples_appended: get(&c.appended),
            rejected_out_of_order: get(&c.out_of_order),
            rejected_duplicate_timestamp: get(&c.dup_ts),
            rejected_type_conflict: get(&c.type_conflict),
            rejected_too_many_series: get(&c.too_many),
            rejected_too_old: get(&c.too_old),
            duplicates_ignored: get(&c.dups),
            segments: segs.len(),
            raw_samples_on_disk: segs
                .iter()
                .filter(|s| s.kind == SegKind::Raw)
                .map(|s| s.samples)
                .sum(),
            raw_bytes_on_disk: segs
                .iter()
                .filter(|s| s.kind == SegKind::Raw)
                .map(|s| s.size)
                .sum(),
            rollup_bytes_on_disk: segs
                .iter()
                .filter(|s| s.kind != SegKind::Raw)
                .map(|s| s.size)
                .sum(),
            wal_bytes,
            bytes_in_memory: mem,
        }
    }

    /// fsyncs the WAL and closes the database, reporting the error that `Drop` would
    /// swallow. Data in memory stays in the WAL and is replayed by the next open.
    pub fn close(self) -> Result<()> {
        lock(&self.wal).wal.sync()
    }

    /// Test hook: drops the database as a power cut would, losing WAL bytes not yet fsynced.
    #[cfg(test)]
    pub(crate) fn simulate_power_loss(self) -> Result<()> {
        lock(&self.wal).wal.lose_unsynced()
    }
}
