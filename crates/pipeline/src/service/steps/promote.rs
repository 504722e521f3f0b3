//! The `promote` step: an image already in a registry given a release tag, by digest and
//! without a rebuild, after checking that the digest passed a named approval. The tag may
//! be in another repository or registry: the image's blobs are mounted (same registry) or
//! copied there first.

use crate::service::registry::{Access, Registry, registry_parts};
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
    let (registry, repo, reference) = registry_parts(&image)?;
    let (to_registry, to_repo, tag) = registry_parts(&to)?;
    if docker::ImageRef::parse(&to)?.digest.is_some() {
        return Err(format!(
            "`{to}` names a digest; promotion gives the image a tag"
        ));
    }
    let source = Registry::connect(&registry, &Access::of(setup.as_ref(), &image)).await?;
    let manifest = source.manifest(&repo, &reference).await?;
    let digest = manifest.digest.clone();
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
    let target = if to_registry == registry {
        None
    } else {
        Some(Registry::connect(&to_registry, &Access::of(setup.as_ref(), &to)).await?)
    };
    let dest = target.as_ref().unwrap_or(&source);
    if target.is_some() || to_repo != repo {
        let copied = dest.copy_image(&source, &repo, &manifest, &to_repo).await?;
        let how = if target.is_some() {
            "copied"
        } else {
            "mounted"
        };
        (cx.log)(
            Stream::System,
            format!("{copied} blob(s) of {repo}@{digest} {how} into {to_registry}/{to_repo}"),
        );
    }
    let stored = dest.put_manifest(&to_repo, &tag, &manifest).await?;
    if stored != digest {
        return Err(format!(
            "{to}: the registry stored the manifest as {stored}, not {digest}"
        ));
    }
    (cx.log)(
        Stream::System,
        format!("promoted {registry}/{repo}@{digest} to {to} (no rebuild)"),
    );
    Ok(Outputs::from([
        ("digest".to_string(), digest.clone()),
        (
            "image".to_string(),
            format!("{to_registry}/{to_repo}@{digest}"),
        ),
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
