//! `${{ … }}` substitution in step fields, from the run's parameters, variables, facts,
//! secrets and the outputs of earlier steps.

use model::pipeline::{ParamValue, Reference, references};
use std::collections::BTreeMap;

/// What references resolve to in one run.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// Parameters with defaults applied.
    pub params: BTreeMap<String, ParamValue>,
    /// Variables, already rendered.
    pub vars: BTreeMap<String, String>,
    /// `run.sha`, `run.branch`, `run.number`, `run.id`.
    pub run: BTreeMap<String, String>,
    /// Secret values by name.
    pub secrets: BTreeMap<String, String>,
    /// Outputs of finished steps: step → key → value.
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Values {
    /// `text` with every reference replaced; an unknown output or secret is an error
    /// (names were checked when the file was parsed, values exist only at run time).
    pub fn render(&self, text: &str) -> Result<String, String> {
        let refs = references(text).map_err(|(_, m)| m)?;
        if refs.is_empty() {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        for (_, r) in refs {
            let Some(open) = rest.find("${{") else { break };
            let close = rest[open..].find("}}").map_or(rest.len(), |c| open + c + 2);
            out.push_str(&rest[..open]);
            out.push_str(&self.lookup(&r)?);
            rest = &rest[close..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// [`Values::render`] for a file a step reads (an app definition, an overlay, perhaps
    /// from another repository), whose references were never checked: an unknown
    /// parameter, variable or run fact is an error at its place (`file:line:column:
    /// unknown parameter DeployDC (the pipeline has: …)`), every one at once, instead of
    /// rendering as an empty string.
    pub fn render_file(&self, file: &str, text: &str) -> Result<String, String> {
        let problems = self.unknown_references(file, text);
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        self.render(text).map_err(|e| format!("{file}: {e}"))
    }

    /// The problems [`Values::render_file`] reports: references to parameters, variables
    /// or run facts these values do not have, and malformed references, each as
    /// `file:line:column: message`.
    pub fn unknown_references(&self, file: &str, text: &str) -> Vec<String> {
        let at = |offset: usize| {
            let (mut line, mut column) = (1, 1);
            for c in text.chars().take(offset) {
                if c == '\n' {
                    line += 1;
                    column = 1;
                } else {
                    column += 1;
                }
            }
            format!("{file}:{line}:{column}")
        };
        let refs = match references(text) {
            Ok(refs) => refs,
            Err((offset, m)) => return vec![format!("{}: {m}", at(offset))],
        };
        let known = |kind: &str, name: &str, names: Vec<&str>| {
            let hint = model::pipeline::closest(name, names.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            format!(
                "unknown {kind} {name} ({hint}the pipeline has: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        };
        refs.iter()
            .filter_map(|(offset, r)| {
                let problem = match r {
                    Reference::Param(n) if !self.params.contains_key(n) => known(
                        "parameter",
                        n,
                        self.params.keys().map(String::as_str).collect(),
                    ),
                    Reference::Var(n) if !self.vars.contains_key(n) => known(
                        "variable",
                        n,
                        self.vars
                            .keys()
                            .map(String::as_str)
                            .filter(|v| !v.starts_with("SLIPWAY_REPO_"))
                            .collect(),
                    ),
                    Reference::Run(k) if !self.run.contains_key(k) => {
                        known("run fact", k, self.run.keys().map(String::as_str).collect())
                    }
                    _ => return None,
                };
                Some(format!("{}: {problem}", at(*offset)))
            })
            .collect()
    }

    fn lookup(&self, r: &Reference) -> Result<String, String> {
        match r {
            Reference::Param(n) => Ok(match self.params.get(n) {
                Some(ParamValue::Bool(b)) => b.to_string(),
                Some(ParamValue::Text(s)) => s.clone(),
                None => String::new(),
            }),
            Reference::Var(n) => Ok(self.vars.get(n).cloned().unwrap_or_default()),
            Reference::Run(k) => Ok(self.run.get(k).cloned().unwrap_or_default()),
            Reference::Secret(n) => self.secrets.get(n).cloned().ok_or_else(|| {
                format!("secret `{n}` is not available to this step (list it under `secrets:`)")
            }),
            Reference::Output { step, key } => self
                .outputs
                .get(step)
                .and_then(|o| o.get(key))
                .cloned()
                .ok_or_else(|| format!("step `{step}` has no output `{key}`")),
        }
    }

    /// Secret values, for masking.
    pub fn secret_values(&self) -> Vec<&str> {
        self.secrets.values().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_replaced_and_missing_outputs_are_errors() {
        let v = Values {
            params: BTreeMap::from([("Env".into(), ParamValue::Text("qa".into()))]),
            vars: BTreeMap::from([("IMAGE".into(), "reg/app".into())]),
            run: BTreeMap::from([("sha".into(), "abc123".into())]),
            secrets: BTreeMap::new(),
            outputs: BTreeMap::from([(
                "img".into(),
                BTreeMap::from([("digest".into(), "sha256:00".into())]),
            )]),
        };
        assert_eq!(
            v.render("${{ vars.IMAGE }}@${{steps.img.outputs.digest}} to ${{ params.Env }} at ${{ run.sha }}!")
                .unwrap(),
            "reg/app@sha256:00 to qa at abc123!"
        );
        assert_eq!(v.render("plain $HOME").unwrap(), "plain $HOME");
        assert_eq!(
            v.render("${{ steps.img.outputs.tag }}").unwrap_err(),
            "step `img` has no output `tag`"
        );
        assert!(
            v.render("${{ secrets.t }}")
                .unwrap_err()
                .contains("not available")
        );
    }

    #[test]
    fn files_a_step_renders_name_every_unknown_reference_at_its_place() {
        let v = Values {
            params: BTreeMap::from([
                ("DeployDc".into(), ParamValue::Text("AA".into())),
                ("Env".into(), ParamValue::Text("prod".into())),
            ]),
            run: BTreeMap::from([("sha".into(), "abc".into())]),
            ..Values::default()
        };
        let text =
            "{\n  \"id\": \"/${{ params.DeployDC }}/prod/shop\",\n  \"x\": \"${{ vars.NOPE }}\"\n}";
        assert_eq!(
            v.render_file("deploy/app.json", text).unwrap_err(),
            "deploy/app.json:2:11: unknown parameter DeployDC (did you mean `DeployDc`? the pipeline has: DeployDc, Env)\n\
             deploy/app.json:3:9: unknown variable NOPE (the pipeline has: none)"
        );
        assert_eq!(
            v.render_file("a.json", "\"/${{ params.DeployDc }}/${{ run.sha }}\"")
                .unwrap(),
            "\"/AA/abc\""
        );
    }
}
