//! What a message is, who it is about, and the classifier's decision as the rest of the
//! program records and acts on it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::EmailAddress;
use super::state::{UnknownValue, Verdict, named_enum};
use std::fmt;
use std::str::FromStr;

named_enum! {
    /// What an inbound message is: exactly one of these per message (SPEC.md's table).
    "message kind",
    pub enum MessageKind {
        /// A person wrote to the monitored address.
        Inquiry = "inquiry",
        /// A website form notification; the lead is the submitter.
        Form = "form",
        /// Staff forwarded an inquiry; the lead is the original sender.
        Forward = "forward",
        /// An answer to a message leadloop sent.
        Reply = "reply",
        /// An automatic answer (vacation, out of office, RFC 3834).
        Autoreply = "autoreply",
        /// A delivery failure report.
        Bounce = "bounce",
        /// A request to stop receiving mail.
        Unsubscribe = "unsubscribe",
        /// Sales' verdict on a handed-off lead.
        Feedback = "feedback",
        /// Everything that must never become a lead, with the reason recorded.
        Ignored = "ignored",
    }
}

impl MessageKind {
    /// Whether a message of this kind creates or updates a lead.
    pub fn creates_lead(self) -> bool {
        matches!(
            self,
            MessageKind::Inquiry | MessageKind::Form | MessageKind::Forward
        )
    }
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
    /// For forwards: the original message's text as it was forwarded (at most
    /// `classify::ORIGINAL_TEXT_MAX` bytes), so the inquiry itself stays with the lead.
    pub original_text: Option<String>,
    /// For feedback: Sales' verdict, typed. `classify --json` shows it as the `verdict` and
    /// `feedback_reason` fields, as it always has.
    #[serde(skip)]
    pub verdict: Option<Verdict>,
    /// What the writer of an inquiry, reply or Sales answer wrote themselves (quotes and
    /// signature stripped), clipped to a few kilobytes: what a hand-off shows Sales.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Another address of the lead: the From of an inquiry whose Reply-To is the lead's.
    /// Mail from it later reaches the same lead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<EmailAddress>,
    /// The sender's address (From), as the message gives it: who gave a Sales verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<EmailAddress>,
    /// The first of our own addresses the message was sent to (To, Cc, Delivered-To), for
    /// routing rules by recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<EmailAddress>,
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
            original_text: None,
            verdict: None,
            text: None,
            alias: None,
            sender: None,
            delivered_to: None,
        }
    }
}
