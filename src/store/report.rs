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

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};
use tracing::instrument;

use super::{Store, StoreError, millis};

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

    /// [`Store::lead_report`] by channel: per channel and period, ranges of the report
    /// indexes, each by channel and creation time: `leads_report_channel`, which holds the
    /// reply and hand-off times, once for all leads, the replied and the handed off; and the
    /// judged (`leads_report_judged`, by verdict too, with the reason and the first verdict's
    /// time), once for the judgements with the unqualified reasons and once for the one or
    /// two middle days to a verdict. No read sorts more than one group's judged leads and none reads a lead
    /// outside its group, so the report reads each lead's index entries about once, however
    /// the database plans; a grouped query would sort every lead of the window first.
    async fn channel_report(&self, window: &ReportWindow) -> Result<Vec<LeadGroupRow>, StoreError> {
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
        let mut out = Vec::new();
        for channel in &channels {
            for &(period, lo, hi) in &ranges {
                // All leads, the replied and the handed off: one read of one range of
                // `leads_report_channel`, which holds those columns.
                let r = sqlx::query(
                    "SELECT COUNT(*), COUNT(replied_at), COUNT(handed_off_at) \
                     FROM leads WHERE channel = $1 AND created_at >= $2 AND created_at < $3",
                )
                .bind(channel)
                .bind(lo)
                .bind(hi)
                .fetch_one(&mut *conn)
                .await?;
                let mut row = LeadGroupRow {
                    key: Some(channel.clone()),
                    period,
                    leads: r.get(0),
                    replied: r.get(1),
                    handed_off: r.get(2),
                    qualified: 0,
                    unqualified: 0,
                    customers: 0,
                    reasons: Vec::new(),
                    median_days_to_verdict: None,
                };
                if row.leads == 0 {
                    continue;
                }
                // The judgements and the unqualified reasons: one range of the judged index,
                // which holds only the judged leads (a fraction of them all).
                let judged = sqlx::query(
                    "SELECT verdict, verdict_reason, COUNT(*) FROM leads \
                     WHERE channel = $1 AND verdict IN ('qualified', 'unqualified', 'customer') \
                       AND created_at >= $2 AND created_at < $3 \
                     GROUP BY verdict, verdict_reason",
                )
                .bind(channel)
                .bind(lo)
                .bind(hi)
                .fetch_all(&mut *conn)
                .await?;
                for r in &judged {
                    let verdict: String = r.get(0);
                    let count: i64 = r.get(2);
                    match verdict.as_str() {
                        "qualified" => row.qualified += count,
                        "customer" => row.customers += count,
                        _ => {
                            row.unqualified += count;
                            row.reasons.push(ReasonCount {
                                reason: r.get(1),
                                count,
                            });
                        }
                    }
                }
                row.reasons
                    .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
                // A lead has a quality verdict exactly when it has a first one: `judged` of
                // them, whose middle one or two the database finds in the judged index.
                let judged = row.judged();
                if judged > 0 {
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
                    row.median_days_to_verdict = median_days(&middle);
                }
                out.push(row);
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::bucket_sql;

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
}
