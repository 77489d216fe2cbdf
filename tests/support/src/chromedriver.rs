//! Debian's chromedriver on a free loopback port, for the tests that use the web view as a
//! person does: in a real browser (Debian's chromium, headless), through WebDriver.
//!
//! Each [`ChromeDriver`] has its own folder: chromium's profile (so no two tests share cookies
//! or a lock on the default profile) and chromedriver's log, shown when a start fails. The
//! driver runs in a process group of its own and starts chromium inside it, so dropping the
//! value kills both, even when a test panics before it closes its WebDriver session.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{is_root, kill_group, loopback_answer};

/// Where Debian's `chromium` package installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where Debian's `chromium-driver` package installs the driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the driver may take to answer `/status` as ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running chromedriver; it and the browsers it started are killed on drop, and its folder
/// removed.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Whether both packages are installed (the test that needs them says so when not).
    pub fn available() -> bool {
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
    }

    /// Starts chromedriver on a free loopback port and waits until it says it is ready.
    ///
    /// # Errors
    /// The driver is missing, exits, or is not ready within 30 seconds.
    pub fn start() -> Result<ChromeDriver> {
        let dir = tempfile::Builder::new()
            .prefix("leadloop-chrome-")
            .tempdir()
            .context("a folder for chromium's profile")?;
        fs::create_dir_all(dir.path().join("profile"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(CHROMEDRIVER);
        // Its own process group, which the browsers it starts join: both go on drop.
        cmd.process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER} (is chromium-driver installed?)"))?;
        let mut driver = ChromeDriver { child, port, dir };
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if let Some(status) = driver.child.try_wait()? {
                bail!(
                    "chromedriver exited at start ({status}); its log:\n{}",
                    driver.log()
                );
            }
            if driver.ready() {
                return Ok(driver);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "chromedriver was not ready within {READY_TIMEOUT:?}; its log:\n{}",
            driver.log()
        )
    }

    /// `http://127.0.0.1:PORT`, the WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The command-line switches for chromium: headless, this driver's own profile, a fixed
    /// window size (screenshots of one size), and no sandbox only where it cannot work, as root.
    pub fn chromium_args(&self) -> Vec<String> {
        let mut args = vec![
            "--headless=new".to_owned(),
            format!("--user-data-dir={}", self.profile().display()),
            "--window-size=1280,1024".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-sync".to_owned(),
        ];
        if is_root() {
            args.push("--no-sandbox".to_owned());
        }
        args
    }

    /// Chromium's profile folder.
    pub fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// The last lines of chromedriver's log, for failure messages.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `GET /status` answers `"ready": true`.
    fn ready(&self) -> bool {
        loopback_answer(
            self.port,
            b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .contains("\"ready\":true")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
