//! Slipway's web console: server-rendered pages (maud) for the whole loop — overview,
//! pipelines and runs, apps, deployments, audit and admin — served by `slipway up` under
//! `/` and `/ui/`, with embedded assets, sign-in sessions, CSRF tokens and live updates
//! over SSE. Every read and action goes through the API's own router as the signed-in user
//! (see [`backend`]), so policy checks and the audit log are the API's.

mod backend;
mod chart;
mod form;
mod layout;
mod pages;
mod session;

pub use session::{Session, Sessions};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use form::Form;
use layout::Nav;
use maud::{Markup, html};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

/// The console's shared state; cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: api::Ctx,
    /// The API's router: the console's only way to read and change things.
    api: Router,
    sessions: Sessions,
    /// Cookies get `Secure` (the server sits behind TLS).
    secure: bool,
    /// The console's own router, for live updates that re-render a page.
    me: OnceLock<Router>,
}

/// Who is looking: their session and where the request came from.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The session (an anonymous admin one with `--auth none`).
    pub session: Session,
    /// The session's id.
    pub session_id: String,
    /// The request's `Host`.
    pub host: String,
    /// The request's `Origin`, if sent.
    pub origin: Option<String>,
    /// The browser's address.
    pub peer: SocketAddr,
}

impl Console {
    /// A console over the server's context; `secure` marks cookies `Secure`.
    pub fn new(ctx: api::Ctx, secure: bool) -> Console {
        let api = api::router(ctx.clone());
        let sessions = Sessions::at_rest(ctx.store.clone(), ctx.secret_key.clone());
        Console {
            inner: Arc::new(Inner {
                ctx,
                api,
                sessions,
                secure,
                me: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn ctx(&self) -> &api::Ctx {
        &self.inner.ctx
    }

    /// A request to the API as `who`.
    pub(crate) async fn api(
        &self,
        who: &Viewer,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> backend::Reply {
        backend::call(&self.inner.api, who, method, path, body).await
    }

    /// A GET to the API as `who`, read as `T` (only the fields it names are built).
    pub(crate) async fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        who: &Viewer,
        path: &str,
    ) -> Result<T, String> {
        backend::get_typed(&self.inner.api, who, path).await
    }

    /// A GET to the API as `who`: the JSON, or the API's message.
    pub(crate) async fn get(&self, who: &Viewer, path: &str) -> Result<serde_json::Value, String> {
        self.api(who, Method::GET, path, None).await.json()
    }

    /// The form in `body` when its CSRF token is the session's; otherwise a page saying
    /// the form was stale (nothing changes).
    pub(crate) fn form(&self, who: &Viewer, body: &[u8]) -> Result<Form, Box<Response>> {
        let form = Form::parse(&String::from_utf8_lossy(body));
        if session::csrf_ok(&who.session.csrf, form.get("csrf")) {
            Ok(form)
        } else {
            Err(Box::new(error_page(
                Some(who),
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form's security token is missing or stale (it was opened in another session). Nothing was changed: go back, reload the page and try again.",
            )))
        }
    }
}

/// The console's router for [`api::serve_with`]: `/` and everything under `/ui/`.
pub fn router(ctx: api::Ctx) -> Router {
    let console = Console::new(ctx, false);
    let r = routes(console.clone());
    let _ = console.inner.me.set(r.clone());
    r
}

fn routes(console: Console) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/console.js", get(js))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/live", get(pages::live::stream))
        .route("/ui/pipelines", get(pages::pipelines::list))
        .route("/ui/pipelines/{name}", get(pages::pipelines::pipeline))
        .route("/ui/pipelines/{name}/run", post(pages::pipelines::start))
        .route("/ui/runs/{id}", get(pages::runs::page))
        .route("/ui/runs/{id}/{action}", post(pages::runs::act))
        .route(
            "/ui/apps/{*id}",
            get(pages::apps::page).post(pages::apps::act),
        )
        .route("/ui/deployments", get(pages::deployments::page))
        .route(
            "/ui/deployments/{id}/cancel",
            post(pages::deployments::cancel),
        )
        .route("/ui/metrics", get(pages::metrics::page))
        .route("/ui/audit", get(pages::audit::page))
        .route("/ui/admin", get(pages::admin::page))
        .route("/ui/admin/{what}", post(pages::admin::act))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            authenticate,
        ))
        .with_state(console)
}

async fn not_found(req: Request) -> Response {
    let who = req.extensions().get::<Viewer>().cloned();
    error_page(
        who.as_ref(),
        StatusCode::NOT_FOUND,
        "Not found",
        &format!("There is no page at {}.", req.uri().path()),
    )
}

/// A page with a heading and one message.
pub(crate) fn error_page(
    who: Option<&Viewer>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let body = html! {
        (layout::notice("bad", text))
        p { a href="/ui/" { "Back to the overview" } }
    };
    (status, render(layout::page(who, Nav::None, title, body))).into_response()
}

/// A rendered page with the console's security headers.
pub(crate) fn render(markup: Markup) -> Response {
    let mut resp = Html(markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// 303 to `to` (after a form).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(text: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        text,
    )
        .into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether `host` (a `Host` header) names loopback.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// [`find_session`], and cookies marked `Secure` when the request came through a
/// TLS-terminating proxy (`X-Forwarded-Proto: https`).
async fn authenticate(state: State<Console>, req: Request, next: Next) -> Response {
    let https = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut resp = find_session(state, req, next).await;
    if https {
        let all: Vec<HeaderValue> = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        resp.headers_mut().remove(header::SET_COOKIE);
        for v in all {
            let text = v.to_str().unwrap_or_default();
            let secured = if text.contains("; Secure") {
                text.to_string()
            } else {
                format!("{text}; Secure")
            };
            if let Ok(v) = HeaderValue::from_str(&secured) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

/// Finds the session (or, with `--auth none` on loopback, makes an anonymous admin one),
/// sends strangers to the sign-in page, and hands pages a [`Viewer`].
async fn find_session(State(c): State<Console>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/ui/assets/") || path == "/" || path == "/ui" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = header_str(headers, header::HOST).unwrap_or_default();
    let origin = header_str(headers, header::ORIGIN);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
    let sid = header_str(headers, header::COOKIE)
        .and_then(|h| session::cookie(&h, session::COOKIE).map(str::to_string));
    let found = sid
        .as_deref()
        .and_then(|id| c.inner.sessions.get(id).map(|s| (id.to_string(), s)));
    let mut fresh = None;
    let (session_id, session) = match found {
        Some(f) => f,
        None if c.ctx().identity.mode() == api::AuthMode::Off => {
            if !loopback_host(&host) {
                return error_page(
                    None,
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "With --auth none the console is served to loopback host names only.",
                );
            }
            let id = c
                .inner
                .sessions
                .create("anonymous", auth::Role::Admin, None, None);
            fresh = Some(id.clone());
            let s = c.inner.sessions.get(&id).expect("just created");
            (id, s)
        }
        None if path == "/ui/login" => return next.run(req).await,
        None => {
            if req.method() == Method::GET {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map_or("/ui/", |p| p.as_str())
                    .to_string();
                return see_other(&format!("/ui/login?next={}", form::encode(&pq)));
            }
            return see_other("/ui/login");
        }
    };
    req.extensions_mut().insert(Viewer {
        session,
        session_id,
        host,
        origin,
        peer,
    });
    let mut resp = next.run(req).await;
    if let Some(id) = fresh
        && let Ok(v) =
            HeaderValue::from_str(&session::set_cookie(session::COOKIE, &id, c.inner.secure))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Where to go after signing in: a console path, else the overview.
fn next_path(q: &Form) -> String {
    q.get("next")
        .filter(|n| n.starts_with("/ui/") && !n.starts_with("/ui//") && !n.contains('\\'))
        .unwrap_or("/ui/")
        .to_string()
}

fn login_page(csrf: &str, next: &str, user: &str, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { (layout::notice("bad", e)) }
        form.card.login method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="user" { "User name" }
            input #user name="user" type="text" autocomplete="username" required value=(user);
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            button.primary type="submit" { "Sign in" }
        }
    };
    layout::page(None, Nav::None, "Sign in", body)
}

async fn login_form(State(c): State<Console>, req: Request) -> Response {
    if req.extensions().get::<Viewer>().is_some() {
        return see_other("/ui/");
    }
    let q = Form::parse(req.uri().query().unwrap_or_default());
    let token = auth::new_token();
    let mut resp = render(login_page(&token, &next_path(&q), "", None));
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        session::LOGIN_COOKIE,
        &token,
        c.inner.secure,
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Signs in: the password is checked by the API itself (`/api/v1/whoami` with Basic
/// credentials, so failed attempts are throttled and audited like the API's), then a
/// session token is created for the user (`POST /api/v1/tokens`, audited as the sign-in).
async fn login(State(c): State<Console>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 10).await else {
        return error_page(
            None,
            StatusCode::BAD_REQUEST,
            "Sign in",
            "The form is too large.",
        );
    };
    let f = Form::parse(&String::from_utf8_lossy(&body));
    let next = next_path(&f);
    let user = f.text("user").unwrap_or_default().to_string();
    let password = f.get("password").unwrap_or_default().to_string();
    let expected = header_str(&parts.headers, header::COOKIE)
        .and_then(|h| session::cookie(&h, session::LOGIN_COOKIE).map(str::to_string))
        .unwrap_or_default();
    let fail = |status: StatusCode, msg: &str| {
        let token = auth::new_token();
        let mut resp =
            (status, render(login_page(&token, &next, &user, Some(msg)))).into_response();
        if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
            session::LOGIN_COOKIE,
            &token,
            c.inner.secure,
        )) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    };
    if !session::csrf_ok(&expected, f.get("csrf")) {
        return fail(
            StatusCode::FORBIDDEN,
            "The sign-in form had expired. Please sign in again.",
        );
    }
    if user.is_empty() || password.is_empty() {
        return fail(
            StatusCode::BAD_REQUEST,
            "Enter your user name and password.",
        );
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    );
    let host = header_str(&parts.headers, header::HOST).unwrap_or_default();
    let request = |method: Method, path: &str, body: Body| {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &host)
            .header(header::AUTHORIZATION, &basic)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap_or_default();
        r.extensions_mut().insert(ConnectInfo(peer));
        r
    };
    let who = backend::send(
        &c.inner.api,
        request(Method::GET, "/api/v1/whoami", Body::empty()),
    )
    .await;
    if who.status == StatusCode::TOO_MANY_REQUESTS {
        return fail(who.status, &who.message());
    }
    if !who.ok() {
        return fail(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    }
    let role: auth::Role = match who.body["role"].as_str().and_then(|r| r.parse().ok()) {
        Some(r) => r,
        None => return fail(StatusCode::FORBIDDEN, "Your account has an unknown role."),
    };
    let name = who.body["user"].as_str().unwrap_or(&user).to_string();
    let made = backend::send(
        &c.inner.api,
        request(
            Method::POST,
            "/api/v1/tokens",
            Body::from(r#"{"name":"console session","expiresInDays":0.5}"#),
        ),
    )
    .await;
    let (Some(token), Some(id)) = (made.body["token"].as_str(), made.body["id"].as_str()) else {
        return fail(made.status, &made.message());
    };
    let sid = c
        .inner
        .sessions
        .create(&name, role, Some(token.to_string()), Some(id.to_string()));
    let mut resp = see_other(&next);
    for cookie in [
        session::set_cookie(session::COOKIE, &sid, c.inner.secure),
        session::set_cookie(session::LOGIN_COOKIE, "", c.inner.secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Signs out: revokes the session's token and forgets the session.
async fn logout(
    State(c): State<Console>,
    axum::Extension(who): axum::Extension<Viewer>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(resp) = c.form(&who, &body) {
        return *resp;
    }
    if let Some(id) = &who.session.token_id {
        let _ = c
            .api(
                &who,
                Method::DELETE,
                &format!("/api/v1/tokens/{}", form::encode(id)),
                None,
            )
            .await;
    }
    c.inner.sessions.remove(&who.session_id);
    let mut resp = see_other("/ui/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(session::COOKIE, "", c.inner.secure))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Standard base64 (for a Basic header).
fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
