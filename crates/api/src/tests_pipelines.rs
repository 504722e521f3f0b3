//! Pipelines over real HTTP with a real git repository: registration reports file errors
//! with line and column, manual runs with checked parameters, run and step views, paged
//! logs, and approvals decided under the environment's policy.

use crate::tests::Server;
use crate::tests_auth::{raw, user_token};
use axum::http::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FILE: &str = r#"version: 1
name: release
params:
  Version: { type: string, required: true }
steps:
  build:
    run: ['echo "building ${{ params.Version }}"', 'for i in 1 2 3 4 5; do echo "line $i"; done']
  go-live:
    needs: [build]
    approve: { message: "Release ${{ params.Version }}?", env: prod, approvers: [role:deployer] }
  after:
    needs: [go-live]
    run: echo live
"#;

fn repo(file: &str) -> tempfile::TempDir {
    testkit::git_repo(file, &[])
}

async fn run_where(s: &Server, id: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{id}")).await;
        if f(&run) {
            return run;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[tokio::test]
async fn pipelines_run_and_approvals_follow_the_policy() {
    let s = Server::start().await;
    let repo = repo(FILE);
    let source = json!({"repo": repo.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/release",
            Some(source.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["steps"], json!(["build", "go-live", "after"]));
    assert_eq!(
        s.get("/api/v1/pipelines").await["pipelines"][0]["name"],
        "release"
    );

    // Parameters are checked before a run is queued.
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/release/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["message"], "parameter `Version` is required");
    assert!(
        s.get("/api/v1/runs").await["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let dev = format!("Bearer {}", user_token(&s, "dana", "developer").await);
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/api/v1/pipelines/release/runs",
        Some(&dev),
        Some(json!({"params": {"Version": "1.2.3"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["number"].as_i64(), body["triggeredBy"].as_str()),
        (Some(1), Some("user:dana"))
    );
    let id = body["id"].as_str().unwrap().to_string();
    let waiting = run_where(&s, &id, |r| {
        r["steps"].as_array().is_some_and(|st| {
            st.iter()
                .any(|x| x["name"] == "go-live" && x["status"] == "waiting")
        })
    })
    .await;
    assert_eq!(step(&waiting, "build")["status"], "succeeded");
    assert_eq!(step(&waiting, "after")["status"], "pending");

    // Paged logs.
    let page = s
        .get(&format!("/api/v1/runs/{id}/steps/build/logs?limit=3"))
        .await;
    let lines: Vec<&str> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines[1], "building 1.2.3", "{page}");
    assert_eq!(lines.len(), 3);
    let rest = s
        .get(&format!(
            "/api/v1/runs/{id}/steps/build/logs?after={}",
            page["next"]
        ))
        .await;
    assert_eq!(
        rest["lines"].as_array().unwrap().last().unwrap()["line"],
        "line 5"
    );

    // A developer may not approve a prod release; a deployer may.
    let approve = format!("/api/v1/runs/{id}/steps/go-live/approve");
    let (status, body) = raw(&s, &Method::POST, &approve, Some(&dev), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().starts_with("Forbidden: "),
        "{body}"
    );
    let ops = format!("Bearer {}", user_token(&s, "olga", "deployer").await);
    let (status, body) = raw(&s, &Method::POST, &approve, Some(&ops), None).await;
    assert_eq!(status, 200, "{body}");
    let done = run_where(&s, &id, |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(step(&done, "go-live")["decidedBy"], "user:olga");
    assert_eq!(
        step(&done, "go-live")["outputs"]["approved_by"],
        "user:olga"
    );
    let (status, _) = raw(&s, &Method::POST, &approve, Some(&ops), None).await;
    assert_eq!(status, 404, "nothing is pending any more");

    // The runs list, newest first; the push hook starts a run for the watched branch only.
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/release/hooks/push",
            Some(json!({"ref": "refs/heads/main"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ignored"], "push to main; release watches dev");
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/release/hooks/push",
            Some(json!({"ref": "refs/heads/dev", "after": "abc"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event"], "push");
    let runs = s.get("/api/v1/runs?pipeline=release").await;
    let numbers: Vec<i64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
}

#[tokio::test]
async fn invalid_pipeline_files_are_422_with_line_and_column() {
    let s = Server::start().await;
    let repo = repo("version: 1\nname: x\nsteps:\n  a: { run: x, timeout: soon }\n");
    let source = json!({"repo": repo.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(reqwest::Method::PUT, "/api/v1/pipelines/x", Some(source))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("4:25: invalid duration `soon`"),
        "{body}"
    );
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/y",
            Some(json!({"repo": "/nonexistent", "branch": "dev"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().starts_with("git clone:"),
        "{body}"
    );
    let (status, _) = s
        .call(reqwest::Method::POST, "/api/v1/pipelines/nope/runs", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn deploy_steps_deploy_the_built_definition_under_the_policy() {
    let s = Server::start().await;
    let app = json!({
        "id": "/shop/web", "cmd": testkit::testsrv().to_string_lossy(), "instances": 1, "cpus": 0.1, "mem": 32,
        "env": {"VERSION": "base"},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30}]
    });
    let file = "version: 1\nname: ship\nsteps:\n  qa:\n    deploy: { env: qa, app: deploy/app.json, overlay: deploy/qa.json, timeout: 60s }\n  prod:\n    needs: [qa]\n    deploy: { env: prod, app: deploy/app.json, overlay: deploy/prod.json }\n";
    let repo = testkit::git_repo(file, &[]);
    std::fs::create_dir_all(repo.path().join("deploy")).unwrap();
    std::fs::write(repo.path().join("deploy/app.json"), app.to_string()).unwrap();
    std::fs::write(
        repo.path().join("deploy/qa.json"),
        json!({"id": "/qa/web", "instances": 2, "env": {"VERSION": "qa-${{ run.number }}"}})
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        repo.path().join("deploy/prod.json"),
        json!({"id": "/prod/web"}).to_string(),
    )
    .unwrap();
    testkit::git(repo.path(), &["add", "."]);
    testkit::git(repo.path(), &["commit", "-qm", "defs"]);
    let source = json!({"repo": repo.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(reqwest::Method::PUT, "/api/v1/pipelines/ship", Some(source))
        .await;
    assert_eq!(status, 200, "{body}");

    // A developer may not start it by hand: it deploys to prod.
    let dev = format!("Bearer {}", user_token(&s, "dana", "developer").await);
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/api/v1/pipelines/ship/runs",
        Some(&dev),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not deploy to prod")
    );
    // A push (as the developer's webhook) runs: qa deploys, prod is refused by the policy.
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/api/v1/pipelines/ship/hooks/push",
        Some(&dev),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let done = run_where(&s, &id, |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    })
    .await;
    assert_eq!(step(&done, "qa")["status"], "succeeded", "{done}");
    assert!(
        step(&done, "prod")["reason"]
            .as_str()
            .unwrap()
            .contains("Forbidden"),
        "{done}"
    );
    let qa = s.get("/v2/apps/qa/web").await;
    assert_eq!(qa["app"]["instances"], 2);
    assert_eq!(qa["app"]["env"]["VERSION"], "qa-1");
    assert_eq!(qa["app"]["labels"]["SLIPWAY_ENV"], "qa");
    assert_eq!(
        qa["app"]["tasksHealthy"], 2,
        "the step waited for the deployment"
    );
    let (status, _) = s
        .call(reqwest::Method::GET, "/v2/apps/prod/web", None)
        .await;
    assert_eq!(status, 404);
    let logs = s.get(&format!("/api/v1/runs/{id}/steps/qa/logs")).await;
    let text: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|l| l.starts_with("deploying /qa/web to qa as webhook:dana: deployment ")),
        "{text:?}"
    );
    let audit = s.get("/api/v1/audit?user=dana").await;
    assert!(
        audit.to_string().contains("deploy step webhook:dana"),
        "{audit}"
    );
}

#[tokio::test]
async fn manual_runs_are_checked_against_the_file_and_the_target_environments() {
    let s = Server::start().await;
    let file = "version: 1\nname: rel\non: { manual: { allowed: [role:deployer, user:dana] } }\nparams:\n  Env: { type: choice, options: [yz, prod], default: yz }\n  DC: { type: choice, options: [AA, BB], default: AA }\nsteps:\n  d:\n    deploy: { env: '${{ params.DC }}/${{ params.Env }}', app: a.json }\n";
    let repo = repo(file);
    let source = json!({"repo": repo.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(reqwest::Method::PUT, "/api/v1/pipelines/rel", Some(source))
        .await;
    assert_eq!(status, 200, "{body}");
    let start = "/api/v1/pipelines/rel/runs";
    let runs = || async {
        s.get("/api/v1/runs").await["runs"]
            .as_array()
            .unwrap()
            .len()
    };

    // Not among `allowed`: 403, whatever the environment.
    let eve = format!("Bearer {}", user_token(&s, "eve", "developer").await);
    let (status, body) = raw(&s, &Method::POST, start, Some(&eve), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("may not start rel"),
        "{body}"
    );
    // Allowed by the file, but the policy keeps developers out of yz and prod.
    let dana = format!("Bearer {}", user_token(&s, "dana", "developer").await);
    let prod = json!({"params": {"Env": "prod", "DC": "BB"}});
    let (status, body) = raw(&s, &Method::POST, start, Some(&dana), Some(prod.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("prod"), "{body}");
    // A deployer: prod asks for confirmation (409, nothing queued), then runs.
    let olga = format!("Bearer {}", user_token(&s, "olga", "deployer").await);
    let (status, body) = raw(&s, &Method::POST, start, Some(&olga), Some(prod.clone())).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["confirm"], json!(["BB/prod"]));
    assert_eq!(runs().await, 0);
    let mut confirmed = prod.clone();
    confirmed["confirm"] = json!(true);
    let (status, body) = raw(&s, &Method::POST, start, Some(&olga), Some(confirmed)).await;
    assert_eq!(status, 201, "{body}");
    // yz needs no confirmation.
    let (status, body) = raw(
        &s,
        &Method::POST,
        start,
        Some(&olga),
        Some(json!({"params": {"Env": "yz"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(runs().await, 2);
    let audit = s.get("/api/v1/audit?user=olga").await.to_string();
    assert!(
        audit.contains("deploying to BB/prod with DC=BB Env=prod"),
        "{audit}"
    );
}
