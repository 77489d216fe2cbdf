//! Integration tests: one binary (one link step), one module per part.

mod store;
mod support;
