//! Owner routing: `[[route]]` rules, first match wins.
