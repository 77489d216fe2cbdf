//! Decides what an inbound message is: one [`MessageKind`] per message, with the lead it is
//! about and the evidence for the decision.
//!
//! This part is pure: bytes and [`Rules`] in, a [`Classification`] out. It has no database,
//! network or clock of its own, so every decision can be reproduced with
//! `leadloop classify FILE.eml --json` and tested from fixtures alone.

mod autoreply;
mod bounce;
mod channel;
mod dates;
mod forms;
mod forward;
mod parse;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::LazyLock;

use mail_parser::{Message, MessageParser};
use regex::Regex;

pub use crate::domain::{Bounce, Classification, Person};
use crate::domain::{EmailAddress, MessageKind};

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
    let ctx = Ctx::new(rules);
    // Starts as `ignored` without a reason; `decide` always sets the kind and the reason.
    let mut c = Classification::ignored("");
    c.evidence.clear();
    c.reason = None;
    c.message_id = parse::message_ids(&msg, "Message-ID").into_iter().next();
    c.references = parse::message_ids(&msg, "In-Reply-To");
    for id in parse::message_ids(&msg, "References") {
        if !c.references.contains(&id) {
            c.references.push(id);
        }
    }
    c.subject = parse::subject(&msg);
    c.date = parse::date(&msg);
    if cut {
        c.evidence.push(format!(
            "message over {MAX_CLASSIFY_BYTES} bytes: only its first {} bytes were read",
            raw.len()
        ));
    }
    decide(&msg, &ctx, &mut c);
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

fn person(n: &parse::Named) -> Person {
    Person {
        email: n.email.clone(),
        name: n.name.clone(),
        company: None,
        phone: None,
    }
}

fn ignore(c: &mut Classification, reason: impl Into<String>) {
    let reason = reason.into();
    c.kind = MessageKind::Ignored;
    c.evidence.push(format!("ignored: {reason}"));
    c.reason = Some(reason);
}

/// Recipient addresses in the order that best reveals which of our addresses was used.
fn recipients(msg: &Message<'_>) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    for h in ["Delivered-To", "X-Original-To", "To", "Cc"] {
        for n in parse::addresses(msg, h) {
            if !out.contains(&n.email) {
                out.push(n.email);
            }
        }
    }
    out
}

static UNSUB_INTENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bunsubscribe\b|\bremove me\b|\bremove (?:my (?:e-?mail|address)|us)\b|\bstop (?:e-?mailing|sending|contacting)\b|\btake me off\b|\bopt(?:-| )?out\b|\bno (?:more|further) e-?mails\b|\babmelden\b|\babbestellen\b|\bkeine (?:weiteren )?(?:e-?mails|nachrichten|werbung)\b|\baus (?:ihrem|dem) verteiler\b|d[ée]sinscri|d[ée]sabonner|ne plus recevoir|darse de baja|\bdarme de baja\b|\bdar de baja\b|no (?:quiero )?recibir m[áa]s|cancella(?:re)? (?:la mia )?iscrizione|disiscriv|non (?:voglio )?ricevere pi[ùu]|\bafmelden\b|\buitschrijven\b|geen (?:e-?mails|berichten) meer|descadastr|cancelar (?:a )?inscri[çc][ãa]o|n[ãa]o (?:quero )?receber mais",
    )
    .expect("static regex")
});
static UNSUB_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:(?:re|aw|sv|rif|antw)\s*:\s*)?(?:unsubscribe|remove me|opt[- ]?out|abmelden|abbestellen|d[ée]sinscription|d[ée]sabonner|darse de baja|dar de baja|baja\b|disiscrizione|cancellami|afmelden|uitschrijven|descadastrar|cancelar inscri)",
    )
    .expect("static regex")
});
static VERDICT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*\**(qualified|unqualified|not qualified|disqualified|customer)\b\**\s*(?:[:\-–—,.]\s*(.*))?$")
        .expect("static regex")
});

/// Text derived from the body that several rules need, computed at most once per message.
///
/// `new_text` and the body's `Label: value` fields used to be recomputed by every rule that
/// asked (up to three form checks and three new-text readers per message); each is a pure
/// function of the body, so computing it once changes no decision.
struct Texts<'b> {
    body: &'b str,
    /// The new text, and whether it holds every line of the body.
    new_text: OnceCell<(String, bool)>,
    fields: OnceCell<Vec<(String, String)>>,
}

impl<'b> Texts<'b> {
    fn new(body: &'b str) -> Self {
        Texts {
            body,
            new_text: OnceCell::new(),
            fields: OnceCell::new(),
        }
    }

    /// [`parse::new_text_whole`] of the body.
    fn new_text(&self) -> &str {
        &self.new_text_whole().0
    }

    fn new_text_whole(&self) -> &(String, bool) {
        self.new_text
            .get_or_init(|| parse::new_text_whole(self.body))
    }

    /// [`forms::extract_fields`] of the body.
    fn fields(&self) -> &[(String, String)] {
        self.fields.get_or_init(|| forms::extract_fields(self.body))
    }

    /// [`forms::extract_fields`] of the new text. When the new text kept every line of the
    /// body (an inquiry without quoted history, the usual case), its lines are the body's
    /// trimmed lines without leading and trailing blank ones, which `extract_fields` (which
    /// trims lines, finds no field on a blank line and finds no value on a trailing one)
    /// reads alike; the body's fields, often already extracted by the form check, are reused.
    fn new_text_fields(&self) -> Cow<'_, [(String, String)]> {
        let (text, whole) = self.new_text_whole();
        if *whole {
            Cow::Borrowed(self.fields())
        } else {
            Cow::Owned(forms::extract_fields(text))
        }
    }
}

/// A short new text asking to stop: the writer's own words, not the quoted history.
/// `text` is the body's [`parse::new_text_whole`].
fn unsubscribe_intent(text: &str) -> bool {
    !text.is_empty() && text.chars().count() < 300 && UNSUB_INTENT.is_match(text)
}

/// Sales' verdict from the first lines they typed; `text` is the body's [`parse::new_text_whole`].
fn verdict(text: &str) -> Option<(String, Option<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .find_map(|l| {
            let c = VERDICT.captures(parse::clip(l, 1000))?;
            let v = c.get(1)?.as_str().to_ascii_lowercase();
            let v = match v.as_str() {
                "not qualified" | "disqualified" => "unqualified".to_owned(),
                _ => v,
            };
            let reason = c
                .get(2)
                .map(|m| m.as_str().trim().trim_end_matches('.').trim().to_owned())
                .filter(|r| !r.is_empty());
            Some((v, reason))
        })
}

fn profile_matches(
    p: &FormProfile,
    from: Option<&EmailAddress>,
    subject: &str,
    body: &str,
) -> Option<String> {
    if let Some(f) = from {
        for entry in &p.from {
            let hit = if entry.contains('@') {
                EmailAddress::parse(entry).is_ok_and(|e| e == *f)
            } else {
                parse::domain_matches(f.domain(), entry)
            };
            if hit {
                return Some(format!("form profile '{}' (from {entry})", p.name));
            }
        }
    }
    let subject_l = subject.to_lowercase();
    if let Some(s) = p
        .subject_contains
        .iter()
        .find(|s| !s.trim().is_empty() && subject_l.contains(&s.to_lowercase()))
    {
        return Some(format!(
            "form profile '{}' (subject contains \"{s}\")",
            p.name
        ));
    }
    let body_l = parse::clip(body, parse::MAX_TEXT).to_lowercase();
    p.body_contains
        .iter()
        .find(|s| !s.trim().is_empty() && body_l.contains(&s.to_lowercase()))
        .map(|s| format!("form profile '{}' (body contains \"{s}\")", p.name))
}

/// A recognised form notification.
struct FormHit<'r> {
    profile: Option<&'r FormProfile>,
    name: String,
    fields: Vec<(String, String)>,
    evidence: Vec<String>,
    /// A hosted service recognised by its sending domain: its layout may name the
    /// submitter's address only as an answer, so any address in the body may be taken.
    hosted: bool,
}

fn detect_form<'r>(
    msg: &Message<'_>,
    ctx: &Ctx<'r>,
    from: Option<&parse::Named>,
    subject: &str,
    texts: &Texts<'_>,
) -> Option<FormHit<'r>> {
    let from_addr = from.map(|f| &f.email);
    if let Some((p, ev)) = ctx
        .rules
        .forms
        .iter()
        .find_map(|p| profile_matches(p, from_addr, subject, texts.body).map(|e| (p, e)))
    {
        return Some(FormHit {
            profile: Some(p),
            name: p.name.clone(),
            fields: texts.fields().to_vec(),
            evidence: vec![ev],
            hosted: false,
        });
    }
    let fields = texts.fields();
    let reply_to = parse::first_address(msg, "Reply-To");
    let system = from_addr.is_some_and(forms::is_system_sender);
    let differs = match (&reply_to, from_addr) {
        (Some(r), Some(f)) => r.email != *f,
        (Some(_), None) => true,
        _ => false,
    };
    let has_email = || {
        forms::email_field(fields, None).is_some()
            || forms::email_field_loose(fields, &|_| true).is_some()
    };
    // A notification has fields, a Reply-To or a machine sender; a person's letter has none of
    // them and skips the template search.
    let candidate = !fields.is_empty() || reply_to.is_some() || system;
    let builtin = if candidate || from_addr.is_some_and(forms::hosted_service) {
        forms::builtin(from_addr, subject, texts.body, &|| parse::html_parts(msg))
    } else {
        None
    };
    if let Some(b) = builtin {
        // A template sentence or a subject can be quoted by a person; ask for what a form
        // notification has besides: an email field, or a machine sender with a Reply-To.
        let ok = b.by_sender
            || (b.strong && (has_email() || (differs && (system || reply_to.is_some()))))
            || (!b.strong && fields.len() >= 2 && has_email());
        if ok {
            return Some(FormHit {
                profile: None,
                name: b.profile.name.to_owned(),
                fields: fields.to_vec(),
                evidence: vec![b.evidence],
                hosted: b.by_sender,
            });
        }
    }
    // Fields with an email field; or, from a machine, fields and a Reply-To (the submitter's
    // address often travels only there).
    let with_email = fields.len() >= 2 && forms::email_field(fields, None).is_some();
    let by_reply_to = !fields.is_empty() && system && differs && reply_to.is_some();
    if !(with_email || by_reply_to) || (!system && !differs) {
        return None;
    }
    let mut evidence = vec![if with_email {
        format!(
            "{} Label: value fields including an email field",
            fields.len()
        )
    } else {
        format!("{} Label: value fields and a Reply-To", fields.len())
    }];
    if let Some(f) = from_addr.filter(|f| forms::is_system_sender(f)) {
        evidence.push(format!("system sender {f}"));
    } else {
        evidence.push("Reply-To differs from From".into());
    }
    let name = from_addr
        .and_then(|f| {
            forms::service_name(f)
                .map(str::to_owned)
                .or_else(|| (f.local_part() == "wordpress").then(|| "wordpress".to_owned()))
        })
        .unwrap_or_else(|| "generic".to_owned());
    Some(FormHit {
        profile: None,
        name,
        fields: fields.to_vec(),
        evidence,
        hosted: false,
    })
}

/// Fills `c` as a form: the submitter, fields, channel.
fn apply_form(
    msg: &Message<'_>,
    ctx: &Ctx<'_>,
    from: Option<&parse::Named>,
    body: &str,
    hit: FormHit<'_>,
    recipients: &[EmailAddress],
    c: &mut Classification,
) {
    c.evidence.extend(hit.evidence);
    let from_addr = from.map(|f| &f.email);
    // The submitter may be the sender itself (a site that mails "from" the visitor); a field
    // or Reply-To naming the sender says so. Only the last-resort scan of the body leaves the
    // sender out, since there it is as likely the site's own address.
    let acceptable = |a: &EmailAddress| {
        !ctx.is_own(a) && !forms::is_system_sender(a) && !forms::hosted_service(a)
    };
    let not_sender = |a: &EmailAddress| acceptable(a) && Some(a) != from_addr;
    let reply_to = parse::first_address(msg, "Reply-To").filter(|r| acceptable(&r.email));
    let configured = hit
        .profile
        .filter(|p| !p.email_fields.is_empty())
        .and_then(|p| forms::email_field(&hit.fields, Some(&p.email_fields)))
        .filter(|a| acceptable(a));
    let field = forms::email_field(&hit.fields, None)
        .filter(|a| acceptable(a))
        .map(|a| (a, None))
        .or_else(|| forms::email_field_loose(&hit.fields, &acceptable));
    // Reply-To is the submitter when the form says so or says nothing; a Reply-To that
    // differs from the form's own email field is the site's (an owner's personal address).
    let (email, how, alt_name) = match (configured, reply_to, field) {
        (Some(a), _, _) => (Some(a), "configured email field", None),
        (None, Some(r), Some((f, n))) if r.email != f => (
            Some(f),
            "submitter from the email field (Reply-To is someone else)",
            n,
        ),
        (None, Some(r), _) => (Some(r.email), "Reply-To is the submitter", r.name),
        (None, None, Some((f, n))) => (Some(f), "submitter from the email field", n),
        (None, None, None) => match hit
            .hosted
            .then(|| forms::any_email(body, &not_sender))
            .flatten()
        {
            Some(a) => (
                Some(a),
                "submitter from the only address in the answers",
                None,
            ),
            None => (None, "", None),
        },
    };
    let Some(email) = email else {
        ignore(c, "form notification without a submitter address");
        return;
    };
    c.evidence.push(how.to_owned());
    let empty: &[String] = &[];
    let labels = forms::Labels {
        name: hit.profile.map_or(empty, |p| &p.name_fields),
        company: hit.profile.map_or(empty, |p| &p.company_fields),
        phone: hit.profile.map_or(empty, |p| &p.phone_fields),
    };
    let sub = forms::submitter(&hit.fields, &labels);
    let mut fields = hit.fields;
    forms::add_origin(&mut fields, body, &parse::html_parts(msg));
    let utm = forms::utm_source(&fields, body)
        .or_else(|| forms::referrer_source(&fields).map(str::to_owned));
    let site = fields
        .iter()
        .find(|(l, _)| l == "page_url")
        .and_then(|(_, v)| forms::url_host(v))
        .or_else(|| {
            from_addr
                .filter(|f| !forms::hosted_service(f) && forms::is_system_sender(f))
                .map(|f| f.domain().to_owned())
        });
    if let Some(s) = site {
        fields.push(("form_site".into(), s));
    }
    c.kind = MessageKind::Form;
    c.lead = Some(Person {
        email,
        name: sub.name.or(alt_name),
        company: sub.company,
        phone: sub.phone,
    });
    let (channel, ev) = channel::attribute(
        ctx.rules,
        &channel::Signals {
            recipients,
            utm_source: utm.as_deref(),
            form: Some(&hit.name),
        },
    );
    c.channel = Some(channel);
    c.evidence.push(ev);
    c.form = Some(hit.name);
    c.fields = forms::to_map(&fields);
}

static FWD_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:fwd?|wg|tr|rv|enc)\s*:\s*)+").expect("static regex")
});

/// The decision order of the classifier: first match wins.
///
/// The order carries meaning: bounces and auto-replies come before bulk mail because mail
/// servers mark them with the same `Precedence`/`Auto-Submitted` headers newsletters use;
/// forwards come before replies and our own mail because a colleague's forward is sent from
/// our domain; forms come after our own mail except for our own website's form mailer, which
/// sends from our domain on the submitter's behalf.
fn decide(msg: &Message<'_>, ctx: &Ctx<'_>, c: &mut Classification) {
    let subject = c.subject.clone().unwrap_or_default();
    let from = parse::first_address(msg, "From");
    let from_addr = from.as_ref().map(|f| &f.email);
    let body = parse::body_text(msg);
    let texts = Texts::new(&body);

    // 1. Spam, as the filters in front of the mailbox judged it.
    if let Some(v) = parse::header(msg, "X-Spam-Flag")
        && v.trim().eq_ignore_ascii_case("yes")
    {
        c.evidence.push("header X-Spam-Flag: YES".into());
        return ignore(c, "spam (X-Spam-Flag: YES)");
    }
    if let Some(v) = parse::header(msg, "X-Spam-Status")
        && v.trim()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("yes"))
    {
        c.evidence.push("header X-Spam-Status: Yes".into());
        return ignore(c, "spam (X-Spam-Status: Yes)");
    }
    if let Some(v) = parse::header(msg, "X-Spam")
        && v.trim()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("yes"))
    {
        c.evidence.push("header X-Spam: Yes".into());
        return ignore(c, "spam (X-Spam: Yes)");
    }
    // Microsoft's spam confidence level: 5 and above is junk.
    if let Some(v) = parse::header(msg, "X-MS-Exchange-Organization-SCL")
        && v.trim().parse::<i32>().is_ok_and(|scl| scl >= 5)
    {
        c.evidence.push(format!(
            "header X-MS-Exchange-Organization-SCL: {}",
            v.trim()
        ));
        return ignore(c, "spam (Exchange spam confidence level)");
    }

    // Reports that are neither bounces nor people: read receipts and abuse reports.
    if let Some((ct, Some(report))) = parse::root(msg).and_then(parse::content_type)
        && ct == "multipart/report"
        && (report == "disposition-notification" || report == "feedback-report")
    {
        c.evidence
            .push(format!("multipart/report; report-type={report}"));
        return ignore(
            c,
            if report == "feedback-report" {
                "abuse report (feedback-report)"
            } else {
                "read receipt (disposition-notification)"
            },
        );
    }

    // 2. Bounces.
    let own = |a: &EmailAddress| ctx.is_own(a);
    if let Some(b) = bounce::standard(msg, &body)
        .or_else(|| bounce::nonstandard(msg, from.as_ref(), &subject, &body, &own))
    {
        c.kind = MessageKind::Bounce;
        c.evidence.extend(b.evidence);
        if let Some(id) = b.original_id
            && !c.references.contains(&id)
        {
            c.references.push(id);
        }
        c.bounce = Some(Bounce {
            recipient: b.recipient,
            permanent: b.permanent,
            status: b.status,
        });
        return;
    }

    // 3. Auto-replies.
    let local_day = parse::local_day(msg);
    // Asked by the auto-reply signals for a notice without headers, and read again for the
    // notice's return date: computed at most once.
    let return_date = OnceCell::new();
    let return_date = || {
        *return_date.get_or_init(|| {
            dates::return_date(&format!("{subject}\n{}", texts.new_text()), local_day)
        })
    };
    let details = || (texts.new_text().len(), return_date().is_some());
    let (auto_ev, generated_only) = autoreply::signals(msg, &subject, &body, &details);
    if !auto_ev.is_empty() {
        let form_like =
            generated_only && detect_form(msg, ctx, from.as_ref(), &subject, &texts).is_some();
        if form_like {
            c.evidence.push(
                "Auto-Submitted: auto-generated, but the message is a form notification".into(),
            );
        } else {
            c.kind = MessageKind::Autoreply;
            c.evidence.extend(auto_ev);
            c.lead = from.as_ref().filter(|f| !ctx.is_own(&f.email)).map(person);
            c.return_date = return_date();
            if let Some(d) = c.return_date {
                c.evidence.push(format!("return date {d}"));
            }
            return;
        }
    }

    // 4. Bulk mail. Hosted form services send through bulk infrastructure, so their
    // notifications may carry the same headers; they are forms, read in step 9.
    let hosted_form = from_addr.is_some_and(forms::hosted_service);
    if let Some(id) = parse::header(msg, "List-Id").filter(|_| !hosted_form) {
        let id_l = id.to_ascii_lowercase();
        // A monitored inbox that is itself a group (Google Groups) stamps its own List-Id on
        // every inquiry; that is not a newsletter.
        if ctx
            .id_domains
            .iter()
            .any(|d| id_l.contains(&format!(".{d}")) || id_l.contains(&format!("@{d}")))
        {
            c.evidence.push(format!(
                "List-Id {} is our own group",
                parse::clip(&id, 100)
            ));
        } else {
            return ignore(c, format!("bulk mail (List-Id {})", parse::clip(&id, 100)));
        }
    }
    if let Some(p) = parse::header(msg, "Precedence").filter(|_| !hosted_form) {
        let p = p.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk") {
            return ignore(c, format!("bulk mail (Precedence: {p})"));
        }
    }
    if !hosted_form && parse::has_header(msg, "List-Unsubscribe") {
        if parse::has_header(msg, "List-Unsubscribe-Post") {
            // RFC 8058 one-click unsubscribe is only offered by bulk senders.
            return ignore(c, "bulk mail (List-Unsubscribe-Post one-click)");
        }
        let esp = parse::header_names(msg).find(|n| {
            let n = n.to_ascii_lowercase();
            [
                "x-mailchimp",
                "x-mc-",
                "x-campaign",
                "feedback-id",
                "x-sg-",
                "x-sendgrid",
                "x-mailgun",
                "x-ses-",
                "x-mailjet",
                "x-marketo",
                "x-hs-",
                "x-newsletter",
                "x-sfmc",
                "x-mailin-",
                "x-sib-",
                "x-roving-",
                "x-csa-complaints",
                "x-emv-",
                "x-rpcampaign",
                "x-listmonk",
                "x-mailerlite",
                "x-ml-",
                "x-klaviyo",
                "x-kmail",
                "x-cmp-",
                "x-pardot",
                "x-mkto",
                "x-ems-",
                "x-campaignid",
                "x-ac-",
                "x-bm-",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        });
        if let Some(h) = esp {
            // The name comes from the message: keep it short and printable in the reason.
            let h: String = parse::clip(h, 60)
                .chars()
                .map(|ch| if ch.is_control() { '?' } else { ch })
                .collect();
            return ignore(c, format!("bulk mail (List-Unsubscribe with {h})"));
        }
    }

    let recipients = recipients(msg);

    // 5. Forwards.
    if let Some(orig) = forward::find(msg, &body, &subject) {
        c.evidence.push(orig.evidence);
        let Some(sender) = orig.sender else {
            return ignore(c, "forwarded message without the original sender's address");
        };
        if ctx.is_own(&sender.email) {
            return ignore(c, format!("forward of our own mail ({})", sender.email));
        }
        c.kind = MessageKind::Forward;
        c.evidence.push(format!("original sender {}", sender.email));
        c.lead = Some(person(&sender));
        let mut utm = None;
        if forms::is_system_sender(&sender.email) {
            // A colleague forwarded a form notification: the lead is its submitter.
            let text = orig.body.as_deref().unwrap_or(&body);
            let fields = forms::extract_fields(text);
            let acceptable = |a: &EmailAddress| !ctx.is_own(a) && !forms::is_system_sender(a);
            let rt = orig.reply_to.as_ref().filter(|r| acceptable(&r.email));
            let email = rt
                .map(|r| r.email.clone())
                .or_else(|| forms::email_field(&fields, None).filter(|a| acceptable(a)));
            let Some(email) = email else {
                return ignore(
                    c,
                    format!(
                        "forwarded mail from automated sender {} without a submitter address",
                        sender.email
                    ),
                );
            };
            c.evidence
                .push(format!("forwarded form notification, submitter {email}"));
            let sub = forms::submitter(&fields, &forms::Labels::default());
            utm = forms::utm_source(&fields, text);
            c.lead = Some(Person {
                email,
                name: sub.name.or_else(|| rt.and_then(|r| r.name.clone())),
                company: sub.company,
                phone: sub.phone,
            });
            c.fields = forms::to_map(&fields);
        }
        c.owner = from_addr.cloned();
        c.original_text = orig
            .body
            .as_deref()
            .map(|t| parse::clip(t.trim(), ORIGINAL_TEXT_MAX).to_owned())
            .filter(|t| !t.is_empty());
        c.subject = orig
            .subject
            .or_else(|| Some(FWD_PREFIX.replace(&subject, "").trim().to_owned()))
            .filter(|s| !s.is_empty());
        if let Some(id) = orig.message_id
            && !c.references.contains(&id)
        {
            c.references.push(id);
        }
        let (channel, ev) = channel::attribute(
            ctx.rules,
            &channel::Signals {
                recipients: &recipients,
                utm_source: utm.as_deref(),
                form: None,
            },
        );
        c.channel = Some(channel);
        c.evidence.push(ev);
        return;
    }

    // 6. Replies to our mail, and Sales' feedback.
    let our_ref = c
        .references
        .iter()
        .find(|id| ctx.is_our_message_id(id))
        .cloned();
    let reply_tag = recipients.iter().find(|r| {
        ctx.is_own(r)
            && r.plus_tag()
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("reply-"))
    });
    if our_ref.is_some() || reply_tag.is_some() {
        let ev = match (&our_ref, reply_tag) {
            (Some(id), _) => format!("references our Message-ID {id}"),
            (None, Some(r)) => format!("sent to reply address {r}"),
            (None, None) => String::new(),
        };
        if let Some(f) = from.as_ref() {
            if ctx.is_sales(&f.email) {
                c.evidence.push(ev);
                c.evidence.push(format!("from Sales ({})", f.email));
                c.kind = MessageKind::Feedback;
                match verdict(texts.new_text()) {
                    Some((v, reason)) => {
                        c.evidence.push(format!("verdict {v}"));
                        c.fields.insert("verdict".into(), v);
                        if let Some(r) = reason {
                            c.fields.insert("feedback_reason".into(), r);
                        }
                    }
                    None => c.reason = Some("no verdict found".into()),
                }
                return;
            }
            if !ctx.is_own(&f.email) {
                c.evidence.push(ev);
                c.lead = Some(person(f));
                if unsubscribe_intent(texts.new_text()) {
                    c.kind = MessageKind::Unsubscribe;
                    c.evidence.push("short reply asking to stop".into());
                } else {
                    c.kind = MessageKind::Reply;
                }
                return;
            }
        }
    }

    // 7. Unsubscribe requests.
    if let Some(f) = from.as_ref().filter(|f| !ctx.is_own(&f.email)) {
        let tag = recipients.iter().find(|r| {
            ctx.is_own(r)
                && r.plus_tag().is_some_and(|t| {
                    let t = t.to_ascii_lowercase();
                    t == "unsubscribe" || t.starts_with("unsubscribe-")
                })
        });
        let why = if let Some(r) = tag {
            Some(format!("sent to unsubscribe address {r}"))
        } else if UNSUB_SUBJECT.is_match(parse::clip(&subject, 200)) {
            Some(format!("subject \"{}\"", parse::clip(&subject, 60)))
        } else if !forms::is_system_sender(&f.email) && unsubscribe_intent(texts.new_text()) {
            Some("short message asking to stop".into())
        } else {
            None
        };
        if let Some(why) = why {
            c.kind = MessageKind::Unsubscribe;
            c.evidence.push(why);
            c.lead = Some(person(f));
            return;
        }
    }

    // 8. Our own mail and loops.
    if parse::has_header(msg, "X-Leadloop-Origin") {
        c.evidence.push("header X-Leadloop-Origin".into());
        return ignore(c, "sent by us (X-Leadloop-Origin)");
    }
    let own_form = from_addr
        .filter(|f| ctx.is_own(f) && forms::is_system_sender(f))
        .and_then(|_| detect_form(msg, ctx, from.as_ref(), &subject, &texts));
    if let Some(hit) = own_form {
        // Our own website's form mailer (`wordpress@company.com`) sends from our domain, but
        // the submitter is a lead.
        c.evidence
            .push("system sender at our own domain sent a form notification".into());
        return apply_form(msg, ctx, from.as_ref(), &body, hit, &recipients, c);
    }
    if let Some(f) = from_addr.filter(|f| ctx.is_own(f)) {
        if forward::forward_subject(&subject) {
            // Tell the user why a forward did not count, so they can forward it as attachment.
            return ignore(
                c,
                format!("sent by us ({f}); looks forwarded, but no original sender was found"),
            );
        }
        return ignore(c, format!("sent by us ({f})"));
    }
    if let Some(l) = parse::header(msg, "X-Loop")
        && parse::emails_in(&l).iter().any(|a| ctx.is_own(a))
    {
        c.evidence
            .push(format!("header X-Loop: {}", parse::clip(&l, 100)));
        return ignore(c, "mail loop (X-Loop names our address)");
    }
    let received = parse::count_headers(msg, "Received");
    if received > 30 {
        return ignore(c, format!("mail loop ({received} Received headers)"));
    }

    // 9. Forms.
    if let Some(hit) = detect_form(msg, ctx, from.as_ref(), &subject, &texts) {
        return apply_form(msg, ctx, from.as_ref(), &body, hit, &recipients, c);
    }

    // 10. Inquiries. A person writing to us never offers an unsubscribe link; a message that
    // does and is no form (read above) is a newsletter or a service's notification.
    if !hosted_form && parse::has_header(msg, "List-Unsubscribe") {
        c.evidence.push("header List-Unsubscribe".into());
        return ignore(c, "bulk mail (List-Unsubscribe)");
    }
    let Some(f) = from else {
        return ignore(c, "no valid sender");
    };
    if forms::is_system_sender(&f.email) {
        return ignore(
            c,
            format!("automated sender {} without form fields", f.email),
        );
    }
    c.kind = MessageKind::Inquiry;
    c.evidence.push(format!("inquiry from {}", f.email));
    let mut lead = person(&f);
    // Company and phone only when the writer states them as fields; a free-mail domain says
    // nothing about the company.
    let sub = forms::submitter(&texts.new_text_fields(), &forms::Labels::default());
    lead.company = sub.company;
    lead.phone = sub.phone;
    c.lead = Some(lead);
    let (channel, ev) = channel::attribute(
        ctx.rules,
        &channel::Signals {
            recipients: &recipients,
            utm_source: None,
            form: None,
        },
    );
    c.channel = Some(channel);
    c.evidence.push(ev);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(&parse::new_text(
                "Unqualified: no budget\n\nOn Mon wrote:\n> x"
            )),
            Some(("unqualified".into(), Some("no budget".into())))
        );
        assert_eq!(
            verdict(&parse::new_text("qualified - wants a demo.")),
            Some(("qualified".into(), Some("wants a demo".into())))
        );
        assert_eq!(
            verdict(&parse::new_text("Customer")),
            Some(("customer".into(), None))
        );
        assert_eq!(
            verdict(&parse::new_text("Not qualified, too small")),
            Some(("unqualified".into(), Some("too small".into())))
        );
        assert_eq!(
            verdict(&parse::new_text("> qualified\nI'll call them")),
            None
        );
        assert_eq!(verdict(&parse::new_text("They seem qualified to me")), None);
    }
}
