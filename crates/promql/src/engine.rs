//! Query evaluation: instant and range queries over a [`Storage`], with Prometheus' lookback and limits.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Error;
use crate::ast::{Expr, ValueType, VectorSelector};
use crate::labels::Labels;
use crate::storage::{SelectHints, Series, Storage, is_stale_marker};
use crate::{aggregate, binary, functions, parser, range};

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Unix milliseconds: the evaluation time in query results.
    pub t: i64,
    pub v: f64,
}

/// The result of a query, in the four Prometheus result types.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// An intermediate value during evaluation; range vectors borrow loaded samples where they can.
#[derive(Clone, Debug)]
pub(crate) enum Value<'a> {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries<'a>>),
}

/// One series of a range vector during evaluation.
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries<'a> {
    pub(crate) labels: Labels,
    /// `labels` without `__name__`, computed once per loaded series.
    pub(crate) unnamed: Labels,
    pub(crate) samples: Cow<'a, [(i64, f64)]>,
}

/// A series loaded from storage, with its labels minus the metric name precomputed.
pub(crate) struct Loaded {
    pub(crate) series: Series,
    pub(crate) unnamed: Labels,
}

/// Evaluation settings; `Engine::default()` matches Prometheus' defaults.
#[derive(Clone, Debug)]
pub struct Engine {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta_ms: i64,
    /// Most samples loaded from storage per query (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// Most points per series in a range query (Prometheus' API: 11,000).
    pub max_points_per_series: i64,
    /// Subquery resolution when none is written (Prometheus: the global evaluation interval, 1m).
    pub default_subquery_step_ms: i64,
    /// Wall-clock budget per query (Prometheus: 2m).
    pub timeout: Option<Duration>,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine {
            lookback_delta_ms: 5 * 60_000,
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            default_subquery_step_ms: 60_000,
            timeout: Some(Duration::from_secs(120)),
        }
    }
}

impl Engine {
    /// Parses and evaluates `query` at `t_ms` (`/api/v1/query`).
    pub fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryValue, Error> {
        let expr = parser::parse(query)?;
        self.eval_instant(storage, &expr, t_ms)
    }

    /// Parses and evaluates `query` at `start_ms + k*step_ms` up to `end_ms` (`/api/v1/query_range`).
    pub fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, Error> {
        check_range(start_ms, end_ms, step_ms, self.max_points_per_series)?;
        let expr = parser::parse(query)?;
        self.eval_range(storage, &expr, start_ms, end_ms, step_ms)
    }

    /// Evaluates a parsed expression at one instant.
    pub fn eval_instant(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        t_ms: i64,
    ) -> Result<QueryValue, Error> {
        let ctx = Ctx::prepare(self, storage, expr, t_ms, t_ms, 0)?;
        Ok(match ctx.eval(expr, t_ms)? {
            Value::Scalar(v) => QueryValue::Scalar { t: t_ms, v },
            Value::String(v) => QueryValue::String { t: t_ms, v },
            Value::Vector(mut v) => {
                check_unique(&mut v, !keeps_order(expr))?;
                for s in &mut v {
                    s.t = t_ms;
                }
                QueryValue::Vector(v)
            }
            Value::Matrix(m) => {
                let mut m: Vec<Series> = m
                    .into_iter()
                    .map(|r| Series {
                        labels: r.labels,
                        samples: r.samples.into_owned(),
                    })
                    .collect();
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                QueryValue::Matrix(m)
            }
        })
    }

    /// Evaluates a parsed expression over a range; the result is always a matrix.
    pub fn eval_range(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue, Error> {
        check_range(start_ms, end_ms, step_ms, self.max_points_per_series)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return Err(Error::BadData(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    t.as_str()
                )));
            }
        }
        let ctx = Ctx::prepare(self, storage, expr, start_ms, end_ms, step_ms)?;
        let steps = range_steps(start_ms, end_ms, step_ms);
        if let Some(m) = range::eval(&ctx, expr, &steps)? {
            return Ok(QueryValue::Matrix(m));
        }
        ctx.eval_steps(expr, &steps).map(QueryValue::Matrix)
    }
}

/// The evaluation times of a range query: `start_ms + k*step_ms` up to `end_ms`.
pub(crate) fn range_steps(start_ms: i64, end_ms: i64, step_ms: i64) -> Vec<i64> {
    let mut steps = Vec::new();
    let mut ts = start_ms;
    while ts <= end_ms {
        steps.push(ts);
        ts = match ts.checked_add(step_ms) {
            Some(next) => next,
            None => break,
        };
    }
    steps
}

impl Ctx<'_> {
    /// Evaluates a range query step by step: an instant evaluation per step, the output
    /// samples filed by their label sets. The reference [`range::eval`] must agree with.
    pub(crate) fn eval_steps(&self, expr: &Expr, steps: &[i64]) -> Result<Vec<Series>, Error> {
        let mut out: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        for &ts in steps {
            self.check_deadline()?;
            match self.eval(expr, ts)? {
                Value::Scalar(v) => out.entry(Labels::default()).or_default().push((ts, v)),
                Value::Vector(v) => {
                    for s in v {
                        let points = out.entry(s.labels).or_default();
                        if points.last().is_some_and(|p| p.0 == ts) {
                            return Err(duplicate_labelset());
                        }
                        points.push((ts, s.v));
                    }
                }
                Value::String(_) | Value::Matrix(_) => {
                    return Err(Error::Execution(
                        "range query expression must be a scalar or instant vector".to_string(),
                    ));
                }
            }
        }
        let mut m: Vec<Series> = out
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect();
        m.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(m)
    }
}

/// Prometheus' checks on range query parameters.
pub(crate) fn check_range(
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    max_points: i64,
) -> Result<(), Error> {
    if end_ms < start_ms {
        return Err(Error::BadData(
            "end timestamp must not be before start time".to_string(),
        ));
    }
    if step_ms <= 0 {
        return Err(Error::BadData("zero or negative query resolution step widths are not accepted. Try a positive integer".to_string()));
    }
    if end_ms.saturating_sub(start_ms) / step_ms > max_points {
        return Err(Error::BadData(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            group_thousands(max_points)
        )));
    }
    Ok(())
}

fn group_thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn keeps_order(e: &Expr) -> bool {
    match e {
        Expr::Paren(inner) => keeps_order(inner),
        Expr::Call(c) => c.func == "sort" || c.func == "sort_desc",
        Expr::Aggregate(a) => matches!(a.op, crate::ast::AggOp::Topk | crate::ast::AggOp::Bottomk),
        _ => false,
    }
}

/// Fails when two elements share a label set; sorts by labels when `sort` is set.
fn check_unique(v: &mut [Sample], sort: bool) -> Result<(), Error> {
    if v.len() < 2 {
        return Ok(());
    }
    let dup = if sort {
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v.windows(2).any(|w| w[0].labels == w[1].labels)
    } else {
        let mut seen = std::collections::HashSet::with_capacity(v.len());
        !v.iter().all(|s| seen.insert(&s.labels))
    };
    if dup {
        return Err(duplicate_labelset());
    }
    Ok(())
}

fn duplicate_labelset() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".to_string())
}

/// The evaluation times a selection is loaded for.
#[derive(Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
    /// 0 for an instant query.
    step: i64,
}

/// Data loaded for one query, and the evaluation itself.
pub(crate) struct Ctx<'a> {
    pub(crate) engine: &'a Engine,
    data: HashMap<usize, Vec<Loaded>>,
    deadline: Option<Instant>,
}

fn key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

impl<'a> Ctx<'a> {
    pub(crate) fn prepare(
        engine: &'a Engine,
        storage: &dyn Storage,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Ctx<'a>, Error> {
        let mut ctx = Ctx {
            engine,
            data: HashMap::new(),
            deadline: engine.timeout.map(|t| Instant::now() + t),
        };
        let mut loaded = 0usize;
        let w = Window { start, end, step };
        ctx.load(storage, expr, w, None, &mut loaded)?;
        Ok(ctx)
    }

    /// Loads every selector's series for evaluation times in `[w.start, w.end]`;
    /// `func` is the call `e` is an argument of.
    fn load(
        &mut self,
        storage: &dyn Storage,
        e: &Expr,
        w: Window,
        func: Option<&str>,
        loaded: &mut usize,
    ) -> Result<(), Error> {
        let Window { start, end, step } = w;
        let mut fetch = |vs: &VectorSelector, before: i64, range_ms: i64| -> Result<(), Error> {
            let from = start.saturating_sub(vs.offset_ms).saturating_sub(before);
            let to = end.saturating_sub(vs.offset_ms);
            let hints = SelectHints {
                func,
                range_ms,
                step_ms: step,
            };
            let mut series = storage.select_hinted(&vs.all_matchers(), from, to, &hints)?;
            for s in &mut series {
                if !s.samples.is_sorted_by_key(|p| p.0) {
                    s.samples.sort_by_key(|p| p.0);
                }
                *loaded += s.samples.len();
            }
            if *loaded > self.engine.max_samples {
                return Err(Error::Execution(
                    "query processing would load too many samples into memory in query execution"
                        .to_string(),
                ));
            }
            let loaded = series
                .into_iter()
                .map(|s| Loaded {
                    unnamed: s.labels.without_metric_name(),
                    series: s,
                })
                .collect();
            self.data.insert(key(vs), loaded);
            Ok(())
        };
        match e {
            Expr::Number(_) | Expr::String(_) => Ok(()),
            Expr::Vector(vs) => fetch(vs, self.engine.lookback_delta_ms, 0),
            Expr::Matrix(ms) => fetch(&ms.selector, ms.range_ms, ms.range_ms),
            Expr::Subquery(sq) => {
                let step = sq.step_ms.unwrap_or(self.engine.default_subquery_step_ms);
                let from = start
                    .saturating_sub(sq.offset_ms)
                    .saturating_sub(sq.range_ms)
                    .saturating_sub(step);
                let to = end.saturating_sub(sq.offset_ms);
                let w = Window {
                    start: from,
                    end: to,
                    step,
                };
                self.load(storage, &sq.expr, w, None, loaded)
            }
            Expr::Paren(inner) => self.load(storage, inner, w, func, loaded),
            Expr::Neg(inner) => self.load(storage, inner, w, None, loaded),
            Expr::Binary(b) => {
                self.load(storage, &b.lhs, w, None, loaded)?;
                self.load(storage, &b.rhs, w, None, loaded)
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.load(storage, p, w, None, loaded)?;
                }
                self.load(storage, &a.expr, w, None, loaded)
            }
            Expr::Call(c) => c
                .args
                .iter()
                .try_for_each(|a| self.load(storage, a, w, Some(c.func.as_str()), loaded)),
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<(), Error> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err(Error::Timeout(
                "query timed out in expression evaluation".to_string(),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn series(&self, vs: &VectorSelector) -> &[Loaded] {
        self.data.get(&key(vs)).map_or(&[], Vec::as_slice)
    }

    /// Evaluates `e` at `ts`.
    pub(crate) fn eval(&self, e: &Expr, ts: i64) -> Result<Value<'_>, Error> {
        match e {
            Expr::Number(v) => Ok(Value::Scalar(*v)),
            Expr::String(s) => Ok(Value::String(s.clone())),
            Expr::Paren(inner) => self.eval(inner, ts),
            Expr::Vector(vs) => {
                let t_end = ts.saturating_sub(vs.offset_ms);
                let t_start = t_end.saturating_sub(self.engine.lookback_delta_ms);
                let mut out = Vec::new();
                for Loaded { series: s, .. } in self.series(vs) {
                    let i = s.samples.partition_point(|p| p.0 <= t_end);
                    if i > 0 && s.samples[i - 1].0 > t_start && !is_stale_marker(s.samples[i - 1].1)
                    {
                        let (t, v) = s.samples[i - 1];
                        out.push(Sample {
                            labels: s.labels.clone(),
                            t,
                            v,
                        });
                    }
                }
                Ok(Value::Vector(out))
            }
            Expr::Matrix(ms) => {
                let t_end = ts.saturating_sub(ms.selector.offset_ms);
                let t_start = t_end.saturating_sub(ms.range_ms);
                let mut out = Vec::new();
                for l in self.series(&ms.selector) {
                    let all = &l.series.samples;
                    let window = &all[all.partition_point(|p| p.0 <= t_start)
                        ..all.partition_point(|p| p.0 <= t_end)];
                    let samples = if window.iter().any(|p| is_stale_marker(p.1)) {
                        Cow::Owned(
                            window
                                .iter()
                                .filter(|p| !is_stale_marker(p.1))
                                .copied()
                                .collect(),
                        )
                    } else {
                        Cow::Borrowed(window)
                    };
                    if !samples.is_empty() {
                        out.push(RangeSeries {
                            labels: l.series.labels.clone(),
                            unnamed: l.unnamed.clone(),
                            samples,
                        });
                    }
                }
                Ok(Value::Matrix(out))
            }
            Expr::Subquery(sq) => {
                self.check_deadline()?;
                let step = sq.step_ms.unwrap_or(self.engine.default_subquery_step_ms);
                let t_end = ts.saturating_sub(sq.offset_ms);
                let t_start = t_end.saturating_sub(sq.range_ms);
                // Evaluation times are multiples of the step, inside (t_start, t_end].
                let step = step.max(1);
                let mut t = t_start
                    .div_euclid(step)
                    .checked_mul(step)
                    .unwrap_or(t_start);
                if t <= t_start {
                    t = t.saturating_add(step);
                }
                if t_end.saturating_sub(t) / step > self.engine.max_points_per_series {
                    return Err(Error::Execution("subquery has too many steps".to_string()));
                }
                let mut out: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
                while t <= t_end {
                    match self.eval(&sq.expr, t)? {
                        Value::Vector(v) => {
                            for s in v {
                                out.entry(s.labels).or_default().push((t, s.v));
                            }
                        }
                        Value::Scalar(v) => out.entry(Labels::default()).or_default().push((t, v)),
                        _ => {
                            return Err(Error::Execution(
                                "subquery is only allowed on instant vector".to_string(),
                            ));
                        }
                    }
                    t = match t.checked_add(step) {
                        Some(next) => next,
                        None => break,
                    };
                }
                let m = out
                    .into_iter()
                    .map(|(labels, samples)| RangeSeries {
                        unnamed: labels.without_metric_name(),
                        labels,
                        samples: Cow::Owned(samples),
                    })
                    .collect();
                Ok(Value::Matrix(m))
            }
            Expr::Neg(inner) => Ok(match self.eval(inner, ts)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(v) => Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_metric_name(),
                            t: ts,
                            v: -s.v,
                        })
                        .collect(),
                ),
                other => other,
            }),
            Expr::Binary(b) => {
                let lhs = self.eval(&b.lhs, ts)?;
                let rhs = self.eval(&b.rhs, ts)?;
                binary::eval(b, lhs, rhs, ts)
            }
            Expr::Aggregate(a) => {
                self.check_deadline()?;
                aggregate::eval(self, a, ts)
            }
            Expr::Call(c) => functions::call(self, c, ts),
        }
    }
}
