//! `GET /reports`: the reports of `leadloop report` for people who would rather look at a
//! chart than read a table.
//!
//! The numbers come from the store functions the CLI calls, over a window read the way the
//! CLI reads `--since`, `--until` and `--by` (in the team's time zone), so a page and the
//! CLI's JSON for the same window agree. The charts are SVG drawn here, in the page: bars per
//! channel (leads, qualified, customers) and a line per channel of its leads per month. They
//! need no script and no style attribute, which the Content-Security-Policy forbids; colours
//! come from classes in the stylesheet.
//!
//! The tables are marked up for tests and scripts: each has an `id` (`report-channels`,
//! `report-forms`, `report-owners`, `report-sequences`, `report-reasons`), each row names its
//! group (`data-channel`, `data-form`, `data-owner`, `data-sequence` with `data-step`,
//! `data-reason`) and its period (`data-period`, with `by`), and each number cell its column
//! (`data-col`) by the name the CLI's JSON gives it. Rates show as percentages and carry the
//! JSON's fraction in `data-value`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Value, context};
use tracing::warn;

use super::App;
use super::auth::SignedIn;
use super::view::{QueryParams, render};
use crate::diagnostics::error_chain;
use crate::store::{
    LeadGroup, LeadGroupRow, ReportPeriod, ReportWindow, StepRow, Store, StoreError, ratio,
    report_periods, report_time,
};

/// Unqualified reasons a lead table's row shows, as in the CLI's table.
const ROW_REASONS: usize = 3;

/// The drawing area of the charts, in SVG units (the SVG scales to the page's width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
/// Room for the axis labels: left, bottom, top.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 12.0;

/// Colours the line chart cycles through (classes `series-0` … in the stylesheet).
const SERIES_COLOURS: usize = 8;

/// `GET /reports`: every report over the window of the query's `since`, `until` and `by`
/// (`week` or `month`). Whoever is signed in may read them: they hold counts, not leads.
pub(super) async fn reports(
    user: SignedIn,
    State(app): State<App>,
    uri: Uri,
) -> Result<Response, Response> {
    let params = QueryParams::of(&uri);
    let get = |key: &str| params.get(key);
    let zone = app.0.web.zone;
    let mut problems = Vec::new();
    let mut edge = |key: &str, end: bool| {
        let text = get(key)?;
        report_time(&text, zone, end)
            .map_err(|e| problems.push(format!("{key}: {e}")))
            .ok()
    };
    let mut since = edge("since", false);
    let until = edge("until", true).unwrap_or_else(Utc::now);
    if since.is_some_and(|s| s >= until) {
        problems.push("since must be before until".to_owned());
        since = None;
    }
    let by = match get("by").as_deref() {
        None => None,
        Some("week") => Some(ReportPeriod::Week),
        Some("month") => Some(ReportPeriod::Month),
        Some(other) => {
            problems.push(format!("by: '{other}' is neither week nor month"));
            None
        }
    };
    let store = &app.0.store;
    let report = Report::read(store, zone, since, until, by, &mut problems)
        .await
        .map_err(|e| {
            warn!(error = %error_chain(&e), "cannot read the reports");
            super::page::unavailable()
        })?;
    problems.dedup();
    let time = |t: DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    let range = format!(
        "Leads created from {} to {} ({zone}{})",
        since.map_or_else(|| "the start".to_owned(), time),
        time(until),
        match by {
            Some(ReportPeriod::Week) => ", weeks from Monday",
            Some(ReportPeriod::Month) => ", calendar months",
            None => "",
        }
    );
    Ok(render(
        user.base(),
        StatusCode::OK,
        "reports.html",
        context! {
            title => "Reports",
            user => user.context(),
            csrf => user.csrf(),
            q => context! {
                since => get("since").unwrap_or_default(),
                until => get("until").unwrap_or_default(),
                by => match by { Some(ReportPeriod::Week) => "week", Some(ReportPeriod::Month) => "month", None => "" },
            },
            error => (!problems.is_empty()).then(|| problems.join("; ")),
            range,
            periods => by.is_some(),
            bars => bar_chart(&report.channels_total),
            months => report.monthly.as_ref().map(|(labels, rows)| line_chart(labels, rows)),
            channels => lead_rows(&report.channels, &report.labels),
            forms => lead_rows(&report.forms, &report.labels),
            owners => lead_rows(&report.owners, &report.labels),
            sequences => step_rows(&report.steps, &report.step_labels),
            reasons => reason_rows(&report.reasons, &report.labels),
        },
    ))
}

/// What the page shows, as the store counted it.
struct Report {
    /// The period labels of the lead reports (empty without `by`).
    labels: Vec<String>,
    channels: Vec<LeadGroupRow>,
    /// The channels over the whole window, for the bar chart (the same as `channels`
    /// without `by`).
    channels_total: Vec<LeadGroupRow>,
    forms: Vec<LeadGroupRow>,
    owners: Vec<LeadGroupRow>,
    reasons: Vec<(Option<String>, usize, crate::store::ReasonCount)>,
    /// The period labels of the sequences report, whose periods follow the sending times.
    step_labels: Vec<String>,
    steps: Vec<StepRow>,
    /// The channels by month, for the line chart: month labels and rows.
    monthly: Option<(Vec<String>, Vec<LeadGroupRow>)>,
}

impl Report {
    /// Reads every report. A window that cannot be split into periods (too many) is said in
    /// `problems`, and the reports show without periods.
    async fn read(
        store: &Store,
        zone: Tz,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        by: Option<ReportPeriod>,
        problems: &mut Vec<String>,
    ) -> Result<Report, StoreError> {
        let plain = ReportWindow {
            since,
            until: Some(until),
            bounds: Vec::new(),
        };
        let lead_span = store.lead_span(&plain).await?;
        // The window of `leadloop report … --by BY`: the periods over the leads it holds.
        let mut split = |by: ReportPeriod, span| match report_periods(by, zone, span) {
            Ok((bounds, labels)) => Some((
                ReportWindow {
                    bounds,
                    ..plain.clone()
                },
                labels,
            )),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let (window, labels) = match (by, lead_span) {
            (Some(by), Some(span)) => split(by, span).unwrap_or((plain.clone(), Vec::new())),
            _ => (plain.clone(), Vec::new()),
        };
        let channels = store.lead_report(LeadGroup::Channel, &window).await?;
        let channels_total = if window.bounds.is_empty() {
            channels.clone()
        } else {
            store.lead_report(LeadGroup::Channel, &plain).await?
        };
        let monthly = match (by, lead_span) {
            (Some(ReportPeriod::Month), Some(_)) if !window.bounds.is_empty() => {
                Some((labels.clone(), channels.clone()))
            }
            (_, Some(span)) => match split(ReportPeriod::Month, span) {
                Some((months, labels)) => Some((
                    labels,
                    store.lead_report(LeadGroup::Channel, &months).await?,
                )),
                None => None,
            },
            (_, None) => None,
        };
        let forms = store.lead_report(LeadGroup::Form, &window).await?;
        let owners = store.lead_report(LeadGroup::Owner, &window).await?;
        let reasons = store.unqualified_reasons(LeadGroup::All, &window).await?;
        let (step_window, step_labels) = match (by, store.sent_span(&plain).await?) {
            (Some(by), Some(span)) => split(by, span).unwrap_or((plain.clone(), Vec::new())),
            _ => (plain.clone(), Vec::new()),
        };
        let steps = store.sequence_report(&step_window).await?;
        Ok(Report {
            labels,
            channels,
            channels_total,
            forms,
            owners,
            reasons,
            step_labels,
            steps,
            monthly,
        })
    }
}

/// A count cell.
fn count(col: &str, n: i64) -> Value {
    context! { col, text => n.to_string() }
}

/// A rate cell: a percentage with one decimal, as the CLI's table; the fraction as the CLI's
/// JSON gives it (four decimals) in `value`.
fn rate(col: &str, r: Option<f64>) -> Value {
    match r {
        Some(r) => {
            context! { col, text => format!("{:.1}%", r * 100.0), value => format!("{r:.4}") }
        }
        None => context! { col, text => "-" },
    }
}

/// The label of period `i`, empty without periods.
fn label(labels: &[String], i: usize) -> String {
    labels.get(i).cloned().unwrap_or_default()
}

/// The rows of a lead report (channels, forms, owners), as cells.
fn lead_rows(rows: &[LeadGroupRow], labels: &[String]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let reasons: Vec<String> = r
                .reasons
                .iter()
                .take(ROW_REASONS)
                .map(|x| format!("{} ({})", x.reason.as_deref().unwrap_or("-"), x.count))
                .collect();
            let mut reasons = reasons.join(", ");
            if r.reasons.len() > ROW_REASONS {
                reasons.push_str(", …");
            }
            let days = r
                .median_days_to_verdict
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.1}"));
            context! {
                key => r.key.as_deref().unwrap_or("-"),
                period => label(labels, r.period),
                cells => vec![
                    count("leads", r.leads),
                    count("replied", r.replied),
                    count("handed_off", r.handed_off),
                    count("qualified", r.qualified),
                    count("unqualified", r.unqualified),
                    count("customers", r.customers),
                    rate("reply_rate", r.reply_rate()),
                    rate("handoff_rate", r.handoff_rate()),
                    rate("qualified_rate", r.qualified_rate()),
                    rate("customer_rate", r.customer_rate()),
                    context! { col => "median_days_to_verdict", text => days },
                ],
                reasons => if reasons.is_empty() { "-".to_owned() } else { reasons },
            }
        })
        .collect()
}

/// The rows of the sequences report.
fn step_rows(rows: &[StepRow], labels: &[String]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            context! {
                sequence => &r.sequence,
                step => &r.step,
                period => label(labels, r.period),
                cells => vec![
                    count("sent", r.sent),
                    count("replied", r.replied),
                    count("unsubscribed", r.unsubscribed),
                    count("bounced", r.bounced),
                    count("handed_off", r.handed_off),
                    count("qualified", r.qualified),
                    count("unqualified", r.unqualified),
                    count("customers", r.customers),
                    rate("reply_rate", ratio(r.replied, r.sent)),
                ],
            }
        })
        .collect()
}

/// The rows of the reasons report, each with its share of its period's unqualified leads.
fn reason_rows(
    reasons: &[(Option<String>, usize, crate::store::ReasonCount)],
    labels: &[String],
) -> Vec<Value> {
    reasons
        .iter()
        .map(|(_, p, r)| {
            let total: i64 = reasons
                .iter()
                .filter(|(_, q, _)| q == p)
                .map(|(_, _, x)| x.count)
                .sum();
            context! {
                reason => r.reason.as_deref().unwrap_or("-"),
                period => label(labels, *p),
                cells => vec![count("count", r.count), rate("share", ratio(r.count, total))],
            }
        })
        .collect()
}

/// A round number at or above `max`, for the top of an axis: 1, 2 or 5 times a power of ten.
fn axis_top(max: i64) -> i64 {
    let mut step = 1_i64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= max || top == i64::MAX {
                return top.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `n` of `top` as a height on the charts' drawing area.
#[allow(clippy::cast_precision_loss)] // counts of leads: far below 2^52
fn scale(n: i64, top: i64) -> f64 {
    (HEIGHT - BOTTOM - TOP) * n as f64 / top as f64
}

/// Two decimals are plenty for SVG coordinates.
fn coord(x: f64) -> String {
    format!("{x:.2}")
}

/// What every chart draws alike: its size, the plot's left edge and baseline, and the grid up
/// to `top`.
fn frame(top: i64) -> Value {
    context! {
        width => WIDTH,
        height => HEIGHT,
        left => LEFT,
        base_y => coord(HEIGHT - BOTTOM),
        label_y => coord(HEIGHT - BOTTOM + 16.0),
        grid => grid(top),
    }
}

/// The horizontal grid lines from 0 to `top` (a round number from [`axis_top`]), each with its
/// value: steps of a fifth, a quarter or a half of it, whichever is a whole number.
fn grid(top: i64) -> Vec<Value> {
    let step = [5, 4, 2]
        .into_iter()
        .find(|d| top >= *d && top % d == 0)
        .map_or(top.max(1), |d| top / d);
    (0..=top / step)
        .map(|i| {
            let n = i * step;
            let y = HEIGHT - BOTTOM - scale(n, top);
            context! { y => coord(y), label => n.to_string() }
        })
        .collect()
}

/// The bar chart: per channel, three bars side by side (leads, qualified, customers), scaled
/// to the largest count. `None` without leads.
fn bar_chart(rows: &[LeadGroupRow]) -> Option<Value> {
    let max = rows.iter().map(|r| r.leads).max().filter(|m| *m > 0)?;
    let top = axis_top(max);
    #[allow(clippy::cast_precision_loss)] // a handful of channels
    let slot = (WIDTH - LEFT) / rows.len() as f64;
    let bar = (slot * 0.8 / 3.0).min(40.0);
    let groups: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            #[allow(clippy::cast_precision_loss)]
            let x0 = LEFT + slot * i as f64 + (slot - 3.0 * bar) / 2.0;
            let bars: Vec<Value> = [
                ("leads", r.leads),
                ("qualified", r.qualified),
                ("customers", r.customers),
            ]
            .iter()
            .enumerate()
            .map(|(j, (what, n))| {
                let h = scale(*n, top);
                #[allow(clippy::cast_precision_loss)]
                let x = x0 + bar * j as f64;
                context! {
                    what => *what,
                    n => *n,
                    x => coord(x),
                    y => coord(HEIGHT - BOTTOM - h),
                    width => coord(bar * 0.9),
                    height => coord(h),
                }
            })
            .collect();
            context! {
                channel => r.key.as_deref().unwrap_or("-"),
                label_x => coord(x0 + 1.5 * bar),
                bars,
            }
        })
        .collect();
    Some(context! {
        groups,
        ..frame(top)
    })
}

/// The line chart: per channel, its leads in each month (months without leads at 0). `None`
/// without leads. A single month has no line to draw, and a dot per channel floating in an
/// empty chart says little: it becomes a bar per channel, labelled with its count and name
/// (`single`, each series' `bar`).
fn line_chart(months: &[String], rows: &[LeadGroupRow]) -> Option<Value> {
    let max = rows.iter().map(|r| r.leads).max().filter(|m| *m > 0)?;
    let top = axis_top(max);
    let mut channels: Vec<&str> = rows.iter().filter_map(|r| r.key.as_deref()).collect();
    channels.dedup();
    // One month alone would be a point: it sits in the middle.
    #[allow(clippy::cast_precision_loss)]
    let x = |i: usize| {
        if months.len() < 2 {
            LEFT + (WIDTH - LEFT) / 2.0
        } else {
            LEFT + 30.0 + (WIDTH - LEFT - 60.0) * i as f64 / (months.len() - 1) as f64
        }
    };
    let series: Vec<Value> = channels
        .iter()
        .enumerate()
        .map(|(c, channel)| {
            let points: Vec<Value> = (0..months.len())
                .map(|m| {
                    let n = rows
                        .iter()
                        .find(|r| r.key.as_deref() == Some(channel) && r.period == m)
                        .map_or(0, |r| r.leads);
                    context! {
                        x => coord(x(m)),
                        y => coord(HEIGHT - BOTTOM - scale(n, top)),
                        n,
                        month => &months[m],
                    }
                })
                .collect();
            let line = points
                .iter()
                .map(|p| {
                    format!(
                        "{},{}",
                        p.get_attr("x").unwrap_or_default(),
                        p.get_attr("y").unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            let bar = (months.len() == 1).then(|| {
                let n = points
                    .first()
                    .and_then(|p| p.get_attr("n").ok())
                    .and_then(|n| i64::try_from(n).ok())
                    .unwrap_or(0);
                single_bar(c, channels.len(), n, top)
            });
            context! {
                channel => *channel,
                colour => c % SERIES_COLOURS,
                line,
                points,
                bar,
            }
        })
        .collect();
    if months.len() == 1 {
        return Some(context! {
            series,
            single => months.first(),
            ..frame(top)
        });
    }
    // Month labels: at most about a dozen, so they do not overlap.
    let every = months.len().div_ceil(12).max(1);
    let ticks: Vec<Value> = months
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, m)| context! { x => coord(x(i)), label => m })
        .collect();
    Some(context! {
        series,
        ticks,
        ..frame(top)
    })
}

/// The bar of channel `i` of `count` in a one-month chart: `n` leads of `top`, with where its
/// count is written (above it) and its channel's name (under the baseline).
fn single_bar(i: usize, count: usize, n: i64, top: i64) -> Value {
    #[allow(clippy::cast_precision_loss)] // a handful of channels
    let slot = (WIDTH - LEFT) / count.max(1) as f64;
    let width = (slot * 0.6).min(60.0);
    #[allow(clippy::cast_precision_loss)]
    let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
    let h = scale(n, top);
    context! {
        x => coord(x),
        y => coord(HEIGHT - BOTTOM - h),
        width => coord(width),
        height => coord(h),
        label_x => coord(x + width / 2.0),
        value_y => coord(HEIGHT - BOTTOM - h - 4.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(channel: &str, period: usize, leads: i64, qualified: i64) -> LeadGroupRow {
        LeadGroupRow {
            key: Some(channel.to_owned()),
            period,
            leads,
            replied: 0,
            handed_off: 0,
            qualified,
            unqualified: 0,
            customers: 1.min(qualified),
            reasons: Vec::new(),
            median_days_to_verdict: None,
        }
    }

    #[test]
    fn axes_end_at_a_round_number_at_or_above_the_largest_count() {
        assert_eq!(axis_top(0), 1);
        assert_eq!(axis_top(1), 1);
        assert_eq!(axis_top(3), 5);
        assert_eq!(axis_top(7), 10);
        assert_eq!(axis_top(11), 20);
        assert_eq!(axis_top(20), 20);
        assert_eq!(axis_top(4_999), 5_000);
        assert!(axis_top(i64::MAX) >= i64::MAX / 2);
    }

    #[test]
    fn grid_lines_fall_on_whole_numbers() {
        let labels = |top| -> Vec<String> {
            grid(top)
                .iter()
                .map(|g| g.get_attr("label").unwrap().to_string())
                .collect()
        };
        assert_eq!(labels(1), ["0", "1"]);
        assert_eq!(labels(2), ["0", "1", "2"]);
        assert_eq!(labels(5), ["0", "1", "2", "3", "4", "5"]);
        assert_eq!(labels(20), ["0", "4", "8", "12", "16", "20"]);
        assert_eq!(labels(100), ["0", "20", "40", "60", "80", "100"]);
    }

    #[test]
    fn bars_are_as_tall_as_their_counts_and_stand_on_the_axis() {
        let rows = [row("ads", 0, 10, 5), row("fair", 0, 4, 0)];
        let chart = bar_chart(&rows).unwrap();
        let groups = chart.get_attr("groups").unwrap();
        let ads = groups.get_item(&Value::from(0)).unwrap();
        let bars = ads.get_attr("bars").unwrap();
        let h = |i: usize| -> f64 {
            let b = bars.get_item(&Value::from(i)).unwrap();
            b.get_attr("height").unwrap().to_string().parse().unwrap()
        };
        let full = HEIGHT - BOTTOM - TOP;
        assert!((h(0) - full).abs() < 0.01, "10 of 10 fills the area");
        assert!((h(1) - full / 2.0).abs() < 0.01, "5 of 10 is half");
        let b = bars.get_item(&Value::from(1)).unwrap();
        let y: f64 = b.get_attr("y").unwrap().to_string().parse().unwrap();
        assert!((y + h(1) - (HEIGHT - BOTTOM)).abs() < 0.01);
        assert!(bar_chart(&[row("none", 0, 0, 0)]).is_none());
    }

    #[test]
    fn a_line_has_a_point_per_month_with_zero_where_a_channel_had_none() {
        let months = [
            "2026-01".to_owned(),
            "2026-02".to_owned(),
            "2026-03".to_owned(),
        ];
        let rows = [
            row("ads", 0, 4, 0),
            row("ads", 2, 2, 0),
            row("fair", 1, 1, 0),
        ];
        let chart = line_chart(&months, &rows).unwrap();
        let series = chart.get_attr("series").unwrap();
        assert_eq!(series.len(), Some(2));
        let ads = series.get_item(&Value::from(0)).unwrap();
        let points = ads.get_attr("points").unwrap();
        let n: Vec<i64> = (0..3)
            .map(|i| {
                let p = points.get_item(&Value::from(i)).unwrap();
                i64::try_from(p.get_attr("n").unwrap()).unwrap()
            })
            .collect();
        assert_eq!(n, [4, 0, 2]);
        assert_eq!(
            ads.get_attr("line").unwrap().to_string().split(' ').count(),
            3
        );
        assert!(chart.get_attr("single").unwrap().is_undefined());
        assert!(ads.get_attr("bar").unwrap().is_none());
    }

    #[test]
    fn one_month_is_drawn_as_a_bar_per_channel() {
        let months = ["2026-12".to_owned()];
        let rows = [row("ads", 0, 5, 0), row("fair", 0, 1, 0)];
        let chart = line_chart(&months, &rows).unwrap();
        assert_eq!(chart.get_attr("single").unwrap().to_string(), "2026-12");
        let series = chart.get_attr("series").unwrap();
        let bar = |i: usize| {
            series
                .get_item(&Value::from(i))
                .unwrap()
                .get_attr("bar")
                .unwrap()
        };
        let number =
            |v: Value, k: &str| -> f64 { v.get_attr(k).unwrap().to_string().parse().unwrap() };
        let full = HEIGHT - BOTTOM - TOP;
        assert!(
            (number(bar(0), "height") - full).abs() < 0.01,
            "5 of 5 fills the area"
        );
        assert!((number(bar(1), "height") - full / 5.0).abs() < 0.01);
        assert!(
            number(bar(0), "x") + number(bar(0), "width") < number(bar(1), "x"),
            "side by side"
        );
        assert!(number(bar(1), "x") + number(bar(1), "width") <= WIDTH);
        assert!(
            number(bar(1), "value_y") < number(bar(1), "y"),
            "the count sits above its bar"
        );
    }
}
