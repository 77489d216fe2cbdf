//! Integration tests against real servers (one test binary, so the Dovecot fixture and
//! helpers are compiled once).

#[path = "../../src/bin/leadloop-bench/dovecot.rs"]
mod dovecot;

mod dovecot_fixture;
