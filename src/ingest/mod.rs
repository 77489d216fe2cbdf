//! Reads inbound mail into the store: from an IMAP mailbox (the product) or a Maildir folder
//! (the demo, and a mailbox delivered on the same host).
//!
//! Both sources hand batches of raw messages to one [`Pipeline`], which classifies them off the
//! async runtime and records each batch together with the source's cursor in one transaction.
//! The rule that makes ingest safe across crashes: the cursor never moves past a message that
//! is not recorded, and a message recorded twice (a replayed batch, a UIDVALIDITY re-scan, a
//! second copy) is recognised by its dedupe key and skipped.

mod folders;
mod imap;
mod maildir;
pub mod progress;
pub mod rspamd;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tracing::{debug, debug_span, warn};

use crate::actions::Actions;
use crate::classify::{self, Classification, Rules};
use crate::domain::MessageKind;
use crate::metrics::Metrics;
use crate::store::{Batch, InboundRecord, Store, StoreError};

pub use imap::{ImapError, ImapSource, mailbox_name as imap_mailbox_name};
pub use maildir::{MaildirSource, mailbox_name as maildir_mailbox_name};

/// Why an ingest pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The IMAP server could not be reached or answered badly.
    #[error(transparent)]
    Imap(#[from] ImapError),
    /// The store refused the batch; nothing of it was recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a Maildir failed.
    #[error("cannot read {path}")]
    Io {
        /// What was being read.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A background task died; the batch was not recorded.
    #[error("ingest task failed: {0}")]
    Task(String),
}

/// One message as a source delivers it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// IMAP UID; `None` for Maildir files.
    pub uid: Option<u32>,
    /// Size of the whole message, as the server or file system reports it.
    pub size: u64,
    /// The whole message, or only its header when it is over the size limit.
    pub bytes: Vec<u8>,
    /// True when `bytes` holds only the header because the message is too large.
    pub oversize: bool,
}

/// Totals of one or more ingest passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Messages read from the source.
    pub fetched: usize,
    /// Messages recorded for the first time.
    pub recorded: usize,
    /// Messages skipped because they were already recorded.
    pub duplicates: usize,
    /// Messages over the size limit, recorded as ignored.
    pub oversize: usize,
    /// Leads created or updated.
    pub leads_touched: usize,
    /// Mail skipped because it arrived before `--since`; the cursor moved past it.
    pub skipped: usize,
    /// Recorded mail could not be flagged or moved (`[imap] after`; the reason is logged). The
    /// mail stays recorded, and the next pass tries again.
    pub tidy_failed: bool,
}

impl IngestReport {
    /// Adds another report's totals to this one.
    pub fn merge(&mut self, other: IngestReport) {
        self.fetched += other.fetched;
        self.recorded += other.recorded;
        self.duplicates += other.duplicates;
        self.oversize += other.oversize;
        self.leads_touched += other.leads_touched;
        self.skipped += other.skipped;
        self.tidy_failed |= other.tidy_failed;
    }
}

/// When the mailbox was last read successfully: the end of a pass that recorded everything
/// waiting, or a batch recorded during a long pass (a first import), so a reader that works
/// through a backlog counts as working. Both sources update it through their [`Pipeline`];
/// the daemon's readiness check (`/readyz`) reads it. Clones share one value, which outlives
/// the sources (a reload builds new ones and keeps it).
#[derive(Debug, Clone)]
pub struct LastRead(Arc<tokio::sync::watch::Sender<Option<Instant>>>);

impl LastRead {
    /// Never read yet.
    pub fn new() -> LastRead {
        LastRead(Arc::new(tokio::sync::watch::Sender::new(None)))
    }

    /// The mailbox was read successfully just now.
    pub fn mark(&self) {
        self.0.send_replace(Some(Instant::now()));
    }

    /// A receiver of the last successful read (`None` before the first).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Instant>> {
        self.0.subscribe()
    }
}

impl Default for LastRead {
    fn default() -> Self {
        LastRead::new()
    }
}

/// A small message that takes the classifier through its common paths once.
const WARM_UP_MESSAGE: &[u8] = b"From: Warm Up <warm.up@example.org>\r\nTo: leads@example.com\r\n\
Subject: Re: Fwd: question\r\nMessage-ID: <warm-up@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
\r\nName: Warm Up\r\nEmail: warm.up@example.org\r\nOn Friday, someone wrote:\r\n> back on 14 April\r\n";

/// Classifies and records batches for one mailbox.
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    rules: Arc<Rules>,
    mailbox: Arc<str>,
    max_message_bytes: u64,
    /// What messages do to their leads (and the sequences new leads enter), decided for
    /// each batch and applied in its own transaction.
    actions: Arc<Actions>,
    /// Woken when a batch enrolled someone, so the scheduler looks at once.
    wake: Option<Arc<tokio::sync::Notify>>,
    /// Told of every successful read, for the readiness check.
    last_read: Option<LastRead>,
    /// The rspamd asked about every message that would make a lead (`[spam] rspamd_url`).
    rspamd: Option<Arc<rspamd::Client>>,
    /// Counts what is recorded, successful reads and reconnects, for `/metrics`.
    metrics: Metrics,
    /// `run --once --since DATE`: mail that arrived before this day is skipped.
    since: Option<chrono::NaiveDate>,
    /// How far a pass has come, for whoever shows it.
    progress: Option<progress::Progress>,
    /// The mailbox's `channel`, for leads no rule gives one.
    default_channel: Option<Arc<str>>,
}

impl Pipeline {
    /// A pipeline writing to `store` under the mailbox name `mailbox`.
    pub fn new(
        store: Store,
        rules: Arc<Rules>,
        mailbox: impl Into<Arc<str>>,
        max_message_bytes: u64,
    ) -> Self {
        // The classifier compiles its patterns on first use; pay that at start-up rather than
        // in the first batch of mail.
        let _ = classify::classify(WARM_UP_MESSAGE, &rules);
        Pipeline {
            store,
            rules,
            mailbox: mailbox.into(),
            max_message_bytes,
            actions: Arc::new(Actions::default()),
            wake: None,
            last_read: None,
            rspamd: None,
            metrics: Metrics::default(),
            since: None,
            progress: None,
            default_channel: None,
        }
    }

    /// Gives the messages of this mailbox the channel `channel` where attribution found
    /// none (instead of `direct`): a mailbox of its own is often a channel of its own.
    #[must_use]
    pub fn with_default_channel(mut self, channel: Option<String>) -> Self {
        self.default_channel = channel.map(Arc::from);
        self
    }

    /// Counts into `metrics` (the daemon's, shown at `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// What this pipeline counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Asks `rspamd` about every inquiry and form notification before it is recorded:
    /// spam is ignored, a suspicious message's new lead waits for review, and so does one
    /// rspamd could not be asked about.
    #[must_use]
    pub fn with_rspamd(mut self, rspamd: Option<rspamd::Client>) -> Self {
        self.rspamd = rspamd.map(Arc::new);
        self
    }

    /// Acts on each batch's messages with `actions` (routing, hand-offs, verdicts, pauses,
    /// bounces) and enrolls new leads by its rules as the batch is recorded; wakes `wake`
    /// (the scheduler) when any were enrolled.
    #[must_use]
    pub fn with_actions(
        mut self,
        actions: Arc<Actions>,
        wake: Option<Arc<tokio::sync::Notify>>,
    ) -> Self {
        self.actions = actions;
        self.wake = wake;
        self
    }

    /// Tells `last_read` of every batch recorded and every pass that ends with nothing left
    /// to read.
    #[must_use]
    pub fn with_last_read(mut self, last_read: LastRead) -> Self {
        self.last_read = Some(last_read);
        self
    }

    /// Skips mail that arrived before `since` (IMAP `SEARCH SINCE`, by the server's arrival
    /// date); the cursor moves past it.
    pub fn with_since(mut self, since: Option<chrono::NaiveDate>) -> Self {
        self.since = since;
        self
    }

    /// The first day whose mail is read, when older mail is skipped.
    pub fn since(&self) -> Option<chrono::NaiveDate> {
        self.since
    }

    /// Counts each pass's messages into `progress`.
    pub fn with_progress(mut self, progress: Option<progress::Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// The pass will read `n` more messages.
    fn expect(&self, n: usize) {
        if let Some(p) = &self.progress {
            p.add_total(n as u64);
        }
    }

    /// Notes a successful read (a pass found nothing more to record, or a batch was recorded).
    fn mark_read(&self) {
        self.metrics.mailbox_read();
        if let Some(last_read) = &self.last_read {
            last_read.mark();
        }
    }

    /// The mailbox name under which messages and the cursor are recorded.
    pub fn mailbox(&self) -> &str {
        &self.mailbox
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts classifying `messages` on the blocking pool, spread over the cores, and returns at
    /// once: the caller can fetch the next batch meanwhile. Chunks keep message order.
    pub fn classify(&self, messages: Vec<RawMessage>) -> Classifying {
        let fetched = messages.len();
        let oversize = messages.iter().filter(|m| m.oversize).count();
        let limit = self.max_message_bytes;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk_len = fetched.div_ceil(workers).max(1);
        let mut chunks = Vec::with_capacity(workers);
        let mut messages = messages;
        let ask_rspamd = self.rspamd.is_some();
        while !messages.is_empty() {
            let rest = messages.split_off(chunk_len.min(messages.len()));
            let chunk = std::mem::replace(&mut messages, rest);
            let rules = Arc::clone(&self.rules);
            let default_channel = self.default_channel.clone();
            chunks.push(tokio::task::spawn_blocking(move || {
                let mut records = Vec::with_capacity(chunk.len());
                let mut asks = Vec::new();
                for m in chunk {
                    let mut r = classify_one(&m, &rules, limit);
                    if let Some(channel) = &default_channel {
                        default_channel_where_none(&mut r.classification, channel);
                    }
                    if ask_rspamd && would_make_lead(&r.classification) {
                        asks.push((records.len(), Bytes::from(m.bytes)));
                    }
                    records.push(r);
                }
                Classified { records, asks }
            }));
        }
        Classifying {
            fetched,
            oversize,
            chunks,
        }
    }

    /// Waits for a batch's classification and records it with the cursor
    /// `(uidvalidity, last_uid)` in one transaction.
    ///
    /// # Errors
    /// A store or task error; nothing of the batch is recorded then.
    pub async fn write(
        &self,
        uidvalidity: u32,
        last_uid: Option<u32>,
        batch: Classifying,
    ) -> Result<IngestReport, IngestError> {
        let mut records = Vec::with_capacity(batch.fetched);
        let mut asks = Vec::new();
        for chunk in batch.chunks {
            // classify is built never to panic; should it ever, the batch stays unrecorded and
            // the cursor unmoved, so the messages are read again rather than lost.
            let chunk = chunk.await.map_err(|e| IngestError::Task(e.to_string()))?;
            let offset = records.len();
            asks.extend(chunk.asks.into_iter().map(|(i, m)| (offset + i, m)));
            records.extend(chunk.records);
        }
        if let Some(rspamd) = &self.rspamd
            && !asks.is_empty()
        {
            self.ask_rspamd(rspamd, &mut records, asks).await;
        }
        let now = Utc::now();
        let changes = self.actions.plan(&self.store, &mut records, now).await?;
        keep_text_where_needed(&mut records, &changes);
        let outcome = self
            .store
            .record_batch(&Batch {
                mailbox: &self.mailbox,
                uidvalidity,
                last_uid,
                records: &records,
                now,
                enroll: self.actions.enroll_rules(),
                changes: &changes,
            })
            .await?;
        let kinds = outcome
            .new_records
            .iter()
            .map(|&i| &records[i].classification.kind);
        self.metrics.recorded(kinds, outcome.leads_created);
        self.mark_read();
        if outcome.enrolled > 0
            && let Some(wake) = &self.wake
        {
            wake.notify_one();
        }
        debug!(
            mailbox = %self.mailbox,
            recorded = outcome.recorded,
            duplicates = outcome.duplicates,
            "batch recorded"
        );
        if let Some(p) = &self.progress {
            p.advance(batch.fetched as u64);
        }
        Ok(IngestReport {
            tidy_failed: false,
            skipped: 0,
            fetched: batch.fetched,
            recorded: outcome.recorded,
            duplicates: outcome.duplicates,
            oversize: batch.oversize,
            leads_touched: outcome.leads_touched,
        })
    }

    /// Classifies `messages` and records them, with the cursor, in one transaction.
    ///
    /// # Errors
    /// A store or task error; nothing of the batch is recorded then.
    pub async fn record(
        &self,
        uidvalidity: u32,
        last_uid: Option<u32>,
        messages: Vec<RawMessage>,
    ) -> Result<IngestReport, IngestError> {
        self.write(uidvalidity, last_uid, self.classify(messages))
            .await
    }
}

impl Pipeline {
    /// Asks rspamd about the messages at `asks` (indexes into `records`), a few at a time,
    /// and writes its verdicts into their classifications. Never fails: an rspamd that
    /// cannot be asked sends the new leads to review.
    async fn ask_rspamd(
        &self,
        rspamd: &rspamd::Client,
        records: &mut [InboundRecord],
        asks: Vec<(usize, Bytes)>,
    ) {
        use futures::StreamExt;
        let rules = &self.rules.spam;
        let verdicts: Vec<(usize, rspamd::Verdict)> = futures::stream::iter(asks)
            .map(|(i, message)| async move { (i, rspamd.check(message, rules).await) })
            .buffer_unordered(rspamd::CONCURRENCY)
            .collect()
            .await;
        let mut unavailable = 0;
        let mut last_problem = String::new();
        for (i, verdict) in verdicts {
            let Some(r) = records.get_mut(i) else {
                continue;
            };
            let c = &mut r.classification;
            match verdict {
                rspamd::Verdict::Clean => c.evidence.push("rspamd: no objection".into()),
                rspamd::Verdict::Review(reason) => {
                    c.evidence.push(format!("rspamd: {reason}"));
                    c.review.get_or_insert(reason);
                }
                rspamd::Verdict::Spam(reason) => {
                    c.evidence.push(format!("rspamd: {reason}"));
                    c.kind = MessageKind::Ignored;
                    c.lead = None;
                    c.review = None;
                    c.reason = Some(reason);
                }
                rspamd::Verdict::Unavailable(why) => {
                    c.evidence.push(format!("rspamd could not be asked: {why}"));
                    c.review
                        .get_or_insert_with(|| format!("rspamd could not be asked: {why}"));
                    unavailable += 1;
                    last_problem = why;
                }
            }
        }
        if unavailable > 0 {
            warn!(
                rspamd = %rspamd.url(),
                messages = unavailable,
                problem = %last_problem,
                "rspamd could not be asked; the new leads of these messages wait for review (`leadloop leads list --status review`)"
            );
        }
    }
}

/// Whether a message would make a lead, so rspamd is asked about it.
fn would_make_lead(c: &Classification) -> bool {
    matches!(c.kind, MessageKind::Inquiry | MessageKind::Form) && c.lead.is_some()
}

/// One chunk's classifications, and the messages among them to ask rspamd about (their
/// index in the chunk, and their bytes).
#[derive(Debug)]
struct Classified {
    records: Vec<InboundRecord>,
    asks: Vec<(usize, Bytes)>,
}

/// A batch whose classification is under way ([`Pipeline::classify`]).
#[derive(Debug)]
pub struct Classifying {
    fetched: usize,
    oversize: usize,
    chunks: Vec<tokio::task::JoinHandle<Classified>>,
}

impl Classifying {
    /// Appends a later batch, so that both are recorded in one transaction.
    pub fn append(&mut self, later: Classifying) {
        self.fetched += later.fetched;
        self.oversize += later.oversize;
        self.chunks.extend(later.chunks);
    }
}

/// Keeps what a writer wrote (`Classification::text`) only for the messages whose text is
/// read later: answers (replies, Sales' feedback, stop requests) and messages that notify
/// Sales. Every other inquiry's text would be written with it for nobody, at a third of the
/// ingest rate of a busy mailbox.
fn keep_text_where_needed(records: &mut [InboundRecord], changes: &[crate::store::LeadChange]) {
    let notified: std::collections::HashSet<usize> = changes
        .iter()
        .filter(|c| c.change.notifies())
        .map(|c| c.record)
        .collect();
    for (i, r) in records.iter_mut().enumerate() {
        let c = &mut r.classification;
        let answer = matches!(
            c.kind,
            MessageKind::Reply | MessageKind::Feedback | MessageKind::Unsubscribe
        );
        if !answer && !notified.contains(&i) {
            c.text = None;
        }
    }
}

/// Classifies one message inside its own span, turning an oversize one into `ignored`.
///
/// The span is at debug level like the only event inside it: at the daemon's default level an
/// enabled span per message, which nothing logs in, cost 1.5% of ingest's instructions.
fn classify_one(m: &RawMessage, rules: &Rules, limit: u64) -> InboundRecord {
    let span = debug_span!("message", uid = m.uid, size = m.size);
    let _guard = span.enter();
    let mut c = classify::classify(&m.bytes, rules);
    if m.oversize {
        c = oversize_classification(c, m.size, limit);
    }
    debug!(kind = %c.kind, reason = c.reason.as_deref(), "classified");
    InboundRecord {
        uid: m.uid,
        dedupe_key: dedupe_key(&c, &m.bytes),
        size: m.size,
        classification: c,
    }
}

/// The evidence channel attribution gives when nothing named a channel.
const NO_CHANNEL_EVIDENCE: &str = "channel direct (no rule matched)";

/// Puts the mailbox's `channel` where attribution fell back to `direct`.
fn default_channel_where_none(c: &mut Classification, channel: &str) {
    if c.channel.as_deref() != Some("direct") {
        return;
    }
    if let Some(e) = c.evidence.iter_mut().find(|e| *e == NO_CHANNEL_EVIDENCE) {
        *e = format!("channel {channel} (the mailbox's channel; no rule matched)");
        c.channel = Some(channel.to_owned());
    }
}

/// Keeps what the header told (Message-ID, subject, sender) but never makes a lead from a
/// message that was not read whole.
fn oversize_classification(mut c: Classification, size: u64, limit: u64) -> Classification {
    let reason =
        format!("message of {size} bytes is over max_message_bytes ({limit}); not fetched whole");
    c.evidence.push(format!("ignored: {reason}"));
    c.kind = MessageKind::Ignored;
    c.reason = Some(reason);
    c
}

/// `mid:<Message-ID>`, or a content hash when the message has none (or an absurdly long one).
pub fn dedupe_key(c: &Classification, raw: &[u8]) -> String {
    match c
        .message_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) if id.len() <= 200 && !id.contains(['\r', '\n']) => format!("mid:{id}"),
        Some(id) => format!("midsha256:{}", hex(&Sha256::digest(id.as_bytes()))),
        None => format!("sha256:{}", hex(&Sha256::digest(raw))),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The header of a raw message: everything up to the first empty line, capped so a hostile
/// message without one cannot make us hold it whole.
pub(crate) fn header_part(raw: &[u8], cap: usize) -> &[u8] {
    let raw = &raw[..raw.len().min(cap)];
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(raw.len());
    &raw[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_key_prefers_message_id_and_falls_back_to_content() {
        let mut c = Classification::ignored("x");
        assert!(dedupe_key(&c, b"abc").starts_with("sha256:"));
        assert_ne!(dedupe_key(&c, b"abc"), dedupe_key(&c, b"abd"));
        c.message_id = Some("1@example.com".into());
        assert_eq!(dedupe_key(&c, b"abc"), "mid:1@example.com");
        c.message_id = Some("x".repeat(1000));
        assert!(dedupe_key(&c, b"abc").starts_with("midsha256:"));
    }

    #[test]
    fn the_mailbox_channel_replaces_only_the_fallback() {
        let rules = Rules {
            own_addresses: vec![crate::domain::EmailAddress::parse("leads@company.com").unwrap()],
            ..Rules::default()
        };
        let inquiry = |to: &str| {
            let raw = format!(
                "From: Ann <ann@example.org>\r\nTo: {to}\r\nSubject: Pricing\r\n\
                 Message-ID: <q1@example.org>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n\
                 Hello, what does the plan cost for 20 people?\r\n"
            );
            classify::classify(raw.as_bytes(), &rules)
        };
        let mut plain = inquiry("leads@company.com");
        assert_eq!(
            plain.channel.as_deref(),
            Some("direct"),
            "{:?}",
            plain.evidence
        );
        default_channel_where_none(&mut plain, "support-desk");
        assert_eq!(plain.channel.as_deref(), Some("support-desk"));
        assert!(
            plain
                .evidence
                .iter()
                .any(|e| e.contains("the mailbox's channel"))
        );

        let mut tagged = inquiry("leads+webinar@company.com");
        default_channel_where_none(&mut tagged, "support-desk");
        assert_eq!(tagged.channel.as_deref(), Some("webinar"));
    }

    #[test]
    fn header_part_stops_at_the_blank_line_or_the_cap() {
        assert_eq!(header_part(b"A: b\r\n\r\nbody", 1000), b"A: b\r\n\r\n");
        assert_eq!(header_part(b"A: b\n\nbody", 1000), b"A: b\n\n");
        assert_eq!(header_part(b"A: bbbbbbbb", 4), b"A: b");
    }
}
