//! Who is calling and what they may do: authentication (Basic, Bearer, DC/OS `token=`),
//! role checks per route, environment policies for app changes, and the audit record of
//! every mutation, allowed or not. Passwords and tokens are checked with the `auth` crate
//! against hashes in the store; nothing secret is logged or audited.

use crate::Ctx;
use crate::error::ApiError;
use auth::{Action, Credentials, Decision, PolicySet, Principal, Role};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use model::PathId;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use store::{AuditRow, Store, UserRow};

/// How long a verified Basic login is remembered (Argon2 costs tens of ms per check, and
/// Marathon clients send Basic credentials on every request).
const LOGIN_CACHE: Duration = Duration::from_secs(60);

/// Authentication mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request authenticates.
    On,
    /// No authentication (loopback only): every caller acts as an admin named `anonymous`.
    Off,
}

/// Users, tokens, policies and the audit log, as the HTTP layer needs them.
pub struct Identity {
    store: Arc<Store>,
    mode: AuthMode,
    anonymous_read: bool,
    policies: RwLock<PolicySet>,
    logins: Mutex<HashMap<String, (Principal, Instant)>>,
    /// When each token's `last_used_at` was last written (written at most once a minute,
    /// so reads do not turn into database writes).
    touched: Mutex<HashMap<String, Instant>>,
    /// Failed sign-ins per claimed user and per address.
    throttle: crate::throttle::Throttle,
}

/// What a handler tells the audit record about its request.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// The app concerned.
    pub app: Option<String>,
    /// Why it was refused, or other detail (never a secret).
    pub detail: Option<String>,
}

fn now_ms() -> i64 {
    model::Timestamp::now().millis()
}

impl Identity {
    /// Loads the policy set (embedded defaults until an admin stores one).
    pub fn open(
        store: Arc<Store>,
        mode: AuthMode,
        anonymous_read: bool,
    ) -> Result<Identity, String> {
        let policies = match store.policies().map_err(|e| e.to_string())? {
            Some(body) => serde_json::from_str(&body)
                .map_err(|e| format!("stored policies are unreadable: {e}"))?,
            None => PolicySet::default(),
        };
        Ok(Identity {
            store,
            mode,
            anonymous_read,
            policies: RwLock::new(policies),
            logins: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            throttle: crate::throttle::Throttle::default(),
        })
    }

    /// The authentication mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Creates the first admin when there are no users. With `admin_token`, that token is
    /// (also on later starts) a valid admin token. Otherwise a one-time password is
    /// returned, for the caller to print once.
    pub fn bootstrap(&self, admin_token: Option<&str>) -> Result<Option<String>, String> {
        let err = |e: store::StoreError| e.to_string();
        let users = self.store.users().map_err(err)?;
        let mut shown = None;
        if users.is_empty() {
            let password = match admin_token {
                Some(_) => None,
                None => {
                    let pw = auth::random_password();
                    shown = Some(pw.clone());
                    Some(auth::hash_password(&pw).map_err(|e| e.to_string())?)
                }
            };
            self.store
                .put_user(&UserRow {
                    name: "admin".into(),
                    password_hash: password,
                    role: Role::Admin.to_string(),
                    created_at: now_ms(),
                    disabled: false,
                })
                .map_err(err)?;
        }
        if let Some(token) = admin_token {
            let hash = auth::token_hash(token);
            if self.store.token_by_hash(&hash).map_err(err)?.is_none() {
                let owner = if self.store.user("admin").map_err(err)?.is_some() {
                    "admin".to_string()
                } else {
                    users
                        .iter()
                        .find(|u| u.role == "admin")
                        .map(|u| u.name.clone())
                        .unwrap_or_else(|| "admin".into())
                };
                self.store
                    .insert_token(
                        &store::TokenRow {
                            id: uuid_like(),
                            user: owner,
                            name: "SLIPWAY_ADMIN_TOKEN".into(),
                            created_at: now_ms(),
                            expires_at: None,
                            revoked_at: None,
                            last_used_at: None,
                        },
                        &hash,
                    )
                    .map_err(err)?;
            }
        }
        Ok(shown)
    }

    /// The current policy set.
    pub fn policies(&self) -> PolicySet {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates, stores and activates a new policy set.
    pub fn set_policies(&self, set: PolicySet) -> Result<(), Vec<String>> {
        set.validate()?;
        let body = serde_json::to_string(&set).map_err(|e| vec![e.to_string()])?;
        self.store
            .set_policies(&body)
            .map_err(|e| vec![e.to_string()])?;
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = set;
        Ok(())
    }

    /// Decides whether `who` may change app `id` with `labels`.
    pub fn check_deploy(
        &self,
        who: &Principal,
        id: &PathId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let action = Action::Deploy {
            app: id.clone(),
            labels: labels.clone(),
        };
        match self.policies().authorize(who, &action) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(forbidden(reason)),
        }
    }

    /// Who sent the request, from its `Authorization` header.
    fn authenticate(&self, header: Option<&str>) -> Result<Principal, String> {
        if self.mode == AuthMode::Off {
            return Ok(Principal {
                user: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let Some(header) = header else {
            return if self.anonymous_read {
                Ok(Principal {
                    user: "anonymous".into(),
                    role: Role::Viewer,
                })
            } else {
                Err("credentials required (HTTP Basic or a Bearer token)".into())
            };
        };
        match auth::parse_authorization(header).map_err(|e| e.to_string())? {
            Credentials::Bearer(token) => self.by_token(&token),
            Credentials::Basic { user, password } => self.by_password(&user, &password),
        }
    }

    fn by_token(&self, token: &str) -> Result<Principal, String> {
        let hash = auth::token_hash(token);
        let found = self.store.token_by_hash(&hash).map_err(|e| e.to_string())?;
        let (t, user) = found.ok_or("unknown token")?;
        let now = now_ms();
        if t.revoked_at.is_some() {
            return Err("token revoked".into());
        }
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err("token expired".into());
        }
        let user = user
            .filter(|u| !u.disabled)
            .ok_or("the token's user is disabled or deleted")?;
        let role: Role = user
            .role
            .parse()
            .map_err(|_| "the user has an unknown role".to_string())?;
        // Last-used bookkeeping is best effort, and written at most once a minute per token.
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = touched
                .get(&t.id)
                .is_some_and(|at| at.elapsed() < LOGIN_CACHE);
            if !fresh {
                touched.insert(t.id.clone(), Instant::now());
            }
            !fresh
        };
        if due {
            let _ = self.store.touch_token(&t.id, now);
        }
        Ok(Principal {
            user: user.name,
            role,
        })
    }

    fn by_password(&self, user: &str, password: &str) -> Result<Principal, String> {
        let key = format!("{user}\u{0}{}", auth::token_hash(password));
        if let Some((p, at)) = self
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < LOGIN_CACHE
        {
            return Ok(p.clone());
        }
        let row = self.store.user(user).map_err(|e| e.to_string())?;
        // Always run one verification, so the answer time does not reveal which users exist.
        let hash = row
            .as_ref()
            .filter(|u| !u.disabled)
            .and_then(|u| u.password_hash.as_deref());
        let ok = auth::verify_login(password, hash) && row.as_ref().is_some_and(|u| !u.disabled);
        let row = row.filter(|_| ok).ok_or("wrong user name or password")?;
        let role: Role = row
            .role
            .parse()
            .map_err(|_| "the user has an unknown role".to_string())?;
        let p = Principal {
            user: row.name,
            role,
        };
        self.logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (p.clone(), Instant::now()));
        Ok(p)
    }

    /// Forgets cached logins (after password, role or user changes).
    pub fn forget_logins(&self) {
        self.logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Appends an audit record; failures are logged, never fatal for the request.
    fn audit(&self, row: AuditRow) {
        if let Err(e) = self.store.append_audit(&row) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }
}

fn uuid_like() -> String {
    auth::new_token().chars().skip(4).take(16).collect()
}

/// 403 with a Marathon-style body.
pub fn forbidden(reason: impl Into<String>) -> ApiError {
    ApiError::message(
        StatusCode::FORBIDDEN,
        format!("Forbidden: {}", reason.into()),
    )
}

/// With `--auth none`: the `Host` must name loopback (`localhost`, `127.x.y.z`, `[::1]`),
/// and an `Origin`, when sent, must be that same host.
fn local_origin(headers: &axum::http::HeaderMap) -> Result<(), String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "with --auth none only requests to a loopback host name are served (Host: {host:?})"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(format!(
                "with --auth none cross-origin requests are refused (Origin: {origin:?})"
            ));
        }
    }
    Ok(())
}

/// 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut resp = ApiError::message(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many failed sign-ins: try again in {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Audits a failed sign-in whatever its method (bursts are recorded once, by the caller).
fn record_always(
    ctx: &Ctx,
    claimed: &str,
    method: &Method,
    path: &str,
    peer: SocketAddr,
    status: StatusCode,
    detail: String,
) {
    let path = crate::throttle::truncate(path, 256);
    ctx.identity.audit(AuditRow {
        seq: 0,
        at: now_ms(),
        user: claimed.to_string(),
        action: format!("{method} {path}"),
        target: path.clone(),
        app: None,
        source: peer.ip().to_string(),
        status: status.as_u16(),
        outcome: "denied".into(),
        detail: Some(crate::throttle::truncate(&detail, 512)),
    });
}

fn unauthorized(reason: &str) -> Response {
    let mut resp = ApiError::message(StatusCode::UNAUTHORIZED, format!("Unauthorized: {reason}"))
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"slipway\""),
    );
    resp
}

/// The least role a route needs before its handler looks closer (environment policies,
/// own tokens, own password).
fn required_role(method: &Method, path: &str) -> Role {
    let read = method == Method::GET || method == Method::HEAD || is_query(path);
    if is_ingest(path) {
        return Role::Developer;
    }
    if path.starts_with("/api/v1/users") && !(read && path == "/api/v1/users") {
        // Users may change their own password; the handler decides.
        return Role::Viewer;
    }
    if path.starts_with("/api/v1/users") || (path == "/v2/leader" && !read) {
        return Role::Admin;
    }
    if path.starts_with("/api/v1/policies") && !read {
        return Role::Admin;
    }
    if path.starts_with("/api/v1/secrets") {
        return if read {
            Role::Developer
        } else {
            Role::Deployer
        };
    }
    // Who did what where is for the people who change things, not for viewers.
    if path.starts_with("/api/v1/audit") {
        return Role::Developer;
    }
    if path.starts_with("/api/v1/tokens") || path == "/api/v1/whoami" || read {
        return Role::Viewer;
    }
    Role::Developer
}

/// Prometheus and InfluxQL queries, which clients send as POST forms: reads.
fn is_query(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/query"
            | "/api/v1/query_range"
            | "/api/v1/series"
            | "/api/v1/labels"
            | "/api/v1/query_exemplars"
            | "/api/v1/format_query"
            | "/query"
    )
}

/// Metric writes (Telegraf every few seconds): need a developer, are not audited one by one.
fn is_ingest(path: &str) -> bool {
    matches!(path, "/write" | "/api/v2/write")
}

/// The middleware: authenticate, check the route's role, run, and audit mutations.
pub async fn guard(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Without authentication every caller is an admin: only what a person on this machine
    // sends may pass, not a web page's request (CSRF) or a renamed host (DNS rebinding).
    if ctx.identity.mode() == AuthMode::Off
        && let Err(reason) = local_origin(req.headers())
    {
        return forbidden(reason).into_response();
    }
    // Load balancers and liveness probes call /ping without credentials, as Marathon's.
    if path == "/ping" && (method == Method::GET || method == Method::HEAD) {
        req.extensions_mut().insert(Principal {
            user: "anonymous".into(),
            role: Role::Viewer,
        });
        return next.run(req).await;
    }
    // Forge webhooks carry the forge's signature instead of credentials: the handler checks
    // it against the pipeline's webhook secret and audits every delivery (401 when invalid).
    let forge_hook = method == Method::POST
        && path.starts_with("/api/v1/pipelines/")
        && path.ends_with("/hooks/push")
        && !req.headers().contains_key(header::AUTHORIZATION)
        && pipeline::webhook::has_credentials(&|h| {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    if forge_hook {
        return next.run(req).await;
    }
    let mutation =
        method != Method::GET && method != Method::HEAD && !is_query(&path) && !is_ingest(&path);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let claimed = crate::throttle::truncate(&claimed_user(header.as_deref()), 64);
    let record = |user: &str, status: StatusCode, note: &AuditNote| {
        if !mutation {
            return;
        }
        let path = crate::throttle::truncate(&path, 256);
        let outcome = match status.as_u16() {
            200..=399 => "allowed",
            401 | 403 => "denied",
            _ => "failed",
        };
        let app = note.app.clone().or_else(|| app_of_path(&path));
        ctx.identity.audit(AuditRow {
            seq: 0,
            at: now_ms(),
            user: user.to_string(),
            action: format!("{method} {path}"),
            target: app
                .as_ref()
                .map_or_else(|| path.clone(), |a| format!("app:{a}")),
            app,
            source: peer.ip().to_string(),
            status: status.as_u16(),
            outcome: outcome.into(),
            detail: note
                .detail
                .as_deref()
                .map(|d| crate::throttle::truncate(d, 512)),
        });
    };
    // Password attempts are throttled per claimed user and per address: a blocked source
    // gets 429 before any password is checked, and a burst is audited once. Tokens cannot
    // be guessed (256 random bits), so they are never blocked, but a flood of wrong ones
    // is audited once per burst too.
    let password = header
        .as_deref()
        .is_some_and(|h| matches!(auth::parse_authorization(h), Ok(Credentials::Basic { .. })));
    let keys: Vec<String> = if password {
        crate::throttle::keys(&claimed, peer.ip()).to_vec()
    } else {
        vec![format!("tokens:{}", peer.ip())]
    };
    if password && let Err(wait) = ctx.identity.throttle.check(&keys) {
        return too_many(wait);
    }
    let who = match ctx.identity.authenticate(header.as_deref()) {
        Ok(p) => {
            if password {
                ctx.identity.throttle.succeeded(&claimed);
            }
            p
        }
        Err(reason) => {
            let resp = unauthorized(&reason);
            let failure = if header.is_some() {
                ctx.identity.throttle.failed(&keys)
            } else {
                crate::throttle::Failure::Counted
            };
            match failure {
                crate::throttle::Failure::Counted => record(
                    &claimed,
                    resp.status(),
                    &AuditNote {
                        app: None,
                        detail: Some(reason),
                    },
                ),
                crate::throttle::Failure::BurstStarted(d) => {
                    let detail = format!(
                        "{reason}; further attempts for {claimed} from {} are delayed ({} ms, doubling) and not audited one by one",
                        peer.ip(),
                        d.as_millis()
                    );
                    record_always(&ctx, &claimed, &method, &path, peer, resp.status(), detail);
                }
                crate::throttle::Failure::InBurst => {}
            }
            return resp;
        }
    };
    let needed = required_role(&method, &path);
    if who.role < needed {
        let reason = format!(
            "{} {} may not {method} {path} (needs {needed})",
            who.role, who.user
        );
        let resp = forbidden(reason.clone()).into_response();
        record(
            &who.user,
            resp.status(),
            &AuditNote {
                app: None,
                detail: Some(reason),
            },
        );
        return resp;
    }
    req.extensions_mut().insert(who.clone());
    let resp = next.run(req).await;
    let mut note = resp
        .extensions()
        .get::<AuditNote>()
        .cloned()
        .unwrap_or_default();
    if note.detail.is_none() && resp.status().as_u16() == 403 {
        note.detail = Some("denied by policy".into());
    }
    record(&who.user, resp.status(), &note);
    resp
}

/// The user name a request claims, for auditing failed logins (never the password).
fn claimed_user(header: Option<&str>) -> String {
    match header.map(auth::parse_authorization) {
        Some(Ok(Credentials::Basic { user, .. })) => user,
        Some(Ok(Credentials::Bearer(_))) => "token:unknown".into(),
        _ => "anonymous".into(),
    }
}

/// The app id in a Marathon app path, for the audit record: percent-decoded and
/// normalised as the handler sees it (`/v2/apps/prod%2Fweb/restart` is `/prod/web`).
fn app_of_path(path: &str) -> Option<String> {
    let rest = percent_decode(path.strip_prefix("/v2/apps/")?);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let end = segs
        .iter()
        .position(|s| ["restart", "tasks", "versions"].contains(s))
        .unwrap_or(segs.len());
    (end > 0).then(|| PathId::parse(&segs[..end].join("/")).to_string())
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The engine's view of the secret store: sealed values opened with the server's key.
pub struct StoreSecrets {
    /// The store holding sealed secrets.
    pub store: Arc<Store>,
    /// The sealing key.
    pub key: Arc<auth::SecretKey>,
}

impl StoreSecrets {
    /// A secret's value for a step of `pipeline`: refused when the secret's scope is set
    /// and does not name the pipeline (a secret meant for prod apps is not a build
    /// step's). Secrets stored without a scope stay usable by pipelines, as before scopes.
    pub fn resolve_for_pipeline(&self, pipeline: &str, name: &str) -> Result<String, String> {
        if let Some(Some(json)) = self.store.secret_scope(name).map_err(|e| e.to_string())? {
            let scope: auth::SecretScope = serde_json::from_str(&json).unwrap_or_default();
            scope.allows_pipeline(name, pipeline)?;
        }
        engine::SecretResolver::resolve(self, name)
    }
}

impl engine::SecretResolver for StoreSecrets {
    fn resolve(&self, name: &str) -> Result<String, String> {
        let sealed = self
            .store
            .sealed_secret(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no such secret".to_string())?;
        let plain = self.key.open(name, &sealed).map_err(|e| e.to_string())?;
        String::from_utf8(plain).map_err(|_| "the secret is not UTF-8".to_string())
    }
}
