//! Integration tests against real servers: a private Dovecot, a private Postfix, smtp-sink,
//! a scripted SMTP server, headless chromium, SQLite files and, when
//! `LEADLOOP_TEST_DATABASE_URL` names one, PostgreSQL. One test binary, one module per part,
//! so the helpers are compiled and linked once. The servers, the configuration builder, the
//! binary runner and the clock come from the test kit (`tests/support`, `leadloop-testkit`);
//! `support` adds what needs the library or this binary.

use leadloop_testkit::{chromedriver, dovecot, postfix, rspamd, smtp_server, smtp_sink};

mod browser;
mod classify;
mod cli;
mod daemon;
mod data;
mod digest;
mod dovecot_fixture;
mod dry_run;
mod failover;
mod form_learn;
mod http;
mod imap_folders;
mod imap_scripted;
mod imap_trouble;
mod ingest_imap;
mod ingest_maildir;
mod mailboxes;
mod metrics;
mod outbox;
mod plan;
mod postfix_fixture;
mod postfix_refusals;
mod refusals;
mod report;
mod sales;
mod score;
mod send;
mod sending;
mod sequence;
mod spam;
mod store;
mod support;
mod undo;
mod web_auth;
mod web_pages;
mod web_routes;
