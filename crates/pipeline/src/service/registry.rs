//! The registry HTTP API v2 as steps (and the CLI) use it: manifests by tag or digest, tags,
//! and the blobs of an image copied or mounted into another repository.
//!
//! Transport: HTTPS through rustls, trusting the system's roots plus an optional PEM bundle
//! (`slipway up --registry-ca FILE`). Plain HTTP is only tried for registries on loopback
//! addresses, and only when the HTTPS attempt fails for another reason than the certificate
//! (Docker, too, treats `127.0.0.0/8` as an insecure registry): a certificate that does not
//! verify is always an error that names the problem.
//!
//! Authentication follows Docker's registry token specification: `GET /v2/` tells how the
//! registry authenticates. `WWW-Authenticate: Basic …` gets the configured user and password
//! on every request; `WWW-Authenticate: Bearer realm=…,service=…` gets a token from the realm
//! (`GET realm?service=…&scope=repository:NAME:ACTIONS`, with the credentials as HTTP Basic
//! when there are any), sent as `Authorization: Bearer …`; a later `401` whose challenge
//! names another scope gets a token for it and one retry.
//!
//! Passwords and tokens appear in no error or log line: errors name the registry, the user,
//! the status and the registry's own error code.

use super::DockerSetup;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The manifest types asked for, so the registry answers with the stored manifest (and its
/// digest) rather than converting it.
pub const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

/// At most this much of a registry's error body is quoted in an error.
const MAX_QUOTED: usize = 300;

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

/// Credentials for `image`'s registry from the server's Docker `config.json`, if any.
pub(super) fn registry_auth(
    setup: Option<&DockerSetup>,
    image: &str,
) -> Option<docker::RegistryAuth> {
    setup
        .and_then(|s| s.registry_config.as_ref())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|json| docker::credentials_for(image, &json))
}

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// A PEM bundle of CA certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The user and password (or token) for this registry.
    pub auth: Option<docker::RegistryAuth>,
    /// Bound on connecting, and on each wait for response data; 30 s when unset.
    pub timeout: Option<Duration>,
}

impl Access {
    /// The server's access to `image`'s registry: its `--registry-ca` and the credentials
    /// its `--registry-config` has for that registry.
    pub(super) fn of(setup: Option<&DockerSetup>, image: &str) -> Access {
        Access {
            ca_file: setup.and_then(|s| s.registry_ca.clone()),
            auth: registry_auth(setup, image),
            timeout: None,
        }
    }
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer from the registry (down, unreachable, timed out, not speaking TLS where
    /// plain HTTP is not used).
    #[error("{0}")]
    Unreachable(String),
    /// The registry answered, but not with what was asked (unknown tag, credentials
    /// refused), or could not be trusted (its certificate does not verify).
    #[error("{0}")]
    Refused(String),
}

/// The name deploy steps know [`RegistryError`] by.
pub(super) use RegistryError as ManifestError;

impl From<RegistryError> for String {
    fn from(e: RegistryError) -> String {
        e.to_string()
    }
}

/// A manifest as stored in the registry.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// `sha256:…`, from `Docker-Content-Digest`.
    pub digest: String,
    /// Its media type (`Content-Type`).
    pub media_type: String,
    /// The exact bytes (the digest is over them).
    pub bytes: Vec<u8>,
}

/// How the registry asked to be authenticated on `GET /v2/`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    /// It did not.
    Open,
    /// HTTP Basic with the configured credentials.
    Basic,
    /// Tokens from `realm` for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A connection to one registry: its scheme (HTTPS or, on loopback, HTTP), how it
/// authenticates, and the tokens fetched so far (by scope).
pub struct Registry {
    http: reqwest::Client,
    host: String,
    base: Url,
    auth: Option<docker::RegistryAuth>,
    scheme: Scheme,
    tokens: Mutex<HashMap<Vec<String>, String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base.as_str())
            .field("user", &self.auth.as_ref().map(|a| a.username.as_str()))
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// `host/repo:tag` or `host/repo@digest`.
fn image_name(host: &str, repo: &str, reference: &str) -> String {
    let sep = if reference.contains(':') { '@' } else { ':' };
    format!("{host}/{repo}{sep}{reference}")
}

/// `repository:NAME:ACTIONS`, a token scope.
fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

impl Registry {
    /// Connects to the registry at `host` (`host[:port]`): builds the HTTPS client with
    /// `access`'s CA bundle, and asks `GET /v2/` how it authenticates.
    pub async fn connect(host: &str, access: &Access) -> Result<Registry, RegistryError> {
        let timeout = access.timeout.unwrap_or(Duration::from_secs(30));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            // Redirects (blob downloads to storage) must not carry the registry's
            // credentials elsewhere: reqwest drops `Authorization` on a cross-host hop.
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(file) = &access.ca_file {
            builder = builder.tls_certs_merge(read_ca(file)?);
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::Refused(format!("registry {host}: {}", chain(&e))))?;
        let https = Url::parse(&format!("https://{host}/"))
            .map_err(|e| RegistryError::Refused(format!("`{host}` is not a registry host: {e}")))?;
        let (base, ping) = match http
            .get(https.join("v2/").unwrap_or_else(|_| https.clone()))
            .send()
            .await
        {
            Ok(resp) => (https, resp),
            Err(e) if is_loopback(host) && certificate_problem(&e).is_none() => {
                let plain = Url::parse(&format!("http://{host}/")).map_err(|e| {
                    RegistryError::Refused(format!("`{host}` is not a registry host: {e}"))
                })?;
                match http
                    .get(plain.join("v2/").unwrap_or_else(|_| plain.clone()))
                    .send()
                    .await
                {
                    Ok(resp) => (plain, resp),
                    Err(_) => return Err(transport_error(host, &e)),
                }
            }
            Err(e) => return Err(transport_error(host, &e)),
        };
        let scheme = match ping.status() {
            StatusCode::UNAUTHORIZED => match challenge(&ping) {
                Some(Challenge::Bearer { realm, service, .. }) => Scheme::Bearer { realm, service },
                _ => Scheme::Basic,
            },
            s if s.is_success() => Scheme::Open,
            s => {
                return Err(RegistryError::Refused(format!(
                    "registry {host}: GET /v2/ answered {s}: is this a registry?"
                )));
            }
        };
        Ok(Registry {
            http,
            host: host.to_string(),
            base,
            auth: access.auth.clone(),
            scheme,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// `host[:port]`, as connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the registry is spoken to over TLS.
    pub fn is_tls(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// The manifest `repo:reference` (a tag or a digest) names.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let what = image_name(&self.host, repo, reference);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(&[scope(repo, "pull")], &what, || {
                self.http
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        let resp = ok_or_refused(&what, resp).await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header("content-type")
            .unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
        let digest = header("docker-content-digest").ok_or_else(|| {
            RegistryError::Refused(format!("{what}: the registry gave no digest"))
        })?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&self.host, &e))?
            .to_vec();
        Ok(Manifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// The digest of the manifest `repo:reference` names (a `HEAD`, no body).
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<String, RegistryError> {
        let what = image_name(&self.host, repo, reference);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(&[scope(repo, "pull")], &what, || {
                self.http
                    .head(url.clone())
                    .header(reqwest::header::ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        let resp = ok_or_refused(&what, resp).await?;
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Refused(format!("{what}: the registry gave no digest")))
    }

    /// The tags of `repo` (the first page the registry gives, up to `limit`).
    pub async fn tags(&self, repo: &str, limit: usize) -> Result<Vec<String>, RegistryError> {
        let what = format!("{}/{repo}", self.host);
        let mut url = self.url(&format!("v2/{repo}/tags/list"))?;
        url.query_pairs_mut().append_pair("n", &limit.to_string());
        let resp = self
            .send(&[scope(repo, "pull")], &what, || self.http.get(url.clone()))
            .await?;
        let resp = ok_or_refused(&what, resp).await?;
        let list: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| RegistryError::Refused(format!("{what}: tags are not JSON: {e}")))?;
        Ok(list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .take(limit)
            .collect())
    }

    /// Stores `manifest` as `repo:reference`; the blobs it names must be in `repo` already
    /// (see [`Registry::copy_image`]). Returns the digest the registry gives it.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<String, RegistryError> {
        let what = image_name(&self.host, repo, reference);
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(&[scope(repo, "pull,push")], &what, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, manifest.media_type.as_str())
                    .body(manifest.bytes.clone())
            })
            .await?;
        let resp = ok_or_refused(&format!("storing {what}"), resp).await?;
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| manifest.digest.clone(), str::to_string))
    }

    /// Makes everything `manifest` (from `from`'s `from_repo`) refers to present in this
    /// registry's `to_repo`: layers and config blobs, and for an index the manifests it
    /// lists (stored by digest). Blobs already there are skipped; within one registry they
    /// are mounted from `from_repo`, otherwise streamed from `from`.
    pub async fn copy_image(
        &self,
        from: &Registry,
        from_repo: &str,
        manifest: &Manifest,
        to_repo: &str,
    ) -> Result<usize, RegistryError> {
        let mut copied = 0;
        let doc = parse_manifest(manifest)?;
        if let Some(children) = doc.get("manifests").and_then(|m| m.as_array()) {
            for child in children {
                let Some(digest) = child.get("digest").and_then(|d| d.as_str()) else {
                    continue;
                };
                let child = from.manifest(from_repo, digest).await?;
                copied += Box::pin(self.copy_image(from, from_repo, &child, to_repo)).await?;
                self.put_manifest(to_repo, digest, &child).await?;
            }
            return Ok(copied);
        }
        let layers = doc.get("layers").and_then(|l| l.as_array());
        let blobs = doc
            .get("config")
            .into_iter()
            .chain(layers.into_iter().flatten())
            // Foreign layers (with `urls`) are not in the registry.
            .filter(|b| b.get("urls").is_none())
            .filter_map(|b| b.get("digest").and_then(|d| d.as_str()));
        for digest in blobs {
            if self.copy_blob(from, from_repo, digest, to_repo).await? {
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// Makes blob `digest` of `from`'s `from_repo` present in `to_repo`; `true` when it was
    /// not there before.
    async fn copy_blob(
        &self,
        from: &Registry,
        from_repo: &str,
        digest: &str,
        to_repo: &str,
    ) -> Result<bool, RegistryError> {
        let what = format!("{}/{to_repo}@{digest}", self.host);
        let push = scope(to_repo, "pull,push");
        let blob = self.url(&format!("v2/{to_repo}/blobs/{digest}"))?;
        let there = self
            .send(std::slice::from_ref(&push), &what, || {
                self.http.head(blob.clone())
            })
            .await?;
        if there.status().is_success() {
            return Ok(false);
        }
        let same_registry = self.base == from.base;
        let mut uploads = self.url(&format!("v2/{to_repo}/blobs/uploads/"))?;
        let mut scopes = vec![push];
        if same_registry {
            uploads
                .query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from_repo);
            scopes.push(scope(from_repo, "pull"));
        }
        let started = self
            .send(&scopes, &what, || self.http.post(uploads.clone()))
            .await?;
        if started.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let started = ok_or_refused(&format!("uploading {what}"), started).await?;
        let mut location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| self.base.join(l).ok())
            .ok_or_else(|| {
                RegistryError::Refused(format!("uploading {what}: the registry gave no upload URL"))
            })?;
        location.query_pairs_mut().append_pair("digest", digest);
        // The source blob, streamed into the upload.
        let source_what = format!("{}/{from_repo}@{digest}", from.host);
        let source_url = from.url(&format!("v2/{from_repo}/blobs/{digest}"))?;
        let source = from
            .send(&[scope(from_repo, "pull")], &source_what, || {
                from.http.get(source_url.clone())
            })
            .await?;
        let source = ok_or_refused(&source_what, source).await?;
        let length = source.content_length();
        let auth = self.authorization(&scopes).await?;
        let mut put = self
            .http
            .put(location)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(source.bytes_stream()));
        if let Some(n) = length {
            put = put.header(CONTENT_LENGTH, n);
        }
        if let Some(a) = auth {
            put = put.header(AUTHORIZATION, a);
        }
        let done = put
            .send()
            .await
            .map_err(|e| transport_error(&self.host, &e))?;
        ok_or_refused(&format!("uploading {what}"), done).await?;
        Ok(true)
    }

    /// `path` under the registry's base URL.
    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Refused(format!("{}/{path}: {e}", self.host)))
    }

    /// Sends the request `build` makes with the authorization `scopes` need; on a `401`
    /// whose bearer challenge names a scope not asked for yet, once more with a token that
    /// has it. A final `401` is an error naming the user (never the password or token).
    async fn send(
        &self,
        scopes: &[String],
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut scopes = scopes.to_vec();
        let mut retried = false;
        loop {
            let mut req = build();
            if let Some(a) = self.authorization(&scopes).await? {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| transport_error(&self.host, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let asked = challenge(&resp);
            if let (false, Some(Challenge::Bearer { scope: wanted, .. })) = (retried, &asked)
                && matches!(self.scheme, Scheme::Bearer { .. })
            {
                retried = true;
                for s in wanted.iter().flat_map(|s| s.split(' ')) {
                    if !s.is_empty() && !scopes.iter().any(|have| have == s) {
                        scopes.push(s.to_string());
                    }
                }
                // A token that was refused (expired, or too narrow) is not used again.
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&scopes);
                continue;
            }
            let detail = registry_error_text(resp).await;
            return Err(RegistryError::Refused(match (&self.auth, &self.scheme) {
                (None, _) => format!(
                    "{what}: the registry asks for credentials (401 Unauthorized{detail}) and the registry config (--registry-config) has none for {}",
                    self.host
                ),
                (Some(a), Scheme::Bearer { .. }) => format!(
                    "{what}: the registry refused the token issued to `{}` for {} (401 Unauthorized{detail})",
                    a.username,
                    scopes.join(" ")
                ),
                (Some(a), _) => format!(
                    "{what}: the registry refused the credentials of `{}` (401 Unauthorized{detail})",
                    a.username
                ),
            }));
        }
    }

    /// The `Authorization` value for requests needing `scopes`, if the registry wants one.
    async fn authorization(&self, scopes: &[String]) -> Result<Option<String>, RegistryError> {
        match &self.scheme {
            Scheme::Open => Ok(None),
            Scheme::Basic => Ok(self.auth.as_ref().map(|a| {
                use base64::Engine;
                let pair = format!("{}:{}", a.username, a.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            })),
            Scheme::Bearer { realm, service } => {
                let key = scopes.to_vec();
                let cached = self
                    .tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned();
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self.fetch_token(realm, service.as_deref(), scopes).await?;
                        self.tokens
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key, t.clone());
                        t
                    }
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// A token for `scopes` from the token service at `realm`, with the credentials as HTTP
    /// Basic when there are any (anonymous otherwise).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let url = Url::parse(realm).map_err(|e| {
            RegistryError::Refused(format!(
                "registry {}: its token realm `{realm}` is not a URL: {e}",
                self.host
            ))
        })?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&realm_host)) {
            return Err(RegistryError::Refused(format!(
                "registry {}: its token realm {realm} is not HTTPS; credentials are not sent in the clear",
                self.host
            )));
        }
        let mut req = self.http.request(Method::GET, url);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        for s in scopes {
            req = req.query(&[("scope", s)]);
        }
        if let Some(a) = &self.auth {
            req = req
                .query(&[("account", &a.username)])
                .basic_auth(&a.username, Some(&a.password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(&realm_host, &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Refused(match &self.auth {
                Some(a) => format!(
                    "registry {}: the token service {realm} refused the credentials of `{}` ({status})",
                    self.host, a.username
                ),
                None => format!(
                    "registry {}: the token service {realm} asks for credentials ({status}) and the registry config (--registry-config) has none for {}",
                    self.host, self.host
                ),
            }));
        }
        if !status.is_success() {
            return Err(RegistryError::Refused(format!(
                "registry {}: the token service {realm} answered {status}",
                self.host
            )));
        }
        // The body is not quoted in errors: it may hold a token.
        let body: serde_json::Value = resp.json().await.map_err(|_| {
            RegistryError::Refused(format!(
                "registry {}: the token service {realm} did not answer with JSON",
                self.host
            ))
        })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                RegistryError::Refused(format!(
                    "registry {}: the token service {realm} gave no token",
                    self.host
                ))
            })
    }
}

/// The manifest `image` (`registry/repo:tag` or `@digest`) names, through the registry
/// API: (digest, content type, bytes).
pub(super) async fn manifest(
    setup: Option<&DockerSetup>,
    image: &str,
) -> Result<(String, String, Vec<u8>), RegistryError> {
    let (host, repo, reference) = registry_parts(image).map_err(RegistryError::Refused)?;
    let registry = Registry::connect(&host, &Access::of(setup, image)).await?;
    let m = registry.manifest(&repo, &reference).await?;
    Ok((m.digest, m.media_type, m.bytes))
}

/// The certificates of the PEM bundle `file`.
fn read_ca(file: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let pem = std::fs::read(file).map_err(|e| {
        RegistryError::Refused(format!(
            "cannot read the registry CA bundle {}: {e}",
            file.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        RegistryError::Refused(format!(
            "the registry CA bundle {} is not PEM: {e}",
            file.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(RegistryError::Refused(format!(
            "the registry CA bundle {} holds no certificate",
            file.display()
        )));
    }
    Ok(certs)
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() > 1 {
        host
    } else {
        host.split(':').next().unwrap_or_default()
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The error of a request that got no answer: a certificate that does not verify is
/// `Refused` with what is wrong with it; anything else `Unreachable`, with its causes.
fn transport_error(host: &str, e: &reqwest::Error) -> RegistryError {
    if let Some(problem) = certificate_problem(e) {
        return RegistryError::Refused(format!(
            "registry {host}: TLS certificate problem: {problem}; give Slipway the registry's CA with `slipway up --registry-ca FILE` (a PEM bundle)"
        ));
    }
    if let Some(rustls::Error::InvalidMessage(_)) = rustls_error(e) {
        return RegistryError::Unreachable(format!(
            "registry {host} does not speak TLS (plain HTTP is only used for registries on loopback addresses)"
        ));
    }
    if e.is_timeout() {
        return RegistryError::Unreachable(format!("registry {host}: timed out ({})", chain(e)));
    }
    RegistryError::Unreachable(format!("registry {host}: {}", chain(e)))
}

/// The rustls error behind `e`, if the TLS layer failed.
fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // `io::Error::source` skips the error it wraps (which may be another `io::Error`
        // around the rustls error): look inside instead.
        cause = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

/// What is wrong with the server's certificate, in words, if that is why `e` failed.
fn certificate_problem(e: &reqwest::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = rustls_error(e)? else {
        return None;
    };
    Some(match c {
        C::UnknownIssuer => {
            "the certificate is signed by an unknown authority (UnknownIssuer)".to_string()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the certificate is not valid for this host name ({c:?})")
        }
        C::Expired | C::ExpiredContext { .. } => format!("the certificate has expired ({c:?})"),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            format!("the certificate is not valid yet ({c:?})")
        }
        C::BadSignature => "the certificate's signature is invalid (BadSignature)".to_string(),
        other => format!("the certificate is invalid ({other:?})"),
    })
}

/// `e` and its causes, `: `-separated, without repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// `resp` when it succeeded, else `Refused` with its status and the registry's error.
async fn ok_or_refused(what: &str, resp: Response) -> Result<Response, RegistryError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let detail = registry_error_text(resp).await;
    Err(RegistryError::Refused(format!(
        "{what}: the registry answered {status}{detail}"
    )))
}

/// `: CODE message` from a registry's error body (`{"errors": [{"code", "message"}]}`), or
/// the start of a body that is not one; empty when there is none.
async fn registry_error_text(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("errors").and_then(|e| e.as_array()).map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                            e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                        )
                        .trim()
                        .to_string()
                    })
                    .collect()
            })
        });
    let out = match parsed {
        Some(errors) => errors.join("; "),
        None => text.trim().chars().take(MAX_QUOTED).collect(),
    };
    if out.is_empty() {
        String::new()
    } else {
        format!(": {out}")
    }
}

/// A manifest's JSON.
fn parse_manifest(m: &Manifest) -> Result<serde_json::Value, RegistryError> {
    serde_json::from_slice(&m.bytes)
        .map_err(|e| RegistryError::Refused(format!("manifest {} is not JSON: {e}", m.digest)))
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The challenge of a `401` response.
fn challenge(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_challenge)
}

/// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"` (auth-params are
/// tokens or quoted strings with `\` escapes, RFC 7235).
fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (kind, rest) = header.split_once(' ').unwrap_or((header, ""));
    if kind.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !kind.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key=value, key="quoted, value"` pairs.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_with_quoted_commas() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:team/app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm = "http://127.0.0.1:1/t\"x", service=reg"#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t\"x".into(),
                service: Some("reg".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="slipway-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example.com",
            "10.0.0.1:5000",
            "[2001:db8::1]:443",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
