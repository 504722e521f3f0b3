//! `contrib/grafana/`: every panel query and template variable of the dashboards runs
//! against a live server with an app of 3 instances under load, as Grafana's Prometheus
//! data source sends it (form-encoded POSTs, Grafana's variables substituted), without
//! error and with data, except the panels listed in [`NO_DATA_YET`].

use crate::prometheus::enc;
use crate::*;
use std::collections::BTreeMap;
use testkit::load::{LoadSpec, spawn_load};
use testkit::wait_for;

/// Panels (dashboard uid, title) whose queries must evaluate but may return nothing, and why.
/// Every other panel must return at least one series.
const NO_DATA_YET: &[(&str, &str, &str)] = &[
    (
        "slipway-apps",
        "Network received per instance",
        "process apps share the host's netns: containers only",
    ),
    (
        "slipway-apps",
        "Network transmitted per instance",
        "process apps share the host's netns: containers only",
    ),
];

fn contrib() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/grafana")
}

/// Grafana's variables with the values a user would pick: the test app, all instances.
fn substitute(expr: &str, app: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "10s")
        .replace("$__interval", "2s")
        .replace("$__range", "30s")
        .replace("$app", app)
        .replace("$task", ".*")
        .replace("$pipeline", ".*");
    assert!(!out.contains('$'), "unsubstituted variable in {out}");
    out
}

/// A form-encoded POST as the admin, as Grafana's data source sends queries; (status, JSON).
fn post_form(s: &SlipwayProcess, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    use std::io::{Read, Write};
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let body = body.join("&");
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        testkit::ADMIN_TOKEN,
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let text = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (
        status,
        serde_json::from_str(text).unwrap_or(Value::String(text.into())),
    )
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten().cloned());
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// `label_values(metric{selector}, label)` → (match[] selector, label).
fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

#[test]
fn grafana_dashboards_panels_all_evaluate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "1s"])
        .expect("slipway starts");
    let port = testkit::free_port();
    let mut def = web_app("/gf", 3, "1");
    def["portDefinitions"] = json!([{"port": port, "protocol": "tcp", "name": "http"}]);
    def["labels"] = json!({"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"});
    let (status, body) = send(&s, "POST", "/v2/apps", Some(&def));
    assert_eq!(status, 201, "{body}");
    wait_no_deployments(&s, Duration::from_secs(60));
    wait_for("the service port to route", Duration::from_secs(30), || {
        matches!(
            testkit::http_get(&format!("http://127.0.0.1:{port}/")),
            Ok((200, _))
        )
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let load = |path: &str, rate: u32| {
        spawn_load(LoadSpec {
            addr: format!("127.0.0.1:{port}"),
            path: path.into(),
            host: "gf.test".into(),
            rate,
            duration: Duration::from_secs(15),
            max_connections: 16,
            timeout: Duration::from_secs(10),
        })
    };
    let loads = [load("/sleep?ms=5", 20), load("/nope", 2)];
    // Pipeline runs for the pipelines dashboard: one that succeeds, one that fails.
    use crate::pipelines::{cli, ok};
    let _repos = [
        ("gf-ok", "steps:\n  build: { run: echo built }\n"),
        (
            "gf-bad",
            "steps:\n  build: { run: echo built }\n  test: { needs: [build], run: 'exit 3' }\n",
        ),
    ]
    .map(|(name, steps)| {
        let repo = testkit::git_repo(&format!("version: 1\nname: {name}\n{steps}"), &[]);
        let path = repo.path().to_str().expect("utf-8 path").to_string();
        ok(&cli(&s, &["pipelines", "add", name, "--repo", &path]));
        let out = cli(&s, &["pipelines", "run", name, "--follow"]);
        assert_eq!(out.status.code(), Some(if name == "gf-ok" { 0 } else { 1 }));
        repo
    });
    std::thread::sleep(Duration::from_secs(13));

    // Grafana's "Save & test" and its version probe.
    let (status, test) = post_form(&s, "/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    assert_eq!(
        (status, &test["data"]["result"][1]),
        (200, &json!("2")),
        "{test}"
    );
    let build = get_json(&format!("{}/api/v1/status/buildinfo", s.url)).expect("buildinfo");
    assert!(build["data"]["version"].is_string(), "{build}");
    // What Grafana's Explore and alerting views ask besides: exemplars (none kept),
    // query formatting, rules and alerts (none evaluated).
    let (status, ex) = post_form(
        &s,
        "/api/v1/query_exemplars",
        &[("query", "rate(x[5m])"), ("start", "1"), ("end", "2")],
    );
    assert_eq!((status, &ex["data"]), (200, &json!([])), "{ex}");
    let (status, ex) = post_form(&s, "/api/v1/query_exemplars", &[("query", "rate(")]);
    assert_eq!(
        (status, ex["errorType"].as_str()),
        (400, Some("bad_data")),
        "{ex}"
    );
    let (status, f) = post_form(
        &s,
        "/api/v1/format_query",
        &[(
            "query",
            "sum(rate(http_requests_total{app=\"/gf\"}[5m]))by(app)",
        )],
    );
    assert_eq!(
        (status, f["data"].as_str()),
        (
            200,
            Some("sum by (app) (rate(http_requests_total{app=\"/gf\"}[5m]))")
        ),
        "{f}"
    );
    let rules = get_json(&format!("{}/api/v1/rules", s.url)).expect("rules");
    assert_eq!(rules["data"]["groups"], json!([]), "{rules}");
    let alerts = get_json(&format!("{}/api/v1/alerts", s.url)).expect("alerts");
    assert_eq!(alerts["data"]["alerts"], json!([]), "{alerts}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 30).to_string(), now.to_string());
    let mut failures = Vec::new();
    let mut evaluated = 0;
    let mut files: Vec<_> = std::fs::read_dir(contrib().join("dashboards"))
        .expect("contrib/grafana/dashboards")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut seen_uids = Vec::new();
    for file in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let uid = d["uid"].as_str().expect("dashboard uid").to_string();
        seen_uids.push(uid.clone());
        // Template variables: Grafana asks label/<name>/values with match[].
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = v["definition"].as_str().unwrap_or_default();
            let (selector, label) =
                label_values(q).unwrap_or_else(|| panic!("{uid}: variable query {q}"));
            let selector = substitute(&selector, "/gf");
            let url = format!(
                "{}/api/v1/label/{label}/values?match[]={}&start={start}&end={end}",
                s.url,
                enc(&selector)
            );
            let values = get_json(&url).unwrap_or_else(|e| panic!("{uid}: {q}: {e}"));
            let values = values["data"].as_array().cloned().unwrap_or_default();
            evaluated += 1;
            let expected = match label.as_str() {
                "app" => values.contains(&json!("/gf")),
                "task" => values.len() == 3,
                _ => true,
            };
            if !expected {
                failures.push(format!("{uid} variable {q}: {values:?}"));
            }
        }
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            let exempt = NO_DATA_YET
                .iter()
                .find(|(u, t, _)| *u == uid && *t == title);
            assert_eq!(
                p["datasource"]["uid"], "slipway",
                "{uid}/{title}: data source"
            );
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{uid}/{title} has no query");
            for t in targets {
                let expr = substitute(t["expr"].as_str().expect("expr"), "/gf");
                let (status, answer) = post_form(
                    &s,
                    "/api/v1/query_range",
                    &[
                        ("query", &expr),
                        ("start", &start),
                        ("end", &end),
                        ("step", "2"),
                    ],
                );
                evaluated += 1;
                let series = answer["data"]["result"].as_array().map_or(0, Vec::len);
                if status != 200 || answer["status"] != "success" {
                    failures.push(format!("{uid}/{title}: {expr}: {status} {answer}"));
                } else if series == 0 {
                    match exempt {
                        Some((_, _, why)) => eprintln!("{uid}/{title}: no data ({why})"),
                        None => failures.push(format!("{uid}/{title}: {expr}: no series")),
                    }
                }
            }
        }
    }
    for l in loads {
        l.join().expect("load");
    }
    // The deployment and the tasks turning healthy are counted from the engine's events.
    let text = crate::watch::scrape(&s);
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix}: {text}"))
    };
    assert_eq!(value(r#"slipway_deployments_total{result="success"}"#), 1.0);
    assert_eq!(
        value(r#"slipway_deployment_duration_seconds_count{result="success"}"#),
        1.0
    );
    assert_eq!(
        value(r#"slipway_task_health_changes_total{app="/gf",healthy="true"}"#),
        3.0
    );
    seen_uids.sort();
    assert_eq!(
        seen_uids,
        ["slipway-apps", "slipway-host", "slipway-pipelines"]
    );
    // Every exemption names a panel that exists (a renamed panel must not stay exempt).
    let mut titles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for p in panels(&d) {
            titles
                .entry(d["uid"].as_str().unwrap_or_default().into())
                .or_default()
                .push(p["title"].as_str().unwrap_or_default().into());
        }
    }
    for (uid, title, _) in NO_DATA_YET {
        assert!(
            titles
                .get(*uid)
                .is_some_and(|t| t.iter().any(|x| x == title)),
            "exempt panel {uid}/{title} does not exist"
        );
    }
    let ds = std::fs::read_to_string(contrib().join("provisioning/datasources/slipway.yml"))
        .expect("data source provisioning file");
    for needle in [
        "type: prometheus",
        "uid: slipway",
        "httpHeaderName1: Authorization",
        "secureJsonData:",
        "httpHeaderValue1: Bearer $SLIPWAY_TOKEN",
    ] {
        assert!(ds.contains(needle), "data source file lacks {needle}");
    }
    eprintln!("{evaluated} queries evaluated");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
