//! PromQL functions: the supported set with their signatures, and their evaluation.

use crate::Error;
use crate::ast::{Call, Expr, ValueType};
use crate::engine::{Ctx, RangeSeries, Sample, Value};
use crate::labels::{Labels, METRIC_NAME, MatchOp, anchored_regex};

/// Argument and return types of a function.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signature {
    pub(crate) args: &'static [ValueType],
    /// How many trailing arguments may be left out.
    pub(crate) optional: usize,
    /// Whether the last argument type repeats.
    pub(crate) variadic: bool,
    pub(crate) ret: ValueType,
}

const S: ValueType = ValueType::Scalar;
const V: ValueType = ValueType::Vector;
const M: ValueType = ValueType::Matrix;
const STR: ValueType = ValueType::String;

const fn sig(args: &'static [ValueType], ret: ValueType) -> Signature {
    Signature {
        args,
        optional: 0,
        variadic: false,
        ret,
    }
}

/// The signature of a supported function.
pub(crate) fn signature(name: &str) -> Option<Signature> {
    Some(match name {
        "rate" | "irate" | "increase" | "delta" | "idelta" | "deriv" | "avg_over_time"
        | "min_over_time" | "max_over_time" | "sum_over_time" | "count_over_time"
        | "last_over_time" | "stddev_over_time" | "stdvar_over_time" | "present_over_time"
        | "absent_over_time" | "changes" | "resets" => sig(&[M], V),
        "quantile_over_time" => sig(&[S, M], V),
        "predict_linear" => sig(&[M, S], V),
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "sort"
        | "sort_desc" | "absent" => sig(&[V], V),
        "round" => Signature {
            args: &[V, S],
            optional: 1,
            variadic: false,
            ret: V,
        },
        "timestamp" => sig(&[V], V),
        "clamp" => sig(&[V, S, S], V),
        "clamp_min" | "clamp_max" => sig(&[V, S], V),
        "histogram_quantile" => sig(&[S, V], V),
        "time" => sig(&[], S),
        "vector" => sig(&[S], V),
        "scalar" => sig(&[V], S),
        "label_replace" => sig(&[V, STR, STR, STR, STR], V),
        "label_join" => Signature {
            args: &[V, STR, STR, STR],
            optional: 1,
            variadic: true,
            ret: V,
        },
        _ => return None,
    })
}

/// Prometheus functions Slipway does not implement (so the error can say so).
pub(crate) fn is_prometheus_function(name: &str) -> bool {
    matches!(
        name,
        "acos"
            | "acosh"
            | "asin"
            | "asinh"
            | "atan"
            | "atanh"
            | "cos"
            | "cosh"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "days_in_month"
            | "deg"
            | "double_exponential_smoothing"
            | "first_over_time"
            | "histogram_avg"
            | "histogram_count"
            | "histogram_fraction"
            | "histogram_stddev"
            | "histogram_stdvar"
            | "histogram_sum"
            | "holt_winters"
            | "hour"
            | "info"
            | "label_values"
            | "limitk"
            | "limit_ratio"
            | "mad_over_time"
            | "minute"
            | "month"
            | "pi"
            | "rad"
            | "sin"
            | "sinh"
            | "sort_by_label"
            | "sort_by_label_desc"
            | "tan"
            | "tanh"
            | "ts_of_first_over_time"
            | "ts_of_last_over_time"
            | "ts_of_max_over_time"
            | "ts_of_min_over_time"
            | "year"
    )
}

/// Range and offset of a range-vector argument (selector or subquery).
fn range_of(e: &Expr) -> (i64, i64) {
    match e {
        Expr::Matrix(m) => (m.range_ms, m.selector.offset_ms),
        Expr::Subquery(sq) => (sq.range_ms, sq.offset_ms),
        Expr::Paren(inner) => range_of(inner),
        _ => (0, 0),
    }
}

fn scalar_arg(ctx: &Ctx<'_>, e: &Expr, ts: i64) -> Result<f64, Error> {
    match ctx.eval(e, ts)? {
        Value::Scalar(v) => Ok(v),
        _ => Err(Error::Execution("expected scalar argument".to_string())),
    }
}

fn string_arg(ctx: &Ctx<'_>, e: &Expr, ts: i64) -> Result<String, Error> {
    match ctx.eval(e, ts)? {
        Value::String(s) => Ok(s),
        _ => Err(Error::Execution("expected string argument".to_string())),
    }
}

fn vector_arg(ctx: &Ctx<'_>, e: &Expr, ts: i64) -> Result<Vec<Sample>, Error> {
    match ctx.eval(e, ts)? {
        Value::Vector(v) => Ok(v),
        _ => Err(Error::Execution(
            "expected instant vector argument".to_string(),
        )),
    }
}

fn matrix_arg<'a>(ctx: &'a Ctx<'_>, e: &Expr, ts: i64) -> Result<Vec<RangeSeries<'a>>, Error> {
    match ctx.eval(e, ts)? {
        Value::Matrix(m) => Ok(m),
        _ => Err(Error::Execution(
            "expected range vector argument".to_string(),
        )),
    }
}

/// Evaluates a function call at `ts`.
pub(crate) fn call<'a>(ctx: &'a Ctx<'_>, c: &Call, ts: i64) -> Result<Value<'a>, Error> {
    let arg = |i: usize| {
        c.args
            .get(i)
            .ok_or_else(|| Error::Execution(format!("missing argument {i} to {}", c.func)))
    };
    let name = c.func.as_str();
    if let Some(f) = RangeFn::from_name(name) {
        let (q_pos, m_pos) = f.arg_positions();
        let q = match q_pos {
            Some(i) => Some(scalar_arg(ctx, arg(i)?, ts)?),
            None => None,
        };
        let m_expr = arg(m_pos)?;
        let (range_ms, offset_ms) = range_of(m_expr);
        let matrix = matrix_arg(ctx, m_expr, ts)?;
        let range_end = ts.saturating_sub(offset_ms);
        let range_start = range_end.saturating_sub(range_ms);
        let mut out = Vec::with_capacity(matrix.len());
        for s in matrix {
            if let Some(v) = f.apply(&s.samples, range_start, range_end, ts, q) {
                let labels = if f.keeps_name() { s.labels } else { s.unnamed };
                out.push(Sample { labels, t: ts, v });
            }
        }
        return Ok(Value::Vector(out));
    }
    match name {
        "time" => Ok(Value::Scalar(ts as f64 / 1000.0)),
        "vector" => Ok(Value::Vector(vec![Sample {
            labels: Labels::default(),
            t: ts,
            v: scalar_arg(ctx, arg(0)?, ts)?,
        }])),
        "scalar" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "absent_over_time" => {
            let m = matrix_arg(ctx, arg(0)?, ts)?;
            if !m.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![Sample {
                labels: absent_labels(arg(0)?),
                t: ts,
                v: 1.0,
            }]))
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" => {
            let f = math_function(name);
            Ok(Value::Vector(map_values(
                vector_arg(ctx, arg(0)?, ts)?,
                ts,
                f,
            )))
        }
        "round" => {
            let to = match c.args.get(1) {
                Some(e) => scalar_arg(ctx, e, ts)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            Ok(Value::Vector(map_values(
                vector_arg(ctx, arg(0)?, ts)?,
                ts,
                |v| round(v, inv),
            )))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            let a = scalar_arg(ctx, arg(1)?, ts)?;
            Ok(Value::Vector(match name {
                "clamp_min" => map_values(v, ts, |x| go_max(x, a)),
                "clamp_max" => map_values(v, ts, |x| go_min(x, a)),
                _ => {
                    let b = scalar_arg(ctx, arg(2)?, ts)?;
                    if b < a {
                        Vec::new()
                    } else {
                        map_values(v, ts, |x| go_max(a, go_min(b, x)))
                    }
                }
            }))
        }
        "timestamp" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: s.labels.without_metric_name(),
                        t: ts,
                        v: s.t as f64 / 1000.0,
                    })
                    .collect(),
            ))
        }
        "sort" | "sort_desc" => {
            let mut v = vector_arg(ctx, arg(0)?, ts)?;
            // NaN sorts last in both directions, as in Prometheus.
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) if name == "sort" => a.v.total_cmp(&b.v),
                (false, false) => b.v.total_cmp(&a.v),
            });
            Ok(Value::Vector(v))
        }
        "absent" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            if !v.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![Sample {
                labels: absent_labels(arg(0)?),
                t: ts,
                v: 1.0,
            }]))
        }
        "histogram_quantile" => {
            let q = scalar_arg(ctx, arg(0)?, ts)?;
            let v = vector_arg(ctx, arg(1)?, ts)?;
            Ok(Value::Vector(histogram_quantile(q, v, ts)))
        }
        "label_replace" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            let dst = string_arg(ctx, arg(1)?, ts)?;
            let repl = string_arg(ctx, arg(2)?, ts)?;
            let src = string_arg(ctx, arg(3)?, ts)?;
            let re_src = string_arg(ctx, arg(4)?, ts)?;
            let re = anchored_regex(&re_src).map_err(|_| {
                Error::Execution(format!(
                    "invalid regular expression in label_replace(): {re_src}"
                ))
            })?;
            if !valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let value = s.labels.get(&src).unwrap_or("").to_string();
                if let Some(caps) = re.captures(&value) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    s.labels.set(dst.clone(), res);
                }
                out.push(s);
            }
            Ok(Value::Vector(out))
        }
        "label_join" => {
            let v = vector_arg(ctx, arg(0)?, ts)?;
            let dst = string_arg(ctx, arg(1)?, ts)?;
            let sep = string_arg(ctx, arg(2)?, ts)?;
            let mut srcs = Vec::new();
            for e in &c.args[3.min(c.args.len())..] {
                srcs.push(string_arg(ctx, e, ts)?);
            }
            if !valid_label_name(&dst) {
                return Err(Error::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            Ok(Value::Vector(
                v.into_iter()
                    .map(|mut s| {
                        let joined: Vec<&str> =
                            srcs.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
                        let joined = joined.join(&sep);
                        s.labels.set(dst.clone(), joined);
                        s
                    })
                    .collect(),
            ))
        }
        other => Err(Error::Execution(format!(
            "function {other:?} is not supported by slipway"
        ))),
    }
}

/// A function of a range vector evaluated window by window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    StddevOverTime,
    StdvarOverTime,
    PresentOverTime,
    Changes,
    Resets,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    LastOverTime,
    QuantileOverTime,
}

impl RangeFn {
    /// The range function called `name`, if it is one (`absent_over_time` is not).
    pub(crate) fn from_name(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "present_over_time" => RangeFn::PresentOverTime,
            "changes" => RangeFn::Changes,
            "resets" => RangeFn::Resets,
            "avg_over_time" => RangeFn::AvgOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            _ => return None,
        })
    }

    /// Positions of the scalar argument (if any) and of the range vector argument.
    pub(crate) fn arg_positions(self) -> (Option<usize>, usize) {
        match self {
            RangeFn::QuantileOverTime => (Some(0), 1),
            RangeFn::PredictLinear => (Some(1), 0),
            _ => (None, 0),
        }
    }

    /// Whether the output keeps the metric name (only `last_over_time` does).
    pub(crate) fn keeps_name(self) -> bool {
        self == RangeFn::LastOverTime
    }

    /// [`RangeFn::apply`] for `rate` and `increase` given the window's counter resets
    /// already found: `resets` holds, in order, the value before every drop in `p` (the
    /// same result, without scanning `p` for them). Other functions ignore `resets`.
    pub(crate) fn apply_with_resets(
        self,
        p: &[(i64, f64)],
        range_start: i64,
        range_end: i64,
        ts: i64,
        q: Option<f64>,
        resets: &[f64],
    ) -> Option<f64> {
        match self {
            RangeFn::Rate => extrapolated_rate(p, range_start, range_end, true, true, Some(resets)),
            RangeFn::Increase => {
                extrapolated_rate(p, range_start, range_end, true, false, Some(resets))
            }
            _ => self.apply(p, range_start, range_end, ts, q),
        }
    }

    /// The function over the samples of one window `(range_start, range_end]` evaluated at
    /// `ts`; `q` is the scalar argument of `quantile_over_time` and `predict_linear`.
    /// `None`: no output element.
    pub(crate) fn apply(
        self,
        p: &[(i64, f64)],
        range_start: i64,
        range_end: i64,
        ts: i64,
        q: Option<f64>,
    ) -> Option<f64> {
        match self {
            RangeFn::Rate => extrapolated_rate(p, range_start, range_end, true, true, None),
            RangeFn::Increase => extrapolated_rate(p, range_start, range_end, true, false, None),
            RangeFn::Delta => extrapolated_rate(p, range_start, range_end, false, false, None),
            RangeFn::Irate => instant_value(p, true),
            RangeFn::Idelta => instant_value(p, false),
            RangeFn::Deriv => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
            RangeFn::PredictLinear => (p.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(p, ts);
                slope * q.unwrap_or(f64::NAN) + intercept
            }),
            RangeFn::StddevOverTime => (!p.is_empty()).then(|| variance(p).sqrt()),
            RangeFn::StdvarOverTime => (!p.is_empty()).then(|| variance(p)),
            RangeFn::PresentOverTime => (!p.is_empty()).then_some(1.0),
            RangeFn::Changes => (!p.is_empty()).then(|| {
                p.windows(2)
                    .filter(|w| !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan())))
                    .count() as f64
            }),
            RangeFn::Resets => {
                (!p.is_empty()).then(|| p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
            }
            RangeFn::AvgOverTime => (!p.is_empty()).then(|| mean(p.iter().map(|x| x.1))),
            RangeFn::MinOverTime => p
                .iter()
                .map(|x| x.1)
                .reduce(|a, b| if b < a || a.is_nan() { b } else { a }),
            RangeFn::MaxOverTime => p
                .iter()
                .map(|x| x.1)
                .reduce(|a, b| if b > a || a.is_nan() { b } else { a }),
            RangeFn::SumOverTime => (!p.is_empty()).then(|| kahan_sum(p.iter().map(|x| x.1))),
            RangeFn::CountOverTime => (!p.is_empty()).then_some(p.len() as f64),
            RangeFn::LastOverTime => p.last().map(|x| x.1),
            RangeFn::QuantileOverTime => (!p.is_empty()).then(|| {
                let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
                quantile(q.unwrap_or(f64::NAN), &mut vals)
            }),
        }
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The element-wise function `abs`, `ceil`, `floor`, `exp`, `ln`, `log2`, `log10`, `sgn`,
/// or (any other name) `sqrt`.
pub(crate) fn math_function(name: &str) -> fn(f64) -> f64 {
    match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => sgn,
        _ => f64::sqrt,
    }
}

/// `round(v, to)` given `inv = 1 / to`, as Prometheus computes it.
pub(crate) fn round(v: f64, inv: f64) -> f64 {
    (v * inv + 0.5).floor() / inv
}

/// Go's math.Max: NaN wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's math.Min: NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn map_values(v: Vec<Sample>, ts: i64, f: impl Fn(f64) -> f64) -> Vec<Sample> {
    v.into_iter()
        .map(|s| Sample {
            labels: s.labels.without_metric_name(),
            t: ts,
            v: f(s.v),
        })
        .collect()
}

fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::Vector(vs) => vs,
        Expr::Matrix(ms) => &ms.selector,
        Expr::Paren(inner) => return absent_labels(inner),
        _ => return Labels::default(),
    };
    let mut labels = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if seen.contains(&m.name.as_str()) {
            labels.remove(&m.name);
            continue;
        }
        seen.push(&m.name);
        if m.op == MatchOp::Equal {
            labels.set(m.name.clone(), m.value.clone());
        }
    }
    labels
}

/// Kahan-compensated sum, as Prometheus uses for sum and avg.
pub(crate) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let (s, nc) = kahan_inc(v, sum, c);
        sum = s;
        c = nc;
    }
    if sum.is_infinite() { sum } else { sum + c }
}

pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Mean as Prometheus computes it: a Kahan sum divided by the count, switching to an
/// incremental mean once the sum would overflow.
pub(crate) fn mean(mut values: impl Iterator<Item = f64>) -> f64 {
    let Some(first) = values.next() else {
        return f64::NAN;
    };
    let (mut sum, mut count, mut m, mut c) = (first, 1.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for v in values {
        count += 1.0;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if !new_sum.is_infinite() {
                sum = new_sum;
                c = new_c;
                continue;
            }
            incremental = true;
            m = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        let (nm, nc) = kahan_inc(v / count, q * m, q * c);
        m = nm;
        c = nc;
    }
    if incremental {
        m + c
    } else {
        sum / count + c / count
    }
}

/// Prometheus' `quantile` over a set of values (`values` is reordered).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus' extrapolatedRate for float samples, range `(range_start, range_end]`.
/// `resets`: the values before the counter resets in `p`, in order, when already known.
fn extrapolated_rate(
    p: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    resets: Option<&[f64]>,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        match resets {
            Some(resets) => {
                for &v in resets {
                    result += v;
                }
            }
            None => {
                for w in p.windows(2) {
                    if w[1].1 < w[0].1 {
                        result += w[0].1;
                    }
                }
            }
        }
    }
    let mut duration_to_start = (first_t as f64 - range_start as f64) / 1000.0;
    let mut duration_to_end = (range_end as f64 - last_t as f64) / 1000.0;
    let sampled_interval = (last_t as f64 - first_t as f64) / 1000.0;
    let avg_between = sampled_interval / (p.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= (range_end as f64 - range_start as f64) / 1000.0;
    }
    Some(result * factor)
}

/// Prometheus' instantValue (irate/idelta) over the last two samples.
fn instant_value(p: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0.saturating_sub(prev.0);
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Prometheus' linearRegression: (slope per second, value at `intercept_t`), with Kahan sums.
fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let init = p[0].1;
    let constant = p.iter().all(|x| x.1 == init);
    if constant {
        return if init.is_infinite() {
            (f64::NAN, f64::NAN)
        } else {
            (0.0, init)
        };
    }
    let n = p.len() as f64;
    let (mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in p {
        let x = (t as f64 - intercept_t as f64) / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Population variance as Prometheus' stdvar_over_time computes it (Welford with Kahan sums).
fn variance(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Classic-histogram quantile over `le` buckets, grouped by the labels other than `le` and `__name__`.
fn histogram_quantile(q: f64, v: Vec<Sample>, ts: i64) -> Vec<Sample> {
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for s in v {
        let Some(le) = s
            .labels
            .get("le")
            .and_then(|le| le.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let key = s.labels.without(&["le".to_string()]);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((le, s.v));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels,
            t: ts,
            v: bucket_quantile(q, buckets),
        })
        .collect()
}

/// Prometheus' bucketQuantile for (upper bound, cumulative count) pairs.
pub(crate) fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (ub, c) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Force monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}
