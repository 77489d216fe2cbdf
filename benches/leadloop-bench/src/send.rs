//! `leadloop-bench send`: outbox-to-SMTP throughput against Postfix's own load generator.
//!
//! One `smtp-sink` on loopback (messages discarded, so its disk is not measured) receives, in
//! the same run and alternating: (a) the reference, `smtp-source -s 8 -d -m N -F FILE`, eight
//! sessions that keep their connection, sending N copies of one of our messages; (b) leadloop's
//! sender draining N due outbox rows for N leads over 8 connections from a fresh SQLite
//! database, in a child process (`send-child`) so its peak RSS is its own.
//!
//! The messages are built here with lettre (multipart/alternative, ~4–5 KB, a To and
//! Message-ID per lead) and enqueued before the timer starts: templates and the scheduler are
//! measured by their own benchmark; this one covers claim → SMTP → outcome.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use leadloop::config::{SmtpConfig, SmtpServer, SmtpTransport, TlsMode};
use leadloop::send::{Sender, SenderOptions};
use leadloop::store::NewOutboxMessage;
use serde_json::{Value, json};

use crate::rss;
use leadloop_testkit::smtp_sink::{SMTP_SOURCE, SmtpSink};

/// Parallel SMTP connections, for both sides.
const CONNECTIONS: u32 = 8;

/// One lead's message, as a nurture step would look: a text and an HTML part.
fn message(n: usize) -> (String, Vec<u8>) {
    let to = format!("lead{n:06}@example.org");
    let message_id = format!("bench.{n}.welcome@company.com");
    let paragraph = "Thank you for your interest in our logistics platform. Teams like yours use it \
        to plan routes, track shipments and keep customers informed without spreadsheets. ";
    let text = format!(
        "Hello Lead {n},\n\n{}\n\nBest regards,\nHello from Company\n\n--\nUnsubscribe: https://company.com/u/{n:06}\n",
        paragraph.repeat(11)
    );
    let html = format!(
        "<html><body><p>Hello Lead {n},</p><p>{}</p><p>Best regards,<br>Hello from Company</p>\
         <p><a href=\"https://company.com/u/{n:06}\">Unsubscribe</a></p></body></html>",
        paragraph.repeat(11)
    );
    let m = lettre::Message::builder()
        .from(
            "Hello from Company <hello@company.com>"
                .parse()
                .expect("valid"),
        )
        .to(format!("Lead {n} <{to}>").parse().expect("valid"))
        .subject("Welcome to Company")
        .message_id(Some(format!("<{message_id}>")))
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .multipart(lettre::message::MultiPart::alternative_plain_html(
            text, html,
        ))
        .expect("a valid message");
    (message_id, m.formatted())
}

/// The parent: sink, seeded databases, reference runs, leadloop children, summary.
///
/// The databases are seeded here, in the parent, so that each child's peak RSS is the
/// sender's alone (building 100,000 messages and listing their leads takes more memory than
/// sending them). When `messages` differs from `baseline`, one more child drains a database of
/// `baseline` messages, so the summary can say whether the sender's memory grows with the work.
pub fn bench(messages: usize, runs: usize, baseline: usize) -> Result<()> {
    let sink = SmtpSink::start_discarding(&[]).context("starting smtp-sink")?;
    let sample = message(0).1;
    let size = sample.len();
    let dir = std::env::temp_dir().join(format!("leadloop-bench-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // smtp-source reads LF lines and sends them with CRLF: the same bytes on the wire.
    let sample_file = dir.join("message.txt");
    std::fs::write(
        &sample_file,
        String::from_utf8_lossy(&sample).replace("\r\n", "\n"),
    )?;
    println!(
        "messages: {messages} of {size} B (multipart/alternative), smtp-sink on 127.0.0.1:{}, {CONNECTIONS} connections",
        sink.port()
    );
    let t = Instant::now();
    let seeded = dir.join("seeded.db");
    seed_database(&seeded, messages)?;
    let baseline_db = (baseline != messages && baseline > 0)
        .then(|| {
            let path = dir.join("baseline.db");
            seed_database(&path, baseline).map(|()| path)
        })
        .transpose()?;
    println!("seeded in {:.1}s", t.elapsed().as_secs_f64());

    reference(&sink, &sample_file, messages).context("reference warm-up")?;
    let mut reference_rates = Vec::new();
    let mut leadloop_runs = Vec::new();
    for _ in 0..runs {
        reference_rates.push(reference(&sink, &sample_file, messages)?);
        leadloop_runs.push(run_child(sink.port(), &seeded, messages)?);
    }
    let baseline_run = baseline_db
        .as_deref()
        .map(|db| run_child(sink.port(), db, baseline))
        .transpose()?;
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut leadloop_rates: Vec<f64> = leadloop_runs
        .iter()
        .filter_map(|v| v["per_s"].as_f64())
        .collect();
    let reference_per_s = median(&mut reference_rates);
    let leadloop_per_s = median(&mut leadloop_rates);
    let peak_mb = |runs: &[Value]| {
        runs.iter()
            .filter_map(|v| v["peak_rss_kib"].as_u64())
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };
    let peak_rss_mb = peak_mb(&leadloop_runs);
    let ratio = leadloop_per_s / reference_per_s;
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "reference (smtp-source -s {CONNECTIONS} -d -m {messages} -F message): {reference_per_s:.0} msg/s (median of {runs}; runs: {})",
        list(&reference_rates)
    );
    println!(
        "leadloop (claim, send over {CONNECTIONS} connections, record outcome; SQLite): {leadloop_per_s:.0} msg/s (median of {runs}; runs: {}), peak RSS {peak_rss_mb:.1} MB",
        list(&leadloop_rates),
    );
    println!("ratio leadloop / reference: {ratio:.2}");
    let mut summary = json!({
        "bench": "send",
        "messages": messages,
        "message_bytes": size,
        "connections": CONNECTIONS,
        "reference_per_s": reference_per_s,
        "reference_runs_per_s": reference_rates,
        "leadloop_per_s": leadloop_per_s,
        "leadloop_runs_per_s": leadloop_rates,
        "leadloop_cpu_s": leadloop_runs.iter().map(|v| v["cpu_s"].clone()).collect::<Vec<_>>(),
        "ratio": ratio,
        "peak_rss_mb": peak_rss_mb,
        "peak_rss_runs_mb": leadloop_runs.iter().map(|v| v["peak_rss_kib"].as_f64().map(|k| k / 1024.0)).collect::<Vec<_>>(),
    });
    if let Some(run) = baseline_run {
        let baseline_mb = peak_mb(std::slice::from_ref(&run));
        let growth = peak_rss_mb / baseline_mb.max(1e-9);
        println!(
            "memory: peak RSS {peak_rss_mb:.1} MB sending {messages}, {baseline_mb:.1} MB sending {baseline} ({growth:.2}x)"
        );
        summary["baseline_messages"] = json!(baseline);
        summary["baseline_peak_rss_mb"] = json!(baseline_mb);
        summary["rss_growth"] = json!(growth);
    }
    println!("{summary}");
    Ok(())
}

/// One `smtp-source` run; returns messages per second.
fn reference(sink: &SmtpSink, sample: &Path, messages: usize) -> Result<f64> {
    let start = Instant::now();
    let status = Command::new(SMTP_SOURCE)
        .args([
            "-s",
            &CONNECTIONS.to_string(),
            "-d",
            "-m",
            &messages.to_string(),
        ])
        .arg("-F")
        .arg(sample)
        .args(["-f", "hello@company.com", "-t", "lead@example.org"])
        .arg(format!("127.0.0.1:{}", sink.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {SMTP_SOURCE}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("smtp-source failed: {status}");
    }
    Ok(messages as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// Drains a fresh copy of `seeded` in a `send-child` process; checks that every message went.
fn run_child(port: u16, seeded: &Path, messages: usize) -> Result<Value> {
    let db = seeded.with_file_name("run.db");
    fresh_copy(seeded, &db)?;
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let out = Command::new(exe)
        .args(["send-child", "--port", &port.to_string()])
        .arg("--db")
        .arg(&db)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the send-child process")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("send-child failed ({}): {stdout}", out.status);
    }
    let run: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("send-child printed no JSON last line: {stdout:?}"))?;
    if run["sent"].as_u64() != Some(messages as u64) {
        bail!(
            "leadloop sent {} of {messages} messages: {run}",
            run["sent"]
        );
    }
    Ok(run)
}

/// Copies the seeded database for one run (a run consumes its due messages) and writes it
/// back to disk before the timer starts, so the run's first checkpoint does not wait for it.
fn fresh_copy(seeded: &Path, db: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    std::fs::copy(seeded, db).context("copying the seeded database")?;
    std::fs::File::open(db)
        .and_then(|f| f.sync_all())
        .context("syncing the copy")?;
    Ok(())
}

/// A fresh SQLite database at `path` with `messages` leads and one due message each, made as
/// ingest and the scheduler would have made them.
fn seed_database(path: &Path, messages: usize) -> Result<()> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let rt = leadloop::daemon::runtime()?;
    rt.block_on(async {
        let store = leadloop::store::Store::connect(&url, 4).await?;
        let now = Utc::now();
        let leads = seed_leads(&store, messages, now).await?;
        for first in (0..messages).step_by(1000) {
            let chunk: Vec<NewOutboxMessage> = (first..(first + 1000).min(messages))
                .map(|n| {
                    let (message_id, raw) = message(n);
                    NewOutboxMessage {
                        lead_id: leads.get(&format!("lead{n:06}@example.org")).copied(),
                        enrollment_id: Some(leadloop::domain::EnrollmentId(n as i64)),
                        step_id: Some("welcome".into()),
                        from: "hello@company.com".into(),
                        envelope_from: "bounces@company.com".into(),
                        recipient: format!("lead{n:06}@example.org"),
                        message_id: message_id.into(),
                        raw,
                        due_at: now,
                    }
                })
                .collect();
            store.enqueue_many(&chunk, now).await?;
        }
        // Closing the last connection checkpoints the log into the file that is copied.
        store.close().await;
        anyhow::Ok(())
    })
}

/// One inquiry per lead, recorded as ingest records them; returns each address's lead id.
async fn seed_leads(
    store: &leadloop::store::Store,
    messages: usize,
    now: chrono::DateTime<Utc>,
) -> Result<std::collections::HashMap<String, leadloop::domain::LeadId>> {
    use leadloop::classify::{Classification, Person};
    use leadloop::domain::{EmailAddress, MessageKind};
    use leadloop::store::{Batch, InboundRecord};
    for first in (0..messages).step_by(1000) {
        let records: Vec<InboundRecord> = (first..(first + 1000).min(messages))
            .map(|n| {
                let mut c = Classification::ignored("placeholder");
                c.kind = MessageKind::Inquiry;
                c.reason = None;
                c.channel = Some("direct".into());
                c.lead = Some(Person {
                    email: EmailAddress::parse(&format!("lead{n:06}@example.org"))
                        .expect("a valid address"),
                    name: Some(format!("Lead {n}")),
                    company: None,
                    phone: None,
                });
                InboundRecord {
                    uid: None,
                    dedupe_key: format!("bench:{n}"),
                    size: 1000,
                    classification: c,
                }
            })
            .collect();
        store
            .record_batch(&Batch {
                mailbox: "bench",
                uidvalidity: 0,
                last_uid: None,
                records: &records,
                now,
                enroll: &[],
                changes: &[],
            })
            .await?;
    }
    Ok(store
        .list_leads(&Default::default())
        .await?
        .into_iter()
        .map(|l| (l.email.to_string(), l.id))
        .collect())
}

/// The child: the sender drains the seeded database `db`; only the drain is timed, and the
/// peak RSS is the sender's (with the store it runs on).
pub fn child(port: u16, db: &Path) -> Result<()> {
    let url = format!("sqlite://{}?mode=rw", db.display());
    let config = SmtpConfig {
        transport: SmtpTransport::Smtp(SmtpServer {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            ca_file: None,
            hello_name: Some("bench.company.com".into()),
            auth: None,
        }),
        envelope_from: None,
        verp: false,
        connections: CONNECTIONS,
        timeout: Duration::from_secs(60),
        retry_initial: Duration::from_secs(60),
        retry_max_interval: Duration::from_secs(3600),
        retry_max_age: Duration::from_secs(86_400),
        pause_after_refusals: 5,
    };
    let rt = leadloop::daemon::runtime()?;
    let result = rt.block_on(async {
        let store = leadloop::store::Store::connect(&url, 4).await?;
        // The daemon's background checkpoints, as `leadloop run` has them.
        let checkpoints = store.start_checkpoints();
        let sender = Sender::with_options(
            &config,
            None,
            store.clone(),
            SenderOptions::from_config(&config),
        )?;
        let cpu_start = rss::cpu_seconds()?;
        let start = Instant::now();
        // A task of the runtime, as `leadloop run` runs it (not on the thread that blocks).
        let report = tokio::spawn(async move {
            sender
                .drain(tokio_util::sync::CancellationToken::new())
                .await
        })
        .await?;
        let elapsed = start.elapsed();
        let cpu = rss::cpu_seconds()? - cpu_start;
        checkpoints.stop().await;
        store.close().await;
        anyhow::Ok((report, elapsed, cpu))
    });
    let (report, elapsed, cpu) = result?;
    let result = json!({
        "phase": "leadloop",
        "sent": report.sent,
        "retried": report.retried,
        "failed": report.failed,
        "rounds": report.rounds,
        "elapsed_s": elapsed.as_secs_f64(),
        "cpu_s": cpu,
        "per_s": report.sent as f64 / elapsed.as_secs_f64().max(1e-9),
        "peak_rss_kib": rss::peak_rss_kib()?,
    });
    println!("{result}");
    Ok(())
}
