//! Secrets and bootstrap with the real binary: a planted secret reaches its task but no
//! output (server log, API responses, events, audit records, the database file); the first
//! admin's one-time password is printed once; `--auth none` only on loopback.

use crate::*;
use std::process::{Command, Stdio};
use testkit::{EventCollector, wait_for};

const SECRET: &str = "pl4nted-S3CRET-value-7f3a";

#[test]
fn a_planted_secret_appears_in_no_output() {
    let (s, dir) = server();
    let events = EventCollector::start(&s.url).unwrap();
    let (status, body) = send(
        &s,
        "PUT",
        "/api/v1/secrets/db-password",
        Some(&json!({"value": SECRET, "environments": ["qa"]})),
    );
    assert_eq!(status, 204, "{body}");
    // The task proves it received the value (its length) without printing it.
    let app = json!({
        "id": "/qa/db-user",
        "cmd": "test \"${#DB_PASSWORD}\" -eq 25 && echo secret-received && sleep 600",
        "env": {"DB_PASSWORD": {"secret": "dbpass"}, "PLAIN": "visible"},
        "secrets": {"dbpass": {"source": "db-password"}},
    });
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&app));
    assert_eq!(status, 201, "{body}");
    let task = wait_for("the task to run", Duration::from_secs(30), || {
        let a = crate::app(&s, "/qa/db-user");
        (a["tasksRunning"] == 1).then(|| a["tasks"][0]["id"].as_str().unwrap().to_string())
    })
    .unwrap();
    wait_for(
        "the task to report the secret",
        Duration::from_secs(30),
        || {
            let log = get_json(&format!("{}/api/v1/tasks/{task}/logs", s.url)).ok()?;
            log["data"]
                .as_str()?
                .contains("secret-received")
                .then_some(())
        },
    )
    .unwrap();
    // Attempts to read it back, and a bad write that must not echo it.
    let (status, _) = send(&s, "GET", "/api/v1/secrets/db-password", None);
    assert!(status == 404 || status == 405, "no read route: {status}");
    let (bad_status, bad_body) = send(
        &s,
        "PUT",
        "/api/v1/secrets/db-password",
        Some(&json!({"valu": SECRET})),
    );
    assert_eq!(bad_status, 400);
    let version = crate::app(&s, "/qa/db-user")["version"]
        .as_str()
        .unwrap()
        .to_string();
    let mut outputs = vec![bad_body.to_string()];
    for path in [
        "/v2/apps?embed=apps.tasks".to_string(),
        "/v2/apps/qa/db-user".to_string(),
        format!("/v2/apps/qa/db-user/versions/{version}"),
        "/v2/tasks".to_string(),
        "/v2/queue".to_string(),
        "/v2/deployments".to_string(),
        "/api/v1/deployments".to_string(),
        "/api/v1/apps/qa/db-user/status".to_string(),
        "/api/v1/secrets".to_string(),
        "/api/v1/audit?limit=1000".to_string(),
        format!("/api/v1/tasks/{task}/logs"),
        format!("/api/v1/tasks/{task}/logs?stream=stderr"),
    ] {
        let (status, body) = send(&s, "GET", &path, None);
        assert_eq!(status, 200, "{path}: {body}");
        outputs.push(body.to_string());
    }
    assert!(
        outputs[1].contains("db-password") || outputs[1].contains("dbpass"),
        "the reference is visible"
    );
    assert!(
        outputs.iter().any(|o| o.contains("visible")),
        "plain env values are visible"
    );
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(SECRET), "API output {i} holds the secret");
    }
    let audit = &outputs[10];
    assert!(
        audit.contains("PUT /api/v1/secrets/db-password"),
        "the write is audited: {audit}"
    );
    let evs: String = events.events().iter().map(|(_, v)| v.to_string()).collect();
    assert!(!evs.is_empty());
    assert!(!evs.contains(SECRET), "events hold the secret");
    assert!(!s.log().contains(SECRET), "the server log holds the secret");
    let db = std::fs::read(dir.path().join("slipway.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("slipway.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the database holds the secret in clear"
        );
    }
}

#[test]
fn the_first_admin_password_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    // Every listener on a port of the test's choosing: nothing may assume 8000 is free.
    let vhost = format!("127.0.0.1:{}", testkit::free_port());
    let start = || {
        Command::new(slipway_bin())
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--proxy-vhost-listen",
                &vhost,
                "--service-ports",
                "20900-20999",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("SLIPWAY_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let read_until_up = |child: &mut std::process::Child| {
        use std::io::{BufRead, BufReader};
        let mut lines = Vec::new();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            lines.push(line.clone());
            if line.contains("slipway is up") {
                break;
            }
            line.clear();
        }
        lines.join("")
    };
    let mut first = start();
    let out = read_until_up(&mut first);
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("no bootstrap password in:\n{out}"));
    assert_eq!(out.matches(&password).count(), 1, "printed exactly once");
    // It works as HTTP Basic credentials.
    let whoami = Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("admin:{password}"),
            &format!("http://127.0.0.1:{port}/api/v1/whoami"),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&whoami.stdout).contains("\"admin\""));
    let _ = first.kill();
    let _ = first.wait();
    let mut second = start();
    let out = read_until_up(&mut second);
    assert!(!out.contains(&password), "never shown again:\n{out}");
    let _ = second.kill();
    let _ = second.wait();
}

#[test]
fn auth_none_is_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(slipway_bin())
        .args([
            "up",
            "--auth",
            "none",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth none is only allowed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
