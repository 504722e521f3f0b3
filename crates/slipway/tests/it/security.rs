//! The attacks of the security review, made against a real server by a developer: a QA
//! app that goes for the server's database and key, privileged container options, another
//! environment's virtual host and low service ports, and unbounded instance counts. Each
//! test passes only when the attack fails with its documented error and changes nothing.

use crate::*;
use testkit::http_as;

/// Creates `name` with `role` and returns a token for them.
fn user_token(s: &SlipwayProcess, name: &str, role: &str) -> String {
    let (status, body) = send(
        s,
        "POST",
        "/api/v1/users",
        Some(&json!({"name": name, "role": role})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        s,
        "POST",
        "/api/v1/tokens",
        Some(&json!({"user": name, "name": "test"})),
    );
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn send_as(
    s: &SlipwayProcess,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, text) =
        http_as(token, method, &format!("{}{path}", s.url), body).expect("request");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// The task's stdout once it has ended (the app runs one instance that exits).
fn task_output(s: &SlipwayProcess, app_id: &str) -> String {
    testkit::wait_for("the task to end", Duration::from_secs(60), || {
        let a = app(s, app_id);
        a["lastTaskFailure"]["taskId"]
            .as_str()
            .or_else(|| a["tasks"][0]["id"].as_str())
            .map(str::to_string)
            .filter(|_| a["lastTaskFailure"].is_object())
    })
    .and_then(|task| {
        let (_, text) = http("GET", &format!("{}/api/v1/tasks/{task}/logs", s.url), None)?;
        Ok(text)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()))
}

#[test]
fn a_developer_task_cannot_reach_the_servers_database_or_key() {
    if !running_as_root() {
        assert!(
            !testkit::strict(),
            "CI runs as root: tasks must be isolated"
        );
        return;
    }
    let (s, dir) = server();
    let dana = user_token(&s, "dana", "developer");
    let db = dir.path().join("slipway.db");
    let key = dir.path().join("secret.key");
    let script = format!(
        "import sqlite3\n\
         for f in ['{key}', '{db}']:\n    \
             try:\n        open(f, 'rb').read(1); print('READ', f)\n    \
             except OSError as e:\n        print('DENIED', f, e.errno)\n\
         try:\n    c = sqlite3.connect('{db}')\n    \
             c.execute(\"update users set role='admin' where name='dana'\"); c.commit(); print('WROTE')\n\
         except Exception as e:\n    print('DENIED db', e)\n\
         raise SystemExit(3)\n",
        key = key.display(),
        db = db.display()
    );
    let def = json!({"id": "/qa/steal", "args": ["/usr/bin/python3", "-c", script],
                     "instances": 1, "cpus": 0.01, "mem": 32});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    let out = task_output(&s, "/qa/steal");
    assert!(!out.contains("READ"), "the task read a server file: {out}");
    assert!(!out.contains("WROTE"), "the task wrote the database: {out}");
    assert!(out.contains("DENIED"), "{out}");
    let (_, users) = send(&s, "GET", "/api/v1/users", None);
    let dana_row = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "dana"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(dana_row["role"], "developer", "{users}");
    // The server's files are the server's alone.
    use std::os::unix::fs::MetadataExt;
    for f in [&db, &key] {
        let mode = std::fs::metadata(f).expect("exists").mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let dir_mode = std::fs::metadata(dir.path()).expect("data dir").mode() & 0o777;
    assert_eq!(dir_mode, 0o711, "searchable, not listable");
}

#[test]
fn another_user_and_risky_container_options_need_a_privilege() {
    let (s, _dir) = server();
    let dana = user_token(&s, "dana", "developer");
    let asks: [(Value, &str); 6] = [
        (
            json!({"id": "/qa/root", "cmd": "id", "user": "root"}),
            "user root",
        ),
        (
            json!({"id": "/qa/nobody", "cmd": "id", "user": "nobody"}),
            "user nobody",
        ),
        (
            json!({"id": "/qa/priv", "container": {"type": "DOCKER",
                   "docker": {"image": "x", "privileged": true, "network": "BRIDGE"}}}),
            "privileged",
        ),
        (
            json!({"id": "/qa/host", "container": {"type": "DOCKER",
                   "docker": {"image": "x", "network": "BRIDGE"},
                   "volumes": [{"containerPath": "/host", "hostPath": "/", "mode": "RW"}]}}),
            "hostPath /",
        ),
        (
            json!({"id": "/qa/cap", "container": {"type": "DOCKER", "docker": {"image": "x",
                   "network": "BRIDGE", "parameters": [{"key": "cap-add", "value": "SYS_ADMIN"}]}}}),
            "cap-add SYS_ADMIN",
        ),
        (
            json!({"id": "/qa/net", "container": {"type": "DOCKER",
                   "docker": {"image": "x", "network": "HOST"}}}),
            "network=host",
        ),
    ];
    for (def, named) in &asks {
        let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(def));
        assert_eq!(status, 403, "{def}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(named), "{msg}");
    }
    // A later partial update cannot add what a create could not.
    let (status, body) = send_as(
        &s,
        &dana,
        "POST",
        "/v2/apps",
        Some(&json!({"id": "/qa/plain", "cmd": "sleep 600", "instances": 0})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = send_as(
        &s,
        &dana,
        "PUT",
        "/v2/apps/qa/plain",
        Some(&json!({"user": "root"})),
    );
    assert_eq!(status, 403, "{body}");
    let (_, apps) = send(&s, "GET", "/v2/apps", None);
    let ids: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["/qa/plain"], "nothing refused was stored");
    assert!(app(&s, "/qa/plain").get("user").is_none());
    // An admin may; and the policy can grant a privilege per environment.
    let (status, body) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&json!({"id": "/qa/admin-root", "cmd": "sleep 1", "user": "root", "instances": 0})),
    );
    assert_eq!(status, 201, "{body}");
    let (_, mut policies) = send(&s, "GET", "/api/v1/policies", None);
    for env in policies["environments"].as_array_mut().unwrap() {
        if env["name"] == "qa" {
            env["privileges"] = json!({"capAdd": ["role:developer"]});
        }
    }
    let (status, body) = send(&s, "PUT", "/api/v1/policies", Some(&policies));
    assert_eq!(status, 200, "{body}");
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&asks[4].0));
    assert_eq!(status, 201, "granted by the policy: {body}");
    let (status, _) = send_as(&s, &dana, "POST", "/v2/apps", Some(&asks[2].0));
    assert_eq!(status, 403, "still not privileged");
}

#[test]
fn a_qa_app_cannot_take_a_prod_host_name_or_a_low_port() {
    let (s, _dir) = server();
    let dana = user_token(&s, "dana", "developer");
    let prod = json!({"id": "/prod/shop", "cmd": "sleep 600", "instances": 0,
                      "labels": {"HAPROXY_0_VHOST": "shop.example.com"},
                      "portDefinitions": [{"port": 0}]});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&prod));
    assert_eq!(status, 201, "{body}");
    let evil = json!({"id": "/qa/evil", "cmd": "sleep 600", "instances": 0,
                      "labels": {"HAPROXY_0_VHOST": "SHOP.example.com",
                                 "HAPROXY_0_PATH": "/login"},
                      "portDefinitions": [{"port": 0}]});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&evil));
    assert_eq!(status, 409, "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("shop.example.com") && msg.contains("/prod/shop"),
        "{msg}"
    );
    // The same through a later label change.
    let plain = json!({"id": "/qa/evil", "cmd": "sleep 600", "instances": 0});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&plain));
    assert_eq!(status, 201, "{body}");
    let (status, body) = send_as(
        &s,
        &dana,
        "PUT",
        "/v2/apps/qa/evil",
        Some(&json!({"labels": {"HAPROXY_0_VHOST": "shop.example.com"}})),
    );
    assert_eq!(status, 409, "{body}");
    // Its service port, too (no two apps share one).
    let port = app(&s, "/prod/shop")["portDefinitions"][0]["port"].clone();
    let (status, body) = send_as(
        &s,
        &dana,
        "PUT",
        "/v2/apps/qa/evil",
        Some(&json!({"portDefinitions": [{"port": port}]})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("in use by app /prod/shop"),
        "{body}"
    );
    // Ports below 1024 are the admins'.
    let low = json!({"id": "/qa/low", "cmd": "sleep 600", "instances": 0,
                     "portDefinitions": [{"port": 80}]});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&low));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("servicePort 80")
    );
}

#[test]
fn instance_counts_and_totals_have_limits() {
    let (s, _dir) = server();
    for (def, named) in [
        (
            json!({"id": "/big", "cmd": "sleep 600", "instances": 1_000_000_000u64}),
            "per app",
        ),
        (
            json!({"id": "/heavy", "cmd": "sleep 600", "instances": 150, "cpus": 1}),
            "overcommit",
        ),
    ] {
        let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
        assert_eq!(status, 422, "{def}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(named), "{msg}");
    }
    let (_, apps) = send(&s, "GET", "/v2/apps", None);
    assert_eq!(apps["apps"], json!([]), "nothing was stored");
    // Scaling an existing app up into the limit is refused the same way; down is not.
    let (status, _) = send(
        &s,
        "POST",
        "/v2/apps",
        Some(&json!({"id": "/small", "cmd": "sleep 600", "instances": 0, "cpus": 1})),
    );
    assert_eq!(status, 201);
    let (status, body) = send(
        &s,
        "PUT",
        "/v2/apps/small",
        Some(&json!({"instances": 150})),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(&s, "PUT", "/v2/apps/small", Some(&json!({"instances": 0})));
    assert_eq!(status, 200, "{body}");
}

/// Sends a raw request with Basic credentials `user:password`; returns (status, headers).
fn basic(
    s: &SlipwayProcess,
    method: &str,
    path: &str,
    user: &str,
    password: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    let token = base64_basic(user, password);
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn base64_basic(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn guessing_passwords_is_throttled_and_audited_once_with_short_rows() {
    let (s, _dir) = server();
    let (status, body) = send(
        &s,
        "POST",
        "/api/v1/users",
        Some(&json!({"name": "dana", "role": "developer", "password": "the-right-password"})),
    );
    assert_eq!(status, 201, "{body}");
    let long_path = format!("/v2/apps/{}", "x".repeat(60_000));
    let mut statuses = Vec::new();
    let mut sixth = std::time::Instant::now();
    for i in 0..30 {
        let path = if i % 2 == 0 {
            long_path.as_str()
        } else {
            "/v2/apps"
        };
        statuses.push(basic(&s, "POST", path, "dana", &format!("guess-{i}")).0);
        if i == 5 {
            sixth = std::time::Instant::now();
        }
    }
    // Five free failures, the sixth starts a delay (at least a second, doubling).
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 401).count() <= 8,
        "{statuses:?}"
    );
    let asked = std::time::Instant::now();
    let (status, head) = basic(&s, "POST", "/v2/apps", "dana", "the-right-password");
    if asked.duration_since(sixth) < Duration::from_millis(900) {
        assert_eq!(status, 429, "even the right password waits: {head}");
        assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    }
    let (_, audit) = send(&s, "GET", "/api/v1/audit?user=dana", None);
    let rows = audit["records"].as_array().cloned().unwrap_or_default();
    assert!(
        (6..=8).contains(&rows.len()),
        "five failures and the burst, not thirty: {} rows",
        rows.len()
    );
    assert!(
        rows.iter().all(|r| r.to_string().len() < 2_000),
        "audit rows are truncated"
    );
    assert!(
        rows.iter()
            .any(|r| r["detail"].as_str().is_some_and(|d| d.contains("delayed")))
    );
    // Other users are not locked out by dana's guesses.
    let (status, _) = basic(&s, "GET", "/v2/apps", "nobody-else", "x");
    assert_eq!(status, 401);
}

#[test]
fn idle_connections_neither_exhaust_descriptors_nor_stay_open() {
    // The server starts with the common soft limit of 1,024 open files and raises it.
    let me = std::process::id().to_string();
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &me, "--nofile=1024:"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        lowered || !testkit::strict(),
        "prlimit (util-linux) is needed"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(
        &slipway_bin(),
        dir.path(),
        &["--header-timeout", "2s", "--max-connections", "1000"],
    )
    .expect("slipway starts");
    let pid = s.pid().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(soft > 1024, "raised to the hard limit: {limits}");
    // Restore ours: 1,100 sockets of our own need room.
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &me, "--nofile=20000:"])
        .status();
    let addr = s.url.trim_start_matches("http://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..1_100)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() > 1_000, "{} connected", idle.len());
    // Beyond the cap: a clear 503 (or the connection refused), never a hang.
    // The API still answers, well within a second, once the silent ones are closed.
    let started = std::time::Instant::now();
    testkit::wait_for("the API to answer", Duration::from_secs(10), || {
        get_json(&format!("{}/v2/info", s.url)).ok().map(|_| ())
    })
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // Silent connections are closed after the header timeout.
    use std::io::Read;
    let mut first = idle.into_iter().next().expect("one");
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let closed_at = std::time::Instant::now();
    let n = first.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || text.contains("408") || text.contains("503"),
        "closed or told why: {text}"
    );
    assert!(closed_at.elapsed() < Duration::from_secs(9));
}

#[test]
fn a_secret_is_used_only_where_it_is_scoped_and_prod_logs_are_not_for_developers() {
    let (s, _dir) = server();
    let dana = user_token(&s, "dana", "developer");
    let viewer = user_token(&s, "vic", "viewer");
    // Scopes are set by deployers and admins, and name environments that exist.
    let (status, body) = send_as(
        &s,
        &dana,
        "PUT",
        "/api/v1/secrets/prod-db",
        Some(&json!({"value": "s3cret-prod-password", "environments": ["prod"]})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        &s,
        "PUT",
        "/api/v1/secrets/prod-db",
        Some(&json!({"value": "s3cret-prod-password", "environments": ["production"]})),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(
        &s,
        "PUT",
        "/api/v1/secrets/prod-db",
        Some(&json!({"value": "s3cret-prod-password", "environments": ["prod"]})),
    );
    assert_eq!(status, 204, "{body}");
    let steal = json!({"id": "/qa/print", "cmd": "echo $PW | base64; sleep 600",
                       "env": {"PW": {"secret": "pw"}}, "secrets": {"pw": {"source": "prod-db"}}});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&steal));
    assert_eq!(status, 403, "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("prod-db") && msg.contains("qa"), "{msg}");
    // Not by a label trick either: an unscoped secret is usable nowhere.
    let (status, _) = send(
        &s,
        "PUT",
        "/api/v1/secrets/loose",
        Some(&json!({"value": "v"})),
    );
    assert_eq!(status, 204);
    let loose = json!({"id": "/qa/loose", "cmd": "sleep 600", "instances": 0,
                       "env": {"V": {"secret": "v"}}, "secrets": {"v": {"source": "loose"}}});
    let (status, _) = send_as(&s, &dana, "POST", "/v2/apps", Some(&loose));
    assert_eq!(status, 403);
    let (_, apps) = send(&s, "GET", "/v2/apps", None);
    assert_eq!(apps["apps"], json!([]), "nothing refused was stored");
    // A prod app may use it; its log is for those who may deploy there.
    let prod = json!({"id": "/prod/db-user", "cmd": "echo started; sleep 600",
                      "env": {"PW": {"secret": "pw"}}, "secrets": {"pw": {"source": "prod-db"}}});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&prod));
    assert_eq!(status, 201, "{body}");
    let task = testkit::wait_for("the prod task", Duration::from_secs(30), || {
        app(&s, "/prod/db-user")["tasks"][0]["id"]
            .as_str()
            .map(str::to_string)
    })
    .unwrap();
    let logs = format!("/api/v1/tasks/{task}/logs");
    for token in [&dana, &viewer] {
        let (status, body) = send_as(&s, token, "GET", &logs, None);
        assert_eq!(status, 403, "{body}");
    }
    let (status, _) = send(&s, "GET", &logs, None);
    assert_eq!(status, 200);
}

#[test]
fn without_authentication_only_local_same_origin_requests_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--auth", "none"])
        .expect("slipway starts");
    let addr = s.url.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().unwrap_or_default().to_string();
    let post = |host: &str, origin: Option<&str>| -> u16 {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&addr).expect("connect");
        let body = r#"{"id": "/csrf", "cmd": "id", "instances": 0}"#;
        let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
        write!(
            c,
            "POST /v2/apps HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    // A web page's cross-origin form post, and a rebound DNS name.
    assert_eq!(post(&addr, Some("http://evil.example")), 403);
    assert_eq!(post(&format!("evil.example:{port}"), None), 403);
    let (_, apps) = send(&s, "GET", "/v2/apps", None);
    assert_eq!(apps["apps"], json!([]), "nothing was created");
    // The CLI and curl on this machine.
    assert_eq!(post(&addr, None), 201);
    let local = format!("localhost:{port}");
    assert_eq!(
        post(&local, Some(&format!("http://{local}"))),
        409,
        "same origin: served"
    );
}

#[test]
fn a_developers_rollback_cannot_restore_what_only_a_deployer_may_deploy() {
    let (s, _dir) = server();
    let lee = user_token(&s, "lee", "deployer");
    let dana = user_token(&s, "dana", "developer");
    let def = json!({"id": "/shop", "cmd": "sleep 600", "instances": 1,
                     "labels": {"SLIPWAY_ENV": "prod"}});
    let (status, body) = send_as(&s, &lee, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(60));
    // The deployer takes the app out of prod with a change whose deployment never ends.
    let stuck = json!({"labels": {}, "cmd": "sleep 601",
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"},
                          "gracePeriodSeconds": 600, "intervalSeconds": 1}]});
    let (status, body) = send_as(&s, &lee, "PUT", "/v2/apps/shop", Some(&stuck));
    assert_eq!(status, 200, "{body}");
    let id = body["deploymentId"].as_str().unwrap().to_string();
    // Rolling it back would put the prod label back: not for a developer.
    let (status, body) = send_as(&s, &dana, "DELETE", &format!("/v2/deployments/{id}"), None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        app(&s, "/shop")["labels"],
        json!({}),
        "nothing was restored"
    );
    let (status, _) = send_as(&s, &lee, "DELETE", &format!("/v2/deployments/{id}"), None);
    assert_eq!(status, 200, "the deployer may");
    assert_eq!(app(&s, "/shop")["labels"]["SLIPWAY_ENV"], "prod");
}

#[test]
fn a_command_health_check_runs_as_its_task_not_as_the_server() {
    if !running_as_root() {
        return;
    }
    let (s, dir) = server();
    let dana = user_token(&s, "dana", "developer");
    let out = std::env::temp_dir().join(format!("slipway-check-leak-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let check = format!(
        "{{ id -u; cat {key} || echo DENIED; echo TOKEN=$SLIPWAY_ADMIN_TOKEN; }} > {out} 2>&1; true",
        key = dir.path().join("secret.key").display(),
        out = out.display()
    );
    let def = json!({"id": "/qa/checky", "cmd": "sleep 600", "instances": 1,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": check},
                          "intervalSeconds": 1, "gracePeriodSeconds": 30}]});
    let (status, body) = send_as(&s, &dana, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    let text = testkit::wait_for("the check to run", Duration::from_secs(30), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|t| t.contains("TOKEN="))
    })
    .unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(!text.starts_with("0\n"), "the check ran as root: {text}");
    assert!(text.contains("DENIED"), "{text}");
    assert!(
        text.contains("TOKEN=\n"),
        "the server's environment leaked: {text}"
    );
}

/// Starts a run of `pipeline` as `token` and waits for its end; the run.
fn run_to_end(s: &SlipwayProcess, token: &str, pipeline: &str) -> Value {
    let (status, run) = send_as(
        s,
        token,
        "POST",
        &format!("/api/v1/pipelines/{pipeline}/runs"),
        Some(&json!({})),
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    testkit::wait_for("the run to end", Duration::from_secs(120), || {
        let (_, run) = send(s, "GET", &format!("/api/v1/runs/{id}"), None);
        (!matches!(run["status"].as_str(), Some("queued" | "running"))).then_some(run)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()))
}

/// Every log line of a run's step.
fn step_log(s: &SlipwayProcess, run: &Value, step: &str) -> String {
    let id = run["id"].as_str().unwrap();
    let (status, body) = send(
        s,
        "GET",
        &format!("/api/v1/runs/{id}/steps/{step}/logs?limit=5000"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["line"].as_str().unwrap_or_default().to_string() + "\n")
        .collect()
}

#[test]
fn a_developers_pipeline_step_reaches_neither_the_server_nor_another_pipeline() {
    if !running_as_root() {
        assert!(
            !testkit::strict(),
            "CI runs as root: pipeline steps must be isolated"
        );
        return;
    }
    let (s, dir) = server();
    let dana = user_token(&s, "dana", "developer");
    // The admin's pipeline leaves a build artefact in its workspace.
    let release = testkit::git_repo(
        "version: 1\nname: release\nsteps:\n  build: { run: 'echo genuine > artefact' }\n",
        &[],
    );
    let (status, body) = send(
        &s,
        "PUT",
        "/api/v1/pipelines/release",
        Some(&json!({"repo": release.path().to_str().unwrap(), "branch": "dev"})),
    );
    assert_eq!(status, 200, "{body}");
    let built = run_to_end(&s, testkit::ADMIN_TOKEN, "release");
    assert_eq!(built["status"], "succeeded", "{built}");
    let artefact = dir
        .path()
        .join("runs")
        .join(built["id"].as_str().unwrap())
        .join("workspace/artefact");
    assert_eq!(
        std::fs::read_to_string(&artefact).expect("the artefact"),
        "genuine\n"
    );

    // The developer's pipeline goes for the server's files, the other pipeline's
    // artefact, root's home and the server's environment, then shows it still has a
    // toolchain and a home of its own.
    let db = dir.path().join("slipway.db");
    let key = dir.path().join("secret.key");
    let script = format!(
        "import os, sqlite3\n\
         print('UID', os.getuid(), 'GROUPS', os.getgroups())\n\
         for f in ['{key}', '{db}']:\n    \
             try:\n        open(f, 'rb').read(1); print('READ', f)\n    \
             except OSError as e:\n        print('DENIED', f, e.errno)\n\
         try:\n    c = sqlite3.connect('{db}')\n    \
             c.execute(\"update users set role='admin' where name='dana'\"); c.commit(); print('WROTE db')\n\
         except Exception as e:\n    print('DENIED db', e)\n\
         try:\n    open('{artefact}', 'w').write('tampered'); print('WROTE artefact')\n\
         except OSError as e:\n    print('DENIED artefact', e.errno)\n\
         print('ROOT HOLDS', sorted(os.listdir('/root')))\n\
         print('TOKEN IN ENV', any('TOKEN' in k or 'PASSWORD' in k for k in os.environ))\n\
         open(os.path.join(os.environ['HOME'], 'cache'), 'w').write('mine'); print('HOME OK')\n",
        key = key.display(),
        db = db.display(),
        artefact = artefact.display(),
    );
    let steal = testkit::git_repo(
        "version: 1\nname: steal\nsteps:\n  steal:\n    run:\n      - python3 steal.py\n      - 'cargo --version && echo TOOLCHAIN OK'\n      - 'echo \"who=$(id -u)\" >> \"$SLIPWAY_OUTPUT\"'\n",
        &[("steal.py", &script)],
    );
    let (status, body) = send_as(
        &s,
        &dana,
        "PUT",
        "/api/v1/pipelines/steal",
        Some(&json!({"repo": steal.path().to_str().unwrap(), "branch": "dev"})),
    );
    assert_eq!(status, 200, "{body}");
    let run = run_to_end(&s, &dana, "steal");
    let log = step_log(&s, &run, "steal");
    assert_eq!(run["status"], "succeeded", "{run}\n{log}\n{}", s.log());
    assert!(!log.contains("UID 0 "), "the step ran as root:\n{log}");
    assert!(log.contains("GROUPS ["), "{log}");
    assert!(
        !log.contains("READ "),
        "the step read a server file:\n{log}"
    );
    assert!(
        !log.contains("WROTE"),
        "the step wrote where it may not:\n{log}"
    );
    assert!(log.contains("DENIED artefact"), "{log}");
    assert!(log.contains("TOKEN IN ENV False"), "{log}");
    assert!(log.contains("HOME OK"), "{log}");
    assert!(
        log.contains("TOOLCHAIN OK"),
        "the toolchain is out of reach:\n{log}"
    );
    // Root's home shows the tool directories and nothing else (no keys, no histories).
    let root_line = log
        .lines()
        .find(|l| l.starts_with("ROOT HOLDS"))
        .unwrap_or_default();
    for private in [".ssh", ".bash_history", ".bashrc", ".profile"] {
        assert!(!root_line.contains(&format!("'{private}'")), "{root_line}");
    }
    let outputs = run["steps"][0]["outputs"]["who"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{run}"));
    assert_ne!(outputs, "0");
    assert_eq!(
        std::fs::read_to_string(&artefact).expect("the artefact"),
        "genuine\n",
        "another pipeline's artefact changed"
    );
    let (_, users) = send(&s, "GET", "/api/v1/users", None);
    let dana_row = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "dana"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(dana_row["role"], "developer", "{users}");
}
