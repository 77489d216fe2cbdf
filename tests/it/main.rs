//! Integration tests: one binary (one link step), one module per part.

mod cli;
mod store;
mod support;
