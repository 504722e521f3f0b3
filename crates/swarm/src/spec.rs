//! From a Marathon app definition to a Swarm service spec. Pure: no I/O, so every mapping
//! is tested without a daemon.
//!
//! - `instances` → replicas; `upgradeStrategy` → update and rollback config;
//!   `constraints` → placement ([`crate::placement`]);
//! - port mappings → ports published in host mode on the task's node (no routing mesh: it
//!   needs IPVS). `hostPort: 0` leaves the published port out, and the node's daemon then
//!   binds a free ephemeral port for each task (reported in the task's `PortStatus`).
//!   `hostPort` absent on a USER network: not published;
//! - HOST networking → Swarm's `host` network, with `requirePorts` and fixed ports only (a
//!   Swarm cannot hand each task its own free host port);
//! - USER networks → attachable overlay networks (created by [`crate::SwarmClient::apply`]);
//! - volumes → bind mounts (`hostPath`), or a named volume per slot (`persistent`);
//! - env (literals, and secrets resolved by the caller), labels, `cpus`/`mem` → limits and
//!   reservations, `cmd`/`args` → command/args, and Marathon's task variables. Variables that
//!   depend on the task are Swarm templates: `MESOS_TASK_ID` is `<app>.<Swarm task id>` and
//!   `HOST` the node's hostname; `PORT*` are set only when every port is fixed (a Swarm
//!   cannot tell a task the ephemeral port its node picked). Literal `{{` in user values is
//!   escaped, since a Swarm expands templates in env values.

use crate::labels::{
    LABEL_AGENT, LABEL_APP, LABEL_CONFIG, LABEL_PORTS, LABEL_SPEC, LABEL_TEMPLATE, LABEL_VERSION,
};
use crate::{SwarmError, params, placement};
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, HealthConfig, Limit, Mount, MountType, NetworkAttachmentConfig, ResourceObject,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use model::{AppDefinition, EnvValue, NetworkMode, PathId};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The network Swarm attaches HOST-networked services to.
const HOST_NETWORK: &str = "host";
/// The overlay a USER network without a name gets.
const DEFAULT_OVERLAY: &str = "slipway";

/// What the caller adds to an app definition when building its service.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Values of the app's secrets, by their key in the app's `secrets` (the `secret` of
    /// an env `{"secret": …}`).
    pub secrets: BTreeMap<String, String>,
    /// How long a Swarm watches an updated task for failure before it moves on (and, with
    /// start-first, before it stops the old task).
    pub update_monitor: Duration,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            secrets: BTreeMap::new(),
            update_monitor: Duration::from_secs(2),
        }
    }
}

/// How a port of the app is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// Published on this port of the task's node.
    Fixed(u16),
    /// Published on a free port the task's node picks.
    Dynamic,
    /// The task shares its node's network and binds the port itself.
    HostNetwork,
    /// Not published (reachable on the app's overlay network only).
    NotPublished,
}

/// One port of the app, in Marathon's port-index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSlot {
    /// The port inside the container (for HOST networking, the node's port).
    pub target: u16,
    /// `tcp` and/or `udp`.
    pub protocols: Vec<String>,
    /// How it is reached.
    pub publish: Publish,
}

/// How a service rolls to a new configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdatePlan {
    /// Tasks replaced at once.
    pub parallelism: u64,
    /// New task first, then the old one stops (`maximumOverCapacity` > 0).
    pub start_first: bool,
    /// How long each new task is watched for failure.
    pub monitor: Duration,
}

/// A service as Slipway wants it, ready for [`crate::SwarmClient::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDraft {
    /// Service name: `slipway-<agent>-<app>`, unique per installation and app.
    pub name: String,
    /// The installation that owns it.
    pub agent_id: String,
    /// The app id.
    pub app_id: String,
    /// The app version it was built from.
    pub version: String,
    /// The app's configuration version (`versionInfo.lastConfigChangeAt`).
    pub config_version: String,
    /// The image as the app names it (pinned to its digest when applied).
    pub image: String,
    /// Replicas.
    pub replicas: u64,
    /// Ports, in port-index order.
    pub ports: Vec<PortSlot>,
    /// Overlay networks the service attaches to.
    pub overlays: Vec<String>,
    /// Rolling update settings.
    pub update: UpdatePlan,
    /// Fingerprint of the task template: when it is unchanged, an update restarts nothing.
    pub template_fingerprint: String,
    /// Fingerprint of the whole spec: when it is unchanged, applying does nothing.
    pub fingerprint: String,
    pub(crate) spec: ServiceSpec,
}

impl ServiceDraft {
    /// The Engine API `ServiceSpec` this draft sends (before the image is pinned), as JSON.
    pub fn spec_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or_default()
    }
}

/// The Swarm service name of an app: unique per installation and app, at most 63 bytes.
pub fn service_name(agent_id: &str, app: &PathId) -> String {
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
    format!(
        "{}-{:012x}",
        &name[..50],
        fnv(name.as_bytes()) & 0xffff_ffff_ffff
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// JSON with object keys sorted, so equal specs give equal text whatever the map order.
fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A stable fingerprint of a serialisable value.
pub(crate) fn fingerprint<T: serde::Serialize>(v: &T) -> String {
    let mut text = String::new();
    canonical(&serde_json::to_value(v).unwrap_or_default(), &mut text);
    format!("{:016x}", fnv(text.as_bytes()))
}

/// Escapes Go template syntax, so a Swarm leaves a literal value alone.
fn literal(v: &str) -> String {
    v.replace("{{", "{{\"{{\"}}")
}

/// A variable name from a label or port name (`http-api` → `HTTP_API`).
fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Java's `Double.toString` for whole numbers (`1.0`), as Marathon renders resources.
fn resource(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

fn port(v: u32, field: &str) -> Result<u16, SwarmError> {
    u16::try_from(v).map_err(|_| SwarmError::Unsupported {
        field: field.into(),
        reason: format!("{v} is not a port"),
    })
}

/// The app's ports, and the overlays or Swarm network it attaches to.
fn ports_and_networks(def: &AppDefinition) -> Result<(Vec<PortSlot>, Vec<String>), SwarmError> {
    let protocols = |p: &str| -> Vec<String> {
        p.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mode = def.network_mode();
    if mode == NetworkMode::Host {
        let mut slots = Vec::new();
        for (i, p) in def.port_definitions.iter().enumerate() {
            let field = format!("/portDefinitions({i})");
            if !def.require_ports || p.port == 0 {
                return Err(SwarmError::Unsupported {
                    field,
                    reason: "HOST networking on a Swarm needs requirePorts: true and fixed ports (a Swarm cannot give each task its own free host port); or use BRIDGE or USER networking with portMappings".into(),
                });
            }
            slots.push(PortSlot {
                target: port(p.port, &field)?,
                protocols: protocols(&p.protocol),
                publish: Publish::HostNetwork,
            });
        }
        return Ok((slots, vec![HOST_NETWORK.to_string()]));
    }
    let overlays = match mode {
        NetworkMode::Container(name) => vec![name.unwrap_or_else(|| DEFAULT_OVERLAY.into())],
        _ => Vec::new(),
    };
    let mut slots = Vec::new();
    for (i, m) in def
        .container
        .iter()
        .flat_map(|c| c.port_mappings.iter())
        .enumerate()
    {
        let field = format!("/container/portMappings({i})");
        let publish = match m.host_port {
            None => Publish::NotPublished,
            Some(0) => Publish::Dynamic,
            Some(p) => Publish::Fixed(port(p, &field)?),
        };
        let target = match (m.container_port, publish) {
            (0, Publish::Fixed(p)) => p,
            (0, _) => {
                return Err(SwarmError::Unsupported {
                    field,
                    reason:
                        "containerPort 0 (same as the host port) needs a fixed hostPort on a Swarm"
                            .into(),
                });
            }
            (c, _) => port(c, &field)?,
        };
        slots.push(PortSlot {
            target,
            protocols: protocols(&m.protocol),
            publish,
        });
    }
    Ok((slots, overlays))
}

/// The `slipway.ports` label: each slot as `target/proto[+proto]/kind`, comma-separated, so
/// a task's published ports can be put back in port-index order.
pub(crate) fn ports_label(ports: &[PortSlot]) -> String {
    ports
        .iter()
        .map(|p| {
            let kind = match p.publish {
                Publish::Fixed(_) | Publish::Dynamic => "p",
                Publish::HostNetwork => "h",
                Publish::NotPublished => "n",
            };
            format!("{}/{}/{kind}", p.target, p.protocols.join("+"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The app's environment: its own variables (secrets resolved), `--env` parameters, and
/// Marathon's task variables.
fn environment(
    def: &AppDefinition,
    image: &str,
    ports: &[PortSlot],
    extra: Vec<(String, String)>,
    secrets: &BTreeMap<String, String>,
) -> Result<Vec<String>, SwarmError> {
    let mut env: Vec<(String, String)> = extra.into_iter().map(|(k, v)| (k, literal(&v))).collect();
    let mut set = |k: String, v: String| {
        env.retain(|(x, _)| x != &k);
        env.push((k, v));
    };
    for (k, v) in &def.env {
        let value = match v {
            EnvValue::Literal(s) => s.clone(),
            EnvValue::Secret { secret } => {
                secrets
                    .get(secret)
                    .cloned()
                    .ok_or_else(|| SwarmError::MissingSecret {
                        var: k.clone(),
                        secret: secret.clone(),
                    })?
            }
        };
        set(k.clone(), literal(&value));
    }
    let fixed: Option<Vec<u16>> = ports
        .iter()
        .map(|p| match p.publish {
            Publish::Fixed(x) => Some(x),
            Publish::HostNetwork => Some(p.target),
            Publish::Dynamic | Publish::NotPublished => None,
        })
        .collect();
    if let Some(fixed) = fixed.filter(|f| !f.is_empty()) {
        for (i, p) in fixed.iter().enumerate() {
            set(format!("PORT{i}"), p.to_string());
        }
        set("PORT".into(), fixed[0].to_string());
        let all: Vec<String> = fixed.iter().map(u16::to_string).collect();
        set("PORTS".into(), all.join(","));
        for (name, p) in def.port_names().into_iter().zip(&fixed) {
            if let Some(name) = name {
                set(format!("PORT_{}", env_name(&name)), p.to_string());
            }
        }
    }
    set("HOST".into(), "{{.Node.Hostname}}".into());
    set(
        "MESOS_TASK_ID".into(),
        format!("{}.{{{{.Task.ID}}}}", literal(&def.id.safe_name())),
    );
    set("MARATHON_APP_ID".into(), literal(&def.id.to_string()));
    // The configuration version, not the app version: a scale-only change must not change
    // the task template (that would restart every task).
    set(
        "MARATHON_APP_VERSION".into(),
        def.version_info.last_config_change_at.to_string(),
    );
    set("MARATHON_APP_DOCKER_IMAGE".into(), literal(image));
    set("MARATHON_APP_RESOURCE_CPUS".into(), resource(def.cpus));
    set("MARATHON_APP_RESOURCE_MEM".into(), resource(def.mem));
    set("MARATHON_APP_RESOURCE_DISK".into(), resource(def.disk));
    set("MARATHON_APP_RESOURCE_GPUS".into(), def.gpus.to_string());
    let names: Vec<String> = def.labels.keys().map(|k| env_name(k)).collect();
    set("MARATHON_APP_LABELS".into(), names.join(" "));
    for (k, v) in &def.labels {
        set(format!("MARATHON_APP_LABEL_{}", env_name(k)), literal(v));
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The app's volumes as mounts.
fn mounts(def: &AppDefinition, service: &str) -> Result<Vec<Mount>, SwarmError> {
    let mut out = Vec::new();
    for (i, v) in def
        .container
        .iter()
        .flat_map(|c| c.volumes.iter())
        .enumerate()
    {
        let read_only = Some(v.mode.eq_ignore_ascii_case("RO"));
        if let Some(host) = &v.host_path {
            out.push(Mount {
                target: Some(v.container_path.clone()),
                source: Some(literal(host)),
                typ: Some(MountType::BIND),
                read_only,
                ..Default::default()
            });
        } else if v.persistent.is_some() {
            // One named volume per slot on the node the task runs on, like Marathon's
            // per-task persistent volumes.
            let path: String = v
                .container_path
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            out.push(Mount {
                target: Some(v.container_path.clone()),
                source: Some(format!(
                    "{service}-{}-{{{{.Task.Slot}}}}",
                    path.trim_matches('-')
                )),
                typ: Some(MountType::VOLUME),
                read_only,
                ..Default::default()
            });
        } else {
            return Err(SwarmError::Unsupported {
                field: format!("/container/volumes({i})"),
                reason: "external volumes cannot be mounted by a Swarm service; use hostPath (present on every node) or persistent".into(),
            });
        }
    }
    Ok(out)
}

/// Marathon's upgrade strategy as a Swarm rolling update.
fn update_plan(def: &AppDefinition, monitor: Duration) -> UpdatePlan {
    let us = &def.upgrade_strategy;
    let n = f64::from(def.instances.max(1));
    let start_first = us.maximum_over_capacity > 0.0;
    let parallelism = if start_first {
        (n * us.maximum_over_capacity).floor()
    } else {
        // Stop-first replaces `parallelism` tasks at a time: at most 1 - minimumHealth of
        // them, and at least one (Marathon's "at least one" rule).
        (n * (1.0 - us.minimum_health_capacity)).floor()
    }
    .max(1.0) as u64;
    UpdatePlan {
        parallelism,
        start_first,
        monitor,
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The service that runs `def` for installation `agent_id`, or why a Swarm cannot run it.
pub fn build_service(
    def: &AppDefinition,
    agent_id: &str,
    opts: &BuildOptions,
) -> Result<ServiceDraft, SwarmError> {
    let docker = def
        .container
        .as_ref()
        .and_then(|c| c.docker.as_ref())
        .ok_or_else(|| SwarmError::Unsupported {
            field: "/container/docker/image".into(),
            reason: "apps on a Swarm must be container apps with an image (a Swarm runs images, not commands)".into(),
        })?;
    if docker.privileged {
        return Err(SwarmError::Unsupported {
            field: "/container/docker/privileged".into(),
            reason: "a Swarm service cannot run privileged containers".into(),
        });
    }
    let name = service_name(agent_id, &def.id);
    let (ports, networks) = ports_and_networks(def)?;
    let placement = placement::placement(&def.constraints)?;
    let config_version = def.version_info.last_config_change_at.to_string();

    let mut container = TaskSpecContainerSpec {
        image: Some(docker.image.clone()),
        user: def.user.clone(),
        stop_grace_period: Some(nanos(Duration::from_millis(def.kill_grace_ms()))),
        ..Default::default()
    };
    let extra = params::apply(&docker.parameters, &mut container)?;
    let mut labels: HashMap<String, String> = container.labels.take().unwrap_or_default();
    labels.extend(def.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(LABEL_AGENT.into(), agent_id.into());
    labels.insert(LABEL_APP.into(), def.id.to_string());
    labels.insert(LABEL_CONFIG.into(), config_version.clone());
    labels.insert(LABEL_PORTS.into(), ports_label(&ports));
    container.labels = Some(labels);
    container.env = Some(environment(
        def,
        &docker.image,
        &ports,
        extra.env,
        &opts.secrets,
    )?);
    let (command, args) = match (&extra.entrypoint, &def.cmd, &def.args) {
        (Some(ep), _, args) => (Some(vec![ep.clone()]), args.clone()),
        (None, Some(cmd), None) => (Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()]), None),
        (None, Some(cmd), Some(args)) => (
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{cmd} \"$@\""),
                "sh".into(),
            ]),
            Some(args.clone()),
        ),
        (None, None, args) => (None, args.clone()),
    };
    container.command = command;
    container.args = args;
    let mut all_mounts = container.mounts.take().unwrap_or_default();
    all_mounts.extend(mounts(def, &name)?);
    container.mounts = (!all_mounts.is_empty()).then_some(all_mounts);
    if !def.health_checks.is_empty() {
        // Slipway probes the tasks itself; an image HEALTHCHECK would hold each task out
        // of RUNNING for its first interval (30 s by default).
        container.health_check = Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }

    let nano = (def.cpus * 1e9) as i64;
    let mem = (def.mem * 1024.0 * 1024.0) as i64;
    let resources = TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: (nano > 0).then_some(nano),
            memory_bytes: (mem > 0).then_some(mem),
            pids: extra.pids_limit,
        }),
        reservations: Some(ResourceObject {
            nano_cpus: (nano > 0).then_some(nano),
            memory_bytes: (mem > 0).then_some(mem),
            ..Default::default()
        }),
        ..Default::default()
    };
    let task_template = TaskSpec {
        container_spec: Some(container),
        resources: Some(resources),
        restart_policy: Some(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
            delay: Some(nanos(Duration::from_secs_f64(
                def.backoff_seconds.clamp(0.0, 3600.0),
            ))),
            max_attempts: Some(0),
            window: Some(0),
        }),
        placement: Some(TaskSpecPlacement {
            constraints: (!placement.constraints.is_empty()).then_some(placement.constraints),
            max_replicas: placement
                .max_replicas_per_node
                .and_then(|m| i64::try_from(m).ok()),
            preferences: (!placement.spread.is_empty()).then(|| {
                placement
                    .spread
                    .iter()
                    .map(|s| TaskSpecPlacementPreferences {
                        spread: Some(TaskSpecPlacementSpread {
                            spread_descriptor: Some(s.clone()),
                        }),
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        networks: (!networks.is_empty()).then(|| {
            networks
                .iter()
                .map(|n| NetworkAttachmentConfig {
                    target: Some(n.clone()),
                    aliases: (n != HOST_NETWORK && !extra.aliases.is_empty())
                        .then(|| extra.aliases.clone()),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    };
    let template_fingerprint = fingerprint(&task_template);

    let endpoint_ports: Vec<EndpointPortConfig> = ports
        .iter()
        .flat_map(|p| {
            let published = match p.publish {
                Publish::Fixed(x) => Some(Some(i64::from(x))),
                Publish::Dynamic => Some(None),
                Publish::HostNetwork | Publish::NotPublished => None,
            };
            published.into_iter().flat_map(move |published| {
                p.protocols.iter().map(move |proto| EndpointPortConfig {
                    protocol: Some(if proto == "udp" {
                        EndpointPortConfigProtocolEnum::UDP
                    } else {
                        EndpointPortConfigProtocolEnum::TCP
                    }),
                    target_port: Some(i64::from(p.target)),
                    published_port: published,
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                })
            })
        })
        .collect();
    let update = update_plan(def, opts.update_monitor);
    let parallelism = i64::try_from(update.parallelism).unwrap_or(1);
    let mut service_labels: HashMap<String, String> = def
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (LABEL_AGENT, agent_id.to_string()),
        (LABEL_APP, def.id.to_string()),
        (LABEL_VERSION, def.version.to_string()),
        (LABEL_CONFIG, config_version.clone()),
        (LABEL_TEMPLATE, template_fingerprint.clone()),
        (LABEL_PORTS, ports_label(&ports)),
    ] {
        service_labels.insert(k.into(), v);
    }
    let mut spec = ServiceSpec {
        name: Some(name.clone()),
        labels: Some(service_labels),
        task_template: Some(task_template),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(def.instances)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(parallelism),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(nanos(update.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(if update.start_first {
                ServiceSpecUpdateConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
            }),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(parallelism),
            delay: Some(0),
            // A rollback that fails too stops where it is, for a person to look at.
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(update.monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(if update.start_first {
                ServiceSpecRollbackConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
            }),
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: (!endpoint_ports.is_empty()).then_some(endpoint_ports),
            ..Default::default()
        }),
        ..Default::default()
    };
    let whole = fingerprint(&spec);
    if let Some(l) = spec.labels.as_mut() {
        l.insert(LABEL_SPEC.into(), whole.clone());
    }
    Ok(ServiceDraft {
        name,
        agent_id: agent_id.to_string(),
        app_id: def.id.to_string(),
        version: def.version.to_string(),
        config_version,
        image: docker.image.clone(),
        replicas: u64::from(def.instances),
        ports,
        overlays: networks.into_iter().filter(|n| n != HOST_NETWORK).collect(),
        update,
        template_fingerprint,
        fingerprint: whole,
        spec,
    })
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
