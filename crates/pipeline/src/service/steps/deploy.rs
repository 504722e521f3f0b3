//! The `deploy` step: an app definition rendered for its environment and deployed through
//! the control plane, one deploy at a time per environment.

use super::super::queue::RepoCheckout;
use crate::service::checkout::read_in_workspace;
use crate::service::registry::{ManifestError, manifest, registry_parts};
use crate::service::waits::EnvWait;
use crate::service::{Actor, Deployer, DeploymentNews, DockerSetup, Service};
use crate::{Outputs, StepContext, Stream};
use model::pipeline::{Step, StepKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How often a deploy step asks a deployer without news how its deployment is doing.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// How often a deploy step asks anyway while it waits for news (news can be lost).
const SAFETY_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns at the next news of `deployment` (or of possibly missed news); never when the
/// news end.
async fn news_of(news: &mut DeploymentNews, deployment: &str) {
    use futures_util::StreamExt;
    loop {
        match news.next().await {
            Some(Some(id)) if id != deployment => {}
            Some(_) => return,
            None => std::future::pending().await,
        }
    }
}

/// Merges `overlay` into `base`: objects key by key, everything else replaced.
pub fn merge_json(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The `deploy` step: the app definition for the environment (base file, overlay, the
/// image pinned to what the pipeline built), deployed through the control plane as `who`
/// (see [`ServerSteps::deployer_of`]), under the environment's policy; waits for the
/// deployment and reports its progress. One deploy at a time per environment.
/// The run a deploy step belongs to.
pub(super) struct RunRef {
    pub(super) id: String,
    pub(super) pipeline: String,
    pub(super) number: i64,
}

/// Forgets a run's wait for an environment however the wait ends.
struct EnvWaitGuard<'a>(&'a Service, &'a str);

impl Drop for EnvWaitGuard<'_> {
    fn drop(&mut self) {
        self.0.env_acquired(self.1);
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn deploy_step(
    service: &Service,
    deployer: Option<Arc<dyn Deployer>>,
    setup: Option<DockerSetup>,
    cx: &StepContext,
    step: &Step,
    who: &Actor,
    repos: &BTreeMap<String, RepoCheckout>,
    run: &RunRef,
) -> Result<Outputs, String> {
    let StepKind::Deploy {
        env,
        repo,
        app,
        overlay,
        image,
        timeout,
    } = &step.kind
    else {
        return Err("not a deploy step".into());
    };
    let deployer = deployer.ok_or("deploys are not enabled on this server")?;
    let root = match repo {
        Some(name) => {
            let r = repos
                .get(name)
                .ok_or_else(|| format!("repository `{name}` is not checked out"))?;
            (cx.log)(
                Stream::System,
                format!("app definitions from {name} ({}) at {}", r.url, r.sha),
            );
            r.dir.clone()
        }
        None => cx.workspace.clone(),
    };
    let read = |file: &str| -> Result<serde_json::Value, String> {
        let text = read_in_workspace(&root, file)?;
        let text = cx.values.render_file(file, &text)?;
        serde_json::from_str(&text).map_err(|e| format!("{file}: not JSON: {e}"))
    };
    let env = cx.values.render(env)?;
    let mut def = read(&cx.values.render(app)?)?;
    if let Some(o) = overlay {
        merge_json(&mut def, read(&cx.values.render(o)?)?);
    }
    if let Some(image) = image {
        let mut image = cx.values.render(image)?;
        if !image.contains('@')
            && let Ok((registry, repo, _)) = registry_parts(&image)
        {
            // A tag is pinned to the digest it names now: what runs is what was tested,
            // whatever the tag points at later. A registry this server cannot ask (TLS,
            // unreachable) leaves the tag as it is, said in the log.
            match manifest(setup.as_ref(), &image).await {
                Ok((digest, _, _)) => {
                    (cx.log)(Stream::System, format!("{image} is {digest}"));
                    image = format!("{registry}/{repo}@{digest}");
                }
                // The registry answered: the tag is not there (or not for us).
                Err(ManifestError::Refused(e)) => return Err(e),
                Err(ManifestError::Unreachable(e)) => (cx.log)(
                    Stream::System,
                    format!("warning: {image} not pinned to a digest ({e}); deploying the tag"),
                ),
            }
        }
        let docker = def
            .get_mut("container")
            .and_then(|c| c.get_mut("docker"))
            .and_then(serde_json::Value::as_object_mut)
            .ok_or("`image` is set but the app definition has no container.docker")?;
        docker.insert("image".into(), serde_json::Value::String(image.clone()));
        (cx.log)(Stream::System, format!("image: {image}"));
    }
    // The app belongs to the step's environment (a label cannot loosen a stricter path).
    if let Some(obj) = def.as_object_mut() {
        let labels = obj.entry("labels").or_insert_with(|| serde_json::json!({}));
        if let Some(l) = labels.as_object_mut() {
            // `BB/prod` is the environment `prod` (in datacenter BB, which the id names).
            let name = auth::environment_name(&env).to_string();
            l.entry("SLIPWAY_ENV")
                .or_insert_with(|| serde_json::Value::String(name));
        }
    }
    let app_id = def["id"].as_str().unwrap_or("").to_string();
    let pinned = def
        .pointer("/container/docker/image")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    (cx.log)(
        Stream::System,
        format!("waiting for the {env} environment (one deploy at a time)"),
    );
    let lock = service.env_lock(&env);
    let env_name = auth::environment_name(&env).to_string();
    service.env_waiting(
        &run.id,
        EnvWait {
            pipeline: run.pipeline.clone(),
            number: run.number,
            env: env_name,
            what: format!(
                "the {env} environment (deploy step `{}`, one deploy at a time)",
                step.name
            ),
        },
    );
    let waiting = EnvWaitGuard(service, &run.id);
    let _turn = lock.lock().await;
    drop(waiting);
    // Subscribed before the deploy, so no news of the deployment is missed.
    let mut news = deployer.deployment_news();
    let deployment = deployer.deploy(who, def)?;
    (cx.log)(
        Stream::System,
        format!("deploying {app_id} to {env} as {who}: deployment {deployment}"),
    );
    let limit = timeout.unwrap_or(std::time::Duration::from_secs(600));
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    loop {
        match deployer.status(&deployment)? {
            Some(s) if s.status == "success" => {
                (cx.log)(Stream::System, format!("{app_id} is deployed to {env}"));
                let mut out = Outputs::from([
                    ("deployment".to_string(), deployment),
                    ("app".to_string(), app_id),
                    ("env".to_string(), env),
                ]);
                if let Some(image) = pinned {
                    if let Some((_, digest)) = image.split_once('@') {
                        out.insert("digest".into(), digest.to_string());
                    }
                    out.insert("image".into(), image);
                }
                return Ok(out);
            }
            Some(s) if s.status == "failed" => {
                let why = s.reason.unwrap_or_else(|| "the deployment failed".into());
                return Err(format!("deployment of {app_id} to {env} failed: {why}"));
            }
            Some(s) => {
                if s.progress != last && !s.progress.is_empty() {
                    (cx.log)(Stream::System, s.progress.clone());
                    last = s.progress;
                }
            }
            None => return Err(format!("deployment {deployment} vanished")),
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "deployment of {app_id} to {env} did not finish within {}",
                crate::runner::human(limit)
            ));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match news.as_mut() {
            // Woken by news of this deployment; a slow poll covers news lost to lag.
            Some(news) => tokio::select! {
                () = news_of(news, &deployment) => {}
                () = tokio::time::sleep(SAFETY_POLL.min(left)) => {}
                () = cx.cancel.cancelled() => return Err("cancelled".into()),
            },
            None => tokio::select! {
                () = tokio::time::sleep(POLL.min(left)) => {}
                () = cx.cancel.cancelled() => return Err("cancelled".into()),
            },
        }
    }
}
