//! Checks the private Dovecot fixture itself: APPEND gives UIDs, IMAPS works with the test CA,
//! a crash-restart keeps the mail, a forced UIDVALIDITY change is visible, bulk Maildir loads
//! keep order. If these fail, every ingest test built on the fixture would fail confusingly.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::dovecot::Dovecot;

type Session = async_imap::Session<TlsStream<TcpStream>>;

/// Tests build `ClientConfig::builder()`-style configs; make ring the process default once.
fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Person {n} <person{n}@example.org>\r\n\
         To: leads@company.com\r\n\
         Subject: Inquiry {n}\r\n\
         Message-ID: <fixture-{n}@example.org>\r\n\
         Date: Fri, 27 Nov 2026 10:00:0{} +0000\r\n\
         \r\n\
         Hello, this is message {n}.\r\n",
        n % 10
    )
    .into_bytes()
}

/// IMAPS connection trusting only the fixture's CA, logged in as the fixture's user.
async fn connect_tls(dc: &Dovecot) -> Result<Session> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dc.ca_pem_path())? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect((dc.host(), dc.tls_port())).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await
        .context("TLS handshake with the fixture's certificate")?;
    let mut client = async_imap::Client::new(tls);
    client
        .read_response()
        .await?
        .ok_or_else(|| anyhow!("no greeting"))?;
    client
        .login(dc.user(), dc.password())
        .await
        .map_err(|(e, _)| e)
        .context("LOGIN")
}

/// (uid, body) of every message in INBOX, in UID order.
async fn fetch_all(session: &mut Session) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out: Vec<(u32, Vec<u8>)> = session
        .uid_fetch("1:*", "(UID BODY.PEEK[])")
        .await?
        .map_ok(|f| (f.uid.unwrap_or(0), f.body().unwrap_or_default().to_vec()))
        .try_collect()
        .await?;
    out.sort_by_key(|(uid, _)| *uid);
    Ok(out)
}

#[tokio::test]
async fn append_fetch_restart_and_uidvalidity_change() -> Result<()> {
    init();
    let mut dc = Dovecot::start()?;

    let mut uids = Vec::new();
    for n in 1..=3 {
        uids.push(dc.append("INBOX", &message(n))?);
    }
    assert_eq!(uids, vec![1, 2, 3]);

    let mut session = connect_tls(&dc).await?;
    let mailbox = session.select("INBOX").await?;
    assert_eq!(mailbox.exists, 3);
    let validity = mailbox.uid_validity.expect("UIDVALIDITY");
    let fetched = fetch_all(&mut session).await?;
    assert_eq!(
        fetched,
        (1..=3).map(|n| (n, message(n))).collect::<Vec<_>>(),
        "IMAPS returns exactly the appended bytes under their APPENDUIDs"
    );

    // A crash-restart cuts the connection; a new one sees the same mail and UIDVALIDITY.
    let old_pid = dc.pid();
    dc.restart()?;
    assert_ne!(dc.pid(), old_pid);
    assert!(
        session.noop().await.is_err(),
        "the old connection must be dead after kill -9"
    );
    let mut session = connect_tls(&dc).await?;
    let mailbox = session.select("INBOX").await?;
    assert_eq!(mailbox.exists, 3);
    assert_eq!(mailbox.uid_validity, Some(validity));

    // Forced UIDVALIDITY change, observed by a fresh IMAPS SELECT.
    let new_validity = dc.change_uid_validity("INBOX")?;
    // A session that had INBOX selected across the change is usually, but not always (it
    // depends on when Dovecot notices), disconnected by Dovecot; no assertion either way.
    drop(session);
    assert_ne!(new_validity, validity);
    let mut session = connect_tls(&dc).await?;
    let mailbox = session.select("INBOX").await?;
    assert_eq!(mailbox.uid_validity, Some(new_validity));
    assert_eq!(mailbox.exists, 3);
    session.logout().await?;

    // Appends after the change continue the UID sequence.
    assert_eq!(dc.append("INBOX", &message(4))?, 4);
    Ok(())
}

#[tokio::test]
async fn load_maildir_keeps_order_and_mixes_with_append() -> Result<()> {
    init();
    let dc = Dovecot::start()?;
    assert_eq!(dc.load_maildir((1..=50).map(message))?, 50);
    assert_eq!(dc.append("INBOX", &message(51))?, 51);
    assert_eq!(dc.load_maildir((52..=60).map(message))?, 9);

    let mut session = connect_tls(&dc).await?;
    session.select("INBOX").await?;
    let fetched = fetch_all(&mut session).await?;
    assert_eq!(fetched.len(), 60);
    for (uid, body) in &fetched {
        assert_eq!(body, &message(*uid), "UID {uid} holds message {uid}");
    }
    session.logout().await?;
    Ok(())
}

#[test]
fn instances_are_independent_and_cleaned_up() -> Result<()> {
    let a = Dovecot::start()?;
    let b = Dovecot::start()?;
    assert_ne!(a.plain_port(), b.plain_port());
    assert_ne!(a.dir(), b.dir());
    assert_eq!(a.append("INBOX", &message(1))?, 1);
    assert_eq!(b.append("INBOX", &message(1))?, 1);
    assert_eq!(a.append("INBOX", &message(2))?, 2);
    let dir = a.dir().to_path_buf();
    let pid = a.pid().expect("running");
    drop(a);
    assert!(!dir.exists(), "temp dir removed on drop");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "master reaped on drop"
    );
    assert_eq!(b.append("INBOX", &message(2))?, 2);
    Ok(())
}
