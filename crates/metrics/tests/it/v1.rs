//! cgroup v1 collection against a real cgroup this test creates (as root), compared with the kernel's files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use metrics::{CgroupMounts, CgroupPaths, Families, TaskCollector, TaskTarget};

use crate::{roundtrip, value};

/// Creates `<mount>/<name>` in each v1 hierarchy; on drop kills the child and removes the directories.
pub(crate) struct TestCgroup {
    pub(crate) dirs: Vec<PathBuf>,
    pub(crate) children: Vec<Child>,
}

impl TestCgroup {
    pub(crate) fn create(
        mounts: &CgroupMounts,
        name: &str,
    ) -> std::io::Result<(TestCgroup, CgroupPaths)> {
        let paths = mounts.paths(name);
        let CgroupPaths::V1(d) = &paths else {
            return Err(std::io::Error::other("not cgroup v1"));
        };
        let mut cg = TestCgroup {
            dirs: Vec::new(),
            children: Vec::new(),
        };
        for dir in [&d.cpu, &d.cpuacct, &d.memory, &d.pids, &d.blkio]
            .into_iter()
            .flatten()
        {
            if !cg.dirs.contains(dir) {
                std::fs::create_dir(dir)?;
                cg.dirs.push(dir.clone());
            }
        }
        Ok((cg, paths))
    }

    /// Starts `sh -c script` and moves it into every directory.
    pub(crate) fn spawn(&mut self, script: &str) -> std::io::Result<u32> {
        let child = Command::new("sh").arg("-c").arg(script).spawn()?;
        let pid = child.id();
        self.children.push(child);
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(pid)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.dirs {
            // The kernel may need a moment to release an exited task's membership.
            for _ in 0..50 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// The v1 mounts when running as root on a cgroup v1 machine.
pub(crate) fn v1_root() -> Option<CgroupMounts> {
    let m = CgroupMounts::detect().ok()?;
    // /proc/self belongs to the effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").ok()?) == 0;
    match (&m, root) {
        (
            CgroupMounts::V1 {
                memory: Some(_),
                cpuacct: Some(_),
                ..
            },
            true,
        ) => Some(m),
        _ => {
            eprintln!("skipped: needs root and cgroup v1 (cpuacct, memory)");
            None
        }
    }
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .expect("kernel file")
        .trim()
        .parse()
        .expect("integer")
}

fn stat_field(dir: &Path, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .expect("kernel file")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in {file}"))
}

#[test]
fn v1_real_cgroup_matches_kernel_files() {
    let Some(mounts) = v1_root() else {
        return;
    };
    let name = format!("slipway-metrics-test-{}", std::process::id());
    let (mut cg, paths) = TestCgroup::create(&mounts, &name).expect("create cgroup");
    let CgroupPaths::V1(d) = paths.clone() else {
        panic!("v1 expected");
    };
    let (cpu, cpuacct, memory) = (
        d.cpu.clone().expect("cpu"),
        d.cpuacct.clone().expect("cpuacct"),
        d.memory.clone().expect("memory"),
    );
    std::fs::write(cpu.join("cpu.cfs_period_us"), "100000").expect("period");
    std::fs::write(cpu.join("cpu.cfs_quota_us"), "50000").expect("quota");
    std::fs::write(memory.join("memory.limit_in_bytes"), "268435456").expect("limit");
    // A busy loop plus a file in the page cache, so usage and cache are not zero.
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("data");
    let ready = tmp.path().join("ready");
    let pid = cg
        .spawn(&format!(
            "sleep 0.1; head -c 4000000 /dev/zero > {}; touch {}; while :; do :; done",
            file.display(),
            ready.display()
        ))
        .expect("spawn");
    // Wait (up to 20 s on a loaded machine) until the file is written, then let the loop run a little.
    for _ in 0..400 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready.exists(), "the child did not write its file");
    std::thread::sleep(Duration::from_millis(300));

    let mut c = TaskCollector::new();
    let mut target = TaskTarget::new(
        vec![
            ("task".into(), name.clone()),
            ("id".into(), format!("/{name}")),
        ],
        paths,
        Some(pid as i32),
    );
    let usage_before = read_u64(&cpuacct, "cpuacct.usage");
    let throttled_before = stat_field(&cpu, "cpu.stat", "nr_throttled");
    let mut f = Families::new();
    c.collect(&mut target, 0.0, &mut f);
    let usage_after = read_u64(&cpuacct, "cpuacct.usage");
    let throttled_after = stat_field(&cpu, "cpu.stat", "nr_throttled");
    let fams = roundtrip(&f);
    let v = |n: &str| value(&fams, n, &[]).unwrap_or_else(|| panic!("{n} missing"));

    let ours = value(
        &fams,
        "container_cpu_usage_seconds_total",
        &[("cpu", "total")],
    )
    .expect("cpu");
    assert!(
        (usage_before as f64 / 1e9..=usage_after as f64 / 1e9).contains(&ours),
        "cpu {ours} not within kernel reads {usage_before}..{usage_after} ns"
    );
    assert!(ours > 0.0, "the busy child used cpu: {ours}");
    let user = v("container_cpu_user_seconds_total");
    let system = v("container_cpu_system_seconds_total");
    assert!(
        (user + system - ours).abs() < 0.1 + ours * 0.1,
        "user {user} + system {system} vs {ours}"
    );
    assert_eq!(v("container_spec_cpu_quota"), 50_000.0);
    assert_eq!(v("container_spec_cpu_period"), 100_000.0);
    assert_eq!(
        v("container_spec_cpu_shares"),
        read_u64(&cpu, "cpu.shares") as f64
    );
    let throttled = v("container_cpu_cfs_throttled_periods_total");
    assert!((throttled_before as f64..=throttled_after as f64).contains(&throttled));
    // How often the busy loop is throttled depends on the machine's load; periods elapse in any case.
    assert!(v("container_cpu_cfs_periods_total") > 0.0);
    assert!(v("container_cpu_cfs_periods_total") >= throttled);

    // Memory: compare with the kernel's files (stable while the child only spins).
    let usage = read_u64(&memory, "memory.usage_in_bytes") as f64;
    let inactive = stat_field(&memory, "memory.stat", "total_inactive_file") as f64;
    let ours_usage = v("container_memory_usage_bytes");
    assert!(
        (ours_usage - usage).abs() <= usage * 0.05,
        "usage {ours_usage} vs {usage}"
    );
    let ws = v("container_memory_working_set_bytes");
    let kernel_ws = (usage - inactive).max(0.0);
    assert!(
        (ws - kernel_ws).abs() <= usage * 0.05,
        "working set {ws} vs {kernel_ws}"
    );
    assert!(ws <= ours_usage);
    assert_eq!(
        v("container_memory_rss"),
        stat_field(&memory, "memory.stat", "total_rss") as f64
    );
    assert!(
        v("container_memory_cache") >= 3_000_000.0,
        "the 4 MB file is cached"
    );
    assert_eq!(
        v("container_memory_mapped_file"),
        stat_field(&memory, "memory.stat", "total_mapped_file") as f64
    );
    assert_eq!(v("container_spec_memory_limit_bytes"), 268_435_456.0);
    assert_eq!(
        v("container_memory_failcnt"),
        read_u64(&memory, "memory.failcnt") as f64
    );
    assert!(v("container_memory_max_usage_bytes") >= ours_usage * 0.95);
    assert_eq!(v("container_oom_events_total"), 0.0);
    assert_eq!(v("container_processes"), 1.0);
    assert_eq!(v("container_threads"), 1.0);
    let start = v("container_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - 5.0..=now).contains(&start),
        "start {start} now {now}"
    );
    // The child shares the test's network namespace: no container_network series (they would be the host's).
    assert!(
        fams.iter()
            .all(|f| !f.name.starts_with("container_network"))
    );
    let s = c.stats();
    assert_eq!((s.io_errors, s.parse_errors), (0, 0), "{s:?}");

    // Same series names on v1 and v2 (network aside, which needs a pid in another namespace).
    let tmpv2 = tempfile::tempdir().expect("tempdir");
    crate::v2::v2_fixture(tmpv2.path());
    let mut f2 = Families::new();
    c.collect(
        &mut TaskTarget::new(
            vec![],
            CgroupPaths::V2(tmpv2.path().to_owned()),
            Some(pid as i32),
        ),
        0.0,
        &mut f2,
    );
    let names = |f: &Families| -> BTreeSet<String> {
        f.families()
            .iter()
            .map(|f| f.desc.name.to_string())
            .collect()
    };
    let (n1, n2) = (names(&f), names(&f2));
    // v1 blkio reports devices only after I/O that bypassed the page cache; compare the rest.
    let strip = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter()
            .filter(|n| !n.starts_with("container_fs_"))
            .collect()
    };
    assert_eq!(strip(n1), strip(n2));

    // A second round reads the kept-open files again and sees new values.
    assert!(
        target.open_files() >= 10,
        "{} files kept open",
        target.open_files()
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut f = Families::new();
    c.collect(&mut target, 1.0, &mut f);
    let after = usage_after as f64 / 1e9;
    let second = value(&roundtrip(&f), "container_cpu_usage_seconds_total", &[]).expect("cpu");
    assert!(second > after, "second round {second} after {after}");

    // The cgroup can be removed while its files are open; the next round has no cgroup series and no panic.
    drop(cg);
    for d in [&cpu, &cpuacct, &memory] {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    let before = c.stats();
    for now in [2.0, 3.0] {
        // The first round finds the cgroup gone; the second also retries the slowly read files.
        let mut f = Families::new();
        c.collect(&mut target, now, &mut f);
        assert!(
            f.families()
                .iter()
                .all(|f| !f.desc.name.starts_with("container_cpu")
                    && !f.desc.name.starts_with("container_memory")
                    && !f.desc.name.starts_with("container_spec")),
            "{:?}",
            f.families()
        );
    }
    assert!(c.stats().missing > before.missing);
    // Reads of a removed cgroup fail with ENODEV, so those files are closed; blkio's files read back empty
    // instead (no series either), and stay open until the target is dropped.
    assert!(
        target.open_files() <= 2,
        "stale files are closed: {}",
        target.open_files()
    );
}

#[test]
fn docker_lookup_on_this_machine_finds_nothing_for_unknown_ids() {
    if let Ok(m) = CgroupMounts::detect() {
        assert_eq!(
            metrics::docker_cgroup(
                &m,
                "0000000000000000000000000000000000000000000000000000000000000000"
            ),
            None
        );
    }
}
