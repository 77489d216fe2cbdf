//! The sender: takes due messages from the outbox and hands them to an SMTP server (or writes
//! them as files), at most once each.
//!
//! One dispatcher and `connections` workers. Each worker owns one connection and has at most
//! one message in flight, so at most one outbox row per connection is ever `sending` — the
//! only state a crash leaves ambiguous. The dispatcher does all the database work: each round
//! records the outcomes that came back and claims exactly as many due rows as there are idle
//! workers, atomically ([`Store::settle_and_claim_on`]), so a busy sender commits once per
//! round rather than twice per message, and claiming never widens the ambiguous window. Once
//! one worker has finished, a round waits up to `GATHER` (1 ms) for the others, so that on a busy
//! sender it covers all of them: a round costs about the same for one message as for eight.
//!
//! Failures are decided by who is at fault and whether the end of data had left (see
//! `smtp.rs` and `refusal.rs`):
//!
//! | failure | before the end of data left | after |
//! |---|---|---|
//! | 4xx reply | retry with backoff | retry with backoff (the server said it did not take it) |
//! | 5xx about the recipient (5.1.1 …) | failed; lead bounced, address suppressed | — |
//! | 5xx about the message (size, content) | failed; lead untouched | failed; lead untouched |
//! | 5xx about us (auth, sender, relay, client) | back to waiting; sending pauses | same |
//! | untrusted certificate | back to waiting; sending pauses | — |
//! | connection refused, closed, reset, timeout | retry with backoff | `interrupted`: never resent by itself |
//!
//! 4xx and lost connections retry with capped exponential backoff and jitter until
//! `retry_max_age`. After the end of data has been written, only a reply decides: anything
//! else may have come after the server took the message (RFC 1047), so resending would risk a
//! second copy and a person decides (`leadloop outbox retry`).
//!
//! **The breaker.** A refusal about us pauses sending for every daemon on the database
//! (`store::sending`), and so does a run of `pause_after_refusals` different recipients in a
//! row refused with the same reply: a server that refuses everyone alike is refusing us, even
//! when its words blame the recipient. To make that undoable, such refusals are held back
//! (their rows stay `sending`) while the run lasts; when it breaks they are recorded as they
//! are, and when it trips they all go back to waiting. Nothing is failed or suppressed for a
//! refusal about us, and only a person resumes (`leadloop sending resume`). While paused, the
//! dispatcher looks at the pause once a second. A crash while refusals are held back leaves
//! their rows `sending`, so `interrupted` after the restart: on the safe side (nothing
//! suppressed, nothing resent by itself), a person decides.
//!
//! The dispatcher sleeps until the next due time, until [`Store::wake_sender`] says new work
//! arrived, or at the latest `POLL` (other daemons on the same PostgreSQL database enqueue
//! too); it never busy-polls.

mod file;
mod refusal;
mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use crate::config::{Secret, SmtpConfig, SmtpTransport};
use crate::domain::{LeadStatus, MessageId};
use crate::metrics::{Metrics, ReplyClass};
use crate::store::{
    Backend, Bounced, Claim, Claimed, KeptConnection, OutboxId, OutboxMessage, Pause, PausedBy,
    SendOutcome, Store, Suppression,
};
use refusal::Fault;
use smtp::{Connector, FailKind, Failure, Stage};

/// The longest the dispatcher sleeps without looking at the outbox.
const POLL: Duration = Duration::from_secs(30);

/// How often a paused dispatcher looks whether sending was resumed.
const PAUSE_POLL: Duration = Duration::from_secs(1);

/// How long a round waits for connections still busy once one has finished, so that their
/// outcomes are recorded (and their next messages claimed) together. A slow server delays
/// the others' next message by at most this much.
const GATHER: Duration = Duration::from_millis(1);

/// Errors that keep the sender from starting.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The TLS configuration (CA file) is unusable.
    #[error("smtp TLS setup: {0}")]
    Tls(String),
}

/// How the sender behaves; built from `[smtp]`, or by hand in tests and tools.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// Parallel connections.
    pub connections: usize,
    /// Longest wait for each step of a conversation.
    pub timeout: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max_interval: Duration,
    /// Give up on temporary failures after this long since enqueueing.
    pub retry_max_age: Duration,
    /// Pause sending after this many different recipients in a row are refused with the same
    /// reply; 0 never.
    pub pause_after_refusals: usize,
}

impl SenderOptions {
    /// The options `[smtp]` sets.
    pub fn from_config(c: &SmtpConfig) -> SenderOptions {
        SenderOptions {
            connections: usize::try_from(c.connections).unwrap_or(1).max(1),
            timeout: c.timeout,
            retry_initial: c.retry_initial,
            retry_max_interval: c.retry_max_interval,
            retry_max_age: c.retry_max_age,
            pause_after_refusals: usize::try_from(c.pause_after_refusals).unwrap_or(usize::MAX),
        }
    }

    /// How long a claim holds: longer than any one conversation can last (each of its at most
    /// seven steps — connect, MAIL, RCPT, DATA, data, and one reconnect with MAIL — is bounded
    /// by `timeout`), so a live sender's claim never expires under it.
    fn lease(&self) -> Duration {
        self.timeout * 8 + Duration::from_secs(2)
    }

    /// Capped exponential backoff with jitter ("equal jitter": half fixed, half random), so
    /// many messages failing together do not come back together.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .retry_initial
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = exp.min(self.retry_max_interval);
        capped.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Where messages go.
enum Transport {
    Smtp(Box<Connector>),
    File(PathBuf),
}

/// What a sender did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Accepted by the server (or written).
    pub sent: usize,
    /// Scheduled for another attempt.
    pub retried: usize,
    /// Failed for good.
    pub failed: usize,
    /// Left `interrupted` (may or may not have arrived).
    pub interrupted: usize,
    /// Cancelled because the recipient is suppressed.
    pub suppressed: usize,
    /// Refused because of us: back to waiting, sending paused.
    pub held: usize,
    /// Sending was paused when the sender stopped.
    pub paused: bool,
    /// Database rounds (outcomes recorded and rows claimed in one transaction).
    pub rounds: usize,
}

impl SendReport {
    fn count(&mut self, outcome: &SendOutcome) {
        match outcome {
            SendOutcome::Sent { .. } => self.sent += 1,
            SendOutcome::Retry { .. } => self.retried += 1,
            SendOutcome::Failed { .. } => self.failed += 1,
            SendOutcome::Interrupted { .. } => self.interrupted += 1,
            SendOutcome::Held { .. } => self.held += 1,
        }
    }
}

/// The outbox worker. Cheap to share: everything inside is behind an `Arc`.
#[derive(Clone)]
pub struct Sender {
    store: Store,
    transport: Arc<Transport>,
    options: SenderOptions,
    /// Counts every attempt and its duration, for `/metrics`.
    metrics: Metrics,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Whether the dispatcher stops when nothing is due (`drain`) or waits for more (`run`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Drain,
    Forever,
}

impl Sender {
    /// A sender for `[smtp]`. `password` is the resolved AUTH password, if `[smtp]` names one
    /// (only the daemon and the CLI read secrets).
    ///
    /// # Errors
    /// The TLS configuration is unusable.
    pub fn new(
        config: &SmtpConfig,
        password: Option<Secret>,
        store: Store,
    ) -> Result<Sender, SendError> {
        Self::with_options(config, password, store, SenderOptions::from_config(config))
    }

    /// A sender with options other than the configuration's (tests, benchmarks).
    ///
    /// # Errors
    /// The TLS configuration is unusable.
    pub fn with_options(
        config: &SmtpConfig,
        password: Option<Secret>,
        store: Store,
        options: SenderOptions,
    ) -> Result<Sender, SendError> {
        let transport = match &config.transport {
            SmtpTransport::Smtp(server) => {
                Transport::Smtp(Box::new(Connector::new(server, password, options.timeout)?))
            }
            SmtpTransport::File(dir) => Transport::File(dir.clone()),
        };
        Ok(Sender {
            store,
            transport: Arc::new(transport),
            options,
            metrics: Metrics::default(),
        })
    }

    /// Counts into `metrics` (the daemon's, shown at `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Sender {
        self.metrics = metrics;
        self
    }

    /// Runs until `cancel` fires: declares the claims a previous process left behind
    /// `interrupted`, then sends what is due as it comes due. On cancellation, messages in
    /// flight are finished and recorded; nothing new is started.
    pub async fn run(&self, cancel: CancellationToken) -> SendReport {
        self.recover().await;
        self.dispatch(cancel, Mode::Forever).await
    }

    /// Sends everything due now, then returns (`leadloop run --once`, tests). Like
    /// [`Sender::run`], it first declares abandoned claims `interrupted`.
    pub async fn drain(&self, cancel: CancellationToken) -> SendReport {
        self.recover().await;
        self.dispatch(cancel, Mode::Drain).await
    }

    /// Sends one row now if it is `pending` or `retry`, whatever its due time, and returns
    /// what became of it (`leadloop send-test`). Other rows are left to the daemon.
    ///
    /// # Errors
    /// The store cannot be used; the row then keeps its state (or, if the failure came after
    /// the claim, is `interrupted` after its lease).
    pub async fn send_now(
        &self,
        id: OutboxId,
    ) -> Result<Option<SendOutcome>, crate::store::StoreError> {
        let claimed = self.store.claim_outbox_row(id, self.claim(1)).await?;
        let Some(message) = claimed.messages.into_iter().next() else {
            return Ok(None);
        };
        let mut slot = None;
        let (outcome, _) = self.deliver(&mut slot, &message).await;
        // A test message is a person's question, answered at once: a refusal about us fails
        // it (the person reads why) rather than leaving it to be sent after a resume, and
        // does not pause the daemon, which meets the same refusal by itself if it is real.
        let outcome = match outcome {
            SendOutcome::Held { error } if message.lead_id.is_none() => SendOutcome::Failed {
                error,
                bounce: None,
            },
            other => other,
        };
        if let (Transport::Smtp(c), Some(conn)) = (&*self.transport, slot) {
            c.close(conn).await;
        }
        self.store
            .settle(&[(id, outcome.clone())], Utc::now())
            .await?;
        Ok(Some(outcome))
    }

    /// Hands one message to `[smtp]` now, past the outbox, and says how it went: for a
    /// message that must not be kept because it carries a secret (a web sign-in link). Nothing
    /// is recorded and nothing is retried; the person asks again.
    ///
    /// # Errors
    /// What the server or the file system said.
    pub async fn send_unrecorded(
        &self,
        envelope_from: String,
        recipient: String,
        message_id: MessageId,
        raw: Vec<u8>,
    ) -> Result<String, String> {
        let message = OutboxMessage {
            id: OutboxId(0),
            lead_id: None,
            enrollment_id: None,
            step_id: None,
            envelope_from,
            recipient,
            message_id,
            raw,
            attempts: 1,
            created_at: Utc::now(),
        };
        let mut slot = None;
        let result = match &*self.transport {
            Transport::Smtp(c) => {
                let sent = c
                    .deliver(
                        &mut slot,
                        &message.envelope_from,
                        &message.recipient,
                        &message.raw,
                    )
                    .await;
                if let Some(conn) = slot {
                    c.close(conn).await;
                }
                sent
            }
            Transport::File(dir) => file::write(dir, &message).await.map_err(|e| {
                Failure::new(
                    Stage::Connect,
                    FailKind::Network,
                    format!("cannot write to {}: {e}", dir.display()),
                )
            }),
        };
        result.map_err(|f| f.to_string())
    }

    fn claim(&self, limit: usize) -> Claim {
        Claim {
            now: Utc::now(),
            limit,
            lease: self.options.lease(),
        }
    }

    /// On SQLite one daemon owns the database, so every `sending` row at start-up belongs to
    /// a process that is gone; on PostgreSQL only claims whose lease has expired are.
    async fn recover(&self) {
        let all = self.store.backend() == Backend::Sqlite;
        match self.store.interrupt_abandoned(Utc::now(), all).await {
            Ok(0) => {}
            Ok(n) => warn!(
                messages = n,
                "messages were being sent when the sender last stopped; they are now `interrupted` and will not be resent automatically (see `leadloop outbox list --state interrupted`)"
            ),
            Err(e) => {
                error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot recover interrupted sends")
            }
        }
    }

    async fn dispatch(&self, cancel: CancellationToken, mode: Mode) -> SendReport {
        let mut d = self.start_workers();
        loop {
            let stopping = cancel.is_cancelled();
            if d.to_pause.is_some() && !self.record_pause(&mut d).await {
                continue;
            }
            let limit = if stopping { 0 } else { d.idle.len() };
            let mut exhausted = true;
            if limit > 0 || !d.outcomes.is_empty() {
                match self.round(&mut d, limit).await {
                    Some(more) => exhausted = !more,
                    None => {
                        tokio::select! {
                            () = tokio::time::sleep(d.backoff()) => {}
                            () = cancel.cancelled(), if !stopping => {}
                        }
                        continue;
                    }
                }
            }
            let busy = d.workers.len() - d.idle.len();
            if busy == 0 && (exhausted || stopping) && !d.breaker.is_empty() {
                // Nothing more is coming that could extend the run of refusals: record the
                // refusals held back for it as they are.
                let held = d.breaker.flush();
                d.outcomes.extend(held);
                continue;
            }
            if busy == 0
                && d.outcomes.is_empty()
                && (stopping || (mode == Mode::Drain && exhausted))
            {
                break;
            }
            if busy == 0 && exhausted {
                d.kept = None;
            }
            self.wait(&mut d, &cancel, exhausted, stopping).await;
        }
        self.finish(d).await
    }

    /// Starts one worker per SMTP connection, all idle.
    fn start_workers(&self) -> Dispatch {
        let n = self.options.connections.max(1);
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Finished>();
        let mut workers = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for idx in 0..n {
            let (tx, rx) = mpsc::channel::<OutboxMessage>(1);
            workers.push(tx);
            let sender = self.clone();
            let done = done_tx.clone();
            handles.push(tokio::spawn(
                async move { sender.worker(idx, rx, done).await },
            ));
        }
        Dispatch {
            workers,
            handles,
            done_rx,
            idle: (0..n).rev().collect(),
            outcomes: Vec::new(),
            report: SendReport::default(),
            db_backoff: DB_BACKOFF_FIRST,
            breaker: Breaker::new(self.options.pause_after_refusals),
            to_pause: None,
            paused: None,
            kept: None,
        }
    }

    /// Records the pause this sender decided on; false (after a backoff) while the database
    /// cannot take it, so nothing is claimed until it is recorded.
    async fn record_pause(&self, d: &mut Dispatch) -> bool {
        let Some(reason) = &d.to_pause else {
            return true;
        };
        match self
            .store
            .pause_sending(PausedBy::Breaker, reason, Utc::now())
            .await
        {
            Ok((pause, newly)) => {
                // Messages in flight on other connections meet the same refusal: the pause is
                // announced once.
                if newly {
                    error!(
                        "{pause}. Nothing was failed or suppressed; the messages wait. Fix the cause, then run `leadloop sending resume`"
                    );
                }
                d.paused = Some(pause);
                d.to_pause = None;
                true
            }
            Err(e) => {
                error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot record that sending must pause; claiming nothing until it is recorded");
                tokio::time::sleep(d.backoff()).await;
                false
            }
        }
    }

    /// Records the finished outcomes and claims up to `limit` due rows for the idle workers,
    /// in one transaction. `Some(true)` when the claim was full (more may be due), `None` when
    /// the database failed: the outcomes are kept and recorded with the next round, since
    /// they are the only record of what the server said.
    async fn round(&self, d: &mut Dispatch, limit: usize) -> Option<bool> {
        let round = async {
            let mut conn = match d.kept.take() {
                Some(conn) => conn,
                None => self.store.keep_connection().await?,
            };
            let claimed = self
                .store
                .settle_and_claim_on(&mut conn, &d.outcomes, self.claim(limit))
                .await?;
            // Kept only after a good round: a connection that failed one may be the cause, and
            // the pool gives a fresh one next time.
            d.kept = Some(conn);
            Ok::<_, crate::store::StoreError>(claimed)
        };
        let Claimed {
            messages,
            suppressed,
        } = match round.await {
            Ok(claimed) => claimed,
            Err(e) => {
                error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "the outbox cannot be updated; trying again");
                return None;
            }
        };
        d.report.rounds += 1;
        d.db_backoff = DB_BACKOFF_FIRST;
        for (_, outcome) in d.outcomes.drain(..) {
            d.report.count(&outcome);
        }
        let full = messages.len() >= limit;
        for (id, why) in &suppressed {
            info!(outbox = %id, reason = %why, "not sent: recipient suppressed");
        }
        d.report.suppressed += suppressed.len();
        for m in messages {
            let Some(w) = d.idle.pop() else {
                unreachable!("claims never exceed the idle workers")
            };
            if d.workers[w].try_send(m).is_err() {
                unreachable!("an idle worker's channel has room");
            }
        }
        Some(full)
    }

    /// Sleeps until a worker finishes, work arrives, the next row comes due, or stop.
    async fn wait(
        &self,
        d: &mut Dispatch,
        cancel: &CancellationToken,
        exhausted: bool,
        stopping: bool,
    ) {
        let busy = d.workers.len() - d.idle.len();
        let wake_at = if exhausted && !stopping && !d.idle.is_empty() {
            self.next_wake(&mut d.paused).await
        } else {
            None
        };
        let can_claim = !stopping && !d.idle.is_empty();
        tokio::select! {
            Some(first) = d.done_rx.recv(), if busy > 0 => {
                // What else finishes meanwhile, or within `GATHER`, goes into the same round
                // (module docs); what has finished already is taken at once.
                let mut done = vec![first];
                let gather = tokio::time::Instant::now() + GATHER;
                while d.idle.len() + done.len() < d.workers.len() {
                    match tokio::time::timeout_at(gather, d.done_rx.recv()).await {
                        Ok(Some(f)) => done.push(f),
                        Ok(None) | Err(_) => break,
                    }
                }
                for f in done {
                    d.idle.push(f.worker);
                    if let Some(reason) = d.breaker.observe(f, &mut d.outcomes) {
                        d.to_pause.get_or_insert(reason);
                    }
                }
            }
            () = self.store.outbox_woken(), if can_claim => {}
            () = sleep_until(wake_at), if wake_at.is_some() => {
                if self.store.backend() == Backend::Postgres
                    && let Err(e) = self.store.interrupt_abandoned(Utc::now(), false).await
                {
                    error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot check for abandoned sends");
                }
            }
            () = cancel.cancelled(), if !stopping => {}
        }
    }

    /// Lets the workers end and says whether sending is paused now.
    async fn finish(&self, d: Dispatch) -> SendReport {
        let Dispatch {
            workers,
            handles,
            mut report,
            paused,
            ..
        } = d;
        drop(workers);
        for h in handles {
            let _ = h.await;
        }
        report.paused = match self.store.sending_paused().await {
            Ok(p) => p.is_some(),
            Err(_) => paused.is_some(),
        };
        report
    }

    /// When the dispatcher must look again without being woken: the next due row or the next
    /// expiring claim, and never later than [`POLL`]; while sending is paused, in
    /// [`PAUSE_POLL`], to notice a resume. `paused` is the pause seen last time, so a change
    /// is logged once.
    async fn next_wake(&self, paused: &mut Option<Pause>) -> Option<DateTime<Utc>> {
        match self.store.sending_paused().await {
            Ok(Some(pause)) => {
                if paused.as_ref() != Some(&pause) {
                    warn!("{pause}; due messages wait until `leadloop sending resume`");
                    *paused = Some(pause);
                }
                let wait = chrono::Duration::from_std(PAUSE_POLL).unwrap_or_default();
                return Some(Utc::now() + wait);
            }
            Ok(None) => {
                if paused.take().is_some() {
                    info!("sending resumed");
                }
            }
            Err(e) => {
                error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot read whether sending is paused");
            }
        }
        let poll = Utc::now() + chrono::Duration::from_std(POLL).unwrap_or_default();
        match self.store.next_outbox_due().await {
            Ok(Some(t)) => Some(t.min(poll)),
            Ok(None) => Some(poll),
            Err(e) => {
                error!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot read the next due time");
                Some(poll)
            }
        }
    }

    async fn worker(
        &self,
        idx: usize,
        mut rx: mpsc::Receiver<OutboxMessage>,
        done: mpsc::UnboundedSender<Finished>,
    ) {
        let mut slot: Option<smtp::Connection> = None;
        while let Some(message) = rx.recv().await {
            let span = info_span!(
                "send",
                outbox = %message.id,
                message_id = %message.message_id,
                attempt = message.attempts,
                connection = idx,
            );
            let (outcome, refusal) = self.deliver(&mut slot, &message).instrument(span).await;
            let finished = Finished {
                worker: idx,
                id: message.id,
                recipient: message.recipient,
                outcome,
                refusal,
            };
            if done.send(finished).is_err() {
                break;
            }
        }
        if let (Transport::Smtp(c), Some(conn)) = (&*self.transport, slot) {
            c.close(conn).await;
        }
    }

    /// Hands one message over and decides what its result means; for a permanent refusal of
    /// the recipient or the message, also the reply's signature for the breaker.
    async fn deliver(
        &self,
        slot: &mut Option<smtp::Connection>,
        m: &OutboxMessage,
    ) -> (SendOutcome, Option<String>) {
        if m.raw.is_empty() {
            // A row without its bytes (a damaged database) is never sent as an empty message.
            let outcome = SendOutcome::Failed {
                error: "the message's bytes are missing from the outbox".into(),
                bounce: None,
            };
            return (outcome, None);
        }
        let started = std::time::Instant::now();
        let result = match &*self.transport {
            Transport::Smtp(c) => {
                c.deliver(slot, &m.envelope_from, &m.recipient, &m.raw)
                    .await
            }
            Transport::File(dir) => file::write(dir, m).await.map_err(|e| {
                Failure::new(
                    Stage::Connect,
                    FailKind::Network,
                    format!("cannot write to {}: {e}", dir.display()),
                )
            }),
        };
        self.metrics
            .send_attempt(reply_class(&result), started.elapsed());
        let (outcome, refusal) = self.decide(m, result, Utc::now());
        match &outcome {
            SendOutcome::Sent { response } => debug!(%response, "sent"),
            SendOutcome::Retry { error, at } => {
                warn!(%error, retry_at = %at, "temporary failure; will retry")
            }
            SendOutcome::Failed { error, bounce } => {
                warn!(%error, recipient_rejected = bounce.is_some(), "failed")
            }
            SendOutcome::Interrupted { error } => {
                error!(%error, "interrupted: may or may not have been delivered; not resent automatically")
            }
            SendOutcome::Held { error } => {
                error!(%error, "refused because of us: the message waits and sending pauses")
            }
        }
        (outcome, refusal)
    }

    /// What a conversation's result means for the row (module docs), and, for a permanent
    /// refusal that is not about us, its signature ([`refusal::signature`]).
    fn decide(
        &self,
        m: &OutboxMessage,
        result: Result<String, Failure>,
        now: DateTime<Utc>,
    ) -> (SendOutcome, Option<String>) {
        let f = match result {
            Ok(response) => return (SendOutcome::Sent { response }, None),
            Err(f) => f,
        };
        let error = f.to_string();
        let outcome = match (f.kind, f.stage) {
            (FailKind::Permanent, stage) => match &f.reply {
                Some(reply) => {
                    let dead = match refusal::judge(stage, reply.code, &reply.text) {
                        Fault::Us { fix } => {
                            let error = format!(
                                "{error} — this refusal is about us, not the recipient; likely fix: {fix}"
                            );
                            return (SendOutcome::Held { error }, None);
                        }
                        Fault::Recipient { suppress } => suppress,
                        Fault::Message => false,
                    };
                    let bounce = dead.then(|| bounced(m, &error));
                    let outcome = SendOutcome::Failed { error, bounce };
                    return (outcome, Some(refusal::signature(reply.code, &reply.text)));
                }
                // No reply: an envelope this server can never take (invalid address, 8-bit
                // without 8BITMIME): the message fails, nobody is at fault but the data.
                None => SendOutcome::Failed {
                    error,
                    bounce: None,
                },
            },
            (FailKind::Untrusted, _) => SendOutcome::Held {
                error: format!(
                    "{error} — the server's certificate is not trusted; likely fix: set [smtp] ca_file to the CA that signed it, or check [smtp] host"
                ),
            },
            (FailKind::Timeout | FailKind::Network, Stage::Reply) => SendOutcome::Interrupted {
                error: format!(
                    "{error}, after the whole message was sent; the server may have accepted it"
                ),
            },
            _ => self.retry(m, error, now),
        };
        (outcome, None)
    }

    fn retry(&self, m: &OutboxMessage, error: String, now: DateTime<Utc>) -> SendOutcome {
        let age = (now - m.created_at).to_std().unwrap_or_default();
        if age >= self.options.retry_max_age {
            return SendOutcome::Failed {
                error: format!(
                    "gave up after {} attempts over {}: {error}",
                    m.attempts,
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                ),
                bounce: None,
            };
        }
        let delay = self.options.backoff(m.attempts);
        SendOutcome::Retry {
            error,
            at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
        }
    }
}

/// How an attempt ended, as `/metrics` counts it: by the class of the server's reply, or
/// what kept one from coming.
fn reply_class(result: &Result<String, Failure>) -> ReplyClass {
    let Err(f) = result else {
        return ReplyClass::Accepted;
    };
    match (f.kind, &f.reply) {
        (_, Some(reply)) if reply.code >= 500 => ReplyClass::Permanent,
        (_, Some(_)) | (FailKind::Transient, None) => ReplyClass::Transient,
        (FailKind::Permanent, None) => ReplyClass::Envelope,
        (FailKind::Timeout, None) => ReplyClass::Timeout,
        (FailKind::Network, None) => ReplyClass::Network,
        (FailKind::Untrusted, None) => ReplyClass::Untrusted,
    }
}

/// What the dispatcher carries from one round to the next.
struct Dispatch {
    /// One channel per worker, to hand it a claimed row.
    workers: Vec<mpsc::Sender<OutboxMessage>>,
    /// The workers' tasks, awaited at the end so no send is cut off mid-conversation.
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// Where workers report what the server said.
    done_rx: mpsc::UnboundedReceiver<Finished>,
    /// Workers with nothing in flight: the most a claim may take.
    idle: Vec<usize>,
    /// Outcomes not recorded yet; recorded with the next claim.
    outcomes: Vec<(OutboxId, SendOutcome)>,
    /// Totals for the caller.
    report: SendReport,
    /// How long to wait after the database failed, doubled each time it fails again.
    db_backoff: Duration,
    /// The run of alike refusals that may mean the server is refusing us.
    breaker: Breaker,
    /// A pause this sender decided on and has not recorded yet: recorded before the next
    /// claim, so no claim can follow the refusal that caused it.
    to_pause: Option<String>,
    /// The pause last seen, so that a change is logged once.
    paused: Option<Pause>,
    /// One connection for all rounds, so SQLite's page cache stays warm between them; it goes
    /// back to the pool while the dispatcher sleeps with nothing in flight.
    kept: Option<KeptConnection>,
}

impl Dispatch {
    /// How long to wait after the database failed; each failure in a row doubles the next
    /// wait, up to [`DB_BACKOFF_MAX`], until a good round resets it.
    fn backoff(&mut self) -> Duration {
        let wait = self.db_backoff;
        self.db_backoff = (wait * 2).min(DB_BACKOFF_MAX);
        wait
    }
}

/// The dispatcher's first wait after the database failed.
const DB_BACKOFF_FIRST: Duration = Duration::from_millis(500);

/// The dispatcher's longest wait between tries of a failing database.
const DB_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a worker reports about one message.
struct Finished {
    worker: usize,
    id: OutboxId,
    recipient: String,
    outcome: SendOutcome,
    /// The signature of a permanent refusal not about us, for the [`Breaker`].
    refusal: Option<String>,
}

/// The run of permanent refusals with the same reply (module docs): held back from the
/// database while it grows, recorded as they are when it breaks, turned into `Held` (back to
/// waiting) when `limit` different recipients are in it.
struct Breaker {
    limit: usize,
    signature: String,
    run: Vec<(OutboxId, String, SendOutcome)>,
}

impl Breaker {
    fn new(limit: usize) -> Breaker {
        Breaker {
            limit,
            signature: String::new(),
            run: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.run.is_empty()
    }

    /// The refusals held back, as they are.
    fn flush(&mut self) -> impl Iterator<Item = (OutboxId, SendOutcome)> + '_ {
        self.run.drain(..).map(|(id, _, o)| (id, o))
    }

    /// Takes one finished message: what is to be recorded now goes into `record`. Returns
    /// why sending must pause, if it must.
    fn observe(
        &mut self,
        f: Finished,
        record: &mut Vec<(OutboxId, SendOutcome)>,
    ) -> Option<String> {
        if let SendOutcome::Held { error } = &f.outcome {
            // The server refuses us: the refusals held back may be the same thing in other
            // words, so they wait too rather than fail.
            let reason = error.clone();
            self.hold_run(record, "the server then refused us");
            record.push((f.id, f.outcome));
            return Some(reason);
        }
        let Some(signature) = f.refusal.filter(|_| self.limit >= 2) else {
            record.extend(self.flush());
            record.push((f.id, f.outcome));
            return None;
        };
        if signature != self.signature {
            record.extend(self.flush());
            self.signature = signature;
        }
        let error = match &f.outcome {
            SendOutcome::Failed { error, .. } => error.clone(),
            _ => String::new(),
        };
        self.run.push((f.id, f.recipient, f.outcome));
        let mut recipients: Vec<&str> = self.run.iter().map(|(_, r, _)| r.as_str()).collect();
        recipients.sort_unstable();
        recipients.dedup();
        if recipients.len() < self.limit {
            return None;
        }
        let reason = format!(
            "{} different recipients in a row were refused with the same reply ({error}); a server that refuses everyone alike is refusing us. Likely fix: check the [smtp] account, the sender address and the server's relay rules",
            recipients.len()
        );
        self.hold_run(record, "the same reply refused many recipients in a row");
        Some(reason)
    }

    /// Sends the held-back refusals back to waiting, with `why` in their error.
    fn hold_run(&mut self, record: &mut Vec<(OutboxId, SendOutcome)>, why: &str) {
        for (id, _, outcome) in self.run.drain(..) {
            let error = match outcome {
                SendOutcome::Failed { error, .. } => error,
                _ => String::new(),
            };
            record.push((
                id,
                SendOutcome::Held {
                    error: format!("{error} — not counted against the recipient: {why}"),
                },
            ));
        }
    }
}

async fn sleep_until(t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => {
            let d = (t - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(d).await;
        }
        None => std::future::pending().await,
    }
}

/// The built-in message `leadloop send-test --to ADDRESS` sends: proof that the configured
/// transport delivers, before any sequence exists. `from` is our sending identity; the
/// Message-ID is random under its domain, as every message of ours is.
///
/// # Errors
/// The addresses cannot be used in a message (they are validated [`EmailAddress`]es, so this
/// only happens for addresses lettre refuses).
///
/// [`EmailAddress`]: crate::domain::EmailAddress
pub fn test_message(
    from: &crate::domain::EmailAddress,
    display_name: Option<&str>,
    envelope_from: &crate::domain::EmailAddress,
    to: &crate::domain::EmailAddress,
    now: DateTime<Utc>,
) -> Result<crate::store::NewOutboxMessage, String> {
    let token: u64 = rand::rng().random();
    let message_id = format!("test.{}.{token:016x}@{}", now.timestamp(), from.domain());
    let from_mailbox = lettre::message::Mailbox::new(
        display_name
            .map(crate::render::header_safe)
            .filter(|n| !n.is_empty()),
        from.as_str()
            .parse()
            .map_err(|e| format!("from {from}: {e}"))?,
    );
    // A single part, so lettre writes MIME-Version and the transfer encoding it chose.
    let message = lettre::Message::builder()
        .from(from_mailbox)
        .to(to.as_str().parse().map_err(|e| format!("to {to}: {e}"))?)
        .subject("leadloop test message")
        .message_id(Some(format!("<{message_id}>")))
        .date(now.into())
        .singlepart(lettre::message::SinglePart::plain(format!(
            "This is a test message from leadloop.\n\nIt was sent to {to} at {} through the configured [smtp] transport.\n",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )))
        .map_err(|e| e.to_string())?;
    Ok(crate::store::NewOutboxMessage {
        lead_id: None,
        enrollment_id: None,
        step_id: None,
        from: from.to_string(),
        envelope_from: envelope_from.to_string(),
        recipient: to.to_string(),
        message_id: MessageId::new(message_id),
        raw: message.formatted(),
        due_at: now,
    })
}

/// A recipient refused for good is dead for every later message: its address is suppressed
/// and its lead marked bounced, together with the row's failure.
fn bounced(m: &OutboxMessage, error: &str) -> Bounced {
    Bounced {
        suppress: Suppression::Address(m.recipient.clone()),
        reason: format!("recipient refused: {error}"),
        lead_status: LeadStatus::Bounced,
    }
}

#[cfg(test)]
mod tests {
    use super::{Breaker, Finished};
    use crate::store::{OutboxId, SendOutcome};

    fn refused(id: i64, to: &str, reply: &str) -> Finished {
        Finished {
            worker: 0,
            id: OutboxId(id),
            recipient: to.to_owned(),
            outcome: SendOutcome::Failed {
                error: format!("RCPT TO: {reply}"),
                bounce: Some(crate::store::Bounced {
                    suppress: crate::store::Suppression::Address(to.to_owned()),
                    reason: format!("recipient refused: RCPT TO: {reply}"),
                    lead_status: crate::domain::LeadStatus::Bounced,
                }),
            },
            refusal: Some(super::refusal::signature(550, reply)),
        }
    }

    fn sent(id: i64) -> Finished {
        Finished {
            worker: 0,
            id: OutboxId(id),
            recipient: format!("ok{id}@example.org"),
            outcome: SendOutcome::Sent {
                response: "250 ok".into(),
            },
            refusal: None,
        }
    }

    fn held(record: &[(OutboxId, SendOutcome)]) -> usize {
        record
            .iter()
            .filter(|(_, o)| matches!(o, SendOutcome::Held { .. }))
            .count()
    }

    #[test]
    fn a_run_of_different_recipients_refused_alike_trips_and_holds_them_all() {
        let mut b = Breaker::new(3);
        let mut record = Vec::new();
        let unknown = "5.1.1 <x@example.org> User unknown";
        assert!(
            b.observe(refused(1, "a@example.org", unknown), &mut record)
                .is_none()
        );
        // The same recipient again does not count twice.
        assert!(
            b.observe(refused(2, "a@example.org", unknown), &mut record)
                .is_none()
        );
        assert!(
            b.observe(refused(3, "b@example.org", unknown), &mut record)
                .is_none()
        );
        assert!(
            record.is_empty(),
            "held back while the run lasts: {record:?}"
        );
        let reason = b
            .observe(refused(4, "c@example.org", unknown), &mut record)
            .expect("the third different recipient trips it");
        assert!(reason.contains("3 different recipients"), "{reason}");
        assert_eq!((record.len(), held(&record)), (4, 4), "{record:?}");
        assert!(b.is_empty());
    }

    #[test]
    fn a_run_that_breaks_is_recorded_as_it_was() {
        let mut b = Breaker::new(3);
        let mut record = Vec::new();
        b.observe(refused(1, "a@example.org", "5.1.1 unknown"), &mut record);
        b.observe(refused(2, "b@example.org", "5.1.1 unknown"), &mut record);
        // A different reply starts a new run; the old one is recorded as failures.
        b.observe(refused(3, "c@example.org", "5.2.1 disabled"), &mut record);
        assert_eq!(record.len(), 2);
        assert_eq!(held(&record), 0);
        // A success ends the run too.
        assert!(b.observe(sent(4), &mut record).is_none());
        assert_eq!(record.len(), 4);
        assert_eq!(held(&record), 0);
        assert!(b.is_empty());
        // What is held when nothing more comes is recorded on flush.
        b.observe(refused(5, "d@example.org", "5.1.1 unknown"), &mut record);
        let flushed: Vec<_> = b.flush().collect();
        assert_eq!(flushed.len(), 1);
        assert!(matches!(flushed[0].1, SendOutcome::Failed { .. }));
    }

    #[test]
    fn a_refusal_about_us_holds_the_run_with_it() {
        let mut b = Breaker::new(5);
        let mut record = Vec::new();
        b.observe(refused(1, "a@example.org", "5.1.1 unknown"), &mut record);
        let us = Finished {
            worker: 0,
            id: OutboxId(2),
            recipient: "b@example.org".into(),
            outcome: SendOutcome::Held {
                error: "535 5.7.8 bad credentials".into(),
            },
            refusal: None,
        };
        let reason = b.observe(us, &mut record).expect("pauses");
        assert!(reason.contains("535"), "{reason}");
        assert_eq!((record.len(), held(&record)), (2, 2), "{record:?}");
    }

    #[test]
    fn a_breaker_of_zero_records_everything_at_once() {
        let mut b = Breaker::new(0);
        let mut record = Vec::new();
        for n in 0..10 {
            let f = refused(n, &format!("r{n}@example.org"), "5.1.1 unknown");
            assert!(b.observe(f, &mut record).is_none());
        }
        assert_eq!((record.len(), held(&record)), (10, 0));
    }
}
