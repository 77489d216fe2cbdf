//! Identifiers, each its own type so one can never be passed where another is meant (a lead id
//! where an enrollment id belongs, a step id where a sequence name does).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a database id: a transparent `i64` newtype.
macro_rules! row_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

/// Defines a name: a transparent `String` newtype that reads as a `&str`.
macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a name that was already checked where it was read.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            // `pad`, so a table's `{:<16}` lines it up as it did the text.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        // Reads as text wherever text is read (`starts_with`, `Option::as_deref`); nothing
        // turns into an id without saying which.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

row_id!(
    /// Database id of a lead.
    LeadId
);
row_id!(
    /// Database id of a lead's enrollment in one sequence.
    EnrollmentId
);
row_id!(
    /// Database id of an outbox row.
    OutboxId
);

text_id!(
    /// A sequence's name: its file name without `.toml`.
    SequenceName
);
text_id!(
    /// A step's id within its sequence (`[[step]] id`).
    StepId
);
text_id!(
    /// A message's Message-ID, without angle brackets.
    MessageId
);
