//! The web view's list of leads: a page of leads that match what a person searches and
//! filters for, in the order they chose.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use tracing::instrument;

use super::data::like_pattern;
use super::{Backend, LEAD_COLUMNS, Lead, Store, StoreError, from_millis, lead_from_row, millis};
use crate::domain::{LeadId, LeadStatus};

/// The order of the leads list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeadSort {
    /// The newest first (the default).
    #[default]
    Newest,
    /// The oldest first.
    Oldest,
    /// The highest score first.
    Score,
    /// By address.
    Email,
}

impl LeadSort {
    /// Every order, by its name in the page's address.
    pub const ALL: [(LeadSort, &'static str); 4] = [
        (LeadSort::Newest, "newest"),
        (LeadSort::Oldest, "oldest"),
        (LeadSort::Score, "score"),
        (LeadSort::Email, "email"),
    ];

    /// The order named `name`, if there is one.
    pub fn parse(name: &str) -> Option<LeadSort> {
        LeadSort::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(s, _)| *s)
    }

    /// Its name in the page's address.
    pub fn name(self) -> &'static str {
        LeadSort::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("newest", |(_, n)| n)
    }

    /// The column of `leads` the list is ordered by (then by id), and whether it goes down.
    fn key(self) -> (&'static str, bool) {
        match self {
            LeadSort::Newest => ("created_at", true),
            LeadSort::Oldest => ("created_at", false),
            LeadSort::Score => ("score", true),
            LeadSort::Email => ("email", false),
        }
    }
}

/// Where a page of the leads list starts or ends: the order's key and the id of a lead on
/// the page next to it. Reading on from a position costs the same on the last page as on the
/// first, where skipping the pages before it costs more the further one goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadCursor {
    key: CursorKey,
    id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CursorKey {
    Int(i64),
    Text(String),
}

impl LeadCursor {
    /// The position of `lead` in the list ordered by `sort`.
    pub fn of(sort: LeadSort, lead: &LeadLine) -> LeadCursor {
        let key = match sort {
            LeadSort::Newest | LeadSort::Oldest => CursorKey::Int(millis(lead.created_at)),
            LeadSort::Score => CursorKey::Int(lead.score),
            LeadSort::Email => CursorKey::Text(lead.email.clone()),
        };
        LeadCursor { key, id: lead.id.0 }
    }

    /// A position as [`LeadCursor::to_param`] wrote it for `sort`; `None` for anything else.
    pub fn parse(sort: LeadSort, text: &str) -> Option<LeadCursor> {
        let (key, id) = text.rsplit_once('.')?;
        let id = id.parse().ok()?;
        let key = match sort {
            LeadSort::Email => CursorKey::Text(key.to_owned()),
            _ => CursorKey::Int(key.parse().ok()?),
        };
        Some(LeadCursor { key, id })
    }

    /// The position as a value of the page's address: `KEY.ID`.
    pub fn to_param(&self) -> String {
        match &self.key {
            CursorKey::Int(k) => format!("{k}.{}", self.id),
            CursorKey::Text(k) => format!("{k}.{}", self.id),
        }
    }
}

/// What the leads list shows.
#[derive(Debug, Clone, Default)]
pub struct LeadQuery {
    /// Text in the address, the name or the company (case does not matter).
    pub search: Option<String>,
    /// Only leads first attributed to this channel.
    pub channel: Option<String>,
    /// Only leads in this status.
    pub status: Option<LeadStatus>,
    /// Only leads of this owner.
    pub owner: Option<String>,
    /// Only leads recorded at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only leads recorded before this time.
    pub until: Option<DateTime<Utc>>,
    /// The order.
    pub sort: LeadSort,
    /// Which page, from 0: the leads after skipping this many pages, when neither `after`
    /// nor `before` is given.
    pub page: u32,
    /// The page of leads that follow this position.
    pub after: Option<LeadCursor>,
    /// The page of leads that come just before this position.
    pub before: Option<LeadCursor>,
    /// Leads per page.
    pub per_page: u32,
}

/// A lead as a line of the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadLine {
    /// Its id.
    pub id: LeadId,
    /// Its address, as recorded.
    pub email: String,
    /// Its name.
    pub name: Option<String>,
    /// Its company.
    pub company: Option<String>,
    /// The channel it came through first.
    pub channel: String,
    /// Its status, as recorded.
    pub status: String,
    /// Its owner.
    pub owner: Option<String>,
    /// Its score.
    pub score: i64,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// The list's columns, in the order of [`LeadLine`]'s fields.
const LINE_COLUMNS: &str = "id, email, name, company, channel, status, owner, score, created_at";

/// A line as the page's JSON holds it.
type LineJson = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

/// One page of the leads list.
#[derive(Debug, Clone)]
pub struct LeadPage {
    /// The leads on it.
    pub leads: Vec<LeadLine>,
    /// Whether there are more after it.
    pub more: bool,
    /// Whether there are more before it, when the page was read backwards from `before`
    /// (otherwise the page number tells).
    pub more_before: Option<bool>,
}

impl Store {
    /// One page of the leads that match `q`. The statement reads the leads in the chosen
    /// order from the page's position (or after skipping the pages before it) and stops after
    /// the page, with one lead more to know whether there are more. The page comes back as one
    /// JSON value, in order: one value to copy out of the database instead of nine per lead.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(page = q.page))]
    pub async fn lead_page(&self, q: &LeadQuery) -> Result<LeadPage, StoreError> {
        let mut sql = format!("SELECT {LINE_COLUMNS} FROM leads WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let param = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            binds.len()
        };
        if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let n = param(&mut binds, Bind::Text(like_pattern(s)));
            let _ = write!(
                sql,
                " AND (LOWER(email) LIKE ${n} ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE ${n} ESCAPE '\\' OR LOWER(COALESCE(company, '')) LIKE ${n} ESCAPE '\\')"
            );
        }
        if let Some(c) = &q.channel {
            let n = param(&mut binds, Bind::Text(c.clone()));
            let _ = write!(sql, " AND channel = ${n}");
        }
        if let Some(s) = q.status {
            let n = param(&mut binds, Bind::Text(s.as_str().to_owned()));
            let _ = write!(sql, " AND status = ${n}");
        }
        if let Some(o) = &q.owner {
            let n = param(&mut binds, Bind::Text(o.to_lowercase()));
            let _ = write!(sql, " AND LOWER(owner) = ${n}");
        }
        if let Some(t) = q.from {
            let n = param(&mut binds, Bind::Int(millis(t)));
            let _ = write!(sql, " AND created_at >= ${n}");
        }
        if let Some(t) = q.until {
            let n = param(&mut binds, Bind::Int(millis(t)));
            let _ = write!(sql, " AND created_at < ${n}");
        }
        let (column, down) = q.sort.key();
        // Read backwards from `before`, then turn the page around.
        let backwards = q.after.is_none() && q.before.is_some();
        if let Some(c) = q.after.as_ref().or(q.before.as_ref()) {
            let beyond = if down == backwards { ">" } else { "<" };
            let k = param(
                &mut binds,
                match &c.key {
                    CursorKey::Int(i) => Bind::Int(*i),
                    CursorKey::Text(t) => Bind::Text(t.clone()),
                },
            );
            let id = param(&mut binds, Bind::Int(c.id));
            // The first condition alone bounds an index's range on the key.
            let _ = write!(
                sql,
                " AND {column} {beyond}= ${k} AND ({column} {beyond} ${k} OR id {beyond} ${id})"
            );
        }
        let direction = if down == backwards { "" } else { " DESC" };
        let order = format!("{column}{direction}, id{direction}");
        let per_page = q.per_page.clamp(1, 500);
        // Numbers of our own, written into the statement rather than bound (see the
        // outbox's `due_rows`).
        let _ = write!(sql, " ORDER BY {order} LIMIT {}", u64::from(per_page) + 1);
        if q.after.is_none() && q.before.is_none() {
            let _ = write!(sql, " OFFSET {}", u64::from(q.page) * u64::from(per_page));
        }
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "SELECT json_group_array(json_array({LINE_COLUMNS}) ORDER BY {order}) FROM ({sql}) page"
            ),
            Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({LINE_COLUMNS}) ORDER BY {order}), '[]')::text FROM ({sql}) page"
            ),
        };
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let page = match self.readers.slot() {
            Some(slot) => {
                let mut conn = slot.lock().await;
                let result = match conn.as_mut() {
                    Some(c) => query.fetch_one(c).await,
                    None => match Readers::connect(&self.readers.url).await {
                        Ok(c) => query.fetch_one(&mut *conn.insert(c)).await,
                        Err(e) => Err(e),
                    },
                };
                if result.is_err() {
                    // Opened again for the next page rather than trusted after an error.
                    *conn = None;
                }
                result?
            }
            None => query.fetch_one(&self.pool).await?,
        };
        let lines: Vec<LineJson> = serde_json::from_str(&page)
            .map_err(|e| StoreError::Query(sqlx::Error::Decode(Box::new(e))))?;
        let mut leads: Vec<LeadLine> = lines
            .into_iter()
            .map(
                |(id, email, name, company, channel, status, owner, score, created_at)| LeadLine {
                    id: LeadId(id),
                    email,
                    name,
                    company,
                    channel,
                    status,
                    owner,
                    score,
                    created_at: from_millis(created_at),
                },
            )
            .collect();
        let beyond = leads.len() > per_page as usize;
        leads.truncate(per_page as usize);
        if backwards {
            leads.reverse();
            // The lead at `before` follows this page.
            return Ok(LeadPage {
                leads,
                more: true,
                more_before: Some(beyond),
            });
        }
        Ok(LeadPage {
            leads,
            more: beyond,
            more_before: None,
        })
    }

    /// The lead with this id, for its page: one statement, prepared once per connection.
    ///
    /// # Errors
    /// A failed query; a row this version cannot read.
    pub async fn lead_by_id(&self, id: LeadId) -> Result<Option<Lead>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(lead_from_row).transpose()
    }
}

/// How many SQLite connections read the leads list beside the pool.
const READERS: usize = 4;

/// SQLite connections that read the leads list, each opened at its first use and kept (four:
/// two were measured to serve fewer pages, the pool's connections stay free for the rest). sqlx
/// runs a SQLite connection on a thread of its own, and a connection lent by the pool costs a
/// second trip to that thread when it goes back (the pool pings it): the list's one statement
/// on a connection of its own is one trip. Reads only, so nothing is left half done when a
/// request is dropped during one.
#[derive(Debug)]
pub(super) struct Readers {
    /// The SQLite database's address (empty on PostgreSQL, whose connections the pool lends).
    url: String,
    slots: Vec<tokio::sync::Mutex<Option<sqlx::AnyConnection>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Readers {
    pub(super) fn new(sqlite_url: Option<String>) -> Readers {
        let slots = if sqlite_url.is_some() { READERS } else { 0 };
        Readers {
            url: sqlite_url.unwrap_or_default(),
            slots: (0..slots).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next connection's place, in turn; `None` on PostgreSQL.
    fn slot(&self) -> Option<&tokio::sync::Mutex<Option<sqlx::AnyConnection>>> {
        if self.slots.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.slots.get(n % self.slots.len())
    }

    async fn connect(url: &str) -> Result<sqlx::AnyConnection, sqlx::Error> {
        use sqlx::Connection as _;
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        sqlx::Executor::execute(&mut conn, "PRAGMA busy_timeout = 10000").await?;
        Ok(conn)
    }
}

/// The verdict reasons counted last, and the newest verdict then.
#[derive(Debug)]
pub(super) struct ReasonsSeen {
    newest: Option<i64>,
    limit: u32,
    reasons: Vec<String>,
}

impl Store {
    /// The reasons verdicts have given, the most used first (at most `limit`): what the
    /// verdict form offers, so Sales words the same reason the same way. Counting them reads
    /// every verdict, so the count is kept until another verdict is recorded, by any process
    /// (the newest verdict's id, one index lookup, tells).
    ///
    /// # Errors
    /// A failed query.
    pub async fn verdict_reasons(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM verdicts")
            .fetch_one(&self.pool)
            .await?;
        if let Ok(seen) = self.verdict_reasons.lock()
            && let Some(seen) = seen.as_ref()
            && seen.limit == limit
            && seen.newest == newest
        {
            return Ok(seen.reasons.clone());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT reason FROM verdicts WHERE reason IS NOT NULL AND reason <> '' \
             GROUP BY reason ORDER BY COUNT(*) DESC, reason LIMIT {limit}"
        )))
        .fetch_all(&self.pool)
        .await?;
        let reasons: Vec<String> = rows.iter().map(|r| sqlx::Row::get(r, 0)).collect();
        if let Ok(mut seen) = self.verdict_reasons.lock() {
            *seen = Some(ReasonsSeen {
                newest,
                limit,
                reasons: reasons.clone(),
            });
        }
        Ok(reasons)
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_takes_wildcards_literally() {
        assert_eq!(like_pattern("Ana"), "%ana%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn a_position_reads_back_as_written_and_nothing_else_does() {
        let line = LeadLine {
            id: LeadId(42),
            email: "a.b@example.org".to_owned(),
            name: None,
            company: None,
            channel: "web".to_owned(),
            status: "new".to_owned(),
            owner: None,
            score: -3,
            created_at: from_millis(1_765_000_000_123),
        };
        for sort in LeadSort::ALL.map(|(s, _)| s) {
            let at = LeadCursor::of(sort, &line);
            assert_eq!(
                LeadCursor::parse(sort, &at.to_param()),
                Some(at),
                "{sort:?}"
            );
        }
        assert_eq!(
            LeadCursor::of(LeadSort::Newest, &line).to_param(),
            "1765000000123.42"
        );
        assert_eq!(
            LeadCursor::of(LeadSort::Email, &line).to_param(),
            "a.b@example.org.42"
        );
        assert_eq!(
            LeadCursor::parse(LeadSort::Newest, "a.b@example.org.42"),
            None
        );
        assert_eq!(LeadCursor::parse(LeadSort::Score, "12"), None);
        assert_eq!(LeadCursor::parse(LeadSort::Oldest, "12.x"), None);
    }

    #[test]
    fn every_order_has_a_name_it_is_found_by() {
        for (sort, name) in LeadSort::ALL {
            assert_eq!(LeadSort::parse(name), Some(sort));
            assert_eq!(sort.name(), name);
        }
        assert_eq!(LeadSort::parse("nonsense"), None);
    }
}
