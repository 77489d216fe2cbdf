//! Changes a person makes by hand: reading and editing the suppression list, and setting a
//! lead's status.
//!
//! The sender suppresses an address and marks its lead `bounced` when a server refuses the
//! recipient, and a refusal can be wrong (a full mailbox reported as permanent, a server
//! misconfigured for an hour). These methods are how that is undone. Each change to a lead is
//! recorded as an event on its timeline in the same transaction as the change, so the timeline
//! always says who restored a lead and what it was before.
//!
//! Domain entries are not about one lead, and no lead's timeline records adding one, so adding
//! or removing a domain entry records no events.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use tracing::instrument;

use super::{LeadId, Store, StoreError, Suppression, from_millis, millis, outbox, unreadable};
use crate::domain::{EmailAddress, LeadStatus};

/// Who made the changes recorded by these methods, as the events' `by` says.
const BY: &str = "cli";

/// A suppression-list entry as stored.
#[derive(Debug, Clone, Serialize)]
pub struct SuppressionEntry {
    /// The address or domain.
    pub entry: Suppression,
    /// Why it was suppressed.
    pub reason: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> SuppressionEntry {
    let kind: String = r.get(0);
    let value: String = r.get(1);
    SuppressionEntry {
        entry: if kind == "domain" {
            Suppression::Domain(value)
        } else {
            Suppression::Address(value)
        },
        reason: r.get(2),
        created_at: from_millis(r.get(3)),
    }
}

impl Store {
    /// Every suppression, newest first.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn list_suppressions(&self) -> Result<Vec<SuppressionEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, value, reason, created_at FROM suppressions ORDER BY created_at DESC, kind, value",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// The entries that keep `address` from being mailed: its own and its domain's.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn suppressions_of(
        &self,
        address: &EmailAddress,
    ) -> Result<Vec<SuppressionEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, value, reason, created_at FROM suppressions \
             WHERE (kind = 'address' AND value = $1) OR (kind = 'domain' AND value = $2) ORDER BY kind",
        )
        .bind(address.as_str())
        .bind(address.domain())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// Suppresses an address or domain by hand; `false` when it already was (the first reason
    /// is kept). A new address entry is a `suppressed` event on its lead's timeline.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn add_suppression(
        &self,
        entry: &Suppression,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let added = outbox::suppress_in(&mut tx, entry, reason, now).await?;
        if added && matches!(entry, Suppression::Address(_)) {
            let value = entry.value();
            let detail = serde_json::json!({ "value": value, "reason": reason, "by": BY });
            super::sales::event_in(&mut tx, &value, "suppressed", &detail, now).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Takes an entry off the suppression list; the reason it had, or `None` when there was no
    /// such entry. Removing an address entry is an `unsuppressed` event on its lead's
    /// timeline. The lead's status is left alone: [`Store::set_lead_status`] is the other half
    /// of undoing a bounce.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn remove_suppression(
        &self,
        entry: &Suppression,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let value = entry.value();
        let mut tx = self.begin().await?;
        let reason: Option<String> =
            sqlx::query("DELETE FROM suppressions WHERE kind = $1 AND value = $2 RETURNING reason")
                .bind(entry.kind())
                .bind(value.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
        if let (Some(was), Suppression::Address(_)) = (&reason, entry) {
            let detail = serde_json::json!({ "value": value, "reason_was": was, "by": BY });
            super::sales::event_in(&mut tx, &value, "unsuppressed", &detail, now).await?;
        }
        tx.commit().await?;
        Ok(reason)
    }

    /// Sets a lead's status by hand; `(old, new)`, or `None` when there is no such lead. A
    /// change is a `status_changed` event on the lead's timeline, written in the same
    /// transaction; setting the status it already has changes and records nothing.
    ///
    /// The suppression list is left alone (see [`Store::remove_suppression`]).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(status = %status))]
    pub async fn set_lead_status(
        &self,
        email: &EmailAddress,
        status: LeadStatus,
        now: DateTime<Utc>,
    ) -> Result<Option<(LeadStatus, LeadStatus)>, StoreError> {
        let now_ms = millis(now);
        let mut tx = self.begin().await?;
        // Writing the row first takes its lock (the database's, on SQLite), so the status read
        // here is the one replaced: the sender marking the lead bounced at the same moment
        // either comes before, and is what the event says was undone, or waits and comes after.
        let Some(row) =
            sqlx::query("UPDATE leads SET updated_at = $1 WHERE email = $2 RETURNING id, status")
                .bind(now_ms)
                .bind(email.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let id = LeadId(row.get(0));
        let old: LeadStatus = row
            .get::<String, _>(1)
            .parse()
            .map_err(unreadable("leads", id.0, "status"))?;
        if old == status {
            // Dropping the transaction rolls the touch of updated_at back.
            return Ok(Some((old, status)));
        }
        sqlx::query("UPDATE leads SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let detail = serde_json::json!({ "from": old, "to": status, "by": BY });
        sqlx::query("INSERT INTO events (lead_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
            .bind(id.0)
            .bind(now_ms)
            .bind("status_changed")
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((old, status)))
    }
}
