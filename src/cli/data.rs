//! `leadloop import`, `leadloop export` and `leadloop leads erase`: a team's spreadsheet in,
//! rows out for other tools, and a person erased on request.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead as _, BufReader, IsTerminal as _, Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, ValueEnum};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::daemon;
use crate::domain::{EmailAddress, LeadStatus};
use crate::store::{
    ERASED_DOMAIN, ImportAction, ImportProgress, ImportRow, ImportRun, Lead, Store, StoreError,
};

/// Rows per transaction unless `--chunk` says otherwise.
const CHUNK: usize = 1000;
/// Exit code of an import stopped before the end of its file (`--stop-after`).
const STOPPED: u8 = 3;

/// `leadloop import FILE.csv`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file: a header row, then one lead per row (`,`, `;` or tab separated).
    file: PathBuf,
    /// Read column COLUMN as FIELD: email, name, first_name, last_name, company, phone,
    /// channel, status, owner, form, score, created_at, fields.KEY or ignore. Repeatable; wins
    /// over --mapping and the header names leadloop knows.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// A TOML file: `[columns]` with `"COLUMN" = "FIELD"`, and optional `status`, `channel`
    /// and `owner` defaults.
    #[arg(long, value_name = "FILE.toml")]
    mapping: Option<PathBuf>,
    /// Print what each row would do (create, update, unchanged, bad) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Status of new leads whose row gives none (default new).
    #[arg(long)]
    status: Option<String>,
    /// Channel of new leads whose row gives none (default import).
    #[arg(long)]
    channel: Option<String>,
    /// Owner of new leads whose row gives none.
    #[arg(long)]
    owner: Option<String>,
    /// Rows per transaction (the unit an interrupted import resumes after).
    #[arg(long, hide = true, default_value_t = CHUNK)]
    chunk: usize,
    /// Stop after this many rows, as an interruption would (for tests of resumption).
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
}

/// What `leadloop export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportWhat {
    /// Every lead (the columns `import` reads back).
    Leads,
    /// Timeline events (imports, status changes, suppressions, …).
    Events,
    /// Sales' verdicts.
    Verdicts,
}

/// How `leadloop export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A header row, then one row per record.
    Csv,
    /// One JSON object per record per line.
    Json,
}

/// `--mapping FILE.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    status: Option<String>,
    channel: Option<String>,
    owner: Option<String>,
}

/// Where a column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Email,
    Name,
    FirstName,
    LastName,
    Company,
    Phone,
    Channel,
    Status,
    Owner,
    Form,
    Score,
    CreatedAt,
    /// A JSON object of fields (the `fields` column of `export leads`).
    Fields,
    /// One field, under this key.
    Field(String),
    Ignore,
}

impl Target {
    /// A FIELD as `--map` and the mapping file name it.
    fn named(field: &str) -> Option<Target> {
        let field = field.trim();
        if let Some(key) = field.strip_prefix("fields.") {
            return (!key.is_empty()).then(|| Target::Field(key.to_owned()));
        }
        Some(match field.to_ascii_lowercase().as_str() {
            "email" => Target::Email,
            "name" => Target::Name,
            "first_name" => Target::FirstName,
            "last_name" => Target::LastName,
            "company" => Target::Company,
            "phone" => Target::Phone,
            "channel" => Target::Channel,
            "status" => Target::Status,
            "owner" => Target::Owner,
            "form" => Target::Form,
            "score" => Target::Score,
            "created_at" => Target::CreatedAt,
            "fields" => Target::Fields,
            "ignore" => Target::Ignore,
            _ => return None,
        })
    }

    /// The field a header names without a mapping, by its letters and digits alone
    /// ("E-mail", "Email Address", "First name"); any other column is a field of its own.
    fn by_header(header: &str) -> Target {
        let key: String = header
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "email" | "emailaddress" | "mail" | "mailaddress" | "emailadresse" => Target::Email,
            "name" | "fullname" | "contact" | "contactname" => Target::Name,
            "firstname" | "givenname" | "forename" => Target::FirstName,
            "lastname" | "surname" | "familyname" => Target::LastName,
            "company" | "companyname" | "organisation" | "organization" | "org" | "account" => {
                Target::Company
            }
            "phone" | "phonenumber" | "telephone" | "tel" | "mobile" => Target::Phone,
            "channel" | "source" | "leadsource" => Target::Channel,
            "status" | "leadstatus" | "stage" => Target::Status,
            "owner" | "leadowner" | "assignedto" => Target::Owner,
            "form" => Target::Form,
            "score" => Target::Score,
            "createdat" | "created" | "createddate" | "datecreated" => Target::CreatedAt,
            // Written by `export leads`; the lead's own update time is not imported.
            "updatedat" => Target::Ignore,
            "fields" => Target::Fields,
            _ => Target::Field(header.trim().to_owned()),
        }
    }
}

/// The columns' targets and the defaults for new leads.
struct Plan {
    targets: Vec<Target>,
    channel: String,
    status: LeadStatus,
    owner: Option<String>,
}

/// `leadloop import FILE.csv …`.
pub async fn import(config: &Config, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let file_name = args.file.display().to_string();
    let mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<MappingFile>(&text)
                .with_context(|| format!("{}: not a mapping file", path.display()))?
        }
        None => MappingFile::default(),
    };
    let key = file_key(&args.file, args, &mapping)?;
    let (mut reader, delimiter) = open_csv(&args.file)?;
    let headers = reader
        .headers()
        .with_context(|| format!("{file_name}: reading the header row"))?
        .clone();
    let plan = plan(&headers, args, &mapping)?;
    if !plan.targets.contains(&Target::Email) {
        anyhow::bail!(
            "{file_name}: no column holds the email address (columns: {}); name it with --map COLUMN=email",
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    }
    tracing::debug!(delimiter = %char::from(delimiter), "reading {file_name}");

    let store = daemon::open_store(config).await?;
    let now = Utc::now();
    let earlier = store.import_progress(&key).await?;
    let resume = match earlier {
        Some(p) if !p.done && !args.dry_run => {
            eprintln!(
                "{file_name}: resuming after line {} ({} created, {} updated, {} unchanged, {} bad so far)",
                p.line, p.created, p.updated, p.unchanged, p.bad
            );
            p
        }
        Some(p) if p.done && !args.dry_run => {
            eprintln!("{file_name}: imported before; importing again changes only what differs");
            ImportProgress::default()
        }
        _ => ImportProgress::default(),
    };
    let mut run = ImportRun::new(key, file_name.clone(), args.dry_run, resume, now);
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(size);
    let mut out = io::stdout().lock();
    let chunk_size = args.chunk.max(1);
    let mut rows: Vec<ImportRow> = Vec::with_capacity(chunk_size);
    let mut bad_in_chunk = 0u64;
    let mut bad_lines: Vec<u64> = Vec::new();
    let mut last_line = 0u64;
    let mut this_run = 0u64;
    let mut record = csv::StringRecord::new();
    let mut stopped = false;
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                let line = e.position().map_or(last_line + 1, csv::Position::line);
                if let csv::ErrorKind::Utf8 { .. } = e.kind() {
                    if line > resume.line {
                        bar.suspend(|| eprintln!("{file_name}:{line}: not UTF-8 text; skipped"));
                        bad_lines.push(line);
                        bad_in_chunk += 1;
                    }
                    last_line = line;
                    continue;
                }
                return Err(e).with_context(|| format!("{file_name}:{line}: cannot read"));
            }
        };
        if more {
            let line = record.position().map_or(last_line + 1, csv::Position::line);
            last_line = line;
            bar.set_position(record.position().map_or(0, csv::Position::byte));
            if line <= resume.line || record.iter().all(|v| v.trim().is_empty()) {
                continue;
            }
            this_run += 1;
            match read_row(&plan, &headers, &record, line) {
                Ok(row) => rows.push(row),
                Err(reason) => {
                    bar.suspend(|| eprintln!("{file_name}:{line}: {reason}"));
                    bad_lines.push(line);
                    bad_in_chunk += 1;
                }
            }
        }
        let stop = args.stop_after.is_some_and(|n| this_run >= n);
        let full = rows.len() + usize::try_from(bad_in_chunk).unwrap_or(usize::MAX) >= chunk_size;
        if full || !more || stop {
            let done = !more;
            let actions = store
                .import_chunk(&mut run, &rows, bad_in_chunk, last_line, done, Utc::now())
                .await
                .with_context(|| {
                    format!("{file_name}: importing the rows up to line {last_line}")
                })?;
            if args.dry_run {
                let mut lines: Vec<(u64, String)> = rows
                    .iter()
                    .zip(&actions)
                    .map(|(row, action)| {
                        let email = row.email.as_ref().map_or("", EmailAddress::as_str);
                        let what = match action {
                            ImportAction::Create => format!("create {email}"),
                            ImportAction::Update(what) => {
                                format!("update {email}: {}", what.join(", "))
                            }
                            ImportAction::Unchanged => format!("unchanged {email}"),
                        };
                        (row.line, what)
                    })
                    .chain(bad_lines.iter().map(|l| (*l, "bad".to_owned())))
                    .collect();
                lines.sort_by_key(|(line, _)| *line);
                for (line, what) in lines {
                    writeln!(out, "line {line}: {what}")?;
                }
            }
            bad_lines.clear();
            rows.clear();
            bad_in_chunk = 0;
            if !more {
                break;
            }
            if stop {
                stopped = true;
                break;
            }
        }
    }
    bar.finish_and_clear();
    store.close().await;
    let p = run.progress;
    let verb = if args.dry_run { "would be " } else { "" };
    writeln!(
        out,
        "{file_name}: {} {verb}created, {} {verb}updated, {} unchanged, {} bad",
        p.created, p.updated, p.unchanged, p.bad
    )?;
    if stopped {
        writeln!(
            out,
            "stopped after line {}; run the same command again to continue",
            p.line
        )?;
        return Ok(ExitCode::from(STOPPED));
    }
    if args.dry_run {
        writeln!(out, "dry run: nothing was changed")?;
    } else if p.created > 0 {
        writeln!(
            out,
            "imported leads are not enrolled in sequences; `leadloop enroll EMAIL SEQUENCE` does that"
        )?;
    }
    Ok(if p.bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The file's key for resumption: its content and everything that decides what a row means.
fn file_key(path: &Path, args: &ImportArgs, mapping: &MappingFile) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let mut map = args.map.clone();
    map.sort();
    let settings = serde_json::json!({
        "map": map,
        "columns": mapping.columns,
        "status": args.status.as_ref().or(mapping.status.as_ref()),
        "channel": args.channel.as_ref().or(mapping.channel.as_ref()),
        "owner": args.owner.as_ref().or(mapping.owner.as_ref()),
    });
    hash.update(b"\0");
    hash.update(settings.to_string().as_bytes());
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A CSV reader for the file, with the separator its first line uses most (`,`, `;`, tab).
fn open_csv(path: &Path) -> anyhow::Result<(csv::Reader<File>, u8)> {
    let mut first = String::new();
    BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        .read_line(&mut first)
        .with_context(|| format!("reading {}", path.display()))?;
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((reader, delimiter))
}

/// Each column's target: `--map`, then the mapping file, then the header's own name.
fn plan(
    headers: &csv::StringRecord,
    args: &ImportArgs,
    mapping: &MappingFile,
) -> anyhow::Result<Plan> {
    let mut explicit: Vec<(String, Target)> = Vec::new();
    for (column, field) in &mapping.columns {
        let target = Target::named(field)
            .ok_or_else(|| anyhow::anyhow!("mapping file: '{field}' is not a field"))?;
        explicit.push((column.clone(), target));
    }
    for m in &args.map {
        let (column, field) = m
            .rsplit_once('=')
            .ok_or_else(|| anyhow::anyhow!("--map {m}: expected COLUMN=FIELD"))?;
        let target = Target::named(field)
            .ok_or_else(|| anyhow::anyhow!("--map {m}: '{field}' is not a field"))?;
        explicit.push((column.to_owned(), target));
    }
    for (column, _) in &explicit {
        if !headers.iter().any(|h| same_column(h, column)) {
            anyhow::bail!("no column '{column}' in the header row");
        }
    }
    let targets = headers
        .iter()
        .map(|h| {
            // The last word wins: --map after the mapping file.
            explicit
                .iter()
                .rev()
                .find(|(c, _)| same_column(h, c))
                .map_or_else(|| Target::by_header(h), |(_, t)| t.clone())
        })
        .collect();
    let status = match args.status.as_ref().or(mapping.status.as_ref()) {
        Some(s) => parse_status(s).map_err(|e| anyhow::anyhow!("--status: {e}"))?,
        None => LeadStatus::New,
    };
    let owner = match args.owner.as_ref().or(mapping.owner.as_ref()) {
        Some(o) => Some(
            EmailAddress::parse(o)
                .map_err(|e| anyhow::anyhow!("--owner '{o}': {e}"))?
                .to_string(),
        ),
        None => None,
    };
    let channel = args
        .channel
        .as_ref()
        .or(mapping.channel.as_ref())
        .map_or("import", |c| c.trim())
        .to_owned();
    Ok(Plan {
        targets,
        channel,
        status,
        owner,
    })
}

fn same_column(header: &str, column: &str) -> bool {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .eq_ignore_ascii_case(column.trim())
}

fn parse_status(s: &str) -> Result<LeadStatus, String> {
    s.trim().to_lowercase().parse().map_err(|_| {
        format!(
            "unknown status '{}' (one of: {})",
            s.trim(),
            LeadStatus::NAMES.join(", ")
        )
    })
}

/// One record as a row, or why it is refused.
fn read_row(
    plan: &Plan,
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    line: u64,
) -> Result<ImportRow, String> {
    let mut row = ImportRow::new(line, plan.channel.clone(), plan.status);
    row.owner.clone_from(&plan.owner);
    let (mut first, mut last, mut email) = (None, None, None);
    for (i, target) in plan.targets.iter().enumerate() {
        let Some(value) = record.get(i).map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        let text = Some(value.to_owned());
        match target {
            Target::Email => email = Some(value),
            Target::Name => row.name = text,
            Target::FirstName => first = text,
            Target::LastName => last = text,
            Target::Company => row.company = text,
            Target::Phone => row.phone = text,
            Target::Channel => row.channel = value.to_owned(),
            Target::Status => row.status = Some(parse_status(value)?),
            Target::Owner => {
                let owner = EmailAddress::parse(value)
                    .map_err(|e| format!("owner '{value}' is not an email address: {e}"))?;
                row.owner = Some(owner.to_string());
            }
            Target::Form => row.form = text,
            Target::Score => {
                row.score = Some(
                    value
                        .parse()
                        .map_err(|_| format!("score '{value}' is not a whole number"))?,
                );
            }
            Target::CreatedAt => row.created_at = Some(parse_time(value)?),
            Target::Fields => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::Object(map)) => row.fields.extend(map),
                _ => {
                    let key = headers.get(i).unwrap_or("fields").trim().to_owned();
                    row.fields.insert(key, value.into());
                }
            },
            Target::Field(key) => {
                row.fields.insert(key.clone(), value.into());
            }
            Target::Ignore => {}
        }
    }
    if row.name.is_none() {
        row.name = match (first, last) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (f, l) => f.or(l),
        };
    }
    let email = email.ok_or("no email address")?;
    let email = EmailAddress::parse(email)
        .map_err(|e| format!("'{email}' is not an email address: {e}"))?;
    if email.domain() == ERASED_DOMAIN {
        return Err(format!(
            "'{email}' stands for an erased person, not an address"
        ));
    }
    row.email = Some(email);
    Ok(row)
}

/// RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` in UTC.
fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("'{value}' is not a date (RFC 3339 or YYYY-MM-DD [HH:MM[:SS]], UTC)")
        })
}

/// A bar over the file's bytes on stderr; hidden when stderr is not a terminal.
fn progress_bar(size: u64) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {elapsed} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `leadloop export leads|events|verdicts --format csv|json [--since DATE]`.
pub async fn export(
    config: &Config,
    what: ExportWhat,
    format: Format,
    since: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let since = since
        .map(parse_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let store = daemon::open_store(config).await?;
    let out = io::BufWriter::new(io::stdout().lock());
    let result = match what {
        ExportWhat::Leads => {
            write_rows(
                out,
                format,
                &[
                    "email", "name", "company", "phone", "channel", "status", "score", "owner",
                    "form", "fields", "created_at", "updated_at",
                ],
                store.export_leads(since),
                |l: Lead| {
                    let json = super::lead_json_to(&l, chrono::SecondsFormat::Millis);
                    let csv = vec![
                        l.email.to_string(),
                        l.name.unwrap_or_default(),
                        l.company.unwrap_or_default(),
                        l.phone.unwrap_or_default(),
                        l.channel,
                        l.status.to_string(),
                        l.score.to_string(),
                        l.owner.unwrap_or_default(),
                        l.form.unwrap_or_default(),
                        serde_json::Value::Object(l.fields).to_string(),
                        time(l.created_at),
                        time(l.updated_at),
                    ];
                    (json, csv)
                },
            )
            .await
        }
        ExportWhat::Events => {
            write_rows(
                out,
                format,
                &["id", "lead", "at", "kind", "detail"],
                store.export_events(since),
                |e| {
                    let csv = vec![
                        e.id.to_string(),
                        e.lead.clone(),
                        time(e.at),
                        e.kind.clone(),
                        e.detail.to_string(),
                    ];
                    let json = serde_json::json!({
                        "id": e.id, "lead": e.lead, "at": time(e.at), "kind": e.kind, "detail": e.detail,
                    });
                    (json, csv)
                },
            )
            .await
        }
        ExportWhat::Verdicts => {
            write_rows(
                out,
                format,
                &[
                    "id", "lead", "at", "verdict", "reason", "comment", "target", "by", "source",
                ],
                store.export_verdicts(since),
                |v| {
                    let csv = vec![
                        v.id.to_string(),
                        v.lead.clone(),
                        time(v.at),
                        v.verdict.clone(),
                        v.reason.clone().unwrap_or_default(),
                        v.comment.clone().unwrap_or_default(),
                        v.target.clone().unwrap_or_default(),
                        v.by.clone(),
                        v.source.clone(),
                    ];
                    let json = serde_json::json!({
                        "id": v.id, "lead": v.lead, "at": time(v.at), "verdict": v.verdict,
                        "reason": v.reason, "comment": v.comment, "target": v.target,
                        "by": v.by, "source": v.source,
                    });
                    (json, csv)
                },
            )
            .await
        }
    };
    store.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes each record as it arrives from the database: a CSV row, or a JSON line.
async fn write_rows<T, S>(
    out: impl Write,
    format: Format,
    header: &[&str],
    rows: S,
    fields: impl Fn(T) -> (serde_json::Value, Vec<String>),
) -> anyhow::Result<()>
where
    S: Stream<Item = Result<T, StoreError>>,
{
    let mut rows = std::pin::pin!(rows);
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(header)?;
            while let Some(row) = rows.next().await {
                w.write_record(fields(row?).1)?;
            }
            w.flush()?;
        }
        Format::Json => {
            let mut out = out;
            while let Some(row) = rows.next().await {
                writeln!(out, "{}", fields(row?).0)?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// `leadloop leads erase EMAIL [--yes]`.
pub async fn erase(
    store: &Store,
    email: &str,
    yes: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let address = EmailAddress::parse(email).map_err(|e| anyhow::anyhow!("'{email}': {e}"))?;
    if !yes {
        if !io::stdin().is_terminal() {
            anyhow::bail!("erasing cannot be undone: add --yes to erase {address}");
        }
        eprint!(
            "Erase {address} and everything stored about the person? This cannot be undone. Type the address to confirm: "
        );
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if EmailAddress::parse(answer.trim()).ok().as_ref() != Some(&address) {
            anyhow::bail!("not erased: the address typed was not {address}");
        }
    }
    let erased = store
        .erase_person(&address, &super::sales::by(), Utc::now())
        .await
        .with_context(|| format!("erasing {address}; nothing was erased"))?;
    match &erased.opaque {
        Some(opaque) => writeln!(
            out,
            "{address}: erased; the lead is kept for the counts as {opaque}, without personal data"
        )?,
        None => writeln!(out, "{address}: no lead; erased wherever else it appeared")?,
    }
    writeln!(
        out,
        "{} address(es) on the suppression list as keyed hashes: never mailed again",
        erased.addresses
    )?;
    if !erased.swept.is_empty() {
        writeln!(out, "also removed from: {}", erased.swept.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_to_fields_by_their_letters() {
        assert_eq!(Target::by_header("E-mail"), Target::Email);
        assert_eq!(Target::by_header(" Email Address "), Target::Email);
        assert_eq!(Target::by_header("First name"), Target::FirstName);
        assert_eq!(Target::by_header("Organisation"), Target::Company);
        assert_eq!(Target::by_header("Source"), Target::Channel);
        assert_eq!(
            Target::by_header("Favourite colour"),
            Target::Field("Favourite colour".into())
        );
        assert_eq!(
            Target::named("fields.plan"),
            Some(Target::Field("plan".into()))
        );
        assert_eq!(Target::named("nonsense"), None);
    }

    #[test]
    fn dates_read_in_the_forms_spreadsheets_write() {
        let want = "2026-03-04T05:06:00Z";
        for s in [
            "2026-03-04T05:06:00Z",
            "2026-03-04 05:06",
            "2026-03-04T07:06:00+02:00",
        ] {
            assert_eq!(
                parse_time(s)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                want
            );
        }
        assert!(parse_time("2026-03-04").is_ok());
        assert!(parse_time("4 March").is_err());
    }
}
