//! Marathon `container.docker.parameters` (`docker run` options, keys without dashes)
//! applied to the create request. Unknown keys and unparseable values are errors.

use crate::DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use std::collections::HashMap;

/// `parameters` keys (without dashes) that [`crate::Docker::launch`] understands: the list
/// the API validates against, kept in one place.
pub use model::DOCKER_PARAMETERS as SUPPORTED_PARAMETERS;

/// Resource names `--ulimit` accepts.
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Applies `params` in order (repeatable keys accumulate, single-valued keys: last wins).
pub(crate) fn apply(
    params: &[(String, String)],
    body: &mut ContainerCreateBody,
    host: &mut HostConfig,
    aliases: &mut Vec<String>,
) -> Result<(), DockerError> {
    for (raw_key, raw_value) in params {
        let key = raw_key.trim().trim_start_matches('-');
        let value = raw_value.trim();
        apply_one(key, value, body, host, aliases).map_err(|reason| {
            DockerError::InvalidParameter {
                key: key.to_string(),
                reason,
            }
        })?;
    }
    Ok(())
}

fn apply_one(
    key: &str,
    value: &str,
    body: &mut ContainerCreateBody,
    host: &mut HostConfig,
    aliases: &mut Vec<String>,
) -> Result<(), String> {
    let push = |list: &mut Option<Vec<String>>, v: &str| -> Result<(), String> {
        if v.is_empty() {
            return Err("the value is empty".into());
        }
        list.get_or_insert_with(Vec::new).push(v.to_string());
        Ok(())
    };
    match key {
        "add-host" => {
            let (name, ip) = value
                .split_once(':')
                .ok_or("expected host:ip, e.g. db.local:10.0.0.5")?;
            if name.is_empty() || ip.is_empty() {
                return Err("expected host:ip, e.g. db.local:10.0.0.5".into());
            }
            push(&mut host.extra_hosts, value)?;
        }
        "cap-add" => push(&mut host.cap_add, value)?,
        "cap-drop" => push(&mut host.cap_drop, value)?,
        "dns" => push(&mut host.dns, value)?,
        "dns-search" => push(&mut host.dns_search, value)?,
        "security-opt" => push(&mut host.security_opt, value)?,
        "entrypoint" => {
            let words: Vec<String> = value.split_whitespace().map(str::to_string).collect();
            body.entrypoint = Some(if words.is_empty() {
                vec![String::new()]
            } else {
                words
            });
        }
        "env" => {
            let (k, _) = key_value(value)?;
            if k.contains(char::is_whitespace) {
                return Err("the variable name contains whitespace".into());
            }
            push(&mut body.env, value)?;
        }
        "hostname" => body.hostname = Some(non_empty(value)?.to_string()),
        "init" => host.init = Some(boolean(value)?),
        "read-only" => host.readonly_rootfs = Some(boolean(value)?),
        "label" => {
            let (k, v) = key_value(value)?;
            if k.starts_with("slipway.") {
                return Err("labels starting with slipway. are reserved".into());
            }
            body.labels
                .get_or_insert_with(HashMap::new)
                .insert(k.to_string(), v.to_string());
        }
        "memory-reservation" => host.memory_reservation = Some(size(value, false)?),
        "memory-swap" => host.memory_swap = Some(size(value, true)?),
        "shm-size" => host.shm_size = Some(size(value, false)?),
        "network-alias" => aliases.push(non_empty(value)?.to_string()),
        "oom-score-adj" => {
            let n: i64 = value.parse().map_err(|_| "expected an integer")?;
            if !(-1000..=1000).contains(&n) {
                return Err("must be between -1000 and 1000".into());
            }
            host.oom_score_adj = Some(n);
        }
        "pids-limit" => {
            let n: i64 = value.parse().map_err(|_| "expected an integer")?;
            host.pids_limit = Some(n.max(-1));
        }
        "stop-signal" => body.stop_signal = Some(non_empty(value)?.to_string()),
        "sysctl" => {
            let (k, v) = key_value(value)?;
            host.sysctls
                .get_or_insert_with(HashMap::new)
                .insert(k.to_string(), v.to_string());
        }
        "tmpfs" => {
            let (path, opts) = value.split_once(':').unwrap_or((value, ""));
            if !path.starts_with('/') {
                return Err("expected an absolute path[:options]".into());
            }
            host.tmpfs
                .get_or_insert_with(HashMap::new)
                .insert(path.to_string(), opts.to_string());
        }
        "ulimit" => host
            .ulimits
            .get_or_insert_with(Vec::new)
            .push(ulimit(value)?),
        "user" => body.user = Some(non_empty(value)?.to_string()),
        "workdir" => {
            if !value.starts_with('/') {
                return Err("the working directory must be an absolute path".into());
            }
            body.working_dir = Some(value.to_string());
        }
        _ => {
            return Err(format!(
                "unsupported parameter (supported: {})",
                SUPPORTED_PARAMETERS.join(", ")
            ));
        }
    }
    Ok(())
}

fn non_empty(value: &str) -> Result<&str, String> {
    if value.is_empty() {
        Err("the value is empty".into())
    } else {
        Ok(value)
    }
}

/// `KEY=VALUE` with a non-empty key.
fn key_value(value: &str) -> Result<(&str, &str), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(format!("expected KEY=VALUE, got {value:?}")),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`); an empty value means `true` like a bare flag.
fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// Docker size syntax (`512m`, `1g`, `1.5GiB`, `1024`): binary multiples; `-1` when allowed.
pub(crate) fn size(value: &str, allow_unlimited: bool) -> Result<i64, String> {
    if allow_unlimited && value == "-1" {
        return Ok(-1);
    }
    let bad = || format!("expected a size such as 512m or 1g, got {value:?}");
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// `name=soft[:hard]` (hard defaults to soft; `-1` means unlimited).
fn ulimit(value: &str) -> Result<ResourcesUlimits, String> {
    let (name, limits) = key_value(value).map_err(|_| "expected name=soft[:hard]".to_string())?;
    if !ULIMITS.contains(&name) {
        return Err(format!(
            "unknown ulimit {name:?} (known: {})",
            ULIMITS.join(", ")
        ));
    }
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("expected a number, got {s:?}"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(limits)?, number(limits)?),
    };
    if soft != -1 && hard != -1 && soft > hard {
        return Err(format!("soft limit {soft} is above the hard limit {hard}"));
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(params: &[(&str, &str)]) -> Result<(ContainerCreateBody, HostConfig), DockerError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (mut body, mut host) = (ContainerCreateBody::default(), HostConfig::default());
        apply(&params, &mut body, &mut host, &mut Vec::new())?;
        Ok((body, host))
    }

    #[test]
    fn sizes_use_binary_multiples() {
        assert_eq!(size("512m", false), Ok(512 << 20));
        assert_eq!(size("1g", false), Ok(1 << 30));
        assert_eq!(size("1GiB", false), Ok(1 << 30));
        assert_eq!(size("64k", false), Ok(64 << 10));
        assert_eq!(size("100", false), Ok(100));
        assert_eq!(size("-1", true), Ok(-1));
        assert!(size("-1", false).is_err());
        assert!(size("12x", false).is_err());
        assert!(size("m", false).is_err());
    }

    #[test]
    fn values_are_mapped_and_validated() {
        let (body, host) = run(&[
            ("ulimit", "nofile=1024:2048"),
            ("ulimit", "nproc=64"),
            ("--add-host", "db.local:10.1.2.3"),
            ("env", "A=b=c"),
            ("entrypoint", "/bin/echo hi"),
            ("pids-limit", "100"),
            ("read-only", "true"),
        ])
        .expect("valid parameters");
        let ulimits = host.ulimits.expect("ulimits");
        assert_eq!(ulimits[0].hard, Some(2048));
        assert_eq!(ulimits[1].soft, Some(64));
        assert_eq!(host.extra_hosts, Some(vec!["db.local:10.1.2.3".into()]));
        assert_eq!(body.env, Some(vec!["A=b=c".into()]));
        assert_eq!(body.entrypoint, Some(vec!["/bin/echo".into(), "hi".into()]));
        assert_eq!(
            (host.pids_limit, host.readonly_rootfs),
            (Some(100), Some(true))
        );
        for bad in [
            ("ulimit", "nofile=10:5"),
            ("ulimit", "bogus=1"),
            ("add-host", "nocolon"),
            ("label", "slipway.task=x"),
            ("oom-score-adj", "5000"),
            ("init", "maybe"),
            ("publish", "80:80"),
        ] {
            let err = run(&[bad]).expect_err(bad.0);
            assert!(
                matches!(&err, DockerError::InvalidParameter { key, .. } if key == bad.0),
                "{err}"
            );
        }
    }
}
