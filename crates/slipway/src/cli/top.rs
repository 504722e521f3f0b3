//! `slipway top`: a live table of apps and their tasks with CPU, memory, requests per
//! second and p99 latency (like `docker stats` and `kubectl top`), from the server's
//! Prometheus query API; `--once` prints one frame, `--output json` frames as JSON.

use clap::Args;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use super::client::Client;
use super::error::{self, Exit};
use super::metrics::{parse_duration, prom_get, short_number};
use super::out;
use super::table::Table;
use super::{ClientOpts, Output};

/// `slipway top`.
#[derive(Args, Debug)]
pub(crate) struct TopArgs {
    #[command(flatten)]
    opts: ClientOpts,
    /// Print one frame and exit.
    #[arg(long)]
    once: bool,
    /// Time between frames.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    /// Only apps whose id contains this text.
    #[arg(long, value_name = "SUBSTR")]
    app: Option<String>,
}

/// The queries of one frame. `irate` over a minute uses the last two samples, so the
/// figures follow the collection interval (1 s to 30 s) without knowing it.
const CPU: &str = "sum by (app, task) (irate(container_cpu_usage_seconds_total[1m]))";
const MEM: &str = "sum by (app, task) (container_memory_working_set_bytes)";
const MEM_LIMIT: &str = "max by (app, task) (container_spec_memory_limit_bytes)";
const TASK_RPS: &str = "sum by (app, backend) (irate(slipway_proxy_backend_requests_total[1m]))";
const APP_RPS: &str = "sum by (app) (irate(slipway_proxy_requests_total[1m]))";
const APP_P99: &str = "histogram_quantile(0.99, sum by (app, le) (rate(slipway_proxy_request_duration_seconds_bucket[1m])))";
const TASK_P99: &str = "histogram_quantile(0.99, sum by (app, backend, le) (rate(slipway_proxy_backend_request_duration_seconds_bucket[1m])))";

/// Runs `slipway top`.
pub(crate) async fn top(args: TopArgs) -> ExitCode {
    let output = args.opts.output;
    let result = match Client::new(&args.opts) {
        Ok(client) => run(&client, output, &args).await,
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

async fn run(client: &Client, output: Output, args: &TopArgs) -> anyhow::Result<Exit> {
    let tty = std::io::stdout().is_terminal();
    loop {
        let frame = frame(client, args.app.as_deref()).await?;
        match output {
            Output::Json if args.once => out::json(&frame)?,
            // One frame per line, for `| jq` while it runs.
            Output::Json => out::line(&frame.to_string())?,
            Output::Text => {
                let mut text = String::new();
                if !args.once && tty {
                    // Home and clear: redraw in place.
                    text.push_str("\x1b[H\x1b[2J");
                    text.push_str(&format!(
                        "slipway top  {}  every {}s, Ctrl-C quits\n\n",
                        client.base(),
                        args.interval.as_secs_f64()
                    ));
                } else if !args.once {
                    text.push('\n');
                }
                text.push_str(&render(&frame));
                out::write_stdout(text.as_bytes())?;
            }
        }
        if args.once {
            return Ok(Exit::Success);
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Success),
        }
    }
}

/// `(app, task-or-empty) → value` of an instant vector answer.
fn by_labels(data: &Value, task_label: &str) -> BTreeMap<(String, String), f64> {
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let app = s["metric"]["app"].as_str()?.to_string();
            let task = s["metric"][task_label]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let v = s["value"][1].as_str()?.parse::<f64>().ok()?;
            Some(((app, task), v))
        })
        .collect()
}

/// One frame: every app (from `/v2/apps`) with its tasks' figures.
async fn frame(client: &Client, only: Option<&str>) -> anyhow::Result<Value> {
    let q = |expr: &'static str| async move {
        prom_get(client, "/api/v1/query", &[("query", expr.to_string())]).await
    };
    let (apps, cpu, mem, limit, task_rps, app_rps, p99, task_p99) = tokio::try_join!(
        client.get("/v2/apps", &[]),
        q(CPU),
        q(MEM),
        q(MEM_LIMIT),
        q(TASK_RPS),
        q(APP_RPS),
        q(APP_P99),
        q(TASK_P99),
    )?;
    let (cpu, mem, limit) = (
        by_labels(&cpu, "task"),
        by_labels(&mem, "task"),
        by_labels(&limit, "task"),
    );
    let task_rps = by_labels(&task_rps, "backend");
    let task_p99 = by_labels(&task_p99, "backend");
    let (app_rps, p99) = (by_labels(&app_rps, ""), by_labels(&p99, ""));
    let num = |v: Option<&f64>| {
        v.filter(|v| v.is_finite())
            .map_or(Value::Null, |v| json!(v))
    };
    let mut out = Vec::new();
    for a in apps["apps"].as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default().to_string();
        if only.is_some_and(|o| !id.contains(o)) {
            continue;
        }
        let key = |task: &str| (id.clone(), task.to_string());
        let tasks: Vec<&String> = cpu
            .keys()
            .chain(mem.keys())
            .filter(|(app, task)| *app == id && !task.is_empty())
            .map(|(_, task)| task)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let sum = |m: &BTreeMap<(String, String), f64>| {
            let vals: Vec<f64> = m
                .iter()
                .filter(|((app, _), _)| *app == id)
                .map(|(_, v)| *v)
                .collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>())
        };
        out.push(json!({
            "id": id,
            "instances": a["instances"],
            "tasksRunning": a["tasksRunning"],
            "cpu": num(sum(&cpu).as_ref()),
            "memoryBytes": num(sum(&mem).as_ref()),
            "requestsPerSecond": num(app_rps.get(&key(""))),
            "p99Seconds": num(p99.get(&key(""))),
            "tasks": tasks.iter().map(|t| json!({
                "id": t,
                "cpu": num(cpu.get(&key(t))),
                "memoryBytes": num(mem.get(&key(t))),
                "memoryLimitBytes": num(limit.get(&key(t))),
                "requestsPerSecond": num(task_rps.get(&key(t))),
                "p99Seconds": num(task_p99.get(&key(t))),
            })).collect::<Vec<_>>(),
        }));
    }
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Ok(json!({"time": time, "apps": out}))
}

/// Bytes in binary units (`12.3MiB`).
fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0}{}", UNITS[i])
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// The table of a frame: an app row (its totals, p99) then a row per task, indented.
fn render(frame: &Value) -> String {
    let f = |v: &Value, fmt: &dyn Fn(f64) -> String| v.as_f64().map_or("-".into(), fmt);
    let pct = |v: f64| format!("{:.1}", v * 100.0);
    let rps = |v: f64| short_number((v * 10.0).round() / 10.0);
    let ms = |v: f64| format!("{:.1}ms", v * 1000.0);
    let mut t = Table::new(&["APP / TASK", "TASKS", "CPU%", "MEM", "MEM%", "REQ/S", "P99"]);
    let apps = frame["apps"].as_array().cloned().unwrap_or_default();
    for a in &apps {
        t.row(vec![
            a["id"].as_str().unwrap_or_default().to_string(),
            format!(
                "{}/{}",
                a["tasksRunning"].as_u64().unwrap_or(0),
                a["instances"].as_u64().unwrap_or(0)
            ),
            f(&a["cpu"], &pct),
            f(&a["memoryBytes"], &bytes),
            String::new(),
            f(&a["requestsPerSecond"], &rps),
            f(&a["p99Seconds"], &ms),
        ]);
        for task in a["tasks"].as_array().into_iter().flatten() {
            let mem_pct = match (
                task["memoryBytes"].as_f64(),
                task["memoryLimitBytes"].as_f64(),
            ) {
                (Some(m), Some(l)) if l > 0.0 => format!("{:.1}", m / l * 100.0),
                _ => "-".into(),
            };
            t.row(vec![
                format!("  {}", task["id"].as_str().unwrap_or_default()),
                String::new(),
                f(&task["cpu"], &pct),
                f(&task["memoryBytes"], &bytes),
                mem_pct,
                f(&task["requestsPerSecond"], &rps),
                f(&task["p99Seconds"], &ms),
            ]);
        }
    }
    if apps.is_empty() {
        return "no apps\n".into();
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_renders_apps_then_their_tasks() {
        let frame = json!({"time": 0, "apps": [{
            "id": "/web", "instances": 2, "tasksRunning": 2, "cpu": 0.123, "memoryBytes": 3_145_728.0,
            "requestsPerSecond": 12.34, "p99Seconds": 0.0215,
            "tasks": [{"id": "web.1", "cpu": 0.1, "memoryBytes": 1024.0, "memoryLimitBytes": 2048.0,
                       "requestsPerSecond": 6.0, "p99Seconds": 0.0183}, {"id": "web.2", "cpu": null, "memoryBytes": null,
                       "memoryLimitBytes": null, "requestsPerSecond": null}]}]});
        assert_eq!(
            render(&frame),
            "APP / TASK  TASKS  CPU%  MEM     MEM%  REQ/S  P99\n\
             /web        2/2    12.3  3.0MiB        12.3   21.5ms\n\
             \x20 web.1            10.0  1.0KiB  50.0  6      18.3ms\n\
             \x20 web.2            -     -       -     -      -\n"
        );
        assert_eq!(render(&json!({"apps": []})), "no apps\n");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512.0), "512B");
        assert_eq!(bytes(1536.0), "1.5KiB");
        assert_eq!(bytes(5.0 * 1024.0 * 1024.0 * 1024.0), "5.0GiB");
    }

    #[test]
    fn vectors_by_app_and_task() {
        let v = json!({"result": [
            {"metric": {"app": "/a", "task": "a.1"}, "value": [0, "0.5"]},
            {"metric": {"task": "orphan"}, "value": [0, "1"]},
            {"metric": {"app": "/b"}, "value": [0, "NaN"]}]});
        let m = by_labels(&v, "task");
        assert_eq!(m.get(&("/a".into(), "a.1".into())), Some(&0.5));
        assert_eq!(m.len(), 2);
        assert!(m[&("/b".into(), String::new())].is_nan());
    }
}
