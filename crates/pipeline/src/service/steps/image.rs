//! The `docker` step: an image built from a context in the workspace and pushed.

use crate::service::DockerSetup;
use crate::service::checkout::in_workspace;
use crate::{Outputs, StepContext, Stream};

/// The `docker` step: `docker build` of the context through the Engine API, then a push;
/// outputs `digest`, `reference` and `image` (`repo@digest`, what deploys should run).
pub(super) async fn docker_step(
    setup: Option<DockerSetup>,
    cx: &StepContext,
    context: &str,
    dockerfile: Option<&str>,
    push: &str,
    tags: &[String],
) -> Result<Outputs, String> {
    let setup = setup.ok_or("Docker is not enabled on this server (slipway up --docker auto)")?;
    let push = cx.values.render(push)?;
    let context = cx.values.render(context)?;
    let tags: Vec<String> = tags
        .iter()
        .map(|t| cx.values.render(t))
        .collect::<Result<_, _>>()?;
    let dir = in_workspace(&cx.workspace, &context)?;
    crate::service::links_stay_inside(&dir, &cx.workspace)?;
    let d = docker::Docker::connect(setup.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let auth = setup
        .registry_config
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|json| docker::credentials_for(&push, &json));
    (cx.log)(Stream::System, format!("building {push} from {context}"));
    let log = cx.log.clone();
    let pushed = d
        .build_and_push(
            &dir,
            dockerfile.unwrap_or("Dockerfile"),
            &push,
            &tags,
            auth.as_ref(),
            &move |l| log(Stream::Stdout, l),
        )
        .await
        .map_err(|e| e.to_string())?;
    let repo = docker::ImageRef::parse(&push)?.name();
    (cx.log)(
        Stream::System,
        format!("pushed {push} as {repo}@{}", pushed.digest),
    );
    Ok(Outputs::from([
        ("digest".to_string(), pushed.digest.clone()),
        ("reference".to_string(), push.clone()),
        ("image".to_string(), format!("{repo}@{}", pushed.digest)),
    ]))
}
