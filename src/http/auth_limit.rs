//! The sign-in rate limit: a sliding window of failures per key, in memory.
//!
//! Keys are a client address or a sign-in address (see `auth_pages.rs` for which limits
//! apply). A key that has reached its limit within the window is refused until its oldest
//! failure leaves the window, and the answer says when that is (`Retry-After`). Memory
//! stays bounded: each key keeps at most `max` times, and keys whose failures have all left
//! the window are dropped whenever the table grows past [`PRUNE_ABOVE`].
//!
//! The daemon keeps one limiter for its whole life, across reloads; a restart forgets it,
//! which costs an attacker a restart of the service per window — not something they can cause.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many keys, a failure first drops the keys with no failure left in the window.
const PRUNE_ABOVE: usize = 10_000;

/// Counts failures per key in a sliding window.
#[derive(Debug)]
pub struct Limiter {
    /// Failures allowed within `window`.
    max: usize,
    /// How long a failure counts.
    window: Duration,
    /// The times of each key's recent failures, oldest first.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// A limiter allowing `max` failures per key within `window`.
    pub fn new(max: usize, window: Duration) -> Limiter {
        Limiter {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has had `max` failures within the window before `now`: it may
    /// try again after `wait`.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut all = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = all.get_mut(key) else {
            return Ok(());
        };
        self.forget_old(times, now);
        if times.len() < self.max {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now))
    }

    /// Counts a failure of `key` at `now`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut all = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() > PRUNE_ABOVE {
            all.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|&t| now.saturating_duration_since(t) < self.window)
            });
        }
        let times = all.entry(key.to_owned()).or_default();
        self.forget_old(times, now);
        times.push_back(now);
        while times.len() > self.max {
            times.pop_front();
        }
    }

    fn forget_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            times.pop_front();
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_limit_holds_for_the_window_after_the_oldest_failure() {
        let limiter = Limiter::new(3, 15 * MINUTE);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.check("a", t0 + i * MINUTE), Ok(()));
            limiter.fail("a", t0 + i * MINUTE);
        }
        // Three failures at 0, 1 and 2 minutes: refused until the first leaves the window.
        assert_eq!(limiter.check("a", t0 + 3 * MINUTE), Err(12 * MINUTE));
        assert_eq!(
            limiter.check("b", t0 + 3 * MINUTE),
            Ok(()),
            "keys are apart"
        );
        assert_eq!(limiter.check("a", t0 + 15 * MINUTE), Ok(()));
        limiter.fail("a", t0 + 15 * MINUTE);
        assert_eq!(limiter.check("a", t0 + 15 * MINUTE), Err(MINUTE));
        assert_eq!(limiter.check("a", t0 + 17 * MINUTE), Ok(()));
    }

    #[test]
    fn forgotten_keys_are_dropped_when_the_table_grows() {
        let limiter = Limiter::new(2, MINUTE);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            limiter.fail(&format!("k{i}"), t0);
        }
        assert_eq!(limiter.keys(), PRUNE_ABOVE + 1);
        limiter.fail("late", t0 + 2 * MINUTE);
        assert_eq!(limiter.keys(), 1);
    }
}
