//! Runs Prometheus' promqltest scripts (`load`/`eval`/`clear` blocks) against this engine and
//! prints what passes, fails and is skipped (unsupported features). A conformance probe, not a
//! unit test: the scripts live in the Prometheus repository and are not vendored here.
//!
//! The lookback window is Prometheus 3's left-open 5m by default; scripts written for 2.x expect a
//! sample exactly 5m old to be visible, which `LOOKBACK_MS=300001` emulates.
//!
//! Run: `cargo run -p promql --example promqltest -- path/to/selectors.test ...`

use std::collections::HashMap;

use promql::{Engine, Labels, MatchOp, MemoryStorage, QueryValue, STALE_NAN_BITS};

#[derive(Default)]
struct Counts {
    pass: usize,
    fail: usize,
    skip: usize,
}

fn dur_ms(s: &str) -> Option<i64> {
    promql::parse_step(s).ok()
}

/// Expands promqltest value notation: `1 2 _ stale 0+10x3 5x2 _x2 -1-2x2`.
fn expand(items: &str) -> Option<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for item in items.split_whitespace() {
        if item == "_" {
            out.push(None);
        } else if item == "stale" {
            out.push(Some(f64::from_bits(STALE_NAN_BITS)));
        } else if let Some(n) = item.strip_prefix("_x") {
            for _ in 0..n.parse::<usize>().ok()? {
                out.push(None);
            }
        } else if let Some((head, n)) = item.rsplit_once('x') {
            let n: i64 = n.parse().ok()?;
            // Split `a+b` / `a-b` at the sign that is not at the start or after an exponent.
            let bytes = head.as_bytes();
            let split = (1..bytes.len())
                .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
            let (start, step) = match split {
                Some(i) => (num(&head[..i])?, num(&head[i..])?),
                None => (num(head)?, 0.0),
            };
            for k in 0..=n {
                out.push(Some(start + step * k as f64));
            }
        } else {
            out.push(Some(num(item)?));
        }
    }
    Some(out)
}

fn num(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok().or_else(|| {
            i64::from_str_radix(s.strip_prefix("0x")?, 16)
                .ok()
                .map(|v| v as f64)
        }),
    }
}

/// Splits `metric{a="b"} 1 2 3` into labels and the rest.
fn series_line(line: &str) -> Option<(Labels, &str)> {
    let line = line.trim();
    let split = match line.rfind('}') {
        Some(i) => i + 1,
        None => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    let (sel, rest) = line.split_at(split);
    if sel == "{}" {
        return Some((Labels::default(), rest));
    }
    let matchers = promql::parse_metric_selector(sel).ok()?;
    let mut labels = Labels::default();
    for m in matchers {
        if m.op != MatchOp::Equal {
            return None;
        }
        labels.set(m.name, m.value);
    }
    Some((labels, rest))
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || ((a - b).abs() <= 1e-6 * a.abs().max(b.abs()))
}

struct Eval {
    line_no: usize,
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    fail: bool,
    ordered: bool,
    expected: Vec<String>,
}

fn run_eval(db: &MemoryStorage, e: &Eval, c: &mut Counts, verbose: bool) {
    let lookback = std::env::var("LOOKBACK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let engine = Engine {
        lookback_delta_ms: lookback,
        ..Engine::default()
    };
    let res = match e.range {
        Some((s, end, step)) => engine.range_query(db, &e.expr, s, end, step),
        None => engine.instant_query(db, &e.expr, e.at),
    };
    let report = |c: &mut Counts, ok: bool, why: String| {
        if ok {
            c.pass += 1;
        } else {
            c.fail += 1;
            println!("FAIL line {}: {}\n    {why}", e.line_no, e.expr);
        }
    };
    let v = match res {
        Err(err) => {
            let msg = err.to_string();
            if msg.contains("not supported by slipway")
                || e.expected.iter().any(|l| l.contains("{{"))
            {
                c.skip += 1;
                if verbose {
                    println!("skip line {}: {msg}", e.line_no);
                }
            } else {
                report(c, e.fail, format!("error: {msg}"));
            }
            return;
        }
        Ok(_) if e.fail => return report(c, false, "expected an error".to_string()),
        Ok(v) => v,
    };
    if e.expected.iter().any(|l| l.contains("{{")) {
        c.skip += 1;
        return;
    }
    if e.ordered
        && let QueryValue::Vector(samples) = &v
    {
        let got_order: Vec<Labels> = samples.iter().map(|s| s.labels.clone()).collect();
        let want_order: Vec<Labels> = e
            .expected
            .iter()
            .filter_map(|l| series_line(l).map(|(labels, _)| labels))
            .collect();
        if got_order != want_order {
            return report(c, false, format!("order differs: got {got_order:?}"));
        }
    }
    let mut got: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    match &v {
        QueryValue::Scalar { v, .. } => {
            got.insert(Labels::default(), vec![Some(*v)]);
        }
        QueryValue::Vector(samples) => {
            for s in samples {
                got.insert(s.labels.clone(), vec![Some(s.v)]);
            }
        }
        QueryValue::Matrix(series) => {
            for s in series {
                let vals = match e.range {
                    Some((start, _, step)) => {
                        let mut vals = Vec::new();
                        for &(t, v) in &s.samples {
                            let idx = ((t - start) / step) as usize;
                            vals.resize(idx, None);
                            vals.push(Some(v));
                        }
                        vals
                    }
                    None => s.samples.iter().map(|p| Some(p.1)).collect(),
                };
                got.insert(s.labels.clone(), vals);
            }
        }
        QueryValue::String { .. } => {}
    }
    let mut want: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    for l in &e.expected {
        let parsed = if l.trim_start().starts_with(|ch: char| {
            ch.is_ascii_digit() || ch == '-' || ch == '+' || ch == 'N' || ch == 'I'
        }) && !l.contains('{')
        {
            expand(l).map(|v| (Labels::default(), v))
        } else {
            series_line(l).and_then(|(labels, rest)| expand(rest).map(|v| (labels, v)))
        };
        match parsed {
            Some((labels, vals)) => {
                want.insert(labels, vals);
            }
            None => {
                c.skip += 1;
                if verbose {
                    println!("skip line {}: cannot read expected line {l:?}", e.line_no);
                }
                return;
            }
        }
    }
    let matrix_instant = matches!(v, QueryValue::Matrix(_)) && e.range.is_none();
    if matrix_instant {
        c.skip += 1;
        return;
    }
    let trim = |m: &mut HashMap<Labels, Vec<Option<f64>>>| {
        for vals in m.values_mut() {
            while vals.last() == Some(&None) {
                vals.pop();
            }
        }
        m.retain(|_, v| !v.is_empty());
    };
    trim(&mut got);
    trim(&mut want);
    let same = got.len() == want.len()
        && want.iter().all(|(k, w)| {
            got.get(k).is_some_and(|g| {
                g.len() == w.len()
                    && g.iter().zip(w).all(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => close(*a, *b),
                        (None, None) => true,
                        _ => false,
                    })
            })
        });
    let fmt = |m: &HashMap<Labels, Vec<Option<f64>>>| {
        let mut lines: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v:?}")).collect();
        lines.sort();
        lines.join("\n      ")
    };
    report(
        c,
        same,
        format!("want:\n      {}\n    got:\n      {}", fmt(&want), fmt(&got)),
    );
}

fn run_file(path: &str, verbose: bool) -> Counts {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut c = Counts::default();
    let mut db = MemoryStorage::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "clear" {
            db = MemoryStorage::new();
            continue;
        }
        let block_start = i;
        let mut block = Vec::new();
        while i < lines.len() && lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty() {
            block.push(lines[i].trim());
            i += 1;
        }
        if let Some(interval) = line.strip_prefix("load ") {
            let interval = interval
                .split_whitespace()
                .next()
                .and_then(dur_ms)
                .unwrap_or(60_000);
            for l in &block {
                if let Some((labels, rest)) = series_line(l)
                    && let Some(vals) = expand(rest)
                {
                    let samples = vals
                        .iter()
                        .enumerate()
                        .filter_map(|(k, v)| v.map(|v| (k as i64 * interval, v)))
                        .collect();
                    db.add(labels, samples);
                }
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("eval") else {
            continue;
        };
        let (kind, rest) = rest.split_once(' ').unwrap_or(("", rest));
        let mut fail = kind == "_fail";
        let mut ordered = kind == "_ordered";
        let expected: Vec<String> = block
            .iter()
            .filter(|l| {
                if l.starts_with("expect fail") || l.starts_with("expected_fail") {
                    fail = true;
                }
                if l.starts_with("expect ordered") {
                    ordered = true;
                }
                !l.starts_with("expect")
            })
            .map(|l| l.to_string())
            .collect();
        let words: Vec<&str> = rest.split_whitespace().collect();
        let eval = if words.first() == Some(&"instant") && words.get(1) == Some(&"at") {
            let at = words.get(2).and_then(|w| dur_ms(w));
            let expr = words[3.min(words.len())..].join(" ");
            at.map(|at| Eval {
                line_no: block_start,
                expr,
                range: None,
                at,
                fail,
                ordered,
                expected,
            })
        } else if words.first() == Some(&"range")
            && words.get(1) == Some(&"from")
            && words.get(3) == Some(&"to")
            && words.get(5) == Some(&"step")
        {
            let (s, e, st) = (
                words.get(2).and_then(|w| dur_ms(w)),
                words.get(4).and_then(|w| dur_ms(w)),
                words.get(6).and_then(|w| dur_ms(w)),
            );
            let expr = words[7.min(words.len())..].join(" ");
            match (s, e, st) {
                (Some(s), Some(e), Some(st)) => Some(Eval {
                    line_no: block_start,
                    expr,
                    range: Some((s, e, st)),
                    at: 0,
                    fail,
                    ordered,
                    expected,
                }),
                _ => None,
            }
        } else {
            None
        };
        match eval {
            Some(e) => run_eval(&db, &e, &mut c, verbose),
            None => c.skip += 1,
        }
    }
    c
}

fn main() {
    let verbose = std::env::var_os("VERBOSE").is_some();
    let mut total = Counts::default();
    for path in std::env::args().skip(1) {
        let c = run_file(&path, verbose);
        println!(
            "{path}: {} pass, {} fail, {} skipped",
            c.pass, c.fail, c.skip
        );
        total.pass += c.pass;
        total.fail += c.fail;
        total.skip += c.skip;
    }
    println!(
        "total: {} pass, {} fail, {} skipped",
        total.pass, total.fail, total.skip
    );
}
