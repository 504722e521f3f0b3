//! Container apps on the local Docker Engine: the seed's definition, rolling image changes,
//! `docker kill`, dockerd restarts, server crashes and registry outages. These tests run in
//! the `docker` nextest group (one at a time), and fail rather than skip under `CI=true`
//! when Docker or the registry is missing.

use crate::*;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use testkit::{TEST_IMAGE_PORT, http_get, slipway_containers, wait_for};

/// Removes the server's containers when a test ends, whatever happened.
struct Containers(String);

impl Drop for Containers {
    fn drop(&mut self) {
        testkit::remove_slipway_containers(&self.0);
    }
}

fn agent(s: &SlipwayProcess) -> Containers {
    Containers(
        get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// A bridge-networked container app of the test image with an HTTP health check.
fn container_app(id: &str, instances: u32, image: &str) -> Value {
    json!({
        "id": id,
        "instances": instances,
        "cpus": 0.1,
        "mem": 64,
        "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
            "portMappings": [{"containerPort": TEST_IMAGE_PORT, "hostPort": 0, "protocol": "tcp"}]}},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 1,
                          "timeoutSeconds": 1, "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 2,
    })
}

fn running_containers(agent: &Containers) -> BTreeSet<String> {
    slipway_containers(&agent.0)
        .into_iter()
        .filter(|(_, _, running)| *running)
        .map(|(_, t, _)| t)
        .collect()
}

#[test]
fn docker_seed_definition_deploys_unchanged_but_for_the_image() {
    let (Some(()), Some(())) = (testkit::docker(), testkit::registry_up()) else {
        return;
    };
    let local = testkit::test_image("seed").unwrap();
    // The seed fetches registry credentials as file:///etc/docker.tar.gz; the image lives in
    // the registry that needs them.
    let image = testkit::push_with_auth(
        &local,
        "127.0.0.1:5001",
        "appname:seed",
        "slipway",
        "registry-secret",
    )
    .unwrap();
    let archive = std::path::Path::new("/etc/docker.tar.gz");
    if !archive.exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".docker")).unwrap();
        std::fs::write(
            dir.path().join(".docker/config.json"),
            testkit::docker_config_json("127.0.0.1:5001", "slipway", "registry-secret"),
        )
        .unwrap();
        let ok = Command::new("tar")
            .arg("-czf")
            .arg(archive)
            .arg("-C")
            .arg(dir.path())
            .arg(".docker")
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let (s, _dir) = server();
    let _cleanup = agent(&s);
    let seed = include_str!("seed.json").replace("\"imageName\"", &format!("\"{image}\""));
    let def: Value = serde_json::from_str(&seed).unwrap();
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(180));
    let a = app(&s, "/appName");
    let tasks = healthy_tasks(&a);
    assert_eq!(tasks.len(), 2, "{a}");
    for t in &tasks {
        let port = t["ports"][0].as_u64().unwrap();
        let (_, body) = http_get(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert!(body.starts_with("version=seed "), "{body}");
        let name = format!("slipway-{}", t["id"].as_str().unwrap());
        let inspect = Command::new("docker")
            .args(["inspect", &name])
            .output()
            .unwrap();
        let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        let c = &info[0];
        assert_eq!(c["Config"]["Labels"]["HAPROXY_GROUP"], "external");
        assert_eq!(c["Config"]["Labels"]["HAPROXY_0_VHOST"], "xxx.hujiang.com");
        assert!(
            c["NetworkSettings"]["Networks"].get("calico-net").is_some(),
            "USER network calico-net"
        );
        assert_eq!(c["Args"], json!(["--spring.profiles.active=qa"]));
        let mounts = c["Mounts"].as_array().unwrap();
        assert!(mounts.iter().any(|m| m["Source"] == "/home/logs/appName"
            && m["Destination"] == "/app/log"
            && m["RW"] == true));
        assert_eq!(c["HostConfig"]["Memory"], 2048u64 * 1024 * 1024);
    }
    let (status, _) = send(&s, "DELETE", "/v2/apps/appName", None);
    assert_eq!(status, 200);
    let cleanup = agent(&s);
    wait_for("containers removed", Duration::from_secs(60), || {
        slipway_containers(&cleanup.0).is_empty().then_some(())
    })
    .unwrap();
}

#[test]
fn docker_image_change_rolls_without_losing_health_and_kill_is_replaced() {
    let Some(()) = testkit::docker() else { return };
    let v1 = testkit::test_image("v1").unwrap();
    let v2 = testkit::test_image("v2").unwrap();
    let (s, _dir) = server();
    let _cleanup = agent(&s);
    let (status, body) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&container_app("/roll", 3, &v1)),
    );
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(120));
    assert_eq!(healthy_tasks(&app(&s, "/roll")).len(), 3);

    let stop = Arc::new(AtomicBool::new(false));
    let min_healthy = Arc::new(AtomicUsize::new(usize::MAX));
    let watcher = {
        let (url, stop, min_healthy) = (s.url.clone(), stop.clone(), min_healthy.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(v) = get_json(&format!("{url}/v2/apps/roll")) {
                    min_healthy.fetch_min(healthy_tasks(&v["app"]).len(), Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut update = container_app("/roll", 3, &v2);
    update.as_object_mut().unwrap().remove("id");
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/roll",
        Some(&json!({"container": update["container"]})),
    );
    assert_eq!(status, 200, "{body}");
    wait_no_deployments(&s, Duration::from_secs(120));
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let min = min_healthy.load(Ordering::SeqCst);
    assert_eq!(
        min, 3,
        "default upgradeStrategy keeps all 3 healthy; saw {min}"
    );
    let a = app(&s, "/roll");
    let tasks = healthy_tasks(&a);
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        let port = t["ports"][0].as_u64().unwrap();
        assert!(
            http_get(&format!("http://127.0.0.1:{port}/"))
                .unwrap()
                .1
                .starts_with("version=v2 ")
        );
    }

    // Container output goes through the same task-log API as process output.
    let victim = tasks[0]["id"].as_str().unwrap().to_string();
    let log = wait_for("the container's stdout", Duration::from_secs(30), || {
        let l = get_json(&format!("{}/api/v1/tasks/{victim}/logs", s.url)).ok()?;
        l["data"]
            .as_str()?
            .contains("slipway-testsrv listening")
            .then_some(l)
    })
    .unwrap();
    assert!(
        log["data"].as_str().unwrap().contains("version=v2"),
        "{log}"
    );
    let out = Command::new("docker")
        .args(["kill", &format!("slipway-{victim}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("a replacement", Duration::from_secs(60), || {
        let h = healthy_tasks(&app(&s, "/roll"));
        (h.len() == 3 && h.iter().all(|t| t["id"] != victim.as_str())).then_some(())
    })
    .unwrap();
    let failure = app(&s, "/roll")["lastTaskFailure"].clone();
    assert_eq!(failure["taskId"], victim.as_str(), "{failure}");
}

#[test]
fn docker_daemon_restart_converges_without_duplicates() {
    let Some(()) = testkit::docker() else { return };
    let image = testkit::test_image("v1").unwrap();
    let (s, _dir) = server();
    let cleanup = agent(&s);
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&container_app("/survivor", 2, &image)),
    );
    assert_eq!(status, 201);
    wait_no_deployments(&s, Duration::from_secs(120));
    testkit::restart_dockerd().unwrap();
    wait_for(
        "2 healthy tasks, one container each",
        Duration::from_secs(120),
        || {
            let a = app(&s, "/survivor");
            let healthy: BTreeSet<String> = healthy_tasks(&a)
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            (healthy.len() == 2
                && healthy == api_task_ids(&s)
                && running_containers(&cleanup) == healthy)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ncontainers {:?}\nlog:\n{}",
            slipway_containers(&cleanup.0),
            s.log()
        )
    });
}

#[test]
fn docker_daemon_restart_mid_deployment_completes_it_without_duplicates() {
    let Some(()) = testkit::docker() else { return };
    let v1 = testkit::test_image("v1").unwrap();
    let v2 = testkit::test_image("v2").unwrap();
    let (s, _dir) = server();
    let cleanup = agent(&s);
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&container_app("/midway", 3, &v1)),
    );
    assert_eq!(status, 201);
    wait_no_deployments(&s, Duration::from_secs(120));
    // One instance at a time, each waiting to be healthy: the upgrade takes several
    // health rounds, and dockerd dies while it runs.
    let mut upgrade = container_app("/midway", 3, &v2);
    upgrade["upgradeStrategy"] = json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.34});
    let (status, body) = send(&s, "PUT", "/v2/apps/midway", Some(&upgrade));
    assert_eq!(status, 200, "{body}");
    let deployment = body["deploymentId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait_for(
        "the upgrade to start a v2 task",
        Duration::from_secs(60),
        || {
            let a = app(&s, "/midway");
            a["tasks"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["version"] == a["version"]))
                .then_some(())
        },
    )
    .unwrap();
    let running: Value = get_json(&format!("{}/v2/deployments", s.url)).unwrap();
    assert!(
        running
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["id"] == deployment.as_str())),
        "the restart must come while the deployment runs: {running}"
    );
    testkit::restart_dockerd().unwrap();
    wait_no_deployments(&s, Duration::from_secs(180));
    wait_for(
        "3 healthy v2 tasks, one container each",
        Duration::from_secs(120),
        || {
            let a = app(&s, "/midway");
            let healthy = healthy_tasks(&a);
            let ids: BTreeSet<String> = healthy
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            (healthy.len() == 3
                && healthy.iter().all(|t| t["version"] == a["version"])
                && ids == api_task_ids(&s)
                && running_containers(&cleanup) == ids)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\napp {}\ncontainers {:?}\nlog:\n{}",
            app(&s, "/midway"),
            slipway_containers(&cleanup.0),
            s.log()
        )
    });
}

#[test]
fn docker_server_kill9_mid_deployment_leaves_no_orphans() {
    let Some(()) = testkit::docker() else { return };
    let v1 = testkit::test_image("v1").unwrap();
    let v2 = testkit::test_image("v2").unwrap();
    let (mut s, _dir) = server();
    let cleanup = agent(&s);
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&container_app("/crashy", 3, &v1)),
    );
    assert_eq!(status, 201);
    wait_no_deployments(&s, Duration::from_secs(120));
    let (status, _) = send(
        &s,
        "PUT",
        "/v2/apps/crashy",
        Some(&json!({"container": container_app("/x", 3, &v2)["container"]})),
    );
    assert_eq!(status, 200);
    let version = app(&s, "/crashy")["version"].clone();
    wait_for("a new-version task", Duration::from_secs(60), || {
        app(&s, "/crashy")["tasks"]
            .as_array()?
            .iter()
            .any(|t| t["version"] == version)
            .then_some(())
    })
    .unwrap();
    s.kill9();
    s.restart().unwrap();
    wait_no_deployments(&s, Duration::from_secs(120));
    wait_for("containers == tasks", Duration::from_secs(60), || {
        let all: BTreeSet<String> = slipway_containers(&cleanup.0)
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        (all == api_task_ids(&s) && all.len() == 3).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: containers {:?} tasks {:?}",
            slipway_containers(&cleanup.0),
            api_task_ids(&s)
        )
    });
    assert!(
        app(&s, "/crashy")["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["version"] == version)
    );
}

#[test]
fn docker_registry_outage_waits_with_a_reason_then_recovers() {
    let (Some(()), Some(())) = (testkit::docker(), testkit::registry_up()) else {
        return;
    };
    let local = testkit::test_image("outage").unwrap();
    let image = testkit::push_to_registry(&local, "outage:v1").unwrap();
    let _ = Command::new("docker").args(["rmi", &image]).output();
    let (s, _dir) = server();
    let _cleanup = agent(&s);
    testkit::stop_registry();
    let mut def = container_app("/pull", 1, &image);
    def["container"]["docker"]["forcePullImage"] = json!(true);
    def["backoffSeconds"] = json!(1);
    def["maxLaunchDelaySeconds"] = json!(2);
    let (status, _) = send(&s, "POST", "/v2/apps", Some(&def));
    let restart = testkit::start_registry;
    assert_eq!(status, 201);
    let failure = wait_for("a pull failure", Duration::from_secs(60), || {
        let f = app(&s, "/pull")["lastTaskFailure"].clone();
        f.is_object().then_some(f)
    });
    let queue = get_json(&format!("{}/v2/queue", s.url)).unwrap();
    restart().unwrap();
    let failure = failure.unwrap();
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("pull"),
        "{failure}"
    );
    assert_eq!(queue["queue"][0]["app"]["id"], "/pull");
    wait_no_deployments(&s, Duration::from_secs(120));
    assert_eq!(healthy_tasks(&app(&s, "/pull")).len(), 1);
}

#[test]
fn container_app_without_a_daemon_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--docker-host", "unix:///nonexistent/docker.sock"],
    )
    .unwrap();
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&container_app("/nodocker", 1, "slipway-testsrv:v1")),
    );
    assert_eq!(status, 201);
    let failure = wait_for("a failure naming Docker", Duration::from_secs(30), || {
        let f = app(&s, "/nodocker")["lastTaskFailure"].clone();
        f.is_object().then_some(f)
    })
    .unwrap();
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("Docker is not available"),
        "{failure}"
    );
    let queue = get_json(&format!("{}/v2/queue", s.url)).unwrap();
    assert_eq!(queue["queue"][0]["app"]["id"], "/nodocker");
    let status = get_json(&format!("{}/api/v1/apps/nodocker/status", s.url)).unwrap();
    assert!(
        status["waiting"]
            .as_str()
            .unwrap()
            .contains("Docker is not available"),
        "{status}"
    );
    // Process apps are unaffected.
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&json!({"id": "/proc", "cmd": "sleep 600"})),
    );
    assert_eq!(status, 201);
    wait_for("the process app", Duration::from_secs(30), || {
        (app(&s, "/proc")["tasksRunning"] == 1).then_some(())
    })
    .unwrap();
}
