//! The registry API as steps use it: manifests by tag or digest, with the credentials of
//! the server's Docker `config.json`.

use super::DockerSetup;

/// Splits `host[:port]/repo@sha256:…` or `host[:port]/repo:tag` into (registry, repo,
/// reference) with [`docker::ImageRef`]; a reference without a registry host is refused
/// (the registry API needs one).
pub(super) fn registry_parts(image: &str) -> Result<(String, String, String), String> {
    let r = docker::ImageRef::parse(image)?;
    let host = r
        .host
        .clone()
        .ok_or_else(|| format!("`{image}` names no registry (host:port/repo)"))?;
    Ok((host, r.repo.clone(), r.reference().to_string()))
}

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

pub(super) fn registry_auth(
    setup: Option<&DockerSetup>,
    image: &str,
) -> Option<docker::RegistryAuth> {
    setup
        .and_then(|s| s.registry_config.as_ref())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|json| docker::credentials_for(image, &json))
}

/// The manifest `image` (`registry/repo:tag` or `@digest`) names, through the registry
/// API: (digest, content type, bytes).
pub(super) async fn manifest(
    setup: Option<&DockerSetup>,
    image: &str,
) -> Result<(String, String, Vec<u8>), ManifestError> {
    let (registry, repo, reference) = registry_parts(image).map_err(ManifestError::Refused)?;
    let mut get = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repo}/manifests/{reference}"))
        .header("Accept", MANIFEST_TYPES);
    if let Some(a) = registry_auth(setup, image) {
        get = get.basic_auth(&a.username, Some(&a.password));
    }
    let got = get
        .send()
        .await
        .map_err(|e| ManifestError::Unreachable(format!("registry {registry}: {e}")))?;
    if !got.status().is_success() {
        return Err(ManifestError::Refused(format!(
            "{image}: the registry answered {}",
            got.status()
        )));
    }
    let header = |name: &str| {
        got.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type")
        .unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
    let digest = header("docker-content-digest")
        .ok_or_else(|| ManifestError::Refused("the registry gave no digest".into()))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| ManifestError::Unreachable(e.to_string()))?
        .to_vec();
    Ok((digest, content_type, bytes))
}

/// Why [`manifest`] failed.
pub(super) enum ManifestError {
    /// No answer from the registry (down, TLS only, unreachable).
    Unreachable(String),
    /// The registry answered, but not with the manifest.
    Refused(String),
}

impl From<ManifestError> for String {
    fn from(e: ManifestError) -> String {
        match e {
            ManifestError::Unreachable(m) | ManifestError::Refused(m) => m,
        }
    }
}
