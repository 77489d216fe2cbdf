//! The IMAP source: TLS by default, UID-based sync with the cursor kept in the store, IDLE with a
//! polling fallback, and reconnects with capped exponential backoff.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use futures::TryStreamExt;
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use super::folders::{self, Folder, Namespace};
use super::{Classifying, IngestError, IngestReport, Pipeline, RawMessage, header_part};
use crate::config::{AfterProcessing, ImapConfig, Secret, TlsMode};
use crate::diagnostics::error_chain;

/// Backoff between reconnect attempts: doubles from the first value up to the cap, so a
/// server that comes back is read again within a minute (±25% jitter).
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
const IDLE_MAX: Duration = Duration::from_secs(29 * 60);
/// A batch also ends once it holds this many bytes, so memory stays flat with large messages.
const BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Messages in the first batch of a pass; later batches double up to `imap.batch_size`.
const FIRST_BATCH: usize = 50;

/// Why talking to the IMAP server failed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// Network or TLS failure; worth a reconnect.
    #[error("connection to {host}:{port} failed")]
    Connect {
        /// Server host.
        host: String,
        /// Server port.
        port: u16,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The server refused the login (wrong credentials are not retried quickly).
    #[error("login as {user} refused: {message}")]
    Login {
        /// Login name.
        user: String,
        /// Server's answer.
        message: String,
    },
    /// A protocol-level failure (a NO/BAD answer, a dropped connection mid-command).
    #[error("IMAP {command} failed")]
    Protocol {
        /// The command that failed.
        command: &'static str,
        /// The cause.
        #[source]
        source: async_imap::error::Error,
    },
    /// The server and the configuration disagree about TLS, or the server's certificate is
    /// not one we trust: `what` names the setting that usually causes it. Retried like a
    /// network failure (the server may be mid-change), but every log line says what to fix.
    #[error("{what}")]
    Mismatch {
        /// What failed, and the likely fix.
        what: String,
        /// The cause, when there is one (none for a silent server).
        #[source]
        source: Option<io::Error>,
    },
    /// The server answered a command with NO or BAD; `answer` is its text.
    #[error("IMAP {command} refused: {answer}")]
    Refused {
        /// The command that was refused.
        command: &'static str,
        /// `NO` or `BAD`, the response code if any, and the server's words.
        answer: String,
    },
    /// Recorded mail could not be moved to `folder`, and creating the folder failed too.
    #[error(
        "cannot move recorded mail to \"{folder}\": {moving}; creating the folder failed: {creating}"
    )]
    Folder {
        /// The folder of `after = "move:…"`.
        folder: String,
        /// Why the move failed.
        moving: Box<ImapError>,
        /// Why creating the folder failed.
        creating: Box<ImapError>,
    },
    /// The server refused to open `imap.mailbox`: its answer, followed by the folders it
    /// has (decoded) to pick from.
    #[error("{0}")]
    Mailbox(String),
    /// A command took longer than allowed.
    #[error("IMAP {0} timed out")]
    Timeout(&'static str),
    /// The TLS setup is wrong (bad CA file); not worth retrying.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The server did not say what we need (no UIDVALIDITY).
    #[error("server answer unusable: {0}")]
    Server(String),
}

/// Either a plain or a TLS stream, so one session type serves every `tls` mode.
#[derive(Debug)]
enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type ImapSession = Session<ImapStream>;

/// What one connection learned about its server, kept while the connection lasts.
#[derive(Debug)]
struct Server {
    /// `imap.mailbox` under the server's name for it.
    mailbox: Folder,
    /// `imap.after`, with the folder of `move:` under the server's name for it.
    after: Tidy,
    /// The server's `UID SEARCH` has contradicted its mailbox state on this connection, and
    /// that has been said: once per connection is enough for the log.
    search_contradicted: bool,
}

/// `imap.after` with its folder resolved.
#[derive(Debug)]
enum Tidy {
    Leave,
    Flag,
    Move(Folder),
}

/// Reads one IMAP mailbox into a [`Pipeline`].
pub struct ImapSource {
    config: ImapConfig,
    password: Secret,
    pipeline: Pipeline,
    tls: Option<TlsConnector>,
}

impl fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSource")
            .field("host", &self.config.host)
            .field("user", &self.config.user)
            .field("mailbox", &self.config.mailbox)
            .finish_non_exhaustive()
    }
}

/// The stable name a mailbox's messages and cursor are recorded under.
pub fn mailbox_name(config: &ImapConfig) -> String {
    config.key()
}

impl ImapSource {
    /// Prepares a source; no connection is made yet.
    ///
    /// # Errors
    /// [`ImapError::Tls`] when the extra CA file cannot be read.
    pub fn new(
        config: ImapConfig,
        password: Secret,
        pipeline: Pipeline,
    ) -> Result<Self, ImapError> {
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::Starttls => Some(tls_connector(&config)?),
        };
        Ok(ImapSource {
            config,
            password,
            pipeline,
            tls,
        })
    }

    /// Connects, syncs everything waiting, and returns. Used by `leadloop run --once`, the
    /// tests and the benchmark.
    ///
    /// # Errors
    /// Any connection, protocol or store failure.
    pub async fn sync_once(&self, cancel: &CancellationToken) -> Result<IngestReport, IngestError> {
        let (mut session, mut server) = self.open().await?;
        let report = self.sync(&mut session, &mut server, cancel).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
        report
    }

    /// Runs until `cancel` fires: sync, wait for new mail (IDLE or polling), repeat; reconnects
    /// with capped exponential backoff and jitter after any failure.
    pub async fn run(&self, cancel: CancellationToken) -> IngestReport {
        let mut total = IngestReport::default();
        let mut backoff = BACKOFF_START;
        while !cancel.is_cancelled() {
            let result = async {
                let (mut session, mut server) = self.open().await?;
                let mut looked_again = false;
                loop {
                    let report = self.sync(&mut session, &mut server, &cancel).await?;
                    total.merge(report);
                    self.pipeline.mark_read();
                    // A successful pass proves the connection works: start backing off anew.
                    backoff = BACKOFF_START;
                    if cancel.is_cancelled() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
                        return Ok::<(), IngestError>(());
                    }
                    // New mail announced during the sync may have come after it looked:
                    // look once more at once rather than wait a whole IDLE for it (but not
                    // twice in a row, so a server that always announces cannot spin us).
                    let (s, announced) =
                        self.wait_for_mail(session, &cancel, !looked_again).await?;
                    session = s;
                    looked_again = announced;
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                }
            }
            .await;
            let Err(e) = result else { break };
            self.pipeline.metrics().imap_reconnect();
            let delay = jitter(backoff);
            warn!(error = %error_chain(&e), retry_in = ?delay, "IMAP ingest failed; reconnecting");
            backoff = (backoff * 2).min(BACKOFF_CAP);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => break,
            }
        }
        total
    }

    /// Connects, logs in and learns the server's names for the configured folders.
    async fn open(&self) -> Result<(ImapSession, Server), IngestError> {
        let mut session = self.connect().await?;
        let namespace = self.namespace(&mut session).await?;
        let server = Server {
            mailbox: namespace.resolve(&self.config.mailbox),
            after: match &self.config.after {
                AfterProcessing::None => Tidy::Leave,
                AfterProcessing::Flag => Tidy::Flag,
                AfterProcessing::Move(folder) => Tidy::Move(namespace.resolve(folder)),
            },
            search_contradicted: false,
        };
        let move_to = match &server.after {
            Tidy::Move(folder) => folder.name.as_str(),
            Tidy::Leave | Tidy::Flag => "-",
        };
        info!(
            host = %self.config.host,
            mailbox = %server.mailbox,
            move_to = %move_to,
            prefix = %namespace.prefix,
            delimiter = %namespace.delimiter.map_or("none".to_owned(), String::from),
            "connected"
        );
        Ok((session, server))
    }

    /// The server's personal namespace: from NAMESPACE (RFC 2342) when the server has it, else
    /// the delimiter from `LIST "" ""` with no prefix. A server that answers neither gets the
    /// names as written.
    async fn namespace(&self, session: &mut ImapSession) -> Result<Namespace, ImapError> {
        let limit = self.config.timeout;
        let caps = timed(limit, "CAPABILITY", session.capabilities()).await?;
        if caps.has_str("NAMESPACE") {
            let (line, ok) = tokio::time::timeout(limit, folders::ask_namespace(session.as_mut()))
                .await
                .map_err(|_| ImapError::Timeout("NAMESPACE"))?
                .map_err(|e| ImapError::Protocol {
                    command: "NAMESPACE",
                    source: e.into(),
                })?;
            match line.as_deref().and_then(folders::parse_namespace) {
                Some(namespace) if ok => return Ok(namespace),
                _ => debug!(?line, ok, "NAMESPACE gave no usable answer; asking LIST"),
            }
        }
        let listed = async {
            let names = session.list(Some(""), Some("\"\"")).await?;
            names.try_collect::<Vec<_>>().await
        };
        match timed(limit, "LIST", listed).await {
            Ok(names) => Ok(Namespace {
                delimiter: names
                    .iter()
                    .find_map(|n| n.delimiter())
                    .and_then(folders::single_char),
                ..Namespace::default()
            }),
            Err(ImapError::Refused { answer, .. }) => {
                warn!(host = %self.config.host, %answer, "the server refused LIST \"\" \"\"; folder names are used as written");
                Ok(Namespace::default())
            }
            Err(e) => Err(e),
        }
    }

    async fn connect(&self) -> Result<ImapSession, IngestError> {
        let cfg = &self.config;
        let connect_err = |source: io::Error| ImapError::Connect {
            host: cfg.host.clone(),
            port: cfg.port,
            source,
        };
        let tcp = tokio::time::timeout(
            cfg.timeout,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| connect_err(io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
        tcp.set_nodelay(true).map_err(connect_err)?;
        let stream = match (cfg.tls, &self.tls) {
            (TlsMode::Implicit, Some(tls)) => {
                ImapStream::Tls(Box::new(self.handshake(tls, tcp).await?))
            }
            (TlsMode::Starttls, Some(tls)) => {
                let mut client = Client::new(tcp);
                read_greeting(&mut client, cfg).await?;
                timed(
                    self.config.timeout,
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                ImapStream::Tls(Box::new(self.handshake(tls, client.into_inner()).await?))
            }
            _ => ImapStream::Plain(tcp),
        };
        let mut client = Client::new(stream);
        if cfg.tls != TlsMode::Starttls {
            read_greeting(&mut client, cfg).await?;
        }
        let session =
            tokio::time::timeout(cfg.timeout, client.login(&cfg.user, self.password.expose()))
                .await
                .map_err(|_| ImapError::Timeout("LOGIN"))?
                .map_err(|(e, _)| ImapError::Login {
                    user: cfg.user.clone(),
                    message: e.to_string(),
                })?;
        Ok(session)
    }

    async fn handshake(
        &self,
        tls: &TlsConnector,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ImapError> {
        let name = ServerName::try_from(self.config.host.clone()).map_err(|e| {
            ImapError::Tls(format!(
                "'{}' is not a valid TLS server name: {e}",
                self.config.host
            ))
        })?;
        tokio::time::timeout(self.config.timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| ImapError::Timeout("TLS handshake"))?
            .map_err(|source| match tls_hint(&source, &self.config) {
                Some(hint) => ImapError::Mismatch {
                    what: format!(
                        "TLS handshake with {}:{} failed; {hint}",
                        self.config.host, self.config.port
                    ),
                    source: Some(source),
                },
                None => ImapError::Connect {
                    host: self.config.host.clone(),
                    port: self.config.port,
                    source,
                },
            })
    }

    /// One pass: everything after the cursor is fetched in batches and recorded.
    async fn sync(
        &self,
        session: &mut ImapSession,
        server: &mut Server,
        cancel: &CancellationToken,
    ) -> Result<IngestReport, IngestError> {
        let span = info_span!("sync", mailbox = %server.mailbox);
        async move {
            let mailbox = match timed(
                self.config.timeout,
                "SELECT",
                session.select(&server.mailbox.wire),
            )
            .await
            {
                Ok(mailbox) => mailbox,
                Err(refused @ ImapError::Refused { .. }) => {
                    return Err(self.with_folder_list(session, refused).await.into());
                }
                Err(e) => return Err(e.into()),
            };
            let uidvalidity = mailbox
                .uid_validity
                .ok_or_else(|| ImapError::Server("SELECT returned no UIDVALIDITY".into()))?;
            let store = self.pipeline.store();
            let cursor = store.mailbox_cursor(self.pipeline.mailbox()).await?;
            let start = match cursor {
                Some(c) if c.uidvalidity == uidvalidity => c.last_uid.saturating_add(1),
                Some(c) => {
                    warn!(old = c.uidvalidity, new = uidvalidity, "UIDVALIDITY changed; re-scanning the mailbox (already recorded messages are recognised and skipped)");
                    1
                }
                None => 1,
            };
            if mailbox.uid_next.is_some_and(|next| next <= start) || mailbox.exists == 0 {
                return Ok(IngestReport {
                    tidy_failed: !self.tidy(session, server, uidvalidity, start).await,
                    ..IngestReport::default()
                });
            }

            let listing = std::time::Instant::now();
            let sizes = self
                .list_new(session, server, start, mailbox.exists, mailbox.uid_next)
                .await?;
            let skipped = match self.pipeline.since() {
                Some(day) => self.skip_older(session, uidvalidity, start, day, &sizes).await?,
                None => 0,
            };
            if sizes.is_empty() {
                return Ok(IngestReport {
                    skipped,
                    ..IngestReport::default()
                });
            }
            self.pipeline.expect(sizes.len());
            info!(new = sizes.len(), from_uid = start, listing = ?listing.elapsed(), "fetching new mail");

            // Fetch batch n+1 while batch n is classified and recorded. The writer is a task of
            // its own, so decoding IMAP and preparing inserts use two cores; it is aborted if
            // this sync is dropped, so nothing writes on behind a cancelled or killed sync.
            //
            // What is in memory at once is bounded whatever the mailbox's size: the batch being
            // fetched, one waiting, and the transaction being written, which takes at most two
            // batches' worth.
            let (tx, mut rx) = mpsc::channel::<(u32, Classifying)>(1);
            let pipeline = self.pipeline.clone();
            let merge_up_to = 2 * self.config.batch_size as usize;
            let writer = AbortOnDropHandle::new(tokio::spawn(
                async move {
                    let mut report = IngestReport::default();
                    let mut committed = None;
                    while let Some((mut last_uid, mut batch)) = rx.recv().await {
                        // A batch that was fetched while the previous one was written goes
                        // into the same transaction: fewer commits, each of which writes the
                        // indexes' changed pages again.
                        while batch.fetched < merge_up_to
                            && let Ok((uid, later)) = rx.try_recv()
                        {
                            batch.append(later);
                            last_uid = uid;
                        }
                        report.merge(pipeline.write(uidvalidity, Some(last_uid), batch).await?);
                        committed = Some(last_uid);
                    }
                    Ok::<_, IngestError>((report, committed))
                }
                .in_current_span(),
            ));
            let fetched = self.fetch_batches(session, &sizes, tx, cancel).await;
            let written = writer.await.map_err(|e| IngestError::Task(e.to_string()))?;
            fetched?;
            let (mut report, committed) = written?;
            report.skipped = skipped;
            if committed.is_some() {
                report.tidy_failed = !self.tidy(session, server, uidvalidity, start).await;
            }
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// With `--since`, counts the mail from `start` on that arrived before the day and so is
    /// not read; when nothing newer is left, moves the cursor past it, so a later run without
    /// `--since` does not read it either.
    async fn skip_older(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
        start: u32,
        day: chrono::NaiveDate,
        kept: &[(u32, u64)],
    ) -> Result<usize, IngestError> {
        let all: Vec<u32> = timed(
            self.config.timeout,
            "UID SEARCH",
            session.uid_search(format!("UID {start}:*")),
        )
        .await?
        .into_iter()
        .filter(|uid| *uid >= start)
        .collect();
        let skipped = all.len().saturating_sub(kept.len());
        if skipped > 0 {
            info!(skipped, since = %day, "mail that arrived before --since is skipped");
        }
        if kept.is_empty()
            && let Some(last) = all.iter().max()
        {
            let nothing = Classifying {
                fetched: 0,
                oversize: 0,
                chunks: Vec::new(),
            };
            self.pipeline
                .write(uidvalidity, Some(*last), nothing)
                .await?;
        }
        Ok(skipped)
    }

    /// The UIDs from `start` on, each with its size or an upper bound of it, in UID order.
    ///
    /// Sizes come first so that oversize messages are never fetched whole and a batch's bytes
    /// stay bounded. Two `UID SEARCH`es (all new UIDs, and those `LARGER` than a batch's fair
    /// share of [`BATCH_BYTES`]) answer that for most mail in two short responses; only the
    /// large messages are asked for their exact `RFC822.SIZE`. A size listing of every message
    /// would cost one response per message before the first body is fetched.
    async fn list_new(
        &self,
        session: &mut ImapSession,
        server: &mut Server,
        start: u32,
        exists: u32,
        uid_next: Option<u32>,
    ) -> Result<Vec<(u32, u64)>, IngestError> {
        let bound = self.size_bound();
        let since = self.pipeline.since();
        let range = match since {
            // IMAP dates are `d-Mon-yyyy` with English month names (RFC 3501 `date`).
            Some(day) => format!("UID {start}:* SINCE {}", day.format("%-d-%b-%Y")),
            None => format!("UID {start}:*"),
        };
        let found = timed(
            self.config.timeout,
            "UID SEARCH",
            session.uid_search(&range),
        )
        .await?;
        // `n:*` always includes the newest message, even when its UID is below n: an empty
        // answer from a mailbox that holds mail contradicts the mailbox's own state.
        if found.is_empty() && exists > 0 && since.is_none() {
            return self
                .list_by_fetch(session, server, start, exists, uid_next)
                .await;
        }
        let mut all: Vec<u32> = found.into_iter().filter(|uid| *uid >= start).collect();
        all.sort_unstable();
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let mut large: Vec<u32> = timed(
            self.config.timeout,
            "UID SEARCH",
            session.uid_search(format!("{range} LARGER {bound}")),
        )
        .await?
        .into_iter()
        .filter(|uid| *uid >= start)
        .collect();
        large.sort_unstable();
        let mut exact: HashMap<u32, u64> = HashMap::with_capacity(large.len());
        if !large.is_empty() {
            // Each response is dropped as soon as it is read: a held response keeps its whole
            // read buffer alive.
            let stream = timed(
                self.config.timeout,
                "UID FETCH",
                session.uid_fetch(uid_set(&large), "(UID RFC822.SIZE)"),
            )
            .await?;
            let mut stream = std::pin::pin!(stream);
            while let Some(f) = timed(self.config.timeout, "UID FETCH", stream.try_next()).await? {
                if let (Some(uid), Some(size)) = (f.uid, f.size) {
                    exact.insert(uid, u64::from(size));
                }
            }
        }
        Ok(all
            .into_iter()
            .map(|uid| {
                let size = match exact.get(&uid) {
                    Some(size) => *size,
                    // Large without a size answer: assume the worst, so it is fetched alone
                    // and only its header when over the limit.
                    None if large.binary_search(&uid).is_ok() => u64::MAX,
                    None => bound,
                };
                (uid, size)
            })
            .collect())
    }

    /// A refused SELECT with the folders the server has, so that a misspelt `imap.mailbox`
    /// (or one in another namespace) shows what to write instead. The refusal alone when the
    /// server will not list them.
    async fn with_folder_list(&self, session: &mut ImapSession, refused: ImapError) -> ImapError {
        /// Enough to find the right one; a mailbox with thousands of folders is cut short.
        const SHOWN: usize = 30;
        let listed = async {
            let names = session.list(Some(""), Some("\"*\"")).await?;
            names.try_collect::<Vec<_>>().await
        };
        let Ok(names) = timed(self.config.timeout, "LIST", listed).await else {
            return refused;
        };
        let mut folders: Vec<String> = names
            .iter()
            .filter(|n| {
                !n.attributes()
                    .iter()
                    .any(|a| matches!(a, async_imap::types::NameAttribute::NoSelect))
            })
            .map(|n| folders::decode_lossy(n.name()))
            .collect();
        if folders.is_empty() {
            return refused;
        }
        folders.sort();
        let more = folders.len().saturating_sub(SHOWN);
        folders.truncate(SHOWN);
        let refused = refused.to_string();
        // The server's words often end a sentence; the list then starts one of its own.
        let mut text = if refused.ends_with('.') {
            format!("{refused} The server's folders: {}", folders.join(", "))
        } else {
            format!("{refused}; the server's folders: {}", folders.join(", "))
        };
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        ImapError::Mailbox(text)
    }

    /// A message's size as assumed when the server did not say it: a batch's fair share of
    /// [`BATCH_BYTES`], at most `max_message_bytes`.
    fn size_bound(&self) -> u64 {
        (BATCH_BYTES / u64::from(self.config.batch_size.max(1)))
            .min(self.config.max_message_bytes)
            .max(1)
    }

    /// The UIDs from `start` on with their sizes, listed with `UID FETCH n:* (UID
    /// RFC822.SIZE)`, for a server whose `UID SEARCH` found nothing although SELECT said the
    /// mailbox holds mail and UIDNEXT is past the cursor (a broken or lagging search index):
    /// FETCH reads the mailbox itself. The sizes come in the same answer because the
    /// `LARGER` search that bounds sizes otherwise cannot be trusted on such a server either.
    ///
    /// When FETCH finds new mail the search missed, that is logged as a warning, the first
    /// time on a connection. When it finds none either, the mail announced by UIDNEXT was
    /// expunged meanwhile (some servers answer an empty search then): nothing to warn about.
    async fn list_by_fetch(
        &self,
        session: &mut ImapSession,
        server: &mut Server,
        start: u32,
        exists: u32,
        uid_next: Option<u32>,
    ) -> Result<Vec<(u32, u64)>, IngestError> {
        let bound = self.size_bound();
        let stream = timed(
            self.config.timeout,
            "UID FETCH",
            session.uid_fetch(format!("{start}:*"), "(UID RFC822.SIZE)"),
        )
        .await?;
        let mut stream = std::pin::pin!(stream);
        let mut listed = Vec::new();
        while let Some(f) = timed(self.config.timeout, "UID FETCH", stream.try_next()).await? {
            if let Some(uid) = f.uid.filter(|uid| *uid >= start) {
                listed.push((uid, f.size.map_or(bound, u64::from)));
            }
        }
        listed.sort_unstable();
        listed.dedup_by_key(|(uid, _)| *uid);
        let found = listed.len();
        if found > 0 && !server.search_contradicted {
            server.search_contradicted = true;
            warn!(
                server = %format!("{}:{}", self.config.host, self.config.port),
                exists,
                uid_next,
                from_uid = start,
                "UID SEARCH UID {start}:* found nothing although the mailbox holds {exists} messages; UID FETCH {start}:* listed {found} new ones, so new mail is listed with UID FETCH on this server (said once per connection)"
            );
        } else {
            debug!(
                from_uid = start,
                found, "UID SEARCH found nothing; UID FETCH listed the new mail"
            );
        }
        Ok(listed)
    }

    async fn fetch_batches(
        &self,
        session: &mut ImapSession,
        sizes: &[(u32, u64)],
        tx: mpsc::Sender<(u32, Classifying)>,
        cancel: &CancellationToken,
    ) -> Result<(), IngestError> {
        let limit = self.config.max_message_bytes;
        let full_batch = self.config.batch_size as usize;
        // The first batches are small and double up to the configured size: classification
        // and the first commit start after a few dozen messages instead of a whole batch,
        // which otherwise leaves the other cores idle while the first batch streams in.
        let mut per_batch = full_batch.min(FIRST_BATCH);
        let mut rest = sizes;
        while !rest.is_empty() {
            // Stop between batches: what is recorded stays recorded, the rest waits for next time.
            if cancel.is_cancelled() {
                break;
            }
            let mut n = 0;
            let mut bytes = 0;
            while n < rest.len()
                && n < per_batch
                && (n == 0 || bytes + rest[n].1.min(limit) <= BATCH_BYTES)
            {
                bytes += rest[n].1.min(limit);
                n += 1;
            }
            per_batch = (per_batch * 2).min(full_batch);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let whole: Vec<u32> = chunk
                .iter()
                .filter(|(_, s)| *s <= limit)
                .map(|(u, _)| *u)
                .collect();
            let big: Vec<u32> = chunk
                .iter()
                .filter(|(_, s)| *s > limit)
                .map(|(u, _)| *u)
                .collect();
            let mut messages = Vec::with_capacity(chunk.len());
            if !whole.is_empty() {
                let stream = timed(
                    self.config.timeout,
                    "UID FETCH",
                    // No RFC822.SIZE: it is by definition the length of `BODY[]`, which
                    // the server would otherwise compute and send a second time.
                    session.uid_fetch(uid_set(&whole), "(UID BODY.PEEK[])"),
                )
                .await?;
                let mut stream = std::pin::pin!(stream);
                while let Some(f) =
                    timed(self.config.timeout, "UID FETCH", stream.try_next()).await?
                {
                    let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                        continue;
                    };
                    messages.push(RawMessage {
                        uid: Some(uid),
                        size: body.len() as u64,
                        bytes: body.to_vec(),
                        oversize: false,
                    });
                }
            }
            if !big.is_empty() {
                let stream = timed(
                    self.config.timeout,
                    "UID FETCH",
                    session.uid_fetch(uid_set(&big), "(UID RFC822.SIZE BODY.PEEK[HEADER])"),
                )
                .await?;
                let mut stream = std::pin::pin!(stream);
                while let Some(f) =
                    timed(self.config.timeout, "UID FETCH", stream.try_next()).await?
                {
                    let Some(uid) = f.uid else { continue };
                    let header = f
                        .header()
                        .map(|h| header_part(h, 1024 * 1024).to_vec())
                        .unwrap_or_default();
                    messages.push(RawMessage {
                        uid: Some(uid),
                        size: f.size.map_or(0, u64::from),
                        bytes: header,
                        oversize: true,
                    });
                }
            }
            messages.sort_unstable_by_key(|m| m.uid);
            // A UID the server no longer returns was expunged meanwhile: there is nothing left
            // to record, and the cursor moves past it with the batch.
            let last_uid = chunk.last().map_or(0, |(u, _)| *u);
            debug!(messages = messages.len(), last_uid, "batch fetched");
            if tx
                .send((last_uid, self.pipeline.classify(messages)))
                .await
                .is_err()
            {
                // The writer stopped on an error; it reports it.
                break;
            }
        }
        Ok(())
    }

    /// Flags or moves (`after`) every recorded message not yet tidied: this pass's, and any a
    /// stop between recording and tidying left behind, which would otherwise stay until new
    /// mail came, or for good with `after = "flag"`. It runs after the pass recorded its mail,
    /// and its failure (a folder that cannot be created) is logged, not returned: it never
    /// holds up recording, and the next pass tries again. `false` when it failed.
    async fn tidy(
        &self,
        session: &mut ImapSession,
        server: &Server,
        uidvalidity: u32,
        pass_start: u32,
    ) -> bool {
        if self.pipeline.store().is_dry_run() {
            // A dry run changes nothing outside its database; the mail stays untidied, so
            // the first real run flags or moves it.
            return true;
        }
        match self
            .tidy_range(session, server, uidvalidity, pass_start)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %error_chain(&e), after = ?self.config.after, "recorded mail could not be flagged or moved; the next pass tries again");
                false
            }
        }
    }

    async fn tidy_range(
        &self,
        session: &mut ImapSession,
        server: &Server,
        uidvalidity: u32,
        pass_start: u32,
    ) -> Result<(), IngestError> {
        let store = self.pipeline.store();
        let mailbox = self.pipeline.mailbox();
        let Some((first, last)) = store.untidied(mailbox, uidvalidity).await? else {
            return Ok(());
        };
        if first < pass_start {
            info!(first, last, "tidying mail recorded before an interruption");
        }
        self.after_processing(session, server, first, last).await?;
        store.mark_tidied(mailbox, uidvalidity, last).await?;
        Ok(())
    }

    async fn after_processing(
        &self,
        session: &mut ImapSession,
        server: &Server,
        start: u32,
        last: u32,
    ) -> Result<(), IngestError> {
        match &server.after {
            Tidy::Leave => {}
            Tidy::Flag => {
                let stream = timed(
                    self.config.timeout,
                    "UID STORE",
                    session.uid_store(format!("{start}:{last}"), "+FLAGS.SILENT (\\Seen)"),
                )
                .await?;
                let _: Vec<_> =
                    timed(self.config.timeout, "UID STORE", stream.try_collect()).await?;
            }
            Tidy::Move(folder) => {
                // Everything up to the cursor is recorded, so moving 1:last also catches messages
                // left behind by a crash between the commit and the move.
                let set = format!("1:{last}");
                if let Err(first) = timed(
                    self.config.timeout,
                    "UID MOVE",
                    session.uid_mv(&set, &folder.wire),
                )
                .await
                {
                    // The folder may not exist yet ([TRYCREATE]): create it once and retry; if
                    // that fails too, the first error is the one worth reporting.
                    debug!(error = %first, folder = %folder, "UID MOVE failed; creating the folder");
                    let created =
                        timed(self.config.timeout, "CREATE", session.create(&folder.wire)).await;
                    timed(
                        self.config.timeout,
                        "UID MOVE",
                        session.uid_mv(&set, &folder.wire),
                    )
                    .await
                    .map_err(|_| match created {
                        // The refused CREATE usually says why (a name outside the server's
                        // namespace, a character it does not allow).
                        Err(create) => ImapError::Folder {
                            folder: folder.name.clone(),
                            moving: Box::new(first),
                            creating: Box::new(create),
                        },
                        Ok(()) => first,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Waits until the mailbox may hold new mail: IDLE, or the poll interval. With
    /// `may_return_at_once`, returns at once (and `true`) when the server announced new mail
    /// (EXISTS, RECENT) while the sync ran: that mail may have arrived after the sync looked.
    async fn wait_for_mail(
        &self,
        mut session: ImapSession,
        cancel: &CancellationToken,
        may_return_at_once: bool,
    ) -> Result<(ImapSession, bool), IngestError> {
        let idle = self.config.idle && {
            let caps = timed(self.config.timeout, "CAPABILITY", session.capabilities()).await?;
            caps.has_str("IDLE")
        };
        // Drain notifications gathered during the sync: the sync reads the mailbox state
        // itself, but an announcement of new mail says to look again.
        let mut announced = false;
        while let Ok(r) = session.unsolicited_responses.try_recv() {
            announced |= matches!(
                r,
                async_imap::types::UnsolicitedResponse::Exists(_)
                    | async_imap::types::UnsolicitedResponse::Recent(_)
            );
        }
        if announced && may_return_at_once {
            debug!("new mail announced during the sync: looking again");
            return Ok((session, true));
        }
        if !idle {
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = cancel.cancelled() => {}
            }
            return Ok((session, false));
        }
        let mut handle = session.idle();
        timed(self.config.timeout, "IDLE", handle.init()).await?;
        let wait = self.config.poll_interval.min(IDLE_MAX);
        let (idle_fut, _stop) = handle.wait_with_timeout(wait);
        let woke = tokio::select! {
            r = idle_fut => Some(r.map_err(|source| ImapError::Protocol { command: "IDLE", source })?),
            () = cancel.cancelled() => None,
        };
        debug!(?woke, "IDLE ended");
        Ok((
            timed(self.config.timeout, "DONE", handle.done()).await?,
            false,
        ))
    }
}

async fn read_greeting<T>(client: &mut Client<T>, cfg: &ImapConfig) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + fmt::Debug + Send,
{
    match tokio::time::timeout(cfg.timeout, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError::Connect {
            host: cfg.host.clone(),
            port: cfg.port,
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the greeting"),
        }),
        Ok(Err(source)) => Err(ImapError::Connect {
            host: cfg.host.clone(),
            port: cfg.port,
            source,
        }),
        // A server on a TLS port waits for our handshake and says nothing.
        Err(_) if cfg.tls == TlsMode::None => Err(ImapError::Mismatch {
            what: format!(
                "{}:{} sent no greeting in {} s; if this port expects TLS from the start (usually 993), set imap.tls = \"implicit\"",
                cfg.host,
                cfg.port,
                cfg.timeout.as_secs()
            ),
            source: None,
        }),
        Err(_) => Err(ImapError::Timeout("greeting")),
    }
}

/// What a failed TLS handshake most likely means for the configuration, when the cause is
/// one users meet: plain IMAP on the port, or a certificate we do not trust.
fn tls_hint(e: &io::Error, cfg: &ImapConfig) -> Option<String> {
    use rustls::{CertificateError, Error};
    let tls = e.get_ref()?.downcast_ref::<Error>()?;
    Some(match tls {
        Error::InvalidMessage(_) if cfg.tls == TlsMode::Implicit => format!(
            "the server answered without TLS, so port {} speaks plain IMAP: set imap.tls = \"starttls\" for it, or use the server's TLS port (usually 993)",
            cfg.port
        ),
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => match &cfg.ca_file {
            Some(path) => format!(
                "the server's certificate is not signed by the CA in imap.ca_file ({})",
                path.display()
            ),
            None => "the server's certificate is not signed by a CA this machine trusts: set imap.ca_file to the CA certificate (PEM) that signed it".to_owned(),
        },
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not for {}: set imap.host to a name the certificate names",
            cfg.host
        ),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired".to_owned(),
        _ => return None,
    })
}

/// Runs one IMAP command future with the command timeout, naming it in errors.
async fn timed<T, F>(limit: Duration, command: &'static str, fut: F) -> Result<T, ImapError>
where
    F: std::future::Future<Output = Result<T, async_imap::error::Error>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|source| match &source {
            async_imap::error::Error::No(text) => ImapError::Refused {
                command,
                answer: server_answer("NO", text),
            },
            async_imap::error::Error::Bad(text) => ImapError::Refused {
                command,
                answer: server_answer("BAD", text),
            },
            _ => ImapError::Protocol { command, source },
        }),
        Err(_) => Err(ImapError::Timeout(command)),
    }
}

/// The server's own words from async-imap's text for a NO or BAD answer, which is the debug
/// form of the parsed response (`… code: Some(TryCreate), information: Some("…") …`): `NO
/// [TRYCREATE] Mailbox doesn't exist`. The text as it came when it has another shape.
fn server_answer(status: &str, text: &str) -> String {
    let quoted = ["information: Some(\"", "info: Some(\""]
        .iter()
        .find_map(|key| text.find(key).map(|i| &text[i + key.len()..]));
    let Some(quoted) = quoted else {
        return format!("{status} {text}");
    };
    // Undo the debug escaping up to the closing quote.
    let mut words = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => words.push(' '),
                Some(other) => words.push(other),
                None => break,
            },
            c => words.push(c),
        }
    }
    let code = text
        .find("code: Some(")
        .map(|i| &text[i + "code: Some(".len()..])
        .and_then(|rest| rest.split([')', '(', ',', ' ']).next())
        .filter(|c| !c.is_empty())
        .map(|c| format!("[{}] ", c.to_uppercase()));
    format!("{status} {}{}", code.unwrap_or_default(), words.trim())
}

fn tls_connector(config: &ImapConfig) -> Result<TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ImapError::Tls(format!("cannot read ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                ImapError::Tls(format!("bad certificate in {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                ImapError::Tls(format!("unusable certificate in {}: {e}", path.display()))
            })?;
        }
    }
    // The provider is passed explicitly: a process-wide default would panic if another
    // dependency ever compiled in a second one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// `1:5,7,9:12` for sorted UIDs.
fn uid_set(uids: &[u32]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut i = 0;
    while i < uids.len() {
        let first = uids[i];
        let mut last = first;
        while i + 1 < uids.len() && uids[i + 1] == last + 1 {
            i += 1;
            last = uids[i];
        }
        if !s.is_empty() {
            s.push(',');
        }
        if first == last {
            let _ = write!(s, "{first}");
        } else {
            let _ = write!(s, "{first}:{last}");
        }
        i += 1;
    }
    s
}

fn jitter(d: Duration) -> Duration {
    // Up to 25% either way, so many daemons restarting together do not reconnect in lockstep.
    let factor = rand::rng().random_range(0.75..1.25);
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_as_the_server_said_it() {
        assert_eq!(
            server_answer(
                "NO",
                "outcome: Outcome { code: None, information: Some(\"Mailbox doesn't exist: Nope\") }"
            ),
            "NO Mailbox doesn't exist: Nope"
        );
        assert_eq!(
            server_answer(
                "NO",
                "code: Some(TryCreate), info: Some(\"No \\\"such\\\" folder\")"
            ),
            "NO [TRYCREATE] No \"such\" folder"
        );
        assert_eq!(server_answer("BAD", "odd"), "BAD odd");
    }

    #[test]
    fn uid_sets_are_compressed_into_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
    }
}
