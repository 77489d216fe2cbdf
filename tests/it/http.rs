//! The HTTP listener over real HTTP on loopback: the daemon reads a Maildir, enrolls the
//! inquiring lead and sends its first step (to a file outbox) with an unsubscribe link under
//! `[http] public_url`; health and readiness answer; a GET of the link changes nothing; a
//! POST with `List-Unsubscribe=One-Click` unsubscribes, suppresses and ends the lead's
//! sequences once, however often it comes; an unknown token is a neutral 404. Readiness is
//! also checked on a server of its own, where the mailbox and the database can fail on cue.
//!
//! The client is a few lines of HTTP/1.1 over a `TcpStream`: no HTTP client library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leadloop::config::Config;
use leadloop::domain::{EmailAddress, EnrollmentState, LeadStatus};
use leadloop::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::{ConfigFile, test_db, test_store};

/// An answer: status, headers (names in lower case), body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// One request on a new connection (`Connection: close`), with an optional
/// `(content type, body)`.
async fn request(port: u16, method: &str, path: &str, body: Option<(&str, &str)>) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting to the http listener");
    let (content_type, body) = body.unwrap_or(("", ""));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("reading the answer");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on right now (the daemon's configuration names its port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

const LEAD: &str = "sam.sample@example.org";

const INQUIRY: &str = "From: Sam Sample <sam.sample@example.org>\r\nTo: leads@company.com\r\n\
Subject: Pricing for 20 seats\r\nMessage-ID: <pricing-1@example.org>\r\n\
Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nHello, what would 20 seats cost us?\r\n";

/// A configuration that reads `inbox/`, enrolls inquiries in a two-step sequence, writes
/// what it sends to `outbox/`, and listens on `port` with `public_url` on it.
fn write_config(dir: &Path, db_url: &str, port: u16) -> PathBuf {
    for sub in ["sequences", "templates"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("templates/a.txt"),
        "Hello {{ lead.first_name }}.\n",
    )
    .unwrap();
    std::fs::write(dir.join("templates/b.txt"), "Step b.\n").unwrap();
    std::fs::write(
        dir.join("sequences/welcome.toml"),
        "[enroll]\nkinds = [\"inquiry\"]\n\n\
         [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Welcome\"\n\n\
         [[step]]\nid = \"b\"\ndelay = \"3d\"\ntemplate = \"b\"\nsubject = \"Step b\"\n",
    )
    .unwrap();
    let path = ConfigFile::new(dir, db_url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .raw(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n\
             [sequences]\ndir = \"sequences\"\ntemplates = \"templates\"\ninbox = \"leads@company.com\"\n\n\
             [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
             [smtp]\ntransport = \"file:outbox\"\n"
        ))
        .write();
    std::fs::write(dir.join("inbox/new/1764237600.M1P1.test"), INQUIRY).unwrap();
    path
}

/// The first `.eml` the file transport wrote, once it is whole.
async fn first_sent(outbox: &Path) -> String {
    wait_for("the first step in the file outbox", || async {
        let entry = std::fs::read_dir(outbox)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"))?;
        let text = std::fs::read_to_string(entry.path()).ok()?;
        text.contains("Hello Sam.").then_some(text)
    })
    .await
}

/// The `unsubscribed` events on the lead's timeline.
async fn unsubscribed_events(store: &Store) -> Vec<serde_json::Value> {
    let lead = store
        .lead(&EmailAddress::parse(LEAD).unwrap())
        .await
        .unwrap()
        .expect("the lead");
    store
        .timeline(&lead)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "unsubscribed")
        .map(|e| e.detail)
        .collect()
}

/// Asserts that no answer names the lead.
fn reveals_nothing(reply: &Reply) {
    for secret in ["sam", "Sam", "example.org", "Pricing"] {
        assert!(
            !reply.body.contains(secret),
            "the answer names the lead ({secret}):\n{}",
            reply.body
        );
    }
}

/// Asserts the headers every page carries.
fn safe_headers(reply: &Reply) {
    assert_eq!(reply.header("cache-control"), "no-store", "{reply:?}");
    let csp = reply.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert_eq!(reply.header("referrer-policy"), "no-referrer");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_acts_once_and_health_answers() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = write_config(dir.path(), &db.url, port);
    let config = Config::load(&config_path).expect("a valid test configuration");
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let daemon = {
        let (path, token) = (config_path.clone(), shutdown.clone());
        tokio::spawn(async move { leadloop::daemon::run(&path, config, token, reload_rx).await })
    };

    // Live as soon as it listens; ready once the Maildir has been read.
    wait_for("the listener", || async {
        TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;
    // The daemon has migrated the database by now.
    let store = Store::connect(&db.url, 2).await.unwrap();
    let health = request(port, "GET", "/healthz", None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    safe_headers(&health);
    wait_for("/readyz to say ready", || async {
        let r = request(port, "GET", "/readyz", None).await;
        (r.status == 200).then_some(())
    })
    .await;

    // The step went out with the link under public_url; plain http gets no one-click header.
    let sent = first_sent(&dir.path().join("outbox")).await;
    let lead = store
        .lead(&EmailAddress::parse(LEAD).unwrap())
        .await
        .unwrap()
        .expect("the inquiry made a lead");
    let enrollments = store.enrollments(lead.id).await.unwrap();
    assert_eq!(enrollments.len(), 1);
    let token = enrollments[0].token.clone();
    let link = format!("http://127.0.0.1:{port}/u/{token}");
    let sent = sent.replace("\r\n", "\n");
    let head = sent
        .split("\n\n")
        .next()
        .unwrap()
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let list_unsubscribe = head
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe:"))
        .expect("a List-Unsubscribe header");
    assert!(
        list_unsubscribe.contains(&format!("<{link}>"))
            && list_unsubscribe.contains(&format!("unsubscribe-{token}@company.com")),
        "{list_unsubscribe}"
    );
    assert!(!head.contains("List-Unsubscribe-Post"), "{head}");
    let path = format!("/u/{token}");

    // A GET (a link scanner, or the person before pressing the button) changes nothing.
    let page = request(port, "GET", &path, None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(
        page.body.contains("<form method=\"post\">")
            && page
                .body
                .contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script"), "{}", page.body);
    safe_headers(&page);
    reveals_nothing(&page);
    // A POST without the one-click body changes nothing either.
    let bare = request(port, "POST", &path, None).await;
    assert_eq!(bare.status, 400, "{bare:?}");
    let lead_now = store.lead(&lead.email).await.unwrap().unwrap();
    assert_ne!(lead_now.status, LeadStatus::Unsubscribed);
    assert!(store.suppressed(LEAD).await.unwrap().is_none());
    assert_eq!(
        store.enrollments(lead.id).await.unwrap()[0].state,
        EnrollmentState::Active
    );
    assert!(unsubscribed_events(&store).await.is_empty());

    // The one-click POST, twice at once and once more after: one unsubscribe, one event.
    let one_click = Some((
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click",
    ));
    let (first, second) = tokio::join!(
        request(port, "POST", &path, one_click),
        request(port, "POST", &path, one_click)
    );
    let third = request(port, "POST", &path, one_click).await;
    for reply in [&first, &second, &third] {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply.body.contains("You are unsubscribed"),
            "{}",
            reply.body
        );
        safe_headers(reply);
        reveals_nothing(reply);
    }
    assert_eq!(first.body, third.body, "the same page every time");
    let lead_now = store.lead(&lead.email).await.unwrap().unwrap();
    assert_eq!(lead_now.status, LeadStatus::Unsubscribed);
    assert!(store.suppressed(LEAD).await.unwrap().is_some());
    let states: Vec<_> = store
        .enrollments(lead.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(states, [EnrollmentState::Exited]);
    let events = unsubscribed_events(&store).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["via"], "one-click link");

    // An unknown token looks like any unknown address.
    let elsewhere = request(port, "GET", "/nothing-here", None).await;
    for reply in [
        request(port, "GET", "/u/0123456789abcdef", None).await,
        request(port, "POST", "/u/0123456789abcdef", one_click).await,
        request(port, "GET", "/u/%3Cscript%3E", None).await,
    ] {
        assert_eq!(reply.status, 404, "{reply:?}");
        assert_eq!(reply.body, elsewhere.body);
        reveals_nothing(&reply);
        safe_headers(&reply);
    }

    // A reload keeps answering, and the readiness it had.
    reload_tx.send(()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = request(port, "GET", "/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(request(port, "GET", "/readyz", None).await.status, 200);

    shutdown.cancel();
    daemon.await.unwrap().expect("the daemon stops cleanly");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "nothing listens after shutdown"
    );
    assert_eq!(unsubscribed_events(&store).await.len(), 1);
}

/// `/readyz` on a server of its own: not ready before the mailbox is read, ready after, not
/// ready once the database is gone; `/healthz` answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_needs_a_recent_read_and_the_database() {
    let (store, _db) = test_store().await;
    let last_read = leadloop::ingest::LastRead::new();
    let app = leadloop::http::App::new(
        store.clone(),
        last_read.subscribe(),
        Duration::from_secs(10),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(leadloop::http::serve(listener, app, shutdown.clone()));

    let r = request(port, "GET", "/readyz", None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready: mailbox: not read yet\n")
    );
    last_read.mark();
    let r = request(port, "GET", "/readyz", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));

    store.close().await;
    let r = request(port, "GET", "/readyz", None).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.starts_with("not ready: database"), "{}", r.body);
    assert_eq!(request(port, "GET", "/healthz", None).await.status, 200);
    // A token cannot be looked up without the database: try again later, not "unknown".
    let r = request(port, "GET", "/u/0123456789abcdef", None).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), "60");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
