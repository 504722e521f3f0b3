//! One app: tasks with host:port, state, health and the last failure; the log tail of a
//! task; versions with one-click rollback; scale and restart. Environments whose policy
//! asks for confirmation (prod) get a confirmation page first.

use super::{app_health, app_href, app_image, arr, n, s};
use crate::form::{Form, encode};
use crate::layout::{self, Nav, badge, csrf, live};
use crate::{Console, Viewer, render, see_other};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The app's id from the console path (`prod/web` → `/prod/web`).
fn app_id(rest: &str) -> String {
    model::PathId::parse(rest.trim_end_matches('/')).to_string()
}

/// The API path of an app (`/v2/apps/prod/web`).
fn api_path(id: &str) -> String {
    let segs: Vec<String> = id.trim_start_matches('/').split('/').map(encode).collect();
    format!("/v2/apps/{}", segs.join("/"))
}

fn labels_of(app: &Value) -> BTreeMap<String, String> {
    app["labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `who` may change the app (the API checks again), and whether its environment
/// asks for confirmation.
fn rights(c: &Console, who: &Viewer, app: &Value) -> (bool, bool) {
    let id = model::PathId::parse(s(app, "id"));
    let labels = labels_of(app);
    let policies = c.ctx().identity.policies();
    let principal = auth::Principal::new(who.session.user.clone(), who.session.role);
    let may = who.session.role >= auth::Role::Developer
        && policies
            .authorize(
                &principal,
                &auth::Action::Deploy {
                    app: id.clone(),
                    labels: labels.clone(),
                },
            )
            .is_allowed();
    let confirm = policies
        .environments_for(&id, &labels)
        .iter()
        .any(|p| p.confirm);
    (may, confirm)
}

/// The app's autoscaler: its policy, whether it may act, and its latest decisions.
async fn autoscaler(c: &Console, who: &Viewer, id: &str) -> Option<Markup> {
    let a = c.get(who, &format!("/api/v1/autoscalers{id}")).await.ok()?;
    let decisions = c
        .get(who, &format!("/api/v1/autoscalers{id}/decisions?limit=10"))
        .await
        .unwrap_or_default();
    let p = &a["policy"];
    let metrics: Vec<String> = arr(p, "metrics")
        .iter()
        .map(|m| format!("{} {}", s(m, "type"), m["target"]))
        .collect();
    Some(html! {
        p {
            (p["min"]) "–" (p["max"]) " instances on " (metrics.join(", "))
            " (mode " (s(p, "mode")) ", from " (s(&a, "source")) ")"
        }
        @if a["enabled"] != true {
            (layout::notice("bad", &format!("Not enabled: {}", s(&a, "disabledReason"))))
        }
        @let rows = arr(&decisions, "decisions");
        @if rows.is_empty() { p.empty { "No decision yet." } }
        @else {
            table.list {
                thead { tr { th scope="col" { "When" } th scope="col" { "Decision" } } }
                tbody { @for d in rows { tr {
                    td { (layout::time(s(&d["decision"], "at"))) }
                    td { (s(d, "summary")) }
                } } }
            }
        }
    })
}

fn tasks_table(app: &Value) -> Markup {
    let tasks = arr(app, "tasks");
    html! {
        @if tasks.is_empty() { p.empty { "No tasks." } } @else {
            table.list {
                thead { tr { th scope="col" { "Task" } th scope="col" { "Host:port" } th scope="col" { "State" } th scope="col" { "Health" } th scope="col" { "Started" } th scope="col" { "Version" } } }
                tbody {
                    @for t in tasks {
                        @let results = arr(t, "healthCheckResults");
                        @let ports: Vec<String> = arr(t, "ports").iter().map(|p| p.to_string()).collect();
                        tr {
                            td.mono { a href={"?task=" (encode(s(t, "id")))} { (s(t, "id")) } }
                            td.mono { (s(t, "host")) ":" (ports.join(",")) }
                            td { (badge(&s(t, "state").to_ascii_lowercase())) }
                            td {
                                @if results.is_empty() { span.meta { "no checks" } }
                                @else if results.iter().all(|r| r["alive"] == true) { (badge("healthy")) }
                                @else { (badge("unhealthy"))
                                    @for r in results { @if let Some(c) = r["lastFailureCause"].as_str() { div.meta { (c) } } } }
                            }
                            td { (layout::time(s(t, "startedAt"))) }
                            td.mono { (layout::time(s(t, "version"))) }
                        }
                    }
                }
            }
        }
    }
}

async fn app_page(
    c: &Console,
    who: &Viewer,
    id: &str,
    task: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let path = api_path(id);
    let app = match c
        .get(
            who,
            &format!("{path}?embed=apps.tasks&embed=apps.lastTaskFailure"),
        )
        .await
    {
        Ok(a) => a["app"].clone(),
        Err(e) => return crate::error_page(Some(who), StatusCode::NOT_FOUND, id, &e),
    };
    let native = c
        .get(who, &format!("/api/v1/apps{id}/status"))
        .await
        .unwrap_or_default();
    let versions = c
        .get(who, &format!("{path}/versions"))
        .await
        .unwrap_or_default();
    let (may, confirm) = rights(c, who, &app);
    let task = task
        .map(str::to_string)
        .or_else(|| arr(&app, "tasks").first().map(|t| s(t, "id").to_string()));
    let mut logs = Vec::new();
    if let Some(t) = task.as_ref().filter(|_| may) {
        for stream in ["stdout", "stderr"] {
            let path = format!(
                "/api/v1/tasks/{}/logs?stream={stream}&limit=8192",
                encode(t)
            );
            logs.push((stream, c.get(who, &path).await));
        }
    }
    let scaler = autoscaler(c, who, id).await;
    let charts = crate::pages::metrics::app_charts(c, who, id).await;
    let (image, digest) = app_image(&app);
    let health = app_health(&app);
    let current = s(&app, "version").to_string();
    let body = html! {
        @if let Some(e) = error { (layout::notice("bad", e)) }
        (live(html! {
            div.runhead {
                (badge(health))
                @if !s(&native, "state").is_empty() { span.meta { " " (s(&native, "state")) } }
                span.meta { " · " (n(&app, "tasksRunning")) "/" (n(&app, "instances")) " running · " }
                span.mono { (image) @if let Some(d) = digest { " " (d) } }
                @if let Some(f) = app["lastTaskFailure"].as_object() {
                    div.meta.reason { "Last failure: " (f.get("message").and_then(Value::as_str).unwrap_or_default())
                        " (" (f.get("state").and_then(Value::as_str).unwrap_or_default()) ", " (layout::time(f.get("timestamp").and_then(Value::as_str).unwrap_or_default())) ")" }
                }
            }
            @if who.session.role >= auth::Role::Developer {
                p.meta { a href={"/ui/audit?app=" (encode(id))} { "Who changed this app (audit)" } }
            }
            section aria-labelledby="tasks-h" {
                h2 #tasks-h { "Tasks" }
                (tasks_table(&app))
            }
            section aria-labelledby="log-h" {
                h2 #log-h { "Log tail" @if let Some(t) = &task { " of " span.mono { (t) } } }
                @if !may { p.meta { "Task logs are for those who may deploy this app." } }
                @else if logs.is_empty() { p.empty { "No task." } }
                @for (stream, log) in &logs {
                    h3 { (stream) }
                    @match log {
                        Err(e) => (layout::notice("bad", e)),
                        Ok(l) => {
                            @if s(l, "data").is_empty() { p.empty { "No output yet." } }
                            @else { pre.log tabindex="0" aria-label={(stream) " of the task"} { (s(l, "data")) } }
                        }
                    }
                }
            }
            @let ended = arr(&native, "terminated");
            @if !ended.is_empty() {
                section aria-labelledby="ended-h" {
                    h2 #ended-h { "Recent task ends" }
                    table.list {
                        thead { tr { th scope="col" { "Task" } th scope="col" { "State" } th scope="col" { "When" } th scope="col" { "Reason" } } }
                        tbody { @for e in ended.iter().take(10) { tr {
                            td.mono { a href={"?task=" (encode(s(e, "id")))} { (s(e, "id")) } }
                            td { (badge(&s(e, "state").to_ascii_lowercase())) }
                            td { (layout::time(s(e, "at"))) }
                            td { (s(e, "message")) }
                        } } }
                    }
                }
            }
            section aria-labelledby="versions-h" {
                h2 #versions-h { "Versions" }
                ol.versions {
                    @for v in arr(&versions, "versions").iter().filter_map(Value::as_str).take(20) {
                        li {
                            span.mono { (layout::time(v)) }
                            @if v == current { " " span.tag { "current" } }
                            @else if may {
                                form.inline method="post" action=(app_href(id)) {
                                    (csrf(who))
                                    input type="hidden" name="action" value="rollback";
                                    input type="hidden" name="version" value=(v);
                                    button type="submit" aria-label={"Roll back to " (v)} { "Roll back to this version" }
                                }
                            }
                        }
                    }
                }
            }
        }))
        @if may {
            section aria-labelledby="ops-h" {
                h2 #ops-h { "Scale and restart" }
                @if confirm { p.meta { "This environment asks for confirmation before changes." } }
                form.inline.card method="post" action=(app_href(id)) {
                    (csrf(who))
                    input type="hidden" name="action" value="scale";
                    label for="instances" { "Instances" }
                    input #instances type="number" name="instances" min="0" value=(n(&app, "instances"));
                    button type="submit" { "Scale" }
                }
                form.inline method="post" action=(app_href(id)) {
                    (csrf(who))
                    input type="hidden" name="action" value="restart";
                    button type="submit" { "Restart" }
                }
            }
        }
        section aria-labelledby="charts-h" { h2 #charts-h { "Charts" } (charts) }
        @if let Some(scaler) = scaler {
            section aria-labelledby="autoscaler-h" { h2 #autoscaler-h { "Autoscaler" } (scaler) }
        }
    };
    (
        status,
        render(layout::page(Some(who), Nav::Overview, id, body)),
    )
        .into_response()
}

/// `GET /ui/apps/{id}?task=TASK`.
pub(crate) async fn page(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = Form::parse(q.as_deref().unwrap_or_default());
    app_page(
        &c,
        &who,
        &app_id(&rest),
        q.text("task"),
        None,
        StatusCode::OK,
    )
    .await
}

/// What a form on the app page asks for, checked before anything is sent.
#[derive(Debug, PartialEq)]
pub(crate) enum AppAction {
    /// `PUT {"instances": n}`.
    Scale(u32),
    /// `POST .../restart`.
    Restart,
    /// `PUT {"version": v}`.
    Rollback(String),
}

impl AppAction {
    /// Reads the form; `Err` says what is wrong in words.
    pub(crate) fn parse(f: &Form) -> Result<AppAction, String> {
        match f.get("action") {
            Some("scale") => {
                let raw = f.text("instances").unwrap_or_default();
                raw.parse::<u32>().map(AppAction::Scale).map_err(|_| {
                    format!("Instances must be a whole number of 0 or more, not “{raw}”.")
                })
            }
            Some("restart") => Ok(AppAction::Restart),
            Some("rollback") => f
                .text("version")
                .map(|v| AppAction::Rollback(v.to_string()))
                .ok_or_else(|| "Choose a version to roll back to.".to_string()),
            other => Err(format!("Unknown action “{}”.", other.unwrap_or_default())),
        }
    }

    fn describe(&self, id: &str) -> String {
        match self {
            AppAction::Scale(n) => format!("Scale {id} to {n} instances"),
            AppAction::Restart => format!("Restart every task of {id}"),
            AppAction::Rollback(v) => format!("Roll {id} back to version {v}"),
        }
    }
}

/// `POST /ui/apps/{id}`: scale, restart or roll back through the Marathon API as the user.
pub(crate) async fn act(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(rest): Path<String>,
    body: Bytes,
) -> Response {
    let id = app_id(&rest);
    let f = match c.form(&who, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let action = match AppAction::parse(&f) {
        Ok(a) => a,
        Err(e) => {
            let msg = format!("Nothing was changed: {e}");
            return app_page(&c, &who, &id, None, Some(&msg), StatusCode::BAD_REQUEST).await;
        }
    };
    let path = api_path(&id);
    if f.get("confirm") != Some("yes") {
        let app = c
            .get(&who, &path)
            .await
            .map(|a| a["app"].clone())
            .unwrap_or_default();
        if rights(&c, &who, &app).1 {
            return confirm_page(&who, &id, &f, &action.describe(&id));
        }
    }
    let reply = match &action {
        AppAction::Scale(n) => {
            c.api(&who, Method::PUT, &path, Some(&json!({"instances": n})))
                .await
        }
        AppAction::Restart => {
            c.api(&who, Method::POST, &format!("{path}/restart"), None)
                .await
        }
        AppAction::Rollback(v) => {
            c.api(&who, Method::PUT, &path, Some(&json!({"version": v})))
                .await
        }
    };
    if reply.ok() {
        return see_other(&app_href(&id));
    }
    let msg = format!("Nothing was changed: {}", reply.message());
    app_page(&c, &who, &id, None, Some(&msg), reply.status).await
}

/// The confirmation an environment asks for: the same form again with `confirm=yes`.
fn confirm_page(who: &Viewer, id: &str, f: &Form, what: &str) -> Response {
    let body = html! {
        (layout::notice("warn", &format!("{what}? This environment asks for confirmation; nothing has changed yet.")))
        form.card method="post" action=(app_href(id)) {
            (csrf(who))
            @for (k, v) in f.0.iter().filter(|(k, _)| k != "csrf" && k != "confirm") {
                input type="hidden" name=(k) value=(v);
            }
            input type="hidden" name="confirm" value="yes";
            button.primary type="submit" { "Confirm: " (what) }
            " "
            a href=(app_href(id)) { "Cancel" }
        }
    };
    render(layout::page(Some(who), Nav::Overview, "Confirm", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_forms_are_checked_before_anything_is_sent() {
        let ok = |q: &str| AppAction::parse(&Form::parse(q));
        assert_eq!(ok("action=scale&instances=3"), Ok(AppAction::Scale(3)));
        assert_eq!(ok("action=restart"), Ok(AppAction::Restart));
        assert_eq!(
            ok("action=rollback&version=v1"),
            Ok(AppAction::Rollback("v1".into()))
        );
        assert!(
            ok("action=scale&instances=-1")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            ok("action=scale&instances=lots")
                .unwrap_err()
                .contains("lots")
        );
        assert!(ok("action=rollback").is_err());
        assert!(ok("action=delete").unwrap_err().contains("Unknown action"));
    }

    #[test]
    fn app_paths() {
        assert_eq!(app_id("AA/prod/orders/"), "/AA/prod/orders");
        assert_eq!(api_path("/AA/prod/orders"), "/v2/apps/AA/prod/orders");
    }
}
