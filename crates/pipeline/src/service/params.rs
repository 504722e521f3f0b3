//! Parameters and variables of a run: raw values checked against the file's declarations,
//! and `vars` rendered with them.

use super::ServiceError;
use crate::Values;
use model::pipeline::{ParamKind, ParamValue, Pipeline, StepKind};
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

/// Every environment the pipeline's `deploy` steps can reach: their `env` rendered with
/// each combination of the choice and bool parameters (at most 256 combinations, then
/// the defaults alone), so registration can apply the policy of each.
pub fn deploy_envs(pipeline: &Pipeline) -> Vec<String> {
    let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (name, p) in &pipeline.params {
        let options: Vec<String> = match &p.kind {
            ParamKind::Choice(options) => options.clone(),
            ParamKind::Bool => vec!["true".into(), "false".into()],
            ParamKind::String => continue,
        };
        if combos.len() * options.len() > 256 {
            break;
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                options.iter().map(move |o| {
                    let mut c = c.clone();
                    c.insert(name.clone(), o.clone());
                    c
                })
            })
            .collect();
    }
    let mut envs = Vec::new();
    for given in combos {
        let Ok(params) = check_params(pipeline, &given) else {
            continue;
        };
        let values = with_vars(
            pipeline,
            Values {
                params,
                ..Values::default()
            },
        );
        for step in &pipeline.steps {
            if let StepKind::Deploy { env, .. } = &step.kind
                && let Ok(env) = values.render(env)
                && !env.is_empty()
                && !envs.contains(&env)
            {
                envs.push(env);
            }
        }
    }
    envs
}
