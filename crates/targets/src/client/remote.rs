//! What a remote Marathon API answers, read leniently from its JSON: apps, tasks,
//! deployments, deployment results and error bodies. Pure: no I/O.

use super::error::FieldError;
use serde_json::Value;

/// A deployment the remote started: its `deploymentId` and the app version it leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentRef {
    /// The app the deployment was started for.
    pub app: String,
    /// The remote's deployment id.
    pub id: String,
    /// The app version the deployment leads to (Marathon's `version`).
    pub version: String,
}

/// An app as the remote shows it (`GET /v2/apps/{id}`), with the fields clients act on and
/// the whole definition.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteApp {
    /// Its id (`/BB/prod/orders`).
    pub id: String,
    /// Its current version (changes on every scale and configuration change).
    pub version: Option<String>,
    /// `versionInfo.lastConfigChangeAt`: the version of its configuration.
    pub last_config_change_at: Option<String>,
    /// `instances`.
    pub instances: u64,
    /// `tasksRunning`.
    pub tasks_running: u64,
    /// `tasksHealthy`.
    pub tasks_healthy: u64,
    /// `container.docker.image`, when it is a container app.
    pub image: Option<String>,
    /// Ids of the deployments that affect it now.
    pub deployments: Vec<String>,
    /// Its tasks, when the answer embedded them.
    pub tasks: Vec<RemoteTask>,
    /// `lastTaskFailure`, if any.
    pub last_task_failure: Option<TaskFailure>,
    /// The app's JSON as the remote rendered it.
    pub definition: Value,
}

/// A task of a remote app (Marathon's task JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTask {
    /// Its id.
    pub id: String,
    /// Its app's id.
    pub app_id: String,
    /// The host it runs on.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u16>,
    /// `TASK_RUNNING`, `TASK_STAGING`, ...
    pub state: String,
    /// The app version it runs.
    pub version: Option<String>,
    /// `None` without health checks; else whether every check's last result is alive.
    pub healthy: Option<bool>,
    /// `stagedAt`: when it was created.
    pub staged_at: Option<String>,
    /// `startedAt`: when it started running.
    pub started_at: Option<String>,
}

/// Marathon's `lastTaskFailure`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailure {
    /// The failed task.
    pub task_id: String,
    /// Its state (`TASK_FAILED`, ...).
    pub state: String,
    /// Why it failed.
    pub message: String,
    /// The app version it ran.
    pub version: Option<String>,
    /// When it failed.
    pub timestamp: Option<String>,
}

/// A running deployment (`GET /v2/deployments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteDeployment {
    /// Its id.
    pub id: String,
    /// The version it leads to.
    pub version: Option<String>,
    /// The apps it changes.
    pub affected_apps: Vec<String>,
    /// The step it is at (1-based) of `total_steps`.
    pub current_step: u64,
    /// How many steps it has.
    pub total_steps: u64,
}

/// How waiting for a deployment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentOutcome {
    /// It finished and the app runs the version it led to.
    Succeeded,
    /// The remote says it failed (a Slipway remote reports why: cancelled, overridden by a
    /// forced deployment, rolled back).
    Failed {
        /// The remote's reason.
        reason: String,
    },
    /// It is gone and the app is at another version: a later deployment replaced it (a
    /// forced update, a cancel with rollback). Marathon does not say which.
    Superseded {
        /// The app's version now.
        app_version: String,
    },
    /// It is gone and so is the app.
    AppDeleted,
    /// Still running when the wait ended. Marathon deployments never fail on their own (a
    /// task that never becomes healthy deploys forever): this is where a client reports
    /// the failure, with the app's last task failure.
    TimedOut {
        /// The app's `lastTaskFailure` for the new version, if its tasks failed.
        last_task_failure: Option<TaskFailure>,
        /// Healthy (or, without checks, running) tasks.
        tasks_healthy: u64,
        /// Instances wanted.
        instances: u64,
    },
}

/// The digest of an image reference (`sha256:…` after the `@`), to compare what two
/// targets run.
pub fn image_digest(image: &str) -> Option<&str> {
    image
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| d.contains(':'))
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl RemoteApp {
    /// Reads an app object; `None` when it has no `id`.
    pub fn from_json(app: &Value) -> Option<RemoteApp> {
        let id = string(&app["id"])?;
        let has_checks = app["healthChecks"]
            .as_array()
            .is_some_and(|c| !c.is_empty());
        let tasks: Vec<RemoteTask> = app["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(RemoteTask::from_json)
            .collect();
        let running = |t: &&RemoteTask| t.state == "TASK_RUNNING";
        Some(RemoteApp {
            id,
            version: string(&app["version"]),
            last_config_change_at: string(&app["versionInfo"]["lastConfigChangeAt"]),
            instances: app["instances"].as_u64().unwrap_or(0),
            tasks_running: app["tasksRunning"]
                .as_u64()
                .unwrap_or_else(|| tasks.iter().filter(running).count() as u64),
            tasks_healthy: app["tasksHealthy"].as_u64().unwrap_or_else(|| {
                tasks
                    .iter()
                    .filter(running)
                    .filter(|t| t.healthy == Some(true) || !has_checks)
                    .count() as u64
            }),
            image: string(&app["container"]["docker"]["image"]),
            deployments: app["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| string(&d["id"]))
                .collect(),
            tasks,
            last_task_failure: TaskFailure::from_json(&app["lastTaskFailure"]),
            definition: app.clone(),
        })
    }

    /// Whether the app runs the version `version` leads to: its current version, its
    /// configuration's or (after a later scale) its configuration change is that version.
    pub fn is_at(&self, version: &str) -> bool {
        self.version.as_deref() == Some(version)
            || self.last_config_change_at.as_deref() == Some(version)
    }
}

impl RemoteTask {
    /// Reads a task object; `None` without an `id`.
    pub fn from_json(t: &Value) -> Option<RemoteTask> {
        let checks = t["healthCheckResults"].as_array();
        Some(RemoteTask {
            id: string(&t["id"])?,
            app_id: string(&t["appId"]).unwrap_or_default(),
            host: string(&t["host"]).unwrap_or_default(),
            ports: t["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
                .collect(),
            state: string(&t["state"]).unwrap_or_default(),
            version: string(&t["version"]),
            healthy: checks
                .filter(|c| !c.is_empty())
                .map(|c| c.iter().all(|r| r["alive"] == Value::Bool(true))),
            staged_at: string(&t["stagedAt"]),
            started_at: string(&t["startedAt"]),
        })
    }
}

impl TaskFailure {
    /// Reads `lastTaskFailure`; `None` when absent or null.
    pub fn from_json(v: &Value) -> Option<TaskFailure> {
        v.as_object()?;
        Some(TaskFailure {
            task_id: string(&v["taskId"]).unwrap_or_default(),
            state: string(&v["state"]).unwrap_or_default(),
            message: string(&v["message"]).unwrap_or_default(),
            version: string(&v["version"]),
            timestamp: string(&v["timestamp"]),
        })
    }
}

impl RemoteDeployment {
    /// Reads a deployment object; `None` without an `id`.
    pub fn from_json(d: &Value) -> Option<RemoteDeployment> {
        Some(RemoteDeployment {
            id: string(&d["id"])?,
            version: string(&d["version"]),
            affected_apps: strings(&d["affectedApps"]),
            current_step: d["currentStep"].as_u64().unwrap_or(0),
            total_steps: d["totalSteps"].as_u64().unwrap_or(0),
        })
    }
}

/// Marathon's error body: `message` and `details`, which are field errors
/// (`[{"path", "errors"}]`) or, for malformed JSON, a string. A body that is not JSON is
/// its own message.
pub(crate) fn error_body(text: &str) -> (String, Vec<FieldError>) {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut message = match body["message"].as_str() {
        Some(m) => m.to_string(),
        None if text.trim().is_empty() => "no message".to_string(),
        None => text.trim().to_string(),
    };
    let mut details = Vec::new();
    match &body["details"] {
        Value::String(s) => {
            message.push_str(": ");
            message.push_str(s);
        }
        Value::Array(list) => {
            for d in list {
                details.push(FieldError {
                    path: string(&d["path"]).unwrap_or_else(|| "/".into()),
                    errors: strings(&d["errors"]),
                });
            }
        }
        _ => {}
    }
    (shorten(&message, 500), details)
}

/// At most `max` characters, with `…` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_app_with_tasks_and_a_failure() {
        let app = RemoteApp::from_json(&json!({
            "id": "/BB/prod/orders", "instances": 2, "version": "2026-12-06T10:05:00.000Z",
            "versionInfo": {"lastConfigChangeAt": "2026-12-06T10:00:00.000Z"},
            "container": {"type": "DOCKER", "docker": {"image": "127.0.0.1:5000/orders@sha256:ab12"}},
            "healthChecks": [{"protocol": "HTTP"}],
            "deployments": [{"id": "d1"}],
            "tasks": [
                {"id": "t1", "appId": "/BB/prod/orders", "host": "10.0.0.7", "ports": [31005, 70000],
                 "state": "TASK_RUNNING", "healthCheckResults": [{"alive": true}]},
                {"id": "t2", "state": "TASK_RUNNING", "healthCheckResults": [{"alive": false}]},
                {"state": "TASK_RUNNING"}
            ],
            "lastTaskFailure": {"taskId": "t0", "state": "TASK_FAILED", "message": "exit 3",
                                "version": "2026-12-06T10:00:00.000Z"}
        }))
        .unwrap();
        assert_eq!(app.tasks.len(), 2);
        assert_eq!(app.tasks[0].ports, vec![31005]);
        assert_eq!(app.tasks[0].healthy, Some(true));
        assert_eq!((app.tasks_running, app.tasks_healthy), (2, 1));
        assert_eq!(app.deployments, vec!["d1"]);
        assert_eq!(app.last_task_failure.as_ref().unwrap().message, "exit 3");
        assert_eq!(
            image_digest(app.image.as_deref().unwrap()),
            Some("sha256:ab12")
        );
        assert!(app.is_at("2026-12-06T10:00:00.000Z") && app.is_at("2026-12-06T10:05:00.000Z"));
        assert!(!app.is_at("2026-12-06T09:00:00.000Z"));
        assert!(RemoteApp::from_json(&json!({"instances": 1})).is_none());
    }

    #[test]
    fn image_digests() {
        assert_eq!(image_digest("r:5000/a@sha256:1"), Some("sha256:1"));
        assert_eq!(image_digest("r:5000/a:tag"), None);
        assert_eq!(image_digest("user@host/a"), None);
    }

    #[test]
    fn error_bodies() {
        let (m, d) = error_body(
            r#"{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}"#,
        );
        assert_eq!(m, "Object is not valid");
        assert_eq!(
            d[0].to_string(),
            "/upgradeStrategy/minimumHealthCapacity: is greater than 1"
        );
        let (m, d) =
            error_body(r#"{"message":"Invalid JSON","details":"expected value at line 1"}"#);
        assert_eq!(m, "Invalid JSON: expected value at line 1");
        assert!(d.is_empty());
        assert_eq!(
            error_body("<html>bad gateway</html>").0,
            "<html>bad gateway</html>"
        );
        assert_eq!(error_body("").0, "no message");
        assert_eq!(error_body(&"x".repeat(600)).0.chars().count(), 501);
    }
}
