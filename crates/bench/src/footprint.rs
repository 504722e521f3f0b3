//! The footprint goal of issue 16 as it is written: the server's idle RSS with 100 tasks,
//! ~30 series each, and 24 hours of their data, monitoring on.
//!
//! A day cannot be waited for here, so it is written: the server runs the tasks for two
//! collection rounds (the store learns every series it will keep writing: cAdvisor's,
//! the proxy's, the host's), stops, and the store is rebuilt offline with the same series
//! and `hours` of history at the collector's 10 s interval before the samples it really
//! took. Counters keep rising at the rate they were seen to rise, gauges wander around
//! what was seen, constants stay. The history is flushed and compacted every 30 minutes
//! of its time, as the running server would have done. Then the server starts on that
//! state again (the tasks are re-adopted under the same ids, so the collector goes on
//! writing the same series) and its RSS is read every 10 s while it idles.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use testkit::{get_json, http, kill_tasks_of, wait_for};
use tsdb::{Db, MatchOp, Matcher, Options, Point, Sample, Value};

use crate::tsdb::data::Rng;
use crate::{Server, row, running_tasks};

/// The collector's default interval.
const STEP_MS: i64 = 10_000;
/// Flush and compaction cadence of the written history.
const FLUSH_EVERY_MS: i64 = 30 * 60_000;

/// Runs the scenario and prints its table.
/// `keep`: build the state there and leave it with its tasks running, to look at a
/// server started on it afterwards (`pkill -f 'sleep 100000'` stops them).
pub(crate) fn run(
    bin: &Path,
    tasks: usize,
    hours: u64,
    hold: Duration,
    keep: Option<&Path>,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => tmp.path(),
    };
    let result = scenario(bin, dir, tasks, hours, hold);
    if keep.is_none() {
        kill_tasks_of(dir);
    }
    result
}

fn scenario(
    bin: &Path,
    dir: &Path,
    tasks: usize,
    hours: u64,
    hold: Duration,
) -> anyhow::Result<()> {
    let port = testkit::free_port();
    let bin = bin.to_path_buf();
    let (server, _) = Server::start(&bin, dir, port)?;
    let apps = tasks.div_ceil(2);
    for i in 0..apps {
        let instances = if i * 2 + 1 < tasks { 2 } else { 1 };
        let def = json!({"id": format!("/fp/app-{i:03}"), "cmd": "sleep 100000",
            "instances": instances, "cpus": 0.01, "mem": 8});
        let (status, body) = http("POST", &format!("{}/v2/apps", server.url), Some(&def))?;
        if status != 201 {
            bail!("create failed: {status} {body}");
        }
    }
    let want = tasks as u64;
    wait_for("the tasks running", Duration::from_secs(120), || {
        (running_tasks(&server.url) == want).then_some(())
    })?;
    // Two rounds that see every task.
    std::thread::sleep(Duration::from_secs(25));
    server.stop();

    let t = Instant::now();
    let history = write_history(&dir.join("tsdb"), hours)?;
    eprintln!(
        "wrote {} samples of {} series ({hours} h) in {:.1} s, {:.1} MiB on disk",
        history.samples,
        history.series,
        t.elapsed().as_secs_f64(),
        history.bytes as f64 / (1024.0 * 1024.0)
    );

    let (server, _) = Server::start(&bin, dir, port)?;
    wait_for("the tasks re-adopted", Duration::from_secs(60), || {
        (running_tasks(&server.url) == want).then_some(())
    })?;
    let mut readings = Vec::new();
    let start = Instant::now();
    while start.elapsed() < hold {
        std::thread::sleep(Duration::from_secs(10));
        readings.push(server.rss_kib());
    }
    let after_round = readings.first().copied().unwrap_or(0);
    let last = readings.last().copied().unwrap_or(0);
    let max = readings.iter().copied().max().unwrap_or(0);

    // What a person looking at a day of the apps dashboard makes the server read.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let from = now - hours * 3600;
    let q = format!(
        "{}/api/v1/query_range?query=sum%20by%20(app)%20(rate(container_cpu_usage_seconds_total%5B5m%5D))&start={from}&end={now}&step=300",
        server.url
    );
    let answer = get_json(&q)?;
    let result = answer["data"]["result"]
        .as_array()
        .context("query_range answer")?;
    let first_point = result
        .iter()
        .filter_map(|s| s["values"][0][0].as_f64())
        .fold(f64::INFINITY, f64::min);
    let covered_h = (now as f64 - first_point) / 3600.0;
    let after_query = server.rss_kib();
    server.stop();

    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    println!(
        "| measurement                                      |        value |     target | ok   |"
    );
    println!(
        "|--------------------------------------------------|--------------|------------|------|"
    );
    row("series in the store", history.series.to_string(), "-", true);
    row(
        &format!("history written ({hours} h at 10 s)"),
        format!("{:.1} M samples", history.samples as f64 / 1e6),
        "-",
        true,
    );
    row(
        "idle RSS, first reading (10 s after adoption)",
        mib(after_round),
        "40 MiB",
        after_round <= 40 * 1024,
    );
    row(
        &format!("idle RSS, max over {} s", hold.as_secs()),
        mib(max),
        "40 MiB",
        max <= 40 * 1024,
    );
    row(
        &format!("idle RSS after {} s", hold.as_secs()),
        mib(last),
        "40 MiB",
        last <= 40 * 1024,
    );
    row(
        &format!("RSS after a {hours} h query_range by app"),
        mib(after_query),
        "-",
        true,
    );
    row(
        "  hours that query covered",
        format!("{covered_h:.1} h"),
        "-",
        covered_h >= hours as f64 - 1.0,
    );
    if covered_h < hours as f64 - 1.0 {
        bail!("the written history is not queryable: {covered_h:.1} h of {hours} h");
    }
    Ok(())
}

/// What [`write_history`] wrote.
struct History {
    series: usize,
    samples: u64,
    bytes: u64,
}

/// How a series' history goes, from what the collector took.
enum Shape {
    Constant,
    /// Rises by about this much per step.
    Counter(f64),
    /// Wanders by about this much per step.
    Gauge(f64),
}

fn shape(samples: &[Sample]) -> Shape {
    let vals: Vec<f64> = samples.iter().map(|s| s.v.as_f64()).collect();
    let (Some(first), Some(last)) = (vals.first(), vals.last()) else {
        return Shape::Constant;
    };
    if vals.iter().all(|v| v == first) {
        return Shape::Constant;
    }
    let steps = samples.len().saturating_sub(1).max(1) as f64;
    if vals.windows(2).all(|w| w[1] >= w[0]) {
        return Shape::Counter((last - first) / steps);
    }
    let wander = vals.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / steps;
    Shape::Gauge(wander)
}

fn value_like(like: Value, v: f64) -> Value {
    match like {
        Value::Float(_) => Value::Float(v),
        Value::Int(_) => Value::Int(v.round() as i64),
        Value::Bool(b) => Value::Bool(b),
    }
}

/// Rebuilds the store at `dir` with `hours` of history before every series' samples.
fn write_history(dir: &Path, hours: u64) -> anyhow::Result<History> {
    let (series, metadata) = {
        let db = Db::open(dir, Options::default())?;
        let all = db.select(&[Matcher::new("__name__", MatchOp::Re, ".+")?], 0, i64::MAX)?;
        let meta = db.metadata(None);
        db.close()?;
        (all, meta)
    };
    if series.is_empty() {
        bail!("the collector stored nothing");
    }
    std::fs::remove_dir_all(dir)?;
    let db = Db::open(dir, Options::default())?;
    for (name, m) in metadata {
        db.set_metadata(&name, m)?;
    }
    let earliest = series
        .iter()
        .filter_map(|s| s.samples.first().map(|x| x.t))
        .min()
        .unwrap_or(0);
    let span = i64::try_from(hours)? * 3_600_000;
    let steps = usize::try_from(span / STEP_MS)?;
    // Each series' history, walked back from its first real sample, then played forward;
    // the same on every run.
    let mut rng = Rng(0x5eed);
    let plans: Vec<(tsdb::Labels, Vec<Value>)> = series
        .iter()
        .map(|s| {
            let first = s.samples[0].v;
            let mut v = first.as_f64();
            let shape = shape(&s.samples);
            let mut back = Vec::with_capacity(steps);
            for _ in 0..steps {
                match shape {
                    Shape::Constant => {}
                    Shape::Counter(rate) => v = (v - rate * (0.5 + rng.unit())).max(0.0),
                    Shape::Gauge(w) => {
                        v = (v + w * (rng.unit() * 2.0 - 1.0)).max(0.0);
                    }
                }
                back.push(value_like(first, v));
            }
            back.reverse();
            (db.intern(s.labels.clone()), back)
        })
        .collect();
    let start = earliest - span;
    let mut samples = 0u64;
    let mut batch: Vec<Point> = Vec::with_capacity(plans.len());
    let mut flushed_at = start;
    for step in 0..steps {
        let t = start + step as i64 * STEP_MS;
        batch.clear();
        batch.extend(plans.iter().map(|(labels, vals)| Point {
            labels: labels.clone(),
            t,
            v: vals[step],
        }));
        samples += db.append(&batch)?.into_result()? as u64;
        if t - flushed_at >= FLUSH_EVERY_MS {
            db.flush()?;
            db.compact()?;
            flushed_at = t;
        }
    }
    // The samples the collector really took, after the history.
    for s in &series {
        let points: Vec<Point> = s
            .samples
            .iter()
            .map(|x| Point {
                labels: s.labels.clone(),
                t: x.t,
                v: x.v,
            })
            .collect();
        samples += db.append(&points)?.into_result()? as u64;
    }
    db.flush()?;
    db.compact()?;
    db.close()?;
    let bytes = dir_size(dir);
    Ok(History {
        series: series.len(),
        samples,
        bytes,
    })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
