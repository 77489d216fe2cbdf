//! The outbox's and suppression list's contract, on SQLite and PostgreSQL: a step is enqueued
//! once, claims never overlap, suppressed recipients are never claimed for sending, and a
//! person's retry/cancel only moves rows that may move.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadloop::domain::{EnrollmentId, LeadStatus};
use leadloop::store::{
    Bounced, Claim, NewOutboxMessage, OutboxId, OutboxState, SendOutcome, Store, Suppression,
    Transition,
};

use crate::support::{seed_leads, t0, test_store};

pub fn message(lead: Option<i64>, enrollment: i64, step: &str, to: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        lead_id: lead.map(leadloop::domain::LeadId),
        enrollment_id: Some(EnrollmentId(enrollment)),
        step_id: Some(step.into()),
        from: "hello@company.com".to_owned(),
        envelope_from: "bounces@company.com".to_owned(),
        recipient: to.to_owned(),
        message_id: format!("{enrollment}.{step}@company.com").into(),
        raw: format!("Subject: {step}\r\n\r\nHello {to}\r\n").into_bytes(),
        due_at: t0(),
    }
}

fn claim(now: DateTime<Utc>, limit: usize) -> Claim {
    Claim {
        now,
        limit,
        lease: Duration::from_secs(60),
    }
}

async fn state(store: &Store, id: OutboxId) -> OutboxState {
    store.outbox_entry(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn a_step_is_enqueued_once_and_claimed_when_due() {
    let (store, _db) = test_store().await;
    let first = store
        .enqueue(&message(None, 1, "welcome", "ana@example.org"), t0())
        .await
        .unwrap();
    assert!(first.is_some());
    // The same step again, inside a caller's transaction as the scheduler does it.
    let mut tx = store.begin().await.unwrap();
    let again = store
        .enqueue_in(
            &mut tx,
            &message(None, 1, "welcome", "ana@example.org"),
            t0(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, None, "a step is never enqueued twice");

    let mut later = message(None, 1, "case-study", "ana@example.org");
    later.due_at = t0() + chrono::Duration::days(2);
    store.enqueue(&later, t0()).await.unwrap();

    let early = store
        .settle_and_claim(&[], claim(t0() - chrono::Duration::seconds(1), 8))
        .await
        .unwrap();
    assert!(early.messages.is_empty(), "nothing is due before its time");
    let got = store.settle_and_claim(&[], claim(t0(), 8)).await.unwrap();
    assert_eq!(got.messages.len(), 1);
    let m = &got.messages[0];
    assert_eq!(m.step_id.as_deref(), Some("welcome"));
    assert_eq!(m.attempts, 1);
    assert_eq!(m.raw, b"Subject: welcome\r\n\r\nHello ana@example.org\r\n");
    assert_eq!(state(&store, m.id).await, OutboxState::Sending);
    // The next look is when the claim expires (its sender may die), then the later step.
    assert_eq!(
        store.next_outbox_due().await.unwrap(),
        Some(t0() + chrono::Duration::seconds(60))
    );
    store
        .settle(
            &[(
                m.id,
                SendOutcome::Sent {
                    response: "250 ok".into(),
                },
            )],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.next_outbox_due().await.unwrap(),
        Some(t0() + chrono::Duration::days(2))
    );
}

#[tokio::test]
async fn claims_are_as_wide_as_asked_and_never_overlap() {
    let (store, _db) = test_store().await;
    let msgs: Vec<_> = (0..200)
        .map(|i| message(None, i, "s1", &format!("p{i}@example.org")))
        .collect();
    assert_eq!(store.enqueue_many(&msgs, t0()).await.unwrap(), 200);
    let one = store.settle_and_claim(&[], claim(t0(), 3)).await.unwrap();
    assert_eq!(
        one.messages.len(),
        3,
        "a claim takes no more than it is asked"
    );

    // Four concurrent claimers (several daemons on one database) each settle what they took.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut done: Vec<(OutboxId, SendOutcome)> = Vec::new();
            loop {
                let c = store.settle_and_claim(&done, claim(t0(), 5)).await.unwrap();
                if c.messages.is_empty() {
                    break;
                }
                done = c
                    .messages
                    .iter()
                    .map(|m| {
                        (
                            m.id,
                            SendOutcome::Sent {
                                response: "250 ok".into(),
                            },
                        )
                    })
                    .collect();
                mine.extend(c.messages.iter().map(|m| m.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), distinct.len(), "a row was claimed twice");
    assert_eq!(all.len(), 197);
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.get("sent"), Some(&197), "{counts:?}");
    assert_eq!(counts.get("sending"), Some(&3), "{counts:?}");
}

#[tokio::test]
async fn suppressed_addresses_and_domains_are_cancelled_not_sent() {
    let (store, _db) = test_store().await;
    store
        .suppress(
            &Suppression::Address("Ana@Example.org".into()),
            "unsubscribed",
            t0(),
        )
        .await
        .unwrap();
    store
        .suppress(
            &Suppression::Domain("blocked.example".into()),
            "competitor",
            t0(),
        )
        .await
        .unwrap();
    for (i, to) in ["ana@example.org", "bo@blocked.example", "cy@example.org"]
        .iter()
        .enumerate()
    {
        store
            .enqueue(&message(None, i as i64, "s1", to), t0())
            .await
            .unwrap();
    }
    let got = store.settle_and_claim(&[], claim(t0(), 8)).await.unwrap();
    let sent: Vec<_> = got.messages.iter().map(|m| m.recipient.as_str()).collect();
    assert_eq!(sent, ["cy@example.org"]);
    assert_eq!(got.suppressed.len(), 2);
    for (id, why) in &got.suppressed {
        assert_eq!(state(&store, *id).await, OutboxState::Cancelled);
        assert!(
            why.contains("unsubscribed") || why.contains("competitor"),
            "{why}"
        );
    }
    assert!(
        store
            .suppressed("someone@BLOCKED.example")
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.suppressed("cy@example.org").await.unwrap().is_none());
}

#[tokio::test]
async fn outcomes_move_rows_and_a_refused_recipient_bounces_the_lead() {
    let (store, _db) = test_store().await;
    let leads = seed_leads(
        &store,
        &["ok@example.org".into(), "gone@example.org".into()],
    )
    .await;
    for (i, l) in leads.iter().enumerate() {
        store
            .enqueue(
                &message(Some(l.id.0), i as i64, "s1", l.email.as_str()),
                t0(),
            )
            .await
            .unwrap();
    }
    let got = store.settle_and_claim(&[], claim(t0(), 8)).await.unwrap();
    let (ok, gone) = (&got.messages[0], &got.messages[1]);
    assert_eq!(ok.recipient, "ok@example.org");
    let outcomes = vec![
        (
            ok.id,
            SendOutcome::Sent {
                response: "250 2.0.0 queued".into(),
            },
        ),
        (
            gone.id,
            SendOutcome::Failed {
                error: "550 5.1.1 no such user".into(),
                bounce: Some(Bounced {
                    suppress: Suppression::Address(gone.recipient.clone()),
                    reason: "recipient refused: 550 5.1.1 no such user".into(),
                    lead_status: LeadStatus::Bounced,
                }),
            },
        ),
    ];
    store.settle(&outcomes, t0()).await.unwrap();
    let e = store.outbox_entry(ok.id).await.unwrap().unwrap();
    assert_eq!(e.state, OutboxState::Sent);
    assert_eq!(e.smtp_response.as_deref(), Some("250 2.0.0 queued"));
    assert_eq!(e.sent_at, Some(t0()));
    assert_eq!(state(&store, gone.id).await, OutboxState::Failed);
    let lead = crate::support::assert_bounced_and_suppressed(&store, "gone@example.org").await;
    let timeline = store.timeline(&lead).await.unwrap();
    assert!(timeline.iter().any(|e| e.kind == "bounced"), "{timeline:?}");
    let ok_lead = store
        .lead(&"ok@example.org".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .timeline(&ok_lead)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "sent")
    );
}

#[tokio::test]
async fn abandoned_claims_are_interrupted_and_only_a_person_resends_them() {
    let (store, _db) = test_store().await;
    for i in 0..3 {
        store
            .enqueue(&message(None, i, "s1", &format!("p{i}@example.org")), t0())
            .await
            .unwrap();
    }
    let got = store.settle_and_claim(&[], claim(t0(), 2)).await.unwrap();
    let (a, b) = (got.messages[0].id, got.messages[1].id);
    // A live lease is left alone unless the caller owns the whole database.
    assert_eq!(store.interrupt_abandoned(t0(), false).await.unwrap(), 0);
    assert_eq!(
        store
            .interrupt_abandoned(t0() + chrono::Duration::minutes(2), false)
            .await
            .unwrap(),
        2
    );
    assert_eq!(state(&store, a).await, OutboxState::Interrupted);
    // Interrupted rows are never claimed again by themselves.
    let next = store
        .settle_and_claim(&[], claim(t0() + chrono::Duration::hours(1), 8))
        .await
        .unwrap();
    assert_eq!(next.messages.len(), 1);
    let c = next.messages[0].id;
    assert_eq!(
        store.retry_outbox(c, "test", t0()).await.unwrap(),
        Transition::Refused(OutboxState::Sending)
    );
    assert_eq!(
        store.cancel_outbox(c, "test", t0()).await.unwrap(),
        Transition::Refused(OutboxState::Sending)
    );
    assert_eq!(
        store.retry_outbox(a, "test", t0()).await.unwrap(),
        Transition::Done
    );
    assert_eq!(state(&store, a).await, OutboxState::Pending);
    assert_eq!(
        store.cancel_outbox(b, "test", t0()).await.unwrap(),
        Transition::Done
    );
    assert_eq!(
        store
            .retry_outbox(OutboxId(999_999), "test", t0())
            .await
            .unwrap(),
        Transition::NotFound
    );
    store
        .settle(
            &[(
                c,
                SendOutcome::Sent {
                    response: "250".into(),
                },
            )],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.retry_outbox(c, "test", t0()).await.unwrap(),
        Transition::Refused(OutboxState::Sent)
    );
    let listed = store
        .list_outbox(Some(OutboxState::Cancelled), 10)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), [b]);
}
