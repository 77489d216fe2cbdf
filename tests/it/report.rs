//! `leadloop report …` on a history built cell by cell: leads created (by the ingest store
//! path) at chosen moments around month ends in the team's zone, replies, hand-offs queued and
//! skipped, verdicts that replace each other, and sequence messages with what followed each.
//! Every report is run through the real binary and every cell compared with the value worked
//! out by hand below; the same on SQLite and PostgreSQL.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use leadloop::classify::{Classification, Person};
use leadloop::domain::{EmailAddress, MessageKind, Verdict, VerdictKind};
use leadloop::store::{
    Batch, Change, HandoffOutcome, InboundRecord, LeadChange, NewOutboxMessage, Store,
};
use serde_json::{Value, json};

use crate::support::{ConfigFile, run_cli, test_store};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// One inbound message of `kind` about `lead`, recorded at `now` as ingest records it.
async fn record(
    store: &Store,
    key: &str,
    kind: MessageKind,
    lead: &str,
    set: impl FnOnce(&mut Classification),
    now: DateTime<Utc>,
) {
    let mut c = Classification::ignored("placeholder");
    c.kind = kind;
    c.reason = None;
    c.lead = Some(Person {
        email: addr(lead),
        name: None,
        company: None,
        phone: None,
    });
    set(&mut c);
    let records = [InboundRecord {
        uid: None,
        dedupe_key: key.to_owned(),
        size: 100,
        classification: c,
    }];
    store
        .record_batch(&Batch {
            mailbox: "INBOX",
            uidvalidity: 0,
            last_uid: None,
            records: &records,
            now,
            enroll: &[],
            changes: &[],
        })
        .await
        .unwrap();
}

/// A lead created at `now` on `channel`, from `form`, forwarded by `owner`.
async fn lead(
    store: &Store,
    email: &str,
    channel: &str,
    form: Option<&str>,
    owner: Option<&str>,
    now: DateTime<Utc>,
) {
    let kind = match (form, owner) {
        (Some(_), _) => MessageKind::Form,
        (None, Some(_)) => MessageKind::Forward,
        (None, None) => MessageKind::Inquiry,
    };
    record(
        store,
        &format!("new:{email}"),
        kind,
        email,
        |c| {
            c.channel = Some(channel.to_owned());
            c.form = form.map(str::to_owned);
            c.owner = owner.map(addr);
        },
        now,
    )
    .await;
}

async fn change(store: &Store, email: &str, change: Change, now: DateTime<Utc>) {
    store
        .apply_lead_changes(
            &[LeadChange {
                record: 0,
                lead: addr(email),
                change,
            }],
            now,
        )
        .await
        .unwrap();
}

/// Sales' judgement, recorded as `leads verdict` records it, at `now`.
async fn judge(
    store: &Store,
    email: &str,
    kind: VerdictKind,
    reason: Option<&str>,
    now: DateTime<Utc>,
) {
    let verdict = Verdict::judgement(kind, reason.map(str::to_owned));
    let status = verdict.status();
    change(
        store,
        email,
        Change::Verdict {
            verdict,
            by: "cli:test".to_owned(),
            source: "cli",
        },
        now,
    )
    .await;
    if let Some(s) = status {
        change(store, email, Change::Status(s), now).await;
    }
}

/// A hand-off to the lead's owner, then what the hand-off worker made of it at `now`:
/// queued for Sales (`sent`) or skipped.
async fn hand_off(store: &Store, email: &str, sent: bool, now: DateTime<Utc>) {
    change(
        store,
        email,
        Change::Handoff {
            why: "replied".to_owned(),
        },
        now,
    )
    .await;
    let pending = store.pending_handoffs(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let outcome = if sent {
        HandoffOutcome::Queued(Box::new(NewOutboxMessage {
            lead_id: None,
            enrollment_id: None,
            step_id: None,
            from: "leads@company.com".to_owned(),
            envelope_from: "leads@company.com".to_owned(),
            recipient: "sales@company.com".to_owned(),
            message_id: format!("handoff-{email}@company.com").into(),
            raw: b"Subject: lead\r\n\r\nhello\r\n".to_vec(),
            due_at: now,
        }))
    } else {
        HandoffOutcome::Skipped("no owner".to_owned())
    };
    assert!(
        store
            .finish_handoff(&pending[0], &outcome, now)
            .await
            .unwrap()
    );
}

/// A sequence enrollment and its sent messages, written as the scheduler and the sender
/// leave them (the steps' sending is not what this test is about).
async fn sent_steps(db_url: &str, store: &Store, email: &str, steps: &[(&str, &str)]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let lead = store.lead(&addr(email)).await.unwrap().unwrap().id.0;
    let first = at(steps[0].1).timestamp_millis();
    let enrollment: i64 = sqlx::Row::get(
        &sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO enrollments (lead_id, sequence, state, last_at, enrolled_at, updated_at) \
             VALUES ({lead}, 'welcome', 'active', {first}, {first}, {first}) RETURNING id"
        )))
        .fetch_one(&pool)
        .await
        .unwrap(),
        0,
    );
    for (step, sent) in steps {
        let t = at(sent).timestamp_millis();
        let (state, sent_at) = if *step == "failed" {
            ("failed", "NULL".to_owned())
        } else {
            ("sent", t.to_string())
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox (lead_id, enrollment_id, step_id, from_addr, envelope_from, recipient, \
               recipient_domain, message_id, size, state, next_attempt_at, created_at, updated_at, sent_at) \
             VALUES ({lead}, {enrollment}, '{step}', 'hello@company.com', 'hello@company.com', '{email}', \
               'example.org', '{step}.{enrollment}@company.com', 100, '{state}', {t}, {t}, {t}, {sent_at})"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

/// The history the expected values below are worked out from. The team is in Berlin.
///
/// | lead | channel, form, owner | created (Berlin) | replied | hand-off | verdicts (days after creation) |
/// |---|---|---|---|---|---|
/// | w1 | webinar, Webinar signup | 5 Oct | yes | queued | qualified (2) |
/// | w2 | webinar, Webinar signup | 6 Oct | yes | – | unqualified: no budget (4) |
/// | w3 | webinar, Webinar signup | 1 Oct 00:30 | – | – | unqualified: no budget (1), not now (CLI) |
/// | w4 | webinar, Webinar signup | 1 Nov 00:30 | yes | queued | customer (10) |
/// | l1 | linkedin, anna | 3 Nov | yes | – | unqualified: timing (3), qualified (5) |
/// | l2 | linkedin, anna → bob | 4 Nov | – | – | unqualified (6), owner: bob (CLI) |
/// | l3 | linkedin, anna | 30 Sep 23:30 | yes | – | qualified: outside the window |
/// | d1 | direct, bob | 10 Nov | yes | skipped | – |
async fn history(store: &Store, db_url: &str, config: &Path) {
    let webinar = Some("Webinar signup");
    lead(
        store,
        "w1@example.org",
        "webinar",
        webinar,
        None,
        at("2026-10-05T10:00:00Z"),
    )
    .await;
    lead(
        store,
        "w2@example.org",
        "webinar",
        webinar,
        None,
        at("2026-10-06T10:00:00Z"),
    )
    .await;
    // 00:30 on 1 October in Berlin: in the window and in October, though September in UTC.
    lead(
        store,
        "w3@example.org",
        "webinar",
        webinar,
        None,
        at("2026-09-30T22:30:00Z"),
    )
    .await;
    // 00:30 on 1 November in Berlin: November.
    lead(
        store,
        "w4@example.org",
        "webinar",
        webinar,
        None,
        at("2026-10-31T23:30:00Z"),
    )
    .await;
    let anna = Some("anna@company.com");
    lead(
        store,
        "l1@example.org",
        "linkedin",
        None,
        anna,
        at("2026-11-03T09:00:00Z"),
    )
    .await;
    lead(
        store,
        "l2@example.org",
        "linkedin",
        None,
        anna,
        at("2026-11-04T09:00:00Z"),
    )
    .await;
    // 23:30 on 30 September in Berlin: before the window.
    lead(
        store,
        "l3@example.org",
        "linkedin",
        None,
        anna,
        at("2026-09-30T21:30:00Z"),
    )
    .await;
    lead(
        store,
        "d1@example.org",
        "direct",
        None,
        Some("bob@company.com"),
        at("2026-11-10T12:00:00Z"),
    )
    .await;

    let reply = |email: &'static str, when: &'static str| async move {
        record(
            store,
            &format!("reply:{email}:{when}"),
            MessageKind::Reply,
            email,
            |_| {},
            at(when),
        )
        .await;
    };
    reply("w1@example.org", "2026-10-06T09:00:00Z").await;
    reply("w1@example.org", "2026-10-09T09:00:00Z").await; // a second reply counts once
    reply("w2@example.org", "2026-10-09T10:00:00Z").await;
    reply("w4@example.org", "2026-11-02T10:00:00Z").await;
    reply("l1@example.org", "2026-11-04T10:00:00Z").await;
    reply("l3@example.org", "2026-10-02T10:00:00Z").await;
    reply("d1@example.org", "2026-11-11T10:00:00Z").await;
    record(
        store,
        "bounce:l2",
        MessageKind::Bounce,
        "l2@example.org",
        |_| {},
        at("2026-11-05T10:00:00Z"),
    )
    .await;
    record(
        store,
        "unsub:l2",
        MessageKind::Unsubscribe,
        "l2@example.org",
        |_| {},
        at("2026-11-08T10:00:00Z"),
    )
    .await;

    hand_off(store, "w1@example.org", true, at("2026-10-06T09:05:00Z")).await;
    hand_off(store, "w4@example.org", true, at("2026-11-02T10:05:00Z")).await;
    hand_off(store, "d1@example.org", false, at("2026-11-11T10:05:00Z")).await;

    use VerdictKind::{Customer, Qualified, Unqualified};
    judge(
        store,
        "w1@example.org",
        Qualified,
        None,
        at("2026-10-07T10:00:00Z"),
    )
    .await;
    judge(
        store,
        "w2@example.org",
        Unqualified,
        Some("no budget"),
        at("2026-10-10T10:00:00Z"),
    )
    .await;
    judge(
        store,
        "w3@example.org",
        Unqualified,
        Some("no budget"),
        at("2026-10-01T22:30:00Z"),
    )
    .await;
    judge(
        store,
        "w4@example.org",
        Customer,
        None,
        at("2026-11-10T23:30:00Z"),
    )
    .await;
    judge(
        store,
        "l1@example.org",
        Unqualified,
        Some("timing"),
        at("2026-11-06T09:00:00Z"),
    )
    .await;
    judge(
        store,
        "l1@example.org",
        Qualified,
        None,
        at("2026-11-08T09:00:00Z"),
    )
    .await;
    judge(
        store,
        "l2@example.org",
        Unqualified,
        None,
        at("2026-11-10T09:00:00Z"),
    )
    .await;
    judge(
        store,
        "l3@example.org",
        Qualified,
        None,
        at("2026-10-03T10:00:00Z"),
    )
    .await;
    // Verdicts that judge nothing, through the command Sales uses: the newest quality verdict
    // stays the lead's. The owner verdict makes bob l2's owner.
    for (email, words) in [
        ("w3@example.org", "not now: 3 months"),
        ("l2@example.org", "owner: bob@company.com"),
    ] {
        let (code, out) = run_cli(config, &["leads", "verdict", email, words]);
        assert_eq!(code, 0, "{out}");
    }

    // The welcome sequence: w1 replied, was handed off and qualified after its first step;
    // w2 replied and was judged after its only step; l2 bounced after the first step and
    // unsubscribed and was judged after the second. A message that failed was never sent.
    sent_steps(
        db_url,
        store,
        "w1@example.org",
        &[
            ("welcome", "2026-10-05T11:00:00Z"),
            ("case-study", "2026-10-08T11:00:00Z"),
        ],
    )
    .await;
    sent_steps(
        db_url,
        store,
        "w2@example.org",
        &[("welcome", "2026-10-06T11:00:00Z")],
    )
    .await;
    sent_steps(
        db_url,
        store,
        "l2@example.org",
        &[
            ("welcome", "2026-11-04T10:00:00Z"),
            ("case-study", "2026-11-07T10:00:00Z"),
        ],
    )
    .await;
    sent_steps(
        db_url,
        store,
        "d1@example.org",
        &[("failed", "2026-11-10T13:00:00Z")],
    )
    .await;
}

/// `leadloop report ARGS --since 2026-10-01 --until 2026-11-30 --format json`, parsed.
fn report_json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--since",
        "2026-10-01",
        "--until",
        "2026-11-30",
        "--format",
        "json",
    ]);
    let (code, out) = run_cli(config, &all);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn report_text(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--since", "2026-10-01", "--until", "2026-11-30"]);
    let (code, out) = run_cli(config, &all);
    assert_eq!(code, 0, "{out}");
    out
}

/// A lead report row: counts, reasons, rates and median, with `key` and `period` in front.
#[allow(clippy::too_many_arguments)]
fn row(
    key: (&str, Value),
    period: Option<&str>,
    [
        leads,
        replied,
        handed_off,
        qualified,
        unqualified,
        customers,
    ]: [i64; 6],
    [reply_rate, handoff_rate, qualified_rate, customer_rate]: [Value; 4],
    median: Value,
    reasons: Value,
) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.0.to_owned(), key.1);
    if let Some(p) = period {
        m.insert("period".to_owned(), p.into());
    }
    for (k, v) in [
        ("leads", json!(leads)),
        ("replied", json!(replied)),
        ("handed_off", json!(handed_off)),
        ("qualified", json!(qualified)),
        ("unqualified", json!(unqualified)),
        ("customers", json!(customers)),
        ("reply_rate", reply_rate),
        ("handoff_rate", handoff_rate),
        ("qualified_rate", qualified_rate),
        ("customer_rate", customer_rate),
        ("median_days_to_verdict", median),
        ("top_reasons", reasons),
    ] {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

fn test_config(dir: &Path, db_url: &str) -> PathBuf {
    ConfigFile::new(dir, db_url)
        .maildir("inbox")
        .raw("[policy]\ntimezone = \"Europe/Berlin\"\n")
        .write()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_reconcile_with_a_known_history() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), &db.url);
    history(&store, &db.url, &config).await;

    let no_budget = |n: i64| json!([{"reason": "no budget", "count": n}]);
    let unnamed = json!([{"reason": null, "count": 1}]);
    // Webinar: 4 leads (w3 counts from 00:30 Berlin), 3 replied, w1 and w4 handed off;
    // newest quality verdicts q w1, u w2 w3, c w4; days to first verdict 2, 4, 1, 10.
    let webinar = |key: &str| {
        row(
            (key, json!("webinar")),
            None,
            [4, 3, 2, 1, 2, 1],
            [json!(0.75), json!(0.5), json!(0.25), json!(0.25)],
            json!(3.0),
            no_budget(2),
        )
    };
    // LinkedIn: l1 and l2 (l3 is before the window); l1's newest is qualified, first verdict
    // after 3 days; l2 unqualified without reason after 6.
    let linkedin = row(
        ("channel", json!("linkedin")),
        None,
        [2, 1, 0, 1, 1, 0],
        [json!(0.5), json!(0.0), json!(0.5), json!(0.0)],
        json!(4.5),
        unnamed.clone(),
    );
    let direct = row(
        ("channel", json!("direct")),
        None,
        [1, 1, 0, 0, 0, 0],
        [json!(1.0), json!(0.0), Value::Null, json!(0.0)],
        Value::Null,
        json!([]),
    );
    assert_eq!(
        report_json(&config, &["channels"]),
        json!([direct, linkedin, webinar("channel")])
    );

    // By month in Berlin: w3 is October's, w4 November's.
    let by_month = report_json(&config, &["channels", "--by", "month"]);
    let month = |key: &str, period: &str, counts, rates, median, reasons| {
        row(
            ("channel", json!(key)),
            Some(period),
            counts,
            rates,
            median,
            reasons,
        )
    };
    assert_eq!(
        by_month,
        json!([
            month(
                "direct",
                "2026-11",
                [1, 1, 0, 0, 0, 0],
                [json!(1.0), json!(0.0), Value::Null, json!(0.0)],
                Value::Null,
                json!([])
            ),
            month(
                "linkedin",
                "2026-11",
                [2, 1, 0, 1, 1, 0],
                [json!(0.5), json!(0.0), json!(0.5), json!(0.0)],
                json!(4.5),
                unnamed.clone()
            ),
            month(
                "webinar",
                "2026-10",
                [3, 2, 1, 1, 2, 0],
                [json!(0.6667), json!(0.3333), json!(0.3333), json!(0.0)],
                json!(2.0),
                no_budget(2)
            ),
            month(
                "webinar",
                "2026-11",
                [1, 1, 1, 0, 0, 1],
                [json!(1.0), json!(1.0), json!(0.0), json!(1.0)],
                json!(10.0),
                json!([])
            ),
        ])
    );

    // The same rows as CSV, with the reasons as text.
    let (code, csv) = run_cli(
        &config,
        &[
            "report",
            "channels",
            "--by",
            "month",
            "--since",
            "2026-10-01",
            "--until",
            "2026-11-30",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        csv,
        "channel,period,leads,replied,handed_off,qualified,unqualified,customers,reply_rate,handoff_rate,qualified_rate,customer_rate,median_days_to_verdict,top_reasons\n\
         direct,2026-11,1,1,0,0,0,0,1.0,0.0,,0.0,,\n\
         linkedin,2026-11,2,1,0,1,1,0,0.5,0.0,0.5,0.0,4.5,- (1)\n\
         webinar,2026-10,3,2,1,1,2,0,0.6667,0.3333,0.3333,0.0,2.0,no budget (2)\n\
         webinar,2026-11,1,1,1,0,0,1,1.0,1.0,0.0,1.0,10.0,\n"
    );

    // Forms: the webinar form, then the leads that came without one (l1, l2, d1).
    assert_eq!(
        report_json(&config, &["forms"]),
        json!([
            webinar("form").as_object().map(|o| {
                let mut o = o.clone();
                o.insert("form".to_owned(), json!("Webinar signup"));
                o
            }),
            row(
                ("form", Value::Null),
                None,
                [3, 2, 0, 1, 1, 0],
                [json!(0.6667), json!(0.0), json!(0.5), json!(0.0)],
                json!(4.5),
                unnamed.clone()
            ),
        ])
    );

    // By month, grouped in one pass: the webinar form's leads split as the channel's did.
    let rows = report_json(&config, &["forms", "--by", "month"]);
    let cells: Vec<(Value, Value, Value, Value, Value)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["form"].clone(),
                r["period"].clone(),
                r["leads"].clone(),
                r["median_days_to_verdict"].clone(),
                r["top_reasons"].clone(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        [
            (
                json!("Webinar signup"),
                json!("2026-10"),
                json!(3),
                json!(2.0),
                no_budget(2)
            ),
            (
                json!("Webinar signup"),
                json!("2026-11"),
                json!(1),
                json!(10.0),
                json!([])
            ),
            (
                Value::Null,
                json!("2026-11"),
                json!(3),
                json!(4.5),
                unnamed.clone()
            ),
        ]
    );

    // Owners, as they are now: anna forwarded l1; l2 went to bob by Sales' verdict; the
    // webinar leads have none.
    let mut unowned = webinar("owner");
    unowned["owner"] = Value::Null;
    assert_eq!(
        report_json(&config, &["owners"]),
        json!([
            row(
                ("owner", json!("anna@company.com")),
                None,
                [1, 1, 0, 1, 0, 0],
                [json!(1.0), json!(0.0), json!(1.0), json!(0.0)],
                json!(3.0),
                json!([])
            ),
            row(
                ("owner", json!("bob@company.com")),
                None,
                [2, 1, 0, 0, 1, 0],
                [json!(0.5), json!(0.0), json!(0.0), json!(0.0)],
                json!(6.0),
                unnamed.clone()
            ),
            unowned,
        ])
    );

    // Reasons: of 3 unqualified leads, 2 gave no budget, 1 no reason.
    assert_eq!(
        report_json(&config, &["reasons"]),
        json!([
            {"reason": "no budget", "count": 2, "share": 0.6667},
            {"reason": null, "count": 1, "share": 0.3333},
        ])
    );
    assert_eq!(
        report_json(&config, &["reasons", "--by-channel"]),
        json!([
            {"channel": "linkedin", "reason": null, "count": 1, "share": 1.0},
            {"channel": "webinar", "reason": "no budget", "count": 2, "share": 1.0},
        ])
    );

    // Sequences: each message counts what followed it before the next step went out.
    let step = |name: &str,
                [
        sent,
        replied,
        unsubscribed,
        bounced,
        handed_off,
        qualified,
        unqualified,
        customers,
    ]: [i64; 8],
                rate: f64| {
        json!({"sequence": "welcome", "step": name, "sent": sent, "replied": replied,
               "unsubscribed": unsubscribed, "bounced": bounced, "handed_off": handed_off,
               "qualified": qualified, "unqualified": unqualified, "customers": customers,
               "reply_rate": rate})
    };
    assert_eq!(
        report_json(&config, &["sequences"]),
        json!([
            step("welcome", [3, 2, 0, 1, 1, 1, 1, 0], 0.6667),
            // w1's second reply came after the second step.
            step("case-study", [2, 1, 1, 0, 0, 0, 1, 0], 0.5),
        ])
    );
    let by_month = report_json(&config, &["sequences", "--by", "month"]);
    let periods: Vec<(&str, &str, i64)> = by_month
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap(),
                r["period"].as_str().unwrap(),
                r["sent"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        periods,
        [
            ("welcome", "2026-10", 2),
            ("case-study", "2026-10", 1),
            ("welcome", "2026-11", 1),
            ("case-study", "2026-11", 1)
        ]
    );

    // The table says which zone its days and months are in, and lines its numbers up.
    let text = report_text(&config, &["channels", "--by", "month"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("2026-10-01 00:00") && lines[0].contains("Europe/Berlin"),
        "{text}"
    );
    let header = lines[2];
    assert!(header.starts_with("CHANNEL   PERIOD   LEADS"), "{text}");
    let leads_end = header.find("LEADS").unwrap() + "LEADS".len();
    assert_eq!(lines.len(), 7, "{text}");
    for l in &lines[3..] {
        assert!(
            l[..leads_end].ends_with(|c: char| c.is_ascii_digit()),
            "{text}"
        );
    }
    // Narrower windows count only what is in them.
    let (code, out) = run_cli(
        &config,
        &[
            "report",
            "channels",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-01T00:40:00+01:00",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(
        (&rows[0]["channel"], &rows[0]["leads"]),
        (&json!("webinar"), &json!(1))
    );
}

/// `leads list` fits its columns to what they hold: an `unsubscribed` status no longer pushes
/// the creation time out of its column.
#[tokio::test(flavor = "multi_thread")]
async fn lead_tables_fit_long_values() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), &db.url);
    let now = Utc::now() - TimeDelta::minutes(5);
    lead(&store, "a@example.org", "webinar", None, None, now).await;
    lead(
        &store,
        "bartholomew.longname@example.org",
        "x",
        None,
        None,
        now,
    )
    .await;
    let (code, out) = run_cli(
        &config,
        &["leads", "status", "a@example.org", "unsubscribed"],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&config, &["leads", "list"]);
    assert_eq!(code, 0, "{out}");
    let created = out.lines().next().unwrap().find("CREATED").unwrap();
    for l in out.lines().skip(1) {
        assert!(
            l[created..].starts_with(&now.format("%Y-%m-%d").to_string()),
            "{out}"
        );
        assert!(l[..created].ends_with("  "), "{out}");
    }
    assert!(out.contains("unsubscribed"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_aligned(&lines);

    // `leads show`'s timeline: an `autoreply` row keeps the subject in its column, and every
    // time is in the team's zone, which a header line names.
    record(
        &store,
        "ooo:a",
        MessageKind::Autoreply,
        "a@example.org",
        |c| c.subject = Some("Out of office".to_owned()),
        now + TimeDelta::minutes(1),
    )
    .await;
    let (code, out) = run_cli(&config, &["leads", "show", "a@example.org"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(times in Europe/Berlin)"), "{out}");
    let timeline: Vec<&str> = out
        .lines()
        .skip_while(|l| l.trim() != "timeline:")
        .skip(1)
        .collect();
    assert!(timeline.len() >= 3, "{out}");
    assert!(
        timeline
            .iter()
            .any(|l| l.contains("  autoreply  ") && l.ends_with("  Out of office")),
        "{out}"
    );
    assert_aligned(&timeline);
    let berlin = (now + TimeDelta::minutes(1))
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(
        timeline
            .iter()
            .any(|l| l.trim_start().starts_with(&berlin) && l.contains("autoreply")),
        "{berlin}: {out}"
    );
}

/// Where each cell of a table line starts: the first text, and text after two or more
/// spaces (cells hold single spaces at most), counted in characters.
fn cell_starts(line: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut spaces = 0;
    for (i, c) in line.chars().enumerate() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        if starts.is_empty() || spaces >= 2 {
            starts.push(i);
        }
        spaces = 0;
    }
    starts
}

/// A table of left-aligned columns whatever the terminal's width: every line's cells start
/// where the fullest line's do (a line may lack trailing cells). A cell wider than its
/// column would push the next one right, or run into it.
fn assert_aligned(lines: &[&str]) {
    let columns = lines
        .iter()
        .map(|l| cell_starts(l))
        .max_by_key(Vec::len)
        .expect("a table has lines");
    assert!(columns.len() > 1, "{lines:#?}");
    for l in lines {
        let starts = cell_starts(l);
        assert_eq!(
            starts[..],
            columns[..starts.len()],
            "misaligned line {l:?} in\n{}",
            lines.join("\n")
        );
    }
}

/// Every command that prints ends quietly and successfully when its reader has gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_commands_quietly() {
    let (store, db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), &db.url);
    lead(&store, "a@example.org", "webinar", None, None, Utc::now()).await;
    for args in [
        &["leads", "list"][..],
        &["leads", "show", "a@example.org"],
        &["report", "channels", "--by", "week"],
        &["report", "sequences", "--format", "csv"],
        &["check"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadloop"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("LEADLOOP_LOG", "warn")
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
