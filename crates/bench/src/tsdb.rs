//! `slipway-bench tsdb`: Slipway's embedded time-series store side by side with
//! VictoriaMetrics and InfluxDB 1.6 (Debian's packages), in one run, on the same
//! cAdvisor-shaped line protocol (issue 16's benchmarks):
//!
//! - ingest: the same batches (10,000 lines, one value each) through each store's
//!   InfluxDB `/write` endpoint by 4 concurrent keep-alive clients; values per second and
//!   the server's CPU time;
//! - size: bytes per sample on disk once each store has put everything into its
//!   compacted files (VictoriaMetrics: `/internal/force_flush` and `force_merge`;
//!   InfluxDB: its cache snapshot and cold full compaction; Slipway: `flush_all` and
//!   `compact_full`, what its periodic maintenance does), for random walks and for
//!   collector-shaped counters and gauges;
//! - query: `query_range` over 1 h × 100 series at a 10 s step (a selector, a `rate()`,
//!   a `sum by`) against Slipway's and VictoriaMetrics' Prometheus APIs, caches off,
//!   alternating request by request, right after ingest and again after compaction.
//!
//! Every server listens on 127.0.0.1 on ports picked here, in a temporary directory, and
//! is killed when its guard drops, on errors and panics too.

mod client;
pub(crate) mod data;
mod servers;

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::{Conn, encode};
use data::{Dataset, Kind, Spec};
use servers::{DiskUse, Influx, Slipway, Vm, cpu_time};

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    series: usize,
    values: usize,
    batch_lines: usize,
    clients: usize,
    reps: usize,
}

impl Shape {
    /// Issue 16's: 2,000 series, 1M values, batches of 10,000, 4 clients.
    pub(crate) const FULL: Shape = Shape {
        series: 2_000,
        values: 1_000_000,
        batch_lines: 10_000,
        clients: 4,
        reps: 100,
    };
    /// A smoke run: everything once, small.
    pub(crate) const QUICK: Shape = Shape {
        series: 200,
        values: 20_000,
        batch_lines: 1_000,
        clients: 4,
        reps: 5,
    };
}

/// The queries, over the 100 series of `machine="host-0"` (10 in a quick run).
const QUERIES: [(&str, &str); 3] = [
    ("selector", r#"cpu_usage_total_value{machine="host-0"}"#),
    (
        "rate",
        r#"rate(cpu_usage_total_value{machine="host-0"}[5m])"#,
    ),
    (
        "sum by",
        r#"sum by (app) (rate(cpu_usage_total_value{machine="host-0"}[5m]))"#,
    ),
];

/// Unmeasured query rounds before the measured ones.
const WARMUP: usize = 3;

/// One store's ingest of one dataset.
#[derive(Clone, Copy, Debug, Default)]
struct Ingest {
    wall: Duration,
    cpu: Duration,
    /// Values the store holds afterwards, by its own query language.
    stored: u64,
}

impl Ingest {
    fn rate(&self, values: usize) -> f64 {
        values as f64 / self.wall.as_secs_f64()
    }
}

/// Everything measured on one dataset.
struct Outcome {
    kind: Kind,
    values: usize,
    bytes: usize,
    ingest: [Ingest; 3],
    slipway_disk: DiskUse,
    slipway_stats: ::tsdb::Stats,
    vm_disk: DiskUse,
    influx_disk: DiskUse,
    influx_tsm_files: u64,
    /// Per state (as ingested, compacted), per query: Slipway's and VM's latencies.
    queries: Vec<(&'static str, Vec<[Vec<Duration>; 2]>)>,
}

const STORES: [&str; 3] = ["Slipway", "VictoriaMetrics", "InfluxDB"];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The binary at `path`, installing the Debian package `package` if it is missing.
fn ensure(package: &str, path: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(path);
    if !path.exists() {
        eprintln!("installing {package} (Debian package)");
        let ok = std::process::Command::new("sh")
            .args(["-c", &format!("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {package}")])
            .status()?
            .success();
        if !ok || !path.exists() {
            bail!("cannot install {package} ({} is missing)", path.display());
        }
    }
    Ok(path)
}

fn package_version(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// Sends every client's batches to `path` on `addr` from its own thread and connection,
/// all starting together; every answer must be 204.
fn ingest(
    addr: &str,
    token: Option<&str>,
    path: &str,
    pid: u32,
    data: &Dataset,
) -> anyhow::Result<Ingest> {
    let start = Arc::new(Barrier::new(data.batches.len() + 1));
    let cpu0 = cpu_time(pid);
    let (wall, results) = std::thread::scope(|s| {
        let handles: Vec<_> = data
            .batches
            .iter()
            .map(|batches| {
                let start = start.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let mut conn = Conn::new(addr, token);
                    start.wait();
                    for b in batches {
                        let (status, body) = conn.post(path, b)?;
                        if status != 204 {
                            bail!(
                                "POST {path}: {status} {}",
                                String::from_utf8_lossy(&body[..body.len().min(500)])
                            );
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
            })
            .collect();
        (t.elapsed(), results)
    });
    for r in results {
        r?;
    }
    Ok(Ingest {
        wall,
        cpu: cpu_time(pid).saturating_sub(cpu0),
        stored: 0,
    })
}

/// `sum(count_over_time({db="bench"}[2h]))` just after the last round (whose timestamps
/// may be a few ms late), by PromQL.
fn promql_count(conn: &mut Conn, last_ms: i64) -> anyhow::Result<u64> {
    let q = encode(r#"sum(count_over_time({db="bench"}[2h]))"#);
    let path = format!("/api/v1/query?query={q}&time={}", seconds(last_ms + 1_000));
    let (status, body) = conn.get(&path)?;
    let v: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{status} {}", String::from_utf8_lossy(&body)))?;
    if status != 200 {
        bail!("count query: {status} {v}");
    }
    Ok(v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}

/// `SELECT count(value) FROM /.*/` summed over the measurements, by InfluxQL.
fn influx_count(conn: &mut Conn) -> anyhow::Result<u64> {
    let q = encode("SELECT count(value) FROM /.*/");
    let (status, body) = conn.get(&format!("/query?db=bench&q={q}"))?;
    let v: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{status} {}", String::from_utf8_lossy(&body)))?;
    Ok(v["results"][0]["series"]
        .as_array()
        .map(|all| all.iter().filter_map(|s| s["values"][0][1].as_u64()).sum())
        .unwrap_or(0))
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// `reps` rounds (after [`WARMUP`]) of every query against Slipway and VictoriaMetrics,
/// alternating which goes first; the series counts of both answers must agree.
fn query_round(
    slipway: &mut Conn,
    vm: &mut Conn,
    data: &Dataset,
    reps: usize,
) -> anyhow::Result<Vec<[Vec<Duration>; 2]>> {
    let end = data.spec.last_ms;
    let start = end - 3_600_000;
    let mut out: Vec<[Vec<Duration>; 2]> = QUERIES.iter().map(|_| [vec![], vec![]]).collect();
    for rep in 0..WARMUP + reps {
        for (qi, (name, q)) in QUERIES.iter().enumerate() {
            let path = format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=10",
                encode(q),
                seconds(start),
                seconds(end)
            );
            let mut series = [0usize; 2];
            for k in 0..2 {
                let which = (k + rep) % 2;
                let conn = if which == 0 { &mut *slipway } else { &mut *vm };
                let t = Instant::now();
                let (status, body) = conn.get(&path)?;
                let took = t.elapsed();
                if status != 200 {
                    bail!(
                        "{} {name}: {status} {}",
                        STORES[which],
                        String::from_utf8_lossy(&body[..body.len().min(500)])
                    );
                }
                if rep == 0 {
                    let v: Value = serde_json::from_slice(&body)?;
                    series[which] = v["data"]["result"].as_array().map_or(0, Vec::len);
                }
                if rep >= WARMUP {
                    out[qi][which].push(took);
                }
            }
            if rep == 0 && (series[0] != series[1] || series[0] == 0) {
                bail!(
                    "{name}: Slipway answered {} series, VictoriaMetrics {}",
                    series[0],
                    series[1]
                );
            }
        }
    }
    for q in &mut out {
        q[0].sort();
        q[1].sort();
    }
    Ok(out)
}

/// Nearest-rank percentile of sorted durations, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct Bins {
    slipway: PathBuf,
    vm: PathBuf,
    influx: PathBuf,
}

/// Ingests `data` into fresh servers of all three stores, checks what they hold,
/// queries (when `reps > 0`), compacts and measures their files.
fn run_dataset(bins: &Bins, data: &Dataset, reps: usize) -> anyhow::Result<Outcome> {
    let mut slipway = Slipway::start(&bins.slipway)?;
    let vm = Vm::start(&bins.vm)?;
    let influx = Influx::start(&bins.influx)?;
    let token = Some(testkit::ADMIN_TOKEN);
    eprintln!("  Slipway …");
    let mut ingest_sw = ingest(
        &slipway.addr,
        token,
        "/write?db=bench&precision=ns",
        slipway.pid(),
        data,
    )?;
    eprintln!("  VictoriaMetrics …");
    let mut ingest_vm = ingest(
        &vm.addr,
        None,
        "/write?db=bench&precision=ns",
        vm.guard.pid(),
        data,
    )?;
    eprintln!("  InfluxDB …");
    let mut ingest_in = ingest(
        &influx.addr,
        None,
        "/write?db=bench&precision=ns",
        influx.guard.pid(),
        data,
    )?;
    let mut sw_conn = Conn::new(&slipway.addr, token);
    let mut vm_conn = Conn::new(&vm.addr, None);
    // VictoriaMetrics makes what it buffered searchable within a second; do it now.
    vm_conn.get("/internal/force_flush")?;
    ingest_sw.stored = promql_count(&mut sw_conn, data.spec.last_ms)?;
    // Once (1M counters and gauges, 2026-12-07) it answered half the values right after
    // the flush: count again for up to 10 s until it has them all or stops changing.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = ingest_vm.stored;
        ingest_vm.stored = promql_count(&mut vm_conn, data.spec.last_ms)?;
        let settled = ingest_vm.stored == before && before > 0;
        if ingest_vm.stored >= data.values as u64 || settled || std::time::Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    ingest_in.stored = influx_count(&mut Conn::new(&influx.addr, None))?;
    let mut queries = Vec::new();
    if reps > 0 {
        eprintln!("  queries, as ingested …");
        queries.push((
            "as ingested",
            query_round(&mut sw_conn, &mut vm_conn, data, reps)?,
        ));
    }
    eprintln!("  compaction …");
    let (slipway_disk, slipway_stats) = slipway.compact()?;
    let vm_disk = vm.compact()?;
    let (influx_disk, influx_tsm_files) = influx.compact()?;
    if reps > 0 {
        eprintln!("  queries, compacted …");
        let mut sw_conn = Conn::new(&slipway.addr, token);
        queries.push((
            "compacted",
            query_round(&mut sw_conn, &mut vm_conn, data, reps)?,
        ));
    }
    Ok(Outcome {
        kind: data.spec.kind,
        values: data.values,
        bytes: data.bytes,
        ingest: [ingest_sw, ingest_vm, ingest_in],
        slipway_disk,
        slipway_stats,
        vm_disk,
        influx_disk,
        influx_tsm_files,
        queries,
    })
}

/// The benchmark: every dataset, then the tables.
pub(crate) fn side_by_side(
    slipway: &Path,
    shape: Shape,
    reps: Option<usize>,
) -> anyhow::Result<()> {
    if !slipway.exists() {
        bail!(
            "{} is missing (cargo build --release -p slipway, or --slipway PATH)",
            slipway.display()
        );
    }
    let bins = Bins {
        slipway: slipway.to_path_buf(),
        vm: ensure("victoria-metrics", "/usr/bin/victoria-metrics")?,
        influx: ensure("influxdb", "/usr/bin/influxd")?,
    };
    let reps = reps.unwrap_or(shape.reps);
    let load_before = loadavg();
    let t0 = Instant::now();
    // The data ends a minute ago, so that no store hides it as too recent.
    let last_ms = (now_ms() - 60_000) / 1000 * 1000;
    let mut outcomes = Vec::new();
    for kind in [Kind::Walk2, Kind::WalkFull, Kind::CountersGauges] {
        let data = data::generate(Spec {
            kind,
            series: shape.series,
            values: shape.values,
            batch_lines: shape.batch_lines,
            clients: shape.clients,
            last_ms,
            span_ms: 3_600_000,
        });
        eprintln!(
            "{}: {} values, {} series, {} requests of {} lines, every {} ms …",
            kind.title(),
            data.values,
            shape.series,
            data.batches.iter().map(Vec::len).sum::<usize>(),
            shape.batch_lines,
            data.interval_ms
        );
        let q = if kind == Kind::Walk2 { reps } else { 0 };
        outcomes.push(run_dataset(&bins, &data, q)?);
    }
    let versions = [
        "slipway (this tree)".to_string(),
        format!("victoria-metrics {}", package_version("victoria-metrics")),
        format!("influxdb {}", package_version("influxdb")),
    ];
    print_report(&outcomes, shape, reps, &versions);
    println!(
        "\nload average before: {load_before}; after: {}; whole run {:.0} s",
        loadavg(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn mvals(v: f64) -> String {
    format!("{:.2} M", v / 1e6)
}

fn print_report(outcomes: &[Outcome], shape: Shape, reps: usize, versions: &[String; 3]) {
    println!("\nStores: {}.", versions.join(", "));
    println!(
        "{} series, {} values per dataset, batches of {} lines, {} concurrent clients.\n",
        shape.series, shape.values, shape.batch_lines, shape.clients
    );
    println!("| data | store | values/s | wall | server CPU | CPU µs/value | values stored |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for o in outcomes {
        for (i, ing) in o.ingest.iter().enumerate() {
            let ok = if ing.stored == o.values as u64 {
                format!("{}", ing.stored)
            } else {
                format!("**{} of {}**", ing.stored, o.values)
            };
            println!(
                "| {} | {} | {} | {:.2} s | {:.2} s | {:.2} | {ok} |",
                o.kind.title(),
                STORES[i],
                mvals(ing.rate(o.values)),
                ing.wall.as_secs_f64(),
                ing.cpu.as_secs_f64(),
                ing.cpu.as_secs_f64() * 1e6 / o.values as f64,
            );
        }
    }
    println!("\n| data | Slipway / VictoriaMetrics (values/s) | Slipway / InfluxDB (values/s) |");
    println!("|---|---:|---:|");
    for o in outcomes {
        let r = |i: usize| o.ingest[0].rate(o.values) / o.ingest[i].rate(o.values);
        println!("| {} | {:.2}× | {:.2}× |", o.kind.title(), r(1), r(2));
    }

    println!(
        "\nBytes per sample on disk after compaction (allocated blocks, as `du`; file lengths in parentheses):\n"
    );
    println!(
        "| data | line protocol | Slipway, all files | Slipway, raw segments | VictoriaMetrics | InfluxDB | Slipway (all) / VM |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let s = &o.slipway_stats;
        let sw_samples = s.raw_samples_on_disk.max(1) as f64;
        let per = |d: &DiskUse, n: f64| {
            format!(
                "{:.2} ({:.2})",
                d.allocated as f64 / n,
                d.apparent as f64 / n
            )
        };
        let sw_all = o.slipway_disk.allocated as f64 / sw_samples;
        let vm = o.vm_disk.allocated as f64 / o.values as f64;
        println!(
            "| {} | {:.1} | {} | {:.2} | {} | {} | {:.2}× |",
            o.kind.title(),
            o.bytes as f64 / o.values as f64,
            per(&o.slipway_disk, sw_samples),
            s.raw_bytes_on_disk as f64 / sw_samples,
            per(&o.vm_disk, o.values as f64),
            per(&o.influx_disk, o.values as f64),
            sw_all / vm,
        );
    }
    for o in outcomes {
        let s = &o.slipway_stats;
        println!(
            "\n{}: Slipway {} samples in {} segments ({} files, raw {} B, rollups {} B, WAL and checkpoint {} B); VictoriaMetrics {} files; InfluxDB {} files ({} TSM).",
            o.kind.title(),
            s.raw_samples_on_disk,
            s.segments,
            o.slipway_disk.files,
            s.raw_bytes_on_disk,
            s.rollup_bytes_on_disk,
            s.wal_bytes,
            o.vm_disk.files,
            o.influx_disk.files,
            o.influx_tsm_files,
        );
    }

    for o in outcomes.iter().filter(|o| !o.queries.is_empty()) {
        println!(
            "\n`query_range`, 1 h at a 10 s step over {} series, {reps} alternating runs after {WARMUP} unmeasured ({}):\n",
            shape.series / 20,
            o.kind.title()
        );
        println!(
            "| query | state | Slipway p50 / p99 | VictoriaMetrics p50 / p99 | Slipway / VM (p50) |"
        );
        println!("|---|---|---:|---:|---:|");
        for (state, per_query) in &o.queries {
            for ((name, _), [sw, vm]) in QUERIES.iter().zip(per_query) {
                println!(
                    "| {name} | {state} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2}× |",
                    pct(sw, 0.5),
                    pct(sw, 0.99),
                    pct(vm, 0.5),
                    pct(vm, 0.99),
                    pct(sw, 0.5) / pct(vm, 0.5)
                );
            }
        }
        println!("\nQueries:");
        for (name, q) in QUERIES {
            println!("- {name}: `{q}`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 0.5), 50.0);
        assert_eq!(pct(&v, 0.99), 99.0);
        assert_eq!(pct(&v[..1], 0.99), 1.0);
        assert_eq!(seconds(1_700_000_000_005), "1700000000.005");
        assert_eq!(encode(r#"a{b="c"}[5m]"#), "a%7Bb%3D%22c%22%7D%5B5m%5D");
    }

    /// The whole benchmark at smoke size, when the three stores are at hand: a debug
    /// `slipway` built by this workspace and Debian's VictoriaMetrics and InfluxDB.
    #[test]
    fn quick_run_measures_all_three_stores() {
        let slipway = testkit::target_dir().join("slipway");
        let peers = ["/usr/bin/victoria-metrics", "/usr/bin/influxd"];
        if !slipway.exists() || peers.iter().any(|p| !Path::new(p).exists()) {
            eprintln!("skipping: needs {} and {peers:?}", slipway.display());
            return;
        }
        side_by_side(&slipway, Shape::QUICK, Some(2)).expect("quick run");
    }
}
