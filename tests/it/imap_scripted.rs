//! What Dovecot cannot be made to do: a server whose `UID SEARCH` contradicts its own mailbox
//! state. A small scripted IMAP4rev1 peer on loopback speaks just enough plain-text IMAP for
//! the daemon (greeting, CAPABILITY, LOGIN, NAMESPACE, LIST, SELECT, UID SEARCH, UID FETCH,
//! UID STORE, UID MOVE, LOGOUT) and answers every `UID SEARCH` with nothing. It also stands for
//! a server without NAMESPACE, which Dovecot always offers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leadloop::config::{Config, SourceConfig};
use leadloop::store::Store;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::ingest_imap::inquiry;
use crate::support::{ConfigFile, TestDb, leadloop, test_db, with_config};

/// The mailbox and what the peer was asked, shared by its connections and the test.
#[derive(Default)]
struct State {
    /// Message bodies; UID n is `messages[n - 1]`.
    messages: Vec<Vec<u8>>,
    /// Every command line received, without its tag.
    commands: Vec<String>,
    connections: usize,
    /// `None`: NAMESPACE is offered, with no prefix and `/`. `Some(d)`: it is not, and LIST
    /// says the delimiter is `d`.
    no_namespace: Option<char>,
    /// Messages that arrived after the last one and were expunged: UIDNEXT is past them.
    expunged: u32,
}

/// An IMAP server on loopback whose `UID SEARCH` always finds nothing, while SELECT reports
/// every message (`EXISTS`, `UIDNEXT`) and `UID FETCH` returns them.
struct LyingSearch {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl LyingSearch {
    async fn start(messages: Vec<Vec<u8>>) -> LyingSearch {
        LyingSearch::start_with(messages, None).await
    }

    /// A peer without NAMESPACE whose LIST gives `delimiter`.
    async fn start_without_namespace(messages: Vec<Vec<u8>>, delimiter: char) -> LyingSearch {
        LyingSearch::start_with(messages, Some(delimiter)).await
    }

    async fn start_with(messages: Vec<Vec<u8>>, no_namespace: Option<char>) -> LyingSearch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            messages,
            no_namespace,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().unwrap().connections += 1;
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        LyingSearch { port, state }
    }

    /// A message arrives and is expunged again before anyone reads it.
    fn expunge_one_more(&self) {
        self.state.lock().unwrap().expunged += 1;
    }

    fn add(&self, message: Vec<u8>) {
        self.state.lock().unwrap().messages.push(message);
    }

    /// Received commands that start with `prefix`.
    fn commands(&self, prefix: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .commands
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"* OK [CAPABILITY IMAP4rev1] scripted peer ready\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some((tag, command)) = line.trim_end().split_once(' ') else {
            continue;
        };
        let (reply, close) = answer(tag, command, &state);
        if write.write_all(&reply).await.is_err() || close {
            return;
        }
    }
}

/// The peer's whole answer to one command, and whether to close the connection after it.
fn answer(tag: &str, command: &str, state: &Mutex<State>) -> (Vec<u8>, bool) {
    let mut state = state.lock().unwrap();
    state.commands.push(command.to_owned());
    let upper = command.to_ascii_uppercase();
    let ok = |text: &str| format!("{tag} OK {text}\r\n").into_bytes();
    let total = state.messages.len() as u32;
    let mut out = Vec::new();
    if upper == "CAPABILITY" {
        let namespace = if state.no_namespace.is_none() {
            " NAMESPACE"
        } else {
            ""
        };
        out.extend_from_slice(
            format!("* CAPABILITY IMAP4rev1{namespace} UIDPLUS MOVE\r\n").as_bytes(),
        );
    } else if upper.starts_with("LOGIN ")
        || upper.starts_with("UID STORE ")
        || upper.starts_with("UID MOVE ")
        || upper == "NOOP"
    {
        // Nothing to say but OK (a real server would expunge what it moved).
    } else if upper == "NAMESPACE" && state.no_namespace.is_none() {
        out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    } else if upper.starts_with("LIST ") {
        let delimiter = state.no_namespace.unwrap_or('/');
        out.extend_from_slice(format!("* LIST (\\Noselect) \"{delimiter}\" \"\"\r\n").as_bytes());
    } else if upper.starts_with("SELECT ") || upper.starts_with("EXAMINE ") {
        out.extend_from_slice(
            format!(
                "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n\
                 * OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] flags\r\n\
                 * {total} EXISTS\r\n* 0 RECENT\r\n\
                 * OK [UIDVALIDITY 7] uids valid\r\n\
                 * OK [UIDNEXT {}] predicted next uid\r\n",
                total + state.expunged + 1
            )
            .as_bytes(),
        );
        return ([out, ok("[READ-WRITE] selected")].concat(), false);
    } else if upper.starts_with("UID SEARCH ") {
        // The lie: nothing, whatever is asked.
        out.extend_from_slice(b"* SEARCH\r\n");
    } else if let Some(rest) = upper.strip_prefix("UID FETCH ") {
        let (set, items) = rest.split_once(' ').unwrap_or((rest, ""));
        for uid in uids(set, total) {
            let body = &state.messages[uid as usize - 1];
            let mut fetch = format!("* {uid} FETCH (UID {uid}").into_bytes();
            if items.contains("RFC822.SIZE") {
                fetch.extend_from_slice(format!(" RFC822.SIZE {}", body.len()).as_bytes());
            }
            if items.contains("BODY.PEEK[]") {
                fetch.extend_from_slice(format!(" BODY[] {{{}}}\r\n", body.len()).as_bytes());
                fetch.extend_from_slice(body);
            }
            fetch.extend_from_slice(b")\r\n");
            out.extend_from_slice(&fetch);
        }
    } else if upper == "LOGOUT" {
        out.extend_from_slice(b"* BYE scripted peer closing\r\n");
        return ([out, ok("bye")].concat(), true);
    } else {
        return (format!("{tag} BAD not scripted\r\n").into_bytes(), false);
    }
    out.extend_from_slice(&ok("done"));
    (out, false)
}

/// The UIDs of a set like `1:50,52,60:*` in a mailbox of UIDs 1..=total; `*` is the last.
fn uids(set: &str, total: u32) -> Vec<u32> {
    let value = |s: &str| {
        if s == "*" {
            total
        } else {
            s.parse().unwrap_or(0)
        }
    };
    let mut out = Vec::new();
    for part in set.split(',') {
        let (lo, hi) = match part.split_once(':') {
            Some((a, b)) => (value(a), value(b)),
            None => (value(part), value(part)),
        };
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        out.extend(lo.max(1)..=hi.min(total));
    }
    out.sort_unstable();
    out.dedup();
    out
}

struct Configured {
    db: TestDb,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn configure(peer: &LyingSearch, imap: &str) -> Configured {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("imap-password");
    std::fs::write(&password, "secret\n").unwrap();
    let path = ConfigFile::new(dir.path(), &db.url)
        .raw(&format!(
            "\n[imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"alice\"\n\
             password_file = \"{}\"\npoll_interval = \"1s\"\ntimeout = \"5s\"\n{imap}\n",
            peer.port,
            password.display(),
        ))
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    Configured {
        db,
        path,
        _dir: dir,
    }
}

const WARNING: &str = "found nothing although the mailbox holds";

/// `EXISTS 300` / `UIDNEXT 301` and an empty `UID SEARCH UID 1:*`: the 300 messages are listed
/// with `UID FETCH`, recorded and flagged, and the log says why, naming the server. Before,
/// the run said "0 messages read" and exited 0 without a word. A second run reads nothing
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_that_contradicts_the_mailbox_is_replaced_by_fetch() {
    let peer = LyingSearch::start((1..=300).map(inquiry).collect()).await;
    let config = configure(&peer, "").await;

    let out = leadloop(&["run", "--once"])
        .config(&config.path)
        .log("warn")
        .output();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("300 messages read, 300 recorded"),
        "{stdout}"
    );
    assert_eq!(stderr.matches(WARNING).count(), 1, "{stderr}");
    assert!(
        stderr.contains("UID SEARCH UID 1:* found nothing although the mailbox holds 300 messages; UID FETCH 1:* listed 300 new ones, so new mail is listed with UID FETCH on this server"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("server=127.0.0.1:{}", peer.port)),
        "{stderr}"
    );
    assert_eq!(
        peer.commands("UID FETCH 1:* "),
        ["UID FETCH 1:* (UID RFC822.SIZE)"]
    );
    assert_eq!(
        peer.commands("UID STORE "),
        ["UID STORE 1:300 +FLAGS.SILENT (\\Seen)"]
    );

    let (code, stdout, stderr) = with_config(&config.path, &["run", "--once"]).run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 messages read, 0 recorded"),
        "{stdout}"
    );
    let store = Store::connect(&config.db.url, 2).await.unwrap();
    assert_eq!(store.inbound(&mailbox(&config)).await.unwrap().len(), 300);
}

/// The daemon keeps reading such a server pass after pass over one connection, and warns on
/// the first pass only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_warns_once_per_connection() {
    let peer = LyingSearch::start((1..=2).map(inquiry).collect()).await;
    let config = configure(&peer, "").await;
    let mut daemon = with_config(&config.path, &["run"]).spawn_logging_to_pipe();
    let tidied = |uid: u32| {
        let want = format!("UID STORE {uid}:{uid} ");
        let want_range = format!("UID STORE 1:{uid} ");
        let peer = &peer;
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if peer
                    .commands("UID STORE ")
                    .iter()
                    .any(|c| c.starts_with(&want) || c.starts_with(&want_range))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("UID {uid} was not flagged within 20 s");
        }
    };
    tidied(2).await;
    peer.add(inquiry(3));
    tidied(3).await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut stderr).unwrap();

    assert_eq!(peer.connections(), 1, "{stderr}");
    assert_eq!(peer.commands("UID FETCH 3:* (UID RFC822.SIZE)").len(), 1);
    assert_eq!(stderr.matches(WARNING).count(), 1, "{stderr}");
    let store = Store::connect(&config.db.url, 2).await.unwrap();
    assert_eq!(store.inbound(&mailbox(&config)).await.unwrap().len(), 3);
}

/// A server without NAMESPACE: the delimiter comes from `LIST "" ""`, and `move:Done/Leads`
/// is moved to `Done.Leads` on a server that uses `.`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_namespace_the_delimiter_comes_from_list() {
    let peer = LyingSearch::start_without_namespace((1..=2).map(inquiry).collect(), '.').await;
    let config = configure(&peer, "after = \"move:Done/Leads\"").await;
    let (code, stdout, stderr) = with_config(&config.path, &["run", "--once"]).run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("2 messages read, 2 recorded"),
        "{stdout}"
    );
    assert!(peer.commands("NAMESPACE").is_empty());
    assert_eq!(peer.commands("LIST "), ["LIST \"\" \"\""]);
    assert_eq!(peer.commands("UID MOVE "), ["UID MOVE 1:2 \"Done.Leads\""]);
}

/// Mail announced by UIDNEXT but expunged before it was read: the search finds nothing, and
/// nor does FETCH, so there is no contradiction to warn about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_expunged_before_it_was_read_is_no_contradiction() {
    let peer = LyingSearch::start((1..=2).map(inquiry).collect()).await;
    let config = configure(&peer, "").await;
    let (code, stdout, stderr) = with_config(&config.path, &["run", "--once"]).run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("2 messages read, 2 recorded"),
        "{stdout}"
    );
    assert_eq!(stderr.matches(WARNING).count(), 1, "{stderr}");

    peer.expunge_one_more();
    let (code, stdout, stderr) = with_config(&config.path, &["run", "--once"]).run();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("0 messages read, 0 recorded"),
        "{stdout}"
    );
    assert_eq!(
        peer.commands("UID FETCH 3:* "),
        ["UID FETCH 3:* (UID RFC822.SIZE)"]
    );
    assert!(!stderr.contains(WARNING), "{stderr}");
}

fn mailbox(config: &Configured) -> String {
    let config = Config::load(&config.path).unwrap();
    let SourceConfig::Imap(imap) = &config.mailboxes[0].source else {
        unreachable!()
    };
    leadloop::ingest::imap_mailbox_name(imap)
}
