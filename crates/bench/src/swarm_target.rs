//! A rolling upgrade of 4 replicas on a two-node Swarm (built on this machine by
//! `testkit::swarm`): through Slipway's Swarm target against plain `docker service update`
//! with the same update settings, in alternating runs. The overhead is what Slipway adds on
//! top of Swarm's own work (applying, observing, its own health checks).

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{TEST_IMAGE_PORT, get_json, http, http_get, wait_for};

const PLAIN: &str = "slipway-bench-plain";

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

/// Two different images (distinct digests) with a 1 s HEALTHCHECK, pushed to the test
/// registry both nodes pull from.
fn images() -> anyhow::Result<[String; 2]> {
    let bin = testkit::static_testsrv()?;
    let mut out = Vec::new();
    for tag in ["a", "b"] {
        let dir = tempfile::tempdir()?;
        std::fs::copy(&bin, dir.path().join("testsrv"))?;
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY testsrv /testsrv\nENV TESTSRV_PORT={p} BENCH={tag}\nEXPOSE {p}\n\
                 HEALTHCHECK --interval=1s --timeout=1s --retries=3 \
                 CMD [\"/testsrv\", \"--check\", \"http://127.0.0.1:{p}/health\"]\n\
                 ENTRYPOINT [\"/testsrv\"]\n",
                p = TEST_IMAGE_PORT
            ),
        )?;
        let local = format!("slipway-bench-two:{tag}");
        docker(&["build", "-q", "-t", &local, &dir.path().to_string_lossy()])?;
        out.push(testkit::push_to_registry(
            &local,
            &format!("bench/two:{tag}"),
        )?);
    }
    Ok([out[0].clone(), out[1].clone()])
}

struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Server> {
        let port = testkit::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .args(["--target", "BB=swarm", "--proxy", "off", "--metrics", "off"])
            .env("SLIPWAY_LOG", "warn")
            .env("SLIPWAY_ADMIN_TOKEN", testkit::ADMIN_TOKEN)
            .stderr(std::fs::File::create(dir.join("server.log"))?)
            .spawn()?;
        wait_for("slipway", Duration::from_secs(30), || {
            http_get(&format!("{url}/ping")).ok().map(|_| ())
        })?;
        Ok(Server { child, url })
    }

    fn app(image: &str) -> Value {
        json!({
            "id": "/BB/bench", "instances": 4, "cpus": 0.1, "mem": 64,
            "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
                "portMappings": [{"containerPort": TEST_IMAGE_PORT, "hostPort": 0}]}},
            "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30}],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5},
            "taskKillGracePeriodSeconds": 2
        })
    }

    /// PUTs `image` and waits for the deployment to succeed; returns the elapsed time.
    fn deploy(&self, image: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let (status, body) = http(
            "PUT",
            &format!("{}/v2/apps/BB/bench", self.url),
            Some(&Self::app(image)),
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
                _ if t.elapsed() > Duration::from_secs(180) => bail!("deployment did not finish"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = http(
            "DELETE",
            &format!("{}/v2/apps/BB/bench?force=true", self.url),
            None,
        );
        std::thread::sleep(Duration::from_secs(2));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The benchmark.
pub(crate) fn swarm_target(bin: &Path, runs: usize) -> anyhow::Result<()> {
    let cluster = testkit::swarm::TwoNodeSwarm::start()?;
    let [a, b] = images()?;
    let dir = tempfile::tempdir()?;
    let server = Server::start(bin, dir.path())?;
    server.deploy(&a)?;
    // The same update settings Slipway derives from the upgradeStrategy (start-first,
    // parallelism 4 × 0.5 = 2, monitor 2 s, rollback on failure).
    docker(&[
        "service",
        "create",
        "--detach=false",
        "--quiet",
        "--name",
        PLAIN,
        "--replicas",
        "4",
        "--publish",
        &format!("mode=host,target={TEST_IMAGE_PORT}"),
        "--update-order",
        "start-first",
        "--update-parallelism",
        "2",
        "--update-delay",
        "0s",
        "--update-monitor",
        "2s",
        "--update-failure-action",
        "rollback",
        "--stop-grace-period",
        "2s",
        &a,
    ])?;
    let result = (|| -> anyhow::Result<()> {
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let image = if i % 2 == 0 { &b } else { &a };
            let s = server.deploy(image)?;
            let t = Instant::now();
            docker(&[
                "service",
                "update",
                "--detach=false",
                "--quiet",
                "--image",
                image,
                PLAIN,
            ])?;
            let p = t.elapsed();
            eprintln!(
                "run {}: slipway {:.0} ms, docker service update {:.0} ms",
                i + 1,
                s.as_secs_f64() * 1e3,
                p.as_secs_f64() * 1e3
            );
            ours.push(s);
            plain.push(p);
        }
        let (s, p) = (median(ours), median(plain));
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
        println!(
            "| rolling upgrade, 4 replicas on 2 Swarm nodes, new image (median of {runs}) | time |"
        );
        println!("|---|---|");
        println!(
            "| through Slipway (target BB=swarm, PUT → deployment success) | {} |",
            ms(s)
        );
        println!(
            "| plain `docker service update --detach=false` | {} |",
            ms(p)
        );
        println!(
            "| Slipway's overhead | {:+.1} % (target ≤ 10 %) |",
            (s.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0
        );
        Ok(())
    })();
    let _ = docker(&["service", "rm", PLAIN]);
    drop(server);
    drop(cluster);
    result
}
