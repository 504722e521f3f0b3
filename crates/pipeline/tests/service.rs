//! The pipeline service with real git repositories and a real store: registration checks
//! the file, runs are numbered and recorded step by step with their logs, parameters are
//! checked, approvals wait for a decision or their timeout, and a restart resumes runs that
//! were waiting and marks interrupted the ones cut off mid-step.

use pipeline::service::{Decision, Service, Source};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{RunRow, StepRow, Store};

use testkit::git;

/// A repository with `file` committed on branch `dev`, and `hello.txt`.
fn repo(file: &str) -> tempfile::TempDir {
    testkit::git_repo(file, &[("hello.txt", "hello from the repo\n")])
}

struct Fixture {
    _data: tempfile::TempDir,
    repo: tempfile::TempDir,
    store: Arc<Store>,
    service: Service,
    source: Source,
}

fn fixture(file: &str) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&data.path().join("db")).unwrap());
    let service = Service::new(
        store.clone(),
        data.path().join("runs"),
        Arc::new(|_pipeline: &str, name: &str| {
            if name == "tok" {
                Ok("s3cret-token-value".to_string())
            } else {
                Err("no such secret".into())
            }
        }),
    );
    let repo = repo(file);
    let source = Source {
        repo: repo.path().to_string_lossy().into(),
        branch: "dev".into(),
        file: ".slipway/pipeline.yaml".into(),
        poll_ms: None,
        cron: Vec::new(),
        file_text: None,
    };
    Fixture {
        _data: data,
        repo,
        store,
        service,
        source,
    }
}

async fn wait_run(store: &Store, id: &str, statuses: &[&str]) -> RunRow {
    let start = Instant::now();
    loop {
        let run = store.run(id).unwrap().unwrap();
        if statuses.contains(&run.status.as_str()) {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run stuck in {}: {:?}",
            run.status,
            store.steps(id)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_step(store: &Store, run: &str, step: &str, status: &str) -> StepRow {
    let start = Instant::now();
    loop {
        if let Some(s) = store
            .steps(run)
            .unwrap()
            .into_iter()
            .find(|s| s.name == step && s.status == status)
        {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "step {step} never {status}: {:?}",
            store.steps(run)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Puts the static `slipway-testsrv` and a Dockerfile (`FROM scratch`, with `extra` lines)
/// under `app/` in the fixture's repository and commits them.
fn commit_app(f: &Fixture, extra: &str) {
    std::fs::create_dir_all(f.repo.path().join("app")).unwrap();
    std::fs::copy(
        testkit::static_testsrv().unwrap(),
        f.repo.path().join("app/testsrv"),
    )
    .unwrap();
    std::fs::write(
        f.repo.path().join("app/Dockerfile"),
        format!("FROM scratch\nCOPY testsrv /testsrv\n{extra}"),
    )
    .unwrap();
    git(f.repo.path(), &["add", "."]);
    git(f.repo.path(), &["commit", "-qm", "app"]);
}

/// Starts a push run of `pipeline` and waits for its end.
async fn run_to_end(f: &Fixture, pipeline: &str) -> RunRow {
    let run = f
        .service
        .trigger(pipeline, "push", "webhook", BTreeMap::new())
        .unwrap();
    wait_run(&f.store, &run.id, &["succeeded", "failed"]).await
}

/// The first run of `pipeline` that appears (started by a trigger, not the test).
async fn first_run(store: &Store, pipeline: &str, what: &str) -> RunRow {
    let start = Instant::now();
    loop {
        if let Some(r) = store.runs(Some(pipeline), 10).unwrap().into_iter().next() {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_text(store: &Store, run: &str, step: &str) -> Vec<String> {
    store
        .logs(run, step, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

const FLOW: &str = r#"version: 1
name: demo
params:
  Env: { type: choice, options: [qa, prod], default: qa }
steps:
  build:
    secrets: [tok]
    run: ['cat hello.txt', 'echo "token $tok"', 'echo "sha=$SLIPWAY_RUN_SHA" >> "$SLIPWAY_OUTPUT"']
  signoff:
    needs: [build]
    approve: { message: "Ship ${{ steps.build.outputs.sha }} to ${{ params.Env }}?", approvers: [role:deployer], timeout: 1h }
  ship:
    needs: [signoff]
    run: 'echo "shipped by ${{ steps.signoff.outputs.approved_by }}"'
"#;

#[tokio::test]
async fn a_run_is_checked_out_recorded_and_approved() {
    let f = fixture(FLOW);
    let p = f.service.add_pipeline("demo", &f.source).await.unwrap();
    assert_eq!(p.steps.len(), 3);
    let run = f
        .service
        .trigger("demo", "manual", "user:dana", BTreeMap::new())
        .unwrap();
    assert_eq!(run.number, 1);
    let waiting = wait_step(&f.store, &run.id, "signoff", "waiting").await;
    assert!(waiting.decided_by.is_none());
    assert_eq!(
        f.service.pending_approvals(),
        [(run.id.clone(), "signoff".to_string())]
    );
    let build_log = log_text(&f.store, &run.id, "build");
    assert!(
        build_log.contains(&"hello from the repo".to_string()),
        "{build_log:?}"
    );
    assert!(
        build_log.contains(&"token ***".to_string()),
        "{build_log:?}"
    );
    let signoff_log = log_text(&f.store, &run.id, "signoff").join("\n");
    let sha = f.store.run(&run.id).unwrap().unwrap();
    assert_eq!(sha.status, "running");
    assert!(signoff_log.contains(" to qa?"), "{signoff_log}");

    f.service
        .decide(
            &run.id,
            "signoff",
            Decision {
                approve: true,
                by: "user:erin".into(),
            },
        )
        .unwrap();
    let done = wait_run(&f.store, &run.id, &["succeeded", "failed"]).await;
    assert_eq!(done.status, "succeeded", "{:?}", f.store.steps(&run.id));
    let steps = f.store.steps(&run.id).unwrap();
    let signoff = steps.iter().find(|s| s.name == "signoff").unwrap();
    assert_eq!(signoff.decided_by.as_deref(), Some("user:erin"));
    assert!(signoff.decided_at.is_some());
    assert_eq!(
        log_text(&f.store, &run.id, "ship"),
        ["+ echo \"shipped by user:erin\"", "shipped by user:erin"]
    );
    let build = steps.iter().find(|s| s.name == "build").unwrap();
    assert!(build.outputs.contains("\"sha\":\""), "{}", build.outputs);
    // Secrets are in no stored line.
    for s in &steps {
        assert!(
            log_text(&f.store, &run.id, &s.name)
                .iter()
                .all(|l| !l.contains("s3cret"))
        );
    }
    assert!(
        f.service
            .decide(
                &run.id,
                "signoff",
                Decision {
                    approve: true,
                    by: "user:x".into()
                }
            )
            .is_err(),
        "decided once"
    );
}

#[tokio::test]
async fn rejections_and_timeouts_fail_the_run_and_name_the_step() {
    let f = fixture(&FLOW.replace("timeout: 1h", "timeout: 300ms"));
    f.service.add_pipeline("demo", &f.source).await.unwrap();
    let timed_out = f
        .service
        .trigger("demo", "manual", "user:dana", BTreeMap::new())
        .unwrap();
    let run = wait_run(&f.store, &timed_out.id, &["succeeded", "failed"]).await;
    assert_eq!(
        (run.status.as_str(), run.reason.as_deref()),
        ("failed", Some("failed: `signoff`"))
    );
    let signoff = f
        .store
        .steps(&run.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "signoff")
        .unwrap();
    assert_eq!(
        signoff.reason.as_deref(),
        Some("nobody decided within 0.3s; rejected")
    );
    let ship = f
        .store
        .steps(&run.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "ship")
        .unwrap();
    assert_eq!(ship.status, "not_run");
}

#[tokio::test]
async fn parameters_and_pipeline_files_are_checked() {
    let f = fixture(FLOW);
    f.service.add_pipeline("demo", &f.source).await.unwrap();
    let bad = f
        .service
        .trigger(
            "demo",
            "manual",
            "user:dana",
            BTreeMap::from([("Env".into(), "staging".into())]),
        )
        .unwrap();
    let run = wait_run(&f.store, &bad.id, &["failed"]).await;
    assert_eq!(
        run.reason.as_deref(),
        Some("parameter `Env` is one of qa, prod, not `staging`")
    );
    assert!(
        f.service
            .trigger("nope", "manual", "user:dana", BTreeMap::new())
            .is_err()
    );

    std::fs::write(
        f.repo.path().join(".slipway/pipeline.yaml"),
        "version: 1\nname: demo\nsteps:\n  a: { needs: [b], run: x }\n",
    )
    .unwrap();
    git(f.repo.path(), &["commit", "-qam", "break it"]);
    let err = f
        .service
        .add_pipeline("demo", &f.source)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("4:16: unknown step `b` in `needs` of `a`"),
        "{err}"
    );
}

#[tokio::test]
async fn runs_of_one_pipeline_queue_in_order() {
    let f = fixture(
        "version: 1\nname: q\nsteps:\n  a: { run: 'date +%s%N >> ../../order.log; sleep 0.2' }\n",
    );
    f.service.add_pipeline("q", &f.source).await.unwrap();
    let first = f
        .service
        .trigger("q", "push", "webhook", BTreeMap::new())
        .unwrap();
    let second = f
        .service
        .trigger("q", "push", "webhook", BTreeMap::new())
        .unwrap();
    assert_eq!((first.number, second.number), (1, 2));
    let a = wait_run(&f.store, &first.id, &["succeeded"]).await;
    let b = wait_run(&f.store, &second.id, &["succeeded"]).await;
    assert!(
        b.started_at.unwrap() >= a.finished_at.unwrap(),
        "the second run waited for the first"
    );
}

#[tokio::test]
async fn a_restart_resumes_waiting_runs_and_marks_cut_off_ones_interrupted() {
    let f = fixture(FLOW);
    f.service.add_pipeline("demo", &f.source).await.unwrap();
    let run = f
        .service
        .trigger("demo", "manual", "user:dana", BTreeMap::new())
        .unwrap();
    wait_step(&f.store, &run.id, "signoff", "waiting").await;
    // A second run cut off while a step ran.
    let cut = RunRow {
        id: "cut".into(),
        pipeline: "demo".into(),
        status: store::RunStatus::Running,
        ..run.clone()
    };
    f.store.create_run(&cut).unwrap();
    f.store
        .put_step(
            "cut",
            &StepRow {
                name: "build".into(),
                status: store::StepStatus::Running,
                attempts: 1,
                outputs: "{}".into(),
                ..StepRow::default()
            },
        )
        .unwrap();
    f.service.shutdown().await;

    // A new service on the same store and workspaces, as after a restart.
    let data_runs = f._data.path().join("runs");
    let again = Service::new(
        f.store.clone(),
        data_runs,
        Arc::new(|_: &str, _: &str| Ok("s3cret-token-value".to_string())),
    );
    again.recover().unwrap();
    let cut = f.store.run("cut").unwrap().unwrap();
    assert_eq!(
        (cut.status.as_str(), cut.reason.as_deref()),
        (
            "interrupted",
            Some("interrupted: Slipway stopped while `build` ran")
        )
    );
    wait_step(&f.store, &run.id, "signoff", "waiting").await;
    assert_eq!(
        again.pending_approvals(),
        [(run.id.clone(), "signoff".to_string())],
        "the approval is pending again"
    );
    let build_runs = log_text(&f.store, &run.id, "build")
        .iter()
        .filter(|l| l.starts_with("+ cat"))
        .count();
    assert_eq!(build_runs, 1, "build was not run again");
    again
        .decide(
            &run.id,
            "signoff",
            Decision {
                approve: true,
                by: "user:erin".into(),
            },
        )
        .unwrap();
    assert_eq!(
        wait_run(&f.store, &run.id, &["succeeded", "failed"])
            .await
            .status,
        "succeeded"
    );
}

#[tokio::test]
async fn polling_starts_one_run_per_new_commit() {
    let f = fixture(
        "version: 1\nname: polled\non: { push: { branches: [dev, 'release/*'], poll: 1s } }\nsteps:\n  a: { run: cat hello.txt }\n",
    );
    f.service.add_pipeline("polled", &f.source).await.unwrap();
    assert_eq!(f.service.source("polled").unwrap().poll_ms, Some(1000));
    f.service.start_polling();
    // The registered commit starts nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(f.store.runs(Some("polled"), 10).unwrap().is_empty());

    std::fs::write(f.repo.path().join("hello.txt"), "second\n").unwrap();
    git(f.repo.path(), &["commit", "-qam", "second"]);
    let run = first_run(&f.store, "polled", "no run for the new commit").await;
    assert_eq!(
        (run.event.as_str(), run.triggered_by.as_str()),
        ("push", "poll")
    );
    let done = wait_run(&f.store, &run.id, &["succeeded", "failed"]).await;
    assert_eq!(done.status, "succeeded");
    assert_eq!(log_text(&f.store, &run.id, "a")[1], "second");
    // The same commit is not built twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(f.store.runs(Some("polled"), 10).unwrap().len(), 1);
    f.service.shutdown().await;
}

#[test]
fn branch_patterns() {
    use pipeline::service::branch_matches;
    let p = vec!["dev".to_string(), "release/*".to_string()];
    assert!(branch_matches(&p, "dev") && branch_matches(&p, "release/1.2"));
    assert!(!branch_matches(&p, "main") && !branch_matches(&p, "develop"));
}

#[tokio::test]
async fn a_failed_run_is_retried_from_the_failed_step_on_the_same_commit() {
    let marker = tempfile::tempdir().unwrap();
    let ok = marker.path().join("ok");
    let f = fixture(&format!(
        "version: 1\nname: r\nsteps:\n  build: {{ run: 'echo \"built=$(date +%s%N)\" >> \"$SLIPWAY_OUTPUT\"' }}\n  check:\n    needs: [build]\n    run: ['test -f {}', 'cat hello.txt', 'echo \"using ${{{{ steps.build.outputs.built }}}}\"']\n",
        ok.display()
    ));
    f.service.add_pipeline("r", &f.source).await.unwrap();
    let first = f
        .service
        .trigger("r", "push", "webhook", BTreeMap::new())
        .unwrap();
    let failed = wait_run(&f.store, &first.id, &["succeeded", "failed"]).await;
    assert_eq!(failed.status, "failed");
    assert!(f.service.retry(&first.id, "user:dana").is_ok());
    // Meanwhile the branch moved on; the retry still builds the first run's commit.
    std::fs::write(f.repo.path().join("hello.txt"), "newer\n").unwrap();
    git(f.repo.path(), &["commit", "-qam", "newer"]);
    std::fs::write(&ok, "").unwrap();
    let retried = f.service.retry(&first.id, "user:dana").unwrap();
    assert_eq!((retried.event.as_str(), retried.number), ("retry", 3));
    let done = wait_run(&f.store, &retried.id, &["succeeded", "failed"]).await;
    assert_eq!(done.status, "succeeded", "{:?}", f.store.steps(&retried.id));
    assert_eq!(done.sha, failed.sha, "same commit");
    let build = f
        .store
        .steps(&retried.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "build")
        .unwrap();
    assert_eq!(
        build.reason.as_deref(),
        Some(format!("kept from run {}", first.id).as_str())
    );
    assert!(
        log_text(&f.store, &retried.id, "build").is_empty(),
        "build did not run again"
    );
    let built = f
        .store
        .steps(&first.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "build")
        .unwrap()
        .outputs;
    let value: serde_json::Value = serde_json::from_str(&built).unwrap();
    let check = log_text(&f.store, &retried.id, "check");
    assert!(
        check.contains(&"hello from the repo".to_string()),
        "{check:?}"
    );
    assert!(
        check.contains(&format!("using {}", value["built"].as_str().unwrap())),
        "{check:?}"
    );
    assert!(
        f.service.retry(&retried.id, "user:dana").is_err(),
        "a succeeded run is not retried"
    );
}

#[tokio::test]
async fn a_cron_schedule_starts_one_run_per_minute() {
    let f = fixture(
        "version: 1\nname: nightly\non: { cron: ['* * * * *'] }\nsteps:\n  a: { run: echo tick }\n",
    );
    f.service.add_pipeline("nightly", &f.source).await.unwrap();
    assert_eq!(f.service.source("nightly").unwrap().cron, ["* * * * *"]);
    f.service.start_polling();
    let run = first_run(&f.store, "nightly", "the schedule never fired").await;
    assert_eq!(
        (run.event.as_str(), run.triggered_by.as_str()),
        ("cron", "cron")
    );
    assert_eq!(
        wait_run(&f.store, &run.id, &["succeeded", "failed"])
            .await
            .status,
        "succeeded"
    );
    // Within the same minute nothing else starts (a second look a little later).
    let minute = run.created_at / 60_000;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let same_minute = f
        .store
        .runs(Some("nightly"), 10)
        .unwrap()
        .into_iter()
        .filter(|r| r.created_at / 60_000 == minute)
        .count();
    assert_eq!(same_minute, 1);
    f.service.shutdown().await;
}

fn sarif(results: &[(&str, &str, &str)]) -> String {
    let results: Vec<serde_json::Value> = results
        .iter()
        .map(|(rule, level, file)| {
            serde_json::json!({"ruleId": rule, "level": level, "message": {"text": format!("{rule} in {file}")},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": file}, "region": {"startLine": 1}}}]})
        })
        .collect();
    serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "lint"}}, "results": results}]}).to_string()
}

#[tokio::test]
async fn the_gate_passes_on_the_baseline_and_fails_on_a_new_error() {
    let f = fixture(
        "version: 1\nname: g\nsteps:\n  lint: { run: 'cp lint.sarif out.sarif' }\n  quality:\n    needs: [lint]\n    gate: { sarif: out.sarif, max_new: { error: 0, warning: 5 } }\n",
    );
    let commit = |results: &[(&str, &str, &str)], msg: &str| {
        std::fs::write(f.repo.path().join("lint.sarif"), sarif(results)).unwrap();
        git(f.repo.path(), &["add", "."]);
        git(f.repo.path(), &["commit", "-qm", msg]);
    };
    commit(
        &[("W1", "warning", "a.rs"), ("E0", "error", "old.rs")],
        "baseline",
    );
    f.service.add_pipeline("g", &f.source).await.unwrap();
    // No baseline yet: every finding is new, and one error is over the limit.
    let first = f
        .service
        .trigger("g", "push", "webhook", BTreeMap::new())
        .unwrap();
    let run = wait_run(&f.store, &first.id, &["succeeded", "failed"]).await;
    assert_eq!(run.status, "failed");
    let quality = |id: &str| {
        f.store
            .steps(id)
            .unwrap()
            .into_iter()
            .find(|s| s.name == "quality")
            .unwrap()
    };
    assert_eq!(
        quality(&first.id).reason.as_deref(),
        Some("quality gate failed: 1 new error-level finding(s) (at most 0)")
    );

    // The error is fixed: the run passes and becomes the baseline.
    commit(&[("W1", "warning", "a.rs")], "fix");
    let second = run_to_end(&f, "g").await;
    assert_eq!(second.status, "succeeded");
    // The known warning stays; a new error fails the gate and is named in the log.
    commit(
        &[("W1", "warning", "a.rs"), ("E1", "error", "b.rs")],
        "regress",
    );
    let third = run_to_end(&f, "g").await;
    assert_eq!(third.status, "failed");
    assert_eq!(
        quality(&third.id).reason.as_deref(),
        Some("quality gate failed: 1 new error-level finding(s) (at most 0)")
    );
    let log = log_text(&f.store, &third.id, "quality");
    assert!(
        log.iter().any(|l| l.starts_with("baseline: run #2 of dev")),
        "{log:?}"
    );
    assert!(
        log.contains(&"  new error E1 at b.rs:1: E1 in b.rs".to_string()),
        "{log:?}"
    );
    assert!(log.contains(&"0 new warning(s)".to_string()), "{log:?}");
    // New warnings within the limit pass.
    commit(
        &[("W1", "warning", "a.rs"), ("W2", "warning", "c.rs")],
        "warn",
    );
    let fourth = run_to_end(&f, "g").await;
    assert_eq!(fourth.status, "succeeded");
    assert!(
        quality(&fourth.id)
            .outputs
            .contains("\"new_warning\":\"1\""),
        "{}",
        quality(&fourth.id).outputs
    );
}

#[tokio::test]
async fn docker_step_builds_pushes_and_hands_the_digest_on() {
    let Some(()) = testkit::docker() else { return };
    testkit::registry_up().expect("the test registry");
    let repo_name = format!("slipway-pipe-{}", std::process::id());
    let file = format!(
        "version: 1\nname: img\nsteps:\n  image:\n    docker: {{ build: app, push: \"{}/{repo_name}:${{{{ run.number }}}}\" }}\n  use:\n    needs: [image]\n    run: 'echo \"deploy ${{{{ steps.image.outputs.image }}}}\"'\n",
        testkit::registry()
    );
    let f = fixture(&file);
    commit_app(&f, "ENTRYPOINT [\"/testsrv\"]\n");
    f.service.set_docker(pipeline::service::DockerSetup {
        config: docker::DockerConfig::default(),
        registry_config: None,
        registry_ca: None,
    });
    f.service.add_pipeline("img", &f.source).await.unwrap();
    let run = f
        .service
        .trigger("img", "push", "webhook", BTreeMap::new())
        .unwrap();
    let done = wait_run(&f.store, &run.id, &["succeeded", "failed"]).await;
    assert_eq!(
        done.status,
        "succeeded",
        "{:?} {:?}",
        f.store.steps(&run.id),
        log_text(&f.store, &run.id, "image")
    );
    let image = f
        .store
        .steps(&run.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "image")
        .unwrap();
    let outputs: serde_json::Value = serde_json::from_str(&image.outputs).unwrap();
    let digest = outputs["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{outputs}");
    assert_eq!(
        outputs["reference"],
        format!("{}/{repo_name}:1", testkit::registry())
    );
    let line = format!("deploy {}/{repo_name}@{digest}", testkit::registry());
    assert!(
        log_text(&f.store, &run.id, "use").contains(&line),
        "{:?}",
        log_text(&f.store, &run.id, "use")
    );
    let _ = std::process::Command::new("docker")
        .args(["rmi", &format!("{}/{repo_name}:1", testkit::registry())])
        .output();
}

#[tokio::test]
async fn docker_run_steps_with_an_image_run_in_containers_against_the_host() {
    let Some(()) = testkit::docker() else { return };
    let image = testkit::test_image("pipeline-step").unwrap();
    // A service on the host's loopback for the "automated tests" to check.
    let port = testkit::free_port();
    let mut service = std::process::Command::new(testkit::testsrv())
        .arg("--port")
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let closed = testkit::free_port();
    let file = format!(
        "version: 1\nname: e2e\nsteps:\n  api-tests:\n    image: {image}\n    run: /testsrv --check http://127.0.0.1:{port}/health\n  broken:\n    image: {image}\n    run: /testsrv --check http://127.0.0.1:{closed}/health\n"
    );
    let f = fixture(&file);
    f.service.set_docker(pipeline::service::DockerSetup {
        config: docker::DockerConfig::default(),
        registry_config: None,
        registry_ca: None,
    });
    f.service.add_pipeline("e2e", &f.source).await.unwrap();
    testkit::wait_for("the service", Duration::from_secs(10), || {
        testkit::http_get(&format!("http://127.0.0.1:{port}/health"))
            .ok()
            .map(|_| ())
    })
    .unwrap();
    let run = f
        .service
        .trigger("e2e", "push", "webhook", BTreeMap::new())
        .unwrap();
    let done = wait_run(&f.store, &run.id, &["succeeded", "failed"]).await;
    let _ = service.kill();
    let _ = service.wait();
    let steps = f.store.steps(&run.id).unwrap();
    let status = |n: &str| steps.iter().find(|s| s.name == n).unwrap().clone();
    assert_eq!(
        status("api-tests").status,
        "succeeded",
        "{:?}",
        log_text(&f.store, &run.id, "api-tests")
    );
    let broken = status("broken");
    assert_eq!(broken.status, "failed");
    assert!(
        broken
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("exited with status 1"),
        "{broken:?}"
    );
    assert_eq!(done.status, "failed");
    // The step containers are gone. Waited for without blocking this test's runtime: the
    // removals run on it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = tokio::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", "label=slipway.step"])
            .output()
            .await
            .unwrap();
        let left = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "step containers still there after 30 s: {left}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn files_named_in_pipelines_stay_inside_the_workspace() {
    use pipeline::service::in_workspace;
    let ws = Path::new("/srv/ws");
    assert_eq!(
        in_workspace(ws, "deploy/app.json").unwrap(),
        Path::new("/srv/ws/deploy/app.json")
    );
    assert!(in_workspace(ws, "/etc/passwd").is_err());
    assert!(in_workspace(ws, "deploy/../../etc/passwd").is_err());
    let f = fixture("version: 1\nname: x\nsteps:\n  a: { run: 'true' }\n");
    let outside = Source {
        file: "/etc/passwd".into(),
        ..f.source.clone()
    };
    let err = f
        .service
        .add_pipeline("x", &outside)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "`/etc/passwd` is outside the workspace");
}

#[tokio::test]
async fn chatty_steps_keep_the_newest_lines_in_order() {
    let f = fixture("version: 1\nname: chatty\nsteps:\n  a: { run: 'seq 1 20000' }\n");
    f.service.add_pipeline("chatty", &f.source).await.unwrap();
    let run = run_to_end(&f, "chatty").await;
    assert_eq!(run.status, "succeeded");
    // The command line and 20,000 output lines were written; the last 10,000 are kept,
    // with their sequence numbers.
    let lines = f.store.logs(&run.id, "a", 0, 30_000).unwrap();
    assert_eq!(lines.len(), pipeline::service::LOG_LINES_KEPT);
    assert_eq!((lines[0].seq, lines[0].line.as_str()), (10_002, "10001"));
    let last = lines.last().unwrap();
    assert_eq!((last.seq, last.line.as_str()), (20_001, "20000"));
    assert!(lines.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[tokio::test]
async fn docker_promotion_tags_an_approved_digest_and_refuses_others() {
    let Some(()) = testkit::docker() else { return };
    testkit::registry_up().expect("the test registry");
    let reg = testkit::registry();
    let repo_name = format!("slipway-promote-{}", std::process::id());
    let main = format!(
        "version: 1\nname: main\nsteps:\n  image:\n    docker: {{ build: app, push: \"{reg}/{repo_name}:build-${{{{ run.number }}}}\" }}\n  qa-signoff:\n    needs: [image]\n    approve: {{ message: ok? }}\n"
    );
    let f = fixture(&main);
    commit_app(&f, "");
    std::fs::write(
        f.repo.path().join(".slipway/release.yaml"),
        format!("version: 1\nname: release\nparams:\n  Image: {{ type: string, required: true }}\n  Version: {{ type: string, required: true }}\nsteps:\n  promote:\n    promote: {{ image: \"${{{{ params.Image }}}}\", to: \"{reg}/{repo_name}:${{{{ params.Version }}}}\", require_approval: qa-signoff }}\n"),
    )
    .unwrap();
    git(f.repo.path(), &["add", "."]);
    git(f.repo.path(), &["commit", "-qm", "app"]);
    f.service.set_docker(pipeline::service::DockerSetup {
        config: docker::DockerConfig::default(),
        registry_config: None,
        registry_ca: None,
    });
    f.service.add_pipeline("main", &f.source).await.unwrap();
    let release_source = Source {
        file: ".slipway/release.yaml".into(),
        ..f.source.clone()
    };
    f.service
        .add_pipeline("release", &release_source)
        .await
        .unwrap();

    let built = f
        .service
        .trigger("main", "push", "webhook", BTreeMap::new())
        .unwrap();
    wait_step(&f.store, &built.id, "qa-signoff", "waiting").await;
    f.service
        .decide(
            &built.id,
            "qa-signoff",
            Decision {
                approve: true,
                by: "user:qa".into(),
            },
        )
        .unwrap();
    assert_eq!(
        wait_run(&f.store, &built.id, &["succeeded", "failed"])
            .await
            .status,
        "succeeded"
    );
    let image_step = f
        .store
        .steps(&built.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "image")
        .unwrap();
    let outputs: serde_json::Value = serde_json::from_str(&image_step.outputs).unwrap();
    let approved_image = outputs["image"].as_str().unwrap().to_string();
    let digest = outputs["digest"].as_str().unwrap().to_string();

    let params = |image: &str, version: &str| {
        BTreeMap::from([
            ("Image".to_string(), image.to_string()),
            ("Version".to_string(), version.to_string()),
        ])
    };
    let ok = f
        .service
        .trigger(
            "release",
            "manual",
            "user:lead",
            params(&approved_image, "1.0.0"),
        )
        .unwrap();
    let done = wait_run(&f.store, &ok.id, &["succeeded", "failed"]).await;
    assert_eq!(
        done.status,
        "succeeded",
        "{:?}",
        log_text(&f.store, &ok.id, "promote")
    );
    let promoted = f
        .store
        .steps(&ok.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "promote")
        .unwrap();
    assert!(promoted.outputs.contains(&digest), "{}", promoted.outputs);
    assert!(
        log_text(&f.store, &ok.id, "promote")
            .iter()
            .any(|l| l.contains("(no rebuild)"))
    );
    // The registry serves the new tag as the same manifest (pull it back by tag).
    let pulled = std::process::Command::new("docker")
        .args(["pull", "-q", &format!("{reg}/{repo_name}:1.0.0")])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let inspect = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &format!("{reg}/{repo_name}:1.0.0"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains(&digest),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );

    // An image that never passed qa-signoff is refused.
    let d = docker::Docker::connect(docker::DockerConfig::default())
        .await
        .unwrap();
    std::fs::write(
        f.repo.path().join("app/Dockerfile.other"),
        "FROM scratch\nCOPY testsrv /other\n",
    )
    .unwrap();
    let other = d
        .build_and_push(
            &f.repo.path().join("app"),
            "Dockerfile.other",
            &format!("{reg}/{repo_name}:unapproved"),
            &[],
            None,
            &|_| {},
        )
        .await
        .unwrap();
    let refused = f
        .service
        .trigger(
            "release",
            "manual",
            "user:lead",
            params(&format!("{reg}/{repo_name}@{}", other.digest), "1.0.1"),
        )
        .unwrap();
    let run = wait_run(&f.store, &refused.id, &["succeeded", "failed"]).await;
    assert_eq!(run.status, "failed");
    let step = f
        .store
        .steps(&refused.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "promote")
        .unwrap();
    assert_eq!(
        step.reason.as_deref(),
        Some(
            format!(
                "{repo_name}@{} never passed the approval `qa-signoff`",
                other.digest
            )
            .as_str()
        )
    );
    for t in ["build-1", "1.0.0", "unapproved"] {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &format!("{reg}/{repo_name}:{t}")])
            .output();
    }
}

/// A bare repository `name.git` under `root` with `files` on `master`.
fn bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "-b", "master"]);
    for (path, text) in files {
        let p = work.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-qm", "ops"]);
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.path().to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    bare
}

#[tokio::test]
async fn other_repositories_are_checked_out_with_their_own_credentials() {
    let root = tempfile::tempdir().unwrap();
    bare_repo(
        root.path(),
        "ops",
        &[("orders/app.json", "{\"id\": \"/orders\"}\n")],
    );
    // The fixture's secret `tok` is the token; the server wants it as user git's password.
    let server = testkit::GitHttpServer::start(root.path(), "git", "s3cret-token-value").unwrap();
    let file = format!(
        "version: 1\nname: x\nrepos:\n  ops: {{ url: '{}/ops.git', secret: tok }}\nsteps:\n  show:\n    run: 'cat \"$SLIPWAY_REPO_OPS/orders/app.json\"'\n",
        server.url
    );
    let f = fixture(&file);
    f.service.add_pipeline("x", &f.source).await.unwrap();
    let run = run_to_end(&f, "x").await;
    assert_eq!(run.status, "succeeded", "{:?}", f.store.steps(&run.id));
    assert!(log_text(&f.store, &run.id, "show").contains(&"{\"id\": \"/orders\"}".to_string()));

    // Without the right credentials the run fails at checkout, naming the repository and
    // never the secret.
    let other = testkit::GitHttpServer::start(root.path(), "git", "another-password").unwrap();
    let refused_before = other.refused.load(std::sync::atomic::Ordering::SeqCst);
    let file = file.replace(&server.url, &other.url);
    std::fs::write(f.repo.path().join(".slipway/pipeline.yaml"), file).unwrap();
    git(f.repo.path(), &["commit", "-qam", "other server"]);
    let run = run_to_end(&f, "x").await;
    assert_eq!(run.status, "failed");
    let reason = run.reason.unwrap_or_default();
    assert!(reason.contains("repository `ops`"), "{reason}");
    assert!(!reason.contains("s3cret-token-value"), "{reason}");
    assert!(other.refused.load(std::sync::atomic::Ordering::SeqCst) > refused_before);
}

#[tokio::test]
async fn merge_steps_fast_forward_or_merge_and_push() {
    let f = fixture("version: 1\nname: m\nsteps:\n  release:\n    merge: { into: master }\n");
    // The fixture's repository is non-bare with dev checked out; its clone is the origin
    // the step pushes to, so push into a bare copy and run the pipeline from that.
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("app.git");
    git(
        root.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &f.repo.path().to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    let head = |branch: &str| {
        String::from_utf8(
            std::process::Command::new("git")
                .args(["rev-parse", branch])
                .current_dir(&bare)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string()
    };
    // master starts where dev is.
    git(&bare, &["branch", "-f", "master", &head("dev")]);
    let source = Source {
        repo: bare.to_string_lossy().into(),
        ..f.source.clone()
    };
    f.service.add_pipeline("m", &source).await.unwrap();

    // Equal branches: nothing to do.
    let run = run_to_end(&f, "m").await;
    assert_eq!(run.status, "succeeded", "{:?}", f.store.steps(&run.id));
    assert!(
        log_text(&f.store, &run.id, "release")
            .iter()
            .any(|l| l.contains("already contains")),
        "{:?}",
        log_text(&f.store, &run.id, "release")
    );

    // dev ahead: a fast-forward.
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "-q", "-b", "dev", &bare.to_string_lossy(), "."],
    );
    std::fs::write(work.path().join("new.txt"), "new\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-qm", "feature"]);
    git(work.path(), &["push", "-q", "origin", "dev"]);
    let run = run_to_end(&f, "m").await;
    assert_eq!(run.status, "succeeded", "{:?}", f.store.steps(&run.id));
    assert_eq!(head("master"), head("dev"), "fast-forwarded");
    assert_eq!(head("master"), run.sha);

    // master diverged (a hotfix): a merge commit with both parents.
    git(
        work.path(),
        &["checkout", "-q", "-b", "hotfix", "origin/master"],
    );
    git(work.path(), &["pull", "-q", "origin", "master"]);
    std::fs::write(work.path().join("hotfix.txt"), "fix\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-qm", "hotfix"]);
    git(work.path(), &["push", "-q", "origin", "hotfix:master"]);
    git(work.path(), &["checkout", "-q", "dev"]);
    std::fs::write(work.path().join("more.txt"), "more\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-qm", "more"]);
    git(work.path(), &["push", "-q", "origin", "dev"]);
    let hotfix = head("master");
    let run = run_to_end(&f, "m").await;
    assert_eq!(run.status, "succeeded", "{:?}", f.store.steps(&run.id));
    let parents = String::from_utf8(
        std::process::Command::new("git")
            .args(["rev-list", "--parents", "-n", "1", "master"])
            .current_dir(&bare)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        parents.contains(&hotfix) && parents.contains(&run.sha),
        "{parents}"
    );
}

#[tokio::test]
async fn plans_check_parameters_and_name_the_environments_a_run_deploys_to() {
    let f = fixture(
        "version: 1\nname: r\non: { manual: { allowed: [role:deployer] } }\nparams:\n  DC: { type: choice, options: [AA, BB] , default: AA }\n  Env: { type: choice, options: [yz, prod], default: yz }\nvars:\n  WHERE: ${{ params.DC }}/${{ params.Env }}\nsteps:\n  d:\n    deploy: { env: '${{ vars.WHERE }}', app: a.json }\n  e:\n    needs: [d]\n    deploy: { env: qa, app: a.json }\n",
    );
    f.service.add_pipeline("r", &f.source).await.unwrap();
    let plan = f
        .service
        .plan(
            "r",
            &BTreeMap::from([("DC".into(), "BB".into()), ("Env".into(), "prod".into())]),
        )
        .unwrap();
    assert_eq!(plan.deploy_envs, ["BB/prod", "qa"]);
    assert_eq!(plan.manual_allowed, ["role:deployer"]);
    let err = f
        .service
        .plan("r", &BTreeMap::from([("Env".into(), "moon".into())]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "parameter `Env` is one of yz, prod, not `moon`");
    assert!(f.service.plan("nope", &BTreeMap::new()).is_err());
}

/// Issue 17 §1: a run waiting for an approval hands its turn on (the next commit is built
/// meanwhile), says what it waits for, and is superseded when a newer run is approved for
/// the same environment.
#[tokio::test]
async fn a_waiting_run_does_not_block_newer_commits_and_is_superseded_by_them() {
    let f = fixture(
        "version: 1\nname: w\nsteps:\n  build: { run: 'echo built' }\n  signoff:\n    needs: [build]\n    approve: { message: 'Ship it?', env: prod, timeout: 1h }\n  ship:\n    needs: [signoff]\n    run: echo shipped\n",
    );
    f.service.add_pipeline("w", &f.source).await.unwrap();
    let older = f
        .service
        .trigger("w", "push", "poll", BTreeMap::new())
        .unwrap();
    wait_step(&f.store, &older.id, "signoff", "waiting").await;
    let waits = f.service.waiting_for(&older.id, false).unwrap();
    assert!(
        waits.contains("approval `signoff` (Ship it?)")
            && waits.contains(&format!("slipway runs approve {} signoff", older.id)),
        "{waits}"
    );
    // A newer commit runs while the older run waits.
    git(
        f.repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "newer"],
    );
    let newer = f
        .service
        .trigger("w", "push", "poll", BTreeMap::new())
        .unwrap();
    let built = wait_step(&f.store, &newer.id, "build", "succeeded").await;
    assert!(built.finished_at.is_some());
    wait_step(&f.store, &newer.id, "signoff", "waiting").await;
    assert_eq!(
        f.store.run(&older.id).unwrap().unwrap().status,
        store::RunStatus::Running,
        "the older run still waits"
    );
    f.service
        .decide(
            &newer.id,
            "signoff",
            Decision {
                approve: true,
                by: "user:lee".into(),
            },
        )
        .unwrap();
    let done = wait_run(&f.store, &newer.id, &["succeeded", "failed"]).await;
    assert_eq!(done.status, store::RunStatus::Succeeded);
    let old = wait_run(&f.store, &older.id, &["superseded", "failed", "succeeded"]).await;
    assert_eq!(
        (old.status, old.reason.as_deref()),
        (
            store::RunStatus::Superseded,
            Some("superseded by run #2 of w, approved for prod by user:lee")
        )
    );
    assert!(f.service.pending("w", "signoff").is_none());
    assert_ne!(old.sha, done.sha, "each run built its own commit");
}

/// Issue 12 §9 and §11: a committed symbolic link that leads out of the checkout is never
/// read (not as the pipeline file, not as SARIF, not in a build context), and a
/// repository "URL" that looks like an option reaches git as a repository.
#[tokio::test]
async fn symlinks_out_of_the_checkout_are_not_read_and_urls_are_not_options() {
    let secret = tempfile::tempdir().unwrap();
    let target = secret.path().join("shadow");
    std::fs::write(
        &target,
        "root:$6$hash-that-must-not-leak:19000:0:99999:7:::\n",
    )
    .unwrap();
    let f = fixture(
        "version: 1\nname: g\nsteps:\n  lint: { run: 'true' }\n  gate: { needs: [lint], gate: { sarif: [leak.sarif] } }\n",
    );
    std::os::unix::fs::symlink(&target, f.repo.path().join("leak.yaml")).unwrap();
    std::os::unix::fs::symlink(&target, f.repo.path().join("leak.sarif")).unwrap();
    git(f.repo.path(), &["add", "."]);
    git(f.repo.path(), &["commit", "-qm", "links"]);
    let leak = Source {
        file: "leak.yaml".into(),
        ..f.source.clone()
    };
    let err = f
        .service
        .add_pipeline("leak", &leak)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`leak.yaml` is a symbolic link that leads outside the checkout; it is not read"
    );
    assert!(!err.contains("hash-that-must-not-leak"));
    f.service.add_pipeline("g", &f.source).await.unwrap();
    let run = run_to_end(&f, "g").await;
    assert_eq!(run.status, store::RunStatus::Failed);
    let gate = f
        .store
        .steps(&run.id)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "gate")
        .unwrap();
    assert_eq!(
        gate.reason.as_deref(),
        Some("`leak.sarif` is a symbolic link that leads outside the checkout; it is not read")
    );
    for line in f.store.logs(&run.id, "gate", 0, 100).unwrap() {
        assert!(!line.line.contains("hash-that-must-not-leak"));
    }
    // A build context with such a link is not sent either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ctx/sub")).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("ctx/sub/x")).unwrap();
    assert!(
        pipeline::service::links_stay_inside(&dir.path().join("ctx"), dir.path())
            .unwrap_err()
            .contains("ctx/sub/x")
    );

    // `git clone -- URL`: an "URL" that is an option is a repository that does not exist.
    let marker = secret.path().join("pwned");
    let evil = Source {
        repo: format!("--upload-pack=touch {}", marker.display()),
        ..f.source.clone()
    };
    assert!(f.service.add_pipeline("evil", &evil).await.is_err());
    assert!(!marker.exists(), "git ran the option");
}

/// Deploys nothing: records what it was asked, and reports every deployment running until
/// `open` is set.
#[derive(Default)]
struct HeldDeployer {
    open: std::sync::atomic::AtomicBool,
    asked: std::sync::Mutex<Vec<String>>,
}

impl pipeline::service::Deployer for HeldDeployer {
    fn deploy(
        &self,
        who: &pipeline::service::Actor,
        app: serde_json::Value,
    ) -> Result<String, String> {
        let mut asked = self.asked.lock().unwrap();
        asked.push(format!("{} as {who}", app["id"].as_str().unwrap_or("")));
        Ok(format!("d{}", asked.len()))
    }
    fn status(
        &self,
        _deployment: &str,
    ) -> Result<Option<pipeline::service::DeploymentStatus>, String> {
        let open = self.open.load(std::sync::atomic::Ordering::SeqCst);
        Ok(Some(pipeline::service::DeploymentStatus {
            status: if open { "success" } else { "running" }.into(),
            reason: None,
            progress: String::new(),
        }))
    }
    fn is_admin(&self, _who: &pipeline::service::Actor) -> bool {
        false
    }
}

/// Issue 17 §1: deploys to one environment stay one at a time; a run waiting for the
/// environment is superseded when a newer run is approved for it, and says so.
#[tokio::test]
async fn deploys_to_one_environment_queue_and_a_newer_approval_supersedes_a_waiting_run() {
    let f = fixture(
        "version: 1\nname: p\nsteps:\n  ok:\n    approve: { message: 'Go?', env: prod, timeout: 1h }\n  live:\n    needs: [ok]\n    deploy: { env: prod, app: app.json, timeout: 60s }\n",
    );
    std::fs::write(f.repo.path().join("app.json"), r#"{"id": "/prod/app"}"#).unwrap();
    git(f.repo.path(), &["add", "."]);
    git(f.repo.path(), &["commit", "-qm", "app"]);
    let deployer = Arc::new(HeldDeployer::default());
    f.service.set_deployer(deployer.clone());
    f.service.add_pipeline("p", &f.source).await.unwrap();
    let approve = |run: &str| {
        f.service
            .decide(
                run,
                "ok",
                Decision {
                    approve: true,
                    by: "user:lee".into(),
                },
            )
            .unwrap()
    };
    let start = || {
        f.service
            .trigger("p", "manual", "user:dana", BTreeMap::new())
            .unwrap()
    };
    // #1 deploys (and is held); #2, approved, waits for prod.
    let first = start();
    wait_step(&f.store, &first.id, "ok", "waiting").await;
    approve(&first.id);
    wait_step(&f.store, &first.id, "live", "running").await;
    let second = start();
    wait_step(&f.store, &second.id, "ok", "waiting").await;
    approve(&second.id);
    let start_wait = Instant::now();
    while !f
        .service
        .waiting_for(&second.id, false)
        .is_some_and(|w| w.contains("the prod environment"))
    {
        assert!(
            start_wait.elapsed() < Duration::from_secs(10),
            "{:?}",
            f.service.waiting_for(&second.id, false)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        deployer.asked.lock().unwrap().len(),
        1,
        "one deploy at a time"
    );
    // #3 is approved: #2, which only waited, is superseded; #1 finishes, then #3 deploys.
    let third = start();
    wait_step(&f.store, &third.id, "ok", "waiting").await;
    approve(&third.id);
    let superseded = wait_run(&f.store, &second.id, &["superseded", "failed", "succeeded"]).await;
    assert_eq!(
        (superseded.status, superseded.reason.as_deref()),
        (
            store::RunStatus::Superseded,
            Some("superseded by run #3 of p, approved for prod by user:lee")
        )
    );
    deployer
        .open
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        wait_run(&f.store, &first.id, &["succeeded", "failed"])
            .await
            .status,
        store::RunStatus::Succeeded
    );
    assert_eq!(
        wait_run(&f.store, &third.id, &["succeeded", "failed"])
            .await
            .status,
        store::RunStatus::Succeeded
    );
    assert_eq!(
        *deployer.asked.lock().unwrap(),
        ["/prod/app as user:lee", "/prod/app as user:lee"],
        "the approver deploys; #2 never did"
    );
}
