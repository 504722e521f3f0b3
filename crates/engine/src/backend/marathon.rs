//! Another Marathon API as the scheduler of a named target: a second Slipway, or a real
//! Marathon. Apps are `PUT` whole (`/v2/apps/{id}?force=true`), removed with `DELETE`, and
//! their tasks read back from `/v2/apps?embed=apps.tasks`. Credentials come from this
//! server's secret store: `user:password` is sent as HTTP basic (as Marathon uses), anything
//! else as a bearer token; they never appear in errors or logs.
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
use std::time::Duration;

/// A remote Marathon v2 API.
pub struct MarathonScheduler {
    target: String,
    url: String,
    secret: Option<String>,
    secrets: Arc<dyn SecretResolver>,
    http: reqwest::Client,
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
            url: url.trim_end_matches('/').to_string(),
            secret,
            secrets,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// A request with credentials, or why there are none.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let rb = self.http.request(method, format!("{}{path}", self.url));
        let Some(name) = &self.secret else {
            return Ok(rb);
        };
        let value = self.secrets.resolve(name).map_err(|e| {
            format!(
                "target {}: the secret '{name}' with its credentials is not available: {e}",
                self.target
            )
        })?;
        Ok(match value.split_once(':') {
            Some((user, pw)) => rb.basic_auth(user, Some(pw)),
            None => rb.bearer_auth(value),
        })
    }
}

/// Sends a request; a non-2xx answer becomes the remote's message (Marathon's `message`
/// and `details` with their field paths).
async fn send(target: String, rb: reqwest::RequestBuilder, ok404: bool) -> Result<Value, String> {
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("target {target} is not reachable: {}", without_url(&e)))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() || (ok404 && status == reqwest::StatusCode::NOT_FOUND) {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let mut msg = body["message"]
        .as_str()
        .or_else(|| body.as_str())
        .unwrap_or("no message")
        .chars()
        .take(500)
        .collect::<String>();
    for d in body["details"].as_array().into_iter().flatten() {
        let path = d["path"].as_str().unwrap_or_default();
        let errors: Vec<&str> = d["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        msg.push_str(&format!("; {path}: {}", errors.join(", ")));
    }
    Err(format!("target {target} answered {status}: {msg}"))
}

/// A transport error without the URL (which could carry credentials in other setups).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "the target");
    }
    s
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
pub(crate) fn tasks_of(target: &str, answer: &Value) -> Vec<ObservedTask> {
    let prefix = format!("/{target}/");
    let mut out = Vec::new();
    for app in answer["apps"].as_array().into_iter().flatten() {
        let id = app["id"].as_str().unwrap_or_default();
        if !id.starts_with(&prefix) {
            continue;
        }
        let app_id = PathId::parse(id);
        let cfg = app["versionInfo"]["lastConfigChangeAt"]
            .as_str()
            .and_then(Timestamp::parse);
        for t in app["tasks"].as_array().into_iter().flatten() {
            let state = match t["state"].as_str().unwrap_or_default() {
                "TASK_STAGING" | "TASK_STARTING" => TaskState::TaskStaging,
                "TASK_RUNNING" => TaskState::TaskRunning,
                "TASK_KILLING" => TaskState::TaskRunning,
                "TASK_FINISHED" => TaskState::TaskFinished,
                "TASK_FAILED" | "TASK_ERROR" => TaskState::TaskFailed,
                "TASK_KILLED" => TaskState::TaskKilled,
                _ => TaskState::TaskLost,
            };
            let version = t["version"]
                .as_str()
                .and_then(Timestamp::parse)
                .unwrap_or(Timestamp(0));
            // A task at or after the last configuration change runs that configuration.
            let config_version = match cfg {
                Some(c) if version >= c => c,
                _ => version,
            };
            out.push(ObservedTask {
                id: t["id"].as_str().unwrap_or_default().to_string(),
                app_id: app_id.clone(),
                version,
                config_version,
                state,
                host: t["host"].as_str().unwrap_or_default().to_string(),
                host_ports: t["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
                    .collect(),
                staged_at: t["stagedAt"]
                    .as_str()
                    .and_then(Timestamp::parse)
                    .unwrap_or(Timestamp(0)),
                started_at: t["startedAt"].as_str().and_then(Timestamp::parse),
                message: String::new(),
                stopping: t["state"] == "TASK_KILLING",
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
        let target = self.target.clone();
        let rb = self
            .request(
                reqwest::Method::PUT,
                &format!("/v2/apps{}?force=true", def.id),
            )
            .map(|rb| rb.json(&wire(&def)));
        Box::pin(async move { send(target, rb?, false).await.map(|_| ()) })
    }

    fn remove(&self, app: PathId) -> BoxFuture<'static, Result<(), String>> {
        let target = self.target.clone();
        let rb = self.request(
            reqwest::Method::DELETE,
            &format!("/v2/apps{app}?force=true"),
        );
        Box::pin(async move { send(target, rb?, true).await.map(|_| ()) })
    }

    fn observe(&self) -> BoxFuture<'static, Result<Vec<ObservedTask>, String>> {
        let target = self.target.clone();
        let rb = self.request(
            reqwest::Method::GET,
            &format!("/v2/apps?embed=apps.tasks&id=/{}/", self.target),
        );
        Box::pin(async move {
            let answer = send(target.clone(), rb?, false).await?;
            Ok(tasks_of(&target, &answer))
        })
    }

    fn kill(&self, task: &ObservedTask) -> BoxFuture<'static, Result<(), String>> {
        let target = self.target.clone();
        let rb = self.request(
            reqwest::Method::DELETE,
            &format!("/v2/apps{}/tasks/{}?scale=false", task.app_id, task.id),
        );
        Box::pin(async move { send(target, rb?, true).await.map(|_| ()) })
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
                        "stagedAt": "2026-12-06T10:05:01.000Z", "startedAt": "2026-12-06T10:05:02.000Z"}]},
            {"id": "/other/app", "tasks": [{"id": "x", "state": "TASK_RUNNING"}]}
        ]});
        let t = tasks_of("CC", &answer);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].id, "CC_prod_web.1");
        assert_eq!(t[0].state, TaskState::TaskRunning);
        assert_eq!(t[0].host, "10.0.0.7");
        assert_eq!(t[0].host_ports, vec![31005]);
        assert_eq!(
            t[0].config_version,
            Timestamp::parse("2026-12-06T10:00:00.000Z").unwrap()
        );
    }
}
