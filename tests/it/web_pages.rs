//! The view's reports, outbox and resume, over real HTTP on loopback against the daemon as it
//! runs: who may open each page, CSRF on every POST, the reports' numbers against
//! `leadloop report … --format json` on the same database, the outbox's confirmed retry and
//! cancel acting on the store's rows, a paused sequence resumed from a lead's page, and text
//! from mail and imports written as text.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use leadloop::domain::{LeadId, MessageId, OutboxId, OutboxState};
use leadloop::store::{Claim, NewOutboxMessage, SendOutcome, Store};

use crate::support::{ConfigFile, test_db, with_config};
use crate::web_auth::{
    ANA, ANA_PASSWORD, Browser, Daemon, MIA, Reply, SAM, SAM_PASSWORD, USERS, free_port, to_signin,
    users, write_config,
};

const MIA_PASSWORD: &str = "mia's long passphrase";

/// `s` with the escapes minijinja writes turned back into characters.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag text `tag`.
fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')? + at;
    Some(unescape(&tag[at..end]))
}

/// One row of a report table: its `data-` attributes and its cells by `data-col` (the text,
/// and `data-value` where the cell has one).
#[derive(Debug, Default)]
struct Row {
    attrs: BTreeMap<String, String>,
    cells: BTreeMap<String, (String, Option<String>)>,
}

/// The rows of the table with this `id`, with the attributes in `keys`.
fn table(body: &str, id: &str, keys: &[&str]) -> Vec<Row> {
    let Some(start) = body.find(&format!("<table id=\"{id}\"")) else {
        return Vec::new();
    };
    let end = body[start..].find("</table>").unwrap() + start;
    let mut rows = Vec::new();
    for tr in body[start..end].split("<tr ").skip(1) {
        let tag_end = tr.find('>').unwrap();
        let tag = format!(" {}", &tr[..tag_end]);
        let mut row = Row::default();
        for k in keys {
            if let Some(v) = attr(&tag, &format!("data-{k}")) {
                row.attrs.insert((*k).to_owned(), v);
            }
        }
        for td in tr.split("<td ").skip(1) {
            let close = td.find('>').unwrap();
            let tag = format!(" {}", &td[..close]);
            let Some(col) = attr(&tag, "data-col") else {
                continue;
            };
            let text = &td[close + 1..td.find("</td>").unwrap()];
            row.cells
                .insert(col, (unescape(text), attr(&tag, "data-value")));
        }
        rows.push(row);
    }
    rows
}

/// `leadloop report ARGS --format json`.
fn report_json(config: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let (code, out, err) = with_config(config, &all).run();
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Asserts every row of the CLI's JSON has a row in the page's table with the same numbers,
/// and the page no other rows. `key` is the JSON's group field and the rows' attribute.
fn same_numbers(json: &[serde_json::Value], rows: &[Row], key: &str, columns: &[&str]) {
    assert_eq!(json.len(), rows.len(), "{json:?}\n{rows:?}");
    for j in json {
        let name = j[key].as_str().unwrap_or("-");
        let period = j["period"].as_str();
        let row = rows
            .iter()
            .find(|r| {
                r.attrs.get(key).map(String::as_str) == Some(name)
                    && r.attrs.get("period").map(String::as_str) == period
            })
            .unwrap_or_else(|| panic!("no row for {name} {period:?}: {rows:?}"));
        for col in columns {
            let (text, value) = &row.cells[*col];
            match &j[*col] {
                serde_json::Value::Null => assert_eq!(text, "-", "{name} {col}"),
                v if v.is_i64() => {
                    assert_eq!(text.parse::<i64>().ok(), v.as_i64(), "{name} {col}: {j}");
                }
                v => {
                    let shown: f64 = value
                        .as_deref()
                        .unwrap_or(text)
                        .parse()
                        .unwrap_or_else(|_| panic!("{name} {col}: {text}"));
                    let cli = v.as_f64().unwrap();
                    assert!((shown - cli).abs() < 1e-9, "{name} {col}: {shown} vs {cli}");
                }
            }
        }
        if key != "sequence" && key != "reason" {
            let reasons: Vec<String> = j["top_reasons"]
                .as_array()
                .unwrap()
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "{} ({})",
                        r["reason"].as_str().unwrap_or("-"),
                        r["count"].as_i64().unwrap()
                    )
                })
                .collect();
            let shown = &row.cells["top_reasons"].0;
            let expected = if reasons.is_empty() {
                "-".to_owned()
            } else {
                reasons.join(", ")
            };
            assert!(
                shown.starts_with(&expected),
                "{name}: {shown} vs {expected}"
            );
        }
    }
}

const LEAD_COLUMNS: &[&str] = &[
    "leads",
    "replied",
    "handed_off",
    "qualified",
    "unqualified",
    "customers",
    "reply_rate",
    "handoff_rate",
    "qualified_rate",
    "customer_rate",
    "median_days_to_verdict",
];

/// The link to the first lead of a leads list.
fn first_lead_link(list: &Reply) -> String {
    let at = list
        .body
        .find("href=\"/leads/")
        .unwrap_or_else(|| panic!("a link to a lead in {}", list.body))
        + 6;
    list.body[at..list.body[at..].find('"').unwrap() + at].to_owned()
}

/// The reports: open to every role, the CLI's numbers with and without months, charts drawn
/// in the page, names from imports as text; a verdict given in the view shows in the channel
/// report at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_the_numbers_of_the_cli_with_charts() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &db, port, "", USERS);
    for (who, password) in [
        (SAM, SAM_PASSWORD),
        (MIA, MIA_PASSWORD),
        (ANA, ANA_PASSWORD),
    ] {
        let (code, _, err) = users(&config, &["add", who], password);
        assert_eq!(code, 0, "{err}");
    }
    let evil_channel = "<script>alert(1)</script>";
    let evil_form = "\"><img src=x onerror=alert(2)>";
    let mut csv = String::from("email,name,channel,form,owner,created_at\n");
    let leads = [
        ("f1", "fair", "Stand", "2026-10-03T10:00:00Z"),
        ("f2", "fair", "Stand", "2026-10-20T10:00:00Z"),
        ("f3", "fair", "", "2026-11-02T10:00:00Z"),
        ("w1", "web", "Contact", "2026-10-05T10:00:00Z"),
        ("w2", "web", "Contact", "2026-11-05T10:00:00Z"),
        ("w3", "web", "Contact", "2026-11-06T10:00:00Z"),
        ("w4", "web", "", "2026-12-01T10:00:00Z"),
        ("x1", evil_channel, evil_form, "2026-11-10T10:00:00Z"),
    ];
    for (who, channel, form, at) in leads {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        csv.push_str(&format!(
            "{who}@example.org,{who},{},{},sam@company.com,{at}\n",
            quote(channel),
            quote(form)
        ));
    }
    let file = dir.path().join("leads.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");
    for (who, verdict, reason) in [
        ("f1", "qualified", None),
        ("f2", "unqualified", Some("no budget")),
        ("w1", "customer", None),
        ("w2", "unqualified", Some("too small")),
        ("x1", "unqualified", Some("<b>spam</b>")),
    ] {
        let email = format!("{who}@example.org");
        let mut args = vec!["leads", "verdict", email.as_str(), verdict];
        if let Some(r) = reason {
            args.extend_from_slice(&["--reason", r]);
        }
        let (code, out, err) = with_config(&config, &args).run();
        assert_eq!(code, 0, "{out}{err}");
    }

    let daemon = Daemon::start(&config, port).await;
    let mut anon = Browser::new(port);
    to_signin(&anon.get("/reports").await);
    to_signin(&anon.get("/reports?by=month").await);

    // Every role reads them.
    for (who, password) in [(MIA, MIA_PASSWORD), (ANA, ANA_PASSWORD)] {
        let mut b = Browser::new(port);
        assert_eq!(b.sign_in(who, password).await.status, 303);
        let page = b.get("/reports").await;
        assert_eq!(page.status, 200, "{who}: {page:?}");
        assert!(page.body.contains("href=\"/reports\""), "the nav links it");
    }
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    let page = sam.get("/reports").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-security-policy")
            .contains("default-src 'none'")
    );
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        !page.body.contains(" style="),
        "no inline style: {}",
        page.body
    );
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("&lt;b&gt;spam&lt;&#x2f;b&gt;"));
    assert!(
        !page.body.contains("href=\"/outbox\""),
        "the outbox is for admins"
    );

    // The CLI's numbers, table by table.
    let channel_keys = ["channel", "period"];
    same_numbers(
        &report_json(&config, &["channels"]),
        &table(&page.body, "report-channels", &channel_keys),
        "channel",
        LEAD_COLUMNS,
    );
    same_numbers(
        &report_json(&config, &["forms"]),
        &table(&page.body, "report-forms", &["form", "period"]),
        "form",
        LEAD_COLUMNS,
    );
    same_numbers(
        &report_json(&config, &["owners"]),
        &table(&page.body, "report-owners", &["owner", "period"]),
        "owner",
        LEAD_COLUMNS,
    );
    same_numbers(
        &report_json(&config, &["reasons"]),
        &table(&page.body, "report-reasons", &["reason", "period"]),
        "reason",
        &["count", "share"],
    );
    let by_month = sam.get("/reports?by=month").await;
    assert_eq!(by_month.status, 200);
    let monthly = table(&by_month.body, "report-channels", &channel_keys);
    same_numbers(
        &report_json(&config, &["channels", "--by", "month"]),
        &monthly,
        "channel",
        LEAD_COLUMNS,
    );
    assert_eq!(monthly.len(), 6, "fair 2, web 3, the other 1: {monthly:?}");
    let window = sam
        .get("/reports?since=2026-11-01&until=2026-11-30&by=week")
        .await;
    same_numbers(
        &report_json(
            &config,
            &[
                "channels",
                "--since",
                "2026-11-01",
                "--until",
                "2026-11-30",
                "--by",
                "week",
            ],
        ),
        &table(&window.body, "report-channels", &channel_keys),
        "channel",
        LEAD_COLUMNS,
    );
    // One month in the window: a bar per channel with its count, no line through one point.
    let months_chart = |body: &str| {
        let start = body.find("id=\"chart-months\"").expect("the month chart");
        body[start..start + body[start..].find("</svg>").unwrap()].to_owned()
    };
    let one = months_chart(&window.body);
    assert!(!one.contains("<polyline"), "{one}");
    assert_eq!(
        one.matches("<rect").count(),
        3,
        "fair, web, the other: {one}"
    );
    assert!(
        one.contains("<title>web, 2026-11: 2 leads</title></rect>"),
        "{one}"
    );
    assert!(one.contains(">2</text>"), "the count is written: {one}");
    assert!(window.body.contains("Leads in 2026-11"), "{}", window.body);
    assert!(
        !months_chart(&page.body).contains("<rect"),
        "three months: lines"
    );
    let broken = sam.get("/reports?since=last+week&by=fortnight").await;
    assert_eq!(broken.status, 200);
    assert!(
        broken.body.contains("is not a day like 2026-10-01"),
        "{}",
        broken.body
    );
    assert!(broken.body.contains("neither week nor month"));

    // The charts: a bar per channel and count, a point per channel and month.
    assert!(page.body.contains("<svg"), "{}", page.body);
    assert!(
        page.body.contains("<title>web: 4 leads</title>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<title>web: 1 customers</title>"));
    assert!(page.body.contains("<title>fair: 1 qualified</title>"));
    assert!(
        page.body.contains("<title>fair, 2026-10: 2 leads</title>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<title>fair, 2026-12: 0 leads</title>"));
    assert!(page.body.contains("<title>web, 2026-11: 2 leads</title>"));
    assert_eq!(page.body.matches("<polyline").count(), 3);

    // A verdict given on a lead's page counts at once, as in the CLI.
    let unqualified = |body: &str| {
        table(body, "report-channels", &channel_keys)
            .into_iter()
            .find(|r| r.attrs["channel"] == "web")
            .map(|r| r.cells["unqualified"].0.clone())
    };
    assert_eq!(unqualified(&page.body).as_deref(), Some("1"));
    let lead = first_lead_link(&sam.get("/leads?q=w3%40").await);
    let csrf = sam.get(&lead).await.csrf();
    let given = sam
        .post(
            &format!("{lead}/verdict"),
            &[
                ("csrf", csrf.as_str()),
                ("verdict", "unqualified"),
                ("reason", "no budget"),
            ],
        )
        .await;
    assert_eq!(given.status, 303, "{given:?}");
    let after = sam.get("/reports").await;
    assert_eq!(unqualified(&after.body).as_deref(), Some("2"));
    same_numbers(
        &report_json(&config, &["channels"]),
        &table(&after.body, "report-channels", &channel_keys),
        "channel",
        LEAD_COLUMNS,
    );
    daemon.stop().await;
}

/// A message for the outbox: to `to`, with `subject`.
fn message(lead: Option<LeadId>, to: &str, n: u32, subject: &str) -> NewOutboxMessage {
    let id = format!("m{n}.test@company.com");
    NewOutboxMessage {
        lead_id: lead,
        enrollment_id: None,
        step_id: None,
        from: "leads@company.com".into(),
        envelope_from: "leads@company.com".into(),
        recipient: to.into(),
        message_id: MessageId::new(id.clone()),
        raw: format!(
            "From: leads@company.com\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\r\nHello.\r\n"
        )
        .into_bytes(),
        due_at: Utc::now(),
    }
}

async fn state(store: &Store, id: OutboxId) -> OutboxState {
    store.outbox_entry(id).await.unwrap().unwrap().state
}

/// The outbox: admins only; a failed and an interrupted message listed with their subjects as
/// text; retry and cancel each asked first, done by a POST with the session's token, refused
/// the second time with the CLI's words, and recorded on the lead with the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_retries_and_cancels_after_a_confirmation_for_admins_only() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &db, port, "", USERS);
    for (who, password) in [(SAM, SAM_PASSWORD), (ANA, ANA_PASSWORD)] {
        let (code, _, err) = users(&config, &["add", who], password);
        assert_eq!(code, 0, "{err}");
    }
    let file = dir.path().join("one.csv");
    std::fs::write(&file, "email,name\nlee@example.org,Lee\n").unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");

    // Two messages to Lee that the sender could not finish: one refused, one cut off while
    // it was handed over. The store's own paths put them there.
    let store = Store::connect(&db.url, 2).await.unwrap();
    let lee = crate::support::lead_by_email(&store, "lee@example.org")
        .await
        .unwrap();
    let evil = "\"><img src=x onerror=alert(1)> <script>alert(2)</script>";
    let failed = store
        .enqueue(
            &message(Some(lee.id), "lee@example.org", 1, evil),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let cut = store
        .enqueue(
            &message(
                Some(lee.id),
                "lee@example.org",
                2,
                "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
            ),
            Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let claimed = store
        .settle_and_claim(
            &[],
            Claim {
                now: Utc::now() + chrono::Duration::seconds(1),
                limit: 2,
                lease: std::time::Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.messages.len(), 2);
    store
        .settle(
            &[
                (
                    failed,
                    SendOutcome::Failed {
                        error: "550 5.7.1 <script>refused</script>".into(),
                        bounce: None,
                    },
                ),
                (
                    cut,
                    SendOutcome::Interrupted {
                        error: "no reply to the end of data".into(),
                    },
                ),
            ],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(state(&store, failed).await, OutboxState::Failed);
    assert_eq!(state(&store, cut).await, OutboxState::Interrupted);

    let daemon = Daemon::start(&config, port).await;
    let (retry_cut, cancel_failed) = (
        format!("/outbox/{}/retry", cut.0),
        format!("/outbox/{}/cancel", failed.0),
    );
    let mut anon = Browser::new(port);
    to_signin(&anon.get("/outbox").await);
    to_signin(&anon.get(&retry_cut).await);
    assert_eq!(anon.post(&retry_cut, &[]).await.status, 401);

    // Sales is refused, with or without a token.
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    assert_eq!(sam.get("/outbox").await.status, 403);
    assert_eq!(sam.get(&retry_cut).await.status, 403);
    let csrf = sam.get("/").await.csrf();
    assert_eq!(
        sam.post(&retry_cut, &[("csrf", csrf.as_str())])
            .await
            .status,
        403
    );
    assert_eq!(state(&store, cut).await, OutboxState::Interrupted);

    let mut ana = Browser::new(port);
    assert_eq!(ana.sign_in(ANA, ANA_PASSWORD).await.status, 303);
    let page = ana.get("/outbox").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("href=\"/outbox\""), "the nav links it");
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        page.body
            .contains("&lt;img src=x onerror=alert(1)&gt; &lt;script&gt;alert(2)"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Grüße"), "decoded: {}", page.body);
    assert!(page.body.contains("&lt;script&gt;refused"), "{}", page.body);
    let rows = table(&page.body, "outbox", &["id", "state"]);
    assert_eq!(rows.len(), 2, "{}", page.body);
    assert!(page.body.contains(&format!("href=\"{retry_cut}\"")));
    assert!(page.body.contains(&format!("href=\"{cancel_failed}\"")));

    // Retrying the interrupted message: asked first, with the warning; the GET changes
    // nothing, a POST without the token neither.
    let ask = ana.get(&retry_cut).await;
    assert_eq!(ask.status, 200, "{ask:?}");
    assert!(
        ask.body.contains("may already have arrived"),
        "{}",
        ask.body
    );
    assert!(
        ask.body.contains("Check before retrying it"),
        "{}",
        ask.body
    );
    assert!(ask.body.contains("Grüße"));
    assert_eq!(state(&store, cut).await, OutboxState::Interrupted);
    assert_eq!(ana.post(&retry_cut, &[]).await.status, 403);
    assert_eq!(state(&store, cut).await, OutboxState::Interrupted);
    let csrf = ask.csrf();
    let done = ana.post(&retry_cut, &[("csrf", csrf.as_str())]).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(done.header("location"), "/outbox");
    assert_eq!(state(&store, cut).await, OutboxState::Pending);
    // Twice is refused, as the CLI refuses it: the message is queued once.
    let again = ana.post(&retry_cut, &[("csrf", csrf.as_str())]).await;
    assert_eq!(again.status, 409, "{again:?}");
    assert!(
        again.body.contains(&format!(
            "Message {} is pending: it cannot be queued again.",
            cut.0
        )),
        "{}",
        again.body
    );
    assert_eq!(ana.get(&retry_cut).await.status, 409);

    // Cancelling the failed one.
    let ask = ana.get(&cancel_failed).await;
    assert_eq!(ask.status, 200);
    assert!(!ask.body.contains("may already have arrived"));
    let done = ana.post(&cancel_failed, &[("csrf", csrf.as_str())]).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(state(&store, failed).await, OutboxState::Cancelled);
    let page = ana.get("/outbox").await;
    assert!(
        table(&page.body, "outbox", &["id"]).is_empty(),
        "nothing waits: {}",
        page.body
    );
    assert_eq!(ana.get("/outbox/999999/retry").await.status, 404);
    assert_eq!(
        ana.get(&format!("/outbox/{}/send", cut.0)).await.status,
        404
    );
    assert_eq!(ana.get("/outbox/x/retry").await.status, 404);

    // On Lee's timeline, with Ana.
    let (_, shown, _) = with_config(&config, &["leads", "show", "lee@example.org", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let events: Vec<&serde_json::Value> = v["timeline"]
        .as_array()
        .unwrap_or_else(|| panic!("a timeline: {v}"))
        .iter()
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("outbox_")))
        .collect();
    assert_eq!(events.len(), 2, "{v}");
    let text = serde_json::to_string(&events).unwrap();
    assert!(text.contains("outbox_retried") && text.contains("outbox_cancelled"));
    assert!(text.contains("\"by\":\"ana@company.com\""), "{text}");
    assert!(text.contains("\"was\":\"interrupted\""), "{text}");
    store.close().await;
    daemon.stop().await;
}

/// A sequence paused from a lead's page resumes from it: CSRF-checked, on the timeline with
/// the signed-in person, and its step due as it was before the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sequence_resumes_from_the_lead_page() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sequence = "[enroll]\nmanual = true\n\n[[step]]\nid = \"a\"\ndelay = \"3d\"\ntemplate = \"t\"\nsubject = \"s\"\n";
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(&[("welcome", sequence)], &[("t.txt", "Hi.\n")])
        .raw(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n{USERS}\n"
        ))
        .write();
    let (code, _, err) = users(&config, &["add", SAM], SAM_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("one.csv");
    std::fs::write(&file, "email,name\nlee@example.org,Lee\n").unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = with_config(&config, &["enroll", "lee@example.org", "welcome"]).run();
    assert_eq!(code, 0, "{out}{err}");
    let store = Store::connect(&db.url, 2).await.unwrap();
    let lee = crate::support::lead_by_email(&store, "lee@example.org")
        .await
        .unwrap();

    let daemon = Daemon::start(&config, port).await;
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    let href = format!("/leads/{}", lee.id.0);
    // The scheduler has worked the step out: due in three days.
    let due = crate::support::wait_for(|| async {
        let e = store.enrollments(lee.id).await.unwrap().pop()?;
        e.next_step.as_ref()?;
        e.next_due_at
    })
    .await;
    assert!(due > Utc::now() + chrono::Duration::days(2), "{due}");
    let page = sam.get(&href).await;
    assert!(!page.body.contains("Resume now"), "nothing is paused yet");
    let csrf = page.csrf();
    let r = sam
        .post(&format!("{href}/resume"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(r.status, 400, "nothing to resume: {r:?}");

    let until = (Utc::now() + chrono::Duration::days(10))
        .date_naive()
        .to_string();
    let r = sam
        .post(
            &format!("{href}/pause"),
            &[("csrf", csrf.as_str()), ("until", until.as_str())],
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let paused = store.enrollments(lee.id).await.unwrap().pop().unwrap();
    assert!(paused.paused_until.is_some());
    assert!(paused.next_due_at.unwrap() > Utc::now() + chrono::Duration::days(9));
    let page = sam.get(&href).await;
    assert!(page.body.contains("Resume now"), "{}", page.body);
    assert!(page.body.contains(&until), "the pause shows: {}", page.body);

    let mut anon = Browser::new(port);
    assert_eq!(anon.post(&format!("{href}/resume"), &[]).await.status, 401);
    assert_eq!(
        sam.post(&format!("{href}/resume"), &[]).await.status,
        403,
        "no token"
    );
    assert!(
        store
            .enrollments(lee.id)
            .await
            .unwrap()
            .pop()
            .unwrap()
            .paused_until
            .is_some()
    );
    let r = sam
        .post(&format!("{href}/resume"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), href);

    // The step is due as before the pause, not now and not after it.
    let resumed = crate::support::wait_for(|| async {
        let e = store.enrollments(lee.id).await.unwrap().pop()?;
        e.next_step.as_ref()?;
        Some(e)
    })
    .await;
    assert!(resumed.paused_until.is_none());
    let again = resumed.next_due_at.unwrap();
    assert!(
        (again - due).num_minutes().abs() <= 60,
        "due {again}, before the pause {due}"
    );
    let (_, shown, _) = with_config(&config, &["leads", "show", "lee@example.org", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let resumed_event = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "resumed")
        .unwrap_or_else(|| panic!("a resumed event: {v}"))
        .clone();
    assert_eq!(resumed_event["detail"]["by"], "sam@company.com", "{v}");
    let page = sam.get(&href).await;
    assert!(!page.body.contains("Resume now"));
    assert!(
        page.body.contains("resumed"),
        "on the timeline: {}",
        page.body
    );
    let r = sam
        .post(&format!("{href}/resume"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(r.status, 400, "once is enough: {r:?}");
    store.close().await;
    daemon.stop().await;
}
