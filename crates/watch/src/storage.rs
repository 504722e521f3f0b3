//! The store as PromQL sees it: matchers translated, samples as floats, and rollup
//! buckets as samples where the raw data has expired.

use std::collections::HashMap;

use promql::{MatchOp, Matcher, SelectHints, Series, Storage, StorageError};

/// A [`promql::Storage`] over the time-series store.
pub struct DbStorage<'a> {
    db: &'a tsdb::Db,
}

impl<'a> DbStorage<'a> {
    /// A view of `db`.
    pub fn new(db: &'a tsdb::Db) -> DbStorage<'a> {
        DbStorage { db }
    }
}

/// PromQL's matchers as the store's.
pub fn to_store_matchers(matchers: &[Matcher]) -> Result<Vec<tsdb::Matcher>, StorageError> {
    matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Equal => tsdb::MatchOp::Eq,
                MatchOp::NotEqual => tsdb::MatchOp::Ne,
                MatchOp::Regex => tsdb::MatchOp::Re,
                MatchOp::NotRegex => tsdb::MatchOp::Nre,
            };
            tsdb::Matcher::new(m.name.clone(), op, m.value.clone())
                .map_err(|e| StorageError(e.to_string()))
        })
        .collect()
}

impl Storage for DbStorage<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Series>, StorageError> {
        self.select_hinted(matchers, start_ms, end_ms, &SelectHints::default())
    }

    /// Raw samples where the store still has them; before that (raw data expires
    /// after 15 days by default), samples made from the rollups: minute buckets while
    /// they are kept (90 days), hour buckets before that (2 years). Which value a
    /// bucket gives depends on the function the selection is for, as in Thanos'
    /// downsampled reads: see [`from_buckets`].
    fn select_hinted(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints<'_>,
    ) -> Result<Vec<Series>, StorageError> {
        let m = to_store_matchers(matchers)?;
        let err = |e: tsdb::Error| StorageError(e.to_string());
        let raw = self.db.select(&m, start_ms, end_ms).map_err(err)?;
        let since = self.db.raw_since();
        let mut out: Vec<Series> = raw
            .into_iter()
            .map(|s| Series {
                labels: promql::Labels::new(s.labels.iter()),
                samples: s.samples.iter().map(|x| (x.t, x.v.as_f64())).collect(),
            })
            .collect();
        if start_ms >= since {
            return Ok(out);
        }
        let mut by_labels: HashMap<promql::Labels, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        let mut older: Vec<Vec<tsdb::Bucket>> = vec![Vec::new(); out.len()];
        // Hours first, then minutes: minute buckets replace the hours they cover.
        for res in [tsdb::Resolution::Hour, tsdb::Resolution::Minute] {
            // Only stored buckets matter (newer ones would come from raw samples, which
            // are used as they are), so the read ends where the stored rollups end.
            let Some(until) = self.db.rollups_until(res).filter(|&u| u >= start_ms) else {
                continue;
            };
            for r in self
                .db
                .select_rollup(&m, start_ms, end_ms.min(until), res)
                .map_err(err)?
            {
                let labels = promql::Labels::new(r.labels.iter());
                let i = *by_labels.entry(labels.clone()).or_insert_with(|| {
                    out.push(Series {
                        labels,
                        samples: Vec::new(),
                    });
                    older.push(Vec::new());
                    out.len() - 1
                });
                let before = out[i].samples.first().map_or(i64::MAX, |x| x.0);
                let mut buckets: Vec<tsdb::Bucket> = r
                    .buckets
                    .into_iter()
                    .filter(|b| b.last_t < before)
                    .collect();
                if let Some(first) = buckets.first() {
                    let from = first.first_t;
                    older[i].retain(|b| b.last_t < from);
                    older[i].append(&mut buckets);
                }
            }
        }
        for (s, buckets) in out.iter_mut().zip(older) {
            if !buckets.is_empty() {
                let mut samples = from_buckets(&buckets, hints.func);
                samples.retain(|x| x.0 >= start_ms && x.0 <= end_ms);
                samples.append(&mut s.samples);
                s.samples = samples;
            }
        }
        out.retain(|s| !s.samples.is_empty());
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// Samples standing for rollup buckets (in time order), chosen by the function that
/// reads them (Thanos' choice of aggregate for downsampled data):
///
/// * `rate`, `increase`, `irate`, `resets`: the counter at each bucket's first and last
///   sample, so increases within and across buckets are exact; a bucket whose counter
///   was reset inside it gets two samples more before its last one (its increase up to
///   the reset, then 0), so the reset is counted with its exact increase;
/// * `max_over_time`, `min_over_time`, `sum_over_time`, `last_over_time`: the bucket's
///   maximum, minimum, sum, last value, at its last sample's time;
/// * anything else (a plain selector, `avg_over_time`, `abs`, …): the bucket's mean at
///   its last sample's time.
///
/// So answers over rollups are exact at bucket granularity for these, and
/// `count_over_time` counts buckets, not samples.
pub(crate) fn from_buckets(buckets: &[tsdb::Bucket], func: Option<&str>) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(buckets.len() * 2);
    match func {
        Some("rate" | "increase" | "irate" | "resets") => {
            for b in buckets {
                out.push((b.first_t, b.first));
                if b.count < 2 || b.last_t <= b.first_t {
                    continue;
                }
                let plain = b.last - b.first;
                let reset = b.last < b.first
                    || (b.increase - plain).abs() > 1e-9 * b.increase.abs().max(b.last.abs());
                if reset && b.last_t - b.first_t >= 3 {
                    out.push((b.last_t - 2, b.first + (b.increase - b.last).max(0.0)));
                    out.push((b.last_t - 1, 0.0));
                }
                out.push((b.last_t, b.last));
            }
        }
        _ => {
            let pick: fn(&tsdb::Bucket) -> f64 = match func {
                Some("max_over_time") => |b| b.max,
                Some("min_over_time") => |b| b.min,
                Some("sum_over_time") => |b| b.sum,
                Some("last_over_time") => |b| b.last,
                _ => tsdb::Bucket::avg,
            };
            out.extend(buckets.iter().map(|b| (b.last_t, pick(b))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use promql::{Engine, QueryValue};
    use tsdb::{Db, Labels, Options, Point, Value};

    use super::*;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000;
    const DAY: i64 = 86_400_000;

    fn one(v: QueryValue) -> Vec<(String, f64)> {
        let QueryValue::Vector(v) = v else {
            panic!("{v:?}")
        };
        v.into_iter()
            .map(|s| (s.labels.get("__name__").unwrap_or("").to_string(), s.v))
            .collect()
    }

    /// Two hours of a gauge and a counter (reset once, inside a minute) at 10 s; raw
    /// retention expires the first hour, leaving its minute rollups. PromQL over the
    /// expired hour answers from the buckets, chosen by function; over the second hour
    /// from the raw samples, as before.
    #[test]
    fn expired_raw_data_is_answered_from_rollups() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path(),
            Options {
                retention_ms: DAY,
                ..Options::default()
            },
        )
        .unwrap();
        let g = Labels::with_name("g", [("task", "a")]).unwrap();
        let c = Labels::with_name("c", [("task", "a")]).unwrap();
        let gauge = |k: i64| ((k * 37) % 101) as f64;
        let reset_at = 20 * 6 + 3; // 20:30
        let counter = |k: i64| if k < reset_at { k } else { k - reset_at } as f64;
        for k in 0..720 {
            let t = T0 + k * 10_000;
            db.append(&[
                Point {
                    labels: g.clone(),
                    t,
                    v: Value::Float(gauge(k)),
                },
                Point {
                    labels: c.clone(),
                    t,
                    v: Value::Float(counter(k)),
                },
            ])
            .unwrap();
            if k == 359 {
                db.flush_all().unwrap();
            }
        }
        db.flush_all().unwrap();
        let s = DbStorage::new(&db);
        let e = Engine::default();
        let q = |expr: &str, t: i64| one(e.instant_query(&s, expr, t).unwrap());
        let before = [
            q("g", T0 + 30 * 60_000),
            q("max_over_time(g[5m])", T0 + 30 * 60_000),
            q("increase(c[30m])", T0 + 45 * 60_000),
            q("g", T0 + 90 * 60_000),
        ];
        assert_eq!(db.raw_since(), i64::MIN, "no rollups yet");
        // The first hour's segment ends before the floor: it expires into minute rollups.
        let r = db.apply_retention(T0 + DAY + 3_600_000).unwrap();
        assert_eq!(r.segments_deleted, 1, "{r:?}");
        assert!(
            db.select(&[], T0, T0 + 3_599_999).unwrap().is_empty(),
            "the first hour's raw samples are gone"
        );
        assert_eq!(db.raw_since(), T0 + 3_600_000);

        // A plain selector: the mean of the minute before, at its last sample (29:50).
        let minute_29: Vec<f64> = (29 * 6..30 * 6).map(gauge).collect();
        let mean = minute_29.iter().sum::<f64>() / 6.0;
        assert_eq!(q("g", T0 + 30 * 60_000), vec![("g".into(), mean)]);
        assert_ne!(mean, before[0][0].1, "the raw answer was the last sample");
        // max_over_time over the minutes whose last sample is in (25:00, 30:00]: 25–29.
        let max = (25 * 6..30 * 6).map(gauge).fold(f64::MIN, f64::max);
        assert_eq!(
            q("max_over_time(g[5m])", T0 + 30 * 60_000),
            vec![(String::new(), max)]
        );
        assert_eq!(before[1], vec![(String::new(), max)]);
        // The counter's increase across the reset inside minute 20: as from raw samples,
        // up to PromQL's extrapolation over other sample times (here within 2 %).
        let inc = q("increase(c[30m])", T0 + 45 * 60_000);
        let raw_inc = before[2][0].1;
        assert!(
            (inc[0].1 - raw_inc).abs() < 0.02 * raw_inc,
            "{inc:?} vs {raw_inc}"
        );
        // Without the reset samples the drop would be counted from 0.
        assert!(inc[0].1 > 170.0, "{inc:?}");
        // Where raw samples are left, they answer as before.
        assert_eq!(q("g", T0 + 90 * 60_000), before[3]);
        // A range query across the boundary: a value at every step, bucket means before.
        let QueryValue::Matrix(m) = e
            .range_query(&s, "g", T0 + 50 * 60_000, T0 + 70 * 60_000, 60_000)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].samples.len(), 21);
        assert_eq!(m[0].samples[20], (T0 + 70 * 60_000, gauge(70 * 6)));
        // Series held only by rollups are listed too.
        let n = q("count_over_time(c[10m])", T0 + 30 * 60_000);
        assert_eq!(
            n,
            vec![(String::new(), 10.0)],
            "counts buckets, not samples"
        );
    }
}
