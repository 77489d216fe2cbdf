//! The last stage: a person writing to us. A person never offers an unsubscribe link; a
//! message that does and is no form (read by the stages before) is a newsletter or a
//! service's notification.

use crate::classify::channel;
use crate::classify::decision::Decision;
use crate::classify::forms;
use crate::classify::input::{Input, person};
use crate::classify::parse;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Decision {
    if !m.hosted_form() && parse::has_header(m.msg, "List-Unsubscribe") {
        ev.push("header List-Unsubscribe".into());
        return Decision::ignored("bulk mail (List-Unsubscribe)");
    }
    let Some(f) = m.from.as_ref() else {
        return Decision::ignored("no valid sender");
    };
    if forms::is_system_sender(&f.email) {
        return Decision::ignored(format!("automated sender {} without form fields", f.email));
    }
    ev.push(format!("inquiry from {}", f.email));
    let mut lead = person(f);
    // Company and phone only when the writer states them as fields; a free-mail domain says
    // nothing about the company.
    let sub = forms::submitter(&m.texts.new_text_fields(), &forms::Labels::default());
    lead.company = sub.company;
    lead.phone = sub.phone;
    let (channel, channel_ev) = channel::attribute(
        m.ctx.rules,
        &channel::Signals {
            recipients: m.recipients(),
            utm_source: None,
            form: None,
        },
    );
    ev.push(channel_ev);
    Decision::Inquiry { lead, channel }
}
