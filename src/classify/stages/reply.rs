//! Answers to our mail: feedback from Sales or a colleague on a hand-off, or a lead's reply
//! (which may ask to stop). An answer is recognised by our Message-ID in its references or by
//! our reply address (`+reply-TOKEN`, or `+handoff-TOKEN` for hand-off notifications).
//!
//! An answer from Sales or from any of our own addresses is feedback: the lead's owner is often
//! a colleague outside the Sales list (whether the writer owns the lead is checked later,
//! against the database). Mail leadloop sent itself is never feedback, even when it answers
//! our own earlier mail (a nurture step threaded below the previous one): it is left to the
//! own-mail stage.

use super::unsubscribe;
use crate::classify::decision::Decision;
use crate::classify::input::{Input, person};
use crate::classify::{forms, parse, verdict};
use crate::domain::{Verdict, VerdictTarget};

#[cfg(test)]
pub use crate::classify::verdict::verdict;

/// Plus tags of our addresses that mark an answer to our mail.
const ANSWER_TAGS: [&str; 2] = ["reply-", "handoff-"];

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let our_ref = m.references.iter().find(|id| m.ctx.is_our_message_id(id));
    let marker = match our_ref {
        Some(id) => format!("references our Message-ID {id}"),
        None => {
            let tag = m.recipients().iter().find(|r| {
                m.ctx.is_own(r)
                    && r.plus_tag().is_some_and(|t| {
                        ANSWER_TAGS
                            .iter()
                            .any(|p| t.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
                    })
            })?;
            format!("sent to reply address {tag}")
        }
    };
    let f = m.from.as_ref()?;
    let colleague = if m.ctx.is_sales(&f.email) {
        Some(format!("from Sales ({})", f.email))
    } else if m.ctx.is_own(&f.email) {
        Some(format!("from our own address ({})", f.email))
    } else {
        None
    };
    if let Some(colleague) = colleague {
        if m.sent_by_leadloop() {
            // A copy of our own mail: the own-mail stage ignores it, as it always has.
            return None;
        }
        ev.push(marker);
        ev.push(colleague);
        // Written on the writer's own day, as an auto-reply's dates are read.
        let text = m.texts.own_text();
        let verdict = match parse::local_day(m.msg) {
            Some(today) => verdict::verdict(text, today),
            None => verdict::verdict_undated(text),
        };
        if let Some(v) = &verdict {
            ev.push(describe(v));
        }
        return Some(Decision::Feedback(verdict));
    }
    ev.push(marker);
    if let Some(kind) = forms::machine_sender(&f.email) {
        // A machine answering our mail (a ticket system's receipt, a mail server's notice
        // that is no bounce) is no one's reply and must not engage the lead.
        ev.push(format!("sender {} is a {kind}", f.email));
        return Some(Decision::ignored(format!(
            "automated sender {} ({kind}) answering our mail",
            f.email
        )));
    }
    let lead = person(f);
    if unsubscribe::intent(m.texts.new_text()) {
        ev.push("short reply asking to stop".into());
        return Some(Decision::Unsubscribe { lead });
    }
    Some(Decision::Reply { lead })
}

/// The evidence line for a verdict: its kind, and what an instruction points at.
fn describe(v: &Verdict) -> String {
    match &v.target {
        None => format!("verdict {}", v.kind),
        Some(VerdictTarget::Until(d)) => format!("verdict {} until {d}", v.kind),
        Some(VerdictTarget::Sequence(s)) => format!("verdict {} into sequence {s}", v.kind),
        Some(VerdictTarget::Owner(a)) => format!("verdict {} to {a}", v.kind),
    }
}
