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
use crate::domain::EmailAddress;

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
    fn action(&self) -> Option<Action> {
        self.action.as_deref().and_then(Action::parse)
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

    fn is_failure(&self) -> bool {
        matches!(self.action(), Some(Action::Failed | Action::Delayed))
            || self
                .status
                .as_deref()
                .is_some_and(|s| s.starts_with('4') || s.starts_with('5'))
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
    EmailAddress::parse(addr.trim().trim_matches(['<', '>'])).ok()
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
    pub original_id: Option<String>,
    pub evidence: Vec<String>,
}

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

/// A standard DSN: `multipart/report; report-type=delivery-status`.
///
/// Also a `multipart/report` whose `report-type` is missing or misspelled but which holds a
/// delivery-status part, as some servers send.
pub fn standard(msg: &Message<'_>, body: &str) -> Option<Found> {
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
    let chosen = blocks
        .iter()
        .find(|b| b.is_failure() && b.permanent())
        .or_else(|| blocks.iter().find(|b| b.is_failure()))
        .or(blocks.first());
    if let Some(b) = chosen {
        found.recipient = b.recipient().cloned();
        found.permanent = b.permanent();
        found.status = b.status.clone();
        found.evidence.push(format!(
            "delivery-status: Action {}, Status {}",
            b.action.as_deref().unwrap_or("?"),
            b.status.as_deref().unwrap_or("?")
        ));
    } else {
        found
            .evidence
            .push("no per-recipient block in the report".into());
    }
    if found.recipient.is_none() {
        found.recipient = failed_from_header(msg);
    }
    if found.recipient.is_none() {
        let bounce_to: Vec<EmailAddress> = parse::addresses(msg, "To")
            .into_iter()
            .map(|n| n.email)
            .collect();
        let skip = |a: &EmailAddress| is_daemon(a) || bounce_to.contains(a);
        if let Some((a, how)) = recipient_in_text(msg, clip(body, 32 * 1024), &skip) {
            found.evidence.push(format!("failed recipient from {how}"));
            found.recipient = Some(a);
        }
    }
    if chosen.is_none() {
        let (permanent, status, why) = permanence("", clip(body, 32 * 1024));
        found.permanent = permanent;
        found.status = status;
        found.evidence.push(why.to_owned());
    }
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
    Regex::new(r"(?:^|[\s(:#\x27])([45][0-5][0-9])(?:[\s:)\x27-]|$)").expect("static regex")
});
static ANGLE_FAILED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*<([^<>\s]+@[^<>\s]+)>").expect("static regex"));

fn failed_from_header(msg: &Message<'_>) -> Option<EmailAddress> {
    parse::header(msg, "X-Failed-Recipients").and_then(|v| parse::emails_in(&v).into_iter().next())
}

/// Local parts and display names mail servers send bounces from.
fn is_daemon(a: &EmailAddress) -> bool {
    let l = a.local_part().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "mailer-daemon" | "postmaster" | "mdaemon" | "mail-daemon" | "maildaemon" | "mailerdaemon"
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
    for m in RECIPIENT_INTRO.find_iter(text).take(20) {
        let after = text.get(m.end()..).unwrap_or("");
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

/// Hard or soft from the text of a bounce, and the status code it states.
fn permanence(subject: &str, text: &str) -> (bool, Option<String>, &'static str) {
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
    let subject_l = clip(subject, 500).to_ascii_lowercase();
    if WARNING.is_match(&subject_l) || subject_l.contains("delay") || subject_l.contains("warning")
    {
        return (false, status, "a delay warning: the server is still trying");
    }
    match status.as_deref().and_then(|s| s.chars().next()) {
        Some('5') => return (true, status, "5xx status"),
        Some('4') => return (false, status, "4xx status"),
        _ => {}
    }
    // Without a status: a server that says "permanent" means it, even when it adds that the
    // message need not be resent; otherwise a warning's wording makes it soft.
    if STRONG_PERMANENT.is_match(clip(text, 8 * 1024)) || subject_l.contains("permanent") {
        return (true, status, "the server calls the failure permanent");
    }
    if WARNING.is_match(clip(text, 8 * 1024)) {
        return (false, status, "a delay warning: the server is still trying");
    }
    if PERMANENT_WORDS.is_match(text) {
        (true, status, "wording of a permanent failure")
    } else if TEMPORARY_WORDS.is_match(text) {
        (false, status, "wording of a temporary failure")
    } else {
        (
            true,
            status,
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
    // A delivery-status part outside a multipart/report (some servers wrap it in
    // multipart/mixed) still says exactly who failed and how.
    let block = msg
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
        .and_then(|blocks| {
            blocks
                .iter()
                .find(|b| b.is_failure() && b.recipient().is_some())
                .cloned()
        });
    let (recipient, how) = match (failed_from_header(msg), &block) {
        (Some(a), _) => (Some(a), "header X-Failed-Recipients"),
        (None, Some(b)) => (b.recipient().cloned(), "a delivery-status part"),
        (None, None) => match recipient_in_text(msg, text, &skip) {
            Some((a, how)) => (Some(a), how),
            None => (None, ""),
        },
    };
    if recipient.is_some() {
        evidence.push(format!("failed recipient from {how}"));
    }
    let (permanent, status, why) = match block.filter(|b| b.status.is_some()) {
        Some(b) => (b.permanent(), b.status.clone(), "the delivery-status part"),
        None => permanence(subject, text),
    };
    if let Some(s) = &status {
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
        let stated = status.is_some() && recipient.is_some();
        if !(machine || stated || original_id.is_some()) {
            return None;
        }
    }
    if from_daemon && !subject_hit && text_hit.is_none() && recipient.is_none() {
        // postmaster@ also answers people ("Re: your question"); without any failure sign
        // this is not a bounce.
        return None;
    }
    evidence.push(if permanent { "hard: " } else { "soft: " }.to_owned() + why);
    Some(Found {
        recipient,
        permanent,
        status,
        original_id,
        evidence,
    })
}

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
        let (hard, status, _) = permanence("failure notice", "Sorry. (#5.1.1)");
        assert!(hard);
        assert_eq!(status.as_deref(), Some("5.1.1"));
        // An IP address is not a status code.
        let (_, status, _) = permanence("", "host 10.4.5.6 said: User unknown");
        assert_eq!(status, None);
        assert!(!permanence("", "452 4.2.2 Mailbox full").0);
        assert!(!permanence("Warning: could not send message for past 4 hours", "550 x").0);
        assert!(
            permanence(
                "",
                "The attached message had PERMANENT fatal errors. YOU DO NOT NEED TO RESEND"
            )
            .0
        );
        assert!(!permanence("", "Delivery attempts will continue").0);
        assert!(!permanence("", "the mailbox is full").0);
        assert!(permanence("", "something went wrong").0);
    }

    #[test]
    fn non_rfc822_address_types_are_dropped() {
        let b =
            parse_delivery_status("Final-Recipient: x400; /C=US/\nAction: failed\nStatus: 5.0.0\n");
        assert_eq!(b.len(), 1);
        assert!(b[0].recipient().is_none());
    }
}
