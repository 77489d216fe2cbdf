//! Types every other part speaks in, each of which can only be built valid.
//!
//! Parsing happens once at the edge (a header, a config value, a CLI argument); past that point
//! the rest of the program can rely on an [`EmailAddress`] being lower-cased and well formed, so
//! the same person is never two leads because of a capital letter.
//!
//! This is the bottom layer: it imports nothing else from the crate. States and kinds are
//! enums with one stable lower-case name each ([`LeadStatus::as_str`]); the database stores
//! that name as text on both backends, and the store converts at its boundary, refusing a
//! value the code does not know with an [`UnknownValue`] naming it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod cron;
mod ids;
mod lead;
mod message;
mod state;

pub use cron::parse_cron;
pub use ids::{EnrollmentId, LeadId, MessageId, OutboxId, SequenceName, StepId};
pub use lead::Lead;
pub use message::{
    Bounce, BounceAction, BounceReason, Classification, FailedRecipient, MessageKind, Person,
};
pub use state::{
    EnrollmentState, HandoffKind, HandoffState, LeadStatus, OutboxState, UnknownValue, Verdict,
    VerdictKind, VerdictTarget,
};

/// A syntactically valid, normalised email address (`local@domain`, lower-cased).
///
/// Validation is deliberately pragmatic rather than a full RFC 5322 parser: the goal is to
/// refuse values that cannot be a mailbox (no `@`, spaces, control characters, empty parts) so
/// that hostile header values never become a lead's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// Why a string was refused as an email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Empty or longer than RFC 5321 allows.
    #[error("an address must be 3 to 254 characters long")]
    Length,
    /// No `@`, or an empty local part or domain.
    #[error("an address needs a local part, an '@' and a domain")]
    Shape,
    /// Whitespace, control characters or characters that never occur unquoted in an address.
    #[error("an address may not contain {0:?}")]
    Character(char),
    /// A domain without a dot or with empty labels.
    #[error("'{0}' is not a valid mail domain")]
    Domain(String),
}

impl EmailAddress {
    /// Parses and normalises an address; surrounding whitespace and angle brackets are removed.
    ///
    /// # Errors
    /// Returns an [`AddressError`] describing the first problem found.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let s = raw
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if s.len() < 3 || s.len() > 254 {
            return Err(AddressError::Length);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::Shape)?;
        if local.is_empty() || domain.is_empty() || local.len() > 64 {
            return Err(AddressError::Shape);
        }
        // Called for every address of every message: one pass over the characters, matched
        // against a fixed set (not `str::contains` per character).
        if let Some(c) = s.chars().find(|&c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '\\' | '"'
                )
        }) {
            return Err(AddressError::Character(c));
        }
        if local.contains('@') {
            return Err(AddressError::Character('@'));
        }
        let domain = domain.trim_end_matches('.');
        if !domain.contains('.')
            || domain.split('.').any(|l| l.is_empty() || l.len() > 63)
            || domain.starts_with('-')
        {
            // `localhost`-style single-label domains are allowed only for loopback testing
            // setups, where they appear as `user@localhost`.
            if domain != "localhost" {
                return Err(AddressError::Domain(domain.to_owned()));
            }
        }
        let mut normal = String::with_capacity(local.len() + 1 + domain.len());
        for part in [local, "@", domain] {
            if part.is_ascii() {
                let start = normal.len();
                normal.push_str(part);
                if let Some(added) = normal.get_mut(start..) {
                    added.make_ascii_lowercase();
                }
            } else {
                normal.push_str(&part.to_lowercase());
            }
        }
        Ok(Self(normal))
    }

    /// The whole address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address split at its last `@` (a parsed address always has one). The classifier
    /// splits every address of every message against each of our own, so this is a byte
    /// search rather than a `str` pattern.
    fn parts(&self) -> (&str, &str) {
        match memchr::memrchr(b'@', self.0.as_bytes()) {
            // `@` is ASCII, so both sides of it are char boundaries.
            Some(at) => (
                self.0.get(..at).unwrap_or(""),
                self.0.get(at + 1..).unwrap_or(""),
            ),
            None => ("", ""),
        }
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.parts().0
    }

    /// The domain, lower-cased.
    pub fn domain(&self) -> &str {
        self.parts().1
    }

    /// The local part without its plus tag, the tag (`None` without a `+`) and the domain:
    /// the one place the tag is split off, for [`Self::plus_tag`], [`Self::without_tag`] and
    /// [`Self::same_mailbox`].
    fn tag_parts(&self) -> (&str, Option<&str>, &str) {
        let (local, domain) = self.parts();
        match memchr::memchr(b'+', local.as_bytes()) {
            // `+` is ASCII, so both sides of it are char boundaries.
            Some(plus) => (
                local.get(..plus).unwrap_or(local),
                local.get(plus + 1..),
                domain,
            ),
            None => (local, None, domain),
        }
    }

    /// The plus-address tag (`webinar` in `leads+webinar@example.com`), if any.
    pub fn plus_tag(&self) -> Option<&str> {
        self.tag_parts().1.filter(|t| !t.is_empty())
    }

    /// Whether both addresses name the same mailbox once plus tags are set aside
    /// (`leads+webinar@example.com` and `leads@example.com`). Compares in place: the classifier
    /// asks this of every address in every message against each of our own.
    pub fn same_mailbox(&self, other: &EmailAddress) -> bool {
        let ((local, _, domain), (other_local, _, other_domain)) =
            (self.tag_parts(), other.tag_parts());
        // The domain first: it differs for nearly every pair the classifier asks about.
        domain == other_domain && local == other_local
    }

    /// This mailbox's plus-address with `tag` (`leads+unsubscribe-k3y@example.com`), any tag
    /// it had replaced: the addresses leadloop sends from and asks replies to, per enrollment
    /// or hand-off.
    pub fn with_tag(&self, tag: &str) -> String {
        let (base, _, domain) = self.tag_parts();
        format!("{base}+{tag}@{domain}")
    }

    /// The address with any plus tag removed (`leads@example.com`).
    pub fn without_tag(&self) -> EmailAddress {
        match self.tag_parts() {
            (base, Some(_), domain) => EmailAddress(format!("{base}@{domain}")),
            (_, None, _) => self.clone(),
        }
    }
}

impl fmt::Display for EmailAddress {
    // `pad`, so a table's `{:<30}` lines it up as it did the text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised() {
        let a = EmailAddress::parse(" <Jane.Doe+Webinar@Example.COM> ").unwrap();
        assert_eq!(a.as_str(), "jane.doe+webinar@example.com");
        assert_eq!(a.plus_tag(), Some("webinar"));
        assert_eq!(a.without_tag().as_str(), "jane.doe@example.com");
        // A new tag replaces the one there was.
        assert_eq!(a.with_tag("reply-k3y"), "jane.doe+reply-k3y@example.com");
        assert_eq!(a.domain(), "example.com");
        let plain = EmailAddress::parse("jane.doe@example.com").unwrap();
        assert!(a.same_mailbox(&plain) && plain.same_mailbox(&a));
        assert!(!plain.same_mailbox(&EmailAddress::parse("jane.doe@example.org").unwrap()));
        assert!(!plain.same_mailbox(&EmailAddress::parse("jane@example.com").unwrap()));
    }

    #[test]
    fn hostile_values_are_refused() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "jane@",
            "jane@nodot",
            "ja ne@example.com",
            "jane@example.com\r\nBcc: x@y.z",
            "a@b@example.com",
            "jane@exa..mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>().unwrap(), *k);
        }
        assert!("lead".parse::<MessageKind>().is_err());
    }
}
