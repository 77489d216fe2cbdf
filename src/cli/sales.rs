//! `leads assign` and `leads verdict`: what Sales says by mail, said at the terminal, acted on
//! by the same lead actions.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;

use crate::classify;
use crate::config::Config;
use crate::daemon;
use crate::domain::LeadStatus;
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
    let changes: Vec<LeadChange> = changes
        .into_iter()
        .map(|c| LeadChange::by_hand(&lead, c))
        .collect();
    store.apply_lead_changes(&changes, now).await?;
    let after = store.lead(&lead.email).await?.unwrap_or(lead);
    writeln!(
        out,
        "{}: verdict {} recorded; status {}",
        after.email, verdict.kind, after.status
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `leadloop leads approve EMAIL`.
pub async fn approve(
    config: &Config,
    store: &Store,
    email: &str,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let lead = find(store, email).await?;
    if lead.status != LeadStatus::Review {
        writeln!(
            out,
            "{} is {}, not waiting for review: nothing to approve",
            lead.email, lead.status
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(origin) = store.lead_origin(&lead).await? else {
        anyhow::bail!(
            "{}: the message it came from is no longer recorded; set its status with `leadloop leads status {} new` and enroll it by hand",
            lead.email,
            lead.email
        );
    };
    let who = by();
    let changes: Vec<LeadChange> = daemon::actions(config)
        .approval_changes(&lead, origin.kind, &who)
        .into_iter()
        .map(|c| LeadChange::by_hand(&lead, c))
        .collect();
    let now = Utc::now();
    if !store.approve_lead(&lead, &changes, &who, now).await? {
        writeln!(out, "{} was approved meanwhile: nothing to do", lead.email)?;
        return Ok(ExitCode::SUCCESS);
    }
    let enrolled: Vec<String> = store
        .enrollments(lead.id)
        .await?
        .into_iter()
        .map(|e| String::from(e.sequence))
        .collect();
    let handed_off = changes
        .iter()
        .any(|c| matches!(c.change, Change::Handoff { .. }));
    writeln!(
        out,
        "{}: approved (it waited because {}); status new; {}{}",
        lead.email,
        origin.review.as_deref().unwrap_or("it was held for review"),
        if enrolled.is_empty() {
            "in no sequence".to_owned()
        } else {
            format!("enrolled in {}", enrolled.join(", "))
        },
        if handed_off {
            "; handed off to its owner"
        } else {
            ""
        }
    )?;
    Ok(ExitCode::SUCCESS)
}
