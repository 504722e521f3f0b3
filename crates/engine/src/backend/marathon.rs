//! Another Marathon API as the scheduler of a named target: a second Slipway, or a real
//! Marathon, through the `targets` crate's client. Apps are `PUT` whole
//! (`/v2/apps/{id}?force=true`), removed with `DELETE`, and their tasks read back from
//! `/v2/apps?embed=apps.tasks`. Credentials come from this server's secret store on every
//! request (`user:password` as HTTP basic, as Marathon uses; `token=…` as DC/OS takes it;
//! anything else as a bearer token); they never appear in errors or logs.
//!
//! Secret references in an app's `env` (`{"secret": "name"}`) are sent as references: the
//! remote resolves them from its own secret store, so values never travel between servers.

use super::scheduled::{ObservedTask, Scheduler};
use crate::SecretResolver;
use crate::state::TaskState;
use futures_util::future::BoxFuture;
use model::{AppDefinition, PathId, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use targets::{Credentials, MarathonClient, RemoteApp};

/// A remote Marathon v2 API.
pub struct MarathonScheduler {
    target: String,
    secret: Option<String>,
    secrets: Arc<dyn SecretResolver>,
    /// The client without credentials, or why the URL cannot be used.
    client: Result<MarathonClient, String>,
}

impl MarathonScheduler {
    /// The Marathon API at `url` for target `target`, authenticating with the secret named
    /// `secret` (none: no credentials).
    pub fn new(
        target: &str,
        url: &str,
        secret: Option<String>,
        secrets: Arc<dyn SecretResolver>,
    ) -> MarathonScheduler {
        MarathonScheduler {
            target: target.to_string(),
            secret,
            secrets,
            client: MarathonClient::new(target, url, None).map_err(|e| e.to_string()),
        }
    }

    /// The client with the credentials the secret holds now, or why there are none.
    fn client(&self) -> Result<MarathonClient, String> {
        let base = self.client.as_ref().map_err(Clone::clone)?;
        let Some(name) = &self.secret else {
            return Ok(base.clone());
        };
        let value = self.secrets.resolve(name).map_err(|e| {
            format!(
                "target {}: the secret '{name}' with its credentials is not available: {e}",
                self.target
            )
        })?;
        Ok(base.with_credentials(Some(Credentials::from_secret(&value))))
    }
}

/// The definition as the remote should get it: without version fields (a `version` in a
/// `PUT` means a rollback in Marathon) and without what the remote computes itself.
pub(crate) fn wire(def: &AppDefinition) -> Value {
    let mut v = serde_json::to_value(def).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in ["version", "versionInfo"] {
            m.remove(k);
        }
    }
    v
}

/// The tasks of the remote's apps under `/target/`.
pub(crate) fn tasks_of(target: &str, apps: &[RemoteApp]) -> Vec<ObservedTask> {
    let prefix = format!("/{target}/");
    let stamp = |s: &Option<String>| s.as_deref().and_then(Timestamp::parse);
    let mut out = Vec::new();
    for app in apps.iter().filter(|a| a.id.starts_with(&prefix)) {
        let app_id = PathId::parse(&app.id);
        let cfg = stamp(&app.last_config_change_at);
        for t in &app.tasks {
            let state = match t.state.as_str() {
                "TASK_STAGING" | "TASK_STARTING" => TaskState::TaskStaging,
                "TASK_RUNNING" | "TASK_KILLING" => TaskState::TaskRunning,
                "TASK_FINISHED" => TaskState::TaskFinished,
                "TASK_FAILED" | "TASK_ERROR" => TaskState::TaskFailed,
                "TASK_KILLED" => TaskState::TaskKilled,
                _ => TaskState::TaskLost,
            };
            let version = stamp(&t.version).unwrap_or(Timestamp(0));
            // A task at or after the last configuration change runs that configuration.
            let config_version = match cfg {
                Some(c) if version >= c => c,
                _ => version,
            };
            out.push(ObservedTask {
                id: t.id.clone(),
                app_id: app_id.clone(),
                version,
                config_version,
                state,
                host: t.host.clone(),
                host_ports: t.ports.clone(),
                staged_at: stamp(&t.staged_at).unwrap_or(Timestamp(0)),
                started_at: stamp(&t.started_at),
                message: String::new(),
                stopping: t.state == "TASK_KILLING",
            });
        }
    }
    out
}

impl Scheduler for MarathonScheduler {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> &'static str {
        "marathon"
    }

    fn apply(
        &self,
        def: Arc<AppDefinition>,
        _env: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let client = self.client();
        Box::pin(async move {
            client?
                .put_app(&def.id.to_string(), &wire(&def), true)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn remove(&self, app: PathId) -> BoxFuture<'static, Result<(), String>> {
        let client = self.client();
        Box::pin(async move {
            client?
                .delete_app(&app.to_string(), true)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn observe(&self) -> BoxFuture<'static, Result<Vec<ObservedTask>, String>> {
        let client = self.client();
        let target = self.target.clone();
        Box::pin(async move {
            let apps = client?
                .list_apps(&target)
                .await
                .map_err(|e| e.to_string())?;
            Ok(tasks_of(&target, &apps))
        })
    }

    fn kill_check(&self, _task: &ObservedTask) -> Result<(), String> {
        Ok(())
    }

    fn kill(&self, task: &ObservedTask) -> BoxFuture<'static, Result<(), String>> {
        let client = self.client();
        let (app, id) = (task.app_id.to_string(), task.id.clone());
        Box::pin(async move {
            client?
                .kill_task(&app, &id, false)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wire_form_has_no_version_fields() {
        let def = model::parse_definition(
            br#"{"id": "/CC/prod/web", "cmd": "serve", "instances": 2, "env": {"A": "b"}}"#,
            None,
            Timestamp(5),
        )
        .unwrap();
        let v = wire(&def);
        assert_eq!(v["id"], "/CC/prod/web");
        assert_eq!(v["instances"], 2);
        assert!(
            v.get("version").is_none() && v.get("versionInfo").is_none(),
            "{v}"
        );
    }

    #[test]
    fn remote_tasks_under_the_target_are_mirrored() {
        let answer = json!({"apps": [
            {"id": "/CC/prod/web", "versionInfo": {"lastConfigChangeAt": "2026-12-06T10:00:00.000Z"},
             "tasks": [{"id": "CC_prod_web.1", "state": "TASK_RUNNING", "host": "10.0.0.7",
                        "ports": [31005], "version": "2026-12-06T10:05:00.000Z",
                        "stagedAt": "2026-12-06T10:05:01.000Z", "startedAt": "2026-12-06T10:05:02.000Z"},
                       {"id": "CC_prod_web.2", "state": "TASK_KILLING", "host": "10.0.0.8",
                        "version": "2026-12-06T09:00:00.000Z"}]},
            {"id": "/other/app", "tasks": [{"id": "x", "state": "TASK_RUNNING"}]}
        ]});
        let apps: Vec<RemoteApp> = answer["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(RemoteApp::from_json)
            .collect();
        let t = tasks_of("CC", &apps);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "CC_prod_web.1");
        assert_eq!(t[0].state, TaskState::TaskRunning);
        assert_eq!(t[0].host, "10.0.0.7");
        assert_eq!(t[0].host_ports, vec![31005]);
        assert_eq!(
            t[0].config_version,
            Timestamp::parse("2026-12-06T10:00:00.000Z").unwrap()
        );
        assert_eq!(
            t[0].started_at,
            Timestamp::parse("2026-12-06T10:05:02.000Z")
        );
        // An old task being killed still runs its older configuration, on its way out.
        assert!(t[1].stopping && t[1].state == TaskState::TaskRunning);
        assert_eq!(
            t[1].config_version,
            Timestamp::parse("2026-12-06T09:00:00.000Z").unwrap()
        );
    }
}
