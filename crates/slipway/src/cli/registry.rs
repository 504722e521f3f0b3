//! Release versions of pinned images: which tags of a registry name a digest, so that
//! `apps versions` can show `1.4.0` next to `repo@sha256:…` (deploy steps pin tags to
//! digests, so the definition itself only has the digest).
//!
//! Best effort over the registry's HTTP API v2 (`/v2/<repo>/tags/list`, then a `HEAD` of
//! each tag's manifest for its `Docker-Content-Digest`): a registry that cannot be reached,
//! asks for credentials or speaks TLS simply yields no tags.

use std::collections::BTreeMap;
use std::time::Duration;

/// The manifest types asked for, so the registry answers with the stored manifest's digest.
const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
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

/// Tags by digest of the repositories of `images` (each repository asked once).
pub(crate) async fn tags_by_digest<'a>(
    images: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return out;
    };
    let mut asked = std::collections::BTreeSet::new();
    for image in images {
        let Some((registry, repo, _)) = pinned(image) else {
            continue;
        };
        if !asked.insert((registry.to_string(), repo.to_string())) {
            continue;
        }
        let base = format!("http://{registry}/v2/{repo}");
        let Ok(resp) = http.get(format!("{base}/tags/list")).send().await else {
            continue;
        };
        let Ok(list) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        let tags: Vec<String> = list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .take(MAX_TAGS)
            .collect();
        for tag in tags {
            let Ok(resp) = http
                .head(format!("{base}/manifests/{tag}"))
                .header(reqwest::header::ACCEPT, ACCEPT)
                .send()
                .await
            else {
                continue;
            };
            if let Some(digest) = resp
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|h| h.to_str().ok())
            {
                out.entry(format!("{registry}/{repo}@{digest}"))
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
