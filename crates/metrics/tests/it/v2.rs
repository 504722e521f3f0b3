//! cgroup v2 collection against fixture directories with realistic file contents, and /proc fixtures for network.

use std::collections::BTreeSet;
use std::path::Path;

use metrics::{CgroupPaths, Families, TaskCollector, TaskTarget};

use crate::{roundtrip, value};

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, content).expect("write fixture");
}

/// A v2 task directory as a kernel 6.x with cpu, memory, io and pids enabled writes it.
pub(crate) fn v2_fixture(dir: &Path) {
    write(
        dir,
        "cpu.stat",
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\ncore_sched.force_idle_usec 0\n\
         nr_periods 120\nnr_throttled 30\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n",
    );
    write(dir, "cpu.max", "50000 100000\n");
    write(dir, "cpu.weight", "100\n");
    write(dir, "memory.current", "104857600\n");
    write(
        dir,
        "memory.stat",
        "anon 62914560\nfile 41943040\nkernel 1048576\nkernel_stack 65536\npagetables 262144\nsec_pagetables 0\n\
         percpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 8388608\nfile_dirty 0\n\
         file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 62914560\n\
         active_anon 0\ninactive_file 31457280\nactive_file 10485760\nunevictable 0\nslab_reclaimable 0\n\
         slab_unreclaimable 0\nslab 0\nworkingset_refault_anon 0\nworkingset_refault_file 0\npgfault 1000\n",
    );
    write(dir, "memory.swap.current", "4096\n");
    write(dir, "memory.peak", "209715200\n");
    write(dir, "memory.max", "268435456\n");
    write(
        dir,
        "memory.events",
        "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    write(
        dir,
        "io.stat",
        "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
         259:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    );
    write(dir, "pids.current", "5\n");
    write(dir, "cgroup.procs", "100\n101\n");
}

/// A fake procfs: our own netns, a task pid in another netns with eth0 and lo, boot time and start time.
fn proc_fixture(proc: &Path) {
    write(
        proc,
        "stat",
        "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nbtime 1700000000\n",
    );
    std::fs::create_dir_all(proc.join("self/ns")).expect("mkdir");
    std::os::unix::fs::symlink("net:[4026531840]", proc.join("self/ns/net")).expect("symlink");
    std::fs::create_dir_all(proc.join("4242/ns")).expect("mkdir");
    std::os::unix::fs::symlink("net:[4026532999]", proc.join("4242/ns/net")).expect("symlink");
    write(
        proc,
        "4242/net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n  \
         eth0: 123456     789    1    2    0     0          0         0    65432     321    3    4    0     0       0          0\n  \
         veth1a2b: 9 9 9 9 0 0 0 0 9 9 9 9 0 0 0 0\n",
    );
    write(
        proc,
        "4242/stat",
        "4242 (server) S 1 4242 4242 0 -1 4194560 500 0 0 0 12 3 0 0 20 0 2 0 5000 10000000 300 18446744073709551615\n",
    );
}

#[test]
fn v2_fixture_gives_cadvisor_series() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = tmp.path().join("slipway/t1");
    v2_fixture(&cg);
    let proc = tmp.path().join("proc");
    proc_fixture(&proc);
    let mut c = TaskCollector::with_proc_root(&proc);
    let mut target = TaskTarget::new(
        vec![
            ("app".into(), "/web".into()),
            ("task".into(), "t1".into()),
            ("id".into(), "/slipway/t1".into()),
        ],
        CgroupPaths::V2(cg),
        Some(4242),
    );
    let mut f = Families::new();
    c.collect(&mut target, 1_700_000_100.0, &mut f);
    let fams = roundtrip(&f);
    let v = |name: &str| value(&fams, name, &[]);
    assert_eq!(
        value(
            &fams,
            "container_cpu_usage_seconds_total",
            &[("cpu", "total"), ("app", "/web")]
        ),
        Some(2.5)
    );
    assert_eq!(v("container_cpu_user_seconds_total"), Some(2.0));
    assert_eq!(v("container_cpu_system_seconds_total"), Some(0.5));
    assert_eq!(v("container_cpu_cfs_periods_total"), Some(120.0));
    assert_eq!(v("container_cpu_cfs_throttled_periods_total"), Some(30.0));
    assert_eq!(v("container_cpu_cfs_throttled_seconds_total"), Some(1.5));
    assert_eq!(v("container_spec_cpu_quota"), Some(50_000.0));
    assert_eq!(v("container_spec_cpu_period"), Some(100_000.0));
    assert_eq!(
        v("container_spec_cpu_shares"),
        Some(2.0 + (99.0 * 262_142.0 / 9_999.0f64).floor())
    );
    assert_eq!(v("container_memory_usage_bytes"), Some(104_857_600.0));
    assert_eq!(
        v("container_memory_working_set_bytes"),
        Some((104_857_600 - 31_457_280) as f64)
    );
    assert_eq!(v("container_memory_rss"), Some(62_914_560.0));
    assert_eq!(v("container_memory_cache"), Some(41_943_040.0));
    assert_eq!(v("container_memory_mapped_file"), Some(8_388_608.0));
    assert_eq!(v("container_memory_swap"), Some(4096.0));
    assert_eq!(v("container_memory_max_usage_bytes"), Some(209_715_200.0));
    assert_eq!(v("container_memory_failcnt"), Some(7.0));
    assert_eq!(v("container_oom_events_total"), Some(1.0));
    assert_eq!(v("container_spec_memory_limit_bytes"), Some(268_435_456.0));
    assert_eq!(v("container_threads"), Some(5.0));
    assert_eq!(v("container_processes"), Some(2.0));
    let fs = |name: &str, dev: &str| {
        fams.iter()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && s.label("device")
                        .is_some_and(|d| d.ends_with(dev) || d == dev)
            })
            .map(|s| s.value)
    };
    // The device label is /dev/<name> when /sys/dev/block knows the device, else MAJ:MIN.
    let sdb = fams
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == "container_fs_reads_bytes_total")
        .count();
    assert_eq!(sdb, 2);
    let dev_816 = fams
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == "container_fs_writes_bytes_total" && s.value == 314_773_504.0)
        .and_then(|s| s.label("device").map(str::to_owned))
        .expect("8:16 written bytes");
    assert_eq!(
        fs("container_fs_reads_bytes_total", &dev_816),
        Some(1_459_200.0)
    );
    assert_eq!(fs("container_fs_reads_total", &dev_816), Some(192.0));
    assert_eq!(fs("container_fs_writes_total", &dev_816), Some(353.0));
    // Network from the pid's namespace, without lo.
    let net = |name: &str| value(&fams, name, &[("interface", "eth0")]);
    assert_eq!(
        net("container_network_receive_bytes_total"),
        Some(123_456.0)
    );
    assert_eq!(net("container_network_receive_packets_total"), Some(789.0));
    assert_eq!(net("container_network_receive_errors_total"), Some(1.0));
    assert_eq!(
        net("container_network_receive_packets_dropped_total"),
        Some(2.0)
    );
    assert_eq!(
        net("container_network_transmit_bytes_total"),
        Some(65_432.0)
    );
    assert_eq!(net("container_network_transmit_packets_total"), Some(321.0));
    assert_eq!(net("container_network_transmit_errors_total"), Some(3.0));
    assert_eq!(
        net("container_network_transmit_packets_dropped_total"),
        Some(4.0)
    );
    for ignored in ["lo", "veth1a2b"] {
        assert_eq!(
            value(
                &fams,
                "container_network_receive_bytes_total",
                &[("interface", ignored)]
            ),
            None
        );
    }
    let ticks = metrics_clk_tck();
    assert_eq!(
        v("container_start_time_seconds"),
        Some(1_700_000_000.0 + 5000.0 / ticks)
    );
    assert_eq!(v("container_last_seen"), Some(1_700_000_100.0));
    let stats = c.stats();
    assert_eq!((stats.io_errors, stats.parse_errors), (0, 0), "{stats:?}");
}

/// The kernel's USER_HZ (100 on x86-64).
fn metrics_clk_tck() -> f64 {
    100.0
}

#[test]
fn v2_unlimited_and_missing_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = tmp.path().join("cg");
    v2_fixture(&cg);
    write(&cg, "cpu.max", "max 100000\n");
    write(&cg, "memory.max", "max\n");
    std::fs::remove_file(cg.join("memory.stat")).expect("rm");
    write(&cg, "pids.current", "garbage\n");
    let mut c = TaskCollector::with_proc_root(tmp.path().join("no-proc"));
    let mut f = Families::new();
    c.collect(
        &mut TaskTarget::new(vec![], CgroupPaths::V2(cg), None),
        1.0,
        &mut f,
    );
    let fams = roundtrip(&f);
    let names: BTreeSet<&str> = fams
        .iter()
        .flat_map(|f| &f.samples)
        .map(|s| s.name.as_str())
        .collect();
    for absent in [
        "container_spec_cpu_quota",
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_threads",
        "container_start_time_seconds",
    ] {
        assert!(!names.contains(absent), "{absent} present");
    }
    assert_eq!(
        value(&fams, "container_spec_memory_limit_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&fams, "container_memory_usage_bytes", &[]),
        Some(104_857_600.0)
    );
    let s = c.stats();
    assert!(s.missing >= 1 && s.parse_errors == 1, "{s:?}");

    // A directory that vanished (task gone): nothing but last_seen, no panic.
    let mut f = Families::new();
    c.collect(
        &mut TaskTarget::new(
            vec![],
            CgroupPaths::V2(tmp.path().join("gone")),
            Some(999_999_999),
        ),
        2.0,
        &mut f,
    );
    let fams = roundtrip(&f);
    assert_eq!(fams.len(), 1, "{fams:?}");
}

#[test]
fn slow_files_are_repeated_between_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = tmp.path().join("cg");
    v2_fixture(&cg);
    let mut c = TaskCollector::with_proc_root(tmp.path().join("no-proc"));
    let mut target = TaskTarget::new(vec![], CgroupPaths::V2(cg.clone()), None);
    let round = |c: &mut TaskCollector, target: &mut TaskTarget, now: f64| {
        let mut f = Families::new();
        c.collect(target, now, &mut f);
        let fams = roundtrip(&f);
        (
            value(&fams, "container_spec_memory_limit_bytes", &[]),
            value(&fams, "container_cpu_usage_seconds_total", &[]),
            value(&fams, "container_cpu_cfs_throttled_periods_total", &[]),
        )
    };
    assert_eq!(
        round(&mut c, &mut target, 100.0),
        (Some(268_435_456.0), Some(2.5), Some(30.0))
    );
    write(&cg, "memory.max", "536870912\n");
    write(&cg, "cpu.max", "max 100000\n");
    write(
        &cg,
        "cpu.stat",
        "usage_usec 3000000\nuser_usec 1\nsystem_usec 1\nnr_periods 200\nnr_throttled 31\nthrottled_usec 1\n",
    );
    // Within the slow period: the limit and quota are repeated, usage is fresh.
    assert_eq!(
        round(&mut c, &mut target, 105.0),
        (Some(268_435_456.0), Some(3.0), Some(31.0))
    );
    // After it: the new limit, and without a quota no throttling series.
    assert_eq!(
        round(&mut c, &mut target, 110.0),
        (Some(536_870_912.0), Some(3.0), None)
    );
    c.set_slow_period(0.0);
    write(&cg, "memory.max", "max\n");
    assert_eq!(
        round(&mut c, &mut target, 110.5),
        (Some(0.0), Some(3.0), None)
    );
}

#[test]
fn network_follows_the_pid_into_its_own_namespace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = tmp.path().join("cg");
    v2_fixture(&cg);
    let proc = tmp.path().join("proc");
    proc_fixture(&proc);
    // At first the pid is still in the collector's namespace (a container being set up, or a process app).
    let link = proc.join("4242/ns/net");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink("net:[4026531840]", &link).expect("symlink");
    let mut c = TaskCollector::with_proc_root(&proc);
    let mut target = TaskTarget::new(vec![], CgroupPaths::V2(cg), Some(4242));
    let eth0 = |c: &mut TaskCollector, target: &mut TaskTarget, now: f64| {
        let mut f = Families::new();
        c.collect(target, now, &mut f);
        value(
            &roundtrip(&f),
            "container_network_receive_bytes_total",
            &[("interface", "eth0")],
        )
    };
    assert_eq!(eth0(&mut c, &mut target, 0.0), None);
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink("net:[4026532999]", &link).expect("symlink");
    assert_eq!(
        eth0(&mut c, &mut target, 1.0),
        None,
        "checked again with the slow files"
    );
    assert_eq!(eth0(&mut c, &mut target, 10.0), Some(123_456.0));
}
