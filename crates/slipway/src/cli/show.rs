//! Text rendering of `apps show`: key facts of an app, its native status and its tasks.

use serde_json::Value;

use super::apps::ports;
use super::out::{arr_of, or_dash, scalar, str_of, u64_of};
use super::progress::task_health;
use super::table::Table;

/// Width of the key column.
const KEY: usize = 15;

/// The full `apps show` text for `app` (AppInfo), `status` (`/api/v1/apps/{id}/status`,
/// `null` when unavailable) and `autoscaler` (`/api/v1/autoscalers/{id}`, `null` when the
/// app has none).
pub(crate) fn render(app: &Value, status: &Value, autoscaler: &Value) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: &str| {
        s.push_str(&format!("{:<KEY$}{v}\n", key(k)));
    };
    kv("ID", str_of(app, "id"));
    for (k, v) in what_runs(app) {
        kv(k, &v);
    }
    let count = |k: &str| u64_of(app, k).unwrap_or(0);
    kv(
        "Instances",
        &format!(
            "{} desired, {} running, {} healthy, {} unhealthy, {} staged",
            count("instances"),
            count("tasksRunning"),
            count("tasksHealthy"),
            count("tasksUnhealthy"),
            count("tasksStaged")
        ),
    );
    kv("Resources", &resources(app));
    kv("Version", &or_dash(str_of(app, "version")));
    let checks: Vec<String> = arr_of(app, "healthChecks")
        .iter()
        .map(health_check)
        .collect();
    if checks.is_empty() {
        kv("Health checks", "none");
    }
    for (i, c) in checks.iter().enumerate() {
        kv(if i == 0 { "Health checks" } else { "" }, c);
    }
    let deployments: Vec<&str> = arr_of(app, "deployments")
        .iter()
        .map(|d| str_of(d, "id"))
        .collect();
    kv(
        "Deployments",
        &if deployments.is_empty() {
            "none".to_string()
        } else {
            deployments.join(", ")
        },
    );
    if let Some(f) = app.get("lastTaskFailure").filter(|f| f.is_object()) {
        kv(
            "Last failure",
            &format!(
                "{} ({} of task {} at {})",
                str_of(f, "message"),
                or_dash(str_of(f, "state")),
                or_dash(str_of(f, "taskId")),
                or_dash(str_of(f, "timestamp"))
            ),
        );
    }
    for (k, v) in status_lines(status)
        .into_iter()
        .chain(autoscaler_lines(autoscaler))
    {
        s.push_str(&format!("{:<KEY$}{v}\n", key(k)));
    }
    s.push('\n');
    s.push_str(&task_table(arr_of(app, "tasks")).render());
    s
}

/// The autoscaler's policy, whether it may act, and its last decision.
fn autoscaler_lines(a: &Value) -> Vec<(&'static str, String)> {
    if !a.is_object() {
        return vec![("Autoscaler", "none".into())];
    }
    let p = &a["policy"];
    let metrics: Vec<String> = arr_of(p, "metrics")
        .iter()
        .map(|m| format!("{} {}", str_of(m, "type"), scalar(&m["target"])))
        .collect();
    let mut out = vec![(
        "Autoscaler",
        format!(
            "{}..{} instances on {} (mode {}, from {})",
            scalar(&p["min"]),
            scalar(&p["max"]),
            or_dash(&metrics.join(", ")),
            or_dash(str_of(p, "mode")),
            or_dash(str_of(a, "source")),
        ),
    )];
    if a["enabled"] != true {
        out.push((
            "",
            format!("NOT ENABLED: {}", or_dash(str_of(a, "disabledReason"))),
        ));
    }
    if let Some(d) = a.get("lastDecision").filter(|d| d.is_object()) {
        out.push((
            "Last decision",
            format!(
                "{} ({})",
                or_dash(str_of(d, "summary")),
                or_dash(str_of(d, "at"))
            ),
        ));
    }
    out
}

/// `Key:` for the key column; continuation lines (an empty key) stay blank.
fn key(k: &str) -> String {
    if k.is_empty() {
        String::new()
    } else {
        format!("{k}:")
    }
}

/// Command, args or container image lines.
fn what_runs(app: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let cmd = str_of(app, "cmd");
    if !cmd.is_empty() {
        out.push(("Command", cmd.to_string()));
    }
    let args: Vec<String> = arr_of(app, "args").iter().map(scalar).collect();
    if !args.is_empty() {
        out.push(("Args", args.join(" ")));
    }
    let image = app
        .get("container")
        .and_then(|c| {
            c.get("docker")
                .and_then(|d| d.get("image"))
                .or_else(|| c.get("image"))
        })
        .and_then(Value::as_str);
    if let Some(image) = image {
        out.push(("Image", image.to_string()));
    }
    out
}

/// `0.5 cpus, 128 MiB memory, 0 MiB disk`.
fn resources(app: &Value) -> String {
    let num = |k: &str| app.get(k).map(scalar).unwrap_or_else(|| "-".to_string());
    let mut s = format!("{} cpus, {} MiB memory", num("cpus"), num("mem"));
    if app
        .get("disk")
        .and_then(Value::as_f64)
        .is_some_and(|d| d > 0.0)
    {
        s.push_str(&format!(", {} MiB disk", num("disk")));
    }
    s
}

/// One health check in a line, e.g. `HTTP /health on port index 0, every 10s, ...`.
pub(crate) fn health_check(hc: &Value) -> String {
    let protocol = match str_of(hc, "protocol") {
        "" => "HTTP",
        p => p,
    };
    let mut s = protocol.to_string();
    if let Some(cmd) = hc
        .get("command")
        .and_then(|c| c.get("value"))
        .and_then(Value::as_str)
    {
        s.push_str(&format!(" `{cmd}`"));
    }
    let path = str_of(hc, "path");
    if !path.is_empty() {
        s.push_str(&format!(" {path}"));
    }
    if let Some(port) = u64_of(hc, "port") {
        s.push_str(&format!(" on port {port}"));
    } else if let Some(i) = u64_of(hc, "portIndex") {
        s.push_str(&format!(" on port index {i}"));
    }
    let secs = |k: &str| u64_of(hc, k).map(|v| format!("{v}s"));
    let mut parts = Vec::new();
    if let Some(v) = secs("intervalSeconds") {
        parts.push(format!("every {v}"));
    }
    if let Some(v) = secs("timeoutSeconds") {
        parts.push(format!("timeout {v}"));
    }
    if let Some(v) = secs("gracePeriodSeconds") {
        parts.push(format!("grace {v}"));
    }
    if let Some(v) = u64_of(hc, "maxConsecutiveFailures") {
        parts.push(format!("max {v} failures"));
    }
    if !parts.is_empty() {
        s.push_str(", ");
        s.push_str(&parts.join(", "));
    }
    s
}

/// Lines from the native status (`GET /api/v1/apps/{id}/status`): why the app waits, its
/// launch backoff, whether cpu/mem limits are enforced, and recently ended tasks. Facts the
/// AppInfo already shows (counts, deployments, lastTaskFailure) are not repeated.
fn status_lines(status: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !status.is_object() {
        return out;
    }
    if let Some(c) = status.get("crashLoop").filter(|c| c.is_object()) {
        let secs = |k: &str| c.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        out.push((
            "State",
            format!(
                "CrashLoopBackOff: tasks keep failing ({}); backoff {:.1}s, next launch in {:.1}s",
                or_dash(str_of(c, "lastFailure")),
                secs("backoffSeconds"),
                secs("nextLaunchInSeconds")
            ),
        ));
    } else if let Some(state) = status.get("state").and_then(Value::as_str) {
        out.push(("State", state.to_string()));
    }
    let waiting = match status.get("waiting") {
        None | Some(Value::Null) => "no".to_string(),
        Some(w) => scalar(w),
    };
    out.push(("Waiting", waiting));
    if let Some(b) = status.get("backoff") {
        let secs = |k: &str| b.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let delay = secs("delaySeconds");
        let left = secs("timeLeftSeconds");
        let text = match (delay > 0.0, left > 0.0) {
            (false, _) => "none".to_string(),
            (true, false) => format!("delay {delay:.1}s (launches allowed now)"),
            (true, true) => format!("delay {delay:.1}s, next launch in {left:.1}s"),
        };
        out.push(("Backoff", text));
    }
    if let Some(l) = status.get("limits") {
        let text = match l.get("enforced").and_then(Value::as_bool) {
            Some(true) => "cpus/mem enforced by cgroups".to_string(),
            _ => match str_of(l, "reason") {
                "" => "cpus/mem are not enforced".to_string(),
                reason => reason.to_string(),
            },
        };
        out.push(("Limits", text));
    }
    for (i, t) in arr_of(status, "terminated").iter().take(5).enumerate() {
        let line = format!(
            "{} {} at {}: {}",
            str_of(t, "id"),
            or_dash(str_of(t, "state")),
            or_dash(str_of(t, "at")),
            or_dash(str_of(t, "message"))
        );
        out.push((if i == 0 { "Ended tasks" } else { "" }, line));
    }
    out
}

/// The task table of `apps show`.
fn task_table(tasks: &[Value]) -> Table {
    let mut t = Table::new(&["ID", "STATE", "HOST:PORTS", "HEALTH", "STARTED"]);
    for task in tasks {
        let host = or_dash(str_of(task, "host"));
        let ports = ports(task);
        let hp = if ports == "-" {
            host
        } else {
            format!("{host}:{ports}")
        };
        t.row(vec![
            str_of(task, "id").to_string(),
            or_dash(str_of(task, "state")),
            hp,
            task_health(task).to_string(),
            or_dash(str_of(task, "startedAt")),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_check_lines() {
        let hc = json!({"protocol": "HTTP", "path": "/health", "portIndex": 0,
            "intervalSeconds": 10, "timeoutSeconds": 5, "gracePeriodSeconds": 300,
            "maxConsecutiveFailures": 3});
        assert_eq!(
            health_check(&hc),
            "HTTP /health on port index 0, every 10s, timeout 5s, grace 300s, max 3 failures"
        );
        let cmd = json!({"protocol": "COMMAND", "command": {"value": "true"}});
        assert_eq!(health_check(&cmd), "COMMAND `true`");
    }

    #[test]
    fn renders_facts_status_and_tasks() {
        let app = json!({
            "id": "/web", "cmd": "serve", "instances": 2, "tasksRunning": 1, "tasksHealthy": 1,
            "cpus": 0.5, "mem": 64, "disk": 0, "version": "v1",
            "healthChecks": [{"protocol": "TCP", "portIndex": 0}],
            "deployments": [{"id": "d1"}],
            "lastTaskFailure": {"message": "exit 1", "state": "TASK_FAILED", "taskId": "web.0",
                                "timestamp": "t0"},
            "tasks": [{"id": "web.1", "state": "TASK_RUNNING", "host": "h", "ports": [80],
                       "healthCheckResults": [{"alive": true}], "startedAt": "t1"}]
        });
        let status = json!({
            "waiting": "backing off: next launch in 3.0s",
            "backoff": {"delaySeconds": 4.0, "timeLeftSeconds": 3.0},
            "limits": {"enforced": false, "reason": "cpus/mem are not enforced: no cgroups"},
            "terminated": [{"id": "web.0", "state": "TASK_FAILED", "at": "t0", "message": "exit 1"},
                           {"id": "web.9", "state": "TASK_KILLED", "at": "t9", "message": "scaled down"}]
        });
        let text = render(&app, &status, &Value::Null);
        let expected = "\
ID:            /web
Command:       serve
Instances:     2 desired, 1 running, 1 healthy, 0 unhealthy, 0 staged
Resources:     0.5 cpus, 64 MiB memory
Version:       v1
Health checks: TCP on port index 0
Deployments:   d1
Last failure:  exit 1 (TASK_FAILED of task web.0 at t0)
Waiting:       backing off: next launch in 3.0s
Backoff:       delay 4.0s, next launch in 3.0s
Limits:        cpus/mem are not enforced: no cgroups
Ended tasks:   web.0 TASK_FAILED at t0: exit 1
               web.9 TASK_KILLED at t9: scaled down
Autoscaler:    none

ID     STATE         HOST:PORTS  HEALTH   STARTED
web.1  TASK_RUNNING  h:80        healthy  t1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn status_when_all_is_well_or_missing() {
        let status = json!({"waiting": null, "backoff": {"delaySeconds": 0.0},
                            "limits": {"enforced": true, "reason": null}, "terminated": []});
        assert_eq!(
            status_lines(&status),
            [
                ("Waiting", "no".to_string()),
                ("Backoff", "none".to_string()),
                ("Limits", "cpus/mem enforced by cgroups".to_string())
            ]
        );
        assert!(status_lines(&Value::Null).is_empty());
    }

    #[test]
    fn crash_loops_say_so_with_the_backoff() {
        let status = json!({"state": "CrashLoopBackOff", "waiting": "backing off",
            "crashLoop": {"backoffSeconds": 2.0, "nextLaunchInSeconds": 1.5,
                          "lastFailure": "Command exited with status 3"}});
        assert_eq!(
            status_lines(&status)[0],
            (
                "State",
                "CrashLoopBackOff: tasks keep failing (Command exited with status 3); \
                 backoff 2.0s, next launch in 1.5s"
                    .to_string()
            )
        );
        assert_eq!(
            status_lines(&json!({"state": "Running"}))[0],
            ("State", "Running".to_string())
        );
    }

    #[test]
    fn container_image_and_args() {
        let app = json!({"args": ["-p", 8080], "container": {"docker": {"image": "web:1"}}});
        assert_eq!(
            what_runs(&app),
            [
                ("Args", "-p 8080".to_string()),
                ("Image", "web:1".to_string())
            ]
        );
    }

    #[test]
    fn the_autoscaler_its_state_and_last_decision() {
        assert_eq!(
            autoscaler_lines(&Value::Null),
            vec![("Autoscaler", "none".to_string())]
        );
        let a = json!({"appId": "/web", "source": "api", "enabled": false,
            "disabledReason": "autoscaler may not deploy /web",
            "policy": {"min": 2, "max": 10, "mode": "any",
                "metrics": [{"type": "cpu", "target": 0.6}, {"type": "rps", "target": 100}]},
            "lastDecision": {"summary": "scale 2 -> 4: cpu 0.9 over 0.6", "at": "2026-12-06T10:00:00.000Z"}});
        let lines = autoscaler_lines(&a);
        assert_eq!(
            lines[0].1,
            "2..10 instances on cpu 0.6, rps 100 (mode any, from api)"
        );
        assert_eq!(lines[1].1, "NOT ENABLED: autoscaler may not deploy /web");
        assert_eq!(
            lines[2],
            (
                "Last decision",
                "scale 2 -> 4: cpu 0.9 over 0.6 (2026-12-06T10:00:00.000Z)".to_string()
            )
        );
        let text = render(&json!({"id": "/web"}), &Value::Null, &a);
        assert!(text.contains("Autoscaler:"), "{text}");
    }
}
