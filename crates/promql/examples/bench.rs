//! Latency of range queries over 1 h x 100 series at a 10 s step on the in-memory storage.
//!
//! Run: `cargo run --release -p promql --example bench`

use std::time::Instant;

use promql::{Engine, Labels, MemoryStorage, QueryValue};

fn main() {
    let mut db = MemoryStorage::new();
    let start = 1_700_000_000_000i64;
    let hour = 3_600_000i64;
    // 100 counters scraped every 10 s for 1 h plus the 5 m before, across 10 apps.
    for i in 0..100 {
        let labels = Labels::new([
            ("__name__", "x".to_string()),
            ("app", format!("app{}", i % 10)),
            ("instance", format!("10.0.0.{i}:8080")),
        ]);
        let samples: Vec<(i64, f64)> = (0..=(hour + 300_000) / 10_000)
            .map(|k| (start - 300_000 + k * 10_000, (k * (i + 1)) as f64))
            .collect();
        db.add(labels, samples);
    }
    let engine = Engine::default();
    let queries = ["x", "rate(x[5m])", "sum by (app) (rate(x[5m]))"];
    println!(
        "{:<28} {:>6} {:>7} {:>8} {:>8} {:>10} {:>7}",
        "query (1h, step 10s)", "series", "points", "mean ms", "min ms", "JSON min ms", "bytes"
    );
    for q in queries {
        let mut wall = Vec::new();
        let mut render = Vec::new();
        let mut shape = (0, 0, 0);
        for _ in 0..20 {
            let t0 = Instant::now();
            let v = engine
                .range_query(&db, q, start, start + hour, 10_000)
                .expect("query runs");
            wall.push(t0.elapsed().as_secs_f64() * 1000.0);
            let t1 = Instant::now();
            let body = promql::render_success(&v);
            render.push(t1.elapsed().as_secs_f64() * 1000.0);
            if let QueryValue::Matrix(m) = &v {
                shape = (
                    m.len(),
                    m.iter().map(|s| s.samples.len()).sum::<usize>(),
                    body.len(),
                );
            }
        }
        let mean = wall.iter().sum::<f64>() / wall.len() as f64;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{q:<28} {:>6} {:>7} {mean:>8.2} {:>8.2} {:>10.2} {:>7}",
            shape.0,
            shape.1,
            min(&wall),
            min(&render),
            shape.2
        );
    }
}
