//! What the reports (`leadloop report …`) count, aggregated in the database.
//!
//! What a report counts per lead (a reply, a hand-off, the newest quality verdict and the
//! first one's time) is kept on the lead by triggers as it happens (migration `reports`), so
//! the cost of a report grows with the leads in its window, not with their messages. The
//! channel report reads ranges of indexes made for it (see [`Store::lead_report`]); the form
//! and owner reports are one grouped pass over the window's leads. Only groups leave the
//! database: a report over a million leads holds a few hundred rows in memory.
//!
//! Periods (`--by week|month`) are computed by the caller in the team's time zone and come in
//! as boundaries; the SQL puts each row in its period with a balanced `CASE`, a handful of
//! comparisons per row, which both databases evaluate alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{Backend, Store, StoreError, millis};

/// Milliseconds in a day, for the days from first contact to verdict.
const DAY_MS: f64 = 86_400_000.0;

/// What a report counts in: a time window and, optionally, periods within it.
#[derive(Debug, Clone, Default)]
pub struct ReportWindow {
    /// From this moment on (inclusive); `None` from the start.
    pub since: Option<DateTime<Utc>>,
    /// Up to this moment (exclusive); `None` without end.
    pub until: Option<DateTime<Utc>>,
    /// Period boundaries, ascending: period `i` runs from `bounds[i]` (inclusive) to
    /// `bounds[i + 1]` (exclusive). Empty (or one boundary): no periods. Rows outside the
    /// periods are not counted, so the boundaries should cover the window.
    pub bounds: Vec<DateTime<Utc>>,
}

impl ReportWindow {
    fn periods(&self) -> bool {
        self.bounds.len() >= 2
    }

    /// The lower and upper limits a row's time must fall within: the window, narrowed to the
    /// periods when there are any.
    fn limits(&self) -> (i64, i64) {
        let mut lo = self.since.map_or(i64::MIN, millis);
        let mut hi = self.until.map_or(i64::MAX, millis);
        if self.periods() {
            lo = lo.max(self.bounds.first().map_or(i64::MIN, |b| millis(*b)));
            hi = hi.min(self.bounds.last().map_or(i64::MAX, |b| millis(*b)));
        }
        (lo, hi)
    }

    /// Each period's index and time range within the window (the window itself as period 0
    /// without periods).
    fn ranges(&self) -> Vec<(usize, i64, i64)> {
        let (lo, hi) = self.limits();
        if !self.periods() {
            return vec![(0, lo, hi)];
        }
        self.bounds
            .windows(2)
            .enumerate()
            .map(|(i, b)| (i, lo.max(millis(b[0])), hi.min(millis(b[1]))))
            .filter(|(_, a, b)| a < b)
            .collect()
    }

    /// The SQL expression giving the period index of the time in `column` (`0` without
    /// periods).
    fn period_sql(&self, column: &str) -> String {
        if !self.periods() {
            return "CAST(0 AS BIGINT)".to_owned();
        }
        let inner: Vec<i64> = self.bounds[1..self.bounds.len() - 1]
            .iter()
            .map(|b| millis(*b))
            .collect();
        // BIGINT on both databases, so the index reads back alike.
        format!("CAST({} AS BIGINT)", bucket_sql(column, &inner, 0))
    }
}

/// A balanced `CASE` putting `column` into one of `inner.len() + 1` buckets numbered from
/// `base`: bucket `base + i` holds values below `inner[i]` and at or above `inner[i - 1]`.
/// The boundaries are numbers the caller computed, never text from outside.
fn bucket_sql(column: &str, inner: &[i64], base: usize) -> String {
    if inner.is_empty() {
        return base.to_string();
    }
    let mid = inner.len() / 2;
    format!(
        "CASE WHEN {column} < {} THEN {} ELSE {} END",
        inner[mid],
        bucket_sql(column, &inner[..mid], base),
        bucket_sql(column, &inner[mid + 1..], base + mid + 1)
    )
}

/// What leads are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadGroup {
    /// The channel the lead was first attributed to.
    Channel,
    /// The form the lead came from (none for mail that was not a form).
    Form,
    /// The lead's owner now (at first the colleague who forwarded it, or its route's owner).
    Owner,
    /// All leads together.
    All,
}

impl LeadGroup {
    fn column(self) -> &'static str {
        match self {
            LeadGroup::Channel => "channel",
            LeadGroup::Form => "form",
            LeadGroup::Owner => "owner",
            LeadGroup::All => "NULL",
        }
    }
}

/// One unqualified reason and how many leads it was given for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    /// The reason as Sales wrote it; `None` for an `unqualified` without one.
    pub reason: Option<String>,
    /// Leads whose newest quality verdict is `unqualified` with this reason.
    pub count: i64,
}

/// One group of leads (and period) of a lead report.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadGroupRow {
    /// The channel, form or owner; `None` for leads without one (and for [`LeadGroup::All`]).
    pub key: Option<String>,
    /// The period's index into the window's periods; `0` without periods.
    pub period: usize,
    /// Leads created in the window.
    pub leads: i64,
    /// Of those, leads that replied at least once.
    pub replied: i64,
    /// Of those, leads handed off to their owner (a notification queued for Sales).
    pub handed_off: i64,
    /// Of those, leads whose newest quality verdict is `qualified`.
    pub qualified: i64,
    /// … `unqualified`.
    pub unqualified: i64,
    /// … `customer`.
    pub customers: i64,
    /// The unqualified reasons, most given first (ties by reason), all of them.
    pub reasons: Vec<ReasonCount>,
    /// The median days from a lead's creation to its first quality verdict, over the leads
    /// that have one.
    pub median_days_to_verdict: Option<f64>,
}

impl LeadGroupRow {
    /// Leads with a quality verdict.
    pub fn judged(&self) -> i64 {
        self.qualified + self.unqualified + self.customers
    }
}

/// One step of one sequence (and period) of the sequences report. Each message counts what
/// happened from its sending until the next step of the same enrollment was sent (or until
/// now after the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The sequence.
    pub sequence: String,
    /// The step.
    pub step: String,
    /// The period (of the sending) index; `0` without periods.
    pub period: usize,
    /// Messages of this step sent in the window.
    pub sent: i64,
    /// Of those, messages the lead replied to (a reply before the next step).
    pub replied: i64,
    /// … after which the lead unsubscribed.
    pub unsubscribed: i64,
    /// … after which a bounce naming the lead arrived.
    pub bounced: i64,
    /// … after which the lead was handed off to its owner.
    pub handed_off: i64,
    /// … after which Sales said `qualified`.
    pub qualified: i64,
    /// … `unqualified`.
    pub unqualified: i64,
    /// … `customer`.
    pub customers: i64,
}

/// The first and last time of a report's rows (lead creation, or sending for sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The earliest.
    pub first: DateTime<Utc>,
    /// The latest.
    pub last: DateTime<Utc>,
}

type GroupKey = (Option<String>, usize);

impl Store {
    /// When the first and the last lead in the window were created (`None`: no leads), so
    /// the caller can lay periods over them.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn lead_span(&self, window: &ReportWindow) -> Result<Option<Span>, StoreError> {
        let (lo, hi) = (
            window.since.map_or(i64::MIN, millis),
            window.until.map_or(i64::MAX, millis),
        );
        // Two reads at the ends of the creation-time index; MIN and MAX under a range
        // condition would read the whole range on SQLite.
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM leads WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at LIMIT 1",
        )
        .bind(lo)
        .bind(hi)
        .fetch_optional(&self.pool)
        .await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM leads WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(lo)
        .bind(hi)
        .fetch_optional(&self.pool)
        .await?;
        Ok(span(first, last))
    }

    /// When the first and the last sequence message in the window were sent.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn sent_span(&self, window: &ReportWindow) -> Result<Option<Span>, StoreError> {
        let (lo, hi) = (
            window.since.map_or(i64::MIN, millis),
            window.until.map_or(i64::MAX, millis),
        );
        let row = sqlx::query(
            "SELECT MIN(sent_at), MAX(sent_at) FROM outbox \
             WHERE state = 'sent' AND enrollment_id IS NOT NULL AND sent_at >= $1 AND sent_at < $2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_one(&self.pool)
        .await?;
        Ok(span(row.get(0), row.get(1)))
    }

    /// The leads created in the window, counted per group and period, ordered by group (no
    /// group last) and period.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(group = ?group))]
    pub async fn lead_report(
        &self,
        group: LeadGroup,
        window: &ReportWindow,
    ) -> Result<Vec<LeadGroupRow>, StoreError> {
        if group == LeadGroup::Channel {
            return self.channel_report(window).await;
        }
        let key = group.column();
        let period = window.period_sql("created_at");
        let (lo, hi) = window.limits();
        // The counts: one pass, grouped; the database sorts the window's leads by group and
        // period.
        let sql = format!(
            "SELECT {key} AS g, {period} AS p, COUNT(*), \
               SUM(CASE WHEN replied_at IS NULL THEN 0 ELSE 1 END), \
               SUM(CASE WHEN handed_off_at IS NULL THEN 0 ELSE 1 END), \
               SUM(CASE WHEN verdict = 'qualified' THEN 1 ELSE 0 END), \
               SUM(CASE WHEN verdict = 'unqualified' THEN 1 ELSE 0 END), \
               SUM(CASE WHEN verdict = 'customer' THEN 1 ELSE 0 END) \
             FROM leads WHERE created_at >= $1 AND created_at < $2 GROUP BY g, p"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await?;
        let mut groups: BTreeMap<GroupKey, LeadGroupRow> = BTreeMap::new();
        for r in &rows {
            let k: GroupKey = (r.get(0), index(r.get(1)));
            groups.insert(
                k.clone(),
                LeadGroupRow {
                    key: k.0,
                    period: k.1,
                    leads: r.get(2),
                    replied: sum(r.get(3)),
                    handed_off: sum(r.get(4)),
                    qualified: sum(r.get(5)),
                    unqualified: sum(r.get(6)),
                    customers: sum(r.get(7)),
                    reasons: Vec::new(),
                    median_days_to_verdict: None,
                },
            );
        }
        for (k, reason) in self.reasons(group, window).await? {
            if let Some(g) = groups.get_mut(&k) {
                g.reasons.push(reason);
            }
        }
        for (k, days) in self.medians(group, window).await? {
            if let Some(g) = groups.get_mut(&k) {
                g.median_days_to_verdict = Some(days);
            }
        }
        // Leads without a form or owner come last, after the named groups.
        let (named, unnamed): (Vec<_>, Vec<_>) =
            groups.into_values().partition(|g| g.key.is_some());
        Ok(named.into_iter().chain(unnamed).collect())
    }

    /// [`Store::lead_report`] by channel: per channel, three statements, each with one arm per
    /// period reading one range of an index made for it (by channel and creation time), so
    /// no statement sorts more than one period's unqualified leads and none reads a lead
    /// outside its channel and period:
    /// - the leads, from `leads_report_channel`, and the replied and the handed off, from
    ///   partial indexes that hold only those leads: entries are counted, no column is read;
    /// - the judgements per verdict, in the judged index's own order (no sort), each with the
    ///   list of days from creation to the first verdict, from which the median is selected
    ///   here in linear time rather than by the database's sort;
    /// - the unqualified reasons, from the same index.
    ///
    /// A grouped query instead would sort every lead of the window first, and a statement per
    /// channel and period costs a round trip each.
    async fn channel_report(&self, window: &ReportWindow) -> Result<Vec<LeadGroupRow>, StoreError> {
        self.channel_report_with(window, INLINE_MEDIAN_MAX).await
    }

    /// [`Store::channel_report`] with the median of periods of over `inline_max` leads left
    /// to the database's sort.
    async fn channel_report_with(
        &self,
        window: &ReportWindow,
        inline_max: i64,
    ) -> Result<Vec<LeadGroupRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // The channels, one index seek each: the next channel after the one before.
        let mut channels: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE ch(c) AS ( \
               SELECT MIN(channel) FROM leads \
               UNION ALL SELECT (SELECT MIN(l.channel) FROM leads l WHERE l.channel > ch.c) FROM ch WHERE ch.c IS NOT NULL \
             ) SELECT c FROM ch WHERE c IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        // In the order of the other reports (bytes), whatever the database's collation.
        channels.sort();
        let ranges = window.ranges();
        let concat = match self.backend {
            Backend::Sqlite => "group_concat(first_verdict_at - created_at, ',')",
            Backend::Postgres => "string_agg(CAST(first_verdict_at - created_at AS TEXT), ',')",
        };
        let all = self.leads_by("leads_report_channel");
        let replied = self.leads_by("leads_report_replied");
        let handed_off = self.leads_by("leads_report_handed_off");
        let judged = self.leads_by("leads_report_judged");
        let mut out = Vec::new();
        for channel in &channels {
            // All leads, the replied and the handed off.
            let rows = per_period(&mut conn, channel, &ranges, |_, period, range| {
                let count = |leads: &str, only: &str| {
                    format!("(SELECT COUNT(*) FROM {leads} WHERE channel = $1 AND {range}{only})")
                };
                format!(
                    "SELECT {period}, {}, {}, {}",
                    count(&all, ""),
                    count(&replied, " AND replied_at IS NOT NULL"),
                    count(&handed_off, " AND handed_off_at IS NOT NULL"),
                )
            })
            .await?;
            let mut periods: BTreeMap<usize, LeadGroupRow> = BTreeMap::new();
            for r in &rows {
                let leads: i64 = r.get(1);
                if leads == 0 {
                    continue;
                }
                let period = index(r.get(0));
                periods.insert(
                    period,
                    LeadGroupRow {
                        key: Some(channel.clone()),
                        period,
                        leads,
                        replied: r.get(2),
                        handed_off: r.get(3),
                        qualified: 0,
                        unqualified: 0,
                        customers: 0,
                        reasons: Vec::new(),
                        median_days_to_verdict: None,
                    },
                );
            }
            let busy: Vec<(usize, i64, i64)> = ranges
                .iter()
                .copied()
                .filter(|(p, _, _)| periods.contains_key(p))
                .collect();
            if busy.is_empty() {
                continue;
            }
            // The judgements per verdict, with the days to the first verdict as a list (the
            // index holds only the judged leads, a fraction of them all). A period with more
            // leads than `INLINE_MEDIAN_MAX` gets no list: its median is left to the database.
            let rows = per_period(&mut conn, channel, &busy, |p, period, range| {
                let days = if periods.get(&p).is_some_and(|r| r.leads <= inline_max) {
                    concat
                } else {
                    "CAST(NULL AS TEXT)"
                };
                format!(
                    "SELECT {period}, verdict, COUNT(*), {days} FROM {judged} \
                     WHERE channel = $1 AND verdict IN ('qualified', 'unqualified', 'customer') AND {range} \
                     GROUP BY verdict"
                )
            })
            .await?;
            let mut days: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
            for r in &rows {
                let period = index(r.get(0));
                let Some(row) = periods.get_mut(&period) else {
                    continue;
                };
                let verdict: String = r.get(1);
                let count: i64 = r.get(2);
                match verdict.as_str() {
                    "qualified" => row.qualified += count,
                    "customer" => row.customers += count,
                    _ => row.unqualified += count,
                }
                if let Some(list) = r.get::<Option<String>, _>(3) {
                    let values = days.entry(period).or_default();
                    for d in list.split(',') {
                        let d = d.trim().parse().map_err(|e| {
                            sqlx::Error::Decode(
                                format!(
                                    "days to a verdict: {d:?} is not a number of milliseconds ({e})"
                                )
                                .into(),
                            )
                        })?;
                        values.push(d);
                    }
                }
            }
            // The unqualified reasons, of the periods that have unqualified leads.
            let unqualified: Vec<(usize, i64, i64)> = busy
                .iter()
                .copied()
                .filter(|(p, _, _)| periods.get(p).is_some_and(|r| r.unqualified > 0))
                .collect();
            if !unqualified.is_empty() {
                let rows = per_period(&mut conn, channel, &unqualified, |_, period, range| {
                    format!(
                        "SELECT {period}, verdict_reason, COUNT(*) FROM {judged} \
                         WHERE channel = $1 AND verdict = 'unqualified' AND {range} \
                         GROUP BY verdict_reason"
                    )
                })
                .await?;
                for r in &rows {
                    if let Some(row) = periods.get_mut(&index(r.get(0))) {
                        row.reasons.push(ReasonCount {
                            reason: r.get(1),
                            count: r.get(2),
                        });
                    }
                }
            }
            for (period, mut row) in periods {
                row.reasons
                    .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
                let judged = row.judged();
                row.median_days_to_verdict = match days.get_mut(&period) {
                    Some(values) => median_days(&middle(values)),
                    None if judged > 0 && row.leads > inline_max => {
                        // The one or two middle values, by the database's sort of this
                        // period's judged leads.
                        let (_, lo, hi) = ranges
                            .iter()
                            .copied()
                            .find(|r| r.0 == period)
                            .unwrap_or((period, i64::MIN, i64::MAX));
                        let middle: Vec<i64> = sqlx::query_scalar(
                            "SELECT first_verdict_at - created_at AS d FROM leads \
                             WHERE channel = $1 AND verdict IN ('qualified', 'unqualified', 'customer') \
                               AND created_at >= $2 AND created_at < $3 \
                             ORDER BY d LIMIT $4 OFFSET $5",
                        )
                        .bind(channel)
                        .bind(lo)
                        .bind(hi)
                        .bind(2 - judged % 2)
                        .bind((judged - 1) / 2)
                        .fetch_all(&mut *conn)
                        .await?;
                        median_days(&middle)
                    }
                    None => None,
                };
                out.push(row);
            }
        }
        Ok(out)
    }

    /// `leads` read through `index` on SQLite. Its planner weighs the index made for a
    /// count against the others by sampled statistics, and for a period at the edge of the
    /// data it can pick the channel index and look every lead up in the table instead of
    /// counting the entries of a partial index: twice the time for the whole report.
    /// PostgreSQL chooses by its own statistics.
    fn leads_by(&self, index: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("leads INDEXED BY {index}"),
            Backend::Postgres => "leads".to_owned(),
        }
    }

    /// The unqualified reasons of the leads created in the window, per group and period, each
    /// group's most given first.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all, fields(group = ?group))]
    pub async fn unqualified_reasons(
        &self,
        group: LeadGroup,
        window: &ReportWindow,
    ) -> Result<Vec<(Option<String>, usize, ReasonCount)>, StoreError> {
        Ok(self
            .reasons(group, window)
            .await?
            .into_iter()
            .map(|((key, period), r)| (key, period, r))
            .collect())
    }

    async fn reasons(
        &self,
        group: LeadGroup,
        window: &ReportWindow,
    ) -> Result<Vec<(GroupKey, ReasonCount)>, StoreError> {
        let key = group.column();
        let period = window.period_sql("created_at");
        let (lo, hi) = window.limits();
        let sql = format!(
            "SELECT {key} AS g, {period} AS p, verdict_reason AS r, COUNT(*) AS n FROM leads \
             WHERE verdict = 'unqualified' AND created_at >= $1 AND created_at < $2 \
             GROUP BY g, p, r"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(GroupKey, ReasonCount)> = rows
            .iter()
            .map(|r| {
                (
                    (r.get(0), index(r.get(1))),
                    ReasonCount {
                        reason: r.get(2),
                        count: r.get(3),
                    },
                )
            })
            .collect();
        // Sorted here rather than in SQL: the two databases order NULLs and text differently.
        out.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.count.cmp(&a.1.count))
                .then(a.1.reason.cmp(&b.1.reason))
        });
        Ok(out)
    }

    /// The median days from creation to first quality verdict per group and period: the
    /// database numbers each group's leads in order of that time (one sort: both window
    /// functions share the window) and returns only the middle one or two, so memory stays
    /// with the database's sort, not here.
    async fn medians(
        &self,
        group: LeadGroup,
        window: &ReportWindow,
    ) -> Result<Vec<(GroupKey, f64)>, StoreError> {
        let key = group.column();
        let period = window.period_sql("created_at");
        let (lo, hi) = window.limits();
        let sql = format!(
            "SELECT g, p, d FROM ( \
               SELECT g, p, d, ROW_NUMBER() OVER w AS rn, \
                      COUNT(*) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n \
               FROM (SELECT {key} AS g, {period} AS p, first_verdict_at - created_at AS d FROM leads \
                     WHERE first_verdict_at IS NOT NULL AND created_at >= $1 AND created_at < $2) t \
               WINDOW w AS (PARTITION BY g, p ORDER BY d) \
             ) m WHERE 2 * rn IN (n, n + 1, n + 2) ORDER BY g, p"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await?;
        let mut middles: BTreeMap<GroupKey, (i64, i64)> = BTreeMap::new();
        for r in &rows {
            let d: i64 = r.get(2);
            let e = middles.entry((r.get(0), index(r.get(1)))).or_insert((0, 0));
            e.0 += d;
            e.1 += 1;
        }
        #[allow(clippy::cast_precision_loss)] // days of milliseconds: far below 2^52
        Ok(middles
            .into_iter()
            .map(|(k, (total, n))| (k, total as f64 / n as f64 / DAY_MS))
            .collect())
    }

    /// Per sequence, step and period: the messages sent in the window and what followed each
    /// before the next step of its enrollment was sent. Ordered by sequence, then by when the
    /// step was first sent.
    ///
    /// # Errors
    /// A failed query.
    #[instrument(skip_all)]
    pub async fn sequence_report(&self, window: &ReportWindow) -> Result<Vec<StepRow>, StoreError> {
        let period = window.period_sql("w.sent_at");
        let (lo, hi) = window.limits();
        // `w` holds one row per message with the time the next step of its enrollment went
        // out; each column asks whether something happened to the lead in between.
        let after = "w.sent_at AND (w.next_at IS NULL OR {t} < w.next_at)";
        let within = |t: &str| format!("{t} >= {}", after.replace("{t}", t));
        let mut sql = String::from(
            "WITH s AS ( \
               SELECT o.lead_id, e.sequence, o.step_id, o.sent_at, \
                      LEAD(o.sent_at) OVER (PARTITION BY o.enrollment_id ORDER BY o.sent_at, o.id) AS next_at \
               FROM outbox o JOIN enrollments e ON e.id = o.enrollment_id \
               WHERE o.state = 'sent' AND o.sent_at IS NOT NULL AND o.step_id IS NOT NULL \
             ), w AS ( \
               SELECT s.*, l.email FROM s JOIN leads l ON l.id = s.lead_id \
               WHERE s.sent_at >= $1 AND s.sent_at < $2 \
             ) ",
        );
        let _ = write!(
            sql,
            "SELECT w.sequence, w.step_id, {period} AS p, COUNT(*), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM inbound_messages m WHERE m.lead_email = w.email AND m.kind = 'reply' AND {reply}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM inbound_messages m WHERE m.lead_email = w.email AND m.kind = 'unsubscribe' AND {reply}) \
                          OR EXISTS (SELECT 1 FROM events v WHERE v.lead_id = w.lead_id AND v.kind = 'unsubscribed' AND {event}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM inbound_messages m WHERE m.lead_email = w.email AND m.kind = 'bounce' AND {reply}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM handoffs h WHERE h.lead_id = w.lead_id AND h.kind = 'handoff' AND h.state = 'queued' AND {handoff}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM verdicts d WHERE d.lead_id = w.lead_id AND d.verdict = 'qualified' AND {verdict}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM verdicts d WHERE d.lead_id = w.lead_id AND d.verdict = 'unqualified' AND {verdict}) THEN 1 ELSE 0 END), \
               SUM(CASE WHEN EXISTS (SELECT 1 FROM verdicts d WHERE d.lead_id = w.lead_id AND d.verdict = 'customer' AND {verdict}) THEN 1 ELSE 0 END), \
               MIN(w.sent_at) AS first_sent \
             FROM w GROUP BY w.sequence, w.step_id, p",
            reply = within("m.recorded_at"),
            event = within("v.at"),
            handoff = within("h.updated_at"),
            verdict = within("d.at"),
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .fetch_all(&self.pool)
            .await?;
        let mut steps: Vec<(i64, StepRow)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<i64, _>(11),
                    StepRow {
                        sequence: r.get(0),
                        step: r.get(1),
                        period: index(r.get(2)),
                        sent: r.get(3),
                        replied: sum(r.get(4)),
                        unsubscribed: sum(r.get(5)),
                        bounced: sum(r.get(6)),
                        handed_off: sum(r.get(7)),
                        qualified: sum(r.get(8)),
                        unqualified: sum(r.get(9)),
                        customers: sum(r.get(10)),
                    },
                )
            })
            .collect();
        // A step's place is where it was first sent in any period, so periods list the steps
        // in one order.
        let mut first: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (at, s) in &steps {
            let e = first
                .entry((s.sequence.clone(), s.step.clone()))
                .or_insert(*at);
            *e = (*e).min(*at);
        }
        steps.sort_by_key(|(_, s)| {
            (
                s.sequence.clone(),
                s.period,
                first
                    .get(&(s.sequence.clone(), s.step.clone()))
                    .copied()
                    .unwrap_or_default(),
                s.step.clone(),
            )
        });
        Ok(steps.into_iter().map(|(_, s)| s).collect())
    }
}

/// Above this many leads in one channel and period, the channel report leaves the median to
/// the database's sort instead of taking the period's days to a verdict as a list, so the
/// report's memory stays bounded (a list holds about 20 bytes per judged lead).
const INLINE_MEDIAN_MAX: i64 = 1_000_000;

/// Arms per statement of [`per_period`], below SQLite's limit of 500 terms in a compound
/// `SELECT`.
const ARMS_PER_STATEMENT: usize = 100;

/// One channel's rows for each of `arms` (period, from, until): one `UNION ALL` statement per
/// hundred periods, whose arms `arm` writes from the period's index as SQL (a `BIGINT`, alike
/// on both databases) and its time condition on `created_at`. `$1` is the channel.
async fn per_period(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    channel: &str,
    arms: &[(usize, i64, i64)],
    arm: impl Fn(usize, &str, &str) -> String,
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in arms.chunks(ARMS_PER_STATEMENT) {
        let mut sql = String::new();
        for (i, &(period, _, _)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            sql.push_str(&arm(
                period,
                &format!("CAST({period} AS BIGINT)"),
                &format!(
                    "created_at >= ${} AND created_at < ${}",
                    2 + 2 * i,
                    3 + 2 * i
                ),
            ));
        }
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(channel);
        for &(_, lo, hi) in chunk {
            query = query.bind(lo).bind(hi);
        }
        rows.extend(query.fetch_all(&mut **conn).await?);
    }
    Ok(rows)
}

/// The one or two middle values of `values` (reordered), in linear time.
fn middle(values: &mut [i64]) -> Vec<i64> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let (below, upper, _) = values.select_nth_unstable(n / 2);
    let upper = *upper;
    if n % 2 == 1 {
        return vec![upper];
    }
    // The lower middle is the largest of the values below the upper one.
    below
        .iter()
        .copied()
        .max()
        .map_or_else(|| vec![upper], |lower| vec![lower, upper])
}

/// The median in days of the one or two middle values (milliseconds) of a group.
#[allow(clippy::cast_precision_loss)] // days of milliseconds: far below 2^52
fn median_days(middle: &[i64]) -> Option<f64> {
    if middle.is_empty() {
        return None;
    }
    let total: i64 = middle.iter().sum();
    Some(total as f64 / middle.len() as f64 / DAY_MS)
}

fn span(first: Option<i64>, last: Option<i64>) -> Option<Span> {
    Some(Span {
        first: super::from_millis(first?),
        last: super::from_millis(last?),
    })
}

/// A period index as SQL returns it (a non-negative integer).
fn index(p: i64) -> usize {
    usize::try_from(p).unwrap_or(0)
}

/// `SUM` over no rows is NULL; over rows it is a number (an integer on both databases).
fn sum(v: Option<i64>) -> i64 {
    v.unwrap_or(0)
}

/// The periods a report can be split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPeriod {
    /// ISO weeks, Monday to Sunday, labelled `2026-W41`.
    Week,
    /// Calendar months, labelled `2026-10`.
    Month,
}

/// More periods than this is a mistake (weeks over decades): said instead of counted.
pub const MAX_PERIODS: usize = 2_000;

/// Why a report's window cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Neither a day nor an RFC 3339 time.
    #[error("'{0}' is not a day like 2026-10-01 or a time like 2026-10-01T09:00:00Z")]
    NotATime(String),
    /// A day at the end of the calendar.
    #[error("'{0}' is too late")]
    TooLate(String),
    /// The window holds more than [`MAX_PERIODS`] periods.
    #[error(
        "more than {MAX_PERIODS} periods: narrow the window (since, until) or choose longer periods"
    )]
    TooManyPeriods,
    /// A period would end beyond the calendar.
    #[error("a period beyond the calendar")]
    BeyondCalendar,
}

/// A window's edge as a person gives it: a day in the team's `zone` (its start; with
/// `end_of_day`, the start of the next day, so the day itself is in) or an RFC 3339 moment.
/// The CLI's `--since`/`--until` and the view's report form read it alike, so both count the
/// same leads.
///
/// # Errors
/// Text that is neither, or a day at the end of the calendar.
pub fn report_time(s: &str, zone: Tz, end_of_day: bool) -> Result<DateTime<Utc>, WindowError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| WindowError::NotATime(s.to_owned()))?;
    let day = if end_of_day {
        day.checked_add_days(Days::new(1))
            .ok_or_else(|| WindowError::TooLate(s.to_owned()))?
    } else {
        day
    };
    Ok(start_of_day(day, zone))
}

/// Midnight of `day` in `zone` (the first moment of the day where a change of clocks skips
/// midnight).
fn start_of_day(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut t = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A day whose midnight does not exist (a clock change at 00:00) starts at the first
    // moment that does; changes are at most a few hours.
    for _ in 0..24 {
        if let Some(local) = zone.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::TimeDelta::minutes(30);
    }
    Utc.from_utc_datetime(&t)
}

/// The periods covering `span` in the team's `zone`, as boundaries (one more than periods,
/// for [`ReportWindow::bounds`]) and labels.
///
/// # Errors
/// More than [`MAX_PERIODS`] periods, or periods beyond the calendar.
pub fn report_periods(
    by: ReportPeriod,
    zone: Tz,
    span: Span,
) -> Result<(Vec<DateTime<Utc>>, Vec<String>), WindowError> {
    let first = span.first.with_timezone(&zone).date_naive();
    let mut day = match by {
        ReportPeriod::Month => first.with_day(1).unwrap_or(first),
        ReportPeriod::Week => first - Days::new(u64::from(first.weekday().num_days_from_monday())),
    };
    let mut bounds = vec![start_of_day(day, zone)];
    let mut labels = Vec::new();
    while bounds.last().is_some_and(|b| *b <= span.last) {
        let label = match by {
            ReportPeriod::Month => day.format("%Y-%m").to_string(),
            ReportPeriod::Week => {
                let w = day.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
        };
        let next = match by {
            ReportPeriod::Month => day.checked_add_months(Months::new(1)),
            ReportPeriod::Week => day.checked_add_days(Days::new(7)),
        }
        .ok_or(WindowError::BeyondCalendar)?;
        labels.push(label);
        day = next;
        bounds.push(start_of_day(day, zone));
        if labels.len() > MAX_PERIODS {
            return Err(WindowError::TooManyPeriods);
        }
    }
    Ok((bounds, labels))
}

/// `part / whole`, or nothing when there is no whole: every rate of the reports.
#[allow(clippy::cast_precision_loss)] // counts of leads: far below 2^52
pub fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl LeadGroupRow {
    /// `replied / leads`.
    pub fn reply_rate(&self) -> Option<f64> {
        ratio(self.replied, self.leads)
    }

    /// `handed_off / leads`.
    pub fn handoff_rate(&self) -> Option<f64> {
        ratio(self.handed_off, self.leads)
    }

    /// `qualified` over the leads judged.
    pub fn qualified_rate(&self) -> Option<f64> {
        ratio(self.qualified, self.judged())
    }

    /// `customers / leads`.
    pub fn customer_rate(&self) -> Option<f64> {
        ratio(self.customers, self.leads)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use chrono_tz::Tz;

    use super::{
        ReportPeriod, ReportWindow, Span, Store, bucket_sql, middle, ratio, report_periods,
        report_time,
    };

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn days_start_at_midnight_in_the_team_zone_and_until_includes_its_day() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            report_time("2026-10-01", berlin, false).unwrap(),
            utc("2026-09-30T22:00:00Z")
        );
        assert_eq!(
            report_time("2026-10-31", berlin, true).unwrap(),
            utc("2026-10-31T23:00:00Z")
        );
        assert_eq!(
            report_time("2026-10-01T08:00:00+02:00", berlin, true).unwrap(),
            utc("2026-10-01T06:00:00Z")
        );
        assert!(report_time("01.10.2026", berlin, false).is_err());
    }

    #[test]
    fn months_follow_the_team_zone_across_a_clock_change() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let span = Span {
            first: utc("2026-09-30T22:30:00Z"), // 00:30 on 1 October in Berlin
            last: utc("2026-11-02T10:00:00Z"),
        };
        let (bounds, labels) = report_periods(ReportPeriod::Month, berlin, span).unwrap();
        assert_eq!(labels, ["2026-10", "2026-11"]);
        assert_eq!(
            bounds,
            [
                utc("2026-09-30T22:00:00Z"),
                utc("2026-10-31T23:00:00Z"), // winter time from 25 October
                utc("2026-11-30T23:00:00Z"),
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_are_labelled_by_iso_week() {
        let span = Span {
            first: utc("2026-01-01T12:00:00Z"), // a Thursday
            last: utc("2026-01-05T00:00:00Z"),  // the next Monday, at its start
        };
        let (bounds, labels) = report_periods(ReportPeriod::Week, Tz::UTC, span).unwrap();
        assert_eq!(labels, ["2026-W01", "2026-W02"]);
        assert_eq!(bounds[0], utc("2025-12-29T00:00:00Z"));
        assert_eq!(bounds[2], utc("2026-01-12T00:00:00Z"));
    }

    #[test]
    fn rates_have_nothing_to_divide_by_without_leads() {
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(0, 0), None);
    }

    /// Evaluates the `CASE` text for one value, as SQL would.
    fn eval(sql: &str, v: i64) -> usize {
        let sql = sql.trim();
        if let Some(rest) = sql.strip_prefix("CASE WHEN x < ") {
            let (bound, rest) = rest.split_once(" THEN ").unwrap();
            let bound: i64 = bound.parse().unwrap();
            // Split the THEN and ELSE branches at the ELSE of this level.
            let body = rest.strip_suffix(" END").unwrap();
            let mut depth = 0;
            let bytes = body.as_bytes();
            let mut split = None;
            for i in 0..bytes.len() {
                if body[i..].starts_with("CASE ") {
                    depth += 1;
                } else if body[i..].starts_with(" END") {
                    depth -= 1;
                } else if depth == 0 && body[i..].starts_with(" ELSE ") {
                    split = Some(i);
                    break;
                }
            }
            let i = split.unwrap();
            let (then, other) = (&body[..i], &body[i + 6..]);
            if v < bound {
                eval(then, v)
            } else {
                eval(other, v)
            }
        } else {
            sql.parse().unwrap()
        }
    }

    #[test]
    fn every_value_lands_in_the_bucket_its_boundaries_give() {
        for n in 0..12 {
            let inner: Vec<i64> = (1..=n).map(|i| i * 10).collect();
            let sql = bucket_sql("x", &inner, 0);
            for v in -5..(n * 10 + 15) {
                let expected = inner.iter().filter(|b| v >= **b).count();
                assert_eq!(eval(&sql, v), expected, "{n} boundaries, value {v}: {sql}");
            }
        }
    }

    #[test]
    fn the_case_is_balanced() {
        let inner: Vec<i64> = (1..=255).collect();
        let sql = bucket_sql("x", &inner, 0);
        // 256 buckets: a value is compared at most 8 times; nesting depth shows it.
        let depth = sql
            .split("CASE")
            .fold((0_i32, 0_i32), |(d, max), part| {
                let d = d + 1 - i32::try_from(part.matches("END").count()).unwrap();
                (d, max.max(d))
            })
            .1;
        assert!(depth <= 9, "nesting depth {depth}");
    }

    #[test]
    fn the_middle_values_are_those_a_sort_gives() {
        // Every arrangement of small lists with repeats, against a sort.
        let mut seed = 7_u64;
        for n in 0..40 {
            for _ in 0..20 {
                let values: Vec<i64> = (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        i64::try_from(seed >> 59).unwrap() - 8
                    })
                    .collect();
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let expected: Vec<i64> = match n {
                    0 => Vec::new(),
                    _ if n % 2 == 1 => vec![sorted[n / 2]],
                    _ => vec![sorted[n / 2 - 1], sorted[n / 2]],
                };
                let mut shuffled = values.clone();
                assert_eq!(middle(&mut shuffled), expected, "{values:?}");
            }
        }
    }

    /// The median from the listed days and from the database's sort agree, over channels and
    /// periods with odd and even numbers of judged leads, and match one worked by hand.
    #[tokio::test]
    async fn both_ways_to_the_median_agree() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let store = Store::connect(&url, 1).await.unwrap();
        let day = 86_400_000_i64;
        let t0 = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        for id in 1..=300_i64 {
            let channel = ["ads", "events", "webinar"][usize::try_from(id % 3).unwrap()];
            let created = t0 + (id % 10) * day + id;
            sqlx::query(
                "INSERT INTO leads (id, email, name, channel, status, created_at, updated_at) \
                 VALUES ($1, $2, 'x', $3, 'new', $4, $4)",
            )
            .bind(id)
            .bind(format!("lead{id}@example.org"))
            .bind(channel)
            .bind(created)
            .execute(&store.pool)
            .await
            .unwrap();
            if id % 7 != 0 {
                let verdict =
                    ["qualified", "unqualified", "customer"][usize::try_from(id % 3).unwrap()];
                sqlx::query(
                    "UPDATE leads SET verdict = $1, verdict_reason = $2, first_verdict_at = $3 WHERE id = $4",
                )
                .bind(verdict)
                .bind((verdict == "unqualified").then_some("timing"))
                .bind(created + (id * 37 % 23) * day / 2)
                .bind(id)
                .execute(&store.pool)
                .await
                .unwrap();
            }
        }
        let window = ReportWindow {
            since: None,
            until: None,
            bounds: (0..=5)
                .map(|i| Utc.timestamp_millis_opt(t0 + i * 2 * day).unwrap())
                .collect(),
        };
        let listed = store.channel_report_with(&window, i64::MAX).await.unwrap();
        let sorted = store.channel_report_with(&window, 0).await.unwrap();
        assert_eq!(listed, sorted);
        assert_eq!(listed.len(), 15);
        // By hand: "ads" (id % 3 == 0) in the first period (id % 10 in 0..2), judged unless
        // id % 7 == 0.
        let mut days: Vec<i64> = (1..=300_i64)
            .filter(|id| id % 3 == 0 && id % 10 < 2 && id % 7 != 0)
            .map(|id| (id * 37 % 23) * day / 2)
            .collect();
        days.sort_unstable();
        let n = days.len();
        #[allow(clippy::cast_precision_loss)]
        let expected = if n % 2 == 1 {
            days[n / 2] as f64
        } else {
            (days[n / 2 - 1] + days[n / 2]) as f64 / 2.0
        } / day as f64;
        let ads = &listed[0];
        assert_eq!((ads.key.as_deref(), ads.period), (Some("ads"), 0));
        assert_eq!(ads.judged(), i64::try_from(n).unwrap());
        assert_eq!(ads.median_days_to_verdict, Some(expected));
        store.close().await;
    }
}
