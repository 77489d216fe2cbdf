//! `leadloop score --explain EMAIL` and `leadloop score --recompute`: why a lead has its
//! score, rule by rule, and scores brought up to date after the rules changed.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;
use clap::Args;

use super::output::{Cell, Column, Format, Table};
use crate::config::Config;
use crate::daemon;

/// `leadloop score`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["explain", "recompute"])))]
pub struct ScoreArgs {
    /// Show how this lead's score adds up: each `[[score]]` rule, whether it holds, its points.
    #[arg(long, value_name = "EMAIL")]
    explain: Option<String>,
    /// Recompute every lead's score with the rules as they are now (after editing them).
    #[arg(long)]
    recompute: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn score(
    config: &Config,
    args: ScoreArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let now = Utc::now();
    if args.recompute {
        if config.scoring.rules.is_empty() {
            anyhow::bail!("there are no [[score]] rules in {}", config.path.display());
        }
        let changed = store.rescore_all(now).await?;
        writeln!(out, "{changed} scores changed")?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(email) = args.explain else {
        return Ok(ExitCode::SUCCESS);
    };
    let lead = super::sales::find(&store, &email).await?;
    let facts = store.score_facts(&lead).await?;
    let rules = config.scoring.explain(&facts, now);
    let total: i64 = rules
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().copied().flatten())
        .sum();
    if args.json {
        let rows: Vec<serde_json::Value> = rules
            .iter()
            .map(|(rule, result)| {
                serde_json::json!({
                    "reason": rule.reason,
                    "when": rule.when,
                    "points": rule.points,
                    "decay_per_week": rule.decay_per_week,
                    "holds": matches!(result, Ok(Some(_))),
                    "counted": result.as_ref().ok().copied().flatten().unwrap_or(0),
                    "error": result.as_ref().err(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "email": lead.email,
            "score": total,
            "stored_score": lead.score,
            "rules": rows,
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if rules.is_empty() {
        writeln!(
            out,
            "{}: score {} (there are no [[score]] rules in {})",
            lead.email,
            lead.score,
            config.path.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{}: score {total}", lead.email)?;
    let mut table = Table::new(vec![Column::number("points"), Column::text("reason")]).nested(2);
    for (rule, result) in &rules {
        let (points, reason) = match result {
            Ok(Some(points)) => {
                let decay = if *points == rule.points {
                    String::new()
                } else {
                    format!(
                        " ({:+} before {} quiet weeks of decay)",
                        rule.points,
                        weeks(&facts, now)
                    )
                };
                (format!("{points:+}"), format!("{}{decay}", rule.reason))
            }
            Ok(None) => (
                String::new(),
                format!("{} (does not hold: {})", rule.reason, rule.when),
            ),
            Err(e) => (
                String::new(),
                format!("{} (cannot be evaluated: {e})", rule.reason),
            ),
        };
        table.push(vec![Cell::text(points), Cell::text(reason)]);
    }
    table.write(out, Format::Table)?;
    if total != lead.score {
        writeln!(
            out,
            "note: the stored score is {}; it is recomputed with the lead's next change, or by `leadloop score --recompute`",
            lead.score
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn weeks(facts: &crate::store::ScoreFacts, now: chrono::DateTime<Utc>) -> i64 {
    (now - facts.last_activity).num_weeks().max(0)
}
