//! One collection round: every started task by its cgroup (process tasks) or its
//! container's cgroup, the host, the server's registry and any extra Prometheus text (the
//! proxy's), into metric families; and those families into the store.

use std::borrow::Cow;
use std::collections::HashMap;

use metrics::{
    CgroupMounts, Desc, Families, MetricFamily, MetricType, Sample, SampleSuffix, TaskTarget,
};

use crate::{EnvOf, ExtraText};

/// Collector state kept between rounds: the cgroup mounts, a target per task (its files
/// stay open), the host collector.
pub(crate) struct Collector {
    mounts: Option<CgroupMounts>,
    tasks: metrics::TaskCollector,
    host: metrics::HostCollector,
    targets: HashMap<String, (String, TaskTarget)>,
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
        }
    }

    /// Collects every task, the host, `registry` and `extra` at `now_ms`.
    pub(crate) fn round(
        &mut self,
        now_ms: i64,
        targets: &[engine::MetricTarget],
        env_of: Option<&EnvOf>,
        extra: Option<&ExtraText>,
        registry: &metrics::Registry,
    ) -> Vec<MetricFamily> {
        let now_s = now_ms as f64 / 1000.0;
        let mut out = Families::new();
        out.set_timestamp_ms(Some(now_ms));
        // Targets of tasks that ended are dropped (their files closed).
        self.targets
            .retain(|id, _| targets.iter().any(|t| &t.task_id == id));
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
        if let Some(extra) = extra {
            out.extend(parse_text(&extra(), now_ms));
        }
        out.into_families()
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

/// Prometheus text (the proxy's) as families, stamped `now_ms`; unreadable text is logged.
fn parse_text(text: &str, now_ms: i64) -> Vec<MetricFamily> {
    let parsed = match metrics::reader::parse(text, metrics::Format::Prometheus) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the proxy's metrics");
            return Vec::new();
        }
    };
    parsed
        .into_iter()
        .map(|f| {
            let kind = match f.kind.as_str() {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                _ => MetricType::Unknown,
            };
            let name = f.name.clone();
            let samples = f
                .samples
                .into_iter()
                .map(|s| {
                    let suffix = match s.name.strip_prefix(name.as_str()) {
                        Some("_bucket") => SampleSuffix::Bucket,
                        Some("_sum") => SampleSuffix::Sum,
                        Some("_count") => SampleSuffix::Count,
                        _ => SampleSuffix::None,
                    };
                    Sample {
                        suffix,
                        labels: metrics::Labels::new(s.labels),
                        extra: Vec::new(),
                        value: s.value,
                        timestamp_ms: Some(now_ms),
                    }
                })
                .collect();
            MetricFamily {
                desc: Desc {
                    name: Cow::Owned(name),
                    kind,
                    help: Cow::Owned(f.help.unwrap_or_default()),
                    unit: Cow::Owned(f.unit.unwrap_or_default()),
                },
                samples,
            }
        })
        .collect()
}

/// Appends a round to the store (one batch); returns the samples stored. Metadata is
/// recorded per family for the metadata API.
pub(crate) fn store(
    db: &tsdb::Db,
    families: &[MetricFamily],
    now_ms: i64,
    described: &mut std::collections::HashSet<String>,
) -> usize {
    let mut points = Vec::with_capacity(families.iter().map(|f| f.samples.len()).sum());
    for f in families {
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
    match db.append(&points) {
        Ok(report) => {
            if let Some((_, e)) = report.errors.first() {
                tracing::debug!(error = %e, rejected = report.errors.len(), "samples not stored");
            }
            report.accepted
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot store metrics");
            0
        }
    }
}

/// The engine's own gauges: tasks by state, apps, deployments.
pub(crate) struct EngineGauges {
    tasks: Option<metrics::GaugeVec>,
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
        EngineGauges { tasks }
    }

    pub(crate) fn update(&self, _engine: &engine::Engine, targets: &[engine::MetricTarget]) {
        let Some(tasks) = &self.tasks else { return };
        let mut counts: HashMap<(String, &str), f64> = HashMap::new();
        for t in targets {
            *counts.entry((t.app_id.to_string(), t.state)).or_default() += 1.0;
        }
        for ((app, state), n) in counts {
            if let Ok(g) = tasks.with(&[&app, state]) {
                g.set(n);
            }
        }
    }
}
