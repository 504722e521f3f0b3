//! Ingests 1M cAdvisor-shaped samples (2,000 series, batches of 10,000) and prints
//! throughput, bytes per sample on disk after compaction, and query latencies.
//!
//! `cargo run --release -p tsdb --example ingest` (set `JITTER_MS=5` to add ±5 ms
//! scrape jitter to the timestamps, `TICKS=2160` for 6 hours of scrapes instead of 500,
//! `CONTAINERS=10000` for 100,000 series instead of 2,000).

use std::time::{Duration, Instant};

use tsdb::{Db, Labels, MatchOp, Matcher, Options, Point, Resolution, Value};

const STEP_MS: i64 = 10_000;
const T0: i64 = 1_765_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How one metric evolves per scrape.
#[derive(Clone, Copy)]
enum Shape {
    /// Counter in nanoseconds exposed as float seconds (cpu usage).
    CpuNanos,
    /// Counter in 10 ms ticks exposed as float seconds (user/system cpu).
    CpuTicks,
    /// Gauge: random walk in 4 KiB pages.
    Pages,
    /// Counter of bytes with random increments.
    Bytes,
    /// Gauge that rarely changes.
    Sticky,
    /// Constant.
    Constant,
}

const METRICS: [(&str, Shape); 10] = [
    ("container_cpu_usage_seconds_total", Shape::CpuNanos),
    ("container_cpu_user_seconds_total", Shape::CpuTicks),
    ("container_cpu_system_seconds_total", Shape::CpuTicks),
    ("container_memory_usage_bytes", Shape::Pages),
    ("container_memory_working_set_bytes", Shape::Pages),
    ("container_memory_rss", Shape::Pages),
    ("container_network_receive_bytes_total", Shape::Bytes),
    ("container_network_transmit_bytes_total", Shape::Bytes),
    ("container_fs_usage_bytes", Shape::Sticky),
    ("container_spec_memory_limit_bytes", Shape::Constant),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: i64| -> i64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let jitter = env("JITTER_MS", 0);
    let ticks = env("TICKS", 500).max(6) as usize;
    let containers = env("CONTAINERS", 200).max(100) as usize;
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let mut series = Vec::new();
    for c in 0..containers {
        let id = format!("/docker/{:016x}{:016x}", rng.next(), rng.next());
        let name = format!("app-{c}");
        let image = format!("registry.local/team/app{}:1.{}.0", c % 17, c % 5);
        for (metric, shape) in METRICS {
            let mut pairs = vec![
                ("id", id.as_str()),
                ("name", name.as_str()),
                ("image", image.as_str()),
            ];
            if metric.starts_with("container_cpu_usage") {
                pairs.push(("cpu", "total"));
            }
            let labels = Labels::with_name(metric, pairs)?;
            let start = match shape {
                Shape::CpuNanos | Shape::CpuTicks => rng.below(1 << 40),
                Shape::Pages => (1 << 15) + rng.below(1 << 16),
                Shape::Bytes => rng.below(1 << 35),
                Shape::Sticky | Shape::Constant => 1 << 30,
            };
            series.push((labels, shape, start));
        }
    }

    let mut batch = Vec::with_capacity(10_000);
    let mut append_time = Duration::ZERO;
    let mut samples = 0usize;
    let mut existing_time = Duration::ZERO;
    let mut existing_samples = 0usize;
    let mut flush_time = Duration::ZERO;
    let mut flushes = 0;
    let mut max_pause = Duration::ZERO;
    for tick in 0..ticks {
        for (labels, shape, state) in series.iter_mut() {
            let v = match shape {
                Shape::CpuNanos => {
                    *state += rng.below(2_000_000_000);
                    *state as f64 / 1e9
                }
                Shape::CpuTicks => {
                    *state += rng.below(200);
                    *state as f64 / 100.0
                }
                Shape::Pages => {
                    *state = state.saturating_add(rng.below(65)).saturating_sub(32);
                    (*state * 4096) as f64
                }
                Shape::Bytes => {
                    *state += rng.below(1 << 20);
                    *state as f64
                }
                Shape::Sticky => {
                    if rng.below(100) == 0 {
                        *state += 4096 * rng.below(100);
                    }
                    *state as f64
                }
                Shape::Constant => *state as f64,
            };
            let j = if jitter > 0 {
                rng.below(2 * jitter as u64 + 1) as i64 - jitter
            } else {
                0
            };
            batch.push(Point {
                labels: labels.clone(),
                t: T0 + tick as i64 * STEP_MS + j,
                v: Value::Float(v),
            });
            if batch.len() == 10_000 {
                let start = Instant::now();
                let r = db.append(&batch)?;
                let took = start.elapsed();
                assert_eq!(r.accepted, batch.len(), "{:?}", r.errors.first());
                append_time += took;
                samples += batch.len();
                if tick >= 5 {
                    existing_time += took;
                    existing_samples += batch.len();
                }
                batch.clear();
            }
        }
        // What the server's tick does every 5 minutes.
        if tick % 30 == 29 {
            let start = Instant::now();
            let r = db.flush()?;
            flush_time += start.elapsed();
            max_pause = max_pause.max(r.append_pause);
            flushes += 1;
        }
    }
    db.sync()?;
    let head_stats = db.stats();
    let end = T0 + (ticks as i64 - 1) * STEP_MS;
    let hundred = [
        Matcher::metric("container_cpu_usage_seconds_total"),
        Matcher::new("name", MatchOp::Re, "app-[0-9]{1,2}")?,
    ];
    let head_latency = median_latency(
        || db.select(&hundred, end - 3_600_000, end).map(|s| s.len()),
        100,
    )?;

    let flush_start = Instant::now();
    db.flush_all()?;
    flush_time += flush_start.elapsed();
    let segments_before = db.stats().segments;
    let compact_start = Instant::now();
    db.compact_full()?;
    let compact_time = compact_start.elapsed();
    let stats_start = Instant::now();
    let st = db.stats();
    let stats_time = stats_start.elapsed();
    let disk_latency = median_latency(
        || db.select(&hundred, end - 3_600_000, end).map(|s| s.len()),
        100,
    )?;
    let rollup_latency = median_latency(
        || {
            db.select_rollup(&hundred, T0, end, Resolution::Minute)
                .map(|s| s.len())
        },
        100,
    )?;
    let hour_latency = median_latency(
        || {
            db.select_rollup(&hundred, T0, end, Resolution::Hour)
                .map(|s| s.len())
        },
        100,
    )?;

    println!(
        "samples appended:        {samples} in {} batches of 10,000",
        samples / 10_000
    );
    println!(
        "append throughput:       {:.2} M samples/s overall, {:.2} M samples/s for existing series",
        samples as f64 / append_time.as_secs_f64() / 1e6,
        existing_samples as f64 / existing_time.as_secs_f64() / 1e6,
    );
    println!(
        "head before flush_all:   {} samples, {:.1} MiB estimated memory, WAL {:.1} MiB",
        head_stats.head_samples,
        head_stats.bytes_in_memory as f64 / 1048576.0,
        head_stats.wal_bytes as f64 / 1048576.0
    );
    println!(
        "{} flushes (every 5 min of data, then flush_all) {:.0} ms, appends blocked at most {:.1} ms; compact {:.0} ms: {segments_before} -> {} segments",
        flushes + 1,
        flush_time.as_secs_f64() * 1e3,
        max_pause.as_secs_f64() * 1e3,
        compact_time.as_secs_f64() * 1e3,
        st.segments
    );
    println!(
        "raw segments, compacted: {} bytes / {} samples = {:.3} bytes/sample (labels and index included)",
        st.raw_bytes_on_disk,
        st.raw_samples_on_disk,
        st.raw_bytes_on_disk as f64 / st.raw_samples_on_disk as f64
    );
    println!(
        "rollups (1m + 1h):       {} bytes = {:.3} bytes/raw sample (1 h of complete days; 1 m only once raw data expires)",
        st.rollup_bytes_on_disk,
        st.rollup_bytes_on_disk as f64 / samples as f64
    );
    println!(
        "select 1 h x 100 series: {head_latency:?} from the head, {disk_latency:?} from segments (median)"
    );
    println!(
        "1m rollup, {} min x 100: {rollup_latency:?} (median)",
        ticks as i64 * STEP_MS / 60_000
    );
    println!(
        "1h rollup, {} h x 100: {hour_latency:?} (median; stored for complete days, from raw samples for the last)",
        (ticks as u64 * STEP_MS as u64).div_ceil(3_600_000)
    );
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "process peak RSS:        {:.1} MiB",
        rss_kib as f64 / 1024.0
    );
    println!(
        "Db::stats (the collector reads it at most every 10 s): {stats_time:?} for {} series",
        st.series
    );
    println!(
        "memory after flush:      {:.0} bytes/series ({} series, labels, index and open chunks)",
        st.bytes_in_memory as f64 / st.series as f64,
        st.series
    );
    Ok(())
}

fn median_latency(
    mut f: impl FnMut() -> tsdb::Result<usize>,
    expect: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let n = f()?;
        v.push(start.elapsed());
        assert_eq!(n, expect);
    }
    v.sort();
    Ok(v[v.len() / 2])
}
