//! Proptest model check: any sequence of appends, syncs, flushes, compactions, kills
//! and power cuts gives the same query answers as a naive in-memory model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{labels, opts, pt};
use crate::rollup::{self, Bucket};
use crate::*;

#[derive(Clone, Debug)]
enum Op {
    /// (series, time step in s relative to that series' cursor, kind selector, value)
    Append(Vec<(usize, i64, u8, i8)>),
    Sync,
    Flush,
    FlushAll,
    /// `compact` (false) or `compact_full` (true).
    Compact(bool),
    /// Process killed: everything written survives.
    Kill,
    /// Power cut: only fsynced data survives.
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0usize..4, -2i64..12, 0u8..12, any::<i8>()), 1..8).prop_map(Op::Append),
        1 => Just(Op::Sync),
        1 => Just(Op::Flush),
        1 => Just(Op::FlushAll),
        1 => any::<bool>().prop_map(Op::Compact),
        1 => Just(Op::Kill),
        1 => Just(Op::PowerLoss),
    ]
}

type ModelSeries = (ValueKind, BTreeMap<i64, Value>);

#[derive(Clone, Default)]
struct Model {
    series: BTreeMap<usize, ModelSeries>,
}

impl Model {
    /// Applies one sample; returns "stored", "dup" or "rejected".
    fn append(&mut self, s: usize, t: i64, v: Value, max_series: usize) -> &'static str {
        if !self.series.contains_key(&s) {
            if self.series.len() >= max_series {
                return "rejected";
            }
            self.series.insert(s, (v.kind(), BTreeMap::new()));
        }
        let Some((kind, samples)) = self.series.get_mut(&s) else {
            return "rejected";
        };
        if *kind != v.kind() {
            return "rejected";
        }
        match samples.last_key_value() {
            Some((&lt, lv)) if t < lt || (t == lt && *lv != v) => "rejected",
            Some((&lt, _)) if t == lt => "dup",
            _ => {
                samples.insert(t, v);
                "stored"
            }
        }
    }

    fn select(&self, m: &[Matcher], start: i64, end: i64) -> Vec<Series> {
        let mut out: Vec<Series> = self
            .series
            .iter()
            .filter(|(i, _)| m.iter().all(|m| m.matches_labels(&labels(**i))))
            .map(|(i, (kind, s))| Series {
                labels: labels(*i),
                kind: *kind,
                samples: s
                    .range(start..=end)
                    .map(|(&t, &v)| Sample { t, v })
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

fn matcher_sets() -> Vec<Vec<Matcher>> {
    vec![
        vec![],
        vec![Matcher::metric("a")],
        vec![Matcher::new("job", MatchOp::Ne, "x").unwrap()],
        vec![
            Matcher::new("job", MatchOp::Re, "x|y").unwrap(),
            Matcher::new("__name__", MatchOp::Nre, "b").unwrap(),
        ],
        vec![Matcher::new("job", MatchOp::Eq, "").unwrap()],
    ]
}

fn check_queries(db: &Db, model: &Model, start: i64, end: i64) -> Result<(), TestCaseError> {
    for m in matcher_sets() {
        let got = db
            .select(&m, start, end)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &model.select(&m, start, end), "matchers {:?}", m);
        let all = model.select(&m, i64::MIN, i64::MAX);
        let want: Vec<Labels> = all.iter().map(|s| s.labels.clone()).collect();
        prop_assert_eq!(db.series(&m, i64::MIN, i64::MAX), want);
        // Rollups over the whole range and over [start, end] (whole buckets whose start
        // lies in the range after aligning `start` down).
        for (res, lo, hi) in [
            (Resolution::Minute, i64::MIN, i64::MAX),
            (Resolution::Hour, i64::MIN, i64::MAX),
            (Resolution::Minute, start, end),
        ] {
            let rolled = db
                .select_rollup(&m, lo, hi, res)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let aligned = lo.div_euclid(res.ms()).saturating_mul(res.ms());
            let want: Vec<(Labels, Vec<Bucket>)> = all
                .iter()
                .map(|s| {
                    let mut b = Vec::new();
                    let vals = s.samples.iter().map(|x| (x.t, x.v.as_f64()));
                    rollup::aggregate(vals, res.ms(), &mut b);
                    b.retain(|b| b.start >= aligned && b.start <= hi);
                    (s.labels.clone(), b)
                })
                .filter(|(_, b)| !b.is_empty())
                .collect();
            let got: Vec<(Labels, Vec<Bucket>)> =
                rolled.into_iter().map(|r| (r.labels, r.buckets)).collect();
            // Sums and increases of full-precision floats depend on the order of the
            // additions (a stored bucket merged with one from raw samples adds partial
            // sums): equal within rounding; everything else exactly.
            let loose = |v: &[(Labels, Vec<Bucket>)]| -> Vec<(Labels, Vec<Bucket>)> {
                v.iter()
                    .map(|(l, bs)| {
                        let bs = bs
                            .iter()
                            .map(|b| Bucket {
                                sum: 0.0,
                                increase: 0.0,
                                ..*b
                            })
                            .collect();
                        (l.clone(), bs)
                    })
                    .collect()
            };
            prop_assert_eq!(loose(&got), loose(&want));
            for ((_, g), (_, w)) in got.iter().zip(&want) {
                for (g, w) in g.iter().zip(w) {
                    for (a, b) in [(g.sum, w.sum), (g.increase, w.increase)] {
                        let tol = 1e-12 * a.abs().max(b.abs()).max(1.0);
                        prop_assert!((a - b).abs() <= tol, "{:?} vs {:?}", g, w);
                    }
                }
            }
        }
        let mut names: Vec<String> = Vec::new();
        let mut jobs: Vec<String> = Vec::new();
        for s in &all {
            for (k, v) in s.labels.iter() {
                names.push(k.to_string());
                if k == "job" {
                    jobs.push(v.to_string());
                }
            }
        }
        for v in [&mut names, &mut jobs] {
            v.sort();
            v.dedup();
        }
        prop_assert_eq!(db.label_names(&m, i64::MIN, i64::MAX), names);
        prop_assert_eq!(db.label_values("job", &m, i64::MIN, i64::MAX), jobs);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn model_check(ops in proptest::collection::vec(op(), 1..25), start in 0i64..60, len in 0i64..120) {
        let dir = tempfile::tempdir().unwrap();
        let o = opts();
        let mut db = Db::open(dir.path(), o.clone()).unwrap();
        let mut cur = Model::default();
        let mut durable = Model::default();
        let mut cursor = [0i64; 4];
        for op in ops {
            match op {
                Op::Append(items) => {
                    let mut points = Vec::new();
                    let mut want = (0, 0, 0);
                    for (s, step, ksel, val) in items {
                        let t = cursor[s] + step * 1000;
                        cursor[s] = cursor[s].max(t);
                        // Integers; small whole floats (decimal columns); floats at full
                        // precision (binary or XOR columns).
                        let v = if ksel == 0 || s == 3 {
                            Value::Int(i64::from(val))
                        } else if ksel < 7 {
                            Value::Float(f64::from(val))
                        } else {
                            Value::Float(f64::from(val) / 3.0 + 1000.0 / 7.0)
                        };
                        match cur.append(s, t, v, o.max_series) {
                            "stored" => want.0 += 1,
                            "dup" => want.1 += 1,
                            _ => want.2 += 1,
                        }
                        points.push(pt(s, t, v));
                    }
                    let r = db.append(&points).unwrap();
                    prop_assert_eq!((r.accepted, r.duplicates, r.errors.len()), want);
                }
                Op::Sync => {
                    db.sync().unwrap();
                    durable = cur.clone();
                }
                Op::Flush => {
                    db.flush().unwrap();
                    durable = cur.clone();
                }
                Op::FlushAll => {
                    db.flush_all().unwrap();
                    durable = cur.clone();
                    let st = db.stats();
                    let total: usize = cur.series.values().map(|s| s.1.len()).sum();
                    prop_assert_eq!((st.head_samples, st.raw_samples_on_disk), (0, total as u64));
                }
                Op::Compact(full) => {
                    if full {
                        db.compact_full().unwrap();
                    } else {
                        db.compact().unwrap();
                    }
                }
                Op::Kill => {
                    drop(db);
                    db = Db::open(dir.path(), o.clone()).unwrap();
                    durable = cur.clone();
                }
                Op::PowerLoss => {
                    db.simulate_power_loss().unwrap();
                    db = Db::open(dir.path(), o.clone()).unwrap();
                    cur = durable.clone();
                }
            }
            check_queries(&db, &cur, start * 1000, (start + len) * 1000)?;
        }
    }
}

/// Operations of the retention model check; appends move one clock forward for all
/// series, so retention never rejects a sample.
#[derive(Clone, Debug)]
enum RetOp {
    /// (seconds to move the clock, (series, value) per sample)
    Append(i64, Vec<(usize, i8)>),
    Flush,
    FlushAll,
    Compact(bool),
    Kill,
    /// Retention with the floor this many seconds behind the clock.
    Expire(i64),
}

fn ret_op() -> impl Strategy<Value = RetOp> {
    prop_oneof![
        6 => (1i64..40, proptest::collection::vec((0usize..3, any::<i8>()), 1..6))
            .prop_map(|(dt, items)| RetOp::Append(dt, items)),
        2 => Just(RetOp::Flush),
        1 => Just(RetOp::FlushAll),
        1 => any::<bool>().prop_map(RetOp::Compact),
        1 => Just(RetOp::Kill),
        2 => (0i64..200).prop_map(RetOp::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Raw data expiring segment by segment (its minute rollups written as it goes)
    /// leaves minute and hour buckets equal to the model's over every sample ever
    /// appended, and the raw samples left are, per series, the newest ones: at least
    /// those at or after the highest floor.
    #[test]
    fn retention_keeps_rollups_exact(ops in proptest::collection::vec(ret_op(), 1..30)) {
        const DAY: i64 = 86_400_000;
        let dir = tempfile::tempdir().unwrap();
        let o = Options { retention_ms: DAY, ..opts() };
        let mut db = Db::open(dir.path(), o.clone()).unwrap();
        let mut model: BTreeMap<usize, Vec<(i64, f64)>> = BTreeMap::new();
        let mut clock = 0i64;
        let mut floor = i64::MIN;
        for op in ops {
            match op {
                RetOp::Append(dt, items) => {
                    clock += dt * 1000;
                    let mut points = Vec::new();
                    let mut seen = [false; 3];
                    for (s, v) in items {
                        if std::mem::replace(&mut seen[s], true) {
                            continue;
                        }
                        let t = clock + s as i64;
                        model.entry(s).or_default().push((t, f64::from(v)));
                        points.push(pt(s, t, Value::Float(f64::from(v))));
                    }
                    let r = db.append(&points).unwrap();
                    prop_assert_eq!(r.accepted, points.len());
                }
                RetOp::Flush => { db.flush().unwrap(); }
                RetOp::FlushAll => { db.flush_all().unwrap(); }
                RetOp::Compact(full) => {
                    if full { db.compact_full().unwrap(); } else { db.compact().unwrap(); }
                }
                RetOp::Kill => {
                    drop(db);
                    db = Db::open(dir.path(), o.clone()).unwrap();
                }
                RetOp::Expire(back) => {
                    let f = clock - back * 1000;
                    floor = floor.max(f);
                    db.apply_retention(f + DAY).unwrap();
                }
            }
            for res in [Resolution::Minute, Resolution::Hour] {
                let got: Vec<(Labels, Vec<Bucket>)> = db
                    .select_rollup(&[], i64::MIN, i64::MAX, res)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.labels, r.buckets))
                    .collect();
                let want: Vec<(Labels, Vec<Bucket>)> = model
                    .iter()
                    .map(|(&s, samples)| {
                        let mut b = Vec::new();
                        rollup::aggregate(samples.iter().copied(), res.ms(), &mut b);
                        (labels(s), b)
                    })
                    .collect();
                prop_assert_eq!(got, want, "{:?}", res);
            }
            let raw = db.select(&[], i64::MIN, i64::MAX).unwrap();
            for (&s, samples) in &model {
                let got: Vec<(i64, f64)> = raw
                    .iter()
                    .find(|x| x.labels == labels(s))
                    .map(|x| x.samples.iter().map(|p| (p.t, p.v.as_f64())).collect())
                    .unwrap_or_default();
                let from = got.first().map_or(samples.len(), |g| {
                    samples.iter().position(|m| m.0 == g.0).unwrap_or(usize::MAX)
                });
                prop_assert!(from <= samples.len(), "series {}: raw samples not in the model", s);
                prop_assert_eq!(&got[..], &samples[from..], "series {}: not a suffix", s);
                prop_assert!(
                    samples[..from].iter().all(|m| m.0 < floor),
                    "series {}: a sample at or after the floor {} is gone", s, floor
                );
            }
            let listed = db.series(&[], i64::MIN, i64::MAX);
            prop_assert_eq!(listed, model.keys().map(|&s| labels(s)).collect::<Vec<_>>());
        }
    }
}
