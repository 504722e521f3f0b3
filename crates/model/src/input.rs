//! Lenient input form of an app definition (Marathon 1.4 and 1.5+ keys), and its
//! normalisation into [`AppDefinition`].
//!
//! Parsing is two-phase: serde catches JSON type errors (HTTP 400 with a field path), then
//! [`crate::validate`] checks every rule and reports all violations at once (HTTP 422).
//! Numbers are read as signed or floating types on purpose, so that `"instances": -1` is a
//! validation error with Marathon's wording rather than a type error.

use crate::app::*;
use crate::error::{DefinitionError, Errors, FieldError, marathon_path, play_error_key};
use crate::{PathId, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The raw app definition as clients send it. Unknown keys are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AppInput {
    pub id: Option<String>,
    pub cmd: Option<String>,
    pub args: Option<Vec<String>>,
    pub user: Option<String>,
    pub env: Option<BTreeMap<String, EnvValue>>,
    pub instances: Option<i64>,
    pub cpus: Option<f64>,
    pub mem: Option<f64>,
    pub disk: Option<f64>,
    pub gpus: Option<i64>,
    pub executor: Option<String>,
    pub constraints: Option<Vec<Vec<String>>>,
    pub accepted_resource_roles: Option<Vec<String>>,
    pub role: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub uris: Option<Vec<String>>,
    pub fetch: Option<Vec<FetchInput>>,
    pub store_urls: Option<Vec<String>>,
    pub dependencies: Option<Vec<String>>,
    pub ports: Option<Vec<i64>>,
    pub port_definitions: Option<Vec<PortDefinitionInput>>,
    pub require_ports: Option<bool>,
    pub networks: Option<Vec<NetworkInput>>,
    pub ip_address: Option<IpAddressInput>,
    pub container: Option<ContainerInput>,
    pub health_checks: Option<Vec<HealthCheckInput>>,
    pub readiness_checks: Option<Vec<Value>>,
    pub upgrade_strategy: Option<UpgradeStrategyInput>,
    pub backoff_seconds: Option<f64>,
    pub backoff_factor: Option<f64>,
    pub max_launch_delay_seconds: Option<f64>,
    pub task_kill_grace_period_seconds: Option<f64>,
    pub kill_selection: Option<String>,
    pub unreachable_strategy: Option<Value>,
    pub secrets: Option<BTreeMap<String, Value>>,
    pub residency: Option<Value>,
    pub version: Option<String>,
}

/// Input form of [`FetchUri`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct FetchInput {
    pub uri: Option<String>,
    pub extract: Option<bool>,
    pub executable: Option<bool>,
    pub cache: Option<bool>,
    pub output_file: Option<String>,
}

/// Input form of [`PortDefinition`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PortDefinitionInput {
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Input form of [`Network`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct NetworkInput {
    pub mode: Option<String>,
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// The deprecated (≤1.4) `ipAddress` block.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IpAddressInput {
    pub network_name: Option<String>,
    pub groups: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub discovery: Option<Value>,
}

/// Input form of [`Container`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ContainerInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub docker: Option<DockerInput>,
    pub port_mappings: Option<Vec<PortMappingInput>>,
    pub volumes: Option<Vec<VolumeInput>>,
}

/// Input form of [`Docker`], including the deprecated `network` and `portMappings`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DockerInput {
    pub image: Option<String>,
    pub network: Option<String>,
    pub port_mappings: Option<Vec<PortMappingInput>>,
    pub force_pull_image: Option<bool>,
    pub privileged: Option<bool>,
    pub parameters: Option<Vec<Parameter>>,
}

/// Input form of [`PortMapping`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PortMappingInput {
    pub container_port: Option<i64>,
    pub host_port: Option<i64>,
    pub service_port: Option<i64>,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub network_names: Option<Vec<String>>,
}

/// Input form of [`Volume`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct VolumeInput {
    pub container_path: Option<String>,
    pub host_path: Option<String>,
    pub mode: Option<String>,
    pub persistent: Option<Value>,
    pub external: Option<Value>,
}

/// Input form of [`HealthCheck`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct HealthCheckInput {
    pub protocol: Option<String>,
    pub path: Option<String>,
    pub port_index: Option<i64>,
    pub port: Option<i64>,
    pub command: Option<CommandCheck>,
    pub grace_period_seconds: Option<i64>,
    pub interval_seconds: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub max_consecutive_failures: Option<i64>,
    pub ignore_http1xx: Option<bool>,
    pub delay_seconds: Option<i64>,
}

/// Input form of [`UpgradeStrategy`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct UpgradeStrategyInput {
    pub minimum_health_capacity: Option<f64>,
    pub maximum_over_capacity: Option<f64>,
}

/// Parses a JSON body into an [`AppInput`], mapping serde errors to Marathon's 400 bodies.
pub fn parse_input(body: &[u8]) -> Result<AppInput, DefinitionError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DefinitionError::Malformed(e.to_string()))?;
    input_from_value(value)
}

/// Like [`parse_input`] for an already-parsed JSON value.
pub fn input_from_value(value: Value) -> Result<AppInput, DefinitionError> {
    if !value.is_object() {
        return Err(DefinitionError::Type(vec![FieldError {
            path: "/".into(),
            errors: vec!["error.expected.jsobject".into()],
        }]));
    }
    serde_path_to_error::deserialize::<_, AppInput>(value).map_err(|e| {
        let path = marathon_path(e.path());
        let msg = play_error_key(&e.inner().to_string());
        DefinitionError::Type(vec![FieldError {
            path,
            errors: vec![msg],
        }])
    })
}

/// Overlays a partial update body on the current definition (Marathon's `partialUpdate=true`):
/// each key present in `body` replaces the whole old value; deprecated aliases of a given key
/// are dropped from the base so old and new forms never collide.
pub fn merge_update(current: &AppDefinition, body: &Value) -> Value {
    let mut base = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let Some(update) = body.as_object() else {
        return body.clone();
    };
    const ALIASES: [&[&str]; 3] = [
        &["ports", "portDefinitions"],
        &["uris", "fetch"],
        &["ipAddress", "networks"],
    ];
    for group in ALIASES {
        if group.iter().any(|k| update.contains_key(*k)) {
            for k in group {
                base.remove(*k);
            }
        }
    }
    // A 1.4-style `container.docker.network` (what the Jenkins plugin sends) replaces the
    // stored 1.5+ `networks`.
    if update
        .get("container")
        .and_then(|c| c.get("docker"))
        .and_then(|d| d.get("network"))
        .is_some_and(|n| !n.is_null())
        && !update.contains_key("networks")
    {
        base.remove("networks");
    }
    // Switching between the shell form and the exec form replaces the other one.
    if update.contains_key("cmd") && !update.contains_key("args") && current.cmd.is_none() {
        base.remove("args");
    }
    if update.contains_key("args") && !update.contains_key("cmd") && current.args.is_none() {
        base.remove("cmd");
    }
    for (k, v) in update {
        if k == "id" {
            continue;
        }
        base.insert(k.clone(), v.clone());
    }
    Value::Object(base)
}

/// Guesses whether a fetched URI is an archive to extract, like the Mesos fetcher.
pub fn is_archive(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    [
        ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip", ".tar",
    ]
    .iter()
    .any(|ext| path.ends_with(ext))
}

impl AppInput {
    /// Normalises and validates into a definition with id `id` (the body id is used when
    /// `id` is None), stamped with `version`. Reports every violation at once.
    pub fn into_definition(
        self,
        id: Option<&PathId>,
        version: Timestamp,
    ) -> Result<AppDefinition, DefinitionError> {
        let mut errs = Errors::default();
        let def = self.normalise(id, version, &mut errs);
        crate::validate::check(&def, &mut errs);
        if errs.is_empty() {
            Ok(def)
        } else {
            Err(DefinitionError::Invalid(errs.into_vec()))
        }
    }

    fn normalise(
        self,
        id: Option<&PathId>,
        version: Timestamp,
        errs: &mut Errors,
    ) -> AppDefinition {
        let id = match (id, &self.id) {
            (Some(id), _) => {
                for p in PathId::problems(&id.to_string()) {
                    errs.add("/id", p);
                }
                id.clone()
            }
            (None, Some(raw)) => {
                for p in PathId::problems(raw) {
                    errs.add("/id", p);
                }
                PathId::parse(raw)
            }
            (None, None) => {
                errs.add("/id", "error.path.missing");
                PathId::root()
            }
        };

        let mut uint = |path: &str, v: Option<i64>, default: i64| -> u64 {
            let v = v.unwrap_or(default);
            if v < 0 {
                errs.add(path, format!("got {v}, expected 0 or more"));
                0
            } else {
                v as u64
            }
        };
        let instances = uint("/instances", self.instances, 1) as u32;
        let gpus = uint("/gpus", self.gpus, 0) as u32;

        if self.ports.is_some() && self.port_definitions.is_some() {
            errs.add("/", "cannot specify both ports and port definitions");
        }
        if self.uris.is_some() && self.fetch.is_some() {
            errs.add("/", "cannot specify both uris and fetch");
        }
        if self.ip_address.is_some() && self.networks.is_some() {
            errs.add("/", "cannot specify both ipAddress and networks");
        }

        let fetch = match (self.fetch, self.uris) {
            (Some(f), _) => f
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let uri = f.uri.unwrap_or_default();
                    if uri.is_empty() {
                        errs.add(format!("/fetch({i})/uri"), "must not be empty");
                    }
                    FetchUri {
                        extract: f.extract.unwrap_or(true),
                        executable: f.executable.unwrap_or(false),
                        cache: f.cache.unwrap_or(false),
                        output_file: f.output_file,
                        uri,
                    }
                })
                .collect(),
            (None, Some(uris)) => uris
                .into_iter()
                .map(|uri| FetchUri {
                    extract: is_archive(&uri),
                    executable: false,
                    cache: false,
                    output_file: None,
                    uri,
                })
                .collect(),
            (None, None) => Vec::new(),
        };

        let container = self.container.map(|c| normalise_container(c, errs));
        let networks = normalise_networks(self.networks, self.ip_address, &container, errs);

        let mut def = AppDefinition {
            id,
            cmd: self.cmd,
            args: self.args,
            user: self.user,
            env: self.env.unwrap_or_default(),
            instances,
            cpus: self.cpus.unwrap_or(1.0),
            mem: self.mem.unwrap_or(128.0),
            disk: self.disk.unwrap_or(0.0),
            gpus,
            executor: self.executor.unwrap_or_default(),
            constraints: self.constraints.unwrap_or_default(),
            accepted_resource_roles: self.accepted_resource_roles,
            role: self.role,
            labels: self.labels.unwrap_or_default(),
            fetch,
            store_urls: self.store_urls.unwrap_or_default(),
            dependencies: self
                .dependencies
                .unwrap_or_default()
                .iter()
                .map(|d| PathId::parse(d))
                .collect(),
            port_definitions: Vec::new(),
            require_ports: self.require_ports.unwrap_or(false),
            networks,
            container: container.map(|(c, _)| c),
            health_checks: Vec::new(),
            readiness_checks: self.readiness_checks.unwrap_or_default(),
            upgrade_strategy: UpgradeStrategy {
                minimum_health_capacity: self
                    .upgrade_strategy
                    .as_ref()
                    .and_then(|u| u.minimum_health_capacity)
                    .unwrap_or(1.0),
                maximum_over_capacity: self
                    .upgrade_strategy
                    .as_ref()
                    .and_then(|u| u.maximum_over_capacity)
                    .unwrap_or(1.0),
            },
            backoff_seconds: self.backoff_seconds.unwrap_or(1.0),
            backoff_factor: self.backoff_factor.unwrap_or(1.15),
            max_launch_delay_seconds: self.max_launch_delay_seconds.unwrap_or(300.0),
            task_kill_grace_period_seconds: self.task_kill_grace_period_seconds,
            kill_selection: match self.kill_selection.as_deref() {
                None | Some("YOUNGEST_FIRST") => KillSelection::YoungestFirst,
                Some("OLDEST_FIRST") => KillSelection::OldestFirst,
                Some(other) => {
                    errs.add(
                        "/killSelection",
                        format!("'{other}' is not one of (YOUNGEST_FIRST, OLDEST_FIRST)"),
                    );
                    KillSelection::YoungestFirst
                }
            },
            unreachable_strategy: self.unreachable_strategy.unwrap_or_else(
                || serde_json::json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}),
            ),
            secrets: self.secrets.unwrap_or_default(),
            residency: self.residency,
            version,
            version_info: VersionInfo {
                last_scaling_at: version,
                last_config_change_at: version,
            },
        };

        if def.uses_port_definitions() {
            def.port_definitions = match (self.port_definitions, self.ports) {
                (Some(pds), _) => pds
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| PortDefinition {
                        port: port_number(
                            &format!("/portDefinitions({i})/port"),
                            p.port.unwrap_or(0),
                            errs,
                        ),
                        protocol: p.protocol.unwrap_or_else(|| "tcp".into()),
                        name: p.name,
                        labels: p.labels.unwrap_or_default(),
                    })
                    .collect(),
                (None, Some(ports)) => ports
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| PortDefinition {
                        port: port_number(&format!("/ports({i})"), p, errs),
                        protocol: "tcp".into(),
                        name: None,
                        labels: BTreeMap::new(),
                    })
                    .collect(),
                (None, None) => vec![PortDefinition {
                    port: 0,
                    protocol: "tcp".into(),
                    name: Some("default".into()),
                    labels: BTreeMap::new(),
                }],
            };
        } else if self
            .port_definitions
            .as_ref()
            .is_some_and(|p| !p.is_empty())
            || self.ports.as_ref().is_some_and(|p| !p.is_empty())
        {
            errs.add(
                "/portDefinitions",
                "port definitions are only allowed with host networking; use container.portMappings",
            );
        }

        def.health_checks = self
            .health_checks
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, hc)| normalise_health_check(i, hc, errs))
            .collect();
        def
    }
}

fn port_number(path: &str, p: i64, errs: &mut Errors) -> u32 {
    if !(0..=65535).contains(&p) {
        errs.add(path, format!("got {p}, expected between 0 and 65535"));
        0
    } else {
        p as u32
    }
}

/// Normalises the container block; also returns the deprecated `docker.network` value.
fn normalise_container(c: ContainerInput, errs: &mut Errors) -> (Container, Option<String>) {
    let kind = c.kind.unwrap_or_else(|| "DOCKER".into());
    if kind != "DOCKER" && kind != "MESOS" {
        errs.add(
            "/container/type",
            format!("'{kind}' is not one of (DOCKER, MESOS)"),
        );
    }
    let mut network = None;
    let mut legacy_mappings = None;
    let docker = c.docker.map(|d| {
        network = d.network;
        legacy_mappings = d.port_mappings;
        let image = d.image.unwrap_or_default();
        if image.is_empty() {
            errs.add("/container/docker/image", "must not be empty");
        }
        Docker {
            image,
            force_pull_image: d.force_pull_image.unwrap_or(false),
            privileged: d.privileged.unwrap_or(false),
            parameters: d.parameters.unwrap_or_default(),
        }
    });
    if kind == "DOCKER" && docker.is_none() {
        errs.add("/container/docker", "must be defined for DOCKER containers");
    }
    if c.port_mappings.is_some() && legacy_mappings.is_some() {
        errs.add(
            "/container",
            "cannot specify both container.portMappings and container.docker.portMappings",
        );
    }
    let mappings_path = if c.port_mappings.is_some() {
        "/container/portMappings"
    } else {
        "/container/docker/portMappings"
    };
    let port_mappings = c
        .port_mappings
        .or(legacy_mappings)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let p = |f: &str| format!("{mappings_path}({i})/{f}");
            PortMapping {
                container_port: port_number(
                    &p("containerPort"),
                    m.container_port.unwrap_or(0),
                    errs,
                ),
                host_port: m.host_port.map(|h| port_number(&p("hostPort"), h, errs)),
                service_port: port_number(&p("servicePort"), m.service_port.unwrap_or(0), errs),
                protocol: m.protocol.unwrap_or_else(|| "tcp".into()),
                name: m.name,
                labels: m.labels.unwrap_or_default(),
            }
        })
        .collect();
    let volumes = c
        .volumes
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let container_path = v.container_path.unwrap_or_default();
            if container_path.is_empty() {
                errs.add(
                    format!("/container/volumes({i})/containerPath"),
                    "must not be empty",
                );
            }
            let mode = v.mode.unwrap_or_else(|| "RW".into());
            if mode != "RW" && mode != "RO" {
                errs.add(
                    format!("/container/volumes({i})/mode"),
                    format!("'{mode}' is not one of (RO, RW)"),
                );
            }
            Volume {
                container_path,
                host_path: v.host_path,
                mode,
                persistent: v.persistent,
                external: v.external,
            }
        })
        .collect();
    (
        Container {
            kind,
            docker,
            port_mappings,
            volumes,
        },
        network,
    )
}

/// Resolves `networks`, the deprecated `ipAddress` and `container.docker.network` into one list.
fn normalise_networks(
    networks: Option<Vec<NetworkInput>>,
    ip_address: Option<IpAddressInput>,
    container: &Option<(Container, Option<String>)>,
    errs: &mut Errors,
) -> Vec<Network> {
    let legacy = container.as_ref().and_then(|(_, n)| n.clone());
    if legacy.is_some() && networks.is_some() {
        errs.add(
            "/container/docker/network",
            "cannot be combined with networks; use networks only",
        );
    }
    if let Some(list) = networks {
        return list
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let mode = n.mode.unwrap_or_else(|| "container".into());
                if !["host", "container", "container/bridge"].contains(&mode.as_str()) {
                    errs.add(
                        format!("/networks({i})/mode"),
                        format!("'{mode}' is not one of (host, container, container/bridge)"),
                    );
                }
                Network {
                    mode,
                    name: n.name,
                    labels: n.labels.unwrap_or_default(),
                }
            })
            .collect();
    }
    let ip_name = ip_address.as_ref().and_then(|ip| ip.network_name.clone());
    match legacy.as_deref() {
        Some("HOST") => vec![host_network()],
        Some("BRIDGE") => vec![Network {
            mode: "container/bridge".into(),
            name: None,
            labels: BTreeMap::new(),
        }],
        Some("USER") => vec![Network {
            mode: "container".into(),
            name: ip_name,
            labels: BTreeMap::new(),
        }],
        Some(other) => {
            errs.add(
                "/container/docker/network",
                format!("'{other}' is not one of (HOST, BRIDGE, USER)"),
            );
            vec![host_network()]
        }
        None if ip_address.is_some() => vec![Network {
            mode: "container".into(),
            name: ip_name,
            labels: ip_address.and_then(|ip| ip.labels).unwrap_or_default(),
        }],
        None => vec![host_network()],
    }
}

fn host_network() -> Network {
    Network {
        mode: "host".into(),
        name: None,
        labels: BTreeMap::new(),
    }
}

fn normalise_health_check(
    i: usize,
    hc: HealthCheckInput,
    errs: &mut Errors,
) -> Option<HealthCheck> {
    let base = format!("/healthChecks({i})");
    let raw = hc.protocol.unwrap_or_else(|| "HTTP".into());
    let protocol = match raw.as_str() {
        "HTTP" => HealthProtocol::Http,
        "TCP" => HealthProtocol::Tcp,
        "COMMAND" | "MESOS_COMMAND" => HealthProtocol::Command,
        "MESOS_HTTP" => HealthProtocol::MesosHttp,
        "MESOS_TCP" => HealthProtocol::MesosTcp,
        "HTTPS" | "MESOS_HTTPS" => {
            errs.add(
                format!("{base}/protocol"),
                format!(
                    "{raw} health checks are not supported by Slipway; use HTTP, TCP or COMMAND"
                ),
            );
            return None;
        }
        other => {
            errs.add(
                format!("{base}/protocol"),
                format!(
                    "'{other}' is not one of (HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP)"
                ),
            );
            return None;
        }
    };
    let mut nonneg = |field: &str, v: Option<i64>, default: i64| -> u64 {
        let v = v.unwrap_or(default);
        if v < 0 {
            errs.add(
                format!("{base}/{field}"),
                format!("got {v}, expected 0 or more"),
            );
            0
        } else {
            v as u64
        }
    };
    let grace_period_seconds = nonneg("gracePeriodSeconds", hc.grace_period_seconds, 300);
    let interval_seconds = nonneg("intervalSeconds", hc.interval_seconds, 60);
    let timeout_seconds = nonneg("timeoutSeconds", hc.timeout_seconds, 20);
    let max_consecutive_failures =
        nonneg("maxConsecutiveFailures", hc.max_consecutive_failures, 3) as u32;
    let delay_seconds = nonneg("delaySeconds", hc.delay_seconds, 15);
    let port_index = hc
        .port_index
        .map(|p| nonneg("portIndex", Some(p), 0) as u32);
    let port = hc
        .port
        .map(|p| port_number(&format!("{base}/port"), p, errs));
    let is_http = matches!(protocol, HealthProtocol::Http | HealthProtocol::MesosHttp);
    let is_command = protocol == HealthProtocol::Command;
    if is_command
        && hc
            .command
            .as_ref()
            .is_none_or(|c| c.value.trim().is_empty())
    {
        errs.add(
            format!("{base}/command"),
            "COMMAND health checks need command.value",
        );
    }
    let path = if is_http {
        let path = hc.path.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            errs.add(format!("{base}/path"), "must start with /");
        }
        Some(path)
    } else {
        None
    };
    Some(HealthCheck {
        protocol,
        path,
        port_index: if is_command {
            None
        } else {
            port_index.or(if port.is_none() { Some(0) } else { None })
        },
        port: if is_command { None } else { port },
        command: if is_command { hc.command } else { None },
        grace_period_seconds,
        interval_seconds,
        timeout_seconds,
        max_consecutive_failures,
        ignore_http1xx: if is_http {
            Some(hc.ignore_http1xx.unwrap_or(false))
        } else {
            None
        },
        delay_seconds,
    })
}
