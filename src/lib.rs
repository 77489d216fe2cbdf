pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod ingest;
pub mod store;
