//! The server's own metrics beyond what a round collects: deployments and health checks,
//! counted from the engine's events, and pipeline runs and steps, reported by the pipeline
//! service as they end. They live in the server's registry, so every round exposes them
//! on `/metrics` and stores them.

use metrics::{CounterVec, HistogramVec, Registry};

/// Upper bounds (seconds) of the run duration histogram: a build takes minutes, a whole
/// run through approval up to hours.
const RUN_BUCKETS: [f64; 12] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Upper bounds (seconds) of the step and deployment duration histograms.
const STEP_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// How a pipeline run can end (`store::RunStatus` of a finished run).
const RESULTS: [&str; 4] = ["succeeded", "failed", "cancelled", "superseded"];

/// Adds `v` to the child `labels` of `c` (a family the registry refused is skipped).
fn inc_by(c: &Option<CounterVec>, labels: &[&str], v: f64) {
    if let Some(Ok(c)) = c.as_ref().map(|c| c.with(labels)) {
        c.inc_by(v);
    }
}

/// Observes `v` in the child `labels` of `h`.
fn observe(h: &Option<HistogramVec>, labels: &[&str], v: f64) {
    if let Some(Ok(h)) = h.as_ref().map(|h| h.with(labels)) {
        h.observe(v);
    }
}

/// Sets the child `labels` of `g` to `v`.
fn set(g: &Option<metrics::GaugeVec>, labels: &[&str], v: f64) {
    if let Some(Ok(g)) = g.as_ref().map(|g| g.with(labels)) {
        g.set(v);
    }
}

/// Handles of the server's own families (a family the registry refused is `None`, and
/// its updates are skipped).
pub(crate) struct ServerMetrics {
    runs: Option<CounterVec>,
    run_seconds: Option<HistogramVec>,
    step_seconds: Option<HistogramVec>,
    deployments: Option<CounterVec>,
    deployment_seconds: Option<HistogramVec>,
    health_failed: Option<CounterVec>,
    health_changes: Option<CounterVec>,
    unhealthy_kills: Option<CounterVec>,
}

impl ServerMetrics {
    pub(crate) fn register(r: &Registry) -> ServerMetrics {
        ServerMetrics {
            runs: r
                .counter(
                    "slipway_pipeline_runs_total",
                    "Pipeline runs that ended, by pipeline and result (succeeded, failed, cancelled, superseded).",
                    &["pipeline", "result"],
                )
                .ok(),
            run_seconds: r
                .histogram(
                    "slipway_pipeline_run_duration_seconds",
                    "How long pipeline runs took, from start to end.",
                    &["pipeline"],
                    &RUN_BUCKETS,
                )
                .ok(),
            step_seconds: r
                .histogram(
                    "slipway_pipeline_step_duration_seconds",
                    "How long pipeline steps that ran took, by pipeline, step and result.",
                    &["pipeline", "step", "result"],
                    &STEP_BUCKETS,
                )
                .ok(),
            deployments: r
                .counter(
                    "slipway_deployments_total",
                    "Deployments that ended, by result (success, failed).",
                    &["result"],
                )
                .ok(),
            deployment_seconds: r
                .histogram(
                    "slipway_deployment_duration_seconds",
                    "How long deployments took, from plan to end.",
                    &["result"],
                    &STEP_BUCKETS,
                )
                .ok(),
            health_failed: r
                .counter(
                    "slipway_health_check_failures_total",
                    "Failed health checks that count against a task, by app and protocol.",
                    &["app", "protocol"],
                )
                .ok(),
            health_changes: r
                .counter(
                    "slipway_task_health_changes_total",
                    "Tasks turning healthy or unhealthy, by app and new state.",
                    &["app", "healthy"],
                )
                .ok(),
            unhealthy_kills: r
                .counter(
                    "slipway_unhealthy_task_kills_total",
                    "Tasks killed for failing their health checks, by app.",
                    &["app"],
                )
                .ok(),
        }
    }

    /// Counts what an engine event says about deployments and health.
    pub(crate) fn on_event(&self, e: &engine::Event, now_ms: i64) {
        let deployment = |result: &str, d: &engine::state::Deployment| {
            inc_by(&self.deployments, &[result], 1.0);
            let end = d.finished_at.unwrap_or(now_ms);
            let seconds = end.saturating_sub(d.created_at).max(0) as f64 / 1000.0;
            observe(&self.deployment_seconds, &[result], seconds);
        };
        match e {
            engine::Event::DeploymentSuccess(d) => deployment("success", d),
            engine::Event::DeploymentFailed { plan, .. } => deployment("failed", plan),
            engine::Event::FailedHealthCheck { app_id, check, .. } => {
                let protocol = match check.protocol {
                    model::HealthProtocol::Http => "HTTP",
                    model::HealthProtocol::Tcp => "TCP",
                    model::HealthProtocol::Command => "COMMAND",
                    model::HealthProtocol::MesosHttp => "MESOS_HTTP",
                    model::HealthProtocol::MesosTcp => "MESOS_TCP",
                };
                inc_by(&self.health_failed, &[&app_id.to_string(), protocol], 1.0);
            }
            engine::Event::HealthChanged { app_id, alive, .. } => {
                let healthy = if *alive { "true" } else { "false" };
                inc_by(&self.health_changes, &[&app_id.to_string(), healthy], 1.0);
            }
            engine::Event::UnhealthyKill { app_id, .. } => {
                inc_by(&self.unhealthy_kills, &[&app_id.to_string()], 1.0);
            }
            _ => {}
        }
    }

    /// A pipeline run starts: its counters for every result exist from now on.
    pub(crate) fn run_started(&self, pipeline: &str) {
        if let Some(c) = &self.runs {
            for result in RESULTS {
                let _ = c.with(&[pipeline, result]);
            }
        }
    }

    /// A pipeline run ended.
    pub(crate) fn run_finished(&self, pipeline: &str, result: &str, seconds: f64) {
        inc_by(&self.runs, &[pipeline, result], 1.0);
        observe(&self.run_seconds, &[pipeline], seconds);
    }

    /// A pipeline step that ran ended.
    pub(crate) fn step_finished(&self, pipeline: &str, step: &str, result: &str, seconds: f64) {
        observe(&self.step_seconds, &[pipeline, step, result], seconds);
    }
}

/// The store's own figures, as Prometheus exports its TSDB's (`prometheus_tsdb_*`): series
/// against the limit, samples appended and rejected by reason, bytes on disk.
pub(crate) struct StoreMetrics {
    series: Option<metrics::GaugeVec>,
    head_samples: Option<metrics::GaugeVec>,
    disk_bytes: Option<metrics::GaugeVec>,
    memory_bytes: Option<metrics::GaugeVec>,
    appended: Option<CounterVec>,
    rejected: Option<CounterVec>,
    /// The store's counters as last exported (they count from the store's open).
    last: std::sync::Mutex<tsdb::Stats>,
}

impl StoreMetrics {
    pub(crate) fn register(r: &Registry) -> StoreMetrics {
        StoreMetrics {
            series: r
                .gauge(
                    "slipway_tsdb_series",
                    "Series in the time-series store (kind=\"held\") and its limit (kind=\"limit\", --metrics-max-series).",
                    &["kind"],
                )
                .ok(),
            head_samples: r
                .gauge(
                    "slipway_tsdb_head_samples",
                    "Samples in memory, not yet in segment files.",
                    &[],
                )
                .ok(),
            disk_bytes: r
                .gauge(
                    "slipway_tsdb_disk_bytes",
                    "Bytes of the store's files: raw segments, rollup segments, write-ahead log.",
                    &["kind"],
                )
                .ok(),
            memory_bytes: r
                .gauge(
                    "slipway_tsdb_memory_bytes",
                    "Estimated bytes of memory held by the store's series, chunks and index.",
                    &[],
                )
                .ok(),
            appended: r
                .counter(
                    "slipway_tsdb_samples_appended_total",
                    "Samples the store accepted.",
                    &[],
                )
                .ok(),
            rejected: r
                .counter(
                    "slipway_tsdb_samples_rejected_total",
                    "Samples the store refused, by reason (out_of_order, duplicate_timestamp, type_conflict, too_many_series, too_old).",
                    &["reason"],
                )
                .ok(),
            last: std::sync::Mutex::new(tsdb::Stats::default()),
        }
    }

    /// Sets the families from the store's figures now.
    pub(crate) fn update(&self, st: &tsdb::Stats, limit: usize) {
        set(&self.series, &["held"], st.series as f64);
        set(&self.series, &["limit"], limit as f64);
        set(&self.head_samples, &[], st.head_samples as f64);
        set(&self.disk_bytes, &["raw"], st.raw_bytes_on_disk as f64);
        set(
            &self.disk_bytes,
            &["rollup"],
            st.rollup_bytes_on_disk as f64,
        );
        set(&self.disk_bytes, &["wal"], st.wal_bytes as f64);
        set(&self.memory_bytes, &[], st.bytes_in_memory as f64);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let add = |c: &Option<CounterVec>, labels: &[&str], now: u64, before: u64| {
            inc_by(c, labels, now.saturating_sub(before) as f64);
        };
        add(
            &self.appended,
            &[],
            st.samples_appended,
            last.samples_appended,
        );
        for (reason, now, before) in [
            (
                "out_of_order",
                st.rejected_out_of_order,
                last.rejected_out_of_order,
            ),
            (
                "duplicate_timestamp",
                st.rejected_duplicate_timestamp,
                last.rejected_duplicate_timestamp,
            ),
            (
                "type_conflict",
                st.rejected_type_conflict,
                last.rejected_type_conflict,
            ),
            (
                "too_many_series",
                st.rejected_too_many_series,
                last.rejected_too_many_series,
            ),
            ("too_old", st.rejected_too_old, last.rejected_too_old),
        ] {
            add(&self.rejected, &[reason], now, before);
        }
        *last = st.clone();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn exposition(r: &Registry) -> String {
        let mut out = String::new();
        metrics::encode(&r.collect(), metrics::Format::Prometheus, &mut out);
        out
    }

    /// The store's figures: gauges as they are, its counters as increases since the last
    /// export, every rejection reason present from the start.
    #[test]
    fn store_figures_are_exported() {
        let r = Registry::new();
        let m = StoreMetrics::register(&r);
        let mut st = tsdb::Stats {
            series: 3,
            samples_appended: 10,
            rejected_too_many_series: 2,
            raw_bytes_on_disk: 100,
            ..tsdb::Stats::default()
        };
        m.update(&st, 1_000);
        st.samples_appended = 15;
        m.update(&st, 1_000);
        let text = exposition(&r);
        for want in [
            r#"slipway_tsdb_series{kind="held"} 3"#,
            r#"slipway_tsdb_series{kind="limit"} 1000"#,
            r#"slipway_tsdb_disk_bytes{kind="raw"} 100"#,
            "slipway_tsdb_samples_appended_total 15",
            r#"slipway_tsdb_samples_rejected_total{reason="too_many_series"} 2"#,
            r#"slipway_tsdb_samples_rejected_total{reason="out_of_order"} 0"#,
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    /// Engine events become counts: deployments by result with their durations, failed
    /// checks by protocol (as Marathon names them), health flips and unhealthy kills.
    #[test]
    fn engine_events_are_counted() {
        let r = Registry::new();
        let m = ServerMetrics::register(&r);
        let app = model::PathId::parse_relative("/web", &model::PathId::root());
        let check: model::HealthCheck = serde_json::from_value(serde_json::json!({
            "protocol": "MESOS_HTTP", "path": "/health", "gracePeriodSeconds": 5,
            "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
            "delaySeconds": 0
        }))
        .unwrap();
        let plan: engine::state::Deployment = serde_json::from_value(serde_json::json!({
            "id": "d1", "version": "2026-12-07T10:00:00.000Z", "created_at": 1_000,
            "steps": [], "current_step": 0, "original": [], "target": [],
            "finished_at": 4_500
        }))
        .unwrap();
        let plan = Arc::new(plan);
        let events = [
            engine::Event::DeploymentSuccess(plan.clone()),
            engine::Event::DeploymentFailed {
                plan: plan.clone(),
                reason: "superseded".into(),
            },
            engine::Event::FailedHealthCheck {
                app_id: app.clone(),
                task_id: "web.1".into(),
                check: Arc::new(check),
            },
            engine::Event::HealthChanged {
                app_id: app.clone(),
                task_id: "web.1".into(),
                version: Default::default(),
                alive: false,
            },
            engine::Event::UnhealthyKill {
                app_id: app.clone(),
                task_id: "web.1".into(),
                version: Default::default(),
                reason: "3 failed checks".into(),
                host: "localhost".into(),
            },
            engine::Event::GroupChanged {
                version: Default::default(),
            },
        ];
        for e in &events {
            m.on_event(e, 10_000);
        }
        let text = exposition(&r);
        for want in [
            r#"slipway_deployments_total{result="success"} 1"#,
            r#"slipway_deployments_total{result="failed"} 1"#,
            r#"slipway_deployment_duration_seconds_sum{result="success"} 3.5"#,
            r#"slipway_deployment_duration_seconds_bucket{result="success",le="5"} 1"#,
            r#"slipway_deployment_duration_seconds_bucket{result="success",le="2.5"} 0"#,
            r#"slipway_health_check_failures_total{app="/web",protocol="MESOS_HTTP"} 1"#,
            r#"slipway_task_health_changes_total{app="/web",healthy="false"} 1"#,
            r#"slipway_unhealthy_task_kills_total{app="/web"} 1"#,
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        // Runs: counters of every result start at 0 when a run starts.
        m.run_started("ci");
        let text = exposition(&r);
        assert!(
            text.contains(r#"slipway_pipeline_runs_total{pipeline="ci",result="succeeded"} 0"#),
            "{text}"
        );
        m.run_finished("ci", "succeeded", 42.0);
        m.step_finished("ci", "build", "succeeded", 0.7);
        let text = exposition(&r);
        for want in [
            r#"slipway_pipeline_runs_total{pipeline="ci",result="succeeded"} 1"#,
            r#"slipway_pipeline_runs_total{pipeline="ci",result="failed"} 0"#,
            r#"slipway_pipeline_run_duration_seconds_bucket{pipeline="ci",le="60"} 1"#,
            r#"slipway_pipeline_run_duration_seconds_bucket{pipeline="ci",le="30"} 0"#,
            r#"slipway_pipeline_step_duration_seconds_sum{pipeline="ci",step="build",result="succeeded"} 0.7"#,
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
