//! What a user sees for the common IMAP setup mistakes, and how soon a server that stops
//! answering is noticed, against a real Dovecot.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use leadloop::config::{Config, SourceConfig};
use leadloop::daemon::Source;
use leadloop::store::Store;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::dovecot::Dovecot;
use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, TestDb, leadloop, start_dovecot, test_db};

/// A database and a configuration whose `[imap]` logs in to `dovecot` as its user, with the
/// test's own `imap` lines (port, TLS, folder, timeouts).
struct Configured {
    db: TestDb,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn configure(dovecot: &Dovecot, imap: &str) -> Configured {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("imap-password");
    std::fs::write(&password, format!("{}\n", dovecot.password())).unwrap();
    let path = ConfigFile::new(dir.path(), &db.url)
        .raw(&format!(
            "\n[imap]\nhost = \"{}\"\nuser = \"{}\"\npassword_file = \"{}\"\n{imap}\n",
            dovecot.host(),
            dovecot.user(),
            password.display(),
        ))
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    Configured {
        db,
        path,
        _dir: dir,
    }
}

/// `[imap]` lines for the TLS port, trusting the Dovecot's CA.
fn trusted_tls(d: &Dovecot) -> String {
    format!(
        "port = {}\ntls = \"implicit\"\nca_file = \"{}\"",
        d.tls_port(),
        d.ca_pem_path().display()
    )
}

/// `run --once` against a fresh Dovecot with the test's `[imap]` lines, which must fail: its
/// stderr.
async fn run_with(imap: impl Fn(&Dovecot) -> String) -> String {
    let dovecot = start_dovecot().await;
    let config = configure(&dovecot, &imap(&dovecot)).await;
    let out = leadloop(&["run", "--once"]).config(&config.path).output();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the error names the fix and says each cause once.
fn assert_says(stderr: &str, fix: &str, cause: &str) {
    assert!(stderr.contains(fix), "{stderr}");
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
    assert!(!stderr.contains("Some("), "{stderr}");
}

#[tokio::test]
async fn implicit_tls_on_the_plain_port_points_to_starttls() {
    let said = run_with(|d| {
        format!(
            "port = {}\ntls = \"implicit\"\nca_file = \"{}\"",
            d.plain_port(),
            d.ca_pem_path().display()
        )
    })
    .await;
    assert_says(&said, "set imap.tls = \"starttls\"", "InvalidContentType");
}

#[tokio::test]
async fn an_untrusted_certificate_points_to_ca_file() {
    for tls in ["implicit", "starttls"] {
        let said = run_with(|d| {
            let port = if tls == "implicit" {
                d.tls_port()
            } else {
                d.plain_port()
            };
            format!("port = {port}\ntls = \"{tls}\"")
        })
        .await;
        assert_says(&said, "set imap.ca_file", "UnknownIssuer");
    }
}

#[tokio::test]
async fn no_tls_on_the_tls_port_points_to_implicit() {
    let said =
        run_with(|d| format!("port = {}\ntls = \"none\"\ntimeout = \"3s\"", d.tls_port())).await;
    assert_says(&said, "set imap.tls = \"implicit\"", "no greeting");
}

/// A TCP relay to a port on loopback that can cut every connection it carries: they stay
/// open and carry nothing more, like a server that stopped answering, while connections made
/// after the cut work.
struct Relay {
    port: u16,
    generation: Arc<AtomicU64>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let g = Arc::clone(&generation);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let born = g.load(Ordering::SeqCst);
                let g = Arc::clone(&g);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let live = move || g.load(Ordering::SeqCst) == born;
                    tokio::join!(pump(cr, sw, live.clone()), pump(sr, cw, live));
                });
            }
        });
        Relay { port, generation }
    }

    /// From now on the connections made so far carry nothing.
    fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, live: impl Fn() -> bool) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !live() {
            // Hold both sockets open and say nothing, for good.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A server that stops answering on an open connection is noticed within `poll_interval` +
/// `timeout`, and the daemon reads the mailbox again over a new connection. Before `timeout`
/// bounded every step, the daemon waited 300 s on the silent connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_noticed_within_the_timeout() {
    let dovecot = start_dovecot().await;
    let relay = Relay::start(dovecot.plain_port()).await;
    let setup = configure(
        &dovecot,
        &format!(
            "port = {}\ntls = \"none\"\npoll_interval = \"1s\"\ntimeout = \"2s\"",
            relay.port
        ),
    )
    .await;
    let config = Config::load(&setup.path).unwrap();
    let SourceConfig::Imap(imap) = &config.mailboxes[0].source else {
        unreachable!()
    };
    let mailbox = leadloop::ingest::imap_mailbox_name(imap);
    let store = Store::connect(&setup.db.url, 4).await.unwrap();
    let source = Arc::new(Source::new(&config, store.clone()).unwrap());
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let source = Arc::clone(&source);
        let cancel = cancel.clone();
        async move { source.run(cancel).await }
    });
    let recorded = |n: usize| {
        let store = store.clone();
        let mailbox = mailbox.clone();
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if store.inbound(&mailbox).await.unwrap().len() >= n {
                    return start.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{n} messages were not recorded within 20 s");
        }
    };
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    recorded(1).await;
    // The server goes silent on the daemon's connection; mail keeps arriving.
    relay.cut();
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    // poll_interval (1 s) + timeout (2 s) + the first reconnect (1 s ± 25 %) + margin.
    let took = recorded(2).await;
    assert!(took < Duration::from_secs(10), "noticed after {took:?}");
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the daemon stops promptly when cancelled")
        .unwrap();
    assert_eq!(report.recorded, 2);
}

/// A command the server refuses reads as the server said it, not as a debug dump.
#[tokio::test]
async fn a_refused_command_reads_as_the_server_said_it() {
    let said = run_with(|d| format!("{}\nmailbox = \"Nope\"", trusted_tls(d))).await;
    assert!(
        said.contains("IMAP SELECT refused: NO Mailbox doesn't exist: Nope"),
        "{said}"
    );
    assert!(
        !said.contains("Some(") && !said.contains("Outcome"),
        "{said}"
    );
}

/// When recorded mail cannot be moved (a folder name the server refuses: Dovecot's Maildir
/// names may not begin with `~`), `run --once` still prints what it recorded, says why in the
/// server's words, and exits 1; the next run tries the move again and records nothing twice.
#[tokio::test]
async fn a_folder_the_server_refuses_keeps_the_summary_and_the_reason() {
    let dovecot = start_dovecot().await;
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    let config = configure(
        &dovecot,
        &format!("{}\nafter = \"move:~Done\"", trusted_tls(&dovecot)),
    )
    .await;
    for (run, read) in [
        (1, "1 messages read, 1 recorded"),
        (2, "0 messages read, 0 recorded"),
    ] {
        let out = leadloop(&["run", "--once"]).config(&config.path).output();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "run {run}: {stdout}{stderr}");
        assert!(stdout.starts_with(read), "run {run}: {stdout}");
        assert!(
            stderr.contains("NO [CANNOT] Invalid mailbox name: Begins with '~'"),
            "run {run}: {stderr}"
        );
        assert!(
            stderr.contains("the next run tries again"),
            "run {run}: {stderr}"
        );
        assert!(!stderr.contains("Some("), "run {run}: {stderr}");
    }
}
