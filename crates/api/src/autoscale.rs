//! `/api/v1/autoscalers`: register, show, list and delete autoscaling policies, and read an
//! app's decisions; and [`EngineScaler`], the controller's way to scale: the `autoscaler`
//! principal under the environment policies and the admission checks, audited with the
//! decision's summary.
//!
//! The autoscaler is enabled per environment by an admin: it acts as the principal
//! `autoscaler` with the viewer role, so it may scale an app only where the environment's
//! `deploy` list names it (`"user:autoscaler"` in `PUT /api/v1/policies`). Quotas, the
//! instance limit and min/max hold as for any change.

use crate::identity::AuditNote;
use crate::{ApiError, Ctx};
use auth::Principal;
use autoscale::Policy;
use autoscale::controller::{PolicySource, Scaler};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use model::{DefinitionError, PathId, Timestamp};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The principal the autoscaler acts as: a viewer that environments enable by name.
pub fn principal() -> Principal {
    Principal {
        user: autoscale::controller::PRINCIPAL.to_string(),
        role: auth::Role::Viewer,
    }
}

/// Scales through the engine as the `autoscaler` principal, and audits every attempt.
pub struct EngineScaler {
    /// The engine.
    pub engine: engine::Engine,
    /// Policies and the audit log.
    pub identity: Arc<crate::Identity>,
    /// Secret scopes (for the admission gate) and the audit log.
    pub store: Arc<store::Store>,
    /// Settings of the admission checks.
    pub admission: Arc<crate::admission::AdmissionConfig>,
}

impl Scaler for EngineScaler {
    fn scale(&self, app: &PathId, instances: u32, summary: &str) -> Result<Timestamp, String> {
        let who = principal();
        let labels = self.engine.app_labels(app).unwrap_or_default();
        let result = self
            .identity
            .check_deploy(&who, app, &labels)
            .and_then(|()| {
                let gate = crate::admission::Gate {
                    policies: self.identity.policies(),
                    who: &who,
                    config: &self.admission,
                    store: &self.store,
                };
                self.engine
                    .update_app(app, engine::AppUpdate::Scale(instances), false, true, &gate)
                    .map_err(ApiError::from)
            });
        let (status, outcome, detail) = match &result {
            Ok(_) => (200, "allowed", summary.to_string()),
            Err(e) => (
                e.status.as_u16(),
                if e.status == StatusCode::FORBIDDEN {
                    "denied"
                } else {
                    "failed"
                },
                format!(
                    "{} ({summary})",
                    e.body["message"].as_str().unwrap_or("refused")
                ),
            ),
        };
        let _ = self.store.append_audit(&store::AuditRow {
            seq: 0,
            at: Timestamp::now().millis(),
            user: who.user.clone(),
            action: format!("scale to {instances}"),
            target: format!("app:{app}"),
            app: Some(app.to_string()),
            source: "autoscaler".into(),
            status,
            outcome: outcome.into(),
            detail: Some(detail),
        });
        match result {
            Ok(u) => Ok(u.deployment.version),
            Err(e) => Err(e.body["message"].as_str().unwrap_or("refused").to_string()),
        }
    }
}

/// The controller for `slipway up`, scaling through [`EngineScaler`].
pub fn controller(
    engine: &engine::Engine,
    store: &Arc<store::Store>,
    identity: &Arc<crate::Identity>,
    admission: &Arc<crate::admission::AdmissionConfig>,
    watch: &Arc<watch::Watch>,
) -> autoscale::controller::Controller {
    let scaler = EngineScaler {
        engine: engine.clone(),
        identity: identity.clone(),
        store: store.clone(),
        admission: admission.clone(),
    };
    autoscale::controller::Controller::new(
        engine.clone(),
        watch.clone(),
        store.clone(),
        Arc::new(scaler),
    )
}

fn promql_check(q: &str) -> Result<(), String> {
    promql::parse(q).map(|_| ()).map_err(|e| e.to_string())
}

/// Whether the autoscaler may scale the app where it is, and if not, why.
fn enabled(ctx: &Ctx, id: &PathId) -> (bool, Option<String>) {
    let labels = ctx.engine.app_labels(id).unwrap_or_default();
    match ctx.identity.check_deploy(&principal(), id, &labels) {
        Ok(()) => (true, None),
        Err(e) => (
            false,
            Some(format!(
                "{}; an admin enables the autoscaler by adding \"user:autoscaler\" to the environment's deploy list",
                e.body["message"].as_str().unwrap_or("not allowed")
            )),
        ),
    }
}

/// The JSON of one app's autoscaler.
fn view(ctx: &Ctx, id: &PathId, policy: &Policy, source: PolicySource) -> Value {
    let (ok, why) = enabled(ctx, id);
    let last = ctx
        .store
        .autoscale_decisions(&id.to_string(), 1, false)
        .ok()
        .and_then(|d| d.into_iter().next())
        .and_then(|d| serde_json::from_str::<Value>(&d.decision).ok());
    let instances = ctx
        .engine
        .read(|st| st.apps.get(id).map(|a| a.def.instances));
    let mut v = json!({
        "appId": id.to_string(),
        "source": source.as_str(),
        "policy": policy,
        "instances": instances,
        "enabled": ok,
        "lastDecision": last,
    });
    if let Some(why) = why {
        v["disabledReason"] = json!(why);
    }
    v
}

fn note(resp: &mut Response, id: &PathId) {
    resp.extensions_mut().insert(AuditNote {
        app: Some(id.to_string()),
        detail: None,
    });
}

/// `GET /api/v1/autoscalers`.
pub(crate) async fn list(State(ctx): State<Ctx>) -> Response {
    let all = autoscale::controller::policies(&ctx.store, &ctx.engine);
    let out: Vec<Value> = all.iter().map(|(id, p, s)| view(&ctx, id, p, *s)).collect();
    Json(json!({ "autoscalers": out })).into_response()
}

/// `GET|PUT|DELETE /api/v1/autoscalers/{app id}` and `GET …/{app id}/decisions`.
pub(crate) async fn resource(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    method: axum::http::Method,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let rest = rest.trim_end_matches('/');
    if let Some(app) = rest.strip_suffix("/decisions") {
        if method != axum::http::Method::GET {
            return Err(ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "decisions are read with GET",
            ));
        }
        return decisions(&ctx, &PathId::parse(app), &q);
    }
    let id = PathId::parse(rest);
    let mut resp = match method {
        axum::http::Method::GET => show(&ctx, &id)?,
        axum::http::Method::PUT => put(&ctx, &who, &id, &body)?,
        axum::http::Method::DELETE => delete(&ctx, &who, &id)?,
        _ => {
            return Err(ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET, PUT or DELETE",
            ));
        }
    };
    note(&mut resp, &id);
    Ok(resp)
}

fn show(ctx: &Ctx, id: &PathId) -> Result<Response, ApiError> {
    autoscale::controller::policies(&ctx.store, &ctx.engine)
        .into_iter()
        .find(|(a, _, _)| a == id)
        .map(|(a, p, s)| Json(view(ctx, &a, &p, s)).into_response())
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!("App '{id}' has no autoscaler"),
            )
        })
}

fn put(ctx: &Ctx, who: &Principal, id: &PathId, body: &[u8]) -> Result<Response, ApiError> {
    let parsed = Policy::from_json(body, &promql_check);
    let labels = ctx.engine.app_labels(id);
    // Every problem at once: the policy's and a missing app's.
    let mut fields = match &parsed {
        Err(autoscale::AutoscaleError::Malformed(m)) => {
            return Err(DefinitionError::Malformed(m.clone()).into());
        }
        Err(e) => e.fields().to_vec(),
        Ok(_) => Vec::new(),
    };
    if labels.is_none() {
        fields.insert(
            0,
            model::FieldError {
                path: "/appId".into(),
                errors: vec![format!("App '{id}' does not exist")],
            },
        );
    }
    if !fields.is_empty() {
        return Err(DefinitionError::Invalid(fields).into());
    }
    let (Ok(policy), Some(labels)) = (parsed, labels) else {
        return Err(ApiError::message(StatusCode::BAD_REQUEST, "invalid policy"));
    };
    // Who may change the app may say how it scales.
    ctx.identity.check_deploy(who, id, &labels)?;
    let json = serde_json::to_string(&policy)
        .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    ctx.store.put_autoscaler(&store::AutoscalerRow {
        app_id: id.to_string(),
        policy: json,
        created_by: who.user.clone(),
        updated_at: Timestamp::now().millis(),
    })?;
    Ok(Json(view(ctx, id, &policy, PolicySource::Api)).into_response())
}

fn delete(ctx: &Ctx, who: &Principal, id: &PathId) -> Result<Response, ApiError> {
    let labels = ctx.engine.app_labels(id).unwrap_or_default();
    ctx.identity.check_deploy(who, id, &labels)?;
    if ctx.store.delete_autoscaler(&id.to_string())? {
        return Ok(Json(json!({"appId": id.to_string(), "deleted": true})).into_response());
    }
    let why = if Policy::from_labels(&labels).ok().flatten().is_some() {
        format!(
            "App '{id}' has no registered autoscaler; its policy comes from its SLIPWAY_AUTOSCALE_* labels (change the app definition)"
        )
    } else {
        format!("App '{id}' has no autoscaler")
    };
    Err(ApiError::message(StatusCode::NOT_FOUND, why))
}

/// `GET /api/v1/autoscalers/{app id}/decisions?limit=N&changes=true`, newest first.
fn decisions(ctx: &Ctx, id: &PathId, q: &HashMap<String, String>) -> Result<Response, ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=2000).contains(n))
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::BAD_REQUEST,
                    "limit must be a number from 1 to 2000",
                )
            })?,
    };
    let changes = q.get("changes").is_some_and(|v| v == "true" || v == "1");
    let rows = ctx
        .store
        .autoscale_decisions(&id.to_string(), limit, changes)?;
    let out: Vec<Value> = rows
        .into_iter()
        .filter_map(|r| {
            let mut v: Value = serde_json::from_str(&r.decision).ok()?;
            v["seq"] = json!(r.seq);
            Some(v)
        })
        .collect();
    Ok(Json(json!({"appId": id.to_string(), "decisions": out})).into_response())
}
