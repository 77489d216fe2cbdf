//! Digests (`[[digest]]`): the reports of the last full week or month, mailed to our own people
//! on a cron schedule in the team's time zone, with the leads Sales has left without a verdict.
//!
//! A digest is due when its schedule fired; it covers the full period before the one the
//! firing falls in. It goes out once per period: the digest's row (name, period start) and
//! its outbox messages are written in one transaction, and the row's unique key turns away a
//! second writer, a restarted daemon as well as another daemon on the same database. A daemon
//! that was down when the schedule fired sends the digest of the latest due period when it is
//! back, not one per missed period: only the newest firing counts.
//!
//! The tables come from the store's report functions, the same counts `leadloop report`
//! prints.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::domain::{EmailAddress, MessageId};
use crate::render::{self, Digest, DigestBar, DigestTable, DigestWaiting, RenderError, SenderData};
use crate::store::{
    LeadGroup, LeadGroupRow, NewDigest, NewOutboxMessage, ReportWindow, Store, StoreError,
};

/// Leads waiting for a verdict listed at most.
const MAX_WAITING: i64 = 200;

/// How often the daemon looks whether a digest is due, at most.
const POLL: Duration = Duration::from_secs(60);

/// The reports a digest can hold, as `leadloop report` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestReport {
    /// Per channel.
    Channels,
    /// Per form.
    Forms,
    /// Per owner.
    Owners,
    /// Per sequence step.
    Sequences,
    /// Per unqualified reason.
    Reasons,
}

impl DigestReport {
    /// Every report, in the order `leadloop report` lists them.
    pub const ALL: [DigestReport; 5] = [
        DigestReport::Channels,
        DigestReport::Forms,
        DigestReport::Owners,
        DigestReport::Sequences,
        DigestReport::Reasons,
    ];

    /// The name in `reports = [...]`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestReport::Channels => "channels",
            DigestReport::Forms => "forms",
            DigestReport::Owners => "owners",
            DigestReport::Sequences => "sequences",
            DigestReport::Reasons => "reasons",
        }
    }
}

impl FromStr for DigestReport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        DigestReport::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a report; known: {}",
                    DigestReport::ALL.map(DigestReport::as_str).join(", ")
                )
            })
    }
}

/// What a digest covers: a week (Monday to Sunday) or a calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestPeriod {
    /// ISO weeks.
    #[default]
    Week,
    /// Calendar months.
    Month,
}

impl FromStr for DigestPeriod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "week" => Ok(DigestPeriod::Week),
            "month" => Ok(DigestPeriod::Month),
            _ => Err(format!("'{s}' is not a period: week or month")),
        }
    }
}

/// One `[[digest]]`, checked.
#[derive(Debug, Clone)]
pub struct DigestSpec {
    /// Its unique name (the key of its periods in the database).
    pub name: String,
    /// When it goes out, in the team's time zone.
    pub schedule: cron::Schedule,
    /// The recipients, one message each.
    pub to: Vec<EmailAddress>,
    /// The reports, in order.
    pub reports: Vec<DigestReport>,
    /// What one digest covers.
    pub period: DigestPeriod,
    /// Hand-offs older than this without a verdict are listed.
    pub waiting_after: Duration,
    /// `waiting_after` as written, for the message.
    pub waiting_after_text: String,
    /// Who sends it.
    pub sender: SenderData,
    /// The envelope sender (`[smtp] envelope_from`), else the sender's address.
    pub envelope_from: Option<EmailAddress>,
}

/// Parses a digest's schedule as send windows are parsed ([`crate::domain::parse_cron`]).
///
/// # Errors
/// Why the expression is not usable.
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    crate::domain::parse_cron(expr)
}

/// One period of a digest, in the team's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Its first moment (midnight in the zone).
    pub start: DateTime<Utc>,
    /// The first moment after it.
    pub end: DateTime<Utc>,
    /// `week 2026-W48`, `month 2026-11`.
    pub label: String,
    /// Its first and last day, `Nov 23 – Nov 29`.
    pub range: String,
}

/// Midnight of `day` in `zone`, or the first moment of the day where a change of clocks skips
/// midnight.
fn start_of_day(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut t = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..48 {
        if let Some(local) = zone.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::TimeDelta::minutes(30);
    }
    Utc.from_utc_datetime(&t)
}

/// The period of kind `kind` that holds `day`.
pub fn period_of(kind: DigestPeriod, zone: Tz, day: NaiveDate) -> Period {
    let (first, next, label) = match kind {
        DigestPeriod::Week => {
            let first = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
            let w = first.iso_week();
            (
                first,
                first + Days::new(7),
                format!("week {}-W{:02}", w.year(), w.week()),
            )
        }
        DigestPeriod::Month => {
            let first = day.with_day(1).unwrap_or(day);
            let next = first.checked_add_months(Months::new(1)).unwrap_or(first);
            (first, next, format!("month {}", first.format("%Y-%m")))
        }
    };
    let last = next.pred_opt().unwrap_or(first);
    Period {
        start: start_of_day(first, zone),
        end: start_of_day(next, zone),
        label,
        range: format!("{} – {}", first.format("%b %-d"), last.format("%b %-d")),
    }
}

/// The full period before the one `t` falls in, in `zone`.
pub fn previous_period(kind: DigestPeriod, zone: Tz, t: DateTime<Utc>) -> Period {
    let current = period_of(kind, zone, t.with_timezone(&zone).date_naive());
    let before = current.start.with_timezone(&zone).date_naive().pred_opt();
    period_of(kind, zone, before.unwrap_or(NaiveDate::MIN))
}

/// The latest firing of `schedule` at or before `now`, in `zone`.
fn last_firing(schedule: &cron::Schedule, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // The iterator runs backwards from just after now, so a firing at `now` itself counts;
    // in the last second before a firing the first one back is that firing, still ahead, and
    // the one before it is the latest.
    let after = (now + chrono::TimeDelta::seconds(1)).with_timezone(&zone);
    schedule
        .after(&after)
        .rev()
        .take(2)
        .map(|t| t.with_timezone(&Utc))
        .find(|t| *t <= now)
}

/// The period the digest is due for at `now`: the one before its latest firing's.
pub fn due_period(spec: &DigestSpec, zone: Tz, now: DateTime<Utc>) -> Option<Period> {
    last_firing(&spec.schedule, zone, now).map(|fired| previous_period(spec.period, zone, fired))
}

/// The next firing after `now`.
fn next_firing(spec: &DigestSpec, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    spec.schedule
        .after(&now.with_timezone(&zone))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// Why a digest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Reading the reports or recording the digest failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// A digest built for one period, not yet recorded.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The period.
    pub period: Period,
    /// The subject.
    pub subject: String,
    /// The text part (the same for every recipient).
    pub text: String,
    /// One message per recipient.
    pub messages: Vec<NewOutboxMessage>,
}

/// What became of a digest for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Queued, one message per recipient.
    Queued {
        /// The digest.
        name: String,
        /// Its period's label.
        label: String,
        /// Messages queued.
        messages: usize,
    },
    /// It was recorded for that period before (by this daemon or another): nothing sent.
    AlreadySent {
        /// The digest.
        name: String,
        /// Its period's label.
        label: String,
    },
}

/// A digest's Message-ID: stable per digest, period and recipient, under the sender's domain.
fn message_id(
    name: &str,
    start: DateTime<Utc>,
    to: &EmailAddress,
    sender: &EmailAddress,
) -> String {
    let mut h = Sha256::new();
    h.update(b"leadloop digest message-id v1\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(start.timestamp_millis().to_be_bytes());
    h.update(to.as_str().as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("leadloop.digest.{hex}@{}", sender.domain())
}

/// Builds and sends the configured digests.
#[derive(Debug, Clone)]
pub struct Digests {
    store: Store,
    specs: Vec<DigestSpec>,
    zone: Tz,
}

impl Digests {
    /// The digests `specs`, in the team's time zone `zone`.
    pub fn new(store: Store, specs: Vec<DigestSpec>, zone: Tz) -> Digests {
        Digests { store, specs, zone }
    }

    /// The digest named `name`.
    pub fn spec(&self, name: &str) -> Option<&DigestSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// The period holding `day` (a digest sent by hand).
    pub fn period_of(&self, spec: &DigestSpec, day: NaiveDate) -> Period {
        period_of(spec.period, self.zone, day)
    }

    /// The full period before now's (a digest sent by hand without a day).
    pub fn last_full_period(&self, spec: &DigestSpec, now: DateTime<Utc>) -> Period {
        previous_period(spec.period, self.zone, now)
    }

    /// Sends every digest that is due and not yet recorded for its period.
    ///
    /// # Errors
    /// The first digest that could not be built or recorded; those before it are sent.
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<Vec<Outcome>, DigestError> {
        let mut out = Vec::new();
        for spec in &self.specs {
            let Some(period) = due_period(spec, self.zone, now) else {
                continue;
            };
            if self.store.digest_recorded(&spec.name, period.start).await? {
                continue;
            }
            out.push(self.send(spec, period, now).await?);
        }
        Ok(out)
    }

    /// Builds the digest for `period` and records it with its messages, unless it was
    /// recorded for that period already.
    ///
    /// # Errors
    /// The reports cannot be read, the message rendered, or the digest recorded.
    pub async fn send(
        &self,
        spec: &DigestSpec,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<Outcome, DigestError> {
        let p = self.prepare(spec, period, now).await?;
        let recorded = self
            .store
            .record_digest(
                &NewDigest {
                    name: &spec.name,
                    period_start: p.period.start,
                    period_end: p.period.end,
                    label: &p.period.label,
                    messages: &p.messages,
                },
                now,
            )
            .await?;
        Ok(if recorded {
            info!(digest = %spec.name, period = %p.period.label, recipients = p.messages.len(), "digest queued");
            Outcome::Queued {
                name: spec.name.clone(),
                label: p.period.label,
                messages: p.messages.len(),
            }
        } else {
            Outcome::AlreadySent {
                name: spec.name.clone(),
                label: p.period.label,
            }
        })
    }

    /// Builds the digest for `period`: the reports, the waiting leads, a message per
    /// recipient.
    ///
    /// # Errors
    /// The reports cannot be read or the message rendered.
    pub async fn prepare(
        &self,
        spec: &DigestSpec,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<Prepared, DigestError> {
        let window = ReportWindow {
            since: Some(period.start),
            until: Some(period.end),
            bounds: Vec::new(),
        };
        let mut tables = Vec::new();
        let mut bars = Vec::new();
        for report in &spec.reports {
            match report {
                DigestReport::Channels => {
                    let rows = self.store.lead_report(LeadGroup::Channel, &window).await?;
                    bars = rows
                        .iter()
                        .map(|r| DigestBar {
                            channel: r.key.clone().unwrap_or_else(|| "-".into()),
                            leads: r.leads,
                            qualified: r.qualified + r.customers,
                        })
                        .collect();
                    tables.push(lead_table("Leads by channel", "channel", &rows));
                }
                DigestReport::Forms => {
                    let rows = self.store.lead_report(LeadGroup::Form, &window).await?;
                    tables.push(lead_table("Leads by form", "form", &rows));
                }
                DigestReport::Owners => {
                    let rows = self.store.lead_report(LeadGroup::Owner, &window).await?;
                    tables.push(lead_table("Leads by owner", "owner", &rows));
                }
                DigestReport::Sequences => {
                    let rows = self.store.sequence_report(&window).await?;
                    tables.push(DigestTable {
                        title: "Sequence steps sent".into(),
                        columns: strings(&[
                            "sequence",
                            "step",
                            "sent",
                            "replied",
                            "unsubscribed",
                            "bounced",
                            "handed off",
                            "qualified",
                        ]),
                        numeric: vec![false, false, true, true, true, true, true, true],
                        rows: rows
                            .iter()
                            .map(|r| {
                                vec![
                                    r.sequence.clone(),
                                    r.step.clone(),
                                    r.sent.to_string(),
                                    r.replied.to_string(),
                                    r.unsubscribed.to_string(),
                                    r.bounced.to_string(),
                                    r.handed_off.to_string(),
                                    r.qualified.to_string(),
                                ]
                            })
                            .collect(),
                    });
                }
                DigestReport::Reasons => {
                    let reasons = self
                        .store
                        .unqualified_reasons(LeadGroup::All, &window)
                        .await?;
                    let total: i64 = reasons.iter().map(|(_, _, r)| r.count).sum();
                    tables.push(DigestTable {
                        title: "Unqualified reasons".into(),
                        columns: strings(&["reason", "count", "share"]),
                        numeric: vec![false, true, true],
                        rows: reasons
                            .iter()
                            .map(|(_, _, r)| {
                                vec![
                                    r.reason.clone().unwrap_or_else(|| "-".into()),
                                    r.count.to_string(),
                                    rate(r.count, total),
                                ]
                            })
                            .collect(),
                    });
                }
            }
        }
        let cutoff =
            now - chrono::Duration::from_std(spec.waiting_after).unwrap_or(chrono::TimeDelta::MAX);
        let waiting: Vec<DigestWaiting> = self
            .store
            .waiting_for_verdict(cutoff, MAX_WAITING)
            .await?
            .into_iter()
            .map(|w| DigestWaiting {
                days: (now - w.handed_off_at).num_days(),
                email: w.email,
                name: w.name,
                owner: w.owner,
                channel: w.channel,
            })
            .collect();
        let zone = self.zone.name();
        let mut messages = Vec::new();
        let mut first = None;
        for to in &spec.to {
            let id = message_id(&spec.name, period.start, to, &spec.sender.address);
            let r = render::render_digest(&Digest {
                name: &spec.name,
                label: &period.label,
                range: &period.range,
                zone,
                tables: &tables,
                bars: &bars,
                waiting: &waiting,
                waiting_after: &spec.waiting_after_text,
                sender: &spec.sender,
                to,
                message_id: &id,
                date: now,
            })?;
            messages.push(NewOutboxMessage {
                // A message to a colleague: a refusal of their address touches no lead.
                lead_id: None,
                enrollment_id: None,
                step_id: None,
                from: spec.sender.address.to_string(),
                envelope_from: spec
                    .envelope_from
                    .as_ref()
                    .unwrap_or(&spec.sender.address)
                    .to_string(),
                recipient: r.to.to_string(),
                message_id: MessageId::new(r.message_id),
                raw: r.bytes,
                due_at: now,
            });
            if first.is_none() {
                first = Some((r.subject, r.text));
            }
        }
        let (subject, text) = first.unwrap_or_else(|| {
            (
                render::digest_subject(&period.label, &period.range),
                String::new(),
            )
        });
        Ok(Prepared {
            period,
            subject,
            text,
            messages,
        })
    }

    /// Runs until `cancel` fires: sends what is due at start (a digest missed while the
    /// daemon was down), then at each firing, looking at least every minute (the clock may
    /// jump, and another daemon may have sent it).
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            let now = Utc::now();
            match self.run_due(now).await {
                Ok(done) => {
                    for o in done {
                        if let Outcome::AlreadySent { name, label } = o {
                            tracing::debug!(digest = %name, period = %label, "sent already, by another daemon");
                        }
                    }
                }
                Err(e) => error!(
                    error = %crate::diagnostics::error_chain(&e),
                    "cannot send a digest; trying again in a minute"
                ),
            }
            let next = self
                .specs
                .iter()
                .filter_map(|s| next_firing(s, self.zone, now))
                .min();
            let wait = next
                .and_then(|n| (n - Utc::now()).to_std().ok())
                .map_or(POLL, |d| d.min(POLL));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_owned()).collect()
}

/// `part / whole` as a whole percentage, `-` without a whole.
fn rate(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "-".into();
    }
    #[allow(clippy::cast_precision_loss)] // counts of leads: far below 2^52
    let r = part as f64 * 100.0 / whole as f64;
    format!("{r:.0}%")
}

/// A lead report as a digest table: the counts `leadloop report` shows, the main rates and
/// the top reasons.
fn lead_table(title: &str, key: &str, rows: &[LeadGroupRow]) -> DigestTable {
    DigestTable {
        title: title.into(),
        columns: strings(&[
            key,
            "leads",
            "replied",
            "handed off",
            "qualified",
            "unqualified",
            "customers",
            "reply %",
            "qualified %",
            "days to verdict",
            "top reasons",
        ]),
        numeric: vec![
            false, true, true, true, true, true, true, true, true, true, false,
        ],
        rows: rows
            .iter()
            .map(|r| {
                let mut reasons = String::new();
                for (i, x) in r.reasons.iter().take(3).enumerate() {
                    if i > 0 {
                        reasons.push_str(", ");
                    }
                    let _ = write!(
                        reasons,
                        "{} ({})",
                        x.reason.as_deref().unwrap_or("-"),
                        x.count
                    );
                }
                vec![
                    r.key.clone().unwrap_or_else(|| "-".into()),
                    r.leads.to_string(),
                    r.replied.to_string(),
                    r.handed_off.to_string(),
                    r.qualified.to_string(),
                    r.unqualified.to_string(),
                    r.customers.to_string(),
                    rate(r.replied, r.leads),
                    rate(r.qualified, r.judged()),
                    r.median_days_to_verdict
                        .map_or_else(|| "-".into(), |d| format!("{d:.1}")),
                    if reasons.is_empty() {
                        "-".into()
                    } else {
                        reasons
                    },
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_last_second_before_a_firing_still_sees_the_one_before() {
        let every_minute = parse_schedule("* * * * *").unwrap();
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        for (now, want) in [
            ("2026-12-05T10:14:59.500Z", "2026-12-05T10:14:00Z"),
            ("2026-12-05T10:14:00Z", "2026-12-05T10:14:00Z"),
            ("2026-12-05T10:14:30Z", "2026-12-05T10:14:00Z"),
        ] {
            assert_eq!(
                last_firing(&every_minute, zone, utc(now)),
                Some(utc(want)),
                "{now}"
            );
        }
    }

    fn spec(schedule: &str, period: DigestPeriod) -> DigestSpec {
        DigestSpec {
            name: "weekly".into(),
            schedule: parse_schedule(schedule).unwrap(),
            to: vec![EmailAddress::parse("m@company.com").unwrap()],
            reports: vec![DigestReport::Channels],
            period,
            waiting_after: Duration::from_secs(7 * 86_400),
            waiting_after_text: "7d".into(),
            sender: SenderData {
                name: "team".into(),
                address: EmailAddress::parse("leads@company.com").unwrap(),
                display_name: None,
            },
            envelope_from: None,
        }
    }

    #[test]
    fn weeks_run_monday_to_monday_in_the_zone_across_a_clock_change() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Summer time ends on Sunday 25 October 2026: that week is an hour longer.
        let p = period_of(
            DigestPeriod::Week,
            berlin,
            NaiveDate::from_ymd_opt(2026, 10, 21).unwrap(),
        );
        assert_eq!(p.start, utc("2026-10-18T22:00:00Z"));
        assert_eq!(p.end, utc("2026-10-25T23:00:00Z"));
        assert_eq!(p.label, "week 2026-W43");
        assert_eq!(p.range, "Oct 19 – Oct 25");
        // Summer time starts on Sunday 29 March 2026: that week is an hour shorter.
        let p = period_of(
            DigestPeriod::Week,
            berlin,
            NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
        );
        assert_eq!(p.start, utc("2026-03-22T23:00:00Z"));
        assert_eq!(p.end, utc("2026-03-29T22:00:00Z"));
        // A week across the new year is labelled by its ISO year.
        let p = period_of(
            DigestPeriod::Week,
            Tz::UTC,
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        );
        assert_eq!(p.label, "week 2026-W53");
        assert_eq!(p.range, "Dec 28 – Jan 3");
    }

    #[test]
    fn a_digest_covers_the_full_period_before_its_latest_firing() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let s = spec("0 8 * * Mon", DigestPeriod::Week);
        // Monday 30 November 2026, 08:00 in Berlin is 07:00 UTC.
        assert_eq!(
            due_period(&s, berlin, utc("2026-11-30T06:59:00Z"))
                .unwrap()
                .label,
            "week 2026-W47"
        );
        let p = due_period(&s, berlin, utc("2026-11-30T07:00:00Z")).unwrap();
        assert_eq!(p.label, "week 2026-W48");
        assert_eq!(p.range, "Nov 23 – Nov 29");
        assert_eq!(p.start, utc("2026-11-22T23:00:00Z"));
        // Down for three weeks: only the latest period is due.
        assert_eq!(
            due_period(&s, berlin, utc("2026-12-17T12:00:00Z"))
                .unwrap()
                .label,
            "week 2026-W50"
        );
        let m = spec("0 9 1 * *", DigestPeriod::Month);
        let p = due_period(&m, berlin, utc("2026-11-01T09:00:00Z")).unwrap();
        assert_eq!(
            (p.label.as_str(), p.range.as_str()),
            ("month 2026-10", "Oct 1 – Oct 31")
        );
        assert_eq!(p.end, utc("2026-10-31T23:00:00Z"));
    }

    #[test]
    fn schedules_must_be_cron_with_named_weekdays() {
        assert!(parse_schedule("0 8 * * Mon").is_ok());
        assert!(parse_schedule("0 0 8 * * Mon").is_ok());
        let e = parse_schedule("0 8 * * 1").unwrap_err();
        assert!(e.contains("names"), "{e}");
        let e = parse_schedule("every monday").unwrap_err();
        assert!(e.contains("fields"), "{e}");
        let e = parse_schedule("0 25 * * Mon").unwrap_err();
        assert!(e.contains("not a cron expression"), "{e}");
        assert!("channels".parse::<DigestReport>().is_ok());
        assert!(
            "leads"
                .parse::<DigestReport>()
                .unwrap_err()
                .contains("channels, forms")
        );
    }
}
