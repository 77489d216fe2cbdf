//! Whether sending is paused: one row shared by every daemon on the database.
//!
//! ```text
//!            `leadloop sending pause`, or a sender's breaker (a refusal about us,
//!            N recipients in a row refused alike, an authentication failure)
//!  running ─────────────────────────────────────────────────────────────────► paused
//!     ▲                                                                          │
//!     └────────────────────────── `leadloop sending resume` ─────────────────────┘
//! ```
//!
//! The outbox claim itself checks the row (`outbox.rs`, `due_rows`), so a pause set by any
//! process stops every sender at its next claim, and nothing due is lost: rows simply stay
//! `pending` or `retry` until a person resumes. A crash in either state leaves the row as it
//! was: a paused database stays paused across restarts, by design (only a person resumes).
//! A second pause while paused keeps the first one's time and reason: that is what the
//! person must fix.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use tracing::instrument;

use super::{Store, StoreError, from_millis, millis};

/// Who paused sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PausedBy {
    /// A person, with `leadloop sending pause`.
    Cli,
    /// A sender, because the server refused us (see `send/refusal.rs`).
    Breaker,
}

impl PausedBy {
    /// The stable name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Cli => "cli",
            PausedBy::Breaker => "breaker",
        }
    }

    fn parse(s: &str) -> PausedBy {
        // Only this module writes the column; anything else reads as a person's pause.
        if s == PausedBy::Breaker.as_str() {
            PausedBy::Breaker
        } else {
            PausedBy::Cli
        }
    }
}

impl std::fmt::Display for PausedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Who paused.
    pub by: PausedBy,
    /// What happened and the likely fix.
    pub reason: String,
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sending is paused since {} ({}): {}",
            self.since.format("%Y-%m-%d %H:%M:%S UTC"),
            match self.by {
                PausedBy::Cli => "by hand",
                PausedBy::Breaker => "by the sender",
            },
            self.reason
        )
    }
}

impl Store {
    /// The pause in force, if sending is paused.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn sending_paused(&self) -> Result<Option<Pause>, StoreError> {
        let row = sqlx::query(
            "SELECT paused_at, paused_by, reason FROM sending_control WHERE id = 1 AND paused_at IS NOT NULL",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Pause {
            since: from_millis(r.get(0)),
            by: PausedBy::parse(&r.get::<Option<String>, _>(1).unwrap_or_default()),
            reason: r.get::<Option<String>, _>(2).unwrap_or_default(),
        }))
    }

    /// Pauses sending for every daemon on this database. Returns the pause in force (this
    /// one, or the earlier one when sending was paused already, which is kept) and whether
    /// this call paused it.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(by = %by))]
    pub async fn pause_sending(
        &self,
        by: PausedBy,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(Pause, bool), StoreError> {
        // An upsert, so a pause holds even if the row was deleted by hand: a pause that
        // silently did nothing would let a refusal about us repeat for every lead.
        let done = sqlx::query(
            "INSERT INTO sending_control (id, paused_at, paused_by, reason, updated_at) VALUES (1, $1, $2, $3, $1) \
             ON CONFLICT (id) DO UPDATE SET paused_at = $1, paused_by = $2, reason = $3, updated_at = $1 \
             WHERE sending_control.paused_at IS NULL",
        )
        .bind(millis(now))
        .bind(by.as_str())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        // Reading it back gives whichever pause won.
        let pause = self.sending_paused().await?.unwrap_or(Pause {
            since: now,
            by,
            reason: reason.to_owned(),
        });
        Ok((pause, done.rows_affected() == 1))
    }

    /// Resumes sending. Returns the pause that was lifted, or `None` if sending was running.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn resume_sending(&self, now: DateTime<Utc>) -> Result<Option<Pause>, StoreError> {
        let was = self.sending_paused().await?;
        sqlx::query(
            "UPDATE sending_control SET paused_at = NULL, paused_by = NULL, reason = NULL, updated_at = $1 WHERE id = 1",
        )
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        if was.is_some() {
            self.wake_sender();
        }
        Ok(was)
    }
}
