//! Autoscaler records: registered policies, the controller's state per app and its bounded
//! decision history. Policies, states and decisions are JSON documents the `autoscale` crate
//! defines; this module only stores them.

use crate::{Result, Store};
use rusqlite::{OptionalExtension, params};

/// Decisions kept per app (oldest dropped first).
pub const DECISIONS_KEPT: i64 = 2000;

/// A registered policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoscalerRow {
    /// The app id.
    pub app_id: String,
    /// The policy JSON.
    pub policy: String,
    /// Who registered it.
    pub created_by: String,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// The controller's memory for one app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoscalerStateRow {
    /// `ControllerState` JSON.
    pub state: String,
    /// A decided scale that may not have been applied yet.
    pub pending_target: Option<u32>,
    /// The app version (ms) the autoscaler's last scale created.
    pub own_version: Option<i64>,
}

/// One stored decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    /// Sequence number, increasing.
    pub seq: i64,
    /// The app id.
    pub app_id: String,
    /// Decision time, ms.
    pub at: i64,
    /// Whether it changed the instance count.
    pub change: bool,
    /// The decision JSON.
    pub decision: String,
}

impl Store {
    /// Registers or replaces the policy of `app_id`.
    pub fn put_autoscaler(&self, row: &AutoscalerRow) -> Result<()> {
        self.blocking(|| {
            let conn = self.conn()?;
            conn.execute(
                "INSERT INTO autoscalers (app_id, policy, created_by, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(app_id) DO UPDATE SET policy = ?2, created_by = ?3, updated_at = ?4",
                params![row.app_id, row.policy, row.created_by, row.updated_at],
            )?;
            Ok(())
        })
    }

    /// The policy registered for `app_id`.
    pub fn autoscaler(&self, app_id: &str) -> Result<Option<AutoscalerRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    "SELECT app_id, policy, created_by, updated_at FROM autoscalers WHERE app_id = ?1",
                    params![app_id],
                    |r| {
                        Ok(AutoscalerRow {
                            app_id: r.get(0)?,
                            policy: r.get(1)?,
                            created_by: r.get(2)?,
                            updated_at: r.get(3)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    /// Every registered policy, by app id.
    pub fn autoscalers(&self) -> Result<Vec<AutoscalerRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(
                "SELECT app_id, policy, created_by, updated_at FROM autoscalers ORDER BY app_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(AutoscalerRow {
                    app_id: r.get(0)?,
                    policy: r.get(1)?,
                    created_by: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Removes the policy of `app_id` with the controller's state (decisions stay for the
    /// record); false when there was none.
    pub fn delete_autoscaler(&self, app_id: &str) -> Result<bool> {
        self.blocking(|| {
            let mut conn = self.conn()?;
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM autoscalers WHERE app_id = ?1", params![app_id])?;
            tx.execute(
                "DELETE FROM autoscaler_state WHERE app_id = ?1",
                params![app_id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// The controller's state for `app_id`.
    pub fn autoscaler_state(&self, app_id: &str) -> Result<Option<AutoscalerStateRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            Ok(conn
                .query_row(
                    "SELECT state, pending_target, own_version FROM autoscaler_state WHERE app_id = ?1",
                    params![app_id],
                    |r| {
                        Ok(AutoscalerStateRow {
                            state: r.get(0)?,
                            pending_target: r.get(1)?,
                            own_version: r.get(2)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    /// Saves the controller's state and, when given, appends a decision (keeping the newest
    /// [`DECISIONS_KEPT`] of the app), in one transaction.
    pub fn save_autoscaler_state(
        &self,
        app_id: &str,
        state: &AutoscalerStateRow,
        decision: Option<(i64, bool, &str)>,
    ) -> Result<()> {
        self.blocking(|| {
            let mut conn = self.conn()?;
            let tx = conn.transaction()?;
            let now = model::Timestamp::now().millis();
            tx.execute(
                "INSERT INTO autoscaler_state (app_id, state, pending_target, own_version, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(app_id) DO UPDATE SET state = ?2, pending_target = ?3, own_version = ?4,
                 updated_at = ?5",
                params![
                    app_id,
                    state.state,
                    state.pending_target,
                    state.own_version,
                    now
                ],
            )?;
            if let Some((at, change, json)) = decision {
                tx.execute(
                    "INSERT INTO autoscale_decisions (app_id, at, change, decision) VALUES (?1, ?2, ?3, ?4)",
                    params![app_id, at, change, json],
                )?;
                tx.execute(
                    "DELETE FROM autoscale_decisions WHERE app_id = ?1 AND seq <= (
                         SELECT seq FROM autoscale_decisions WHERE app_id = ?1
                         ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                    params![app_id, DECISIONS_KEPT],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Decisions of `app_id`, newest first: at most `limit`, only changes when `changes_only`.
    pub fn autoscale_decisions(
        &self,
        app_id: &str,
        limit: u32,
        changes_only: bool,
    ) -> Result<Vec<DecisionRow>> {
        self.blocking(|| {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(
                "SELECT seq, app_id, at, change, decision FROM autoscale_decisions
                 WHERE app_id = ?1 AND (?2 = 0 OR change = 1) ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![app_id, changes_only, limit], |r| {
                Ok(DecisionRow {
                    seq: r.get(0)?,
                    app_id: r.get(1)?,
                    at: r.get(2)?,
                    change: r.get(3)?,
                    decision: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }
}
