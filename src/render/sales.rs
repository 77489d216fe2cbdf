//! What the two messages to Sales share: their built-in templates and how the user's override
//! them, the help on how to answer, and the headers of a message to a colleague.
//!
//! The built-in templates are compiled into an environment of their own, set up as the
//! user's is ([`super::new_env`]), so a copy of one in the templates folder renders the same.
//! They need no registering: where the user's templates hold none, the built-in one is used.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};
use minijinja::{Environment, Value};

use super::{
    ORIGIN_MARKER, RenderError, SenderData, Templates, bound, mailbox, subject_name,
    template_error, text_header,
};
use crate::domain::{EmailAddress, VerdictKind};

/// The hand-off notification's template name: `handoff.txt`, optional `handoff.html`, and its
/// subject under this key ([`Templates::add_subject`]).
pub const HANDOFF_TEMPLATE: &str = "handoff";

/// The explanation reply's template name: `explain.txt` (plain text only: an `explain.html`
/// is not used), and its subject under this key.
pub const EXPLAIN_TEMPLATE: &str = "explain";

/// The templates of messages to Sales: names a template loader should not take for step
/// templates, and the subject keys it may add from configuration.
pub const SALES_TEMPLATES: &[&str] = &[HANDOFF_TEMPLATE, EXPLAIN_TEMPLATE];

/// The built-in templates, as (file name, source): what is used where the templates folder
/// has no file of that name, and a starting point for one that does.
pub const BUILTIN_SALES_TEMPLATES: &[(&str, &str)] = &[
    ("handoff.txt", include_str!("builtin/handoff.txt")),
    ("handoff.html", include_str!("builtin/handoff.html")),
    ("explain.txt", include_str!("builtin/explain.txt")),
];

/// The built-in subjects, as (key, source): used where no subject was added under the key.
pub const BUILTIN_SALES_SUBJECTS: &[(&str, &str)] = &[
    (HANDOFF_TEMPLATE, include_str!("builtin/handoff.subject")),
    (EXPLAIN_TEMPLATE, include_str!("builtin/explain.subject")),
];

/// The built-in templates, compiled once. They are part of the program: a syntax error in
/// one is a bug the tests catch, reported as a template error should it ever be reached.
static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = super::new_env();
    for (name, source) in BUILTIN_SALES_TEMPLATES {
        let _ = env.add_template(name, source);
    }
    for (key, source) in BUILTIN_SALES_SUBJECTS {
        let _ = env.add_template_owned(subject_name(key), *source);
    }
    env
});

/// The longest subject a message to Sales gets, in bytes.
const MAX_SUBJECT_BYTES: usize = 400;

/// The lines of the help on how to answer a hand-off, for one verdict: (what to write, what it
/// does). Every verdict has one, so a verdict added to the domain is added here too.
fn usages(kind: VerdictKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        VerdictKind::Qualified => &[("qualified", "worth our time")],
        VerdictKind::Unqualified => &[("unqualified: REASON", "not a fit, and why")],
        VerdictKind::Customer => &[("customer", "has bought")],
        VerdictKind::NotNow => &[
            (
                "not now: until DATE",
                "pause until DATE (2027-03-01), then nurture again",
            ),
            ("not now: 3 months", "the same, for a while"),
        ],
        VerdictKind::Nurture => &[("nurture: SEQUENCE", "enter that sequence")],
        VerdictKind::Owner => &[("owner: ADDRESS", "hand the lead to a colleague")],
    }
}

/// Every accepted verdict line, as (what to write, what it does), in the domain's order.
fn verdict_lines() -> impl Iterator<Item = (&'static str, &'static str)> {
    VerdictKind::ALL
        .iter()
        .flat_map(|k| usages(*k).iter().copied())
}

/// Every accepted verdict line (`qualified`, `unqualified: REASON`, …), comma-separated: for
/// an answer, typed or mailed, that is none of them.
pub fn accepted_verdicts() -> String {
    verdict_lines()
        .map(|(usage, _)| usage)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `answer_help`: how to answer, as text.
pub(super) fn answer_help() -> String {
    let width = verdict_lines().map(|(u, _)| u.len()).max().unwrap_or(0);
    let mut s =
        String::from("To answer, reply to this message with your verdict on the first line:\n\n");
    for (usage, meaning) in verdict_lines() {
        s.push_str(&format!("  {usage:<width$}   {meaning}\n"));
    }
    s.push_str("\nAnything below the first line is kept as a comment on the lead.");
    s
}

/// `verdicts`: the same as a list of `{usage, meaning}`, for templates that lay it out.
pub(super) fn verdicts_value() -> Value {
    verdict_lines()
        .map(|(usage, meaning)| {
            Value::from(BTreeMap::from([
                ("usage", Value::from(usage)),
                ("meaning", Value::from(meaning)),
            ]))
        })
        .collect()
}

/// What a message to Sales says, rendered.
pub(super) struct Parts {
    pub(super) subject: String,
    pub(super) text: String,
    pub(super) html: Option<String>,
}

fn render_in(
    env: &Environment<'static>,
    name: &str,
    shown_as: &str,
    ctx: &Value,
) -> Result<String, RenderError> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| template_error(shown_as, &e))
}

/// Renders template `name` with `ctx`: the user's `NAME.txt` where there is one, else the
/// built-in; the user's `NAME.html` where there is one, else the built-in one unless the user
/// wrote their own text (it would show the built-in card beside their text); the subject
/// added under `name`, else the built-in. `with_html` false renders no HTML at all.
pub(super) fn render_parts(
    t: &Templates,
    name: &str,
    with_html: bool,
    ctx: &Value,
) -> Result<Parts, RenderError> {
    let builtin = &*BUILTIN;
    let text_file = format!("{name}.txt");
    let user_text = t.has_text(name);
    let mut text = if user_text {
        render_in(&t.env, &text_file, &text_file, ctx)?
    } else {
        render_in(builtin, &text_file, &format!("built-in {text_file}"), ctx)?
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let html_file = format!("{name}.html");
    let html = if !with_html {
        None
    } else if t.has_html(name) {
        Some(render_in(&t.env, &html_file, &html_file, ctx)?)
    } else if !user_text && builtin.get_template(&html_file).is_ok() {
        Some(render_in(
            builtin,
            &html_file,
            &format!("built-in {html_file}"),
            ctx,
        )?)
    } else {
        None
    };
    let subject_file = subject_name(name);
    let subject = if t.has_subject(name) {
        render_in(&t.env, &subject_file, &subject_file, ctx)?
    } else {
        render_in(
            builtin,
            &subject_file,
            &format!("built-in {subject_file}"),
            ctx,
        )?
    };
    Ok(Parts {
        subject: bound::line(&subject, MAX_SUBJECT_BYTES),
        text,
        html,
    })
}

/// The headers of a message to a colleague.
pub(super) struct Envelope<'a> {
    pub(super) sender: &'a SenderData,
    pub(super) to: &'a EmailAddress,
    pub(super) subject: &'a str,
    /// Ours, without angle brackets.
    pub(super) message_id: &'a str,
    /// Where answers go; `None`: to the sender.
    pub(super) reply_to: Option<&'a EmailAddress>,
    /// The Message-IDs of the thread from data, oldest first: the last is `In-Reply-To`, all
    /// are `References`. Those that do not look like a Message-ID are left out.
    pub(super) thread: &'a [&'a str],
    pub(super) date: DateTime<Utc>,
}

/// At most this many Message-IDs go into `References` (the newest).
const MAX_REFERENCES: usize = 20;

/// The whole message: From, To, Subject, Message-ID, Date, Reply-To, In-Reply-To and
/// References when there is a thread, `Auto-Submitted: auto-generated` (RFC 3834) and
/// `X-Auto-Response-Suppress` so no out-of-office answers it, and `X-Leadloop-Origin`. No
/// `List-Unsubscribe` and no footer: it goes to a colleague, not to a lead.
pub(super) fn assemble(
    e: &Envelope<'_>,
    text: &str,
    html: Option<&str>,
) -> Result<Vec<u8>, RenderError> {
    let header = |name: &'static str, value: &str| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
    };
    let mut builder = lettre::Message::builder()
        .from(mailbox(
            e.sender.display_name.as_deref(),
            e.sender.address.as_str(),
        )?)
        .to(mailbox(None, e.to.as_str())?)
        .raw_header(text_header("Subject", e.subject)?)
        .message_id(Some(format!("<{}>", e.message_id)))
        .date(SystemTime::from(e.date))
        .raw_header(header("Auto-Submitted", "auto-generated"))
        .raw_header(header("X-Auto-Response-Suppress", "OOF, AutoReply"))
        // As on every message leadloop sends: the classifier ignores its own mail come back.
        .raw_header(header("X-Leadloop-Origin", ORIGIN_MARKER));
    if let Some(reply_to) = e.reply_to {
        builder = builder.reply_to(mailbox(None, reply_to.as_str())?);
    }
    let ids: Vec<&str> = e
        .thread
        .iter()
        .filter_map(|id| bound::message_id(id))
        .collect();
    let (ids, _) = bound::newest(&ids, MAX_REFERENCES);
    if let Some(last) = ids.last() {
        builder = builder.in_reply_to(format!("<{last}>")).references(
            ids.iter()
                .map(|id| format!("<{id}>"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let message = match html {
        Some(h) => builder.multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            h.to_owned(),
        )),
        None => builder.singlepart(SinglePart::plain(text.to_owned())),
    }
    .map_err(|e| RenderError::Message(e.to_string()))?;
    Ok(message.formatted())
}

impl Templates {
    /// Renders the hand-off and the explanation against sample data, with the user's
    /// overrides where there are any (what `leadloop check` should do after the subjects
    /// from configuration are added): every error found.
    pub fn check_sales_templates(&self) -> Vec<RenderError> {
        let mut errors = Vec::new();
        super::handoff::with_sample(|card| {
            if let Err(e) = super::render_handoff(self, card) {
                errors.push(e);
            }
        });
        super::explain::with_sample(|e| {
            if let Err(e) = super::render_explanation(self, e) {
                errors.push(e);
            }
        });
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_templates_compile() {
        for (name, _) in BUILTIN_SALES_TEMPLATES {
            assert!(BUILTIN.get_template(name).is_ok(), "{name}");
        }
        for (key, _) in BUILTIN_SALES_SUBJECTS {
            assert!(BUILTIN.get_template(&subject_name(key)).is_ok(), "{key}");
        }
        // Each also compiles where a user would copy it.
        let t = Templates::new(
            BUILTIN_SALES_TEMPLATES
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                .collect(),
        );
        assert!(t.is_ok());
        assert!(Templates::empty().check_sales_templates().is_empty());
    }

    #[test]
    fn the_help_names_every_verdict() {
        let help = answer_help();
        for want in [
            "qualified",
            "unqualified: REASON",
            "customer",
            "not now: until DATE",
            "not now: 3 months",
            "nurture: SEQUENCE",
            "owner: ADDRESS",
        ] {
            assert!(help.contains(&format!("\n  {want} ")), "{want} in\n{help}");
        }
        assert!(help.contains("first line"), "{help}");
        assert!(help.contains("comment"), "{help}");
    }
}
