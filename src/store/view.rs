//! The web view's list of leads: a page of leads that match what a person searches and
//! filters for, in the order they chose.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use tracing::instrument;

use super::data::like_pattern;
use super::{LEAD_COLUMNS, Lead, Store, StoreError, lead_from_row, millis};
use crate::domain::LeadStatus;

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

    fn order_by(self) -> &'static str {
        match self {
            LeadSort::Newest => "l.created_at DESC, l.id DESC",
            LeadSort::Oldest => "l.created_at, l.id",
            LeadSort::Score => "l.score DESC, l.id DESC",
            LeadSort::Email => "l.email, l.id",
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
    /// Which page, from 0.
    pub page: u32,
    /// Leads per page.
    pub per_page: u32,
}

/// One page of the leads list.
#[derive(Debug, Clone)]
pub struct LeadPage {
    /// The leads on it.
    pub leads: Vec<Lead>,
    /// Whether there are more after it.
    pub more: bool,
}

impl Store {
    /// One page of the leads that match `q`. The statement reads the leads in the chosen
    /// order and stops after the page (one lead more, to know whether there are more).
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(page = q.page))]
    pub async fn lead_page(&self, q: &LeadQuery) -> Result<LeadPage, StoreError> {
        let mut sql = format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let param = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            binds.len()
        };
        if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let n = param(&mut binds, Bind::Text(like_pattern(s)));
            let _ = write!(
                sql,
                " AND (LOWER(l.email) LIKE ${n} ESCAPE '\\' OR LOWER(COALESCE(l.name, '')) LIKE ${n} ESCAPE '\\' OR LOWER(COALESCE(l.company, '')) LIKE ${n} ESCAPE '\\')"
            );
        }
        if let Some(c) = &q.channel {
            let n = param(&mut binds, Bind::Text(c.clone()));
            let _ = write!(sql, " AND l.channel = ${n}");
        }
        if let Some(s) = q.status {
            let n = param(&mut binds, Bind::Text(s.as_str().to_owned()));
            let _ = write!(sql, " AND l.status = ${n}");
        }
        if let Some(o) = &q.owner {
            let n = param(&mut binds, Bind::Text(o.to_lowercase()));
            let _ = write!(sql, " AND LOWER(l.owner) = ${n}");
        }
        if let Some(t) = q.from {
            let n = param(&mut binds, Bind::Int(millis(t)));
            let _ = write!(sql, " AND l.created_at >= ${n}");
        }
        if let Some(t) = q.until {
            let n = param(&mut binds, Bind::Int(millis(t)));
            let _ = write!(sql, " AND l.created_at < ${n}");
        }
        let per_page = q.per_page.clamp(1, 500);
        // Numbers of our own, written into the statement rather than bound (see the
        // outbox's `due_rows`).
        let _ = write!(
            sql,
            " ORDER BY {} LIMIT {} OFFSET {}",
            q.sort.order_by(),
            u64::from(per_page) + 1,
            u64::from(q.page) * u64::from(per_page)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut leads = rows
            .iter()
            .map(lead_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = leads.len() > per_page as usize;
        leads.truncate(per_page as usize);
        Ok(LeadPage { leads, more })
    }
}

impl Store {
    /// The reasons verdicts have given, the most used first (at most `limit`): what the
    /// verdict form offers, so Sales words the same reason the same way.
    ///
    /// # Errors
    /// A failed query.
    pub async fn verdict_reasons(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT reason FROM verdicts WHERE reason IS NOT NULL AND reason <> '' \
             GROUP BY reason ORDER BY COUNT(*) DESC, reason LIMIT {limit}"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| sqlx::Row::get(r, 0)).collect())
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
    fn every_order_has_a_name_it_is_found_by() {
        for (sort, name) in LeadSort::ALL {
            assert_eq!(LeadSort::parse(name), Some(sort));
            assert_eq!(sort.name(), name);
        }
        assert_eq!(LeadSort::parse("nonsense"), None);
    }
}
