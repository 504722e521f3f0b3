//! Rules on a normalised definition. Each violation is reported with its Marathon field path.

use crate::app::*;
use crate::error::Errors;
use crate::path_id::PathId;
use std::collections::BTreeSet;

const PROTOCOLS: [&str; 3] = ["tcp", "udp", "udp,tcp"];
const CONSTRAINT_OPS: [&str; 7] = [
    "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
];

/// Checks every rule of a normalised definition.
pub(crate) fn check(def: &AppDefinition, errs: &mut Errors) {
    let has_cmd = def.cmd.is_some();
    let has_args = def.args.is_some();
    if def.container.is_none() && !has_cmd && !has_args {
        errs.add(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        );
    }
    if def.cmd.as_deref().is_some_and(|c| c.trim().is_empty()) {
        errs.add("/cmd", "must not be empty");
    }
    // A NUL cannot reach a process: the kernel would cut the string there.
    if def.cmd.as_deref().is_some_and(|c| c.contains('\0')) {
        errs.add("/cmd", "must not contain NUL characters");
    }
    for (i, a) in def.args.iter().flatten().enumerate() {
        if a.contains('\0') {
            errs.add(format!("/args({i})"), "must not contain NUL characters");
        }
    }
    for (k, v) in &def.env {
        if k.contains(['\0', '=']) || matches!(v, EnvValue::Literal(v) if v.contains('\0')) {
            errs.add(
                format!("/env/{k}"),
                "names must not contain '=' or NUL, values not NUL",
            );
        }
    }
    if def.cpus.is_nan() || def.cpus < 0.001 {
        errs.add("/cpus", format!("got {}, expected 0.001 or more", def.cpus));
    }
    for (path, v) in [("/mem", def.mem), ("/disk", def.disk)] {
        if v.is_nan() || v < 0.0 {
            errs.add(path, format!("got {v}, expected 0.0 or more"));
        }
    }
    let us = &def.upgrade_strategy;
    for (path, v) in [
        (
            "/upgradeStrategy/minimumHealthCapacity",
            us.minimum_health_capacity,
        ),
        (
            "/upgradeStrategy/maximumOverCapacity",
            us.maximum_over_capacity,
        ),
    ] {
        if v > 1.0 {
            errs.add(path, "is greater than 1");
        } else if v.is_nan() || v < 0.0 {
            errs.add(path, "is less than 0");
        }
    }
    if def.backoff_seconds.is_nan() || def.backoff_seconds < 0.0 {
        errs.add(
            "/backoffSeconds",
            format!("got {}, expected 0 or more", def.backoff_seconds),
        );
    }
    if def.backoff_factor.is_nan() || def.backoff_factor < 1.0 {
        errs.add(
            "/backoffFactor",
            format!("got {}, expected 1.0 or more", def.backoff_factor),
        );
    }
    if def.max_launch_delay_seconds.is_nan() || def.max_launch_delay_seconds < 0.0 {
        errs.add(
            "/maxLaunchDelaySeconds",
            format!("got {}, expected 0 or more", def.max_launch_delay_seconds),
        );
    }
    if let Some(g) = def.task_kill_grace_period_seconds
        && (g.is_nan() || g < 0.0)
    {
        errs.add(
            "/taskKillGracePeriodSeconds",
            format!("got {g}, expected 0 or more"),
        );
    }
    check_env(def, errs);
    check_ports(def, errs);
    check_health_checks(def, errs);
    for (i, c) in def.constraints.iter().enumerate() {
        let ok_len = (2..=3).contains(&c.len());
        let ok_op = c
            .get(1)
            .is_some_and(|op| CONSTRAINT_OPS.contains(&op.as_str()));
        if !ok_len || !ok_op {
            errs.add(
                format!("/constraints({i})"),
                "Each constraint must be [field, operator(, value)] with operator one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS",
            );
        }
    }
    for (i, d) in def.dependencies.iter().enumerate() {
        for p in PathId::problems(&d.to_string()) {
            errs.add(format!("/dependencies({i})"), p);
        }
    }
    if let Some(c) = &def.container {
        let params = c
            .docker
            .as_ref()
            .map_or(&[][..], |d| d.parameters.as_slice());
        for (i, p) in params.iter().enumerate() {
            let key = p.key.trim_start_matches('-');
            if !DOCKER_PARAMETERS.contains(&key) {
                errs.add(
                    format!("/container/docker/parameters({i})/key"),
                    format!(
                        "'{}' is not a supported docker parameter; supported: {}",
                        p.key,
                        DOCKER_PARAMETERS.join(", ")
                    ),
                );
            }
        }
        for (i, v) in c.volumes.iter().enumerate() {
            if v.host_path.is_none() && v.persistent.is_none() && v.external.is_none() {
                errs.add(
                    format!("/container/volumes({i})"),
                    "a volume needs hostPath, persistent or external",
                );
            }
        }
    }
}

fn check_env(def: &AppDefinition, errs: &mut Errors) {
    for (k, v) in &def.env {
        if k.is_empty() {
            errs.add("/env", "variable names must not be empty");
        }
        if let EnvValue::Secret { secret } = v
            && !def.secrets.contains_key(secret)
        {
            errs.add(
                format!("/env/{k}"),
                format!("references an undefined secret named '{secret}'"),
            );
        }
    }
}

fn check_ports(def: &AppDefinition, errs: &mut Errors) {
    let mut seen_ports = BTreeSet::new();
    let mut seen_names = BTreeSet::new();
    for (i, p) in def.port_definitions.iter().enumerate() {
        if !PROTOCOLS.contains(&p.protocol.as_str()) {
            errs.add(
                format!("/portDefinitions({i})/protocol"),
                format!("'{}' is not one of (tcp, udp, udp,tcp)", p.protocol),
            );
        }
        if p.port != 0 && !seen_ports.insert(p.port) {
            errs.add("/portDefinitions", "Ports must be unique.");
        }
        if let Some(name) = &p.name
            && !seen_names.insert(name.clone())
        {
            errs.add("/portDefinitions", "Port names must be unique.");
        }
    }
    let Some(container) = &def.container else {
        return;
    };
    if def.network_mode() == NetworkMode::Host && !container.port_mappings.is_empty() {
        errs.add(
            "/container/portMappings",
            "portMappings are not allowed with host-networking",
        );
    }
    let mut seen_names = BTreeSet::new();
    for (i, m) in container.port_mappings.iter().enumerate() {
        if !PROTOCOLS.contains(&m.protocol.as_str()) {
            errs.add(
                format!("/container/portMappings({i})/protocol"),
                format!("'{}' is not one of (tcp, udp, udp,tcp)", m.protocol),
            );
        }
        if let Some(name) = &m.name
            && !seen_names.insert(name.clone())
        {
            errs.add("/container/portMappings", "Port names must be unique.");
        }
    }
}

fn check_health_checks(def: &AppDefinition, errs: &mut Errors) {
    let slots = def.port_slots();
    let mesos = def
        .health_checks
        .iter()
        .filter(|h| h.protocol.is_mesos())
        .count();
    if mesos > 1 {
        errs.add(
            "/healthChecks",
            "An app may only have one Mesos health check.",
        );
    }
    for (i, hc) in def.health_checks.iter().enumerate() {
        if hc.port.is_none()
            && let Some(idx) = hc.port_index
            && idx as usize >= slots
        {
            errs.add(
                format!("/healthChecks({i})"),
                "Health check port indices must address an element of the ports array or container port mappings.",
            );
        }
        if hc.interval_seconds == 0 {
            errs.add(
                format!("/healthChecks({i})/intervalSeconds"),
                "got 0, expected 1 or more",
            );
        }
        if hc.timeout_seconds == 0 {
            errs.add(
                format!("/healthChecks({i})/timeoutSeconds"),
                "got 0, expected 1 or more",
            );
        }
    }
}
