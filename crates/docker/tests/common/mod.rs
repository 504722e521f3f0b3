//! Shared helpers for the Docker integration tests: a per-test scope (unique agent id,
//! cleanup of its containers and networks on drop, also on failure), the test image, spec
//! building, `docker inspect` and polling helpers.
#![allow(dead_code, unreachable_pub)]

use docker::{ContainerSpec, Docker, DockerConfig, NetworkMode, PortSpec};
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Generous bound for anything that waits on the daemon or a container.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call (valid in Docker names).
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{tag}-{}-{n}", std::process::id())
}

/// The test image (`slipway-testsrv:docker-crate`), built once per test process.
pub fn image() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| testkit::test_image("docker-crate").expect("build the test image"))
        .clone()
}

/// One test's resources: a unique agent id; on drop, its containers and networks go away.
pub struct Scope {
    pub agent: String,
    pub networks: Vec<String>,
    pub images: Vec<String>,
}

impl Scope {
    /// A scope and a client for it; `None` (skip) without a daemon.
    pub async fn new(tag: &str) -> Option<(Scope, Docker)> {
        testkit::docker()?;
        let scope = Scope {
            agent: unique(&format!("test-{tag}")),
            networks: Vec::new(),
            images: Vec::new(),
        };
        let cfg = DockerConfig {
            agent_id: scope.agent.clone(),
            log_max_bytes: 1024 * 1024,
            ..DockerConfig::default()
        };
        let d = Docker::connect(cfg).await.expect("connect to the daemon");
        Some((scope, d))
    }

    /// A spec for the test image with a unique task id, on the default bridge.
    pub fn spec(&self, app: &str) -> ContainerSpec {
        let task_id = format!("{app}.{}", unique("t"));
        ContainerSpec {
            task_id: task_id.clone(),
            app_id: format!("/{app}"),
            image: image(),
            env: vec![("MESOS_TASK_ID".into(), task_id)],
            network: NetworkMode::Bridge,
            ..ContainerSpec::default()
        }
    }

    /// Publishes the image's port on a free host port, returning that port.
    pub fn publish(spec: &mut ContainerSpec) -> u16 {
        let port = testkit::free_port();
        spec.ports.push(PortSpec {
            container_port: testkit::TEST_IMAGE_PORT,
            host_port: Some(port),
            protocol: "tcp".into(),
        });
        port
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let label = format!("label=slipway.agent={}", self.agent);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        for n in &self.networks {
            let _ = Command::new("docker").args(["network", "rm", n]).output();
        }
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", i]).output();
        }
    }
}

/// `docker inspect <what>` as JSON (the first element), `None` when it does not exist.
pub fn inspect(kind: &str, what: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args([kind, "inspect", what])
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}

/// Polls a blocking check off the runtime until it yields, panicking after [`TIMEOUT`].
pub async fn eventually<T: Send + 'static>(
    what: &'static str,
    f: impl FnMut() -> Option<T> + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || testkit::wait_for(what, TIMEOUT, f))
        .await
        .expect("join the poller")
        .expect(what)
}

/// GETs `http://127.0.0.1:<port>/` until it answers 200, returning the body.
pub async fn get_root(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/");
    eventually("the container to answer HTTP", move || {
        testkit::http_get(&url)
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    })
    .await
}
