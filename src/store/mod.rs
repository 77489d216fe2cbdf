//! The leads store: SQLite (WAL) by default, PostgreSQL to scale out.
//!
//! Queries are checked at run time and written in the dialect both databases share (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), through sqlx's `Any` driver, so one code path
//! serves both and one test suite runs against both. The schemas differ only in how ids are
//! generated, so each backend has its own folder under `migrations/`.
//!
//! The store knows domain types and SQL only: times and decisions come in from the caller.
//!
//! Ingest writes through [`Store::record_batch`], which records a batch of messages, the leads
//! they create or update, and the mailbox cursor in one transaction: the cursor can never be
//! ahead of what is recorded, and a crash mid-batch leaves nothing half-written. A lead's
//! timeline is read from the messages that name it plus the `events` that are not messages.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};
use tracing::instrument;

pub use crate::domain::Lead;
use crate::domain::{EmailAddress, LeadId, LeadStatus, MessageKind};

mod batch;
mod data;

pub use data::{
    ERASED_DOMAIN, Erased, ExportEvent, ExportLead, ExportVerdict, ImportAction, ImportProgress,
    ImportRow, ImportRun, Retained,
};

pub use batch::{Batch, BatchOutcome, Change, InboundRecord, LeadChange};

mod enrollments;

pub use enrollments::{EnrollRule, Enrollment, Outgoing, Settle, Settled, count_key};

pub mod outbox;
mod sending;

pub use outbox::{
    Bounced, Claim, Claimed, KeptConnection, NewOutboxMessage, OutboxEntry, OutboxId,
    OutboxMessage, OutboxState, SendOutcome, Suppression, Transition,
};
pub use sending::{Pause, PausedBy};

mod digest;
mod leases;
mod metrics;
mod report;
mod review;
mod running;
mod sales;
mod score;
mod suppressions;
mod users;
mod view;

pub use digest::{NewDigest, WaitingLead};
pub use leases::MailboxLease;
pub use metrics::StateCounts;
pub use report::{
    LeadGroup, LeadGroupRow, MAX_PERIODS, ReasonCount, ReportPeriod, ReportWindow, Span, StepRow,
    WindowError, ratio, report_periods, report_time,
};
pub use running::RunningSequence;
pub use view::{LeadCursor, LeadLine, LeadPage, LeadQuery, LeadSort};

pub use sales::{
    Cause, HandoffOutcome, KnownLead, OurMessage, PendingHandoff, SOFT_BOUNCE, VerdictEntry,
    start_of,
};
pub use score::{LeadScorer, ScoreFacts, ScoreReason, Scored};
pub use suppressions::SuppressionEntry;
pub use users::{NewSession, SessionRow};

/// How often [`Store::checkpoints`] copies the SQLite log back into the database.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// How long [`Store::checkpoints`] waits for ingest to pause before it copies the log anyway.
///
/// A burst of mail rewrites the same index pages in batch after batch; copying them while the
/// burst lasts copies each of them again and again, and takes a core from the classifier.
pub const CHECKPOINT_DEFER_MAX: std::time::Duration = std::time::Duration::from_secs(4);

/// The running checkpoint task of [`Store::start_checkpoints`].
#[derive(Debug)]
pub struct Checkpoints {
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpoints {
    /// Stops the task, letting a checkpoint in progress finish.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// What a checkpoint left of the SQLite write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalState {
    /// Frames (changed pages) in the log.
    pub frames: u64,
    /// Of those, the frames now also in the database file.
    pub checkpointed: u64,
}

/// When the background checkpoint runs: on a tick with no ingest batch committed since the last
/// one, or once [`CHECKPOINT_DEFER_MAX`] has passed since the last checkpoint.
#[derive(Debug, Clone, Copy)]
struct CheckpointPacing {
    seen_batches: u64,
    last: std::time::Instant,
}

impl CheckpointPacing {
    /// Pacing whose last checkpoint was at `now`.
    fn new(now: std::time::Instant) -> Self {
        CheckpointPacing {
            seen_batches: 0,
            last: now,
        }
    }

    /// Whether to checkpoint now, given the count of ingest batches committed so far; a `true`
    /// counts as the checkpoint done.
    fn due(&mut self, batches: u64, now: std::time::Instant) -> bool {
        let quiet = batches == self.seen_batches;
        self.seen_batches = batches;
        if quiet || now.saturating_duration_since(self.last) >= CHECKPOINT_DEFER_MAX {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters, and large enough
/// that a batch costs a handful of round trips.
///
/// Statements whose row count changes from batch to batch (lead upserts, events) are not kept
/// in the connection's statement cache (`persistent(false)`): every row count is a new text,
/// and each cached variant of a statement with thousands of parameters holds megabytes.
const ROWS_PER_STATEMENT: usize = 400;

/// Errors callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open the database")]
    Connect(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The URL names a database leadloop does not support.
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    Unsupported,
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A row holds a value this version cannot read: a state written by a newer version or by
    /// hand, an address that is not one. The row is named so a person can look at it; nothing
    /// is guessed in its place.
    #[error("{table} row {id}: cannot read column {column}")]
    Unreadable {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong with the value (it names the value).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Turns a stored value's parse error into [`StoreError::Unreadable`] for this row and column.
fn unreadable<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    table: &'static str,
    id: i64,
    column: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Unreadable {
        table,
        id,
        column,
        source: e.into(),
    }
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The leads store. Cheap to clone: it is a connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Fired when outbox rows become due in this process (enqueued, retried by hand), so the
    /// sender sleeps until there is work instead of polling.
    outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Fired when a batch or the CLI queued a notification for our own people, so the
    /// hand-off worker of this process renders it at once.
    handoff_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Ingest batches committed by this process, so checkpoints can wait for a pause.
    ingest_batches: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// `[[score]]`: recomputes a lead's score in every transaction that changes the lead.
    /// Shared by the clones and replaced on a reload.
    scorer: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn LeadScorer>>>>,
    /// `leadloop run --dry-run`: every message this store enqueues is `dry_run`, which no
    /// sender ever claims, so nothing this process decides can leave.
    dry_run: bool,
    /// The verdict reasons the view offers, counted over every verdict: kept until another
    /// verdict is recorded rather than counted again for every lead's page.
    verdict_reasons: std::sync::Arc<std::sync::Mutex<Option<view::ReasonsSeen>>>,
    /// SQLite connections of the leads list's own, outside the pool.
    readers: std::sync::Arc<view::Readers>,
}

/// Where ingest stopped in one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxCursor {
    /// The mailbox's UIDVALIDITY when `last_uid` was recorded.
    pub uidvalidity: u32,
    /// The highest UID whose message is recorded.
    pub last_uid: u32,
}

/// One entry in a lead's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened (`inquiry`, `form`, `forward`, …).
    pub kind: String,
    /// The message's subject, for messages.
    pub subject: Option<String>,
    /// Details (evidence, channel, owner, fields).
    pub detail: serde_json::Value,
    /// The mailbox a message was recorded from (its key), for messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
}

/// Filters for [`Store::list_leads`].
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    /// Only leads first attributed to this channel.
    pub channel: Option<String>,
    /// Only leads that have a message of this kind.
    pub kind: Option<MessageKind>,
    /// Only leads in this status (`review`: the ones waiting for approval).
    pub status: Option<LeadStatus>,
}

/// An inbound message as recorded (for tests and inspection).
#[derive(Debug, Clone, Serialize)]
pub struct InboundSummary {
    /// IMAP UID.
    pub uid: Option<i64>,
    /// Deduplication key.
    pub dedupe_key: String,
    /// Decided kind.
    pub kind: String,
    /// Why, for ignored messages.
    pub reason: Option<String>,
    /// The lead's address, when the message names one.
    pub lead_email: Option<String>,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `count` bind parameters numbered from `first`: `$1,$2,$3` on PostgreSQL, `?,?,?` on SQLite.
///
/// SQLite gets anonymous parameters because sqlx binds numbered ones by looking each name up,
/// which SQLite does with a linear scan: a 5,000-parameter batch insert then spends most of its
/// time in that lookup.
fn params(backend: Backend, first: usize, count: usize) -> String {
    let mut s = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            s.push(',');
        }
        match backend {
            Backend::Sqlite => s.push('?'),
            Backend::Postgres => {
                let _ = write!(s, "${n}");
            }
        }
    }
    s
}

/// `($1,$2,$3),($4,$5,$6)…` for `rows` rows of `cols` columns.
fn values_list(backend: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * (cols * 6 + 3));
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        s.push_str(&params(backend, r * cols + 1, cols));
        s.push(')');
    }
    s
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the database cannot be opened, [`StoreError::Migrate`] when
    /// the schema cannot be migrated.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unsupported);
        };
        if backend == Backend::Sqlite {
            create_sqlite_parent(url);
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            // A pool pings a connection before lending it, to find one a server dropped. A
            // SQLite connection is a file this process holds open: the ping finds nothing, and
            // each one is a trip to the connection's own thread and back, as costly as the
            // statement that follows it.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (the CLI) run beside the daemon's writer; NORMAL
                        // syncs at checkpoints rather than every commit, which WAL keeps safe
                        // against application crashes. Checkpoints every 10,000 pages
                        // (~40 MB of WAL) rather than SQLite's 1,000: each one fsyncs, and a
                        // page written by a claim and again by its settlement is copied once.
                        // SQLite's memory, for every connection of the process together, is
                        // held near 4 MB (`soft_heap_limit`, process-wide): each connection
                        // would otherwise fill a page cache of its own, and a long ingest's
                        // resident set grew with every connection the pool handed out.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA wal_autocheckpoint = 10000; PRAGMA soft_heap_limit = 4000000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(StoreError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Store {
            pool,
            backend,
            outbox_wake: std::sync::Arc::default(),
            handoff_wake: std::sync::Arc::default(),
            ingest_batches: std::sync::Arc::default(),
            scorer: std::sync::Arc::default(),
            dry_run: false,
            verdict_reasons: std::sync::Arc::default(),
            readers: std::sync::Arc::new(view::Readers::new(
                (backend == Backend::Sqlite).then(|| url.to_owned()),
            )),
        })
    }

    /// This store, making every message it enqueues from now on a `dry_run` row (shown by
    /// `leadloop outbox list`, never sent). The flag is this handle's and its clones', not the
    /// database's: other processes on the same database enqueue as before.
    #[must_use]
    pub fn dry_run(mut self) -> Store {
        self.dry_run = true;
        self
    }

    /// Whether this store enqueues `dry_run` rows ([`Store::dry_run`]).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The state a message enters the outbox in.
    fn new_outbox_state(&self) -> OutboxState {
        if self.dry_run {
            OutboxState::DryRun
        } else {
            OutboxState::Pending
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of a SQLite database to `path` while it is in use
    /// (`VACUUM INTO`: one read transaction, so the copy is as of one moment, WAL included).
    /// `path` must not exist yet. PostgreSQL has its own tool for this, `pg_dump`.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] on PostgreSQL; a failed query (the file exists, the folder
    /// cannot be written).
    #[instrument(skip_all)]
    pub async fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported);
        }
        sqlx::query("VACUUM INTO $1")
            .bind(path.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the database answers: one trivial query (the readiness check).
    ///
    /// # Errors
    /// The database cannot be reached, or the pool is closed.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Copies what the SQLite write-ahead log holds back into the database file, without
    /// waiting for readers or writers (`PRAGMA wal_checkpoint(PASSIVE)`), and returns the
    /// log's frames and how many of them are now in the database. `None` on PostgreSQL.
    ///
    /// # Errors
    /// A failed query.
    pub async fn checkpoint(&self) -> Result<Option<WalState>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        let frames = |i: usize| u64::try_from(row.get::<i64, _>(i)).unwrap_or(0);
        Ok(Some(WalState {
            frames: frames(1),
            checkpointed: frames(2),
        }))
    }

    /// [`Store::checkpoints`] as a task of its own until [`Checkpoints::stop`], for a process
    /// that runs no task tracker of its own (`run --once`, the benchmarks).
    pub fn start_checkpoints(&self) -> Checkpoints {
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(self.clone().checkpoints(cancel.clone()));
        Checkpoints { cancel, task }
    }

    /// Checkpoints the SQLite log every [`CHECKPOINT_EVERY`] until `cancel` fires (at once on
    /// PostgreSQL), as a task of the daemon's own.
    ///
    /// Left to SQLite, the checkpoint runs inside whichever commit crosses
    /// `wal_autocheckpoint` and makes it wait for the copy and its fsync. With a large table
    /// whose changed rows sit on pages of their own (a million enrollments, a few thousand
    /// due), that wait was a third of a scheduler pass. Here the copy runs on a connection of
    /// its own, beside the writers; `wal_autocheckpoint` stays as the backstop should this
    /// task fall behind. While ingest is committing batches the copy waits for a quiet tick,
    /// at most [`CHECKPOINT_DEFER_MAX`].
    pub async fn checkpoints(self, cancel: tokio_util::sync::CancellationToken) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pacing = CheckpointPacing::new(std::time::Instant::now());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => return,
            }
            let batches = self
                .ingest_batches
                .load(std::sync::atomic::Ordering::Relaxed);
            if !pacing.due(batches, std::time::Instant::now()) {
                continue;
            }
            if let Err(e) = self.checkpoint().await {
                tracing::warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot checkpoint the database log; SQLite will at its own threshold");
            }
        }
    }

    /// Where ingest stopped in `mailbox`, if it ever ran.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn mailbox_cursor(&self, mailbox: &str) -> Result<Option<MailboxCursor>, StoreError> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = $1")
            .bind(mailbox)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| MailboxCursor {
            uidvalidity: u32::try_from(r.get::<i64, _>(0)).unwrap_or(0),
            last_uid: u32::try_from(r.get::<i64, _>(1)).unwrap_or(0),
        }))
    }

    /// The UIDs of `mailbox` that were recorded under `uidvalidity` but not yet tidied (flagged
    /// or moved): `(first, last)`, or `None` when everything recorded was tidied.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn untidied(
        &self,
        mailbox: &str,
        uidvalidity: u32,
    ) -> Result<Option<(u32, u32)>, StoreError> {
        let row = sqlx::query(
            "SELECT tidied_uid, last_uid FROM mailbox_state \
             WHERE mailbox = $1 AND uidvalidity = $2 AND tidied_uid < last_uid",
        )
        .bind(mailbox)
        .bind(i64::from(uidvalidity))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let uid = |i: usize| u32::try_from(r.get::<i64, _>(i)).unwrap_or(0);
            (uid(0).saturating_add(1), uid(1))
        }))
    }

    /// Notes that the mail of `mailbox` up to `uid` is tidied. Never moves the mark backwards,
    /// nor past the cursor.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn mark_tidied(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mailbox_state SET tidied_uid = $3 \
             WHERE mailbox = $1 AND uidvalidity = $2 AND tidied_uid < $3 AND last_uid >= $3",
        )
        .bind(mailbox)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(uid))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many inbound messages of each kind are recorded.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn kind_counts(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT kind, COUNT(*) FROM inbound_messages GROUP BY kind")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Leads, newest first.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn list_leads(&self, filter: &LeadFilter) -> Result<Vec<Lead>, StoreError> {
        let mut sql = format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE 1 = 1");
        let mut n = 0;
        if filter.channel.is_some() {
            n += 1;
            let _ = write!(sql, " AND l.channel = ${n}");
        }
        if filter.kind.is_some() {
            n += 1;
            let _ = write!(
                sql,
                " AND EXISTS (SELECT 1 FROM inbound_messages m WHERE m.lead_email = l.email AND m.kind = ${n})"
            );
        }
        if filter.status.is_some() {
            n += 1;
            let _ = write!(sql, " AND l.status = ${n}");
        }
        sql.push_str(" ORDER BY l.created_at DESC, l.id DESC");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(c) = &filter.channel {
            q = q.bind(c.as_str());
        }
        if let Some(k) = filter.kind {
            q = q.bind(k.as_str());
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(lead_from_row).collect()
    }

    /// The lead with this address, if any.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn lead(&self, email: &EmailAddress) -> Result<Option<Lead>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads l WHERE l.email = $1"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(lead_from_row).transpose()
    }

    /// A lead's timeline, oldest first: every message naming the lead, and the events that
    /// are not messages (sends and status changes, as later parts record them).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn timeline(&self, lead: &Lead) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, subject, detail, mailbox FROM ( \
               SELECT recorded_at AS at, kind, subject, detail, mailbox, 0 AS src, id FROM inbound_messages WHERE lead_email = $1 \
               UNION ALL \
               SELECT at, kind, NULL AS subject, detail, NULL AS mailbox, 1 AS src, id FROM events WHERE lead_id = $2 \
             ) t ORDER BY at, src, id",
        )
        .bind(lead.email.as_str())
        .bind(lead.id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut events: Vec<Event> = rows
            .iter()
            .map(|r| Event {
                at: from_millis(r.get(0)),
                kind: r.get(1),
                subject: r.get(2),
                detail: serde_json::from_str(&r.get::<String, _>(3)).unwrap_or_default(),
                mailbox: r.get(4),
            })
            .collect();
        // What was sent is read from the outbox itself: the sender records a send by changing
        // the row's state, with no timeline write per message.
        let sent = sqlx::query(
            "SELECT sent_at, id, message_id, step_id FROM outbox WHERE lead_id = $1 AND state = $2 ORDER BY sent_at, id",
        )
        .bind(lead.id.0)
        .bind(OutboxState::Sent.as_str())
        .fetch_all(&self.pool)
        .await?;
        events.extend(sent.iter().map(|r| Event {
            at: from_millis(r.get::<Option<i64>, _>(0).unwrap_or_default()),
            kind: "sent".to_owned(),
            subject: None,
            detail: serde_json::json!({
                "outbox_id": r.get::<i64, _>(1),
                "message_id": r.get::<String, _>(2),
                "step_id": r.get::<Option<String>, _>(3),
            }),
            mailbox: None,
        }));
        events.extend(self.handoff_events(lead.id).await?);
        // Stable: entries at the same moment keep messages, then events, then sends.
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

    /// Every recorded inbound message of a mailbox, in UID order.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn inbound(&self, mailbox: &str) -> Result<Vec<InboundSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT uid, dedupe_key, kind, reason, lead_email FROM inbound_messages WHERE mailbox = $1 ORDER BY uid, id",
        )
        .bind(mailbox)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| InboundSummary {
                uid: r.get(0),
                dedupe_key: r.get(1),
                kind: r.get(2),
                reason: r.get(3),
                lead_email: r.get(4),
            })
            .collect())
    }
}

const LEAD_COLUMNS: &str = "l.id, l.email, l.name, l.company, l.phone, l.channel, l.status, l.score, l.owner, l.form, l.fields, l.created_at, l.updated_at";

/// A lead row as a [`Lead`]; an address or status this version cannot read is an error naming
/// the row.
fn lead_from_row(r: &AnyRow) -> Result<Lead, StoreError> {
    let id: i64 = r.get(0);
    let email: String = r.get(1);
    Ok(Lead {
        id: LeadId(id),
        email: EmailAddress::parse(&email)
            .map_err(|e| format!("'{email}' is not an email address: {e}"))
            .map_err(unreadable("leads", id, "email"))?,
        name: r.get(2),
        company: r.get(3),
        phone: r.get(4),
        channel: r.get(5),
        status: r
            .get::<String, _>(6)
            .parse()
            .map_err(unreadable("leads", id, "status"))?,
        score: r.get(7),
        owner: r.get(8),
        form: r.get(9),
        // Written only from a map ("{}" when empty); anything else reads as no fields.
        fields: serde_json::from_str(&r.get::<String, _>(10)).unwrap_or_default(),
        created_at: from_millis(r.get(11)),
        updated_at: from_millis(r.get(12)),
    })
}

/// SQLite creates the file (`mode=rwc`) but not its folder; a fresh checkout has no `var/`.
fn create_sqlite_parent(url: &str) {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") {
        return;
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// The states and statuses spelled inside SQL name values the code knows.
#[cfg(test)]
mod sql_names;

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{CHECKPOINT_DEFER_MAX, CHECKPOINT_EVERY, CheckpointPacing};

    #[test]
    fn checkpoints_wait_for_a_quiet_tick_but_not_longer_than_the_cap() {
        let start = Instant::now();
        let mut pacing = CheckpointPacing::new(start);
        // Nothing ingested: every tick checkpoints.
        assert!(pacing.due(0, start + CHECKPOINT_EVERY));
        // Batches keep arriving: the copy waits...
        let mut now = start + CHECKPOINT_EVERY;
        let mut batches = 0;
        let mut waited: u32 = 0;
        loop {
            now += CHECKPOINT_EVERY;
            batches += 3;
            if pacing.due(batches, now) {
                break;
            }
            waited += 1;
        }
        // ...until the cap has passed since the last checkpoint.
        assert_eq!(CHECKPOINT_EVERY * (waited + 1), CHECKPOINT_DEFER_MAX);
        // A quiet tick after the burst checkpoints at once.
        batches += 1;
        assert!(!pacing.due(batches, now + CHECKPOINT_EVERY));
        assert!(pacing.due(batches, now + CHECKPOINT_EVERY * 2));
    }
}
