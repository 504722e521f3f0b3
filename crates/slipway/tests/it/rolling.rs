//! A 3-instance HTTP app upgraded with PUT: the health floor holds, the deployment is
//! visible while it runs, events stream, and every task ends on the new version.

use crate::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use testkit::{EventCollector, http_get, task_processes, wait_for};

#[test]
fn rolling_upgrade_keeps_minimum_health_and_replaces_killed_tasks() {
    let (s, _dir) = server();
    let events = EventCollector::start(&s.url).expect("event stream");
    let mut def = web_app("/web", 3, "1");
    def["upgradeStrategy"] = json!({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(60));
    assert_eq!(healthy_tasks(&app(&s, "/web")).len(), 3);

    // Watch health during the upgrade from another thread.
    let stop = Arc::new(AtomicBool::new(false));
    let min_healthy = Arc::new(AtomicUsize::new(usize::MAX));
    let saw_deployment = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (url, stop, min_healthy, saw) = (
            s.url.clone(),
            stop.clone(),
            min_healthy.clone(),
            saw_deployment.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(v) = get_json(&format!("{url}/v2/apps/web")) {
                    min_healthy.fetch_min(healthy_tasks(&v["app"]).len(), Ordering::SeqCst);
                }
                if let Ok(d) = get_json(&format!("{url}/v2/deployments"))
                    && d[0]["currentActions"][0]["action"] == "RestartApplication"
                {
                    saw.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/web",
        Some(&json!({"env": {"VERSION": "2"}})),
    );
    assert_eq!(status, 200, "{body}");
    wait_no_deployments(&s, Duration::from_secs(120));
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();

    // ceil(3 × 0.5) = 2 healthy at every moment we looked.
    let min = min_healthy.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&min),
        "healthy tasks during the upgrade went down to {min}"
    );
    assert!(
        saw_deployment.load(Ordering::SeqCst),
        "deployment was visible in /v2/deployments"
    );
    let a = app(&s, "/web");
    let tasks = healthy_tasks(&a);
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        assert_eq!(
            t["version"], a["version"],
            "every task runs the new version"
        );
        let port = t["ports"][0].as_u64().unwrap();
        let (_, body) = http_get(&format!("http://127.0.0.1:{port}/")).unwrap();
        assert!(body.starts_with("version=2 "), "{body}");
    }

    // kill -9 one task: a healthy replacement follows (backoff 1 s + one 1 s interval).
    let victim = tasks[0]["id"].as_str().unwrap().to_string();
    let pid = task_processes(&s.data_dir)
        .into_iter()
        .find(|(_, t)| *t == victim)
        .map(|(p, _)| p)
        .expect("task process");
    let killed_at = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    wait_for("a healthy replacement", Duration::from_secs(60), || {
        let h = healthy_tasks(&app(&s, "/web"));
        (h.len() == 3 && h.iter().all(|t| t["id"] != victim.as_str())).then_some(())
    })
    .unwrap();
    eprintln!(
        "replacement healthy {:?} after kill -9",
        killed_at.elapsed()
    );
    let failure = &app(&s, "/web")["lastTaskFailure"];
    assert_eq!(failure["taskId"], victim.as_str());
    assert_eq!(failure["message"], "Command terminated with signal Killed");

    let types = events.types();
    for t in [
        "deployment_info",
        "deployment_success",
        "status_update_event",
        "health_status_changed_event",
        "event_stream_attached",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    let (_, plan) = events
        .events()
        .into_iter()
        .find(|(t, _)| t == "deployment_info")
        .unwrap();
    assert!(
        plan["plan"]["original"].is_object() && plan["plan"]["target"].is_object(),
        "heavy plan by default"
    );
}

#[test]
fn unhealthy_task_is_killed_and_replaced_with_reason() {
    let (s, _dir) = server();
    let mut def = web_app("/flaky", 1, "1");
    def["healthChecks"][0]["gracePeriodSeconds"] = json!(0);
    def["healthChecks"][0]["maxConsecutiveFailures"] = json!(2);
    let (status, _) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201);
    wait_no_deployments(&s, Duration::from_secs(60));
    // With no grace period a slow start under load can cost the first task its health
    // (then it is replaced): take whichever task is healthy now.
    let first = wait_for("a healthy task", Duration::from_secs(60), || {
        healthy_tasks(&app(&s, "/flaky")).first().cloned()
    })
    .unwrap();
    let port = first["ports"][0].as_u64().unwrap();
    http_get(&format!("http://127.0.0.1:{port}/health/fail")).unwrap();
    wait_for("an unhealthy kill", Duration::from_secs(60), || {
        let a = app(&s, "/flaky");
        let f = &a["lastTaskFailure"];
        (f["taskId"] == first["id"] && healthy_tasks(&a).len() == 1).then_some(())
    })
    .unwrap();
    let failure = app(&s, "/flaky")["lastTaskFailure"].clone();
    assert_eq!(failure["state"], "TASK_KILLED");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("health check failed 2 consecutive times: HTTP 503"),
        "{failure}"
    );
}
