//! Decides what an inbound message is: one [`MessageKind`](crate::domain::MessageKind) per
//! message, with the lead it is about and the evidence for the decision.
//!
//! This part is pure: bytes and [`Rules`] in, a [`Classification`] out. It has no database,
//! network or clock of its own, so every decision can be reproduced with
//! `leadloop classify FILE.eml --json` and tested from fixtures alone.
//!
//! The rules are ordered stages (spam, reports, bounces, auto-replies, bulk mail, forwards,
//! replies, unsubscribes, our own mail, loops, forms, inquiries), each in its own file: a stage
//! either returns a typed decision or lets the message pass to the next, and the decision
//! becomes the [`Classification`] in one place. The helper modules beside them read headers,
//! bodies, bounce reports, forms and dates for the stages.

mod autoreply;
mod bounce;
mod channel;
mod dates;
mod decision;
mod forms;
mod forward;
mod input;
mod learn;
mod parse;
mod reason;
mod spam;
mod stages;
mod verdict;

use mail_parser::MessageParser;

pub use crate::domain::{Bounce, Classification, Person};
use crate::domain::{EmailAddress, MessageKind};
pub use learn::{FormSource, LearnError, LearnedForm, form_source, learn_form};
pub use spam::{Judgement, SpamRules};
pub use verdict::verdict as read_verdict;

/// Everything the classifier needs to know about the team that owns the mailbox.
///
/// Built from the configuration (`[identity]`, `[[channel]]`, `[[form]]`), never read from the
/// environment, so that tests and `leadloop classify` decide exactly as the daemon does.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Our own addresses: the monitored inbox and every sending identity. Never leads.
    pub own_addresses: Vec<EmailAddress>,
    /// Our own domains (`company.com`): mail from them is staff mail, never a lead.
    pub own_domains: Vec<String>,
    /// Sales addresses whose answers to our mail (hand-off notifications) are feedback. Answers
    /// from our own addresses and domains are feedback too: a lead's owner may be outside Sales.
    pub sales: Vec<EmailAddress>,
    /// Channel attribution rules, first match wins.
    pub channels: Vec<ChannelRule>,
    /// Form profiles from the configuration, tried before the built-in ones.
    pub forms: Vec<FormProfile>,
    /// How the verdicts of spam filters in front of the mailbox count (`[spam]`).
    pub spam: SpamRules,
}

/// Attributes a message to a marketing channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelRule {
    /// The channel's name as reports show it (`webinar`, `linkedin`).
    pub name: String,
    /// Recipient addresses that mean this channel (`leads+webinar@example.com`).
    pub recipients: Vec<EmailAddress>,
    /// Plus-address tags that mean this channel (`webinar` in `leads+webinar@…`).
    pub plus_tags: Vec<String>,
    /// `utm_source` values (from form fields or URLs in the message) that mean this channel.
    pub utm_sources: Vec<String>,
    /// Form profile names whose submissions belong to this channel.
    pub forms: Vec<String>,
}

/// How to read one website form's notification emails.
#[derive(Debug, Clone, Default)]
pub struct FormProfile {
    /// Name recorded on the lead (`contact-page`).
    pub name: String,
    /// Sender addresses or domains (`wordpress@example.com`, `example.com`) the form mails from.
    pub from: Vec<String>,
    /// Case-insensitive substrings of the subject that identify the form.
    pub subject_contains: Vec<String>,
    /// Case-insensitive substrings of the body that identify the form.
    pub body_contains: Vec<String>,
    /// Field labels holding the submitter's address, tried in order.
    pub email_fields: Vec<String>,
    /// Field labels holding the submitter's name.
    pub name_fields: Vec<String>,
    /// Field labels holding the submitter's company.
    pub company_fields: Vec<String>,
    /// Field labels holding the submitter's phone number.
    pub phone_fields: Vec<String>,
}

/// Bytes of a forwarded original's text that are kept.
pub const ORIGINAL_TEXT_MAX: usize = 16 * 1024;

/// Bytes of the writer's own text ([`Classification::text`]) that are kept: what a hand-off
/// shows of it (8 KiB), no more, since every batch holds the texts of its messages.
pub const TEXT_MAX: usize = 8 * 1024;

/// Classifies one raw RFC 5322 message.
///
/// Never panics and never fails: input that cannot be understood is `ignored` with the reason.
/// The classifier's own code avoids panicking paths; the unwind guard is a last line of defence
/// against a bug in the parser dependency, so one hostile message can never stall the daemon.
pub fn classify(raw: &[u8], rules: &Rules) -> Classification {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| classify_raw(raw, rules)))
        .unwrap_or_else(|_| Classification::ignored(INTERNAL_ERROR))
}

/// The reason recorded when the unwind guard caught a panic: a bug, never a property of mail.
pub const INTERNAL_ERROR: &str = "internal error while reading the message";

/// Drops an mbox `From ` separator line, which is not a header and would hide the real ones.
/// (`From : x`, with space before the colon, is obsolete header syntax and is kept.)
fn strip_mbox_line(raw: &[u8]) -> &[u8] {
    let Some(rest) = raw.strip_prefix(b"From ") else {
        return raw;
    };
    if rest.trim_ascii_start().starts_with(b":") {
        return raw;
    }
    let end = raw
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    raw.get(end..).unwrap_or_default()
}

/// Bytes of a message the classifier reads at most. Everything that decides the kind sits in
/// the headers and the first parts; cutting a 50 MB message here bounds the parser's time and
/// memory per message (the parser reads a cut message as truncated MIME).
const MAX_CLASSIFY_BYTES: usize = 8 * 1024 * 1024;

/// The part of a message the classifier reads: without an mbox separator line, and cut to
/// [`MAX_CLASSIFY_BYTES`] on a line break; `true` when it was cut.
fn readable(raw: &[u8]) -> (&[u8], bool) {
    let raw = strip_mbox_line(raw);
    if raw.len() <= MAX_CLASSIFY_BYTES {
        return (raw, false);
    }
    let head = raw.get(..MAX_CLASSIFY_BYTES).unwrap_or(raw);
    // End on a line break, so the last header or boundary line is not split.
    let end = head
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(head.len(), |i| i + 1);
    (head.get(..end).unwrap_or(head), true)
}

fn classify_raw(raw: &[u8], rules: &Rules) -> Classification {
    let (raw, cut) = readable(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Classification::ignored("empty message");
    }
    classify_bytes(raw, rules, cut, false)
}

/// Parses and decides; `fixed` says the charset names were already rewritten, so a message is
/// parsed at most twice.
fn classify_bytes(raw: &[u8], rules: &Rules, cut: bool, fixed: bool) -> Classification {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Classification::ignored("unparseable message (no headers)");
    };
    if !fixed && parse::has_legacy_charset(&msg) {
        drop(msg);
        let mut c = classify_bytes(&parse::fix_charsets(raw), rules, cut, true);
        c.evidence.insert(
            0,
            "legacy charset names read as their standard names".into(),
        );
        return c;
    }
    if msg.parts.is_empty() || parse::root(&msg).is_some_and(|r| r.headers.is_empty()) {
        return Classification::ignored("unparseable message (no headers)");
    }
    let message_id = parse::message_ids(&msg, "Message-ID").into_iter().next();
    let mut references = parse::message_ids(&msg, "In-Reply-To");
    for id in parse::message_ids(&msg, "References") {
        if !references.contains(&id) {
            references.push(id);
        }
    }
    let subject = parse::subject(&msg);
    let mut evidence = Vec::new();
    if cut {
        evidence.push(format!(
            "message over {MAX_CLASSIFY_BYTES} bytes: only its first {} bytes were read",
            raw.len()
        ));
    }
    let ctx = Ctx::new(rules);
    let input = input::Input::new(
        &msg,
        &ctx,
        subject.as_deref().unwrap_or_default(),
        &references,
    );
    let decision = stages::decide(&input, &mut evidence);
    let sender = input.from.as_ref().map(|f| f.email.clone());
    // Read here, once, for the decisions that keep it: the new text is computed on first use,
    // so a bounce or a newsletter never pays for it.
    let text = decision
        .keeps_text()
        .then(|| kept_text(input.texts.own_text()))
        .filter(|t| !t.is_empty());
    let delivered_to = input.delivered_to().cloned();
    // Only a message that makes a lead waits for review: a reply or a bounce is about a lead
    // we already have, and a suspicious one is still what it is.
    let review = matches!(decision.kind(), MessageKind::Inquiry | MessageKind::Form)
        .then(|| stages::review(&input))
        .flatten();
    drop(input);
    let mut c = Classification {
        kind: decision.kind(),
        lead: None,
        owner: None,
        fields: Default::default(),
        channel: None,
        form: None,
        bounce: None,
        return_date: None,
        reason: None,
        evidence,
        message_id,
        references,
        date: parse::date(&msg),
        subject,
        original_text: None,
        verdict: None,
        text,
        alias: None,
        sender,
        delivered_to,
        review,
    };
    decision.record(&mut c);
    c
}

/// What is kept of a writer's text: at most [`TEXT_MAX`] bytes, and a note when more was cut,
/// so whoever reads it knows the message went on.
fn kept_text(text: &str) -> String {
    let kept = parse::clip(text, TEXT_MAX.saturating_sub(CUT_NOTE.len())).trim_end();
    if kept.len() < text.trim_end().len() {
        format!("{kept}{CUT_NOTE}")
    } else {
        kept.to_owned()
    }
}

/// Ends a text [`kept_text`] cut.
const CUT_NOTE: &str = "\n[… more not shown]";

/// The rules, with the derived sets every decision needs.
struct Ctx<'r> {
    rules: &'r Rules,
    /// Domains our Message-IDs use: own domains and the domains of own addresses.
    id_domains: Vec<String>,
}

impl<'r> Ctx<'r> {
    fn new(rules: &'r Rules) -> Self {
        let mut id_domains: Vec<String> = rules
            .own_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        id_domains.extend(rules.own_addresses.iter().map(|a| a.domain().to_owned()));
        Ctx { rules, id_domains }
    }

    /// Our own addresses (any plus tag) and anything at our own domains.
    fn is_own(&self, a: &EmailAddress) -> bool {
        self.rules.own_addresses.iter().any(|o| o.same_mailbox(a))
            || self
                .rules
                .own_domains
                .iter()
                .any(|d| parse::domain_matches(a.domain(), d))
    }

    fn is_sales(&self, a: &EmailAddress) -> bool {
        self.rules.sales.iter().any(|s| s.same_mailbox(a))
    }

    /// A Message-ID leadloop generated: `leadloop.…@our-domain`.
    fn is_our_message_id(&self, id: &str) -> bool {
        let Some((local, domain)) = id.rsplit_once('@') else {
            return false;
        };
        local
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("leadloop."))
            && self
                .id_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain.trim_end_matches('.')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LeadStatus, MessageKind, VerdictKind, VerdictTarget};

    fn rules() -> Rules {
        Rules {
            own_addresses: vec![EmailAddress::parse("leads@company.com").unwrap()],
            own_domains: vec!["company.com".into()],
            ..Rules::default()
        }
    }

    #[test]
    fn our_message_ids() {
        let r = rules();
        let ctx = Ctx::new(&r);
        assert!(ctx.is_our_message_id("leadloop.s1.abc@company.com"));
        assert!(ctx.is_our_message_id("LeadLoop.x@COMPANY.com"));
        assert!(!ctx.is_our_message_id("leadloop.s1@other.example"));
        assert!(!ctx.is_our_message_id("other.s1@company.com"));
        assert!(!ctx.is_our_message_id("leadloop"));
        assert!(!ctx.is_our_message_id("ä@company.com"));
    }

    #[test]
    fn mbox_separator_is_dropped_but_headers_are_kept() {
        assert_eq!(
            strip_mbox_line(b"From a@b Mon 10:00\nFrom: x\n"),
            b"From: x\n"
        );
        assert_eq!(strip_mbox_line(b"From : x\n"), b"From : x\n");
        assert_eq!(strip_mbox_line(b"Subject: x\n"), b"Subject: x\n");
    }

    #[test]
    fn whole_new_text_reads_the_same_fields_as_the_body() {
        for body in [
            "\n\n  Name: Jane\nCompany:\n\n  Acme  \n\nPhone:\n\n",
            "Hi\nTel:\n",
            "  \nFirma: X\n--- Email ---\n\nj@x.com\n\n\n",
            "Email:\n\n\nj@x.com\n  \t\n",
        ] {
            let (text, whole) = parse::new_text_whole(body);
            assert!(whole, "{body:?}");
            assert_eq!(
                forms::extract_fields(&text),
                forms::extract_fields(body),
                "{body:?}"
            );
        }
        assert!(!parse::new_text_whole("Hi\n> quoted").1);
        assert!(!parse::new_text_whole("Hi\nOn Mon, Bob wrote:\nx").1);
        assert!(!parse::new_text_whole(&"x\n".repeat(2001)).1);
        assert!(parse::new_text_whole(&"x\n".repeat(2000)).1);
    }

    fn verdict(text: &str) -> Option<(VerdictKind, Option<String>)> {
        let today = chrono::NaiveDate::from_ymd_opt(2027, 4, 2).unwrap();
        stages::verdict(&parse::new_text(text), today).map(|v| (v.kind, v.reason))
    }

    #[test]
    fn verdicts() {
        use VerdictKind::*;
        assert_eq!(
            verdict("Unqualified: no budget\n\nOn Mon wrote:\n> x"),
            Some((Unqualified, Some("no budget".into())))
        );
        assert_eq!(
            verdict("qualified - wants a demo."),
            Some((Qualified, Some("wants a demo".into())))
        );
        assert_eq!(verdict("Customer"), Some((Customer, None)));
        assert_eq!(
            verdict("Not qualified, too small"),
            Some((Unqualified, Some("too small".into())))
        );
        assert_eq!(verdict("**DISQUALIFIED**"), Some((Unqualified, None)));
        // The pattern folds case as Unicode does; the verdict is still one of the three.
        assert_eq!(verdict("cuſtomer"), Some((Customer, None)));
        assert_eq!(verdict("> qualified\nI'll call them"), None);
        assert_eq!(verdict("They seem qualified to me"), None);
    }

    fn sales_rules() -> Rules {
        Rules {
            sales: vec![EmailAddress::parse("sales@company.com").unwrap()],
            ..rules()
        }
    }

    const ANSWER_TO_US: &str = "In-Reply-To: <leadloop.s1.abc@company.com>\r\nTo: leads@company.com\r\nSubject: Re: New lead: Jane Doe\r\nMessage-ID: <answer-1@example.net>\r\n";

    #[test]
    fn sales_answer_carries_a_typed_verdict_and_the_same_fields() {
        let raw = format!(
            "From: Sam <sales@company.com>\r\n{ANSWER_TO_US}\r\nNot qualified, too small.\r\n\r\nOn Mon, leads wrote:\r\n> Jane Doe asked for a demo\r\n"
        );
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Feedback);
        let v = c.verdict.as_ref().expect("typed verdict");
        assert_eq!(v.kind, VerdictKind::Unqualified);
        assert_eq!(v.reason.as_deref(), Some("too small"));
        assert_eq!(v.status(), Some(LeadStatus::Unqualified));
        assert_eq!(
            c.fields.get("verdict").map(String::as_str),
            Some(VerdictKind::Unqualified.as_str())
        );
        assert_eq!(
            c.fields.get("feedback_reason").map(String::as_str),
            Some("too small")
        );
        assert_eq!(
            c.evidence,
            [
                "references our Message-ID leadloop.s1.abc@company.com",
                "from Sales (sales@company.com)",
                "verdict unqualified",
            ]
        );
        assert_eq!(c.reason, None);

        let raw =
            format!("From: sales@company.com\r\n{ANSWER_TO_US}\r\nI'll call her tomorrow.\r\n");
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Feedback);
        assert_eq!(c.verdict, None);
        assert!(c.fields.is_empty());
        assert_eq!(c.reason.as_deref(), Some("no verdict found"));
    }

    #[test]
    fn an_automatic_answer_to_our_mail_is_no_reply() {
        // The auto-reply stage comes before the bulk and reply stages: a vacation notice
        // marked as bulk, in answer to our mail, neither engages the lead nor is dropped.
        let raw = format!(
            "From: Jane <jane@example.net>\r\n{ANSWER_TO_US}Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\n\r\nI am out of the office.\r\n"
        );
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Autoreply, "{:?}", c.evidence);
        assert_eq!(c.evidence[0], "header Auto-Submitted: auto-replied");
        assert_eq!(
            c.lead.map(|p| p.email.to_string()).as_deref(),
            Some("jane@example.net")
        );

        // Without the header it is the lead's reply.
        let raw = raw.replace("Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\n", "");
        let raw = raw.replace("I am out of the office.", "Yes, let's talk on Friday.");
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Reply, "{:?}", c.evidence);
    }

    fn day(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn field<'c>(c: &'c Classification, key: &str) -> Option<&'c str> {
        c.fields.get(key).map(String::as_str)
    }

    #[test]
    fn a_colleagues_answer_is_feedback_with_an_instruction_and_a_comment() {
        // Carol owns the lead but is not in the Sales list. Written late on 2 April in her own
        // time zone (already 3 April in UTC): the period counts from her day.
        let raw = format!(
            "From: Carol <carol@company.com>\r\nDate: Fri, 02 Apr 2027 23:30:00 -0700\r\nDelivered-To: leads+handoff-ab12@company.com\r\n{ANSWER_TO_US}\r\nNot now: 2 weeks\r\n\r\nThey asked us to call after the trade fair.\r\n\r\n-- \r\nCarol\r\nAccount Manager\r\n\r\nOn Thu, leads wrote:\r\n> New lead: Jane Doe\r\n"
        );
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Feedback, "{:?}", c.evidence);
        let v = c.verdict.as_ref().expect("typed verdict");
        assert_eq!(v.kind, VerdictKind::NotNow);
        assert_eq!(v.target, Some(VerdictTarget::Until(day(2027, 4, 16))));
        assert_eq!(v.status(), None);
        assert_eq!(field(&c, "verdict"), Some("not_now"));
        assert_eq!(field(&c, "feedback_reason"), Some("2 weeks"));
        assert_eq!(field(&c, "verdict_until"), Some("2027-04-16"));
        assert_eq!(
            field(&c, "feedback_comment"),
            Some("They asked us to call after the trade fair.")
        );
        assert_eq!(
            c.text.as_deref(),
            Some("Not now: 2 weeks\n\nThey asked us to call after the trade fair.")
        );
        assert_eq!(
            c.evidence,
            [
                "references our Message-ID leadloop.s1.abc@company.com",
                "from our own address (carol@company.com)",
                "verdict not_now until 2027-04-16",
            ]
        );
        assert_eq!(
            c.delivered_to.as_ref().map(EmailAddress::as_str),
            Some("leads+handoff-ab12@company.com")
        );

        // Without a verdict it is still feedback, with what she wrote.
        let raw =
            format!("From: Carol <carol@company.com>\r\n{ANSWER_TO_US}\r\nLooping in sales.\r\n");
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Feedback);
        assert_eq!(c.verdict, None);
        assert_eq!(c.reason.as_deref(), Some("no verdict found"));
        assert_eq!(c.text.as_deref(), Some("Looping in sales."));
    }

    #[test]
    fn an_answer_to_a_handoff_address_is_feedback() {
        // Hand-off notifications carry `Reply-To: inbox+handoff-TOKEN@…`; the answer may not
        // keep the references.
        let raw = "From: sales@company.com\r\nTo: leads+Handoff-xy9@company.com\r\nSubject: Re: New lead\r\n\r\n**Nurture**: webinar-followup\r\n";
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Feedback, "{:?}", c.evidence);
        assert_eq!(
            c.evidence[0],
            "sent to reply address leads+handoff-xy9@company.com"
        );
        let v = c.verdict.as_ref().expect("verdict");
        assert_eq!(
            v.target,
            Some(VerdictTarget::Sequence(crate::domain::SequenceName::new(
                "webinar-followup"
            )))
        );
        assert_eq!(field(&c, "verdict_sequence"), Some("webinar-followup"));
        assert_eq!(field(&c, "feedback_reason"), Some("webinar-followup"));

        let raw = raw.replace(
            "**Nurture**: webinar-followup",
            "reassign to Bob <bob@company.com>",
        );
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(field(&c, "verdict"), Some("owner"));
        assert_eq!(field(&c, "verdict_owner"), Some("bob@company.com"));
        assert_eq!(field(&c, "feedback_reason"), Some("bob@company.com"));
        assert_eq!(
            c.evidence.last().map(String::as_str),
            Some("verdict owner to bob@company.com")
        );

        // A plus tag that merely contains the word is no marker.
        let raw = raw.replace("leads+Handoff-xy9", "leads+nohandoff-xy9");
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_ne!(c.kind, MessageKind::Feedback, "{:?}", c.evidence);
    }

    #[test]
    fn campaign_signals_never_hide_an_answer_or_a_person() {
        // A lead's answer sent through their company's relay carries provider headers; it
        // answers our mail, so it stays a reply.
        let raw = format!(
            "From: Jane <jane@example.net>\r\n{ANSWER_TO_US}Feedback-ID: 1:relay:ses\r\nX-SES-Outgoing: 1\r\n\r\nTuesday works.\r\n"
        );
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Reply, "{:?}", c.evidence);
        // A person's link to an unsubscribe page, without a tracking pixel, is no newsletter.
        let raw = "From: Jane <jane@example.net>\r\nTo: leads@company.com\r\nSubject: Demo\r\nContent-Type: text/html\r\n\r\n<p>We need a demo. Our old vendor had links like <a href=\"https://x.example/unsubscribe\">this one</a> that never worked.</p>\r\n";
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Inquiry, "{:?}", c.evidence);
        // The same with a 1x1 image is a tracked newsletter.
        let raw = raw.replace("</p>", "</p><img src=\"t.gif\" width=\"1\" height=\"1\">");
        let c = classify(raw.as_bytes(), &sales_rules());
        assert_eq!(c.kind, MessageKind::Ignored, "{:?}", c.evidence);
        assert_eq!(
            c.reason.as_deref(),
            Some("bulk mail: unsubscribe link and tracking pixel")
        );
    }

    #[test]
    fn single_part_reports_are_read_by_their_type_and_subject() {
        let reason = |raw: &str| classify(raw.as_bytes(), &rules()).reason;
        // A DMARC aggregate report whose whole body is the gzipped XML.
        let dmarc = "From: dmarc@receiver.example\r\nTo: leads@company.com\r\nSubject: Report Domain: company.com Submitter: receiver.example Report-ID: <77>\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA8vIBAA=\r\n";
        assert_eq!(reason(dmarc).as_deref(), Some("DMARC aggregate report"));
        // The subject alone, without an archive, is a person quoting it.
        let quoted = dmarc.replace("Content-Type: application/gzip", "Content-Type: text/plain");
        assert_ne!(reason(&quoted).as_deref(), Some("DMARC aggregate report"));
        // A TLS report as plain JSON (RFC 8460 allows application/tlsrpt+json).
        let tls = "From: tls@receiver.example\r\nTo: leads@company.com\r\nSubject: Report Domain: company.com Submitter: receiver.example Report-ID: <78>\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nTLS report\r\n--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--b--\r\n";
        assert_eq!(
            reason(tls).as_deref(),
            Some("TLS report (RFC 8460 TLS-RPT)")
        );
    }

    #[test]
    fn a_copy_of_our_own_mail_is_never_feedback() {
        // Step 2 of a sequence threads below step 1: it references our Message-ID and is sent
        // from one of our addresses, and a copy lands in the inbox (Bcc, a sent-folder rule).
        let step = "From: Company <leads@company.com>\r\nTo: jane@example.net\r\nDelivered-To: leads@company.com\r\nSubject: Re: Your demo\r\nDate: Fri, 02 Apr 2027 09:15:00 +0200\r\nX-Leadloop-Origin: leadloop\r\nMessage-ID: <leadloop.s2.def@company.com>\r\nIn-Reply-To: <leadloop.s1.abc@company.com>\r\n\r\nqualified people love our demo\r\n";
        for (what, raw, reason) in [
            ("as sent", step.to_owned(), "sent by us (X-Leadloop-Origin)"),
            (
                "headers stripped but our Message-ID",
                step.replace("X-Leadloop-Origin: leadloop\r\n", ""),
                "sent by us (leads@company.com)",
            ),
            (
                "sent as Sales",
                step.replace(
                    "From: Company <leads@company.com>",
                    "From: sales@company.com",
                ),
                "sent by us (X-Leadloop-Origin)",
            ),
        ] {
            let c = classify(raw.as_bytes(), &sales_rules());
            assert_eq!(c.kind, MessageKind::Ignored, "{what}: {:?}", c.evidence);
            assert_eq!(c.reason.as_deref(), Some(reason), "{what}");
            assert_eq!(c.verdict, None, "{what}");
            assert_eq!(c.text, None, "{what}");
            assert_eq!(
                c.delivered_to.as_ref().map(EmailAddress::as_str),
                Some("leads@company.com"),
                "{what}"
            );
        }
    }

    #[test]
    fn the_writers_own_text_is_kept_for_what_people_wrote() {
        let rules = sales_rules();
        // A lead's reply: the new text, without the quote and the signature.
        let raw = format!(
            "From: Jane <jane@example.net>\r\nCc: Sam <sales@company.com>, leads+reply-ab@company.com\r\n{ANSWER_TO_US}\r\nTuesday works.\r\n-- \r\nJane Doe, Acme\r\n\r\nOn Mon, leads wrote:\r\n> Would you like a demo?\r\n"
        );
        let c = classify(raw.as_bytes(), &rules);
        assert_eq!(c.kind, MessageKind::Reply);
        assert_eq!(c.text.as_deref(), Some("Tuesday works."));
        // The first own address among the delivery headers, To and Cc.
        assert_eq!(
            c.delivered_to.as_ref().map(EmailAddress::as_str),
            Some("leads@company.com")
        );

        let raw =
            format!("From: Jane <jane@example.net>\r\n{ANSWER_TO_US}\r\nPlease remove me.\r\n");
        let c = classify(raw.as_bytes(), &rules);
        assert_eq!(c.kind, MessageKind::Unsubscribe);
        assert_eq!(c.text.as_deref(), Some("Please remove me."));

        // An inquiry; its text is clipped on a character boundary.
        let long = "ä".repeat(TEXT_MAX);
        let raw = format!(
            "From: Jane <jane@example.net>\r\nTo: Leads <leads+webinar@company.com>\r\nSubject: Demo\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, we need 20 seats.\r\n{long}\r\n"
        );
        let c = classify(raw.as_bytes(), &rules);
        assert_eq!(c.kind, MessageKind::Inquiry);
        let text = c.text.as_deref().expect("text");
        assert!(
            text.starts_with("Hello, we need 20 seats.\näää"),
            "{text:.40}"
        );
        assert!(text.len() <= TEXT_MAX && text.len() >= TEXT_MAX - 1 - CUT_NOTE.len());
        assert!(text.ends_with(CUT_NOTE), "{text:.40}");
        assert_eq!(
            c.delivered_to.as_ref().map(EmailAddress::as_str),
            Some("leads+webinar@company.com")
        );

        // Not for what is no one's own writing, nor for a forward (whose original's text is
        // kept as `original_text`); no own recipient, no `delivered_to`.
        let raw = "From: news@shop.example\r\nTo: someone@example.org\r\nList-Unsubscribe: <mailto:u@shop.example>\r\nSubject: Deals\r\n\r\nBuy now\r\n";
        let c = classify(raw.as_bytes(), &rules);
        assert_eq!(c.kind, MessageKind::Ignored);
        assert_eq!((c.text, c.delivered_to), (None, None));
        let raw = "From: Carol <carol@company.com>\r\nTo: leads@company.com\r\nSubject: Fwd: Quote\r\n\r\nCan someone take this?\r\n\r\n---------- Forwarded message ---------\r\nFrom: Jane Doe <jane@example.net>\r\nDate: Mon, 1 Mar 2027 at 10:00\r\nSubject: Quote\r\nTo: <carol@company.com>\r\n\r\nPlease send a quote.\r\n";
        let c = classify(raw.as_bytes(), &rules);
        assert_eq!(c.kind, MessageKind::Forward, "{:?}", c.evidence);
        assert_eq!(c.text, None);
        assert!(c.original_text.is_some());
    }
}
