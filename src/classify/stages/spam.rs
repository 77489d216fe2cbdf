//! Spam, as the filters in front of the mailbox judged it.

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::parse;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let msg = m.msg;
    if let Some(v) = parse::header(msg, "X-Spam-Flag")
        && v.trim().eq_ignore_ascii_case("yes")
    {
        ev.push("header X-Spam-Flag: YES".into());
        return Some(Decision::ignored("spam (X-Spam-Flag: YES)"));
    }
    if let Some(v) = parse::header(msg, "X-Spam-Status")
        && v.trim()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("yes"))
    {
        ev.push("header X-Spam-Status: Yes".into());
        return Some(Decision::ignored("spam (X-Spam-Status: Yes)"));
    }
    if let Some(v) = parse::header(msg, "X-Spam")
        && v.trim()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("yes"))
    {
        ev.push("header X-Spam: Yes".into());
        return Some(Decision::ignored("spam (X-Spam: Yes)"));
    }
    // Microsoft's spam confidence level: 5 and above is junk.
    if let Some(v) = parse::header(msg, "X-MS-Exchange-Organization-SCL")
        && v.trim().parse::<i32>().is_ok_and(|scl| scl >= 5)
    {
        ev.push(format!(
            "header X-MS-Exchange-Organization-SCL: {}",
            v.trim()
        ));
        return Some(Decision::ignored("spam (Exchange spam confidence level)"));
    }
    None
}
