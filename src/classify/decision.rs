//! What a stage decided, typed, and the one place it becomes a [`Classification`].

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::{
    Bounce, Classification, EmailAddress, MessageKind, Person, Verdict, VerdictTarget,
};

/// One stage's decision about a message. The stage's evidence travels beside it, in the
/// order the rules fired.
#[derive(Debug)]
pub enum Decision {
    /// Never a lead.
    Ignored { reason: String },
    /// A delivery failure, and the Message-ID of the message that bounced when it says.
    Bounce {
        bounce: Bounce,
        original_id: Option<String>,
    },
    /// An automatic answer; the lead is the sender unless it is one of ours.
    Autoreply {
        lead: Option<Person>,
        return_date: Option<NaiveDate>,
    },
    /// A colleague forwarded an inquiry.
    Forward(Forwarded),
    /// Sales answered a hand-off; `None` when no verdict could be read.
    Feedback(Option<Verdict>),
    /// Someone answered our mail.
    Reply { lead: Person },
    /// Someone asked to receive no more mail.
    Unsubscribe { lead: Person },
    /// A website form notification.
    Form(Submission),
    /// A person wrote to us; `alias` is another address of theirs (From, when Reply-To is
    /// the lead's).
    Inquiry {
        lead: Person,
        channel: String,
        alias: Option<EmailAddress>,
    },
}

/// A forwarded inquiry: the original sender (or the submitter of a forwarded form) is the
/// lead, the colleague who forwarded it its owner.
#[derive(Debug)]
pub struct Forwarded {
    pub lead: Person,
    pub owner: Option<EmailAddress>,
    /// The forwarded form's fields, for a forwarded form notification.
    pub fields: BTreeMap<String, String>,
    pub original_text: Option<String>,
    /// The original's subject; replaces the forward's own.
    pub subject: Option<String>,
    /// The original's Message-ID, added to the references.
    pub original_id: Option<String>,
    pub channel: String,
}

/// A form submission: the submitter is the lead.
#[derive(Debug)]
pub struct Submission {
    pub lead: Person,
    /// The form profile's name.
    pub form: String,
    pub fields: BTreeMap<String, String>,
    pub channel: String,
}

/// Recorded when Sales answered but stated none of the verdicts.
const NO_VERDICT: &str = "no verdict found";

impl Decision {
    pub fn ignored(reason: impl Into<String>) -> Self {
        Decision::Ignored {
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> MessageKind {
        match self {
            Decision::Ignored { .. } => MessageKind::Ignored,
            Decision::Bounce { .. } => MessageKind::Bounce,
            Decision::Autoreply { .. } => MessageKind::Autoreply,
            Decision::Forward(_) => MessageKind::Forward,
            Decision::Feedback(_) => MessageKind::Feedback,
            Decision::Reply { .. } => MessageKind::Reply,
            Decision::Unsubscribe { .. } => MessageKind::Unsubscribe,
            Decision::Form(_) => MessageKind::Form,
            Decision::Inquiry { .. } => MessageKind::Inquiry,
        }
    }

    /// Whether the classification keeps the writer's own text ([`Classification::text`]): for
    /// what a person wrote to us or answered. A forward keeps the original's text instead, as
    /// `original_text`; the colleague's note above it is not the lead's.
    pub fn keeps_text(&self) -> bool {
        matches!(
            self,
            Decision::Feedback(_)
                | Decision::Reply { .. }
                | Decision::Unsubscribe { .. }
                | Decision::Form(_)
                | Decision::Inquiry { .. }
        )
    }

    /// Writes the decision into `c`, which holds the message's own headers, the evidence and
    /// already this decision's [`Self::kind`].
    ///
    /// A verdict is kept typed and, as `classify --json` has always shown it, as the
    /// `verdict` and `feedback_reason` fields; its comment is the `feedback_comment` field and
    /// its target one of `verdict_until` (`YYYY-MM-DD`), `verdict_sequence`, `verdict_owner`.
    pub fn record(self, c: &mut Classification) {
        debug_assert_eq!(c.kind, self.kind());
        match self {
            Decision::Ignored { reason } => {
                c.evidence.push(format!("ignored: {reason}"));
                c.reason = Some(reason);
            }
            Decision::Bounce {
                bounce,
                original_id,
            } => {
                add_reference(&mut c.references, original_id);
                c.bounce = Some(bounce);
            }
            Decision::Autoreply { lead, return_date } => {
                c.lead = lead;
                c.return_date = return_date;
            }
            Decision::Forward(f) => {
                c.lead = Some(f.lead);
                c.owner = f.owner;
                c.fields = f.fields;
                c.original_text = f.original_text;
                c.subject = f.subject;
                add_reference(&mut c.references, f.original_id);
                c.channel = Some(f.channel);
            }
            Decision::Feedback(Some(v)) => {
                c.fields
                    .insert("verdict".into(), v.kind.as_str().to_owned());
                if let Some(r) = &v.reason {
                    c.fields.insert("feedback_reason".into(), r.clone());
                }
                if let Some(comment) = &v.comment {
                    c.fields.insert("feedback_comment".into(), comment.clone());
                }
                if let Some((key, value)) = target_field(v.target.as_ref()) {
                    c.fields.insert(key.into(), value);
                }
                c.verdict = Some(v);
            }
            Decision::Feedback(None) => c.reason = Some(NO_VERDICT.into()),
            Decision::Reply { lead } | Decision::Unsubscribe { lead } => c.lead = Some(lead),
            Decision::Form(s) => {
                c.lead = Some(s.lead);
                c.channel = Some(s.channel);
                c.form = Some(s.form);
                c.fields = s.fields;
            }
            Decision::Inquiry {
                lead,
                channel,
                alias,
            } => {
                c.lead = Some(lead);
                c.channel = Some(channel);
                c.alias = alias;
            }
        }
    }
}

/// The field a verdict's target is shown as.
fn target_field(target: Option<&VerdictTarget>) -> Option<(&'static str, String)> {
    Some(match target? {
        VerdictTarget::Until(d) => ("verdict_until", d.format("%Y-%m-%d").to_string()),
        VerdictTarget::Sequence(s) => ("verdict_sequence", s.to_string()),
        VerdictTarget::Owner(a) => ("verdict_owner", a.to_string()),
    })
}

fn add_reference(references: &mut Vec<String>, id: Option<String>) {
    if let Some(id) = id
        && !references.contains(&id)
    {
        references.push(id);
    }
}
