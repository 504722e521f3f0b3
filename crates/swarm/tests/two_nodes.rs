//! The swarm crate against a real two-node Swarm built on this machine
//! ([`testkit::swarm::TwoNodeSwarm`]): services spread over both nodes and answer at their
//! node's address and published port, start-first rolling updates, scale without restarts,
//! USER networks on an attachable overlay, clear refusals of images the nodes cannot pull
//! and of a worker's API, removal, and a worker failure. Without Docker, root or the
//! registry these tests skip, except under `CI=true`, where they fail.

use model::{AppDefinition, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};
use swarm::{
    ApplyOutcome, BuildOptions, SwarmClient, SwarmError, SwarmTask, TaskStatus, UpdateState,
    build_service,
};
use testkit::swarm::TwoNodeSwarm;

/// The Swarm, or `None` (skip) when this machine cannot build it outside CI.
fn cluster() -> Option<TwoNodeSwarm> {
    testkit::docker()?;
    testkit::registry_up()?;
    if !testkit::have(
        "root with ip, nsenter and unshare (for a two-node Swarm)",
        testkit::swarm::available(),
    ) {
        return None;
    }
    Some(TwoNodeSwarm::start().expect("two-node Swarm"))
}

/// The test image in the registry both nodes pull from.
fn pushed_image(tag: &str) -> String {
    let local = testkit::test_image(tag).expect("test image");
    testkit::push_to_registry(&local, &format!("swarm-crate/web:{tag}")).expect("push")
}

fn app(id: &str, image: &str, instances: u32, version: i64) -> AppDefinition {
    let body: Value = json!({
        "id": id, "instances": instances, "cpus": 0.1, "mem": 32,
        "container": {"type": "DOCKER", "docker": {"image": image},
            "portMappings": [{"containerPort": testkit::TEST_IMAGE_PORT, "hostPort": 0}]},
        "networks": [{"mode": "container/bridge"}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.25}
    });
    model::parse_definition(body.to_string().as_bytes(), None, Timestamp(version)).expect("app")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn running(tasks: &[SwarmTask]) -> Vec<SwarmTask> {
    tasks
        .iter()
        .filter(|t| t.state == TaskStatus::Running && !t.ports.is_empty())
        .cloned()
        .collect()
}

/// Polls the service's tasks until `done` accepts the running ones.
async fn wait_tasks(
    c: &SwarmClient,
    service: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[SwarmTask]) -> bool,
) -> Vec<SwarmTask> {
    let deadline = Instant::now() + timeout;
    loop {
        let tasks = c.tasks(service).await.expect("tasks");
        let run = running(&tasks);
        if done(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET / of a task at its node's address and published port.
fn answer(t: &SwarmTask) -> String {
    let url = format!("http://{}:{}/", t.node_addr, t.ports[0]);
    let (status, body) = testkit::http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    assert_eq!(status, 200, "{url}: {body}");
    body
}

/// Containers labelled as `agent`'s on the daemon at `host` (`None`: the manager).
fn containers(host: Option<&str>, agent: &str) -> usize {
    let mut cmd = Command::new("docker");
    if let Some(h) = host {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=slipway.agent={agent}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn four_replicas_spread_answer_roll_start_first_and_are_removed() {
    let Some(cluster) = cluster() else { return };
    let image = pushed_image("roll");
    let agent = format!("it{}", std::process::id());
    runtime().block_on(async {
        let c = SwarmClient::connect(None).await.expect("connect");
        assert_eq!(c.api_version(), "1.41", "negotiated down to the daemon");
        let nodes = c.nodes().await.expect("nodes");
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        assert!(nodes.iter().all(|n| n.ready), "{nodes:?}");

        let v1 = app("/swarmit/web", &image, 4, 1_800_000_000_000);
        let draft = build_service(&v1, &agent, &BuildOptions::default()).expect("draft");
        cluster.track_service(&draft.name);
        let applied = c.apply(&draft, None).await.expect("apply");
        assert_eq!(applied.outcome, ApplyOutcome::Created);
        assert!(
            applied.image.starts_with(&format!("{image}@sha256:")),
            "pinned to the registry digest: {}",
            applied.image
        );
        let again = c.apply(&draft, None).await.expect("apply again");
        assert_eq!(again.outcome, ApplyOutcome::Unchanged);

        let tasks = wait_tasks(
            &c,
            &applied.service_id,
            "4 running tasks",
            Duration::from_secs(90),
            |r| r.len() == 4,
        )
        .await;
        let on: BTreeSet<&str> = tasks.iter().map(|t| t.node_addr.as_str()).collect();
        assert_eq!(
            on,
            BTreeSet::from([cluster.manager_addr.as_str(), cluster.worker_addr.as_str()]),
            "spread over both nodes: {tasks:#?}"
        );
        for t in &tasks {
            let body = answer(t);
            assert!(
                body.contains(&format!("task={}", t.marathon_id())),
                "{t:?} answers as itself: {body}"
            );
            assert!(body.contains("version=roll"), "{body}");
            assert_eq!(t.config_version, draft.config_version);
            assert_eq!(t.image, applied.image);
            assert!(t.container_id.is_some() && t.created_at.is_some(), "{t:?}");
        }

        // A new configuration: the tasks are replaced one at a time, new before old.
        let mut v2 = v1.clone();
        v2.env
            .insert("VERSION".into(), model::EnvValue::Literal("rolled".into()));
        v2.version = Timestamp(1_800_000_060_000);
        v2.version_info.last_config_change_at = v2.version;
        let draft2 = build_service(&v2, &agent, &BuildOptions::default()).expect("draft");
        assert!(draft2.update.start_first && draft2.update.parallelism == 1);
        let applied = c.apply(&draft2, None).await.expect("update");
        assert_eq!(applied.outcome, ApplyOutcome::Updated { rolling: true });
        let (mut fewest, mut most) = (usize::MAX, 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        let done = loop {
            let all = c.tasks(&applied.service_id).await.expect("tasks");
            let serving = all
                .iter()
                .filter(|t| matches!(t.state, TaskStatus::Running | TaskStatus::Killing))
                .count();
            fewest = fewest.min(serving);
            most = most.max(serving);
            let run = running(&all);
            let info = c
                .service(&agent, "/swarmit/web")
                .await
                .expect("service")
                .expect("exists");
            let completed = info
                .update
                .as_ref()
                .is_some_and(|u| u.state == UpdateState::Completed);
            if completed
                && run.len() == 4
                && run
                    .iter()
                    .all(|t| t.config_version == draft2.config_version)
            {
                break run;
            }
            assert!(
                !info.update.as_ref().is_some_and(|u| u.state.failed()),
                "the update failed: {:?}",
                info.update
            );
            assert!(
                Instant::now() < deadline,
                "the update did not end: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!("tasks serving during the update: between {fewest} and {most}");
        assert!(
            fewest >= 4,
            "start-first never drops below 4 serving tasks ({fewest})"
        );
        for t in &done {
            assert!(answer(t).contains("version=rolled"), "{t:?}");
        }

        // Removal leaves nothing on either node.
        assert_eq!(c.remove(&agent, "/swarmit/web").await.expect("remove"), 1);
        assert!(c.services(&agent).await.expect("services").is_empty());
        let deadline = Instant::now() + Duration::from_secs(60);
        while containers(None, &agent) + containers(Some(&cluster.worker_host), &agent) > 0 {
            assert!(Instant::now() < deadline, "containers left after remove");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(c.remove(&agent, "/swarmit/web").await.expect("remove"), 0);
    });
}

#[test]
fn images_the_nodes_cannot_pull_and_workers_are_refused_and_scaling_restarts_nothing() {
    let Some(cluster) = cluster() else { return };
    let agent = format!("it{}", std::process::id());
    let local = testkit::test_image("swarm-local-only").expect("image");
    let image = pushed_image("scale");
    runtime().block_on(async {
        let c = SwarmClient::connect(None).await.expect("connect");
        let err = |e: SwarmError| e.to_string();

        let local_app = app("/swarmit/local", &local, 1, 1_800_000_000_000);
        let draft = build_service(&local_app, &agent, &BuildOptions::default()).expect("draft");
        let e = err(c.apply(&draft, None).await.expect_err("local-only image"));
        assert!(
            e.starts_with(&format!("image {local} cannot be deployed to the Swarm:"))
                && e.contains("exists only in this Docker daemon's image store")
                && e.contains("push it"),
            "{e}"
        );
        let missing = format!("{}/swarm-crate/never-pushed:1", cluster.registry);
        let e = err(c
            .resolve_image(&missing, None)
            .await
            .expect_err("not in the registry"));
        assert!(
            e.contains(&format!("registry {} answered", cluster.registry))
                && e.contains("manifest unknown"),
            "{e}"
        );
        assert!(
            c.services(&agent).await.expect("services").is_empty(),
            "nothing made"
        );

        let e = err(SwarmClient::connect(Some(&cluster.worker_host))
            .await
            .expect_err("a worker is no manager"));
        assert!(e.contains("is a Swarm worker, not a manager"), "{e}");

        // Scaling changes the service, not its task template: no task is replaced.
        let v1 = app("/swarmit/scale", &image, 2, 1_800_000_000_000);
        let draft = build_service(&v1, &agent, &BuildOptions::default()).expect("draft");
        cluster.track_service(&draft.name);
        let applied = c.apply(&draft, None).await.expect("apply");
        let before = wait_tasks(
            &c,
            &applied.service_id,
            "2 tasks",
            Duration::from_secs(90),
            |r| r.len() == 2,
        )
        .await;
        let mut v2 = v1.clone();
        v2.instances = 3;
        v2.version = Timestamp(1_800_000_030_000);
        v2.version_info.last_scaling_at = v2.version;
        let draft2 = build_service(&v2, &agent, &BuildOptions::default()).expect("draft");
        let scaled = c.apply(&draft2, None).await.expect("scale");
        assert_eq!(scaled.outcome, ApplyOutcome::Updated { rolling: false });
        assert_eq!(scaled.image, applied.image, "keeps its digest");
        let after = wait_tasks(
            &c,
            &applied.service_id,
            "3 tasks",
            Duration::from_secs(90),
            |r| r.len() == 3,
        )
        .await;
        for t in &before {
            assert!(after.iter().any(|a| a.id == t.id), "{} was replaced", t.id);
        }
        let info = c.service(&agent, "/swarmit/scale").await.unwrap().unwrap();
        assert_eq!(
            (info.replicas, info.version.as_str()),
            (3, draft2.version.as_str())
        );
        assert_eq!(c.remove(&agent, "/swarmit/scale").await.expect("remove"), 1);
    });
}

#[test]
fn tasks_of_a_stopped_worker_are_lost_and_rescheduled_on_the_manager() {
    let Some(mut cluster) = cluster() else { return };
    let image = pushed_image("failover");
    let agent = format!("it{}", std::process::id());
    let rt = runtime();
    let (c, service) = rt.block_on(async {
        let c = SwarmClient::connect(None).await.expect("connect");
        let def = app("/swarmit/failover", &image, 4, 1_800_000_000_000);
        let draft = build_service(&def, &agent, &BuildOptions::default()).expect("draft");
        cluster.track_service(&draft.name);
        let applied = c.apply(&draft, None).await.expect("apply");
        let worker = cluster.worker_addr.clone();
        wait_tasks(
            &c,
            &applied.service_id,
            "tasks on the worker",
            Duration::from_secs(90),
            |r| r.len() == 4 && r.iter().any(|t| t.node_addr == worker),
        )
        .await;
        (c, applied.service_id)
    });
    cluster.stop_worker();
    rt.block_on(async {
        let worker = cluster.worker_addr.clone();
        let manager = cluster.manager_addr.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let all = c.tasks(&service).await.expect("tasks");
            let lost = all
                .iter()
                .filter(|t| t.node_addr == worker && t.state == TaskStatus::Lost)
                .count();
            let run = running(&all);
            if lost > 0 && run.len() == 4 && run.iter().all(|t| t.node_addr == manager) {
                for t in &run {
                    assert!(answer(t).contains("version=failover"));
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the worker's tasks did not move: {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    cluster.start_worker().expect("worker back");
    rt.block_on(async {
        let nodes = c.nodes().await.expect("nodes");
        assert!(nodes.iter().all(|n| n.ready), "{nodes:?}");
        assert_eq!(
            c.remove(&agent, "/swarmit/failover").await.expect("remove"),
            1
        );
    });
}

#[test]
fn a_user_network_app_runs_on_an_attachable_overlay_on_both_nodes() {
    let Some(cluster) = cluster() else { return };
    let image = pushed_image("overlay");
    let agent = format!("it{}", std::process::id());
    let network = format!("slwit{}", std::process::id());
    runtime().block_on(async {
        let c = SwarmClient::connect(None).await.expect("connect");
        let body = json!({
            "id": "/swarmit/overlay", "instances": 2, "cpus": 0.1, "mem": 32,
            "container": {"type": "DOCKER", "docker": {"image": image},
                "portMappings": [{"containerPort": testkit::TEST_IMAGE_PORT, "hostPort": 0}]},
            "networks": [{"mode": "container", "name": network}]
        });
        let def =
            model::parse_definition(body.to_string().as_bytes(), None, Timestamp(1)).expect("app");
        let draft = build_service(&def, &agent, &BuildOptions::default()).expect("draft");
        assert_eq!(draft.overlays, vec![network.clone()]);
        cluster.track_service(&draft.name);
        let applied = c.apply(&draft, None).await.expect("apply");
        let out = Command::new("docker")
            .args([
                "network",
                "inspect",
                &network,
                "--format",
                "{{.Driver}} {{.Scope}} {{.Attachable}}",
            ])
            .output()
            .expect("inspect");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "overlay swarm true"
        );
        let tasks = wait_tasks(
            &c,
            &applied.service_id,
            "2 tasks",
            Duration::from_secs(90),
            |r| r.len() == 2 && r[0].node_addr != r[1].node_addr,
        )
        .await;
        for t in &tasks {
            assert!(answer(t).contains(&format!("task={}", t.marathon_id())));
        }
        // An existing network of another kind is refused by name.
        let e = c
            .ensure_overlay("bridge", &agent)
            .await
            .expect_err("bridge");
        assert!(
            e.to_string()
                .contains("Swarm services need an overlay network"),
            "{e}"
        );
        assert_eq!(
            c.remove(&agent, "/swarmit/overlay").await.expect("remove"),
            1
        );
    });
}
