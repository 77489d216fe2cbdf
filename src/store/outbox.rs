//! The outbox and the suppression list.
//!
//! Every message leadloop sends is first a row here: the scheduler renders a step and inserts
//! the finished RFC 5322 bytes in the same transaction that advances the enrollment
//! ([`Store::enqueue_in`]), and the sender only ever sends what it finds in this table. The row's
//! state is the truth about that one message:
//!
//! ```text
//! pending ─► sending ─► sent
//!    ▲          ├─────► retry ──► sending … (4xx, lost connection: backoff, up to a max age)
//!    │          ├─────► failed             (a 5xx about the recipient or the message, or
//!    │          │                           retries exhausted)
//!    ├──────────┴────── (a refusal about us: back to waiting, unchanged, while sending is
//!    │                   paused; see `sending.rs`)
//!    │          └─────► interrupted        (found `sending` after a crash; never resent
//!    │                                      automatically)
//!    └── `leadloop outbox retry` (failed, interrupted, cancelled) — a person's decision
//! pending/retry/interrupted/failed ─► cancelled (`leadloop outbox cancel`, or suppressed)
//! ```
//!
//! **At most once.** A row is `sending` exactly while one SMTP connection is handing it over,
//! so a crash leaves at most one ambiguous row per connection; claims are as wide as the
//! number of idle connections, never wider. A `sending` row whose claim has expired (the
//! process that held it is gone) becomes `interrupted` and is left for a person to decide.
//!
//! **Paused.** While sending is paused (`sending.rs`) nothing is claimed; due rows wait.
//!
//! **Never twice per step.** `(enrollment_id, step_id)` is unique: enqueueing a step again is
//! a no-op that reports the existing row.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{Backend, Store, StoreError, from_millis, millis, unreadable};
use crate::domain::{EnrollmentId, LeadId, LeadStatus, MessageId, StepId};
pub use crate::domain::{OutboxId, OutboxState};

/// A pool connection held across transactions ([`Store::keep_connection`]).
pub struct KeptConnection(sqlx::pool::PoolConnection<sqlx::Any>);

impl fmt::Debug for KeptConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeptConnection")
    }
}

/// A finished message to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    /// The lead it goes to; `None` for a test message to an arbitrary address.
    pub lead_id: Option<LeadId>,
    /// The enrollment and the step's stable id; both `None` outside sequences (send-test).
    pub enrollment_id: Option<EnrollmentId>,
    /// The step's stable id within its sequence.
    pub step_id: Option<StepId>,
    /// The From identity (header address), for listing and per-identity policy.
    pub from: String,
    /// The envelope sender (`MAIL FROM`), where bounces go.
    pub envelope_from: String,
    /// The one envelope recipient (`RCPT TO`).
    pub recipient: String,
    /// The message's Message-ID without angle brackets, recorded for reply matching.
    pub message_id: MessageId,
    /// The complete RFC 5322 message, CRLF line ends, as it goes on the wire.
    pub raw: Vec<u8>,
    /// Not sent before this time.
    pub due_at: DateTime<Utc>,
}

/// An outbox row claimed for sending (state `sending`), with everything the sender needs.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// Row id.
    pub id: OutboxId,
    /// The lead it goes to.
    pub lead_id: Option<LeadId>,
    /// The enrollment it belongs to.
    pub enrollment_id: Option<EnrollmentId>,
    /// The step it is.
    pub step_id: Option<StepId>,
    /// The envelope sender.
    pub envelope_from: String,
    /// The envelope recipient.
    pub recipient: String,
    /// Message-ID without angle brackets.
    pub message_id: MessageId,
    /// The bytes to send.
    pub raw: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When it was enqueued (retries stop at a max age counted from here).
    pub created_at: DateTime<Utc>,
}

/// An outbox row as listed (without its bytes).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    /// Row id.
    pub id: OutboxId,
    /// The lead it goes to.
    pub lead_id: Option<LeadId>,
    /// The enrollment it belongs to.
    pub enrollment_id: Option<EnrollmentId>,
    /// The step it is.
    pub step_id: Option<StepId>,
    /// From identity.
    pub from: String,
    /// Envelope recipient.
    pub recipient: String,
    /// Message-ID without angle brackets.
    pub message_id: MessageId,
    /// Current state.
    pub state: OutboxState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is (or was) due next.
    pub next_attempt_at: DateTime<Utc>,
    /// Enqueued at.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Why the last attempt did not succeed.
    pub last_error: Option<String>,
    /// The server's last reply.
    pub smtp_response: Option<String>,
    /// Size of the message in bytes.
    pub size: i64,
}

/// What became of one send attempt, as the sender reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server accepted the message.
    Sent {
        /// Its reply to the end of data (`250 2.0.0 Ok: queued as …`).
        response: String,
    },
    /// A temporary failure; try again at `at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again.
        at: DateTime<Utc>,
    },
    /// A permanent failure.
    Failed {
        /// What went wrong.
        error: String,
        /// What the failure does beyond the row, when the recipient itself was refused.
        bounce: Option<Bounced>,
    },
    /// The message may or may not have left (e.g. no reply to the end of data in time).
    Interrupted {
        /// What went wrong.
        error: String,
    },
    /// The server refused *us*, not the recipient or the message: the row goes back to
    /// waiting, due as before, and sending pauses; nothing is failed or suppressed.
    Held {
        /// What the server said, and the likely fix.
        error: String,
    },
}

/// What a refused recipient does beyond failing its row, as the sender decided it: applied by
/// the store in the same transaction as the failure, and only if the row was still the
/// sender's to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounced {
    /// Suppressed from now on (an entry already there keeps its first reason).
    pub suppress: Suppression,
    /// Why, as the suppression list records it.
    pub reason: String,
    /// The status the row's lead takes, when the row has a lead.
    pub lead_status: LeadStatus,
}

/// A claim: how many rows to take and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The current time; rows due at or before it are taken.
    pub now: DateTime<Utc>,
    /// At most this many rows: one per idle SMTP connection.
    pub limit: usize,
    /// How long the claim holds; a `sending` row older than this belongs to a dead sender.
    pub lease: Duration,
}

/// What [`Store::settle_and_claim`] hands back.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Rows now `sending`, one for each idle connection.
    pub messages: Vec<OutboxMessage>,
    /// Rows that were due but are cancelled because the recipient or its domain is suppressed.
    pub suppressed: Vec<(OutboxId, String)>,
}

/// The result of a person's request to change a row (`outbox retry`, `outbox cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Done.
    Done,
    /// No such row.
    NotFound,
    /// Not allowed from the row's current state.
    Refused(OutboxState),
}

/// A suppression-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Suppression {
    /// One address (normalised, lower-case).
    Address(String),
    /// Every address at a domain (lower-case).
    Domain(String),
}

impl Suppression {
    /// `address` or `domain`, as stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Suppression::Address(_) => "address",
            Suppression::Domain(_) => "domain",
        }
    }
    /// The stored value: lower-case, without a leading `@`.
    pub fn value(&self) -> String {
        match self {
            Suppression::Address(v) | Suppression::Domain(v) => {
                v.trim().trim_start_matches('@').to_lowercase()
            }
        }
    }
}

/// The columns of a claimed row before its bytes ([`message_from_row`] reads them by index).
macro_rules! claimed_row {
    () => {
        "id, lead_id, enrollment_id, step_id, envelope_from, recipient, message_id, attempts, created_at"
    };
}
/// A claimed row's bytes.
macro_rules! claimed_bytes {
    () => {
        "(SELECT raw FROM outbox_bodies b WHERE b.outbox_id = outbox.id)"
    };
}
/// Why a claimed row must not be sent: its recipient or the recipient's domain is suppressed.
macro_rules! suppressed_because {
    () => {
        "(SELECT s.kind || ' ' || s.value || ': ' || s.reason FROM suppressions s \
          WHERE (s.kind = 'address' AND s.value = LOWER(outbox.recipient)) OR (s.kind = 'domain' AND s.value = outbox.recipient_domain) \
          ORDER BY s.kind LIMIT 1)"
    };
}

/// A claimed row, its bytes, and why it must not be sent if its recipient is suppressed: one
/// statement hands the sender everything (and runs the suppression check right before sending).
const CLAIM_COLUMNS: &str = concat!(
    claimed_row!(),
    ", ",
    claimed_bytes!(),
    ", ",
    suppressed_because!()
);
/// [`CLAIM_COLUMNS`] for a statement that also returns rows it marked sent: those need
/// neither their bytes nor a suppression check, and column 11 tells them apart.
const CLAIMED_OR_SENT_COLUMNS: &str = concat!(
    claimed_row!(),
    ", CASE WHEN outbox.state = 'sending' THEN ",
    claimed_bytes!(),
    " END, CASE WHEN outbox.state = 'sending' THEN ",
    suppressed_because!(),
    " END, state"
);
const ENTRY_COLUMNS: &str = "id, lead_id, enrollment_id, step_id, from_addr, recipient, message_id, state, attempts, next_attempt_at, created_at, updated_at, sent_at, last_error, smtp_response, size";

/// For `n` sent rows whose ids are bound from parameter `$first` on, with their server
/// responses bound right after the ids: the id list (`$first,…`) and the `CASE id` arms that
/// give each row its response.
fn sent_params(first: usize, n: usize) -> (String, String) {
    let ids = (first..first + n)
        .map(|p| format!("${p}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases = (first..first + n)
        .map(|p| format!(" WHEN ${p} THEN ${}", p + n))
        .collect();
    (ids, cases)
}

/// The decoded `Subject` of a message's bytes.
fn subject_of(raw: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.subject().map(str::to_owned))
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn message_from_row(r: &AnyRow) -> OutboxMessage {
    OutboxMessage {
        id: OutboxId(r.get(0)),
        lead_id: r.get::<Option<i64>, _>(1).map(LeadId),
        enrollment_id: r.get::<Option<i64>, _>(2).map(EnrollmentId),
        step_id: r.get::<Option<String>, _>(3).map(StepId::new),
        envelope_from: r.get(4),
        recipient: r.get(5),
        message_id: MessageId::new(r.get::<String, _>(6)),
        raw: r.get::<Option<Vec<u8>>, _>(9).unwrap_or_default(),
        attempts: to_u32(r.get(7)),
        created_at: from_millis(r.get(8)),
    }
}

/// An outbox row as an [`OutboxEntry`]; a state this version does not know is an error naming
/// the row.
fn entry_from_row(r: &AnyRow) -> Result<OutboxEntry, StoreError> {
    let id: i64 = r.get(0);
    Ok(OutboxEntry {
        id: OutboxId(id),
        lead_id: r.get::<Option<i64>, _>(1).map(LeadId),
        enrollment_id: r.get::<Option<i64>, _>(2).map(EnrollmentId),
        step_id: r.get::<Option<String>, _>(3).map(StepId::new),
        from: r.get(4),
        recipient: r.get(5),
        message_id: MessageId::new(r.get::<String, _>(6)),
        state: r
            .get::<String, _>(7)
            .parse()
            .map_err(unreadable("outbox", id, "state"))?,
        attempts: to_u32(r.get(8)),
        next_attempt_at: from_millis(r.get(9)),
        created_at: from_millis(r.get(10)),
        updated_at: from_millis(r.get(11)),
        sent_at: r.get::<Option<i64>, _>(12).map(from_millis),
        last_error: r.get(13),
        smtp_response: r.get(14),
        size: r.get(15),
    })
}

fn lease_until(claim: &Claim) -> i64 {
    let lease = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX / 2);
    millis(claim.now).saturating_add(lease)
}

impl Store {
    /// Inserts a message into the outbox inside the caller's transaction, so that the scheduler
    /// can advance an enrollment and enqueue its step atomically: either both happen or neither.
    ///
    /// The row is `pending`, or `dry_run` on a store opened for a dry run ([`Store::dry_run`]):
    /// such a row is never claimed by any sender.
    ///
    /// Returns the new row's id, or `None` when this `(enrollment_id, step_id)` is already in the
    /// outbox (the step was enqueued before; nothing is inserted). Call [`Store::wake_sender`]
    /// after the transaction commits so a sender in this process looks at the outbox at once.
    ///
    /// # Errors
    /// A failed query; the caller's transaction should then be rolled back.
    pub async fn enqueue_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        msg: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxId>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO outbox (lead_id, enrollment_id, step_id, from_addr, envelope_from, recipient, recipient_domain, message_id, size, state, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
             ON CONFLICT (enrollment_id, step_id) DO NOTHING RETURNING id",
        )
        .bind(msg.lead_id.map(|l| l.0))
        .bind(msg.enrollment_id.map(|e| e.0))
        .bind(msg.step_id.as_ref().map(StepId::as_str))
        .bind(msg.from.as_str())
        .bind(msg.envelope_from.as_str())
        .bind(msg.recipient.as_str())
        .bind(domain_of(&msg.recipient))
        .bind(msg.message_id.as_str())
        .bind(i64::try_from(msg.raw.len()).unwrap_or(i64::MAX))
        .bind(self.new_outbox_state().as_str())
        .bind(millis(msg.due_at))
        .bind(millis(now))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = &row {
            sqlx::query("INSERT INTO outbox_bodies (outbox_id, raw) VALUES ($1, $2)")
                .bind(r.get::<i64, _>(0))
                .bind(msg.raw.as_slice())
                .execute(&mut **tx)
                .await?;
        }
        Ok(row.map(|r| OutboxId(r.get(0))))
    }

    /// Starts a transaction, for callers that write outbox rows together with their own
    /// changes ([`Store::enqueue_in`]).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Tells a sender running in this process that the outbox has new work. Other processes
    /// sharing the database find it at their next look (at the latest, their poll interval).
    pub fn wake_sender(&self) {
        self.outbox_wake.notify_one();
    }

    /// Resolves at the next [`Store::wake_sender`] (or at once if one came since the last
    /// wait): the sender sleeps on this instead of polling.
    pub async fn outbox_woken(&self) {
        self.outbox_wake.notified().await;
    }

    /// Enqueues one message in a transaction of its own (test messages, tools) and wakes the
    /// sender. See [`Store::enqueue_in`].
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(recipient = %msg.recipient))]
    pub async fn enqueue(
        &self,
        msg: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxId>, StoreError> {
        let mut tx = self.begin().await?;
        let id = self.enqueue_in(&mut tx, msg, now).await?;
        tx.commit().await?;
        self.wake_sender();
        Ok(id)
    }

    /// Enqueues many messages in one transaction (benchmarks, bulk tools). Steps already
    /// enqueued are skipped. Returns how many rows were inserted.
    ///
    /// # Errors
    /// A failed query; nothing is then inserted.
    #[instrument(skip_all, fields(messages = msgs.len()))]
    pub async fn enqueue_many(
        &self,
        msgs: &[NewOutboxMessage],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let mut inserted = 0;
        for m in msgs {
            inserted += usize::from(self.enqueue_in(&mut tx, m, now).await?.is_some());
        }
        tx.commit().await?;
        self.wake_sender();
        Ok(inserted)
    }

    /// Records the outcomes of finished sends and claims the next due rows, atomically: one
    /// commit per round of the sender, however many connections it runs (a round of only
    /// `Sent` outcomes is a single statement, see `sent_and_claim`).
    ///
    /// Claimed rows move `pending|retry` → `sending` with an expiring lease, in due order;
    /// on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several daemons never take the same
    /// row. Due rows whose recipient (or its domain) is suppressed are checked here, right
    /// before sending, and become `cancelled` instead.
    ///
    /// A refused recipient ([`SendOutcome::Failed`] with a [`Bounced`]) is suppressed and its
    /// lead's status set as the sender decided. Sent rows appear in the lead's timeline
    /// ([`Store::timeline`] reads them from the outbox).
    ///
    /// # Errors
    /// A failed query; then nothing of it is recorded and nothing claimed.
    pub async fn settle_and_claim(
        &self,
        outcomes: &[(OutboxId, SendOutcome)],
        claim: Claim,
    ) -> Result<Claimed, StoreError> {
        let mut conn = self.keep_connection().await?;
        self.settle_and_claim_on(&mut conn, outcomes, claim).await
    }

    /// A connection of the pool for a caller that runs many short transactions in a row (the
    /// sender's dispatcher): on SQLite a connection's page cache survives only while no other
    /// connection writes, so rounds that rotate through the pool re-read their pages each time.
    ///
    /// # Errors
    /// No connection could be had.
    pub async fn keep_connection(&self) -> Result<KeptConnection, StoreError> {
        Ok(KeptConnection(self.pool.acquire().await?))
    }

    /// [`Store::settle_and_claim`] on a kept connection. After an error, drop the connection
    /// and take a new one: it may be the cause.
    ///
    /// # Errors
    /// A failed query; nothing of the round is recorded.
    #[instrument(skip_all, fields(outcomes = outcomes.len(), limit = claim.limit))]
    pub async fn settle_and_claim_on(
        &self,
        conn: &mut KeptConnection,
        outcomes: &[(OutboxId, SendOutcome)],
        claim: Claim,
    ) -> Result<Claimed, StoreError> {
        if outcomes
            .iter()
            .all(|(_, o)| matches!(o, SendOutcome::Sent { .. }))
        {
            return self.sent_and_claim(&mut conn.0, outcomes, &claim).await;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn.0).await?;
        self.settle_in(&mut tx, outcomes, claim.now).await?;
        let claimed = if claim.limit > 0 {
            self.claim_in(&mut tx, &claim, None).await?
        } else {
            Claimed::default()
        };
        tx.commit().await?;
        Ok(claimed)
    }

    /// A busy sender's usual round, where every outcome is `Sent`, as ONE statement: it marks
    /// the sent rows and claims the next due ones together. A single statement is atomic on
    /// both databases without an explicit transaction, and on SQLite each statement is a
    /// round trip to the connection's worker thread: BEGIN, two updates and COMMIT cost four
    /// times as many thread hand-offs, which were most of a busy sender's CPU.
    ///
    /// Claimed rows whose recipient is suppressed are cancelled by a second statement. A
    /// crash between the two leaves them `sending`, so `interrupted` after a restart: not sent
    /// either way.
    async fn sent_and_claim(
        &self,
        conn: &mut sqlx::AnyConnection,
        outcomes: &[(OutboxId, SendOutcome)],
        claim: &Claim,
    ) -> Result<Claimed, StoreError> {
        let n = outcomes.len();
        if n == 0 && claim.limit == 0 {
            return Ok(Claimed::default());
        }
        // $1 the time, $2 the lease, $3.. the sent ids, then their server responses.
        let (is_sent, response, sent_rows) = if n == 0 {
            (
                "FALSE".to_owned(),
                "smtp_response".to_owned(),
                String::new(),
            )
        } else {
            let (ids, cases) = sent_params(3, n);
            (
                format!("id IN ({ids})"),
                format!("CASE id{cases} ELSE smtp_response END"),
                // `interrupted` too: if a claim outlived its lease and was declared
                // interrupted, the truth (the server accepted it) still wins.
                format!(
                    "SELECT id FROM outbox WHERE id IN ({ids}) AND state IN ('sending', 'interrupted') UNION ALL "
                ),
            )
        };
        let sql = format!(
            "UPDATE outbox SET \
               state = CASE WHEN {is_sent} THEN 'sent' ELSE 'sending' END, \
               attempts = CASE WHEN {is_sent} THEN attempts ELSE attempts + 1 END, \
               lease_until = CASE WHEN {is_sent} THEN NULL ELSE $2 END, \
               sent_at = CASE WHEN {is_sent} THEN $1 ELSE sent_at END, \
               last_error = CASE WHEN {is_sent} THEN NULL ELSE last_error END, \
               smtp_response = {response}, \
               updated_at = $1 \
             WHERE id IN ({sent_rows}SELECT id FROM ({due}) due) \
             RETURNING {CLAIMED_OR_SENT_COLUMNS}",
            due = self.due_rows("$1", claim.limit)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(millis(claim.now))
            .bind(lease_until(claim));
        for (id, _) in outcomes {
            q = q.bind(id.0);
        }
        for (_, o) in outcomes {
            let SendOutcome::Sent { response } = o else {
                unreachable!("only rounds of sent outcomes come here")
            };
            q = q.bind(response.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let claimed: Vec<&AnyRow> = rows
            .iter()
            .filter(|r| r.get::<String, _>(11) == OutboxState::Sending.as_str())
            .collect();
        self.split_claimed(conn, &claimed, claim.now).await
    }

    /// Claims one row by id if it is due-able (`pending` or `retry`), whatever its due time:
    /// `send-test` sends the message it has just enqueued, and nothing else.
    ///
    /// # Errors
    /// A failed query.
    pub async fn claim_outbox_row(
        &self,
        id: OutboxId,
        claim: Claim,
    ) -> Result<Claimed, StoreError> {
        let mut tx = self.begin().await?;
        let claimed = self.claim_in(&mut tx, &claim, Some(id)).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records outcomes without claiming anything (a sender shutting down).
    ///
    /// # Errors
    /// A failed query.
    pub async fn settle(
        &self,
        outcomes: &[(OutboxId, SendOutcome)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        self.settle_in(&mut tx, outcomes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The ids of the next `limit` due rows at the time parameter `now` (`$n`), in due order.
    ///
    /// SQLite runs one writer at a time, so this sub-select and the update around it are one
    /// atomic step; PostgreSQL needs the row locks to keep two daemons off the same row. The
    /// limit is written into the statement, not bound: SQLite (3.47+) plans around a bound
    /// LIMIT's value and so re-prepares the statement whenever it is bound again, which was a
    /// tenth of a busy sender's CPU. A sender's limits are 1..=connections, so this caches at
    /// most that many statements.
    fn due_rows(&self, now: &str, limit: usize) -> String {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // While sending is paused nothing is due (`sending.rs`): checked in the claim itself, so
        // a pause set by any process holds from every sender's next round.
        format!(
            "SELECT id FROM outbox WHERE state IN ('pending', 'retry') AND next_attempt_at <= {now} \
               AND NOT EXISTS (SELECT 1 FROM sending_control c WHERE c.paused_at IS NOT NULL) \
             ORDER BY next_attempt_at, id LIMIT {limit}{lock}"
        )
    }

    async fn claim_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        claim: &Claim,
        only: Option<OutboxId>,
    ) -> Result<Claimed, StoreError> {
        let rows = match only {
            None => {
                let sql = format!(
                    "UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
                     WHERE id IN ({due}) RETURNING {CLAIM_COLUMNS}",
                    due = self.due_rows("$3", claim.limit)
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(lease_until(claim))
                    .bind(millis(claim.now))
                    .bind(millis(claim.now))
                    .fetch_all(&mut *tx)
                    .await?
            }
            Some(id) => {
                let sql = format!(
                    "UPDATE outbox SET state = 'sending', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
                     WHERE id = $3 AND state IN ('pending', 'retry') RETURNING {CLAIM_COLUMNS}"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(lease_until(claim))
                    .bind(millis(claim.now))
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let rows: Vec<&AnyRow> = rows.iter().collect();
        self.split_claimed(tx, &rows, claim.now).await
    }

    /// Claimed rows to send, and those to cancel because their recipient is suppressed (the
    /// check right before every send).
    async fn split_claimed(
        &self,
        conn: &mut sqlx::AnyConnection,
        rows: &[&AnyRow],
        now: DateTime<Utc>,
    ) -> Result<Claimed, StoreError> {
        let mut messages = Vec::with_capacity(rows.len());
        let mut suppressed = Vec::new();
        for r in rows {
            let m = message_from_row(r);
            match r.get::<Option<String>, _>(10) {
                None => messages.push(m),
                Some(why) => {
                    let why = format!("suppressed {why}");
                    sqlx::query(
                        "UPDATE outbox SET state = 'cancelled', lease_until = NULL, last_error = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(why.as_str())
                    .bind(millis(now))
                    .bind(m.id.0)
                    .execute(&mut *conn)
                    .await?;
                    suppressed.push((m.id, why));
                }
            }
        }
        // An erased address is on the list only as its keyed hash, which SQL cannot compute.
        let recipients: Vec<&str> = messages.iter().map(|m| m.recipient.as_str()).collect();
        let erased: std::collections::HashSet<String> =
            super::data::erased_among(conn, &recipients)
                .await?
                .into_iter()
                .map(str::to_owned)
                .collect();
        if !erased.is_empty() {
            let why = "suppressed: the address was erased on request";
            for m in messages.iter().filter(|m| erased.contains(&m.recipient)) {
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled', lease_until = NULL, last_error = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(why)
                .bind(millis(now))
                .bind(m.id.0)
                .execute(&mut *conn)
                .await?;
                suppressed.push((m.id, why.to_owned()));
            }
            messages.retain(|m| !erased.contains(&m.recipient));
        }
        messages.sort_by_key(|m| m.id);
        Ok(Claimed {
            messages,
            suppressed,
        })
    }

    /// Marks every `Sent` outcome in one statement: a busy sender's rounds cost the same few
    /// statements however many messages left. The timeline reads sent rows from the outbox
    /// itself ([`Store::timeline`]), so no event is written per message.
    async fn settle_sent_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        outcomes: &[(OutboxId, SendOutcome)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sent: Vec<(OutboxId, &str)> = outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                SendOutcome::Sent { response } => Some((*id, response.as_str())),
                _ => None,
            })
            .collect();
        if sent.is_empty() {
            return Ok(());
        }
        // Numbered parameters on both databases: `$1` (the time) is used twice.
        let (ids, cases) = sent_params(2, sent.len());
        // `interrupted` too: if a claim outlived its lease and was declared interrupted, the
        // truth (the server accepted it) still wins.
        let sql = format!(
            "UPDATE outbox SET state = 'sent', sent_at = $1, updated_at = $1, last_error = NULL, lease_until = NULL, \
               smtp_response = CASE id{cases} END \
             WHERE id IN ({ids}) AND state IN ('sending', 'interrupted')"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now_ms);
        for (id, _) in &sent {
            q = q.bind(id.0);
        }
        for (_, response) in &sent {
            q = q.bind(*response);
        }
        q.execute(&mut *tx).await?;
        Ok(())
    }

    async fn settle_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        outcomes: &[(OutboxId, SendOutcome)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_ms = millis(now);
        self.settle_sent_in(tx, outcomes, now_ms).await?;
        for (id, outcome) in outcomes {
            // `interrupted` too: if a claim outlived its lease and was declared interrupted,
            // the truth (sent, refused) still wins.
            let (state, lead) = match outcome {
                // Recorded together above.
                SendOutcome::Sent { .. } => continue,
                SendOutcome::Retry { error, at } => {
                    sqlx::query(
                        "UPDATE outbox SET state = 'retry', next_attempt_at = $1, updated_at = $2, last_error = $3, lease_until = NULL \
                         WHERE id = $4 AND state = 'sending'",
                    )
                    .bind(millis(*at))
                    .bind(now_ms)
                    .bind(error.as_str())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    ("retry", None)
                }
                SendOutcome::Failed { error, bounce } => {
                    let row = sqlx::query(
                        "UPDATE outbox SET state = 'failed', updated_at = $1, last_error = $2, lease_until = NULL \
                         WHERE id = $3 AND state IN ('sending', 'interrupted') RETURNING lead_id, message_id, step_id",
                    )
                    .bind(now_ms)
                    .bind(error.as_str())
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let (Some(b), Some(r)) = (bounce, &row) {
                        bounce_in(tx, b, r.get::<Option<i64>, _>(0), now).await?;
                    }
                    (
                        if bounce.is_some() {
                            "bounced"
                        } else {
                            "send_failed"
                        },
                        row,
                    )
                }
                SendOutcome::Held { error } => {
                    // Back to waiting as it was: `interrupted` too, since a claim held past its
                    // lease was never handed over (the server refused before the data).
                    sqlx::query(
                        "UPDATE outbox SET state = 'pending', updated_at = $1, last_error = $2, lease_until = NULL \
                         WHERE id = $3 AND state IN ('sending', 'interrupted')",
                    )
                    .bind(now_ms)
                    .bind(error.as_str())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    ("held", None)
                }
                SendOutcome::Interrupted { error } => {
                    sqlx::query(
                        "UPDATE outbox SET state = 'interrupted', updated_at = $1, last_error = $2, lease_until = NULL \
                         WHERE id = $3 AND state = 'sending'",
                    )
                    .bind(now_ms)
                    .bind(error.as_str())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                    ("interrupted", None)
                }
            };
            // The lead's timeline shows what was sent and what bounced.
            if let Some(r) = lead
                && let Some(lead_id) = r.get::<Option<i64>, _>(0)
            {
                let detail = serde_json::json!({
                    "outbox_id": id.0,
                    "message_id": r.get::<String, _>(1),
                    "step_id": r.get::<Option<String>, _>(2),
                });
                sqlx::query(
                    "INSERT INTO events (lead_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
                )
                .bind(lead_id)
                .bind(now_ms)
                .bind(state)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Declares abandoned claims `interrupted`: they may or may not have reached the server,
    /// so they are never resent automatically (`leadloop outbox retry` is a person's call).
    ///
    /// With `all` (a sender starting on SQLite, where one daemon owns the database), every
    /// `sending` row is abandoned; otherwise only those whose lease has expired, so a daemon
    /// starting beside others on PostgreSQL never touches their live claims.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn interrupt_abandoned(
        &self,
        now: DateTime<Utc>,
        all: bool,
    ) -> Result<u64, StoreError> {
        let cutoff = if all { i64::MAX } else { millis(now) };
        let done = sqlx::query(
            "UPDATE outbox SET state = 'interrupted', updated_at = $1, lease_until = NULL, \
               last_error = 'the sender stopped while handing this message over; it may or may not have been delivered' \
             WHERE state = 'sending' AND lease_until < $2",
        )
        .bind(millis(now))
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// When the outbox next needs a look: the earliest due `pending` or `retry` row, or the
    /// earliest expiring claim (a `sending` row whose sender may be gone), if any. The sender
    /// sleeps until then unless woken.
    ///
    /// # Errors
    /// A failed query.
    pub async fn next_outbox_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(t) FROM ( \
               SELECT MIN(next_attempt_at) AS t FROM outbox WHERE state IN ('pending', 'retry') \
               UNION ALL \
               SELECT MIN(lease_until) AS t FROM outbox WHERE state = 'sending' \
             ) due",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<Option<i64>, _>(0).map(from_millis))
    }

    /// Outbox rows, newest first, optionally of one state.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn list_outbox(
        &self,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            match state {
                Some(s) => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ENTRY_COLUMNS} FROM outbox WHERE state = $1 ORDER BY id DESC LIMIT $2"
                )))
                .bind(s.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query(AssertSqlSafe(format!(
                        "SELECT {ENTRY_COLUMNS} FROM outbox ORDER BY id DESC LIMIT $1"
                    )))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
        rows.iter().map(entry_from_row).collect()
    }

    /// The rows waiting for a person's decision (`interrupted` and `failed`), most recently
    /// changed first, each with its message's subject as the recipient read it (decoded; `None`
    /// when the message has none or its body is gone).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn outbox_to_decide(
        &self,
        limit: usize,
    ) -> Result<Vec<(OutboxEntry, Option<String>)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS}, raw FROM outbox LEFT JOIN outbox_bodies ON outbox_id = id \
             WHERE state IN ($1, $2) ORDER BY updated_at DESC, id DESC LIMIT $3"
        )))
        .bind(OutboxState::Interrupted.as_str())
        .bind(OutboxState::Failed.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let raw = r.get::<Option<Vec<u8>>, _>(16).unwrap_or_default();
                Ok((entry_from_row(r)?, subject_of(&raw)))
            })
            .collect()
    }

    /// The subject of row `id`'s message, decoded; `None` when it has none.
    ///
    /// # Errors
    /// A failed query.
    pub async fn outbox_subject(&self, id: OutboxId) -> Result<Option<String>, StoreError> {
        let raw: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT raw FROM outbox_bodies WHERE outbox_id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(raw.as_deref().and_then(subject_of))
    }

    /// One outbox row.
    ///
    /// # Errors
    /// A failed query.
    pub async fn outbox_entry(&self, id: OutboxId) -> Result<Option<OutboxEntry>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM outbox WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// Counts of outbox rows per state.
    ///
    /// # Errors
    /// A failed query.
    pub async fn outbox_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A person asks to send a row again: `failed`, `interrupted` and `cancelled` rows become
    /// `pending`, due now. A row that was `sent`, or is waiting or in flight, is refused: an
    /// interrupted message may already have arrived, which is exactly why this is not automatic.
    /// `by` (who asked) goes on the lead's timeline as an `outbox_retried` event, in the same
    /// transaction.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(id = %id))]
    pub async fn retry_outbox(
        &self,
        id: OutboxId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Transition, StoreError> {
        let done = self
            .decide_outbox(
                id,
                "UPDATE outbox SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                 WHERE id = $2 AND state IN ('failed', 'interrupted', 'cancelled')",
                ("outbox_retried", by),
                now,
            )
            .await?;
        if done == Transition::Done {
            self.wake_sender();
        }
        Ok(done)
    }

    /// A person asks not to send a row: `pending`, `retry`, `interrupted` and `failed` rows
    /// become `cancelled`. A `sending` row is in the server's hands already and is refused.
    /// `by` goes on the lead's timeline as an `outbox_cancelled` event.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(id = %id))]
    pub async fn cancel_outbox(
        &self,
        id: OutboxId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Transition, StoreError> {
        self.decide_outbox(
            id,
            "UPDATE outbox SET state = 'cancelled', updated_at = $1, lease_until = NULL, \
               last_error = COALESCE(last_error, 'cancelled by hand') \
             WHERE id = $2 AND state IN ('pending', 'retry', 'interrupted', 'failed')",
            ("outbox_cancelled", by),
            now,
        )
        .await
    }

    /// Runs a person's decision `update` (`$1` now, `$2` the id) on row `id` and, when it
    /// changed the row, records `event` (kind, by) on its lead with the state it had.
    async fn decide_outbox(
        &self,
        id: OutboxId,
        update: &'static str,
        (kind, by): (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<Transition, StoreError> {
        let mut tx = self.begin().await?;
        let before = sqlx::query("SELECT state, lead_id FROM outbox WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before else {
            return Ok(Transition::NotFound);
        };
        let changed = sqlx::query(update)
            .bind(millis(now))
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return self.refusal(id).await;
        }
        if let Some(lead) = before.get::<Option<i64>, _>(1) {
            let detail = serde_json::json!({
                "outbox_id": id.0,
                "was": before.get::<String, _>(0),
                "by": by,
            });
            sqlx::query("INSERT INTO events (lead_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(lead)
                .bind(millis(now))
                .bind(kind)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Transition::Done)
    }

    async fn refusal(&self, id: OutboxId) -> Result<Transition, StoreError> {
        Ok(match self.outbox_entry(id).await? {
            Some(e) => Transition::Refused(e.state),
            None => Transition::NotFound,
        })
    }

    /// Adds an address or a whole domain to the suppression list (idempotent: the first
    /// reason is kept).
    ///
    /// # Errors
    /// A failed query.
    pub async fn suppress(
        &self,
        entry: &Suppression,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        suppress_in(&mut tx, entry, reason, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Why `address` must not be mailed, if it must not: its own entry or its domain's.
    ///
    /// # Errors
    /// A failed query.
    pub async fn suppressed(&self, address: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT kind, value, reason FROM suppressions \
             WHERE (kind = 'address' AND value = $1) OR (kind = 'domain' AND value = $2) ORDER BY kind LIMIT 1",
        )
        .bind(address.trim().to_lowercase())
        .bind(domain_of(address.trim()))
        .fetch_optional(&self.pool)
        .await?;
        if row.is_none() && self.erased(address).await? {
            return Ok(Some(
                "suppressed: the address was erased on request".to_owned(),
            ));
        }
        Ok(row.map(|r| {
            format!(
                "suppressed {} {}: {}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2)
            )
        }))
    }
}

/// Adds a suppression inside a transaction (see [`Store::suppress`]); whether the entry is new.
///
/// # Errors
/// A failed query.
pub async fn suppress_in(
    tx: &mut sqlx::AnyConnection,
    entry: &Suppression,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO suppressions (kind, value, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (kind, value) DO NOTHING",
    )
    .bind(entry.kind())
    .bind(entry.value())
    .bind(reason)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Applies a refused recipient's [`Bounced`] inside the transaction that fails its row.
async fn bounce_in(
    tx: &mut sqlx::AnyConnection,
    bounce: &Bounced,
    lead: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    suppress_in(tx, &bounce.suppress, &bounce.reason, now).await?;
    if let Some(lead) = lead {
        sqlx::query("UPDATE leads SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(bounce.lead_status.as_str())
            .bind(millis(now))
            .bind(lead)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The lower-case domain of an address (`""` without an `@`).
fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map_or(String::new(), |(_, d)| {
        d.trim_end_matches('.').to_lowercase()
    })
}
