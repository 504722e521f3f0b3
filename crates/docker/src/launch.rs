//! Launching a task: reuse of a container left by an earlier attempt, image pull with
//! registry credentials, user network creation, create and start.

use crate::client::{Failure, failure, ip_of, map_err};
use crate::config::{build, container_name, prepare_volumes};
use crate::{ContainerSpec, Docker, DockerError, LABEL_AGENT, LABEL_TASK, NetworkMode, Started};
use bollard::auth::DockerCredentials;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions, ListNetworksOptions};
use futures_util::StreamExt;
use std::collections::HashMap;

impl Docker {
    /// Pulls the image (when forced or missing), ensures the network, then creates and starts
    /// the container `slipway-<task_id>`. Idempotent per task: a running container of the
    /// task is adopted as is, a stopped or never-started one is replaced.
    pub async fn launch(&self, spec: &ContainerSpec) -> Result<Started, DockerError> {
        let name = container_name(&spec.task_id)?;
        let body = build(spec, &self.cfg, self.ncpu)?;
        if let Some(started) = self.reuse(&name, spec).await? {
            return Ok(started);
        }
        self.ensure_image(spec).await?;
        if let NetworkMode::User(network) = &spec.network {
            self.ensure_network(network).await?;
        }
        prepare_volumes(spec).await?;
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let id = self
            .api
            .create_container(Some(opts), body)
            .await
            .map_err(|e| map_err(e, DockerError::Create))?
            .id;
        tracing::debug!(task = %spec.task_id, container = %id, "container created");
        if let Err(e) = self.api.start_container(&id, None).await {
            return Err(match failure(e) {
                Failure::Unreachable(m) => DockerError::Unreachable(m),
                Failure::NotFound(m) | Failure::Conflict(m) | Failure::Other(m) => {
                    if let Err(e) = self.remove(&id).await {
                        tracing::warn!(container = %id, error = %e, "cannot remove unstartable container");
                    }
                    DockerError::Start(m)
                }
            });
        }
        let ip = match self.inspect(&id).await {
            Ok(Some(info)) => ip_of(&info),
            _ => None,
        };
        Ok(Started {
            container_id: id,
            ip,
        })
    }

    /// Handles a container already named for the task: adopt it while it runs, else remove
    /// it so it can be created afresh. A foreign container with that name is an error.
    async fn reuse(
        &self,
        name: &str,
        spec: &ContainerSpec,
    ) -> Result<Option<Started>, DockerError> {
        let Some(info) = self.inspect(name).await? else {
            return Ok(None);
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let ours = labels.get(LABEL_TASK) == Some(&spec.task_id)
            && labels.get(LABEL_AGENT) == Some(&self.cfg.agent_id);
        let id = info.id.clone().unwrap_or_else(|| name.to_string());
        if !ours {
            return Err(DockerError::Create(format!(
                "the name {name} is taken by container {id}, which does not belong to this task and agent"
            )));
        }
        if info.state.as_ref().and_then(|s| s.running) == Some(true) {
            tracing::info!(task = %spec.task_id, container = %id, "adopting the running container of an earlier launch");
            return Ok(Some(Started {
                ip: ip_of(&info),
                container_id: id,
            }));
        }
        tracing::info!(task = %spec.task_id, container = %id, "replacing the stopped container of an earlier launch");
        self.remove(&id).await?;
        Ok(None)
    }

    /// Pulls `spec.image` when forced or missing locally.
    async fn ensure_image(&self, spec: &ContainerSpec) -> Result<(), DockerError> {
        let image = spec.image.trim();
        let pull_error = |reason: String| DockerError::Pull {
            image: image.to_string(),
            reason,
        };
        if !spec.force_pull {
            match self.api.inspect_image(image).await {
                Ok(_) => return Ok(()),
                Err(e) => match failure(e) {
                    Failure::NotFound(_) => {}
                    Failure::Unreachable(m) => return Err(DockerError::Unreachable(m)),
                    Failure::Conflict(m) | Failure::Other(m) => return Err(pull_error(m)),
                },
            }
        }
        tracing::info!(%image, forced = spec.force_pull, "pulling image");
        let credentials = spec.registry_auth.as_ref().map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server_address.clone()),
            ..Default::default()
        });
        let opts = CreateImageOptions {
            from_image: Some(pull_reference(image)),
            ..Default::default()
        };
        let mut progress = self.api.create_image(Some(opts), None, credentials);
        while let Some(item) = progress.next().await {
            if let Err(e) = item {
                return Err(match failure(e) {
                    Failure::Unreachable(m) => DockerError::Unreachable(m),
                    Failure::NotFound(m) | Failure::Conflict(m) | Failure::Other(m) => {
                        pull_error(explain_pull_failure(m, image, spec.registry_auth.is_some()))
                    }
                });
            }
        }
        Ok(())
    }

    /// Creates the user-defined bridge network `name` (labelled with the agent) when missing.
    async fn ensure_network(&self, name: &str) -> Result<(), DockerError> {
        let network_error = |reason: String| DockerError::Network {
            network: name.to_string(),
            reason,
        };
        let _serial = self.network_lock.lock().await;
        match self.api.inspect_network(name, None).await {
            Ok(_) => return Ok(()),
            Err(e) => match failure(e) {
                Failure::NotFound(_) => {}
                Failure::Unreachable(m) => return Err(DockerError::Unreachable(m)),
                Failure::Conflict(m) | Failure::Other(m) => return Err(network_error(m)),
            },
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                LABEL_AGENT.to_string(),
                self.cfg.agent_id.clone(),
            )])),
            ..Default::default()
        };
        let created = match self.api.create_network(request).await {
            Ok(r) => r.id,
            Err(e) => return Err(map_err(e, network_error)),
        };
        tracing::info!(network = %name, "created user network");
        // API 1.41 creates duplicate names unless asked not to (and bollard cannot ask): if
        // another process raced us, everyone keeps the network with the smallest id.
        let opts = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        };
        if let Ok(list) = self.api.list_networks(Some(opts)).await {
            let winner = list
                .iter()
                .filter(|n| n.name.as_deref() == Some(name))
                .filter_map(|n| n.id.as_deref())
                .min();
            if winner.is_some_and(|w| w != created) {
                tracing::info!(network = %name, "removing a duplicate network created concurrently");
                if let Err(e) = self.api.remove_network(&created).await {
                    tracing::warn!(network = %name, error = %e, "cannot remove duplicate network");
                }
            }
        }
        Ok(())
    }
}

/// The reference to pull: a name without tag or digest means `:latest` (the API would
/// otherwise pull every tag).
pub(crate) fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The daemon's pull message, with a hint when credentials are likely the problem.
fn explain_pull_failure(message: String, image: &str, had_credentials: bool) -> String {
    let lower = message.to_ascii_lowercase();
    let auth_problem = [
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth",
    ]
    .iter()
    .any(|w| lower.contains(w));
    match (auth_problem, had_credentials) {
        (true, false) => format!(
            "{message} (no credentials for registry {} were configured)",
            crate::registry_of(image)
        ),
        (true, true) => format!(
            "{message} (the credentials for registry {} were rejected)",
            crate::registry_of(image)
        ),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_reference_adds_latest_only_to_bare_names() {
        assert_eq!(pull_reference("app"), "app:latest");
        assert_eq!(pull_reference("app:1"), "app:1");
        assert_eq!(
            pull_reference("127.0.0.1:5000/app"),
            "127.0.0.1:5000/app:latest"
        );
        assert_eq!(
            pull_reference("127.0.0.1:5000/app:2"),
            "127.0.0.1:5000/app:2"
        );
        assert_eq!(pull_reference("app@sha256:00"), "app@sha256:00");
    }

    #[test]
    fn auth_failures_get_a_hint() {
        let m = explain_pull_failure(
            "unauthorized: authentication required".into(),
            "r.io/a",
            false,
        );
        assert!(m.contains("no credentials for registry r.io"), "{m}");
        let m = explain_pull_failure("manifest unknown".into(), "a", false);
        assert_eq!(m, "manifest unknown");
    }
}
