//! Answers to our mail: Sales' feedback on a hand-off, or a lead's reply (which may ask to
//! stop). An answer is recognised by our Message-ID in its references or by our reply
//! address.

use std::sync::LazyLock;

use regex::Regex;

use super::unsubscribe;
use crate::classify::decision::Decision;
use crate::classify::input::{Input, person};
use crate::classify::parse;
use crate::domain::{Verdict, VerdictKind};

static VERDICT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*\**(qualified|unqualified|not qualified|disqualified|customer)\b\**\s*(?:[:\-–—,.]\s*(.*))?$")
        .expect("static regex")
});

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let our_ref = m.references.iter().find(|id| m.ctx.is_our_message_id(id));
    let marker = match our_ref {
        Some(id) => format!("references our Message-ID {id}"),
        None => {
            let tag = m.recipients().iter().find(|r| {
                m.ctx.is_own(r)
                    && r.plus_tag()
                        .is_some_and(|t| t.to_ascii_lowercase().starts_with("reply-"))
            })?;
            format!("sent to reply address {tag}")
        }
    };
    let f = m.from.as_ref()?;
    if m.ctx.is_sales(&f.email) {
        ev.push(marker);
        ev.push(format!("from Sales ({})", f.email));
        let verdict = verdict(m.texts.new_text());
        if let Some(v) = &verdict {
            ev.push(format!("verdict {}", v.kind));
        }
        return Some(Decision::Feedback(verdict));
    }
    if m.ctx.is_own(&f.email) {
        return None;
    }
    ev.push(marker);
    let lead = person(f);
    if unsubscribe::intent(m.texts.new_text()) {
        ev.push("short reply asking to stop".into());
        return Some(Decision::Unsubscribe { lead });
    }
    Some(Decision::Reply { lead })
}

/// Sales' verdict from the first lines they typed; `text` is the body's
/// [`parse::new_text_whole`].
pub fn verdict(text: &str) -> Option<Verdict> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .find_map(|l| {
            let c = VERDICT.captures(parse::clip(l, 1000))?;
            // The pattern matched one of its five words: the first letter tells which.
            let kind = match c.get(1)?.as_str().as_bytes().first()? {
                b'q' | b'Q' => VerdictKind::Qualified,
                b'c' | b'C' => VerdictKind::Customer,
                _ => VerdictKind::Unqualified,
            };
            let reason = c
                .get(2)
                .map(|m| m.as_str().trim().trim_end_matches('.').trim().to_owned())
                .filter(|r| !r.is_empty());
            Some(Verdict::judgement(kind, reason))
        })
}
