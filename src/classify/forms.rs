//! Website form notifications: `Label: value` fields and the submitter behind them.
//!
//! The sender of a form notification is a machine (`wordpress@`, a form service); making it
//! the lead would merge every submitter into one lead, so the submitter comes from Reply-To or
//! the form's email field, never from From.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::parse::{clip, domain_matches};
use crate::domain::EmailAddress;

/// Lines longer than this are prose or garbage, never a form field.
const MAX_FIELD_LINE: usize = 1000;
const MAX_FIELDS: usize = 200;

/// WPForms' plain-text notifications head each field with `--- Label ---` and put the value
/// on the following lines. A label is a letter and at most 59 more characters of the class.
///
/// The regex leaves the repetition unbounded and [`label_of`] checks the 60-character bound
/// instead: `{0,59}` repeated a Unicode class sixty times, and compiling that was a large
/// share of the classifier's start-up. The two are the same: the surrounding `-{2,}\s*` and
/// `\s*-{2,}$` fix where the group starts and the lazy `*?` takes the fewest characters that
/// let the line end in dashes, so the bounded form matches exactly when that fewest is
/// within the bound, with the same group.
static DASHED_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^-{2,}\s*(\p{L}[\p{L}\p{N} ._'/()&#?-]*?)\s*-{2,}$").expect("static regex")
});

/// Characters in a dashed label at most: the letter and `{0,59}` more.
const MAX_DASHED_LABEL: usize = 60;

fn label_of(line: &str) -> Option<(&str, &str)> {
    // Only lines that start with dashes can be WPForms labels; the check keeps the regex (and
    // its per-search setup) off every other line.
    if line.starts_with("--")
        && let Some(c) = DASHED_LABEL.captures(line)
        && let Some(g) = c.get(1)
        && g.as_str().chars().count() <= MAX_DASHED_LABEL
    {
        return Some((g.as_str().trim(), ""));
    }
    label_line(line)
}

/// `Label: value` (also `**Label:** value` and `Label:` alone), read by hand: this runs on every
/// line of every message, and a Unicode-aware regex with captures costs microseconds per line.
///
/// A label starts with a letter, has at most 60 characters of letters, digits, spaces and
/// `._'/()&#?-`, and the colon is followed by whitespace or the end of the line, so times
/// (`10:30`) and URLs (`https://…`) are not labels.
fn label_line(line: &str) -> Option<(&str, &str)> {
    let decoration = |c: char| c == '*' || c == '_' || c.is_whitespace();
    // The colon can only be near the start: at most 60 label characters (4 bytes each at
    // worst) plus decoration. Looking further would scan every prose line to its end.
    let near = line.as_bytes().get(..320).unwrap_or(line.as_bytes());
    let colon = memchr::memchr(b':', near)?;
    let (head, tail) = (&line[..colon], &line[colon + 1..]);
    let label = head
        .trim_start_matches(decoration)
        .trim_end_matches(decoration);
    if !label.chars().next()?.is_alphabetic()
        || label.chars().count() > 60
        || !label.chars().all(|c| {
            c.is_alphanumeric()
                || matches!(
                    c,
                    ' ' | '.' | '_' | '\'' | '/' | '(' | ')' | '&' | '#' | '?' | '-'
                )
        })
    {
        return None;
    }
    let rest = tail.trim_start_matches(['*', '_']);
    if rest.trim().is_empty() {
        return Some((label, ""));
    }
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some((label, rest.trim_start()))
}

/// Field labels are short phrases; these words start prose or quoted headers instead.
/// (Compared ASCII-case-insensitively in place, without lower-casing into a new string.)
fn plausible_label(label: &str) -> bool {
    const NOT_LABELS: &[&str] = &[
        "http", "https", "mailto", "ftp", "re", "fwd", "fw", "aw", "wg", "tr", "note",
    ];
    label.split_whitespace().nth(6).is_none()
        && !NOT_LABELS.iter().any(|w| label.eq_ignore_ascii_case(w))
}

/// Reads `Label: value` lines, and `Label:` followed by the value on the next line, in order;
/// the first occurrence of a label wins.
pub fn extract_fields(body: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = super::parse::lines(clip(body, super::parse::MAX_TEXT))
        .take(5000)
        .map(str::trim)
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() && out.len() < MAX_FIELDS {
        let Some(&line) = lines.get(i) else {
            break;
        };
        i += 1;
        if line.len() > MAX_FIELD_LINE || line.starts_with('>') {
            continue;
        }
        let Some((label, value)) = label_of(line) else {
            continue;
        };
        if !plausible_label(label) {
            continue;
        }
        let mut value = value.trim().trim_matches('*').trim().to_owned();
        if value.is_empty() {
            // Value on the next non-empty line (many form mailers write it that way), unless
            // that line is itself a label.
            let mut j = i;
            while j <= i + 1 && lines.get(j).is_some_and(|l| l.is_empty()) {
                j += 1;
            }
            if let Some(next) = lines.get(j) {
                let is_label = label_of(next).is_some_and(|(l, _)| plausible_label(l));
                if !next.is_empty() && !is_label && next.len() <= MAX_FIELD_LINE {
                    value = next.to_string();
                    i = j + 1;
                }
            }
        }
        if value.is_empty() {
            continue;
        }
        if !out.iter().any(|(l, _)| l.eq_ignore_ascii_case(label)) {
            out.push((label.to_owned(), value));
        }
    }
    out
}

const EMAIL_LABELS: &[&str] = &[
    "email",
    "e-mail",
    "your email",
    "your e-mail",
    "email address",
    "e-mail address",
    "your email address",
    "mail",
    "e-mail-adresse",
    "email-adresse",
    "emailadresse",
    "ihre e-mail-adresse",
    "courriel",
    "adresse e-mail",
    "adresse email",
    "correo",
    "correo electrónico",
    "correo electronico",
];
const NAME_LABELS: &[&str] = &[
    "name",
    "your name",
    "full name",
    "contact name",
    "ihr name",
    "nom",
    "nom complet",
    "nombre",
    "nombre completo",
];
const FIRST_NAME_LABELS: &[&str] = &["first name", "firstname", "vorname", "prénom", "prenom"];
const LAST_NAME_LABELS: &[&str] = &[
    "last name",
    "lastname",
    "surname",
    "nachname",
    "nom de famille",
    "apellido",
    "apellidos",
];
const COMPANY_LABELS: &[&str] = &[
    "company",
    "company name",
    "your company",
    "organization",
    "organisation",
    "firma",
    "unternehmen",
    "société",
    "societe",
    "entreprise",
    "empresa",
];
const PHONE_LABELS: &[&str] = &[
    "phone",
    "phone number",
    "your phone",
    "telephone",
    "tel",
    "tel.",
    "mobile",
    "telefon",
    "telefonnummer",
    "téléphone",
    "telephone number",
    "teléfono",
    "telefono",
];

/// Services that send form notifications on a website's behalf.
const FORM_SERVICES: &[(&str, &str)] = &[
    ("formspree.io", "formspree"),
    ("netlify.com", "netlify"),
    ("webflow.com", "webflow"),
    ("hubspot.com", "hubspot"),
    ("typeform.com", "typeform"),
    ("jotform.com", "jotform"),
    ("wpforms.com", "wpforms"),
    ("formstack.com", "formstack"),
    ("wufoo.com", "wufoo"),
    ("getform.io", "getform"),
    ("basin.io", "basin"),
    ("tally.so", "tally"),
];

const SYSTEM_LOCALS: &[&str] = &[
    "wordpress",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "forms",
    "form",
    "notifications",
    "notification",
    "notify",
    "webmaster",
    "www-data",
    "apache",
    "mailer",
    "website",
    "contact-form",
    "wpforms",
];

/// The form service an address belongs to, if any.
pub fn service_name(addr: &EmailAddress) -> Option<&'static str> {
    FORM_SERVICES
        .iter()
        .find(|(d, _)| domain_matches(addr.domain(), d))
        .map(|(_, n)| *n)
}

/// Whether an address is a machine sender rather than a person.
pub fn is_system_sender(addr: &EmailAddress) -> bool {
    let local = addr.local_part().split('+').next().unwrap_or("");
    SYSTEM_LOCALS.contains(&local)
        || local.starts_with("noreply")
        || local.starts_with("no-reply")
        || service_name(addr).is_some()
}

fn find<'f>(fields: &'f [(String, String)], labels: &[&str]) -> Option<&'f str> {
    labels.iter().find_map(|want| {
        fields
            .iter()
            .find(|(l, v)| l.eq_ignore_ascii_case(want) && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

fn find_owned(fields: &[(String, String)], labels: &[String]) -> Option<String> {
    labels.iter().find_map(|want| {
        fields
            .iter()
            .find(|(l, v)| l.eq_ignore_ascii_case(want.trim()) && !v.is_empty())
            .map(|(_, v)| v.clone())
    })
}

/// The first valid address among fields labelled with one of `labels`, or with a built-in
/// email label when `labels` is `None`.
pub fn email_field(fields: &[(String, String)], labels: Option<&[String]>) -> Option<EmailAddress> {
    let matches = |l: &str| match labels {
        Some(ls) => ls.iter().any(|w| l.eq_ignore_ascii_case(w.trim())),
        None => EMAIL_LABELS.iter().any(|w| l.eq_ignore_ascii_case(w)),
    };
    fields
        .iter()
        .filter(|(l, _)| matches(l))
        .find_map(|(_, v)| super::parse::parse_name_addr(v).map(|n| n.email))
}

/// Who the submitter is, as far as the fields say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Submitter {
    pub name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
}

/// Configured field labels for name, company and phone, tried before the built-in ones.
#[derive(Debug, Default)]
pub struct Labels<'a> {
    pub name: &'a [String],
    pub company: &'a [String],
    pub phone: &'a [String],
}

pub fn submitter(fields: &[(String, String)], labels: &Labels<'_>) -> Submitter {
    let name = find_owned(fields, labels.name)
        .or_else(|| find(fields, NAME_LABELS).map(str::to_owned))
        .or_else(|| {
            let first = find(fields, FIRST_NAME_LABELS);
            let last = find(fields, LAST_NAME_LABELS);
            match (first, last) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(f), None) => Some(f.to_owned()),
                (None, Some(l)) => Some(l.to_owned()),
                (None, None) => None,
            }
        });
    let company = find_owned(fields, labels.company)
        .or_else(|| find(fields, COMPANY_LABELS).map(str::to_owned));
    let phone =
        find_owned(fields, labels.phone).or_else(|| find(fields, PHONE_LABELS).map(str::to_owned));
    let clean = |s: Option<String>| {
        s.map(|v| clip(v.trim(), 200).to_owned())
            .filter(|v| !v.is_empty())
    };
    Submitter {
        name: clean(name),
        company: clean(company),
        phone: clean(phone),
    }
}

static UTM_SOURCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[?&]utm_source=([^&\s#'<>]{1,100})").expect("static regex"));

/// `utm_source` from a field of that name, or from a URL in a field or the body.
pub fn utm_source(fields: &[(String, String)], body: &str) -> Option<String> {
    let direct = fields
        .iter()
        .find(|(l, v)| {
            let l = l.to_ascii_lowercase().replace([' ', '-'], "_");
            (l == "utm_source" || l == "utm source") && !v.is_empty()
        })
        .map(|(_, v)| v.trim().to_owned());
    let from_url = || {
        fields
            .iter()
            .find_map(|(_, v)| UTM_SOURCE.captures(v))
            .or_else(|| UTM_SOURCE.captures(clip(body, super::parse::MAX_TEXT)))
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().replace("%20", " ").replace('+', " "))
    };
    direct
        .or_else(from_url)
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// Keeps the fields as the public map (labels as written).
pub fn to_map(fields: &[(String, String)]) -> BTreeMap<String, String> {
    fields.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_line_and_next_line_values() {
        let body = "New submission\n\nName: Jane Doe\nEmail:\njane@example.com\n\nCompany:\n\nAcme Ltd\nMessage: Hello: world\nhttps://example.com/x\n";
        let f = extract_fields(body);
        assert_eq!(
            f,
            vec![
                ("Name".into(), "Jane Doe".into()),
                ("Email".into(), "jane@example.com".into()),
                ("Company".into(), "Acme Ltd".into()),
                ("Message".into(), "Hello: world".into()),
            ]
        );
    }

    #[test]
    fn dashed_headings() {
        let f = extract_fields("--- Name ---\n\nJane Doe\n\n--- Email ---\n\njane@example.com\n");
        assert_eq!(
            f,
            vec![
                ("Name".into(), "Jane Doe".into()),
                ("Email".into(), "jane@example.com".into())
            ]
        );
    }

    #[test]
    fn dashed_labels_match_the_bounded_regex() {
        let bounded =
            Regex::new(r"^-{2,}\s*(\p{L}[\p{L}\p{N} ._'/()&#?-]{0,59}?)\s*-{2,}$").unwrap();
        let long = format!("--- A{} ---", "b".repeat(58));
        let longer = format!("--- A{} ---", "b".repeat(59));
        let spaced = format!("--- A{} -- ---", " x".repeat(28));
        let spaced2 = format!("--- A{} -- ---", " x".repeat(30));
        let mut cases = vec![
            "--- Name ---",
            "-- Name--",
            "--Name --",
            "---  Ünïcode Naïve  ---",
            "--- Name -- More ---",
            "--- Name - ---",
            "--- 1Name ---",
            "--- Name ---x",
            "--- Name ---- ",
            "----",
            "-- --",
            "--- Ⅻ ---",
            "--- A(b)/c&d#e?f'g_h.i ---",
            "--- Name:x ---",
        ];
        cases.extend([
            long.as_str(),
            longer.as_str(),
            spaced.as_str(),
            spaced2.as_str(),
        ]);
        for line in cases {
            let want = bounded
                .captures(line)
                .and_then(|c| c.get(1))
                .map(|g| (g.as_str().trim(), ""));
            let got = if line.starts_with("--") {
                DASHED_LABEL
                    .captures(line)
                    .and_then(|c| c.get(1))
                    .filter(|g| g.as_str().chars().count() <= MAX_DASHED_LABEL)
                    .map(|g| (g.as_str().trim(), ""))
            } else {
                None
            };
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn bold_labels_and_empty_values() {
        let f = extract_fields("**Your Email:** jane@example.com\nPhone:\nCompany:\nAcme\n");
        assert_eq!(f[0], ("Your Email".into(), "jane@example.com".into()));
        assert_eq!(f[1], ("Company".into(), "Acme".into()));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn long_lines_and_times_are_not_fields() {
        let long = format!("Label: {}", "x".repeat(2000));
        assert!(extract_fields(&long).is_empty());
        assert!(extract_fields("10:30 meeting").is_empty());
    }

    #[test]
    fn submitter_from_common_labels() {
        let f = extract_fields(
            "First Name: Jane\nLast Name: Doe\nFirma: Acme GmbH\nTel: +49 30 1234\n",
        );
        let s = submitter(&f, &Labels::default());
        assert_eq!(s.name.as_deref(), Some("Jane Doe"));
        assert_eq!(s.company.as_deref(), Some("Acme GmbH"));
        assert_eq!(s.phone.as_deref(), Some("+49 30 1234"));
    }

    #[test]
    fn utm_from_field_or_url() {
        let f = extract_fields("utm_source: LinkedIn\n");
        assert_eq!(utm_source(&f, "").as_deref(), Some("linkedin"));
        let f =
            extract_fields("Page URL: https://x.com/contact?utm_source=Google&utm_medium=cpc\n");
        assert_eq!(utm_source(&f, "").as_deref(), Some("google"));
    }

    #[test]
    fn system_senders() {
        for a in [
            "wordpress@site.com",
            "noreply@x.com",
            "no-reply@x.com",
            "x@formspree.io",
            "y@mail.hubspot.com",
        ] {
            assert!(is_system_sender(&EmailAddress::parse(a).unwrap()), "{a}");
        }
        assert!(!is_system_sender(
            &EmailAddress::parse("jane@x.com").unwrap()
        ));
    }
}
