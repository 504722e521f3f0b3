//! One collection round: every started task by its cgroup (process tasks) or its
//! container's cgroup, the host, the server's registry and any extra source's samples
//! (the proxy's), into metric families; and those families into the store.

use std::collections::HashMap;
use std::sync::Mutex;

use metrics::{
    CgroupMounts, Desc, Families, MetricFamily, MetricType, Sample, SampleRef, SampleSuffix,
    TaskTarget,
};

use crate::{EnvOf, ExtraMetrics};

/// Collector state kept between rounds: the cgroup mounts, a target per task (its files
/// stay open), the host collector, the extra source's series.
pub(crate) struct Collector {
    mounts: Option<CgroupMounts>,
    tasks: metrics::TaskCollector,
    host: metrics::HostCollector,
    targets: HashMap<String, (String, TaskTarget)>,
    extra: Vec<ExtraSeries>,
}

/// One round: families for `/metrics`, and the samples of `families[resolved..]` already
/// as points for the store (their label sets kept from round to round).
pub(crate) struct Round {
    pub(crate) families: Vec<MetricFamily>,
    pub(crate) resolved: usize,
    pub(crate) points: Vec<tsdb::Point>,
    /// Tasks collected last round and gone now: [`store`] ends their series.
    pub(crate) ended: Vec<String>,
}

/// A series of the extra source (the proxy), as the last round saw it. The source hands
/// its series out in the same order every round, so a round compares each with the one
/// at its position and builds label sets only from where they differ (backends came or
/// went). Before, the proxy rendered text that was parsed into ~30 fresh label sets per
/// backend every round: most of a round's allocations, whose holes kept the heap growing.
struct ExtraSeries {
    desc: &'static Desc,
    suffix: SampleSuffix,
    labels: metrics::Labels,
    /// The store's label set for the series; `None` when the store refuses it.
    stored: Option<tsdb::Labels>,
}

impl ExtraSeries {
    fn new(db: &tsdb::Db, s: &SampleRef<'_>) -> ExtraSeries {
        let name = format!("{}{}", s.desc.name, s.suffix.as_str());
        let stored = match db.labels_for(&name, s.labels.iter().copied()) {
            Ok(labels) => Some(labels),
            Err(e) => {
                tracing::debug!(error = %e, series = %name, "sample not stored");
                None
            }
        };
        ExtraSeries {
            desc: s.desc,
            suffix: s.suffix,
            labels: s.labels.iter().map(|&(k, v)| (k, v)).collect(),
            stored,
        }
    }

    fn is(&self, s: &SampleRef<'_>) -> bool {
        let pairs = self.labels.pairs();
        (std::ptr::eq(self.desc, s.desc) || self.desc.name == s.desc.name)
            && self.suffix == s.suffix
            && pairs.len() == s.labels.len()
            && pairs
                .iter()
                .zip(s.labels)
                .all(|((k, v), (k2, v2))| k == k2 && v == v2)
    }
}

impl Collector {
    pub(crate) fn new() -> Collector {
        let mounts = match CgroupMounts::detect() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "no cgroup mounts: task metrics are not collected");
                None
            }
        };
        Collector {
            mounts,
            tasks: metrics::TaskCollector::new(),
            host: metrics::HostCollector::new(),
            targets: HashMap::new(),
            extra: Vec::new(),
        }
    }

    /// Collects every task, the host, `registry` and `extra` at `now_ms`.
    pub(crate) fn round(
        &mut self,
        db: &tsdb::Db,
        now_ms: i64,
        targets: &[engine::MetricTarget],
        env_of: Option<&EnvOf>,
        extra: Option<&ExtraMetrics>,
        registry: &metrics::Registry,
    ) -> Round {
        let now_s = now_ms as f64 / 1000.0;
        let mut out = Families::new();
        out.set_timestamp_ms(Some(now_ms));
        // Targets of tasks that ended are dropped (their files closed).
        let mut ended = Vec::new();
        self.targets.retain(|id, _| {
            let live = targets.iter().any(|t| &t.task_id == id);
            if !live {
                ended.push(id.clone());
            }
            live
        });
        if let Some(mounts) = &self.mounts {
            for t in targets {
                let key = identity_key(t);
                let fresh = self.targets.get(&t.task_id).is_none_or(|(k, _)| *k != key);
                if fresh {
                    match target_for(mounts, t, env_of) {
                        Some(target) => {
                            self.targets.insert(t.task_id.clone(), (key, target));
                        }
                        None => continue,
                    }
                }
                if let Some((_, target)) = self.targets.get_mut(&t.task_id) {
                    self.tasks.collect(target, now_s, &mut out);
                }
            }
        }
        self.host.collect(now_s, &mut out);
        out.extend(registry.collect());
        let mut families = out.into_families();
        let resolved = families.len();
        let mut points = Vec::new();
        if let Some(extra) = extra {
            self.extra_round(db, extra, now_ms, &mut families, &mut points);
        }
        Round {
            families,
            resolved,
            points,
            ended,
        }
    }

    /// The extra source's samples as families (appended to `families`) and points.
    fn extra_round(
        &mut self,
        db: &tsdb::Db,
        extra: &ExtraMetrics,
        now_ms: i64,
        families: &mut Vec<MetricFamily>,
        points: &mut Vec<tsdb::Point>,
    ) {
        let first = families.len();
        points.reserve(self.extra.len());
        let mut seen = 0;
        let series = &mut self.extra;
        extra(&mut |s: &SampleRef<'_>| {
            if !series.get(seen).is_some_and(|e| e.is(s)) {
                series.truncate(seen);
                series.push(ExtraSeries::new(db, s));
            }
            let e = &series[seen];
            seen += 1;
            if families[first..]
                .last()
                .is_none_or(|f| f.desc.name != s.desc.name)
            {
                families.push(MetricFamily {
                    desc: s.desc.clone(),
                    samples: Vec::new(),
                });
            }
            if let Some(f) = families.last_mut() {
                f.samples.push(Sample {
                    suffix: s.suffix,
                    labels: e.labels.clone(),
                    extra: Vec::new(),
                    value: s.value,
                    timestamp_ms: Some(now_ms),
                });
            }
            if let Some(labels) = &e.stored {
                points.push(tsdb::Point {
                    labels: labels.clone(),
                    t: now_ms,
                    v: tsdb::Value::Float(s.value),
                });
            }
        });
        series.truncate(seen);
    }
}

/// What a target was made from; a change (a restarted container, a new pid) makes a new one.
fn identity_key(t: &engine::MetricTarget) -> String {
    format!("{:?}|{:?}|{:?}", t.cgroup, t.container_id, t.pid)
}

/// The collector's target for one task, with Slipway's and cAdvisor's labels.
fn target_for(
    mounts: &CgroupMounts,
    t: &engine::MetricTarget,
    env_of: Option<&EnvOf>,
) -> Option<TaskTarget> {
    let (id, paths) = match (&t.cgroup, &t.container_id) {
        (Some(rel), _) => (format!("/{rel}"), mounts.paths(rel)),
        (None, Some(container)) => metrics::docker_cgroup(mounts, container)?,
        (None, None) => return None,
    };
    let env = env_of.map_or_else(String::new, |f| f(&t.app_id, &t.labels));
    let mut labels = vec![
        ("id".to_string(), id),
        ("name".to_string(), t.task_id.clone()),
        ("image".to_string(), t.image.clone().unwrap_or_default()),
        ("app".to_string(), t.app_id.to_string()),
        ("task".to_string(), t.task_id.clone()),
        ("env".to_string(), env),
        ("version".to_string(), t.version.to_string()),
    ];
    labels.retain(|(_, v)| !v.is_empty());
    let mut target = TaskTarget::new(labels, paths, t.pid);
    target.start_time = t.started_at.map(|s| s.millis() as f64 / 1000.0);
    Some(target)
}

/// Appends a round to the store (one batch); returns the samples stored. Metadata is
/// recorded per family for the metadata API.
pub(crate) fn store(
    db: &tsdb::Db,
    round: &mut Round,
    now_ms: i64,
    described: &mut std::collections::HashSet<String>,
) -> usize {
    let (families, resolved) = (&round.families, round.resolved);
    let mut points = std::mem::take(&mut round.points);
    points.reserve(families[..resolved].iter().map(|f| f.samples.len()).sum());
    for f in &families[..resolved] {
        for s in &f.samples {
            let name = f.sample_name(s);
            let pairs = s.label_pairs().filter(|(_, v)| !v.is_empty());
            // The store's own label set when the series exists: nothing is built for the
            // series a round repeats.
            let Ok(labels) = db.labels_for(&name, pairs) else {
                continue;
            };
            points.push(tsdb::Point {
                labels,
                t: s.timestamp_ms.unwrap_or(now_ms),
                v: tsdb::Value::Float(s.value),
            });
        }
    }
    for f in families {
        if described.contains(f.desc.name.as_ref()) {
            continue;
        }
        described.insert(f.desc.name.to_string());
        let kind = match f.desc.kind {
            MetricType::Counter => tsdb::MetricType::Counter,
            MetricType::Gauge => tsdb::MetricType::Gauge,
            MetricType::Histogram => tsdb::MetricType::Histogram,
            MetricType::Unknown => tsdb::MetricType::Unknown,
        };
        let _ = db.set_metadata(
            &f.desc.name,
            tsdb::Metadata {
                metric_type: kind,
                help: f.desc.help.to_string(),
                unit: f.desc.unit.to_string(),
            },
        );
    }
    stale_points(db, &round.ended, now_ms, &mut points);
    match db.append(&points) {
        Ok(report) => {
            if let Some((_, e)) = report.errors.first() {
                let full = report
                    .errors
                    .iter()
                    .any(|(_, e)| matches!(e, tsdb::Error::TooManySeries { .. }));
                if full && warn_due(now_ms) {
                    tracing::warn!(error = %e, rejected = report.errors.len(), "the time-series store is full: new series are not stored");
                } else {
                    tracing::debug!(error = %e, rejected = report.errors.len(), "samples not stored");
                }
            }
            report.accepted
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot store metrics");
            0
        }
    }
}

/// How far back a series of an ended task is looked for: PromQL's lookback, the time
/// its last value would otherwise still be returned.
const STALE_LOOKBACK_MS: i64 = 5 * 60_000;

/// Prometheus' staleness marker for the series of `ended` tasks (their own, `task=`, and
/// the proxy's, `backend=`) that have samples within the lookback: instant queries stop
/// returning a task's last values at once, as Prometheus does for a target that
/// disappears, instead of for 5 minutes (a rolling restart counted old and new tasks).
fn stale_points(db: &tsdb::Db, ended: &[String], now_ms: i64, points: &mut Vec<tsdb::Point>) {
    let stale = f64::from_bits(promql::STALE_NAN_BITS);
    for id in ended {
        for label in ["task", "backend"] {
            let Ok(m) = tsdb::Matcher::new(label, tsdb::MatchOp::Eq, id) else {
                continue;
            };
            for labels in db.series(&[m], now_ms - STALE_LOOKBACK_MS, now_ms) {
                points.push(tsdb::Point {
                    labels,
                    t: now_ms,
                    v: tsdb::Value::Float(stale),
                });
            }
        }
    }
}

/// Whether a "store full" warning is due: at most one a minute.
fn warn_due(now_ms: i64) -> bool {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now_ms.saturating_sub(last) < 60_000 {
        return false;
    }
    LAST.store(now_ms, std::sync::atomic::Ordering::Relaxed);
    true
}

/// The engine's own gauges: tasks by app and state.
pub(crate) struct EngineGauges {
    tasks: Option<metrics::GaugeVec>,
    /// The (app, state) pairs set last round: those without tasks now are removed, so an
    /// app scaled to zero or destroyed leaves no count behind.
    last: Mutex<Vec<(String, &'static str)>>,
}

impl EngineGauges {
    pub(crate) fn register(registry: &metrics::Registry) -> EngineGauges {
        let tasks = registry
            .gauge(
                "slipway_tasks",
                "Tasks the engine runs, by app and state.",
                &["app", "state"],
            )
            .ok();
        EngineGauges {
            tasks,
            last: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn update(&self, targets: &[engine::MetricTarget]) {
        let Some(tasks) = &self.tasks else { return };
        let mut counts: HashMap<(String, &'static str), f64> = HashMap::new();
        for t in targets {
            *counts.entry((t.app_id.to_string(), t.state)).or_default() += 1.0;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (app, state) in last.iter() {
            if !counts.contains_key(&(app.clone(), *state)) {
                tasks.remove(&[app, state]);
            }
        }
        last.clear();
        for ((app, state), n) in counts {
            if let Ok(g) = tasks.with(&[&app, state]) {
                g.set(n);
            }
            last.push((app, state));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn target(app: &str, state: &'static str) -> engine::MetricTarget {
        engine::MetricTarget {
            task_id: format!("{app}.1"),
            app_id: model::PathId::parse_relative(app, &model::PathId::root()),
            version: Default::default(),
            state,
            labels: Default::default(),
            image: None,
            cgroup: None,
            container_id: None,
            pid: None,
            started_at: None,
            cpus: 0.1,
            mem_mib: 32.0,
        }
    }

    /// When a task ends, its series and the proxy's for it as a backend get a staleness
    /// marker: PromQL stops returning them at once; other tasks' series are untouched.
    #[test]
    fn series_of_ended_tasks_end_with_a_staleness_marker() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb::Db::open(dir.path(), tsdb::Options::default()).unwrap();
        let point = |name: &str, pairs: &[(&str, &str)], v: f64| tsdb::Point {
            labels: tsdb::Labels::with_name(name, pairs.iter().copied()).unwrap(),
            t: 1_000,
            v: tsdb::Value::Float(v),
        };
        db.append(&[
            point("mem", &[("app", "/a"), ("task", "a.1")], 5.0),
            point("requests_total", &[("app", "/a"), ("backend", "a.1")], 3.0),
            point("mem", &[("app", "/b"), ("task", "b.1")], 7.0),
        ])
        .unwrap();
        let mut round = Round {
            families: Vec::new(),
            resolved: 0,
            points: Vec::new(),
            ended: vec!["a.1".into()],
        };
        assert_eq!(store(&db, &mut round, 2_000, &mut Default::default()), 2);
        let storage = crate::DbStorage::new(&db);
        let at = |t: i64| -> Vec<String> {
            let v = promql::Engine::default()
                .instant_query(&storage, r#"{__name__=~".+"}"#, t)
                .unwrap();
            let promql::QueryValue::Vector(v) = v else {
                panic!("{v:?}")
            };
            let mut names: Vec<String> = v.iter().map(|s| format!("{}", s.labels)).collect();
            names.sort();
            names
        };
        assert_eq!(at(1_500).len(), 3);
        assert_eq!(at(2_500), [r#"mem{app="/b", task="b.1"}"#]);
    }

    /// Tasks by app and state follow the engine: a pair without tasks any more is gone
    /// from the next round, not left at its last count.
    #[test]
    fn task_counts_drop_apps_and_states_that_are_gone() {
        let registry = metrics::Registry::new();
        let gauges = EngineGauges::register(&registry);
        let text = |registry: &metrics::Registry| {
            let mut out = String::new();
            metrics::encode(&registry.collect(), metrics::Format::Prometheus, &mut out);
            out.lines()
                .filter(|l| l.starts_with("slipway_tasks{"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        gauges.update(&[
            target("/a", "TASK_RUNNING"),
            target("/a", "TASK_RUNNING"),
            target("/b", "TASK_STAGING"),
        ]);
        assert_eq!(
            text(&registry),
            [
                r#"slipway_tasks{app="/a",state="TASK_RUNNING"} 2"#,
                r#"slipway_tasks{app="/b",state="TASK_STAGING"} 1"#
            ]
        );
        gauges.update(&[target("/b", "TASK_RUNNING")]);
        assert_eq!(
            text(&registry),
            [r#"slipway_tasks{app="/b",state="TASK_RUNNING"} 1"#]
        );
        gauges.update(&[]);
        assert!(text(&registry).is_empty());
    }

    static REQUESTS: Desc = Desc::new("x_requests_total", MetricType::Counter, "", "Requests.");
    static LATENCY: Desc = Desc::new("x_seconds", MetricType::Histogram, "", "Latency.");

    /// A source shaped like the proxy: per backend a counter and a histogram's `+Inf` bucket.
    fn source(backends: &[(&str, f64)]) -> Arc<ExtraMetrics> {
        let backends: Vec<(String, f64)> =
            backends.iter().map(|(b, v)| (b.to_string(), *v)).collect();
        Arc::new(move |f| {
            for (b, v) in &backends {
                f(&SampleRef {
                    desc: &REQUESTS,
                    suffix: SampleSuffix::None,
                    labels: &[("app", "/a"), ("backend", b)],
                    value: *v,
                });
            }
            for (b, v) in &backends {
                f(&SampleRef {
                    desc: &LATENCY,
                    suffix: SampleSuffix::Bucket,
                    labels: &[("app", "/a"), ("backend", b), ("le", "+Inf")],
                    value: v * 10.0,
                });
            }
        })
    }

    fn values(db: &tsdb::Db, name: &str, backend: &str) -> Vec<(i64, f64)> {
        let m = |n: &str, v: &str| tsdb::Matcher::new(n, tsdb::MatchOp::Eq, v).expect("matcher");
        let series = db
            .select(&[m("__name__", name), m("backend", backend)], 0, i64::MAX)
            .expect("select");
        series
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| (p.t, p.v.as_f64())))
            .collect()
    }

    #[test]
    fn extra_series_keep_their_label_sets_and_follow_backends_that_come_and_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = tsdb::Db::open(dir.path(), tsdb::Options::default()).expect("open");
        let registry = metrics::Registry::new();
        let mut c = Collector::new();
        let mut described = std::collections::HashSet::new();
        let mut round = |c: &mut Collector, t: i64, src: &Arc<ExtraMetrics>| {
            let mut r = c.round(&db, t, &[], None, Some(src.as_ref()), &registry);
            let extra: Vec<(String, Vec<(String, f64)>)> = r.families[r.resolved..]
                .iter()
                .map(|f| {
                    let samples = f.samples.iter().map(|s| {
                        let backend = s.labels.get("backend").unwrap_or_default().to_string();
                        (backend, s.value)
                    });
                    (f.sample_name(&f.samples[0]).into_owned(), samples.collect())
                })
                .collect();
            assert_eq!(
                r.points.len(),
                extra.iter().map(|(_, s)| s.len()).sum::<usize>()
            );
            store(&db, &mut r, t, &mut described);
            extra
        };
        let three = source(&[("a.1", 1.0), ("a.2", 2.0), ("a.3", 3.0)]);
        let first = round(&mut c, 1_000, &three);
        assert_eq!(first.len(), 2, "{first:?}");
        assert_eq!(first[0].0, "x_requests_total");
        assert_eq!(first[1].0, "x_seconds_bucket");
        assert_eq!(first[1].1[2], ("a.3".to_string(), 30.0));
        let built: Vec<*const (String, String)> =
            c.extra.iter().map(|e| e.labels.pairs().as_ptr()).collect();
        // The same series again: the label sets of the round before, not new ones.
        let again = source(&[("a.1", 4.0), ("a.2", 5.0), ("a.3", 6.0)]);
        round(&mut c, 2_000, &again);
        let kept: Vec<*const (String, String)> =
            c.extra.iter().map(|e| e.labels.pairs().as_ptr()).collect();
        assert_eq!(built, kept);
        // A backend in the middle goes: the others go on under their own labels.
        let two = source(&[("a.1", 7.0), ("a.3", 9.0)]);
        let last = round(&mut c, 3_000, &two);
        assert_eq!(
            last[0].1,
            [("a.1".to_string(), 7.0), ("a.3".to_string(), 9.0)]
        );
        assert_eq!(c.extra.len(), 4);
        assert_eq!(c.extra[0].labels.pairs().as_ptr(), built[0]);
        assert_eq!(
            values(&db, "x_requests_total", "a.3"),
            [(1_000, 3.0), (2_000, 6.0), (3_000, 9.0)]
        );
        assert_eq!(
            values(&db, "x_requests_total", "a.2"),
            [(1_000, 2.0), (2_000, 5.0)]
        );
        assert_eq!(
            values(&db, "x_seconds_bucket", "a.1"),
            [(1_000, 10.0), (2_000, 40.0), (3_000, 70.0)]
        );
        let meta = db.metadata(Some("x_seconds"));
        assert_eq!(meta.len(), 1, "{meta:?}");
    }
}
