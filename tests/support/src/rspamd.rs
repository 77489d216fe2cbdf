//! A private rspamd (Debian's package) on a free loopback port, for the spam checks of ingest.
//!
//! It runs with the packaged rules, its own configuration file, a DNS server that answers
//! nothing (so no test waits on the network), one scanning worker and no controller. One extra
//! rule makes scores predictable: a message whose subject contains [`SUSPICIOUS`] gets
//! [`SUSPICIOUS_SCORE`] points. The GTUBE line ([`GTUBE`]) makes rspamd answer `reject`.
//!
//! rspamd compiles its regular expressions at start-up (about 20 seconds the first time on a
//! small machine) and caches them: the cache folder is shared by every start on the machine.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{is_root, kill_group, loopback_answer};

/// Where Debian installs rspamd.
pub const RSPAMD: &str = "/usr/bin/rspamd";

/// A subject containing this gets [`SUSPICIOUS_SCORE`] extra points.
pub const SUSPICIOUS: &str = "leadloop-test-suspicious";

/// The extra points of [`SUSPICIOUS`].
pub const SUSPICIOUS_SCORE: f64 = 3.0;

/// rspamd's reject test line (its own GTUBE variant).
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running rspamd; killed and its folder removed on drop.
pub struct Rspamd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Rspamd {
    /// Whether the package is installed (the test that needs it says so when it is not).
    pub fn available() -> bool {
        std::path::Path::new(RSPAMD).exists()
    }

    /// Starts rspamd and waits until its scanning worker answers `/ping`.
    ///
    /// # Errors
    /// rspamd is missing or does not come up within two minutes.
    pub fn start() -> Result<Rspamd> {
        let dir = std::env::temp_dir().join(format!(
            "llrspamd-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["run", "log", "local/local.d"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        // The compiled expressions are the slow part of a start: kept across runs.
        let db = std::env::temp_dir().join("leadloop-rspamd-db");
        fs::create_dir_all(&db)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let map = dir.join("local/local.d/suspicious.map");
        fs::write(&map, format!("/{SUSPICIOUS}/i\n"))?;
        fs::write(
            dir.join("local/local.d/multimap.conf"),
            format!(
                "LEADLOOP_TEST_SUSPICIOUS {{\n  type = \"header\";\n  header = \"Subject\";\n  regexp = true;\n  map = \"{}\";\n  score = {SUSPICIOUS_SCORE};\n}}\n",
                map.display()
            ),
        )?;
        let conf = dir.join("rspamd.conf");
        fs::write(
            &conf,
            format!(
                r#".include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns {{ nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }}
}}
logging {{ type = "file"; filename = "$LOGDIR/rspamd.log"; level = "warning"; }}
worker "normal" {{
    bind_socket = "127.0.0.1:{port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
"#
            ),
        )?;
        let mut cmd = Command::new(RSPAMD);
        // Its own process group: its workers are stopped with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("-f");
        // rspamd refuses to run its workers as root unless told it may.
        if is_root() {
            cmd.args(["-i", "-u", "root", "-g", "root"]);
        }
        cmd.arg("-c")
            .arg(&conf)
            .arg("--var")
            .arg(format!("DBDIR={}", db.display()))
            .arg("--var")
            .arg(format!("RUNDIR={}", dir.join("run").display()))
            .arg("--var")
            .arg(format!("LOGDIR={}", dir.join("log").display()))
            .arg("--var")
            .arg(format!("LOCAL_CONFDIR={}", dir.join("local").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {RSPAMD} (is rspamd installed?)"))?;
        let mut rspamd = Rspamd { child, port, dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if let Some(status) = rspamd.child.try_wait()? {
                bail!(
                    "rspamd exited at start ({status}); its log:\n{}",
                    rspamd.log()
                );
            }
            if rspamd.pong() {
                return Ok(rspamd);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "rspamd did not answer within 120 s; its log:\n{}",
            rspamd.log()
        )
    }

    /// Its scanning worker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, as `[spam] rspamd_url` names it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log/rspamd.log")).unwrap_or_default()
    }

    fn pong(&self) -> bool {
        loopback_answer(self.port, b"GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .contains("pong")
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // The whole group, workers included: a worker left behind would keep answering.
        kill_group(&mut self.child);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
