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
}
