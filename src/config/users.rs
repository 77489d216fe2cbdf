//! `[[user]]`: the people who may sign in to the web view, and with which role.
//!
//! Who may sign in lives in the configuration, reviewed in git like the rest of it; passwords
//! never do (they are set with `leadloop users add|passwd` and kept hashed in the database).
//! Taking someone out of the file ends their access at the next request, because every
//! request looks its session's user up here.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::Checker;
use crate::domain::EmailAddress;

/// What a signed-in person may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sales: leads, verdicts, hand-offs.
    Sales,
    /// Marketing: reports and channels.
    Marketing,
    /// Everything, including the pages about users and the outbox.
    Admin,
}

impl Role {
    /// The word the configuration and the pages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sales => "sales",
            Role::Marketing => "marketing",
            Role::Admin => "admin",
        }
    }

    /// The role named `word` (as written in `[[user]] role`).
    pub fn parse(word: &str) -> Option<Role> {
        match word.trim() {
            "sales" => Some(Role::Sales),
            "marketing" => Some(Role::Marketing),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[user]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// The address they sign in with (normalised, so compared without regard to case).
    pub email: EmailAddress,
    /// What they may see.
    pub role: Role,
    /// How the pages greet them; the address when not given.
    pub name: Option<String>,
}

impl WebUser {
    /// The name to show: `name`, or the address.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.email.as_str())
    }
}

/// `[[user]]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    email: Spanned<String>,
    role: Spanned<String>,
    name: Option<Spanned<String>>,
}

pub(super) fn check_users(ck: &mut Checker<'_>, raw: &[Spanned<RawUser>]) -> Vec<WebUser> {
    let mut out: Vec<WebUser> = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let r = entry.get_ref();
        let key = |k: &str| format!("user[{i}].{k}");
        let email = ck.address(&r.email, &key("email"));
        if let Some(email) = &email
            && out.iter().any(|u| &u.email == email)
        {
            ck.at(
                r.email.span(),
                &key("email"),
                format!("user {email} is defined twice"),
            );
            continue;
        }
        let role = Role::parse(r.role.get_ref());
        if role.is_none() {
            ck.at(
                r.role.span(),
                &key("role"),
                format!(
                    "'{}' is not a role: sales, marketing or admin",
                    r.role.get_ref()
                ),
            );
        }
        let name = r.name.as_ref().and_then(|n| {
            let text = n.get_ref().trim();
            if text.chars().any(char::is_control) {
                ck.at(n.span(), &key("name"), "must be one line of text");
                return None;
            }
            (!text.is_empty()).then(|| text.to_owned())
        });
        if let (Some(email), Some(role)) = (email, role) {
            out.push(WebUser { email, role, name });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_and_write_the_same_words() {
        for role in [Role::Sales, Role::Marketing, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse("root"), None);
    }
}
