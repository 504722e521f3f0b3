//! Monitoring end to end: the collector's cAdvisor series for real tasks agree with the
//! kernel's cgroup files, PromQL answers over them, InfluxDB line protocol is written and
//! queryable with InfluxDB's answers to bad input, and a kill -9 while writing loses
//! nothing that was acknowledged.

use crate::*;
use testkit::wait_for;

fn metrics_server() -> (SlipwayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "1s"])
        .expect("slipway starts");
    (s, dir)
}

/// `/metrics` as Prometheus scrapes it.
pub(crate) fn scrape(s: &SlipwayProcess) -> String {
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/plain;version=0.0.4\r\nConnection: close\r\n\r\n",
        testkit::ADMIN_TOKEN
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

/// The value of the first sample of `metric` for `task` in exposition `text`.
fn sample(text: &str, metric: &str, task: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| l.contains(&format!("task=\"{task}\"")))
        .and_then(|l| l.rsplit('}').next())
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn query(s: &SlipwayProcess, promql: &str) -> Value {
    let q: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    get_json(&format!("{}/api/v1/query?query={q}", s.url)).expect("query")
}

fn cgroup_file(agent: &str, controller: &str, task: &str, file: &str) -> String {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{controller}/slipway/{agent}/{task}/{file}"
    ))
    .unwrap_or_default()
}

#[test]
fn task_series_agree_with_the_kernel_and_answer_promql() {
    let (s, _dir) = metrics_server();
    let def = json!({"id": "/qa/busy", "instances": 3, "cpus": 0.2, "mem": 64,
        "cmd": "python3 -c 'import time\nx=[0]*200000\nwhile True:\n  sum(range(20000)); time.sleep(0.01)'"});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    let tasks: Vec<String> = wait_for("3 running tasks", Duration::from_secs(60), || {
        let a = app(&s, "/qa/busy");
        let ids: Vec<String> = a["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        (ids.len() == 3).then_some(ids)
    })
    .unwrap();
    let agent = get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    // Wait for a round that has every task.
    let text = wait_for("a round with every task", Duration::from_secs(30), || {
        let t = scrape(&s);
        tasks
            .iter()
            .all(|id| sample(&t, "container_memory_working_set_bytes", id).is_some())
            .then_some(t)
    })
    .unwrap();
    for id in &tasks {
        for needle in [
            "app=\"/qa/busy\"".to_string(),
            format!("task=\"{id}\""),
            "env=\"qa\"".into(),
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("container_cpu_usage_seconds_total{")
                        && l.contains(id.as_str())
                        && l.contains(&needle)),
                "{needle} missing for {id}"
            );
        }
        // CPU: the metric read before the file can only be smaller, and not by much more
        // than a second's use at 0.2 cpus.
        let cpu = sample(&text, "container_cpu_usage_seconds_total", id).unwrap();
        let kernel: f64 = cgroup_file(&agent, "cpuacct", id, "cpuacct.usage")
            .trim()
            .parse::<f64>()
            .unwrap()
            / 1e9;
        assert!(
            cpu <= kernel + 1e-6 && kernel - cpu <= (kernel * 0.05).max(0.5),
            "cpu {cpu} vs kernel {kernel}"
        );
        // Working set: usage - total_inactive_file, as cAdvisor computes it, within 5 %.
        let ws = sample(&text, "container_memory_working_set_bytes", id).unwrap();
        let usage: f64 = cgroup_file(&agent, "memory", id, "memory.usage_in_bytes")
            .trim()
            .parse()
            .unwrap();
        let stat = cgroup_file(&agent, "memory", id, "memory.stat");
        let inactive: f64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("total_inactive_file "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        let kernel_ws = (usage - inactive).max(0.0);
        assert!(
            (ws - kernel_ws).abs() <= kernel_ws * 0.05,
            "working set {ws} vs kernel {kernel_ws}"
        );
    }
    let counted = query(
        &s,
        "count(container_memory_working_set_bytes{app=\"/qa/busy\"})",
    );
    assert_eq!(counted["data"]["result"][0]["value"][1], "3", "{counted}");
    // Let a few rounds pass, then a rate per app answers.
    std::thread::sleep(Duration::from_secs(3));
    let rate = query(
        &s,
        "sum by (app) (rate(container_cpu_usage_seconds_total{app=\"/qa/busy\"}[5s]))",
    );
    let v: f64 = rate["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    assert!(v > 0.0 && v < 1.0, "{rate}");
    let (status, bad) = http(
        "GET",
        &format!(
            "{}/api/v1/query?query=sum%28rate%28x%5B5m%5D%29%20by",
            s.url
        ),
        None,
    )
    .unwrap();
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("\"errorType\":\"bad_data\""), "{bad}");
    let (status, meta) = http(
        "GET",
        &format!(
            "{}/api/v1/metadata?metric=container_cpu_usage_seconds_total",
            s.url
        ),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(meta.contains("\"counter\""), "{meta}");
}

/// POSTs line protocol; returns (status, body).
fn write_lines(s: &SlipwayProcess, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Token {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        testkit::ADMIN_TOKEN,
        body.len()
    )
    .expect("head");
    let _ = c.write_all(body.as_bytes());
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[test]
fn line_protocol_is_stored_queryable_and_bad_input_gets_influxdbs_answers() {
    let (mut s, _dir) = metrics_server();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "disk,host=h{},path=/ used_percent={}.5 {}\n",
                i % 5,
                i,
                now - 500 + i
            )
        })
        .collect();
    let (status, body) = write_lines(&s, "/write?db=telegraf&precision=s", &lines);
    assert_eq!(status, 204, "{body}");
    let (status, body) = write_lines(
        &s,
        "/api/v2/write?org=o&bucket=b2&precision=s",
        &format!("net,iface=eth0 rx=7i {now}\n"),
    );
    assert_eq!(status, 204, "{body}");
    let r = query(&s, "count(disk_used_percent{db=\"telegraf\"})");
    assert_eq!(r["data"]["result"][0]["value"][1], "5", "{r}");
    let r = query(&s, "net_rx{db=\"b2\"}");
    assert_eq!(r["data"]["result"][0]["value"][1], "7", "{r}");
    // Series, label names and values as Grafana asks for them: overlapping selectors
    // give each series once.
    let enc = crate::prometheus::enc;
    let series = get_json(&format!(
        "{}/api/v1/series?match[]={}&match[]={}&match[]={}",
        s.url,
        enc("disk_used_percent"),
        enc("{__name__=~\"disk_.*|net_.*\"}"),
        enc("disk_used_percent{host=\"h1\"}"),
    ))
    .expect("series");
    let mut got: Vec<String> = series["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                l["__name__"].as_str().unwrap(),
                l["host"].as_str().unwrap_or("")
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "disk_used_percenth0",
            "disk_used_percenth1",
            "disk_used_percenth2",
            "disk_used_percenth3",
            "disk_used_percenth4",
            "net_rx"
        ],
        "{series}"
    );
    let hosts = get_json(&format!(
        "{}/api/v1/label/host/values?match[]={}",
        s.url,
        enc("disk_used_percent")
    ))
    .expect("label values");
    assert_eq!(
        hosts["data"],
        json!(["h0", "h1", "h2", "h3", "h4"]),
        "{hosts}"
    );
    let names = get_json(&format!(
        "{}/api/v1/labels?match[]={}",
        s.url,
        enc("net_rx")
    ))
    .expect("labels");
    assert_eq!(names["data"], json!(["__name__", "db", "iface"]), "{names}");
    // A malformed line: 400 naming it, the good line stored (InfluxDB's partial write).
    let (status, body) = write_lines(
        &s,
        "/write?db=telegraf&precision=s",
        &format!("disk,host=x used_percent=1 {now}\nthis is not line protocol\n"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unable to parse 'this is not line protocol'"),
        "{body}"
    );
    let r = query(&s, "disk_used_percent{host=\"x\"}");
    assert_eq!(r["data"]["result"][0]["value"][1], "1", "{r}");
    let (status, body) = write_lines(&s, "/api/v2/write?bucket=b2&precision=s", "a b\n");
    assert_eq!(status, 400);
    assert!(
        body.contains("\"code\":\"invalid\"") && body.contains("line 1"),
        "{body}"
    );
    // A type conflict is reported, the stored series keeps its type.
    let (status, body) = write_lines(
        &s,
        "/write?db=telegraf&precision=s",
        &format!("disk,host=h1,path=/ used_percent=3i {}\n", now + 1),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("field type conflict"), "{body}");
    // A batch over axum's default body limit (2 MiB) and under InfluxDB's (25 MiB).
    let start_ms = now * 1000 - 100_000;
    let bulk: String = (0..90_000)
        .map(|i| format!("bulk,host=h1 v={i} {}\n", start_ms + i))
        .collect();
    assert!(bulk.len() > 2 * 1024 * 1024, "{}", bulk.len());
    let (status, body) = write_lines(&s, "/write?db=telegraf&precision=ms", &bulk);
    assert_eq!(status, 204, "{body}");
    let r = query(&s, "count_over_time(bulk_v[5m])");
    assert_eq!(r["data"]["result"][0]["value"][1], "90000", "{r}");
    // Over the size limit: InfluxDB's 413 with its JSON body, also far over it.
    for mib in [25, 40] {
        let big = "x".repeat(mib * 1024 * 1024 + 1);
        let (status, body) = write_lines(&s, "/write?db=telegraf", &big);
        assert_eq!(status, 413);
        assert!(body.contains("request body exceeds the limit"), "{body}");
    }
    // Acknowledged writes survive kill -9.
    let (status, _) = write_lines(
        &s,
        "/write?db=telegraf&precision=s",
        &format!("crash,step=1 v=11 {now}\n"),
    );
    assert_eq!(status, 204);
    s.kill9();
    s.restart().expect("restart");
    let r = query(&s, "crash_v");
    assert_eq!(r["data"]["result"][0]["value"][1], "11", "{r}");
    let r = query(&s, "count(disk_used_percent{db=\"telegraf\"})");
    assert_eq!(r["data"]["result"][0]["value"][1], "6", "{r}");
}

/// `--metrics-max-series` bounds the store: past it new series are refused with a clear
/// error on `/write`, and the store's own metrics show the limit and the refusals.
#[test]
fn the_series_limit_refuses_new_series_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--metrics-interval", "1s", "--metrics-max-series", "20"],
    )
    .expect("slipway starts");
    // The collector's own series fill the store in its first round; the figures are read
    // at the start of a round, so a later round shows it full.
    let text = wait_for("the store's metrics", Duration::from_secs(30), || {
        let text = scrape(&s);
        (text.contains(r#"slipway_tsdb_series{kind="limit"} 20"#)
            && text.contains(r#"slipway_tsdb_series{kind="held"} 20"#))
        .then_some(text)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", scrape(&s)));
    let (status, body) = write_lines(&s, "/write?db=t", "fresh,host=a v=1\n");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too many series: the limit is 20"), "{body}");
    let refused = text
        .lines()
        .find(|l| l.starts_with(r#"slipway_tsdb_samples_rejected_total{reason="too_many_series"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "{text}");
}
