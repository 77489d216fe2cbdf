pub mod classify;
pub mod config;
pub mod domain;
pub mod ingest;
pub mod store;
