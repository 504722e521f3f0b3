//! Aggregation operators (`sum by (...)`, `topk`, `quantile`, `count_values`, ...).

use std::collections::HashMap;

use crate::Error;
use crate::ast::{AggOp, AggregateExpr};
use crate::engine::{Ctx, Sample, Value};
use crate::functions::{kahan_inc, mean, quantile};
use crate::labels::Labels;

/// The running state of one group's aggregation at one evaluation time.
#[derive(Default)]
pub(crate) struct Acc {
    sum: f64,
    comp: f64,
    count: f64,
    mean: f64,
    m2: f64,
    extreme: f64,
    values: Vec<f64>,
}

impl Acc {
    /// Starts over for a group whose first element has value `first` (keeps the buffer).
    pub(crate) fn reset(&mut self, first: f64) {
        self.sum = 0.0;
        self.comp = 0.0;
        self.count = 0.0;
        self.mean = 0.0;
        self.m2 = 0.0;
        self.extreme = first;
        self.values.clear();
    }

    /// Adds one element's value (every operator but `topk`, `bottomk`).
    pub(crate) fn add(&mut self, op: AggOp, v: f64) {
        self.count += 1.0;
        match op {
            AggOp::Sum => {
                let (sum, comp) = kahan_inc(v, self.sum, self.comp);
                self.sum = sum;
                self.comp = comp;
            }
            AggOp::Min => {
                if v < self.extreme || self.extreme.is_nan() {
                    self.extreme = v;
                }
            }
            AggOp::Max => {
                if v > self.extreme || self.extreme.is_nan() {
                    self.extreme = v;
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.m2 += delta * (v - self.mean);
            }
            AggOp::Quantile | AggOp::Avg => self.values.push(v),
            AggOp::Topk | AggOp::Bottomk | AggOp::Count | AggOp::Group | AggOp::CountValues => {}
        }
    }

    /// The group's value (every operator but `topk`, `bottomk`); `scalar` is `quantile`'s
    /// parameter.
    pub(crate) fn value(&mut self, op: AggOp, scalar: f64) -> f64 {
        match op {
            AggOp::Sum => {
                if self.sum.is_infinite() {
                    self.sum
                } else {
                    self.sum + self.comp
                }
            }
            AggOp::Avg => mean(self.values.iter().copied()),
            AggOp::Min | AggOp::Max => self.extreme,
            AggOp::Count | AggOp::CountValues => self.count,
            AggOp::Group => 1.0,
            AggOp::Stdvar => self.m2 / self.count,
            AggOp::Stddev => (self.m2 / self.count).sqrt(),
            AggOp::Quantile => quantile(scalar, &mut self.values),
            AggOp::Topk | AggOp::Bottomk => f64::NAN,
        }
    }
}

struct Group {
    labels: Labels,
    acc: Acc,
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
                let mut acc = Acc::default();
                acc.reset(s.v);
                groups.push(Group {
                    labels: key,
                    acc,
                    members: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        match a.op {
            AggOp::Topk | AggOp::Bottomk => g.members.push(s),
            op => g.acc.add(op, s.v),
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        let value = match a.op {
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
            op => g.acc.value(op, scalar),
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
