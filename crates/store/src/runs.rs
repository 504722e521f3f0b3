//! Pipelines, their runs, the runs' steps and bounded step logs.

use crate::{Result, Store};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, params};

/// Declares a status enum stored as its lowercase name.
macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                $name::parse(s).ok_or_else(|| format!("unknown {} `{s}`", stringify!($name)))
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} `{text}`", stringify!($name)).into())
                })
            }
        }
    };
}

status_enum! {
    /// Where a run is in its life.
    RunStatus {
        /// Waiting for its turn.
        Queued = "queued",
        /// Its steps run (or wait for approvals or an environment).
        Running = "running",
        /// Every step succeeded or was skipped.
        Succeeded = "succeeded",
        /// A step failed or was rejected.
        Failed = "failed",
        /// Someone cancelled it.
        Cancelled = "cancelled",
        /// The server stopped while one of its steps ran.
        Interrupted = "interrupted",
        /// A newer run deployed to the environment this one waited for.
        Superseded = "superseded",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

status_enum! {
    /// Where a step of a run is.
    StepStatus {
        /// Not started yet.
        Pending = "pending",
        /// Its commands run.
        Running = "running",
        /// An approval waits for a decision.
        Waiting = "waiting",
        /// It succeeded.
        Succeeded = "succeeded",
        /// It failed.
        Failed = "failed",
        /// Its `when` was false.
        Skipped = "skipped",
        /// A step it needs did not succeed.
        NotRun = "not_run",
        /// Cancelled while it ran.
        Cancelled = "cancelled",
    }
}

#[allow(clippy::derivable_impls)] // the enum is declared by a macro
impl Default for StepStatus {
    fn default() -> Self {
        StepStatus::Pending
    }
}

/// A registered pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineRow {
    /// Its name.
    pub name: String,
    /// Where its file lives (repository, branch, path), as JSON.
    pub source: String,
    /// When it was registered (ms).
    pub created_at: i64,
    /// When its source last changed (ms).
    pub updated_at: i64,
    /// Who registered it (`None`: registered before owners were recorded).
    pub owner: Option<String>,
}

/// A run of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    /// Unique id.
    pub id: String,
    /// The pipeline.
    pub pipeline: String,
    /// 1, 2, … per pipeline.
    pub number: i64,
    /// Where it is.
    pub status: RunStatus,
    /// `push`, `manual`, `cron` or `retry`.
    pub event: String,
    /// Who or what started it (`user:dana`, `webhook`, `poll`, `cron`).
    pub triggered_by: String,
    /// Branch of the commit.
    pub branch: String,
    /// The commit.
    pub sha: String,
    /// Parameters as JSON.
    pub params: String,
    /// Why it ended as it did, when not succeeded.
    pub reason: Option<String>,
    /// Queued at (ms).
    pub created_at: i64,
    /// Started at (ms).
    pub started_at: Option<i64>,
    /// Finished at (ms).
    pub finished_at: Option<i64>,
}

/// A step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StepRow {
    /// The step's name.
    pub name: String,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// Why it failed or did not run.
    pub reason: Option<String>,
    /// Outputs as a JSON object.
    pub outputs: String,
    /// First attempt started (ms).
    pub started_at: Option<i64>,
    /// Ended (ms).
    pub finished_at: Option<i64>,
    /// Who approved or rejected (approval steps).
    pub decided_by: Option<String>,
    /// When (ms).
    pub decided_at: Option<i64>,
}

/// One stored log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    /// Position in the step's log (1, 2, …; trimmed lines leave a gap at the start).
    pub seq: i64,
    /// When (ms).
    pub at: i64,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    /// The line, masked.
    pub line: String,
}

const RUN_COLS: &str = "id, pipeline, number, status, event, triggered_by, branch, sha, params, reason, created_at, started_at, finished_at";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        number: r.get(2)?,
        status: r.get(3)?,
        event: r.get(4)?,
        triggered_by: r.get(5)?,
        branch: r.get(6)?,
        sha: r.get(7)?,
        params: r.get(8)?,
        reason: r.get(9)?,
        created_at: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
    })
}

impl Store {
    /// Registers or updates a pipeline's source; `owner` is recorded when the pipeline is
    /// new (or had none), an existing owner is kept.
    pub fn put_pipeline(&self, name: &str, source: &str, now: i64) -> Result<()> {
        self.put_pipeline_owned(name, source, now, None)
    }

    /// [`Store::put_pipeline`] recording `owner` for a new pipeline.
    pub fn put_pipeline_owned(
        &self,
        name: &str,
        source: &str,
        now: i64,
        owner: Option<&str>,
    ) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO pipelines (name, source, created_at, updated_at, owner) VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at,
                 owner = COALESCE(pipelines.owner, excluded.owner)",
                params![name, source, now, owner],
            )?;
            Ok(())
        })
    }

    /// All pipelines, by name.
    pub fn pipelines(&self) -> Result<Vec<PipelineRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(
                "SELECT name, source, created_at, updated_at, owner FROM pipelines ORDER BY name",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(PipelineRow {
                        name: r.get(0)?,
                        source: r.get(1)?,
                        created_at: r.get(2)?,
                        updated_at: r.get(3)?,
                        owner: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Queues a run with the next number of its pipeline; returns the number.
    pub fn create_run(&self, run: &RunRow) -> Result<i64> {
        self.write(|tx| {
            let number: i64 = tx.tx.query_row(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE pipeline = ?1",
                params![run.pipeline],
                |r| r.get(0),
            )?;
            tx.tx.execute(
                &format!("INSERT INTO runs ({RUN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![
                    run.id, run.pipeline, number, run.status, run.event, run.triggered_by, run.branch,
                    run.sha, run.params, run.reason, run.created_at, run.started_at, run.finished_at
                ],
            )?;
            Ok(number)
        })
    }

    /// Sets a run's status (and start or end time, when given).
    pub fn set_run_status(
        &self,
        id: &str,
        status: RunStatus,
        reason: Option<&str>,
        started_at: Option<i64>,
        finished_at: Option<i64>,
    ) -> Result<bool> {
        self.blocking(|| {
            let conn = self.conn()?;
            let n = conn.execute(
                "UPDATE runs SET status = ?2, reason = ?3, started_at = COALESCE(?4, started_at),
                 finished_at = COALESCE(?5, finished_at) WHERE id = ?1",
                params![id, status, reason, started_at, finished_at],
            )?;
            Ok(n > 0)
        })
    }

    /// Records the commit a run checked out.
    pub fn set_run_sha(&self, id: &str, sha: &str) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute("UPDATE runs SET sha = ?2 WHERE id = ?1", params![id, sha])?;
            Ok(())
        })
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    &format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"),
                    params![id],
                    run_row,
                )
                .optional()?)
        })
    }

    /// The run numbered `number` of `pipeline`.
    pub fn run_by_number(&self, pipeline: &str, number: i64) -> Result<Option<RunRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    &format!("SELECT {RUN_COLS} FROM runs WHERE pipeline = ?1 AND number = ?2"),
                    params![pipeline, number],
                    run_row,
                )
                .optional()?)
        })
    }

    /// Runs whose id starts with `prefix`, at most `limit`.
    pub fn runs_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<RunRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY created_at LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![prefix, limit as i64], run_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Runs, newest first, of one pipeline or all, at most `limit`.
    pub fn runs(&self, pipeline: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            // Two statements, so each is answered from its index (newest first).
            let rows = match pipeline {
                Some(p) => conn
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLS} FROM runs WHERE pipeline = ?1
                         ORDER BY created_at DESC, number DESC LIMIT ?2"
                    ))?
                    .query_map(params![p, limit as i64], run_row)?
                    .collect::<rusqlite::Result<_>>()?,
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLS} FROM runs ORDER BY created_at DESC, number DESC LIMIT ?1"
                    ))?
                    .query_map(params![limit as i64], run_row)?
                    .collect::<rusqlite::Result<_>>()?,
            };
            Ok(rows)
        })
    }

    /// Runs that were queued or running (to resume or mark interrupted after a restart).
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at"
            ))?;
            let rows = stmt
                .query_map([], run_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Creates or replaces a step's row.
    pub fn put_step(&self, run_id: &str, s: &StepRow) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO run_steps (run_id, name, status, attempts, reason, outputs, started_at, finished_at, decided_by, decided_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(run_id, name) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                 reason = excluded.reason, outputs = excluded.outputs,
                 started_at = COALESCE(run_steps.started_at, excluded.started_at),
                 finished_at = excluded.finished_at, decided_by = excluded.decided_by, decided_at = excluded.decided_at",
                params![
                    run_id, s.name, s.status, s.attempts, s.reason, s.outputs, s.started_at, s.finished_at,
                    s.decided_by, s.decided_at
                ],
            )?;
            Ok(())
        })
    }

    /// The steps of a run, by name.
    pub fn steps(&self, run_id: &str) -> Result<Vec<StepRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(
                "SELECT name, status, attempts, reason, outputs, started_at, finished_at, decided_by, decided_at
                 FROM run_steps WHERE run_id = ?1 ORDER BY name",
            )?;
            let rows = stmt
                .query_map(params![run_id], |r| {
                    Ok(StepRow {
                        name: r.get(0)?,
                        status: r.get(1)?,
                        attempts: r.get(2)?,
                        reason: r.get(3)?,
                        outputs: r.get(4)?,
                        started_at: r.get(5)?,
                        finished_at: r.get(6)?,
                        decided_by: r.get(7)?,
                        decided_at: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Appends lines to a step's log in one transaction, then drops its oldest lines beyond
    /// `keep`. Returns the sequence number of the last line.
    pub fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        lines: &[(i64, &str, &str)],
        keep: usize,
    ) -> Result<i64> {
        self.write(|tx| {
            let mut seq: i64 = tx.tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = ?1 AND step = ?2",
                params![run_id, step],
                |r| r.get(0),
            )?;
            {
                let mut stmt = tx.tx.prepare_cached(
                    "INSERT INTO run_logs (run_id, step, seq, at, stream, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (at, stream, line) in lines {
                    seq += 1;
                    stmt.execute(params![run_id, step, seq, at, stream, line])?;
                }
            }
            tx.tx.execute(
                "DELETE FROM run_logs WHERE run_id = ?1 AND step = ?2 AND seq <= ?3",
                params![run_id, step, seq - keep as i64],
            )?;
            Ok(seq)
        })
    }

    /// Appends lines of several steps (`(step, at, stream, line)`, in order) in one
    /// transaction, then drops each step's oldest lines beyond `keep`.
    pub fn append_log_batch(
        &self,
        run_id: &str,
        lines: &[(&str, i64, &str, &str)],
        keep: usize,
    ) -> Result<()> {
        self.write(|tx| {
            let mut next: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
            {
                let mut last = tx.tx.prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) FROM run_logs WHERE run_id = ?1 AND step = ?2",
                )?;
                let mut insert = tx.tx.prepare_cached(
                    "INSERT INTO run_logs (run_id, step, seq, at, stream, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (step, at, stream, line) in lines {
                    let seq = match next.entry(step) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(last.query_row(params![run_id, step], |r| r.get(0))?)
                        }
                    };
                    *seq += 1;
                    insert.execute(params![run_id, step, *seq, at, stream, line])?;
                }
            }
            for (step, seq) in next {
                tx.tx.execute(
                    "DELETE FROM run_logs WHERE run_id = ?1 AND step = ?2 AND seq <= ?3",
                    params![run_id, step, seq - keep as i64],
                )?;
            }
            Ok(())
        })
    }

    /// Lines of a step's log after `after` (0: from the start), at most `limit`.
    pub fn logs(&self, run_id: &str, step: &str, after: i64, limit: usize) -> Result<Vec<LogRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, stream, line FROM run_logs WHERE run_id = ?1 AND step = ?2 AND seq > ?3
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![run_id, step, after, limit as i64], |r| {
                    Ok(LogRow {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        stream: r.get(2)?,
                        line: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }
}
