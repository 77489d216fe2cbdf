//! Spam, as the filters in front of the mailbox judged it ([`crate::classify::spam`]).
//!
//! Spam is ignored here, before anything else reads the message. A message the filters only
//! found suspicious passes on: if it makes a new lead, the lead waits for a person's approval
//! ([`review`]).

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::spam::Judgement;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    match m.spam() {
        Judgement::Spam(reason) => {
            ev.push(format!("spam filter: {reason}"));
            Some(Decision::ignored(reason.clone()))
        }
        Judgement::Review(reason) => {
            ev.push(format!("spam filter: {reason}"));
            None
        }
        Judgement::Clean => None,
    }
}

/// Why a new lead from this message must wait for review, if the filters found it suspicious.
pub fn review(m: &Input<'_>) -> Option<String> {
    match m.spam() {
        Judgement::Review(reason) => Some(reason.clone()),
        _ => None,
    }
}
