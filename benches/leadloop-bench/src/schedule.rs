//! `leadloop-bench schedule`: does the scheduler's cost follow the due work or the table size?
//!
//! Two SQLite databases are loaded with enrolled leads — a large one (1,000,000 by default)
//! and a small one (10,000) — each with the same number of enrollments due now (10,000); the
//! rest of the large one is due over the next 30 days. For each, a fresh child process opens
//! the database and runs the scheduler once: claim every due enrollment, decide, render the
//! step (text and HTML) and enqueue it into the outbox, advancing the enrollment. The child
//! reports its time and its own peak RSS.
//!
//! `ratio` is the small case's time over the large case's (1.0: table size costs nothing).
//! Each run starts from a copy of the prepared database; the cases alternate, `--runs` times,
//! and medians are reported.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::rss;

const SEQUENCE: &str = r#"
[enroll]
kinds = ["inquiry"]

[[step]]
id = "welcome"
delay = "0m"
template = "welcome"
subject = "Thanks for getting in touch, {{ lead.first_name or 'there' }}"

[[step]]
id = "follow-up"
delay = "2d"
template = "welcome"
subject = "Following up"
"#;

const TEXT: &str = "Hi {{ lead.first_name or \"there\" }},\n\nthanks for reaching out{% if lead.company %} on behalf of {{ lead.company }}{% endif %}. \
We read every message and someone from our team will answer you personally within a day.\n\n\
In the meantime, here is what teams like yours do with us: they answer new inquiries within\n\
the hour, follow up on every lead without a spreadsheet, and see which channels bring customers.\n\n\
Best regards,\n{{ sender.display_name }}\n";

const HTML: &str = "<!DOCTYPE html><html><body style=\"font-family: sans-serif\">\
<p>Hi {{ lead.first_name or \"there\" }},</p>\
<p>thanks for reaching out{% if lead.company %} on behalf of <b>{{ lead.company }}</b>{% endif %}. \
We read every message and someone from our team will answer you personally within a day.</p>\
<p>In the meantime, here is what teams like yours do with us: they answer new inquiries within \
the hour, follow up on every lead without a spreadsheet, and see which channels bring customers.</p>\
<p>Best regards,<br>{{ sender.display_name }}</p></body></html>";

fn config_text(db_url: &str, dir: &Path) -> String {
    format!(
        r#"
[database]
url = "{db_url}"

[maildir]
path = "{inbox}"

[identity]
addresses = ["leads@company.com"]
domains = ["company.com"]

[sequences]
dir = "{seqs}"
templates = "{templates}"
inbox = "leads@company.com"
reply_to_token = true

[policy]
per_lead_per_day = 1

[[sender]]
name = "team"
address = "hello@company.com"
display_name = "The Company Team"
"#,
        inbox = dir.join("inbox").display(),
        seqs = dir.join("sequences").display(),
        templates = dir.join("templates").display(),
    )
}

/// Writes the configuration, sequence and templates, and loads `enrolled` leads of which
/// `due` are due now. Returns the configuration's path.
async fn prepare(dir: &Path, enrolled: usize, due: usize) -> Result<std::path::PathBuf> {
    for sub in [
        "inbox/cur",
        "inbox/new",
        "inbox/tmp",
        "sequences",
        "templates",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(dir.join("sequences/welcome.toml"), SEQUENCE)?;
    std::fs::write(dir.join("templates/welcome.txt"), TEXT)?;
    std::fs::write(dir.join("templates/welcome.html"), HTML)?;
    let db = dir.join("bench.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    // Each measured run works on a fresh copy of the prepared database (see `fresh_copy`).
    let run_url = format!("sqlite://{}?mode=rwc", dir.join("run.db").display());
    let config = dir.join("leadloop.toml");
    std::fs::write(&config, config_text(&run_url, dir))?;

    // Migrate through the store, then bulk-load with set-based SQL.
    let store = leadloop::store::Store::connect(&url, 1).await?;
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let now = Utc::now().timestamp_millis();
    let day = 86_400_000_i64;
    let sql = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         BEGIN;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {enrolled})
         INSERT INTO leads (id, email, name, company, channel, created_at, updated_at)
           SELECT x, 'lead' || x || '@example' || (x % 997) || '.org', 'Lead ' || x || ' Person',
                  CASE WHEN x % 3 = 0 THEN NULL ELSE 'Company ' || (x % 5000) END, 'direct', {now}, {now} FROM c;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {enrolled})
         INSERT INTO enrollments (lead_id, sequence, state, last_at, next_due_at, enrolled_at, updated_at)
           SELECT x, 'welcome', 'active', {now} - {day},
                  CASE WHEN x % {stride} = 0 AND x / {stride} <= {due} THEN {now} - 60000 - x
                       ELSE {now} + 3600000 + (x * 7919) % (30 * {day}) END,
                  {now} - {day}, {now} FROM c;
         COMMIT;",
        stride = (enrolled / due.max(1)).max(1),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .context("loading enrollments")?;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM enrollments WHERE next_due_at <= {now}"
    )))
    .fetch_one(&mut conn)
    .await?;
    if usize::try_from(n).unwrap_or(0) != due {
        bail!("loaded {n} due enrollments, wanted {due}");
    }
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(config)
}

/// The measured part, in a child process: one scheduler pass over what is due.
pub fn child(config: &Path) -> Result<()> {
    let rt = leadloop::daemon::runtime()?;
    let result = rt.block_on(async {
        let config = leadloop::config::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = leadloop::daemon::open_store(&config).await?;
        // The daemon's background checkpoints, as `leadloop run` has them.
        let checkpoints = store.start_checkpoints();
        let scheduler = leadloop::sequence::schedule::Scheduler::new(
            store.clone(),
            Arc::clone(&config.sequences),
            Arc::new(tokio::sync::Notify::new()),
        );

        let cpu0 = rss::cpu_seconds()?;
        let t = Instant::now();
        let report = scheduler.run_due(Utc::now()).await?;
        let elapsed = t.elapsed().as_secs_f64();
        let cpu = rss::cpu_seconds()? - cpu0;
        checkpoints.stop().await;
        store.close().await;
        anyhow::Ok(json!({
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "claimed": report.claimed,
            "enqueued": report.enqueued,
        }))
    })?;
    let mut result = result;
    result["peak_rss_kib"] = json!(rss::peak_rss_kib()?);
    println!("{result}");
    Ok(())
}

/// Copies the prepared database to the one the configuration names, so that every run starts
/// from the same due work (a run consumes it).
fn fresh_copy(config: &Path) -> Result<()> {
    let dir = config.parent().context("configuration folder")?;
    for ext in ["run.db-wal", "run.db-shm"] {
        let _ = std::fs::remove_file(dir.join(ext));
    }
    std::fs::copy(dir.join("bench.db"), dir.join("run.db")).context("copying the database")?;
    // Written back to disk now, not during the measured run: the run's first checkpoint
    // fsyncs the file and would otherwise wait for the whole copy.
    std::fs::File::open(dir.join("run.db"))
        .and_then(|f| f.sync_all())
        .context("syncing the copy")?;
    Ok(())
}

fn run_child(config: &Path) -> Result<Value> {
    fresh_copy(config)?;
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let out = Command::new(exe)
        .arg("schedule-child")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running schedule-child")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("schedule-child failed ({}): {stdout}", out.status);
    }
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("schedule-child printed no JSON last line: {stdout:?}"))
}

/// `leadloop-bench schedule`.
pub fn run(enrolled: usize, small: usize, due: usize, runs: usize) -> Result<()> {
    if due == 0 || due > small || small > enrolled {
        bail!("need 0 < --due <= --small <= --enrolled");
    }
    let rt = leadloop::daemon::runtime()?;
    let large_dir = tempfile_dir("large")?;
    let small_dir = tempfile_dir("small")?;
    let t = Instant::now();
    let (large_cfg, small_cfg) = rt.block_on(async {
        let l = prepare(&large_dir, enrolled, due).await?;
        let s = prepare(&small_dir, small, due).await?;
        anyhow::Ok((l, s))
    })?;
    println!(
        "loaded {enrolled} and {small} enrollments ({due} due in each) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // Alternate the cases so that a change in the machine's load hits both alike; report
    // medians.
    let mut large_runs = Vec::new();
    let mut small_runs = Vec::new();
    for _ in 0..runs {
        large_runs.push(run_child(&large_cfg)?);
        small_runs.push(run_child(&small_cfg)?);
    }
    let _ = std::fs::remove_dir_all(&large_dir);
    let _ = std::fs::remove_dir_all(&small_dir);
    for (name, r) in large_runs
        .iter()
        .map(|r| ("large", r))
        .chain(small_runs.iter().map(|r| ("small", r)))
    {
        if r["enqueued"].as_u64() != Some(due as u64) {
            bail!("{name} case enqueued {} of {due}: {r}", r["enqueued"]);
        }
    }
    let field = |runs: &[Value], key: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let large_s = median(field(&large_runs, "elapsed_s"));
    let small_s = median(field(&small_runs, "elapsed_s"));
    let large_cpu = median(field(&large_runs, "cpu_s"));
    let small_cpu = median(field(&small_runs, "cpu_s"));
    let leadloop_per_s = due as f64 / large_s;
    let reference_per_s = due as f64 / small_s;
    let ratio = small_s / large_s;
    let peak = field(&large_runs, "peak_rss_kib")
        .into_iter()
        .fold(0.0, f64::max)
        / 1024.0;
    let small_peak = field(&small_runs, "peak_rss_kib")
        .into_iter()
        .fold(0.0, f64::max)
        / 1024.0;
    println!(
        "large ({enrolled} enrolled): {due} due steps claimed, rendered and enqueued in {large_s:.2}s ({leadloop_per_s:.0}/s, CPU {large_cpu:.2}s), peak RSS {peak:.1} MB"
    );
    println!(
        "small ({small} enrolled): {small_s:.2}s ({reference_per_s:.0}/s, CPU {small_cpu:.2}s), peak RSS {small_peak:.1} MB"
    );
    println!(
        "ratio small / large time: {ratio:.2}, CPU time: {:.2} (1.0 = table size costs nothing; medians of {runs})",
        small_cpu / large_cpu
    );
    let rss_growth = peak / small_peak.max(1e-9);
    println!(
        "memory: peak RSS {peak:.1} MB with {enrolled} enrolled, {small_peak:.1} MB with {small} ({rss_growth:.2}x)"
    );
    let summary = json!({
        "bench": "schedule",
        "enrolled": enrolled,
        "small_enrolled": small,
        "due": due,
        "leadloop_per_s": leadloop_per_s,
        "reference_per_s": reference_per_s,
        "ratio": ratio,
        "large_elapsed_s": large_s,
        "small_elapsed_s": small_s,
        "cpu_ratio": small_cpu / large_cpu,
        "large_cpu_s": large_cpu,
        "small_cpu_s": small_cpu,
        "large_runs_s": field(&large_runs, "elapsed_s"),
        "small_runs_s": field(&small_runs, "elapsed_s"),
        "runs": runs,
        "peak_rss_mb": peak,
        "small_peak_rss_mb": small_peak,
        "rss_growth": rss_growth,
    });
    println!("{summary}");
    Ok(())
}

fn tempfile_dir(tag: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "leadloop-bench-schedule-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
