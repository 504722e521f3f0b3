//! A Docker Swarm as the scheduler of a named target: each app becomes one Swarm service
//! (instances → replicas, `upgradeStrategy` → update config, `constraints` → placement,
//! port mappings → host-mode published ports, USER networks → overlay networks, volumes →
//! mounts, env/labels/cpus/mem → the container spec and resources), and Swarm's tasks are
//! mirrored as Marathon tasks reached at their node's address.

use super::scheduled::{ObservedTask, Scheduler};
use crate::state::TaskState;
use docker::{ServiceDef, ServicePort, SwarmTask, UpdatePolicy, VolumeSpec};
use futures_util::future::BoxFuture;
use model::{AppDefinition, NetworkMode, PathId, Timestamp};
use std::path::PathBuf;
use std::sync::Arc;

/// A Swarm manager reached through its Docker API.
pub struct SwarmScheduler {
    target: String,
    cfg: docker::DockerConfig,
    registry_config: Option<PathBuf>,
    link: Arc<tokio::sync::Mutex<Option<docker::Docker>>>,
}

impl SwarmScheduler {
    /// The Swarm whose manager's Docker API is at `host` (`None`: the local daemon), for the
    /// target `target` of installation `agent_id`. It connects on first use.
    pub fn new(
        target: &str,
        host: Option<String>,
        agent_id: &str,
        registry_config: Option<PathBuf>,
    ) -> SwarmScheduler {
        SwarmScheduler {
            target: target.to_string(),
            cfg: docker::DockerConfig {
                agent_id: agent_id.to_string(),
                host,
                ..docker::DockerConfig::default()
            },
            registry_config,
            link: Arc::default(),
        }
    }

    fn connector(
        &self,
    ) -> impl std::future::Future<Output = Result<docker::Docker, String>> + use<> {
        let (link, cfg) = (self.link.clone(), self.cfg.clone());
        async move {
            let mut l = link.lock().await;
            if let Some(d) = l.as_ref() {
                return Ok(d.clone());
            }
            let d = docker::Docker::connect(cfg)
                .await
                .map_err(|e| e.to_string())?;
            d.swarm_manager().await.map_err(|e| e.to_string())?;
            *l = Some(d.clone());
            Ok(d)
        }
    }

    /// Forgets the connection after an error that may mean the daemon went away.
    fn forget(link: &Arc<tokio::sync::Mutex<Option<docker::Docker>>>, e: &docker::DockerError) {
        if matches!(e, docker::DockerError::Unreachable(_))
            && let Ok(mut l) = link.try_lock()
        {
            *l = None;
        }
    }
}

/// The Swarm service name of an app: unique per installation and app, at most 63 bytes.
pub(crate) fn service_name(agent_id: &str, app: &PathId) -> String {
    let agent: String = agent_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let app: String = app
        .safe_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("slipway-{agent}-{}", app.trim_matches('-'));
    if name.len() <= 63 {
        return name;
    }
    // Long ids keep their start and a hash of the whole.
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}-{:012x}", &name[..50], hash & 0xffff_ffff_ffff)
}

/// The service for an app, or why the app cannot run on a Swarm.
pub(crate) fn service_def(
    def: &AppDefinition,
    agent_id: &str,
    env: Vec<(String, String)>,
) -> Result<ServiceDef, String> {
    let c = def
        .container
        .as_ref()
        .ok_or("apps on a Swarm target must be container apps (container.docker.image)")?;
    let d = c
        .docker
        .as_ref()
        .ok_or("apps on a Swarm target need container.docker.image")?;
    let networks = match def.network_mode() {
        NetworkMode::Host => {
            return Err(
                "HOST networking is not supported on a Swarm target; use BRIDGE or USER (container/bridge) networking with portMappings".into(),
            );
        }
        NetworkMode::Bridge => Vec::new(),
        NetworkMode::Container(name) => vec![name.unwrap_or_else(|| "slipway".into())],
    };
    let ports = c
        .port_mappings
        .iter()
        .filter(|m| m.host_port.is_some())
        .map(|m| ServicePort {
            target: u16::try_from(m.container_port).unwrap_or(0),
            published: m
                .host_port
                .filter(|p| *p != 0)
                .and_then(|p| u16::try_from(p).ok()),
            protocol: m.protocol.clone(),
        })
        .collect();
    let mut constraints = Vec::new();
    let mut max_per_node = None;
    for (i, c) in def.constraints.iter().enumerate() {
        let field = c.first().map(String::as_str).unwrap_or_default();
        let op = c.get(1).map(String::as_str).unwrap_or_default();
        let value = c.get(2).cloned().unwrap_or_default();
        let node_field = if field == "hostname" {
            "node.hostname".to_string()
        } else {
            format!("node.labels.{field}")
        };
        match op {
            "UNIQUE" if field == "hostname" => max_per_node = Some(1),
            "CLUSTER" | "IS" => constraints.push(format!("{node_field}=={value}")),
            "MAX_PER" if field == "hostname" => {
                max_per_node = Some(value.parse::<u64>().map_err(|_| {
                    format!("/constraints({i}): MAX_PER needs a number, not '{value}'")
                })?);
            }
            _ => {
                return Err(format!(
                    "/constraints({i}): {field} {op} cannot be expressed as a Swarm placement constraint (supported: hostname UNIQUE, hostname MAX_PER n, FIELD CLUSTER value, FIELD IS value)"
                ));
            }
        }
    }
    let mounts = c
        .volumes
        .iter()
        .filter_map(|v| {
            let hp = v.host_path.as_ref()?;
            Some(VolumeSpec {
                host_path: PathBuf::from(hp),
                container_path: v.container_path.clone(),
                read_only: v.mode == "RO",
            })
        })
        .collect();
    let us = &def.upgrade_strategy;
    let n = def.instances.max(1) as f64;
    let start_first = us.maximum_over_capacity > 0.0;
    let parallelism = if start_first {
        (n * us.maximum_over_capacity).floor()
    } else {
        (n * (1.0 - us.minimum_health_capacity)).floor()
    }
    .max(1.0) as u64;
    Ok(ServiceDef {
        name: service_name(agent_id, &def.id),
        app_id: def.id.to_string(),
        version: def.version.to_string(),
        config_version: def.version_info.last_config_change_at.to_string(),
        image: d.image.clone(),
        cmd: def.cmd.clone(),
        args: def.args.clone(),
        env,
        labels: def.labels.clone(),
        replicas: u64::from(def.instances),
        ports,
        mounts,
        networks,
        constraints,
        max_replicas_per_node: max_per_node,
        cpus: def.cpus,
        mem_mib: def.mem,
        user: def.user.clone(),
        update: UpdatePolicy {
            parallelism,
            start_first,
            // How long Swarm watches a new task before it stops an old one: time for
            // Slipway's health checks to see the new task and drain the old one.
            monitor_ms: 2_000,
        },
        stop_grace_seconds: def.kill_grace_ms().div_ceil(1000),
        registry_auth: None,
    })
}

/// A Swarm task as a Marathon task.
pub(crate) fn observed(t: &SwarmTask) -> Option<ObservedTask> {
    let app = PathId::parse(&t.app_id);
    let state = match t.state.as_str() {
        "new" | "allocated" | "pending" | "assigned" | "accepted" | "preparing" | "ready"
        | "starting" => TaskState::TaskStaging,
        "running" => TaskState::TaskRunning,
        "complete" => TaskState::TaskFinished,
        "failed" | "rejected" => TaskState::TaskFailed,
        "shutdown" | "remove" => TaskState::TaskKilled,
        "orphaned" => TaskState::TaskLost,
        _ => return None,
    };
    // What a node that is down reports no longer runs anywhere we can reach.
    let state = if t.node_ready || state != TaskState::TaskRunning {
        state
    } else {
        TaskState::TaskLost
    };
    Some(ObservedTask {
        id: format!("{}.{}", app.safe_name(), t.id),
        version: Timestamp::parse(&t.version).unwrap_or(Timestamp(0)),
        config_version: Timestamp::parse(&t.config_version).unwrap_or(Timestamp(0)),
        app_id: app,
        state,
        host: t.node_addr.clone(),
        host_ports: t.ports.clone(),
        staged_at: Timestamp::parse(&t.created_at).unwrap_or(Timestamp(0)),
        started_at: (state == TaskState::TaskRunning)
            .then(|| Timestamp::parse(&t.status_at))
            .flatten(),
        message: t.message.clone(),
        stopping: state == TaskState::TaskRunning && t.desired_state != "running",
    })
}

impl Scheduler for SwarmScheduler {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> &'static str {
        "swarm"
    }

    fn apply(
        &self,
        def: Arc<AppDefinition>,
        env: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let connect = self.connector();
        let link = self.link.clone();
        let agent = self.cfg.agent_id.clone();
        let registry_config = self.registry_config.clone();
        Box::pin(async move {
            let mut service = service_def(&def, &agent, env)?;
            if let Some(path) = registry_config
                && let Ok(json) = tokio::fs::read_to_string(&path).await
            {
                service.registry_auth = docker::credentials_for(&service.image, &json);
            }
            let d = connect.await?;
            d.swarm_apply(&service).await.map_err(|e| {
                Self::forget(&link, &e);
                e.to_string()
            })
        })
    }

    fn remove(&self, app: PathId) -> BoxFuture<'static, Result<(), String>> {
        let connect = self.connector();
        let link = self.link.clone();
        Box::pin(async move {
            let d = connect.await?;
            d.swarm_remove(&app.to_string()).await.map_err(|e| {
                Self::forget(&link, &e);
                e.to_string()
            })
        })
    }

    fn observe(&self) -> BoxFuture<'static, Result<Vec<ObservedTask>, String>> {
        let connect = self.connector();
        let link = self.link.clone();
        Box::pin(async move {
            let d = connect.await?;
            let tasks = d.swarm_tasks().await.map_err(|e| {
                Self::forget(&link, &e);
                e.to_string()
            })?;
            Ok(tasks.iter().filter_map(observed).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(body: &str) -> AppDefinition {
        model::parse_definition(body.as_bytes(), None, Timestamp(1)).unwrap()
    }

    #[test]
    fn an_app_maps_to_a_service() {
        let d = def(
            r#"{"id": "/BB/prod/web", "instances": 4, "cpus": 0.25, "mem": 64,
            "container": {"type": "DOCKER", "docker": {"image": "10.0.0.1:5000/web:2"},
                "portMappings": [{"containerPort": 8080, "hostPort": 0}]},
            "networks": [{"mode": "container/bridge"}],
            "constraints": [["hostname", "MAX_PER", "2"], ["zone", "CLUSTER", "b"]],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5}}"#,
        );
        let s = service_def(&d, "4f0c2a9e-1111", vec![("X".into(), "y".into())]).unwrap();
        assert_eq!(s.name, "slipway-4f0c2a9e-BB_prod_web".replace('_', "-"));
        assert_eq!(s.replicas, 4);
        assert_eq!(
            s.ports,
            vec![ServicePort {
                target: 8080,
                published: None,
                protocol: "tcp".into()
            }]
        );
        assert_eq!(s.constraints, vec!["node.labels.zone==b".to_string()]);
        assert_eq!(s.max_replicas_per_node, Some(2));
        assert!(s.update.start_first);
        assert_eq!(s.update.parallelism, 2);
        assert_eq!(s.env, vec![("X".to_string(), "y".to_string())]);
    }

    #[test]
    fn what_a_swarm_cannot_do_is_refused_clearly() {
        let process = def(r#"{"id": "/BB/x", "cmd": "sleep 1"}"#);
        assert!(
            service_def(&process, "a", vec![])
                .unwrap_err()
                .contains("container apps")
        );
        let like = def(
            r#"{"id": "/BB/x", "container": {"type": "DOCKER", "docker": {"image": "i"}},
            "networks": [{"mode": "container/bridge"}],
            "constraints": [["hostname", "LIKE", "a.*"]]}"#,
        );
        let e = service_def(&like, "a", vec![]).unwrap_err();
        let host =
            def(r#"{"id": "/BB/x", "container": {"type": "DOCKER", "docker": {"image": "i"}}}"#);
        assert!(
            service_def(&host, "a", vec![])
                .unwrap_err()
                .contains("HOST networking")
        );
        assert!(e.contains("/constraints(0)") && e.contains("LIKE"), "{e}");
    }

    #[test]
    fn long_ids_make_valid_service_names() {
        let id = PathId::parse(&format!("/{}", "x".repeat(200)));
        let n = service_name("agent", &id);
        assert!(n.len() <= 63, "{n}");
        assert_ne!(
            n,
            service_name("agent", &PathId::parse(&format!("/{}", "x".repeat(199))))
        );
    }

    #[test]
    fn swarm_tasks_become_marathon_tasks() {
        let t = SwarmTask {
            id: "abc".into(),
            app_id: "/BB/web".into(),
            version: "2026-12-06T10:00:00.000Z".into(),
            config_version: "2026-12-06T09:00:00.000Z".into(),
            slot: 1,
            node_id: "n1".into(),
            node_addr: "10.231.0.2".into(),
            node_ready: true,
            state: "running".into(),
            desired_state: "running".into(),
            message: "started".into(),
            ports: vec![30001],
            created_at: "2026-12-06T10:00:01.123456789Z".into(),
            status_at: "2026-12-06T10:00:02.5Z".into(),
        };
        let o = observed(&t).unwrap();
        assert_eq!(o.id, "BB_web.abc");
        assert_eq!(o.state, TaskState::TaskRunning);
        assert_eq!(o.host, "10.231.0.2");
        assert_eq!(o.host_ports, vec![30001]);
        assert_eq!(o.started_at, Timestamp::parse("2026-12-06T10:00:02.500Z"));
        let failed = SwarmTask {
            state: "rejected".into(),
            ..t
        };
        assert_eq!(observed(&failed).unwrap().state, TaskState::TaskFailed);
    }
}
