//! Delivery failures: RFC 3464 delivery status notifications and the free-text bounces many
//! mail servers still send.
//!
//! The address that failed is what matters (it gets suppressed), so per-recipient blocks are
//! read rather than guessed from the bounce's own headers, which name the mail server.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use mail_parser::{Message, PartType};
use regex::Regex;

use super::parse::{self, MAX_NESTING, clip};
use super::reason;
use crate::domain::{BounceAction, BounceReason, EmailAddress, FailedRecipient};

/// One per-recipient block of a `message/delivery-status` part.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub final_recipient: Option<EmailAddress>,
    pub original_recipient: Option<EmailAddress>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

/// RFC 3464's `Action` field: what the reporting server did about the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    /// The action named by a (lower-cased) field value; `None` for a value RFC 3464 does not
    /// define.
    fn parse(value: &str) -> Option<Action> {
        Some(match value {
            "failed" => Action::Failed,
            "delayed" => Action::Delayed,
            "delivered" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => return None,
        })
    }
}

impl RecipientStatus {
    /// The action, without a comment after it (Sendmail writes
    /// `Action: relayed (to non-DSN-aware mailer)`).
    fn action(&self) -> Option<Action> {
        let a = self.action.as_deref()?;
        Action::parse(a.split(['(', ' ', '\t', ';']).next().unwrap_or(a))
    }

    /// Hard unless the server says it is only delayed or gives a 4.x.x status without
    /// giving up.
    ///
    /// The status class decides before the action: a failure after retrying a 4.x.x condition
    /// (mailbox full, host down for days) says nothing against the address itself.
    pub fn permanent(&self) -> bool {
        let action = self.action();
        if matches!(action, Some(Action::Delayed | Action::Relayed)) {
            return false;
        }
        match self.status.as_deref().and_then(|s| s.chars().next()) {
            Some('5') => true,
            Some('4') => false,
            _ => action == Some(Action::Failed),
        }
    }

    /// Whether the block reports the recipient as not delivered: `failed` or `delayed`, or
    /// no action RFC 3464 defines with a 4.x.x or 5.x.x status. Never a recipient reported
    /// `delivered`, `relayed` or `expanded`.
    fn reports_failure(&self) -> bool {
        match self.action() {
            Some(Action::Failed | Action::Delayed) => true,
            Some(Action::Delivered | Action::Relayed | Action::Expanded) => false,
            None => self
                .status
                .as_deref()
                .is_some_and(|s| s.starts_with('4') || s.starts_with('5')),
        }
    }

    /// The server is still trying (or handed the message on): never a hard failure.
    fn delayed(&self) -> bool {
        matches!(self.action(), Some(Action::Delayed | Action::Relayed))
    }

    pub fn recipient(&self) -> Option<&EmailAddress> {
        self.original_recipient
            .as_ref()
            .or(self.final_recipient.as_ref())
    }
}

fn typed_address(value: &str) -> Option<EmailAddress> {
    // `rfc822; jane@example.com`; other address types cannot be a lead's address.
    // Some servers omit the type (`Final-Recipient: <jane@example.com>`).
    let (kind, addr) = value.split_once(';').unwrap_or(("rfc822", value));
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    EmailAddress::parse(addr.trim().trim_matches(['<', '>']))
        .ok()
        .map(without_type_prefix)
}

/// An address without the address type some servers glue to it (`smtp=jane@example.com`,
/// `rfc822=…`, `SMTP:…`): the type is not part of the mailbox.
fn without_type_prefix(a: EmailAddress) -> EmailAddress {
    let local = a.local_part();
    for prefix in ["smtp=", "smtp:", "rfc822=", "rfc822:"] {
        if let Some(rest) = local
            .get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .and_then(|_| local.get(prefix.len()..))
            && let Ok(b) = EmailAddress::parse(&format!("{rest}@{}", a.domain()))
        {
            return b;
        }
    }
    a
}

static STATUS_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b").expect("static regex"));

/// Parses the body of a `message/delivery-status` part (RFC 3464 §2): a per-message block,
/// then one block per recipient, separated by blank lines, with folded continuation lines.
pub fn parse_delivery_status(text: &str) -> Vec<RecipientStatus> {
    let text = clip(text, 64 * 1024).replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n").take(100) {
        // Unfold continuation lines.
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("final-recipient").is_none() && get("original-recipient").is_none() {
            continue;
        }
        out.push(RecipientStatus {
            final_recipient: get("final-recipient").and_then(typed_address),
            original_recipient: get("original-recipient").and_then(typed_address),
            action: get("action").map(|a| a.to_ascii_lowercase()),
            status: get("status").and_then(|s| STATUS_CODE.find(s).map(|m| m.as_str().to_owned())),
            diagnostic: get("diagnostic-code").map(|d| clip(d, 500).to_owned()),
        });
    }
    out
}

/// The decision about a bounce, before it becomes a [`super::Bounce`].
#[derive(Debug, Default)]
pub struct Found {
    pub recipient: Option<EmailAddress>,
    pub permanent: bool,
    pub status: Option<String>,
    /// Every failed recipient, `recipient` first.
    pub recipients: Vec<FailedRecipient>,
    pub original_id: Option<String>,
    pub evidence: Vec<String>,
}

impl Found {
    /// Takes `recipient`, `permanent` and `status` from the first of `recipients`.
    fn first_of(&mut self, recipients: Vec<FailedRecipient>) {
        if let Some(r) = recipients.first() {
            self.recipient = Some(r.address.clone());
            self.permanent = r.permanent;
            self.status.clone_from(&r.status);
        }
        if recipients.len() > 1 {
            self.evidence
                .push(format!("{} failed recipients", recipients.len()));
        }
        self.recipients = recipients;
    }

    /// The evidence for the first recipient's reason, and for its permanence when the
    /// reason, not the status class or wording, decided it.
    fn explain_first(&mut self, base: bool) {
        if let Some(r) = self.recipients.first() {
            self.evidence.push(format!("reason {}", r.reason));
            if r.permanent != base {
                self.evidence.push(format!(
                    "{} because of the reason {}",
                    if r.permanent { "hard" } else { "soft" },
                    r.reason
                ));
            }
        }
    }
}

/// How the bounce as a whole reads when no per-recipient block says: hard or soft from the
/// status class or the wording, the status code it states, why, and whether it is a delay
/// warning.
#[derive(Debug, Clone)]
struct Judgement {
    permanent: bool,
    status: Option<String>,
    delayed: bool,
    why: &'static str,
}

/// Bytes of a recipient's diagnostic that are kept.
const DIAGNOSTIC_MAX: usize = 300;

/// Text on one line, whitespace collapsed, clipped on a character boundary.
fn one_line(text: &str) -> Option<String> {
    let mut out = String::new();
    for w in clip(text, 4 * DIAGNOSTIC_MAX).split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
        if out.len() >= DIAGNOSTIC_MAX {
            break;
        }
    }
    let kept = clip(&out, DIAGNOSTIC_MAX).len();
    out.truncate(kept);
    (!out.is_empty()).then_some(out)
}

/// A `Diagnostic-Code` without its type (`smtp; 550 …` → `550 …`).
fn diagnostic_words(d: &str) -> &str {
    match d.split_once(';') {
        Some((kind, rest)) if !kind.trim().is_empty() && !kind.trim().contains(' ') => rest.trim(),
        _ => d.trim(),
    }
}

/// The first status code a text states: an enhanced code, else an SMTP reply code.
fn status_in(text: &str) -> Option<String> {
    TEXT_STATUS
        .captures(text)
        .and_then(|c| c.get(1))
        .or_else(|| SMTP_CODE.captures(text).and_then(|c| c.get(1)))
        .map(|m| m.as_str().to_owned())
}

/// One recipient, judged: its reason from its status and the server's words about it (the
/// first of `words` that names a reason more precise than `other` or `temporary`), hard or
/// soft from the reason and `base`.
fn judge(
    address: EmailAddress,
    status: Option<String>,
    base: bool,
    delayed: bool,
    diagnostic: Option<&str>,
    words: &[&str],
) -> FailedRecipient {
    let status = status.or_else(|| diagnostic.and_then(status_in));
    let vague = |r: &BounceReason| matches!(r, BounceReason::Other | BounceReason::Temporary);
    let reasons = words
        .iter()
        .filter(|w| !w.trim().is_empty())
        .map(|w| reason::reason(status.as_deref(), w, delayed));
    let mut reason = reason::reason(status.as_deref(), "", delayed);
    for r in reasons {
        let precise = !vague(&r);
        if precise || vague(&reason) {
            reason = r;
        }
        if precise {
            break;
        }
    }
    FailedRecipient {
        address,
        permanent: reason::permanent(reason, base, delayed),
        action: if delayed {
            BounceAction::Delayed
        } else {
            BounceAction::Failed
        },
        diagnostic: diagnostic.and_then(one_line),
        status,
        reason,
    }
}

/// What a report's text says about a recipient, without the lines that only name it.
fn segment_diagnostic(segment: &str, a: &EmailAddress) -> String {
    segment
        .lines()
        .filter(|l| {
            let bare = l
                .trim()
                .trim_matches(|c: char| "<>():,;".contains(c) || c.is_whitespace());
            !bare.eq_ignore_ascii_case(a.as_str())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The failed recipients of per-recipient blocks, judged, in the report's order but with
/// the first hard failure first (the one [`Found::recipient`] names). `segments` hold what
/// the report's text says about each address, read when a block has no `Diagnostic-Code`;
/// a report with one failed block reads its whole `region` then.
fn block_recipients<'b>(
    blocks: &'b [RecipientStatus],
    segments: &[(EmailAddress, String)],
    region: &str,
) -> Vec<(&'b RecipientStatus, FailedRecipient)> {
    let failing: Vec<&RecipientStatus> = blocks.iter().filter(|b| b.reports_failure()).collect();
    let single = failing.len() == 1;
    let mut out: Vec<(&RecipientStatus, FailedRecipient)> = Vec::new();
    for b in failing {
        let Some(a) = b.recipient() else {
            continue;
        };
        if out.iter().any(|(_, r)| r.address == *a) {
            continue;
        }
        let diagnostic = b.diagnostic.as_deref().map(diagnostic_words);
        let words = [
            diagnostic.unwrap_or_default(),
            segment_of(segments, a).unwrap_or_default(),
            if single { region } else { "" },
        ];
        let r = judge(
            a.clone(),
            b.status.clone(),
            b.permanent(),
            b.delayed(),
            diagnostic,
            &words,
        );
        out.push((b, r));
    }
    hard_first(&mut out, |(_, r)| r.permanent);
    out
}

/// Recipients named outside a per-recipient block (X-Failed-Recipients, the text), judged.
/// The first takes the bounce's own status and wording (`j`); the others the status their
/// own lines state, else the bounce's.
fn named_recipients(
    addresses: Vec<EmailAddress>,
    segments: &[(EmailAddress, String)],
    region: &str,
    j: &Judgement,
) -> Vec<FailedRecipient> {
    let single = addresses.len() == 1;
    let mut out: Vec<FailedRecipient> = Vec::new();
    for (i, a) in addresses.into_iter().take(MAX_RECIPIENTS).enumerate() {
        if out.iter().any(|r| r.address == a) {
            continue;
        }
        let segment = segment_of(segments, &a);
        let (status, base) = match segment.filter(|_| i > 0) {
            // Another recipient with lines of its own: the status they state, if any.
            Some(t) => match status_in(t) {
                Some(s) => {
                    let base = match s.chars().next() {
                        Some('5') => true,
                        Some('4') => false,
                        _ => j.permanent,
                    };
                    (Some(s), base)
                }
                None => (None, j.permanent),
            },
            None => (j.status.clone(), j.permanent),
        };
        let diagnostic = segment.map(|t| segment_diagnostic(t, &a));
        let words = [
            diagnostic.as_deref().unwrap_or_default(),
            if single || i == 0 { region } else { "" },
        ];
        out.push(judge(
            a,
            status,
            base,
            j.delayed,
            diagnostic.as_deref(),
            &words,
        ));
    }
    out
}

/// Failed recipients a bounce may name at most.
const MAX_RECIPIENTS: usize = 100;

static MSGID_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^Message-ID:\s*<([^<>\s]{1,500})>").expect("static regex"));

/// The Message-ID of the message that bounced, from an attached message or its headers.
fn original_message_id(msg: &Message<'_>, depth: usize) -> Option<String> {
    if depth > MAX_NESTING {
        return None;
    }
    for part in msg.parts.iter().skip(1).take(64) {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(id) = parse::message_ids(inner, "Message-ID").into_iter().next() {
                    return Some(id);
                }
            }
            PartType::Text(t) => {
                let ct = parse::content_type(part).map(|(c, _)| c);
                if ct.as_deref() == Some("text/rfc822-headers")
                    && let Some(c) = MSGID_LINE.captures(clip(t, 64 * 1024))
                {
                    return c.get(1).map(|m| m.as_str().to_owned());
                }
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                let ct = parse::content_type(part).map(|(c, _)| c);
                if matches!(
                    ct.as_deref(),
                    Some("text/rfc822-headers" | "message/rfc822")
                ) {
                    let t = String::from_utf8_lossy(b.get(..64 * 1024).unwrap_or(b));
                    if let Some(c) = MSGID_LINE.captures(&t) {
                        return c.get(1).map(|m| m.as_str().to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// A delivery-status notice that reports no failure: every recipient block says
/// `delivered`, `relayed` or `expanded` (RFC 3464 §2.3.3), as success notices (`NOTIFY=SUCCESS`)
/// and relay notices do, and no `X-Failed-Recipients` header names anyone. Returns the
/// evidence; such a notice is neither a bounce nor a lead.
pub fn delivery_notice(msg: &Message<'_>) -> Option<String> {
    let (ct, _) = parse::content_type(parse::root(msg)?)?;
    if ct != "multipart/report" || parse::has_header(msg, "X-Failed-Recipients") {
        return None;
    }
    let status_part = msg.parts.iter().take(64).find(|p| {
        parse::content_type(p).is_some_and(|(c, _)| {
            c == "message/delivery-status" || c == "message/global-delivery-status"
        })
    })?;
    let blocks = parse_delivery_status(&parse::part_text(status_part, 64 * 1024)?);
    let mut actions: Vec<&str> = Vec::new();
    for b in blocks
        .iter()
        .filter(|b| b.action.is_some() || b.recipient().is_some())
    {
        match b.action() {
            Some(Action::Delivered) => actions.push("delivered"),
            Some(Action::Relayed) => actions.push("relayed"),
            Some(Action::Expanded) => actions.push("expanded"),
            _ => return None,
        }
    }
    if actions.is_empty() {
        return None;
    }
    actions.sort_unstable();
    actions.dedup();
    Some(format!(
        "delivery-status: every recipient {}",
        actions.join(" or ")
    ))
}

/// A standard DSN: `multipart/report; report-type=delivery-status`.
///
/// Also a `multipart/report` whose `report-type` is missing or misspelled but which holds a
/// delivery-status part, as some servers send.
pub fn standard(
    msg: &Message<'_>,
    body: &str,
    is_own: &dyn Fn(&EmailAddress) -> bool,
) -> Option<Found> {
    let (ct, report) = parse::content_type(parse::root(msg)?)?;
    if ct != "multipart/report" {
        return None;
    }
    let status_part = msg.parts.iter().take(64).find(|p| {
        parse::content_type(p).is_some_and(|(c, _)| {
            c == "message/delivery-status" || c == "message/global-delivery-status"
        })
    });
    let declared = matches!(
        report.as_deref(),
        Some("delivery-status" | "global-delivery-status")
    );
    if !declared && status_part.is_none() {
        return None;
    }
    let mut found = Found {
        evidence: vec![if declared {
            "multipart/report; report-type=delivery-status".into()
        } else {
            "multipart/report with a delivery-status part".into()
        }],
        permanent: true,
        ..Found::default()
    };
    let blocks = status_part
        .and_then(|p| parse::part_text(p, 64 * 1024))
        .map(|t| parse_delivery_status(&t))
        .unwrap_or_default();
    let text = clip(body, 32 * 1024);
    let region = report_region(text);
    let bounce_to: Vec<EmailAddress> = parse::addresses(msg, "To")
        .into_iter()
        .map(|n| n.email)
        .collect();
    let skip = |a: &EmailAddress| is_daemon(a) || is_own(a) || bounce_to.contains(a);
    let segments = text_segments(region, &skip);
    let judged = block_recipients(&blocks, &segments, region);
    if let Some((b, first)) = judged.first() {
        found.evidence.push(format!(
            "delivery-status: Action {}, Status {}",
            b.action.as_deref().unwrap_or("?"),
            first.status.as_deref().unwrap_or("?")
        ));
        let base = b.permanent();
        found.first_of(judged.into_iter().map(|(_, r)| r).collect());
        found.explain_first(base);
        found.original_id = original_message_id(msg, 0);
        return Some(found);
    }
    // No block names a failed rfc822 recipient: the block that is there (another address
    // type, or only recipients delivered or relayed) and the text say what they can.
    let chosen = blocks
        .iter()
        .find(|b| b.reports_failure())
        .or(blocks.first());
    let j = match chosen {
        Some(b) => {
            found.evidence.push(format!(
                "delivery-status: Action {}, Status {}",
                b.action.as_deref().unwrap_or("?"),
                b.status.as_deref().unwrap_or("?")
            ));
            Judgement {
                permanent: b.permanent(),
                status: b.status.clone(),
                delayed: b.delayed(),
                why: "",
            }
        }
        None => {
            found
                .evidence
                .push("no per-recipient block in the report".into());
            let j = permanence("", text);
            found.evidence.push(j.why.to_owned());
            j
        }
    };
    found.permanent = j.permanent;
    found.status.clone_from(&j.status);
    if let Some(b) = chosen.filter(|b| !b.reports_failure())
        && let Some(a) = b.recipient()
    {
        // A report of delivered or relayed recipients only: not a failure of theirs.
        found.recipient = Some(a.clone());
        found.original_id = original_message_id(msg, 0);
        return Some(found);
    }
    let mut addresses = failed_from_header(msg);
    if addresses.is_empty()
        && let Some((a, how)) = recipient_in_text(msg, text, &skip)
    {
        found.evidence.push(format!("failed recipient from {how}"));
        addresses.push(a);
        addresses.extend(segments.iter().map(|(a, _)| a.clone()));
    }
    found.first_of(named_recipients(addresses, &segments, region, &j));
    found.explain_first(j.permanent);
    found.original_id = original_message_id(msg, 0);
    Some(found)
}

/// Bounce subjects of the common servers in several languages, ASCII-case-insensitively
/// (an automaton builds far faster than the equivalent Unicode regex and scans as fast).
static BOUNCE_SUBJECT: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "undeliver",
            "delivery status notification",
            "mail delivery failed",
            "mail delivery failure",
            "mail delivery subsystem",
            "mail delivery problem",
            "returned mail",
            "returned to sender",
            "delivery failure",
            "delivery_failure",
            "failure notice",
            "delivery has failed",
            "delivery notification",
            "nondeliverable",
            "non-deliverable",
            "could not send message for past",
            "message status - undeliverable",
            "permanent delivery failure",
            "delays in delivering",
            "delay in delivering",
            "mail system error",
            "unzustellbar",
            "nicht zustellbar",
            "zustellung fehlgeschlagen",
            "übermittlungsstatus",
            "ubermittlungsstatus",
            "non remis",
            "non distribuable",
            "échec de la remise",
            "echec de la remise",
            "échec de remise",
            "no se puede entregar",
            "no entregado",
            "non recapitabile",
            "mancato recapito",
            "onbestelbaar",
            "não é possível entregar",
            "nao e possivel entregar",
            "não entregue",
            "delivery incomplete",
            "delivery delayed",
            "delayed mail",
            "delayed",
            "message not delivered",
            "could not be delivered",
            "couldn't be delivered",
            "not delivered",
            "delivery report",
            "failed delivery",
            "delivery problem",
            "mail returned",
            "rejected mail",
            "mail failure",
            // Russian (Mail.ru, Yandex), without the first letter's case.
            "едоставленное сообщение",
            "е удалось доставить",
            "е доставлено",
        ])
        .expect("static patterns")
});

/// Sentences mail servers open their bounce texts with; one of them in the first lines is a
/// bounce even without a bounce subject (some relays rewrite the subject).
static BOUNCE_TEXT: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "this is the mail system at host",
            "i'm sorry to have to inform you that your message could not",
            "this message was created automatically by mail delivery software",
            "this is the qmail-send program",
            "i wasn't able to deliver your message",
            "delivery has failed to these recipients or groups",
            "your message did not reach some or all of the intended recipients",
            "the following addresses had permanent fatal errors",
            "transcript of session follows",
            "your message wasn't delivered to",
            "sorry, we were unable to deliver your message",
            "the message that you sent was undeliverable",
            "had permanent fatal delivery errors",
            "this is a warning message only",
            "this is a delivery status notification",
            "delivery to the following recipient failed",
            "delivery to the following recipients failed",
            "message you sent has not yet been delivered",
            "could not be delivered to one or more recipients",
            "ihre nachricht wurde nicht",
            "ihre nachricht konnte nicht",
            "votre message n'a pas",
            "su mensaje no",
            "il messaggio non",
            "this is the james mail server",
            "this is the mailer-daemon, please do not reply",
            "an error has occurred while attempting to deliver a message",
            "ваше письмо не может",
            "письмо не удалось доставить",
        ])
        .expect("static patterns")
});

/// Phrases that introduce the failed address; the first address after one of them is it.
static RECIPIENT_INTRO: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "following address(es) failed",
            "following addresses failed",
            "following address failed",
            "has not yet been delivered is",
            "has not yet been delivered are",
            "was not delivered to",
            "wasn't delivered to",
            "could not be delivered to",
            "couldn't be delivered to",
            "delivery has failed to these recipients or groups",
            "delivery to the following recipient",
            "following recipient(s) cannot be reached",
            "the following recipients",
            "undeliverable to the following",
            "had permanent fatal errors",
            "unable to deliver your message to the following",
            "wasn't able to deliver your message to the following",
            "could not deliver to",
            "delivery failed for",
            "rcpt to:",
            "original-recipient:",
            "final-recipient:",
            "failed recipient:",
            "recipient address:",
            "nicht zugestellt werden:",
            "an folgende empfänger",
            "n'a pas pu être remis",
            "destinataires suivants",
            "no se pudo entregar",
            "wurde nicht an",
            "konnte nicht an",
            "n'a pas été remis à",
            "n'a pas pu être remis à",
            "no se entregó a",
            "non è stato recapitato a",
            "kon niet worden bezorgd bij",
            "failed recipient(s):",
            "addresses had delivery problems",
            "addresses had delivery errors",
            "following list of recipients",
        ])
        .expect("static patterns")
});

/// Signs that the server is still trying: a warning, not a failure.
static WARNING: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "this is a warning message only",
            "this is a warning only",
            "will keep trying",
            "will continue to try",
            "delivery attempts will continue",
            "no action is required on your part",
            "will retry",
            "still being retried",
            "not yet been delivered",
            "message not delivered yet",
            "has been delayed",
            "delivery delayed",
            "delayed mail",
            "delivery status notification (delay)",
            "could not send message for past",
            "delays in delivering",
            "you do not need to resend",
            "verzögert",
            "retardée",
            "retrasad",
        ])
        .expect("static patterns")
});

/// A server's own statement that it has given up for good.
static STRONG_PERMANENT: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "permanent fatal",
            "permanent error",
            "permanent failure",
            "permanent delivery failure",
            "failed permanently",
        ])
        .expect("static patterns")
});

/// Wordings of permanent failures that state no status code.
static PERMANENT_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "permanent error",
            "permanent fatal",
            "permanently",
            "user unknown",
            "unknown user",
            "no such user",
            "no such recipient",
            "no mailbox here",
            "does not exist",
            "doesn't exist",
            "not listed in",
            "address couldn't be found",
            "address not found",
            "invalid recipient",
            "recipient address rejected",
            "account has been disabled",
            "account is disabled",
            "mailbox unavailable",
            "mailbox not found",
            "unrouteable address",
            "host or domain name not found",
            "domain not found",
            "i've given up",
        ])
        .expect("static patterns")
});

/// Wordings of temporary conditions that state no status code.
static TEMPORARY_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "mailbox full",
            "mailbox is full",
            "over quota",
            "quota exceeded",
            "exceeded storage",
            "insufficient system storage",
            "temporarily",
            "temporary failure",
            "try again later",
        ])
        .expect("static patterns")
});

/// An enhanced status code (`5.1.1`) that is not part of an IP address or version number.
static TEXT_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9.])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[^0-9.]|\.[^0-9]|\.?$)")
        .expect("static regex")
});
static SMTP_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(:#\x27])([45][0-5][0-9])(?:[\s:),\x27-]|$)").expect("static regex")
});
static ANGLE_FAILED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*<([^<>\s]+@[^<>\s]+)>").expect("static regex"));

/// Every address of `X-Failed-Recipients` (Exim lists them all, comma-separated).
fn failed_from_header(msg: &Message<'_>) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    for a in parse::header(msg, "X-Failed-Recipients")
        .map(|v| parse::emails_in(&v))
        .unwrap_or_default()
        .into_iter()
        .map(without_type_prefix)
    {
        if !out.contains(&a) && out.len() < MAX_RECIPIENTS {
            out.push(a);
        }
    }
    out
}

/// Lines that introduce the copy of the bounced message in a bounce's text.
static ORIGINAL_MARK: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "copy of the message",
            "copy of your message",
            "below this line",
            "original message",
            "returned message",
            "message follows",
            "headers follow",
            "header follows",
            "headers of the original",
            "of the original message is following",
            "original mail as follows",
            "undelivered message",
        ])
        .expect("static patterns")
});

/// Header lines that open a pasted copy of the bounced message.
const ORIGINAL_HEADERS: &[&str] = &[
    "return-path:",
    "received:",
    "dkim-signature:",
    "mime-version:",
    "message-id:",
];

/// The part of a bounce's text that reports on recipients: up to the copy of the original
/// message, which names addresses that did not fail.
fn report_region(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n').take(2000) {
        let t = line.trim();
        let header = !line.starts_with([' ', '\t'])
            && ORIGINAL_HEADERS
                .iter()
                .any(|h| t.get(..h.len()).is_some_and(|p| p.eq_ignore_ascii_case(h)));
        let mark = t.len() < 120
            && (t.starts_with(['-', '=', '*', '_']) || t.ends_with(':') || t.len() < 40)
            && ORIGINAL_MARK.is_match(t);
        if header || mark {
            break;
        }
        at += line.len();
    }
    text.get(..at).unwrap_or(text)
}

/// An address opening a line: `<jane@example.org>` (Postfix, qmail, Sendmail), a bare or
/// quoted address followed by a space, a colon, a comma or the line's end (Exim, GMX, Zoho,
/// Exchange), a name with the address in brackets alone on the line (Exchange, Office 365),
/// or Zoho's `[Status: Error, Address: <jane@example.org>, …]`.
static LINE_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(?:<([^<>\s]+@[^<>\s]+)>|"?([^\s<>()"',;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24})"?(?:[\s:,]|$)|[^<>()@:]{1,80}[(<]([^<>()\s]+@[^<>()\s]+)[)>]\s*$|(?i:\[status:[^<\]]{0,80}<([^<>\s]+@[^<>\s]+)>))"#,
    )
    .expect("static regex")
});

/// What a bounce's report says about each address that opens a line, in order: the lines
/// from the address to the next blank line, separator or address. An address named twice
/// (the user's and the administrator's sections of Exchange) gets both.
fn text_segments(
    region: &str,
    skip: &dyn Fn(&EmailAddress) -> bool,
) -> Vec<(EmailAddress, String)> {
    let mut out: Vec<(EmailAddress, String)> = Vec::new();
    let mut current: Option<usize> = None;
    for line in region.lines().take(2000) {
        let t = line.trim();
        if t.is_empty() || t.starts_with("---") || t.starts_with("===") {
            current = None;
            continue;
        }
        let opened = LINE_ADDRESS
            .captures(t)
            .and_then(|c| (1..=4).find_map(|i| c.get(i)))
            .and_then(|m| EmailAddress::parse(m.as_str()).ok())
            .map(without_type_prefix)
            .filter(|a| !skip(a));
        if let Some(a) = opened {
            current = match out.iter().position(|(x, _)| *x == a) {
                Some(i) => Some(i),
                None if out.len() < MAX_RECIPIENTS => {
                    out.push((a, String::new()));
                    Some(out.len() - 1)
                }
                None => None,
            };
        }
        if let Some((_, text)) = current.and_then(|i| out.get_mut(i))
            && text.len() < 2048
        {
            text.push_str(t);
            text.push('\n');
        }
    }
    out
}

/// What the report's text says about `a`.
fn segment_of<'s>(segments: &'s [(EmailAddress, String)], a: &EmailAddress) -> Option<&'s str> {
    segments
        .iter()
        .find(|(x, _)| x == a)
        .map(|(_, t)| t.as_str())
}

/// Local parts and display names mail servers send bounces from.
fn is_daemon(a: &EmailAddress) -> bool {
    let l = a.local_part().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "mailer-daemon"
            | "postmaster"
            | "post_master"
            | "mdaemon"
            | "mail-daemon"
            | "mailer_daemon"
            | "maildaemon"
            | "mailerdaemon"
    ) || l.starts_with("mailer-daemon")
        || l.starts_with("postmaster")
}

fn daemon_name(name: Option<&str>) -> bool {
    name.is_some_and(|n| {
        let n = n.to_ascii_lowercase();
        [
            "mail delivery",
            "mailer-daemon",
            "mailer daemon",
            "mail administrator",
            "postmaster",
            "mail system",
            "mailsystem",
        ]
        .iter()
        .any(|w| n.contains(w))
    })
}

/// The `To` of the message that bounced, when the bounce carries it.
fn original_recipients(msg: &Message<'_>) -> Vec<EmailAddress> {
    for part in msg.parts.iter().skip(1).take(64) {
        if let PartType::Message(inner) = &part.body {
            return parse::addresses(inner, "To")
                .into_iter()
                .map(|n| n.email)
                .collect();
        }
    }
    Vec::new()
}

/// The failed address in a bounce's text: after a phrase that introduces it, then at the start
/// of a line in angle brackets (Postfix, qmail, Sendmail, Yahoo), then the recipient of the
/// attached original, then the first address at all.
fn recipient_in_text(
    msg: &Message<'_>,
    text: &str,
    skip: &dyn Fn(&EmailAddress) -> bool,
) -> Option<(EmailAddress, &'static str)> {
    // The phrases are matched across line breaks ("The following address\nfailed:").
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for m in RECIPIENT_INTRO.find_iter(&flat).take(20) {
        let after = flat.get(m.end()..).unwrap_or("");
        let window = clip(after, 400);
        if let Some(a) = parse::emails_in(window).into_iter().find(|a| !skip(a)) {
            return Some((a, "address after a failure phrase"));
        }
    }
    if let Some(a) = ANGLE_FAILED
        .captures_iter(text)
        .take(50)
        .filter_map(|c| c.get(1).and_then(|m| EmailAddress::parse(m.as_str()).ok()))
        .find(|a| !skip(a))
    {
        return Some((a, "<address> at the start of a line"));
    }
    if let Some(a) = original_recipients(msg).into_iter().find(|a| !skip(a)) {
        return Some((a, "recipient of the attached original"));
    }
    parse::emails_in(text)
        .into_iter()
        .find(|a| !skip(a))
        .map(|a| (a, "first address in the text"))
}

/// Hard or soft from the text of a bounce, the status code it states, and whether it is a
/// delay warning.
fn permanence(subject: &str, text: &str) -> Judgement {
    let status = TEXT_STATUS
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
        .or_else(|| {
            SMTP_CODE
                .captures(text)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_owned())
        });
    let judged = |permanent: bool, delayed: bool, why: &'static str| Judgement {
        permanent,
        status: status.clone(),
        delayed,
        why,
    };
    let subject_l = clip(subject, 500).to_ascii_lowercase();
    if WARNING.is_match(&subject_l) || subject_l.contains("delay") || subject_l.contains("warning")
    {
        return judged(false, true, "a delay warning: the server is still trying");
    }
    match status.as_deref().and_then(|s| s.chars().next()) {
        Some('5') => return judged(true, false, "5xx status"),
        Some('4') => return judged(false, false, "4xx status"),
        _ => {}
    }
    // Without a status: a server that says "permanent" means it, even when it adds that the
    // message need not be resent; otherwise a warning's wording makes it soft.
    if STRONG_PERMANENT.is_match(clip(text, 8 * 1024)) || subject_l.contains("permanent") {
        return judged(true, false, "the server calls the failure permanent");
    }
    if WARNING.is_match(clip(text, 8 * 1024)) {
        return judged(false, true, "a delay warning: the server is still trying");
    }
    if PERMANENT_WORDS.is_match(text) {
        judged(true, false, "wording of a permanent failure")
    } else if TEMPORARY_WORDS.is_match(text) {
        judged(false, false, "wording of a temporary failure")
    } else {
        judged(
            true,
            false,
            "a failure without a status: taken as permanent",
        )
    }
}

/// A non-standard bounce: from a mailer daemon, with a bounce subject, or opening with a
/// sentence mail servers bounce with.
pub fn nonstandard(
    msg: &Message<'_>,
    from: Option<&parse::Named>,
    subject: &str,
    body: &str,
    is_own: &dyn Fn(&EmailAddress) -> bool,
) -> Option<Found> {
    let mut evidence = Vec::new();
    let from_addr = from.map(|f| &f.email);
    let mut from_daemon = false;
    if let Some(f) = from
        && (is_daemon(&f.email) || daemon_name(f.name.as_deref()))
    {
        evidence.push(format!("From {}", f.email));
        from_daemon = true;
    }
    let subject_hit = BOUNCE_SUBJECT.is_match(clip(subject, 500));
    if subject_hit {
        evidence.push(format!("bounce subject \"{}\"", clip(subject, 80)));
    }
    // The sentences open the text: a short window keeps this scan cheap on every message.
    let head = clip(body, 400);
    let text_hit = BOUNCE_TEXT.find(head);
    if let Some(m) = &text_hit {
        evidence.push(format!(
            "bounce text \"{}\"",
            head.get(m.start()..m.end()).unwrap_or("")
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    let text = clip(body, 32 * 1024);
    // The bounce goes to the original sender: neither they nor the server failed.
    let bounce_to: Vec<EmailAddress> = parse::addresses(msg, "To")
        .into_iter()
        .map(|n| n.email)
        .collect();
    let skip = |a: &EmailAddress| {
        is_daemon(a) || is_own(a) || from_addr == Some(a) || bounce_to.contains(a)
    };
    let region = report_region(text);
    let segments = text_segments(region, &skip);
    // A delivery-status part outside a multipart/report (some servers wrap it in
    // multipart/mixed) still says exactly who failed and how.
    let blocks = msg
        .parts
        .iter()
        .skip(1)
        .take(64)
        .find(|p| {
            parse::content_type(p).is_some_and(|(c, _)| {
                c == "message/delivery-status" || c == "message/global-delivery-status"
            })
        })
        .and_then(|p| parse::part_text(p, 64 * 1024))
        .map(|t| parse_delivery_status(&t))
        .unwrap_or_default();
    let header = failed_from_header(msg);
    let judged = block_recipients(&blocks, &segments, region);
    let mut found = Found::default();
    let (how, base, why) = if let Some((b, _)) = judged.first() {
        let base = b.permanent();
        let mut recipients: Vec<FailedRecipient> = judged.into_iter().map(|(_, r)| r).collect();
        // X-Failed-Recipients names the failed recipient first.
        if let Some(i) = header
            .first()
            .and_then(|h| recipients.iter().position(|r| r.address == *h))
            && i > 0
        {
            let first = recipients.remove(i);
            recipients.insert(0, first);
        }
        found.first_of(recipients);
        let how = if header.is_empty() {
            "a delivery-status part"
        } else {
            "header X-Failed-Recipients"
        };
        (how, base, "the delivery-status part")
    } else {
        let j = permanence(subject, text);
        let (addresses, how) = if header.is_empty() {
            match recipient_in_text(msg, text, &skip) {
                Some((a, how)) => {
                    let mut all = vec![a];
                    all.extend(segments.iter().map(|(a, _)| a.clone()));
                    (all, how)
                }
                None => (Vec::new(), ""),
            }
        } else {
            (header, "header X-Failed-Recipients")
        };
        found.permanent = j.permanent;
        found.status.clone_from(&j.status);
        found.first_of(named_recipients(addresses, &segments, region, &j));
        (how, j.permanent, j.why)
    };
    if found.recipient.is_some() {
        evidence.push(format!("failed recipient from {how}"));
    }
    if let Some(s) = &found.status {
        evidence.push(format!("status {s} in the text"));
    }
    let original_id = original_message_id(msg, 0).or_else(|| {
        // qmail and friends paste the original headers into the text.
        MSGID_LINE
            .captures(clip(body, 64 * 1024))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
    });
    if !from_daemon && text_hit.is_none() {
        // A subject alone is weak ("Undeliverable parcels: need a tool" is an inquiry): ask
        // for a second sign that a mail server wrote this.
        let null_sender =
            parse::header(msg, "Return-Path").is_some_and(|r| matches!(r.trim(), "" | "<>"));
        let machine = parse::has_header(msg, "X-Failed-Recipients")
            || parse::has_header(msg, "Auto-Submitted")
            || null_sender;
        let stated = found.status.is_some() && found.recipient.is_some();
        if !(machine || stated || original_id.is_some()) {
            return None;
        }
    }
    if from_daemon && !subject_hit && text_hit.is_none() && found.recipient.is_none() {
        // postmaster@ also answers people ("Re: your question"); without any failure sign
        // this is not a bounce.
        return None;
    }
    evidence.push(if base { "hard: " } else { "soft: " }.to_owned() + why);
    // The evidence so far comes first, then what the recipients add.
    let added = std::mem::take(&mut found.evidence);
    found.evidence = evidence;
    found.evidence.extend(added);
    found.explain_first(base);
    found.original_id = original_id;
    Some(found)
}

/// Moves the first hard failure to the front, so it is the one [`Found::recipient`] names.
fn hard_first<T>(list: &mut Vec<T>, hard: impl Fn(&T) -> bool) {
    if let Some(i) = list.iter().position(hard)
        && i > 0
    {
        let first = list.remove(i);
        list.insert(0, first);
    }
}

/// A string field of a JSON object.
fn json_str<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

/// An Amazon SES bounce notification, as Amazon SNS mails it: SES's JSON notification
/// (`"notificationType": "Bounce"`, or `"eventType": "Bounce"` from an event destination),
/// alone or as the `Message` of SNS's own JSON envelope. Each of `bouncedRecipients` is a
/// failed recipient with its `status` and `diagnosticCode`; `bounceType` `Permanent` makes a
/// failure with no more precise reason hard, `Transient` and `Undetermined` soft.
pub fn ses_notification(body: &str) -> Option<Found> {
    let text = clip(body, 256 * 1024);
    // Every message is asked: a vectorised search, not `str::contains`.
    memchr::memmem::find(text.as_bytes(), b"bouncedRecipients")?;
    let start = text.find('{')?;
    let mut v: serde_json::Value = serde_json::Deserializer::from_str(text.get(start..)?)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    if let Some(inner) = json_str(&v, "Message") {
        v = serde_json::from_str(inner).ok()?;
    }
    let kind = json_str(&v, "notificationType").or_else(|| json_str(&v, "eventType"))?;
    if kind != "Bounce" {
        return None;
    }
    let b = v.get("bounce")?;
    let bounce_type = json_str(b, "bounceType").unwrap_or("Undetermined");
    let sub_type = json_str(b, "bounceSubType").unwrap_or("General");
    let base = bounce_type == "Permanent";
    // SES's sub-types, in the words the reasons know.
    let sub_words = match sub_type {
        "NoEmail" => "no such user",
        "MailboxFull" => "mailbox full",
        "MessageTooLarge" => "message too large",
        "ContentRejected" | "AttachmentRejected" => "content rejected",
        _ => "",
    };
    let mut recipients: Vec<FailedRecipient> = Vec::new();
    for r in b
        .get("bouncedRecipients")?
        .as_array()?
        .iter()
        .take(MAX_RECIPIENTS)
    {
        let Some(a) = json_str(r, "emailAddress")
            .and_then(|s| parse::emails_in(s).into_iter().next())
            .map(without_type_prefix)
        else {
            continue;
        };
        if recipients.iter().any(|x| x.address == a) {
            continue;
        }
        let status = json_str(r, "status")
            .and_then(|s| STATUS_CODE.find(s))
            .map(|m| m.as_str().to_owned());
        let diagnostic = json_str(r, "diagnosticCode").map(diagnostic_words);
        let delayed = json_str(r, "action").is_some_and(|a| a.eq_ignore_ascii_case("delayed"));
        let words = [diagnostic.unwrap_or_default(), sub_words];
        recipients.push(judge(a, status, base, delayed, diagnostic, &words));
    }
    hard_first(&mut recipients, |r| r.permanent);
    let mut found = Found {
        permanent: base,
        evidence: vec![format!(
            "Amazon SES bounce notification (bounceType {}, bounceSubType {})",
            clip(bounce_type, 40),
            clip(sub_type, 40)
        )],
        ..Found::default()
    };
    found.first_of(recipients);
    found.explain_first(base);
    let common = v.get("mail").and_then(|m| m.get("commonHeaders"));
    found.original_id = common
        .and_then(|c| json_str(c, "messageId"))
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty() && id.len() <= 500 && !id.contains(char::is_whitespace));
    Some(found)
}

/// The notices of the fml mailing-list manager when a list refused our message (we are not a
/// member, a loop, a duplicate): the list's address did not take it. Soft: the address
/// exists.
static FML_ERROR: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "not member",
            "not a member",
            "reject",
            "fml system error",
            "loop",
            "duplicated message-id",
            "security alert",
        ])
        .expect("static patterns")
});

/// A list's refusal from fml (`X-MLServer: fml`, from `LIST-admin@`): the failed recipient is
/// the list, as the pasted original addressed it (else as the notice names it, else the
/// admin address without `-admin`).
pub fn fml(
    msg: &Message<'_>,
    from: Option<&parse::Named>,
    subject: &str,
    body: &str,
) -> Option<Found> {
    let server = parse::header(msg, "X-MLServer")?;
    if !server.to_ascii_lowercase().contains("fml") {
        return None;
    }
    let admin = &from?.email;
    let local = admin.local_part();
    let list_name = local
        .len()
        .checked_sub("-admin".len())
        .and_then(|n| local.get(..n))
        .filter(|_| local.to_ascii_lowercase().ends_with("-admin"))?;
    let text = clip(body, 32 * 1024);
    let hit = FML_ERROR
        .find(clip(subject, 500))
        .map(|_| clip(subject, 200).to_owned())
        .or_else(|| {
            text.lines()
                .take(40)
                .find(|l| FML_ERROR.is_match(l))
                .map(str::to_owned)
        })?;
    let (notice, original) = match text.find("Original mail as follows:") {
        Some(i) => (text.get(..i).unwrap_or(text), text.get(i..).unwrap_or("")),
        None => (text, ""),
    };
    let list = original
        .lines()
        .take(60)
        .find(|l| l.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("to:")))
        .and_then(|l| parse::emails_in(l).into_iter().next())
        .or_else(|| {
            ANGLE_ADDRESS
                .captures(notice)
                .and_then(|c| c.get(1))
                .and_then(|m| EmailAddress::parse(m.as_str()).ok())
        })
        .or_else(|| EmailAddress::parse(&format!("{list_name}@{}", admin.domain())).ok())?;
    let diagnostic = notice
        .lines()
        .map(str::trim)
        .find(|l| FML_ERROR.is_match(l))
        .unwrap_or(&hit)
        .to_owned();
    let j = Judgement {
        permanent: false,
        status: None,
        delayed: false,
        why: "a mailing list refused the message",
    };
    let r = judge(
        list,
        None,
        j.permanent,
        false,
        Some(&diagnostic),
        &[&diagnostic, &hit],
    );
    let mut found = Found {
        evidence: vec![
            format!("fml mailing-list manager ({})", clip(server.trim(), 60)),
            format!("list refusal \"{}\"", clip(hit.trim(), 80)),
        ],
        ..Found::default()
    };
    found.first_of(vec![r]);
    found.explain_first(j.permanent);
    found.original_id = MSGID_LINE
        .captures(original)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned());
    Some(found)
}

/// An address in angle brackets.
static ANGLE_ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<([^<>\s]+@[^<>\s]+)>").expect("static regex"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_blocks() {
        let text = "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 1 Mar 2027 10:00:00 +0000\r\n\r\nFinal-Recipient: rfc822; JANE@example.org\r\nOriginal-Recipient: rfc822;jane@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <jane@example.org>:\r\n  Recipient address rejected\r\n\r\nFinal-Recipient: rfc822; bob@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n";
        let b = parse_delivery_status(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].recipient().unwrap().as_str(), "jane@example.org");
        assert!(b[0].permanent());
        assert_eq!(b[0].status.as_deref(), Some("5.1.1"));
        assert!(b[0].diagnostic.as_deref().unwrap().contains("rejected"));
        assert!(!b[1].permanent());
        assert_eq!(b[1].status.as_deref(), Some("4.4.1"));
    }

    #[test]
    fn permanence_from_words_codes_and_warnings() {
        let j = permanence("failure notice", "Sorry. (#5.1.1)");
        assert!(j.permanent);
        assert_eq!(j.status.as_deref(), Some("5.1.1"));
        // An IP address is not a status code.
        assert_eq!(
            permanence("", "host 10.4.5.6 said: User unknown").status,
            None
        );
        assert!(!permanence("", "452 4.2.2 Mailbox full").permanent);
        let warning = permanence("Warning: could not send message for past 4 hours", "550 x");
        assert!(!warning.permanent && warning.delayed);
        assert!(
            permanence(
                "",
                "The attached message had PERMANENT fatal errors. YOU DO NOT NEED TO RESEND"
            )
            .permanent
        );
        assert!(permanence("", "Delivery attempts will continue").delayed);
        assert!(!permanence("", "the mailbox is full").permanent);
        assert!(permanence("", "something went wrong").permanent);
    }

    #[test]
    fn ses_notifications_other_than_bounces_are_not_bounces() {
        let bounce = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"Jane <smtp=JANE@example.org>","action":"delayed"}]},"mail":{"commonHeaders":{"messageId":"<id 1@x>"}}}"#;
        let f = ses_notification(bounce).expect("a bounce");
        let r = &f.recipients[0];
        assert_eq!(r.address.as_str(), "jane@example.org");
        assert_eq!(r.action, BounceAction::Delayed);
        assert_eq!(r.reason, BounceReason::Temporary);
        assert!(!f.permanent);
        // A Message-ID with a space is no Message-ID.
        assert_eq!(f.original_id, None);
        for other in ["Complaint", "Delivery"] {
            let n = bounce.replace("\"Bounce\",", &format!("\"{other}\","));
            assert!(ses_notification(&n).is_none(), "{other}");
        }
        assert!(ses_notification("no JSON, just bouncedRecipients").is_none());
        assert!(ses_notification("{\"bouncedRecipients\": [").is_none());
    }

    #[test]
    fn report_regions_end_at_the_copy_of_the_original() {
        let text = "<a@x.example>: 550 5.1.1 user unknown\n\n--- Below this line is a copy of the message.\n\nTo: <b@y.example>\n";
        assert_eq!(
            report_region(text),
            "<a@x.example>: 550 5.1.1 user unknown\n\n"
        );
        let text = "x@y.example: 552 quota\nReturn-Path: <l@c.example>\n<b@y.example>\n";
        let segments = text_segments(report_region(text), &|_| false);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].0.as_str(), "x@y.example");
        // A header line of the report itself ("From: …") opens no recipient.
        let segments = text_segments(
            "From: Leads <l@c.example>\n\"q@r.example\":\nfull\n",
            &|_| false,
        );
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].1, "\"q@r.example\":\nfull\n");
    }

    #[test]
    fn non_rfc822_address_types_are_dropped() {
        let b =
            parse_delivery_status("Final-Recipient: x400; /C=US/\nAction: failed\nStatus: 5.0.0\n");
        assert_eq!(b.len(), 1);
        assert!(b[0].recipient().is_none());
    }
}
