//! Learning a `[[form]]` profile from one notification of a website form.
//!
//! Most sites send their own template, which no built-in profile knows; writing its profile by
//! hand means reading the template for what stays the same in every notification. This reads
//! one sample for it: the sender when it is the site's (never the visitor's), the fixed part of
//! the subject, a fixed sentence or two of the body, and which labels hold the submitter's
//! address, name, company and phone. What changes per submission (the fields' values, the
//! submitter's name and address, numbers and dates) never becomes a marker.
//!
//! The profile is then proved on the sample itself: classified with the profile added after
//! the configured ones, the sample must be a form of that name with a lead. A profile that
//! would not change the decision is an error, not a paste that silently does nothing.

use mail_parser::MessageParser;

use super::{FormProfile, Rules, classify, forms, parse};
use crate::domain::{EmailAddress, MessageKind, Person};

/// A profile learned from one sample, with what it reads from that sample.
#[derive(Debug, Clone)]
pub struct LearnedForm {
    /// The profile, ready to be written as a `[[form]]`.
    pub profile: FormProfile,
    /// The sample's fields as the classifier reads them, in order.
    pub fields: Vec<(String, String)>,
    /// The lead the classifier takes from the sample with the profile in place.
    pub lead: Person,
    /// Remarks for whoever pastes the profile (why `from` is empty, a shared sender).
    pub notes: Vec<String>,
}

/// Why no profile could be learned from a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LearnError(String);

impl LearnError {
    fn new(msg: impl Into<String>) -> Self {
        LearnError(msg.into())
    }
}

/// Kinds that are decided before forms are read and are never a form notification: a
/// profile cannot change them, and their bodies (a DSN's `Final-Recipient: …`) may look like
/// fields.
const NEVER_FORMS: &[MessageKind] = &[
    MessageKind::Bounce,
    MessageKind::Autoreply,
    MessageKind::Reply,
    MessageKind::Feedback,
    MessageKind::Unsubscribe,
    MessageKind::Forward,
];

/// Learns a form profile from one raw notification. `rules` are the configuration's (own
/// addresses are never a submitter or a marker; configured profiles come first when the
/// result is proved); `name` names the profile, else a name is made from the subject or the
/// sender.
///
/// # Errors
/// When the message is not a form notification (no fields, no submitter address, a bounce …),
/// when nothing in it stays the same from one submission to the next, or when the profile
/// would not make the sample a form of that name.
pub fn learn_form(
    raw: &[u8],
    rules: &Rules,
    name: Option<&str>,
) -> Result<LearnedForm, LearnError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(LearnError::new("this message is empty"));
    }
    let before = classify(raw, rules);
    if NEVER_FORMS.contains(&before.kind) {
        return Err(LearnError::new(format!(
            "this is {} {}, not a form notification",
            article(before.kind.as_str()),
            before.kind
        )));
    }
    if let Some(n) = name
        && n.trim().is_empty()
    {
        return Err(LearnError::new("--name must not be empty"));
    }
    // The parser dependency may panic on hostile input (see `classify`); so may a bug here.
    let mut learned = std::panic::catch_unwind(|| infer(raw, rules, name))
        .map_err(|_| LearnError::new("internal error while reading the message"))??;
    prove(raw, rules, &mut learned)?;
    Ok(learned)
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Reads the sample the way the classifier does (same cut, same charset repair, same body
/// text) and infers the profile.
fn infer(raw: &[u8], rules: &Rules, name: Option<&str>) -> Result<LearnedForm, LearnError> {
    let (raw, _) = super::readable(raw);
    let fixed;
    let parser = MessageParser::default();
    let mut msg = parser
        .parse(raw)
        .ok_or_else(|| LearnError::new("unparseable message (no headers)"))?;
    if parse::has_legacy_charset(&msg) {
        fixed = parse::fix_charsets(raw);
        msg = parser
            .parse(&fixed[..])
            .ok_or_else(|| LearnError::new("unparseable message (no headers)"))?;
    }
    if msg.parts.is_empty() || parse::root(&msg).is_some_and(|r| r.headers.is_empty()) {
        return Err(LearnError::new("unparseable message (no headers)"));
    }
    let ctx = super::Ctx::new(rules);
    let subject = parse::subject(&msg).unwrap_or_default();
    let from = parse::first_address(&msg, "From");
    let reply_to = parse::first_address(&msg, "Reply-To");
    let body = parse::body_text(&msg);
    let fields = forms::extract_fields(&body);
    if fields.is_empty() {
        return Err(LearnError::new(
            "no fields found: this does not look like a form notification",
        ));
    }
    let acceptable = |a: &EmailAddress| {
        !ctx.is_own(a) && !forms::is_system_sender(a) && !forms::hosted_service(a)
    };
    let roles = Roles::find(&fields, &acceptable, reply_to.as_ref());
    let submitter = roles
        .email
        .as_ref()
        .map(|(_, a)| a.clone())
        .or_else(|| {
            reply_to
                .as_ref()
                .map(|r| r.email.clone())
                .filter(&acceptable)
        })
        .ok_or_else(|| {
            LearnError::new(
                "no submitter address: no field holds an email address and there is no Reply-To",
            )
        })?;

    // What varies from one submission to the next: every field's value, and the submitter's
    // name and address wherever the headers carry them.
    let mut varying: Vec<String> = fields.iter().map(|(_, v)| v.clone()).collect();
    varying.push(submitter.to_string());
    let mut words: Vec<String> = Vec::new();
    let visitor = from.as_ref().filter(|f| f.email == submitter);
    for n in [reply_to.as_ref(), visitor].into_iter().flatten() {
        varying.push(n.email.to_string());
        if let Some(name) = &n.name {
            varying.push(name.clone());
            words.push(name.clone());
        }
    }
    for label in [&roles.name, &roles.company].into_iter().flatten() {
        if let Some((_, v)) = fields.iter().find(|(l, _)| l == label) {
            words.push(v.clone());
        }
    }
    let varying = Varying::new(&varying, &words);

    let mut notes = Vec::new();
    let mut from_entries = Vec::new();
    match &from {
        Some(f) if f.email == submitter || fields.iter().any(|(_, v)| mentions(v, &f.email)) => {
            notes.push(format!(
                "From is the visitor's address ({}), so the form is recognised by its subject \
                 and text instead",
                f.email
            ));
        }
        Some(f) => {
            if forms::hosted_service(&f.email) || forms::service_name(&f.email).is_some() {
                notes.push(format!(
                    "{} sends for every form of the service: if you have several, remove it \
                     from `from` and let the subject and text tell them apart",
                    f.email
                ));
            }
            from_entries.push(f.email.to_string());
        }
        None => notes.push("the message has no valid From".to_owned()),
    }
    let subject_contains: Vec<String> = fixed_subject(&subject, &varying).into_iter().collect();
    let body_contains = template_lines(&body, &varying);
    if from_entries.is_empty() && subject_contains.is_empty() && body_contains.is_empty() {
        return Err(LearnError::new(
            "nothing in this notification stays the same from one submission to the next \
             (no sender of its own, no fixed subject or sentence) to recognise the form by",
        ));
    }
    let name = match name {
        Some(n) => n.trim().to_owned(),
        None => derived_name(subject_contains.first(), from.as_ref(), rules),
    };
    let label = |r: Option<&String>| r.cloned().into_iter().collect();
    let profile = FormProfile {
        name,
        from: from_entries,
        subject_contains,
        body_contains,
        email_fields: label(roles.email.as_ref().map(|(l, _)| l)),
        name_fields: label(roles.name.as_ref()),
        company_fields: label(roles.company.as_ref()),
        phone_fields: label(roles.phone.as_ref()),
    };
    Ok(LearnedForm {
        profile,
        fields,
        lead: Person {
            email: submitter,
            name: None,
            company: None,
            phone: None,
        },
        notes,
    })
}

/// Classifies the sample with the profile added after the configured ones (where a pasted
/// profile lands) and takes the lead from that decision; fails when the profile would not be
/// the one that reads the sample.
fn prove(raw: &[u8], rules: &Rules, learned: &mut LearnedForm) -> Result<(), LearnError> {
    let name = learned.profile.name.clone();
    if rules.forms.iter().any(|p| p.name == name) {
        return Err(LearnError::new(format!(
            "the configuration has a [[form]] named '{name}' already; give another --name"
        )));
    }
    let mut with = rules.clone();
    with.forms.push(learned.profile.clone());
    let c = classify(raw, &with);
    let why = || {
        c.reason
            .as_deref()
            .map_or(String::new(), |r| format!(" ({r})"))
    };
    match (&c.kind, &c.form, c.lead) {
        (MessageKind::Form, Some(f), Some(lead)) if *f == name => {
            learned.lead = lead;
            Ok(())
        }
        (MessageKind::Form, Some(f), _) if rules.forms.iter().any(|p| p.name == *f) => {
            Err(LearnError::new(format!(
                "the configured [[form]] '{f}' recognises this notification already, before \
                 a new profile would be tried"
            )))
        }
        (kind, _, _) => Err(LearnError::new(format!(
            "the profile would not make this message a form: it is classified as {kind}{}",
            why()
        ))),
    }
}

/// Whether a field value names `addr`.
fn mentions(value: &str, addr: &EmailAddress) -> bool {
    value.to_lowercase().contains(addr.as_str())
}

/// The fields that hold the submitter's address, name, company and phone: by the built-in
/// label lists first, then by words in the label, then by the value's shape.
struct Roles {
    email: Option<(String, EmailAddress)>,
    name: Option<String>,
    company: Option<String>,
    phone: Option<String>,
}

impl Roles {
    fn find(
        fields: &[(String, String)],
        acceptable: &dyn Fn(&EmailAddress) -> bool,
        reply_to: Option<&parse::Named>,
    ) -> Roles {
        use forms::Role;
        let address = |v: &str| {
            parse::parse_name_addr(v)
                .map(|n| n.email)
                .filter(|a| acceptable(a))
        };
        let by_list = |role: Role| {
            fields
                .iter()
                .find(|(l, v)| forms::label_role(l) == Some(role) && !v.trim().is_empty())
        };
        // A labelled email field as the classifier reads it; else a field whose whole value is
        // an address (a message that mentions one is no email field).
        let email = fields
            .iter()
            .filter(|(l, _)| forms::label_role(l) == Some(Role::Email))
            .find_map(|(l, v)| address(v).map(|a| (l.clone(), a)))
            .or_else(|| {
                fields
                    .iter()
                    .filter(|(_, v)| address_shaped(v))
                    .find_map(|(l, v)| address(v).map(|a| (l.clone(), a)))
            });
        let taken = |l: &str, others: &[Option<&String>]| {
            email.as_ref().is_some_and(|(e, _)| e == l) || others.iter().flatten().any(|o| *o == l)
        };
        let loose = |keys: &[&str], whole: &[&str], others: &[Option<&String>]| {
            fields.iter().find(|(l, v)| {
                let lower = l.to_lowercase();
                !v.trim().is_empty()
                    && !taken(l, others)
                    && forms::label_role(l).is_none()
                    && parse::parse_name_addr(v).is_none()
                    && lower
                        .split(|c: char| !c.is_alphanumeric())
                        .any(|w| keys.iter().any(|k| w.starts_with(k)) || whole.contains(&w))
            })
        };
        let name = by_list(Role::Name)
            .or_else(|| loose(NAME_WORDS, &[], &[]))
            .or_else(|| {
                // The name a Reply-To gives the submitter, found again in a field.
                let n = reply_to?.name.as_deref()?;
                fields
                    .iter()
                    .find(|(l, v)| v.trim().eq_ignore_ascii_case(n.trim()) && !taken(l, &[]))
            })
            .map(|(l, _)| l.clone());
        let company = by_list(Role::Company)
            .or_else(|| loose(COMPANY_WORDS, &[], &[name.as_ref()]))
            .map(|(l, _)| l.clone());
        let phone = by_list(Role::Phone)
            .filter(|(_, v)| has_digits(v))
            .or_else(|| {
                loose(
                    PHONE_WORDS,
                    PHONE_WHOLE_WORDS,
                    &[name.as_ref(), company.as_ref()],
                )
                .filter(|(_, v)| has_digits(v))
            })
            .or_else(|| {
                fields
                    .iter()
                    .find(|(l, v)| !taken(l, &[name.as_ref(), company.as_ref()]) && phone_shaped(v))
            })
            .map(|(l, _)| l.clone());
        Roles {
            email,
            name,
            company,
            phone,
        }
    }
}

/// Words that name a person's name in a label the lists do not know (`Patient name`,
/// `Nom du contact`, `Nombre y apellidos`); a word matches when it starts with one.
const NAME_WORDS: &[&str] = &["name", "nom", "nombre", "nome", "naam"];
/// … a company (`Company / school`, `Nom de la société`, `Empresa u organización`, `Employer`).
const COMPANY_WORDS: &[&str] = &[
    "company",
    "organi",
    "firm",
    "unternehmen",
    "soci",
    "entreprise",
    "empresa",
    "business",
    "employer",
    "employeur",
    "arbeitgeber",
];
/// … a phone number (`Numéro de portable`, `Mobile / WhatsApp`). Short words must match
/// whole (`tel`, not `Tell us …`); the value must hold digits besides.
const PHONE_WORDS: &[&str] = &[
    "phone",
    "telef",
    "teléf",
    "téléph",
    "telep",
    "mobil",
    "móvil",
    "celul",
    "cellphone",
];
const PHONE_WHOLE_WORDS: &[&str] = &["tel", "cell", "handy", "portable", "movil", "whatsapp"];

/// A value that is an address and nothing else: `jane@x.example`, `mailto:…`, or
/// `Jane Doe <jane@x.example>`.
fn address_shaped(v: &str) -> bool {
    let t = v.trim();
    if t.contains(char::is_whitespace) {
        t.ends_with('>') && t.contains('<')
    } else {
        EmailAddress::parse(t.trim_start_matches("mailto:").trim_matches(['<', '>'])).is_ok()
    }
}

/// Five digits at least: what any phone number has, and a sentence seldom.
fn has_digits(v: &str) -> bool {
    v.chars().filter(char::is_ascii_digit).count() >= 5
}

/// A value that reads as a phone number: digits with the usual separators, 7 to 15 digits,
/// and not a date.
fn phone_shaped(v: &str) -> bool {
    let v = v.trim();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let date_like = {
        let parts: Vec<&str> = v.split(['-', '.', '/']).collect();
        parts.len() == 3 && parts.iter().all(|p| (1..=4).contains(&p.len()))
    };
    v.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '(')
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-()./".contains(c))
        && (7..=15).contains(&digits)
        && !date_like
}

/// What changes per submission, to be kept out of markers: whole values, and single words of
/// the submitter's name and company (a subject may name the first name only).
struct Varying {
    /// Lower-cased, longest first, each at least two characters.
    phrases: Vec<Vec<char>>,
}

impl Varying {
    fn new(values: &[String], words: &[String]) -> Self {
        let mut phrases: Vec<Vec<char>> = values
            .iter()
            .map(|v| v.trim())
            .chain(words.iter().flat_map(|w| w.split_whitespace()))
            .map(|v| v.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|v| v.chars().count() >= 2)
            .map(|v| v.chars().flat_map(char::to_lowercase).collect())
            .collect();
        phrases.sort_by_key(|p: &Vec<char>| std::cmp::Reverse(p.len()));
        phrases.dedup();
        Varying { phrases }
    }

    /// Marks every character of `text` (lower-cased, one `char` per position) that belongs to
    /// a varying phrase. Only a phrase on word boundaries counts, so a one-word value `art`
    /// does not mark the middle of `start`.
    fn mark(&self, text: &[char]) -> Vec<bool> {
        let mut marked = vec![false; text.len()];
        let boundary = |i: usize| {
            i == 0
                || i >= text.len()
                || !text.get(i).is_some_and(|c| c.is_alphanumeric())
                || !text.get(i - 1).is_some_and(|c| c.is_alphanumeric())
        };
        for p in &self.phrases {
            if p.len() > text.len() {
                continue;
            }
            for start in 0..=text.len() - p.len() {
                let end = start + p.len();
                if text.get(start..end) == Some(p.as_slice()) && boundary(start) && boundary(end) {
                    marked
                        .get_mut(start..end)
                        .into_iter()
                        .flatten()
                        .for_each(|m| *m = true);
                }
            }
        }
        marked
    }

    /// Whether `text` holds a varying phrase.
    fn in_text(&self, text: &str) -> bool {
        let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        self.mark(&lower).contains(&true)
    }
}

/// Lower-cases `s` one `char` for one `char` (a character whose lower case is longer keeps
/// its first), so positions in the result are positions in `s`.
fn lower_chars(s: &str) -> Vec<char> {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Characters trimmed from the ends of a marker: quotes, brackets and separators left over
/// from what was taken out.
fn trim_marker(s: &str) -> &str {
    s.trim_matches(|c: char| {
        c.is_whitespace() || "\"'“”„«»‹›()[]{}<>:;,.-–—|/\\#*+=~_!?°º".contains(c)
    })
}

/// The longest run of the subject that stays the same per submission: the subject without
/// field values, the submitter's name or address, and any word with a digit (dates, numbers,
/// ticket ids, with a `#`/`No.` before them). `None` when what is left is too short to tell
/// this form from a person's subject.
fn fixed_subject(subject: &str, varying: &Varying) -> Option<String> {
    let subject = parse::clip(subject.trim(), 300);
    let chars: Vec<char> = subject.chars().collect();
    let mut marked = varying.mark(&lower_chars(subject));
    // Whole words with a digit or an `@`.
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && !chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let word = chars.get(start..i).unwrap_or_default();
        let s: String = word.iter().collect();
        let numbering = [
            "#", "n°", "nº", "no.", "nr.", "nr", "no", "num.", "ref", "ref.",
        ]
        .contains(&s.to_lowercase().as_str());
        let next_has_digit = chars
            .get(i..)
            .unwrap_or_default()
            .iter()
            .skip_while(|c| c.is_whitespace())
            .take_while(|c| !c.is_whitespace())
            .any(char::is_ascii_digit);
        if word.iter().any(|c| c.is_ascii_digit() || *c == '@') || (numbering && next_has_digit) {
            marked
                .get_mut(start..i)
                .into_iter()
                .flatten()
                .for_each(|m| *m = true);
        }
        while i < chars.len() && chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
    }
    let mut best = String::new();
    let mut run = String::new();
    for (c, m) in chars
        .iter()
        .zip(marked.iter().chain(std::iter::repeat(&false)))
    {
        if *m {
            let t = trim_marker(&run);
            if t.chars().count() > best.chars().count() {
                best = t.to_owned();
            }
            run.clear();
        } else {
            run.push(*c);
        }
    }
    let t = trim_marker(&run);
    if t.chars().count() > best.chars().count() {
        best = t.to_owned();
    }
    let best = best.split_whitespace().collect::<Vec<_>>().join(" ");
    specific(&best).then_some(best)
}

/// Long enough that a person's own subject or sentence is unlikely to contain it: two words
/// with letters and ten characters at least.
fn specific(s: &str) -> bool {
    s.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
        >= 2
        && s.chars().count() >= 10
}

/// A line made of one repeated rule character (`--`, `-----`, `_____`, `=====`): where a
/// template's footer starts.
fn separator(line: &str) -> bool {
    let mut cs = line.chars();
    cs.next()
        .is_some_and(|c| "-_=*~—".contains(c) && line.chars().count() >= 2)
        && line.chars().all(|c| "-_=*~— ".contains(c))
}

/// Up to two sentences of the template itself: lines above the first field, or below a
/// separator after the last one (lines right below the fields may continue a message
/// field's value), that are not fields, hold nothing that varies and no digit or address, and
/// are long enough to be specific.
fn template_lines(body: &str, varying: &Varying) -> Vec<String> {
    let lines: Vec<&str> = parse::lines(parse::clip(body, parse::MAX_TEXT))
        .take(5000)
        .map(str::trim)
        .collect();
    let Some(first) = lines.iter().position(|l| forms::is_field_line(l)) else {
        return Vec::new();
    };
    let last = lines
        .iter()
        .rposition(|l| forms::is_field_line(l))
        .unwrap_or(first);
    let footer = lines
        .iter()
        .skip(last + 1)
        .position(|l| separator(l))
        .map(|p| last + 1 + p + 1);
    // Template sentences sit near the top and at the very end; a few lines of each suffice
    // and bound the work on a hostile body.
    let head = lines.get(..first).unwrap_or_default().iter().take(20);
    let foot = footer
        .and_then(|f| lines.get(f..))
        .unwrap_or_default()
        .iter()
        .take(20);
    let mut out: Vec<String> = Vec::new();
    for l in head.chain(foot).copied() {
        if out.len() == 2 {
            break;
        }
        let plausible = l.chars().count() <= 300
            && specific(l)
            && l.split_whitespace().count() >= 3
            && !l.chars().any(|c| c.is_ascii_digit() || c == '@')
            && !forms::is_field_line(l);
        if !plausible || varying.in_text(l) {
            continue;
        }
        // A long sentence is cut on a word boundary: its start identifies it as well.
        let mut kept = String::new();
        for w in l.split_whitespace() {
            if kept.chars().count() + w.chars().count() > 100 {
                break;
            }
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(w);
        }
        if specific(&kept) && !out.contains(&kept) {
            out.push(kept);
        }
    }
    out
}

/// Words a profile's name is better without.
const FILLER: &[&str] = &[
    "a",
    "an",
    "the",
    "new",
    "from",
    "on",
    "via",
    "your",
    "you",
    "have",
    "has",
    "received",
    "of",
    "for",
    "and",
    "by",
    "at",
    "to",
    "in",
    "with",
    "submission",
    "submitted",
    "notification",
    "message",
    "entry",
    "re",
    "fwd",
    "de",
    "del",
    "la",
    "le",
    "les",
    "des",
    "du",
    "el",
    "von",
    "der",
    "die",
    "das",
    "neue",
    "neuer",
    "nouvelle",
    "nouveau",
    "nueva",
    "nuevo",
    "una",
    "un",
    "une",
    "per",
    "über",
    "uber",
    "sur",
    "par",
    "por",
];

/// A slug-like name from the subject's fixed part (`Quote request` → `quote-request`), else
/// from the sender's domain, never one the configuration has already.
fn derived_name(subject: Option<&String>, from: Option<&parse::Named>, rules: &Rules) -> String {
    let slug = |s: &str, max_words: usize| {
        let words: Vec<String> = s
            .split(|c: char| !c.is_alphanumeric())
            .map(fold)
            .filter(|w| !w.is_empty() && !FILLER.contains(&w.as_str()))
            .take(max_words)
            .collect();
        words.join("-")
    };
    let mut base = subject.map(|s| slug(s, 4)).unwrap_or_default();
    if base.is_empty()
        && let Some(f) = from
    {
        let domain = f.email.domain();
        let site = domain.split('.').next().unwrap_or(domain);
        base = slug(site, 4);
    }
    if base.is_empty() {
        base = "learned-form".to_owned();
    }
    let mut name = base.clone();
    let mut n = 2;
    while rules.forms.iter().any(|p| p.name == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// Lower-case ASCII for a name: common Latin letters with marks lose them, anything else
/// that is not ASCII is dropped.
fn fold(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars().flat_map(char::to_lowercase) {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'ç' => "c",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ý' | 'ÿ' => "y",
            'ß' => "ss",
            'æ' => "ae",
            'œ' => "oe",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "",
        };
        out.push_str(base);
    }
    out
}

/// Where the profile that reads a message comes from, for `check --sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormSource {
    /// A `[[form]]` of the configuration.
    Configured,
    /// One of the built-in profiles.
    BuiltIn,
    /// No profile: a notification by its shape alone (`generic`, a service's name).
    Shape,
}

/// Where the form name a classification recorded comes from under `rules`.
pub fn form_source(name: &str, rules: &Rules) -> FormSource {
    if rules.forms.iter().any(|p| p.name == name) {
        FormSource::Configured
    } else if forms::BUILTIN.iter().any(|b| b.name == name) {
        FormSource::BuiltIn
    } else {
        FormSource::Shape
    }
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

    fn learn(raw: &str) -> Result<LearnedForm, LearnError> {
        learn_form(raw.as_bytes(), &rules(), None)
    }

    const PLAIN: &str = "From: Brightwave Website <website@brightwave.example>\r\nTo: leads@company.com\r\nSubject: Quote request #4821 from Olivia Bennett\r\nDate: Fri, 02 Apr 2027 09:15:00 +0200\r\n\r\nYou have received a new quote request through the Brightwave website.\r\n\r\nFull name: Olivia Bennett\r\nEmail address: olivia@bennett-farms.example\r\nFirm: Bennett Farms\r\nCallback: +44 1632 960418\r\nTell us more: Panels for two barns, please.\r\n";

    #[test]
    fn learns_markers_and_labels_without_what_varies() {
        let l = learn(PLAIN).unwrap();
        let p = &l.profile;
        assert_eq!(p.name, "quote-request");
        assert_eq!(p.from, ["website@brightwave.example"]);
        assert_eq!(p.subject_contains, ["Quote request"]);
        assert_eq!(
            p.body_contains,
            ["You have received a new quote request through the Brightwave website."]
        );
        assert_eq!(p.email_fields, ["Email address"]);
        assert_eq!(p.name_fields, ["Full name"]);
        // Not in the lists: by a word of the label, and by the value's shape.
        assert_eq!(p.company_fields, ["Firm"]);
        assert_eq!(p.phone_fields, ["Callback"]);
        assert_eq!(l.lead.email.as_str(), "olivia@bennett-farms.example");
        assert_eq!(l.lead.name.as_deref(), Some("Olivia Bennett"));
        assert_eq!(l.lead.company.as_deref(), Some("Bennett Farms"));
        assert_eq!(l.lead.phone.as_deref(), Some("+44 1632 960418"));
        assert_eq!(l.fields.len(), 5);
        // A given name wins.
        let l = learn_form(PLAIN.as_bytes(), &rules(), Some(" solar quotes ")).unwrap();
        assert_eq!(l.profile.name, "solar quotes");
    }

    #[test]
    fn the_visitors_own_address_is_never_the_sender_to_recognise() {
        let raw = "From: Lucia Ortega <lucia@ortega-viajes.example>\r\nTo: leads@company.com\r\nSubject: Formulario web: solicitud de información de Lucia\r\n\r\nNombre y apellidos: Lucia Ortega\r\nCorreo electrónico: lucia@ortega-viajes.example\r\nTeléfono: 612 345 678\r\n\r\n--\r\nEnviado desde el formulario de contacto de la web\r\n";
        let l = learn(raw).unwrap();
        assert!(l.profile.from.is_empty(), "{:?}", l.profile.from);
        assert!(
            l.notes.iter().any(|n| n.contains("visitor")),
            "{:?}",
            l.notes
        );
        assert_eq!(
            l.profile.subject_contains,
            ["Formulario web: solicitud de información de"]
        );
        assert_eq!(
            l.profile.body_contains,
            ["Enviado desde el formulario de contacto de la web"]
        );
        assert_eq!(l.profile.name_fields, ["Nombre y apellidos"]);
        assert_eq!(l.profile.email_fields, ["Correo electrónico"]);
        assert_eq!(l.profile.phone_fields, ["Teléfono"]);
        assert_eq!(l.profile.name, "formulario-web-solicitud-informacion");
        assert_eq!(l.lead.email.as_str(), "lucia@ortega-viajes.example");
    }

    #[test]
    fn subjects_lose_names_numbers_dates_and_ids() {
        let v = Varying::new(
            &["Jane Doe".into(), "jane@x.example".into(), "Acme".into()],
            &["Jane Doe".into()],
        );
        let fixed = |s: &str| fixed_subject(s, &v);
        assert_eq!(
            fixed("[Ticket #4521] New enquiry from Jane via the website").as_deref(),
            Some("New enquiry from")
        );
        assert_eq!(
            fixed("Contact page: jane@x.example 2027-04-02").as_deref(),
            Some("Contact page")
        );
        assert_eq!(
            fixed("Demande n° 2027-12 – Acme – demande de devis").as_deref(),
            Some("demande de devis")
        );
        // Too little is left to tell a form from a person's subject.
        assert_eq!(fixed("Contact: Jane Doe"), None);
        assert_eq!(fixed(""), None);
        // A value is taken out on word boundaries only.
        let v = Varying::new(&["art".into()], &[]);
        assert_eq!(
            fixed_subject("Start a project: art", &v).as_deref(),
            Some("Start a project")
        );
    }

    #[test]
    fn an_address_in_a_message_is_no_email_field() {
        for v in [
            "jane@x.example",
            " mailto:jane@x.example",
            "Jane Doe <jane@x.example>",
        ] {
            assert!(address_shaped(v), "{v}");
        }
        for v in ["write to jane@x.example please", "jane at x.example", ""] {
            assert!(!address_shaped(v), "{v}");
        }
        let raw = "From: w@site.example\r\nSubject: Callback wanted today\r\n\r\nName: Jane\r\nNote: or mail jane@x.example\r\n";
        assert!(
            learn(raw)
                .unwrap_err()
                .to_string()
                .starts_with("no submitter address")
        );
    }

    #[test]
    fn phone_numbers_by_shape_but_not_dates_or_counts() {
        for v in [
            "+44 1632 960418",
            "06 12 34 56 78",
            "(555) 010-4477",
            "+49-30-1234567",
        ] {
            assert!(phone_shaped(v), "{v}");
        }
        for v in [
            "2027-04-02",
            "02.04.2027",
            "80",
            "12 June 2027",
            "1234",
            "call me",
        ] {
            assert!(!phone_shaped(v), "{v}");
        }
    }

    #[test]
    fn footers_count_only_below_a_separator() {
        let v = Varying::new(&["Jane Doe".into()], &[]);
        let body = "Name: Jane Doe\nMessage: Hello there\nwe would like to talk about prices\n\nThank you for your message today\n";
        assert!(template_lines(body, &v).is_empty());
        let body = "A request came in from the contact page\nName: Jane Doe\n\n-- \nSent by the contact page of the website\n";
        assert_eq!(
            template_lines(body, &v),
            [
                "A request came in from the contact page",
                "Sent by the contact page of the website"
            ]
        );
        // Lines naming the submitter or with numbers are not the template's.
        let body = "Jane Doe wrote in through the website\nSent on 2 April by the site form\nName: Jane Doe\n";
        assert!(template_lines(body, &v).is_empty());
    }

    #[test]
    fn what_is_no_form_notification_is_a_clear_error() {
        let e = |raw: &str| learn(raw).unwrap_err().to_string();
        assert!(
            e("From: Jane <jane@x.example>\r\nSubject: Hello\r\n\r\nCan we talk about prices?\r\n")
                .starts_with("no fields found")
        );
        assert!(
            e("From: Jane <jane@x.example>\r\nSubject: Hello\r\n\r\nName: Jane\r\nCity: Oslo\r\n")
                .starts_with("no submitter address")
        );
        let bounce = "From: MAILER-DAEMON@mx.example\r\nTo: leads@company.com\r\nSubject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nI could not deliver it.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n";
        assert_eq!(e(bounce), "this is a bounce, not a form notification");
        assert_eq!(e(""), "this message is empty");
        assert_eq!(
            learn_form(PLAIN.as_bytes(), &rules(), Some("  "))
                .unwrap_err()
                .to_string(),
            "--name must not be empty"
        );
        // Nothing fixed to recognise it by: the visitor sends, the subject is a value.
        let e2 = e(
            "From: Jane <jane@x.example>\r\nSubject: Jane\r\n\r\nName: Jane\r\nEmail: jane@x.example\r\n",
        );
        assert!(e2.starts_with("nothing in this notification"), "{e2}");
    }

    #[test]
    fn an_existing_profile_is_reported_not_shadowed() {
        let mut r = rules();
        r.forms.push(FormProfile {
            name: "quotes".into(),
            subject_contains: vec!["quote request".into()],
            ..FormProfile::default()
        });
        let e = learn_form(PLAIN.as_bytes(), &r, None).unwrap_err();
        assert!(e.to_string().contains("'quotes' recognises"), "{e}");
        let e = learn_form(PLAIN.as_bytes(), &r, Some("quotes")).unwrap_err();
        assert!(e.to_string().contains("named 'quotes' already"), "{e}");
    }

    #[test]
    fn hostile_input_never_panics() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00",
            b"From: a\r\n\r\n:\r\n",
            b"Subject: \xe9\xe9\r\nFrom: x@y.example\r\n\r\nE-mail: x@y.example\r\nName:\r\n\xc3",
        ] {
            assert!(learn_form(raw, &rules(), None).is_err());
        }
        let long = format!(
            "From: w@site.example\r\nReply-To: j@x.example\r\nSubject: {}\r\n\r\nName: {}\r\nEmail: j@x.example\r\n",
            "é1 ".repeat(5000),
            "ü".repeat(5000)
        );
        let _ = learn_form(long.as_bytes(), &rules(), None);
    }

    #[test]
    fn sources_of_a_form_name() {
        let mut r = rules();
        r.forms.push(FormProfile {
            name: "contact-form-7".into(),
            ..FormProfile::default()
        });
        assert_eq!(form_source("contact-form-7", &r), FormSource::Configured);
        assert_eq!(form_source("elementor", &r), FormSource::BuiltIn);
        assert_eq!(form_source("generic", &r), FormSource::Shape);
    }
}
