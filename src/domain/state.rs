//! The states things move through, each stored as its stable lower-case name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that names none of a type's values: from the database, a config file or the CLI.
///
/// The store wraps it with the table and row it came from, so a value written by a newer
/// version (or by hand) is reported where it is instead of being read as something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct UnknownValue {
    /// What was being read (`lead status`, `message kind`).
    pub what: &'static str,
    /// The text as found.
    pub value: String,
    /// The names that would have been accepted, comma-separated.
    pub expected: String,
}

/// Defines a fieldless enum whose values have one stable lower-case name each, with `ALL`,
/// `as_str`, `Display`, `FromStr` (case-insensitive, surrounding spaces ignored) and serde as
/// that name. One definition keeps the name used in SQL, JSON, TOML and the CLI the same.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $what:literal,
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The stable lower-case name used in the database, JSON, TOML and the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Every name, in declaration order (for help texts and `clap` value lists).
            pub const NAMES: &'static [&'static str] = &[ $( $text, )+ ];
        }

        impl fmt::Display for $name {
            // `pad`, so a table's `{:<10}` lines it up as it did the text.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        expected: Self::NAMES.join(", "),
                    })
            }
        }
    };
}

pub(crate) use named_enum;

named_enum! {
    /// Where a lead stands in its life with us.
    "lead status",
    pub enum LeadStatus {
        /// Recorded from its first message; nobody has judged it yet.
        New = "new",
        /// Has answered or otherwise engaged.
        Engaged = "engaged",
        /// Sales said it is worth their time.
        Qualified = "qualified",
        /// Sales said it is not.
        Unqualified = "unqualified",
        /// Has bought.
        Customer = "customer",
        /// Asked to receive no more mail: never mailed again.
        Unsubscribed = "unsubscribed",
        /// Its address does not take mail: never mailed again.
        Bounced = "bounced",
        /// Its first message looked like spam to a filter, or no filter could be asked: it is
        /// recorded but neither nurtured nor handed off until a person approves it
        /// (`leadloop leads approve`).
        Review = "review",
    }
}

impl LeadStatus {
    /// Whether nurture mail may go to a lead in this status. The two that may not are the
    /// ones leadloop sets itself from what the lead or its server said.
    pub fn may_be_mailed(self) -> bool {
        !matches!(
            self,
            LeadStatus::Unsubscribed | LeadStatus::Bounced | LeadStatus::Review
        )
    }

    /// Statuses a sequence may name in `[exit] on_status`: every one a lead can reach after
    /// `new` and `engaged` (`review` comes before `new`, never after it).
    pub fn exit_statuses() -> &'static [LeadStatus] {
        &LeadStatus::ALL[2..LeadStatus::ALL.len() - 1]
    }
}

named_enum! {
    /// Where a lead's enrollment in one sequence stands.
    "enrollment state",
    pub enum EnrollmentState {
        /// Waiting for its next step.
        Active = "active",
        /// Every step handled.
        Done = "done",
        /// Ended early: a reply, an unsubscribe, a status, another sequence.
        Exited = "exited",
        /// Stopped by an error a person must look at (a template that fails to render).
        Held = "held",
    }
}

named_enum! {
    /// Where an outbox message stands (see `store::outbox` for the transitions).
    "outbox state",
    pub enum OutboxState {
        /// Waiting for its due time.
        Pending = "pending",
        /// Being handed to the SMTP server right now (or the sender crashed while it was).
        Sending = "sending",
        /// Accepted by the server.
        Sent = "sent",
        /// A temporary failure; tried again at `next_attempt_at`.
        Retry = "retry",
        /// Refused for good, or retried until the max age.
        Failed = "failed",
        /// Was `sending` when its sender died: it may or may not have left. Never resent
        /// automatically.
        Interrupted = "interrupted",
        /// Will not be sent: cancelled by a person, or the recipient is suppressed.
        Cancelled = "cancelled",
        /// Made by `leadloop run --dry-run`: rendered and recorded like any message, never
        /// sent, and never claimed by any sender.
        DryRun = "dry_run",
    }
}

named_enum! {
    /// What a notification to our own people is about.
    "hand-off kind",
    pub enum HandoffKind {
        /// The lead card, to the lead's owner: the lead replied or is hot.
        Handoff = "handoff",
        /// A short reply to a Sales answer that held no verdict leadloop understood.
        Explain = "explain",
    }
}

named_enum! {
    /// Where a notification to our own people stands.
    "hand-off state",
    pub enum HandoffState {
        /// Waiting for the hand-off worker to render and enqueue it.
        Pending = "pending",
        /// In the outbox.
        Queued = "queued",
        /// Not sent, for the reason noted (a hand-off within the interval, no owner).
        Skipped = "skipped",
    }
}

named_enum! {
    /// What Sales said about a handed-off lead: a judgement of its quality, or an instruction
    /// about what happens to it next.
    "verdict",
    pub enum VerdictKind {
        /// Worth Sales' time (`qualified`, `sql`).
        Qualified = "qualified",
        /// Not worth it (`unqualified`, `not qualified`, `disqualified`, `lost`, `bad fit`).
        Unqualified = "unqualified",
        /// Has bought (`customer`, `won`).
        Customer = "customer",
        /// Not now: pause until a date, then nurture again (`not now: until 2027-03-01`,
        /// `not now: 3 months`).
        NotNow = "not_now",
        /// Enter this sequence (`nurture: webinar-followup`): Sales chose the content.
        Nurture = "nurture",
        /// Someone else owns the lead from now on (`owner: bob@company.com`).
        Owner = "owner",
    }
}

/// What a verdict asks for beyond its kind: the date `not now` waits for, the sequence
/// `nurture` names, the new owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictTarget {
    /// `not now`: the day the lead is nurtured again.
    Until(chrono::NaiveDate),
    /// `nurture`: the sequence the lead enters, as Sales wrote it (checked when acted on).
    Sequence(super::SequenceName),
    /// `owner`: the new owner.
    Owner(super::EmailAddress),
}

/// Sales' verdict on a lead: what they said, the reason they gave (`unqualified: no budget`)
/// and the comment they wrote below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The verdict itself.
    pub kind: VerdictKind,
    /// The words after it on its line, when there were any.
    pub reason: Option<String>,
    /// What Sales wrote below the verdict line (quotes and signature stripped).
    pub comment: Option<String>,
    /// What `not now`, `nurture` and `owner` point at; `None` for the judgements.
    pub target: Option<VerdictTarget>,
}

impl Verdict {
    /// A judgement (`qualified`, `unqualified`, `customer`) with an optional reason.
    pub fn judgement(kind: VerdictKind, reason: Option<String>) -> Verdict {
        Verdict {
            kind,
            reason,
            comment: None,
            target: None,
        }
    }

    /// The lead status the verdict puts a lead in: only the three judgements set one.
    pub fn status(&self) -> Option<LeadStatus> {
        match self.kind {
            VerdictKind::Qualified => Some(LeadStatus::Qualified),
            VerdictKind::Unqualified => Some(LeadStatus::Unqualified),
            VerdictKind::Customer => Some(LeadStatus::Customer),
            VerdictKind::NotNow | VerdictKind::Nurture | VerdictKind::Owner => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in LeadStatus::ALL {
            assert_eq!(s.as_str().parse::<LeadStatus>().unwrap(), *s);
        }
        for s in EnrollmentState::ALL {
            assert_eq!(s.to_string().parse::<EnrollmentState>().unwrap(), *s);
        }
        for s in OutboxState::ALL {
            assert_eq!(
                format!(" {} ", s.as_str().to_uppercase())
                    .parse::<OutboxState>()
                    .unwrap(),
                *s
            );
        }
        let e = "engagedd".parse::<LeadStatus>().unwrap_err();
        assert_eq!(e.value, "engagedd");
        assert!(e.to_string().contains("lead status"), "{e}");
        assert_eq!(
            serde_json::to_string(&LeadStatus::Unqualified).unwrap(),
            "\"unqualified\""
        );
    }

    #[test]
    fn exit_statuses_are_the_judged_and_the_unmailable() {
        assert_eq!(
            LeadStatus::exit_statuses()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            [
                "qualified",
                "unqualified",
                "customer",
                "unsubscribed",
                "bounced"
            ]
        );
        assert!(
            LeadStatus::exit_statuses()
                .iter()
                .all(|s| *s != LeadStatus::New)
        );
        assert!(!LeadStatus::Bounced.may_be_mailed() && LeadStatus::Engaged.may_be_mailed());
    }
}
