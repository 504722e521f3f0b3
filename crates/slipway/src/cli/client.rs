//! HTTP client of the Slipway server: base URL, auth, error bodies and transport errors.

use anyhow::Context;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

use super::ClientOpts;
use super::creds::{self, Chosen, ServerEntry, normalize_server};
use super::error::{ApiError, Exit, coded};
use super::ids::{AppId, segment};

/// How long one request may take before it is abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful answer to a request that starts a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeploymentResult {
    /// The deployment id (body `deploymentId`, else header `Marathon-Deployment-Id`).
    pub(crate) id: String,
    /// The new app version (may be empty when the server did not say).
    pub(crate) version: String,
    /// The body as received.
    pub(crate) body: Value,
}

/// The credentials a client sends, and where they came from (for the 401 hint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// No credentials.
    None,
    /// `--token` or `SLIPWAY_TOKEN`.
    FlagToken(String),
    /// The token stored by `slipway login` in this credentials file.
    StoredToken(String, PathBuf),
    /// User and password (`slipway login` only).
    Basic(String, String),
}

/// A connection to one Slipway server.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

impl Client {
    /// A client for the server in `opts` with credentials by precedence: `--token` /
    /// `SLIPWAY_TOKEN`, else the credentials file entry for the server, else none.
    pub(crate) fn new(opts: &ClientOpts) -> anyhow::Result<Client> {
        let base = server_url(opts)?;
        let flag = opts.token.as_deref();
        // The file is only read when no token was given.
        let stored = match creds::choose(flag, None) {
            Chosen::Nothing => stored_entry(&base),
            Chosen::Flag(_) | Chosen::Stored(_) => None,
        };
        let auth = match (creds::choose(flag, stored.as_ref().map(|s| &s.0)), stored) {
            (Chosen::Flag(t), _) => Auth::FlagToken(t),
            (Chosen::Stored(t), Some((_, path))) => Auth::StoredToken(t, path),
            (Chosen::Stored(_) | Chosen::Nothing, _) => Auth::None,
        };
        Client::with_auth(&base, auth)
    }

    /// A client for `base` (already normalised) with these credentials.
    pub(crate) fn with_auth(base: &str, auth: Auth) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot create the http client")?;
        Ok(Client {
            http,
            base: base.to_string(),
            auth,
        })
    }

    /// The normalised server URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// A request for `path` (starting with `/`) with auth and a timeout.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.auth {
            Auth::FlagToken(t) | Auth::StoredToken(t, _) => rb.bearer_auth(t),
            Auth::Basic(user, password) => rb.basic_auth(user, Some(password)),
            Auth::None => rb,
        }
    }

    /// What to suggest when the server answers 401.
    fn unauthorized_hint(&self) -> Option<String> {
        const LOGIN: &str = "run `slipway login` or set SLIPWAY_TOKEN";
        match &self.auth {
            Auth::None => Some(format!("not logged in to {}: {LOGIN}", self.base)),
            Auth::FlagToken(_) => Some(format!(
                "the token from --token/SLIPWAY_TOKEN was rejected (expired or revoked?): {LOGIN}"
            )),
            Auth::StoredToken(_, path) => Some(format!(
                "the token stored for {} in {} was rejected (expired or revoked?): {LOGIN}",
                self.base,
                path.display()
            )),
            Auth::Basic(..) => None,
        }
    }

    /// Sends a request; non-2xx answers become [`ApiError`], transport failures a clear
    /// message (exit code 3).
    pub(crate) async fn send(&self, rb: RequestBuilder) -> anyhow::Result<Response> {
        let resp = rb.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let marathon = resp.url().path().starts_with("/v2/");
        let body = resp.text().await.unwrap_or_default();
        let mut err = ApiError::from_body(
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            &body,
        );
        if status == StatusCode::UNAUTHORIZED {
            err.hint = self.unauthorized_hint();
        } else if status == StatusCode::CONFLICT && !marathon {
            // `--force` is about deployments; a user that already exists is not.
            err.hint = None;
        }
        Err(err.into())
    }

    /// Sends a request and parses the JSON answer (`null` for an empty body).
    pub(crate) async fn json(&self, rb: RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.send(rb).await?;
        let url = resp.url().path().to_string();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            coded(
                Exit::Server,
                format!("invalid JSON from the server for {url}: {e}"),
            )
        })
    }

    /// `GET path` with query parameters, as JSON.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    /// `GET /v2/apps/{id}`: the `app` object. An unknown app is an error with exit code 6
    /// that names the closest existing app, if one is close.
    pub(crate) async fn app(&self, id: &AppId) -> anyhow::Result<Value> {
        let v = match self.get(&format!("/v2/apps/{}", id.path()), &[]).await {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Err(self.no_app(id).await),
            Err(e) => return Err(e),
        };
        match v {
            Value::Object(mut m) => Ok(m.remove("app").unwrap_or(Value::Null)),
            _ => Err(coded(
                Exit::Server,
                "unexpected answer to GET /v2/apps/{id}: no app",
            )),
        }
    }

    /// `no app ID (did you mean …?)` (exit code 6), with the closest id the server lists.
    pub(crate) async fn no_app(&self, id: &AppId) -> anyhow::Error {
        let ids: Vec<String> = match self.get("/v2/apps", &[]).await {
            Ok(v) => array_field(v, "apps")
                .iter()
                .filter_map(|a| a.get("id").and_then(Value::as_str).map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        };
        let hint = super::suggest::did_you_mean(id.display(), ids.iter().map(String::as_str));
        coded(Exit::NotFound, format!("no app {id}{hint}"))
    }

    /// `GET /v2/apps/{id}/tasks`: the `tasks` array.
    pub(crate) async fn app_tasks(&self, id: &AppId) -> anyhow::Result<Vec<Value>> {
        let v = self
            .get(&format!("/v2/apps/{}/tasks", id.path()), &[])
            .await?;
        Ok(array_field(v, "tasks"))
    }

    /// `GET /api/v1/deployments/{id}`: the native deployment status.
    pub(crate) async fn deployment_status(&self, id: &str) -> anyhow::Result<Value> {
        self.get(&format!("/api/v1/deployments/{}", segment(id)), &[])
            .await
    }

    /// Sends a request that starts a deployment and reads the deployment result.
    pub(crate) async fn start_deployment(
        &self,
        rb: RequestBuilder,
    ) -> anyhow::Result<DeploymentResult> {
        let resp = self.send(rb).await?;
        let header_id = resp
            .headers()
            .get("Marathon-Deployment-Id")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let id = body
            .get("deploymentId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(header_id)
            .ok_or_else(|| {
                coded(
                    Exit::Server,
                    format!("the server answered {status} without a deployment id"),
                )
            })?;
        let version = body
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Ok(DeploymentResult { id, version, body })
    }

    fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            return coded(
                Exit::Server,
                format!(
                    "cannot reach the Slipway server at {}: is `slipway up` running? \
                     (set --server or SLIPWAY_URL)",
                    self.base
                ),
            );
        }
        if e.is_timeout() {
            return coded(Exit::Server, format!("request to {} timed out", self.base));
        }
        anyhow::Error::new(e).context(format!("request to {} failed", self.base))
    }
}

/// The normalised `--server` URL (exit code 1 when it is not an http(s) URL).
pub(crate) fn server_url(opts: &ClientOpts) -> anyhow::Result<String> {
    normalize_server(&opts.server).map_err(|e| coded(Exit::Failed, e))
}

/// The credentials file's entry for `base` and the file's path; an unreadable file is a
/// warning, not an error.
fn stored_entry(base: &str) -> Option<(ServerEntry, PathBuf)> {
    let path = creds::default_path()?;
    match creds::load(&path) {
        Ok(mut file) => file.servers.remove(base).map(|e| (e, path)),
        Err(e) => {
            eprintln!("warning: ignoring stored credentials: {e:#}");
            None
        }
    }
}

/// Whether an error is the server saying 404.
pub(crate) fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<ApiError>())
        .any(|a| a.status == StatusCode::NOT_FOUND.as_u16())
}

/// Whether a failed poll may succeed when retried: anything but a 4xx answer.
pub(crate) fn is_transient(err: &anyhow::Error) -> bool {
    !err.chain()
        .filter_map(|c| c.downcast_ref::<ApiError>())
        .any(|a| (400..500).contains(&a.status))
}

/// `v[key]` as an array (empty when missing or not an array).
pub(crate) fn array_field(v: Value, key: &str) -> Vec<Value> {
    match v {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_are_final() {
        let api = |status| anyhow::Error::new(ApiError::from_body(status, "", "{}"));
        assert!(!is_transient(&api(401)));
        assert!(!is_transient(&api(404)));
        assert!(is_transient(&api(503)));
        assert!(is_transient(&anyhow::anyhow!("connection reset")));
        assert!(is_not_found(&api(404).context("cannot show /web")));
        assert!(!is_not_found(&api(500)));
    }

    #[test]
    fn arrays_from_wrappers() {
        let v = serde_json::json!({"tasks": [1, 2], "other": 1});
        assert_eq!(array_field(v.clone(), "tasks").len(), 2);
        assert!(array_field(v, "other").is_empty());
        assert!(array_field(Value::Null, "tasks").is_empty());
    }
}
