//! Integration tests against real servers: a private Dovecot, a private Postfix, smtp-sink,
//! a scripted SMTP server, SQLite files and, when
//! `LEADLOOP_TEST_DATABASE_URL` names one, PostgreSQL. One test binary, one module per part,
//! so the fixture and helpers are compiled and linked once.

#[path = "../../src/bin/leadloop-bench/dovecot.rs"]
mod dovecot;
#[path = "../../src/bin/leadloop-bench/smtp_sink.rs"]
mod smtp_sink;

mod classify;
mod cli;
mod daemon;
mod dovecot_fixture;
mod ingest_imap;
mod ingest_maildir;
mod outbox;
mod postfix;
mod postfix_refusals;
mod refusals;
mod send;
mod sending;
mod sequence;
mod smtp_server;
mod store;
mod support;
mod undo;
