//! Process lifecycle tests: launch, env, session, scan, signal, identity, survival, exit messages.

mod common;

use common::{launcher, pid_running, read, shell_spec, stat_fields, wait_for, wait_for_async};
use launcher::{
    LaunchError, Launcher, Liveness, ProcIdentity, Signal, SignalOutcome, TaskCommand, wait_exit,
};

#[tokio::test]
async fn launch_writes_logs_sets_env_and_runs_in_own_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("basic");
    let mut spec = shell_spec(
        "basic-task",
        "echo hi; echo err >&2; echo PORT0=$PORT0; echo TASK=$SLIPWAY_TASK_ID; \
         echo SANDBOX=$MESOS_SANDBOX; echo LEAK=${CARGO_MANIFEST_DIR:-none}; echo PWD=$(pwd); sleep 30",
        dir.path(),
    );
    spec.env = vec![
        ("PORT0".into(), "31000".into()),
        ("HOST".into(), "h".into()),
    ];
    let mut launched = l.launch(&spec).await.expect("launch");
    let sandbox = launched.sandbox.clone();
    let stdout = sandbox.join("stdout");
    assert!(wait_for_async(|| read(&stdout).contains("PWD=")).await);
    let out = read(&stdout);
    let sb = sandbox.display().to_string();
    assert!(out.contains("hi\n"), "{out}");
    assert!(out.contains("PORT0=31000\n"), "{out}");
    assert!(out.contains("TASK=basic-task\n"), "{out}");
    assert!(out.contains(&format!("SANDBOX={sb}\n")), "{out}");
    assert!(out.contains(&format!("PWD={sb}\n")), "{out}");
    assert!(out.contains("LEAK=none\n"), "server env leaked: {out}");
    assert!(wait_for_async(|| read(&sandbox.join("stderr")).contains("err")).await);

    let pid = launched.identity.pid;
    let (_, pgrp, sid) = stat_fields(pid).expect("task stat");
    assert_eq!((pgrp, sid), (pid, pid), "pid == pgid == sid");
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let marker = format!("SLIPWAY_AGENT_ID={}", l.config().agent_id);
    assert!(env.split(|b| *b == 0).any(|e| e == marker.as_bytes()));

    let found = l.scan();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].task_id, "basic-task");
    assert_eq!(found[0].identity, launched.identity);
    assert_eq!(found[0].sandbox.as_deref(), Some(sandbox.as_path()));
    assert_eq!(l.liveness(launched.identity), Liveness::Alive);

    let outcome = l
        .signal(launched.identity, Signal::SIGTERM)
        .expect("signal");
    assert_eq!(outcome, SignalOutcome::Delivered);
    let exit = wait_exit(&mut launched.child).await;
    assert_eq!(exit.message, "Command terminated with signal Terminated");
    assert_eq!(l.liveness(launched.identity), Liveness::Gone);
    assert!(l.scan().is_empty());
    assert_eq!(
        l.signal(launched.identity, Signal::SIGTERM)
            .expect("signal"),
        SignalOutcome::Gone
    );
}

#[tokio::test]
async fn sigterm_kills_the_whole_group_including_grandchildren() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("group");
    let spec = shell_spec(
        "group-task",
        "sleep 100 & echo $! > grandchild.pid; sleep 100",
        dir.path(),
    );
    let mut launched = l.launch(&spec).await.expect("launch");
    let pid_file = launched.sandbox.join("grandchild.pid");
    assert!(wait_for_async(|| read(&pid_file).ends_with('\n')).await);
    let gc: i32 = read(&pid_file).trim().parse().expect("grandchild pid");
    assert!(pid_running(gc));
    let gc_id = ProcIdentity::of(gc).expect("grandchild identity");
    // The grandchild inherits the marker but is not a session leader: not a task.
    assert_eq!(l.scan().len(), 1);

    assert_eq!(
        l.signal(launched.identity, Signal::SIGTERM)
            .expect("signal"),
        SignalOutcome::Delivered
    );
    wait_exit(&mut launched.child).await;
    assert!(wait_for_async(|| l.liveness(gc_id) == Liveness::Gone).await);
    assert_eq!(l.liveness(launched.identity), Liveness::Gone);
}

#[tokio::test]
async fn wrong_start_time_is_never_signalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("mismatch");
    let mut launched = l
        .launch(&shell_spec("mm-task", "sleep 30", dir.path()))
        .await
        .expect("launch");
    let wrong = ProcIdentity {
        start_time: launched.identity.start_time + 1,
        ..launched.identity
    };
    assert_eq!(l.liveness(wrong), Liveness::Gone);
    assert_eq!(
        l.signal(wrong, Signal::SIGKILL).expect("signal"),
        SignalOutcome::Gone
    );
    assert_eq!(l.liveness(launched.identity), Liveness::Alive);
    assert!(launched.child.try_wait().expect("try_wait").is_none());
    l.signal(launched.identity, Signal::SIGKILL)
        .expect("signal");
    let exit = wait_exit(&mut launched.child).await;
    assert_eq!(exit.message, "Command terminated with signal Killed");
    assert_eq!(exit.signal, Some(9));
}

#[test]
fn task_outlives_the_launcher_and_runtime_and_is_rescanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::config("survive");
    let identity = {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let l = Launcher::new(cfg.clone());
        let spec = shell_spec("survivor", "sleep 60", dir.path());
        let launched = rt.block_on(l.launch(&spec)).expect("launch");
        let id = launched.identity;
        drop(launched);
        drop(l);
        drop(rt);
        id
    };
    assert!(pid_running(identity.pid), "task died with its runtime");
    let l2 = common::TestLauncher(Launcher::new(cfg));
    assert!(wait_for(|| l2.scan().len() == 1));
    let found = l2.scan();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].task_id, "survivor");
    assert_eq!(found[0].identity, identity);
    assert_eq!(l2.liveness(identity), Liveness::Alive);
    l2.signal(identity, Signal::SIGKILL).expect("signal");
    assert!(wait_for(|| l2.liveness(identity) == Liveness::Gone));
    assert!(l2.scan().is_empty());
}

/// Not a real test on its own: the "server" process killed with SIGKILL by
/// `task_survives_kill_9_of_the_server`, which re-executes this test binary.
#[test]
fn helper_server_killed_by_sigkill() {
    let (Ok(dir), Ok(agent), Ok(parent)) = (
        std::env::var("SLIPWAY_TEST_HELPER_DIR"),
        std::env::var("SLIPWAY_TEST_HELPER_AGENT"),
        std::env::var("SLIPWAY_TEST_HELPER_PARENT"),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cfg = common::config("helper");
    cfg.agent_id = agent;
    cfg.cgroup_parent = parent;
    let l = Launcher::new(cfg);
    let spec = shell_spec("crash-survivor", "sleep 60", std::path::Path::new(&dir));
    let launched = rt.block_on(l.launch(&spec)).expect("launch");
    let id = launched.identity;
    println!("LAUNCHED {} {}", id.pid, id.start_time);
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn task_survives_kill_9_of_the_server() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = common::config("kill9");
    let mut server = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "helper_server_killed_by_sigkill", "--nocapture"])
        .env("SLIPWAY_TEST_HELPER_DIR", dir.path())
        .env("SLIPWAY_TEST_HELPER_AGENT", &cfg.agent_id)
        .env("SLIPWAY_TEST_HELPER_PARENT", &cfg.cgroup_parent)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn helper");
    let stdout = server.stdout.take().expect("stdout");
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("LAUNCHED "))
        .expect("helper launched a task");
    let f: Vec<&str> = line.split_whitespace().collect();
    let identity = ProcIdentity {
        pid: f[1].parse().expect("pid"),
        start_time: f[2].parse().expect("start"),
    };
    server.kill().expect("kill -9 server");
    server.wait().expect("reap server");
    let l = common::TestLauncher(Launcher::new(cfg));
    assert!(pid_running(identity.pid), "task died with the server");
    // The environment mark (a hint) shows once the released wrapper has exec'd.
    assert!(wait_for(|| l.scan().len() == 1));
    let found = l.scan();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].task_id.as_str(), found[0].identity),
        ("crash-survivor", identity)
    );
    l.signal(identity, Signal::SIGKILL).expect("signal");
    assert!(wait_for(|| l.liveness(identity) == Liveness::Gone));
}

#[tokio::test]
async fn exit_messages_for_status_and_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("exit");
    let mut spec = shell_spec("exit3", "", dir.path());
    spec.command = TaskCommand::Exec(vec!["sh".into(), "-c".into(), "exit 3".into()]);
    let mut a = l.launch(&spec).await.expect("launch");
    let exit = wait_exit(&mut a.child).await;
    assert_eq!(exit.message, "Command exited with status 3");
    assert_eq!(exit.code, Some(3));
    assert!(!exit.success());

    let mut b = l
        .launch(&shell_spec("selfkill", "kill -9 $$", dir.path()))
        .await
        .expect("launch");
    let exit = wait_exit(&mut b.child).await;
    assert_eq!(exit.message, "Command terminated with signal Killed");

    let mut spec = shell_spec("notfound", "", dir.path());
    spec.command = TaskCommand::Exec(vec!["/nonexistent/slipway-bin".into()]);
    let mut c = l.launch(&spec).await.expect("launch");
    assert_eq!(wait_exit(&mut c.child).await.code, Some(127));
    assert!(read(&c.sandbox.join("stderr")).contains("/nonexistent/slipway-bin"));
}

#[tokio::test]
async fn invalid_specs_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("invalid");
    let err = l
        .launch(&shell_spec("../escape", "true", dir.path()))
        .await
        .expect_err("invalid id");
    assert!(matches!(err, LaunchError::InvalidTaskId { .. }), "{err}");
    let mut spec = shell_spec("empty", "", dir.path());
    spec.command = TaskCommand::Exec(Vec::new());
    let err = l.launch(&spec).await.expect_err("empty command");
    assert_eq!(err.to_string(), "task empty has an empty command");
    let mut spec = shell_spec("baduser", "true", dir.path());
    spec.run_as = launcher::RunAs::User("no-such-user-slipway".into());
    let err = l.launch(&spec).await.expect_err("unknown user");
    assert!(err.to_string().contains("no such user"), "{err}");
}

#[tokio::test]
async fn runs_as_requested_user_when_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("user");
    let mut spec = shell_spec(
        "as-nobody",
        "id -u; echo HOME=$HOME; touch mine",
        dir.path(),
    );
    spec.run_as = launcher::RunAs::User("nobody".into());
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("euid");
    // Root may switch to any user; anyone may "switch" to themselves.
    let root = euid == "0" || euid == "65534";
    match l.launch(&spec).await {
        Ok(mut launched) => {
            assert!(root, "switching user must fail when not root");
            assert!(wait_exit(&mut launched.child).await.success());
            let out = read(&launched.sandbox.join("stdout"));
            assert!(out.starts_with("65534\n"), "{out}");
            assert!(out.contains("HOME=/nonexistent"), "{out}");
            assert!(
                launched.sandbox.join("mine").exists(),
                "sandbox not writable"
            );
        }
        Err(e) => {
            assert!(!root, "unexpected error as root: {e}");
            assert!(e.to_string().contains("not running as root"), "{e}");
        }
    }
}

#[tokio::test]
async fn a_task_of_its_own_uid_owns_its_sandbox_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    if common::euid() != 0 {
        return;
    }
    // The server's secrets beside the sandboxes, as in a data directory.
    std::fs::write(dir.path().join("secret.key"), "k").expect("write");
    use std::os::unix::fs::PermissionsExt;
    let perms = |m| std::fs::Permissions::from_mode(m);
    std::fs::set_permissions(dir.path().join("secret.key"), perms(0o600)).expect("chmod");
    std::fs::set_permissions(dir.path(), perms(0o711)).expect("chmod");
    let l = launcher("uid");
    let mut spec = shell_spec(
        "own-uid",
        "id -u; id -g; id -G; echo HOME=$HOME; cat ../secret.key || echo DENIED; touch $MESOS_SANDBOX/mine",
        dir.path(),
    );
    spec.run_as = launcher::RunAs::Id {
        uid: 231_017,
        gid: 65_534,
    };
    let mut launched = l.launch(&spec).await.expect("launch");
    assert!(wait_exit(&mut launched.child).await.success());
    let out = read(&launched.sandbox.join("stdout"));
    let sb = launched.sandbox.display().to_string();
    assert!(out.starts_with("231017\n65534\n65534\n"), "{out}");
    assert!(out.contains(&format!("HOME={sb}\n")), "{out}");
    assert!(out.contains("DENIED"), "{out}");
    let meta = std::fs::metadata(&launched.sandbox).expect("sandbox");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (231_017, 0o700));
    assert!(launched.sandbox.join("mine").exists());
}

#[tokio::test]
async fn a_failed_proc_read_is_unknown_never_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("emfile");
    let mut launched = l
        .launch(&shell_spec("emfile-task", "sleep 30", dir.path()))
        .await
        .expect("launch");
    let id = launched.identity;
    assert_eq!(l.liveness(id), Liveness::Alive);
    // Exhaust this process's descriptors, as an attacker holding many sockets would.
    let me = std::process::id().to_string();
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &me, "--nofile=64:"])
        .status()
        .is_ok_and(|s| s.success());
    if !limited {
        eprintln!("skipping: prlimit is not available");
        let _ = l.signal(id, Signal::SIGKILL);
        return;
    }
    let mut hold = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hold.push(f);
        if hold.len() > 100_000 {
            break;
        }
    }
    let during = l.liveness(id);
    let signalled = l.signal(id, Signal::SIGCONT);
    drop(hold);
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &me, "--nofile=20000:"])
        .status();
    assert_eq!(
        during,
        Liveness::Unknown,
        "a read error must not look like an exit"
    );
    assert!(
        matches!(signalled, Err(LaunchError::Observe { .. })),
        "{signalled:?}"
    );
    // And once descriptors are back, the task is as alive as it was.
    assert_eq!(l.liveness(id), Liveness::Alive);
    l.signal(id, Signal::SIGKILL).expect("signal");
    wait_exit(&mut launched.child).await;
}
