//! What an app definition asks for beyond an ordinary task: another user, privileged
//! containers, host paths, capabilities, the host's network, security options, ports below
//! 1024. Each is a policy decision (by default admins only); this module only lists them.

use crate::{AppDefinition, NetworkMode};

/// One privilege an app definition asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privilege {
    /// The policy key that grants it: one of [`PRIVILEGES`].
    pub kind: &'static str,
    /// What exactly, for the refusal message (`hostPath /`, `cap-add SYS_ADMIN`).
    pub detail: String,
}

/// Every privilege kind, as named in environment policies (`"privileges": {"hostPath":
/// ["role:deployer"]}`).
pub const PRIVILEGES: &[&str] = &[
    "user",
    "privileged",
    "hostPath",
    "capAdd",
    "hostNetwork",
    "securityOpt",
    "lowPorts",
];

/// Whether `path` lies inside one of `allowed` (segment-wise, after removing `.` and
/// refusing `..`).
fn host_path_allowed(path: &str, allowed: &[String]) -> bool {
    let segs = |p: &str| -> Option<Vec<String>> {
        let mut out = Vec::new();
        for s in p.split('/') {
            match s {
                "" | "." => {}
                ".." => return None,
                s => out.push(s.to_string()),
            }
        }
        Some(out)
    };
    let Some(path) = segs(path) else {
        return false;
    };
    allowed.iter().any(|a| {
        segs(a).is_some_and(|a| a.len() <= path.len() && a.iter().zip(&path).all(|(x, y)| x == y))
    })
}

impl AppDefinition {
    /// The privileges this definition asks for. `task_user` is the account tasks run as
    /// anyway (asking for it is no privilege); host paths inside `allowed_host_paths` are
    /// ordinary volumes.
    pub fn privileges(&self, task_user: &str, allowed_host_paths: &[String]) -> Vec<Privilege> {
        let mut out = Vec::new();
        let mut add = |kind: &'static str, detail: String| out.push(Privilege { kind, detail });
        if let Some(user) = &self.user
            && self.container.is_none()
            && user != task_user
        {
            add("user", format!("user {user}"));
        }
        if let Some(c) = &self.container {
            for v in &c.volumes {
                if let Some(host) = &v.host_path
                    && !host_path_allowed(host, allowed_host_paths)
                {
                    add("hostPath", format!("hostPath {host}"));
                }
            }
            if let Some(d) = &c.docker {
                if d.privileged {
                    add("privileged", "privileged".into());
                }
                for p in &d.parameters {
                    match p.key.as_str() {
                        "cap-add" => add("capAdd", format!("cap-add {}", p.value)),
                        "security-opt" => add("securityOpt", format!("security-opt {}", p.value)),
                        _ => {}
                    }
                }
            }
            if self.network_mode() == NetworkMode::Host {
                add("hostNetwork", "network=host".into());
            }
            for m in &c.port_mappings {
                if let Some(p) = m.host_port.filter(|p| (1..1024).contains(p)) {
                    add("lowPorts", format!("hostPort {p}"));
                }
            }
        }
        for p in self.service_ports() {
            if (1..1024).contains(&p) {
                add("lowPorts", format!("servicePort {p}"));
            }
        }
        if self.require_ports && self.container.is_none() {
            for p in &self.port_definitions {
                if (1..1024).contains(&p.port) {
                    add("lowPorts", format!("port {}", p.port));
                }
            }
        }
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: &str) -> AppDefinition {
        crate::parse_definition(json.as_bytes(), None, crate::Timestamp(1)).expect("valid")
    }

    fn kinds(d: &AppDefinition) -> Vec<String> {
        d.privileges("slipway-task", &["/srv/logs".into()])
            .into_iter()
            .map(|p| p.detail)
            .collect()
    }

    #[test]
    fn lists_every_privilege_asked_for() {
        let plain = def(r#"{"id": "/a", "cmd": "sleep 1"}"#);
        assert!(kinds(&plain).is_empty());
        let user = def(r#"{"id": "/a", "cmd": "id", "user": "root"}"#);
        assert_eq!(kinds(&user), ["user root"]);
        let own = def(r#"{"id": "/a", "cmd": "id", "user": "slipway-task"}"#);
        assert!(kinds(&own).is_empty());
        let c = def(r#"{"id": "/a", "container": {"type": "DOCKER",
            "docker": {"image": "x", "privileged": true, "network": "HOST",
                       "parameters": [{"key": "cap-add", "value": "SYS_ADMIN"},
                                      {"key": "security-opt", "value": "seccomp=unconfined"}]},
            "volumes": [{"containerPath": "/h", "hostPath": "/", "mode": "RW"},
                        {"containerPath": "/l", "hostPath": "/srv/logs/app", "mode": "RW"},
                        {"containerPath": "/e", "hostPath": "/srv/logs/../../etc", "mode": "RO"}]}}"#);
        assert_eq!(
            kinds(&c),
            [
                "hostPath /",
                "hostPath /srv/logs/../../etc",
                "privileged",
                "cap-add SYS_ADMIN",
                "security-opt seccomp=unconfined",
                "network=host"
            ]
        );
        let low = def(r#"{"id": "/a", "cmd": "x", "portDefinitions": [{"port": 80}]}"#);
        assert_eq!(kinds(&low), ["servicePort 80"]);
    }
}
