//! Reads the "I am back on …" date out of an auto-reply.
//!
//! Out-of-office texts are written by people in many languages and formats, and usually omit
//! the year; the year is inferred from the message's own Date header (never the clock), so the
//! same message always yields the same date.

use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use regex::Regex;

use super::parse::clip;

// The patterns below read lower-cased text ([`return_date`] lowers it once): spelled without
// `(?i)`, the word alternations get a literal prefilter and scan an auto-reply several times
// faster than their case-insensitive forms. The day in `DAY_MONTH` is `[0-9]` for the same
// reason (a leading `\d` defeats the prefilter); `str::parse` reads only ASCII digits anyway.
static ISO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b").expect("static regex"));
static NUMERIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,2})([./])(\d{1,2})(?:([./])(\d{4}|\d{2}\b)?)?").expect("static regex")
});
static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\b([0-9]{{1,2}})(?:st|nd|rd|th|er|e)?\.?\s+(?:of\s+|de\s+)?({})\b\.?(?:,?\s+(?:de\s+)?(\d{{4}}))?",
        month_alternation()
    ))
    .expect("static regex")
});
static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\b({})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?",
        month_alternation()
    ))
    .expect("static regex")
});
/// Words after which the day the person is back follows ("back on", "zurück am").
static RETURN_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:back|return|returning|returns|zurück|zurueck|wieder|ab dem|ab|retour|reprendrai|regreso|regresar[ée]|volver[ée]|de vuelta|rientro|rientrer[òo]|torner[òo]|terug|weer|retorno|regresso|voltarei|volto)\b",
    )
    .expect("static regex")
});

/// Words after which the last day of the absence follows ("until", "bis"): second choice.
static UNTIL_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:until|till|through|thru|bis|jusqu|hasta|fino al|fino a|tot en met|t/m|tot|até)\b",
    )
    .expect("static regex")
});

/// The weekday named right after a return word ("back on Monday", "ab Dienstag"), read by
/// hand: a word, optionally after a short preposition.
fn weekday_after(text: &str) -> Option<u32> {
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .filter(|w| !w.is_empty())
        .take(2);
    let first = words.next()?;
    if let Some(d) = weekday_number(first.trim_end_matches('.')) {
        return Some(d);
    }
    let preposition = ["on", "am", "le", "el", "il", "op", "na", "em"]
        .iter()
        .any(|p| first.eq_ignore_ascii_case(p));
    if preposition {
        return weekday_number(words.next()?.trim_end_matches('.'));
    }
    None
}

/// Month names and abbreviations in the languages out-of-office texts are read in, lower case.
#[rustfmt::skip]
const MONTHS: &[(u32, &[&str])] = &[
    (1, &["jan", "january", "januar", "jänner", "janvier", "enero", "janv", "gennaio", "gen", "januari", "janeiro"]),
    (2, &["feb", "february", "februar", "février", "fevrier", "febrero", "févr", "fevr", "febbraio", "februari", "fevereiro", "fev"]),
    (3, &["mar", "march", "märz", "maerz", "mars", "marzo", "mrz", "maart", "março", "marco"]),
    (4, &["apr", "april", "avril", "abril", "avr", "aprile", "abr"]),
    (5, &["may", "mai", "mayo", "maggio", "mag", "mei", "maio"]),
    (6, &["jun", "june", "juni", "juin", "junio", "giugno", "giu", "junho"]),
    (7, &["jul", "july", "juli", "juillet", "julio", "juil", "luglio", "lug", "julho"]),
    (8, &["aug", "august", "août", "aout", "agosto", "ago", "augustus"]),
    (9, &["sep", "sept", "september", "septembre", "septiembre", "setiembre", "settembre", "setembro"]),
    (10, &["oct", "october", "oktober", "octobre", "octubre", "okt", "ottobre", "ott", "outubro"]),
    (11, &["nov", "november", "novembre", "noviembre", "novembro"]),
    (12, &["dec", "december", "dezember", "décembre", "decembre", "diciembre", "dez", "déc", "dicembre", "dic", "dezembro"]),
];

/// The month a lower-case name (as `DAY_MONTH` and `MONTH_DAY` match it) stands for.
fn month_number(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .find(|(_, names)| names.contains(&word))
        .map(|(m, _)| *m)
}

/// The month names as one regex alternation, longest first. The date patterns name the months
/// rather than accept any word: "any word before a number" matches all through ordinary text,
/// and each such match costs a capture search.
fn month_alternation() -> String {
    let mut names: Vec<&str> = MONTHS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    names.join("|")
}

/// Weekday names (Monday = 0) in the languages out-of-office texts are read in.
/// `word` is lower case: [`return_date`] lowers the whole text before reading it.
fn weekday_number(word: &str) -> Option<u32> {
    let d = match word {
        "monday" | "mon" | "montag" | "lundi" | "lunes" | "lunedì" | "lunedi" | "maandag"
        | "segunda" | "segunda-feira" => 0,
        "tuesday" | "tue" | "tues" | "dienstag" | "mardi" | "martes" | "martedì" | "martedi"
        | "dinsdag" | "terça" | "terça-feira" | "terca" => 1,
        "wednesday" | "wed" | "mittwoch" | "mercredi" | "miércoles" | "miercoles" | "mercoledì"
        | "mercoledi" | "woensdag" | "quarta" | "quarta-feira" => 2,
        "thursday" | "thu" | "thurs" | "donnerstag" | "jeudi" | "jueves" | "giovedì"
        | "giovedi" | "donderdag" | "quinta" | "quinta-feira" => 3,
        "friday" | "fri" | "freitag" | "vendredi" | "viernes" | "venerdì" | "venerdi"
        | "vrijdag" | "sexta" | "sexta-feira" => 4,
        "saturday" | "sat" | "samstag" | "samedi" | "sábado" | "sabado" | "sabato" | "zaterdag" => {
            5
        }
        "sunday" | "sun" | "sonntag" | "dimanche" | "domingo" | "domenica" | "zondag" => 6,
        _ => return None,
    };
    Some(d)
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

/// Every date found in `text`, with its byte offset, one per offset (the earliest date when
/// two readings start at the same place).
fn all_dates(text: &str, sent: Option<NaiveDate>) -> Vec<(usize, NaiveDate)> {
    let mut out: Vec<(usize, NaiveDate)> = found_dates(text, sent)
        .into_iter()
        .map(|(start, _, date)| (start, date))
        .collect();
    out.sort();
    out.dedup_by_key(|(pos, _)| *pos);
    out
}

/// Every reading of a date in `text` (lower case), with the byte range it was read from, in
/// no particular order.
fn found_dates(text: &str, sent: Option<NaiveDate>) -> Vec<(usize, usize, NaiveDate)> {
    let mut out = Vec::new();
    for c in ISO.captures_iter(text).take(50) {
        let y = num(c.get(1)).and_then(|y| i32::try_from(y).ok());
        if let (Some(m), Some(d), Some(pos)) = (num(c.get(2)), num(c.get(3)), c.get(0))
            && let Some(date) = build(y, m, d, sent)
        {
            out.push((pos.start(), pos.end(), date));
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
        // Day first (European) unless that is impossible and month-first (US) is not. With
        // slashes both are common; when both readings are possible, the one nearer after the
        // message date wins (an absence is announced shortly before it ends), so 04/12 sent
        // on 2 April is 12 April and 05/04 is 5 April. Dotted dates are always day first.
        let day_first = build(year, b, a, sent).filter(|_| a <= 31);
        let month_first = build(year, a, b, sent).filter(|_| sep.as_str() == "/");
        let date = match (day_first, month_first, sent) {
            (Some(d), Some(m), Some(s)) if d != m => {
                let ahead = |x: NaiveDate| (x - s).num_days();
                match (ahead(d) >= 0, ahead(m) >= 0) {
                    (true, true) => Some(if ahead(m) < ahead(d) { m } else { d }),
                    (false, true) => Some(m),
                    _ => Some(d),
                }
            }
            (Some(d), _, _) => Some(d),
            (None, m, _) => m,
        };
        if let Some(date) = date {
            out.push((whole.start(), whole.end(), date));
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
                out.push((whole.start(), whole.end(), date));
            }
        }
    }
    out
}

/// Longest text [`exact_date`] reads: no date is written longer.
const EXACT_DATE_MAX: usize = 64;

/// The date `text` consists of, in any form [`return_date`] reads (`2027-03-01`,
/// `1 March 2027`, `March 1st`, `1.3.2027`, `1.3.`, `03/01/2027`), or `None` when the text is
/// anything more or less than one date. A trailing `.` is allowed. A date without a year is its
/// next occurrence on or after `from` (none without `from`); an ambiguous slashed date is read
/// as [`return_date`] reads it.
pub fn exact_date(text: &str, from: Option<NaiveDate>) -> Option<NaiveDate> {
    let text = text.trim();
    if text.is_empty() || text.len() > EXACT_DATE_MAX || !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let lower = text.to_lowercase();
    let bare = lower.trim_end_matches('.').trim_end().len();
    let mut whole: Vec<NaiveDate> = found_dates(&lower, from)
        .into_iter()
        .filter(|&(start, end, _)| start == 0 && (end == lower.len() || end == bare))
        .map(|(_, _, date)| date)
        .collect();
    whole.sort();
    whole.first().copied()
}

/// The return date an auto-reply announces, if it states one.
///
/// Prefers the first date shortly after a "back/zurück/retour…" word, then after an
/// "until/bis/jusqu'au…" word, then a weekday named after such a word (the next one after the
/// message date), else the latest date mentioned, since an absence is announced as "from X to
/// Y".
pub fn return_date(text: &str, sent: Option<NaiveDate>) -> Option<NaiveDate> {
    let lower = clip(text, 8 * 1024).to_lowercase();
    let text = lower.as_str();
    let dates = if text.bytes().any(|b| b.is_ascii_digit()) {
        // Every date pattern needs a number that `str::parse` reads, i.e. ASCII digits: without
        // one there is no date, and the capturing searches are skipped.
        all_dates(text, sent)
    } else {
        Vec::new()
    };
    for re in [&*RETURN_WORD, &*UNTIL_WORD] {
        for w in re.find_iter(text).take(50) {
            if let Some((_, d)) = dates
                .iter()
                .find(|(pos, _)| *pos >= w.end() && *pos - w.end() <= 60)
            {
                return Some(*d);
            }
        }
    }
    if let Some(sent) = sent {
        for w in RETURN_WORD
            .find_iter(text)
            .chain(UNTIL_WORD.find_iter(text))
            .take(50)
        {
            let after = text.get(w.end()..).unwrap_or("");
            let Some(day) = weekday_after(clip(after, 40)) else {
                continue;
            };
            let today = sent.weekday().num_days_from_monday();
            let ahead = (day + 7 - today) % 7;
            let ahead = if ahead == 0 { 7 } else { ahead };
            return sent.checked_add_days(chrono::Days::new(u64::from(ahead)));
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
            // Shouted notices read alike: the patterns see the text lower-cased.
            ("BACK ON 14 APRIL", d(2027, 4, 14)),
            ("ZURÜCK AM 14. APRIL", d(2027, 4, 14)),
            ("Absent jusqu'au 14 AVRIL", d(2027, 4, 14)),
        ];
        for (text, want) in cases {
            assert_eq!(return_date(text, sent), Some(want), "{text}");
        }
    }

    #[test]
    fn more_languages_weekdays_and_tiers() {
        // Friday 2 April 2027.
        let sent = Some(d(2027, 4, 2));
        let cases = [
            ("Sarò assente fino al 14 aprile.", d(2027, 4, 14)),
            ("Ik ben terug op 14 april.", d(2027, 4, 14)),
            (
                "Estarei de volta em 14 de abril; volto 14 de abril",
                d(2027, 4, 14),
            ),
            ("I'm back on Monday.", d(2027, 4, 5)),
            ("Ich bin ab Dienstag wieder im Büro.", d(2027, 4, 6)),
            ("Out until 13 April, back on 14 April.", d(2027, 4, 14)),
            ("I am out 3 April to 14 April", d(2027, 4, 14)),
        ];
        for (text, want) in cases {
            assert_eq!(return_date(text, sent), Some(want), "{text}");
        }
        assert_eq!(return_date("back on Friday", sent), Some(d(2027, 4, 9)));
    }

    #[test]
    fn a_month_name_must_be_a_whole_word() {
        let sent = Some(d(2027, 4, 2));
        assert_eq!(return_date("back for 14 Aprilfools", sent), None);
        assert_eq!(return_date("back after Mayday 5", sent), None);
        assert_eq!(
            return_date("back on 14 Apr. 2027", sent),
            Some(d(2027, 4, 14))
        );
        assert_eq!(return_date("zurück am 3. MÄRZ", sent), Some(d(2028, 3, 3)));
    }

    #[test]
    fn ambiguous_slash_dates_take_the_nearer_future_reading() {
        let sent = Some(d(2027, 4, 2));
        assert_eq!(
            return_date("will not return until 04/12/2027", sent),
            Some(d(2027, 4, 12))
        );
        assert_eq!(return_date("back on 05/04/2027", sent), Some(d(2027, 4, 5)));
        assert_eq!(return_date("back on 4/14", sent), Some(d(2027, 4, 14)));
        assert_eq!(
            return_date("zurück am 04.12.2027", sent),
            Some(d(2027, 12, 4))
        );
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

    #[test]
    fn exact_dates_are_one_date_and_nothing_else() {
        let from = Some(d(2027, 4, 3));
        for (text, want) in [
            ("2027-09-01", Some(d(2027, 9, 1))),
            ("2027/09/01.", Some(d(2027, 9, 1))),
            ("1 September 2027", Some(d(2027, 9, 1))),
            ("1st of September", Some(d(2027, 9, 1))),
            ("September 1, 2027", Some(d(2027, 9, 1))),
            ("Sept. 1", Some(d(2027, 9, 1))),
            ("1.9.2027", Some(d(2027, 9, 1))),
            ("1.9.27", Some(d(2027, 9, 1))),
            ("1.9.", Some(d(2027, 9, 1))),
            ("  1 March  ", Some(d(2028, 3, 1))),
            ("3 April", Some(d(2027, 4, 3))),
            ("1.9", None),
            ("about 2027-09-01", None),
            ("2027-09-01 or so", None),
            ("31 February 2028", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(exact_date(text, from), want, "{text:?}");
        }
        assert_eq!(exact_date("1 March", None), None);
        assert_eq!(exact_date("1 March 2028", None), Some(d(2028, 3, 1)));
        assert_eq!(exact_date(&"1".repeat(10_000), from), None);
    }
}
