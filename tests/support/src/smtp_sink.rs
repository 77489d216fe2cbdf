//! A private Postfix `smtp-sink` on a free loopback port, dumping every message it accepts to
//! a file of its own, for tests and benchmarks of the sender.
//!
//! Both the integration tests and `leadloop-bench` use it.
//!
//! `smtp-sink` answers every session alike; its fault options (`-r RCPT` for a 450, `-f RCPT`
//! with `-B "550 …"` for a 5xx, `-w` to delay the reply to DATA) are passed through `extra`.
//! Dumps are one file per accepted message (`-d DIR/m.`), LF line ends, prefixed by
//! smtp-sink's own `X-Client-Addr`, `X-Mail-Args`, `X-Rcpt-Args` and `Received` headers.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the Postfix tools live on Debian.
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// Postfix's load generator, the sender benchmark's reference.
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running `smtp-sink`; killed and its dump folder removed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    /// Starts `smtp-sink` on a free loopback port with `extra` options, dumping to a new
    /// folder, and waits until it answers.
    ///
    /// # Errors
    /// `smtp-sink` is missing or does not come up.
    pub fn start(extra: &[&str]) -> Result<SmtpSink> {
        Self::launch(true, extra)
    }

    /// Like [`SmtpSink::start`], but accepted messages are discarded, not dumped (benchmarks:
    /// the sink's own disk writes would otherwise be part of what is measured).
    ///
    /// # Errors
    /// `smtp-sink` is missing or does not come up.
    pub fn start_discarding(extra: &[&str]) -> Result<SmtpSink> {
        Self::launch(false, extra)
    }

    fn launch(dump: bool, extra: &[&str]) -> Result<SmtpSink> {
        let dir = std::env::temp_dir().join(format!(
            "llsink-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("dump"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let template = format!("{}/dump/m.", dir.display());
        let mut cmd = Command::new(SMTP_SINK);
        // As root smtp-sink insists on dropping privileges; root keeps the dump folder
        // writable without chowning it.
        cmd.args(["-u", "root"]);
        if dump {
            cmd.args(["-d", &template]);
        }
        cmd.args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {SMTP_SINK} (is postfix installed?)"))?;
        let mut sink = SmtpSink { child, port, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sink.child.try_wait()? {
                bail!("smtp-sink exited at start: {status}");
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("smtp-sink does not answer on port {port}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(sink)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding one file per accepted message.
    pub fn dump_dir(&self) -> PathBuf {
        self.dir.join("dump")
    }

    /// How many messages it has accepted so far.
    pub fn count(&self) -> usize {
        fs::read_dir(self.dump_dir()).map_or(0, |d| d.count())
    }

    /// Every accepted message as dumped (smtp-sink's headers first, LF line ends).
    ///
    /// smtp-sink creates a dump file when a transaction starts and writes it as data arrives;
    /// a finished dump ends with an empty line. Dumps still being written are waited for (up
    /// to two seconds), so a caller that saw the server accept a message reads all of it.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let mut files: Vec<PathBuf> = fs::read_dir(self.dump_dir())
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            let dumps: Vec<Vec<u8>> = files.iter().filter_map(|p| fs::read(p).ok()).collect();
            if dumps.iter().all(|d| d.ends_with(b"\n\n"))
                || start.elapsed() > Duration::from_secs(2)
            {
                return dumps;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Empties the dump folder (between benchmark runs).
    pub fn clear(&self) -> Result<()> {
        clear_dir(&self.dump_dir())
    }
}

fn clear_dir(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir)? {
        fs::remove_file(e?.path())?;
    }
    Ok(())
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
