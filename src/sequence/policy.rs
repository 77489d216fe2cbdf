//! The send policy: when mail may go out (windows in the recipient's time zone) and how much
//! (caps per sending identity, per recipient domain and per lead). Pure: counts and the time
//! come in, a decision comes out.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use chrono_tz::Tz;

use super::time::{Windows, from_local};
use crate::domain::EmailAddress;

/// `[[sender]]`: an identity mail is sent from, with its own throttles.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The name steps refer to (`from = "sales"`).
    pub name: String,
    /// The address (`From` and envelope sender).
    pub address: EmailAddress,
    /// `From` display name.
    pub display_name: Option<String>,
    /// At most this many messages per minute (UTC clock minute).
    pub per_minute: Option<u32>,
    /// Per clock hour.
    pub per_hour: Option<u32>,
    /// Per day (the team's calendar day).
    pub per_day: Option<u32>,
}

/// `[policy]` from `leadloop.toml`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The team's zone: days, and windows for leads whose zone is unknown.
    pub timezone: Tz,
    /// Form fields that may hold a lead's IANA zone (`Europe/Berlin`), tried in order.
    pub lead_timezone_fields: Vec<String>,
    /// When mail may go out, in the recipient's zone.
    pub windows: Windows,
    /// At most this many messages per recipient domain per day.
    pub per_domain_per_day: Option<u32>,
    /// At most this many messages per lead per day.
    pub per_lead_per_day: Option<u32>,
    /// Postponed messages are spread over up to this long, so a window opening or a cap
    /// resetting does not release a burst at one instant.
    pub jitter: std::time::Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timezone: Tz::UTC,
            lead_timezone_fields: Vec::new(),
            windows: Windows::default(),
            per_domain_per_day: None,
            per_lead_per_day: Some(1),
            jitter: std::time::Duration::ZERO,
        }
    }
}

/// A counted period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// The UTC clock minute.
    Minute,
    /// The UTC clock hour.
    Hour,
    /// The team's calendar day.
    Day,
}

impl Period {
    /// The start of the period containing `t`.
    pub fn start(self, t: DateTime<Utc>, team: Tz) -> DateTime<Utc> {
        match self {
            Period::Minute => t.duration_trunc(Duration::minutes(1)).unwrap_or(t),
            Period::Hour => t.duration_trunc(Duration::hours(1)).unwrap_or(t),
            Period::Day => {
                let date = t.with_timezone(&team).date_naive();
                from_local(team, date.and_hms_opt(0, 0, 0).unwrap_or_default())
            }
        }
    }

    /// The start of the next period after the one containing `t`.
    pub fn next(self, t: DateTime<Utc>, team: Tz) -> DateTime<Utc> {
        match self {
            Period::Minute => self.start(t, team) + Duration::minutes(1),
            Period::Hour => self.start(t, team) + Duration::hours(1),
            Period::Day => {
                let date = t.with_timezone(&team).date_naive();
                let next = date.succ_opt().unwrap_or(date);
                from_local(team, next.and_hms_opt(0, 0, 0).unwrap_or_default())
            }
        }
    }

    /// A short name for counter keys.
    pub fn tag(self) -> &'static str {
        match self {
            Period::Minute => "m",
            Period::Hour => "h",
            Period::Day => "d",
        }
    }
}

/// One counter a message draws on: its key and its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// `sender:NAME:m`, `domain:example.com:d`, `lead:42:d`, …
    pub key: String,
    /// The period's start, as stored.
    pub bucket: DateTime<Utc>,
    /// When the next period starts.
    pub resets: DateTime<Utc>,
    /// The cap.
    pub cap: u32,
}

impl Policy {
    /// The time zone of a lead: from the first configured form field that names a valid IANA
    /// zone, else the team's.
    pub fn lead_zone(&self, fields: &serde_json::Map<String, serde_json::Value>) -> Tz {
        self.lead_timezone_fields
            .iter()
            .filter_map(|f| fields.get(f).and_then(|v| v.as_str()))
            .find_map(|v| v.trim().parse::<Tz>().ok())
            .unwrap_or(self.timezone)
    }

    /// The counters a message from `sender` to `to` (lead id `lead`) draws on at `now`.
    pub fn budgets(
        &self,
        sender: &Sender,
        to: &EmailAddress,
        lead: i64,
        now: DateTime<Utc>,
    ) -> Vec<Budget> {
        let mut out = Vec::new();
        let mut add = |key: String, period: Period, cap: Option<u32>| {
            if let Some(cap) = cap {
                out.push(Budget {
                    key: format!("{key}:{}", period.tag()),
                    bucket: period.start(now, self.timezone),
                    resets: period.next(now, self.timezone),
                    cap,
                });
            }
        };
        let s = format!("sender:{}", sender.name);
        add(s.clone(), Period::Minute, sender.per_minute);
        add(s.clone(), Period::Hour, sender.per_hour);
        add(s, Period::Day, sender.per_day);
        add(
            format!("domain:{}", to.domain()),
            Period::Day,
            self.per_domain_per_day,
        );
        add(format!("lead:{lead}"), Period::Day, self.per_lead_per_day);
        out
    }

    /// `None` when every budget has room (`used` gives each one's count so far); otherwise
    /// the time the last exhausted one resets, when the message may be tried again.
    pub fn cap_wait(budgets: &[Budget], used: impl Fn(&Budget) -> u32) -> Option<DateTime<Utc>> {
        budgets
            .iter()
            .filter(|b| used(b) >= b.cap)
            .map(|b| b.resets)
            .max()
    }

    /// A random extra wait up to the configured jitter; `roll` is uniform in `[0, 1)`.
    pub fn jitter(&self, roll: f64) -> Duration {
        let ms = (self.jitter.as_millis() as f64 * roll.clamp(0.0, 1.0)) as i64;
        Duration::milliseconds(ms)
    }

    /// The earliest time a step due at `due` may go out for a lead in `tz`, windows applied.
    pub fn open_at(&self, due: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        self.windows.next_open(due, tz)
    }
}

/// The team's midnight at the start of `t`'s day, for displays.
pub fn local_day_start(t: DateTime<Utc>, tz: Tz) -> DateTime<Tz> {
    tz.from_utc_datetime(&Period::Day.start(t, tz).naive_utc())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sender() -> Sender {
        Sender {
            name: "team".into(),
            address: EmailAddress::parse("hello@company.com").unwrap(),
            display_name: None,
            per_minute: Some(2),
            per_hour: Some(3),
            per_day: None,
        }
    }

    #[test]
    fn caps_hold_messages_until_the_period_resets() {
        let policy = Policy {
            timezone: "Europe/Berlin".parse().unwrap(),
            per_domain_per_day: Some(5),
            per_lead_per_day: Some(1),
            ..Policy::default()
        };
        let to = EmailAddress::parse("a@acme.example").unwrap();
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut sent = Vec::new();
        // Try one message every 10 seconds for 3 minutes, to leads 1..=18 at one domain.
        let start = utc("2026-11-27T10:00:00Z");
        for i in 0..18 {
            let now = start + Duration::seconds(10 * i);
            let b = policy.budgets(&sender(), &to, i, now);
            let wait = Policy::cap_wait(&b, |b| {
                counts
                    .get(&format!("{}@{}", b.key, b.bucket))
                    .copied()
                    .unwrap_or(0)
            });
            match wait {
                None => {
                    for b in &b {
                        *counts.entry(format!("{}@{}", b.key, b.bucket)).or_default() += 1;
                    }
                    sent.push(now);
                }
                Some(until) => assert!(until > now),
            }
        }
        // Two in the first minute, one in the second, then the hour's cap of 3 is reached.
        assert_eq!(
            sent,
            [
                start,
                start + Duration::seconds(10),
                start + Duration::seconds(60)
            ]
        );
        let b = policy.budgets(&sender(), &to, 99, start + Duration::seconds(90));
        let wait = Policy::cap_wait(&b, |b| {
            counts
                .get(&format!("{}@{}", b.key, b.bucket))
                .copied()
                .unwrap_or(0)
        });
        assert_eq!(wait, Some(utc("2026-11-27T11:00:00Z")));
    }

    #[test]
    fn the_lead_cap_resets_at_the_teams_midnight() {
        let policy = Policy {
            timezone: "America/New_York".parse().unwrap(),
            ..Policy::default()
        };
        let to = EmailAddress::parse("a@acme.example").unwrap();
        let now = utc("2026-11-27T20:00:00Z"); // 15:00 in New York
        let b = policy.budgets(&sender(), &to, 7, now);
        let lead = b.iter().find(|b| b.key == "lead:7:d").unwrap();
        assert_eq!(lead.bucket, utc("2026-11-27T05:00:00Z"));
        assert_eq!(lead.resets, utc("2026-11-28T05:00:00Z"));
        assert_eq!(
            Policy::cap_wait(&b, |b| u32::from(b.key == "lead:7:d")),
            Some(lead.resets)
        );
    }

    #[test]
    fn a_lead_zone_comes_from_a_form_field() {
        let policy = Policy {
            timezone: "Europe/Berlin".parse().unwrap(),
            lead_timezone_fields: vec!["Time zone".into()],
            ..Policy::default()
        };
        let mut fields = serde_json::Map::new();
        assert_eq!(policy.lead_zone(&fields), policy.timezone);
        fields.insert("Time zone".into(), "Mars/Olympus".into());
        assert_eq!(
            policy.lead_zone(&fields),
            policy.timezone,
            "invalid zones are ignored"
        );
        fields.insert("Time zone".into(), " Asia/Tokyo ".into());
        assert_eq!(policy.lead_zone(&fields), chrono_tz::Asia::Tokyo);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let p = Policy {
            jitter: std::time::Duration::from_secs(120),
            ..Policy::default()
        };
        assert_eq!(p.jitter(0.0), Duration::zero());
        assert_eq!(p.jitter(0.5), Duration::seconds(60));
        assert!(p.jitter(0.999_999) < Duration::seconds(120));
    }
}
