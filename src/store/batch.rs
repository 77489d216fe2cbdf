//! Recording ingest's batches: the messages, the leads they create or update, what they change
//! for leads already known, and the mailbox cursor, in one transaction.
//!
//! The store decides nothing about leads here: which messages make a lead is the message
//! kind's ([`MessageKind::creates_lead`]), what a reply or an unsubscribe request changes is
//! the caller's ([`LeadChange`]), and which leads enter a sequence is the [`EnrollRule`]s'.
//! What the store adds is that all of it happens for new messages only, together.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::sales::{Notification, Origin};
use super::{
    Backend, EnrollRule, ROWS_PER_STATEMENT, Store, StoreError, Suppression, millis, outbox,
    params, values_list,
};
use crate::domain::{
    Bounce, Classification, EmailAddress, HandoffKind, LeadStatus, Person, SequenceName, Verdict,
};

/// One inbound message, classified and ready to record.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    /// IMAP UID, `None` for Maildir files.
    pub uid: Option<u32>,
    /// `mid:<Message-ID>`, or `sha256:<hex>` of the bytes when there is no Message-ID: the same
    /// message seen again (a UIDVALIDITY change, a second copy) is recorded once.
    pub dedupe_key: String,
    /// Size in bytes as the server reported it.
    pub size: u64,
    /// The classifier's decision.
    pub classification: Classification,
}

/// A batch of messages from one mailbox and the cursor to store with them.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    /// The mailbox's stable name (`imap://user@host/INBOX`, `maildir:/path`).
    pub mailbox: &'a str,
    /// UIDVALIDITY the UIDs belong to (0 for Maildir).
    pub uidvalidity: u32,
    /// The new cursor, when the source has UIDs.
    pub last_uid: Option<u32>,
    /// The messages.
    pub records: &'a [InboundRecord],
    /// When they are recorded.
    pub now: DateTime<Utc>,
    /// Sequences new leads enter, in the same transaction.
    pub enroll: &'a [EnrollRule],
    /// What the messages change for their leads, in the same transaction (see [`LeadChange`]).
    pub changes: &'a [LeadChange],
}

/// What recording one message changes for its lead beyond the lead's row: decided by the
/// caller from the classification (ingest's lead rules), applied by [`Store::record_batch`]
/// inside the batch's transaction and only when the message is new to the store, so a
/// replayed batch changes nothing a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadChange {
    /// The message it follows from: an index into [`Batch::records`].
    pub record: usize,
    /// The lead's address.
    pub lead: EmailAddress,
    /// What changes.
    pub change: Change,
}

impl LeadChange {
    /// A change to `lead` that follows from no inbound message: a person gave it, on the
    /// command line or in the web view.
    pub fn by_hand(lead: &crate::domain::Lead, change: Change) -> LeadChange {
        LeadChange {
            record: 0,
            lead: lead.email.clone(),
            change,
        }
    }
}

/// One kind of [`LeadChange`]. A batch's changes are applied kind by kind, in this order:
/// enrollments ending (groups of the same sequences and reason in the order they first occur),
/// suppressions, statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The lead's running (`active` or `held`) enrollments end: those in `sequences`, or all
    /// of them for `None`.
    EndEnrollments {
        /// Only enrollments in these sequences.
        sequences: Option<Vec<SequenceName>>,
        /// Why, as the enrollment records it.
        reason: String,
    },
    /// The lead's address is suppressed (an address suppressed already keeps its first
    /// reason).
    Suppress {
        /// Why, as the suppression list records it.
        reason: String,
    },
    /// The lead, if the address is one, takes this status.
    Status(LeadStatus),
    /// A `new` lead becomes `engaged` (a lead already judged keeps its status).
    Engaged,
    /// The lead's active enrollments hold their next step until then (an out-of-office).
    Pause {
        /// Until when.
        until: DateTime<Utc>,
        /// Why, as the timeline records it.
        reason: String,
    },
    /// A person lifts the pause of the lead's paused enrollments early: each goes on as if it
    /// had not been paused (a step whose time has passed is due now).
    Resume {
        /// Who, as the timeline records it.
        by: String,
    },
    /// Sales said `not now`: pause until then, or enroll again then in the last sequence.
    NotNow {
        /// Until when.
        until: DateTime<Utc>,
    },
    /// Tell the lead's owner (a hand-off, rendered and sent by the hand-off worker).
    Handoff {
        /// Why Sales is told.
        why: String,
    },
    /// Answer a Sales person whose answer held no verdict leadloop understood.
    Explain {
        /// The Sales person.
        to: EmailAddress,
        /// What was not understood.
        problem: String,
    },
    /// Record Sales' verdict on the lead (its consequences are changes of their own).
    Verdict {
        /// The verdict.
        verdict: Verdict,
        /// Who gave it.
        by: String,
        /// `mail` or `cli`.
        source: &'static str,
    },
    /// Enroll the lead in a sequence now.
    Enroll {
        /// The sequence and how it is entered.
        rule: EnrollRule,
        /// Who or what enrolled it, as the timeline records it.
        by: String,
    },
    /// The lead's owner becomes this address.
    Owner {
        /// The new owner.
        owner: EmailAddress,
        /// Who decided, as the timeline records it.
        by: String,
    },
    /// A lead without an owner gets the next owner of a round-robin route.
    AssignNext {
        /// The route's name (its turn counter).
        route: String,
        /// Its owners, in turn order.
        owners: Vec<EmailAddress>,
    },
    /// Another address of the lead: mail from it reaches the same lead.
    Alias(EmailAddress),
    /// An entry on the lead's timeline that is not a message (a soft bounce counted, a bounce
    /// of a message naming several leads).
    Event {
        /// The entry's kind.
        kind: &'static str,
        /// What it says.
        detail: serde_json::Value,
    },
}

impl Change {
    /// Whether the change queues a notification for the hand-off worker.
    pub fn notifies(&self) -> bool {
        matches!(self, Change::Handoff { .. } | Change::Explain { .. })
    }
}

/// What [`Store::record_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Messages recorded for the first time.
    pub recorded: usize,
    /// Which they are: indexes into [`Batch::records`], in order (the metrics count them by
    /// kind).
    pub new_records: Vec<usize>,
    /// Leads that did not exist before this batch.
    pub leads_created: usize,
    /// Messages skipped because they were already recorded.
    pub duplicates: usize,
    /// Leads created or updated.
    pub leads_touched: usize,
    /// Enrollments created.
    pub enrolled: usize,
    /// Notifications queued for our own people.
    pub notifications: usize,
}

/// What [`Store::apply_changes_in`] did beyond its writes: what other tasks should look at.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Applied {
    /// Notifications queued for the hand-off worker.
    pub notifications: usize,
    /// Enrollments made (the scheduler should look).
    pub enrolled: usize,
}

/// The lead a batch creates or updates, merged over all its messages in the batch.
#[derive(Debug, Clone)]
struct LeadUpsert {
    email: String,
    name: Option<String>,
    company: Option<String>,
    phone: Option<String>,
    channel: String,
    owner: Option<String>,
    form: Option<String>,
    fields: String,
    /// Every message that makes the lead here waits for review: it is recorded as `review`.
    review: bool,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Why, and in which sequences (all for `None`), a group of leads' enrollments end.
type ExitKey<'a> = (&'a str, Option<&'a [SequenceName]>);

impl Store {
    /// Records a batch of classified messages, the leads they create or update, the changes
    /// the caller decided for them, and the mailbox cursor, in one transaction.
    ///
    /// Messages already recorded (same dedupe key, or same mailbox/UIDVALIDITY/UID) are skipped
    /// and touch no lead, so replaying a batch after a crash is harmless. The messages are
    /// inserted first and the database says which were new (by count, or `RETURNING`), which
    /// stays exact when several daemons write to one PostgreSQL database.
    ///
    /// # Errors
    /// A failed query; nothing of the batch is then recorded.
    #[instrument(skip_all, fields(mailbox = batch.mailbox, messages = batch.records.len()))]
    pub async fn record_batch(&self, batch: &Batch<'_>) -> Result<BatchOutcome, StoreError> {
        let now = millis(batch.now);
        let mut tx = self.pool.begin().await?;
        let inserted = self.insert_messages(&mut tx, batch, now).await?;
        let new = first_copies(batch.records, &inserted);
        let new_leads: Vec<&InboundRecord> = new
            .iter()
            .map(|&i| &batch.records[i])
            .filter(|r| creates_lead(r).is_some())
            .collect();
        let upserts = lead_upserts(&new_leads);
        let leads_created = self.upsert_leads(&mut tx, &upserts, now).await?;
        if let Some(last_uid) = batch.last_uid {
            advance_cursor(&mut tx, batch, last_uid, now).await?;
        }
        let applied = self
            .apply_changes_in(&mut tx, batch.changes, batch.records, &new, batch.now)
            .await?;
        if self.scorer().is_some() {
            // Every lead a new message or a change touched, scored before `min_score`
            // enrollment reads the score.
            let mut touched: Vec<&str> = upserts.iter().map(|u| u.email.as_str()).collect();
            touched.extend(
                new.iter()
                    .filter_map(|&i| batch.records[i].classification.lead.as_ref())
                    .map(|p| p.email.as_str()),
            );
            touched.extend(batch.changes.iter().map(|c| c.lead.as_str()));
            self.rescore_in(&mut tx, &touched, batch.now).await?;
        }
        let enrolled = if batch.enroll.is_empty() || new_leads.is_empty() {
            0
        } else {
            self.enroll_batch(&mut tx, batch.enroll, &new_leads, now)
                .await?
        };
        tx.commit().await?;
        self.ingest_batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if applied.notifications > 0 {
            self.wake_handoffs();
        }

        Ok(BatchOutcome {
            recorded: inserted.len(),
            new_records: new,
            leads_created,
            duplicates: batch.records.len() - inserted.len(),
            leads_touched: upserts.len(),
            enrolled: enrolled + applied.enrolled,
            notifications: applied.notifications,
        })
    }

    /// Inserts the batch's messages, skipping those already recorded; the dedupe keys of the
    /// ones inserted.
    async fn insert_messages(
        &self,
        tx: &mut Tx,
        batch: &Batch<'_>,
        now: i64,
    ) -> Result<HashSet<String>, StoreError> {
        let mut inserted: HashSet<String> = HashSet::with_capacity(batch.records.len());
        for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
            if self.backend == Backend::Sqlite {
                // sqlx hands each row of a result from SQLite's thread to ours one at a
                // time, so `RETURNING` a key per message costs a thread wake-up per message.
                // The common case, every message new, is told by the count alone; a chunk
                // with any already recorded message is undone and inserted again below,
                // returning what was new.
                let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
                let added = self
                    .insert_inbound(batch, chunk, now, false)
                    .execute(&mut *savepoint)
                    .await?
                    .rows_affected();
                if usize::try_from(added).is_ok_and(|n| n == chunk.len()) {
                    savepoint.commit().await?;
                    inserted.extend(chunk.iter().map(|r| r.dedupe_key.clone()));
                    continue;
                }
                savepoint.rollback().await?;
            }
            for row in self
                .insert_inbound(batch, chunk, now, true)
                .fetch_all(&mut **tx)
                .await?
            {
                inserted.insert(row.get::<String, _>(0));
            }
        }
        Ok(inserted)
    }

    /// The insert of one chunk of a batch's messages; an already recorded one is skipped.
    fn insert_inbound<'q>(
        &self,
        batch: &'q Batch<'_>,
        chunk: &'q [InboundRecord],
        now: i64,
        returning: bool,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        let sql = format!(
            "INSERT INTO inbound_messages (mailbox, uidvalidity, uid, dedupe_key, message_id, kind, reason, lead_email, subject, size, sent_at, recorded_at, detail) \
             VALUES {} ON CONFLICT DO NOTHING{}",
            values_list(self.backend, chunk.len(), 13),
            if returning {
                " RETURNING dedupe_key"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in chunk {
            let c = &r.classification;
            q = q
                .bind(batch.mailbox)
                .bind(i64::from(batch.uidvalidity))
                .bind(r.uid.map(i64::from))
                .bind(r.dedupe_key.as_str())
                .bind(c.message_id.as_deref())
                .bind(c.kind.as_str())
                .bind(c.reason.as_deref())
                .bind(c.lead.as_ref().map(|p| p.email.as_str()))
                .bind(c.subject.as_deref())
                .bind(i64::try_from(r.size).unwrap_or(i64::MAX))
                .bind(c.date.map(millis))
                .bind(now)
                .bind(inbound_detail(c));
        }
        q
    }

    /// One upsert per distinct person, a chunk of them per statement: a lead's first values
    /// are kept, its latest non-empty form fields win. Returns how many leads are new.
    async fn upsert_leads(
        &self,
        tx: &mut Tx,
        upserts: &[LeadUpsert],
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut created = 0;
        for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
            // Neither database says which rows of an upsert were inserted without returning a
            // row each; counting the known ones first is one index lookup per address.
            let sql = format!(
                "SELECT COUNT(*) FROM leads WHERE email IN ({})",
                params(self.backend, 1, chunk.len())
            );
            let mut known = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql)).persistent(false);
            for u in chunk {
                known = known.bind(u.email.as_str());
            }
            let known = usize::try_from(known.fetch_one(&mut **tx).await?).unwrap_or(0);
            created += chunk.len().saturating_sub(known);
            let sql = format!(
                "INSERT INTO leads (email, name, company, phone, channel, owner, form, fields, status, created_at, updated_at) VALUES {} \
                 ON CONFLICT (email) DO UPDATE SET \
                   name = COALESCE(leads.name, excluded.name), \
                   company = COALESCE(leads.company, excluded.company), \
                   phone = COALESCE(leads.phone, excluded.phone), \
                   owner = COALESCE(leads.owner, excluded.owner), \
                   form = COALESCE(leads.form, excluded.form), \
                   fields = CASE WHEN excluded.fields = '{{}}' THEN leads.fields ELSE excluded.fields END, \
                   updated_at = excluded.updated_at",
                values_list(self.backend, chunk.len(), 11)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for u in chunk {
                q = q
                    .bind(u.email.as_str())
                    .bind(u.name.as_deref())
                    .bind(u.company.as_deref())
                    .bind(u.phone.as_deref())
                    .bind(u.channel.as_str())
                    .bind(u.owner.as_deref())
                    .bind(u.form.as_deref())
                    .bind(u.fields.as_str())
                    // A lead that exists keeps its status: only a new one starts in review.
                    .bind(if u.review {
                        LeadStatus::Review.as_str()
                    } else {
                        LeadStatus::New.as_str()
                    })
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(created)
    }

    /// Applies the changes that follow from the batch's new messages (`new`: indexes into
    /// `records`; with no records, as from the CLI, every change applies). Returns how many
    /// notifications were queued for the hand-off worker.
    ///
    /// An unsubscribe request takes effect with the message that asked: the caller's
    /// suppression and status are written in the same transaction as the message, so no step
    /// already in the outbox or scheduled later goes out after it was recorded (the sender
    /// checks suppressions right before every send). The grouped kinds (enrollments ending,
    /// suppressions, statuses) come first, set-based; the rarer per-lead changes (Sales'
    /// verdicts and what follows, pauses, hand-offs, owners) after them, in the order given.
    pub(super) async fn apply_changes_in(
        &self,
        tx: &mut Tx,
        changes: &[LeadChange],
        records: &[InboundRecord],
        new: &[usize],
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        if changes.is_empty() {
            return Ok(applied);
        }
        let now_ms = millis(now);
        let new: HashSet<usize> = new.iter().copied().collect();
        let applies = |c: &&LeadChange| records.is_empty() || new.contains(&c.record);
        let key = |c: &LeadChange| records.get(c.record).map(|r| r.dedupe_key.as_str());
        // Leads whose enrollments end, per (reason, sequences), in the order first seen.
        let mut exits: Vec<(ExitKey<'_>, Vec<&str>)> = Vec::new();
        let mut suppress: BTreeMap<&str, &str> = BTreeMap::new();
        let mut statuses: BTreeMap<LeadStatus, Vec<&str>> = BTreeMap::new();
        let mut each: Vec<&LeadChange> = Vec::new();
        for c in changes.iter().filter(applies) {
            let lead = c.lead.as_str();
            match &c.change {
                Change::EndEnrollments { sequences, reason } => {
                    let key = (reason.as_str(), sequences.as_deref());
                    match exits.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, leads)) => leads.push(lead),
                        None => exits.push((key, vec![lead])),
                    }
                }
                Change::Suppress { reason } => {
                    suppress.entry(lead).or_insert(reason.as_str());
                }
                Change::Status(status) => statuses.entry(*status).or_default().push(lead),
                _ => each.push(c),
            }
        }
        for ((reason, sequences), mut leads) in exits {
            leads.sort_unstable();
            leads.dedup();
            self.end_enrollments_in(tx, &leads, sequences, reason, now_ms)
                .await?;
        }
        for (lead, reason) in suppress {
            let entry = Suppression::Address(lead.to_owned());
            outbox::suppress_in(tx, &entry, reason, now).await?;
        }
        for (status, mut leads) in statuses {
            leads.sort_unstable();
            leads.dedup();
            self.set_statuses_in(tx, &leads, status, now_ms).await?;
        }
        for c in each {
            let lead = c.lead.as_str();
            match &c.change {
                Change::Engaged => {
                    sqlx::query(
                        "UPDATE leads SET status = 'engaged', updated_at = $1 WHERE email = $2 AND status = 'new'",
                    )
                    .bind(now_ms)
                    .bind(lead)
                    .execute(&mut **tx)
                    .await?;
                }
                Change::Pause { until, reason } => {
                    self.pause_in(tx, lead, *until, reason, now).await?;
                }
                Change::Resume { by } => {
                    self.resume_in(tx, lead, by, now).await?;
                }
                Change::NotNow { until } => self.not_now_in(tx, lead, *until, now).await?,
                Change::Handoff { why } => {
                    let n = Notification {
                        kind: HandoffKind::Handoff,
                        recipient: None,
                        why,
                        inbound_key: key(c),
                    };
                    self.queue_handoff_in(tx, lead, n, now).await?;
                    applied.notifications += 1;
                }
                Change::Explain { to, problem } => {
                    let n = Notification {
                        kind: HandoffKind::Explain,
                        recipient: Some(to.as_str()),
                        why: problem,
                        inbound_key: key(c),
                    };
                    self.queue_handoff_in(tx, lead, n, now).await?;
                    applied.notifications += 1;
                }
                Change::Verdict {
                    verdict,
                    by,
                    source,
                } => {
                    let origin = Origin {
                        by,
                        source,
                        inbound_key: key(c),
                    };
                    self.record_verdict_in(tx, lead, verdict, origin, now)
                        .await?;
                }
                Change::Enroll { rule, by } => {
                    if self.enroll_one_in(tx, lead, rule, by, now).await? {
                        applied.enrolled += 1;
                    }
                }
                Change::Owner { owner, by } => {
                    self.set_owner_in(tx, lead, owner.as_str(), false, by, now)
                        .await?;
                }
                Change::AssignNext { route, owners } => {
                    self.assign_next_in(tx, lead, route, owners, now).await?;
                }
                Change::Alias(alias) => self.add_alias_in(tx, lead, alias.as_str(), now).await?,
                Change::Event { kind, detail } => {
                    super::sales::event_in(tx, lead, kind, detail, now).await?;
                }
                Change::EndEnrollments { .. } | Change::Suppress { .. } | Change::Status(_) => {}
            }
        }
        Ok(applied)
    }

    /// Sets the status of the leads with these addresses.
    async fn set_statuses_in(
        &self,
        tx: &mut Tx,
        emails: &[&str],
        status: LeadStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        for chunk in emails.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE leads SET status = {}, updated_at = {} WHERE email IN ({})",
                params(self.backend, 1, 1),
                params(self.backend, 2, 1),
                params(self.backend, 3, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(status.as_str())
                .bind(now);
            for e in chunk {
                q = q.bind(*e);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// Never moves a cursor backwards within one UIDVALIDITY, even if two daemons race.
async fn advance_cursor(
    tx: &mut Tx,
    batch: &Batch<'_>,
    last_uid: u32,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
           last_uid = excluded.last_uid, updated_at = excluded.updated_at, \
           tidied_uid = CASE WHEN mailbox_state.uidvalidity <> excluded.uidvalidity THEN 0 ELSE mailbox_state.tidied_uid END \
         WHERE mailbox_state.uidvalidity <> excluded.uidvalidity OR mailbox_state.last_uid < excluded.last_uid",
    )
    .bind(batch.mailbox)
    .bind(i64::from(batch.uidvalidity))
    .bind(i64::from(last_uid))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The indexes of the records this batch recorded for the first time. A key the batch holds
/// twice was inserted once: its first copy counts.
fn first_copies(records: &[InboundRecord], inserted: &HashSet<String>) -> Vec<usize> {
    let mut counted: HashSet<&str> = HashSet::with_capacity(inserted.len());
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| inserted.contains(&r.dedupe_key) && counted.insert(r.dedupe_key.as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// The person a record makes or updates a lead for, if its kind makes leads
/// ([`crate::domain::MessageKind::creates_lead`]).
fn creates_lead(r: &InboundRecord) -> Option<&Person> {
    let c = &r.classification;
    c.lead.as_ref().filter(|_| c.kind.creates_lead())
}

/// One upsert per distinct person among the new messages, merged in message order.
fn lead_upserts(new_leads: &[&InboundRecord]) -> Vec<LeadUpsert> {
    let mut upserts: Vec<LeadUpsert> = Vec::new();
    let mut by_email: HashMap<&str, usize> = HashMap::new();
    for r in new_leads {
        let Some(person) = creates_lead(r) else {
            continue;
        };
        let c = &r.classification;
        let fields = if c.fields.is_empty() {
            "{}".to_owned()
        } else {
            serde_json::to_string(&c.fields).unwrap_or_else(|_| "{}".to_owned())
        };
        match by_email.get(person.email.as_str()) {
            Some(&i) => {
                let u = &mut upserts[i];
                u.name = u.name.take().or_else(|| person.name.clone());
                u.company = u.company.take().or_else(|| person.company.clone());
                u.phone = u.phone.take().or_else(|| person.phone.clone());
                u.owner = u
                    .owner
                    .take()
                    .or_else(|| c.owner.as_ref().map(|o| o.to_string()));
                u.form = u.form.take().or_else(|| c.form.clone());
                if fields != "{}" {
                    u.fields = fields;
                }
                u.review &= c.review.is_some();
            }
            None => {
                by_email.insert(person.email.as_str(), upserts.len());
                upserts.push(LeadUpsert {
                    email: person.email.to_string(),
                    name: person.name.clone(),
                    company: person.company.clone(),
                    phone: person.phone.clone(),
                    channel: c.channel.clone().unwrap_or_else(|| "direct".to_owned()),
                    owner: c.owner.as_ref().map(|o| o.to_string()),
                    form: c.form.clone(),
                    fields,
                    review: c.review.is_some(),
                });
            }
        }
    }
    upserts
}

/// The part of a decision that has no column of its own, without empty values: stored with
/// every message, so it is kept small.
fn inbound_detail(c: &Classification) -> String {
    /// The stored shape: absent values are left out, keys in alphabetical order. Serialised
    /// straight from the classification (no intermediate `serde_json::Value` tree): this runs
    /// once per ingested message.
    #[derive(Serialize)]
    struct Detail<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        alias: Option<&'a EmailAddress>,
        #[serde(skip_serializing_if = "Option::is_none")]
        bounce: Option<&'a Bounce>,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<&'a str>,
        evidence: &'a [String],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        fields: &'a BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        form: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        lead: Option<&'a Person>,
        #[serde(skip_serializing_if = "Option::is_none")]
        original_text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a EmailAddress>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        references: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        return_date: Option<chrono::NaiveDate>,
        #[serde(skip_serializing_if = "Option::is_none")]
        review: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
    }
    serde_json::to_string(&Detail {
        alias: c.alias.as_ref(),
        bounce: c.bounce.as_ref(),
        channel: c.channel.as_deref(),
        evidence: &c.evidence,
        fields: &c.fields,
        form: c.form.as_deref(),
        lead: c.lead.as_ref(),
        original_text: c.original_text.as_deref(),
        owner: c.owner.as_ref(),
        references: &c.references,
        return_date: c.return_date,
        review: c.review.as_deref(),
        text: c.text.as_deref(),
    })
    .unwrap_or_else(|_| "{}".to_owned())
}
