//! Image references and registry credentials: [`ImageRef`] (the one parser of
//! `[host[:port]/]repo[:tag][@digest]` that credentials, builds and pipelines share), and
//! the matching entry of a Docker `config.json` document.

use crate::RegistryAuth;
use serde_json::Value;

/// Docker Hub's canonical registry name.
const DOCKER_HUB: &str = "docker.io";

/// An image reference, `[host[:port]/]repo[:tag][@digest]`, split as Docker splits it: the
/// first path component is a registry host when it contains `.` or `:`, is `localhost`,
/// or has upper-case letters; the tag follows the last `:` after the last `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host as written (`127.0.0.1:5000`), when the reference names one.
    pub host: Option<String>,
    /// The repository path in the registry (`app`, `org/app`).
    pub repo: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `image`; an empty reference or repository is an error.
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        let image = image.trim();
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (image, None),
        };
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
            None => (name, None),
        };
        let (host, repo) = match path.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (Some(first.to_string()), rest.to_string())
            }
            _ => (None, path.to_string()),
        };
        if repo.is_empty() || tag.as_deref() == Some("") || digest.as_deref() == Some("") {
            return Err(format!("`{image}` is not an image reference"));
        }
        Ok(ImageRef {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// The registry's canonical name (`docker.io` when the reference names none).
    pub fn registry(&self) -> String {
        self.host
            .as_deref()
            .map_or_else(|| DOCKER_HUB.to_string(), normalize_host)
    }

    /// `host/repo` as written (no tag, no digest).
    pub fn name(&self) -> String {
        match &self.host {
            Some(h) => format!("{h}/{}", self.repo),
            None => self.repo.clone(),
        }
    }

    /// What the registry API is asked for: the digest, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository pinned to `digest` (`host/repo@sha256:…`).
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Registry host of an image reference: `127.0.0.1:5000/app:tag` → `127.0.0.1:5000`,
/// `app:tag` and `library/app` → `docker.io` (see [`ImageRef`]).
pub fn registry_of(image: &str) -> String {
    ImageRef::parse(image).map_or_else(|_| DOCKER_HUB.to_string(), |r| r.registry())
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
    fn image_references_split_as_docker_splits_them() {
        #[track_caller]
        fn check(image: &str, host: Option<&str>, repo: &str, reference: &str) {
            let r = ImageRef::parse(image).expect(image);
            assert_eq!(
                (r.host.as_deref(), r.repo.as_str(), r.reference()),
                (host, repo, reference),
                "{image}"
            );
            assert_eq!(r.to_string(), image.trim(), "round trip");
        }
        check("127.0.0.1:5000/app:v1", Some("127.0.0.1:5000"), "app", "v1");
        check(
            "127.0.0.1:5000/app",
            Some("127.0.0.1:5000"),
            "app",
            "latest",
        );
        check(
            "localhost:5000/org/app@sha256:ab",
            Some("localhost:5000"),
            "org/app",
            "sha256:ab",
        );
        check("localhost/app:1", Some("localhost"), "app", "1");
        check("Registry/app", Some("Registry"), "app", "latest");
        check("library/nginx:1.25", None, "library/nginx", "1.25");
        check("nginx", None, "nginx", "latest");
        check("quay.io/a/b:c@sha256:d", Some("quay.io"), "a/b", "sha256:d");
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("host:5000/app:").is_err());
        let r = ImageRef::parse("127.0.0.1:5000/app:v1").unwrap();
        assert_eq!(r.pinned("sha256:1"), "127.0.0.1:5000/app@sha256:1");
        assert_eq!(r.registry(), "127.0.0.1:5000");
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
