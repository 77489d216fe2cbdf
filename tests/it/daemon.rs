//! The daemon as a process: killed with SIGKILL mid-batch it loses and repeats nothing;
//! SIGTERM stops it cleanly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leadloop::store::Store;

use crate::ingest_imap::{Setup, inquiry};

fn spawn_daemon(s: &Setup, once: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadloop"));
    cmd.arg("run").arg("--config").arg(&s.config_path);
    if once {
        cmd.arg("--once");
    }
    cmd.env("LEADLOOP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting leadloop")
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
    let pid = daemon.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
