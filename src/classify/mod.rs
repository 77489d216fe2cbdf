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
mod parse;
mod stages;

use mail_parser::MessageParser;

use crate::domain::EmailAddress;
pub use stages::verdict;
pub use crate::domain::{Bounce, Classification, Person};

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
    /// Sales addresses whose replies to hand-off notifications are feedback.
    pub sales: Vec<EmailAddress>,
    /// Channel attribution rules, first match wins.
    pub channels: Vec<ChannelRule>,
    /// Form profiles from the configuration, tried before the built-in ones.
    pub forms: Vec<FormProfile>,
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

fn classify_raw(raw: &[u8], rules: &Rules) -> Classification {
    let raw = strip_mbox_line(raw);
    let cut = raw.len() > MAX_CLASSIFY_BYTES;
    let raw = if cut {
        let head = raw.get(..MAX_CLASSIFY_BYTES).unwrap_or(raw);
        // End on a line break, so the last header or boundary line is not split.
        let end = head
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(head.len(), |i| i + 1);
        head.get(..end).unwrap_or(head)
    } else {
        raw
    };
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
        text: None,
        sender,
        delivered_to: None,
    };
    decision.record(&mut c);
    c
}

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
    use crate::domain::{LeadStatus, MessageKind, VerdictKind};

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
        stages::verdict(&parse::new_text(text)).map(|v| (v.kind, v.reason))
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
}
