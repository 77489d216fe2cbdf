//! Bulk mail: lists, newsletters and campaigns. Hosted form services send through bulk
//! infrastructure, so their notifications may carry the same headers; they are forms, read by
//! the form stage.

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::parse;

/// Header name prefixes that only email service providers' campaign mail carries.
const ESP_HEADERS: &[&str] = &[
    "x-mailchimp",
    "x-mc-",
    "x-campaign",
    "feedback-id",
    "x-sg-",
    "x-sendgrid",
    "x-mailgun",
    "x-ses-",
    "x-mailjet",
    "x-marketo",
    "x-hs-",
    "x-newsletter",
    "x-sfmc",
    "x-mailin-",
    "x-sib-",
    "x-roving-",
    "x-csa-complaints",
    "x-emv-",
    "x-rpcampaign",
    "x-listmonk",
    "x-mailerlite",
    "x-ml-",
    "x-klaviyo",
    "x-kmail",
    "x-cmp-",
    "x-pardot",
    "x-mkto",
    "x-ems-",
    "x-campaignid",
    "x-ac-",
    "x-bm-",
];

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    if m.hosted_form() {
        return None;
    }
    let msg = m.msg;
    if let Some(id) = parse::header(msg, "List-Id") {
        let id_l = id.to_ascii_lowercase();
        // A monitored inbox that is itself a group (Google Groups) stamps its own List-Id on
        // every inquiry; that is not a newsletter.
        if m.ctx
            .id_domains
            .iter()
            .any(|d| id_l.contains(&format!(".{d}")) || id_l.contains(&format!("@{d}")))
        {
            ev.push(format!(
                "List-Id {} is our own group",
                parse::clip(&id, 100)
            ));
        } else {
            return Some(Decision::ignored(format!(
                "bulk mail (List-Id {})",
                parse::clip(&id, 100)
            )));
        }
    }
    if let Some(p) = parse::header(msg, "Precedence") {
        let p = p.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk") {
            return Some(Decision::ignored(format!("bulk mail (Precedence: {p})")));
        }
    }
    if !parse::has_header(msg, "List-Unsubscribe") {
        return None;
    }
    if parse::has_header(msg, "List-Unsubscribe-Post") {
        // RFC 8058 one-click unsubscribe is only offered by bulk senders.
        return Some(Decision::ignored(
            "bulk mail (List-Unsubscribe-Post one-click)",
        ));
    }
    let esp = parse::header_names(msg).find(|n| {
        let n = n.to_ascii_lowercase();
        ESP_HEADERS.iter().any(|p| n.starts_with(p))
    })?;
    // The name comes from the message: keep it short and printable in the reason.
    let h: String = parse::clip(esp, 60)
        .chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect();
    Some(Decision::ignored(format!(
        "bulk mail (List-Unsubscribe with {h})"
    )))
}
