//! Parser, evaluator and JSON tests for the PromQL subset, on hand-computed data (one test binary).

mod api;
mod eval;
mod parse;

use promql::{Engine, Labels, MemoryStorage, QueryValue};

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}

/// Test data; timestamps are in seconds here and stored as milliseconds.
fn storage() -> MemoryStorage {
    let mut db = MemoryStorage::new();
    let mut add = |labels: &[(&str, &str)], samples: &[(i64, f64)]| {
        db.add(
            lbl(labels),
            samples.iter().map(|&(t, v)| (t * 1000, v)).collect(),
        );
    };
    // A counter with a reset between 30s and 45s; the sample at 0s lies on the window's open edge.
    add(
        &[("__name__", "reset"), ("job", "a")],
        &[(0, 100.0), (15, 10.0), (30, 20.0), (45, 5.0), (60, 15.0)],
    );
    // A counter starting near zero, so extrapolation stops at the zero point.
    add(
        &[("__name__", "fresh"), ("job", "a")],
        &[(15, 1.0), (30, 31.0), (45, 61.0), (60, 91.0)],
    );
    add(
        &[("__name__", "http"), ("app", "a"), ("inst", "1")],
        &[(60, 1.0)],
    );
    add(
        &[("__name__", "http"), ("app", "a"), ("inst", "2")],
        &[(60, 2.0)],
    );
    add(
        &[("__name__", "http"), ("app", "b"), ("inst", "1")],
        &[(60, 4.0)],
    );
    add(
        &[("__name__", "errors"), ("code", "500"), ("method", "get")],
        &[(60, 24.0)],
    );
    add(
        &[("__name__", "errors"), ("code", "404"), ("method", "get")],
        &[(60, 30.0)],
    );
    add(
        &[("__name__", "errors"), ("code", "501"), ("method", "put")],
        &[(60, 3.0)],
    );
    add(
        &[("__name__", "requests"), ("method", "get")],
        &[(60, 600.0)],
    );
    add(
        &[("__name__", "requests"), ("method", "put")],
        &[(60, 100.0)],
    );
    for (le, c) in [("0.1", 10.0), ("0.5", 30.0), ("1", 40.0), ("+Inf", 50.0)] {
        add(
            &[("__name__", "lat_bucket"), ("le", le), ("app", "a")],
            &[(60, c)],
        );
    }
    // A gauge equal to minutes since 0, one sample a minute up to 10m.
    let g: Vec<(i64, f64)> = (0..=10).map(|m| (m * 60, m as f64)).collect();
    add(&[("__name__", "g")], &g);
    // A series that went stale at 120s (Prometheus' staleness marker).
    let stale = f64::from_bits(promql::STALE_NAN_BITS);
    add(
        &[("__name__", "gone")],
        &[(60, 1.0), (90, 2.0), (120, stale)],
    );
    db
}

/// Instant query result as `labels => value` lines, sorted as returned.
fn instant(db: &MemoryStorage, q: &str, t_s: i64) -> Result<String, String> {
    match Engine::default().instant_query(db, q, t_s * 1000) {
        Ok(QueryValue::Vector(v)) => Ok(v
            .iter()
            .map(|s| format!("{} => {}", s.labels, s.v))
            .collect::<Vec<_>>()
            .join("\n")),
        Ok(QueryValue::Scalar { v, .. }) => Ok(format!("scalar {v}")),
        Ok(other) => Ok(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[track_caller]
fn check(q: &str, t_s: i64, want: &str) {
    let db = storage();
    match instant(&db, q, t_s) {
        Ok(got) => assert_eq!(got, want, "{q} at {t_s}s"),
        Err(e) => panic!("{q}: {e}"),
    }
}

#[track_caller]
fn check_close(q: &str, t_s: i64, want: f64) {
    let db = storage();
    let got = match Engine::default().instant_query(&db, q, t_s * 1000) {
        Ok(QueryValue::Vector(v)) if v.len() == 1 => v[0].v,
        other => panic!("{q}: {other:?}"),
    };
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{q}: got {got}, want {want}"
    );
}
