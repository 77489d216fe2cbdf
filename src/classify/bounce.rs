//! Delivery failures: RFC 3464 delivery status notifications and the free-text bounces many
//! mail servers still send.
//!
//! The address that failed is what matters (it gets suppressed), so per-recipient blocks are
//! read rather than guessed from the bounce's own headers, which name the mail server.

use std::sync::LazyLock;

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

impl RecipientStatus {
    /// Hard unless the server says it is only delayed or gives a 4.x.x status without
    /// giving up.
    pub fn permanent(&self) -> bool {
        let action = self.action.as_deref().unwrap_or("");
        if action.eq_ignore_ascii_case("delayed") {
            return false;
        }
        if action.eq_ignore_ascii_case("failed") {
            return true;
        }
        self.status.as_deref().is_some_and(|s| s.starts_with('5'))
    }

    fn is_failure(&self) -> bool {
        let action = self.action.as_deref().unwrap_or("").to_ascii_lowercase();
        action == "failed"
            || action == "delayed"
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
    let (kind, addr) = value.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    EmailAddress::parse(addr.trim()).ok()
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
pub fn standard(msg: &Message<'_>) -> Option<Found> {
    let (ct, report) = parse::content_type(parse::root(msg)?)?;
    if ct != "multipart/report" || report.as_deref() != Some("delivery-status") {
        return None;
    }
    let mut found = Found {
        evidence: vec!["multipart/report; report-type=delivery-status".into()],
        permanent: true,
        ..Found::default()
    };
    let status_part = msg.parts.iter().take(64).find(|p| {
        parse::content_type(p).is_some_and(|(c, _)| {
            c == "message/delivery-status" || c == "message/global-delivery-status"
        })
    });
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
    found.original_id = original_message_id(msg, 0);
    Some(found)
}

static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|delivery status notification|mail delivery (?:failed|failure|subsystem)|returned mail|returned to sender|delivery failure|failure notice|delivery has failed|unzustellbar|nicht zustellbar|non remis|non distribuable|no se puede entregar|delivery (?:incomplete|delayed)|delayed mail|warning: message .* delayed",
    )
    .expect("static regex")
});

static SMTP_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s(:])([45][0-9][0-9])[\s-]").expect("static regex"));
static DELAY_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)delayed|will (?:continue to )?(?:retry|try)|not yet been delivered|temporar|verzögert|retard")
        .expect("static regex")
});
static ANGLE_FAILED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*<([^<>\s]+@[^<>\s]+)>:?").expect("static regex"));

fn failed_from_header(msg: &Message<'_>) -> Option<EmailAddress> {
    parse::header(msg, "X-Failed-Recipients").and_then(|v| parse::emails_in(&v).into_iter().next())
}

/// A non-standard bounce: from a mailer daemon or with a bounce subject.
pub fn nonstandard(
    msg: &Message<'_>,
    from: Option<&EmailAddress>,
    subject: &str,
    body: &str,
    is_own: &dyn Fn(&EmailAddress) -> bool,
) -> Option<Found> {
    let mut evidence = Vec::new();
    let mut from_daemon = false;
    if let Some(f) = from {
        let local = f.local_part();
        if local == "mailer-daemon" || local == "postmaster" {
            evidence.push(format!("From {f}"));
            from_daemon = true;
        }
    }
    if BOUNCE_SUBJECT.is_match(clip(subject, 500)) {
        evidence.push(format!("bounce subject \"{}\"", clip(subject, 80)));
    }
    if evidence.is_empty() {
        return None;
    }
    let text = clip(body, 32 * 1024);
    let daemon = |a: &EmailAddress| {
        let l = a.local_part();
        l == "mailer-daemon" || l == "postmaster" || is_own(a) || from == Some(a)
    };
    let recipient = failed_from_header(msg)
        .or_else(|| {
            ANGLE_FAILED
                .captures_iter(text)
                .filter_map(|c| c.get(1).and_then(|m| EmailAddress::parse(m.as_str()).ok()))
                .find(|a| !daemon(a))
        })
        .or_else(|| parse::emails_in(text).into_iter().find(|a| !daemon(a)));
    let status = STATUS_CODE
        .find(text)
        .map(|m| m.as_str().to_owned())
        .or_else(|| {
            SMTP_CODE
                .captures(text)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_owned())
        });
    let permanent = match status.as_deref() {
        Some(s) if s.starts_with('5') => true,
        Some(s) if s.starts_with('4') => false,
        _ => !DELAY_WORDS.is_match(text) && !DELAY_WORDS.is_match(subject),
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
    if !from_daemon {
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
    fn non_rfc822_address_types_are_dropped() {
        let b =
            parse_delivery_status("Final-Recipient: x400; /C=US/\nAction: failed\nStatus: 5.0.0\n");
        assert_eq!(b.len(), 1);
        assert!(b[0].recipient().is_none());
    }
}
