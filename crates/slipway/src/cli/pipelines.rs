//! `slipway pipelines ...` and `slipway runs ...`: register pipelines, start runs and
//! follow them step by step, read step logs, approve or reject.

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

use super::Output;
use super::client::Client;
use super::error::{Exit, coded};
use super::ids::segment;
use super::out::{self, arr_of, or_dash, str_of};
use super::table::Table;

/// How often a followed run or log is polled.
const POLL: Duration = Duration::from_millis(250);

/// `pipelines list`.
pub(crate) async fn list(client: &Client, output: Output) -> anyhow::Result<Exit> {
    let v = client
        .get("/api/v1/pipelines", &[])
        .await
        .context("cannot list pipelines")?;
    if output == Output::Json {
        out::json(&v["pipelines"])?;
        return Ok(Exit::Success);
    }
    let mut t = Table::new(&["NAME", "REPOSITORY", "BRANCH", "FILE"]);
    for p in arr_of(&v, "pipelines") {
        let src = &p["source"];
        t.row(vec![
            str_of(p, "name").to_string(),
            or_dash(str_of(src, "repo")),
            or_dash(str_of(src, "branch")),
            or_dash(str_of(src, "file")),
        ]);
    }
    out::write_stdout(t.render().as_bytes())?;
    Ok(Exit::Success)
}

/// `pipelines show NAME`: its source and its last ten runs.
pub(crate) async fn show_pipeline(
    client: &Client,
    output: Output,
    name: &str,
) -> anyhow::Result<Exit> {
    let v = client
        .get("/api/v1/pipelines", &[])
        .await
        .context("cannot list pipelines")?;
    let p = arr_of(&v, "pipelines")
        .iter()
        .find(|p| str_of(p, "name") == name)
        .cloned()
        .ok_or_else(|| coded(Exit::Failed, format!("no pipeline `{name}`")))?;
    let runs = client
        .get("/api/v1/runs", &[("pipeline", name), ("limit", "10")])
        .await?;
    if output == Output::Json {
        out::json(&json!({"pipeline": p, "runs": runs["runs"]}))?;
        return Ok(Exit::Success);
    }
    let src = &p["source"];
    out::line(&format!(
        "{name}: {} branch {} file {}",
        str_of(src, "repo"),
        str_of(src, "branch"),
        str_of(src, "file")
    ))?;
    if let Some(ms) = src["poll_ms"].as_u64() {
        out::line(&format!("polled every {:.1}s", ms as f64 / 1000.0))?;
    }
    for c in arr_of(src, "cron") {
        out::line(&format!("cron {}", c.as_str().unwrap_or("")))?;
    }
    if !str_of(&p, "owner").is_empty() {
        out::line(&format!("owner {}", str_of(&p, "owner")))?;
    }
    let mut steps = Table::new(&["STEP", "KIND", "NEEDS", "ENV"]);
    for s in arr_of(&p, "steps") {
        steps.row(vec![
            str_of(s, "name").to_string(),
            str_of(s, "kind").to_string(),
            or_dash(
                &arr_of(s, "needs")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            or_dash(str_of(s, "env")),
        ]);
    }
    out::write_stdout(steps.render().as_bytes())?;
    if !arr_of(&p, "params").is_empty() {
        let mut params = Table::new(&["PARAMETER", "TYPE", "DEFAULT", "DESCRIPTION"]);
        for q in arr_of(&p, "params") {
            let kind = match arr_of(q, "options") {
                [] => str_of(q, "type").to_string(),
                options => format!(
                    "{} ({})",
                    str_of(q, "type"),
                    options
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("|")
                ),
            };
            let default = match q["default"].as_str() {
                Some(d) => d.to_string(),
                None if q["required"] == true => "(required)".to_string(),
                None => "-".to_string(),
            };
            params.row(vec![
                str_of(q, "name").to_string(),
                kind,
                default,
                or_dash(str_of(q, "description")),
            ]);
        }
        out::write_stdout(params.render().as_bytes())?;
    }
    out::write_stdout(runs_table(arr_of(&runs, "runs")).render().as_bytes())?;
    Ok(Exit::Success)
}

/// `pipelines lint [FILE]`: every problem of a local pipeline file (and its deploy files)
/// at once; exit code 4 when there is any.
pub(crate) fn lint(output: Output, file: &std::path::Path) -> anyhow::Result<Exit> {
    let problems = pipeline::lint::lint(file).map_err(|e| coded(Exit::Invalid, e))?;
    match output {
        Output::Json => out::json(&json!({"file": file, "problems": problems}))?,
        Output::Text if problems.is_empty() => {
            out::line(&format!("{}: ok", file.display()))?;
        }
        Output::Text => {
            for p in &problems {
                eprintln!("{p}");
            }
        }
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Invalid
    })
}

/// `pipelines webhook-secret NAME [--value S]`.
pub(crate) async fn webhook_secret(
    client: &Client,
    output: Output,
    name: &str,
    value: Option<&str>,
) -> anyhow::Result<Exit> {
    let body = match value {
        Some(v) => json!({ "value": v }),
        None => json!({}),
    };
    let v = client
        .json(
            client
                .request(
                    Method::PUT,
                    &format!("/api/v1/pipelines/{}/webhook-secret", segment(name)),
                )
                .json(&body),
        )
        .await?;
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => {
            out::line(&format!("secret: {}", str_of(&v, "secret")))?;
            out::line(&format!(
                "webhook: POST {}{} (content type application/json, push events)",
                client.base().trim_end_matches('/'),
                str_of(&v, "url")
            ))?;
            out::line(
                "GitHub signs with X-Hub-Signature-256, Gitea and Forgejo with X-Gitea-Signature; GitLab sends the secret as X-Gitlab-Token",
            )?;
        }
    }
    Ok(Exit::Success)
}

/// `pipelines add NAME --repo R --branch B [--file F]`.
pub(crate) async fn add(
    client: &Client,
    output: Output,
    name: &str,
    repo: &str,
    branch: &str,
    file: Option<&str>,
) -> anyhow::Result<Exit> {
    let mut body = json!({"repo": repo, "branch": branch});
    if let Some(f) = file {
        body["file"] = json!(f);
    }
    let v = client
        .json(
            client
                .request(Method::PUT, &format!("/api/v1/pipelines/{}", segment(name)))
                .json(&body),
        )
        .await?;
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => out::line(&format!(
            "pipeline {name}: steps {}",
            arr_of(&v, "steps")
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))?,
    }
    Ok(Exit::Success)
}

/// `pipelines run NAME [-p K=V]... [--follow] [--yes]`. A run that deploys to an
/// environment whose policy asks for confirmation (prod) is confirmed by `--yes` or by
/// typing the environment's name at the prompt.
pub(crate) async fn run(
    client: &Client,
    output: Output,
    name: &str,
    params: &[String],
    follow_run: bool,
    yes: bool,
) -> anyhow::Result<Exit> {
    let mut map = BTreeMap::new();
    for p in params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| coded(Exit::Invalid, format!("parameter `{p}` is not NAME=VALUE")))?;
        map.insert(k.to_string(), v.to_string());
    }
    let path = format!("/api/v1/pipelines/{}/runs", segment(name));
    let start = |confirm: bool| {
        client.json(
            client
                .request(Method::POST, &path)
                .json(&json!({ "params": map, "confirm": confirm })),
        )
    };
    let v = match start(yes).await {
        Err(e) if !yes && confirmation_asked(&e) => {
            let envs = e
                .downcast_ref::<super::error::ApiError>()
                .map(|a| a.message.clone())
                .unwrap_or_default();
            if !super::prompt::stdin_is_terminal() {
                return Err(coded(
                    Exit::Conflict,
                    format!("{envs}; not a terminal, so nothing was started"),
                ));
            }
            let answer =
                super::prompt::ask(&format!("{envs}.\nType `yes` to start the run: ")).await?;
            if answer.trim() != "yes" {
                return Err(coded(Exit::Failed, "not confirmed; nothing was started"));
            }
            start(true).await?
        }
        other => other?,
    };
    started(client, output, &v, follow_run).await
}

/// Whether the server asked for confirmation (409 "... asks for confirmation ...").
fn confirmation_asked(e: &anyhow::Error) -> bool {
    e.downcast_ref::<super::error::ApiError>()
        .is_some_and(|a| a.status == 409 && a.message.contains("asks for confirmation"))
}

/// `runs retry ID [--follow]`.
pub(crate) async fn retry(
    client: &Client,
    output: Output,
    id: &str,
    follow_run: bool,
) -> anyhow::Result<Exit> {
    let v = client
        .json(client.request(Method::POST, &format!("/api/v1/runs/{}/retry", segment(id))))
        .await?;
    started(client, output, &v, follow_run).await
}

/// Reports a run that was just started (`run #N of P: ID`); with `follow_run`, on stderr,
/// and then follows it to its end.
async fn started(
    client: &Client,
    output: Output,
    run: &Value,
    follow_run: bool,
) -> anyhow::Result<Exit> {
    let id = str_of(run, "id");
    let line = format!(
        "run #{} of {}: {id}",
        run["number"],
        str_of(run, "pipeline")
    );
    if follow_run {
        eprintln!("{line}");
        return follow(client, output, id).await;
    }
    match output {
        Output::Json => out::json(run)?,
        Output::Text => out::line(&line)?,
    }
    Ok(Exit::Success)
}

/// Polls a run until it ends, printing each step's changes on stderr; the exit code says
/// how it ended.
async fn follow(client: &Client, output: Output, id: &str) -> anyhow::Result<Exit> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let run = client
            .get(&format!("/api/v1/runs/{}", segment(id)), &[])
            .await?;
        for s in arr_of(&run, "steps") {
            let (name, status) = (str_of(s, "name"), str_of(s, "status"));
            if seen.get(name).map(String::as_str) == Some(status) {
                continue;
            }
            seen.insert(name.to_string(), status.to_string());
            let detail = match status {
                "waiting" => format!(" (slipway runs approve {id} {name})"),
                _ if !str_of(s, "reason").is_empty() => format!(": {}", str_of(s, "reason")),
                _ => String::new(),
            };
            if status != "pending" {
                eprintln!("  {name}: {status}{detail}");
            }
        }
        let status = str_of(&run, "status");
        if !matches!(status, "queued" | "running") {
            match output {
                Output::Json => out::json(&run)?,
                Output::Text => out::line(&format!(
                    "run {id}: {status}{}",
                    if str_of(&run, "reason").is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", str_of(&run, "reason"))
                    }
                ))?,
            }
            return Ok(if status == "succeeded" {
                Exit::Success
            } else {
                Exit::Failed
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `runs list [--pipeline P]`.
pub(crate) async fn runs(
    client: &Client,
    output: Output,
    pipeline: Option<&str>,
) -> anyhow::Result<Exit> {
    let mut query = vec![];
    if let Some(p) = pipeline {
        query.push(("pipeline", p));
    }
    let v = client
        .get("/api/v1/runs", &query)
        .await
        .context("cannot list runs")?;
    if output == Output::Json {
        out::json(&v["runs"])?;
        return Ok(Exit::Success);
    }
    out::write_stdout(runs_table(arr_of(&v, "runs")).render().as_bytes())?;
    Ok(Exit::Success)
}

/// The runs table of `runs list` and `pipelines show`.
fn runs_table(runs: &[Value]) -> Table {
    let mut t = Table::new(&[
        "ID",
        "PIPELINE",
        "#",
        "STATUS",
        "EVENT",
        "BY",
        "CREATED",
        "WAITING FOR",
    ]);
    for r in runs {
        t.row(vec![
            str_of(r, "id").to_string(),
            str_of(r, "pipeline").to_string(),
            r["number"].to_string(),
            run_status(r),
            str_of(r, "event").to_string(),
            str_of(r, "triggeredBy").to_string(),
            str_of(r, "createdAt").to_string(),
            or_dash(str_of(r, "waitingFor")),
        ]);
    }
    t
}

/// A run's status as people read it: a run that waits says so (`waiting`), not `running`.
fn run_status(r: &Value) -> String {
    match (str_of(r, "status"), str_of(r, "waitingFor")) {
        ("running", w) if !w.is_empty() => "waiting".to_string(),
        (status, _) => status.to_string(),
    }
}

/// `1.2s`, `3m04s`, or `-` for a step that has not started.
fn duration(ms: &Value) -> String {
    let Some(ms) = ms.as_i64() else {
        return "-".into();
    };
    let secs = ms.max(0) / 1000;
    if secs < 60 {
        format!("{:.1}s", ms.max(0) as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// `runs show ID`.
pub(crate) async fn show(client: &Client, output: Output, id: &str) -> anyhow::Result<Exit> {
    let run = client
        .get(&format!("/api/v1/runs/{}", segment(id)), &[])
        .await?;
    if output == Output::Json {
        out::json(&run)?;
        return Ok(Exit::Success);
    }
    out::line(&format!(
        "run #{} of {}: {}{}  ({} by {}, {} {})",
        run["number"],
        str_of(&run, "pipeline"),
        run_status(&run),
        if str_of(&run, "reason").is_empty() {
            String::new()
        } else {
            format!(": {}", str_of(&run, "reason"))
        },
        str_of(&run, "event"),
        str_of(&run, "triggeredBy"),
        str_of(&run, "branch"),
        str_of(&run, "sha").chars().take(12).collect::<String>(),
    ))?;
    if !str_of(&run, "waitingFor").is_empty() {
        out::line(&format!("waiting for {}", str_of(&run, "waitingFor")))?;
    }
    let mut t = Table::new(&[
        "STEP",
        "STATUS",
        "DURATION",
        "ATTEMPTS",
        "DECIDED BY",
        "REASON",
    ]);
    for s in arr_of(&run, "steps") {
        t.row(vec![
            str_of(s, "name").to_string(),
            str_of(s, "status").to_string(),
            duration(&s["durationMs"]),
            s["attempts"].to_string(),
            or_dash(str_of(s, "decidedBy")),
            or_dash(str_of(s, "reason")),
        ]);
    }
    out::write_stdout(t.render().as_bytes())?;
    Ok(Exit::Success)
}

/// `runs logs ID STEP [-f]`: the step's log; with `-f`, until the step has ended.
pub(crate) async fn logs(
    client: &Client,
    output: Output,
    id: &str,
    step: &str,
    follow_log: bool,
) -> anyhow::Result<Exit> {
    let mut after = 0i64;
    loop {
        let path = format!("/api/v1/runs/{}/steps/{}/logs", segment(id), segment(step));
        let after_text = after.to_string();
        let page = client.get(&path, &[("after", after_text.as_str())]).await?;
        for l in arr_of(&page, "lines") {
            match output {
                Output::Json => out::line(&l.to_string())?,
                Output::Text => out::line(str_of(l, "line"))?,
            }
        }
        let next = page["next"].as_i64().unwrap_or(after);
        let got_lines = next != after;
        after = next;
        if got_lines {
            continue;
        }
        if !follow_log {
            return Ok(Exit::Success);
        }
        let run = client
            .get(&format!("/api/v1/runs/{}", segment(id)), &[])
            .await?;
        let ended = arr_of(&run, "steps")
            .iter()
            .find(|s| str_of(s, "name") == step)
            .is_none_or(|s| !matches!(str_of(s, "status"), "pending" | "running" | "waiting"));
        if ended {
            return Ok(Exit::Success);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `runs approve ID STEP` and `runs reject ID STEP`.
pub(crate) async fn decide(
    client: &Client,
    output: Output,
    id: &str,
    step: &str,
    approve: bool,
) -> anyhow::Result<Exit> {
    let verb = if approve { "approve" } else { "reject" };
    let v = client
        .json(client.request(
            Method::POST,
            &format!(
                "/api/v1/runs/{}/steps/{}/{verb}",
                segment(id),
                segment(step)
            ),
        ))
        .await?;
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => out::line(&format!(
            "{step} of run {id}: {}",
            if approve { "approved" } else { "rejected" }
        ))?,
    }
    Ok(Exit::Success)
}

/// `runs cancel ID`.
pub(crate) async fn cancel(client: &Client, output: Output, id: &str) -> anyhow::Result<Exit> {
    let v = client
        .json(client.request(
            Method::POST,
            &format!("/api/v1/runs/{}/cancel", segment(id)),
        ))
        .await?;
    match output {
        Output::Json => out::json(&v)?,
        Output::Text => out::line(&format!("run {id}: cancelling"))?,
    }
    Ok(Exit::Success)
}
