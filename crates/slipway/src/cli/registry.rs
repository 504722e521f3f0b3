//! Release versions of pinned images: which tags of a registry name a digest, so that
//! `apps versions` can show `1.4.0` next to `repo@sha256:…` (deploy steps pin tags to
//! digests, so the definition itself only has the digest).
//!
//! Best effort over the registry's HTTP API v2 (`/v2/<repo>/tags/list`, then a `HEAD` of
//! each tag's manifest for its `Docker-Content-Digest`), with the pipelines' registry client:
//! HTTPS trusting the system's roots plus `SLIPWAY_REGISTRY_CA` (a PEM bundle), plain HTTP
//! on loopback, and the credentials of the Docker CLI's `config.json` (HTTP Basic or
//! tokens). A registry that cannot be reached or refuses simply yields no tags.

use pipeline::service::registry::{Access, Registry};
use std::collections::BTreeMap;
use std::time::Duration;

/// At most this many tags are looked at per repository.
const MAX_TAGS: usize = 200;

/// `(registry, repository, digest)` of an image pinned by digest with an explicit registry
/// host (`host:port/repo@sha256:…` or `host.name/repo@…`); `None` otherwise.
pub(crate) fn pinned(image: &str) -> Option<(&str, &str, &str)> {
    let (name, digest) = image.split_once('@')?;
    let (registry, repo) = name.split_once('/')?;
    let is_host = registry.contains(':') || registry.contains('.') || registry == "localhost";
    (is_host && !repo.is_empty() && digest.starts_with("sha256:"))
        .then_some((registry, repo, digest))
}

/// How this CLI reaches `registry`: `SLIPWAY_REGISTRY_CA`, and the Docker CLI's
/// credentials for it (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
fn access(registry: &str) -> Access {
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    Access {
        ca_file: std::env::var_os("SLIPWAY_REGISTRY_CA").map(Into::into),
        auth: config
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|json| docker::credentials_for(&format!("{registry}/x"), &json)),
        timeout: Some(Duration::from_secs(3)),
    }
}

/// Tags by digest of the repositories of `images` (each repository asked once).
pub(crate) async fn tags_by_digest<'a>(
    images: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut asked = std::collections::BTreeSet::new();
    let mut registries: BTreeMap<String, Option<Registry>> = BTreeMap::new();
    for image in images {
        let Some((host, repo, _)) = pinned(image) else {
            continue;
        };
        if !asked.insert((host.to_string(), repo.to_string())) {
            continue;
        }
        if !registries.contains_key(host) {
            let connected = Registry::connect(host, &access(host)).await.ok();
            registries.insert(host.to_string(), connected);
        }
        let Some(Some(registry)) = registries.get(host) else {
            continue;
        };
        let Ok(tags) = registry.tags(repo, MAX_TAGS).await else {
            continue;
        };
        for tag in tags {
            if let Ok(digest) = registry.manifest_digest(repo, &tag).await {
                out.entry(format!("{host}/{repo}@{digest}"))
                    .or_default()
                    .push(tag);
            }
        }
    }
    // Release versions first (they start with a digit), then the rest, each sorted.
    for tags in out.values_mut() {
        tags.sort_by_key(|t| (!t.starts_with(|c: char| c.is_ascii_digit()), t.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pinned_images_with_a_registry_host() {
        assert_eq!(
            pinned("127.0.0.1:5000/orders@sha256:ab"),
            Some(("127.0.0.1:5000", "orders", "sha256:ab"))
        );
        assert_eq!(
            pinned("registry.example.com/team/orders@sha256:ab"),
            Some(("registry.example.com", "team/orders", "sha256:ab"))
        );
        assert_eq!(pinned("127.0.0.1:5000/orders:1.0.0"), None);
        assert_eq!(pinned("library/orders@sha256:ab"), None);
        assert_eq!(pinned("sleep 1000"), None);
    }
}
