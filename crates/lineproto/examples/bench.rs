//! Parse throughput for cAdvisor-shaped lines on one core.
//!
//! Run: `cargo run --release -p lineproto --example bench`

use std::time::Instant;

use lineproto::{MappingOptions, Precision, WriteOptions, parse_batch, to_prometheus, write_lines};

/// CPU time of this thread in nanoseconds (from /proc; the machine may be shared, so wall time alone misleads).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let metrics = [
        "cpu_usage_total",
        "cpu_usage_system",
        "memory_usage",
        "memory_working_set",
        "rx_bytes",
        "tx_bytes",
    ];
    let mut body = String::new();
    let lines = 500_000usize;
    for i in 0..lines {
        let m = metrics[i % metrics.len()];
        body.push_str(&format!(
            "{m},container_name=/docker/{:012x},machine=node-{},image=registry.local/app{}:1.{} value={}i {}\n",
            i / 6,
            i % 3,
            i % 17,
            i % 5,
            1_000_000 + i * 37,
            1_700_000_000_000_000_000u64 + (i as u64 / 6) * 10_000_000_000
        ));
    }
    println!(
        "{} lines, {:.1} MB, {:.0} bytes/line",
        lines,
        body.len() as f64 / 1e6,
        body.len() as f64 / lines as f64
    );
    // Requests of 5,000 lines, InfluxDB's recommended batch size.
    let mut requests = Vec::new();
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let mut end = 0;
        for _ in 0..5_000 {
            match rest[end..].find('\n') {
                Some(i) => end += i + 1,
                None => end = rest.len(),
            }
        }
        requests.push(&rest[..end]);
        rest = &rest[end..];
    }
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        let c0 = cpu_ns();
        let mut points = 0;
        for r in &requests {
            let batch = parse_batch(r, Precision::Nanoseconds);
            assert!(batch.errors.is_empty());
            points += batch.len();
        }
        let dt = t0.elapsed().as_secs_f64();
        best_cpu = best_cpu.min((cpu_ns() - c0) as f64 / 1e9);
        assert_eq!(points, lines);
        best = best.min(dt);
    }
    println!(
        "parse_batch, 5,000-line requests: best wall {:.1} ms = {:.2} M lines/s, {:.0} MB/s; best CPU {:.1} ms = {:.2} M lines per CPU-second",
        best * 1000.0,
        lines as f64 / best / 1e6,
        body.len() as f64 / best / 1e6,
        best_cpu * 1000.0,
        lines as f64 / best_cpu / 1e6
    );
    if std::env::args().any(|a| a == "--parse-only") {
        return;
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        let batch = parse_batch(&body, Precision::Nanoseconds);
        best = best.min(t0.elapsed().as_secs_f64());
        assert_eq!(batch.len(), lines);
    }
    println!(
        "parse_batch, one 500,000-line body: best {:.1} ms = {:.2} M lines/s",
        best * 1000.0,
        lines as f64 / best / 1e6
    );

    let batch = parse_batch(&body, Precision::Nanoseconds);
    let t0 = Instant::now();
    let opts = MappingOptions::default();
    let samples: usize = batch.points().map(|p| to_prometheus(p, &opts).len()).sum();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "to_prometheus: {samples} samples in {:.1} ms = {:.2} M points/s",
        dt * 1000.0,
        lines as f64 / dt / 1e6
    );

    let t0 = Instant::now();
    let out = write_lines(batch.points(), WriteOptions::default());
    let dt = t0.elapsed().as_secs_f64();
    assert_eq!(out, body);
    println!(
        "write_lines: {:.1} ms = {:.2} M lines/s (output identical to input)",
        dt * 1000.0,
        lines as f64 / dt / 1e6
    );
}
