//! cgroup tests: limits written, task joined before exec, cleanup removes dirs and stragglers.

mod common;

use std::path::PathBuf;

use common::{launcher, pid_running, read, shell_spec, wait_for, wait_for_async};
use launcher::{CgroupSupport, Limits, Liveness, ProcIdentity, Signal, wait_exit};

#[tokio::test]
async fn limits_are_applied_and_cleanup_removes_dirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("cgroup");
    if let CgroupSupport::Unavailable { reason } = l.cgroup_support() {
        assert!(!reason.is_empty());
        eprintln!("cgroups unavailable: {reason}");
        // Tasks still run, without limits.
        let mut spec = shell_spec("nolimits", "true", dir.path());
        spec.limits = Some(Limits {
            cpus: 0.5,
            mem_mib: 64.0,
        });
        let mut launched = l.launch(&spec).await.expect("launch");
        assert!(!launched.limits_enforced);
        assert!(wait_exit(&mut launched.child).await.success());
        return;
    }
    let mut spec = shell_spec(
        "limited",
        "cat /proc/self/cgroup > cgroups.txt; sleep 60",
        dir.path(),
    );
    spec.limits = Some(Limits {
        cpus: 0.5,
        mem_mib: 64.0,
    });
    let mut launched = l.launch(&spec).await.expect("launch");
    assert!(launched.limits_enforced);
    let pid = launched.identity.pid;
    let dirs: Vec<PathBuf> = ["cpu", "memory", "cpuacct", "pids"]
        .iter()
        .filter_map(|c| l.cgroup_dir("limited", c))
        .collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        let procs = read(&d.join("cgroup.procs"));
        assert!(
            procs.lines().any(|p| p.trim() == pid.to_string()),
            "{pid} not in {}: {procs}",
            d.display()
        );
    }
    // The shell (already the task) saw itself inside the cgroup: joined before exec.
    let suffix = format!("/{}/limited", l.config().cgroup_parent);
    let cg_file = launched.sandbox.join("cgroups.txt");
    assert!(wait_for_async(|| read(&cg_file).contains(&suffix)).await);
    match l.cgroup_support() {
        CgroupSupport::V1 { .. } => {
            let cpu = l.cgroup_dir("limited", "cpu").expect("cpu dir");
            assert_eq!(read(&cpu.join("cpu.cfs_quota_us")).trim(), "50000");
            assert_eq!(read(&cpu.join("cpu.cfs_period_us")).trim(), "100000");
            let mem = l.cgroup_dir("limited", "memory").expect("memory dir");
            assert_eq!(read(&mem.join("memory.limit_in_bytes")).trim(), "67108864");
        }
        CgroupSupport::V2 { .. } => {
            let d = l.cgroup_dir("limited", "cpu").expect("dir");
            assert_eq!(read(&d.join("cpu.max")).trim(), "50000 100000");
            assert_eq!(read(&d.join("memory.max")).trim(), "67108864");
        }
        CgroupSupport::Unavailable { .. } => unreachable!(),
    }
    l.signal(launched.identity, Signal::SIGKILL)
        .expect("signal");
    wait_exit(&mut launched.child).await;
    l.cleanup("limited", None);
    for d in &dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    assert!(
        launched.sandbox.join("stdout").exists(),
        "sandbox must be kept"
    );
}

#[tokio::test]
async fn tiny_cpu_share_gets_minimum_quota() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("mincpu");
    let CgroupSupport::V1 { .. } = l.cgroup_support() else {
        return;
    };
    let mut spec = shell_spec("tiny", "sleep 60", dir.path());
    spec.limits = Some(Limits {
        cpus: 0.001,
        mem_mib: 0.0,
    });
    let mut launched = l.launch(&spec).await.expect("launch");
    let cpu = l.cgroup_dir("tiny", "cpu").expect("cpu dir");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")).trim(), "1000");
    let mem = l.cgroup_dir("tiny", "memory").expect("memory dir");
    let unlimited: u64 = read(&mem.join("memory.limit_in_bytes"))
        .trim()
        .parse()
        .expect("number");
    assert!(unlimited > 1 << 40, "mem 0 must mean no limit");
    l.signal(launched.identity, Signal::SIGKILL)
        .expect("signal");
    wait_exit(&mut launched.child).await;
    l.cleanup("tiny", None);
    assert!(!cpu.exists());
}

#[tokio::test]
async fn cleanup_kills_stragglers_that_left_the_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = launcher("straggler");
    let mut spec = shell_spec(
        "leaver",
        "setsid sleep 100 & echo $! > straggler.pid; exit 0",
        dir.path(),
    );
    spec.limits = Some(Limits {
        cpus: 1.0,
        mem_mib: 64.0,
    });
    let mut launched = l.launch(&spec).await.expect("launch");
    assert!(wait_exit(&mut launched.child).await.success());
    let pid_file = launched.sandbox.join("straggler.pid");
    assert!(wait_for(|| read(&pid_file).ends_with('\n')));
    let pid: i32 = read(&pid_file).trim().parse().expect("pid");
    let id = ProcIdentity::of(pid).expect("straggler exists");
    assert!(wait_for(
        || common::stat_fields(pid).is_some_and(|(_, _, sid)| sid == pid)
    ));
    assert!(pid_running(pid));
    // A daemonized child is a session leader with the task's env, yet not a task leader.
    assert!(l.scan().is_empty(), "{:?}", l.scan());
    l.cleanup("leaver", None);
    assert!(wait_for(|| l.liveness(id) == Liveness::Gone));
    if let Some(d) = l.cgroup_dir("leaver", "memory") {
        assert!(!d.exists());
    }
}
