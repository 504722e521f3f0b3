//! Range queries evaluated series by series instead of step by step.
//!
//! The step-wise evaluator ([`Ctx::eval`] at every step) builds an instant vector per step
//! and files every output sample into a map keyed by its label set. For the common shapes
//! of dashboard queries (selectors, `rate`-like functions of a range selector, aggregations,
//! arithmetic with scalars, element-wise functions) this module computes the same answer a
//! column at a time: every series is walked once across all steps (a sliding window for
//! range functions), aggregations group their input series once instead of per step, and
//! label sets are computed once per series.
//!
//! The results are the step-wise evaluator's, bit for bit: the same per-window functions
//! and accumulators run on the same samples in the same order. Where that cannot be
//! guaranteed (an unsupported node, an aggregation whose input order would differ from the
//! step-wise order, two output series with the same labels), [`eval`] answers `None` and
//! the caller evaluates step by step.

use std::collections::HashMap;

use crate::Error;
use crate::aggregate::Acc;
use crate::ast::{AggOp, AggregateExpr, BinaryExpr, Call, Expr, MatrixSelector, ValueType};
use crate::binary;
use crate::engine::{Ctx, Loaded};
use crate::functions::{self, RangeFn};
use crate::labels::Labels;
use crate::storage::{Series, is_stale_marker};

/// One series of an instant-vector expression across all steps.
struct Column {
    labels: Labels,
    /// One entry per step; `None` where the series has no element at that step.
    values: Vec<Option<f64>>,
}

/// An expression's value at every step.
enum Range {
    Scalar(Vec<f64>),
    Vector {
        columns: Vec<Column>,
        /// Whether at every step the present elements, in column order, are in the order
        /// the step-wise evaluator produces them (only order-sensitive consumers care:
        /// the floating-point sums of aggregations).
        ordered: bool,
    },
}

/// Evaluates `expr` at `steps` series by series; `None` when this module cannot promise
/// the step-wise evaluator's exact answer (the caller then evaluates step by step).
pub(crate) fn eval(
    ctx: &Ctx<'_>,
    expr: &Expr,
    steps: &[i64],
) -> Result<Option<Vec<Series>>, Error> {
    if expr.value_type() != ValueType::Vector || !supported(expr) {
        return Ok(None);
    }
    let Some(Range::Vector { columns, .. }) = node(ctx, expr, steps)? else {
        return Ok(None);
    };
    let mut out: Vec<Series> = Vec::with_capacity(columns.len());
    for c in columns {
        let n = c.values.iter().filter(|v| v.is_some()).count();
        if n == 0 {
            continue;
        }
        let mut samples = Vec::with_capacity(n);
        for (&t, v) in steps.iter().zip(&c.values) {
            if let Some(v) = *v {
                samples.push((t, v));
            }
        }
        out.push(Series {
            labels: c.labels,
            samples,
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    // Equal label sets either fail or merge step-wise; leave them to the step-wise evaluator.
    if out.windows(2).any(|w| w[0].labels == w[1].labels) {
        return Ok(None);
    }
    Ok(Some(out))
}

/// Whether every node of `e` is one this module evaluates (checked before any work).
fn supported(e: &Expr) -> bool {
    match e {
        Expr::Number(_) | Expr::Vector(_) => true,
        Expr::Paren(inner) | Expr::Neg(inner) => supported(inner),
        Expr::Binary(b) => {
            !b.op.is_set()
                && supported(&b.lhs)
                && supported(&b.rhs)
                && (is_scalar(&b.lhs) || is_scalar(&b.rhs))
        }
        Expr::Aggregate(a) => {
            agg_supported(a.op)
                && a.param
                    .as_ref()
                    .is_none_or(|p| is_scalar(p) && supported(p))
                && supported(&a.expr)
        }
        Expr::Call(c) => call_supported(c),
        Expr::String(_) | Expr::Matrix(_) | Expr::Subquery(_) => false,
    }
}

fn is_scalar(e: &Expr) -> bool {
    e.value_type() == ValueType::Scalar
}

fn agg_supported(op: AggOp) -> bool {
    !matches!(op, AggOp::Topk | AggOp::Bottomk | AggOp::CountValues)
}

fn call_supported(c: &Call) -> bool {
    if let Some(f) = RangeFn::from_name(&c.func) {
        let (q, m) = f.arg_positions();
        return c.args.len() == q.map_or(1, |_| 2)
            && matrix_selector(&c.args[m]).is_some()
            && q.is_none_or(|i| is_scalar(&c.args[i]) && supported(&c.args[i]));
    }
    match c.func.as_str() {
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "round"
        | "clamp" | "clamp_min" | "clamp_max" => {
            let arity = match c.func.as_str() {
                "round" => 1..=2,
                "clamp" => 3..=3,
                "clamp_min" | "clamp_max" => 2..=2,
                _ => 1..=1,
            };
            arity.contains(&c.args.len())
                && c.args
                    .first()
                    .is_some_and(|a| !is_scalar(a) && supported(a))
                && c.args[1..].iter().all(|a| is_scalar(a) && supported(a))
        }
        _ => false,
    }
}

/// The range selector of a range function's argument, through parentheses.
fn matrix_selector(e: &Expr) -> Option<&MatrixSelector> {
    match e {
        Expr::Matrix(m) => Some(m),
        Expr::Paren(inner) => matrix_selector(inner),
        _ => None,
    }
}

fn node(ctx: &Ctx<'_>, e: &Expr, steps: &[i64]) -> Result<Option<Range>, Error> {
    ctx.check_deadline()?;
    Ok(match e {
        Expr::Number(v) => Some(Range::Scalar(vec![*v; steps.len()])),
        Expr::Paren(inner) => node(ctx, inner, steps)?,
        Expr::Neg(inner) => match node(ctx, inner, steps)? {
            Some(Range::Scalar(v)) => Some(Range::Scalar(v.into_iter().map(|x| -x).collect())),
            Some(Range::Vector { columns, ordered }) => Some(Range::Vector {
                columns: map_columns(columns, |_, x| Some(-x)),
                ordered,
            }),
            None => None,
        },
        Expr::Vector(vs) => {
            let lookback = ctx.engine.lookback_delta_ms;
            let columns = ctx
                .series(vs)
                .iter()
                .map(|l| Column {
                    labels: l.series.labels.clone(),
                    values: instant_values(&l.series.samples, steps, vs.offset_ms, lookback),
                })
                .collect();
            Some(Range::Vector {
                columns,
                ordered: true,
            })
        }
        Expr::Call(c) => call(ctx, c, steps)?,
        Expr::Binary(b) => binary(ctx, b, steps)?,
        Expr::Aggregate(a) => aggregate(ctx, a, steps)?,
        Expr::String(_) | Expr::Matrix(_) | Expr::Subquery(_) => None,
    })
}

/// An instant selector's value at every step: the newest sample in the lookback window
/// `(t - lookback, t]`, unless it is a staleness marker.
fn instant_values(
    samples: &[(i64, f64)],
    steps: &[i64],
    offset: i64,
    lookback: i64,
) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(steps.len());
    let mut i = 0;
    for &ts in steps {
        let t_end = ts.saturating_sub(offset);
        let t_start = t_end.saturating_sub(lookback);
        while i < samples.len() && samples[i].0 <= t_end {
            i += 1;
        }
        out.push(match i.checked_sub(1).map(|j| samples[j]) {
            Some((t, v)) if t > t_start && !is_stale_marker(v) => Some(v),
            _ => None,
        });
    }
    out
}

fn scalar(ctx: &Ctx<'_>, e: &Expr, steps: &[i64]) -> Result<Option<Vec<f64>>, Error> {
    Ok(match node(ctx, e, steps)? {
        Some(Range::Scalar(v)) => Some(v),
        _ => None,
    })
}

fn vector(ctx: &Ctx<'_>, e: &Expr, steps: &[i64]) -> Result<Option<(Vec<Column>, bool)>, Error> {
    Ok(match node(ctx, e, steps)? {
        Some(Range::Vector { columns, ordered }) => Some((columns, ordered)),
        _ => None,
    })
}

/// Applies `f(step index, value)` to every present value of every column and drops the
/// metric name, as element-wise functions and arithmetic do.
fn map_columns(columns: Vec<Column>, f: impl Fn(usize, f64) -> Option<f64>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|c| Column {
            labels: c.labels.without_metric_name(),
            values: c
                .values
                .iter()
                .enumerate()
                .map(|(k, v)| v.and_then(|x| f(k, x)))
                .collect(),
        })
        .collect()
}

fn call(ctx: &Ctx<'_>, c: &Call, steps: &[i64]) -> Result<Option<Range>, Error> {
    if let Some(f) = RangeFn::from_name(&c.func) {
        return range_function(ctx, c, f, steps);
    }
    let name = c.func.as_str();
    let Some((columns, ordered)) = vector(ctx, &c.args[0], steps)? else {
        return Ok(None);
    };
    let mut args = Vec::with_capacity(c.args.len() - 1);
    for a in &c.args[1..] {
        match scalar(ctx, a, steps)? {
            Some(v) => args.push(v),
            None => return Ok(None),
        }
    }
    let columns = match name {
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" => {
            let f = functions::math_function(name);
            map_columns(columns, |_, x| Some(f(x)))
        }
        "round" => {
            let inv: Vec<f64> = match args.first() {
                Some(to) => to.iter().map(|to| 1.0 / to).collect(),
                None => vec![1.0; steps.len()],
            };
            map_columns(columns, |k, x| Some(functions::round(x, inv[k])))
        }
        "clamp_min" => map_columns(columns, |k, x| Some(functions::go_max(x, args[0][k]))),
        "clamp_max" => map_columns(columns, |k, x| Some(functions::go_min(x, args[0][k]))),
        "clamp" => map_columns(columns, |k, x| {
            let (a, b) = (args[0][k], args[1][k]);
            if b < a {
                None
            } else {
                Some(functions::go_max(a, functions::go_min(b, x)))
            }
        }),
        _ => return Ok(None),
    };
    Ok(Some(Range::Vector { columns, ordered }))
}

/// `rate(x[5m])` and the other range functions: a window slid along each series.
fn range_function(
    ctx: &Ctx<'_>,
    c: &Call,
    f: RangeFn,
    steps: &[i64],
) -> Result<Option<Range>, Error> {
    let (q_pos, m_pos) = f.arg_positions();
    let q = match q_pos {
        Some(i) => match scalar(ctx, &c.args[i], steps)? {
            Some(v) => Some(v),
            None => return Ok(None),
        },
        None => None,
    };
    let Some(ms) = matrix_selector(&c.args[m_pos]) else {
        return Ok(None);
    };
    let mut columns = Vec::new();
    let mut filtered = Vec::new();
    let (mut reset_at, mut reset_value): (Vec<usize>, Vec<f64>) = (Vec::new(), Vec::new());
    for (n, l) in ctx.series(&ms.selector).iter().enumerate() {
        if n % 64 == 63 {
            ctx.check_deadline()?;
        }
        let Loaded { series, unnamed } = l;
        // Range selectors skip staleness markers; dropping them once equals dropping them
        // from every window.
        let samples: &[(i64, f64)] = if series.samples.iter().any(|p| is_stale_marker(p.1)) {
            filtered.clear();
            filtered.extend(series.samples.iter().filter(|p| !is_stale_marker(p.1)));
            &filtered
        } else {
            &series.samples
        };
        // For rate and increase, the counter resets of the whole series, found once: the
        // positions j where samples[j + 1] drops below samples[j], and samples[j]'s value.
        let counter = matches!(f, RangeFn::Rate | RangeFn::Increase);
        reset_at.clear();
        reset_value.clear();
        if counter {
            for (j, w) in samples.windows(2).enumerate() {
                if w[1].1 < w[0].1 {
                    reset_at.push(j);
                    reset_value.push(w[0].1);
                }
            }
        }
        // Resets inside the window: reset_at[ra..rb], those with lo <= j and j + 1 < hi.
        let (mut ra, mut rb) = (0, 0);
        let (mut lo, mut hi) = (0, 0);
        let mut values = Vec::with_capacity(steps.len());
        for (k, &ts) in steps.iter().enumerate() {
            let t_end = ts.saturating_sub(ms.selector.offset_ms);
            let t_start = t_end.saturating_sub(ms.range_ms);
            while hi < samples.len() && samples[hi].0 <= t_end {
                hi += 1;
            }
            while lo < samples.len() && samples[lo].0 <= t_start {
                lo += 1;
            }
            let first = lo.min(hi);
            let window = &samples[first..hi];
            let qk = q.as_ref().map(|q| q[k]);
            values.push(if window.is_empty() {
                None
            } else if counter {
                while rb < reset_at.len() && reset_at[rb] + 1 < hi {
                    rb += 1;
                }
                while ra < rb && reset_at[ra] < first {
                    ra += 1;
                }
                f.apply_with_resets(window, t_start, t_end, ts, qk, &reset_value[ra..rb])
            } else {
                f.apply(window, t_start, t_end, ts, qk)
            });
        }
        columns.push(Column {
            labels: if f.keeps_name() {
                series.labels.clone()
            } else {
                unnamed.clone()
            },
            values,
        });
    }
    Ok(Some(Range::Vector {
        columns,
        ordered: true,
    }))
}

/// Arithmetic and comparisons with a scalar on at least one side.
fn binary(ctx: &Ctx<'_>, b: &BinaryExpr, steps: &[i64]) -> Result<Option<Range>, Error> {
    let (Some(lhs), Some(rhs)) = (node(ctx, &b.lhs, steps)?, node(ctx, &b.rhs, steps)?) else {
        return Ok(None);
    };
    let (columns, ordered, s, scalar_left) = match (lhs, rhs) {
        (Range::Scalar(l), Range::Scalar(r)) => {
            return Ok(Some(Range::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&l, &r)| binary::apply(b.op, l, r).0)
                    .collect(),
            )));
        }
        (Range::Vector { columns, ordered }, Range::Scalar(s)) => (columns, ordered, s, false),
        (Range::Scalar(s), Range::Vector { columns, ordered }) => (columns, ordered, s, true),
        (Range::Vector { .. }, Range::Vector { .. }) => return Ok(None),
    };
    let filter = b.op.is_comparison() && !b.return_bool;
    let drop_name = binary::drops_name(b.op) || b.return_bool;
    let columns = columns
        .into_iter()
        .map(|c| Column {
            labels: if drop_name {
                c.labels.without_metric_name()
            } else {
                c.labels
            },
            values: c
                .values
                .iter()
                .zip(&s)
                .map(|(v, &s)| {
                    let x = (*v)?;
                    let (l, r) = if scalar_left { (s, x) } else { (x, s) };
                    let (value, keep) = binary::apply(b.op, l, r);
                    match (filter, keep) {
                        (true, false) => None,
                        // A filter keeps the vector element's value, on either side.
                        (true, true) => Some(x),
                        (false, _) => Some(value),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Some(Range::Vector { columns, ordered }))
}

/// Aggregations other than `topk`, `bottomk` and `count_values`: series grouped once.
fn aggregate(ctx: &Ctx<'_>, a: &AggregateExpr, steps: &[i64]) -> Result<Option<Range>, Error> {
    let Some((input, ordered)) = vector(ctx, &a.expr, steps)? else {
        return Ok(None);
    };
    let param = match &a.param {
        Some(p) => match scalar(ctx, p, steps)? {
            Some(v) => Some(v),
            None => return Ok(None),
        },
        None => None,
    };
    // Count and group do not depend on the order of their input; the other operators sum
    // floats in input order, which is only known to match step-wise evaluation if ordered.
    let order_free = matches!(a.op, AggOp::Count | AggOp::Group);
    if !ordered && !order_free {
        return Ok(None);
    }
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, c) in input.iter().enumerate() {
        let key = match &a.grouping {
            None => Labels::default(),
            Some(g) if g.without => c.labels.without(&g.labels),
            Some(g) => c.labels.only(&g.labels),
        };
        match index.get(&key) {
            Some(&g) => groups[g].1.push(i),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![i]));
            }
        }
    }
    let mut columns: Vec<Column> = groups
        .iter()
        .map(|(labels, _)| Column {
            labels: labels.clone(),
            values: Vec::with_capacity(steps.len()),
        })
        .collect();
    let mut acc = Acc::default();
    let mut out_ordered = ordered;
    for k in 0..steps.len() {
        if k % 64 == 63 {
            ctx.check_deadline()?;
        }
        let scalar = param.as_ref().map_or(f64::NAN, |p| p[k]);
        // Step-wise, groups come in the order of their first element at this step.
        let mut last_first = None;
        for ((_, members), col) in groups.iter().zip(&mut columns) {
            let mut first = None;
            for &m in members {
                if let Some(v) = input[m].values[k] {
                    if first.is_none() {
                        first = Some(m);
                        acc.reset(v);
                    }
                    acc.add(a.op, v);
                }
            }
            col.values.push(match first {
                Some(m) => {
                    if last_first.is_some_and(|l| l > m) {
                        out_ordered = false;
                    }
                    last_first = Some(m);
                    Some(acc.value(a.op, scalar))
                }
                None => None,
            });
        }
    }
    Ok(Some(Range::Vector {
        columns,
        ordered: out_ordered,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::engine::{Engine, range_steps};
    use crate::storage::{MemoryStorage, STALE_NAN_BITS};

    /// The series-wise answer (`None`: declined) and the step-wise one.
    type Both = (
        Result<Option<Vec<Series>>, String>,
        Result<Vec<Series>, String>,
    );

    /// Both evaluations of `query`.
    fn both(db: &MemoryStorage, query: &str, start: i64, end: i64, step: i64) -> Both {
        let engine = Engine::default();
        let expr = crate::parser::parse(query).expect("query parses");
        let ctx = Ctx::prepare(&engine, db, &expr, start, end, step).expect("loads");
        let steps = range_steps(start, end, step);
        (
            eval(&ctx, &expr, &steps).map_err(|e| e.to_string()),
            ctx.eval_steps(&expr, &steps).map_err(|e| e.to_string()),
        )
    }

    /// The same series with the same samples, values compared bit for bit.
    fn same(a: &[Series], b: &[Series]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.labels == y.labels
                    && x.samples.len() == y.samples.len()
                    && x.samples
                        .iter()
                        .zip(&y.samples)
                        .all(|(p, q)| p.0 == q.0 && p.1.to_bits() == q.1.to_bits())
            })
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    /// 100 counters at 10 s over 1 h 5 m, as the crate's bench and the issue's query.
    fn counters() -> MemoryStorage {
        let mut db = MemoryStorage::new();
        for i in 0..100i64 {
            let samples = (0..=390)
                .map(|k| (k * 10_000, (k * (i + 1)) as f64))
                .collect();
            db.add(
                labels(&[
                    ("__name__", "x"),
                    ("app", &format!("app{}", i % 10)),
                    ("instance", &format!("10.0.0.{i}:8080")),
                ]),
                samples,
            );
        }
        db
    }

    /// 100 random walks with 2 decimals at 7.2 s, as `slipway-bench tsdb`'s first dataset:
    /// as counters, half their steps are resets.
    fn walks() -> MemoryStorage {
        let mut db = MemoryStorage::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..100 {
            let mut cents = 0i64;
            let samples = (0..550)
                .map(|k| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    cents += (rng % 201) as i64 - 100;
                    (k * 7_200, cents as f64 / 100.0)
                })
                .collect();
            db.add(
                labels(&[
                    ("__name__", "x"),
                    ("app", &format!("app{}", i % 10)),
                    ("i", &i.to_string()),
                ]),
                samples,
            );
        }
        db
    }

    #[test]
    fn the_benchmarked_queries_take_the_series_wise_path_and_agree() {
        let (counters, walks) = (counters(), walks());
        for db in [&counters, &walks] {
            check_benchmarked(db);
        }
    }

    fn check_benchmarked(db: &MemoryStorage) {
        for q in [
            "x",
            "rate(x[5m])",
            "sum by (app) (rate(x[5m]))",
            "sum(rate(x[5m])) * 8",
            "avg without (instance) (x) / 1024",
            "count(count by (app) (x))",
        ] {
            let (fast, slow) = both(db, q, 300_000, 3_900_000, 10_000);
            let fast = fast.expect("no error").expect("series-wise path taken");
            assert!(same(&fast, &slow.expect("no error")), "{q}");
        }
    }

    #[test]
    fn equal_label_sets_are_left_to_the_step_wise_evaluator() {
        let mut db = MemoryStorage::new();
        db.add(labels(&[("__name__", "a"), ("job", "x")]), vec![(0, 1.0)]);
        db.add(labels(&[("__name__", "b"), ("job", "x")]), vec![(0, 2.0)]);
        let (fast, slow) = both(&db, r#"{__name__=~"a|b"} * 2"#, 0, 60_000, 10_000);
        assert!(fast.expect("no error").is_none());
        assert!(slow.unwrap_err().contains("same labelset"));
    }

    #[test]
    fn an_aggregation_over_an_out_of_order_aggregation_is_left_to_the_step_wise_evaluator() {
        // Group "y" has the first series overall but is absent at the later steps, where
        // step-wise evaluation meets group "z" first: a sum over the groups would add in a
        // different order.
        let mut db = MemoryStorage::new();
        db.add(
            labels(&[("__name__", "a"), ("g", "y"), ("i", "0")]),
            vec![(0, 0.1)],
        );
        db.add(
            labels(&[("__name__", "a"), ("g", "z"), ("i", "1")]),
            vec![(0, 0.2), (400_000, 0.3)],
        );
        db.add(
            labels(&[("__name__", "a"), ("g", "y"), ("i", "2")]),
            vec![(0, 0.7), (400_000, 0.9)],
        );
        let (fast, slow) = both(&db, "sum(sum by (g) (a))", 0, 600_000, 100_000);
        assert!(fast.expect("no error").is_none());
        assert!(slow.is_ok());
        let (fast, slow) = both(&db, "count(sum by (g) (a))", 0, 600_000, 100_000);
        assert!(same(&fast.unwrap().unwrap(), &slow.unwrap()));
    }

    const VECTORS: &[&str] = &[
        "a",
        "b",
        r#"a{job="x"}"#,
        r#"{__name__=~"a|b"}"#,
        "a offset 30s",
        "b offset -20s",
    ];
    const MATRICES: &[&str] = &[
        "a[1m]",
        "b[45s]",
        r#"{__name__=~"a|b"}[2m]"#,
        "a[1m] offset 20s",
    ];
    const RANGE_FNS: &[&str] = &[
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "deriv",
        "stddev_over_time",
        "stdvar_over_time",
        "present_over_time",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "absent_over_time",
    ];
    const AGGS: &[&str] = &[
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "sum by (job)",
        "avg without (inst)",
        "max by (__name__)",
        "min without (job)",
        "count by (job, inst)",
        "topk(1,",
        "quantile(0.3,",
        "quantile(1.5,",
    ];
    const FUNCS: &[(&str, &str)] = &[
        ("abs(", ")"),
        ("ceil(", ")"),
        ("floor(", ")"),
        ("sqrt(", ")"),
        ("ln(", ")"),
        ("sgn(", ")"),
        ("exp(", ")"),
        ("round(", ")"),
        ("round(", ", 0.5)"),
        ("clamp(", ", 0, 5)"),
        ("clamp(", ", 5, 0)"),
        ("clamp_min(", ", 1)"),
        ("clamp_max(", ", 2)"),
        ("timestamp(", ")"),
        ("-(", ")"),
    ];
    const OPS: &[&str] = &[
        "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<", ">=", "<=", "> bool",
        "== bool",
    ];

    /// Instant-vector expressions over the test data, supported or not by this module.
    fn expr() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            proptest::sample::select(VECTORS).prop_map(str::to_string),
            (
                proptest::sample::select(RANGE_FNS),
                proptest::sample::select(MATRICES)
            )
                .prop_map(|(f, m)| format!("{f}({m})")),
            proptest::sample::select(MATRICES)
                .prop_map(|m| format!("quantile_over_time(0.7, {m})")),
            proptest::sample::select(MATRICES).prop_map(|m| format!("predict_linear({m}, 60)")),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (proptest::sample::select(AGGS), inner.clone()).prop_map(|(a, e)| {
                    if a.ends_with(',') {
                        format!("{a} {e})")
                    } else {
                        format!("{a} ({e})")
                    }
                }),
                (proptest::sample::select(FUNCS), inner.clone())
                    .prop_map(|((pre, post), e)| format!("{pre}{e}{post}")),
                (
                    inner.clone(),
                    proptest::sample::select(OPS),
                    proptest::sample::select(&[0.0, 1.0, 2.5, -3.0][..]),
                    any::<bool>()
                )
                    .prop_map(|(e, op, n, left)| if left {
                        format!("{n} {op} ({e})")
                    } else {
                        format!("({e}) {op} {n}")
                    }),
                (inner.clone(), inner).prop_map(|(l, r)| format!("({l}) + ({r})")),
            ]
        })
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => (-50i32..50).prop_map(f64::from),
            2 => -1e3f64..1e3,
            1 => Just(f64::NAN),
            1 => Just(f64::from_bits(STALE_NAN_BITS)),
            1 => Just(f64::INFINITY),
            1 => Just(-0.0),
        ]
    }

    /// Up to six series of `a` and `b` over jobs and instances (sometimes twice the same),
    /// samples at random 1–40 s intervals.
    fn data() -> impl Strategy<Value = MemoryStorage> {
        let series = (
            proptest::sample::select(&["a", "b"][..]),
            proptest::sample::select(&["x", "y"][..]),
            0u8..3,
            proptest::collection::vec((1i64..40, value()), 0..40),
        );
        proptest::collection::vec(series, 1..6).prop_map(|all| {
            let mut db = MemoryStorage::new();
            for (name, job, inst, points) in all {
                let mut t = 0;
                let samples = points
                    .into_iter()
                    .map(|(dt, v)| {
                        t += dt * 1000;
                        (t, v)
                    })
                    .collect();
                db.add(
                    labels(&[
                        ("__name__", name),
                        ("job", job),
                        ("inst", &inst.to_string()),
                    ]),
                    samples,
                );
            }
            db
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whenever the series-wise evaluator answers, the step-wise one gives the same
        /// series, steps and value bits.
        #[test]
        fn series_wise_agrees_with_step_wise(
            db in data(),
            query in expr(),
            start in -60_000i64..400_000,
            step in prop_oneof![1_000i64..60_000, Just(10_000i64)],
            n in 1i64..60,
        ) {
            let (fast, slow) = both(&db, &query, start, start + step * (n - 1), step);
            match fast {
                Ok(Some(fast)) => match slow {
                    Ok(slow) => prop_assert!(same(&fast, &slow), "{query}: {fast:?} != {slow:?}"),
                    Err(e) => prop_assert!(false, "{query}: step-wise failed: {e}"),
                },
                Ok(None) => {}
                Err(e) => prop_assert!(false, "{query}: {e}"),
            }
        }
    }
}
