//! leadloop's test kit: everything the integration tests (and `leadloop-bench`) need around
//! the daemon, in one place. The rule is "real components in tests", so most of it starts real
//! servers on loopback, each instance private to one test:
//!
//! - [`dovecot`]: a Dovecot IMAP server with its own CA, users and Maildir;
//! - [`smtp_sink`]: Postfix's `smtp-sink`, dumping what it accepts;
//! - [`smtp_server`]: a scripted SMTP server for faults `smtp-sink` cannot produce;
//! - [`postfix`]: a private Postfix, for a real MTA's refusals;
//! - [`rspamd`]: a private rspamd, for the spam checks of ingest;
//! - [`chromedriver`]: Debian's chromedriver and headless chromium, for the web view in a real
//!   browser;
//! - [`config`]: the `leadloop.toml` a test runs with;
//! - [`bin`]: the `leadloop` binary run as users, scripts and systemd do;
//! - [`clock`]: the fixed instant dated tests count from.
//!
//! It does not depend on `leadloop` itself: it drives the daemon from outside, as its users and
//! peers do, so a change inside the daemon never has to change the kit.

pub mod bin;
pub mod chromedriver;
pub mod clock;
pub mod config;
pub mod dovecot;
pub mod postfix;
pub mod process;
pub mod rspamd;
pub mod smtp_server;
pub mod smtp_sink;
