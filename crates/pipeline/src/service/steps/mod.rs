//! The step kinds the server carries out (everything but host `run` steps), one module
//! each, chosen by an exhaustive `match` on [`ServerStep`].

mod approve;
mod container;
mod deploy;
mod gate;
mod image;
mod merge;
mod promote;

pub use deploy::merge_json;

use super::Service;
use super::actor::Actor;
use super::observer::StoreObserver;
use super::queue::RepoCheckout;
use super::waits::Turn;
use crate::{OtherSteps, Outputs, StepContext};
use futures_util::future::BoxFuture;
use model::pipeline::{Pipeline, Step, StepKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The step kinds the server carries out (everything but host `run` steps): approvals
/// waiting for [`Service::decide`] or their timeout, gates, image builds, promotions,
/// containerised `run` steps and deploys.
pub(super) struct ServerSteps {
    pub(super) service: Service,
    pub(super) run: String,
    pub(super) observer: Arc<StoreObserver>,
    pub(super) pipeline: String,
    pub(super) branch: String,
    pub(super) triggered_by: String,
    /// `push`, `manual`, `cron` or `retry`.
    pub(super) event: String,
    pub(super) number: i64,
    pub(super) repos: BTreeMap<String, RepoCheckout>,
    pub(super) definition: Arc<Pipeline>,
    /// The run's turn in its pipeline's queue, given up when it waits for an approval.
    pub(super) turn: Turn,
    /// The uid and gid the run's steps run as (containers too), unless the server's own.
    pub(super) run_as: Option<(u32, u32)>,
}

impl ServerSteps {
    /// Who a `deploy` step deploys as: whoever approved the nearest approval it depends on
    /// (the person who let the release through, e.g. a deployer for prod), else whoever
    /// started the run (a push, poll or cron run deploys as a developer).
    fn deployer_of(&self, step: &Step, cx: &StepContext) -> Actor {
        let by_name: HashMap<&str, &Step> = self
            .definition
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        let mut queue: std::collections::VecDeque<&str> =
            step.needs.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name) {
                continue;
            }
            let Some(s) = by_name.get(name) else { continue };
            if matches!(s.kind, StepKind::Approve { .. })
                && let Some(by) = cx
                    .values
                    .outputs
                    .get(name)
                    .and_then(|o| o.get("approved_by"))
            {
                return Actor::approver(by);
            }
            queue.extend(s.needs.iter().map(String::as_str));
        }
        self.starter()
    }

    /// Who started the run, as it acts.
    fn starter(&self) -> Actor {
        Actor::of_run(&self.triggered_by, &self.event)
    }
}

impl OtherSteps for ServerSteps {
    fn run(&self, step: &Step, cx: StepContext) -> BoxFuture<'static, Result<Outputs, String>> {
        match &step.kind {
            StepKind::Gate { .. } => {
                let result = self.gate(step, &cx);
                Box::pin(async move { result })
            }
            StepKind::Run {
                commands,
                image: Some(image),
            } => {
                let setup = self.service.docker_setup();
                let (commands, image, step) = (commands.clone(), image.clone(), step.clone());
                let run_id = self.run.clone();
                let user = self.run_as;
                Box::pin(async move {
                    container::container_step(setup, &cx, &run_id, &step, &image, &commands, user)
                        .await
                })
            }
            // The executor runs host commands itself.
            StepKind::Run { image: None, .. } => {
                let name = step.name.clone();
                Box::pin(async move { Err(format!("`{name}` runs on the host, not here")) })
            }
            StepKind::Promote {
                image,
                to,
                require_approval,
                force,
            } => {
                let deployer = self.service.deployer();
                let setup = self.service.docker_setup();
                let (image, to, approval, force) = (
                    image.clone(),
                    to.clone(),
                    require_approval.clone(),
                    force.clone(),
                );
                let (service, who) = (self.service.clone(), self.starter());
                Box::pin(async move {
                    promote::promote_step(
                        &service,
                        deployer,
                        setup,
                        &cx,
                        &who,
                        &image,
                        &to,
                        approval.as_deref(),
                        force.as_deref(),
                    )
                    .await
                })
            }
            StepKind::Docker {
                context,
                dockerfile,
                push,
                tags,
            } => {
                let setup = self.service.docker_setup();
                let (context, dockerfile, push, tags) = (
                    context.clone(),
                    dockerfile.clone(),
                    push.clone(),
                    tags.clone(),
                );
                Box::pin(async move {
                    image::docker_step(setup, &cx, &context, dockerfile.as_deref(), &push, &tags)
                        .await
                })
            }
            StepKind::Merge {
                from,
                into,
                fast_forward_only,
                secret,
            } => self.merge(
                step,
                cx,
                from.as_ref(),
                into,
                *fast_forward_only,
                secret.as_ref(),
            ),
            StepKind::Approve {
                message,
                approvers,
                timeout,
                env,
            } => self.approve(step, cx, message, approvers, *timeout, env.as_deref()),
            StepKind::Deploy { .. } => {
                let deployer = self.service.deployer();
                let setup = self.service.docker_setup();
                let (service, who, repos) = (
                    self.service.clone(),
                    self.deployer_of(step, &cx),
                    self.repos.clone(),
                );
                let run = deploy::RunRef {
                    id: self.run.clone(),
                    pipeline: self.pipeline.clone(),
                    number: self.number,
                };
                let step = step.clone();
                Box::pin(async move {
                    deploy::deploy_step(&service, deployer, setup, &cx, &step, &who, &repos, &run)
                        .await
                })
            }
        }
    }
}
