//! The autoscaler end to end: policies registered over the API (422 with field paths for bad
//! ones) and from labels, the CLI, a CPU-bound app behind the proxy scaled up by a 3× load
//! step in one decision and back down once after the window without a failed request, and
//! kill -9 of the server in the middle of a scale-up.

use crate::{app, healthy_tasks, send, slipway_bin, wait_no_deployments};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use testkit::load::{LoadSpec, spawn_load};
use testkit::{SlipwayProcess, get_json, wait_for};

fn metrics_server() -> (SlipwayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "1s"])
        .expect("slipway starts");
    (s, dir)
}

/// An admin lets the autoscaler deploy in the `default` environment.
fn enable_autoscaler(s: &SlipwayProcess) {
    let (status, mut set) = send(s, "GET", "/api/v1/policies", None);
    assert_eq!(status, 200, "{set}");
    for env in set["environments"].as_array_mut().expect("environments") {
        if env["name"] == "default" {
            env["deploy"]
                .as_array_mut()
                .expect("deploy list")
                .push(json!("user:autoscaler"));
        }
    }
    let (status, body) = send(s, "PUT", "/api/v1/policies", Some(&set));
    assert_eq!(status, 200, "{body}");
}

/// A `slipway-testsrv` app behind the proxy at the vhost `host`.
fn cpu_app(id: &str, host: &str, instances: u32) -> Value {
    json!({
        "id": id,
        "cmd": testkit::testsrv().to_string_lossy(),
        "instances": instances,
        "cpus": 0.25,
        "mem": 32,
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http",
                   "HAPROXY_0_VHOST": host, "SLIPWAY_DRAIN_TIMEOUT_SECONDS": "3"},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "intervalSeconds": 1, "timeoutSeconds": 2, "gracePeriodSeconds": 30,
                          "maxConsecutiveFailures": 5}],
        "taskKillGracePeriodSeconds": 2,
    })
}

fn create(s: &SlipwayProcess, def: &Value) {
    let (status, body) = send(s, "POST", "/v2/apps", Some(def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(s, Duration::from_secs(60));
}

/// Decisions of an app, oldest first.
fn decisions(s: &SlipwayProcess, app: &str, changes_only: bool) -> Vec<Value> {
    let q = if changes_only {
        "?limit=2000&changes=true"
    } else {
        "?limit=2000"
    };
    let v = get_json(&format!(
        "{}/api/v1/autoscalers/{}/decisions{q}",
        s.url,
        app.trim_start_matches('/')
    ))
    .expect("decisions");
    let mut d = v["decisions"].as_array().cloned().unwrap_or_default();
    d.reverse();
    d
}

fn changes(s: &SlipwayProcess, app: &str) -> Vec<(String, u64, u64)> {
    decisions(s, app, true)
        .iter()
        .filter(|d| d["refused"].is_null())
        .map(|d| {
            (
                d["decision"]["action"].as_str().unwrap_or("").to_string(),
                d["decision"]["current"].as_u64().unwrap_or(0),
                d["decision"]["target"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// One line per stored decision, oldest first (for failure messages).
fn summaries(s: &SlipwayProcess, app: &str) -> String {
    decisions(s, app, false)
        .iter()
        .map(|d| format!("{}\n", d["summary"].as_str().unwrap_or("-")))
        .collect()
}

fn field_paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn bad_policies_get_422_with_field_paths_and_good_ones_are_stored_listed_and_deleted() {
    let (s, dir) = metrics_server();
    create(&s, &cpu_app("/as/web", "as-web.test", 1));
    let mut labelled = cpu_app("/as/labelled", "as-labelled.test", 1);
    labelled["labels"]["SLIPWAY_AUTOSCALE_MAX"] = json!("3");
    labelled["labels"]["SLIPWAY_AUTOSCALE_CPU"] = json!("50%");
    create(&s, &labelled);

    let cases = [
        (
            "as/web",
            json!({"min": 5, "max": 2, "metrics": [{"type": "cpu", "target": 50}]}),
            "/min",
        ),
        (
            "as/web",
            json!({"max": 3, "metrics": [{"type": "gpu", "target": 50}]}),
            "/metrics(0)",
        ),
        (
            "as/web",
            json!({"max": 3, "metrics": [{"type": "promql", "query": "rate(x[5m]", "target": 1}]}),
            "/metrics(0)/query",
        ),
        (
            "as/nope",
            json!({"max": 3, "metrics": [{"type": "cpu", "target": 50}]}),
            "/appId",
        ),
    ];
    for (app_path, body, path) in cases {
        let (status, answer) = send(
            &s,
            "PUT",
            &format!("/api/v1/autoscalers/{app_path}"),
            Some(&body),
        );
        assert_eq!(status, 422, "{body} gave {answer}");
        assert!(
            field_paths(&answer).iter().any(|p| p.starts_with(path)),
            "{body}: expected a detail at {path}, got {answer}"
        );
    }
    let (status, _) = send(&s, "GET", "/api/v1/autoscalers/as/nope", None);
    assert_eq!(status, 404);

    let good = json!({"min": 1, "max": 4, "metrics": [{"type": "cpu", "target": 60},
                      {"type": "promql", "query": "sum(up)", "target": 10}]});
    let (status, answer) = send(&s, "PUT", "/api/v1/autoscalers/as/web", Some(&good));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["source"], "api");
    assert_eq!(answer["policy"]["max"], 4);
    assert_eq!(answer["enabled"], false, "{answer}");
    assert!(
        answer["disabledReason"]
            .as_str()
            .is_some_and(|r| r.contains("user:autoscaler")),
        "{answer}"
    );
    enable_autoscaler(&s);
    let (_, shown) = send(&s, "GET", "/api/v1/autoscalers/as/web", None);
    assert_eq!(shown["enabled"], true, "{shown}");

    let (_, list) = send(&s, "GET", "/api/v1/autoscalers", None);
    let sources: Vec<(String, String)> = list["autoscalers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            (
                a["appId"].as_str().unwrap_or("").to_string(),
                a["source"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        vec![
            ("/as/labelled".to_string(), "labels".to_string()),
            ("/as/web".to_string(), "api".to_string())
        ]
    );

    // The CLI: set from flags, show, list, history (decisions are being taken by now).
    let cli = |args: &[&str]| {
        let out = Command::new(slipway_bin())
            .args(args)
            .env("SLIPWAY_URL", &s.url)
            .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
            .env("CI", "true")
            .output()
            .expect("slipway runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = cli(&["autoscale", "set", "/as/web", "--max", "3", "--cpu", "70"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("/as/web") && out.contains("cpu=70"), "{out}");
    let (code, out, err) = cli(&["autoscale", "set", "/as/web", "--max", "0", "--cpu", "70"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(err.contains("/max"), "{err}");
    let (code, out, _) = cli(&["autoscale", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("/as/labelled") && out.contains("source labels"),
        "{out}"
    );
    wait_for("a decision", Duration::from_secs(30), || {
        (!decisions(&s, "/as/web", false).is_empty()).then_some(())
    })
    .unwrap();
    let (code, out, err) = cli(&["autoscale", "history", "/as/web"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("/as/web"), "{out}");

    // Stored durably: a restart keeps the policy.
    let mut s = s;
    s.restart().expect("restart");
    let (_, shown) = send(&s, "GET", "/api/v1/autoscalers/as/web", None);
    assert_eq!(shown["policy"]["max"], 3, "{shown}");
    let (status, _) = send(&s, "DELETE", "/api/v1/autoscalers/as/web", None);
    assert_eq!(status, 200);
    let (status, _) = send(&s, "GET", "/api/v1/autoscalers/as/web", None);
    assert_eq!(status, 404);
    let (status, answer) = send(&s, "DELETE", "/api/v1/autoscalers/as/labelled", None);
    assert_eq!(status, 404);
    assert!(answer.to_string().contains("labels"), "{answer}");
    drop(dir);
}

/// A CPU-bound HTTP server: `/burn?ms=N` spends N ms of its thread's CPU time (not wall
/// time, so the CPU each request costs does not depend on how busy the machine is).
const BURNER: &str = r#"
import os, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
held = []
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = b"ok\n"
        if self.path.startswith("/burn"):
            ms = int(self.path.split("ms=")[1]) if "ms=" in self.path else 10
            end = time.thread_time() + ms / 1000.0
            x = 0
            while time.thread_time() < end:
                x += 1
            body = b"burned\n"
        elif self.path.startswith("/alloc"):
            # Touched bytes, so they count in the working set (a zeroed buffer would not).
            held.append(b"\x01" * (int(self.path.split("mb=")[1]) << 20))
            body = b"held\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT0"])), H).serve_forever()
"#;

/// The burner as an app behind the proxy at the vhost `host`.
fn burner_app(dir: &std::path::Path, id: &str, host: &str, instances: u32) -> Value {
    let script = dir.join("burner.py");
    std::fs::write(&script, BURNER).expect("script");
    let script = testkit::reachable_copy(&script);
    let mut def = cpu_app(id, host, instances);
    def["cmd"] = json!(format!("exec python3 {}", script.display()));
    def
}

/// Runs `rate` requests/s of `/burn?ms=10` through the proxy for `secs`.
fn load(
    s: &SlipwayProcess,
    host: &str,
    rate: u32,
    secs: u64,
) -> std::thread::JoinHandle<testkit::load::LoadReport> {
    spawn_load(LoadSpec {
        addr: s.proxy_vhost_addr().expect("vhost listener"),
        path: "/burn?ms=10".into(),
        host: host.into(),
        rate,
        duration: Duration::from_secs(secs),
        max_connections: 64,
        timeout: Duration::from_secs(10),
    })
}

#[test]
fn a_3x_cpu_step_scales_up_in_one_decision_and_back_down_once_without_failed_requests() {
    let (s, dir) = metrics_server();
    enable_autoscaler(&s);
    let host = "as-cpu.test";
    create(&s, &burner_app(dir.path(), "/as/cpu", host, 2));
    // Capacity: 30 % of 0.25 CPU is 7.5 requests of 10 ms CPU per second per instance; 1×
    // is 13 requests/s on 2 instances (87 % of the target, with the server's own overhead
    // about 95 %), 3× is 39 (6 instances).
    let policy = json!({
        "min": 2, "max": 10,
        "metrics": [{"type": "cpu", "target": 30}],
        "behavior": {"scaleDown": {"stabilizationSeconds": 15}, "warmupSeconds": 2}
    });
    let (status, body) = send(&s, "PUT", "/api/v1/autoscalers/as/cpu", Some(&policy));
    assert_eq!(status, 200, "{body}");

    let base = load(&s, host, 13, 110);
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        changes(&s, "/as/cpu").is_empty(),
        "1× changes nothing: {:#?}",
        summaries(&s, "/as/cpu")
    );

    // 3×: one decision to the needed count, and the new instances serve.
    let step = load(&s, host, 26, 30);
    wait_for("a scale-up", Duration::from_secs(30), || {
        changes(&s, "/as/cpu")
            .into_iter()
            .find(|c| c.0 == "scaleUp")
    })
    .unwrap_or_else(|e| panic!("{e}; decisions {:#?}", decisions(&s, "/as/cpu", false)));
    wait_no_deployments(&s, Duration::from_secs(90));
    let up = step.join().expect("load thread");
    let during = changes(&s, "/as/cpu");
    assert_eq!(
        during.len(),
        1,
        "one decision while 3× lasts: {:#?}",
        summaries(&s, "/as/cpu")
    );
    let target = during[0].2;
    assert!(
        (5..=7).contains(&target),
        "3× load on 2 instances needs about 6: {:#?}",
        summaries(&s, "/as/cpu")
    );
    assert_eq!(up.errors + up.non_2xx, 0, "no failed request at 3×: {up}");
    // The new instances served through the proxy.
    let (_, per_backend) = send(
        &s,
        "GET",
        "/api/v1/query?query=sum%20by%20(backend)%20(slipway_proxy_backend_requests_total%7Bapp%3D%22%2Fas%2Fcpu%22%7D)",
        None,
    );
    let serving = per_backend["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|x| x["value"][1].as_str().is_some_and(|v| v != "0"))
                .count()
        })
        .unwrap_or(0);
    assert!(serving as u64 >= target, "{per_backend}");

    // Back to 1×: one scale-down after the window, then nothing.
    wait_for("a scale-down", Duration::from_secs(60), || {
        changes(&s, "/as/cpu")
            .into_iter()
            .find(|c| c.0 == "scaleDown")
    })
    .unwrap_or_else(|e| panic!("{e}; decisions {:#?}", decisions(&s, "/as/cpu", false)));
    wait_no_deployments(&s, Duration::from_secs(60));
    let base = base.join().expect("load thread");
    let all = changes(&s, "/as/cpu");
    assert_eq!(
        all.len(),
        2,
        "one up, one down: {:#?}",
        decisions(&s, "/as/cpu", true)
    );
    assert_eq!(all[1].0, "scaleDown");
    assert!(all[1].2 <= 3, "1× needs 2 instances: {all:?}");
    assert_eq!(base.errors + base.non_2xx, 0, "no failed request: {base}");
    let a = app(&s, "/as/cpu");
    assert_eq!(healthy_tasks(&a).len() as u64, all[1].2, "{a}");
    // The scales are the autoscaler's in the audit log, with the decision's summary.
    let (_, audit) = send(&s, "GET", "/api/v1/audit?user=autoscaler", None);
    assert!(
        audit.to_string().contains("scale to"),
        "the scales are in the audit log: {audit}"
    );
}

#[test]
fn mode_all_scales_up_only_when_cpu_and_memory_both_breach_as_the_seeds_and() {
    let (s, dir) = metrics_server();
    enable_autoscaler(&s);
    let host = "as-and.test";
    let mut def = burner_app(dir.path(), "/as/and", host, 2);
    def["mem"] = json!(64);
    create(&s, &def);
    let policy = json!({
        "min": 2, "max": 10, "mode": "all",
        "metrics": [{"type": "cpu", "target": 30}, {"type": "memory", "target": 50}],
        "behavior": {"warmupSeconds": 2}
    });
    let (status, body) = send(&s, "PUT", "/api/v1/autoscalers/as/and", Some(&policy));
    assert_eq!(status, 200, "{body}");
    let disagree = |s: &SlipwayProcess| {
        decisions(s, "/as/and", false)
            .iter()
            .filter(|d| {
                d["summary"]
                    .as_str()
                    .is_some_and(|x| x.contains("the metrics disagree"))
            })
            .count()
    };

    // CPU alone at 3× (a CPU-only policy would scale to about 6): nothing changes.
    let cpu = load(&s, host, 39, 12);
    let report = cpu.join().expect("load thread");
    assert_eq!(report.errors + report.non_2xx, 0, "{report}");
    assert!(
        changes(&s, "/as/and").is_empty(),
        "CPU alone must not scale under mode all: {}",
        summaries(&s, "/as/and")
    );
    let after_cpu = disagree(&s);
    assert!(
        after_cpu >= 1,
        "the decisions say why they hold: {}",
        summaries(&s, "/as/and")
    );
    // Holds are stored when their reason changes: wait for the idle app's steady decision.
    wait_for("a steady decision at idle", Duration::from_secs(20), || {
        decisions(&s, "/as/and", false)
            .last()
            .and_then(|d| d["summary"].as_str().map(str::to_string))
            .filter(|x| x.contains("cpu [") && !x.contains("the metrics disagree"))
    })
    .unwrap_or_else(|e| panic!("{e}; {}", summaries(&s, "/as/and")));

    // Memory alone: each instance holds 40 MiB more (about 80 % of its 64 MiB), CPU idle.
    let a = app(&s, "/as/and");
    let tasks = healthy_tasks(&a);
    assert_eq!(tasks.len(), 2, "{a}");
    for t in &tasks {
        let url = format!(
            "http://{}:{}/alloc?mb=40",
            t["host"].as_str().unwrap_or("127.0.0.1"),
            t["ports"][0]
        );
        let (code, body) = testkit::http_get(&url).expect("alloc");
        assert_eq!(code, 200, "{body}");
    }
    wait_for("memory over the target", Duration::from_secs(20), || {
        (disagree(&s) > after_cpu).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; {}", summaries(&s, "/as/and")));
    // Longer than the 3 s breach window a memory-only policy would act after.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        changes(&s, "/as/and").is_empty(),
        "memory alone must not scale under mode all: {}",
        summaries(&s, "/as/and")
    );

    // Both: one scale-up, to what the lower of the two needs (memory's 3–4, not CPU's 6).
    let both = load(&s, host, 39, 20);
    let up = wait_for("a scale-up", Duration::from_secs(30), || {
        changes(&s, "/as/and")
            .into_iter()
            .find(|c| c.0 == "scaleUp")
    })
    .unwrap_or_else(|e| panic!("{e}; {}", summaries(&s, "/as/and")));
    let report = both.join().expect("load thread");
    assert_eq!(report.errors + report.non_2xx, 0, "{report}");
    assert_eq!(up.1, 2, "{up:?}");
    assert!(
        (3..=5).contains(&up.2),
        "the lower recommendation (memory) wins: {}",
        summaries(&s, "/as/and")
    );
}

/// Writes `demand{app="..."} value` through the InfluxDB endpoint (the PromQL metric).
fn write_demand(s: &SlipwayProcess, app: &str, value: u32) {
    let line = format!("demand,app={app} value={value}\n");
    let addr = s.url.trim_start_matches("http://").to_string();
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        c,
        "POST /write?db=autoscale HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{line}",
        testkit::ADMIN_TOKEN,
        line.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
}

#[test]
fn kill_9_in_the_middle_of_a_scale_up_converges_to_the_decided_count_and_decisions_continue() {
    let (mut s, _dir) = metrics_server();
    enable_autoscaler(&s);
    create(&s, &cpu_app("/as/crash", "as-crash.test", 1));
    let policy = json!({
        "min": 1, "max": 8,
        "metrics": [{"type": "promql", "query": "max(demand_value{app=\"as-crash\"})", "target": 1}]
    });
    let (status, body) = send(&s, "PUT", "/api/v1/autoscalers/as/crash", Some(&policy));
    assert_eq!(status, 200, "{body}");
    write_demand(&s, "as-crash", 5);
    let decided = wait_for("the scale-up decision", Duration::from_secs(30), || {
        changes(&s, "/as/crash")
            .into_iter()
            .find(|c| c.0 == "scaleUp")
    })
    .unwrap_or_else(|e| panic!("{e}; {:#?}", decisions(&s, "/as/crash", false)));
    // Mid scale-up: the new instances are still starting.
    s.kill9();
    assert_eq!(decided.2, 5, "{decided:?}");
    s.restart().expect("restart");
    wait_for("5 healthy instances", Duration::from_secs(90), || {
        (healthy_tasks(&app(&s, "/as/crash")).len() == 5).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; {}", app(&s, "/as/crash")));
    assert_eq!(app(&s, "/as/crash")["instances"], 5);
    // Decisions continue after the restart: more demand, one more scale-up.
    let last_seq = |s: &SlipwayProcess| {
        decisions(s, "/as/crash", false)
            .last()
            .and_then(|d| d["seq"].as_i64())
            .unwrap_or(0)
    };
    let seq = last_seq(&s);
    write_demand(&s, "as-crash", 7);
    wait_for(
        "a decision after the restart",
        Duration::from_secs(30),
        || {
            changes(&s, "/as/crash")
                .into_iter()
                .find(|c| c.0 == "scaleUp" && c.2 == 7)
        },
    )
    .unwrap_or_else(|e| panic!("{e}; {:#?}", decisions(&s, "/as/crash", false)));
    assert!(last_seq(&s) > seq);
    assert_eq!(
        changes(&s, "/as/crash")
            .iter()
            .filter(|c| c.0 == "scaleUp" && c.2 == 5)
            .count(),
        1,
        "the interrupted decision is not taken twice"
    );
}

#[test]
fn a_manual_scale_pauses_the_autoscaler_and_its_decisions_say_so() {
    let (s, _dir) = metrics_server();
    enable_autoscaler(&s);
    create(&s, &cpu_app("/as/manual", "as-manual.test", 1));
    let policy = json!({
        "min": 1, "max": 8,
        "metrics": [{"type": "promql", "query": "max(demand_value{app=\"as-manual\"})", "target": 1}]
    });
    let (status, body) = send(&s, "PUT", "/api/v1/autoscalers/as/manual", Some(&policy));
    assert_eq!(status, 200, "{body}");
    write_demand(&s, "as-manual", 3);
    wait_for("the scale-up to 3", Duration::from_secs(30), || {
        changes(&s, "/as/manual")
            .into_iter()
            .find(|c| c.0 == "scaleUp" && c.2 == 3)
    })
    .unwrap_or_else(|e| panic!("{e}; {}", summaries(&s, "/as/manual")));
    wait_no_deployments(&s, Duration::from_secs(60));
    // A person scales to 2 although the demand says 3: the autoscaler leaves it alone.
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/as/manual",
        Some(&json!({"instances": 2})),
    );
    assert_eq!(status, 200, "{body}");
    let paused = wait_for("a paused decision", Duration::from_secs(30), || {
        decisions(&s, "/as/manual", false)
            .into_iter()
            .find(|d| d["decision"]["reasons"][0]["kind"] == "manualPause")
    })
    .unwrap_or_else(|e| panic!("{e}; {}", summaries(&s, "/as/manual")));
    assert!(
        paused["summary"]
            .as_str()
            .is_some_and(|t| t.contains("scaled") || t.contains("manual")),
        "{paused}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(app(&s, "/as/manual")["instances"], 2);
    assert_eq!(
        changes(&s, "/as/manual").len(),
        1,
        "{}",
        summaries(&s, "/as/manual")
    );
}

#[test]
fn a_deployment_started_during_a_breach_completes_and_the_scale_follows_it() {
    let (s, _dir) = metrics_server();
    enable_autoscaler(&s);
    create(&s, &cpu_app("/as/deploy", "as-deploy.test", 1));
    let policy = json!({
        "min": 1, "max": 8,
        "metrics": [{"type": "promql", "query": "max(demand_value{app=\"as-deploy\"})", "target": 1}]
    });
    let (status, body) = send(&s, "PUT", "/api/v1/autoscalers/as/deploy", Some(&policy));
    assert_eq!(status, 200, "{body}");
    // The breach begins, and a new release is deployed before the breach window ends; its
    // task takes 4 s to start, so the deployment outlasts the window.
    write_demand(&s, "as-deploy", 4);
    let slow = format!("sleep 4; exec {}", testkit::testsrv().to_string_lossy());
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/as/deploy",
        Some(&json!({"env": {"RELEASE": "2"}, "cmd": slow})),
    );
    assert_eq!(status, 200, "{body}");
    let settled = |s: &SlipwayProcess| {
        let a = app(s, "/as/deploy");
        let healthy = healthy_tasks(&a);
        // A scale makes a new version without restarting tasks: every task must be of
        // the release's configuration or later, none of the one before.
        let release = a["versionInfo"]["lastConfigChangeAt"]
            .as_str()
            .unwrap_or("~");
        (a["instances"] == 4
            && a["env"]["RELEASE"] == "2"
            && healthy.len() == 4
            && a["tasks"].as_array().is_some_and(|ts| ts.len() == 4)
            && healthy
                .iter()
                .all(|t| t["version"].as_str().is_some_and(|v| v >= release))
            && get_json(&format!("{}/v2/deployments", s.url)).ok() == Some(json!([])))
        .then_some(a)
    };
    let done = wait_for(
        "4 healthy instances of the new release",
        Duration::from_secs(90),
        || settled(&s),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; {}\n{}",
            app(&s, "/as/deploy"),
            summaries(&s, "/as/deploy")
        )
    });
    // The scale waited for the deployment (it did not scale the old release, nor cancel or
    // override the new one).
    let at = |k: &str| {
        model::Timestamp::parse(done["versionInfo"][k].as_str().unwrap_or_default())
            .map_or(0, |t| t.millis())
    };
    assert!(
        at("lastScalingAt") - at("lastConfigChangeAt") >= 4000,
        "scaled during the deployment: {}\n{}",
        done["versionInfo"],
        summaries(&s, "/as/deploy")
    );
    // Neither undoes the other afterwards: the release stays, the count stays.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        settled(&s).is_some(),
        "{}\n{}",
        app(&s, "/as/deploy"),
        summaries(&s, "/as/deploy")
    );
    let changes = changes(&s, "/as/deploy");
    assert_eq!(
        changes,
        vec![("scaleUp".to_string(), 1, 4)],
        "one scale-up, no reversal:\n{}",
        summaries(&s, "/as/deploy")
    );
}
