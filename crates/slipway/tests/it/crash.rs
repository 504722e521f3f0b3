//! Crash-only behaviour: kill -9 the server mid-deployment; the restarted server re-adopts
//! tasks, finishes the deployment, and nothing runs twice or without an owner.

use crate::*;
use std::collections::BTreeSet;
use testkit::{task_processes, wait_for};

#[test]
fn server_kill9_during_rolling_deployment_converges_without_duplicates() {
    let (mut s, _dir) = server();
    let (status, _) = send(&s, "POST", "/v2/apps", Some(&web_app("/svc", 3, "1")));
    assert_eq!(status, 201);
    wait_no_deployments(&s, Duration::from_secs(60));
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/svc",
        Some(&json!({"env": {"VERSION": "2"}})),
    );
    assert_eq!(status, 200, "{body}");
    let new_version = app(&s, "/svc")["version"].clone();
    // Crash once the rollout has started some new tasks but not finished.
    wait_for("a new task", Duration::from_secs(60), || {
        let a = app(&s, "/svc");
        a["tasks"]
            .as_array()?
            .iter()
            .any(|t| t["version"] == new_version)
            .then_some(())
    })
    .unwrap();
    s.kill9();
    let during = task_processes(&s.data_dir);
    assert!(!during.is_empty(), "tasks outlive the server");
    s.restart().expect("restart");
    wait_no_deployments(&s, Duration::from_secs(120));

    let a = app(&s, "/svc");
    let healthy = healthy_tasks(&a);
    assert_eq!(healthy.len(), 3, "{a}");
    assert!(healthy.iter().all(|t| t["version"] == new_version));
    // The processes on the machine are exactly the tasks the API knows: no duplicates, no orphans.
    wait_for("old tasks to exit", Duration::from_secs(30), || {
        let procs: BTreeSet<String> = task_processes(&s.data_dir)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        (procs == api_task_ids(&s)).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: processes {:?} vs api {:?}\n{}",
            task_processes(&s.data_dir),
            api_task_ids(&s),
            s.log()
        )
    });
    assert!(s.log().contains("adopted="), "recovery is logged");
}

#[test]
fn acknowledged_changes_survive_kill9() {
    let (mut s, _dir) = server();
    for i in 0..5 {
        let (status, _) = send(
            &s,
            "POST",
            "/v2/apps",
            Some(&json!({"id": format!("/keep/a{i}"), "cmd": "sleep 600", "instances": 0})),
        );
        assert_eq!(status, 201);
    }
    let (status, _) = send(
        &s,
        "PUT",
        "/v2/apps/keep/a0",
        Some(&json!({"instances": 2})),
    );
    assert_eq!(status, 200);
    s.kill9();
    s.restart().unwrap();
    let apps = get_json(&format!("{}/v2/apps", s.url)).unwrap();
    assert_eq!(apps["apps"].as_array().unwrap().len(), 5);
    wait_for("a0 at 2 tasks", Duration::from_secs(60), || {
        (app(&s, "/keep/a0")["tasksRunning"] == 2).then_some(())
    })
    .unwrap();
    let versions = get_json(&format!("{}/v2/apps/keep/a0/versions", s.url)).unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
}

/// A small filesystem of the test's own (tmpfs), unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("slipway-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_refuses_writes_clearly_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount("6m") else {
        assert!(!testkit::strict(), "CI runs as root and can mount a tmpfs");
        return;
    };
    let data = disk.0.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let mut s = SlipwayProcess::start(&slipway_bin(), &data, &["--metrics", "off"])
        .expect("slipway starts");
    let app = |i: u32| json!({"id": format!("/full/a{i}"), "cmd": "sleep 600", "instances": 0});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&app(1)));
    assert_eq!(status, 201, "{body}");
    // Fill the disk.
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut refused = None;
    for i in 2..40 {
        let (status, body) = send(&s, "POST", "/v2/apps", Some(&app(i)));
        if status != 201 {
            refused = Some((i, status, body));
            break;
        }
    }
    let (refused_id, status, body) = refused.expect("a write is refused on a full disk");
    assert_eq!(status, 507, "{body}");
    assert!(body.to_string().contains("disk is full"), "{body}");
    // Nothing half-written: the refused app does not exist.
    let (status, _) = send(&s, "GET", &format!("/v2/apps/full/a{refused_id}"), None);
    assert_eq!(status, 404);
    // Space back: writes work without repair; kill -9 loses nothing committed.
    std::fs::remove_file(&filler).expect("free space");
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&app(refused_id)));
    assert_eq!(status, 201, "{body}");
    s.kill9();
    s.restart().expect("restart");
    for i in 1..=refused_id {
        let (status, _) = send(&s, "GET", &format!("/v2/apps/full/a{i}"), None);
        assert_eq!(status, 200, "a{i} survived");
    }
    drop(s);
}

#[test]
fn sigterm_with_work_in_flight_stops_in_bounded_time_and_the_restart_resumes_it() {
    let (mut s, _dir) = server();
    // A deployment that cannot finish (its health check never passes), and an event
    // stream held open, as a dashboard would.
    let def = json!({"id": "/busy", "cmd": "sleep 600", "instances": 2,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"},
                          "gracePeriodSeconds": 600, "intervalSeconds": 1}]});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    let deployment = body["deployments"][0]["id"].as_str().map(str::to_string);
    let _events = testkit::EventCollector::start(&s.url).expect("event stream");
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    s.terminate();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?}");
    s.restart().expect("restart");
    let (_, deployments) = send(&s, "GET", "/v2/deployments", None);
    let ids: Vec<&str> = deployments
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 1, "the deployment resumes: {deployments}");
    if let Some(d) = &deployment {
        assert_eq!(ids[0], d);
    }
    let a = app(&s, "/busy");
    assert_eq!(a["instances"], 2);
}
