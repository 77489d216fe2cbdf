//! Who a refusal is about: the recipient, this one message, or us.
//!
//! A permanent (5xx) reply is not by itself a verdict on the recipient. Postfix, with its
//! default `smtpd_delay_reject = yes`, reports refusals of the *client, sender or relay* at
//! `RCPT TO` (`554 5.7.1 <rcpt>: Recipient address rejected: Access denied` when AUTH is
//! missing; `553 5.7.1 <sender>: Sender address rejected: not owned by user`), and so do other
//! servers. Treating every 5xx at `RCPT` as a dead address suppressed every lead the moment a
//! password expired. So each refusal is judged by the stage it came at, its enhanced status
//! code (RFC 3463) and, where codes are shared, its text:
//!
//! | stage | reply | about | what happens |
//! |---|---|---|---|
//! | connect, TLS, EHLO, AUTH | any 5xx (530, 534, 535, 538, 554 greeting …) | us | sending pauses |
//! | any | 530, 535, 538; 5.7.0, 5.7.8, 5.7.9, 5.7.11, 5.7.14 (authentication) | us | sending pauses |
//! | any | sender/client/relay/HELO/blocklist text (`Sender address rejected`, `Relay access denied`, `Client host rejected` …) | us | sending pauses |
//! | `MAIL FROM` | 5.3.4 / 552 (message too big) | the message | it fails, the lead is untouched |
//! | `MAIL FROM` | any other 5xx | us | sending pauses |
//! | `RCPT TO` | 5.1.7, 5.1.8 (our sender address) | us | sending pauses |
//! | `RCPT TO` | 5.7.x with `access denied` | us | sending pauses |
//! | `RCPT TO` | 5.1.x, 5.2.1 (no such user, bad address, disabled) | the recipient | it fails, the lead is bounced and the address suppressed |
//! | `RCPT TO` | 5.2.2 (mailbox full), other 5.2.x | the recipient, for now | it fails, the lead is untouched |
//! | `RCPT TO` | 550/551/553 without an enhanced code, with "unknown / no such user / does not exist" text | the recipient | bounced and suppressed |
//! | `DATA`, end of data | any other 5xx (content, policy, spam) | the message | it fails, the lead is untouched |
//! | anything else | unclear | the message | it fails, the lead is untouched |
//!
//! Whatever is about us never touches a lead: the message goes back to waiting and sending
//! pauses until a person resumes it (`leadloop sending resume`). Refusals that are not about
//! us still trip the same breaker when several different recipients in a row get the same
//! reply (see `send/mod.rs`): a server that refuses everyone is refusing us.

use super::smtp::Stage;

/// Who a permanent refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The recipient's address. With `suppress`, the address is dead for good (the lead is
    /// bounced and suppressed); without, it may recover (a full mailbox) and only this message
    /// fails.
    Recipient {
        /// Whether the address is suppressed and the lead marked bounced.
        suppress: bool,
    },
    /// This message (size, content, the receiving site's policy): it fails, nothing else.
    Message,
    /// Us: our credentials, sender address, relay permission, client reputation or TLS
    /// policy. Every other message would meet the same refusal.
    Us {
        /// The likely fix, for the person reading the error.
        fix: &'static str,
    },
}

/// An enhanced status code (RFC 3463): class, subject, detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Enhanced {
    pub class: u16,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// The code at the start of a reply's text (`5.1.1 User unknown`), if there is one.
    pub(crate) fn parse(text: &str) -> Option<Enhanced> {
        let word = text.split_whitespace().next()?;
        let mut parts = word.split('.');
        let mut next = || -> Option<u16> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let (class, subject, detail) = (next()?, next()?, next()?);
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Enhanced {
            class,
            subject,
            detail,
        })
    }

    fn is(self, subject: u16, detail: u16) -> bool {
        self.subject == subject && self.detail == detail
    }
}

const AUTH_FIX: &str = "check [smtp] user and the password it reads: the server does not accept them (or requires AUTH and none is configured)";
const SENDER_FIX: &str = "check that the server lets this account send as the envelope sender ([smtp] envelope_from, or the [[sender]] address)";
const RELAY_FIX: &str = "the server does not relay for this client: configure AUTH in [smtp] (user and password) or allow this host on the server";
const CLIENT_FIX: &str = "the server refuses this client (its address, host name or reputation): check the server's client rules or use the relay you are allowed to use";
const TLS_FIX: &str =
    "the server requires encryption: set [smtp] tls = \"starttls\" or \"implicit\"";
const GREETING_FIX: &str = "the server refuses the connection itself: check [smtp] host and port";

/// Texts that name the client, the sender or the relay as the reason, whatever the code.
const ABOUT_US: &[(&str, &str)] = &[
    ("sender address rejected", SENDER_FIX),
    ("not owned by user", SENDER_FIX),
    ("sender not authorized", SENDER_FIX),
    ("sender not authorised", SENDER_FIX),
    ("not allowed to send as", SENDER_FIX),
    ("sendasdenied", SENDER_FIX),
    ("send as denied", SENDER_FIX),
    ("relay access denied", RELAY_FIX),
    ("relaying denied", RELAY_FIX),
    ("relay not permitted", RELAY_FIX),
    ("unable to relay", RELAY_FIX),
    ("relay denied", RELAY_FIX),
    ("authentication required", AUTH_FIX),
    ("must authenticate", AUTH_FIX),
    ("not authenticated", AUTH_FIX),
    ("authentication failed", AUTH_FIX),
    ("client host rejected", CLIENT_FIX),
    ("helo command rejected", CLIENT_FIX),
    ("blocked using", CLIENT_FIX),
    ("blocklist", CLIENT_FIX),
    ("blacklist", CLIENT_FIX),
    ("must issue a starttls", TLS_FIX),
    ("encryption required", TLS_FIX),
];

/// Texts that say the recipient does not exist, for servers that give no enhanced code.
const NO_SUCH_RECIPIENT: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such recipient",
    "unknown recipient",
    "invalid recipient",
    "recipient not found",
    "mailbox not found",
    "mailbox unavailable",
    "does not exist",
    "no mailbox",
    "address rejected",
];

/// Who a permanent refusal (`code` 5xx with `text`) at `stage` is about (module docs).
pub(crate) fn judge(stage: Stage, code: u16, text: &str) -> Fault {
    let enhanced = Enhanced::parse(text);
    let lower = text.to_ascii_lowercase();
    if stage == Stage::Connect {
        return Fault::Us {
            fix: match code {
                530 | 535 => AUTH_FIX,
                534 | 538 => TLS_FIX,
                _ => by_text(&lower).unwrap_or(GREETING_FIX),
            },
        };
    }
    if let Some(fix) = authentication(code, enhanced) {
        return Fault::Us { fix };
    }
    if let Some(fix) = by_text(&lower) {
        return Fault::Us { fix };
    }
    match stage {
        Stage::Mail => {
            if code == 552 || enhanced.is_some_and(|e| e.is(3, 4)) {
                Fault::Message
            } else {
                Fault::Us { fix: SENDER_FIX }
            }
        }
        Stage::Rcpt => recipient_stage(code, enhanced, &lower),
        _ => Fault::Message,
    }
}

/// Replies that mean our credentials (or their absence) are the problem.
fn authentication(code: u16, enhanced: Option<Enhanced>) -> Option<&'static str> {
    if matches!(code, 530 | 535 | 538) {
        return Some(if code == 538 { TLS_FIX } else { AUTH_FIX });
    }
    let e = enhanced?;
    match (e.subject, e.detail) {
        (7, 0 | 8 | 9 | 14) => Some(AUTH_FIX),
        (7, 11) => Some(TLS_FIX),
        _ => None,
    }
}

fn by_text(lower: &str) -> Option<&'static str> {
    ABOUT_US
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, fix)| *fix)
}

fn recipient_stage(code: u16, enhanced: Option<Enhanced>, lower: &str) -> Fault {
    match enhanced {
        Some(e) if e.subject == 1 && matches!(e.detail, 7 | 8) => Fault::Us { fix: SENDER_FIX },
        Some(e) if e.subject == 7 && lower.contains("access denied") => {
            Fault::Us { fix: RELAY_FIX }
        }
        Some(e) if e.subject == 1 => Fault::Recipient { suppress: true },
        Some(e) if e.is(2, 1) => Fault::Recipient { suppress: true },
        Some(e) if e.subject == 2 => Fault::Recipient { suppress: false },
        Some(_) => Fault::Message,
        None if code == 552 => Fault::Recipient { suppress: false },
        None if matches!(code, 550 | 551 | 553)
            && NO_SUCH_RECIPIENT.iter().any(|n| lower.contains(n)) =>
        {
            Fault::Recipient { suppress: true }
        }
        None => Fault::Message,
    }
}

/// What two refusals must share to count as "the same reply" for the breaker: the code and
/// the text with addresses and angle-bracketed parts taken out (servers name the recipient
/// in the text), lower-case, whitespace collapsed.
pub(crate) fn signature(code: u16, text: &str) -> String {
    let mut out = format!("{code}");
    let mut depth = 0u32;
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => cleaned.push(c),
            _ => {}
        }
    }
    for word in cleaned.split_whitespace() {
        if word.contains('@') {
            continue;
        }
        out.push(' ');
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(stage: Stage, code: u16, text: &str) -> bool {
        matches!(judge(stage, code, text), Fault::Us { .. })
    }

    #[test]
    fn postfix_refusals_of_the_client_sender_or_relay_at_rcpt_are_about_us() {
        for text in [
            "5.7.1 <ana@example.org>: Recipient address rejected: Access denied",
            "5.7.1 <leads@company.com>: Sender address rejected: not owned by user alice",
            "5.7.1 <leads@company.com>: Sender address rejected: Access denied",
            "5.7.1 <ana@example.org>: Relay access denied",
            "5.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]",
            "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.example",
            "5.1.8 <leads@company.com>: Sender address rejected: Domain not found",
            "5.1.7 Bad sender address syntax",
        ] {
            let code = if text.starts_with("5.1") { 553 } else { 554 };
            assert!(us(Stage::Rcpt, code, text), "{text}");
        }
    }

    #[test]
    fn authentication_and_greeting_refusals_are_about_us() {
        assert!(us(
            Stage::Connect,
            535,
            "5.7.8 Authentication credentials invalid"
        ));
        assert!(us(Stage::Connect, 554, "mx.example ESMTP not for you"));
        assert!(us(Stage::Mail, 530, "5.7.0 Authentication required"));
        assert!(us(Stage::Rcpt, 550, "5.7.0 Must issue a STARTTLS first"));
        assert!(us(Stage::Body, 550, "5.7.8 Authentication failed"));
        assert!(us(Stage::Mail, 553, "5.1.8 Sender domain not found"));
        assert!(us(Stage::Mail, 550, "Sender refused"));
        assert!(us(
            Stage::Body,
            554,
            "5.2.252 SendAsDenied; leads@company.com not allowed to send as hello@company.com"
        ));
    }

    #[test]
    fn a_dead_mailbox_is_about_the_recipient() {
        for (code, text) in [
            (
                550,
                "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
            ),
            (
                550,
                "5.1.1 The email account that you tried to reach does not exist",
            ),
            (553, "5.1.3 Bad recipient address syntax"),
            (550, "5.2.1 Mailbox disabled"),
            (550, "Requested action not taken: mailbox unavailable"),
            (550, "No such user here"),
        ] {
            assert_eq!(
                judge(Stage::Rcpt, code, text),
                Fault::Recipient { suppress: true },
                "{text}"
            );
        }
        assert_eq!(
            judge(Stage::Rcpt, 552, "5.2.2 Mailbox full"),
            Fault::Recipient { suppress: false }
        );
    }

    #[test]
    fn unclear_refusals_fail_the_message_and_nothing_else() {
        assert_eq!(
            judge(Stage::Body, 554, "5.7.1 Message rejected as spam"),
            Fault::Message
        );
        assert_eq!(
            judge(
                Stage::Rcpt,
                550,
                "5.7.1 Recipient mailbox refuses this message"
            ),
            Fault::Message
        );
        assert_eq!(
            judge(Stage::Rcpt, 554, "Transaction failed"),
            Fault::Message
        );
        assert_eq!(
            judge(Stage::Mail, 552, "5.3.4 Message size exceeds fixed limit"),
            Fault::Message
        );
        assert_eq!(judge(Stage::Data, 554, "5.6.0 Bad content"), Fault::Message);
    }

    #[test]
    fn enhanced_codes_are_parsed_strictly() {
        assert_eq!(
            Enhanced::parse("5.1.1 User unknown"),
            Some(Enhanced {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(
            Enhanced::parse("5.7.606 Access denied").unwrap().detail,
            606
        );
        for bad in [
            "",
            "User unknown",
            "5.1 x",
            "5.1.1.1 x",
            "6.1.1 x",
            "5.a.1 x",
            "5..1 x",
        ] {
            assert_eq!(Enhanced::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn signatures_ignore_the_addresses_a_server_names() {
        let a = signature(
            554,
            "5.7.1 <ana@example.org>: Recipient address rejected: Access denied",
        );
        let b = signature(
            554,
            "5.7.1 <bo@example.net>:  Recipient address REJECTED: Access denied",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            signature(
                550,
                "5.7.1 <ana@example.org>: Recipient address rejected: Access denied"
            )
        );
        assert_eq!(
            signature(550, "5.1.1 ana@example.org unknown"),
            signature(550, "5.1.1 bo@example.org unknown")
        );
    }
}
