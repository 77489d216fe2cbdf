//! When Sales is told about a lead: `[handoff]`.
