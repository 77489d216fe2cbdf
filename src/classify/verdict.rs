//! Reads Sales' verdict out of their answer to a hand-off (or a colleague's answer to our mail).
//!
//! The first non-empty line of the answer's new text is the verdict line; what follows its
//! verdict word on that line is the reason, and the lines below it are the comment. The words
//! are read in any case, optionally in markdown bold (`**Qualified**: wants a demo`), and are
//! followed by a separator (`:`, `-`, `–`, `—`, `,`, `.`) and the rest, or stand alone:
//!
//! | Verdict | Words | What follows |
//! |---|---|---|
//! | qualified | `qualified`, `sql`, `sales qualified` | an optional reason |
//! | unqualified | `unqualified`, `not qualified`, `disqualified`, `lost`, `bad fit`, `no fit`, `junk`, `spam` | an optional reason |
//! | customer | `customer`, `won`, `closed won`, `closed-won` | an optional reason |
//! | not now | `not now` | `until DATE`, `DATE` or a period (`3 months`, `2 weeks`, `10 days`, `1 year`, `a month`, `next month`, `next quarter`, `for 6 weeks`); nothing means 3 months |
//! | nurture | `nurture` | a sequence name: one token of letters, digits, `-`, `_`, `.` |
//! | owner | `owner`, `assign`, `reassign` (`reassign to …`) | an address (`bob@company.com`, `Bob <bob@company.com>`) |
//!
//! A line that merely contains a verdict word (`They seem qualified to me`) states none, and
//! quoted lines (`> qualified`) never count. An instruction whose argument cannot be read
//! (`not now, maybe later`, `nurture` without a name, `owner: Bob`, a date already past) is no
//! verdict either: the answer is recorded as feedback without one, so a person reads it.
//!
//! Every step is linear in the answer's length and bounded where it reads an argument, so a
//! hostile answer (thousands of lines, a 5 MB line) costs no more than reading it once.

use std::sync::LazyLock;

use chrono::{Days, Months, NaiveDate};
use regex::Regex;

use super::dates;
use super::parse::clip;
use crate::domain::{EmailAddress, SequenceName, Verdict, VerdictKind, VerdictTarget};

/// Bytes of a verdict's reason that are kept.
pub const REASON_MAX: usize = 500;
/// Bytes of a verdict's comment that are kept.
pub const COMMENT_MAX: usize = 4000;
/// Longest sequence name `nurture` accepts; real names are far shorter.
const NAME_MAX: usize = 128;
/// Longest argument `not now` reads: no date or period is written longer.
const PERIOD_MAX: usize = 100;
/// How long a bare `not now` waits.
const NOT_NOW_MONTHS: u32 = 3;

/// The verdict word at the start of a line. One group per verdict, so the kind never depends
/// on how the word was spelled (the pattern folds case as Unicode does). It reads only the
/// line's first [`WORD_MAX`] bytes, so a long line costs nothing more; the word boundary after
/// the word is checked against the whole line. No word is a prefix of another, so the first
/// alternative that matches is the only candidate.
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:(?P<qualified>sales\s+qualified|qualified|sql)|(?P<unqualified>unqualified|not\s+qualified|disqualified|lost|bad\s+fit|no\s+fit|junk|spam)|(?P<customer>customer|closed(?:\s+|\s*-\s*)won|won)|(?P<not_now>not\s+now)|(?P<nurture>nurture)|(?P<owner>owner|reassign|assign))",
    )
    .expect("static regex")
});

/// Bytes of a line [`WORD`] reads: the longest verdict words with room for extra spaces.
const WORD_MAX: usize = 64;

/// Characters that separate a verdict word from what follows it.
fn is_separator(c: char) -> bool {
    matches!(c, ':' | '-' | '–' | '—' | ',' | '.')
}

/// Sales' verdict in `text`, the answer's new text (quotes and signature stripped), written
/// on `today` (the answer's own date, never the clock): `not now` periods count from it, a
/// date without a year is its next occurrence after it, and a date before it is refused.
///
/// A bare `not now` means three months from `today`. See the module documentation for the
/// grammar; `None` when the first line states no verdict or one that cannot be read.
pub fn verdict(text: &str, today: NaiveDate) -> Option<Verdict> {
    read(text, Some(today))
}

/// [`verdict`] for an answer whose day is unknown (no readable `Date` header): as an
/// auto-reply's return date is read without one, only what needs no day can be read, so of
/// `not now` only the form with a full date (`until 2027-03-01`), taken as it is.
pub fn verdict_undated(text: &str) -> Option<Verdict> {
    read(text, None)
}

fn read(text: &str, today: Option<NaiveDate>) -> Option<Verdict> {
    let (line, below) = verdict_line(text)?;
    let mut v = read_line(line, today)?;
    let comment = clip(below.trim(), COMMENT_MAX).trim_end();
    v.comment = (!comment.is_empty()).then(|| comment.to_owned());
    Some(v)
}

/// The first non-empty line that is not quoted, trimmed, and the text below it.
fn verdict_line(text: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for piece in text.split_inclusive('\n') {
        offset += piece.len();
        let line = piece.trim();
        if line.is_empty() || line.starts_with('>') {
            continue;
        }
        return Some((line, text.get(offset..).unwrap_or("")));
    }
    None
}

fn read_line(line: &str, today: Option<NaiveDate>) -> Option<Verdict> {
    // `**Unqualified: no budget**`: the closing bold ends the line.
    let line = if line.starts_with('*') {
        line.trim_end_matches('*').trim_end()
    } else {
        line
    };
    let line = line.trim_start_matches('*').trim_start();
    let c = WORD.captures(clip(line, WORD_MAX))?;
    let after = line.get(c.get(0)?.end()..)?;
    // The word must end there: `qualifiedé`, `sqlite` and `Assigned` name none.
    if after
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    // `**Unqualified**: no budget`: the closing bold follows the word.
    let after = after.trim_start_matches('*').trim_start();
    let separated = after.starts_with(is_separator);
    let rest = after
        .trim_start_matches(|c: char| is_separator(c) || c.is_whitespace())
        .trim_end();
    let alone = rest.chars().all(|c| matches!(c, '.' | '!'));
    // What the general rule calls the reason: the rest, without a closing full stop.
    let said = if alone {
        ""
    } else {
        rest.trim_end_matches('.').trim_end()
    };
    let group = |name: &str| c.name(name).is_some();
    if group("not_now") {
        let until = if alone {
            today?.checked_add_months(Months::new(NOT_NOW_MONTHS))?
        } else {
            not_now_until(rest, today)?
        };
        return Some(instruction(
            VerdictKind::NotNow,
            said,
            VerdictTarget::Until(until),
        ));
    }
    if group("nurture") {
        let name = sequence_name(said)?;
        return Some(instruction(
            VerdictKind::Nurture,
            name,
            VerdictTarget::Sequence(SequenceName::new(name)),
        ));
    }
    if group("owner") {
        let owner = owner_address(said)?;
        let said = owner.to_string();
        return Some(instruction(
            VerdictKind::Owner,
            &said,
            VerdictTarget::Owner(owner),
        ));
    }
    let kind = if group("qualified") {
        VerdictKind::Qualified
    } else if group("unqualified") {
        VerdictKind::Unqualified
    } else if group("customer") {
        VerdictKind::Customer
    } else {
        return None;
    };
    // `Qualified` alone or `Qualified: reason`; `Lost them to a competitor` is prose.
    if !separated && !alone {
        return None;
    }
    Some(Verdict::judgement(kind, reason(said)))
}

/// A verdict that instructs: `not now`, `nurture`, `owner`.
fn instruction(kind: VerdictKind, said: &str, target: VerdictTarget) -> Verdict {
    Verdict {
        kind,
        reason: reason(said),
        comment: None,
        target: Some(target),
    }
}

fn reason(said: &str) -> Option<String> {
    let r = clip(said, REASON_MAX).trim_end();
    (!r.is_empty()).then(|| r.to_owned())
}

/// Strips a leading word (`until`, `for`) followed by whitespace; `s` is lower case.
fn strip_word<'s>(s: &'s str, words: &[&str]) -> Option<&'s str> {
    words.iter().find_map(|w| {
        let rest = s.strip_prefix(w)?;
        rest.starts_with(char::is_whitespace)
            .then(|| rest.trim_start())
    })
}

/// The day a `not now` with an argument waits for: `until DATE`, `DATE` or a period.
fn not_now_until(rest: &str, today: Option<NaiveDate>) -> Option<NaiveDate> {
    if rest.len() > PERIOD_MAX {
        return None;
    }
    let lower = rest.to_lowercase();
    let arg = strip_word(&lower, &["until", "till", "til"]).unwrap_or(&lower);
    // A date without a year means its next occurrence after today, not on it.
    let from = today.and_then(|t| t.checked_add_days(Days::new(1)));
    if let Some(d) = dates::exact_date(arg, from) {
        return today.is_none_or(|t| d >= t).then_some(d);
    }
    period_end(arg.trim_end_matches('.').trim_end(), today?)
}

/// How a period counts: days or calendar months.
enum Unit {
    Days(u64),
    Months(u32),
}

/// `today` plus a period: `3 months`, `2 weeks`, `a year`, `next quarter`, `for 10 days`,
/// `in 6 weeks`. Months are added calendar-wise (31 January plus a month is 28 February).
fn period_end(s: &str, today: NaiveDate) -> Option<NaiveDate> {
    let s = strip_word(s, &["for", "in", "another"]).unwrap_or(s);
    let mut words = s.split_whitespace();
    let (count, unit) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let n: u32 = match count {
        "a" | "an" | "one" | "next" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        digits if digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    // `next` and `a` name one unit: `next months` is not a period.
    let singular = n == 1 && !count.bytes().all(|b| b.is_ascii_digit());
    let unit = match unit {
        "day" => Unit::Days(1),
        "week" | "wk" => Unit::Days(7),
        "month" | "mo" => Unit::Months(1),
        "quarter" => Unit::Months(3),
        "year" | "yr" => Unit::Months(12),
        "days" if !singular => Unit::Days(1),
        "weeks" | "wks" if !singular => Unit::Days(7),
        "months" | "mos" if !singular => Unit::Months(1),
        "quarters" if !singular => Unit::Months(3),
        "years" | "yrs" if !singular => Unit::Months(12),
        _ => return None,
    };
    match unit {
        Unit::Days(d) => today.checked_add_days(Days::new(d * u64::from(n))),
        Unit::Months(m) => today.checked_add_months(Months::new(m.checked_mul(n)?)),
    }
}

/// A sequence name as `nurture` takes it: one token of letters, digits, `-`, `_`, `.`.
fn sequence_name(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= NAME_MAX
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some(s)
}

/// The new owner's address: `bob@company.com`, `to bob@company.com`, `<bob@company.com>`,
/// `mailto:bob@company.com`, `Bob Smith <bob@company.com>`, or the `bob@company.com
/// <mailto:bob@company.com>` a mail client's HTML-to-text makes of a link.
fn owner_address(s: &str) -> Option<EmailAddress> {
    if s.len() > 1000 {
        return None;
    }
    let s = match s.get(..3) {
        Some(to) if to.eq_ignore_ascii_case("to ") => s.get(3..)?.trim_start(),
        _ => s,
    };
    match s.strip_suffix('>').and_then(|h| h.rsplit_once('<')) {
        Some((before, inner)) => {
            let email = EmailAddress::parse(unmailto(inner)).ok()?;
            let before = before.trim().trim_matches('"').trim();
            // Before the brackets: nothing, a display name, or the same address.
            let fits = !before.contains('@')
                || EmailAddress::parse(unmailto(before)).is_ok_and(|b| b == email);
            fits.then_some(email)
        }
        None => EmailAddress::parse(unmailto(s)).ok(),
    }
}

/// `a` without a `mailto:` in front.
fn unmailto(a: &str) -> &str {
    let a = a.trim();
    match a.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("mailto:") => a.get(7..).unwrap_or(a),
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("test date")
    }

    /// Written on a Friday, so weekday slips would show.
    const TODAY: (i32, u32, u32) = (2027, 4, 2);

    fn today() -> NaiveDate {
        d(TODAY.0, TODAY.1, TODAY.2)
    }

    /// Kind, reason and target as one comparable value.
    type Read = (VerdictKind, Option<String>, Option<VerdictTarget>);

    fn read_at(text: &str, today: NaiveDate) -> Option<Read> {
        verdict(text, today).map(|v| (v.kind, v.reason, v.target))
    }

    fn judged(kind: VerdictKind, reason: Option<&str>) -> Option<Read> {
        Some((kind, reason.map(str::to_owned), None))
    }

    fn until(y: i32, m: u32, day: u32, reason: Option<&str>) -> Option<Read> {
        Some((
            VerdictKind::NotNow,
            reason.map(str::to_owned),
            Some(VerdictTarget::Until(d(y, m, day))),
        ))
    }

    fn check(cases: &[(&str, Option<Read>)]) {
        for (text, want) in cases {
            assert_eq!(&read_at(text, today()), want, "{text:?}");
        }
    }

    #[test]
    fn judgements_and_their_synonyms() {
        use VerdictKind::*;
        check(&[
            ("qualified", judged(Qualified, None)),
            ("Qualified.", judged(Qualified, None)),
            ("QUALIFIED!", judged(Qualified, None)),
            ("SQL", judged(Qualified, None)),
            (
                "sql: budget approved",
                judged(Qualified, Some("budget approved")),
            ),
            ("Sales Qualified", judged(Qualified, None)),
            (
                "sales  qualified - call Tuesday",
                judged(Qualified, Some("call Tuesday")),
            ),
            ("unqualified", judged(Unqualified, None)),
            (
                "Not qualified, too small",
                judged(Unqualified, Some("too small")),
            ),
            ("not  qualified", judged(Unqualified, None)),
            ("Disqualified", judged(Unqualified, None)),
            (
                "lost - went with a competitor.",
                judged(Unqualified, Some("went with a competitor")),
            ),
            ("Bad fit: agency", judged(Unqualified, Some("agency"))),
            ("no fit", judged(Unqualified, None)),
            ("junk", judged(Unqualified, None)),
            ("Spam — a bot", judged(Unqualified, Some("a bot"))),
            ("customer", judged(Customer, None)),
            ("Won", judged(Customer, None)),
            ("closed won", judged(Customer, None)),
            ("Closed-Won: 20 seats", judged(Customer, Some("20 seats"))),
            ("closed - won", judged(Customer, None)),
        ]);
    }

    #[test]
    fn separators_and_bold() {
        use VerdictKind::*;
        let reason = Some("no budget");
        check(&[
            ("Unqualified: no budget", judged(Unqualified, reason)),
            ("Unqualified - no budget", judged(Unqualified, reason)),
            ("Unqualified – no budget", judged(Unqualified, reason)),
            ("Unqualified — no budget", judged(Unqualified, reason)),
            ("Unqualified, no budget.", judged(Unqualified, reason)),
            ("Unqualified -- no budget", judged(Unqualified, reason)),
            ("Unqualified:no budget", judged(Unqualified, reason)),
            ("Unqualified : no budget ", judged(Unqualified, reason)),
            ("Unqualified:", judged(Unqualified, None)),
            ("**Unqualified**: no budget", judged(Unqualified, reason)),
            ("**Unqualified: no budget**", judged(Unqualified, reason)),
            ("**DISQUALIFIED**", judged(Unqualified, None)),
            ("*Customer*", judged(Customer, None)),
            ("  \t qualified  ", judged(Qualified, None)),
        ]);
    }

    #[test]
    fn prose_is_no_verdict() {
        check(&[
            ("They seem qualified to me", None),
            ("> qualified", None),
            ("> qualified\nI'll call them", None),
            ("Hi Sam,\nqualified", None),
            ("Qualified them yesterday", None),
            ("Lost them to a competitor", None),
            ("Won't be able to call", None),
            ("Customers like this are rare", None),
            ("sqlite is their database", None),
            ("Spammy, but real", None),
            ("Unqualified (no budget)", None),
            ("qualifiedé", None),
            ("Not nowhere near ready", None),
            ("Ownership is unclear", None),
            ("Nurtured them for a year", None),
            ("", None),
            ("\n\n   \n", None),
            ("-- \nSam", None),
        ]);
    }

    #[test]
    fn the_first_line_is_the_verdict_line_and_the_rest_the_comment() {
        let v = verdict(
            "\n\n**Qualified** - wants a demo.\n\nBudget is approved.\nCall after 3pm.\n\n",
            today(),
        )
        .expect("verdict");
        assert_eq!(v.kind, VerdictKind::Qualified);
        assert_eq!(v.reason.as_deref(), Some("wants a demo"));
        assert_eq!(
            v.comment.as_deref(),
            Some("Budget is approved.\nCall after 3pm.")
        );
        let v = verdict("customer", today()).expect("verdict");
        assert_eq!(v.comment, None);
        // Quoted lines before it never count; the verdict is on the first line typed.
        let v = verdict("> New lead: Jane\n\nunqualified\n", today()).expect("verdict");
        assert_eq!(v.kind, VerdictKind::Unqualified);
        // Only the first line: a verdict on the second is none.
        assert_eq!(read_at("Thanks!\nqualified", today()), None);
        assert_eq!(read_at("Hi,\n\nQualified: yes", today()), None);
    }

    #[test]
    fn not_now_until_a_date() {
        check(&[
            (
                "Not now: until 2027-09-01",
                until(2027, 9, 1, Some("until 2027-09-01")),
            ),
            (
                "not now until 2027-09-01.",
                until(2027, 9, 1, Some("until 2027-09-01")),
            ),
            (
                "not now - 2027-09-01",
                until(2027, 9, 1, Some("2027-09-01")),
            ),
            (
                "Not now, until 1 September 2027",
                until(2027, 9, 1, Some("until 1 September 2027")),
            ),
            (
                "not now till September 1",
                until(2027, 9, 1, Some("till September 1")),
            ),
            (
                "not now: until 1.9.2027",
                until(2027, 9, 1, Some("until 1.9.2027")),
            ),
            ("not now: until 1.9.", until(2027, 9, 1, Some("until 1.9"))),
            (
                "not now: until 1st of September",
                until(2027, 9, 1, Some("until 1st of September")),
            ),
            (
                "**Not now**: until 2027-09-01",
                until(2027, 9, 1, Some("until 2027-09-01")),
            ),
            // Without a year: the next occurrence after today, so a day already past this
            // year, or today itself, is next year's.
            (
                "not now until March 1",
                until(2028, 3, 1, Some("until March 1")),
            ),
            (
                "not now until 2 April",
                until(2028, 4, 2, Some("until 2 April")),
            ),
            (
                "not now until 3 April",
                until(2027, 4, 3, Some("until 3 April")),
            ),
            // Today is not in the past.
            (
                "not now until 2027-04-02",
                until(2027, 4, 2, Some("until 2027-04-02")),
            ),
            // A date in the past, or no date at all, is not understood.
            ("not now until 2027-04-01", None),
            ("not now: until 1 March 2020", None),
            ("not now until 31 February 2028", None),
            ("not now until spring", None),
            ("not now, maybe later", None),
            ("not now: until 2027-09-01 or so", None),
            ("not now: 2027-09-01 2027-10-01", None),
        ]);
    }

    #[test]
    fn not_now_for_a_period() {
        check(&[
            ("not now", until(2027, 7, 2, None)),
            ("Not now.", until(2027, 7, 2, None)),
            ("NOT NOW!", until(2027, 7, 2, None)),
            ("not now: 3 months", until(2027, 7, 2, Some("3 months"))),
            ("not now - 2 weeks", until(2027, 4, 16, Some("2 weeks"))),
            ("not now, 10 days.", until(2027, 4, 12, Some("10 days"))),
            ("not now: 1 year", until(2028, 4, 2, Some("1 year"))),
            ("not now: a month", until(2027, 5, 2, Some("a month"))),
            ("not now: next month", until(2027, 5, 2, Some("next month"))),
            (
                "not now: next quarter",
                until(2027, 7, 2, Some("next quarter")),
            ),
            ("not now 6 months", until(2027, 10, 2, Some("6 months"))),
            (
                "not now, for six weeks",
                until(2027, 5, 14, Some("for six weeks")),
            ),
            ("Not now: in 2 Years", until(2029, 4, 2, Some("in 2 Years"))),
            (
                "not now until next month",
                until(2027, 5, 2, Some("until next month")),
            ),
            ("not now: 1 month", until(2027, 5, 2, Some("1 month"))),
            (
                "not now: 2 quarters",
                until(2027, 10, 2, Some("2 quarters")),
            ),
            ("not now: next months", None),
            ("not now: 0 days", None),
            ("not now: 3", None),
            ("not now: months", None),
            ("not now: 3 fortnights", None),
            ("not now: 1000 years", None),
            ("not now: 3 months or so", None),
            ("not now, call back in spring", None),
        ]);
        // Months are added calendar-wise.
        assert_eq!(
            read_at("not now: a month", d(2027, 1, 31)).and_then(|r| r.2),
            Some(VerdictTarget::Until(d(2027, 2, 28)))
        );
        assert_eq!(
            read_at("not now", d(2027, 11, 30)).and_then(|r| r.2),
            Some(VerdictTarget::Until(d(2028, 2, 29)))
        );
    }

    #[test]
    fn not_now_without_a_day() {
        let at = |t: &str| verdict_undated(t).and_then(|v| v.target);
        assert_eq!(
            at("not now: until 2027-09-01"),
            Some(VerdictTarget::Until(d(2027, 9, 1)))
        );
        assert_eq!(at("not now"), None);
        assert_eq!(at("not now: 3 months"), None);
        assert_eq!(at("not now until March 1"), None);
        assert_eq!(
            verdict_undated("qualified").map(|v| v.kind),
            Some(VerdictKind::Qualified)
        );
    }

    #[test]
    fn nurture_names_a_sequence() {
        let seq = |name: &str| {
            Some((
                VerdictKind::Nurture,
                Some(name.to_owned()),
                Some(VerdictTarget::Sequence(SequenceName::new(name))),
            ))
        };
        check(&[
            ("nurture: webinar-followup", seq("webinar-followup")),
            ("Nurture - webinar_followup.", seq("webinar_followup")),
            ("NURTURE webinar-followup", seq("webinar-followup")),
            ("**Nurture**: v2.long-cycle", seq("v2.long-cycle")),
            ("nurture: Webinar2027", seq("Webinar2027")),
            ("nurture", None),
            ("nurture:", None),
            ("nurture: webinar followup", None),
            ("nurture them gently", None),
            ("nurture: webinar/followup", None),
            ("nurture: <webinar>", None),
        ]);
        assert_eq!(
            read_at(&format!("nurture: {}", "a".repeat(NAME_MAX + 1)), today()),
            None
        );
    }

    #[test]
    fn owner_names_an_address() {
        let owner = |a: &str| {
            let e = EmailAddress::parse(a).expect("test address");
            Some((
                VerdictKind::Owner,
                Some(e.to_string()),
                Some(VerdictTarget::Owner(e)),
            ))
        };
        check(&[
            ("owner: bob@company.com", owner("bob@company.com")),
            ("Owner: Bob@Company.com.", owner("bob@company.com")),
            ("assign: bob@company.com", owner("bob@company.com")),
            ("Assign to bob@company.com", owner("bob@company.com")),
            ("reassign to bob@company.com", owner("bob@company.com")),
            ("Reassign: to bob@company.com", owner("bob@company.com")),
            ("owner - <bob@company.com>", owner("bob@company.com")),
            (
                "owner: Bob Smith <bob@company.com>",
                owner("bob@company.com"),
            ),
            (
                "owner: bob@company.com <mailto:bob@company.com>",
                owner("bob@company.com"),
            ),
            ("owner: mailto:bob@company.com", owner("bob@company.com")),
            ("owner", None),
            ("owner: Bob", None),
            ("reassign to Bob from the Berlin office", None),
            ("owner: bob@company", None),
            ("owner: bob@company.com please", None),
            ("owner: bob@company.com <mailto:eve@company.com>", None),
            ("assign: a@b@company.com", None),
            ("Assigned to Bob", None),
        ]);
    }

    #[test]
    fn comments_and_reasons_are_clipped_on_char_boundaries() {
        let long = "ä".repeat(3000);
        let v = verdict(&format!("unqualified: {long}\n\n{long}"), today()).expect("verdict");
        let r = v.reason.expect("reason");
        assert!(
            r.len() <= REASON_MAX && r.len() >= REASON_MAX - 1,
            "{}",
            r.len()
        );
        let c = v.comment.expect("comment");
        assert!(
            c.len() <= COMMENT_MAX && c.len() >= COMMENT_MAX - 1,
            "{}",
            c.len()
        );
        assert!(c.chars().all(|c| c == 'ä'));
    }

    #[test]
    fn hostile_answers_are_read_quickly_and_without_panics() {
        let started = std::time::Instant::now();
        let many_lines = "qualified\n".repeat(10_000);
        let v = verdict(&many_lines, today()).expect("verdict");
        assert!(v.comment.is_some_and(|c| c.len() <= COMMENT_MAX));
        let blank_then = format!("{}qualified", "\n \t\n".repeat(10_000));
        assert!(verdict(&blank_then, today()).is_some());
        let quoted = "> qualified\n".repeat(10_000);
        assert_eq!(verdict(&quoted, today()), None);
        for line in [
            "a".repeat(5 << 20),
            format!("qualified: {}", "x".repeat(5 << 20)),
            format!("not now: {}", "3 months ".repeat(500_000)),
            format!("nurture: {}", "n".repeat(5 << 20)),
            format!("owner: {}@company.com", "b".repeat(5 << 20)),
            format!("{}qualified", "*".repeat(5 << 20)),
            format!("**{}", " ".repeat(5 << 20)),
            "ſ\u{0301}\u{202e}\u{feff}𝔮ualified ✓ 🙂".repeat(100_000),
            "\u{0}\u{7f}\r\r\r".repeat(100_000),
        ] {
            let _ = verdict(&line, today());
            let _ = verdict_undated(&line);
        }
        let took = started.elapsed();
        assert!(took.as_secs() < 20, "took {took:?}");
        let v = verdict(&format!("qualified: {}", "x".repeat(5 << 20)), today());
        assert!(
            v.and_then(|v| v.reason)
                .is_some_and(|r| r.len() == REASON_MAX)
        );
        // Dates at the edge of the calendar overflow to no verdict rather than a panic.
        assert_eq!(read_at("not now: 999 years", NaiveDate::MAX), None);
        assert_eq!(read_at("not now", NaiveDate::MAX), None);
        assert_eq!(read_at("not now: 999 days", NaiveDate::MAX), None);
        assert_eq!(read_at("not now until March 1", NaiveDate::MAX), None);
    }
}
