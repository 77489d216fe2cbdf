//! Several mailboxes (`[[mailbox]]`): one daemon reads an IMAP mailbox on a real Dovecot and a
//! Maildir, or two folders of one server, each under its own cursor and lease, with its own
//! default channel and owner; `leads show` says which mailbox a message came from; and an
//! existing `[imap]` keeps its position when it becomes a `[[mailbox]]`. A reload (SIGHUP)
//! starts reading added mailboxes, lets go of removed ones and their leases at once, applies
//! changed settings, and refuses a file whose mailboxes cannot be built.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use leadloop::config::Config;
use leadloop::store::Store;

use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, lead_by_email, run_cli, test_db, with_config};

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

/// Delivers `raw` into the Maildir at `dir` as a new message.
fn deliver(dir: &Path, n: u32, raw: &[u8]) {
    let name = format!("1764237600.M{n}P1.test");
    std::fs::write(dir.join("tmp").join(&name), raw).unwrap();
    std::fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
}

/// The mailbox keys of the configuration, by entry name.
fn key(config: &Path, name: &str) -> String {
    let c = Config::load(config).expect("test configuration is valid");
    c.mailboxes
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no mailbox {name}"))
        .key()
}

async fn recorded(store: &Store, mailbox: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .inbound(mailbox)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.dedupe_key)
        .collect();
    keys.sort();
    keys
}

async fn lead_channel_owner(store: &Store, email: &str) -> (String, Option<String>) {
    let lead = lead_by_email(store, email)
        .await
        .unwrap_or_else(|| panic!("no lead {email}"));
    (lead.channel, lead.owner)
}

/// An inquiry to our address with the plus tag `tag`: the tag names its channel.
fn tagged_inquiry(n: u32, tag: &str) -> Vec<u8> {
    String::from_utf8(inquiry(n))
        .unwrap()
        .replace(
            "To: leads@company.com",
            &format!("To: leads+{tag}@company.com"),
        )
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_reads_an_imap_mailbox_and_a_maildir_each_with_its_own_channel_and_owner() {
    let dovecot = crate::support::start_dovecot().await;
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox(
            "sales",
            &dovecot,
            "INBOX",
            "channel = \"sales-desk\"\nowner = \"anna@company.com\"",
        )
        .maildir_mailbox(
            "info",
            "maildir/info",
            "channel = \"info-desk\"\nowner = \"ben@company.com\"",
        )
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let maildir = dir.path().join("maildir/info");
    let (sales, info) = (key(&config, "sales"), key(&config, "info"));
    assert!(sales.starts_with("imap://") && info.starts_with("maildir:"));

    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot
        .append("INBOX", &tagged_inquiry(2, "webinar"))
        .unwrap();
    deliver(&maildir, 3, &inquiry(3));
    deliver(&maildir, 4, &inquiry(4));

    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("mailbox sales: 2 messages read, 2 recorded, 0 already recorded"),
        "{out}"
    );
    assert!(
        out.contains("mailbox info: 2 messages read, 2 recorded, 0 already recorded"),
        "{out}"
    );
    assert!(out.contains("4 messages read, 4 recorded"), "{out}");

    let store = Store::connect(&db.url, 2).await.unwrap();
    assert_eq!(
        recorded(&store, &sales).await,
        ["mid:inquiry-1@example.org", "mid:inquiry-2@example.org"]
    );
    assert_eq!(
        recorded(&store, &info).await,
        ["mid:inquiry-3@example.org", "mid:inquiry-4@example.org"]
    );
    // The mailbox's channel and owner where nothing else gives one; a plus tag still names
    // its own channel.
    assert_eq!(
        lead_channel_owner(&store, "person1@example.org").await,
        ("sales-desk".into(), Some("anna@company.com".into()))
    );
    assert_eq!(
        lead_channel_owner(&store, "person2@example.org").await,
        ("webinar".into(), Some("anna@company.com".into()))
    );
    assert_eq!(
        lead_channel_owner(&store, "person3@example.org").await,
        ("info-desk".into(), Some("ben@company.com".into()))
    );

    // `leads show` names the mailbox, in the header and on each message.
    let (code, shown) = run_cli(&config, &["leads", "show", "person3@example.org"]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.lines().any(|l| l.trim() == "mailbox  info"),
        "{shown}"
    );
    let row = shown
        .lines()
        .find(|l| l.contains("Question number 3"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(row.contains(" info "), "{row}");
    let (code, json) = run_cli(&config, &["leads", "show", "person1@example.org", "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mailbox"], "sales", "{v}");
    assert_eq!(v["channel"], "sales-desk", "{v}");
    assert_eq!(v["timeline"][0]["mailbox"], "sales", "{v}");

    // A second pass reads nothing twice.
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("mailbox sales: 0 messages read, 0 recorded"),
        "{out}"
    );
    assert!(
        out.contains("mailbox info: 2 messages read, 0 recorded"),
        "{out}"
    );

    // The daemon reads both, each under its own lease.
    let mut daemon = Daemon(with_config(&config, &["run"]).spawn());
    let pid = daemon.0.id();
    dovecot.append("INBOX", &inquiry(5)).unwrap();
    deliver(&maildir, 6, &inquiry(6));
    let start = Instant::now();
    while recorded(&store, &sales).await.len() < 3 || recorded(&store, &info).await.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemon did not record the new mail"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mailbox in [&sales, &info] {
        let lease = store.mailbox_lease(mailbox).await.unwrap().unwrap();
        assert!(lease.holder.contains(&format!(":{pid}:")), "{lease:?}");
    }
    assert_eq!(
        lead_channel_owner(&store, "person6@example.org").await,
        ("info-desk".into(), Some("ben@company.com".into()))
    );
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "leadloop did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorded(&store, &sales).await.len(), 3);
    assert_eq!(recorded(&store, &info).await.len(), 3);
    // Stopped cleanly, it gave up both leases.
    assert!(
        store
            .mailbox_lease(&sales)
            .await
            .unwrap()
            .is_none_or(|l| l.expires_at <= chrono::Utc::now())
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_folders_of_one_server_are_two_mailboxes() {
    let dovecot = crate::support::start_dovecot().await;
    dovecot.create("Sales").unwrap();
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("inbox", &dovecot, "INBOX", "")
        .imap_mailbox("sales", &dovecot, "Sales", "channel = \"sales-folder\"")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let (inbox, sales) = (key(&config, "inbox"), key(&config, "sales"));
    assert_ne!(inbox, sales);
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot.append("Sales", &inquiry(2)).unwrap();
    dovecot.append("Sales", &inquiry(3)).unwrap();

    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("mailbox inbox: 1 messages read, 1 recorded"),
        "{out}"
    );
    assert!(
        out.contains("mailbox sales: 2 messages read, 2 recorded"),
        "{out}"
    );
    let store = Store::connect(&db.url, 2).await.unwrap();
    assert_eq!(
        recorded(&store, &inbox).await,
        ["mid:inquiry-1@example.org"]
    );
    assert_eq!(
        recorded(&store, &sales).await,
        ["mid:inquiry-2@example.org", "mid:inquiry-3@example.org"]
    );
    assert_eq!(
        lead_channel_owner(&store, "person1@example.org").await,
        ("direct".into(), None)
    );
    assert_eq!(
        lead_channel_owner(&store, "person2@example.org").await,
        ("sales-folder".into(), None)
    );
    // Each folder has its own cursor: new mail in one is read from there alone.
    dovecot.append("Sales", &inquiry(4)).unwrap();
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mailbox inbox: 0 messages read"), "{out}");
    assert!(
        out.contains("mailbox sales: 1 messages read, 1 recorded"),
        "{out}"
    );
    store.close().await;
}

#[tokio::test]
async fn check_names_the_entry_and_refuses_duplicate_names() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir_mailbox("info", "maildir/info", "")
        .maildir_mailbox("info", "maildir/other", "")
        .raw("[[mailbox]]\nname = \"remote\"\nhost = \"imap.example.com\"\nuser = \"x@company.com\"\npassword_env = \"X\"\nafter = \"archive\"\n")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let (code, stdout, stderr) = with_config(&config, &["check"]).run();
    assert_ne!(code, 0, "{stdout}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("mailbox[1].name: 'info' is already the name of mailbox[0]"),
        "{all}"
    );
    assert!(all.contains("mailbox[2].after: 'archive'"), "{all}");

    // Fixed, `check` names the mailboxes it reads.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "name = \"info\"\npath = \"maildir/other\"",
            "name = \"other\"\npath = \"maildir/other\"",
            1,
        )
        .replace("after = \"archive\"", "after = \"none\"");
    std::fs::write(&config, text).unwrap();
    let (code, stdout, stderr) = with_config(&config, &["check"]).env("X", "secret").run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("reads 3 mailboxes: info, other, remote"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imap_section_keeps_its_position_when_it_becomes_a_mailbox_entry() {
    let dovecot = crate::support::start_dovecot().await;
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap(&dovecot, "implicit", "")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    // The key existing installations have their cursor under.
    let before = key(&config, "imap");
    assert_eq!(
        before,
        format!(
            "imap://{}@{}:{}/INBOX",
            dovecot.user(),
            dovecot.host(),
            dovecot.tls_port()
        )
    );
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 messages read, 2 recorded"), "{out}");

    // The same mailbox as a named entry: the first two messages are still in the folder, and
    // only the cursor tells they were read.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("[imap]", "[[mailbox]]\nname = \"leads\"");
    std::fs::write(&config, text).unwrap();
    assert_eq!(key(&config, "leads"), before);
    dovecot.append("INBOX", &inquiry(3)).unwrap();
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 messages read, 1 recorded"), "{out}");
    let store = Store::connect(&db.url, 2).await.unwrap();
    assert_eq!(recorded(&store, &before).await.len(), 3);
    let (code, json) = run_cli(&config, &["leads", "show", "person1@example.org", "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mailbox"], "leads", "{v}");
    store.close().await;
}

/// `GET /readyz` on loopback: the status code and body.
async fn readyz(port: u16) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let head =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_is_ready_only_when_every_mailbox_is_read() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // `later` is no Maildir yet: it cannot be read until it is created.
    let config_path = ConfigFile::new(dir.path(), &db.url)
        .maildir_mailbox("now", "maildir/now", "")
        .maildir_mailbox("later", "maildir/later", "")
        .identity(&["leads@company.com"], &["company.com"])
        .raw(&format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"))
        .write();
    std::fs::remove_dir_all(dir.path().join("maildir/later")).unwrap();
    let now_key = key(&config_path, "now");
    let config = Config::load(&config_path).unwrap();
    deliver(&dir.path().join("maildir/now"), 1, &inquiry(1));
    // The schema is made before the daemon starts, so the two do not migrate at once.
    let store = Store::connect(&db.url, 2).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let daemon = {
        let (path, token) = (config_path.clone(), shutdown.clone());
        tokio::spawn(async move { leadloop::daemon::run(&path, config, token, reload_rx).await })
    };

    // The first mailbox is read, the second cannot be: not ready.
    crate::support::wait_for(|| async {
        (recorded(&store, &now_key).await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = readyz(port).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("mailbox"), "{body}");

    // Once it exists and is read, the daemon is ready.
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.path().join("maildir/later").join(sub)).unwrap();
    }
    crate::support::wait_for(|| async { (readyz(port).await.0 == 200).then_some(()) }).await;

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    store.close().await;
}

/// `--since` skips older mail in every IMAP mailbox; a Maildir has no arrival date on the
/// server and is read whole. A file of Maildirs alone refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_applies_to_every_imap_mailbox_and_a_maildir_is_read_whole() {
    let dovecot = crate::support::start_dovecot().await;
    dovecot.create("Sales").unwrap();
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("inbox", &dovecot, "INBOX", "")
        .imap_mailbox("sales", &dovecot, "Sales", "")
        .maildir_mailbox("local", "maildir/local", "")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot.append("Sales", &inquiry(2)).unwrap();
    deliver(&dir.path().join("maildir/local"), 3, &inquiry(3));
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let (code, out) = run_cli(&config, &["run", "--once", "--since", &tomorrow]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("mailbox inbox: 0 messages read, 0 recorded"),
        "{out}"
    );
    assert!(
        out.contains("mailbox sales: 0 messages read, 0 recorded"),
        "{out}"
    );
    assert!(
        out.contains("mailbox local: 1 messages read, 1 recorded"),
        "{out}"
    );
    assert!(
        out.contains("2 messages that arrived before --since skipped"),
        "{out}"
    );

    let maildirs = ConfigFile::new(dir.path(), &db.url)
        .maildir_mailbox("local", "maildir/local", "")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let (code, _, stderr) = with_config(&maildirs, &["run", "--once", "--since", &tomorrow]).run();
    assert_ne!(code, 0);
    assert!(
        stderr.contains("a Maildir source reads everything"),
        "{stderr}"
    );
}

/// A daemon started with its log on a pipe, and the log's lines, for waiting on a reload.
fn spawn_logging(config: &Path) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    let mut child = with_config(config, &["run"])
        .log("info")
        .env("NO_COLOR", "1")
        .spawn_logging_to_pipe();
    let lines = crate::daemon::log_lines(&mut child);
    (Daemon(child), lines)
}

/// Writes `config` over the running daemon's file and reloads it as `systemctl reload` does.
fn reload(daemon: &Daemon, lines: &std::sync::mpsc::Receiver<String>, config: ConfigFile) {
    config.write();
    crate::daemon::signal(&daemon.0, "HUP");
    crate::daemon::wait_for_line(lines, "configuration reloaded");
}

/// Waits until `mailbox` has `n` messages recorded.
async fn wait_recorded(store: &Store, mailbox: &str, n: usize) {
    crate::support::wait_for(|| async {
        (recorded(store, mailbox).await.len() >= n).then_some(())
    })
    .await;
    assert_eq!(recorded(store, mailbox).await.len(), n, "{mailbox}");
}

/// Stops the daemon with SIGTERM and checks that it exits cleanly.
fn stop(mut daemon: Daemon) {
    crate::daemon::signal(&daemon.0, "TERM");
    let start = Instant::now();
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "leadloop did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.0.wait().unwrap().success());
}

/// Longer than a poll interval (1 s) and a lease renewal: what a reader would have read by
/// then, it has.
const A_POLL_AND_MORE: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_removes_and_changes_mailboxes() {
    let dovecot = crate::support::start_dovecot().await;
    dovecot.create("Sales").unwrap();
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("sales", &dovecot, "INBOX", "channel = \"sales-desk\"")
        .maildir_mailbox("info", "maildir/info", "channel = \"info-desk\"")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let (sales, info) = (key(&config, "sales"), key(&config, "info"));
    // The schema is made before the daemon starts, so the two do not migrate at once.
    let store = Store::connect(&db.url, 2).await.unwrap();
    let (daemon, lines) = spawn_logging(&config);
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    deliver(&dir.path().join("maildir/info"), 2, &inquiry(2));
    wait_recorded(&store, &sales, 1).await;
    wait_recorded(&store, &info, 1).await;

    // `info` goes, `support` comes, and `sales` gets another default channel.
    let changed = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("sales", &dovecot, "INBOX", "channel = \"sales-new\"")
        .maildir_mailbox("support", "maildir/support", "channel = \"support-desk\"")
        .identity(&["leads@company.com"], &["company.com"]);
    reload(&daemon, &lines, changed);
    // The removed mailbox's lease was given up, not left to run out: another daemon that
    // still reads it takes it at its next try.
    assert_eq!(store.mailbox_lease(&info).await.unwrap(), None);
    let support = key(&config, "support");
    deliver(&dir.path().join("maildir/info"), 3, &inquiry(3));
    deliver(&dir.path().join("maildir/support"), 4, &inquiry(4));
    dovecot.append("INBOX", &inquiry(5)).unwrap();
    wait_recorded(&store, &support, 1).await;
    wait_recorded(&store, &sales, 2).await;
    assert_eq!(
        lead_channel_owner(&store, "person4@example.org").await,
        ("support-desk".into(), None)
    );
    assert_eq!(
        lead_channel_owner(&store, "person5@example.org").await,
        ("sales-new".into(), None),
        "the changed mailbox uses its new channel"
    );
    let (code, json) = run_cli(&config, &["leads", "show", "person4@example.org", "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mailbox"], "support", "{v}");
    tokio::time::sleep(A_POLL_AND_MORE).await;
    assert_eq!(
        recorded(&store, &info).await,
        ["mid:inquiry-2@example.org"],
        "mail reaching a removed mailbox is not read"
    );
    assert_eq!(store.mailbox_lease(&info).await.unwrap(), None);

    // `sales` moves to another folder: that is another mailbox, read from its start, and the
    // old folder is left alone.
    let moved = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("sales", &dovecot, "Sales", "channel = \"sales-new\"")
        .maildir_mailbox("support", "maildir/support", "channel = \"support-desk\"")
        .identity(&["leads@company.com"], &["company.com"]);
    reload(&daemon, &lines, moved);
    let sales_folder = key(&config, "sales");
    assert_ne!(sales_folder, sales);
    assert_eq!(store.mailbox_lease(&sales).await.unwrap(), None);
    dovecot.append("INBOX", &inquiry(6)).unwrap();
    dovecot.append("Sales", &inquiry(7)).unwrap();
    wait_recorded(&store, &sales_folder, 1).await;
    assert_eq!(
        lead_channel_owner(&store, "person7@example.org").await,
        ("sales-new".into(), None)
    );
    tokio::time::sleep(A_POLL_AND_MORE).await;
    assert_eq!(recorded(&store, &sales).await.len(), 2);
    stop(daemon);
    store.close().await;
}

/// The UIDs recorded from `mailbox`, in order.
async fn uids(store: &Store, mailbox: &str) -> Vec<i64> {
    let mut uids: Vec<i64> = store
        .inbound(mailbox)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| m.uid)
        .collect();
    uids.sort_unstable();
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_removed_mid_pass_stops_at_a_batch_and_resumes_there_when_it_comes_back() {
    let dovecot = crate::support::start_dovecot().await;
    let total: u32 = 2000;
    dovecot.load_maildir((1..=total).map(inquiry)).unwrap();
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let both = || {
        ConfigFile::new(dir.path(), &db.url)
            .imap_mailbox("sales", &dovecot, "INBOX", "batch_size = 25")
            .maildir_mailbox("info", "maildir/info", "")
            .identity(&["leads@company.com"], &["company.com"])
    };
    let config = both().write();
    let sales = key(&config, "sales");
    let store = Store::connect(&db.url, 2).await.unwrap();
    let (daemon, lines) = spawn_logging(&config);
    crate::support::wait_for(|| async { (!uids(&store, &sales).await.is_empty()).then_some(()) })
        .await;

    // Taken out while it is being read.
    let info_only = ConfigFile::new(dir.path(), &db.url)
        .maildir_mailbox("info", "maildir/info", "")
        .identity(&["leads@company.com"], &["company.com"]);
    reload(&daemon, &lines, info_only);
    let read = uids(&store, &sales).await;
    assert!(
        read.len() < total as usize,
        "the reload came after everything was read; nothing tested"
    );
    assert_eq!(
        read,
        (1..=read.len() as i64).collect::<Vec<_>>(),
        "whole batches, in order"
    );
    let cursor = store.mailbox_cursor(&sales).await.unwrap().unwrap();
    assert_eq!(
        cursor.last_uid as usize,
        read.len(),
        "the cursor is where recording stopped"
    );
    assert_eq!(store.mailbox_lease(&sales).await.unwrap(), None);
    // The other mailbox is still read; the removed one is not.
    deliver(&dir.path().join("maildir/info"), 1, &inquiry(total + 1));
    wait_recorded(&store, &key(&config, "info"), 1).await;
    tokio::time::sleep(A_POLL_AND_MORE).await;
    assert_eq!(
        uids(&store, &sales).await,
        read,
        "nothing read after the reload"
    );

    // Back in the file: it goes on from its cursor, and every message is recorded once.
    reload(&daemon, &lines, both());
    crate::support::wait_for(|| async {
        (uids(&store, &sales).await.len() >= total as usize).then_some(())
    })
    .await;
    assert_eq!(
        uids(&store, &sales).await,
        (1..=i64::from(total)).collect::<Vec<_>>(),
        "every message exactly once"
    );
    stop(daemon);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_new_mailbox_cannot_be_read_is_refused_and_the_old_ones_go_on() {
    let dovecot = crate::support::start_dovecot().await;
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap_mailbox("sales", &dovecot, "INBOX", "")
        .maildir_mailbox("info", "maildir/info", "")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let (sales, info) = (key(&config, "sales"), key(&config, "info"));
    let store = Store::connect(&db.url, 2).await.unwrap();
    let (daemon, lines) = spawn_logging(&config);
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    wait_recorded(&store, &sales, 1).await;

    // A valid file whose new mailbox's password file is not there yet: the configuration
    // cannot be used, so it is refused as a whole, and nothing stops.
    let good = std::fs::read_to_string(&config).unwrap();
    let missing = dir.path().join("not-written-yet");
    std::fs::write(
        &config,
        format!(
            "{good}\n[[mailbox]]\nname = \"extra\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"x\"\npassword_file = {:?}\n",
            dovecot.tls_port(),
            missing.display().to_string()
        ),
    )
    .unwrap();
    crate::daemon::signal(&daemon.0, "HUP");
    crate::daemon::wait_for_line(&lines, "reload refused");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut daemon = daemon;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "a configuration that cannot be used must not stop the daemon"
    );
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    deliver(&dir.path().join("maildir/info"), 3, &inquiry(3));
    wait_recorded(&store, &sales, 2).await;
    wait_recorded(&store, &info, 1).await;
    stop(daemon);
    store.close().await;
}
