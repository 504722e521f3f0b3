//! The `promote` step: a tag added to an image already in the registry, by digest, after
//! checking that the digest passed a named approval.

use crate::service::registry::{self as reg, registry_auth, registry_parts};
use crate::service::{Actor, Deployer, DockerSetup, Service};
use crate::{Outputs, StepContext, Stream};
use std::sync::Arc;

/// The `promote` step: tags an image already in the registry by digest, through the
/// registry API (no rebuild), after checking that the digest passed the named approval in
/// an earlier run (an admin may force it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn promote_step(
    service: &Service,
    deployer: Option<Arc<dyn Deployer>>,
    setup: Option<DockerSetup>,
    cx: &StepContext,
    who: &Actor,
    image: &str,
    to: &str,
    require_approval: Option<&str>,
    force: Option<&str>,
) -> Result<Outputs, String> {
    let (image, to) = (cx.values.render(image)?, cx.values.render(to)?);
    let (registry, repo, _) = registry_parts(&image)?;
    let (to_registry, to_repo, tag) = registry_parts(&to)?;
    if (to_registry.as_str(), to_repo.as_str()) != (registry.as_str(), repo.as_str()) {
        return Err(format!(
            "`{to}` is not in {registry}/{repo}: promotion only adds a tag"
        ));
    }
    let (digest, content_type, manifest) = reg::manifest(setup.as_ref(), &image).await?;
    if let Some(approval) = require_approval {
        let approved = digest_passed(service, &digest, approval).map_err(|e| e.to_string())?;
        if !approved {
            let forced = force
                .map(|f| cx.values.render(f))
                .transpose()?
                .is_some_and(|f| f == "true");
            let admin = deployer.as_ref().is_some_and(|d| d.is_admin(who));
            if !(forced && admin) {
                return Err(format!(
                    "{repo}@{digest} never passed the approval `{approval}`{}",
                    if forced {
                        " (forcing it takes an admin)"
                    } else {
                        ""
                    }
                ));
            }
            (cx.log)(
                Stream::System,
                format!("{digest} never passed `{approval}`; promoted anyway, forced by {who}"),
            );
        }
    }
    let auth = registry_auth(setup.as_ref(), &image);
    let mut put = reqwest::Client::new()
        .put(format!("http://{registry}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", content_type)
        .body(manifest);
    if let Some(a) = &auth {
        put = put.basic_auth(&a.username, Some(&a.password));
    }
    let put = put
        .send()
        .await
        .map_err(|e| format!("registry {registry}: {e}"))?;
    if !put.status().is_success() {
        return Err(format!(
            "tagging {to}: the registry answered {}",
            put.status()
        ));
    }
    (cx.log)(
        Stream::System,
        format!("promoted {repo}@{digest} to {to} (no rebuild)"),
    );
    Ok(Outputs::from([
        ("digest".to_string(), digest.clone()),
        ("image".to_string(), format!("{registry}/{repo}@{digest}")),
        ("reference".to_string(), to),
    ]))
}

/// Whether `digest` was an output of a run in which the step `approval` succeeded.
fn digest_passed(
    service: &Service,
    digest: &str,
    approval: &str,
) -> Result<bool, store::StoreError> {
    let store = &service.inner.store;
    for run in store.runs(None, 2000)? {
        let steps = store.steps(&run.id)?;
        let approved = steps
            .iter()
            .any(|s| s.name == approval && s.status == store::StepStatus::Succeeded);
        let built = steps.iter().any(|s| {
            serde_json::from_str::<Outputs>(&s.outputs)
                .is_ok_and(|o| o.get("digest").map(String::as_str) == Some(digest))
        });
        if approved && built {
            return Ok(true);
        }
    }
    Ok(false)
}
