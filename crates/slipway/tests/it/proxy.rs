//! The edge proxy under constant load (300 req/s of `/sleep?ms=30`, so requests are in
//! flight whenever something changes): zero non-2xx answers and zero connection errors
//! through (a) an upgrade, (b) a scale-in from 3 to 1, (c) a SIGKILL of one instance
//! (GETs), and (d) a label change.

use crate::*;
use testkit::load::{LoadReport, LoadSpec, spawn_load};
use testkit::{task_processes, wait_for};

/// A 3-instance HTTP app (HAPROXY_0_MODE=http: requests, not TCP connections, are routed,
/// drained and retried) behind a fixed service port, drained for at most 5 s.
fn served_app(id: &str, service_port: u16) -> Value {
    let mut app = web_app(id, 3, "1");
    app["portDefinitions"] = json!([{"port": service_port, "protocol": "tcp", "name": "http"}]);
    app["labels"] = json!({"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "SLIPWAY_DRAIN_TIMEOUT_SECONDS": "5"});
    app
}

/// Starts 300 req/s for `secs` seconds against the service port, once the app is routed.
fn load(s: &SlipwayProcess, port: u16, secs: u64) -> std::thread::JoinHandle<LoadReport> {
    wait_for("the service port to route", Duration::from_secs(30), || {
        matches!(
            testkit::http_get(&format!("http://127.0.0.1:{port}/")),
            Ok((200, _))
        )
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    spawn_load(LoadSpec {
        addr: format!("127.0.0.1:{port}"),
        path: "/sleep?ms=30".into(),
        host: "web.test".into(),
        rate: 300,
        duration: Duration::from_secs(secs),
        max_connections: 64,
        timeout: Duration::from_secs(10),
    })
}

fn start(id: &str) -> (SlipwayProcess, tempfile::TempDir, u16) {
    let (s, dir) = server();
    let port = testkit::free_port();
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&served_app(id, port)));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(60));
    (s, dir, port)
}

#[track_caller]
fn check(report: &LoadReport, what: &str) {
    eprintln!("{what}: {report}");
    assert!(report.sent >= 2400, "{what}: {report}");
    assert_eq!(report.non_2xx, 0, "{what}: {report}");
    assert_eq!(report.errors, 0, "{what}: {report}");
}

#[test]
fn proxy_upgrade_under_load_fails_nothing() {
    let (s, _dir, port) = start("/pa");
    let running = load(&s, port, 10);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) = send(
        &s,
        "PUT",
        "/v2/apps/pa",
        Some(&json!({"env": {"VERSION": "2"}})),
    );
    assert_eq!(status, 200);
    wait_no_deployments(&s, Duration::from_secs(60));
    check(&running.join().unwrap(), "(a) upgrade");
    let (_, body) = testkit::http_get(&format!("http://127.0.0.1:{port}/")).unwrap();
    assert!(body.starts_with("version=2 "), "{body}");
}

#[test]
fn proxy_scale_in_under_load_fails_nothing() {
    let (s, _dir, port) = start("/pb");
    let running = load(&s, port, 10);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) = send(&s, "PUT", "/v2/apps/pb", Some(&json!({"instances": 1})));
    assert_eq!(status, 200);
    wait_no_deployments(&s, Duration::from_secs(60));
    check(&running.join().unwrap(), "(b) scale 3 to 1");
    assert_eq!(healthy_tasks(&app(&s, "/pb")).len(), 1);
}

#[test]
fn proxy_survives_a_sigkilled_instance_for_gets() {
    let (s, _dir, port) = start("/pc");
    let running = load(&s, port, 10);
    std::thread::sleep(Duration::from_secs(2));
    let (pid, _) = task_processes(&s.data_dir)
        .into_iter()
        .next()
        .expect("a task process");
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    check(&running.join().unwrap(), "(c) SIGKILL of one instance");
}

#[test]
fn proxy_label_change_under_load_fails_nothing() {
    let (s, _dir, port) = start("/pd");
    let running = load(&s, port, 10);
    std::thread::sleep(Duration::from_secs(2));
    let labels = json!({"labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_VHOST": "web.test", "SLIPWAY_DRAIN_TIMEOUT_SECONDS": "5"}});
    let (status, _) = send(&s, "PUT", "/v2/apps/pd", Some(&labels));
    assert_eq!(status, 200);
    wait_no_deployments(&s, Duration::from_secs(60));
    check(&running.join().unwrap(), "(d) label change");
    // The new vhost routes too, and `slipway lb haproxy-config` exports it.
    let vhost = s
        .proxy_vhost_addr()
        .expect("the test server has a vhost listener");
    let mut conn = std::net::TcpStream::connect(&vhost).unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "GET / HTTP/1.1\r\nHost: WEB.test:80\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("task=pd."), "{answer}");
    let out = std::process::Command::new(slipway_bin())
        .args(["lb", "haproxy-config"])
        .env("SLIPWAY_URL", &s.url)
        .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = String::from_utf8_lossy(&out.stdout);
    assert!(cfg.contains("web.test"), "{cfg}");
}
