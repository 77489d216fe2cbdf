//! `leadloop-bench loop`: how long a lead's reply takes to reach Sales.
//!
//! The `leadloop` daemon runs as its own process (`leadloop run`, the binary built beside this
//! one) against a private Dovecot with IDLE on and a private `smtp-sink` that dumps what it
//! accepts, with a one-step sequence (delay 0) and `[handoff] default_owner` set.
//!
//! Setup, not measured: 1,000 inquiries from distinct leads are APPENDed to the INBOX; the
//! bench waits until smtp-sink has accepted the 1,000 first steps and reads each step's
//! Message-ID (and Reply-To) from the dumps, then empties the dump folder.
//!
//! Measured: 200 of those leads answer their step (`In-Reply-To` and `References` name it),
//! one APPEND every 50 ms on one IMAP connection, paced by a timer of its own. For each reply
//! the bench records t0, the instant just before the APPEND command is sent, and the instant a
//! finished hand-off about that lead (envelope recipient sales@company.com; the hand-off's
//! `In-Reply-To` is the reply's Message-ID) first appears in smtp-sink's dump folder, polled
//! every 5 ms by a thread of its own. A reply with no hand-off within 30 s of t0 is lost.
//!
//! The floor, in the same run: a bare async-imap client in IDLE on the same INBOX records when
//! the `EXISTS` for each APPEND arrives (from the same t0). Nothing leadloop does can be faster
//! than Dovecot telling an IDLE client; the rest of the hand-off time is leadloop's (fetch,
//! classify, record, hand-off card, outbox, SMTP).
//!
//! The daemon's peak RSS is its own `VmHWM` (over setup and measurement), read from
//! `/proc/PID/status` before it is stopped with SIGTERM.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use leadloop_testkit::dovecot::Dovecot;
use leadloop_testkit::smtp_sink::SmtpSink;
use serde_json::json;

use crate::daemon::Daemon;
use crate::scratch::TempDir;
use crate::{PASSWORD_ENV, reference, rss};

/// The Sales address hand-offs go to (`[handoff] default_owner`).
const SALES: &str = "sales@company.com";
/// A reply with no hand-off this long after its APPEND is lost.
const LOST_AFTER: Duration = Duration::from_secs(30);
/// How often the dump folder is looked at while measuring.
const DUMP_POLL: Duration = Duration::from_millis(5);
/// How long the setup may take (1,000 inquiries ingested, enrolled and their steps sent).
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Quiet time after the last first step, before measuring.
const SETTLE: Duration = Duration::from_secs(2);
/// The target the issue sets.
const TARGET_P99_MS: f64 = 2000.0;

/// What `leadloop-bench loop` was asked for.
pub struct Options {
    /// Leads enrolled, each with its first step sent.
    pub leads: usize,
    /// Replies measured (from as many distinct leads).
    pub replies: usize,
    /// Time between two reply APPENDs.
    pub every: Duration,
    /// The `leadloop` binary; default: the one beside this executable.
    pub daemon: Option<PathBuf>,
    /// Where the daemon's log goes; default: the bench's temp dir (removed at the end).
    pub daemon_log: Option<PathBuf>,
}

const SEQUENCE: &str = r#"
[enroll]
kinds = ["inquiry"]

[[step]]
id = "welcome"
delay = "0m"
template = "welcome"
subject = "Welcome, {{ lead.name }}"
"#;

const TEXT: &str = "Hi {{ lead.first_name or \"there\" }},\n\nthanks for reaching out. \
We read every message and someone from our team will answer you personally within a day.\n\n\
In the meantime, here is what teams like yours do with us: they answer new inquiries within\n\
the hour and follow up on every lead without a spreadsheet.\n\n\
Best regards,\n{{ sender.display_name }}\n";

fn lead_address(n: usize) -> String {
    format!("lead{n:05}@customer{:02}.example", n % 50)
}

fn lead_name(n: usize) -> String {
    format!("Lead {n:05}")
}

fn rfc2822_now() -> String {
    chrono::Utc::now().to_rfc2822()
}

/// A lead's first message: an inquiry, enrolled by the `welcome` sequence.
fn inquiry(n: usize) -> Vec<u8> {
    format!(
        "From: {name} <{addr}>\r\nTo: leads@company.com\r\nSubject: Pricing for 20 seats?\r\n\
         Message-ID: <inquiry-{n}@customer{d:02}.example>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello,\r\n\r\nwhat would your platform cost for 20 seats? We would like to see a demo\r\n\
         next week if possible.\r\n\r\nRegards,\r\n{name}\r\n",
        name = lead_name(n),
        addr = lead_address(n),
        d = n % 50,
        date = rfc2822_now(),
    )
    .into_bytes()
}

/// A lead's first step as smtp-sink accepted it.
#[derive(Clone, Debug)]
struct Step {
    message_id: String,
    reply_to: Option<String>,
}

/// One measured reply.
struct Reply {
    lead: String,
    message_id: String,
    raw: Vec<u8>,
}

/// Lead `n`'s answer to its first step, threaded to it.
fn reply(n: usize, step: &Step) -> Reply {
    let lead = lead_address(n);
    let message_id = format!("reply-{n}@customer{:02}.example", n % 50);
    let raw = format!(
        "From: {name} <{lead}>\r\nTo: {to}\r\nSubject: Re: Welcome, {name}\r\n\
         Message-ID: <{message_id}>\r\nIn-Reply-To: <{step}>\r\nReferences: <{step}>\r\n\
         Date: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Yes, please call me on Monday morning, we are ready to talk about 20 seats.\r\n\r\n\
         On {date}, The Company Team wrote:\r\n> Hi Lead,\r\n>\r\n> thanks for reaching out.\r\n",
        name = lead_name(n),
        to = step.reply_to.as_deref().unwrap_or("leads@company.com"),
        step = step.message_id,
        date = rfc2822_now(),
    )
    .into_bytes();
    Reply {
        lead,
        message_id,
        raw,
    }
}

/// The bench.
pub fn run(opts: &Options) -> Result<()> {
    if opts.replies == 0 || opts.replies > opts.leads {
        bail!("--replies must be between 1 and --leads ({})", opts.leads);
    }
    let bin = daemon_binary(opts.daemon.as_deref())?;
    let dc = Dovecot::start().context("starting the private Dovecot")?;
    let sink = SmtpSink::start(&[]).context("starting smtp-sink")?;
    let dir = TempDir::new("loop")?;
    let config = write_config(dir.path(), &dc, &sink)?;
    check_config(&bin, &config, dc.password())?;
    let log = opts
        .daemon_log
        .clone()
        .unwrap_or_else(|| dir.path().join("daemon.log"));
    let mut daemon = Daemon::spawn(&bin, &config, &[(PASSWORD_ENV, dc.password())], &log)?;
    eprintln!(
        "loop: daemon {} (pid {}, {}), Dovecot on {}:{} (IDLE), smtp-sink on 127.0.0.1:{}",
        bin.display(),
        daemon.pid(),
        built_ago(&bin),
        dc.host(),
        dc.tls_port(),
        sink.port()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let ca = dc.ca_pem_path();
    let target = reference::Target::dovecot(&dc, &ca);

    // Setup: the leads' inquiries, and their first steps out.
    let setup_start = Instant::now();
    let mut appender = rt
        .block_on(reference::connect(&target))
        .context("the bench's APPEND connection")?;
    rt.block_on(async {
        for n in 0..opts.leads {
            appender
                .append("INBOX", None, None, inquiry(n))
                .await
                .with_context(|| format!("APPEND of inquiry {n}"))?;
        }
        anyhow::Ok(())
    })?;
    eprintln!(
        "setup: {} inquiries appended in {:.1} s; waiting for their first steps",
        opts.leads,
        setup_start.elapsed().as_secs_f64()
    );
    let steps = wait_for_steps(&sink, opts.leads, &mut daemon)?;
    let setup_s = setup_start.elapsed().as_secs_f64();
    eprintln!(
        "setup: {} first steps accepted at smtp-sink after {setup_s:.1} s",
        steps.len()
    );
    std::thread::sleep(SETTLE);
    daemon.check_alive()?;
    sink.clear().context("emptying smtp-sink's dump folder")?;

    // The replies: `replies` leads spread evenly over the enrolled ones.
    let replies: Vec<Reply> = (0..opts.replies)
        .map(|i| {
            let n = i * opts.leads / opts.replies;
            let step = steps
                .get(&lead_address(n))
                .ok_or_else(|| anyhow!("no first step seen for {}", lead_address(n)))?;
            Ok(reply(n, step))
        })
        .collect::<Result<_>>()?;

    // The floor: a bare IDLE client, in IDLE before the first reply.
    let floor = rt.block_on(Floor::start(&target, replies.len()))?;

    // The watcher: the dump folder, on a thread of its own.
    let append_end: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let watcher = {
        let dir = sink.dump_dir();
        let by_id: HashMap<String, usize> = replies
            .iter()
            .enumerate()
            .map(|(i, r)| (r.message_id.clone(), i))
            .collect();
        let leads: Vec<String> = replies.iter().map(|r| r.lead.clone()).collect();
        let end = Arc::clone(&append_end);
        std::thread::spawn(move || watch_handoffs(&dir, &by_id, &leads, &end))
    };

    let cpu_start = rss::cpu_seconds_of(daemon.pid())?;
    eprintln!(
        "measure: {} replies, one every {} ms",
        replies.len(),
        opts.every.as_millis()
    );
    let appended = rt.block_on(append_replies(&mut appender, &replies, opts.every));
    *append_end.lock().expect("not poisoned") = Some(Instant::now());
    let watched = watcher
        .join()
        .map_err(|_| anyhow!("the dump watcher panicked"))?;
    let (t0, append_rtt) = appended?;
    let cpu_s = rss::cpu_seconds_of(daemon.pid())? - cpu_start;
    let idle_seen = floor.stop();
    let _ = rt.block_on(appender.logout());
    daemon.check_alive()?;
    let peak_rss_kib = rss::peak_rss_kib_of(daemon.pid())?;
    daemon.stop()?;

    // Figures.
    let handoff = Latencies::new(&t0, &watched.seen);
    let idle = Latencies::new(&t0, &idle_seen);
    let mut rtt_ms: Vec<f64> = append_rtt.iter().map(ms).collect();
    rtt_ms.sort_by(f64::total_cmp);
    let peak_rss_mb = peak_rss_kib as f64 / 1024.0;
    let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "loop: {} leads enrolled with their first step sent (setup {setup_s:.1} s); {} replies from \
         distinct leads, one APPEND every {} ms",
        opts.leads,
        replies.len(),
        opts.every.as_millis()
    );
    println!(
        "hand-off (APPEND sent -> hand-off accepted at smtp-sink): p50 {} ms, p99 {} ms, max {} ms; \
         lost (none within {} s): {}",
        fmt(handoff.p(0.50)),
        fmt(handoff.p(0.99)),
        fmt(handoff.max()),
        LOST_AFTER.as_secs(),
        handoff.lost
    );
    println!(
        "floor, bare async-imap IDLE client (APPEND sent -> EXISTS): p50 {} ms, p99 {} ms, max {} ms; \
         lost: {}",
        fmt(idle.p(0.50)),
        fmt(idle.p(0.99)),
        fmt(idle.max()),
        idle.lost
    );
    println!(
        "APPEND round trip: p50 {} ms; daemon: peak RSS {peak_rss_mb:.1} MB, {cpu_s:.2} CPU-s \
         while measuring; hand-offs seen twice: {}, other messages: {}",
        fmt(percentile(&rtt_ms, 0.50)),
        watched.duplicates,
        watched.others
    );
    let met = handoff.lost == 0 && handoff.p(0.99).is_some_and(|p| p < TARGET_P99_MS);
    println!(
        "target (p99 under {TARGET_P99_MS:.0} ms, 0 lost): {}",
        if met { "met" } else { "NOT met" }
    );
    // Tenths of a millisecond (or MB, or second) are as precise as these figures get.
    let r = |v: f64| (v * 10.0).round() / 10.0;
    let ro = |v: Option<f64>| v.map(r);
    let summary = json!({
        "bench": "loop",
        "leads": opts.leads,
        "replies": replies.len(),
        "every_ms": opts.every.as_millis() as u64,
        "handoff_p50_ms": ro(handoff.p(0.50)),
        "handoff_p99_ms": ro(handoff.p(0.99)),
        "handoff_max_ms": ro(handoff.max()),
        "lost": handoff.lost,
        "idle_p50_ms": ro(idle.p(0.50)),
        "idle_p99_ms": ro(idle.p(0.99)),
        "idle_lost": idle.lost,
        "append_p50_ms": ro(percentile(&rtt_ms, 0.50)),
        "duplicates": watched.duplicates,
        "setup_s": r(setup_s),
        "daemon_cpu_s": r(cpu_s),
        "peak_rss_mb": r(peak_rss_mb),
    });
    println!("{summary}");
    Ok(())
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of ascending `sorted`.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Per-reply delays from t0, in ms, ascending; the ones not seen within [`LOST_AFTER`] are
/// counted as lost and left out of the percentiles.
struct Latencies {
    sorted_ms: Vec<f64>,
    lost: usize,
}

impl Latencies {
    fn new(t0: &[Instant], seen: &[Option<Instant>]) -> Latencies {
        let mut sorted_ms = Vec::new();
        let mut lost = 0;
        for (start, seen) in t0.iter().zip(seen) {
            match seen.map(|s| s.saturating_duration_since(*start)) {
                Some(d) if d <= LOST_AFTER => sorted_ms.push(ms(&d)),
                _ => lost += 1,
            }
        }
        // Replies never sent (an APPEND failed) would be missing from t0: count them too.
        lost += seen.len().saturating_sub(t0.len());
        sorted_ms.sort_by(f64::total_cmp);
        Latencies { sorted_ms, lost }
    }

    fn p(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted_ms, p)
    }

    fn max(&self) -> Option<f64> {
        self.sorted_ms.last().copied()
    }
}

/// APPENDs the replies on one connection, one per `every` (a missed tick is caught up, so a
/// slow APPEND does not shift the later ones). Returns each reply's t0 (just before its APPEND
/// was sent) and each APPEND's round trip.
async fn append_replies(
    session: &mut reference::TlsSession,
    replies: &[Reply],
    every: Duration,
) -> Result<(Vec<Instant>, Vec<Duration>)> {
    let mut tick = tokio::time::interval(every);
    let mut t0 = Vec::with_capacity(replies.len());
    let mut rtt = Vec::with_capacity(replies.len());
    for (i, r) in replies.iter().enumerate() {
        tick.tick().await;
        let start = Instant::now();
        t0.push(start);
        session
            .append("INBOX", None, None, &r.raw)
            .await
            .with_context(|| format!("APPEND of reply {i}"))?;
        rtt.push(start.elapsed());
        if (i + 1) % 50 == 0 {
            eprintln!("measure: {} replies appended", i + 1);
        }
    }
    Ok((t0, rtt))
}

/// The bare IDLE client: SELECT INBOX, IDLE, and the arrival time of each EXISTS.
struct Floor {
    task: tokio::task::JoinHandle<Result<()>>,
    seen: Arc<Mutex<Vec<Option<Instant>>>>,
}

impl Floor {
    /// Connects, selects INBOX and enters IDLE; the `replies` messages APPENDed next get
    /// sequence numbers after the current `EXISTS`.
    async fn start(target: &reference::Target<'_>, replies: usize) -> Result<Floor> {
        let mut session = reference::connect(target)
            .await
            .context("the floor client's connection")?;
        let base = session
            .select("INBOX")
            .await
            .context("floor: SELECT INBOX")?
            .exists as usize;
        let mut idle = session.idle();
        idle.init().await.context("floor: IDLE")?;
        let seen = Arc::new(Mutex::new(vec![None; replies]));
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            // Replies before this one have been seen.
            let mut upto = 0usize;
            while upto < replies {
                let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(25 * 60));
                match wait.await.context("floor: waiting in IDLE")? {
                    IdleResponse::NewData(data) => {
                        let now = Instant::now();
                        if let Response::MailboxData(MailboxDatum::Exists(n)) = data.parsed() {
                            // One EXISTS may announce several APPENDs.
                            let last = (*n as usize).saturating_sub(base).min(replies);
                            let mut seen = record.lock().expect("not poisoned");
                            while upto < last {
                                seen[upto] = Some(now);
                                upto += 1;
                            }
                        }
                    }
                    IdleResponse::Timeout => {}
                    IdleResponse::ManualInterrupt => bail!("floor: the IDLE connection ended"),
                }
            }
            Ok(())
        });
        Ok(Floor { task, seen })
    }

    /// Stops the client (if still waiting) and returns what it saw.
    fn stop(self) -> Vec<Option<Instant>> {
        if self.task.is_finished() {
            // Its error, if any, shows as replies it did not see.
            drop(self.task);
        } else {
            self.task.abort();
        }
        self.seen.lock().expect("not poisoned").clone()
    }
}

/// What the dump watcher saw.
struct Watched {
    /// When each reply's hand-off was first seen finished in the dump folder.
    seen: Vec<Option<Instant>>,
    /// Hand-offs about a lead already seen.
    duplicates: usize,
    /// Other messages (not to Sales, or about no measured reply).
    others: usize,
}

/// Polls the dump folder every [`DUMP_POLL`] until every reply has its hand-off, or until
/// [`LOST_AFTER`] after the last APPEND (`append_end`, set when the APPENDs are done).
fn watch_handoffs(
    dir: &Path,
    by_id: &HashMap<String, usize>,
    leads: &[String],
    append_end: &Mutex<Option<Instant>>,
) -> Watched {
    let mut reader = DumpReader::new(dir);
    let mut w = Watched {
        seen: vec![None; leads.len()],
        duplicates: 0,
        others: 0,
    };
    let mut found = 0;
    loop {
        for dump in reader.finished() {
            let now = Instant::now();
            let to_sales = rcpts(&dump).any(|r| r == SALES);
            // The hand-off answers the reply: its In-Reply-To is the reply's Message-ID. Should
            // a template change that, the lead's address in the card still tells.
            let which = to_sales
                .then(|| {
                    header(&dump, "In-Reply-To")
                        .and_then(|id| by_id.get(angle(id)).copied())
                        .or_else(|| leads.iter().position(|l| dump.contains(l.as_str())))
                })
                .flatten();
            match which {
                Some(i) if w.seen[i].is_none() => {
                    w.seen[i] = Some(now);
                    found += 1;
                }
                Some(_) => w.duplicates += 1,
                None => w.others += 1,
            }
        }
        if found == leads.len() {
            break;
        }
        let end = *append_end.lock().expect("not poisoned");
        if end.is_some_and(|e| e.elapsed() > LOST_AFTER) {
            break;
        }
        std::thread::sleep(DUMP_POLL);
    }
    w
}

/// New finished dumps in smtp-sink's folder, each returned once.
struct DumpReader {
    dir: PathBuf,
    done: HashSet<OsString>,
}

impl DumpReader {
    fn new(dir: &Path) -> DumpReader {
        DumpReader {
            dir: dir.to_owned(),
            done: HashSet::new(),
        }
    }

    /// Dumps finished since the last call, as text with LF line ends. smtp-sink creates the
    /// file when a transaction starts and writes it as data arrives; a finished dump ends with
    /// an empty line. Unfinished ones are read again next time.
    fn finished(&mut self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            if self.done.contains(&name) {
                continue;
            }
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            if bytes.ends_with(b"\n\n") {
                self.done.insert(name);
                out.push(String::from_utf8_lossy(&bytes).replace("\r\n", "\n"));
            }
        }
        out
    }
}

/// The envelope recipients of a dump (smtp-sink's `X-Rcpt-Args` lines), lowercased.
fn rcpts(dump: &str) -> impl Iterator<Item = String> + '_ {
    dump.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("X-Rcpt-Args:"))
        .filter_map(|args| {
            let start = args.find('<')? + 1;
            let len = args[start..].find('>')?;
            Some(args[start..start + len].to_ascii_lowercase())
        })
}

/// A header field's value in a dump (first occurrence, unfolded lines only).
fn header<'a>(dump: &'a str, name: &str) -> Option<&'a str> {
    dump.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

fn angle(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// Waits until smtp-sink has accepted a first step for each of the `leads` leads; returns
/// each lead's step by address.
fn wait_for_steps(
    sink: &SmtpSink,
    leads: usize,
    daemon: &mut Daemon,
) -> Result<HashMap<String, Step>> {
    let want: HashSet<String> = (0..leads).map(lead_address).collect();
    let mut reader = DumpReader::new(&sink.dump_dir());
    let mut steps = HashMap::new();
    let start = Instant::now();
    let mut reported = Instant::now();
    while steps.len() < leads {
        for dump in reader.finished() {
            let Some(rcpt) = rcpts(&dump).find(|r| want.contains(r)) else {
                continue;
            };
            let Some(id) = header(&dump, "Message-ID") else {
                continue;
            };
            steps.insert(
                rcpt,
                Step {
                    message_id: angle(id).to_owned(),
                    reply_to: header(&dump, "Reply-To").map(|r| angle(r).to_owned()),
                },
            );
        }
        daemon.check_alive()?;
        if start.elapsed() > SETUP_TIMEOUT {
            bail!(
                "only {} of {leads} first steps reached smtp-sink in {} s; the daemon's log ends:\n{}",
                steps.len(),
                SETUP_TIMEOUT.as_secs(),
                daemon.log_tail()
            );
        }
        if reported.elapsed() > Duration::from_secs(5) {
            eprintln!("setup: {} of {leads} first steps accepted", steps.len());
            reported = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(steps)
}

/// The `leadloop` binary: the one given, or the one beside this executable.
pub(crate) fn daemon_binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()
            .context("locating the bench executable")?
            .with_file_name("leadloop"),
    };
    if !path.is_file() {
        bail!(
            "no leadloop binary at {}: build it beside the bench with \
             `cargo build --release --bin leadloop --bin leadloop-bench`, or pass --leadloop PATH",
            path.display()
        );
    }
    Ok(path)
}

/// "built N min ago", so a stale daemon binary is noticed.
fn built_ago(bin: &Path) -> String {
    std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or_else(
            || "build time unknown".to_owned(),
            |d| format!("built {} min ago", d.as_secs() / 60),
        )
}

/// The configuration, sequence and template, in `dir`; returns the configuration's path.
fn write_config(dir: &Path, dc: &Dovecot, sink: &SmtpSink) -> Result<PathBuf> {
    std::fs::create_dir_all(dir.join("sequences"))?;
    std::fs::create_dir_all(dir.join("templates"))?;
    std::fs::write(dir.join("sequences/welcome.toml"), SEQUENCE)?;
    std::fs::write(dir.join("templates/welcome.txt"), TEXT)?;
    let db = dir.join("leadloop.db");
    // IMAP as shipped but for IDLE: the default poll interval (60 s) is IDLE's timeout too, so
    // a reply reaches the daemon only through IDLE. One step, sent at once; a per-lead cap that
    // does not hold the step back and no per-domain cap; hand-offs to Sales by default.
    let text = format!(
        r#"
[database]
url = {url:?}

[imap]
host = {host:?}
port = {port}
tls = "implicit"
ca_file = {ca:?}
user = {user:?}
password_env = "{PASSWORD_ENV}"
idle = true

[identity]
addresses = ["leads@company.com"]
domains = ["company.com"]
sales = ["{SALES}"]

[handoff]
default_owner = "{SALES}"

[sequences]
dir = {seqs:?}
templates = {templates:?}
inbox = "leads@company.com"
reply_to_token = true

[policy]
per_lead_per_day = 5

[[sender]]
name = "team"
address = "hello@company.com"
display_name = "The Company Team"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
hello_name = "bench.company.com"
"#,
        url = format!("sqlite://{}?mode=rwc", db.display()),
        host = dc.host(),
        port = dc.tls_port(),
        ca = dc.ca_pem_path().display().to_string(),
        user = dc.user(),
        seqs = dir.join("sequences").display().to_string(),
        templates = dir.join("templates").display().to_string(),
        smtp = sink.port(),
    );
    let path = dir.join("leadloop.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `leadloop check` on the configuration: a daemon binary that does not know a key says so
/// here, not as hand-offs that never come.
fn check_config(bin: &Path, config: &Path, password: &str) -> Result<()> {
    let out = Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(config)
        .env_remove("LEADLOOP_CONFIG")
        .env(PASSWORD_ENV, password)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} check", bin.display()))?;
    if !out.status.success() {
        bail!(
            "`leadloop check` refused the bench's configuration ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(100.0));
        assert_eq!(percentile(&v, 0.99), Some(198.0));
        assert_eq!(percentile(&v, 1.0), Some(200.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn reads_dump_headers() {
        let dump = "X-Client-Addr: 127.0.0.1\nX-Rcpt-Args: <Sales@Company.com>\n\
                    Received: from x\nFrom: a@b\nIn-Reply-To: <reply-3@customer03.example>\n\n\
                    body\n\n";
        assert_eq!(rcpts(dump).collect::<Vec<_>>(), [SALES]);
        assert_eq!(
            header(dump, "in-reply-to").map(angle),
            Some("reply-3@customer03.example")
        );
        assert_eq!(header(dump, "Subject"), None);
    }

    #[test]
    fn a_lost_reply_is_left_out_of_the_percentiles() {
        let t = Instant::now();
        let t0 = [t, t, t];
        let seen = [
            Some(t + Duration::from_millis(10)),
            None,
            Some(t + LOST_AFTER + Duration::from_secs(1)),
        ];
        let l = Latencies::new(&t0, &seen);
        assert_eq!(l.lost, 2);
        assert_eq!(l.sorted_ms.len(), 1);
    }
}
