//! Autoscaling policies: the bounds, the metrics to watch and how fast to move.
//!
//! A [`Policy`] is always complete: every `behavior` field is filled in, from the Slipway
//! defaults or from a [`Preset`], then overridden by what the user wrote. Parsing and validation
//! live in `parse.rs` ([`Policy::from_json`]); label policies in `labels.rs`.
//! `Serialize` writes the complete form, and parsing that form gives the same policy back.

use serde::{Serialize, Serializer};

/// An app's autoscaling policy, as registered with `PUT /api/v1/autoscalers/{app id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Fewest instances; always at least 1.
    pub min: u32,
    /// Most instances.
    pub max: u32,
    /// What to watch; at least one.
    pub metrics: Vec<Metric>,
    /// How the metrics' recommendations combine.
    pub mode: Mode,
    /// Timing, tolerance and step limits.
    pub behavior: Behavior,
}

/// One metric with its target.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Metric {
    /// CPU use per instance in percent of the app's `cpus` (`target: 60` = 0.15 of `cpus: 0.25`).
    Cpu {
        /// Target utilisation, percent (0, 100].
        target: f64,
    },
    /// Memory use per instance in percent of the app's `mem`.
    Memory {
        /// Target utilisation, percent (0, 100].
        target: f64,
    },
    /// Requests per second per instance, as counted by the edge proxy.
    Rps {
        /// Target requests/s per instance.
        target: f64,
    },
    /// 95th percentile latency per instance, milliseconds.
    LatencyP95 {
        /// Target p95 in ms.
        target: f64,
    },
    /// Any PromQL expression over the app; its value is divided among the ready instances
    /// (HPA's `AverageValue`): the recommendation is `ceil(value / target)`.
    Promql {
        /// The expression, checked by the caller's parser.
        query: String,
        /// Target value per instance.
        target: f64,
    },
}

impl Metric {
    /// The JSON `type` name (`cpu`, `latencyP95`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Cpu { .. } => "cpu",
            Metric::Memory { .. } => "memory",
            Metric::Rps { .. } => "rps",
            Metric::LatencyP95 { .. } => "latencyP95",
            Metric::Promql { .. } => "promql",
        }
    }

    /// The target value.
    pub fn target(&self) -> f64 {
        match self {
            Metric::Cpu { target }
            | Metric::Memory { target }
            | Metric::Rps { target }
            | Metric::LatencyP95 { target }
            | Metric::Promql { target, .. } => *target,
        }
    }

    /// The per-instance signal this metric reads, or `None` for an app-level PromQL value.
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Metric::Cpu { .. } => Some(Signal::Cpu),
            Metric::Memory { .. } => Some(Signal::Memory),
            Metric::Rps { .. } => Some(Signal::Rps),
            Metric::LatencyP95 { .. } => Some(Signal::LatencyP95),
            Metric::Promql { .. } => None,
        }
    }

    /// Unit suffix for human-readable reasons.
    pub fn unit(&self) -> &'static str {
        match self {
            Metric::Cpu { .. } | Metric::Memory { .. } => "%",
            Metric::Rps { .. } => " req/s",
            Metric::LatencyP95 { .. } => " ms",
            Metric::Promql { .. } => "",
        }
    }
}

/// A per-instance measurement the collector and the proxy provide, already in the metric's unit.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum Signal {
    /// Percent of the app's `cpus` (1 core used with `cpus: 0.5` is 200). Usage saturates at the
    /// quota, so a 3× step shows as at most 100/target; a collector that adds throttled time
    /// (demand, not usage) lets CPU policies solve big steps in one decision too.
    Cpu,
    /// Percent of the app's `mem`.
    Memory,
    /// Requests per second served.
    Rps,
    /// p95 latency in ms.
    LatencyP95,
}

/// How per-metric recommendations combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The seed's OR, done right: the highest recommendation wins, so one metric asking for more
    /// instances is never outvoted by another asking for fewer.
    #[default]
    Any,
    /// The seed's AND: scale up only when every metric asks for more (to the lowest of their
    /// counts), scale down only when every metric asks for fewer (to the highest); otherwise hold.
    All,
}

/// A named set of behavior defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Preset {
    /// Kubernetes HPA's default timing: 15 s loop, 15 s metrics, 5 min scale-down window, 10 %
    /// tolerance, scale-up by at most 100 % or 4 pods per 15 s, no panic mode.
    Hpa,
}

/// Timing, tolerance and step limits. All durations are seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// The preset the other fields started from (`None`: Slipway's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// How often the controller should call `decide`.
    pub sync_period_seconds: f64,
    /// Each instance's value is its mean over the last complete, epoch-aligned bucket of this
    /// length; an instance without a sample in it is "missing".
    pub metric_resolution_seconds: f64,
    /// Dead band: no change while `|1 - value/target| <= tolerance`.
    pub tolerance: f64,
    /// Scale-up rules.
    pub scale_up: ScaleUp,
    /// Scale-down rules.
    pub scale_down: ScaleDown,
    /// Panic mode (Knative); `null` turns it off.
    #[serde(serialize_with = "panic_or_null")]
    pub panic: Option<Panic>,
    /// HPA's `cpu-initialization-period`: while an instance is younger than this, samples taken
    /// before it became ready (plus one resolution bucket) do not count.
    pub initialization_seconds: f64,
    /// For this long after an instance became ready its samples still count as unready (GCE's
    /// initialization period, for apps that burn CPU after their health check passes). Default
    /// 5 s; the `hpa` preset has 0, as HPA.
    pub warmup_seconds: f64,
    /// After a person scales the app, the autoscaler changes nothing for this long.
    pub manual_pause_seconds: f64,
    /// After an autoscaler change, a change in the opposite direction waits this long.
    pub cooldown_seconds: f64,
}

fn panic_or_null<S: Serializer>(p: &Option<Panic>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => p.serialize(s),
        None => s.serialize_none(),
    }
}

/// Scale-up rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUp {
    /// The recommendation must stay above the current count this long before acting; the new
    /// count is the lowest recommendation in that window (HPA's scale-up stabilisation).
    pub breach_seconds: f64,
    /// Step limits, as HPA's `behavior.scaleUp.policies`.
    pub policies: Vec<StepPolicy>,
    /// Which limit wins when several apply.
    pub select_policy: SelectPolicy,
}

/// Scale-down rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// The new count is the highest recommendation of this window, and the autoscaler must have
    /// watched the app for the whole window before it scales down.
    pub stabilization_seconds: f64,
    /// Step limits, as HPA's `behavior.scaleDown.policies`.
    pub policies: Vec<StepPolicy>,
    /// Which limit wins when several apply.
    pub select_policy: SelectPolicy,
}

/// A step limit: at most `value` pods, or `value` percent, of change per `periodSeconds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPolicy {
    /// Pods or percent.
    #[serde(rename = "type")]
    pub kind: StepKind,
    /// Amount per period (> 0).
    pub value: u32,
    /// Period length, 1..=1800 s.
    pub period_seconds: u32,
}

/// Unit of a [`StepPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// A number of instances.
    Pods,
    /// Percent of the count at the start of the period.
    Percent,
}

/// How several step limits combine (HPA's `selectPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No changes in this direction at all.
    Disabled,
}

/// Panic mode: when load reaches `threshold` × capacity, act after `breachSeconds` and allow up
/// to `maxScaleUpRate` × the current count in one decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Panic {
    /// Usage ratio (value / target over all instances, unready ones at 0) that starts panic; > 1.
    pub threshold: f64,
    /// Breach window in panic mode.
    pub breach_seconds: f64,
    /// In panic mode the step policies are replaced by `ceil(current × maxScaleUpRate)`.
    pub max_scale_up_rate: f64,
}

impl Default for Behavior {
    /// Slipway's defaults: 1 s samples and loop, act on a breach held 3 s (1 s in panic),
    /// scale down after 120 s at the highest recommendation of the window, new instances count
    /// 5 s after they become ready.
    fn default() -> Self {
        Behavior {
            preset: None,
            sync_period_seconds: 1.0,
            metric_resolution_seconds: 1.0,
            tolerance: 0.1,
            scale_up: ScaleUp {
                breach_seconds: 3.0,
                policies: vec![StepPolicy::percent(100, 10), StepPolicy::pods(4, 10)],
                select_policy: SelectPolicy::Max,
            },
            scale_down: ScaleDown {
                stabilization_seconds: 120.0,
                policies: vec![StepPolicy::percent(100, 15)],
                select_policy: SelectPolicy::Max,
            },
            panic: Some(Panic {
                threshold: 2.0,
                breach_seconds: 1.0,
                max_scale_up_rate: 10.0,
            }),
            initialization_seconds: 300.0,
            warmup_seconds: 5.0,
            manual_pause_seconds: 300.0,
            cooldown_seconds: 0.0,
        }
    }
}

impl Behavior {
    /// How much earlier than a whole sync period an evaluation still counts as the next one
    /// (the collector's rounds, which evaluations follow, jitter by some milliseconds): a
    /// quarter of the period, at most 250 ms.
    pub fn jitter_slack_ms(&self) -> i64 {
        (secs_to_ms(self.sync_period_seconds) / 4).min(250)
    }

    /// The defaults of a preset (`None`: Slipway's own).
    pub fn preset(preset: Option<Preset>) -> Self {
        match preset {
            None => Behavior::default(),
            Some(Preset::Hpa) => Behavior {
                preset: Some(Preset::Hpa),
                sync_period_seconds: 15.0,
                metric_resolution_seconds: 15.0,
                tolerance: 0.1,
                scale_up: ScaleUp {
                    breach_seconds: 0.0,
                    policies: vec![StepPolicy::pods(4, 15), StepPolicy::percent(100, 15)],
                    select_policy: SelectPolicy::Max,
                },
                scale_down: ScaleDown {
                    stabilization_seconds: 300.0,
                    policies: vec![StepPolicy::percent(100, 15)],
                    select_policy: SelectPolicy::Max,
                },
                panic: None,
                warmup_seconds: 0.0,
                ..Behavior::default()
            },
        }
    }
}

impl StepPolicy {
    /// `value` instances per `period_seconds`.
    pub fn pods(value: u32, period_seconds: u32) -> Self {
        StepPolicy {
            kind: StepKind::Pods,
            value,
            period_seconds,
        }
    }

    /// `value` percent per `period_seconds`.
    pub fn percent(value: u32, period_seconds: u32) -> Self {
        StepPolicy {
            kind: StepKind::Percent,
            value,
            period_seconds,
        }
    }
}

impl Policy {
    /// A policy with the default behavior.
    pub fn new(min: u32, max: u32, metrics: Vec<Metric>) -> Self {
        Policy {
            min,
            max,
            metrics,
            mode: Mode::Any,
            behavior: Behavior::default(),
        }
    }

    /// The longest look-back any rule needs, in ms (how much history the state keeps).
    pub(crate) fn history_ms(&self) -> i64 {
        let b = &self.behavior;
        let mut s = b
            .scale_down
            .stabilization_seconds
            .max(b.scale_up.breach_seconds);
        if let Some(p) = &b.panic {
            s = s.max(p.breach_seconds);
        }
        secs_to_ms(s)
    }

    /// The longest period a step policy or the cooldown looks back, in ms.
    pub(crate) fn events_ms(&self) -> i64 {
        let b = &self.behavior;
        let period = b
            .scale_up
            .policies
            .iter()
            .chain(&b.scale_down.policies)
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0);
        secs_to_ms(f64::from(period).max(b.cooldown_seconds))
    }
}

/// Seconds (validated finite and non-negative) to whole milliseconds.
pub(crate) fn secs_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}
