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
///
/// `recipient`, `permanent` and `status` are those of the first failed recipient (the first
/// hard failure when there is one), as `classify --json` has always shown them; `recipients`
/// names every failed recipient, that one first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// The address that could not be delivered to.
    pub recipient: Option<EmailAddress>,
    /// True for a hard failure (the address or its domain does not exist, or the server
    /// refuses it for good), false for a soft or delayed one (see [`BounceReason::hard`]).
    pub permanent: bool,
    /// The enhanced status code (`5.1.1`), or the SMTP reply code when no enhanced code is
    /// stated.
    pub status: Option<String>,
    /// Every failed (or delayed) recipient the bounce names, `recipient` first; never the
    /// recipients it reports as delivered, relayed or expanded.
    pub recipients: Vec<FailedRecipient>,
}

/// One recipient a bounce reports as failed or delayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRecipient {
    /// The address that could not be delivered to.
    pub address: EmailAddress,
    /// The enhanced status code (`5.1.1`), or the SMTP reply code, when stated.
    pub status: Option<String>,
    /// Hard (true) or soft (false), from [`BounceReason::hard`] and the status class.
    pub permanent: bool,
    /// What the reporting server did: `failed`, or `delayed` (it is still trying).
    pub action: BounceAction,
    /// The server's own words (RFC 3464 `Diagnostic-Code` without its type, or the text a
    /// plain-text bounce gives for this recipient), clipped.
    pub diagnostic: Option<String>,
    /// Why it failed.
    pub reason: BounceReason,
}

impl fmt::Display for FailedRecipient {
    /// `jane@example.org: hard, user_unknown (failed, status 5.1.1)`, as `classify --explain`
    /// shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {} ({}",
            self.address,
            if self.permanent { "hard" } else { "soft" },
            self.reason,
            self.action
        )?;
        match &self.status {
            Some(s) => write!(f, ", status {s})"),
            None => write!(f, ", no status)"),
        }
    }
}

named_enum! {
    /// What a bounce says the reporting server did about a recipient (RFC 3464 `Action`, for
    /// the recipients a bounce reports as not delivered).
    "bounce action",
    pub enum BounceAction {
        /// The server gave up.
        Failed = "failed",
        /// The server is still trying: a warning.
        Delayed = "delayed",
    }
}

named_enum! {
    /// Why a recipient failed: a small fixed vocabulary in the spirit of RFC 3463's classes,
    /// decided from the enhanced status code, the SMTP reply code and the server's text
    /// (docs/classifier.md lists what decides each).
    "bounce reason",
    pub enum BounceReason {
        /// The mailbox does not exist (5.1.1, "user unknown", "no such user"), or its
        /// account is disabled.
        UserUnknown = "user_unknown",
        /// The domain or its mail host does not exist (5.1.2, "host not found", NXDOMAIN).
        HostUnknown = "host_unknown",
        /// The mailbox is over its quota (5.2.2, 4.2.2, "mailbox full").
        MailboxFull = "mailbox_full",
        /// Our sending server or domain is on a block list, or blocked by the recipient's.
        Blocked = "blocked",
        /// The message was refused as spam (5.7.1 with spam words).
        SpamRejected = "spam_rejected",
        /// Refused by a policy (other 5.7.x: relaying, authentication, DMARC, our sender).
        Policy = "policy",
        /// The sending server gave up after retrying too long (4.4.7, "delivery time
        /// expired").
        Expired = "expired",
        /// Too many messages or connections (4.7.x "rate", "too many").
        RateLimited = "rate_limited",
        /// The message is too large (5.3.4, 5.2.3, "too large").
        TooLarge = "too_large",
        /// Another temporary (4.x.x) condition.
        Temporary = "temporary",
        /// None of the above.
        Other = "other",
    }
}

impl BounceReason {
    /// Whether a failure for this reason is hard (`Some(true)`), soft (`Some(false)`), or
    /// hard or soft by its status class (`None`, for [`BounceReason::Other`]).
    ///
    /// Hard means the address will never take mail: it or its domain does not exist. A full
    /// mailbox, a block, a policy or spam refusal, a rate limit, a message too large, an
    /// expiry or a temporary condition says nothing against the address itself, so these are
    /// soft even with a 5.x.x status: they count toward `[policy] soft_bounce_limit`.
    pub fn hard(self) -> Option<bool> {
        match self {
            BounceReason::UserUnknown | BounceReason::HostUnknown => Some(true),
            BounceReason::Other => None,
            _ => Some(false),
        }
    }
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
    /// Why a new lead from this message waits for a person's approval (status `review`)
    /// before it is nurtured: a spam filter found it suspicious, or could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
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
            review: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<&str>, permanent: bool, reason: BounceReason) -> FailedRecipient {
        FailedRecipient {
            address: EmailAddress::parse("jane@example.org").unwrap(),
            status: status.map(str::to_owned),
            permanent,
            action: BounceAction::Failed,
            diagnostic: Some("550 5.1.1 user unknown".into()),
            reason,
        }
    }

    #[test]
    fn a_failed_recipient_reads_and_serialises_by_its_names() {
        let r = failed(Some("5.1.1"), true, BounceReason::UserUnknown);
        assert_eq!(
            r.to_string(),
            "jane@example.org: hard, user_unknown (failed, status 5.1.1)"
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "address": "jane@example.org",
                "status": "5.1.1",
                "permanent": true,
                "action": "failed",
                "diagnostic": "550 5.1.1 user unknown",
                "reason": "user_unknown",
            })
        );
        let r = FailedRecipient {
            action: BounceAction::Delayed,
            ..failed(None, false, BounceReason::MailboxFull)
        };
        assert_eq!(
            r.to_string(),
            "jane@example.org: soft, mailbox_full (delayed, no status)"
        );
        assert_eq!("Rate_Limited".parse(), Ok(BounceReason::RateLimited));
        assert_eq!(BounceReason::NAMES.len(), 11);
    }

    #[test]
    fn only_addresses_that_do_not_exist_are_hard_by_reason() {
        for r in BounceReason::ALL {
            let expected = match r {
                BounceReason::UserUnknown | BounceReason::HostUnknown => Some(true),
                BounceReason::Other => None,
                _ => Some(false),
            };
            assert_eq!(r.hard(), expected, "{r}");
        }
    }
}
