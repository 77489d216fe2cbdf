//! The `leadloop.toml` a test runs with: one builder for every configuration the tests write,
//! so a change to the configuration format is made here once.
//!
//! Sections come out in the order they are added. Tests that edit the written file look for
//! lines as this module writes them (`poll_interval = "1s"`, `timeout = "1s"`,
//! `host = "127.0.0.1"`, `ca_file = …`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::dovecot::Dovecot;

/// A configuration under construction, to be written into a test's own directory.
pub struct ConfigFile {
    dir: PathBuf,
    text: String,
    /// Files the configuration names, written beside it: (path, contents).
    files: Vec<(PathBuf, String)>,
    /// Maildirs to create (with `cur/`, `new/`, `tmp/`).
    maildirs: Vec<PathBuf>,
}

impl ConfigFile {
    /// `[database]` at `db_url`; the file and whatever it names will live in `dir`.
    pub fn new(dir: &Path, db_url: &str) -> ConfigFile {
        ConfigFile {
            dir: dir.to_owned(),
            text: format!("\n[database]\nurl = {}\n", toml_str(db_url)),
            files: Vec::new(),
            maildirs: Vec::new(),
        }
    }

    /// The shipped demo configuration (`config/leadloop.toml` under `repo`) on `db_url`, with
    /// its relative paths pointed at the repository and its file outbox at `dir/outbox`.
    pub fn demo(dir: &Path, repo: &Path, db_url: &str) -> ConfigFile {
        let at = |p: &str| toml_str(&repo.join("config").join(p).display().to_string());
        let shipped = repo.join("config/leadloop.toml");
        let text = std::fs::read_to_string(&shipped)
            .unwrap_or_else(|e| panic!("reading {}: {e}", shipped.display()))
            .replace("sqlite://../var/leadloop.db?mode=rwc", db_url)
            .replace(
                "path = \"demo/inbox\"",
                &format!("path = {}", at("demo/inbox")),
            )
            .replace("dir = \"sequences\"", &format!("dir = {}", at("sequences")))
            .replace(
                "file:../var/outbox",
                &format!("file:{}", dir.join("outbox").display()),
            )
            .replace(
                "templates = \"templates\"",
                &format!("templates = {}", at("templates")),
            );
        ConfigFile {
            dir: dir.to_owned(),
            text,
            files: Vec::new(),
            maildirs: Vec::new(),
        }
    }

    /// `[imap]` on the private Dovecot as its user, trusting its CA, polling every second.
    /// `tls` is the `imap.tls` mode: `implicit` connects to the IMAPS port, any other mode to
    /// the plain one. The password is read from a file beside the configuration. `extra` is
    /// appended as is: more `[imap]` keys, or whole sections after them.
    pub fn imap(mut self, dc: &Dovecot, tls: &str, extra: &str) -> ConfigFile {
        let password_file = self.dir.join("imap-password");
        self.files
            .push((password_file.clone(), format!("{}\n", dc.password())));
        let port = if tls == "implicit" {
            dc.tls_port()
        } else {
            dc.plain_port()
        };
        let _ = write!(
            self.text,
            "\n[imap]\nhost = \"{host}\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\n\
             user = \"{user}\"\npassword_file = \"{pw}\"\npoll_interval = \"1s\"\n{extra}\n",
            host = dc.host(),
            ca = dc.ca_pem_path().display(),
            user = dc.user(),
            pw = password_file.display(),
        );
        self
    }

    /// `[maildir]` at `path` (relative to the configuration; created empty), polled every
    /// second.
    pub fn maildir(mut self, path: &str) -> ConfigFile {
        self.maildirs.push(self.dir.join(path));
        let _ = write!(
            self.text,
            "\n[maildir]\npath = {}\npoll_interval = \"1s\"\n",
            toml_str(path)
        );
        self
    }

    /// A `[[mailbox]]` named `name` on the private Dovecot as its user, reading `folder` over
    /// implicit TLS, polled every second, with its own password file beside the
    /// configuration. `extra` is appended to the entry as is (`channel`, `owner`, …).
    pub fn imap_mailbox(
        mut self,
        name: &str,
        dc: &Dovecot,
        folder: &str,
        extra: &str,
    ) -> ConfigFile {
        let password_file = self.dir.join(format!("{name}-password"));
        self.files
            .push((password_file.clone(), format!("{}\n", dc.password())));
        let _ = write!(
            self.text,
            "\n[[mailbox]]\nname = {name}\nhost = \"{host}\"\nport = {port}\nca_file = \"{ca}\"\n\
             user = \"{user}\"\npassword_file = \"{pw}\"\nfolder = {folder}\npoll_interval = \"1s\"\n{extra}\n",
            name = toml_str(name),
            host = dc.host(),
            port = dc.tls_port(),
            ca = dc.ca_pem_path().display(),
            user = dc.user(),
            pw = password_file.display(),
            folder = toml_str(folder),
        );
        self
    }

    /// A `[[mailbox]]` named `name` reading the Maildir at `path` (relative to the
    /// configuration; created empty), polled every second. `extra` is appended to the entry.
    pub fn maildir_mailbox(mut self, name: &str, path: &str, extra: &str) -> ConfigFile {
        self.maildirs.push(self.dir.join(path));
        let _ = write!(
            self.text,
            "\n[[mailbox]]\nname = {}\npath = {}\npoll_interval = \"1s\"\n{extra}\n",
            toml_str(name),
            toml_str(path)
        );
        self
    }

    /// `[identity]`: the company's own `addresses` and, if any, `domains`.
    pub fn identity(mut self, addresses: &[&str], domains: &[&str]) -> ConfigFile {
        let _ = write!(
            self.text,
            "\n[identity]\naddresses = {}\n",
            toml_list(addresses)
        );
        if !domains.is_empty() {
            let _ = writeln!(self.text, "domains = {}", toml_list(domains));
        }
        self
    }

    /// `[smtp]`: plain SMTP to 127.0.0.1:`port`, 8 connections, one-second timeout and first
    /// retry, so tests of failures do not wait.
    pub fn smtp(mut self, port: u16) -> ConfigFile {
        let _ = write!(
            self.text,
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             hello_name = \"sender.test\"\nconnections = 8\ntimeout = \"1s\"\nretry_initial = \"1s\"\n"
        );
        self
    }

    /// Whole sections, appended as written.
    pub fn raw(mut self, text: &str) -> ConfigFile {
        self.text.push('\n');
        self.text.push_str(text);
        self
    }

    /// Nurturing to files: `[sequences]` with these sequence files (`name`, TOML) and
    /// templates (`file name`, text) under `sequences/` and `templates/`, one `[[sender]]`
    /// (`team`, hello@company.com), and `[smtp]` writing each message as a file into
    /// `outbox/`, where tests read what was sent.
    pub fn nurture(mut self, sequences: &[(&str, &str)], templates: &[(&str, &str)]) -> ConfigFile {
        for (name, text) in sequences {
            let path = self.dir.join("sequences").join(format!("{name}.toml"));
            self.files.push((path, (*text).to_owned()));
        }
        for (name, text) in templates {
            let path = self.dir.join("templates").join(name);
            self.files.push((path, (*text).to_owned()));
        }
        let _ = write!(
            self.text,
            "\n[sequences]\ndir = \"sequences\"\ntemplates = \"templates\"\n\n\
             [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
             [smtp]\ntransport = {}\n",
            toml_str(&format!("file:{}", self.dir.join("outbox").display()))
        );
        self
    }

    /// Writes `leadloop.toml` and what it names into the directory; returns the file's path.
    pub fn write(self) -> PathBuf {
        for maildir in &self.maildirs {
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(maildir.join(sub)).expect("creating a test Maildir");
            }
        }
        for (path, contents) in &self.files {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("creating a folder the configuration names");
            }
            std::fs::write(path, contents).expect("writing a file the configuration names");
        }
        let path = self.dir.join("leadloop.toml");
        std::fs::write(&path, &self.text).expect("writing the test configuration");
        path
    }
}

/// A TOML basic string. Rust's `Debug` escapes agree with TOML's for what tests put there.
fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}
