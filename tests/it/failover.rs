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

/// Every dump's Message-ID, in the order smtp-sink wrote them.
fn sink_message_ids(sink: &crate::smtp_sink::SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Message-ID: ")
                        .or_else(|| l.strip_prefix("Message-Id: "))
                })
                .map(|v| v.trim().trim_matches(['<', '>']).to_owned())
        })
        .collect()
}

/// Three daemons on one PostgreSQL database, one Dovecot and one smtp-sink, killed with
/// `SIGKILL` in turn (twelve times, every half second, each started again) while 5,000
/// messages are read and their steps sent:
/// every message is recorded once, no step reaches the sink twice, every step is either sent
/// or known to be interrupted, and the sender's daily cap (4,000 of the 5,000 due steps) holds
/// across the three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_killed_in_turn_lose_nothing_and_send_nothing_twice() {
    let db = test_db().await;
    if !db.url.starts_with("postgres") {
        eprintln!(
            "SKIPPED: several daemons scale out on PostgreSQL; this test runs in the PostgreSQL pass"
        );
        return;
    }
    let total: u32 = 5000;
    let cap = 4000;
    let dovecot = crate::support::start_dovecot().await;
    dovecot.load_maildir((1..=total).map(inquiry)).unwrap();
    let sink = crate::smtp_sink::SmtpSink::start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sequences")).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("sequences/welcome.toml"),
        "[enroll]\nkinds = [\"inquiry\"]\n\n\
         [[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Welcome\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/hello.txt"),
        "Hello {{ lead.first_name }}.\n",
    )
    .unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap(&dovecot, "implicit", "batch_size = 200")
        .identity(&["leads@company.com"], &["company.com"])
        .smtp(sink.port())
        .raw(&format!(
            "[sequences]\ndir = \"sequences\"\ntemplates = \"templates\"\n\n\
             [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\nper_day = {cap}\n"
        ))
        .write();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let c = leadloop::config::Config::load(&config).unwrap();
    let mailbox = match &c.mailboxes[0].source {
        leadloop::config::SourceConfig::Imap(i) => leadloop::ingest::imap_mailbox_name(i),
        leadloop::config::SourceConfig::Maildir(_) => unreachable!(),
    };

    let start = || Daemon(with_config(&config, &["run"]).spawn());
    let mut daemons = vec![start(), start(), start()];
    let began = Instant::now();
    let mut kills = 0;
    // Kill one every half second, round robin, and start it again at once, twelve times;
    // then wait until every message is recorded and the cap's worth of steps has left the
    // outbox's open states. The kills that came while work was left are what the test tests.
    let mut kills_while_working = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let counts = store.outbox_counts().await.unwrap();
        let open: i64 = ["pending", "retry", "sending"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum();
        let done: i64 = ["sent", "interrupted"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum();
        let recorded = recorded(&store, &mailbox).await;
        let finished = recorded == total as usize && open == 0 && done >= cap;
        if finished && kills >= 12 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "not finished: {recorded} recorded, outbox {counts:?}"
        );
        if kills < 12 {
            let i = kills % 3;
            daemons[i].0.kill().unwrap();
            daemons[i].0.wait().unwrap();
            daemons[i] = start();
            kills += 1;
            kills_while_working += usize::from(!finished);
        }
    }
    eprintln!(
        "three daemons: {kills} kills, {kills_while_working} of them while work was left, finished after {:?}",
        began.elapsed()
    );
    assert!(
        kills_while_working >= 6,
        "finished before the daemons were killed often enough to test anything"
    );
    // Let a last round settle, then stop them all.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for d in &mut daemons {
        let _ = std::process::Command::new("kill")
            .arg(d.0.id().to_string())
            .status();
        let _ = d.0.wait();
    }

    // Every message once.
    let inbound = store.inbound(&mailbox).await.unwrap();
    let mut uids: Vec<i64> = inbound.iter().filter_map(|m| m.uid).collect();
    uids.sort_unstable();
    assert_eq!(
        uids,
        (1..=i64::from(total)).collect::<Vec<_>>(),
        "every message exactly once"
    );
    // Every step once in the outbox, and the cap held: cap steps sent or interrupted, the
    // rest still waiting in their enrollments.
    let counts = store.outbox_counts().await.unwrap();
    let rows: i64 = counts.values().sum();
    assert_eq!(
        rows, cap,
        "the sender's cap across three daemons: {counts:?}"
    );
    let interrupted = counts.get("interrupted").copied().unwrap_or(0);
    let sent = counts.get("sent").copied().unwrap_or(0);
    assert_eq!(sent + interrupted, cap, "{counts:?}");
    // Never twice at the sink; every sent row arrived; nothing arrived that is not a row.
    let ids = sink_message_ids(&sink);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a step reached the sink twice");
    let sent_rows = store
        .list_outbox(Some(leadloop::store::OutboxState::Sent), cap as usize)
        .await
        .unwrap();
    for r in &sent_rows {
        assert!(
            unique.contains(&r.message_id.as_str().to_owned()),
            "{} is sent but not at the sink",
            r.message_id.as_str()
        );
    }
    assert!(
        ids.len() as i64 <= cap && ids.len() as i64 >= sent,
        "{} at the sink, {sent} sent, {interrupted} interrupted",
        ids.len()
    );
    eprintln!(
        "three daemons: {sent} sent, {interrupted} interrupted (of which {} reached the sink)",
        ids.len() as i64 - sent
    );
}
