//! Lead actions: what a classified message does to its lead beyond recording it.
//!
//! `classify` says what a message is; the store records it. In between, this module decides
//! what follows for the lead: which owner it is routed to ([`route`]), whether Sales is told
//! ([`trigger`]), what Sales' verdict changes, how long an out-of-office pauses its sequences,
//! and when bounces suppress its address. Ingest calls it for every batch, and the CLI for the
//! same actions typed by a person, so both act alike.

pub mod route;
pub mod trigger;
pub mod settings;
