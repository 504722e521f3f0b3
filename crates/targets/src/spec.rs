//! Target specs, one per datacenter: `NAME=local`, `NAME=swarm[:DOCKER_HOST]` and
//! `NAME=marathon:URL[?secret=SECRET]`, as given to `--target` or written in a targets file.
//!
//! Parsing never echoes more of the input than the part it rejects, and never a URL that
//! carries credentials: those belong in the secret store, named by `?secret=`.

use std::fmt;
use std::str::FromStr;

/// The target every app belongs to unless the first segment of its id names another.
pub const DEFAULT_TARGET: &str = "local";

/// The longest target name (a name is also an app id segment and a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// The longest secret name (the secret store's own rule).
pub const MAX_SECRET_LEN: usize = 64;

/// Where a target's apps run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// This server's own engine (processes and containers on this machine).
    Local,
    /// A Docker Swarm, through a manager's Docker API.
    Swarm {
        /// The manager's address (`unix:///path.sock`, `tcp://host:port`,
        /// `http://host:port`); `None` is the local daemon.
        host: Option<String>,
    },
    /// Another Slipway or a real Marathon, through its v2 REST API.
    Marathon {
        /// Base URL without a trailing slash (`http://10.0.0.9:8080`, or with a path
        /// prefix such as DC/OS's `/service/marathon`).
        url: String,
        /// Name of the secret holding its credentials: `user:password` (HTTP basic) or a
        /// token (see [`crate::Credentials::from_secret`]). `None`: no credentials.
        secret: Option<String>,
    },
}

/// A named target: a datacenter and what runs its apps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// Its name, case-sensitive: the first segment of its apps' ids (`AA` for
    /// `/AA/prod/orders`).
    pub name: String,
    /// What runs its apps.
    pub kind: TargetKind,
}

/// Why a target spec was refused. Every variant names the bad part; [`SpecError::offset`]
/// says where it starts in the parsed text (for `line:column` in a file).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No `=` between the name and the spec.
    #[error(
        "a target is NAME=local, NAME=swarm[:DOCKER_HOST] or NAME=marathon:URL[?secret=SECRET] (no '=' found)"
    )]
    NoEquals,
    /// The name is not a valid target name.
    #[error("target name '{name}': {reason}")]
    BadName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
        /// Byte offset of the name.
        at: usize,
    },
    /// The kind before the first `:` is not one of `local`, `swarm`, `marathon`.
    #[error(
        "target {name}: unknown kind '{kind}' (local, swarm[:DOCKER_HOST] or marathon:URL){hint}"
    )]
    UnknownKind {
        /// The target's name.
        name: String,
        /// The rejected kind.
        kind: String,
        /// A suggestion, empty or starting with `; `.
        hint: &'static str,
        /// Byte offset of the kind.
        at: usize,
    },
    /// `local` followed by something.
    #[error("target {name}: 'local' takes no address")]
    LocalWithAddress {
        /// The target's name.
        name: String,
        /// Byte offset of the `:` after `local`.
        at: usize,
    },
    /// The Docker host of a Swarm target is not an address bollard can reach.
    #[error(
        "target {name}: '{host}' is not a Docker host (swarm, swarm:unix:///path.sock, swarm:tcp://host:port or swarm:http://host:port)"
    )]
    BadDockerHost {
        /// The target's name.
        name: String,
        /// The rejected host.
        host: String,
        /// Byte offset of the host.
        at: usize,
    },
    /// The URL of a Marathon target is not usable.
    #[error("target {name}: {reason} (marathon:http://host:port[/path][?secret=SECRET])")]
    BadUrl {
        /// The target's name.
        name: String,
        /// What is wrong, naming the part (never a URL with credentials in it).
        reason: String,
        /// Byte offset of the URL.
        at: usize,
    },
    /// A `?` option other than `secret=`.
    #[error("target {name}: unknown option '{option}' (only secret=SECRET)")]
    BadOption {
        /// The target's name.
        name: String,
        /// The option's key.
        option: String,
        /// Byte offset of the option.
        at: usize,
    },
    /// The secret's name breaks the secret store's rule.
    #[error(
        "target {name}: '{secret}' is not a secret name (1-64 letters, digits, '.', '_', '-', '@')"
    )]
    BadSecret {
        /// The target's name.
        name: String,
        /// The rejected secret name.
        secret: String,
        /// Byte offset of the secret name.
        at: usize,
    },
}

impl SpecError {
    /// Byte offset in the parsed text where the bad part starts.
    pub fn offset(&self) -> usize {
        match self {
            SpecError::NoEquals => 0,
            SpecError::BadName { at, .. }
            | SpecError::UnknownKind { at, .. }
            | SpecError::LocalWithAddress { at, .. }
            | SpecError::BadDockerHost { at, .. }
            | SpecError::BadUrl { at, .. }
            | SpecError::BadOption { at, .. }
            | SpecError::BadSecret { at, .. } => *at,
        }
    }
}

impl TargetSpec {
    /// Parses `NAME=SPEC` (the `--target` flag); spaces around the name and the spec are
    /// ignored.
    pub fn parse(text: &str) -> Result<TargetSpec, SpecError> {
        let (name_part, spec_part) = text.split_once('=').ok_or(SpecError::NoEquals)?;
        let name_at = name_part.len() - name_part.trim_start().len();
        let name = name_part.trim();
        check_name(name).map_err(|reason| SpecError::BadName {
            name: name.to_string(),
            reason,
            at: name_at,
        })?;
        let spec_start = name_part.len() + 1;
        let spec_at = spec_start + (spec_part.len() - spec_part.trim_start().len());
        let kind = parse_kind(name, spec_part.trim(), spec_at)?;
        Ok(TargetSpec {
            name: name.to_string(),
            kind,
        })
    }

    /// Whether apps of this target are driven over the network (Swarm through a remote
    /// Docker host, or a Marathon API).
    pub fn is_remote(&self) -> bool {
        match &self.kind {
            TargetKind::Local | TargetKind::Swarm { host: None } => false,
            TargetKind::Swarm { host: Some(_) } | TargetKind::Marathon { .. } => true,
        }
    }

    /// The kind as a word: `local`, `swarm`, `marathon`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Local => "local",
            TargetKind::Swarm { .. } => "swarm",
            TargetKind::Marathon { .. } => "marathon",
        }
    }

    /// How it is shown to people: `local`, `swarm (local daemon)`, `swarm tcp://…`,
    /// `marathon http://… (secret cc-creds)`.
    pub fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Local => "local".into(),
            TargetKind::Swarm { host: None } => "swarm (local daemon)".into(),
            TargetKind::Swarm { host: Some(h) } => format!("swarm {h}"),
            TargetKind::Marathon { url, secret: None } => format!("marathon {url}"),
            TargetKind::Marathon {
                url,
                secret: Some(s),
            } => format!("marathon {url} (secret {s})"),
        }
    }
}

impl FromStr for TargetSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<TargetSpec, SpecError> {
        TargetSpec::parse(s)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKind::Local => f.write_str("local"),
            TargetKind::Swarm { host: None } => f.write_str("swarm"),
            TargetKind::Swarm { host: Some(h) } => write!(f, "swarm:{h}"),
            TargetKind::Marathon { url, secret } => {
                write!(f, "marathon:{url}")?;
                match secret {
                    Some(s) => write!(f, "?secret={s}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `NAME=SPEC`, which [`TargetSpec::parse`] reads back to an equal value.
impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.kind)
    }
}

/// Checks a target name: a Marathon id segment without dots (letters, digits, inner `-`),
/// so that an app id can start with it.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("a target needs a name");
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err("a target name is at most 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    {
        return Err(
            "a target name is letters, digits and '-' (it is the first segment of its apps' ids)",
        );
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return Err("a target name starts and ends with a letter or digit, as id segments do");
    }
    if name == "default" {
        return Err("'default' is reserved (a targets file's `default = NAME` line)");
    }
    Ok(())
}

/// Parses the part after `=`; `at` is its byte offset in the whole text.
fn parse_kind(name: &str, spec: &str, at: usize) -> Result<TargetKind, SpecError> {
    let (word, rest) = match spec.split_once(':') {
        Some((w, r)) => (w, Some(r)),
        None => (spec, None),
    };
    let rest_at = at + word.len() + 1;
    match (word, rest) {
        ("local", None) => Ok(TargetKind::Local),
        ("local", Some(_)) => Err(SpecError::LocalWithAddress {
            name: name.to_string(),
            at: at + word.len(),
        }),
        ("swarm", None) => Ok(TargetKind::Swarm { host: None }),
        ("swarm", Some(host)) => parse_docker_host(name, host, rest_at),
        ("marathon", Some(url)) => parse_marathon(name, url, rest_at),
        ("marathon", None) => Err(SpecError::BadUrl {
            name: name.to_string(),
            reason: "a Marathon target needs its URL".into(),
            at: at + word.len(),
        }),
        _ => Err(SpecError::UnknownKind {
            name: name.to_string(),
            kind: word.chars().take(40).collect(),
            hint: match word {
                "http" | "https" => "; a Marathon API is marathon:http://host:port",
                "" => "; the spec is empty",
                _ => "",
            },
            at,
        }),
    }
}

/// `swarm:HOST`: a `unix://` socket path, a `tcp://` or `http://` address, or an absolute
/// socket path (kept as `unix://PATH`).
fn parse_docker_host(name: &str, host: &str, at: usize) -> Result<TargetKind, SpecError> {
    let bad = || SpecError::BadDockerHost {
        name: name.to_string(),
        host: host.chars().take(80).collect(),
        at,
    };
    let host = if host.starts_with('/') {
        format!("unix://{host}")
    } else {
        host.to_string()
    };
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 || path.contains(char::is_whitespace) {
            return Err(bad());
        }
    } else if let Some(addr) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let addr = addr.trim_end_matches('/');
        if addr.is_empty()
            || addr.contains(['/', '@', '?', '#'])
            || addr.contains(char::is_whitespace)
        {
            return Err(bad());
        }
        if let Some((_, port)) = addr.rsplit_once(':')
            && !addr.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad());
        }
    } else {
        return Err(bad());
    }
    Ok(TargetKind::Swarm { host: Some(host) })
}

/// `marathon:URL[?secret=SECRET]`.
fn parse_marathon(name: &str, text: &str, at: usize) -> Result<TargetKind, SpecError> {
    let bad_url = |reason: String, at: usize| SpecError::BadUrl {
        name: name.to_string(),
        reason,
        at,
    };
    let (url, query) = match text.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (text, None),
    };
    let Some(after_scheme) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(bad_url(
            "a Marathon URL starts with http:// or https://".into(),
            at,
        ));
    };
    let authority = after_scheme.split(['/', '#']).next().unwrap_or_default();
    // Checked before anything echoes the URL: it may carry a password.
    if authority.contains('@') {
        return Err(bad_url(
            "the URL holds credentials: store `user:password` or a token as a secret and name it with ?secret=SECRET".into(),
            at,
        ));
    }
    if url.contains('#') {
        return Err(bad_url("a Marathon URL has no #fragment".into(), at));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| bad_url(format!("'{url}': {e}"), at))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad_url(format!("'{url}' has no host"), at));
    }
    let mut secret = None;
    if let Some(query) = query {
        let mut opt_at = at + url.len() + 1;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "secret" if secret.is_none() => {
                    if !valid_secret_name(value) {
                        return Err(SpecError::BadSecret {
                            name: name.to_string(),
                            secret: value.chars().take(80).collect(),
                            at: opt_at + key.len() + 1,
                        });
                    }
                    secret = Some(value.to_string());
                }
                "secret" => {
                    return Err(SpecError::BadOption {
                        name: name.to_string(),
                        option: "secret (given twice)".into(),
                        at: opt_at,
                    });
                }
                _ => {
                    return Err(SpecError::BadOption {
                        name: name.to_string(),
                        option: key.chars().take(40).collect(),
                        at: opt_at,
                    });
                }
            }
            opt_at += pair.len() + 1;
        }
    }
    Ok(TargetKind::Marathon {
        url: url.trim_end_matches('/').to_string(),
        secret,
    })
}

/// The secret store's rule for names: 1-64 letters, digits, `.`, `_`, `-`, `@`.
pub(crate) fn valid_secret_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SECRET_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses `text` and compares the result (or the error's message and offset).
    #[track_caller]
    fn check(text: &str, want: Result<TargetKind, (&str, usize)>) {
        match (TargetSpec::parse(text), want) {
            (Ok(spec), Ok(kind)) => assert_eq!(spec.kind, kind, "{text}"),
            (Err(e), Err((msg, at))) => {
                assert!(
                    e.to_string().contains(msg),
                    "{text}: '{e}' does not contain '{msg}'"
                );
                assert_eq!(e.offset(), at, "{text}: offset of '{e}'");
            }
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn kinds() {
        check("AA=local", Ok(TargetKind::Local));
        check(" AA = local ", Ok(TargetKind::Local));
        check("BB=swarm", Ok(TargetKind::Swarm { host: None }));
        let swarm = |h: &str| {
            Ok(TargetKind::Swarm {
                host: Some(h.into()),
            })
        };
        check("BB=swarm:unix:///run/d2.sock", swarm("unix:///run/d2.sock"));
        check("BB=swarm:/run/d2.sock", swarm("unix:///run/d2.sock"));
        check("BB=swarm:tcp://10.0.0.5:2375", swarm("tcp://10.0.0.5:2375"));
        check("BB=swarm:http://[::1]:2375", swarm("http://[::1]:2375"));
        check(
            "CC=marathon:http://10.0.0.9:8080/?secret=cc-creds",
            Ok(TargetKind::Marathon {
                url: "http://10.0.0.9:8080".into(),
                secret: Some("cc-creds".into()),
            }),
        );
        check(
            "dcos=marathon:https://leader.mesos/service/marathon",
            Ok(TargetKind::Marathon {
                url: "https://leader.mesos/service/marathon".into(),
                secret: None,
            }),
        );
    }

    #[test]
    fn errors_name_the_bad_part_and_where_it_starts() {
        check("AA", Err(("no '=' found", 0)));
        check("=local", Err(("a target needs a name", 0)));
        check(
            "  A/A=local",
            Err(("target name 'A/A': a target name is letters", 2)),
        );
        check("B_B=local", Err(("target name 'B_B'", 0)));
        check("-BB=local", Err(("starts and ends", 0)));
        check("default=local", Err(("reserved", 0)));
        check("AA=local:x", Err(("'local' takes no address", 8)));
        check("DD=kubernetes", Err(("unknown kind 'kubernetes'", 3)));
        check("DD=http://h:1", Err(("marathon:http://host:port", 3)));
        check("DD=", Err(("the spec is empty", 3)));
        check(
            "BB=swarm:host:2375",
            Err(("'host:2375' is not a Docker host", 9)),
        );
        check("BB=swarm:tcp://h:99999", Err(("is not a Docker host", 9)));
        check("CC=marathon", Err(("needs its URL", 11)));
        check("CC=marathon:ftp://x", Err(("starts with http://", 12)));
        check("CC=marathon:http://", Err(("empty host", 12)));
        check(
            "CC=marathon:http://h:1?user=x",
            Err(("unknown option 'user'", 23)),
        );
        check(
            "CC=marathon:http://h:1?secret=a&secret=b",
            Err(("secret (given twice)", 32)),
        );
        check(
            "CC=marathon:http://h:1?secret=",
            Err(("'' is not a secret name", 30)),
        );
        check("CC=marathon:http://h:1?secret=a/b", Err(("'a/b'", 30)));
        check("CC=marathon:http://h:1#x", Err(("#fragment", 12)));
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_echoing_them() {
        let e = TargetSpec::parse("CC=marathon:http://ops:hunter22@h:8080").unwrap_err();
        assert!(e.to_string().contains("?secret=SECRET"), "{e}");
        assert!(!e.to_string().contains("hunter22"), "{e}");
    }

    #[test]
    fn describe_and_kind_name() {
        let s = TargetSpec::parse("CC=marathon:http://h:1?secret=cc").unwrap();
        assert_eq!(s.describe(), "marathon http://h:1 (secret cc)");
        assert_eq!(s.kind_name(), "marathon");
        assert!(s.is_remote());
        assert!(!TargetSpec::parse("BB=swarm").unwrap().is_remote());
    }

    fn arb_spec() -> impl Strategy<Value = TargetSpec> {
        let name = "[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?"
            .prop_filter("reserved", |n| n != "default");
        let kind = prop_oneof![
            Just(TargetKind::Local),
            Just(TargetKind::Swarm { host: None }),
            "/[a-z]{1,8}/[a-z]{1,8}\\.sock".prop_map(|p| TargetKind::Swarm {
                host: Some(format!("unix://{p}"))
            }),
            ("[a-z]{1,8}", 1u16..).prop_map(|(h, p)| TargetKind::Swarm {
                host: Some(format!("tcp://{h}:{p}"))
            }),
            (
                "https?",
                "[a-z]{1,8}(\\.[a-z]{1,5})?",
                proptest::option::of(1u16..),
                "(/[a-z]{1,6}){0,2}",
                proptest::option::of("[A-Za-z0-9._@-]{1,64}")
            )
                .prop_map(|(scheme, host, port, path, secret)| TargetKind::Marathon {
                    url: format!(
                        "{scheme}://{host}{}{path}",
                        port.map(|p| format!(":{p}")).unwrap_or_default()
                    ),
                    secret,
                }),
        ];
        (name, kind).prop_map(|(name, kind)| TargetSpec { name, kind })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            if let Err(e) = TargetSpec::parse(&s) {
                prop_assert!(e.offset() <= s.len());
                prop_assert!(s.is_char_boundary(e.offset()));
            }
        }

        #[test]
        fn parsing_never_panics_near_valid_specs(
            name in "[A-Za-z0-9_/ -]{0,6}",
            kind in "(local|swarm|marathon|http)?",
            rest in "(:(unix|tcp|http|https)?(://)?[a-z0-9.:/@?&=#\\[\\]-]{0,30})?",
        ) {
            let s = format!("{name}={kind}{rest}");
            if let Err(e) = TargetSpec::parse(&s) {
                prop_assert!(s.is_char_boundary(e.offset()), "{s}: {e:?}");
            }
        }

        #[test]
        fn display_reads_back(spec in arb_spec()) {
            let text = spec.to_string();
            prop_assert_eq!(TargetSpec::parse(&text), Ok(spec), "{}", text);
        }
    }
}
