//! Recovery after a restart: processes left by cut-off runs are killed, runs that only
//! waited resume, runs cut off while a step ran are marked interrupted.

use super::{Service, ServiceError, now_ms};
use std::collections::HashMap;
use store::{RunStatus, StepStatus};

impl Service {
    /// marks the others interrupted, naming the steps that were running.
    pub fn recover(&self) -> Result<(), ServiceError> {
        let unfinished = self.inner.store.unfinished_runs()?;
        // Step commands run in process groups of their own and outlive a crashed server:
        // nothing of these runs may keep running before they are resumed or closed.
        let ids: Vec<String> = unfinished.iter().map(|r| r.id.clone()).collect();
        for (run, processes) in kill_leftovers(&ids) {
            tracing::warn!(%run, processes, "killed processes left by a run cut off by a restart");
        }
        for run in unfinished {
            let steps = self.inner.store.steps(&run.id)?;
            let running: Vec<&str> = steps
                .iter()
                .filter(|s| s.status == StepStatus::Running)
                .map(|s| s.name.as_str())
                .collect();
            if !running.is_empty() {
                let reason = format!(
                    "interrupted: Slipway stopped while {} ran",
                    running
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.inner.store.set_run_status(
                    &run.id,
                    RunStatus::Interrupted,
                    Some(&reason),
                    None,
                    Some(now_ms()),
                )?;
                for s in steps.iter().filter(|s| s.status == StepStatus::Running) {
                    let mut row = s.clone();
                    row.status = StepStatus::Cancelled;
                    row.reason = Some("interrupted by a restart".into());
                    row.finished_at = Some(now_ms());
                    self.inner.store.put_step(&run.id, &row)?;
                }
                continue;
            }
            let done = steps
                .iter()
                .filter(|s| s.status == StepStatus::Succeeded)
                .map(|s| {
                    (
                        s.name.clone(),
                        serde_json::from_str(&s.outputs).unwrap_or_default(),
                    )
                })
                .collect();
            match self.source(&run.pipeline) {
                Ok(source) => self.spawn_run(run, source, done),
                Err(e) => {
                    self.inner.store.set_run_status(
                        &run.id,
                        RunStatus::Interrupted,
                        Some(&e.to_string()),
                        None,
                        Some(now_ms()),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// SIGKILLs every process whose environment says it belongs to one of the runs `ids`
/// (each step's commands get `SLIPWAY_RUN_ID`, and their children inherit it), in one pass
/// over `/proc`. Returns how many were killed per run.
fn kill_leftovers(ids: &[String]) -> HashMap<String, usize> {
    let mut killed = HashMap::new();
    if ids.is_empty() {
        return killed;
    }
    for (process, run) in launcher::processes_marked("SLIPWAY_RUN_ID") {
        if ids.contains(&run) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(process.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            *killed.entry(run).or_insert(0) += 1;
        }
    }
    killed
}
