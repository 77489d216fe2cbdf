//! Leads waiting for review: recorded from a message a spam filter found suspicious (or could
//! not be asked about), neither nurtured nor handed off until a person approves them.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Lead, LeadChange, Store, StoreError};
use crate::domain::{LeadStatus, MessageKind};

/// The message a lead came from, as far as approving it needs.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Its kind (`inquiry`, `form`, `forward`): which `[enroll]` rules it meets.
    pub kind: MessageKind,
    /// Why it waited for review, when it did.
    pub review: Option<String>,
}

impl Store {
    /// The first message that made this lead, if it is still recorded.
    ///
    /// # Errors
    /// A failed query.
    pub async fn lead_origin(&self, lead: &Lead) -> Result<Option<Origin>, StoreError> {
        let row = sqlx::query(
            "SELECT kind, detail FROM inbound_messages \
             WHERE lead_email = $1 AND kind IN ('inquiry', 'form', 'forward') \
             ORDER BY recorded_at, id LIMIT 1",
        )
        .bind(lead.email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind: String = row.try_get(0)?;
        let Ok(kind) = kind.parse::<MessageKind>() else {
            return Ok(None);
        };
        let detail: String = row.try_get(1)?;
        let review = serde_json::from_str::<serde_json::Value>(&detail)
            .ok()
            .and_then(|d| d.get("review")?.as_str().map(str::to_owned));
        Ok(Some(Origin { kind, review }))
    }

    /// Approves a lead waiting for review: it becomes `new` and `changes` (its enrollments,
    /// a hand-off) are applied, all in one transaction. `false`, changing nothing, when the
    /// lead is not in review, so approving twice (or from two terminals) acts once.
    ///
    /// # Errors
    /// A failed query; nothing is then changed.
    pub async fn approve_lead(
        &self,
        lead: &Lead,
        changes: &[LeadChange],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE leads SET status = $1, updated_at = $2 WHERE email = $3 AND status = $4",
        )
        .bind(LeadStatus::New.as_str())
        .bind(super::millis(now))
        .bind(lead.email.as_str())
        .bind(LeadStatus::Review.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(false);
        }
        super::sales::event_in(
            &mut tx,
            lead.email.as_str(),
            "approved",
            &serde_json::json!({ "by": by }),
            now,
        )
        .await?;
        let applied = self
            .apply_changes_in(&mut tx, changes, &[], &[], now)
            .await?;
        self.rescore_in(&mut tx, &[lead.email.as_str()], now)
            .await?;
        tx.commit().await?;
        if applied.notifications > 0 {
            self.wake_handoffs();
        }
        Ok(true)
    }
}
