//! Parameters and variables of a run: raw values checked against the file's declarations,
//! and `vars` rendered with them.

use super::ServiceError;
use crate::Values;
use model::pipeline::{ParamKind, ParamValue, Pipeline};
use std::collections::BTreeMap;

/// The pipeline's variables rendered with `values` (parameters and run facts).
pub(super) fn with_vars(pipeline: &Pipeline, mut values: Values) -> Values {
    for (name, text) in &pipeline.vars {
        let rendered = values.render(text).unwrap_or_else(|_| text.clone());
        values.vars.insert(name.clone(), rendered);
    }
    values
}

/// Checks raw parameter values against the pipeline's declarations; defaults filled in.
pub fn check_params(
    pipeline: &Pipeline,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ParamValue>, ServiceError> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for name in given.keys() {
        if !pipeline.params.contains_key(name) {
            problems.push(format!("unknown parameter `{name}`"));
        }
    }
    for (name, p) in &pipeline.params {
        let value = match (given.get(name), &p.kind) {
            (None, _) => match &p.default {
                Some(d) => d.clone(),
                None if p.required => {
                    problems.push(format!("parameter `{name}` is required"));
                    continue;
                }
                None if matches!(p.kind, ParamKind::Bool) => ParamValue::Bool(false),
                None => ParamValue::Text(String::new()),
            },
            (Some(v), ParamKind::Bool) => match v.as_str() {
                "true" => ParamValue::Bool(true),
                "false" => ParamValue::Bool(false),
                _ => {
                    problems.push(format!("parameter `{name}` is true or false, not `{v}`"));
                    continue;
                }
            },
            (Some(v), ParamKind::Choice(options)) if !options.contains(v) => {
                problems.push(format!(
                    "parameter `{name}` is one of {}, not `{v}`",
                    options.join(", ")
                ));
                continue;
            }
            (Some(v), _) => ParamValue::Text(v.clone()),
        };
        out.insert(name.clone(), value);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ServiceError::Invalid(problems.join("; ")))
    }
}
