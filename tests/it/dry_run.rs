//! `leadloop run --dry-run`: everything happens in the database, nothing leaves. A real
//! Dovecot holds the mail, the sequence's step would go out through `[smtp]` (to files, where
//! the test can see that nothing was written), and a later real run neither sends what the
//! dry run made nor forgets to tidy the mail it read.

use std::path::Path;

use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, run_cli, test_db, with_config};

/// The files in `dir`.
fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count()
    })
}

/// The messages in a Maildir folder.
fn messages(maildir: &Path) -> usize {
    files(&maildir.join("cur")) + files(&maildir.join("new"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_and_enqueues_but_sends_and_moves_nothing() {
    let dovecot = crate::support::start_dovecot().await;
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .imap(&dovecot, "implicit", "after = \"move:Processed\"")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &[(
                "welcome",
                "[enroll]\nkinds = [\"inquiry\"]\n\n\
                 [[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Welcome\"\n\n\
                 [[step]]\nid = \"later\"\ndelay = \"3d\"\ntemplate = \"hello\"\nsubject = \"Still there?\"\n",
            )],
            &[("hello.txt", "Hello {{ lead.first_name }}.\n")],
        )
        .write();
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    let maildir = dovecot.maildir_path(dovecot.user());
    let sent_dir = dir.path().join("outbox");

    let (code, stdout, stderr) = with_config(&config, &["run", "--once", "--dry-run"]).run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 recorded"), "{stdout}");
    assert!(stdout.contains("2 sequence steps enqueued"), "{stdout}");
    assert!(stdout.contains("dry run: nothing was sent"), "{stdout}");
    assert!(stderr.contains("dry run"), "the log says so too: {stderr}");

    // The steps are in the outbox as dry_run, rendered for their leads; nothing was written.
    let (_, out) = run_cli(&config, &["outbox", "list", "--state", "dry_run", "--json"]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut to: Vec<&str> = rows.iter().map(|r| r["to"].as_str().unwrap()).collect();
    to.sort_unstable();
    assert_eq!(to, ["person1@example.org", "person2@example.org"], "{out}");
    assert!(rows.iter().all(|r| r["state"] == "dry_run"), "{out}");
    assert_eq!(files(&sent_dir), 0, "a dry run wrote a message");
    // The enrollment moved on as after a real send: the next step waits for its three days.
    let (_, out) = run_cli(&config, &["leads", "show", "person1@example.org", "--json"]);
    let lead: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        lead.to_string().contains("later"),
        "the next step is the later one: {lead}"
    );
    // The mailbox is as it was: both messages in INBOX, no folder made for them.
    assert_eq!(messages(&maildir), 2, "INBOX changed");
    assert!(!maildir.join(".Processed").exists(), "a folder was created");

    // A real run afterwards: the dry run's messages stay unsent, and the mail it read is
    // moved now, since a dry run never tidies.
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 recorded"),
        "nothing is recorded twice: {out}"
    );
    assert_eq!(
        files(&sent_dir),
        0,
        "a dry-run message was sent by a real run"
    );
    let (_, out) = run_cli(&config, &["outbox", "list", "--state", "dry_run"]);
    assert_eq!(
        out.lines().filter(|l| l.contains("@example.org")).count(),
        2,
        "{out}"
    );
    assert_eq!(messages(&maildir), 0, "INBOX was not tidied");
    assert_eq!(messages(&maildir.join(".Processed")), 2);
}
