//! `[handoff]`, `[[route]]` and the loop policy, as config builds them.
