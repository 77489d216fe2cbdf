//! Automatic answers (RFC 3834 and the vacation-mail conventions that predate it).
//!
//! An auto-reply must never stop a sequence or become a lead, but its return date lets the
//! scheduler delay the next step, so it is read when stated.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use mail_parser::Message;
use regex::Regex;

use super::parse::{self, clip};

static OOO_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:\[[^\]]{0,40}\]\s*)?(?:out of (?:the )?office|ooo\b|automatic reply|auto(?:matic)?[ -]?reply|autoreply|auto:|auto-response|automatic response|automatische antwort|abwesenheit|abwesend|au(?:ß|ss)er haus|r[ée]ponse automatique|absen(?:t|te|ce) du bureau|respuesta autom[áa]tica|fuera de la oficina|risposta automatica|fuori ufficio|automatisch antwoord|afwezig|resposta autom[áa]tica|fora do escrit[óo]rio|on vacation|on holiday|on leave|away from the office|vacation reply|je suis absent|autosvar|automaattinen vastaus|automatyczna odpowied|automatick[áa] odpov|otomatik yan[ıi]t|autoresponder)",
    )
    .expect("static regex")
});

/// Whether the subject reads like an out-of-office notice.
pub fn ooo_subject(subject: &str) -> bool {
    OOO_SUBJECT.is_match(clip(subject, 300))
}

/// The headers [`signals`] reads on every message.
const SIGNAL_HEADERS: [&str; 10] = [
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponder",
    "Precedence",
    "X-Vacation",
    "X-Auto-Reply",
    "X-Autoreply-From",
    "X-Precedence",
    "X-Auto-Response-Suppress",
];

/// Which auto-reply signals the message carries, as evidence strings; empty if none.
///
/// `Auto-Submitted: auto-generated` is reported separately (second value) because form
/// notification systems set it too, and a form must not be lost as an auto-reply.
///
/// A notice without any auto-reply header counts when its body opens with an out-of-office
/// phrase, what the sender wrote is short, and it answers a message or says when the person
/// is back, so that "I'll be out of the office next week, please send the offer" from a new
/// contact stays an inquiry. `details` gives the length of the sender's new text and whether
/// it states a return date; it is only asked when the opening matches.
pub fn signals(
    msg: &Message<'_>,
    subject: &str,
    body: &str,
    details: &dyn Fn() -> (usize, bool),
) -> (Vec<String>, bool) {
    let mut ev = Vec::new();
    let mut generated_only = false;
    // Which of the signal headers are there, from one look at the header names: most mail has
    // none of them, and asking for each by name would read every header ten times.
    let mut present = [false; SIGNAL_HEADERS.len()];
    for n in parse::header_names(msg) {
        for (seen, name) in present.iter_mut().zip(SIGNAL_HEADERS) {
            *seen |= n.eq_ignore_ascii_case(name);
        }
    }
    // Only ever asked about the names in the list.
    let has = |name: &str| {
        SIGNAL_HEADERS
            .iter()
            .zip(present)
            .any(|(n, seen)| seen && *n == name)
    };
    let header = |name: &str| has(name).then(|| parse::header(msg, name)).flatten();
    if let Some(v) = header("Auto-Submitted") {
        let v = clip(v.trim(), 80).to_ascii_lowercase();
        let token = v.split([';', ' ']).next().unwrap_or("").to_owned();
        if !token.is_empty() && token != "no" {
            ev.push(format!("header Auto-Submitted: {token}"));
            generated_only = token == "auto-generated";
        }
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if has(name) {
            ev.push(format!("header {name}"));
            generated_only = false;
        }
    }
    if let Some(p) = header("Precedence")
        && p.trim().eq_ignore_ascii_case("auto_reply")
    {
        ev.push("header Precedence: auto_reply".into());
        generated_only = false;
    }
    for name in ["X-Vacation", "X-Auto-Reply", "X-Autoreply-From"] {
        if has(name) {
            ev.push(format!("header {name}"));
            generated_only = false;
        }
    }
    if let Some(p) = header("X-Precedence")
        && p.trim().eq_ignore_ascii_case("auto_reply")
    {
        ev.push("header X-Precedence: auto_reply".into());
        generated_only = false;
    }
    let ooo = ooo_subject(subject);
    if has("X-Auto-Response-Suppress") && ooo {
        ev.push("header X-Auto-Response-Suppress with an out-of-office subject".into());
        generated_only = false;
    } else if ooo {
        ev.push(format!("out-of-office subject \"{}\"", clip(subject, 80)));
        generated_only = false;
    }
    if ev.is_empty() && ooo_opening(body) {
        let (text_len, returns) = details();
        let exchange_rule = parse::has_header(msg, "X-MS-Exchange-Inbox-Rules-Loop")
            || parse::has_header(msg, "X-Auto-Response-Suppress");
        let replying = parse::has_header(msg, "In-Reply-To")
            || parse::has_header(msg, "References")
            || REPLY_SUBJECT.is_match(clip(subject, 100));
        // A person answering may mention an absence too ("I'm out next week, but yes, let's
        // talk"): a reply without auto-reply headers counts only with what notices say and
        // letters do not: a return date, or a pointer to someone else or to limited access.
        let notice = returns || OOO_NOTICE.is_match(clip(body, OOO_TEXT_MAX));
        if text_len <= OOO_TEXT_MAX && (exchange_rule || returns || (replying && notice)) {
            let head = clip(body, OOO_TEXT_WINDOW);
            let phrase = OOO_TEXT
                .find(head)
                .and_then(|m| head.get(m.start()..m.end()))
                .unwrap_or("");
            ev.push(if exchange_rule {
                format!("Exchange rule headers with an out-of-office text \"{phrase}\"")
            } else {
                format!("out-of-office text \"{phrase}\"")
            });
        }
    }
    (ev, generated_only)
}

/// How far into the body an out-of-office sentence is looked for: it opens the message.
const OOO_TEXT_WINDOW: usize = 400;

/// Longest new text that can be a bare out-of-office notice; longer texts are letters.
const OOO_TEXT_MAX: usize = 1500;

/// Phrases that open out-of-office notices, ASCII-case-insensitively (accented letters are
/// matched as written, in lower case, which is how they appear inside a sentence).
static OOO_TEXT: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "out of the office",
            "out of office",
            "away from the office",
            "away from my desk",
            "i am currently away",
            "i am away",
            "i'm away",
            "i’m away",
            "i'm currently away",
            "i am currently out",
            "i am out",
            "i'm out",
            "i’m out",
            "i will be out",
            "i'll be out",
            "i will be away",
            "i'll be away",
            "i am on leave",
            "i'm on leave",
            "on annual leave",
            "on parental leave",
            "on maternity leave",
            "on paternity leave",
            "on sick leave",
            "i am on vacation",
            "i'm on vacation",
            "i am on holiday",
            "i'm on holiday",
            "this is an automatic reply",
            "this is an automatic response",
            "this is an automated response",
            "limited access to email",
            "limited access to my email",
            "limited access to e-mail",
            "no access to email",
            "no access to my email",
            "without access to email",
            "currently travelling",
            "currently traveling",
            "nicht im büro",
            "nicht im buero",
            "außer haus",
            "ausser haus",
            "nicht erreichbar",
            "abwesend",
            "im urlaub",
            "automatische antwort",
            "abwesenheitsnotiz",
            "nicht am arbeitsplatz",
            "je suis absent",
            "je suis actuellement absent",
            "absent du bureau",
            "absente du bureau",
            "en congé",
            "en vacances",
            "réponse automatique",
            "hors du bureau",
            "estoy fuera",
            "estaré fuera",
            "estoy ausente",
            "estaré ausente",
            "fuera de la oficina",
            "de vacaciones",
            "respuesta automática",
            "fuori ufficio",
            "sono assente",
            "sarò assente",
            "in ferie",
            "risposta automatica",
            "afwezig",
            "niet aanwezig",
            "met vakantie",
            "niet op kantoor",
            "buiten kantoor",
            "automatisch antwoord",
            "fora do escritório",
            "estou ausente",
            "de férias",
            "resposta automática",
        ])
        .expect("static patterns")
});

/// What out-of-office notices add besides the absence: limited access, urgent matters, a
/// colleague to contact, the notice calling itself automatic.
static OOO_NOTICE: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build([
            "limited access",
            "no access",
            "without access",
            "urgent",
            "dringend",
            "urgence",
            "urgente",
            "in my absence",
            "during my absence",
            "in meiner abwesenheit",
            "en mon absence",
            "en mi ausencia",
            "in mia assenza",
            "tijdens mijn afwezigheid",
            "na minha ausência",
            "automatic",
            "automatisch",
            "automatique",
            "automática",
            "automatica",
            "will be forwarded",
            "wird nicht weitergeleitet",
            "please contact",
            "bitte wenden sie sich",
            "veuillez contacter",
            "por favor contacte",
            "si prega di contattare",
            "neem contact op",
        ])
        .expect("static patterns")
});

static REPLY_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:re|aw|sv|vs|r|rif|antw|odp|res)\s*:").expect("static regex")
});

/// Whether the body opens like an out-of-office notice.
fn ooo_opening(body: &str) -> bool {
    OOO_TEXT.is_match(clip(body, OOO_TEXT_WINDOW))
}
