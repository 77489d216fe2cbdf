//! The `leadloop` command line.
//!
//! Two outputs are contracts other tools script against and must stay stable: `classify --json`
//! (one object per input file per line) and `leads list --json` (one object per lead per line).
//! Everything else is for people and may improve.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::classify::{self, Classification, Rules};
use crate::config::Config;
use crate::daemon;
use crate::domain::{EmailAddress, MessageKind};
use crate::store::{Lead, LeadFilter};

mod sequences;

/// Files larger than this are not classified whole by `leadloop classify` (the same default the
/// daemon uses when the configuration does not say).
const CLASSIFY_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Turns a monitored mailbox into leads and nurtures them over email.
#[derive(Debug, Parser)]
#[command(name = "leadloop", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "LEADLOOP_CONFIG",
        default_value = "config/leadloop.toml"
    )]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: read the mailbox and record leads until stopped.
    Run {
        /// Process what is waiting, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate the configuration and print every problem with file, line and key.
    Check,
    /// Classify message files and print the decision (no database needed).
    Classify(ClassifyArgs),
    /// Inspect leads.
    #[command(subcommand)]
    Leads(LeadsCommand),
    /// Put a lead into a sequence by hand.
    Enroll {
        /// The lead's email address.
        email: String,
        /// The sequence (its file name without .toml).
        sequence: String,
    },
    /// Take a lead out of one sequence, or out of all.
    Unenroll {
        /// The lead's email address.
        email: String,
        /// Only this sequence.
        sequence: Option<String>,
    },
    /// Show a sequence's messages as a lead would get them: headers, text and HTML.
    Preview {
        /// The sequence.
        sequence: String,
        /// Only this step.
        #[arg(long)]
        step: Option<String>,
        /// Render for this lead.
        #[arg(long, conflicts_with = "sample", required_unless_present = "sample")]
        lead: Option<String>,
        /// Render for a made-up sample lead.
        #[arg(long)]
        sample: bool,
    },
    /// Show when each step of a sequence would reach a lead: delays, conditions, windows, caps.
    Simulate {
        /// The sequence.
        sequence: String,
        /// The lead.
        #[arg(long, conflicts_with = "sample", required_unless_present = "sample")]
        lead: Option<String>,
        /// A made-up sample lead.
        #[arg(long)]
        sample: bool,
        /// Enrollment time: RFC 3339, or "YYYY-MM-DD HH:MM" in the team's time zone (default now).
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ClassifyArgs {
    /// RFC 5322 message files (.eml).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum LeadsCommand {
    /// List leads, newest first.
    List {
        /// Only leads first attributed to this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only leads with a message of this kind (inquiry, form, forward, …).
        #[arg(long)]
        kind: Option<MessageKind>,
        /// One JSON object per lead per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one lead's fields and timeline.
    Show {
        /// The lead's email address.
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line, runs the command, and turns errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Run { .. }));
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("LEADLOOP_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: under systemd, stderr goes to the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr);
    if std::env::var("LEADLOOP_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => Ok(check(&cli.config)),
        Command::Classify(args) => {
            // The rules come from the configuration when there is one; without it the
            // classifier still works, it just knows no own addresses, channels or forms.
            let rules = match Config::load(&cli.config) {
                Ok(c) => c.rules(),
                Err(e) if !cli.config.exists() => {
                    tracing::debug!(error = %e, "no configuration; classifying with default rules");
                    Rules::default()
                }
                Err(e) => anyhow::bail!("{e}"),
            };
            classify_files(&args, &rules)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { once } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(run_daemon(&cli.config, config, once))
        }
        Command::Leads(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(leads(&config, cmd))
        }
        Command::Enroll { email, sequence } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sequences::enroll(&config, &email, &sequence))
        }
        Command::Unenroll { email, sequence } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sequences::unenroll(&config, &email, sequence.as_deref()))
        }
        Command::Preview {
            sequence,
            step,
            lead,
            sample: _,
        } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sequences::preview(
                &config,
                &sequence,
                step.as_deref(),
                lead.as_deref(),
            ))
        }
        Command::Simulate {
            sequence,
            lead,
            sample: _,
            from,
        } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sequences::simulate(
                &config,
                &sequence,
                lead.as_deref(),
                from.as_deref(),
            ))
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    daemon::runtime().context("starting the async runtime")
}

fn check(path: &Path) -> ExitCode {
    let result = Config::load(path).and_then(|c| c.check_secrets().map(|()| c));
    match result {
        Ok(c) => {
            println!(
                "{}: ok ({} channel rules, {} form profiles, {} sequences with {} steps)",
                path.display(),
                c.channels.len(),
                c.forms.len(),
                c.sequences.sequences.len(),
                c.sequences
                    .sequences
                    .iter()
                    .map(|s| s.steps.len())
                    .sum::<usize>()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for p in &e.problems {
                println!("{p}");
            }
            ExitCode::FAILURE
        }
    }
}

fn classify_files(args: &ClassifyArgs, rules: &Rules) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    for file in &args.files {
        let c = classify_file(file, rules);
        if args.json {
            let line = json!({
                "file": file.display().to_string(),
                "kind": c.kind,
                "lead": c.lead,
                "fields": c.fields,
                "channel": c.channel,
                "bounce": c.bounce,
                "return_date": c.return_date.map(|d| d.format("%Y-%m-%d").to_string()),
                "reason": c.reason,
                "evidence": c.evidence,
                "owner": c.owner,
                "form": c.form,
                "message_id": c.message_id,
                "subject": c.subject,
            });
            writeln!(out, "{line}")?;
        } else {
            let lead = c
                .lead
                .as_ref()
                .map_or("-".to_owned(), |p| p.email.to_string());
            write!(
                out,
                "{}: {} lead={} channel={}",
                file.display(),
                c.kind,
                lead,
                c.channel.as_deref().unwrap_or("-")
            )?;
            if let Some(reason) = &c.reason {
                write!(out, " reason={reason:?}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn classify_file(file: &Path, rules: &Rules) -> Classification {
    match std::fs::metadata(file) {
        Ok(m) if m.len() > CLASSIFY_MAX_BYTES => Classification::ignored(format!(
            "file of {} bytes is over the {CLASSIFY_MAX_BYTES}-byte limit",
            m.len()
        )),
        Ok(_) => match std::fs::read(file) {
            Ok(raw) => classify::classify(&raw, rules),
            Err(e) => Classification::ignored(format!("cannot read the file: {e}")),
        },
        Err(e) => Classification::ignored(format!("cannot read the file: {e}")),
    }
}

async fn run_daemon(path: &Path, config: Config, once: bool) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    spawn_signal_handlers(shutdown.clone(), reload_tx)?;
    if once {
        let (report, scheduled) = daemon::run_once(&config, shutdown).await?;
        info!(
            fetched = report.fetched,
            recorded = report.recorded,
            duplicates = report.duplicates,
            oversize = report.oversize,
            "mailbox processed"
        );
        println!(
            "{} messages read, {} recorded, {} already recorded, {} leads created or updated",
            report.fetched, report.recorded, report.duplicates, report.leads_touched
        );
        if !config.sequences.sequences.is_empty() {
            println!(
                "{} sequence steps enqueued, {} waiting for their time, {} held",
                scheduled.enqueued, scheduled.waiting, scheduled.held
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    daemon::run(path, config, shutdown, reload_rx).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (systemd) and SIGINT (a terminal) stop the daemon; SIGHUP reloads.
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    reload: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    let _ = reload.try_send(());
                }
            }
        }
        info!("shutting down after the work in flight");
        shutdown.cancel();
    });
    Ok(())
}

async fn leads(config: &Config, cmd: LeadsCommand) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let mut out = io::stdout().lock();
    match cmd {
        LeadsCommand::List {
            channel,
            kind,
            json,
        } => {
            let leads = store.list_leads(&LeadFilter { channel, kind }).await?;
            if json {
                for l in &leads {
                    writeln!(out, "{}", lead_json(l))?;
                }
            } else if leads.is_empty() {
                writeln!(out, "no leads")?;
            } else {
                let w = leads
                    .iter()
                    .map(|l| l.email.chars().count())
                    .max()
                    .unwrap_or(5);
                let n = leads
                    .iter()
                    .map(|l| l.name.as_deref().map_or(1, |n| n.chars().count()))
                    .max()
                    .unwrap_or(4)
                    .clamp(4, 32);
                writeln!(
                    out,
                    "{:<w$}  {:<n$}  {:<14} {:<10} CREATED",
                    "EMAIL", "NAME", "CHANNEL", "STATUS"
                )?;
                for l in &leads {
                    writeln!(
                        out,
                        "{:<w$}  {:<n$}  {:<14} {:<10} {}",
                        l.email,
                        l.name.as_deref().unwrap_or("-"),
                        l.channel,
                        l.status,
                        l.created_at.format("%Y-%m-%d %H:%M")
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LeadsCommand::Show { email, json } => {
            let address =
                EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("'{email}': {e}"))?;
            let Some(lead) = store.lead(&address).await? else {
                eprintln!("no lead with address {address}");
                return Ok(ExitCode::FAILURE);
            };
            let events = store.timeline(&lead).await?;
            let enrollments = store.enrollments(lead.id).await?;
            if json {
                let mut v = lead_json(&lead);
                v["timeline"] = serde_json::to_value(&events)?;
                v["enrollments"] = serde_json::to_value(&enrollments)?;
                writeln!(out, "{v}")?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{}", lead.email)?;
            for (label, value) in [
                ("name", lead.name.as_deref()),
                ("company", lead.company.as_deref()),
                ("phone", lead.phone.as_deref()),
                ("channel", Some(lead.channel.as_str())),
                ("status", Some(lead.status.as_str())),
                ("owner", lead.owner.as_deref()),
                ("form", lead.form.as_deref()),
            ] {
                writeln!(out, "  {label:<8} {}", value.unwrap_or("-"))?;
            }
            if let Some(fields) = lead.fields.as_object().filter(|f| !f.is_empty()) {
                writeln!(out, "  fields:")?;
                for (k, v) in fields {
                    writeln!(out, "    {k}: {}", v.as_str().unwrap_or_default())?;
                }
            }
            if !enrollments.is_empty() {
                writeln!(out, "  sequences:")?;
                for e in &enrollments {
                    let detail = match e.state.as_str() {
                        "active" => match (&e.next_step, e.next_due_at) {
                            (Some(step), Some(at)) => {
                                format!("next {step} at {}", at.format("%Y-%m-%d %H:%M UTC"))
                            }
                            _ => "starting".to_owned(),
                        },
                        "exited" => e.exit_reason.clone().unwrap_or_default(),
                        "held" => e.error.clone().unwrap_or_default(),
                        _ => String::new(),
                    };
                    writeln!(
                        out,
                        "    {:<16} {:<7} done: {:<24} {detail}",
                        e.sequence,
                        e.state,
                        if e.steps_done.is_empty() {
                            "-".to_owned()
                        } else {
                            e.steps_done.join(", ")
                        }
                    )?;
                }
            }
            writeln!(out, "  timeline:")?;
            for e in &events {
                let subject = e.subject.as_deref().unwrap_or("");
                writeln!(
                    out,
                    "    {}  {:<8} {subject}",
                    e.at.format("%Y-%m-%d %H:%M:%S"),
                    e.kind
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn lead_json(l: &Lead) -> serde_json::Value {
    json!({
        "email": l.email,
        "name": l.name,
        "company": l.company,
        "phone": l.phone,
        "channel": l.channel,
        "status": l.status,
        "score": l.score,
        "owner": l.owner,
        "form": l.form,
        "fields": l.fields,
        "created_at": l.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "updated_at": l.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
