//! Enrollments: which lead is in which sequence, what it has had, and when it is due next.
//!
//! New leads are enrolled inside [`Store::record_batch`]'s transaction, with one set-based
//! statement per automatic sequence per batch, so a lead recorded is a lead enrolled (or
//! neither, after a crash). The scheduler claims due enrollments with an expiring lease
//! ([`Store::claim_due`]) and reports what it did with each ([`Store::settle_enrollments`]),
//! which advances the enrollment and enqueues its message in one transaction.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{
    Backend, InboundRecord, Lead, ROWS_PER_STATEMENT, Store, StoreError, from_millis, millis,
    params, unreadable,
};
use crate::domain::{
    EmailAddress, EnrollmentId, EnrollmentState, LeadId, LeadStatus, MessageId, MessageKind,
    SequenceName, StepId,
};

/// How ingest enrolls new leads into one sequence (`[enroll]` of a sequence file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRule {
    /// The sequence.
    pub sequence: SequenceName,
    /// Message kinds that enroll.
    pub kinds: Vec<MessageKind>,
    /// Only leads first attributed to one of these channels (empty: any).
    pub channels: Vec<String>,
    /// Only messages from one of these forms (empty: any).
    pub forms: Vec<String>,
    /// Only leads with at least this score.
    pub min_score: Option<i64>,
    /// Whether a lead that has been through the sequence may enter again.
    pub reenter: bool,
    /// Sequences a lead leaves when it enters this one.
    pub exits: Vec<SequenceName>,
    /// Whether a reply from the lead ends its enrollment (`[exit] on_reply`).
    pub exit_on_reply: bool,
    /// Leads whose status a Sales verdict sets to one of these enter (`[enroll] on_status`);
    /// a rule with these and no `kinds` enrolls nobody from messages.
    pub on_status: Vec<LeadStatus>,
}

/// An enrollment as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Enrollment {
    /// Id.
    pub id: EnrollmentId,
    /// The lead.
    pub lead_id: LeadId,
    /// The sequence.
    pub sequence: SequenceName,
    /// Where it stands.
    pub state: EnrollmentState,
    /// Step ids done or skipped, in order.
    pub steps_done: Vec<StepId>,
    /// The step waited for, once known.
    pub next_step: Option<StepId>,
    /// When the scheduler looks at it next.
    pub next_due_at: Option<DateTime<Utc>>,
    /// When the previous step was handled.
    pub last_at: DateTime<Utc>,
    /// Messages enqueued so far.
    pub touches: i64,
    /// Token for unsubscribe/reply addresses and Message-IDs.
    pub token: String,
    /// Why it ended early.
    pub exit_reason: Option<String>,
    /// Why it is held.
    pub error: Option<String>,
    /// When the lead entered.
    pub enrolled_at: DateTime<Utc>,
    /// An out-of-office or a `not now` holds the next step until then.
    pub paused_until: Option<DateTime<Utc>>,
}

pub(super) const ENROLLMENT_COLUMNS: &str = "id, lead_id, sequence, state, steps_done, next_step, next_due_at, last_at, touches, token, exit_reason, error, enrolled_at, paused_until";

/// An enrollment row as an [`Enrollment`]; a state this version does not know is an error
/// naming the row.
pub(super) fn enrollment_from_row(r: &AnyRow) -> Result<Enrollment, StoreError> {
    let id: i64 = r.get(0);
    let done: String = r.get(4);
    Ok(Enrollment {
        id: EnrollmentId(id),
        lead_id: LeadId(r.get(1)),
        sequence: SequenceName::new(r.get::<String, _>(2)),
        state: r
            .get::<String, _>(3)
            .parse()
            .map_err(unreadable("enrollments", id, "state"))?,
        steps_done: done.split_whitespace().map(StepId::new).collect(),
        next_step: r.get::<Option<String>, _>(5).map(StepId::new),
        next_due_at: r.get::<Option<i64>, _>(6).map(from_millis),
        last_at: from_millis(r.get(7)),
        touches: r.get(8),
        token: r.get(9),
        exit_reason: r.get(10),
        error: r.get(11),
        enrolled_at: from_millis(r.get(12)),
        paused_until: r.get::<Option<i64>, _>(13).map(from_millis),
    })
}

/// What the scheduler decided for one claimed enrollment.
#[derive(Debug, Clone)]
pub enum Settle {
    /// Look again at `due` (a delay, a window, a cap), with these steps done and this step
    /// waited for.
    Wait {
        /// Steps done or skipped so far.
        steps_done: Vec<StepId>,
        /// The step waited for.
        next_step: Option<StepId>,
        /// When to look again.
        due: DateTime<Utc>,
        /// When the last step was handled.
        last_at: DateTime<Utc>,
    },
    /// A step was rendered: enqueue it and wait for the next one (or finish).
    Send {
        /// The message.
        message: Box<Outgoing>,
        /// Steps done after this one.
        steps_done: Vec<StepId>,
        /// The next step, `None` when this was the last.
        next_step: Option<StepId>,
        /// When the next step is due.
        due: Option<DateTime<Utc>>,
        /// Cap counters to add one to: (key, period start, cap). The counts are checked
        /// again in the settling transaction, under the counters' locks, so several
        /// schedulers on one database never exceed a cap together.
        counts: Vec<(String, DateTime<Utc>, u32)>,
    },
    /// Every step is done or skipped.
    Done {
        /// Steps done or skipped.
        steps_done: Vec<StepId>,
    },
    /// The lead left the sequence.
    Exit {
        /// Why.
        reason: String,
    },
    /// A step cannot be rendered: keep the enrollment, send nothing, say why.
    Hold {
        /// The error.
        error: String,
    },
}

/// A rendered step, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The recipient lead.
    pub lead_id: LeadId,
    /// The step.
    pub step_id: StepId,
    /// `From` as written (display name and address).
    pub from: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipient.
    pub recipient: String,
    /// Message-ID without angle brackets.
    pub message_id: MessageId,
    /// The whole message.
    pub raw: Vec<u8>,
}

/// What [`Store::settle_enrollments`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Messages put into the outbox.
    pub enqueued: usize,
    /// Steps not enqueued because another scheduler used up a cap meanwhile: their
    /// enrollments are due again, and the next round decides them with the counts as they
    /// are now.
    pub capped: usize,
    /// Enrollments no longer this scheduler's to decide (their lease passed to another
    /// scheduler, or they ended meanwhile, which clears the lease): nothing done for them.
    pub lost: usize,
}

impl Store {
    /// Ends, inside a batch's transaction, the running (`active` or `held`) enrollments of the
    /// leads with these addresses: those in `sequences`, or all of them for `None`. (The
    /// scheduler checks again before every step, so a message recorded by another daemon
    /// ends the enrollment just the same.)
    pub(super) async fn end_enrollments_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        emails: &[&str],
        sequences: Option<&[SequenceName]>,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        if sequences.is_some_and(<[SequenceName]>::is_empty) {
            return Ok(0);
        }
        let mut ended = 0;
        for chunk in emails.chunks(ROWS_PER_STATEMENT) {
            let b = self.backend;
            let mut sql = format!(
                "UPDATE enrollments SET state = 'exited', exit_reason = {}, next_due_at = NULL, lease_until = 0, lease_owner = NULL, updated_at = {} \
                 WHERE state IN ('active', 'held') AND lead_id IN (SELECT id FROM leads WHERE email IN ({}))",
                params(b, 1, 1),
                params(b, 2, 1),
                params(b, 3, chunk.len())
            );
            if let Some(seqs) = sequences {
                let _ = write!(
                    sql,
                    " AND sequence IN ({})",
                    params(b, 3 + chunk.len(), seqs.len())
                );
            }
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(reason)
                .bind(now);
            for e in chunk {
                q = q.bind(*e);
            }
            for s in sequences.unwrap_or(&[]) {
                q = q.bind(s.as_str());
            }
            ended += q.execute(&mut **tx).await?.rows_affected();
        }
        Ok(ended)
    }

    /// Enrolls, inside a batch's transaction, the leads of newly recorded messages that match
    /// `rules`. Returns how many enrollments were created.
    pub(super) async fn enroll_batch(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rules: &[EnrollRule],
        new: &[&InboundRecord],
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        for rule in rules {
            let mut emails: Vec<&str> = new
                .iter()
                .filter(|r| {
                    let c = &r.classification;
                    rule.kinds.contains(&c.kind)
                        && (rule.forms.is_empty()
                            || c.form.as_ref().is_some_and(|f| rule.forms.contains(f)))
                })
                .filter_map(|r| r.classification.lead.as_ref().map(|p| p.email.as_str()))
                .collect();
            emails.sort_unstable();
            emails.dedup();
            for chunk in emails.chunks(ROWS_PER_STATEMENT) {
                total += self
                    .enroll_emails(tx, rule, chunk, now, "ingest")
                    .await?
                    .len();
            }
        }
        Ok(total)
    }

    /// One set-based enrollment of the leads with these addresses into `rule.sequence`;
    /// returns the new enrollments' lead ids.
    pub(super) async fn enroll_emails(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rule: &EnrollRule,
        emails: &[&str],
        now: i64,
        by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let b = self.backend;
        let mut n = 2;
        let mut sql = format!(
            "INSERT INTO enrollments (lead_id, sequence, state, last_at, enrolled_at, updated_at, next_due_at) \
             SELECT l.id, {seq}, 'active', {now}, {now}, {now}, {now} FROM leads l WHERE l.status <> 'review' AND l.email IN ({list})",
            seq = params(b, 1, 1),
            now = params(b, 2, 1),
            list = params(b, 3, emails.len()),
        );
        n += emails.len();
        if !rule.channels.is_empty() {
            let _ = write!(
                sql,
                " AND l.channel IN ({})",
                params(b, n + 1, rule.channels.len())
            );
            n += rule.channels.len();
        }
        if rule.min_score.is_some() {
            let _ = write!(sql, " AND l.score >= {}", params(b, n + 1, 1));
            n += 1;
        }
        let _ = write!(
            sql,
            " AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.lead_id = l.id AND e.sequence = {}{})",
            params(b, n + 1, 1),
            if rule.reenter {
                " AND e.state = 'active'"
            } else {
                ""
            }
        );
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING lead_id");
        // SQLite binds `?` in order of appearance; PostgreSQL by number: both see this order.
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .bind(rule.sequence.as_str());
        if b == Backend::Sqlite {
            // The SELECT list repeats the time four times, each its own `?`.
            q = q.bind(now).bind(now).bind(now).bind(now);
        } else {
            q = q.bind(now);
        }
        for e in emails {
            q = q.bind(*e);
        }
        for c in &rule.channels {
            q = q.bind(c.as_str());
        }
        if let Some(s) = rule.min_score {
            q = q.bind(s);
        }
        q = q.bind(rule.sequence.as_str());
        let ids: Vec<i64> = q
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let detail = serde_json::json!({ "sequence": rule.sequence, "by": by }).to_string();
        let sql = format!(
            "INSERT INTO events (lead_id, at, kind, detail) SELECT l.id, {}, 'enrolled', {} FROM leads l WHERE l.id IN ({})",
            params(b, 1, 1),
            params(b, 2, 1),
            params(b, 3, ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .bind(now)
            .bind(detail.as_str());
        for id in &ids {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
        if !rule.exits.is_empty() {
            self.exit_in(
                tx,
                &ids,
                &rule.exits,
                &format!("entered {}", rule.sequence),
                now,
            )
            .await?;
        }
        Ok(ids)
    }

    /// Ends the active enrollments of `leads` in `sequences`.
    async fn exit_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        leads: &[i64],
        sequences: &[SequenceName],
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let b = self.backend;
        let sql = format!(
            "UPDATE enrollments SET state = 'exited', exit_reason = {}, next_due_at = NULL, lease_until = 0, lease_owner = NULL, updated_at = {} \
             WHERE state = 'active' AND lead_id IN ({}) AND sequence IN ({})",
            params(b, 1, 1),
            params(b, 2, 1),
            params(b, 3, leads.len()),
            params(b, 3 + leads.len(), sequences.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .bind(reason)
            .bind(now);
        for l in leads {
            q = q.bind(*l);
        }
        for s in sequences {
            q = q.bind(s.as_str());
        }
        Ok(q.execute(&mut **tx).await?.rows_affected())
    }

    /// Enrolls one lead by hand (`leadloop enroll`). `None` when it is already in the
    /// sequence, or has been and `rule.reenter` is false.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(sequence = %rule.sequence))]
    pub async fn enroll(
        &self,
        email: &EmailAddress,
        rule: &EnrollRule,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = self
            .enroll_one_in(&mut tx, email.as_str(), rule, "hand", now)
            .await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Ends a lead's active enrollments: in `sequence`, or in all. Returns how many ended.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn unenroll(
        &self,
        lead: LeadId,
        sequence: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut sql = "UPDATE enrollments SET state = 'exited', exit_reason = 'unenrolled by hand', next_due_at = NULL, lease_until = 0, lease_owner = NULL, updated_at = $1 \
                       WHERE state IN ('active', 'held') AND lead_id = $2".to_owned();
        if sequence.is_some() {
            sql.push_str(" AND sequence = $3");
        }
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(millis(now))
            .bind(lead.0);
        if let Some(s) = sequence {
            q = q.bind(s);
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    /// A lead's enrollments, oldest first.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn enrollments(&self, lead: LeadId) -> Result<Vec<Enrollment>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE lead_id = $1 ORDER BY id"
        )))
        .bind(lead.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(enrollment_from_row).collect()
    }

    /// When an enrollment last changed; for one that has ended (exited or done), when it
    /// ended. `None` for an unknown id.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn enrollment_changed_at(
        &self,
        id: EnrollmentId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT updated_at FROM enrollments WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| from_millis(r.get(0))))
    }

    /// Claims up to `limit` due enrollments for `owner` until `now + lease`: follow-ups
    /// first, then first touches, each by due time.
    ///
    /// Each priority is one range of the partial index on due time, read in order and only as
    /// far as the batch needs: the cost follows what is claimed, not how much is due or
    /// enrolled. A row another scheduler holds an unexpired lease on is skipped; the lease is
    /// taken by an `UPDATE … WHERE lease_until < now`, which only one of two racing
    /// schedulers wins.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(limit))]
    pub async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let now_ms = millis(now);
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4));
        let mut claimed: Vec<Enrollment> = Vec::with_capacity(limit);
        for follow_up in [1_i64, 0] {
            let want = limit - claimed.len();
            if want == 0 {
                break;
            }
            // The limit is written into the statement rather than bound: SQLite re-prepares
            // a statement whose bound LIMIT changes (see the outbox's `due_rows`).
            let sql = format!(
                "UPDATE enrollments SET lease_until = $1, lease_owner = $2 \
                 WHERE id IN (SELECT id FROM enrollments WHERE follow_up = $4 AND next_due_at <= $3 AND lease_until < $3 \
                              ORDER BY next_due_at LIMIT {want}) \
                   AND lease_until < $3 \
                 RETURNING {ENROLLMENT_COLUMNS}"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(until)
                .bind(owner)
                .bind(now_ms)
                .bind(follow_up)
                .fetch_all(&self.pool)
                .await?;
            let mut batch = rows
                .iter()
                .map(enrollment_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            batch.sort_by_key(|e| e.next_due_at);
            claimed.extend(batch);
        }
        Ok(claimed)
    }

    /// The earliest due time of any enrollment (an index lookup), for the scheduler's sleep.
    ///
    /// # Errors
    /// A failed query.
    pub async fn next_enrollment_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // One index lookup per priority (the index leads with follow_up).
        let mut earliest: Option<i64> = None;
        for follow_up in [0_i64, 1] {
            let row = sqlx::query(
                "SELECT MIN(next_due_at) FROM enrollments WHERE follow_up = $1 AND next_due_at IS NOT NULL",
            )
            .bind(follow_up)
            .fetch_one(&self.pool)
            .await?;
            if let Some(t) = row.get::<Option<i64>, _>(0) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        Ok(earliest.map(from_millis))
    }

    /// Puts held enrollments back to work (at start-up and after a reload, when templates
    /// may have been fixed).
    ///
    /// # Errors
    /// A failed query.
    pub async fn release_held(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE enrollments SET state = 'active', next_due_at = $1, updated_at = $1 WHERE state = 'held'",
        )
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// How many messages the cap counters hold for each (key, period start).
    ///
    /// # Errors
    /// A failed query.
    pub async fn send_counts(
        &self,
        keys: &[(String, DateTime<Utc>)],
    ) -> Result<HashMap<(String, i64), u32>, StoreError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let conds = key_bucket_conditions(self.backend, chunk.len());
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT key, bucket, count FROM send_counts WHERE {conds}"
            )))
            .persistent(false);
            for (k, b) in chunk {
                q = q.bind(k.as_str()).bind(millis(*b));
            }
            for r in q.fetch_all(&self.pool).await? {
                let count: i64 = r.get(2);
                out.insert(
                    (r.get::<String, _>(0), r.get::<i64, _>(1)),
                    u32::try_from(count).unwrap_or(u32::MAX),
                );
            }
        }
        Ok(out)
    }
}

/// `(key = $1 AND bucket = $2) OR …` for `n` cap counters, parameters from 1.
fn key_bucket_conditions(backend: Backend, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "(key = {} AND bucket = {})",
                params(backend, 2 * i + 1, 1),
                params(backend, 2 * i + 2, 1)
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Step ids as the `steps_done` column holds them: separated by spaces, in order.
fn joined(steps: &[StepId]) -> String {
    steps
        .iter()
        .map(StepId::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a claimed enrollment ends its run of the scheduler without sending.
enum End<'a> {
    /// Every step is done or skipped.
    Done { steps_done: &'a [StepId] },
    /// The lead left the sequence.
    Exited { reason: &'a str },
    /// A step cannot be rendered.
    Held { error: &'a str },
}

impl End<'_> {
    fn state(&self) -> EnrollmentState {
        match self {
            End::Done { .. } => EnrollmentState::Done,
            End::Exited { .. } => EnrollmentState::Exited,
            End::Held { .. } => EnrollmentState::Held,
        }
    }
}

/// A claimed enrollment and the scheduler that claimed it: every update below applies only
/// while `owner` still holds the lease, and says whether it did.
struct Lease<'a> {
    id: EnrollmentId,
    owner: &'a str,
}

impl Lease<'_> {
    /// Look again at `due`, with these steps done and this step waited for.
    async fn wait_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        steps_done: &[StepId],
        next_step: Option<&StepId>,
        due: DateTime<Utc>,
        last_at: DateTime<Utc>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE enrollments SET steps_done = $1, next_step = $2, next_due_at = $3, last_at = $4, \
               lease_until = 0, lease_owner = NULL, error = NULL, updated_at = $5 \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(joined(steps_done))
        .bind(next_step.map(StepId::as_str))
        .bind(millis(due))
        .bind(millis(last_at))
        .bind(now_ms)
        .bind(self.id.0)
        .bind(self.owner)
        .execute(&mut *tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Gives the enrollment back untouched and due, for the next round to decide again.
    async fn release_in(&self, tx: &mut sqlx::AnyConnection) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE enrollments SET lease_until = 0, lease_owner = NULL WHERE id = $1 AND lease_owner = $2",
        )
        .bind(self.id.0)
        .bind(self.owner)
        .execute(&mut *tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A step was sent: count the touch, go on to `next_step` (active) or finish (done).
    async fn advance_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        steps_done: &[StepId],
        next_step: Option<&StepId>,
        due: Option<DateTime<Utc>>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let state = if next_step.is_some() {
            EnrollmentState::Active
        } else {
            EnrollmentState::Done
        };
        let r = sqlx::query(
            "UPDATE enrollments SET steps_done = $1, next_step = $2, next_due_at = $3, last_at = $4, \
               touches = touches + 1, follow_up = 1, state = $5, lease_until = 0, lease_owner = NULL, error = NULL, updated_at = $4 \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(joined(steps_done))
        .bind(next_step.map(StepId::as_str))
        .bind(due.map(millis))
        .bind(now_ms)
        .bind(state.as_str())
        .bind(self.id.0)
        .bind(self.owner)
        .execute(&mut *tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends the run: done, exited or held; an exit or a hold is an event on the lead's
    /// timeline.
    async fn end_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        end: &End<'_>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (done, error, reason) = match end {
            End::Done { steps_done } => (Some(joined(steps_done)), None, None),
            End::Exited { reason } => (None, None, Some(*reason)),
            End::Held { error } => (None, Some(*error), None),
        };
        let state = end.state();
        let r = sqlx::query(
            "UPDATE enrollments SET state = $1, steps_done = COALESCE($2, steps_done), next_due_at = NULL, \
               error = $3, exit_reason = $4, lease_until = 0, lease_owner = NULL, updated_at = $5 \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(state.as_str())
        .bind(done)
        .bind(error)
        .bind(reason)
        .bind(now_ms)
        .bind(self.id.0)
        .bind(self.owner)
        .execute(&mut *tx)
        .await?;
        let kept = r.rows_affected() > 0;
        if kept && state != EnrollmentState::Done {
            let detail =
                serde_json::json!({ "enrollment": self.id, "state": state, "reason": reason.or(error) })
                    .to_string();
            sqlx::query(
                "INSERT INTO events (lead_id, at, kind, detail) SELECT lead_id, $1, $2, $3 FROM enrollments WHERE id = $4",
            )
            .bind(now_ms)
            .bind(state.as_str())
            .bind(detail)
            .bind(self.id.0)
            .execute(&mut *tx)
            .await?;
        }
        Ok(kept)
    }
}

/// Puts a sent step's message into the outbox, keyed by (enrollment, step); whether it is new
/// (a step enqueued before is not enqueued again).
async fn enqueue_step_in(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    enrollment: EnrollmentId,
    message: &Outgoing,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let new = store
        .enqueue_in(
            tx,
            &super::NewOutboxMessage {
                lead_id: Some(message.lead_id),
                enrollment_id: Some(enrollment),
                step_id: Some(message.step_id.clone()),
                from: message.from.clone(),
                envelope_from: message.envelope_from.clone(),
                recipient: message.recipient.clone(),
                message_id: message.message_id.clone(),
                raw: message.raw.clone(),
                due_at: now,
            },
            now,
        )
        .await?;
    Ok(new.is_some())
}

/// The key [`Store::send_counts`] returns for a counter.
pub fn count_key(key: &str, bucket: DateTime<Utc>) -> (String, i64) {
    (key.to_owned(), millis(bucket))
}

impl Store {
    /// Records what the scheduler decided for the enrollments it claimed, in one transaction:
    /// each enrollment advances and, for [`Settle::Send`], its message enters the outbox,
    /// keyed by (enrollment, step), together — a crash leaves both or neither.
    ///
    /// An enrollment whose lease `owner` no longer holds is left alone and its message is not
    /// enqueued ([`Settled::lost`]): the scheduler that holds it now decides.
    ///
    /// # Errors
    /// A failed query; then nothing is recorded and the leases run out on their own.
    #[instrument(skip_all, fields(items = items.len()))]
    pub async fn settle_enrollments(
        &self,
        owner: &str,
        items: &[(EnrollmentId, Settle)],
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let now_ms = millis(now);
        let mut out = Settled::default();
        let mut counts: HashMap<(String, i64), i64> = HashMap::new();
        let mut tx = self.pool.begin().await?;
        let mut used = self.lock_send_counts_in(&mut tx, items).await?;
        for (id, settle) in items {
            let lease = Lease { id: *id, owner };
            let kept = match settle {
                Settle::Wait {
                    steps_done,
                    next_step,
                    due,
                    last_at,
                } => {
                    lease
                        .wait_in(
                            &mut tx,
                            steps_done,
                            next_step.as_ref(),
                            *due,
                            *last_at,
                            now_ms,
                        )
                        .await?
                }
                Settle::Send {
                    message,
                    steps_done,
                    next_step,
                    due,
                    counts: keys,
                } => {
                    let full = keys.iter().any(|(k, b, cap)| {
                        used.get(&(k.clone(), millis(*b))).copied().unwrap_or(0) >= i64::from(*cap)
                    });
                    if full {
                        out.capped += 1;
                        lease.release_in(&mut tx).await?;
                        continue;
                    }
                    let kept = lease
                        .advance_in(&mut tx, steps_done, next_step.as_ref(), *due, now_ms)
                        .await?;
                    if kept && enqueue_step_in(self, &mut tx, *id, message, now).await? {
                        out.enqueued += 1;
                        for (k, b, _) in keys {
                            let key = (k.clone(), millis(*b));
                            *used.entry(key.clone()).or_default() += 1;
                            *counts.entry(key).or_default() += 1;
                        }
                    }
                    kept
                }
                Settle::Done { steps_done } => {
                    let end = End::Done { steps_done };
                    lease.end_in(&mut tx, &end, now_ms).await?
                }
                Settle::Exit { reason } => {
                    let end = End::Exited { reason };
                    lease.end_in(&mut tx, &end, now_ms).await?
                }
                Settle::Hold { error } => {
                    let end = End::Held { error };
                    lease.end_in(&mut tx, &end, now_ms).await?
                }
            };
            out.lost += usize::from(!kept);
        }
        self.add_send_counts_in(&mut tx, counts).await?;
        tx.commit().await?;
        if out.enqueued > 0 {
            self.wake_sender();
        }
        Ok(out)
    }

    /// The cap counters the batch's messages draw on, read under lock inside the settling
    /// transaction: created at zero where missing, then read `FOR UPDATE` on PostgreSQL (in
    /// key order, so two schedulers lock them in the same order and never deadlock); SQLite's
    /// writer lock, taken by the insert, does the same. Another scheduler settling a batch
    /// that draws on the same counters waits for this transaction.
    async fn lock_send_counts_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        items: &[(EnrollmentId, Settle)],
    ) -> Result<HashMap<(String, i64), i64>, StoreError> {
        let mut keys: Vec<(String, i64)> = items
            .iter()
            .filter_map(|(_, s)| match s {
                Settle::Send { counts, .. } => Some(counts),
                _ => None,
            })
            .flatten()
            .map(|(k, b, _)| (k.clone(), millis(*b)))
            .collect();
        keys.sort();
        keys.dedup();
        let mut used = HashMap::with_capacity(keys.len());
        let lock = match self.backend {
            Backend::Postgres => " ORDER BY key, bucket FOR UPDATE",
            Backend::Sqlite => "",
        };
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO send_counts (key, bucket, count) VALUES {} ON CONFLICT (key, bucket) DO NOTHING",
                super::values_list(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (k, b) in chunk {
                q = q.bind(k.as_str()).bind(*b).bind(0_i64);
            }
            q.execute(&mut *tx).await?;
            let conds = key_bucket_conditions(self.backend, chunk.len());
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT key, bucket, count FROM send_counts WHERE {conds}{lock}"
            )))
            .persistent(false);
            for (k, b) in chunk {
                q = q.bind(k.as_str()).bind(*b);
            }
            for r in q.fetch_all(&mut *tx).await? {
                used.insert(
                    (r.get::<String, _>(0), r.get::<i64, _>(1)),
                    r.get::<i64, _>(2),
                );
            }
        }
        Ok(used)
    }

    /// Adds to the cap counters, a chunk of (key, period start) per statement.
    async fn add_send_counts_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        counts: HashMap<(String, i64), i64>,
    ) -> Result<(), StoreError> {
        let counts: Vec<((String, i64), i64)> = counts.into_iter().collect();
        for chunk in counts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO send_counts (key, bucket, count) VALUES {} \
                 ON CONFLICT (key, bucket) DO UPDATE SET count = send_counts.count + excluded.count",
                super::values_list(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for ((k, b), n) in chunk {
                q = q.bind(k.as_str()).bind(*b).bind(*n);
            }
            q.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Leads by id, for the scheduler.
    ///
    /// # Errors
    /// A failed query.
    pub async fn leads_by_id(&self, ids: &[LeadId]) -> Result<HashMap<LeadId, Lead>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {} FROM leads l WHERE l.id IN ({})",
                super::LEAD_COLUMNS,
                params(self.backend, 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                let lead = super::lead_from_row(&r)?;
                out.insert(lead.id, lead);
            }
        }
        Ok(out)
    }

    /// For each address, the latest reply and unsubscribe message recorded from it: what ends
    /// an enrollment.
    ///
    /// # Errors
    /// A failed query.
    pub async fn stop_messages(
        &self,
        emails: &[&str],
    ) -> Result<HashMap<String, Vec<(MessageKind, DateTime<Utc>)>>, StoreError> {
        let mut out: HashMap<String, Vec<(MessageKind, DateTime<Utc>)>> = HashMap::new();
        for chunk in emails.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT lead_email, kind, MAX(recorded_at) FROM inbound_messages \
                 WHERE lead_email IN ({}) AND kind IN ('reply', 'unsubscribe') GROUP BY lead_email, kind",
                params(self.backend, 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for e in chunk {
                q = q.bind(*e);
            }
            for r in q.fetch_all(&self.pool).await? {
                let kind: String = r.get(1);
                if let Ok(kind) = kind.parse::<MessageKind>() {
                    out.entry(r.get(0))
                        .or_default()
                        .push((kind, from_millis(r.get(2))));
                }
            }
        }
        Ok(out)
    }
}
