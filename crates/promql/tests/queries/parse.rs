//! Parser tests: precedence, printing that reparses, Prometheus' error messages, never-panic properties.

use promql::{Cardinality, Expr, parse};

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
