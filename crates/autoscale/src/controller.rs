//! The controller loop: every second, for each app with a policy (registered over the API or
//! carried by its `SLIPWAY_AUTOSCALE_*` labels), it gathers an [`Input`] from the engine and
//! the metrics store, calls [`decide`], persists the state and the decision, publishes an
//! `autoscale_decision` event and, when the count changes, scales through a [`Scaler`] (the
//! server's: the `autoscaler` principal under the environment policies and admission checks,
//! audited with the decision's summary).
//!
//! Crash-only: a decided change is written to the store (`pending_target`) before the scale
//! is asked for, and asked for again after a restart until the app's count equals it. The
//! engine itself writes the new count before acting on it, so a server killed mid scale-up
//! converges to the decided count when it comes back.
//!
//! Decisions are stored (and published) when they change the count or when what they say
//! changes (action, recommendation or main reason), not every second while nothing happens.
//!
//! Signals (per instance, from the series the collector writes every `--metrics-interval`):
//! * CPU: `rate(container_cpu_usage_seconds_total{app}[w])` over the app's `cpus`, in %;
//! * memory: `container_memory_working_set_bytes{app}` over `mem` MiB, in %;
//! * requests/s: `rate(slipway_proxy_backend_requests_total{app}[w])` per backend (task);
//! * p95 latency: `histogram_quantile(0.95, …slipway_proxy_request_duration_seconds_bucket…)`
//!   of the app, in ms, given to every instance;
//!
//! each evaluated at the end of the last complete `metricResolutionSeconds` bucket, over
//! `w = max(resolution, 3 × collection interval)`. When the resolution is shorter than two
//! collection intervals (Slipway's default: 1 s buckets and 1 s samples), the counters are read
//! with `irate` instead, the last interval alone: `rate` over `w` would average two or three
//! intervals and show a load step as a ramp over as many buckets, and a panic decision taken
//! on the ramp's middle would need a second one (a 3× step seen as 1.1×, 2×, 2.75×: 2 → 5 → 6).

use crate::{
    ControllerState, Decision, Deployment, Input, Instance, Policy, QuerySample, Readiness, Sample,
    Signal, accept_any_promql, decide,
};
use model::{PathId, Timestamp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The principal the autoscaler acts as.
pub const PRINCIPAL: &str = "autoscaler";

/// How the controller changes an app's instance count: the server's implementation goes
/// through the engine as the `autoscaler` principal with the admission checks, and audits.
pub trait Scaler: Send + Sync {
    /// Sets `app`'s instances to `instances` (a partial update), recording `summary` as the
    /// reason; returns the new app version, or why it was refused.
    fn scale(&self, app: &PathId, instances: u32, summary: &str) -> Result<Timestamp, String>;
}

/// Where a policy comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// `PUT /api/v1/autoscalers/{app id}`.
    Api,
    /// The app definition's `SLIPWAY_AUTOSCALE_*` labels.
    Labels,
}

impl PolicySource {
    /// `api` or `labels`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySource::Api => "api",
            PolicySource::Labels => "labels",
        }
    }
}

/// Every app's policy: registered ones first, then label policies of apps without one.
/// A stored policy that no longer parses, or bad labels, are left out (and logged).
pub fn policies(
    store: &store::Store,
    engine: &engine::Engine,
) -> Vec<(PathId, Policy, PolicySource)> {
    let mut out: BTreeMap<PathId, (Policy, PolicySource)> = BTreeMap::new();
    match store.autoscalers() {
        Ok(rows) => {
            for row in rows {
                match Policy::from_json(row.policy.as_bytes(), &accept_any_promql) {
                    Ok(p) => {
                        out.insert(PathId::parse(&row.app_id), (p, PolicySource::Api));
                    }
                    Err(e) => {
                        tracing::warn!(app = %row.app_id, error = %e, "stored autoscale policy does not parse")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read autoscale policies"),
    }
    let labelled: Vec<(PathId, BTreeMap<String, String>)> = engine.read(|st| {
        st.apps
            .iter()
            .filter(|(_, a)| {
                a.def
                    .labels
                    .keys()
                    .any(|k| k.starts_with(crate::LABEL_PREFIX))
            })
            .map(|(id, a)| (id.clone(), a.def.labels.clone()))
            .collect()
    });
    for (id, labels) in labelled {
        if out.contains_key(&id) {
            continue;
        }
        match Policy::from_labels(&labels) {
            Ok(Some(p)) => {
                out.insert(id, (p, PolicySource::Labels));
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(app = %id, error = %e, "autoscale labels do not parse"),
        }
    }
    out.into_iter().map(|(id, (p, s))| (id, p, s)).collect()
}

/// The controller. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    engine: engine::Engine,
    watch: Arc<watch::Watch>,
    store: Arc<store::Store>,
    scaler: Arc<dyn Scaler>,
    memory: Mutex<HashMap<PathId, Memory>>,
}

/// What the controller keeps per app between rounds.
#[derive(Default)]
struct Memory {
    state: ControllerState,
    pending: Option<u32>,
    own_version: Option<i64>,
    next_at: i64,
    /// What the last stored decision said, to store only what changes.
    last_key: Option<String>,
}

/// The app as the engine has it, for one round.
struct Snapshot {
    instances: u32,
    last_scaling_at: Timestamp,
    cpus: f64,
    mem: f64,
    manual_scale_at: Option<Timestamp>,
    deployment: Option<Deployment>,
    tasks: Vec<Instance>,
}

impl Controller {
    /// A controller over the engine, the metrics store and the durable state in `store`.
    pub fn new(
        engine: engine::Engine,
        watch: Arc<watch::Watch>,
        store: Arc<store::Store>,
        scaler: Arc<dyn Scaler>,
    ) -> Controller {
        Controller {
            inner: Arc::new(Inner {
                engine,
                watch,
                store,
                scaler,
                memory: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs a round right after each collection round lands in the store, and at least every
    /// second until `shutdown` (each app is evaluated every `syncPeriodSeconds` of its
    /// policy). Deciding on the round, not on a clock of its own, saves up to a second
    /// between a sample and the decision it shows.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut rounds = self.inner.watch.rounds();
        let mut collector = true;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = rounds.changed(), if collector => {
                    // Without a collector, the clock alone from now on.
                    collector = changed.is_ok();
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let c = self.clone();
            let _ = tokio::task::spawn_blocking(move || c.round(Timestamp::now())).await;
        }
    }

    /// One round at `now`: every app whose sync period has come.
    pub fn round(&self, now: Timestamp) {
        let all = policies(&self.inner.store, &self.inner.engine);
        {
            let mut mem = self.memory();
            mem.retain(|id, _| all.iter().any(|(a, _, _)| a == id));
        }
        for (id, policy, _) in all {
            self.app_round(&id, policy, now);
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<PathId, Memory>> {
        self.inner.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self, id: &PathId) -> Memory {
        let row = self
            .inner
            .store
            .autoscaler_state(&id.to_string())
            .ok()
            .flatten()
            .unwrap_or_default();
        Memory {
            state: serde_json::from_str(&row.state).unwrap_or_default(),
            pending: row.pending_target,
            own_version: row.own_version,
            next_at: 0,
            last_key: None,
        }
    }

    fn save(&self, id: &PathId, m: &Memory, decision: Option<(&Decision, &Value)>) {
        let row = store::AutoscalerStateRow {
            state: serde_json::to_string(&m.state).unwrap_or_default(),
            pending_target: m.pending,
            own_version: m.own_version,
        };
        let doc = decision.map(|(d, v)| (d.at.millis(), d.is_change(), v.to_string()));
        let res = self.inner.store.save_autoscaler_state(
            &id.to_string(),
            &row,
            doc.as_ref().map(|(at, c, s)| (*at, *c, s.as_str())),
        );
        if let Err(e) = res {
            tracing::warn!(app = %id, error = %e, "cannot save the autoscaler's state");
        }
    }

    fn app_round(&self, id: &PathId, policy: Policy, now: Timestamp) {
        let mut m = {
            let mut mem = self.memory();
            match mem.remove(id) {
                Some(m) => m,
                None => self.load(id),
            }
        };
        if now.millis() >= m.next_at {
            let b = &policy.behavior;
            m.next_at = now.millis() + crate::policy::secs_to_ms(b.sync_period_seconds).max(1)
                - b.jitter_slack_ms();
            self.evaluate(id, policy, now, &mut m);
        }
        self.memory().insert(id.clone(), m);
    }

    fn evaluate(&self, id: &PathId, policy: Policy, now: Timestamp, m: &mut Memory) {
        let Some(snap) = self.snapshot(id, now, m.own_version) else {
            return;
        };
        // A decided change a crash interrupted: ask for it again until the app has it.
        if let Some(target) = m.pending {
            if snap.instances == target {
                // Applied before the crash: that version is the autoscaler's, not a person's.
                m.own_version = Some(snap.last_scaling_at.millis());
            } else if snap.deployment.is_none() {
                let summary =
                    format!("{id}: completing the decided scale to {target} after an interruption");
                if let Ok(v) = self.inner.scaler.scale(id, target, &summary) {
                    m.own_version = Some(v.millis());
                }
            }
            m.pending = None;
            self.save(id, m, None);
            return;
        }
        let queries = self.queries(&policy, now);
        let tasks = self.samples(id, &policy, &snap, now);
        let input = Input {
            policy,
            current: snap.instances,
            instances: tasks,
            queries,
            deployment: snap.deployment,
            manual_scale_at: snap.manual_scale_at,
        };
        let (decision, next) = decide(&input, &m.state, now);
        m.state = next;
        let key = decision_key(&decision);
        let store_it = decision.is_change() || m.last_key.as_deref() != Some(key.as_str());
        if !decision.is_change() {
            let doc = store_it.then(|| decision_doc(id, &decision, None));
            self.save(id, m, doc.as_ref().map(|d| (&decision, d)));
            if doc.is_some() {
                self.publish(id, &decision, None);
            }
            m.last_key = Some(key);
            return;
        }
        // Written before acting: a crash from here on is completed after the restart.
        m.pending = Some(decision.target);
        let doc = decision_doc(id, &decision, None);
        self.save(id, m, Some((&decision, &doc)));
        self.publish(id, &decision, None);
        m.last_key = Some(key);
        let summary = decision.summary();
        match self.inner.scaler.scale(id, decision.target, &summary) {
            Ok(version) => {
                m.own_version = Some(version.millis());
                m.pending = None;
                self.save(id, m, None);
            }
            Err(reason) => {
                // Not applied: forget the change (step limits and cooldown count real ones).
                m.state.changes.pop();
                m.pending = None;
                let refused = Decision {
                    target: decision.current,
                    action: crate::Action::Hold,
                    ..decision.clone()
                };
                let refused_key = format!("refused:{reason}");
                let doc = decision_doc(id, &refused, Some((decision.target, &reason)));
                let first = m.last_key.as_deref() != Some(refused_key.as_str());
                self.save(id, m, first.then_some((&refused, &doc)));
                if first {
                    tracing::warn!(app = %id, %reason, "the autoscaler's scale was refused");
                    self.publish(id, &refused, Some((decision.target, reason.clone())));
                }
                m.last_key = Some(refused_key);
            }
        }
    }

    /// Publishes `autoscale_decision` on the engine's event bus.
    fn publish(&self, id: &PathId, decision: &Decision, refused: Option<(u32, String)>) {
        self.inner
            .engine
            .events()
            .publish(engine::Event::External(Arc::new(DecisionEvent {
                app_id: id.clone(),
                decision: decision.clone(),
                refused,
            })));
    }

    /// The app, its tasks and any deployment on it; `None` when the app does not exist.
    fn snapshot(&self, id: &PathId, now: Timestamp, own_version: Option<i64>) -> Option<Snapshot> {
        self.inner.engine.read(|st| {
            let app = st.apps.get(id)?;
            let def = &app.def;
            let vi = &def.version_info;
            let own = own_version == Some(vi.last_scaling_at.millis());
            let manual_scale_at = (vi.last_scaling_at > vi.last_config_change_at && !own)
                .then_some(vi.last_scaling_at);
            let deployment = st
                .deployments
                .iter()
                .filter(|d| d.outcome.is_none())
                .find_map(|d| d.target.iter().find(|t| &t.id == id))
                .map(|t| Deployment {
                    target_instances: t.instances,
                });
            let grace_ms = def
                .health_checks
                .iter()
                .map(|h| h.grace_period_seconds as i64 * 1000)
                .max()
                .unwrap_or(0);
            let tasks = st
                .tasks
                .values()
                .filter(|t| &t.app_id == id && t.kill.is_none())
                .filter(|t| {
                    matches!(
                        t.state,
                        engine::state::TaskState::TaskStaging
                            | engine::state::TaskState::TaskRunning
                    )
                })
                .map(|t| instance_of(t, def.health_checks.is_empty(), grace_ms, now))
                .collect();
            Some(Snapshot {
                instances: def.instances,
                last_scaling_at: vi.last_scaling_at,
                cpus: def.cpus,
                mem: def.mem,
                manual_scale_at,
                deployment,
                tasks,
            })
        })
    }

    fn queries(&self, policy: &Policy, now: Timestamp) -> Vec<QuerySample> {
        let storage = self.inner.watch.storage();
        let engine = promql::Engine::default();
        // At the end of the last complete bucket, where `decide` looks.
        let res_ms = crate::policy::secs_to_ms(policy.behavior.metric_resolution_seconds).max(1);
        let now = Timestamp(now.millis().div_euclid(res_ms) * res_ms);
        policy
            .metrics
            .iter()
            .filter_map(|m| match m {
                crate::Metric::Promql { query, .. } => Some(query),
                _ => None,
            })
            .filter_map(|q| {
                let v = engine.instant_query(&storage, q, now.millis()).ok()?;
                let value = match v {
                    promql::QueryValue::Scalar { v, .. } => v,
                    promql::QueryValue::Vector(s) if !s.is_empty() => s.iter().map(|s| s.v).sum(),
                    _ => return None,
                };
                value.is_finite().then(|| QuerySample {
                    query: q.clone(),
                    at: now,
                    value,
                })
            })
            .collect()
    }

    /// The tasks with their samples of the signals the policy reads.
    fn samples(
        &self,
        id: &PathId,
        policy: &Policy,
        snap: &Snapshot,
        now: Timestamp,
    ) -> Vec<Instance> {
        let b = &policy.behavior;
        let res_ms = crate::policy::secs_to_ms(b.metric_resolution_seconds).max(1);
        let at = now.millis().div_euclid(res_ms) * res_ms;
        let interval_ms = self.inner.watch.interval().as_millis() as i64;
        let window_s = (res_ms.max(3 * interval_ms) + 999) / 1000;
        let rate = rate_fn(res_ms, interval_ms);
        // The last interval is read at once (right after the round that brought it); a
        // coarse bucket is read at its end, as HPA reads metrics of a whole period.
        let query_at = if rate == "irate" { now.millis() } else { at };
        let app = promql_string(&id.to_string());
        let engine = promql::Engine::default();
        let storage = self.inner.watch.storage();
        let by_label = |q: &str, label: &str| -> HashMap<String, f64> {
            match engine.instant_query(&storage, q, query_at) {
                Ok(promql::QueryValue::Vector(v)) => v
                    .into_iter()
                    .filter_map(|s| Some((s.labels.get(label)?.to_string(), s.v)))
                    .collect(),
                Ok(_) => HashMap::new(),
                Err(e) => {
                    tracing::debug!(query = q, error = %e, "autoscale query failed");
                    HashMap::new()
                }
            }
        };
        let mut per_signal: Vec<(Signal, HashMap<String, f64>)> = Vec::new();
        let mut app_wide: Vec<(Signal, f64)> = Vec::new();
        let mut signals: Vec<Signal> = policy.metrics.iter().filter_map(|m| m.signal()).collect();
        signals.sort();
        signals.dedup();
        for signal in signals {
            match signal {
                Signal::Cpu if snap.cpus > 0.0 => {
                    let q = format!(
                        "{rate}(container_cpu_usage_seconds_total{{app=\"{app}\"}}[{window_s}s])"
                    );
                    let mut v = by_label(&q, "task");
                    v.values_mut().for_each(|x| *x = *x / snap.cpus * 100.0);
                    per_signal.push((signal, v));
                }
                Signal::Memory if snap.mem > 0.0 => {
                    let q = format!("container_memory_working_set_bytes{{app=\"{app}\"}}");
                    let mut v = by_label(&q, "task");
                    let limit = snap.mem * 1024.0 * 1024.0;
                    v.values_mut().for_each(|x| *x = *x / limit * 100.0);
                    per_signal.push((signal, v));
                }
                Signal::Rps => {
                    let q = format!(
                        "sum by (backend) ({rate}(slipway_proxy_backend_requests_total{{app=\"{app}\"}}[{window_s}s]))"
                    );
                    per_signal.push((signal, by_label(&q, "backend")));
                }
                Signal::LatencyP95 => {
                    let q = format!(
                        "histogram_quantile(0.95, sum by (le) (rate(slipway_proxy_request_duration_seconds_bucket{{app=\"{app}\"}}[{window_s}s]))) * 1000"
                    );
                    if let Ok(promql::QueryValue::Vector(v)) =
                        engine.instant_query(&storage, &q, at)
                        && let Some(s) = v.first()
                        && s.v.is_finite()
                    {
                        app_wide.push((signal, s.v));
                    }
                }
                _ => {}
            }
        }
        let at = Timestamp(at);
        snap.tasks
            .iter()
            .map(|t| {
                let mut t = t.clone();
                for (signal, values) in &per_signal {
                    if let Some(v) = values.get(&t.id).filter(|v| v.is_finite()) {
                        t.samples.push(Sample {
                            signal: *signal,
                            at,
                            value: *v,
                        });
                    }
                }
                for (signal, v) in &app_wide {
                    t.samples.push(Sample {
                        signal: *signal,
                        at,
                        value: *v,
                    });
                }
                t
            })
            .collect()
    }
}

/// A task as the decision sees it.
fn instance_of(
    t: &engine::state::TaskRecord,
    no_checks: bool,
    grace_ms: i64,
    now: Timestamp,
) -> Instance {
    let started_at = t.started_at.unwrap_or(t.staged_at);
    let (readiness, ready_since) =
        if t.state == engine::state::TaskState::TaskStaging || t.started_at.is_none() {
            (Readiness::Starting, None)
        } else if no_checks {
            (Readiness::Ready, Some(started_at))
        } else {
            let first = t
                .health
                .iter()
                .filter_map(|h| h.first_success)
                .max()
                .map(Timestamp);
            if !t.health.is_empty() && t.health.iter().all(|h| h.alive == Some(true)) {
                (Readiness::Ready, first)
            } else if t.health.iter().any(|h| h.alive == Some(false)) {
                (Readiness::Unhealthy, first)
            } else if now.millis() - started_at.millis() < grace_ms {
                (Readiness::GracePeriod, None)
            } else {
                (Readiness::Unhealthy, None)
            }
        };
    Instance {
        id: t.id.clone(),
        readiness,
        started_at,
        ready_since,
        samples: Vec::new(),
    }
}

/// What a decision says, to store only decisions that differ from the last one stored.
/// The PromQL function that turns a counter into a per-second value for one bucket of
/// `resolution_ms` when samples come every `interval_ms`: `rate` needs two samples inside the
/// bucket; below that, `irate` (the last interval) keeps a step a step.
fn rate_fn(resolution_ms: i64, interval_ms: i64) -> &'static str {
    if resolution_ms < 2 * interval_ms {
        "irate"
    } else {
        "rate"
    }
}

fn decision_key(d: &Decision) -> String {
    let reason = d
        .reasons
        .first()
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.get("kind").cloned())
        .unwrap_or(Value::Null);
    format!("{:?}:{:?}:{reason}", d.action, d.recommendation)
}

/// A decision as published on the engine's event bus (`autoscale_decision`).
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionEvent {
    /// The app.
    pub app_id: PathId,
    /// What was decided.
    pub decision: Decision,
    /// The scale the decision asked for and why it was refused, if it was.
    pub refused: Option<(u32, String)>,
}

impl engine::ExternalEvent for DecisionEvent {
    fn event_type(&self) -> &'static str {
        "autoscale_decision"
    }

    fn app_id(&self) -> Option<&PathId> {
        Some(&self.app_id)
    }

    fn to_json(&self) -> String {
        let refused = self.refused.as_ref().map(|(t, r)| (*t, r.as_str()));
        decision_doc(&self.app_id, &self.decision, refused).to_string()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The stored and published form: the decision with the app id and its one-line summary,
/// and, when the scale was refused, what was decided and why it was not applied.
pub fn decision_doc(id: &PathId, d: &Decision, refused: Option<(u32, &str)>) -> Value {
    let mut v = json!({
        "appId": id.to_string(),
        "summary": d.summary(),
        "decision": d,
    });
    if let Some((target, reason)) = refused {
        v["refused"] = json!({"target": target, "reason": reason});
        v["summary"] = json!(format!(
            "{id}: scale to {target} refused: {reason} ({})",
            d.summary()
        ));
    }
    v
}

/// `s` as the inside of a PromQL double-quoted string.
fn promql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::rate_fn;

    #[test]
    fn one_second_buckets_read_the_last_interval_and_coarse_ones_the_whole_bucket() {
        // Slipway's default (1 s buckets, 1 s samples) and 1 s buckets on 10 s samples.
        assert_eq!(rate_fn(1_000, 1_000), "irate");
        assert_eq!(rate_fn(1_000, 10_000), "irate");
        // The hpa preset's 15 s buckets hold 15 samples at 1 s, and 2 at 7.5 s.
        assert_eq!(rate_fn(15_000, 1_000), "rate");
        assert_eq!(rate_fn(15_000, 7_500), "rate");
        assert_eq!(rate_fn(15_000, 10_000), "irate");
    }
}
