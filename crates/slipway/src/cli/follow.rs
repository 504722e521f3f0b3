//! Following a deployment until it ends, with a progress bar (TTY) or plain lines (CI, pipes).

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::time::Instant;

use super::client::{Client, is_not_found, is_transient};
use super::ids::AppId;
use super::out::{str_of, u64_of};
use super::progress::{Failure, Progress};

/// Time between two polls.
const POLL: Duration = Duration::from_millis(500);
/// Consecutive failed polls tolerated before giving up (the server may be restarting).
const MAX_POLL_ERRORS: u32 = 10;

/// State of a deployment as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeployState {
    /// Still running, at step `current` of `total` when known.
    Running(Option<(u64, u64)>),
    /// Finished successfully.
    Success,
    /// Failed or was cancelled, with the reason.
    Failed(String),
    /// The server no longer knows the deployment and reports no result.
    Gone,
}

impl DeployState {
    /// Parses `GET /api/v1/deployments/{id}`; unknown statuses count as running.
    pub(crate) fn from_status(v: &Value) -> DeployState {
        let reason = str_of(v, "reason");
        match str_of(v, "status") {
            "success" => DeployState::Success,
            "failed" | "cancelled" | "canceled" => DeployState::Failed(if reason.is_empty() {
                "no reason given".to_string()
            } else {
                reason.to_string()
            }),
            _ => DeployState::Running(step(v)),
        }
    }
}

/// `currentStep`/`totalSteps` of a deployment JSON.
pub(crate) fn step(v: &Value) -> Option<(u64, u64)> {
    Some((u64_of(v, "currentStep")?, u64_of(v, "totalSteps")?))
}

/// How following ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The deployment succeeded.
    Success,
    /// The deployment failed for this reason.
    Failed(String),
    /// The timeout passed first.
    TimedOut,
}

/// The end of a followed deployment with the last progress seen.
#[derive(Clone, Debug)]
pub(crate) struct Followed {
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Last progress of the app (`None` when the app is gone, e.g. after a delete).
    pub(crate) progress: Option<Progress>,
}

/// Text of the current state: app progress (or that the app is gone) and the step.
pub(crate) fn state_text(progress: Option<&Progress>, step: Option<(u64, u64)>) -> String {
    let mut s = match progress {
        Some(p) => p.text(),
        None => "app removed".to_string(),
    };
    if let Some((current, total)) = step {
        s.push_str(&format!(", step {current}/{total}"));
    }
    s
}

/// Polls the deployment and the app until the deployment ends or `timeout` passes.
pub(crate) async fn follow(
    client: &Client,
    app: &AppId,
    deployment_id: &str,
    verb: &str,
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let start = Instant::now();
    let mut view = View::new(format!("{verb} {app}"));
    let mut errors = 0u32;
    loop {
        let polled = poll(client, app, deployment_id).await;
        let (state, progress) = match polled {
            Ok(x) => {
                errors = 0;
                x
            }
            Err(e) => {
                errors += 1;
                if errors >= MAX_POLL_ERRORS || !is_transient(&e) {
                    view.finish();
                    return Err(e.context(format!("lost track of deployment {deployment_id}")));
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let step = match &state {
            DeployState::Running(s) => *s,
            _ => None,
        };
        view.update(progress.as_ref(), step);
        let outcome = match state {
            DeployState::Success => Some(Outcome::Success),
            DeployState::Failed(reason) => Some(Outcome::Failed(reason)),
            DeployState::Gone => Some(match &progress {
                None => Outcome::Success,
                Some(p) if p.complete() => Outcome::Success,
                Some(_) => Outcome::Failed(
                    "the deployment disappeared before the app reached its target \
                     (cancelled or replaced)"
                        .to_string(),
                ),
            }),
            DeployState::Running(_) if start.elapsed() >= timeout => Some(Outcome::TimedOut),
            DeployState::Running(_) => None,
        };
        if let Some(outcome) = outcome {
            view.finish();
            return Ok(Followed { outcome, progress });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One poll: the deployment state, then the app (absent when deleted).
async fn poll(
    client: &Client,
    app: &AppId,
    deployment_id: &str,
) -> anyhow::Result<(DeployState, Option<Progress>)> {
    let state = match client.deployment_status(deployment_id).await {
        Ok(v) => DeployState::from_status(&v),
        Err(e) if is_not_found(&e) => listed_state(client, deployment_id).await?,
        Err(e) => return Err(e),
    };
    let progress = match client.app(app).await {
        Ok(v) => Some(Progress::of(&v)),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(e),
    };
    Ok((state, progress))
}

/// Fallback when the native endpoint does not know the id: look in `GET /v2/deployments`.
async fn listed_state(client: &Client, deployment_id: &str) -> anyhow::Result<DeployState> {
    let list = client.get("/v2/deployments", &[]).await?;
    let found = list
        .as_array()
        .and_then(|a| a.iter().find(|d| str_of(d, "id") == deployment_id));
    Ok(match found {
        Some(d) => DeployState::Running(step(d)),
        None => DeployState::Gone,
    })
}

/// Where progress goes: an indicatif bar on a terminal, plain lines otherwise.
enum View {
    Bar {
        bar: ProgressBar,
        shown_failure: Option<Failure>,
    },
    Plain {
        prefix: String,
        last: String,
    },
}

/// True when progress should be animated: stderr is a terminal and `CI` is not `true`.
fn animated() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    std::io::stderr().is_terminal() && !ci
}

impl View {
    fn new(prefix: String) -> View {
        if animated() {
            let style = ProgressStyle::with_template("{prefix}  [{bar:24}] {msg} ({elapsed})")
                .map(|s| s.progress_chars("##-"))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(1)
                .with_style(style)
                .with_prefix(prefix)
                .with_message("starting");
            bar.enable_steady_tick(Duration::from_millis(250));
            View::Bar {
                bar,
                shown_failure: None,
            }
        } else {
            View::Plain {
                prefix,
                last: String::new(),
            }
        }
    }

    fn update(&mut self, progress: Option<&Progress>, step: Option<(u64, u64)>) {
        let text = state_text(progress, step);
        let failure = progress.and_then(|p| p.failure.clone());
        match self {
            View::Bar { bar, shown_failure } => {
                if let Some(p) = progress {
                    bar.set_length(p.instances);
                    bar.set_position(p.ready.min(p.instances));
                }
                if let Some(f) = failure
                    && shown_failure.as_ref() != Some(&f)
                {
                    bar.println(f.text());
                    *shown_failure = Some(f);
                }
                bar.set_message(text);
            }
            View::Plain { prefix, last } => {
                let line = match &failure {
                    Some(f) => format!("{text}; {}", f.text()),
                    None => text,
                };
                if *last != line {
                    eprintln!("{prefix}: {line}");
                    *last = line;
                }
            }
        }
    }

    fn finish(&mut self) {
        if let View::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn native_statuses() {
        let check = |v: Value, want: DeployState| assert_eq!(DeployState::from_status(&v), want);
        check(
            json!({"status": "running", "currentStep": 1, "totalSteps": 2}),
            DeployState::Running(Some((1, 2))),
        );
        check(
            json!({"status": "success", "reason": null}),
            DeployState::Success,
        );
        check(
            json!({"status": "failed", "reason": "health checks failed"}),
            DeployState::Failed("health checks failed".to_string()),
        );
        check(
            json!({"status": "failed"}),
            DeployState::Failed("no reason given".to_string()),
        );
        check(json!({}), DeployState::Running(None));
    }

    #[test]
    fn state_lines() {
        let app = json!({"instances": 2, "tasks": []});
        let p = Progress::of(&app);
        assert_eq!(
            state_text(Some(&p), Some((1, 2))),
            "0/2 running (new version), step 1/2"
        );
        assert_eq!(state_text(None, None), "app removed");
    }
}
