//! Web console sessions at rest: keyed by the hash of the cookie's value, their secrets
//! sealed by the caller (this module stores bytes), dropped once expired.

use crate::{Result, Store};
use rusqlite::{OptionalExtension, params};

/// A stored console session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// Hash of the session id (the cookie's value is never stored).
    pub id_hash: String,
    /// The user.
    pub user: String,
    /// Their role when they signed in.
    pub role: String,
    /// The id of the API token the session uses, to revoke it at sign-out.
    pub token_id: Option<String>,
    /// The session's secrets, sealed with the server's key.
    pub sealed: Vec<u8>,
    /// When it ends, ms since the epoch.
    pub expires_at: i64,
}

impl Store {
    /// Stores a session, dropping every expired one (`now` in ms since the epoch).
    pub fn put_session(&self, row: &SessionRow, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.tx.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                params![now],
            )?;
            tx.tx.execute(
                "INSERT OR REPLACE INTO console_sessions
                 (id_hash, user, role, token_id, sealed, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.id_hash,
                    row.user,
                    row.role,
                    row.token_id,
                    row.sealed,
                    row.expires_at
                ],
            )?;
            Ok(())
        })
    }

    /// The session with this id hash, unless it expired before `now`.
    pub fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    "SELECT id_hash, user, role, token_id, sealed, expires_at
                     FROM console_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                    params![id_hash, now],
                    |r| {
                        Ok(SessionRow {
                            id_hash: r.get(0)?,
                            user: r.get(1)?,
                            role: r.get(2)?,
                            token_id: r.get(3)?,
                            sealed: r.get(4)?,
                            expires_at: r.get(5)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    /// Ends a session; whether it existed.
    pub fn delete_session(&self, id_hash: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.tx.execute(
                "DELETE FROM console_sessions WHERE id_hash = ?1",
                params![id_hash],
            )? > 0)
        })
    }
}
