//! PromQL parity with a real Prometheus: Debian's `prometheus` scrapes Slipway's `/metrics`
//! every second while an app of 3 instances serves load through the proxy, then a table of
//! expressions is evaluated by both `/api/v1/query_range`s over the same window and steps,
//! and the answers must name the same series with values within 1 %.
//!
//! Why the answers can be compared at all: Slipway's exposition carries each round's
//! collection time as the sample timestamp and Prometheus honours it (`honor_timestamps`
//! defaults to true), so both stores hold the same samples at the same milliseconds as
//! long as Prometheus sees every round. Slipway collects every 3 s and Prometheus scrapes
//! every 1 s, so each round is exposed during two or three scrapes and a scrape delayed
//! on a busy machine loses nothing (a round seen twice is the same sample, which
//! Prometheus drops as a duplicate).

use crate::*;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use testkit::load::{LoadSpec, spawn_load};
use testkit::wait_for;

/// Percent-encodes a query parameter.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `prometheus` child process, killed when dropped (also when the test fails).
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// The `prometheus` binary, if installed.
fn prometheus_bin() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join("prometheus"))
        .find(|p| p.is_file())
}

/// Starts Prometheus on a free loopback port, scraping `target` (`host:port`) every 1 s
/// with the admin token, its storage in a temp dir.
fn start_prometheus(bin: &std::path::Path, target: &str) -> Prometheus {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: slipway\n    metrics_path: /metrics\n\
         \x20   authorization:\n      type: Bearer\n      credentials: {}\n\
         \x20   static_configs:\n      - targets: ['{target}']\n",
        testkit::ADMIN_TOKEN
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let port = testkit::free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1h")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    wait_for("prometheus to be ready", Duration::from_secs(30), || {
        matches!(
            testkit::http_get(&format!("{}/-/ready", p.url)),
            Ok((200, _))
        )
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    p
}

/// Series of a matrix answer: labels (without the `job` and `instance` target labels that
/// Prometheus adds) → (timestamp ms, value).
type Matrix = BTreeMap<String, Vec<(i64, f64)>>;

/// A matrix, vector or scalar answer as series of points.
fn matrix(answer: &Value) -> Result<Matrix, String> {
    if answer["status"] != "success" {
        return Err(format!("error answer: {answer}"));
    }
    let point = |p: &Value| {
        let t = p[0].as_f64().unwrap_or(f64::NAN);
        let v = p[1].as_str().and_then(|v| v.parse::<f64>().ok());
        ((t * 1000.0).round() as i64, v.unwrap_or(f64::NAN))
    };
    let mut out = Matrix::new();
    if answer["data"]["resultType"] == "scalar" {
        out.insert("scalar".into(), vec![point(&answer["data"]["result"])]);
        return Ok(out);
    }
    for s in answer["data"]["result"].as_array().ok_or("no result")? {
        let labels: BTreeMap<&str, &str> = s["metric"]
            .as_object()
            .ok_or("no metric")?
            .iter()
            .filter(|(k, _)| *k != "job" && *k != "instance")
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        let points = match s["values"].as_array() {
            Some(values) => values.iter().map(point).collect(),
            None => vec![point(&s["value"])],
        };
        out.insert(format!("{labels:?}"), points);
    }
    Ok(out)
}

/// Values agree when within 1 % of the larger one (the acceptance bound). Both stores hold
/// the same samples, so the real differences are float rounding from summation order;
/// the absolute 1e-9 covers values that are zero in one answer and 1e-17 in the other.
fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 0.01 * a.abs().max(b.abs()) + 1e-9
}

/// Compares two matrices; the first difference found, if any.
fn diff(slipway: &Matrix, prom: &Matrix) -> Option<String> {
    if slipway.keys().ne(prom.keys()) {
        let only_s: Vec<_> = slipway.keys().filter(|k| !prom.contains_key(*k)).collect();
        let only_p: Vec<_> = prom.keys().filter(|k| !slipway.contains_key(*k)).collect();
        return Some(format!(
            "series differ: only in slipway {only_s:?}, only in prometheus {only_p:?}"
        ));
    }
    for (k, s) in slipway {
        let p = &prom[k];
        let ts_s: Vec<i64> = s.iter().map(|x| x.0).collect();
        let ts_p: Vec<i64> = p.iter().map(|x| x.0).collect();
        if ts_s != ts_p {
            return Some(format!(
                "{k}: steps differ: slipway {ts_s:?} prometheus {ts_p:?}"
            ));
        }
        for ((t, a), (_, b)) in s.iter().zip(p) {
            if !close(*a, *b) {
                return Some(format!("{k} at {t}: slipway {a} prometheus {b}"));
            }
        }
    }
    None
}

fn query_range(base: &str, expr: &str, start_ms: i64, end_ms: i64, step: &str) -> Value {
    let url = format!(
        "{base}/api/v1/query_range?query={}&start={}.{:03}&end={}.{:03}&step={step}",
        enc(expr),
        start_ms / 1000,
        start_ms % 1000,
        end_ms / 1000,
        end_ms % 1000
    );
    match testkit::http_get(&url) {
        Ok((_, body)) => serde_json::from_str(&body).unwrap_or(Value::String(body)),
        Err(e) => Value::String(e.to_string()),
    }
}

/// The table: every feature issue 16 lists, over the series a loaded app produces.
const EXPRESSIONS: &[&str] = &[
    // selectors: = != =~ !~
    r#"container_memory_working_set_bytes{app="/pm"}"#,
    r#"slipway_proxy_requests_total{app="/pm",code!="1xx"}"#,
    r#"container_cpu_usage_seconds_total{app=~"/p.*",cpu="total"}"#,
    r#"node_cpu_seconds_total{mode!~"idle|iowait|steal|irq"}"#,
    // rate, irate, increase
    r#"rate(container_cpu_usage_seconds_total{app="/pm"}[10s])"#,
    r#"irate(slipway_proxy_requests_total{app="/pm"}[10s])"#,
    r#"increase(slipway_proxy_backend_requests_total{app="/pm",code="2xx"}[20s])"#,
    // *_over_time
    r#"avg_over_time(container_memory_working_set_bytes{app="/pm"}[20s])"#,
    r#"max_over_time(node_load1[20s])"#,
    r#"min_over_time(container_memory_rss{app="/pm"}[10s])"#,
    r#"count_over_time(container_cpu_usage_seconds_total{app="/pm"}[20s])"#,
    r#"sum_over_time(slipway_proxy_backend_in_flight{app="/pm"}[10s])"#,
    // aggregations by and without
    r#"sum by (app) (rate(container_cpu_usage_seconds_total{app="/pm"}[10s]))"#,
    r#"avg without (id, name, task, version) (container_memory_working_set_bytes{app="/pm"})"#,
    r#"max by (code) (rate(slipway_proxy_backend_requests_total{app="/pm"}[10s]))"#,
    r#"min without (cpu) (rate(node_cpu_seconds_total{mode="user"}[10s]))"#,
    r#"count by (app, env) (container_memory_working_set_bytes{app="/pm"})"#,
    r#"topk(2, rate(container_cpu_usage_seconds_total{app="/pm"}[20s]))"#,
    // arithmetic with scalars and vectors, matching
    r#"container_memory_working_set_bytes{app="/pm"} / 1024 / 1024"#,
    r#"100 * (1 - avg by (cpu) (rate(node_cpu_seconds_total{mode="idle"}[10s])))"#,
    r#"rate(container_cpu_usage_seconds_total{app="/pm"}[10s]) / ignoring(cpu) (container_spec_cpu_quota{app="/pm"} / container_spec_cpu_period{app="/pm"})"#,
    r#"rate(container_cpu_usage_seconds_total{app="/pm"}[10s]) / on(app) group_left sum by (app) (rate(container_cpu_usage_seconds_total{app="/pm"}[10s]))"#,
    r#"sum by (app) (rate(slipway_proxy_requests_total{code="4xx"}[20s])) / on(app) sum by (app) (rate(slipway_proxy_requests_total[20s]))"#,
    // comparisons
    r#"rate(container_cpu_usage_seconds_total{app="/pm"}[10s]) > 0.001"#,
    r#"container_memory_working_set_bytes{app="/pm"} > bool 1000000"#,
    // histogram_quantile over the proxy's latency histogram
    r#"histogram_quantile(0.99, sum by (le) (rate(slipway_proxy_request_duration_seconds_bucket{app="/pm"}[20s])))"#,
    r#"histogram_quantile(0.5, sum by (app, le) (rate(slipway_proxy_request_duration_seconds_bucket[10s])))"#,
    // offset
    r#"rate(slipway_proxy_requests_total{app="/pm",code="2xx"}[10s] offset 10s)"#,
    // abs, ceil, floor, clamp_min, clamp_max
    r#"abs(rate(container_cpu_usage_seconds_total{app="/pm"}[10s]) - 0.05)"#,
    r#"ceil(container_memory_working_set_bytes{app="/pm"} / 1e6)"#,
    r#"floor(rate(slipway_proxy_requests_total{app="/pm"}[10s]))"#,
    r#"clamp_min(rate(container_cpu_usage_seconds_total{app="/pm"}[10s]), 0.02)"#,
    r#"clamp_max(irate(slipway_proxy_requests_total{app="/pm"}[10s]), 10)"#,
    // more of the same families, as dashboards write them
    r#"last_over_time(container_memory_working_set_bytes{app="/pm"}[10s])"#,
    r#"stddev_over_time(container_memory_working_set_bytes{app="/pm"}[20s])"#,
    r#"quantile_over_time(0.9, slipway_proxy_backend_in_flight{app="/pm"}[20s])"#,
    r#"delta(container_memory_rss{app="/pm"}[20s])"#,
    // topk/bottomk break ties in no documented order (round-robin makes request rates tie,
    // and identical tasks' memory can tie to the page), so they rank the tasks' CPU time,
    // counted in nanoseconds.
    r#"bottomk(1, container_cpu_usage_seconds_total{app="/pm"})"#,
    r#"topk by (app) (1, rate(container_cpu_usage_seconds_total{app="/pm"}[10s]))"#,
    r#"sum without (code) (rate(slipway_proxy_backend_requests_total{app="/pm"}[10s])) * on(app, backend) group_left slipway_proxy_backend_up{app="/pm"}"#,
    r#"rate(container_cpu_usage_seconds_total{app="/pm"}[10s]) > on(app) group_left avg by (app) (rate(container_cpu_usage_seconds_total{app="/pm"}[10s]))"#,
    r#"container_memory_rss{app="/pm"} < bool ignoring(cpu) container_memory_working_set_bytes{app="/pm"}"#,
    r#"slipway_proxy_backend_up{app="/pm"} and on(backend) (rate(slipway_proxy_backend_requests_total{app="/pm",code="2xx"}[10s]) > 0)"#,
    r#"sum(rate(slipway_proxy_request_duration_seconds_sum{app="/pm"}[20s])) / sum(rate(slipway_proxy_request_duration_seconds_count{app="/pm"}[20s]))"#,
    r#"histogram_quantile(0.9, rate(slipway_proxy_request_duration_seconds_bucket{app="/pm"}[20s] offset 5s))"#,
    r#"count(count by (mode) (node_cpu_seconds_total))"#,
    r#"scalar(sum(container_memory_working_set_bytes{app="/pm"})) / container_memory_working_set_bytes{app="/pm"}"#,
];

#[test]
fn promql_answers_match_a_real_prometheus() {
    let Some(bin) = prometheus_bin() else {
        assert!(
            !testkit::strict(),
            "prometheus is not installed (apt-get install prometheus)"
        );
        eprintln!("skipped: prometheus is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "3s"])
        .expect("slipway starts");
    let port = testkit::free_port();
    let mut def = web_app("/pm", 3, "1");
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

    let prom = start_prometheus(&bin, s.url.trim_start_matches("http://"));
    let prom_start = testkit_now_ms();
    // Load: CPU burnt in the tasks, slow answers for the latency histogram, some 404s.
    let load = |path: &str, rate: u32| {
        spawn_load(LoadSpec {
            addr: format!("127.0.0.1:{port}"),
            path: path.into(),
            host: "pm.test".into(),
            rate,
            duration: Duration::from_secs(55),
            max_connections: 32,
            timeout: Duration::from_secs(10),
        })
    };
    let loads = [
        load("/burn?ms=3", 30),
        load("/sleep?ms=20", 20),
        load("/nope", 3),
    ];
    wait_for(
        "prometheus to scrape slipway",
        Duration::from_secs(30),
        || {
            let up = testkit::get_json(&format!("{}/api/v1/query?query=up", prom.url)).ok()?;
            (up["data"]["result"][0]["value"][1] == "1").then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
    std::thread::sleep(Duration::from_secs(50));

    // The window: it starts once Prometheus has 25 s of samples (the longest range plus
    // offset is 20 s) and ends 4 s ago (the newest round may not be scraped yet). Steps
    // are whole seconds, placed half a second away from the collection rounds'
    // millisecond phase: Prometheus 2 range windows are closed on the left and Slipway's
    // (Prometheus 3's) open, which only differs for a sample exactly on the window edge.
    let raw = testkit::get_json(&format!(
        "{}/api/v1/query?query={}",
        s.url,
        enc("node_load1[10s]")
    ))
    .expect("raw samples");
    let sample_ms = raw["data"]["result"][0]["values"][0][0]
        .as_f64()
        .map(|t| (t * 1000.0).round() as i64)
        .expect("a raw sample");
    let phase = (sample_ms.rem_euclid(1000) + 500) % 1000;
    let start = (prom_start + 25_000) / 1000 * 1000 + phase;
    let end = (testkit_now_ms() - 4_000) / 1000 * 1000 + phase;

    let mut failures = Vec::new();
    let mut table = String::new();
    for expr in EXPRESSIONS {
        let a = matrix(&query_range(&s.url, expr, start, end, "1"));
        let b = matrix(&query_range(&prom.url, expr, start, end, "1"));
        let verdict = match (&a, &b) {
            (Ok(a), Ok(b)) if a.is_empty() && b.is_empty() => {
                Some("empty in both (nothing compared)".to_string())
            }
            (Ok(a), Ok(b)) => diff(a, b),
            (Err(e), _) => Some(format!("slipway: {e}")),
            (_, Err(e)) => Some(format!("prometheus: {e}")),
        };
        // The instant query API at the window's end (lookback instead of steps).
        let instant = |base: &str| {
            let url = format!(
                "{base}/api/v1/query?query={}&time={}.{:03}",
                enc(expr),
                end / 1000,
                end % 1000
            );
            testkit::get_json(&url).unwrap_or_else(|e| Value::String(e.to_string()))
        };
        let verdict =
            verdict.or_else(
                || match (matrix(&instant(&s.url)), matrix(&instant(&prom.url))) {
                    (Ok(a), Ok(b)) => diff(&a, &b).map(|d| format!("instant query: {d}")),
                    (Err(e), _) | (_, Err(e)) => Some(format!("instant query: {e}")),
                },
            );
        let series = a.as_ref().map(|m| m.len()).unwrap_or(0);
        let points: usize = a
            .as_ref()
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0);
        let ok = verdict.is_none();
        table.push_str(&format!(
            "{} {series:>3} series {points:>4} points  {expr}\n",
            if ok { "ok  " } else { "FAIL" }
        ));
        if let Some(v) = verdict {
            failures.push(format!("{expr}\n    {v}"));
        }
    }
    eprintln!("PromQL parity with Prometheus:\n{table}");
    for l in loads {
        let r = l.join().expect("load");
        eprintln!("load: {r}");
    }
    assert!(
        EXPRESSIONS.len() >= 15 && failures.is_empty(),
        "{} of {} expressions differ:\n{}",
        failures.len(),
        EXPRESSIONS.len(),
        failures.join("\n")
    );
    drop(prom);
}

fn testkit_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
