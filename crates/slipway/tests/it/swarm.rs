//! Named targets on a real Docker Swarm: apps under `/BB/` go to the Swarm (the local
//! daemon made a manager for the test, `--advertise-addr 127.0.0.1`), apps under `/AA/`
//! stay on the local engine. In the `docker` nextest group (one at a time); fails rather than
//! skips under `CI=true` when Docker or the registry is missing.

use crate::*;
use std::process::Command;
use testkit::{TEST_IMAGE_PORT, http_get, wait_for};

/// Makes the local daemon a Swarm manager for the test and leaves the Swarm at the end
/// (also on panic) when the test made it one; removes the services of the server.
struct Swarm {
    made: bool,
    agent: Option<String>,
}

impl Swarm {
    fn join() -> Swarm {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let made = state.trim() != "active";
        if made {
            let out = Command::new("docker")
                .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Swarm { made, agent: None }
    }

    fn services(&self) -> Vec<String> {
        let Some(agent) = &self.agent else {
            return Vec::new();
        };
        docker(&[
            "service",
            "ls",
            "--filter",
            &format!("label=slipway.agent={agent}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for s in self.services() {
            let name = s.split_whitespace().next().unwrap_or_default().to_string();
            let _ = Command::new("docker")
                .args(["service", "rm", &name])
                .output();
        }
        if self.made {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn app(id: &str, instances: u32, image: &str, version: &str) -> Value {
    json!({
        "id": id,
        "instances": instances,
        "cpus": 0.1,
        "mem": 64,
        "env": {"VERSION": version},
        // Requests, not TCP connections, are routed: a GET that meets a backend Swarm is
        // stopping is retried on another (in TCP mode a kept-alive connection stays with
        // its backend and breaks with it, as with marathon-lb).
        "labels": {"HAPROXY_0_MODE": "http"},
        "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
            "portMappings": [{"containerPort": TEST_IMAGE_PORT, "hostPort": 0, "protocol": "tcp"}]}},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 1,
                          "timeoutSeconds": 1, "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5},
        "taskKillGracePeriodSeconds": 2,
    })
}

fn app_json(s: &SlipwayProcess, id: &str) -> Value {
    get_json(&format!("{}/v2/apps{id}", s.url)).unwrap()["app"].clone()
}

/// How many of `tasks` pass every health check (and have a result).
fn healthy_count(tasks: &[Value]) -> usize {
    tasks
        .iter()
        .filter(|t| {
            t["healthCheckResults"]
                .as_array()
                .is_some_and(|h| !h.is_empty() && h.iter().all(|r| r["alive"] == true))
        })
        .count()
}

/// Waits until the app has no deployment and `n` healthy tasks; returns its tasks.
fn settled(s: &SlipwayProcess, id: &str, n: usize, what: &str) -> Vec<Value> {
    wait_for(what, Duration::from_secs(180), || {
        let a = app_json(s, id);
        let tasks = a["tasks"].as_array().cloned().unwrap_or_default();
        let healthy = healthy_count(&tasks);
        (a["deployments"].as_array().is_some_and(Vec::is_empty) && tasks.len() == n && healthy == n)
            .then_some(tasks)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", app_json(s, id)))
}

#[test]
fn docker_swarm_target_runs_bb_apps_on_the_swarm_and_aa_apps_here() {
    let (Some(()), Some(())) = (testkit::docker(), testkit::registry_up()) else {
        return;
    };
    let mut swarm = Swarm::join();
    let v1 =
        testkit::push_to_registry(&testkit::test_image("swarm1").unwrap(), "swarm/web:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--target", "AA=local", "--target", "BB=swarm"],
    )
    .unwrap();
    let agent = get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    swarm.agent = Some(agent.clone());
    let _containers = Cleanup(agent);

    // The targets are listed, and each app shows its own.
    let targets = get_json(&format!("{}/api/v1/targets", s.url)).unwrap();
    assert_eq!(targets["targets"][1]["name"], "BB", "{targets}");
    assert_eq!(targets["targets"][1]["kind"], "swarm", "{targets}");

    let (status, body) = http(
        "PUT",
        &format!("{}/v2/apps/BB/prod/web", s.url),
        Some(&app("/BB/prod/web", 2, &v1, "1")),
    )
    .unwrap();
    assert!(status == 200 || status == 201, "{status} {body}");
    let tasks = settled(&s, "/BB/prod/web", 2, "2 healthy Swarm tasks");
    assert_eq!(
        swarm.services().len(),
        1,
        "one service: {:?}",
        swarm.services()
    );
    for t in &tasks {
        let port = t["ports"][0].as_u64().unwrap();
        let host = t["host"].as_str().unwrap();
        let (code, body) = http_get(&format!("http://{host}:{port}/")).unwrap();
        assert_eq!(code, 200, "{body}");
    }
    // Nothing of it runs as a local container of this server.
    let local = docker(&[
        "ps",
        "--filter",
        "label=slipway.task",
        "--format",
        "{{.Names}}",
    ]);
    assert!(
        !local.contains("BB_prod_web"),
        "a Swarm app launched locally: {local}"
    );

    // The edge proxy routes to the Swarm's tasks.
    let service_port = app_json(&s, "/BB/prod/web")["portDefinitions"][0]["port"]
        .as_u64()
        .or_else(|| {
            app_json(&s, "/BB/prod/web")["container"]["portMappings"][0]["servicePort"].as_u64()
        })
        .unwrap();
    wait_for("the proxy route", Duration::from_secs(30), || {
        http_get(&format!("http://127.0.0.1:{service_port}/"))
            .ok()
            .filter(|(c, _)| *c == 200)
    })
    .unwrap();

    // An upgrade goes through Swarm's update; the deployment ends on the new version.
    http(
        "PUT",
        &format!("{}/v2/apps/BB/prod/web", s.url),
        Some(&app("/BB/prod/web", 2, &v1, "2")),
    )
    .unwrap();
    let cfg = app_json(&s, "/BB/prod/web")["version"].clone();
    let tasks = settled(&s, "/BB/prod/web", 2, "the upgrade");
    for t in &tasks {
        assert_eq!(t["version"], cfg, "every task runs the new version: {t}");
    }

    // kill -9 in the middle of a Swarm deployment: it converges, nothing is duplicated.
    http(
        "PUT",
        &format!("{}/v2/apps/BB/prod/web", s.url),
        Some(&app("/BB/prod/web", 3, &v1, "3")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();
    s.restart().unwrap();
    settled(&s, "/BB/prod/web", 3, "convergence after kill -9");
    let services = swarm.services();
    assert_eq!(services.len(), 1, "{services:?}");
    assert!(services[0].ends_with(" 3/3"), "{services:?}");

    // A local-only image cannot go to a Swarm: the app says why.
    let (status, _) = http(
        "PUT",
        &format!("{}/v2/apps/BB/prod/local", s.url),
        Some(&app("/BB/prod/local", 1, "slipway-test-local-only:1", "1")),
    )
    .unwrap();
    assert!(status < 300);
    wait_for("the apply error", Duration::from_secs(60), || {
        let a = app_json(&s, "/BB/prod/local");
        a["lastTaskFailure"]["message"]
            .as_str()
            .filter(|m| m.contains("registry"))
            .map(str::to_string)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", app_json(&s, "/BB/prod/local")));

    // The listing names each app's target.
    let out = Command::new(slipway_bin())
        .args(["apps", "list"])
        .env("SLIPWAY_URL", &s.url)
        .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TARGET"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("/BB/prod/web") && l.contains("BB")),
        "{text}"
    );

    // Deleting the apps removes their services.
    for id in ["/BB/prod/web", "/BB/prod/local"] {
        http("DELETE", &format!("{}/v2/apps{id}?force=true", s.url), None).unwrap();
    }
    wait_for("the services to go", Duration::from_secs(60), || {
        swarm.services().is_empty().then_some(())
    })
    .unwrap();
}

/// Removes local containers of the server at the end.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        testkit::remove_slipway_containers(&self.0);
    }
}

/// A second Slipway as target CC, driven through its Marathon API with the credentials in
/// the first server's secret store.
#[test]
fn a_marathon_target_runs_cc_apps_on_the_remote_with_stored_credentials() {
    let (remote, _remote_dir) = server();
    let dir = tempfile::tempdir().unwrap();
    let target = format!(
        "CC={}",
        remote.url.replace("http://", "marathon:http://") + "?secret=cc-creds"
    );
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--target", &target]).unwrap();
    let (status, body) = http(
        "PUT",
        &format!("{}/api/v1/secrets/cc-creds", s.url),
        Some(&json!({"value": testkit::ADMIN_TOKEN})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");

    let (status, body) = http(
        "PUT",
        &format!("{}/v2/apps/CC/prod/web", s.url),
        Some(&web_app("/CC/prod/web", 2, "1")),
    )
    .unwrap();
    assert!(status < 300, "{status} {body}");
    // The remote runs it; this server mirrors its tasks, checks them and ends the deployment.
    let tasks = settled(&s, "/CC/prod/web", 2, "2 healthy remote tasks");
    let remote_app = app_json(&remote, "/CC/prod/web");
    let remote_ids: Vec<&str> = remote_app["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for t in &tasks {
        assert!(
            remote_ids.contains(&t["id"].as_str().unwrap()),
            "{t} is a task of the remote"
        );
    }
    assert!(
        testkit::task_processes(&s.data_dir).is_empty(),
        "nothing of CC runs here"
    );

    // Bad credentials: the apply fails with the remote's 401, and the token is not shown.
    let (status, _) = http(
        "PUT",
        &format!("{}/api/v1/secrets/cc-creds", s.url),
        Some(&json!({"value": "slw_wrong-token-value"})),
    )
    .unwrap();
    assert_eq!(status, 204);
    http(
        "PUT",
        &format!("{}/v2/apps/CC/prod/web", s.url),
        Some(&web_app("/CC/prod/web", 2, "2")),
    )
    .unwrap();
    let failure = wait_for("the 401", Duration::from_secs(30), || {
        app_json(&s, "/CC/prod/web")["lastTaskFailure"]["message"]
            .as_str()
            .filter(|m| m.contains("401"))
            .map(str::to_string)
    })
    .unwrap();
    assert!(!failure.contains("slw_wrong"), "{failure}");

    // Back to the right token: the new version reaches the remote; delete removes it there.
    http(
        "PUT",
        &format!("{}/api/v1/secrets/cc-creds", s.url),
        Some(&json!({"value": testkit::ADMIN_TOKEN})),
    )
    .unwrap();
    wait_for("version 2 on the remote", Duration::from_secs(60), || {
        (app_json(&remote, "/CC/prod/web")["env"]["VERSION"] == "2").then_some(())
    })
    .unwrap();
    http(
        "DELETE",
        &format!("{}/v2/apps/CC/prod/web?force=true", s.url),
        None,
    )
    .unwrap();
    wait_for("the remote app to go", Duration::from_secs(60), || {
        let (code, _) = http("GET", &format!("{}/v2/apps/CC/prod/web", remote.url), None).ok()?;
        (code == 404).then_some(())
    })
    .unwrap();
}

/// Requests per second of the constant GET load through the proxy.
const RATE: u32 = 100;

fn load(port: u64, secs: u64) -> std::thread::JoinHandle<testkit::load::LoadReport> {
    testkit::load::spawn_load(testkit::load::LoadSpec {
        addr: format!("127.0.0.1:{port}"),
        path: "/".into(),
        host: "web.test".into(),
        rate: RATE,
        duration: Duration::from_secs(secs),
        max_connections: 32,
        timeout: Duration::from_secs(10),
    })
}

#[test]
fn docker_swarm_two_nodes_spread_roll_fail_over_and_converge() {
    let (Some(()), Some(())) = (testkit::docker(), testkit::registry_up()) else {
        return;
    };
    let mut cluster = testkit::swarm::TwoNodeSwarm::start().unwrap();
    let v1 =
        testkit::push_to_registry(&testkit::test_image("swarm2a").unwrap(), "swarm/two:1").unwrap();
    let v2 =
        testkit::push_to_registry(&testkit::test_image("swarm2b").unwrap(), "swarm/two:2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s =
        SlipwayProcess::start(&slipway_bin(), dir.path(), &["--target", "BB=swarm"]).unwrap();
    let agent = get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    let services = || {
        docker(&[
            "service",
            "ls",
            "--filter",
            &format!("label=slipway.agent={agent}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])
    };
    let id = "/BB/prod/two";
    http(
        "PUT",
        &format!("{}/v2/apps{id}", s.url),
        Some(&app(id, 4, &v1, "1")),
    )
    .unwrap();
    let tasks = settled(&s, id, 4, "4 healthy tasks on two nodes");
    let hosts: std::collections::BTreeSet<&str> =
        tasks.iter().map(|t| t["host"].as_str().unwrap()).collect();
    assert_eq!(
        hosts,
        [cluster.manager_addr.as_str(), cluster.worker_addr.as_str()].into(),
        "the tasks spread over both nodes: {tasks:?}"
    );
    let port = app_json(&s, id)["container"]["portMappings"][0]["servicePort"]
        .as_u64()
        .unwrap();
    let last = std::sync::Mutex::new(String::new());
    wait_for("the proxy route", Duration::from_secs(60), || {
        let answer = http_get(&format!("http://127.0.0.1:{port}/"));
        *last.lock().unwrap() = format!("{answer:?}");
        answer.ok().filter(|(c, _)| *c == 200)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; last answer {}; tasks {}",
            last.lock().unwrap(),
            app_json(&s, id)["tasks"]
        )
    });

    // Killing one task, as Marathon's task kill does: Swarm has no API for it, so a task on
    // the manager's node is killed through its container and Swarm replaces it; one on the
    // worker is refused with a reason, and nothing changes.
    let on = |addr: &str| {
        tasks
            .iter()
            .find(|t| t["host"] == addr)
            .and_then(|t| t["id"].as_str())
            .unwrap()
            .to_string()
    };
    let (worker_task, manager_task) = (on(&cluster.worker_addr), on(&cluster.manager_addr));
    let kill = |task: &str| {
        http(
            "DELETE",
            &format!("{}/v2/apps{id}/tasks/{task}", s.url),
            None,
        )
        .unwrap()
    };
    let (code, body) = kill(&worker_task);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("no API to kill one task"), "{body}");
    let (code, body) = kill(&manager_task);
    assert_eq!(code, 200, "{body}");
    let tasks = wait_for("the killed task replaced", Duration::from_secs(90), || {
        let a = app_json(&s, id);
        let tasks = a["tasks"].as_array().cloned().unwrap_or_default();
        (healthy_count(&tasks) == 4 && tasks.iter().all(|t| t["id"] != manager_task.as_str()))
            .then_some(tasks)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", app_json(&s, id)));
    assert!(
        tasks.iter().any(|t| t["id"] == worker_task.as_str()),
        "the refused kill left the worker's task alone: {tasks:?}"
    );

    // A rolling upgrade to a new image under constant load fails nothing.
    let during = load(port, 25);
    http(
        "PUT",
        &format!("{}/v2/apps{id}", s.url),
        Some(&app(id, 4, &v2, "2")),
    )
    .unwrap();
    let tasks = settled(&s, id, 4, "the rolling upgrade");
    let report = during.join().unwrap();
    eprintln!("rolling upgrade on 2 nodes under {RATE} req/s: {report}");
    if report.errors + report.non_2xx > 0 {
        // What the proxy said about them (more with `SLIPWAY_TEST_LOG=proxy=debug,info`).
        for line in s.log().lines() {
            if line.contains("proxy") || line.contains("panicked") {
                eprintln!("  server: {line}");
            }
        }
    }
    // Swarm stops an old task as soon as its replacement runs, on its own clock: the
    // proxy stops routing to old tasks once a new one is healthy and retries a GET that
    // found its backend gone, so none fails. (The 0–6 of 2,500 of earlier runs were this
    // test's app served in TCP mode: a kept-alive connection broke with its backend.)
    assert_eq!(
        report.errors + report.non_2xx,
        0,
        "{report} {:?}",
        report.error_kinds
    );
    let version = app_json(&s, id)["version"].clone();
    assert!(tasks.iter().all(|t| t["version"] == version));

    // The worker's dockerd stops: Swarm reschedules its tasks on the manager, the proxy
    // routes around them (GETs retried elsewhere).
    let during = load(port, 40);
    std::thread::sleep(Duration::from_secs(2));
    cluster.stop_worker();
    let tasks = wait_for(
        "tasks rescheduled on the manager",
        Duration::from_secs(120),
        || {
            let a = app_json(&s, id);
            let tasks = a["tasks"].as_array().cloned().unwrap_or_default();
            let on_manager = tasks
                .iter()
                .filter(|t| {
                    t["host"] == cluster.manager_addr.as_str() && t["state"] == "TASK_RUNNING"
                })
                .count();
            (on_manager >= 4).then_some(tasks)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", app_json(&s, id)));
    let report = during.join().unwrap();
    eprintln!(
        "worker failure under {RATE} req/s: {report} {:?}",
        report.error_kinds
    );
    assert!(tasks.len() >= 4);
    assert!(
        report.non_2xx + report.errors <= report.sent / 100,
        "{report} {:?}",
        report.error_kinds
    );

    // The worker comes back (and rejoins); then kill -9 of Slipway in the middle of a
    // Swarm deployment: it converges, with no duplicates.
    cluster.start_worker().unwrap();
    http(
        "PUT",
        &format!("{}/v2/apps{id}", s.url),
        Some(&app(id, 3, &v1, "3")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.kill9();
    s.restart().unwrap();
    settled(&s, id, 3, "convergence after kill -9");
    let list = services();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.trim().ends_with(" 3/3"), "{list}");
    http("DELETE", &format!("{}/v2/apps{id}?force=true", s.url), None).unwrap();
    wait_for("the service to go", Duration::from_secs(60), || {
        services().trim().is_empty().then_some(())
    })
    .unwrap();
}

/// The seed's release flow with two datacenters: one pipeline whose `DeployDC` parameter
/// picks the datacenter deploys the same tested image to AA's prod (this server's engine)
/// and to BB's prod (the Swarm); both run the same digest.
#[test]
fn docker_swarm_release_job_deploys_to_aa_here_and_bb_on_the_swarm_with_one_digest() {
    let (Some(()), Some(())) = (testkit::docker(), testkit::registry_up()) else {
        return;
    };
    let mut swarm = Swarm::join();
    let image =
        testkit::push_to_registry(&testkit::test_image("release").unwrap(), "swarm/rel:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--target", "AA=local", "--target", "BB=swarm"],
    )
    .unwrap();
    let agent = get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    swarm.agent = Some(agent.clone());
    let _containers = Cleanup(agent);

    let mut definition = app(
        "/${{ params.DeployDC }}/prod/rel",
        2,
        "set-by-the-pipeline",
        "1",
    );
    definition["env"] = json!({});
    let pipeline = format!(
        "version: 1\nname: rel\nparams:\n  DeployDC: {{ type: choice, options: [AA, BB], default: AA }}\nsteps:\n  ship:\n    deploy: {{ env: \"${{{{ params.DeployDC }}}}/prod\", app: app.json, image: \"{image}\" }}\n"
    );
    let repo = testkit::git_repo(&pipeline, &[("app.json", &definition.to_string())]);
    let (status, body) = http(
        "PUT",
        &format!("{}/api/v1/pipelines/rel", s.url),
        Some(&json!({"repo": repo.path().to_string_lossy(), "branch": "dev"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    let release = |dc: &str| {
        let (status, body) = http(
            "POST",
            &format!("{}/api/v1/pipelines/rel/runs", s.url),
            Some(&json!({"params": {"DeployDC": dc}, "confirm": true})),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
        let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        wait_for(
            &format!("the release to {dc}"),
            Duration::from_secs(240),
            || {
                let run = get_json(&format!("{}/api/v1/runs/{id}", s.url)).ok()?;
                let status = run["status"].as_str()?.to_string();
                (status != "running" && status != "queued").then_some(run)
            },
        )
        .unwrap()
    };
    let aa = release("AA");
    assert_eq!(aa["status"], "succeeded", "{aa}");
    let bb = release("BB");
    assert_eq!(bb["status"], "succeeded", "{bb}");

    // Both prods run the image pinned to one digest.
    let digest = |app: &Value| {
        let image = app["container"]["docker"]["image"]
            .as_str()
            .unwrap_or_default();
        image.split_once('@').map(|(_, d)| d.to_string())
    };
    let aa_app = app_json(&s, "/AA/prod/rel");
    let bb_app = app_json(&s, "/BB/prod/rel");
    let pinned = digest(&aa_app).unwrap_or_else(|| panic!("AA is not pinned: {aa_app}"));
    assert!(pinned.starts_with("sha256:"), "{aa_app}");
    assert_eq!(digest(&bb_app), Some(pinned.clone()), "{bb_app}");
    settled(&s, "/AA/prod/rel", 2, "AA's prod to be healthy");
    settled(&s, "/BB/prod/rel", 2, "BB's prod to be healthy");

    // AA's tasks are this server's containers; BB's are the Swarm's, on that digest.
    let local = docker(&[
        "ps",
        "--filter",
        "label=slipway.app=/AA/prod/rel",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(local.lines().count(), 2, "{local}");
    let service_image = docker(&[
        "service",
        "ls",
        "--filter",
        "label=slipway.app=/BB/prod/rel",
        "--format",
        "{{.Image}}",
    ]);
    assert!(
        service_image.trim().ends_with(&format!("@{pinned}")),
        "the Swarm runs {service_image}, not {pinned}"
    );
    let out = Command::new(slipway_bin())
        .args(["apps", "list", "--output", "json"])
        .env("SLIPWAY_URL", &s.url)
        .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let target_of = |id: &str| {
        listed
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["id"] == id)
            .map(|a| a["target"].clone())
    };
    assert_eq!(target_of("/AA/prod/rel"), Some(json!("AA")), "{listed}");
    assert_eq!(target_of("/BB/prod/rel"), Some(json!("BB")), "{listed}");
}
