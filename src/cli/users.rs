//! `leadloop users add|passwd|list`: passwords for the web view's `[[user]]`s.
//!
//! Who may sign in, and as what, is the configuration's `[[user]]` list; this command only
//! sets passwords (kept as argon2id hashes in the database) and shows who has one and how many
//! sessions they have. A password is read from the terminal without echo, twice, or with
//! `--password-stdin` as one line from standard input (scripts); it is never printed or logged.

use std::io::{BufRead as _, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::Subcommand;
use serde_json::json;
use tracing::info;

use super::output::{Cell, Column, Format, Table};
use crate::config::{Config, WebUser};
use crate::daemon;
use crate::domain::EmailAddress;

/// `leadloop users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Set the first password of a `[[user]]`.
    Add {
        /// The user's address, as `[[user]] email` has it.
        email: String,
        /// Read the password as one line from standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password; every session of theirs ends.
    Passwd {
        /// The user's address.
        email: String,
        /// Read the password as one line from standard input instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Each `[[user]]` with role, whether a password is set, and live sessions.
    List {
        /// One JSON object per user per line.
        #[arg(long)]
        json: bool,
    },
}

/// `users add` for someone who has a password: asked before the password is typed, and again
/// when it is stored, in case another `users add` came first.
fn has_password_already(email: &impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{email} has a password already; use `leadloop users passwd {email}` to change it"
    )
}

/// Runs `leadloop users …`.
///
/// # Errors
/// An address not in `[[user]]`, a password refused, the terminal, or the database.
pub async fn users(
    config: &Config,
    cmd: UsersCommand,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Add {
            email,
            password_stdin,
        } => {
            let user = configured(config, &email)?;
            let store = daemon::open_store(config).await?;
            let result = async {
                if store.password_hash(user.email.as_str()).await?.is_some() {
                    return Err(has_password_already(&user.email));
                }
                let hash = new_hash(password_stdin).await?;
                if !store
                    .add_password(user.email.as_str(), &hash, Utc::now())
                    .await?
                {
                    return Err(has_password_already(&user.email));
                }
                info!(user = %user.email, "password set");
                writeln!(out, "password set for {} ({})", user.email, user.role)?;
                Ok(ExitCode::SUCCESS)
            }
            .await;
            store.close().await;
            result
        }
        UsersCommand::Passwd {
            email,
            password_stdin,
        } => {
            let user = configured(config, &email)?;
            let store = daemon::open_store(config).await?;
            let result = async {
                if store.password_hash(user.email.as_str()).await?.is_none() {
                    anyhow::bail!(
                        "{} has no password yet; use `leadloop users add {}` to set the first",
                        user.email,
                        user.email
                    );
                }
                let hash = new_hash(password_stdin).await?;
                let ended = store
                    .change_password(user.email.as_str(), &hash, Utc::now())
                    .await?
                    .with_context(|| format!("{}'s password vanished meanwhile", user.email))?;
                info!(user = %user.email, sessions_ended = ended, "password changed");
                writeln!(
                    out,
                    "password changed for {}; {ended} session{} ended",
                    user.email,
                    if ended == 1 { "" } else { "s" }
                )?;
                Ok(ExitCode::SUCCESS)
            }
            .await;
            store.close().await;
            result
        }
        UsersCommand::List { json } => {
            let store = daemon::open_store(config).await?;
            let result = async {
                let passwords = store.with_password().await?;
                let sessions = store.active_sessions(Utc::now()).await?;
                let rows = config.users.iter().map(|u| {
                    let email = u.email.as_str();
                    let password = passwords.iter().any(|p| p == email);
                    let live = sessions
                        .iter()
                        .find(|(e, _)| e == email)
                        .map_or(0, |(_, n)| *n);
                    (u, password, live)
                });
                if json {
                    for (u, password, sessions) in rows {
                        writeln!(
                            out,
                            "{}",
                            json!({
                                "email": u.email.as_str(),
                                "name": u.name,
                                "role": u.role.as_str(),
                                "password": password,
                                "sessions": sessions,
                            })
                        )?;
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                if config.users.is_empty() {
                    writeln!(out, "no [[user]] in the configuration: nobody can sign in")?;
                    return Ok(ExitCode::SUCCESS);
                }
                let mut table = Table::new(vec![
                    Column::text("email"),
                    Column::text("name"),
                    Column::text("role"),
                    Column::text("password"),
                    Column::number("sessions"),
                ]);
                for (u, password, sessions) in rows {
                    table.push(vec![
                        Cell::text(u.email.as_str()),
                        Cell::opt(u.name.as_deref()),
                        Cell::text(u.role.as_str()),
                        Cell::text(if password { "set" } else { "not set" }),
                        Cell::int(sessions),
                    ]);
                }
                table.write(out, Format::Table)?;
                Ok(ExitCode::SUCCESS)
            }
            .await;
            store.close().await;
            result
        }
    }
}

/// The `[[user]]` with this address.
fn configured<'a>(config: &'a Config, email: &str) -> anyhow::Result<&'a WebUser> {
    let address = EmailAddress::parse(email)
        .map_err(|e| anyhow::anyhow!("'{email}' is not an email address: {e}"))?;
    config
        .users
        .iter()
        .find(|u| u.email == address)
        .with_context(|| {
            format!(
                "{address} is not a [[user]] in {}; add it there (with its role) first",
                config.path.display()
            )
        })
}

/// Reads a new password and hashes it (on the blocking pool: argon2 is slow by design).
async fn new_hash(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("New password: ")
            .context("reading the password from the terminal (or use --password-stdin)")?;
        let second = rpassword::prompt_password("Again: ")
            .context("reading the password from the terminal")?;
        if first != second {
            anyhow::bail!("the two passwords differ; nothing changed");
        }
        first
    };
    tokio::task::spawn_blocking(move || crate::http::hash_password(&password))
        .await
        .context("hashing the password")?
        .map_err(|e| anyhow::anyhow!("{e}; nothing changed"))
}
