//! Data in and out: imports from a spreadsheet, exports as rows, erasing a person, and the
//! retention of stored message bodies.
//!
//! **Import** merges rows into leads by address, one transaction per chunk of rows, and
//! records in the same transaction how far the file got (`import_progress`), so an import
//! that stops (a crash, Ctrl-C) continues after its last committed line when run again. The
//! merge rule never loses what a lead already has: see [`merge`].
//!
//! **Erase** removes a person in one transaction: the lead row stays for the counts (channel,
//! status, verdict kinds) with its address replaced by an opaque one and its personal columns
//! emptied; message texts, subjects, outgoing bodies, comments and aliases go; and a keyed
//! hash of each address (HMAC-SHA256 under a per-database key in `data_secrets`) joins the
//! suppression list, so the sender refuses the address ([`erased_among`]) without it being
//! stored. A last sweep over every text column of every table blanks any value that still
//! names one of the addresses.
//!
//! **Retention** strips the text of inbound messages and the bytes of sent messages once they
//! are older than `[retention] message_bodies`; the rows stay for counts and dedupe.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{Backend, Lead, LeadId, Store, StoreError, from_millis, lead_from_row, millis};
use crate::domain::{EmailAddress, LeadStatus};

/// The prefix of a hashed suppression's value: never an address (no `@`), so the plain check
/// never matches it.
const HASH_PREFIX: &str = "hmac-sha256:";
/// The first value after every hashed one, for an index range over them.
const HASH_PREFIX_END: &str = "hmac-sha256;";
/// The domain of the opaque address an erased lead keeps (`.invalid` never resolves).
pub const ERASED_DOMAIN: &str = "erased.invalid";
/// What replaces a text that must not stay and cannot be empty, as an SQL literal.
const ERASED_TEXT: &str = "'erased'";

/// One row of a file to import, validated.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The file's line the row starts on.
    pub line: u64,
    /// The address (the key).
    pub email: Option<EmailAddress>,
    /// Display name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Channel for a new lead (the file's, or the default).
    pub channel: String,
    /// A status the file gives explicitly: it may change an existing lead's.
    pub status: Option<LeadStatus>,
    /// The status of a new lead without one in the file.
    pub default_status: LeadStatus,
    /// Owner (a Sales address).
    pub owner: Option<String>,
    /// Form name.
    pub form: Option<String>,
    /// Score.
    pub score: Option<i64>,
    /// When the lead was created, if the file says.
    pub created_at: Option<DateTime<Utc>>,
    /// Every other column.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ImportRow {
    /// A row starting on `line` with nothing but the defaults for a new lead.
    pub fn new(line: u64, channel: String, default_status: LeadStatus) -> Self {
        ImportRow {
            line,
            email: None,
            name: None,
            company: None,
            phone: None,
            channel,
            status: None,
            default_status,
            owner: None,
            form: None,
            score: None,
            created_at: None,
            fields: serde_json::Map::new(),
        }
    }
}

/// What an import row did (or, in a dry run, would do) to its lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportAction {
    /// A new lead.
    Create,
    /// An existing lead got these columns (`fields.KEY` for a field).
    Update(Vec<String>),
    /// An existing lead already had everything the row says.
    Unchanged,
}

/// How far an import of one file got, and what it did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportProgress {
    /// The last line whose row is committed.
    pub line: u64,
    /// Leads created.
    pub created: u64,
    /// Leads updated.
    pub updated: u64,
    /// Rows that changed nothing.
    pub unchanged: u64,
    /// Rows refused.
    pub bad: u64,
    /// Whether the whole file went through.
    pub done: bool,
}

/// One import of one file: its key, and in a dry run what earlier rows would have done.
#[derive(Debug)]
pub struct ImportRun {
    key: String,
    file_name: String,
    dry_run: bool,
    started_at: DateTime<Utc>,
    /// Dry run: the leads as earlier chunks would have left them (nothing is written).
    planned: HashMap<String, LeadState>,
    /// The totals so far, resumed ones included.
    pub progress: ImportProgress,
}

impl ImportRun {
    /// A run of the file whose content and mapping hash to `key`, resumed from `progress`.
    pub fn new(
        key: String,
        file_name: String,
        dry_run: bool,
        progress: ImportProgress,
        now: DateTime<Utc>,
    ) -> Self {
        ImportRun {
            key,
            file_name,
            dry_run,
            started_at: now,
            planned: HashMap::new(),
            progress,
        }
    }
}

/// What of a lead the import reads and may change.
#[derive(Debug, Clone)]
struct LeadState {
    id: Option<i64>,
    name: Option<String>,
    company: Option<String>,
    phone: Option<String>,
    owner: Option<String>,
    form: Option<String>,
    status: LeadStatus,
    score: i64,
    fields: serde_json::Map<String, serde_json::Value>,
}

/// The merge rule of an import, for one row and the lead as it stands:
///
/// - a new address makes a lead with the row's values (status: the file's, else the default);
/// - an existing lead gets what it lacks: empty name, company, phone, owner, form and score
///   are filled, fields it does not have are added; nothing it has is overwritten;
/// - its status changes only when the file gives one explicitly (a status column), and never
///   away from `unsubscribed` or `bounced`: those are the person's or their server's word;
/// - its channel and creation time never change (they are the first touch's).
fn merge(existing: Option<&LeadState>, row: &ImportRow) -> (ImportAction, LeadState) {
    let Some(e) = existing else {
        return (
            ImportAction::Create,
            LeadState {
                id: None,
                name: row.name.clone(),
                company: row.company.clone(),
                phone: row.phone.clone(),
                owner: row.owner.clone(),
                form: row.form.clone(),
                status: row.status.unwrap_or(row.default_status),
                score: row.score.unwrap_or(0),
                fields: row.fields.clone(),
            },
        );
    };
    let mut next = e.clone();
    let mut changed = Vec::new();
    let mut fill = |have: &mut Option<String>, give: &Option<String>, name: &str| {
        if have.as_deref().is_none_or(|h| h.trim().is_empty())
            && let Some(g) = give
        {
            *have = Some(g.clone());
            changed.push(name.to_owned());
        }
    };
    fill(&mut next.name, &row.name, "name");
    fill(&mut next.company, &row.company, "company");
    fill(&mut next.phone, &row.phone, "phone");
    fill(&mut next.owner, &row.owner, "owner");
    fill(&mut next.form, &row.form, "form");
    if next.score == 0
        && let Some(s) = row.score.filter(|s| *s != 0)
    {
        next.score = s;
        changed.push("score".to_owned());
    }
    for (k, v) in &row.fields {
        if !next.fields.contains_key(k) {
            next.fields.insert(k.clone(), v.clone());
            changed.push(format!("fields.{k}"));
        }
    }
    if let Some(s) = row.status
        && s != next.status
        && !matches!(next.status, LeadStatus::Unsubscribed | LeadStatus::Bounced)
    {
        next.status = s;
        changed.push("status".to_owned());
    }
    let action = if changed.is_empty() {
        ImportAction::Unchanged
    } else {
        ImportAction::Update(changed)
    };
    (action, next)
}

/// A lead as exported: the columns an import reads back.
pub type ExportLead = Lead;

/// An `events` row as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportEvent {
    /// Row id.
    pub id: i64,
    /// The lead's address.
    pub lead: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: String,
    /// The event's details.
    pub detail: serde_json::Value,
}

/// A `verdicts` row as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportVerdict {
    /// Row id.
    pub id: i64,
    /// The lead's address.
    pub lead: String,
    /// When.
    pub at: DateTime<Utc>,
    /// qualified, unqualified, customer, not_now, nurture or owner.
    pub verdict: String,
    /// The words after it.
    pub reason: Option<String>,
    /// What Sales wrote below it.
    pub comment: Option<String>,
    /// `not_now`'s date, `nurture`'s sequence, `owner`'s address.
    pub target: Option<String>,
    /// Who said it.
    pub by: String,
    /// `mail` or `cli`.
    pub source: String,
}

/// What [`Store::erase_person`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Erased {
    /// The lead kept for the counts, under its opaque address; `None` when there was no lead.
    pub lead: Option<LeadId>,
    /// Its opaque address.
    pub opaque: Option<String>,
    /// Addresses hashed onto the suppression list (the lead's and its aliases).
    pub addresses: usize,
    /// `table.column` places outside the lead's own rows that still named an address and were
    /// blanked by the final sweep.
    pub swept: Vec<String>,
}

/// What [`Store::drop_old_bodies`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retained {
    /// Inbound messages whose text was removed.
    pub messages: u64,
    /// Sent messages whose bytes were removed.
    pub outbox: u64,
}

impl Store {
    /// Where an earlier import of the file with this key stopped, if one ran.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn import_progress(&self, key: &str) -> Result<Option<ImportProgress>, StoreError> {
        let row = sqlx::query(
            "SELECT line, created, updated, unchanged, bad, done FROM import_progress WHERE file_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let n = |r: &sqlx::any::AnyRow, i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
        Ok(row.map(|r| ImportProgress {
            line: n(&r, 0),
            created: n(&r, 1),
            updated: n(&r, 2),
            unchanged: n(&r, 3),
            bad: n(&r, 4),
            done: r.get::<i64, _>(5) != 0,
        }))
    }

    /// Merges a chunk of rows into the leads ([`merge`]) and records the run's progress up to
    /// `last_line` (with `bad` more refused rows), in one transaction; in a dry run, only
    /// works out what each row would do. Returns each row's action, in order; rows without an
    /// address are skipped (the caller counted them as bad).
    ///
    /// # Errors
    /// A failed query; then nothing of the chunk is recorded.
    #[instrument(skip_all, fields(rows = rows.len()))]
    pub async fn import_chunk(
        &self,
        run: &mut ImportRun,
        rows: &[ImportRow],
        bad: u64,
        last_line: u64,
        done: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<ImportAction>, StoreError> {
        let emails: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.email.as_ref().map(EmailAddress::as_str))
            .collect();
        let mut tx = self.begin().await?;
        if !run.dry_run {
            // Writing first takes the database's write lock on SQLite, so the leads read next
            // cannot change under the merge (and the transaction's first write cannot fail on
            // a snapshot a concurrent writer made stale).
            save_progress(&mut tx, run, &run.progress, now).await?;
        }
        let mut state = existing_leads(&mut tx, &emails).await?;
        if run.dry_run {
            for (k, v) in &run.planned {
                state.insert(k.clone(), v.clone());
            }
        }
        let mut actions = Vec::with_capacity(rows.len());
        let mut totals = run.progress;
        for row in rows {
            let Some(email) = &row.email else { continue };
            let (action, mut next) = merge(state.get(email.as_str()), row);
            if !run.dry_run {
                write_row(&mut tx, &action, &mut next, row, email, &run.file_name, now).await?;
            }
            match action {
                ImportAction::Create => totals.created += 1,
                ImportAction::Update(_) => totals.updated += 1,
                ImportAction::Unchanged => totals.unchanged += 1,
            }
            state.insert(email.as_str().to_owned(), next.clone());
            if run.dry_run {
                run.planned.insert(email.as_str().to_owned(), next);
            }
            actions.push(action);
        }
        totals.bad += bad;
        totals.line = totals.line.max(last_line);
        totals.done = done;
        if run.dry_run {
            // Nothing of a dry run is kept, not even its progress.
            drop(tx);
        } else {
            save_progress(&mut tx, run, &totals, now).await?;
            tx.commit().await?;
        }
        run.progress = totals;
        Ok(actions)
    }

    /// Leads created since `since` (all without), oldest first, streamed from the database.
    pub fn export_leads(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<ExportLead, StoreError>> + '_ {
        sqlx::query(
            "SELECT l.id, l.email, l.name, l.company, l.phone, l.channel, l.status, l.score, l.owner, l.form, l.fields, l.created_at, l.updated_at \
             FROM leads l WHERE l.created_at >= $1 ORDER BY l.id",
        )
        .bind(since.map_or(i64::MIN, millis))
        .fetch(&self.pool)
        .map(|r| lead_from_row(&r?))
    }

    /// Events since `since` (all without), oldest first, streamed from the database.
    pub fn export_events(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<ExportEvent, StoreError>> + '_ {
        sqlx::query(
            "SELECT e.id, l.email, e.at, e.kind, e.detail FROM events e JOIN leads l ON l.id = e.lead_id \
             WHERE e.at >= $1 ORDER BY e.at, e.id",
        )
        .bind(since.map_or(i64::MIN, millis))
        .fetch(&self.pool)
        .map(|r| {
            let r = r?;
            Ok(ExportEvent {
                id: r.get(0),
                lead: r.get(1),
                at: from_millis(r.get(2)),
                kind: r.get(3),
                detail: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default(),
            })
        })
    }

    /// Verdicts since `since` (all without), oldest first, streamed from the database.
    pub fn export_verdicts(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<ExportVerdict, StoreError>> + '_ {
        sqlx::query(
            "SELECT v.id, l.email, v.at, v.verdict, v.reason, v.comment, v.target, v.by_addr, v.source \
             FROM verdicts v JOIN leads l ON l.id = v.lead_id WHERE v.at >= $1 ORDER BY v.at, v.id",
        )
        .bind(since.map_or(i64::MIN, millis))
        .fetch(&self.pool)
        .map(|r| {
            let r = r?;
            Ok(ExportVerdict {
                id: r.get(0),
                lead: r.get(1),
                at: from_millis(r.get(2)),
                verdict: r.get(3),
                reason: r.get(4),
                comment: r.get(5),
                target: r.get(6),
                by: r.get(7),
                source: r.get(8),
            })
        })
    }

    /// Erases the person with this address (the lead's own or an alias), in one transaction;
    /// see the module's documentation for what goes and what stays. `by` is who asked, for the
    /// `erased` event. Erasing an address with no lead still hashes it onto the suppression
    /// list and sweeps it from every table.
    ///
    /// # Errors
    /// A failed query; then nothing is erased.
    #[instrument(skip_all)]
    pub async fn erase_person(
        &self,
        email: &EmailAddress,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Erased, StoreError> {
        let now_ms = millis(now);
        let mut tx = self.begin().await?;
        // A write first: it takes SQLite's write lock before anything is read (see
        // `import_chunk`).
        let key = erasure_key(&mut tx, now).await?;
        let lead: Option<(i64, String)> = sqlx::query(
            "SELECT id, email FROM leads WHERE email = $1 \
             UNION ALL SELECT l.id, l.email FROM lead_aliases a JOIN leads l ON l.id = a.lead_id WHERE a.email = $1",
        )
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| (r.get(0), r.get(1)));
        let mut addresses: Vec<String> = vec![email.as_str().to_owned()];
        let mut erased = Erased::default();
        if let Some((id, lead_email)) = &lead {
            let id = *id;
            addresses.push(lead_email.clone());
            let aliases = sqlx::query("SELECT email FROM lead_aliases WHERE lead_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            addresses.extend(aliases.iter().map(|r| r.get::<String, _>(0)));
            addresses.sort();
            addresses.dedup();
            let opaque = format!("erased-{id}@{ERASED_DOMAIN}");
            erase_lead_rows(&mut tx, id, &opaque, &addresses, now_ms).await?;
            let detail = serde_json::json!({ "by": by });
            sqlx::query(
                "INSERT INTO events (lead_id, at, kind, detail) VALUES ($1, $2, 'erased', $3)",
            )
            .bind(id)
            .bind(now_ms)
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
            erased.lead = Some(LeadId(id));
            erased.opaque = Some(opaque);
        }
        // Mail to the addresses outside the lead (send-test, a hand-off about someone else).
        let list = numbered(1, addresses.len());
        let outbox_ids: Vec<i64> = {
            let sql = format!("SELECT id FROM outbox WHERE LOWER(recipient) IN ({list})");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in &addresses {
                q = q.bind(a.as_str());
            }
            q.fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        erase_outbox_rows(&mut tx, &outbox_ids, now_ms).await?;
        // Their recipient becomes the opaque address (the rows stay for the counts).
        let sql = format!(
            "UPDATE outbox SET recipient = $1, recipient_domain = '{ERASED_DOMAIN}' WHERE LOWER(recipient) IN ({})",
            numbered(2, addresses.len())
        );
        let opaque = erased
            .opaque
            .clone()
            .unwrap_or_else(|| format!("erased@{ERASED_DOMAIN}"));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(opaque);
        for a in &addresses {
            q = q.bind(a.as_str());
        }
        q.execute(&mut *tx).await?;
        for a in &addresses {
            sqlx::query("DELETE FROM suppressions WHERE kind = 'address' AND value = $1")
                .bind(a.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO suppressions (kind, value, reason, created_at) VALUES ('address', $1, $2, $3) \
                 ON CONFLICT (kind, value) DO NOTHING",
            )
            .bind(hashed(&key, a))
            .bind("erased on request")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        erased.addresses = addresses.len();
        erased.swept = sweep(&mut tx, self.backend, &addresses).await?;
        tx.commit().await?;
        Ok(erased)
    }

    /// Whether `address` was erased: its keyed hash is on the suppression list.
    ///
    /// # Errors
    /// A failed query.
    pub async fn erased(&self, address: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(!erased_among(&mut conn, &[address]).await?.is_empty())
    }

    /// Removes the stored bodies older than `before`: the text and original text of inbound
    /// messages recorded before it, and the bytes of messages sent before it. Rows stay (counts,
    /// dedupe, timelines); a message still waiting to be sent keeps its bytes whatever its age.
    /// Works in batches of a few hundred rows, each its own transaction.
    ///
    /// # Errors
    /// A failed query; batches done before it stay done.
    #[instrument(skip_all)]
    pub async fn drop_old_bodies(&self, before: DateTime<Utc>) -> Result<Retained, StoreError> {
        const BATCH: i64 = 500;
        let before_ms = millis(before);
        let mut done = Retained::default();
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT id, detail FROM inbound_messages WHERE id > $1 AND recorded_at < $2 \
                 AND (detail LIKE '%\"text\"%' OR detail LIKE '%\"original\\_text\"%' ESCAPE '\\') ORDER BY id LIMIT $3",
            )
            .bind(after)
            .bind(before_ms)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            let mut tx = self.begin().await?;
            for r in &rows {
                let Ok(serde_json::Value::Object(mut detail)) =
                    serde_json::from_str::<serde_json::Value>(&r.get::<String, _>(1))
                else {
                    continue;
                };
                let had =
                    detail.remove("text").is_some() | detail.remove("original_text").is_some();
                if had {
                    sqlx::query("UPDATE inbound_messages SET detail = $1 WHERE id = $2")
                        .bind(serde_json::Value::Object(detail).to_string())
                        .bind(r.get::<i64, _>(0))
                        .execute(&mut *tx)
                        .await?;
                    done.messages += 1;
                }
            }
            tx.commit().await?;
        }
        loop {
            let n = sqlx::query(
                "DELETE FROM outbox_bodies WHERE outbox_id IN ( \
                   SELECT o.id FROM outbox o JOIN outbox_bodies b ON b.outbox_id = o.id \
                   WHERE o.state = 'sent' AND o.sent_at < $1 ORDER BY o.id LIMIT $2)",
            )
            .bind(before_ms)
            .bind(BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            done.outbox += n;
            if n == 0 {
                break;
            }
        }
        Ok(done)
    }

    /// Runs [`Store::drop_old_bodies`] for bodies older than `keep` now and then every
    /// `every`, until `cancel` fires: a task of the daemon's own when `[retention]` is set.
    pub async fn retention(
        self,
        keep: std::time::Duration,
        every: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => return,
            }
            let Ok(keep) = chrono::Duration::from_std(keep) else {
                return;
            };
            match self.drop_old_bodies(Utc::now() - keep).await {
                Ok(r) if r.messages + r.outbox > 0 => tracing::info!(
                    messages = r.messages,
                    outbox = r.outbox,
                    "retention: removed stored message bodies"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "retention: cannot remove old message bodies; trying again later");
                }
            }
        }
    }
}

/// The leads with these addresses, by address.
async fn existing_leads(
    conn: &mut sqlx::AnyConnection,
    emails: &[&str],
) -> Result<HashMap<String, LeadState>, StoreError> {
    let mut out = HashMap::new();
    for chunk in emails.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT id, email, name, company, phone, owner, form, status, score, fields FROM leads WHERE email IN ({})",
            numbered(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for e in chunk {
            q = q.bind(*e);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let id: i64 = r.get(0);
            let status = r
                .get::<String, _>(7)
                .parse()
                .map_err(super::unreadable("leads", id, "status"))?;
            out.insert(
                r.get(1),
                LeadState {
                    id: Some(id),
                    name: r.get(2),
                    company: r.get(3),
                    phone: r.get(4),
                    owner: r.get(5),
                    form: r.get(6),
                    status,
                    score: r.get(8),
                    fields: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
                },
            );
        }
    }
    Ok(out)
}

/// Writes one row's action and its `imported` event.
async fn write_row(
    conn: &mut sqlx::AnyConnection,
    action: &ImportAction,
    next: &mut LeadState,
    row: &ImportRow,
    email: &EmailAddress,
    file_name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now_ms = millis(now);
    let fields = serde_json::Value::Object(next.fields.clone()).to_string();
    let detail;
    match action {
        ImportAction::Unchanged => return Ok(()),
        ImportAction::Create => {
            // Made by ingest since the chunk was read: the row then counts as created by it,
            // and its values fill what the lead lacks at the next run.
            let id: Option<i64> = sqlx::query(
                "INSERT INTO leads (email, name, company, phone, channel, status, score, owner, form, fields, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (email) DO NOTHING RETURNING id",
            )
            .bind(email.as_str())
            .bind(next.name.as_deref())
            .bind(next.company.as_deref())
            .bind(next.phone.as_deref())
            .bind(row.channel.as_str())
            .bind(next.status.as_str())
            .bind(next.score)
            .bind(next.owner.as_deref())
            .bind(next.form.as_deref())
            .bind(fields.as_str())
            .bind(row.created_at.map_or(now_ms, millis))
            .bind(now_ms)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.get(0));
            let Some(id) = id else { return Ok(()) };
            next.id = Some(id);
            detail = serde_json::json!({ "file": file_name, "line": row.line });
        }
        ImportAction::Update(changed) => {
            let Some(id) = next.id else { return Ok(()) };
            sqlx::query(
                "UPDATE leads SET name = $1, company = $2, phone = $3, owner = $4, form = $5, status = $6, \
                 score = $7, fields = $8, updated_at = $9 WHERE id = $10",
            )
            .bind(next.name.as_deref())
            .bind(next.company.as_deref())
            .bind(next.phone.as_deref())
            .bind(next.owner.as_deref())
            .bind(next.form.as_deref())
            .bind(next.status.as_str())
            .bind(next.score)
            .bind(fields.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            detail = serde_json::json!({ "file": file_name, "line": row.line, "changed": changed });
        }
    }
    let Some(id) = next.id else { return Ok(()) };
    sqlx::query("INSERT INTO events (lead_id, at, kind, detail) VALUES ($1, $2, 'imported', $3)")
        .bind(id)
        .bind(now_ms)
        .bind(detail.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn save_progress(
    conn: &mut sqlx::AnyConnection,
    run: &ImportRun,
    p: &ImportProgress,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO import_progress (file_key, file_name, line, created, updated, unchanged, bad, done, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (file_key) DO UPDATE SET file_name = excluded.file_name, line = excluded.line, \
           created = excluded.created, updated = excluded.updated, unchanged = excluded.unchanged, \
           bad = excluded.bad, done = excluded.done, updated_at = excluded.updated_at",
    )
    .bind(run.key.as_str())
    .bind(run.file_name.as_str())
    .bind(n(p.line))
    .bind(n(p.created))
    .bind(n(p.updated))
    .bind(n(p.unchanged))
    .bind(n(p.bad))
    .bind(i64::from(p.done))
    .bind(millis(run.started_at))
    .bind(millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Empties the personal columns of lead `id` and of every row about it.
async fn erase_lead_rows(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    opaque: &str,
    addresses: &[String],
    now_ms: i64,
) -> Result<(), StoreError> {
    let list = numbered(2, addresses.len());
    // Inbound messages: kept for the counts by kind, without who, what or the text. A dedupe
    // key that names the address (a Message-ID made from it) is replaced by its hash.
    let sql = format!(
        "UPDATE inbound_messages SET lead_email = $1, subject = NULL, message_id = NULL, reason = NULL, detail = '{{}}' \
         WHERE lead_email IN ({list})"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(opaque);
    for a in addresses {
        q = q.bind(a.as_str());
    }
    q.execute(&mut *conn).await?;
    for a in addresses {
        let keys = sqlx::query(
            "SELECT dedupe_key FROM inbound_messages WHERE LOWER(dedupe_key) LIKE $1 ESCAPE '\\'",
        )
        .bind(like_pattern(a))
        .fetch_all(&mut *conn)
        .await?;
        for r in keys {
            let old: String = r.get(0);
            if !names_address(&old, a) {
                continue;
            }
            let new = format!("erased:{}", hex(&Sha256::digest(old.as_bytes())));
            for (table, column) in [
                ("inbound_messages", "dedupe_key"),
                ("handoffs", "inbound_key"),
                ("verdicts", "inbound_key"),
            ] {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {table} SET {column} = $1 WHERE {column} = $2"
                )))
                .bind(new.as_str())
                .bind(old.as_str())
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    for sql in [
        "UPDATE events SET detail = '{}' WHERE lead_id = $1",
        "UPDATE verdicts SET reason = NULL, comment = NULL WHERE lead_id = $1",
        "UPDATE handoffs SET why = 'erased', note = NULL, state = CASE WHEN state = 'pending' THEN 'skipped' ELSE state END WHERE lead_id = $1",
        "UPDATE enrollments SET state = CASE WHEN state IN ('active', 'held') THEN 'exited' ELSE state END, \
           exit_reason = CASE WHEN state IN ('active', 'held') THEN 'erased' ELSE exit_reason END, \
           next_step = NULL, next_due_at = NULL, error = NULL WHERE lead_id = $1",
        "DELETE FROM lead_aliases WHERE lead_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    let ids: Vec<i64> = sqlx::query(
        "SELECT id FROM outbox WHERE lead_id = $1 UNION SELECT outbox_id FROM handoffs WHERE lead_id = $1 AND outbox_id IS NOT NULL",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    erase_outbox_rows(conn, &ids, now_ms).await?;
    sqlx::query(
        "UPDATE leads SET email = $1, name = NULL, company = NULL, phone = NULL, fields = '{}', updated_at = $2 WHERE id = $3",
    )
    .bind(opaque)
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes the bytes and server answers of these outbox rows, and cancels those not sent.
async fn erase_outbox_rows(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
    now_ms: i64,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM outbox_bodies WHERE outbox_id IN ({})",
            numbered(1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
        let sql = format!(
            "UPDATE outbox SET state = CASE WHEN state IN ('sent', 'cancelled') THEN state ELSE 'cancelled' END, \
               lease_until = NULL, last_error = CASE WHEN state IN ('sent', 'cancelled') THEN NULL ELSE 'erased' END, \
               smtp_response = NULL, updated_at = $1 WHERE id IN ({})",
            numbered(2, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .bind(now_ms);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$first,…` for `count` parameters.
fn numbered(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Blanks every text value in the database that still names one of `addresses` (any case, as
/// a whole address: `ann@x.org` does not match inside `joann@x.org`): NULL where the column
/// allows it, `{}` in a JSON column, `erased` otherwise. Returns the `table.column` places it
/// changed.
async fn sweep(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    addresses: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut columns: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    let rows = match backend {
        Backend::Sqlite => {
            sqlx::query(
                "SELECT m.name, p.name, p.\"notnull\" FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
                   AND UPPER(p.type) LIKE '%TEXT%' ORDER BY m.name, p.cid",
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Backend::Postgres => {
            sqlx::query(
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                   AND data_type IN ('text', 'character varying') AND table_name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    for r in &rows {
        let table: String = r.get(0);
        if table == "data_secrets" {
            continue;
        }
        let not_null: i64 = match backend {
            Backend::Sqlite => r.get(2),
            Backend::Postgres => i64::from(r.get::<i32, _>(2)),
        };
        columns
            .entry(table)
            .or_default()
            .push((r.get(1), not_null != 0));
    }
    let (row_id, by_row_id) = match backend {
        Backend::Sqlite => ("CAST(rowid AS TEXT)", "rowid = CAST($1 AS INTEGER)"),
        Backend::Postgres => ("CAST(ctid AS TEXT)", "ctid = CAST($1 AS tid)"),
    };
    let patterns: Vec<String> = addresses.iter().map(|a| like_pattern(a)).collect();
    let mut swept = Vec::new();
    for (table, cols) in &columns {
        for (column, not_null) in cols {
            let cond = (1..=patterns.len())
                .map(|n| format!("LOWER(\"{column}\") LIKE ${n} ESCAPE '\\'"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let sql = format!("SELECT {row_id}, \"{column}\" FROM \"{table}\" WHERE {cond}");
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for p in &patterns {
                q = q.bind(p.as_str());
            }
            let hits: Vec<String> = q
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .filter(|r| {
                    let value: String = r.get(1);
                    addresses.iter().any(|a| names_address(&value, a))
                })
                .map(|r| r.get(0))
                .collect();
            if hits.is_empty() {
                continue;
            }
            let value = if !not_null {
                "NULL"
            } else if column == "detail" || column == "fields" {
                "'{}'"
            } else {
                ERASED_TEXT
            };
            let sql = format!("UPDATE \"{table}\" SET \"{column}\" = {value} WHERE {by_row_id}");
            for hit in &hits {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .persistent(false)
                    .bind(hit.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            swept.push(format!("{table}.{column}"));
        }
    }
    Ok(swept)
}

/// Whether `text` holds `address` (lower-case) as a whole address, in any case: not inside a
/// longer local part (`joann@` for `ann@`) or a longer domain (`x.org.uk` for `x.org`).
fn names_address(text: &str, address: &str) -> bool {
    let text = text.to_lowercase();
    let local = |c: char| c.is_alphanumeric() || "._%+-'!#$&*/=?^`{|}~".contains(c);
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|t| t.find(address)) {
        let start = from + at;
        let end = start + address.len();
        let before = text.get(..start).and_then(|t| t.chars().next_back());
        let mut after = text.get(end..).map(str::chars).into_iter().flatten();
        let next = after.next();
        let longer_domain = match next {
            Some(c) if c.is_alphanumeric() || c == '-' => true,
            Some('.') => after.next().is_some_and(char::is_alphanumeric),
            _ => false,
        };
        if !before.is_some_and(local) && !longer_domain {
            return true;
        }
        from = start + address.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// A `LIKE` pattern for values containing `text` (lower-case), with `\` as the escape.
pub(super) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The erasure key, made on first use.
async fn erasure_key(
    conn: &mut sqlx::AnyConnection,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let fresh: [u8; 32] = rand::random();
    sqlx::query(
        "INSERT INTO data_secrets (name, value, created_at) VALUES ('erasure', $1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(hex(&fresh))
    .bind(millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(
        sqlx::query("SELECT value FROM data_secrets WHERE name = 'erasure'")
            .fetch_one(&mut *conn)
            .await?
            .get(0),
    )
}

/// Of these recipients, the ones erased: their keyed hash is on the suppression list. One
/// query when nothing was ever erased, two otherwise.
///
/// # Errors
/// A failed query.
pub(super) async fn erased_among<'a>(
    conn: &mut sqlx::AnyConnection,
    recipients: &[&'a str],
) -> Result<HashSet<&'a str>, StoreError> {
    if recipients.is_empty() {
        return Ok(HashSet::new());
    }
    let key: Option<String> = sqlx::query(
        "SELECT value FROM data_secrets WHERE name = 'erasure' AND EXISTS ( \
           SELECT 1 FROM suppressions WHERE kind = 'address' AND value >= $1 AND value < $2)",
    )
    .bind(HASH_PREFIX)
    .bind(HASH_PREFIX_END)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| r.get(0));
    let Some(key) = key else {
        return Ok(HashSet::new());
    };
    let hashes: HashMap<String, &'a str> = recipients
        .iter()
        .map(|r| {
            let normal = EmailAddress::parse(r)
                .map_or_else(|_| r.trim().to_lowercase(), |a| a.as_str().to_owned());
            (hashed(&key, &normal), *r)
        })
        .collect();
    let mut found = HashSet::new();
    let values: Vec<&String> = hashes.keys().collect();
    for chunk in values.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT value FROM suppressions WHERE kind = 'address' AND value IN ({})",
            (1..=chunk.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for v in chunk {
            q = q.bind(v.as_str());
        }
        for r in q.fetch_all(&mut *conn).await? {
            if let Some(rec) = hashes.get(&r.get::<String, _>(0)) {
                found.insert(*rec);
            }
        }
    }
    Ok(found)
}

/// The suppression value of an erased (normalised) address.
fn hashed(key: &str, address: &str) -> String {
    format!(
        "{HASH_PREFIX}{}",
        hex(&hmac_sha256(key.as_bytes(), address.as_bytes()))
    )
}

/// HMAC-SHA256 (RFC 2104): a hash only the holder of the key can compute, so the suppression
/// list's hashes cannot be checked against a list of guessed addresses without the database.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac as _;
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn row(email: &str) -> ImportRow {
        ImportRow {
            email: Some(EmailAddress::parse(email).unwrap()),
            ..ImportRow::new(2, "import".into(), LeadStatus::New)
        }
    }

    #[test]
    fn merge_fills_what_is_empty_and_keeps_the_rest() {
        let (a, first) = merge(
            None,
            &ImportRow {
                name: Some("Ann".into()),
                ..row("ann@example.org")
            },
        );
        assert_eq!(a, ImportAction::Create);
        let mut again = row("ann@example.org");
        again.name = Some("Someone Else".into());
        again.company = Some("Acme".into());
        again.fields.insert("plan".into(), "pro".into());
        let (a, next) = merge(Some(&first), &again);
        assert_eq!(
            a,
            ImportAction::Update(vec!["company".into(), "fields.plan".into()])
        );
        assert_eq!(next.name.as_deref(), Some("Ann"));
        assert_eq!(merge(Some(&next), &again).0, ImportAction::Unchanged);
    }

    #[test]
    fn only_an_explicit_status_changes_a_lead_and_never_an_unsubscribed_one() {
        let (_, mut lead) = merge(None, &row("bo@example.org"));
        lead.status = LeadStatus::Qualified;
        let mut r = row("bo@example.org");
        r.default_status = LeadStatus::Customer;
        assert_eq!(merge(Some(&lead), &r).0, ImportAction::Unchanged);
        r.status = Some(LeadStatus::Customer);
        let (a, next) = merge(Some(&lead), &r);
        assert_eq!(a, ImportAction::Update(vec!["status".into()]));
        assert_eq!(next.status, LeadStatus::Customer);
        lead.status = LeadStatus::Unsubscribed;
        assert_eq!(merge(Some(&lead), &r).0, ImportAction::Unchanged);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("A_b%c@x.org"), "%a\\_b\\%c@x.org%");
    }
}
