//! Ingest against a real Dovecot: TLS, STARTTLS and plain loopback, the cursor across restarts,
//! UIDVALIDITY changes, server restarts, oversize messages, crashes mid-batch, and what happens
//! to processed mail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use leadloop::config::Config;
use leadloop::daemon::Source;
use leadloop::store::Store;
use tokio_util::sync::CancellationToken;

use crate::dovecot::Dovecot;
use crate::support::{ConfigFile, TestDb, test_db};

/// An inquiry from a distinct person.
pub fn inquiry(n: u32) -> Vec<u8> {
    format!(
        "From: Person {n} <person{n}@example.org>\r\n\
         To: leads@company.com\r\n\
         Subject: Question number {n}\r\n\
         Message-ID: <inquiry-{n}@example.org>\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello, could you send me a quote for {n} seats?\r\n\
         \r\n\
         Person {n}\r\n"
    )
    .into_bytes()
}

fn newsletter(n: u32) -> Vec<u8> {
    format!(
        "From: Weekly <news@newsletter.example>\r\n\
         To: leads@company.com\r\n\
         Subject: Issue {n}\r\n\
         Message-ID: <issue-{n}@newsletter.example>\r\n\
         List-Id: Weekly <weekly.newsletter.example>\r\n\
         Precedence: bulk\r\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         \r\n\
         This week's news.\r\n"
    )
    .into_bytes()
}

/// Everything a test needs: the server, a database, and a configuration for them.
pub struct Setup {
    pub dovecot: Dovecot,
    pub db: TestDb,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Setup {
    pub async fn new(tls: &str, extra: &str) -> Setup {
        let dovecot = crate::support::start_dovecot().await;
        let db = test_db().await;
        let dir = tempfile::tempdir().unwrap();
        let config_path = ConfigFile::new(dir.path(), &db.url)
            .imap(&dovecot, tls, extra)
            .identity(&["leads@company.com"], &["company.com"])
            .write();
        Setup {
            dovecot,
            db,
            _dir: dir,
            config_path,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("test configuration is valid")
    }

    pub async fn source(&self) -> (Source, Store) {
        let store = Store::connect(&self.db.url, 4).await.unwrap();
        (Source::new(&self.config(), store.clone()).unwrap(), store)
    }

    pub fn mailbox(&self) -> String {
        let c = self.config();
        match &c.mailboxes[0].source {
            leadloop::config::SourceConfig::Imap(i) => leadloop::ingest::imap_mailbox_name(i),
            leadloop::config::SourceConfig::Maildir(_) => unreachable!(),
        }
    }

    pub fn append(&self, raw: &[u8]) -> u32 {
        self.dovecot.append("INBOX", raw).expect("APPEND")
    }
}

async fn ingest_over(tls: &str) {
    let s = Setup::new(tls, "").await;
    s.append(&inquiry(1));
    s.append(&newsletter(1));
    s.append(&inquiry(2));
    let (source, store) = s.source().await;
    let cancel = CancellationToken::new();
    let report = source.sync_once(&cancel).await.expect("first sync");
    assert_eq!((report.fetched, report.recorded), (3, 3), "{tls}");

    let inbound = store.inbound(&s.mailbox()).await.unwrap();
    let kinds: Vec<_> = inbound.iter().map(|m| (m.uid, m.kind.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (Some(1), "inquiry"),
            (Some(2), "ignored"),
            (Some(3), "inquiry")
        ]
    );
    assert!(
        inbound[1]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("List-Id")
            || inbound[1].reason.is_some()
    );
    let lead = store
        .lead(&"person2@example.org".parse().unwrap())
        .await
        .unwrap()
        .expect("lead recorded");
    assert_eq!(lead.name.as_deref(), Some("Person 2"));

    // Only new mail is read on the next pass.
    s.append(&inquiry(3));
    let report = source.sync_once(&cancel).await.expect("second sync");
    assert_eq!((report.fetched, report.recorded), (1, 1));
    let report = source.sync_once(&cancel).await.expect("third sync");
    assert_eq!(report.fetched, 0);
    let cursor = store.mailbox_cursor(&s.mailbox()).await.unwrap().unwrap();
    assert_eq!(cursor.last_uid, 4);
}

#[tokio::test]
async fn ingests_over_implicit_tls() {
    ingest_over("implicit").await;
}

#[tokio::test]
async fn ingests_over_starttls() {
    ingest_over("starttls").await;
}

#[tokio::test]
async fn ingests_over_plain_loopback() {
    ingest_over("none").await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let s = Setup::new("implicit", "").await;
    // Same server, but trust only the public roots: the handshake must fail.
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let text = text
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&s.config_path, text).unwrap();
    let (source, store) = s.source().await;
    let err = source
        .sync_once(&CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );
    assert!(store.inbound(&s.mailbox()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_uidvalidity_change_rescans_without_duplicates() {
    let s = Setup::new("implicit", "").await;
    for n in 1..=3 {
        s.append(&inquiry(n));
    }
    let (source, store) = s.source().await;
    let cancel = CancellationToken::new();
    source.sync_once(&cancel).await.unwrap();
    let before = s.dovecot.uid_validity("INBOX").unwrap();
    let after = s.dovecot.change_uid_validity("INBOX").unwrap();
    assert_ne!(before, after);
    s.append(&inquiry(4));
    let report = source.sync_once(&cancel).await.unwrap();
    assert_eq!(
        report.fetched, 4,
        "everything is read again under the new UIDVALIDITY"
    );
    assert_eq!((report.recorded, report.duplicates), (1, 3));
    let cursor = store.mailbox_cursor(&s.mailbox()).await.unwrap().unwrap();
    assert_eq!((cursor.uidvalidity, cursor.last_uid), (after, 4));
    assert_eq!(store.inbound(&s.mailbox()).await.unwrap().len(), 4);
}

#[tokio::test]
async fn oversize_messages_are_recorded_as_ignored_without_being_fetched() {
    let s = Setup::new("implicit", "max_message_bytes = 4096").await;
    let mut big = inquiry(1);
    big.extend(
        std::iter::repeat_n(
            b"All work and no play makes a big message.\r\n".as_slice(),
            400,
        )
        .flatten(),
    );
    s.append(&big);
    s.append(&inquiry(2));
    let (source, store) = s.source().await;
    let report = source.sync_once(&CancellationToken::new()).await.unwrap();
    assert_eq!((report.recorded, report.oversize), (2, 1));
    let inbound = store.inbound(&s.mailbox()).await.unwrap();
    assert_eq!(inbound[0].kind, "ignored");
    assert!(
        inbound[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("max_message_bytes"),
        "{:?}",
        inbound[0].reason
    );
    assert_eq!(
        inbound[0].dedupe_key, "mid:inquiry-1@example.org",
        "the header was still read"
    );
    assert!(
        store
            .lead(&"person1@example.org".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(inbound[1].kind, "inquiry");
}

#[tokio::test]
async fn processed_mail_is_flagged_or_moved() {
    let s = Setup::new("implicit", "after = \"flag\"").await;
    s.append(&inquiry(1));
    let (source, _store) = s.source().await;
    source.sync_once(&CancellationToken::new()).await.unwrap();
    let cur = s.dovecot.maildir_path(s.dovecot.user()).join("cur");
    let names: Vec<String> = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(",S")), "{names:?}");

    let s = Setup::new("implicit", "after = \"move:Processed Leads\"").await;
    s.append(&inquiry(1));
    s.append(&inquiry(2));
    let (source, store) = s.source().await;
    source.sync_once(&CancellationToken::new()).await.unwrap();
    s.append(&inquiry(3));
    source.sync_once(&CancellationToken::new()).await.unwrap();
    let maildir = s.dovecot.maildir_path(s.dovecot.user());
    let count = |p: PathBuf| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        count(maildir.join("cur")) + count(maildir.join("new")),
        0,
        "INBOX is empty"
    );
    assert_eq!(
        count(maildir.join(".Processed Leads/cur")) + count(maildir.join(".Processed Leads/new")),
        3
    );
    assert_eq!(store.inbound(&s.mailbox()).await.unwrap().len(), 3);
}

/// A daemon stopped between recording a batch and flagging or moving it leaves that mail
/// untouched. The next pass tidies it even when no new mail came; before, only new mail
/// brought a move along, and a flag never came.
#[tokio::test]
async fn mail_recorded_before_a_stop_is_tidied_without_new_mail() {
    use leadloop::config::{AfterProcessing, SourceConfig};
    for after in ["flag", "move:Processed Leads"] {
        let s = Setup::new("implicit", &format!("after = \"{after}\"")).await;
        for n in 1..=3 {
            s.append(&inquiry(n));
        }
        let store = Store::connect(&s.db.url, 4).await.unwrap();
        // Recorded as by a pass that stopped after its commit: the cursor at 3, nothing tidied.
        let mut config = s.config();
        let SourceConfig::Imap(imap) = &mut config.mailboxes[0].source else {
            unreachable!()
        };
        imap.after = AfterProcessing::None;
        let report = Source::new(&config, store.clone())
            .unwrap()
            .sync_once(&CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(report.recorded, 3);
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&s.db.url).await.unwrap();
        sqlx::query("UPDATE mailbox_state SET tidied_uid = 0")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let maildir = s.dovecot.maildir_path(s.dovecot.user());
        let names = |dir: &str| -> Vec<String> {
            std::fs::read_dir(maildir.join(dir))
                .map(|d| {
                    d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let inbox = || [names("cur"), names("new")].concat();
        assert_eq!(inbox().len(), 3);
        assert!(!inbox().iter().any(|n| n.ends_with(",S")), "{:?}", inbox());

        // The next pass, with no new mail, tidies the three.
        let (source, _) = s.source().await;
        let report = source.sync_once(&CancellationToken::new()).await.unwrap();
        assert_eq!(report.fetched, 0);
        if after == "flag" {
            assert_eq!(names("cur").len(), 3, "{:?}", inbox());
            assert!(
                names("cur").iter().all(|n| n.ends_with(",S")),
                "{:?}",
                inbox()
            );
        } else {
            assert!(inbox().is_empty(), "{:?}", inbox());
            let moved = [names(".Processed Leads/cur"), names(".Processed Leads/new")].concat();
            assert_eq!(moved.len(), 3, "{moved:?}");
        }
        assert_eq!(store.inbound(&s.mailbox()).await.unwrap().len(), 3);
    }
}

async fn wait_for(store: &Store, mailbox: &str, n: usize) {
    for _ in 0..300 {
        if store.inbound(mailbox).await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} messages were not recorded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reconnects_after_a_server_restart() {
    let mut s = Setup::new("implicit", "").await;
    s.append(&inquiry(1));
    let (source, store) = s.source().await;
    let source = Arc::new(source);
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let source = Arc::clone(&source);
        let cancel = cancel.clone();
        async move { source.run(cancel).await }
    });
    wait_for(&store, &s.mailbox(), 1).await;
    // IDLE wakes the daemon as soon as mail arrives.
    s.append(&inquiry(2));
    wait_for(&store, &s.mailbox(), 2).await;

    tokio::task::block_in_place(|| s.dovecot.restart()).unwrap();
    s.append(&inquiry(3));
    wait_for(&store, &s.mailbox(), 3).await;

    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the daemon stops promptly when cancelled")
        .unwrap();
    assert_eq!(report.recorded, 3);
    let uids: Vec<_> = store
        .inbound(&s.mailbox())
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, [Some(1), Some(2), Some(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_dropped_mid_batch_loses_and_repeats_nothing() {
    let s = Setup::new("implicit", "batch_size = 10").await;
    let total = 400;
    s.dovecot.load_maildir((1..=total).map(inquiry)).unwrap();
    let (source, store) = s.source().await;
    let source = Arc::new(source);
    let task = tokio::spawn({
        let source = Arc::clone(&source);
        async move { source.sync_once(&CancellationToken::new()).await }
    });
    // Abort as soon as something is recorded: a batch is in flight at that moment.
    let mailbox = s.mailbox();
    loop {
        let n = store.inbound(&mailbox).await.unwrap().len();
        if n > 0 || task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    // A commit already handed to the database finishes even after the abort, so read the
    // cursor first: commits only add, and a count read afterwards covers at least as much.
    let cursor = store
        .mailbox_cursor(&mailbox)
        .await
        .unwrap()
        .map_or(0, |c| c.last_uid);
    let partial = store.inbound(&mailbox).await.unwrap().len();
    assert!(
        partial < total as usize,
        "the abort came too late to test anything ({partial})"
    );
    assert!(
        cursor as usize <= partial,
        "cursor {cursor} ahead of {partial} recorded messages"
    );

    // Let a commit that was already with the database land before the restart reads the cursor.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = source.sync_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(
        report.duplicates, 0,
        "nothing below the cursor is read again"
    );
    let inbound = store.inbound(&mailbox).await.unwrap();
    let uids: Vec<_> = inbound.iter().filter_map(|m| m.uid).collect();
    assert_eq!(
        uids,
        (1..=i64::from(total)).collect::<Vec<_>>(),
        "every message exactly once"
    );
}

/// Hostile and broken messages, each delivered over IMAP: every one is recorded with a kind
/// (often `ignored` with a reason), none is lost, none stops the ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_hostile_mail_is_recorded_not_lost() {
    let s = Setup::new("implicit", "max_message_bytes = 40000000").await;
    let mut attachment = String::with_capacity(31 << 20);
    while attachment.len() < 30 << 20 {
        attachment.push_str("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n");
    }
    let messages: Vec<Vec<u8>> = vec![
        // Truncated MIME: the closing boundary never comes.
        b"From: Ann <ann@example.org>\r\nTo: leads@company.com\r\nSubject: cut\r\nMessage-ID: <cut@example.org>\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello, I would like a quote".to_vec(),
        // No From at all.
        b"To: leads@company.com\r\nSubject: anonymous\r\nMessage-ID: <nofrom@example.org>\r\n\r\nWho am I?\r\n".to_vec(),
        // A charset nobody knows.
        b"From: Bo <bo@example.org>\r\nTo: leads@company.com\r\nSubject: =?x-garbage?Q?=E9t=E9?=\r\nMessage-ID: <charset@example.org>\r\nContent-Type: text/plain; charset=x-unknown-garbage\r\n\r\n\xe9t\xe9 pricing?\r\n".to_vec(),
        // Raw 8-bit bytes in headers.
        b"From: J\xf6rg M\xfcller <joerg@example.de>\r\nTo: leads@company.com\r\nSubject: Anfrage \xfcber Preise\r\nMessage-ID: <8bit@example.de>\r\n\r\nGuten Tag\r\n".to_vec(),
        // A 100 KB header line.
        format!(
            "From: Cy <cy@example.org>\r\nTo: leads@company.com\r\nX-Long: {}\r\nSubject: long\r\nMessage-ID: <long@example.org>\r\n\r\nHi\r\n",
            "a".repeat(100 * 1024)
        )
        .into_bytes(),
        // A 30 MB attachment.
        format!(
            "From: Di <di@example.org>\r\nTo: leads@company.com\r\nSubject: our RFP\r\nMessage-ID: <big@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nPlease see the attached RFP.\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{attachment}--zz--\r\n"
        )
        .into_bytes(),
        inquiry(7),
    ];
    for m in &messages {
        s.append(m);
    }
    let (source, store) = s.source().await;
    let report = source
        .sync_once(&CancellationToken::new())
        .await
        .expect("sync survives bad input");
    assert_eq!(report.recorded, messages.len());
    let inbound = store.inbound(&s.mailbox()).await.unwrap();
    assert_eq!(inbound.len(), messages.len(), "every message is recorded");
    for m in &inbound {
        assert!(
            m.kind.parse::<leadloop::domain::MessageKind>().is_ok(),
            "{m:?}"
        );
        if m.kind == "ignored" {
            assert!(
                m.reason.as_deref().is_some_and(|r| !r.is_empty()),
                "ignored without a reason: {m:?}"
            );
        }
    }
    let kind_of = |key: &str| {
        inbound
            .iter()
            .find(|m| m.dedupe_key == key)
            .map(|m| m.kind.clone())
    };
    assert_eq!(
        kind_of("mid:big@example.org").as_deref(),
        Some("inquiry"),
        "a big attachment is still an inquiry"
    );
    assert_eq!(kind_of("mid:8bit@example.de").as_deref(), Some("inquiry"));
    assert_eq!(
        kind_of("mid:nofrom@example.org").as_deref(),
        Some("ignored")
    );
    assert_eq!(
        kind_of("mid:inquiry-7@example.org").as_deref(),
        Some("inquiry")
    );
}

/// `run --once --since DATE` on a first run: the mail that arrived before the day is skipped,
/// the cursor moves past it, and later runs read only what comes after. The server's arrival
/// date decides (Dovecot's INTERNALDATE of an APPEND is now).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_since_a_day_skips_older_mail_for_good() {
    let s = Setup::new("implicit", "").await;
    for n in 1..=3 {
        s.append(&inquiry(n));
    }
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let (code, out) =
        crate::support::run_cli(&s.config_path, &["run", "--once", "--since", &tomorrow]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 recorded"), "{out}");
    assert!(
        out.contains("3 messages that arrived before --since skipped"),
        "{out}"
    );
    s.append(&inquiry(4));
    let (code, out) = crate::support::run_cli(&s.config_path, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 messages read, 1 recorded"), "{out}");
    let (source, store) = s.source().await;
    drop(source);
    let inbound = store.inbound(&s.mailbox()).await.unwrap();
    assert_eq!(
        inbound.iter().filter_map(|m| m.uid).collect::<Vec<_>>(),
        [4]
    );

    // Since today: everything that came today is read.
    let s = Setup::new("implicit", "").await;
    s.append(&inquiry(1));
    s.append(&inquiry(2));
    let today = chrono::Utc::now().date_naive().to_string();
    let (code, out) =
        crate::support::run_cli(&s.config_path, &["run", "--once", "--since", &today]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 recorded"), "{out}");
    assert!(!out.contains("skipped"), "{out}");
    // --since needs --once.
    let (code, _) = crate::support::run_cli(&s.config_path, &["run", "--since", &today]);
    assert_eq!(code, 2);
}

/// A long pass says how far it has come: log lines when stderr is not a terminal, a bar when
/// it is (run under `script`, which gives the process a pseudo-terminal).
/// `LEADLOOP_PROGRESS_EVERY` shortens the interval so a few thousand messages are enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pass_shows_its_progress_in_the_log_or_on_a_terminal() {
    let s = Setup::new("implicit", "batch_size = 100").await;
    s.dovecot.load_maildir((1..=3000).map(inquiry)).unwrap();
    let (code, out, err) = crate::support::leadloop(&["run", "--once"])
        .config(&s.config_path)
        .log("info")
        .env("LEADLOOP_PROGRESS_EVERY", "50ms")
        .run();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3000 recorded"), "{out}");
    assert!(
        err.lines()
            .any(|l| l.contains(" of 3,000 messages (") && l.contains("/s")),
        "no progress line in the log: {err}"
    );

    // On a terminal: a fresh mailbox, the same mail, a bar instead of lines.
    let t = Setup::new("implicit", "batch_size = 100").await;
    t.dovecot.load_maildir((1..=3000).map(inquiry)).unwrap();
    let command = format!(
        "{} run --once --config {}",
        env!("CARGO_BIN_EXE_leadloop"),
        t.config_path.display()
    );
    let shown = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("LEADLOOP_PROGRESS_EVERY", "50ms")
        .env("LEADLOOP_LOG", "warn")
        .output();
    let Ok(shown) = shown else {
        eprintln!("SKIPPED the terminal half: `script` (util-linux) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    assert!(text.contains("/3000 messages"), "no progress bar: {text}");
    assert!(text.contains("3000 recorded"), "{text}");
}
