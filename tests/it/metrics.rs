//! `/metrics` end to end: the daemon reads a private Dovecot, records an auto-reply and two
//! inquiries, enrolls the two new leads and sends their first step through smtp-sink; a
//! verdict comes by the CLI. A scrape of `[http] metrics_listen`, without any sign-in, then
//! shows each of those as a number, the text passes `promtool check metrics`, and the main
//! listener shows no metrics; a Dovecot restart then counts as an IMAP reconnect. A listener without `metrics_listen` serves them itself.

use std::time::Duration;

use leadloop::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::smtp_sink::SmtpSink;
use crate::support::{ConfigFile, lead_by_email, run_cli, start_dovecot, test_db, wait_for};

/// `GET path` on a new connection: the status and the body.
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting to the listener");
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("reading the answer");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The value of one series (`name{labels}` exactly as written) in the scraped text.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

/// Runs `promtool check metrics` on `text`: `Some(problems)` (empty when clean), or `None`
/// when promtool is not installed (`scripts/test` installs it with Debian's `prometheus`).
fn promtool_problems(text: &str) -> Option<String> {
    use std::io::Write as _;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    })
}

const INQUIRY_ANA: &str = "From: Ana Lima <ana@acme.example>\nTo: leads@company.com\n\
Subject: Pricing\nMessage-ID: <m1@acme.example>\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n\
Hello, what does it cost for 20 people?\n";

const INQUIRY_BEN: &str = "From: Ben Ode <ben@globex.example>\nTo: leads@company.com\n\
Subject: A demo\nMessage-ID: <m2@globex.example>\nDate: Fri, 27 Nov 2026 10:01:00 +0000\n\n\
Could we see a demo next week?\n";

const AUTOREPLY: &str = "From: Carl Out <carl@initech.example>\nTo: leads@company.com\n\
Subject: Out of office\nMessage-ID: <m3@initech.example>\nDate: Fri, 27 Nov 2026 10:02:00 +0000\n\
Auto-Submitted: auto-replied\n\nI am away until Monday.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_daemon_did_and_pass_promtool() {
    let dovecot = start_dovecot().await;
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(&[]))
        .await
        .unwrap()
        .expect("starting smtp-sink");
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    for sub in ["sequences", "templates"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::write(
        dir.path().join("templates/a.txt"),
        "Hello {{ lead.first_name }}.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sequences/welcome.toml"),
        "[enroll]\nkinds = [\"inquiry\"]\n\n\
         [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Welcome\"\n\n\
         [[step]]\nid = \"b\"\ndelay = \"3d\"\ntemplate = \"a\"\nsubject = \"Again\"\n",
    )
    .unwrap();
    let extra = format!(
        "idle = true\n\n\
         [identity]\naddresses = [\"leads@company.com\"]\ndomains = [\"company.com\"]\n\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n\
         [sequences]\ndir = \"sequences\"\ntemplates = \"templates\"\ninbox = \"leads@company.com\"\n\n\
         [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n",
        sink.port()
    );
    let config_path = ConfigFile::new(dir.path(), &db.url)
        .imap(&dovecot, "implicit", &extra)
        .write();
    for m in [AUTOREPLY, INQUIRY_ANA, INQUIRY_BEN] {
        dovecot
            .append("INBOX", m.replace('\n', "\r\n").as_bytes())
            .expect("APPEND");
    }

    // Opened (and migrated) before the daemon starts, so the two do not race to migrate.
    let store = leadloop::store::Store::connect(&db.url, 2).await.unwrap();
    let config = Config::load(&config_path).expect("a valid configuration");
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let daemon = tokio::spawn({
        let (path, token) = (config_path.clone(), shutdown.clone());
        async move { leadloop::daemon::run(&path, config, token, reload_rx).await }
    });

    // Both first steps sent and recorded as sent, then Sales' word on Ana.
    wait_for(|| async {
        let sent = store.outbox_counts().await.ok()?.get("sent").copied();
        (sent == Some(2)).then_some(())
    })
    .await;
    assert_eq!(sink.count(), 2);
    let (code, out) = run_cli(
        &config_path,
        &[
            "leads",
            "verdict",
            "ana@acme.example",
            "unqualified",
            "--reason",
            "no budget",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let channel = lead_by_email(&store, "ana@acme.example")
        .await
        .expect("Ana's lead")
        .channel;

    // No sign-in, no cookie: a plain GET.
    let (status, text) = get(metrics_port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let v = |series: &str| value(&text, series);
    assert_eq!(v("leadloop_messages_ingested_total{kind=\"inquiry\"}"), 2.0);
    assert_eq!(
        v("leadloop_messages_ingested_total{kind=\"autoreply\"}"),
        1.0
    );
    assert_eq!(v("leadloop_messages_ingested_total{kind=\"form\"}"), 0.0);
    assert_eq!(v("leadloop_leads_created_total"), 2.0);
    assert_eq!(v("leadloop_send_attempts_total{class=\"2xx\"}"), 2.0);
    assert_eq!(v("leadloop_send_attempts_total{class=\"4xx\"}"), 0.0);
    assert_eq!(v("leadloop_send_duration_seconds_count"), 2.0);
    assert!(v("leadloop_send_duration_seconds_sum") > 0.0);
    assert_eq!(v("leadloop_imap_reconnects_total"), 0.0);
    let last_read = v("leadloop_last_poll_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 120.0..=now + 1.0).contains(&last_read),
        "{last_read} vs {now}"
    );
    assert_eq!(v("leadloop_scheduler_lag_seconds_count"), 2.0);
    assert_eq!(
        v(&format!(
            "leadloop_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // From the database: both leads enrolled (Ana's enrollment ended by her verdict or
    // not, it is still counted once), both first steps sent, Ana judged.
    let enrolled: f64 = ["active", "done", "exited", "held"]
        .iter()
        .map(|s| v(&format!("leadloop_enrollments{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(enrolled, 2.0);
    assert!(v("leadloop_enrollments{state=\"active\"}") >= 1.0);
    assert_eq!(v("leadloop_outbox_messages{state=\"sent\"}"), 2.0);
    assert_eq!(v("leadloop_outbox_messages{state=\"pending\"}"), 0.0);
    assert_eq!(
        v(&format!(
            "leadloop_leads_judged{{channel=\"{channel}\",verdict=\"unqualified\"}}"
        )),
        1.0
    );
    assert!(
        !text.contains("leadloop_leads_handed_off{"),
        "nobody was handed off:\n{text}"
    );

    match promtool_problems(&text) {
        Some(problems) => assert_eq!(problems.trim(), "", "promtool check metrics:\n{text}"),
        None => eprintln!("SKIPPED: promtool check metrics (promtool is not installed)"),
    }

    // The metrics address has the health checks too; the main one shows no metrics.
    assert_eq!(get(metrics_port, "/healthz").await.0, 200);
    assert_eq!(get(port, "/healthz").await.0, 200);
    let (status, body) = get(port, "/metrics").await;
    assert_eq!(status, 404);
    assert!(!body.contains("leadloop_"), "{body}");

    // Dovecot dies and comes back: the cut session is counted as a reconnect.
    let mut dovecot = dovecot;
    tokio::task::block_in_place(|| dovecot.restart()).expect("restarting Dovecot");
    wait_for(|| async {
        let (_, text) = get(metrics_port, "/metrics").await;
        (value(&text, "leadloop_imap_reconnects_total") >= 1.0).then_some(())
    })
    .await;

    shutdown.cancel();
    drop(reload_tx);
    daemon.await.unwrap().expect("the daemon stops cleanly");
    store.close().await;
}

/// Without `metrics_listen`, the main listener answers `/metrics`, with the database's counts
/// on an empty database: every state at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_listener_serves_metrics_when_no_address_of_their_own_is_set() {
    let (store, _db) = crate::support::test_store().await;
    let last_read = leadloop::ingest::LastRead::new();
    let app = leadloop::http::App::with_metrics(
        store.clone(),
        last_read.subscribe(),
        Duration::from_secs(10),
        Some(leadloop::metrics::Metrics::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(leadloop::http::serve(listener, app, shutdown.clone()));

    let (status, text) = get(port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(value(&text, "leadloop_enrollments{state=\"active\"}"), 0.0);
    assert_eq!(
        value(&text, "leadloop_outbox_messages{state=\"failed\"}"),
        0.0
    );
    assert_eq!(value(&text, "leadloop_leads_created_total"), 0.0);
    if let Some(problems) = promtool_problems(&text) {
        assert_eq!(problems.trim(), "", "promtool check metrics:\n{text}");
    }

    shutdown.cancel();
    server.await.unwrap().unwrap();
    store.close().await;
}
