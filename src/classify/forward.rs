//! Inquiries that a colleague forwarded to the monitored inbox.
//!
//! The lead is the person who wrote the original message, not the colleague, so the original
//! sender is dug out of an attached message or out of the forwarded block that mail clients
//! put into the body (each client and language labels it differently).

use std::sync::LazyLock;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

use super::parse::{self, MAX_NESTING, Named, clip};

/// What a forward says about the original message.
#[derive(Debug)]
pub struct Original {
    pub sender: Option<Named>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The attached message's Reply-To and text, for forwarded form notifications.
    pub reply_to: Option<Named>,
    pub body: Option<String>,
    pub evidence: String,
    /// The attached message is itself a report (a bounce, an abuse or DMARC report, a read
    /// receipt): its report type. Its own attachment is not read as the original.
    pub report: Option<String>,
}

/// The report type of a message that is a report: `multipart/report` (any report type), or a
/// message holding a feedback-report or delivery-status part.
fn report_type(msg: &Message<'_>) -> Option<String> {
    if let Some((ct, report)) = parse::root(msg).and_then(parse::content_type)
        && ct == "multipart/report"
    {
        return Some(report.unwrap_or_else(|| "unknown".into()));
    }
    msg.parts.iter().take(64).find_map(|p| {
        let (ct, _) = parse::content_type(p)?;
        ct.strip_prefix("message/")
            .filter(|t| {
                matches!(
                    *t,
                    "feedback-report" | "delivery-status" | "disposition-notification"
                )
            })
            .map(str::to_owned)
    })
}

/// What an attached message says about itself; `depth` counts the attachments around it.
fn original_of(inner: &Message<'_>, depth: usize, how: &str) -> Option<Original> {
    let report = report_type(inner);
    if report.is_none() {
        let deeper = attached(inner, depth + 1);
        if deeper.as_ref().is_some_and(|o| o.sender.is_some()) {
            return deeper;
        }
    }
    Some(Original {
        sender: parse::first_address(inner, "From"),
        subject: parse::subject(inner),
        message_id: parse::message_ids(inner, "Message-ID").into_iter().next(),
        reply_to: parse::first_address(inner, "Reply-To"),
        body: Some(parse::body_text(inner)),
        evidence: if depth == 0 {
            format!("attached {how}")
        } else {
            format!("attached {how} (nested {} deep)", depth + 1)
        },
        report,
    })
}

/// Attachments this large are documents, not forwarded mail; they are not parsed as messages.
const MAX_EML_ATTACHMENT: usize = 4 * 1024 * 1024;

/// The innermost attached message that has a sender: a forward of a forward names the
/// person who wrote first.
fn attached(msg: &Message<'_>, depth: usize) -> Option<Original> {
    if depth >= MAX_NESTING {
        return None;
    }
    // The root part is included: a message whose whole body is `message/rfc822` is a forward
    // too (some clients send it that way).
    for part in msg.parts.iter().take(64) {
        match &part.body {
            PartType::Message(inner) => return original_of(inner, depth, "message/rfc822"),
            // Some clients attach the saved message as a file (`Quote.eml`,
            // application/octet-stream) instead of as message/rfc822.
            PartType::Binary(b) | PartType::InlineBinary(b)
                if b.len() <= MAX_EML_ATTACHMENT
                    && part.attachment_name().is_some_and(|n| {
                        n.len() > 4
                            && n.get(n.len() - 4..)
                                .is_some_and(|e| e.eq_ignore_ascii_case(".eml"))
                    }) =>
            {
                if let Some(inner) = MessageParser::default().parse(b.as_ref())
                    && parse::root(&inner).is_some_and(|r| !r.headers.is_empty())
                    && parse::first_address(&inner, "From").is_some()
                {
                    return original_of(&inner, depth, ".eml file");
                }
            }
            _ => {}
        }
    }
    None
}

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[>\s]*(?:-{2,}\s*(?:forwarded message|original message|weitergeleitete nachricht|urspr[üu]ngliche nachricht|message transf[ée]r[ée]|message d'origine|mensaje reenviado|mensaje original|messaggio inoltrato|messaggio originale|doorgestuurd bericht|oorspronkelijk bericht|origineel bericht|mensagem encaminhada|mensagem reencaminhada|mensagem original)\s*-{2,}|begin forwarded message:?|anfang der weitergeleiteten nachricht:?|d[ée]but du message r[ée]exp[ée]di[ée]\s*:?|inicio del mensaje reenviado\s*:?|inizio messaggio inoltrato\s*:?|begin doorgestuurd bericht\s*:?|in[íi]cio da mensagem (?:reencaminhada|encaminhada)\s*:?|_{10,})\s*$",
    )
    .expect("static regex")
});

/// A cheap necessary condition for [`MARKER`], which is anchored at the line start: after any
/// quoting (`[>\s]*`; `\s` and `char::is_whitespace` are both Unicode White_Space), every
/// marker it knows starts with two dashes, two underscores, "begin", "anfang" or `d[ée]but`
/// (case-insensitively; none of these letters has a non-ASCII case variant other than `é`/`É`).
/// The check keeps the regex off the ordinary lines of every message, including the many that
/// merely start with an "a", "b" or "d".
fn may_be_marker(line: &str) -> bool {
    let t = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let b = t.as_bytes();
    let starts_ci = |p: &[u8]| b.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if t.starts_with("--")
        || t.starts_with("__")
        || [
            &b"begin"[..],
            b"anfang",
            b"inicio",
            b"inizio",
            b"in\xc3\xadcio",
        ]
        .iter()
        .any(|p| starts_ci(p))
    {
        return true;
    }
    let mut chars = t.chars();
    matches!(chars.next(), Some('d' | 'D'))
        && matches!(chars.next(), Some('e' | 'E' | 'é' | 'É'))
        && chars
            .as_str()
            .as_bytes()
            .get(..3)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"but"))
}

/// A cheap necessary condition for a [`HEADER_LINE`] match whose label is a "from" label
/// ([`is_from_label`]: from, von, de, da, van): after the quoting (`[>\s]*`) and an optional
/// `*`, the line starts with `f`, `v` or `d` in either case (no non-ASCII letter case-folds
/// to these). Outlook-style blocks are looked for on every line of a forward, so most lines
/// skip the capturing regex.
fn may_be_from_header(line: &str) -> bool {
    let t = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let t = t.strip_prefix('*').unwrap_or(t);
    t.starts_with(['f', 'F', 'v', 'V', 'd', 'D'])
}

/// Markers that only ever introduce a forward (a reply quotes with "Original Message" too).
static FORWARD_ONLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)forwarded|weitergeleitete|transf[ée]r[ée]|reenviado|inoltrato|r[ée]exp[ée]di[ée]|doorgestuurd|encaminhada",
    )
    .expect("static regex")
});

static FWD_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:\[[^\]]{0,40}\]\s*)?\[?(?:fwd?|wg|tr|rv|enc|i|doorst|vs|fs|vb|trs)\s*:")
        .expect("static regex")
});

static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[>\s]*\*?(from|von|de|da|van|date|sent|gesendet(?: am)?|datum|envoy[ée](?: le)?|enviad[oa](?: el)?|fecha|data|inviato|verzonden|subject|betreff|objet|sujet|asunto|assunto|oggetto|onderwerp|to|an|[àa]|aan|para|pour|cc|cci|bcc|kopie|reply-to|antwort an|r[ée]pondre [àa]|responder a|importance|wichtigkeit)\*?\s*:\s*(.*)$",
    )
    .expect("static regex")
});

/// Whether the subject carries a forward prefix (`Fwd:`, `WG:`, `TR:`, `RV:` …).
pub fn forward_subject(subject: &str) -> bool {
    FWD_SUBJECT.is_match(clip(subject, 200))
}

/// The original message of an inline forwarded block in `body`.
fn inline(body: &str, subject: &str) -> Option<Original> {
    let body = clip(body, parse::MAX_TEXT);
    let fwd_subject = forward_subject(subject);
    // Most bodies hold no forwarded block at all: they are read line by line once, and only
    // a body with a block is kept as lines, for the header block and the text below it.
    let first = parse::lines(body)
        .take(MAX_LINES)
        .position(|line| block_start(clip(line.trim(), 300), fwd_subject).is_some())?;
    let lines: Vec<&str> = parse::lines(body).take(MAX_LINES).collect();
    for (i, line) in lines.iter().enumerate().skip(first) {
        let t = clip(line.trim(), 300);
        let Some(marker) = block_start(t, fwd_subject) else {
            continue;
        };
        let bare_block = !marker;
        if marker && !FORWARD_ONLY.is_match(t) && !fwd_subject {
            // "-----Original Message-----" in a reply is quoting, not forwarding.
            continue;
        }
        let start = if bare_block { i } else { i + 1 };
        let mut sender = None;
        let mut orig_subject = None;
        let mut seen_header = false;
        let mut end = start;
        for (k, l) in lines.iter().enumerate().skip(start).take(20) {
            end = k + 1;
            let l = clip(l.trim(), 1000);
            if l.is_empty() || l == ">" {
                if seen_header {
                    break;
                }
                continue;
            }
            let Some(c) = HEADER_LINE.captures(l) else {
                if seen_header {
                    // Folded continuation of the previous header, or the end of the block.
                    continue;
                }
                break;
            };
            seen_header = true;
            let label = c.get(1).map_or("", |m| m.as_str()).to_lowercase();
            let value = c.get(2).map_or("", |m| m.as_str()).trim();
            if is_from_label(&label) && sender.is_none() {
                sender = parse::parse_name_addr(value);
            } else if matches!(
                label.as_str(),
                "subject"
                    | "betreff"
                    | "objet"
                    | "sujet"
                    | "asunto"
                    | "assunto"
                    | "oggetto"
                    | "onderwerp"
            ) && orig_subject.is_none()
            {
                orig_subject = Some(clip(value, 2000).to_owned());
            }
        }
        if !seen_header {
            continue;
        }
        let evidence = if marker {
            format!("inline forwarded block \"{}\"", clip(t, 60))
        } else {
            "inline Outlook-style forwarded header block".to_owned()
        };
        let rest = lines
            .get(end..)
            .unwrap_or_default()
            .iter()
            .map(|l| l.trim_start_matches(['>', ' ']))
            .collect::<Vec<_>>()
            .join("\n");
        return Some(Original {
            sender,
            subject: orig_subject,
            message_id: None,
            reply_to: None,
            body: Some(rest),
            evidence,
            report: None,
        });
    }
    None
}

/// Lines of a body the inline search reads at most.
const MAX_LINES: usize = 5000;

/// Whether the (trimmed, clipped) line opens a forwarded block: `Some(true)` for a marker line,
/// `Some(false)` for the first header of Outlook's block, which has no marker line and is
/// accepted only when the subject says this is a forward.
fn block_start(t: &str, fwd_subject: bool) -> Option<bool> {
    if may_be_marker(t) && MARKER.is_match(t) {
        return Some(true);
    }
    let bare_block = fwd_subject
        && may_be_from_header(t)
        && HEADER_LINE
            .captures(t)
            .and_then(|c| c.get(1))
            .is_some_and(|l| is_from_label(l.as_str()));
    bare_block.then_some(false)
}

fn is_from_label(label: &str) -> bool {
    matches!(
        label.to_lowercase().as_str(),
        "from" | "von" | "de" | "da" | "van"
    )
}

/// The forwarded original, from an attachment or the body.
pub fn find(msg: &Message<'_>, body: &str, subject: &str) -> Option<Original> {
    attached(msg, 0).or_else(|| inline(body, subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_block() {
        let body = "FYI\n\n---------- Forwarded message ---------\nFrom: Jane Doe <jane@example.org>\nDate: Mon, 1 Mar 2027 at 10:00\nSubject: Pricing\nTo: <bob@company.com>\n\nHello";
        let o = inline(body, "Fwd: Pricing").unwrap();
        assert_eq!(o.sender.unwrap().email.as_str(), "jane@example.org");
        assert_eq!(o.subject.as_deref(), Some("Pricing"));
    }

    #[test]
    fn german_outlook_block() {
        let body = "Bitte übernehmen.\n\nVon: Müller, Hans [mailto:hans@example.de]\nGesendet: Montag, 1. März 2027 10:00\nAn: Bob <bob@company.com>\nBetreff: Angebot\n\nHallo";
        let o = inline(body, "WG: Angebot").unwrap();
        let s = o.sender.unwrap();
        assert_eq!(s.email.as_str(), "hans@example.de");
        assert_eq!(s.name.as_deref(), Some("Müller, Hans"));
        assert_eq!(o.subject.as_deref(), Some("Angebot"));
    }

    #[test]
    fn reply_quoting_is_not_a_forward() {
        let body = "Thanks!\n\n-----Original Message-----\nFrom: leads@company.com\nSubject: Hi\n";
        assert!(inline(body, "RE: Hi").is_none());
    }
}
