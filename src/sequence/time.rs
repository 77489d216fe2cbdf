//! Time arithmetic for sequences: step delays in a lead's local time, and send windows.
//!
//! Everything here is pure: the current time is always an argument, so tests cover weeks of
//! schedule, business days and daylight-saving changes without waiting for any of it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// How long to wait after the previous step (or the enrollment) before a step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// A fixed span of minutes (`"0m"`, `"90m"`, `"3h"`): the same in every time zone.
    Minutes(u32),
    /// Calendar days (`"2d"`, `"1w"`): the same local time of day that many days later, so
    /// "two days later" stays at 10:00 across a daylight-saving change.
    Days(u32),
    /// Business days (`"3bd"`): like days, counting Monday to Friday only.
    BusinessDays(u32),
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Delay::Minutes(m) if m > 0 && m % 60 == 0 => write!(f, "{}h", m / 60),
            Delay::Minutes(m) => write!(f, "{m}m"),
            Delay::Days(d) if d > 0 && d % 7 == 0 => write!(f, "{}w", d / 7),
            Delay::Days(d) => write!(f, "{d}d"),
            Delay::BusinessDays(d) => write!(f, "{d}bd"),
        }
    }
}

impl FromStr for Delay {
    type Err = String;

    /// `"0m"`, `"45m"`, `"3h"`, `"2d"`, `"1w"`, `"3bd"` (also `"3 business days"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!(
                "'{s}' is not a delay like \"0m\", \"3h\", \"2d\", \"1w\" or \"3bd\" (business days)"
            )
        };
        let n: u32 = num.parse().map_err(|_| bad())?;
        let too_long = || format!("'{s}' is longer than a year");
        let delay = match unit.trim() {
            "m" | "min" | "mins" | "minute" | "minutes" => Delay::Minutes(n),
            "h" | "hour" | "hours" => Delay::Minutes(n.checked_mul(60).ok_or_else(too_long)?),
            "d" | "day" | "days" => Delay::Days(n),
            "w" | "week" | "weeks" => Delay::Days(n.checked_mul(7).ok_or_else(too_long)?),
            "bd" | "business day" | "business days" => Delay::BusinessDays(n),
            _ => return Err(bad()),
        };
        let days = match delay {
            Delay::Minutes(m) => m / (24 * 60),
            Delay::Days(d) => d,
            Delay::BusinessDays(d) => d.saturating_mul(7) / 5,
        };
        if days > 366 {
            return Err(too_long());
        }
        Ok(delay)
    }
}

impl Delay {
    /// When a step with this delay is due, counted from `from` in the zone `tz`.
    pub fn after(self, from: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match self {
            Delay::Minutes(m) => from + Duration::minutes(i64::from(m)),
            Delay::Days(d) => add_local_days(from, tz, i64::from(d), false),
            Delay::BusinessDays(d) => add_local_days(from, tz, i64::from(d), true),
        }
    }
}

/// Adds `days` local calendar days (or business days) to `from`, keeping the local time of day.
fn add_local_days(from: DateTime<Utc>, tz: Tz, days: i64, business: bool) -> DateTime<Utc> {
    let local = from.with_timezone(&tz).naive_local();
    let mut date = local.date();
    if business {
        let mut left = days;
        // Each weekday passed counts one; from a Saturday, one business day is Monday.
        while left > 0 {
            date = date.succ_opt().unwrap_or(date);
            if date.weekday().number_from_monday() <= 5 {
                left -= 1;
            }
        }
    } else {
        date = date
            .checked_add_signed(Duration::days(days))
            .unwrap_or(date);
    }
    from_local(tz, date.and_time(local.time()))
}

/// The instant of a local wall-clock time: the earlier one when the clock goes back, and the
/// first minute after the gap when it goes forward (02:30 on a spring-forward night is 03:30).
pub(crate) fn from_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            let later = local + Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map_or_else(|| later.and_utc(), |t| t.with_timezone(&Utc))
        }
    }
}

/// When mail may go out: a set of cron expressions, each naming the minutes in which sending
/// may start, read in the recipient's time zone.
///
/// `"* 9-16 * * Mon-Fri"` allows every minute from 09:00 to 16:59 on weekdays. Five-field
/// expressions (minute hour day month weekday) get a seconds field of `0`; six and seven
/// fields are passed to the `cron` crate as they are. An empty set allows any time.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    schedules: Vec<cron::Schedule>,
}

impl Windows {
    /// Parses window expressions.
    ///
    /// # Errors
    /// The first expression that is not valid cron, with the parser's reason.
    pub fn parse<S: AsRef<str>>(exprs: &[S]) -> Result<Windows, String> {
        let mut schedules = Vec::with_capacity(exprs.len());
        for e in exprs {
            let s = crate::domain::parse_cron(e.as_ref())?;
            schedules.push(s);
        }
        Ok(Windows { schedules })
    }

    /// True when no window is configured (any time is fine).
    pub fn is_unrestricted(&self) -> bool {
        self.schedules.is_empty()
    }

    /// The first instant at or after `t` inside a window, in zone `tz`; `t` itself when it is.
    pub fn next_open(&self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.schedules.is_empty() {
            return t;
        }
        let local = t.with_timezone(&tz);
        let minute = local.with_second(0).and_then(|m| m.with_nanosecond(0));
        if let Some(m) = minute
            && self.schedules.iter().any(|s| s.includes(m))
        {
            return t;
        }
        self.schedules
            .iter()
            .filter_map(|s| s.after(&local).next())
            .min()
            .map_or(t, |n| n.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn delays_parse_and_print() {
        assert_eq!("0m".parse::<Delay>().unwrap(), Delay::Minutes(0));
        assert_eq!("3h".parse::<Delay>().unwrap(), Delay::Minutes(180));
        assert_eq!("2d".parse::<Delay>().unwrap(), Delay::Days(2));
        assert_eq!("1w".parse::<Delay>().unwrap(), Delay::Days(7));
        assert_eq!("3bd".parse::<Delay>().unwrap(), Delay::BusinessDays(3));
        assert_eq!(
            "2 business days".parse::<Delay>().unwrap(),
            Delay::BusinessDays(2)
        );
        for bad in ["", "d", "2", "-1d", "2y", "1.5d", "9999d", "99999999999m"] {
            assert!(bad.parse::<Delay>().is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Delay::Days(14).to_string(), "2w");
        assert_eq!(Delay::Minutes(120).to_string(), "2h");
    }

    #[test]
    fn days_keep_the_local_time_across_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Friday 27 March 2026, 10:00 CET (UTC+1); clocks go forward on Sunday the 29th.
        let from = utc("2026-03-27T09:00:00Z");
        let due = Delay::Days(3).after(from, berlin);
        // Monday 30 March, 10:00 CEST (UTC+2).
        assert_eq!(due, utc("2026-03-30T08:00:00Z"));
        // Minutes are elapsed time, not wall-clock time.
        assert_eq!(
            Delay::Minutes(72 * 60).after(from, berlin),
            utc("2026-03-30T09:00:00Z")
        );
    }

    #[test]
    fn business_days_skip_weekends() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Thursday 10:00 EST.
        let thu = utc("2026-11-26T15:00:00Z");
        assert_eq!(
            Delay::BusinessDays(1).after(thu, ny),
            utc("2026-11-27T15:00:00Z")
        );
        assert_eq!(
            Delay::BusinessDays(2).after(thu, ny),
            utc("2026-11-30T15:00:00Z"),
            "Thursday + 2 business days is Monday"
        );
        // Saturday + 1 business day is Monday.
        let sat = utc("2026-11-28T15:00:00Z");
        assert_eq!(
            Delay::BusinessDays(1).after(sat, ny),
            utc("2026-11-30T15:00:00Z")
        );
        assert_eq!(Delay::BusinessDays(0).after(sat, ny), sat);
    }

    #[test]
    fn a_day_into_the_spring_gap_lands_after_it() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // Saturday 7 March 2026, 02:30 EST; on the 8th 02:00-03:00 does not exist.
        let from = utc("2026-03-07T07:30:00Z");
        assert_eq!(
            Delay::Days(1).after(from, ny),
            utc("2026-03-08T07:30:00Z"),
            "03:30 EDT"
        );
    }

    #[test]
    fn windows_open_on_weekdays_in_the_recipients_zone() {
        let w = Windows::parse(&["* 9-16 * * Mon-Fri"]).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        // Friday 27 Nov 2026, 12:00 UTC = 13:00 Berlin (open) = 21:00 Tokyo (closed).
        let t = utc("2026-11-27T12:00:00Z");
        assert_eq!(w.next_open(t, berlin), t);
        // Tokyo: next opening is Monday 30 Nov 09:00 JST = 00:00 UTC.
        assert_eq!(w.next_open(t, tokyo), utc("2026-11-30T00:00:00Z"));
        // Friday 17:30 Berlin: closed until Monday 09:00 CET.
        assert_eq!(
            w.next_open(utc("2026-11-27T16:30:00Z"), berlin),
            utc("2026-11-30T08:00:00Z")
        );
        // Seconds inside an open minute stay as they are.
        let inside = utc("2026-11-27T15:59:42Z");
        assert_eq!(w.next_open(inside, berlin), inside);
    }

    #[test]
    fn windows_follow_daylight_saving() {
        let w = Windows::parse(&["* 9-16 * * *"]).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Sunday 25 Oct 2026 is the change to CET: 09:00 local is 08:00 UTC the next day,
        // 07:00 UTC the day before.
        assert_eq!(
            w.next_open(utc("2026-10-24T18:00:00Z"), berlin),
            utc("2026-10-25T08:00:00Z")
        );
        assert_eq!(
            w.next_open(utc("2026-10-23T18:00:00Z"), berlin),
            utc("2026-10-24T07:00:00Z")
        );
    }

    #[test]
    fn no_windows_means_any_time_and_bad_ones_are_refused() {
        let w = Windows::parse::<&str>(&[]).unwrap();
        let t = utc("2026-11-28T03:00:00Z");
        assert_eq!(w.next_open(t, Tz::UTC), t);
        assert!(Windows::parse(&["every weekday"]).is_err());
        assert!(Windows::parse(&["* 25 * * *"]).is_err());
        let err = Windows::parse(&["* 9-16 * * 1-5"]).unwrap_err();
        assert!(err.contains("names"), "{err}");
    }
}
