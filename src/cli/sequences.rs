//! `leadloop enroll`, `unenroll`, `preview` and `simulate`: what marketing runs before and
//! after changing a sequence.

use std::io::{self, Write};

use std::process::ExitCode;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::output::{Cell, Column, Format, Table};
use crate::config::Config;
use crate::daemon;
use crate::domain::{
    EmailAddress, EnrollmentId, EnrollmentState, Lead, MessageId, SequenceName, StepId,
};
use crate::render;
use crate::sequence::schedule::{StopMessages, Usage, decide};
use crate::sequence::{Catalog, Sequence};
use crate::store::{EnrollRule, Enrollment, NewOutboxMessage, Settle, Store};

fn sequence<'a>(catalog: &'a Catalog, name: &str) -> anyhow::Result<&'a Sequence> {
    catalog.get(name).ok_or_else(|| {
        let names: Vec<&str> = catalog.sequences.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            anyhow::anyhow!("no sequences are configured ([sequences] in the configuration)")
        } else {
            anyhow::anyhow!(
                "no sequence named '{name}' (there is: {})",
                names.join(", ")
            )
        }
    })
}

pub(super) async fn find_lead(store: &Store, email: &str) -> anyhow::Result<Lead> {
    let address = EmailAddress::parse(email).map_err(|e| anyhow::anyhow!("'{email}': {e}"))?;
    store
        .lead(&address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no lead with address {address}"))
}

/// `leadloop enroll EMAIL SEQUENCE`.
pub async fn enroll(config: &Config, email: &str, name: &str) -> anyhow::Result<ExitCode> {
    let catalog = &config.sequences;
    let seq = sequence(catalog, name)?;
    let store = daemon::open_store(config).await?;
    let lead = find_lead(&store, email).await?;
    let rule = EnrollRule {
        sequence: SequenceName::new(seq.name.clone()),
        kinds: Vec::new(),
        channels: Vec::new(),
        forms: Vec::new(),
        min_score: None,
        reenter: seq.enroll.reenter,
        exits: catalog.exited_by(&seq.name),
        exit_on_reply: seq.exit.on_reply,
        on_status: Vec::new(),
    };
    let added = store.enroll(&lead.email, &rule, Utc::now()).await?;
    store.close().await;
    if added {
        say!(
            "{} enrolled in {}; a running daemon picks it up within a minute",
            lead.email,
            seq.name
        );
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "{} is already in {}{}",
            lead.email,
            seq.name,
            if seq.enroll.reenter {
                ""
            } else {
                " or has been (reenter = false)"
            }
        )
    }
}

/// `leadloop unenroll EMAIL [SEQUENCE]`.
pub async fn unenroll(
    config: &Config,
    email: &str,
    name: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let lead = find_lead(&store, email).await?;
    let n = store.unenroll(lead.id, name, Utc::now()).await?;
    store.close().await;
    if n == 0 {
        anyhow::bail!(
            "{} is in no running sequence{}",
            lead.email,
            name.map_or(String::new(), |n| format!(" named {n}"))
        );
    }
    say!("{} left {n} sequence(s)", lead.email);
    Ok(ExitCode::SUCCESS)
}

async fn lead_or_sample(config: &Config, email: Option<&str>) -> anyhow::Result<Lead> {
    Ok(lead_and_past(config, email, None).await?.0)
}

/// How a lead's enrollment in a sequence ended: `(state, reason, when)`.
type Ended = (EnrollmentState, Option<String>, DateTime<Utc>);

/// The lead (or the sample lead) and, when `sequence` is given, how its latest enrollment in
/// that sequence ended, if it has ended.
async fn lead_and_past(
    config: &Config,
    email: Option<&str>,
    sequence: Option<&str>,
) -> anyhow::Result<(Lead, Option<Ended>)> {
    let Some(email) = email else {
        return Ok((render::sample_lead(), None));
    };
    let store = daemon::open_store(config).await?;
    let lead = find_lead(&store, email).await?;
    let mut ended = None;
    if let Some(name) = sequence
        && let Some(e) = store
            .enrollments(lead.id)
            .await?
            .into_iter()
            .rfind(|e| e.sequence.as_str() == name)
        && matches!(e.state, EnrollmentState::Exited | EnrollmentState::Done)
    {
        let at = store
            .enrollment_changed_at(e.id)
            .await?
            .unwrap_or(e.last_at);
        ended = Some((e.state, e.exit_reason, at));
    }
    store.close().await;
    Ok((lead, ended))
}

/// `leadloop preview SEQUENCE [--step ID] (--lead EMAIL | --sample)`.
pub async fn preview(
    config: &Config,
    name: &str,
    step: Option<&str>,
    lead: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let catalog = &config.sequences;
    let seq = sequence(catalog, name)?;
    let data = lead_or_sample(config, lead).await?;
    let steps: Vec<_> = match step {
        Some(id) => vec![seq.step(id).ok_or_else(|| {
            anyhow::anyhow!(
                "sequence {} has no step '{id}' (steps: {})",
                seq.name,
                seq.steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?],
        None => seq.steps.iter().collect(),
    };
    let mut out = io::stdout().lock();
    let mut failed = false;
    for s in steps {
        writeln!(
            out,
            "=== {} / step {} (delay {}) ===",
            seq.name, s.id, s.delay
        )?;
        match catalog.applies(s, &data) {
            Ok(true) => {}
            Ok(false) => writeln!(
                out,
                "(skipped for this lead: when = {:?} is false)",
                s.when.as_deref().unwrap_or("")
            )?,
            Err(e) => {
                writeln!(out, "error: {e}")?;
                failed = true;
                continue;
            }
        }
        match catalog.render(seq, s, &data, EnrollmentId(0), "preview", Utc::now()) {
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.bytes);
                let head = text.split("\r\n\r\n").next().unwrap_or("");
                writeln!(out, "{}\n", head.replace("\r\n", "\n"))?;
                writeln!(out, "--- text ---\n{}", r.text)?;
                if let Some(h) = &r.html {
                    writeln!(out, "--- html ---\n{h}")?;
                }
            }
            Err(e) => {
                writeln!(out, "error: {e}")?;
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads `--from`: RFC 3339, or `YYYY-MM-DD HH:MM` in the team's zone.
pub fn parse_from(s: &str, team: Tz) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return team
                .from_local_datetime(&n)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| anyhow::anyhow!("{s} does not exist in {team}"));
        }
    }
    anyhow::bail!("'{s}' is not a time like 2026-11-27T09:00:00+01:00 or \"2026-11-27 09:00\"")
}

/// `leadloop simulate SEQUENCE --lead EMAIL [--from DATETIME] [--format F]`: the lead's
/// timeline, decided by the scheduler's own rules (delays, conditions, windows, the per-lead
/// cap) with a simulated clock. Sender and domain caps are taken as unused by other mail.
///
/// The table has one row per step, then how it ends; JSON and CSV have the same rows, the
/// ending as a last row without a step, and say the rest (the note about a lead that has left
/// the sequence) on stderr so the output stays one document.
pub async fn simulate(
    config: &Config,
    name: &str,
    lead: Option<&str>,
    from: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let catalog = &config.sequences;
    let seq = sequence(catalog, name)?;
    let policy = &catalog.settings.policy;
    let start = match from {
        Some(f) => parse_from(f, policy.timezone)?,
        None => Utc::now(),
    };
    let (lead, ended) = lead_and_past(config, lead, Some(&seq.name)).await?;
    let lead = Lead {
        created_at: start,
        updated_at: start,
        ..lead
    };
    let tz = policy.lead_zone(&lead.fields);
    let mut out = io::stdout().lock();
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    };
    // What follows is a fresh enrollment; a lead that has been through the sequence would
    // only get one if `reenter` allows it, so say so before the plan is read as its future.
    if let Some((state, reason, at)) = ended {
        let why = match (state, reason) {
            (EnrollmentState::Done, _) => "done".to_owned(),
            (_, Some(r)) if !r.is_empty() => r,
            _ => state.as_str().to_owned(),
        };
        let note = format!(
            "note: {} left {} on {} ({why}); this plans a fresh enrollment, which the sequence's reenter setting {}",
            lead.email,
            seq.name,
            local(at),
            if seq.enroll.reenter {
                "allows"
            } else {
                "does not allow"
            }
        );
        if format == Format::Table {
            writeln!(out, "{note}")?;
        } else {
            eprintln!("{note}");
        }
    }
    if format == Format::Table {
        writeln!(
            out,
            "{} for {} in time zone {tz}, enrolled {}",
            seq.name,
            lead.email,
            local(start)
        )?;
    }
    let mut plan = Plan {
        table: Table::new(vec![
            Column::text("step"),
            Column::text("at"),
            Column::text("utc").header("UTC"),
            Column::text("what"),
        ])
        .nested(2),
        tz,
    };
    let mut e = simulated_enrollment(&lead, seq, start);
    let stops = StopMessages::new();
    let mut usage = Usage::default();
    let mut now = start;
    let mut code = ExitCode::SUCCESS;
    let mut end = None;
    // A sequence has at most a few dozen steps; each needs at most a few postponements.
    for _ in 0..1000 {
        let before = e.steps_done.clone();
        let decision = decide(
            catalog,
            &e,
            Some(&lead),
            &stops,
            &mut usage,
            now,
            &mut || 0.0,
        );
        match decision {
            Settle::Wait {
                steps_done,
                next_step,
                due,
                last_at,
            } => {
                plan.skipped(seq, &before, &steps_done, None);
                let ready = next_step
                    .as_ref()
                    .and_then(|id| seq.step(id.as_str()))
                    .is_some_and(|st| st.delay.after(last_at, tz) <= now);
                if ready {
                    let why = if policy.open_at(now, tz) > now {
                        "outside the send window"
                    } else {
                        "a send cap is reached"
                    };
                    plan.row(
                        next_step.as_ref().map_or("", StepId::as_str),
                        Some(now),
                        format!("waits until {} ({why})", local(due)),
                    );
                }
                e.steps_done = steps_done;
                e.next_step = next_step;
                e.next_due_at = Some(due);
                e.last_at = last_at;
                now = due;
            }
            Settle::Send {
                message,
                steps_done,
                next_step,
                due,
                ..
            } => {
                plan.skipped(seq, &before, &steps_done, Some(&message.step_id));
                plan.row(
                    message.step_id.as_str(),
                    Some(now),
                    format!("from {}", message.from),
                );
                e.steps_done = steps_done;
                e.next_step = next_step;
                e.touches += 1;
                e.last_at = now;
                match due {
                    Some(d) => {
                        e.next_due_at = Some(d);
                        now = d;
                    }
                    None => {
                        end = Some("done".to_owned());
                        break;
                    }
                }
            }
            Settle::Done { steps_done } => {
                plan.skipped(seq, &before, &steps_done, None);
                end = Some("done".to_owned());
                break;
            }
            Settle::Exit { reason } => {
                end = Some(format!("leaves the sequence: {reason}"));
                break;
            }
            Settle::Hold { error } => {
                end = Some(format!("held: {error}"));
                code = ExitCode::FAILURE;
                break;
            }
        }
    }
    let mut table = plan.table;
    match (format, end) {
        (Format::Table, end) => {
            table.write(&mut out, format)?;
            if let Some(end) = end {
                writeln!(out, "  {end}")?;
            }
        }
        (_, end) => {
            if let Some(end) = end {
                table.push(vec![
                    Cell::opt(None),
                    Cell::opt(None),
                    Cell::opt(None),
                    Cell::text(end),
                ]);
            }
            table.write(&mut out, format)?;
        }
    }
    Ok(code)
}

/// `simulate`'s rows as they are decided.
struct Plan {
    table: Table,
    tz: Tz,
}

impl Plan {
    /// One step's row: when (in the lead's zone and in UTC) and what happens.
    fn row(&mut self, step: &str, at: Option<DateTime<Utc>>, what: String) {
        let (local, utc) = match at {
            Some(t) => (
                Cell::with_value(
                    t.with_timezone(&self.tz)
                        .format("%a %Y-%m-%d %H:%M %Z")
                        .to_string(),
                    t.with_timezone(&self.tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        .into(),
                ),
                Cell::with_value(
                    format!("({} UTC)", t.format("%Y-%m-%d %H:%M")),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into(),
                ),
            ),
            None => (Cell::opt(None), Cell::opt(None)),
        };
        self.table
            .push(vec![Cell::text(step), local, utc, Cell::text(what)]);
    }

    /// The steps a decision skipped: those done now that were not `before`, other than the
    /// one it sent.
    fn skipped(
        &mut self,
        seq: &Sequence,
        before: &[StepId],
        done: &[StepId],
        sent: Option<&StepId>,
    ) {
        for s in done
            .iter()
            .filter(|d| !before.contains(d) && Some(*d) != sent)
        {
            let when = seq
                .step(s.as_str())
                .and_then(|s| s.when.clone())
                .unwrap_or_default();
            self.row(
                s.as_str(),
                None,
                format!("skipped: when = {when:?} is false"),
            );
        }
    }
}

/// A new enrollment of `lead` in `seq` at `start`, as ingest would make it.
fn simulated_enrollment(lead: &Lead, seq: &Sequence, start: DateTime<Utc>) -> Enrollment {
    Enrollment {
        id: EnrollmentId(0),
        lead_id: lead.id,
        sequence: SequenceName::new(seq.name.clone()),
        state: EnrollmentState::Active,
        steps_done: Vec::new(),
        next_step: None,
        next_due_at: Some(start),
        last_at: start,
        touches: 0,
        token: "simulate".into(),
        exit_reason: None,
        error: None,
        enrolled_at: start,
        paused_until: None,
    }
}

/// `leadloop send-test SEQUENCE --step ID --to ADDRESS`: the step rendered for the sample lead,
/// addressed to ADDRESS, with a Message-ID of its own (it belongs to no enrollment).
pub fn step_test_message(
    config: &Config,
    name: &str,
    step: Option<&str>,
    to: &EmailAddress,
    now: DateTime<Utc>,
) -> anyhow::Result<NewOutboxMessage> {
    let catalog = &config.sequences;
    let seq = sequence(catalog, name)?;
    let step = match step {
        Some(id) => seq
            .step(id)
            .ok_or_else(|| anyhow::anyhow!("sequence {} has no step '{id}'", seq.name))?,
        None => seq
            .steps
            .first()
            .ok_or_else(|| anyhow::anyhow!("sequence {} has no steps", seq.name))?,
    };
    let lead = Lead {
        email: to.clone(),
        ..render::sample_lead()
    };
    let token = format!("test{:08x}", rand::random::<u32>());
    let r = catalog.render(seq, step, &lead, EnrollmentId(0), &token, now)?;
    let sender = catalog
        .sender(step)
        .ok_or_else(|| anyhow::anyhow!("no [[sender]] for step {}", step.id))?;
    let envelope_from = config
        .smtp
        .as_ref()
        .and_then(|s| s.envelope_from.clone())
        .unwrap_or_else(|| sender.address.clone());
    Ok(NewOutboxMessage {
        lead_id: None,
        enrollment_id: None,
        step_id: None,
        from: sender.address.to_string(),
        envelope_from: envelope_from.to_string(),
        recipient: to.to_string(),
        message_id: MessageId::new(r.message_id),
        raw: r.bytes,
        due_at: now,
    })
}
