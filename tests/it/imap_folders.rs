//! Folder names on servers that do not look like the default Dovecot: a personal namespace
//! under `INBOX.` with `.` between levels, and names outside ASCII, against a real Dovecot
//! set up that way.

use std::path::PathBuf;

use crate::dovecot::{Dovecot, Setup};
use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, TestDb, leadloop, test_db};

/// A Dovecot whose folders live under `INBOX.`, with `.` between levels.
async fn start_namespaced() -> Dovecot {
    tokio::task::spawn_blocking(|| {
        Dovecot::start_with(Setup {
            namespace: Some(("INBOX.".to_owned(), '.')),
        })
    })
    .await
    .unwrap()
    .expect("starting Dovecot with an INBOX. namespace")
}

struct Configured {
    _db: TestDb,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn configure(dovecot: &Dovecot, imap: &str) -> Configured {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let path = ConfigFile::new(dir.path(), &db.url)
        .imap(dovecot, "implicit", imap)
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    Configured {
        _db: db,
        path,
        _dir: dir,
    }
}

/// `run --once` with info logs: exit code, stdout, stderr.
fn run_once(config: &Configured) -> (Option<i32>, String, String) {
    let out = leadloop(&["run", "--once"])
        .config(&config.path)
        .log("info")
        .output();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `after = "move:Processed"` on a server whose folders live under `INBOX.`: the mail goes to
/// `INBOX.Processed` (before, the move failed with "Mailbox does not exist" and the mail stayed
/// in INBOX for good), the log says which name was used, and later runs read only new mail.
#[tokio::test]
async fn processed_mail_moves_into_the_servers_namespace() {
    let dovecot = start_namespaced().await;
    dovecot.append("INBOX", &inquiry(1)).unwrap();
    dovecot.append("INBOX", &inquiry(2)).unwrap();
    let config = configure(&dovecot, "after = \"move:Processed\"").await;

    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("2 messages read, 2 recorded"),
        "{stdout}"
    );
    assert!(
        stderr.contains("mailbox=INBOX move_to=INBOX.Processed prefix=INBOX. delimiter=."),
        "{stderr}"
    );
    assert!(
        dovecot
            .mailboxes()
            .unwrap()
            .contains(&"INBOX.Processed".to_owned())
    );
    assert_eq!(dovecot.messages("INBOX.Processed").unwrap(), 2);
    assert_eq!(dovecot.messages("INBOX").unwrap(), 0);

    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 messages read, 0 recorded"),
        "{stdout}"
    );

    dovecot.append("INBOX", &inquiry(3)).unwrap();
    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("1 messages read, 1 recorded"),
        "{stdout}"
    );
    assert_eq!(dovecot.messages("INBOX.Processed").unwrap(), 3);
    assert_eq!(dovecot.messages("INBOX").unwrap(), 0);
}

/// A folder named `INBOX.Eingänge`, and a `move:` target below it with an `&` in its name,
/// travel in modified UTF-7 (`INBOX.Eing&AOQ-nge`, `&-`): both are read and written where
/// the server keeps them. Before, the raw UTF-8 name was refused.
#[tokio::test]
async fn folder_names_outside_ascii_are_encoded() {
    let dovecot = start_namespaced().await;
    let folder = "INBOX.Eing&AOQ-nge";
    dovecot.create(folder).unwrap();
    dovecot.append(folder, &inquiry(1)).unwrap();
    dovecot.append(folder, &inquiry(2)).unwrap();
    dovecot.append("INBOX", &inquiry(3)).unwrap();
    let config = configure(
        &dovecot,
        "mailbox = \"INBOX.Eingänge\"\nafter = \"move:Eingänge/Erledigt & Archiv\"",
    )
    .await;

    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("2 messages read, 2 recorded"),
        "{stdout}"
    );
    assert!(
        stderr.contains("mailbox=INBOX.Eingänge move_to=INBOX.Eingänge.Erledigt & Archiv"),
        "{stderr}"
    );
    let done = "INBOX.Eing&AOQ-nge.Erledigt &- Archiv";
    assert!(
        dovecot.mailboxes().unwrap().contains(&done.to_owned()),
        "{:?}",
        dovecot.mailboxes()
    );
    assert_eq!(dovecot.messages(done).unwrap(), 2);
    assert_eq!(dovecot.messages(folder).unwrap(), 0);
    // INBOX is not the configured folder: untouched.
    assert_eq!(dovecot.messages("INBOX").unwrap(), 1);

    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 messages read, 0 recorded"),
        "{stdout}"
    );

    dovecot.append(folder, &inquiry(4)).unwrap();
    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("1 messages read, 1 recorded"),
        "{stdout}"
    );
    assert_eq!(dovecot.messages(done).unwrap(), 3);
}

/// A `mailbox` the server does not have: the error gives the server's words, the name that was
/// tried, and the folders there are, decoded, to pick the right one from.
#[tokio::test]
async fn a_missing_mailbox_lists_the_folders_there_are() {
    let dovecot = start_namespaced().await;
    dovecot.create("INBOX.Eing&AOQ-nge").unwrap();
    let config = configure(&dovecot, "mailbox = \"Eingaenge\"").await;
    let (code, stdout, stderr) = run_once(&config);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("IMAP SELECT refused: NO Mailbox doesn't exist: INBOX.Eingaenge"),
        "{stderr}"
    );
    assert!(
        stderr.contains(" The server's folders: INBOX, INBOX.Eingänge\n"),
        "{stderr}"
    );
}
