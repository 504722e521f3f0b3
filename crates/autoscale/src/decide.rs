//! The decision: a pure function from a snapshot, the controller's memory and the clock to an
//! action, its reasons and the next memory.
//!
//! Order of the rules:
//! 1. every metric is evaluated (also while waiting, so the reasons always carry the numbers);
//! 2. a deployment in progress: hold, record nothing, and start watching afresh afterwards;
//! 3. the combined recommendation (mode any / all), clamped to `[min, max]`, is recorded; after
//!    a gap of more than three loop periods (or buckets) without one, watching starts afresh;
//! 4. a count outside `[min, max]` is corrected at once (this beats the manual pause);
//! 5. a manual scale pauses everything else for `manualPauseSeconds`;
//! 6. scale-up: once every recommendation of the breach window (`breachSeconds`, or panic's) is
//!    above the count, to the lowest of them, within the step limits (panic: its rate);
//! 7. scale-down: once the autoscaler has watched a whole stabilisation window and the highest
//!    recommendation in it is below the count, to that highest, within the step limits;
//! 8. `cooldownSeconds` keeps a change from reversing the previous one too soon.

use crate::evaluate::evaluate;
use crate::input::{Change, ControllerState, Input, Recommendation};
use crate::policy::{Mode, Policy, SelectPolicy, StepKind, StepPolicy, secs_to_ms};
use crate::report::{Action, Decision, MetricReport, Reason};
use model::Timestamp;

/// Decides what to do with one app at `now`. Pure and deterministic: the same arguments give the
/// same result. The returned state replaces `state` (store it even when nothing changes).
pub fn decide(
    input: &Input,
    state: &ControllerState,
    now: Timestamp,
) -> (Decision, ControllerState) {
    let policy = &input.policy;
    let current = input.current;
    let mut next = prune(state, policy, now);
    let metrics: Vec<MetricReport> = policy
        .metrics
        .iter()
        .map(|m| evaluate(input, m, now))
        .collect();
    let mut d = Decision {
        at: now,
        current,
        target: current,
        action: Action::Hold,
        panic: false,
        mode: policy.mode,
        recommendation: None,
        metrics,
        reasons: Vec::new(),
    };

    let combined = combine(policy.mode, &d.metrics, current);
    if let Some(dep) = input.deployment {
        // Shown, not recorded: instances come and go during a deployment. A caller that merges
        // scaling into deployments may use it as the deployment's count.
        d.recommendation = combined
            .recommendation
            .map(|r| r.clamp(policy.min, policy.max));
        d.reasons.push(Reason::Deployment {
            target_instances: dep.target_instances,
        });
        next.watching_since = None;
        return (d, next);
    }
    if let Some(rec) = combined.recommendation {
        let clamped = rec.clamp(policy.min, policy.max);
        if clamped != rec && rec != current {
            d.reasons.push(Reason::Clamped {
                recommended: rec,
                to: clamped,
            });
        }
        d.recommendation = Some(clamped);
        next.recommendations.retain(|r| r.at != now);
        // A gap in the data (or a fresh state) restarts the watch: the scale-down window must
        // then fill with new recommendations before it may act.
        let gap = next
            .recommendations
            .last()
            .is_none_or(|last| now.0 - last.at.0 > gap_ms(policy));
        if gap || next.watching_since.is_none() {
            next.watching_since = Some(now);
        }
        next.recommendations.push(Recommendation {
            at: now,
            instances: clamped,
        });
    }

    if current < policy.min || current > policy.max {
        let target = current.clamp(policy.min, policy.max);
        d.reasons.insert(
            0,
            if current < policy.min {
                Reason::BelowMin { min: policy.min }
            } else {
                Reason::AboveMax { max: policy.max }
            },
        );
        return finish(d, next, target);
    }

    if let Some(at) = input.manual_scale_at {
        let left = at.0 + secs_to_ms(policy.behavior.manual_pause_seconds) - now.0;
        if left > 0 {
            d.reasons.insert(
                0,
                Reason::ManualPause {
                    at,
                    remaining_seconds: ms_to_secs(left),
                },
            );
            return (d, next);
        }
    }

    d.reasons.extend(combined.notes);
    let Some(rec) = d.recommendation else {
        if d.reasons.is_empty() {
            d.reasons.push(Reason::NoData);
        }
        return (d, next);
    };
    if rec == current {
        if d.reasons.is_empty() {
            d.reasons.push(Reason::Steady);
        }
        return (d, next);
    }
    if rec > current {
        d.panic = policy.behavior.panic.is_some() && combined.panic;
        match scale_up(&mut d, &next, policy, now) {
            Some(target) => finish(d, next, target),
            None => (d, next),
        }
    } else {
        match scale_down(&mut d, &next, policy, now) {
            Some(target) => finish(d, next, target),
            None => (d, next),
        }
    }
}

/// The longest pause between recommendations that still counts as watching without a gap:
/// three loop periods or three metric buckets, whichever is longer.
fn gap_ms(policy: &Policy) -> i64 {
    let b = &policy.behavior;
    3 * secs_to_ms(b.sync_period_seconds.max(b.metric_resolution_seconds))
}

/// Sets the target and action, and records a change.
fn finish(mut d: Decision, mut next: ControllerState, target: u32) -> (Decision, ControllerState) {
    d.target = target;
    d.action = match target.cmp(&d.current) {
        std::cmp::Ordering::Greater => Action::ScaleUp,
        std::cmp::Ordering::Less => Action::ScaleDown,
        std::cmp::Ordering::Equal => Action::Hold,
    };
    if target != d.current {
        next.changes.push(Change {
            at: d.at,
            from: d.current,
            to: target,
        });
    }
    (d, next)
}

/// Drops memory no rule can look at any more (and anything from the future).
fn prune(state: &ControllerState, policy: &Policy, now: Timestamp) -> ControllerState {
    let keep_recs = now.0 - policy.history_ms();
    let keep_changes = now.0 - policy.events_ms();
    ControllerState {
        recommendations: state
            .recommendations
            .iter()
            .filter(|r| r.at.0 >= keep_recs && r.at <= now)
            .copied()
            .collect(),
        changes: state
            .changes
            .iter()
            .filter(|c| c.at.0 >= keep_changes && c.at <= now)
            .copied()
            .collect(),
        watching_since: state.watching_since.filter(|w| *w <= now),
    }
}

struct Combined {
    recommendation: Option<u32>,
    panic: bool,
    notes: Vec<Reason>,
}

/// Mode any: the highest recommendation; a metric without data blocks scale-down (HPA).
/// Mode all: up only if all are above (to the lowest), down only if all are below (to the
/// highest); a metric without data, or disagreement, holds.
fn combine(mode: Mode, metrics: &[MetricReport], current: u32) -> Combined {
    let recs: Vec<(u32, bool)> = metrics
        .iter()
        .filter_map(|m| m.recommendation.map(|r| (r, m.panic)))
        .collect();
    let missing: Vec<String> = metrics
        .iter()
        .filter(|m| m.recommendation.is_none())
        .map(|m| m.query.clone().unwrap_or_else(|| m.metric.clone()))
        .collect();
    let mut c = Combined {
        recommendation: None,
        panic: false,
        notes: Vec::new(),
    };
    if recs.is_empty() {
        return c;
    }
    let highest = recs.iter().map(|r| r.0).max().unwrap_or(current);
    let lowest = recs.iter().map(|r| r.0).min().unwrap_or(current);
    match mode {
        Mode::Any => {
            let mut rec = highest;
            if !missing.is_empty() && rec < current {
                rec = current;
                c.notes.push(Reason::MissingMetrics { metrics: missing });
            }
            c.recommendation = Some(rec);
            c.panic = recs.iter().any(|(r, p)| *p && *r > current);
        }
        Mode::All => {
            if !missing.is_empty() {
                c.recommendation = Some(current);
                c.notes.push(Reason::MissingMetrics { metrics: missing });
            } else if lowest > current {
                c.recommendation = Some(lowest);
                c.panic = recs.iter().all(|(_, p)| *p);
            } else if highest < current {
                c.recommendation = Some(highest);
            } else {
                c.recommendation = Some(current);
                if highest != lowest {
                    c.notes.push(Reason::MetricsDisagree);
                }
            }
        }
    }
    c
}

fn ms_to_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The last change, if it went the other way and is inside the cooldown: seconds left.
fn cooldown_left(
    state: &ControllerState,
    policy: &Policy,
    up: bool,
    now: Timestamp,
) -> Option<i64> {
    let last = state.changes.last()?;
    let last_up = last.to > last.from;
    let left = last.at.0 + secs_to_ms(policy.behavior.cooldown_seconds) - now.0;
    (last_up != up && left > 0).then_some(left)
}

fn scale_up(
    d: &mut Decision,
    state: &ControllerState,
    policy: &Policy,
    now: Timestamp,
) -> Option<u32> {
    let b = &policy.behavior;
    let current = d.current;
    let (window_s, rate) = match (&b.panic, d.panic) {
        (Some(p), true) => (p.breach_seconds, Some(p.max_scale_up_rate)),
        _ => (b.scale_up.breach_seconds, None),
    };
    let window = secs_to_ms(window_s);
    // The breach began with the oldest recommendation of the trailing run above the count; a
    // gap in the recommendations (a deployment, a data outage) ends the run.
    let mut run_start = now.0;
    for r in state.recommendations.iter().rev() {
        if r.instances <= current || run_start - r.at.0 > gap_ms(policy) {
            break;
        }
        run_start = r.at.0;
    }
    let held = now.0 - run_start;
    // Evaluations follow the collector's rounds, whose spacing jitters around the sync
    // period: a breach seen by two consecutive rounds 0.98 s apart holds a 1 s window.
    if held + b.jitter_slack_ms() < window {
        d.reasons.push(Reason::BreachNotHeld {
            held_seconds: ms_to_secs(held),
            window_seconds: window_s,
            panic: d.panic,
        });
        return None;
    }
    // Panic (Knative): the highest recommendation of its short window, so the first,
    // partly measured bucket after a load step never holds the step back to a second
    // decision; otherwise the lowest (HPA's scale-up stabilisation).
    let in_window = state
        .recommendations
        .iter()
        .filter(|r| r.at.0 >= now.0 - window)
        .map(|r| r.instances);
    let lowest = if rate.is_some() {
        in_window.max()
    } else {
        in_window.min()
    }
    .unwrap_or(current);
    d.reasons.push(Reason::BreachHeld {
        held_seconds: ms_to_secs(held),
        window_seconds: window_s,
        panic: d.panic,
        lowest,
    });
    if let Some(left) = cooldown_left(state, policy, true, now) {
        d.reasons.push(Reason::Cooldown {
            remaining_seconds: ms_to_secs(left),
        });
        return None;
    }
    let limit = match rate {
        Some(rate) => Some((
            crate::evaluate::ceil_count(f64::from(current) * rate),
            format!("panic rate {}", crate::report::fmt_num(rate)),
        )),
        None => match step_limit(
            &b.scale_up.policies,
            b.scale_up.select_policy,
            state,
            current,
            true,
            now,
        ) {
            Limit::Disabled => {
                d.reasons.push(Reason::DirectionDisabled);
                return None;
            }
            Limit::None => None,
            Limit::To(n, rule) => Some((n, rule)),
        },
    };
    let mut target = lowest.min(policy.max);
    if let Some((limit, rule)) = limit
        && limit < target
    {
        target = limit.max(current);
        d.reasons.push(Reason::StepLimit { limit, rule });
    }
    Some(target)
}

fn scale_down(
    d: &mut Decision,
    state: &ControllerState,
    policy: &Policy,
    now: Timestamp,
) -> Option<u32> {
    let b = &policy.behavior;
    let current = d.current;
    let window_s = b.scale_down.stabilization_seconds;
    let window = secs_to_ms(window_s);
    let watched = state.watching_since.map_or(0, |w| now.0 - w.0);
    if watched < window {
        d.reasons.push(Reason::NotWatchedLongEnough {
            watched_seconds: ms_to_secs(watched),
            window_seconds: window_s,
        });
        return None;
    }
    let highest = state
        .recommendations
        .iter()
        .filter(|r| r.at.0 >= now.0 - window)
        .map(|r| r.instances)
        .max()
        .unwrap_or(current);
    if highest >= current {
        d.reasons.push(Reason::ScaleDownWaits {
            highest,
            window_seconds: window_s,
        });
        return None;
    }
    // One step down, not a staircase: while the recommendations still fall (a load drop
    // shows over a few buckets), the window's highest is a value in passing; wait until the
    // recent half of the window holds the highest again.
    let recent = state
        .recommendations
        .iter()
        .filter(|r| r.at.0 >= now.0 - window / 2)
        .map(|r| r.instances)
        .max()
        .unwrap_or(highest);
    // The `hpa` preset reproduces HPA, which follows the fall (its max-of-window only).
    if recent < highest && b.preset != Some(crate::Preset::Hpa) {
        d.reasons.push(Reason::StillFalling {
            highest,
            recent,
            window_seconds: window_s,
        });
        return None;
    }
    d.reasons.push(Reason::WindowHighest {
        highest,
        window_seconds: window_s,
    });
    if let Some(left) = cooldown_left(state, policy, false, now) {
        d.reasons.push(Reason::Cooldown {
            remaining_seconds: ms_to_secs(left),
        });
        return None;
    }
    let mut target = highest.max(policy.min);
    match step_limit(
        &b.scale_down.policies,
        b.scale_down.select_policy,
        state,
        current,
        false,
        now,
    ) {
        Limit::Disabled => {
            d.reasons.push(Reason::DirectionDisabled);
            return None;
        }
        Limit::None => {}
        Limit::To(limit, rule) => {
            if limit > target {
                target = limit.min(current);
                d.reasons.push(Reason::StepLimit { limit, rule });
            }
        }
    }
    Some(target)
}

enum Limit {
    None,
    Disabled,
    To(u32, String),
}

/// HPA's step limits: each policy allows a change relative to the count at the start of its
/// period (the current count minus this direction's changes within the period).
fn step_limit(
    policies: &[StepPolicy],
    select: SelectPolicy,
    state: &ControllerState,
    current: u32,
    up: bool,
    now: Timestamp,
) -> Limit {
    if select == SelectPolicy::Disabled {
        return Limit::Disabled;
    }
    let limits = policies.iter().map(|p| {
        let since = now.0 - i64::from(p.period_seconds) * 1000;
        let moved: u32 = state
            .changes
            .iter()
            .filter(|c| c.at.0 > since && (c.to > c.from) == up)
            .map(|c| c.to.abs_diff(c.from))
            .sum();
        let rule = format!(
            "{} {} / {} s",
            match p.kind {
                StepKind::Pods => "pods",
                StepKind::Percent => "percent",
            },
            p.value,
            p.period_seconds
        );
        let limit = if up {
            let start = current.saturating_sub(moved);
            match p.kind {
                StepKind::Pods => start.saturating_add(p.value),
                StepKind::Percent => crate::evaluate::ceil_count(
                    f64::from(start) * (1.0 + f64::from(p.value) / 100.0),
                ),
            }
        } else {
            let start = current.saturating_add(moved);
            match p.kind {
                StepKind::Pods => start.saturating_sub(p.value),
                StepKind::Percent => {
                    (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)).max(0.0) as u32
                }
            }
        };
        (limit, rule)
    });
    // Max: the policy allowing the largest change; Min: the smallest.
    let largest_change = select == SelectPolicy::Max;
    let chosen = if up == largest_change {
        limits.max_by_key(|(l, _)| *l)
    } else {
        limits.min_by_key(|(l, _)| *l)
    };
    chosen.map_or(Limit::None, |(l, r)| Limit::To(l, r))
}
