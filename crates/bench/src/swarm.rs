//! Rolling upgrade of 3 replicas to a new tag of the same image, Slipway against a
//! single-node Docker Swarm configured to the same safety, alternating runs.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{TEST_IMAGE_PORT, get_json, http, http_get, wait_for};

const SERVICE: &str = "slipway-bench";
const TAGS: [&str; 2] = ["slipway-bench:a", "slipway-bench:b"];

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("cannot run docker")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Two tags of one FROM-scratch image with a 1 s HEALTHCHECK (used by Swarm; Slipway runs
/// its own HTTP check with the same interval).
fn build_images() -> anyhow::Result<()> {
    let bin = testkit::static_testsrv()?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(&bin, dir.path().join("testsrv"))?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY testsrv /testsrv\nENV TESTSRV_PORT={p}\nEXPOSE {p}\n\
             HEALTHCHECK --interval=1s --timeout=1s --retries=3 \
             CMD [\"/testsrv\", \"--check\", \"http://127.0.0.1:{p}/health\"]\n\
             ENTRYPOINT [\"/testsrv\"]\n",
            p = TEST_IMAGE_PORT
        ),
    )?;
    docker(&["build", "-q", "-t", TAGS[0], &dir.path().to_string_lossy()])?;
    docker(&["tag", TAGS[0], TAGS[1]])?;
    Ok(())
}

/// Time from `docker run` to the first passing `/health` through the published port.
fn physical_floor() -> anyhow::Result<Duration> {
    let port = testkit::free_port();
    let t = Instant::now();
    let id = docker(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:{TEST_IMAGE_PORT}"),
        TAGS[0],
    ])?;
    let ok = wait_for("the health endpoint", Duration::from_secs(30), || {
        matches!(
            http_get(&format!("http://127.0.0.1:{port}/health")),
            Ok((200, _))
        )
        .then(|| t.elapsed())
    });
    let _ = docker(&["rm", "-f", &id]);
    ok
}

struct Slipway {
    child: std::process::Child,
    url: String,
}

impl Slipway {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Slipway> {
        let port = testkit::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .env("SLIPWAY_LOG", "warn")
            .env("SLIPWAY_ADMIN_TOKEN", testkit::ADMIN_TOKEN)
            .stderr(std::fs::File::create(dir.join("server.log"))?)
            .spawn()?;
        wait_for("slipway", Duration::from_secs(30), || {
            http_get(&format!("{url}/ping")).ok().map(|_| ())
        })?;
        Ok(Slipway { child, url })
    }

    fn app(&self, image: &str) -> Value {
        json!({
            "id": "/bench", "instances": 3, "cpus": 0.1, "mem": 64,
            "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
                "portMappings": [{"containerPort": TEST_IMAGE_PORT, "hostPort": 0}]}},
            "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30}]
        })
    }

    /// PUTs `image` and waits for the deployment to succeed; returns the elapsed time.
    fn deploy(&self, image: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let (status, body) = http(
            "PUT",
            &format!("{}/v2/apps/bench", self.url),
            Some(&self.app(image)),
        )?;
        if !(200..300).contains(&status) {
            bail!("PUT failed: {status} {body}");
        }
        let id = serde_json::from_str::<Value>(&body)?["deploymentId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        loop {
            let d = get_json(&format!("{}/api/v1/deployments/{id}", self.url))?;
            match d["status"].as_str() {
                Some("success") => return Ok(t.elapsed()),
                Some("failed") => bail!("deployment failed: {}", d["reason"]),
                _ if t.elapsed() > Duration::from_secs(120) => bail!("deployment did not finish"),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for Slipway {
    fn drop(&mut self) {
        let _ = http("DELETE", &format!("{}/v2/apps/bench", self.url), None);
        let _ = wait_for("containers to go", Duration::from_secs(30), || {
            get_json(&format!("{}/v2/tasks", self.url))
                .ok()
                .filter(|v| v["tasks"] == json!([]))
                .map(|_| ())
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swarm_setup() -> anyhow::Result<bool> {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
    let created = state != "active";
    if created {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
    }
    let _ = docker(&["service", "rm", SERVICE]);
    docker(&[
        "service",
        "create",
        "--detach=false",
        "--quiet",
        "--name",
        SERVICE,
        "--replicas",
        "3",
        "--publish",
        &format!("mode=host,target={TEST_IMAGE_PORT}"),
        "--no-resolve-image",
        "--update-order",
        "start-first",
        "--update-parallelism",
        "3",
        "--update-delay",
        "0s",
        "--update-monitor",
        "1s",
        "--stop-grace-period",
        "10s",
        TAGS[0],
    ])?;
    Ok(created)
}

fn swarm_update(image: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    docker(&[
        "service",
        "update",
        "--detach=false",
        "--quiet",
        "--no-resolve-image",
        "--image",
        image,
        SERVICE,
    ])?;
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The benchmark: alternating runs, medians, ratio.
pub(crate) fn rolling_vs_swarm(bin: &Path, runs: usize) -> anyhow::Result<()> {
    build_images()?;
    let floor = median(
        (0..3)
            .map(|_| physical_floor())
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let dir = tempfile::tempdir()?;
    let slipway = Slipway::start(bin, dir.path())?;
    let (status, body) = http(
        "POST",
        &format!("{}/v2/apps", slipway.url),
        Some(&slipway.app(TAGS[0])),
    )?;
    if status != 201 {
        bail!("create failed: {status} {body}");
    }
    wait_for("the first deployment", Duration::from_secs(120), || {
        get_json(&format!("{}/v2/deployments", slipway.url))
            .ok()
            .filter(|d| d == &json!([]))
            .map(|_| ())
    })?;
    let created_swarm = swarm_setup()?;
    let result = (|| -> anyhow::Result<()> {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let image = TAGS[(i + 1) % 2];
            let s = slipway.deploy(image)?;
            let w = swarm_update(image)?;
            eprintln!(
                "run {}: slipway {:.0} ms, swarm {:.0} ms",
                i + 1,
                s.as_secs_f64() * 1e3,
                w.as_secs_f64() * 1e3
            );
            ours.push(s);
            theirs.push(w);
        }
        let (s, w) = (median(ours), median(theirs));
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
        println!("| rolling upgrade, 3 replicas, new tag (median of {runs}) | time |");
        println!("|---|---|");
        println!(
            "| Slipway (upgradeStrategy 1.0/1.0, HTTP check every 1 s) | {} |",
            ms(s)
        );
        println!(
            "| Docker Swarm (start-first, parallelism 3, monitor 1 s, HEALTHCHECK 1 s) | {} |",
            ms(w)
        );
        println!(
            "| ratio Slipway / Swarm | {:.2}× (target ≤ 0.35×) |",
            s.as_secs_f64() / w.as_secs_f64()
        );
        println!(
            "| physical floor: docker run → first passing /health (median of 3) | {} |",
            ms(floor)
        );
        Ok(())
    })();
    let _ = docker(&["service", "rm", SERVICE]);
    if created_swarm {
        let _ = docker(&["swarm", "leave", "--force"]);
    }
    result
}
