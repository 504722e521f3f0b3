//! `container.docker.parameters` (`docker run` options) on a Swarm container spec: those a
//! service can carry are applied, the others are refused with their place in the app.

use crate::SwarmError;
use bollard::models::{
    Mount, MountTmpfsOptions, MountType, ResourcesUlimits, TaskSpecContainerSpec,
    TaskSpecContainerSpecDnsConfig,
};
use model::Parameter;

/// The `docker run` options a Swarm service can carry.
pub const SWARM_PARAMETERS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "dns",
    "dns-search",
    "entrypoint",
    "env",
    "hostname",
    "init",
    "label",
    "network-alias",
    "pids-limit",
    "read-only",
    "stop-signal",
    "sysctl",
    "tmpfs",
    "ulimit",
    "user",
    "workdir",
];

/// What parameters set outside the container spec.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// `--entrypoint`: replaces the image's entrypoint.
    pub entrypoint: Option<String>,
    /// `--network-alias`: aliases on the app's overlay network.
    pub aliases: Vec<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--env`, applied before Marathon's variables.
    pub env: Vec<(String, String)>,
}

/// Bytes from `64m`, `1g`, `512k` or a plain number.
fn bytes(v: &str) -> Option<i64> {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1024),
        'm' => (&v[..v.len() - 1], 1024 * 1024),
        'g' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

fn kv(v: &str) -> Option<(String, String)> {
    let (k, v) = v.split_once('=')?;
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim() {
        "" | "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Applies `params` to `spec`, returning what belongs elsewhere in the service.
pub(crate) fn apply(
    params: &[Parameter],
    spec: &mut TaskSpecContainerSpec,
) -> Result<Extra, SwarmError> {
    let mut extra = Extra::default();
    for (i, p) in params.iter().enumerate() {
        let bad = |why: &str| SwarmError::Unsupported {
            field: format!("/container/docker/parameters({i})"),
            reason: format!("--{} {}: {why}", p.key, p.value),
        };
        let v = p.value.as_str();
        match p.key.as_str() {
            "add-host" => {
                let (host, ip) = v.split_once(':').ok_or_else(|| bad("expected HOST:IP"))?;
                spec.hosts
                    .get_or_insert_with(Vec::new)
                    .push(format!("{ip} {host}"));
            }
            "cap-add" => spec
                .capability_add
                .get_or_insert_with(Vec::new)
                .push(v.to_string()),
            "cap-drop" => spec
                .capability_drop
                .get_or_insert_with(Vec::new)
                .push(v.to_string()),
            "dns" => spec
                .dns_config
                .get_or_insert_with(TaskSpecContainerSpecDnsConfig::default)
                .nameservers
                .get_or_insert_with(Vec::new)
                .push(v.to_string()),
            "dns-search" => spec
                .dns_config
                .get_or_insert_with(TaskSpecContainerSpecDnsConfig::default)
                .search
                .get_or_insert_with(Vec::new)
                .push(v.to_string()),
            "entrypoint" => extra.entrypoint = Some(v.to_string()),
            "env" => extra
                .env
                .push(kv(v).ok_or_else(|| bad("expected NAME=value"))?),
            "hostname" => spec.hostname = Some(v.to_string()),
            "init" => spec.init = Some(truthy(v).ok_or_else(|| bad("expected true or false"))?),
            "label" => {
                let (k, val) = kv(v).ok_or_else(|| bad("expected key=value"))?;
                spec.labels
                    .get_or_insert_with(Default::default)
                    .insert(k, val);
            }
            "network-alias" => extra.aliases.push(v.to_string()),
            "pids-limit" => {
                extra.pids_limit = Some(v.trim().parse().map_err(|_| bad("expected a number"))?)
            }
            "read-only" => {
                spec.read_only = Some(truthy(v).ok_or_else(|| bad("expected true or false"))?)
            }
            "stop-signal" => spec.stop_signal = Some(v.to_string()),
            "sysctl" => {
                let (k, val) = kv(v).ok_or_else(|| bad("expected name=value"))?;
                spec.sysctls
                    .get_or_insert_with(Default::default)
                    .insert(k, val);
            }
            "tmpfs" => {
                let (path, opts) = v.split_once(':').unwrap_or((v, ""));
                let size = opts
                    .split(',')
                    .find_map(|o| o.strip_prefix("size="))
                    .map(|s| bytes(s).ok_or_else(|| bad("size must be like 64m")))
                    .transpose()?;
                spec.mounts.get_or_insert_with(Vec::new).push(Mount {
                    target: Some(path.to_string()),
                    typ: Some(MountType::TMPFS),
                    tmpfs_options: size.map(|s| MountTmpfsOptions {
                        size_bytes: Some(s),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
            "ulimit" => {
                let (name, limits) = v
                    .split_once('=')
                    .ok_or_else(|| bad("expected name=soft[:hard]"))?;
                let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
                let num = |s: &str| {
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| bad("limits must be numbers"))
                };
                spec.ulimits
                    .get_or_insert_with(Vec::new)
                    .push(ResourcesUlimits {
                        name: Some(name.to_string()),
                        soft: Some(num(soft)?),
                        hard: Some(num(hard)?),
                    });
            }
            "user" => spec.user = Some(v.to_string()),
            "workdir" => spec.dir = Some(v.to_string()),
            other => {
                return Err(bad(&format!(
                    "a Swarm service cannot carry --{other}; supported: {}",
                    SWARM_PARAMETERS.join(", ")
                )));
            }
        }
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, value: &str) -> Parameter {
        Parameter {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn supported_parameters_land_in_the_container_spec() {
        let mut spec = TaskSpecContainerSpec::default();
        let extra = apply(
            &[
                p("add-host", "db:10.0.0.5"),
                p("cap-add", "NET_ADMIN"),
                p("label", "team=web"),
                p("workdir", "/srv"),
                p("tmpfs", "/run:size=64m"),
                p("ulimit", "nofile=1024:4096"),
                p("env", "A=b"),
                p("network-alias", "web"),
                p("pids-limit", "100"),
                p("read-only", "true"),
            ],
            &mut spec,
        )
        .unwrap();
        assert_eq!(spec.hosts.unwrap(), vec!["10.0.0.5 db"]);
        assert_eq!(spec.capability_add.unwrap(), vec!["NET_ADMIN"]);
        assert_eq!(spec.labels.unwrap()["team"], "web");
        assert_eq!(spec.dir.as_deref(), Some("/srv"));
        let m = &spec.mounts.unwrap()[0];
        assert_eq!(m.typ, Some(MountType::TMPFS));
        assert_eq!(m.tmpfs_options.as_ref().unwrap().size_bytes, Some(64 << 20));
        assert_eq!(spec.ulimits.unwrap()[0].hard, Some(4096));
        assert_eq!(spec.read_only, Some(true));
        assert_eq!(extra.env, vec![("A".to_string(), "b".to_string())]);
        assert_eq!(extra.aliases, vec!["web"]);
        assert_eq!(extra.pids_limit, Some(100));
    }

    #[test]
    fn other_parameters_are_refused_with_their_place() {
        let mut spec = TaskSpecContainerSpec::default();
        let e = apply(&[p("user", "1000"), p("shm-size", "1g")], &mut spec)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/container/docker/parameters(1): --shm-size 1g: a Swarm service cannot carry --shm-size"),
            "{e}"
        );
        let e = apply(&[p("ulimit", "nofile")], &mut spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected name=soft[:hard]"), "{e}");
    }
}
