//! Digests (`[[digest]]`) end to end: a history recorded through the binary (Maildir, `run
//! --once`, `leads verdict`), moved a week back so it falls in the last full week; a digest
//! whose schedule fired a moment ago goes out once through the file outbox, with the channel
//! counts and the lead still waiting for a verdict; a restart sends nothing more, and two
//! daemons racing on one database (PostgreSQL when `LEADLOOP_TEST_DATABASE_URL` names it)
//! queue it once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Datelike as _;
use leadloop::actions::digest::Outcome;
use leadloop::config::Config;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::support::{ConfigFile, TestDb, run_cli, test_db, wait_for};

/// Every minute: whenever the test runs, the schedule fired within the last minute.
const DIGEST: &str = "\
[[digest]]
name = \"weekly\"
schedule = \"* * * * *\"
to = [\"marketing@company.com\", \"boss@company.com\"]
reports = [\"channels\", \"reasons\"]
";

fn config(dir: &Path, db: &TestDb, digest: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("inbox/new")).unwrap();
    ConfigFile::new(dir, &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .raw(&format!(
            "[handoff]\non_reply = false\nchannels = [\"webinar\"]\ndefault_owner = \"sales@company.com\"\n\n\
             [[sender]]\nname = \"team\"\naddress = \"leads@company.com\"\n\n\
             [smtp]\ntransport = \"file:{}\"\n\n{digest}",
            dir.join("outbox").display()
        ))
        .write()
}

fn deliver(dir: &Path, name: &str, from: &str, to: &str) {
    let date = chrono::Utc::now().to_rfc2822();
    let text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: A question\r\nDate: {date}\r\n\
         Message-ID: <{name}@mail.example>\r\n\r\nCould you send me your prices?\r\n"
    );
    std::fs::write(dir.join("inbox/new").join(format!("{name}.eml")), text).unwrap();
}

async fn pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

/// Moves the whole history a week back, as if it had happened last week.
async fn a_week_ago(db: &TestDb) {
    let pool = pool(db).await;
    let week: i64 = 7 * 86_400_000;
    sqlx::query(
        "UPDATE leads SET created_at = created_at - $1, updated_at = updated_at - $1, \
           replied_at = replied_at - $1, handed_off_at = handed_off_at - $1, \
           verdict_at = verdict_at - $1, first_verdict_at = first_verdict_at - $1",
    )
    .bind(week)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// Outbox rows whose recipient is `to` and that hold a digest, by Message-ID.
async fn digest_rows(db: &TestDb, to: &str) -> i64 {
    let pool = pool(db).await;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM outbox WHERE recipient = $1 AND message_id LIKE 'leadloop.digest.%'",
    )
    .bind(to)
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    pool.close().await;
    n
}

async fn digests_recorded(db: &TestDb) -> i64 {
    let pool = pool(db).await;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM digests")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    pool.close().await;
    n
}

/// The digest files in the file outbox, parsed: (recipient, subject, text, html).
fn digest_files(dir: &Path) -> Vec<(String, String, String, String)> {
    let Ok(rd) = std::fs::read_dir(dir.join("outbox")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let subject = m.subject().unwrap_or_default().to_owned();
        if !subject.starts_with("leadloop digest:") {
            continue;
        }
        let to = m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned();
        out.push((
            to,
            subject,
            m.body_text(0).unwrap_or_default().into_owned(),
            m.body_html(0).unwrap_or_default().into_owned(),
        ));
    }
    out.sort();
    out
}

/// The fields of the text table row that starts with `key`.
fn row<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row {key} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn a_due_digest_goes_out_once_with_the_channel_counts() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The history first, without the digest (its schedule fires every minute).
    let plain = config(d, &db, "");
    for (name, from, to) in [
        (
            "w1",
            "Wendy One <w1@example.org>",
            "leads+webinar@company.com",
        ),
        ("w2", "w2@example.org", "leads+webinar@company.com"),
        (
            "w3",
            "Walt Three <w3@example.org>",
            "leads+webinar@company.com",
        ),
        ("d1", "d1@example.org", "leads@company.com"),
        ("d2", "d2@example.org", "leads@company.com"),
    ] {
        deliver(d, name, from, to);
    }
    let (code, out) = run_cli(&plain, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    for (email, words) in [
        ("w1@example.org", "qualified"),
        ("w2@example.org", "unqualified: no budget"),
        ("d1@example.org", "customer"),
    ] {
        let (code, out) = run_cli(&plain, &["leads", "verdict", email, words]);
        assert_eq!(code, 0, "{out}");
    }
    let config = config(d, &db, DIGEST);
    // Nothing happened last week yet: this week's leads are not in last week's digest.
    let (code, preview) = run_cli(&config, &["digest", "send", "weekly", "--dry-run"]);
    assert_eq!(code, 0, "{preview}");
    assert!(preview.contains("(nothing in this period)"), "{preview}");
    a_week_ago(&db).await;

    // The preview prints the text part and sends nothing.
    let (code, preview) = run_cli(&config, &["digest", "send", "weekly", "--dry-run"]);
    assert_eq!(code, 0, "{preview}");
    assert!(
        preview.contains("Subject: leadloop digest: week "),
        "{preview}"
    );
    assert!(
        preview.contains("To: marketing@company.com, boss@company.com"),
        "{preview}"
    );
    assert_eq!(row(&preview, "webinar")[1..6], ["3", "0", "3", "1", "1"]);
    assert!(preview.contains("(dry run: nothing sent)"), "{preview}");
    assert_eq!(digests_recorded(&db).await, 0);
    assert!(digest_files(d).is_empty());

    // The schedule fired a moment ago: `run --once` queues and sends it, once per recipient.
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("digest weekly for week "), "{out}");
    let files = digest_files(d);
    let to: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(to, ["boss@company.com", "marketing@company.com"]);
    let (_, subject, text, html) = &files[1];
    let week = chrono::Utc::now() - chrono::Duration::days(7);
    let iso = week.iso_week();
    assert!(
        subject.starts_with(&format!(
            "leadloop digest: week {}-W{:02} (",
            iso.year(),
            iso.week()
        )),
        "{subject}"
    );
    // Per channel: leads, replied, handed off, qualified, unqualified, customers.
    assert_eq!(row(text, "webinar")[1..7], ["3", "0", "3", "1", "1", "0"]);
    assert_eq!(row(text, "direct")[1..7], ["2", "0", "0", "0", "0", "1"]);
    assert!(text.contains("no budget (1)"), "{text}");
    // w3 was handed off a week ago and Sales has not answered; w1 and w2 are judged.
    assert!(
        text.contains("Waiting for a verdict for more than 7d: 1"),
        "{text}"
    );
    assert_eq!(
        row(text, "w3@example.org"),
        [
            "w3@example.org",
            "Walt",
            "Three",
            "sales@company.com",
            "webinar",
            "7"
        ]
    );
    assert!(html.contains("bgcolor=\"#2e7d32\""), "{html}");
    assert!(html.contains("webinar"), "{html}");
    assert_eq!(digest_rows(&db, "marketing@company.com").await, 1);
    assert_eq!(digest_rows(&db, "boss@company.com").await, 1);

    // A restart finds the period recorded: nothing more is queued.
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("digest weekly"), "{out}");
    assert_eq!(digest_rows(&db, "marketing@company.com").await, 1);
    assert_eq!(digests_recorded(&db).await, 1);
    // By hand neither.
    let (code, out) = run_cli(&config, &["digest", "send", "weekly"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("was sent already"), "{out}");
    assert_eq!(digest_rows(&db, "boss@company.com").await, 1);
    let (code, out) = run_cli(&config, &["digest", "send", "weekly", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("was sent for week"), "{out}");

    // Another period can be sent by hand: the week before, which had no leads.
    let before = (week - chrono::Duration::days(7)).date_naive().to_string();
    let (code, out) = run_cli(
        &config,
        &["digest", "send", "weekly", "--period-start", &before],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(digests_recorded(&db).await, 2);
    assert_eq!(digest_rows(&db, "marketing@company.com").await, 2);
}

#[tokio::test]
async fn check_refuses_a_bad_digest() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &db,
        "[[digest]]\nname = \"weekly\"\nschedule = \"0 8 * * 1\"\nto = [\"marketing\"]\n\
         reports = [\"channel\"]\nfrom = \"nobody\"\n",
    );
    let (code, out, err) = crate::support::with_config(&config, &["check"]).run();
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    for want in [
        "digest[0].schedule",
        "digest[0].to",
        "digest[0].reports",
        "digest[0].from",
    ] {
        assert!(all.contains(want), "{want} missing in {all}");
    }
}

async fn start(
    path: &Path,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let (path, config, token) = (
        path.to_owned(),
        Config::load(path).unwrap(),
        shutdown.clone(),
    );
    let handle = tokio::spawn(async move {
        let _keep = reload_tx;
        leadloop::daemon::run(&path, config, token, reload_rx).await
    });
    (shutdown, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_queue_a_due_digest_once() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &db, DIGEST);
    // Migrated before the daemons start, so the counts below can be read at once.
    leadloop::store::Store::connect(&db.url, 1)
        .await
        .unwrap()
        .close()
        .await;
    let (a, ha) = start(&config).await;
    let (b, hb) = start(&config).await;
    wait_for(|| async { (digest_rows(&db, "marketing@company.com").await > 0).then_some(()) })
        .await;
    // Both daemons looked at start; give the slower one time to try and the senders to send.
    wait_for(|| async { (digest_files(d).len() == 2).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.cancel();
    b.cancel();
    ha.await.unwrap().unwrap();
    hb.await.unwrap().unwrap();
    assert_eq!(digests_recorded(&db).await, 1);
    assert_eq!(digest_rows(&db, "marketing@company.com").await, 1);
    assert_eq!(digest_rows(&db, "boss@company.com").await, 1);

    // The race itself: two runners build the same period at once; one records it.
    let config = Config::load(&config).unwrap();
    let s1 = leadloop::store::Store::connect(&db.url, 2).await.unwrap();
    let s2 = leadloop::store::Store::connect(&db.url, 2).await.unwrap();
    let d1 = leadloop::daemon::digests(&config, s1).unwrap();
    let d2 = leadloop::daemon::digests(&config, s2).unwrap();
    let spec = d1.spec("weekly").unwrap().clone();
    let now = chrono::Utc::now();
    let period = d1.period_of(&spec, (now - chrono::Duration::days(30)).date_naive());
    let (r1, r2) = tokio::join!(
        d1.send(&spec, period.clone(), now),
        d2.send(&spec, period, now)
    );
    let outcomes = [r1.unwrap(), r2.unwrap()];
    let queued = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Queued { .. }))
        .count();
    assert_eq!(queued, 1, "{outcomes:?}");
    assert_eq!(digests_recorded(&db).await, 2);
    assert_eq!(digest_rows(&db, "marketing@company.com").await, 2);
}
