//! Slipway's benchmarks. Each scenario starts real servers and processes on loopback,
//! prints its figures next to the targets, and cleans up after itself.
//!
//!   cargo build --release -p slipway -p testkit -p bench
//!   target/release/slipway-bench control-plane
//!   target/release/slipway-bench rolling-vs-swarm
//!   target/release/slipway-bench proxy-vs-haproxy
//!   target/release/slipway-bench pipeline-vs-shell
//!   target/release/slipway-bench pipeline-trigger
//!   target/release/slipway-bench autoscale
//!   target/release/slipway-bench console [--apps 1000 --runs 10000]
//!   target/release/slipway-bench tsdb [--quick]
//!   target/release/slipway-bench footprint [--tasks 100 --hours 24]
//!   target/release/slipway-bench store-writes [--threads 8 --writes 4000]
//!   target/release/slipway-bench load --addr 127.0.0.1:PORT --rate 300 --seconds 10

mod autoscale;
mod console;
mod footprint;
mod haproxy;
mod steps;
mod swarm;
mod swarm_target;
mod tsdb;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{get_json, http, http_get, kill_tasks_of, wait_for};

#[derive(Parser)]
#[command(about = "Slipway benchmarks (see docs/perf.md)")]
struct Args {
    /// The slipway binary to measure.
    #[arg(long, default_value = "target/release/slipway")]
    slipway: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Idle RSS and start time with 100 apps / 300 tasks; GET /v2/apps?embed=apps.tasks with 1,000 apps.
    ControlPlane {
        /// Requests for the latency measurement.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// wrk through Slipway's edge proxy and through HAProxy 2.6, same two backends.
    ProxyVsHaproxy {
        /// Alternating runs of each (medians are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Idle RSS with monitoring on, as issue 16 states its goal: `tasks` tasks (~30 series
    /// each, plus the proxy's and the host's) and `hours` of their data, written before the
    /// server starts on it (~1 min per day of history).
    Footprint {
        /// Tasks (`sleep`, two per app).
        #[arg(long, default_value_t = 100)]
        tasks: usize,
        /// Hours of history at the collector's 10 s interval.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=24 * 15))]
        hours: u64,
        /// Seconds the restarted server idles while its RSS is read every 10 s.
        #[arg(long, default_value_t = 120)]
        hold_seconds: u64,
        /// Build the state in this directory and keep it, tasks running.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// The SQLite store's writes (a task record each) from concurrent threads, with group
    /// commit off and on, alternating.
    StoreWrites {
        /// Writing threads.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Writes in all, per run.
        #[arg(long, default_value_t = 4000)]
        writes: usize,
        /// Runs of each (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Constant-rate HTTP load with counts of every outcome (2xx, other, errors).
    Load {
        /// Target host:port.
        #[arg(long)]
        addr: String,
        /// Request path.
        #[arg(long, default_value = "/")]
        path: String,
        /// Requests per second.
        #[arg(long, default_value_t = 300)]
        rate: u32,
        /// Seconds to run (bounded).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// Pipeline executor against a plain shell script: per-step overhead, time to first step.
    PipelineVsShell {
        /// Sequential steps (and commands in the script).
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Alternating runs of each (medians are reported).
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// Time from starting a pipeline run through the API to its first step's command.
    PipelineTrigger {
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 11)]
        runs: usize,
    },
    /// The autoscaler's default policy against the `hpa` preset on the same trace (two servers
    /// at once): repeated 1× → 3× steps, the drop back to 1× until the scale-down, then steady
    /// noisy load near the target.
    Autoscale {
        /// 1× → 3× steps (step → decision p50/p95 are over these).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Seconds of steady noisy load near the target at the end.
        #[arg(long, default_value_t = 600)]
        steady_seconds: u64,
        /// The latency objective the "seconds over the SLO" count uses, ms.
        #[arg(long, default_value_t = 250)]
        slo_ms: u64,
        /// Also draw the trace (load and instances over time, both policies) as an SVG here.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Rolling upgrade of 3 container replicas: Slipway against Docker Swarm, side by side.
    RollingVsSwarm {
        /// Alternating runs of each (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Rolling upgrade of 4 replicas on a two-node Swarm built here: through Slipway's
    /// Swarm target against plain `docker service update` with the same settings (root).
    SwarmTarget {
        /// Alternating runs of each (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Server time of every web console page with 1,000 apps and 10,000 runs (≤ 50 ms).
    Console {
        /// Apps created.
        #[arg(long, default_value_t = 1000)]
        apps: usize,
        /// Finished runs written into the store before the server starts.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Requests per page.
        #[arg(long, default_value_t = 50)]
        reps: usize,
    },
    /// The embedded time-series store against VictoriaMetrics and InfluxDB 1.6, side by
    /// side: ingest of the same line protocol, bytes per sample, PromQL query_range.
    Tsdb {
        /// A small smoke-size run (200 series, 20,000 values).
        #[arg(long)]
        quick: bool,
        /// Measured repetitions of each query (default 100, 5 with --quick).
        #[arg(long)]
        reps: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.scenario {
        Scenario::ControlPlane { requests } => control_plane(&args.slipway, requests),
        Scenario::Footprint {
            tasks,
            hours,
            hold_seconds,
            keep,
        } => footprint::run(
            &args.slipway,
            tasks,
            hours,
            Duration::from_secs(hold_seconds),
            keep.as_deref(),
        ),
        Scenario::StoreWrites {
            threads,
            writes,
            runs,
        } => store_writes(threads, writes, runs),
        Scenario::PipelineVsShell { steps, runs } => steps::pipeline_vs_shell(steps, runs),
        Scenario::PipelineTrigger { runs } => steps::trigger_to_first_step(&args.slipway, runs),
        Scenario::RollingVsSwarm { runs } => swarm::rolling_vs_swarm(&args.slipway, runs),
        Scenario::SwarmTarget { runs } => swarm_target::swarm_target(&args.slipway, runs),
        Scenario::Autoscale {
            steps,
            steady_seconds,
            slo_ms,
            chart,
        } => autoscale::default_vs_hpa(
            &args.slipway,
            autoscale::Trace {
                steps,
                steady_s: steady_seconds,
                slo: std::time::Duration::from_millis(slo_ms),
            },
            chart.as_deref(),
        ),
        Scenario::Console { apps, runs, reps } => console::pages(&args.slipway, apps, runs, reps),
        Scenario::Tsdb { quick, reps } => {
            let shape = if quick {
                tsdb::Shape::QUICK
            } else {
                tsdb::Shape::FULL
            };
            tsdb::side_by_side(&args.slipway, shape, reps)
        }
        Scenario::ProxyVsHaproxy { runs, seconds } => {
            haproxy::proxy_vs_haproxy(&args.slipway, runs, seconds)
        }
        Scenario::Load {
            addr,
            path,
            rate,
            seconds,
        } => {
            let report = testkit::load::spawn_load(testkit::load::LoadSpec {
                host: addr.clone(),
                addr,
                path,
                rate,
                duration: Duration::from_secs(seconds),
                max_connections: 256,
                timeout: Duration::from_secs(10),
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))?;
            println!("{report}");
            if report.non_2xx + report.errors > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// A server child process with precise start timing.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(
        bin: &PathBuf,
        dir: &std::path::Path,
        port: u16,
    ) -> anyhow::Result<(Server, Duration)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let t0 = Instant::now();
        let child = Command::new(bin)
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .env("SLIPWAY_LOG", "warn")
            .env("SLIPWAY_ADMIN_TOKEN", testkit::ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        loop {
            if matches!(http_get(&format!("{url}/ping")), Ok((200, _))) {
                return Ok((Server { child, url }, t0.elapsed()));
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("server did not start");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn running_tasks(url: &str) -> u64 {
    get_json(&format!("{url}/v2/apps"))
        .ok()
        .and_then(|v| {
            v["apps"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["tasksRunning"].as_u64()).sum())
        })
        .unwrap_or(0)
}

fn row(what: &str, value: String, target: &str, ok: bool) {
    println!(
        "| {what:<48} | {value:>12} | {target:>10} | {:<4} |",
        if ok { "met" } else { "MISS" }
    );
}

/// Writes per second and commits per write of `writes` task records from `threads`
/// threads on a fresh database file, group commit off against on.
fn store_writes(threads: usize, writes: usize, runs: usize) -> anyhow::Result<()> {
    let one = |group: bool| -> anyhow::Result<(f64, f64)> {
        let dir = tempfile::tempdir()?;
        let store = std::sync::Arc::new(store::Store::open(&dir.path().join("db"))?);
        store.set_group_commit(group);
        let app = model::PathId::parse("/bench/app");
        let body = json!({"id": "x", "pad": "p".repeat(800)});
        let per = writes.div_ceil(threads.max(1));
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (store, app, body) = (&store, &app, &body);
                s.spawn(move || {
                    for i in 0..per {
                        // 300 tasks, rewritten over and over, as state changes do.
                        let id = format!("task-{}", (th * per + i) % 300);
                        let _ = store.write(|tx| tx.put_task(&id, app, body));
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let n = (per * threads) as f64;
        Ok((n / secs, store.commits() as f64 / n))
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(one(false)?);
        on.push(one(true)?);
    }
    let median = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut off), median(&mut on));
    println!("| {threads} threads, {writes} writes | writes/s | commits per write |");
    println!("|---|---:|---:|");
    println!("| one commit per write | {:.0} | {:.2} |", off.0, off.1);
    println!("| group commit | {:.0} | {:.2} |", on.0, on.1);
    println!("| ratio | {:.2}× | |", on.0 / off.0);
    Ok(())
}

fn control_plane(bin: &PathBuf, requests: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = testkit::free_port();
    let result = (|| -> anyhow::Result<()> {
        let (server, cold_start) = Server::start(bin, dir.path(), port)?;
        let t = Instant::now();
        for i in 0..100 {
            let def = json!({"id": format!("/bench/app-{i:03}"), "cmd": "sleep 100000", "instances": 3, "cpus": 0.01, "mem": 8});
            let (status, body) = http("POST", &format!("{}/v2/apps", server.url), Some(&def))?;
            if status != 201 {
                bail!("create failed: {status} {body}");
            }
        }
        let create = t.elapsed();
        wait_for("300 running tasks", Duration::from_secs(120), || {
            (running_tasks(&server.url) == 300).then_some(())
        })?;
        let converge = t.elapsed();
        std::thread::sleep(Duration::from_secs(5));
        let rss_idle = server.rss_kib();
        server.stop();

        // Restart on the same state: recovery re-adopts 300 running tasks.
        let (server, warm_start) = Server::start(bin, dir.path(), port)?;
        let t = Instant::now();
        wait_for("300 adopted tasks", Duration::from_secs(60), || {
            (running_tasks(&server.url) == 300).then_some(())
        })?;
        let adopted = warm_start + t.elapsed();
        std::thread::sleep(Duration::from_secs(3));
        let rss_restart = server.rss_kib();

        for i in 100..1000 {
            let def =
                json!({"id": format!("/bench/app-{i:03}"), "cmd": "sleep 100000", "instances": 0});
            let (status, body) = http("POST", &format!("{}/v2/apps", server.url), Some(&def))?;
            if status != 201 {
                bail!("create failed: {status} {body}");
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let url = format!("{}/v2/apps?embed=apps.tasks", server.url);
        let mut lat = Vec::with_capacity(requests);
        let mut size = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let (status, body) = http_get(&url)?;
            lat.push(t.elapsed());
            if status != 200 {
                bail!("list failed: {status}");
            }
            size = body.len();
        }
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
        let rss_1000 = server.rss_kib();
        server.stop();

        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        println!(
            "| measurement                                      |        value |     target | ok   |"
        );
        println!(
            "|--------------------------------------------------|--------------|------------|------|"
        );
        row(
            "start to /ping, empty data dir",
            ms(cold_start),
            "200 ms",
            cold_start <= Duration::from_millis(200),
        );
        row(
            "start to /ping, 100 apps / 300 running tasks",
            ms(warm_start),
            "200 ms",
            warm_start <= Duration::from_millis(200),
        );
        row("start to all 300 tasks re-adopted", ms(adopted), "-", true);
        row(
            "idle RSS, 100 apps / 300 tasks",
            mib(rss_idle),
            "40 MiB",
            rss_idle <= 40 * 1024,
        );
        row(
            "idle RSS after restart (re-adopted)",
            mib(rss_restart),
            "40 MiB",
            rss_restart <= 40 * 1024,
        );
        row(
            "RSS with 1,000 apps after the latency run",
            mib(rss_1000),
            "-",
            true,
        );
        row("POST 100 apps (3 instances each)", ms(create), "-", true);
        row("100 apps to 300 running tasks", ms(converge), "-", true);
        let p50 = pct(0.5);
        let p99 = pct(0.99);
        row(
            "GET /v2/apps?embed=apps.tasks, 1,000 apps, p50",
            ms(p50),
            "20 ms",
            p50 <= Duration::from_millis(20),
        );
        row(
            "GET /v2/apps?embed=apps.tasks, 1,000 apps, p99",
            ms(p99),
            "20 ms",
            p99 <= Duration::from_millis(20),
        );
        row(
            "  response size",
            format!("{:.0} KiB", size as f64 / 1024.0),
            "-",
            true,
        );
        Ok(())
    })();
    kill_tasks_of(dir.path());
    result
}
