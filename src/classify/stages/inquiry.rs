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
    if let Some(kind) = forms::machine_sender(&f.email) {
        ev.push(format!("sender {} is a {kind}", f.email));
        return Decision::ignored(format!(
            "automated sender {} ({kind}) without form fields",
            f.email
        ));
    }
    // A provider sending on the From address's behalf says so in Sender.
    if let Some(sender) = parse::first_address(m.msg, "Sender")
        && let Some(esp) = forms::esp_domain(&sender.email)
    {
        ev.push(format!("header Sender: {}", sender.email));
        return Decision::ignored(format!(
            "automated sender {} (sent by email service provider {esp})",
            f.email
        ));
    }
    ev.push(format!("inquiry from {}", f.email));
    // One person, two addresses: a Reply-To that differs from From (a work address sending
    // from a phone, an assistant's account) is where the answer must go, so it is the lead's
    // address and From is kept as its alias. Our own addresses and machine senders are never
    // either.
    let reply_to = parse::first_address(m.msg, "Reply-To").filter(|r| {
        !r.email.same_mailbox(&f.email)
            && !m.ctx.is_own(&r.email)
            && !forms::is_system_sender(&r.email)
    });
    let (mut lead, alias) = match &reply_to {
        Some(r) => {
            ev.push(format!(
                "Reply-To {} differs from From: it is the lead",
                r.email
            ));
            let mut p = person(r);
            p.name = p.name.or_else(|| f.name.clone());
            (p, Some(f.email.clone()))
        }
        None => (person(f), None),
    };
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
    Decision::Inquiry {
        lead,
        channel,
        alias,
    }
}
