//! Forwards: a colleague passed an inquiry on, attached or inline. The lead is the original
//! sender, or the submitter when the forwarded message is a form notification.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::classify::decision::{Decision, Forwarded};
use crate::classify::input::{Input, person};
use crate::classify::{ORIGINAL_TEXT_MAX, channel, forms, forward, parse};
use crate::domain::{EmailAddress, Person};

static FWD_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:fwd?|wg|tr|rv|enc)\s*:\s*)+").expect("static regex")
});

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let orig = forward::find(m.msg, m.body(), m.subject)?;
    ev.push(orig.evidence);
    if let Some(r) = &orig.report {
        // A colleague passed on a bounce or a report: no one wrote in.
        return Some(Decision::ignored(format!(
            "forwarded report (multipart/report; report-type={})",
            parse::clip(r, 40)
        )));
    }
    let Some(sender) = orig.sender else {
        return Some(Decision::ignored(
            "forwarded message without the original sender's address",
        ));
    };
    if m.ctx.is_own(&sender.email) {
        return Some(Decision::ignored(format!(
            "forward of our own mail ({})",
            sender.email
        )));
    }
    ev.push(format!("original sender {}", sender.email));
    let mut lead = person(&sender);
    let mut fields = BTreeMap::new();
    let mut utm = None;
    if forms::is_system_sender(&sender.email) {
        // A colleague forwarded a form notification: the lead is its submitter.
        let text = orig.body.as_deref().unwrap_or(m.body());
        let found = forms::extract_fields(text);
        let acceptable = |a: &EmailAddress| !m.ctx.is_own(a) && !forms::is_system_sender(a);
        let rt = orig.reply_to.as_ref().filter(|r| acceptable(&r.email));
        let email = rt
            .map(|r| r.email.clone())
            .or_else(|| forms::email_field(&found, None).filter(|a| acceptable(a)));
        let Some(email) = email else {
            return Some(Decision::ignored(format!(
                "forwarded mail from automated sender {} without a submitter address",
                sender.email
            )));
        };
        ev.push(format!("forwarded form notification, submitter {email}"));
        let sub = forms::submitter(&found, &forms::Labels::default());
        utm = forms::utm_source(&found, text);
        lead = Person {
            email,
            name: sub.name.or_else(|| rt.and_then(|r| r.name.clone())),
            company: sub.company,
            phone: sub.phone,
        };
        fields = forms::to_map(&found);
    }
    let original_text = orig
        .body
        .as_deref()
        .map(|t| parse::clip(t.trim(), ORIGINAL_TEXT_MAX).to_owned())
        .filter(|t| !t.is_empty());
    let subject = orig
        .subject
        .or_else(|| Some(FWD_PREFIX.replace(m.subject, "").trim().to_owned()))
        .filter(|s| !s.is_empty());
    let (channel, channel_ev) = channel::attribute(
        m.ctx.rules,
        &channel::Signals {
            recipients: m.recipients(),
            utm_source: utm.as_deref(),
            form: None,
        },
    );
    ev.push(channel_ev);
    Some(Decision::Forward(Forwarded {
        lead,
        owner: m.sender().cloned(),
        fields,
        original_text,
        subject,
        original_id: orig.message_id,
        channel,
    }))
}
