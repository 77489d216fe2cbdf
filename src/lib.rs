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
//! Dependencies point one way, so each part can be read and tested alone. The modules stand in
//! layers, lowest first; a module uses modules of lower layers only, never one of its own layer
//! or above, so there is no import cycle. `tests/layers.rs` declares this order and fails on a
//! `crate::` path that points up or sideways, or when this list and its own differ.
//!
//! 1. [`domain`]: types that can only be built valid (email addresses, message kinds, lead,
//!    enrollment and outbox states, ids).
//! 2. Parts that know only `domain`:
//!    - [`diagnostics`]: problems in hand-written files with file, line, column and key, and
//!      errors with their causes on one log line.
//!    - [`metrics`]: what the daemon counts for Prometheus (`/metrics`): counters the workers
//!      bump as they go, and the database's state counts as last read.
//!    - [`classify`]: pure; raw bytes and rules in, one [`domain::MessageKind`] with the lead
//!      and the evidence out. No database, network or clock.
//!    - [`render`]: pure; a step's templates and a lead in, a complete RFC 5322 message out
//!      (unsubscribe headers and footer, our Message-ID, no header injection).
//!    - [`store`]: SQL only; records batches of messages, leads, events and the mailbox cursor
//!      in one transaction, on SQLite or PostgreSQL; enrollments, the outbox and the
//!      suppression list; the reports' counts, aggregated in the database.
//! 3. What leadloop does with what it knows:
//!    - [`sequence`]: sequence files, delays and send windows in the lead's time zone, caps,
//!      and the scheduler that claims due enrollments and enqueues their steps.
//!    - [`actions`]: what a classified message does to its lead (route to an owner, hand off
//!      to Sales, record and act on Sales' verdict, pause for an out-of-office, count bounces),
//!      called by ingest and by the CLI for the same actions.
//! 4. [`config`]: `leadloop.toml`, validated with file, line and key for every problem; builds
//!    the classifier's rules and loads the sequences.
//! 5. The workers that put the parts below to work:
//!    - [`send`]: the outbox sender: claims due messages, one in flight per SMTP connection,
//!      retries temporary failures, records bounces, never resends what may have arrived.
//!    - [`ingest`]: IMAP (TLS, UID cursor, IDLE, reconnects) and Maildir sources feeding one
//!      classify-and-record pipeline.
//!    - [`http`]: the optional HTTP listener (axum): health and readiness checks, the
//!      one-click unsubscribe link (RFC 8058) our messages carry, and the web view for the
//!      people in `[[user]]`: sign-in, sessions, CSRF and roles, the leads, the reports with
//!      their charts, and the outbox.
//! 6. [`daemon`]: the long-running tasks under one cancellation token, systemd notify and
//!    watchdog, reload.
//! 7. [`cli`]: the `leadloop` command. Only `daemon` and `cli` read the environment or signals.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actions;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnostics;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod render;
pub mod send;
pub mod sequence;
pub mod store;
