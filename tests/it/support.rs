//! Shared test plumbing that needs the library or this test binary: a fresh store per test,
//! on SQLite or on the PostgreSQL server named by `LEADLOOP_TEST_DATABASE_URL`, so one suite
//! checks both backends; and the `leadloop` binary built for this run. Everything else comes
//! from the test kit, re-exported here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use leadloop::store::Store;
pub use leadloop_testkit::bin::Leadloop;
pub use leadloop_testkit::clock::t0;
pub use leadloop_testkit::config::ConfigFile;

/// `leadloop ARGS`: the binary built for this test run.
pub fn leadloop(args: &[&str]) -> Leadloop {
    Leadloop::new(env!("CARGO_BIN_EXE_leadloop"), args)
}

/// `leadloop ARGS --config CONFIG`, logging warnings only, as the tests that drive a configured
/// daemon run it.
pub fn with_config(config: &Path, args: &[&str]) -> Leadloop {
    leadloop(args).config(config).log("warn")
}

/// Exit code and stdout of `leadloop ARGS --config CONFIG`; its stderr goes to the test's
/// output, shown when the test fails.
pub fn run_cli(config: &Path, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = with_config(config, args).run();
    eprint!("{stderr}");
    (code, stdout)
}

/// A database created for one test; SQLite files are removed with it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Installs the TLS provider once and turns on logs when `LEADLOOP_TEST_LOG` is set.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = std::env::var("LEADLOOP_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A fresh, empty database URL: a private schema on PostgreSQL, a temp file on SQLite.
pub async fn test_db() -> TestDb {
    init();
    match std::env::var("LEADLOOP_TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let schema = format!(
                "ll_test_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                chrono::Utc::now().timestamp_micros()
            );
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connecting to LEADLOOP_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .expect("creating a test schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            TestDb {
                url: format!("{base}{sep}options=-csearch_path%3D{schema}"),
                _dir: None,
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path: PathBuf = dir.path().join("leadloop.db");
            TestDb {
                url: format!("sqlite://{}?mode=rwc", path.display()),
                _dir: Some(dir),
            }
        }
    }
}

/// A migrated store on a fresh database.
pub async fn test_store() -> (Store, TestDb) {
    let db = test_db().await;
    let store = Store::connect(&db.url, 4)
        .await
        .expect("opening the test store");
    (store, db)
}

/// Records one inquiry from each address, so that each becomes a lead; returns them in order.
pub async fn seed_leads(store: &Store, emails: &[String]) -> Vec<leadloop::store::Lead> {
    use leadloop::classify::{Classification, Person};
    use leadloop::domain::{EmailAddress, MessageKind};
    use leadloop::store::{Batch, InboundRecord};
    let records: Vec<InboundRecord> = emails
        .iter()
        .map(|e| {
            let mut c = Classification::ignored("placeholder");
            c.kind = MessageKind::Inquiry;
            c.reason = None;
            c.channel = Some("direct".to_owned());
            c.lead = Some(Person {
                email: EmailAddress::parse(e).expect("a valid test address"),
                name: None,
                company: None,
                phone: None,
            });
            InboundRecord {
                uid: None,
                dedupe_key: format!("seed:{e}"),
                size: 100,
                classification: c,
            }
        })
        .collect();
    for chunk in records.chunks(2000) {
        store
            .record_batch(&Batch {
                mailbox: "seed",
                uidvalidity: 0,
                last_uid: None,
                records: chunk,
                now: chrono::Utc::now(),
                enroll: &[],
                changes: &[],
            })
            .await
            .expect("seeding leads");
    }
    let mut by_email: std::collections::HashMap<String, leadloop::store::Lead> = store
        .list_leads(&Default::default())
        .await
        .expect("listing leads")
        .into_iter()
        .map(|l| (l.email.to_string(), l))
        .collect();
    emails
        .iter()
        .map(|e| by_email.remove(&e.to_lowercase()).expect("seeded lead"))
        .collect()
}

/// Asserts that the lead of `email` is marked bounced and its address suppressed; returns it.
pub async fn assert_bounced_and_suppressed(store: &Store, email: &str) -> leadloop::store::Lead {
    let lead = store
        .lead(&leadloop::domain::EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, leadloop::domain::LeadStatus::Bounced);
    assert!(store.suppressed(email).await.unwrap().is_some(), "{email}");
    lead
}

/// The lead recorded for `email`, if any.
pub async fn lead_by_email(store: &Store, email: &str) -> Option<leadloop::store::Lead> {
    let email = leadloop::domain::EmailAddress::parse(email).expect("a valid test address");
    store.lead(&email).await.expect("reading the lead")
}

/// Polls `f` every 20 ms until it gives a value; fails the test after 30 s.
pub async fn wait_for<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A private Dovecot, started on the blocking pool (it waits for the server to listen).
pub async fn start_dovecot() -> crate::dovecot::Dovecot {
    tokio::task::spawn_blocking(crate::dovecot::Dovecot::start)
        .await
        .unwrap()
        .expect("starting Dovecot")
}
