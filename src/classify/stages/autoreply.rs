//! Automatic answers: vacation notices, out of office, RFC 3834.

use std::cell::OnceCell;

use crate::classify::decision::Decision;
use crate::classify::input::{Input, person};
use crate::classify::{autoreply, dates, parse};

use super::form;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let local_day = parse::local_day(m.msg);
    // Asked by the auto-reply signals for a notice without headers, and read again for the
    // notice's return date: computed at most once.
    let return_date = OnceCell::new();
    let return_date = || {
        *return_date.get_or_init(|| {
            dates::return_date(&format!("{}\n{}", m.subject, m.texts.new_text()), local_day)
        })
    };
    let details = || (m.texts.new_text().len(), return_date().is_some());
    let (auto_ev, generated_only) = autoreply::signals(m.msg, m.subject, m.body(), &details);
    if auto_ev.is_empty() {
        return None;
    }
    if generated_only && form::detect(m).is_some() {
        ev.push("Auto-Submitted: auto-generated, but the message is a form notification".into());
        return None;
    }
    ev.extend(auto_ev);
    let lead = m
        .from
        .as_ref()
        .filter(|f| !m.ctx.is_own(&f.email))
        .map(person);
    let return_date = return_date();
    if let Some(d) = return_date {
        ev.push(format!("return date {d}"));
    }
    Some(Decision::Autoreply { lead, return_date })
}
