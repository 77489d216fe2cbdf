//! A private, throw-away Postfix 3.7 for tests (its smoke tests are in the integration tests'
//! `postfix_fixture.rs`).
//!
//! `smtp-sink` and the scripted server of `smtp_server.rs` answer whatever they are scripted to;
//! this fixture shows what a real MTA refuses, with Postfix's own reply texts. Each
//! [`PrivatePostfix`] is a separate instance (its own `main.cf`, `master.cf`, queue, Maildirs
//! and loopback ports), so tests in parallel threads each get their own.
//!
//! How it runs, and why:
//! - `master -c DIR` is started directly, as a child of the test process, instead of
//!   `postfix start`: the `postfix-script` integrity checks cost ~1.7 s per start, and
//!   `postfix stop` sleeps a second while waiting. The queue directories that `postfix start`
//!   would create are made here, with the owners and modes of Postfix's `postfix-files`.
//! - The temp dir is `/tmp/llpf-XXXXXX`, not `$TMPDIR`: Postfix's unix sockets live under it
//!   and socket paths are limited to about 100 bytes. It is mode 755 so the `postfix` user's
//!   daemons can traverse it.
//! - Logging goes to `DIR/maillog` through the `postlog` service, since test machines often
//!   have no syslog. Postfix refuses a `maillog_file` outside `maillog_file_prefixes` (default
//!   `/var, /dev/stdout`), so the prefix is set to the instance dir.
//! - Config and map files are dated a minute back: Postfix waits until a just-written file is
//!   at least a second old before reading it.
//! - Every service runs with chroot off (Debian's `master.cf` chroots most of them, which would
//!   need a populated jail under the queue directory).
//! - Outbound delivery goes to the `error` transport: a test that sends to a real-looking
//!   remote address from loopback (allowed by `mynetworks`) must not make this Postfix contact
//!   the Internet. Such mail is accepted at SMTP time, as a real relay would, and then bounced.
//! - `smtpd_peername_lookup = no`: the client shows as `unknown[127.0.0.1]` instead of
//!   depending on the machine's resolver; a listener can override it.
//! - Stopping is a reload with an empty `master.cf` (the master terminates and reaps every
//!   child), then SIGTERM to the master, which the test process reaps. On a plain SIGTERM the
//!   master exits at once while its children are still exiting: they would outlive `Drop`,
//!   orphaned, and stay as zombies until PID 1 reaps them (which minimal containers and VMs
//!   may do late or never).
//!
//! Postfix's replies, as asserted by the smoke test `replies_of_a_real_postfix` (Postfix 3.7, default
//! `smtpd_delay_reject = yes`, so sender and client refusals come at RCPT TO):
//! - unknown user at a virtual mailbox domain, at RCPT TO:
//!   `550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual
//!   mailbox table`
//! - known user: `250 2.1.5 Ok`; after the data, `250 2.0.0 Ok: queued as <queue id>`; the
//!   Maildir copy starts with `Return-Path: <sender>` and has `Delivered-To: <rcpt>`.
//! - listener with `smtpd_sender_restrictions=reject`: MAIL FROM gets `250 2.1.0 Ok`, then RCPT
//!   TO gets `554 5.7.1 <lead@company.test>: Sender address rejected: Access denied`
//! - listener with `smtpd_recipient_restrictions=permit_sasl_authenticated,reject`, at RCPT
//!   TO: `554 5.7.1 <ana@example.org>: Recipient address rejected: Access denied`
//! - after the only recipient was refused, DATA gets `554 5.5.1 Error: no valid recipients`.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Owner of the Maildirs: `nobody`, so no system account's files are involved.
const MAIL_UID: u32 = 65534;
/// How long a start may take before it is reported as failed. A start takes ~50 ms; a loaded
/// CI machine running many tests at once can be much slower.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stop may take before the process group is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Starts whose master exits at once are retried with new ports: the usual cause is a port
/// taken by someone else between picking it and the master binding it.
const START_ATTEMPTS: usize = 3;

/// The services of Debian's default `master.cf` that a mail-receiving Postfix uses, with
/// chroot off (column 5). The `pipe` services for external programs are left out.
const SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A private Postfix on loopback: one instance per test, in a short temp dir under /tmp.
/// Stopped, with all its processes, and removed on drop.
pub struct PrivatePostfix {
    dir: PathBuf,
    ports: Vec<u16>,
    /// Known addresses (lowercased) and their Maildirs.
    mailboxes: Vec<(String, PathBuf)>,
    /// The master process; it leads the process group of every Postfix daemon it starts.
    master: Option<Child>,
    /// Set when a start failed: the dir stays for the log the error names.
    keep_dir: bool,
}

/// Why [`PrivatePostfix::start`] failed; the payload of its `io::Error`. The instance dir is
/// kept so the log can be read. `Debug` prints the same text as `Display`, so a test's
/// `.unwrap()` shows the log tail with its line breaks.
pub struct StartError {
    pub dir: PathBuf,
    pub log: PathBuf,
    /// The master's process id (and process group), if one was still running at the failure.
    pub master_pid: Option<u32>,
    pub reason: String,
    pub log_tail: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "private Postfix did not start: {}; its log is {} (instance dir kept)\n\
             --- log tail ---\n{}",
            self.reason,
            self.log.display(),
            self.log_tail
        )
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for StartError {}

impl PrivatePostfix {
    /// `known`: recipient addresses that exist (their domains become virtual mailbox domains;
    /// every other address at those domains gets Postfix's real "550 5.1.1 <x>: Recipient
    /// address rejected: User unknown in virtual mailbox table").
    /// `listeners`: one smtpd listener on 127.0.0.1 per entry, on a free port, each with the
    /// given `-o name=value` overrides, e.g. &["smtpd_sender_restrictions=reject"].
    ///
    /// Returns once every listener has sent its `220` greeting. Loopback clients may send to
    /// known users without AUTH (`mynetworks = 127.0.0.0/8`).
    pub fn start(known: &[&str], listeners: &[&[&str]]) -> io::Result<PrivatePostfix> {
        let mailboxes = mailbox_paths(known)?;
        for overrides in listeners {
            for o in *overrides {
                // master.cf splits fields on white space; a value with a space would silently
                // become a separate, meaningless argument.
                if !o.contains('=') || o.contains(char::is_whitespace) {
                    return Err(invalid(format!(
                        "listener override {o:?} is not name=value without white space \
                         (use commas in lists)"
                    )));
                }
            }
        }
        let dirs = postfix_dirs()?;
        let postfix_uid = lookup_id("/etc/passwd", "postfix")?;
        let postdrop_gid = lookup_id("/etc/group", "postdrop")?;

        let dir = tempfile::Builder::new()
            .prefix("llpf-")
            .tempdir_in("/tmp")?
            .keep();
        let mut pf = PrivatePostfix {
            mailboxes: mailboxes
                .into_iter()
                .map(|(addr, rel)| {
                    let path = dir.join("mail").join(rel);
                    (addr, path)
                })
                .collect(),
            dir,
            ports: Vec::new(),
            master: None,
            keep_dir: false,
        };
        // From here on Drop removes the dir (or keeps it after a failed start).
        fs::set_permissions(&pf.dir, fs::Permissions::from_mode(0o755))?;
        pf.make_dirs(postfix_uid, postdrop_gid)?;
        pf.write_main_cf(dirs)?;

        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let reserved = free_ports(listeners.len())?;
            pf.ports = reserved
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<io::Result<_>>()?;
            write_config(&pf.dir.join("master.cf"), &master_cf(&pf.ports, listeners))?;
            drop(reserved);
            let child = Command::new(Path::new(&dirs.daemon).join("master"))
                .arg("-c")
                .arg(&pf.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // No `process_group(0)`: the master calls setsid() itself (so its pid is the
                // daemons' process group) and treats a failing setsid() as fatal, which it is
                // for a process that already leads a group.
                .spawn();
            match child {
                Ok(child) => pf.master = Some(child),
                Err(e) => return Err(pf.fail(format!("could not run the Postfix master: {e}"))),
            }
            match pf.wait_ready() {
                Ready::Yes => return Ok(pf),
                Ready::MasterExited(status) => {
                    // The master's own early errors (such as a port in use) go to syslog
                    // only: postlogd is not running yet. Retry on new ports.
                    last_failure = format!(
                        "the master exited with {status} before greeting (its early errors \
                         go to syslog only; a listener port taken meanwhile is the usual cause)"
                    );
                    pf.stop_processes();
                }
                Ready::Failed(reason) => return Err(pf.fail(reason)),
            }
        }
        Err(pf.fail(format!("{last_failure}, {START_ATTEMPTS} times")))
    }

    /// The port of listener `listener` (index into `start`'s `listeners`), on 127.0.0.1.
    pub fn port(&self, listener: usize) -> u16 {
        self.ports[listener]
    }

    /// Complete messages delivered so far (bytes of each Maildir file), to every known user,
    /// oldest first.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for (_, maildir) in &self.mailboxes {
            all.extend(maildir_files(maildir));
        }
        sorted_contents(all)
    }

    /// Complete messages delivered so far to one known address, oldest first.
    pub fn delivered_to(&self, address: &str) -> Vec<Vec<u8>> {
        let address = address.to_ascii_lowercase();
        let files = self
            .mailboxes
            .iter()
            .filter(|(a, _)| *a == address)
            .flat_map(|(_, maildir)| maildir_files(maildir))
            .collect();
        sorted_contents(files)
    }

    /// Polls until at least n are delivered or the timeout passes.
    pub fn wait_delivered(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.delivered();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The instance's mail log, for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no mail log: {e})"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    /// The master's process id, which is also the process group of all Postfix daemons of
    /// this instance.
    pub fn master_pid(&self) -> Option<u32> {
        self.master.as_ref().map(Child::id)
    }

    /// The queue and data directories with the owners and modes Postfix's `postfix-files`
    /// gives them (the daemons check some of them), and the Maildir base for the mail user.
    fn make_dirs(&self, postfix_uid: u32, postdrop_gid: u32) -> io::Result<()> {
        let queue = self.dir.join("queue");
        let mk = |path: &Path, mode: u32, uid: u32, gid: Option<u32>| -> io::Result<()> {
            fs::create_dir(path)
                .and_then(|()| std::os::unix::fs::chown(path, Some(uid), gid))
                .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{}: {e} (a private Postfix needs root)", path.display()),
                    )
                })
        };
        mk(&queue, 0o755, 0, None)?;
        mk(&queue.join("pid"), 0o755, 0, None)?;
        for name in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            mk(&queue.join(name), 0o700, postfix_uid, None)?;
        }
        mk(
            &queue.join("maildrop"),
            0o730,
            postfix_uid,
            Some(postdrop_gid),
        )?;
        mk(
            &queue.join("public"),
            0o710,
            postfix_uid,
            Some(postdrop_gid),
        )?;
        mk(&self.dir.join("data"), 0o700, postfix_uid, None)?;
        // virtual(8) creates each Maildir on first delivery, as the mail user.
        mk(&self.dir.join("mail"), 0o755, MAIL_UID, Some(MAIL_UID))
    }

    fn write_main_cf(&self, dirs: &PostfixDirs) -> io::Result<()> {
        let dir = self.dir.display();
        let PostfixDirs { daemon, command } = dirs;
        let mut domains: Vec<&str> = self
            .mailboxes
            .iter()
            .map(|(a, _)| a.rsplit_once('@').map_or("", |(_, d)| d))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let mut map = String::new();
        for (addr, path) in &self.mailboxes {
            let rel = path
                .strip_prefix(self.dir.join("mail"))
                .expect("mailbox under mail/");
            // A trailing slash makes virtual(8) deliver in Maildir format.
            map.push_str(&format!("{addr} {}/\n", rel.display()));
        }
        write_config(&self.dir.join("vmailbox"), &map)?;
        let main_cf = format!(
            "\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = {command}
daemon_directory = {daemon}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = mx.test.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
default_transport = error:outbound mail is disabled in this test Postfix
relay_transport = error:outbound mail is disabled in this test Postfix
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_mailbox_base = {dir}/mail
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_UID}
",
            domains = domains.join(", "),
        );
        write_config(&self.dir.join("main.cf"), &main_cf)
    }

    fn wait_ready(&mut self) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<u16> = self.ports.clone();
        loop {
            if let Some(master) = self.master.as_mut()
                && let Ok(Some(status)) = master.try_wait()
            {
                return Ready::MasterExited(status.to_string());
            }
            // A daemon that cannot start (say, a bad -o value) logs a fatal error and the
            // master throttles it: connections are accepted but never greeted.
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains(" fatal: ") || l.contains(" panic: "))
            {
                return Ready::Failed(format!("Postfix logged: {line}"));
            }
            pending.retain(|port| !greets(*port));
            if pending.is_empty() {
                return Ready::Yes;
            }
            if Instant::now() >= deadline {
                return Ready::Failed(format!(
                    "no 220 greeting on 127.0.0.1 port(s) {pending:?} within {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every process, keeps the dir, and describes the failure.
    fn fail(&mut self, reason: String) -> io::Error {
        let master_pid = self.master_pid();
        self.stop_processes();
        self.keep_dir = true;
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        io::Error::other(StartError {
            dir: self.dir.clone(),
            log: self.log_path(),
            master_pid,
            reason,
            log_tail: tail,
        })
    }

    /// Stops the master and all its daemons and reaps them; see the module doc for why it
    /// reloads an empty `master.cf` first.
    fn stop_processes(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        let pid = master.id();
        let deadline = Instant::now() + STOP_TIMEOUT;
        // Signals go to the pid only while it is our unreaped child, so never to a process
        // that reused the number.
        if matches!(master.try_wait(), Ok(None)) {
            if write_config(&self.dir.join("master.cf"), "").is_ok()
                && signal("-HUP", &pid.to_string())
            {
                while group_members(pid).iter().any(|&p| p != pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            signal("-TERM", &pid.to_string());
            while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = master.kill();
            let _ = master.wait();
        }
        // Anything still in the group (a master that died or hung) is killed. The kernel does
        // not hand out a pid that is still some group's id, so these are this instance's.
        if !group_members(pid).is_empty() {
            signal("-KILL", &format!("-{pid}"));
        }
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        self.stop_processes();
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

enum Ready {
    Yes,
    MasterExited(String),
    Failed(String),
}

/// Where this machine's Postfix keeps its programs (`/usr/lib/postfix/sbin` on Debian,
/// `/usr/libexec/postfix` elsewhere), as its `postconf` reports once per process.
struct PostfixDirs {
    daemon: String,
    command: String,
}

fn postfix_dirs() -> io::Result<&'static PostfixDirs> {
    static DIRS: OnceLock<Result<PostfixDirs, String>> = OnceLock::new();
    let found = DIRS.get_or_init(|| {
        // postconf lives in an sbin directory, often not on a non-root PATH.
        let postconf = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join("postconf"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("postconf"));
        let out = Command::new(&postconf)
            .args(["-d", "-h", "daemon_directory", "command_directory"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "running {} (is postfix installed?): {e}",
                    postconf.display()
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().collect::<Vec<_>>()[..] {
            [daemon, command] if out.status.success() => Ok(PostfixDirs {
                daemon: daemon.to_string(),
                command: command.to_string(),
            }),
            _ => Err(format!(
                "unexpected output of postconf: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    });
    found.as_ref().map_err(|e| io::Error::other(e.clone()))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Lowercased addresses and their Maildir paths relative to the Maildir base:
/// `domain/local`. Postfix folds the lookup key to lower case, so the map must hold it so.
fn mailbox_paths(known: &[&str]) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for addr in known {
        let addr = addr.to_ascii_lowercase();
        let ok = addr
            .rsplit_once('@')
            .filter(|(local, domain)| {
                let plain = |s: &str| {
                    !s.is_empty()
                        && !s.starts_with('.')
                        && s.chars().all(|c| c.is_ascii_graphic() && c != '/')
                };
                plain(local) && plain(domain) && !domain.contains('@')
            })
            .map(|(local, domain)| Path::new(domain).join(local));
        match ok {
            Some(path) if !out.iter().any(|(a, _)| *a == addr) => out.push((addr, path)),
            Some(_) => {}
            None => return Err(invalid(format!("{addr:?} is not a plain local@domain"))),
        }
    }
    Ok(out)
}

fn master_cf(ports: &[u16], listeners: &[&[&str]]) -> String {
    let mut cf = String::new();
    for (i, (port, overrides)) in ports.iter().zip(listeners).enumerate() {
        // The syslog name tells the listeners apart in the log: postfix/l1/smtpd[...].
        cf.push_str(&format!(
            "127.0.0.1:{port} inet n - n - - smtpd -o syslog_name=postfix/l{i}"
        ));
        for o in *overrides {
            cf.push_str(" -o ");
            cf.push_str(o);
        }
        cf.push('\n');
    }
    cf.push_str(SERVICES);
    cf
}

/// Writes a config or map file dated a minute back. Postfix waits for a `main.cf` modified
/// within the last second or so to "settle" before reading it (re-reading every 300 ms), which
/// made each start ~1.5 s slower; the map and `master.cf` are dated back too, to be safe.
fn write_config(path: &Path, text: &str) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
}

/// Distinct free loopback ports, held until the caller drops the listeners (so two picks in
/// one start cannot collide).
fn free_ports(n: usize) -> io::Result<Vec<TcpListener>> {
    (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect()
}

/// The numeric id (third field) of `name` in an /etc/passwd- or /etc/group-style file.
fn lookup_id(file: &str, name: &str) -> io::Result<u32> {
    let text = fs::read_to_string(file)?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no `{name}` in {file} (is postfix installed?)"),
            )
        })
}

/// Whether an SMTP server on 127.0.0.1:`port` sends a 220 greeting now. Says QUIT, so the
/// probe shows in the log as a normal session.
fn greets(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220 ");
    if ok {
        let _ = stream.write_all(b"QUIT\r\n");
    }
    ok
}

/// Sends a signal with kill(1): the crate has no libc binding, and `Child::kill` only does
/// SIGKILL to one process.
fn signal(sig: &str, target: &str) -> bool {
    Command::new("kill")
        .args([sig, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ids of the processes in process group `pgid`, zombies included (as pgrep -g lists them).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let pgrp: u32 = rest.split_whitespace().nth(2)?.parse().ok()?;
            (pgrp == pgid).then_some(pid)
        })
        .collect()
}

/// Files of a Maildir's `new/` and `cur/`: virtual(8) writes into `tmp/` and renames, so these
/// are complete.
fn maildir_files(maildir: &Path) -> Vec<PathBuf> {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| fs::read_dir(maildir.join(sub)).ok())
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .collect()
}

/// Contents of `files`, ordered by modification time, then name.
fn sorted_contents(files: Vec<PathBuf>) -> Vec<Vec<u8>> {
    let mut stamped: Vec<(std::time::SystemTime, PathBuf)> = files
        .into_iter()
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    stamped.sort();
    stamped
        .into_iter()
        .filter_map(|(_, p)| fs::read(p).ok())
        .collect()
}
