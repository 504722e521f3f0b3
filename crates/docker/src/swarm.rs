//! Docker Swarm services: one service per app, which Swarm schedules across its nodes.
//!
//! The daemon Slipway talks to must be a Swarm manager. Services carry the labels
//! `slipway.agent` (this installation), `slipway.app` (the app id), `slipway.version` (the
//! app version they were applied from) and `slipway.config` (its
//! `versionInfo.lastConfigChangeAt`); containers carry the same labels, so each task says
//! which configuration it runs. Ports are published in host mode on the node a task runs
//! on (no routing mesh: this needs IPVS), so a task is reached at its node's address and its
//! published port.

use crate::client::map_err;
use crate::{Docker, DockerError, LABEL_AGENT, LABEL_APP, RegistryAuth, VolumeSpec};
use bollard::auth::DockerCredentials;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, Limit, Mount, MountType, NetworkAttachmentConfig, ResourceObject, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use std::collections::{BTreeMap, HashMap};

/// Label with the app version a service was applied from.
pub const LABEL_VERSION: &str = "slipway.version";
/// Label with the configuration version (`versionInfo.lastConfigChangeAt`).
pub const LABEL_CONFIG: &str = "slipway.config";

/// A published port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port inside the container.
    pub target: u16,
    /// Port on the node; `None`: a free one the node picks.
    pub published: Option<u16>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// How a service is rolled to a new version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Tasks replaced at once.
    pub parallelism: u64,
    /// Start the new task before stopping the old one (Marathon's over-capacity).
    pub start_first: bool,
    /// How long a new task is watched for failure, in ms.
    pub monitor_ms: u64,
}

/// A service as Slipway wants it, built by the engine from an app definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDef {
    /// Service name (`slipway-<agent>-<app>`, unique per installation and app).
    pub name: String,
    /// The app id.
    pub app_id: String,
    /// The app version.
    pub version: String,
    /// Its configuration version.
    pub config_version: String,
    /// The image (pinned to a digest by [`Docker::swarm_apply`]).
    pub image: String,
    /// Shell command (`sh -c`), when the app has one.
    pub cmd: Option<String>,
    /// Arguments (the image's entrypoint's, or the command's).
    pub args: Option<Vec<String>>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// The app's labels (put on the containers).
    pub labels: BTreeMap<String, String>,
    /// Replicas.
    pub replicas: u64,
    /// Published ports.
    pub ports: Vec<ServicePort>,
    /// Bind mounts (absolute host paths on every node).
    pub mounts: Vec<VolumeSpec>,
    /// Overlay networks to attach to (created when missing).
    pub networks: Vec<String>,
    /// Swarm placement constraints (`node.hostname==a`).
    pub constraints: Vec<String>,
    /// At most this many replicas per node (Marathon's `UNIQUE` hostname constraint).
    pub max_replicas_per_node: Option<u64>,
    /// CPU limit and reservation.
    pub cpus: f64,
    /// Memory limit and reservation in MiB.
    pub mem_mib: f64,
    /// The user to run as inside the container.
    pub user: Option<String>,
    /// Rolling update settings.
    pub update: UpdatePolicy,
    /// Seconds between SIGTERM and SIGKILL.
    pub stop_grace_seconds: u64,
    /// Credentials for the image's registry, passed to the nodes.
    pub registry_auth: Option<RegistryAuth>,
}

/// One task of a Slipway service, as Swarm reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmTask {
    /// Swarm's task id.
    pub id: String,
    /// The app id of its service.
    pub app_id: String,
    /// The app version its spec came from.
    pub version: String,
    /// Its configuration version.
    pub config_version: String,
    /// Its slot in the service (1-based).
    pub slot: u64,
    /// The node it is on, and that node's address.
    pub node_id: String,
    /// The node's address (`Status.Addr`).
    pub node_addr: String,
    /// The node is up (a task on a node that is down is lost until the node returns).
    pub node_ready: bool,
    /// Current state (`running`, `failed`, …).
    pub state: String,
    /// The state Swarm wants it in (`running`, `shutdown`).
    pub desired_state: String,
    /// Swarm's message and error.
    pub message: String,
    /// Published ports on its node, in the order of the service's ports.
    pub ports: Vec<u16>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its status last changed (RFC 3339).
    pub status_at: String,
}

fn label_filter(agent: &str, app: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{LABEL_AGENT}={agent}")];
    if let Some(app) = app {
        labels.push(format!("{LABEL_APP}={app}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

fn state_name(s: Option<&TaskState>) -> String {
    s.map(|s| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

impl Docker {
    /// Checks that the daemon is a Swarm manager; the error says how to make it one.
    pub async fn swarm_manager(&self) -> Result<(), DockerError> {
        self.api.inspect_swarm().await.map(|_| ()).map_err(|e| {
            map_err(e, |m| {
                DockerError::Api(format!(
                    "this Docker daemon is not a Swarm manager ({m}); run `docker swarm init --advertise-addr ADDR` on it, or point the target at a manager"
                ))
            })
        })
    }

    /// The registry digest of `image` as the manager sees it: proof that nodes can pull it.
    /// An image that exists only in a local daemon gets an error saying so.
    pub async fn registry_digest(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<String, DockerError> {
        let creds = auth.map(credentials);
        let found = self
            .api
            .inspect_registry_image(image, creds)
            .await
            .map_err(|e| {
                map_err(e, |m| {
                    DockerError::Api(format!(
                        "image {image} is not in a registry the Swarm nodes can pull from ({m}); push it to a registry first (a local-only image cannot be deployed to a Swarm)"
                    ))
                })
            })?;
        found
            .descriptor
            .digest
            .ok_or_else(|| DockerError::Api(format!("the registry returned no digest for {image}")))
    }

    /// Creates the service, or updates it when it runs another version; does nothing when it
    /// already runs this version. The image is pinned to its registry digest, so every node
    /// runs the same bytes.
    pub async fn swarm_apply(&self, def: &ServiceDef) -> Result<(), DockerError> {
        let existing = self
            .api
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(&self.cfg.agent_id, Some(&def.app_id))),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        let current = existing.into_iter().next();
        if let Some(s) = &current {
            let labels = s
                .spec
                .as_ref()
                .and_then(|sp| sp.labels.as_ref())
                .cloned()
                .unwrap_or_default();
            if labels.get(LABEL_VERSION) == Some(&def.version) {
                return Ok(());
            }
        }
        let image = if def.image.contains("@sha256:") {
            def.image.clone()
        } else {
            let digest = self
                .registry_digest(&def.image, def.registry_auth.as_ref())
                .await?;
            format!("{}@{digest}", def.image)
        };
        for n in &def.networks {
            self.ensure_overlay(n).await?;
        }
        let spec = service_spec(def, &self.cfg.agent_id, &image);
        let creds = def.registry_auth.as_ref().map(credentials);
        match current {
            None => {
                self.api
                    .create_service(spec, creds)
                    .await
                    .map_err(|e| map_err(e, DockerError::Api))?;
            }
            Some(s) => {
                let id = s.id.unwrap_or_else(|| def.name.clone());
                let version = s.version.and_then(|v| v.index).unwrap_or(0);
                self.api
                    .update_service(
                        &id,
                        spec,
                        UpdateServiceOptions {
                            version: i32::try_from(version).unwrap_or(i32::MAX),
                            ..Default::default()
                        },
                        creds,
                    )
                    .await
                    .map_err(|e| map_err(e, DockerError::Api))?;
            }
        }
        Ok(())
    }

    /// Removes the service of an app (nothing when there is none).
    pub async fn swarm_remove(&self, app_id: &str) -> Result<(), DockerError> {
        let services = self
            .api
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(&self.cfg.agent_id, Some(app_id))),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        for s in services {
            if let Some(id) = s.id {
                self.api
                    .delete_service(&id)
                    .await
                    .map_err(|e| map_err(e, DockerError::Api))?;
            }
        }
        Ok(())
    }

    /// Every task of every service of this installation, with its node's address.
    pub async fn swarm_tasks(&self) -> Result<Vec<SwarmTask>, DockerError> {
        let services = self
            .api
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(&self.cfg.agent_id, None)),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        let apps: HashMap<String, String> = services
            .iter()
            .filter_map(|s| {
                let app = s.spec.as_ref()?.labels.as_ref()?.get(LABEL_APP)?.clone();
                Some((s.id.clone()?, app))
            })
            .collect();
        if apps.is_empty() {
            return Ok(Vec::new());
        }
        // Node id → (address, ready).
        let nodes: HashMap<String, (String, bool)> = self
            .api
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| map_err(e, DockerError::Api))?
            .into_iter()
            .filter_map(|n| {
                let status = n.status?;
                let ready = status.state == Some(bollard::models::NodeState::READY);
                Some((n.id?, (status.addr?, ready)))
            })
            .collect();
        let tasks = self
            .api
            .list_tasks(None::<ListTasksOptions>)
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        let mut out = Vec::new();
        for t in tasks {
            let Some(app) = t.service_id.as_ref().and_then(|s| apps.get(s)) else {
                continue;
            };
            let labels = t
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let status = t.status.clone().unwrap_or_default();
            let node_id = t.node_id.clone().unwrap_or_default();
            // One published port per target port (the daemon lists IPv4 and IPv6 bindings).
            let mut seen = Vec::new();
            let mut ports = Vec::new();
            for p in status
                .port_status
                .as_ref()
                .and_then(|p| p.ports.as_ref())
                .into_iter()
                .flatten()
            {
                let key = (p.target_port, p.protocol);
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                if let Some(x) = p.published_port.and_then(|x| u16::try_from(x).ok()) {
                    ports.push(x);
                }
            }
            let message = match (status.message.as_deref(), status.err.as_deref()) {
                (_, Some(err)) if !err.is_empty() => err.to_string(),
                (Some(m), _) => m.to_string(),
                _ => String::new(),
            };
            out.push(SwarmTask {
                id: t.id.clone().unwrap_or_default(),
                app_id: app.clone(),
                version: labels.get(LABEL_VERSION).cloned().unwrap_or_default(),
                config_version: labels.get(LABEL_CONFIG).cloned().unwrap_or_default(),
                slot: t.slot.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                node_addr: nodes.get(&node_id).map(|n| n.0.clone()).unwrap_or_default(),
                node_ready: nodes.get(&node_id).is_some_and(|n| n.1),
                node_id,
                state: state_name(status.state.as_ref()),
                desired_state: state_name(t.desired_state.as_ref()),
                message,
                ports,
                created_at: t.created_at.clone().unwrap_or_default(),
                status_at: status.timestamp.clone().unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Creates an attachable overlay network when it does not exist.
    async fn ensure_overlay(&self, name: &str) -> Result<(), DockerError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let found = self
            .api
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        if found.iter().any(|n| n.name.as_deref() == Some(name)) {
            return Ok(());
        }
        self.api
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("overlay".into()),
                attachable: Some(true),
                labels: Some(HashMap::from([(
                    LABEL_AGENT.to_string(),
                    self.cfg.agent_id.clone(),
                )])),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| map_err(e, DockerError::Api))
    }
}

fn credentials(a: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.clone()),
        serveraddress: Some(a.server_address.clone()),
        ..Default::default()
    }
}

/// The Swarm service spec for `def` with its pinned `image`.
fn service_spec(def: &ServiceDef, agent: &str, image: &str) -> ServiceSpec {
    let mut labels: HashMap<String, String> = def
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ours = [
        (LABEL_AGENT, agent.to_string()),
        (LABEL_APP, def.app_id.clone()),
        (LABEL_VERSION, def.version.clone()),
        (LABEL_CONFIG, def.config_version.clone()),
    ];
    for (k, v) in &ours {
        labels.insert((*k).to_string(), v.clone());
    }
    let service_labels: HashMap<String, String> = ours
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let (command, args) = match (&def.cmd, &def.args) {
        (Some(cmd), None) => (Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()]), None),
        (Some(cmd), Some(args)) => (
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{cmd} \"$@\""),
                "sh".into(),
            ]),
            Some(args.clone()),
        ),
        (None, args) => (None, args.clone()),
    };
    let nano = (def.cpus * 1e9) as i64;
    let mem = (def.mem_mib * 1024.0 * 1024.0) as i64;
    let resources = TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: (nano > 0).then_some(nano),
            memory_bytes: (mem > 0).then_some(mem),
            ..Default::default()
        }),
        reservations: Some(ResourceObject {
            nano_cpus: (nano > 0).then_some(nano),
            memory_bytes: (mem > 0).then_some(mem),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mounts: Vec<Mount> = def
        .mounts
        .iter()
        .map(|v| Mount {
            target: Some(v.container_path.clone()),
            source: Some(v.host_path.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(v.read_only),
            ..Default::default()
        })
        .collect();
    let order = |start_first: bool| {
        if start_first {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        }
    };
    let ports: Vec<EndpointPortConfig> = def
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(if p.protocol.eq_ignore_ascii_case("udp") {
                EndpointPortConfigProtocolEnum::UDP
            } else {
                EndpointPortConfigProtocolEnum::TCP
            }),
            target_port: Some(i64::from(p.target)),
            published_port: p.published.map(i64::from),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    ServiceSpec {
        name: Some(def.name.clone()),
        labels: Some(service_labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                labels: Some(labels),
                command,
                args,
                env: Some(def.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                user: def.user.clone(),
                mounts: (!mounts.is_empty()).then_some(mounts),
                stop_grace_period: Some((def.stop_grace_seconds as i64) * 1_000_000_000),
                ..Default::default()
            }),
            resources: Some(resources),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(1_000_000_000),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: (!def.constraints.is_empty()).then(|| def.constraints.clone()),
                max_replicas: def
                    .max_replicas_per_node
                    .and_then(|m| i64::try_from(m).ok()),
                ..Default::default()
            }),
            networks: (!def.networks.is_empty()).then(|| {
                def.networks
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(def.replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(i64::try_from(def.update.parallelism.max(1)).unwrap_or(1)),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some((def.update.monitor_ms as i64) * 1_000_000),
            max_failure_ratio: Some(0.0),
            order: Some(order(def.update.start_first)),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(i64::try_from(def.update.parallelism.max(1)).unwrap_or(1)),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some((def.update.monitor_ms as i64) * 1_000_000),
            max_failure_ratio: Some(0.0),
            order: Some(if def.update.start_first {
                ServiceSpecRollbackConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
            }),
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: (!ports.is_empty()).then_some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ServiceDef {
        ServiceDef {
            name: "slipway-a1-web".into(),
            app_id: "/BB/prod/web".into(),
            version: "2026-12-06T10:00:00.000Z".into(),
            config_version: "2026-12-06T09:00:00.000Z".into(),
            image: "10.1.0.1:5000/web:2".into(),
            cmd: None,
            args: Some(vec!["--port".into(), "8080".into()]),
            env: vec![("A".into(), "b".into())],
            labels: BTreeMap::from([("HAPROXY_GROUP".into(), "external".into())]),
            replicas: 4,
            ports: vec![ServicePort {
                target: 8080,
                published: None,
                protocol: "tcp".into(),
            }],
            mounts: Vec::new(),
            networks: Vec::new(),
            constraints: vec!["node.hostname==a".into()],
            max_replicas_per_node: Some(2),
            cpus: 0.5,
            mem_mib: 64.0,
            user: None,
            update: UpdatePolicy {
                parallelism: 2,
                start_first: true,
                monitor_ms: 1000,
            },
            stop_grace_seconds: 3,
            registry_auth: None,
        }
    }

    #[test]
    fn a_definition_becomes_a_host_mode_start_first_service() {
        let s = service_spec(&def(), "agent-1", "img@sha256:abc");
        let labels = s.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_APP], "/BB/prod/web");
        assert_eq!(labels[LABEL_AGENT], "agent-1");
        let t = s.task_template.as_ref().unwrap();
        let c = t.container_spec.as_ref().unwrap();
        assert_eq!(c.image.as_deref(), Some("img@sha256:abc"));
        assert_eq!(c.labels.as_ref().unwrap()["HAPROXY_GROUP"], "external");
        assert_eq!(
            c.labels.as_ref().unwrap()[LABEL_CONFIG],
            "2026-12-06T09:00:00.000Z"
        );
        assert_eq!(c.env.as_ref().unwrap(), &vec!["A=b".to_string()]);
        assert!(c.command.is_none(), "args go to the image's entrypoint");
        assert_eq!(c.stop_grace_period, Some(3_000_000_000));
        let lim = t.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(lim.nano_cpus, Some(500_000_000));
        assert_eq!(lim.memory_bytes, Some(64 * 1024 * 1024));
        let p = t.placement.as_ref().unwrap();
        assert_eq!(
            p.constraints.as_ref().unwrap(),
            &vec!["node.hostname==a".to_string()]
        );
        assert_eq!(p.max_replicas, Some(2));
        assert_eq!(
            s.mode
                .as_ref()
                .unwrap()
                .replicated
                .as_ref()
                .unwrap()
                .replicas,
            Some(4)
        );
        let u = s.update_config.as_ref().unwrap();
        assert_eq!(u.order, Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST));
        assert_eq!(u.parallelism, Some(2));
        assert_eq!(
            u.failure_action,
            Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK)
        );
        let port = &s.endpoint_spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(port.target_port, Some(8080));
        assert_eq!(port.published_port, None);
    }

    #[test]
    fn a_shell_command_runs_through_sh() {
        let mut d = def();
        d.cmd = Some("exec server --port $PORT0".into());
        d.args = None;
        let s = service_spec(&d, "a", "i");
        let c = s.task_template.unwrap().container_spec.unwrap();
        assert_eq!(
            c.command.unwrap(),
            vec!["/bin/sh", "-c", "exec server --port $PORT0"]
        );
    }
}
