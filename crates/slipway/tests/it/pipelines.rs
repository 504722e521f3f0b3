//! Pipelines through the real binary: `slipway pipelines add|run --follow`, `slipway runs
//! approve|logs|show`, and kill -9 of the server while a run waits for an approval (it is
//! pending again after the restart) or while a step runs (the run is marked interrupted,
//! naming the step).

use crate::*;
use std::process::{Command, Output};
use testkit::wait_for;

use testkit::git;

fn repo(file: &str) -> tempfile::TempDir {
    testkit::git_repo(file, &[])
}

pub(crate) fn cli(s: &SlipwayProcess, args: &[&str]) -> Output {
    Command::new(slipway_bin())
        .args(args)
        .env("SLIPWAY_URL", &s.url)
        .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
        .output()
        .unwrap()
}

#[track_caller]
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `slipway pipelines run NAME`; the new run's id.
fn start_run(s: &SlipwayProcess, pipeline: &str) -> String {
    let started: Value = serde_json::from_str(&ok(&cli(
        s,
        &["pipelines", "run", pipeline, "--output", "json"],
    )))
    .unwrap();
    started["id"].as_str().unwrap().to_string()
}

fn run_json(s: &SlipwayProcess, id: &str) -> Value {
    get_json(&format!("{}/api/v1/runs/{id}", s.url)).unwrap()
}

fn step_status(run: &Value, step: &str) -> String {
    run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == step)
        .map(|x| x["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn cli_runs_pipelines_and_follows_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SlipwayProcess::start(&slipway_bin(), dir.path(), &["--metrics-interval", "1s"])
        .expect("slipway starts");
    let repo = repo(
        "version: 1\nname: ok\nsteps:\n  a: { run: echo alpha }\n  b: { needs: [a], run: 'echo beta; exit 4' }\n  c: { needs: [b], run: echo gamma }\n",
    );
    ok(&cli(
        &s,
        &[
            "pipelines",
            "add",
            "ok",
            "--repo",
            repo.path().to_str().unwrap(),
            "--branch",
            "dev",
        ],
    ));
    let listed = ok(&cli(&s, &["pipelines", "list", "--output", "json"]));
    assert!(listed.contains("\"ok\""), "{listed}");
    let out = cli(&s, &["pipelines", "run", "ok", "--follow"]);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a: succeeded")
            && stderr.contains("b: failed: `echo beta; exit 4` exited with status 4")
            && stderr.contains("c: not_run"),
        "{stderr}"
    );
    let runs: Value =
        serde_json::from_str(&ok(&cli(&s, &["runs", "list", "--output", "json"]))).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&cli(&s, &["runs", "logs", &id, "b"])),
        "+ echo beta; exit 4\nbeta\n`echo beta; exit 4` exited with status 4\n"
    );
    let pipeline = ok(&cli(&s, &["pipelines", "show", "ok"]));
    assert!(
        pipeline.contains("branch dev file .slipway/pipeline.yaml") && pipeline.contains(&id),
        "{pipeline}"
    );
    let shown = ok(&cli(&s, &["runs", "show", &id]));
    assert!(
        shown.contains("run #1 of ok: failed: failed: `b`"),
        "{shown}"
    );
    // A retry keeps `a` and runs `b` again (still failing: exit 1).
    let out = cli(&s, &["runs", "retry", &id, "--follow"]);
    assert_eq!(out.status.code(), Some(1));
    let runs: Value =
        serde_json::from_str(&ok(&cli(&s, &["runs", "list", "--output", "json"]))).unwrap();
    assert_eq!(
        (runs[0]["number"].as_i64(), runs[0]["event"].as_str()),
        (Some(2), Some("retry"))
    );
    let retried = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&cli(&s, &["runs", "logs", &retried, "a"])),
        "",
        "a was kept, not run"
    );
    assert!(ok(&cli(&s, &["runs", "logs", &retried, "b"])).contains("beta"));
    // Both runs are counted on /metrics, and the steps that ran: `a` once (the retry
    // kept it), `b` twice, `c` never (not run).
    let want = [
        r#"slipway_pipeline_runs_total{pipeline="ok",result="failed"} 2"#,
        r#"slipway_pipeline_run_duration_seconds_count{pipeline="ok"} 2"#,
        r#"slipway_pipeline_step_duration_seconds_count{pipeline="ok",step="a",result="succeeded"} 1"#,
        r#"slipway_pipeline_step_duration_seconds_count{pipeline="ok",step="b",result="failed"} 2"#,
    ];
    let text = wait_for("pipeline metrics", Duration::from_secs(30), || {
        let text = crate::watch::scrape(&s);
        want.iter().all(|w| text.contains(w)).then_some(text)
    })
    .unwrap_or_else(|e| {
        let text = crate::watch::scrape(&s);
        let ours: Vec<&str> = text.lines().filter(|l| l.contains("pipeline")).collect();
        panic!("{e}: {ours:#?}")
    });
    assert!(
        !text.contains(r#"step="c""#),
        "a step that did not run has no duration"
    );
    // A file error is reported with its line and column, exit code 4.
    std::fs::write(
        repo.path().join(".slipway/pipeline.yaml"),
        "version: 1\nname: ok\nsteps:\n  a: { run: x, retry: many }\n",
    )
    .unwrap();
    git(repo.path(), &["commit", "-qam", "break"]);
    let out = cli(
        &s,
        &[
            "pipelines",
            "add",
            "ok",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4:23:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn approvals_survive_kill9_and_cut_off_steps_are_named() {
    let (mut s, _dir) = server();
    let repo = repo(
        "version: 1\nname: rel\nsteps:\n  build: { run: 'echo built' }\n  ok: { needs: [build], approve: { message: \"Do tests OK?\" } }\n  ship: { needs: [ok], run: 'echo shipped' }\n",
    );
    ok(&cli(
        &s,
        &[
            "pipelines",
            "add",
            "rel",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    ));
    let id = start_run(&s, "rel");
    wait_for("the approval to wait", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &id), "ok") == "waiting").then_some(())
    })
    .unwrap();

    s.kill9();
    s.restart().unwrap();
    wait_for(
        "the approval to wait again",
        Duration::from_secs(30),
        || (step_status(&run_json(&s, &id), "ok") == "waiting").then_some(()),
    )
    .unwrap();
    ok(&cli(&s, &["runs", "approve", &id, "ok"]));
    wait_for("the run to succeed", Duration::from_secs(30), || {
        (run_json(&s, &id)["status"] == "succeeded").then_some(())
    })
    .unwrap();
    let run = run_json(&s, &id);
    let ok_step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "ok")
        .unwrap();
    assert_eq!(ok_step["decidedBy"], "user:admin");
    let build_log = ok(&cli(&s, &["runs", "logs", &id, "build"]));
    assert_eq!(
        build_log.lines().filter(|l| *l == "built").count(),
        1,
        "build ran once: {build_log}"
    );

    // kill -9 while a step runs: interrupted, naming it.
    std::fs::write(
        repo.path().join(".slipway/pipeline.yaml"),
        "version: 1\nname: rel\nsteps:\n  slow: { run: 'echo started; sleep 300' }\n",
    )
    .unwrap();
    git(repo.path(), &["commit", "-qam", "slow"]);
    ok(&cli(
        &s,
        &[
            "pipelines",
            "add",
            "rel",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    ));
    let slow = start_run(&s, "rel");
    wait_for("the slow step to run", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &slow), "slow") == "running").then_some(())
    })
    .unwrap();
    let marker = format!("SLIPWAY_RUN_ID={slow}");
    let leftovers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
            })
            .count()
    };
    // "running" is recorded as the step starts; wait until its processes exist.
    wait_for("the step's processes", Duration::from_secs(30), || {
        (leftovers() > 0).then_some(())
    })
    .unwrap();
    s.kill9();
    assert!(
        leftovers() > 0,
        "the step's processes outlive the killed server"
    );
    s.restart().unwrap();
    wait_for(
        "the step's processes to be killed",
        Duration::from_secs(10),
        || (leftovers() == 0).then_some(()),
    )
    .unwrap();
    let run = run_json(&s, &slow);
    assert_eq!(
        (run["status"].as_str(), run["reason"].as_str()),
        (
            Some("interrupted"),
            Some("interrupted: Slipway stopped while `slow` ran")
        )
    );
}

#[test]
fn cli_cancel_kills_the_running_step_and_ends_the_run() {
    let (s, _dir) = server();
    let repo = repo(
        "version: 1\nname: long\nsteps:\n  wait: { run: 'echo $$ > \"$SLIPWAY_RUN_ID.pid\"; sleep 300' }\n  after: { needs: [wait], run: echo never }\n",
    );
    ok(&cli(
        &s,
        &[
            "pipelines",
            "add",
            "long",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
    ));
    let id = start_run(&s, "long");
    wait_for("the step to run", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &id), "wait") == "running").then_some(())
    })
    .unwrap();
    ok(&cli(&s, &["runs", "cancel", &id]));
    wait_for("the run to end", Duration::from_secs(30), || {
        (run_json(&s, &id)["status"] == "cancelled").then_some(())
    })
    .unwrap();
    let run = run_json(&s, &id);
    assert_eq!(run["reason"], "cancelled by user:admin");
    assert_eq!(step_status(&run, "wait"), "cancelled");
    assert_eq!(step_status(&run, "after"), "cancelled");
    let pid_file = s
        .data_dir
        .join("runs")
        .join(&id)
        .join("workspace")
        .join(format!("{id}.pid"));
    let pid = std::fs::read_to_string(pid_file).unwrap();
    wait_for(
        "the step's shell to be gone",
        Duration::from_secs(10),
        || {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
            (stat.is_empty()
                || stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    == Some("Z"))
            .then_some(())
        },
    )
    .unwrap();
    let out = cli(&s, &["runs", "cancel", &id]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "an ended run cannot be cancelled"
    );
}

fn failed_with(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 17: `pipelines lint` reports every problem of a local file at once (no server),
/// `pipelines show` lists steps in order and typed parameters, a waiting run says what it
/// waits for with the approve command, runs are named `PIPELINE#N` or by an id prefix,
/// and logs of a misspelt step or an approval that is not pending say what is wrong.
#[test]
fn cli_lints_shows_and_explains_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nname: x\nsteps:\n  a: { run: echo a, timeout: soon }\n  b: { needs: [c], run: echo b }\n",
    )
    .unwrap();
    let lint = Command::new(slipway_bin())
        .args(["pipelines", "lint", bad.to_str().unwrap()])
        .env("SLIPWAY_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let err = failed_with(&lint, 4);
    assert!(
        err.contains("bad.yaml:4:") && err.contains("bad.yaml:5:"),
        "{err}"
    );
    let unclosed = dir.path().join("unclosed.yaml");
    std::fs::write(
        &unclosed,
        "version: 1\nname: x\nsteps:\n  a:\n    run: [echo a, echo b\n  b:\n    needs: [a]\n    run: echo b\n",
    )
    .unwrap();
    let lint = Command::new(slipway_bin())
        .args(["pipelines", "lint", unclosed.to_str().unwrap()])
        .output()
        .unwrap();
    let err = failed_with(&lint, 4);
    assert!(
        err.contains("unclosed.yaml:5:10: `[` is never closed"),
        "{err}"
    );

    let (s, _dir) = server();
    let repo = repo(
        "version: 1\nname: w\nparams:\n  Env: { type: choice, options: [qa, yz], default: qa, description: where }\n  Version: { type: string, required: true }\nsteps:\n  build: { run: echo built }\n  signoff:\n    needs: [build]\n    approve: { message: 'Ship ${{ params.Version }}?', timeout: 1h }\n  after: { needs: [signoff], run: echo after }\n",
    );
    ok(&cli(
        &s,
        &[
            "pipelines",
            "add",
            "w",
            "--repo",
            repo.path().to_str().unwrap(),
            "--branch",
            "dev",
        ],
    ));
    let secret = ok(&cli(&s, &["pipelines", "webhook-secret", "w"]));
    assert!(
        secret.starts_with("secret: ") && secret.contains("/api/v1/pipelines/w/hooks/push"),
        "{secret}"
    );
    let shown = ok(&cli(&s, &["pipelines", "show", "w"]));
    let build = shown.find("build").unwrap();
    let signoff = shown.find("signoff").unwrap();
    let after = shown.find("after").unwrap();
    assert!(
        build < signoff && signoff < after,
        "steps in order: {shown}"
    );
    assert!(
        shown.contains("choice (qa|yz)") && shown.contains("(required)"),
        "{shown}"
    );

    let started: Value = serde_json::from_str(&ok(&cli(
        &s,
        &[
            "pipelines",
            "run",
            "w",
            "-p",
            "Version=1.2",
            "--output",
            "json",
        ],
    )))
    .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    wait_for("the approval", Duration::from_secs(30), || {
        (step_status(&run_json(&s, &id), "signoff") == "waiting").then_some(())
    })
    .unwrap();
    let listed = ok(&cli(&s, &["runs", "list"]));
    assert!(
        listed.contains("WAITING FOR") && listed.contains("approval `signoff` (Ship 1.2?)"),
        "{listed}"
    );
    let shown = ok(&cli(&s, &["runs", "show", "w#1"]));
    assert!(shown.contains("run #1 of w: waiting"), "{shown}");
    assert!(
        shown.contains(&format!("slipway runs approve {id} signoff")),
        "{shown}"
    );
    assert!(shown.contains("DURATION"), "{shown}");
    let err = failed_with(&cli(&s, &["runs", "logs", &id[..8], "buld"]), 6);
    assert!(
        err.contains(
            "has no step `buld` (did you mean `build`?); its steps: build, signoff, after"
        ),
        "{err}"
    );
    let err = failed_with(&cli(&s, &["runs", "approve", "w#1", "after"]), 5);
    assert!(
        err.contains("`after` of run #1 of w is not an approval step"),
        "{err}"
    );
    ok(&cli(&s, &["runs", "approve", "w#1", "signoff"]));
    let err = failed_with(&cli(&s, &["runs", "approve", "w#1", "signoff"]), 5);
    assert!(
        err.contains("was already decided: approved by user:"),
        "{err}"
    );
    wait_for("the end of the run", Duration::from_secs(30), || {
        (run_json(&s, &id)["status"] == "succeeded").then_some(())
    })
    .unwrap();
    let logs = ok(&cli(&s, &["runs", "logs", "w#1", "build"]));
    assert!(logs.contains("built"), "{logs}");
}
