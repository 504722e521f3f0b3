//! Marathon JSON views of the engine state: AppInfo, Task, Deployment, groups and queue
//! items, and Slipway's native app status.
//!
//! They borrow from the state (under [`Engine::read`]) and serialise straight to bytes, so
//! listing 1,000 apps with their tasks costs one pass and no intermediate
//! `serde_json::Value` tree.

use engine::state::{AppEntry, Deployment, Outcome, State, TaskFailure, TaskRecord, TaskState};
use engine::{AppStatus, CgroupSupport, Counts, Engine, Host};
use health::HealthState;
use model::{AppDefinition, PathId, Selector, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// Which optional parts of an app to include (`embed=apps.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Embed {
    /// `apps.tasks` (also adds deployments).
    pub(crate) tasks: bool,
    /// `apps.lastTaskFailure`.
    pub(crate) last_task_failure: bool,
    /// `apps.readiness`.
    pub(crate) readiness: bool,
}

impl Embed {
    /// Parses repeated `embed` values; prefixes `app.`, `apps.`, `group.apps.` are equivalent
    /// and unknown values are ignored, as in Marathon.
    pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Embed {
        let mut e = Embed::default();
        for v in values {
            let name = v
                .strip_prefix("group.apps.")
                .or_else(|| v.strip_prefix("apps."))
                .or_else(|| v.strip_prefix("app."))
                .unwrap_or(v);
            match name {
                "tasks" => e.tasks = true,
                "lastTaskFailure" => e.last_task_failure = true,
                "failures" => {
                    e.tasks = true;
                    e.last_task_failure = true;
                }
                "readiness" => e.readiness = true,
                _ => {}
            }
        }
        e
    }

    /// What `GET /v2/apps/{id}` always embeds.
    #[cfg(test)]
    pub(crate) fn single() -> Embed {
        Embed {
            tasks: true,
            last_task_failure: true,
            readiness: false,
        }
    }
}

#[derive(Serialize)]
struct IpAddress<'a> {
    #[serde(rename = "ipAddress")]
    ip_address: &'a str,
    protocol: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthResult<'a> {
    alive: bool,
    consecutive_failures: u32,
    first_success: Option<Timestamp>,
    last_success: Option<Timestamp>,
    last_failure: Option<Timestamp>,
    last_failure_cause: Option<&'a str>,
    task_id: &'a str,
    instance_id: &'a str,
}

impl<'a> HealthResult<'a> {
    fn of(h: &'a HealthState, task_id: &'a str) -> Option<Self> {
        Some(HealthResult {
            alive: h.alive?,
            consecutive_failures: h.consecutive_failures,
            first_success: h.first_success.map(Timestamp),
            last_success: h.last_success.map(Timestamp),
            last_failure: h.last_failure.map(Timestamp),
            last_failure_cause: h.last_failure_cause.as_deref(),
            task_id,
            instance_id: task_id,
        })
    }
}

/// Marathon's task JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskJson<'a> {
    id: &'a str,
    app_id: &'a PathId,
    host: &'a str,
    ports: &'a [u16],
    service_ports: &'a [u32],
    slave_id: &'a str,
    state: &'static str,
    staged_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    version: Timestamp,
    ip_addresses: [IpAddress<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_results: Option<Vec<HealthResult<'a>>>,
    local_volumes: [(); 0],
}

impl<'a> TaskJson<'a> {
    /// The view of `t`; `with_health` when the app has health checks.
    pub(crate) fn of(t: &'a TaskRecord, host: Host<'a>, with_health: bool) -> Self {
        TaskJson {
            id: &t.id,
            app_id: &t.app_id,
            // Tasks another scheduler runs are on their own node.
            host: t.host.as_deref().unwrap_or(host.host),
            ports: &t.host_ports,
            service_ports: &t.service_ports,
            slave_id: host.slave_id,
            state: t.reported_state().as_str(),
            staged_at: t.staged_at,
            started_at: t.started_at,
            version: t.version,
            ip_addresses: [IpAddress {
                ip_address: t.ip.as_deref().or(t.host.as_deref()).unwrap_or(host.host),
                protocol: "IPv4",
            }],
            health_check_results: with_health.then(|| {
                t.health
                    .iter()
                    .filter_map(|h| HealthResult::of(h, &t.id))
                    .collect()
            }),
            local_volumes: [],
        }
    }
}

#[derive(Serialize)]
struct DeploymentRef<'a> {
    id: &'a str,
}

/// Marathon's task counts (`TaskForStatistics`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountsJson {
    tasks_staged: u32,
    tasks_running: u32,
    tasks_healthy: u32,
    tasks_unhealthy: u32,
}

impl From<Counts> for CountsJson {
    fn from(c: Counts) -> Self {
        CountsJson {
            tasks_staged: c.tasks_staged,
            tasks_running: c.tasks_running,
            tasks_healthy: c.tasks_healthy,
            tasks_unhealthy: c.tasks_unhealthy,
        }
    }
}

/// Marathon's AppInfo: the definition plus counts, deployments and embeds.
#[derive(Serialize)]
pub(crate) struct AppInfo<'a> {
    #[serde(flatten)]
    def: &'a AppDefinition,
    #[serde(flatten)]
    extras: AppExtras<'a>,
}

/// The parts of AppInfo beyond the definition.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppExtras<'a> {
    #[serde(flatten)]
    counts: CountsJson,
    deployments: Vec<DeploymentRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<TaskJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_task_failure: Option<&'a TaskFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readiness_check_results: Option<[(); 0]>,
}

impl<'a> AppInfo<'a> {
    /// The view of one app.
    pub(crate) fn of(st: &'a State, app: &'a AppEntry, embed: Embed, host: Host<'a>) -> Self {
        let id = &app.def.id;
        let with_health = !app.def.health_checks.is_empty();
        let extras = AppExtras {
            counts: Counts::of(st.tasks_of(id)).into(),
            deployments: st
                .deployments_of(id)
                .map(|d| DeploymentRef { id: &d.id })
                .collect(),
            tasks: embed.tasks.then(|| {
                st.tasks_of(id)
                    .map(|t| TaskJson::of(t, host, with_health))
                    .collect()
            }),
            last_task_failure: if embed.last_task_failure {
                app.rt.last_task_failure.as_ref()
            } else {
                None
            },
            readiness_check_results: embed.readiness.then_some([]),
        };
        AppInfo {
            def: &app.def,
            extras,
        }
    }
}

/// Writes one AppInfo object to `out`: the definition's cached JSON with the counts,
/// deployments and embeds spliced in. Same bytes as serialising [`AppInfo`], without
/// re-serialising the definition on every listing.
fn write_app_info(out: &mut Vec<u8>, st: &State, app: &AppEntry, embed: Embed, host: Host<'_>) {
    let extras = AppInfo::of(st, app, embed, host).extras;
    let def = app.json.as_bytes();
    // `{...}` + `{...}` → `{...,...}`; both are non-empty objects.
    out.extend_from_slice(&def[..def.len().saturating_sub(1)]);
    out.push(b',');
    let start = out.len();
    if serde_json::to_writer(&mut *out, &extras).is_ok() && out.len() > start {
        out.remove(start);
    } else {
        out.truncate(start - 1);
        out.push(b'}');
    }
}

/// Marathon's deployment JSON (`currentStep` is 1-based).
pub(crate) fn deployment_json(d: &Deployment) -> Value {
    let current: Vec<Value> = d
        .current_actions()
        .iter()
        .map(|a| json!({"action": a.action, "app": a.app, "readinessCheckResults": []}))
        .collect();
    json!({
        "id": d.id,
        "version": d.version,
        "affectedApps": d.affected_apps(),
        "affectedPods": [],
        "steps": steps_json(d),
        "currentActions": current,
        "currentStep": (d.current_step + 1).min(d.steps.len()),
        "totalSteps": d.steps.len(),
    })
}

/// `[{"actions":[{"action":..,"app":..}]}]`.
pub(crate) fn steps_json(d: &Deployment) -> Value {
    Value::Array(d.steps.iter().map(|s| json!({"actions": s})).collect())
}

/// `{"deploymentId","version"}`.
pub(crate) fn deployment_result_json(d: &engine::DeploymentResult) -> Value {
    json!({"deploymentId": d.deployment_id, "version": d.version})
}

/// Filters of `GET /v2/apps`.
#[derive(Clone, Debug, Default)]
pub(crate) struct AppsQuery {
    /// Case-insensitive substring of `cmd`.
    pub(crate) cmd: Option<String>,
    /// Case-insensitive substring of the id.
    pub(crate) id: Option<String>,
    /// Label selector.
    pub(crate) label: Option<Selector>,
    /// Embedded parts.
    pub(crate) embed: Embed,
}

impl AppsQuery {
    fn matches(&self, def: &AppDefinition) -> bool {
        let contains =
            |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.cmd
            .as_deref()
            .is_none_or(|c| def.cmd.as_deref().is_some_and(|x| contains(x, c)))
            && self
                .id
                .as_deref()
                .is_none_or(|i| contains(&def.id.to_string(), i))
            && self.label.as_ref().is_none_or(|s| s.matches(&def.labels))
    }
}

/// `GET /v2/apps` body.
pub(crate) fn apps_json(engine: &Engine, q: &AppsQuery) -> Vec<u8> {
    let host = engine.host();
    engine.read(|st| {
        let mut out = Vec::with_capacity(st.apps.len() * 1024 + 16);
        out.extend_from_slice(b"{\"apps\":[");
        let mut first = true;
        for a in st.apps.values().filter(|a| q.matches(&a.def)) {
            if !first {
                out.push(b',');
            }
            first = false;
            write_app_info(&mut out, st, a, q.embed, host);
        }
        out.extend_from_slice(b"]}");
        out
    })
}

/// `GET /v2/apps/grp/*` body: `{"*": [AppInfo...]}`.
pub(crate) fn app_group_json(engine: &Engine, group: &PathId, embed: Embed) -> Vec<u8> {
    let host = engine.host();
    engine.read(|st| {
        let apps: Vec<AppInfo<'_>> = st
            .apps
            .values()
            .filter(|a| a.def.id.starts_with(group))
            .map(|a| AppInfo::of(st, a, embed, host))
            .collect();
        serde_json::to_vec(&json!({ "*": apps })).unwrap_or_default()
    })
}

/// `GET /v2/apps/{id}` body, or `None` for an unknown app.
pub(crate) fn app_json(engine: &Engine, id: &PathId, embed: Embed) -> Option<Vec<u8>> {
    let host = engine.host();
    engine.read(|st| {
        let app = st.apps.get(id)?;
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(b"{\"app\":");
        write_app_info(&mut out, st, app, embed, host);
        out.push(b'}');
        Some(out)
    })
}

/// One AppInfo as a JSON value (what `POST /v2/apps` answers).
pub(crate) fn app_info_value(engine: &Engine, id: &PathId, embed: Embed) -> Option<Value> {
    let host = engine.host();
    engine.read(|st| {
        let app = st.apps.get(id)?;
        serde_json::to_value(AppInfo::of(st, app, embed, host)).ok()
    })
}

/// `GET /v2/apps/{id}/tasks` body.
pub(crate) fn app_tasks_json(engine: &Engine, id: &PathId) -> Option<Value> {
    let host = engine.host();
    engine.read(|st| {
        let app = st.apps.get(id)?;
        let checks = !app.def.health_checks.is_empty();
        let tasks: Vec<TaskJson<'_>> = st
            .tasks_of(id)
            .map(|t| TaskJson::of(t, host, checks))
            .collect();
        Some(json!({ "tasks": tasks }))
    })
}

/// The tasks a kill started on, as Marathon's task JSON.
pub(crate) fn killed_json(engine: &Engine, k: &engine::KilledTask) -> Value {
    serde_json::to_value(TaskJson::of(&k.task, engine.host(), k.health_checks))
        .unwrap_or(Value::Null)
}

/// `GET /v2/tasks` body; `status` filters by `running`/`staging`/... (empty = all).
pub(crate) fn tasks_json(engine: &Engine, status: &[String]) -> Value {
    let host = engine.host();
    let wanted: Vec<String> = status
        .iter()
        .map(|s| format!("TASK_{}", s.to_uppercase()))
        .collect();
    engine.read(|st| {
        let tasks: Vec<TaskJson<'_>> = st
            .tasks
            .values()
            .filter(|t| {
                wanted.is_empty() || wanted.iter().any(|w| w == t.reported_state().as_str())
            })
            .map(|t| {
                let checks = st
                    .apps
                    .get(&t.app_id)
                    .is_some_and(|a| !a.def.health_checks.is_empty());
                TaskJson::of(t, host, checks)
            })
            .collect();
        json!({ "tasks": tasks })
    })
}

/// `GET /v2/deployments` body.
pub(crate) fn deployments_json(engine: &Engine) -> Value {
    engine.read(|st| Value::Array(st.deployments.iter().map(deployment_json).collect()))
}

/// Native deployment status, running or finished: Marathon's deployment JSON plus
/// `status` (`running`, `success`, `failed`), `reason` and `finishedAt`.
pub(crate) fn deployment_status_json(d: &Deployment) -> Value {
    let status = match d.outcome {
        None => "running",
        Some(Outcome::Success) => "success",
        Some(Outcome::Failed) => "failed",
    };
    let mut v = deployment_json(d);
    if let Value::Object(m) = &mut v {
        m.insert("status".into(), json!(status));
        m.insert("reason".into(), json!(d.reason));
        m.insert("finishedAt".into(), json!(d.finished_at.map(Timestamp)));
    }
    v
}

/// `GET /v2/queue` body: apps waiting for launches, with the backoff delay.
pub(crate) fn queue_json(engine: &Engine) -> Value {
    let now = Timestamp::now().millis();
    engine.read(|st| {
        let items: Vec<Value> = st
            .apps
            .values()
            .filter_map(|a| {
                let active = st.tasks_of(&a.def.id).filter(|t| t.kill.is_none()).count() as u32;
                let staging = st
                    .tasks_of(&a.def.id)
                    .filter(|t| t.state == TaskState::TaskStaging)
                    .count() as u32;
                let missing = a.def.instances.saturating_sub(active);
                let left = a.rt.delay_left_ms(now);
                if missing == 0 && staging == 0 {
                    return None;
                }
                Some(json!({
                    "app": a.def,
                    "count": missing + staging,
                    "delay": {"timeLeftSeconds": (left + 999) / 1000, "overdue": left == 0},
                    "since": Timestamp(a.rt.waiting_since.unwrap_or(now)),
                }))
            })
            .collect();
        json!({ "queue": items })
    })
}

/// Native status of one app (`GET /api/v1/apps/{id}/status`).
pub(crate) fn app_status_json(s: &AppStatus, limits: &CgroupSupport) -> Value {
    let limits = match limits {
        CgroupSupport::Unavailable { reason } => {
            json!({"enforced": false, "reason": format!("cpus/mem are not enforced: {reason}")})
        }
        _ => json!({"enforced": true, "reason": null}),
    };
    let crash_loop = s.crash_loop.as_ref().map(|c| {
        json!({
            "backoffSeconds": c.backoff_seconds,
            "nextLaunchInSeconds": c.next_launch_in_ms as f64 / 1000.0,
            "lastFailure": c.last_failure,
            "at": c.at,
        })
    });
    json!({
        "id": s.id,
        "instances": s.instances,
        "state": s.phase.as_str(),
        "ready": s.ready,
        "crashLoop": crash_loop,
        "counts": CountsJson::from(s.counts),
        "deployments": s.deployments,
        "waiting": s.waiting,
        "backoff": {"delaySeconds": s.delay_seconds, "timeLeftSeconds": (s.delay_left_ms as f64) / 1000.0},
        "limits": limits,
        "lastTaskFailure": s.last_task_failure,
        "terminated": s.terminated.iter().map(|t| json!({
            "id": t.id, "state": t.state.as_str(), "at": Timestamp(t.at), "message": t.message,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /v2/groups[/{id}]` body (apps only; nested groups are derived from app ids).
pub(crate) fn group_json(engine: &Engine, id: &PathId, embed: Embed) -> Option<Value> {
    let host = engine.host();
    engine.read(|st| {
        if !id.is_root() && !st.apps.keys().any(|a| a.starts_with(id) && a != id) {
            return None;
        }
        Some(group_of(st, id, embed, host))
    })
}

fn group_of(st: &State, id: &PathId, embed: Embed, host: Host<'_>) -> Value {
    let depth = id.segments().len();
    let apps: Vec<Value> = st
        .apps
        .values()
        .filter(|a| a.def.id.segments().len() == depth + 1 && a.def.id.starts_with(id))
        .map(|a| serde_json::to_value(AppInfo::of(st, a, embed, host)).unwrap_or_default())
        .collect();
    let mut children: Vec<PathId> = st
        .apps
        .keys()
        .filter(|a| a.segments().len() > depth + 1 && a.starts_with(id))
        .map(|a| PathId::parse(&format!("{}/{}", id, a.segments()[depth])))
        .collect();
    children.dedup();
    let version = st
        .apps
        .values()
        .filter(|a| a.def.id.starts_with(id))
        .map(|a| a.def.version)
        .max()
        .unwrap_or_default();
    json!({
        "id": id,
        "apps": apps,
        "groups": children.iter().map(|g| group_of(st, g, embed, host)).collect::<Vec<_>>(),
        "pods": [],
        "dependencies": [],
        "version": version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::state::{AppEntry, State};

    #[test]
    fn spliced_app_info_equals_the_serialised_view() {
        let body = br#"{"id": "/web", "cmd": "sleep 1", "labels": {"A": "b"}, "healthChecks": [{"protocol": "TCP"}]}"#;
        let def = model::parse_definition(body, None, model::Timestamp(1)).unwrap();
        let mut st = State::default();
        st.apps.insert(
            def.id.clone(),
            AppEntry::new(def.clone(), Default::default()),
        );
        let host = Host {
            host: "127.0.0.1",
            slave_id: "agent-S0",
        };
        for embed in [Embed::default(), Embed::single()] {
            let app = &st.apps[&def.id];
            let mut out = Vec::new();
            write_app_info(&mut out, &st, app, embed, host);
            let spliced: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let direct = serde_json::to_value(AppInfo::of(&st, app, embed, host)).unwrap();
            assert_eq!(spliced, direct);
        }
    }
}
