//! `leadloop suppressions …` and `leadloop leads status`: undoing what the sender decided.
//!
//! A refusal the sender took as permanent suppresses the address for good and marks the lead
//! `bounced`; when the refusal was a mistake, a person lifts the suppression and sets the status
//! back. Both are recorded on the lead's timeline. `suppressions list --json` is a contract
//! scripts read (one object per entry per line), like `leads list --json`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use serde_json::json;

use super::output::{Cell, Column, Format, Table};
use crate::config::Config;
use crate::daemon;
use crate::domain::{EmailAddress, EnrollmentState, LeadStatus};
use crate::store::{Store, Suppression, SuppressionEntry};

/// `leadloop suppressions …`.
#[derive(Debug, Subcommand)]
pub enum SuppressionsCommand {
    /// List the addresses and domains nothing is sent to, newest first.
    List {
        /// One JSON object per entry per line.
        #[arg(long)]
        json: bool,
    },
    /// Take an address (or, with @DOMAIN, a domain) off the list, so it can be mailed again.
    Remove {
        /// The address, or @ and a domain.
        #[arg(value_name = "ADDRESS|@DOMAIN")]
        entry: String,
    },
    /// Stop sending to an address (or, with @DOMAIN, every address at a domain).
    Add {
        /// The address, or @ and a domain.
        #[arg(value_name = "ADDRESS|@DOMAIN")]
        entry: String,
        /// Why, shown by `suppressions list`.
        #[arg(long, default_value = "suppressed by hand")]
        reason: String,
    },
}

/// An address, or `@domain` for a domain: validated like any address at the edge, so what is
/// looked up or stored is in the form the sender compares against.
fn parse_entry(raw: &str) -> anyhow::Result<Suppression> {
    let trimmed = raw.trim();
    if let Some(domain) = trimmed.strip_prefix('@') {
        // A domain is valid when an address at it is.
        let probe = EmailAddress::parse(&format!("postmaster@{domain}"))
            .map_err(|e| anyhow::anyhow!("'{raw}' is not @ and a mail domain: {e}"))?;
        Ok(Suppression::Domain(probe.domain().to_owned()))
    } else {
        let address = EmailAddress::parse(trimmed).map_err(|e| {
            anyhow::anyhow!("'{raw}': {e} (a whole domain is written @example.org)")
        })?;
        Ok(Suppression::Address(address.as_str().to_owned()))
    }
}

/// How an entry is written on the command line: the address, or `@domain`.
fn written(entry: &Suppression) -> String {
    match entry {
        Suppression::Address(_) => entry.value(),
        Suppression::Domain(_) => format!("@{}", entry.value()),
    }
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn entry_json(e: &SuppressionEntry) -> serde_json::Value {
    json!({
        "kind": e.entry.kind(),
        "value": e.entry.value(),
        "reason": e.reason,
        "created_at": time(e.created_at),
    })
}

/// `leadloop suppressions list|remove|add`.
pub async fn suppressions(config: &Config, cmd: SuppressionsCommand) -> anyhow::Result<ExitCode> {
    // Arguments are checked before the database is opened.
    enum Action {
        List(bool),
        Remove(Suppression),
        Add(Suppression, String),
    }
    let action = match cmd {
        SuppressionsCommand::List { json } => Action::List(json),
        SuppressionsCommand::Remove { entry } => Action::Remove(parse_entry(&entry)?),
        SuppressionsCommand::Add { entry, reason } => Action::Add(parse_entry(&entry)?, reason),
    };
    let store = daemon::open_store(config).await?;
    let result = match action {
        Action::List(json) => list(&store, json).await,
        Action::Remove(entry) => remove(&store, &entry).await,
        Action::Add(entry, reason) => add(&store, &entry, &reason).await,
    };
    store.close().await;
    result
}

async fn list(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let entries = store
        .list_suppressions()
        .await
        .context("reading the suppression list")?;
    let mut out = io::stdout().lock();
    if json {
        for e in &entries {
            writeln!(out, "{}", entry_json(e))?;
        }
    } else if entries.is_empty() {
        writeln!(out, "no suppressions")?;
    } else {
        let mut table = Table::new(vec![
            Column::text("kind"),
            Column::text("value"),
            Column::text("created"),
            Column::text("reason"),
        ]);
        for e in &entries {
            table.push(vec![
                Cell::text(e.entry.kind()),
                Cell::text(written(&e.entry)),
                Cell::text(e.created_at.format("%Y-%m-%d %H:%M").to_string()),
                // One entry per line, whatever a server put in its refusal.
                Cell::text(e.reason.replace(['\r', '\n'], " ")),
            ]);
        }
        table.write(&mut out, Format::Table)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(store: &Store, entry: &Suppression) -> anyhow::Result<ExitCode> {
    let shown = written(entry);
    let Some(was) = store
        .remove_suppression(entry, Utc::now())
        .await
        .context("removing the suppression")?
    else {
        anyhow::bail!(
            "{shown} is not on the suppression list (`leadloop suppressions list` shows what is)"
        );
    };
    say!(
        "{shown} removed from the suppression list (it was: {})",
        was.replace(['\r', '\n'], " ")
    );
    if let Suppression::Address(value) = entry
        && let Ok(address) = EmailAddress::parse(value)
    {
        // The domain's entry still stops it; and the lead may still be marked bounced.
        for other in store.suppressions_of(&address).await? {
            let w = written(&other.entry);
            say!("note: {w} is suppressed too: `leadloop suppressions remove {w}`");
        }
        // The statuses nothing is sent to: the scheduler ends a lead's sequences on them, and
        // the daemon sets them together with a suppression.
        if let Some(lead) = store.lead(&address).await?
            && !lead.status.may_be_mailed()
        {
            say!(
                "note: the lead is still {}: `leadloop leads status {address} new` (or the \
                 status it had)",
                lead.status
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(store: &Store, entry: &Suppression, reason: &str) -> anyhow::Result<ExitCode> {
    let shown = written(entry);
    if store
        .add_suppression(entry, reason, Utc::now())
        .await
        .context("adding the suppression")?
    {
        say!("{shown} suppressed: nothing more is sent to it");
    } else {
        say!("{shown} was already suppressed (the first reason is kept)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `leadloop leads status EMAIL STATUS`.
pub async fn lead_status(
    store: &Store,
    email: &str,
    status: LeadStatus,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let address = EmailAddress::parse(email).map_err(|e| anyhow::anyhow!("'{email}': {e}"))?;
    let Some((old, new)) = store
        .set_lead_status(&address, status, Utc::now())
        .await
        .context("setting the lead's status")?
    else {
        anyhow::bail!("no lead with address {address}");
    };
    if old == new {
        writeln!(out, "{address} is already {new}")?;
    } else {
        writeln!(out, "{address}: {old} -> {new}")?;
    }
    if new.may_be_mailed() {
        for s in store.suppressions_of(&address).await? {
            let w = written(&s.entry);
            writeln!(
                out,
                "note: {w} is still suppressed ({}), so nothing is sent: \
                 `leadloop suppressions remove {w}`",
                s.reason.replace(['\r', '\n'], " ")
            )?;
        }
        if !old.may_be_mailed()
            && let Some(lead) = store.lead(&address).await?
        {
            let ended: Vec<String> = store
                .enrollments(lead.id)
                .await?
                .into_iter()
                .filter(|e| e.state == EnrollmentState::Exited)
                .map(|e| String::from(e.sequence))
                .collect();
            if !ended.is_empty() {
                writeln!(
                    out,
                    "note: sequences it left stay ended ({}); `leadloop enroll` starts one again \
                     where the sequence allows it",
                    ended.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{LeadStatus, Suppression, parse_entry, written};

    #[test]
    fn the_unmailed_statuses_are_the_ones_the_daemon_sets_with_a_suppression() {
        let unmailed: Vec<LeadStatus> = LeadStatus::ALL
            .iter()
            .copied()
            .filter(|s| !s.may_be_mailed())
            .collect();
        // `review` is not mailed either, but it comes before any mail: no suppression.
        assert_eq!(
            unmailed,
            [
                LeadStatus::Unsubscribed,
                LeadStatus::Bounced,
                LeadStatus::Review
            ]
        );
    }

    #[test]
    fn entries_are_parsed_and_written_back_the_same_way() {
        let a = parse_entry(" <Eve@Example.ORG> ").unwrap();
        assert_eq!(a, Suppression::Address("eve@example.org".into()));
        assert_eq!(written(&a), "eve@example.org");
        let d = parse_entry("@Example.org.").unwrap();
        assert_eq!(d, Suppression::Domain("example.org".into()));
        assert_eq!(written(&d), "@example.org");
        for bad in [
            "",
            "@",
            "@@x.org",
            "@nodot",
            "eve",
            "eve@",
            "a b@x.org",
            "@x .org",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?}");
        }
    }
}
