//! Owner routing: `[[route]]` rules, first match wins.

use crate::domain::{Classification, EmailAddress};

/// Routing rules and the default owner.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// The default owner.
    pub default_owner: Option<EmailAddress>,
}

/// Who owns a new lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The colleague who forwarded it.
    Forwarder(EmailAddress),
    /// A route's owners.
    Route {
        /// The route's name.
        name: String,
        /// Its owners.
        owners: Vec<EmailAddress>,
    },
    /// The default owner.
    Default(EmailAddress),
}

impl Routing {
    /// The owner for the lead of `c`.
    pub fn assign(&self, c: &Classification) -> Option<Assignment> {
        c.owner
            .clone()
            .map(Assignment::Forwarder)
            .or_else(|| self.default_owner.clone().map(Assignment::Default))
    }
}
