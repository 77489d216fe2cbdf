//! The daemon as a process: killed with SIGKILL mid-batch it loses and repeats nothing;
//! SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leadloop::store::Store;

use crate::ingest_imap::{Setup, inquiry};
use crate::support::with_config;

fn spawn_daemon(s: &Setup, once: bool) -> Child {
    let args: &[&str] = if once { &["run", "--once"] } else { &["run"] };
    with_config(&s.config_path, args).spawn()
}

async fn recorded(store: &Store, mailbox: &str) -> usize {
    store.inbound(mailbox).await.map(|v| v.len()).unwrap_or(0)
}

async fn wait_until_some_recorded(store: &Store, mailbox: &str, total: usize) -> usize {
    let start = Instant::now();
    loop {
        let n = recorded(store, mailbox).await;
        if n > 0 {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing recorded in time"
        );
        assert!(n < total);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_records_every_message_once() {
    let s = Setup::new("implicit", "batch_size = 25").await;
    let total = 2000;
    s.dovecot.load_maildir((1..=total).map(inquiry)).unwrap();
    let store = Store::connect(&s.db.url, 2).await.unwrap();
    let mailbox = s.mailbox();

    let mut daemon = spawn_daemon(&s, false);
    let seen = wait_until_some_recorded(&store, &mailbox, total as usize).await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().unwrap();
    let partial = recorded(&store, &mailbox).await;
    assert!(partial >= seen);
    assert!(
        partial < total as usize,
        "the kill came after everything was recorded; nothing tested"
    );
    let cursor = store
        .mailbox_cursor(&mailbox)
        .await
        .unwrap()
        .map_or(0, |c| c.last_uid);
    assert_eq!(
        cursor as usize, partial,
        "the cursor matches exactly what is recorded"
    );

    let status = spawn_daemon(&s, true).wait().unwrap();
    assert!(status.success());
    let inbound = store.inbound(&mailbox).await.unwrap();
    let uids: Vec<i64> = inbound.iter().filter_map(|m| m.uid).collect();
    assert_eq!(
        uids,
        (1..=i64::from(total)).collect::<Vec<_>>(),
        "every message exactly once"
    );
    let leads = store.list_leads(&Default::default()).await.unwrap();
    let inquiries = inbound.iter().filter(|m| m.kind == "inquiry").count();
    assert_eq!(leads.len(), inquiries, "one lead per inquiring person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_daemon_cleanly() {
    let s = Setup::new("implicit", "").await;
    s.append(&inquiry(1));
    let store = Store::connect(&s.db.url, 2).await.unwrap();
    let mut daemon = spawn_daemon(&s, false);
    wait_until_some_recorded(&store, &s.mailbox(), 2).await;
    // Let it settle into IDLE, then ask it to stop as systemd would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&daemon, "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "leadloop did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}

/// Log lines of a daemon started with its stderr piped, read on a thread.
pub(crate) fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no log line containing {needle:?}");
}

/// Sends a signal (`TERM`, `HUP`) to the daemon, as systemd would.
pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_valid_configuration_and_refuses_a_broken_one() {
    let s = Setup::new("implicit", "").await;
    let store = Store::connect(&s.db.url, 2).await.unwrap();
    let good = std::fs::read_to_string(&s.config_path).unwrap();
    let mailbox = s.mailbox();
    let mut daemon = with_config(&s.config_path, &["run"])
        .log("info")
        .env("NO_COLOR", "1")
        .spawn_logging_to_pipe();
    let lines = log_lines(&mut daemon);
    wait_for_line(&lines, "connected");

    std::fs::write(
        &s.config_path,
        good.replace("poll_interval = \"1s\"", "poll_interval = \"soon\""),
    )
    .unwrap();
    signal(&daemon, "HUP");
    wait_for_line(&lines, "reload refused");
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "a broken configuration must not stop the daemon"
    );
    s.append(&inquiry(1));
    wait_until_some_recorded(&store, &mailbox, 2).await;

    std::fs::write(
        &s.config_path,
        good.replace("poll_interval = \"1s\"", "poll_interval = \"2s\""),
    )
    .unwrap();
    signal(&daemon, "HUP");
    wait_for_line(&lines, "configuration reloaded");
    wait_for_line(&lines, "connected");
    s.append(&inquiry(2));
    let start = Instant::now();
    while recorded(&store, &mailbox).await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the reloaded daemon does not ingest"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    signal(&daemon, "TERM");
    assert!(daemon.wait().unwrap().success());
}
