//! One run: its steps as a stage graph (the `needs` DAG drawn as columns, like Jenkins'
//! stage view) with status, duration and attempts; approvals with their question and, for
//! those allowed, approve and reject; retry and cancel; the selected step's log.

use super::{arr, n, s};
use crate::form::encode;
use crate::layout::{self, Nav, badge, csrf, live};
use crate::{Console, Viewer, render, see_other};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use model::pipeline::{Step, StepKind};
use serde_json::Value;
use std::collections::BTreeMap;

/// A step as the graph shows it.
#[derive(Debug, Clone)]
pub(crate) struct StageStep {
    /// Its name.
    pub name: String,
    /// Its column (0: needs nothing).
    pub column: usize,
    /// Its status in the run (`pending` before it starts).
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Duration so far, ms.
    pub duration_ms: Option<i64>,
    /// Why it failed or was skipped.
    pub reason: String,
    /// An approval's question.
    pub question: Option<String>,
    /// Who decided an approval.
    pub decided_by: String,
}

/// Lays the steps out: each step's column is one more than the furthest step it needs.
/// Steps of the run that the file does not (or no longer) name come last, one column each.
pub(crate) fn stages(file: &[Step], run_steps: &[Value]) -> Vec<StageStep> {
    let by_name: BTreeMap<&str, &Value> = run_steps.iter().map(|v| (s(v, "name"), v)).collect();
    let mut column: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let mk = |name: &str, col: usize, question: Option<String>| {
        let v = by_name.get(name).copied().unwrap_or(&Value::Null);
        StageStep {
            name: name.to_string(),
            column: col,
            status: v["status"].as_str().unwrap_or("pending").to_string(),
            attempts: n(v, "attempts"),
            duration_ms: v["durationMs"].as_i64(),
            reason: s(v, "reason").to_string(),
            question,
            decided_by: s(v, "decidedBy").to_string(),
        }
    };
    // The file lists steps after the steps they need.
    for step in file {
        let col = step
            .needs
            .iter()
            .filter_map(|need| column.get(need.as_str()))
            .map(|c| c + 1)
            .max()
            .unwrap_or(0);
        column.insert(&step.name, col);
        let question = match &step.kind {
            StepKind::Approve { message, .. } => Some(message.clone()),
            _ => None,
        };
        out.push(mk(&step.name, col, question));
    }
    let mut next = column.values().max().map_or(0, |c| c + 1);
    for v in run_steps {
        if !column.contains_key(s(v, "name")) {
            out.push(mk(s(v, "name"), next, None));
            next += 1;
        }
    }
    out
}

/// The stage graph: one column per level of the DAG.
pub(crate) fn graph(run_id: &str, steps: &[StageStep], selected: &str) -> Markup {
    let columns = steps.iter().map(|st| st.column + 1).max().unwrap_or(0);
    html! {
        ol.stages aria-label="Stages" {
            @for col in 0..columns {
                li.stage-col {
                    ul {
                        @for st in steps.iter().filter(|st| st.column == col) {
                            li class={"step step-" (st.status)} aria-current=[(st.name == selected).then_some("step")] {
                                a href={"/ui/runs/" (encode(run_id)) "?step=" (encode(&st.name))} {
                                    span.step-name { (st.name) }
                                }
                                " " (badge(&st.status))
                                div.meta {
                                    @if let Some(ms) = st.duration_ms { (layout::duration(ms)) }
                                    @if st.attempts > 1 { " · " (st.attempts) " attempts" }
                                }
                                @if !st.reason.is_empty() { div.meta.reason { (st.reason) } }
                                @if !st.decided_by.is_empty() { div.meta { "decided by " (st.decided_by) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether `who` may approve `step` of `run` now (the API checks again): the approval
/// waits, the environment's policy allows it and the file's approvers list them.
fn may_approve(c: &Console, who: &Viewer, run: &Value, step: &str) -> Result<(), String> {
    let svc = c.ctx().pipelines.as_ref().ok_or("pipelines are off")?;
    let pending = svc
        .pending(s(run, "id"), step)
        .ok_or("the approval is not waiting")?;
    let principal = auth::Principal::new(who.session.user.clone(), who.session.role);
    let action = auth::Action::Approve {
        env: pending.env.clone(),
        started_by: pipeline::service::Actor::starter_user(s(run, "triggeredBy")),
    };
    c.ctx()
        .identity
        .policies()
        .authorize(&principal, &action)
        .into_result()?;
    if !pending.approvers.is_empty()
        && !pending
            .approvers
            .iter()
            .filter_map(|a| a.parse::<auth::Subject>().ok())
            .any(|a| a.matches(&principal))
    {
        return Err(format!("approvers: {}", pending.approvers.join(", ")));
    }
    Ok(())
}

/// Whether `who` may retry or cancel the run (as the API decides: admins, the starter,
/// and those who may deploy everywhere it deploys).
fn may_control(c: &Console, who: &Viewer, run: &Value) -> bool {
    if who.session.role < auth::Role::Developer {
        return false;
    }
    if who.session.role == auth::Role::Admin
        || pipeline::service::Actor::starter_user(s(run, "triggeredBy")).as_deref()
            == Some(who.session.user.as_str())
    {
        return true;
    }
    let Some(svc) = c.ctx().pipelines.as_ref() else {
        return false;
    };
    let given: BTreeMap<String, String> = run["params"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let envs = svc
        .plan(s(run, "pipeline"), &given)
        .map(|p| p.deploy_envs)
        .unwrap_or_default();
    let principal = auth::Principal::new(who.session.user.clone(), who.session.role);
    let policies = c.ctx().identity.policies();
    envs.iter().all(|env| {
        let id = model::PathId::parse(&format!("/{}", env.trim_matches('/')));
        let labels = BTreeMap::from([(
            "SLIPWAY_ENV".to_string(),
            auth::environment_name(env).to_string(),
        )]);
        policies
            .authorize(&principal, &auth::Action::Deploy { app: id, labels })
            .is_allowed()
    })
}

fn approvals(c: &Console, who: &Viewer, run: &Value, steps: &[StageStep]) -> Markup {
    let id = s(run, "id");
    html! {
        @for st in steps.iter().filter(|st| st.status == "waiting") {
            @let pending = c.ctx().pipelines.as_ref().and_then(|svc| svc.pending(id, &st.name));
            @let question = pending.as_ref().map(|p| p.message.clone()).or_else(|| st.question.clone()).unwrap_or_default();
            div.card.approval role="group" aria-labelledby={"q-" (st.name)} {
                p.question #{"q-" (st.name)} { span aria-hidden="true" { "◔ " } (st.name) ": " strong { (question) } }
                @match may_approve(c, who, run, &st.name) {
                    Ok(()) => {
                        form.inline method="post" action={"/ui/runs/" (encode(id)) "/approve"} {
                            (csrf(who)) input type="hidden" name="step" value=(st.name);
                            button.primary type="submit" { "Approve" }
                        }
                        form.inline method="post" action={"/ui/runs/" (encode(id)) "/reject"} {
                            (csrf(who)) input type="hidden" name="step" value=(st.name);
                            button.danger type="submit" { "Reject" }
                        }
                    }
                    Err(why) => p.meta { "You may not decide this approval: " (why) },
                }
            }
        }
    }
}

/// Lines shown of a step's log: its last ones.
const LOG_TAIL: usize = 300;

/// The last [`LOG_TAIL`] lines of a step's log (the API pages from the start; a step keeps
/// at most 10,000 lines, so this is at most a few pages).
async fn log_tail(c: &Console, who: &Viewer, run: &str, step: &str) -> Result<Vec<Value>, String> {
    const PAGE: usize = 5000;
    let mut tail = std::collections::VecDeque::with_capacity(LOG_TAIL);
    let mut after = 0;
    loop {
        let page = c
            .get(
                who,
                &format!(
                    "/api/v1/runs/{}/steps/{}/logs?after={after}&limit={PAGE}",
                    encode(run),
                    encode(step)
                ),
            )
            .await?;
        let lines = arr(&page, "lines");
        for l in lines {
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(l.clone());
        }
        let next = n(&page, "next");
        if lines.len() < PAGE || next <= after {
            return Ok(tail.into());
        }
        after = next;
    }
}

async fn run_page(
    c: &Console,
    who: &Viewer,
    id: &str,
    step: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let run = match c.get(who, &format!("/api/v1/runs/{}", encode(id))).await {
        Ok(r) => r,
        Err(e) => return crate::error_page(Some(who), StatusCode::NOT_FOUND, "Run", &e),
    };
    let file = c
        .ctx()
        .pipelines
        .as_ref()
        .map(|svc| svc.steps_of(s(&run, "pipeline")))
        .unwrap_or_default();
    let steps = stages(&file, arr(&run, "steps"));
    let selected = step
        .map(str::to_string)
        .or_else(|| {
            ["waiting", "running", "failed"]
                .iter()
                .find_map(|want| steps.iter().find(|st| st.status == *want))
                .or_else(|| {
                    steps
                        .iter()
                        .rev()
                        .find(|st| st.status != "pending" && st.status != "not_run")
                })
                .map(|st| st.name.clone())
        })
        .unwrap_or_default();
    let log = if selected.is_empty() {
        None
    } else {
        Some(log_tail(c, who, id, &selected).await)
    };
    let finished = !matches!(s(&run, "status"), "queued" | "running");
    let control = may_control(c, who, &run);
    let title = format!("{} #{}", s(&run, "pipeline"), n(&run, "number"));
    let body = html! {
        @if let Some(e) = error { (layout::notice("bad", e)) }
        p.crumbs { a href={"/ui/pipelines/" (encode(s(&run, "pipeline")))} { "← " (s(&run, "pipeline")) } }
        (live(html! {
            div.runhead {
                (badge(s(&run, "status")))
                @if !s(&run, "waitingFor").is_empty() { span.meta { " waiting for " (super::waiting(&run)) } }
                span.meta { " · started by " (s(&run, "triggeredBy")) " · " (s(&run, "branch")) " " span.mono { (s(&run, "sha").chars().take(8).collect::<String>()) } }
                @if !s(&run, "reason").is_empty() { div.meta.reason { (s(&run, "reason")) } }
                @if let Some(p) = run["params"].as_object().filter(|p| !p.is_empty()) {
                    div.meta { "Parameters: " @for (k, v) in p { code { (k) "=" (v.as_str().map_or_else(|| v.to_string(), str::to_string)) } " " } }
                }
            }
            section aria-labelledby="stages-h" {
                h2 #stages-h { "Stages" }
                (graph(id, &steps, &selected))
                (approvals(c, who, &run, &steps))
                @if control {
                    div.actions {
                        @if finished && s(&run, "status") != "succeeded" {
                            form.inline method="post" action={"/ui/runs/" (encode(id)) "/retry"} {
                                (csrf(who)) button type="submit" { "Retry from the failed step" }
                            }
                        }
                        @if !finished {
                            form.inline method="post" action={"/ui/runs/" (encode(id)) "/cancel"} {
                                (csrf(who)) button.danger type="submit" { "Cancel run" }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="log-h" {
                h2 #log-h { "Log of " (selected) }
                @match &log {
                    None => p.empty { "No step selected." },
                    Some(Err(e)) => (layout::notice("bad", e)),
                    Some(Ok(lines)) => {
                        @if lines.is_empty() { p.empty { "No output yet." } } @else {
                            pre.log tabindex="0" aria-label={"Log of " (selected)} {
                                @for line in lines {
                                    span class={"ln " (s(line, "stream"))} { (s(line, "line")) "\n" }
                                }
                            }
                        }
                    }
                }
            }
        }))
    };
    (
        status,
        render(layout::page(Some(who), Nav::Pipelines, &title, body)),
    )
        .into_response()
}

/// `GET /ui/runs/{id}?step=NAME`.
pub(crate) async fn page(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = crate::form::Form::parse(q.as_deref().unwrap_or_default());
    run_page(&c, &who, &id, q.text("step"), None, StatusCode::OK).await
}

/// `POST /ui/runs/{id}/{approve|reject|retry|cancel}` through the API's run endpoints.
pub(crate) async fn act(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = match c.form(&who, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let step = f.text("step").unwrap_or_default().to_string();
    let path = match action.as_str() {
        "approve" | "reject" if !step.is_empty() => {
            format!(
                "/api/v1/runs/{}/steps/{}/{action}",
                encode(&id),
                encode(&step)
            )
        }
        "retry" | "cancel" => format!("/api/v1/runs/{}/{action}", encode(&id)),
        _ => {
            return run_page(
                &c,
                &who,
                &id,
                None,
                Some(&format!("Unknown action `{action}`: nothing was changed.")),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let reply = c.api(&who, Method::POST, &path, None).await;
    if !reply.ok() {
        let msg = format!("Nothing was changed: {}", reply.message());
        return run_page(&c, &who, &id, None, Some(&msg), reply.status).await;
    }
    match action.as_str() {
        "retry" => see_other(&format!("/ui/runs/{}", encode(s(&reply.body, "id")))),
        _ => see_other(&format!("/ui/runs/{}", encode(&id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FLOW: &str = "version: 1\nname: flow\nsteps:\n  build: { run: 'echo' }\n  lint: { run: 'echo' }\n  qa: { needs: [build, lint], run: 'echo' }\n  ok: { needs: [qa], approve: { message: \"Do tests OK?\" } }\n  prod: { needs: [ok], run: 'echo' }\n";

    #[test]
    fn the_needs_dag_becomes_columns() {
        let p = model::pipeline::parse_pipeline(FLOW).unwrap();
        let run = vec![
            json!({"name": "build", "status": "succeeded", "attempts": 2, "durationMs": 1500}),
            json!({"name": "qa", "status": "succeeded", "attempts": 1}),
            json!({"name": "ok", "status": "waiting", "attempts": 1}),
            json!({"name": "gone", "status": "failed", "reason": "old"}),
        ];
        let st = stages(&p.steps, &run);
        let cols: Vec<(&str, usize)> = st.iter().map(|s| (s.name.as_str(), s.column)).collect();
        assert_eq!(
            cols,
            [
                ("build", 0),
                ("lint", 0),
                ("qa", 1),
                ("ok", 2),
                ("prod", 3),
                ("gone", 4)
            ]
        );
        assert_eq!(st[1].status, "pending");
        assert_eq!(st[3].question.as_deref(), Some("Do tests OK?"));
        let html = graph("r1", &st, "ok").into_string();
        assert_eq!(html.matches("class=\"stage-col\"").count(), 5, "{html}");
        assert!(
            html.contains("2 attempts") && html.contains("1.5 s"),
            "{html}"
        );
        assert!(html.contains("aria-current=\"step\""), "{html}");
        assert!(html.contains("href=\"/ui/runs/r1?step=ok\""), "{html}");
    }
}
