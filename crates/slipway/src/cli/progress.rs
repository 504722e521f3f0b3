//! Deployment progress computed from an app's JSON (`GET /v2/apps/{id}`): pure, no I/O.

use serde_json::Value;

use super::out::{arr_of, str_of, u64_of};

/// Task states after which a task no longer runs.
const TERMINAL: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
];

/// Health of one task from its `healthCheckResults`: all alive = healthy, any dead =
/// unhealthy, none = unknown.
pub(crate) fn task_health(task: &Value) -> &'static str {
    let results = arr_of(task, "healthCheckResults");
    if results.is_empty() {
        "-"
    } else if results
        .iter()
        .all(|r| r.get("alive").and_then(Value::as_bool) == Some(true))
    {
        "healthy"
    } else {
        "unhealthy"
    }
}

/// The last task failure of the version being deployed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What happened.
    pub(crate) message: String,
    /// When (server timestamp).
    pub(crate) timestamp: String,
    /// Which task.
    pub(crate) task_id: String,
}

impl Failure {
    /// One line for humans.
    pub(crate) fn text(&self) -> String {
        format!(
            "last task failure: {} (task {} at {})",
            self.message, self.task_id, self.timestamp
        )
    }
}

/// How far an app is from running its current version with `instances` ready tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Desired instances.
    pub(crate) instances: u64,
    /// Tasks of the current version that run (and pass their health checks, if any).
    pub(crate) ready: u64,
    /// Tasks of older versions still running or starting.
    pub(crate) old: u64,
    /// Tasks being killed.
    pub(crate) stopping: u64,
    /// The app has health checks (ready means healthy rather than running).
    pub(crate) health_checks: bool,
    /// The last failure of a task of the current version, if any.
    pub(crate) failure: Option<Failure>,
}

impl Progress {
    /// Progress of `app` (an AppInfo with embedded tasks and lastTaskFailure).
    ///
    /// A task is of the current version when its `version` is at or after the app's
    /// `versionInfo.lastConfigChangeAt` (scaling keeps older tasks current), falling back to
    /// the app `version`. Marathon timestamps have a fixed width, so text order is time order.
    pub(crate) fn of(app: &Value) -> Progress {
        let config_version = app
            .get("versionInfo")
            .map(|vi| str_of(vi, "lastConfigChangeAt"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| str_of(app, "version"));
        let is_current = |version: &str| !version.is_empty() && version >= config_version;
        let health_checks = !arr_of(app, "healthChecks").is_empty();
        let mut p = Progress {
            instances: u64_of(app, "instances").unwrap_or(0),
            health_checks,
            ..Progress::default()
        };
        for task in arr_of(app, "tasks") {
            let state = str_of(task, "state");
            if TERMINAL.contains(&state) {
                continue;
            }
            if state == "TASK_KILLING" {
                p.stopping += 1;
            } else if !is_current(str_of(task, "version")) {
                p.old += 1;
            } else if state == "TASK_RUNNING" && (!health_checks || task_health(task) == "healthy")
            {
                p.ready += 1;
            }
        }
        p.failure = app
            .get("lastTaskFailure")
            .filter(|f| is_current(str_of(f, "version")))
            .map(|f| Failure {
                message: str_of(f, "message").to_string(),
                timestamp: str_of(f, "timestamp").to_string(),
                task_id: str_of(f, "taskId").to_string(),
            });
        p
    }

    /// E.g. `2/3 healthy (new version), 1 old, 1 stopping`.
    pub(crate) fn text(&self) -> String {
        let word = if self.health_checks {
            "healthy"
        } else {
            "running"
        };
        let mut s = format!("{}/{} {word} (new version)", self.ready, self.instances);
        if self.old > 0 {
            s.push_str(&format!(", {} old", self.old));
        }
        if self.stopping > 0 {
            s.push_str(&format!(", {} stopping", self.stopping));
        }
        s
    }

    /// Exactly the desired number of current tasks are ready and nothing else runs.
    pub(crate) fn complete(&self) -> bool {
        self.ready == self.instances && self.old == 0 && self.stopping == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OLD: &str = "2024-05-01T10:00:00.000Z";
    const NEW: &str = "2024-05-02T10:00:00.000Z";

    fn task(state: &str, version: &str, alive: Option<bool>) -> Value {
        let mut t = json!({"id": "web.1", "state": state, "version": version});
        if let Some(a) = alive {
            t["healthCheckResults"] = json!([{"alive": a}]);
        }
        t
    }

    #[test]
    fn health_from_check_results() {
        assert_eq!(
            task_health(&task("TASK_RUNNING", NEW, Some(true))),
            "healthy"
        );
        assert_eq!(
            task_health(&task("TASK_RUNNING", NEW, Some(false))),
            "unhealthy"
        );
        assert_eq!(task_health(&task("TASK_RUNNING", NEW, None)), "-");
        let mixed = json!({"healthCheckResults": [{"alive": true}, {"alive": false}]});
        assert_eq!(task_health(&mixed), "unhealthy");
    }

    #[test]
    fn rolling_upgrade_with_health_checks() {
        let app = json!({
            "id": "/web", "instances": 3, "version": NEW,
            "versionInfo": {"lastConfigChangeAt": NEW, "lastScalingAt": NEW},
            "healthChecks": [{"protocol": "HTTP"}],
            "tasks": [
                task("TASK_RUNNING", NEW, Some(true)),
                task("TASK_RUNNING", NEW, Some(true)),
                task("TASK_RUNNING", NEW, Some(false)),
                task("TASK_STAGING", NEW, None),
                task("TASK_RUNNING", OLD, Some(true)),
                task("TASK_KILLING", OLD, Some(true)),
                task("TASK_FAILED", NEW, None),
            ],
            "lastTaskFailure": {"message": "exited with 1", "taskId": "web.9",
                                "timestamp": NEW, "version": NEW}
        });
        let p = Progress::of(&app);
        assert_eq!((p.ready, p.instances, p.old, p.stopping), (2, 3, 1, 1));
        assert_eq!(p.text(), "2/3 healthy (new version), 1 old, 1 stopping");
        assert!(!p.complete());
        let f = p.failure.as_ref().map(Failure::text);
        assert_eq!(
            f.as_deref(),
            Some("last task failure: exited with 1 (task web.9 at 2024-05-02T10:00:00.000Z)")
        );
    }

    #[test]
    fn scaling_keeps_older_tasks_current_and_old_failures_are_ignored() {
        let app = json!({
            "instances": 2, "version": "2024-05-03T00:00:00.000Z",
            "versionInfo": {"lastConfigChangeAt": OLD},
            "tasks": [task("TASK_RUNNING", OLD, None), task("TASK_RUNNING", NEW, None)],
            "lastTaskFailure": {"message": "old", "version": "2024-04-01T00:00:00.000Z"}
        });
        let p = Progress::of(&app);
        assert_eq!(p.text(), "2/2 running (new version)");
        assert!(p.complete());
        assert_eq!(p.failure, None);
    }

    #[test]
    fn without_version_info_the_app_version_decides() {
        let app = json!({"instances": 1, "version": NEW,
                         "tasks": [task("TASK_RUNNING", OLD, None)]});
        assert_eq!(
            Progress::of(&app).text(),
            "0/1 running (new version), 1 old"
        );
        assert_eq!(Progress::of(&json!({})).text(), "0/0 running (new version)");
        assert!(Progress::of(&json!({})).complete());
    }
}
