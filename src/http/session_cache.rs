//! The sessions this process looked up in the last few seconds, so a page does not ask the
//! database who is signed in on every request.
//!
//! An entry is trusted for at most [`SESSION_TTL`]. What this process does to a session
//! (signing out, an admin ending someone's sessions, an expired session, a person taken out
//! of `[[user]]`) drops its entry at once. A session ended elsewhere, with
//! `leadloop users end-sessions` or by another daemon on the same PostgreSQL, stops working
//! here within [`SESSION_TTL`]. The map holds at most [`MAX_SESSIONS`] entries, so a flood of
//! cookies cannot make it grow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::store::SessionRow;

/// How long a session looked up in the database is taken as still live without asking again.
pub const SESSION_TTL: Duration = Duration::from_secs(5);

/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 4096;

/// Sessions by the hash of their token.
#[derive(Debug, Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    row: SessionRow,
    looked_up: Instant,
}

impl SessionCache {
    /// The session of `token_hash` if it was looked up less than [`SESSION_TTL`] ago and has
    /// not expired at `now`.
    pub fn get(&self, token_hash: &str, now: DateTime<Utc>) -> Option<SessionRow> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get(token_hash)?;
        if entry.looked_up.elapsed() < SESSION_TTL && entry.row.expires_at > now {
            return Some(entry.row.clone());
        }
        entries.remove(token_hash);
        None
    }

    /// Keeps `row`, just read from the database, for [`SESSION_TTL`]. A full map first drops
    /// what is too old to be used, and if that is not enough, everything.
    pub fn put(&self, token_hash: &str, row: &SessionRow) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_SESSIONS && !entries.contains_key(token_hash) {
            entries.retain(|_, e| e.looked_up.elapsed() < SESSION_TTL);
            if entries.len() >= MAX_SESSIONS {
                entries.clear();
            }
        }
        entries.insert(
            token_hash.to_owned(),
            Entry {
                row: row.clone(),
                looked_up: Instant::now(),
            },
        );
    }

    /// Forgets the session of `token_hash`.
    pub fn forget(&self, token_hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(token_hash);
        }
    }

    /// Forgets every session of `email`.
    pub fn forget_all_of(&self, email: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, e| !e.row.email.eq_ignore_ascii_case(email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(email: &str, expires_at: DateTime<Utc>) -> SessionRow {
        SessionRow {
            email: email.to_owned(),
            csrf: "t".to_owned(),
            expires_at,
        }
    }

    #[test]
    fn a_session_is_kept_until_forgotten_or_expired() {
        let cache = SessionCache::default();
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        cache.put("a", &row("ana@company.com", later));
        cache.put("b", &row("bo@company.com", later));
        cache.put("c", &row("Ana@Company.com", later));
        assert_eq!(cache.get("a", now), Some(row("ana@company.com", later)));
        // Expired by the clock, whatever the cache's age.
        assert_eq!(cache.get("a", later), None);
        assert_eq!(cache.get("a", now), None, "an expired entry is dropped");
        cache.forget("b");
        assert_eq!(cache.get("b", now), None);
        cache.put("a", &row("ana@company.com", later));
        cache.forget_all_of("ana@company.com");
        assert_eq!((cache.get("a", now), cache.get("c", now)), (None, None));
    }

    #[test]
    fn the_map_never_holds_more_than_its_cap() {
        let cache = SessionCache::default();
        let later = Utc::now() + chrono::Duration::hours(1);
        for i in 0..MAX_SESSIONS * 3 {
            cache.put(&format!("{i}"), &row("ana@company.com", later));
            let len = cache.entries.lock().map(|e| e.len()).unwrap_or(0);
            assert!(len <= MAX_SESSIONS, "{len} entries after {i}");
        }
        let last = format!("{}", MAX_SESSIONS * 3 - 1);
        assert!(cache.get(&last, Utc::now()).is_some());
    }
}
