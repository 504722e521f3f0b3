//! Collection cost: CPU time per container sample over N real cgroups, and per host round.
//!
//! Run as root on a cgroup v1 or v2 machine:
//! `cargo run --release -p metrics --example cost [N] [ROUNDS] [--no-keep-open] [--slow-every-round]`.
//! It creates N cgroups under `slipway-metrics-cost-<pid>/` with limits (0.5 cpu, 256 MiB) and a sleeping
//! process each (in its own network namespace when `unshare` works, so `/proc/PID/net/dev` is read as for a
//! container), collects them ROUNDS times, and removes everything again, also when a step fails.
//! Then it times host collection, and Debian's prometheus-node-exporter on the same collectors if installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metrics::{
    CgroupMounts, CgroupPaths, Desc, Families, Format, HostCollector, Labels, Sink, TaskCollector,
    TaskTarget, encode,
};
use nix::sys::resource::{UsageWho, getrusage};

/// Counts samples without keeping them: the collection cost alone.
struct CountingSink(u64);

impl Sink for CountingSink {
    fn emit(&mut self, _: &'static Desc, _: &Labels, _: &[(&'static str, &str)], _: f64) {
        self.0 += 1;
    }
}

/// The processes and cgroup directories created; removed on drop.
#[derive(Default)]
struct Fixture {
    children: Vec<Child>,
    /// Task directories first, parents last.
    dirs: Vec<PathBuf>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        for d in &self.dirs {
            for _ in 0..100 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
            if d.exists() {
                eprintln!("could not remove {}", d.display());
            }
        }
    }
}

/// CPU time (user, system) of this process, in seconds.
fn cpu_times() -> (f64, f64) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            (t(u.user_time()), t(u.system_time()))
        }
        Err(_) => (f64::NAN, f64::NAN),
    }
}

/// CPU time (user + system) of this process, in seconds.
fn cpu_seconds() -> f64 {
    let (u, s) = cpu_times();
    u + s
}

fn dirs_of(paths: &CgroupPaths) -> Vec<PathBuf> {
    match paths {
        CgroupPaths::V1(d) => {
            let mut out: Vec<PathBuf> = Vec::new();
            for p in [&d.cpu, &d.cpuacct, &d.memory, &d.pids, &d.blkio]
                .into_iter()
                .flatten()
            {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            out
        }
        CgroupPaths::V2(p) => vec![p.clone()],
    }
}

/// CPU seconds (utime + stime) of another process from `/proc/PID/stat`, assuming 100 ticks per second.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Scrapes Debian's prometheus-node-exporter (if installed), limited to the collectors matching ours,
/// `rounds` times and prints its CPU time per scrape.
fn node_exporter(rounds: usize) {
    use std::io::{Read, Write};
    let port = 20000 + (std::process::id() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let Ok(child) = Command::new("prometheus-node-exporter")
        .args([
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.loadavg",
            "--collector.meminfo",
            "--collector.filesystem",
            "--collector.diskstats",
            "--collector.netdev",
            "--collector.stat",
            "--collector.time",
            &format!("--web.listen-address={addr}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        println!("node-exporter: not installed");
        return;
    };
    let mut fx = Fixture {
        children: vec![child],
        dirs: Vec::new(),
    };
    let pid = fx.children[0].id();
    let scrape = || -> Option<usize> {
        let mut s = std::net::TcpStream::connect(&addr).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).ok()?;
        Some(body.len())
    };
    let mut ready = false;
    for _ in 0..100 {
        if scrape().is_some() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !ready {
        println!("node-exporter: did not start");
        return;
    }
    for _ in 0..10 {
        scrape();
    }
    let before = process_cpu_seconds(pid);
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes = scrape().unwrap_or(0);
    }
    if let (Some(a), Some(b)) = (before, process_cpu_seconds(pid)) {
        println!(
            "node-exporter 1.x (same collectors): {:.1} us CPU per scrape ({bytes} bytes); at 1 s = {:.3}% of one core",
            (b - a) / rounds as f64 * 1e6,
            (b - a) / rounds as f64 * 100.0
        );
    }
    fx.children.iter_mut().for_each(|c| {
        let _ = c.kill();
    });
    drop(fx);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let all: Vec<String> = std::env::args().skip(1).collect();
    let no_keep_open = all.iter().any(|a| a == "--no-keep-open");
    let slow_every_round = all.iter().any(|a| a == "--slow-every-round");
    let mut args = all.iter().filter(|a| !a.starts_with("--"));
    let n: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let fd_limit = metrics::raise_fd_limit();
    let mounts = CgroupMounts::detect()?;
    let parent = format!("slipway-metrics-cost-{}", std::process::id());
    let netns = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());

    let mut fx = Fixture::default();
    let parent_dirs = dirs_of(&mounts.paths(&parent));
    for d in &parent_dirs {
        std::fs::create_dir(d)?;
    }
    let mut targets = Vec::with_capacity(n);
    let mut task_dirs = Vec::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        for i in 0..n {
            let rel = format!("{parent}/task-{i}");
            let paths = mounts.paths(&rel);
            for d in dirs_of(&paths) {
                std::fs::create_dir(&d)?;
                task_dirs.push(d);
            }
            // Limits as the launcher writes them (0.5 cpu, 256 MiB), so throttling is read too.
            match &paths {
                CgroupPaths::V1(d) => {
                    if let Some(cpu) = &d.cpu {
                        std::fs::write(cpu.join("cpu.cfs_period_us"), "100000")?;
                        std::fs::write(cpu.join("cpu.cfs_quota_us"), "50000")?;
                    }
                    if let Some(mem) = &d.memory {
                        std::fs::write(mem.join("memory.limit_in_bytes"), "268435456")?;
                    }
                }
                CgroupPaths::V2(d) => {
                    std::fs::write(d.join("cpu.max"), "50000 100000")?;
                    std::fs::write(d.join("memory.max"), "268435456")?;
                }
            }
            let mut cmd = if netns {
                let mut c = Command::new("unshare");
                c.args(["--net", "sleep", "3600"]);
                c
            } else {
                let mut c = Command::new("sleep");
                c.arg("3600");
                c
            };
            let child = cmd.stdin(Stdio::null()).spawn()?;
            let pid = child.id();
            fx.children.push(child);
            for d in dirs_of(&paths) {
                std::fs::write(d.join("cgroup.procs"), pid.to_string())?;
            }
            let labels = vec![
                ("app".to_owned(), "/bench".to_owned()),
                ("task".to_owned(), format!("task-{i}")),
                ("env".to_owned(), "qa".to_owned()),
                ("version".to_owned(), "2026-12-06T07:00:00Z".to_owned()),
                ("id".to_owned(), format!("/{rel}")),
                ("name".to_owned(), format!("bench-{i}")),
                ("image".to_owned(), "registry/bench@sha256:0123".to_owned()),
            ];
            targets.push(TaskTarget::new(labels, paths, Some(pid as i32)));
        }
        // `unshare` execs sleep in place; wait until every task is in its own network namespace.
        if netns {
            let own = std::fs::read_link("/proc/self/ns/net").ok();
            for t in &targets {
                let Some(pid) = t.pid else { continue };
                for _ in 0..200 {
                    if std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() != own {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
        }
        let mut c = TaskCollector::new();
        if no_keep_open {
            c.set_fd_budget(0);
        }
        if slow_every_round {
            c.set_slow_period(0.0);
        }
        println!(
            "keep files open: {}, slow files every round: {slow_every_round}",
            !no_keep_open
        );
        // Warm-up round (device names, page cache of dentries).
        let mut sink = CountingSink(0);
        for t in &mut targets {
            c.collect(t, 0.0, &mut sink);
        }
        let per_round = sink.0 as f64 / n as f64;

        // Five repetitions of ROUNDS rounds; the machine is shared, so report the spread, not one figure.
        let mut reps: Vec<(f64, f64, f64)> = Vec::new();
        let mut now = 0.0;
        let ((u0, s0), wall0) = (cpu_times(), Instant::now());
        for _ in 0..5 {
            let (ua, sa) = cpu_times();
            let mut sink = CountingSink(0);
            for _ in 0..rounds {
                now += 1.0;
                for t in &mut targets {
                    c.collect(t, now, &mut sink);
                }
            }
            let (ub, sb) = cpu_times();
            let per = |x: f64| x / (rounds * n) as f64 * 1e6;
            reps.push((per(ub - ua + sb - sa), per(ub - ua), per(sb - sa)));
        }
        let (u1, s1) = cpu_times();
        let (cpu_collect, wall_collect) = (
            (u1 - u0 + s1 - s0) / 5.0,
            wall0.elapsed().as_secs_f64() / 5.0,
        );
        reps.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!(
            "collect only, 5 repetitions: min {:.1}, median {:.1}, max {:.1} us CPU per container sample",
            reps[0].0, reps[2].0, reps[4].0
        );

        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let mut text = String::new();
        let mut om = String::new();
        for r in 0..rounds {
            let mut f = Families::new();
            f.set_timestamp_ms(Some(r as i64 * 1000));
            for t in &mut targets {
                c.collect(t, r as f64, &mut f);
            }
            text.clear();
            encode(f.families(), Format::Prometheus, &mut text);
            if r == 0 {
                encode(f.families(), Format::OpenMetrics, &mut om);
            }
        }
        let (cpu_full, wall_full) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
        let samples = (rounds * n) as f64;
        let stats = c.stats();
        println!(
            "tasks: {n} ({}, network namespace per task: {netns}), rounds: {rounds}, series per task: {per_round:.1}",
            match mounts {
                CgroupMounts::V1 { .. } => "cgroup v1",
                CgroupMounts::V2 { .. } => "cgroup v2",
            }
        );
        let us = |cpu: f64| cpu / samples * 1e6;
        println!(
            "collect only:            {:6.1} us CPU per container sample (user {:.1}, system {:.1}; {:5.1} us wall); 200 tasks at 1 s = {:.2}% of one core",
            us(cpu_collect),
            us((u1 - u0) / 5.0),
            us((s1 - s0) / 5.0),
            wall_collect / samples * 1e6,
            us(cpu_collect) * 200.0 / 1e6 * 100.0
        );
        println!(
            "collect + families + 0.0.4 text: {:6.1} us CPU per container sample ({:5.1} us wall); 200 tasks at 1 s = {:.2}% of one core; {} bytes of text per round",
            us(cpu_full),
            wall_full / samples * 1e6,
            us(cpu_full) * 200.0 / 1e6 * 100.0,
            text.len()
        );
        println!(
            "collector stats: files read {}, missing {}, I/O errors {}, parse errors {}; files kept open {} (fd limit {fd_limit:?})",
            stats.files_read,
            stats.missing,
            stats.io_errors,
            stats.parse_errors,
            c.open_files()
        );

        let mut h = HostCollector::new();
        let mut sink = CountingSink(0);
        h.collect(0.0, &mut sink);
        let host_series = sink.0;
        let host_rounds = rounds * 20;
        let cpu0 = cpu_seconds();
        for r in 0..host_rounds {
            h.collect(r as f64, &mut sink);
        }
        let host_cpu = (cpu_seconds() - cpu0) / host_rounds as f64 * 1e6;
        let cpu0 = cpu_seconds();
        let mut text = String::new();
        for r in 0..host_rounds {
            let mut f = Families::new();
            h.collect(r as f64, &mut f);
            text.clear();
            encode(f.families(), Format::Prometheus, &mut text);
        }
        let host_full = (cpu_seconds() - cpu0) / host_rounds as f64 * 1e6;
        println!(
            "host: {host_series} series per round, {host_cpu:.1} us CPU per round ({host_full:.1} us with families + 0.0.4 text); at 1 s = {:.3}% of one core",
            host_full / 1e6 * 100.0
        );
        node_exporter(host_rounds);
        Ok(())
    })();
    fx.dirs.extend(task_dirs);
    fx.dirs.extend(parent_dirs);
    drop(fx);
    result
}
