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
        let mut label = bound::line(label, bound::MAX_LABEL_BYTES);
        if shown.contains_key(&label) {
            // Two labels that differ only in what was made plain or cut: both are shown.
            label = format!("{label} ({})", shown.len() + 1);
        }
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
        (
            "summary",
            Value::from(bound::line(&e.summary, MAX_LINE_BYTES)),
        ),
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
            reply_to: Some(card.reply_to),
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
    let reply_to =
        EmailAddress::parse("leads+handoff-sample@example.com").expect("a valid address");
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

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_valid_head, headers};
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// What a card is built from, owned, so a test changes what it needs.
    struct Data {
        lead: Lead,
        owner: EmailAddress,
        sender: SenderData,
        why: String,
        reply: Option<CardMessage>,
        timeline: Vec<CardEvent>,
        sent: Vec<CardSent>,
        reply_to: EmailAddress,
        references: Vec<String>,
    }

    impl Data {
        fn new() -> Data {
            let mut lead = super::super::sample_lead();
            lead.owner = Some("bob@company.com".into());
            lead.fields.insert("budget".into(), "50k".into());
            lead.fields.insert("size".into(), 40.into());
            Data {
                lead,
                owner: EmailAddress::parse("bob@company.com").unwrap(),
                sender: SenderData {
                    name: "team".into(),
                    address: EmailAddress::parse("leads@company.com").unwrap(),
                    display_name: Some("leadloop".into()),
                },
                why: "replied to \"Welcome\"".into(),
                reply: Some(CardMessage {
                    subject: Some("Re: Welcome".into()),
                    text: "Sounds good.\nCan we talk on Monday?\n\n> quoted".into(),
                    at: at("2026-11-27T09:58:00Z"),
                }),
                timeline: vec![
                    CardEvent {
                        at: at("2026-11-20T09:00:00Z"),
                        kind: "inquiry".into(),
                        summary: "Asked about pricing".into(),
                    },
                    CardEvent {
                        at: at("2026-11-27T09:58:00Z"),
                        kind: "reply".into(),
                        summary: "Re: Welcome".into(),
                    },
                ],
                sent: vec![CardSent {
                    at: at("2026-11-21T09:00:00Z"),
                    sequence: "welcome".into(),
                    step: "hello".into(),
                    subject: Some("Welcome, Sam".into()),
                }],
                reply_to: EmailAddress::parse("leads+handoff-k3y9@company.com").unwrap(),
                references: vec![
                    "first@example.com".into(),
                    "<reply-1@mail.example.com>".into(),
                ],
            }
        }

        fn card(&self) -> HandoffCard<'_> {
            HandoffCard {
                lead: &self.lead,
                owner: &self.owner,
                sender: &self.sender,
                why: &self.why,
                reply: self.reply.as_ref(),
                timeline: &self.timeline,
                sent: &self.sent,
                message_id: "leadloop.handoff.0a1b2c@company.com",
                reply_to: &self.reply_to,
                references: &self.references,
                date: at("2026-11-27T10:00:00Z"),
            }
        }

        fn render(&self) -> Rendered {
            render_handoff(&Templates::empty(), &self.card()).unwrap()
        }
    }

    fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(bytes).unwrap()
    }

    fn has_header(bytes: &[u8], name: &str) -> bool {
        let name = format!("{}:", name.to_ascii_lowercase());
        headers(bytes)
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with(&name))
    }

    #[test]
    fn the_builtin_card_shows_the_lead_what_it_wrote_and_how_to_answer() {
        let r = Data::new().render();
        assert_eq!(
            r.subject,
            "Lead: Sam Sample <sam.sample@example.com> — replied to \"Welcome\""
        );
        assert_eq!(r.to.as_str(), "bob@company.com");
        assert_eq!(r.from.as_str(), "leads@company.com");
        assert_eq!(r.message_id, "leadloop.handoff.0a1b2c@company.com");
        for want in [
            "Sam Sample <sam.sample@example.com> replied to \"Welcome\"\n",
            "  Company:  Example Corp\n",
            "  Phone:    +1 555 0100\n",
            "  Channel:  website\n",
            "  Form:     contact-page\n",
            "  Status:   new\n",
            "  Score:    10\n",
            "  Owner:    bob@company.com\n",
            "Form fields:\n  budget: 50k\n  size: 40\n",
            "What they wrote, 2026-11-27 09:58 UTC, subject \"Re: Welcome\":\n\n    Sounds good.\n    Can we talk on Monday?\n\n    > quoted\n",
            "Timeline, oldest first:\n  2026-11-20 09:00 UTC  inquiry: Asked about pricing\n  2026-11-27 09:58 UTC  reply: Re: Welcome\n",
            "Sent to the lead, oldest first:\n  2026-11-21 09:00 UTC  welcome / hello: \"Welcome, Sam\"\n",
            "\n-- \nTo answer, reply to this message with your verdict on the first line:\n",
            "  unqualified: REASON ",
            "  not now: until DATE ",
            "  not now: 3 months ",
            "  nurture: SEQUENCE ",
            "  owner: ADDRESS ",
            "kept as a comment",
        ] {
            assert!(r.text.contains(want), "missing {want:?} in\n{}", r.text);
        }
        assert!(!r.text.contains("not shown"), "{}", r.text);
        let html = r.html.as_deref().unwrap();
        for want in [
            "<strong>Sam Sample &lt;sam.sample@example.com&gt;</strong> replied to &quot;Welcome&quot;",
            "<th align=\"left\" style=\"padding-right:12px\">budget</th><td>50k</td>",
            "Can we talk on Monday?\n\n&gt; quoted</pre>",
            "<strong>inquiry</strong>: Asked about pricing",
            "nurture: SEQUENCE",
        ] {
            assert!(html.contains(want), "missing {want:?} in\n{html}");
        }
        // A card without a reply, history or fields leaves those parts out.
        let mut d = Data::new();
        d.reply = None;
        d.timeline.clear();
        d.sent.clear();
        d.lead.fields.clear();
        d.lead.name = None;
        let r = d.render();
        assert_eq!(
            r.subject,
            "Lead: <sam.sample@example.com> — replied to \"Welcome\""
        );
        assert!(r.text.starts_with("<sam.sample@example.com> replied to"));
        for absent in [
            "What they wrote",
            "Timeline",
            "Sent to",
            "Form fields",
            "Name:",
        ] {
            assert!(!r.text.contains(absent), "{absent} in\n{}", r.text);
        }
        assert!(r.text.contains("nurture: SEQUENCE"), "{}", r.text);
    }

    #[test]
    fn headers_thread_the_card_and_carry_no_unsubscribe() {
        let mut d = Data::new();
        d.references.push("<bad id>\r\nBcc: x@evil".into());
        let r = d.render();
        assert_valid_head(&r.bytes);
        let h = headers(&r.bytes).join("\n");
        for want in [
            "From: leadloop <leads@company.com>",
            "To: bob@company.com",
            "Reply-To: leads+handoff-k3y9@company.com",
            "Message-ID: <leadloop.handoff.0a1b2c@company.com>",
            "In-Reply-To: <reply-1@mail.example.com>",
            "References: <first@example.com> <reply-1@mail.example.com>",
            "Auto-Submitted: auto-generated",
            "X-Leadloop-Origin: leadloop",
            "Content-Type: multipart/alternative",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
        for absent in ["List-Unsubscribe", "List-Unsubscribe-Post", "Bcc"] {
            assert!(!has_header(&r.bytes, absent), "{absent} in\n{h}");
        }
        assert!(!r.text.to_ascii_lowercase().contains("unsubscribe"));
        assert!(
            !r.html
                .as_deref()
                .unwrap()
                .to_ascii_lowercase()
                .contains("unsubscribe")
        );
        let m = parse(&r.bytes);
        assert_eq!(
            m.in_reply_to().as_text_list().unwrap_or_default(),
            ["reply-1@mail.example.com"]
        );
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("leads+handoff-k3y9@company.com")
        );
        assert_eq!(
            m.header("Auto-Submitted").unwrap().as_text(),
            Some("auto-generated")
        );
        assert!(m.header("List-Unsubscribe").is_none());
        assert!(m.bcc().is_none());

        // Without references, neither header.
        d.references.clear();
        let r = d.render();
        assert!(!has_header(&r.bytes, "In-Reply-To"));
        assert!(!has_header(&r.bytes, "References"));
        assert!(has_header(&r.bytes, "Auto-Submitted"));
    }

    #[test]
    fn user_templates_override_the_builtin_ones() {
        let d = Data::new();
        let mut t = Templates::new(vec![(
            "handoff.txt".into(),
            "Custom: {{ lead.first_name }} {{ why }}\n{{ answer_help }}".into(),
        )])
        .unwrap();
        let r = render_handoff(&t, &d.card()).unwrap();
        assert!(
            r.text
                .starts_with("Custom: Sam replied to \"Welcome\"\nTo answer"),
            "{}",
            r.text
        );
        // Their own text without their own HTML: no built-in card beside it.
        assert!(r.html.is_none());
        assert!(r.subject.starts_with("Lead: Sam Sample"), "{}", r.subject);
        t.add_subject(HANDOFF_TEMPLATE, "{{ lead.company }} wrote back")
            .unwrap();
        assert!(t.has_subject(HANDOFF_TEMPLATE));
        let r = render_handoff(&t, &d.card()).unwrap();
        assert_eq!(r.subject, "Example Corp wrote back");
        assert!(
            headers(&r.bytes).contains(&"Subject: Example Corp wrote back".to_owned()),
            "{:?}",
            headers(&r.bytes)
        );
        // Their HTML alone goes with the built-in text.
        let t = Templates::new(vec![(
            "handoff.html".into(),
            "<p>{{ lead.name }}: {{ reply.text }}</p>".into(),
        )])
        .unwrap();
        let r = render_handoff(&t, &d.card()).unwrap();
        assert!(r.text.contains("Form fields:"), "{}", r.text);
        assert!(r.html.unwrap().starts_with("<p>Sam Sample: Sounds good."));
        // A broken override is an error naming it, found by the check too.
        let t = Templates::new(vec![("handoff.txt".into(), "{{ lead.nmae }}".into())]).unwrap();
        let e = render_handoff(&t, &d.card()).unwrap_err().to_string();
        assert!(e.contains("handoff.txt") && e.contains("undefined"), "{e}");
        let errors = t.check_sales_templates();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().contains("handoff.txt"));
    }

    #[test]
    fn a_five_megabyte_reply_makes_a_small_message() {
        let mut d = Data::new();
        d.reply.as_mut().unwrap().text = "x".repeat(5 * 1024 * 1024);
        let r = d.render();
        assert!(r.bytes.len() < 64 * 1024, "{} bytes", r.bytes.len());
        assert!(r.text.contains("more bytes not shown]"), "{}", r.text);
        // Words too: a reply of long lines is cut at 8 KiB.
        d.reply.as_mut().unwrap().text = "word ".repeat(1024 * 1024);
        let r = d.render();
        assert!(r.bytes.len() < 64 * 1024, "{} bytes", r.bytes.len());
        let m = parse(&r.bytes);
        let text = m.body_text(0).unwrap();
        assert!(text.contains("more bytes not shown]"), "{text}");
    }

    #[test]
    fn ten_thousand_lines_are_cut_to_two_hundred() {
        let mut d = Data::new();
        d.reply.as_mut().unwrap().text = (1..=10_000)
            .map(|i| format!("line {i}\r\n"))
            .collect::<String>();
        let r = d.render();
        assert!(r.bytes.len() < 64 * 1024, "{} bytes", r.bytes.len());
        assert!(r.text.contains("    line 200\n"), "{}", r.text);
        assert!(!r.text.contains("line 201"), "{}", r.text);
        assert!(
            r.text.contains("    [… 9800 more lines not shown]\n"),
            "{}",
            r.text
        );
        assert!(!r.text.contains('\r'));
        let html = r.html.unwrap();
        assert!(html.contains("line 200\n[… 9800 more lines not shown]</pre>"));
    }

    const SCRIPT: &str = "<script>alert(document.cookie)</script>";
    const IMG: &str = "<img src=http://evil.example/t.png?lead=1>";

    /// No tag, attribute or URL the lead wrote is markup in `html`: every tag is one of the
    /// built-in template's, and nothing in it loads or links anything.
    fn assert_inert(html: &str) {
        const TAGS: &[&str] = &[
            "!doctype", "html", "head", "meta", "title", "body", "p", "strong", "table", "tr",
            "th", "td", "h3", "pre", "ul", "li", "hr",
        ];
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices('<') {
            let name: String = lower[i + 1..]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(TAGS.contains(&name.as_str()), "tag {name:?} in\n{html}");
        }
        for bad in ["src=\"", "href=\"", "url(", "http://", "https://"] {
            assert!(!lower.contains(bad), "{bad:?} in\n{html}");
        }
    }

    #[test]
    fn html_from_the_lead_is_text_in_the_card() {
        let mut d = Data::new();
        let hostile = format!("{SCRIPT}{IMG}<a href=\"http://evil.example\">x</a>");
        d.reply.as_mut().unwrap().text =
            format!("Hi!\n{hostile}\n<iframe src=http://evil.example>");
        d.reply.as_mut().unwrap().subject = Some(hostile.clone());
        d.lead.name = Some(format!("Eve {IMG}"));
        d.lead.company = Some(SCRIPT.into());
        d.lead.fields.insert(IMG.into(), hostile.clone().into());
        d.timeline[0].summary = hostile.clone();
        d.timeline[0].kind = SCRIPT.into();
        d.sent[0].subject = Some(IMG.into());
        d.why = format!("replied {IMG}");
        let r = d.render();
        let html = r.html.as_deref().unwrap();
        assert_inert(html);
        assert!(
            html.contains("&lt;script&gt;alert(document.cookie)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=http:&#x2f;&#x2f;evil.example"),
            "{html}"
        );
        // The HTML part as sent, decoded, and the raw bytes.
        let m = parse(&r.bytes);
        assert_inert(&m.body_html(0).unwrap());
        let raw = String::from_utf8_lossy(&r.bytes).to_ascii_lowercase();
        let html_part = &raw[raw.find("content-type: text/html").unwrap()..];
        assert!(
            !html_part.contains("<script") && !html_part.contains("<img"),
            "{html_part}"
        );
        // The text part shows what the lead wrote as the text it is: text/plain is never
        // markup, and Sales reads `<script>` rather than `&lt;script&gt;`.
        assert!(r.text.contains(&format!("    {hostile}\n")), "{}", r.text);
    }

    #[test]
    fn a_name_with_a_line_break_injects_no_header() {
        let mut d = Data::new();
        d.lead.name = Some("Eve\r\nBcc: x@evil.example".into());
        d.why = "replied\r\nBcc: y@evil.example\r\n\r\nbody".into();
        d.sender.display_name = Some("leadloop\r\nBcc: z@evil.example".into());
        d.lead.company = Some("ACME\r\nBcc: w@evil.example".into());
        let r = d.render();
        assert_valid_head(&r.bytes);
        assert!(!has_header(&r.bytes, "Bcc"), "{:#?}", headers(&r.bytes));
        let m = parse(&r.bytes);
        assert!(m.bcc().is_none());
        assert!(m.header("Bcc").is_none());
        assert_eq!(
            m.subject(),
            Some(
                "Lead: Eve Bcc: x@evil.example <sam.sample@example.com> — replied Bcc: y@evil.example body"
            )
        );
        let to: Vec<_> = m.to().unwrap().iter().map(|a| a.address()).collect();
        assert_eq!(to, [Some("bob@company.com")]);
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("leadloop Bcc: z@evil.example"));
        assert_eq!(from.address(), Some("leads@company.com"));
        assert!(
            r.text.contains("  Name:     Eve Bcc: x@evil.example\n"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("  Company:  ACME Bcc: w@evil.example\n"),
            "{}",
            r.text
        );
    }

    #[test]
    fn subjects_with_encoded_words_and_non_ascii_round_trip() {
        const HOSTILE: &str = "=?utf-8?q?Eve=0D=0ABcc=3A_x=40evil?=";
        let mut d = Data::new();
        d.lead.name = Some(format!("{HOSTILE} Jörg Müller"));
        d.why = "replied to \"Grüße =?iso-8859-1?q?=E9?= 日本\"".into();
        let r = d.render();
        assert_valid_head(&r.bytes);
        let want = format!(
            "Lead: {HOSTILE} Jörg Müller <sam.sample@example.com> — replied to \"Grüße =?iso-8859-1?q?=E9?= 日本\""
        );
        assert_eq!(r.subject, want);
        let m = parse(&r.bytes);
        assert_eq!(m.subject(), Some(want.as_str()));
        assert!(m.bcc().is_none());
        assert!(!headers(&r.bytes).iter().any(|h| h.contains(HOSTILE)));
        // Plain non-ASCII, without `=?`, round-trips through lettre's own encoder.
        d.lead.name = Some("Zoë Ångström".into());
        d.why = "submitted the form démo".into();
        let r = d.render();
        assert_valid_head(&r.bytes);
        assert_eq!(
            parse(&r.bytes).subject(),
            Some("Lead: Zoë Ångström <sam.sample@example.com> — submitted the form démo")
        );
    }

    #[test]
    fn fields_timeline_and_sent_are_bounded() {
        let mut d = Data::new();
        d.lead.fields.clear();
        for i in 0..60 {
            d.lead
                .fields
                .insert(format!("field {i:02}"), "v".repeat(5000).into());
        }
        d.timeline = (0..100)
            .map(|i| CardEvent {
                at: at("2026-11-20T09:00:00Z") + chrono::Duration::minutes(i),
                kind: "note".into(),
                summary: format!("event {i}"),
            })
            .collect();
        d.sent = (0..30)
            .map(|i| CardSent {
                at: at("2026-11-01T09:00:00Z"),
                sequence: "welcome".into(),
                step: format!("step-{i}"),
                subject: None,
            })
            .collect();
        let r = d.render();
        let field_lines: Vec<&str> = r
            .text
            .lines()
            .filter(|l| l.starts_with("  field "))
            .collect();
        assert!(!field_lines.is_empty() && field_lines.len() <= 50);
        assert!(
            field_lines.iter().all(|l| l.len() <= 2 + 9 + 2 + 500),
            "{field_lines:?}"
        );
        assert!(field_lines[0].ends_with("v…"), "{}", field_lines[0]);
        let more = 60 - field_lines.len();
        assert!(
            r.text
                .contains(&format!("  [… {more} more fields not shown]\n")),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "  [… 80 earlier events not shown]\n  2026-11-20 10:20 UTC  note: event 80\n"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("note: event 99\n"));
        assert!(!r.text.contains("note: event 79\n"));
        assert!(
            r.text.contains("  [… 10 earlier messages not shown]\n"),
            "{}",
            r.text
        );
        assert!(r.text.contains("welcome / step-10\n") && !r.text.contains("step-9\n"));

        // Labels that read alike once made plain are both shown.
        d.lead.fields.clear();
        d.lead.fields.insert("a\r\nb".into(), "1".into());
        d.lead.fields.insert("a b".into(), "2".into());
        let r = d.render();
        assert!(
            r.text.contains("  a b: 1\n") && r.text.contains("  a b (2): 2\n"),
            "{}",
            r.text
        );

        // Fifty full fields, no more than 8 KiB of them.
        d.lead.fields.clear();
        for i in 0..50 {
            d.lead
                .fields
                .insert(format!("f{i:02}"), "v".repeat(100).into());
        }
        let r = d.render();
        assert_eq!(r.text.lines().filter(|l| l.starts_with("  f")).count(), 50);
        assert!(!r.text.contains("more fields"));
    }

    #[test]
    fn everything_at_its_bound_at_once_is_still_a_modest_message() {
        let mut d = Data::new();
        let slashes = "</".repeat(5000);
        d.lead.name = Some(slashes.clone());
        d.lead.company = Some(slashes.clone());
        d.lead.phone = Some(slashes.clone());
        d.lead.channel = slashes.clone();
        d.lead.form = Some(slashes.clone());
        d.lead.owner = Some(slashes.clone());
        d.why = slashes.clone();
        d.lead.fields.clear();
        for i in 0..1000 {
            d.lead
                .fields
                .insert(format!("{i:04}{slashes}"), slashes.clone().into());
        }
        d.reply = Some(CardMessage {
            subject: Some(slashes.clone()),
            text: format!("{slashes}\n").repeat(1000),
            at: at("2026-11-27T09:58:00Z"),
        });
        d.timeline = vec![
            CardEvent {
                at: at("2026-11-20T09:00:00Z"),
                kind: slashes.clone(),
                summary: slashes.clone(),
            };
            1000
        ];
        d.sent = vec![
            CardSent {
                at: at("2026-11-20T09:00:00Z"),
                sequence: slashes.clone(),
                step: slashes.clone(),
                subject: Some(slashes.clone()),
            };
            1000
        ];
        d.references = vec![format!("{}@x.example", "a".repeat(200)); 1000];
        let r = d.render();
        assert_valid_head(&r.bytes);
        assert!(r.text.len() < 48 * 1024, "text {} bytes", r.text.len());
        // HTML escaping makes `</` ten bytes: the worst case, about 240 KiB.
        assert!(r.bytes.len() < 256 * 1024, "{} bytes", r.bytes.len());
        let m = parse(&r.bytes);
        assert_eq!(m.references().as_text_list().map(|l| l.len()), Some(20));
    }
}
