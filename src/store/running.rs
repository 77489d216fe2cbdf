//! The sequence files the daemon runs, recorded at each start and reload, and the enrollments
//! an edit of them would touch: what `leadloop plan` reads.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::enrollments::{ENROLLMENT_COLUMNS, enrollment_from_row};
use super::{Enrollment, Store, StoreError, from_millis, millis};
use crate::domain::EnrollmentId;

/// One sequence file as a daemon loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningSequence {
    /// The sequence's name (its file name without `.toml`).
    pub name: String,
    /// The file's text.
    pub source: String,
    /// When the daemon loaded it.
    pub loaded_at: DateTime<Utc>,
}

impl Store {
    /// Replaces the record of the running sequences with `sequences` (name, file text), in
    /// one transaction: a reader sees the old set or the new one, never a mix.
    ///
    /// # Errors
    /// A failed query; the old record is then kept.
    #[instrument(skip_all, fields(sequences = sequences.len()))]
    pub async fn record_running_sequences(
        &self,
        sequences: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM running_sequences")
            .execute(&mut *tx)
            .await?;
        for (name, source) in sequences {
            sqlx::query(
                "INSERT INTO running_sequences (name, source, loaded_at) VALUES ($1, $2, $3)",
            )
            .bind(*name)
            .bind(*source)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The sequences the daemon recorded at its last start or reload, by name; `None` when no
    /// daemon of a version that records them has run on this database.
    ///
    /// # Errors
    /// A failed query.
    pub async fn running_sequences(&self) -> Result<Option<Vec<RunningSequence>>, StoreError> {
        let rows =
            sqlx::query("SELECT name, source, loaded_at FROM running_sequences ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        let recorded: Vec<RunningSequence> = rows
            .iter()
            .map(|r| RunningSequence {
                name: r.get(0),
                source: r.get(1),
                loaded_at: from_millis(r.get(2)),
            })
            .collect();
        // A daemon without sequences records none; the table cannot tell that from "never
        // recorded", and neither needs telling apart for a plan: nobody is enrolled.
        Ok(Some(recorded).filter(|r| !r.is_empty()))
    }

    /// Up to `limit` enrollments still under way (active or held), after `after` in id order:
    /// a plan reads them page by page, whatever their number.
    ///
    /// # Errors
    /// A failed query, or a row this version cannot read.
    pub async fn open_enrollments(
        &self,
        after: EnrollmentId,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE state IN ('active', 'held') AND id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(enrollment_from_row).collect()
    }
}
