//! What the lead wrote, made into bounded, plain data before a template sees it.
//!
//! Everything here comes from outside: a reply, a form, a name. Each value is cut to a size
//! and stripped of control characters, so a 5 MB reply or a name holding CR LF makes a
//! message of ordinary size and shape. Escaping is not done here: HTML templates escape on
//! output, and headers go through [`super::header_safe`] and lettre's encoder.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// The text of a reply: at most this many bytes…
pub(super) const MAX_TEXT_BYTES: usize = 8 * 1024;
/// …and this many lines.
pub(super) const MAX_TEXT_LINES: usize = 200;
/// A form field's value.
pub(super) const MAX_FIELD_BYTES: usize = 500;
/// A form field's label.
pub(super) const MAX_LABEL_BYTES: usize = 100;
/// Form fields shown.
pub(super) const MAX_FIELDS: usize = 50;
/// The timeline entries shown (the newest).
pub(super) const MAX_TIMELINE: usize = 20;
/// The sent steps shown (the newest).
pub(super) const MAX_SENT: usize = 20;
/// A name, a company, a subject, a timeline summary, why Sales is told: one line of text.
pub(super) const MAX_LINE_BYTES: usize = 300;
/// A short label: a phone number, a channel, an event kind, a sequence or step name.
pub(super) const MAX_WORD_BYTES: usize = 100;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(super) fn prefix(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

/// One line of text from data: control characters and line breaks become spaces, runs of
/// whitespace one space, and what is longer than `max` bytes is cut, with `…` to say so.
pub(super) fn line(s: &str, max: usize) -> String {
    // Only the start can be shown: a 5 MB value is not flattened whole. Whitespace collapses,
    // so a little more than `max` is looked at.
    let raw = prefix(s, max.saturating_mul(4).saturating_add(16));
    let flat = super::header_safe(raw);
    if raw.len() == s.len() && flat.len() <= max {
        return flat;
    }
    let cut = prefix(&flat, max.saturating_sub('…'.len_utf8()));
    format!("{}…", cut.trim_end())
}

/// [`line`] of an optional value; `""` for none.
pub(super) fn opt_line(s: Option<&str>, max: usize) -> String {
    s.map(|s| line(s, max)).unwrap_or_default()
}

/// A block of text from data (what the lead wrote): line ends made `\n`, control characters
/// other than tab replaced by spaces, blank lines at either end dropped, at most `max_lines`
/// lines and `max_bytes` bytes kept, and a last line `[… N more lines not shown]` when
/// anything was cut.
pub(super) fn text(s: &str, max_bytes: usize, max_lines: usize) -> String {
    let s = s.trim_matches(|c: char| c == '\n' || c == '\r');
    let mut out = String::new();
    let mut shown = 0usize;
    let mut total = 0usize;
    let mut cut_bytes = 0usize;
    let mut done = false;
    for l in s.lines() {
        total += 1;
        if done {
            continue;
        }
        if shown == max_lines || out.len() >= max_bytes {
            done = true;
            continue;
        }
        // A line longer than what is left is cut; `l` is looked at only that far.
        let kept = prefix(l, max_bytes - out.len());
        if kept.is_empty() && !l.is_empty() {
            done = true;
            continue;
        }
        out.extend(
            kept.chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c }),
        );
        shown += 1;
        if kept.len() < l.len() {
            cut_bytes = l.len() - kept.len();
            done = true;
            continue;
        }
        out.push('\n');
    }
    let more = total - shown;
    if more > 0 || cut_bytes > 0 {
        if !out.ends_with('\n') && !out.is_empty() {
            out.push_str("…\n");
        }
        if more > 0 {
            let _ = writeln!(
                out,
                "[… {more} more line{} not shown]",
                if more == 1 { "" } else { "s" }
            );
        } else {
            let _ = writeln!(out, "[… {cut_bytes} more bytes not shown]");
        }
    }
    // The template decides what follows the text.
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// A form field's value as text: strings as they are, numbers and booleans written out, lists
/// and objects as `a, b` and `key: value`; cut to `max` bytes as [`line`] does. A large value
/// is not written whole before it is cut.
pub(super) fn json(v: &serde_json::Value, max: usize) -> String {
    let mut out = String::new();
    json_into(v, &mut out, max.saturating_mul(4).saturating_add(16));
    line(&out, max)
}

fn json_into(v: &serde_json::Value, out: &mut String, budget: usize) {
    if out.len() > budget {
        return;
    }
    match v {
        serde_json::Value::Null => {}
        serde_json::Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        serde_json::Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        serde_json::Value::String(s) => out.push_str(prefix(s, budget.saturating_sub(out.len()))),
        serde_json::Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                if out.len() > budget {
                    return;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                json_into(item, out, budget);
            }
        }
        serde_json::Value::Object(o) => {
            for (i, (k, item)) in o.iter().enumerate() {
                if out.len() > budget {
                    return;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(prefix(k, MAX_LABEL_BYTES));
                out.push_str(": ");
                json_into(item, out, budget);
            }
        }
    }
}

/// The newest `max` of `items` (given oldest first), oldest first, and how many older ones
/// are left out.
pub(super) fn newest<T>(items: &[T], max: usize) -> (&[T], usize) {
    let skip = items.len().saturating_sub(max);
    (&items[skip..], skip)
}

/// A time as the card shows it: `2026-11-27 10:00 UTC`.
pub(super) fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A Message-ID from data, without angle brackets, when it looks like one: `left@right` of
/// printable ASCII with no space, bracket, quote or `=?`, at most 250 bytes. Anything else is
/// dropped rather than written into `In-Reply-To` or `References`.
pub(super) fn message_id(raw: &str) -> Option<&str> {
    let id = raw.trim();
    let id = id
        .strip_prefix('<')
        .and_then(|i| i.strip_suffix('>'))
        .unwrap_or(id);
    let (left, right) = id.split_once('@')?;
    let ok = !left.is_empty()
        && !right.is_empty()
        && id.len() <= 250
        && !id.contains("=?")
        && id.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'(' | b')' | b',')
        });
    ok.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_flat_and_cut_on_character_boundaries() {
        assert_eq!(line("Eve\r\nBcc: x@evil", 100), "Eve Bcc: x@evil");
        assert_eq!(line("  a \t b\u{0}c ", 100), "a b c");
        assert_eq!(line("abcdef", 6), "abcdef");
        assert_eq!(line("abcdefg", 6), "abc…");
        assert_eq!(line("ééééé", 7), "éé…");
        assert!(line(&"x".repeat(5_000_000), 300).len() <= 300);
        // Whitespace that collapses still counts as cut when the original was longer.
        let spaced = format!("a{}b", " ".repeat(5000));
        assert_eq!(line(&spaced, 10), "a…");
        assert_eq!(opt_line(None, 10), "");
    }

    #[test]
    fn text_keeps_lines_and_says_what_was_cut() {
        assert_eq!(
            text("\r\nHello\r\n\r\nBye\x1b[31m\r\n\r\n", 100, 10),
            "Hello\n\nBye [31m"
        );
        assert_eq!(
            text("1\n2\n3\n4", 100, 2),
            "1\n2\n[… 2 more lines not shown]"
        );
        assert_eq!(text("1\n2\n3", 100, 2), "1\n2\n[… 1 more line not shown]");
        assert_eq!(
            text("abcdef\nghij", 4, 10),
            "abcd…\n[… 1 more line not shown]"
        );
        assert_eq!(text("abcdef", 4, 10), "abcd…\n[… 2 more bytes not shown]");
        assert_eq!(text("ab\ncdef", 3, 10), "ab\n[… 1 more line not shown]");
        let long = "x".repeat(5 * 1024 * 1024);
        let t = text(&long, MAX_TEXT_BYTES, MAX_TEXT_LINES);
        assert!(t.len() < MAX_TEXT_BYTES + 100, "{}", t.len());
        let many = "line\n".repeat(10_000);
        let t = text(&many, MAX_TEXT_BYTES, MAX_TEXT_LINES);
        assert_eq!(t.lines().count(), MAX_TEXT_LINES + 1);
        assert!(t.ends_with("[… 9800 more lines not shown]"), "{t}");
    }

    #[test]
    fn json_values_are_text() {
        let v: serde_json::Value =
            serde_json::json!({"a": [1, true, null, "x\ny"], "b": {"c": 2.5}});
        assert_eq!(json(&v, 100), "a: 1, true, , x y, b: c: 2.5");
        let big = serde_json::Value::Array(vec![serde_json::json!("word"); 1_000_000]);
        assert!(json(&big, 500).len() <= 500);
    }

    #[test]
    fn only_plain_message_ids_pass() {
        assert_eq!(message_id(" <a.b@c.d> "), Some("a.b@c.d"));
        assert_eq!(message_id("a.b@c.d"), Some("a.b@c.d"));
        for bad in [
            "",
            "no-at",
            "<a@b>\r\nBcc: x@evil",
            "a b@c",
            "<a@b> <c@d>",
            "=?utf-8?q?x?=@d",
            "@d",
            "a@",
        ] {
            assert_eq!(message_id(bad), None, "{bad:?}");
        }
        assert_eq!(message_id(&format!("{}@d", "a".repeat(300))), None);
    }
}
