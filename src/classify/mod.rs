//! Decides what an inbound message is: one [`MessageKind`] per message, with the lead it is
//! about and the evidence for the decision.
//!
//! This part is pure: bytes and [`Rules`] in, a [`Classification`] out. It has no database,
//! network or clock of its own, so every decision can be reproduced with
//! `leadloop classify FILE.eml --json` and tested from fixtures alone.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::{EmailAddress, MessageKind};

/// Everything the classifier needs to know about the team that owns the mailbox.
///
/// Built from the configuration (`[identity]`, `[[channel]]`, `[[form]]`), never read from the
/// environment, so that tests and `leadloop classify` decide exactly as the daemon does.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Our own addresses: the monitored inbox and every sending identity. Never leads.
    pub own_addresses: Vec<EmailAddress>,
    /// Our own domains (`company.com`): mail from them is staff mail, never a lead.
    pub own_domains: Vec<String>,
    /// Sales addresses whose replies to hand-off notifications are feedback.
    pub sales: Vec<EmailAddress>,
    /// Channel attribution rules, first match wins.
    pub channels: Vec<ChannelRule>,
    /// Form profiles from the configuration, tried before the built-in ones.
    pub forms: Vec<FormProfile>,
}

/// Attributes a message to a marketing channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelRule {
    /// The channel's name as reports show it (`webinar`, `linkedin`).
    pub name: String,
    /// Recipient addresses that mean this channel (`leads+webinar@example.com`).
    pub recipients: Vec<EmailAddress>,
    /// Plus-address tags that mean this channel (`webinar` in `leads+webinar@…`).
    pub plus_tags: Vec<String>,
    /// `utm_source` values (from form fields or URLs in the message) that mean this channel.
    pub utm_sources: Vec<String>,
    /// Form profile names whose submissions belong to this channel.
    pub forms: Vec<String>,
}

/// How to read one website form's notification emails.
#[derive(Debug, Clone, Default)]
pub struct FormProfile {
    /// Name recorded on the lead (`contact-page`).
    pub name: String,
    /// Sender addresses or domains (`wordpress@example.com`, `example.com`) the form mails from.
    pub from: Vec<String>,
    /// Case-insensitive substrings of the subject that identify the form.
    pub subject_contains: Vec<String>,
    /// Case-insensitive substrings of the body that identify the form.
    pub body_contains: Vec<String>,
    /// Field labels holding the submitter's address, tried in order.
    pub email_fields: Vec<String>,
    /// Field labels holding the submitter's name.
    pub name_fields: Vec<String>,
    /// Field labels holding the submitter's company.
    pub company_fields: Vec<String>,
    /// Field labels holding the submitter's phone number.
    pub phone_fields: Vec<String>,
}

/// The person a message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Normalised address; the lead's key.
    pub email: EmailAddress,
    /// Display name, when one was given.
    pub name: Option<String>,
    /// Company, from a form field, signature or the sender's domain.
    pub company: Option<String>,
    /// Phone number as written.
    pub phone: Option<String>,
}

/// A delivery failure, from a DSN or a non-standard bounce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// The address that could not be delivered to.
    pub recipient: Option<EmailAddress>,
    /// True for a hard (5.x.x) failure, false for a soft or delayed one.
    pub permanent: bool,
    /// The enhanced status code (`5.1.1`), when stated.
    pub status: Option<String>,
}

/// The classifier's decision about one message.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    /// What the message is.
    pub kind: MessageKind,
    /// The lead: the submitter of a form, the original sender of a forward, the writer of an
    /// inquiry or reply. `None` for kinds that are not about a person we know.
    pub lead: Option<Person>,
    /// For forwards: the colleague who forwarded it, recorded as the lead's owner.
    pub owner: Option<EmailAddress>,
    /// Form fields (`Label: value`), labels as written.
    pub fields: BTreeMap<String, String>,
    /// Marketing channel, when the message says or the rules decide.
    pub channel: Option<String>,
    /// The form profile that matched, for forms.
    pub form: Option<String>,
    /// Delivery failure details, for bounces.
    pub bounce: Option<Bounce>,
    /// For auto-replies: the date the person says they are back.
    pub return_date: Option<NaiveDate>,
    /// Why the message is ignored (or why a decision was a fallback).
    pub reason: Option<String>,
    /// The rules that fired, in order, so a user can see why.
    pub evidence: Vec<String>,
    /// The message's own Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Message-IDs from In-Reply-To and References, and the original message's ID for bounces.
    pub references: Vec<String>,
    /// Subject as decoded (the original subject for forwards).
    pub subject: Option<String>,
    /// The Date header, when it parses.
    pub date: Option<DateTime<Utc>>,
}

impl Classification {
    /// An `ignored` decision with a reason, for input that could not be read at all.
    pub fn ignored(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Classification {
            kind: MessageKind::Ignored,
            lead: None,
            owner: None,
            fields: BTreeMap::new(),
            channel: None,
            form: None,
            bounce: None,
            return_date: None,
            evidence: vec![format!("ignored: {reason}")],
            reason: Some(reason),
            message_id: None,
            references: Vec::new(),
            subject: None,
            date: None,
        }
    }
}

/// Classifies one raw RFC 5322 message.
///
/// Never panics and never fails: input that cannot be understood is `ignored` with the reason.
pub fn classify(raw: &[u8], rules: &Rules) -> Classification {
    let _ = (raw, rules);
    Classification::ignored("classifier not implemented yet")
}
