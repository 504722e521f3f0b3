//! Pipelines: the list with each one's last run, one pipeline's runs, and the start-run
//! form generated from its typed parameters (choices as selects, bools as checkboxes),
//! which asks for confirmation when the run deploys to an environment that wants it.

use super::{arr, n, s};
use crate::form::{Form, encode};
use crate::layout::{self, Nav, badge, csrf, live};
use crate::{Console, Viewer, error_page, render, see_other};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use model::pipeline::{Param, ParamKind, ParamValue};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `GET /ui/pipelines`.
pub(crate) async fn list(State(c): State<Console>, Extension(who): Extension<Viewer>) -> Response {
    let pipelines = super::overview::pipelines_with_last_run(&c, &who).await;
    let runs = c.get(&who, "/api/v1/runs?limit=30").await;
    let body = html! {
        section aria-labelledby="p-h" {
            h2 #p-h { "Pipelines" }
            @if pipelines.is_empty() { p.empty { "No pipelines registered: " code { "slipway pipelines add" } "." } }
            ul.cards {
                @for (name, last) in &pipelines {
                    li.card {
                        h3 { a href={"/ui/pipelines/" (encode(name))} { (name) } }
                        @if let Some(r) = last {
                            p { a href={"/ui/runs/" (s(r, "id"))} { "Run #" (n(r, "number")) } " " (badge(s(r, "status"))) }
                            @if !s(r, "waitingFor").is_empty() { p.meta { "Waiting for " (super::waiting(r)) } }
                        } @else { p.meta { "Never run" } }
                    }
                }
            }
        }
        section aria-labelledby="r-h" {
            h2 #r-h { "Recent runs" }
            @match &runs {
                Ok(r) => (runs_table(arr(r, "runs"), true)),
                Err(e) => (layout::notice("bad", e)),
            }
        }
    };
    render(layout::page(
        Some(&who),
        Nav::Pipelines,
        "Pipelines",
        live(body),
    ))
}

/// Runs as a table, newest first.
pub(crate) fn runs_table(runs: &[Value], with_pipeline: bool) -> Markup {
    html! {
        @if runs.is_empty() { p.empty { "No runs yet." } } @else {
            table.list {
                thead { tr {
                    th scope="col" { "Run" }
                    @if with_pipeline { th scope="col" { "Pipeline" } }
                    th scope="col" { "Status" } th scope="col" { "Started by" } th scope="col" { "Commit" } th scope="col" { "Created" }
                } }
                tbody {
                    @for r in runs {
                        tr {
                            td { a href={"/ui/runs/" (s(r, "id"))} { "#" (n(r, "number")) } }
                            @if with_pipeline { td { (s(r, "pipeline")) } }
                            td { (badge(s(r, "status")))
                                 @if !s(r, "waitingFor").is_empty() { div.meta { "waiting for " (super::waiting(r)) } } }
                            td { (s(r, "triggeredBy")) }
                            td.mono { (s(r, "sha").chars().take(8).collect::<String>()) " " (s(r, "branch")) }
                            td { (layout::time(s(r, "createdAt"))) }
                        }
                    }
                }
            }
        }
    }
}

/// The parameters of a pipeline file as last read, and who may start it by hand.
fn params_of(c: &Console, name: &str) -> Result<(BTreeMap<String, Param>, Vec<String>), String> {
    let svc = c
        .ctx()
        .pipelines
        .as_ref()
        .ok_or("pipelines are not enabled on this server")?;
    let source = svc.source(name).map_err(|e| e.to_string())?;
    let Some(text) = source.file_text else {
        return Ok((BTreeMap::new(), Vec::new()));
    };
    let p = model::pipeline::parse_pipeline(&text).map_err(|e| e.to_string())?;
    Ok((p.params, p.triggers.manual_allowed))
}

/// What the start form shows besides the parameters.
#[derive(Default)]
pub(crate) struct FormState {
    /// Values given (kept after a refusal).
    pub given: BTreeMap<String, String>,
    /// The message of a refusal.
    pub error: Option<String>,
    /// Environments that ask for confirmation (the API said so).
    pub confirm: Vec<String>,
}

fn default_text(p: &Param) -> String {
    match &p.default {
        Some(ParamValue::Text(s)) => s.clone(),
        Some(ParamValue::Bool(b)) => b.to_string(),
        None => String::new(),
    }
}

/// The start-run form.
pub(crate) fn start_form(
    who: &Viewer,
    name: &str,
    params: &BTreeMap<String, Param>,
    st: &FormState,
) -> Markup {
    html! {
        form.card.start method="post" action={"/ui/pipelines/" (encode(name)) "/run"} {
            (csrf(who))
            @if let Some(e) = &st.error { (layout::notice("bad", e)) }
            @if params.is_empty() { p.meta { "This pipeline has no parameters." } }
            @for (pname, p) in params {
                @let id = format!("param-{pname}");
                @let value = st.given.get(pname).cloned().unwrap_or_else(|| default_text(p));
                div.field {
                    @match &p.kind {
                        ParamKind::Bool => {
                            input #(id) type="checkbox" name={"p." (pname)} value="true" checked[value == "true"];
                            " "
                            label for=(id) { (pname) }
                        }
                        ParamKind::Choice(options) => {
                            label for=(id) { (pname) @if p.required { " (required)" } }
                            select #(id) name={"p." (pname)} {
                                @if p.default.is_none() { option value="" { "— choose —" } }
                                @for o in options { option value=(o) selected[*o == value] { (o) } }
                            }
                        }
                        ParamKind::String => {
                            label for=(id) { (pname) @if p.required { " (required)" } }
                            input #(id) type="text" name={"p." (pname)} value=(value);
                        }
                    }
                    @if let Some(d) = &p.description { div.meta { (d) } }
                }
            }
            @if !st.confirm.is_empty() {
                div.field.confirm {
                    (layout::notice("warn", &format!("This run deploys to {}, which asks for confirmation.", st.confirm.join(", "))))
                    input #confirm type="checkbox" name="confirm" value="yes" required;
                    " "
                    label for="confirm" { "I confirm deploying to " (st.confirm.join(", ")) }
                }
            }
            button.primary type="submit" { "Start run" }
        }
    }
}

async fn pipeline_page(
    c: &Console,
    who: &Viewer,
    name: &str,
    st: &FormState,
    status: StatusCode,
) -> Response {
    let runs = c
        .get(
            who,
            &format!("/api/v1/runs?pipeline={}&limit=30", encode(name)),
        )
        .await;
    let params = params_of(c, name);
    let principal = auth::Principal::new(who.session.user.clone(), who.session.role);
    let source = c
        .ctx()
        .pipelines
        .as_ref()
        .and_then(|svc| svc.source(name).ok());
    let body = html! {
        @if let Some(src) = &source {
            p.meta { "From " span.mono { (src.repo) } ", branch " span.mono { (src.branch) } ", file " span.mono { (src.file) } }
        }
        section aria-labelledby="start-h" {
            h2 #start-h { "Start a run" }
            @match &params {
                Ok((params, allowed)) => {
                    @let listed = allowed.is_empty() || allowed.iter().filter_map(|s| s.parse::<auth::Subject>().ok()).any(|s| s.matches(&principal));
                    @if who.session.role >= auth::Role::Developer && listed {
                        (start_form(who, name, params, st))
                    } @else {
                        p.meta { "You may not start this pipeline"
                            @if !allowed.is_empty() { " (allowed: " (allowed.join(", ")) ")" } "." }
                    }
                }
                Err(e) => (layout::notice("bad", e)),
            }
        }
        section aria-labelledby="runs-h" {
            h2 #runs-h { "Runs" }
            (live(html! {
                @match &runs {
                    Ok(r) => (runs_table(arr(r, "runs"), false)),
                    Err(e) => (layout::notice("bad", e)),
                }
            }))
        }
    };
    (
        status,
        render(layout::page(Some(who), Nav::Pipelines, name, body)),
    )
        .into_response()
}

/// `GET /ui/pipelines/{name}`.
pub(crate) async fn pipeline(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(name): Path<String>,
) -> Response {
    pipeline_page(&c, &who, &name, &FormState::default(), StatusCode::OK).await
}

/// `POST /ui/pipelines/{name}/run`: `POST /api/v1/pipelines/{name}/runs` as the user.
pub(crate) async fn start(
    State(c): State<Console>,
    Extension(who): Extension<Viewer>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f = match c.form(&who, &body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let params = match params_of(&c, &name) {
        Ok((p, _)) => p,
        Err(e) => return error_page(Some(&who), StatusCode::NOT_FOUND, &name, &e),
    };
    let given = given_params(&f, &params);
    let confirm = f.get("confirm") == Some("yes");
    let req = json!({"params": given, "confirm": confirm});
    let reply = c
        .api(
            &who,
            Method::POST,
            &format!("/api/v1/pipelines/{}/runs", encode(&name)),
            Some(&req),
        )
        .await;
    if reply.ok() {
        return see_other(&format!("/ui/runs/{}", s(&reply.body, "id")));
    }
    let confirm: Vec<String> = arr(&reply.body, "confirm")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let st = FormState {
        error: Some(if confirm.is_empty() {
            format!("Nothing was started: {}", reply.message())
        } else {
            format!(
                "Nothing was started: this run deploys to {}, which asks for confirmation. Tick the confirmation and start it again.",
                confirm.join(", ")
            )
        }),
        confirm,
        given: given.clone(),
    };
    let status = if reply.status == StatusCode::CONFLICT {
        StatusCode::OK
    } else {
        reply.status
    };
    pipeline_page(&c, &who, &name, &st, status).await
}

/// The run's parameters from the form: `p.NAME` fields (unchecked boxes are `false`);
/// fields the file does not declare are passed on, for the API to name them.
pub(crate) fn given_params(f: &Form, params: &BTreeMap<String, Param>) -> BTreeMap<String, String> {
    let mut given = BTreeMap::new();
    for (k, v) in &f.0 {
        if let Some(name) = k.strip_prefix("p.")
            && !v.is_empty()
        {
            given.insert(name.to_string(), v.clone());
        }
    }
    for (name, p) in params {
        if p.kind == ParamKind::Bool {
            given.entry(name.clone()).or_insert_with(|| "false".into());
        }
    }
    given
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::viewer;

    const RELEASE: &str = "version: 1\nname: release\non: { manual: {} }\nparams:\n  ReleaseVersion: { type: string, required: true }\n  DeployEnv: { type: choice, options: [yz, prod], default: yz }\n  DryRun: { type: bool, default: false }\nsteps:\n  d: { run: 'echo' }\n";

    #[test]
    fn the_start_form_has_typed_labelled_fields() {
        let p = model::pipeline::parse_pipeline(RELEASE).unwrap();
        let html = start_form(
            &viewer(auth::Role::Deployer),
            "release",
            &p.params,
            &FormState::default(),
        )
        .into_string();
        assert!(
            html.contains("<select id=\"param-DeployEnv\" name=\"p.DeployEnv\">"),
            "{html}"
        );
        assert!(html.contains("<option value=\"yz\" selected>"), "{html}");
        assert!(
            html.contains("type=\"checkbox\" name=\"p.DryRun\""),
            "{html}"
        );
        assert!(
            html.contains("<label for=\"param-ReleaseVersion\">ReleaseVersion (required)</label>"),
            "{html}"
        );
        assert!(html.contains("name=\"csrf\""), "{html}");
        assert!(!html.contains("name=\"confirm\""), "{html}");
        let st = FormState {
            confirm: vec!["prod".into()],
            error: Some("Nothing was started".into()),
            given: BTreeMap::from([("DeployEnv".to_string(), "prod".to_string())]),
        };
        let html =
            start_form(&viewer(auth::Role::Deployer), "release", &p.params, &st).into_string();
        assert!(html.contains("<option value=\"prod\" selected>"), "{html}");
        assert!(
            html.contains("name=\"confirm\" value=\"yes\" required"),
            "{html}"
        );
        assert!(html.contains("role=\"alert\""), "{html}");
    }

    #[test]
    fn unchecked_boxes_are_false_and_unknown_fields_pass_on() {
        let p = model::pipeline::parse_pipeline(RELEASE).unwrap();
        let f = Form::parse("csrf=x&p.ReleaseVersion=1.2&p.DeployEnv=prod&p.Bogus=1&p.Empty=");
        let given = given_params(&f, &p.params);
        assert_eq!(given.get("DryRun").map(String::as_str), Some("false"));
        assert_eq!(given.get("Bogus").map(String::as_str), Some("1"));
        assert!(!given.contains_key("Empty"));
    }
}
