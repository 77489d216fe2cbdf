//! The `leadloop` binary as users, scripts and systemd run it: one way for every test, so what
//! each run inherits from the test process is decided in one place.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// One run of the binary under test: `leadloop ARGS [--config FILE]`.
///
/// `LEADLOOP_CONFIG` is removed from its environment: a developer's own setting must never
/// reach a test, which names its configuration (or none) itself.
pub struct Leadloop {
    cmd: Command,
}

impl Leadloop {
    /// `program ARGS`. The program is the binary built for this test run
    /// (`env!("CARGO_BIN_EXE_leadloop")`, which only the integration tests can name).
    pub fn new(program: impl AsRef<OsStr>, args: &[&str]) -> Leadloop {
        let mut cmd = Command::new(program);
        cmd.args(args).env_remove("LEADLOOP_CONFIG");
        Leadloop { cmd }
    }

    /// Appends `--config FILE`.
    pub fn config(mut self, file: &Path) -> Leadloop {
        self.cmd.arg("--config").arg(file);
        self
    }

    /// Sets the log filter (`LEADLOOP_LOG`).
    pub fn log(self, filter: &str) -> Leadloop {
        self.env("LEADLOOP_LOG", filter)
    }

    /// Sends stderr to `file` instead of capturing it, as systemd hands a service the journal's
    /// stream.
    pub fn stderr_to(mut self, file: std::fs::File) -> Leadloop {
        self.cmd.stderr(file);
        self
    }

    /// Sets one more environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Leadloop {
        self.cmd.env(key, value);
        self
    }

    /// Runs it to completion with stdout and stderr captured.
    pub fn output(mut self) -> Output {
        self.cmd.output().expect("running leadloop")
    }

    /// Runs it to completion: the exit code (-1 if a signal ended it), stdout and stderr.
    pub fn run(self) -> (i32, String, String) {
        let out = self.output();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Leadloop::run`], with `input` on its standard input (`--password-stdin`).
    pub fn run_with_stdin(mut self, input: &str) -> (i32, String, String) {
        use std::io::Write as _;
        let mut child = self
            .cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting leadloop");
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits before reading all of it closes the pipe: not our error.
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().expect("running leadloop");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts it in the background, as a daemon: stdout discarded, its log on the test's
    /// stderr.
    pub fn spawn(self) -> Child {
        self.spawn_with_stderr(Stdio::inherit())
    }

    /// Like [`Leadloop::spawn`], with its log on a pipe, for a test that waits for log lines.
    pub fn spawn_logging_to_pipe(self) -> Child {
        self.spawn_with_stderr(Stdio::piped())
    }

    fn spawn_with_stderr(mut self, stderr: Stdio) -> Child {
        self.cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting leadloop")
    }
}
