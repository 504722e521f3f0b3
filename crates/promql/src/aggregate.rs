//! Aggregation operators (`sum by (...)`, `topk`, `quantile`, `count_values`, ...).

use std::collections::HashMap;

use crate::Error;
use crate::ast::{AggOp, AggregateExpr};
use crate::engine::{Ctx, Sample, Value};
use crate::functions::{kahan_inc, mean, quantile};
use crate::labels::Labels;

#[derive(Default)]
struct Group {
    labels: Labels,
    sum: f64,
    comp: f64,
    count: f64,
    mean: f64,
    m2: f64,
    extreme: f64,
    values: Vec<f64>,
    members: Vec<Sample>,
}

/// Evaluates an aggregation at `ts`.
pub(crate) fn eval<'a>(ctx: &'a Ctx<'_>, a: &AggregateExpr, ts: i64) -> Result<Value<'a>, Error> {
    let v = match ctx.eval(&a.expr, ts)? {
        Value::Vector(v) => v,
        _ => {
            return Err(Error::Execution(
                "expected instant vector in aggregation".to_string(),
            ));
        }
    };
    let param = match &a.param {
        Some(p) => Some(ctx.eval(p, ts)?),
        None => None,
    };
    let scalar = match param {
        Some(Value::Scalar(s)) => s,
        _ => f64::NAN,
    };
    let label_param = match &param {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    if a.op == AggOp::CountValues && !valid_label_name(&label_param) {
        return Err(Error::Execution(format!(
            "invalid label name {label_param:?}"
        )));
    }
    let k = match a.op {
        AggOp::Topk | AggOp::Bottomk => {
            if scalar.is_nan() {
                return Err(Error::Execution("parameter value is NaN".to_string()));
            }
            if scalar < 1.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            scalar.min(v.len() as f64) as usize
        }
        _ => 0,
    };

    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in v {
        let mut key = match &a.grouping {
            None => Labels::default(),
            Some(g) if g.without => s.labels.without(&g.labels),
            Some(g) => s.labels.only(&g.labels),
        };
        if a.op == AggOp::CountValues {
            key.set(label_param.clone(), crate::json::format_value(s.v));
        }
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    labels: key,
                    extreme: s.v,
                    ..Group::default()
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.count += 1.0;
        match a.op {
            AggOp::Sum => {
                let (sum, comp) = kahan_inc(s.v, g.sum, g.comp);
                g.sum = sum;
                g.comp = comp;
            }
            AggOp::Min => {
                if s.v < g.extreme || g.extreme.is_nan() {
                    g.extreme = s.v;
                }
            }
            AggOp::Max => {
                if s.v > g.extreme || g.extreme.is_nan() {
                    g.extreme = s.v;
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                let delta = s.v - g.mean;
                g.mean += delta / g.count;
                g.m2 += delta * (s.v - g.mean);
            }
            AggOp::Quantile | AggOp::Avg => g.values.push(s.v),
            AggOp::Topk | AggOp::Bottomk => g.members.push(s),
            AggOp::Count | AggOp::Group | AggOp::CountValues => {}
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let value = match a.op {
            AggOp::Sum => {
                if g.sum.is_infinite() {
                    g.sum
                } else {
                    g.sum + g.comp
                }
            }
            AggOp::Avg => mean(g.values.into_iter()),
            AggOp::Min | AggOp::Max => g.extreme,
            AggOp::Count | AggOp::CountValues => g.count,
            AggOp::Group => 1.0,
            AggOp::Stdvar => g.m2 / g.count,
            AggOp::Stddev => (g.m2 / g.count).sqrt(),
            AggOp::Quantile => {
                let mut values = g.values;
                quantile(scalar, &mut values)
            }
            AggOp::Topk | AggOp::Bottomk => {
                let mut members = g.members;
                let top = a.op == AggOp::Topk;
                // NaN ranks last for both topk and bottomk.
                members.sort_by(|x, y| match (x.v.is_nan(), y.v.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    (false, false) if top => y.v.total_cmp(&x.v),
                    (false, false) => x.v.total_cmp(&y.v),
                });
                out.extend(members.into_iter().take(k).map(|s| Sample {
                    labels: s.labels,
                    t: ts,
                    v: s.v,
                }));
                continue;
            }
        };
        out.push(Sample {
            labels: g.labels,
            t: ts,
            v: value,
        });
    }
    Ok(Value::Vector(out))
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
