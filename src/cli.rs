//! The `leadloop` command line.
//!
//! Three outputs are contracts other tools script against and must stay stable: `classify
//! --json` (one object per input file per line), `leads list --json` (one object per lead per
//! line) and `report … --format json` (one array of row objects). Everything else is for people
//! and may improve; tables go through one output layer (`cli/output.rs`) so they look alike.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::classify::{self, Classification, Rules};
use crate::config::Config;
use crate::daemon;
use crate::domain::{EmailAddress, EnrollmentState, LeadStatus, MessageKind, StepId};
use crate::send;
use crate::store::{
    Change, Lead, LeadChange, LeadFilter, OutboxEntry, OutboxId, OutboxState, PausedBy,
    SendOutcome, Transition, VerdictEntry,
};

mod form;
/// `println!` that hands a failed write (a closed pipe: `leadloop … | head`) back as an error
/// for `main` to judge, where `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)*)))?
    };
}

mod digest;
mod output;
mod plan;
mod report;

use output::{Cell, Column, Format, Table};
mod data;
mod sales;
mod score;
mod sequences;
mod undo;
mod users;

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
        /// Do everything but send: messages go to the outbox as `dry_run`, and the mailbox
        /// is read without flags or moves. For trying a new sequence on real mail, on a copy
        /// of the database (`leadloop backup`).
        #[arg(long)]
        dry_run: bool,
        /// With --once: skip mail that arrived before this day (YYYY-MM-DD, by the IMAP
        /// server's arrival date), for a first run on a mailbox with years of mail. The
        /// cursor moves past what is skipped.
        #[arg(long, requires = "once", value_name = "DATE")]
        since: Option<chrono::NaiveDate>,
    },
    /// Validate the configuration and print every problem with file, line and key.
    Check {
        /// After the check, show which form profile reads this notification and the submitter
        /// it takes (repeatable).
        #[arg(long = "sample", value_name = "FILE.eml")]
        samples: Vec<PathBuf>,
    },
    /// Classify message files and print the decision (no database needed).
    Classify(ClassifyArgs),
    /// Website form profiles.
    #[command(subcommand)]
    Form(form::FormCommand),
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
        /// One row per step: aligned columns, a JSON array, or CSV.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Before a reload: what the edited sequence files do to the leads already in them, against
    /// the files the daemon runs (or --against another configuration). Exit 1 when a step
    /// would fail for some lead.
    Plan {
        /// The running configuration to compare with (default: the sequences the daemon
        /// recorded at its last start or reload).
        #[arg(long)]
        against: Option<PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the outbox and decide about messages that were not sent.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Send a test message now through the configured transport (recorded in the outbox).
    SendTest(SendTestArgs),
    /// List, lift or add suppressions (addresses and domains nothing is sent to).
    #[command(subcommand)]
    Suppressions(undo::SuppressionsCommand),
    /// Pause or resume sending for every daemon on the database, or show whether it is paused.
    #[command(subcommand)]
    Sending(SendingCommand),
    /// Channel, form, owner, sequence and reason reports for Marketing.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Send a `[[digest]]` by hand, or preview it (`digest send NAME --dry-run`).
    #[command(subcommand)]
    Digest(digest::DigestCommand),
    /// Set passwords for the web view's `[[user]]`s, or list them with their sessions.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Explain a lead's score rule by rule (`--explain EMAIL`), or recompute every score.
    Score(score::ScoreArgs),
    /// Copy the SQLite database to FILE while the daemon runs (PostgreSQL: use pg_dump).
    Backup {
        /// Where the copy goes; it must not exist yet.
        file: PathBuf,
    },
    /// Import leads from a CSV file (merged by address; resumable; see --dry-run).
    Import(data::ImportArgs),
    /// Write leads, events or verdicts to stdout as CSV or JSON lines.
    Export {
        /// What to export.
        what: data::ExportWhat,
        /// CSV with a header row, or one JSON object per line.
        #[arg(long, value_enum, default_value = "csv")]
        format: data::Format,
        /// Only records from this time on: RFC 3339 or YYYY-MM-DD (UTC).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SendingCommand {
    /// Stop sending: running daemons claim nothing more within a second; due messages wait.
    Pause {
        /// Why, for whoever resumes.
        #[arg(long, default_value = "paused by hand")]
        reason: String,
    },
    /// Send again after a pause (a person's pause, or one the sender made after a refusal
    /// about us).
    Resume,
    /// Whether sending is paused, since when, by whom and why; how many messages wait.
    Status {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// List outbox messages, newest first.
    List {
        /// Only messages in this state (pending, sending, sent, retry, failed, interrupted,
        /// cancelled, dry_run).
        #[arg(long)]
        state: Option<OutboxState>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per message per line.
        #[arg(long)]
        json: bool,
    },
    /// Send a failed, interrupted or cancelled message again (an interrupted one may already
    /// have arrived: check before retrying it).
    Retry {
        /// The message's id (first column of `outbox list`).
        id: i64,
    },
    /// Do not send a waiting, failed or interrupted message.
    Cancel {
        /// The message's id.
        id: i64,
    },
}

#[derive(Debug, Args)]
struct SendTestArgs {
    /// Send this sequence's step (rendered for a sample lead, addressed to --to) instead of
    /// the built-in test message.
    sequence: Option<String>,
    /// The step to send (with SEQUENCE).
    #[arg(long, requires = "sequence")]
    step: Option<String>,
    /// Recipient address.
    #[arg(long)]
    to: String,
}

#[derive(Debug, Args)]
struct ClassifyArgs {
    /// RFC 5322 message files (.eml).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file per line.
    #[arg(long, conflicts_with = "explain")]
    json: bool,
    /// Print each decision with the rules that fired, one per line, for a person to read.
    #[arg(long)]
    explain: bool,
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
        /// Only leads in this status (`review`: waiting for `leads approve`).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(LeadStatus::NAMES)
            .try_map(|s| s.parse::<LeadStatus>()))]
        status: Option<LeadStatus>,
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
    /// Give a lead another owner (who gets its hand-offs and whose answers are verdicts).
    Assign {
        /// The lead's email address.
        email: String,
        /// The new owner's address.
        owner: String,
    },
    /// Record Sales' verdict as an answer to a hand-off would: qualified, unqualified,
    /// customer, "not now: 3 months", "nurture: SEQUENCE", "owner: ADDRESS".
    Verdict {
        /// The lead's email address.
        email: String,
        /// The verdict, in the words an answer to a hand-off uses.
        verdict: String,
        /// The reason (as after "unqualified:").
        #[arg(long)]
        reason: Option<String>,
        /// A comment kept with the verdict.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Approve a lead waiting for review (a spam filter found its first message suspicious):
    /// it is nurtured and handed off as if the message had been clean.
    Approve {
        /// The lead's email address.
        email: String,
    },
    /// Set a lead's status by hand, e.g. to restore one marked bounced by mistake.
    Status {
        /// The lead's email address.
        email: String,
        /// The new status.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(LeadStatus::NAMES)
            .try_map(|s| s.parse::<LeadStatus>()))]
        status: LeadStatus,
    },
    /// Erase a person on request: personal data and message bodies go, the lead stays for the
    /// counts under an opaque address, and a keyed hash keeps the address from being mailed.
    Erase {
        /// The person's email address (the lead's or one of its aliases).
        email: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Parses the command line, runs the command, and turns errors into a message and exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Run { .. }));
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`leadloop … | head`): it has what it wanted.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::diagnostics::join_causes(e.chain()));
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
    } else if stderr_is_journal() {
        // The journal stamps every line itself; a second time in the text is noise.
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Whether stderr is the journal's stream: systemd names it in `JOURNAL_STREAM` as
/// `DEVICE:INODE`, and a child whose stderr was redirected elsewhere inherits the variable, so
/// the file itself is compared.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM")
        .ok()
        .as_deref()
        .and_then(journal_stream)
    else {
        return false;
    };
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// `JOURNAL_STREAM`'s device and inode numbers.
fn journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { samples } => check(&cli.config, &samples),
        Command::Classify(args) => {
            classify_files(&args, &classifier_rules(&cli.config)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Form(cmd) => form::run(cmd, &classifier_rules(&cli.config)?),
        Command::Run {
            once,
            dry_run,
            since,
        } => {
            let config = load(&cli.config)?;
            let options = daemon::RunOptions { dry_run, since };
            runtime()?.block_on(run_daemon(&cli.config, config, once, options))
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
            format,
        } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sequences::simulate(
                &config,
                &sequence,
                lead.as_deref(),
                from.as_deref(),
                format,
            ))
        }
        Command::Plan { against, json } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(plan::plan(&config, &cli.config, against.as_deref(), json))
        }
        Command::Outbox(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(outbox(&config, cmd))
        }
        Command::SendTest(args) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(send_test(&config, &args))
        }
        Command::Suppressions(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(undo::suppressions(&config, cmd))
        }
        Command::Sending(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(sending(&config, cmd))
        }
        Command::Report(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(report::report(&config, cmd))
        }
        Command::Digest(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(digest::digest(&config, cmd, &mut io::stdout().lock()))
        }
        Command::Users(cmd) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(users::users(&config, cmd, &mut io::stdout().lock()))
        }
        Command::Score(args) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(score::score(&config, args, &mut io::stdout().lock()))
        }
        Command::Backup { file } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(backup(&config, &file))
        }
        Command::Import(args) => {
            let config = load(&cli.config)?;
            runtime()?.block_on(data::import(&config, &args))
        }
        Command::Export {
            what,
            format,
            since,
        } => {
            let config = load(&cli.config)?;
            runtime()?.block_on(data::export(&config, what, format, since.as_deref()))
        }
    }
}

/// `leadloop backup FILE`.
async fn backup(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    if file.exists() {
        anyhow::bail!("{} exists already; give a new file", file.display());
    }
    let store = daemon::open_store(config).await?;
    if store.backend() != crate::store::Backend::Sqlite {
        store.close().await;
        eprintln!(
            "the database is PostgreSQL: back it up with pg_dump (e.g. pg_dump -Fc -f leadloop.dump DBNAME)"
        );
        return Ok(ExitCode::from(2));
    }
    let result = store.backup_to(file).await;
    store.close().await;
    result.with_context(|| format!("copying the database to {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    say!("database copied to {} ({size} bytes)", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn sending(config: &Config, cmd: SendingCommand) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let mut out = io::stdout().lock();
    let now = Utc::now();
    match cmd {
        SendingCommand::Pause { reason } => {
            let reason = reason.trim();
            let reason = if reason.is_empty() {
                "paused by hand"
            } else {
                reason
            };
            let (pause, now_paused) = store.pause_sending(PausedBy::Cli, reason, now).await?;
            if now_paused {
                writeln!(out, "sending paused; `leadloop sending resume` resumes it")?;
            } else {
                writeln!(out, "already paused: {pause}")?;
            }
        }
        SendingCommand::Resume => match store.resume_sending(now).await? {
            Some(pause) => {
                let waiting = waiting_messages(&store).await?;
                writeln!(
                    out,
                    "sending resumed ({waiting} messages waiting); until now {pause}"
                )?;
            }
            None => writeln!(out, "sending was not paused")?,
        },
        SendingCommand::Status { json } => {
            let pause = store.sending_paused().await?;
            let waiting = waiting_messages(&store).await?;
            if json {
                let time = |t: chrono::DateTime<Utc>| {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                };
                writeln!(
                    out,
                    "{}",
                    json!({
                        "paused": pause.is_some(),
                        "since": pause.as_ref().map(|p| time(p.since)),
                        "by": pause.as_ref().map(|p| p.by),
                        "reason": pause.as_ref().map(|p| p.reason.as_str()),
                        "waiting": waiting,
                    })
                )?;
            } else {
                match &pause {
                    Some(p) => writeln!(out, "{p}")?,
                    None => writeln!(out, "sending is running")?,
                }
                writeln!(out, "{waiting} messages waiting to be sent")?;
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Messages that are due or will be: `pending` and `retry`.
async fn waiting_messages(store: &crate::store::Store) -> anyhow::Result<i64> {
    let counts = store.outbox_counts().await?;
    Ok([OutboxState::Pending, OutboxState::Retry]
        .iter()
        .filter_map(|s| counts.get(s.as_str()))
        .sum())
}

/// The classifier's rules: the configuration's when there is one; without it the classifier
/// still works, it just knows no own addresses, channels or forms.
fn classifier_rules(path: &Path) -> anyhow::Result<Rules> {
    match Config::load(path) {
        Ok(c) => Ok(c.rules()),
        Err(e) if !path.exists() => {
            tracing::debug!(error = %e, "no configuration; classifying with default rules");
            Ok(Rules::default())
        }
        Err(e) => anyhow::bail!("{e}"),
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("the configuration has problems:\n{e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    daemon::runtime().context("starting the async runtime")
}

/// `leadloop check [--sample FILE.eml …]`.
fn check(path: &Path, samples: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let result = Config::load(path).and_then(|c| c.check_secrets().map(|unchecked| (c, unchecked)));
    match result {
        Ok((c, unchecked)) => {
            for (key, credential) in &unchecked {
                say!(
                    "{}: note: {key} is the systemd credential {credential}; the service checks it when it starts (ExecStartPre)",
                    path.display()
                );
            }
            say!(
                "{}: ok ({} channel rules, {} form profiles, {} sequences with {} steps, {} routes, {})",
                path.display(),
                c.channels.len(),
                c.forms.len(),
                c.sequences.sequences.len(),
                c.sequences
                    .sequences
                    .iter()
                    .map(|s| s.steps.len())
                    .sum::<usize>(),
                c.actions.routing.routes.len(),
                handoff_summary(&c.actions)
            );
            if c.mailboxes.len() > 1 {
                let names: Vec<&str> = c.mailboxes.iter().map(|m| m.name.as_str()).collect();
                say!(
                    "{}: reads {} mailboxes: {}",
                    path.display(),
                    names.len(),
                    names.join(", ")
                );
            }
            match form::report_samples(&mut io::stdout().lock(), samples, &c.rules()) {
                Ok(true) => Ok(ExitCode::SUCCESS),
                Ok(false) => Ok(ExitCode::FAILURE),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Err(e) => {
            for p in &e.problems {
                say!("{p}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `leadloop check`'s word on hand-offs: off, or on with who gets the leads no route takes.
fn handoff_summary(actions: &crate::actions::settings::Settings) -> String {
    if !actions.handoff.enabled {
        return "hand-offs off".to_owned();
    }
    match &actions.routing.default_owner {
        Some(owner) => format!("hand-offs on, default owner {owner}"),
        None => "hand-offs on, no default owner".to_owned(),
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
                "original_text": c.original_text,
            });
            writeln!(out, "{line}")?;
        } else if args.explain {
            write_explanation(&mut out, file, &c)?;
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

/// The decision laid out for a person: what the message is, about whom, and every rule that
/// fired in the order it fired.
fn write_explanation(out: &mut impl Write, file: &Path, c: &Classification) -> io::Result<()> {
    writeln!(out, "{}", file.display())?;
    writeln!(out, "  kind:        {}", c.kind)?;
    if let Some(s) = &c.subject {
        writeln!(out, "  subject:     {s}")?;
    }
    if let Some(p) = &c.lead {
        let name = p
            .name
            .as_deref()
            .map_or(String::new(), |n| format!(" ({n})"));
        writeln!(out, "  lead:        {}{name}", p.email)?;
        if let Some(co) = &p.company {
            writeln!(out, "  company:     {co}")?;
        }
        if let Some(ph) = &p.phone {
            writeln!(out, "  phone:       {ph}")?;
        }
    }
    if let Some(o) = &c.owner {
        writeln!(out, "  owner:       {o}")?;
    }
    if let Some(f) = &c.form {
        writeln!(out, "  form:        {f}")?;
    }
    if let Some(ch) = &c.channel {
        writeln!(out, "  channel:     {ch}")?;
    }
    if let Some(b) = &c.bounce {
        writeln!(
            out,
            "  bounce:      {} {}{}",
            b.recipient
                .as_ref()
                .map_or("(recipient unknown)".to_owned(), ToString::to_string),
            if b.permanent { "hard" } else { "soft" },
            b.status
                .as_deref()
                .map_or(String::new(), |s| format!(" (status {s})"))
        )?;
        if !b.recipients.is_empty() {
            writeln!(out, "  recipients:  {} failed", b.recipients.len())?;
            for r in &b.recipients {
                writeln!(out, "    {r}")?;
                if let Some(d) = &r.diagnostic {
                    writeln!(out, "      {d}")?;
                }
            }
        }
    }
    if let Some(d) = c.return_date {
        writeln!(out, "  back on:     {}", d.format("%Y-%m-%d"))?;
    }
    if let Some(r) = &c.reason {
        writeln!(out, "  reason:      {r}")?;
    }
    if !c.fields.is_empty() {
        writeln!(out, "  fields:")?;
        for (k, v) in &c.fields {
            writeln!(out, "    {k}: {v}")?;
        }
    }
    writeln!(out, "  because:")?;
    for (i, e) in c.evidence.iter().enumerate() {
        writeln!(out, "    {}. {e}", i + 1)?;
    }
    writeln!(out)
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

/// Shows how far a long pass has come: a bar on a terminal, a log line every
/// [`PROGRESS_EVERY`] otherwise (systemd, cron). A pass that ends within the first interval
/// shows nothing.
async fn show_progress(progress: crate::ingest::progress::Progress) {
    use std::io::IsTerminal as _;
    let every = std::env::var("LEADLOOP_PROGRESS_EVERY")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(PROGRESS_EVERY);
    let start = std::time::Instant::now();
    let mut tick = tokio::time::interval(every.min(std::time::Duration::from_millis(200)));
    let terminal = std::io::stderr().is_terminal();
    let mut logged = start;
    /// The bar, cleared from the terminal when the display is dropped (aborted at the end).
    struct Bar(Option<indicatif::ProgressBar>);
    impl Drop for Bar {
        fn drop(&mut self) {
            if let Some(b) = &self.0 {
                b.finish_and_clear();
            }
        }
    }
    let mut bar = Bar(None);
    loop {
        tick.tick().await;
        let (done, total) = progress.get();
        if total == 0 || start.elapsed() < every.min(std::time::Duration::from_secs(1)) {
            continue;
        }
        if terminal {
            let b = bar.0.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::with_draw_target(
                    Some(total),
                    indicatif::ProgressDrawTarget::stderr(),
                );
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} messages, {per_sec} (eta {eta})",
                ) {
                    b.set_style(style);
                }
                b
            });
            b.set_length(total);
            b.set_position(done);
        } else if logged.elapsed() >= every {
            logged = std::time::Instant::now();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001);
            info!("{}", crate::ingest::progress::line(done, total, rate));
        }
    }
}

/// How often a long pass logs how far it has come when stderr is not a terminal, unless
/// `LEADLOOP_PROGRESS_EVERY` says otherwise (`"30s"`, `"2m"`).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

async fn run_daemon(
    path: &Path,
    config: Config,
    once: bool,
    options: daemon::RunOptions,
) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    spawn_signal_handlers(shutdown.clone(), reload_tx)?;
    if once {
        let daemon::OnceReport {
            ingest,
            scheduled,
            handoffs,
            digests,
            send,
            pause,
            mailbox_held_by,
            mailboxes,
        } = {
            let progress = crate::ingest::progress::Progress::new();
            let shown = tokio::spawn(show_progress(progress.clone()));
            let report = daemon::run_once(&config, options, Some(progress), shutdown).await;
            shown.abort();
            let _ = shown.await;
            report?
        };
        if mailboxes.len() > 1 {
            for m in &mailboxes {
                match &m.held_by {
                    Some(holder) => say!(
                        "mailbox {}: being read by another daemon ({holder}); this run read nothing from it",
                        m.name
                    ),
                    None => say!(
                        "mailbox {}: {} messages read, {} recorded, {} already recorded",
                        m.name,
                        m.ingest.fetched,
                        m.ingest.recorded,
                        m.ingest.duplicates
                    ),
                }
            }
        } else if let Some(holder) = &mailbox_held_by {
            say!("the mailbox is being read by another daemon ({holder}); this run read nothing");
        }
        info!(
            fetched = ingest.fetched,
            recorded = ingest.recorded,
            duplicates = ingest.duplicates,
            oversize = ingest.oversize,
            "mailbox processed"
        );
        say!(
            "{} messages read, {} recorded, {} already recorded, {} leads created or updated",
            ingest.fetched,
            ingest.recorded,
            ingest.duplicates,
            ingest.leads_touched
        );
        if ingest.skipped > 0 {
            say!(
                "{} messages that arrived before --since skipped",
                ingest.skipped
            );
        }
        if let Some(sc) = scheduled {
            say!(
                "{} sequence steps enqueued, {} waiting for their time, {} held",
                sc.enqueued,
                sc.waiting,
                sc.held
            );
        }
        if let Some(h) = handoffs.filter(|h| h.queued + h.skipped + h.failed > 0) {
            say!(
                "{} notifications to Sales queued, {} skipped, {} not rendered",
                h.queued,
                h.skipped,
                h.failed
            );
        }
        for d in &digests {
            match d {
                crate::actions::digest::Outcome::Queued {
                    name,
                    label,
                    messages,
                } => say!("digest {name} for {label}: {messages} messages queued"),
                crate::actions::digest::Outcome::AlreadySent { name, label } => {
                    say!("digest {name} for {label}: sent already");
                }
            }
        }
        if let Some(s) = send {
            say!(
                "{} messages sent, {} to retry, {} failed, {} interrupted, {} suppressed",
                s.sent,
                s.retried,
                s.failed,
                s.interrupted,
                s.suppressed
            );
            if s.held > 0 {
                say!(
                    "{} messages refused because of us wait to be sent again",
                    s.held
                );
            }
        }
        if let Some(pause) = pause {
            say!("{pause}; due messages wait. `leadloop sending resume` resumes it");
        }
        if options.dry_run {
            say!(
                "dry run: nothing was sent and the mailbox was not changed; `leadloop outbox list --state dry_run` shows what would have gone out"
            );
        }
        if ingest.tidy_failed {
            eprintln!(
                "error: recorded mail could not be flagged or moved (imap.after; the reason is logged above); it stays recorded and the next run tries again"
            );
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    daemon::run_with(path, config, options, shutdown, reload_rx).await?;
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
            status,
            json,
        } => {
            let filter = LeadFilter {
                channel,
                kind,
                status,
            };
            let leads = store.list_leads(&filter).await?;
            if json {
                for l in &leads {
                    writeln!(out, "{}", lead_json(l))?;
                }
            } else if leads.is_empty() {
                writeln!(out, "no leads")?;
            } else {
                let mut table = Table::new(vec![
                    Column::text("email"),
                    Column::text("name").max(32),
                    Column::text("channel"),
                    Column::text("status"),
                    Column::text("created"),
                ]);
                for l in &leads {
                    table.push(vec![
                        Cell::text(l.email.as_str()),
                        Cell::opt(l.name.as_deref()),
                        Cell::text(&l.channel),
                        Cell::text(l.status.as_str()),
                        Cell::text(l.created_at.format("%Y-%m-%d %H:%M").to_string()),
                    ]);
                }
                table.write(&mut out, Format::Table)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LeadsCommand::Show { email, json } => {
            let lead = sequences::find_lead(&store, &email).await?;
            let mut events = store.timeline(&lead).await?;
            // Messages name their mailbox by its entry's name.
            for e in &mut events {
                if let Some(key) = &mut e.mailbox {
                    *key = config.mailbox_name(key).to_owned();
                }
            }
            let first_mailbox = events.iter().find_map(|e| e.mailbox.clone());
            let enrollments = store.enrollments(lead.id).await?;
            let verdicts = store.verdicts(lead.id).await?;
            let aliases = store.aliases(lead.id).await?;
            let suppressed = store.suppressed(lead.email.as_str()).await?;
            let score_reasons = store.score_reasons(&lead).await?;
            // Why a lead waits for review is said by the message it came from.
            let review = if lead.status == LeadStatus::Review {
                store.lead_origin(&lead).await?.and_then(|o| o.review)
            } else {
                None
            };
            if json {
                let mut v = lead_json(&lead);
                if let Some(why) = &review {
                    v["review"] = why.as_str().into();
                }
                v["verdict"] = verdicts
                    .last()
                    .map_or(serde_json::Value::Null, verdict_json);
                v["verdicts"] = verdicts.iter().map(verdict_json).collect();
                v["suppressed"] = suppressed.is_some().into();
                v["mailbox"] = first_mailbox.as_deref().into();
                v["score_reasons"] = serde_json::to_value(&score_reasons)?;
                v["aliases"] = serde_json::to_value(&aliases)?;
                v["timeline"] = serde_json::to_value(&events)?;
                v["enrollments"] = serde_json::to_value(&enrollments)?;
                writeln!(out, "{v}")?;
                return Ok(ExitCode::SUCCESS);
            }
            // Times as the team reads them: the zone its windows and reports use.
            let tz = config.sequences.settings.policy.timezone;
            let local =
                |t: chrono::DateTime<Utc>, f: &str| t.with_timezone(&tz).format(f).to_string();
            writeln!(out, "{}", lead.email)?;
            writeln!(out, "  (times in {tz})")?;
            for (label, value) in [
                ("name", lead.name.as_deref()),
                ("company", lead.company.as_deref()),
                ("phone", lead.phone.as_deref()),
                ("channel", Some(lead.channel.as_str())),
                ("status", Some(lead.status.as_str())),
                ("owner", lead.owner.as_deref()),
                ("form", lead.form.as_deref()),
                ("mailbox", first_mailbox.as_deref()),
            ] {
                writeln!(out, "  {label:<8} {}", value.unwrap_or("-"))?;
            }
            if lead.score != 0 || !score_reasons.is_empty() {
                let why: Vec<String> = score_reasons
                    .iter()
                    .map(|r| format!("{:+} {}", r.points, r.reason))
                    .collect();
                writeln!(
                    out,
                    "  score    {}{}",
                    lead.score,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join(", "))
                    }
                )?;
            }
            if lead.status == LeadStatus::Review {
                writeln!(
                    out,
                    "  review   {} (approve: leadloop leads approve {})",
                    review.as_deref().unwrap_or("held for review"),
                    lead.email
                )?;
            }
            if let Some(v) = verdicts.last() {
                let reason = v.reason.as_deref().map(|r| format!(": {r}"));
                writeln!(
                    out,
                    "  verdict  {}{} (by {}, {})",
                    v.verdict,
                    reason.unwrap_or_default(),
                    v.by,
                    local(v.at, "%Y-%m-%d %H:%M")
                )?;
                if let Some(c) = &v.comment {
                    writeln!(out, "           {}", c.lines().next().unwrap_or_default())?;
                }
            }
            if !aliases.is_empty() {
                writeln!(out, "  aliases  {}", aliases.join(", "))?;
            }
            if let Some(reason) = &suppressed {
                writeln!(out, "  suppressed: {reason}")?;
            }
            if !lead.fields.is_empty() {
                writeln!(out, "  fields:")?;
                for (k, v) in &lead.fields {
                    writeln!(out, "    {k}: {}", v.as_str().unwrap_or_default())?;
                }
            }
            if !enrollments.is_empty() {
                writeln!(out, "  sequences:")?;
                let mut table = Table::new(vec![
                    Column::text("sequence"),
                    Column::text("state"),
                    Column::text("done"),
                    Column::text("detail"),
                ])
                .nested(4);
                for e in &enrollments {
                    let detail = match e.state {
                        EnrollmentState::Active => match (&e.next_step, e.next_due_at) {
                            (Some(step), Some(at)) => {
                                let paused = e
                                    .paused_until
                                    .filter(|p| *p > Utc::now())
                                    .map(|p| format!(" (paused until {})", local(p, "%Y-%m-%d")));
                                format!(
                                    "next {step} at {}{}",
                                    local(at, "%Y-%m-%d %H:%M"),
                                    paused.unwrap_or_default()
                                )
                            }
                            _ => "starting".to_owned(),
                        },
                        EnrollmentState::Exited => e.exit_reason.clone().unwrap_or_default(),
                        EnrollmentState::Held => e.error.clone().unwrap_or_default(),
                        EnrollmentState::Done => String::new(),
                    };
                    let done = if e.steps_done.is_empty() {
                        "-".to_owned()
                    } else {
                        e.steps_done
                            .iter()
                            .map(StepId::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    table.push(vec![
                        Cell::text(e.sequence.to_string()),
                        Cell::text(e.state.as_str()),
                        Cell::text(format!("done: {done}")),
                        Cell::text(detail),
                    ]);
                }
                table.write(&mut out, Format::Table)?;
            }
            writeln!(out, "  timeline:")?;
            // With several mailboxes, each message says which one it came from.
            let several = config.mailboxes.len() > 1;
            let mut columns = vec![Column::text("at"), Column::text("kind")];
            if several {
                columns.push(Column::text("mailbox"));
            }
            columns.push(Column::text("what"));
            let mut table = Table::new(columns).nested(4);
            for e in &events {
                // Messages show their subject; changes made by hand say what changed.
                let change = match e.kind.as_str() {
                    "status_changed" => Some(format!(
                        "{} -> {}",
                        e.detail["from"].as_str().unwrap_or("?"),
                        e.detail["to"].as_str().unwrap_or("?")
                    )),
                    "suppressed" | "unsuppressed" => e.detail["value"].as_str().map(str::to_owned),
                    "verdict" => Some(format!(
                        "{}{} (by {})",
                        e.detail["verdict"].as_str().unwrap_or("?"),
                        e.detail["reason"]
                            .as_str()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default(),
                        e.detail["by"].as_str().unwrap_or("?")
                    )),
                    "handoff" | "explain" => Some(format!(
                        "to {} ({}): {}",
                        e.detail["to"].as_str().unwrap_or("-"),
                        e.detail["outbox_state"]
                            .as_str()
                            .or(e.detail["state"].as_str())
                            .unwrap_or("?"),
                        e.detail["why"].as_str().unwrap_or_default()
                    )),
                    "paused" => e.detail["until"].as_str().map(|u| format!("until {u}")),
                    "resumed" | "outbox_retried" | "outbox_cancelled" => {
                        e.detail["by"].as_str().map(|b| format!("by {b}"))
                    }
                    "unsubscribed" => e.detail["via"].as_str().map(|v| format!("via {v}")),
                    "soft_bounce" | "bounce" => e.detail["address"].as_str().map(|a| {
                        format!("{a} {}", e.detail["reason"].as_str().unwrap_or_default())
                    }),
                    "owner" => e.detail["owner"].as_str().map(str::to_owned),
                    "enrolled" => e.detail["sequence"].as_str().map(|s| {
                        match e.detail["by"].as_str().filter(|b| !b.is_empty()) {
                            Some(by) => format!("{s} (by {by})"),
                            None => s.to_owned(),
                        }
                    }),
                    "sent" => Some(sent_step(&store, &enrollments, &e.detail).await?),
                    _ => None,
                };
                let subject = change.as_deref().or(e.subject.as_deref()).unwrap_or("");
                let mut row = vec![
                    Cell::text(local(e.at, "%Y-%m-%d %H:%M:%S")),
                    Cell::text(&e.kind),
                ];
                if several {
                    row.push(Cell::text(e.mailbox.as_deref().unwrap_or("")));
                }
                row.push(Cell::text(subject));
                table.push(row);
            }
            table.write(&mut out, Format::Table)?;
            Ok(ExitCode::SUCCESS)
        }
        LeadsCommand::Status { email, status } => {
            undo::lead_status(&store, &email, status, &mut out).await
        }
        LeadsCommand::Erase { email, yes } => data::erase(&store, &email, yes, &mut out).await,
        LeadsCommand::Assign { email, owner } => {
            let lead = sales::find(&store, &email).await?;
            let owner =
                EmailAddress::parse(&owner).map_err(|e| anyhow::anyhow!("'{owner}': {e}"))?;
            let change = Change::Owner {
                owner: owner.clone(),
                by: sales::by(),
            };
            store
                .apply_lead_changes(&[LeadChange::by_hand(&lead, change)], Utc::now())
                .await?;
            writeln!(out, "{} is owned by {owner}", lead.email)?;
            Ok(ExitCode::SUCCESS)
        }
        LeadsCommand::Verdict {
            email,
            verdict,
            reason,
            comment,
        } => sales::verdict(config, &store, &email, &verdict, reason, comment, &mut out).await,
        LeadsCommand::Approve { email } => sales::approve(config, &store, &email, &mut out).await,
    }
}

/// What a timeline's `sent` row shows: `SEQUENCE/STEP` for a sequence's message (the
/// sequence from the message's enrollment), else the step or the outbox id.
async fn sent_step(
    store: &crate::store::Store,
    enrollments: &[crate::store::Enrollment],
    detail: &serde_json::Value,
) -> anyhow::Result<String> {
    let step = detail["step_id"].as_str();
    let id = detail["outbox_id"].as_i64();
    let sequence = match id {
        Some(id) => store
            .outbox_entry(OutboxId(id))
            .await?
            .and_then(|m| m.enrollment_id)
            .and_then(|eid| enrollments.iter().find(|e| e.id == eid))
            .map(|e| e.sequence.to_string()),
        None => None,
    };
    Ok(match (sequence, step) {
        (Some(seq), Some(step)) => format!("{seq}/{step}"),
        (None, Some(step)) => step.to_owned(),
        (Some(seq), None) => seq,
        (None, None) => id.map_or_else(String::new, |id| format!("outbox {id}")),
    })
}

async fn outbox(config: &Config, cmd: OutboxCommand) -> anyhow::Result<ExitCode> {
    let store = daemon::open_store(config).await?;
    let mut out = io::stdout().lock();
    let (id, transition, verb) = match cmd {
        OutboxCommand::List { state, limit, json } => {
            let entries = store.list_outbox(state, limit).await?;
            // JSON lines stay one object per message: the notice goes to stderr there.
            if let Some(pause) = store.sending_paused().await? {
                let notice = format!("{pause}\n(`leadloop sending resume` resumes it)");
                if json {
                    eprintln!("{notice}");
                } else {
                    writeln!(out, "{notice}\n")?;
                }
            }
            if json {
                for e in &entries {
                    writeln!(out, "{}", outbox_json(e))?;
                }
            } else if entries.is_empty() {
                writeln!(out, "no messages")?;
            } else {
                let mut table = Table::new(vec![
                    Column::number("id"),
                    Column::text("state"),
                    Column::text("to"),
                    Column::text("step"),
                    Column::number("try"),
                    Column::text("updated"),
                    Column::text("last_error"),
                ]);
                for e in &entries {
                    table.push(vec![
                        Cell::int(e.id.0),
                        Cell::text(e.state.as_str()),
                        Cell::text(e.recipient.as_str()),
                        Cell::text(e.step_id.as_ref().map_or("-", StepId::as_str)),
                        Cell::int(i64::from(e.attempts)),
                        Cell::text(e.updated_at.format("%Y-%m-%d %H:%M").to_string()),
                        // One message per line, whatever a server answered.
                        Cell::text(
                            e.last_error
                                .as_deref()
                                .unwrap_or("")
                                .replace(['\r', '\n'], " "),
                        ),
                    ]);
                }
                table.write(&mut out, Format::Table)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        OutboxCommand::Retry { id } => (
            id,
            store
                .retry_outbox(OutboxId(id), &sales::by(), Utc::now())
                .await?,
            "queued again",
        ),
        OutboxCommand::Cancel { id } => (
            id,
            store
                .cancel_outbox(OutboxId(id), &sales::by(), Utc::now())
                .await?,
            "cancelled",
        ),
    };
    match transition {
        Transition::Done => {
            writeln!(out, "message {id} {verb}")?;
            Ok(ExitCode::SUCCESS)
        }
        Transition::NotFound => anyhow::bail!("no outbox message {id}"),
        Transition::Refused(state) => anyhow::bail!("message {id} is {state}: it cannot be {verb}"),
    }
}

fn outbox_json(e: &OutboxEntry) -> serde_json::Value {
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "id": e.id,
        "state": e.state,
        "to": e.recipient,
        "from": e.from,
        "lead_id": e.lead_id,
        "enrollment_id": e.enrollment_id,
        "step_id": e.step_id,
        "message_id": e.message_id,
        "attempts": e.attempts,
        "next_attempt_at": time(e.next_attempt_at),
        "created_at": time(e.created_at),
        "updated_at": time(e.updated_at),
        "sent_at": e.sent_at.map(time),
        "last_error": e.last_error,
        "smtp_response": e.smtp_response,
        "size": e.size,
    })
}

/// `send-test`: puts one message in the outbox and sends it at once through the configured
/// transport, so the person sees the server's answer. The message comes from
/// [`send::test_message`]; a rendered sequence step can take its place without changing
/// how it is recorded and sent.
async fn send_test(config: &Config, args: &SendTestArgs) -> anyhow::Result<ExitCode> {
    let to =
        EmailAddress::parse(&args.to).map_err(|e| anyhow::anyhow!("--to '{}': {e}", args.to))?;
    let smtp = config
        .smtp
        .as_ref()
        .context("the configuration has no [smtp] section: nothing can be sent")?;
    // The identity sequence mail goes out as, so the test proves what the daemon will do:
    // the first [[sender]], or without senders the first of identity.addresses.
    let (from, display_name) = match config.senders.first() {
        Some(s) => (&s.address, s.display_name.as_deref()),
        None => (
            config
                .identity
                .addresses
                .first()
                .context("there is no [[sender]] and identity.addresses is empty: there is no address to send from")?,
            None,
        ),
    };
    let envelope_from = smtp.envelope_from.as_ref().unwrap_or(from);
    let now = Utc::now();
    let message = match &args.sequence {
        None => send::test_message(from, display_name, envelope_from, &to, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        Some(name) => sequences::step_test_message(config, name, args.step.as_deref(), &to, now)?,
    };

    let store = daemon::open_store(config).await?;
    let sender = daemon::sender(config, store.clone())?.context("[smtp] is not usable")?;
    let id = store
        .enqueue(&message, now)
        .await?
        .context("the test message was not enqueued")?;
    let outcome = sender.send_now(id).await?;
    let entry = store.outbox_entry(id).await?;
    store.close().await;
    let mut out = io::stdout().lock();
    let ok = matches!(outcome, Some(SendOutcome::Sent { .. }));
    match (&outcome, &entry) {
        (Some(SendOutcome::Sent { response }), _) => writeln!(
            out,
            "sent to {to} (outbox {id}, Message-ID <{}>): {response}",
            message.message_id
        )?,
        (Some(SendOutcome::Retry { error, at }), _) => writeln!(
            out,
            "not sent yet (outbox {id}): {error}; the daemon retries at {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )?,
        (
            Some(
                SendOutcome::Failed { error, .. }
                | SendOutcome::Interrupted { error }
                | SendOutcome::Held { error },
            ),
            _,
        ) => writeln!(out, "not sent (outbox {id}): {error}")?,
        (None, Some(e)) => writeln!(
            out,
            "not sent (outbox {id} is {}): {}",
            e.state,
            e.last_error.as_deref().unwrap_or("")
        )?,
        (None, None) => writeln!(out, "not sent (outbox {id})")?,
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A verdict as `leads show --json` gives it: `{"verdict","reason","comment","by","at"}`.
fn verdict_json(v: &VerdictEntry) -> serde_json::Value {
    json!({
        "verdict": v.verdict,
        "reason": v.reason,
        "comment": v.comment,
        "by": v.by,
        "at": v.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "target": v.target,
        "source": v.source,
    })
}

fn lead_json(l: &Lead) -> serde_json::Value {
    lead_json_to(l, chrono::SecondsFormat::Secs)
}

/// A lead as `leads list --json` and `export leads` write it, times to `precision`: seconds
/// for people, milliseconds where an export is imported again.
fn lead_json_to(l: &Lead, precision: chrono::SecondsFormat) -> serde_json::Value {
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
        "created_at": l.created_at.to_rfc3339_opts(precision, true),
        "updated_at": l.updated_at.to_rfc3339_opts(precision, true),
    })
}
