//! Host collection against the real /proc, and against fixture text.

use std::path::Path;

use metrics::{Families, HostCollector, HostPaths};

use crate::{roundtrip, value};

#[test]
fn host_real_proc() {
    let mut c = HostCollector::new();
    let mut f = Families::new();
    c.collect(1_700_000_000.0, &mut f);
    let fams = roundtrip(&f);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let online = value(&fams, "machine_cpu_cores", &[]).expect("cores");
    assert!(online >= cores as f64, "{online} cores, {cores} available");
    for mode in [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ] {
        assert!(
            value(
                &fams,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", mode)]
            )
            .is_some(),
            "{mode}"
        );
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("MemTotal");
    assert_eq!(
        value(&fams, "node_memory_MemTotal_bytes", &[]),
        Some(total_kb * 1024.0)
    );
    assert_eq!(
        value(&fams, "machine_memory_bytes", &[]),
        Some(total_kb * 1024.0)
    );
    for n in [
        "node_memory_MemFree_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_SwapFree_bytes",
        "node_load1",
        "node_load5",
        "node_load15",
        "node_boot_time_seconds",
    ] {
        assert!(value(&fams, n, &[]).is_some(), "{n}");
    }
    assert_eq!(
        value(&fams, "node_time_seconds", &[]),
        Some(1_700_000_000.0)
    );
    let root_size = value(&fams, "node_filesystem_size_bytes", &[("mountpoint", "/")])
        .expect("root filesystem");
    let root_avail =
        value(&fams, "node_filesystem_avail_bytes", &[("mountpoint", "/")]).expect("avail");
    assert!(root_size > 0.0 && root_avail <= root_size);
    let all: Vec<_> = fams.iter().flat_map(|f| &f.samples).collect();
    assert!(
        all.iter().any(
            |s| s.name == "node_network_receive_bytes_total" && s.label("device") == Some("lo")
        )
    );
    assert!(
        !all.iter()
            .any(|s| s.label("fstype") == Some("proc") || s.label("fstype") == Some("cgroup"))
    );
    let s = c.stats();
    assert_eq!((s.io_errors, s.parse_errors), (0, 0), "{s:?}");
}

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

#[test]
fn host_fixture_values() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path();
    write(
        p,
        "stat",
        "cpu  300 10 200 5000 40 0 5 0 0 0\ncpu0 100 5 100 2500 20 0 3 0 0 0\ncpu1 200 5 100 2500 20 0 2 0 0 0\n\
         intr 1 2 3\nctxt 99\nbtime 1699990000\nprocesses 10\nprocs_running 1\n",
    );
    write(p, "loadavg", "0.52 0.30 0.10 2/345 6789\n");
    write(
        p,
        "meminfo",
        "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    5000000 kB\nBuffers:          100000 kB\n\
         Cached:          2000000 kB\nSwapCached:            0 kB\nSwapTotal:       1048576 kB\nSwapFree:        1048000 kB\n\
         HugePages_Total:       0\n",
    );
    write(
        p,
        "diskstats",
        "   7       0 loop0 10 0 20 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n \
         253       0 vda 1000 10 20000 500 2000 20 40000 800 0 1500 1300 0 0 0 0 0 0\n \
         253       1 vda1 900 10 18000 450 1900 20 38000 700 0 1400 1150 0 0 0 0\n",
    );
    write(
        p,
        "net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
         eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n",
    );
    let mut c = HostCollector::with_paths(HostPaths {
        proc_root: p.to_owned(),
        filesystems: false,
    });
    let mut f = Families::new();
    c.collect(5.0, &mut f);
    let fams = roundtrip(&f);
    let v = |n: &str, l: &[(&str, &str)]| value(&fams, n, l);
    assert_eq!(
        v("node_cpu_seconds_total", &[("cpu", "1"), ("mode", "user")]),
        Some(2.0)
    );
    assert_eq!(
        v(
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "softirq")]
        ),
        Some(0.03)
    );
    assert_eq!(v("machine_cpu_cores", &[]), Some(2.0));
    assert_eq!(v("node_boot_time_seconds", &[]), Some(1_699_990_000.0));
    assert_eq!(v("node_load1", &[]), Some(0.52));
    assert_eq!(v("node_load15", &[]), Some(0.10));
    assert_eq!(
        v("node_memory_MemAvailable_bytes", &[]),
        Some(5_000_000.0 * 1024.0)
    );
    assert_eq!(
        v("node_memory_SwapFree_bytes", &[]),
        Some(1_048_000.0 * 1024.0)
    );
    assert_eq!(v("machine_memory_bytes", &[]), Some(8_000_000.0 * 1024.0));
    assert_eq!(
        v("node_disk_reads_completed_total", &[("device", "vda")]),
        Some(1000.0)
    );
    assert_eq!(
        v("node_disk_read_bytes_total", &[("device", "vda")]),
        Some(20_000.0 * 512.0)
    );
    assert_eq!(
        v("node_disk_writes_completed_total", &[("device", "vda")]),
        Some(2000.0)
    );
    assert_eq!(
        v("node_disk_written_bytes_total", &[("device", "vda")]),
        Some(40_000.0 * 512.0)
    );
    assert_eq!(
        v("node_disk_io_time_seconds_total", &[("device", "vda")]),
        Some(1.5)
    );
    assert_eq!(
        v("node_disk_reads_completed_total", &[("device", "vda1")]),
        None,
        "partitions are skipped"
    );
    assert_eq!(
        v("node_disk_reads_completed_total", &[("device", "loop0")]),
        None,
        "loop devices are skipped"
    );
    assert_eq!(
        v("node_network_receive_bytes_total", &[("device", "eth0")]),
        Some(1000.0)
    );
    assert_eq!(
        v("node_network_receive_errs_total", &[("device", "eth0")]),
        Some(1.0)
    );
    assert_eq!(
        v("node_network_receive_drop_total", &[("device", "eth0")]),
        Some(2.0)
    );
    assert_eq!(
        v("node_network_transmit_packets_total", &[("device", "eth0")]),
        Some(20.0)
    );
    assert_eq!(
        v("node_network_transmit_drop_total", &[("device", "eth0")]),
        Some(4.0)
    );
    assert_eq!(v("node_time_seconds", &[]), Some(5.0));
}
