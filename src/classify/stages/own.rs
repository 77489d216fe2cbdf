//! Our own mail: what leadloop sent, and what staff send from our domain, except our own
//! website's form mailer, whose notifications are about a submitter.

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::{forms, forward, parse};

use super::form;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    if parse::has_header(m.msg, "X-Leadloop-Origin") {
        ev.push("header X-Leadloop-Origin".into());
        return Some(Decision::ignored("sent by us (X-Leadloop-Origin)"));
    }
    let f = m.sender().filter(|f| m.ctx.is_own(f))?;
    if forms::is_system_sender(f)
        && let Some(hit) = form::detect(m)
    {
        // Our own website's form mailer (`wordpress@company.com`) sends from our domain, but
        // the submitter is a lead.
        ev.push("system sender at our own domain sent a form notification".into());
        return Some(form::submission(m, hit, ev));
    }
    if forward::forward_subject(m.subject) {
        // Tell the user why a forward did not count, so they can forward it as attachment.
        return Some(Decision::ignored(format!(
            "sent by us ({f}); looks forwarded, but no original sender was found"
        )));
    }
    Some(Decision::ignored(format!("sent by us ({f})")))
}
