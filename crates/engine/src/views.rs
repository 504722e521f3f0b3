//! Marathon JSON views of the engine state: AppInfo, Task, Deployment and queue items.
//!
//! They borrow from the state and serialise straight to bytes, so listing 1,000 apps with
//! their tasks costs one pass and no intermediate `serde_json::Value` tree.

use crate::state::{AppEntry, Deployment, State, TaskFailure, TaskRecord, TaskState};
use health::{HealthState, TaskHealth};
use model::{AppDefinition, PathId, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// Which optional parts of an app to include (`embed=apps.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Embed {
    /// `apps.tasks` (also adds deployments).
    pub tasks: bool,
    /// `apps.lastTaskFailure`.
    pub last_task_failure: bool,
    /// `apps.readiness`.
    pub readiness: bool,
}

impl Embed {
    /// Parses repeated `embed` values; prefixes `app.`, `apps.`, `group.apps.` are equivalent
    /// and unknown values are ignored, as in Marathon.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Embed {
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
    pub fn single() -> Embed {
        Embed {
            tasks: true,
            last_task_failure: true,
            readiness: false,
        }
    }
}

/// Context shared by task views: the advertised host and the agent id.
#[derive(Clone, Copy, Debug)]
pub struct Host<'a> {
    /// Host address of tasks.
    pub host: &'a str,
    /// Marathon `slaveId`.
    pub slave_id: &'a str,
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
pub struct TaskJson<'a> {
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
    pub fn of(t: &'a TaskRecord, host: Host<'a>, with_health: bool) -> Self {
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

/// Task counts as Marathon defines them (`TaskForStatistics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Not yet running.
    pub tasks_staged: u32,
    /// Running (including those being killed).
    pub tasks_running: u32,
    /// Running with all health checks passing.
    pub tasks_healthy: u32,
    /// Running with a failing health check.
    pub tasks_unhealthy: u32,
}

impl Counts {
    /// Counts over the tasks of one app.
    pub fn of<'a>(tasks: impl Iterator<Item = &'a TaskRecord>) -> Counts {
        let mut c = Counts::default();
        for t in tasks {
            match t.state {
                TaskState::TaskStaging => c.tasks_staged += 1,
                TaskState::TaskRunning => c.tasks_running += 1,
                _ => {}
            }
            match t.health() {
                TaskHealth::Healthy => c.tasks_healthy += 1,
                TaskHealth::Unhealthy => c.tasks_unhealthy += 1,
                TaskHealth::Unknown => {}
            }
        }
        c
    }
}

/// Marathon's AppInfo: the definition plus counts, deployments and embeds.
#[derive(Serialize)]
pub struct AppInfo<'a> {
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
    counts: Counts,
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
    pub fn of(st: &'a State, app: &'a AppEntry, embed: Embed, host: Host<'a>) -> Self {
        let id = &app.def.id;
        let with_health = !app.def.health_checks.is_empty();
        let extras = AppExtras {
            counts: Counts::of(st.tasks_of(id)),
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
pub(crate) fn write_app_info(
    out: &mut Vec<u8>,
    st: &State,
    app: &AppEntry,
    embed: Embed,
    host: Host<'_>,
) {
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
pub fn deployment_json(d: &Deployment) -> Value {
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
        "steps": crate::events::steps_json(d),
        "currentActions": current,
        "currentStep": (d.current_step + 1).min(d.steps.len()),
        "totalSteps": d.steps.len(),
    })
}
