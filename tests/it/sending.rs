//! `leadloop sending pause|resume|status` and what the rest of the program says and does while
//! sending is paused: the real binary, a real SMTP peer (smtp-sink), the test database.

use std::time::{Duration, Instant};

use chrono::Utc;
use leadloop::store::OutboxState;

use crate::send::{daemon_config, plain, sink_recipients};
use crate::smtp_sink::SmtpSink;
use crate::support::{run_cli, test_store, with_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_status_resume_and_run_once_while_paused() {
    let (store, db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, sink.port());

    // A fresh database is running.
    let (code, out) = run_cli(&config, &["sending", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("sending is running"), "{out}");
    let (_, out) = run_cli(&config, &["sending", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["paused"], false, "{v}");
    assert_eq!(v["waiting"], 0, "{v}");

    let (code, out) = run_cli(
        &config,
        &["sending", "pause", "--reason", "DNS change tonight"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sending paused"), "{out}");
    let (_, out) = run_cli(&config, &["sending", "pause"]);
    assert!(
        out.contains("already paused") && out.contains("DNS change tonight"),
        "the first pause is kept: {out}"
    );
    let (_, out) = run_cli(&config, &["sending", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["paused"], true, "{v}");
    assert_eq!(v["by"], "cli", "{v}");
    assert_eq!(v["reason"], "DNS change tonight", "{v}");
    assert!(v["since"].as_str().unwrap().ends_with('Z'), "{v}");

    // Due mail waits, and every view says why.
    let id = store
        .enqueue(&plain(None, 1, "ana@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 messages sent"), "{out}");
    assert!(
        out.contains("sending is paused") && out.contains("sending resume"),
        "{out}"
    );
    let (_, out) = run_cli(&config, &["outbox", "list"]);
    assert!(out.starts_with("sending is paused"), "{out}");
    let (_, out) = run_cli(&config, &["outbox", "list", "--json"]);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["state"], "pending", "JSON lines stay objects: {out}");
    assert_eq!(sink.count(), 0);
    let (_, out) = run_cli(&config, &["sending", "status"]);
    assert!(out.contains("1 messages waiting"), "{out}");

    let (code, out) = run_cli(&config, &["sending", "resume"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sending resumed (1 messages waiting)"),
        "{out}"
    );
    let (_, out) = run_cli(&config, &["sending", "resume"]);
    assert!(out.contains("was not paused"), "{out}");
    let (_, out) = run_cli(&config, &["run", "--once"]);
    assert!(out.contains("1 messages sent"), "{out}");
    assert!(!out.contains("paused"), "{out}");
    assert_eq!(
        store.outbox_entry(id).await.unwrap().unwrap().state,
        OutboxState::Sent
    );
    assert_eq!(sink_recipients(&sink), ["ana@example.org"]);
}

/// A sink that takes a second per message, a daemon configuration for it (waiting up to 10 s
/// for its answers), and `total` messages due in the outbox to `PREFIXn@example.org`.
struct SlowSink {
    store: leadloop::store::Store,
    sink: SmtpSink,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _db: crate::support::TestDb,
}

impl SlowSink {
    async fn new(total: i64, prefix: &str) -> SlowSink {
        let (store, db) = test_store().await;
        let sink = SmtpSink::start(&["-w", "1"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = daemon_config(dir.path(), &db.url, sink.port());
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("timeout = \"1s\"", "timeout = \"10s\"");
        std::fs::write(&config, text).unwrap();
        let msgs: Vec<_> = (0..total)
            .map(|n| plain(None, n, &format!("{prefix}{n}@example.org")))
            .collect();
        store.enqueue_many(&msgs, Utc::now()).await.unwrap();
        SlowSink {
            store,
            sink,
            config,
            _dir: dir,
            _db: db,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_honours_a_pause_within_a_second() {
    // 8 connections send about 8 a second, so the daemon is mid-stream when the pause comes.
    let total = 300;
    let SlowSink {
        store,
        sink,
        config,
        _dir,
        _db,
    } = SlowSink::new(total, "p").await;
    let mut daemon = Daemon(with_config(&config, &["run"]).spawn());
    let wait_for = |n: usize, within: Duration| {
        let start = Instant::now();
        while sink.count() < n {
            if start.elapsed() > within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    assert!(wait_for(8, Duration::from_secs(30)), "nothing sent");

    // Paused by another process: the messages in flight finish (each within a second), and
    // the daemon's next claim sees the pause.
    assert_eq!(run_cli(&config, &["sending", "pause"]).0, 0);
    let at_pause = sink.count();
    std::thread::sleep(Duration::from_millis(4000));
    let settled = sink.count();
    assert!(
        settled <= at_pause + 8,
        "at most the 8 in flight finish: {at_pause} -> {settled}"
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(sink.count(), settled, "sent while paused");
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("sending"), None, "{counts:?}");
    assert!(settled < total as usize);

    // Resumed: the daemon notices within about a second and goes on (each message then takes
    // the sink's second; the margin is for a loaded machine).
    assert_eq!(run_cli(&config, &["sending", "resume"]).0, 0);
    assert!(
        wait_for(settled + 1, Duration::from_secs(8)),
        "not resumed: {} sent",
        sink.count()
    );
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon exited");
    let _ = std::process::Command::new("kill")
        .arg(daemon.0.id().to_string())
        .status();
    assert!(daemon.0.wait().unwrap().success());
}

/// The kill switch across daemons: two daemon processes share one database and one sink
/// (PostgreSQL in the suite's second pass, where daemons scale out); `sending pause` from a
/// third process stops both. No transaction may start at the sink later than a second after
/// the pause was asked for; after `sending resume` every message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_every_daemon_on_the_database_within_a_second() {
    let total = 240;
    let SlowSink {
        store,
        sink,
        config,
        _dir,
        _db,
    } = SlowSink::new(total, "k").await;

    // When each transaction first showed at the sink (smtp-sink creates its dump file when a
    // transaction starts).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        std::path::PathBuf,
        Instant,
    >::new()));
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (seen, watching, dump) = (seen.clone(), watching.clone(), sink.dump_dir());
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(entries) = std::fs::read_dir(&dump) {
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap();
                    for e in entries.flatten() {
                        seen.entry(e.path()).or_insert(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let mut first = Daemon(with_config(&config, &["run"]).spawn());
    let mut second = Daemon(with_config(&config, &["run"]).spawn());
    // Both daemons are sending: each has 8 connections, so more than 8 messages in flight at
    // once means the second one takes part.
    let start = Instant::now();
    let mut most_in_flight = 0;
    while most_in_flight <= 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never more than {most_in_flight} in flight: one daemon is not sending"
        );
        assert!(first.0.try_wait().unwrap().is_none(), "a daemon exited");
        assert!(second.0.try_wait().unwrap().is_none(), "a daemon exited");
        let counts = store.outbox_counts().await.unwrap();
        most_in_flight = most_in_flight.max(counts.get("sending").copied().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let asked = Instant::now();
    assert_eq!(run_cli(&config, &["sending", "pause"]).0, 0);
    std::thread::sleep(Duration::from_secs(4));
    let at_pause = sink.count();
    let after: Vec<Duration> = seen
        .lock()
        .unwrap()
        .values()
        .filter(|t| **t > asked)
        .map(|t| t.duration_since(asked))
        .collect();
    eprintln!(
        "the last transaction began {:?} after the pause was asked for",
        after.iter().max()
    );
    let late: Vec<&Duration> = after
        .iter()
        .filter(|d| **d > Duration::from_secs(1))
        .collect();
    assert!(
        late.is_empty(),
        "transactions started more than a second after the pause: {late:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.count(), at_pause, "sent while paused");
    assert!(
        at_pause < total as usize,
        "everything was sent before the pause"
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("sending"), None, "{counts:?}");

    // Resumed: both go on, and the rest arrives once each.
    assert_eq!(run_cli(&config, &["sending", "resume"]).0, 0);
    let start = Instant::now();
    loop {
        let counts = store.outbox_counts().await.unwrap();
        if counts.get("sent").copied().unwrap_or(0) == total {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not all sent after the resume: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
    let received = sink_recipients(&sink);
    assert_eq!(received.len(), total as usize);
    let unique: std::collections::HashSet<_> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "a message arrived twice");
    for d in [&mut first, &mut second] {
        let _ = std::process::Command::new("kill")
            .arg(d.0.id().to_string())
            .status();
        assert!(d.0.wait().unwrap().success());
    }
}

/// The daemon process, killed if a test fails before stopping it (an orphan would hold the
/// test run's output open).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sends_as_the_first_sender_with_mime_headers() {
    let (_store, db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, sink.port());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[sender]]\nname = \"team\"\naddress = \"team@company.test\"\ndisplay_name = \"The Team\"\n\n\
         [[sender]]\nname = \"sales\"\naddress = \"sales@company.test\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let (code, out) = run_cli(&config, &["send-test", "--to", "me@example.org"]);
    assert_eq!(code, 0, "{out}");
    let dumped = String::from_utf8(sink.messages().remove(0)).unwrap();
    assert!(
        dumped.contains("X-Mail-Args: <team@company.test>"),
        "{dumped}"
    );
    assert!(
        dumped.contains("From: \"The Team\" <team@company.test>"),
        "{dumped}"
    );
    assert!(dumped.contains("MIME-Version: 1.0"), "{dumped}");
    assert!(dumped.contains("Content-Transfer-Encoding:"), "{dumped}");
}

#[test]
fn check_refuses_hosts_that_cannot_be_connected_to_and_a_breaker_of_one() {
    let dir = tempfile::tempdir().unwrap();
    for (host, ok) in [
        ("[::1]", true),
        ("127.0.0.1", true),
        ("mail.example.com", true),
        ("::1", false),
        ("[::1", false),
        ("[mail.example.com]", false),
        ("mail example", false),
    ] {
        let config = daemon_config(dir.path(), "sqlite://x.db?mode=rwc", 2525);
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("host = \"127.0.0.1\"", &format!("host = {host:?}"))
            .replace("tls = \"none\"", "tls = \"starttls\"");
        std::fs::write(&config, text).unwrap();
        let (code, out) = run_cli(&config, &["check"]);
        assert_eq!(code == 0, ok, "{host}: {out}");
        if !ok {
            assert!(out.contains("smtp.host"), "{host}: {out}");
        }
    }
    for (value, ok) in [("0", true), ("1", false), ("2", true), ("-1", false)] {
        let config = daemon_config(dir.path(), "sqlite://x.db?mode=rwc", 2525);
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("pause_after_refusals = {value}\n"));
        std::fs::write(&config, text).unwrap();
        let (code, out) = run_cli(&config, &["check"]);
        assert_eq!(code == 0, ok, "{value}: {out}");
        if value == "1" {
            assert!(out.contains("smtp.pause_after_refusals"), "{out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_even_when_its_row_was_deleted_by_hand() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, 2525);
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query("DELETE FROM sending_control")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    assert!(store.sending_paused().await.unwrap().is_none());
    assert_eq!(run_cli(&config, &["sending", "pause"]).0, 0);
    assert!(store.sending_paused().await.unwrap().is_some());
    assert_eq!(run_cli(&config, &["sending", "resume"]).0, 0);
    assert!(store.sending_paused().await.unwrap().is_none());
}
