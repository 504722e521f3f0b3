//! Users, API tokens, the policy document, the append-only audit log and sealed secrets.
//! The store keeps only hashes and ciphertexts; the `auth` crate makes and checks them.

use crate::{Result, Store};
use rusqlite::{OptionalExtension, Row, params};

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// Argon2id PHC string; `None` for token-only users.
    pub password_hash: Option<String>,
    /// Role name (`viewer`, `developer`, `deployer`, `admin`).
    pub role: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Disabled users cannot authenticate.
    pub disabled: bool,
}

/// A token row (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id, for listing and revoking.
    pub id: String,
    /// Owner.
    pub user: String,
    /// Human label.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry (ms), if any.
    pub expires_at: Option<i64>,
    /// Revocation time (ms), if revoked.
    pub revoked_at: Option<i64>,
    /// Last successful use (ms).
    pub last_used_at: Option<i64>,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Sequence number (assigned on append).
    pub seq: i64,
    /// When (ms).
    pub at: i64,
    /// Who (`anonymous` when unauthenticated).
    pub user: String,
    /// What, e.g. `PUT /v2/apps/web`.
    pub action: String,
    /// The object acted on, e.g. `app:/web`, `user:alice`.
    pub target: String,
    /// The app concerned, if any.
    pub app: Option<String>,
    /// Client address.
    pub source: String,
    /// HTTP status of the outcome.
    pub status: u16,
    /// `allowed`, `denied` or `failed`.
    pub outcome: String,
    /// Extra detail (never a secret).
    pub detail: Option<String>,
}

/// Filters for reading the audit log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this user.
    pub user: Option<String>,
    /// Only this app.
    pub app: Option<String>,
    /// Not before (ms).
    pub since: Option<i64>,
    /// Not after (ms).
    pub until: Option<i64>,
    /// Only records older than this sequence number (paging).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// Metadata of a secret (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    /// Name.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
    /// Who last wrote it.
    pub updated_by: String,
    /// Where it may be used (a JSON document the API defines); `None`: nowhere yet.
    pub scope: Option<String>,
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        role: r.get(2)?,
        created_at: r.get(3)?,
        disabled: r.get::<_, i64>(4)? != 0,
    })
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

const USER_COLS: &str = "name, password_hash, role, created_at, disabled";
const TOKEN_COLS: &str = "id, user, name, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    /// All users, by name.
    pub fn users(&self) -> Result<Vec<UserRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY name"))?;
            let rows = stmt
                .query_map([], user_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// One user.
    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    &format!("SELECT {USER_COLS} FROM users WHERE name = ?1"),
                    params![name],
                    user_row,
                )
                .optional()?)
        })
    }

    /// Creates or replaces a user.
    pub fn put_user(&self, u: &UserRow) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO users (name, password_hash, role, created_at, disabled) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,
                 disabled = excluded.disabled",
                params![u.name, u.password_hash, u.role, u.created_at, u.disabled as i64],
            )?;
            Ok(())
        })
    }

    /// Deletes a user and revokes their tokens; false when there was no such user.
    pub fn delete_user(&self, name: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx
                .tx
                .execute("DELETE FROM users WHERE name = ?1", params![name])?;
            tx.tx.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE user = ?1 AND revoked_at IS NULL",
                params![name, now],
            )?;
            Ok(n > 0)
        })
    }

    /// Stores a new token by its hash.
    pub fn insert_token(&self, t: &TokenRow, hash: &str) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLS}, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    t.id,
                    t.user,
                    t.name,
                    t.created_at,
                    t.expires_at,
                    t.revoked_at,
                    t.last_used_at,
                    hash
                ],
            )?;
            Ok(())
        })
    }

    /// The token with this hash and its user.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenRow, Option<UserRow>)>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let token = conn
                .query_row(
                    &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
                    params![hash],
                    token_row,
                )
                .optional()?;
            let Some(token) = token else { return Ok(None) };
            let user = conn
                .query_row(
                    &format!("SELECT {USER_COLS} FROM users WHERE name = ?1"),
                    params![token.user],
                    user_row,
                )
                .optional()?;
            Ok(Some((token, user)))
        })
    }

    /// Tokens, of one user or all.
    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE ?1 IS NULL OR user = ?1 ORDER BY created_at"
            ))?;
            let rows = stmt
                .query_map(params![user], token_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Revokes a token; false when it does not exist or was revoked already.
    pub fn revoke_token(&self, id: &str, now: i64) -> Result<bool> {
        self.blocking(|| {
            let conn = self.conn()?;
            let n = conn.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(n > 0)
        })
    }

    /// Records a successful use of a token.
    pub fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
    }

    /// The stored policy document, if one was ever written.
    pub fn policies(&self) -> Result<Option<String>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row("SELECT body FROM policies WHERE id = 1", [], |r| r.get(0))
                .optional()?)
        })
    }

    /// Replaces the policy document.
    pub fn set_policies(&self, body: &str) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO policies (id, body) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                params![body],
            )?;
            Ok(())
        })
    }

    /// Appends an audit record and returns its sequence number.
    pub fn append_audit(&self, a: &AuditRow) -> Result<i64> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO audit (at, user, action, target, app, source, status, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    a.at, a.user, a.action, a.target, a.app, a.source, a.status, a.outcome,
                    a.detail
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Audit records, newest first.
    pub fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, user, action, target, app, source, status, outcome, detail FROM audit
                 WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR app = ?2)
                   AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at <= ?4) AND (?5 IS NULL OR seq < ?5)
                 ORDER BY seq DESC LIMIT ?6",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        q.user,
                        q.app,
                        q.since,
                        q.until,
                        q.before,
                        q.limit.max(1) as i64
                    ],
                    |r| {
                        Ok(AuditRow {
                            seq: r.get(0)?,
                            at: r.get(1)?,
                            user: r.get(2)?,
                            action: r.get(3)?,
                            target: r.get(4)?,
                            app: r.get(5)?,
                            source: r.get(6)?,
                            status: r.get(7)?,
                            outcome: r.get(8)?,
                            detail: r.get(9)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Secret metadata, by name.
    pub fn secrets(&self) -> Result<Vec<SecretMeta>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(
                "SELECT name, created_at, updated_at, updated_by, scope FROM secrets ORDER BY name",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(SecretMeta {
                        name: r.get(0)?,
                        created_at: r.get(1)?,
                        updated_at: r.get(2)?,
                        updated_by: r.get(3)?,
                        scope: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// A sealed secret.
    pub fn sealed_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    "SELECT sealed FROM secrets WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Creates or replaces a sealed secret; `scope` replaces the stored scope when given
    /// (a value written without one keeps where the secret may be used).
    pub fn put_secret(
        &self,
        name: &str,
        sealed: &[u8],
        now: i64,
        by: &str,
        scope: Option<&str>,
    ) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO secrets (name, sealed, created_at, updated_at, updated_by, scope) VALUES (?1, ?2, ?3, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at,
                 updated_by = excluded.updated_by, scope = coalesce(excluded.scope, secrets.scope)",
                params![name, sealed, now, by, scope],
            )?;
            Ok(())
        })
    }

    /// Where a secret may be used: `Ok(None)` when there is no such secret, `Some(None)`
    /// when it has no scope yet.
    pub fn secret_scope(&self, name: &str) -> Result<Option<Option<String>>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    "SELECT scope FROM secrets WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// Deletes a secret; false when there was none.
    pub fn delete_secret(&self, name: &str) -> Result<bool> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn.execute("DELETE FROM secrets WHERE name = ?1", params![name])? > 0)
        })
    }
}
