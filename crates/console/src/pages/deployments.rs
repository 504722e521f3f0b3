//! Deployments: the running ones with progress and a cancel button (Marathon's cancel,
//! which rolls back), and the finished ones.

use super::{app_href, arr, n, s};
use crate::form::encode;
use crate::layout::{self, Nav, badge, csrf, live};
use crate::{Console, Viewer, render, see_other};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

fn apps(d: &Value) -> Markup {
    html! {
        @for a in arr(d, "affectedApps").iter().filter_map(Value::as_str) {
            a href=(app_href(a)) { (a) } " "
        }
    }
}

/// Whether `who` may cancel the deployment (the API checks again): they may deploy every
/// app it changes.
fn may_cancel(c: &Console, who: &Viewer, d: &Value) -> bool {
    if who.session.role < auth::Role::Developer {
        return false;
    }
    let policies = c.ctx().identity.policies();
    let principal = auth::Principal::new(who.session.user.clone(), who.session.role);
    arr(d, "affectedApps")
        .iter()
        .filter_map(Value::as_str)
        .all(|a| {
            let id = model::PathId::parse(a);
            let labels = c.ctx().engine.app_labels(&id).unwrap_or_default();
            policies
                .authorize(&principal, &auth::Action::Deploy { app: id, labels })
                .is_allowed()
        })
}

/// The apps a finished deployment (the engine's stored record) changed.
fn finished_apps(d: &Value) -> Markup {
    html! {
        @for a in arr(d, "target").iter().filter_map(|a| a["id"].as_str()) {
            a href=(app_href(a)) { (a) } " "
        }
    }
}

async fn deployments_page(
    c: &Console,
    who: &Viewer,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let running = c.get(who, "/v2/deployments").await;
    let done = c.get(who, "/api/v1/deployments?limit=50").await;
    let body = html! {
        @if let Some(e) = error { (layout::notice("bad", e)) }
        (live(html! {
            section aria-labelledby="run-h" {
                h2 #run-h { "Running" }
                @match &running {
                    Err(e) => (layout::notice("bad", e)),
                    Ok(list) => {
                        @let list = list.as_array().map_or(&[][..], Vec::as_slice);
                        @if list.is_empty() { p.empty { "No deployment is running." } } @else {
                            table.list {
                                thead { tr { th scope="col" { "Deployment" } th scope="col" { "Apps" } th scope="col" { "Progress" } th scope="col" { "Actions" } } }
                                tbody { @for d in list {
                                    tr {
                                        td.mono { (s(d, "id")) }
                                        td { (apps(d)) }
                                        td {
                                            progress max=(n(d, "totalSteps").max(1)) value=(n(d, "currentStep")) aria-label="Progress" {}
                                            " step " (n(d, "currentStep")) " of " (n(d, "totalSteps"))
                                            @for a in arr(d, "currentActions") { div.meta { (s(a, "action")) " " (s(a, "app")) } }
                                        }
                                        td { @if may_cancel(c, who, d) {
                                            form.inline method="post" action={"/ui/deployments/" (encode(s(d, "id"))) "/cancel"} {
                                                (csrf(who)) button.danger type="submit" { "Cancel (roll back)" }
                                            }
                                        } }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="done-h" {
                h2 #done-h { "Finished" }
                @match &done {
                    Err(e) => (layout::notice("bad", e)),
                    Ok(v) => {
                        @let list = arr(v, "deployments");
                        @if list.is_empty() { p.empty { "No finished deployments." } } @else {
                            table.list {
                                thead { tr { th scope="col" { "Deployment" } th scope="col" { "Apps" } th scope="col" { "Status" } th scope="col" { "Finished" } th scope="col" { "Reason" } } }
                                tbody { @for d in list {
                                    tr {
                                        td.mono { (s(d, "id")) }
                                        td { (finished_apps(d)) }
                                        td { (badge(s(d, "outcome"))) }
                                        td { @if let Some(ms) = d["finished_at"].as_i64() { (layout::time(&model::Timestamp(ms).to_string())) } }
                                        td { (s(d, "reason")) }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }))
    };
    (
        status,
        render(layout::page(
            Some(who),
            Nav::Deployments,
            "Deployments",
            body,
        )),
    )
        .into_response()
}

/// `GET /ui/deployments`.
pub(crate) async fn page(State(c): State<Console>, Extension(who): Extension<Viewer>) -> Response {
    deployments_page(&c, &who, None, StatusCode::OK).await
}

/// `POST /ui/deployments/{id}/cancel`: `DELETE /v2/deployments/{id}` as the user.
pub(crate) async fn cancel(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(resp) = c.form(&who, &body) {
        return *resp;
    }
    let reply = c
        .api(
            &who,
            Method::DELETE,
            &format!("/v2/deployments/{}", encode(&id)),
            None,
        )
        .await;
    if reply.ok() {
        return see_other("/ui/deployments");
    }
    let msg = format!("Nothing was changed: {}", reply.message());
    deployments_page(&c, &who, Some(&msg), reply.status).await
}
