pub mod classify;
pub mod domain;
