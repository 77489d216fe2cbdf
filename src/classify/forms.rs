//! Website form notifications: `Label: value` fields and the submitter behind them.
//!
//! The sender of a form notification is a machine (`wordpress@`, a form service); making it
//! the lead would merge every submitter into one lead, so the submitter comes from Reply-To or
//! the form's email field, never from From.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
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
    let body = clip(body, super::parse::MAX_TEXT);
    // Every label has a colon after it or dashes before it: a letter without either (most
    // inquiries) has no field, and its lines need not be split and read one by one.
    if memchr::memchr(b':', body.as_bytes()).is_none()
        && memchr::memmem::find(body.as_bytes(), b"--").is_none()
    {
        return Vec::new();
    }
    let lines: Vec<&str> = super::parse::lines(body)
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

/// Whether `line` (trimmed) is a field's label line as [`extract_fields`] reads it, so that
/// what is not a field (a template's own sentences) can be told apart.
pub fn is_field_line(line: &str) -> bool {
    line.len() <= MAX_FIELD_LINE
        && !line.starts_with('>')
        && label_of(line).is_some_and(|(l, _)| plausible_label(l))
}

/// What a field holds, by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Email,
    Name,
    FirstName,
    LastName,
    Company,
    Phone,
}

/// The role a label has in the built-in (multilingual) label lists, if any.
pub fn label_role(label: &str) -> Option<Role> {
    let label = label.trim();
    let is = |list: &[&str]| list.iter().any(|w| label.eq_ignore_ascii_case(w));
    // Lists hold lower-case Unicode labels (`Société`); `eq_ignore_ascii_case` folds only
    // ASCII, so compare the lower-cased label too.
    let lower = label.to_lowercase();
    let has = |list: &[&str]| is(list) || list.contains(&lower.as_str());
    [
        (EMAIL_LABELS, Role::Email),
        (NAME_LABELS, Role::Name),
        (FIRST_NAME_LABELS, Role::FirstName),
        (LAST_NAME_LABELS, Role::LastName),
        (COMPANY_LABELS, Role::Company),
        (PHONE_LABELS, Role::Phone),
    ]
    .into_iter()
    .find(|(list, _)| has(list))
    .map(|(_, r)| r)
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
    "votre nom",
    "nom et prénom",
    "nom prénom",
    "dein name",
    "vor- und nachname",
    "tu nombre",
    "su nombre",
    "nome",
    "il tuo nome",
    "nome e cognome",
    "naam",
    "uw naam",
    "volledige naam",
    "seu nome",
    "nome completo",
    "your full name",
    "contact person",
];
const FIRST_NAME_LABELS: &[&str] = &[
    "first name",
    "firstname",
    "first",
    "given name",
    "vorname",
    "prénom",
    "prenom",
    "nombre de pila",
    "voornaam",
    "primeiro nome",
];
const LAST_NAME_LABELS: &[&str] = &[
    "last name",
    "lastname",
    "surname",
    "nachname",
    "nom de famille",
    "apellido",
    "apellidos",
    "last",
    "family name",
    "cognome",
    "achternaam",
    "sobrenome",
    "último nome",
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
    "organization name",
    "business name",
    "company / organization",
    "your organization",
    "firmenname",
    "nom de l'entreprise",
    "société / organisation",
    "nombre de la empresa",
    "azienda",
    "società",
    "bedrijf",
    "bedrijfsnaam",
    "organisatie",
    "nome da empresa",
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
    "mobile number",
    "mobile phone",
    "cell",
    "cell phone",
    "phone no",
    "phone no.",
    "handy",
    "mobil",
    "numéro de téléphone",
    "portable",
    "móvil",
    "celular",
    "cellulare",
    "telefoonnummer",
    "telefoon",
    "telemóvel",
];

/// A form system leadloop recognises without configuration, from what its default
/// notification looks like (the sending service, the default subject, fixed sentences of the
/// default template, or colours of its HTML table).
#[derive(Debug)]
pub struct BuiltIn {
    /// The name recorded on the lead (`contact-form-7`).
    pub name: &'static str,
    /// Domains a hosted service sends from: a notification from them is this system's.
    domains: &'static [&'static str],
    /// Fragments of the default subject (ASCII case-insensitive). Weak on their own: a person
    /// can write "New submission" too, so a subject hit also needs form fields.
    subjects: &'static [&'static str],
    /// Fragments of the default template's text or HTML (ASCII case-insensitive).
    markers: &'static [&'static str],
}

/// The built-in profiles, in the order they are tried.
pub static BUILTIN: &[BuiltIn] = &[
    BuiltIn {
        name: "formspree",
        domains: &["formspree.io"],
        subjects: &[],
        markers: &["someone just submitted your form on"],
    },
    BuiltIn {
        name: "netlify",
        domains: &["netlify.com", "netlify.app"],
        subjects: &["[netlify]"],
        markers: &["netlify forms"],
    },
    BuiltIn {
        name: "webflow",
        domains: &["webflow.com", "webflow.io"],
        subjects: &["new form submission on your webflow site"],
        markers: &["on your webflow site"],
    },
    BuiltIn {
        name: "hubspot",
        domains: &["hubspot.com", "hubspotemail.net", "hs-email.net"],
        subjects: &[],
        markers: &["view contact record", "view in hubspot"],
    },
    BuiltIn {
        name: "typeform",
        domains: &["typeform.com", "typeform.io"],
        subjects: &[],
        markers: &[],
    },
    BuiltIn {
        name: "jotform",
        domains: &["jotform.com", "jotform.eu", "jotform.us"],
        subjects: &[],
        markers: &["jotform.com/submission", "class=\"questioncolumn\""],
    },
    BuiltIn {
        name: "contact-form-7",
        domains: &[],
        subjects: &[],
        markers: &[
            "this e-mail was sent from a contact form on",
            "this email was sent from a contact form on",
            "this is a notification that a contact form was submitted on your website",
            "this mail is sent via contact form on",
        ],
    },
    BuiltIn {
        name: "gravity-forms",
        domains: &[],
        subjects: &[],
        // The colours of Gravity Forms' `{all_fields}` table (label row, value row).
        markers: &["#eaf2fa", "gform_"],
    },
    BuiltIn {
        name: "wpforms",
        domains: &["wpforms.com"],
        subjects: &["new entry:", "new wpforms entry"],
        markers: &["wpforms"],
    },
    BuiltIn {
        name: "elementor",
        domains: &[],
        subjects: &["new message from \""],
        markers: &["powered by: elementor", "powered by elementor"],
    },
    BuiltIn {
        name: "ninja-forms",
        domains: &[],
        subjects: &["ninja forms submission"],
        markers: &["ninja forms", "ninja-forms"],
    },
    BuiltIn {
        name: "fluent-forms",
        domains: &[],
        subjects: &[],
        markers: &["this form submitted at:", "fluentform", "fluent forms"],
    },
    BuiltIn {
        name: "formidable",
        domains: &[],
        subjects: &["form submitted on"],
        markers: &["formidable forms", "frm_"],
    },
    BuiltIn {
        name: "jetpack",
        domains: &[],
        subjects: &[],
        markers: &[
            "sent by an unverified visitor to your site",
            "sent by a verified",
            "contact form url:",
            "you got a new response!",
        ],
    },
    BuiltIn {
        name: "gravity-forms",
        domains: &[],
        subjects: &["new submission from"],
        markers: &[],
    },
    BuiltIn {
        name: "formstack",
        domains: &["formstack.com"],
        subjects: &[],
        markers: &[],
    },
    BuiltIn {
        name: "wufoo",
        domains: &["wufoo.com"],
        subjects: &[],
        markers: &[],
    },
    BuiltIn {
        name: "wix",
        domains: &["crm.wix.com", "wix-forms.com"],
        subjects: &[],
        markers: &[],
    },
    BuiltIn {
        name: "squarespace",
        domains: &["squarespace.info"],
        subjects: &["form submission -"],
        markers: &[],
    },
    BuiltIn {
        name: "google-forms",
        domains: &["forms.google.com", "docs.google.com"],
        subjects: &[],
        markers: &[],
    },
];

/// (profile index, needle) for every marker and every subject fragment.
fn needles(pick: fn(&BuiltIn) -> &'static [&'static str]) -> (AhoCorasick, Vec<usize>) {
    let mut owners = Vec::new();
    let mut pats = Vec::new();
    for (i, p) in BUILTIN.iter().enumerate() {
        for m in pick(p) {
            owners.push(i);
            pats.push(*m);
        }
    }
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(&pats)
        .expect("static patterns");
    (ac, owners)
}

static MARKERS: LazyLock<(AhoCorasick, Vec<usize>)> = LazyLock::new(|| needles(|p| p.markers));
static SUBJECTS: LazyLock<(AhoCorasick, Vec<usize>)> = LazyLock::new(|| needles(|p| p.subjects));

/// How a built-in profile was recognised.
#[derive(Debug)]
pub struct BuiltInHit {
    pub profile: &'static BuiltIn,
    /// Recognised by the hosted service's sending domain.
    pub by_sender: bool,
    /// Recognised by its sender or its template, not only by its subject.
    pub strong: bool,
    pub evidence: String,
}

/// Bytes at each end of the text searched for template sentences (twice as many at the start
/// of the HTML, where colours and class names of the first rows survive).
const MARKER_SCAN: usize = 1024;

/// The built-in profile a notification matches, if any: by sending domain, then by a fixed
/// sentence or HTML marker of the template, then (weakly) by the default subject.
pub fn builtin<'m>(
    from: Option<&EmailAddress>,
    subject: &str,
    body: &str,
    html: &dyn Fn() -> Vec<&'m str>,
) -> Option<BuiltInHit> {
    let domain = from.map_or("", |f| f.domain());
    if let Some(f) = from
        && let Some(p) = BUILTIN
            .iter()
            .find(|p| p.domains.iter().any(|d| static_domain(domain, d)))
    {
        return Some(BuiltInHit {
            profile: p,
            by_sender: true,
            strong: true,
            evidence: format!("built-in form profile '{}' (sender {f})", p.name),
        });
    }
    let (ac, owners) = &*MARKERS;
    // Template sentences sit in the first or the last lines of a notification.
    let head = clip(body, MARKER_SCAN);
    let tail_start = body.len().saturating_sub(MARKER_SCAN).max(head.len());
    let tail = (tail_start..body.len())
        .find(|&i| body.is_char_boundary(i))
        .and_then(|i| body.get(i..))
        .unwrap_or("");
    let found = ac
        .find(head)
        .or_else(|| ac.find(tail))
        .map(|m| (m, "text"))
        .or_else(|| {
            html()
                .into_iter()
                .find_map(|h| ac.find(clip(h, MARKER_SCAN * 2)))
                .map(|m| (m, "HTML"))
        });
    if let Some((m, where_)) = found
        && let Some(p) = owners
            .get(m.pattern().as_usize())
            .and_then(|&i| BUILTIN.get(i))
    {
        let needle = p
            .markers
            .iter()
            .find(|n| n.len() == m.len())
            .copied()
            .unwrap_or("");
        return Some(BuiltInHit {
            profile: p,
            by_sender: false,
            strong: true,
            evidence: format!(
                "built-in form profile '{}' ({where_} contains \"{needle}\")",
                p.name
            ),
        });
    }
    let (ac, owners) = &*SUBJECTS;
    let m = ac.find(clip(subject, 500))?;
    let p = owners
        .get(m.pattern().as_usize())
        .and_then(|&i| BUILTIN.get(i))?;
    Some(BuiltInHit {
        profile: p,
        by_sender: false,
        strong: false,
        evidence: format!(
            "built-in form profile '{}' (subject \"{}\")",
            p.name,
            clip(subject, 80)
        ),
    })
}

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

/// Whether `domain` (lower case, as addresses are kept) is `wanted` (a lower-case static
/// domain) or one of its subdomains; cheaper than the general [`domain_matches`].
fn static_domain(domain: &str, wanted: &str) -> bool {
    domain == wanted
        || domain
            .strip_suffix(wanted)
            .is_some_and(|head| head.ends_with('.'))
}

/// Whether an address sends for a hosted form service leadloop knows.
pub fn hosted_service(addr: &EmailAddress) -> bool {
    let domain = addr.domain();
    BUILTIN
        .iter()
        .any(|p| p.domains.iter().any(|d| static_domain(domain, d)))
}

/// The form service an address belongs to, if any.
pub fn service_name(addr: &EmailAddress) -> Option<&'static str> {
    let domain = addr.domain();
    FORM_SERVICES
        .iter()
        .find(|(d, _)| static_domain(domain, d))
        .map(|(_, n)| *n)
}

/// Whether an address is a machine sender rather than a person.
pub fn is_system_sender(addr: &EmailAddress) -> bool {
    machine_sender(addr).is_some()
}

/// Local parts of mail servers' own addresses.
const DAEMON_LOCALS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
    "post_master",
    "mdaemon",
];

/// Domains email service providers send (and receive bounces) from: an address there is the
/// provider's machinery, never a person.
const ESP_DOMAINS: &[&str] = &[
    "amazonses.com",
    "sendgrid.net",
    "mailgun.org",
    "mailgun.net",
    "mcsv.net",
    "mcdlv.net",
    "rsgsv.net",
    "mailchimpapp.net",
    "mandrillapp.com",
    "sparkpostmail.com",
    "postmarkapp.com",
    "mtasv.net",
    "sendinblue.com",
    "brevosend.com",
    "mailjet.com",
    "createsend.com",
    "cmail19.com",
    "cmail20.com",
    "ccsend.com",
    "exacttarget.com",
    "klaviyomail.com",
    "mailerlite.com",
    "emsend.net",
];

/// Bounce and VERP addresses: `bounce@`, `bounces+…@`, `bounce-123-abc@`, `list-bounces@`,
/// `pm_bounces@`, `b.123.abc@`, and the BATV/SRS rewrites (`prvs=…`, `SRS0=…`).
static BOUNCE_LOCAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:bounces?(?:[-_.+=].*)?|.*[-_]bounces?(?:\+.*)?|b\.\d+\..+|(?:ms)?prvs\d*=.+|srs[01][=+].+)$",
    )
    .expect("static regex")
});

/// What kind of machine sender an address is, or `None` for what may be a person.
pub fn machine_sender(addr: &EmailAddress) -> Option<&'static str> {
    let full = addr.local_part().to_ascii_lowercase();
    let local = full.split('+').next().unwrap_or("");
    if DAEMON_LOCALS.contains(&local)
        || local.starts_with("mailer-daemon")
        || local.starts_with("postmaster")
    {
        return Some("mail server address");
    }
    if local.starts_with("noreply")
        || local.starts_with("no-reply")
        || local.starts_with("no_reply")
        || local.starts_with("donotreply")
        || local.starts_with("do-not-reply")
        || local.starts_with("do_not_reply")
    {
        return Some("no-reply address");
    }
    if BOUNCE_LOCAL.is_match(&full) {
        return Some("bounce address");
    }
    if service_name(addr).is_some() || SYSTEM_LOCALS.contains(&local) {
        return Some("automated address");
    }
    esp_domain(addr).map(|_| "email service provider domain")
}

/// The email service provider domain an address is at, if any.
pub fn esp_domain(addr: &EmailAddress) -> Option<&'static str> {
    let domain = addr.domain();
    ESP_DOMAINS
        .iter()
        .find(|d| static_domain(domain, d))
        .copied()
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

/// The submitter's address when no field carries a known email label: a field whose label
/// mentions mail (`Work email`, `What's your email address?`), or a `From`/`Sender` field
/// holding `Name <address>` (Contact Form 7's default template). Returns the display name too.
pub fn email_field_loose(
    fields: &[(String, String)],
    acceptable: &dyn Fn(&EmailAddress) -> bool,
) -> Option<(EmailAddress, Option<String>)> {
    let mentions_mail = |l: &str| {
        let l = l.to_lowercase();
        l.contains("mail") || l.contains("courriel") || l.contains("correo")
    };
    let sender_label = |l: &str| {
        [
            "from",
            "sender",
            "von",
            "de",
            "absender",
            "expéditeur",
            "remitente",
        ]
        .iter()
        .any(|w| l.eq_ignore_ascii_case(w))
    };
    for pass in [mentions_mail as fn(&str) -> bool, sender_label] {
        for (l, v) in fields {
            if !pass(l) {
                continue;
            }
            if let Some(n) = super::parse::parse_name_addr(v).filter(|n| acceptable(&n.email)) {
                return Some((n.email, n.name));
            }
        }
    }
    None
}

/// The first acceptable address anywhere in the body, for notifications of hosted services
/// whose layout names the answer to a question rather than an `Email` field.
pub fn any_email(body: &str, acceptable: &dyn Fn(&EmailAddress) -> bool) -> Option<EmailAddress> {
    super::parse::emails_in(clip(body, 64 * 1024))
        .into_iter()
        .find(|a| acceptable(a))
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

/// `utm_*` URL parameters in `text`, in order: `(name, raw value)`. Analytics tools write the
/// names in lower case, so a plain search for `utm_` finds each candidate (a SIMD search,
/// cheaper than a regex over every byte), which is then read by hand.
fn utm_params(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let b = text.as_bytes();
    memchr::memmem::find_iter(b, b"utm_").filter_map(move |i| {
        if !matches!(
            i.checked_sub(1).and_then(|p| b.get(p)),
            Some(b'?' | b'&' | b'#' | b';')
        ) {
            return None;
        }
        let rest = text.get(i..)?;
        let name_len = 4 + rest
            .bytes()
            .skip(4)
            .take_while(u8::is_ascii_lowercase)
            .count();
        if !(6..=16).contains(&name_len) || rest.as_bytes().get(name_len) != Some(&b'=') {
            return None;
        }
        let value = rest.get(name_len + 1..)?;
        let end = value
            .find(|c: char| c.is_whitespace() || "&#'\"<>".contains(c))
            .unwrap_or(value.len());
        let value = clip(value.get(..end)?, 200);
        (!value.is_empty()).then(|| (rest.get(..name_len).unwrap_or(""), value))
    })
}

/// Labels of fields that hold the page the form was sent from, or the page before it.
const PAGE_LABELS: &[&str] = &[
    "page url",
    "page",
    "url",
    "source url",
    "form url",
    "contact form url",
    "submitted from",
    "embed url",
    "landing page",
    "page submitted on",
    "seite",
];
const REFERRER_LABELS: &[&str] = &["referrer", "referer", "referring url", "referrer url"];

/// Decodes `%XX` escapes and `+` of a URL query value, keeping anything undecodable as is.
fn url_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Adds what a form says about where the submitter came from, as extra fields: the `utm_*`
/// parameters of URLs in the fields or the body (hidden fields already named `utm_*` win),
/// `page_url` and `referrer`. Returns the referrer's host for channel attribution.
///
/// `html` are the message's HTML parts: link targets (`<a href="…?utm_source=…">`) are lost
/// in the text, so their parameters are read from the markup.
pub fn add_origin(fields: &mut Vec<(String, String)>, body: &str, html: &[&str]) {
    let norm = |l: &str| l.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let has = |fields: &[(String, String)], key: &str| fields.iter().any(|(l, _)| norm(l) == key);
    let mut extra: Vec<(String, String)> = Vec::new();
    // The fields were read from the body, so the body (and the HTML) holds every URL.
    let scan = |text: &str, extra: &mut Vec<(String, String)>| {
        for (k, v) in utm_params(clip(text, 64 * 1024)).take(20) {
            if !has(fields, k) && !extra.iter().any(|(l, _)| l == k) {
                extra.push((k.to_owned(), clip(&url_decode(v), 200).to_owned()));
            }
        }
    };
    scan(body, &mut extra);
    for h in html {
        scan(h, &mut extra);
    }
    let page = fields
        .iter()
        .find(|(l, v)| PAGE_LABELS.iter().any(|p| l.eq_ignore_ascii_case(p)) && v.contains("://"))
        .map(|(_, v)| v.trim().to_owned());
    let referrer = fields
        .iter()
        .find(|(l, v)| {
            REFERRER_LABELS.iter().any(|p| l.eq_ignore_ascii_case(p)) && v.contains("://")
        })
        .map(|(_, v)| v.trim().to_owned());
    // Under fixed names, so that later steps (the site, the channel) find them.
    let named = |key: &str| fields.iter().any(|(l, _)| l == key);
    if let Some(p) = page.filter(|_| !named("page_url")) {
        extra.push(("page_url".into(), p));
    }
    if let Some(r) = referrer.filter(|_| !named("referrer")) {
        extra.push(("referrer".into(), r));
    }
    fields.extend(extra);
}

/// The host of an `http(s)` URL, lower-cased, without `www.`.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://")?.1;
    let host = rest
        .split(['/', '?', '#', ':'])
        .next()?
        .trim_start_matches("www.")
        .to_ascii_lowercase();
    (host.contains('.') && host.len() <= 253).then_some(host)
}

/// A channel name for a referrer from a well-known site (search engines and social networks),
/// so a submission without utm parameters still says where it came from.
pub fn referrer_source(fields: &[(String, String)]) -> Option<&'static str> {
    let r = fields.iter().find(|(l, _)| {
        l == "referrer" || REFERRER_LABELS.iter().any(|p| l.eq_ignore_ascii_case(p))
    })?;
    let host = url_host(&r.1)?;
    const SITES: &[(&str, &str)] = &[
        ("linkedin.com", "linkedin"),
        ("lnkd.in", "linkedin"),
        ("facebook.com", "facebook"),
        ("fb.com", "facebook"),
        ("instagram.com", "instagram"),
        ("twitter.com", "twitter"),
        ("t.co", "twitter"),
        ("x.com", "twitter"),
        ("bing.com", "bing"),
        ("duckduckgo.com", "duckduckgo"),
        ("youtube.com", "youtube"),
    ];
    if let Some((_, n)) = SITES.iter().find(|(d, _)| domain_matches(&host, d)) {
        return Some(n);
    }
    // google.com, google.de, google.co.uk …
    let labels: Vec<&str> = host.split('.').collect();
    labels
        .iter()
        .rev()
        .skip(1)
        .take(2)
        .any(|l| *l == "google")
        .then_some("google")
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
    fn builtin_profiles_by_sender_template_and_subject() {
        let none = || Vec::new();
        let a = EmailAddress::parse("noreply@formspree.io").unwrap();
        let hit = builtin(Some(&a), "x", "", &none).unwrap();
        assert_eq!(hit.profile.name, "formspree");
        assert!(hit.by_sender && hit.strong);
        let hit = builtin(
            None,
            "x",
            "Name: A\n-- \nThis e-mail was sent from a contact form on Site (https://s.example)",
            &none,
        )
        .unwrap();
        assert_eq!(hit.profile.name, "contact-form-7");
        assert!(hit.strong && !hit.by_sender);
        let html = || vec!["<tr bgcolor=\"#EAF2FA\"><td>Name</td></tr>"];
        assert_eq!(
            builtin(None, "x", "Name", &html).unwrap().profile.name,
            "gravity-forms"
        );
        let hit = builtin(None, "New Entry: Contact", "", &none).unwrap();
        assert_eq!(hit.profile.name, "wpforms");
        assert!(!hit.strong);
        assert!(builtin(None, "Hello", "Just a letter", &none).is_none());
    }

    #[test]
    fn origin_fields_from_urls() {
        let body = "Page URL: https://s.example/p?x=1&utm_source=Google&utm_campaign=spring%20sale\nReferrer: https://www.linkedin.com/feed/\n";
        let mut f = extract_fields(body);
        add_origin(
            &mut f,
            body,
            &["<a href=\"https://s.example/?a=1&amp;utm_medium=cpc\">x</a>"],
        );
        let get = |k: &str| f.iter().find(|(l, _)| l == k).map(|(_, v)| v.as_str());
        assert_eq!(get("utm_source"), Some("Google"));
        assert_eq!(get("utm_campaign"), Some("spring sale"));
        assert_eq!(get("utm_medium"), Some("cpc"));
        assert_eq!(
            get("page_url"),
            Some("https://s.example/p?x=1&utm_source=Google&utm_campaign=spring%20sale")
        );
        assert_eq!(referrer_source(&f), Some("linkedin"));
        assert_eq!(
            url_host("https://www.Example.com:8080/x"),
            Some("example.com".into())
        );
    }

    #[test]
    fn system_senders() {
        for a in [
            "wordpress@site.com",
            "noreply@x.com",
            "no-reply@x.com",
            "x@formspree.io",
            "y@mail.hubspot.com",
            "MAILER-DAEMON@mx.example",
            "postmaster@x.com",
            "do-not-reply@x.com",
            "bounce@x.com",
            "bounce-123-abc@news.x.com",
            "bounces+123-abc=company.com@x.com",
            "list-bounces@lists.x.com",
            "pm_bounces@pm-bounces.x.com",
            "b.123.abc@x.com",
            "prvs=1234abcd=jane@x.com",
            "SRS0=abcd=XY=x.com=jane@fwd.x.com",
            "0100018abc@amazonses.com",
            "info@em123.sendgrid.net",
            "x@mail123.mcsv.net",
            "a@sparkpostmail.com",
        ] {
            assert!(is_system_sender(&EmailAddress::parse(a).unwrap()), "{a}");
        }
        for a in [
            "jane@x.com",
            "bob.bounce.smith@x.com",
            "bouncer@x.com",
            "b.jones@x.com",
            "jane@sendgrid.com",
        ] {
            assert!(!is_system_sender(&EmailAddress::parse(a).unwrap()), "{a}");
        }
    }
}
