//! Policies carried by an app definition's labels (`SLIPWAY_AUTOSCALE_MIN`, `_MAX`, `_CPU`,
//! `_MEM`, `_RPS`, `_MODE`, `_PRESET`), so a definition in the deploy repository brings its own.
//!
//! The labels are turned into the policy JSON and checked by the same rules as the API's body;
//! error paths name the label (`/labels/SLIPWAY_AUTOSCALE_MAX`), which is where they sit in the
//! app definition.

use crate::error::{AutoscaleError, Errors};
use crate::parse::accept_any_promql;
use crate::policy::Policy;
use model::FieldError;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Every autoscale label starts with this.
pub const LABEL_PREFIX: &str = "SLIPWAY_AUTOSCALE_";

/// Label suffixes and what they set.
const KNOWN: [&str; 7] = ["MIN", "MAX", "CPU", "MEM", "RPS", "MODE", "PRESET"];

fn label_path(suffix: &str) -> String {
    format!("/labels/{LABEL_PREFIX}{suffix}")
}

impl Policy {
    /// The policy an app's labels describe, `Ok(None)` when it has no `SLIPWAY_AUTOSCALE_*`
    /// label. `MAX` and at least one of `CPU` (% of `cpus`), `MEM` (% of `mem`) and `RPS` are
    /// required; `MIN` defaults to 1, `MODE` to `any` (`or` and `and` are accepted as the seed
    /// spelled them), `PRESET` may be `hpa`. Percent values may end in `%`.
    pub fn from_labels(
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<Policy>, AutoscaleError> {
        let ours: Vec<(&str, &str)> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_PREFIX)?, v.trim())))
            .collect();
        if ours.is_empty() {
            return Ok(None);
        }
        let mut errs = Errors::default();
        let mut body = Map::new();
        let mut metrics = Vec::new();
        // Which label each metric index came from, to name it in errors.
        let mut metric_labels = Vec::new();
        for (suffix, raw) in &ours {
            let path = label_path(suffix);
            match *suffix {
                "MIN" | "MAX" => match raw.parse::<u32>() {
                    Ok(n) => {
                        body.insert(suffix.to_ascii_lowercase(), json!(n));
                    }
                    Err(_) => errs.add(path, format!("expected a whole number, got '{raw}'")),
                },
                "CPU" | "MEM" | "RPS" => {
                    let number = if *suffix == "RPS" {
                        raw
                    } else {
                        raw.strip_suffix('%').unwrap_or(raw).trim_end()
                    };
                    match number.parse::<f64>() {
                        Ok(target) if target.is_finite() => {
                            let kind = match *suffix {
                                "CPU" => "cpu",
                                "MEM" => "memory",
                                _ => "rps",
                            };
                            metrics.push(json!({"type": kind, "target": target}));
                            metric_labels.push(*suffix);
                        }
                        _ => errs.add(path, format!("expected a number, got '{raw}'")),
                    }
                }
                "MODE" => {
                    let mode = match raw.to_ascii_lowercase().as_str() {
                        "any" | "or" => "any",
                        "all" | "and" => "all",
                        _ => {
                            errs.add(path, format!("expected any or all, got '{raw}'"));
                            continue;
                        }
                    };
                    body.insert("mode".into(), json!(mode));
                }
                "PRESET" => {
                    body.insert("behavior".into(), json!({"preset": raw}));
                }
                _ => errs.add(
                    path,
                    format!(
                        "unknown autoscale label: expected one of {}",
                        KNOWN.map(|k| format!("{LABEL_PREFIX}{k}")).join(", ")
                    ),
                ),
            }
        }
        let has_metric_label = ours
            .iter()
            .any(|(s, _)| matches!(*s, "CPU" | "MEM" | "RPS"));
        if !has_metric_label {
            errs.add(
                "/labels",
                format!(
                    "one of {LABEL_PREFIX}CPU, {LABEL_PREFIX}MEM or {LABEL_PREFIX}RPS is required"
                ),
            );
        }
        if !body.contains_key("max") && !ours.iter().any(|(s, _)| *s == "MAX") {
            errs.add(label_path("MAX"), "required with any other autoscale label");
        }
        body.insert("metrics".into(), Value::Array(metrics));
        if !errs.is_empty() {
            // Report the label problems only: rules checked on a half-built policy would repeat them.
            return errs.finish(None);
        }
        match Policy::from_value(&Value::Object(body), &accept_any_promql) {
            Ok(p) => Ok(Some(p)),
            Err(AutoscaleError::Invalid(fields)) => {
                for FieldError { path, errors } in fields {
                    let path = rename(&path, &metric_labels);
                    for e in errors {
                        errs.add(path.clone(), e);
                    }
                }
                errs.finish(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A policy path to the label that set it.
fn rename(path: &str, metric_labels: &[&str]) -> String {
    let suffix = match path {
        "/min" => Some("MIN"),
        "/max" => Some("MAX"),
        "/mode" => Some("MODE"),
        p if p.starts_with("/behavior") => Some("PRESET"),
        p => p
            .strip_prefix("/metrics(")
            .and_then(|rest| rest.split(')').next())
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| metric_labels.get(i).copied()),
    };
    suffix.map_or_else(|| "/labels".to_string(), label_path)
}
