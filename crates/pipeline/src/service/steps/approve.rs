//! The `approve` step: waits for [`Service::decide`] or its timeout without holding a
//! worker; pending approvals are kept in memory and pending again after a restart.

use super::ServerSteps;
use crate::service::{Decision, Pending, PendingApproval, Service, ServiceError, now_ms};
use crate::{Outputs, StepContext, Stream};
use futures_util::future::BoxFuture;
use model::pipeline::Step;
use store::StepStatus;
use tokio::sync::oneshot;

impl ServerSteps {
    /// Asks for a decision on `step` and waits for it (or the timeout, or a cancel).
    pub(super) fn approve(
        &self,
        step: &Step,
        cx: StepContext,
        message: &str,
        approvers: &[String],
        timeout: std::time::Duration,
        env: Option<&str>,
    ) -> BoxFuture<'static, Result<Outputs, String>> {
        let (tx, rx) = oneshot::channel();
        let key = (self.run.clone(), step.name.clone());
        let message = cx
            .values
            .render(message)
            .unwrap_or_else(|_| message.to_string());
        let named_env = env.is_some();
        let info = PendingApproval {
            run: self.run.clone(),
            step: step.name.clone(),
            message: message.clone(),
            approvers: approvers.to_vec(),
            // `BB/prod` asks `prod`'s approvers.
            env: env
                .map(|e| cx.values.render(e).unwrap_or_else(|_| e.to_string()))
                .map(|e| auth::environment_name(&e).to_string())
                .unwrap_or_else(|| "default".into()),
        };
        let info_env = info.env.clone();
        self.service
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key.clone(),
                Pending {
                    tx,
                    info,
                    pipeline: self.pipeline.clone(),
                    number: self.number,
                },
            );
        let (pipeline, number, approval_env) =
            (self.pipeline.clone(), self.number, info_env.clone());
        // Waiting holds no turn: the pipeline's next runs start meanwhile.
        self.turn.give_up();
        (cx.log)(
            Stream::System,
            format!(
                "waiting for approval: {message} (approvers: {})",
                if approvers.is_empty() {
                    "per the environment policy".to_string()
                } else {
                    approvers.join(", ")
                }
            ),
        );
        self.observer
            .update(&step.name, |r| r.status = StepStatus::Waiting);
        let (observer, service, name, timeout) = (
            self.observer.clone(),
            self.service.clone(),
            step.name.clone(),
            timeout,
        );
        Box::pin(async move {
            let decision = tokio::select! {
                d = rx => d.ok(),
                () = tokio::time::sleep(timeout) => None,
                () = cx.cancel.cancelled() => None,
            };
            service
                .inner
                .approvals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            match decision {
                Some(d) => {
                    observer.update(&name, |r| {
                        r.decided_by = Some(d.by.clone());
                        r.decided_at = Some(now_ms());
                    });
                    (cx.log)(
                        Stream::System,
                        format!(
                            "{} by {}",
                            if d.approve { "approved" } else { "rejected" },
                            d.by
                        ),
                    );
                    if d.approve {
                        // Older runs waiting to go to the same environment are superseded.
                        if named_env {
                            service.supersede_older(&pipeline, number, &approval_env, &d.by);
                        }
                        Ok(Outputs::from([("approved_by".into(), d.by)]))
                    } else {
                        Err(format!("rejected by {}", d.by))
                    }
                }
                None if cx.cancel.is_cancelled() => Err("cancelled".into()),
                None => Err(format!(
                    "nobody decided within {}; rejected",
                    crate::runner::human(timeout)
                )),
            }
        })
    }
}

impl Service {
    /// Approves or rejects the pending approval of `step` in `run`. The caller has checked
    /// that the decider may (see [`Service::pending`]).
    pub fn decide(&self, run: &str, step: &str, decision: Decision) -> Result<(), ServiceError> {
        let pending = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(run.to_string(), step.to_string()))
            .ok_or_else(|| {
                ServiceError::NotFound(format!("no pending approval `{step}` in run {run}"))
            })?;
        pending.tx.send(decision).map_err(|_| {
            ServiceError::NotFound(format!("the approval `{step}` is no longer pending"))
        })
    }

    /// The pending approval of `step` in `run`, if it waits.
    pub fn pending(&self, run: &str, step: &str) -> Option<PendingApproval> {
        self.inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(run.to_string(), step.to_string()))
            .map(|p| p.info.clone())
    }

    /// Pending approvals: (run, step).
    pub fn pending_approvals(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
}
