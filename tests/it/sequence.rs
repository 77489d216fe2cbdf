//! Sequences against a real database (SQLite, and PostgreSQL when configured): new leads are
//! enrolled as their batch is recorded, the scheduler enqueues each step exactly once even
//! when two schedulers race, editing a sequence mid-flight never resends a step, replies end
//! enrollments, and a step that cannot be rendered is held, not sent.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use leadloop::actions::Actions;
use leadloop::classify::{Classification, Person};
use leadloop::config::Problem;
use leadloop::domain::{EmailAddress, EnrollmentState, MessageKind};
use leadloop::sequence::schedule::Scheduler;
use leadloop::sequence::{self, Catalog, Policy, Sender, Settings, Windows};
use leadloop::store::{Batch, InboundRecord, OutboxEntry, OutboxState, Store};
use tokio::sync::Notify;

use crate::support::{lead_by_email, t0, test_store, wait_for};

const TEMPLATES: &[(&str, &str)] = &[
    ("a.txt", "Hello {{ lead.first_name }}, step a.\n"),
    ("b.txt", "Step b for {{ lead.company }}.\n"),
    ("c.txt", "Step c.\n"),
    ("d.txt", "Step d.\n"),
    ("broken.txt", "{{ fields.budget }}\n"),
];

fn step(id: &str, delay: &str) -> String {
    format!(
        "[[step]]\nid = \"{id}\"\ndelay = \"{delay}\"\ntemplate = \"{id}\"\nsubject = \"{id} for {{{{ lead.name }}}}\"\n"
    )
}

const ENROLL: &str = "[enroll]\nkinds = [\"inquiry\"]\n\n";

/// A catalog from files written into `dir`, like `leadloop check` loads it.
fn catalog(dir: &Path, sequences: &[(&str, String)], policy: Policy) -> Arc<Catalog> {
    let _ = std::fs::remove_dir_all(dir.join("sequences"));
    std::fs::create_dir_all(dir.join("sequences")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for (name, text) in TEMPLATES {
        std::fs::write(dir.join("templates").join(name), text).unwrap();
    }
    for (name, text) in sequences {
        std::fs::write(dir.join("sequences").join(format!("{name}.toml")), text).unwrap();
    }
    let mut problems: Vec<Problem> = Vec::new();
    let c = sequence::load(
        Settings {
            dir: dir.join("sequences"),
            templates: dir.join("templates"),
            inbox: EmailAddress::parse("leads@company.com").unwrap(),
            unsubscribe_url: None,
            reply_to_token: true,
            policy,
            senders: vec![Sender {
                name: "team".into(),
                address: EmailAddress::parse("hello@company.com").unwrap(),
                display_name: Some("Team".into()),
                per_minute: None,
                per_hour: None,
                per_day: None,
            }],
            envelope_from: None,
            verp: false,
        },
        &mut problems,
    );
    // A template that fails on some leads is fine at check time only if the sample has it;
    // tests that want one hold it deliberately.
    problems.retain(|p| !p.to_string().contains("broken"));
    assert!(problems.is_empty(), "{problems:?}");
    Arc::new(c)
}

fn open_policy() -> Policy {
    Policy {
        per_lead_per_day: None,
        ..Policy::default()
    }
}

/// One sequence, `welcome`: step `a` at once and `b` a day later, under the open policy.
fn welcome_two_steps(dir: &Path) -> Arc<Catalog> {
    let seq = format!("{ENROLL}{}{}", step("a", "0m"), step("b", "1d"));
    catalog(dir, &[("welcome", seq)], open_policy())
}

fn inquiry(n: usize, email: &str, kind: MessageKind) -> InboundRecord {
    let mut c = Classification::ignored("placeholder");
    c.kind = kind;
    c.reason = None;
    c.channel = Some("direct".into());
    c.lead = Some(Person {
        email: EmailAddress::parse(email).unwrap(),
        name: Some("Jane Doe".into()),
        company: Some("Acme".into()),
        phone: None,
    });
    InboundRecord {
        uid: Some(u32::try_from(n).unwrap()),
        dedupe_key: format!("mid:{n}.{email}"),
        size: 100,
        classification: c,
    }
}

async fn record(
    store: &Store,
    c: &Catalog,
    records: &[InboundRecord],
    now: DateTime<Utc>,
) -> usize {
    let rules = c.enroll_rules();
    let actions = Actions::new(Default::default(), rules.clone(), rules.clone(), Vec::new());
    let mut records = records.to_vec();
    let changes = actions.plan(store, &mut records, now).await.unwrap();
    let records = &records[..];
    store
        .record_batch(&Batch {
            mailbox: "test",
            uidvalidity: 1,
            last_uid: records.iter().filter_map(|r| r.uid).max(),
            records,
            now,
            enroll: &rules,
            changes: &changes,
        })
        .await
        .unwrap()
        .enrolled
}

async fn outbox(store: &Store) -> Vec<OutboxEntry> {
    let mut v = store.list_outbox(None, 100_000).await.unwrap();
    v.sort_by_key(|e| e.id.0);
    v
}

fn steps_of(entries: &[OutboxEntry], to: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.recipient == to)
        .filter_map(|e| e.step_id.clone().map(String::from))
        .collect()
}

fn scheduler(store: &Store, c: &Arc<Catalog>) -> Scheduler {
    Scheduler::new(store.clone(), Arc::clone(c), Arc::new(Notify::new()))
}

#[tokio::test]
async fn new_leads_are_enrolled_once_and_steps_follow_their_delays() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!(
        "{ENROLL}{}{}{}",
        step("a", "0m"),
        step("b", "2d"),
        step("c", "1w")
    );
    let c = catalog(dir.path(), &[("welcome", seq)], open_policy());

    let enrolled = record(
        &store,
        &c,
        &[
            inquiry(1, "jane@acme.example", MessageKind::Inquiry),
            inquiry(2, "jane@acme.example", MessageKind::Inquiry),
            inquiry(3, "bob@other.example", MessageKind::Form),
        ],
        t0(),
    )
    .await;
    assert_eq!(enrolled, 1, "only the inquiry enrolls, and only once");
    // Jane writes again: still one enrollment (no re-entry).
    let again = record(
        &store,
        &c,
        &[inquiry(4, "jane@acme.example", MessageKind::Inquiry)],
        t0(),
    )
    .await;
    assert_eq!(again, 0);

    let s = scheduler(&store, &c);
    let r = s.run_due(t0()).await.unwrap();
    assert_eq!(r.enqueued, 1);
    assert_eq!(steps_of(&outbox(&store).await, "jane@acme.example"), ["a"]);
    // Nothing more until two days have passed.
    assert_eq!(
        s.run_due(t0() + Duration::hours(47))
            .await
            .unwrap()
            .enqueued,
        0
    );
    assert_eq!(
        s.run_due(t0() + Duration::hours(48))
            .await
            .unwrap()
            .enqueued,
        1
    );
    assert_eq!(
        s.run_due(t0() + Duration::days(30)).await.unwrap().enqueued,
        1
    );
    assert_eq!(
        s.run_due(t0() + Duration::days(60)).await.unwrap().claimed,
        0
    );
    let out = outbox(&store).await;
    assert_eq!(steps_of(&out, "jane@acme.example"), ["a", "b", "c"]);
    assert!(
        out[1].message_id.starts_with("leadloop."),
        "{}",
        out[1].message_id
    );

    let lead = lead_by_email(&store, "jane@acme.example").await.unwrap();
    let e = store.enrollments(lead.id).await.unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].state, EnrollmentState::Done);
    assert_eq!(e[0].steps_done, ["a", "b", "c"]);
}

/// What a recipient sees of the enrollment: a Message-ID that names neither the enrollment nor
/// the sequence or step, and is the same when the step is rendered again (the scheduler's row,
/// and two later renders, agree); `X-Leadloop-Origin` is there, naming nothing.
#[tokio::test]
async fn message_ids_and_origin_headers_are_opaque_and_stable() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!(
        "{ENROLL}[[step]]\nid = \"intro_call\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Hi\"\n"
    );
    let c = catalog(dir.path(), &[("onboarding", seq)], open_policy());
    for n in 1..=3 {
        let email = format!("lead{n}@acme.example");
        record(
            &store,
            &c,
            &[inquiry(n, &email, MessageKind::Inquiry)],
            t0(),
        )
        .await;
    }
    assert_eq!(
        scheduler(&store, &c).run_due(t0()).await.unwrap().enqueued,
        3
    );
    let out = outbox(&store).await;

    let lead = lead_by_email(&store, "lead3@acme.example").await.unwrap();
    let e = store.enrollments(lead.id).await.unwrap().remove(0);
    let entry = out
        .iter()
        .find(|o| o.recipient == "lead3@acme.example")
        .unwrap();
    let id = entry.message_id.clone();
    let (local, domain) = id.split_once('@').unwrap();
    assert_eq!(domain, "company.com");
    let hash = local.strip_prefix("leadloop.").expect("our prefix");
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    for inside in ["intro_call", "onboarding", e.token.as_str()] {
        assert!(!id.contains(inside), "{inside:?} in {id}");
    }
    assert!(!id.contains(&format!(".{}.", e.id)), "{id}");
    let ids: std::collections::BTreeSet<_> = out.iter().map(|o| o.message_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one id per enrollment: {ids:?}");

    let (seq, step) = (
        c.get("onboarding").unwrap(),
        &c.get("onboarding").unwrap().steps[0],
    );
    let first = c.render(seq, step, &lead, e.id, &e.token, t0()).unwrap();
    let again = c
        .render(seq, step, &lead, e.id, &e.token, t0() + Duration::days(3))
        .unwrap();
    assert_eq!(first.message_id, id.as_str());
    assert_eq!(again.message_id, id.as_str());
    let parsed = mail_parser::MessageParser::default()
        .parse(&again.bytes)
        .unwrap();
    assert_eq!(parsed.message_id(), Some(id.as_str()));
    let origin = parsed
        .header_raw("X-Leadloop-Origin")
        .expect("the header the classifier ignores our own mail by")
        .trim();
    for inside in ["intro_call", "onboarding", e.token.as_str()] {
        assert!(!origin.contains(inside), "{inside:?} in {origin}");
    }
}

#[tokio::test]
async fn two_schedulers_racing_enqueue_each_step_once() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let c = welcome_two_steps(dir.path());
    let records: Vec<InboundRecord> = (0..300)
        .map(|i| {
            inquiry(
                i + 1,
                &format!("lead{i}@example{}.org", i % 7),
                MessageKind::Inquiry,
            )
        })
        .collect();
    assert_eq!(record(&store, &c, &records, t0()).await, 300);

    for at in [t0(), t0() + Duration::days(1)] {
        let (a, b) = (
            scheduler(&store, &c).with_batch(16),
            scheduler(&store, &c).with_batch(16),
        );
        let (ra, rb) = tokio::join!(a.run_due(at), b.run_due(at));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.enqueued + rb.enqueued, 300, "{ra:?} {rb:?}");
    }
    let out = outbox(&store).await;
    assert_eq!(out.len(), 600);
    let mut keys: Vec<_> = out
        .iter()
        .map(|e| (e.enrollment_id, e.step_id.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 600, "no (enrollment, step) twice");
}

#[tokio::test]
async fn editing_a_sequence_mid_flight_never_resends_a_step() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let v1 = format!(
        "{ENROLL}{}{}{}",
        step("a", "0m"),
        step("b", "1d"),
        step("c", "1d")
    );
    let c1 = catalog(dir.path(), &[("welcome", v1)], open_policy());
    record(
        &store,
        &c1,
        &[inquiry(1, "jane@acme.example", MessageKind::Inquiry)],
        t0(),
    )
    .await;
    scheduler(&store, &c1).run_due(t0()).await.unwrap();

    // Marketing deletes step b, rewords a (same id), and inserts d before a: Jane gets c
    // next, never a again, and not d (it comes before where she is).
    let v2 = format!(
        "{ENROLL}{}{}{}",
        step("d", "0m"),
        step("a", "0m"),
        step("c", "1d")
    );
    let c2 = catalog(dir.path(), &[("welcome", v2)], open_policy());
    let s = scheduler(&store, &c2);
    for days in 1..10 {
        s.run_due(t0() + Duration::days(days)).await.unwrap();
    }
    assert_eq!(
        steps_of(&outbox(&store).await, "jane@acme.example"),
        ["a", "c"]
    );
}

#[tokio::test]
async fn a_reply_ends_the_enrollment_and_a_broken_step_is_held() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!("{ENROLL}{}{}", step("a", "0m"), step("b", "1d"));
    let held = "[enroll]\nkinds = [\"form\"]\n\n[[step]]\nid = \"x\"\ndelay = \"0m\"\ntemplate = \"broken\"\nsubject = \"x\"\n".to_owned();
    let c = catalog(
        dir.path(),
        &[("welcome", seq), ("forms", held)],
        open_policy(),
    );
    record(
        &store,
        &c,
        &[
            inquiry(1, "jane@acme.example", MessageKind::Inquiry),
            inquiry(2, "bob@other.example", MessageKind::Form),
            inquiry(3, "kim@third.example", MessageKind::Inquiry),
        ],
        t0(),
    )
    .await;
    let s = scheduler(&store, &c);
    let r = s.run_due(t0()).await.unwrap();
    assert_eq!((r.enqueued, r.held), (2, 1), "{r:?}");

    // Jane replies the next morning: her enrollment ends as the reply is recorded.
    record(
        &store,
        &c,
        &[inquiry(4, "jane@acme.example", MessageKind::Reply)],
        t0() + Duration::hours(20),
    )
    .await;
    let jane = lead_by_email(&store, "jane@acme.example").await.unwrap();
    assert_eq!(
        store.enrollments(jane.id).await.unwrap()[0].state,
        EnrollmentState::Exited
    );
    // Kim's reply is recorded by a daemon that runs no sequences: the scheduler sees it before
    // the next step and ends the enrollment then.
    store
        .record_batch(&Batch {
            mailbox: "other",
            uidvalidity: 1,
            last_uid: Some(1),
            records: &[inquiry(5, "kim@third.example", MessageKind::Reply)],
            now: t0() + Duration::hours(21),
            enroll: &[],
            changes: &[],
        })
        .await
        .unwrap();
    let r = s.run_due(t0() + Duration::days(2)).await.unwrap();
    assert_eq!((r.enqueued, r.ended), (0, 1), "{r:?}");
    let out = outbox(&store).await;
    assert_eq!(steps_of(&out, "jane@acme.example"), ["a"]);
    assert_eq!(steps_of(&out, "kim@third.example"), ["a"]);
    assert!(
        steps_of(&out, "bob@other.example").is_empty(),
        "never sent half-rendered"
    );

    let jane = lead_by_email(&store, "jane@acme.example").await.unwrap();
    let e = &store.enrollments(jane.id).await.unwrap()[0];
    assert_eq!(e.state, EnrollmentState::Exited);
    assert_eq!(e.exit_reason.as_deref(), Some("the lead replied"));
    let bob = lead_by_email(&store, "bob@other.example").await.unwrap();
    let e = &store.enrollments(bob.id).await.unwrap()[0];
    assert_eq!(e.state, EnrollmentState::Held);
    assert!(
        e.error.as_deref().unwrap().contains("fields.budget"),
        "{:?}",
        e.error
    );
    // Held enrollments come back after a fix and a reload.
    assert_eq!(store.release_held(t0()).await.unwrap(), 1);
}

#[tokio::test]
async fn windows_and_caps_postpone_and_follow_ups_go_first() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!("{ENROLL}{}{}", step("a", "0m"), step("b", "1d"));
    let policy = Policy {
        timezone: "Europe/Berlin".parse().unwrap(),
        windows: Windows::parse(&["* 9-16 * * Mon-Fri"]).unwrap(),
        per_domain_per_day: Some(2),
        per_lead_per_day: Some(1),
        ..Policy::default()
    };
    let c = catalog(dir.path(), &[("welcome", seq)], policy);
    // Friday 20:00 Berlin: outside the window.
    let fri_evening = Utc.with_ymd_and_hms(2026, 11, 27, 19, 0, 0).unwrap();
    record(
        &store,
        &c,
        &[
            inquiry(1, "a1@acme.example", MessageKind::Inquiry),
            inquiry(2, "a2@acme.example", MessageKind::Inquiry),
        ],
        fri_evening,
    )
    .await;
    let s = scheduler(&store, &c);
    let r = s.run_due(fri_evening).await.unwrap();
    assert_eq!((r.enqueued, r.waiting), (0, 2));
    let mon_9 = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    let due = store.next_enrollment_due().await.unwrap().unwrap();
    assert_eq!(due, mon_9, "Monday 09:00 Berlin");
    assert_eq!(s.run_due(mon_9).await.unwrap().enqueued, 2);

    // Tuesday: the two follow-ups are due and a new lead at the same domain arrives; the
    // domain cap (2 a day) goes to the follow-ups first.
    let tue = mon_9 + Duration::days(1);
    record(
        &store,
        &c,
        &[inquiry(3, "a3@acme.example", MessageKind::Inquiry)],
        tue,
    )
    .await;
    let r = s.run_due(tue).await.unwrap();
    assert_eq!((r.enqueued, r.waiting), (2, 1), "{r:?}");
    let out = outbox(&store).await;
    assert_eq!(
        out.iter()
            .filter(|e| e.step_id.as_deref() == Some("b"))
            .count(),
        2
    );
    assert!(steps_of(&out, "a3@acme.example").is_empty());
    // The first touch waits for Wednesday's budget, at 00:00 Berlin then the window at 09:00.
    let wed_9 = tue + Duration::days(1);
    assert_eq!(store.next_enrollment_due().await.unwrap(), Some(wed_9));
    assert_eq!(s.run_due(wed_9).await.unwrap().enqueued, 1);
}

/// End to end over real servers: an inquiry APPENDed to Dovecot becomes a lead, enters the
/// sequence, its first step is rendered into the outbox and arrives at Postfix's smtp-sink as
/// a complete message; the lead's reply to it (matched by our Message-ID) ends the enrollment.
/// A second lead whose name decodes to "Eve\r\nBcc: x@y" gets her message with no Bcc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_over_imap_is_enrolled_and_its_reply_ends_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    welcome_two_steps(dir.path());
    let sink = tokio::task::spawn_blocking(|| crate::smtp_sink::SmtpSink::start(&[]))
        .await
        .unwrap()
        .expect("starting smtp-sink");
    let extra = format!(
        "\n[sequences]\ndir = {:?}\ntemplates = {:?}\ninbox = \"leads@company.com\"\nreply_to_token = true\n\n\
         [policy]\nper_lead_per_day = 5\n\n[[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n",
        dir.path().join("sequences").display().to_string(),
        dir.path().join("templates").display().to_string(),
        sink.port(),
    );
    let s = crate::ingest_imap::Setup::new("implicit", &extra).await;
    let store = Store::connect(&s.db.url, 2).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let (path, config, token) = (s.config_path.clone(), s.config(), shutdown.clone());
    let daemon =
        tokio::spawn(async move { leadloop::daemon::run(&path, config, token, reload_rx).await });

    s.append(
        b"From: Jane Doe <jane@acme.example>\r\nTo: leads@company.com\r\nSubject: Pricing?\r\n\
Message-ID: <q1@acme.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nWhat does it cost for 20 seats?\r\n",
    );
    s.append(
        b"From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40y?= <eve@evil.example>\r\nTo: leads@company.com\r\n\
Subject: Hi\r\nMessage-ID: <q2@evil.example>\r\nDate: Fri, 27 Nov 2026 10:05:00 +0000\r\n\r\nTell me more.\r\n",
    );
    let entry = wait_for(|| async {
        outbox(&store)
            .await
            .into_iter()
            .find(|e| e.recipient == "jane@acme.example")
    })
    .await;
    assert_eq!(entry.step_id.as_deref(), Some("a"));
    let message_id = entry.message_id.clone();
    assert!(message_id.starts_with("leadloop.") && message_id.ends_with("@company.com"));

    // Both messages arrive at the SMTP server, whole. smtp-sink creates a dump file when a
    // transaction starts and fills it as data arrives, so wait until the outbox says the server
    // accepted both and both dumps end with the empty line that closes a dump.
    wait_for(|| async {
        let out = outbox(&store).await;
        (out.len() >= 2 && out.iter().all(|e| e.state == OutboxState::Sent)).then_some(())
    })
    .await;
    let received = wait_for(|| async {
        let m = sink.messages();
        (m.len() >= 2 && m.iter().all(|d| d.ends_with(b"\n\n"))).then_some(m)
    })
    .await;
    assert_eq!(received.len(), 2, "each step once");
    let text = |raw: &[u8]| String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let jane_msg = received
        .iter()
        .map(|m| text(m))
        .find(|m| m.contains("jane@acme.example"))
        .expect("Jane's message arrived");
    for want in [
        format!("Message-ID: <{message_id}>"),
        "List-Unsubscribe: <mailto:leads+unsubscribe-".to_owned(),
        "Reply-To: leads+reply-".to_owned(),
        "Subject: a for Jane Doe".to_owned(),
        "Hello Jane, step a.".to_owned(),
    ] {
        assert!(jane_msg.contains(&want), "missing {want:?} in\n{jane_msg}");
    }
    let eve_msg = received
        .iter()
        .map(|m| text(m))
        .find(|m| m.contains("eve@evil.example"))
        .expect("Eve's message arrived");
    let eve_head = eve_msg.split("\n\n").next().unwrap_or_default().to_owned();
    assert!(
        !eve_head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{eve_head}"
    );
    assert!(!eve_msg.contains("x@y>"), "{eve_msg}");
    let eve = lead_by_email(&store, "eve@evil.example").await.unwrap();
    assert!(
        !eve.name.as_deref().unwrap_or("").contains(['\r', '\n']),
        "{:?}",
        eve.name
    );

    // Jane answers the first email.
    s.append(
        format!(
            "From: Jane Doe <jane@acme.example>\r\nTo: leads@company.com\r\nSubject: Re: a for Jane Doe\r\n\
Message-ID: <r1@acme.example>\r\nIn-Reply-To: <{message_id}>\r\nReferences: <{message_id}>\r\n\
Date: Fri, 27 Nov 2026 11:00:00 +0000\r\n\r\nYes, let's talk on Monday.\r\n"
        )
        .as_bytes(),
    );
    let jane = EmailAddress::parse("jane@acme.example").unwrap();
    wait_for(|| async {
        let kinds = store.kind_counts().await.unwrap();
        kinds.get("reply").copied()
    })
    .await;
    // The reply is recorded; at the next step's due time the enrollment ends instead.
    let lead = store.lead(&jane).await.unwrap().unwrap();
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let c = s.config();
    let r = Scheduler::new(
        store.clone(),
        Arc::clone(&c.sequences),
        Arc::new(Notify::new()),
    )
    .run_due(Utc::now() + Duration::days(2))
    .await
    .unwrap();
    // Jane's enrollment ended when her reply was recorded; Eve, who did not reply, gets b.
    assert_eq!((r.enqueued, r.ended), (1, 0), "{r:?}");
    let e = &store.enrollments(lead.id).await.unwrap()[0];
    assert_eq!(e.state, EnrollmentState::Exited);
    assert_eq!(steps_of(&outbox(&store).await, "jane@acme.example"), ["a"]);
}

/// Records an inquiry from a lead called `name`, enrolls it, renders its first step and sends
/// it through smtp-sink; returns the bytes the server received (one message).
async fn send_step_to_lead_named(name: &str) -> Vec<u8> {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!("{ENROLL}{}", step("a", "0m"));
    let c = catalog(dir.path(), &[("welcome", seq)], open_policy());
    let mut eve = inquiry(1, "eve@evil.example", MessageKind::Inquiry);
    if let Some(p) = eve.classification.lead.as_mut() {
        p.name = Some(name.to_owned());
    }
    record(&store, &c, &[eve], t0()).await;
    assert_eq!(
        scheduler(&store, &c).run_due(t0()).await.unwrap().enqueued,
        1
    );

    let sink = tokio::task::spawn_blocking(|| crate::smtp_sink::SmtpSink::start(&[]))
        .await
        .unwrap()
        .expect("starting smtp-sink");
    let smtp = crate::send::smtp_config(sink.port(), 1);
    let sender = leadloop::send::Sender::new(&smtp, None, store.clone()).unwrap();
    let report = sender
        .drain(tokio_util::sync::CancellationToken::new())
        .await;
    assert_eq!(report.sent, 1, "{report:?}");
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    received.into_iter().next().unwrap_or_default()
}

/// A lead whose stored name holds a line break (whatever let it in) cannot add a header to the
/// message that reaches the SMTP server: no Bcc, one recipient.
#[tokio::test]
async fn a_hostile_lead_name_cannot_inject_a_header_on_the_wire() {
    let received = send_step_to_lead_named("Eve\r\nBcc: x@y").await;
    let msg = String::from_utf8_lossy(&received).replace("\r\n", "\n");
    let head = msg.split("\n\n").next().unwrap_or_default();
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
        "{head}"
    );
    assert!(head.contains("Subject: a for Eve Bcc: x@y"), "{head}");
    // smtp-sink records the envelope: one recipient, Eve.
    let rcpts: Vec<&str> = head
        .lines()
        .filter(|l| l.starts_with("X-Rcpt-Args:") || l.contains("RCPT"))
        .collect();
    assert!(rcpts.iter().all(|l| !l.contains("x@y")), "{rcpts:?}");
}

/// A lead whose stored name is text that looks like an encoded-word reaches the SMTP server
/// with that text encoded: a client decoding the Subject and To shows it literally, not as a
/// line break and a Bcc line.
#[tokio::test]
async fn a_lead_name_that_looks_encoded_arrives_as_literal_text() {
    const NAME: &str = "=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?=";
    let received = send_step_to_lead_named(NAME).await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let head = text.split("\n\n").next().unwrap_or_default();
    assert!(!head.contains(NAME), "written as-is:\n{head}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&received)
        .unwrap();
    assert_eq!(parsed.subject(), Some(format!("a for {NAME}").as_str()));
    assert!(parsed.header("Bcc").is_none(), "{head}");
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(to.name(), Some(NAME));
    assert_eq!(to.address(), Some("eve@evil.example"));
}

/// An enrollment that ends while the scheduler decides it (a person unenrolls the lead, a
/// reply arrives) stays ended: the scheduler's settlement is the one that loses.
#[tokio::test]
async fn an_enrollment_ended_while_it_is_decided_stays_ended() {
    use leadloop::store::Settle;
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let c = welcome_two_steps(dir.path());
    let records = [inquiry(1, "ana@example.org", MessageKind::Inquiry)];
    assert_eq!(record(&store, &c, &records, t0()).await, 1);

    let lease = std::time::Duration::from_secs(60);
    let claimed = store.claim_due("s1", t0(), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let lead = claimed[0].lead_id;
    assert_eq!(store.unenroll(lead, None, t0()).await.unwrap(), 1);

    let wait = Settle::Wait {
        steps_done: Vec::new(),
        next_step: Some("a".into()),
        due: t0() + Duration::hours(1),
        last_at: t0(),
    };
    let settled = store
        .settle_enrollments("s1", &[(claimed[0].id, wait)], t0())
        .await
        .unwrap();
    assert_eq!(settled.lost, 1, "{settled:?}");
    let e = store.enrollments(lead).await.unwrap();
    assert_eq!(e[0].state, EnrollmentState::Exited);
    assert_eq!(e[0].next_due_at, None, "not due again: {e:?}");
    let later = store
        .claim_due("s1", t0() + Duration::days(2), lease, 10)
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?}");
    assert!(outbox(&store).await.is_empty());
}

/// While sending is paused the scheduler enqueues nothing: due steps wait with their
/// enrollments, and go out once sending resumes (decided afresh then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sending_pause_keeps_due_steps_out_of_the_outbox() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let seq = format!("{ENROLL}{}", step("a", "0m"));
    let c = catalog(dir.path(), &[("welcome", seq)], open_policy());
    let (_, fresh) = store
        .pause_sending(leadloop::store::PausedBy::Cli, "maintenance", Utc::now())
        .await
        .unwrap();
    assert!(fresh);
    record(
        &store,
        &c,
        &[inquiry(1, "jane@acme.example", MessageKind::Inquiry)],
        t0(),
    )
    .await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = {
        let s = scheduler(&store, &c);
        let cancel = cancel.clone();
        tokio::spawn(async move { s.run(cancel).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(outbox(&store).await.is_empty(), "enqueued while paused");

    store.resume_sending(Utc::now()).await.unwrap();
    let steps = wait_for(|| async {
        let steps = steps_of(&outbox(&store).await, "jane@acme.example");
        (!steps.is_empty()).then_some(steps)
    })
    .await;
    assert_eq!(steps, ["a"]);
    cancel.cancel();
    task.await.unwrap();
}
