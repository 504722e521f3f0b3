//! Admin: users and roles (admins), API tokens (created and shown once; everyone has their
//! own), and the environment policies (admins edit the JSON document).

use super::{arr, s};
use crate::form::{Form, encode};
use crate::layout::{self, Nav, badge, csrf};
use crate::{Console, Viewer, render, see_other};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Value, json};

/// A message to show above the page: (`ok`/`bad`, text, a token shown once).
type Note = Option<(&'static str, String, Option<String>)>;

async fn admin_page(c: &Console, who: &Viewer, note: Note, status: StatusCode) -> Response {
    let admin = who.session.role == auth::Role::Admin;
    let users = if admin {
        Some(c.get(who, "/api/v1/users").await)
    } else {
        None
    };
    let tokens = c
        .get(
            who,
            if admin {
                "/api/v1/tokens?all=true"
            } else {
                "/api/v1/tokens"
            },
        )
        .await;
    let policies = c.get(who, "/api/v1/policies").await;
    let body = html! {
        @if let Some((kind, text, token)) = &note {
            (layout::notice(kind, text))
            @if let Some(t) = token {
                div.card.once {
                    label for="new-token" { "Your new token (shown once; copy it now)" }
                    input #new-token type="text" readonly value=(t);
                }
            }
        }
        @if let Some(users) = &users {
            section aria-labelledby="users-h" {
                h2 #users-h { "Users" }
                @match users {
                    Err(e) => (layout::notice("bad", e)),
                    Ok(v) => table.list {
                        thead { tr { th scope="col" { "User" } th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { "Change" } } }
                        tbody { @for u in arr(v, "users") { tr {
                            td { (s(u, "name")) } td { (s(u, "role")) } td { (layout::time(s(u, "createdAt"))) }
                            td { @if u["disabled"] == true { (badge("disabled")) } @else { (badge("active")) } }
                            td {
                                form.inline method="post" action="/ui/admin/user" {
                                    (csrf(who))
                                    input type="hidden" name="name" value=(s(u, "name"));
                                    select name="role" aria-label={"Role of " (s(u, "name"))} {
                                        @for r in ["viewer", "developer", "deployer", "admin"] { option value=(r) selected[r == s(u, "role")] { (r) } }
                                    }
                                    label { input type="checkbox" name="disabled" value="true" checked[u["disabled"] == true]; " disabled" }
                                    button type="submit" aria-label={"Save " (s(u, "name"))} { "Save" }
                                }
                            }
                        } } }
                    },
                }
                form.card.inline-fields method="post" action="/ui/admin/users" {
                    (csrf(who))
                    h3 { "Add a user" }
                    div.field { label for="u-name" { "Name" } input #u-name name="name" type="text" required; }
                    div.field { label for="u-role" { "Role" }
                        select #u-role name="role" { @for r in ["viewer", "developer", "deployer", "admin"] { option value=(r) { (r) } } } }
                    div.field { label for="u-pw" { "Password" } input #u-pw name="password" type="password" autocomplete="new-password" required; }
                    button type="submit" { "Add user" }
                }
            }
        }
        section aria-labelledby="tokens-h" {
            h2 #tokens-h { "Tokens" }
            @match &tokens {
                Err(e) => (layout::notice("bad", e)),
                Ok(v) => table.list {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "User" } th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "Actions" } } }
                    tbody { @for t in arr(v, "tokens") { tr {
                        td { (s(t, "name")) } td { (s(t, "user")) } td { (layout::time(s(t, "expiresAt"))) }
                        td { (layout::time(s(t, "lastUsedAt"))) }
                        td { @if t["revokedAt"].is_string() { (badge("revoked")) }
                        @else if who.session.token_id.as_deref() == Some(s(t, "id")) { span.tag { "this sign-in (sign out to end it)" } }
                        @else {
                            form.inline method="post" action="/ui/admin/revoke" {
                                (csrf(who)) input type="hidden" name="id" value=(s(t, "id"));
                                button.danger type="submit" aria-label={"Revoke token " (s(t, "name"))} { "Revoke" }
                            }
                        } }
                    } } }
                },
            }
            form.card.inline-fields method="post" action="/ui/admin/tokens" {
                (csrf(who))
                h3 { "Create a token" }
                div.field { label for="t-name" { "Name" } input #t-name name="name" type="text" required placeholder="ci"; }
                div.field { label for="t-days" { "Expires in days" } input #t-days name="days" type="number" min="1" max="366" value="90"; }
                button type="submit" { "Create token" }
            }
        }
        @if who.session.token.is_some() { section aria-labelledby="pw-h" {
            h2 #pw-h { "Your password" }
            form.card.inline-fields method="post" action="/ui/admin/password" {
                (csrf(who))
                div.field { label for="pw-old" { "Current password" } input #pw-old name="old" type="password" autocomplete="current-password"; }
                div.field { label for="pw-new" { "New password" } input #pw-new name="new" type="password" autocomplete="new-password" required; }
                button type="submit" { "Change password" }
            }
        } }
        section aria-labelledby="pol-h" {
            h2 #pol-h { "Environment policies" }
            @match &policies {
                Err(e) => (layout::notice("bad", e)),
                Ok(v) => {
                    table.list {
                        thead { tr { th scope="col" { "Environment" } th scope="col" { "Deploy" } th scope="col" { "Approve" } th scope="col" { "Self-approval" } th scope="col" { "Confirm" } } }
                        tbody { @for p in arr(v, "environments") { tr {
                            td { (s(p, "name")) }
                            td { (subjects(&p["deploy"])) } td { (subjects(&p["approve"])) }
                            td { @if p["selfApproval"] == true { "yes" } @else { "no" } }
                            td { @if p["confirm"] == true { "yes" } @else { "no" } }
                        } } }
                    }
                    @if admin {
                        form.card method="post" action="/ui/admin/policies" {
                            (csrf(who))
                            label for="pol-json" { "Policy document (JSON)" }
                            textarea #pol-json name="policies" rows="16" spellcheck="false" { (serde_json::to_string_pretty(v).unwrap_or_default()) }
                            button type="submit" { "Save policies" }
                        }
                    }
                }
            }
        }
    };
    (
        status,
        render(layout::page(Some(who), Nav::Admin, "Admin", body)),
    )
        .into_response()
}

fn subjects(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `GET /ui/admin`.
pub(crate) async fn page(State(c): State<Console>, Extension(who): Extension<Viewer>) -> Response {
    admin_page(&c, &who, None, StatusCode::OK).await
}

/// `POST /ui/admin/{users|tokens|revoke|policies}`.
pub(crate) async fn act(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(what): Path<String>,
    body: Bytes,
) -> Response {
    let f = match c.form(&who, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let bad = |msg: String| {
        (
            Some(("bad", format!("Nothing was changed: {msg}"), None)),
            StatusCode::BAD_REQUEST,
        )
    };
    let (note, status): (Note, StatusCode) = match what.as_str() {
        "users" => {
            let req = json!({"name": f.text("name"), "role": f.text("role"), "password": f.get("password")});
            let r = c.api(&who, Method::POST, "/api/v1/users", Some(&req)).await;
            if r.ok() {
                return see_other("/ui/admin");
            }
            bad(r.message())
        }
        "tokens" => match token_request(&f) {
            Err(e) => bad(e),
            Ok(req) => {
                let r = c
                    .api(&who, Method::POST, "/api/v1/tokens", Some(&req))
                    .await;
                if r.ok() {
                    (
                        Some((
                            "ok",
                            format!("Token “{}” created.", s(&r.body, "name")),
                            Some(s(&r.body, "token").to_string()),
                        )),
                        StatusCode::CREATED,
                    )
                } else {
                    bad(r.message())
                }
            }
        },
        "user" => {
            let name = f.text("name").unwrap_or_default();
            let req =
                json!({"role": f.text("role"), "disabled": f.get("disabled") == Some("true")});
            let r = c
                .api(
                    &who,
                    Method::PUT,
                    &format!("/api/v1/users/{}", encode(name)),
                    Some(&req),
                )
                .await;
            if r.ok() {
                return see_other("/ui/admin");
            }
            bad(r.message())
        }
        "password" => match f.text("new") {
            None => bad("enter a new password".into()),
            Some(new) => {
                let req = json!({"password": new, "oldPassword": f.get("old").unwrap_or_default()});
                let path = format!("/api/v1/users/{}", encode(&who.session.user));
                let r = c.api(&who, Method::PUT, &path, Some(&req)).await;
                if r.ok() {
                    (
                        Some(("ok", "Password changed.".to_string(), None)),
                        StatusCode::OK,
                    )
                } else {
                    bad(r.message())
                }
            }
        },
        "revoke" => {
            let id = f.text("id").unwrap_or_default();
            let r = c
                .api(
                    &who,
                    Method::DELETE,
                    &format!("/api/v1/tokens/{}", encode(id)),
                    None,
                )
                .await;
            if r.ok() {
                return see_other("/ui/admin");
            }
            bad(r.message())
        }
        "policies" => match serde_json::from_str::<Value>(f.get("policies").unwrap_or_default()) {
            Err(e) => bad(format!("the policy document is not JSON: {e}")),
            Ok(doc) => {
                let r = c
                    .api(&who, Method::PUT, "/api/v1/policies", Some(&doc))
                    .await;
                if r.ok() {
                    (
                        Some(("ok", "Policies saved.".to_string(), None)),
                        StatusCode::OK,
                    )
                } else {
                    bad(r.message())
                }
            }
        },
        _ => bad(format!("unknown form “{what}”")),
    };
    admin_page(&c, &who, note, status).await
}

/// The API body of a new token, from the form.
pub(crate) fn token_request(f: &Form) -> Result<Value, String> {
    let name = f.text("name").ok_or("give the token a name")?;
    let days = f.text("days").unwrap_or("90");
    let days: f64 = days
        .parse()
        .ok()
        .filter(|d: &f64| *d > 0.0 && *d <= 366.0)
        .ok_or_else(|| format!("expiry must be a number of days from 1 to 366, not “{days}”"))?;
    Ok(json!({"name": name, "expiresInDays": days}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_forms() {
        let ok = token_request(&Form::parse("name=ci&days=30")).unwrap();
        assert_eq!(ok, json!({"name": "ci", "expiresInDays": 30.0}));
        assert!(token_request(&Form::parse("days=30")).is_err());
        assert!(
            token_request(&Form::parse("name=ci&days=999"))
                .unwrap_err()
                .contains("999")
        );
    }
}
