//! Small, bounded helpers over mail-parser's [`Message`], shared by every rule.
//!
//! mail-parser's own accessors index `parts[0]` and may panic on an empty message, and its
//! HTML-to-text conversion flattens tables into one line, which destroys `Label: value` form
//! fields; these helpers avoid both and cap how much text any rule ever scans.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use mail_parser::{Address, HeaderValue, Message, MessagePart, PartType};
use regex::Regex;

use crate::domain::EmailAddress;

/// Upper bound on the body text any rule scans; real inquiries are far shorter, and the cap
/// keeps hostile 50 MB bodies from costing more than a few milliseconds.
pub const MAX_TEXT: usize = 256 * 1024;

/// Upper bound on one header value we look at (hostile 100 KB header lines exist).
const MAX_HEADER: usize = 8 * 1024;

/// How deep we follow attached messages inside attached messages.
pub const MAX_NESTING: usize = 8;

/// Charset names senders misspell or that only have a legacy alias, with the name the parser
/// knows. Unknown charsets are read as UTF-8 by the parser, which is right for `uft-8` and
/// `utf8` but garbles UTF-7 and Latin-1 text.
const CHARSET_ALIASES: &[(&str, &str)] = &[
    ("unicode-1-1-utf-7", "utf-7"),
    ("unicode-2-0-utf-7", "utf-7"),
    ("x-unicode-2-0-utf-7", "utf-7"),
    ("x-unicode-1-1-utf-7", "utf-7"),
    ("utf7", "utf-7"),
    ("latin-1", "iso-8859-1"),
    ("iso-latin-1", "iso-8859-1"),
    ("iso8859-1", "iso-8859-1"),
    ("iso-8859_1", "iso-8859-1"),
    ("win-1252", "windows-1252"),
    ("cp-1252", "windows-1252"),
    ("windows1252", "windows-1252"),
    ("ms-1252", "windows-1252"),
    ("win-1250", "windows-1250"),
    ("windows1250", "windows-1250"),
    ("win-1251", "windows-1251"),
    ("windows1251", "windows-1251"),
    ("iso-8859-15-i", "iso-8859-15"),
    ("latin-9", "iso-8859-15"),
];

/// Every place a charset name appears: a `charset=` parameter (quoted or not) and an encoded
/// word (`=?name?`).
static CHARSET_FIXES: LazyLock<(AhoCorasick, Vec<String>)> = LazyLock::new(|| {
    let mut pats = Vec::new();
    let mut reps = Vec::new();
    for (bad, good) in CHARSET_ALIASES {
        for (pre, post) in [("charset=", ""), ("charset=\"", "\""), ("=?", "?")] {
            pats.push(format!("{pre}{bad}{post}"));
            reps.push(format!("{pre}{good}{post}"));
        }
        // Unquoted parameter at the end of a line or before another parameter.
        for end in [";", "\r", "\n", " "] {
            pats.push(format!("charset={bad}{end}"));
            reps.push(format!("charset={good}{end}"));
        }
    }
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(&pats)
        .expect("static patterns");
    (ac, reps)
});

/// The message with misspelled and legacy charset names replaced by the ones the parser
/// decodes.
pub fn fix_charsets(raw: &[u8]) -> Vec<u8> {
    let (ac, reps) = &*CHARSET_FIXES;
    ac.replace_all_bytes(raw, reps)
}

/// Whether a parsed message names a charset the parser only knows by another name: in a
/// part's `charset` parameter, or in an encoded word of the top-level headers. Cheap, so that
/// the rare message that does is parsed a second time, and no other message is scanned whole.
pub fn has_legacy_charset(msg: &Message<'_>) -> bool {
    let legacy = |name: &str| {
        CHARSET_ALIASES
            .iter()
            .any(|(bad, _)| name.trim().eq_ignore_ascii_case(bad))
    };
    let in_params = msg.parts.iter().take(64).any(|p| {
        p.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case("Content-Type"))
            .filter_map(|h| h.value.as_content_type())
            .any(|ct| ct.attribute("charset").is_some_and(legacy))
    });
    if in_params {
        return true;
    }
    let Some(root) = root(msg) else {
        return false;
    };
    let head = msg
        .raw_message
        .get(root.offset_header as usize..root.offset_body as usize)
        .unwrap_or_default();
    memchr::memmem::find(head, b"=?").is_some() && CHARSET_FIXES.0.is_match(head)
}

/// Whether `domain` is `wanted` or one of its subdomains.
pub fn domain_matches(domain: &str, wanted: &str) -> bool {
    let wanted = wanted.trim().trim_start_matches('@').trim_end_matches('.');
    !wanted.is_empty()
        && (domain.eq_ignore_ascii_case(wanted)
            || domain.len() > wanted.len()
                && domain
                    .get(domain.len() - wanted.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(wanted))
                && domain
                    .get(..domain.len() - wanted.len())
                    .is_some_and(|head| head.ends_with('.')))
}

/// Returns the longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The top-level headers of a message, without mail-parser's panicking `parts[0]`.
pub fn root<'a, 'x>(msg: &'a Message<'x>) -> Option<&'a MessagePart<'x>> {
    msg.parts.first()
}

/// The top-level headers called `name` (case-insensitive), at most `limit` of them: a hostile
/// message may repeat a header thousands of times.
fn headers_named<'a, 'x>(
    msg: &'a Message<'x>,
    name: &'a str,
    limit: usize,
) -> impl Iterator<Item = &'a mail_parser::Header<'x>> {
    root(msg)
        .into_iter()
        .flat_map(|r| r.headers.iter())
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .take(limit)
}

fn value_text(msg: &Message<'_>, h: &mail_parser::Header<'_>) -> String {
    let text = match &h.value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(" "),
        _ => {
            let raw = msg
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let raw = raw.get(..MAX_HEADER).unwrap_or(raw);
            String::from_utf8_lossy(raw).into_owned()
        }
    };
    let clipped = clip(&text, MAX_HEADER);
    if !clipped.contains(['\r', '\n']) {
        // One line (nearly every header): the same as the joined pieces below, one copy.
        return clipped.trim().to_owned();
    }
    clipped
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first value of header `name`.
pub fn header(msg: &Message<'_>, name: &str) -> Option<String> {
    headers_named(msg, name, 1)
        .next()
        .map(|h| value_text(msg, h))
}

/// The values of the first `limit` header fields called `name`, top down (the topmost was
/// added last, by the server nearest to us).
pub fn header_values(msg: &Message<'_>, name: &str, limit: usize) -> Vec<String> {
    headers_named(msg, name, limit)
        .map(|h| value_text(msg, h))
        .collect()
}

/// Whether header `name` is present at all.
pub fn has_header(msg: &Message<'_>, name: &str) -> bool {
    headers_named(msg, name, 1).next().is_some()
}

/// Names of all top-level headers.
pub fn header_names<'m>(msg: &'m Message<'_>) -> impl Iterator<Item = &'m str> {
    root(msg)
        .into_iter()
        .flat_map(|r| r.headers.iter().map(|h| h.name()))
}

/// Number of header fields called `name`.
pub fn count_headers(msg: &Message<'_>, name: &str) -> usize {
    headers_named(msg, name, usize::MAX).count()
}

/// An address with its display name, as read from a header or a text line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub email: EmailAddress,
    pub name: Option<String>,
}

fn clean_name(name: &str) -> Option<String> {
    let n = name
        .trim()
        .trim_matches(|c: char| {
            matches!(c, '"' | '\'' | '*' | '<' | '>' | '[' | '(') || c.is_whitespace()
        })
        .trim();
    let n = clip(n, 200);
    if n.is_empty() || n.contains('@') {
        None
    } else {
        Some(n.to_owned())
    }
}

fn address_list(addr: &Address<'_>) -> Vec<Named> {
    addr.iter()
        .take(100)
        .filter_map(|a| {
            let email = EmailAddress::parse(a.address()?).ok()?;
            Some(Named {
                email,
                name: a.name().and_then(clean_name),
            })
        })
        .collect()
}

/// Addresses from an address header (`From`, `To`, `Reply-To`, …); text headers such as
/// `Delivered-To` are scanned for address-like tokens instead.
pub fn addresses(msg: &Message<'_>, name: &str) -> Vec<Named> {
    let mut out = Vec::new();
    for h in headers_named(msg, name, 16) {
        match &h.value {
            HeaderValue::Address(a) => out.extend(address_list(a)),
            _ => out.extend(
                emails_in(&value_text(msg, h))
                    .into_iter()
                    .map(|email| Named { email, name: None }),
            ),
        }
    }
    out
}

/// The first address of an address header.
pub fn first_address(msg: &Message<'_>, name: &str) -> Option<Named> {
    addresses(msg, name).into_iter().next()
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9][a-z0-9._%+'=-]{0,63}@[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z]{2,24}")
        .expect("static regex")
});

/// Address-like tokens in free text, in order, valid ones only.
pub fn emails_in(text: &str) -> Vec<EmailAddress> {
    EMAIL
        .find_iter(clip(text, MAX_TEXT))
        .take(200)
        .filter_map(|m| EmailAddress::parse(m.as_str()).ok())
        .collect()
}

static NAME_ADDR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(.*?)\s*(?:<|\[mailto:|\()\s*(?:mailto:)?([^<>\[\]()\s]+@[^<>\[\]()\s]+?)\s*(?:>|\]|\))",
    )
    .expect("static regex")
});

/// Reads `Jane Doe <jane@example.com>`, `Jane Doe [mailto:jane@example.com]`, `"Doe, Jane"
/// <…>` or a bare address from a line of text, as forwarded blocks and forms write them.
pub fn parse_name_addr(value: &str) -> Option<Named> {
    let value = clip(value.trim(), 1000);
    if let Some(c) = NAME_ADDR.captures(value) {
        let email = c
            .get(2)
            .and_then(|m| EmailAddress::parse(m.as_str().trim_matches('*')).ok());
        if let Some(email) = email {
            // Outlook's text form `Name <a@b<mailto:a@b>>` leaves `Name <a@b` before the
            // inner bracket: the name ends at the first `<`.
            let name = c
                .get(1)
                .and_then(|m| m.as_str().split('<').next())
                .and_then(clean_name);
            return Some(Named { email, name });
        }
    }
    let email = emails_in(value).into_iter().next()?;
    let before = value
        .to_ascii_lowercase()
        .find(email.as_str())
        .and_then(|i| value.get(..i))
        .and_then(clean_name);
    Some(Named {
        email,
        name: before,
    })
}

/// Message-IDs from a header value, without angle brackets.
pub fn message_ids(msg: &Message<'_>, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in headers_named(msg, name, 4) {
        let ids: Vec<String> = match &h.value {
            HeaderValue::Text(t) => vec![t.to_string()],
            HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
            _ => value_text(msg, h)
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        out.extend(
            ids.into_iter()
                .take(100)
                .map(|s| s.trim().trim_matches(['<', '>']).to_owned())
                .filter(|s| !s.is_empty() && s.len() <= 998),
        );
    }
    out
}

/// The Date header in UTC.
pub fn date(msg: &Message<'_>) -> Option<chrono::DateTime<chrono::Utc>> {
    let d = root(msg)?
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Date"))?;
    let d = d.value.as_datetime()?;
    if !d.is_valid() {
        return None;
    }
    chrono::DateTime::from_timestamp(d.to_timestamp(), 0)
}

/// The calendar day the sender wrote the message on, in the sender's own time zone: the
/// reference for "back on Monday"-style dates.
pub fn local_day(msg: &Message<'_>) -> Option<chrono::NaiveDate> {
    let d = root(msg)?
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Date"))?;
    let d = d.value.as_datetime()?;
    chrono::NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
}

/// The subject, decoded and clipped.
pub fn subject(msg: &Message<'_>) -> Option<String> {
    header(msg, "Subject").map(|s| clip(s.trim(), 2000).to_owned())
}

/// Content type of a part as `type/subtype`, lower-cased.
pub fn content_type(part: &MessagePart<'_>) -> Option<(String, Option<String>)> {
    let h = part
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("Content-Type"))?;
    let ct = h.value.as_content_type()?;
    // Built in one buffer and lower-cased in place: every stage asks for the types of every
    // part, and formatting two lower-cased copies cost more than the rest of the lookup.
    let (ctype, subtype) = (ct.ctype(), ct.subtype().unwrap_or(""));
    let mut t = String::with_capacity(ctype.len() + 1 + subtype.len());
    t.push_str(ctype);
    t.push('/');
    t.push_str(subtype);
    t.make_ascii_lowercase();
    Some((
        t,
        ct.attribute("report-type").map(|s| s.to_ascii_lowercase()),
    ))
}

/// A part's decoded body as text (lossy for binary parts), clipped to `max` bytes.
pub fn part_text(part: &MessagePart<'_>, max: usize) -> Option<String> {
    match &part.body {
        PartType::Text(t) => Some(clip(t, max).to_owned()),
        PartType::Html(h) => Some(html_to_text(clip(h, max))),
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            let b = b.get(..max).unwrap_or(b);
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

/// The lines of `text`, exactly as [`str::lines`] splits them (at `\n`, a `\r` before it
/// dropped, no empty last line), found with a vectorised search: the classifier walks the
/// lines of every body several times, and `str::lines` spends most of that in per-line search
/// setup.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let line = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        };
        Some(line)
    })
}

/// The readable body: the text/plain parts, or the HTML parts converted to text when there are
/// none, joined and clipped to [`MAX_TEXT`].
pub fn body_text(msg: &Message<'_>) -> String {
    fn take(msg: &Message<'_>, out: &mut String, ids: &[u32]) {
        for id in ids.iter().take(32) {
            if out.len() >= MAX_TEXT {
                break;
            }
            let Some(part) = msg.parts.get(*id as usize) else {
                continue;
            };
            // Plain text is appended straight from the part, without an intermediate copy.
            if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            match &part.body {
                PartType::Text(t) => out.push_str(clip(t, MAX_TEXT)),
                PartType::Html(h) => out.push_str(&html_to_text(clip(h, MAX_TEXT))),
                _ => {}
            }
        }
    }
    let mut out = String::new();
    take(msg, &mut out, &msg.text_body);
    if out.trim().is_empty() {
        out.clear();
        take(msg, &mut out, &msg.html_body);
    }
    let clipped = clip(&out, MAX_TEXT).len();
    out.truncate(clipped);
    lf_only(out)
}

/// The message's HTML parts as written (at most four), for what conversion to text drops.
pub fn html_parts<'m>(msg: &'m Message<'_>) -> Vec<&'m str> {
    msg.html_body
        .iter()
        .take(4)
        .filter_map(|id| match msg.parts.get(*id as usize).map(|p| &p.body) {
            Some(PartType::Html(h)) => Some(clip(h, MAX_TEXT)),
            _ => None,
        })
        .collect()
}

/// CRLF and lone CR become LF, in one pass (the same result as replacing "\r\n" and then
/// '\r'), and without a copy when there is no CR at all.
fn lf_only(out: String) -> String {
    if !out.contains('\r') {
        return out;
    }
    // In place: every CR becomes LF and the LF after it is dropped, so the text only shrinks;
    // the runs between CRs move as blocks.
    let mut bytes = out.into_bytes();
    let mut write = 0;
    let mut read = 0;
    while let Some(cr) = memchr::memchr(b'\r', &bytes[read..]).map(|i| read + i) {
        bytes.copy_within(read..cr, write);
        write += cr - read;
        bytes[write] = b'\n';
        write += 1;
        read = cr + 1;
        if bytes.get(read) == Some(&b'\n') {
            read += 1;
        }
    }
    let end = bytes.len();
    bytes.copy_within(read..end, write);
    write += end - read;
    bytes.truncate(write);
    // Only ASCII bytes were replaced or removed, so the text is still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the whitespace-separated words of `s` to `out`, joined by single spaces.
fn push_words(out: &mut String, s: &str) {
    for (i, w) in s.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

static HTML_DROP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?is)<head\b.*?</head\s*>|<style\b.*?</style\s*>|<script\b.*?</script\s*>|<!--.*?-->",
    )
    .expect("static regex")
});
static HTML_CELL_GAP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</t[dh]\s*>\s*<t[dh]\b[^>]*>").expect("static regex"));
static HTML_BREAK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<br\b[^>]*>|</?(?:p|div|tr|li|ul|ol|h[1-6]|table|tbody|thead|blockquote|dt|dd|hr)\b[^>]*>")
        .expect("static regex")
});
static HTML_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("static regex"));
static HTML_ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});").expect("static regex")
});

/// A bold label alone in its cell, paragraph or line, followed by its value in the next row,
/// cell, paragraph or line: the layout of Gravity Forms', WPForms', Fluent Forms' and HubSpot's
/// HTML notifications. Also `<dt>Label</dt><dd>value</dd>`. Rewritten to `Label: value` so the
/// field reader sees one line.
static HTML_LABEL_ABOVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)<(?:strong|b|dt)\b[^>]*>\s*([^<>]{1,80}?)\s*</(?:strong|b|dt)\s*>\s*(?:</(?:font|span|label|p|div|td|th|tr)\s*>\s*|<br\b[^>]*>\s*)*(?:<tr\b[^>]*>\s*(?:<t[dh]\b[^>]*>(?:\s|&nbsp;|&#160;)*</t[dh]\s*>\s*)?)?(?:<(?:td|th|p|div|dd|font|span)\b[^>]*>\s*)*",
    )
    .expect("static regex")
});

/// Opening tags a label above its value starts with; a cheap test before the costly regex.
static LABEL_TAGS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build(["<b>", "<b ", "<strong", "<dt"])
        .expect("static patterns")
});

/// Marks the gap between two table cells while tags are stripped.
const CELL: char = '\u{1f}';

/// Converts HTML to text, keeping table rows as lines so that a two-cell row
/// (`<td>Email</td><td>jane@example.com</td>`) reads as `Email: jane@example.com`.
pub fn html_to_text(html: &str) -> String {
    let html = clip(html, MAX_TEXT);
    let s = HTML_DROP.replace_all(html, " ");
    let s = if LABEL_TAGS.is_match(s.as_ref()) {
        // Only a label that ends its cell or line is rewritten; a bold word inside a sentence
        // is followed by more text in the same element and stays as it is.
        let rewritten = HTML_LABEL_ABOVE.replace_all(&s, |c: &regex::Captures<'_>| {
            let whole = c.get(0).map_or("", |m| m.as_str());
            let label = c.get(1).map_or("", |m| m.as_str());
            let lower = whole.to_ascii_lowercase();
            let broke = ["</t", "</p", "</d", "<br"]
                .iter()
                .any(|t| lower.contains(t));
            if broke {
                format!("\n{}: ", label.trim().trim_end_matches(':').trim_end())
            } else {
                whole.to_owned()
            }
        });
        Cow::Owned(rewritten.into_owned())
    } else {
        s
    };
    let s = HTML_CELL_GAP.replace_all(&s, CELL.to_string().as_str());
    let s = HTML_BREAK.replace_all(&s, "\n");
    let s = HTML_TAG.replace_all(&s, "");
    let s = HTML_ENTITY.replace_all(&s, |c: &regex::Captures<'_>| {
        let e = c.get(1).map_or("", |m| m.as_str());
        let ch = if let Some(hex) = e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
        } else if let Some(dec) = e.strip_prefix('#') {
            dec.parse::<u32>().ok().and_then(char::from_u32)
        } else {
            match e.to_ascii_lowercase().as_str() {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => None,
            }
        };
        ch.map_or_else(
            || c.get(0).map_or("", |m| m.as_str()).to_owned(),
            String::from,
        )
    });
    // Each line is written straight into `out`: the words of every cell joined by single spaces
    // (`\r`, `\t` and no-break spaces are whitespace to `split_whitespace` too), a two-cell row
    // with both cells non-blank as `Label: value`, the non-blank cells of any other row joined
    // by a space. Blank lines collapse to at most one empty line.
    let mut out = String::with_capacity(s.len());
    let mut label = String::new();
    let blank = |c: &str| c.split_whitespace().next().is_none();
    for line in s.split('\n') {
        let start = out.len();
        let pair = line
            .split_once(CELL)
            .filter(|(l, v)| !v.contains(CELL) && !blank(l) && !blank(v));
        if let Some((l, v)) = pair {
            label.clear();
            push_words(&mut label, l);
            out.push_str(label.trim_end_matches(':').trim_end());
            out.push_str(": ");
            push_words(&mut out, v);
        } else {
            for cell in line.split(CELL).filter(|c| !blank(c)) {
                if out.len() > start {
                    out.push(' ');
                }
                push_words(&mut out, cell);
            }
        }
        if out.len() == start && out.ends_with("\n\n") {
            continue;
        }
        out.push('\n');
    }
    out.trim().to_owned()
}

static QUOTE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:on\b.{0,200}\bwrote:?|am\b.{0,200}\bschrieb.{0,80}:?|le\b.{0,200}\ba [ée]crit\s*:?|el\b.{0,200}\bescribi[óo]:?|-{2,}\s*(?:original message|urspr[üu]ngliche nachricht|message d'origine|mensaje original)\s*-{2,}|_{10,}|(?:from|von|de|da)\s*:\s.*)$",
    )
    .expect("static regex")
});

/// A cheap necessary condition for [`QUOTE_HEADER`], which is anchored at the start of the
/// line: every form it knows starts with a dash, an underscore, or one of the words "on", "am",
/// "le", "el" (before "wrote" and its translations) or "from", "von", "de", "da" (a quoted
/// header). Most lines start otherwise, and the regex (bounded `.{0,200}` under Unicode case
/// folding) is costly per line.
fn may_be_quote_header(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with(['-', '_']) {
        return true;
    }
    let word_len = t.bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = &t.as_bytes()[..word_len];
    [
        &b"on"[..],
        b"am",
        b"le",
        b"el",
        b"from",
        b"von",
        b"de",
        b"da",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

/// [`new_text_whole`] without the flag, for tests.
#[cfg(test)]
pub fn new_text(body: &str) -> String {
    new_text_whole(body).0
}

/// Lines the new text reads at most, and bytes of the body it reads at most.
const NEW_TEXT_LINES: usize = 2000;
const NEW_TEXT_BYTES: usize = 64 * 1024;

/// The text the writer of a reply actually typed: lines before the quoted history
/// (`> …`, "On … wrote:", "-----Original Message-----", a quoted header block).
///
/// The flag says whether it kept every line of the body: nothing clipped, skipped or cut at a
/// quote. Then its lines are the body's trimmed lines less leading and trailing blank ones,
/// which lets a caller reuse what it already read from the body's lines.
pub fn new_text_whole(body: &str) -> (String, bool) {
    // The kept lines, joined by line breaks as they are read: no list of lines and no second
    // pass to join them.
    let mut out = String::with_capacity(body.len().min(NEW_TEXT_BYTES));
    let mut first = true;
    let mut whole = body.len() <= NEW_TEXT_BYTES;
    let mut lines = self::lines(clip(body, NEW_TEXT_BYTES));
    for line in lines.by_ref().take(NEW_TEXT_LINES) {
        let t = line.trim();
        if t.starts_with('>') {
            whole = false;
            continue;
        }
        if may_be_quote_header(t) && QUOTE_HEADER.is_match(clip(t, 600)) {
            whole = false;
            break;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        out.push_str(t);
    }
    if lines.next().is_some() {
        whole = false;
    }
    // Trimmed in place: the joined text is the size of the body, and a trimmed copy of it
    // would be a second one.
    let mut text = out;
    let end = text.trim_end().len();
    text.truncate(end);
    let start = text.len() - text.trim_start().len();
    text.drain(..start);
    (text, whole)
}

/// `text` without its signature: everything from the first line that is the conventional
/// delimiter `-- ` (trimmed, as [`new_text_whole`] trims its lines) on.
///
/// Only lines holding `--` can be the delimiter, so those are found with a vectorised search
/// and each such line is looked at once, instead of trimming every line of every text.
pub fn without_signature(text: &str) -> &str {
    let bytes = text.as_bytes();
    // Lines that end before this offset were looked at already.
    let mut seen = 0;
    for at in memchr::memmem::find_iter(bytes, b"--") {
        if at < seen {
            continue;
        }
        let head = bytes.get(..at).unwrap_or_default();
        let start = memchr::memrchr(b'\n', head).map_or(0, |i| i + 1);
        let tail = bytes.get(at..).unwrap_or_default();
        let end = memchr::memchr(b'\n', tail).map_or(bytes.len(), |i| at + i + 1);
        seen = end;
        if text.get(start..end).is_some_and(|line| line.trim() == "--") {
            return text.get(..start).unwrap_or(text).trim_end();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_tables_keep_label_value_rows() {
        let t = html_to_text(
            "<html><head><style>td{}</style></head><body><table><tr><td><b>Email:</b></td>\
             <td>jane@example.com</td></tr><tr><th>Name</th><td>Jane &amp; Co</td></tr></table>\
             <p>Thanks</p></body></html>",
        );
        assert!(t.contains("Email: jane@example.com"), "{t}");
        assert!(t.contains("Name: Jane & Co"), "{t}");
        assert!(!t.contains("td{}"));
    }

    #[test]
    fn labels_above_values_become_fields() {
        // Gravity Forms: a label row, then a value row with an empty spacer cell.
        let t = html_to_text(
            "<table><tr bgcolor=\"#EAF2FA\"><td colspan=\"2\"><font><strong>Email</strong></font></td></tr>\
             <tr bgcolor=\"#FFFFFF\"><td width=\"20\">&nbsp;</td><td><font>jane@example.com</font></td></tr></table>",
        );
        assert!(t.contains("Email: jane@example.com"), "{t}");
        let t = html_to_text(
            "<p><strong>Company</strong><br>Acme</p><dl><dt>Phone</dt><dd>123</dd></dl>",
        );
        assert!(t.contains("Company: Acme"), "{t}");
        assert!(t.contains("Phone: 123"), "{t}");
        // Bold inside a sentence stays prose.
        let t = html_to_text("<p>We <b>really</b> need this</p>");
        assert_eq!(t, "We really need this");
    }

    #[test]
    fn legacy_charset_names_are_renamed() {
        let raw = b"Subject: =?unicode-1-1-utf-7?Q?x?=\r\nContent-Type: text/plain; CHARSET=\"Latin-1\"\r\n\r\nlatin-1 stays";
        let fixed = fix_charsets(raw);
        let text = String::from_utf8_lossy(&fixed);
        let plain: &[u8] = b"Subject: hi\r\n\r\nutf-8";
        assert_eq!(fix_charsets(plain), plain);
        assert!(text.contains("=?utf-7?Q?x?="), "{text}");
        assert!(text.contains("charset=\"iso-8859-1\""), "{text}");
        assert!(text.ends_with("latin-1 stays"));
    }

    #[test]
    fn lf_only_matches_the_two_replacements() {
        for s in [
            "",
            "a",
            "a\r\nb",
            "a\rb",
            "\r\r\n\n\r",
            "ä\r\nö\r",
            "x\n\r\ny\r",
        ] {
            let want = s.replace("\r\n", "\n").replace('\r', "\n");
            assert_eq!(lf_only(s.to_owned()), want, "{s:?}");
        }
    }

    #[test]
    fn lines_split_like_str_lines() {
        for text in [
            "",
            "a",
            "a\n",
            "a\r\nb",
            "a\n\nb\n",
            "\n",
            "\r\n",
            "a\rb\n",
            "x\r",
            "é\r\n\r\nü",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("äöü", 3), "ä");
        assert_eq!(clip("abc", 10), "abc");
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr("Jane Doe <Jane@Example.com>").unwrap();
        assert_eq!(n.email.as_str(), "jane@example.com");
        assert_eq!(n.name.as_deref(), Some("Jane Doe"));
        let n = parse_name_addr("Doe, Jane [mailto:jane@example.com]").unwrap();
        assert_eq!(n.name.as_deref(), Some("Doe, Jane"));
        let n = parse_name_addr("*Jane Doe* <jane@example.com>").unwrap();
        assert_eq!(n.name.as_deref(), Some("Jane Doe"));
        let n = parse_name_addr("jane@example.com").unwrap();
        assert_eq!(n.name, None);
    }

    #[test]
    fn signatures_are_cut_at_their_delimiter() {
        assert_eq!(without_signature("Hi\n\n--\nSam\nSales"), "Hi");
        assert_eq!(without_signature("Hi\r\n-- \r\nSam"), "Hi");
        assert_eq!(without_signature("--\nSam"), "");
        assert_eq!(without_signature("a -- b\n---\nc"), "a -- b\n---\nc");
        assert_eq!(without_signature("plain"), "plain");
        // Dashes in other lines before the delimiter, and a delimiter among dashed lines.
        assert_eq!(without_signature("a--b\n--\nsig"), "a--b");
        assert_eq!(without_signature("x\n-----\n \t-- \nsig"), "x\n-----");
        assert_eq!(without_signature("x\n--\u{2003}\nsig"), "x");
        let dashes = "-".repeat(10_001);
        assert_eq!(without_signature(&format!("{dashes}\n--")), dashes);
        assert_eq!(without_signature(&dashes), dashes);
    }

    #[test]
    fn new_text_stops_at_quotes() {
        let t = new_text("Please remove me.\n\nOn Mon, 1 Jan 2027, Bob <b@x.com> wrote:\n> hi\n");
        assert_eq!(t, "Please remove me.");
        let t = new_text("qualified\n-----Original Message-----\nFrom: x");
        assert_eq!(t, "qualified");
    }
}
