//! The explanation reply: sent once when Sales answers a hand-off with something leadloop does
//! not understand, or names what does not exist, so the corrected answer can follow.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use super::bound::{self, MAX_LINE_BYTES};
use super::sales::{self, EXPLAIN_TEMPLATE, Envelope};
use super::{RenderError, Rendered, SenderData, Templates, sender_value};
use crate::domain::EmailAddress;

/// The problem shown, in bytes at most.
const MAX_PROBLEM_BYTES: usize = 1000;

/// One explanation reply to a Sales answer.
///
/// Plain text only: `explain.txt` and the subject under the key `explain`
/// ([`EXPLAIN_TEMPLATE`]), built in and overridable from the templates folder. The built-in
/// subject is `Re: ` and the answer's subject.
///
/// What the templates see: `to` (the colleague's address), `sender` (`name`, `address`,
/// `display_name`), `lead_email`, `problem` (one line, at most 1000 bytes), `subject` (the
/// answer's subject, `""` when none), `re_subject` (`Re: ` and it, not doubled; `""` when
/// none), `reply_to`, `answer_help` and `verdicts` (as for [`super::HandoffCard`]) and `date`.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    /// The colleague who answered.
    pub to: &'a EmailAddress,
    /// Who sends it (`From`).
    pub sender: &'a SenderData,
    /// The lead the answer was about.
    pub lead_email: &'a EmailAddress,
    /// What is wrong: `the first line, "maybe later?", is not a verdict`.
    pub problem: &'a str,
    /// The answer's subject, for `Re: …`.
    pub subject: Option<&'a str>,
    /// The answer's Message-ID (`In-Reply-To` and `References`).
    pub in_reply_to: Option<&'a str>,
    /// The hand-off address again, so the corrected answer maps back to the lead.
    pub reply_to: &'a EmailAddress,
    /// Our Message-ID, without angle brackets.
    pub message_id: &'a str,
    /// The Date header.
    pub date: DateTime<Utc>,
}

/// `Re: SUBJECT`, unless it already starts so.
fn re(subject: &str) -> String {
    let starts_re = subject
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if subject.is_empty() || starts_re {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    }
}

fn context(e: &Explanation<'_>) -> Value {
    let subject = bound::opt_line(e.subject, MAX_LINE_BYTES);
    Value::from(BTreeMap::from([
        ("to", Value::from(e.to.as_str())),
        ("sender", sender_value(e.sender)),
        ("lead_email", Value::from(e.lead_email.as_str())),
        (
            "problem",
            Value::from(bound::line(e.problem, MAX_PROBLEM_BYTES)),
        ),
        ("re_subject", Value::from(re(&subject))),
        ("subject", Value::from(subject)),
        ("reply_to", Value::from(e.reply_to.as_str())),
        ("answer_help", Value::from(sales::answer_help())),
        ("verdicts", sales::verdicts_value()),
        ("date", Value::from(bound::at(e.date))),
    ]))
}

/// Renders the explanation reply to `e.to`: plain text, `Reply-To` the hand-off address,
/// `In-Reply-To`/`References` the answer, `Auto-Submitted: auto-generated` and
/// `X-Leadloop-Origin`, no unsubscribe footer or `List-Unsubscribe`.
///
/// # Errors
/// A template fails (an override using an undefined variable), or an address is refused.
pub fn render_explanation(t: &Templates, e: &Explanation<'_>) -> Result<Rendered, RenderError> {
    let parts = sales::render_parts(t, EXPLAIN_TEMPLATE, false, &context(e))?;
    let thread: Vec<&str> = e.in_reply_to.into_iter().collect();
    let bytes = sales::assemble(
        &Envelope {
            sender: e.sender,
            to: e.to,
            subject: &parts.subject,
            message_id: e.message_id,
            reply_to: e.reply_to,
            thread: &thread,
            date: e.date,
        },
        &parts.text,
        None,
    )?;
    Ok(Rendered {
        message_id: e.message_id.to_owned(),
        subject: parts.subject,
        text: parts.text,
        html: None,
        from: e.sender.address.clone(),
        to: e.to.clone(),
        bytes,
    })
}

/// Calls `f` with a sample explanation that uses every variable.
pub(super) fn with_sample(f: impl FnOnce(&Explanation<'_>)) {
    let to = EmailAddress::parse("owner@example.com").expect("a valid address");
    let lead = EmailAddress::parse("sam.sample@example.com").expect("a valid address");
    let reply_to = EmailAddress::parse("leads+handoff-sample@example.com").expect("a valid address");
    let sender = SenderData {
        name: "leadloop".into(),
        address: EmailAddress::parse("leads@example.com").expect("a valid address"),
        display_name: Some("leadloop".into()),
    };
    f(&Explanation {
        to: &to,
        sender: &sender,
        lead_email: &lead,
        problem: "the first line, \"maybe later?\", is not a verdict",
        subject: Some("Re: Lead: Sam Sample <sam.sample@example.com>"),
        in_reply_to: Some("answer.sample@example.com"),
        reply_to: &reply_to,
        message_id: "leadloop.explain.sample@example.com",
        date: DateTime::<Utc>::UNIX_EPOCH,
    });
}
