//! Automatic answers (RFC 3834 and the vacation-mail conventions that predate it).
//!
//! An auto-reply must never stop a sequence or become a lead, but its return date lets the
//! scheduler delay the next step, so it is read when stated.

use std::sync::LazyLock;

use mail_parser::Message;
use regex::Regex;

use super::parse::{self, clip};

static OOO_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:\[[^\]]{0,40}\]\s*)?(?:out of (?:the )?office|ooo\b|automatic reply|auto(?:matic)?[ -]?reply|autoreply|auto:|auto-response|automatische antwort|abwesenheitsnotiz|r[ée]ponse automatique|absen(?:t|ce) du bureau|respuesta autom[áa]tica|fuera de la oficina|risposta automatica|on vacation|away from the office)",
    )
    .expect("static regex")
});

/// Whether the subject reads like an out-of-office notice.
pub fn ooo_subject(subject: &str) -> bool {
    OOO_SUBJECT.is_match(clip(subject, 300))
}

/// Which auto-reply signals the message carries, as evidence strings; empty if none.
///
/// `Auto-Submitted: auto-generated` is reported separately (second value) because form
/// notification systems set it too, and a form must not be lost as an auto-reply.
pub fn signals(msg: &Message<'_>, subject: &str) -> (Vec<String>, bool) {
    let mut ev = Vec::new();
    let mut generated_only = false;
    if let Some(v) = parse::header(msg, "Auto-Submitted") {
        let v = clip(v.trim(), 80).to_ascii_lowercase();
        let token = v.split([';', ' ']).next().unwrap_or("").to_owned();
        if !token.is_empty() && token != "no" {
            ev.push(format!("header Auto-Submitted: {token}"));
            generated_only = token == "auto-generated";
        }
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if parse::has_header(msg, name) {
            ev.push(format!("header {name}"));
            generated_only = false;
        }
    }
    if let Some(p) = parse::header(msg, "Precedence")
        && p.trim().eq_ignore_ascii_case("auto_reply")
    {
        ev.push("header Precedence: auto_reply".into());
        generated_only = false;
    }
    let ooo = ooo_subject(subject);
    if parse::has_header(msg, "X-Auto-Response-Suppress") && ooo {
        ev.push("header X-Auto-Response-Suppress with an out-of-office subject".into());
        generated_only = false;
    } else if ooo {
        ev.push(format!("out-of-office subject \"{}\"", clip(subject, 80)));
        generated_only = false;
    }
    (ev, generated_only)
}
