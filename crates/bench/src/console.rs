//! Server time of every web console page with 1,000 apps and 10,000 pipeline runs (issue
//! 15's bound: ≤ 50 ms a page). The runs are written into the store before the server
//! starts (running 10,000 real pipelines would take hours and measure git, not pages);
//! the apps are created through the API. Each page is fetched by a signed-in admin over
//! loopback with a keep-alive-free request, and timed from the request's first byte to
//! the response's last.

use crate::Server;
use anyhow::{Context, bail};
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use testkit::http;

const PIPELINE: &str = "version: 1\nname: NAME\nsteps:\n  build: { run: make }\n  test: { needs: [build], run: make test }\n  analysis: { needs: [build], run: make lint }\n  deploy-qa: { needs: [test, analysis], run: make qa }\n  ok:\n    needs: [deploy-qa]\n    approve: { message: \"Do tests OK?\", env: prod }\n  deploy-prod: { needs: [ok], run: make prod }\n";
const STEPS: [&str; 6] = [
    "build",
    "test",
    "analysis",
    "deploy-qa",
    "ok",
    "deploy-prod",
];

/// One request with headers: (status, head, body, time).
fn get(url: &str, path: &str, cookie: &str) -> anyhow::Result<(u16, String, String, Duration)> {
    request(url, "GET", path, &[("Cookie", cookie)], "")
}

fn request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String, String, Duration)> {
    let hostport = url.strip_prefix("http://").context("http URL")?;
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let t = Instant::now();
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string(), took))
}

fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .filter(|v| !v.is_empty())
}

/// Writes `pipelines` pipelines and `runs` finished runs (six steps each) into the store.
fn seed_runs(db: &std::path::Path, pipelines: usize, runs: usize) -> anyhow::Result<String> {
    let store = store::Store::open(db)?;
    let now = model::Timestamp::now().millis();
    for p in 0..pipelines {
        let name = format!("service-{p}");
        let source = json!({"repo": "/nonexistent/repo.git", "branch": "dev",
                            "file": ".slipway/pipeline.yaml",
                            "file_text": PIPELINE.replace("NAME", &name)});
        store.put_pipeline(&name, &source.to_string(), now)?;
    }
    let mut last = String::new();
    for i in 0..runs {
        let id = uuid::Uuid::new_v4().to_string();
        let at = now - (runs - i) as i64 * 60_000;
        let failed = i % 7 == 3;
        store.create_run(&store::RunRow {
            id: id.clone(),
            pipeline: format!("service-{}", i % pipelines),
            number: 0,
            status: if failed {
                store::RunStatus::Failed
            } else {
                store::RunStatus::Succeeded
            },
            event: "push".into(),
            triggered_by: "poll".into(),
            branch: "dev".into(),
            sha: format!("{:040x}", i),
            params: "{}".into(),
            reason: failed.then(|| "failed: test".to_string()),
            created_at: at,
            started_at: Some(at + 100),
            finished_at: Some(at + 45_000),
        })?;
        for (k, step) in STEPS.iter().enumerate() {
            store.put_step(
                &id,
                &store::StepRow {
                    name: (*step).to_string(),
                    status: if failed && *step == "test" {
                        store::StepStatus::Failed
                    } else if failed && k > 1 {
                        store::StepStatus::NotRun
                    } else {
                        store::StepStatus::Succeeded
                    },
                    attempts: 1,
                    outputs: "{}".into(),
                    started_at: Some(at + 100 + k as i64 * 5000),
                    finished_at: Some(at + 4000 + k as i64 * 5000),
                    ..store::StepRow::default()
                },
            )?;
        }
        last = id;
    }
    Ok(last)
}

/// The benchmark.
pub(crate) fn pages(
    bin: &std::path::Path,
    apps: usize,
    runs: usize,
    reps: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let last_run = seed_runs(&dir.path().join("slipway.db"), 10, runs)?;
    eprintln!("seeded {runs} runs in {:.1} s", t.elapsed().as_secs_f64());
    let port = testkit::free_port();
    let (server, _) = Server::start(&bin.to_path_buf(), dir.path(), port)?;
    let url = server.url.clone();
    let result = (|| -> anyhow::Result<()> {
        let t = Instant::now();
        for i in 0..apps {
            let env = ["qa", "prod"][i % 2];
            let def = json!({"id": format!("/AA/{env}/svc-{i:04}"), "cmd": "sleep 1000",
                             "instances": 0, "cpus": 0.01, "mem": 16,
                             "labels": {"team": "shop"}});
            let (status, body) = http("POST", &format!("{url}/v2/apps"), Some(&def))?;
            if status != 201 {
                bail!("create app {i}: {status} {body}");
            }
        }
        eprintln!("created {apps} apps in {:.1} s", t.elapsed().as_secs_f64());
        let (status, body) = http(
            "POST",
            &format!("{url}/api/v1/users"),
            Some(&json!({"name": "ada", "role": "admin", "password": "bench-password-long"})),
        )?;
        if status != 201 {
            bail!("create user: {status} {body}");
        }
        let (_, head, _, _) = request(&url, "GET", "/ui/login", &[], "")?;
        let login = set_cookie(&head, "slipway_login").context("the sign-in cookie")?;
        let (status, head, _, _) = request(
            &url,
            "POST",
            "/ui/login",
            &[
                ("Cookie", &format!("slipway_login={login}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("csrf={login}&user=ada&password=bench-password-long&next=/ui/"),
        )?;
        if status != 303 {
            bail!("sign in: {status} {head}");
        }
        let cookie = format!(
            "slipway_session={}",
            set_cookie(&head, "slipway_session").context("the session cookie")?
        );
        let pages = [
            ("overview", "/ui/".to_string()),
            ("pipelines", "/ui/pipelines".to_string()),
            (
                "pipeline (1,000 of its runs)",
                "/ui/pipelines/service-3".to_string(),
            ),
            ("run", format!("/ui/runs/{last_run}")),
            ("app", "/ui/apps/AA/prod/svc-0001".to_string()),
            ("deployments", "/ui/deployments".to_string()),
            ("audit", "/ui/audit".to_string()),
            ("admin", "/ui/admin".to_string()),
            (
                "metrics explorer (host CPU by mode, 1 h)",
                "/ui/metrics?query=sum+by+(mode)+(rate(node_cpu_seconds_total%5B1m%5D))&range=1h"
                    .to_string(),
            ),
        ];
        println!(
            "| page ({apps} apps, {runs} runs), {reps} requests | p50 | p95 | max | size | ≤ 50 ms |"
        );
        println!("|---|---:|---:|---:|---:|---|");
        for (name, path) in pages {
            let (status, _, body, _) = get(&url, &path, &cookie)?;
            if status != 200 {
                bail!(
                    "{path}: {status} {}",
                    body.chars().take(300).collect::<String>()
                );
            }
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                let (status, _, _, took) = get(&url, &path, &cookie)?;
                if status != 200 {
                    bail!("{path}: {status}");
                }
                times.push(took);
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let p50 = times[times.len() / 2];
            let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
            println!(
                "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {} KiB | {} |",
                ms(p50),
                ms(p95),
                ms(*times.last().unwrap_or(&p95)),
                body.len() / 1024,
                if p95 <= Duration::from_millis(50) {
                    "met"
                } else {
                    "MISS"
                }
            );
        }
        Ok(())
    })();
    server.stop();
    result
}
