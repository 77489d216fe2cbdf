//! Lead scores, as stored: what a score is computed from ([`ScoreFacts`]), and recomputing it
//! in the transaction that changed the lead, so `min_score` enrollment and hand-offs in that
//! same transaction see the new score.
//!
//! How facts become points is the `[[score]]` rules' business ([`LeadScorer`], implemented in
//! `actions`); this module only gathers the facts and writes the result.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::{
    LEAD_COLUMNS, Lead, ROWS_PER_STATEMENT, Store, StoreError, from_millis, lead_from_row, params,
};
use crate::domain::{HandoffKind, LeadStatus};

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// What a lead's score is computed from.
#[derive(Debug, Clone)]
pub struct ScoreFacts {
    /// The lead as it is now.
    pub lead: Lead,
    /// Its inbound messages per kind (`inquiry`, `form`, `reply`, …).
    pub messages: BTreeMap<String, i64>,
    /// Its timeline events per kind (`sent`, `enrolled`, `verdict`, `soft_bounce`, …).
    pub events: BTreeMap<String, i64>,
    /// Hand-offs sent to its owner.
    pub handoffs: i64,
    /// Its last sign of interest: its newest inbound message, or its creation.
    pub last_activity: DateTime<Utc>,
    /// The reasons of its stored score, so an unchanged score is not written again.
    pub stored_reasons: Vec<ScoreReason>,
}

/// One rule's share of a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreReason {
    /// The rule's reason label.
    pub reason: String,
    /// The points it added (after decay).
    pub points: i64,
}

/// A computed score with the rules that made it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scored {
    /// The sum.
    pub score: i64,
    /// Each rule that matched, in rule order.
    pub reasons: Vec<ScoreReason>,
}

/// Turns facts into scores (`[[score]]`).
pub trait LeadScorer: Send + Sync + std::fmt::Debug {
    /// The score of the lead these facts describe, at `now` (decay counts from it).
    fn score(&self, facts: &ScoreFacts, now: DateTime<Utc>) -> Scored;

    /// `[handoff] min_score`: a lead whose score reaches it is handed off.
    fn handoff_at(&self) -> Option<i64>;
}

impl Store {
    /// Scores leads with `scorer` from now on (`None`: scores stay as they are), whenever a
    /// batch or a command changes them, in this store and all its clones.
    pub fn set_scorer(&self, scorer: Option<std::sync::Arc<dyn LeadScorer>>) {
        if let Ok(mut s) = self.scorer.write() {
            *s = scorer;
        }
    }

    /// The scorer in use, if any.
    pub(super) fn scorer(&self) -> Option<std::sync::Arc<dyn LeadScorer>> {
        self.scorer.read().ok().and_then(|s| s.clone())
    }

    /// The facts of the lead's score, as they are now.
    ///
    /// # Errors
    /// A failed query.
    pub async fn score_facts(&self, lead: &Lead) -> Result<ScoreFacts, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut facts = facts_of(&mut conn, &[lead.email.as_str()]).await?;
        Ok(facts.pop().unwrap_or_else(|| ScoreFacts {
            lead: lead.clone(),
            messages: BTreeMap::new(),
            events: BTreeMap::new(),
            handoffs: 0,
            last_activity: lead.created_at,
            stored_reasons: Vec::new(),
        }))
    }

    /// The reasons of the lead's stored score.
    ///
    /// # Errors
    /// A failed query.
    pub async fn score_reasons(&self, lead: &Lead) -> Result<Vec<ScoreReason>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT score_reasons FROM leads WHERE id = $1")
                .bind(lead.id.0)
                .fetch_optional(&self.pool)
                .await?;
        // Written only from a list; anything else reads as no reasons.
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Recomputes every lead's score (decay moves scores with time alone); returns how many
    /// changed. A no-op without a scorer.
    ///
    /// # Errors
    /// A failed query; the leads done before it keep their new scores.
    pub async fn rescore_all(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        if self.scorer().is_none() {
            return Ok(0);
        }
        let mut changed = 0;
        let mut after = String::new();
        loop {
            let emails: Vec<String> = sqlx::query_scalar(
                "SELECT email FROM leads WHERE email > $1 ORDER BY email LIMIT 500",
            )
            .bind(after.as_str())
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = emails.last() else { break };
            after.clone_from(last);
            let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
            let mut tx = self.pool.begin().await?;
            changed += self.rescore_in(&mut tx, &refs, now).await?;
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Recomputes the scores of the leads with these addresses in the caller's transaction,
    /// and queues a hand-off for each that reached `[handoff] min_score` just now. Returns
    /// how many scores changed.
    pub(super) async fn rescore_in(
        &self,
        tx: &mut Tx,
        emails: &[&str],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let Some(scorer) = self.scorer() else {
            return Ok(0);
        };
        let mut emails = emails.to_vec();
        emails.sort_unstable();
        emails.dedup();
        let mut changed = 0;
        for chunk in emails.chunks(ROWS_PER_STATEMENT / 4) {
            for facts in facts_of(tx, chunk).await? {
                let scored = scorer.score(&facts, now);
                let old = facts.lead.score;
                if scored.score == old && scored.reasons == facts.stored_reasons {
                    continue;
                }
                let reasons =
                    serde_json::to_string(&scored.reasons).unwrap_or_else(|_| "[]".to_owned());
                sqlx::query("UPDATE leads SET score = $1, score_reasons = $2 WHERE id = $3")
                    .bind(scored.score)
                    .bind(reasons)
                    .bind(facts.lead.id.0)
                    .execute(&mut **tx)
                    .await?;
                if scored.score != old {
                    changed += 1;
                }
                if let Some(min) = scorer.handoff_at()
                    && old < min
                    && scored.score >= min
                    && facts.lead.status != LeadStatus::Review
                {
                    let why = format!(
                        "scored {} (min_score {min}): {}",
                        scored.score,
                        scored
                            .reasons
                            .iter()
                            .map(|r| format!("{:+} {}", r.points, r.reason))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let n = super::sales::Notification {
                        kind: HandoffKind::Handoff,
                        recipient: None,
                        why: &why,
                        inbound_key: None,
                    };
                    self.queue_handoff_in(tx, facts.lead.email.as_str(), n, now)
                        .await?;
                    self.wake_handoffs();
                }
            }
        }
        Ok(changed)
    }
}

/// The facts of the leads with these addresses (those that exist), in one query per table.
async fn facts_of(
    conn: &mut sqlx::AnyConnection,
    emails: &[&str],
) -> Result<Vec<ScoreFacts>, StoreError> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let backend = if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        super::Backend::Sqlite
    } else {
        super::Backend::Postgres
    };
    let list = params(backend, 1, emails.len());
    let bind = |sql: String| {
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for e in emails {
            q = q.bind(*e);
        }
        q
    };
    let leads = bind(format!(
        "SELECT {LEAD_COLUMNS}, l.score_reasons FROM leads l WHERE l.email IN ({list})"
    ))
    .fetch_all(&mut *conn)
    .await?;
    // `score_reasons` comes right after the lead's own columns.
    let reasons_column = LEAD_COLUMNS.split(',').count();
    let mut facts: Vec<ScoreFacts> = Vec::with_capacity(leads.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in &leads {
        let lead = lead_from_row(row)?;
        // Written only from a list; anything else reads as no reasons, and is written again.
        let stored_reasons = row
            .try_get::<String, _>(reasons_column)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        index.insert(lead.email.as_str().to_owned(), facts.len());
        facts.push(ScoreFacts {
            last_activity: lead.created_at,
            lead,
            messages: BTreeMap::new(),
            events: BTreeMap::new(),
            handoffs: 0,
            stored_reasons,
        });
    }
    let mut sql = String::new();
    let _ = write!(
        sql,
        "SELECT lead_email, kind, COUNT(*), MAX(recorded_at) FROM inbound_messages \
         WHERE lead_email IN ({list}) GROUP BY lead_email, kind"
    );
    for row in bind(sql).fetch_all(&mut *conn).await? {
        let email: String = row.try_get(0)?;
        let Some(f) = index.get(&email).map(|&i| &mut facts[i]) else {
            continue;
        };
        let at = from_millis(row.try_get::<i64, _>(3)?);
        f.messages.insert(row.try_get(1)?, row.try_get(2)?);
        f.last_activity = f.last_activity.max(at);
    }
    let events = bind(format!(
        "SELECT l.email, e.kind, COUNT(*) FROM events e JOIN leads l ON l.id = e.lead_id \
         WHERE l.email IN ({list}) GROUP BY l.email, e.kind"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for row in events {
        let email: String = row.try_get(0)?;
        if let Some(&i) = index.get(&email) {
            facts[i].events.insert(row.try_get(1)?, row.try_get(2)?);
        }
    }
    let handoffs = bind(format!(
        "SELECT l.email, COUNT(*) FROM handoffs h JOIN leads l ON l.id = h.lead_id \
         WHERE l.email IN ({list}) AND h.kind = 'handoff' AND h.state = 'queued' GROUP BY l.email"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for row in handoffs {
        let email: String = row.try_get(0)?;
        if let Some(&i) = index.get(&email) {
            facts[i].handoffs = row.try_get(1)?;
        }
    }
    Ok(facts)
}
