//! Evaluation tests on hand-computed data: rates, *_over_time, aggregation, matching, functions, limits.

use promql::{Engine, render_error, render_success};

use crate::{check, check_close, instant, storage};

#[test]
fn rate_irate_increase() {
    // (0, 60]: 10, 20, 5 (reset), 15 -> increase 25 over 45s, extrapolated by 15s at the start.
    check_close("rate(reset[1m])", 60, 25.0 * (60.0 / 45.0) / 60.0);
    check_close("increase(reset[1m])", 60, 25.0 * 60.0 / 45.0);
    // Same operation order as Prometheus: result * ((interval + to_start + to_end) / interval / range).
    check("rate(reset[1m])", 60, "{job=\"a\"} => 0.5555555555555555");
    // Zero point 0.5s before the first sample limits extrapolation: 90 * 45.5 / 45.
    check_close("increase(fresh[1m])", 60, 91.0);
    check_close("rate(fresh[1m])", 60, 91.0 / 60.0);
    check_close("delta(fresh[1m])", 60, 90.0 * 60.0 / 45.0);
    check_close("irate(reset[1m])", 60, 10.0 / 15.0);
    check_close("irate(reset[1m])", 45, 5.0 / 15.0);
    check_close("idelta(reset[1m])", 45, -15.0);
    check_close("deriv(fresh[1m])", 60, 2.0);
    check("rate(reset[10s])", 60, "");
}

#[test]
fn over_time_offset_lookback() {
    check("avg_over_time(g[3m])", 600, "{} => 9");
    check("min_over_time(g[3m])", 600, "{} => 8");
    check("max_over_time(g[3m])", 600, "{} => 10");
    check("sum_over_time(g[3m])", 600, "{} => 27");
    check("count_over_time(g[3m])", 600, "{} => 3");
    check("last_over_time(g[3m])", 600, "g{} => 10");
    check("quantile_over_time(0.5, g[3m])", 600, "{} => 9");
    check("g offset 5m", 600, "g{} => 5");
    check("sum_over_time(g[2m] offset 1m)", 600, "{} => 17");
    check("g", 899, "g{} => 10");
    check("g", 900, "");
    check("timestamp(g)", 630, "{} => 600");
    check("gone", 100, "gone{} => 2");
    check("gone", 130, "");
    check("count_over_time(gone[5m])", 130, "{} => 2");
    check(
        "max_over_time(deriv(g[2m])[5m:1m])",
        600,
        "{} => 0.016666666666666666",
    );
}

#[test]
fn aggregation() {
    check(
        "sum by (app) (http)",
        60,
        "{app=\"a\"} => 3\n{app=\"b\"} => 4",
    );
    check(
        "sum(http) without (inst)",
        60,
        "{app=\"a\"} => 3\n{app=\"b\"} => 4",
    );
    check("sum(http)", 60, "{} => 7");
    check("avg(http)", 60, "{} => 2.3333333333333335");
    check(
        "count by (inst) (http)",
        60,
        "{inst=\"1\"} => 2\n{inst=\"2\"} => 1",
    );
    check("max(http)", 60, "{} => 4");
    check(
        "min by (app) (http)",
        60,
        "{app=\"a\"} => 1\n{app=\"b\"} => 4",
    );
    check("stddev(http)", 60, "{} => 1.247219128924647");
    check("stdvar(http)", 60, "{} => 1.5555555555555554");
    check(
        "group by (app) (http)",
        60,
        "{app=\"a\"} => 1\n{app=\"b\"} => 1",
    );
    check(
        "topk(2, http)",
        60,
        "http{app=\"b\", inst=\"1\"} => 4\nhttp{app=\"a\", inst=\"2\"} => 2",
    );
    check(
        "bottomk by (app) (1, http)",
        60,
        "http{app=\"a\", inst=\"1\"} => 1\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    check("quantile(0.5, http)", 60, "{} => 2");
    check(
        "count_values(\"v\", http)",
        60,
        "{v=\"1\"} => 1\n{v=\"2\"} => 1\n{v=\"4\"} => 1",
    );
    check("sum by (__name__) (http)", 60, "http{} => 7");
    // The sum would overflow: Prometheus switches to an incremental mean.
    check_close("avg(http * 4e307)", 60, 4e307 * 7.0 / 3.0);
    check("avg(http / 0)", 60, "{} => inf");
    // g over (420s, 600s] at 1m steps is 8, 9, 10: the sum overflows, the mean does not.
    check_close("avg_over_time((g * 1e307)[3m:1m])", 600, 9e307);
}

#[test]
fn binary_operators_and_matching() {
    check(
        "http > 1",
        60,
        "http{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    check(
        "1 < http",
        60,
        "http{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    check(
        "http > bool 1",
        60,
        "{app=\"a\", inst=\"1\"} => 0\n{app=\"a\", inst=\"2\"} => 1\n{app=\"b\", inst=\"1\"} => 1",
    );
    check("2 == bool 2", 60, "scalar 1");
    check(
        "http * 2",
        60,
        "{app=\"a\", inst=\"1\"} => 2\n{app=\"a\", inst=\"2\"} => 4\n{app=\"b\", inst=\"1\"} => 8",
    );
    check("-http{app=\"b\"}", 60, "{app=\"b\", inst=\"1\"} => -4");
    check("2 ^ 3 ^ 2", 60, "scalar 512");
    check(
        "errors / ignoring(code) group_left requests",
        60,
        "{code=\"404\", method=\"get\"} => 0.05\n{code=\"500\", method=\"get\"} => 0.04\n{code=\"501\", method=\"put\"} => 0.03",
    );
    check(
        "errors / on(method) group_left requests",
        60,
        "{code=\"404\", method=\"get\"} => 0.05\n{code=\"500\", method=\"get\"} => 0.04\n{code=\"501\", method=\"put\"} => 0.03",
    );
    check(
        "requests / on(method) group_right sum by (method) (errors)",
        60,
        "{method=\"get\"} => 11.11111111111111\n{method=\"put\"} => 33.333333333333336",
    );
    check(
        "sum by (method) (errors) > on(method) requests / 50",
        60,
        "{method=\"get\"} => 54\n{method=\"put\"} => 3",
    );
    check(
        "http{inst=\"1\"} and on(app) http{inst=\"2\"}",
        60,
        "http{app=\"a\", inst=\"1\"} => 1",
    );
    check(
        "http{inst=\"1\"} unless on(app) http{inst=\"2\"}",
        60,
        "http{app=\"b\", inst=\"1\"} => 4",
    );
    check(
        "http{app=\"a\"} or http",
        60,
        "http{app=\"a\", inst=\"1\"} => 1\nhttp{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    check(
        "http{app=\"a\"} or on(app) http",
        60,
        "http{app=\"a\", inst=\"1\"} => 1\nhttp{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    let db = storage();
    assert_eq!(
        instant(&db, "errors / ignoring(code) requests", 60).unwrap_err(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    assert_eq!(
        instant(&db, "requests / ignoring(code) errors", 60).unwrap_err(),
        "found duplicate series for the match group {method=\"get\"} on the right hand-side of the operation: \
         [errors{code=\"500\", method=\"get\"}, errors{code=\"404\", method=\"get\"}];many-to-many matching not allowed: \
         matching labels must be unique on one side"
    );
    assert_eq!(
        instant(
            &db,
            "label_replace(http, \"inst\", \"\", \"inst\", \".*\")",
            60
        )
        .unwrap_err(),
        "vector cannot contain metrics with the same labelset"
    );
}

#[test]
fn functions() {
    check(
        "histogram_quantile(0.5, lat_bucket)",
        60,
        "{app=\"a\"} => 0.4",
    );
    check(
        "histogram_quantile(0.9, lat_bucket)",
        60,
        "{app=\"a\"} => 1",
    );
    check(
        "histogram_quantile(0.1, lat_bucket)",
        60,
        "{app=\"a\"} => 0.05",
    );
    check(
        "histogram_quantile(0.5, sum by (le) (lat_bucket))",
        60,
        "{} => 0.4",
    );
    check("abs(-http{app=\"b\"})", 60, "{app=\"b\", inst=\"1\"} => 4");
    check("sqrt(http{app=\"b\"})", 60, "{app=\"b\", inst=\"1\"} => 2");
    check(
        "round(errors{method=\"put\"} / 7, 0.1)",
        60,
        "{code=\"501\", method=\"put\"} => 0.4",
    );
    check(
        "clamp(http, 1.5, 3)",
        60,
        "{app=\"a\", inst=\"1\"} => 1.5\n{app=\"a\", inst=\"2\"} => 2\n{app=\"b\", inst=\"1\"} => 3",
    );
    check(
        "clamp_max(http, 2)",
        60,
        "{app=\"a\", inst=\"1\"} => 1\n{app=\"a\", inst=\"2\"} => 2\n{app=\"b\", inst=\"1\"} => 2",
    );
    check(
        "clamp_min(http{app=\"b\"}, 5)",
        60,
        "{app=\"b\", inst=\"1\"} => 5",
    );
    check(
        "sort_desc(http - http + (0/0))",
        60,
        "{app=\"a\", inst=\"1\"} => NaN\n{app=\"a\", inst=\"2\"} => NaN\n{app=\"b\", inst=\"1\"} => NaN",
    );
    check(
        "sort_desc(-http{inst=\"1\"} or (http{inst=\"2\"} - http{inst=\"2\"} + (0/0)))",
        60,
        "{app=\"a\", inst=\"1\"} => -1\n{app=\"b\", inst=\"1\"} => -4\n{app=\"a\", inst=\"2\"} => NaN",
    );
    check(
        "sort_desc(http)",
        60,
        "http{app=\"b\", inst=\"1\"} => 4\nhttp{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"a\", inst=\"1\"} => 1",
    );
    check(
        "sort(http)",
        60,
        "http{app=\"a\", inst=\"1\"} => 1\nhttp{app=\"a\", inst=\"2\"} => 2\nhttp{app=\"b\", inst=\"1\"} => 4",
    );
    check("scalar(http{app=\"b\"}) + 1", 60, "scalar 5");
    check("scalar(http)", 60, "scalar NaN");
    check("vector(time())", 60, "{} => 60");
    check("absent(nope{job=\"x\", a=~\"y\"})", 60, "{job=\"x\"} => 1");
    check("absent(http)", 60, "");
    check(
        "label_replace(http{app=\"b\"}, \"host\", \"$1-x\", \"inst\", \"(.*)\")",
        60,
        "http{app=\"b\", host=\"1-x\", inst=\"1\"} => 4",
    );
    check(
        "label_replace(http{app=\"b\"}, \"app\", \"\", \"inst\", \".*\")",
        60,
        "http{inst=\"1\"} => 4",
    );
    check(
        "label_join(http{app=\"b\"}, \"id\", \"/\", \"app\", \"inst\")",
        60,
        "http{app=\"b\", id=\"b/1\", inst=\"1\"} => 4",
    );
}

#[test]
fn range_query_and_limits() {
    let db = storage();
    let e = Engine::default();
    let v = e.range_query(&db, "g * 2", 0, 180_000, 60_000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"0"],[60,"2"],[120,"4"],[180,"6"]]}]}}"#
    );
    let v = e.range_query(&db, "1", 0, 60_000, 30_000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"],[30,"1"],[60,"1"]]}]}}"#
    );
    let err = e.range_query(&db, "g", 0, 11_001_000, 1000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    assert_eq!(err.error_type(), "bad_data");
    let err = e.range_query(&db, "g[5m]", 0, 60_000, 1000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    let small = Engine {
        max_samples: 5,
        ..Engine::default()
    };
    let err = small.instant_query(&db, "g[1h]", 600_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    assert_eq!(
        render_error(&err),
        r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples into memory in query execution"}"#
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let db = storage();
    let e = Engine::default();
    for q in [
        "g offset -1y",
        "rate(reset[1m] offset 1y)",
        "max_over_time(g[5m:1m] offset -1y)",
        "irate(g[1y])",
        "deriv(g[1y])",
    ] {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, 0] {
            let _ = e.instant_query(&db, q, t);
            let _ = e.range_query(&db, q, t, t.saturating_add(120_000), 60_000);
        }
    }
}

mod eval_props {
    use proptest::prelude::*;

    use crate::storage;

    const PIECES: &[&str] = &[
        "g",
        "http",
        "reset[1m]",
        "lat_bucket",
        "1",
        "-",
        "+",
        "*",
        "/",
        "^",
        "%",
        ">",
        "bool",
        "and",
        "or",
        "unless",
        "(",
        ")",
        "[5m:1m]",
        "offset 1m",
        "offset -1y",
        "rate(",
        "irate(",
        "sum by (app) (",
        "topk(2,",
        "quantile(0.5,",
        "count_values(\"v\",",
        ",",
        "on(app)",
        "ignoring(inst)",
        "group_left",
        "group_right(inst)",
        "abs(",
        "histogram_quantile(0.9,",
        "label_replace(",
        "\"app\"",
        "\"(.*)\"",
        "predict_linear(",
        "deriv(",
        "time()",
        "scalar(",
        "vector(",
        "absent(",
        "clamp(",
        "round(",
        "sort_desc(",
        "changes(",
        "0/0",
        "1e308",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Whatever parses evaluates to a value or an error, at any time, never a panic.
        #[test]
        fn evaluation_never_panics(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 1..10),
            t in prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), -1_000_000_000i64..1_000_000_000],
            step in prop_oneof![Just(1i64), Just(60_000i64), 1i64..100_000],
        ) {
            let text = pieces.join(" ");
            if let Ok(expr) = promql::parse(&text) {
                let db = storage();
                let engine = promql::Engine::default();
                let _ = engine.eval_instant(&db, &expr, t);
                let _ = engine.eval_range(&db, &expr, t, t.saturating_add(step * 20), step);
            }
        }
    }
}

/// The evaluator tells the storage, per selector, which call the selection is an
/// argument of, the selector's range and the query's step.
#[test]
fn selections_carry_hints() {
    use promql::{Matcher, SelectHints, Series, Storage, StorageError};
    use std::cell::RefCell;

    /// Metric name, function, range and step of each selection.
    type Seen = Vec<(String, Option<String>, i64, i64)>;
    struct Recording {
        inner: promql::MemoryStorage,
        seen: RefCell<Seen>,
    }
    impl Storage for Recording {
        fn select(&self, m: &[Matcher], s: i64, e: i64) -> Result<Vec<Series>, StorageError> {
            self.inner.select(m, s, e)
        }
        fn select_hinted(
            &self,
            m: &[Matcher],
            s: i64,
            e: i64,
            h: &SelectHints<'_>,
        ) -> Result<Vec<Series>, StorageError> {
            let name = m
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone());
            self.seen.borrow_mut().push((
                name.unwrap_or_default(),
                h.func.map(str::to_string),
                h.range_ms,
                h.step_ms,
            ));
            self.select(m, s, e)
        }
    }
    let db = Recording {
        inner: storage(),
        seen: RefCell::new(Vec::new()),
    };
    let e = promql::Engine::default();
    e.range_query(
        &db,
        "max_over_time(g[10m]) + sum(rate(http[5m])) + abs(g) + g + (histogram_quantile(0.9, rate(h[1m])))",
        0,
        600_000,
        60_000,
    )
    .unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        db.seen.into_inner(),
        vec![
            ("g".into(), some("max_over_time"), 600_000, 60_000),
            ("http".into(), some("rate"), 300_000, 60_000),
            ("g".into(), some("abs"), 0, 60_000),
            ("g".into(), None, 0, 60_000),
            ("h".into(), some("rate"), 60_000, 60_000),
        ]
    );
    let db = Recording {
        inner: storage(),
        seen: RefCell::new(Vec::new()),
    };
    e.instant_query(&db, "count_over_time(g[2m] offset 1m)", 600_000)
        .unwrap();
    assert_eq!(
        db.seen.into_inner(),
        vec![("g".into(), some("count_over_time"), 120_000, 0)]
    );
}
