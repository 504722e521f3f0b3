//! Read side: selecting series by matchers, raw samples, rollup buckets, and label listings.

use std::collections::BTreeSet;

use crate::db::{Db, lock, read, shard_of};
use crate::error::Result;
use crate::head::{DiskRef, MemSeries};
use crate::index::SeriesId;
use crate::labels::{Labels, Matcher};
use crate::maint::decode_raw_blob;
use crate::rollup::{self, Bucket, Resolution};
use crate::segment::SegKind;
use crate::types::{Sample, Series, Value, ValueKind};

/// A series with rollup buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct RollupSeries {
    /// The series' labels.
    pub labels: Labels,
    /// The series' value kind (bucket values are floats).
    pub kind: ValueKind,
    /// Buckets in time order; a bucket is whole even where it sticks out of the range.
    pub buckets: Vec<Bucket>,
}

/// The answer of [`Db::select_step`]: raw samples or rollup buckets.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// Raw samples.
    Raw(Vec<Series>),
    /// Rollup buckets of the given resolution.
    Rollup(Resolution, Vec<RollupSeries>),
}

fn overlaps(s: &MemSeries, start: i64, end: i64) -> bool {
    s.overlaps(start, end)
        || s.rollups
            .iter()
            .flatten()
            .any(|r| r.maxt >= start && r.mint <= end)
}

/// The newest sample a series' stored rollups cover (`i64::MIN` without any): samples
/// up to it are in the rollups, later ones in raw segments or the head.
pub(crate) fn rollup_covered(stored: &[DiskRef]) -> i64 {
    stored.iter().map(|r| r.maxt).max().unwrap_or(i64::MIN)
}

fn refs_in(refs: &[DiskRef], start: i64, end: i64) -> Vec<DiskRef> {
    refs.iter()
        .filter(|r| r.maxt >= start && r.mint <= end)
        .cloned()
        .collect()
}

impl Db {
    fn ids(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        read(&self.registry).index.select(matchers)
    }

    /// Raw samples with timestamps in `[start, end]` (ms, inclusive) of every series
    /// matching all `matchers`, sorted by labels. Series without samples there are left out.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        for id in self.ids(matchers) {
            let mut head = Vec::new();
            let (labels, kind, refs) = {
                let sh = lock(&self.shards[shard_of(id)]);
                let Some(s) = sh.get(id) else { continue };
                if !s.overlaps(start, end) {
                    continue;
                }
                s.head_samples(start, end, &mut head)?;
                (s.labels.clone(), s.kind, refs_in(&s.raw, start, end))
            };
            let mut raw = Vec::new();
            for r in &refs {
                let blob = r.file.read_blob(r.offset, r.len, r.crc)?;
                decode_raw_blob(&blob, r, start, end, &mut raw)?;
            }
            raw.extend(head);
            let mut samples: Vec<Sample> = Vec::with_capacity(raw.len());
            for (t, bits) in raw {
                if samples.last().is_none_or(|l| l.t < t) {
                    samples.push(Sample {
                        t,
                        v: Value::from_bits(kind, bits),
                    });
                }
            }
            if !samples.is_empty() {
                out.push(Series {
                    labels,
                    kind,
                    samples,
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Rollup buckets of `res` whose start lies in `[start, end]` after aligning `start`
    /// down to the resolution. Buckets combine stored rollups with buckets aggregated
    /// from the raw samples they do not cover yet: per series, stored rollups cover every
    /// sample up to their newest (`DiskRef::maxt`), and the raw segments and the head
    /// hold the rest. Minute rollups are only stored for raw data that expired (see
    /// [`Db::apply_retention`]), so within the raw retention minute buckets come from
    /// the raw samples; hour rollups are written for complete days ([`Db::compact`]),
    /// so the current day's hour buckets come from the raw samples too.
    pub fn select_rollup(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        res: Resolution,
    ) -> Result<Vec<RollupSeries>> {
        let w = res.ms();
        let b_start = start.div_euclid(w).saturating_mul(w);
        let s_end = end.div_euclid(w).saturating_mul(w).saturating_add(w - 1);
        let mut out = Vec::new();
        for id in self.ids(matchers) {
            let mut head = Vec::new();
            let (labels, kind, refs, raw_refs, covered) = {
                let sh = lock(&self.shards[shard_of(id)]);
                let Some(s) = sh.get(id) else { continue };
                if !overlaps(s, b_start, s_end) {
                    continue;
                }
                let stored = &s.rollups[res.index()];
                let covered = rollup_covered(stored);
                let from = b_start.max(covered.saturating_add(1));
                s.head_samples(from, s_end, &mut head)?;
                (
                    s.labels.clone(),
                    s.kind,
                    refs_in(stored, b_start, s_end),
                    refs_in(&s.raw, from, s_end),
                    covered,
                )
            };
            let mut buckets = Vec::new();
            for r in &refs {
                let blob = r.file.read_blob(r.offset, r.len, r.crc)?;
                buckets.extend(
                    rollup::decode(&blob, r.file.version)?
                        .into_iter()
                        .filter(|b| b.start >= b_start && b.start <= end),
                );
            }
            let from = b_start.max(covered.saturating_add(1));
            let mut raw = Vec::new();
            for r in &raw_refs {
                let blob = r.file.read_blob(r.offset, r.len, r.crc)?;
                decode_raw_blob(&blob, r, from, s_end, &mut raw)?;
            }
            raw.extend(head);
            let mut last_t = i64::MIN;
            let vals = raw.into_iter().filter_map(|(t, b)| {
                if t <= last_t {
                    return None;
                }
                last_t = t;
                Some((t, Value::from_bits(kind, b).as_f64()))
            });
            // Into a vector of their own: `aggregate` adds to the last bucket when it has
            // the same start, and the last stored bucket need not be the newest one.
            let mut from_raw = Vec::new();
            rollup::aggregate(vals, w, &mut from_raw);
            buckets.append(&mut from_raw);
            let buckets = rollup::merge_adjacent(buckets);
            if !buckets.is_empty() {
                out.push(RollupSeries {
                    labels,
                    kind,
                    buckets,
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Before this time (ms) some samples may be held by rollups only: the start of the
    /// oldest raw segment (`i64::MAX` without any), or `i64::MIN` while no rollup
    /// segment exists. A query starting at or after it finds every sample in the raw
    /// segments and the head; [`Db::select`] alone answers it.
    pub fn raw_since(&self) -> i64 {
        let segs = lock(&self.segments);
        if !segs.iter().any(|s| matches!(s.kind, SegKind::Rollup(_))) {
            return i64::MIN;
        }
        segs.iter()
            .filter(|s| s.kind == SegKind::Raw)
            .map(|s| s.mint)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The newest sample any stored rollup of `res` covers (`None` without any): rollup
    /// buckets after it can only come from raw samples.
    pub fn rollups_until(&self, res: Resolution) -> Option<i64> {
        lock(&self.segments)
            .iter()
            .filter(|s| s.kind == SegKind::Rollup(res))
            .map(|s| s.maxt)
            .max()
    }

    /// Picks the coarsest resolution not finer than `step_ms`: hour rollups for steps of
    /// an hour or more, minute rollups for a minute or more, raw samples otherwise.
    pub fn select_step(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        step_ms: i64,
    ) -> Result<Selection> {
        for res in [Resolution::Hour, Resolution::Minute] {
            if step_ms >= res.ms() {
                return Ok(Selection::Rollup(
                    res,
                    self.select_rollup(matchers, start, end, res)?,
                ));
            }
        }
        Ok(Selection::Raw(self.select(matchers, start, end)?))
    }

    fn visit(&self, matchers: &[Matcher], start: i64, end: i64, mut f: impl FnMut(&Labels)) {
        for id in self.ids(matchers) {
            let sh = lock(&self.shards[shard_of(id)]);
            if let Some(s) = sh.get(id)
                && overlaps(s, start, end)
            {
                f(&s.labels);
            }
        }
    }

    /// Label sets of the series matching `matchers` that hold data overlapping
    /// `[start, end]` (by chunk and segment time ranges), sorted.
    pub fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Labels> {
        let mut out = Vec::new();
        self.visit(matchers, start, end, |l| out.push(l.clone()));
        out.sort();
        out
    }

    /// Sorted label names of the matching series (all series when `matchers` is empty).
    pub fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut set = BTreeSet::new();
        self.visit(matchers, start, end, |l| {
            for (k, _) in l.iter() {
                if !set.contains(k) {
                    set.insert(k.to_string());
                }
            }
        });
        set.into_iter().collect()
    }

    /// Sorted values of label `name` among the matching series.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<String> {
        let mut set = BTreeSet::new();
        self.visit(matchers, start, end, |l| {
            if let Some(v) = l.get(name)
                && !set.contains(v)
            {
                set.insert(v.to_string());
            }
        });
        set.into_iter().collect()
    }
}
