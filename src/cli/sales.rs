//! `leads assign` and `leads verdict`: what Sales says by mail, said at the terminal, acted on
//! by the same lead actions.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;

use crate::classify;
use crate::config::Config;
use crate::daemon;
use crate::store::{Change, Lead, LeadChange, Store};

/// The lead with this address, or an error naming it.
pub async fn find(store: &Store, email: &str) -> anyhow::Result<Lead> {
    super::sequences::find_lead(store, email).await
}

/// Who made a change at the terminal, as the timeline records it: `cli` and the user's login.
pub fn by() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".to_owned(),
    }
}

/// A change to `lead`, outside any inbound message.
pub fn change(lead: &Lead, change: Change) -> LeadChange {
    LeadChange {
        record: 0,
        lead: lead.email.clone(),
        change,
    }
}

/// `leadloop leads verdict EMAIL VERDICT [--reason R] [--comment C]`.
pub async fn verdict(
    config: &Config,
    store: &Store,
    email: &str,
    words: &str,
    reason: Option<String>,
    comment: Option<String>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let lead = find(store, email).await?;
    let now = Utc::now();
    let text = match reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{}: {r}", words.trim()),
        None => words.trim().to_owned(),
    };
    // One line: what follows a line break would be read as a comment.
    let text = text.lines().next().unwrap_or_default();
    let Some(mut verdict) = classify::read_verdict(text, now.date_naive()) else {
        anyhow::bail!(
            "'{words}' is not a verdict; accepted: {}",
            crate::render::accepted_verdicts()
        );
    };
    verdict.comment = comment.filter(|c| !c.trim().is_empty());
    let actions = daemon::actions(config);
    let changes = actions
        .verdict_changes(&verdict, &by(), "cli", now)
        .map_err(|problem| anyhow::anyhow!("{problem}"))?;
    let changes: Vec<LeadChange> = changes.into_iter().map(|c| change(&lead, c)).collect();
    store.apply_lead_changes(&changes, now).await?;
    let after = store.lead(&lead.email).await?.unwrap_or(lead);
    writeln!(
        out,
        "{}: verdict {} recorded; status {}",
        after.email, verdict.kind, after.status
    )?;
    Ok(ExitCode::SUCCESS)
}
