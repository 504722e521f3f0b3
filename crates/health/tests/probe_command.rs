//! COMMAND probe tests with real `/bin/sh` processes.

use health::{ProbeOutcome, probe_command};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(300);

/// A fresh scratch directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after epoch")
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "slipway-health-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Live (non-zombie) processes whose process group is `pgid`. Zombies are
/// dead already; orphans are reaped by init, which may lag.
fn live_members(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the last ')' are: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// Waits (briefly) until the process group recorded in `pid_file` is gone.
async fn assert_group_gone(pid_file: &Path) {
    let pgid: i32 = std::fs::read_to_string(pid_file)
        .expect("pid file written by the command")
        .trim()
        .parse()
        .expect("pid");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let live = live_members(pgid);
        if live.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still alive in group {pgid}: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exit_zero_is_healthy() {
    assert_eq!(
        probe_command("exit 0", &[], None, TIMEOUT, None).await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        probe_command("true", &[], None, TIMEOUT, None).await,
        ProbeOutcome::Healthy
    );
}

#[tokio::test]
async fn non_zero_exit_is_unhealthy() {
    assert_eq!(
        probe_command("exit 2", &[], None, TIMEOUT, None).await,
        ProbeOutcome::unhealthy("command exited with status 2")
    );
}

#[tokio::test]
async fn killed_by_signal_is_unhealthy() {
    assert_eq!(
        probe_command("kill -9 $$", &[], None, TIMEOUT, None).await,
        ProbeOutcome::unhealthy("command killed by signal 9")
    );
}

#[tokio::test]
async fn task_env_is_visible() {
    let env = vec![
        ("PORT0".to_owned(), "31001".to_owned()),
        ("HOST".to_owned(), "node-1".to_owned()),
    ];
    let cmd = r#"test "$PORT0" = 31001 && test "$HOST" = node-1"#;
    assert_eq!(
        probe_command(cmd, &env, None, TIMEOUT, None).await,
        ProbeOutcome::Healthy
    );
    assert_eq!(
        probe_command(r#"test "$PORT0" = 1"#, &env, None, TIMEOUT, None).await,
        ProbeOutcome::unhealthy("command exited with status 1")
    );
}

#[tokio::test]
async fn runs_in_cwd() {
    let dir = scratch("cwd");
    std::fs::write(dir.join("marker"), b"x").expect("write marker");
    assert_eq!(
        probe_command("test -f marker", &[], Some(&dir), TIMEOUT, None).await,
        ProbeOutcome::Healthy
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn missing_cwd_fails_to_spawn() {
    let outcome = probe_command(
        "true",
        &[],
        Some(Path::new("/nonexistent/slipway")),
        TIMEOUT,
        None,
    )
    .await;
    assert!(
        matches!(&outcome, ProbeOutcome::Unhealthy { cause } if cause.starts_with("failed to spawn command: ")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = scratch("timeout");
    let pid_file = dir.join("pgid");
    let cmd = format!("echo $$ > '{}'; sleep 30", pid_file.display());
    let started = Instant::now();
    let outcome = probe_command(&cmd, &[], None, SHORT, None).await;
    assert_eq!(outcome, ProbeOutcome::unhealthy("timed out after 300ms"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_group_gone(&pid_file).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn timeout_kills_background_children() {
    let dir = scratch("background");
    let pid_file = dir.join("pgid");
    let cmd = format!(
        "echo $$ > '{}'; sleep 30 & sleep 31 & wait",
        pid_file.display()
    );
    let started = Instant::now();
    let outcome = probe_command(&cmd, &[], None, SHORT, None).await;
    assert_eq!(outcome, ProbeOutcome::unhealthy("timed out after 300ms"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_group_gone(&pid_file).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn background_leftovers_are_killed_after_exit() {
    let dir = scratch("leftover");
    let pid_file = dir.join("pgid");
    let cmd = format!("echo $$ > '{}'; sleep 30 & exit 0", pid_file.display());
    assert_eq!(
        probe_command(&cmd, &[], None, TIMEOUT, None).await,
        ProbeOutcome::Healthy
    );
    assert_group_gone(&pid_file).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dropping_the_probe_kills_the_group() {
    let dir = scratch("drop");
    let pid_file = dir.join("pgid");
    let cmd = format!("echo $$ > '{}'; sleep 30", pid_file.display());
    let probe = probe_command(&cmd, &[], None, Duration::from_secs(60), None);
    assert!(
        tokio::time::timeout(SHORT, probe).await.is_err(),
        "probe should still be running"
    );
    assert_group_gone(&pid_file).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_check_runs_as_who_it_is_given_without_the_servers_environment() {
    // SAFETY of the assertion: the test process's own environment holds this marker.
    let me_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let leak = "test -z \"$CARGO_MANIFEST_DIR\" && test -z \"$HOME\"";
    assert_eq!(
        probe_command(leak, &[], None, TIMEOUT, None).await,
        ProbeOutcome::Healthy,
        "the server's environment does not reach a check"
    );
    if !me_root {
        return;
    }
    let ids = "test \"$(id -u):$(id -g):$(id -G)\" = 65534:65534:65534";
    assert_eq!(
        probe_command(ids, &[], None, TIMEOUT, Some((65_534, 65_534))).await,
        ProbeOutcome::Healthy,
        "runs as the given uid and gid, without root's groups"
    );
}
