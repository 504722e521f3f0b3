//! `slipway top` and `slipway metrics query` against a server with an app of 3 instances
//! under load: the table, JSON frames, a live run, PromQL tables, charts and errors.

use crate::*;
use std::process::{Command, Output, Stdio};
use testkit::load::{LoadSpec, spawn_load};
use testkit::wait_for;

fn cli(s: &SlipwayProcess, args: &[&str]) -> Output {
    Command::new(slipway_bin())
        .args(args)
        .args(["--server", &s.url, "--token", testkit::ADMIN_TOKEN])
        .output()
        .expect("slipway runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn top_and_metrics_query_show_a_loaded_app() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "1s"])
        .expect("slipway starts");
    let port = testkit::free_port();
    let mut def = web_app("/mc", 3, "1");
    def["portDefinitions"] = json!([{"port": port, "protocol": "tcp", "name": "http"}]);
    def["labels"] = json!({"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(60));
    wait_for("the service port to route", Duration::from_secs(30), || {
        matches!(
            testkit::http_get(&format!("http://127.0.0.1:{port}/")),
            Ok((200, _))
        )
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let load = spawn_load(LoadSpec {
        addr: format!("127.0.0.1:{port}"),
        path: "/sleep?ms=5".into(),
        host: "mc.test".into(),
        rate: 20,
        duration: Duration::from_secs(20),
        max_connections: 8,
        timeout: Duration::from_secs(10),
    });

    // A JSON frame with every figure, once the load shows in the rates.
    let frame = wait_for("a frame with requests", Duration::from_secs(30), || {
        let o = cli(&s, &["top", "--once", "-o", "json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON frame");
        let app = v["apps"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == "/mc")?
            .clone();
        // Every task's rates need two collection rounds of it: wait for them too.
        let tasks = app["tasks"].as_array()?;
        let rated = tasks.iter().all(|t| {
            t["cpu"].as_f64().is_some()
                && t["requestsPerSecond"].as_f64().is_some()
                && t["p99Seconds"].as_f64().is_some_and(|p| p > 0.0)
        });
        (app["requestsPerSecond"].as_f64()? > 0.0
            && app["p99Seconds"].as_f64()? > 0.0
            && tasks.len() == 3
            && rated)
            .then_some(app)
    })
    .unwrap();
    assert_eq!(frame["instances"], 3, "{frame}");
    for t in frame["tasks"].as_array().unwrap() {
        assert!(t["memoryBytes"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["cpu"].as_f64().is_some(), "{t}");
        assert!(
            t["memoryLimitBytes"].as_f64() == Some(32.0 * 1024.0 * 1024.0),
            "{t}"
        );
        assert!(t["requestsPerSecond"].as_f64().is_some(), "{t}");
    }
    // The table: the app's row, then one per task.
    let o = cli(&s, &["top", "--once"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("APP / TASK") && lines[0].ends_with("P99"),
        "{text}"
    );
    let row = lines
        .iter()
        .position(|l| l.starts_with("/mc "))
        .expect(&text);
    assert!(
        lines[row].contains("3/3") && lines[row].ends_with("ms"),
        "{text}"
    );
    for t in frame["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        assert!(
            lines[row + 1..=row + 3]
                .iter()
                .any(|l| l.starts_with(&format!("  {id} "))),
            "{id} missing:\n{text}"
        );
    }
    // Live: frames keep coming until interrupted (plain frames when not on a terminal).
    let mut live = Command::new(slipway_bin())
        .args(["top", "--interval", "1s", "--app", "/mc"])
        .args(["--server", &s.url, "--token", testkit::ADMIN_TOKEN])
        .stdout(Stdio::piped())
        .spawn()
        .expect("top runs");
    std::thread::sleep(Duration::from_millis(3500));
    let _ = live.kill();
    let out = live.wait_with_output().expect("top output");
    let frames = stdout(&out).matches("APP / TASK").count();
    assert!(frames >= 2, "{}", stdout(&out));

    // metrics query: a table now, JSON, a chart over a range.
    let o = cli(
        &s,
        &[
            "metrics",
            "query",
            r#"count by (app) (container_memory_working_set_bytes{app="/mc"})"#,
        ],
    );
    assert_eq!(stdout(&o), "SERIES       VALUE\n{app=\"/mc\"}  3\n");
    let o = cli(
        &s,
        &[
            "metrics",
            "query",
            "-o",
            "json",
            r#"sum by (app) (rate(slipway_proxy_requests_total{app="/mc"}[10s]))"#,
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["resultType"], "vector", "{v}");
    assert!(
        v["result"][0]["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(|x| x > 5.0),
        "{v}"
    );
    let o = cli(
        &s,
        &[
            "metrics",
            "query",
            "--range",
            "1m",
            "--step",
            "2s",
            r#"container_memory_working_set_bytes{app="/mc"}"#,
        ],
    );
    let chart = stdout(&o);
    assert!(o.status.success(), "{chart}");
    assert!(chart.contains(" UTC\n"), "{chart}");
    assert_eq!(
        chart
            .lines()
            .filter(|l| l.contains("container_memory_working_set_bytes{"))
            .count(),
        3,
        "{chart}"
    );
    let o = cli(
        &s,
        &[
            "metrics",
            "query",
            "-o",
            "json",
            "--range",
            "30s",
            "node_load1",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["resultType"], "matrix", "{v}");
    assert!(
        v["result"][0]["values"].as_array().unwrap().len() >= 3,
        "{v}"
    );
    // A bad expression: Prometheus' error, exit code 4.
    let o = cli(&s, &["metrics", "query", "sum(rate(x[5m]) by"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("bad_data: parse error"), "{err}");
    load.join().expect("load");
}
