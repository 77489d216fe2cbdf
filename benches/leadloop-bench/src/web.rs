//! `leadloop-bench web`: the web view at 1,000,000 leads, against `/healthz` on the same
//! server in the same run.
//!
//! A SQLite database is loaded with set-based SQL (through the schema's triggers, as the
//! daemon's writes go): `--leads` leads over the last year on eight channels, in eight
//! statuses, half of them with one of eight owners; an inquiry message and an `enrolled` event
//! per lead, and a verdict for a fifth of them. A person is added to `[[user]]` and given a
//! password with `leadloop users add --password-stdin`, and the real `leadloop run` serves
//! the view as a child process (so its peak RSS is its own). The bench signs in once through
//! `/signin`, as a browser does, and every client sends that session's cookie.
//!
//! Then `--clients` clients, each on its own keep-alive connection, send one request after
//! another for a phase, three phases in turn, twice (so a change in the machine's load hits
//! every phase alike):
//! - `healthz`: `GET /healthz`, what the server costs with no work in the handler;
//! - `list`: the leads list filtered by a channel and a status, 50 a page. A client reads a
//!   filter's first page, or from a random day on (`until`), and follows the page's *next*
//!   link for up to ten pages, then takes another filter: pages spread over the whole result;
//! - `lead`: the page of a random lead (card, fields, verdicts, sequences, timeline).
//!
//! Each phase lasts a quarter of `--seconds`, so list and lead pages get `--seconds` between
//! them. Latency is from sending a request to having read the whole answer; every answer
//! must be `200`. The last line is one JSON object with `list_p99_ms`, `lead_p99_ms`,
//! `healthz_rps`, `list_rps`, `ratio` (= `list_rps / healthz_rps`) and `peak_rss_mb` (the
//! daemon's `VmHWM`, read before it is stopped).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use serde_json::json;
use tokio::net::TcpStream;

use crate::daemon::Daemon;
use crate::rss;
use crate::scratch::TempDir;

/// The options of `leadloop-bench web`.
pub struct Options {
    /// Leads loaded.
    pub leads: usize,
    /// Concurrent clients, one connection each.
    pub clients: usize,
    /// Seconds of list and lead pages together; `/healthz` gets half as long again.
    pub seconds: f64,
    /// The `leadloop` binary (default: the one beside this executable).
    pub leadloop: Option<PathBuf>,
    /// Keep the daemon's log in this file.
    pub daemon_log: Option<PathBuf>,
}

/// The channels leads are loaded on, which the list is filtered by.
const CHANNELS: [&str; 8] = [
    "direct",
    "linkedin",
    "webinar",
    "google-ads",
    "newsletter",
    "referral",
    "events",
    "partner",
];

/// The statuses the list is filtered by, each as often as leads have it (see `load`).
const LIST_STATUSES: [(&str, u32); 5] = [
    ("new", 50),
    ("engaged", 15),
    ("qualified", 10),
    ("unqualified", 10),
    ("customer", 5),
];

/// Pages a client reads by following *next* links before it takes another filter.
const CHAIN: usize = 10;

/// The person the bench signs in as.
const USER: &str = "bench@company.com";
/// Their password, given to `leadloop users add` on stdin.
const PASSWORD: &str = "bench-password-1234";

/// The three kinds of requests, each measured in phases of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Healthz,
    List,
    Lead,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Healthz => "healthz",
            Kind::List => "list",
            Kind::Lead => "lead",
        }
    }
}

/// What the clients of one kind measured, over all of its phases.
#[derive(Default)]
struct Measured {
    requests: u64,
    /// Requests per phase, to see that the rounds agree.
    rounds_rps: Vec<f64>,
    seconds: f64,
    latencies_us: Vec<u32>,
    daemon_cpu_s: f64,
    bytes: u64,
    /// List pages: how many had 50 leads.
    full_pages: u64,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies_us.sort_unstable();
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.latencies_us.len() as f64).ceil() as usize)
            .clamp(1, self.latencies_us.len());
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    /// The daemon's CPU time per request, in microseconds.
    fn cpu_us(&self) -> f64 {
        self.daemon_cpu_s * 1e6 / (self.requests.max(1) as f64)
    }
}

/// `leadloop-bench web`.
pub fn run(opts: &Options) -> Result<()> {
    if opts.leads < 1000 {
        bail!("--leads must be at least 1000");
    }
    if opts.clients == 0 || opts.seconds <= 0.0 {
        bail!("--clients and --seconds must be more than 0");
    }
    let binary = crate::sales_loop::daemon_binary(opts.leadloop.as_deref())?;
    let dir = TempDir::new("web")?;
    let db = dir.path().join("leadloop.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;

    let t = Instant::now();
    rt.block_on(load(&url, opts.leads))?;
    let load_s = t.elapsed().as_secs_f64();
    let db_mb = std::fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "loaded {} leads into SQLite in {load_s:.1}s ({db_mb:.0} MB)",
        opts.leads
    );

    let port = free_port()?;
    let config = dir.path().join("leadloop.toml");
    std::fs::create_dir_all(dir.path().join("inbox/cur"))?;
    std::fs::create_dir_all(dir.path().join("inbox/new"))?;
    std::fs::create_dir_all(dir.path().join("inbox/tmp"))?;
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n\n[maildir]\npath = \"{inbox}\"\n\n\
             [identity]\naddresses = [\"leads@company.com\"]\ndomains = [\"company.com\"]\n\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[user]]\nemail = \"{USER}\"\nrole = \"sales\"\n",
            inbox = dir.path().join("inbox").display(),
        ),
    )?;
    add_user(&binary, &config)?;
    let log = opts
        .daemon_log
        .clone()
        .unwrap_or_else(|| dir.path().join("daemon.log"));
    let mut daemon = Daemon::spawn(&binary, &config, &[], &log)?;
    let result = rt.block_on(measure(opts, port, &mut daemon));
    let peak_rss_kib = rss::peak_rss_kib_of(daemon.pid());
    let stopped = daemon.stop();
    let (mut measured, session_check) = result?;
    stopped?;
    let peak_rss_mb = peak_rss_kib? as f64 / 1024.0;

    let [healthz, list, lead] = &mut measured;
    let ratio = list.rps() / healthz.rps();
    for m in [&mut *healthz, &mut *list, &mut *lead] {
        let _ = m.percentile_ms(0.5);
    }
    let line = |name: &str, m: &mut Measured| {
        println!(
            "{name:<8} {:>8.0} req/s (rounds: {}), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, daemon CPU {:.0} µs/request, {:.1} KB/answer",
            m.rps(),
            m.rounds_rps
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            m.percentile_ms(0.5),
            m.percentile_ms(0.99),
            m.percentile_ms(1.0),
            m.cpu_us(),
            m.bytes as f64 / m.requests.max(1) as f64 / 1000.0,
        );
    };
    println!(
        "{} clients, one keep-alive connection each; signed in as {USER} ({session_check})",
        opts.clients
    );
    line("healthz", healthz);
    line("list", list);
    line("lead", lead);
    println!(
        "list pages with 50 leads: {} of {}",
        list.full_pages, list.requests
    );
    println!(
        "ratio list / healthz: {ratio:.3}; daemon peak RSS {peak_rss_mb:.1} MB (targets: ratio >= 0.2, p99 < 100 ms, RSS < 150 MB)"
    );
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    let summary = json!({
        "bench": "web",
        "leads": opts.leads,
        "clients": opts.clients,
        "seconds": opts.seconds,
        "list_p99_ms": r(list.percentile_ms(0.99)),
        "lead_p99_ms": r(lead.percentile_ms(0.99)),
        "healthz_rps": r(healthz.rps()),
        "list_rps": r(list.rps()),
        "lead_rps": r(lead.rps()),
        "ratio": r(ratio),
        "peak_rss_mb": r(peak_rss_mb),
        "list_p50_ms": r(list.percentile_ms(0.5)),
        "lead_p50_ms": r(lead.percentile_ms(0.5)),
        "healthz_p99_ms": r(healthz.percentile_ms(0.99)),
        "list_cpu_us": r(list.cpu_us()),
        "lead_cpu_us": r(lead.cpu_us()),
        "healthz_cpu_us": r(healthz.cpu_us()),
        "load_s": r(load_s),
    });
    println!("{summary}");
    Ok(())
}

/// Signs in, checks the pages answer, and runs the phases: healthz, list, lead, twice.
async fn measure(
    opts: &Options,
    port: u16,
    daemon: &mut Daemon,
) -> Result<([Measured; 3], String)> {
    let started = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(port, None).await
            && c.get("/healthz")
                .await
                .is_ok_and(|(s, _)| s == StatusCode::OK)
        {
            break;
        }
        daemon.check_alive()?;
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the daemon did not answer /healthz within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "daemon answering after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let cookie = Arc::new(sign_in(port).await?);
    // One page of each kind, checked for what it must show.
    let mut c = Client::connect(port, Some(Arc::clone(&cookie))).await?;
    let (status, body) = c.get("/leads?channel=webinar&status=new").await?;
    if status != StatusCode::OK || rows(&body) != 50 || next_link(&body).is_none() {
        bail!("the leads list answered {status} with {} rows", rows(&body));
    }
    let (status, body) = c.get("/leads/1").await?;
    if status != StatusCode::OK || !body.contains("lead1@example") {
        bail!("the first lead's page answered {status}");
    }
    let session_check = "list and lead pages checked".to_owned();

    let mut measured: [Measured; 3] = Default::default();
    let phase = Duration::from_secs_f64(opts.seconds / 4.0);
    for round in 0..2 {
        for (i, kind) in [Kind::Healthz, Kind::List, Kind::Lead]
            .into_iter()
            .enumerate()
        {
            daemon.check_alive()?;
            let cpu0 = rss::cpu_seconds_of(daemon.pid())?;
            let t = Instant::now();
            let mut tasks = Vec::new();
            for client in 0..opts.clients {
                let cookie = Arc::clone(&cookie);
                let seed = (round * 1000 + client) as u64 + 1;
                let leads = opts.leads;
                tasks.push(tokio::spawn(async move {
                    client_loop(kind, port, cookie, seed, leads, t + phase).await
                }));
            }
            let m = &mut measured[i];
            let mut requests = 0;
            for task in tasks {
                let done = task.await.context("a client task")??;
                requests += done.requests;
                m.latencies_us.extend(done.latencies_us);
                m.bytes += done.bytes;
                m.full_pages += done.full_pages;
            }
            let seconds = t.elapsed().as_secs_f64();
            m.daemon_cpu_s += rss::cpu_seconds_of(daemon.pid())? - cpu0;
            m.requests += requests;
            m.seconds += seconds;
            m.rounds_rps.push(requests as f64 / seconds);
            eprintln!(
                "round {}: {:<7} {requests} requests in {seconds:.2}s",
                round + 1,
                kind.name()
            );
        }
    }
    Ok((measured, session_check))
}

/// What one client did in one phase.
struct ClientDone {
    requests: u64,
    latencies_us: Vec<u32>,
    bytes: u64,
    full_pages: u64,
}

/// One client: one request after another on one connection until `until`. Any answer but
/// `200` fails the bench.
async fn client_loop(
    kind: Kind,
    port: u16,
    cookie: Arc<String>,
    seed: u64,
    leads: usize,
    until: Instant,
) -> Result<ClientDone> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut client = Client::connect(port, Some(cookie)).await?;
    let mut done = ClientDone {
        requests: 0,
        latencies_us: Vec::new(),
        bytes: 0,
        full_pages: 0,
    };
    // The list: the next page to read and how many of this filter were read.
    let mut next: Option<String> = None;
    let mut chain = 0;
    let today = Utc::now().date_naive();
    while Instant::now() < until {
        let path = match kind {
            Kind::Healthz => "/healthz".to_owned(),
            Kind::Lead => format!("/leads/{}", 1 + rng.below(leads as u64)),
            Kind::List => match next.take().filter(|_| chain < CHAIN) {
                Some(path) => {
                    chain += 1;
                    path
                }
                None => {
                    chain = 1;
                    let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
                    let status = pick_status(rng.below(90) as u32);
                    if rng.below(4) == 0 {
                        format!("/leads?channel={channel}&status={status}")
                    } else {
                        let day = today - chrono::Duration::days(rng.below(365) as i64);
                        format!("/leads?channel={channel}&status={status}&until={day}")
                    }
                }
            },
        };
        let t = Instant::now();
        let (status, body) = client.get(&path).await?;
        let us = t.elapsed().as_micros();
        if status != StatusCode::OK {
            bail!("GET {path} answered {status}");
        }
        done.requests += 1;
        done.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        done.bytes += body.len() as u64;
        if kind == Kind::List {
            if rows(&body) == 50 {
                done.full_pages += 1;
            }
            next = next_link(&body);
        }
    }
    Ok(done)
}

fn pick_status(mut n: u32) -> &'static str {
    for (status, weight) in LIST_STATUSES {
        if n < weight {
            return status;
        }
        n -= weight;
    }
    "new"
}

/// Rows of leads on a list page.
fn rows(body: &str) -> usize {
    body.matches("<tr>").count().saturating_sub(1)
}

/// The list page's *next* link, as a path.
fn next_link(body: &str) -> Option<String> {
    let end = body.find("\" rel=\"next\"")?;
    let start = body[..end].rfind("href=\"")? + 6;
    Some(
        body[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/"),
    )
}

/// xorshift64*: the same requests for the same seed, and no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// One keep-alive HTTP/1.1 connection to the daemon, with the session's cookie if any.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    port: u16,
    cookie: Option<Arc<String>>,
}

impl Client {
    async fn connect(port: u16, cookie: Option<Arc<String>>) -> Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            sender,
            port,
            cookie,
        })
    }

    async fn get(&mut self, path: &str) -> Result<(StatusCode, String)> {
        let (status, _, body) = self.send("GET", path, None, &[]).await?;
        Ok((status, body))
    }

    /// One request; its status, `Set-Cookie` headers and body.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: Option<String>,
        cookies: &[String],
    ) -> Result<(StatusCode, Vec<String>, String)> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("127.0.0.1:{}", self.port));
        let mut jar: Vec<&str> = cookies.iter().map(String::as_str).collect();
        if let Some(c) = &self.cookie {
            jar.push(c);
        }
        if !jar.is_empty() {
            request = request.header(header::COOKIE, jar.join("; "));
        }
        let body = match form {
            Some(f) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::new(Bytes::from(f))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self.sender.send_request(request.body(body)?).await?;
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .collect();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            set_cookies,
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

/// Signs in through the sign-in form, as a browser does; the session's `Cookie` pair.
async fn sign_in(port: u16) -> Result<String> {
    let mut c = Client::connect(port, None).await?;
    let (status, cookies, body) = c.send("GET", "/signin", None, &[]).await?;
    if status != StatusCode::OK {
        bail!("GET /signin answered {status}");
    }
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token on the sign-in form")?
        .to_owned();
    let form = format!(
        "csrf={}&email={}&password={}",
        encode(&csrf),
        encode(USER),
        encode(PASSWORD)
    );
    let (status, set, _) = c.send("POST", "/signin", Some(form), &cookies).await?;
    let session = set
        .into_iter()
        .find(|c| c.starts_with("leadloop_session="))
        .with_context(|| format!("signing in answered {status} without a session"))?;
    Ok(session)
}

/// Form encoding of `s`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `leadloop users add USER --password-stdin`.
fn add_user(binary: &Path, config: &Path) -> Result<()> {
    let mut child = Command::new(binary)
        .args(["users", "add", USER, "--password-stdin", "--config"])
        .arg(config)
        .env_remove("LEADLOOP_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting leadloop users add")?;
    child
        .stdin
        .take()
        .context("the stdin of leadloop users add")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "leadloop users add failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Loads `leads` leads, their messages, events and verdicts. No `ANALYZE`: the daemon never
/// runs it, so the planner works on a database the daemon wrote without statistics.
async fn load(url: &str, leads: usize) -> Result<()> {
    // The schema, through the store.
    let store = leadloop::store::Store::connect(url, 1).await?;
    store.close().await;
    let n = leads;
    let now = Utc::now().timestamp_millis();
    let year = 365 * 86_400_000_i64;
    let day = 86_400_000_i64;
    let t0 = now - year;
    let from =
        format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) ");
    let created = format!("({t0} + x * {year} / {n})");
    // Statuses in the shares `LIST_STATUSES` picks them by; the rest unsubscribed, bounced
    // or waiting for review.
    let status = "CASE WHEN (x * 7) % 100 < 50 THEN 'new' WHEN (x * 7) % 100 < 65 THEN 'engaged' \
         WHEN (x * 7) % 100 < 75 THEN 'qualified' WHEN (x * 7) % 100 < 85 THEN 'unqualified' \
         WHEN (x * 7) % 100 < 90 THEN 'customer' WHEN (x * 7) % 100 < 95 THEN 'unsubscribed' \
         WHEN (x * 7) % 100 < 98 THEN 'bounced' ELSE 'review' END";
    let channel = CHANNELS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("WHEN {i} THEN '{c}' "))
        .collect::<String>();
    let sql = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         BEGIN;
         {from} INSERT INTO leads (id, email, name, company, phone, channel, status, score, owner, form, fields, created_at, updated_at)
           SELECT x, 'lead' || x || '@example' || (x % 997) || '.org', 'Lead ' || x || ' Person',
                  CASE WHEN x % 3 = 0 THEN NULL ELSE 'Company ' || (x % 5000) END,
                  CASE WHEN x % 4 = 0 THEN '+49 30 ' || (1000000 + x) END,
                  CASE x % 8 {channel} END, {status}, (x * 13) % 100,
                  CASE WHEN x % 2 = 0 THEN 'owner' || (x % 8) || '@company.com' END,
                  CASE WHEN x % 3 = 0 THEN 'Contact form' END,
                  CASE WHEN x % 3 = 0 THEN '{{\"message\":\"We would like a demo for our team.\",\"team_size\":\"' || (x % 50) || '\"}}' ELSE '{{}}' END,
                  {created}, {created} FROM c;
         {from} INSERT INTO inbound_messages (mailbox, uidvalidity, uid, dedupe_key, kind, lead_email, subject, size, recorded_at, detail)
           SELECT 'INBOX', 1, x, 'inquiry-' || x, 'inquiry', 'lead' || x || '@example' || (x % 997) || '.org',
                  'Question about pricing for ' || x, 2000, {created}, '{{}}' FROM c;
         {from} INSERT INTO events (lead_id, at, kind, detail)
           SELECT x, {created} + 60000, 'enrolled', '{{\"sequence\":\"welcome\"}}' FROM c;
         {from} INSERT INTO verdicts (lead_id, verdict, reason, by_addr, source, at)
           SELECT x, CASE (x / 5) % 3 WHEN 0 THEN 'qualified' WHEN 1 THEN 'unqualified' ELSE 'customer' END,
                  CASE WHEN (x / 5) % 3 = 1 THEN CASE x % 3 WHEN 0 THEN 'no budget' WHEN 1 THEN 'timing' ELSE 'bad fit' END END,
                  'sales@company.com', 'mail', {created} + {day} * (2 + x % 20)
           FROM c WHERE x % 5 = 0;
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);"
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .context("loading leads, messages, events and verdicts")?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    if usize::try_from(count).ok() != Some(n) {
        bail!("loaded {count} leads of {n}");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_next_link_and_rows() {
        let body = "<table><thead><tr><th>E</th></tr></thead><tbody><tr><td>a</td></tr><tr><td>b</td></tr></tbody></table>\
                    <a href=\"/leads?channel=web&amp;page=1&amp;after=17.3\" rel=\"next\">Next page</a>";
        assert_eq!(rows(body), 2);
        assert_eq!(
            next_link(body).as_deref(),
            Some("/leads?channel=web&page=1&after=17.3")
        );
        assert_eq!(next_link("<p>no link</p>"), None);
    }

    #[test]
    fn statuses_are_picked_in_their_shares() {
        let total: u32 = LIST_STATUSES.iter().map(|(_, w)| w).sum();
        assert_eq!(total, 90);
        assert_eq!(pick_status(0), "new");
        assert_eq!(pick_status(49), "new");
        assert_eq!(pick_status(50), "engaged");
        assert_eq!(pick_status(89), "customer");
    }
}
