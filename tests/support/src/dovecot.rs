//! A private, throw-away Dovecot 2.3 IMAP server for tests and benchmarks.
//!
//! The project's rule is "real components in tests": ingest is tested against a real IMAP
//! server on loopback, not a mock. This module starts one Dovecot instance per [`Dovecot`]
//! value, with its own temp dir, certificates, users file, Maildir and ports, so tests can run
//! side by side and nothing touches a system-wide Dovecot.
//!
//! Both the integration tests and `leadloop-bench` use it. It makes its own temp dir (not
//! `tempfile`'s) because Dovecot needs a short, world-readable one.
//!
//! The API is synchronous on purpose: the server is a separate process, every call is short,
//! and a blocking API is usable from `#[test]`, `#[tokio::test]` and plain `main` alike.
//!
//! API summary:
//! - [`Dovecot::start`] — temp dir, CA + leaf cert, config, two free loopback ports (plain IMAP
//!   with STARTTLS, IMAPS), `dovecot -F`, waits for the `* OK` greeting.
//!   [`Dovecot::start_with`] does the same with a [`Setup`] that differs from the default (a
//!   personal namespace under `INBOX.`, as some servers have).
//! - accessors [`Dovecot::host`], [`Dovecot::plain_port`], [`Dovecot::tls_port`],
//!   [`Dovecot::user`], [`Dovecot::password`], [`Dovecot::ca_pem_path`],
//!   [`Dovecot::maildir_path`], [`Dovecot::dir`], [`Dovecot::log_tail`].
//! - [`Dovecot::append`] — real IMAP `APPEND`, returns the UID from `APPENDUID`.
//! - [`Dovecot::create`], [`Dovecot::mailboxes`], [`Dovecot::messages`] — CREATE, LIST and
//!   STATUS, with names as they travel (modified UTF-7), to see where mail ended up.
//! - [`Dovecot::load_maildir`] — fast bulk load by writing Maildir files, then one sync.
//! - [`Dovecot::restart`] — `kill -9` and start again on the same ports and dirs.
//! - [`Dovecot::set_uid_validity`] / [`Dovecot::change_uid_validity`] /
//!   [`Dovecot::uid_validity`] — force and observe a UIDVALIDITY change.
//! - `Drop` — SIGKILL the whole process group, remove the temp dir.
//!
//! Dovecot 2.3 is particular about a few things, each handled below: the temp dir must be
//! readable by the `dovecot` user, unix socket paths must stay short, `first_valid_uid` must
//! admit the mail user, and rustls only accepts a CA:FALSE leaf certificate.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rand::Rng;

/// How long to wait for Dovecot to greet after a (re)start. It normally takes ~25 ms;
/// a loaded CI machine running many tests in parallel can be much slower.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout for each socket operation of the fixture's own small IMAP conversations.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The only mail user of the fixture.
const USER: &str = "alice";

/// Distinguishes instances created by the same process (tests run in parallel threads).
static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How a fixture differs from the default one (Dovecot's defaults: folders at the top level,
/// `.` between levels).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The personal namespace's `prefix` and `separator`: `("INBOX.", '.')` keeps the user's
    /// folders under `INBOX.`, as Courier, older Cyrus and many hosted servers do.
    pub namespace: Option<(String, char)>,
}

/// A running private Dovecot instance. Killed and cleaned up on drop.
pub struct Dovecot {
    dir: PathBuf,
    conf: PathBuf,
    plain_port: u16,
    tls_port: u16,
    password: String,
    child: Option<Child>,
    /// Next `M<n>` number for Maildir file names written by [`Dovecot::load_maildir`], so
    /// several loads keep UIDs in the order the messages were given.
    maildir_seq: AtomicU64,
    /// Mail uid/gid (`dovecot` user) that owns the Maildir.
    mail_uid: u32,
    mail_gid: u32,
    setup: Setup,
}

impl Dovecot {
    /// Creates the instance's files and starts the server; returns once it greets.
    pub fn start() -> Result<Dovecot> {
        Dovecot::start_with(Setup::default())
    }

    /// [`Dovecot::start`] with settings that differ from the default.
    pub fn start_with(setup: Setup) -> Result<Dovecot> {
        let (mail_uid, mail_gid) = lookup_user("dovecot")
            .context("looking up the `dovecot` system user (is dovecot-core installed?)")?;
        let dir = make_temp_dir().context("creating the Dovecot fixture's temp dir")?;
        // From here on, `Dovecot`'s Drop removes the dir even if a later step fails.
        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        let mut dc = Dovecot {
            conf: dir.join("dovecot.conf"),
            dir,
            plain_port: 0,
            tls_port: 0,
            password,
            child: None,
            maildir_seq: AtomicU64::new(1),
            mail_uid,
            mail_gid,
            setup,
        };
        make_certs(&dc.dir).context("generating test certificates with openssl")?;
        let (p1, p2) = free_ports().context("picking free loopback ports")?;
        dc.plain_port = p1;
        dc.tls_port = p2;
        dc.write_files()
            .context("writing Dovecot config and users")?;
        dc.spawn_and_wait().context("starting Dovecot")?;
        Ok(dc)
    }

    /// Always `127.0.0.1`: the fixture listens on loopback only.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Plain IMAP port; STARTTLS is offered. Plaintext LOGIN works too (loopback is "secured").
    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }

    /// Implicit-TLS IMAP port (IMAPS). The certificate is for `localhost` and `127.0.0.1`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    pub fn user(&self) -> &str {
        USER
    }

    /// Random per instance, alphanumeric (safe inside an IMAP quoted string).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// PEM file of the test CA that signed the server certificate.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The user's Maildir (holds `cur/`, `new/`, `tmp/`, `dovecot-uidlist`, index files).
    pub fn maildir_path(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user).join("Maildir")
    }

    /// The instance's temp dir (config, certs, log, run dir, mail).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file, for `doveadm -c`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The master process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Last `lines` lines of Dovecot's log and stderr, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["dovecot.log", "stderr.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.join(name)) {
                let all: Vec<&str> = text.lines().collect();
                let start = all.len().saturating_sub(lines);
                for line in &all[start..] {
                    out.push_str(name);
                    out.push_str(": ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        if out.is_empty() {
            out.push_str("(Dovecot log is empty)\n");
        }
        out
    }

    /// Appends one message with a real IMAP `APPEND` over the plain loopback port and
    /// returns its UID from the `[APPENDUID <validity> <uid>]` response code.
    ///
    /// This speaks IMAP directly instead of using async-imap because async-imap 0.12's
    /// `Session::append` returns `()` and drops the tagged response code that carries the UID.
    /// The mailbox must exist (`INBOX` always does).
    pub fn append(&self, mailbox: &str, raw: &[u8]) -> Result<u32> {
        let mut imap = RawImap::login(self).context("APPEND: logging in")?;
        let tag = imap.next_tag();
        imap.write(format!("{tag} APPEND {} {{{}}}\r\n", quote(mailbox)?, raw.len()).as_bytes())?;
        let line = imap.read_line()?;
        ensure!(
            line.starts_with('+'),
            "APPEND to {mailbox}: server refused the literal: {}",
            line.trim_end()
        );
        imap.write(raw)?;
        imap.write(b"\r\n")?;
        let done = imap
            .read_tagged(&tag)
            .context("APPEND: reading the result")?;
        ensure!(
            done.starts_with(&format!("{tag} OK")),
            "APPEND to {mailbox} failed: {}",
            done.trim_end()
        );
        imap.logout();
        parse_appenduid(&done)
            .ok_or_else(|| anyhow!("APPEND to {mailbox}: no APPENDUID in {:?}", done.trim_end()))
    }

    /// Creates a folder; `name` as it travels (modified UTF-7, with the namespace prefix).
    pub fn create(&self, name: &str) -> Result<()> {
        let mut imap = RawImap::login(self).context("CREATE: logging in")?;
        let tag = imap.next_tag();
        imap.write(format!("{tag} CREATE {}\r\n", quote(name)?).as_bytes())?;
        let done = imap.read_tagged(&tag)?;
        ensure!(
            done.starts_with(&format!("{tag} OK")),
            "CREATE {name} failed: {}",
            done.trim_end()
        );
        imap.logout();
        Ok(())
    }

    /// Every folder's full name as the server lists it (`LIST "" "*"`), undecoded.
    pub fn mailboxes(&self) -> Result<Vec<String>> {
        let mut imap = RawImap::login(self).context("LIST: logging in")?;
        let tag = imap.next_tag();
        imap.write(format!("{tag} LIST \"\" \"*\"\r\n").as_bytes())?;
        let mut names = Vec::new();
        loop {
            let line = imap.read_line()?;
            if line.starts_with(&format!("{tag} ")) {
                ensure!(
                    line.starts_with(&format!("{tag} OK")),
                    "LIST failed: {}",
                    line.trim_end()
                );
                break;
            }
            // `* LIST (\HasNoChildren) "." INBOX.Processed` or `... "INBOX.Sales &- Leads"`.
            let Some(rest) = line.strip_prefix("* LIST ") else {
                continue;
            };
            let after_flags = rest.split_once(") ").map_or(rest, |(_, r)| r);
            let name = after_flags
                .split_once(' ')
                .map_or(after_flags, |(_, n)| n)
                .trim_end();
            names.push(name.trim_matches('"').to_owned());
        }
        imap.logout();
        Ok(names)
    }

    /// How many messages `name` holds (`STATUS name (MESSAGES)`); `name` as it travels.
    pub fn messages(&self, name: &str) -> Result<u32> {
        let mut imap = RawImap::login(self).context("STATUS: logging in")?;
        let tag = imap.next_tag();
        imap.write(format!("{tag} STATUS {} (MESSAGES)\r\n", quote(name)?).as_bytes())?;
        let mut count = None;
        loop {
            let line = imap.read_line()?;
            if let Some(i) = line.find("(MESSAGES ") {
                count = line[i + "(MESSAGES ".len()..]
                    .split(')')
                    .next()
                    .and_then(|n| n.trim().parse().ok());
            }
            if line.starts_with(&format!("{tag} ")) {
                ensure!(
                    line.starts_with(&format!("{tag} OK")),
                    "STATUS {name} failed: {}",
                    line.trim_end()
                );
                break;
            }
        }
        imap.logout();
        count.ok_or_else(|| anyhow!("STATUS {name}: no MESSAGES count"))
    }

    /// Bulk-loads messages into the user's INBOX by writing Maildir files directly (10k
    /// messages take about a second, versus ~30 s with IMAP APPEND), then makes Dovecot sync
    /// once so UIDs are assigned now. UIDs follow the iterator's order, also across calls.
    /// Returns the number of messages written.
    ///
    /// File names are `<secs>.M<n>P<pid>.<host>,S=<size>:2,`; Dovecot sorts new files by the
    /// seconds and then the `M` (microseconds) number, which we use as a sequence counter.
    /// `S=` lets Dovecot skip a stat for the size. Files belong to the mail user.
    pub fn load_maildir(&self, messages: impl Iterator<Item = Vec<u8>>) -> Result<usize> {
        let maildir = self.maildir_path(USER);
        for sub in ["cur", "new", "tmp"] {
            let d = maildir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            chown(&d, self.mail_uid, self.mail_gid)?;
        }
        chown(&maildir, self.mail_uid, self.mail_gid)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let pid = std::process::id();
        let cur = maildir.join("cur");
        let mut count = 0usize;
        for raw in messages {
            let n = self.maildir_seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("{secs}.M{n}P{pid}.leadloop-fixture,S={}:2,", raw.len());
            let path = cur.join(name);
            fs::write(&path, &raw).with_context(|| format!("writing {}", path.display()))?;
            chown(&path, self.mail_uid, self.mail_gid)?;
            count += 1;
        }
        if self.child.is_some() {
            // SELECT makes Dovecot scan the Maildir and assign UIDs in file-name order.
            let mut imap = RawImap::login(self).context("syncing the loaded Maildir")?;
            imap.select("INBOX")?;
            imap.logout();
        }
        Ok(count)
    }

    /// Kills the server with SIGKILL (as a crash would) and starts it again on the same
    /// ports, dirs and mail. Returns once the new instance greets. Open client connections
    /// are cut; clients must reconnect.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn_and_wait().context("restarting Dovecot")
    }

    /// Sets the UIDVALIDITY of `mailbox` with `doveadm mailbox update --uid-validity`
    /// (needs the instance running; verified with Dovecot 2.3.19). Clients see the new value
    /// on their next SELECT. A session that has the mailbox selected at the time is often, not
    /// always, disconnected by Dovecot soon after (timing-dependent; seen: NOOP succeeds, the
    /// next command finds the connection closed).
    pub fn set_uid_validity(&self, mailbox: &str, uid_validity: u32) -> Result<()> {
        ensure!(uid_validity != 0, "UIDVALIDITY must be non-zero");
        let out = Command::new(tool("doveadm"))
            .arg("-c")
            .arg(&self.conf)
            .args(["mailbox", "update", "-u", USER, "--uid-validity"])
            .arg(uid_validity.to_string())
            .arg(mailbox)
            .stdin(Stdio::null())
            .output()
            .context("running doveadm mailbox update")?;
        ensure!(
            out.status.success(),
            "doveadm mailbox update --uid-validity {uid_validity} {mailbox} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Reads the current UIDVALIDITY of `mailbox` with an IMAP SELECT.
    pub fn uid_validity(&self, mailbox: &str) -> Result<u32> {
        let mut imap = RawImap::login(self)?;
        let v = imap.select(mailbox)?;
        imap.logout();
        Ok(v)
    }

    /// Forces a UIDVALIDITY change of `mailbox` (to the current value + 1) and returns the
    /// new value, verified by a fresh SELECT. Messages keep their UIDs; a client that kept
    /// the old UIDVALIDITY must treat everything as new.
    pub fn change_uid_validity(&self, mailbox: &str) -> Result<u32> {
        let old = self.uid_validity(mailbox)?;
        let new = old.checked_add(1).unwrap_or(1);
        self.set_uid_validity(mailbox, new)?;
        let seen = self.uid_validity(mailbox)?;
        ensure!(
            seen == new,
            "UIDVALIDITY of {mailbox} is {seen} after setting it to {new} (was {old})"
        );
        Ok(new)
    }

    fn write_files(&self) -> Result<()> {
        let d = self.dir.display();
        let instance = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "leadloop".into());
        let conf = format!(
            "# Generated by leadloop's test kit (tests/support/src/dovecot.rs).\n\
instance_name = {instance}\n\
base_dir = {d}/run\n\
state_dir = {d}/state\n\
log_path = {d}/dovecot.log\n\
protocols = imap\n\
listen = 127.0.0.1\n\
ssl = yes\n\
ssl_cert = <{d}/cert.pem\n\
ssl_key = <{d}/key.pem\n\
disable_plaintext_auth = no\n\
auth_mechanisms = plain login\n\
first_valid_uid = 1\n\
mail_fsync = never\n\
mail_location = maildir:~/Maildir\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%n {d}/users\n}}\n\
userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/mail/%n\n}}\n\
{namespace}\
protocol imap {{\n  mail_max_userip_connections = 1000\n}}\n\
service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {p1}\n  }}\n  \
inet_listener imaps {{\n    address = 127.0.0.1\n    port = {p2}\n    ssl = yes\n  }}\n}}\n",
            uid = self.mail_uid,
            gid = self.mail_gid,
            p1 = self.plain_port,
            p2 = self.tls_port,
            namespace = match &self.setup.namespace {
                Some((prefix, separator)) => format!(
                    "namespace inbox {{\n  inbox = yes\n  prefix = {prefix}\n  separator = {separator}\n}}\n"
                ),
                None => String::new(),
            },
        );
        fs::write(&self.conf, conf).context("writing dovecot.conf")?;
        fs::write(
            self.dir.join("users"),
            format!("{USER}:{{PLAIN}}{}\n", self.password),
        )
        .context("writing the users file")?;
        // The auth process runs as an unprivileged user and must read the users file.
        fs::set_permissions(self.dir.join("users"), fs::Permissions::from_mode(0o644))?;
        let maildir = self.maildir_path(USER);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub))?;
        }
        for p in [
            self.dir.join("mail"),
            self.dir.join("mail").join(USER),
            maildir.clone(),
            maildir.join("cur"),
            maildir.join("new"),
            maildir.join("tmp"),
        ] {
            chown(&p, self.mail_uid, self.mail_gid)?;
        }
        Ok(())
    }

    /// Starts `dovecot -F` in its own process group and waits for the greeting. Retries the
    /// start a few times: right after a SIGKILL, a dying login process may still hold the
    /// listening socket for some milliseconds.
    fn spawn_and_wait(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let stderr = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("stderr.log"))
                .context("opening stderr.log")?;
            let child = Command::new(tool("dovecot"))
                .arg("-F")
                .arg("-c")
                .arg(&self.conf)
                .stdin(Stdio::null())
                .stdout(stderr.try_clone()?)
                .stderr(stderr)
                // Own process group, so Drop can kill the master and all its children at once.
                .process_group(0)
                .spawn()
                .context("spawning `dovecot -F` (is dovecot-core installed and on PATH?)")?;
            self.child = Some(child);
            match self.wait_ready(deadline) {
                Ok(()) => return Ok(()),
                Err(ReadyError::Exited(status)) if Instant::now() < deadline => {
                    // Typically "Address already in use" after a restart; try again shortly.
                    let _ = status;
                    self.kill();
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.kill();
                    bail!(
                        "Dovecot did not become ready on 127.0.0.1:{} / {}: {msg}\n--- log tail ---\n{}",
                        self.plain_port,
                        self.tls_port,
                        self.log_tail(20)
                    );
                }
            }
        }
    }

    fn wait_ready(&mut self, deadline: Instant) -> std::result::Result<(), ReadyError> {
        let plain: SocketAddr = ([127, 0, 0, 1], self.plain_port).into();
        let tls: SocketAddr = ([127, 0, 0, 1], self.tls_port).into();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ReadyError::Exited(status.to_string()));
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::Timeout(READY_TIMEOUT));
            }
            if greets(plain) && TcpStream::connect_timeout(&tls, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs the master and, through the process group, every child it started.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            let _ = child.kill();
            let _ = child.wait();
            // Sweep the group: login/auth/imap processes would exit on their own once they
            // notice the master is gone, but a port or file could stay busy meanwhile.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
        // Killed processes may need a moment to release files in the dir.
        for _ in 0..20 {
            match fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break,
            }
        }
    }
}

#[derive(Debug)]
enum ReadyError {
    Exited(String),
    Timeout(Duration),
}

impl std::fmt::Display for ReadyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadyError::Exited(s) => write!(f, "dovecot exited during startup ({s})"),
            ReadyError::Timeout(d) => write!(f, "no `* OK` greeting within {d:?}"),
        }
    }
}

/// Absolute path of a Dovecot tool: `/usr/sbin` is not on every user's PATH.
fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// True if something on `addr` answers with an IMAP `* OK` greeting.
fn greets(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("* OK");
    let _ = stream.shutdown(std::net::Shutdown::Both);
    ok
}

/// A short, unique, world-readable (0755) temp dir: Dovecot's auth process must read the users
/// file and its unix sockets must fit the ~108-byte sun_path limit, so a long `$TMPDIR` is
/// replaced by `/tmp`.
fn make_temp_dir() -> Result<PathBuf> {
    let mut base = std::env::temp_dir();
    if base.as_os_str().len() > 40 {
        base = PathBuf::from("/tmp");
    }
    for _ in 0..100 {
        let n = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let r: u32 = rand::rng().random();
        let dir = base.join(format!(
            "lldc-{}-{n}-{:06x}",
            std::process::id(),
            r & 0xff_ffff
        ));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("chmod 755 {}", dir.display()))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", dir.display())),
        }
    }
    bail!(
        "could not create a unique temp dir under {}",
        base.display()
    )
}

/// Test CA plus a leaf certificate for localhost/127.0.0.1 (`ca.pem`, `cert.pem`, `key.pem` in
/// `dir`; also used by the SMTP tests). The leaf must be CA:FALSE:
/// rustls rejects a CA:TRUE certificate used as end entity (`CaUsedAsEndEntity`).
pub fn make_certs(dir: &Path) -> Result<()> {
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-days",
                "3650",
                "-subj",
                "/CN=leadloop test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    )?;
    run_openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "srv.csr",
            ],
        ]
        .concat(),
    )?;
    run_openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    )?;
    // CA certificate readable by anyone (clients); keys stay root-only (Dovecot reads them as
    // root through `ssl_key = <file`).
    fs::set_permissions(dir.join("ca.pem"), fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn run_openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (is it installed?)")?;
    ensure!(
        out.status.success(),
        "openssl {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Two distinct free loopback ports. Both listeners are held until both are chosen so the
/// kernel cannot hand out the same port twice; the small window before Dovecot binds them is
/// covered by the start retry.
fn free_ports() -> Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// uid of `user` from /etc/passwd and its primary gid.
fn lookup_user(user: &str) -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == user {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    bail!("no user `{user}` in /etc/passwd")
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", path.display()))
}

/// IMAP quoted string; refuses characters that would need a literal.
fn quote(s: &str) -> Result<String> {
    ensure!(
        !s.contains(['\r', '\n', '"', '\\']) && s.is_ascii(),
        "unsupported characters in IMAP string {s:?}"
    );
    Ok(format!("\"{s}\""))
}

/// Extracts the UID from `... OK [APPENDUID <validity> <uid>] ...`.
fn parse_appenduid(line: &str) -> Option<u32> {
    let upper = line.to_ascii_uppercase();
    let start = upper.find("[APPENDUID ")? + "[APPENDUID ".len();
    let rest = &line[start..];
    let end = rest.find(']')?;
    let mut parts = rest[..end].split_ascii_whitespace();
    let _validity = parts.next()?;
    parts.next()?.parse().ok()
}

/// Minimal blocking IMAP conversation over the plain loopback port, used by the fixture's own
/// helpers (APPEND with APPENDUID, SELECT for sync/UIDVALIDITY). Not a general client.
struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl RawImap {
    fn login(dc: &Dovecot) -> Result<RawImap> {
        let addr: SocketAddr = ([127, 0, 0, 1], dc.plain_port).into();
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut imap = RawImap {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            tag: 0,
        };
        let greeting = imap.read_line()?;
        ensure!(
            greeting.starts_with("* OK"),
            "unexpected greeting {greeting:?}"
        );
        let tag = imap.next_tag();
        imap.write(
            format!("{tag} LOGIN {} {}\r\n", quote(USER)?, quote(&dc.password)?).as_bytes(),
        )?;
        let done = imap.read_tagged(&tag)?;
        ensure!(
            done.starts_with(&format!("{tag} OK")),
            "LOGIN failed: {}\n--- log tail ---\n{}",
            done.trim_end(),
            dc.log_tail(10)
        );
        Ok(imap)
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("f{}", self.tag)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).context("writing to Dovecot")
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("reading from Dovecot")?;
        ensure!(n > 0, "Dovecot closed the connection");
        Ok(line)
    }

    /// Reads lines until the tagged completion for `tag`; returns that line. Skips literals
    /// in untagged responses (not expected for the commands used here, but harmless).
    fn read_tagged(&mut self, tag: &str) -> Result<String> {
        let prefix = format!("{tag} ");
        loop {
            let line = self.read_line()?;
            if line.starts_with(&prefix) {
                return Ok(line);
            }
            if let Some(n) = literal_len(&line) {
                let mut buf = vec![0u8; n];
                self.reader.read_exact(&mut buf)?;
            }
        }
    }

    /// SELECTs `mailbox` and returns its UIDVALIDITY.
    fn select(&mut self, mailbox: &str) -> Result<u32> {
        let tag = self.next_tag();
        self.write(format!("{tag} SELECT {}\r\n", quote(mailbox)?).as_bytes())?;
        let prefix = format!("{tag} ");
        let mut validity = None;
        loop {
            let line = self.read_line()?;
            if let Some(i) = line.find("[UIDVALIDITY ") {
                let rest = &line[i + "[UIDVALIDITY ".len()..];
                validity = rest.split(']').next().and_then(|v| v.trim().parse().ok());
            }
            if line.starts_with(&prefix) {
                ensure!(
                    line.starts_with(&format!("{tag} OK")),
                    "SELECT {mailbox} failed: {}",
                    line.trim_end()
                );
                break;
            }
        }
        validity.ok_or_else(|| anyhow!("SELECT {mailbox}: no UIDVALIDITY"))
    }

    fn logout(mut self) {
        let tag = self.next_tag();
        let _ = self.write(format!("{tag} LOGOUT\r\n").as_bytes());
        let _ = self.read_tagged(&tag);
    }
}

/// `{123}` at the end of a response line announces a literal of 123 bytes.
fn literal_len(line: &str) -> Option<usize> {
    let t = line.trim_end();
    let inner = t.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}
