//! `leadloop digest send NAME [--period-start DAY] [--dry-run]`: one `[[digest]]` by hand,
//! or its preview.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use clap::Subcommand;

use crate::actions::digest::Outcome;
use crate::config::Config;
use crate::daemon;

/// `leadloop digest …`.
#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Send a digest now, for the last full period or the one holding --period-start; a
    /// digest already sent for that period is not sent again.
    Send {
        /// The `[[digest]] name`.
        name: String,
        /// A day (YYYY-MM-DD) of the period to send, in the team's time zone.
        #[arg(long, value_name = "DAY")]
        period_start: Option<String>,
        /// Print the subject, recipients and text part; send and record nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `leadloop digest …`.
///
/// # Errors
/// An unknown digest or day, the database, or rendering.
pub async fn digest(
    config: &Config,
    cmd: DigestCommand,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let DigestCommand::Send {
        name,
        period_start,
        dry_run,
    } = cmd;
    let day = period_start
        .as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .with_context(|| format!("--period-start: '{d}' is not a day like 2026-11-23"))
        })
        .transpose()?;
    if !config.digests.iter().any(|d| d.name == name) {
        let known: Vec<&str> = config.digests.iter().map(|d| d.name.as_str()).collect();
        anyhow::bail!(
            "there is no [[digest]] named '{name}'; known: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let store = daemon::open_store(config).await?;
    let result = async {
        let digests = daemon::digests(config, store.clone())
            .context("no digests are configured")?;
        let spec = digests.spec(&name).context("the digest vanished")?;
        let now = Utc::now();
        let period = match day {
            Some(day) => digests.period_of(spec, day),
            None => digests.last_full_period(spec, now),
        };
        if dry_run {
            let p = digests.prepare(spec, period, now).await?;
            let to: Vec<&str> = spec.to.iter().map(|a| a.as_str()).collect();
            writeln!(out, "Subject: {}\nTo: {}\n", p.subject, to.join(", "))?;
            write!(out, "{}", p.text)?;
            if store.digest_recorded(&spec.name, p.period.start).await? {
                writeln!(
                    out,
                    "\n(dry run: this digest was sent for {} already)",
                    p.period.label
                )?;
            } else {
                writeln!(out, "\n(dry run: nothing sent)")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        match digests.send(spec, period, now).await? {
            Outcome::Queued {
                name,
                label,
                messages,
            } => {
                writeln!(
                    out,
                    "digest {name} for {label}: {messages} messages queued; the daemon (or `leadloop run --once`) sends them"
                )?;
                Ok(ExitCode::SUCCESS)
            }
            Outcome::AlreadySent { name, label } => {
                writeln!(
                    out,
                    "digest {name} for {label} was sent already; nothing sent (once per period)"
                )?;
                Ok(ExitCode::from(1))
            }
        }
    }
    .await;
    store.close().await;
    result
}
