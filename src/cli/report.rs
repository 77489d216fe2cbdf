//! `leadloop report channels|forms|owners|sequences|reasons`: what each channel, form, owner
//! and sequence step brought, for Marketing.
//!
//! The counting happens in the database ([`crate::store::Store::lead_report`]); this module
//! turns the options into a window and periods in the team's time zone (`[policy] timezone`),
//! computes the rates, and prints through the shared output layer. `--format json` is a
//! contract scripts read: one JSON array, one object per row, keys as documented in the README
//! (for `channels`: `channel`, `leads`, `replied`, `handed_off`, `qualified`, `unqualified`,
//! `customers`, `top_reasons` as `[{"reason", "count"}]`, the rates, and `period` with `--by`).

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::output::{Cell, Column, Format, Table};
use crate::config::Config;
use crate::daemon;
use crate::store::{
    LeadGroup, LeadGroupRow, ReportPeriod, ReportWindow, StepRow, Store, ratio, report_periods,
    report_time,
};

/// Unqualified reasons the table shows per row; JSON and CSV give all of them.
const TABLE_REASONS: usize = 3;

/// `leadloop report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per channel: leads, replies, hand-offs, verdicts, top unqualified reasons, rates and
    /// the median days to a verdict.
    Channels(ReportArgs),
    /// The same per form (leads that came by mail, not a form, are one row without a form).
    Forms(ReportArgs),
    /// The same per lead owner (the colleague who forwarded the lead, or its route's owner,
    /// unless it was reassigned).
    Owners(ReportArgs),
    /// Per sequence and step: sent, and what followed before the next step (replies,
    /// unsubscribes, bounces, hand-offs, verdicts).
    Sequences(ReportArgs),
    /// Per unqualified reason: how many leads, and their share of the unqualified.
    Reasons {
        #[command(flatten)]
        args: ReportArgs,
        /// One set of reasons per channel.
        #[arg(long)]
        by_channel: bool,
    },
}

/// The options every report takes.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// From this day (YYYY-MM-DD, in the team's time zone) or moment (RFC 3339) on.
    #[arg(long)]
    since: Option<String>,
    /// Up to and including this day (YYYY-MM-DD), or up to this moment (RFC 3339); default now.
    #[arg(long)]
    until: Option<String>,
    /// One row per group and week (Monday to Sunday) or calendar month, in the team's time
    /// zone.
    #[arg(long, value_enum)]
    by: Option<Period>,
    /// table for people; json (one array of objects) and csv for scripts.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The periods of `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Period {
    /// ISO weeks, Monday to Sunday, labelled `2026-W41`.
    Week,
    /// Calendar months, labelled `2026-10`.
    Month,
}

impl From<Period> for ReportPeriod {
    fn from(p: Period) -> ReportPeriod {
        match p {
            Period::Week => ReportPeriod::Week,
            Period::Month => ReportPeriod::Month,
        }
    }
}

/// Runs a report.
///
/// # Errors
/// A bad option, the database, or writing the output.
pub async fn report(config: &Config, cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    let zone = config.sequences.settings.policy.timezone;
    let (args, what) = match &cmd {
        ReportCommand::Channels(a) => (a, What::Leads(LeadGroup::Channel)),
        ReportCommand::Forms(a) => (a, What::Leads(LeadGroup::Form)),
        ReportCommand::Owners(a) => (a, What::Leads(LeadGroup::Owner)),
        ReportCommand::Sequences(a) => (a, What::Sequences),
        ReportCommand::Reasons { args, by_channel } => (
            args,
            What::Reasons(if *by_channel {
                LeadGroup::Channel
            } else {
                LeadGroup::All
            }),
        ),
    };
    let now = Utc::now();
    let since = args
        .since
        .as_deref()
        .map(|s| report_time(s, zone, false))
        .transpose()
        .context("--since")?;
    let until = match args.until.as_deref() {
        Some(s) => report_time(s, zone, true).context("--until")?,
        None => now,
    };
    if since.is_some_and(|s| s >= until) {
        anyhow::bail!("--since must be before --until");
    }
    // One query at a time: one connection.
    let store = daemon::open_store_with(config, 1).await?;
    let result = run(&store, &what, args, zone, since, until).await;
    store.close().await;
    let (title, table) = result?;
    let mut out = io::stdout().lock();
    if args.format == Format::Table {
        writeln!(out, "{title}\n")?;
        if table.is_empty() {
            writeln!(out, "nothing in this window")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    table.write(&mut out, args.format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Which report.
enum What {
    Leads(LeadGroup),
    Sequences,
    Reasons(LeadGroup),
}

async fn run(
    store: &Store,
    what: &What,
    args: &ReportArgs,
    zone: Tz,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
) -> anyhow::Result<(String, Table)> {
    let mut window = ReportWindow {
        since,
        until: Some(until),
        bounds: Vec::new(),
    };
    let span = match what {
        What::Sequences => store.sent_span(&window).await?,
        _ => store.lead_span(&window).await?,
    };
    let labels = match (args.by, span) {
        (Some(by), Some(span)) => {
            let (bounds, labels) = report_periods(by.into(), zone, span)?;
            window.bounds = bounds;
            labels
        }
        _ => Vec::new(),
    };
    let period = |i: usize| Cell::text(labels.get(i).cloned().unwrap_or_default());
    let by = args.by.is_some();
    let time = |t: DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    let range = format!(
        "from {} to {} ({zone}{})",
        since.map_or_else(|| "the start".to_owned(), time),
        time(until),
        match args.by {
            Some(Period::Week) => ", weeks from Monday",
            Some(Period::Month) => ", calendar months",
            None => "",
        }
    );
    match what {
        What::Leads(group) => {
            let rows = store.lead_report(*group, &window).await?;
            let key = match group {
                LeadGroup::Channel => "channel",
                LeadGroup::Form => "form",
                LeadGroup::Owner => "owner",
                LeadGroup::All => "all",
            };
            let title = format!("Leads by {key}, created {range}");
            Ok((title, lead_table(key, &rows, by.then_some(&period))))
        }
        What::Reasons(group) => {
            let reasons = store.unqualified_reasons(*group, &window).await?;
            let mut columns = Vec::new();
            if *group == LeadGroup::Channel {
                columns.push(Column::text("channel"));
            }
            if by {
                columns.push(Column::text("period"));
            }
            columns.extend([
                Column::text("reason").max(48),
                Column::number("count"),
                Column::number("share").header("SHARE %"),
            ]);
            let mut table = Table::new(columns);
            // Each group's total unqualified: every unqualified lead has one reason (or none).
            let mut totals = std::collections::HashMap::new();
            for (key, p, r) in &reasons {
                *totals.entry((key.clone(), *p)).or_insert(0_i64) += r.count;
            }
            for (key, p, r) in &reasons {
                let mut row = Vec::new();
                if *group == LeadGroup::Channel {
                    row.push(Cell::opt(key.as_deref()));
                }
                if by {
                    row.push(period(*p));
                }
                row.extend([
                    Cell::opt(r.reason.as_deref()),
                    Cell::int(r.count),
                    Cell::rate(ratio(r.count, totals[&(key.clone(), *p)])),
                ]);
                table.push(row);
            }
            let title = format!("Unqualified reasons of leads created {range}");
            Ok((title, table))
        }
        What::Sequences => {
            let rows = store.sequence_report(&window).await?;
            let title = format!("Sequence steps sent {range}");
            Ok((title, step_table(&rows, by.then_some(&period))))
        }
    }
}

/// The table of a lead report, `key` naming the group column.
fn lead_table(key: &str, rows: &[LeadGroupRow], period: Option<&dyn Fn(usize) -> Cell>) -> Table {
    let mut columns = vec![Column::text(key).max(40)];
    if period.is_some() {
        columns.push(Column::text("period"));
    }
    columns.extend([
        Column::number("leads"),
        Column::number("replied"),
        Column::number("handed_off"),
        Column::number("qualified"),
        Column::number("unqualified"),
        Column::number("customers"),
        Column::number("reply_rate").header("REPLY %"),
        Column::number("handoff_rate").header("HANDOFF %"),
        Column::number("qualified_rate").header("QUALIFIED %"),
        Column::number("customer_rate").header("CUSTOMER %"),
        Column::number("median_days_to_verdict").header("DAYS TO VERDICT"),
        Column::text("top_reasons"),
    ]);
    let mut table = Table::new(columns);
    for r in rows {
        let mut row = vec![Cell::opt(r.key.as_deref())];
        if let Some(period) = period {
            row.push(period(r.period));
        }
        let named = |reason: &Option<String>| reason.as_deref().unwrap_or("-").to_owned();
        let shown: Vec<String> = r
            .reasons
            .iter()
            .take(TABLE_REASONS)
            .map(|x| format!("{} ({})", named(&x.reason), x.count))
            .collect();
        let all: Vec<String> = r
            .reasons
            .iter()
            .map(|x| format!("{} ({})", named(&x.reason), x.count))
            .collect();
        let mut text = shown.join(", ");
        if r.reasons.len() > TABLE_REASONS {
            text.push_str(", …");
        }
        let value = r
            .reasons
            .iter()
            .map(|x| json!({ "reason": x.reason, "count": x.count }))
            .collect();
        row.extend([
            Cell::int(r.leads),
            Cell::int(r.replied),
            Cell::int(r.handed_off),
            Cell::int(r.qualified),
            Cell::int(r.unqualified),
            Cell::int(r.customers),
            Cell::rate(r.reply_rate()),
            Cell::rate(r.handoff_rate()),
            Cell::rate(r.qualified_rate()),
            Cell::rate(r.customer_rate()),
            Cell::decimal(r.median_days_to_verdict),
            Cell::with_value(if text.is_empty() { "-".into() } else { text }, value)
                .csv_text(all.join(", ")),
        ]);
        table.push(row);
    }
    table
}

/// The table of the sequences report.
fn step_table(rows: &[StepRow], period: Option<&dyn Fn(usize) -> Cell>) -> Table {
    let mut columns = vec![Column::text("sequence"), Column::text("step")];
    if period.is_some() {
        columns.push(Column::text("period"));
    }
    columns.extend([
        Column::number("sent"),
        Column::number("replied"),
        Column::number("unsubscribed"),
        Column::number("bounced"),
        Column::number("handed_off"),
        Column::number("qualified"),
        Column::number("unqualified"),
        Column::number("customers"),
        Column::number("reply_rate").header("REPLY %"),
    ]);
    let mut table = Table::new(columns);
    for r in rows {
        let mut row = vec![Cell::text(&r.sequence), Cell::text(&r.step)];
        if let Some(period) = period {
            row.push(period(r.period));
        }
        row.extend([
            Cell::int(r.sent),
            Cell::int(r.replied),
            Cell::int(r.unsubscribed),
            Cell::int(r.bounced),
            Cell::int(r.handed_off),
            Cell::int(r.qualified),
            Cell::int(r.unqualified),
            Cell::int(r.customers),
            Cell::rate(ratio(r.replied, r.sent)),
        ]);
        table.push(row);
    }
    table
}
