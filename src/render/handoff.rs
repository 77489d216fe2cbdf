//! The hand-off notification: the email a lead's owner gets when the lead replies or hits a
//! hot trigger, with the lead card and how to answer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use super::bound::{self, MAX_LINE_BYTES, MAX_WORD_BYTES};
use super::sales::{self, Envelope, HANDOFF_TEMPLATE};
use super::{RenderError, Rendered, SenderData, Templates, first_name_of, sender_value};
use crate::domain::{EmailAddress, Lead};

/// The form fields shown take at most this many bytes together (labels and values).
const MAX_FIELDS_TOTAL_BYTES: usize = 8 * 1024;

/// Everything a hand-off notification shows.
///
/// Its templates are `handoff.txt`, `handoff.html` and the subject under the key `handoff`
/// ([`HANDOFF_TEMPLATE`]); each is built in ([`super::BUILTIN_SALES_TEMPLATES`]) and the
/// templates folder overrides it. A user's `handoff.txt` without a `handoff.html` sends text
/// only. The built-in subject is `Lead: NAME <EMAIL> — WHY`.
///
/// What the templates see. Everything from the lead is data, made plain and bounded before any
/// template sees it: one-line values have no control characters or line breaks and are cut
/// (with `…`) to a few hundred bytes; `.html` templates escape it all on output.
///
/// - `lead`: `name`, `first_name`, `email`, `company`, `phone`, `channel`, `form`, `owner`,
///   `status` (text, `""` when unknown) and `score` (a number).
/// - `fields`: the lead's form fields, label → value as text (lists and objects written out),
///   at most 50 and 8 KiB in all, each value at most 500 bytes; `fields_more`: how many more
///   there are.
/// - `owner`: the recipient's address. `reply_to`: the address answers go to.
/// - `sender`: `name`, `address`, `display_name`.
/// - `why`: why Sales is told (`replied to "Welcome"`).
/// - `reply`: none, or what the lead wrote: `subject` (`""` when none), `text` (at most 8 KiB
///   and 200 lines, ending `[… N more lines not shown]` when cut) and `at`.
/// - `timeline`: the newest 20 events, oldest first, each `at`, `kind`, `summary`;
///   `timeline_more`: how many earlier ones are not shown.
/// - `sent`: the newest 20 steps sent to the lead, oldest first, each `at`, `sequence`, `step`
///   and `subject` (`""` when unknown); `sent_more`: how many earlier ones are not shown.
/// - `answer_help`: how to answer, as text: the first line of the answer is the verdict
///   (`qualified`, `unqualified: REASON`, `customer`, `not now: until DATE`,
///   `not now: 3 months`, `nurture: SEQUENCE`, `owner: ADDRESS`), the rest a comment.
///   `verdicts`: the same as a list of `usage`, `meaning`.
/// - `date`: when the notification is sent.
///
/// Times are text, `2026-11-27 10:00 UTC`.
#[derive(Debug, Clone)]
pub struct HandoffCard<'a> {
    /// The lead: name, email, company, phone, channel, form, owner, status, score, fields.
    pub lead: &'a Lead,
    /// The recipient.
    pub owner: &'a EmailAddress,
    /// Who sends it (`From`).
    pub sender: &'a SenderData,
    /// Why Sales is told: `replied to "Welcome"`, `submitted the form demo-request`.
    pub why: &'a str,
    /// What the lead wrote (the trigger message), if anything.
    pub reply: Option<&'a CardMessage>,
    /// The lead's history, oldest first; the newest 20 are shown.
    pub timeline: &'a [CardEvent],
    /// The sequences' steps sent to the lead, oldest first; the newest 20 are shown.
    pub sent: &'a [CardSent],
    /// Our Message-ID, without angle brackets.
    pub message_id: &'a str,
    /// Where Sales' answer goes (`inbox+handoff-TOKEN@domain`): it maps back to the lead.
    pub reply_to: &'a EmailAddress,
    /// Message-IDs for `In-Reply-To` (the last) and `References` (all), oldest first: the
    /// lead's reply and what it referred to. May be empty; ids that do not look like one
    /// are left out.
    pub references: &'a [String],
    /// The Date header.
    pub date: DateTime<Utc>,
}

/// A message the lead wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardMessage {
    /// Its subject, if it had one.
    pub subject: Option<String>,
    /// Its text (the new text, quotes and signature stripped where known).
    pub text: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
}

/// One event of the lead's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What kind of event (`inquiry`, `reply`, `status`…).
    pub kind: String,
    /// One line about it.
    pub summary: String,
}

/// One step sent to the lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSent {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The sequence.
    pub sequence: String,
    /// The step id.
    pub step: String,
    /// Its subject as sent, when known.
    pub subject: Option<String>,
}

/// The lead as the card shows it, every value bounded.
fn lead_value(lead: &Lead) -> Value {
    let name = bound::opt_line(lead.name.as_deref(), MAX_LINE_BYTES);
    let line = |v: &Option<String>, max| Value::from(bound::opt_line(v.as_deref(), max));
    Value::from(BTreeMap::from([
        ("email", Value::from(lead.email.as_str())),
        ("first_name", Value::from(first_name_of(&name))),
        ("name", Value::from(name.as_str())),
        ("company", line(&lead.company, MAX_LINE_BYTES)),
        ("phone", line(&lead.phone, MAX_WORD_BYTES)),
        (
            "channel",
            Value::from(bound::line(&lead.channel, MAX_WORD_BYTES)),
        ),
        ("status", Value::from(lead.status.as_str())),
        ("score", Value::from(lead.score)),
        ("form", line(&lead.form, MAX_WORD_BYTES)),
        ("owner", line(&lead.owner, MAX_LINE_BYTES)),
    ]))
}

/// The fields shown, and how many are not.
fn fields_value(lead: &Lead) -> (Value, usize) {
    let mut shown = BTreeMap::new();
    let mut bytes = 0;
    for (label, value) in &lead.fields {
        if shown.len() == bound::MAX_FIELDS || bytes > MAX_FIELDS_TOTAL_BYTES {
            break;
        }
        let label = bound::line(label, bound::MAX_LABEL_BYTES);
        let value = bound::json(value, bound::MAX_FIELD_BYTES);
        bytes += label.len() + value.len();
        shown.insert(label, Value::from(value));
    }
    let more = lead.fields.len().saturating_sub(shown.len());
    (Value::from(shown), more)
}

fn reply_value(m: &CardMessage) -> Value {
    Value::from(BTreeMap::from([
        (
            "subject",
            Value::from(bound::opt_line(m.subject.as_deref(), MAX_LINE_BYTES)),
        ),
        (
            "text",
            Value::from(bound::text(
                &m.text,
                bound::MAX_TEXT_BYTES,
                bound::MAX_TEXT_LINES,
            )),
        ),
        ("at", Value::from(bound::at(m.at))),
    ]))
}

fn event_value(e: &CardEvent) -> Value {
    Value::from(BTreeMap::from([
        ("at", Value::from(bound::at(e.at))),
        ("kind", Value::from(bound::line(&e.kind, MAX_WORD_BYTES))),
        ("summary", Value::from(bound::line(&e.summary, MAX_LINE_BYTES))),
    ]))
}

fn sent_value(s: &CardSent) -> Value {
    Value::from(BTreeMap::from([
        ("at", Value::from(bound::at(s.at))),
        (
            "sequence",
            Value::from(bound::line(&s.sequence, MAX_WORD_BYTES)),
        ),
        ("step", Value::from(bound::line(&s.step, MAX_WORD_BYTES))),
        (
            "subject",
            Value::from(bound::opt_line(s.subject.as_deref(), MAX_LINE_BYTES)),
        ),
    ]))
}

/// What the hand-off templates see (listed at [`HandoffCard`]).
fn context(card: &HandoffCard<'_>) -> Value {
    let (fields, fields_more) = fields_value(card.lead);
    let (timeline, timeline_more) = bound::newest(card.timeline, bound::MAX_TIMELINE);
    let (sent, sent_more) = bound::newest(card.sent, bound::MAX_SENT);
    Value::from(BTreeMap::from([
        ("lead", lead_value(card.lead)),
        ("fields", fields),
        ("fields_more", Value::from(fields_more)),
        ("owner", Value::from(card.owner.as_str())),
        ("reply_to", Value::from(card.reply_to.as_str())),
        ("sender", sender_value(card.sender)),
        ("why", Value::from(bound::line(card.why, MAX_LINE_BYTES))),
        (
            "reply",
            card.reply.map_or_else(|| Value::from(()), reply_value),
        ),
        ("timeline", timeline.iter().map(event_value).collect()),
        ("timeline_more", Value::from(timeline_more)),
        ("sent", sent.iter().map(sent_value).collect()),
        ("sent_more", Value::from(sent_more)),
        ("answer_help", Value::from(sales::answer_help())),
        ("verdicts", sales::verdicts_value()),
        ("date", Value::from(bound::at(card.date))),
    ]))
}

/// Renders the hand-off notification for `card.owner`: text and HTML (the built-in templates
/// or the user's, see [`HandoffCard`]), with `Reply-To` the hand-off address,
/// `In-Reply-To`/`References` from `card.references`, `Auto-Submitted: auto-generated` and
/// `X-Leadloop-Origin`, and no unsubscribe footer or `List-Unsubscribe`: it goes to a
/// colleague.
///
/// # Errors
/// A template fails (an override using an undefined variable), or an address is refused.
pub fn render_handoff(t: &Templates, card: &HandoffCard<'_>) -> Result<Rendered, RenderError> {
    let parts = sales::render_parts(t, HANDOFF_TEMPLATE, true, &context(card))?;
    let thread: Vec<&str> = card.references.iter().map(String::as_str).collect();
    let bytes = sales::assemble(
        &Envelope {
            sender: card.sender,
            to: card.owner,
            subject: &parts.subject,
            message_id: card.message_id,
            reply_to: card.reply_to,
            thread: &thread,
            date: card.date,
        },
        &parts.text,
        parts.html.as_deref(),
    )?;
    Ok(Rendered {
        message_id: card.message_id.to_owned(),
        subject: parts.subject,
        text: parts.text,
        html: parts.html,
        from: card.sender.address.clone(),
        to: card.owner.clone(),
        bytes,
    })
}

/// Calls `f` with a card for [`super::sample_lead`] that uses every variable.
pub(super) fn with_sample(f: impl FnOnce(&HandoffCard<'_>)) {
    let mut lead = super::sample_lead();
    lead.owner = Some("owner@example.com".into());
    lead.fields.insert("Budget".into(), "50k".into());
    let owner = EmailAddress::parse("owner@example.com").expect("a valid address");
    let reply_to = EmailAddress::parse("leads+handoff-sample@example.com").expect("a valid address");
    let sender = SenderData {
        name: "leadloop".into(),
        address: EmailAddress::parse("leads@example.com").expect("a valid address"),
        display_name: Some("leadloop".into()),
    };
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let reply = CardMessage {
        subject: Some("Re: Welcome".into()),
        text: "Sounds good, can we talk on Monday?".into(),
        at,
    };
    let timeline = [CardEvent {
        at,
        kind: "inquiry".into(),
        summary: "Asked about pricing".into(),
    }];
    let sent = [CardSent {
        at,
        sequence: "welcome".into(),
        step: "hello".into(),
        subject: Some("Welcome, Sam".into()),
    }];
    f(&HandoffCard {
        lead: &lead,
        owner: &owner,
        sender: &sender,
        why: "replied to \"Welcome\"",
        reply: Some(&reply),
        timeline: &timeline,
        sent: &sent,
        message_id: "leadloop.handoff.sample@example.com",
        reply_to: &reply_to,
        references: &["reply.sample@example.com".to_owned()],
        date: at,
    });
}

