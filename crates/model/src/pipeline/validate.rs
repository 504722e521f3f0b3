//! From the file as written to a [`Pipeline`]: types, names, the DAG, conditions and
//! `${{ }}` references, every problem reported with its line and column.

use super::raw::{RawFile, RawStep, Scalar, strings};
use super::{
    Condition, DEFAULT_APPROVAL_TIMEOUT, Param, ParamKind, ParamValue, Pipeline, PipelineError,
    PipelineErrors, Reference, SarifLevel, Step, StepKind, Triggers, parse_duration, references,
};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Collects problems while a file is checked.
struct Problems<'t> {
    found: Vec<PipelineError>,
    /// The file's lines, to see whether a scalar starts with a quote.
    lines: Vec<&'t str>,
}

impl Problems<'_> {
    fn at(&mut self, loc: &Location, message: impl Into<String>) {
        self.at_offset(loc, 0, message);
    }

    /// At `offset` characters into the scalar at `loc` (past its opening quote, if any).
    fn at_offset(&mut self, loc: &Location, offset: usize, message: impl Into<String>) {
        let line = u32::try_from(loc.line()).unwrap_or(u32::MAX);
        let quoted = offset > 0
            && usize::try_from(loc.line())
                .ok()
                .and_then(|l| self.lines.get(l.checked_sub(1)?))
                .and_then(|text| {
                    let col = usize::try_from(loc.column()).ok()?.checked_sub(1)?;
                    text.chars().nth(col)
                })
                .is_some_and(|c| c == '"' || c == '\'');
        let column = u32::try_from(loc.column())
            .unwrap_or(u32::MAX)
            .saturating_add(u32::try_from(offset + usize::from(quoted)).unwrap_or(u32::MAX));
        self.found.push(PipelineError {
            line,
            column,
            message: message.into(),
        });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_subject(s: &str) -> bool {
    matches!(s.split_once(':'), Some(("role", r)) if ["viewer", "developer", "deployer", "admin"].contains(&r))
        || matches!(s.split_once(':'), Some(("user", u)) if !u.is_empty())
}

fn duration(p: &mut Problems<'_>, s: &Spanned<String>) -> Option<Duration> {
    let d = parse_duration(&s.value);
    if d.is_none() {
        p.at(
            &s.referenced,
            format!(
                "invalid duration `{}` (use e.g. 500ms, 45s, 30m, 2h, 1h30m)",
                s.value
            ),
        );
    }
    d
}

/// What `${{ }}` references may name in one string.
struct Scope<'a> {
    params: &'a BTreeMap<String, Spanned<super::raw::RawParam>>,
    vars: Option<&'a BTreeMap<String, Spanned<Scalar>>>,
    /// Steps this string's step (transitively) depends on; `None` outside steps.
    ancestors: Option<&'a BTreeSet<String>>,
    steps: &'a BTreeSet<String>,
    repos: &'a BTreeMap<String, Spanned<super::raw::RawRepo>>,
    secrets_allowed: bool,
}

fn check_refs(p: &mut Problems<'_>, s: &Spanned<String>, scope: &Scope<'_>) {
    check_text_refs(p, &s.referenced, &s.value, scope);
}

fn check_text_refs(p: &mut Problems<'_>, loc: &Location, text: &str, scope: &Scope<'_>) {
    let refs = match references(text) {
        Ok(r) => r,
        Err((offset, message)) => return p.at_offset(loc, offset, message),
    };
    for (offset, r) in refs {
        let problem = match &r {
            Reference::Param(n) if !scope.params.contains_key(n) => {
                Some(format!("unknown parameter `{n}`"))
            }
            Reference::Var(n) => match scope.vars {
                None => Some("variables cannot refer to other variables".into()),
                Some(vars) if !vars.contains_key(n) => Some(format!("unknown variable `{n}`")),
                Some(_) => None,
            },
            Reference::Secret(_) if !scope.secrets_allowed => Some(
                "secrets may only be used in a step's `env` and `run` commands (list them under `secrets:`)".into(),
            ),
            Reference::Output { step, .. } => match scope.ancestors {
                None => Some("step outputs can only be used inside steps".into()),
                Some(_) if !scope.steps.contains(step) => Some(format!("unknown step `{step}`")),
                Some(a) if !a.contains(step) => Some(format!(
                    "step `{step}` is not among this step's `needs` (directly or through other steps), so its outputs may not exist yet"
                )),
                Some(_) => None,
            },
            _ => None,
        };
        if let Some(message) = problem {
            p.at_offset(loc, offset, message);
        }
    }
}

pub(crate) fn validate(raw: RawFile, text: &str) -> Result<Pipeline, PipelineErrors> {
    let mut p = Problems {
        found: Vec::new(),
        lines: text.lines().collect(),
    };
    if raw.version.value != 1 {
        p.at(
            &raw.version.referenced,
            format!(
                "unsupported version {} (this Slipway reads version 1)",
                raw.version.value
            ),
        );
    }
    if !valid_name(&raw.name.value) {
        p.at(
            &raw.name.referenced,
            "a pipeline name is 1-63 letters, digits, `-` or `_`, starting with a letter or digit",
        );
    }

    // Parameters.
    let mut params = BTreeMap::new();
    for (name, sp) in &raw.params {
        let rp = &sp.value;
        if !valid_name(name) {
            p.at(&sp.referenced, format!("invalid parameter name `{name}`"));
        }
        let kind = match rp.kind.value.as_str() {
            "string" => ParamKind::String,
            "bool" | "boolean" => ParamKind::Bool,
            "choice" => {
                if rp.options.is_empty() {
                    p.at(
                        &rp.kind.referenced,
                        format!("choice parameter `{name}` needs `options`"),
                    );
                }
                ParamKind::Choice(rp.options.iter().map(|o| o.value.clone()).collect())
            }
            other => {
                p.at(
                    &rp.kind.referenced,
                    format!("unknown parameter type `{other}` (string, choice or bool)"),
                );
                ParamKind::String
            }
        };
        if !rp.options.is_empty() && !matches!(kind, ParamKind::Choice(_)) {
            p.at(
                &rp.options[0].referenced,
                "`options` only apply to choice parameters",
            );
        }
        let default = rp.default.as_ref().and_then(|d| {
            let v = match (&kind, &d.value) {
                (ParamKind::Bool, Scalar::Bool(b)) => ParamValue::Bool(*b),
                (ParamKind::Bool, _) => {
                    p.at(
                        &d.referenced,
                        format!("the default of bool parameter `{name}` must be true or false"),
                    );
                    return None;
                }
                (ParamKind::Choice(options), v) if !options.contains(&v.as_text()) => {
                    p.at(
                        &d.referenced,
                        format!(
                            "default `{}` is not one of the options of `{name}`",
                            v.as_text()
                        ),
                    );
                    return None;
                }
                (_, v) => ParamValue::Text(v.as_text()),
            };
            Some(v)
        });
        params.insert(
            name.clone(),
            Param {
                kind,
                default,
                required: rp.required,
                description: rp.description.clone(),
            },
        );
    }

    // Triggers.
    let mut triggers = Triggers {
        manual: !raw.params.is_empty(),
        ..Triggers::default()
    };
    if let Some(t) = &raw.triggers {
        if let Some(push) = &t.value.push {
            if push.branches.is_empty() {
                p.at(&t.referenced, "`push` needs at least one branch");
            }
            triggers.push_branches = push.branches.iter().map(|b| b.value.clone()).collect();
            triggers.poll = push.poll.as_ref().and_then(|d| duration(&mut p, d));
            if let (Some(d), Some(s)) = (triggers.poll, &push.poll)
                && d < Duration::from_secs(1)
            {
                p.at(&s.referenced, "the poll interval is at least 1s");
            }
        }
        if let Some(m) = &t.value.manual {
            triggers.manual = true;
            for a in &m.allowed {
                if !valid_subject(&a.value) {
                    p.at(
                        &a.referenced,
                        format!(
                            "`{}` is not `role:viewer|developer|deployer|admin` or `user:NAME`",
                            a.value
                        ),
                    );
                }
            }
            triggers.manual_allowed = m.allowed.iter().map(|a| a.value.clone()).collect();
        }
        for c in &t.value.cron {
            if let Err(e) = super::Cron::parse(&c.value) {
                p.at(&c.referenced, format!("cron schedule: {e}"));
            }
            triggers.cron.push(c.value.clone());
        }
    }

    let step_names: BTreeSet<String> = raw.steps.value.keys().cloned().collect();
    let no_steps = BTreeSet::new();

    // Variables: may refer to parameters and the run.
    let var_scope = Scope {
        params: &raw.params,
        vars: None,
        ancestors: None,
        steps: &no_steps,
        repos: &raw.repos,
        secrets_allowed: false,
    };
    let mut vars = BTreeMap::new();
    for (name, v) in &raw.vars {
        if !valid_name(name) {
            p.at(&v.referenced, format!("invalid variable name `{name}`"));
        }
        let text = v.value.as_text();
        check_text_refs(&mut p, &v.referenced, &text, &var_scope);
        vars.insert(name.clone(), text);
    }

    // Other repositories: their fields may refer to parameters and variables.
    let repo_scope = Scope {
        vars: Some(&raw.vars),
        ..var_scope
    };
    let mut repos = BTreeMap::new();
    for (name, r) in &raw.repos {
        if !valid_name(name) {
            p.at(&r.referenced, format!("invalid repository name `{name}`"));
        }
        let rv = &r.value;
        for x in [Some(&rv.url), rv.branch.as_ref()].into_iter().flatten() {
            check_refs(&mut p, x, &repo_scope);
        }
        if rv.url.value.trim().is_empty() {
            p.at(
                &rv.url.referenced,
                format!("repository `{name}` needs a `url`"),
            );
        }
        if let Some(sec) = &rv.secret
            && !valid_name(&sec.value)
        {
            p.at(
                &sec.referenced,
                format!("invalid secret name `{}`", sec.value),
            );
        }
        repos.insert(
            name.clone(),
            super::Repo {
                url: rv.url.value.clone(),
                branch: rv.branch.as_ref().map(|b| b.value.clone()),
                secret: rv.secret.as_ref().map(|s| s.value.clone()),
            },
        );
    }

    // The DAG.
    if raw.steps.value.is_empty() {
        p.at(&raw.steps.referenced, "a pipeline needs at least one step");
    }
    for (name, s) in &raw.steps.value {
        if !valid_name(name) {
            p.at(
                &s.referenced,
                format!("invalid step name `{name}`: 1-63 letters, digits, `-` or `_`"),
            );
        }
        for n in &s.value.needs {
            if n.value == *name {
                p.at(&n.referenced, format!("step `{name}` needs itself"));
            } else if !step_names.contains(&n.value) {
                p.at(
                    &n.referenced,
                    format!("unknown step `{}` in `needs` of `{name}`", n.value),
                );
            }
        }
    }
    let order = match topological(&raw.steps.value) {
        Ok(order) => order,
        Err(cycle) => {
            let first = &raw.steps.value[&cycle[0]];
            p.at(
                &first.referenced,
                format!("the steps form a cycle: {}", cycle.join(" → ")),
            );
            raw.steps.value.keys().cloned().collect()
        }
    };
    let ancestors = ancestors(&raw.steps.value);

    let mut steps = Vec::new();
    for name in &order {
        let s = &raw.steps.value[name];
        let scope = Scope {
            params: &raw.params,
            vars: Some(&raw.vars),
            ancestors: ancestors.get(name),
            steps: &step_names,
            repos: &raw.repos,
            secrets_allowed: false,
        };
        if let Some(step) = step(&mut p, name, s, &scope) {
            steps.push(step);
        }
    }

    if p.found.is_empty() {
        Ok(Pipeline {
            name: raw.name.value,
            description: raw.description,
            triggers,
            params,
            vars,
            repos,
            steps,
        })
    } else {
        p.found.sort_by_key(|e| (e.line, e.column));
        Err(PipelineErrors(p.found))
    }
}

fn step(p: &mut Problems<'_>, name: &str, s: &Spanned<RawStep>, scope: &Scope<'_>) -> Option<Step> {
    let rs = &s.value;
    let kinds: Vec<&str> = [
        rs.run.as_ref().map(|_| "run"),
        rs.gate.as_ref().map(|_| "gate"),
        rs.docker.as_ref().map(|_| "docker"),
        rs.promote.as_ref().map(|_| "promote"),
        rs.deploy.as_ref().map(|_| "deploy"),
        rs.approve.as_ref().map(|_| "approve"),
        rs.merge.as_ref().map(|_| "merge"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        p.at(&s.referenced, format!("step `{name}` needs exactly one of run, gate, docker, promote, deploy, approve, merge (found {found})"));
        return None;
    }
    if rs.image.is_some() && rs.run.is_none() {
        p.at(
            &s.referenced,
            format!("`image` applies to `run` steps only (step `{name}`)"),
        );
    }
    let with_secrets = Scope {
        secrets_allowed: true,
        ..*scope
    };
    let when = rs.when.as_ref().and_then(|w| {
        match Condition::parse(&w.value, &|n| scope.params.contains_key(n)) {
            Ok(c) => Some(c),
            Err(e) => {
                p.at_offset(&w.referenced, e.offset, format!("in `when`: {}", e.message));
                None
            }
        }
    });
    let timeout = rs.timeout.as_ref().and_then(|t| duration(p, t));
    let retry = rs.retry.as_ref().map_or(0, |r| r.value);
    if let Some(r) = &rs.retry
        && r.value > 10
    {
        p.at(&r.referenced, "at most 10 retries");
    }
    let mut env = BTreeMap::new();
    for (k, v) in &rs.env {
        let text = v.value.as_text();
        check_text_refs(p, &v.referenced, &text, &with_secrets);
        env.insert(k.clone(), text);
    }
    for sec in &rs.secrets {
        if !valid_name(&sec.value) {
            p.at(
                &sec.referenced,
                format!("invalid secret name `{}`", sec.value),
            );
        }
    }
    let kind = if let Some(run) = &rs.run {
        let commands = strings(run);
        if commands.is_empty() {
            p.at(&s.referenced, format!("`run` of `{name}` has no commands"));
        }
        for c in &commands {
            check_refs(p, c, &with_secrets);
        }
        if let Some(i) = &rs.image {
            check_refs(p, i, scope);
        }
        StepKind::Run {
            commands: commands.into_iter().map(|c| c.value).collect(),
            image: rs.image.as_ref().map(|i| i.value.clone()),
        }
    } else if let Some(g) = &rs.gate {
        let sarif = strings(&g.value.sarif);
        if sarif.is_empty() {
            p.at(&g.referenced, "`gate` needs at least one `sarif` file");
        }
        let mut max_new = BTreeMap::new();
        for (level, n) in &g.value.max_new {
            match SarifLevel::parse(level) {
                Some(l) => {
                    max_new.insert(l, n.value);
                }
                None => p.at(
                    &n.referenced,
                    format!("unknown SARIF level `{level}` (error, warning, note)"),
                ),
            }
        }
        if max_new.is_empty() {
            max_new.insert(SarifLevel::Error, 0);
        }
        StepKind::Gate {
            sarif: sarif.into_iter().map(|s| s.value).collect(),
            baseline: g.value.baseline.as_ref().map(|b| b.value.clone()),
            max_new,
        }
    } else if let Some(d) = &rs.docker {
        for x in [&d.value.build, &d.value.push]
            .into_iter()
            .chain(&d.value.tags)
        {
            check_refs(p, x, scope);
        }
        StepKind::Docker {
            context: d.value.build.value.clone(),
            dockerfile: d.value.dockerfile.as_ref().map(|f| f.value.clone()),
            push: d.value.push.value.clone(),
            tags: d.value.tags.iter().map(|t| t.value.clone()).collect(),
        }
    } else if let Some(pr) = &rs.promote {
        let pv = &pr.value;
        for x in [Some(&pv.image), Some(&pv.to), pv.force.as_ref()]
            .into_iter()
            .flatten()
        {
            check_refs(p, x, scope);
        }
        if let Some(a) = &pv.require_approval
            && !valid_name(&a.value)
        {
            p.at(
                &a.referenced,
                format!("invalid step name `{}` in `require_approval`", a.value),
            );
        }
        StepKind::Promote {
            image: pv.image.value.clone(),
            to: pv.to.value.clone(),
            require_approval: pv.require_approval.as_ref().map(|a| a.value.clone()),
            force: pv.force.as_ref().map(|f| f.value.clone()),
        }
    } else if let Some(d) = &rs.deploy {
        let dv = &d.value;
        for x in [
            Some(&dv.env),
            Some(&dv.app),
            dv.overlay.as_ref(),
            dv.image.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            check_refs(p, x, scope);
        }
        if let Some(r) = &dv.repo
            && !scope.repos.contains_key(&r.value)
        {
            p.at(
                &r.referenced,
                format!(
                    "unknown repository `{}` (declare it under `repos`)",
                    r.value
                ),
            );
        }
        StepKind::Deploy {
            env: dv.env.value.clone(),
            repo: dv.repo.as_ref().map(|r| r.value.clone()),
            app: dv.app.value.clone(),
            overlay: dv.overlay.as_ref().map(|o| o.value.clone()),
            image: dv.image.as_ref().map(|i| i.value.clone()),
            timeout: dv.timeout.as_ref().and_then(|t| duration(p, t)),
        }
    } else if let Some(a) = &rs.approve {
        let av = &a.value;
        check_refs(p, &av.message, scope);
        for who in &av.approvers {
            if !valid_subject(&who.value) {
                p.at(
                    &who.referenced,
                    format!(
                        "`{}` is not `role:viewer|developer|deployer|admin` or `user:NAME`",
                        who.value
                    ),
                );
            }
        }
        StepKind::Approve {
            message: av.message.value.clone(),
            approvers: av.approvers.iter().map(|w| w.value.clone()).collect(),
            env: av.env.as_ref().map(|e| e.value.clone()),
            timeout: av
                .timeout
                .as_ref()
                .and_then(|t| duration(p, t))
                .unwrap_or(DEFAULT_APPROVAL_TIMEOUT),
        }
    } else if let Some(m) = &rs.merge {
        let mv = &m.value;
        for x in [mv.from.as_ref(), Some(&mv.into)].into_iter().flatten() {
            check_refs(p, x, scope);
        }
        if mv.into.value.trim().is_empty() {
            p.at(&mv.into.referenced, "`into` names a branch");
        }
        if let Some(sec) = &mv.secret
            && !valid_name(&sec.value)
        {
            p.at(
                &sec.referenced,
                format!("invalid secret name `{}`", sec.value),
            );
        }
        StepKind::Merge {
            from: mv.from.as_ref().map(|f| f.value.clone()),
            into: mv.into.value.clone(),
            fast_forward_only: mv.fast_forward_only,
            secret: mv.secret.as_ref().map(|s| s.value.clone()),
        }
    } else {
        return None;
    };
    Some(Step {
        name: name.to_string(),
        needs: rs.needs.iter().map(|n| n.value.clone()).collect(),
        when,
        timeout,
        retry,
        env,
        secrets: rs.secrets.iter().map(|s| s.value.clone()).collect(),
        kind,
    })
}

/// Steps in an order where each comes after what it needs (file order among equals:
/// by line), or the steps of one cycle, starting and ending with the same step.
fn topological(steps: &BTreeMap<String, Spanned<RawStep>>) -> Result<Vec<String>, Vec<String>> {
    let mut by_line: Vec<&String> = steps.keys().collect();
    by_line.sort_by_key(|n| (steps[*n].referenced.line(), steps[*n].referenced.column()));
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 = on the path, 2 = done
    let mut order = Vec::new();
    fn visit<'a>(
        name: &'a str,
        steps: &'a BTreeMap<String, Spanned<RawStep>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match state.get(name) {
            Some(2) => return Ok(()),
            Some(1) => {
                let start = path.iter().position(|p| *p == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Err(cycle);
            }
            _ => {}
        }
        state.insert(name, 1);
        path.push(name);
        if let Some(s) = steps.get(name) {
            for n in &s.value.needs {
                if steps.contains_key(&n.value) && n.value != name {
                    visit(&n.value, steps, state, path, order)?;
                }
            }
        }
        path.pop();
        state.insert(name, 2);
        order.push(name.to_string());
        Ok(())
    }
    for name in by_line {
        visit(name, steps, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// For each step, every step it depends on directly or transitively.
fn ancestors(steps: &BTreeMap<String, Spanned<RawStep>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for name in steps.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = vec![name];
        while let Some(n) = todo.pop() {
            if let Some(s) = steps.get(n) {
                for dep in &s.value.needs {
                    if dep.value != *name && seen.insert(dep.value.clone()) {
                        todo.push(&dep.value);
                    }
                }
            }
        }
        out.insert(name.clone(), seen);
    }
    out
}
