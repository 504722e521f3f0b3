//! Slipway's durable state: SQLite in WAL mode, one file in the data directory.
//!
//! The store is the only crate that writes SQL. It knows app definitions (from `model`) and
//! otherwise keeps engine records as opaque JSON documents, so the engine can evolve its
//! records without migrations. Writes go through [`Store::write`]: a caller that returns
//! 2xx after `write` succeeded never loses that change on kill -9 (WAL with
//! `synchronous=NORMAL` is durable across process crashes; only a power loss can drop the
//! last commits).
//!
//! Writes that meet are committed together (group commit): a write that finds others
//! waiting for the connection leaves its transaction open for them and waits; the last
//! one in commits the batch, and every write of it returns only then. Each write runs
//! inside a savepoint, so one that fails undoes only its own changes. Every other use
//! of the connection commits an open batch first: nothing reads what is not committed.

mod auth;
mod autoscale;
mod migrate;
mod runs;
mod sessions;

pub use auth::{AuditQuery, AuditRow, SecretMeta, TokenRow, UserRow};
pub use autoscale::{AutoscalerRow, AutoscalerStateRow, DECISIONS_KEPT, DecisionRow};
pub use runs::{LogRow, PipelineRow, RunRow, RunStatus, StepRow, StepStatus};
pub use sessions::SessionRow;

use model::{AppDefinition, PathId, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How many versions of each app are kept for `/versions` and rollback.
pub const MAX_VERSIONS: usize = 50;
/// How many finished deployments are kept.
pub const MAX_DEPLOYMENT_HISTORY: usize = 1000;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document could not be decoded.
    #[error("corrupt record in {table} ({key}): {source}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Row key.
        key: String,
        /// Decoder error.
        #[source]
        source: serde_json::Error,
    },
    /// The database was written by a newer Slipway.
    #[error("database schema version {found} is newer than this binary supports ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest known version.
        supported: i64,
    },
    /// The database lock was poisoned by a panic in another thread.
    #[error("store lock poisoned")]
    Poisoned,
    /// The commit of a batch of writes this one was part of failed: nothing of the batch
    /// was stored.
    #[error("commit failed: {message}")]
    Commit {
        /// What SQLite said.
        message: String,
        /// The disk was full.
        disk_full: bool,
    },
}

impl StoreError {
    /// True when the disk holding the database is full (`SQLITE_FULL`): nothing of the
    /// failed transaction was stored; retry once space is back.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Commit { disk_full, .. } => *disk_full,
            _ => false,
        }
    }

    /// The same failure, for the other writes of a batch.
    fn for_batch(&self) -> StoreError {
        StoreError::Commit {
            message: self.to_string(),
            disk_full: self.is_disk_full(),
        }
    }
}

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the engine needs at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Current app definitions.
    pub apps: Vec<AppDefinition>,
    /// Task documents by id.
    pub tasks: Vec<(String, Value)>,
    /// Running deployment documents by id.
    pub deployments: Vec<(String, Value)>,
    /// Per-app runtime documents.
    pub runtime: Vec<(String, Value)>,
}

/// The SQLite-backed store. Cheap to share behind an `Arc`.
pub struct Store {
    held: Mutex<Held>,
    /// Callers waiting for the connection; a write that sees some leaves its batch open.
    queued: AtomicUsize,
    /// Whether writes that meet share a commit (the default; off only to measure it).
    group_commit: AtomicBool,
    /// Commits of [`Store::write`] batches since open.
    commits: AtomicU64,
}

/// Writes one batch takes at most: under constant contention a batch would otherwise stay
/// open, and its first write wait, for as long as writers keep coming.
const MAX_BATCH: usize = 64;

/// The connection and the batch whose transaction is open on it.
struct Held {
    conn: Connection,
    open: Option<Arc<Batch>>,
    /// Writes in the open batch.
    writes: usize,
}

/// Writes committed together: each waits for the outcome of the commit.
#[derive(Default)]
struct Batch {
    outcome: Mutex<Option<std::result::Result<(), StoreError>>>,
    done: Condvar,
}

impl Batch {
    fn finish(&self, outcome: std::result::Result<(), StoreError>) {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        *o = Some(outcome);
        self.done.notify_all();
    }

    /// Blocks until the batch was committed (or failed).
    fn wait(&self) -> Result<()> {
        let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*o {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(e.for_batch()),
                None => o = self.done.wait(o).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

impl Held {
    /// Commits the open batch (if any) and tells its writes; on failure nothing of it
    /// stays.
    fn commit(&mut self, commits: &AtomicU64) -> Result<()> {
        let Some(batch) = self.open.take() else {
            return Ok(());
        };
        self.writes = 0;
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                commits.fetch_add(1, SeqCst);
                batch.finish(Ok(()));
                Ok(())
            }
            Err(e) => {
                let e = StoreError::from(e);
                let _ = self.conn.execute_batch("ROLLBACK");
                batch.finish(Err(e.for_batch()));
                Err(e)
            }
        }
    }

    /// Rolls the open batch back after `err`: every write of it fails.
    fn abort(&mut self, err: &StoreError) {
        if let Some(batch) = self.open.take() {
            self.writes = 0;
            let _ = self.conn.execute_batch("ROLLBACK");
            batch.finish(Err(err.for_batch()));
        }
    }
}

/// The connection, for one call; any open batch was committed first.
pub(crate) struct ConnGuard<'a>(MutexGuard<'a, Held>);

impl std::ops::Deref for ConnGuard<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        Self::init(conn)
    }

    /// An in-memory store for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        migrate::run(&mut conn)?;
        Ok(Store {
            held: Mutex::new(Held {
                conn,
                open: None,
                writes: 0,
            }),
            queued: AtomicUsize::new(0),
            group_commit: AtomicBool::new(true),
            commits: AtomicU64::new(0),
        })
    }

    /// Turns group commit off (every write commits alone) or back on; for measurements.
    pub fn set_group_commit(&self, on: bool) {
        self.group_commit.store(on, SeqCst);
    }

    /// How many commits [`Store::write`] made since open (writes that met share one).
    pub fn commits(&self) -> u64 {
        self.commits.load(SeqCst)
    }

    /// Waits for the connection, counted as queued meanwhile. A panic of another holder
    /// does not lock everyone out: SQLite rolled back whatever it left unfinished, and a
    /// write that waits for its batch relies on the next holder to commit it.
    fn lock(&self) -> Result<MutexGuard<'_, Held>> {
        self.queued.fetch_add(1, SeqCst);
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        self.queued.fetch_sub(1, SeqCst);
        Ok(held)
    }

    /// Runs a call on the database off the async runtime's worker: on a multi-threaded
    /// Tokio runtime the worker hands its other tasks to another thread for the call
    /// ([`tokio::task::block_in_place`]), so a commit or a wait for the connection never
    /// stalls the tasks queued behind it; elsewhere (plain threads, blocking threads,
    /// single-threaded test runtimes) it just runs. Every public call goes through here.
    pub(crate) fn blocking<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(f)
            }
            _ => f(),
        }
    }

    /// The connection for a read or a write of its own; an open batch is committed first
    /// (its writes learn the outcome, this caller goes on either way).
    pub(crate) fn conn(&self) -> Result<ConnGuard<'_>> {
        let mut held = self.lock()?;
        let _ = held.commit(&self.commits);
        Ok(ConnGuard(held))
    }

    /// Loads the whole runtime state.
    pub fn load(&self) -> Result<Snapshot> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut snap = Snapshot::default();
            for (id, body) in rows(&conn, "SELECT id, definition FROM apps ORDER BY id")? {
                snap.apps.push(decode("apps", &id, &body)?);
            }
            for (id, body) in rows(&conn, "SELECT id, body FROM tasks ORDER BY id")? {
                snap.tasks.push((id.clone(), decode("tasks", &id, &body)?));
            }
            for (id, body) in rows(
                &conn,
                "SELECT id, body FROM deployments ORDER BY created_at",
            )? {
                snap.deployments
                    .push((id.clone(), decode("deployments", &id, &body)?));
            }
            for (id, body) in rows(&conn, "SELECT app_id, body FROM app_runtime")? {
                snap.runtime
                    .push((id.clone(), decode("app_runtime", &id, &body)?));
            }
            Ok(snap)
        })
    }

    /// Runs `f` atomically (all of its changes or, when it fails, none); they are durable
    /// when this returns `Ok`. Writes that meet share one commit (see the crate docs).
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.blocking(|| {
            let mut held = self.lock()?;
            let batch = match &held.open {
                Some(b) => Arc::clone(b),
                None => {
                    held.conn.execute_batch("BEGIN IMMEDIATE")?;
                    let b = Arc::new(Batch::default());
                    held.open = Some(Arc::clone(&b));
                    b
                }
            };
            if let Err(e) = held.conn.execute_batch("SAVEPOINT w") {
                let e = StoreError::from(e);
                held.abort(&e);
                return Err(e);
            }
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(&Tx { tx: &held.conn })
            }));
            let out = match out {
                Ok(out) => out,
                Err(panic) => {
                    // The batch goes with it, and the lock is not left poisoned.
                    held.abort(&StoreError::Commit {
                        message: "a write in the same batch panicked".into(),
                        disk_full: false,
                    });
                    drop(held);
                    std::panic::resume_unwind(panic);
                }
            };
            let end = if out.is_ok() {
                "RELEASE w"
            } else {
                "ROLLBACK TO w; RELEASE w"
            };
            if let Err(e) = held.conn.execute_batch(end) {
                let e = StoreError::from(e);
                held.abort(&e);
                return Err(e);
            }
            held.writes += 1;
            if self.group_commit.load(SeqCst)
                && held.writes < MAX_BATCH
                && self.queued.load(SeqCst) > 0
            {
                // Whoever is waiting for the connection commits the batch (or adds to it
                // and leaves it to the next).
                drop(held);
                if out.is_ok() {
                    batch.wait()?;
                }
                return out;
            }
            let committed = held.commit(&self.commits);
            let out = out?;
            committed?;
            Ok(out)
        })
    }

    /// Stored versions of an app, newest first.
    pub fn app_versions(&self, id: &PathId) -> Result<Vec<Timestamp>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt =
                conn.prepare_cached("SELECT version FROM app_versions WHERE app_id = ?1")?;
            let mut out: Vec<Timestamp> = stmt
                .query_map(params![id.to_string()], |r| r.get::<_, String>(0))?
                .filter_map(|v| v.ok().and_then(|s| Timestamp::parse(&s)))
                .collect();
            out.sort_by(|a, b| b.cmp(a));
            Ok(out)
        })
    }

    /// One stored version of an app.
    pub fn app_version(&self, id: &PathId, version: Timestamp) -> Result<Option<AppDefinition>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let body: Option<String> = conn
                .query_row(
                    "SELECT definition FROM app_versions WHERE app_id = ?1 AND version = ?2",
                    params![id.to_string(), version.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| decode("app_versions", &id.to_string(), &b))
                .transpose()
        })
    }

    /// Finished deployments, newest first.
    pub fn deployment_history(&self, limit: usize) -> Result<Vec<Value>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, body FROM deployment_history ORDER BY finished_at DESC, id LIMIT ?1",
            )?;
            let pairs: Vec<(String, String)> = stmt
                .query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            pairs
                .iter()
                .map(|(id, body)| decode("deployment_history", id, body))
                .collect()
        })
    }

    /// One finished deployment.
    pub fn finished_deployment(&self, id: &str) -> Result<Option<Value>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM deployment_history WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            body.map(|b| decode("deployment_history", id, &b))
                .transpose()
        })
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()?)
        })
    }
}

/// Write operations inside one transaction.
pub struct Tx<'a> {
    pub(crate) tx: &'a Connection,
}

impl Tx<'_> {
    /// Stores the current definition of an app and records it as a version.
    pub fn put_app(&self, def: &AppDefinition) -> Result<()> {
        let id = def.id.to_string();
        let body = encode(def);
        self.tx.execute(
            "INSERT INTO apps (id, definition) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET definition = excluded.definition",
            params![id, body],
        )?;
        self.tx.execute(
            "INSERT OR REPLACE INTO app_versions (app_id, version, definition) VALUES (?1, ?2, ?3)",
            params![id, def.version.to_string(), body],
        )?;
        // Keep the newest MAX_VERSIONS versions (ISO timestamps sort as text).
        self.tx.execute(
            "DELETE FROM app_versions WHERE app_id = ?1 AND version NOT IN
               (SELECT version FROM app_versions WHERE app_id = ?1 ORDER BY version DESC LIMIT ?2)",
            params![id, MAX_VERSIONS as i64],
        )?;
        Ok(())
    }

    /// Removes an app and its version history.
    pub fn delete_app(&self, id: &PathId) -> Result<()> {
        let id = id.to_string();
        self.tx
            .execute("DELETE FROM apps WHERE id = ?1", params![id])?;
        self.tx
            .execute("DELETE FROM app_versions WHERE app_id = ?1", params![id])?;
        self.tx
            .execute("DELETE FROM app_runtime WHERE app_id = ?1", params![id])?;
        Ok(())
    }

    /// Inserts or replaces a task document.
    pub fn put_task(&self, id: &str, app_id: &PathId, body: &Value) -> Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO tasks (id, app_id, body) VALUES (?1, ?2, ?3)",
            params![id, app_id.to_string(), body.to_string()],
        )?;
        Ok(())
    }

    /// Forgets a task.
    pub fn delete_task(&self, id: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM tasks WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Inserts or replaces a running deployment.
    pub fn put_deployment(&self, id: &str, created_at: i64, body: &Value) -> Result<()> {
        self.tx.execute(
            "INSERT INTO deployments (id, created_at, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            params![id, created_at, body.to_string()],
        )?;
        Ok(())
    }

    /// Moves a deployment to the history with its final document.
    pub fn finish_deployment(&self, id: &str, finished_at: i64, body: &Value) -> Result<()> {
        self.tx
            .execute("DELETE FROM deployments WHERE id = ?1", params![id])?;
        self.tx.execute(
            "INSERT OR REPLACE INTO deployment_history (id, finished_at, body) VALUES (?1, ?2, ?3)",
            params![id, finished_at, body.to_string()],
        )?;
        self.tx.execute(
            "DELETE FROM deployment_history WHERE id NOT IN
               (SELECT id FROM deployment_history ORDER BY finished_at DESC LIMIT ?1)",
            params![MAX_DEPLOYMENT_HISTORY as i64],
        )?;
        Ok(())
    }

    /// Stores per-app runtime state.
    pub fn put_runtime(&self, app_id: &PathId, body: &Value) -> Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO app_runtime (app_id, body) VALUES (?1, ?2)",
            params![app_id.to_string(), body.to_string()],
        )?;
        Ok(())
    }

    /// A value of the `meta` table, read inside the transaction.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Hands out the next unused uid of `uids` for tasks and pipeline steps (one counter
    /// for both, so no two apps or pipelines ever share one); `None` when none is left.
    pub fn take_uid(&self, uids: &std::ops::RangeInclusive<u32>) -> Result<Option<u32>> {
        let next = self
            .meta("next_task_uid")?
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|u| uids.contains(u))
            .unwrap_or(*uids.start());
        if next == *uids.end() {
            return Ok(None);
        }
        self.set_meta("next_task_uid", &(next + 1).to_string())?;
        Ok(Some(next))
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }
}

fn rows(conn: &Connection, sql: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(sql)?;
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, key: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        table,
        key: key.to_string(),
        source,
    })
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    // Serialising our own plain data types cannot fail (no non-string map keys, no I/O).
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests;
