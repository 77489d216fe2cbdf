//! A small SMTP server on tokio for the faults Postfix's smtp-sink cannot script: fail once
//! then succeed, refuse the sender, drop the connection mid-DATA or right after the end of
//! data, reset it, close TLS, answer late. It speaks real SMTP over real sockets (and real TLS
//! with a test CA); each test scripts what it needs and checks both sides.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Faults to inject, consumed in order across all sessions; afterwards everything succeeds.
#[derive(Default)]
pub struct Script {
    /// Replies to successive `MAIL FROM` commands.
    pub mail: VecDeque<&'static str>,
    /// Replies to successive `RCPT TO` commands.
    pub rcpt: VecDeque<&'static str>,
    /// Replies to successive ends of data.
    pub data_end: VecDeque<&'static str>,
    /// Close the connection this many times after the first line of data.
    pub drop_mid_data: usize,
    /// What to do instead of replying, once each, after a whole message (its final dot) has
    /// arrived; the message then counts as received but not accepted.
    pub after_dot: VecDeque<AfterDot>,
    /// Wait this long before confirming the end of data.
    pub slow_data_end: Option<Duration>,
    /// TLS from the first byte, or after STARTTLS.
    pub tls: Option<(TlsStart, tokio_rustls::TlsAcceptor)>,
    /// Offer AUTH PLAIN and require this user and password.
    pub auth: Option<(&'static str, &'static str)>,
    /// Offer PIPELINING (RFC 2920): the client may then send MAIL, RCPT and DATA at once.
    pub pipelining: bool,
    /// Listen on `[::1]` instead of 127.0.0.1.
    pub ipv6: bool,
}

/// How a server can fail a client after the end of data, without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDot {
    /// Close the connection (TCP FIN), as a crashing or restarting server does.
    Close,
    /// Reset it (TCP RST: SO_LINGER 0).
    Reset,
    /// End TLS (close_notify), then close.
    TlsClose,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TlsStart {
    Implicit,
    Starttls,
}

/// A TLS acceptor with a certificate for 127.0.0.1 signed by a test CA; returns it and the
/// folder holding `ca.pem`.
pub fn test_tls() -> (tokio_rustls::TlsAcceptor, tempfile::TempDir) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    crate::dovecot::make_certs(dir.path()).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.path().join("cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(dir.path().join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), dir)
}

#[derive(Default)]
pub struct Shared {
    script: Script,
    /// (recipient, message) for every message confirmed with 250.
    accepted: Vec<(String, Vec<u8>)>,
    /// Complete messages received, confirmed or not.
    received: usize,
    /// Whether each accepted message came over TLS and after a successful AUTH.
    pub secured: Vec<(bool, bool)>,
}

pub struct TestSmtp {
    pub port: u16,
    pub shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestSmtp {
    pub async fn start(script: Script) -> TestSmtp {
        let address = if script.ipv6 {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let listener = TcpListener::bind(address).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            script,
            ..Shared::default()
        }));
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let _ = session(sock, s).await;
                });
            }
        });
        TestSmtp { port, shared, task }
    }

    /// (recipient, message) of every message confirmed with 250.
    pub fn accepted(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.lock().unwrap().accepted.clone()
    }

    /// Complete messages received (final dot seen), confirmed or not.
    pub fn received_data(&self) -> usize {
        self.shared.lock().unwrap().received
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn session(sock: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    use base64::Engine as _;
    let (tls, auth, pipelining, reset) = {
        let s = shared.lock().unwrap();
        (
            s.script.tls.clone(),
            s.script.auth,
            s.script.pipelining,
            s.script.after_dot.contains(&AfterDot::Reset),
        )
    };
    if reset {
        // Closing with SO_LINGER 0 sends RST instead of FIN. Deprecated because a non-zero
        // linger blocks the thread on drop; zero never does.
        #[allow(deprecated)]
        sock.set_linger(Some(Duration::ZERO))?;
    }
    let mut encrypted = false;
    let stream: Box<dyn Io> = match &tls {
        Some((TlsStart::Implicit, acceptor)) => {
            encrypted = true;
            Box::new(acceptor.accept(sock).await?)
        }
        _ => Box::new(sock),
    };
    let mut r = BufReader::new(stream);
    r.get_mut().write_all(b"220 test.example ESMTP\r\n").await?;
    let mut authenticated = false;
    let mut rcpt = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut ext = vec!["250-test.example", "250-8BITMIME"];
            if matches!(&tls, Some((TlsStart::Starttls, _))) && !encrypted {
                ext.push("250-STARTTLS");
            }
            if auth.is_some() {
                ext.push("250-AUTH PLAIN");
            }
            if pipelining {
                ext.push("250-PIPELINING");
            }
            ext.push("250 ENHANCEDSTATUSCODES");
            ext.join("\r\n") + "\r\n"
        } else if upper.starts_with("STARTTLS") {
            let Some((_, acceptor)) = &tls else {
                r.get_mut().write_all(b"502 5.5.1 No TLS here\r\n").await?;
                continue;
            };
            r.get_mut()
                .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await?;
            let plain = r.into_inner();
            r = BufReader::new(Box::new(acceptor.accept(plain).await?));
            encrypted = true;
            continue;
        } else if upper.starts_with("AUTH PLAIN ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(line[11..].trim())
                .unwrap_or_default();
            let expected = auth.map(|(u, p)| format!("\0{u}\0{p}").into_bytes());
            if Some(decoded) == expected {
                authenticated = true;
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") && auth.is_some() && !authenticated {
            "530 5.7.0 Authentication required\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            rcpt.clear();
            let scripted = shared.lock().unwrap().script.mail.pop_front();
            format!("{}\r\n", scripted.unwrap_or("250 2.0.0 Ok"))
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            rcpt.clear();
            "250 2.0.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let scripted = shared.lock().unwrap().script.rcpt.pop_front();
            let reply = scripted.unwrap_or("250 2.1.5 Ok");
            if reply.starts_with('2') {
                rcpt = line[8..].trim().trim_matches(['<', '>']).to_owned();
            }
            format!("{reply}\r\n")
        } else if upper.starts_with("DATA") && rcpt.is_empty() {
            // What a pipelined DATA after a refused RCPT gets (RFC 2920 §3.1).
            "554 5.5.1 Error: no valid recipients\r\n".into()
        } else if upper.starts_with("DATA") {
            r.get_mut()
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = Vec::new();
            let mut first = true;
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if first {
                    first = false;
                    let mut s = shared.lock().unwrap();
                    if s.script.drop_mid_data > 0 {
                        s.script.drop_mid_data -= 1;
                        return Ok(()); // the connection closes with the message half sent
                    }
                }
                if line == ".\r\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.extend_from_slice(l.as_bytes());
            }
            let (scripted, slow, after_dot) = {
                let mut s = shared.lock().unwrap();
                s.received += 1;
                (
                    s.script.data_end.pop_front(),
                    s.script.slow_data_end.take(),
                    s.script.after_dot.pop_front(),
                )
            };
            match after_dot {
                // Dropping the stream closes it (with RST when linger is 0).
                Some(AfterDot::Close | AfterDot::Reset) => return Ok(()),
                Some(AfterDot::TlsClose) => {
                    r.get_mut().shutdown().await?;
                    return Ok(());
                }
                None => {}
            }
            if let Some(d) = slow {
                tokio::time::sleep(d).await;
            }
            let reply = scripted.unwrap_or("250 2.0.0 Ok: queued");
            if reply.starts_with('2') {
                let mut s = shared.lock().unwrap();
                s.accepted.push((rcpt.clone(), data));
                s.secured.push((encrypted, authenticated));
            }
            format!("{reply}\r\n")
        } else if upper.starts_with("QUIT") {
            r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognised\r\n".into()
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
    }
}
