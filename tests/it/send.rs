//! The sender against real SMTP peers on loopback: Postfix's `smtp-sink`, and, for faults it
//! cannot script (fail once then succeed, drop mid-DATA, answer late), the scripted server of
//! `leadloop_testkit::smtp_server`. Every message's fate is checked on both sides: what the
//! server accepted, and what the outbox says.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use leadloop::config::{SmtpConfig, SmtpServer, SmtpTransport, TlsMode};
use leadloop::send::{Sender, SenderOptions};
use leadloop::store::{NewOutboxMessage, OutboxId, OutboxState, Store};
use lettre::message::{Mailbox, MultiPart};
use tokio_util::sync::CancellationToken;

use crate::smtp_server::{Script, TestSmtp, TlsStart, test_tls};
use crate::smtp_sink::SmtpSink;
use crate::support::{ConfigFile, run_cli, seed_leads, test_store, with_config};

pub fn smtp_config(port: u16, connections: u32) -> SmtpConfig {
    SmtpConfig {
        transport: SmtpTransport::Smtp(SmtpServer {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            ca_file: None,
            hello_name: Some("sender.test".into()),
            auth: None,
        }),
        envelope_from: None,
        verp: false,
        connections,
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_millis(100),
        retry_max_interval: Duration::from_millis(200),
        retry_max_age: Duration::from_secs(3600),
        pause_after_refusals: 5,
    }
}

pub fn sender(store: &Store, config: &SmtpConfig) -> Sender {
    Sender::with_options(
        config,
        None,
        store.clone(),
        SenderOptions::from_config(config),
    )
    .unwrap()
}

/// A plain message to `to`, as the scheduler would enqueue it.
pub fn plain(lead: Option<i64>, n: i64, to: &str) -> NewOutboxMessage {
    let mid = format!("{n}.step1.{}@company.test", std::process::id());
    NewOutboxMessage {
        lead_id: lead.map(leadloop::domain::LeadId),
        enrollment_id: Some(leadloop::domain::EnrollmentId(n)),
        step_id: Some("step1".into()),
        from: "hello@company.test".into(),
        envelope_from: "bounces@company.test".into(),
        recipient: to.into(),
        message_id: mid.clone().into(),
        raw: format!(
            "From: hello@company.test\r\nTo: {to}\r\nSubject: Welcome {n}\r\nMessage-ID: <{mid}>\r\n\r\nHello number {n}.\r\n"
        )
        .into_bytes(),
        due_at: Utc::now(),
    }
}

pub async fn entry(store: &Store, id: OutboxId) -> leadloop::store::OutboxEntry {
    store.outbox_entry(id).await.unwrap().unwrap()
}

/// Runs the sender as the daemon does until `done` holds (or fails the test after 20 s).
pub async fn run_until<F>(sender: &Sender, store: &Store, mut done: F)
where
    F: AsyncFnMut(&Store) -> bool,
{
    let cancel = CancellationToken::new();
    let task = {
        let sender = sender.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move { sender.run(cancel).await })
    };
    let start = Instant::now();
    while !done(store).await {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_message_arrives_whole_with_its_message_id() {
    let (store, _db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let leads = seed_leads(&store, &["eve@example.org".into()]).await;
    let mid = format!("welcome.{}@company.test", std::process::id());
    let to = Mailbox::new(
        Some("Eve Example".into()),
        "eve@example.org".parse().unwrap(),
    );
    let message = lettre::Message::builder()
        .from("Hello <hello@company.test>".parse().unwrap())
        .to(to)
        .subject("Grüße aus dem Büro")
        .message_id(Some(format!("<{mid}>")))
        .multipart(MultiPart::alternative_plain_html(
            "Hello Eve,\n.\n..a line that starts with dots\n".to_owned(),
            "<p>Hello <b>Eve</b></p>".to_owned(),
        ))
        .unwrap();
    let raw = message.formatted();
    let id = store
        .enqueue(
            &NewOutboxMessage {
                lead_id: Some(leads[0].id),
                enrollment_id: Some(leadloop::domain::EnrollmentId(1)),
                step_id: Some("welcome".into()),
                from: "hello@company.test".into(),
                envelope_from: "bounces@company.test".into(),
                recipient: "eve@example.org".into(),
                message_id: mid.clone().into(),
                raw: raw.clone(),
                due_at: Utc::now(),
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();

    let report = sender(&store, &smtp_config(sink.port(), 2))
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.sent, 1, "{report:?}");

    let e = entry(&store, id).await;
    assert_eq!(e.state, OutboxState::Sent);
    assert_eq!(e.message_id, mid.as_str());
    assert!(
        e.smtp_response.as_deref().unwrap_or("").starts_with("250"),
        "{e:?}"
    );
    let dumped = sink.messages();
    assert_eq!(dumped.len(), 1);
    let text = String::from_utf8(dumped[0].clone()).unwrap();
    assert!(text.contains("X-Rcpt-Args: <eve@example.org>"), "{text}");
    assert!(
        text.contains("X-Mail-Args: <bounces@company.test>"),
        "{text}"
    );
    // What arrived is byte for byte what was enqueued (the sink stores LF line ends and adds
    // its own headers in front): dot-stuffing was undone, 8-bit text kept.
    let body_start = text.find("From: ").unwrap();
    assert_eq!(
        text[body_start..].trim_end(),
        String::from_utf8(raw.clone())
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end()
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("parsable");
    assert_eq!(parsed.message_id(), Some(mid.as_str()));
    assert_eq!(parsed.subject(), Some("Grüße aus dem Büro"));
    assert_eq!(parsed.text_body.len(), 1);
    assert_eq!(parsed.html_body.len(), 1);
    assert!(
        parsed
            .body_text(0)
            .unwrap()
            .contains("..a line that starts"),
        "{:?}",
        parsed.body_text(0)
    );
    let timeline = store.timeline(&leads[0]).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|ev| ev.kind == "sent" && ev.detail["message_id"] == mid.as_str()),
        "{timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_fails_bounces_and_is_suppressed() {
    let (store, _db) = test_store().await;
    let sink = SmtpSink::start(&["-f", "RCPT", "-B", "550 5.1.1 User unknown"]).unwrap();
    let leads = seed_leads(&store, &["gone@example.org".into()]).await;
    let id = store
        .enqueue(
            &plain(Some(leads[0].id.0), 1, "gone@example.org"),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let s = sender(&store, &smtp_config(sink.port(), 1));
    let report = s.drain(CancellationToken::new()).await;
    assert_eq!(report.failed, 1, "{report:?}");
    let e = entry(&store, id).await;
    assert_eq!(e.state, OutboxState::Failed);
    assert!(
        e.last_error.as_deref().unwrap_or("").contains("RCPT TO"),
        "{e:?}"
    );
    assert_eq!(e.attempts, 1, "a 5xx is never retried");
    crate::support::assert_bounced_and_suppressed(&store, "gone@example.org").await;
    assert_eq!(sink.count(), 0);

    // The next step to the same address is stopped before it reaches any server.
    let next = store
        .enqueue(
            &plain(Some(leads[0].id.0), 2, "gone@example.org"),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let report = s.drain(CancellationToken::new()).await;
    assert_eq!(report.suppressed, 1, "{report:?}");
    assert_eq!(entry(&store, next).await.state, OutboxState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_after_data_fails_without_suppressing_the_recipient() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script {
        data_end: VecDeque::from(["554 5.7.1 Message rejected as spam"]),
        ..Script::default()
    })
    .await;
    let id = store
        .enqueue(&plain(None, 1, "ana@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    sender(&store, &smtp_config(server.port, 1))
        .drain(CancellationToken::new())
        .await;
    let e = entry(&store, id).await;
    assert_eq!(e.state, OutboxState::Failed);
    assert!(e.last_error.unwrap().contains("554"));
    assert!(store.suppressed("ana@example.org").await.unwrap().is_none());
    assert_eq!(server.accepted().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_on_rcpt_and_data_are_retried_and_delivered_once() {
    let (store, _db) = test_store().await;
    // Command by command, and with MAIL, RCPT and DATA pipelined in one write.
    for (step, pipelining) in [(1, false), (2, true)] {
        let server = TestSmtp::start(Script {
            rcpt: VecDeque::from(["451 4.3.0 Try again later"]),
            data_end: VecDeque::from(["452 4.3.1 Insufficient system storage"]),
            pipelining,
            ..Script::default()
        })
        .await;
        let id = store
            .enqueue(&plain(None, step, "ana@example.org"), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let s = sender(&store, &smtp_config(server.port, 1));
        run_until(&s, &store, async |st: &Store| {
            st.outbox_entry(id).await.unwrap().unwrap().state == OutboxState::Sent
        })
        .await;
        let e = entry(&store, id).await;
        assert_eq!(
            e.attempts, 3,
            "RCPT 451, then data 452, then accepted (pipelining: {pipelining}): {e:?}"
        );
        assert!(
            e.last_error.is_none() && e.smtp_response.as_deref().unwrap_or("").starts_with("250"),
            "{e:?}"
        );
        assert_eq!(server.accepted().len(), 1, "delivered exactly once");
        assert_eq!(
            server.received_data(),
            2,
            "the refused copy was not kept by the server"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_starting_with_a_dot_arrive_unchanged() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script {
        pipelining: true,
        ..Script::default()
    })
    .await;
    let mut m = plain(None, 1, "ana@example.org");
    let raw = "From: hello@company.test\r\nTo: ana@example.org\r\nSubject: Dots\r\n\r\n\
               .a line that starts with a dot\r\n.\r\n..\r\nnot.at.the.start\r\n";
    m.raw = raw.as_bytes().to_vec();
    let id = store.enqueue(&m, Utc::now()).await.unwrap().unwrap();
    sender(&store, &smtp_config(server.port, 1))
        .drain(CancellationToken::new())
        .await;
    assert_eq!(entry(&store, id).await.state, OutboxState::Sent);
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&accepted[0].1),
        raw,
        "the server's copy, dots un-doubled, is the message byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_before_the_end_of_data_left_is_retried_and_delivered_once() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script {
        drop_mid_data: 1,
        ..Script::default()
    })
    .await;
    let ids: Vec<OutboxId> = {
        let mut v = Vec::new();
        for n in 0..3 {
            let mut m = plain(None, n, &format!("p{n}@example.org"));
            if n == 0 {
                // Larger than the socket buffers on both sides: the server hangs up after the
                // first line, while most of the message (and its end-of-data line) has not
                // left, so the write fails and the retry cannot be a second copy. (A small
                // message would be written whole before the hang-up: `interrupted`, see
                // refusals.rs.)
                let line = "All work and no play makes a dull message, line after line.\r\n";
                m.raw
                    .extend(line.repeat(16 * 1024 * 1024 / line.len()).into_bytes());
            }
            v.push(store.enqueue(&m, Utc::now()).await.unwrap().unwrap());
        }
        v
    };
    let s = sender(&store, &smtp_config(server.port, 1));
    run_until(&s, &store, async |st: &Store| {
        st.outbox_counts().await.unwrap().get("sent") == Some(&3)
    })
    .await;
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 3);
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for (rcpt, _) in &accepted {
        *per_recipient.entry(rcpt.clone()).or_default() += 1;
    }
    assert!(per_recipient.values().all(|&n| n == 1), "{per_recipient:?}");
    let attempts: Vec<u32> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(entry(&store, *id).await.attempts);
        }
        v
    };
    assert_eq!(attempts.iter().sum::<u32>(), 4, "one retry: {attempts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_too_slow_to_confirm_leaves_the_message_interrupted_not_duplicated() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script {
        slow_data_end: Some(Duration::from_secs(2)),
        ..Script::default()
    })
    .await;
    let mut config = smtp_config(server.port, 1);
    config.timeout = Duration::from_millis(700);
    let id = store
        .enqueue(&plain(None, 1, "ana@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let report = sender(&store, &config)
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.interrupted, 1, "{report:?}");
    // The server keeps the message once it finally answers; nothing sends a second copy.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let report = sender(&store, &config)
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.sent + report.retried, 0, "{report:?}");
    assert_eq!(server.accepted().len(), 1);
    let e = entry(&store, id).await;
    assert_eq!(e.state, OutboxState::Interrupted);
    assert_eq!(e.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_max_age() {
    let (store, _db) = test_store().await;
    // Nothing listens on this port: every attempt is a refused connection.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = smtp_config(port, 1);
    config.retry_max_age = Duration::from_millis(300);
    let id = store
        .enqueue(&plain(None, 1, "ana@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let s = sender(&store, &config);
    run_until(&s, &store, async |st: &Store| {
        st.outbox_entry(id).await.unwrap().unwrap().state == OutboxState::Failed
    })
    .await;
    let e = entry(&store, id).await;
    assert!(e.attempts >= 2, "{e:?}");
    assert!(e.last_error.unwrap().contains("gave up after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_over_parallel_connections_each_arrive_once() {
    let (store, _db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let msgs: Vec<_> = (0..300)
        .map(|n| plain(None, n, &format!("p{n}@example.org")))
        .collect();
    store.enqueue_many(&msgs, Utc::now()).await.unwrap();
    let report = sender(&store, &smtp_config(sink.port(), 8))
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.sent, 300, "{report:?}");
    let mut seen = std::collections::HashSet::new();
    for m in sink.messages() {
        let text = String::from_utf8_lossy(&m).into_owned();
        let rcpt = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Rcpt-Args: "))
            .unwrap()
            .to_owned();
        assert!(seen.insert(rcpt.clone()), "{rcpt} received twice");
    }
    assert_eq!(seen.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_transport_writes_one_eml_per_message() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = SmtpConfig {
        transport: SmtpTransport::File(dir.path().join("outbox")),
        ..smtp_config(1, 2)
    };
    let m = plain(None, 7, "ana@example.org");
    store.enqueue(&m, Utc::now()).await.unwrap();
    let report = sender(&store, &config)
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.sent, 1);
    let path: PathBuf = dir
        .path()
        .join("outbox")
        .join(format!("{}.eml", m.message_id));
    assert_eq!(std::fs::read(&path).unwrap(), m.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_finishes_the_message_in_flight_and_starts_no_other() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script {
        slow_data_end: Some(Duration::from_millis(800)),
        ..Script::default()
    })
    .await;
    let first = store
        .enqueue(&plain(None, 1, "ana@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let second = store
        .enqueue(&plain(None, 2, "bo@example.org"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let s = sender(&store, &smtp_config(server.port, 1));
    let cancel = CancellationToken::new();
    let task = {
        let s = s.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move { s.run(cancel).await })
    };
    // The first message's data is with the server, which takes its time to confirm: stop now,
    // as SIGTERM does.
    let start = Instant::now();
    while server.received_data() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let report = task.await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(entry(&store, first).await.state, OutboxState::Sent);
    assert_eq!(entry(&store, second).await.state, OutboxState::Pending);
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_outbox_row_fails_without_reaching_the_server() {
    let (store, _db) = test_store().await;
    let server = TestSmtp::start(Script::default()).await;
    // Rows may have been edited by hand: an address with a line break never reaches RCPT TO.
    let bad = store
        .enqueue(
            &plain(None, 1, "eve@example.org\r\nRCPT TO:<x@y.example>"),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let report = sender(&store, &smtp_config(server.port, 1))
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.failed, 1, "{report:?}");
    let e = entry(&store, bad).await;
    assert_eq!(e.state, OutboxState::Failed);
    assert!(e.last_error.unwrap().contains("invalid recipient"));
    assert!(store.suppressed("eve@example.org").await.unwrap().is_none());
    assert_eq!(server.received_data(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_auth_implicit_and_starttls() {
    let (store, _db) = test_store().await;
    let (acceptor, certs) = test_tls();
    for (mode, start) in [
        (TlsMode::Implicit, TlsStart::Implicit),
        (TlsMode::Starttls, TlsStart::Starttls),
    ] {
        let server = TestSmtp::start(Script {
            tls: Some((start, acceptor.clone())),
            auth: Some(("alice", "s3cret-pw")),
            ..Script::default()
        })
        .await;
        let server_config = |ca: Option<PathBuf>| SmtpConfig {
            transport: SmtpTransport::Smtp(SmtpServer {
                host: "127.0.0.1".into(),
                port: server.port,
                tls: mode,
                ca_file: ca,
                hello_name: Some("sender.test".into()),
                auth: Some((
                    "alice".into(),
                    leadloop::config::SecretSource::Env("UNUSED".into()),
                )),
            }),
            ..smtp_config(server.port, 1)
        };
        let password = |pw: &str| {
            leadloop::config::SecretSource::Plain(pw.into())
                .resolve()
                .unwrap()
        };
        let trusted = server_config(Some(certs.path().join("ca.pem")));
        let sender_with = |config: &SmtpConfig, pw: &str| {
            Sender::with_options(
                config,
                Some(password(pw)),
                store.clone(),
                SenderOptions::from_config(config),
            )
            .unwrap()
        };

        // Right password, trusted certificate: delivered over TLS after AUTH.
        let n = if mode == TlsMode::Implicit { 1 } else { 10 };
        let ok = store
            .enqueue(&plain(None, n, "ana@example.org"), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            sender_with(&trusted, "s3cret-pw")
                .send_now(ok)
                .await
                .unwrap()
                .map(|o| matches!(o, leadloop::store::SendOutcome::Sent { .. })),
            Some(true)
        );
        assert_eq!(server.shared.lock().unwrap().secured, [(true, true)]);

        // A wrong password is a configuration problem: the message waits, sending pauses,
        // the lead is untouched, and the password never appears in the recorded error.
        let lead = seed_leads(&store, &[format!("bo{n}@example.org")]).await;
        let wrong = store
            .enqueue(
                &plain(Some(lead[0].id.0), n + 1, lead[0].email.as_str()),
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        let report = sender_with(&trusted, "hunter2-wrong")
            .drain(CancellationToken::new())
            .await;
        assert_eq!((report.held, report.paused), (1, true), "{report:?}");
        let e = entry(&store, wrong).await;
        assert_eq!(e.state, OutboxState::Pending, "{e:?}");
        let err = e.last_error.unwrap();
        assert!(err.contains("535") && err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let pause = store.sending_paused().await.unwrap().expect("paused");
        assert!(pause.reason.contains("535"), "{pause:?}");
        assert!(!pause.reason.contains("hunter2"), "{pause:?}");
        assert_eq!(
            crate::support::lead_by_email(&store, lead[0].email.as_str())
                .await
                .unwrap()
                .status,
            leadloop::domain::LeadStatus::New
        );
        assert!(
            store
                .suppressed(lead[0].email.as_str())
                .await
                .unwrap()
                .is_none()
        );
        store.resume_sending(Utc::now()).await.unwrap();

        // An untrusted certificate is refused before anything is sent: the same.
        let untrusted = server_config(None);
        let report = sender_with(&untrusted, "s3cret-pw")
            .drain(CancellationToken::new())
            .await;
        assert_eq!((report.held, report.paused), (1, true), "{report:?}");
        let e = entry(&store, wrong).await;
        assert_eq!(e.state, OutboxState::Pending, "{e:?}");
        assert!(e.last_error.unwrap().to_lowercase().contains("certificate"));
        assert_eq!(server.accepted().len(), 1);
        store.resume_sending(Utc::now()).await.unwrap();

        // Fixed: the message that waited is delivered, once.
        let report = sender_with(&trusted, "s3cret-pw")
            .drain(CancellationToken::new())
            .await;
        assert_eq!((report.sent, report.paused), (1, false), "{report:?}");
        assert_eq!(server.accepted().len(), 2);
    }
}

// ---- The daemon as a process ----------------------------------------------------------------

/// A configuration for the `leadloop` binary: an empty Maildir as the inbox, the test database,
/// and `[smtp]` pointing at `port` with 8 connections.
pub fn daemon_config(dir: &std::path::Path, db_url: &str, port: u16) -> PathBuf {
    ConfigFile::new(dir, db_url)
        .maildir("inbox")
        .identity(&["hello@company.test"], &[])
        .smtp(port)
        .write()
}

/// The recipient of each message smtp-sink accepted.
pub fn sink_recipients(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("X-Rcpt-Args: "))
                .unwrap_or("?")
                .trim_matches(['<', '>'])
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_sending_then_restart_sends_nothing_twice() {
    let (store, db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, sink.port());
    let total = 2000;
    let msgs: Vec<_> = (0..total)
        .map(|n| plain(None, n, &format!("p{n}@example.org")))
        .collect();
    store.enqueue_many(&msgs, Utc::now()).await.unwrap();

    let mut daemon = with_config(&config, &["run"]).spawn();
    let start = Instant::now();
    while sink.count() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing sent in time"
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    daemon.kill().expect("SIGKILL");
    daemon.wait().unwrap();
    let at_kill = sink.count();
    assert!(
        at_kill < total as usize,
        "the kill came after everything was sent; nothing tested"
    );
    let counts = store.outbox_counts().await.unwrap();
    let in_flight = counts.get("sending").copied().unwrap_or(0);
    eprintln!("at the kill: {at_kill} received, outbox {counts:?}");
    assert!(
        in_flight <= 8,
        "at most one message per connection is in flight: {counts:?}"
    );

    // Restart and let it finish; abandoned claims become `interrupted`, never resent.
    let mut daemon = with_config(&config, &["run"]).spawn();
    let start = Instant::now();
    loop {
        let counts = store.outbox_counts().await.unwrap();
        let open: i64 = ["pending", "retry", "sending"]
            .iter()
            .filter_map(|s| counts.get(*s))
            .sum();
        if open == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not finished: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM, as systemd stops it: a clean exit.
    let status = std::process::Command::new("kill")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(daemon.wait().unwrap().success());

    let received = sink_recipients(&sink);
    let mut seen = std::collections::HashSet::new();
    for r in &received {
        assert!(seen.insert(r.clone()), "{r} received twice");
    }
    let counts = store.outbox_counts().await.unwrap();
    let sent = counts.get("sent").copied().unwrap_or(0);
    let interrupted = counts.get("interrupted").copied().unwrap_or(0);
    assert_eq!(sent + interrupted, total, "{counts:?}");
    assert!(
        interrupted <= in_flight,
        "{counts:?}, {in_flight} in flight at the kill"
    );
    let sent_rows = store
        .list_outbox(Some(OutboxState::Sent), total as usize)
        .await
        .unwrap();
    for e in &sent_rows {
        assert!(
            seen.contains(&e.recipient),
            "{} marked sent, never received",
            e.recipient
        );
    }
    assert!(received.len() as i64 <= sent + interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_and_the_outbox_commands() {
    let (store, db) = test_store().await;
    let sink = SmtpSink::start(&[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, sink.port());

    let (code, out) = run_cli(&config, &["send-test", "--to", "Me@Example.org"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("sent to me@example.org (outbox 1"), "{out}");
    assert_eq!(sink_recipients(&sink), ["me@example.org"]);
    let (_, out) = run_cli(&config, &["outbox", "list", "--json"]);
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["state"], "sent");
    assert_eq!(row["from"], "hello@company.test");
    let dumped = String::from_utf8(sink.messages().remove(0)).unwrap();
    assert!(
        dumped.contains(&format!(
            "Message-ID: <{}>",
            row["message_id"].as_str().unwrap()
        )),
        "{dumped}"
    );

    // Nothing listens any more: the message waits for a retry, and a person decides.
    drop(sink);
    let (code, out) = run_cli(&config, &["send-test", "--to", "me@example.org"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not sent yet (outbox 2)"), "{out}");
    assert!(out.contains("cannot connect"), "{out}");
    assert_eq!(run_cli(&config, &["outbox", "cancel", "2"]).0, 0);
    let (_, out) = run_cli(&config, &["outbox", "list", "--state", "cancelled"]);
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("2  cancelled"),
        "{out}"
    );
    assert_eq!(run_cli(&config, &["outbox", "retry", "2"]).0, 0);
    assert_eq!(
        store
            .outbox_entry(OutboxId(2))
            .await
            .unwrap()
            .unwrap()
            .state,
        OutboxState::Pending
    );
    let (code, _) = run_cli(&config, &["outbox", "retry", "1"]);
    assert_eq!(code, 1, "a sent message is never sent again");
    assert_eq!(run_cli(&config, &["outbox", "cancel", "99"]).0, 1);
    assert_ne!(
        run_cli(&config, &["send-test", "--to", "not an address"]).0,
        0
    );
}
