//! Server-side cost of `query_range` over the store, without HTTP: 100 of 2,000 series
//! shaped like `slipway-bench tsdb`'s (random walks with 2 decimals, a sample every 7.2 s
//! for the hour before), queried over that hour at a 10 s step. Prints, per query, the
//! store's select of the 100 series through the PromQL adapter, the whole evaluation
//! (select included) and the JSON rendering (minimum of 30 each), as ingested (head in memory) and after `flush_all` + `compact_full`.
//!
//! `cargo run --release -p watch --example query`

use std::time::Instant;

use promql::{Engine, QueryValue, Storage};
use tsdb::{Db, Labels, Options, Point, Value};
use watch::DbStorage;

const END: i64 = 1_765_000_000_000;
const ROUNDS: i64 = 500;
const INTERVAL: i64 = 7_200;
const REPS: usize = 30;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default())?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let measurements = [
        "cpu_usage_total",
        "memory_working_set",
        "rx_bytes",
        "tx_bytes",
        "memory_rss",
        "memory_cache",
        "fs_usage",
        "fs_limit",
        "cpu_user",
        "cpu_system",
    ];
    let mut series = Vec::new();
    for c in 0..200 {
        for m in measurements {
            let (name, app) = (format!("{m}_value"), format!("app-{}", c % 20));
            let (container, machine) = (format!("container-{c}"), format!("host-{}", c % 2));
            let labels = Labels::with_name(
                &name,
                [
                    ("app", app.as_str()),
                    ("container_name", container.as_str()),
                    ("machine", machine.as_str()),
                ],
            )?;
            series.push((labels, 0i64));
        }
    }
    let start = END - (ROUNDS - 1) * INTERVAL;
    for round in 0..ROUNDS {
        let batch: Vec<Point> = series
            .iter_mut()
            .map(|(labels, cents)| {
                *cents += (next() % 201) as i64 - 100;
                Point {
                    labels: labels.clone(),
                    t: start + round * INTERVAL,
                    v: Value::Float(*cents as f64 / 100.0),
                }
            })
            .collect();
        db.append(&batch)?;
    }

    let queries = [
        ("selector", r#"cpu_usage_total_value{machine="host-0"}"#),
        (
            "rate",
            r#"rate(cpu_usage_total_value{machine="host-0"}[5m])"#,
        ),
        (
            "sum by",
            r#"sum by (app) (rate(cpu_usage_total_value{machine="host-0"}[5m]))"#,
        ),
    ];
    let selector = promql::parse_metric_selector(r#"cpu_usage_total_value{machine="host-0"}"#)?;
    let engine = Engine::default();
    let q_start = END - 3_600_000;
    println!(
        "{:<9} {:<12} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "query", "state", "series", "select", "query", "JSON", "bytes"
    );
    for state in ["as ingested", "compacted"] {
        if state == "compacted" {
            db.flush_all()?;
            db.compact_full()?;
        }
        let storage = DbStorage::new(&db);
        for (name, q) in queries {
            let (mut sel, mut eval, mut json) = (f64::MAX, f64::MAX, f64::MAX);
            let (mut n, mut bytes) = (0, 0);
            for _ in 0..REPS {
                let t = Instant::now();
                let found = storage.select(&selector, q_start - 300_000, END)?;
                sel = sel.min(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(found);
                let t = Instant::now();
                let v = engine.range_query(&storage, q, q_start, END, 10_000)?;
                eval = eval.min(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let body = promql::render_success(&v);
                json = json.min(t.elapsed().as_secs_f64() * 1e3);
                bytes = body.len();
                if let QueryValue::Matrix(m) = &v {
                    n = m.len();
                }
            }
            println!(
                "{name:<9} {state:<12} {n:>7} {sel:>6.2} ms {eval:>6.2} ms {json:>6.2} ms {bytes:>9}"
            );
        }
    }
    Ok(())
}
