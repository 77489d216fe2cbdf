//! Undoing a wrong refusal: `leadloop suppressions list|remove|add` and `leadloop leads status`
//! run as the real binary against the test database, after a real SMTP refusal marked the lead
//! bounced and suppressed its address.

use std::path::Path;

use chrono::Utc;
use leadloop::send::{Sender, SenderOptions};
use leadloop::store::{Store, Suppression};
use tokio_util::sync::CancellationToken;

use crate::send::{daemon_config, plain, smtp_config};
use crate::smtp_sink::SmtpSink;
use crate::support::{
    assert_bounced_and_suppressed, lead_by_email, seed_leads, test_store, with_config,
};

/// Exit code, stdout and stderr of `leadloop ARGS --config CONFIG`.
fn run_cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    with_config(config, args).run()
}

/// The `timeline` of `leads show EMAIL --json`.
fn timeline(config: &Path, email: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = run_cli(config, &["leads", "show", email, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let lead: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    lead["timeline"].as_array().unwrap().clone()
}

fn events<'a>(timeline: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    timeline.iter().filter(|e| e["kind"] == kind).collect()
}

/// Sends one message to `to` through smtp-sink started with `sink_args`, as the daemon would;
/// the drain's (sent, failed) counts.
async fn send_one(
    store: &Store,
    lead: i64,
    n: i64,
    to: &str,
    sink_args: &[&str],
) -> (usize, usize) {
    let sink = SmtpSink::start(sink_args).unwrap();
    store
        .enqueue(&plain(Some(lead), n, to), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let config = smtp_config(sink.port(), 1);
    let sender = Sender::with_options(
        &config,
        None,
        store.clone(),
        SenderOptions::from_config(&config),
    )
    .unwrap();
    let report = sender.drain(CancellationToken::new()).await;
    (report.sent, report.failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_refusal_is_undone_and_the_lead_is_mailed_again() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing here sends: the [smtp] port is never used.
    let config = daemon_config(dir.path(), &db.url, 1);
    let leads = seed_leads(&store, &["eve@example.org".into()]).await;
    let eve = leads[0].id.0;

    // A server wrongly refuses Eve: the sender marks her bounced and suppresses her address.
    let refusing = ["-f", "RCPT", "-B", "550 5.1.1 User unknown"];
    assert_eq!(
        send_one(&store, eve, 1, "eve@example.org", &refusing).await,
        (0, 1)
    );
    assert_bounced_and_suppressed(&store, "eve@example.org").await;
    // A domain entry, added later, so it is listed first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .suppress(
            &Suppression::Domain("spam.test".into()),
            "complaints",
            Utc::now(),
        )
        .await
        .unwrap();

    // Listed for people, newest first...
    let (code, out, err) = run_cli(&config, &["suppressions", "list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("KIND"), "{out}");
    assert!(lines[1].starts_with("domain   @spam.test"), "{out}");
    assert!(lines[1].ends_with("complaints"), "{out}");
    assert!(lines[2].starts_with("address  eve@example.org"), "{out}");
    assert!(lines[2].contains("5.1.1 User unknown"), "{out}");
    // ...and for scripts, one object per line.
    let (code, out, err) = run_cli(&config, &["suppressions", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["kind"], "domain");
    assert_eq!(rows[0]["value"], "spam.test");
    assert_eq!(rows[0]["reason"], "complaints");
    assert_eq!(rows[1]["kind"], "address");
    assert_eq!(rows[1]["value"], "eve@example.org");
    assert!(
        rows[1]["reason"]
            .as_str()
            .unwrap()
            .contains("5.1.1 User unknown"),
        "{out}"
    );
    for r in &rows {
        chrono::DateTime::parse_from_rfc3339(r["created_at"].as_str().unwrap()).unwrap();
    }

    // The status first: the note says the address is still suppressed, and how to lift it.
    let (code, out, err) = run_cli(&config, &["leads", "status", "eve@example.org", "new"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("eve@example.org: bounced -> new\n"),
        "{out}"
    );
    assert!(
        out.contains("still suppressed")
            && out.contains("leadloop suppressions remove eve@example.org"),
        "{out}"
    );
    assert_eq!(
        lead_by_email(&store, "eve@example.org")
            .await
            .unwrap()
            .status,
        leadloop::domain::LeadStatus::New
    );
    let t = timeline(&config, "eve@example.org");
    let changed = events(&t, "status_changed");
    assert_eq!(changed.len(), 1, "{t:?}");
    assert_eq!(
        changed[0]["detail"],
        serde_json::json!({"from": "bounced", "to": "new", "by": "cli"})
    );
    let kinds: Vec<&str> = t.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["inquiry", "bounced", "status_changed"], "{t:?}");
    // The text view says what changed.
    let (_, out, _) = run_cli(&config, &["leads", "show", "eve@example.org"]);
    assert!(
        out.lines()
            .any(|l| l.contains("status_changed") && l.trim_end().ends_with("bounced -> new")),
        "{out}"
    );

    // Then the suppression, named as the person typed it.
    let (code, out, err) = run_cli(&config, &["suppressions", "remove", "<EVE@Example.org>"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "eve@example.org removed from the suppression list (it was: recipient refused: "
        ),
        "{out}"
    );
    assert!(!out.contains("note:"), "nothing else stops her: {out}");
    assert_eq!(store.suppressed("eve@example.org").await.unwrap(), None);
    let t = timeline(&config, "eve@example.org");
    let lifted = events(&t, "unsuppressed");
    assert_eq!(lifted.len(), 1, "{t:?}");
    assert_eq!(lifted[0]["detail"]["value"], "eve@example.org");
    assert_eq!(lifted[0]["detail"]["by"], "cli");
    assert!(
        lifted[0]["detail"]["reason_was"]
            .as_str()
            .unwrap()
            .contains("5.1.1 User unknown"),
        "{t:?}"
    );
    // The domain entry is untouched.
    let (_, out, _) = run_cli(&config, &["suppressions", "list", "--json"]);
    assert_eq!(out.lines().count(), 1, "{out}");

    // Eve is mailed again.
    assert_eq!(
        send_one(&store, eve, 2, "eve@example.org", &[]).await,
        (1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_are_removed_by_address_or_domain_and_refused_clearly() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing here sends: the [smtp] port is never used.
    let config = daemon_config(dir.path(), &db.url, 1);
    seed_leads(
        &store,
        &["bob@example.org".into(), "carol@spam.test".into()],
    )
    .await;
    let now = Utc::now();
    for (entry, reason) in [
        (Suppression::Address("bob@example.org".into()), "bounced"),
        (Suppression::Domain("spam.test".into()), "complaints"),
    ] {
        store.suppress(&entry, reason, now).await.unwrap();
    }

    // Lifting the address leaves the domain entry, which the note names.
    let (code, out, err) = run_cli(&config, &["suppressions", "remove", "bob@example.org"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("note:"), "{out}");
    assert_eq!(store.suppressed("bob@example.org").await.unwrap(), None);
    store
        .suppress(
            &Suppression::Address("carol@spam.test".into()),
            "bounced",
            now,
        )
        .await
        .unwrap();
    let (code, out, err) = run_cli(&config, &["suppressions", "remove", "carol@spam.test"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "note: @spam.test is suppressed too: `leadloop suppressions remove @spam.test`"
        ),
        "{out}"
    );

    // A domain, however it is typed; its removal is on no lead's timeline.
    let (code, out, err) = run_cli(&config, &["suppressions", "remove", "@Spam.Test."]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("@spam.test removed from the suppression list (it was: complaints)"),
        "{out}"
    );
    assert_eq!(store.suppressed("carol@spam.test").await.unwrap(), None);
    let t = timeline(&config, "carol@spam.test");
    assert_eq!(
        events(&t, "unsuppressed").len(),
        1,
        "the address entry only: {t:?}"
    );
    let (_, out, _) = run_cli(&config, &["suppressions", "list"]);
    assert_eq!(out, "no suppressions\n");

    // What is not there, and what is not an address or a domain.
    let (code, out, err) = run_cli(&config, &["suppressions", "remove", "bob@example.org"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("bob@example.org is not on the suppression list"),
        "{err}"
    );
    let (code, _, err) = run_cli(&config, &["suppressions", "remove", "@spam.test"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("@spam.test is not on the suppression list"),
        "{err}"
    );
    for (bad, says) in [
        ("bob at example.org", "an address needs a local part"),
        ("bob@exa mple.org", "may not contain ' '"),
        ("@", "is not @ and a mail domain"),
        ("@localhost-only", "is not a valid mail domain"),
        ("bob@example.org\r\nBcc: x@y.org", "may not contain"),
    ] {
        let (code, out, err) = run_cli(&config, &["suppressions", "remove", bad]);
        assert_eq!((code, out.as_str()), (1, ""), "{bad:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{bad:?}: {err}"
        );
    }

    // Added by hand: on the lead's timeline, once.
    let (code, out, err) = run_cli(
        &config,
        &[
            "suppressions",
            "add",
            "Bob@Example.org",
            "--reason",
            "asked by phone",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "bob@example.org suppressed: nothing more is sent to it\n"
    );
    assert!(store.suppressed("bob@example.org").await.unwrap().is_some());
    let (code, out, _) = run_cli(&config, &["suppressions", "add", "bob@example.org"]);
    assert_eq!(code, 0);
    assert!(out.contains("already suppressed"), "{out}");
    let t = timeline(&config, "bob@example.org");
    let added = events(&t, "suppressed");
    assert_eq!(added.len(), 1, "{t:?}");
    assert_eq!(
        added[0]["detail"],
        serde_json::json!({"value": "bob@example.org", "reason": "asked by phone", "by": "cli"})
    );
    let (_, out, _) = run_cli(&config, &["suppressions", "list", "--json"]);
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["reason"], "asked by phone", "the first reason is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_status_refuses_unknown_statuses_and_leads() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing here sends: the [smtp] port is never used.
    let config = daemon_config(dir.path(), &db.url, 1);
    seed_leads(&store, &["dan@example.org".into()]).await;

    let (code, out, err) = run_cli(&config, &["leads", "status", "dan@example.org", "happy"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains(
            "possible values: new, engaged, qualified, unqualified, customer, unsubscribed, bounced"
        ),
        "{err}"
    );
    let (code, out, err) = run_cli(&config, &["leads", "status", "nobody@example.org", "new"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("no lead with address nobody@example.org"),
        "{err}"
    );
    let (code, _, err) = run_cli(&config, &["leads", "status", "not-an-address", "new"]);
    assert_eq!(code, 1);
    assert!(err.contains("'not-an-address'"), "{err}");

    // The status it has: nothing changes, nothing is recorded.
    let (code, out, err) = run_cli(&config, &["leads", "status", "dan@example.org", "new"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "dan@example.org is already new\n");
    // Nothing is suppressed, so there is no note.
    let (code, out, err) = run_cli(&config, &["leads", "status", "dan@example.org", "customer"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "dan@example.org: new -> customer\n");
    let (code, out, err) = run_cli(
        &config,
        &["leads", "status", "dan@example.org", "unsubscribed"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "dan@example.org: customer -> unsubscribed\n");
    let t = timeline(&config, "dan@example.org");
    let changes: Vec<(&str, &str)> = events(&t, "status_changed")
        .iter()
        .map(|e| {
            (
                e["detail"]["from"].as_str().unwrap(),
                e["detail"]["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(changes, [("new", "customer"), ("customer", "unsubscribed")]);
}
