//! leadloop turns a monitored mailbox into leads.
//!
//! Inquiries, contact-form notifications and forwarded inquiries land in one mailbox. leadloop
//! reads it over IMAP (or a Maildir), decides what each message is, and records leads, the
//! messages that made them and their timelines in SQLite or PostgreSQL. Outbound messages wait
//! in an outbox in the same database and leave over SMTP, each at most once.
//!
//! ```text
//! IMAP mailbox ──► ingest ──► classify ──► leads store ◄──► scheduler ──► render ──► outbox ──► send ──► SMTP
//!    ▲   (UID, IDLE)   (mail-parser, rules)   (sqlx)        (sequences,    (minijinja)            (lettre,
//!    │                                                       windows, caps)                        retries)
//!    │
//!    └── replies, bounces, auto-replies, unsubscribes, Sales feedback come back the same way
//! ```
//!
//! # Layout
//!
//! Dependencies point one way, so each part can be read and tested alone:
//!
//! - [`domain`]: types that can only be built valid (email addresses, message kinds, ids).
//! - [`classify`]: pure; raw bytes and rules in, one [`domain::MessageKind`] with the lead and
//!   the evidence out. No database, network or clock.
//! - [`config`]: `leadloop.toml`, validated with file, line and key for every problem; builds
//!   the classifier's rules.
//! - [`store`]: SQL only; records batches of messages, leads, events and the mailbox cursor in
//!   one transaction, on SQLite or PostgreSQL; enrollments, the outbox and the suppression list.
//! - [`render`]: pure; a step's templates and a lead in, a complete RFC 5322 message out
//!   (unsubscribe headers and footer, our Message-ID, no header injection).
//! - [`sequence`]: sequence files, delays and send windows in the lead's time zone, caps, and
//!   the scheduler that claims due enrollments and enqueues their steps.
//! - [`send`]: the outbox sender: claims due messages, one in flight per SMTP connection,
//!   retries temporary failures, records bounces, never resends what may have arrived.
//! - [`ingest`]: puts the pure parts and the store to work: IMAP (TLS, UID cursor, IDLE,
//!   reconnects) and Maildir sources feeding one classify-and-record pipeline.
//! - [`daemon`]: the long-running tasks under one cancellation token, systemd notify and
//!   watchdog, reload.
//! - [`cli`]: the `leadloop` command. Only `daemon` and `cli` read the environment or signals.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnostics;
pub mod domain;
pub mod ingest;
pub mod render;
pub mod send;
pub mod sequence;
pub mod store;
