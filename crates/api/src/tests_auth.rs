//! Authentication, authorisation and audit over real HTTP: the route scan, environment
//! policies, and the audit trail of allowed and denied attempts.

use crate::ROUTES;
use crate::tests::Server;
use axum::http::Method;
use serde_json::{Value, json};

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{*rest}", "scan/app")
        .replace("{*id}", "scan")
        .replace("{id}", "scan-id")
        .replace("{name}", "scan-name")
        .replace("{step}", "scan-step")
}

fn is_mutation(m: &Method) -> bool {
    m != Method::GET && m != Method::HEAD
}

/// Creates a user with `role` and returns a token for them.
pub(crate) async fn user_token(s: &Server, name: &str, role: &str) -> String {
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(json!({"user": name, "name": "test"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// A request with explicit credentials (or none).
pub(crate) async fn raw(
    s: &Server,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut req = client.request(m, format!("{}{path}", s.url));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn route_scan_every_mutating_route_needs_credentials_and_privilege() {
    let s = Server::start().await;
    let viewer = format!("Bearer {}", user_token(&s, "vera", "viewer").await);
    // Routes a viewer may use for itself (its own tokens), and queries that clients send
    // as POST forms (Prometheus' and InfluxQL's): reads.
    let viewer_ok = [
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/query_exemplars",
        "/api/v1/format_query",
        "/query",
    ];
    let mut checked = 0;
    for (pattern, methods) in ROUTES {
        let path = concrete(pattern);
        for m in methods.iter() {
            let body = Some(json!({"id": "/scan/app", "cmd": "sleep 1"}));
            let (status, resp) = raw(&s, m, &path, None, body.clone()).await;
            if *pattern == "/ping" {
                // Load balancers' liveness probe: no credentials, as Marathon's.
                assert_eq!(status, 200, "{resp}");
                continue;
            }
            assert_eq!(status, 401, "{m} {path} without credentials: {resp}");
            assert!(
                resp["message"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Unauthorized")),
                "{m} {path}: {resp}"
            );
            // Wrong credentials are refused; after a few, the source is throttled (429).
            let (status, _) = raw(&s, m, &path, Some("Bearer slw_wrong"), body.clone()).await;
            assert!(
                [401, 429].contains(&status),
                "{m} {path} with a wrong token: {status}"
            );
            let (status, _) = raw(&s, m, &path, Some("Basic YWRtaW46d3Jvbmc="), body.clone()).await;
            assert!(
                [401, 429].contains(&status),
                "{m} {path} with a wrong password: {status}"
            );
            if is_mutation(m) && !viewer_ok.contains(pattern) {
                let (status, resp) = raw(&s, m, &path, Some(&viewer), body.clone()).await;
                assert_eq!(status, 403, "{m} {path} as a viewer: {resp}");
                assert!(
                    resp["message"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Forbidden")),
                    "{resp}"
                );
                checked += 1;
            }
            // The route exists: an admin never gets the router's own 404 (the event stream
            // never ends, so it is left to its own tests).
            if path == "/v2/events" {
                continue;
            }
            let (_, resp) = raw(
                &s,
                m,
                &path,
                Some(&format!("Bearer {}", crate::tests::ADMIN)),
                body,
            )
            .await;
            assert!(
                !resp["message"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("no route")),
                "{m} {path} is not routed"
            );
        }
    }
    let expected: usize = ROUTES
        .iter()
        .filter(|(p, _)| !viewer_ok.contains(p))
        .map(|(_, ms)| ms.iter().filter(|m| is_mutation(m)).count())
        .sum();
    assert_eq!(checked, expected);
    assert!(checked >= 15, "scanned {checked} mutating routes");
    // Reads are for authenticated callers too.
    let (status, _) = raw(&s, &Method::GET, "/v2/apps", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = raw(&s, &Method::GET, "/v2/apps", Some(&viewer), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn environment_policies_decide_who_deploys_where_and_every_attempt_is_audited() {
    let s = Server::start().await;
    let dev = format!("Bearer {}", user_token(&s, "dana", "developer").await);
    let dep = format!("Bearer {}", user_token(&s, "dirk", "deployer").await);
    let app = |id: &str| json!({"id": id, "cmd": "sleep 600", "instances": 0});
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/v2/apps",
        Some(&dev),
        Some(app("/qa/web")),
    )
    .await;
    assert_eq!(status, 201, "developer deploys to qa: {body}");
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/v2/apps",
        Some(&dev),
        Some(app("/prod/web")),
    )
    .await;
    assert_eq!(status, 403, "developer may not deploy to prod: {body}");
    assert!(body["message"].as_str().unwrap().contains("prod"), "{body}");
    let (status, _) = raw(
        &s,
        &Method::POST,
        "/v2/apps",
        Some(&dev),
        Some(app("/AA/prod/web")),
    )
    .await;
    assert_eq!(status, 403, "nor to prod in datacenter AA");
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/v2/apps",
        Some(&dep),
        Some(app("/prod/web")),
    )
    .await;
    assert_eq!(status, 201, "deployer deploys to prod: {body}");
    // A developer can neither change the prod app nor move a qa app into prod by label.
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/v2/apps/prod/web",
        Some(&dev),
        Some(json!({"instances": 1})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/v2/apps/qa/web",
        Some(&dev),
        Some(json!({"labels": {"SLIPWAY_ENV": "prod"}})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw(&s, &Method::DELETE, "/v2/apps/prod/web", Some(&dev), None).await;
    assert_eq!(status, 403);

    let audit = s.get("/api/v1/audit?limit=100").await;
    let records = audit["records"].as_array().unwrap();
    let find = |user: &str, app: &str, outcome: &str| {
        records.iter().any(|r| {
            r["user"] == user
                && r["app"] == app
                && r["outcome"] == outcome
                && r["action"].as_str().unwrap().starts_with("POST")
        })
    };
    assert!(find("dana", "/qa/web", "allowed"), "{audit}");
    assert!(find("dana", "/prod/web", "denied"), "{audit}");
    assert!(find("dirk", "/prod/web", "allowed"), "{audit}");
    assert!(records.iter().any(|r| r["user"] == "dana"
        && r["action"] == "DELETE /v2/apps/prod/web"
        && r["status"] == 403));
    let denied = records
        .iter()
        .find(|r| r["user"] == "dana" && r["outcome"] == "denied")
        .unwrap();
    assert!(
        denied["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "denials say why: {denied}"
    );
    // Newest first, and filters work.
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]));
    let by_app = s.get("/api/v1/audit?app=/prod/web").await;
    assert!(
        by_app["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["app"] == "/prod/web")
    );
    let by_user = s.get("/api/v1/audit?user=dirk").await;
    assert!(!by_user["records"].as_array().unwrap().is_empty());
    assert!(
        by_user["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user"] == "dirk")
    );
    // Unauthenticated attempts are audited too.
    let (status, _) = raw(&s, &Method::POST, "/v2/apps", None, Some(app("/qa/x"))).await;
    assert_eq!(status, 401);
    let anon = s.get("/api/v1/audit?user=anonymous").await;
    assert_eq!(anon["records"][0]["outcome"], "denied");
}

#[tokio::test]
async fn tokens_can_be_revoked_and_passwords_changed() {
    let s = Server::start().await;
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/users",
            Some(json!({"name": "ola", "role": "developer", "password": "first-pass"})),
        )
        .await;
    assert_eq!(status, 201);
    let basic = |pw: &str| format!("Basic {}", b64(&format!("ola:{pw}")));
    let (status, me) = raw(
        &s,
        &Method::GET,
        "/api/v1/whoami",
        Some(&basic("first-pass")),
        None,
    )
    .await;
    assert_eq!((status, me["role"].clone()), (200, json!("developer")));
    // Users get their own tokens, and may revoke them.
    let (status, t) = raw(
        &s,
        &Method::POST,
        "/api/v1/tokens",
        Some(&basic("first-pass")),
        Some(json!({"name": "laptop"})),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let token = format!("Bearer {}", t["token"].as_str().unwrap());
    assert_eq!(
        raw(&s, &Method::GET, "/api/v1/whoami", Some(&token), None)
            .await
            .0,
        200
    );
    let listed = raw(&s, &Method::GET, "/api/v1/tokens", Some(&token), None)
        .await
        .1;
    assert!(
        listed
            .to_string()
            .find(t["token"].as_str().unwrap())
            .is_none(),
        "tokens are never listed"
    );
    let path = format!("/api/v1/tokens/{}", t["id"].as_str().unwrap());
    assert_eq!(
        raw(&s, &Method::DELETE, &path, Some(&token), None).await.0,
        204
    );
    assert_eq!(
        raw(&s, &Method::GET, "/api/v1/whoami", Some(&token), None)
            .await
            .0,
        401,
        "revoked"
    );
    // Own password change needs the current one; a developer cannot promote itself.
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/api/v1/users/ola",
        Some(&basic("first-pass")),
        Some(json!({"password": "second-pass"})),
    )
    .await;
    assert_eq!(status, 403, "without oldPassword");
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/api/v1/users/ola",
        Some(&basic("first-pass")),
        Some(json!({"password": "second-pass", "oldPassword": "first-pass"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        raw(
            &s,
            &Method::GET,
            "/api/v1/whoami",
            Some(&basic("first-pass")),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        raw(
            &s,
            &Method::GET,
            "/api/v1/whoami",
            Some(&basic("second-pass")),
            None
        )
        .await
        .0,
        200
    );
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/api/v1/users/ola",
        Some(&basic("second-pass")),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 403);
}

fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn a_scoped_secret_serves_only_the_pipelines_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(store::Store::open(&dir.path().join("db")).unwrap());
    let key = std::sync::Arc::new(auth::SecretKey::load_or_create(&dir.path().join("k")).unwrap());
    let put = |name: &str, scope: Option<&str>| {
        let sealed = key.seal(name, b"value").unwrap();
        store.put_secret(name, &sealed, 1, "admin", scope).unwrap();
    };
    put("prod-db", Some(r#"{"environments":["prod"]}"#));
    put("registry", Some(r#"{"pipelines":["orders"]}"#));
    put("legacy", None);
    let secrets = crate::identity::StoreSecrets {
        store: store.clone(),
        key: key.clone(),
    };
    let err = secrets
        .resolve_for_pipeline("orders", "prod-db")
        .unwrap_err();
    assert!(err.contains("prod-db") && err.contains("orders"), "{err}");
    assert_eq!(
        secrets.resolve_for_pipeline("orders", "registry").unwrap(),
        "value"
    );
    assert!(secrets.resolve_for_pipeline("release", "registry").is_err());
    assert_eq!(
        secrets.resolve_for_pipeline("any", "legacy").unwrap(),
        "value"
    );
}
