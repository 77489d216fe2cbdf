//! Why a recipient failed, and whether that makes the failure hard: a small fixed vocabulary
//! ([`BounceReason`]) in the spirit of RFC 3463's classes, decided from the enhanced status
//! code, the SMTP reply code and the server's own words.
//!
//! The words decide first: a generic code (`5.0.0`, `550`, `5.7.1`) says little, and servers
//! put the specific reason in their text ("552 5.2.2 mailbox unavailable: over quota" is a
//! full mailbox, "550 5.7.1 No such user" an unknown one). Then the code's subject and detail
//! (RFC 3463 §3), then its class. A temporary (4.x.x) failure is never `user_unknown`,
//! `host_unknown`, `policy` or `other`: the server has not said anything for good.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::Regex;

use super::parse::clip;
use crate::domain::BounceReason;

/// Bytes of a diagnostic that are read for its reason.
const TEXT_MAX: usize = 4 * 1024;

fn words(patterns: &[&str]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build(patterns)
        .expect("static patterns")
}

static MAILBOX_FULL: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "mailbox full",
        "mailbox is full",
        "mailbox_full",
        "mailboxfull",
        "full mailbox",
        "inbox is full",
        "account is full",
        "quota",
        "exceeded storage",
        "storage allocation",
        "storage limit",
        "storage space",
        "out of storage",
        "mailbox size limit",
        "mailbox has exceeded",
        "mailbox exceeded",
        "boîte aux lettres pleine",
        "boite aux lettres pleine",
        "boîte pleine",
        "postfach voll",
        "postfach ist voll",
        "speicherplatz",
        "buzón lleno",
        "buzon lleno",
        "casella piena",
        "mailbox vol",
    ])
});

static TOO_LARGE: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "too large",
        "too big",
        "message size exceeds",
        "size exceeds",
        "exceeds size limit",
        "exceeds the maximum size",
        "exceeds the size limit",
        "message length exceeds",
        "size limit",
        "maximum message size",
        "larger than the maximum",
        "larger than allowed",
        "message is larger than",
        "messagetoolarge",
    ])
});

static HOST_UNKNOWN: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "host not found",
        "host unknown",
        "unknown host",
        "host or domain name not found",
        "domain name not found",
        "domain not found",
        "no such domain",
        "unknown domain",
        "domain does not exist",
        "domain doesn't exist",
        "domain is not valid",
        "invalid domain",
        "name service error",
        "nxdomain",
        "no mx record",
        "no mx for",
        "null mx",
        "host lookup failed",
        "address lookups failed",
        "unrouteable mail domain",
        "unroutable mail domain",
        "unrouteable address",
        "unroutable address",
        "dns error: domain",
        "domain name service error",
        "name or service not known",
        "domaine inexistant",
        "domain existiert nicht",
        "dominio inexistente",
    ])
});

static USER_UNKNOWN: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "user unknown",
        "unknown user",
        "unknown or illegal alias",
        "no such user",
        "no such recipient",
        "no such mailbox",
        "no such person",
        "no such account",
        "no mailbox here",
        "mailbox not found",
        "mailbox unavailable",
        "mailbox does not exist",
        "mailbox doesn't exist",
        "mailbox is unavailable",
        "is unavailable: user not found",
        "invalid mailbox",
        "invalid recipient",
        "invalid address",
        "recipient unknown",
        "unknown recipient",
        "recipient not found",
        "recipientnotfound",
        "recipnotfound",
        "user not found",
        "user doesn't exist",
        "user does not exist",
        "user doesn't have a",
        "address not found",
        "address couldn't be found",
        "address could not be found",
        "address does not exist",
        "address doesn't exist",
        "account does not exist",
        "account doesn't exist",
        "does not exist",
        "doesn't exist",
        "not listed in",
        "no longer available",
        "no longer in use",
        "no longer active",
        "is no longer valid",
        "account has been disabled",
        "account is disabled",
        "account disabled",
        "account that you tried to reach is disabled",
        "account is inactive",
        "account has been deactivated",
        "account has been suspended",
        "bad destination mailbox",
        "as(201806281)",
        "unbekannt",
        "existiert nicht",
        "inconnu",
        "n'existe pas",
        "desconocido",
        "no existe",
        "sconosciuto",
        "non esiste",
        "onbekend",
        "bestaat niet",
        "not our customer",
        "no account by that name",
    ])
});

/// Names of block lists and reputation services: a refusal that names one is a block, even
/// when the list's name contains "spam".
static BLOCKLIST: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "spamhaus",
        "spamcop",
        "barracuda",
        "sorbs",
        "blacklist",
        "black list",
        "blocklist",
        "block list",
        "denylist",
        "deny list",
        "dnsbl",
        "rbl:",
        " rbl ",
        "(rbl",
        "listed at",
        "listed on",
        "listed in",
        "reputation",
    ])
});

/// Refusals for failed sender authentication: a policy, even when the text adds that it
/// protects from spam.
static AUTHENTICATION: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "dmarc",
        "spf",
        "dkim",
        "unauthenticated",
        "authentication checks",
        "authentication required",
        "authentication information",
    ])
});

static SPAM: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "spam",
        "junk",
        "unsolicited",
        "bulk mail",
        "phish",
        "content filter",
        "content rejected",
        "message content",
        "suspicious",
    ])
});

static RATE: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "rate limit",
        "rate-limit",
        "ratelimit",
        "rate exceeded",
        "rate that prevents",
        "receiving mail at a rate",
        "too many",
        "throttl",
        "slow down",
        "sending rate",
        "unexpected volume",
        "connection limit",
        "exceeded the maximum number",
    ])
});

static EXPIRED: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "expired",
        "retry timeout exceeded",
        "in the queue too long",
        "in queue too long",
        "too long in the queue",
        "queue lifetime",
        "could not be delivered within",
        "maximum time",
        "delivery time exceeded",
        "host not reachable",
    ])
});

static BLOCKED: LazyLock<AhoCorasick> =
    LazyLock::new(|| words(&["blocked", "banned", "bloqué", "blockiert", "bloqueado"]));

static POLICY: LazyLock<AhoCorasick> = LazyLock::new(|| {
    words(&[
        "policy",
        "not authorized",
        "unauthorized",
        "not allowed",
        "not permitted",
        "prohibited",
        "relay access denied",
        "relaying denied",
        "relay not permitted",
        "access denied",
        "sender address rejected",
        "sender denied",
        "sender rejected",
        "reverse dns",
        "ptr record",
        "starttls",
        "virus",
        "malware",
        "infected",
        "forbidden",
        "not a member",
        "not member",
        "only members",
        "members only",
    ])
});

/// An enhanced status code (`5.1.1`) that is not part of an IP address or version number.
static ENHANCED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9.])([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:[^0-9.]|\.[^0-9]|\.?$)")
        .expect("static regex")
});
static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s(:#\x27;])([45])[0-5][0-9](?:[\s:)\x27-]|$)").expect("static regex")
});
static STATUS_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})$").expect("static regex"));

/// An enhanced status code: class, subject, detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Enhanced(u8, u16, u16);

fn enhanced_of(c: &regex::Captures<'_>) -> Option<Enhanced> {
    Some(Enhanced(
        c.get(1)?.as_str().parse().ok()?,
        c.get(2)?.as_str().parse().ok()?,
        c.get(3)?.as_str().parse().ok()?,
    ))
}

/// The codes a recipient's status and text state: the enhanced code (the status's own,
/// unless it is an uninformative `X.0.0` and the text states a more precise one of the same
/// class) and the SMTP reply code's class (`550` → 5).
fn codes(status: Option<&str>, text: &str) -> (Option<Enhanced>, Option<u8>) {
    let status = status.map(str::trim).unwrap_or_default();
    let stated = STATUS_ONLY.captures(status).and_then(|c| enhanced_of(&c));
    let in_text = ENHANCED
        .captures_iter(text)
        .take(8)
        .filter_map(|c| enhanced_of(&c))
        .find(|e| stated.is_none_or(|s| s.0 == e.0));
    let enhanced = match stated {
        Some(s) if (s.1, s.2) == (0, 0) => in_text.filter(|e| (e.1, e.2) != (0, 0)).or(stated),
        Some(s) => Some(s),
        None => in_text,
    };
    let reply = status
        .get(..1)
        .filter(|_| status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            REPLY
                .captures(text)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse().ok())
        });
    (enhanced, reply)
}

/// The reason for one failed recipient, from its status (enhanced or SMTP reply code, when
/// stated) and the server's text about it. `delayed`: the server is still trying.
pub fn reason(status: Option<&str>, text: &str, delayed: bool) -> BounceReason {
    let text = clip(text, TEXT_MAX);
    let (enhanced, reply) = codes(status, text);
    let class = enhanced.map(|e| e.0).or(reply);
    let temporary = class == Some(4) || (class.is_none() && delayed);
    let by_words = [
        (&*MAILBOX_FULL, BounceReason::MailboxFull),
        (&*TOO_LARGE, BounceReason::TooLarge),
        (&*HOST_UNKNOWN, BounceReason::HostUnknown),
        (&*USER_UNKNOWN, BounceReason::UserUnknown),
        (&*BLOCKLIST, BounceReason::Blocked),
        (&*AUTHENTICATION, BounceReason::Policy),
        (&*SPAM, BounceReason::SpamRejected),
        (&*RATE, BounceReason::RateLimited),
        (&*EXPIRED, BounceReason::Expired),
        (&*BLOCKED, BounceReason::Blocked),
        (&*POLICY, BounceReason::Policy),
    ]
    .into_iter()
    .find(|(w, _)| w.is_match(text))
    .map(|(_, r)| r);
    let said_for_good = |r: BounceReason| {
        matches!(
            r,
            BounceReason::UserUnknown
                | BounceReason::HostUnknown
                | BounceReason::Policy
                | BounceReason::Other
        )
    };
    if let Some(r) = by_words.filter(|r| !(temporary && said_for_good(*r))) {
        return r;
    }
    let by_code = match enhanced {
        Some(Enhanced(_, 2, 2)) => Some(BounceReason::MailboxFull),
        Some(Enhanced(_, 2, 3) | Enhanced(_, 3, 4)) => Some(BounceReason::TooLarge),
        Some(Enhanced(_, 4, 7)) => Some(BounceReason::Expired),
        Some(Enhanced(4, 7, _)) => None,
        Some(Enhanced(5, 1, 1 | 3 | 6 | 10)) => Some(BounceReason::UserUnknown),
        Some(Enhanced(5, 1, 2) | Enhanced(5, 4, 4)) => Some(BounceReason::HostUnknown),
        // Our own sender's address, not the recipient's.
        Some(Enhanced(5, 1, 7 | 8)) => Some(BounceReason::Policy),
        Some(Enhanced(5, 7, _)) => Some(BounceReason::Policy),
        _ => None,
    };
    if let Some(r) = by_code {
        return r;
    }
    if enhanced.is_none() && status.is_some_and(|s| s.trim() == "552") {
        // RFC 5321: "exceeded storage allocation".
        return BounceReason::MailboxFull;
    }
    if temporary {
        BounceReason::Temporary
    } else {
        BounceReason::Other
    }
}

/// Hard or soft: the reason decides ([`BounceReason::hard`]), else `base` (the status class,
/// or the server's wording without one). A delay is never hard.
pub fn permanent(reason: BounceReason, base: bool, delayed: bool) -> bool {
    !delayed && reason.hard().unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BounceReason::*;

    fn r(status: &str, text: &str) -> BounceReason {
        reason((!status.is_empty()).then_some(status), text, false)
    }

    #[test]
    fn codes_decide_without_words() {
        assert_eq!(r("5.1.1", ""), UserUnknown);
        assert_eq!(r("5.1.10", ""), UserUnknown);
        assert_eq!(r("5.1.2", ""), HostUnknown);
        assert_eq!(r("5.4.4", ""), HostUnknown);
        assert_eq!(r("5.2.2", ""), MailboxFull);
        assert_eq!(r("4.2.2", ""), MailboxFull);
        assert_eq!(r("5.3.4", ""), TooLarge);
        assert_eq!(r("5.2.3", ""), TooLarge);
        assert_eq!(r("4.4.7", ""), Expired);
        assert_eq!(r("5.7.1", ""), Policy);
        assert_eq!(r("5.1.8", ""), Policy);
        assert_eq!(r("4.4.1", ""), Temporary);
        assert_eq!(r("4.7.1", ""), Temporary);
        assert_eq!(r("5.2.1", ""), Other);
        assert_eq!(r("5.0.0", ""), Other);
        assert_eq!(r("554", ""), Other);
        assert_eq!(r("552", ""), MailboxFull);
        assert_eq!(r("421", ""), Temporary);
        assert_eq!(r("", ""), Other);
        assert_eq!(reason(None, "", true), Temporary);
    }

    #[test]
    fn words_decide_before_generic_codes() {
        assert_eq!(
            r("5.0.0", "550 5.1.1 <a@b.example>: user unknown"),
            UserUnknown
        );
        assert_eq!(r("5.7.1", "550 5.7.1 No such user!"), UserUnknown);
        assert_eq!(
            r("5.2.2", "552 5.2.2 mailbox unavailable: over quota"),
            MailboxFull
        );
        assert_eq!(
            r(
                "5.7.1",
                "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
            ),
            Blocked
        );
        assert_eq!(
            r(
                "5.7.1",
                "550-5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked."
            ),
            SpamRejected
        );
        assert_eq!(
            r(
                "5.7.26",
                "550 5.7.26 This message does not pass authentication checks (SPF and DKIM both do not pass). To best protect our users from spam, the message has been blocked."
            ),
            Policy
        );
        assert_eq!(
            r("5.7.1", "554 5.7.1 <x@y.example>: Relay access denied"),
            Policy
        );
        assert_eq!(
            r(
                "4.7.0",
                "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints"
            ),
            RateLimited
        );
        assert_eq!(
            r(
                "5.4.1",
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
            ),
            UserUnknown
        );
        assert_eq!(
            r("", "Sorry, no mailbox here by that name. (#5.1.1)"),
            UserUnknown
        );
        assert_eq!(r("", "DNS Error: Domain name not found"), HostUnknown);
        assert_eq!(
            r("5.3.4", "552 5.3.4 Message size exceeds fixed limit"),
            TooLarge
        );
        assert_eq!(r("", "Delivery time expired"), Expired);
        assert_eq!(
            r("", "550 Requested action not taken: mailbox unavailable"),
            UserUnknown
        );
        assert_eq!(r("", "the mailbox is full"), MailboxFull);
        // "not listed in" (Domino's unknown user) is no block list.
        assert_eq!(
            r("", "User xyz not listed in Domino Directory"),
            UserUnknown
        );
    }

    #[test]
    fn a_temporary_failure_is_never_said_for_good() {
        assert_eq!(
            r(
                "4.1.1",
                "450 4.1.1 <a@b.example>: Recipient address rejected: unverified address: user unknown"
            ),
            Temporary
        );
        assert_eq!(
            r("4.7.1", "450 4.7.1 Client host rejected: policy"),
            Temporary
        );
        assert_eq!(reason(None, "no such user", true), Temporary);
        assert_eq!(r("4.2.2", "452 4.2.2 Mailbox full"), MailboxFull);
        // A uninformative X.0.0 takes the text's code of the same class.
        assert_eq!(r("4.0.0", "451 4.4.7 gave up"), Expired);
        assert_eq!(r("5.0.0", "see 4.2.2"), Other);
    }

    #[test]
    fn hard_is_only_for_addresses_that_do_not_exist() {
        assert!(permanent(UserUnknown, false, false));
        assert!(permanent(HostUnknown, false, false));
        assert!(!permanent(UserUnknown, true, true));
        for soft in [
            MailboxFull,
            Blocked,
            SpamRejected,
            Policy,
            Expired,
            RateLimited,
            TooLarge,
            Temporary,
        ] {
            assert!(!permanent(soft, true, false), "{soft}");
        }
        assert!(permanent(Other, true, false));
        assert!(!permanent(Other, false, false));
    }
}
