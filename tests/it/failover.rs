//! Several daemons on one database read each mailbox one at a time, under a lease
//! (`store::leases`): the real binary, a real Dovecot, the test database (SQLite, and
//! PostgreSQL in the suite's second pass, where daemons scale out across machines).

use std::time::{Duration, Instant};

use leadloop::store::Store;

use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, run_cli, test_db, with_config};

/// A daemon process, killed if the test fails before stopping it.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits until `holder`'s lease names the process `pid`, or fails after `within`.
async fn wait_for_holder(store: &Store, mailbox: &str, pid: u32, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(l) = store.mailbox_lease(mailbox).await.unwrap()
            && l.holder.contains(&format!(":{pid}:"))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "process {pid} never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn recorded(store: &Store, mailbox: &str) -> usize {
    store.inbound(mailbox).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_stands_by_and_takes_over_when_the_reader_dies() {
    let dovecot = crate::support::start_dovecot().await;
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    // poll_interval is one second: the lease lasts 1.5 s and a standby tries every 0.5 s.
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap(&dovecot, "implicit", "")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let c = leadloop::config::Config::load(&config).unwrap();
    let mailbox = match &c.mailboxes[0].source {
        leadloop::config::SourceConfig::Imap(i) => leadloop::ingest::imap_mailbox_name(i),
        leadloop::config::SourceConfig::Maildir(_) => unreachable!(),
    };

    let mut first = Daemon(with_config(&config, &["run"]).spawn());
    wait_for_holder(&store, &mailbox, first.0.id(), Duration::from_secs(30)).await;
    let second = Daemon(with_config(&config, &["run"]).spawn());
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    let start = Instant::now();
    while recorded(&store, &mailbox).await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The second daemon stands by: the first keeps the lease across its renewals.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lease = store.mailbox_lease(&mailbox).await.unwrap().unwrap();
    assert!(
        lease.holder.contains(&format!(":{}:", first.0.id())),
        "the lease changed hands while its holder lived: {lease:?}"
    );
    // With a daemon reading, `run --once` leaves the mailbox to it.
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("being read by another daemon"), "{out}");

    // The reader dies without a word; mail keeps coming.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let killed = Instant::now();
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    let took_over = wait_for_holder(&store, &mailbox, second.0.id(), Duration::from_secs(10)).await;
    while recorded(&store, &mailbox).await < 2 {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the mail that came after the kill was not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = killed.elapsed();
    eprintln!(
        "failover: lease taken over {took_over:?} after the kill, the new mail recorded after {read:?}"
    );
    assert!(
        took_over <= Duration::from_millis(2000 + 500),
        "taken over after {took_over:?}, more than two poll intervals"
    );
    assert_eq!(recorded(&store, &mailbox).await, 2, "every message once");

    // A clean stop gives the lease up at once.
    let mut second = second;
    let _ = std::process::Command::new("kill")
        .arg(second.0.id().to_string())
        .status();
    assert!(second.0.wait().unwrap().success());
    assert_eq!(store.mailbox_lease(&mailbox).await.unwrap(), None);
    dovecot.append("INBOX", &inquiry(3)).unwrap();
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 recorded"), "{out}");
}

/// Caps are exact across daemons: three `run --once` processes schedule the same due steps
/// at once, and the per-domain cap still holds, because each settling transaction checks the
/// counters again under their locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_when_several_schedulers_race() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &[(
                "welcome",
                "[enroll]\nkinds = [\"inquiry\"]\n\n\
                 [[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Welcome\"\n",
            )],
            &[("hello.txt", "Hello {{ lead.first_name }}.\n")],
        )
        .raw("[policy]\nper_domain_per_day = 40\n")
        .write();
    let leads = 150;
    for n in 0..leads {
        let text = format!(
            "From: P{n} <p{n}@example.org>\r\nTo: leads@company.com\r\nSubject: A question\r\n\
             Message-ID: <q{n}@example.org>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n\
             Could you send me a quote?\r\n"
        );
        std::fs::write(dir.path().join(format!("inbox/new/{n}.eml")), text).unwrap();
    }
    // Recorded and enrolled while sending is paused: no step is decided yet.
    assert_eq!(run_cli(&config, &["sending", "pause"]).0, 0);
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{leads} recorded")), "{out}");
    assert_eq!(run_cli(&config, &["sending", "resume"]).0, 0);

    let runs: Vec<_> = (0..3)
        .map(|_| with_config(&config, &["run", "--once"]).spawn())
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let store = Store::connect(&db.url, 2).await.unwrap();
    let counts = store.outbox_counts().await.unwrap();
    let total: i64 = counts.values().sum();
    assert_eq!(
        total, 40,
        "the per-domain cap of 40 across three schedulers: {counts:?}"
    );
    let sent = std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count());
    assert_eq!(sent, 40, "{counts:?}");
}
