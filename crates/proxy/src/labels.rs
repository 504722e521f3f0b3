//! Reads an app's routing labels (`SLIPWAY_*` first, then marathon-lb's `HAPROXY_*`)
//! into a [`PortSpec`] per port index.

use std::collections::BTreeMap;

use crate::{AppEndpoints, ProxyError};

/// How a port's traffic is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// HTTP/1.1 reverse proxying, per request.
    Http,
    /// Plain TCP, per connection.
    Tcp,
}

/// How a backend is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Balance {
    /// Each backend in turn.
    RoundRobin,
    /// The backend with the fewest requests or connections in flight.
    LeastConn,
}

impl Balance {
    /// HAProxy's name for it.
    pub(crate) fn haproxy_name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
        }
    }
}

/// The routing of one port index of one app, as its labels say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortSpec {
    /// HTTP or TCP.
    pub(crate) mode: Mode,
    /// Balancing algorithm.
    pub(crate) balance: Balance,
    /// Port of the service listener; 0 = none.
    pub(crate) listen_port: u16,
    /// Lower-case host names routed on the vhost listener (HTTP mode only).
    pub(crate) vhosts: Vec<String>,
    /// Path prefix on the vhost listener.
    pub(crate) path: Option<String>,
    /// The groups of this port.
    pub(crate) groups: Vec<String>,
}

/// Looks a label up under Slipway's name first, then marathon-lb's; `key` is e.g. `0_MODE`.
fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<(String, &'a str)> {
    ["SLIPWAY_", "HAPROXY_"].iter().find_map(|prefix| {
        let name = format!("{prefix}{key}");
        let value = labels.get(&name)?.trim();
        Some((name, value))
    })
}

/// Splits a comma list into its trimmed, non-empty items.
fn list(value: &str, lowercase: bool) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if lowercase {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        })
        .collect()
}

/// Reads port index `n` of `app`; unknown values are reported and replaced by defaults.
pub(crate) fn port_spec(
    app: &AppEndpoints,
    n: usize,
    service_port: u16,
    errors: &mut Vec<ProxyError>,
) -> PortSpec {
    let labels = &app.labels;
    let mut invalid = |name: String, value: &str| {
        errors.push(ProxyError::InvalidLabel {
            app: app.app_id.clone(),
            label: name,
            value: value.to_owned(),
        });
    };
    let vhosts = label(labels, &format!("{n}_VHOST"))
        .map(|(_, v)| list(v, true))
        .unwrap_or_default();
    let mode = match label(labels, &format!("{n}_MODE")) {
        Some((_, v)) if v.eq_ignore_ascii_case("http") => Mode::Http,
        Some((_, v)) if v.eq_ignore_ascii_case("tcp") => Mode::Tcp,
        other => {
            if let Some((name, v)) = other {
                invalid(name, v);
            }
            if vhosts.is_empty() {
                Mode::Tcp
            } else {
                Mode::Http
            }
        }
    };
    let balance = match label(labels, &format!("{n}_BALANCE")) {
        None => Balance::RoundRobin,
        Some((_, v)) if v.eq_ignore_ascii_case("roundrobin") => Balance::RoundRobin,
        Some((_, v)) if v.eq_ignore_ascii_case("leastconn") => Balance::LeastConn,
        Some((name, v)) => {
            invalid(name, v);
            Balance::RoundRobin
        }
    };
    let listen_port = match label(labels, &format!("{n}_PORT")) {
        None => service_port,
        Some((name, v)) => v.parse::<u16>().unwrap_or_else(|_| {
            invalid(name, v);
            service_port
        }),
    };
    let path = label(labels, &format!("{n}_PATH"))
        .map(|(_, v)| v.to_owned())
        .filter(|p| !p.is_empty() && p != "/");
    let groups = label(labels, &format!("{n}_GROUP"))
        .or_else(|| label(labels, "GROUP"))
        .map(|(_, v)| list(v, false))
        .unwrap_or_default();
    PortSpec {
        mode,
        balance,
        listen_port,
        vhosts: if mode == Mode::Http {
            vhosts
        } else {
            Vec::new()
        },
        path,
        groups,
    }
}

/// Whether a port with `groups` is served by a proxy configured with `wanted`.
pub(crate) fn serves(wanted: &[String], groups: &[String]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| w == "*")
        || groups.iter().any(|g| wanted.iter().any(|w| w == g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(labels: &[(&str, &str)]) -> AppEndpoints {
        AppEndpoints {
            app_id: "/web".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ports: Vec::new(),
        }
    }

    #[test]
    fn defaults_follow_the_vhost() {
        let mut errors = Vec::new();
        let plain = port_spec(&app(&[]), 0, 10000, &mut errors);
        assert_eq!((plain.mode, plain.listen_port), (Mode::Tcp, 10000));
        let a = app(&[("HAPROXY_0_VHOST", "A.example.com, b.example.com")]);
        let web = port_spec(&a, 0, 0, &mut errors);
        assert_eq!(web.mode, Mode::Http);
        assert_eq!(web.vhosts, ["a.example.com", "b.example.com"]);
        assert!(errors.is_empty());
    }

    #[test]
    fn slipway_labels_win_and_bad_values_are_reported() {
        let mut errors = Vec::new();
        let a = app(&[
            ("HAPROXY_1_MODE", "tcp"),
            ("SLIPWAY_1_MODE", "http"),
            ("HAPROXY_1_BALANCE", "source"),
            ("HAPROXY_1_PORT", "12000"),
            ("HAPROXY_GROUP", "external, internal"),
            ("SLIPWAY_1_GROUP", "edge"),
        ]);
        let spec = port_spec(&a, 1, 10001, &mut errors);
        assert_eq!(spec.mode, Mode::Http);
        assert_eq!(spec.balance, Balance::RoundRobin);
        assert_eq!(spec.listen_port, 12000);
        assert_eq!(spec.groups, ["edge"]);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "app /web: invalid label HAPROXY_1_BALANCE=source"
        );
        let zero = port_spec(&a, 0, 10000, &mut errors);
        assert_eq!(zero.groups, ["external", "internal"]);
    }

    #[test]
    fn group_filter() {
        let wanted = vec!["external".to_owned()];
        assert!(serves(&[], &[]));
        assert!(serves(&wanted, &["internal".into(), "external".into()]));
        assert!(!serves(&wanted, &["internal".into()]));
        assert!(!serves(&wanted, &[]));
        assert!(serves(&["*".into()], &[]));
    }
}
