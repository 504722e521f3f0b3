//! The `merge` step: a commit merged into another branch of the pipeline's repository
//! (fast-forward or merge commit), then pushed.

use super::ServerSteps;
use crate::{Outputs, StepContext, Stream};
use futures_util::future::BoxFuture;
use model::pipeline::Step;

impl ServerSteps {
    /// Merges `from` (default: the run's commit) into `into` and pushes.
    pub(super) fn merge(
        &self,
        step: &Step,
        cx: StepContext,
        from: Option<&String>,
        into: &str,
        fast_forward_only: bool,
        secret: Option<&String>,
    ) -> BoxFuture<'static, Result<Outputs, String>> {
        let (from, into, ff, secret) = (
            from.cloned(),
            into.to_string(),
            fast_forward_only,
            secret.cloned(),
        );
        let (service, pipeline, run, number, step_name) = (
            self.service.clone(),
            self.pipeline.clone(),
            self.run.clone(),
            self.number,
            step.name.clone(),
        );
        Box::pin(async move {
            let from = match from {
                Some(f) => cx.values.render(&f)?,
                None => cx.values.run.get("sha").cloned().unwrap_or_default(),
            };
            let into = cx.values.render(&into)?;
            let url = service.source(&pipeline).map_err(|e| e.to_string())?.repo;
            let creds = match &secret {
                Some(name) => Some(crate::repos::Credentials::from_secret(
                    &(service.inner.secrets)(&pipeline, name)
                        .map_err(|e| format!("secret `{name}`: {e}"))?,
                )),
                None => None,
            };
            let short: String = from.chars().take(12).collect();
            (cx.log)(
                Stream::System,
                format!("merging {short} into {into} of {url}"),
            );
            let dir = service
                .inner
                .runs_dir
                .join(&run)
                .join(format!("merge-{step_name}"));
            let message = format!("Merge {short} into {into} (released by {pipeline} #{number})");
            let merged = crate::repos::merge_and_push(
                &url,
                &from,
                &into,
                ff,
                &message,
                &dir,
                creds.as_ref(),
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
            let merged = merged?;
            (cx.log)(
                Stream::System,
                if merged.up_to_date {
                    format!("{into} already contains {short}; nothing to push")
                } else if merged.fast_forward {
                    format!("fast-forwarded {into} to {} and pushed", merged.sha)
                } else {
                    format!("merged into {into} as {} and pushed", merged.sha)
                },
            );
            Ok(Outputs::from([
                ("sha".to_string(), merged.sha),
                ("before".to_string(), merged.before),
                ("fast_forward".to_string(), merged.fast_forward.to_string()),
            ]))
        })
    }
}
