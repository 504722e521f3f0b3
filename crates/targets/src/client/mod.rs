//! A client for a remote Marathon v2 API (another Slipway or a real Marathon), the way the
//! seed's tooling drives one: the Jenkins plugin's `PUT /v2/apps/{id}?force=`, then
//! polling `/v2/deployments` until the deployment is gone, as marathon-python users do.
//!
//! Marathon removes finished deployments and never fails one by itself (a task that never
//! becomes healthy deploys forever), so [`MarathonClient::wait_deployment`] decides from
//! what is left: a Slipway remote says how its deployment ended
//! (`GET /api/v1/deployments/{id}`); for a real Marathon the app's version tells success
//! from a deployment that a later one replaced, and a wait that runs out reports the
//! app's `lastTaskFailure`.
//!
//! Credentials go in the `Authorization` header only. Errors carry the remote's status,
//! message and field paths, with any credential scrubbed out.

mod credentials;
mod error;
mod remote;

pub use credentials::Credentials;
pub use error::{ClientError, FieldError};
pub use remote::{
    DeploymentOutcome, DeploymentRef, RemoteApp, RemoteDeployment, RemoteTask, TaskFailure,
    image_digest,
};

use crate::spec::{TargetKind, TargetSpec};
use credentials::scrub;
use remote::{error_body, shorten};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// How long one request may take unless [`MarathonClient::with_request_timeout`] says.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often [`MarathonClient::wait_deployment`] looks unless
/// [`MarathonClient::with_poll_interval`] says.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Fields of an app the remote computes; sending `version` back would even mean a
/// rollback to it.
const READ_ONLY: [&str; 9] = [
    "version",
    "versionInfo",
    "tasks",
    "deployments",
    "lastTaskFailure",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
];

/// A remote Marathon v2 API, reached as one named target.
#[derive(Clone, Debug)]
pub struct MarathonClient {
    target: String,
    url: String,
    credentials: Option<Credentials>,
    http: reqwest::Client,
    request_timeout: Duration,
    poll: Duration,
}

/// A 2xx answer.
struct Answer {
    status: u16,
    deployment_header: Option<String>,
    body: String,
}

impl MarathonClient {
    /// A client for target `target` at `url` (`http://host:port`, optionally with a path
    /// prefix such as `/service/marathon`). `https://` needs reqwest's TLS support; a build
    /// without it says so when the first request is sent.
    pub fn new(
        target: &str,
        url: &str,
        credentials: Option<Credentials>,
    ) -> Result<MarathonClient, ClientError> {
        let config = |reason: &str| ClientError::Config {
            target: target.to_string(),
            reason: reason.to_string(),
        };
        let url = url.trim();
        let Some((scheme, rest)) = url
            .strip_prefix("http://")
            .map(|r| ("http", r))
            .or_else(|| url.strip_prefix("https://").map(|r| ("https", r)))
        else {
            return Err(config("a Marathon URL starts with http:// or https://"));
        };
        let rest = rest.trim_end_matches('/');
        let url = format!("{scheme}://{rest}");
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') || url.contains(['?', '#']) {
            return Err(config(
                "the URL is http://host:port[/path], without credentials, query or fragment (credentials come from a secret)",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("slipway-targets/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config(&format!("cannot build an HTTP client: {e}")))?;
        Ok(MarathonClient {
            target: target.to_string(),
            url,
            credentials,
            http,
            request_timeout: REQUEST_TIMEOUT,
            poll: POLL_INTERVAL,
        })
    }

    /// A client for a `marathon:` target spec, with the credentials read from its secret.
    pub fn for_target(
        spec: &TargetSpec,
        credentials: Option<Credentials>,
    ) -> Result<MarathonClient, ClientError> {
        match &spec.kind {
            TargetKind::Marathon { url, .. } => MarathonClient::new(&spec.name, url, credentials),
            _ => Err(ClientError::Config {
                target: spec.name.clone(),
                reason: format!("a {} target has no Marathon API", spec.kind_name()),
            }),
        }
    }

    /// The same client (sharing its connection pool) with other credentials: a server
    /// that reads them from its secret store on every request picks up a changed secret.
    pub fn with_credentials(&self, credentials: Option<Credentials>) -> MarathonClient {
        MarathonClient {
            credentials,
            ..self.clone()
        }
    }

    /// The same client with another per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> MarathonClient {
        self.request_timeout = timeout;
        self
    }

    /// The same client polling deployments every `interval`.
    pub fn with_poll_interval(mut self, interval: Duration) -> MarathonClient {
        self.poll = interval;
        self
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `PUT /v2/apps/{id}?force=`: creates or updates the app (a partial definition is an
    /// update, as in Marathon). Read-only fields (`version`, `tasks`, ...) are left out, so
    /// a definition read back with [`MarathonClient::get_app`] can be sent again. `force`
    /// overrides a deployment in progress; without it a locked app is a 409.
    pub async fn put_app(
        &self,
        id: &str,
        definition: &Value,
        force: bool,
    ) -> Result<DeploymentRef, ClientError> {
        let mut body = definition.clone();
        if let Value::Object(m) = &mut body {
            for k in READ_ONLY {
                m.remove(k);
            }
        }
        self.put_app_bytes(id, body.to_string().into_bytes(), force)
            .await
    }

    /// [`MarathonClient::put_app`] with the definition as JSON bytes (a file as the
    /// pipeline rendered it). Bytes that are not a JSON object are sent as they are, for
    /// the remote to judge.
    pub async fn put_app_json(
        &self,
        id: &str,
        definition: &[u8],
        force: bool,
    ) -> Result<DeploymentRef, ClientError> {
        match serde_json::from_slice::<Value>(definition) {
            Ok(v @ Value::Object(_)) => self.put_app(id, &v, force).await,
            _ => self.put_app_bytes(id, definition.to_vec(), force).await,
        }
    }

    async fn put_app_bytes(
        &self,
        id: &str,
        body: Vec<u8>,
        force: bool,
    ) -> Result<DeploymentRef, ClientError> {
        let path = self.app_path(id)?;
        let force = if force { "true" } else { "false" };
        let answer = self
            .call(Method::PUT, &path, &[("force", force)], Some(body))
            .await?;
        self.deployment_ref(&path, &answer)
    }

    /// `DELETE /v2/apps/{id}?force=`: removes the app; `None` when it does not exist.
    pub async fn delete_app(
        &self,
        id: &str,
        force: bool,
    ) -> Result<Option<DeploymentRef>, ClientError> {
        let path = self.app_path(id)?;
        let force = if force { "true" } else { "false" };
        match self
            .call(Method::DELETE, &path, &[("force", force)], None)
            .await
        {
            Ok(answer) => self.deployment_ref(&path, &answer).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /v2/apps/{app}/tasks/{task}?scale=`: kills one task (`scale`: and lowers
    /// the app's instances); `false` when the remote has no such task.
    pub async fn kill_task(&self, app: &str, task: &str, scale: bool) -> Result<bool, ClientError> {
        let path = format!("{}/tasks/{task}", self.app_path(app)?);
        if task.is_empty() || task.contains(['/', '?', '#']) {
            return Err(ClientError::Config {
                target: self.target.clone(),
                reason: format!("'{task}' is not a task id"),
            });
        }
        let scale = if scale { "true" } else { "false" };
        match self
            .call(Method::DELETE, &path, &[("scale", scale)], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/apps/{id}`: the app with its tasks, deployments and last task failure;
    /// `None` when it does not exist.
    pub async fn get_app(&self, id: &str) -> Result<Option<RemoteApp>, ClientError> {
        let path = self.app_path(id)?;
        let answer = match self.call(Method::GET, &path, &[], None).await {
            Ok(a) => a,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = self.json(&format!("GET {path}"), &answer)?;
        RemoteApp::from_json(&body["app"])
            .map(Some)
            .ok_or_else(|| self.protocol(&format!("GET {path}"), "no app in the answer"))
    }

    /// The apps whose ids are `prefix` or under it (`/AA` → `/AA/prod/orders`, not
    /// `/AAB/x`), with their tasks and last task failures; `/` or `""` lists every app.
    pub async fn list_apps(&self, prefix: &str) -> Result<Vec<RemoteApp>, ClientError> {
        let group = format!("/{}", prefix.trim_matches('/'));
        let mut query = vec![("embed", "apps.tasks"), ("embed", "apps.lastTaskFailure")];
        if group != "/" {
            query.push(("id", group.as_str()));
        }
        let answer = self.call(Method::GET, "/v2/apps", &query, None).await?;
        let body = self.json("GET /v2/apps", &answer)?;
        let apps = body["apps"]
            .as_array()
            .ok_or_else(|| self.protocol("GET /v2/apps", "no apps in the answer"))?;
        Ok(apps
            .iter()
            .filter_map(RemoteApp::from_json)
            .filter(|a| {
                group == "/"
                    || a.id == group
                    || a.id
                        .strip_prefix(&group)
                        .is_some_and(|r| r.starts_with('/'))
            })
            .collect())
    }

    /// `GET /v2/apps/{id}/tasks`.
    pub async fn tasks(&self, app: &str) -> Result<Vec<RemoteTask>, ClientError> {
        let path = format!("{}/tasks", self.app_path(app)?);
        let answer = self.call(Method::GET, &path, &[], None).await?;
        let body = self.json(&format!("GET {path}"), &answer)?;
        Ok(body["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(RemoteTask::from_json)
            .collect())
    }

    /// The image the app's current definition runs (`container.docker.image`; `None` for
    /// a command app). Its tasks run it once no deployment is in progress: wait for the
    /// deployment before comparing digests across targets ([`image_digest`]). A missing
    /// app is the remote's 404.
    pub async fn running_image(&self, app: &str) -> Result<Option<String>, ClientError> {
        let path = self.app_path(app)?;
        match self.get_app(app).await? {
            Some(a) => Ok(a.image),
            None => Err(ClientError::Remote {
                target: self.target.clone(),
                status: 404,
                message: format!("App '{path}' does not exist"),
                details: Vec::new(),
            }),
        }
    }

    /// `GET /v2/deployments`: the deployments in progress.
    pub async fn deployments(&self) -> Result<Vec<RemoteDeployment>, ClientError> {
        let answer = self.call(Method::GET, "/v2/deployments", &[], None).await?;
        let body = self.json("GET /v2/deployments", &answer)?;
        let list = body
            .as_array()
            .ok_or_else(|| self.protocol("GET /v2/deployments", "not a list"))?;
        Ok(list
            .iter()
            .filter_map(RemoteDeployment::from_json)
            .collect())
    }

    /// Whether deployment `id` is no longer in progress (Marathon removes finished ones).
    pub async fn deployment_done(&self, id: &str) -> Result<bool, ClientError> {
        Ok(!self.deployments().await?.iter().any(|d| d.id == id))
    }

    /// Polls until `deployment` is no longer in progress, then says how it ended; after
    /// `timeout` it is [`DeploymentOutcome::TimedOut`] with the app's last task failure.
    /// A remote that is briefly unreachable or answers 5xx is polled again until the
    /// timeout; any other error ends the wait.
    pub async fn wait_deployment(
        &self,
        deployment: &DeploymentRef,
        timeout: Duration,
    ) -> Result<DeploymentOutcome, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = match self.deployment_done(&deployment.id).await {
                Ok(done) => done,
                Err(e) if transient(&e) && tokio::time::Instant::now() < deadline => false,
                Err(e) => return Err(e),
            };
            if done && let Some(outcome) = self.settled(deployment).await? {
                return Ok(outcome);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return self.timed_out(deployment).await;
            }
            tokio::time::sleep(self.poll.min(deadline - now)).await;
        }
    }

    /// How a deployment that left `/v2/deployments` ended; `None` if a Slipway remote
    /// still lists it as running.
    async fn settled(
        &self,
        deployment: &DeploymentRef,
    ) -> Result<Option<DeploymentOutcome>, ClientError> {
        // A Slipway remote keeps finished deployments with their outcome; Marathon has no
        // such route and answers 404.
        let path = format!("/api/v1/deployments/{}", deployment.id);
        if deployment
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && let Ok(answer) = self.call(Method::GET, &path, &[], None).await
            && let Ok(body) = serde_json::from_str::<Value>(&answer.body)
        {
            match body["status"].as_str() {
                Some("success") => return Ok(Some(DeploymentOutcome::Succeeded)),
                Some("failed") => {
                    let reason = body["reason"].as_str().unwrap_or("no reason given");
                    return Ok(Some(DeploymentOutcome::Failed {
                        reason: scrub(&shorten(reason, 500), self.credentials.as_ref()),
                    }));
                }
                Some("running") => return Ok(None),
                _ => {}
            }
        }
        Ok(Some(match self.get_app(&deployment.app).await? {
            None => DeploymentOutcome::AppDeleted,
            Some(app) if app.is_at(&deployment.version) => DeploymentOutcome::Succeeded,
            Some(app) => DeploymentOutcome::Superseded {
                app_version: app.version.unwrap_or_default(),
            },
        }))
    }

    async fn timed_out(
        &self,
        deployment: &DeploymentRef,
    ) -> Result<DeploymentOutcome, ClientError> {
        let app = self.get_app(&deployment.app).await?;
        Ok(match app {
            None => DeploymentOutcome::AppDeleted,
            Some(app) => DeploymentOutcome::TimedOut {
                // A failure of an older version says nothing about this deployment.
                last_task_failure: app.last_task_failure.filter(|f| {
                    f.version
                        .as_deref()
                        .is_none_or(|v| v >= deployment.version.as_str())
                }),
                tasks_healthy: app.tasks_healthy,
                instances: app.instances,
            },
        })
    }

    /// `/v2/apps/ID` for an app id, refusing what is not one (so nothing else can ride
    /// along in the path).
    fn app_path(&self, id: &str) -> Result<String, ClientError> {
        let trimmed = id.trim().trim_matches('/');
        let ok = !trimmed.is_empty()
            && trimmed.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            });
        if !ok {
            return Err(ClientError::Config {
                target: self.target.clone(),
                reason: format!("'{}' is not an app id", shorten(id, 80)),
            });
        }
        Ok(format!("/v2/apps/{trimmed}"))
    }

    /// Sends a request; a non-2xx answer becomes the matching error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .timeout(self.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            rb = rb.query(query);
        }
        if let Some(body) = body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(c) = &self.credentials {
            rb = c.apply(rb);
        }
        let resp = rb.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let deployment_header = resp
            .headers()
            .get("Marathon-Deployment-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| self.unreachable(e))?;
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                deployment_header,
                body,
            });
        }
        let (message, details) = error_body(&body);
        let creds = self.credentials.as_ref();
        let message = scrub(&message, creds);
        let details = details
            .into_iter()
            .map(|d| FieldError {
                path: scrub(&d.path, creds),
                errors: d.errors.iter().map(|e| scrub(e, creds)).collect(),
            })
            .collect();
        Err(if status == 401 {
            ClientError::Unauthorized {
                target: self.target.clone(),
                status,
                sent: creds.map_or_else(
                    || "no credentials (name a secret with ?secret=SECRET)".to_string(),
                    Credentials::describe,
                ),
                message,
            }
        } else {
            ClientError::Remote {
                target: self.target.clone(),
                status,
                message,
                details,
            }
        })
    }

    /// `{"deploymentId", "version"}` (or the `Marathon-Deployment-Id` header).
    fn deployment_ref(&self, path: &str, answer: &Answer) -> Result<DeploymentRef, ClientError> {
        let request = format!("{path} ({})", answer.status);
        let body = self.json(&request, answer)?;
        let id = body["deploymentId"]
            .as_str()
            .map(str::to_string)
            .or_else(|| answer.deployment_header.clone())
            .ok_or_else(|| self.protocol(&request, "no deploymentId"))?;
        let version = body["version"]
            .as_str()
            .ok_or_else(|| self.protocol(&request, "no version"))?;
        Ok(DeploymentRef {
            app: path.trim_start_matches("/v2/apps").to_string(),
            id,
            version: version.to_string(),
        })
    }

    fn json(&self, request: &str, answer: &Answer) -> Result<Value, ClientError> {
        serde_json::from_str(&answer.body)
            .map_err(|e| self.protocol(request, &format!("not JSON ({e})")))
    }

    fn protocol(&self, request: &str, reason: &str) -> ClientError {
        ClientError::Protocol {
            target: self.target.clone(),
            request: request.to_string(),
            reason: reason.to_string(),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        let timeout = e.is_timeout();
        let e = e.without_url();
        let mut parts: Vec<String> = vec![e.to_string()];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            source = s.source();
        }
        if timeout {
            parts.push(format!("no answer within {:?}", self.request_timeout));
        }
        // Without a TLS backend, reqwest's connector refuses https.
        if self.url.starts_with("https://") && parts.iter().any(|p| p.contains("not http")) {
            parts.push(
                "this build has no TLS client: reach the target over http:// on a private network or through a local TLS tunnel".into(),
            );
        }
        ClientError::Unreachable {
            target: self.target.clone(),
            url: self.url.clone(),
            reason: scrub(&parts.join(": "), self.credentials.as_ref()),
        }
    }
}

/// Errors worth another poll: no answer, or the remote's 5xx.
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } => true,
        ClientError::Remote { status, .. } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> MarathonClient {
        MarathonClient::new("CC", "http://127.0.0.1:9/", None).unwrap()
    }

    #[test]
    fn app_paths() {
        let c = client();
        assert_eq!(c.app_path("/CC/prod/web").unwrap(), "/v2/apps/CC/prod/web");
        assert_eq!(c.app_path("CC/prod/web/").unwrap(), "/v2/apps/CC/prod/web");
        for bad in [
            "",
            "/",
            "/a//b",
            "/a/../b",
            "/a?force=true",
            "/a#x",
            "/a b",
            "/ä",
        ] {
            let e = c.app_path(bad).unwrap_err().to_string();
            assert!(e.contains("is not an app id"), "{bad}: {e}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(client().url(), "http://127.0.0.1:9");
        for (url, want) in [
            ("ftp://h", "starts with http:// or https://"),
            ("http://ops:hunter22@h:1", "without credentials"),
            ("http://h:1?x=1", "without credentials, query"),
            ("http://", "without credentials"),
        ] {
            let e = MarathonClient::new("CC", url, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("hunter22"), "{e}");
        }
        let local = TargetSpec::parse("AA=local").unwrap();
        assert!(MarathonClient::for_target(&local, None).is_err());
        let cc = TargetSpec::parse("CC=marathon:http://h:8080/service/marathon?secret=s").unwrap();
        assert_eq!(
            MarathonClient::for_target(&cc, None).unwrap().url(),
            "http://h:8080/service/marathon"
        );
    }

    #[test]
    fn debug_output_hides_credentials() {
        let c = MarathonClient::new(
            "CC",
            "http://h:1",
            Some(Credentials::from_secret("ops:hunter22")),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
        assert!(debug.contains("HTTP basic as user ops"), "{debug}");
    }
}
