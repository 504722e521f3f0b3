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
on: { push: { branches: [dev] } }
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

fn head_of(repo: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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
    let (status, body) = raw(&s, &Method::POST, &approve, Some(&ops), None).await;
    assert_eq!(status, 409, "nothing is pending any more: {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("was already decided: approved by user:olga"),
        "{body}"
    );

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
    let head = head_of(repo.path());
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/release/hooks/push",
            Some(json!({"ref": "refs/heads/dev", "after": head})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event"], "push");
    assert_eq!(body["sha"], head, "the pushed commit is the one built");
    assert_eq!(
        body["triggeredBy"], "user:admin",
        "one identity: the token's user"
    );
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
    let file = "version: 1\nname: ship\non: { push: { branches: [dev] } }\nsteps:\n  qa:\n    deploy: { env: qa, app: deploy/app.json, overlay: deploy/qa.json, timeout: 60s }\n  prod:\n    needs: [qa]\n    deploy: { env: prod, app: deploy/app.json, overlay: deploy/prod.json }\n";
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
        text.iter().any(|l| l.starts_with(
            "deploying /qa/web to qa as user:dana (a push: at most developer): deployment "
        )),
        "{text:?}"
    );
    let audit = s.get("/api/v1/audit?user=dana").await;
    assert!(
        audit
            .to_string()
            .contains("deploy step user:dana (a push: at most developer)"),
        "{audit}"
    );

    // Issue 12 §4: a deployer's push runs deploy as a developer too: prod stays refused.
    let lee = format!("Bearer {}", user_token(&s, "lee", "deployer").await);
    let (status, body) = raw(
        &s,
        &Method::POST,
        "/api/v1/pipelines/ship/hooks/push",
        Some(&lee),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let done = run_where(&s, &id, |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    })
    .await;
    assert_eq!(done["triggeredBy"], "user:lee");
    assert!(
        step(&done, "prod")["reason"]
            .as_str()
            .unwrap()
            .contains("Forbidden"),
        "{done}"
    );
    let (status, _) = s
        .call(reqwest::Method::GET, "/v2/apps/prod/web", None)
        .await;
    assert_eq!(status, 404, "nothing reached prod unapproved");
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

/// A request with extra headers and a raw body (as a forge sends it).
async fn deliver(s: &Server, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", s.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn signature(secret: &str, body: &str) -> String {
    pipeline::webhook::to_hex(&pipeline::webhook::hmac_sha256(
        secret.as_bytes(),
        body.as_bytes(),
    ))
}

/// Issue 11 §3 and issue 12 §4: forges sign webhooks their own way; a signed push starts
/// a run of the pushed commit as the forge's service principal, a bad or missing
/// signature is 401 and audited, pipelines without a push trigger never start from it,
/// and a run started through the hook with a user's token is that user's (so the
/// self-approval rule applies to them).
#[tokio::test]
async fn forge_webhooks_are_checked_by_signature_and_start_runs_of_the_pushed_commit() {
    let s = Server::start().await;
    let checkout = repo(&FILE.replace("required: true", "default: '1.0'"));
    let head = head_of(checkout.path());
    let source = json!({"repo": checkout.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/release",
            Some(source),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let secret = "It's a Secret to Everybody";
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/release/webhook-secret",
            Some(json!({"value": secret})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secret"], secret);
    let hook = "/api/v1/pipelines/release/hooks/push";

    // GitHub: X-Hub-Signature-256 over the body, as its docs show.
    let github = json!({"ref": "refs/heads/dev", "before": "0000000000000000000000000000000000000000", "after": head, "repository": {"full_name": "octo/release"}, "pusher": {"name": "octocat"}}).to_string();
    let signed = [
        ("X-GitHub-Event", "push".to_string()),
        (
            "X-GitHub-Delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
        ),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", signature(secret, &github)),
        ),
    ];
    let (status, run) = deliver(&s, hook, &signed, &github).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["triggeredBy"], "service:forge-webhook");
    assert_eq!(run["sha"], head.as_str());
    assert_eq!(run["event"], "push");

    // A changed body, a wrong secret, no signature at all: 401, and audited.
    let tampered = github.replace("octocat", "mallory");
    let (status, body) = deliver(&s, hook, &signed, &tampered).await;
    assert_eq!(status, 401, "{body}");
    let wrong = [(
        "X-Hub-Signature-256",
        format!("sha256={}", signature("guess", &github)),
    )];
    let (status, _) = deliver(&s, hook, &wrong, &github).await;
    assert_eq!(status, 401);
    let (status, _) = deliver(&s, hook, &[], &github).await;
    assert_eq!(status, 401, "no credentials of any kind");
    let (status, _) = deliver(&s, "/api/v1/pipelines/nope/hooks/push", &signed, &github).await;
    assert_eq!(status, 401, "an unknown pipeline looks like a wrong secret");
    let audit = s.get("/api/v1/audit?user=service:forge-webhook").await;
    let denied = audit.to_string();
    assert!(
        denied.contains("X-Hub-Signature-256 does not match the body") && denied.contains("denied"),
        "{audit}"
    );
    assert!(!denied.contains(secret), "the secret is never audited");

    // GitLab: the secret in X-Gitlab-Token, the commit in checkout_sha.
    let gitlab = json!({"object_kind": "push", "ref": "refs/heads/dev", "before": "95790bf891e76fee5e1747ab589903a6a1f80f22", "after": head, "checkout_sha": head, "user_name": "John Smith"}).to_string();
    let (status, run) = deliver(
        &s,
        hook,
        &[
            ("X-Gitlab-Event", "Push Hook".to_string()),
            ("X-Gitlab-Token", secret.to_string()),
        ],
        &gitlab,
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["sha"], head.as_str());
    let (status, _) = deliver(
        &s,
        hook,
        &[("X-Gitlab-Token", "It's a Secret to Everybodz".to_string())],
        &gitlab,
    )
    .await;
    assert_eq!(status, 401);

    // Gitea and Forgejo: X-Gitea-Signature, the bare hex HMAC.
    let gitea = json!({"ref": "refs/heads/dev", "before": "28e1879d029cb852e4844d9c718537df08844e03", "after": head, "compare_url": "http://localhost:3000/gitea/webhooks/compare/x", "commits": [{"id": head, "message": "Webhooks Yay!"}]}).to_string();
    let (status, run) = deliver(
        &s,
        hook,
        &[
            ("X-Gitea-Event", "push".to_string()),
            ("X-Gitea-Signature", signature(secret, &gitea)),
        ],
        &gitea,
    )
    .await;
    assert_eq!(status, 201, "{run}");

    // Other events and other branches are acknowledged and ignored.
    let ping = json!({"zen": "Encourage flow.", "hook_id": 1}).to_string();
    let (status, body) = deliver(
        &s,
        hook,
        &[
            ("X-GitHub-Event", "ping".to_string()),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", signature(secret, &ping)),
            ),
        ],
        &ping,
    )
    .await;
    assert_eq!(
        (status, body["ignored"].as_str()),
        (200, Some("a ping event; only pushes start runs"))
    );
    let runs = s.get("/api/v1/runs?pipeline=release").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3);

    // A pipeline without a push trigger never starts from a webhook.
    let manual = repo("version: 1\nname: m\nsteps:\n  a: { run: echo a }\n");
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/manual",
            Some(json!({"repo": manual.path().to_string_lossy(), "branch": "dev"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/pipelines/manual/webhook-secret",
            Some(json!({"value": secret})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = deliver(
        &s,
        "/api/v1/pipelines/manual/hooks/push",
        &[("X-Gitlab-Token", secret.to_string())],
        &gitlab,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no push trigger")
    );
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/manual/hooks/push",
            None,
        )
        .await;
    assert_eq!(status, 409, "not with a token either");

    // One identity: a deployer's run through the hook is theirs, so they may not approve it.
    let lee = format!("Bearer {}", user_token(&s, "lee", "deployer").await);
    let (status, run) = raw(&s, &Method::POST, hook, Some(&lee), None).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["triggeredBy"], "user:lee");
    let id = run["id"].as_str().unwrap().to_string();
    run_where(&s, &id, |r| {
        r["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["name"] == "go-live" && x["status"] == "waiting")
        })
    })
    .await;
    let approve = format!("/api/v1/runs/{id}/steps/go-live/approve");
    let (status, body) = raw(&s, &Method::POST, &approve, Some(&lee), None).await;
    assert_eq!(status, 403, "{body}");
    let olga = format!("Bearer {}", user_token(&s, "olga", "deployer").await);
    let (status, body) = raw(&s, &Method::POST, &approve, Some(&olga), None).await;
    assert_eq!(status, 200, "{body}");
}

/// Issue 11 §2: a file a deploy step renders (here from the pipeline's repository) that
/// names a parameter the pipeline does not have fails the step at the reference's place,
/// and nothing is deployed.
#[tokio::test]
async fn unknown_references_in_deploy_files_fail_the_step_and_deploy_nothing() {
    let s = Server::start().await;
    let file = "version: 1\nname: dc\nparams:\n  Env: { type: choice, options: [qa], default: qa }\nsteps:\n  ship:\n    deploy: { env: qa, app: deploy/app.json, timeout: 20s }\n";
    let checkout = repo(file);
    std::fs::create_dir_all(checkout.path().join("deploy")).unwrap();
    std::fs::write(
        checkout.path().join("deploy/app.json"),
        "{\n  \"id\": \"/${{ params.DeployDC }}/qa/shop\",\n  \"cmd\": \"sleep 600\",\n  \"env\": {\"E\": \"${{ params.Env }}\", \"V\": \"${{ vars.Version }}\"}\n}\n",
    )
    .unwrap();
    testkit::git(checkout.path(), &["add", "."]);
    testkit::git(checkout.path(), &["commit", "-qm", "defs"]);
    let source = json!({"repo": checkout.path().to_string_lossy(), "branch": "dev"});
    let (status, body) = s
        .call(reqwest::Method::PUT, "/api/v1/pipelines/dc", Some(source))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, run) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/pipelines/dc/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let done = run_where(&s, &id, |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    })
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        step(&done, "ship")["reason"],
        "deploy/app.json:2:11: unknown parameter DeployDC (the pipeline has: Env)\n\
         deploy/app.json:4:43: unknown variable Version (the pipeline has: none)",
        "{done}"
    );
    let apps = s.get("/v2/apps").await;
    assert_eq!(apps["apps"], json!([]), "nothing was deployed: {apps}");
}

/// Issue 12 §3 and §11: a pipeline belongs to whoever registered it; another developer
/// cannot move it to their repository; a pipeline that deploys to prod takes a deployer to
/// register; developers cannot cancel or retry a deployer's prod run.
#[tokio::test]
async fn pipelines_have_owners_and_prod_pipelines_and_runs_need_prod_rights() {
    let s = Server::start().await;
    let dana = format!("Bearer {}", user_token(&s, "dana", "developer").await);
    let eve = format!("Bearer {}", user_token(&s, "eve", "developer").await);
    let olga = format!("Bearer {}", user_token(&s, "olga", "deployer").await);
    let qa = repo(
        "version: 1\nname: q\non: { push: { branches: [dev] } }\nsteps:\n  a: { run: echo a }\n",
    );
    let other = repo("version: 1\nname: q\nsteps:\n  evil: { run: echo evil }\n");
    let put =
        |r: &tempfile::TempDir| Some(json!({"repo": r.path().to_string_lossy(), "branch": "dev"}));
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/mine",
        Some(&dana),
        put(&qa),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed = s.get("/api/v1/pipelines").await;
    assert_eq!(listed["pipelines"][0]["owner"], "dana");
    // Another developer may not move it; its owner and an admin may.
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/mine",
        Some(&eve),
        put(&other),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("it belongs to dana"),
        "{body}"
    );
    let (status, _) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/mine/webhook-secret",
        Some(&eve),
        None,
    )
    .await;
    assert_eq!(status, 403, "nor set its webhook secret");
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/mine",
        Some(&eve),
        put(&qa),
    )
    .await;
    assert_eq!(
        status, 200,
        "re-registering the same source changes nothing: {body}"
    );
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/mine",
        Some(&dana),
        put(&other),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = s
        .call(reqwest::Method::PUT, "/api/v1/pipelines/mine", put(&qa))
        .await;
    assert_eq!(status, 200, "an admin may");

    // Deploying to prod (a confirm environment) takes a deployer, even to register.
    let release = repo(
        "version: 1\nname: r\nsteps:\n  wait:\n    approve: { message: go?, env: prod }\n  live:\n    needs: [wait]\n    deploy: { env: prod, app: app.json }\n  after:\n    needs: [live]\n    approve: { message: all good? }\n",
    );
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/release",
        Some(&dana),
        put(&release),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("deploys to prod"),
        "{body}"
    );
    let (status, body) = raw(
        &s,
        &Method::PUT,
        "/api/v1/pipelines/release",
        Some(&olga),
        put(&release),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A deployer's prod run: a developer can neither cancel nor retry it.
    let (status, run) = raw(
        &s,
        &Method::POST,
        "/api/v1/pipelines/release/runs",
        Some(&olga),
        Some(json!({"confirm": true})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    run_where(&s, &id, |r| {
        r["waitingFor"]
            .as_str()
            .is_some_and(|w| w.contains("approval `wait`"))
    })
    .await;
    let (status, body) = raw(
        &s,
        &Method::POST,
        &format!("/api/v1/runs/{id}/cancel"),
        Some(&dana),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("it deploys to prod"),
        "{body}"
    );
    // Run ids: PIPELINE#NUMBER and unique prefixes.
    let shown = s.get("/api/v1/runs/release%231").await;
    assert_eq!(shown["id"], id.as_str());
    let shown = s.get(&format!("/api/v1/runs/{}", &id[..8])).await;
    assert_eq!(shown["id"], id.as_str());
    // Approvals that are not pending say why.
    let why = |step: &str| {
        let path = format!("/api/v1/runs/release%231/steps/{step}/approve");
        let olga = olga.clone();
        let s = &s;
        async move { raw(s, &Method::POST, &path, Some(&olga), None).await }
    };
    let (status, body) = why("wiat").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no step `wiat` (did you mean `wait`?)"),
        "{body}"
    );
    let (status, body) = why("live").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is not an approval step"),
        "{body}"
    );
    let (status, body) = why("after").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("`after` of run #1 of release is not reached yet: it waits for live"),
        "{body}"
    );
    let (status, body) = raw(
        &s,
        &Method::GET,
        &format!("/api/v1/runs/{id}/steps/buld/logs"),
        Some(&olga),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("its steps: wait, live, after"),
        "{body}"
    );
    let (status, body) = raw(
        &s,
        &Method::POST,
        &format!("/api/v1/runs/{id}/cancel"),
        Some(&olga),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = run_where(&s, &id, |r| r["status"] == "cancelled").await;
    assert_eq!(done["reason"], "cancelled by user:olga");
    let (status, body) = why("wait").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("has ended"),
        "{body}"
    );
    let (status, body) = raw(
        &s,
        &Method::POST,
        &format!("/api/v1/runs/{id}/retry"),
        Some(&dana),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
}
