//! The tests' clock. Store, outbox and scheduler tests pass `now` explicitly; counting from
//! one fixed instant makes every date in an assertion reproducible, whatever day the suite runs.

use chrono::{DateTime, TimeZone, Utc};

/// Friday 27 November 2026, 10:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}
