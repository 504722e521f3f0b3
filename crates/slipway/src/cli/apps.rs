//! Read commands on apps: `apps list`, `apps show`, `apps tasks`.

use anyhow::Context;
use serde_json::{Value, json};

use super::Output;
use super::client::{Client, array_field};
use super::error::Exit;
use super::ids::AppId;
use super::out::{self, arr_of, or_dash, str_of, u64_of};
use super::progress::task_health;
use super::show;
use super::table::Table;

/// The most native status requests one `apps list` makes.
const STATUS_LOOKUPS: usize = 50;

/// `apps list`: GET /v2/apps?embed=apps.tasks with optional filters.
pub(crate) async fn list(
    client: &Client,
    output: Output,
    label: Option<&str>,
    id: Option<&str>,
) -> anyhow::Result<Exit> {
    let mut query = vec![("embed", "apps.tasks"), ("embed", "apps.lastTaskFailure")];
    if let Some(l) = label {
        query.push(("label", l));
    }
    if let Some(i) = id {
        query.push(("id", i));
    }
    let v = client
        .get("/v2/apps", &query)
        .await
        .context("cannot list apps")?;
    let mut apps = array_field(v, "apps");
    // The native status says whether an app that is short of instances or had a failure
    // is crash-looping; apps that run as wanted need no extra request, and at most
    // `STATUS_LOOKUPS` apps are asked about (the others show their counts' state).
    let mut lookups = 0;
    for app in &mut apps {
        if lookups >= STATUS_LOOKUPS {
            break;
        }
        let count = |k: &str| u64_of(app, k).unwrap_or(0);
        let unwell = count("tasksRunning") < count("instances")
            || app.get("lastTaskFailure").is_some_and(Value::is_object);
        if !unwell {
            continue;
        }
        lookups += 1;
        let id = AppId::new(str_of(app, "id"));
        if let Ok(status) = client
            .get(&format!("/api/v1/apps/{}/status", id.path()), &[])
            .await
            && let Value::Object(m) = app
        {
            m.insert("status".into(), status);
        }
    }
    // Named targets (datacenters): each app's is the one its first id segment names, else
    // the default one (this server unless configured otherwise).
    let listed = client.get("/api/v1/targets", &[]).await.unwrap_or_default();
    let targets: Vec<String> = arr_of(&listed, "targets")
        .iter()
        .map(|t| str_of(t, "name").to_string())
        .collect();
    let default = arr_of(&listed, "targets")
        .iter()
        .find(|t| t["default"] == true)
        .map_or("local", |t| str_of(t, "name"))
        .to_string();
    if !targets.is_empty() {
        for app in &mut apps {
            let first = str_of(app, "id")
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let target = if targets.contains(&first) {
                first
            } else {
                default.clone()
            };
            if let Value::Object(m) = app {
                m.insert("target".into(), Value::String(target));
            }
        }
    }
    match output {
        Output::Json => out::json(&Value::Array(apps))?,
        Output::Text => out::write_stdout(apps_table(&apps).render().as_bytes())?,
    }
    Ok(Exit::Success)
}

/// The app's state for humans: `Running`, `Deploying`, `Suspended`, `Waiting`, or
/// `CrashLoopBackOff (next launch in 3.2s)`, from the native status when the listing
/// carries one (`status`), else from the counts.
pub(crate) fn app_state(app: &Value, status: Option<&Value>) -> String {
    if let Some(status) = status.filter(|s| s.is_object()) {
        if let Some(c) = status.get("crashLoop").filter(|c| c.is_object()) {
            let left = c
                .get("nextLaunchInSeconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            return if left > 0.0 {
                format!("CrashLoopBackOff (next launch in {left:.1}s)")
            } else {
                "CrashLoopBackOff (relaunching)".to_string()
            };
        }
        let state = str_of(status, "state");
        if !state.is_empty() {
            return state.to_string();
        }
    }
    let count = |k: &str| u64_of(app, k).unwrap_or(0);
    if !arr_of(app, "deployments").is_empty() {
        "Deploying"
    } else if count("instances") == 0 {
        "Suspended"
    } else if count("tasksRunning") < count("instances") {
        "Waiting"
    } else {
        "Running"
    }
    .to_string()
}

/// The `apps list` table (with a TARGET column when the server has named targets).
pub(crate) fn apps_table(apps: &[Value]) -> Table {
    let with_target = apps.iter().any(|a| a.get("target").is_some());
    let mut head = vec!["ID", "INSTANCES", "HEALTHY", "STATUS", "VERSION"];
    if with_target {
        head.insert(1, "TARGET");
    }
    let mut t = Table::new(&head);
    for app in apps {
        let count = |k: &str| u64_of(app, k).unwrap_or(0);
        let healthy = if arr_of(app, "healthChecks").is_empty() {
            "-".to_string()
        } else {
            count("tasksHealthy").to_string()
        };
        let mut row = vec![
            str_of(app, "id").to_string(),
            format!("{}/{}", count("tasksRunning"), count("instances")),
            healthy,
            app_state(app, app.get("status")),
            or_dash(str_of(app, "version")),
        ];
        if with_target {
            row.insert(1, or_dash(str_of(app, "target")));
        }
        t.row(row);
    }
    t
}

/// `apps show`: the app and its native status.
pub(crate) async fn show(client: &Client, output: Output, id: &str) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let app = client
        .app(&id)
        .await
        .with_context(|| format!("cannot show {id}"))?;
    let status = match client
        .get(&format!("/api/v1/apps/{}/status", id.path()), &[])
        .await
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("warning: no status for {id}: {e:#}");
            Value::Null
        }
    };
    // The app's autoscaler, if it has one (a 404 means none).
    let autoscaler = match client
        .get(&format!("/api/v1/autoscalers/{}", id.path()), &[])
        .await
    {
        Ok(v) => v,
        Err(e) if super::client::is_not_found(&e) => Value::Null,
        Err(e) => {
            eprintln!("warning: cannot read the autoscaler of {id}: {e:#}");
            Value::Null
        }
    };
    match output {
        Output::Json => {
            out::json(&json!({"app": app, "status": status, "autoscaler": autoscaler}))?
        }
        Output::Text => out::write_stdout(show::render(&app, &status, &autoscaler).as_bytes())?,
    }
    Ok(Exit::Success)
}

/// `apps tasks`: GET /v2/apps/{id}/tasks.
pub(crate) async fn tasks(client: &Client, output: Output, id: &str) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let tasks = client
        .app_tasks(&id)
        .await
        .with_context(|| format!("cannot list the tasks of {id}"))?;
    match output {
        Output::Json => out::json(&json!({"tasks": tasks}))?,
        Output::Text => out::write_stdout(tasks_table(&tasks).render().as_bytes())?,
    }
    Ok(Exit::Success)
}

/// Host ports of a task joined with commas, `-` when none.
pub(crate) fn ports(task: &Value) -> String {
    let ports: Vec<String> = arr_of(task, "ports").iter().map(out::scalar).collect();
    if ports.is_empty() {
        "-".to_string()
    } else {
        ports.join(",")
    }
}

/// The `apps tasks` table.
pub(crate) fn tasks_table(tasks: &[Value]) -> Table {
    let mut t = Table::new(&[
        "ID", "STATE", "HOST", "PORTS", "HEALTH", "STAGED", "STARTED", "VERSION",
    ]);
    for task in tasks {
        t.row(vec![
            str_of(task, "id").to_string(),
            or_dash(str_of(task, "state")),
            or_dash(str_of(task, "host")),
            ports(task),
            task_health(task).to_string(),
            or_dash(str_of(task, "stagedAt")),
            or_dash(str_of(task, "startedAt")),
            or_dash(str_of(task, "version")),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_table_rows() {
        let apps = [
            json!({"id": "/web", "instances": 3, "tasksRunning": 2, "tasksHealthy": 1,
                   "healthChecks": [{}], "deployments": [{"id": "d"}], "version": "v1"}),
            json!({"id": "/worker", "instances": 1, "tasksRunning": 1, "deployments": []}),
            json!({"id": "/crash", "instances": 1, "tasksRunning": 0, "deployments": [],
                   "status": {"state": "CrashLoopBackOff",
                              "crashLoop": {"nextLaunchInSeconds": 2.5}}}),
        ];
        assert_eq!(
            apps_table(&apps).render(),
            "ID       INSTANCES  HEALTHY  STATUS                                  VERSION\n\
             /web     2/3        1        Deploying                               v1\n\
             /worker  1/1        -        Running                                 -\n\
             /crash   0/1        -        CrashLoopBackOff (next launch in 2.5s)  -\n"
        );
    }

    #[test]
    fn tasks_table_rows() {
        let tasks = [json!({
            "id": "web.1", "state": "TASK_RUNNING", "host": "127.0.0.1", "ports": [31000, 31001],
            "healthCheckResults": [{"alive": false}], "stagedAt": "s", "startedAt": "t", "version": "v"
        })];
        let text = tasks_table(&tasks).render();
        let row = text.lines().nth(1).unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "web.1",
                "TASK_RUNNING",
                "127.0.0.1",
                "31000,31001",
                "unhealthy",
                "s",
                "t",
                "v"
            ]
        );
        assert_eq!(ports(&json!({"ports": []})), "-");
    }
}
