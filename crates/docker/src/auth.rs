//! Registry credentials: the registry host of an image reference and the matching entry of a
//! Docker `config.json` document.

use crate::RegistryAuth;
use serde_json::Value;

/// Docker Hub's canonical registry name.
const DOCKER_HUB: &str = "docker.io";

/// Registry host of an image reference: `127.0.0.1:5000/app:tag` → `127.0.0.1:5000`,
/// `app:tag` and `library/app` → `docker.io` (Docker's rule: the first path component is a
/// host when it contains `.` or `:`, is `localhost`, or has upper-case letters).
pub fn registry_of(image: &str) -> String {
    let image = image.trim();
    match image.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            normalize_host(first)
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// Canonical form of a registry host or `auths` key: no scheme, no path, Docker Hub aliases
/// folded into `docker.io`.
fn normalize_host(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        h => h.to_ascii_lowercase(),
    }
}

/// Credentials for `image` from a Docker `config.json` document
/// (`{"auths": {"host[:port]": {"auth": base64("user:pass")}}}` or with `username` and
/// `password`). Entries without inline credentials (credential helpers) are skipped.
pub fn credentials_for(image: &str, config_json: &str) -> Option<RegistryAuth> {
    let doc: Value = serde_json::from_str(config_json).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let registry = registry_of(image);
    auths
        .iter()
        .filter(|(key, _)| normalize_host(key) == registry)
        .find_map(|(key, entry)| {
            let (username, password) = inline_credentials(entry)?;
            Some(RegistryAuth {
                username,
                password,
                server_address: key.clone(),
            })
        })
}

/// (user, password) from an `auths` entry.
fn inline_credentials(entry: &Value) -> Option<(String, String)> {
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(encoded) = text("auth") {
        let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
        let (user, pass) = decoded.split_once(':')?;
        return Some((user.to_string(), pass.to_string()));
    }
    Some((
        text("username")?.to_string(),
        text("password").unwrap_or_default().to_string(),
    ))
}

/// Standard (or URL-safe) base64 with optional padding; `None` on invalid input.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim().trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_of("127.0.0.1:5000/app:tag"), "127.0.0.1:5000");
        assert_eq!(registry_of("app:tag"), "docker.io");
        assert_eq!(registry_of("library/nginx"), "docker.io");
        assert_eq!(registry_of("nginx@sha256:abcd"), "docker.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("quay.io/org/app:1"), "quay.io");
        assert_eq!(registry_of("index.docker.io/library/app"), "docker.io");
        assert_eq!(registry_of("registry:5000/app"), "registry:5000");
    }

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(
            base64_decode("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert!(base64_decode("a b").is_none());
    }

    #[test]
    fn credentials_from_auth_and_username_forms() {
        let config = r#"{"auths": {
            "127.0.0.1:5000": {"auth": "dXNlcjpwOnc="},
            "https://index.docker.io/v1/": {"username": "hub", "password": "secret"},
            "quay.io": {},
            "ghcr.io": {"auth": "!!!"}
        }}"#;
        let local = credentials_for("127.0.0.1:5000/app:1", config).expect("local registry");
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("user", "p:w")
        );
        assert_eq!(local.server_address, "127.0.0.1:5000");
        let hub = credentials_for("nginx:1.25", config).expect("docker hub");
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        assert_eq!(hub.server_address, "https://index.docker.io/v1/");
        assert!(credentials_for("quay.io/org/app", config).is_none());
        assert!(credentials_for("ghcr.io/org/app", config).is_none());
        assert!(credentials_for("other.example:5000/app", config).is_none());
        assert!(credentials_for("app", "not json").is_none());
        let short = r#"{"auths": {"docker.io": {"auth": "YTpi"}}}"#;
        let hub = credentials_for("library/app", short).expect("docker.io key");
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("a", "b"));
        assert!(
            !format!("{hub:?}").contains("\"b\""),
            "password is redacted"
        );
    }
}
