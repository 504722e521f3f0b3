//! `slipway-bench autoscale`: the same load trace against Slipway's default autoscaling policy
//! and the `hpa` preset, each on its own server, side by side:
//!
//! 1. `steps` times: 1× for 25 s, 3× for 45 s, 1× for 5 s, then a manual scale back to 2
//!    instances (both policies have `manualPauseSeconds: 0`, so the autoscaler keeps
//!    deciding);
//! 2. after the last step, 1× until the scale-down (150 s for the default, 330 s for the preset);
//! 3. steady noisy load near the target: 11–15 requests/s (1× is 13), a new rate every 5 s,
//!    for `steady_s`.
//!
//! Reported: load step → decision (p50, p95 over the steps), load step → new capacity serving,
//! steps solved in one decision, load drop → scale-down, changes and reversals in the steady
//! phase, seconds with a p99 over the SLO or a failed request, failed requests and why.
//!
//! The app is a CPU-bound HTTP server (python3; each `/burn` spends 10 ms of its thread's CPU
//! time) with `cpus: 0.25` behind the proxy, 2 instances; a CPU policy with a 30 % target, so
//! 1× is 13 requests/s and 3× needs 6 instances.

mod chart;

use anyhow::Context;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::thread::JoinHandle;
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

/// The trace's shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trace {
    /// 1× → 3× steps.
    pub steps: usize,
    /// Seconds of steady noisy load at the end.
    pub steady_s: u64,
    /// The latency objective for "seconds over the SLO".
    pub slo: Duration,
}

/// Seconds of 1× before each step, of 3× in it, of 1× before the manual reset, and of the
/// reset. The reset waits until the scale-up window (3 s) holds only 1× recommendations:
/// right at the drop, the window still holds the 3× phase's last ones (5 or 6 instances
/// needed), and the autoscaler rightly answers a scale to 2 with a scale-up to the lowest of
/// them, so the next step would start from 3.
const BEFORE_S: u64 = 25;
const STEP_S: u64 = 45;
const SETTLE_S: u64 = 5;
const RESET_S: u64 = 10;

/// What one policy did on the trace.
struct Outcome {
    name: &'static str,
    decision_s: Vec<f64>,
    serving_s: Vec<f64>,
    one_decision: usize,
    step_reversals: usize,
    down_after_s: Option<f64>,
    down_decisions: usize,
    steady_changes: usize,
    steady_reversals: usize,
    slow_seconds: usize,
    trace_seconds: u64,
    failed: u64,
    sent: u64,
    kinds: BTreeMap<String, u64>,
    failed_at: Vec<u64>,
    /// Seconds into the trace: each step's start, the drop, the steady phase's start.
    phases: (Vec<u64>, u64, u64),
    changes: Vec<(String, u64, u64)>,
    up_said: Vec<String>,
    /// The summaries of the last stored decisions (what the autoscaler said last).
    last_said: Vec<String>,
    /// Requests sent in each second of the trace.
    sent_per_second: Vec<u64>,
    /// The instance count's changes as (second of the trace, count): the autoscaler's and
    /// the manual resets.
    counts: Vec<(f64, u64)>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The autoscaler's changes, oldest first: (at ms, action, from, to, summary).
fn changes(s: &SlipwayProcess) -> Vec<Change> {
    let mut v = get_json(&format!(
        "{}/api/v1/autoscalers/bench/cpu/decisions?limit=2000&changes=true",
        s.url
    ))
    .ok()
    .and_then(|v| v["decisions"].as_array().cloned())
    .unwrap_or_default();
    v.reverse();
    v.retain(|d| d["refused"].is_null());
    v.iter()
        .map(|d| {
            let at = d["decision"]["at"]
                .as_str()
                .and_then(model::Timestamp::parse)
                .map_or(0, |t| t.millis());
            (
                at,
                d["decision"]["action"].as_str().unwrap_or("").to_string(),
                d["decision"]["current"].as_u64().unwrap_or(0),
                d["decision"]["target"].as_u64().unwrap_or(0),
                d["summary"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A change as `changes` returns it.
type Change = (i64, String, u64, u64, String);

fn healthy(s: &SlipwayProcess) -> u64 {
    get_json(&format!("{}/v2/apps/bench/cpu", s.url))
        .ok()
        .map_or(0, |a| a["app"]["tasksHealthy"].as_u64().unwrap_or(0))
}

/// A load started at `offset` seconds into the trace.
struct Load {
    offset: f64,
    handle: JoinHandle<LoadReport>,
}

fn load(s: &SlipwayProcess, t0: Instant, rate: u32, secs: u64) -> anyhow::Result<Load> {
    Ok(Load {
        offset: t0.elapsed().as_secs_f64(),
        handle: spawn_load(LoadSpec {
            addr: s.proxy_vhost_addr().context("no vhost listener")?,
            path: "/burn".into(),
            host: "bench-cpu.test".into(),
            rate,
            duration: Duration::from_secs(secs),
            max_connections: 64,
            timeout: Duration::from_secs(10),
        }),
    })
}

/// Direction flips in a sequence of changes.
fn flips(c: &[&Change]) -> usize {
    c.windows(2).filter(|w| w[0].1 != w[1].1).count()
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied()
}

fn run_one(
    slipway: &std::path::Path,
    name: &'static str,
    behavior: Value,
    down_wait_s: u64,
    trace: Trace,
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
    let mut behavior = behavior;
    behavior["manualPauseSeconds"] = json!(0);
    let policy = json!({"min": 2, "max": 10, "metrics": [{"type": "cpu", "target": 30}],
                        "behavior": behavior});
    let (code, body) = http(
        "PUT",
        &format!("{}/api/v1/autoscalers/bench/cpu", s.url),
        Some(&policy),
    )?;
    anyhow::ensure!(code == 200, "policy refused: {body}");

    let t0 = Instant::now();
    let t0_ms = now_ms();
    let mut resets = Vec::new();
    let steps = trace.steps.max(1) as u64;
    let base_s =
        steps * (BEFORE_S + STEP_S + SETTLE_S + RESET_S) - SETTLE_S - RESET_S + down_wait_s;
    let mut loads = vec![load(&s, t0, 13, base_s)?];
    let (mut decision_s, mut serving_s) = (Vec::new(), Vec::new());
    let (mut one_decision, mut step_reversals) = (0, 0);
    let mut step_offsets = Vec::new();
    for k in 0..steps {
        std::thread::sleep(Duration::from_secs(BEFORE_S));
        step_offsets.push(t0.elapsed().as_secs());
        let step_ms = now_ms();
        let step_at = Instant::now();
        loads.push(load(&s, t0, 26, STEP_S)?);
        let mut serving = None;
        while step_at.elapsed() < Duration::from_secs(STEP_S) {
            if serving.is_none()
                && let Some(first) = changes(&s).into_iter().find(|c| c.0 >= step_ms)
                && healthy(&s) >= first.3
            {
                serving = Some(step_at.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let during: Vec<_> = changes(&s).into_iter().filter(|c| c.0 >= step_ms).collect();
        if let Some(first) = during.iter().find(|c| c.1 == "scaleUp") {
            decision_s.push((first.0 - step_ms) as f64 / 1000.0);
        }
        serving_s.extend(serving);
        let ups = during.iter().filter(|c| c.1 == "scaleUp").count();
        one_decision += usize::from(ups == 1);
        step_reversals += flips(&during.iter().collect::<Vec<_>>());
        if k + 1 < steps {
            // Back to 2 by hand once 1× has settled (the policies do not pause for it),
            // then settle.
            std::thread::sleep(Duration::from_secs(SETTLE_S));
            let reset_at = Instant::now();
            resets.push((t0.elapsed().as_secs_f64(), 2));
            let _ = http(
                "PUT",
                &format!("{}/v2/apps/bench/cpu?force=true", s.url),
                Some(&json!({"instances": 2})),
            );
            let left = Duration::from_secs(RESET_S).saturating_sub(reset_at.elapsed());
            std::thread::sleep(left);
        }
    }
    // The drop: 1× until the scale-down.
    let drop_ms = now_ms();
    let drop_offset = t0.elapsed().as_secs();
    let base = loads.remove(0);
    let base_report = base
        .handle
        .join()
        .map_err(|_| anyhow::anyhow!("load panicked"))?;
    let after_drop: Vec<_> = changes(&s).into_iter().filter(|c| c.0 >= drop_ms).collect();
    let down_after_s = after_drop
        .iter()
        .find(|c| c.1 == "scaleDown")
        .map(|c| (c.0 - drop_ms) as f64 / 1000.0);
    let down_decisions = after_drop.iter().filter(|c| c.1 == "scaleDown").count();

    // Steady noisy load near the target: a deterministic LCG picks 11–15 requests/s.
    let steady_ms = now_ms();
    let steady_offset = t0.elapsed().as_secs();
    let mut x: u64 = 0x5eed_1234_abcd_0001;
    let mut steady = Vec::new();
    let segments = trace.steady_s.div_ceil(5);
    for _ in 0..segments {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let rate = 11 + ((x >> 33) % 5) as u32;
        let l = load(&s, t0, rate, 5)?;
        let offset = l.offset;
        let report = l
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("load panicked"))?;
        steady.push((offset, report));
    }
    let trace_seconds = t0.elapsed().as_secs();
    let all = changes(&s);
    let in_steady: Vec<_> = all.iter().filter(|c| c.0 >= steady_ms).collect();
    // A change in the steady phase that turns back the drop's scale-down is a reversal too.
    let mut steady_seq: Vec<_> = all
        .iter()
        .rfind(|c| c.0 >= drop_ms && c.0 < steady_ms)
        .into_iter()
        .collect();
    steady_seq.extend(in_steady.iter().copied());

    let mut reports = vec![(0.0, base_report)];
    for l in loads {
        let offset = l.offset;
        reports.push((
            offset,
            l.handle
                .join()
                .map_err(|_| anyhow::anyhow!("load panicked"))?,
        ));
    }
    reports.extend(steady);
    let mut sent_per_second: Vec<u64> = Vec::new();
    for (offset, r) in &reports {
        for (i, sec) in r.seconds.iter().enumerate() {
            let at = offset.round() as usize + i;
            if sent_per_second.len() <= at {
                sent_per_second.resize(at + 1, 0);
            }
            sent_per_second[at] += sec.sent;
        }
    }
    let mut counts: Vec<(f64, u64)> = all
        .iter()
        .map(|c| ((c.0 - t0_ms) as f64 / 1000.0, c.3))
        .chain(resets)
        .collect();
    counts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut slow = BTreeSet::new();
    let mut failed_at = BTreeSet::new();
    let (mut failed, mut sent, mut kinds) = (0, 0, BTreeMap::new());
    for (offset, r) in &reports {
        for (i, sec) in r.seconds.iter().enumerate() {
            let at = offset.round() as u64 + i as u64;
            if sec.failed > 0 || sec.p99_us > trace.slo.as_micros() as u64 {
                slow.insert(at);
            }
            if sec.failed > 0 {
                failed_at.insert(at);
            }
        }
        failed += r.errors + r.non_2xx;
        sent += r.sent;
        for (k, n) in &r.error_kinds {
            *kinds.entry(k.clone()).or_insert(0) += n;
        }
        for (code, n) in &r.statuses {
            *kinds.entry(format!("status {code}")).or_insert(0) += n;
        }
    }
    let last_said: Vec<String> = get_json(&format!(
        "{}/api/v1/autoscalers/bench/cpu/decisions?limit=3",
        s.url
    ))
    .ok()
    .and_then(|v| v["decisions"].as_array().cloned())
    .unwrap_or_default()
    .iter()
    .filter_map(|d| d["summary"].as_str().map(str::to_string))
    .collect();
    if let Some(dir) = std::env::var_os("SLIPWAY_BENCH_DECISIONS") {
        // Every stored decision, oldest first, for a closer look at one run.
        let all = get_json(&format!(
            "{}/api/v1/autoscalers/bench/cpu/decisions?limit=2000",
            s.url
        ))
        .unwrap_or_default();
        let file = std::path::Path::new(&dir).join(format!("{}.json", name.replace(' ', "-")));
        std::fs::write(&file, serde_json::to_vec_pretty(&all)?)?;
    }
    let _ = http("DELETE", &format!("{}/v2/apps/bench/cpu", s.url), None);
    std::thread::sleep(Duration::from_secs(4));
    testkit::kill_tasks_of(dir.path());
    Ok(Outcome {
        name,
        decision_s,
        serving_s,
        one_decision,
        step_reversals,
        down_after_s,
        down_decisions,
        steady_changes: in_steady.len(),
        steady_reversals: flips(&steady_seq),
        slow_seconds: slow.len(),
        trace_seconds,
        failed,
        sent,
        kinds,
        failed_at: failed_at.into_iter().collect(),
        phases: (step_offsets, drop_offset, steady_offset),
        up_said: all
            .iter()
            .filter(|c| c.1 == "scaleUp")
            .map(|c| c.4.clone())
            .collect(),
        changes: all.into_iter().map(|c| (c.1, c.2, c.3)).collect(),
        sent_per_second,
        counts,
        last_said,
    })
}

/// Runs the trace against both policies at once (two servers) and prints a table.
pub(crate) fn default_vs_hpa(
    slipway: &std::path::Path,
    trace: Trace,
    chart_to: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let a = {
        let p = slipway.to_path_buf();
        std::thread::spawn(move || run_one(&p, "slipway default", json!({}), 150, trace))
    };
    let b = {
        let p = slipway.to_path_buf();
        std::thread::spawn(move || run_one(&p, "hpa preset", json!({"preset": "hpa"}), 330, trace))
    };
    let mut out = Vec::new();
    for h in [a, b] {
        out.push(h.join().map_err(|_| anyhow::anyhow!("a run panicked"))??);
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
    println!(
        "{:<16} {:>22} {:>14} {:>12} {:>20} {:>16} {:>18} {:>14}",
        "policy",
        "step→decision p50/p95",
        "step→serving",
        "one decision",
        "drop→scale-down",
        "steady chg/rev",
        "s over SLO/total",
        "failed/sent"
    );
    for o in &out {
        println!(
            "{:<16} {:>22} {:>14} {:>12} {:>20} {:>16} {:>18} {:>14}",
            o.name,
            format!(
                "{} / {}",
                f(percentile(&o.decision_s, 0.5)),
                f(percentile(&o.decision_s, 0.95))
            ),
            f(percentile(&o.serving_s, 0.5)),
            format!("{}/{}", o.one_decision, trace.steps),
            format!("{} ({}×)", f(o.down_after_s), o.down_decisions),
            format!("{}/{}", o.steady_changes, o.steady_reversals),
            format!("{}/{}", o.slow_seconds, o.trace_seconds),
            format!("{}/{}", o.failed, o.sent)
        );
        println!(
            "  decisions (s): {:?}; serving (s): {:?}; reversals within steps: {}",
            o.decision_s, o.serving_s, o.step_reversals
        );
        println!("  changes: {:?}", o.changes);
        if !o.kinds.is_empty() {
            println!(
                "  failed: {:?}, in these seconds of the trace: {:?}",
                o.kinds, o.failed_at
            );
        }
        println!(
            "  trace: steps at {:?} s, drop at {} s, steady from {} s",
            o.phases.0, o.phases.1, o.phases.2
        );
        for said in &o.up_said {
            println!("  up: {said}");
        }
        for said in &o.last_said {
            println!("  said: {said}");
        }
    }
    if let Some(path) = chart_to {
        let panels: Vec<chart::Panel<'_>> = out
            .iter()
            .map(|o| chart::Panel {
                name: o.name,
                sent_per_second: &o.sent_per_second,
                // 1× (13 requests/s) is what 2 instances serve at the 30 % target.
                rate_per_instance: 6.5,
                start_count: 2,
                counts: &o.counts,
                steps: &o.phases.0,
            })
            .collect();
        std::fs::write(path, chart::svg(&panels))
            .with_context(|| format!("writing the chart to {}", path.display()))?;
        println!("chart: {}", path.display());
    }
    if let (Some(d), Some(h)) = (
        percentile(&out[0].decision_s, 0.5),
        percentile(&out[1].decision_s, 0.5),
    ) && d > 0.0
    {
        println!(
            "step→decision p50: the hpa preset takes {:.1}× as long (SLO {} ms)",
            h / d,
            trace.slo.as_millis()
        );
    }
    Ok(())
}
