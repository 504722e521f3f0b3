//! Container lifecycle against the real daemon: launch on the bridge and on a new user
//! network, labels, env and limits, exits (killed and by itself), state, listing, removal
//! and idempotent relaunch.

mod common;

use common::{Scope, get_root, inspect, unique};
use docker::{ContainerState, Docker, DockerConfig, DockerError, NetworkMode, SignalOutcome};
use std::collections::BTreeMap;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_launch_publishes_port_labels_env_and_limits() {
    let Some((scope, d)) = Scope::new("bridge").await else {
        return;
    };
    assert_eq!(
        d.api_version(),
        "1.41",
        "negotiated down to the daemon's API"
    );
    let mut spec = scope.spec("web");
    let port = Scope::publish(&mut spec);
    spec.labels = BTreeMap::from([("HAPROXY_GROUP".to_string(), "external".to_string())]);
    spec.env.push(("GREETING".into(), "hello world".into()));
    spec.cpus = 0.5;
    spec.mem_mib = 64.0;
    spec.disable_image_healthcheck = true;
    let started = d.launch(&spec).await.expect("launch");
    assert!(started.ip.is_some(), "a bridge container has an IP");

    let body = get_root(port).await;
    assert!(body.contains(&format!("task={}", spec.task_id)), "{body}");
    assert!(body.contains("version=docker-crate"), "{body}");

    let info = inspect("container", &started.container_id).expect("inspect");
    assert_eq!(info["Name"], format!("/slipway-{}", spec.task_id));
    assert_eq!(
        info["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"]),
        "the image's HEALTHCHECK is off when the orchestrator checks health"
    );
    let labels = &info["Config"]["Labels"];
    assert_eq!(labels["slipway.agent"], scope.agent.as_str());
    assert_eq!(labels["slipway.task"], spec.task_id.as_str());
    assert_eq!(labels["slipway.app"], "/web");
    assert_eq!(labels["HAPROXY_GROUP"], "external");
    let env: Vec<&str> = info["Config"]["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"GREETING=hello world"), "{env:?}");
    let host = &info["HostConfig"];
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 64 * 1024 * 1024);
    assert_eq!(host["RestartPolicy"]["Name"], "no");
    assert_eq!(host["AutoRemove"], false);
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(host["LogConfig"]["Config"]["max-file"], "2");
    assert_eq!(host["PortBindings"]["12345/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(
        host["PortBindings"]["12345/tcp"][0]["HostPort"],
        port.to_string()
    );
    assert_eq!(
        d.state(&started.container_id).await.expect("state"),
        ContainerState::Running {
            ip: started.ip.clone()
        }
    );

    // A second launch of the same task adopts the running container.
    let again = d.launch(&spec).await.expect("relaunch");
    assert_eq!(again.container_id, started.container_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_network_is_created_and_reachable() {
    let Some((mut scope, d)) = Scope::new("usernet").await else {
        return;
    };
    let network = unique("slipway-test-net");
    scope.networks.push(network.clone());
    assert!(inspect("network", &network).is_none(), "the network is new");
    let mut spec = scope.spec("netapp");
    spec.network = NetworkMode::User(network.clone());
    spec.parameters = vec![("network-alias".into(), "api".into())];
    let port = Scope::publish(&mut spec);
    let started = d.launch(&spec).await.expect("launch on a user network");
    let body = get_root(port).await;
    assert!(body.contains("port=12345"), "{body}");

    let net = inspect("network", &network).expect("network created");
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Labels"]["slipway.agent"], scope.agent.as_str());
    let info = inspect("container", &started.container_id).expect("inspect");
    let endpoint = &info["NetworkSettings"]["Networks"][&network];
    assert_eq!(endpoint["IPAddress"].as_str(), started.ip.as_deref());
    let aliases = endpoint["Aliases"].as_array().expect("aliases");
    assert!(aliases.iter().any(|a| a == "api"), "{aliases:?}");

    // A second task joins the existing network (no duplicate is created).
    let mut other = scope.spec("netapp");
    other.network = NetworkMode::User(network.clone());
    d.launch(&other).await.expect("second launch");
    let out = Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{network}$"),
        ])
        .output()
        .expect("docker network ls");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_self_exit_are_reported() {
    let Some((scope, d)) = Scope::new("exit").await else {
        return;
    };
    let spec = scope.spec("killme");
    let started = d.launch(&spec).await.expect("launch");
    let waiter = {
        let (d, id) = (d.clone(), started.container_id.clone());
        tokio::spawn(async move { d.wait(&id).await })
    };
    let sent = d
        .signal(&started.container_id, "SIGKILL")
        .await
        .expect("signal");
    assert_eq!(sent, SignalOutcome::Sent);
    let exit = waiter.await.expect("join").expect("wait");
    assert_eq!(exit.code, Some(137));
    assert!(!exit.oom_killed);
    assert!(
        exit.message.contains("137") && exit.message.contains("SIGKILL"),
        "{}",
        exit.message
    );
    match d.state(&started.container_id).await.expect("state") {
        ContainerState::Exited(e) => assert_eq!(e.code, Some(137)),
        other => panic!("expected an exit, got {other:?}"),
    }
    // Signalling a stopped container is not an error.
    let gone = d
        .signal(&started.container_id, "SIGTERM")
        .await
        .expect("signal");
    assert_eq!(gone, SignalOutcome::Gone);

    // testsrv exits 1 when it cannot bind its address.
    let mut failing = scope.spec("fails");
    failing.args = Some(vec!["--host".into(), "203.0.113.7".into()]);
    let started = d.launch(&failing).await.expect("launch");
    let exit = d.wait(&started.container_id).await.expect("wait");
    assert_eq!(exit.code, Some(1));
    assert_eq!(exit.message, "Container exited with status 1");

    // Relaunching the task replaces the stopped container.
    let again = d.launch(&failing).await.expect("relaunch");
    assert_ne!(again.container_id, started.container_id);
    assert!(
        inspect("container", &started.container_id).is_none(),
        "old container replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tasks_sees_only_this_agent_and_remove_is_idempotent() {
    let Some((scope, d)) = Scope::new("list").await else {
        return;
    };
    let Some((other_scope, other)) = Scope::new("list-other").await else {
        return;
    };
    let mine = scope.spec("mine");
    let theirs = other_scope.spec("theirs");
    let a = d.launch(&mine).await.expect("launch mine");
    other.launch(&theirs).await.expect("launch theirs");
    // A container created but never started (a crash between create and start).
    let created_task = format!("never.{}", unique("t"));
    let out = Command::new("docker")
        .args(["create", "--name", &format!("slipway-{created_task}")])
        .args(["--label", &format!("slipway.agent={}", scope.agent)])
        .args(["--label", &format!("slipway.task={created_task}")])
        .arg(common::image())
        .output()
        .expect("docker create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created_id = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let mut found = d.list_tasks().await.expect("list");
    found.sort_by(|x, y| x.task_id.cmp(&y.task_id));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (found[0].task_id.as_str(), found[0].running),
        (mine.task_id.as_str(), true)
    );
    assert_eq!(found[0].container_id, a.container_id);
    assert_eq!(found[0].app_id, "/mine");
    assert_eq!(
        (found[1].task_id.as_str(), found[1].running),
        (created_task.as_str(), false)
    );

    // A never-started container does not pass for a clean exit.
    let exit = d.wait(&created_id).await.expect("wait");
    assert_eq!(exit.code, None, "{exit:?}");

    d.remove(&a.container_id).await.expect("remove");
    d.remove(&a.container_id).await.expect("remove again");
    assert_eq!(
        d.state(&a.container_id).await.expect("state"),
        ContainerState::Missing
    );
    let gone = d.signal(&a.container_id, "SIGKILL").await.expect("signal");
    assert_eq!(gone, SignalOutcome::Gone);
    let exit = d
        .wait(&a.container_id)
        .await
        .expect("wait on a removed container");
    assert_eq!(exit.message, "Container removed");
    let left: Vec<String> = d
        .list_tasks()
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.task_id)
        .collect();
    assert_eq!(left, vec![created_task]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_without_a_shell_fails_to_start_and_leaves_nothing() {
    let Some((scope, d)) = Scope::new("noshell").await else {
        return;
    };
    let mut spec = scope.spec("shell");
    spec.cmd = Some("echo hi".into());
    let err = d.launch(&spec).await.expect_err("scratch has no /bin/sh");
    assert!(
        matches!(&err, DockerError::Start(m) if m.contains("/bin/sh")),
        "{err}"
    );
    assert!(
        d.list_tasks().await.expect("list").is_empty(),
        "the failed container is removed"
    );

    let cfg = DockerConfig {
        host: Some("unix:///nonexistent/docker.sock".into()),
        ..DockerConfig::default()
    };
    let err = Docker::connect(cfg).await.expect_err("no such socket");
    assert!(matches!(err, DockerError::Unreachable(_)), "{err}");
}

/// A unix-socket proxy to the daemon that can be cut, to lose "dockerd" without touching it.
struct Proxy {
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    fn start() -> Proxy {
        let dir = tempfile::tempdir().expect("proxy dir");
        let listener =
            tokio::net::UnixListener::bind(dir.path().join("docker.sock")).expect("bind proxy");
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    let upstream = tokio::net::UnixStream::connect("/var/run/docker.sock").await;
                    if let Ok(mut upstream) = upstream {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Proxy { dir, task }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Drops the listener and every proxied connection.
    fn cut(&self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_daemon_is_unreachable_never_a_fake_exit() {
    let Some((scope, direct)) = Scope::new("lost").await else {
        return;
    };
    let proxy = Proxy::start();
    let cfg = DockerConfig {
        agent_id: scope.agent.clone(),
        host: Some(proxy.host()),
        ..DockerConfig::default()
    };
    let d = Docker::connect(cfg)
        .await
        .expect("connect through the proxy");
    let started = d.launch(&scope.spec("lost")).await.expect("launch");
    let id = started.container_id.clone();
    let sandbox = tempfile::tempdir().expect("sandbox");
    let waiter = {
        let (d, id) = (d.clone(), id.clone());
        tokio::spawn(async move { d.wait(&id).await })
    };
    let follower = {
        let (d, id, dir) = (d.clone(), id.clone(), sandbox.path().to_path_buf());
        tokio::spawn(async move { d.follow_logs(&id, &dir).await })
    };
    let stdout = sandbox.path().join("stdout");
    common::eventually("the follower to be streaming", move || {
        let text = std::fs::read_to_string(&stdout).ok()?;
        text.contains("listening").then_some(())
    })
    .await;
    proxy.cut();

    let waited = waiter.await.expect("join");
    assert!(
        matches!(waited, Err(DockerError::Unreachable(_))),
        "{waited:?}"
    );
    let followed = follower.await.expect("join");
    assert!(
        matches!(followed, Err(DockerError::Unreachable(_))),
        "{followed:?}"
    );
    let state = d.state(&id).await;
    assert!(
        matches!(state, Err(DockerError::Unreachable(_))),
        "{state:?}"
    );
    // The container itself never stopped.
    let state = direct
        .state(&id)
        .await
        .expect("state through the real socket");
    assert!(matches!(state, ContainerState::Running { .. }), "{state:?}");
}
