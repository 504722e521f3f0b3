//! What a decision says: the action, every metric's numbers and formula, and the reasons,
//! serializable to JSON (stored, published as `autoscale_decision`) and printable as one line.

use crate::policy::{Metric, Mode};
use model::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Evaluation time.
    pub at: Timestamp,
    /// Desired instances before.
    pub current: u32,
    /// Desired instances after; equals `current` unless `action` is a scale.
    pub target: u32,
    /// What to do.
    pub action: Action,
    /// Whether panic mode was on.
    pub panic: bool,
    /// How the metrics combined.
    pub mode: Mode,
    /// The combined recommendation, clamped to `[min, max]`; `None` without data.
    pub recommendation: Option<u32>,
    /// Per metric: values, formula and recommendation.
    pub metrics: Vec<MetricReport>,
    /// Why the target is what it is, main reason first.
    pub reasons: Vec<Reason>,
}

/// What the controller should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Change nothing.
    Hold,
    /// Set the app's instances to `target` (more).
    ScaleUp,
    /// Set the app's instances to `target` (fewer).
    ScaleDown,
}

impl Decision {
    /// Whether the controller must write a new instance count.
    pub fn is_change(&self) -> bool {
        self.action != Action::Hold
    }

    /// The decision as one human-readable line (same as `Display`).
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

/// One metric's evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReport {
    /// Metric type (`cpu`, `promql`, ...).
    pub metric: String,
    /// The query of a PromQL metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Unit suffix (`%`, ` req/s`, ` ms`).
    pub unit: String,
    /// Target value.
    pub target: f64,
    /// Per-instance values (empty for PromQL).
    pub instances: Vec<InstanceValue>,
    /// The app-wide value of a PromQL metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Mean of ready instances / target (PromQL: value / (target × current)).
    pub ratio: Option<f64>,
    /// The ratio after unready and missing instances were substituted, if they were.
    pub adjusted_ratio: Option<f64>,
    /// The formula with its numbers.
    pub formula: String,
    /// Recommended instances; `None` without data.
    pub recommendation: Option<u32>,
    /// Whether the ratio fell inside the tolerance.
    pub within_tolerance: bool,
    /// Whether this metric alone is at panic level.
    pub panic: bool,
}

/// One instance's value for a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceValue {
    /// Task id.
    pub id: String,
    /// Mean of its samples in the bucket, if any.
    pub value: Option<f64>,
    /// How it was counted.
    pub counted: Counted,
    /// The value that entered the formula (substituted for unready or missing ones); `None`
    /// when left out.
    pub used: Option<f64>,
}

/// How an instance entered a metric's formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Counted {
    /// Ready with a sample: counted as measured.
    Ready,
    /// Starting, in its grace period, unhealthy since start, or its sample predates readiness.
    Unready,
    /// No sample in the bucket.
    Missing,
}

/// Why a decision came out as it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Reason {
    /// The recommendation equals the current count.
    Steady,
    /// A deployment runs on the app; the autoscaler waits for it.
    Deployment {
        /// The count the deployment will leave.
        target_instances: u32,
    },
    /// A person scaled the app recently.
    ManualPause {
        /// When.
        at: Timestamp,
        /// Seconds until the autoscaler acts again.
        remaining_seconds: f64,
    },
    /// No metric has data.
    NoData,
    /// Some metrics have no data: no scale-down (mode any), no change (mode all).
    MissingMetrics {
        /// Their names.
        metrics: Vec<String>,
    },
    /// Mode all: the metrics do not agree on a direction.
    MetricsDisagree,
    /// The current count is below `min`.
    BelowMin {
        /// The policy's min.
        min: u32,
    },
    /// The current count is above `max`.
    AboveMax {
        /// The policy's max.
        max: u32,
    },
    /// The recommendation was clamped to `[min, max]`.
    Clamped {
        /// Before clamping.
        recommended: u32,
        /// After.
        to: u32,
    },
    /// Scale-up: the breach held long enough.
    BreachHeld {
        /// How long it has held.
        held_seconds: f64,
        /// The breach window.
        window_seconds: f64,
        /// Panic mode's window was used.
        panic: bool,
        /// The lowest recommendation within the window, the new count before limits.
        lowest: u32,
    },
    /// A breach, not yet held long enough.
    BreachNotHeld {
        /// How long it has held.
        held_seconds: f64,
        /// The breach window.
        window_seconds: f64,
        /// Panic mode's window applies.
        panic: bool,
    },
    /// Scale-down: the highest recommendation of the window is below the current count.
    WindowHighest {
        /// The highest recommendation in the window.
        highest: u32,
        /// The stabilisation window.
        window_seconds: f64,
    },
    /// A lower recommendation, but the window still holds one at least as high as the count.
    ScaleDownWaits {
        /// The highest recommendation in the window.
        highest: u32,
        /// The stabilisation window.
        window_seconds: f64,
    },
    /// Scale-down: the recommendations are still falling (the highest of the window's recent
    /// half is below the window's highest), so the autoscaler waits for them to settle and
    /// then scales down once, instead of following the fall step by step.
    StillFalling {
        /// The highest recommendation in the window.
        highest: u32,
        /// The highest recommendation in the window's recent half.
        recent: u32,
        /// The stabilisation window.
        window_seconds: f64,
    },
    /// A lower recommendation, but the autoscaler has not watched a whole window yet.
    NotWatchedLongEnough {
        /// Seconds watched without a gap.
        watched_seconds: f64,
        /// The stabilisation window.
        window_seconds: f64,
    },
    /// The last change went the other way too recently.
    Cooldown {
        /// Seconds left.
        remaining_seconds: f64,
    },
    /// A step limit (or panic's rate) cut the change.
    StepLimit {
        /// The limiting count.
        limit: u32,
        /// Which rule: `percent 100 / 10 s`, `panic rate 10`.
        rule: String,
    },
    /// `selectPolicy: disabled` forbids this direction.
    DirectionDisabled,
}

/// Compact number: integers without decimals, others with up to two.
pub(crate) fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl MetricReport {
    pub(crate) fn new(metric: &Metric) -> Self {
        MetricReport {
            metric: metric.name().into(),
            query: match metric {
                Metric::Promql { query, .. } => Some(query.clone()),
                _ => None,
            },
            unit: metric.unit().into(),
            target: metric.target(),
            instances: Vec::new(),
            value: None,
            ratio: None,
            adjusted_ratio: None,
            formula: String::new(),
            recommendation: None,
            within_tolerance: false,
            panic: false,
        }
    }

    pub(crate) fn count(&self, c: Counted) -> u32 {
        self.instances.iter().filter(|v| v.counted == c).count() as u32
    }

    /// The ratio that measures load against all capacity (after substitution, if any).
    pub(crate) fn effective_ratio(&self) -> Option<f64> {
        self.adjusted_ratio.or(self.ratio)
    }
}

impl fmt::Display for MetricReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.metric)?;
        if let Some(q) = &self.query {
            write!(f, " `{q}`")?;
        }
        if let Some(v) = self.value {
            write!(f, " {}", fmt_num(v))?;
        }
        if !self.instances.is_empty() {
            let values: Vec<String> = self
                .instances
                .iter()
                .map(|i| {
                    let v = i.value.map_or("-".into(), fmt_num);
                    match i.counted {
                        Counted::Ready => v,
                        Counted::Unready => format!("{v} unready"),
                        Counted::Missing => "missing".into(),
                    }
                })
                .collect();
            write!(f, " [{}]", values.join(", "))?;
        }
        write!(
            f,
            " target {}{}: {}",
            fmt_num(self.target),
            self.unit,
            self.formula
        )?;
        if self.panic {
            write!(f, " (panic level)")?;
        }
        Ok(())
    }
}

fn secs(s: f64) -> String {
    format!("{} s", fmt_num(s))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Steady => write!(f, "recommendation equals the current count"),
            Reason::Deployment { target_instances } => write!(
                f,
                "a deployment is in progress (to {target_instances} instances): waiting for it"
            ),
            Reason::ManualPause {
                at,
                remaining_seconds,
            } => write!(
                f,
                "paused after a manual scale at {at}: {} left",
                secs(*remaining_seconds)
            ),
            Reason::NoData => write!(f, "no metric has data"),
            Reason::MissingMetrics { metrics } => {
                write!(f, "no data for {}: not scaling down", metrics.join(", "))
            }
            Reason::MetricsDisagree => write!(f, "mode all: the metrics disagree on a direction"),
            Reason::BelowMin { min } => write!(f, "below min {min}"),
            Reason::AboveMax { max } => write!(f, "above max {max}"),
            Reason::Clamped { recommended, to } => {
                write!(f, "recommendation {recommended} clamped to {to}")
            }
            Reason::BreachHeld {
                held_seconds,
                window_seconds,
                panic,
                lowest,
            } => write!(
                f,
                "{}breach held {} of {}, lowest recommendation in it {lowest}",
                if *panic { "panic: " } else { "" },
                secs(*held_seconds),
                secs(*window_seconds)
            ),
            Reason::BreachNotHeld {
                held_seconds,
                window_seconds,
                panic,
            } => write!(
                f,
                "{}breach held {} of {}",
                if *panic { "panic: " } else { "" },
                secs(*held_seconds),
                secs(*window_seconds)
            ),
            Reason::WindowHighest {
                highest,
                window_seconds,
            } => write!(
                f,
                "highest recommendation in the last {} is {highest}",
                secs(*window_seconds)
            ),
            Reason::ScaleDownWaits {
                highest,
                window_seconds,
            } => write!(
                f,
                "scale-down waits: highest recommendation in the last {} is {highest}",
                secs(*window_seconds)
            ),
            Reason::StillFalling {
                highest,
                recent,
                window_seconds,
            } => write!(
                f,
                "scale-down waits for the fall to settle: highest recommendation in the last {} is {highest}, in its recent half {recent}",
                secs(*window_seconds)
            ),
            Reason::NotWatchedLongEnough {
                watched_seconds,
                window_seconds,
            } => write!(
                f,
                "scale-down waits: watched {} of the {} window",
                secs(*watched_seconds),
                secs(*window_seconds)
            ),
            Reason::Cooldown { remaining_seconds } => write!(
                f,
                "cooldown after the last change: {} left",
                secs(*remaining_seconds)
            ),
            Reason::StepLimit { limit, rule } => write!(f, "limited to {limit} by {rule}"),
            Reason::DirectionDisabled => write!(f, "this direction is disabled by selectPolicy"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Hold => write!(f, "no change at {}", self.current)?,
            Action::ScaleUp => write!(f, "scale up {} → {}", self.current, self.target)?,
            Action::ScaleDown => write!(f, "scale down {} → {}", self.current, self.target)?,
        }
        if self.panic && self.action != Action::Hold {
            write!(f, " (panic)")?;
        }
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        if !reasons.is_empty() {
            write!(f, ": {}", reasons.join("; "))?;
        }
        for m in &self.metrics {
            write!(f, " | {m}")?;
        }
        Ok(())
    }
}
