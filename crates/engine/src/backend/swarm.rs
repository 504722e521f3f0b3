//! A Docker Swarm as the scheduler of a named target: each app becomes one Swarm service,
//! built and applied by the `swarm` crate (instances → replicas, `upgradeStrategy` → update
//! config, `constraints` → placement, port mappings → host-mode published ports, USER
//! networks → overlays, volumes → mounts), and Swarm's tasks are mirrored as Marathon tasks
//! reached at their node's address.

use super::scheduled::{ObservedTask, Scheduler};
use crate::state::TaskState;
use futures_util::future::BoxFuture;
use model::{AppDefinition, EnvValue, PathId, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use swarm::{BuildOptions, RegistryAuth, SwarmClient, SwarmError, SwarmTask, TaskStatus};

/// A Swarm manager reached through its Docker API.
pub struct SwarmScheduler {
    target: String,
    host: Option<String>,
    agent_id: String,
    registry_config: Option<PathBuf>,
    link: Arc<tokio::sync::Mutex<Option<SwarmClient>>>,
}

impl SwarmScheduler {
    /// The Swarm whose manager's Docker API is at `host` (`None`: the local daemon), for the
    /// target `target` of installation `agent_id`; credentials for private registries come
    /// from the Docker `config.json` at `registry_config`. It connects on first use.
    pub fn new(
        target: &str,
        host: Option<String>,
        agent_id: &str,
        registry_config: Option<PathBuf>,
    ) -> SwarmScheduler {
        SwarmScheduler {
            target: target.to_string(),
            host,
            agent_id: agent_id.to_string(),
            registry_config,
            link: Arc::default(),
        }
    }

    /// A future that yields the (cached) connection to the manager.
    fn connector(&self) -> impl Future<Output = Result<SwarmClient, String>> + use<> {
        let (link, host) = (self.link.clone(), self.host.clone());
        async move {
            let mut l = link.lock().await;
            if let Some(c) = l.as_ref() {
                return Ok(c.clone());
            }
            let c = SwarmClient::connect(host.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            *l = Some(c.clone());
            Ok(c)
        }
    }

    /// Forgets the connection after an error that may mean the daemon went away.
    fn forget(link: &Arc<tokio::sync::Mutex<Option<SwarmClient>>>, e: &SwarmError) -> String {
        if matches!(e, SwarmError::Unreachable(_))
            && let Ok(mut l) = link.try_lock()
        {
            *l = None;
        }
        e.to_string()
    }
}

/// The values of the app's secrets, by their key in the app's `secrets`, from the resolved
/// environment the engine hands every scheduler.
fn secret_values(def: &AppDefinition, env: &[(String, String)]) -> BTreeMap<String, String> {
    let resolved: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    def.env
        .iter()
        .filter_map(|(var, v)| match v {
            EnvValue::Secret { secret } => {
                let value = resolved.get(var.as_str())?;
                Some((secret.clone(), (*value).to_string()))
            }
            EnvValue::Literal(_) => None,
        })
        .collect()
}

/// A Swarm task as a Marathon task; `version` is the app version its service was applied
/// from.
pub(crate) fn observed(t: &SwarmTask, version: &str) -> ObservedTask {
    let state = match t.state {
        TaskStatus::Staging | TaskStatus::Starting => TaskState::TaskStaging,
        TaskStatus::Running | TaskStatus::Killing => TaskState::TaskRunning,
        TaskStatus::Finished => TaskState::TaskFinished,
        TaskStatus::Failed => TaskState::TaskFailed,
        TaskStatus::Killed => TaskState::TaskKilled,
        TaskStatus::Lost => TaskState::TaskLost,
    };
    let message = match &t.error {
        Some(e) if !e.is_empty() => e.clone(),
        _ => t.message.clone(),
    };
    ObservedTask {
        id: t.marathon_id(),
        version: Timestamp::parse(version).unwrap_or(Timestamp(0)),
        config_version: Timestamp::parse(&t.config_version).unwrap_or(Timestamp(0)),
        app_id: PathId::parse(&t.app_id),
        state,
        host: t.node_addr.clone(),
        host_ports: t.ports.clone(),
        staged_at: t.created_at.unwrap_or(Timestamp(0)),
        started_at: (state == TaskState::TaskRunning)
            .then_some(t.status_at)
            .flatten(),
        message,
        stopping: t.state == TaskStatus::Killing,
    }
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
        let agent = self.agent_id.clone();
        let registry_config = self.registry_config.clone();
        Box::pin(async move {
            let opts = BuildOptions {
                secrets: secret_values(&def, &env),
                ..BuildOptions::default()
            };
            let draft = swarm::build_service(&def, &agent, &opts).map_err(|e| e.to_string())?;
            let mut auth = None;
            if let Some(path) = registry_config
                && let Ok(json) = tokio::fs::read_to_string(&path).await
            {
                auth = docker::credentials_for(&draft.image, &json).map(|a| RegistryAuth {
                    username: a.username,
                    password: a.password,
                    server_address: a.server_address,
                });
            }
            let c = connect.await?;
            c.apply(&draft, auth.as_ref())
                .await
                .map(drop)
                .map_err(|e| Self::forget(&link, &e))
        })
    }

    fn remove(&self, app: PathId) -> BoxFuture<'static, Result<(), String>> {
        let connect = self.connector();
        let link = self.link.clone();
        let agent = self.agent_id.clone();
        Box::pin(async move {
            let c = connect.await?;
            c.remove(&agent, &app.to_string())
                .await
                .map(drop)
                .map_err(|e| Self::forget(&link, &e))
        })
    }

    fn observe(&self) -> BoxFuture<'static, Result<Vec<ObservedTask>, String>> {
        let connect = self.connector();
        let link = self.link.clone();
        let agent = self.agent_id.clone();
        Box::pin(async move {
            let c = connect.await?;
            let services = c
                .services(&agent)
                .await
                .map_err(|e| Self::forget(&link, &e))?;
            let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
            let versions: HashMap<&str, &str> = services
                .iter()
                .map(|s| (s.id.as_str(), s.version.as_str()))
                .collect();
            let tasks = c
                .tasks_of(&ids)
                .await
                .map_err(|e| Self::forget(&link, &e))?;
            Ok(tasks
                .iter()
                .map(|t| {
                    let version = versions.get(t.service_id.as_str()).copied();
                    observed(t, version.unwrap_or_default())
                })
                .collect())
        })
    }

    /// Swarm cannot stop one task; Slipway kills the container of a task on the manager's own
    /// node through its daemon (Swarm then replaces it), and refuses one on another node.
    fn kill_check(&self, task: &ObservedTask) -> Result<(), String> {
        // Before the first connection the manager's address is unknown: the kill itself
        // finds out, and a refusal then is logged.
        let Ok(link) = self.link.try_lock() else {
            return Ok(());
        };
        match link.as_ref() {
            Some(c) if !c.node_addr().is_empty() && c.node_addr() != task.host => Err(format!(
                "task {} runs on the Swarm node at {}: Docker Swarm has no API to kill one task, and Slipway reaches only the manager's own containers; restart the app to replace all its tasks, or kill it with scale=true",
                task.id, task.host
            )),
            _ => Ok(()),
        }
    }

    fn kill(&self, task: &ObservedTask) -> BoxFuture<'static, Result<(), String>> {
        let connect = self.connector();
        let link = self.link.clone();
        let agent = self.agent_id.clone();
        let id = task.id.clone();
        Box::pin(async move {
            let c = connect.await?;
            c.kill_task(&agent, &id)
                .await
                .map_err(|e| Self::forget(&link, &e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: TaskStatus) -> SwarmTask {
        SwarmTask {
            id: "abc".into(),
            service_id: "svc".into(),
            app_id: "/BB/web".into(),
            slot: 1,
            node_id: "n1".into(),
            node_addr: "10.231.0.2".into(),
            node_hostname: "worker".into(),
            node_ready: true,
            state,
            swarm_state: "running".into(),
            desired_state: "running".into(),
            ports: vec![30001],
            config_version: "2026-12-06T09:00:00.000Z".into(),
            image: "r/web@sha256:00".into(),
            container_id: None,
            created_at: Timestamp::parse("2026-12-06T10:00:01.123Z"),
            status_at: Timestamp::parse("2026-12-06T10:00:02.500Z"),
            message: "started".into(),
            error: None,
        }
    }

    #[test]
    fn swarm_tasks_become_marathon_tasks() {
        let o = observed(&task(TaskStatus::Running), "2026-12-06T10:00:00.000Z");
        assert_eq!(o.id, "BB_web.abc");
        assert_eq!(o.app_id, PathId::parse("/BB/web"));
        assert_eq!(o.state, TaskState::TaskRunning);
        assert!(!o.stopping);
        assert_eq!(o.host, "10.231.0.2");
        assert_eq!(o.host_ports, vec![30001]);
        assert_eq!(
            o.version,
            Timestamp::parse("2026-12-06T10:00:00.000Z").unwrap()
        );
        assert_eq!(o.started_at, Timestamp::parse("2026-12-06T10:00:02.500Z"));

        // A task the Swarm is stopping still runs, on its way out.
        let killing = observed(&task(TaskStatus::Killing), "");
        assert_eq!(killing.state, TaskState::TaskRunning);
        assert!(killing.stopping);

        let failed = SwarmTask {
            error: Some("No such image".into()),
            ..task(TaskStatus::Failed)
        };
        let f = observed(&failed, "");
        assert_eq!(f.state, TaskState::TaskFailed);
        assert_eq!(f.message, "No such image");
        assert_eq!(f.started_at, None);
        assert_eq!(
            observed(&task(TaskStatus::Lost), "").state,
            TaskState::TaskLost
        );
    }

    #[test]
    fn secrets_reach_the_service_by_their_key() {
        let def = model::parse_definition(
            br#"{"id": "/BB/x", "container": {"type": "DOCKER", "docker": {"image": "i"}},
            "env": {"DB_PASSWORD": {"secret": "db"}, "MODE": "prod"},
            "secrets": {"db": {"source": "shop/db"}}}"#,
            None,
            Timestamp(1),
        )
        .unwrap();
        let env = vec![
            ("MODE".to_string(), "prod".to_string()),
            ("DB_PASSWORD".to_string(), "s3cret".to_string()),
        ];
        let s = secret_values(&def, &env);
        assert_eq!(
            s,
            BTreeMap::from([("db".to_string(), "s3cret".to_string())])
        );
    }
}
