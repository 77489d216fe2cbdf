//! `leadloop-bench`: reproducible performance figures against a real, private Dovecot.
//!
//! ```text
//! cargo run --release --bin leadloop-bench -- ingest [--messages 10000] [--seed 42] [--runs 3]
//! cargo run --release --bin leadloop-bench -- corpus --messages 200 --out /tmp/corpus
//! cargo run --release --bin leadloop-bench -- classify [--messages 10000] [--dir DIR] [--dump FILE]
//! cargo run --release --bin leadloop-bench -- schedule [--enrolled 1000000] [--due 10000]
//! cargo run --release --bin leadloop-bench -- send [--messages 20000] [--runs 3]
//! cargo build --release --bin leadloop --bin leadloop-bench
//! target/release/leadloop-bench loop [--leads 1000] [--replies 200] [--every-ms 50]
//! target/release/leadloop-bench report [--leads 1000000] [--events-per-lead 10] [--database postgres://…]
//! target/release/leadloop-bench web [--leads 1000000] [--clients 32] [--seconds 20]
//! ```
//!
//! `ingest` generates the corpus, bulk-loads it into a fresh Dovecot, measures the reference
//! client (one TLS connection, one `UID FETCH 1:* BODY.PEEK[]`, bytes discarded) after one
//! warm-up run, and then the leadloop phase. Each measured phase whose memory matters runs in a
//! child process (`ingest-child`) so its peak RSS is its own (see `rss.rs`). The output is a
//! human summary; the last line is one JSON object for scripts.

mod classify;
mod corpus;
mod daemon;
mod reference;
mod report;
mod rss;
mod sales_loop;
mod schedule;
mod scratch;
mod send;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use leadloop_testkit::dovecot;
use serde_json::{Value, json};

/// The daemon's allocator with its options (see the `leadloop` binary's `main.rs`): the
/// measured phases run leadloop in this process, and must run it as production does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: ConfPtr = ConfPtr(leadloop::daemon::MALLOC_CONF.as_ptr());

/// A C string pointer that may sit in a static: it points to a literal that never changes.
#[repr(transparent)]
struct ConfPtr(*const std::ffi::c_char);

// SAFETY: the pointer is to a `'static` immutable C string, only ever read.
unsafe impl Sync for ConfPtr {}

/// The child gets the IMAP password through the environment, not argv (visible in `ps`).
const PASSWORD_ENV: &str = "LEADLOOP_BENCH_IMAP_PASSWORD";

#[derive(Parser)]
#[command(about = "leadloop benchmarks against a private Dovecot on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mailbox ingest throughput: reference fetch vs leadloop.
    Ingest {
        /// Number of corpus messages loaded into the mailbox.
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Corpus seed (same seed, same bytes).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Measured reference runs after the warm-up; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The smaller mailbox the peak RSS is compared with (one more leadloop run against a
        /// second Dovecot, unless equal to --messages); 0 for none.
        #[arg(long, default_value_t = 10_000)]
        baseline: usize,
    },
    /// Outbox sending throughput: smtp-source vs leadloop's sender, to one smtp-sink.
    Send {
        /// Due outbox messages (one per lead).
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Measured runs of each side; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The smaller case the peak RSS is compared with (one more run, unless equal to
        /// --messages); 0 for none.
        #[arg(long, default_value_t = 10_000)]
        baseline: usize,
    },
    /// The loop back from Sales: time from a lead's reply (APPEND) to its hand-off accepted
    /// at smtp-sink, with the `leadloop` daemon running; a bare IDLE client as the floor.
    Loop {
        /// Leads enrolled, each with its first step sent before measuring.
        #[arg(long, default_value_t = 1_000)]
        leads: usize,
        /// Replies measured, each from another of those leads.
        #[arg(long, default_value_t = 200)]
        replies: usize,
        /// Milliseconds between two reply APPENDs.
        #[arg(long, default_value_t = 50)]
        every_ms: u64,
        /// The `leadloop` binary run as the daemon (default: the one beside this executable).
        #[arg(long, env = "LEADLOOP_BENCH_DAEMON")]
        leadloop: Option<PathBuf>,
        /// Keep the daemon's log in this file (`LEADLOOP_LOG` sets its filter).
        #[arg(long)]
        daemon_log: Option<PathBuf>,
    },
    /// Internal: drains the seeded database DB to the sink on PORT. Started by `send`.
    #[command(hide = true)]
    SendChild {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        db: PathBuf,
    },
    /// Writes the corpus as .eml files (for looking at it, or for classifier tests).
    Corpus {
        #[arg(long, default_value_t = 100)]
        messages: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The classifier alone: the corpus (or DIR's .eml files) classified on one thread, in
    /// this process; repeatable under `valgrind --tool=callgrind`.
    Classify {
        /// Number of corpus messages generated (without --dir).
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Classify the .eml files of this directory instead (sorted by name).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Passes over the messages.
        #[arg(long, default_value_t = 1)]
        passes: usize,
        /// Classifier rules from this leadloop configuration instead of the ingest bench's.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write every decision, in full, one JSON line per message, to this file.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Scheduler cost: due steps claimed, rendered and enqueued with many vs few enrolled.
    Schedule {
        /// Enrolled leads in the large case.
        #[arg(long, default_value_t = 1_000_000)]
        enrolled: usize,
        /// Enrolled leads in the small case.
        #[arg(long, default_value_t = 10_000)]
        small: usize,
        /// Enrollments due now in each case.
        #[arg(long, default_value_t = 10_000)]
        due: usize,
        /// Measured runs of each case; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Reports: `leadloop report channels --by month` over a large history vs a bare
    /// `SELECT channel, count(*) FROM leads GROUP BY channel`, at --leads and a tenth of it.
    Report {
        /// Leads in the large case; the small case has a tenth.
        #[arg(long, default_value_t = 1_000_000)]
        leads: usize,
        /// Timeline rows per lead (messages, hand-offs, verdicts and events together).
        #[arg(long, default_value_t = 10)]
        events_per_lead: usize,
        /// A PostgreSQL server (postgres://…) to measure on besides SQLite; a schema of the
        /// bench's own is created there and dropped after.
        #[arg(long)]
        database: Option<String>,
        /// Measured runs of each side; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The `leadloop` binary (default: the one beside this executable).
        #[arg(long, env = "LEADLOOP_BENCH_DAEMON")]
        leadloop: Option<PathBuf>,
    },
    /// The web view: leads list and lead pages of a 1,000,000-lead SQLite database served by
    /// `leadloop run`, against `/healthz` of the same server in the same run.
    Web {
        /// Leads loaded.
        #[arg(long, default_value_t = 1_000_000)]
        leads: usize,
        /// Concurrent clients, one keep-alive connection each.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds of list and lead pages together (`/healthz` gets half as long again).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// The `leadloop` binary run as the daemon (default: the one beside this executable).
        #[arg(long, env = "LEADLOOP_BENCH_DAEMON")]
        leadloop: Option<PathBuf>,
        /// Keep the daemon's log in this file.
        #[arg(long)]
        daemon_log: Option<PathBuf>,
    },
    /// Internal: one scheduler pass over a prepared database, printing a JSON line with its
    /// own peak RSS. Started by `schedule`.
    #[command(hide = true)]
    ScheduleChild {
        #[arg(long)]
        config: PathBuf,
    },
    /// Internal: runs one phase against an already running server and prints a JSON line
    /// with its own peak RSS. Started by `ingest`.
    #[command(hide = true)]
    IngestChild {
        #[arg(long, value_enum)]
        phase: Phase,
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        user: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Phase {
    /// The reference fetch (baseline memory of a minimal client).
    Reference,
    /// leadloop's own ingest.
    Leadloop,
}

fn main() -> Result<()> {
    // Our own ClientConfig builders must not depend on which rustls providers got compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Cmd::Ingest {
            messages,
            seed,
            runs,
            baseline,
        } => ingest(messages, seed, runs.max(1), baseline),
        Cmd::Corpus {
            messages,
            seed,
            out,
        } => write_corpus(messages, seed, &out),
        Cmd::Classify {
            messages,
            seed,
            dir,
            passes,
            config,
            dump,
        } => classify::run(&classify::Options {
            dir,
            messages,
            seed,
            passes,
            config,
            dump,
        }),
        Cmd::Send {
            messages,
            runs,
            baseline,
        } => send::bench(messages, runs.max(1), baseline),
        Cmd::SendChild { port, db } => send::child(port, &db),
        Cmd::Loop {
            leads,
            replies,
            every_ms,
            leadloop,
            daemon_log,
        } => sales_loop::run(&sales_loop::Options {
            leads,
            replies,
            every: std::time::Duration::from_millis(every_ms.max(1)),
            daemon: leadloop,
            daemon_log,
        }),
        Cmd::IngestChild {
            phase,
            host,
            port,
            ca,
            user,
        } => ingest_child(phase, &host, port, &ca, &user),
        Cmd::Schedule {
            enrolled,
            small,
            due,
            runs,
        } => schedule::run(enrolled, small, due, runs.max(1)),
        Cmd::ScheduleChild { config } => schedule::child(&config),
        Cmd::Web {
            leads,
            clients,
            seconds,
            leadloop,
            daemon_log,
        } => web::run(&web::Options {
            leads,
            clients,
            seconds,
            leadloop,
            daemon_log,
        }),
        Cmd::Report {
            leads,
            events_per_lead,
            database,
            runs,
            leadloop,
        } => report::run(&report::Options {
            leads,
            events_per_lead,
            database,
            runs: runs.max(1),
            leadloop,
        }),
    }
}

/// The ingest benchmark: the mailbox, the reference client's runs, leadloop's runs (each in a
/// child process), then the comparison and one JSON summary line.
fn ingest(messages: usize, seed: u64, runs: usize, baseline: usize) -> Result<()> {
    let mailbox = prepare_mailbox(messages, seed)?;
    let dc = &mailbox.dc;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let ca = dc.ca_pem_path();
    let target = reference::Target::dovecot(dc, &ca);
    let reference = measure_reference(&rt, &target, messages, runs)?;

    // The reference client's own peak RSS, measured the same way as leadloop's phase below.
    let reference_child = run_child(Phase::Reference, dc).context("reference child phase")?;
    println!(
        "reference child: {:.0} msg/s, peak RSS {} KiB",
        reference_child["per_s"].as_f64().unwrap_or(0.0),
        reference_child["peak_rss_kib"]
    );

    let leadloop = measure_leadloop(&rt, &target, dc, messages, runs)?;
    let mut rates = reference.rates;
    rates.extend(leadloop.reference_again);
    rates.sort_by(f64::total_cmp);
    let reference_per_s = rates[rates.len() / 2];
    let ratio = leadloop.per_s / reference_per_s;
    println!(
        "leadloop (fetch, parse, classify, record into SQLite, cursor; TLS): {:.0} msg/s \
         (median of {runs}; runs: {}), peak RSS {:.1} MB",
        leadloop.per_s,
        leadloop
            .rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        leadloop.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "ratio leadloop / reference: {ratio:.2} (reference median over all {} runs: {reference_per_s:.0} msg/s)",
        rates.len()
    );
    let kinds = leadloop
        .runs
        .last()
        .map(|v| v["kinds"].clone())
        .unwrap_or(Value::Null);
    let summary = json!({
        "bench": "ingest",
        "messages": messages,
        "seed": seed,
        "corpus_bytes": mailbox.corpus_bytes,
        "load_maildir_s": mailbox.load_s,
        "reference_per_s": reference_per_s,
        "reference_mb_per_s": reference.median_run.mb_per_second(),
        "reference_runs_per_s": rates,
        "reference_peak_rss_mb": reference_child["peak_rss_kib"].as_f64().map(|k| k / 1024.0),
        "leadloop_per_s": leadloop.per_s,
        "leadloop_runs_per_s": leadloop.rates,
        "leadloop_cpu_s": leadloop.runs.iter().map(|v| v["cpu_s"].clone()).collect::<Vec<_>>(),
        "leadloop_elapsed_s": leadloop.runs.iter().map(|v| v["elapsed_s"].clone()).collect::<Vec<_>>(),
        "ratio": ratio,
        "peak_rss_mb": leadloop.peak_rss_kib as f64 / 1024.0,
        "kinds": kinds,
    });
    let mut summary = summary;
    if baseline != messages && baseline > 0 {
        // The mailbox above is done with; its Dovecot stops before the next one starts.
        drop(mailbox);
        let peak_mb = leadloop.peak_rss_kib as f64 / 1024.0;
        let baseline_mb = baseline_peak_rss_mb(baseline, seed)?;
        let growth = peak_mb / baseline_mb.max(1e-9);
        println!(
            "memory: peak RSS {peak_mb:.1} MB ingesting {messages}, {baseline_mb:.1} MB ingesting {baseline} ({growth:.2}x)"
        );
        summary["baseline_messages"] = json!(baseline);
        summary["baseline_peak_rss_mb"] = json!(baseline_mb);
        summary["rss_growth"] = json!(growth);
    }
    println!("{summary}");
    Ok(())
}

/// The peak RSS of one leadloop run over a mailbox of `messages` (a Dovecot of its own), for
/// comparing memory across mailbox sizes.
fn baseline_peak_rss_mb(messages: usize, seed: u64) -> Result<f64> {
    let mailbox = prepare_mailbox(messages, seed)?;
    let run = run_child(Phase::Leadloop, &mailbox.dc).context("leadloop baseline run")?;
    if run["recorded"].as_u64() != Some(messages as u64) {
        bail!(
            "leadloop recorded {} of {messages} messages in the baseline run",
            run["recorded"]
        );
    }
    run["peak_rss_kib"]
        .as_f64()
        .map(|k| k / 1024.0)
        .context("the baseline run printed no peak_rss_kib")
}

/// A private Dovecot whose INBOX holds the generated corpus.
struct Mailbox {
    dc: dovecot::Dovecot,
    corpus_bytes: usize,
    /// Seconds to write the Maildir and have Dovecot sync it.
    load_s: f64,
}

/// Generates the corpus, starts Dovecot and bulk-loads the corpus into it.
fn prepare_mailbox(messages: usize, seed: u64) -> Result<Mailbox> {
    let t = Instant::now();
    let corpus = corpus::generate(messages, seed);
    let corpus_bytes: usize = corpus.iter().map(|m| m.raw.len()).sum();
    let gen_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let dc = dovecot::Dovecot::start().context("starting the private Dovecot")?;
    let start_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    dc.load_maildir(corpus.iter().map(|m| m.raw.clone()))
        .context("loading the corpus into the Maildir")?;
    let load_s = t.elapsed().as_secs_f64();
    drop(corpus);
    println!(
        "corpus: {messages} messages, {:.1} MB (mean {} B), seed {seed}, generated in {gen_s:.2} s",
        corpus_bytes as f64 / 1e6,
        corpus_bytes / messages.max(1)
    );
    println!(
        "dovecot: started in {start_s:.2} s, Maildir load + first sync {load_s:.2} s ({})",
        dc.dir().display()
    );
    Ok(Mailbox {
        dc,
        corpus_bytes,
        load_s,
    })
}

/// The reference client's measured runs, in this process.
struct ReferenceRuns {
    /// Messages per second of each run, ascending.
    rates: Vec<f64>,
    /// The run with the median rate.
    median_run: reference::FetchStats,
}

/// One warm-up fetch of the whole mailbox (which must hold `messages`), then `runs` measured
/// ones; prints their median.
fn measure_reference(
    rt: &tokio::runtime::Runtime,
    target: &reference::Target<'_>,
    messages: usize,
    runs: usize,
) -> Result<ReferenceRuns> {
    let warm = rt
        .block_on(reference::fetch_all(target))
        .context("reference warm-up fetch")?;
    if warm.messages != messages as u64 {
        bail!(
            "reference fetch saw {} messages, expected {messages}",
            warm.messages
        );
    }
    let mut results = Vec::new();
    for _ in 0..runs {
        results.push(
            rt.block_on(reference::fetch_all(target))
                .context("reference fetch")?,
        );
    }
    let mut rates: Vec<f64> = results.iter().map(|r| r.per_second()).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let median_run = results
        .iter()
        .find(|r| r.per_second() == median)
        .copied()
        .unwrap_or(results[0]);
    println!(
        "reference (async-imap, TLS, one UID FETCH 1:* BODY.PEEK[], bytes discarded): \
         {:.0} msg/s, {:.0} MB/s, {:.3} s for {} messages (median of {runs}; runs: {})",
        median,
        median_run.mb_per_second(),
        median_run.elapsed.as_secs_f64(),
        median_run.messages,
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ReferenceRuns { rates, median_run })
}

/// leadloop's measured runs, each a child process, and the reference fetches between them.
struct LeadloopRuns {
    /// What each child printed.
    runs: Vec<Value>,
    /// Messages per second of each run, ascending.
    rates: Vec<f64>,
    /// The median of `rates`.
    per_s: f64,
    /// The largest peak RSS of any run.
    peak_rss_kib: u64,
    /// Messages per second of the reference fetch after each run.
    reference_again: Vec<f64>,
}

/// leadloop phase: each run ingests the whole mailbox into a fresh SQLite store, in a child
/// process so its peak RSS is its own. Runs alternate with reference fetches so both see the
/// same machine state. Every run must record all `messages`.
fn measure_leadloop(
    rt: &tokio::runtime::Runtime,
    target: &reference::Target<'_>,
    dc: &dovecot::Dovecot,
    messages: usize,
    runs: usize,
) -> Result<LeadloopRuns> {
    let mut leadloop_runs = Vec::new();
    let mut reference_again = Vec::new();
    for _ in 0..runs {
        leadloop_runs.push(run_child(Phase::Leadloop, dc).context("leadloop ingest phase")?);
        reference_again.push(
            rt.block_on(reference::fetch_all(target))
                .context("reference fetch")?
                .per_second(),
        );
    }
    for run in &leadloop_runs {
        if run["recorded"].as_u64() != Some(messages as u64) {
            bail!(
                "leadloop recorded {} of {messages} messages",
                run["recorded"]
            );
        }
    }
    let mut rates: Vec<f64> = leadloop_runs
        .iter()
        .filter_map(|v| v["per_s"].as_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    let per_s = rates[rates.len() / 2];
    let peak_rss_kib = leadloop_runs
        .iter()
        .filter_map(|v| v["peak_rss_kib"].as_u64())
        .max()
        .unwrap_or(0);
    Ok(LeadloopRuns {
        runs: leadloop_runs,
        rates,
        per_s,
        peak_rss_kib,
        reference_again,
    })
}

/// Re-executes this binary as `ingest-child` for one phase and returns the JSON object the
/// child printed last (it includes the child's own `peak_rss_kib`).
fn run_child(phase: Phase, dc: &dovecot::Dovecot) -> Result<Value> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let phase_name = format!("{phase:?}").to_lowercase();
    // `LEADLOOP_BENCH_WRAP="valgrind --tool=callgrind"` (or `perf record -g`) runs the leadloop
    // phase under a profiler; the reference phase is never wrapped.
    let wrap: Vec<String> = match phase {
        Phase::Leadloop => std::env::var("LEADLOOP_BENCH_WRAP")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        Phase::Reference => Vec::new(),
    };
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let out = cmd
        .args(["ingest-child", "--phase", &phase_name, "--host", dc.host()])
        .arg("--port")
        .arg(dc.tls_port().to_string())
        .arg("--ca")
        .arg(dc.ca_pem_path())
        .args(["--user", dc.user()])
        .env(PASSWORD_ENV, dc.password())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the ingest-child process")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "ingest-child --phase {phase_name} failed ({}): {stdout}",
            out.status
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .with_context(|| format!("ingest-child printed no JSON last line: {stdout:?}"))
}

fn ingest_child(phase: Phase, host: &str, port: u16, ca: &Path, user: &str) -> Result<()> {
    let password = std::env::var(PASSWORD_ENV)
        .with_context(|| format!("{PASSWORD_ENV} is not set (ingest-child is internal)"))?;
    let target = reference::Target {
        host,
        tls_port: port,
        ca_pem: ca,
        user,
        password: &password,
    };
    let mut result = run_phase(phase, &target)?;
    // Read the peak last, after all the phase's work and before any teardown.
    result["peak_rss_kib"] = json!(rss::peak_rss_kib()?);
    result["end_rss_kib"] = json!(rss::current_rss_kib()?);
    println!("{result}");
    Ok(())
}

/// One measured phase; returns at least `messages`, `elapsed_s`, `per_s`.
fn run_phase(phase: Phase, target: &reference::Target<'_>) -> Result<Value> {
    match phase {
        Phase::Reference => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let stats = rt.block_on(reference::fetch_all(target))?;
            Ok(json!({
                "phase": "reference",
                "messages": stats.messages,
                "bytes": stats.bytes,
                "elapsed_s": stats.elapsed.as_secs_f64(),
                "per_s": stats.per_second(),
            }))
        }
        Phase::Leadloop => leadloop_phase(target),
    }
}

/// leadloop's own ingest, as `leadloop run --once` does it: the IMAP source over TLS into a
/// fresh SQLite store (WAL), with the default batch size; the timer covers connect to commit.
fn leadloop_phase(target: &reference::Target<'_>) -> Result<Value> {
    if let Ok(filter) = std::env::var("LEADLOOP_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = std::env::temp_dir().join(format!("leadloop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the bench's temp dir")?;
    let config_text = format!(
        r#"
[database]
url = "sqlite://{db}?mode=rwc"

[imap]
host = "{host}"
port = {port}
tls = "implicit"
ca_file = "{ca}"
user = "{user}"
password_env = "{PASSWORD_ENV}"
after = "none"

[identity]
addresses = ["leads@company.com"]
domains = ["company.com"]
"#,
        db = dir.join("leadloop.db").display(),
        host = target.host,
        port = target.tls_port,
        ca = target.ca_pem.display(),
        user = target.user,
    );
    let config = leadloop::config::Config::parse(&config_text, &dir.join("leadloop.toml"))
        .map_err(|e| anyhow!("bench configuration: {e}"))?;
    let rt = leadloop::daemon::runtime()?;
    let result = rt.block_on(async {
        let store = leadloop::daemon::open_store(&config).await?;
        // The daemon's background checkpoints, as `leadloop run` has them.
        let checkpoints = store.start_checkpoints();
        let source = leadloop::daemon::Source::new(&config, store.clone())?;
        let start = Instant::now();
        let cpu_start = rss::cpu_seconds()?;
        let report = source
            .sync_once(&tokio_util::sync::CancellationToken::new())
            .await?;
        let elapsed = start.elapsed();
        let cpu = rss::cpu_seconds()? - cpu_start;
        let kinds = store.kind_counts().await?;
        checkpoints.stop().await;
        store.close().await;
        anyhow::Ok((report, elapsed, cpu, kinds))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (report, elapsed, cpu, kinds) = result?;
    Ok(json!({
        "phase": "leadloop",
        "messages": report.fetched,
        "recorded": report.recorded,
        "leads": report.leads_touched,
        "kinds": kinds,
        "elapsed_s": elapsed.as_secs_f64(),
        "cpu_s": cpu,
        "per_s": report.fetched as f64 / elapsed.as_secs_f64().max(1e-9),
    }))
}

fn write_corpus(messages: usize, seed: u64, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (i, m) in corpus::generate(messages, seed).iter().enumerate() {
        let path = out.join(format!("{i:05}-{}.eml", m.kind.expected_kind()));
        std::fs::write(&path, &m.raw).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {messages} messages to {}", out.display());
    Ok(())
}
