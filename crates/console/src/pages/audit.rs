//! The audit log with filters by user, app, action and outcome.

use super::{app_href, arr, s};
use crate::form::{Form, encode};
use crate::layout::{self, Nav, badge};
use crate::{Console, Viewer, render};
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

/// Which records to show.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub user: String,
    pub app: String,
    pub action: String,
    pub outcome: String,
}

impl Filter {
    fn from(f: &Form) -> Filter {
        let t = |k: &str| f.text(k).unwrap_or_default().to_string();
        Filter {
            user: t("user"),
            app: t("app"),
            action: t("action"),
            outcome: t("outcome"),
        }
    }

    /// Whether a record passes the action and outcome filters (user and app are the API's).
    pub(crate) fn keeps(&self, r: &Value) -> bool {
        let action = format!("{} {}", s(r, "action"), s(r, "detail")).to_ascii_lowercase();
        (self.action.is_empty() || action.contains(&self.action.to_ascii_lowercase()))
            && (self.outcome.is_empty() || s(r, "outcome") == self.outcome)
    }
}

/// The table of records.
pub(crate) fn table(records: &[Value], filter: &Filter) -> Markup {
    let kept: Vec<&Value> = records.iter().filter(|r| filter.keeps(r)).collect();
    html! {
        p.meta { (kept.len()) " records" }
        @if !kept.is_empty() {
            div.scroll {
                table.list.audit {
                    thead { tr { th scope="col" { "When" } th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "App" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                    tbody { @for r in kept {
                        tr {
                            td { (layout::time(s(r, "at"))) }
                            td { (s(r, "user")) }
                            td.mono { (s(r, "action")) }
                            td { @if !s(r, "app").is_empty() { a href=(app_href(s(r, "app"))) { (s(r, "app")) } } }
                            td { (badge(s(r, "outcome"))) " " span.meta { (r["status"]) } }
                            td { (s(r, "detail")) }
                        }
                    } }
                }
            }
        }
    }
}

/// `GET /ui/audit?user=&app=&action=&outcome=`.
pub(crate) async fn page(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    RawQuery(q): RawQuery,
) -> Response {
    let filter = Filter::from(&Form::parse(q.as_deref().unwrap_or_default()));
    let mut path = "/api/v1/audit?limit=1000".to_string();
    if !filter.user.is_empty() {
        path.push_str(&format!("&user={}", encode(&filter.user)));
    }
    if !filter.app.is_empty() {
        path.push_str(&format!("&app={}", encode(&filter.app)));
    }
    let records = c.get(&who, &path).await;
    let body = html! {
        form.card.filters method="get" action="/ui/audit" role="search" {
            div.field { label for="f-user" { "User" } input #f-user name="user" type="text" value=(filter.user); }
            div.field { label for="f-app" { "App" } input #f-app name="app" type="text" placeholder="/prod/orders" value=(filter.app); }
            div.field { label for="f-action" { "Action contains" } input #f-action name="action" type="text" placeholder="approve" value=(filter.action); }
            div.field { label for="f-outcome" { "Outcome" }
                select #f-outcome name="outcome" {
                    @for o in ["", "allowed", "denied", "failed"] {
                        option value=(o) selected[o == filter.outcome] { @if o.is_empty() { "any" } @else { (o) } }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @match &records {
            Ok(v) => (table(arr(v, "records"), &filter)),
            Err(e) => (layout::notice("bad", e)),
        }
    };
    render(layout::page(Some(&who), Nav::Audit, "Audit", body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_and_outcome_filters() {
        let records = vec![
            json!({"user": "dana", "action": "POST /api/v1/runs/r1/steps/ok/approve", "outcome": "allowed", "status": 200}),
            json!({"user": "lee", "action": "PUT /v2/apps/prod/web", "outcome": "denied", "status": 403, "app": "/prod/web"}),
        ];
        let f = Filter {
            action: "APPROVE".into(),
            ..Filter::default()
        };
        let html = table(&records, &f).into_string();
        assert!(
            html.contains("1 records") && html.contains("dana") && !html.contains("lee"),
            "{html}"
        );
        let f = Filter {
            outcome: "denied".into(),
            ..Filter::default()
        };
        let html = table(&records, &f).into_string();
        assert!(
            html.contains("href=\"/ui/apps/prod/web\"") && !html.contains("dana"),
            "{html}"
        );
    }
}
