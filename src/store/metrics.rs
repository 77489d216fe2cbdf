//! The counts `/metrics` reads from the database at scrape time: how many enrollments and
//! outbox messages are in each state, and how many leads of each channel were handed off and
//! judged.
//!
//! Each is one `GROUP BY` statement. The lead counts read only the partial indexes the
//! channel report keeps (`leads_report_handed_off`, `leads_report_judged`: the handed-off and
//! the judged leads alone, channel first), so they cost the leads Sales has seen, not all
//! leads (measured with a million leads, 5% judged and 10% handed off: 8 and 15 ms on
//! SQLite). The enrollment and outbox counts read every row of their table (no index leads
//! with `state`): 0.6–0.7 s per table of a million rows on SQLite, which is why they are read
//! apart from the scrapes and seldom (see `crate::metrics`).

use sqlx::Row;
use tracing::{debug, instrument};

use super::{Store, StoreError};
use crate::domain::{EnrollmentState, OutboxState};

/// What [`Store::state_counts`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Enrollments per state (states with none are absent).
    pub enrollments: Vec<(EnrollmentState, u64)>,
    /// Outbox messages per state (states with none are absent).
    pub outbox: Vec<(OutboxState, u64)>,
    /// Leads handed off to Sales at least once, per channel.
    pub handed_off: Vec<(String, u64)>,
    /// Leads per channel and newest quality verdict.
    pub judged: Vec<(String, String, u64)>,
}

impl Store {
    /// The state counts `/metrics` shows, in one read transaction so they agree with each
    /// other. A state this version does not know (written by a newer one) is left out rather
    /// than failing the scrape.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut counts = StateCounts::default();
        for row in sqlx::query("SELECT state, COUNT(*) FROM enrollments GROUP BY state")
            .fetch_all(&mut *tx)
            .await?
        {
            let state: String = row.try_get(0)?;
            match state.parse() {
                Ok(s) => counts.enrollments.push((s, count(&row, 1)?)),
                Err(e) => debug!(error = %e, "enrollments: a state left out of the metrics"),
            }
        }
        for row in sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&mut *tx)
            .await?
        {
            let state: String = row.try_get(0)?;
            match state.parse() {
                Ok(s) => counts.outbox.push((s, count(&row, 1)?)),
                Err(e) => debug!(error = %e, "outbox: a state left out of the metrics"),
            }
        }
        // The conditions are the partial indexes' own, word for word, so both databases
        // read the index alone.
        for row in sqlx::query(
            "SELECT channel, COUNT(*) FROM leads WHERE handed_off_at IS NOT NULL GROUP BY channel ORDER BY channel",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            counts.handed_off.push((row.try_get(0)?, count(&row, 1)?));
        }
        for row in sqlx::query(
            "SELECT channel, verdict, COUNT(*) FROM leads WHERE verdict IS NOT NULL GROUP BY channel, verdict ORDER BY channel, verdict",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            counts
                .judged
                .push((row.try_get(0)?, row.try_get(1)?, count(&row, 2)?));
        }
        tx.commit().await?;
        Ok(counts)
    }
}

/// A `COUNT(*)` column (never negative).
fn count(row: &sqlx::any::AnyRow, column: usize) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(column)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
