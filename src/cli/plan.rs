//! `leadloop plan [--against RUNNING] [--json]`: what the sequence files of `--config` would
//! do to the leads already in a sequence, compared with the files the daemon runs, before
//! `systemctl reload leadloop` (see `sequence::plan`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use crate::config::Config;
use crate::daemon;
use crate::diagnostics::Problem;
use crate::domain::EnrollmentId;
use crate::sequence::file::{self, Sequence};
use crate::sequence::plan::{Planner, SequencePlan};

/// Enrollments read per query.
const PAGE: usize = 1000;

/// What the plan compares against.
enum Running {
    /// The files the daemon recorded at its last start or reload.
    Recorded(DateTime<Utc>),
    /// Another configuration's files (`--against`).
    File(PathBuf),
}

/// `leadloop plan`.
pub async fn plan(
    config: &Config,
    config_path: &Path,
    against: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let (running, sequences) = match against {
        Some(path) => {
            let other = Config::load(path).map_err(|e| {
                anyhow::anyhow!(
                    "--against {}: the configuration has problems:\n{e}",
                    path.display()
                )
            })?;
            (
                Running::File(path.to_owned()),
                other.sequences.sequences.clone(),
            )
        }
        None => {
            let Some(recorded) = store.running_sequences().await? else {
                anyhow::bail!(
                    "no record of the sequences the daemon runs on this database: a daemon records them when it starts or reloads; name the running configuration with --against FILE"
                );
            };
            let loaded_at = recorded
                .iter()
                .map(|r| r.loaded_at)
                .max()
                .unwrap_or_default();
            let mut problems: Vec<Problem> = Vec::new();
            let sequences: Vec<Sequence> = recorded
                .iter()
                .filter_map(|r| {
                    let name = PathBuf::from(format!("{}.toml", r.name));
                    file::parse(&r.source, &name, &mut problems).map(|(s, _)| s)
                })
                .collect();
            for p in &problems {
                tracing::warn!(problem = %p, "a recorded sequence file does not read as this version reads it");
            }
            (Running::Recorded(loaded_at), sequences)
        }
    };
    let edited = &config.sequences;
    let mut planner = Planner::new(sequences);
    let now = Utc::now();
    let mut after = EnrollmentId(0);
    loop {
        let page = store.open_enrollments(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let ids: Vec<_> = page.iter().map(|e| e.lead_id).collect();
        let leads = store.leads_by_id(&ids).await?;
        for e in &page {
            planner.add(edited, e, leads.get(&e.lead_id), now);
        }
    }
    store.close().await;
    let plans = planner.finish(edited);
    let errors: u64 = plans.iter().flat_map(|p| &p.errors).map(|e| e.leads).sum();
    let mut out = io::stdout().lock();
    if json {
        let (against, recorded_at) = match &running {
            Running::Recorded(at) => (json!("running"), json!(at)),
            Running::File(p) => (json!(p.display().to_string()), json!(null)),
        };
        let v = json!({
            "config": config_path.display().to_string(),
            "against": against,
            "recorded_at": recorded_at,
            "now": now,
            "changes": plans.iter().any(changes),
            "errors": errors,
            "sequences": plans,
        });
        writeln!(out, "{v}")?;
    } else {
        let tz = edited.settings.policy.timezone;
        match &running {
            Running::Recorded(at) => writeln!(
                out,
                "{} against the sequences the daemon loaded {}",
                config_path.display(),
                local(*at, tz)
            )?,
            Running::File(p) => writeln!(out, "{} against {}", config_path.display(), p.display())?,
        }
        for p in &plans {
            write_plan(&mut out, p, tz)?;
        }
        if !plans.iter().any(changes) {
            writeln!(out, "no change for any lead")?;
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether the edit changes anything for a sequence's leads.
fn changes(p: &SequencePlan) -> bool {
    p.next.iter().any(|n| n.before != n.after)
        || !p.never_sent.is_empty()
        || !p.new_steps.is_empty()
        || !p.leaving.is_empty()
        || !p.errors.is_empty()
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

fn leads(n: u64) -> String {
    if n == 1 {
        "1 lead".to_owned()
    } else {
        format!("{n} leads")
    }
}

fn write_plan(out: &mut impl Write, p: &SequencePlan, tz: Tz) -> io::Result<()> {
    writeln!(
        out,
        "\n{} ({}): {} in the sequence",
        p.name,
        p.status,
        leads(p.open)
    )?;
    if p.open > 0 && !changes(p) {
        writeln!(out, "  no change for its leads")?;
        return Ok(());
    }
    if p.open == 0 {
        return Ok(());
    }
    writeln!(out, "  next step, before -> after:")?;
    for n in &p.next {
        let mark = if n.before == n.after { "" } else { "  *" };
        writeln!(
            out,
            "    {} -> {}: {}{mark}",
            n.before,
            n.after,
            leads(n.leads)
        )?;
    }
    for s in &p.never_sent {
        let why = if s.removed {
            "removed from the file"
        } else {
            "no longer reached"
        };
        writeln!(
            out,
            "  never sent: {} to {} ({why})",
            s.step,
            leads(s.leads)
        )?;
    }
    for s in &p.new_steps {
        writeln!(
            out,
            "  new step: {} to {}, the first {}",
            s.step,
            leads(s.leads),
            local(s.first_at, tz)
        )?;
    }
    for l in &p.leaving {
        writeln!(out, "  leaving: {} ({})", leads(l.leads), l.reason)?;
    }
    for e in &p.errors {
        writeln!(
            out,
            "  error: {} held: {} (e.g. {})",
            leads(e.leads),
            e.error,
            e.examples.join(", ")
        )?;
    }
    Ok(())
}
