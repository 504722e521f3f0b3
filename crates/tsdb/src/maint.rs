//! Maintenance the server drives from its own task: flushing closed chunks to
//! segments (then checkpointing the WAL), compaction, retention, and [`Db::tick`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::bits::{ByteReader, put_bytes, put_varint};
use crate::db::{Db, lock, shard_of, write};
use crate::error::{Result, io_err};
use crate::head::{ClosedChunk, DiskRef, MemSeries, drop_refs, push_ref};
use crate::index::SeriesId;
use crate::labels::Labels;
use crate::rollup::{self, Resolution};
use crate::segment::{SegKind, SegmentFile, SegmentWriter, Span, sync_dir};
use crate::types::{Value, ValueKind};

/// How many neighbouring segments of one level a filling window merges into one.
const TIER: usize = 16;

struct FlushItem {
    id: SeriesId,
    labels: Labels,
    kind: ValueKind,
    chunks: Vec<ClosedChunk>,
}

/// What one maintenance call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintReport {
    /// Segment files written.
    pub segments_written: usize,
    /// Segment files deleted (merged or expired).
    pub segments_deleted: usize,
    /// Series dropped because all their data expired.
    pub series_dropped: usize,
    /// How long the WAL checkpoint of a flush blocked appends (encoding the head in
    /// memory, one fsync of the old generation, creating the new one).
    pub append_pause: std::time::Duration,
}

fn refs_of(s: &mut MemSeries, kind: SegKind) -> &mut Vec<DiskRef> {
    match kind {
        SegKind::Raw => &mut s.raw,
        SegKind::Rollup(res) => &mut s.rollups[res.index()],
    }
}

/// Decodes the samples in `[start, end]` of the raw blob of `r` (see
/// [`for_raw_chunks`]), skipping chunks outside the range.
pub(crate) fn decode_raw_blob(
    blob: &[u8],
    r: &DiskRef,
    start: i64,
    end: i64,
    out: &mut Vec<(i64, u64)>,
) -> Result<()> {
    for_raw_chunks(blob, r.file.version, r.mint, |mint, maxt, bytes| {
        if maxt < start || mint > end {
            return Ok(());
        }
        crate::head::decode_range(bytes, start, end, out)
    })
}

/// Calls `f(mint, maxt, chunk bytes)` for each chunk of a raw blob of a segment of
/// format `version` whose index entry starts at `entry_mint`. Each chunk is
/// `varint(mint) varint(maxt - mint) len-prefixed bytes`; in format 3 `mint` is relative
/// to the previous chunk's `maxt` (the first chunk's to the entry's `mint`), in formats
/// 1 and 2 absolute.
pub(crate) fn for_raw_chunks<'a>(
    blob: &'a [u8],
    version: u8,
    entry_mint: i64,
    mut f: impl FnMut(i64, i64, &'a [u8]) -> Result<()>,
) -> Result<()> {
    let mut r = ByteReader::new(blob);
    let mut prev = entry_mint;
    while !r.is_empty() {
        let d = r.varint()?;
        let mint = if version >= 3 {
            prev.wrapping_add(d)
        } else {
            d
        };
        let maxt = mint.wrapping_add(r.varint()?);
        let bytes = r.len_bytes()?;
        prev = maxt;
        f(mint, maxt, bytes)?;
    }
    Ok(())
}

/// The end (exclusive) of the compaction window of length `window` that `mint` falls in:
/// once raw data reaches it, the window is complete (merged whole, hours rolled up).
fn window_end(mint: i64, window: i64) -> i64 {
    mint.div_euclid(window)
        .saturating_add(1)
        .saturating_mul(window)
}

/// Appends a chunk to a raw blob being written (format 3); `prev` starts at the
/// entry's `mint` and follows the chunks' `maxt`.
fn put_raw_chunk(blob: &mut Vec<u8>, prev: &mut i64, mint: i64, maxt: i64, bytes: &[u8]) {
    put_varint(blob, mint.wrapping_sub(*prev));
    put_varint(blob, maxt.wrapping_sub(mint));
    put_bytes(blob, bytes);
    *prev = maxt;
}

impl Db {
    /// Writes every closed chunk to a raw segment (fsynced), drops them from memory,
    /// then checkpoints the WAL so it holds only what is still in memory. Open chunks
    /// stay in memory (and in the WAL). Rollups are written later: hours once a day's
    /// window is complete ([`Db::compact`]), minutes when raw data expires.
    pub fn flush(&self) -> Result<MaintReport> {
        let mut m = lock(&self.maint);
        m.last_flush = Instant::now();
        let mut items = Vec::new();
        for shard in self.shards.iter() {
            let sh = lock(shard);
            for (id, s) in sh.iter() {
                if !s.closed.is_empty() {
                    items.push(FlushItem {
                        id,
                        labels: s.labels.clone(),
                        kind: s.kind,
                        chunks: s.closed.clone(),
                    });
                }
            }
        }
        let mut report = MaintReport::default();
        if !items.is_empty() {
            items.sort_by(|a, b| a.labels.cmp(&b.labels));
            // Rollups are not written here: within the raw retention minute and hour
            // buckets are aggregated from the raw samples at query time. Hour rollups
            // are written once a day's compaction window is complete
            // (`roll_up_complete_windows`), minute rollups when the raw data expires
            // (`apply_retention`).
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let mut w = SegmentWriter::create(&self.dir, SegKind::Raw, seq, (seq, 0), Vec::new())?;
            for it in &items {
                let mut blob = Vec::new();
                let (mint, maxt) = (it.chunks[0].mint, it.chunks[it.chunks.len() - 1].maxt);
                let mut prev = mint;
                for c in &it.chunks {
                    put_raw_chunk(&mut blob, &mut prev, c.mint, c.maxt, &c.bytes);
                }
                let span = Span {
                    mint,
                    maxt,
                    last: it.chunks[it.chunks.len() - 1].last,
                    samples: it.chunks.iter().map(|c| u64::from(c.n)).sum(),
                };
                w.add(&it.labels, it.kind, span, &blob)?;
            }
            let (seg, entries) = w.finish()?;
            let seg = Arc::new(seg);
            report.segments_written = 1;
            // Entries are in item order (both sorted by labels), one per item.
            for (it, e) in items.iter().zip(entries) {
                let mut sh = lock(&self.shards[shard_of(it.id)]);
                let Some(s) = sh.get_mut(it.id) else { continue };
                let n = it.chunks.len().min(s.closed.len());
                s.closed.drain(..n);
                push_ref(&mut s.raw, DiskRef::new(seg.clone(), &e));
            }
            lock(&self.segments).push(seg);
        }
        report.append_pause = self.checkpoint(lock(&self.wal))?;
        drop(m);
        Ok(report)
    }

    /// Closes every open chunk, then [`Db::flush`]es: everything ends up in segments.
    /// For shutdown and measurements; regular operation only needs [`Db::flush`].
    pub fn flush_all(&self) -> Result<MaintReport> {
        {
            let _ws = lock(&self.wal);
            for shard in self.shards.iter() {
                let mut sh = lock(shard);
                for s in sh.series.values_mut() {
                    s.cut();
                }
            }
        }
        self.flush()
    }

    /// Merges runs of segments of the same kind that are neighbours in flush order and
    /// whose start falls into the same compaction window
    /// ([`crate::Options::compaction_windows_ms`]). Only neighbours are merged, so a
    /// series' data in the merged segment stays between its data in other segments.
    ///
    /// A window is merged into one segment once data has moved past its end. In a
    /// window still filling, every 16 newest segments of one level are merged into one
    /// of the next level (cascading), which bounds the files per window to 16 per level
    /// while rewriting each sample about once per level instead of at every flush.
    pub fn compact(&self) -> Result<MaintReport> {
        self.compact_runs(false)
    }

    /// Like [`Db::compact`], but also merges windows that are still filling: every run
    /// of neighbouring segments in one window becomes one segment. For measurements,
    /// before a backup, or at shutdown.
    pub fn compact_full(&self) -> Result<MaintReport> {
        self.compact_runs(true)
    }

    fn compact_runs(&self, full: bool) -> Result<MaintReport> {
        let mut m = lock(&self.maint);
        let mut report = MaintReport::default();
        let segs = lock(&self.segments).clone();
        for (ki, kind) in SegKind::ALL.into_iter().enumerate() {
            let window = self.opts.compaction_windows_ms[ki];
            let mut of_kind: Vec<&Arc<SegmentFile>> =
                segs.iter().filter(|s| s.kind == kind).collect();
            of_kind.sort_by_key(|s| s.order);
            let newest = of_kind.iter().map(|s| s.maxt).max().unwrap_or(i64::MIN);
            let mut groups: Vec<Vec<Arc<SegmentFile>>> = Vec::new();
            let mut last_window = None;
            for s in of_kind {
                let w = s.mint.div_euclid(window);
                match groups.last_mut() {
                    Some(g) if last_window == Some(w) => g.push(s.clone()),
                    _ => groups.push(vec![s.clone()]),
                }
                last_window = Some(w);
            }
            for mut group in groups {
                let window_end = window_end(group[0].mint, window);
                if (full || newest >= window_end) && group.len() >= 2 {
                    let level = group
                        .iter()
                        .map(|s| s.level)
                        .max()
                        .unwrap_or(0)
                        .saturating_add(1);
                    self.merge(kind, &group, level)?;
                    report.segments_written += 1;
                    continue;
                }
                // A filling window: merge the newest TIER segments of one level into one
                // of the next, cascading, so every sample is rewritten about once per level.
                while let Some(level) = group.last().map(|s| s.level) {
                    let same = group.iter().rev().take_while(|s| s.level == level).count();
                    if same < TIER {
                        break;
                    }
                    let tail = group.split_off(group.len() - TIER);
                    group.push(self.merge(kind, &tail, level.saturating_add(1))?);
                    report.segments_written += 1;
                }
            }
        }
        if self.roll_up_complete_windows(&mut m.hours_checked)? {
            report.segments_written += 1;
        }
        report.segments_deleted = segs.len() + report.segments_written - lock(&self.segments).len();
        Ok(report)
    }

    /// Writes the hour rollups of the raw segments, oldest first in flush order, whose
    /// compaction window is complete (raw data has moved past its end, as for
    /// compaction) into one new 1 h segment.
    /// `checked` remembers the segments done, so each is looked at once; after a
    /// restart they are looked at once more, and the rollups' coverage (see
    /// [`Db::roll_up`]) keeps that from writing anything twice.
    ///
    /// Within the raw retention hour buckets of everything else are aggregated from
    /// the raw samples at query time: a day of one series at a 10 s scrape is 8,640
    /// samples, while one hour segment per flush cost 0.23–0.36 bytes per sample for
    /// the hour just written (two buckets and an index entry per series).
    fn roll_up_complete_windows(&self, checked: &mut HashSet<u64>) -> Result<bool> {
        let window = self.opts.compaction_windows_ms[0];
        let group: Vec<Arc<SegmentFile>> = {
            let segs = lock(&self.segments);
            let newest = segs
                .iter()
                .filter(|s| s.kind == SegKind::Raw)
                .map(|s| s.maxt)
                .max()
                .unwrap_or(i64::MIN);
            let mut raw: Vec<&Arc<SegmentFile>> =
                segs.iter().filter(|s| s.kind == SegKind::Raw).collect();
            raw.sort_by_key(|s| s.order);
            let live: HashSet<u64> = raw.iter().map(|s| s.seq).collect();
            checked.retain(|seq| live.contains(seq));
            // Only a prefix in flush order: per series, the samples rolled up must all
            // be older than those left to raw (a segment of a complete window can be
            // flushed after one of the next window, when a chunk started before
            // midnight closed late).
            raw.into_iter()
                .take_while(|s| newest >= window_end(s.mint, window))
                .filter(|s| !checked.contains(&s.seq))
                .cloned()
                .collect()
        };
        if group.is_empty() {
            return Ok(false);
        }
        let wrote = self.roll_up(&group, Resolution::Hour, false)?;
        checked.extend(group.iter().map(|s| s.seq));
        Ok(wrote)
    }

    /// Merges `group` (neighbours in flush order) into one segment of `level`.
    fn merge(
        &self,
        kind: SegKind,
        group: &[Arc<SegmentFile>],
        level: u8,
    ) -> Result<Arc<SegmentFile>> {
        let seqs: HashSet<u64> = group.iter().map(|s| s.seq).collect();
        let mut items: Vec<(SeriesId, Labels, ValueKind, Vec<DiskRef>)> = Vec::new();
        for shard in self.shards.iter() {
            let mut sh = lock(shard);
            for (&id, s) in sh.series.iter_mut() {
                let refs: Vec<DiskRef> = refs_of(s, kind)
                    .iter()
                    .filter(|r| seqs.contains(&r.file.seq))
                    .cloned()
                    .collect();
                if !refs.is_empty() {
                    items.push((id, s.labels.clone(), s.kind, refs));
                }
            }
        }
        items.sort_by(|a, b| a.1.cmp(&b.1));
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut replaces: Vec<u64> = seqs.iter().copied().collect();
        replaces.sort_unstable();
        let order = group.iter().map(|s| s.order).min().unwrap_or(seq);
        let mut w = SegmentWriter::create(&self.dir, kind, seq, (order, level), replaces)?;
        for (_, labels, vkind, refs) in &items {
            let mut blob = Vec::new();
            let mut buckets = Vec::new();
            let mint = refs.iter().map(|r| r.mint).min().unwrap_or(0);
            let mut prev = mint;
            for r in refs {
                let b = r.file.read_blob(r.offset, r.len, r.crc)?;
                match kind {
                    // Chunks are copied as they are; their times are rewritten relative
                    // to the merged entry (any source format in, format 3 out).
                    SegKind::Raw => {
                        for_raw_chunks(&b, r.file.version, r.mint, |cmin, cmax, bytes| {
                            put_raw_chunk(&mut blob, &mut prev, cmin, cmax, bytes);
                            Ok(())
                        })?
                    }
                    SegKind::Rollup(_) => buckets.extend(rollup::decode(&b, r.file.version)?),
                }
            }
            if let SegKind::Rollup(_) = kind {
                blob = rollup::encode(&rollup::merge_adjacent(buckets));
            }
            let maxt = refs.iter().map(|r| r.maxt).max().unwrap_or(0);
            let last = refs.iter().max_by_key(|r| r.maxt).map_or(0, |r| r.last);
            let samples = refs.iter().map(|r| r.samples).sum();
            let span = Span {
                mint,
                maxt,
                last,
                samples,
            };
            w.add(labels, *vkind, span, &blob)?;
        }
        let (seg, entries) = w.finish()?;
        let seg = Arc::new(seg);
        for ((id, _, _, _), e) in items.iter().zip(entries) {
            let mut sh = lock(&self.shards[shard_of(*id)]);
            let Some(s) = sh.get_mut(*id) else { continue };
            let list = refs_of(s, kind);
            drop_refs(list, &seqs);
            push_ref(list, DiskRef::new(seg.clone(), &e));
            list.sort_by_key(|r| r.file.order);
        }
        {
            let mut segs = lock(&self.segments);
            segs.retain(|s| !seqs.contains(&s.seq));
            segs.push(seg.clone());
        }
        for s in group {
            std::fs::remove_file(&s.path).map_err(io_err(&s.path))?;
        }
        sync_dir(&self.dir)?;
        Ok(seg)
    }

    /// Deletes whole segments past their retention (raw, 1 m and 1 h separately),
    /// raises the floor below which appends are rejected, and forgets series left
    /// without data. `now_ms` is the current time in ms since the epoch.
    ///
    /// Raw segments expire oldest first (in flush order, so per series the raw data
    /// left is always newer than what expired). Before expired raw segments are
    /// deleted, the hour rollups of their samples not rolled up yet (usually none: a
    /// complete day's window is rolled up at compaction) go into a new 1 h segment,
    /// then their minute rollups into a new 1 m segment that names them as replaced (a
    /// crash in between deletes them on open), each unless it would expire as well.
    pub fn apply_retention(&self, now_ms: i64) -> Result<MaintReport> {
        let _m = lock(&self.maint);
        let o = &self.opts;
        let floor = now_ms.saturating_sub(o.retention_ms);
        self.retention_floor.fetch_max(floor, Ordering::Relaxed);
        let minute_limit = now_ms.saturating_sub(o.rollup_minute_retention_ms);
        let limit = |k: SegKind| match k {
            SegKind::Raw => floor,
            SegKind::Rollup(Resolution::Minute) => minute_limit,
            SegKind::Rollup(Resolution::Hour) => now_ms.saturating_sub(o.rollup_hour_retention_ms),
        };
        let mut expired: Vec<Arc<SegmentFile>> = Vec::new();
        {
            let segs = lock(&self.segments);
            let mut raw: Vec<&Arc<SegmentFile>> =
                segs.iter().filter(|s| s.kind == SegKind::Raw).collect();
            raw.sort_by_key(|s| s.order);
            expired.extend(raw.into_iter().take_while(|s| s.maxt < floor).cloned());
            expired.extend(
                segs.iter()
                    .filter(|s| s.kind != SegKind::Raw && s.maxt < limit(s.kind))
                    .cloned(),
            );
        }
        let mut report = MaintReport::default();
        let to_roll: Vec<Arc<SegmentFile>> = expired
            .iter()
            .filter(|s| s.kind == SegKind::Raw && s.maxt >= minute_limit)
            .cloned()
            .collect();
        // Hours first: they name nothing as replaced, so a crash before the minute
        // segment (which replaces the raw segments) leaves the raw data to roll again,
        // and the hour rollups' coverage keeps it from being written twice.
        let hour_limit = limit(SegKind::Rollup(Resolution::Hour));
        let to_hours: Vec<Arc<SegmentFile>> = expired
            .iter()
            .filter(|s| s.kind == SegKind::Raw && s.maxt >= hour_limit)
            .cloned()
            .collect();
        if !to_hours.is_empty() && self.roll_up(&to_hours, Resolution::Hour, false)? {
            report.segments_written += 1;
        }
        if !to_roll.is_empty() && self.roll_up(&to_roll, Resolution::Minute, true)? {
            report.segments_written += 1;
        }
        let seqs: HashSet<u64> = expired.iter().map(|s| s.seq).collect();
        let _ws = lock(&self.wal);
        let mut reg = write(&self.registry);
        for shard in self.shards.iter() {
            let mut sh = lock(shard);
            let mut gone = Vec::new();
            for (&id, s) in sh.series.iter_mut() {
                if !seqs.is_empty() {
                    for kind in SegKind::ALL {
                        drop_refs(refs_of(s, kind), &seqs);
                    }
                }
                if s.is_empty() && s.last_t < floor {
                    gone.push(id);
                }
            }
            for id in gone {
                if let Some(s) = sh.series.remove(&id) {
                    reg.by_labels.remove(&s.labels);
                    reg.index.remove(id, &s.labels);
                    report.series_dropped += 1;
                }
            }
            if sh.series.capacity() > 2 * sh.series.len() + 64 {
                sh.series.shrink_to_fit();
            }
        }
        if reg.by_labels.capacity() > 2 * reg.by_labels.len() + 64 {
            reg.by_labels.shrink_to_fit();
        }
        drop(reg);
        lock(&self.segments).retain(|s| !seqs.contains(&s.seq));
        for s in &expired {
            std::fs::remove_file(&s.path).map_err(io_err(&s.path))?;
            report.segments_deleted += 1;
        }
        if !expired.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(report)
    }

    /// Writes the `res` rollups of the samples in the raw segments `group` that the
    /// series' `res` rollups do not cover yet into one new rollup segment, and adds it to
    /// the series. With `replace` the new segment names `group` as replaced (for raw
    /// segments about to expire: a crash before they are deleted deletes them on open).
    /// Returns whether a segment was written (none when no sample needed one).
    ///
    /// Idempotent per series: stored rollups cover every sample up to their newest, so a
    /// second call (after a crash, or for a segment checked before) finds nothing new.
    fn roll_up(&self, group: &[Arc<SegmentFile>], res: Resolution, replace: bool) -> Result<bool> {
        let seqs: HashSet<u64> = group.iter().map(|s| s.seq).collect();
        let rkind = SegKind::Rollup(res);
        let mut items: Vec<(SeriesId, Labels, ValueKind, Vec<DiskRef>, i64)> = Vec::new();
        for shard in self.shards.iter() {
            let sh = lock(shard);
            for (&id, s) in sh.series.iter() {
                let refs: Vec<DiskRef> = s
                    .raw
                    .iter()
                    .filter(|r| seqs.contains(&r.file.seq))
                    .cloned()
                    .collect();
                let covered = crate::query::rollup_covered(&s.rollups[res.index()]);
                if refs.iter().any(|r| r.maxt > covered) {
                    items.push((id, s.labels.clone(), s.kind, refs, covered));
                }
            }
        }
        if items.is_empty() {
            return Ok(false);
        }
        items.sort_by(|a, b| a.1.cmp(&b.1));
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut replaces: Vec<u64> = if replace {
            seqs.iter().copied().collect()
        } else {
            Vec::new()
        };
        replaces.sort_unstable();
        // In the place of what it replaces, or else at the end of flush order, as a
        // flushed segment.
        let order = if replace {
            group.iter().map(|s| s.order).min().unwrap_or(seq)
        } else {
            seq
        };
        let mut w = SegmentWriter::create(&self.dir, rkind, seq, (order, 0), replaces)?;
        let mut written = Vec::with_capacity(items.len());
        let mut raw = Vec::new();
        let mut buckets = Vec::new();
        for (id, labels, vkind, refs, covered) in &items {
            raw.clear();
            buckets.clear();
            for r in refs {
                let blob = r.file.read_blob(r.offset, r.len, r.crc)?;
                decode_raw_blob(&blob, r, covered.saturating_add(1), i64::MAX, &mut raw)?;
            }
            let mut last_t = i64::MIN;
            let mut last_bits = 0;
            let mut n = 0u64;
            let vals = raw.iter().filter_map(|&(t, b)| {
                if t <= last_t {
                    return None;
                }
                (last_t, last_bits, n) = (t, b, n + 1);
                Some((t, Value::from_bits(*vkind, b).as_f64()))
            });
            rollup::aggregate(vals, res.ms(), &mut buckets);
            let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
                continue;
            };
            let span = Span {
                mint: first.first_t,
                maxt: last.last_t,
                last: last_bits,
                samples: n,
            };
            w.add(labels, *vkind, span, &rollup::encode(&buckets))?;
            written.push(*id);
        }
        let (seg, entries) = w.finish()?;
        let seg = Arc::new(seg);
        for (id, e) in written.into_iter().zip(entries) {
            let mut sh = lock(&self.shards[shard_of(id)]);
            let Some(s) = sh.get_mut(id) else { continue };
            let list = refs_of(s, rkind);
            push_ref(list, DiskRef::new(seg.clone(), &e));
            list.sort_by_key(|r| r.file.order);
        }
        lock(&self.segments).push(seg);
        Ok(true)
    }

    /// Closes open chunks whose newest sample is older than `now - chunk_span_ms`, so
    /// series that stopped (a removed container) reach segments and later expire.
    pub(crate) fn cut_idle(&self, now_ms: i64) {
        let idle = now_ms.saturating_sub(self.opts.chunk_span_ms);
        for shard in self.shards.iter() {
            let mut sh = lock(shard);
            for s in sh.series.values_mut() {
                if s.open.len() > 0 && s.open.maxt() < idle {
                    s.cut();
                }
            }
        }
    }

    /// Periodic work in one call: fsync the WAL if [`crate::Options::sync_interval`]
    /// passed; and every [`crate::Options::flush_interval`], close idle open chunks, flush,
    /// compact and apply retention.
    pub fn tick(&self, now_ms: i64) -> Result<MaintReport> {
        {
            let mut ws = lock(&self.wal);
            if ws.wal.last_sync.elapsed() >= self.opts.sync_interval {
                ws.wal.sync()?;
            }
        }
        let due = lock(&self.maint).last_flush.elapsed() >= self.opts.flush_interval;
        if !due {
            return Ok(MaintReport::default());
        }
        self.cut_idle(now_ms);
        let mut r = self.flush()?;
        let c = self.compact()?;
        let d = self.apply_retention(now_ms)?;
        r.segments_written += c.segments_written + d.segments_written;
        r.segments_deleted += c.segments_deleted + d.segments_deleted;
        r.series_dropped += d.series_dropped;
        r.append_pause += c.append_pause + d.append_pause;
        Ok(r)
    }
}
