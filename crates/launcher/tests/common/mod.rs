//! Shared helpers for the launcher integration tests (real processes, no mocks).
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use launcher::{LaunchSpec, Launcher, LauncherConfig, TaskCommand};

/// Generous timeout for anything that waits on a process.
pub const TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{tag}-{}-{n}", std::process::id())
}

/// Config with a unique agent id and cgroup parent.
pub fn config(tag: &str) -> LauncherConfig {
    LauncherConfig {
        agent_id: unique(&format!("agent-{tag}")),
        cgroup_parent: unique("slipway-test"),
        log_max_bytes: 1000,
    }
}

/// A launcher with a unique agent id and cgroup parent.
pub fn launcher(tag: &str) -> TestLauncher {
    TestLauncher(Launcher::new(config(tag)))
}

/// A test's launcher. When the test ends, passed or failed, it cleans up every task cgroup
/// still under its parent (as the engine releases an ended task: stragglers killed, the
/// directories removed), then the parent directories. Tests that check cleanup assert
/// it themselves before this runs. (Before, 13 of the 28 tests left their parent, and 12
/// of them a task cgroup of a task that had exited, in every hierarchy, every run.)
pub struct TestLauncher(pub Launcher);

impl std::ops::Deref for TestLauncher {
    type Target = Launcher;

    fn deref(&self) -> &Launcher {
        &self.0
    }
}

impl Drop for TestLauncher {
    fn drop(&mut self) {
        for (task_id, _) in self.0.task_cgroups().unwrap_or_default() {
            self.0.cleanup(&task_id, None);
        }
        for h in self.0.cgroup_support().hierarchies() {
            let _ = std::fs::remove_dir(h.join(&self.0.config().cgroup_parent));
        }
    }
}

/// A shell task spec with a sandbox under `dir`.
pub fn shell_spec(task_id: &str, script: &str, dir: &Path) -> LaunchSpec {
    LaunchSpec {
        task_id: task_id.to_owned(),
        command: TaskCommand::Shell(script.to_owned()),
        env: Vec::new(),
        sandbox: dir.join(task_id),
        limits: None,
        fetch: Vec::new(),
        run_as: launcher::RunAs::Server,
    }
}

/// Polls `f` every 10 ms until it is true or `TIMEOUT` passes.
pub fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < TIMEOUT {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Async variant of [`wait_for`] that does not block the runtime.
pub async fn wait_for_async(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < TIMEOUT {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Reads a file as a string, empty if missing.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (state, pgrp, session) of a process, parsed independently from the crate.
pub fn stat_fields(pid: i32) -> Option<(char, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

/// True if the pid exists and is not a zombie.
pub fn pid_running(pid: i32) -> bool {
    matches!(stat_fields(pid), Some((s, _, _)) if s != 'Z' && s != 'X')
}

/// Effective uid of the test process.
pub fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2)?.parse().ok()
        })
        .unwrap_or(u32::MAX)
}
