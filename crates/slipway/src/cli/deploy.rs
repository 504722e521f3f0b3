//! Commands that start a deployment (deploy, scale, restart, delete) and report its end.

use anyhow::Context;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::client::{Client, DeploymentResult};
use super::confirm;
use super::error::{Exit, coded};
use super::follow::{Followed, Outcome, follow};
use super::ids::AppId;
use super::{Output, WaitOpts, out};

/// What kind of change a command makes, for messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change {
    /// Present participle for progress (`deploying`).
    verb: &'static str,
    /// Past participle for the result (`deployed`).
    done: &'static str,
}

const DEPLOY: Change = Change {
    verb: "deploying",
    done: "deployed",
};
const SCALE: Change = Change {
    verb: "scaling",
    done: "scaled",
};
const RESTART: Change = Change {
    verb: "restarting",
    done: "restarted",
};
const ROLLBACK: Change = Change {
    verb: "rolling back",
    done: "rolled back",
};
const DELETE: Change = Change {
    verb: "deleting",
    done: "deleted",
};

/// `apps deploy`: PUT the definition in `file` and follow the deployment.
pub(crate) async fn deploy(
    client: &Client,
    output: Output,
    file: &Path,
    force: bool,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    let name = if file == Path::new("-") {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    };
    let body = read_input(file)
        .await
        .map_err(|e| coded(Exit::Invalid, format!("cannot read {name}: {e}")))?;
    let id = definition_id(&body)
        .map_err(|e| coded(Exit::Invalid, format!("invalid definition {name}: {e}")))?;
    let rb = client
        .request(Method::PUT, &format!("/v2/apps/{}", id.path()))
        .query(&[("force", force)])
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    let result = client
        .start_deployment(rb)
        .await
        .with_context(|| format!("cannot deploy {id}"))?;
    finish_change(client, output, &id, result, DEPLOY, wait).await
}

/// `apps scale`: PUT `{"instances": N}` to an existing app (a PUT alone would create an
/// app from the bare body), after confirmation where the environment asks for it.
pub(crate) async fn scale(
    client: &Client,
    output: Output,
    id: &str,
    instances: u32,
    force: bool,
    yes: bool,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let app = client
        .app(&id)
        .await
        .with_context(|| format!("cannot scale {id}"))?;
    let what = format!("scale {id} to {instances} instances");
    confirm::app_change(client, &id, &app, &what, yes).await?;
    let rb = client
        .request(Method::PUT, &format!("/v2/apps/{}", id.path()))
        .query(&[("force", force)])
        .json(&json!({ "instances": instances }));
    let result = client
        .start_deployment(rb)
        .await
        .with_context(|| format!("cannot scale {id}"))?;
    finish_change(client, output, &id, result, SCALE, wait).await
}

/// `apps restart`: POST `/v2/apps/{id}/restart`.
pub(crate) async fn restart(
    client: &Client,
    output: Output,
    id: &str,
    force: bool,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let rb = client
        .request(Method::POST, &format!("/v2/apps/{}/restart", id.path()))
        .query(&[("force", force)]);
    let result = client
        .start_deployment(rb)
        .await
        .with_context(|| format!("cannot restart {id}"))?;
    finish_change(client, output, &id, result, RESTART, wait).await
}

/// One version of an app, as `apps versions` shows it.
struct Version {
    version: String,
    config_at: String,
    image: String,
    instances: String,
    /// Tags of the registry that name the image's digest (its release version).
    tags: Vec<String>,
}

/// The app's versions, newest first, each with its definition's image and instances.
async fn app_versions(client: &Client, id: &AppId, limit: usize) -> anyhow::Result<Vec<Version>> {
    let list = client
        .get(&format!("/v2/apps/{}/versions", id.path()), &[])
        .await
        .with_context(|| format!("cannot read the versions of {id}"))?;
    let mut versions: Vec<String> = list["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    // RFC 3339 timestamps of one format sort by time.
    versions.sort_by(|a, b| b.cmp(a));
    versions.truncate(limit);
    let mut out = Vec::new();
    for v in versions {
        let def = client
            .get(&format!("/v2/apps/{}/versions/{v}", id.path()), &[])
            .await?;
        out.push(Version {
            config_at: def
                .pointer("/versionInfo/lastConfigChangeAt")
                .and_then(Value::as_str)
                .unwrap_or(&v)
                .to_string(),
            image: def
                .pointer("/container/docker/image")
                .and_then(Value::as_str)
                .map_or_else(
                    || def["cmd"].as_str().unwrap_or("-").to_string(),
                    str::to_string,
                ),
            instances: def["instances"].to_string(),
            version: v,
            tags: Vec::new(),
        });
    }
    Ok(out)
}

/// Fills in the release versions (tags) of pinned images from their registries.
async fn with_tags(mut list: Vec<Version>) -> Vec<Version> {
    let tags = super::registry::tags_by_digest(list.iter().map(|v| v.image.as_str())).await;
    for v in &mut list {
        if let Some(t) = tags.get(&v.image) {
            v.tags = t.clone();
        }
    }
    list
}

/// `apps versions ID`.
pub(crate) async fn versions(
    client: &Client,
    output: Output,
    id: &str,
    limit: usize,
) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let current = client.app(&id).await?;
    let current = current
        .pointer("/version")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let list = with_tags(app_versions(client, &id, limit).await?).await;
    if output == Output::Json {
        let v: Vec<Value> = list
            .iter()
            .map(|v| {
                json!({"version": v.version, "lastConfigChangeAt": v.config_at,
                       "image": v.image, "tags": v.tags,
                       "instances": v.instances.parse::<u64>().ok(),
                       "current": v.version == current})
            })
            .collect();
        out::json(&json!({ "versions": v }))?;
        return Ok(Exit::Success);
    }
    let mut t = super::table::Table::new(&[
        "VERSION",
        "CONFIG CHANGED",
        "INSTANCES",
        "RELEASE",
        "IMAGE / CMD",
        "",
    ]);
    for v in &list {
        let release = match v.image.rsplit_once(':') {
            // Not pinned: the tag is in the reference (`repo:1.4.0`).
            Some((name, tag)) if !v.image.contains('@') && name.contains('/') => tag.to_string(),
            _ if v.tags.is_empty() => "-".to_string(),
            _ => v.tags.join(","),
        };
        t.row(vec![
            v.version.clone(),
            v.config_at.clone(),
            v.instances.clone(),
            release,
            v.image.clone(),
            if v.version == current {
                "current".into()
            } else {
                String::new()
            },
        ]);
    }
    out::write_stdout(t.render().as_bytes())?;
    Ok(Exit::Success)
}

/// `apps rollback ID [--to VERSION]`: PUT `{"version": V}`.
pub(crate) async fn rollback(
    client: &Client,
    output: Output,
    id: &str,
    to: Option<&str>,
    force: bool,
    yes: bool,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let app = client
        .app(&id)
        .await
        .with_context(|| format!("cannot roll {id} back"))?;
    let target = match to {
        Some(v) => v.to_string(),
        None => {
            let current_config = app
                .pointer("/versionInfo/lastConfigChangeAt")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            app_versions(client, &id, 100)
                .await?
                .into_iter()
                .find(|v| v.config_at != current_config)
                .map(|v| v.version)
                .ok_or_else(|| {
                    coded(
                        Exit::Failed,
                        format!("{id} has no earlier configuration to roll back to"),
                    )
                })?
        }
    };
    let what = format!("roll {id} back to version {target}");
    confirm::app_change(client, &id, &app, &what, yes).await?;
    if output == Output::Text {
        eprintln!("rolling {id} back to version {target}");
    }
    let rb = client
        .request(Method::PUT, &format!("/v2/apps/{}", id.path()))
        .query(&[("force", force)])
        .json(&json!({ "version": target }));
    let result = client
        .start_deployment(rb)
        .await
        .with_context(|| format!("cannot roll {id} back to {target}"))?;
    finish_change(client, output, &id, result, ROLLBACK, wait).await
}

/// `apps delete`: DELETE `/v2/apps/{id}`.
pub(crate) async fn delete(
    client: &Client,
    output: Output,
    id: &str,
    yes: bool,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    let id = AppId::new(id);
    let app = client
        .app(&id)
        .await
        .with_context(|| format!("cannot delete {id}"))?;
    confirm::app_change(client, &id, &app, &format!("delete {id}"), yes).await?;
    let rb = client.request(Method::DELETE, &format!("/v2/apps/{}", id.path()));
    let result = client
        .start_deployment(rb)
        .await
        .with_context(|| format!("cannot delete {id}"))?;
    finish_change(client, output, &id, result, DELETE, wait).await
}

/// The file contents, or standard input for `-`.
pub(crate) async fn read_input(file: &Path) -> std::io::Result<Vec<u8>> {
    if file == Path::new("-") {
        tokio::task::spawn_blocking(|| {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
        .map_err(std::io::Error::other)?
    } else {
        tokio::fs::read(file).await
    }
}

/// The app id of a Marathon app definition (its `id` field).
pub(crate) fn definition_id(body: &[u8]) -> Result<AppId, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("expected a JSON object (one Marathon app definition)".to_string());
    }
    match v.get("id").and_then(Value::as_str).map(str::trim) {
        Some(id) if !id.trim_matches('/').is_empty() => Ok(AppId::new(id)),
        _ => Err("missing \"id\" field".to_string()),
    }
}

/// Prints the started deployment, or follows it when asked and reports how it ended.
async fn finish_change(
    client: &Client,
    output: Output,
    id: &AppId,
    result: DeploymentResult,
    change: Change,
    wait: WaitOpts,
) -> anyhow::Result<Exit> {
    if !wait.wait {
        match output {
            Output::Json => out::json(&result_json(id, &result, "started", None))?,
            Output::Text => out::line(&format!(
                "deployment {} started for {id}{}",
                result.id,
                version_suffix(&result.version)
            ))?,
        }
        return Ok(Exit::Success);
    }
    eprintln!(
        "{} {id}: deployment {}{}",
        change.verb,
        result.id,
        version_suffix(&result.version)
    );
    let timeout = Duration::from_secs(wait.timeout);
    let followed = follow(client, id, &result.id, change.verb, timeout).await?;
    let report = Report::of(id, &result, change, wait.timeout, &followed);
    for line in &report.stderr {
        eprintln!("{line}");
    }
    match output {
        Output::Json => out::json(&result_json(id, &result, report.status, report.reason))?,
        Output::Text => {
            if let Some(line) = &report.stdout {
                out::line(line)?;
            }
        }
    }
    Ok(report.exit)
}

fn version_suffix(version: &str) -> String {
    if version.is_empty() {
        String::new()
    } else {
        format!(" (version {version})")
    }
}

/// `{"deploymentId", "version", "app", "status"[, "reason"]}` for `--output json`.
fn result_json(id: &AppId, r: &DeploymentResult, status: &str, reason: Option<String>) -> Value {
    let mut v = json!({
        "deploymentId": r.id,
        "version": r.version,
        "app": id.display(),
        "status": status,
    });
    if let Some(reason) = reason {
        v["reason"] = Value::String(reason);
    }
    v
}

/// What to print and return once a followed deployment ended.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    exit: Exit,
    status: &'static str,
    reason: Option<String>,
    stdout: Option<String>,
    stderr: Vec<String>,
}

impl Report {
    fn of(
        id: &AppId,
        r: &DeploymentResult,
        change: Change,
        timeout_secs: u64,
        f: &Followed,
    ) -> Report {
        let failure = f.progress.as_ref().and_then(|p| p.failure.as_ref());
        match &f.outcome {
            Outcome::Success => Report {
                exit: Exit::Success,
                status: "success",
                reason: None,
                stdout: Some(format!(
                    "{id} {}: deployment {} succeeded{}",
                    change.done,
                    r.id,
                    version_suffix(&r.version)
                )),
                stderr: Vec::new(),
            },
            Outcome::Failed(reason) => {
                let mut stderr = vec![format!(
                    "error: deployment {} of {id} failed: {reason}",
                    r.id
                )];
                stderr.extend(failure.map(|f| format!("  {}", f.text())));
                Report {
                    exit: Exit::Failed,
                    status: "failed",
                    reason: Some(reason.clone()),
                    stdout: None,
                    stderr,
                }
            }
            Outcome::TimedOut => {
                let waiting = match &f.progress {
                    Some(p) => p.text(),
                    None => "the deployment to finish".to_string(),
                };
                let mut stderr = vec![
                    format!(
                        "error: timed out after {timeout_secs}s waiting for deployment {} of {id}",
                        r.id
                    ),
                    format!("  still waiting for: {waiting}"),
                ];
                stderr.extend(failure.map(|f| format!("  {}", f.text())));
                if failure.is_some() {
                    stderr.push(format!(
                        "  tasks of the new version keep failing (CrashLoopBackOff): \
                         `slipway apps logs {id} --previous` shows the last one's output"
                    ));
                }
                stderr.push(
                    "hint: the deployment keeps running; see `slipway deployments list`"
                        .to_string(),
                );
                Report {
                    exit: Exit::Timeout,
                    status: "timeout",
                    reason: Some(format!("still waiting for: {waiting}")),
                    stdout: None,
                    stderr,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::progress::Progress;

    #[test]
    fn definition_ids() {
        let ok = |body: &str| definition_id(body.as_bytes()).map(|id| id.display().to_string());
        assert_eq!(
            ok(r#"{"id": "web", "cmd": "sleep 1"}"#),
            Ok("/web".to_string())
        );
        assert_eq!(ok(r#"{"id": "/prod/api/"}"#), Ok("/prod/api".to_string()));
        assert_eq!(
            ok(r#"{"cmd": "x"}"#),
            Err("missing \"id\" field".to_string())
        );
        assert_eq!(
            ok(r#"{"id": "/"}"#),
            Err("missing \"id\" field".to_string())
        );
        assert!(ok("[]").is_err_and(|e| e.starts_with("expected a JSON object")));
        assert!(ok("{").is_err_and(|e| e.starts_with("not JSON")));
    }

    fn report(outcome: Outcome, app: serde_json::Value) -> Report {
        let r = DeploymentResult {
            id: "d1".to_string(),
            version: "v2".to_string(),
            body: Value::Null,
        };
        let f = Followed {
            outcome,
            progress: Some(Progress::of(&app)),
        };
        Report::of(&AppId::new("web"), &r, DEPLOY, 30, &f)
    }

    #[test]
    fn reports_per_outcome() {
        let app = json!({"instances": 2, "version": "v2", "tasks": [],
            "lastTaskFailure": {"message": "exit 1", "taskId": "t", "timestamp": "x", "version": "v2"}});
        let ok = report(Outcome::Success, json!({}));
        assert_eq!(ok.exit, Exit::Success);
        assert_eq!(
            ok.stdout.as_deref(),
            Some("/web deployed: deployment d1 succeeded (version v2)")
        );
        let failed = report(
            Outcome::Failed("health checks failed".to_string()),
            app.clone(),
        );
        assert_eq!(failed.exit, Exit::Failed);
        assert_eq!(
            failed.stderr,
            [
                "error: deployment d1 of /web failed: health checks failed",
                "  last task failure: exit 1 (task t at x)"
            ]
        );
        let timed_out = report(Outcome::TimedOut, app);
        assert_eq!(timed_out.exit, Exit::Timeout);
        assert_eq!(
            timed_out.stderr[1],
            "  still waiting for: 0/2 running (new version)"
        );
        assert_eq!(
            timed_out.stderr[2],
            "  last task failure: exit 1 (task t at x)"
        );
        assert_eq!(
            timed_out.stderr[3],
            "  tasks of the new version keep failing (CrashLoopBackOff): \
             `slipway apps logs /web --previous` shows the last one's output"
        );
    }
}
