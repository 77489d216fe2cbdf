//! The classifier's rules as ordered stages. Each stage looks at the message and either
//! decides or passes it on; the first that decides wins.
//!
//! The order carries meaning: bounces and auto-replies come before bulk mail because mail
//! servers mark them with the same `Precedence`/`Auto-Submitted` headers newsletters use;
//! forwards come before replies and our own mail because a colleague's forward is sent from
//! our domain; forms come after our own mail except for our own website's form mailer, which
//! sends from our domain on the submitter's behalf.
//!
//! A stage may add evidence without deciding (a `List-Id` that is our own group), so the
//! evidence of a decision includes what earlier stages noticed and let pass.

mod autoreply;
mod bounce;
mod bulk;
mod form;
mod forward;
mod inquiry;
mod loops;
mod own;
mod reply;
mod report;
mod spam;
mod unsubscribe;

use super::decision::Decision;
use super::input::Input;

/// A rule: decides, or adds its evidence (if any) and passes the message on.
type Stage = fn(&Input<'_>, &mut Vec<String>) -> Option<Decision>;

/// Every stage but the last, in decision order.
const STAGES: &[Stage] = &[
    spam::decide,
    report::decide,
    bounce::decide,
    autoreply::decide,
    bulk::decide,
    forward::decide,
    reply::decide,
    unsubscribe::decide,
    own::decide,
    loops::decide,
    form::decide,
];

/// The first stage that decides; a message none of them claims is read as an inquiry, which
/// always decides.
pub fn decide(m: &Input<'_>, evidence: &mut Vec<String>) -> Decision {
    STAGES
        .iter()
        .find_map(|stage| stage(m, evidence))
        .unwrap_or_else(|| inquiry::decide(m, evidence))
}

#[cfg(test)]
pub use reply::verdict;
pub use spam::review;
