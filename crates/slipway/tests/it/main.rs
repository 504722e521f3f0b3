//! End-to-end tests of the `slipway` binary: real server processes, real task processes,
//! kill -9 of tasks and of the server, the event stream, the CLI and marathon-python.

mod autoscale;
mod client;
mod console;
mod crash;
mod docker;
mod example;
mod firsthour;
mod grafana;
mod identity;
mod influxdb;
mod metrics_cli;
mod pipelines;
mod prometheus;
mod proxy;
mod rolling;
mod secrets;
mod security;
mod swarm;
mod watch;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use testkit::{SlipwayProcess, get_json, http};

/// The binary under test.
pub(crate) fn slipway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_slipway"))
}

/// A server in a fresh temp data directory (kept alive by the returned guard).
pub(crate) fn server() -> (SlipwayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = SlipwayProcess::start(&slipway_bin(), dir.path(), &[]).expect("slipway starts");
    (p, dir)
}

/// An app running `slipway-testsrv` with an HTTP health check on `/health`.
pub(crate) fn web_app(id: &str, instances: u32, version: &str) -> Value {
    json!({
        "id": id,
        "cmd": testkit::testsrv().to_string_lossy(),
        "instances": instances,
        "cpus": 0.1,
        "mem": 32,
        "env": {"VERSION": version},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30,
                          "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 2,
    })
}

/// `{"app": ...}` of one app.
pub(crate) fn app(s: &SlipwayProcess, id: &str) -> Value {
    get_json(&format!("{}/v2/apps/{}", s.url, id.trim_start_matches('/')))
        .map(|v| v["app"].clone())
        .unwrap_or(Value::Null)
}

/// Tasks that run and pass every health check.
pub(crate) fn healthy_tasks(app: &Value) -> Vec<Value> {
    app["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .filter(|t| {
                    let r = t["healthCheckResults"].as_array();
                    r.is_some_and(|r| !r.is_empty() && r.iter().all(|h| h["alive"] == true))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Ids of all tasks the API knows.
pub(crate) fn api_task_ids(s: &SlipwayProcess) -> std::collections::BTreeSet<String> {
    get_json(&format!("{}/v2/tasks", s.url)).unwrap()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn send(
    s: &SlipwayProcess,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, text) = http(method, &format!("{}{path}", s.url), body).expect("request");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) fn wait_no_deployments(s: &SlipwayProcess, within: Duration) {
    testkit::wait_for("deployments to finish", within, || {
        get_json(&format!("{}/v2/deployments", s.url))
            .ok()
            .filter(|d| d == &json!([]))
            .map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}; server log:\n{}", s.log()));
}
