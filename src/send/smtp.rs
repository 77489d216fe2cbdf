//! One SMTP conversation per message over a long-lived connection.
//!
//! The connections are lettre's [`AsyncSmtpConnection`], opened on a TCP socket we create
//! ourselves so that `TCP_NODELAY` is set: lettre 0.11.23's own transport and pool never set
//! it, and because it writes the end-of-data `.` separately, Nagle's algorithm and delayed ACKs
//! then cost about 44 ms per message per connection. Each sender worker owns one connection,
//! which is the pool; a broken or refused conversation drops its connection and the next
//! message opens a fresh one.
//!
//! The conversation is driven command by command (`MAIL`, `RCPT`, `DATA`, the data) rather
//! than with lettre's `send`, because what to do with a failure depends on where it happened:
//! a 5xx to `RCPT TO` means the recipient does not exist, and a timeout after the data has
//! gone out means the server may have the message. Whether the end-of-data line has left is
//! known exactly: the stream records whether a read began after the message was written
//! (lettre reads the reply only once the write and flush succeeded), so a failure before that
//! point may be retried and any failure after it is `interrupted`. When the server offers PIPELINING
//! (RFC 2920), `MAIL`, `RCPT` and `DATA` go out in one write and their three replies are read
//! in order, which still tells each stage's failure apart: a message then costs two round
//! trips instead of four.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::SendError;
use crate::config::{Secret, SmtpServer, TlsMode};

/// Where in the conversation a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Checking the envelope's addresses before any conversation.
    Envelope,
    /// Connecting, TLS, greeting, EHLO, AUTH: nothing of the message has left.
    Connect,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`: a permanent refusal here is about the recipient.
    Rcpt,
    /// `DATA`.
    Data,
    /// Writing the message and its end-of-data line: the server cannot have it yet.
    Body,
    /// Waiting for the reply to the end of data, which has been written: from here on the
    /// server may have the message.
    Reply,
}

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    /// A 4xx reply.
    Transient,
    /// A 5xx reply, or a message this server can never take.
    Permanent,
    /// No answer in time.
    Timeout,
    /// The connection broke, or TLS, or an unreadable reply.
    Network,
    /// The server's certificate is not trusted (a configuration problem, or an attack).
    Untrusted,
}

/// A reply from the server: its code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    pub text: String,
}

/// A failed conversation.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub stage: Stage,
    pub kind: FailKind,
    pub detail: String,
    /// The server's negative reply, when the failure is one.
    pub reply: Option<Reply>,
}

impl Failure {
    pub(crate) fn new(stage: Stage, kind: FailKind, detail: impl Into<String>) -> Failure {
        Failure {
            stage,
            kind,
            detail: detail.into(),
            reply: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Envelope => "envelope",
            Stage::Connect => "connecting",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body => "sending the message",
            Stage::Reply => "end of data",
        };
        write!(f, "{stage}: {}", self.detail)
    }
}

fn failure(stage: Stage, e: &lettre::transport::smtp::Error) -> Failure {
    let kind = if e.is_permanent() {
        FailKind::Permanent
    } else if e.is_transient() {
        FailKind::Transient
    } else if e.is_timeout() {
        FailKind::Timeout
    } else if untrusted_certificate(e) {
        FailKind::Untrusted
    } else {
        FailKind::Network
    };
    let reply = e.status().map(|code| Reply {
        code: u16::from(code),
        text: std::error::Error::source(e)
            .map(ToString::to_string)
            .unwrap_or_default(),
    });
    let detail = match &reply {
        Some(r) => format!("{} {}", r.code, r.text),
        None => describe(e),
    };
    Failure {
        stage,
        kind,
        detail,
        reply,
    }
}

/// An error and its causes as one line, each distinct part once: lettre wraps errors in
/// errors of the same kind, whose messages then repeat ("Connection error: Connection
/// error: …").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        // Each level's own text, without the causes it appends after ": ".
        let text = err.to_string();
        let own = match err.source().map(ToString::to_string) {
            Some(src) if text.ends_with(&src) && text.len() > src.len() => text
                [..text.len() - src.len()]
                .trim_end_matches([':', ' '])
                .to_owned(),
            _ => text,
        };
        for part in own.split(": ") {
            let part = part.trim();
            if !part.is_empty() && !parts.iter().any(|p| p.eq_ignore_ascii_case(part)) {
                parts.push(part.to_owned());
            }
        }
        next = err.source();
    }
    parts.join(": ")
}

/// One open conversation with the server, kept between messages.
pub(crate) struct Connection {
    conn: AsyncSmtpConnection,
    /// The server offered PIPELINING (lettre's `ServerInfo` does not keep that keyword).
    pipelining: bool,
    /// Set by the stream when a read begins; cleared before a message is written, so that a
    /// failure can tell "before the end of data left" from "after" ([`Watched`]).
    read_begun: Arc<AtomicBool>,
}

/// `MAIL`, `RCPT` and `DATA` as one pipelined group (RFC 2920 §3.1: `DATA` ends a group).
struct Envelope<'a> {
    mail: Mail,
    rcpt: &'a Address,
}

impl fmt::Display for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.mail,
            Rcpt::new(self.rcpt.clone(), Vec::new()),
            Data
        )
    }
}

/// A message's content as sent after `DATA` (RFC 5321 §4.5.2): a `.` that begins a line is
/// doubled, and a line with a single `.` ends it.
///
/// lettre's `message` does the same a byte at a time and writes the end-of-data line
/// separately; this finds line starts with `memchr` and leaves one write per message.
struct DataBody<'a>(&'a str);

impl fmt::Display for DataBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut from = 0;
        for at in memchr::memmem::find_iter(text.as_bytes(), "\r\n.") {
            // Up to and including the CRLF, then the extra dot; the line's own dot follows.
            f.write_str(&text[from..at + 2])?;
            f.write_str(".")?;
            from = at + 2;
        }
        f.write_str(&text[from..])?;
        if text.is_empty() || text.ends_with("\r\n") {
            f.write_str(".\r\n")
        } else {
            f.write_str("\r\n.\r\n")
        }
    }
}

/// Opens connections to the configured server.
pub(crate) struct Connector {
    server: SmtpServer,
    password: Option<Secret>,
    hello: ClientId,
    timeout: Duration,
    /// For `implicit`: TLS from the first byte, with our own rustls configuration.
    implicit: Option<TlsConnector>,
    /// For `starttls`: lettre upgrades the connection after EHLO.
    starttls: Option<TlsParameters>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.server.host)
            .field("port", &self.server.port)
            .field("tls", &self.server.tls)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub(crate) fn new(
        server: &SmtpServer,
        password: Option<Secret>,
        timeout: Duration,
    ) -> Result<Connector, SendError> {
        let ca = match &server.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                SendError::Tls(format!("cannot read ca_file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let (implicit, starttls) = match server.tls {
            TlsMode::Implicit => (Some(tls_connector(ca.as_deref())?), None),
            TlsMode::Starttls => {
                let mut b = TlsParameters::builder(server.host.clone());
                if let Some(pem) = &ca {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| SendError::Tls(format!("unusable ca_file: {e}")))?;
                    b = b.add_root_certificate(cert);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| SendError::Tls(e.to_string()))?;
                (None, Some(params))
            }
            TlsMode::None => (None, None),
        };
        let hello = match &server.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        Ok(Connector {
            server: server.clone(),
            password,
            hello,
            timeout,
            implicit,
            starttls,
        })
    }

    async fn timed<T, F>(&self, stage: Stage, fut: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, lettre::transport::smtp::Error>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| failure(stage, &e)),
            Err(_) => Err(Failure::new(
                stage,
                FailKind::Timeout,
                format!("no reply within {:?}", self.timeout),
            )),
        }
    }

    /// Connects, secures, greets and authenticates.
    async fn connect(&self) -> Result<Connection, Failure> {
        let net = |detail: String| Failure::new(Stage::Connect, FailKind::Network, detail);
        let addr = (self.server.host.as_str(), self.server.port);
        let tcp = match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(net(format!("cannot connect: {e}"))),
            Err(_) => {
                return Err(Failure::new(
                    Stage::Connect,
                    FailKind::Timeout,
                    format!("no connection within {:?}", self.timeout),
                ));
            }
        };
        // The reason these connections are ours rather than lettre's pool's (module docs).
        tcp.set_nodelay(true)
            .map_err(|e| net(format!("cannot set TCP_NODELAY: {e}")))?;
        let read_begun = Arc::new(AtomicBool::new(false));
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(tls) => {
                let name = ServerName::try_from(self.server.host.clone())
                    .map_err(|e| net(format!("not a TLS server name: {e}")))?;
                let tls = tokio::time::timeout(self.timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| net("no TLS handshake in time".to_owned()))?
                    .map_err(|e| tls_failure(&e))?;
                Box::new(Watched {
                    inner: Tls(tls),
                    read_begun: Arc::clone(&read_begun),
                })
            }
            None => Box::new(Watched {
                inner: tcp,
                read_begun: Arc::clone(&read_begun),
            }),
        };
        let mut conn = self
            .timed(
                Stage::Connect,
                AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
            )
            .await?;
        if let Some(params) = &self.starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(net(
                    "the server does not offer STARTTLS (tls = \"starttls\")".to_owned(),
                ));
            }
            self.timed(Stage::Connect, conn.starttls(params.clone(), &self.hello))
                .await?;
        }
        // lettre parsed the greeting's extensions but keeps only those it uses itself; a
        // second EHLO (allowed at any time, RFC 5321 §4.1.4) shows whether PIPELINING is
        // offered. Before AUTH, so nothing the server resets on EHLO matters.
        let ehlo = self
            .timed(Stage::Connect, conn.command(Ehlo::new(self.hello.clone())))
            .await?;
        let pipelining = ehlo
            .message()
            .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let (Some((user, _)), Some(password)) = (&self.server.auth, &self.password) {
            let credentials = Credentials::new(user.clone(), password.expose().to_owned());
            self.timed(
                Stage::Connect,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials),
            )
            .await?;
        }
        Ok(Connection {
            conn,
            pipelining,
            read_begun,
        })
    }

    /// Hands one message to the server over `slot`'s connection (opening one if needed).
    /// On any failure the connection is closed and `slot` left empty.
    pub(crate) async fn deliver(
        &self,
        slot: &mut Option<Connection>,
        envelope_from: &str,
        recipient: &str,
        raw: &[u8],
    ) -> Result<String, Failure> {
        let permanent = |stage, detail: String| Failure::new(stage, FailKind::Permanent, detail);
        let from = Address::from_str(envelope_from).map_err(|e| {
            permanent(
                Stage::Envelope,
                format!("invalid envelope sender {envelope_from:?}: {e}"),
            )
        })?;
        let to = Address::from_str(recipient).map_err(|e| {
            permanent(
                Stage::Envelope,
                format!("invalid recipient {recipient:?}: {e}"),
            )
        })?;

        // A kept connection may have been closed by the server while idle: that shows at MAIL,
        // before anything of the message has left, so one fresh connection is tried at once.
        let mut reused = slot.is_some();
        loop {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            let Some(conn) = slot.as_mut() else {
                unreachable!("a connection was just put in the slot")
            };
            let result = self.conversation(conn, &from, &to, raw).await;
            match result {
                Ok(response) => return Ok(response),
                Err(f) => {
                    // After a refusal the server is still listening and gets a QUIT; a
                    // broken or silent connection is just closed.
                    if let Some(mut c) = slot.take()
                        && matches!(f.kind, FailKind::Transient | FailKind::Permanent)
                    {
                        let _ = tokio::time::timeout(Duration::from_secs(2), c.conn.abort()).await;
                    }
                    if reused
                        && f.stage == Stage::Mail
                        && matches!(f.kind, FailKind::Network | FailKind::Timeout)
                    {
                        reused = false;
                        continue;
                    }
                    return Err(f);
                }
            }
        }
    }

    async fn conversation(
        &self,
        connection: &mut Connection,
        from: &Address,
        to: &Address,
        raw: &[u8],
    ) -> Result<String, Failure> {
        let conn = &mut connection.conn;
        let mut options = Vec::new();
        let info = conn.server_info();
        if !raw.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Failure::new(
                    Stage::Mail,
                    FailKind::Permanent,
                    "the message is 8-bit and the server does not offer 8BITMIME",
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if !(from.to_string().is_ascii() && to.to_string().is_ascii()) {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::new(
                    Stage::Mail,
                    FailKind::Permanent,
                    "the addresses are not ASCII and the server does not offer SMTPUTF8",
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        let mail = Mail::new(Some(from.clone()), options);
        if connection.pipelining {
            // The reply to MAIL comes with `command`; those to RCPT and DATA follow in order.
            self.timed(Stage::Mail, conn.command(Envelope { mail, rcpt: to }))
                .await?;
            self.timed(Stage::Rcpt, conn.read_response()).await?;
            self.timed(Stage::Data, conn.read_response()).await?;
        } else {
            self.timed(Stage::Mail, conn.command(mail)).await?;
            self.timed(Stage::Rcpt, conn.command(Rcpt::new(to.clone(), Vec::new())))
                .await?;
            self.timed(Stage::Data, conn.command(Data)).await?;
        }
        // From here the stream notes the first read: lettre reads the reply only after the
        // whole message and its end-of-data line were written and flushed (module docs).
        connection.read_begun.store(false, Ordering::SeqCst);
        let sent = match std::str::from_utf8(raw) {
            // The message, its transparency dots and the end-of-data line in one write.
            Ok(text) => self.timed(Stage::Body, conn.command(DataBody(text))).await,
            Err(_) => self.timed(Stage::Body, conn.message(raw)).await,
        };
        let response = sent.map_err(|mut f| {
            if connection.read_begun.load(Ordering::SeqCst) {
                f.stage = Stage::Reply;
            }
            f
        })?;
        let text: Vec<&str> = response.message().collect();
        Ok(format!("{} {}", response.code(), text.join(" ")))
    }

    /// Ends a kept connection politely.
    pub(crate) async fn close(&self, mut c: Connection) {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.conn.quit()).await;
    }
}

/// TLS for `implicit`: the system's web PKI roots plus the configured CA, ring as the crypto
/// provider, passed explicitly (a process-wide default would panic if another dependency ever
/// compiled in a second provider).
fn tls_connector(ca_pem: Option<&[u8]>) -> Result<TlsConnector, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| SendError::Tls(format!("bad certificate in ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| SendError::Tls(format!("unusable certificate in ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// An implicit-TLS handshake failure; an untrusted certificate is told apart, since it is a
/// configuration problem (or an attack) that no retry fixes.
fn tls_failure(e: &io::Error) -> Failure {
    let kind = if untrusted_certificate(e) {
        FailKind::Untrusted
    } else {
        FailKind::Network
    };
    Failure::new(Stage::Connect, kind, format!("TLS: {e}"))
}

/// Whether rustls refused the server's certificate, anywhere in `e`'s causes (lettre wraps it
/// in its own error for STARTTLS, tokio-rustls in an `io::Error` for implicit TLS).
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(tls, Some(rustls::Error::InvalidCertificate(_))) {
            return true;
        }
        next = err.source();
    }
    false
}

/// The connection's stream, noting when a read begins.
///
/// lettre writes a command (or a message) in full, flushes, and only then reads the reply;
/// it never reads while writing. So once a read has begun after the message was handed to
/// lettre, every byte of it, the end-of-data line included, has left this process: a failure
/// from then on (connection closed or reset, TLS error, timeout) may come after the server
/// took the message, and the message is `interrupted`, never retried (RFC 1047). A failure
/// before any read is a failed write: the server cannot have the end of data, and a retry
/// cannot duplicate. Under STARTTLS lettre's TLS layer sits above this stream; it, too, reads
/// only to serve a read.
struct Watched<S> {
    inner: S,
    read_begun: Arc<AtomicBool>,
}

impl<S> fmt::Debug for Watched<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Watched")
    }
}

impl<S: AsyncTokioStream> AsyncTokioStream for Watched<S> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.read_begun.store(true, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TLS stream lettre can talk over.
struct Tls(TlsStream<TcpStream>);

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{DataBody, describe};

    /// An error that prints its own text followed by its cause's, as lettre's do.
    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<Wrapped>>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)?;
            if let Some(inner) = &self.1 {
                write!(f, ": {inner}")?;
            }
            Ok(())
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        let e = Wrapped(
            "Connection error",
            Some(Box::new(Wrapped(
                "Connection error",
                Some(Box::new(Wrapped("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            describe(&e),
            "Connection error: Connection refused (os error 111)"
        );
        assert_eq!(describe(&Wrapped("tls error", None)), "tls error");
    }

    fn data(s: &str) -> String {
        DataBody(s).to_string()
    }

    #[test]
    fn dots_that_begin_lines_are_doubled() {
        assert_eq!(data(".a\r\n.b\r\nc.d\r\n"), "..a\r\n..b\r\nc.d\r\n.\r\n");
        assert_eq!(data("a\r\n.\r\nb"), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data("a\r\n..\r\n"), "a\r\n...\r\n.\r\n");
    }

    #[test]
    fn only_crlf_ends_a_line() {
        // A bare LF is not a line end in SMTP, so the dot after it is content.
        assert_eq!(data("a\n.b"), "a\n.b\r\n.\r\n");
        assert_eq!(data("a\r.b"), "a\r.b\r\n.\r\n");
    }

    #[test]
    fn the_end_of_data_line_follows_the_last_line() {
        assert_eq!(data("a\r\n"), "a\r\n.\r\n");
        assert_eq!(data("a"), "a\r\n.\r\n");
        assert_eq!(data("a\r\n\r\n"), "a\r\n\r\n.\r\n");
    }
}
