//! `--influxdb-url` against a real InfluxDB 1.6 (Debian's `influxdb`, started on
//! 127.0.0.1): the database is created, every task's CPU series arrives in cAdvisor's
//! schema (`cpu_usage_total`, nanoseconds, tags `machine`, `container_name` and the
//! labels) with the values Slipway stored at the same milliseconds, and a round InfluxDB
//! refuses with a 400 is dropped, not retried.

use crate::prometheus::enc;
use crate::*;
use std::process::{Child, Command, Stdio};
use testkit::wait_for;

/// An `influxd` child process, killed when dropped (also when the test fails).
struct Influxd {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn influxd_bin() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join("influxd"))
        .find(|p| p.is_file())
}

fn start_influxd(bin: &std::path::Path) -> Influxd {
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, rpc) = (testkit::free_port(), testkit::free_port());
    let d = dir.path().display();
    let config = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
         [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
         [monitor]\n  store-enabled = false\n\
         [continuous_queries]\n  enabled = false\n"
    );
    let path = dir.path().join("influxdb.conf");
    std::fs::write(&path, config).expect("config");
    let log = std::fs::File::create(dir.path().join("influxd.log")).expect("log");
    let child = Command::new(bin)
        .args(["run", "-config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("influxd starts");
    let i = Influxd {
        child,
        url: format!("http://127.0.0.1:{http}"),
        dir,
    };
    wait_for("influxd to answer /ping", Duration::from_secs(30), || {
        matches!(testkit::http_get(&format!("{}/ping", i.url)), Ok((204, _))).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(i.dir.path().join("influxd.log")).unwrap_or_default()
        )
    });
    i
}

/// An InfluxQL query's first series' values as (epoch ms, value).
fn influxql(i: &Influxd, db: &str, q: &str) -> Vec<(i64, f64)> {
    let url = format!("{}/query?db={db}&epoch=ms&q={}", i.url, enc(q));
    let v = get_json(&url).unwrap_or(Value::Null);
    v["results"][0]["series"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?)))
        .collect()
}

#[test]
fn influxdb_export_receives_the_cpu_series_in_cadvisors_schema() {
    let Some(bin) = influxd_bin() else {
        assert!(
            !testkit::strict(),
            "influxd is not installed (apt-get install influxdb)"
        );
        eprintln!("skipped: influxd is not installed");
        return;
    };
    let influx = start_influxd(&bin);
    // A measurement whose `value` is a string: the node_load1 points of every round
    // conflict with it, so InfluxDB answers each round with a 400 (partial write).
    let (status, body) = testkit::http(
        "POST",
        &format!("{}/query?q={}", influx.url, enc("CREATE DATABASE slipway")),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_post(
        &influx.url,
        "/write?db=slipway",
        "slipway_tasks,app=/other value=\"text\"\n",
    );
    assert_eq!(status, 204, "{body}");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("{}/slipway", influx.url);
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--metrics-interval", "1s", "--influxdb-url", &url],
    )
    .expect("slipway starts");
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&web_app("/ix", 2, "1")));
    assert_eq!(status, 201, "{body}");
    let tasks: Vec<String> = wait_for("2 running tasks", Duration::from_secs(60), || {
        let ids: Vec<String> = app(&s, "/ix")["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        (ids.len() == 2).then_some(ids)
    })
    .unwrap();
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    for task in &tasks {
        let q = format!(
            "SELECT value FROM cpu_usage_total WHERE container_name = '{task}' AND machine = '{machine}' AND app = '/ix' AND time > now() - 5m"
        );
        let points = wait_for(
            "the task's CPU series in InfluxDB",
            Duration::from_secs(30),
            || {
                let p = influxql(&influx, "slipway", &q);
                (p.len() >= 3).then_some(p)
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        // The same samples as Slipway's store: nanoseconds there, seconds here.
        let mine = get_json(&format!(
            "{}/api/v1/query?query={}",
            s.url,
            enc(&format!(
                "container_cpu_usage_seconds_total{{task=\"{task}\"}}[5m]"
            ))
        ))
        .unwrap();
        let mine: std::collections::BTreeMap<i64, f64> = mine["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        for (t, ns) in &points {
            let secs = mine
                .get(t)
                .unwrap_or_else(|| panic!("{task}: no sample at {t}"));
            assert!(
                (ns / 1e9 - secs).abs() < 1e-9,
                "{task} at {t}: {ns} ns vs {secs} s"
            );
        }
    }
    // Host metrics are float measurements under their Prometheus names.
    let load = influxql(
        &influx,
        "slipway",
        "SELECT value FROM node_load1 WHERE time > now() - 5m",
    );
    assert!(!load.is_empty());
    // Rounds with a conflicting point got a 400: each was dropped, none sent again.
    let log = s.log();
    assert!(!log.contains("InfluxDB export failing"), "{log}");
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("InfluxDB rejected a round"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("round=")))
        .collect();
    assert!(rejected.len() >= 3, "{log}");
    let unique: std::collections::BTreeSet<&&str> = rejected.iter().collect();
    assert_eq!(
        unique.len(),
        rejected.len(),
        "a rejected round was retried:\n{log}"
    );
}

/// POSTs `body` as is; (status, body).
fn raw_post(base: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default()
            .to_string(),
    )
}
