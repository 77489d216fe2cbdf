//! Delivery failures: Amazon SES notifications and standard DSNs first, then what mail
//! servers send without a DSN, then a mailing list's refusal.

use crate::classify::bounce;
use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::domain::{Bounce, EmailAddress};

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    if let Some(e) = bounce::delivery_notice(m.msg) {
        ev.push(e);
        return Some(Decision::ignored("delivery notice, nothing failed"));
    }
    let own = |a: &EmailAddress| m.ctx.is_own(a);
    let b = bounce::ses_notification(m.body())
        .or_else(|| bounce::standard(m.msg, m.body(), &own))
        .or_else(|| bounce::nonstandard(m.msg, m.from.as_ref(), m.subject, m.body(), &own))
        .or_else(|| bounce::fml(m.msg, m.from.as_ref(), m.subject, m.body()))?;
    ev.extend(b.evidence);
    Some(Decision::Bounce {
        bounce: Bounce {
            recipient: b.recipient,
            permanent: b.permanent,
            status: b.status,
            recipients: b.recipients,
        },
        original_id: b.original_id,
    })
}
