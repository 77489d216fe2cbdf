//! The sender against a real, private Postfix (`leadloop_testkit::postfix`): what a real MTA
//! refuses, in its own words. A refusal of the sender or the relay must never mark a lead; a
//! real unknown user must still bounce; known users get exactly one copy.

use std::time::Duration;

use chrono::Utc;
use leadloop::domain::LeadStatus;
use leadloop::store::{OutboxState, PausedBy, Store};
use tokio_util::sync::CancellationToken;

use crate::postfix::PrivatePostfix;
use crate::send::{daemon_config, entry, plain, sender, smtp_config};
use crate::support::{
    assert_bounced_and_suppressed, lead_by_email, run_cli, seed_leads, test_store,
};

/// Listener 0 takes mail for the known users; 1 refuses every sender; 2 relays only for
/// authenticated clients, as a submission server left without AUTH in `[smtp]` does.
const LISTENERS: &[&[&str]] = &[
    &[],
    &["smtpd_sender_restrictions=reject"],
    &["smtpd_recipient_restrictions=permit_sasl_authenticated,reject"],
];
const KNOWN: &[&str] = &["ana@example.org", "bo@example.org"];

async fn drain(store: &Store, port: u16) -> leadloop::send::SendReport {
    sender(store, &smtp_config(port, 2))
        .drain(CancellationToken::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_postfix_refusing_us_marks_no_lead_and_a_real_unknown_user_bounces() {
    let (store, _db) = test_store().await;
    let postfix = PrivatePostfix::start(KNOWN, LISTENERS).expect("starting Postfix");
    let emails: Vec<String> = ["ana@example.org", "bo@example.org", "nobody@example.org"]
        .map(String::from)
        .to_vec();
    let leads = seed_leads(&store, &emails).await;
    let mut ids = Vec::new();
    for (n, lead) in leads.iter().enumerate() {
        let m = plain(Some(lead.id.0), n as i64 + 1, lead.email.as_str());
        ids.push(store.enqueue(&m, Utc::now()).await.unwrap().unwrap());
    }

    // Sender refused (`554 5.7.1 <…>: Sender address rejected: Access denied`, at RCPT), then
    // relay refused (`554 5.7.1 <…>: Recipient address rejected: Access denied`): about us.
    for (listener, words) in [
        (1, "Sender address rejected"),
        (2, "Recipient address rejected: Access denied"),
    ] {
        let report = drain(&store, postfix.port(listener)).await;
        assert!(report.held >= 1 && report.paused, "{listener}: {report:?}");
        assert_eq!(report.failed + report.sent, 0, "{listener}: {report:?}");
        for e in &emails {
            let lead = lead_by_email(&store, e).await.unwrap();
            assert_eq!(lead.status, LeadStatus::New, "{listener}: {e}");
            assert!(store.suppressed(e).await.unwrap().is_none(), "{e}");
        }
        for id in &ids {
            assert_eq!(entry(&store, *id).await.state, OutboxState::Pending);
        }
        let pause = store.sending_paused().await.unwrap().expect("paused");
        assert_eq!(pause.by, PausedBy::Breaker);
        assert!(
            pause.reason.contains(words),
            "{listener}: {pause:?}\n{}",
            postfix.log()
        );
        assert!(store.resume_sending(Utc::now()).await.unwrap().is_some());
    }
    assert!(postfix.delivered().is_empty());

    // The right server: the known users get one copy each, the unknown one really bounces.
    let report = drain(&store, postfix.port(0)).await;
    assert_eq!(
        (report.sent, report.failed, report.held, report.paused),
        (2, 1, 0, false),
        "{report:?}"
    );
    assert_bounced_and_suppressed(&store, "nobody@example.org").await;
    let nobody = entry(&store, ids[2]).await;
    assert!(
        nobody.last_error.as_deref().unwrap_or("").contains("5.1.1"),
        "{nobody:?}"
    );
    postfix.wait_delivered(2, Duration::from_secs(20));
    for address in KNOWN {
        let copies = postfix.delivered_to(address);
        assert_eq!(copies.len(), 1, "{address}\n{}", postfix.log());
    }
    // Later passes send nothing more.
    let report = drain(&store, postfix.port(0)).await;
    assert_eq!(report.sent + report.failed, 0, "{report:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(postfix.delivered().len(), 2);
}

/// The first-run experience the defect was found in: `[smtp]` without AUTH against a
/// submission server, `run --once` with four leads' messages due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_without_auth_pauses_and_says_so() {
    let (store, db) = test_store().await;
    let postfix = PrivatePostfix::start(KNOWN, LISTENERS).expect("starting Postfix");
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, postfix.port(2));
    let emails: Vec<String> = (0..4).map(|i| format!("l{i}@example.net")).collect();
    let leads = seed_leads(&store, &emails).await;
    for (n, lead) in leads.iter().enumerate() {
        let m = plain(Some(lead.id.0), n as i64 + 1, lead.email.as_str());
        store.enqueue(&m, Utc::now()).await.unwrap();
    }
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 messages sent"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    assert!(out.contains("sending is paused"), "{out}");
    assert!(
        out.contains("Recipient address rejected: Access denied"),
        "{out}"
    );
    for e in &emails {
        assert_eq!(
            lead_by_email(&store, e).await.unwrap().status,
            LeadStatus::New
        );
        assert!(store.suppressed(e).await.unwrap().is_none());
    }
    let (_, out) = run_cli(&config, &["sending", "status"]);
    assert!(out.contains("likely fix"), "{out}");
    let (_, out) = run_cli(&config, &["suppressions", "list", "--json"]);
    assert_eq!(out.trim(), "", "nothing suppressed: {out}");
}

/// `send-test` against a server that refuses our sender: the person reads the server's reply
/// and the fix; the test address is not suppressed and the daemon's sending is not paused (it
/// pauses by itself if its own mail meets the same refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_refused_for_our_sender_suppresses_nothing() {
    let (store, db) = test_store().await;
    let postfix = PrivatePostfix::start(KNOWN, LISTENERS).expect("starting Postfix");
    let dir = tempfile::tempdir().unwrap();
    let config = daemon_config(dir.path(), &db.url, postfix.port(1));
    let (code, out) = run_cli(&config, &["send-test", "--to", "ana@example.org"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Sender address rejected"), "{out}");
    assert!(out.contains("likely fix"), "{out}");
    assert!(store.suppressed("ana@example.org").await.unwrap().is_none());
    assert!(store.sending_paused().await.unwrap().is_none());

    // The same command against the right listener delivers.
    let config = daemon_config(dir.path(), &db.url, postfix.port(0));
    let (code, out) = run_cli(&config, &["send-test", "--to", "ana@example.org"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(postfix.wait_delivered(1, Duration::from_secs(20)).len(), 1);
}
