//! The first hour of a new user (issue 17), through the real binary as a user drives it:
//! honest deployment statuses (a crash-looping app never deploys as a success), the
//! four-eyes rule for prod approvals (admins included), confirmation of hand-made changes
//! in prod, errors that say what happened (unknown apps with near matches, own exit codes
//! for 403 and 404), and the example service stopping cleanly on SIGTERM.

use crate::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{http_as, wait_for};

/// `slipway ARGS` against `s` with `token`, standard input not a terminal: (exit code,
/// stdout, stderr).
fn slipway(s: &SlipwayProcess, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(slipway_bin())
        .args(args)
        .env("SLIPWAY_URL", &s.url)
        .env("SLIPWAY_TOKEN", token)
        .env("CI", "true")
        .stdin(Stdio::null())
        .output()
        .expect("slipway runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`slipway`] as the admin.
fn admin(s: &SlipwayProcess, args: &[&str]) -> (i32, String, String) {
    slipway(s, testkit::ADMIN_TOKEN, args)
}

/// Creates the user `name` with `role` and returns an API token of theirs.
fn user_token(s: &SlipwayProcess, name: &str, role: &str) -> String {
    let user = json!({"name": name, "role": role, "password": format!("{name}-password-long")});
    let (status, body) = send(s, "POST", "/api/v1/users", Some(&user));
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(s, "POST", "/api/v1/tokens", Some(&json!({"user": name})));
    assert!((200..300).contains(&status), "{body}");
    body["token"].as_str().expect("a token").to_string()
}

/// Deploys `def` through the CLI as the admin and waits for success.
fn deploy(s: &SlipwayProcess, dir: &Path, def: &Value) {
    let file = dir.join("app.json");
    std::fs::write(&file, def.to_string()).unwrap();
    let (code, out, err) = admin(
        s,
        &[
            "apps",
            "deploy",
            "-f",
            file.to_str().unwrap(),
            "--timeout",
            "60",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
}

fn sleeper(id: &str) -> Value {
    json!({"id": id, "cmd": "sleep 1000", "instances": 1, "cpus": 0.01, "mem": 16})
}

#[test]
fn firsthour_crash_looping_app_never_deploys_as_a_success() {
    let (s, dir) = server();
    let file = dir.path().join("crash.json");
    let crash = json!({"id": "/crash", "cmd": "exit 3", "instances": 1, "cpus": 0.01, "mem": 16});
    std::fs::write(&file, crash.to_string()).unwrap();
    let (code, out, err) = admin(
        &s,
        &[
            "apps",
            "deploy",
            "-f",
            file.to_str().unwrap(),
            "--timeout",
            "8",
        ],
    );
    // Not a success: the deployment is still waiting when the CLI gives up (exit 2), and
    // says why.
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("succeeded"), "{out}");
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(
        err.contains("keep failing (CrashLoopBackOff)") && err.contains("--previous"),
        "{err}"
    );
    let deployments = get_json(&format!("{}/v2/deployments", s.url)).unwrap();
    assert_eq!(
        deployments.as_array().map(Vec::len),
        Some(1),
        "{deployments}"
    );
    // The deployment still holds the app: another change is a conflict (exit 5).
    let (code, _, err) = admin(&s, &["apps", "scale", "/crash", "2"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("--force"), "{err}");

    // `apps list` and `apps show` name the state, like Kubernetes' CrashLoopBackOff, with
    // the backoff.
    let (code, out, err) = admin(&s, &["apps", "list"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("/crash")).unwrap_or("");
    assert!(row.contains("CrashLoopBackOff"), "{out}");
    let (code, out, err) = admin(&s, &["apps", "show", "/crash"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("State:         CrashLoopBackOff: tasks keep failing (")
            && out.contains("backoff "),
        "{out}"
    );
    let status = get_json(&format!("{}/api/v1/apps/crash/status", s.url)).unwrap();
    assert_eq!(status["state"], "CrashLoopBackOff", "{status}");
    assert!(status["crashLoop"]["backoffSeconds"].as_f64() > Some(0.0));

    // A command that keeps running deploys as before (once it has stayed up).
    let started = Instant::now();
    deploy(&s, dir.path(), &sleeper("/steady"));
    assert!(started.elapsed() < Duration::from_secs(30));
    let status = get_json(&format!("{}/api/v1/apps/steady/status", s.url)).unwrap();
    assert_eq!(status["state"], "Running", "{status}");
    assert_eq!(status["crashLoop"], Value::Null);
}

#[test]
fn firsthour_prod_changes_by_hand_ask_for_confirmation() {
    let (s, dir) = server();
    deploy(&s, dir.path(), &sleeper("/prod/web"));
    deploy(&s, dir.path(), &sleeper("/qa/web"));
    let instances = |id: &str| app(&s, id)["instances"].as_u64();

    // Not a terminal and no --yes: nothing changes, exit 8, and the message says how.
    for args in [
        &["apps", "scale", "/prod/web", "2"][..],
        &["apps", "delete", "/prod/web"],
    ] {
        let (code, out, err) = admin(&s, args);
        assert_eq!(code, 8, "{args:?}: {out}{err}");
        assert!(
            err.contains("/prod/web is in prod, which asks for confirmation")
                && err.contains("--yes"),
            "{err}"
        );
    }
    assert_eq!(instances("/prod/web"), Some(1));

    // --yes confirms.
    let (code, out, err) = admin(&s, &["apps", "scale", "/prod/web", "2", "--yes", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(instances("/prod/web"), Some(2));

    // A rollback of prod asks too.
    let mut changed = sleeper("/prod/web");
    changed["instances"] = json!(2);
    changed["env"] = json!({"V": "2"});
    deploy(&s, dir.path(), &changed);
    let (code, _, err) = admin(&s, &["apps", "rollback", "/prod/web"]);
    assert_eq!(code, 8, "{err}");
    assert_eq!(app(&s, "/prod/web")["env"]["V"], "2");
    let (code, out, err) = admin(&s, &["apps", "rollback", "/prod/web", "--yes", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(app(&s, "/prod/web")["env"]["V"], Value::Null);

    // On a terminal it asks: anything but `yes` changes nothing (exit 8); `yes` goes ahead.
    let on_terminal = |answer: &str| {
        use std::io::Write;
        let cmd = format!("{} apps scale /prod/web 3 --wait", slipway_bin().display());
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("SLIPWAY_URL", &s.url)
            .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1) runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, text) = on_terminal("no");
    assert_eq!(code, 8, "{text}");
    assert!(
        text.contains("Type `yes` to scale /prod/web to 3 instances"),
        "{text}"
    );
    assert_eq!(instances("/prod/web"), Some(2));
    let (code, text) = on_terminal("yes");
    assert_eq!(code, 0, "{text}");
    assert_eq!(instances("/prod/web"), Some(3));

    // qa does not ask.
    let (code, out, err) = admin(&s, &["apps", "scale", "/qa/web", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = admin(&s, &["apps", "delete", "/prod/web", "-y"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn firsthour_prod_approvals_follow_the_four_eyes_rule_for_admins_too() {
    let (s, _dir) = server();
    let lee = user_token(&s, "lee", "deployer");
    let dana = user_token(&s, "dana", "developer");
    let repo = testkit::git_repo(
        "version: 1\nname: rel\nsteps:\n  build: { run: 'echo built' }\n  ok: { needs: [build], approve: { message: \"Do tests OK?\", env: prod } }\n  ship: { needs: [ok], run: 'echo shipped' }\n",
        &[],
    );
    let (code, out, err) = admin(
        &s,
        &[
            "pipelines",
            "add",
            "rel",
            "--repo",
            repo.path().to_str().unwrap(),
            "--branch",
            "dev",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    // The admin starts the run.
    let (code, out, err) = admin(&s, &["pipelines", "run", "rel", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let approve = format!("{}/api/v1/runs/{id}/steps/ok/approve", s.url);
    wait_for(
        "the approval to be pending",
        Duration::from_secs(60),
        || {
            let run = get_json(&format!("{}/api/v1/runs/{id}", s.url)).ok()?;
            run["steps"]
                .as_array()?
                .iter()
                .any(|st| st["name"] == "ok" && st["status"] == "waiting")
                .then_some(())
        },
    )
    .unwrap();

    // prod says selfApproval: false, and that binds the admin who started the run.
    let (status, body) = http_as(testkit::ADMIN_TOKEN, "POST", &approve, None).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("admin started this run and prod does not allow self-approval"),
        "{body}"
    );
    // The CLI exits 7 for a 403, with the reason.
    let (code, _, err) = admin(&s, &["runs", "approve", &id, "ok"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("does not allow self-approval"), "{err}");
    // A developer may not approve prod at all; a deployer who did not start it may.
    let (status, body) = http_as(&dana, "POST", &approve, None).unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, body) = http_as(&lee, "POST", &approve, None).unwrap();
    assert!((200..300).contains(&status), "{status} {body}");
}

#[test]
fn firsthour_errors_name_what_is_missing_with_their_own_exit_codes() {
    let (s, dir) = server();
    deploy(&s, dir.path(), &sleeper("/AA/prod/orders"));

    // A typo in `apps scale`: no app is created, and the closest name is suggested.
    let (code, out, err) = admin(&s, &["apps", "scale", "/AA/prod/ordrs", "3", "--yes"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        err.contains("no app /AA/prod/ordrs (did you mean /AA/prod/orders?)"),
        "{err}"
    );
    assert!(!err.contains("cmd"), "{err}");
    let (status, _) = send(&s, "GET", "/v2/apps/AA/prod/ordrs", None);
    assert_eq!(status, 404, "scale must not create the app");
    let (code, _, err) = admin(&s, &["apps", "show", "/nothing/like/it"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("no app /nothing/like/it"), "{err}");
    assert!(!err.contains("did you mean"), "{err}");
    let (code, _, err) = admin(&s, &["apps", "logs", "/AA/prod/order"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("(did you mean /AA/prod/orders?)"), "{err}");

    // 403: a developer scaling prod exits 7 with the policy's reason.
    let dana = user_token(&s, "dana", "developer");
    let (code, _, err) = slipway(
        &s,
        &dana,
        &["apps", "scale", "/AA/prod/orders", "2", "--yes"],
    );
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("may not deploy to prod"), "{err}");
    // 401: a token the server does not know exits 7 too.
    let (code, _, err) = slipway(&s, "slw_unknown", &["apps", "list"]);
    assert_eq!(code, 7, "{err}");
    // A usage error is 64.
    let (code, _, err) = admin(&s, &["apps", "scale", "/AA/prod/orders"]);
    assert_eq!(code, 64, "{err}");
    // No server: 3.
    let out = Command::new(slipway_bin())
        .args(["apps", "list"])
        .env(
            "SLIPWAY_URL",
            format!("http://127.0.0.1:{}", testkit::free_port()),
        )
        .env("SLIPWAY_TOKEN", testkit::ADMIN_TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach the Slipway server"), "{err}");
}

#[test]
fn firsthour_logs_of_the_previous_task_counted_in_lines() {
    let (s, dir) = server();
    let file = dir.path().join("logs.json");
    let def = json!({"id": "/logs", "instances": 1, "cpus": 0.01, "mem": 16,
        "cmd": "echo one; echo two; echo three; echo four; sleep 1; exit 3"});
    std::fs::write(&file, def.to_string()).unwrap();
    let (code, out, err) = admin(
        &s,
        &["apps", "deploy", "-f", file.to_str().unwrap(), "--no-wait"],
    );
    assert_eq!(code, 0, "{out}{err}");
    wait_for("a task to end", Duration::from_secs(30), || {
        let status = get_json(&format!("{}/api/v1/apps/logs/status", s.url)).ok()?;
        (!status["terminated"].as_array()?.is_empty()).then_some(())
    })
    .unwrap();
    // The ended task's output, like `kubectl logs --previous`; --tail counts lines.
    let (code, out, err) = admin(&s, &["apps", "logs", "/logs", "--previous"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "one\ntwo\nthree\nfour\n");
    let (code, out, err) = admin(&s, &["apps", "logs", "/logs", "--previous", "--tail", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "three\nfour\n");
    let (code, out, _) = admin(&s, &["apps", "logs", "/logs", "-p", "--tail", "0"]);
    assert_eq!((code, out.as_str()), (0, ""));
    // An app without ended tasks says so.
    deploy(&s, dir.path(), &sleeper("/fresh"));
    let (code, _, err) = admin(&s, &["apps", "logs", "/fresh", "--previous"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/fresh has no ended task"), "{err}");
}

#[test]
fn firsthour_audit_of_an_app_says_who_approved_deployed_and_rolled_back() {
    let (s, dir) = server();
    let lee = user_token(&s, "lee", "deployer");
    let app_def = json!({"id": "/prod/hist", "cmd": "sleep 1000", "instances": 1,
                         "cpus": 0.01, "mem": 16});
    let repo = testkit::git_repo(
        "version: 1\nname: rel\nsteps:\n  build: { run: 'echo built' }\n  ok: { needs: [build], approve: { message: \"Do tests OK?\", env: prod } }\n  ship: { needs: [ok], deploy: { env: prod, app: app.json } }\n",
        &[("app.json", &app_def.to_string())],
    );
    let (code, out, err) = admin(
        &s,
        &[
            "pipelines",
            "add",
            "rel",
            "--repo",
            repo.path().to_str().unwrap(),
            "--branch",
            "dev",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    // The run deploys to prod, which asks for confirmation: without a terminal and without
    // --yes nothing is started.
    let (code, out, err) = admin(&s, &["pipelines", "run", "rel"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("nothing was started"), "{err}");
    let runs = get_json(&format!("{}/api/v1/runs", s.url)).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
    let (code, out, err) = admin(
        &s,
        &["pipelines", "run", "rel", "--yes", "--output", "json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = format!("{}/api/v1/runs/{id}/steps/ok/approve", s.url);
    wait_for("lee to approve", Duration::from_secs(60), || {
        let (status, _) = http_as(&lee, "POST", &approve, None).ok()?;
        (status == 200).then_some(())
    })
    .unwrap();
    wait_for("the run to succeed", Duration::from_secs(60), || {
        let run = get_json(&format!("{}/api/v1/runs/{id}", s.url)).ok()?;
        (run["status"] == "succeeded").then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; {}",
            get_json(&format!("{}/api/v1/runs/{id}", s.url)).unwrap()
        )
    });
    // A change by hand, then a rollback of it.
    let mut changed = app_def.clone();
    changed["env"] = json!({"V": "2"});
    deploy(&s, dir.path(), &changed);
    let (code, out, err) = admin(&s, &["apps", "rollback", "/prod/hist", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = admin(&s, &["audit", "--app", "/prod/hist"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().all(|l| l.chars().count() <= 120), "{out}");
    let row = |user: &str, event: &str, detail: &str| {
        out.lines().any(|l| {
            let cells: Vec<&str> = l.split("  ").filter(|c| !c.trim().is_empty()).collect();
            cells.len() >= 4
                && cells[1].trim() == user
                && cells[2].trim() == event
                && cells[3].trim().starts_with(detail)
        })
    };
    let run =
        serde_json::from_value::<Value>(get_json(&format!("{}/api/v1/runs/{id}", s.url)).unwrap())
            .unwrap();
    let name = format!("rel#{}", run["number"]);
    assert!(
        row("lee", "approved", &format!("run {name} step ok")),
        "{out}"
    );
    assert!(
        row("lee", "deployed", &format!("run {name} step ship")),
        "{out}"
    );
    assert!(row("admin", "deployed", "by hand: version "), "{out}");
    assert!(row("admin", "rolled back", "to version "), "{out}");
}

/// Builds the example service (its own target dir: the example is not a workspace member)
/// and returns the binary; `static_` links it statically for a `FROM scratch` image.
fn build_orders(static_: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = testkit::target_dir()
        .parent()
        .map(|p| p.join(if static_ { "orders-static" } else { "orders" }))
        .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "--release", "--manifest-path"])
        .arg(root.join("examples/orders/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if static_ {
        cmd.args(["--target", "x86_64-unknown-linux-gnu"])
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
    } else {
        cmd.env_remove("RUSTFLAGS");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "the example service builds");
    if static_ {
        target.join("x86_64-unknown-linux-gnu/release/orders")
    } else {
        target.join("release/orders")
    }
}

#[test]
fn firsthour_orders_finishes_requests_in_flight_and_exits_0_on_sigterm() {
    use std::io::{Read, Write};
    let bin = build_orders(false);
    let port = testkit::free_port();
    let mut child = Command::new(&bin)
        .env("ORDERS_HOST", "127.0.0.1")
        .env("ORDERS_PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut conn = wait_for("orders to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).ok()
    })
    .unwrap();
    // A request in flight: its head is not complete when SIGTERM arrives.
    conn.write_all(b"GET /orders HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it waits for the request"
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no new connections after SIGTERM"
    );
    conn.write_all(b"\r\n").unwrap();
    let mut answer = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("Connection: close"), "{answer}");
    let status = wait_for("orders to exit", Duration::from_secs(5), || {
        child.try_wait().ok().flatten()
    })
    .unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit: {status:?}");
}

#[test]
fn firsthour_docker_orders_replacement_does_not_wait_for_the_grace_period() {
    let Some(()) = testkit::docker() else { return };
    let bin = build_orders(true);
    let ctx = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::copy(
        root.join("examples/orders/docker/Dockerfile"),
        ctx.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::copy(&bin, ctx.path().join("orders")).unwrap();
    let image = "slipway-orders:firsthour";
    let out = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The release version: the image pushed as 1.2.3 and deployed by digest, as deploy
    // steps do.
    let Some(()) = testkit::registry_up() else {
        return;
    };
    testkit::push_to_registry(image, "firsthour-orders:1.2.3").unwrap();
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .RepoDigests}}", image])
        .output()
        .unwrap();
    let digests: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let pinned = digests
        .iter()
        .find(|d| d.contains("/firsthour-orders@sha256:"))
        .expect("a registry digest")
        .clone();

    let (s, dir) = server();
    let agent = get_json(&format!("{}/v2/info", s.url)).unwrap()["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    struct Containers(String);
    impl Drop for Containers {
        fn drop(&mut self) {
            testkit::remove_slipway_containers(&self.0);
        }
    }
    let _containers = Containers(agent);
    let def = json!({
        "id": "/orders", "instances": 1, "cpus": 0.1, "mem": 64,
        "container": {"type": "DOCKER", "docker": {"image": pinned, "network": "BRIDGE",
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}]}},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
            "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30}],
        "taskKillGracePeriodSeconds": 30,
    });
    deploy(&s, dir.path(), &def);
    let old: Vec<String> = app(&s, "/orders")["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let started = Instant::now();
    let (code, out, err) = admin(
        &s,
        &["apps", "restart", "/orders", "--wait", "--timeout", "60"],
    );
    assert_eq!(code, 0, "{out}{err}");
    // The old container stops on SIGTERM, long before the 30 s grace period ends.
    wait_for("the old task to be gone", Duration::from_secs(20), || {
        let ids = api_task_ids(&s);
        old.iter().all(|t| !ids.contains(t)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}; server log:\n{}", s.log()));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        !s.log().contains("task ignored SIGTERM"),
        "server log:\n{}",
        s.log()
    );

    // `apps versions` shows the release version next to the digest.
    let (code, out, err) = admin(&s, &["apps", "versions", "/orders"]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().nth(1).unwrap_or("");
    assert!(row.contains(" 1.2.3 ") && row.contains(&pinned), "{out}");
    assert!(
        out.lines().next().unwrap_or("").contains("RELEASE"),
        "{out}"
    );
}
