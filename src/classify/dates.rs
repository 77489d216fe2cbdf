//! Reads the "I am back on …" date out of an auto-reply.
//!
//! Out-of-office texts are written by people in many languages and formats, and usually omit
//! the year; the year is inferred from the message's own Date header (never the clock), so the
//! same message always yields the same date.

use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use regex::Regex;

use super::parse::clip;

static ISO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b").expect("static regex"));
static NUMERIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,2})([./])(\d{1,2})(?:([./])(\d{4}|\d{2}\b)?)?").expect("static regex")
});
static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,2})(?:st|nd|rd|th|er|e)?\.?\s+(?:of\s+|de\s+)?(\p{L}{3,10})\.?(?:,?\s+(?:de\s+)?(\d{4}))?")
        .expect("static regex")
});
static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\p{L}{3,10})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(\d{4}))?")
        .expect("static regex")
});
static RETURN_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:back|return|returning|returns|until|till|through|zurück|zurueck|wieder|bis|retour|jusqu|regreso|regresar[ée]|volver[ée]|hasta)\b",
    )
    .expect("static regex")
});

fn month_number(word: &str) -> Option<u32> {
    let w = word.to_lowercase();
    let m = match w.as_str() {
        "jan" | "january" | "januar" | "jänner" | "janvier" | "enero" | "janv" => 1,
        "feb" | "february" | "februar" | "février" | "fevrier" | "febrero" | "févr" | "fevr" => 2,
        "mar" | "march" | "märz" | "maerz" | "mars" | "marzo" => 3,
        "apr" | "april" | "avril" | "abril" | "avr" => 4,
        "may" | "mai" | "mayo" => 5,
        "jun" | "june" | "juni" | "juin" | "junio" => 6,
        "jul" | "july" | "juli" | "juillet" | "julio" | "juil" => 7,
        "aug" | "august" | "août" | "aout" | "agosto" => 8,
        "sep" | "sept" | "september" | "septembre" | "septiembre" | "setiembre" => 9,
        "oct" | "october" | "oktober" | "octobre" | "octubre" | "okt" => 10,
        "nov" | "november" | "novembre" | "noviembre" => 11,
        "dec" | "december" | "dezember" | "décembre" | "decembre" | "diciembre" | "dez" | "déc" => {
            12
        }
        _ => return None,
    };
    Some(m)
}

fn num(s: Option<regex::Match<'_>>) -> Option<u32> {
    s?.as_str().parse().ok()
}

/// Builds a date, inferring a missing year from the message date: a day earlier than the
/// message date means the next occurrence of that day.
fn build(year: Option<i32>, month: u32, day: u32, sent: Option<NaiveDate>) -> Option<NaiveDate> {
    match year {
        Some(y) => {
            let y = if y < 100 { 2000 + y } else { y };
            NaiveDate::from_ymd_opt(y, month, day)
        }
        None => {
            let sent = sent?;
            let this = NaiveDate::from_ymd_opt(sent.year(), month, day);
            match this {
                Some(d) if d >= sent => Some(d),
                _ => NaiveDate::from_ymd_opt(sent.year() + 1, month, day),
            }
        }
    }
}

/// Every date found in `text`, with its byte offset.
fn all_dates(text: &str, sent: Option<NaiveDate>) -> Vec<(usize, NaiveDate)> {
    let mut out = Vec::new();
    for c in ISO.captures_iter(text).take(50) {
        let y = num(c.get(1)).and_then(|y| i32::try_from(y).ok());
        if let (Some(m), Some(d), Some(pos)) = (num(c.get(2)), num(c.get(3)), c.get(0))
            && let Some(date) = build(y, m, d, sent)
        {
            out.push((pos.start(), date));
        }
    }
    for c in NUMERIC.captures_iter(text).take(50) {
        let (Some(a), Some(sep), Some(b), Some(whole)) =
            (num(c.get(1)), c.get(2), num(c.get(3)), c.get(0))
        else {
            continue;
        };
        let sep2 = c.get(4).map(|m| m.as_str());
        let year = num(c.get(5)).and_then(|y| i32::try_from(y).ok());
        // "3.5" is a number, not a date: a dotted date needs its closing dot or a year.
        if sep.as_str() == "." && sep2.is_none() {
            continue;
        }
        // The separators must agree; "14.04/" is not a date.
        if sep2.is_some_and(|s| s != sep.as_str()) {
            continue;
        }
        // Day first (European) unless that is impossible and month-first (US) is not.
        let (day, month) = if b > 12 && a <= 12 { (b, a) } else { (a, b) };
        if let Some(date) = build(year, month, day, sent) {
            out.push((whole.start(), date));
        }
    }
    // "14 April" and "April 14": the same reading with the day and month word swapped.
    for (re, day_group, word_group) in [(&*DAY_MONTH, 1, 2), (&*MONTH_DAY, 2, 1)] {
        for c in re.captures_iter(text).take(50) {
            let (Some(day), Some(word), Some(whole)) =
                (num(c.get(day_group)), c.get(word_group), c.get(0))
            else {
                continue;
            };
            let Some(month) = month_number(word.as_str()) else {
                continue;
            };
            let year = num(c.get(3)).and_then(|y| i32::try_from(y).ok());
            if let Some(date) = build(year, month, day, sent) {
                out.push((whole.start(), date));
            }
        }
    }
    out.sort();
    out.dedup_by_key(|(pos, _)| *pos);
    out
}

/// The return date an auto-reply announces, if it states one.
///
/// Prefers the first date shortly after a "back/until/zurück/retour…" word; otherwise the
/// latest date mentioned, since an absence is announced as "from X to Y".
pub fn return_date(text: &str, sent: Option<NaiveDate>) -> Option<NaiveDate> {
    let text = clip(text, 8 * 1024);
    // Every date pattern needs a number that `str::parse` reads, i.e. ASCII digits (`\d` also
    // matches other scripts' digits, but those never parse): without one there is no date, and
    // the four capturing searches are skipped.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let dates = all_dates(text, sent);
    if dates.is_empty() {
        return None;
    }
    for w in RETURN_WORD.find_iter(text).take(50) {
        if let Some((_, d)) = dates
            .iter()
            .find(|(pos, _)| *pos >= w.end() && *pos - w.end() <= 60)
        {
            return Some(*d);
        }
    }
    dates.iter().map(|(_, d)| *d).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn common_forms() {
        let sent = Some(d(2027, 4, 2));
        let cases = [
            ("I am back on 14 April.", d(2027, 4, 14)),
            ("I will return on April 14, 2027.", d(2027, 4, 14)),
            ("Out until 2027-04-14 with limited access", d(2027, 4, 14)),
            (
                "Ich bin ab dem 14.04. wieder im Büro, zurück am 14.04.",
                d(2027, 4, 14),
            ),
            ("Je serai de retour le 14 avril.", d(2027, 4, 14)),
            ("Estaré fuera hasta el 14 de abril de 2027.", d(2027, 4, 14)),
            ("Back on 14/04/2027", d(2027, 4, 14)),
            ("back Monday, April 14th", d(2027, 4, 14)),
            ("out from 3 April to 14 April", d(2027, 4, 14)),
        ];
        for (text, want) in cases {
            assert_eq!(return_date(text, sent), Some(want), "{text}");
        }
    }

    #[test]
    fn year_rolls_over_when_the_day_has_passed() {
        let sent = Some(d(2026, 12, 20));
        assert_eq!(return_date("back on 5 January", sent), Some(d(2027, 1, 5)));
        assert_eq!(return_date("zurück am 05.01.", sent), Some(d(2027, 1, 5)));
    }

    #[test]
    fn no_date_no_answer() {
        assert_eq!(
            return_date("I am out of the office.", Some(d(2027, 1, 1))),
            None
        );
        assert_eq!(return_date("version 3.5 is out", Some(d(2027, 1, 1))), None);
        assert_eq!(
            return_date("back on 31 February", Some(d(2027, 1, 1))),
            None
        );
        assert_eq!(return_date("back on 14 April", None), None);
    }
}
