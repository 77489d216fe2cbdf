//! Loading and validating `leadloop.toml`.
//!
//! Users keep this file in git and edit it by hand, so every problem is reported with the file,
//! line, column and key, all problems at once rather than the first one only, and unknown keys
//! are errors (a misspelt `max_mesage_bytes` must not silently fall back to a default).
//!
//! Relative paths in the file are resolved against the file's own directory, never the working
//! directory, because under systemd the working directory is `/`.
//!
//! Secrets (the IMAP password, a PostgreSQL URL with a password) are never accepted inline: they
//! come from an environment variable, a file, or a systemd credential, and [`Secret`] redacts
//! itself in `Debug` so it cannot leak into a log line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::classify::{ChannelRule, FormProfile, Rules};
pub use crate::diagnostics::Problem;
use crate::domain::EmailAddress;
use crate::sequence::{self, Catalog, Policy, Sender, Windows};

mod digest;
mod retention;
mod sales;
mod score;
mod spam;
mod users;

pub use retention::RetentionConfig;
pub use spam::{Rspamd, SpamConfig};
pub use users::{Role, WebUser};

/// The path, under `[http] public_url`, of the one-click unsubscribe page: the default
/// `[sequences] unsubscribe_url` is `{public_url}/u/{token}`.
pub const UNSUBSCRIBE_PATH: &str = "/u/";

/// Default ceiling on the size of a message that is fetched and parsed whole (25 MiB).
const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from, for messages.
    pub path: PathBuf,
    /// Where the leads store lives.
    pub database: DatabaseConfig,
    /// The mailboxes inbound mail comes from, in file order: `[imap]` or `[maildir]` first,
    /// then each `[[mailbox]]`. Never empty.
    pub mailboxes: Vec<MailboxConfig>,
    /// Who "we" are: never leads.
    pub identity: IdentityConfig,
    /// Channel attribution rules, first match wins.
    pub channels: Vec<ChannelRule>,
    /// Form profiles, tried before the built-in ones.
    pub forms: Vec<FormProfile>,
    /// Sequences, templates, senders and the send policy; empty without `[sequences]`.
    pub sequences: std::sync::Arc<Catalog>,
    /// How outbound mail leaves; `None` when the file has no `[smtp]` (nothing is sent).
    pub smtp: Option<SmtpConfig>,
    /// The sending identities (`[[sender]]`), in file order: the first is the default, and
    /// what `send-test` sends as, with or without sequences.
    pub senders: Vec<crate::sequence::Sender>,
    /// What classified messages do to leads: owner routing (`[[route]]`), hand-offs to Sales
    /// (`[handoff]`) and the loop policy (`[policy] ooo_default_pause`, `soft_bounce_*`).
    pub actions: crate::actions::settings::Settings,
    /// `[http]`: the listener for health checks and one-click unsubscribe; off by default.
    pub http: HttpConfig,
    /// `[spam]`: how spam filters' verdicts count, and the rspamd to ask, if any.
    pub spam: SpamConfig,
    /// `[[score]]` rules and `[handoff] min_score`.
    pub scoring: crate::actions::score::Scoring,
    /// `[retention]`: how long stored message bodies are kept; forever by default.
    pub retention: RetentionConfig,
    /// `[[digest]]`: reports mailed on a schedule, in file order.
    pub digests: Vec<crate::actions::digest::DigestSpec>,
    /// `[[user]]`: who may sign in to the web view, and with which role.
    pub users: Vec<WebUser>,
}

/// How long a web session lasts when `[http] session_lifetime` does not say.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// `[http]`: where the daemon answers HTTP (health checks, one-click unsubscribe, the web
/// view), and the address people and mail providers reach it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The address to listen on; `None` (the default) runs no listener. A port alone means
    /// the loopback address: nothing listens beyond this machine unless the file says so.
    pub listen: Option<SocketAddr>,
    /// The listener's public base URL (`https://leads.company.com`, no trailing `/`), as a
    /// reverse proxy publishes it: links in messages point there.
    pub public_url: Option<String>,
    /// A second address that serves `/metrics` (and the health checks) alone, so Prometheus
    /// can reach it on a network where the public pages are not, and the public listener
    /// shows no metrics; `None` serves `/metrics` on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a web sign-in lasts before the person signs in again.
    pub session_lifetime: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            listen: None,
            public_url: None,
            metrics_listen: None,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }
}

/// `[smtp]`: where the sender hands messages over, and how patiently.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// A real SMTP server, or a folder of `.eml` files.
    pub transport: SmtpTransport,
    /// Envelope sender (`MAIL FROM`, where bounces go) for messages that do not name one;
    /// `None` means the message's From address.
    pub envelope_from: Option<EmailAddress>,
    /// Sequence mail goes out with a per-enrollment envelope sender
    /// (`bounces+bounce-TOKEN@…`), so any bounce names the lead it is about.
    pub verp: bool,
    /// Parallel connections (each has at most one message in flight).
    pub connections: u32,
    /// Longest wait for the server at each step of a conversation.
    pub timeout: Duration,
    /// First retry delay after a temporary failure; doubles with every attempt.
    pub retry_initial: Duration,
    /// Longest delay between two attempts.
    pub retry_max_interval: Duration,
    /// After this long since it was enqueued, a message that still fails temporarily fails
    /// for good.
    pub retry_max_age: Duration,
    /// Sending pauses when this many different recipients in a row are refused with the same
    /// reply (a server refusing everyone is refusing us); 0 turns this breaker off.
    pub pause_after_refusals: u32,
}

/// Where `[smtp] transport` sends messages.
#[derive(Debug, Clone)]
pub enum SmtpTransport {
    /// An SMTP server.
    Smtp(SmtpServer),
    /// `file:DIR`: every message becomes `DIR/<Message-ID>.eml` (demo, staging).
    File(PathBuf),
}

/// The SMTP server of `[smtp] transport = "smtp"`.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    /// Host name or IP address (also the TLS server name); an IPv6 address without the
    /// brackets the file writes it in.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// An extra CA certificate (PEM) to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name sent in EHLO; `None` means this machine's host name.
    pub hello_name: Option<String>,
    /// AUTH user and where the password comes from; `None` sends without AUTH.
    pub auth: Option<(String, SecretSource)>,
}

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connection URL (`sqlite://…` or `postgres://…`); may hold a password, hence a secret.
    pub url: SecretSource,
    /// Pool size.
    pub max_connections: u32,
}

/// The inbound mail source: exactly one of `[imap]` and `[maildir]`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A real mailbox on an IMAP server.
    Imap(ImapConfig),
    /// A local Maildir folder (demo, tests, or a mailbox delivered on the same host).
    Maildir(MaildirConfig),
}

impl SourceConfig {
    /// How often the mailbox is read at the least: `poll_interval`, which with IMAP IDLE is
    /// the longest wait before a re-check.
    pub fn poll_interval(&self) -> Duration {
        match self {
            SourceConfig::Imap(imap) => imap.poll_interval,
            SourceConfig::Maildir(md) => md.poll_interval,
        }
    }
}

/// One mailbox to read: `[imap]`, `[maildir]` or a `[[mailbox]]` entry.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// The entry's name, as logs and `leads show` give it: `name`, or `imap` / `maildir` for
    /// the single-table forms.
    pub name: String,
    /// Where the file gives it, as problems name it: `imap`, `maildir` or `mailbox[2]`.
    pub table: String,
    /// Where its mail is.
    pub source: SourceConfig,
    /// The channel of leads first seen here when no channel rule, `utm_source` or plus tag
    /// gives one (instead of `direct`).
    pub channel: Option<String>,
    /// The owner of new leads from here that no `[[route]]` gives one (before `[handoff]
    /// default_owner`).
    pub owner: Option<EmailAddress>,
}

impl MailboxConfig {
    /// The key the mailbox's cursor, lease and recorded messages are stored under. It names
    /// the mailbox itself (server, user and folder, or the Maildir's path), not the entry, so
    /// renaming an entry, or moving `[imap]` into a `[[mailbox]]`, keeps the position.
    pub fn key(&self) -> String {
        self.source.key()
    }
}

impl SourceConfig {
    /// See [`MailboxConfig::key`].
    pub fn key(&self) -> String {
        match self {
            SourceConfig::Imap(imap) => imap.key(),
            SourceConfig::Maildir(md) => maildir_key(&md.path),
        }
    }
}

impl ImapConfig {
    /// `imap://user@host:port/folder`: see [`MailboxConfig::key`].
    pub fn key(&self) -> String {
        format!(
            "imap://{}@{}:{}/{}",
            self.user, self.host, self.port, self.mailbox
        )
    }
}

/// `maildir:/absolute/path`: see [`MailboxConfig::key`].
pub fn maildir_key(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    format!("maildir:{}", path.display())
}

/// How to secure the IMAP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS before login (port 143).
    Starttls,
    /// No encryption: only accepted for loopback hosts.
    None,
}

/// What to do with a message once it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterProcessing {
    /// Set the `\Seen` flag.
    Flag,
    /// Move it to another folder.
    Move(String),
    /// Leave it untouched.
    None,
}

/// `[imap]`.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Server host name (also the TLS server name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// An extra CA certificate (PEM) to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Login name.
    pub user: String,
    /// Where the password comes from.
    pub password: SecretSource,
    /// Folder to read.
    pub mailbox: String,
    /// What to do after recording a message.
    pub after: AfterProcessing,
    /// How often to look for new mail when IDLE is unavailable or disabled.
    pub poll_interval: Duration,
    /// How long the server may stay silent in one step (connect, TLS handshake, greeting,
    /// login, one answer of a command) before the connection counts as dead: a server that
    /// stops answering is noticed within `poll_interval` + `timeout`.
    pub timeout: Duration,
    /// Whether to use IMAP IDLE when the server offers it.
    pub idle: bool,
    /// Messages larger than this are recorded as ignored without being fetched whole.
    pub max_message_bytes: u64,
    /// Messages per fetch. A transaction records one fetch, or several when they were fetched
    /// while the previous one was being written.
    pub batch_size: u32,
}

/// `[maildir]`.
#[derive(Debug, Clone)]
pub struct MaildirConfig {
    /// The Maildir folder (the one holding `new/` and `cur/`).
    pub path: PathBuf,
    /// How often to look for new files.
    pub poll_interval: Duration,
    /// Messages larger than this are recorded as ignored without being read whole.
    pub max_message_bytes: u64,
    /// Messages recorded per transaction.
    pub batch_size: u32,
}

/// `[identity]`.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// Our own addresses (the monitored inbox, sending identities).
    pub addresses: Vec<EmailAddress>,
    /// Our own domains.
    pub domains: Vec<String>,
    /// Sales addresses.
    pub sales: Vec<EmailAddress>,
}

/// Where a secret comes from. The value itself is only read by [`SecretSource::resolve`].
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Given in the file; only for values that are not secret (a SQLite path).
    Plain(String),
    /// An environment variable's name.
    Env(String),
    /// A file holding the secret (trailing newline removed).
    File(PathBuf),
    /// A systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Plain(_) => f.write_str("Plain(<redacted>)"),
            SecretSource::Env(name) => write!(f, "Env({name})"),
            SecretSource::File(path) => write!(f, "File({})", path.display()),
            SecretSource::Credential(name) => write!(f, "Credential({name})"),
        }
    }
}

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl SecretSource {
    /// Reads the secret. Called by the daemon and CLI, the only parts that read the environment.
    ///
    /// # Errors
    /// Names the variable, file or credential that could not be read, never its content.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretSource::Plain(v) => Ok(Secret(v.clone())),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretSource::File(path) => read_secret_file(path),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    format!("credential {name}: $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)")
                })?;
                read_secret_file(&Path::new(&dir).join(name))
            }
        }
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(format!("secret file {} is empty", path.display()));
    }
    Ok(Secret(value))
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// All problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

// ---- The file's shape, as serde sees it. ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    database: Spanned<RawDatabase>,
    imap: Option<Spanned<RawImap>>,
    maildir: Option<Spanned<RawMaildir>>,
    #[serde(default)]
    mailbox: Vec<Spanned<RawMailbox>>,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    channel: Vec<RawChannel>,
    #[serde(default)]
    form: Vec<RawForm>,
    sequences: Option<Spanned<RawSequences>>,
    policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    sender: Vec<Spanned<RawSender>>,
    smtp: Option<Spanned<RawSmtp>>,
    handoff: Option<sales::RawHandoff>,
    #[serde(default)]
    route: Vec<Spanned<sales::RawRoute>>,
    http: Option<RawHttp>,
    spam: Option<spam::RawSpam>,
    #[serde(default)]
    score: Vec<Spanned<score::RawScore>>,
    retention: Option<retention::RawRetention>,
    #[serde(default)]
    digest: Vec<Spanned<digest::RawDigest>>,
    #[serde(default)]
    user: Vec<Spanned<users::RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    session_lifetime: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSequences {
    dir: Option<String>,
    templates: Option<String>,
    inbox: Option<Spanned<String>>,
    unsubscribe_url: Option<Spanned<String>>,
    #[serde(default)]
    reply_to_token: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    lead_timezone_fields: Vec<String>,
    #[serde(default)]
    windows: Vec<Spanned<String>>,
    per_domain_per_day: Option<u32>,
    per_lead_per_day: Option<u32>,
    jitter: Option<Spanned<String>>,
    ooo_default_pause: Option<Spanned<String>>,
    soft_bounce_limit: Option<Spanned<u32>>,
    soft_bounce_window: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSender {
    name: Spanned<String>,
    address: Spanned<String>,
    display_name: Option<String>,
    per_minute: Option<u32>,
    per_hour: Option<u32>,
    per_day: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    #[serde(default = "default_transport")]
    transport: Spanned<String>,
    host: Option<Spanned<String>>,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: Spanned<TlsMode>,
    ca_file: Option<Spanned<String>>,
    hello_name: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_credential: Option<String>,
    envelope_from: Option<Spanned<String>>,
    verp: Option<bool>,
    connections: Option<Spanned<u32>>,
    timeout: Option<Spanned<String>>,
    retry_initial: Option<Spanned<String>>,
    retry_max_interval: Option<Spanned<String>>,
    retry_max_age: Option<Spanned<String>>,
    pause_after_refusals: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<Spanned<String>>,
    url_env: Option<String>,
    url_file: Option<String>,
    url_credential: Option<String>,
    max_connections: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: Spanned<String>,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: Spanned<TlsMode>,
    ca_file: Option<Spanned<String>>,
    user: Spanned<String>,
    password: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_credential: Option<String>,
    #[serde(default = "default_mailbox")]
    mailbox: String,
    #[serde(default = "default_after")]
    after: Spanned<String>,
    poll_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    #[serde(default = "default_true")]
    idle: bool,
    max_message_bytes: Option<Spanned<u64>>,
    batch_size: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaildir {
    path: Spanned<String>,
    poll_interval: Option<Spanned<String>>,
    max_message_bytes: Option<Spanned<u64>>,
    batch_size: Option<Spanned<u32>>,
}

/// A `[[mailbox]]` entry: the `[imap]` keys (with `folder` for the folder), or a Maildir
/// `path` with the `[maildir]` keys, plus what belongs to the entry itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<u16>,
    tls: Option<Spanned<TlsMode>>,
    ca_file: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_env: Option<String>,
    password_file: Option<String>,
    password_credential: Option<String>,
    folder: Option<String>,
    after: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    idle: Option<bool>,
    max_message_bytes: Option<Spanned<u64>>,
    batch_size: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    sales: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    #[serde(default)]
    recipients: Vec<Spanned<String>>,
    #[serde(default)]
    plus_tags: Vec<String>,
    #[serde(default)]
    utm_sources: Vec<String>,
    #[serde(default)]
    forms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    name: Spanned<String>,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    subject_contains: Vec<String>,
    #[serde(default)]
    body_contains: Vec<String>,
    #[serde(default)]
    email_fields: Vec<String>,
    #[serde(default)]
    name_fields: Vec<String>,
    #[serde(default)]
    company_fields: Vec<String>,
    #[serde(default)]
    phone_fields: Vec<String>,
}

fn default_tls() -> Spanned<TlsMode> {
    Spanned::new(0..0, TlsMode::Implicit)
}
fn default_transport() -> Spanned<String> {
    Spanned::new(0..0, "smtp".to_owned())
}
fn default_mailbox() -> String {
    "INBOX".to_owned()
}
fn default_after() -> Spanned<String> {
    Spanned::new(0..0, "flag".to_owned())
}
fn default_true() -> bool {
    true
}

/// Collects problems with their position while a file is validated.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let problem = Problem::at(self.file, self.text, span, key, message);
        self.problems.push(problem);
    }

    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = value else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            Ok(_) => {
                self.at(v.span(), key, "must be at least 1s");
                default
            }
            Err(e) => {
                self.at(
                    v.span(),
                    key,
                    format!(
                        "'{}' is not a duration like \"60s\" or \"5m\": {e}",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn address(&mut self, v: &Spanned<String>, key: &str) -> Option<EmailAddress> {
        match EmailAddress::parse(v.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.at(
                    v.span(),
                    key,
                    format!("'{}' is not an email address: {e}", v.get_ref()),
                );
                None
            }
        }
    }

    fn positive_u32(&mut self, v: Option<&Spanned<u32>>, key: &str, default: u32) -> u32 {
        match v {
            Some(v) if *v.get_ref() == 0 => {
                self.at(v.span(), key, "must be at least 1");
                default
            }
            Some(v) => *v.get_ref(),
            None => default,
        }
    }

    fn max_bytes(&mut self, v: Option<&Spanned<u64>>, key: &str) -> u64 {
        match v {
            Some(v) if *v.get_ref() < 1024 => {
                self.at(v.span(), key, "must be at least 1024 bytes");
                DEFAULT_MAX_MESSAGE_BYTES
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Picks the one secret source among the `NAME_env`, `NAME_file`, `NAME_credential` keys.
    fn secret(
        &mut self,
        span: Range<usize>,
        key: &str,
        env: Option<&String>,
        file: Option<&String>,
        credential: Option<&String>,
        dir: &Path,
    ) -> Option<SecretSource> {
        let mut found = Vec::new();
        if let Some(name) = env {
            found.push(SecretSource::Env(name.clone()));
        }
        if let Some(path) = file {
            found.push(SecretSource::File(resolve_path(dir, path)));
        }
        if let Some(name) = credential {
            if name.contains('/') || name.is_empty() {
                self.at(
                    span.clone(),
                    &format!("{key}_credential"),
                    "a credential name is a plain file name",
                );
            }
            found.push(SecretSource::Credential(name.clone()));
        }
        if found.len() > 1 {
            self.at(
                span,
                key,
                format!("give only one of {key}_env, {key}_file, {key}_credential"),
            );
            return None;
        }
        found.pop()
    }
}

/// `[sequences] dir` and `templates` (defaults filled in) of a file whose TOML did not
/// deserialize, when it has a `[sequences]` table: read as a plain TOML table, or, when the
/// file is not even valid TOML, line by line. `None` when there is no `[sequences]`.
fn lenient_sequence_dirs(text: &str) -> Option<(String, String)> {
    let (dir, templates) = match text.parse::<toml::Table>() {
        Ok(table) => {
            let seq = table.get("sequences")?.as_table()?;
            let get = |k: &str| seq.get(k).and_then(toml::Value::as_str).map(str::to_owned);
            (get("dir"), get("templates"))
        }
        Err(_) => {
            let mut found = false;
            let mut inside = false;
            let (mut dir, mut templates) = (None, None);
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    inside = line.split('#').next().map(str::trim) == Some("[sequences]");
                    found |= inside;
                    continue;
                }
                if !inside {
                    continue;
                }
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                // A basic string value only; anything else is left to the default.
                let value = value.trim();
                let Some(value) = value
                    .strip_prefix('"')
                    .and_then(|v| v.split_once('"'))
                    .map(|(v, _)| v.to_owned())
                    .filter(|v| !v.contains('\\'))
                else {
                    continue;
                };
                match key.trim() {
                    "dir" => dir = Some(value),
                    "templates" => templates = Some(value),
                    _ => {}
                }
            }
            if !found {
                return None;
            }
            (dir, templates)
        }
    };
    Some((
        dir.unwrap_or_else(|| "sequences".to_owned()),
        templates.unwrap_or_else(|| "templates".to_owned()),
    ))
}

fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        dir.join(p)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || unbracket(host)
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Makes a relative `sqlite:` URL relative to the configuration's directory.
fn resolve_sqlite_url(dir: &Path, url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url.to_owned();
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    if rest.starts_with('/') || rest.starts_with(":memory:") || rest.is_empty() {
        return url.to_owned();
    }
    // Absolute, because sqlx parses the URL with a URL parser, which would read a relative
    // `sqlite://config/…` as a host name.
    let path = dir.join(rest);
    let path = std::path::absolute(&path).unwrap_or(path);
    format!("sqlite://{}", path.display())
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                file: path.to_owned(),
                line: None,
                column: None,
                key: None,
                message: format!("cannot read the configuration: {e}"),
            }],
        })?;
        Self::parse(&text, path)
    }

    /// Validates configuration text as if it had been read from `path` (which anchors relative
    /// paths and names the file in messages).
    ///
    /// # Errors
    /// Every problem found, each with file, line and key.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let dir = path
            .parent()
            .map(Path::to_owned)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let mut ck = Checker {
            file: path,
            text,
            problems: Vec::new(),
        };

        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let mut problems = vec![Problem::from_toml(path, text, &e)];
                // The rest of leadloop.toml cannot be judged, but the sequence files can be
                // on their own, so one `check` shows the mistakes of both.
                if let Some((seq_dir, templates)) = lenient_sequence_dirs(text) {
                    sequence::check_files(
                        &resolve_path(&dir, &seq_dir),
                        &resolve_path(&dir, &templates),
                        &mut problems,
                    );
                }
                return Err(ConfigError { problems });
            }
        };

        let database = check_database(&mut ck, raw.database, &dir);
        let mailboxes = check_mailboxes(&mut ck, raw.imap, raw.maildir, raw.mailbox, &dir);
        let mut identity = check_identity(&mut ck, &raw.identity, &mailboxes);
        let channels = check_channels(&mut ck, &raw.channel);
        let forms = check_forms(&mut ck, &raw.form);
        check_channel_forms(&mut ck, &raw.channel, &channels, &forms);

        // [[sender]], [policy], [smtp], [sequences]
        let senders = check_senders(&mut ck, &raw.sender);
        for s in &senders {
            // Sending identities are ours: their mail is never a lead, and their domain is
            // where our Message-IDs live, which replies are recognised by.
            if !identity.addresses.contains(&s.address) {
                identity.addresses.push(s.address.clone());
            }
        }
        let policy = check_policy(&mut ck, raw.policy.as_ref());
        let actions = sales::check_actions(
            &mut ck,
            raw.handoff,
            &raw.route,
            raw.policy.as_ref(),
            &senders,
        );
        for route in &actions.routing.routes {
            // Mail to a route's recipient is mail to us: the classifier must see it that way
            // for the route to match at all.
            for a in &route.recipients {
                if !identity.addresses.contains(a) {
                    identity.addresses.push(a.clone());
                }
            }
        }
        let smtp = raw.smtp.map(|smtp| check_smtp(&mut ck, smtp, &dir));
        let http = raw
            .http
            .map(|http| check_http(&mut ck, &http))
            .unwrap_or_default();
        let spam = spam::check_spam(&mut ck, raw.spam.as_ref());
        let scoring = score::check_scoring(&mut ck, &raw.score, actions.handoff.min_score);
        let retention = retention::check_retention(&mut ck, raw.retention.as_ref());
        let digests = digest::check_digests(&mut ck, &raw.digest, &senders, smtp.as_ref());
        let users = users::check_users(&mut ck, &raw.user);

        let settings = raw.sequences.map(|seq| {
            // The first IMAP mailbox's address, else our first own address.
            let fallback_inbox = mailboxes
                .iter()
                .find_map(|m| match &m.source {
                    SourceConfig::Imap(imap) => Some(EmailAddress::parse(&imap.user).ok()),
                    SourceConfig::Maildir(_) => None,
                })
                .flatten()
                .or_else(|| identity.addresses.first().cloned());
            check_sequences(
                &mut ck,
                seq,
                &dir,
                fallback_inbox,
                &policy,
                &senders,
                smtp.as_ref(),
                http.public_url.as_deref(),
            )
        });

        if !ck.problems.is_empty() {
            ck.problems.sort_by_key(|p| p.line.unwrap_or(0));
            // The sequence files are still read and checked with what leadloop.toml gives, so
            // one `check` reports their problems too; the configuration is refused either way.
            if let Some(settings) = settings {
                sequence::load(settings, &mut ck.problems);
            }
            return Err(ConfigError {
                problems: ck.problems,
            });
        }
        // The sequence files are only read once leadloop.toml itself is sound.
        let sequences = match settings {
            Some(settings) => {
                let mut problems = Vec::new();
                let catalog = sequence::load(settings, &mut problems);
                if !problems.is_empty() {
                    return Err(ConfigError { problems });
                }
                catalog
            }
            // The team's zone and caps hold without sequences too: reports count in that zone.
            None => {
                let mut catalog = Catalog::empty();
                catalog.settings.policy = policy.clone();
                catalog
            }
        };
        Ok(Config {
            path: path.to_owned(),
            database,
            mailboxes,
            identity,
            channels,
            forms,
            sequences: std::sync::Arc::new(sequences),
            smtp,
            senders,
            actions,
            http,
            spam,
            scoring,
            retention,
            digests,
            users,
        })
    }

    /// The classifier's view of this configuration.
    pub fn rules(&self) -> Rules {
        Rules {
            own_addresses: self.identity.addresses.clone(),
            own_domains: self.identity.domains.clone(),
            sales: self.sales(),
            channels: self.channels.clone(),
            forms: self.forms.clone(),
            spam: self.spam.rules.clone(),
        }
    }

    /// The longest `poll_interval` of the mailboxes: the readiness check gives every
    /// mailbox that long to be read.
    pub fn poll_interval(&self) -> Duration {
        self.mailboxes
            .iter()
            .map(|m| m.source.poll_interval())
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    /// The name of the mailbox whose messages are recorded under `key`; the key itself for a
    /// mailbox the file no longer reads.
    pub fn mailbox_name<'a>(&'a self, key: &'a str) -> &'a str {
        self.mailboxes
            .iter()
            .find(|m| m.key() == key)
            .map_or(key, |m| m.name.as_str())
    }

    /// Sales addresses for the classifier: `[identity] sales`, then every owner `[[route]]`s,
    /// `[handoff] default_owner` and `[[mailbox]] owner` name, each once, so their answers to hand-offs are
    /// recorded as Sales' feedback.
    fn sales(&self) -> Vec<EmailAddress> {
        let mut sales = self.identity.sales.clone();
        let mailbox_owners = self.mailboxes.iter().filter_map(|m| m.owner.clone());
        for owner in self
            .actions
            .routing
            .owners()
            .into_iter()
            .chain(mailbox_owners)
        {
            if !sales.contains(&owner) {
                sales.push(owner);
            }
        }
        sales
    }

    /// Checks that every secret the configuration names can be read, without showing any.
    ///
    /// A systemd credential exists only inside the service (`$CREDENTIALS_DIRECTORY`, which
    /// the unit's `ExecStartPre=leadloop check` has): run by hand, where the variable is not
    /// set, it cannot be read and is not a problem. Those keys are returned, with their
    /// credential's name, so the caller can say what was left unchecked.
    ///
    /// # Errors
    /// One problem per unreadable secret.
    pub fn check_secrets(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let outside_service = std::env::var_os("CREDENTIALS_DIRECTORY").is_none();
        let mut problems = Vec::new();
        let mut unchecked = Vec::new();
        let mut check = |key: &str, source: &SecretSource| {
            if let SecretSource::Credential(name) = source
                && outside_service
            {
                unchecked.push((key.to_owned(), name.clone()));
                return;
            }
            if let Err(message) = source.resolve() {
                problems.push(Problem {
                    file: self.path.clone(),
                    line: None,
                    column: None,
                    key: Some(key.to_owned()),
                    message,
                });
            }
        };
        check("database.url", &self.database.url);
        for m in &self.mailboxes {
            if let SourceConfig::Imap(imap) = &m.source {
                check(&format!("{}.password", m.table), &imap.password);
            }
        }
        if let Some(SmtpConfig {
            transport:
                SmtpTransport::Smtp(SmtpServer {
                    auth: Some((_, password)),
                    ..
                }),
            ..
        }) = &self.smtp
        {
            check("smtp.password", password);
        }
        if problems.is_empty() {
            Ok(unchecked)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// `[database]`: a URL, from the file only when it holds no password.
fn check_database(ck: &mut Checker<'_>, raw: Spanned<RawDatabase>, dir: &Path) -> DatabaseConfig {
    let db_span = raw.span();
    let db = raw.into_inner();
    let secret = ck.secret(
        db_span.clone(),
        "database.url",
        db.url_env.as_ref(),
        db.url_file.as_ref(),
        db.url_credential.as_ref(),
        dir,
    );
    let url = match (db.url, secret) {
        (Some(u), None) => {
            if u.get_ref().starts_with("postgres") && url_has_password(u.get_ref()) {
                ck.at(
                    u.span(),
                    "database.url",
                    "a URL with a password must come from url_env, url_file or url_credential",
                );
            }
            if !(u.get_ref().starts_with("sqlite:") || u.get_ref().starts_with("postgres")) {
                ck.at(
                    u.span(),
                    "database.url",
                    "expected a sqlite:// or postgres:// URL",
                );
            }
            SecretSource::Plain(resolve_sqlite_url(dir, u.get_ref()))
        }
        (None, Some(s)) => s,
        (Some(u), Some(_)) => {
            ck.at(
                u.span(),
                "database.url",
                "give either url or one of url_env, url_file, url_credential",
            );
            SecretSource::Plain(String::new())
        }
        (None, None) => {
            ck.at(
                db_span,
                "database",
                "missing url (or url_env, url_file, url_credential)",
            );
            SecretSource::Plain(String::new())
        }
    };
    DatabaseConfig {
        url,
        max_connections: ck.positive_u32(
            db.max_connections.as_ref(),
            "database.max_connections",
            4,
        ),
    }
}

/// A folder name with an empty level (`/Leads`, `Leads//Done`, `Leads/`): `/` separates
/// levels on every server (it becomes the server's delimiter), so such a name cannot be right.
fn has_empty_level(folder: &str) -> bool {
    !folder.is_empty() && folder.split('/').any(str::is_empty)
}

fn empty_level_problem(folder: &str) -> String {
    format!(
        "\"{folder}\" has an empty level: folder names use / between levels, as in \"Archive/2024\""
    )
}

/// `[imap]` or `[maildir]` (one of them), and the `[[mailbox]]` entries: the mailboxes to
/// read, at least one, each named once and read by one entry only.
fn check_mailboxes(
    ck: &mut Checker<'_>,
    imap: Option<Spanned<RawImap>>,
    maildir: Option<Spanned<RawMaildir>>,
    entries: Vec<Spanned<RawMailbox>>,
    dir: &Path,
) -> Vec<MailboxConfig> {
    let mut out: Vec<(String, MailboxConfig)> = Vec::new();
    let single_given = imap.is_some() || maildir.is_some();
    let single = |name: &str, source| MailboxConfig {
        name: name.to_owned(),
        table: name.to_owned(),
        source,
        channel: None,
        owner: None,
    };
    match (imap, maildir) {
        (Some(imap), None) => {
            let source = SourceConfig::Imap(check_imap(ck, imap, dir, "imap", "imap.mailbox"));
            out.push(("[imap]".to_owned(), single("imap", source)));
        }
        (None, Some(md)) => {
            let source = SourceConfig::Maildir(check_maildir(ck, md.into_inner(), dir, "maildir"));
            out.push(("[maildir]".to_owned(), single("maildir", source)));
        }
        (Some(imap), Some(_)) => ck.at(
            imap.span(),
            "imap",
            "give either [imap] or [maildir], not both; several mailboxes are [[mailbox]] entries",
        ),
        (None, None) => {}
    }
    for (i, entry) in entries.into_iter().enumerate() {
        let span = entry.span();
        let prefix = format!("mailbox[{i}]");
        let Some(mailbox) = check_mailbox_entry(ck, entry.into_inner(), span.clone(), &prefix, dir)
        else {
            continue;
        };
        if let Some((other, _)) = out.iter().find(|(_, m)| m.name == mailbox.name) {
            ck.at(
                span.clone(),
                &format!("{prefix}.name"),
                format!("'{}' is already the name of {other}", mailbox.name),
            );
        }
        let key = mailbox.key();
        if let Some((other, _)) = out.iter().find(|(_, m)| m.key() == key) {
            ck.at(
                span,
                &prefix,
                format!("reads the same mailbox as {other} ({key}): give each mailbox once"),
            );
        }
        out.push((prefix, mailbox));
    }
    if out.is_empty() && !single_given {
        ck.at(
            0..0,
            "imap",
            "missing [imap], [maildir] or [[mailbox]]: leadloop needs a mailbox to read",
        );
    }
    out.into_iter().map(|(_, m)| m).collect()
}

/// Keys of an IMAP entry that a Maildir entry cannot have.
const IMAP_ONLY: &str = "host, port, tls, ca_file, user, password_*, folder, after, timeout, idle";

/// One `[[mailbox]]` entry, its problems under `prefix` (`mailbox[2].host`). `None` when it
/// is not clear what it reads.
fn check_mailbox_entry(
    ck: &mut Checker<'_>,
    raw: RawMailbox,
    span: Range<usize>,
    prefix: &str,
    dir: &Path,
) -> Option<MailboxConfig> {
    let key = |k: &str| format!("{prefix}.{k}");
    let name = match &raw.name {
        Some(n) if !n.get_ref().trim().is_empty() && !n.get_ref().contains(['\r', '\n']) => {
            n.get_ref().trim().to_owned()
        }
        Some(n) => {
            ck.at(n.span(), &key("name"), "must not be empty");
            String::new()
        }
        None => {
            ck.at(
                span.clone(),
                &key("name"),
                "missing: every [[mailbox]] has a name, shown by logs and `leads show`",
            );
            String::new()
        }
    };
    let channel = raw.channel.as_ref().and_then(|c| {
        let v = c.get_ref().trim();
        if v.is_empty() {
            ck.at(c.span(), &key("channel"), "must not be empty");
            None
        } else {
            Some(v.to_owned())
        }
    });
    let owner = raw
        .owner
        .as_ref()
        .and_then(|o| ck.address(o, &key("owner")));
    let imap = match (raw.kind.as_ref(), &raw.host, &raw.path) {
        (Some(k), _, _) if k.get_ref() == "imap" => true,
        (Some(k), _, _) if k.get_ref() == "maildir" => false,
        (Some(k), _, _) => {
            ck.at(
                k.span(),
                &key("kind"),
                format!("'{}' is not one of \"imap\", \"maildir\"", k.get_ref()),
            );
            return None;
        }
        (None, Some(_), None) => true,
        (None, None, Some(_)) => false,
        (None, Some(_), Some(_)) => {
            ck.at(
                span,
                prefix,
                "has both host (IMAP) and path (Maildir): give one, or kind = \"imap\" / \"maildir\"",
            );
            return None;
        }
        (None, None, None) => {
            ck.at(
                span,
                prefix,
                "missing host (an IMAP mailbox) or path (a Maildir folder)",
            );
            return None;
        }
    };
    let source = if imap {
        if let Some(p) = &raw.path {
            ck.at(p.span(), &key("path"), "an IMAP entry has no path");
        }
        let (Some(host), Some(user)) = (raw.host, raw.user) else {
            ck.at(span, prefix, "an IMAP entry needs host and user");
            return None;
        };
        let imap = RawImap {
            host,
            port: raw.port,
            tls: raw.tls.unwrap_or_else(default_tls),
            ca_file: raw.ca_file,
            user,
            password: raw.password,
            password_env: raw.password_env,
            password_file: raw.password_file,
            password_credential: raw.password_credential,
            mailbox: raw.folder.unwrap_or_else(default_mailbox),
            after: raw.after.unwrap_or_else(default_after),
            poll_interval: raw.poll_interval,
            timeout: raw.timeout,
            idle: raw.idle.unwrap_or(true),
            max_message_bytes: raw.max_message_bytes,
            batch_size: raw.batch_size,
        };
        SourceConfig::Imap(check_imap(
            ck,
            Spanned::new(span, imap),
            dir,
            prefix,
            &key("folder"),
        ))
    } else {
        let imap_keys = raw.host.is_some()
            || raw.port.is_some()
            || raw.tls.is_some()
            || raw.ca_file.is_some()
            || raw.user.is_some()
            || raw.password.is_some()
            || raw.password_env.is_some()
            || raw.password_file.is_some()
            || raw.password_credential.is_some()
            || raw.folder.is_some()
            || raw.after.is_some()
            || raw.timeout.is_some()
            || raw.idle.is_some();
        if imap_keys {
            ck.at(
                span.clone(),
                prefix,
                format!("a Maildir entry (path) cannot have the IMAP keys {IMAP_ONLY}"),
            );
        }
        let Some(path) = raw.path else {
            ck.at(span, &key("path"), "missing: the Maildir folder to read");
            return None;
        };
        SourceConfig::Maildir(check_maildir(
            ck,
            RawMaildir {
                path,
                poll_interval: raw.poll_interval,
                max_message_bytes: raw.max_message_bytes,
                batch_size: raw.batch_size,
            },
            dir,
            prefix,
        ))
    };
    Some(MailboxConfig {
        name,
        table: prefix.to_owned(),
        source,
        channel,
        owner,
    })
}

/// `[maildir]` or a Maildir `[[mailbox]]`, its problems under `prefix`.
fn check_maildir(ck: &mut Checker<'_>, md: RawMaildir, dir: &Path, prefix: &str) -> MaildirConfig {
    MaildirConfig {
        path: resolve_path(dir, md.path.get_ref()),
        poll_interval: ck.duration(
            md.poll_interval.as_ref(),
            &format!("{prefix}.poll_interval"),
            Duration::from_secs(10),
        ),
        max_message_bytes: ck.max_bytes(
            md.max_message_bytes.as_ref(),
            &format!("{prefix}.max_message_bytes"),
        ),
        batch_size: ck.positive_u32(md.batch_size.as_ref(), &format!("{prefix}.batch_size"), 500),
    }
}

/// `[identity]`: our own addresses and domains, and Sales'.
fn check_identity(
    ck: &mut Checker<'_>,
    raw: &RawIdentity,
    mailboxes: &[MailboxConfig],
) -> IdentityConfig {
    let mut identity = IdentityConfig::default();
    for a in &raw.addresses {
        identity
            .addresses
            .extend(ck.address(a, "identity.addresses"));
    }
    for a in &raw.sales {
        identity.sales.extend(ck.address(a, "identity.sales"));
    }
    for d in &raw.domains {
        let domain = d.get_ref().trim().trim_start_matches('@').to_lowercase();
        if domain.is_empty() || !domain.contains('.') || domain.contains(['@', ' ', '/']) {
            ck.at(
                d.span(),
                "identity.domains",
                format!("'{}' is not a domain like \"company.com\"", d.get_ref()),
            );
        } else {
            identity.domains.push(domain);
        }
    }
    for m in mailboxes {
        if let SourceConfig::Imap(imap) = &m.source
            && let Ok(user) = EmailAddress::parse(&imap.user)
            && !identity.addresses.contains(&user)
        {
            // A monitored mailbox is always one of ours, even if the user forgot to list it.
            identity.addresses.push(user);
        }
    }
    identity
}

/// `[[channel]]`s: where leads come from, each named once.
fn check_channels(ck: &mut Checker<'_>, raw: &[RawChannel]) -> Vec<ChannelRule> {
    let mut channels = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let name = c.name.get_ref().trim();
        if name.is_empty() {
            ck.at(
                c.name.span(),
                &format!("channel[{i}].name"),
                "must not be empty",
            );
        }
        if channels.iter().any(|r: &ChannelRule| r.name == name) {
            ck.at(
                c.name.span(),
                &format!("channel[{i}].name"),
                format!("channel '{name}' is defined twice"),
            );
        }
        let recipients = c
            .recipients
            .iter()
            .filter_map(|r| ck.address(r, &format!("channel[{i}].recipients")))
            .collect();
        channels.push(ChannelRule {
            name: name.to_owned(),
            recipients,
            plus_tags: lower_all(&c.plus_tags),
            utm_sources: lower_all(&c.utm_sources),
            forms: c.forms.clone(),
        });
    }
    channels
}

/// `[[form]]`s: the form profiles, each named once and recognisable by something.
fn check_forms(ck: &mut Checker<'_>, raw: &[RawForm]) -> Vec<FormProfile> {
    let mut forms = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let name = f.name.get_ref().trim();
        if name.is_empty() {
            ck.at(
                f.name.span(),
                &format!("form[{i}].name"),
                "must not be empty",
            );
        }
        // A channel's `forms` names a profile; two profiles of one name would make that
        // reference ambiguous.
        if !name.is_empty() && forms.iter().any(|p: &FormProfile| p.name == name) {
            ck.at(
                f.name.span(),
                &format!("form[{i}].name"),
                format!("form '{name}' is defined twice"),
            );
        }
        if f.from.is_empty() && f.subject_contains.is_empty() && f.body_contains.is_empty() {
            ck.at(
                f.name.span(),
                &format!("form[{i}]"),
                "give at least one of from, subject_contains, body_contains to recognise this form",
            );
        }
        forms.push(FormProfile {
            name: name.to_owned(),
            from: lower_all(&f.from),
            subject_contains: f.subject_contains.clone(),
            body_contains: f.body_contains.clone(),
            email_fields: f.email_fields.clone(),
            name_fields: f.name_fields.clone(),
            company_fields: f.company_fields.clone(),
            phone_fields: f.phone_fields.clone(),
        });
    }
    forms
}

/// Every form a channel names is a `[[form]]`.
fn check_channel_forms(
    ck: &mut Checker<'_>,
    raw: &[RawChannel],
    channels: &[ChannelRule],
    forms: &[FormProfile],
) {
    for (i, c) in channels.iter().enumerate() {
        for form in &c.forms {
            if !forms.iter().any(|f| &f.name == form) {
                let span = raw[i].name.span();
                ck.at(
                    span,
                    &format!("channel[{i}].forms"),
                    format!("no [[form]] is named '{form}'"),
                );
            }
        }
    }
}

/// `[http]`: a listen address (a port alone means loopback) and the public base URL.
/// An extra CA file (`[imap]`/`[smtp] ca_file`): it must be a readable PEM file now, or the
/// first connection fails with a TLS error that does not name the file.
fn ca_file(
    ck: &mut Checker<'_>,
    raw: Option<&Spanned<String>>,
    key: &str,
    dir: &Path,
) -> Option<PathBuf> {
    let raw = raw?;
    let path = resolve_path(dir, raw.get_ref());
    match std::fs::read(&path) {
        Ok(bytes) if bytes.windows(10).any(|w| w == b"-----BEGIN") => {}
        Ok(_) => ck.at(
            raw.span(),
            key,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ),
        Err(e) => ck.at(
            raw.span(),
            key,
            format!("cannot read {}: {e}", path.display()),
        ),
    }
    Some(path)
}

fn check_http(ck: &mut Checker<'_>, raw: &RawHttp) -> HttpConfig {
    let mut listen_at = |raw: Option<&Spanned<String>>, key: &str| {
        let l = raw?;
        let addr = listen_address(l.get_ref());
        if addr.is_none() {
            ck.at(
                l.span(),
                key,
                format!(
                    "'{}' is not an address to listen on: \"127.0.0.1:8025\", \"[::1]:8025\", \"0.0.0.0:8025\", or a port alone (\"8025\", loopback)",
                    l.get_ref()
                ),
            );
        }
        addr
    };
    let listen = listen_at(raw.listen.as_ref(), "http.listen");
    let metrics_listen = listen_at(raw.metrics_listen.as_ref(), "http.metrics_listen");
    if let (Some(m), Some(_)) = (&raw.metrics_listen, metrics_listen)
        && metrics_listen == listen
    {
        ck.at(
            m.span(),
            "http.metrics_listen",
            "is the same address as listen: leave it out to serve /metrics there, or name another port",
        );
    }
    let public_url = raw
        .public_url
        .as_ref()
        .and_then(|u| match public_url(u.get_ref()) {
            Ok(url) => Some(url),
            Err(why) => {
                ck.at(u.span(), "http.public_url", why);
                None
            }
        });
    let session_lifetime = ck.duration(
        raw.session_lifetime.as_ref(),
        "http.session_lifetime",
        DEFAULT_SESSION_LIFETIME,
    );
    HttpConfig {
        listen,
        public_url,
        metrics_listen,
        session_lifetime,
    }
}

/// `[http] listen`: `IP:PORT` (an IPv6 address in brackets), `localhost:PORT`, or a port
/// alone, which means the IPv4 loopback address.
fn listen_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = text
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    text.parse().ok()
}

/// `[http] public_url`: an absolute `https://` URL (`http://` only for a loopback host), with
/// no query or fragment, as the base links are made from; returned without a trailing `/`.
fn public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("'{text}' is not an https:// URL"))?;
    if url.contains(|c: char| c.is_whitespace() || c.is_control() || "?#@{}<>\"\\`^|".contains(c)) {
        return Err(format!(
            "'{text}' must be a base URL without spaces, user, query (?) or fragment (#)"
        ));
    }
    // The authority: a host, an IPv6 address in brackets, either with an optional port.
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rfind(':') {
        Some(at) if !authority[at..].contains(']') => {
            (&authority[..at], Some(&authority[at + 1..]))
        }
        _ => (authority, None),
    };
    if host.is_empty() || !is_host(host) || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!(
            "'{text}' names no host and port a link can reach (write the scheme and host: \"https://leads.company.com\")"
        ));
    }
    if url.starts_with("http://") && !is_loopback(host) {
        return Err(format!(
            "'{text}' is plain http: links to it would carry unsubscribe tokens in clear text, and one-click unsubscribe (RFC 8058) needs https; plain http is accepted only for loopback hosts"
        ));
    }
    Ok(url.to_owned())
}

/// `[sequences]`: where the sequence files and templates are, and the addresses and URL their
/// messages carry; `fallback_inbox` stands in for a missing inbox, and `public_url` (`[http]`)
/// gives the unsubscribe link when `unsubscribe_url` is not set. The rest of the settings come
/// from the tables already checked.
#[allow(clippy::too_many_arguments)]
fn check_sequences(
    ck: &mut Checker<'_>,
    seq: Spanned<RawSequences>,
    dir: &Path,
    fallback_inbox: Option<EmailAddress>,
    policy: &Policy,
    senders: &[Sender],
    smtp: Option<&SmtpConfig>,
    public_url: Option<&str>,
) -> sequence::Settings {
    let span = seq.span();
    let seq = seq.into_inner();
    let inbox = match &seq.inbox {
        Some(i) => ck.address(i, "sequences.inbox"),
        None => {
            if fallback_inbox.is_none() {
                ck.at(
                    span.clone(),
                    "sequences.inbox",
                    "give the monitored inbox's address (unsubscribe and reply addresses are plus-addresses of it)",
                );
            }
            fallback_inbox
        }
    };
    if let Some(u) = &seq.unsubscribe_url
        && (!u.get_ref().starts_with("https://") || u.get_ref().contains(char::is_whitespace))
    {
        ck.at(
            u.span(),
            "sequences.unsubscribe_url",
            "must be an https:// URL (RFC 8058 one-click unsubscribe needs https); {token} is replaced by the lead's token",
        );
    }
    sequence::Settings {
        dir: resolve_path(dir, seq.dir.as_deref().unwrap_or("sequences")),
        templates: resolve_path(dir, seq.templates.as_deref().unwrap_or("templates")),
        inbox: inbox
            .unwrap_or_else(|| EmailAddress::parse("leads@localhost").expect("a valid address")),
        unsubscribe_url: seq
            .unsubscribe_url
            .map(Spanned::into_inner)
            .or_else(|| public_url.map(|base| format!("{base}{UNSUBSCRIBE_PATH}{{token}}"))),
        reply_to_token: seq.reply_to_token,
        policy: policy.clone(),
        senders: senders.to_vec(),
        envelope_from: smtp.and_then(|s| s.envelope_from.clone()),
        verp: smtp.is_some_and(|s| s.verp),
    }
}

/// `[imap]` or an IMAP `[[mailbox]]`: its problems under `prefix` (`imap`, `mailbox[2]`), the
/// folder's under `folder_key`.
fn check_imap(
    ck: &mut Checker<'_>,
    imap: Spanned<RawImap>,
    dir: &Path,
    prefix: &str,
    folder_key: &str,
) -> ImapConfig {
    let key = |k: &str| format!("{prefix}.{k}");
    let span = imap.span();
    let imap = imap.into_inner();
    let host = imap.host.get_ref().trim().to_owned();
    if !is_host(&host) {
        ck.at(
            imap.host.span(),
            &key("host"),
            "expected a host name or IP address (an IPv6 address in brackets: \"[::1]\")",
        );
    }
    let tls = *imap.tls.get_ref();
    if tls == TlsMode::None && !is_loopback(&host) {
        ck.at(imap.tls.span(), &key("tls"), format!("\"none\" sends the password in clear text and is only accepted for loopback hosts, not '{host}'; use \"implicit\" or \"starttls\""));
    }
    if let Some(p) = &imap.password {
        ck.at(p.span(), &key("password"), "inline passwords are not accepted: use password_env, password_file or password_credential");
    }
    let password = ck
        .secret(
            span.clone(),
            &key("password"),
            imap.password_env.as_ref(),
            imap.password_file.as_ref(),
            imap.password_credential.as_ref(),
            dir,
        )
        .unwrap_or_else(|| {
            if imap.password.is_none() {
                ck.at(
                    span,
                    prefix,
                    "missing password_env, password_file or password_credential",
                );
            }
            SecretSource::Plain(String::new())
        });
    let after = match imap.after.get_ref().as_str() {
        "flag" => AfterProcessing::Flag,
        "none" => AfterProcessing::None,
        other => match other.strip_prefix("move:") {
            Some(folder) if has_empty_level(folder.trim()) => {
                ck.at(
                    imap.after.span(),
                    &key("after"),
                    empty_level_problem(folder.trim()),
                );
                AfterProcessing::None
            }
            Some(folder) if !folder.trim().is_empty() && !folder.contains(['\r', '\n', '"']) => {
                AfterProcessing::Move(folder.trim().to_owned())
            }
            _ => {
                ck.at(
                    imap.after.span(),
                    &key("after"),
                    format!("'{other}' is not one of \"flag\", \"move:Folder\", \"none\""),
                );
                AfterProcessing::None
            }
        },
    };
    if imap.user.get_ref().trim().is_empty() {
        ck.at(imap.user.span(), &key("user"), "must not be empty");
    }
    if imap.mailbox.contains(['\r', '\n', '"']) || imap.mailbox.is_empty() {
        ck.at(imap.host.span(), folder_key, "not a valid folder name");
    } else if has_empty_level(&imap.mailbox) {
        ck.at(
            imap.host.span(),
            folder_key,
            empty_level_problem(&imap.mailbox),
        );
    }
    ImapConfig {
        port: imap
            .port
            .unwrap_or(if tls == TlsMode::Implicit { 993 } else { 143 }),
        host: unbracket(&host),
        tls,
        ca_file: ca_file(ck, imap.ca_file.as_ref(), &key("ca_file"), dir),
        user: imap.user.into_inner(),
        password,
        mailbox: imap.mailbox,
        after,
        poll_interval: ck.duration(
            imap.poll_interval.as_ref(),
            &key("poll_interval"),
            Duration::from_secs(60),
        ),
        timeout: ck.duration(
            imap.timeout.as_ref(),
            &key("timeout"),
            Duration::from_secs(60),
        ),
        idle: imap.idle,
        max_message_bytes: ck.max_bytes(imap.max_message_bytes.as_ref(), &key("max_message_bytes")),
        batch_size: ck.positive_u32(imap.batch_size.as_ref(), &key("batch_size"), 500),
    }
}

fn check_senders(ck: &mut Checker<'_>, raw: &[Spanned<RawSender>]) -> Vec<Sender> {
    let mut out: Vec<Sender> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let s = s.get_ref();
        let name = s.name.get_ref().trim().to_owned();
        if !sequence::file::valid_id(&name) {
            ck.at(
                s.name.span(),
                &format!("sender[{i}].name"),
                "must be lower-case letters, digits, '-' and '_'",
            );
        } else if out.iter().any(|o| o.name == name) {
            ck.at(
                s.name.span(),
                &format!("sender[{i}].name"),
                format!("sender '{name}' is defined twice"),
            );
        }
        let Some(address) = ck.address(&s.address, &format!("sender[{i}].address")) else {
            continue;
        };
        out.push(Sender {
            name,
            address,
            display_name: s.display_name.clone().filter(|d| !d.trim().is_empty()),
            per_minute: s.per_minute,
            per_hour: s.per_hour,
            per_day: s.per_day,
        });
    }
    out
}

fn check_policy(ck: &mut Checker<'_>, raw: Option<&Spanned<RawPolicy>>) -> Policy {
    let mut policy = Policy::default();
    let Some(raw) = raw else { return policy };
    let raw = raw.get_ref();
    if let Some(tz) = &raw.timezone {
        match tz.get_ref().trim().parse::<chrono_tz::Tz>() {
            Ok(z) => policy.timezone = z,
            Err(_) => ck.at(
                tz.span(),
                "policy.timezone",
                format!(
                    "'{}' is not an IANA time zone like \"Europe/Berlin\"",
                    tz.get_ref()
                ),
            ),
        }
    }
    policy
        .lead_timezone_fields
        .clone_from(&raw.lead_timezone_fields);
    for w in &raw.windows {
        if let Err(e) = Windows::parse(&[w.get_ref()]) {
            ck.at(w.span(), "policy.windows", e);
        }
    }
    if let Ok(w) = Windows::parse(&raw.windows.iter().map(|w| w.get_ref()).collect::<Vec<_>>()) {
        policy.windows = w;
    }
    policy.per_domain_per_day = raw.per_domain_per_day;
    policy.per_lead_per_day = raw.per_lead_per_day.or(policy.per_lead_per_day);
    if let Some(j) = &raw.jitter {
        match humantime::parse_duration(j.get_ref()) {
            Ok(d) if d <= Duration::from_secs(3600) => policy.jitter = d,
            Ok(_) => ck.at(j.span(), "policy.jitter", "at most 1h"),
            Err(e) => ck.at(
                j.span(),
                "policy.jitter",
                format!("'{}' is not a duration like \"2m\": {e}", j.get_ref()),
            ),
        }
    }
    policy
}

fn check_smtp(ck: &mut Checker<'_>, smtp: Spanned<RawSmtp>, dir: &Path) -> SmtpConfig {
    let span = smtp.span();
    let smtp = smtp.into_inner();
    let transport_text = smtp.transport.get_ref().trim();
    if let Some(p) = &smtp.password {
        ck.at(p.span(), "smtp.password", "inline passwords are not accepted: use password_env, password_file or password_credential");
    }
    let transport = if transport_text == "smtp" {
        SmtpTransport::Smtp(check_smtp_server(ck, &smtp, span, dir))
    } else if let Some(folder) = transport_text.strip_prefix("file:") {
        check_file_transport(ck, &smtp, folder, dir)
    } else {
        ck.at(
            smtp.transport.span(),
            "smtp.transport",
            format!("'{transport_text}' is not \"smtp\" or \"file:DIR\""),
        );
        SmtpTransport::File(PathBuf::new())
    };
    let envelope_from = smtp
        .envelope_from
        .as_ref()
        .and_then(|a| ck.address(a, "smtp.envelope_from"));
    let retry_initial = ck.duration(
        smtp.retry_initial.as_ref(),
        "smtp.retry_initial",
        Duration::from_secs(60),
    );
    let retry_max_interval = ck.duration(
        smtp.retry_max_interval.as_ref(),
        "smtp.retry_max_interval",
        Duration::from_secs(3600),
    );
    if retry_max_interval < retry_initial
        && let Some(v) = &smtp.retry_max_interval
    {
        ck.at(
            v.span(),
            "smtp.retry_max_interval",
            "must not be shorter than retry_initial",
        );
    }
    SmtpConfig {
        transport,
        envelope_from,
        verp: smtp.verp.unwrap_or(false),
        connections: ck.positive_u32(smtp.connections.as_ref(), "smtp.connections", 4),
        timeout: ck.duration(
            smtp.timeout.as_ref(),
            "smtp.timeout",
            Duration::from_secs(60),
        ),
        retry_initial,
        retry_max_interval,
        retry_max_age: ck.duration(
            smtp.retry_max_age.as_ref(),
            "smtp.retry_max_age",
            Duration::from_secs(3 * 24 * 3600),
        ),
        pause_after_refusals: match &smtp.pause_after_refusals {
            Some(n) if *n.get_ref() == 1 => {
                ck.at(
                    n.span(),
                    "smtp.pause_after_refusals",
                    "must be 0 (off) or at least 2: one refusal is not a pattern",
                );
                0
            }
            Some(n) => *n.get_ref(),
            None => 5,
        },
    }
}

/// `transport = "smtp"`: the relay, how to reach it safely, and how to log in.
fn check_smtp_server(
    ck: &mut Checker<'_>,
    smtp: &RawSmtp,
    span: Range<usize>,
    dir: &Path,
) -> SmtpServer {
    let host = smtp
        .host
        .as_ref()
        .map(|h| h.get_ref().trim().to_owned())
        .unwrap_or_default();
    match &smtp.host {
        None => ck.at(
            span.clone(),
            "smtp",
            "missing host (or transport = \"file:DIR\")",
        ),
        Some(h) if !is_host(&host) => {
            ck.at(
                h.span(),
                "smtp.host",
                "expected a host name or IP address (an IPv6 address in brackets: \"[::1]\")",
            );
        }
        Some(_) => {}
    }
    let tls = *smtp.tls.get_ref();
    if tls == TlsMode::None && !host.is_empty() && !is_loopback(&host) {
        ck.at(smtp.tls.span(), "smtp.tls", format!("\"none\" sends mail and the password in clear text and is only accepted for loopback hosts, not '{host}'; use \"implicit\" or \"starttls\""));
    }
    let auth = check_smtp_auth(ck, smtp, span, dir);
    if let Some(name) = &smtp.hello_name
        && (name.get_ref().trim().is_empty()
            || name
                .get_ref()
                .contains(|c: char| c.is_whitespace() || c.is_control()))
    {
        ck.at(name.span(), "smtp.hello_name", "expected a host name");
    }
    SmtpServer {
        port: smtp.port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        }),
        host: unbracket(&host),
        tls,
        ca_file: ca_file(ck, smtp.ca_file.as_ref(), "smtp.ca_file", dir),
        hello_name: smtp
            .hello_name
            .as_ref()
            .map(|n| n.get_ref().trim().to_owned()),
        auth,
    }
}

/// `user` and one password source, both or neither.
fn check_smtp_auth(
    ck: &mut Checker<'_>,
    smtp: &RawSmtp,
    span: Range<usize>,
    dir: &Path,
) -> Option<(String, SecretSource)> {
    let password = ck.secret(
        span.clone(),
        "smtp.password",
        smtp.password_env.as_ref(),
        smtp.password_file.as_ref(),
        smtp.password_credential.as_ref(),
        dir,
    );
    match (&smtp.user, password) {
        (Some(user), Some(password)) => {
            if user.get_ref().trim().is_empty() {
                ck.at(user.span(), "smtp.user", "must not be empty");
            }
            Some((user.get_ref().trim().to_owned(), password))
        }
        (Some(user), None) => {
            if smtp.password.is_none() {
                ck.at(
                    user.span(),
                    "smtp.user",
                    "a user needs password_env, password_file or password_credential",
                );
            }
            None
        }
        (None, Some(_)) => {
            ck.at(span, "smtp", "a password is given but no user");
            None
        }
        (None, None) => None,
    }
}

/// `transport = "file:DIR"`: messages are written to a folder, so the relay's keys are
/// mistakes.
fn check_file_transport(
    ck: &mut Checker<'_>,
    smtp: &RawSmtp,
    folder: &str,
    dir: &Path,
) -> SmtpTransport {
    if folder.trim().is_empty() {
        ck.at(
            smtp.transport.span(),
            "smtp.transport",
            "\"file:\" needs a folder, e.g. \"file:outbox\"",
        );
    }
    for (key, given) in [
        ("host", smtp.host.is_some()),
        ("user", smtp.user.is_some()),
        ("hello_name", smtp.hello_name.is_some()),
    ] {
        if given {
            ck.at(
                smtp.transport.span(),
                &format!("smtp.{key}"),
                "only used with transport = \"smtp\"",
            );
        }
    }
    SmtpTransport::File(resolve_path(dir, folder.trim()))
}

/// A host as sockets and TLS want it: an IPv6 literal without the brackets the configuration
/// writes it in.
fn unbracket(host: &str) -> String {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned()
}

/// A host name, an IPv4 address, or an IPv6 address in brackets (`[::1]`, as in URLs, so the
/// port is never mistaken for part of it).
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

fn lower_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_lowercase()).collect()
}

/// Checks that docs/configuration.md and docs/sequences.md document every key the parsers accept.
#[cfg(test)]
mod doc_keys;

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[database]
url = "sqlite://leadloop.db?mode=rwc"

[imap]
host = "imap.example.com"
user = "leads@company.com"
password_env = "LEADLOOP_TEST_UNSET_PASSWORD"

[identity]
domains = ["company.com"]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/leadloop/leadloop.toml"))
    }

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let c = parse(MINIMAL).unwrap();
        let SourceConfig::Imap(imap) = &c.mailboxes[0].source else {
            panic!("imap expected")
        };
        assert_eq!(imap.tls, TlsMode::Implicit);
        assert_eq!(imap.port, 993);
        assert_eq!(imap.after, AfterProcessing::Flag);
        assert_eq!(
            c.database.url,
            SecretSource::Plain("sqlite:///etc/leadloop/leadloop.db?mode=rwc".into())
        );
        assert!(
            c.identity
                .addresses
                .iter()
                .any(|a| a.as_str() == "leads@company.com")
        );
    }

    #[test]
    fn users_and_the_session_lifetime_are_checked() {
        let c = parse(MINIMAL).unwrap();
        assert!(c.users.is_empty());
        assert_eq!(c.http.session_lifetime, Duration::from_secs(12 * 3600));
        let c = parse(&format!(
            "{MINIMAL}\n[http]\nsession_lifetime = \"30m\"\n\n\
             [[user]]\nemail = \"Ana@Company.com\"\nrole = \"admin\"\nname = \"Ana Lima\"\n\n\
             [[user]]\nemail = \"sam@company.com\"\nrole = \"sales\"\n"
        ))
        .unwrap();
        assert_eq!(c.http.session_lifetime, Duration::from_secs(1800));
        let users: Vec<_> = c
            .users
            .iter()
            .map(|u| (u.email.as_str(), u.role, u.display_name()))
            .collect();
        assert_eq!(
            users,
            [
                ("ana@company.com", Role::Admin, "Ana Lima"),
                ("sam@company.com", Role::Sales, "sam@company.com")
            ]
        );

        let err = parse(&format!(
            "{MINIMAL}\n[http]\nsession_lifetime = \"soon\"\n\n\
             [[user]]\nemail = \"ana@company.com\"\nrole = \"admin\"\n\n\
             [[user]]\nemail = \"ANA@company.com\"\nrole = \"sales\"\n\n\
             [[user]]\nemail = \"bo@company.com\"\nrole = \"boss\"\n\n\
             [[user]]\nemail = \"not an address\"\nrole = \"sales\"\n"
        ))
        .unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "http.session_lifetime",
                "user[1].email",
                "user[2].role",
                "user[3].email"
            ],
            "{err}"
        );
        assert!(
            err.to_string().contains("ana@company.com is defined twice"),
            "{err}"
        );
        assert!(err.to_string().contains("'boss' is not a role"), "{err}");
    }

    #[test]
    fn retention_section_is_checked() {
        assert_eq!(parse(MINIMAL).unwrap().retention.message_bodies, None);
        let c = parse(&format!(
            "{MINIMAL}\n[retention]\nmessage_bodies = \"90d\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.retention.message_bodies,
            Some(Duration::from_secs(90 * 24 * 3600))
        );
        for bad in ["\"2h\"", "\"soon\""] {
            let err =
                parse(&format!("{MINIMAL}\n[retention]\nmessage_bodies = {bad}\n")).unwrap_err();
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key.as_deref() == Some("retention.message_bodies")),
                "{err}"
            );
        }
    }

    #[test]
    fn digest_section_is_checked() {
        let base = format!(
            "{MINIMAL}\n[[sender]]\nname = \"team\"\naddress = \"leads@company.com\"\n\n\
             [smtp]\ntransport = \"file:outbox\"\n"
        );
        let c = parse(&format!(
            "{base}\n[[digest]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n\
             to = [\"marketing@company.com\"]\n"
        ))
        .unwrap();
        let d = &c.digests[0];
        assert_eq!(d.name, "weekly");
        assert_eq!(d.reports, [crate::actions::digest::DigestReport::Channels]);
        assert_eq!(d.period, crate::actions::digest::DigestPeriod::Week);
        assert_eq!(d.waiting_after, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(d.sender.name, "team");

        let bad = format!(
            "{base}\n[[digest]]\nname = \"weekly\"\nschedule = \"0 8 * * 1\"\n\
             to = [\"not an address\"]\nreports = [\"channels\", \"leads\"]\n\
             period = \"day\"\nwaiting_after = \"soon\"\nfrom = \"nobody\"\n"
        );
        let err = parse(&bad).unwrap_err();
        let keys: Vec<&str> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        for key in [
            "digest[0].schedule",
            "digest[0].to",
            "digest[0].reports",
            "digest[0].period",
            "digest[0].waiting_after",
            "digest[0].from",
        ] {
            assert!(keys.contains(&key), "{key} missing in {err}");
        }
        // Without [smtp] a digest cannot be sent.
        let err = parse(&format!(
            "{MINIMAL}\n[[sender]]\nname = \"team\"\naddress = \"leads@company.com\"\n\n\
             [[digest]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\nto = [\"m@company.com\"]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("[smtp]"), "{err}");
    }

    #[test]
    fn a_ca_file_must_exist_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let with = |path: &str| MINIMAL.replace("user =", &format!("ca_file = {path:?}\nuser ="));
        let missing = dir.path().join("nowhere.pem");
        let err = parse(&with(missing.to_str().unwrap())).unwrap_err();
        assert_eq!(
            err.problems[0].key.as_deref(),
            Some("imap.ca_file"),
            "{err}"
        );
        assert!(err.problems[0].message.contains("cannot read"), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = parse(&with(junk.to_str().unwrap())).unwrap_err();
        assert!(
            err.problems[0].message.contains("no PEM certificate"),
            "{err}"
        );
        let pem = dir.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let c = parse(&with(pem.to_str().unwrap())).unwrap();
        let SourceConfig::Imap(imap) = &c.mailboxes[0].source else {
            panic!("imap expected")
        };
        assert_eq!(imap.ca_file.as_deref(), Some(pem.as_path()));
    }

    #[test]
    fn spam_section_is_checked() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.spam, SpamConfig::default());
        assert!(c.rules().spam.headers);
        let text = format!(
            "{MINIMAL}\n[spam]\nreview_score = 2.0\nspam_score = 4.5\ndmarc = false\n\
             rspamd_url = \"http://127.0.0.1:11333\"\nrspamd_timeout = \"2s\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.spam.rules.review_score, 2.0);
        assert_eq!(c.spam.rules.spam_score, 4.5);
        assert!(!c.spam.rules.dmarc);
        let rspamd = c.spam.rspamd.expect("rspamd configured");
        assert_eq!((rspamd.host.as_str(), rspamd.port), ("127.0.0.1", 11333));
        assert_eq!(rspamd.timeout, Duration::from_secs(2));

        let bad = format!(
            "{MINIMAL}\n[spam]\nreview_score = 7.0\nspam_score = 5.0\nspam_percent = 120.0\n\
             rspamd_url = \"https://rspamd.example\"\n"
        );
        let err = parse(&bad).unwrap_err();
        let keys: Vec<&str> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        for key in ["spam.review_score", "spam.spam_percent", "spam.rspamd_url"] {
            assert!(keys.contains(&key), "{key} missing in {err}");
        }
    }

    #[test]
    fn unknown_keys_are_reported_with_line_and_key() {
        let text = MINIMAL.replace("[identity]", "[identity]\nadresses = []");
        let err = parse(&text).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.line, Some(11), "{err}");
        assert_eq!(p.key.as_deref(), Some("adresses"));
        assert!(p.message.contains("unknown field"), "{err}");
    }

    #[test]
    fn plaintext_imap_only_on_loopback() {
        let text = MINIMAL.replace("user =", "tls = \"none\"\nuser =");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("imap.tls"));
        assert_eq!(err.problems[0].line, Some(7));
        let ok = text.replace("imap.example.com", "127.0.0.1");
        let c = parse(&ok).unwrap();
        let SourceConfig::Imap(imap) = &c.mailboxes[0].source else {
            panic!()
        };
        assert_eq!(imap.port, 143);
    }

    #[test]
    fn inline_password_is_refused_and_never_echoed() {
        let text = MINIMAL.replace(
            "password_env = \"LEADLOOP_TEST_UNSET_PASSWORD\"",
            "password = \"hunter2\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("imap.password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let text = MINIMAL
            .replace(
                "password_env",
                "after = \"archive\"\npoll_interval = \"soon\"\npassword_env",
            )
            .replace(
                "domains = [\"company.com\"]",
                "addresses = [\"not an address\"]",
            );
        let err = parse(&text).unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        assert_eq!(
            keys,
            ["imap.after", "imap.poll_interval", "identity.addresses"],
            "{err}"
        );
    }

    #[test]
    fn folder_names_with_an_empty_level_are_refused() {
        for (line, key) in [
            ("after = \"move:Leads//Done\"", "imap.after"),
            ("after = \"move:/Leads\"", "imap.after"),
            ("mailbox = \"Leads/\"", "imap.mailbox"),
        ] {
            let text = MINIMAL.replace("password_env", &format!("{line}\npassword_env"));
            let err = parse(&text).unwrap_err();
            let keys: Vec<_> = err
                .problems
                .iter()
                .filter_map(|p| p.key.as_deref())
                .collect();
            assert_eq!(keys, [key], "{err}");
            assert!(err.to_string().contains("has an empty level"), "{err}");
        }
        let text = MINIMAL.replace(
            "password_env",
            "mailbox = \"INBOX/Leads\"\nafter = \"move:Archive/2024\"\npassword_env",
        );
        let imap = match parse(&text).unwrap().mailboxes.remove(0).source {
            SourceConfig::Imap(imap) => imap,
            SourceConfig::Maildir(_) => unreachable!(),
        };
        assert_eq!(imap.mailbox, "INBOX/Leads");
        assert_eq!(imap.after, AfterProcessing::Move("Archive/2024".into()));
    }

    #[test]
    fn missing_secret_is_named_not_shown() {
        let c = parse(MINIMAL).unwrap();
        let err = c.check_secrets().unwrap_err().to_string();
        assert!(
            err.contains("LEADLOOP_TEST_UNSET_PASSWORD is not set"),
            "{err}"
        );
        let s = SecretSource::Plain("postgres://u:pw@h/db".into());
        assert!(!format!("{s:?}").contains("pw"));
        assert!(!format!("{:?}", s.resolve().unwrap()).contains("pw"));
    }

    #[test]
    fn smtp_defaults_and_the_loopback_rule() {
        let text = format!(
            "{MINIMAL}\n[smtp]\nhost = \"smtp.example.com\"\nuser = \"leads@company.com\"\npassword_env = \"LEADLOOP_TEST_UNSET_SMTP\"\n"
        );
        let c = parse(&text).unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        let SmtpTransport::Smtp(server) = &smtp.transport else {
            panic!("smtp expected")
        };
        assert_eq!((server.tls, server.port), (TlsMode::Implicit, 465));
        assert_eq!(smtp.connections, 4);
        let err = c.check_secrets().unwrap_err().to_string();
        assert!(
            err.contains("smtp.password") && err.contains("LEADLOOP_TEST_UNSET_SMTP"),
            "{err}"
        );

        let plain = text.replace(
            "host = \"smtp.example.com\"",
            "host = \"smtp.example.com\"\ntls = \"none\"",
        );
        let err = parse(&plain).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("smtp.tls"), "{err}");
        let c = parse(&plain.replace("smtp.example.com", "127.0.0.1")).unwrap();
        let Some(SmtpConfig {
            transport: SmtpTransport::Smtp(s),
            ..
        }) = c.smtp
        else {
            panic!()
        };
        assert_eq!(s.port, 25);
    }

    #[test]
    fn smtp_file_transport_and_bad_values() {
        let c = parse(&format!("{MINIMAL}\n[smtp]\ntransport = \"file:outbox\"\n")).unwrap();
        let Some(SmtpConfig {
            transport: SmtpTransport::File(dir),
            ..
        }) = c.smtp
        else {
            panic!()
        };
        assert_eq!(dir, Path::new("/etc/leadloop/outbox"));
        let err = parse(&format!(
            "{MINIMAL}\n[smtp]\ntransport = \"carrier-pigeon\"\ntimeout = \"soon\"\npassword = \"hunter2\"\n"
        ))
        .unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .filter_map(|p| p.key.as_deref())
            .collect();
        assert_eq!(
            keys,
            ["smtp.transport", "smtp.timeout", "smtp.password"],
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn metrics_listen_is_read_like_listen_and_must_differ_from_it() {
        let http = |section: &str| parse(&format!("{MINIMAL}\n[http]\n{section}\n"));
        let c = http("listen = \"8025\"\nmetrics_listen = \"9125\"").unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:8025".parse().unwrap()));
        assert_eq!(
            c.http.metrics_listen,
            Some("127.0.0.1:9125".parse().unwrap())
        );
        let c = http("metrics_listen = \"[::1]:9125\"").unwrap();
        assert_eq!(
            (c.http.listen, c.http.metrics_listen),
            (None, Some("[::1]:9125".parse().unwrap()))
        );
        for bad in [
            "listen = \"8025\"\nmetrics_listen = \"localhost:8025\"",
            "metrics_listen = \"metrics:9125\"",
        ] {
            let err = http(bad).unwrap_err();
            assert_eq!(
                err.problems[0].key.as_deref(),
                Some("http.metrics_listen"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn http_is_off_by_default_and_a_port_alone_is_loopback() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.http, HttpConfig::default());
        let http = |section: &str| parse(&format!("{MINIMAL}\n[http]\n{section}\n"));
        let c = http("listen = \"8025\"").unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:8025".parse().unwrap()));
        let c = http("listen = \"localhost:8025\"").unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:8025".parse().unwrap()));
        let c = http("listen = \"[::1]:8025\"").unwrap();
        assert_eq!(c.http.listen, Some("[::1]:8025".parse().unwrap()));
        let c = http("listen = \"0.0.0.0:80\"").unwrap();
        assert_eq!(c.http.listen, Some("0.0.0.0:80".parse().unwrap()));
        for bad in ["leads.company.com:80", "127.0.0.1", "::1:80", "99999", ""] {
            let err = http(&format!("listen = {bad:?}")).unwrap_err();
            assert_eq!(
                err.problems[0].key.as_deref(),
                Some("http.listen"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn public_url_is_https_or_loopback_and_gives_the_unsubscribe_link() {
        let c = parse(&format!(
            "{MINIMAL}\n[http]\npublic_url = \"https://leads.company.com/ll/\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.http.public_url.as_deref(),
            Some("https://leads.company.com/ll")
        );
        for ok in [
            "https://[2001:db8::1]:8443",
            "http://127.0.0.1:8025",
            "http://localhost",
        ] {
            let c = parse(&format!("{MINIMAL}\n[http]\npublic_url = {ok:?}\n")).unwrap();
            assert_eq!(c.http.public_url.as_deref(), Some(ok));
        }
        for bad in [
            "leads.company.com",
            "http://leads.company.com",
            "https://",
            "https://leads.company.com/?a=b",
            "https://leads.company.com/#x",
            "https://user@leads.company.com",
            "https://leads.company.com:port",
            "https://leads company.com",
        ] {
            let err = parse(&format!("{MINIMAL}\n[http]\npublic_url = {bad:?}\n")).unwrap_err();
            assert_eq!(
                err.problems[0].key.as_deref(),
                Some("http.public_url"),
                "{bad}: {err}"
            );
        }
        // The default unsubscribe link, and one set in [sequences] winning over it.
        let mut ck = Checker {
            file: Path::new("leadloop.toml"),
            text: "",
            problems: Vec::new(),
        };
        let raw: RawSequences = toml::from_str("").unwrap();
        let settings = check_sequences(
            &mut ck,
            Spanned::new(0..0, raw),
            Path::new("/etc/leadloop"),
            EmailAddress::parse("leads@company.com").ok(),
            &Policy::default(),
            &[],
            None,
            Some("https://leads.company.com"),
        );
        assert_eq!(
            settings.unsubscribe_url.as_deref(),
            Some("https://leads.company.com/u/{token}")
        );
        let raw: RawSequences =
            toml::from_str("unsubscribe_url = \"https://company.com/stop?t={token}\"").unwrap();
        let settings = check_sequences(
            &mut ck,
            Spanned::new(0..0, raw),
            Path::new("/etc/leadloop"),
            EmailAddress::parse("leads@company.com").ok(),
            &Policy::default(),
            &[],
            None,
            Some("https://leads.company.com"),
        );
        assert_eq!(
            settings.unsubscribe_url.as_deref(),
            Some("https://company.com/stop?t={token}"),
            "an unsubscribe_url of its own wins"
        );
        assert!(ck.problems.is_empty());
    }

    #[test]
    fn form_names_are_unique() {
        let form = "[[form]]\nname = \"contact\"\nfrom = [\"forms@example.com\"]\n";
        let text = format!("{MINIMAL}\n{form}\n{form}");
        let err = Config::parse(&text, Path::new("leadloop.toml")).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key.as_deref(), Some("form[1].name"));
        assert!(err.problems[0].message.contains("defined twice"), "{err}");
    }

    #[test]
    fn channel_forms_must_exist() {
        let text = format!("{MINIMAL}\n[[channel]]\nname = \"web\"\nforms = [\"contact\"]\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("channel[0].forms"));
    }

    /// Two mailboxes besides the `[imap]`: one IMAP, one Maildir.
    const MAILBOXES: &str = r#"
[[mailbox]]
name = "sales"
host = "imap.example.com"
user = "sales@company.com"
password_file = "sales.secret"
folder = "Sales"
after = "move:Sales/Done"
poll_interval = "30s"
channel = "sales-desk"
owner = "Bob@Company.com"

[[mailbox]]
name = "local"
path = "maildir/info"
channel = "info"
"#;

    #[test]
    fn mailbox_entries_come_after_the_single_imap_with_their_own_settings() {
        let c = parse(&format!("{MINIMAL}{MAILBOXES}")).unwrap();
        let names: Vec<_> = c.mailboxes.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["imap", "sales", "local"]);
        assert_eq!(
            c.mailboxes[0].key(),
            "imap://leads@company.com@imap.example.com:993/INBOX"
        );
        let sales = &c.mailboxes[1];
        let SourceConfig::Imap(imap) = &sales.source else {
            panic!("imap expected")
        };
        assert_eq!(imap.mailbox, "Sales");
        assert_eq!(imap.after, AfterProcessing::Move("Sales/Done".into()));
        assert_eq!(imap.poll_interval, Duration::from_secs(30));
        assert_eq!(
            imap.password,
            SecretSource::File(PathBuf::from("/etc/leadloop/sales.secret"))
        );
        assert_eq!(
            sales.key(),
            "imap://sales@company.com@imap.example.com:993/Sales"
        );
        assert_eq!(sales.channel.as_deref(), Some("sales-desk"));
        assert_eq!(
            sales.owner.as_ref().map(|o| o.as_str()),
            Some("bob@company.com")
        );
        assert_eq!(sales.table, "mailbox[0]");
        let SourceConfig::Maildir(md) = &c.mailboxes[2].source else {
            panic!("maildir expected")
        };
        assert_eq!(md.path, PathBuf::from("/etc/leadloop/maildir/info"));
        assert_eq!(c.mailboxes[2].owner, None);
        // Each IMAP user is one of ours, and each mailbox owner answers as Sales.
        assert!(
            c.identity
                .addresses
                .iter()
                .any(|a| a.as_str() == "sales@company.com")
        );
        assert!(
            c.rules()
                .sales
                .iter()
                .any(|a| a.as_str() == "bob@company.com")
        );
        // The longest poll interval is what readiness allows.
        assert_eq!(c.poll_interval(), Duration::from_secs(60));
        assert_eq!(c.mailbox_name(&sales.key()), "sales");
        assert_eq!(c.mailbox_name("maildir:/gone"), "maildir:/gone");
    }

    #[test]
    fn mailbox_entries_alone_are_enough_and_the_imap_key_does_not_change_in_one() {
        let alone = MINIMAL.replace("[imap]", "[[mailbox]]\nname = \"leads\"");
        let c = parse(&alone).unwrap();
        assert_eq!(c.mailboxes.len(), 1);
        assert_eq!(c.mailboxes[0].name, "leads");
        // The same mailbox as an `[imap]` keeps its cursor key.
        assert_eq!(
            c.mailboxes[0].key(),
            parse(MINIMAL).unwrap().mailboxes[0].key()
        );
        let none = MINIMAL.replace("[imap]", "[unused]");
        let none = none.split("[unused]").next().unwrap().to_owned()
            + "\n[identity]\ndomains = [\"company.com\"]\n";
        let err = parse(&none).unwrap_err().to_string();
        assert!(err.contains("[[mailbox]]"), "{err}");
    }

    #[test]
    fn each_mailbox_entry_is_checked_under_its_own_key() {
        let problems = |extra: &str| -> Vec<(String, String)> {
            parse(&format!("{MINIMAL}{extra}"))
                .unwrap_err()
                .problems
                .into_iter()
                .map(|p| (p.key.unwrap_or_default(), p.message))
                .collect()
        };
        let bad = r#"
[[mailbox]]
name = "a"
path = "maildir/a"

[[mailbox]]
name = "b"
host = "not a host"
user = "b@company.com"
password_env = "B"
tls = "none"
after = "move:"
"#;
        let keys: Vec<String> = problems(bad).into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"mailbox[1].host".to_owned()), "{keys:?}");
        assert!(keys.contains(&"mailbox[1].after".to_owned()), "{keys:?}");
        assert!(keys.contains(&"mailbox[1].tls".to_owned()), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.starts_with("mailbox[0]")),
            "{keys:?}"
        );

        let twice = "\n[[mailbox]]\nname = \"imap\"\npath = \"md\"\n";
        let p = problems(twice);
        assert_eq!(p[0].0, "mailbox[0].name", "{p:?}");
        assert!(p[0].1.contains("already the name of [imap]"), "{p:?}");

        let same = "\n[[mailbox]]\nname = \"again\"\nhost = \"imap.example.com\"\nuser = \"leads@company.com\"\npassword_env = \"X\"\n";
        let p = problems(same);
        assert_eq!(p[0].0, "mailbox[0]", "{p:?}");
        assert!(p[0].1.contains("same mailbox as [imap]"), "{p:?}");

        for (entry, key, says) in [
            ("path = \"md\"", "mailbox[0].name", "missing"),
            ("name = \"x\"", "mailbox[0]", "missing host"),
            (
                "name = \"x\"\npath = \"md\"\nhost = \"h\"",
                "mailbox[0]",
                "both host",
            ),
            (
                "name = \"x\"\npath = \"md\"\nuser = \"u\"",
                "mailbox[0]",
                "IMAP keys",
            ),
            (
                "name = \"x\"\nkind = \"pop3\"\npath = \"md\"",
                "mailbox[0].kind",
                "pop3",
            ),
            (
                "name = \"x\"\nhost = \"h\"\nuser = \"u\"",
                "mailbox[0]",
                "password_env",
            ),
            (
                "name = \"x\"\npath = \"md\"\nowner = \"nobody\"",
                "mailbox[0].owner",
                "not an email",
            ),
            (
                "name = \"x\"\npath = \"md\"\nchannel = \" \"",
                "mailbox[0].channel",
                "empty",
            ),
        ] {
            let p = problems(&format!("\n[[mailbox]]\n{entry}\n"));
            assert_eq!(p.len(), 1, "{entry}: {p:?}");
            assert_eq!(p[0].0, key, "{entry}: {p:?}");
            assert!(p[0].1.contains(says), "{entry}: {p:?}");
        }
    }

    #[test]
    fn every_mailbox_password_is_checked_under_its_entry() {
        let text = format!("{MINIMAL}{MAILBOXES}");
        let err = parse(&text)
            .unwrap()
            .check_secrets()
            .unwrap_err()
            .to_string();
        assert!(err.contains("imap.password"), "{err}");
        assert!(err.contains("mailbox[0].password"), "{err}");
        assert!(err.contains("sales.secret"), "{err}");
    }
}
