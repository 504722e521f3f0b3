//! `slipway-bench autoscale`: the same load trace (1× → 3× → 1×) against Slipway's default
//! autoscaling policy and the `hpa` preset, each on its own server, side by side: load step
//! → decision, load step → new capacity serving, decisions, reversals and failed requests.
//!
//! The app is a CPU-bound HTTP server (python3; each `/burn?ms=10` spends 10 ms of its
//! thread's CPU time) with `cpus: 0.25` behind the proxy, 2 instances; a CPU policy with a
//! 30 % target, so 1× is 13 requests/s and 3× needs 6 instances.

use anyhow::Context;
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::load::{LoadReport, LoadSpec, spawn_load};
use testkit::{SlipwayProcess, get_json, http};

const BURNER: &str = r#"
import os, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = b"ok\n"
        if self.path.startswith("/burn"):
            end = time.thread_time() + 0.010
            while time.thread_time() < end:
                pass
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT0"])), H).serve_forever()
"#;

/// What one policy did on the trace.
struct Outcome {
    name: &'static str,
    decision_s: Option<f64>,
    serving_s: Option<f64>,
    up_decisions: usize,
    down_after_s: Option<f64>,
    changes: Vec<(String, u64, u64)>,
    reversals: usize,
    failed: u64,
    sent: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn changes(s: &SlipwayProcess) -> Vec<Value> {
    let mut v = get_json(&format!(
        "{}/api/v1/autoscalers/bench/cpu/decisions?limit=2000&changes=true",
        s.url
    ))
    .ok()
    .and_then(|v| v["decisions"].as_array().cloned())
    .unwrap_or_default();
    v.reverse();
    v.retain(|d| d["refused"].is_null());
    v
}

fn at_ms(d: &Value) -> i64 {
    d["decision"]["at"]
        .as_str()
        .and_then(model::Timestamp::parse)
        .map_or(0, |t| t.millis())
}

fn healthy(s: &SlipwayProcess) -> u64 {
    get_json(&format!("{}/v2/apps/bench/cpu", s.url))
        .ok()
        .map_or(0, |a| a["app"]["tasksHealthy"].as_u64().unwrap_or(0))
}

fn load(
    s: &SlipwayProcess,
    rate: u32,
    secs: u64,
) -> anyhow::Result<std::thread::JoinHandle<LoadReport>> {
    Ok(spawn_load(LoadSpec {
        addr: s.proxy_vhost_addr().context("no vhost listener")?,
        path: "/burn".into(),
        host: "bench-cpu.test".into(),
        rate,
        duration: Duration::from_secs(secs),
        max_connections: 64,
        timeout: Duration::from_secs(10),
    }))
}

fn run_one(
    slipway: &std::path::Path,
    name: &'static str,
    behavior: Value,
    down_wait_s: u64,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let s = SlipwayProcess::start(slipway, dir.path(), &["--metrics-interval", "1s"])?;
    let (_, mut set) = http("GET", &format!("{}/api/v1/policies", s.url), None)
        .map(|(c, b)| (c, serde_json::from_str::<Value>(&b).unwrap_or(Value::Null)))?;
    for env in set["environments"].as_array_mut().into_iter().flatten() {
        if env["name"] == "default"
            && let Some(d) = env["deploy"].as_array_mut()
        {
            d.push(json!("user:autoscaler"));
        }
    }
    http("PUT", &format!("{}/api/v1/policies", s.url), Some(&set))?;
    let script = dir.path().join("burner.py");
    std::fs::write(&script, BURNER)?;
    let script = testkit::reachable_copy(&script);
    let app = json!({
        "id": "/bench/cpu", "cmd": format!("exec python3 {}", script.display()),
        "instances": 2, "cpus": 0.25, "mem": 32,
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http",
                   "HAPROXY_0_VHOST": "bench-cpu.test", "SLIPWAY_DRAIN_TIMEOUT_SECONDS": "3"},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                          "intervalSeconds": 1, "timeoutSeconds": 2, "gracePeriodSeconds": 30,
                          "maxConsecutiveFailures": 5}],
        "taskKillGracePeriodSeconds": 2,
    });
    http("POST", &format!("{}/v2/apps", s.url), Some(&app))?;
    testkit::wait_for("2 healthy instances", Duration::from_secs(60), || {
        (healthy(&s) == 2).then_some(())
    })?;
    let policy = json!({"min": 2, "max": 10, "metrics": [{"type": "cpu", "target": 30}],
                        "behavior": behavior});
    let (code, body) = http(
        "PUT",
        &format!("{}/api/v1/autoscalers/bench/cpu", s.url),
        Some(&policy),
    )?;
    anyhow::ensure!(code == 200, "policy refused: {body}");
    let total = 20 + 60 + down_wait_s;
    let base = load(&s, 13, total)?;
    std::thread::sleep(Duration::from_secs(20));
    let step_ms = now_ms();
    let step_at = Instant::now();
    let step = load(&s, 26, 60)?;
    let mut serving_s = None;
    while step_at.elapsed() < Duration::from_secs(60) {
        let ups: Vec<Value> = changes(&s);
        if serving_s.is_none()
            && let Some(first) = ups.first()
            && healthy(&s) >= first["decision"]["target"].as_u64().unwrap_or(u64::MAX)
        {
            serving_s = Some(step_at.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let up = step
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    let drop_ms = now_ms();
    let base = base
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?;
    let all = changes(&s);
    let summary: Vec<(String, u64, u64)> = all
        .iter()
        .map(|d| {
            (
                d["decision"]["action"].as_str().unwrap_or("").to_string(),
                d["decision"]["current"].as_u64().unwrap_or(0),
                d["decision"]["target"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let reversals = summary
        .windows(2)
        .filter(|w| w[0].0 != w[1].0)
        .count()
        .saturating_sub(1);
    let first_up = all
        .iter()
        .find(|d| d["decision"]["action"] == "scaleUp")
        .map(|d| (at_ms(d) - step_ms) as f64 / 1000.0);
    let first_down = all
        .iter()
        .find(|d| d["decision"]["action"] == "scaleDown" && at_ms(d) >= drop_ms)
        .map(|d| (at_ms(d) - drop_ms) as f64 / 1000.0);
    let _ = http("DELETE", &format!("{}/v2/apps/bench/cpu", s.url), None);
    std::thread::sleep(Duration::from_secs(4));
    testkit::kill_tasks_of(dir.path());
    Ok(Outcome {
        name,
        decision_s: first_up,
        serving_s,
        up_decisions: summary.iter().filter(|c| c.0 == "scaleUp").count(),
        down_after_s: first_down,
        changes: summary,
        reversals,
        failed: up.errors + up.non_2xx + base.errors + base.non_2xx,
        sent: up.sent + base.sent,
    })
}

/// Runs the trace against both policies at once (two servers) and prints a table.
pub(crate) fn default_vs_hpa(slipway: &std::path::Path) -> anyhow::Result<()> {
    let a = {
        let p = slipway.to_path_buf();
        std::thread::spawn(move || run_one(&p, "slipway default", json!({}), 150))
    };
    let b = {
        let p = slipway.to_path_buf();
        std::thread::spawn(move || run_one(&p, "hpa preset", json!({"preset": "hpa"}), 330))
    };
    let mut out = Vec::new();
    for h in [a, b] {
        out.push(h.join().map_err(|_| anyhow::anyhow!("a run panicked"))??);
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
    println!(
        "{:<16} {:>14} {:>16} {:>11} {:>16} {:>10} {:>14}",
        "policy",
        "step→decision",
        "step→serving",
        "up decs",
        "drop→scale-down",
        "reversals",
        "failed/sent"
    );
    for o in &out {
        println!(
            "{:<16} {:>14} {:>16} {:>11} {:>16} {:>10} {:>14}",
            o.name,
            f(o.decision_s),
            f(o.serving_s),
            o.up_decisions,
            f(o.down_after_s),
            o.reversals,
            format!("{}/{}", o.failed, o.sent)
        );
        println!("  changes: {:?}", o.changes);
    }
    Ok(())
}
