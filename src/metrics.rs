//! What the daemon counts for Prometheus (`GET /metrics`, see `docs/metrics.md`).
//!
//! Two kinds of numbers, kept apart on purpose:
//!
//! - **Counted in this process, since it started**: messages recorded by kind, leads created,
//!   send attempts by the SMTP reply's class and how long they took, IMAP reconnects, when the
//!   mailbox was last read, how late due enrollments were when the scheduler claimed them.
//!   The parts that do the work (ingest, send, the scheduler) hold a [`Metrics`] handle and
//!   bump these as they go: a few atomic operations, no lock, no database. They survive a
//!   reload (the daemon builds one [`Metrics`] at start and hands it to every generation);
//!   a restart starts them at zero, which Prometheus' `rate()` understands.
//! - **Facts of the database** (enrollments and outbox messages by state, leads handed off
//!   and judged by channel): not counted here, because other daemons on the same PostgreSQL
//!   database and the CLI change them too. The HTTP listener has them read when a scrape
//!   comes ([`Metrics::refresh_database`]), at most once per [`DATABASE_INTERVAL`] and never
//!   more than one read at a time, so many scrapers cost one set of queries. On a large
//!   database the counts that scan whole tables take a while: a read then runs on its own
//!   while scrapes answer with the counts before it, and the next read waits
//!   [`READ_SHARE`] times as long as the last one took, so counting never takes more than a
//!   small share of the machine.
//!
//! There are no globals: each [`Metrics`] has its own registry, so tests and several daemons
//! in one process stay apart. A part built without one (the CLI, tests) gets
//! [`Metrics::default`], which counts into a registry nobody reads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tracing::{debug, warn};

use crate::domain::{EnrollmentState, MessageKind, OutboxState};

/// The `Content-Type` of [`Metrics::encode`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How old the database's counts may be before a scrape has them read again.
pub const DATABASE_INTERVAL: Duration = Duration::from_secs(10);

/// A read of the database's counts is followed by at least this many times its duration
/// without one (a read of 1 s: at most one every 20 s, 5% of a core).
pub const READ_SHARE: u32 = 20;

/// Upper bounds of the send duration buckets, in seconds: a local relay answers in
/// milliseconds, a remote one in a second or two, a stuck one at `[smtp] timeout`.
const SEND_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// Upper bounds of the scheduler lag buckets, in seconds: from "at once" to a day behind.
const LAG_BUCKETS: [f64; 11] = [
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    12.0 * 3600.0,
    86400.0,
];

/// One label, for the families below.
type Label = [(&'static str, &'static str); 1];

/// How an SMTP attempt ended, as the `class` label of `leadloop_send_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    /// The server took the message (a 2xx reply to the end of data), or the file outbox
    /// wrote it.
    Accepted,
    /// A 4xx reply: try again later.
    Transient,
    /// A 5xx reply: refused for good.
    Permanent,
    /// No answer within `[smtp] timeout`.
    Timeout,
    /// The connection failed or broke, or TLS did.
    Network,
    /// The server's certificate is not trusted.
    Untrusted,
    /// Refused before any conversation: an envelope this server can never take.
    Envelope,
}

impl ReplyClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyClass::Accepted => "2xx",
            ReplyClass::Transient => "4xx",
            ReplyClass::Permanent => "5xx",
            ReplyClass::Timeout => "timeout",
            ReplyClass::Network => "network",
            ReplyClass::Untrusted => "untrusted",
            ReplyClass::Envelope => "envelope",
        }
    }

    /// Every class, so each has a series from the start (at 0).
    const ALL: [ReplyClass; 7] = [
        ReplyClass::Accepted,
        ReplyClass::Transient,
        ReplyClass::Permanent,
        ReplyClass::Timeout,
        ReplyClass::Network,
        ReplyClass::Untrusted,
        ReplyClass::Envelope,
    ];
}

/// The counts the store reads at scrape time (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseCounts {
    /// Enrollments per state; a state missing here has none.
    pub enrollments: Vec<(EnrollmentState, u64)>,
    /// Outbox messages per state; a state missing here has none.
    pub outbox: Vec<(OutboxState, u64)>,
    /// Leads handed off to Sales at least once, per channel.
    pub handed_off: Vec<(String, u64)>,
    /// Leads per channel and newest quality verdict (`qualified`, `unqualified`, `customer`).
    pub judged: Vec<(String, String, u64)>,
}

/// The daemon's metrics. Cheap to clone: clones share the same numbers.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// What [`Metrics::encode`] writes out: every metric below, and the database's counts.
    registry: Registry,
    /// Messages recorded for the first time, by kind (a replayed one is not counted again).
    messages: Family<Label, Counter>,
    /// Leads that did not exist before a message made them.
    leads_created: Counter,
    /// Attempts to hand a message over, by how they ended.
    send_attempts: Family<Label, Counter>,
    /// How long each attempt took, from taking the connection to the last reply.
    send_duration: Histogram,
    /// Times the IMAP session failed and was opened again.
    imap_reconnects: Counter,
    /// When the mailbox was last read successfully (Unix seconds; 0 before the first read).
    last_read: Gauge<f64, AtomicU64>,
    /// How late each due enrollment was when the scheduler claimed it.
    scheduler_lag: Histogram,
    /// The database's counts, as last read, shared with the registry's collector.
    database: Arc<DatabaseGauges>,
    /// Held while the database's counts are read, so concurrent scrapes read them once.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, every counter at zero, in a registry of its own.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("leadloop");
        let messages = Family::<Label, Counter>::default();
        for kind in MessageKind::ALL {
            messages.get_or_create_owned(&[("kind", kind.as_str())]);
        }
        registry.register(
            "messages_ingested",
            "Inbound messages recorded for the first time, by kind",
            messages.clone(),
        );
        let leads_created = Counter::default();
        registry.register(
            "leads_created",
            "Leads created by inbound messages",
            leads_created.clone(),
        );
        let send_attempts = Family::<Label, Counter>::default();
        for class in ReplyClass::ALL {
            send_attempts.get_or_create_owned(&[("class", class.as_str())]);
        }
        registry.register(
            "send_attempts",
            "Attempts to hand an outbox message over, by how they ended: the SMTP reply class (2xx, 4xx, 5xx) or timeout, network, untrusted, envelope",
            send_attempts.clone(),
        );
        let send_duration = Histogram::new(SEND_BUCKETS);
        registry.register(
            "send_duration_seconds",
            "How long one attempt to hand a message over took",
            send_duration.clone(),
        );
        let imap_reconnects = Counter::default();
        registry.register(
            "imap_reconnects",
            "Times the IMAP session failed and is opened again",
            imap_reconnects.clone(),
        );
        let last_read = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_poll_timestamp_seconds",
            "When the mailbox was last read successfully (Unix time; 0 before the first read)",
            last_read.clone(),
        );
        let scheduler_lag = Histogram::new(LAG_BUCKETS);
        registry.register(
            "scheduler_lag_seconds",
            "How late each due sequence step was when the scheduler claimed it",
            scheduler_lag.clone(),
        );
        registry.register(
            "build",
            "The running leadloop's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let database = Arc::new(DatabaseGauges::default());
        registry.register_collector(Box::new(Arc::clone(&database)));
        Metrics(Arc::new(Inner {
            registry,
            messages,
            leads_created,
            send_attempts,
            send_duration,
            imap_reconnects,
            last_read,
            scheduler_lag,
            database,
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        }))
    }

    /// A batch recorded these messages for the first time (duplicates excluded) and created
    /// `leads_created` leads.
    pub fn recorded<'k>(&self, kinds: impl IntoIterator<Item = &'k MessageKind>, leads: usize) {
        for kind in kinds {
            self.0
                .messages
                .get_or_create(&[("kind", kind.as_str())])
                .inc();
        }
        self.0.leads_created.inc_by(leads as u64);
    }

    /// One attempt to hand a message over ended so, after `took`.
    pub fn send_attempt(&self, class: ReplyClass, took: Duration) {
        self.0
            .send_attempts
            .get_or_create(&[("class", class.as_str())])
            .inc();
        self.0.send_duration.observe(took.as_secs_f64());
    }

    /// The IMAP session failed and is about to be opened again.
    pub fn imap_reconnect(&self) {
        self.0.imap_reconnects.inc();
    }

    /// The mailbox was read successfully just now.
    pub fn mailbox_read(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.0.last_read.set(now.as_secs_f64());
    }

    /// The scheduler claimed an enrollment that was due `late` ago.
    pub fn claimed_late(&self, late: Duration) {
        self.0.scheduler_lag.observe(late.as_secs_f64());
    }

    /// Has the database's counts read with `read`, unless the last read is younger than
    /// `interval` (or [`READ_SHARE`] times its duration) or a read is under way, and waits
    /// for the read for at most `wait`. A read that takes longer goes on by itself and
    /// later scrapes show what it found; one that fails is logged and keeps the counts as
    /// they were (before a first successful read, they stay out of the text).
    pub async fn refresh_database<F, Fut>(&self, interval: Duration, wait: Duration, read: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<DatabaseCounts, String>> + Send + 'static,
    {
        if !self.0.database.due(interval) {
            return;
        }
        let Ok(guard) = Arc::clone(&self.0.refreshing).try_lock_owned() else {
            // Another scrape started a read: wait for it as long as it would have.
            let _ = tokio::time::timeout(wait, self.0.refreshing.lock()).await;
            return;
        };
        if !self.0.database.due(interval) {
            return;
        }
        let database = Arc::clone(&self.0.database);
        let counting = read();
        let task = tokio::spawn(async move {
            let _one_at_a_time = guard;
            let started = Instant::now();
            match counting.await {
                Ok(counts) => {
                    debug!(took = ?started.elapsed(), "metrics: the database's counts read");
                    database.set(counts, started.elapsed());
                }
                Err(e) => {
                    database.failed(started.elapsed());
                    warn!(error = %e, "metrics: cannot read the database's counts; showing the last ones");
                }
            }
        });
        let _ = tokio::time::timeout(wait, task).await;
    }

    /// Everything, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail, and the collector writes only what it holds.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.0.registry);
        text
    }
}

/// The database's counts as last read, written out at every scrape.
#[derive(Debug, Default)]
struct DatabaseGauges(Mutex<Database>);

#[derive(Debug, Default)]
struct Database {
    /// The counts of the last successful read.
    counts: Option<DatabaseCounts>,
    /// When the last read, successful or not, ended, and how long it took.
    last_read: Option<(Instant, Duration)>,
}

impl DatabaseGauges {
    fn lock(&self) -> std::sync::MutexGuard<'_, Database> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, counts: DatabaseCounts, took: Duration) {
        let mut db = self.lock();
        db.counts = Some(counts);
        db.last_read = Some((Instant::now(), took));
    }

    fn failed(&self, took: Duration) {
        self.lock().last_read = Some((Instant::now(), took));
    }

    /// Whether a read is due: none yet, or the last one ended longer ago than `interval` and
    /// [`READ_SHARE`] times its duration.
    fn due(&self, interval: Duration) -> bool {
        self.lock()
            .last_read
            .is_none_or(|(at, took)| at.elapsed() >= interval.max(took.saturating_mul(READ_SHARE)))
    }
}

impl Collector for DatabaseGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let db = self.lock();
        let Some(counts) = db.counts.as_ref() else {
            return Ok(());
        };
        // Every state has a series, at 0 when nothing is in it, so a state that empties
        // reads 0 rather than vanishing.
        let enrollments: BTreeMap<&str, u64> = EnrollmentState::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .chain(counts.enrollments.iter().map(|(s, n)| (s.as_str(), *n)))
            .collect();
        gauges(
            &mut encoder,
            "enrollments",
            "Enrollments in sequences, by state",
            enrollments.iter().map(|(s, n)| (vec![("state", *s)], *n)),
        )?;
        let outbox: BTreeMap<&str, u64> = OutboxState::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .chain(counts.outbox.iter().map(|(s, n)| (s.as_str(), *n)))
            .collect();
        gauges(
            &mut encoder,
            "outbox_messages",
            "Messages in the outbox, by state",
            outbox.iter().map(|(s, n)| (vec![("state", *s)], *n)),
        )?;
        gauges(
            &mut encoder,
            "leads_handed_off",
            "Leads handed off to Sales at least once, by channel",
            counts
                .handed_off
                .iter()
                .map(|(c, n)| (vec![("channel", c.as_str())], *n)),
        )?;
        gauges(
            &mut encoder,
            "leads_judged",
            "Leads by channel and Sales' newest quality verdict",
            counts
                .judged
                .iter()
                .map(|(c, v, n)| (vec![("channel", c.as_str()), ("verdict", v.as_str())], *n)),
        )
    }
}

/// One gauge family of labelled values.
fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Vec<(&'a str, &'a str)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(0i64);
    let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    for (labels, n) in series {
        let value = ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name` (with its labels, as written) in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_series_is_there_from_the_start_and_counts_what_it_is_told() {
        let m = Metrics::new();
        let text = m.encode();
        assert_eq!(
            value(&text, "leadloop_messages_ingested_total{kind=\"bounce\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "leadloop_send_attempts_total{class=\"5xx\"}"),
            Some(0.0)
        );
        assert!(text.contains(&format!(
            "leadloop_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        // The database's counts stay out until they were read once.
        assert!(!text.contains("leadloop_enrollments"), "{text}");

        m.recorded(
            &[
                MessageKind::Inquiry,
                MessageKind::Form,
                MessageKind::Inquiry,
            ],
            2,
        );
        m.send_attempt(ReplyClass::Accepted, Duration::from_millis(30));
        m.send_attempt(ReplyClass::Transient, Duration::from_millis(3));
        m.imap_reconnect();
        m.mailbox_read();
        m.claimed_late(Duration::from_secs(2));
        let text = m.encode();
        let v = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
        assert_eq!(v("leadloop_messages_ingested_total{kind=\"inquiry\"}"), 2.0);
        assert_eq!(v("leadloop_messages_ingested_total{kind=\"form\"}"), 1.0);
        assert_eq!(v("leadloop_leads_created_total"), 2.0);
        assert_eq!(v("leadloop_send_attempts_total{class=\"2xx\"}"), 1.0);
        assert_eq!(v("leadloop_send_attempts_total{class=\"4xx\"}"), 1.0);
        assert_eq!(v("leadloop_send_duration_seconds_count"), 2.0);
        assert_eq!(
            v("leadloop_send_duration_seconds_bucket{le=\"0.005\"}"),
            1.0
        );
        assert_eq!(v("leadloop_send_duration_seconds_bucket{le=\"0.05\"}"), 2.0);
        assert_eq!(v("leadloop_send_duration_seconds_bucket{le=\"+Inf\"}"), 2.0);
        assert_eq!(v("leadloop_imap_reconnects_total"), 1.0);
        assert!(v("leadloop_last_poll_timestamp_seconds") > 1.7e9);
        assert_eq!(v("leadloop_scheduler_lag_seconds_bucket{le=\"1\"}"), 0.0);
        assert_eq!(v("leadloop_scheduler_lag_seconds_bucket{le=\"5\"}"), 1.0);
    }

    #[test]
    fn every_sample_line_is_name_labels_and_a_number_under_its_type() {
        let m = Metrics::new();
        m.0.database.set(
            DatabaseCounts {
                enrollments: vec![(EnrollmentState::Active, 3)],
                outbox: vec![(OutboxState::Sent, 1)],
                handed_off: vec![("web \"form\"\n".to_owned(), 1)],
                judged: vec![("web".to_owned(), "qualified".to_owned(), 1)],
            },
            Duration::ZERO,
        );
        let text = m.encode();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, number) = line.rsplit_once(' ').expect("a sample: series value");
            number
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("leadloop_"), "{line}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "{line} comes before its # TYPE");
        }
        // A label value is escaped, whatever a channel is called.
        assert!(
            text.contains("leadloop_leads_handed_off{channel=\"web \\\"form\\\"\\n\"} 1\n"),
            "{text}"
        );
        assert_eq!(
            value(&text, "leadloop_enrollments{state=\"active\"}"),
            Some(3.0)
        );
        assert_eq!(
            value(&text, "leadloop_enrollments{state=\"held\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "leadloop_leads_judged{channel=\"web\",verdict=\"qualified\"}"
            ),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn the_database_is_read_again_only_when_its_counts_are_old() {
        let m = Metrics::new();
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let read = |counts: DatabaseCounts| {
            let reads = Arc::clone(&reads);
            move || async move {
                reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(counts)
            }
        };
        let active = |n| DatabaseCounts {
            enrollments: vec![(EnrollmentState::Active, n)],
            ..DatabaseCounts::default()
        };
        let (minute, wait) = (Duration::from_secs(60), Duration::from_secs(5));
        m.refresh_database(minute, wait, read(active(1))).await;
        m.refresh_database(minute, wait, read(active(2))).await;
        assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(
            m.encode()
                .contains("leadloop_enrollments{state=\"active\"} 1\n")
        );
        m.refresh_database(Duration::ZERO, wait, read(active(3)))
            .await;
        assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(
            m.encode()
                .contains("leadloop_enrollments{state=\"active\"} 3\n")
        );
        // A failed read keeps what was read before.
        m.refresh_database(Duration::ZERO, wait, || async { Err("down".to_owned()) })
            .await;
        assert!(
            m.encode()
                .contains("leadloop_enrollments{state=\"active\"} 3\n")
        );
    }

    #[tokio::test]
    async fn a_slow_read_goes_on_alone_and_holds_off_the_next_one() {
        let m = Metrics::new();
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let slow = || async move {
            let _ = gate.await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(DatabaseCounts::default())
        };
        // The scrape answers after `wait`, without the counts, while the read goes on.
        m.refresh_database(Duration::ZERO, Duration::from_millis(10), slow)
            .await;
        assert!(!m.encode().contains("leadloop_enrollments"));
        // A second scrape meanwhile starts no read of its own.
        m.refresh_database(Duration::ZERO, Duration::from_millis(10), || async {
            panic!("a second read while one is under way")
        })
        .await;
        go.send(()).unwrap();
        let _ = m.0.refreshing.lock().await;
        assert!(
            m.encode()
                .contains("leadloop_enrollments{state=\"active\"} 0\n")
        );
        // It took 50 ms or more: no read for 20 times that, even with no interval.
        assert!(!m.0.database.due(Duration::ZERO));
    }
}
