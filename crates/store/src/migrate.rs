//! Schema migrations keyed on SQLite's `PRAGMA user_version`, one SQL file per step.

use crate::{Result, StoreError};
use rusqlite::Connection;

/// Migration scripts in order; index + 1 is the schema version they produce.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001_init.sql"),
    include_str!("../migrations/002_auth.sql"),
    include_str!("../migrations/003_pipelines.sql"),
    include_str!("../migrations/004_secret_scopes.sql"),
    include_str!("../migrations/005_pipeline_owners.sql"),
    include_str!("../migrations/006_autoscalers.sql"),
    include_str!("../migrations/007_console_sessions.sql"),
];

/// Brings the database to the latest schema, one transaction per step.
pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(StoreError::TooNew {
            found: current,
            supported: latest,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
