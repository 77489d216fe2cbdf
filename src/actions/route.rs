//! Owner routing: `[[route]]` rules, first match wins.
//!
//! Every new lead gets an owner, the person Sales-side who answers it. The colleague who
//! forwarded an inquiry owns it (they already talk to the lead); otherwise the first
//! `[[route]]` whose criteria all match the message decides; otherwise `[handoff]
//! default_owner`; otherwise nobody. Pure: a classification in, an [`Assignment`] out.
//!
//! A route may list several owners, served round robin. Which of them gets a given lead is
//! not decided here: that needs a counter shared by every daemon, so it is kept in the
//! database and the caller picks with it.

use regex::Regex;

use crate::domain::{Classification, EmailAddress};

/// `[[route]]`: which leads go to whom. Every criterion given must match; within a list any
/// one entry matches; a route without criteria matches every lead.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Its name, for reports and logs (`route 1` when the file gives none).
    pub name: String,
    /// The lead's channel is one of these (lower-case; compared ignoring case).
    pub channels: Vec<String>,
    /// The message's form profile is one of these.
    pub forms: Vec<String>,
    /// The message was sent to one of these of our addresses. An address without a plus tag
    /// also matches its plus-addresses (`sales@` matches `sales+expo@`).
    pub recipients: Vec<EmailAddress>,
    /// The lead's address is at one of these domains (lower-case). `*.example.de` and
    /// `.example.de` match `example.de` and every subdomain of it.
    pub domains: Vec<String>,
    /// A form field's value matches a pattern.
    pub field: Option<FieldMatch>,
    /// Who owns the leads: one, or several served round robin. Never empty.
    pub owners: Vec<EmailAddress>,
}

/// A form field and a pattern its value must match.
#[derive(Debug, Clone)]
pub struct FieldMatch {
    /// The field's label, compared ignoring case with the labels of
    /// [`Classification::fields`].
    pub label: String,
    /// What the value (surrounding spaces removed) must match.
    pub pattern: Regex,
}

/// `[[route]]`s in file order and `[handoff] default_owner`.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Tried in order; the first that matches wins.
    pub routes: Vec<Route>,
    /// The owner of leads no route matches.
    pub default_owner: Option<EmailAddress>,
}

/// Who owns a lead, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The colleague who forwarded the inquiry.
    Forwarder(EmailAddress),
    /// The route of this name matched; one of its owners (round robin) gets the lead.
    Route {
        /// The route's name.
        name: String,
        /// Its owners, never empty.
        owners: Vec<EmailAddress>,
    },
    /// No route matched: `[handoff] default_owner`.
    Default(EmailAddress),
}

impl Assignment {
    /// The candidates: one address, or a route's owners to choose from round robin.
    pub fn owners(&self) -> &[EmailAddress] {
        match self {
            Assignment::Forwarder(a) | Assignment::Default(a) => std::slice::from_ref(a),
            Assignment::Route { owners, .. } => owners,
        }
    }
}

impl Routing {
    /// The owner of the lead `c` is about: the forwarding colleague, else the first matching
    /// route, else the default owner; `None` when there is none of these. Meant for the
    /// messages that create leads (inquiry, form, forward); the caller decides when to ask.
    pub fn assign(&self, c: &Classification) -> Option<Assignment> {
        if let Some(forwarder) = &c.owner {
            return Some(Assignment::Forwarder(forwarder.clone()));
        }
        if let Some(route) = self.routes.iter().find(|r| r.matches(c)) {
            return Some(Assignment::Route {
                name: route.name.clone(),
                owners: route.owners.clone(),
            });
        }
        self.default_owner.clone().map(Assignment::Default)
    }

    /// Every owner the configuration names (routes' owners and the default owner), each
    /// once, in file order: their answers to hand-offs are Sales feedback.
    pub fn owners(&self) -> Vec<EmailAddress> {
        let mut out: Vec<EmailAddress> = Vec::new();
        let all = self
            .routes
            .iter()
            .flat_map(|r| r.owners.iter())
            .chain(self.default_owner.iter());
        for a in all {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }
}

impl Route {
    /// Whether every criterion this route gives matches `c`.
    pub fn matches(&self, c: &Classification) -> bool {
        (self.channels.is_empty()
            || c.channel
                .as_deref()
                .is_some_and(|ch| any_equal(&self.channels, ch)))
            && (self.forms.is_empty()
                || c.form.as_deref().is_some_and(|f| any_equal(&self.forms, f)))
            && (self.recipients.is_empty()
                || c.delivered_to
                    .as_ref()
                    .is_some_and(|to| self.recipients.iter().any(|r| recipient_matches(r, to))))
            && (self.domains.is_empty()
                || c.lead.as_ref().is_some_and(|p| {
                    self.domains
                        .iter()
                        .any(|d| domain_matches(d, p.email.domain()))
                }))
            && self.field.as_ref().is_none_or(|f| f.matched(c).is_some())
    }
}

impl FieldMatch {
    /// The first field of `c` with this label whose value matches, as (label as the message
    /// writes it, value).
    pub fn matched<'c>(&self, c: &'c Classification) -> Option<(&'c str, &'c str)> {
        c.fields
            .iter()
            .filter(|(label, _)| same_label(label, &self.label))
            .map(|(label, value)| (label.as_str(), value.trim()))
            .find(|(_, value)| self.pattern.is_match(value))
    }
}

/// Form labels as people type them: `Budget`, `budget`, `Budget ` are one label.
fn same_label(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// Whether `value` is one of `list`, ignoring case.
pub(crate) fn any_equal(list: &[String], value: &str) -> bool {
    list.iter().any(|v| same_label(v, value))
}

/// A route's recipient against the address a message was delivered to: a plain address
/// matches its plus-addresses too, a plus-address only itself.
fn recipient_matches(route: &EmailAddress, delivered_to: &EmailAddress) -> bool {
    if route.plus_tag().is_some() {
        route == delivered_to
    } else {
        route.same_mailbox(delivered_to)
    }
}

/// `pattern` (lower-case, as config writes it) against a lead's domain (lower-case, as
/// every [`EmailAddress`] is): `example.de` matches only itself; `*.example.de` and
/// `.example.de` match it and its subdomains (`*.de` every German one).
pub(crate) fn domain_matches(pattern: &str, domain: &str) -> bool {
    match pattern
        .strip_prefix("*.")
        .or_else(|| pattern.strip_prefix('.'))
    {
        Some(base) => {
            domain == base
                || domain
                    .strip_suffix(base)
                    .is_some_and(|head| head.ends_with('.'))
        }
        None => domain == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageKind, Person};

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn inquiry(from: &str) -> Classification {
        let mut c = Classification::ignored("test");
        c.kind = MessageKind::Inquiry;
        c.reason = None;
        c.lead = Some(Person {
            email: addr(from),
            name: None,
            company: None,
            phone: None,
        });
        c
    }

    fn route(name: &str, owner: &str) -> Route {
        Route {
            name: name.into(),
            owners: vec![addr(owner)],
            ..Route::default()
        }
    }

    fn field(label: &str, pattern: &str) -> FieldMatch {
        FieldMatch {
            label: label.into(),
            pattern: Regex::new(pattern).unwrap(),
        }
    }

    fn routed(routing: &Routing, c: &Classification) -> Option<String> {
        match routing.assign(c)? {
            Assignment::Route { name, .. } => Some(name),
            other => Some(format!("{other:?}")),
        }
    }

    #[test]
    fn channels_match_ignoring_case() {
        let r = Route {
            channels: vec!["linkedin".into()],
            ..route("social", "anna@company.com")
        };
        let mut c = inquiry("jane@example.org");
        assert!(!r.matches(&c), "no channel is not a match");
        c.channel = Some("LinkedIn".into());
        assert!(r.matches(&c));
        c.channel = Some("webinar".into());
        assert!(!r.matches(&c));
    }

    #[test]
    fn forms_match_the_profile_name() {
        let r = Route {
            forms: vec!["contact-page".into(), "demo-request".into()],
            ..route("forms", "anna@company.com")
        };
        let mut c = inquiry("jane@example.org");
        assert!(!r.matches(&c));
        c.form = Some("demo-request".into());
        assert!(r.matches(&c));
        c.form = Some("newsletter".into());
        assert!(!r.matches(&c));
    }

    #[test]
    fn recipients_match_the_mailbox_and_a_tag_only_itself() {
        let r = Route {
            recipients: vec![addr("sales-emea@company.com")],
            ..route("emea", "anna@company.com")
        };
        let mut c = inquiry("jane@example.org");
        assert!(!r.matches(&c));
        c.delivered_to = Some(addr("sales-emea@company.com"));
        assert!(r.matches(&c));
        c.delivered_to = Some(addr("sales-emea+expo@company.com"));
        assert!(r.matches(&c), "a plus-address of a listed mailbox");
        c.delivered_to = Some(addr("sales@company.com"));
        assert!(!r.matches(&c));

        let tagged = Route {
            recipients: vec![addr("leads+expo@company.com")],
            ..route("expo", "bob@company.com")
        };
        c.delivered_to = Some(addr("leads+expo@company.com"));
        assert!(tagged.matches(&c));
        c.delivered_to = Some(addr("leads@company.com"));
        assert!(!tagged.matches(&c), "a tagged route address is only itself");
    }

    #[test]
    fn domains_match_exactly_or_with_their_subdomains() {
        let exact = Route {
            domains: vec!["example.de".into()],
            ..route("de", "anna@company.com")
        };
        let wild = Route {
            domains: vec!["*.example.de".into()],
            ..route("de", "anna@company.com")
        };
        let dot = Route {
            domains: vec![".de".into()],
            ..route("de", "anna@company.com")
        };
        let at = |a: &str| inquiry(a);
        assert!(exact.matches(&at("jan@example.de")));
        assert!(!exact.matches(&at("jan@mail.example.de")));
        assert!(wild.matches(&at("jan@example.de")));
        assert!(wild.matches(&at("jan@mail.example.de")));
        assert!(!wild.matches(&at("jan@badexample.de")));
        assert!(dot.matches(&at("jan@firma.de")));
        assert!(!dot.matches(&at("jan@firma.dk")));
        assert!(!dot.matches(&at("jan@firma.de.example.com")));
        let mut no_lead = at("jan@example.de");
        no_lead.lead = None;
        assert!(!exact.matches(&no_lead));
    }

    #[test]
    fn a_field_matches_by_label_ignoring_case_and_by_pattern() {
        let r = Route {
            field: Some(field("Country", "(?i)^(de|germany|deutschland)$")),
            ..route("dach", "anna@company.com")
        };
        let mut c = inquiry("jane@example.org");
        assert!(!r.matches(&c), "no field");
        c.fields.insert("country".into(), " Germany ".into());
        assert!(r.matches(&c));
        assert_eq!(
            r.field.as_ref().unwrap().matched(&c),
            Some(("country", "Germany"))
        );
        c.fields.insert("country".into(), "France".into());
        assert!(!r.matches(&c));
    }

    #[test]
    fn all_given_criteria_must_match_and_none_matches_everything() {
        let r = Route {
            channels: vec!["linkedin".into()],
            domains: vec!["example.de".into()],
            ..route("both", "anna@company.com")
        };
        let mut c = inquiry("jan@example.de");
        assert!(!r.matches(&c), "the channel is missing");
        c.channel = Some("linkedin".into());
        assert!(r.matches(&c));
        assert!(route("all", "bob@company.com").matches(&inquiry("x@y.org")));
    }

    #[test]
    fn the_forwarder_wins_then_the_first_route_then_the_default() {
        let routing = Routing {
            routes: vec![
                Route {
                    channels: vec!["linkedin".into()],
                    ..route("social", "anna@company.com")
                },
                Route {
                    domains: vec!["example.de".into()],
                    ..route("de", "bob@company.com")
                },
                Route {
                    domains: vec!["example.de".into()],
                    ..route("never", "carl@company.com")
                },
            ],
            default_owner: Some(addr("sales@company.com")),
        };
        let mut c = inquiry("jan@example.de");
        assert_eq!(routed(&routing, &c).as_deref(), Some("de"));
        c.channel = Some("linkedin".into());
        assert_eq!(routed(&routing, &c).as_deref(), Some("social"));
        c.owner = Some(addr("dave@company.com"));
        assert_eq!(
            routing.assign(&c),
            Some(Assignment::Forwarder(addr("dave@company.com")))
        );
        let other = inquiry("x@example.org");
        let a = routing.assign(&other).unwrap();
        assert_eq!(a, Assignment::Default(addr("sales@company.com")));
        assert_eq!(a.owners(), [addr("sales@company.com")]);
        let nobody = Routing {
            default_owner: None,
            ..routing.clone()
        };
        assert_eq!(nobody.assign(&other), None);
    }

    #[test]
    fn a_route_lists_its_owners_and_routing_names_each_once() {
        let routing = Routing {
            routes: vec![
                Route {
                    owners: vec![addr("a@company.com"), addr("b@company.com")],
                    ..route("pair", "a@company.com")
                },
                route("b", "b@company.com"),
            ],
            default_owner: Some(addr("sales@company.com")),
        };
        let a = routing.assign(&inquiry("x@example.org")).unwrap();
        assert_eq!(a.owners(), [addr("a@company.com"), addr("b@company.com")]);
        assert_eq!(
            routing.owners(),
            [
                addr("a@company.com"),
                addr("b@company.com"),
                addr("sales@company.com")
            ]
        );
    }
}
