//! The store's contract, run against SQLite and (with `LEADLOOP_TEST_DATABASE_URL`) PostgreSQL.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use leadloop::classify::{Classification, Person};
use leadloop::domain::{EmailAddress, LeadStatus, MessageKind};
use leadloop::store::{
    Batch, Change, InboundRecord, LeadChange, LeadFilter, MailboxCursor, StoreError,
};

use crate::support::{lead_by_email, test_store};

const MAILBOX: &str = "imap://leads@company.com@127.0.0.1:143/INBOX";

fn record(
    uid: u32,
    kind: MessageKind,
    email: Option<&str>,
    name: Option<&str>,
    channel: &str,
) -> InboundRecord {
    let mut c = Classification::ignored("placeholder");
    c.kind = kind;
    c.reason = None;
    c.evidence = vec![format!("test: {kind}")];
    c.message_id = Some(format!("{uid}.{kind}@test.example"));
    c.subject = Some(format!("message {uid}"));
    c.channel = Some(channel.to_owned());
    c.lead = email.map(|e| Person {
        email: EmailAddress::parse(e).unwrap(),
        name: name.map(str::to_owned),
        company: None,
        phone: None,
    });
    InboundRecord {
        uid: Some(uid),
        dedupe_key: format!("mid:{uid}.{kind}@test.example"),
        size: 4096,
        classification: c,
    }
}

fn batch<'a>(records: &'a [InboundRecord], uidvalidity: u32, last_uid: u32) -> Batch<'a> {
    Batch {
        mailbox: MAILBOX,
        uidvalidity,
        last_uid: Some(last_uid),
        records,
        now: Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap(),
        enroll: &[],
        changes: &[],
    }
}

#[tokio::test]
async fn a_batch_records_messages_leads_and_cursor_together() {
    let (store, _db) = test_store().await;
    let records = vec![
        record(
            1,
            MessageKind::Inquiry,
            Some("ana@example.org"),
            None,
            "direct",
        ),
        record(
            2,
            MessageKind::Form,
            Some("Ana@Example.org"),
            Some("Ana Lima"),
            "website",
        ),
        record(
            3,
            MessageKind::Autoreply,
            Some("bob@example.net"),
            None,
            "direct",
        ),
        record(4, MessageKind::Ignored, None, None, "direct"),
    ];
    let outcome = store.record_batch(&batch(&records, 7, 4)).await.unwrap();
    assert_eq!(outcome.recorded, 4);
    assert_eq!(outcome.duplicates, 0);

    let ana = lead_by_email(&store, "ana@example.org")
        .await
        .expect("lead");
    assert_eq!(
        ana.name.as_deref(),
        Some("Ana Lima"),
        "a later message fills in the name"
    );
    assert_eq!(ana.channel, "direct", "the first touch keeps the channel");
    assert_eq!(ana.status, LeadStatus::New);
    let events = store.timeline(&ana).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["inquiry", "form"]);

    assert!(
        lead_by_email(&store, "bob@example.net").await.is_none(),
        "an auto-reply never creates a lead"
    );
    assert_eq!(
        store.mailbox_cursor(MAILBOX).await.unwrap(),
        Some(MailboxCursor {
            uidvalidity: 7,
            last_uid: 4
        })
    );
    let inbound = store.inbound(MAILBOX).await.unwrap();
    assert_eq!(
        inbound.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
        ["inquiry", "form", "autoreply", "ignored"]
    );
}

#[tokio::test]
async fn replaying_a_batch_changes_nothing() {
    let (store, _db) = test_store().await;
    let records = vec![
        record(
            1,
            MessageKind::Inquiry,
            Some("ana@example.org"),
            Some("Ana"),
            "direct",
        ),
        record(
            2,
            MessageKind::Forward,
            Some("carl@example.com"),
            None,
            "expo",
        ),
    ];
    store.record_batch(&batch(&records, 7, 2)).await.unwrap();
    let again = store.record_batch(&batch(&records, 7, 2)).await.unwrap();
    assert_eq!(again.recorded, 0);
    assert_eq!(again.duplicates, 2);

    // The same messages under a new UIDVALIDITY (a re-scan) are recognised by Message-ID.
    let mut rescanned = records.clone();
    for (i, r) in rescanned.iter_mut().enumerate() {
        r.uid = Some(100 + i as u32);
    }
    let rescan = store
        .record_batch(&batch(&rescanned, 8, 101))
        .await
        .unwrap();
    assert_eq!(rescan.recorded, 0);
    assert_eq!(store.inbound(MAILBOX).await.unwrap().len(), 2);
    let ana = lead_by_email(&store, "ana@example.org").await.unwrap();
    assert_eq!(
        store.timeline(&ana).await.unwrap().len(),
        1,
        "no second timeline entry"
    );
    assert_eq!(
        store.mailbox_cursor(MAILBOX).await.unwrap(),
        Some(MailboxCursor {
            uidvalidity: 8,
            last_uid: 101
        })
    );
}

#[tokio::test]
async fn a_batch_mixing_new_and_recorded_messages_records_only_the_new() {
    let (store, _db) = test_store().await;
    // More than one insert statement's worth, so the new and the recorded share a batch but
    // not every chunk of it.
    let emails: Vec<String> = (1..=450).map(|i| format!("lead{i}@example.org")).collect();
    let mut records: Vec<InboundRecord> = emails
        .iter()
        .zip(1..)
        .map(|(e, uid)| record(uid, MessageKind::Inquiry, Some(e), None, "direct"))
        .collect();
    let earlier = [records[2].clone(), records[449].clone()];
    store.record_batch(&batch(&earlier, 7, 1)).await.unwrap();
    // UID 3 comes back with other content: the server's UID is taken, so it is not new.
    records[2].dedupe_key = "mid:other-content@test.example".into();

    let outcome = store.record_batch(&batch(&records, 7, 450)).await.unwrap();
    assert_eq!((outcome.recorded, outcome.duplicates), (448, 2));
    assert_eq!(outcome.leads_touched, 448);
    assert_eq!(store.inbound(MAILBOX).await.unwrap().len(), 450);
    let first = lead_by_email(&store, "lead1@example.org")
        .await
        .expect("a new message in the same chunk as a recorded one is recorded");
    assert_eq!(store.timeline(&first).await.unwrap().len(), 1);
}

#[tokio::test]
async fn duplicates_inside_one_batch_are_recorded_once() {
    let (store, _db) = test_store().await;
    let a = record(
        1,
        MessageKind::Inquiry,
        Some("ana@example.org"),
        None,
        "direct",
    );
    let mut b = a.clone();
    b.uid = Some(2);
    let outcome = store.record_batch(&batch(&[a, b], 1, 2)).await.unwrap();
    assert_eq!((outcome.recorded, outcome.duplicates), (1, 1));
}

#[tokio::test]
async fn the_cursor_never_moves_backwards() {
    let (store, _db) = test_store().await;
    store.record_batch(&batch(&[], 5, 40)).await.unwrap();
    store.record_batch(&batch(&[], 5, 30)).await.unwrap();
    assert_eq!(
        store
            .mailbox_cursor(MAILBOX)
            .await
            .unwrap()
            .unwrap()
            .last_uid,
        40
    );
}

#[tokio::test]
async fn leads_are_listed_by_channel_and_kind() {
    let (store, _db) = test_store().await;
    let mut form = record(
        2,
        MessageKind::Form,
        Some("dee@example.com"),
        Some("Dee"),
        "website",
    );
    form.classification.fields = BTreeMap::from([("Company".to_owned(), "Acme".to_owned())]);
    let records = vec![
        record(
            1,
            MessageKind::Inquiry,
            Some("ana@example.org"),
            None,
            "direct",
        ),
        form,
        record(
            3,
            MessageKind::Forward,
            Some("carl@example.com"),
            None,
            "webinar",
        ),
    ];
    store.record_batch(&batch(&records, 1, 3)).await.unwrap();
    let all = store.list_leads(&LeadFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let web = store
        .list_leads(&LeadFilter {
            channel: Some("webinar".into()),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        web.iter().map(|l| l.email.as_str()).collect::<Vec<_>>(),
        ["carl@example.com"]
    );
    let forms = store
        .list_leads(&LeadFilter {
            kind: Some(MessageKind::Form),
            ..LeadFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0].fields["Company"], "Acme");
}

/// The changes the caller decided for a batch's messages are applied with them, and only for
/// messages new to the store.
#[tokio::test]
async fn a_batch_applies_its_lead_changes_once_with_the_messages() {
    let (store, _db) = test_store().await;
    let first = vec![record(
        1,
        MessageKind::Inquiry,
        Some("ana@example.org"),
        None,
        "direct",
    )];
    store.record_batch(&batch(&first, 7, 1)).await.unwrap();
    assert_eq!(store.suppressed("ana@example.org").await.unwrap(), None);

    let second = vec![record(
        2,
        MessageKind::Unsubscribe,
        Some("Ana@Example.org"),
        None,
        "direct",
    )];
    let ana = EmailAddress::parse("ana@example.org").unwrap();
    let change = |change| LeadChange {
        record: 0,
        lead: ana.clone(),
        change,
    };
    let changes = [
        change(Change::Suppress {
            reason: "the lead asked to unsubscribe".into(),
        }),
        change(Change::Status(LeadStatus::Unsubscribed)),
    ];
    let with_changes = Batch {
        changes: &changes,
        ..batch(&second, 7, 2)
    };
    store.record_batch(&with_changes).await.unwrap();
    assert_eq!(
        store.lead(&ana).await.unwrap().unwrap().status,
        LeadStatus::Unsubscribed
    );
    let why = store.suppressed("ana@example.org").await.unwrap();
    assert!(why.is_some_and(|w| w.contains("unsubscribe")));

    // Replaying the batch changes nothing and does not fail: a person who set the status
    // back in between keeps it.
    store
        .set_lead_status(&ana, LeadStatus::Engaged, Utc::now())
        .await
        .unwrap();
    store.record_batch(&with_changes).await.unwrap();
    assert_eq!(
        store.lead(&ana).await.unwrap().unwrap().status,
        LeadStatus::Engaged
    );
    assert_eq!(store.suppressed("bob@example.org").await.unwrap(), None);
}

/// A value this version does not know (written by a newer one, or by hand) is an error that
/// names the row, never read as something else.
#[tokio::test]
async fn an_unknown_stored_status_is_an_error_naming_the_row() {
    let (store, db) = test_store().await;
    let records = vec![record(
        1,
        MessageKind::Inquiry,
        Some("ana@example.org"),
        None,
        "direct",
    )];
    store.record_batch(&batch(&records, 7, 1)).await.unwrap();
    let ana = EmailAddress::parse("ana@example.org").unwrap();
    let id = store.lead(&ana).await.unwrap().unwrap().id;
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE leads SET status = 'vip' WHERE email = 'ana@example.org'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let err = store.lead(&ana).await.unwrap_err();
    let StoreError::Unreadable {
        table,
        id: row,
        column,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*table, *row, *column), ("leads", id.0, "status"));
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(
        text.contains(&format!("leads row {id}"))
            && text.contains("status")
            && text.contains("'vip'"),
        "{text}"
    );
    assert!(
        store.list_leads(&LeadFilter::default()).await.is_err(),
        "a listing does not skip the row"
    );
}

/// The daemon's checkpoint task copies the SQLite log back into the database file while
/// the writers go on, so no commit waits for it; on PostgreSQL it has nothing to do.
#[tokio::test]
async fn the_checkpoint_task_copies_the_log_into_the_database() {
    let (store, db) = test_store().await;
    let Some(path) = db
        .url
        .strip_prefix("sqlite://")
        .map(|p| std::path::PathBuf::from(p.split('?').next().unwrap_or(p)))
    else {
        assert_eq!(store.checkpoint().await.unwrap(), None);
        return;
    };
    let wal = store.checkpoint().await.unwrap().expect("SQLite has a log");
    assert_eq!(wal.frames, wal.checkpointed);
    let before = std::fs::metadata(&path).unwrap().len();

    // New rows land in the log only: the database file keeps its size.
    let emails: Vec<String> = (0..2000).map(|n| format!("lead{n}@example.org")).collect();
    crate::support::seed_leads(&store, &emails).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);

    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(store.clone().checkpoints(cancel.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the task never checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cancel.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the task stops when cancelled")
        .unwrap();
    assert_eq!(
        store
            .list_leads(&LeadFilter::default())
            .await
            .unwrap()
            .len(),
        2000
    );
}
