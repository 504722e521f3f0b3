//! Native identity endpoints: `whoami`, users, API tokens, environment policies, the audit
//! log and secrets. Secret values can be written but are never read back.

use crate::Ctx;
use crate::error::ApiError;
use crate::identity::forbidden;
use crate::params::Params;
use auth::{PolicySet, Principal, Role};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{AuditQuery, TokenRow, UserRow};

type ApiResult = Result<Response, ApiError>;

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, msg)
}

/// The request body as `T`; malformed JSON is a 400 with Marathon's body.
pub(crate) fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"message": "Invalid JSON", "details": e.to_string()}),
    })
}

/// A time in ms as Marathon's timestamp, or `null`.
pub(crate) fn ts(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| json!(Timestamp(m)))
}

/// `GET /api/v1/whoami`.
pub(crate) async fn whoami(Extension(who): Extension<Principal>) -> Response {
    axum::Json(json!({"user": who.user, "role": who.role})).into_response()
}

fn user_json(u: &UserRow) -> Value {
    json!({"name": u.name, "role": u.role, "createdAt": Timestamp(u.created_at), "disabled": u.disabled,
           "hasPassword": u.password_hash.is_some()})
}

/// `GET /api/v1/users` (admin).
pub(crate) async fn list_users(State(ctx): State<Ctx>) -> ApiResult {
    let users = ctx.store.users()?;
    Ok(
        axum::Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
    /// The current password, needed when a non-admin changes their own.
    #[serde(rename = "oldPassword")]
    old_password: Option<String>,
    disabled: Option<bool>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// `POST /api/v1/users` (admin): `{"name","role","password"?}`.
pub(crate) async fn create_user(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    if who.role != Role::Admin {
        return Err(forbidden("only admins create users"));
    }
    let b: UserBody = json_body(&body)?;
    let name = b.name.ok_or_else(|| bad("name is required"))?;
    if !valid_name(&name) {
        return Err(bad(
            "name must be 1-64 characters of letters, digits, '.', '_', '-', '@'",
        ));
    }
    if ctx.store.user(&name)?.is_some() {
        return Err(ApiError::message(
            StatusCode::CONFLICT,
            format!("user '{name}' already exists"),
        ));
    }
    let role: Role = b
        .role
        .as_deref()
        .unwrap_or("viewer")
        .parse()
        .map_err(|_| bad("role must be viewer, developer, deployer or admin"))?;
    let password_hash = match b.password {
        Some(pw) => Some(auth::hash_password(&pw).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let row = UserRow {
        name,
        password_hash,
        role: role.to_string(),
        created_at: now_ms(),
        disabled: b.disabled.unwrap_or(false),
    };
    ctx.store.put_user(&row)?;
    Ok((StatusCode::CREATED, axum::Json(user_json(&row))).into_response())
}

/// `PUT /api/v1/users/{name}`: admins change anything; users may change their own password.
pub(crate) async fn update_user(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    if who.role != Role::Admin && who.user != name {
        return Err(forbidden("only admins change other users"));
    }
    let b: UserBody = json_body(&body)?;
    let own_password_only =
        who.user == name && b.role.is_none() && b.disabled.is_none() && b.name.is_none();
    if who.role != Role::Admin && !own_password_only {
        return Err(forbidden("only admins change other users, roles or states"));
    }
    let mut row = ctx.store.user(&name)?.ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("user '{name}' does not exist"),
        )
    })?;
    if let Some(role) = b.role {
        let role: Role = role
            .parse()
            .map_err(|_| bad("role must be viewer, developer, deployer or admin"))?;
        row.role = role.to_string();
    }
    if let Some(pw) = b.password {
        // A stolen session or token must not be enough to take the account over.
        if who.role != Role::Admin {
            let old = b.old_password.as_deref().unwrap_or_default();
            if !auth::verify_login(old, row.password_hash.as_deref()) {
                return Err(forbidden(
                    "changing your own password needs your current one (oldPassword)",
                ));
            }
        }
        row.password_hash = Some(auth::hash_password(&pw).map_err(|e| bad(e.to_string()))?);
    }
    if let Some(d) = b.disabled {
        row.disabled = d;
    }
    ctx.store.put_user(&row)?;
    ctx.identity.forget_logins();
    Ok(axum::Json(user_json(&row)).into_response())
}

/// `DELETE /api/v1/users/{name}` (admin): also revokes the user's tokens.
pub(crate) async fn delete_user(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    if who.role != Role::Admin {
        return Err(forbidden("only admins delete users"));
    }
    if !ctx.store.delete_user(&name, now_ms())? {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("user '{name}' does not exist"),
        ));
    }
    ctx.identity.forget_logins();
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn token_json(t: &TokenRow) -> Value {
    json!({"id": t.id, "user": t.user, "name": t.name, "createdAt": Timestamp(t.created_at),
           "expiresAt": ts(t.expires_at), "revokedAt": ts(t.revoked_at), "lastUsedAt": ts(t.last_used_at)})
}

/// `GET /api/v1/tokens[?all=true]`: own tokens; admins may list all.
pub(crate) async fn list_tokens(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let all = Params::parse(q.as_deref()).flag("all", false) && who.role == Role::Admin;
    let tokens = ctx.store.tokens(if all { None } else { Some(&who.user) })?;
    Ok(
        axum::Json(json!({"tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenBody {
    name: Option<String>,
    expires_in_days: Option<f64>,
    user: Option<String>,
}

/// `POST /api/v1/tokens`: a new token for the caller (admins: for any user). The token is
/// in this response only; the server keeps its hash.
pub(crate) async fn create_token(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    let b: TokenBody = if body.is_empty() {
        TokenBody {
            name: None,
            expires_in_days: None,
            user: None,
        }
    } else {
        json_body(&body)?
    };
    let user = b.user.unwrap_or_else(|| who.user.clone());
    if user != who.user && who.role != Role::Admin {
        return Err(forbidden("only admins create tokens for other users"));
    }
    if ctx.store.user(&user)?.is_none() {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("user '{user}' does not exist"),
        ));
    }
    let days = b.expires_in_days.unwrap_or(90.0);
    if !(days > 0.0 && days <= 366.0) {
        return Err(bad(
            "expiresInDays must be more than 0 and at most 366 (tokens are renewed, not kept forever)",
        ));
    }
    let now = now_ms();
    let token = auth::new_token();
    let row = TokenRow {
        id: auth::new_token().chars().skip(4).take(16).collect(),
        user,
        name: b.name.unwrap_or_else(|| "api".into()),
        created_at: now,
        expires_at: Some(now + (days * 86_400_000.0) as i64),
        revoked_at: None,
        last_used_at: None,
    };
    ctx.store.insert_token(&row, &auth::token_hash(&token))?;
    let mut v = token_json(&row);
    v["token"] = json!(token);
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens (admins: any).
pub(crate) async fn revoke_token(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let owned = ctx.store.tokens(None)?.into_iter().find(|t| t.id == id);
    let Some(t) = owned else {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("token '{id}' does not exist"),
        ));
    };
    if t.user != who.user && who.role != Role::Admin {
        return Err(forbidden("only admins revoke other users' tokens"));
    }
    ctx.store.revoke_token(&id, now_ms())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/policies`.
pub(crate) async fn get_policies(State(ctx): State<Ctx>) -> Response {
    axum::Json(ctx.identity.policies()).into_response()
}

/// `PUT /api/v1/policies` (admin): replaces the whole policy set after validation.
pub(crate) async fn put_policies(State(ctx): State<Ctx>, body: Bytes) -> ApiResult {
    let set: PolicySet = json_body(&body)?;
    ctx.identity.set_policies(set).map_err(|errs| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"message": "Object is not valid", "details": [{"path": "/", "errors": errs}]}),
    })?;
    Ok(axum::Json(ctx.identity.policies()).into_response())
}

/// `GET /api/v1/audit?user=&app=&since=&until=&before=&limit=`: newest first.
pub(crate) async fn audit(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        p.get(k)
            .map(|v| {
                Timestamp::parse(v)
                    .map(|t| t.millis())
                    .or_else(|| v.parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::message(
                            StatusCode::BAD_REQUEST,
                            format!("{k} must be a timestamp (2026-11-28T10:00:00Z) or epoch ms"),
                        )
                    })
            })
            .transpose()
    };
    let query = AuditQuery {
        user: p.get("user").map(str::to_string),
        app: p.get("app").map(|a| model::PathId::parse(a).to_string()),
        since: time("since")?,
        until: time("until")?,
        before: p.get("before").and_then(|b| b.parse().ok()),
        limit: p
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(100)
            .min(1000),
    };
    let rows = ctx.store.audit(&query)?;
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"seq": r.seq, "at": Timestamp(r.at), "user": r.user, "action": r.action, "target": r.target,
                   "app": r.app, "source": r.source, "status": r.status, "outcome": r.outcome, "detail": r.detail})
        })
        .collect();
    Ok(axum::Json(json!({"records": records})).into_response())
}

/// `GET /api/v1/secrets`: names and metadata, never values.
pub(crate) async fn list_secrets(State(ctx): State<Ctx>) -> ApiResult {
    let secrets = ctx.store.secrets()?;
    let v: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let scope: Value = s
                .scope
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or(Value::Null);
            json!({"name": s.name, "createdAt": Timestamp(s.created_at), "updatedAt": Timestamp(s.updated_at), "updatedBy": s.updated_by, "scope": scope})
        })
        .collect();
    Ok(axum::Json(json!({"secrets": v})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    /// The value; may be left out to change only where an existing secret may be used.
    #[serde(default)]
    value: Option<String>,
    /// Where it may be used (replaces the stored scope when given).
    #[serde(default)]
    environments: Option<Vec<String>>,
    #[serde(default)]
    apps: Option<Vec<String>>,
    #[serde(default)]
    pipelines: Option<Vec<String>>,
}

/// `PUT /api/v1/secrets/{name}` `{"value": "..."}`: stores the value sealed; 204.
pub(crate) async fn put_secret(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !valid_name(&name) {
        return Err(bad(
            "secret names are 1-64 characters of letters, digits, '.', '_', '-', '@'",
        ));
    }
    // The body holds the secret: never echo it, not even in a parse error.
    let b: SecretBody = serde_json::from_slice(&body).map_err(|_| {
        ApiError::message(
            StatusCode::BAD_REQUEST,
            "expected {\"value\": \"...\", \"environments\": [...], \"apps\": [...], \"pipelines\": [...]}",
        )
    })?;
    let scoped = b.environments.is_some() || b.apps.is_some() || b.pipelines.is_some();
    let scope = scoped.then(|| auth::SecretScope {
        environments: b.environments.unwrap_or_default(),
        apps: b.apps.unwrap_or_default(),
        pipelines: b.pipelines.unwrap_or_default(),
    });
    if let Some(scope) = &scope {
        let policies = ctx.identity.policies();
        let unknown: Vec<&String> = scope
            .environments
            .iter()
            .filter(|e| policies.environment(e).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown environments {unknown:?} (the policy has: {})", {
                    let names: Vec<&str> = policies
                        .environments
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect();
                    names.join(", ")
                }),
            ));
        }
    }
    let scope_json = scope.map(|s| serde_json::to_string(&s).unwrap_or_default());
    let sealed = match (&b.value, ctx.store.sealed_secret(&name)?) {
        (Some(value), _) => ctx
            .secret_key
            .seal(&name, value.as_bytes())
            .map_err(|e| bad(e.to_string()))?,
        (None, Some(existing)) if scope_json.is_some() => existing,
        (None, _) => return Err(bad("expected {\"value\": \"...\"}")),
    };
    ctx.store
        .put_secret(&name, &sealed, now_ms(), &who.user, scope_json.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/v1/secrets/{name}`.
pub(crate) async fn delete_secret(State(ctx): State<Ctx>, Path(name): Path<String>) -> ApiResult {
    if !ctx.store.delete_secret(&name)? {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("secret '{name}' does not exist"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
