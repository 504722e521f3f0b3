//! One metric's recommendation: HPA's `ceil(count × value / target)` with its tolerance and its
//! treatment of unready and missing instances (`replica_calculator.go`).
//!
//! Per instance the value is the mean of its samples in the last complete, epoch-aligned bucket
//! of `metricResolutionSeconds`. Then, as HPA's `groupPods` / `GetResourceReplicas` do:
//! - a `Starting` instance is unready, whatever it reports;
//! - an instance without a sample in the bucket is missing;
//! - while younger than `initializationSeconds`, an instance is unready unless it is `Ready` and
//!   its bucket starts after it became ready (plus `warmupSeconds`: 5 s by default, 0 in the `hpa`
//!   preset; a Slipway extension for apps that burn CPU after their health check passes); afterwards it is
//!   unready only if it is not `Ready` and never was (an overloaded instance failing its checks
//!   still counts, or overload would hide itself);
//! - the ratio is taken over ready instances; inside the tolerance nothing changes;
//! - if there are unready instances and the ratio is above 1, they count as 0 (HPA: "0% on a
//!   scale-up"), otherwise they are left out;
//! - missing instances count as 0 on a scale-up and as 100 % (cpu, memory) or the target (other
//!   metrics) on a scale-down;
//! - after substitution the ratio is recomputed; if it is now inside the tolerance or points the
//!   other way, the count is kept.
//!
//! HPA applies the readiness rule to CPU only; Slipway applies it to every per-instance metric,
//! because warming instances also report unrepresentative memory and latency, and the proxy sends
//! unready instances no requests. PromQL values are app-wide and follow HPA's `AverageValue`:
//! `ceil(value / target)`.

use crate::input::{Input, Instance, Readiness};
use crate::policy::{Metric, Signal};
use crate::report::{Counted, InstanceValue, MetricReport, fmt_num};
use model::Timestamp;

/// Guards `ceil` against floating-point noise (`2 × 0.1 × 30 = 6.000000000000001`).
const EPS: f64 = 1e-9;

pub(crate) fn ceil_count(x: f64) -> u32 {
    (x - EPS).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// The bucket `(start, end]` the values are taken from.
pub(crate) fn bucket(now: Timestamp, resolution_ms: i64) -> (i64, i64) {
    let r = resolution_ms.max(1);
    let end = now.0.div_euclid(r) * r;
    (end - r, end)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

fn instance_value(i: &Instance, signal: Signal, (start, end): (i64, i64)) -> Option<f64> {
    mean(
        i.samples
            .iter()
            .filter(|s| {
                s.signal == signal && s.at.0 > start && s.at.0 <= end && s.value.is_finite()
            })
            .map(|s| s.value),
    )
}

fn is_unready(
    i: &Instance,
    now: Timestamp,
    bucket_start: i64,
    (init_ms, warmup_ms): (i64, i64),
) -> bool {
    if i.readiness == Readiness::Starting {
        return true;
    }
    if now.0 - i.started_at.0 < init_ms.max(warmup_ms) {
        i.readiness != Readiness::Ready
            || i.ready_since.is_none_or(|r| bucket_start < r.0 + warmup_ms)
    } else {
        i.readiness != Readiness::Ready && i.ready_since.is_none()
    }
}

/// Evaluates one metric of `input` at `now`.
pub(crate) fn evaluate(input: &Input, metric: &Metric, now: Timestamp) -> MetricReport {
    let b = &input.policy.behavior;
    let window = bucket(now, crate::policy::secs_to_ms(b.metric_resolution_seconds));
    let mut report = MetricReport::new(metric);
    match metric.signal() {
        Some(signal) => per_instance(input, metric, signal, window, now, &mut report),
        None => app_wide(input, metric, window, &mut report),
    }
    if let (Some(p), Some(ratio)) = (&b.panic, report.effective_ratio()) {
        report.panic = ratio >= p.threshold - EPS;
    }
    report
}

fn per_instance(
    input: &Input,
    metric: &Metric,
    signal: Signal,
    window: (i64, i64),
    now: Timestamp,
    report: &mut MetricReport,
) {
    let b = &input.policy.behavior;
    let target = metric.target();
    let current = input.current;
    let periods = (
        crate::policy::secs_to_ms(b.initialization_seconds),
        crate::policy::secs_to_ms(b.warmup_seconds),
    );
    for i in &input.instances {
        let value = instance_value(i, signal, window);
        let counted = if i.readiness == Readiness::Starting {
            Counted::Unready
        } else if value.is_none() {
            Counted::Missing
        } else if is_unready(i, now, window.0, periods) {
            Counted::Unready
        } else {
            Counted::Ready
        };
        report.instances.push(InstanceValue {
            id: i.id.clone(),
            value,
            counted,
            used: None,
        });
    }
    let ready: Vec<f64> = report
        .instances
        .iter()
        .filter(|v| v.counted == Counted::Ready)
        .filter_map(|v| v.value)
        .collect();
    let n_ready = ready.len() as u32;
    let Some(avg) = mean(ready.iter().copied()) else {
        report.formula = "no ready instance has a sample".into();
        return;
    };
    let ratio = avg / target;
    report.ratio = Some(ratio);
    let n_unready = report.count(Counted::Unready);
    let n_missing = report.count(Counted::Missing);
    let scale_up_with_unready = n_unready > 0 && ratio > 1.0;
    for v in &mut report.instances {
        if v.counted == Counted::Ready {
            v.used = v.value;
        }
    }
    let unit = metric.unit();
    if !scale_up_with_unready && n_missing == 0 {
        if (1.0 - ratio).abs() <= b.tolerance {
            report.recommendation = Some(current);
            report.within_tolerance = true;
            report.formula = format!(
                "mean {}{unit} on {n_ready} ready / target {} = {:.2}, within tolerance {}: keep {current}",
                fmt_num(avg),
                fmt_num(target),
                ratio,
                fmt_num(b.tolerance)
            );
        } else {
            let rec = ceil_count(ratio * f64::from(n_ready));
            report.recommendation = Some(rec);
            report.formula = format!(
                "ceil({n_ready} ready × {}/{}) = ceil({n_ready} × {:.2}) = {rec}",
                fmt_num(avg),
                fmt_num(target),
                ratio
            );
        }
        return;
    }
    // HPA's substitution for missing and unready instances, then a second look.
    let fallback_down = match metric {
        Metric::Cpu { .. } | Metric::Memory { .. } => target.max(100.0),
        _ => target,
    };
    let mut notes = Vec::new();
    if n_missing > 0 {
        let sub = if ratio < 1.0 {
            Some(fallback_down)
        } else if ratio > 1.0 {
            Some(0.0)
        } else {
            None
        };
        if let Some(sub) = sub {
            for v in &mut report.instances {
                if v.counted == Counted::Missing {
                    v.used = Some(sub);
                }
            }
            notes.push(format!("{n_missing} missing as {}", fmt_num(sub)));
        }
    }
    if scale_up_with_unready {
        for v in &mut report.instances {
            if v.counted == Counted::Unready {
                v.used = Some(0.0);
            }
        }
        notes.push(format!("{n_unready} unready as 0"));
    } else if n_unready > 0 {
        notes.push(format!("{n_unready} unready left out"));
    }
    let used: Vec<f64> = report.instances.iter().filter_map(|v| v.used).collect();
    let n_used = used.len() as u32;
    let new_avg = mean(used.iter().copied()).unwrap_or(0.0);
    let new_ratio = new_avg / target;
    report.adjusted_ratio = Some(new_ratio);
    let notes = notes.join(", ");
    let flips = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= b.tolerance || flips {
        report.recommendation = Some(current);
        report.within_tolerance = !flips;
        let why = if flips {
            "direction flips"
        } else {
            "within tolerance"
        };
        report.formula = format!(
            "ready mean {}{unit} / target {} = {:.2}; with {notes}: {:.2}, {why}: keep {current}",
            fmt_num(avg),
            fmt_num(target),
            ratio,
            new_ratio
        );
        return;
    }
    let mut rec = ceil_count(new_ratio * f64::from(n_used));
    if (new_ratio < 1.0 && rec > current) || (new_ratio > 1.0 && rec < current) {
        rec = current;
    }
    report.recommendation = Some(rec);
    report.formula = format!(
        "ceil({n_used} × {}/{}) = ceil({n_used} × {:.2}) = {rec} ({notes})",
        fmt_num(new_avg),
        fmt_num(target),
        new_ratio
    );
}

fn app_wide(input: &Input, metric: &Metric, window: (i64, i64), report: &mut MetricReport) {
    let Metric::Promql { query, target } = metric else {
        return;
    };
    let b = &input.policy.behavior;
    let value = mean(
        input
            .queries
            .iter()
            .filter(|q| &q.query == query && q.at.0 > window.0 && q.at.0 <= window.1)
            .filter(|q| q.value.is_finite())
            .map(|q| q.value),
    );
    let Some(value) = value else {
        report.formula = "no value for the query".into();
        return;
    };
    report.value = Some(value);
    let current = input.current;
    let ratio = value / (target * f64::from(current.max(1)));
    report.ratio = Some(ratio);
    if (1.0 - ratio).abs() <= b.tolerance {
        report.recommendation = Some(current);
        report.within_tolerance = true;
        report.formula = format!(
            "{} / ({} × {current}) = {ratio:.2}, within tolerance {}: keep {current}",
            fmt_num(value),
            fmt_num(*target),
            fmt_num(b.tolerance)
        );
    } else {
        let rec = ceil_count(value / target);
        report.recommendation = Some(rec);
        report.formula = format!("ceil({} / {}) = {rec}", fmt_num(value), fmt_num(*target));
    }
}
