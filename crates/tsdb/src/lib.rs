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
//!   closed and re-encoded into the smaller of XOR and a decimal-integer
//!   delta/delta-of-delta encoding (`chunk.rs`).
//! * WAL (`dir/wal`): every batch is one CRC-framed record written with one `write(2)`;
//!   fsync happens in groups, when [`Options::sync_interval`] (default 1 s) has passed at
//!   an append or [`Db::tick`], or on [`Db::sync`].
//! * Segments (`dir/{raw,1m,1h}-<seq>.seg`): [`Db::flush`] writes closed chunks and their
//!   1-minute and 1-hour rollups into immutable, fsynced files, then checkpoints the WAL
//!   (rewrites it with only what is still in memory). [`Db::compact`] merges segments of
//!   the same window; [`Db::apply_retention`] deletes whole expired segments (raw 15 days,
//!   1 m 90 days, 1 h 2 years by default).
//!
//! # Durability (crash-loss bound)
//!
//! * `kill -9` of the process loses nothing that [`Db::append`] returned for: the batch
//!   is already in the kernel's page cache, and a torn record at the WAL's end (a crash
//!   inside the `write`) is dropped on open without manual repair.
//! * A power cut or kernel crash loses at most the samples appended since the last WAL
//!   fsync, that is at most [`Options::sync_interval`] (1 s) of appends provided
//!   `append` or [`Db::tick`] keeps being called; [`Db::sync`] bounds it to zero.
//!   Segments and WAL checkpoints are fsynced (and their directory) before they count.
//!
//! # Rollups
//!
//! A [`Bucket`] holds count, sum, min, max, first and last sample, and the counter
//! increase adjusted for resets, so `rate`/`increase` over buckets ([`increase`]) equal
//! the raw answer. [`Db::select_step`] answers from hour rollups for steps ≥ 1 h, minute
//! rollups for steps ≥ 1 min, raw samples otherwise.
//!
//! # Concurrency
//!
//! [`Db`] is `Send + Sync`. Series live in 16 mutex-sharded maps; the label index is
//! behind a `RwLock`; appends are serialised by the WAL lock (that keeps the WAL in head
//! order) while queries only take the index read lock and one shard lock per series.
//! There is no background thread: the server calls [`Db::tick`] from its own task.
//!
//! # Measured (`cargo run --release -p tsdb --example ingest`, 2-core shared VM)
//!
//! See the example's output; figures are in `examples/ingest.rs`.

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
