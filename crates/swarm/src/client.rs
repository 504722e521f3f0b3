//! The connection to a Swarm manager: connect and check the role, check images against
//! their registry, apply and remove services, and read services, tasks and nodes back.

use crate::error::{Failure, api, describe, failure};
use crate::labels::{
    LABEL_AGENT, LABEL_APP, LABEL_CONFIG, LABEL_SPEC, LABEL_TEMPLATE, LABEL_VERSION,
};
use crate::tasks::{SwarmNode, SwarmTask, owned_by, swarm_task, update_status};
use crate::{ServiceDraft, ServiceUpdate, SwarmError};
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{LocalNodeState, NetworkCreateRequest, NodeState, Service};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptions, ListTasksOptions, StopContainerOptions,
    UpdateServiceOptions,
};
use std::collections::HashMap;
use std::time::Duration;

/// Per-request timeout for response headers.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Bound on connecting, negotiating and checking the role.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on asking a registry for an image's manifest.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at an update that races another writer of the same service.
const UPDATE_ATTEMPTS: usize = 4;

/// Credentials for a private registry, passed to the nodes that pull the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// Registry host (`registry.example.com:5000`).
    pub server_address: String,
}

fn credentials(a: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.clone()),
        serveraddress: Some(a.server_address.clone()),
        ..Default::default()
    }
}

/// An image found in its registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The image as named.
    pub image: String,
    /// Its manifest digest (`sha256:…`).
    pub digest: String,
    /// The image pinned to it (`repo:tag@sha256:…`): what every node runs.
    pub pinned: String,
}

/// What [`SwarmClient::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The service did not exist and was created.
    Created,
    /// The service was updated; `rolling` when its tasks are replaced (the task template
    /// changed), not when only the scale or the service's labels did.
    Updated {
        /// Tasks are being replaced.
        rolling: bool,
    },
    /// The service already had this spec.
    Unchanged,
}

/// The result of [`SwarmClient::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The service's id.
    pub service_id: String,
    /// What was done.
    pub outcome: ApplyOutcome,
    /// The image the service runs, pinned to its digest.
    pub image: String,
    /// Warnings the daemon returned.
    pub warnings: Vec<String>,
}

/// A Slipway service as the Swarm has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Service id.
    pub id: String,
    /// Service name.
    pub name: String,
    /// The owning installation.
    pub agent_id: String,
    /// The app id.
    pub app_id: String,
    /// The app version it was last applied from.
    pub version: String,
    /// The configuration version of its current spec.
    pub config_version: String,
    /// Replicas wanted.
    pub replicas: u64,
    /// The image of its current spec (pinned).
    pub image: String,
    /// Fingerprint of its spec as Slipway sent it.
    pub fingerprint: String,
    /// Its version index (for updates).
    pub version_index: u64,
    /// Where its last update is, if it had one.
    pub update: Option<ServiceUpdate>,
}

fn service_info(s: &Service) -> ServiceInfo {
    let spec = s.spec.clone().unwrap_or_default();
    let labels = spec.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    ServiceInfo {
        id: s.id.clone().unwrap_or_default(),
        name: spec.name.clone().unwrap_or_default(),
        agent_id: label(LABEL_AGENT),
        app_id: label(LABEL_APP),
        version: label(LABEL_VERSION),
        config_version: label(LABEL_CONFIG),
        replicas: spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
            .and_then(|r| u64::try_from(r).ok())
            .unwrap_or(0),
        image: spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        fingerprint: label(LABEL_SPEC),
        version_index: s.version.as_ref().and_then(|v| v.index).unwrap_or(0),
        update: s.update_status.as_ref().and_then(update_status),
    }
}

/// The registry host an image reference names, if any (`None`: Docker Hub).
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    (!rest.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost"))
        .then_some(first)
}

/// `image` without a digest, pinned to `digest`.
fn pin(image: &str, digest: &str) -> String {
    let base = image.split_once('@').map_or(image, |(b, _)| b);
    format!("{base}@{digest}")
}

/// A connection to a Swarm manager's Docker API, cheap to clone.
#[derive(Clone, Debug)]
pub struct SwarmClient {
    api: bollard::Docker,
    node_id: String,
    node_addr: String,
}

impl SwarmClient {
    /// Connects to the daemon at `host` (`None`: the local socket or `DOCKER_HOST`;
    /// `unix:///…`, `/path/to.sock`, `tcp://…`), negotiates the API version down to what it
    /// speaks, and checks that it is a Swarm manager.
    pub async fn connect(host: Option<&str>) -> Result<SwarmClient, SwarmError> {
        let unreachable = |e: BollardError| SwarmError::Unreachable(describe(&e));
        let api = match host.map(str::trim) {
            None | Some("") => bollard::Docker::connect_with_unix_defaults(),
            Some(h) if h.starts_with('/') || h.starts_with("unix://") => {
                bollard::Docker::connect_with_unix(
                    h,
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            Some(h) => bollard::Docker::connect_with_host(h),
        }
        .map_err(unreachable)?;
        let setup = async {
            let api = api.negotiate_version().await.map_err(unreachable)?;
            let info = api.info().await.map_err(unreachable)?;
            Ok::<_, SwarmError>((api, info))
        };
        let (api, info) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| {
                SwarmError::Unreachable("the daemon did not answer within 20 s".into())
            })??;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm.local_node_state.unwrap_or(LocalNodeState::EMPTY);
        if state != LocalNodeState::ACTIVE {
            return Err(SwarmError::NotManager(format!(
                "this Docker daemon is not in a Swarm (its Swarm state is '{state}'): run `docker swarm init --advertise-addr ADDR` on it, or point Slipway at a Swarm manager"
            )));
        }
        if swarm.control_available != Some(true) {
            return Err(SwarmError::NotManager(
                "this Docker daemon is a Swarm worker, not a manager: point Slipway at a manager (`docker node ls` on one lists them)".into(),
            ));
        }
        Ok(SwarmClient {
            api,
            node_id: swarm.node_id.unwrap_or_default(),
            node_addr: swarm.node_addr.unwrap_or_default(),
        })
    }

    /// The negotiated Engine API version, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.api.client_version().to_string()
    }

    /// The id of the manager node this client talks to.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The address the manager node this client talks to has in the Swarm (its tasks are
    /// reached there).
    pub fn node_addr(&self) -> &str {
        &self.node_addr
    }

    /// The Swarm's nodes.
    pub async fn nodes(&self) -> Result<Vec<SwarmNode>, SwarmError> {
        let nodes = self
            .api
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(api("list nodes"))?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let status = n.status.unwrap_or_default();
                let spec = n.spec.unwrap_or_default();
                SwarmNode {
                    id: n.id.unwrap_or_default(),
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    addr: status.addr.unwrap_or_default(),
                    role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
                    ready: status.state == Some(NodeState::READY),
                    availability: spec.availability.map(|a| a.to_string()).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Checks that the Swarm's nodes can pull `image` (the manager asks the image's
    /// registry for its manifest) and returns its digest. An image that names no registry
    /// and exists only in this daemon, or that its registry does not have, gets an error
    /// saying what to push where.
    pub async fn resolve_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<ResolvedImage, SwarmError> {
        let asked = tokio::time::timeout(
            REGISTRY_TIMEOUT,
            self.api
                .inspect_registry_image(image, auth.map(credentials)),
        )
        .await;
        let answer = match asked {
            Ok(Ok(found)) => match found.descriptor.digest {
                Some(digest) => {
                    return Ok(ResolvedImage {
                        image: image.to_string(),
                        pinned: pin(image, &digest),
                        digest,
                    });
                }
                None => "the registry returned no digest".to_string(),
            },
            Ok(Err(e)) => match failure(e) {
                Failure::Unreachable(m) => return Err(SwarmError::Unreachable(m)),
                Failure::NotFound(m) | Failure::Other(m) => m,
            },
            Err(_) => format!(
                "the registry did not answer within {} s",
                REGISTRY_TIMEOUT.as_secs()
            ),
        };
        let local = self.api.inspect_image(image).await.is_ok();
        let reason = match (registry_host(image), local) {
            (None, true) => format!(
                "it names no registry, so the nodes would pull it from Docker Hub ({answer}); it exists only in this Docker daemon's image store: tag and push it to a registry the nodes reach (docker tag {image} REGISTRY/{image} && docker push REGISTRY/{image}) and deploy that name"
            ),
            (None, false) => format!(
                "it names no registry, so the nodes would pull it from Docker Hub, which answered: {answer}"
            ),
            (Some(host), true) => format!(
                "registry {host} does not have it ({answer}); it exists only in this Docker daemon's image store: push it first (docker push {image})"
            ),
            (Some(host), false) => format!("registry {host} answered: {answer}"),
        };
        Err(SwarmError::ImageNotPullable {
            image: image.to_string(),
            reason,
        })
    }

    async fn find(&self, name: &str) -> Result<Option<Service>, SwarmError> {
        match self.api.inspect_service(name, None).await {
            Ok(s) => Ok(Some(s)),
            Err(e) => match failure(e) {
                Failure::NotFound(_) => Ok(None),
                Failure::Unreachable(m) => Err(SwarmError::Unreachable(m)),
                Failure::Other(message) => Err(SwarmError::Api {
                    action: format!("inspect service {name}"),
                    message,
                }),
            },
        }
    }

    /// Makes the Swarm run `draft`: creates the service, updates it when its spec differs
    /// (with the service's current version index), or does nothing when it is the same.
    /// The image is checked against its registry and pinned to its digest, unless the task
    /// template is unchanged (then the service keeps the digest it runs, so a scale does
    /// not pull a moved tag). Overlay networks are created when missing.
    pub async fn apply(
        &self,
        draft: &ServiceDraft,
        auth: Option<&RegistryAuth>,
    ) -> Result<Applied, SwarmError> {
        let mut warnings = Vec::new();
        for attempt in 1..=UPDATE_ATTEMPTS {
            let current = self.find(&draft.name).await?;
            let Some(current) = current else {
                let image = self.resolve_image(&draft.image, auth).await?.pinned;
                for n in &draft.overlays {
                    self.ensure_overlay(n, &draft.agent_id).await?;
                }
                let mut spec = draft.spec.clone();
                set_image(&mut spec, &image);
                match self.api.create_service(spec, auth.map(credentials)).await {
                    Ok(r) => {
                        warnings.extend(r.warnings.unwrap_or_default());
                        return Ok(Applied {
                            service_id: r.id.unwrap_or_default(),
                            outcome: ApplyOutcome::Created,
                            image,
                            warnings,
                        });
                    }
                    // Someone created it meanwhile: update it instead.
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    }) if attempt < UPDATE_ATTEMPTS => continue,
                    Err(e) => return Err(api(format!("create service {}", draft.name))(e)),
                }
            };
            let info = service_info(&current);
            if info.agent_id != draft.agent_id {
                return Err(SwarmError::Foreign {
                    name: draft.name.clone(),
                    agent: draft.agent_id.clone(),
                    owner: info.agent_id,
                });
            }
            if info.fingerprint == draft.fingerprint {
                return Ok(Applied {
                    service_id: info.id,
                    outcome: ApplyOutcome::Unchanged,
                    image: info.image,
                    warnings,
                });
            }
            let old_template = current
                .spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(LABEL_TEMPLATE));
            let rolling = old_template != Some(&draft.template_fingerprint);
            let image = if rolling || info.image.is_empty() {
                self.resolve_image(&draft.image, auth).await?.pinned
            } else {
                info.image.clone()
            };
            for n in &draft.overlays {
                self.ensure_overlay(n, &draft.agent_id).await?;
            }
            let mut spec = draft.spec.clone();
            set_image(&mut spec, &image);
            let options = UpdateServiceOptions {
                version: i32::try_from(info.version_index).unwrap_or(i32::MAX),
                registry_auth_from: "spec".into(),
                ..Default::default()
            };
            match self
                .api
                .update_service(&info.id, spec, options, auth.map(credentials))
                .await
            {
                Ok(r) => {
                    warnings.extend(r.warnings.unwrap_or_default());
                    return Ok(Applied {
                        service_id: info.id,
                        outcome: ApplyOutcome::Updated { rolling },
                        image,
                        warnings,
                    });
                }
                // Another writer changed it since we read its version: read it again.
                Err(BollardError::DockerResponseServerError { message, .. })
                    if message.contains("out of sequence") && attempt < UPDATE_ATTEMPTS => {}
                Err(e) => return Err(api(format!("update service {}", draft.name))(e)),
            }
        }
        Err(SwarmError::Api {
            action: format!("update service {}", draft.name),
            message: format!("it kept changing under us ({UPDATE_ATTEMPTS} attempts)"),
        })
    }

    /// Removes the services of app `app_id` owned by `agent_id`; returns how many there were.
    pub async fn remove(&self, agent_id: &str, app_id: &str) -> Result<usize, SwarmError> {
        let services = self.list(agent_id, Some(app_id)).await?;
        for s in &services {
            match self.api.delete_service(&s.id).await {
                Ok(()) => {}
                Err(e) => match failure(e) {
                    Failure::NotFound(_) => {}
                    Failure::Unreachable(m) => return Err(SwarmError::Unreachable(m)),
                    Failure::Other(message) => {
                        return Err(SwarmError::Api {
                            action: format!("remove service {}", s.name),
                            message,
                        });
                    }
                },
            }
        }
        Ok(services.len())
    }

    async fn list(
        &self,
        agent_id: &str,
        app: Option<&str>,
    ) -> Result<Vec<ServiceInfo>, SwarmError> {
        let services = self
            .api
            .list_services(Some(ListServicesOptions {
                filters: Some(owned_by(agent_id, app)),
                ..Default::default()
            }))
            .await
            .map_err(api("list services"))?;
        Ok(services.iter().map(service_info).collect())
    }

    /// The services owned by `agent_id`.
    pub async fn services(&self, agent_id: &str) -> Result<Vec<ServiceInfo>, SwarmError> {
        self.list(agent_id, None).await
    }

    /// The service of app `app_id` owned by `agent_id`, if there is one.
    pub async fn service(
        &self,
        agent_id: &str,
        app_id: &str,
    ) -> Result<Option<ServiceInfo>, SwarmError> {
        Ok(self.list(agent_id, Some(app_id)).await?.into_iter().next())
    }

    /// The tasks of the services `service_ids`, with their nodes' addresses. This includes
    /// the ended tasks the Swarm still keeps (see [`crate::TaskStatus::is_active`]).
    pub async fn tasks_of(&self, service_ids: &[String]) -> Result<Vec<SwarmTask>, SwarmError> {
        if service_ids.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self
            .api
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([(
                    "service".to_string(),
                    service_ids.to_vec(),
                )])),
            }))
            .await
            .map_err(api("list tasks"))?;
        let nodes: HashMap<String, SwarmNode> = self
            .nodes()
            .await?
            .into_iter()
            .map(|n| (n.id.clone(), n))
            .collect();
        let none = HashMap::new();
        Ok(tasks
            .iter()
            // The filter matches id prefixes too.
            .filter(|t| {
                t.service_id
                    .as_ref()
                    .is_some_and(|s| service_ids.contains(s))
            })
            .map(|t| swarm_task(t, &nodes, &none))
            .collect())
    }

    /// The tasks of one service.
    pub async fn tasks(&self, service_id: &str) -> Result<Vec<SwarmTask>, SwarmError> {
        self.tasks_of(&[service_id.to_string()]).await
    }

    /// The tasks of every service owned by `agent_id`.
    pub async fn agent_tasks(&self, agent_id: &str) -> Result<Vec<SwarmTask>, SwarmError> {
        let ids: Vec<String> = self
            .services(agent_id)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        self.tasks_of(&ids).await
    }

    /// Stops the container of one task (its Marathon id) so that Swarm replaces it, as
    /// Marathon's task kill does. Swarm has no API to stop a single task, so this works for
    /// tasks on the manager's own node, whose daemon this client speaks to; a task on
    /// another node is refused with [`SwarmError::CannotKill`] before anything is done.
    pub async fn kill_task(&self, agent_id: &str, task_id: &str) -> Result<(), SwarmError> {
        let tasks = self.agent_tasks(agent_id).await?;
        let Some(task) = tasks.iter().find(|t| t.marathon_id() == task_id) else {
            return Err(SwarmError::Api {
                action: format!("kill task {task_id}"),
                message: "no such task in the Swarm".into(),
            });
        };
        if task.node_id != self.node_id {
            return Err(SwarmError::CannotKill(format!(
                "task {task_id} runs on node {} ({}): Docker Swarm has no API to kill one task, and Slipway reaches only the manager's own containers; restart the app to replace all its tasks, or kill with scale=true",
                task.node_hostname, task.node_addr
            )));
        }
        let Some(container) = task.container_id.as_deref() else {
            return Err(SwarmError::CannotKill(format!(
                "task {task_id} has no container yet (it is {})",
                task.swarm_state
            )));
        };
        // As Marathon and Swarm's own stop do: SIGTERM, then SIGKILL after the service's
        // stop grace period (the app's `taskKillGracePeriodSeconds`).
        let grace_s = match self.api.inspect_service(&task.service_id, None).await {
            Ok(s) => s
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.container_spec)
                .and_then(|c| c.stop_grace_period)
                .and_then(|ns| u64::try_from(ns).ok())
                .map(|ns| ns.div_ceil(1_000_000_000)),
            Err(_) => None,
        };
        let t = grace_s.map_or(10, |s| i32::try_from(s.min(600)).unwrap_or(600));
        match self
            .api
            .stop_container(
                container,
                Some(StopContainerOptions {
                    signal: None,
                    t: Some(t),
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match failure(e) {
                // Already gone: Swarm replaces it anyway.
                Failure::NotFound(_) => Ok(()),
                Failure::Unreachable(m) => Err(SwarmError::Unreachable(m)),
                Failure::Other(message) => Err(SwarmError::Api {
                    action: format!("stop container {container} of task {task_id}"),
                    message,
                }),
            },
        }
    }

    /// Creates the attachable overlay network `name` (labelled as `agent_id`'s) when it does
    /// not exist; a network of that name that is not a Swarm overlay is an error.
    pub async fn ensure_overlay(&self, name: &str, agent_id: &str) -> Result<(), SwarmError> {
        match self.api.inspect_network(name, None).await {
            Ok(n) => {
                let driver = n.driver.unwrap_or_default();
                let scope = n.scope.unwrap_or_default();
                if driver == "overlay" && scope == "swarm" {
                    Ok(())
                } else {
                    Err(SwarmError::NotOverlay {
                        name: name.to_string(),
                        driver,
                        scope,
                    })
                }
            }
            Err(e) => match failure(e) {
                Failure::Unreachable(m) => Err(SwarmError::Unreachable(m)),
                Failure::Other(message) => Err(SwarmError::Api {
                    action: format!("inspect network {name}"),
                    message,
                }),
                Failure::NotFound(_) => {
                    let made = self
                        .api
                        .create_network(NetworkCreateRequest {
                            name: name.to_string(),
                            driver: Some("overlay".into()),
                            attachable: Some(true),
                            labels: Some(HashMap::from([(
                                LABEL_AGENT.to_string(),
                                agent_id.to_string(),
                            )])),
                            ..Default::default()
                        })
                        .await;
                    match made {
                        Ok(_) => Ok(()),
                        // Made by someone else meanwhile.
                        Err(BollardError::DockerResponseServerError {
                            status_code: 409, ..
                        }) => Ok(()),
                        Err(e) => Err(api(format!("create overlay network {name}"))(e)),
                    }
                }
            },
        }
    }
}

fn set_image(spec: &mut bollard::models::ServiceSpec, image: &str) {
    if let Some(c) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    {
        c.image = Some(image.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_and_pins() {
        assert_eq!(
            registry_host("127.0.0.1:5000/web:1"),
            Some("127.0.0.1:5000")
        );
        assert_eq!(registry_host("localhost/web"), Some("localhost"));
        assert_eq!(
            registry_host("reg.example.com/a/b:1"),
            Some("reg.example.com")
        );
        assert_eq!(registry_host("library/web:1"), None);
        assert_eq!(registry_host("web:1"), None);
        assert_eq!(pin("r:5000/web:1", "sha256:ab"), "r:5000/web:1@sha256:ab");
        assert_eq!(
            pin("r:5000/web:1@sha256:00", "sha256:ab"),
            "r:5000/web:1@sha256:ab"
        );
    }
}
