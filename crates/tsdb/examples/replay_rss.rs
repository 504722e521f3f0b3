//! Resident memory of a store that received appends live against the same store
//! reopened from its WAL (issue 16: idle RSS after a restart with monitoring on).
//!
//! ```sh
//! cargo run --release -p tsdb --example replay_rss -- live /tmp/rss-db 3
//! cargo run --release -p tsdb --example replay_rss -- reopen /tmp/rss-db
//! ```
//!
//! `live DIR ROUNDS` appends ROUNDS rounds of 9,000 series (100 apps × 3 tasks × 30
//! series, cAdvisor-like labels) 10 s apart to a new store in DIR, then prints its RSS;
//! `reopen DIR` opens that store (replaying the WAL), appends one more round as the
//! server's first collection would, and prints its RSS.

use std::time::Duration;

use tsdb::{Db, Labels, Options, Point, Value};

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident KiB of the `[heap]` mapping (glibc's main arena).
fn heap_kib() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut in_heap = false;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 {
            in_heap = line.ends_with("[heap]");
        } else if in_heap && let Some(v) = line.strip_prefix("Rss:") {
            return v
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn report(what: &str) {
    println!(
        "{what}: VmRSS {:.1} MiB, [heap] {:.1} MiB, VmHWM {:.1} MiB",
        status("VmRSS:") as f64 / 1024.0,
        heap_kib() as f64 / 1024.0,
        status("VmHWM:") as f64 / 1024.0,
    );
}

const METRICS: [&str; 30] = [
    "container_cpu_usage_seconds_total",
    "container_cpu_user_seconds_total",
    "container_cpu_system_seconds_total",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_cpu_cfs_throttled_seconds_total",
    "container_memory_usage_bytes",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_cache",
    "container_memory_swap",
    "container_memory_mapped_file",
    "container_memory_failcnt",
    "container_memory_max_usage_bytes",
    "container_spec_memory_limit_bytes",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
    "container_spec_cpu_shares",
    "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",
    "container_fs_reads_total",
    "container_fs_writes_total",
    "container_processes",
    "container_threads",
    "container_threads_max",
    "container_file_descriptors",
    "container_sockets",
    "container_last_seen",
    "container_start_time_seconds",
    "container_oom_events_total",
];

fn round(t: i64) -> Vec<Point> {
    let mut points = Vec::with_capacity(9000);
    for app in 0..100 {
        for task in 0..3 {
            let app_id = format!("/bench/app-{app:03}");
            let task_id = format!("bench_app-{app:03}.{task:08x}-0000-0000-0000-000000000000");
            let id = format!("/system.slice/slipway.service/tasks/{task_id}");
            for (i, m) in METRICS.iter().enumerate() {
                let labels = Labels::with_name(
                    m,
                    [
                        ("app", app_id.as_str()),
                        ("task", task_id.as_str()),
                        ("env", "default"),
                        ("version", "2026-12-06T18:00:00.000Z"),
                        ("id", id.as_str()),
                        ("name", task_id.as_str()),
                        ("image", ""),
                    ],
                )
                .expect("labels");
                points.push(Point {
                    labels,
                    t,
                    v: Value::Float((t / 1000 + i as i64 * 7 + app) as f64 * 1.5),
                });
            }
        }
    }
    points
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("", String::as_str);
    let dir = args.get(2).expect("DIR");
    let t0 = 1_800_000_000_000i64;
    match mode {
        "live" => {
            let _ = std::fs::remove_dir_all(dir);
            let rounds: i64 = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
            let db = Db::open(dir, Options::default()).expect("open");
            report("opened empty");
            for r in 0..rounds {
                db.append(&round(t0 + r * 10_000)).expect("append");
            }
            report(&format!("after {rounds} live rounds"));
            db.close().expect("close");
        }
        "reopen" => {
            report("start");
            let db = Db::open(dir, Options::default()).expect("open");
            report("reopened");
            let st = db.stats();
            let next = t0 + 1_000_000;
            db.append(&round(next)).expect("append");
            report(&format!(
                "after one more round ({} series, {} head samples)",
                st.series, st.head_samples
            ));
            std::thread::sleep(Duration::from_millis(10));
        }
        _ => eprintln!("usage: replay_rss live DIR ROUNDS | reopen DIR"),
    }
}
