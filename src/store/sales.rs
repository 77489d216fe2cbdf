//! The loop back from Sales, as stored: which lead an answer, a bounce or an auto-reply is
//! about, the lead changes Sales' verdicts and out-of-office replies cause, and the queue of
//! notifications (hand-offs, explanations) to our own people.
//!
//! What each message changes is decided in `actions`; this module only finds what it asks for
//! and writes what it decided, in the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{
    EnrollRule, LeadChange, NewOutboxMessage, ROWS_PER_STATEMENT, Store, StoreError, from_millis,
    millis, params, unreadable,
};
use crate::domain::{
    EmailAddress, HandoffKind, HandoffState, LeadId, LeadStatus, Verdict, VerdictKind,
    VerdictTarget,
};

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The timeline kind of a soft bounce counted toward `[policy] soft_bounce_limit`.
pub const SOFT_BOUNCE: &str = "soft_bounce";

/// A lead found by one of its addresses, with what the lead actions need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLead {
    /// Id.
    pub id: LeadId,
    /// The lead's own address (not the alias it was found by).
    pub email: EmailAddress,
    /// Its owner, when it has one.
    pub owner: Option<String>,
    /// Its status.
    pub status: LeadStatus,
    /// Whether leadloop has sent it a message (a step accepted by the server).
    pub mailed: bool,
}

/// One of our messages, found by its Message-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurMessage {
    /// The lead it went to: `None` for messages to our own people (hand-offs) and tests.
    pub to_lead: Option<LeadId>,
    /// For a notification to our own people: what it was and the lead it was about.
    pub about: Option<(HandoffKind, LeadId)>,
}

/// A notification to our own people, waiting for the hand-off worker.
#[derive(Debug, Clone)]
pub struct PendingHandoff {
    /// Row id.
    pub id: i64,
    /// What it is.
    pub kind: HandoffKind,
    /// The lead it is about.
    pub lead_id: LeadId,
    /// For an explanation: who gets it.
    pub recipient: Option<String>,
    /// Why Sales is told, or what was not understood.
    pub why: String,
    /// The message that caused it, when one did.
    pub cause: Option<Cause>,
    /// Reply-To token.
    pub token: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The inbound message behind a notification.
#[derive(Debug, Clone)]
pub struct Cause {
    /// Its Message-ID.
    pub message_id: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
    /// What its writer wrote (the classifier's `text`).
    pub text: Option<String>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// What became of a pending notification.
#[derive(Debug, Clone)]
pub enum HandoffOutcome {
    /// Rendered and put in the outbox.
    Queued(Box<NewOutboxMessage>),
    /// Not sent, and why.
    Skipped(String),
}

/// A verdict as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictEntry {
    /// The verdict.
    pub verdict: VerdictKind,
    /// The words after it.
    pub reason: Option<String>,
    /// What Sales wrote below it.
    pub comment: Option<String>,
    /// `not_now`'s date, `nurture`'s sequence, `owner`'s address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Who said it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `mail` (an answer to a hand-off) or `cli`.
    pub source: String,
}

/// Who gave a verdict, how, and in answer to which message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'a> {
    /// The Sales address, or `cli:USER`.
    pub by: &'a str,
    /// `mail` or `cli`.
    pub source: &'a str,
    /// The answer's dedupe key, for a verdict by mail.
    pub inbound_key: Option<&'a str>,
}

/// A notification to queue: what, to whom (explanations), why, and the message behind it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Notification<'a> {
    /// Hand-off or explanation.
    pub kind: HandoffKind,
    /// For an explanation: the Sales person.
    pub recipient: Option<&'a str>,
    /// Why Sales is told, or what was not understood.
    pub why: &'a str,
    /// The message that caused it.
    pub inbound_key: Option<&'a str>,
}

/// The text form of a verdict's target, as stored.
fn target_text(t: &VerdictTarget) -> String {
    match t {
        VerdictTarget::Until(d) => d.format("%Y-%m-%d").to_string(),
        VerdictTarget::Sequence(s) => s.to_string(),
        VerdictTarget::Owner(a) => a.to_string(),
    }
}

/// Midnight UTC at the start of `day`: a date from mail or the CLI as a time to store.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

fn known_lead_from_row(r: &AnyRow) -> Result<KnownLead, StoreError> {
    let id: i64 = r.get(0);
    let email: String = r.get(1);
    Ok(KnownLead {
        id: LeadId(id),
        email: EmailAddress::parse(&email)
            .map_err(|e| format!("'{email}' is not an email address: {e}"))
            .map_err(unreadable("leads", id, "email"))?,
        owner: r.get(2),
        status: r
            .get::<String, _>(3)
            .parse()
            .map_err(unreadable("leads", id, "status"))?,
        mailed: r.get::<i64, _>(4) != 0,
    })
}

/// Whether the lead `l` was sent a message, as a column.
const MAILED: &str = "CASE WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.lead_id = l.id AND o.state = 'sent') THEN 1 ELSE 0 END";

impl Store {
    /// The leads these addresses belong to, as their own address or as an alias; keyed by the
    /// address asked for.
    ///
    /// # Errors
    /// A failed query, or a lead row this version cannot read.
    #[instrument(skip_all, fields(addresses = emails.len()))]
    pub async fn leads_by_address(
        &self,
        emails: &[&str],
    ) -> Result<HashMap<String, KnownLead>, StoreError> {
        let mut out = HashMap::new();
        for chunk in emails.chunks(ROWS_PER_STATEMENT / 2) {
            let b = self.backend;
            let n = chunk.len();
            let sql = format!(
                "SELECT l.id, l.email, l.owner, l.status, {MAILED}, l.email AS asked FROM leads l WHERE l.email IN ({}) \
                 UNION ALL \
                 SELECT l.id, l.email, l.owner, l.status, {MAILED}, a.email AS asked FROM lead_aliases a JOIN leads l ON l.id = a.lead_id WHERE a.email IN ({})",
                params(b, 1, n),
                params(b, 1 + n, n)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for e in chunk.iter().chain(chunk) {
                q = q.bind(*e);
            }
            for r in q.fetch_all(&self.pool).await? {
                let lead = known_lead_from_row(&r)?;
                // The lead's own address wins over an alias of another lead.
                out.entry(r.get::<String, _>(5)).or_insert(lead);
            }
        }
        Ok(out)
    }

    /// The leads with these ids.
    ///
    /// # Errors
    /// A failed query, or a lead row this version cannot read.
    pub async fn known_leads(
        &self,
        ids: &[LeadId],
    ) -> Result<HashMap<LeadId, KnownLead>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT l.id, l.email, l.owner, l.status, {MAILED} FROM leads l WHERE l.id IN ({})",
                params(self.backend, 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                let lead = known_lead_from_row(&r)?;
                out.insert(lead.id, lead);
            }
        }
        Ok(out)
    }

    /// Our messages with these Message-IDs (without angle brackets).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(ids = ids.len()))]
    pub async fn our_messages(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, OurMessage>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT o.message_id, o.lead_id, h.kind, h.lead_id FROM outbox o LEFT JOIN handoffs h ON h.outbox_id = o.id \
                 WHERE o.message_id IN ({})",
                params(self.backend, 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let about = match (r.get::<Option<String>, _>(2), r.get::<Option<i64>, _>(3)) {
                    (Some(kind), Some(lead)) => Some((
                        kind.parse().map_err(unreadable("handoffs", lead, "kind"))?,
                        LeadId(lead),
                    )),
                    _ => None,
                };
                out.insert(
                    r.get(0),
                    OurMessage {
                        to_lead: r.get::<Option<i64>, _>(1).map(LeadId),
                        about,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The leads that the hand-offs with these Reply-To tokens were about.
    ///
    /// # Errors
    /// A failed query.
    pub async fn handoff_tokens(
        &self,
        tokens: &[&str],
    ) -> Result<HashMap<String, LeadId>, StoreError> {
        self.token_leads("handoffs", tokens).await
    }

    /// The leads of the enrollments with these tokens (reply and unsubscribe addresses).
    ///
    /// # Errors
    /// A failed query.
    pub async fn enrollment_tokens(
        &self,
        tokens: &[&str],
    ) -> Result<HashMap<String, LeadId>, StoreError> {
        self.token_leads("enrollments", tokens).await
    }

    async fn token_leads(
        &self,
        table: &'static str,
        tokens: &[&str],
    ) -> Result<HashMap<String, LeadId>, StoreError> {
        let mut out = HashMap::new();
        for chunk in tokens.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT token, lead_id FROM {table} WHERE token IN ({})",
                params(self.backend, 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for t in chunk {
                q = q.bind(*t);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.get(0), LeadId(r.get(1)));
            }
        }
        Ok(out)
    }

    /// For each lead address, how many soft bounces were counted for it since `since` (its
    /// `soft_bounce` timeline events, one per failed recipient of each bounce).
    ///
    /// # Errors
    /// A failed query.
    pub async fn soft_bounces_since(
        &self,
        emails: &[&str],
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, u32>, StoreError> {
        let mut out: HashMap<String, u32> = HashMap::new();
        for chunk in emails.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT l.email, COUNT(*) FROM events e JOIN leads l ON l.id = e.lead_id \
                 WHERE e.kind = {} AND e.at >= {} AND l.email IN ({}) GROUP BY l.email",
                params(self.backend, 1, 1),
                params(self.backend, 2, 1),
                params(self.backend, 3, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(SOFT_BOUNCE)
                .bind(millis(since));
            for e in chunk {
                q = q.bind(*e);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(
                    r.get(0),
                    u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX),
                );
            }
        }
        Ok(out)
    }

    /// Applies lead changes decided outside ingest (the CLI), in one transaction; how many
    /// enrollments they made.
    ///
    /// # Errors
    /// A failed query; nothing is changed then.
    #[instrument(skip_all, fields(changes = changes.len()))]
    pub async fn apply_lead_changes(
        &self,
        changes: &[LeadChange],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let applied = self
            .apply_changes_in(&mut tx, changes, &[], &[], now)
            .await?;
        let touched: Vec<&str> = changes.iter().map(|c| c.lead.as_str()).collect();
        self.rescore_in(&mut tx, &touched, now).await?;
        tx.commit().await?;
        if applied.notifications > 0 {
            self.handoff_wake.notify_one();
        }
        Ok(applied.enrolled)
    }

    /// Applies an unsubscribe request that named its lead by link rather than by mail (the
    /// one-click link, RFC 8058): `changes`, decided by the lead actions, and an
    /// `unsubscribed` event with `detail` on the lead's timeline, in one transaction.
    ///
    /// A lead that is `unsubscribed` already and whose address is suppressed is left as it is
    /// and nothing is recorded, so a request made twice (a retry, a second click, two at once)
    /// acts once. `false` when nothing was applied, also when no lead has this address.
    ///
    /// # Errors
    /// A failed query; nothing is changed then.
    #[instrument(skip_all, fields(changes = changes.len()))]
    pub async fn unsubscribe_once(
        &self,
        lead: &EmailAddress,
        changes: &[LeadChange],
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Writing the row first takes its lock (the database's, on SQLite), so of two
        // requests at once the second waits and then sees what the first did.
        let Some(row) =
            sqlx::query("UPDATE leads SET updated_at = $1 WHERE email = $2 RETURNING id, status")
                .bind(millis(now))
                .bind(lead.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        let id: i64 = row.get(0);
        let status: LeadStatus = row
            .get::<String, _>(1)
            .parse()
            .map_err(unreadable("leads", id, "status"))?;
        let entry = super::Suppression::Address(lead.to_string());
        let suppressed = sqlx::query("SELECT 1 FROM suppressions WHERE kind = $1 AND value = $2")
            .bind(entry.kind())
            .bind(entry.value())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if status == LeadStatus::Unsubscribed && suppressed {
            // Dropping the transaction rolls the touch of updated_at back.
            return Ok(false);
        }
        let applied = self
            .apply_changes_in(&mut tx, changes, &[], &[], now)
            .await?;
        event_in(&mut tx, lead.as_str(), "unsubscribed", detail, now).await?;
        tx.commit().await?;
        if applied.notifications > 0 {
            self.handoff_wake.notify_one();
        }
        Ok(true)
    }

    /// Records Sales' verdict on the lead with this address, as `origin` gave it.
    pub(super) async fn record_verdict_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        verdict: &Verdict,
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let target = verdict.target.as_ref().map(target_text);
        sqlx::query(
            "INSERT INTO verdicts (lead_id, verdict, reason, comment, target, by_addr, source, inbound_key, at) \
             SELECT id, $1, $2, $3, $4, $5, $6, $7, $8 FROM leads WHERE email = $9",
        )
        .bind(verdict.kind.as_str())
        .bind(verdict.reason.as_deref())
        .bind(verdict.comment.as_deref())
        .bind(target.as_deref())
        .bind(origin.by)
        .bind(origin.source)
        .bind(origin.inbound_key)
        .bind(millis(now))
        .bind(lead)
        .execute(&mut **tx)
        .await?;
        let detail = serde_json::json!({
            "verdict": verdict.kind,
            "reason": verdict.reason,
            "comment": verdict.comment,
            "target": target,
            "by": origin.by,
            "source": origin.source,
        });
        event_in(tx, lead, "verdict", &detail, now).await
    }

    /// Sets the owner of the lead with this address (`only_if_none`: only when it has none).
    pub(super) async fn set_owner_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        owner: &str,
        only_if_none: bool,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = if only_if_none {
            "UPDATE leads SET owner = $1, updated_at = $2 WHERE email = $3 AND owner IS NULL"
        } else {
            "UPDATE leads SET owner = $1, updated_at = $2 WHERE email = $3 AND (owner IS NULL OR owner <> $1)"
        };
        let changed = sqlx::query(sql)
            .bind(owner)
            .bind(millis(now))
            .bind(lead)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            > 0;
        if changed {
            let detail = serde_json::json!({ "owner": owner, "by": by });
            event_in(tx, lead, "owner", &detail, now).await?;
        }
        Ok(changed)
    }

    /// Gives the lead with this address the next owner of a round-robin route, if it has no
    /// owner yet.
    pub(super) async fn assign_next_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        route: &str,
        owners: &[EmailAddress],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if owners.is_empty() {
            return Ok(());
        }
        let has_owner = sqlx::query("SELECT owner FROM leads WHERE email = $1")
            .bind(lead)
            .fetch_optional(&mut **tx)
            .await?
            .is_none_or(|r| r.get::<Option<String>, _>(0).is_some());
        if has_owner {
            return Ok(());
        }
        // The counter row's update takes its lock, so two daemons never hand out one turn.
        let turn: i64 = sqlx::query(
            "INSERT INTO route_turns (route, turns) VALUES ($1, 1) \
             ON CONFLICT (route) DO UPDATE SET turns = route_turns.turns + 1 RETURNING turns",
        )
        .bind(route)
        .fetch_one(&mut **tx)
        .await?
        .get(0);
        let n = i64::try_from(owners.len()).unwrap_or(1);
        let pick = usize::try_from((turn - 1).rem_euclid(n)).unwrap_or(0);
        let by = format!("route {route}");
        self.set_owner_in(tx, lead, owners[pick].as_str(), true, &by, now)
            .await?;
        Ok(())
    }

    /// Records `alias` as another address of the lead with address `lead` (an address that
    /// already is a lead, or another lead's alias, is left as it is).
    pub(super) async fn add_alias_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        alias: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if alias == lead {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO lead_aliases (email, lead_id, created_at) \
             SELECT $1, id, $2 FROM leads WHERE email = $3 \
               AND NOT EXISTS (SELECT 1 FROM leads WHERE email = $1) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(alias)
        .bind(millis(now))
        .bind(lead)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Holds the next step of the lead's active enrollments until `until` (a later pause
    /// already set stays). Returns how many were paused.
    pub(super) async fn pause_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let until_ms = millis(until);
        let paused = sqlx::query(
            "UPDATE enrollments SET \
               paused_until = CASE WHEN paused_until IS NOT NULL AND paused_until > $1 THEN paused_until ELSE $1 END, \
               next_due_at = CASE WHEN next_due_at IS NOT NULL AND next_due_at > $1 THEN next_due_at ELSE $1 END, \
               updated_at = $2 \
             WHERE state = 'active' AND lead_id IN (SELECT id FROM leads WHERE email = $3)",
        )
        .bind(until_ms)
        .bind(millis(now))
        .bind(lead)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if paused > 0 {
            let detail =
                serde_json::json!({ "until": until, "reason": reason, "enrollments": paused });
            event_in(tx, lead, "paused", &detail, now).await?;
        }
        Ok(paused)
    }

    /// Lifts the pause of the lead's active enrollments that are paused now. The step each
    /// waited for is forgotten with its due time (the pause had pushed it), so the scheduler
    /// works it out again from the step's delay, as for a step never paused; an enrollment
    /// deferred to a later start (`not now` without a sequence running) starts from now.
    /// Returns the enrollments resumed; an event `resumed` with `by` when there are any.
    pub(super) async fn resume_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now_ms = millis(now);
        let resumed = sqlx::query(
            "UPDATE enrollments SET paused_until = NULL, next_step = NULL, next_due_at = $1, \
               last_at = CASE WHEN last_at > $1 THEN $1 ELSE last_at END, updated_at = $1 \
             WHERE state = 'active' AND paused_until > $1 \
               AND lead_id IN (SELECT id FROM leads WHERE email = $2)",
        )
        .bind(now_ms)
        .bind(lead)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if resumed > 0 {
            let detail = serde_json::json!({ "by": by, "enrollments": resumed });
            event_in(tx, lead, "resumed", &detail, now).await?;
        }
        Ok(resumed)
    }

    /// `not now`: pauses the lead's active enrollments until `until`, or, when it has none,
    /// enrolls it again at `until` in the sequence it was in last.
    pub(super) async fn not_now_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self
            .pause_in(tx, lead, until, "Sales said not now", now)
            .await?
            > 0
        {
            return Ok(());
        }
        let last = sqlx::query(
            "SELECT e.sequence, l.id FROM enrollments e JOIN leads l ON l.id = e.lead_id \
             WHERE l.email = $1 ORDER BY e.id DESC LIMIT 1",
        )
        .bind(lead)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(last) = last else {
            return Ok(());
        };
        let sequence: String = last.get(0);
        let lead_id: i64 = last.get(1);
        let due = millis(until);
        sqlx::query(
            "INSERT INTO enrollments (lead_id, sequence, state, last_at, enrolled_at, updated_at, next_due_at, paused_until) \
             VALUES ($1, $2, 'active', $3, $4, $4, $3, $3) ON CONFLICT DO NOTHING",
        )
        .bind(lead_id)
        .bind(sequence.as_str())
        .bind(due)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
        let detail = serde_json::json!({ "sequence": sequence, "by": "not now", "due": until });
        event_in(tx, lead, "enrolled", &detail, now).await
    }

    /// Enrolls the lead with this address into `rule.sequence` now (a verdict's `nurture:`,
    /// a sequence entered on a status). Returns whether it was enrolled.
    pub(super) async fn enroll_one_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        rule: &EnrollRule,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let manual = EnrollRule {
            channels: Vec::new(),
            min_score: None,
            ..rule.clone()
        };
        let ids = self
            .enroll_emails(tx, &manual, &[lead], millis(now), by)
            .await?;
        Ok(!ids.is_empty())
    }

    /// Queues a notification about the lead with this address for the hand-off worker.
    pub(super) async fn queue_handoff_in(
        &self,
        tx: &mut Tx,
        lead: &str,
        n: Notification<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO handoffs (lead_id, kind, recipient, why, inbound_key, state, created_at, updated_at) \
             SELECT id, $1, $2, $3, $4, 'pending', $5, $5 FROM leads WHERE email = $6",
        )
        .bind(n.kind.as_str())
        .bind(n.recipient)
        .bind(n.why)
        .bind(n.inbound_key)
        .bind(millis(now))
        .bind(lead)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Up to `limit` pending notifications, oldest first.
    ///
    /// # Errors
    /// A failed query, or a row this version cannot read.
    pub async fn pending_handoffs(&self, limit: i64) -> Result<Vec<PendingHandoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.id, h.kind, h.lead_id, h.recipient, h.why, h.token, h.created_at, \
                    m.message_id, m.subject, m.detail, m.recorded_at \
             FROM handoffs h LEFT JOIN inbound_messages m ON m.dedupe_key = h.inbound_key \
             WHERE h.state = 'pending' ORDER BY h.id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                let cause = r.get::<Option<i64>, _>(10).map(|at| {
                    let detail: serde_json::Value =
                        serde_json::from_str(&r.get::<Option<String>, _>(9).unwrap_or_default())
                            .unwrap_or_default();
                    Cause {
                        message_id: r.get(7),
                        subject: r.get(8),
                        text: detail["text"].as_str().map(str::to_owned),
                        at: from_millis(at),
                    }
                });
                Ok(PendingHandoff {
                    id,
                    kind: r
                        .get::<String, _>(1)
                        .parse()
                        .map_err(unreadable("handoffs", id, "kind"))?,
                    lead_id: LeadId(r.get(2)),
                    recipient: r.get(3),
                    why: r.get(4),
                    token: r.get(5),
                    created_at: from_millis(r.get(6)),
                    cause,
                })
            })
            .collect()
    }

    /// When the newest hand-off about this lead went to the outbox, if one did.
    ///
    /// # Errors
    /// A failed query.
    pub async fn last_handoff_queued(
        &self,
        lead: LeadId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(updated_at) FROM handoffs WHERE lead_id = $1 AND kind = $2 AND state = 'queued'",
        )
        .bind(lead.0)
        .bind(HandoffKind::Handoff.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<Option<i64>, _>(0).map(from_millis))
    }

    /// The kind of the newest notification about this lead that went to `recipient`.
    ///
    /// # Errors
    /// A failed query, or a row this version cannot read.
    pub async fn last_notification_to(
        &self,
        lead: LeadId,
        recipient: &str,
    ) -> Result<Option<HandoffKind>, StoreError> {
        let row = sqlx::query(
            "SELECT h.id, h.kind FROM handoffs h JOIN outbox o ON o.id = h.outbox_id \
             WHERE h.lead_id = $1 AND h.state = 'queued' AND o.recipient = $2 ORDER BY h.id DESC LIMIT 1",
        )
        .bind(lead.0)
        .bind(recipient)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let id: i64 = r.get(0);
            r.get::<String, _>(1)
                .parse()
                .map_err(unreadable("handoffs", id, "kind"))
        })
        .transpose()
    }

    /// Records what became of a pending notification: its message enqueued, or why it was
    /// skipped, in one transaction. `false` when another worker settled it first.
    ///
    /// # Errors
    /// A failed query; nothing is recorded then.
    pub async fn finish_handoff(
        &self,
        handoff: &PendingHandoff,
        outcome: &HandoffOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Taking the row first decides between two workers: the second changes nothing.
        let (state, note) = match outcome {
            HandoffOutcome::Queued(_) => (HandoffState::Queued, None),
            HandoffOutcome::Skipped(why) => (HandoffState::Skipped, Some(why.as_str())),
        };
        let taken = sqlx::query(
            "UPDATE handoffs SET state = $1, note = $2, updated_at = $3 WHERE id = $4 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(note)
        .bind(millis(now))
        .bind(handoff.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(false);
        }
        if let HandoffOutcome::Queued(message) = outcome {
            let id = self.enqueue_in(&mut tx, message, now).await?;
            sqlx::query("UPDATE handoffs SET outbox_id = $1 WHERE id = $2")
                .bind(id.map(|i| i.0))
                .bind(handoff.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if matches!(outcome, HandoffOutcome::Queued(_)) {
            self.wake_sender();
        }
        Ok(true)
    }

    /// Wakes the hand-off worker of this process (a batch or the CLI queued a notification).
    pub fn wake_handoffs(&self) {
        self.handoff_wake.notify_one();
    }

    /// Resolves when [`Store::wake_handoffs`] is called.
    pub async fn handoffs_woken(&self) {
        self.handoff_wake.notified().await;
    }

    /// Every verdict on a lead, oldest first.
    ///
    /// # Errors
    /// A failed query, or a row this version cannot read.
    pub async fn verdicts(&self, lead: LeadId) -> Result<Vec<VerdictEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, verdict, reason, comment, target, by_addr, at, source FROM verdicts WHERE lead_id = $1 ORDER BY at, id",
        )
        .bind(lead.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get(0);
                Ok(VerdictEntry {
                    verdict: r
                        .get::<String, _>(1)
                        .parse()
                        .map_err(unreadable("verdicts", id, "verdict"))?,
                    reason: r.get(2),
                    comment: r.get(3),
                    target: r.get(4),
                    by: r.get(5),
                    at: from_millis(r.get(6)),
                    source: r.get(7),
                })
            })
            .collect()
    }

    /// The steps sent to a lead, oldest first: when, the sequence, the step.
    ///
    /// # Errors
    /// A failed query.
    pub async fn sent_steps(
        &self,
        lead: LeadId,
    ) -> Result<Vec<(DateTime<Utc>, String, String)>, StoreError> {
        Ok(sqlx::query(
            "SELECT o.sent_at, e.sequence, o.step_id FROM outbox o JOIN enrollments e ON e.id = o.enrollment_id \
             WHERE o.lead_id = $1 AND o.state = 'sent' ORDER BY o.sent_at, o.id",
        )
        .bind(lead.0)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            (
                from_millis(r.get::<Option<i64>, _>(0).unwrap_or_default()),
                r.get(1),
                r.get::<Option<String>, _>(2).unwrap_or_default(),
            )
        })
        .collect())
    }

    /// A lead's other addresses.
    ///
    /// # Errors
    /// A failed query.
    pub async fn aliases(&self, lead: LeadId) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query("SELECT email FROM lead_aliases WHERE lead_id = $1 ORDER BY email")
                .bind(lead.0)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        )
    }

    /// A lead's notifications to our own people, as timeline entries: `handoff` (or
    /// `explain`) with where it stands.
    pub(super) async fn handoff_events(
        &self,
        lead: LeadId,
    ) -> Result<Vec<super::Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.created_at, h.kind, h.why, h.state, h.note, o.recipient, o.state, o.message_id \
             FROM handoffs h LEFT JOIN outbox o ON o.id = h.outbox_id WHERE h.lead_id = $1 ORDER BY h.id",
        )
        .bind(lead.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| super::Event {
                at: from_millis(r.get(0)),
                kind: r.get(1),
                subject: None,
                detail: serde_json::json!({
                    "why": r.get::<String, _>(2),
                    "state": r.get::<String, _>(3),
                    "note": r.get::<Option<String>, _>(4),
                    "to": r.get::<Option<String>, _>(5),
                    "outbox_state": r.get::<Option<String>, _>(6),
                    "message_id": r.get::<Option<String>, _>(7),
                }),
                mailbox: None,
            })
            .collect())
    }
}

/// Records an event on the timeline of the lead with this address, if there is one.
pub(super) async fn event_in(
    conn: &mut sqlx::AnyConnection,
    lead: &str,
    kind: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (lead_id, at, kind, detail) SELECT id, $1, $2, $3 FROM leads WHERE email = $4",
    )
    .bind(millis(now))
    .bind(kind)
    .bind(detail.to_string())
    .bind(lead)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
