//! An embedded time-series store for Slipway's metrics (issue 16, "Watch").
//!
//! # Model
//!
//! A series is a sorted [`Labels`] set (including `__name__`) plus samples of
//! `(i64 ms timestamp, value)`. The first append fixes the series' [`ValueKind`]
//! (float, integer or bool); a later sample of another kind is an
//! [`Error::TypeConflict`]. Series are selected with Prometheus [`Matcher`]s
//! (`=`, `!=`, `=~`, `!~`; regexes fully anchored; a missing label matches `""`).
//!
//! # Write rules
//!
//! * Samples of a series must arrive in time order: older than the newest sample is
//!   [`Error::OutOfOrder`] (counted in [`Stats::rejected_out_of_order`]).
//! * The same timestamp again: ignored when the value is bitwise identical (counted as a
//!   duplicate), [`Error::DuplicateTimestamp`] otherwise. There is no "last write wins".
//! * More than [`Options::max_series`] series: [`Error::TooManySeries`].
//! * After [`Db::apply_retention`], samples older than `now - retention` are [`Error::TooOld`].
//!
//! Rejections are per sample: [`Db::append`] stores the rest of the batch and reports them.
//!
//! # Storage
//!
//! * Head (memory): per series an open Gorilla chunk; at 240 samples or 2 h it is
//!   closed and re-encoded column by column when that is smaller: timestamps and
//!   integer or decimal values as delta, delta-of-delta, frame-of-reference or
//!   line-residual packed integers (`chunk.rs`, `intcol.rs`); other floats as the
//!   smaller of Gorilla XOR and integers in units of the chunk's smallest power of two
//!   (`m × 2^e`, exact; full-precision random walks take ~45 bits instead of ~53).
//!   The inverted index maps label name and value to sorted postings (`index.rs`).
//! * WAL (`dir/wal-<generation>`): every batch is one CRC-framed record written with one
//!   `write(2)`; fsync happens in groups, when [`Options::sync_interval`] (default 1 s)
//!   has passed at an append or [`Db::tick`], or on [`Db::sync`]. A checkpoint
//!   (`dir/checkpoint-<generation>`: every series with in-memory chunks or without
//!   segment data, and the chunks, written at each [`Db::flush`], every
//!   [`Options::flush_interval`] = 5 min from `tick`) starts a new generation and lets
//!   the older ones be deleted, so the WAL holds at most one flush interval of appends
//!   plus the head. A series whose data is all in segments is not in the checkpoint (the
//!   segment index names it); its next append writes its series record into the WAL
//!   again. Opening loads the segments, then replays the newest checkpoint and the
//!   generations from it on.
//! * `dir/LOCK` is `flock`ed while a [`Db`] is open; a second open is [`Error::Locked`].
//! * Segments (`dir/{raw,1m,1h}-<seq>.seg`): [`Db::flush`] writes closed chunks into an
//!   immutable, fsynced raw segment, then checkpoints the WAL.
//!   [`Db::compact`] merges neighbouring segments of the same window (1 day for raw, 30
//!   days for 1 m, 1 year for 1 h): tiered by 16 while the window fills, into one
//!   segment once data has moved past it; then it writes the hour rollups of the raw
//!   segments whose day is complete into a 1 h segment. [`Db::apply_retention`] deletes
//!   whole expired segments (raw 15 days, 1 m 90 days, 1 h 2 years by default);
//!   expiring raw segments are first rolled up into a 1 m segment (the only way 1 m
//!   segments are written), and into 1 h for any hours not rolled up yet.
//!   Segment files are format 4 (`SLWSEG04`: format 3 plus sparse integer columns;
//!   format 3 added to format 2's residual rollup buckets binary float and
//!   line-residual integer columns, index entries without blob offsets and with
//!   relative time ranges, chunk starts relative to the previous chunk's end); files of
//!   formats 3, 2 and 1 (`SLWSEG03`, `SLWSEG02`, `SLWSEG01`) are read as they are and
//!   rewritten by compaction. Older readers refuse newer formats at open (no downgrade;
//!   an older version also drops checkpointed head chunks in the new column modes).
//!
//! # Durability (crash-loss bound)
//!
//! * `kill -9` of the process loses nothing that [`Db::append`] returned for: the batch
//!   is already in the kernel's page cache, and a torn record at the WAL's end (a crash
//!   inside the `write`) is dropped on open without manual repair.
//! * A power cut or kernel crash loses at most the samples appended since the last WAL
//!   fsync, and nothing else. An fsync runs at the end of any `append` or [`Db::tick`]
//!   that finds [`Options::sync_interval`] (1 s) passed since the previous one, so with
//!   the server calling `tick` every second the loss is bounded by the appends of the
//!   last sync interval plus one tick period (about 2 s); [`Db::sync`] makes it zero.
//! * Segments and WAL checkpoints are written to a temp file, fsynced, renamed and
//!   their directory fsynced before they replace anything. A crash between writing a
//!   segment and checkpointing the WAL is harmless: replay skips samples not newer
//!   than the segments, and a merged segment names the ones it replaces, which are
//!   deleted on open if a crash left them behind.
//!
//! # Rollups
//!
//! A [`Bucket`] holds count, sum, min, max, first and last sample, and the counter
//! increase adjusted for resets, so `rate`/`increase` over buckets ([`increase`]) equal
//! the raw answer. [`Db::select_step`] answers from hour rollups for steps ≥ 1 h, minute
//! rollups for steps ≥ 1 min, raw samples otherwise.
//!
//! Minute rollups are only stored for data whose raw samples expired: a minute of a
//! 10 s scrape holds 6 samples, so within the raw retention the rollup would cost about
//! as much disk as the raw data (it did: 2.4–5.7 bytes per raw sample for 1 m and 1 h
//! together) while the raw samples give the same buckets. Hour rollups are stored for
//! every complete day (at compaction, once raw data has moved past the day's end):
//! written at every flush instead, they cost 0.23–0.36 bytes per sample for the hour
//! just flushed (two partial buckets and an index entry per series); written once per
//! day and series they cost about 0.05 (the `ingest` example with `TICKS=9000`: 0.048
//! bytes per rolled-up sample). Per series, stored rollups of a resolution
//! cover every sample up to their newest, and only a prefix of the raw segments in
//! flush order is ever rolled up, so every sample after that is in a raw segment or
//! the head; [`Db::select_rollup`] adds buckets aggregated from those. So within the raw
//! retention minute buckets are computed from raw samples (slower for long ranges than
//! reading stored buckets), and hour buckets of the current day too; hour buckets of
//! earlier days are read from the hour rollups.
//!
//! # Concurrency
//!
//! [`Db`] is `Send + Sync`. Series live in 16 mutex-sharded maps; the label index is
//! behind a `RwLock`; appends are serialised by the WAL lock (that keeps the WAL in head
//! order; one thread appends several million samples per second) while queries only
//! take the index read lock and one shard lock per series at a time, and read segment
//! files without any lock. A flush's WAL checkpoint blocks appends while it encodes
//! the head in memory and fsyncs the old generation ([`MaintReport::append_pause`]:
//! 15 ms with 2,000 series, 140–230 ms with 100,000 series in the example's burst
//! ingest); the checkpoint file is written after appends resume. There is no background
//! thread: the server calls [`Db::tick`] from its own task, in `spawn_blocking`, since it
//! does file I/O and fsync and, when a compaction window completes, rewrites that
//! window's segments.
//!
//! # Code map
//!
//! Pure, no I/O: `labels.rs` (label sets, matchers), `types.rs` (values, results),
//! `bits.rs` (bit and byte codecs), `chunk.rs` and `intcol.rs` (sample compression),
//! `rollup.rs` (buckets), `index.rs` (postings), `head.rs` (per-series state and append
//! rules). Files: `wal.rs` (log records, generations, checkpoints), `segment.rs`
//! (segment format), `crc.rs`. Orchestration: `db.rs` (open, replay, append,
//! checkpoint, stats), `maint.rs` (flush, compaction, retention, tick), `query.rs`.
//!
//! # Usage
//!
//! ```text
//! let db = Db::open("/var/lib/slipway/tsdb", Options::default())?;
//! let cpu = Labels::with_name("container_cpu_usage_seconds_total", [("name", "web-1")])?;
//! let report = db.append(&[Point { labels: cpu.clone(), t: now_ms, v: Value::Float(12.5) }])?;
//! report.into_result()?; // or inspect report.errors per sample
//! db.set_metadata("container_cpu_usage_seconds_total",
//!     Metadata { metric_type: MetricType::Counter, help: "CPU time".into(), unit: "seconds".into() })?;
//! let series = db.select(&[Matcher::metric("container_cpu_usage_seconds_total"),
//!                          Matcher::new("name", MatchOp::Re, "web-.*")?], now_ms - 3_600_000, now_ms)?;
//! match db.select_step(&matchers, start, end, step_ms)? {
//!     Selection::Raw(series) => { /* samples */ }
//!     Selection::Rollup(res, series) => { /* buckets: avg(), max, increase(&buckets) */ }
//! }
//! // From the server's own task, e.g. every second:
//! db.tick(now_ms)?; // fsync when due; every flush_interval: flush, compact, retention
//! ```
//!
//! # Measured
//!
//! `cargo run --release -p tsdb --example ingest`: 1,000,000 cAdvisor-shaped samples
//! (200 containers × 10 metrics = 2,000 series, 500 scrapes at an exact 10 s interval,
//! random-walk gauges and counters, batches of 10,000, a flush every 5 minutes of
//! data as `tick` would do, then `flush_all` and `compact_full`), on the shared 2-core
//! VM (several runs, load average about 3):
//!
//! * append: 4.8–6.1 M samples/s on one thread for existing series, WAL writes included
//!   (flushes timed separately: 17 flushes took 0.4–0.6 s, each blocking appends at
//!   most 15 ms). With 100,000 series (`CONTAINERS=10000 TICKS=60`): 2.3–5.3 M
//!   samples/s, appends blocked at most 137–233 ms by a checkpoint of 6 M head samples;
//! * raw segments after compaction: 1.69 bytes/sample, labels and index included
//!   ([`Stats::raw_bytes_on_disk`] / [`Stats::raw_samples_on_disk`]); with `TICKS=2160`
//!   (6 h of data, the per-series index spread over more samples) 1.55 bytes/sample.
//!   The values are random walks, so most bits are entropy: CPU time in nanoseconds
//!   costs ~31 bits/sample, byte counters ~20, CPU time in 10 ms ticks ~8, memory
//!   gauges moving by up to 32 pages ~7, constant series and the regular 10 s interval
//!   0. With ±5 ms scrape jitter (`JITTER_MS=5`) timestamps add ~5 bits: 2.31 bytes/sample;
//! * rollups, 1 m + 1 h together: 2.36 bytes per raw sample (1.92 for 6 h) when both
//!   were written at every flush in format 1. One-minute buckets of 10 s data hold 6
//!   samples and keep 10 aggregates, so they were about as big as the raw data; now
//!   minute rollups are written when the raw data expires (see Rollups), in format 2;
//! * `select` 1 h × 100 series: 1.3–1.5 ms from the head, 1.2–1.9 ms from segments
//!   (median of 21); minute rollups over all 83 min × 100 series: 1.2–1.8 ms;
//! * memory: about 1.2 KB per series (estimate from [`Stats::bytes_in_memory`]: labels,
//!   index postings, series state), plus ~56 bytes per series and segment holding its
//!   data (about 23 segments with the default windows and retention, so ~1.3 KB), plus
//!   the open and unflushed chunks; peak RSS of the whole example 12 MiB for 2,000
//!   series, 235 MiB for 100,000 series with 6 M samples in the head.

mod bits;
mod chunk;
mod crc;
mod db;
mod error;
mod head;
mod index;
mod intcol;
mod labels;
mod maint;
mod query;
mod rollup;
mod segment;
mod types;
mod wal;

#[cfg(test)]
mod tests;

pub use db::{AppendReport, Db, Options, Stats};
pub use error::{Error, Result};
pub use labels::{Labels, METRIC_NAME, MatchOp, Matcher};
pub use maint::MaintReport;
pub use query::{RollupSeries, Selection};
pub use rollup::{Bucket, Resolution, increase};
pub use types::{Metadata, MetricType, Point, Sample, Series, Value, ValueKind};
