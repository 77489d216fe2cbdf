//! Turns a sequence step and a lead into a complete RFC 5322 message. Pure: templates and data
//! in, bytes out; no files, database, network or clock of its own.
//!
//! Templates are minijinja with strict undefined variables (a typo in `{{ lead.frist_name }}`
//! is an error, never an empty greeting) and HTML auto-escaping in `.html` templates. Values
//! from lead data never reach a header unsanitised: control characters, CR and LF are
//! replaced before lettre encodes the header, so a lead named `"Eve\r\nBcc: x@y"` stays a
//! name, and text that looks like an RFC 2047 encoded-word (`=?…?=`) is itself encoded, so a
//! lead named `=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?=` is shown as exactly that. leadloop itself
//! adds what every message needs — the unsubscribe footer, `List-Unsubscribe` (RFC 2369) with a
//! per-enrollment mailto token that the classifier recognises, `List-Unsubscribe-Post` (RFC
//! 8058) when an https URL is configured, a Message-ID under our domain that replies are
//! matched against, and `X-Leadloop-Origin` by which the classifier ignores our own mail come
//! back — so a template can forget none of it. None of these names a sequence or step.
//!
//! Besides the steps sent to leads, render builds the two kinds of message leadloop sends to
//! its own Sales people: the hand-off notification with the lead card ([`render_handoff`]) and
//! the explanation when an answer to it is not understood ([`render_explanation`]). Their
//! templates are built in and can be overridden from the templates folder; what the lead wrote
//! is bounded and escaped before any template sees it (see [`HandoffCard`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use email_encoding::headers::rfc2047;
use email_encoding::headers::writer::EmailWriter;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::domain::{EmailAddress, Lead, LeadId, LeadStatus};

mod bound;
mod digest;
mod explain;
mod handoff;
mod sales;

pub use digest::{
    Digest, DigestBar, DigestTable, DigestWaiting, digest_subject, digest_text, render_digest,
};
pub use explain::{Explanation, render_explanation};
pub use handoff::{CardEvent, CardMessage, CardSent, HandoffCard, render_handoff};
pub use sales::{
    BUILTIN_SALES_SUBJECTS, BUILTIN_SALES_TEMPLATES, EXPLAIN_TEMPLATE, HANDOFF_TEMPLATE,
    SALES_TEMPLATES, accepted_verdicts,
};

/// Why a message could not be rendered. Nothing is sent half-rendered: the step is held.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template has a syntax error, uses an undefined variable, or fails while rendering.
    #[error("template {name}: {message}")]
    Template {
        /// The template (file name, or `SEQUENCE/STEP subject`).
        name: String,
        /// minijinja's explanation, with the line.
        message: String,
    },
    /// A template the step names does not exist.
    #[error("no template {0}.txt")]
    Missing(String),
    /// The message could not be assembled (an address lettre refuses).
    #[error("cannot build the message: {0}")]
    Message(String),
}

fn template_error(name: &str, e: &minijinja::Error) -> RenderError {
    let mut message = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cur = c.source();
    }
    RenderError::Template {
        name: name.to_owned(),
        message,
    }
}

/// Every template, compiled once: `NAME.txt`, optional `NAME.html`, layouts and includes, and
/// the subjects of the sequences' steps.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    names: BTreeSet<String>,
}

impl Templates {
    /// Compiles templates given as (file name, source), e.g. `("welcome.txt", "Hi {{ … }}")`.
    ///
    /// # Errors
    /// Every template with a syntax error.
    pub fn new(files: Vec<(String, String)>) -> Result<Templates, Vec<RenderError>> {
        let mut env = new_env();
        let mut names = BTreeSet::new();
        let mut errors = Vec::new();
        for (name, source) in files {
            if let Err(e) = env.add_template_owned(name.clone(), source) {
                errors.push(template_error(&name, &e));
            } else {
                names.insert(name);
            }
        }
        if errors.is_empty() {
            Ok(Templates { env, names })
        } else {
            Err(errors)
        }
    }

    /// No templates at all (no `[sequences]` configured).
    pub fn empty() -> Templates {
        Templates {
            env: new_env(),
            names: BTreeSet::new(),
        }
    }

    /// Adds a subject as a template of its own, under `key`: a step's (`SEQUENCE/STEP`), or
    /// that of a message to Sales ([`HANDOFF_TEMPLATE`], [`EXPLAIN_TEMPLATE`]), which then
    /// replaces the built-in one.
    ///
    /// # Errors
    /// The subject has a syntax error.
    pub fn add_subject(&mut self, key: &str, source: &str) -> Result<(), RenderError> {
        self.env
            .add_template_owned(subject_name(key), source.to_owned())
            .map_err(|e| template_error(&format!("{key} subject"), &e))
    }

    /// Whether `NAME.txt` exists (what a step's `template` must name).
    pub fn has_text(&self, name: &str) -> bool {
        self.names.contains(&format!("{name}.txt"))
    }

    /// Whether `NAME.html` exists.
    pub fn has_html(&self, name: &str) -> bool {
        self.names.contains(&format!("{name}.html"))
    }

    /// Whether a subject was added under `key` ([`Templates::add_subject`]).
    pub fn has_subject(&self, key: &str) -> bool {
        self.env.get_template(&subject_name(key)).is_ok()
    }

    /// Checks that an expression compiles (`when = "…"`).
    ///
    /// # Errors
    /// The syntax error.
    pub fn check_expression(&self, expr: &str) -> Result<(), RenderError> {
        self.env
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| template_error("when", &e))
    }

    /// Evaluates a step's `when` against a lead: `lead`, `fields`, `channel` and `score`.
    ///
    /// # Errors
    /// The expression does not compile or uses something undefined.
    pub fn when(&self, expr: &str, lead: &Lead) -> Result<bool, RenderError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| template_error("when", &e))?;
        let ctx = Value::from(BTreeMap::from([
            ("lead", lead_value(lead)),
            ("fields", fields_value(lead)),
            ("channel", Value::from(lead.channel.as_str())),
            ("score", Value::from(lead.score)),
        ]));
        let v = e.eval(ctx).map_err(|e| template_error("when", &e))?;
        Ok(v.is_true())
    }
}

/// The environment every template set is compiled in, the built-in ones too: strict
/// undefined variables, fuel, and minijinja's default auto-escaping (HTML for `.html`).
fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Templates run on lead data; a runaway loop must end with an error, not a hang.
    env.set_fuel(Some(1_000_000));
    env
}

fn subject_name(key: &str) -> String {
    format!("{key} subject")
}

/// The lead `leadloop check` and `preview --sample` render every template against.
pub fn sample_lead() -> Lead {
    Lead {
        id: LeadId(0),
        email: EmailAddress::parse("sam.sample@example.com").expect("a valid address"),
        name: Some("Sam Sample".into()),
        company: Some("Example Corp".into()),
        phone: Some("+1 555 0100".into()),
        channel: "website".into(),
        status: LeadStatus::New,
        score: 10,
        owner: None,
        form: Some("contact-page".into()),
        fields: serde_json::Map::new(),
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

/// The name to greet by: the first word of "Eve Adams", and the first word after the comma
/// of "Adams, Eve Marie" (the order directories and CRMs export). A comma followed by a
/// suffix ("Eve Adams, Jr.") is not that order. Titles are kept ("Dr. Eve Adams" gives
/// "Dr."): telling a title from a name is not worth guessing at. Commas never end up in
/// the result; a name with no word in it gives "".
fn first_name(lead: &Lead) -> &str {
    first_name_of(lead.name.as_deref().unwrap_or(""))
}

/// [`first_name`] of a name as text.
fn first_name_of(name: &str) -> &str {
    let given = name.split_once(',').and_then(|(_, rest)| {
        first_word(rest).filter(|w| !NAME_SUFFIXES.contains(&normal_suffix(w).as_str()))
    });
    given.or_else(|| first_word(name)).unwrap_or("")
}

/// What templates see as `lead`: its contact details, channel, status, score, form and owner
/// (not its id or times).
fn lead_value(lead: &Lead) -> Value {
    let s = |v: &Option<String>| Value::from(v.clone().unwrap_or_default());
    Value::from(BTreeMap::from([
        ("email", Value::from(lead.email.as_str())),
        ("name", s(&lead.name)),
        ("first_name", Value::from(first_name(lead))),
        ("company", s(&lead.company)),
        ("phone", s(&lead.phone)),
        ("channel", Value::from(lead.channel.as_str())),
        ("status", Value::from(lead.status.as_str())),
        ("score", Value::from(lead.score)),
        ("form", s(&lead.form)),
        ("owner", s(&lead.owner)),
    ]))
}

/// What templates see as `fields`: the lead's form fields.
fn fields_value(lead: &Lead) -> Value {
    Value::from(
        lead.fields
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect::<BTreeMap<String, Value>>(),
    )
}

/// What may follow a comma in "First Last, SUFFIX", compared lowercased without dots.
const NAME_SUFFIXES: &[&str] = &[
    "jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "mba", "dds", "cpa",
];

/// The first word of `s`, commas counting as spaces.
fn first_word(s: &str) -> Option<&str> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .find(|w| !w.is_empty())
}

fn normal_suffix(w: &str) -> String {
    w.chars()
        .filter(|c| *c != '.')
        .flat_map(char::to_lowercase)
        .collect()
}

fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.to_string())),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => a.iter().map(json_value).collect(),
        serde_json::Value::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// A sending identity, as templates and headers see it.
#[derive(Debug, Clone)]
pub struct SenderData {
    /// The `[[sender]]` name.
    pub name: String,
    /// Envelope and `From` address.
    pub address: EmailAddress,
    /// `From` display name.
    pub display_name: Option<String>,
}

/// One message to render.
#[derive(Debug, Clone)]
pub struct MessageSpec<'a> {
    /// The recipient.
    pub lead: &'a Lead,
    /// Who sends it.
    pub sender: &'a SenderData,
    /// Sequence name.
    pub sequence: &'a str,
    /// Step id.
    pub step: &'a str,
    /// Template name (`NAME.txt`, optional `NAME.html`).
    pub template: &'a str,
    /// The key the step's subject was added under ([`Templates::add_subject`]).
    pub subject_key: &'a str,
    /// The Message-ID without angle brackets, `leadloop.…@our-domain`.
    pub message_id: &'a str,
    /// The monitored inbox: unsubscribe and reply tokens are plus-addresses of it.
    pub inbox: &'a EmailAddress,
    /// The enrollment's token.
    pub token: &'a str,
    /// The unsubscribe link, with the token filled in, when one is configured; only an https
    /// one is offered for one-click unsubscribe (`List-Unsubscribe-Post`).
    pub unsubscribe_url: Option<&'a str>,
    /// Whether replies go to `inbox+reply-TOKEN@…` (Reply-To).
    pub reply_to_token: bool,
    /// The Date header.
    pub date: DateTime<Utc>,
}

/// A rendered message.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The Message-ID (no angle brackets).
    pub message_id: String,
    /// The subject as sent.
    pub subject: String,
    /// Text part, footer included.
    pub text: String,
    /// HTML part, footer included.
    pub html: Option<String>,
    /// Envelope sender.
    pub from: EmailAddress,
    /// Envelope recipient.
    pub to: EmailAddress,
    /// The whole message, CRLF line ends.
    pub bytes: Vec<u8>,
}

/// A header value built from data: control characters (CR and LF above all) become spaces and
/// runs of whitespace collapse, so it can never start a header of its own.
pub fn header_safe(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `s` holds something a decoder could take for an RFC 2047 encoded-word (`=?…?=`).
fn looks_encoded(s: &str) -> bool {
    s.contains("=?")
}

/// An unstructured header (Subject) whose value is text to show as it is.
///
/// lettre encodes only words with non-ASCII or control characters and writes ASCII words as
/// they are, so a value holding `=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?=` would reach clients as an
/// encoded-word and be shown as a line break and a "Bcc:" line. When the value contains `=?`,
/// the whole of it is written as base64 encoded-words (email-encoding's RFC 2047 encoder, the
/// one lettre uses, folding as lettre does), which decode to exactly the literal text. Anything
/// else goes through lettre's own encoder and stays readable.
///
/// Display names need no such step: lettre's quoted-string encoder already writes a name with
/// `=` or `?` in it as encoded-words.
fn text_header(name: &'static str, value: &str) -> Result<HeaderValue, RenderError> {
    let header = HeaderName::new_from_ascii_str(name);
    if !looks_encoded(value) {
        return Ok(HeaderValue::new(header, value.to_owned()));
    }
    let mut encoded = String::with_capacity(value.len() * 2);
    {
        let mut w = EmailWriter::new(&mut encoded, name.len() + ": ".len(), 0, false);
        rfc2047::encode(value, &mut w)
            .map_err(|e| RenderError::Message(format!("encoding the {name} header: {e}")))?;
    }
    // Safe despite the name: `encoded` is base64 encoded-words, folded, ASCII only.
    Ok(HeaderValue::dangerous_new_pre_encoded(
        header,
        value.to_owned(),
        encoded,
    ))
}

/// An address lettre accepts.
fn address(a: &str) -> Result<lettre::Address, RenderError> {
    a.parse::<lettre::Address>()
        .map_err(|e| RenderError::Message(format!("'{a}': {e}")))
}

/// A mailbox whose display name comes from data: made [`header_safe`], left out when empty.
fn mailbox(name: Option<&str>, a: &str) -> Result<Mailbox, RenderError> {
    Ok(Mailbox::new(
        name.map(header_safe).filter(|n| !n.is_empty()),
        address(a)?,
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The value of `X-Leadloop-Origin`.
const ORIGIN_MARKER: &str = "leadloop";

/// What templates see as `sender`: `name`, `address`, `display_name`.
fn sender_value(sender: &SenderData) -> Value {
    Value::from(BTreeMap::from([
        ("name", Value::from(sender.name.as_str())),
        ("address", Value::from(sender.address.as_str())),
        (
            "display_name",
            Value::from(sender.display_name.clone().unwrap_or_default()),
        ),
    ]))
}

/// What a step's templates see: `lead`, `fields`, `channel`, `score`, `sender`, `sequence`,
/// `unsubscribe_url` and `unsubscribe_mailto`.
fn context(spec: &MessageSpec<'_>, unsubscribe_url: &str, unsubscribe_mailto: &str) -> Value {
    Value::from(BTreeMap::from([
        ("lead", lead_value(spec.lead)),
        ("fields", fields_value(spec.lead)),
        ("channel", Value::from(spec.lead.channel.as_str())),
        ("score", Value::from(spec.lead.score)),
        ("sender", sender_value(spec.sender)),
        (
            "sequence",
            Value::from(BTreeMap::from([
                ("name", Value::from(spec.sequence)),
                ("step", Value::from(spec.step)),
            ])),
        ),
        ("unsubscribe_url", Value::from(unsubscribe_url)),
        ("unsubscribe_mailto", Value::from(unsubscribe_mailto)),
    ]))
}

/// Renders one step for one lead.
///
/// # Errors
/// A template fails (undefined variable, runtime error) or the message cannot be assembled;
/// nothing partial is returned.
pub fn render(t: &Templates, spec: &MessageSpec<'_>) -> Result<Rendered, RenderError> {
    let unsubscribe_mailto = format!(
        "mailto:{}?subject=unsubscribe",
        spec.inbox.with_tag(&format!("unsubscribe-{}", spec.token))
    );
    let unsubscribe_url = spec
        .unsubscribe_url
        .map_or_else(|| unsubscribe_mailto.clone(), str::to_owned);
    let ctx = context(spec, &unsubscribe_url, &unsubscribe_mailto);

    let get = |name: &str| {
        t.env
            .get_template(name)
            .map_err(|e| template_error(name, &e))
    };
    let text_name = format!("{}.txt", spec.template);
    if !t.has_text(spec.template) {
        return Err(RenderError::Missing(spec.template.to_owned()));
    }
    let mut text = get(&text_name)?
        .render(&ctx)
        .map_err(|e| template_error(&text_name, &e))?;
    let html = if t.has_html(spec.template) {
        let name = format!("{}.html", spec.template);
        Some(
            get(&name)?
                .render(&ctx)
                .map_err(|e| template_error(&name, &e))?,
        )
    } else {
        None
    };
    let subject_key = subject_name(spec.subject_key);
    let subject = header_safe(
        &get(&subject_key)?
            .render(&ctx)
            .map_err(|e| template_error(&subject_key, &e))?,
    );

    // The footer every message gets, whatever the template says.
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\n-- \nNo longer interested? Unsubscribe: {unsubscribe_url}\n"
    ));
    let html = html.map(|h| {
        let footer = format!(
            "<p style=\"font-size:12px;color:#666\">No longer interested? <a href=\"{}\">Unsubscribe</a>.</p>\n",
            html_escape(&unsubscribe_url)
        );
        match h.to_ascii_lowercase().rfind("</body>") {
            Some(at) => format!("{}{footer}{}", &h[..at], &h[at..]),
            None => format!("{h}\n{footer}"),
        }
    });

    let from = mailbox(
        spec.sender.display_name.as_deref(),
        spec.sender.address.as_str(),
    )?;
    let to = mailbox(spec.lead.name.as_deref(), spec.lead.email.as_str())?;
    let mut list_unsubscribe = format!("<{unsubscribe_mailto}>");
    if let Some(url) = spec.unsubscribe_url {
        list_unsubscribe.push_str(&format!(", <{}>", header_safe(url)));
    }
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .raw_header(text_header("Subject", &subject)?)
        .message_id(Some(format!("<{}>", spec.message_id)))
        .date(SystemTime::from(spec.date))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            list_unsubscribe,
        ))
        // The classifier ignores mail carrying this header (our own, come back); only its
        // presence counts, so the value is a fixed marker that names no sequence or step.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Leadloop-Origin"),
            ORIGIN_MARKER.to_owned(),
        ));
    if spec.unsubscribe_url.is_some_and(|u| {
        u.get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }) {
        // RFC 8058 one-click needs an https URI to POST to; a mailto alone does not qualify,
        // nor does a plain http link (`[http] public_url` on a loopback address).
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ));
    }
    if spec.reply_to_token {
        builder = builder.reply_to(mailbox(
            None,
            &spec.inbox.with_tag(&format!("reply-{}", spec.token)),
        )?);
    }
    let message = match &html {
        Some(h) => builder.multipart(MultiPart::alternative_plain_html(text.clone(), h.clone())),
        None => builder.singlepart(SinglePart::plain(text.clone())),
    }
    .map_err(|e| RenderError::Message(e.to_string()))?;

    Ok(Rendered {
        message_id: spec.message_id.to_owned(),
        subject,
        text,
        html,
        from: spec.sender.address.clone(),
        to: spec.lead.email.clone(),
        bytes: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        let mut t = Templates::new(vec![
            (
                "layout.html".into(),
                "<html><body>{% block body %}{% endblock %}</body></html>".into(),
            ),
            (
                "welcome.txt".into(),
                "Hi {{ lead.first_name or \"there\" }},\nthanks for writing via {{ channel }}.\n{% include \"sig.txt\" %}".into(),
            ),
            ("sig.txt".into(), "-- {{ sender.display_name }}".into()),
            (
                "welcome.html".into(),
                "{% extends \"layout.html\" %}{% block body %}<p>Hi {{ lead.name }} from {{ lead.company }}</p>{% endblock %}".into(),
            ),
            ("typo.txt".into(), "Hi {{ lead.frist_name }}".into()),
            (
                "budget.txt".into(),
                "Budget: {{ fields.budget | default(\"unknown\") }}{% if fields.size is defined %} size {{ fields.size }}{% endif %}".into(),
            ),
        ])
        .unwrap();
        t.add_subject("welcome/hello", "Welcome, {{ lead.name }}")
            .unwrap();
        t
    }

    fn sender() -> SenderData {
        SenderData {
            name: "team".into(),
            address: EmailAddress::parse("hello@company.com").unwrap(),
            display_name: Some("Company Team".into()),
        }
    }

    fn spec<'a>(
        lead: &'a Lead,
        sender: &'a SenderData,
        inbox: &'a EmailAddress,
        template: &'a str,
    ) -> MessageSpec<'a> {
        MessageSpec {
            lead,
            sender,
            sequence: "welcome",
            step: "hello",
            template,
            subject_key: "welcome/hello",
            message_id: "leadloop.5f0c9e2a7b13d4e8a6c1f09b2d7e4a31@company.com",
            inbox,
            token: "ab12cd",
            unsubscribe_url: Some("https://company.com/u?t=ab12cd"),
            reply_to_token: true,
            date: DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    pub(super) fn headers(bytes: &[u8]) -> Vec<String> {
        let s = String::from_utf8_lossy(bytes);
        let head = s.split("\r\n\r\n").next().unwrap().to_owned();
        head.split("\r\n").map(str::to_owned).collect()
    }

    #[test]
    fn a_full_message_has_parts_headers_and_footer() {
        let t = templates();
        let lead = sample_lead();
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        assert_eq!(r.subject, "Welcome, Sam Sample");
        assert!(
            r.text
                .starts_with("Hi Sam,\nthanks for writing via website.\n-- Company Team")
        );
        assert!(
            r.text
                .contains("Unsubscribe: https://company.com/u?t=ab12cd")
        );
        let html = r.html.as_deref().unwrap();
        assert!(
            html.contains("<p>Hi Sam Sample from Example Corp</p><p style"),
            "{html}"
        );
        assert!(html.ends_with("</body></html>"), "{html}");
        let h = headers(&r.bytes).join("\n");
        for want in [
            "Message-ID: <leadloop.5f0c9e2a7b13d4e8a6c1f09b2d7e4a31@company.com>",
            "List-Unsubscribe: <mailto:leads+unsubscribe-ab12cd@company.com?subject=unsubscribe>,",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Reply-To: leads+reply-ab12cd@company.com",
            "From: \"Company Team\" <hello@company.com>",
            "Subject: Welcome, Sam Sample",
            "X-Leadloop-Origin: leadloop",
            "Content-Type: multipart/alternative",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
        // Sequence and step names stay inside.
        assert!(!h.contains("welcome/") && !h.contains("hello\n"), "{h}");
        // What the classifier reads back: the unsubscribe and reply tokens.
        let parsed = mail_parser::MessageParser::default()
            .parse(&r.bytes)
            .unwrap();
        assert_eq!(parsed.subject(), Some("Welcome, Sam Sample"));
    }

    #[test]
    fn one_click_is_offered_for_https_links_only() {
        let t = templates();
        let lead = sample_lead();
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let mut plain = spec(&lead, &s, &inbox, "welcome");
        plain.unsubscribe_url = Some("http://127.0.0.1:8025/u/ab12cd");
        let h = headers(&render(&t, &plain).unwrap().bytes).join("\n");
        assert!(h.contains("<http://127.0.0.1:8025/u/ab12cd>"), "{h}");
        assert!(!h.contains("List-Unsubscribe-Post"), "{h}");
        let mut none = spec(&lead, &s, &inbox, "welcome");
        none.unsubscribe_url = None;
        let h = headers(&render(&t, &none).unwrap().bytes).join("\n");
        assert!(!h.contains("List-Unsubscribe-Post"), "{h}");
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = templates();
        let mut lead = sample_lead();
        lead.company = Some("<script>alert(1)</script> & Co".into());
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        let html = r.html.unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn a_lead_name_cannot_inject_a_header() {
        let t = templates();
        let mut lead = sample_lead();
        lead.name = Some("Eve\r\nBcc: x@y".into());
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        let hs = headers(&r.bytes);
        assert!(
            !hs.iter().any(|h| h.to_ascii_lowercase().starts_with("bcc")),
            "{hs:#?}"
        );
        assert_eq!(r.subject, "Welcome, Eve Bcc: x@y");
        let parsed = mail_parser::MessageParser::default()
            .parse(&r.bytes)
            .unwrap();
        assert!(parsed.bcc().is_none());
        assert_eq!(
            parsed.to().unwrap().first().unwrap().address(),
            Some("sam.sample@example.com")
        );
    }

    /// The head is printable ASCII, no line is longer than RFC 5322 allows (998) and no
    /// encoded-word longer than RFC 2047 allows (75).
    pub(super) fn assert_valid_head(bytes: &[u8]) {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header/body separator");
        let head = &bytes[..end];
        assert!(
            head.iter()
                .all(|&b| b == b'\r' || b == b'\n' || b == b'\t' || (32..127).contains(&b)),
            "raw 8-bit or control bytes in\n{}",
            String::from_utf8_lossy(head)
        );
        for line in String::from_utf8_lossy(head).split("\r\n") {
            assert!(line.len() <= 998, "unfolded line {line:?}");
            assert!(!line.contains(['\r', '\n']), "bare line break in {line:?}");
            for word in line.split(' ').filter(|w| w.starts_with("=?")) {
                assert!(word.len() <= 75, "encoded-word too long: {word:?}");
            }
        }
    }

    #[test]
    fn lead_data_that_looks_like_an_encoded_word_stays_literal_text() {
        const HOSTILE: &str = "=?utf-8?q?Eve=0D=0ABcc=3A_x=40y?=";
        let t = templates();
        let mut lead = sample_lead();
        lead.name = Some(HOSTILE.into());
        let mut s = sender();
        s.display_name = Some(format!("Team {HOSTILE}"));
        let inbox = EmailAddress::parse("leads@company.com").unwrap();
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        assert_eq!(r.subject, format!("Welcome, {HOSTILE}"));
        assert_valid_head(&r.bytes);
        let hs = headers(&r.bytes);
        assert!(
            !hs.iter().any(|h| h.to_ascii_lowercase().starts_with("bcc")),
            "{hs:#?}"
        );
        // Not written as-is: a decoder would turn it into a line break and a Bcc line.
        assert!(!hs.iter().any(|h| h.contains(HOSTILE)), "{hs:#?}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&r.bytes)
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some(format!("Welcome, {HOSTILE}").as_str())
        );
        assert!(parsed.bcc().is_none());
        assert!(parsed.header("Bcc").is_none());
        let to = parsed.to().unwrap().first().unwrap();
        assert_eq!(to.name(), Some(HOSTILE));
        assert_eq!(to.address(), Some("sam.sample@example.com"));
        let from = parsed.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some(format!("Team {HOSTILE}").as_str()));
        assert_eq!(from.address(), Some("hello@company.com"));

        // A long one is folded into several encoded-words and still decodes to the literal.
        let long = format!("{HOSTILE} Ünïcode {}", "=?x?".repeat(40));
        lead.name = Some(long.clone());
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        assert_valid_head(&r.bytes);
        let parsed = mail_parser::MessageParser::default()
            .parse(&r.bytes)
            .unwrap();
        assert_eq!(parsed.subject(), Some(format!("Welcome, {long}").as_str()));
        let subject = headers(&r.bytes)
            .into_iter()
            .skip_while(|h| !h.starts_with("Subject:"))
            .take_while(|h| h.starts_with("Subject:") || h.starts_with(' '))
            .collect::<Vec<_>>();
        assert!(subject.len() > 1, "not folded: {subject:#?}");
        assert!(subject.iter().all(|l| l.len() <= 78), "{subject:#?}");
        assert_eq!(
            parsed.to().unwrap().first().unwrap().name(),
            Some(long.as_str())
        );
    }

    #[test]
    fn ordinary_subjects_and_names_stay_plain() {
        let t = templates();
        let mut lead = sample_lead();
        lead.name = Some("Sam = Sample?".into());
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let r = render(&t, &spec(&lead, &s, &inbox, "welcome")).unwrap();
        let h = headers(&r.bytes).join("\n");
        assert!(h.contains("Subject: Welcome, Sam = Sample?\n"), "{h}");
        assert_valid_head(&r.bytes);
        let parsed = mail_parser::MessageParser::default()
            .parse(&r.bytes)
            .unwrap();
        assert_eq!(parsed.subject(), Some("Welcome, Sam = Sample?"));
        assert_eq!(
            parsed.to().unwrap().first().unwrap().name(),
            Some("Sam = Sample?")
        );
    }

    #[test]
    fn first_names_come_after_the_comma_in_last_first_order() {
        let first = |name: Option<&str>| {
            let mut lead = sample_lead();
            lead.name = name.map(str::to_owned);
            first_name(&lead).to_owned()
        };
        for (name, want) in [
            ("Eve Adams", "Eve"),
            ("Adams, Eve", "Eve"),
            ("Adams, Eve Marie", "Eve"),
            ("Adams,Eve", "Eve"),
            ("  Adams ,  Eve  ", "Eve"),
            ("van der Berg, Eve", "Eve"),
            ("Adams, Eve, PhD", "Eve"),
            ("Eve Adams, Jr.", "Eve"),
            ("Eve Adams, PhD", "Eve"),
            ("Adams,", "Adams"),
            ("Eve", "Eve"),
            ("Dr. Eve Adams", "Dr."),
            ("Müller, Jörg", "Jörg"),
            (",", ""),
            (",,, ,", ""),
            ("  ", ""),
            ("", ""),
        ] {
            assert_eq!(first(Some(name)), want, "{name:?}");
        }
        assert_eq!(first(None), "");
    }

    #[test]
    fn undefined_variables_are_errors_and_defaults_work() {
        let t = templates();
        let lead = sample_lead();
        let (s, inbox) = (sender(), EmailAddress::parse("leads@company.com").unwrap());
        let err = render(&t, &spec(&lead, &s, &inbox, "typo")).unwrap_err();
        assert!(err.to_string().contains("typo.txt"), "{err}");
        assert!(err.to_string().contains("undefined"), "{err}");
        let mut t2 = templates();
        t2.add_subject("welcome/hello", "x").unwrap();
        let r = render(&t2, &spec(&lead, &s, &inbox, "budget")).unwrap();
        assert!(r.text.starts_with("Budget: unknown\n"), "{}", r.text);
        let mut lead = lead;
        lead.fields.insert("budget".into(), "50k".into());
        lead.fields.insert("size".into(), 40.into());
        let r = render(&t2, &spec(&lead, &s, &inbox, "budget")).unwrap();
        assert!(r.text.starts_with("Budget: 50k size 40\n"), "{}", r.text);
    }

    #[test]
    fn when_expressions_see_lead_fields_channel_and_score() {
        let t = templates();
        let mut lead = sample_lead();
        lead.fields.insert("Company size".into(), "250".into());
        assert!(
            t.when("score >= 10 and channel == 'website'", &lead)
                .unwrap()
        );
        assert!(!t.when("score > 10", &lead).unwrap());
        assert!(t.when("fields['Company size'] | int > 100", &lead).unwrap());
        assert!(t.when("'Example' in lead.company", &lead).unwrap());
        assert!(t.when("fields.nothing is defined", &lead).is_ok_and(|v| !v));
        assert!(t.when("lead.nope > 1", &lead).is_err());
        assert!(t.check_expression("score >=").is_err());
    }

    #[test]
    fn syntax_errors_name_the_template_and_line() {
        let err = Templates::new(vec![("bad.txt".into(), "ok\n{% if %}".into())]).unwrap_err();
        let msg = err[0].to_string();
        assert!(msg.contains("bad.txt"), "{msg}");
        assert!(msg.contains("bad.txt:2"), "{msg}");
    }
}
