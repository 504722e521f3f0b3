//! Translation of a [`ContainerSpec`] into the daemon's container configuration: name,
//! command, environment, labels, ports, binds, resources, logging and `parameters`.

use crate::{
    ContainerSpec, DockerConfig, DockerError, LABEL_AGENT, LABEL_APP, LABEL_TASK, NetworkMode,
    params,
};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, HostConfigLogConfig,
    NetworkingConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use std::collections::HashMap;

/// The smallest memory limit the daemon accepts (6 MiB).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The smallest CPU limit the daemon accepts (0.01 CPU).
const MIN_NANO_CPUS: i64 = 10_000_000;
/// Daemon-side log budget when the configuration says 0.
const DEFAULT_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// Container name of a task: `slipway-<task_id>`.
pub(crate) fn container_name(task_id: &str) -> Result<String, DockerError> {
    let valid = !task_id.is_empty()
        && task_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(DockerError::InvalidSpec(format!(
            "task id {task_id:?} cannot be used in a container name (letters, digits, '_', '.', '-')"
        )));
    }
    Ok(format!("slipway-{task_id}"))
}

/// Docker's network mode string for a [`NetworkMode`].
pub(crate) fn network_mode(network: &NetworkMode) -> String {
    match network {
        NetworkMode::Host => "host".into(),
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::User(name) => name.clone(),
    }
}

/// The create request for `spec`; fails before any side effect on invalid input.
pub(crate) fn build(
    spec: &ContainerSpec,
    cfg: &DockerConfig,
    ncpu: Option<i64>,
) -> Result<ContainerCreateBody, DockerError> {
    if spec.image.trim().is_empty() {
        return Err(DockerError::InvalidSpec("the image is empty".into()));
    }
    if let NetworkMode::User(name) = &spec.network
        && name.trim().is_empty()
    {
        return Err(DockerError::InvalidSpec("the network name is empty".into()));
    }
    let (entrypoint, cmd) = command(spec)?;
    let (exposed, bindings) = ports(spec, &cfg.publish_host)?;
    let mut host = HostConfig {
        network_mode: Some(network_mode(&spec.network)),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        auto_remove: Some(false),
        privileged: Some(spec.privileged),
        binds: Some(binds(spec)?),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        nano_cpus: nano_cpus(spec.cpus, ncpu),
        memory: memory(spec.mem_mib),
        log_config: Some(log_config(cfg.log_max_bytes)),
        ..Default::default()
    };
    let mut body = ContainerCreateBody {
        image: Some(spec.image.trim().to_string()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        user: spec.user.clone().filter(|u| !u.is_empty()),
        entrypoint,
        cmd,
        healthcheck: spec.disable_image_healthcheck.then(|| HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut aliases = Vec::new();
    params::apply(&spec.parameters, &mut body, &mut host, &mut aliases)?;
    if !aliases.is_empty() {
        let NetworkMode::User(name) = &spec.network else {
            return Err(DockerError::InvalidParameter {
                key: "network-alias".into(),
                reason: "aliases need a user-defined network (network mode USER)".into(),
            });
        };
        let endpoint = EndpointSettings {
            aliases: Some(aliases),
            ..Default::default()
        };
        body.networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name.clone(), endpoint)])),
        });
    }
    let labels = body.labels.get_or_insert_with(HashMap::new);
    labels.insert(LABEL_AGENT.into(), cfg.agent_id.clone());
    labels.insert(LABEL_TASK.into(), spec.task_id.clone());
    labels.insert(LABEL_APP.into(), spec.app_id.clone());
    body.host_config = Some(host);
    Ok(body)
}

/// Entrypoint and command: `cmd` runs through `/bin/sh -c` like the Mesos docker
/// containerizer; `args` become the command after the image's entrypoint.
type Command = (Option<Vec<String>>, Option<Vec<String>>);

fn command(spec: &ContainerSpec) -> Result<Command, DockerError> {
    let cmd = spec.cmd.as_deref().filter(|c| !c.trim().is_empty());
    match (cmd, &spec.args) {
        (Some(_), Some(args)) if !args.is_empty() => Err(DockerError::InvalidSpec(
            "cmd and args cannot both be set".into(),
        )),
        (Some(c), _) => Ok((
            Some(vec!["/bin/sh".into()]),
            Some(vec!["-c".into(), c.to_string()]),
        )),
        (None, Some(args)) if !args.is_empty() => Ok((None, Some(args.clone()))),
        _ => Ok((None, None)),
    }
}

/// Exposed ports and host bindings (nothing with host networking).
fn ports(spec: &ContainerSpec, publish_host: &str) -> Result<(Vec<String>, PortMap), DockerError> {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings = PortMap::new();
    if spec.network == NetworkMode::Host {
        return Ok((exposed, bindings));
    }
    for p in &spec.ports {
        let port = match (p.container_port, p.host_port) {
            (0, Some(h)) => h,
            (c, _) => c,
        };
        if port == 0 {
            continue;
        }
        for proto in protocols(&p.protocol)? {
            let key = format!("{port}/{proto}");
            if !exposed.contains(&key) {
                exposed.push(key.clone());
            }
            if let Some(h) = p.host_port {
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: Some(publish_host.to_string()),
                        host_port: Some(h.to_string()),
                    });
            }
        }
    }
    Ok((exposed, bindings))
}

/// `tcp`, `udp`, `sctp` or a comma-separated list of them; empty means `tcp`.
fn protocols(list: &str) -> Result<Vec<&'static str>, DockerError> {
    if list.trim().is_empty() {
        return Ok(vec!["tcp"]);
    }
    list.split(',')
        .map(|p| match p.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok("tcp"),
            "udp" => Ok("udp"),
            "sctp" => Ok("sctp"),
            other => Err(DockerError::InvalidSpec(format!(
                "unknown port protocol {other:?} (expected tcp, udp or sctp)"
            ))),
        })
        .collect()
}

/// `host:container:ro|rw` binds.
fn binds(spec: &ContainerSpec) -> Result<Vec<String>, DockerError> {
    spec.volumes
        .iter()
        .map(|v| {
            let host = v.host_path.to_string_lossy();
            if !v.container_path.starts_with('/') {
                return Err(DockerError::InvalidSpec(format!(
                    "volume containerPath {:?} must be absolute",
                    v.container_path
                )));
            }
            if host.is_empty() || host.contains(':') || v.container_path.contains(':') {
                return Err(DockerError::InvalidSpec(format!(
                    "volume {host:?} -> {:?}: paths must be non-empty and contain no ':'",
                    v.container_path
                )));
            }
            let mode = if v.read_only { "ro" } else { "rw" };
            Ok(format!("{host}:{}:{mode}", v.container_path))
        })
        .collect()
}

/// Creates missing host directories of read-write bind mounts, as Mesos does.
pub(crate) async fn prepare_volumes(spec: &ContainerSpec) -> Result<(), DockerError> {
    for v in spec
        .volumes
        .iter()
        .filter(|v| !v.read_only && v.host_path.is_absolute())
    {
        if tokio::fs::metadata(&v.host_path).await.is_err() {
            tokio::fs::create_dir_all(&v.host_path).await.map_err(|e| {
                DockerError::InvalidSpec(format!(
                    "cannot create volume directory {}: {e}",
                    v.host_path.display()
                ))
            })?;
        }
    }
    Ok(())
}

/// `NanoCpus` for `cpus`, kept within the range the daemon accepts.
fn nano_cpus(cpus: f64, ncpu: Option<i64>) -> Option<i64> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return None;
    }
    let max = ncpu
        .filter(|n| *n > 0)
        .map_or(i64::MAX, |n| n * 1_000_000_000);
    Some(((cpus * 1e9).round() as i64).clamp(MIN_NANO_CPUS, max))
}

/// `Memory` in bytes for `mem_mib`, at least the daemon's minimum.
fn memory(mem_mib: f64) -> Option<i64> {
    if !mem_mib.is_finite() || mem_mib <= 0.0 {
        return None;
    }
    Some(((mem_mib * 1024.0 * 1024.0).round() as i64).max(MIN_MEMORY))
}

/// json-file logging bounded to about `max_bytes` on disk (two files of half the budget).
fn log_config(max_bytes: u64) -> HostConfigLogConfig {
    let budget = if max_bytes == 0 {
        DEFAULT_LOG_BYTES
    } else {
        max_bytes
    };
    let per_file = (budget / 2).max(64 * 1024);
    HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            ("max-size".to_string(), per_file.to_string()),
            ("max-file".to_string(), "2".to_string()),
        ])),
    }
}
