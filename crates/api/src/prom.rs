//! Prometheus' HTTP query API over the embedded store, the surface Grafana's Prometheus
//! data source uses: `/api/v1/query`, `query_range`, `series`, `labels`,
//! `label/<name>/values`, `metadata` and `status/buildinfo`, with Prometheus' JSON shapes
//! and errors. Parameters come from the query string or, for POST, a form body.

// Helpers answer early with the ready-made error `Response`, as axum handlers do; boxing
// it would only add an allocation on the error path.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Ctx;
use crate::params::Params;

/// The version reported to clients: Grafana enables features by it.
const PROMETHEUS_VERSION: &str = "2.42.0";

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(err: &promql::Error) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json(status, promql::render_error(err))
}

fn bad(msg: String) -> Response {
    error(&promql::Error::BadData(msg))
}

/// Query-string and form parameters together (POST bodies are form-encoded).
fn params(q: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut raw = q.unwrap_or_default().to_string();
    if form && let Ok(b) = std::str::from_utf8(body) {
        if !raw.is_empty() {
            raw.push('&');
        }
        raw.push_str(b);
    }
    Params::parse(Some(&raw))
}

fn watch(ctx: &Ctx) -> Result<&std::sync::Arc<watch::Watch>, Response> {
    ctx.watch.as_ref().ok_or_else(|| {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"error","errorType":"unavailable","error":"metrics are off (--metrics off)"}"#
                .into(),
        )
    })
}

fn time_param(p: &Params, key: &str, default: i64) -> Result<i64, Response> {
    match p.get(key) {
        None | Some("") => Ok(default),
        Some(v) => promql::parse_time(v).map_err(|_| {
            bad(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp"
            ))
        }),
    }
}

fn engine() -> promql::Engine {
    promql::Engine::default()
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn query(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    let w = match watch(&ctx) {
        Ok(w) => w.clone(),
        Err(r) => return r,
    };
    let Some(expr) = p.get("query").map(str::to_string) else {
        return bad("invalid parameter \"query\": missing".into());
    };
    let t = match time_param(&p, "time", watch::now_ms()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result =
        tokio::task::spawn_blocking(move || engine().instant_query(&w.storage(), &expr, t)).await;
    match result {
        Ok(Ok(v)) => json(StatusCode::OK, promql::render_success(&v)),
        Ok(Err(e)) => error(&e),
        Err(e) => bad(format!("query failed: {e}")),
    }
}

/// `GET|POST /api/v1/query_range`.
pub(crate) async fn query_range(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    let w = match watch(&ctx) {
        Ok(w) => w.clone(),
        Err(r) => return r,
    };
    let Some(expr) = p.get("query").map(str::to_string) else {
        return bad("invalid parameter \"query\": missing".into());
    };
    let (start, end) = match (p.get("start"), p.get("end")) {
        (Some(_), Some(_)) => match (time_param(&p, "start", 0), time_param(&p, "end", 0)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(r), _) | (_, Err(r)) => return r,
        },
        _ => return bad("invalid parameter \"start\" or \"end\": missing".into()),
    };
    let step = match p.get("step").map(promql::parse_step) {
        Some(Ok(s)) if s > 0 => s,
        Some(Ok(_)) => {
            return bad(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            );
        }
        Some(Err(_)) | None => {
            return bad("invalid parameter \"step\": cannot parse it to a valid duration".into());
        }
    };
    if end < start {
        return bad(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        );
    }
    let result = tokio::task::spawn_blocking(move || {
        engine().range_query(&w.storage(), &expr, start, end, step)
    })
    .await;
    match result {
        Ok(Ok(v)) => json(StatusCode::OK, promql::render_success(&v)),
        Ok(Err(e)) => error(&e),
        Err(e) => bad(format!("query failed: {e}")),
    }
}

/// The `match[]` selectors as the store's matchers (each selector one list).
fn selectors(p: &Params) -> Result<Vec<Vec<tsdb::Matcher>>, Response> {
    p.all("match")
        .into_iter()
        .map(|m| {
            let parsed = promql::parse_metric_selector(m)
                .map_err(|e| bad(format!("invalid parameter \"match[]\": {e}")))?;
            watch::to_store_matchers(&parsed).map_err(|e| bad(e.0))
        })
        .collect()
}

fn range(p: &Params) -> Result<(i64, i64), Response> {
    Ok((
        time_param(p, "start", i64::MIN / 2)?,
        time_param(p, "end", i64::MAX / 2)?,
    ))
}

/// What the metadata endpoints look at: the store, the `match[]` selectors, the range.
type Scope<'a> = (
    &'a std::sync::Arc<watch::Watch>,
    Vec<Vec<tsdb::Matcher>>,
    i64,
    i64,
);

fn scope<'a>(ctx: &'a Ctx, p: &Params) -> Result<Scope<'a>, Response> {
    let w = watch(ctx)?;
    let sels = selectors(p)?;
    let (start, end) = range(p)?;
    Ok((w, sels, start, end))
}

/// The sorted, distinct union of `of(matchers)` over the selectors (all series when none).
fn union_over(
    sels: &[Vec<tsdb::Matcher>],
    of: impl Fn(&[tsdb::Matcher]) -> Vec<String>,
) -> Vec<String> {
    let mut out: Vec<String> = if sels.is_empty() {
        of(&[])
    } else {
        sels.iter().flat_map(|m| of(m)).collect()
    };
    out.sort();
    out.dedup();
    out
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    let (w, sels, start, end) = match scope(&ctx, &p) {
        Ok(found) => found,
        Err(r) => return r,
    };
    if sels.is_empty() {
        return bad("no match[] parameter provided".into());
    }
    let w = w.clone();
    blocking(move || {
        // Sorted and distinct across the selectors.
        let mut found = std::collections::BTreeSet::new();
        for m in &sels {
            found.extend(w.db().series(m, start, end));
        }
        let found: Vec<promql::Labels> = found
            .iter()
            .map(|l| promql::Labels::new(l.iter()))
            .collect();
        json(StatusCode::OK, promql::render_series(&found))
    })
    .await
}

/// Runs `f` (a walk over the store's index) on the blocking pool, off the runtime's threads.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"status": "error", "errorType": "internal", "error": e.to_string()})
                .to_string(),
        )
    })
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    let (w, sels, start, end) = match scope(&ctx, &p) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let w = w.clone();
    blocking(move || {
        let names = union_over(&sels, |m| w.db().label_names(m, start, end));
        json(StatusCode::OK, promql::render_string_list(&names))
    })
    .await
}

/// `GET /api/v1/label/{name}/values`.
pub(crate) async fn label_values(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    let (w, sels, start, end) = match scope(&ctx, &p) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let w = w.clone();
    blocking(move || {
        let values = union_over(&sels, |m| w.db().label_values(&name, m, start, end));
        json(StatusCode::OK, promql::render_string_list(&values))
    })
    .await
}

/// `GET /api/v1/metadata`: `{"<metric>": [{"type", "help", "unit"}]}`.
pub(crate) async fn metadata(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let w = match watch(&ctx) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let limit = p.get("limit").and_then(|l| l.parse::<usize>().ok());
    let mut data = serde_json::Map::new();
    for (name, m) in w.db().metadata(p.get("metric")) {
        if limit.is_some_and(|l| data.len() >= l) {
            break;
        }
        let kind = match m.metric_type {
            tsdb::MetricType::Counter => "counter",
            tsdb::MetricType::Gauge => "gauge",
            tsdb::MetricType::Histogram => "histogram",
            tsdb::MetricType::Summary => "summary",
            tsdb::MetricType::Unknown => "unknown",
        };
        data.insert(
            name,
            serde_json::json!([{"type": kind, "help": m.help, "unit": m.unit}]),
        );
    }
    json(
        StatusCode::OK,
        serde_json::json!({"status": "success", "data": data}).to_string(),
    )
}

/// `GET|POST /api/v1/query_exemplars`: the query must parse; Slipway keeps no exemplars,
/// so the answer is always empty (as Prometheus' for series without exemplars).
pub(crate) async fn query_exemplars(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parsed_query(q.as_deref(), &headers, &body) {
        Ok(_) => json(
            StatusCode::OK,
            r#"{"status":"success","data":[]}"#.to_string(),
        ),
        Err(r) => r,
    }
}

/// The `query` parameter (query string or form body), parsed; Prometheus' 400 when it
/// is missing or does not parse.
fn parsed_query(
    q: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<promql::Expr, Response> {
    let p = params(q, headers, body);
    let Some(query) = p.get("query") else {
        return Err(bad("invalid parameter \"query\": missing".into()));
    };
    promql::parse(query).map_err(|e| error(&e))
}

/// `GET|POST /api/v1/format_query`: the query as PromQL prints it back.
pub(crate) async fn format_query(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parsed_query(q.as_deref(), &headers, &body) {
        Ok(expr) => json(
            StatusCode::OK,
            serde_json::json!({"status": "success", "data": expr.to_string()}).to_string(),
        ),
        Err(r) => r,
    }
}

/// `GET /api/v1/rules` and `/api/v1/alerts`: Slipway evaluates no recording or alerting
/// rules; the empty lists in Prometheus' shapes keep Grafana's rule and alert views
/// working.
pub(crate) async fn rules() -> Response {
    json(
        StatusCode::OK,
        r#"{"status":"success","data":{"groups":[]}}"#.to_string(),
    )
}

/// `GET /api/v1/alerts`: see [`rules`].
pub(crate) async fn alerts() -> Response {
    json(
        StatusCode::OK,
        r#"{"status":"success","data":{"alerts":[]}}"#.to_string(),
    )
}

/// `GET /api/v1/status/buildinfo`.
pub(crate) async fn buildinfo() -> Response {
    json(
        StatusCode::OK,
        serde_json::json!({"status": "success", "data": {
            "version": PROMETHEUS_VERSION,
            "revision": concat!("slipway-", env!("CARGO_PKG_VERSION")),
            "branch": "", "buildUser": "slipway", "buildDate": "", "goVersion": "",
        }})
        .to_string(),
    )
}
