//! Reports that are neither bounces nor people: read receipts (RFC 8098), abuse and DMARC
//! failure reports (ARF, RFC 5965 and RFC 7489 §7.3), DMARC aggregate reports (RFC 7489
//! §7.2) and SMTP TLS reports (RFC 8460). A report may carry a copy of our own message
//! (`message/rfc822`), so it is read here, before the forward stage could take it for a
//! forward.

use std::sync::LazyLock;

use mail_parser::{MessagePart, MimeHeaders};
use regex::Regex;

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::parse;

/// Parts of a message looked at, at most.
const MAX_PARTS: usize = 64;

/// The subject DMARC aggregate reports and TLS reports carry:
/// `Report Domain: example.com Submitter: google.com Report-ID: <…>`.
static REPORT_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\breport\s+domain\s*:\s*\S+.*\bsubmitter\s*:\s*\S+").expect("static regex")
});

/// The file name RFC 7489 §7.2.1.1 gives an aggregate report:
/// `receiver!policy-domain!begin!end[!unique].xml[.gz|.zip]` (or `.zip`).
static DMARC_FILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[^!\s]+![^!\s]+!\d+!\d+(![^.\s]*)?\.(xml(\.gz|\.zip)?|zip|gz)$")
        .expect("static regex")
});

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let msg = m.msg;
    let (ct, report) = parse::root(msg)
        .and_then(parse::content_type)
        .unwrap_or_default();
    let parts: Vec<(&MessagePart<'_>, String)> = msg
        .parts
        .iter()
        .take(MAX_PARTS)
        .filter_map(|p| parse::content_type(p).map(|(c, _)| (p, c)))
        .collect();
    let part_of = |want: &[&str]| parts.iter().find(|(_, c)| want.contains(&c.as_str()));
    let is_report = ct == "multipart/report";
    let report = report.as_deref().unwrap_or_default();

    // ARF: an abuse complaint, or a DMARC failure (forensic) report when the feedback type
    // says `auth-failure`.
    let feedback = part_of(&["message/feedback-report"]);
    if (is_report && report == "feedback-report") || feedback.is_some() {
        ev.push(if is_report && report == "feedback-report" {
            "multipart/report; report-type=feedback-report".into()
        } else {
            "message/feedback-report part".into()
        });
        let ftype = feedback
            .and_then(|(p, _)| parse::part_text(p, 16 * 1024))
            .and_then(|t| feedback_type(&t));
        if let Some(t) = &ftype {
            ev.push(format!("Feedback-Type: {t}"));
        }
        return Some(Decision::ignored(match ftype.as_deref() {
            Some("auth-failure") => "DMARC failure report (feedback-report, auth-failure)",
            _ => "abuse report (feedback-report)",
        }));
    }
    if (is_report && report == "disposition-notification")
        || part_of(&["message/disposition-notification"]).is_some()
    {
        ev.push(if is_report {
            "multipart/report; report-type=disposition-notification".into()
        } else {
            "message/disposition-notification part".into()
        });
        return Some(Decision::ignored("read receipt (disposition-notification)"));
    }
    let tls_part = part_of(&["application/tlsrpt+gzip", "application/tlsrpt+json"]);
    if (is_report && report == "tlsrpt")
        || tls_part.is_some()
        || parse::has_header(msg, "TLS-Report-Domain")
    {
        ev.push(match tls_part {
            Some((_, c)) => format!("{c} part"),
            None if is_report && report == "tlsrpt" => {
                "multipart/report; report-type=tlsrpt".into()
            }
            None => "header TLS-Report-Domain".into(),
        });
        return Some(Decision::ignored("TLS report (RFC 8460 TLS-RPT)"));
    }
    // DMARC aggregate: an XML report, zipped or gzipped, named as RFC 7489 says or sent with
    // its subject.
    let named = parts.iter().find_map(|(p, _)| {
        p.attachment_name()
            .map(str::trim)
            .filter(|n| DMARC_FILE.is_match(n))
    });
    let archive = part_of(&[
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-zip",
        "application/x-zip-compressed",
        "application/xml",
        "text/xml",
    ]);
    // A single-part report: the XML or the archive is the message itself.
    let root_archive = matches!(
        ct.as_str(),
        "application/zip"
            | "application/gzip"
            | "application/x-gzip"
            | "application/x-zip-compressed"
    );
    // The archive first: it is a lookup, the subject a regex search.
    let by_subject = (archive.is_some() || root_archive) && REPORT_SUBJECT.is_match(m.subject);
    if named.is_some() || by_subject {
        ev.push(match named {
            Some(n) => format!("DMARC report file {}", parse::clip(n, 100)),
            None => format!("subject \"{}\"", parse::clip(m.subject, 100)),
        });
        return Some(Decision::ignored("DMARC aggregate report"));
    }
    None
}

/// The `Feedback-Type` field of an ARF `message/feedback-report` part, lower case.
fn feedback_type(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("feedback-type")
            .then(|| value.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v.len() < 40)
    })
}
