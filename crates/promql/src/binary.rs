//! Binary operators: scalar arithmetic, vector/scalar operations and vector matching.

use std::collections::{HashMap, HashSet};

use crate::Error;
use crate::ast::{BinOp, BinaryExpr, Cardinality, VectorMatching};
use crate::engine::{Sample, Value};
use crate::labels::Labels;

/// Applies `op` to two floats; the bool says whether a comparison kept the element.
pub(crate) fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    let cmp = |b: bool| (if b { 1.0 } else { 0.0 }, b);
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => cmp(l == r),
        BinOp::Neq => cmp(l != r),
        BinOp::Gtr => cmp(l > r),
        BinOp::Lss => cmp(l < r),
        BinOp::Gte => cmp(l >= r),
        BinOp::Lte => cmp(l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

pub(crate) fn drops_name(op: BinOp) -> bool {
    !op.is_comparison() && !op.is_set()
}

/// Evaluates a binary expression given its evaluated operands.
pub(crate) fn eval<'a>(
    b: &BinaryExpr,
    lhs: Value<'a>,
    rhs: Value<'a>,
    ts: i64,
) -> Result<Value<'a>, Error> {
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(apply(b.op, l, r).0)),
        (Value::Vector(v), Value::Scalar(s)) => {
            Ok(Value::Vector(vector_scalar(b, v, s, false, ts)))
        }
        (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(b, v, s, true, ts))),
        (Value::Vector(l), Value::Vector(r)) => {
            let default = VectorMatching {
                on: false,
                labels: Vec::new(),
                card: Cardinality::OneToOne,
                include: Vec::new(),
            };
            let m = b.matching.as_ref().unwrap_or(&default);
            match b.op {
                BinOp::And | BinOp::Or | BinOp::Unless => Ok(Value::Vector(set_op(b.op, m, l, r))),
                _ => vector_vector(b, m, l, r, ts).map(Value::Vector),
            }
        }
        _ => Err(Error::Execution(
            "binary expression must contain only scalar and instant vector types".to_string(),
        )),
    }
}

fn vector_scalar(
    b: &BinaryExpr,
    v: Vec<Sample>,
    s: f64,
    scalar_left: bool,
    ts: i64,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(v.len());
    for mut e in v {
        let (l, r) = if scalar_left { (s, e.v) } else { (e.v, s) };
        let (mut value, keep) = apply(b.op, l, r);
        if b.op.is_comparison() && !b.return_bool {
            if !keep {
                continue;
            }
            // A filter keeps the vector element's value, on either side.
            value = e.v;
        }
        if drops_name(b.op) || b.return_bool {
            e.labels.remove(crate::labels::METRIC_NAME);
        }
        out.push(Sample {
            labels: e.labels,
            t: ts,
            v: value,
        });
    }
    out
}

fn signature(m: &VectorMatching, labels: &Labels) -> Labels {
    if m.on {
        labels.only(&m.labels)
    } else {
        labels.without(&m.labels)
    }
}

fn set_op(op: BinOp, m: &VectorMatching, l: Vec<Sample>, r: Vec<Sample>) -> Vec<Sample> {
    match op {
        BinOp::And | BinOp::Unless => {
            let rs: HashSet<Labels> = r.iter().map(|s| signature(m, &s.labels)).collect();
            let want = op == BinOp::And;
            l.into_iter()
                .filter(|s| rs.contains(&signature(m, &s.labels)) == want)
                .collect()
        }
        _ => {
            let ls: HashSet<Labels> = l.iter().map(|s| signature(m, &s.labels)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !ls.contains(&signature(m, &s.labels))),
            );
            out
        }
    }
}

fn vector_vector(
    b: &BinaryExpr,
    m: &VectorMatching,
    l: Vec<Sample>,
    r: Vec<Sample>,
    ts: i64,
) -> Result<Vec<Sample>, Error> {
    let swap = m.card == Cardinality::OneToMany;
    let (many, one) = if swap { (r, l) } else { (l, r) };
    let side = if swap { "left" } else { "right" };
    let mut one_by_sig: HashMap<Labels, &Sample> = HashMap::with_capacity(one.len());
    for s in &one {
        let sig = signature(m, &s.labels);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                prev.labels, s.labels
            )));
        }
    }
    let mut matched_one_to_one: HashSet<Labels> = HashSet::new();
    let mut matched_results: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for s in &many {
        let sig = signature(m, &s.labels);
        let Some(o) = one_by_sig.get(&sig) else {
            continue;
        };
        let (lv, rv) = if swap { (o.v, s.v) } else { (s.v, o.v) };
        let (value, keep) = apply(b.op, lv, rv);
        let labels = result_labels(b, m, &s.labels, &o.labels);
        if m.card == Cardinality::OneToOne {
            if !matched_one_to_one.insert(sig) {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_string(),
                ));
            }
        } else if !matched_results.insert(labels.clone()) {
            return Err(Error::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches"
                    .to_string(),
            ));
        }
        let filter = b.op.is_comparison() && !b.return_bool;
        if filter && !keep {
            continue;
        }
        // A comparison filter keeps the left-hand side's value.
        let value = if filter { lv } else { value };
        out.push(Sample {
            labels,
            t: ts,
            v: value,
        });
    }
    Ok(out)
}

/// Prometheus' resultMetric: labels of the "many" side, adjusted by the matching.
fn result_labels(b: &BinaryExpr, m: &VectorMatching, many: &Labels, one: &Labels) -> Labels {
    let mut labels = many.clone();
    if drops_name(b.op) || b.return_bool {
        labels.remove(crate::labels::METRIC_NAME);
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            labels = labels.only(&m.labels);
        } else {
            for l in &m.labels {
                labels.remove(l);
            }
        }
    }
    for l in &m.include {
        match one.get(l) {
            Some(v) => labels.set(l.clone(), v.to_string()),
            None => labels.remove(l),
        }
    }
    labels
}
