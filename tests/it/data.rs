//! Data in and out, through the binary: `leadloop import` (mapping, dedupe, bad lines, dry
//! run, resumption), `leadloop export` read back by `import`, `leadloop leads erase` checked
//! against every text column of every table, and the retention of stored bodies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlx::Row as _;

use crate::support::{ConfigFile, TestDb, run_cli, test_db, with_config};

/// A Maildir source, a `welcome` sequence entered by inquiries, mail written to a folder.
fn config(dir: &Path, db: &TestDb) -> PathBuf {
    ConfigFile::new(dir, &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &[(
                "welcome",
                "[enroll]\nkinds = [\"inquiry\", \"form\"]\n\n\
                 [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Welcome\"\n",
            )],
            &[("a.txt", "Hello {{ lead.name }}, thanks for writing.\n")],
        )
        .write()
}

/// Exit code, stdout and stderr of `leadloop ARGS`.
fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = with_config(config, args).run();
    eprint!("{err}");
    (code, out, err)
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every lead, by address, with the columns an import sets.
fn leads(config: &Path) -> BTreeMap<String, Value> {
    let (code, out) = run_cli(config, &["leads", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    json_lines(&out)
        .into_iter()
        .map(|l| {
            let email = l["email"].as_str().unwrap().to_owned();
            let keep: serde_json::Map<String, Value> = [
                "email", "name", "company", "phone", "channel", "status", "owner", "fields",
            ]
            .iter()
            .map(|k| ((*k).to_owned(), l[*k].clone()))
            .collect();
            (email, Value::Object(keep))
        })
        .collect()
}

fn events(config: &Path, kind: &str) -> usize {
    let (code, out) = run_cli(config, &["export", "events", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    json_lines(&out)
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

const SHEET: &str = "\
E-mail,First name,Last name,Organisation,Phone,Status,Source,Favourite colour,Plan
ann@example.org,Ann,Lee,Acme,+1 555 0100,customer,fair,green,
not-an-address,Bob,,,,,,,
carl@example.org,Carl,Berg,,,,web,,
ANN@example.org,Annie,,Other Co,,,,blue,pro
dan@example.org,Dan,,,,wizard,,,
eve@example.org,Eve,Stone,\"Stone, Inc.\",,qualified,,,
";

/// A spreadsheet with a bad address, an unknown status, a duplicate address in another case,
/// first and last names and custom columns: the good rows are imported, the bad ones named by
/// line, the duplicate only fills what was empty; a dry run before changes nothing and a
/// second run changes nothing.
#[tokio::test]
async fn import_maps_columns_dedupes_and_names_bad_lines() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db);
    let sheet = dir.path().join("customers.csv");
    std::fs::write(&sheet, SHEET).unwrap();
    let file = sheet.display().to_string();

    let (code, out, err) = cli(&config, &["import", &file, "--dry-run"]);
    assert_eq!(code, 1, "bad rows make the exit code non-zero: {out}");
    assert!(out.contains("line 2: create ann@example.org"), "{out}");
    assert!(
        out.contains("line 5: update ann@example.org: fields.Plan"),
        "{out}"
    );
    assert!(out.contains("line 7: create eve@example.org"), "{out}");
    assert!(
        out.contains("3 would be created, 1 would be updated"),
        "{out}"
    );
    assert!(
        err.contains(&format!(
            "{file}:3: 'not-an-address' is not an email address"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:6: unknown status 'wizard'")),
        "{err}"
    );
    assert!(leads(&config).is_empty(), "a dry run changes nothing");

    let (code, out, err) = cli(&config, &["import", &file, "--owner", "sam@company.com"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("3 created, 1 updated, 0 unchanged, 2 bad"),
        "{out}"
    );
    assert!(out.contains("not enrolled"), "{out}");
    assert!(
        err.contains(&format!("{file}:3:")) && err.contains(&format!("{file}:6:")),
        "{err}"
    );
    let all = leads(&config);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["ann@example.org", "carl@example.org", "eve@example.org"]
    );
    let ann = &all["ann@example.org"];
    assert_eq!(ann["name"], "Ann Lee", "the first row's name is kept");
    assert_eq!(ann["company"], "Acme");
    assert_eq!(ann["phone"], "+1 555 0100");
    assert_eq!(ann["status"], "customer");
    assert_eq!(ann["channel"], "fair");
    assert_eq!(ann["owner"], "sam@company.com");
    assert_eq!(
        ann["fields"],
        serde_json::json!({"Favourite colour": "green", "Plan": "pro"})
    );
    let carl = &all["carl@example.org"];
    assert_eq!(carl["status"], "new");
    assert_eq!(carl["channel"], "web");
    assert_eq!(carl["fields"], serde_json::json!({}));
    assert_eq!(all["eve@example.org"]["company"], "Stone, Inc.");
    assert_eq!(events(&config, "imported"), 4);

    // Sales qualifies Carl; a file without a status column leaves that alone, one with an
    // explicit status changes it.
    let (code, out) = run_cli(
        &config,
        &["leads", "status", "carl@example.org", "qualified"],
    );
    assert_eq!(code, 0, "{out}");
    let again = dir.path().join("again.csv");
    std::fs::write(&again, "email,company\ncarl@example.org,Berg AB\n").unwrap();
    let (code, out, _) = cli(
        &config,
        &["import", &again.display().to_string(), "--status", "new"],
    );
    assert_eq!(code, 0, "{out}");
    let carl = &leads(&config)["carl@example.org"];
    assert_eq!(
        (carl["status"].as_str(), carl["company"].as_str()),
        (Some("qualified"), Some("Berg AB"))
    );

    // The same file again: nothing changes, nothing is added.
    let before = leads(&config);
    let (code, out, _) = cli(&config, &["import", &file, "--owner", "sam@company.com"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("0 created, 0 updated, 4 unchanged, 2 bad"),
        "{out}"
    );
    assert_eq!(leads(&config), before);
    assert_eq!(events(&config, "imported"), 5);
}

/// Columns named by a mapping file and by `--map`, which wins; the file's defaults apply to
/// new leads; a mapping that names no such column is refused before anything is read.
#[tokio::test]
async fn import_reads_columns_as_a_mapping_says() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db);
    let sheet = dir.path().join("kunden.csv");
    std::fs::write(
        &sheet,
        "E-Mail-Adresse;Firma;Notizen;Kundennummer\nkarl@beispiel.example;Beispiel GmbH;private;K-17\n",
    )
    .unwrap();
    let mapping = dir.path().join("kunden.toml");
    std::fs::write(
        &mapping,
        "status = \"customer\"\nchannel = \"spreadsheet\"\n\n[columns]\n\
         \"E-Mail-Adresse\" = \"email\"\n\"Firma\" = \"company\"\n\"Notizen\" = \"fields.notes\"\n",
    )
    .unwrap();
    let (file, mapping) = (sheet.display().to_string(), mapping.display().to_string());
    let (code, out, err) = cli(
        &config,
        &[
            "import",
            &file,
            "--mapping",
            &mapping,
            "--map",
            "Notizen=ignore",
            "--map",
            "missing=name",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no column 'missing'"), "{err}");
    assert!(leads(&config).is_empty());
    let (code, out, _) = cli(
        &config,
        &[
            "import",
            &file,
            "--mapping",
            &mapping,
            "--map",
            "Notizen=ignore",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let karl = &leads(&config)["karl@beispiel.example"];
    assert_eq!(karl["company"], "Beispiel GmbH");
    assert_eq!(karl["status"], "customer");
    assert_eq!(karl["channel"], "spreadsheet");
    assert_eq!(karl["fields"], serde_json::json!({"Kundennummer": "K-17"}));
}

/// An import stopped part-way (as a crash or Ctrl-C would) continues after its last committed
/// chunk when run again: every row imported once, the progress recorded as done.
#[tokio::test]
async fn an_interrupted_import_resumes_where_it_stopped() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db);
    let sheet = dir.path().join("big.csv");
    let mut text = "Email Address;Full name\n".to_owned();
    for i in 0..10 {
        text.push_str(&format!("p{i}@example.net;Person {i}\n"));
    }
    std::fs::write(&sheet, text).unwrap();
    let file = sheet.display().to_string();

    let (code, out, _) = cli(
        &config,
        &["import", &file, "--chunk", "3", "--stop-after", "4"],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("stopped after line 5"), "{out}");
    assert_eq!(leads(&config).len(), 4);

    let (code, out, err) = cli(&config, &["import", &file, "--chunk", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(err.contains("resuming after line 5"), "{err}");
    assert!(
        out.contains("10 created, 0 updated, 0 unchanged, 0 bad"),
        "{out}"
    );
    let all = leads(&config);
    assert_eq!(all.len(), 10);
    assert_eq!(all["p9@example.net"]["name"], "Person 9");
    assert_eq!(events(&config, "imported"), 10, "no row was imported twice");

    let pool = pool(&db).await;
    let row = sqlx::query("SELECT line, created, done FROM import_progress")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<i64, _>(0),
            row.get::<i64, _>(1),
            row.get::<i64, _>(2)
        ),
        (11, 10, 1)
    );
}

/// `export leads` read back by `import` into a fresh database gives the same leads; the JSON
/// form has one object per lead per line.
#[tokio::test]
async fn exported_leads_import_into_the_same_leads() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db);
    let sheet = dir.path().join("customers.csv");
    std::fs::write(&sheet, SHEET).unwrap();
    cli(
        &config,
        &[
            "import",
            &sheet.display().to_string(),
            "--owner",
            "sam@company.com",
        ],
    );
    let original = leads(&config);
    assert_eq!(original.len(), 3);

    let (code, csv, _) = cli(&config, &["export", "leads", "--format", "csv"]);
    assert_eq!(code, 0, "{csv}");
    assert!(csv.starts_with("email,name,company,phone,channel,status,score,owner,form,fields,created_at,updated_at\n"), "{csv}");
    let (code, json, _) = cli(&config, &["export", "leads", "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(json_lines(&json).len(), 3);

    let db2 = test_db().await;
    let dir2 = tempfile::tempdir().unwrap();
    let config2 = self::config(dir2.path(), &db2);
    let export = dir2.path().join("export.csv");
    std::fs::write(&export, &csv).unwrap();
    let (code, out, _) = cli(&config2, &["import", &export.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(leads(&config2), original);
}

fn deliver(dir: &Path, name: &str, from: &str, subject: &str, body: &str) {
    deliver_with(dir, name, "", from, subject, body);
}

fn deliver_with(dir: &Path, name: &str, headers: &str, from: &str, subject: &str, body: &str) {
    let date = chrono::Utc::now().to_rfc2822();
    let text = format!(
        "{headers}From: {from}\r\nTo: Leads <leads@company.com>\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{name}@mail.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    std::fs::write(dir.join("inbox/new").join(format!("{name}.eml")), text).unwrap();
}

async fn pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

/// Every `table.column` holding text (any case) that contains `needle`.
async fn text_containing(db: &TestDb, needle: &str) -> Vec<String> {
    let pool = pool(db).await;
    let columns: Vec<(String, String)> = if db.url.starts_with("postgres") {
        sqlx::query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    } else {
        sqlx::query(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND UPPER(p.type) LIKE '%TEXT%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    assert!(columns.len() > 40, "the scan sees the schema: {columns:?}");
    let mut found = Vec::new();
    for (table, column) in columns {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE LOWER(\"{column}\") LIKE $1"
        )))
        .bind(format!("%{}%", needle.to_lowercase()))
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
        if n > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    // The stored messages' bytes are not text columns; look there too.
    for r in sqlx::query("SELECT raw FROM outbox_bodies")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let raw: Vec<u8> = r.get(0);
        if String::from_utf8_lossy(&raw)
            .to_lowercase()
            .contains(&needle.to_lowercase())
        {
            found.push("outbox_bodies.raw".to_owned());
        }
    }
    pool.close().await;
    found
}

/// A lead made by the daemon (an inquiry, a welcome mail sent), with a verdict naming the
/// person, a hand-added suppression and a test message to the address: after `leads erase`
/// no text anywhere holds the address or the name, the sender refuses the address, and the
/// counts by channel and verdict still include the lead.
#[tokio::test]
async fn erase_leaves_no_personal_data_and_keeps_the_address_unmailed() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &db);
    let address = "Ada.Quill@Quill-Works.example";
    let lower = address.to_lowercase();
    // Sent from a private address with Reply-To the work one: the private one is an alias.
    let alias = "ada.q@private-mail.example";
    deliver_with(
        d,
        "ada1",
        &format!("Reply-To: Ada Quill <{address}>\r\n"),
        &format!("Ada <{alias}>"),
        "Pricing question from Ada Quill",
        "Hello, I am Ada Quill of Quill Works. Could you send pricing? Ada.Quill@quill-works.example",
    );
    deliver(
        d,
        "other",
        "Joe Bloggs <joe@bloggs.example>",
        "Pricing",
        "Could you send pricing for ten users?",
    );
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&config, &["leads", "show", &lower, "--json"]);
    assert_eq!(code, 0, "{out}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["aliases"], serde_json::json!([alias]));
    assert_eq!(shown["name"], "Ada Quill");
    let before = leads(&config);
    let channel = before[&lower]["channel"].as_str().unwrap().to_owned();
    let in_channel = |config: &Path| {
        let (_, out) = run_cli(config, &["leads", "list", "--channel", &channel, "--json"]);
        json_lines(&out).len()
    };
    let channel_count = in_channel(&config);
    assert_eq!(channel_count, 2);
    let (code, out) = run_cli(
        &config,
        &[
            "leads",
            "verdict",
            &lower,
            "qualified",
            "--comment",
            "Ada Quill wants a call",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&config, &["send-test", "--to", address]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&config, &["suppressions", "add", &lower]);
    assert_eq!(code, 0, "{out}");
    // A text about the person outside their rows: the final sweep finds it.
    let reason = format!("checking what was sent to {address}");
    let (code, out) = run_cli(&config, &["sending", "pause", "--reason", &reason]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !text_containing(&db, &lower).await.is_empty(),
        "the scan finds the address before"
    );
    assert!(
        !text_containing(&db, "ada quill").await.is_empty(),
        "and the name"
    );

    let (code, out) = run_cli(&config, &["leads", "erase", address]);
    assert_ne!(
        code, 0,
        "without --yes and no terminal nothing is erased: {out}"
    );
    assert!(!text_containing(&db, &lower).await.is_empty());
    let (code, out) = run_cli(&config, &["leads", "erase", address, "--yes"]);
    assert_eq!(code, 0, "{out}");
    // Everything about the lead is erased by name; only the pause reason needed the sweep.
    assert!(
        out.contains("also removed from: sending_control.reason\n"),
        "{out}"
    );
    let (code, out) = run_cli(&config, &["sending", "resume"]);
    assert_eq!(code, 0, "{out}");

    assert_eq!(text_containing(&db, &lower).await, Vec::<String>::new());
    assert_eq!(text_containing(&db, alias).await, Vec::<String>::new());
    assert_eq!(
        text_containing(&db, "ada quill").await,
        Vec::<String>::new()
    );
    assert_eq!(
        text_containing(&db, "quill works").await,
        Vec::<String>::new()
    );
    // Joe is untouched.
    assert!(!text_containing(&db, "joe@bloggs.example").await.is_empty());
    assert_eq!(
        leads(&config)["joe@bloggs.example"],
        before["joe@bloggs.example"]
    );

    // The counts keep the lead; its verdict still counts, without the comment.
    assert_eq!(in_channel(&config), channel_count);
    let (_, out) = run_cli(&config, &["export", "verdicts", "--format", "json"]);
    let verdicts = json_lines(&out);
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0]["verdict"], "qualified");
    assert_eq!(verdicts[0]["comment"], Value::Null);
    assert_eq!(events(&config, "erased"), 1);
    let (code, _) = run_cli(&config, &["leads", "show", &lower]);
    assert_ne!(code, 0, "no lead has the address any more");

    // The sender refuses the address, in any case, though it is stored nowhere.
    let sent_before = std::fs::read_dir(d.join("outbox")).unwrap().count();
    let (code, out) = run_cli(&config, &["send-test", "--to", &address.to_uppercase()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("erased on request"), "{out}");
    assert_eq!(
        std::fs::read_dir(d.join("outbox")).unwrap().count(),
        sent_before
    );
    let (code, out) = run_cli(&config, &["send-test", "--to", alias]);
    assert_ne!(code, 0, "the alias is erased too: {out}");
    // A new inquiry from the person makes a lead again (they wrote to us), but nothing is
    // mailed to it.
    deliver(d, "ada2", address, "Hello again", "Me again.");
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(leads(&config).contains_key(&lower));
    assert_eq!(
        std::fs::read_dir(d.join("outbox")).unwrap().count(),
        sent_before
    );
}

/// Records an inquiry from `email` whose text is kept, at `at`.
async fn record_with_text(
    store: &leadloop::store::Store,
    email: &str,
    text: &str,
    at: chrono::DateTime<chrono::Utc>,
) {
    use leadloop::classify::{Classification, Person};
    use leadloop::domain::{EmailAddress, MessageKind};
    use leadloop::store::{Batch, InboundRecord};
    let mut c = Classification::ignored("placeholder");
    c.kind = MessageKind::Inquiry;
    c.reason = None;
    c.channel = Some("direct".to_owned());
    c.text = Some(text.to_owned());
    c.lead = Some(Person {
        email: EmailAddress::parse(email).unwrap(),
        name: None,
        company: None,
        phone: None,
    });
    let records = [InboundRecord {
        uid: None,
        dedupe_key: format!("test:{email}"),
        size: 100,
        classification: c,
    }];
    store
        .record_batch(&Batch {
            mailbox: "test",
            uidvalidity: 0,
            last_uid: None,
            records: &records,
            now: at,
            enroll: &[],
            changes: &[],
        })
        .await
        .unwrap();
}

/// Bodies older than the limit lose their text and bytes; younger ones and the rows stay.
#[tokio::test]
async fn retention_removes_old_bodies_and_keeps_the_rows() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &db);
    // A welcome mail sent now.
    deliver(
        d,
        "m1",
        "Kim Park <kim@park.example>",
        "Pricing",
        "Pricing for three users, please.",
    );
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    let store = leadloop::store::Store::connect(&db.url, 2).await.unwrap();
    let now = chrono::Utc::now();
    // Texts kept from ten days ago and from now.
    record_with_text(
        &store,
        "old@example.com",
        "An old text about widgets.",
        now - chrono::Duration::days(10),
    )
    .await;
    record_with_text(&store, "new@example.com", "A new text about gadgets.", now).await;

    // A 90-day limit: nothing is old enough.
    let r = store
        .drop_old_bodies(now - chrono::Duration::days(90))
        .await
        .unwrap();
    assert_eq!((r.messages, r.outbox), (0, 0));
    assert!(!text_containing(&db, "about widgets").await.is_empty());
    let bodies = |pool: sqlx::AnyPool| async move {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM outbox_bodies")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        n
    };
    assert_eq!(bodies(pool(&db).await).await, 1);

    // A one-day limit: the old text goes, the new one stays, and the mail sent now stays.
    let r = store
        .drop_old_bodies(now - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!((r.messages, r.outbox), (1, 0));
    assert_eq!(
        text_containing(&db, "about widgets").await,
        Vec::<String>::new()
    );
    assert!(!text_containing(&db, "about gadgets").await.is_empty());
    assert_eq!(bodies(pool(&db).await).await, 1);

    // As if a day had passed: the sent mail's bytes go too; every row stays.
    let r = store
        .drop_old_bodies(now + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!((r.messages, r.outbox), (1, 1));
    assert_eq!(bodies(pool(&db).await).await, 0);
    let pool = pool(&db).await;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM outbox WHERE state = 'sent'")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the sent row stays for the counts");
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM inbound_messages")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
    let r = store
        .drop_old_bodies(now + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!((r.messages, r.outbox), (0, 0), "nothing left to remove");
    store.close().await;
}
