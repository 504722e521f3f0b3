//! Triggers the server starts by itself: polling a branch for new commits (`on.push.poll`)
//! and cron schedules (`on.cron`).

use super::checkout::git;
use super::{Service, ServiceError, Source, now_ms};
use std::collections::BTreeMap;

/// How long one `git ls-remote` of a polled repository may take: a server that accepts
/// connections and never answers must not stop the polling of every other pipeline.
const POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// When a pipeline's branch is polled next, the last commit a run was started for, and why
/// its repository cannot be reached, if it cannot.
pub(super) struct PollState {
    pub(super) due: tokio::time::Instant,
    pub(super) seen: Option<String>,
    pub(super) problem: Option<GitProblem>,
}

/// A pipeline's repository that polling or a run's checkout could not reach, until one
/// reaches it again. Polling keeps its own interval meanwhile (one `ls-remote` per
/// interval, bounded by a timeout) and starts no run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitProblem {
    /// What git said, last time.
    pub error: String,
    /// When it first failed (ms since the epoch).
    pub since_ms: i64,
    /// Failed attempts since then.
    pub failures: u32,
}

impl Service {
    /// `push` run when the branch has a commit no run was started for. Runs until shutdown.
    pub fn start_polling(&self) {
        let service = self.clone();
        self.inner.tracker.spawn(async move {
            let stop = service.inner.shutdown.clone();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                }
                if let Err(e) = service.poll_once().await {
                    tracing::warn!(error = %e, "polling pipelines");
                }
            }
        });
    }

    async fn poll_once(&self) -> Result<(), ServiceError> {
        let now = tokio::time::Instant::now();
        for row in self.inner.store.pipelines()? {
            let Ok(source) = serde_json::from_str::<Source>(&row.source) else {
                continue;
            };
            self.cron_tick(&row.name, &source.cron, now_ms())?;
            let Some(every) = source.poll_ms.map(std::time::Duration::from_millis) else {
                continue;
            };
            let due = {
                let mut polls = self.inner.polls.lock().unwrap_or_else(|e| e.into_inner());
                let state = polls.entry(row.name.clone()).or_insert(PollState {
                    due: now,
                    seen: None,
                    problem: None,
                });
                if state.due > now {
                    continue;
                }
                state.due = now + every;
                true
            };
            // A run that has not checked out yet will check out the newest commit anyway;
            // one that has (even if it waits for an approval) does not stop a new run.
            let runs = self.inner.store.runs(Some(&row.name), 1)?;
            if !due
                || runs
                    .first()
                    .is_some_and(|r| !r.status.is_finished() && r.sha.is_empty())
            {
                continue;
            }
            let reference = format!("refs/heads/{}", source.branch);
            let listed = tokio::time::timeout(
                POLL_TIMEOUT,
                git(&["ls-remote", "--", &source.repo, &reference], None),
            )
            .await
            .unwrap_or_else(|_| {
                Err(ServiceError::Git(format!(
                    "git ls-remote: no answer from {} within {}s",
                    source.repo,
                    POLL_TIMEOUT.as_secs()
                )))
            });
            self.note_git(
                &row.name,
                listed.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            );
            let head = match listed {
                Ok(out) => out
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                Err(_) => continue,
            };
            if head.is_empty() {
                continue;
            }
            let seen = {
                let polls = self.inner.polls.lock().unwrap_or_else(|e| e.into_inner());
                polls.get(&row.name).and_then(|p| p.seen.clone())
            }
            .or_else(|| runs.first().map(|r| r.sha.clone()));
            match seen {
                Some(seen) if seen == head => {}
                // First look after a restart, no run yet: remember, do not start one.
                None => {}
                Some(_) => {
                    tracing::info!(pipeline = %row.name, commit = %head, "new commit; starting a run");
                    self.trigger(&row.name, "push", "poll", BTreeMap::new())?;
                }
            }
            if let Some(p) = self
                .inner
                .polls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&row.name)
            {
                p.seen = Some(head);
            }
        }
        Ok(())
    }

    /// Why `name`'s repository cannot be reached, while it cannot (polling or a run's
    /// checkout failed, and none succeeded since).
    pub fn git_problem(&self, name: &str) -> Option<GitProblem> {
        self.inner
            .polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|p| p.problem.clone())
    }

    /// Records whether reaching `name`'s repository worked: the first failure is logged as
    /// a warning and later ones only counted, and the first success after them says so.
    pub(super) fn note_git(&self, name: &str, outcome: Result<(), String>) {
        let mut polls = self.inner.polls.lock().unwrap_or_else(|e| e.into_inner());
        let state = polls.entry(name.to_string()).or_insert(PollState {
            due: tokio::time::Instant::now(),
            seen: None,
            problem: None,
        });
        match (outcome, &mut state.problem) {
            (Ok(()), problem @ Some(_)) => {
                let failures = problem.as_ref().map_or(0, |p| p.failures);
                tracing::info!(pipeline = %name, failures, "the repository is reachable again");
                *problem = None;
            }
            (Ok(()), None) => {}
            (Err(error), Some(p)) => {
                p.failures += 1;
                p.error = error;
            }
            (Err(error), problem @ None) => {
                tracing::warn!(pipeline = %name, %error, "cannot reach the repository");
                *problem = Some(GitProblem {
                    error,
                    since_ms: now_ms(),
                    failures: 1,
                });
            }
        }
    }

    /// Starts a `cron` run when one of `schedules` fires in the current minute and no cron
    /// run was started in it yet (also across a restart: the last run says).
    fn cron_tick(&self, name: &str, schedules: &[String], now_ms: i64) -> Result<(), ServiceError> {
        if schedules.is_empty() {
            return Ok(());
        }
        let minute_start = now_ms.div_euclid(60_000) * 60_000;
        let fires = schedules
            .iter()
            .filter_map(|c| model::pipeline::Cron::parse(c).ok())
            .any(|c| c.matches(minute_start / 1000));
        if !fires {
            return Ok(());
        }
        let already = self
            .inner
            .store
            .runs(Some(name), 20)?
            .iter()
            .any(|r| r.event == "cron" && r.created_at >= minute_start);
        if !already {
            tracing::info!(pipeline = %name, "cron schedule fired; starting a run");
            self.trigger(name, "cron", "cron", BTreeMap::new())?;
        }
        Ok(())
    }
}
