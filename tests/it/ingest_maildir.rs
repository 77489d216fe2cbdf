//! The Maildir source: read without changes, each file recorded once, oversize files ignored.

use std::sync::Arc;

use leadloop::classify::Rules;
use leadloop::ingest::{MaildirSource, Pipeline, maildir_mailbox_name};
use tokio_util::sync::CancellationToken;

use crate::ingest_imap::inquiry;
use crate::support::test_store;

#[tokio::test]
async fn a_maildir_is_read_once_and_left_unchanged() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    std::fs::write(dir.path().join("new/1000.M1P1.host"), inquiry(1)).unwrap();
    std::fs::write(dir.path().join("cur/1001.M2P1.host:2,S"), inquiry(2)).unwrap();
    let mut big = inquiry(3);
    big.extend(vec![b'x'; 8192]);
    std::fs::write(dir.path().join("cur/1002.M3P1.host:2,"), big).unwrap();
    std::fs::write(dir.path().join("tmp/1003.M4P1.host"), inquiry(4)).unwrap();

    let mailbox = maildir_mailbox_name(dir.path());
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(Rules::default()),
        mailbox.clone(),
        4096,
    );
    let source = MaildirSource::new(
        dir.path().to_owned(),
        pipeline,
        std::time::Duration::from_secs(1),
        2,
        4096,
    );
    let cancel = CancellationToken::new();
    let report = source.sync_once(&cancel).await.unwrap();
    assert_eq!(
        (report.fetched, report.recorded, report.oversize),
        (3, 3, 1),
        "tmp/ is never read"
    );

    let inbound = store.inbound(&mailbox).await.unwrap();
    let keys: Vec<_> = inbound.iter().map(|m| m.dedupe_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "mid:inquiry-1@example.org",
            "mid:inquiry-2@example.org",
            "mid:inquiry-3@example.org"
        ]
    );
    assert_eq!(inbound[2].kind, "ignored");

    // The same process skips files it has seen; a new process finds them recorded.
    assert_eq!(source.sync_once(&cancel).await.unwrap().fetched, 0);
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(Rules::default()),
        mailbox.clone(),
        4096,
    );
    let again = MaildirSource::new(
        dir.path().to_owned(),
        pipeline,
        std::time::Duration::from_secs(1),
        2,
        4096,
    );
    let report = again.sync_once(&cancel).await.unwrap();
    assert_eq!((report.recorded, report.duplicates), (0, 3));
    assert!(
        dir.path().join("new/1000.M1P1.host").exists(),
        "files are left where they are"
    );
}

#[tokio::test]
async fn a_folder_that_is_not_a_maildir_is_an_error() {
    let (store, _db) = test_store().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(store, Arc::new(Rules::default()), "maildir:x", 4096);
    let source = MaildirSource::new(
        dir.path().to_owned(),
        pipeline,
        std::time::Duration::from_secs(1),
        2,
        4096,
    );
    let err = source
        .sync_once(&CancellationToken::new())
        .await
        .unwrap_err();
    let err = anyhow::Error::from(err);
    assert!(format!("{err:#}").contains("not a Maildir"), "{err:#}");
}
