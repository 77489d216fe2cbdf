//! Digests (`[[digest]]`): which periods a digest already went out for, and the leads Sales has
//! not judged yet.
//!
//! A digest is recorded by a `digests` row keyed by its name and period start, inserted in the
//! transaction that puts its messages in the outbox. The key is unique, so of two daemons (or a
//! daemon and a restart of it) racing for one period, the second insert finds the first's row
//! and the second digest is never queued.

use chrono::{DateTime, Utc};
use sqlx::Row;
use tracing::instrument;

use super::outbox::NewOutboxMessage;
use super::{Store, StoreError, from_millis, millis};

/// A lead handed off to its owner with no quality verdict since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingLead {
    /// The lead's address.
    pub email: String,
    /// The lead's name, if known.
    pub name: Option<String>,
    /// Its owner now (who was told).
    pub owner: Option<String>,
    /// Its channel.
    pub channel: String,
    /// When it was first handed off.
    pub handed_off_at: DateTime<Utc>,
}

/// One digest to record with its messages.
#[derive(Debug, Clone)]
pub struct NewDigest<'a> {
    /// The `[[digest]] name`.
    pub name: &'a str,
    /// The period it covers, from (inclusive) …
    pub period_start: DateTime<Utc>,
    /// … to (exclusive).
    pub period_end: DateTime<Utc>,
    /// `week 2026-W48`, `month 2026-11`.
    pub label: &'a str,
    /// One message per recipient.
    pub messages: &'a [NewOutboxMessage],
}

impl Store {
    /// Whether the digest `name` was recorded for the period starting at `period_start`.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(digest = name))]
    pub async fn digest_recorded(
        &self,
        name: &str,
        period_start: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM digests WHERE name = $1 AND period_start = $2")
                .bind(name)
                .bind(millis(period_start))
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Records the digest and puts its messages in the outbox, in one transaction; `false`
    /// (and nothing written) when the digest was already recorded for that period, by this
    /// process or another.
    ///
    /// # Errors
    /// A failed query; nothing is recorded then.
    #[instrument(skip_all, fields(digest = d.name))]
    pub async fn record_digest(
        &self,
        d: &NewDigest<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row first: of two writers, the second waits here for the first's commit and
        // then inserts nothing.
        let taken = sqlx::query(
            "INSERT INTO digests (name, period_start, period_end, label, messages, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, period_start) DO NOTHING",
        )
        .bind(d.name)
        .bind(millis(d.period_start))
        .bind(millis(d.period_end))
        .bind(d.label)
        .bind(i64::try_from(d.messages.len()).unwrap_or(i64::MAX))
        .bind(millis(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(false);
        }
        for m in d.messages {
            self.enqueue_in(&mut tx, m, now).await?;
        }
        tx.commit().await?;
        self.wake_sender();
        Ok(true)
    }

    /// Leads handed off before `before` with no quality verdict since (none, or only one
    /// older than the hand-off), longest waiting first, at most `limit`.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn waiting_for_verdict(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<WaitingLead>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, name, owner, channel, handed_off_at FROM leads \
             WHERE handed_off_at IS NOT NULL AND handed_off_at < $1 \
               AND (verdict_at IS NULL OR verdict_at < handed_off_at) \
             ORDER BY handed_off_at, id LIMIT $2",
        )
        .bind(millis(before))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| WaitingLead {
                email: r.get(0),
                name: r.get(1),
                owner: r.get(2),
                channel: r.get(3),
                handed_off_at: from_millis(r.get(4)),
            })
            .collect())
    }
}
