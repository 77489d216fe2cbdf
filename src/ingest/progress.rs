//! How far a long pass through a mailbox has come (`leadloop run --once` on a mailbox with
//! years of mail): the source sets how many messages the pass will read, and every recorded
//! batch adds to what is done. Whoever shows it (a progress bar on a terminal, log lines
//! otherwise) reads the counts; ingest never waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shared counts of one pass; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress {
    /// A pass that has not started.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The pass will read `n` more messages.
    pub fn add_total(&self, n: u64) {
        self.0.total.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` more messages are recorded (or were known already).
    pub fn advance(&self, n: u64) {
        self.0.done.fetch_add(n, Ordering::Relaxed);
    }

    /// (done, total) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.0.done.load(Ordering::Relaxed),
            self.0.total.load(Ordering::Relaxed),
        )
    }
}

/// One line about a pass under way, for logs: `1,200 of 50,000 messages (2%), 800/s, about
/// 1m left`. `rate` is messages per second since the start.
pub fn line(done: u64, total: u64, rate: f64) -> String {
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    let left = if rate > 0.0 && total > done {
        let secs = ((total - done) as f64 / rate).ceil() as u64;
        format!(
            ", about {} left",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        )
    } else {
        String::new()
    };
    format!(
        "{} of {} messages ({pct}%), {:.0}/s{left}",
        thousands(done),
        thousands(total),
        rate
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_far_how_fast_and_how_long_still() {
        assert_eq!(
            line(1_200, 50_000, 800.0),
            "1,200 of 50,000 messages (2%), 800/s, about 1m 1s left"
        );
        assert_eq!(line(0, 0, 0.0), "0 of 0 messages (0%), 0/s");
        assert_eq!(line(10, 10, 5.0), "10 of 10 messages (100%), 5/s");
        let p = Progress::new();
        p.add_total(30);
        p.advance(10);
        p.clone().advance(5);
        assert_eq!(p.get(), (15, 30));
    }
}
