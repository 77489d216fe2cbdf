//! Who is at fault, and whether the end of data had left: each failure class of a send gets
//! its own outcome, checked against the scripted SMTP server (`leadloop_testkit::smtp_server`)
//! on both sides.
//!
//! | class | expected |
//! |---|---|
//! | the server refuses the sender / the client / the relay (at MAIL or RCPT) | message waits, sending pauses, lead untouched |
//! | N different recipients in a row refused with the same reply | all of them wait, sending pauses, nothing suppressed |
//! | a run of refusals broken by a success | recorded as they are: real bounces |
//! | connection closed / reset / TLS closed after the end of data | `interrupted`, one copy at the server, never resent |

use std::collections::VecDeque;
use std::time::Duration;

use chrono::Utc;
use leadloop::domain::LeadStatus;
use leadloop::store::{OutboxId, OutboxState, PausedBy, Store};
use tokio_util::sync::CancellationToken;

use crate::send::{entry, plain, sender, smtp_config};
use crate::smtp_server::{AfterDot, Script, TestSmtp, TlsStart, test_tls};
use crate::support::{lead_by_email, seed_leads, test_store};

/// Seeds one lead per address and enqueues one message to each; returns the rows.
async fn enqueue_for(store: &Store, emails: &[String]) -> Vec<OutboxId> {
    let leads = seed_leads(store, emails).await;
    let mut ids = Vec::new();
    for (n, lead) in leads.iter().enumerate() {
        let m = plain(Some(lead.id.0), n as i64 + 1, lead.email.as_str());
        ids.push(store.enqueue(&m, Utc::now()).await.unwrap().unwrap());
    }
    ids
}

/// Asserts that no lead of `emails` was marked or suppressed.
async fn assert_untouched(store: &Store, emails: &[String]) {
    for e in emails {
        let lead = lead_by_email(store, e).await.unwrap();
        assert_eq!(lead.status, LeadStatus::New, "{e}");
        assert!(store.suppressed(e).await.unwrap().is_none(), "{e}");
    }
}

/// One pass of a one-connection sender (messages go out in order) against `port`.
async fn drain_one(store: &Store, port: u16) -> leadloop::send::SendReport {
    sender(store, &smtp_config(port, 1))
        .drain(CancellationToken::new())
        .await
}

fn addresses(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.org")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_refused_at_rcpt_pauses_sending_and_marks_no_lead() {
    let (store, _db) = test_store().await;
    // What Postfix says with reject_sender_login_mismatch, at RCPT (smtpd_delay_reject).
    let server = TestSmtp::start(Script {
        rcpt: VecDeque::from([
            "553 5.7.1 <bounces@company.test>: Sender address rejected: not owned by user alice",
        ]),
        ..Script::default()
    })
    .await;
    let emails = addresses("s", 3);
    let ids = enqueue_for(&store, &emails).await;
    let s = sender(&store, &smtp_config(server.port, 1));
    let report = s.drain(CancellationToken::new()).await;
    assert_eq!(
        (report.held, report.failed, report.sent, report.paused),
        (1, 0, 0, true),
        "{report:?}"
    );
    assert_untouched(&store, &emails).await;
    for id in &ids {
        assert_eq!(entry(&store, *id).await.state, OutboxState::Pending);
    }
    let held = entry(&store, ids[0]).await.last_error.unwrap();
    assert!(held.contains("Sender address rejected"), "{held}");
    let pause = store.sending_paused().await.unwrap().expect("paused");
    assert_eq!(pause.by, PausedBy::Breaker);
    assert!(pause.reason.contains("553 5.7.1"), "{pause:?}");
    assert!(pause.reason.contains("likely fix"), "{pause:?}");

    // Paused: another pass sends nothing, however long it is due.
    let report = s.drain(CancellationToken::new()).await;
    assert_eq!((report.sent, report.held, report.paused), (0, 0, true));
    assert_eq!(server.received_data(), 0);

    // A person fixes the server (the script is used up) and resumes: each arrives once.
    assert!(store.resume_sending(Utc::now()).await.unwrap().is_some());
    let report = s.drain(CancellationToken::new()).await;
    assert_eq!((report.sent, report.paused), (3, false), "{report:?}");
    let mut got: Vec<String> = server.accepted().into_iter().map(|(r, _)| r).collect();
    got.sort();
    assert_eq!(got, emails);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mail_from_or_missing_auth_pauses_sending() {
    for script in [
        Script {
            mail: VecDeque::from(["550 5.7.1 Sender refused"]),
            ..Script::default()
        },
        Script {
            // Postfix without AUTH configured: the relay refusal names the recipient.
            rcpt: VecDeque::from([
                "554 5.7.1 <m0@example.org>: Recipient address rejected: Access denied",
            ]),
            ..Script::default()
        },
        Script {
            mail: VecDeque::from(["530 5.7.0 Authentication required"]),
            pipelining: true,
            ..Script::default()
        },
    ] {
        let (store, _db) = test_store().await;
        let server = TestSmtp::start(script).await;
        let emails = addresses("m", 2);
        let ids = enqueue_for(&store, &emails).await;
        let report = drain_one(&store, server.port).await;
        assert_eq!((report.held, report.paused), (1, true), "{report:?}");
        assert_untouched(&store, &emails).await;
        for id in ids {
            assert_eq!(entry(&store, id).await.state, OutboxState::Pending);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_recipients_refused_alike_trip_the_breaker_without_a_bounce() {
    let (store, _db) = test_store().await;
    // A server that claims every recipient is unknown is refusing us, whatever it says.
    let unknown = "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown";
    let server = TestSmtp::start(Script {
        rcpt: VecDeque::from(vec![unknown; 5]),
        ..Script::default()
    })
    .await;
    let emails = addresses("b", 7);
    let ids = enqueue_for(&store, &emails).await;
    let report = drain_one(&store, server.port).await;
    assert_eq!(
        (report.held, report.failed, report.paused),
        (5, 0, true),
        "{report:?}"
    );
    assert_untouched(&store, &emails).await;
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("pending"), Some(&7), "{counts:?}");
    let pause = store.sending_paused().await.unwrap().unwrap();
    assert!(
        pause.reason.contains("5 different recipients in a row"),
        "{pause:?}"
    );
    let first = entry(&store, ids[0]).await.last_error.unwrap();
    assert!(
        first.contains("not counted against the recipient"),
        "{first}"
    );

    // Resumed with the server fixed: all seven arrive, once each.
    store.resume_sending(Utc::now()).await.unwrap();
    let report = drain_one(&store, server.port).await;
    assert_eq!(report.sent, 7, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_of_refusals_is_recorded_as_real_bounces() {
    let (store, _db) = test_store().await;
    let unknown = "550 5.1.1 Recipient address rejected: User unknown";
    let server = TestSmtp::start(Script {
        rcpt: VecDeque::from(vec![unknown; 2]),
        ..Script::default()
    })
    .await;
    let emails = addresses("r", 4);
    let ids = enqueue_for(&store, &emails).await;
    let report = drain_one(&store, server.port).await;
    assert_eq!(
        (report.failed, report.sent, report.held, report.paused),
        (2, 2, 0, false),
        "{report:?}"
    );
    for (id, email) in ids.iter().zip(&emails).take(2) {
        assert_eq!(entry(&store, *id).await.state, OutboxState::Failed);
        crate::support::assert_bounced_and_suppressed(&store, email).await;
    }
    assert_untouched(&store, &emails[2..]).await;
    assert!(store.sending_paused().await.unwrap().is_none());
}

/// Sends one message to a server that fails the connection right after the end of data, in
/// the way given; the row must be `interrupted`, the server must have it once, and nothing
/// sends it again.
async fn after_the_dot(how: AfterDot) {
    let (store, _db) = test_store().await;
    let (acceptor, certs) = test_tls();
    let tls = how == AfterDot::TlsClose;
    let server = TestSmtp::start(Script {
        after_dot: VecDeque::from([how]),
        tls: tls.then(|| (TlsStart::Implicit, acceptor.clone())),
        ..Script::default()
    })
    .await;
    let mut config = smtp_config(server.port, 1);
    if tls && let leadloop::config::SmtpTransport::Smtp(s) = &mut config.transport {
        s.tls = leadloop::config::TlsMode::Implicit;
        s.ca_file = Some(certs.path().join("ca.pem"));
    }
    let emails = addresses("d", 1);
    let ids = enqueue_for(&store, &emails).await;
    let report = sender(&store, &config)
        .drain(CancellationToken::new())
        .await;
    assert_eq!(
        (report.interrupted, report.retried, report.sent),
        (1, 0, 0),
        "{how:?}: {report:?}"
    );
    let e = entry(&store, ids[0]).await;
    assert_eq!(e.state, OutboxState::Interrupted, "{how:?}: {e:?}");
    assert!(
        e.last_error
            .as_deref()
            .unwrap_or("")
            .contains("may have accepted it"),
        "{e:?}"
    );
    // Later passes (as after a restart) leave it alone: one copy at the server, ever.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = sender(&store, &config)
        .drain(CancellationToken::new())
        .await;
    assert_eq!(report.sent + report.retried + report.interrupted, 0);
    assert_eq!(server.received_data(), 1, "{how:?}");
    assert_eq!(entry(&store, ids[0]).await.attempts, 1);
    assert_untouched(&store, &emails).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_after_the_dot_is_interrupted_not_resent() {
    after_the_dot(AfterDot::Close).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_after_the_dot_is_interrupted_not_resent() {
    after_the_dot(AfterDot::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_closed_after_the_dot_is_interrupted_not_resent() {
    after_the_dot(AfterDot::TlsClose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_literal_host_in_the_configuration_connects() {
    let (_store, db) = test_store().await;
    let server = TestSmtp::start(Script {
        ipv6: true,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::send::daemon_config(dir.path(), &db.url, server.port);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"[::1]\"");
    std::fs::write(&config, text).unwrap();
    assert_eq!(crate::support::run_cli(&config, &["check"]).0, 0);
    let (code, out) = crate::support::run_cli(&config, &["send-test", "--to", "v@example.org"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(server.accepted().len(), 1);
}
