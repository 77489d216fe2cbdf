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
            reply_to: Some(e.reply_to),
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
    let reply_to =
        EmailAddress::parse("leads+handoff-sample@example.com").expect("a valid address");
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

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_valid_head, headers};
    use super::*;

    struct Data {
        to: EmailAddress,
        sender: SenderData,
        lead: EmailAddress,
        reply_to: EmailAddress,
    }

    fn data() -> Data {
        Data {
            to: EmailAddress::parse("bob@company.com").unwrap(),
            sender: SenderData {
                name: "team".into(),
                address: EmailAddress::parse("leads@company.com").unwrap(),
                display_name: Some("leadloop".into()),
            },
            lead: EmailAddress::parse("sam.sample@example.com").unwrap(),
            reply_to: EmailAddress::parse("leads+handoff-k3y9@company.com").unwrap(),
        }
    }

    fn explanation<'a>(
        d: &'a Data,
        problem: &'a str,
        subject: Option<&'a str>,
        in_reply_to: Option<&'a str>,
    ) -> Explanation<'a> {
        Explanation {
            to: &d.to,
            sender: &d.sender,
            lead_email: &d.lead,
            problem,
            subject,
            in_reply_to,
            reply_to: &d.reply_to,
            message_id: "leadloop.explain.9f8e@company.com",
            date: DateTime::parse_from_rfc3339("2026-11-27T10:05:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(bytes).unwrap()
    }

    #[test]
    fn the_builtin_explanation_says_what_is_wrong_and_how_to_answer() {
        let d = data();
        let problem = "there is no sequence \"webinar-folowup\"; known: welcome, retention";
        let r = render_explanation(
            &Templates::empty(),
            &explanation(
                &d,
                problem,
                Some("Re: Lead: Sam Sample <sam.sample@example.com>"),
                Some("<answer-1@mail.company.com>"),
            ),
        )
        .unwrap();
        assert_eq!(r.subject, "Re: Lead: Sam Sample <sam.sample@example.com>");
        assert!(r.html.is_none());
        assert!(
            r.text.starts_with(&format!(
                "leadloop could not act on your answer about sam.sample@example.com:\n\n  {problem}\n\nNothing was changed for this lead.\n\nTo answer, reply to this message with your verdict on the first line:\n"
            )),
            "{}",
            r.text
        );
        for want in [
            "  qualified ",
            "  unqualified: REASON ",
            "  customer ",
            "  not now: until DATE ",
            "  not now: 3 months ",
            "  nurture: SEQUENCE ",
            "  owner: ADDRESS ",
            "kept as a comment",
        ] {
            assert!(r.text.contains(want), "missing {want:?} in\n{}", r.text);
        }
        assert_eq!(r.to.as_str(), "bob@company.com");
        assert_valid_head(&r.bytes);
        let h = headers(&r.bytes).join("\n");
        for want in [
            "To: bob@company.com",
            "Reply-To: leads+handoff-k3y9@company.com",
            "In-Reply-To: <answer-1@mail.company.com>",
            "References: <answer-1@mail.company.com>",
            "Message-ID: <leadloop.explain.9f8e@company.com>",
            "Auto-Submitted: auto-generated",
            "X-Leadloop-Origin: leadloop",
            "Content-Type: text/plain; charset=utf-8",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
        assert!(!h.to_ascii_lowercase().contains("list-unsubscribe"), "{h}");
        assert!(!r.text.to_ascii_lowercase().contains("unsubscribe"));
        let m = parse(&r.bytes);
        assert_eq!(
            m.in_reply_to().as_text_list().unwrap_or_default(),
            ["answer-1@mail.company.com"]
        );
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("leads+handoff-k3y9@company.com")
        );
    }

    #[test]
    fn the_subject_is_the_answers_with_one_re() {
        let d = data();
        let t = Templates::empty();
        let subject = |s: Option<&str>| {
            render_explanation(&t, &explanation(&d, "x", s, None))
                .unwrap()
                .subject
        };
        assert_eq!(subject(Some("Lead: Sam")), "Re: Lead: Sam");
        assert_eq!(subject(Some("RE: Lead: Sam")), "RE: Lead: Sam");
        assert_eq!(subject(Some("re:Lead")), "re:Lead");
        assert_eq!(
            subject(None),
            "Re: your answer about sam.sample@example.com"
        );
        assert_eq!(
            subject(Some("  ")),
            "Re: your answer about sam.sample@example.com"
        );
        // No thread without the answer's id, or with one that is not an id.
        for id in [None, Some("not an id\r\nBcc: x@evil.example")] {
            let r = render_explanation(&t, &explanation(&d, "x", None, id)).unwrap();
            let hs = headers(&r.bytes);
            assert!(
                !hs.iter()
                    .any(|h| h.starts_with("In-Reply-To") || h.starts_with("References")),
                "{hs:#?}"
            );
            assert!(!hs.iter().any(|h| h.starts_with("Bcc")), "{hs:#?}");
        }
    }

    #[test]
    fn hostile_subjects_and_problems_stay_text() {
        const HOSTILE: &str = "=?utf-8?q?Eve=0D=0ABcc=3A_x=40evil?=";
        let d = data();
        let subject = format!("Lead: Jörg {HOSTILE}\r\nBcc: y@evil.example");
        let problem =
            format!("the first line, \"{HOSTILE}\r\nBcc: z@evil.example\", is not a verdict");
        let r = render_explanation(
            &Templates::empty(),
            &explanation(&d, &problem, Some(&subject), None),
        )
        .unwrap();
        assert_valid_head(&r.bytes);
        let want = format!("Re: Lead: Jörg {HOSTILE} Bcc: y@evil.example");
        assert_eq!(r.subject, want);
        let m = parse(&r.bytes);
        assert_eq!(m.subject(), Some(want.as_str()));
        assert!(m.bcc().is_none() && m.header("Bcc").is_none());
        assert!(
            r.text.contains(&format!(
                "  the first line, \"{HOSTILE} Bcc: z@evil.example\", is not a verdict\n"
            )),
            "{}",
            r.text
        );
        let long = "x".repeat(100_000);
        let r = render_explanation(
            &Templates::empty(),
            &explanation(&d, &long, Some(&long), None),
        )
        .unwrap();
        assert!(r.bytes.len() < 8 * 1024, "{} bytes", r.bytes.len());
    }

    #[test]
    fn user_templates_override_the_builtin_ones() {
        let d = data();
        let mut t = Templates::new(vec![
            (
                "explain.txt".into(),
                "Sorry {{ to }}: {{ problem }}\n{% for v in verdicts %}{{ v.usage }}|{% endfor %}"
                    .into(),
            ),
            ("explain.html".into(), "<p>not used</p>".into()),
        ])
        .unwrap();
        t.add_subject(EXPLAIN_TEMPLATE, "Could not read: {{ subject }}")
            .unwrap();
        let r = render_explanation(&t, &explanation(&d, "oops", Some("Lead"), None)).unwrap();
        assert_eq!(r.subject, "Could not read: Lead");
        assert!(
            r.text
                .starts_with("Sorry bob@company.com: oops\nqualified|unqualified: REASON|"),
            "{}",
            r.text
        );
        // Plain text only, whatever the folder holds.
        assert!(r.html.is_none());
        assert!(!String::from_utf8_lossy(&r.bytes).contains("not used"));
    }
}
