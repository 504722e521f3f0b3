//! Policy JSON to [`Policy`], reporting every problem at once with its field path.
//!
//! The JSON is walked by hand instead of through derived `Deserialize`, because serde stops at
//! the first error while the API's 422 must list them all (`min > max`, an unknown metric type
//! and a bad PromQL expression in one answer). `Deserialize` for [`Policy`] goes through the same
//! walker, so stored policies and API input follow one set of rules.

use crate::error::{AutoscaleError, Errors};
use crate::policy::{
    Behavior, Metric, Mode, Panic, Policy, Preset, ScaleDown, ScaleUp, SelectPolicy, StepKind,
    StepPolicy,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Checks a PromQL expression; `Err` carries the parser's message. The crate cannot parse
/// PromQL itself, so the caller (which owns the query engine) supplies this.
pub type PromqlCheck<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// A [`PromqlCheck`] that accepts everything (for policies read back from the store).
pub fn accept_any_promql(_: &str) -> Result<(), String> {
    Ok(())
}

/// Largest `max` a policy may ask for.
pub const MAX_INSTANCES: u32 = 10_000;

const METRIC_TYPES: &str = "cpu, memory, rps, latencyP95, promql";
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

impl Policy {
    /// Parses and validates a request body.
    pub fn from_json(body: &[u8], promql: PromqlCheck<'_>) -> Result<Policy, AutoscaleError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| AutoscaleError::Malformed(e.to_string()))?;
        Policy::from_value(&v, promql)
    }

    /// Parses and validates a JSON value.
    pub fn from_value(v: &Value, promql: PromqlCheck<'_>) -> Result<Policy, AutoscaleError> {
        let mut w = Walker {
            errs: Errors::default(),
            promql,
        };
        let policy = w.policy(v);
        match policy {
            Some(p) => w.errs.finish(p),
            None => {
                // Only reached with errors recorded.
                let e = w.errs.finish(());
                Err(e
                    .err()
                    .unwrap_or(AutoscaleError::Malformed("policy is not an object".into())))
            }
        }
    }

    /// Checks a policy built in code against the same rules as [`Policy::from_json`].
    pub fn validate(&self, promql: PromqlCheck<'_>) -> Result<(), AutoscaleError> {
        let v = serde_json::to_value(self).map_err(|e| AutoscaleError::Malformed(e.to_string()))?;
        Policy::from_value(&v, promql).map(|_| ())
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Policy::from_value(&v, &accept_any_promql).map_err(serde::de::Error::custom)
    }
}

struct Walker<'a> {
    errs: Errors,
    promql: PromqlCheck<'a>,
}

fn join(base: &str, key: &str) -> String {
    format!("{base}/{key}")
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

impl Walker<'_> {
    /// The object at `path`, with unknown keys reported.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.errs.add(path_or_root(path), "expected an object");
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.errs.add(
                    join(path, key),
                    format!("unknown field: expected one of {}", allowed.join(", ")),
                );
            }
        }
        Some(map)
    }

    /// A number at `key`; absent or `null` is `None` without an error.
    fn number(&mut self, map: &Map<String, Value>, base: &str, key: &str) -> Option<f64> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() => Some(n),
                _ => {
                    self.errs.add(join(base, key), "expected a number");
                    None
                }
            },
        }
    }

    /// A number in `[lo, hi]` (`lo` excluded when `open_lo`).
    fn ranged(
        &mut self,
        map: &Map<String, Value>,
        base: &str,
        key: &str,
        (lo, open_lo, hi): (f64, bool, f64),
    ) -> Option<f64> {
        let n = self.number(map, base, key)?;
        let low_ok = if open_lo { n > lo } else { n >= lo };
        if !low_ok || n > hi {
            let lo_bracket = if open_lo { "(" } else { "[" };
            self.errs.add(
                join(base, key),
                format!("must be in {lo_bracket}{lo}, {hi}], got {n}"),
            );
            return None;
        }
        Some(n)
    }

    /// A whole number in `[lo, hi]`.
    fn whole(
        &mut self,
        map: &Map<String, Value>,
        base: &str,
        key: &str,
        lo: u32,
        hi: u32,
    ) -> Option<u32> {
        let n = self.number(map, base, key)?;
        if n.fract() != 0.0 {
            self.errs.add(join(base, key), "expected a whole number");
            return None;
        }
        if n < f64::from(lo) || n > f64::from(hi) {
            self.errs
                .add(join(base, key), format!("must be in [{lo}, {hi}], got {n}"));
            return None;
        }
        Some(n as u32)
    }

    /// A string at `key`; absent or `null` is `None`.
    fn string<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        base: &str,
        key: &str,
    ) -> Option<&'v str> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errs.add(join(base, key), "expected a string");
                None
            }
        }
    }

    /// One of `choices` (case-insensitive) at `key`.
    fn choice<T: Copy>(
        &mut self,
        map: &Map<String, Value>,
        base: &str,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(map, base, key)?;
        if let Some((_, t)) = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Some(*t);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.errs.add(
            join(base, key),
            format!("unknown value '{s}': expected one of {}", names.join(", ")),
        );
        None
    }

    fn policy(&mut self, v: &Value) -> Option<Policy> {
        let map = self.object(v, "", &["min", "max", "metrics", "mode", "behavior"])?;
        let min = self.whole(map, "", "min", 1, MAX_INSTANCES);
        let max = self.whole(map, "", "max", 1, MAX_INSTANCES);
        if !map.contains_key("max") {
            self.errs.add("/max", "max is required");
        }
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            self.errs
                .add("/min", format!("min ({min}) is greater than max ({max})"));
        }
        let metrics = self.metrics(map.get("metrics"));
        let mode = self
            .choice(map, "", "mode", &[("any", Mode::Any), ("all", Mode::All)])
            .unwrap_or_default();
        let behavior = match map.get("behavior") {
            None | Some(Value::Null) => Behavior::default(),
            Some(b) => self.behavior(b),
        };
        Some(Policy {
            min: min.unwrap_or(1),
            max: max.unwrap_or(1),
            metrics,
            mode,
            behavior,
        })
    }

    fn metrics(&mut self, v: Option<&Value>) -> Vec<Metric> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            self.errs.add("/metrics", "at least one metric is required");
            return Vec::new();
        };
        let Some(items) = v.as_array() else {
            self.errs.add("/metrics", "expected an array");
            return Vec::new();
        };
        if items.is_empty() {
            self.errs.add("/metrics", "at least one metric is required");
        }
        let mut out: Vec<Metric> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let base = format!("/metrics({i})");
            if let Some(m) = self.metric(item, &base) {
                let duplicate = out.iter().any(|o| match (o, &m) {
                    (Metric::Promql { query: a, .. }, Metric::Promql { query: b, .. }) => a == b,
                    _ => o.name() == m.name() && m.signal().is_some(),
                });
                if duplicate {
                    self.errs.add(
                        join(&base, "type"),
                        format!("duplicate metric '{}'", m.name()),
                    );
                }
                out.push(m);
            }
        }
        out
    }

    fn metric(&mut self, v: &Value, base: &str) -> Option<Metric> {
        let Some(map) = v.as_object() else {
            self.errs.add(base, "expected an object");
            return None;
        };
        let Some(kind) = self.string(map, base, "type") else {
            if !map.contains_key("type") {
                self.errs.add(
                    join(base, "type"),
                    format!("metric type is required: one of {METRIC_TYPES}"),
                );
            }
            return None;
        };
        let allowed: &[&str] = match kind {
            "cpu" | "memory" | "rps" | "latencyP95" => &["type", "target"],
            "promql" => &["type", "query", "target"],
            other => {
                self.errs.add(
                    join(base, "type"),
                    format!("unknown metric type '{other}': expected one of {METRIC_TYPES}"),
                );
                return None;
            }
        };
        self.object(v, base, allowed)?;
        let hi = if matches!(kind, "cpu" | "memory") {
            100.0
        } else {
            1e12
        };
        let target = self.ranged(map, base, "target", (0.0, true, hi));
        if !map.contains_key("target") {
            self.errs.add(join(base, "target"), "target is required");
        }
        let metric = match kind {
            "cpu" => Metric::Cpu { target: target? },
            "memory" => Metric::Memory { target: target? },
            "rps" => Metric::Rps { target: target? },
            "latencyP95" => Metric::LatencyP95 { target: target? },
            _ => {
                let query = self.string(map, base, "query").map(str::trim);
                let query = match query {
                    None | Some("") => {
                        self.errs
                            .add(join(base, "query"), "a PromQL query is required");
                        None
                    }
                    Some(q) => match (self.promql)(q) {
                        Ok(()) => Some(q.to_string()),
                        Err(e) => {
                            self.errs
                                .add(join(base, "query"), format!("PromQL does not parse: {e}"));
                            None
                        }
                    },
                };
                Metric::Promql {
                    query: query?,
                    target: target?,
                }
            }
        };
        Some(metric)
    }

    fn behavior(&mut self, v: &Value) -> Behavior {
        let base = "/behavior";
        let Some(map) = self.object(
            v,
            base,
            &[
                "preset",
                "syncPeriodSeconds",
                "metricResolutionSeconds",
                "tolerance",
                "scaleUp",
                "scaleDown",
                "panic",
                "initializationSeconds",
                "warmupSeconds",
                "manualPauseSeconds",
                "cooldownSeconds",
            ],
        ) else {
            return Behavior::default();
        };
        let preset = self.choice(map, base, "preset", &[("hpa", Preset::Hpa)]);
        let mut b = Behavior::preset(preset);
        let positive = (0.0, true, HOUR);
        if let Some(s) = self.ranged(map, base, "syncPeriodSeconds", positive) {
            b.sync_period_seconds = s;
        }
        if let Some(s) = self.ranged(map, base, "metricResolutionSeconds", positive) {
            b.metric_resolution_seconds = s;
        }
        if let Some(t) = self.number(map, base, "tolerance") {
            if (0.0..1.0).contains(&t) {
                b.tolerance = t;
            } else {
                self.errs.add(
                    join(base, "tolerance"),
                    format!("must be in [0, 1), got {t}"),
                );
            }
        }
        if let Some(v) = map.get("scaleUp").filter(|v| !v.is_null()) {
            b.scale_up = self.scale_up(v, b.scale_up.clone());
        }
        if let Some(v) = map.get("scaleDown").filter(|v| !v.is_null()) {
            b.scale_down = self.scale_down(v, b.scale_down.clone());
        }
        match map.get("panic") {
            None => {}
            Some(Value::Null) | Some(Value::Bool(false)) => b.panic = None,
            Some(v) => {
                let start = b.panic.clone().or(Behavior::default().panic);
                b.panic = self.panic(v, start);
            }
        }
        let long = (0.0, false, DAY);
        if let Some(s) = self.ranged(map, base, "initializationSeconds", long) {
            b.initialization_seconds = s;
        }
        if let Some(s) = self.ranged(map, base, "warmupSeconds", (0.0, false, HOUR)) {
            b.warmup_seconds = s;
        }
        if let Some(s) = self.ranged(map, base, "manualPauseSeconds", long) {
            b.manual_pause_seconds = s;
        }
        if let Some(s) = self.ranged(map, base, "cooldownSeconds", long) {
            b.cooldown_seconds = s;
        }
        b
    }

    fn scale_up(&mut self, v: &Value, mut up: ScaleUp) -> ScaleUp {
        let base = "/behavior/scaleUp";
        let Some(map) = self.object(v, base, &["breachSeconds", "policies", "selectPolicy"]) else {
            return up;
        };
        if let Some(s) = self.ranged(map, base, "breachSeconds", (0.0, false, HOUR)) {
            up.breach_seconds = s;
        }
        if let Some(p) = self.step_policies(map, base) {
            up.policies = p;
        }
        if let Some(s) = self.select(map, base) {
            up.select_policy = s;
        }
        up
    }

    fn scale_down(&mut self, v: &Value, mut down: ScaleDown) -> ScaleDown {
        let base = "/behavior/scaleDown";
        let Some(map) = self.object(
            v,
            base,
            &["stabilizationSeconds", "policies", "selectPolicy"],
        ) else {
            return down;
        };
        if let Some(s) = self.ranged(map, base, "stabilizationSeconds", (0.0, false, HOUR)) {
            down.stabilization_seconds = s;
        }
        if let Some(p) = self.step_policies(map, base) {
            down.policies = p;
        }
        if let Some(s) = self.select(map, base) {
            down.select_policy = s;
        }
        down
    }

    fn select(&mut self, map: &Map<String, Value>, base: &str) -> Option<SelectPolicy> {
        self.choice(
            map,
            base,
            "selectPolicy",
            &[
                ("max", SelectPolicy::Max),
                ("min", SelectPolicy::Min),
                ("disabled", SelectPolicy::Disabled),
            ],
        )
    }

    fn step_policies(&mut self, map: &Map<String, Value>, base: &str) -> Option<Vec<StepPolicy>> {
        let v = map.get("policies").filter(|v| !v.is_null())?;
        let path = join(base, "policies");
        let Some(items) = v.as_array() else {
            self.errs.add(path, "expected an array");
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let base = format!("{path}({i})");
            let Some(m) = self.object(item, &base, &["type", "value", "periodSeconds"]) else {
                continue;
            };
            let kind = self.choice(
                m,
                &base,
                "type",
                &[("pods", StepKind::Pods), ("percent", StepKind::Percent)],
            );
            let value = self.whole(m, &base, "value", 1, 1_000_000);
            let period = self.whole(m, &base, "periodSeconds", 1, 1800);
            for key in ["type", "value", "periodSeconds"] {
                if !m.contains_key(key) {
                    self.errs
                        .add(join(&base, key), format!("{key} is required"));
                }
            }
            if let (Some(kind), Some(value), Some(period_seconds)) = (kind, value, period) {
                out.push(StepPolicy {
                    kind,
                    value,
                    period_seconds,
                });
            }
        }
        Some(out)
    }

    fn panic(&mut self, v: &Value, start: Option<Panic>) -> Option<Panic> {
        let base = "/behavior/panic";
        let mut p = start?;
        let map = self.object(v, base, &["threshold", "breachSeconds", "maxScaleUpRate"])?;
        if let Some(t) = self.ranged(map, base, "threshold", (1.0, true, 100.0)) {
            p.threshold = t;
        }
        if let Some(s) = self.ranged(map, base, "breachSeconds", (0.0, false, HOUR)) {
            p.breach_seconds = s;
        }
        if let Some(r) = self.ranged(map, base, "maxScaleUpRate", (1.0, true, 1000.0)) {
            p.max_scale_up_rate = r;
        }
        Some(p)
    }
}
