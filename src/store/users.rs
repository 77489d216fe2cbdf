//! What sign-in to the web view keeps: password hashes, sessions, one-time sign-in links.
//!
//! The store holds no secret a reader of the database could use: passwords are argon2id hashes
//! and tokens are kept as their SHA-256, both computed by the caller (`http`). Who may sign in
//! is not here at all but in `[[user]]`; a row for an address that left the configuration is
//! simply never consulted.
//!
//! A session lives from `created_at` to `expires_at`. A lookup of an expired one deletes it
//! and finds nothing, and [`Store::purge_signins`] clears what nobody looked up again.
//! A sign-in link is deleted as it is used, so of two uses only the first finds it.

use chrono::{DateTime, Utc};
use sqlx::Row;
use tracing::instrument;

use super::{Store, StoreError, from_millis, millis};

/// A session to record.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: &'a str,
    /// Whose it is (normalised address).
    pub email: &'a str,
    /// The token its forms carry.
    pub csrf: &'a str,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A live session, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Whose it is.
    pub email: String,
    /// The token its forms carry.
    pub csrf: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// The password hash of `email`, if one was set.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn password_hash(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM user_passwords WHERE email = $1")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets the first password of `email`; `false` (and nothing changed) when it has one.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn add_password(
        &self,
        email: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO user_passwords (email, hash, set_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(email)
        .bind(hash)
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    /// Replaces the password of `email` and ends all its sessions and unused sign-in links, in
    /// one transaction, so whoever knew the old one is signed out with it. `None` when it had
    /// no password (nothing changed); otherwise the number of sessions ended.
    ///
    /// # Errors
    /// A failed query; nothing changes then.
    #[instrument(skip_all)]
    pub async fn change_password(
        &self,
        email: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed =
            sqlx::query("UPDATE user_passwords SET hash = $2, set_at = $3 WHERE email = $1")
                .bind(email)
                .bind(hash)
                .bind(millis(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let ended = sqlx::query("DELETE FROM web_sessions WHERE email = $1")
            .bind(email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM signin_links WHERE email = $1")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(ended))
    }

    /// The addresses that have a password.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn with_password(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT email FROM user_passwords ORDER BY email")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Records a new session.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, email, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.token_hash)
        .bind(s.email)
        .bind(s.csrf)
        .bind(millis(s.created_at))
        .bind(millis(s.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, if it has not expired at `now`; an
    /// expired one is deleted.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row =
            sqlx::query("SELECT email, csrf, expires_at FROM web_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = from_millis(row.try_get("expires_at")?);
        if expires_at <= now {
            self.end_session(token_hash).await?;
            return Ok(None);
        }
        Ok(Some(SessionRow {
            email: row.try_get("email")?,
            csrf: row.try_get("csrf")?,
            expires_at,
        }))
    }

    /// Ends one session (signing out).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of `email`; how many there were.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn end_sessions(&self, email: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM web_sessions WHERE email = $1")
            .bind(email)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// `(address, sessions)` for every address with a session still live at `now`.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn active_sessions(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, COUNT(*) AS n FROM web_sessions WHERE expires_at > $1 \
             GROUP BY email ORDER BY email",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("email")?, r.try_get("n")?)))
            .collect()
    }

    /// Records a one-time sign-in link for `email`, valid until `expires_at`.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn create_signin_link(
        &self,
        token_hash: &str,
        email: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signin_links (token_hash, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(email)
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a sign-in link with this token exists and is still valid (the page that shows
    /// its button); changes nothing.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn signin_link_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM signin_links WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some_and(|at| from_millis(at) > now))
    }

    /// Uses up a sign-in link: deletes it and returns its address if it was still valid at
    /// `now`. Of two concurrent uses, only one deletes the row.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn use_signin_link(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM signin_links WHERE token_hash = $1 RETURNING email, expires_at",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = from_millis(row.try_get("expires_at")?);
        Ok((expires_at > now)
            .then(|| row.try_get("email"))
            .transpose()?)
    }

    /// Deletes the sessions and sign-in links that expired before `now`.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn purge_signins(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut purged = 0;
        for statement in [
            "DELETE FROM web_sessions WHERE expires_at <= $1",
            "DELETE FROM signin_links WHERE expires_at <= $1",
        ] {
            purged += sqlx::query(statement)
                .bind(millis(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(purged)
    }
}
