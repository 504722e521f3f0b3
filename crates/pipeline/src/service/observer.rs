//! Writes a run's steps and log lines to the store as they happen: step rows at once, log
//! lines in batches (one transaction per batch, written when the batch is full, when it is
//! older than [`FLUSH_AFTER`], and before every step state change, so a step's lines are
//! stored before its end).

use super::{LOG_LINES_KEPT, now_ms};
use crate::{Observer, StepState, Stream};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{StepRow, StepStatus, Store};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lines written in one transaction at most.
const BATCH_LINES: usize = 256;
/// How long a line may wait for its batch.
pub(super) const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// Log lines not yet written: (step, at, stream, line).
#[derive(Default)]
struct LogBuffer {
    lines: Vec<(String, i64, &'static str, String)>,
    since: Option<Instant>,
}

/// Writes a run's steps and logs to the store as they happen.
pub(super) struct StoreObserver {
    store: Arc<Store>,
    run: String,
    /// The run's pipeline and where its steps' ends are counted.
    metrics: Option<(String, Arc<dyn super::RunMetrics>)>,
    steps: Mutex<BTreeMap<String, StepRow>>,
    logs: Mutex<LogBuffer>,
}

impl StoreObserver {
    /// An observer of `run` starting from the step rows already recorded; steps that
    /// run and end are reported to `metrics` (with the run's pipeline).
    pub(super) fn new(
        store: Arc<Store>,
        run: String,
        steps: Vec<StepRow>,
        metrics: Option<(String, Arc<dyn super::RunMetrics>)>,
    ) -> StoreObserver {
        StoreObserver {
            store,
            run,
            metrics,
            steps: Mutex::new(steps.into_iter().map(|s| (s.name.clone(), s)).collect()),
            logs: Mutex::new(LogBuffer::default()),
        }
    }

    /// Changes a step's row and writes it.
    pub(super) fn update(&self, step: &str, f: impl FnOnce(&mut StepRow)) {
        self.flush();
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let row = steps.entry(step.to_string()).or_insert_with(|| StepRow {
            name: step.to_string(),
            outputs: "{}".into(),
            ..StepRow::default()
        });
        f(row);
        if let Err(e) = self.store.put_step(&self.run, row) {
            tracing::error!(run = %self.run, step, error = %e, "cannot record a step");
        }
    }

    /// Writes the buffered log lines in one transaction.
    pub(super) fn flush(&self) {
        let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.lines.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut buffer.lines);
        buffer.since = None;
        let batch: Vec<(&str, i64, &str, &str)> = lines
            .iter()
            .map(|(step, at, stream, line)| (step.as_str(), *at, *stream, line.as_str()))
            .collect();
        if let Err(e) = self
            .store
            .append_log_batch(&self.run, &batch, LOG_LINES_KEPT)
        {
            tracing::error!(run = %self.run, lines = batch.len(), error = %e, "cannot store log lines");
        }
    }

    /// Flushes batches older than [`FLUSH_AFTER`] until `stop`, then once more.
    pub(super) async fn flush_until(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(FLUSH_AFTER) => {}
            }
            let due = self
                .logs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .since
                .is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
            if due {
                self.flush();
            }
        }
        self.flush();
    }
}

impl Observer for StoreObserver {
    fn step_started(&self, step: &str, attempt: u32) {
        self.update(step, |r| {
            r.status = StepStatus::Running;
            r.attempts = i64::from(attempt);
            r.started_at = r.started_at.or(Some(now_ms()));
        });
    }

    fn step_finished(&self, step: &str, state: &StepState) {
        let mut ran = None;
        self.update(step, |r| {
            let (status, reason, outputs, attempts) = match state {
                StepState::Succeeded { outputs, attempts } => (
                    StepStatus::Succeeded,
                    None,
                    serde_json::to_string(outputs).ok(),
                    *attempts,
                ),
                StepState::Failed { reason, attempts } => {
                    (StepStatus::Failed, Some(reason.clone()), None, *attempts)
                }
                StepState::Skipped { reason } => {
                    (StepStatus::Skipped, Some(reason.clone()), None, 0)
                }
                StepState::NotRun { reason } => (StepStatus::NotRun, Some(reason.clone()), None, 0),
                StepState::Cancelled => (StepStatus::Cancelled, None, None, 0),
            };
            r.status = status;
            // A step kept from an earlier run (0 attempts here) keeps its note.
            if attempts > 0 || reason.is_some() {
                r.reason = reason;
            }
            if let Some(o) = outputs {
                r.outputs = o;
            }
            if attempts > 0 {
                r.attempts = i64::from(attempts);
            }
            let now = now_ms();
            r.finished_at = Some(now);
            // Only a step that ran (skipped ones, and steps kept from an earlier run,
            // have no attempts here).
            if let (true, Some(started)) = (attempts > 0, r.started_at) {
                ran = Some((status, now.saturating_sub(started).max(0) as f64 / 1000.0));
            }
        });
        if let (Some((status, seconds)), Some((pipeline, m))) = (ran, &self.metrics) {
            m.step_finished(pipeline, step, status.as_str(), seconds);
        }
    }

    fn log(&self, step: &str, stream: Stream, line: String) {
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        };
        let full = {
            let mut buffer = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            buffer.since.get_or_insert_with(Instant::now);
            buffer
                .lines
                .push((step.to_string(), now_ms(), stream, line));
            buffer.lines.len() >= BATCH_LINES
        };
        if full {
            self.flush();
        }
    }
}
