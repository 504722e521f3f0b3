//! Named targets: the seed's datacenters (AA, BB) as places apps run. An app whose id
//! starts with a target's name (`/BB/prod/orders`) runs there:
//!
//! - `NAME=local`: this server's own engine (the default for every app);
//! - `NAME=swarm` or `NAME=swarm:unix:///path.sock` / `swarm:tcp://host:2375`: a Docker
//!   Swarm, through its manager's Docker API;
//! - `NAME=marathon:http://host:port` (optionally `?secret=SECRET`): another Slipway or a
//!   real Marathon, through its v2 API, with credentials (`user:password` for HTTP basic,
//!   anything else as a bearer token) from this server's secret store.

use std::collections::BTreeMap;

/// Where a target's apps run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// This server's engine.
    Local,
    /// A Docker Swarm; `None`: the local daemon (which must be a manager).
    Swarm(Option<String>),
    /// A Marathon v2 API at `url`, with credentials from the named secret.
    Marathon {
        /// Base URL, without a trailing slash.
        url: String,
        /// Secret with `user:password` or a token.
        secret: Option<String>,
    },
}

/// A named target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its name: the first segment of its apps' ids.
    pub(crate) name: String,
    /// What runs its apps.
    pub(crate) kind: TargetKind,
}

impl Target {
    /// How it is shown: `swarm (local daemon)`, `marathon http://…`, `local`.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Local => "local".into(),
            TargetKind::Swarm(None) => "swarm (local daemon)".into(),
            TargetKind::Swarm(Some(h)) => format!("swarm {h}"),
            TargetKind::Marathon { url, .. } => format!("marathon {url}"),
        }
    }
}

/// Parses `NAME=SPEC` (the `--target` flag).
pub(crate) fn parse_target(s: &str) -> Result<Target, String> {
    let (name, spec) = s.split_once('=').ok_or_else(|| {
        format!("'{s}': expected NAME=local, NAME=swarm[:DOCKER_HOST] or NAME=marathon:URL")
    })?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "'{name}': a target name is letters, digits, '-' and '_' (the first segment of its apps' ids)"
        ));
    }
    let spec = spec.trim();
    let kind = if spec == "local" {
        TargetKind::Local
    } else if spec == "swarm" {
        TargetKind::Swarm(None)
    } else if let Some(host) = spec.strip_prefix("swarm:") {
        if !(host.starts_with("unix://") || host.starts_with("tcp://") || host.starts_with('/')) {
            return Err(format!(
                "'{spec}': a Swarm target is swarm, swarm:unix:///path.sock or swarm:tcp://host:port"
            ));
        }
        TargetKind::Swarm(Some(host.to_string()))
    } else if let Some(url) = spec.strip_prefix("marathon:") {
        let (url, query) = url.split_once('?').unwrap_or((url, ""));
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(format!(
                "'{spec}': a Marathon target is marathon:http://host:port[?secret=NAME]"
            ));
        }
        let mut secret = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("secret", v)) if !v.is_empty() => secret = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "'{spec}': unknown option '{pair}' (only secret=NAME)"
                    ));
                }
            }
        }
        TargetKind::Marathon {
            url: url.trim_end_matches('/').to_string(),
            secret,
        }
    } else {
        return Err(format!(
            "'{spec}': unknown target kind (local, swarm[:DOCKER_HOST], marathon:URL)"
        ));
    };
    Ok(Target {
        name: name.to_string(),
        kind,
    })
}

/// The set of targets, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Targets(BTreeMap<String, Target>);

impl Targets {
    /// From the `--target` flags; a name given twice is an error.
    pub(crate) fn new(list: Vec<Target>) -> Result<Targets, String> {
        let mut map = BTreeMap::new();
        for t in list {
            if map.contains_key(&t.name) {
                return Err(format!("target {} is given twice", t.name));
            }
            map.insert(t.name.clone(), t);
        }
        Ok(Targets(map))
    }

    /// Every target.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Target> {
        self.0.values()
    }

    /// The target an app id belongs to: the one named by its first segment, if any.
    pub(crate) fn of(&self, app_id: &str) -> Option<&Target> {
        let first = app_id.trim_start_matches('/').split('/').next()?;
        self.0.get(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn specs() {
        assert_eq!(parse_target("AA=local").unwrap().kind, TargetKind::Local);
        assert_eq!(
            parse_target("BB=swarm").unwrap().kind,
            TargetKind::Swarm(None)
        );
        assert_eq!(
            parse_target("BB=swarm:unix:///run/d2.sock").unwrap().kind,
            TargetKind::Swarm(Some("unix:///run/d2.sock".into()))
        );
        assert_eq!(
            parse_target("CC=marathon:http://10.0.0.9:8080/?secret=cc-creds")
                .unwrap()
                .kind,
            TargetKind::Marathon {
                url: "http://10.0.0.9:8080".into(),
                secret: Some("cc-creds".into())
            }
        );
        for bad in [
            "AA",
            "=local",
            "A/A=local",
            "BB=swarm:host:2375",
            "CC=marathon:ftp://x",
            "CC=marathon:http://h:1?user=x",
            "DD=kubernetes",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn apps_belong_to_the_target_their_first_segment_names() {
        let t = Targets::new(vec![
            parse_target("AA=local").unwrap(),
            parse_target("BB=swarm").unwrap(),
        ])
        .unwrap();
        assert_eq!(t.of("/BB/prod/orders").unwrap().name, "BB");
        assert_eq!(t.of("/AA/prod/orders").unwrap().name, "AA");
        assert!(t.of("/prod/orders").is_none());
        assert!(t.of("/BBB/x").is_none());
        assert!(
            Targets::new(vec![
                parse_target("AA=local").unwrap(),
                parse_target("AA=swarm").unwrap()
            ])
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = parse_target(&s);
        }
    }
}
