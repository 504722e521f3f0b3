//! The `gate` step: SARIF findings of this run judged against the baseline branch's last
//! good run.

use super::ServerSteps;
use crate::service::checkout::read_in_workspace;
use crate::{Outputs, StepContext, Stream};
use model::pipeline::{Step, StepKind};

impl ServerSteps {
    /// The `gate` step: SARIF findings of this run against the last good run of the
    /// baseline branch (this pipeline's gate step of the same name).
    pub(super) fn gate(&self, step: &Step, cx: &StepContext) -> Result<Outputs, String> {
        let StepKind::Gate {
            sarif,
            baseline,
            max_new,
        } = &step.kind
        else {
            return Err("not a gate step".into());
        };
        let mut current = Vec::new();
        for file in sarif {
            let text = read_in_workspace(&cx.workspace, file)?;
            current.extend(crate::sarif::findings(&text).map_err(|e| format!("{file}: {e}"))?);
        }
        let branch = baseline.clone().unwrap_or_else(|| self.branch.clone());
        let store = &self.service.inner.store;
        let base_run = store
            .runs(Some(&self.pipeline), 500)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| {
                r.id != self.run && r.status == store::RunStatus::Succeeded && r.branch == branch
            });
        let baseline_prints: std::collections::BTreeSet<String> = match &base_run {
            Some(r) => store
                .steps(&r.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|s| s.name == step.name)
                .and_then(|s| serde_json::from_str::<Outputs>(&s.outputs).ok())
                .and_then(|o| {
                    o.get("fingerprints")
                        .and_then(|f| serde_json::from_str(f).ok())
                })
                .unwrap_or_default(),
            None => Default::default(),
        };
        let verdict = crate::sarif::judge(&current, &baseline_prints, max_new);
        match &base_run {
            Some(r) => (cx.log)(
                Stream::System,
                format!(
                    "baseline: run #{} of {branch} ({} findings)",
                    r.number,
                    baseline_prints.len()
                ),
            ),
            None => (cx.log)(
                Stream::System,
                format!("baseline: none yet for {branch}; every finding is new"),
            ),
        }
        let mut outputs = Outputs::new();
        for level in [
            model::pipeline::SarifLevel::Error,
            model::pipeline::SarifLevel::Warning,
            model::pipeline::SarifLevel::Note,
        ] {
            let new = verdict.new.get(&level).map_or(&[][..], Vec::as_slice);
            let name = crate::sarif::level_name(level);
            (cx.log)(Stream::System, format!("{} new {name}(s)", new.len()));
            for f in new.iter().take(50) {
                (cx.log)(
                    Stream::System,
                    format!("  new {name} {} at {}: {}", f.rule, f.location, f.message),
                );
            }
            outputs.insert(format!("new_{name}"), new.len().to_string());
        }
        let prints: Vec<&str> = current.iter().map(|f| f.fingerprint.as_str()).collect();
        outputs.insert("findings".into(), current.len().to_string());
        outputs.insert(
            "fingerprints".into(),
            serde_json::to_string(&prints).unwrap_or_else(|_| "[]".into()),
        );
        if verdict.over.is_empty() {
            Ok(outputs)
        } else {
            let why: Vec<String> = verdict
                .over
                .iter()
                .map(|(level, n, limit)| {
                    format!(
                        "{n} new {}-level finding(s) (at most {limit})",
                        crate::sarif::level_name(*level)
                    )
                })
                .collect();
            Err(format!("quality gate failed: {}", why.join(", ")))
        }
    }
}
