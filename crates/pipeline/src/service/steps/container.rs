//! `run` steps with `image:`: each command in a one-shot container.

use crate::service::DockerSetup;
use crate::{Outputs, StepContext, Stream};
use model::pipeline::Step;

/// A `run` step with `image:`: each command in a one-shot container of the image, the
/// workspace at `/workspace`, host networking; the step's env, secrets and run facts as
/// the container's environment. With `user`, the container runs as the run's step uid and
/// gid (never root, so nothing it leaves in the workspace is root's, let alone setuid
/// root), with no capabilities and no new privileges. The executor's timeout and cancel
/// end it; the container is removed either way.
pub(super) async fn container_step(
    setup: Option<DockerSetup>,
    cx: &StepContext,
    run_id: &str,
    step: &Step,
    image: &str,
    commands: &[String],
    user: Option<(u32, u32)>,
) -> Result<Outputs, String> {
    let setup = setup.ok_or("Docker is not enabled on this server (slipway up --docker auto)")?;
    let image = cx.values.render(image)?;
    let d = docker::Docker::connect(setup.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let env = crate::step_env(step, &cx.values)?;
    for (i, command) in commands.iter().enumerate() {
        let command = cx.values.render(command)?;
        (cx.log)(Stream::System, format!("+ [{image}] {command}"));
        let name = format!(
            "slipway-step-{run_id}-{}-{i}-{}",
            step.name,
            uuid::Uuid::new_v4().simple()
        );
        let id = d
            .start_oneshot(&image, &command, &env, &cx.workspace, &name, user)
            .await
            .map_err(|e| e.to_string())?;
        // Removed whatever ends this: after its exit here, on timeout or cancel (then the
        // future is dropped and the guard removes the container in the background).
        let mut guard = RemoveContainer(Some((d.clone(), id.clone())));
        let log = cx.log.clone();
        let exit = d
            .output_until_exit(&id, &move |is_err, line| {
                log(
                    if is_err {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    },
                    line,
                )
            })
            .await
            .map_err(|e| e.to_string());
        // The normal end: removed before the step reports, not left to a background task
        // that a runtime shutting down would drop.
        if let Some((d, id)) = guard.0.take() {
            let _ = d.remove(&id).await;
        }
        let exit = exit?;
        if exit.code != Some(0) {
            let why = format!("`{command}` in {image}: {}", exit.message);
            (cx.log)(Stream::System, why.clone());
            return Err(why);
        }
    }
    Ok(Outputs::new())
}

/// Removes a step's container when dropped.
struct RemoveContainer(Option<(docker::Docker, String)>);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        if let Some((d, id)) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = d.remove(&id).await;
            });
        }
    }
}
