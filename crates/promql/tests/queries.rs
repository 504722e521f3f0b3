//! Parser, evaluator and JSON tests for the PromQL subset, on hand-computed data.

use promql::{
    Cardinality, Engine, Expr, Labels, MemoryStorage, QueryValue, parse, parse_step, parse_time,
    render_error, render_success,
};

/// Fully parenthesised rendering, to check precedence and associativity.
fn sexp(e: &Expr) -> String {
    match e {
        Expr::Binary(b) => {
            let mut op = b.op.as_str().to_string();
            if b.return_bool {
                op.push_str(" bool");
            }
            if let Some(m) = &b.matching {
                op.push_str(&format!(
                    " {}({})",
                    if m.on { "on" } else { "ignoring" },
                    m.labels.join(", ")
                ));
                match m.card {
                    Cardinality::OneToOne => {}
                    Cardinality::ManyToOne => {
                        op.push_str(&format!(" group_left({})", m.include.join(", ")))
                    }
                    Cardinality::OneToMany => {
                        op.push_str(&format!(" group_right({})", m.include.join(", ")))
                    }
                }
            }
            format!("({} {op} {})", sexp(&b.lhs), sexp(&b.rhs))
        }
        Expr::Neg(inner) => format!("(-{})", sexp(inner)),
        Expr::Paren(inner) => sexp(inner),
        other => other.to_string(),
    }
}

#[track_caller]
fn check_parse(input: &str, want: &str) {
    let e = parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
    assert_eq!(sexp(&e), want, "{input}");
    let printed = e.to_string();
    let again = parse(&printed).unwrap_or_else(|err| panic!("reparse {printed}: {err}"));
    assert_eq!(
        format!("{again:?}"),
        format!("{e:?}"),
        "{input} printed as {printed}"
    );
}

#[test]
fn parser_precedence_and_printing() {
    for (input, want) in [
        ("1 + 2 * 3", "(1 + (2 * 3))"),
        ("1 * 2 + 3", "((1 * 2) + 3)"),
        ("a - b - c", "((a - b) - c)"),
        ("2 ^ 3 ^ 2", "(2 ^ (3 ^ 2))"),
        ("-2 ^ 2", "(-(2 ^ 2))"),
        ("-a * b", "((-a) * b)"),
        ("a atan2 b * c", "((a atan2 b) * c)"),
        ("a or b and c unless d", "(a or ((b and c) unless d))"),
        ("a > bool b + 1", "(a > bool (b + 1))"),
        ("a == b or c", "((a == b) or c)"),
        (
            "a / ignoring(code) group_left b",
            "(a / ignoring(code) group_left() b)",
        ),
        (
            "a * on(x, y) group_right(z) b",
            "(a * on(x, y) group_right(z) b)",
        ),
        ("a and on() b", "(a and on() b)"),
        ("-1", "-1"),
        ("0x1F", "31"),
        ("+Inf", "Inf"),
        ("-inf", "-Inf"),
        ("nan", "NaN"),
        ("1e3", "1000"),
        (".5", "0.5"),
        ("\"a\\\"b\\n\"", "\"a\\\"b\\n\""),
        ("'single'", "\"single\""),
        ("`raw\\n`", "\"raw\\\\n\""),
        ("foo", "foo"),
        (
            "foo{a=\"b\",c!=\"d\",e=~\"f.*\",g!~\"h\"}",
            "foo{a=\"b\", c!=\"d\", e=~\"f.*\", g!~\"h\"}",
        ),
        ("{__name__=~\"job:.*\"}", "{__name__=~\"job:.*\"}"),
        ("job:req:rate5m", "job:req:rate5m"),
        ("foo[5m]", "foo[5m]"),
        ("foo[1h30m] offset 1d", "foo[1h30m] offset 1d"),
        ("foo offset -5m", "foo offset -5m"),
        ("foo[300]", "foo[5m]"),
        ("foo[1.5] offset 60", "foo[1s500ms] offset 1m"),
        ("foo[10m:30]", "foo[10m:30s]"),
        ("x * 1h", "(x * 3600)"),
        ("rate(foo[5m])[30m:1m]", "rate(foo[5m])[30m:1m]"),
        (
            "max_over_time(rate(foo[1m])[10m:])",
            "max_over_time(rate(foo[1m])[10m:])",
        ),
        ("sum by (app) (rate(x[5m]))", "sum by (app) (rate(x[5m]))"),
        ("sum(rate(x[5m])) by (app)", "sum by (app) (rate(x[5m]))"),
        ("count without (a,b,) (x)", "count without (a, b) (x)"),
        ("topk(3, x)", "topk(3, x)"),
        ("quantile by (le) (0.9, x)", "quantile by (le) (0.9, x)"),
        ("count_values(\"v\", x)", "count_values(\"v\", x)"),
        (
            "histogram_quantile(0.9, sum by (le) (rate(b[5m])))",
            "histogram_quantile(0.9, sum by (le) (rate(b[5m])))",
        ),
        (
            "label_join(x, \"d\", \",\", \"a\", \"b\")",
            "label_join(x, \"d\", \",\", \"a\", \"b\")",
        ),
        ("round(x)", "round(x)"),
        ("time() - 1  # trailing comment", "(time() - 1)"),
        ("(1 + 2) * 3", "((1 + 2) * 3)"),
        ("{on=\"x\", by=\"y\"}", "{on=\"x\", by=\"y\"}"),
        (
            "SUM BY (On) (x) OR Y AND ON(a) z",
            "(sum by (On) (x) or (Y and on(a) z))",
        ),
        ("x > BOOL 1", "(x > bool 1)"),
        ("x Offset 5m", "x offset 5m"),
    ] {
        check_parse(input, want);
    }
}

#[track_caller]
fn check_parse_err(input: &str, want: &str) {
    match parse(input) {
        Ok(e) => panic!("{input}: parsed as {e}"),
        Err(err) => assert_eq!(err.to_string(), want, "{input}"),
    }
}

#[test]
fn parser_errors() {
    check_parse_err(
        "RATE(x[5m])",
        "parse error at char 1: unknown function with name \"RATE\"",
    );
    check_parse_err(
        "x + Sum",
        "parse error at char 5: unexpected keyword \"Sum\"",
    );
    check_parse_err(
        "round(x, 1, 2)",
        "parse error at char 1: expected at most 2 argument(s) in call to \"round\", got 3",
    );
    check_parse_err(
        "label_join(x, \"a\")",
        "parse error at char 1: expected at least 3 argument(s) in call to \"label_join\", got 2",
    );
    check_parse_err(
        "foo(x)",
        "parse error at char 1: unknown function with name \"foo\"",
    );
    check_parse_err(
        "x + holt_winters(x[5m], 0.5, 0.5)",
        "parse error at char 5: function \"holt_winters\" is not supported by slipway",
    );
    check_parse_err(
        "sum(rate(x[5m])",
        "parse error at char 16: unexpected end of input in aggregation, expected \",\" or \")\"",
    );
    check_parse_err(
        "rate(x)",
        "parse error at char 1: expected type range vector in call to function \"rate\", got instant vector",
    );
    check_parse_err(
        "rate(x[5m], 1)",
        "parse error at char 1: expected 1 argument(s) in call to \"rate\", got 2",
    );
    check_parse_err(
        "1 > 2",
        "parse error at char 3: comparisons between scalars must use BOOL modifier",
    );
    check_parse_err(
        "1 and x",
        "parse error at char 3: set operator \"and\" not allowed in binary scalar expression",
    );
    check_parse_err(
        "x + bool y",
        "parse error at char 5: bool modifier can only be used on comparison operators",
    );
    check_parse_err(
        "{a=\"\"}",
        "parse error at char 1: vector selector must contain at least one non-empty matcher",
    );
    check_parse_err(
        "x[5m] + 1",
        "parse error at char 7: binary expression must contain only scalar and instant vector types",
    );
    check_parse_err(
        "x{a=~\"(\"}",
        "parse error at char 3: invalid regular expression \"(\": unclosed group",
    );
    check_parse_err("x $ y", "parse error at char 3: unexpected character: '$'");
    check_parse_err(
        "x[5x]",
        "parse error at char 3: bad number or duration syntax: \"5x\"",
    );
    check_parse_err("\"abc", "parse error at char 1: unterminated quoted string");
    check_parse_err("", "parse error at char 1: no expression found in input");
    check_parse_err(
        "x @ 100",
        "parse error at char 3: @ modifier is not supported by slipway",
    );
    check_parse_err(
        "foo{__name__=\"bar\"}",
        "parse error at char 1: metric name must not be set twice: \"foo\" or \"bar\"",
    );
    check_parse_err(
        "sum by (a) (x) by (b)",
        "parse error at char 1: aggregation must only contain one grouping clause",
    );
    check_parse_err(
        "topk(x)",
        "parse error at char 5: wrong number of arguments for aggregate expression provided, expected 2, got 1",
    );
}

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
fn json_shapes() {
    let db = storage();
    let e = Engine::default();
    let v = e.instant_query(&db, "http{app=\"b\"} / 0", 60_123).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"app":"b","inst":"1"},"value":[60.123,"+Inf"]}]}}"#
    );
    let v = e.instant_query(&db, "0/0", 1_700_000_000_100).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.100,"NaN"]}}"#
    );
    let v = e.instant_query(&db, "\"hi\"", 1000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#
    );
    let v = e.instant_query(&db, "g[2m]", 600_000).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"g"},"values":[[540,"9"],[600,"10"]]}]}}"#
    );
    let v = e.instant_query(&db, "-1e21 * 1 - 0.000001", 0).unwrap();
    assert_eq!(
        render_success(&v),
        r#"{"status":"success","data":{"resultType":"scalar","result":[0,"-1000000000000000000000"]}}"#
    );
    let err = e.instant_query(&db, "sum(", 0).unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert_eq!(
        render_error(&err),
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5: unexpected end of input"}"#
    );
}

#[test]
fn api_metadata_bodies() {
    assert_eq!(
        promql::render_string_list(&["job", "le"]),
        r#"{"status":"success","data":["job","le"]}"#
    );
    let series = [lbl(&[("__name__", "up"), ("job", "a\"b")])];
    assert_eq!(
        promql::render_series(&series),
        r#"{"status":"success","data":[{"__name__":"up","job":"a\"b"}]}"#
    );
}

#[test]
fn api_parameters() {
    let m = promql::parse_metric_selector("up{job=~\"a|b\"}").unwrap();
    assert_eq!(format!("{m:?}"), "[__name__=\"up\", job=~\"a|b\"]");
    assert!(promql::parse_metric_selector("rate(up[5m])").is_err());
    assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
    assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
    assert_eq!(
        parse_time("2023-11-14T22:13:20Z").unwrap(),
        1_700_000_000_000
    );
    assert_eq!(
        parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
        1_700_000_000_500
    );
    assert_eq!(parse_time("1969-12-31T23:59:59Z").unwrap(), -1000);
    assert_eq!(
        parse_time("2024-02-29T00:00:00Z").unwrap(),
        1_709_164_800_000
    );
    assert_eq!(
        parse_time("2023-02-29T00:00:00Z").unwrap_err().to_string(),
        "cannot parse \"2023-02-29T00:00:00Z\" to a valid timestamp"
    );
    assert!(parse_time("nan").is_err());
    assert_eq!(parse_step("15s").unwrap(), 15_000);
    assert_eq!(parse_step("1h30m").unwrap(), 5_400_000);
    assert_eq!(parse_step("1.5").unwrap(), 1500);
    assert_eq!(
        parse_step("x").unwrap_err().to_string(),
        "cannot parse \"x\" to a valid duration"
    );
}

mod props {
    use proptest::prelude::*;

    const PIECES: &[&str] = &[
        "x",
        "y{a=\"b\"}",
        "z{c=~\"d.*\"}",
        "1",
        "2.5",
        "-",
        "+",
        "*",
        "/",
        "^",
        "%",
        "==",
        "!=",
        ">",
        "<",
        "bool",
        "and",
        "or",
        "unless",
        "(",
        ")",
        "[5m]",
        "[1h:1m]",
        "offset 1m",
        "rate(",
        "sum by (a) (",
        "topk(2,",
        ",",
        "on(a)",
        "ignoring(b)",
        "group_left",
        "group_right(c)",
        "abs(",
        "time()",
        "\"s\"",
        "NaN",
        "Inf",
        "histogram_quantile(0.9,",
        "atan2",
        "x[5m]",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,60}") {
            let _ = promql::parse(&s);
        }

        #[test]
        fn printed_ast_reparses_to_the_same_ast(pieces in proptest::collection::vec(proptest::sample::select(PIECES), 1..14)) {
            let text = pieces.join(" ");
            if let Ok(e) = promql::parse(&text) {
                let printed = e.to_string();
                let again = promql::parse(&printed);
                prop_assert!(again.is_ok(), "{} printed as {} fails: {:?}", text, printed, again);
                let again = again.unwrap_or(promql::Expr::Number(0.0));
                prop_assert_eq!(format!("{:?}", again), format!("{:?}", e), "{} printed as {}", text, printed);
            }
        }
    }
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

    use super::storage;

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
