//! What runs wait for, and how waiting runs make way: a run holds its pipeline's turn only
//! while it works (a run that waits for an approval hands the turn to the next run, so
//! new commits are built and tested meanwhile); deploys to one environment stay one at a
//! time, in the order they asked; an approved run supersedes the older runs of its
//! pipeline that wait (for an approval or for the environment) to deploy to the same
//! environment.

use super::Service;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// A run's place in its pipeline's queue; given up when the run starts waiting.
#[derive(Clone, Default)]
pub(super) struct Turn(Arc<Mutex<Option<OwnedMutexGuard<()>>>>);

impl Turn {
    /// Holds `guard` until [`Turn::give_up`] or the end of the run.
    pub(super) fn holding(guard: OwnedMutexGuard<()>) -> Turn {
        Turn(Arc::new(Mutex::new(Some(guard))))
    }

    /// Lets the pipeline's next run start.
    pub(super) fn give_up(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// How a run was stopped from outside.
#[derive(Debug, Clone)]
pub(super) enum Ending {
    /// By a person (`user:dana`).
    Cancelled(String),
    /// By a newer run (the reason to record).
    Superseded(String),
}

/// A run waiting for an environment's deploy lock.
#[derive(Debug, Clone)]
pub(super) struct EnvWait {
    pub(super) pipeline: String,
    pub(super) number: i64,
    /// The environment's name (`prod` for `BB/prod`).
    pub(super) env: String,
    /// What to show (`the prod environment (deploy step `go-live`)`).
    pub(super) what: String,
}

impl Service {
    /// What the run `id` waits for now, in words (`None`: it does not wait).
    pub fn waiting_for(&self, id: &str, queued: bool) -> Option<String> {
        if queued {
            return Some("its turn (an earlier run of the pipeline is working)".into());
        }
        let mut what: Vec<String> = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((run, _), _)| run == id)
            .map(|((_, step), p)| {
                format!(
                    "approval `{step}` ({}): slipway runs approve {id} {step}",
                    p.info.message
                )
            })
            .collect();
        what.sort();
        if let Some(w) = self
            .inner
            .env_waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            what.push(w.what.clone());
        }
        (!what.is_empty()).then(|| what.join("; "))
    }

    /// Records that `run` waits for `env`'s deploy lock (until [`Service::env_acquired`]).
    pub(super) fn env_waiting(&self, run: &str, wait: EnvWait) {
        self.inner
            .env_waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.to_string(), wait);
    }

    /// `run` got its environment (or stopped waiting).
    pub(super) fn env_acquired(&self, run: &str) {
        self.inner
            .env_waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run);
    }

    /// After `run` (#`number` of `pipeline`) was approved to deploy to `env` by `by`:
    /// older runs of the pipeline waiting to deploy there (for an approval or for the
    /// environment) end as superseded, saying by which run.
    pub(super) fn supersede_older(&self, pipeline: &str, number: i64, env: &str, by: &str) {
        let mut older: Vec<String> = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|p| p.pipeline == pipeline && p.number < number && p.info.env == env)
            .map(|p| p.info.run.clone())
            .collect();
        older.extend(
            self.inner
                .env_waits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, w)| w.pipeline == pipeline && w.number < number && w.env == env)
                .map(|(run, _)| run.clone()),
        );
        older.sort();
        older.dedup();
        for run in older {
            let reason =
                format!("superseded by run #{number} of {pipeline}, approved for {env} by {by}");
            tracing::info!(%run, %reason, "run superseded");
            self.end_from_outside(&run, Ending::Superseded(reason));
        }
    }

    /// Stops a working run: its steps are cancelled and it ends as `ending` says.
    pub(super) fn end_from_outside(&self, run: &str, ending: Ending) -> bool {
        match self
            .inner
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(run)
        {
            Some((token, slot)) => {
                if slot.is_none() {
                    *slot = Some(ending);
                }
                token.cancel();
                true
            }
            None => false,
        }
    }
}
