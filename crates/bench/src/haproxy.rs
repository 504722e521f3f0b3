//! Throughput and latency of Slipway's edge proxy against HAProxy 2.6 configured the same
//! way, with `wrk`, in alternating runs: the same two backends, keep-alive, round robin.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::{get_json, http, http_get, wait_for};

/// wrk's summary of one run.
#[derive(Clone, Copy, Debug)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
}

fn ensure_tools() -> anyhow::Result<()> {
    let missing = ["wrk", "haproxy"].iter().any(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| !o.status.success())
    });
    if missing {
        eprintln!("installing wrk and haproxy (Debian packages)");
        let ok = Command::new("sh")
            .args(["-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk haproxy"])
            .status()?
            .success();
        if !ok {
            bail!("cannot install wrk and haproxy");
        }
    }
    Ok(())
}

/// Parses `Requests/sec:` and the 99% latency line of `wrk --latency`.
fn parse_wrk(out: &str) -> anyhow::Result<Wrk> {
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Requests/sec in wrk output")?;
    let p99 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .context("no 99% line in wrk output")?;
    let p99_ms = if let Some(us) = p99.strip_suffix("us") {
        us.parse::<f64>()? / 1000.0
    } else if let Some(ms) = p99.strip_suffix("ms") {
        ms.parse::<f64>()?
    } else if let Some(s) = p99.strip_suffix('s') {
        s.parse::<f64>()? * 1000.0
    } else {
        bail!("unknown latency unit in {p99:?}")
    };
    let errors = out
        .lines()
        .any(|l| l.contains("Socket errors") || l.contains("Non-2xx"));
    if errors {
        eprintln!("wrk reported errors:\n{out}");
    }
    Ok(Wrk { rps, p99_ms })
}

fn wrk(port: u16, secs: u64) -> anyhow::Result<Wrk> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            &format!("-d{secs}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .context("cannot run wrk")?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// User plus system CPU of a process so far, in clock ticks (`/proc/PID/stat` 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .collect::<Vec<_>>();
            // Field 14 is rest[11], field 15 rest[12].
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU microseconds per request of a run (clock ticks are 10 ms here: `getconf CLK_TCK`).
fn cpu_us_per_request(before: u64, after: u64, rps: f64, secs: u64) -> f64 {
    after.saturating_sub(before) as f64 * 10_000.0 / (rps * secs as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The benchmark.
pub(crate) fn proxy_vs_haproxy(bin: &Path, runs: usize, secs: u64) -> anyhow::Result<()> {
    ensure_tools()?;
    let testsrv = bin
        .parent()
        .context("no binary dir")?
        .join("slipway-testsrv");
    if !testsrv.exists() {
        bail!(
            "{} is missing: cargo build --release -p testkit",
            testsrv.display()
        );
    }
    // Tasks run in their sandbox: the command needs an absolute path.
    let testsrv = std::fs::canonicalize(&testsrv)?;
    let dir = tempfile::tempdir()?;
    let api = testkit::free_port();
    let service = testkit::free_port();
    let haproxy_port = testkit::free_port();
    let mut server = Command::new(bin)
        .args(["up", "--listen", &format!("127.0.0.1:{api}"), "--data-dir"])
        .arg(dir.path())
        .args(["--proxy-vhost-listen", "off"])
        .env("SLIPWAY_LOG", "warn")
        .env("SLIPWAY_ADMIN_TOKEN", testkit::ADMIN_TOKEN)
        .stderr(std::fs::File::create(dir.path().join("server.log"))?)
        .spawn()?;
    let server_pid = server.id();
    let url = format!("http://127.0.0.1:{api}");
    let result = (|| -> anyhow::Result<()> {
        wait_for("slipway", Duration::from_secs(30), || {
            http_get(&format!("{url}/ping")).ok().map(|_| ())
        })?;
        let app = json!({"id": "/bench-lb", "cmd": testsrv.to_string_lossy(), "instances": 2, "cpus": 0.5, "mem": 64,
                         "portDefinitions": [{"port": service, "protocol": "tcp"}],
                         // HTTP mode, like HAProxy's side: requests are balanced, not connections.
                         "labels": {"HAPROXY_0_MODE": "http"},
                         "healthChecks": [{"protocol": "HTTP", "path": "/health", "intervalSeconds": 2}]});
        let (status, body) = http("POST", &format!("{url}/v2/apps"), Some(&app))?;
        if status != 201 {
            bail!("create failed: {status} {body}");
        }
        let backends: Vec<u16> =
            wait_for("2 healthy backends routed", Duration::from_secs(60), || {
                let a: Value = get_json(&format!("{url}/v2/apps/bench-lb")).ok()?;
                let ports: Vec<u16> = a["app"]["tasks"]
                    .as_array()?
                    .iter()
                    .filter_map(|t| t["ports"][0].as_u64().map(|p| p as u16))
                    .collect();
                let routed = matches!(
                    http_get(&format!("http://127.0.0.1:{service}/")),
                    Ok((200, _))
                );
                (ports.len() == 2 && a["app"]["tasksHealthy"] == 2 && routed).then_some(ports)
            })?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  nbthread 2\n  maxconn 4096\ndefaults\n  mode http\n  option http-keep-alive\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:{haproxy_port}\n  default_backend be\nbackend be\n  balance roundrobin\n  server s1 127.0.0.1:{}\n  server s2 127.0.0.1:{}\n",
                backends[0], backends[1]
            ),
        )?;
        let mut haproxy = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .spawn()
            .context("cannot start haproxy")?;
        let measured = (|| -> anyhow::Result<()> {
            wait_for("haproxy", Duration::from_secs(10), || {
                matches!(
                    http_get(&format!("http://127.0.0.1:{haproxy_port}/")),
                    Ok((200, _))
                )
                .then_some(())
            })?;
            let (slipway_pid, haproxy_pid) = (server_pid, haproxy.id());
            // Warm-up, not measured: keep-alive pools filled and caches warm on every path.
            for port in [backends[0], backends[1], service, haproxy_port] {
                wrk(port, 2)?;
            }
            let (mut direct, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
            let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
            for i in 0..runs {
                direct.push(wrk(backends[i % 2], secs)?);
                let before = cpu_ticks(slipway_pid);
                ours.push(wrk(service, secs)?);
                ours_cpu.push(cpu_us_per_request(
                    before,
                    cpu_ticks(slipway_pid),
                    ours[i].rps,
                    secs,
                ));
                let before = cpu_ticks(haproxy_pid);
                theirs.push(wrk(haproxy_port, secs)?);
                theirs_cpu.push(cpu_us_per_request(
                    before,
                    cpu_ticks(haproxy_pid),
                    theirs[i].rps,
                    secs,
                ));
                eprintln!(
                    "run {}: direct {:.0} req/s | slipway {:.0} req/s, {:.1} µs CPU/req | haproxy {:.0} req/s, {:.1} µs CPU/req | wrk p99 at saturation {:.1}/{:.1}/{:.1} ms",
                    i + 1,
                    direct[i].rps,
                    ours[i].rps,
                    ours_cpu[i],
                    theirs[i].rps,
                    theirs_cpu[i],
                    direct[i].p99_ms,
                    ours[i].p99_ms,
                    theirs[i].p99_ms,
                );
            }
            let m = |v: &[Wrk], f: fn(&Wrk) -> f64| median(v.iter().map(f).collect());
            let d_rps = m(&direct, |w| w.rps);
            let s_rps = m(&ours, |w| w.rps);
            let h_rps = m(&theirs, |w| w.rps);
            let (s_cpu, h_cpu) = (median(ours_cpu), median(theirs_cpu));
            // Latency at a steady rate well below saturation: what a request costs when the
            // machine is not queueing (at saturation p99 is scheduling noise of 2 cores).
            let rate = 2000;
            let steady = |port: u16| {
                testkit::load::spawn_load(testkit::load::LoadSpec {
                    addr: format!("127.0.0.1:{port}"),
                    path: "/".into(),
                    host: "bench".into(),
                    rate,
                    duration: Duration::from_secs(secs),
                    max_connections: 32,
                    timeout: Duration::from_secs(5),
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the load thread panicked"))
            };
            let (ld, ls, lh) = (
                steady(backends[0])?,
                steady(service)?,
                steady(haproxy_port)?,
            );
            for (name, r) in [("direct", &ld), ("slipway", &ls), ("haproxy", &lh)] {
                eprintln!("steady {rate} req/s {name}: {r}");
                if r.errors + r.non_2xx > 0 {
                    bail!("{name}: failed requests under steady load: {r}");
                }
            }
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "| wrk -t2 -c64 -d{secs}s, median of {runs} | req/s | proxy CPU per request |"
            );
            println!("|---|---|---|");
            println!("| direct to one backend | {d_rps:.0} | – |");
            println!("| Slipway proxy (2 backends) | {s_rps:.0} | {s_cpu:.1} µs |");
            println!("| HAProxy 2.6 (2 backends) | {h_rps:.0} | {h_cpu:.1} µs |");
            println!(
                "| Slipway / HAProxy | {:.2}× (target ≥ 1.0×) | {:.2}× |",
                s_rps / h_rps,
                s_cpu / h_cpu
            );
            println!();
            println!("| {rate} req/s for {secs} s, 32 connections | p50 | p99 | p99 added |");
            println!("|---|---|---|---|");
            println!(
                "| direct | {:.3} ms | {:.3} ms | – |",
                ms(ld.p50_us),
                ms(ld.p99_us)
            );
            println!(
                "| Slipway proxy | {:.3} ms | {:.3} ms | {:.3} ms (target ≤ 0.5 ms) |",
                ms(ls.p50_us),
                ms(ls.p99_us),
                ms(ls.p99_us) - ms(ld.p99_us)
            );
            println!(
                "| HAProxy 2.6 | {:.3} ms | {:.3} ms | {:.3} ms |",
                ms(lh.p50_us),
                ms(lh.p99_us),
                ms(lh.p99_us) - ms(ld.p99_us)
            );
            Ok(())
        })();
        let _ = haproxy.kill();
        let _ = haproxy.wait();
        measured
    })();
    let _ = server.kill();
    let _ = server.wait();
    testkit::kill_tasks_of(dir.path());
    result
}
