//! Read-side operations: Marathon views of apps, tasks, deployments, groups and the queue,
//! plus Slipway's native status documents.

use crate::state::{Outcome, State, TaskState};
use crate::views::{AppInfo, Counts, Embed, TaskJson, deployment_json, write_app_info};
use crate::{CgroupSupport, Engine, EngineError, now_ms};
use model::{AppDefinition, PathId, Selector, Timestamp};
use serde_json::{Value, json};

/// Filters of `GET /v2/apps`.
#[derive(Clone, Debug, Default)]
pub struct AppsQuery {
    /// Case-insensitive substring of `cmd`.
    pub cmd: Option<String>,
    /// Case-insensitive substring of the id.
    pub id: Option<String>,
    /// Label selector.
    pub label: Option<Selector>,
    /// Only apps at or below this group (for `/v2/apps/grp/*` and `/v2/groups`).
    pub under: Option<PathId>,
    /// Embedded parts.
    pub embed: Embed,
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
            && self.under.as_ref().is_none_or(|g| def.id.starts_with(g))
    }
}

impl Engine {
    /// `GET /v2/apps` body.
    pub fn apps_json(&self, q: &AppsQuery) -> Vec<u8> {
        let st = self.lock();
        let host = self.host();
        let mut out = Vec::with_capacity(st.apps.len() * 1024 + 16);
        out.extend_from_slice(b"{\"apps\":[");
        let mut first = true;
        for a in st.apps.values().filter(|a| q.matches(&a.def)) {
            if !first {
                out.push(b',');
            }
            first = false;
            write_app_info(&mut out, &st, a, q.embed, host);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// `GET /v2/apps/grp/*` body: `{"*": [AppInfo...]}`.
    pub fn app_group_json(&self, group: &PathId, embed: Embed) -> Vec<u8> {
        let st = self.lock();
        let host = self.host();
        let apps: Vec<AppInfo<'_>> = st
            .apps
            .values()
            .filter(|a| a.def.id.starts_with(group))
            .map(|a| AppInfo::of(&st, a, embed, host))
            .collect();
        serde_json::to_vec(&json!({ "*": apps })).unwrap_or_default()
    }

    /// `GET /v2/apps/{id}` body, or `None` for an unknown app.
    pub fn app_json(&self, id: &PathId, embed: Embed) -> Option<Vec<u8>> {
        let st = self.lock();
        let app = st.apps.get(id)?;
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(b"{\"app\":");
        write_app_info(&mut out, &st, app, embed, self.host());
        out.push(b'}');
        Some(out)
    }

    /// One stored version of an app (bare App JSON).
    pub fn app_version(
        &self,
        id: &PathId,
        version: Timestamp,
    ) -> Result<Option<AppDefinition>, EngineError> {
        if !self.lock().apps.contains_key(id) {
            return Ok(None);
        }
        Ok(self.inner.store.app_version(id, version)?)
    }

    /// `GET /v2/apps/{id}/tasks` body.
    pub fn app_tasks_json(&self, id: &PathId) -> Option<Value> {
        let st = self.lock();
        let app = st.apps.get(id)?;
        let checks = !app.def.health_checks.is_empty();
        let tasks: Vec<TaskJson<'_>> = st
            .tasks_of(id)
            .map(|t| TaskJson::of(t, self.host(), checks))
            .collect();
        Some(json!({ "tasks": tasks }))
    }

    /// `GET /v2/tasks` body; `status` filters by `running`/`staging`/... (empty = all).
    pub fn tasks_json(&self, status: &[String]) -> Value {
        let st = self.lock();
        let wanted: Vec<String> = status
            .iter()
            .map(|s| format!("TASK_{}", s.to_uppercase()))
            .collect();
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
                TaskJson::of(t, self.host(), checks)
            })
            .collect();
        json!({ "tasks": tasks })
    }

    /// `GET /v2/deployments` body.
    pub fn deployments_json(&self) -> Value {
        Value::Array(
            self.lock()
                .deployments
                .iter()
                .map(deployment_json)
                .collect(),
        )
    }

    /// Native deployment status, running or finished: Marathon's deployment JSON plus
    /// `status` (`running`, `success`, `failed`), `reason` and `finishedAt`.
    pub fn deployment_status(&self, id: &str) -> Result<Option<Value>, EngineError> {
        let running = self.lock().deployments.iter().find(|d| d.id == id).cloned();
        let (d, status) = match running {
            Some(d) => (d, "running"),
            None => match self.inner.store.finished_deployment(id)? {
                Some(v) => match serde_json::from_value::<crate::state::Deployment>(v) {
                    Ok(d) => {
                        let s = if d.outcome == Some(Outcome::Success) {
                            "success"
                        } else {
                            "failed"
                        };
                        (d, s)
                    }
                    Err(_) => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        let mut v = deployment_json(&d);
        if let Value::Object(m) = &mut v {
            m.insert("status".into(), json!(status));
            m.insert("reason".into(), json!(d.reason));
            m.insert("finishedAt".into(), json!(d.finished_at.map(Timestamp)));
        }
        Ok(Some(v))
    }

    /// Finished deployments, newest first (native history).
    pub fn deployment_history(&self, limit: usize) -> Result<Vec<Value>, EngineError> {
        Ok(self.inner.store.deployment_history(limit)?)
    }

    /// `GET /v2/queue` body: apps waiting for launches, with the backoff delay.
    pub fn queue_json(&self) -> Value {
        let st = self.lock();
        let now = now_ms();
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
    }

    /// Native status of one app: why it waits, whether limits are enforced, recent task ends.
    pub fn app_status(&self, id: &PathId) -> Option<Value> {
        let st = self.lock();
        let app = st.apps.get(id)?;
        let now = now_ms();
        let counts = Counts::of(st.tasks_of(id));
        let active = st.tasks_of(id).filter(|t| t.kill.is_none()).count() as u32;
        let left = app.rt.delay_left_ms(now);
        let waiting = waiting_reason(
            &st,
            &app.def,
            active,
            left,
            app.rt
                .last_task_failure
                .as_ref()
                .map(|f| f.message.as_str()),
        );
        let ready = st
            .tasks_of(id)
            .filter(|t| t.kill.is_none() && crate::reconcile::task_ready(&app.def, t, now))
            .count() as u32;
        let crash_loop = crash_loop(app, ready, now);
        let state = if crash_loop.is_some() {
            "CrashLoopBackOff"
        } else if app.def.instances == 0 {
            "Suspended"
        } else if st.deployments_of(id).next().is_some() {
            "Deploying"
        } else if ready >= app.def.instances {
            "Running"
        } else {
            "Waiting"
        };
        let limits = match self.cgroup_support() {
            CgroupSupport::Unavailable { reason } => {
                json!({"enforced": false, "reason": format!("cpus/mem are not enforced: {reason}")})
            }
            _ => json!({"enforced": true, "reason": null}),
        };
        Some(json!({
            "id": id,
            "instances": app.def.instances,
            "state": state,
            "ready": ready,
            "crashLoop": crash_loop,
            "counts": counts,
            "deployments": st.deployments_of(id).map(|d| d.id.clone()).collect::<Vec<_>>(),
            "waiting": waiting,
            "backoff": {"delaySeconds": app.rt.delay_seconds, "timeLeftSeconds": (left as f64) / 1000.0},
            "limits": limits,
            "lastTaskFailure": app.rt.last_task_failure,
            "terminated": app.rt.terminated.iter().rev().map(|t| json!({
                "id": t.id, "state": t.state.as_str(), "at": Timestamp(t.at), "message": t.message,
            })).collect::<Vec<_>>(),
        }))
    }

    /// `GET /v2/groups[/{id}]` body (apps only; nested groups are derived from app ids).
    pub fn group_json(&self, id: &PathId, embed: Embed) -> Option<Value> {
        let st = self.lock();
        if !id.is_root() && !st.apps.keys().any(|a| a.starts_with(id) && a != id) {
            return None;
        }
        Some(group_of(&st, id, embed, self))
    }
}

/// Kubernetes' `CrashLoopBackOff`: fewer instances ready ([`crate::reconcile::task_ready`])
/// than wanted while the app's tasks keep failing, so its launches back off. `None` when the
/// app is not backing off (no failure since its version was deployed) or all instances run.
fn crash_loop(app: &crate::state::AppEntry, ready: u32, now: i64) -> Option<Value> {
    let failure = app.rt.last_task_failure.as_ref()?;
    if ready >= app.def.instances || app.rt.delay_seconds <= 0.0 {
        return None;
    }
    Some(json!({
        "backoffSeconds": app.rt.delay_seconds,
        "nextLaunchInSeconds": app.rt.delay_left_ms(now) as f64 / 1000.0,
        "lastFailure": failure.message,
        "at": failure.timestamp,
    }))
}

fn waiting_reason(
    st: &State,
    def: &AppDefinition,
    active: u32,
    delay_left_ms: i64,
    last: Option<&str>,
) -> Value {
    let _ = st;
    if active >= def.instances {
        return Value::Null;
    }
    if delay_left_ms > 0 {
        let secs = delay_left_ms as f64 / 1000.0;
        return json!(match last {
            Some(m) => format!("backing off: next launch in {secs:.1}s after a task failure: {m}"),
            None => format!("backing off: next launch in {secs:.1}s"),
        });
    }
    json!(format!(
        "launching {} of {} instances",
        def.instances - active,
        def.instances
    ))
}

fn group_of(st: &State, id: &PathId, embed: Embed, engine: &Engine) -> Value {
    let depth = id.segments().len();
    let apps: Vec<Value> = st
        .apps
        .values()
        .filter(|a| a.def.id.segments().len() == depth + 1 && a.def.id.starts_with(id))
        .map(|a| serde_json::to_value(AppInfo::of(st, a, embed, engine.host())).unwrap_or_default())
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
        "groups": children.iter().map(|g| group_of(st, g, embed, engine)).collect::<Vec<_>>(),
        "pods": [],
        "dependencies": [],
        "version": version,
    })
}

impl Engine {
    /// Labels of an app, for policy decisions.
    pub fn app_labels(&self, id: &PathId) -> Option<std::collections::BTreeMap<String, String>> {
        self.lock().apps.get(id).map(|a| a.def.labels.clone())
    }

    /// Apps a running deployment affects.
    pub fn deployment_apps(&self, id: &str) -> Option<Vec<PathId>> {
        self.lock()
            .deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.affected_apps())
    }

    /// The app of a known task.
    pub fn task_app(&self, task_id: &str) -> Option<PathId> {
        self.lock().tasks.get(task_id).map(|t| t.app_id.clone())
    }
}
