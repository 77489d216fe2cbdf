//! `leadloop-bench report`: what `leadloop report channels --by month` costs over a large
//! history, against the least work any per-channel report must do.
//!
//! For each database (SQLite always; PostgreSQL with `--database postgres://…`) and each size
//! (`--leads`, and a tenth of it, to show how the cost grows), a fresh database is loaded with
//! set-based SQL: leads over the last year on eight channels, and `--events-per-lead` timeline
//! rows per lead in all (the inquiry message; a reply for 30 % of leads; a hand-off queued for
//! 20 %; a verdict for 40 %, three quarters of them quality verdicts; the rest `events` rows).
//! The rows go in through the schema's triggers, as the daemon's writes do.
//!
//! Measured, alternating, `--runs` times (medians reported), after one warm-up of each:
//! - the reference: `SELECT channel, count(*) FROM leads GROUP BY channel` through sqlx in
//!   this process, on an open connection;
//! - the report: the real `leadloop report channels --by month --format json` binary as a
//!   child process, wall time from start to exit (so it includes starting, reading the
//!   configuration and opening the database), with its peak RSS (`VmHWM`, polled from
//!   `/proc` while it runs; see `rss.rs`).
//!
//! `ratio` is `reference_s / report_s` (1.0: the report costs no more than counting leads per
//! channel; the target is 0.25 or more). The last line is one JSON object.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::{Value, json};

use crate::rss;

/// The options of `leadloop-bench report`.
pub struct Options {
    /// Leads in the large case; the small case has a tenth.
    pub leads: usize,
    /// Timeline rows per lead, all tables together.
    pub events_per_lead: usize,
    /// A PostgreSQL server to measure besides SQLite.
    pub database: Option<String>,
    /// Measured runs of each side.
    pub runs: usize,
    /// The `leadloop` binary (default: the one beside this executable).
    pub leadloop: Option<PathBuf>,
}

/// Which database a case runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

/// One measured case.
struct Case {
    db: Db,
    leads: usize,
    events: i64,
    report_s: f64,
    reference_s: f64,
    peak_rss_mb: f64,
    load_s: f64,
}

impl Case {
    fn ratio(&self) -> f64 {
        self.reference_s / self.report_s
    }

    fn json(&self) -> Value {
        json!({
            "leads": self.leads,
            "events": self.events,
            "report_s": self.report_s,
            "reference_s": self.reference_s,
            "ratio": self.ratio(),
            "peak_rss_mb": self.peak_rss_mb,
            "load_s": self.load_s,
        })
    }
}

/// `leadloop-bench report`.
pub fn run(opts: &Options) -> Result<()> {
    if opts.leads < 10 {
        bail!("--leads must be at least 10");
    }
    let binary = crate::sales_loop::daemon_binary(opts.leadloop.as_deref())?;
    let dir = std::env::temp_dir().join(format!("leadloop-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inbox"))?;
    let rt = leadloop::daemon::runtime()?;
    let mut dbs = vec![Db::Sqlite];
    if opts.database.is_some() {
        dbs.push(Db::Postgres);
    }
    let mut cases = Vec::new();
    for db in dbs {
        for leads in [opts.leads / 10, opts.leads] {
            let case = rt.block_on(measure(opts, db, leads, &dir, &binary));
            let case = match case {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            println!(
                "{:<8} {:>9} leads, {:>10} events (loaded in {:.1}s): report {:.3}s, reference {:.3}s, ratio {:.3}, report peak RSS {:.1} MB",
                db.name(),
                case.leads,
                case.events,
                case.load_s,
                case.report_s,
                case.reference_s,
                case.ratio(),
                case.peak_rss_mb
            );
            cases.push(case);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    for db in [Db::Sqlite, Db::Postgres] {
        let of = |n: usize| cases.iter().find(|c| c.db == db && c.leads == n);
        if let (Some(small), Some(large)) = (of(opts.leads / 10), of(opts.leads)) {
            println!(
                "{}: 10x the leads costs the report {:.1}x and the reference {:.1}x",
                db.name(),
                large.report_s / small.report_s,
                large.reference_s / small.reference_s
            );
        }
    }
    // The headline is SQLite at full size, the default database; every case is listed too.
    let head = cases
        .iter()
        .find(|c| c.db == Db::Sqlite && c.leads == opts.leads)
        .context("no SQLite case measured")?;
    let mut summary = json!({
        "bench": "report",
        "report_s": head.report_s,
        "reference_s": head.reference_s,
        "ratio": head.ratio(),
        "leads": head.leads,
        "events": head.events,
        "peak_rss_mb": cases.iter().map(|c| c.peak_rss_mb).fold(0.0, f64::max),
        "runs": opts.runs,
    });
    for c in &cases {
        let key = if c.leads == opts.leads {
            c.db.name().to_owned()
        } else {
            format!("{}_tenth", c.db.name())
        };
        summary[key] = c.json();
    }
    println!("{summary}");
    Ok(())
}

/// Loads one database and measures both sides on it.
async fn measure(opts: &Options, db: Db, leads: usize, dir: &Path, binary: &Path) -> Result<Case> {
    let (url, schema) = match db {
        Db::Sqlite => {
            let file = dir.join(format!("report-{leads}.db"));
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", file.display()));
            }
            (format!("sqlite://{}?mode=rwc", file.display()), None)
        }
        Db::Postgres => {
            let base = opts.database.clone().unwrap_or_default();
            let schema = format!("leadloop_bench_report_{}_{leads}", std::process::id());
            let mut conn = {
                use sqlx::Connection as _;
                sqlx::PgConnection::connect(&base)
                    .await
                    .context("connecting to --database")?
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            )))
            .execute(&mut conn)
            .await?;
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{sep}options=-csearch_path%3D{schema}"),
                Some((base, schema)),
            )
        }
    };
    let result = measure_on(opts, db, leads, dir, binary, &url).await;
    if let Some((base, schema)) = schema {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut conn)
            .await;
        }
    }
    result
}

async fn measure_on(
    opts: &Options,
    db: Db,
    leads: usize,
    dir: &Path,
    binary: &Path,
    url: &str,
) -> Result<Case> {
    // The schema, through the store.
    let store = leadloop::store::Store::connect(url, 1).await?;
    store.close().await;
    let t = Instant::now();
    let events = load(db, url, leads, opts.events_per_lead).await?;
    let load_s = t.elapsed().as_secs_f64();

    let config = dir.join(format!("leadloop-{}-{leads}.toml", db.name()));
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n\n[maildir]\npath = \"{}\"\n\n[policy]\ntimezone = \"Europe/Berlin\"\n",
            dir.join("inbox").display()
        ),
    )?;

    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    // Warm-up of each side, checking that the report counts every lead.
    reference(&pool).await?;
    let (_, _, out) = report(binary, &config)?;
    let rows: Value = serde_json::from_str(&out).context("the report's JSON")?;
    let counted: i64 = rows
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["leads"].as_i64()).sum())
        .unwrap_or(0);
    if usize::try_from(counted).ok() != Some(leads) {
        bail!("the report counted {counted} leads of {leads}");
    }
    let mut report_runs = Vec::new();
    let mut reference_runs = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..opts.runs.max(1) {
        reference_runs.push(reference(&pool).await?);
        let (s, rss_kib, _) = report(binary, &config)?;
        report_runs.push(s);
        #[allow(clippy::cast_precision_loss)]
        let mb = rss_kib as f64 / 1024.0;
        peak = peak.max(mb);
    }
    pool.close().await;
    Ok(Case {
        db,
        leads,
        events,
        report_s: median(report_runs),
        reference_s: median(reference_runs),
        peak_rss_mb: peak,
        load_s,
    })
}

/// The reference query's time.
async fn reference(pool: &sqlx::AnyPool) -> Result<f64> {
    let t = Instant::now();
    let rows = sqlx::query("SELECT channel, count(*) FROM leads GROUP BY channel")
        .fetch_all(pool)
        .await?;
    let s = t.elapsed().as_secs_f64();
    if rows.is_empty() {
        bail!("the reference counted no channels");
    }
    Ok(s)
}

/// Runs the report binary: its wall time, peak RSS in KiB and output.
fn report(binary: &Path, config: &Path) -> Result<(f64, u64, String)> {
    let t = Instant::now();
    let mut child = Command::new(binary)
        .args(["report", "channels", "--by", "month", "--format", "json"])
        .arg("--config")
        .arg(config)
        .env("LEADLOOP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting leadloop report")?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("the report's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    // VmHWM only grows: the last value read before the process exits is its peak, short of
    // what it allocates in its last millisecond (it is printing by then).
    let mut peak = 0;
    let status = loop {
        if let Ok(kib) = rss::peak_rss_kib_of(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = t.elapsed().as_secs_f64();
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("leadloop report failed ({status})");
    }
    Ok((elapsed, peak, out))
}

/// Fills the database: `leads` leads and `per_lead * leads` timeline rows in all; the total.
async fn load(db: Db, url: &str, leads: usize, per_lead: usize) -> Result<i64> {
    let n = leads;
    let now = Utc::now().timestamp_millis();
    let year = 365 * 86_400_000_i64;
    let t0 = now - year;
    let day = 86_400_000_i64;
    // Rows numbered x = 1..=n: SQLite counts with a recursive CTE, PostgreSQL with
    // generate_series.
    let rows = |count: String| match db {
        Db::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {count}) "
        ),
        Db::Postgres => format!("WITH c(x) AS (SELECT generate_series(1, {count})) "),
    };
    let from_leads = rows(n.to_string());
    let created = format!("({t0} + x * {year} / {n})");
    let mut sql = String::new();
    if db == Db::Sqlite {
        sql.push_str("PRAGMA synchronous = OFF;\n");
    }
    sql.push_str("BEGIN;\n");
    sql.push_str(&format!(
        "{from_leads} INSERT INTO leads (id, email, name, channel, owner, form, status, created_at, updated_at) \
         SELECT x, 'lead' || x || '@example.org', 'Lead ' || x, \
           CASE x % 8 WHEN 0 THEN 'direct' WHEN 1 THEN 'linkedin' WHEN 2 THEN 'webinar' WHEN 3 THEN 'google-ads' \
             WHEN 4 THEN 'newsletter' WHEN 5 THEN 'referral' WHEN 6 THEN 'events' ELSE 'partner' END, \
           CASE WHEN x % 5 = 0 THEN 'owner' || (x % 7) || '@company.com' END, \
           CASE WHEN x % 3 = 0 THEN 'Contact form' END, 'new', {created}, {created} FROM c;\n"
    ));
    // The inquiry of every lead, a reply from 30 %.
    sql.push_str(&format!(
        "{from_leads} INSERT INTO inbound_messages (mailbox, uidvalidity, uid, dedupe_key, kind, lead_email, subject, size, recorded_at, detail) \
         SELECT 'INBOX', 1, x, 'inquiry-' || x, 'inquiry', 'lead' || x || '@example.org', 'Inquiry', 2000, {created}, '{{}}' FROM c;\n"
    ));
    sql.push_str(&format!(
        "{from_leads} INSERT INTO inbound_messages (mailbox, uidvalidity, uid, dedupe_key, kind, lead_email, subject, size, recorded_at, detail) \
         SELECT 'INBOX', 1, {n} + x, 'reply-' || x, 'reply', 'lead' || x || '@example.org', 'Re: Inquiry', 2000, {created} + {day} * (1 + x % 5), '{{}}' \
         FROM c WHERE x % 10 < 3;\n"
    ));
    // A hand-off queued for 20 %.
    sql.push_str(&format!(
        "{from_leads} INSERT INTO handoffs (lead_id, kind, why, token, state, created_at, updated_at) \
         SELECT x, 'handoff', 'replied', 'h' || x, 'queued', {created} + {day} * (1 + x % 5), {created} + {day} * (1 + x % 5) \
         FROM c WHERE x % 10 < 2;\n"
    ));
    // A verdict for 40 %: qualified, unqualified (three reasons), customer, or not now.
    sql.push_str(&format!(
        "{from_leads} INSERT INTO verdicts (lead_id, verdict, reason, by_addr, source, at) \
         SELECT x, CASE (x / 3) % 4 WHEN 0 THEN 'qualified' WHEN 1 THEN 'unqualified' WHEN 2 THEN 'customer' ELSE 'not_now' END, \
           CASE WHEN (x / 3) % 4 = 1 THEN CASE x % 3 WHEN 0 THEN 'no budget' WHEN 1 THEN 'timing' ELSE 'bad fit' END END, \
           'sales@company.com', 'mail', {created} + {day} * (2 + x % 20) \
         FROM c WHERE x % 10 < 4;\n"
    ));
    sql.push_str("COMMIT;\n");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .context("loading leads, messages, hand-offs and verdicts")?;
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM inbound_messages) + (SELECT COUNT(*) FROM handoffs) + (SELECT COUNT(*) FROM verdicts)",
    )
    .fetch_one(&pool)
    .await?;
    let total = i64::try_from(n * per_lead).unwrap_or(i64::MAX);
    let rest = total - written;
    if rest > 0 {
        let from_rest = rows(rest.to_string());
        let mut sql = String::new();
        if db == Db::Sqlite {
            sql.push_str("PRAGMA synchronous = OFF;\n");
        }
        sql.push_str(&format!(
            "BEGIN;\n{from_rest} INSERT INTO events (lead_id, at, kind, detail) \
             SELECT 1 + x % {n}, {t0} + x % {year}, \
               CASE x % 4 WHEN 0 THEN 'enrolled' WHEN 1 THEN 'soft_bounce' WHEN 2 THEN 'paused' ELSE 'owner' END, '{{}}' FROM c;\nCOMMIT;\n"
        ));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .context("loading events")?;
    }
    // Statistics (and on PostgreSQL the visibility map index-only scans need), for both sides.
    let tidy = match db {
        Db::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;",
        Db::Postgres => "VACUUM ANALYZE",
    };
    sqlx::raw_sql(tidy).execute(&pool).await?;
    pool.close().await;
    Ok(written + rest.max(0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
