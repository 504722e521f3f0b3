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
