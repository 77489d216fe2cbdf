//! Mailbox leases: with several daemons on one database, one at a time reads each mailbox.
//!
//! A lease is one row per mailbox: who holds it and until when. The holder renews it while it
//! reads; another daemon takes it only once it has run out, in the same statement that checks
//! it, so two daemons can never both hold it. A daemon that stops cleanly gives it up, so the
//! next one takes over at once instead of after the lease runs out.

use chrono::{DateTime, Utc};
use sqlx::Row;
use tracing::instrument;

use super::{Store, StoreError, from_millis, millis};

/// Who holds a mailbox's lease, as another daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxLease {
    /// The holder's name (host, process and a random part).
    pub holder: String,
    /// When the lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// When this holder took it.
    pub taken_at: DateTime<Utc>,
}

impl Store {
    /// Takes or renews the lease on `mailbox` for `holder` until `until`: `true` when
    /// `holder` holds it now. It is taken from another holder only once theirs ran out at
    /// `now`.
    ///
    /// # Errors
    /// A failed query: the caller then does not know, and must stop reading once the lease it
    /// had runs out.
    #[instrument(skip_all, fields(mailbox))]
    pub async fn take_mailbox_lease(
        &self,
        mailbox: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO mailbox_leases (mailbox, holder, expires_at, taken_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
               taken_at = CASE WHEN mailbox_leases.holder = excluded.holder THEN mailbox_leases.taken_at ELSE excluded.taken_at END \
             WHERE mailbox_leases.holder = excluded.holder OR mailbox_leases.expires_at <= excluded.taken_at",
        )
        .bind(mailbox)
        .bind(holder)
        .bind(millis(until))
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives up `holder`'s lease on `mailbox`, if it holds it, so another daemon takes over
    /// at its next try.
    ///
    /// # Errors
    /// A failed query; the lease then runs out on its own.
    pub async fn release_mailbox_lease(
        &self,
        mailbox: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mailbox_leases WHERE mailbox = $1 AND holder = $2")
            .bind(mailbox)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds the lease on `mailbox`, if anyone ever took it.
    ///
    /// # Errors
    /// A failed query.
    pub async fn mailbox_lease(&self, mailbox: &str) -> Result<Option<MailboxLease>, StoreError> {
        let row = sqlx::query(
            "SELECT holder, expires_at, taken_at FROM mailbox_leases WHERE mailbox = $1",
        )
        .bind(mailbox)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| MailboxLease {
            holder: r.get(0),
            expires_at: from_millis(r.get(1)),
            taken_at: from_millis(r.get(2)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_lapsed_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/l.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, 2).await.unwrap();
        let m = "imap://u@h:993/INBOX";
        assert!(
            store
                .take_mailbox_lease(m, "a", at(0), at(90))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_mailbox_lease(m, "b", at(10), at(100))
                .await
                .unwrap()
        );
        // The holder renews; the time it took the lease stays.
        assert!(
            store
                .take_mailbox_lease(m, "a", at(45), at(135))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_mailbox_lease(m, "b", at(134), at(224))
                .await
                .unwrap()
        );
        let lease = store.mailbox_lease(m).await.unwrap().unwrap();
        assert_eq!(
            (lease.holder.as_str(), lease.taken_at, lease.expires_at),
            ("a", at(0), at(135))
        );
        // It runs out: b takes it, and a cannot renew it any more.
        assert!(
            store
                .take_mailbox_lease(m, "b", at(135), at(225))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_mailbox_lease(m, "a", at(140), at(230))
                .await
                .unwrap()
        );
        let lease = store.mailbox_lease(m).await.unwrap().unwrap();
        assert_eq!((lease.holder.as_str(), lease.taken_at), ("b", at(135)));
        // Given up: taken at once. Another mailbox is another lease.
        store.release_mailbox_lease(m, "a").await.unwrap();
        assert!(
            !store
                .take_mailbox_lease(m, "a", at(150), at(240))
                .await
                .unwrap()
        );
        store.release_mailbox_lease(m, "b").await.unwrap();
        assert!(
            store
                .take_mailbox_lease(m, "a", at(151), at(241))
                .await
                .unwrap()
        );
        assert!(
            store
                .take_mailbox_lease("maildir:/x", "b", at(151), at(241))
                .await
                .unwrap()
        );
    }
}
