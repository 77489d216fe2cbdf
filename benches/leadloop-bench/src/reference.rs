//! The benchmark's reference: the least a Rust IMAP client can do to read a whole mailbox.
//!
//! One TLS connection (tokio-rustls, ring), LOGIN, SELECT INBOX, one `UID FETCH 1:*
//! BODY.PEEK[]`, bytes counted and dropped. leadloop's own ingest does strictly more work
//! (parse, classify, store), so its rate is reported next to this one as a fraction of it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub host: &'a str,
    pub tls_port: u16,
    pub ca_pem: &'a Path,
    pub user: &'a str,
    pub password: &'a str,
}

impl<'a> Target<'a> {
    /// The test kit's private Dovecot, over TLS, trusting its CA (`ca_pem`, the Dovecot's
    /// `ca_pem_path()`, kept alive by the caller).
    pub fn dovecot(dc: &'a leadloop_testkit::dovecot::Dovecot, ca_pem: &'a Path) -> Target<'a> {
        Target {
            host: dc.host(),
            tls_port: dc.tls_port(),
            ca_pem,
            user: dc.user(),
            password: dc.password(),
        }
    }
}

/// Result of one full-mailbox fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchStats {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl FetchStats {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A logged-in async-imap session over TLS.
pub type TlsSession = async_imap::Session<TlsStream<TcpStream>>;

/// Connects over implicit TLS trusting only the CA in `target.ca_pem`, reads the greeting and
/// logs in. The rustls ring provider is passed explicitly, so this works whether or not a
/// process-wide default provider is installed.
pub async fn connect(target: &Target<'_>) -> Result<TlsSession> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(target.ca_pem)
        .with_context(|| format!("reading CA file {}", target.ca_pem.display()))?
    {
        roots
            .add(cert.with_context(|| format!("parsing {}", target.ca_pem.display()))?)
            .context("adding the CA to the root store")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("rustls protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect((target.host, target.tls_port))
        .await
        .with_context(|| format!("connecting to {}:{}", target.host, target.tls_port))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(target.host.to_owned()).context("server name")?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let mut client = async_imap::Client::new(tls);
    client
        .read_response()
        .await
        .context("reading the IMAP greeting")?
        .ok_or_else(|| anyhow!("server closed the connection before greeting"))?;
    client
        .login(target.user, target.password)
        .await
        .map_err(|(e, _)| e)
        .context("IMAP LOGIN")
}

/// Connects, selects INBOX and fetches every message once; the timer covers all of it
/// (connect and TLS handshake included, as a real ingest pays them too).
pub async fn fetch_all(target: &Target<'_>) -> Result<FetchStats> {
    let start = Instant::now();
    let mut session = connect(target).await?;
    session.select("INBOX").await.context("SELECT INBOX")?;
    let mut messages = 0u64;
    let mut bytes = 0u64;
    {
        let mut stream = session
            .uid_fetch("1:*", "(UID BODY.PEEK[])")
            .await
            .context("UID FETCH 1:*")?;
        while let Some(fetch) = stream.try_next().await.context("reading FETCH responses")? {
            if let Some(body) = fetch.body() {
                messages += 1;
                bytes += body.len() as u64;
            }
        }
    }
    let elapsed = start.elapsed();
    session.logout().await.context("LOGOUT")?;
    Ok(FetchStats {
        messages,
        bytes,
        elapsed,
    })
}
