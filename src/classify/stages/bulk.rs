//! Bulk mail: lists, newsletters and campaigns. Hosted form services send through bulk
//! infrastructure, so their notifications may carry the same headers; they are forms, read by
//! the form stage.

use std::sync::LazyLock;

use regex::Regex;

use crate::classify::decision::Decision;
use crate::classify::forward::forward_subject;
use crate::classify::input::Input;
use crate::classify::parse;

use super::form;

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
        return without_list_headers(m, ev);
    }
    if parse::has_header(msg, "List-Unsubscribe-Post") {
        // RFC 8058 one-click unsubscribe is only offered by bulk senders.
        return Some(Decision::ignored(
            "bulk mail (List-Unsubscribe-Post one-click)",
        ));
    }
    let esp = esp_header(msg, ESP_HEADERS)?;
    Some(Decision::ignored(format!(
        "bulk mail (List-Unsubscribe with {esp})"
    )))
}

/// Header name prefixes that mark campaign mail even without `List-Unsubscribe`: the
/// providers' own tracking headers, which a person's mail client never adds.
const CAMPAIGN_HEADERS: &[&str] = &[
    "x-campaign",
    "feedback-id",
    "x-mailgun",
    "x-ses-",
    "x-sg-",
    "x-sendgrid",
    "x-mc-user",
    "x-mailchimp",
    "x-mailjet",
    "x-sib-",
    "x-mailin-",
    "x-sfmc",
    "x-klaviyo",
    "x-kmail",
    "x-listmonk",
    "x-mailerlite",
    "x-csa-complaints",
    "x-rpcampaign",
    "x-newsletter",
    "x-pardot",
    "x-marketo",
    "x-mkto",
];

/// `X-Mailer` values (lower-case substrings) of bulk mailing tools.
const BULK_MAILERS: &[&str] = &[
    "mailchimp",
    "mandrill",
    "sendgrid",
    "mailgun",
    "sendinblue",
    "brevo",
    "mailjet",
    "campaign monitor",
    "createsend",
    "constant contact",
    "phplist",
    "mailpoet",
    "acymailing",
    "getresponse",
    "aweber",
    "activecampaign",
    "klaviyo",
    "listmonk",
    "mautic",
    "sendy",
    "interspire",
    "mailerlite",
    "moosend",
    "convertkit",
    "sendpulse",
    "omnisend",
    "benchmark email",
    "emarsys",
    "newsletter",
    "mass mail",
    "bulk mail",
];

/// The first header whose name starts with one of `prefixes`, short and printable.
fn esp_header(msg: &mail_parser::Message<'_>, prefixes: &[&str]) -> Option<String> {
    // The prefixes are lower-case ASCII: compared in place, without a lower-cased copy of
    // every header name.
    let esp = parse::header_names(msg).find(|n| {
        prefixes.iter().any(|p| {
            n.as_bytes()
                .get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
        })
    })?;
    Some(printable(esp, 60))
}

/// Text from the message, clipped and without control characters, for a reason.
fn printable(s: &str, max: usize) -> String {
    parse::clip(s, max)
        .chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect()
}

/// Newsletters without `List-Id` or `List-Unsubscribe`: a provider's campaign headers, a bulk
/// mailer, or an unsubscribe link with a tracking pixel. Never an answer to our own mail or a
/// form notification (form mailers often send through the same providers).
fn without_list_headers(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    if m.references.iter().any(|r| m.ctx.is_our_message_id(r)) {
        return None;
    }
    let msg = m.msg;
    let signal = esp_header(msg, CAMPAIGN_HEADERS)
        .map(|h| format!("{h} header"))
        .or_else(|| {
            let mailer = parse::header(msg, "X-Mailer")?;
            let l = mailer.to_ascii_lowercase();
            BULK_MAILERS
                .iter()
                .any(|b| l.contains(b))
                .then(|| format!("X-Mailer: {}", printable(&mailer, 60)))
        })
        .or_else(|| {
            (!forward_subject(m.subject) && unsubscribe_and_pixel(&parse::html_parts(msg)))
                .then(|| "unsubscribe link and tracking pixel".to_owned())
        })?;
    if form::detect(m).is_some() {
        ev.push(format!("{signal}, but the message is a form notification"));
        return None;
    }
    ev.push(signal.clone());
    Some(Decision::ignored(format!("bulk mail: {signal}")))
}

static IMG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<img\b[^>]*>").expect("static regex"));

/// A width or height of 0 or 1 pixel, as an attribute or in a style.
static TINY: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
    let dim = |d: &str| {
        Regex::new(&format!(
            r#"(?i)\b{d}\s*(?:=\s*["']?|:\s*)[01](?:px)?(?:["';\s/>]|$)"#
        ))
        .expect("static regex")
    };
    (dim("width"), dim("height"))
});

static LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<a\b([^>]*)>(.{0,300}?)</a>").expect("static regex"));

/// Words of an unsubscribe link, in the languages the unsubscribe stage reads.
const UNSUBSCRIBE_WORDS: &[&str] = &[
    "unsubscribe",
    "opt-out",
    "opt out",
    "optout",
    "abmelden",
    "abbestellen",
    "désinscri",
    "desinscri",
    "désabonn",
    "desabonn",
    "darse de baja",
    "darme de baja",
    "cancelar suscripci",
    "uitschrijven",
    "afmelden",
    "disiscriv",
    "cancella iscrizione",
];

/// An HTML body with a link to unsubscribe and a 1×1 (or 0×0) image: a tracked newsletter.
fn unsubscribe_and_pixel(html: &[&str]) -> bool {
    let pixel = html.iter().any(|h| {
        IMG.find_iter(h).take(500).any(|img| {
            let tag = img.as_str();
            TINY.0.is_match(tag) && TINY.1.is_match(tag)
        })
    });
    pixel
        && html.iter().any(|h| {
            LINK.captures_iter(h).take(2000).any(|c| {
                let link = format!(
                    "{} {}",
                    c.get(1).map_or("", |g| g.as_str()),
                    c.get(2).map_or("", |g| g.as_str())
                )
                .to_lowercase();
                UNSUBSCRIBE_WORDS.iter().any(|w| link.contains(w))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::unsubscribe_and_pixel;

    #[test]
    fn a_tracked_newsletter_has_an_unsubscribe_link_and_a_pixel() {
        let link = r#"<a href="https://x.example/u/1">Unsubscribe</a>"#;
        let href = r#"<a href="https://x.example/unsubscribe?id=1">here</a>"#;
        let pixel = r#"<img src="https://t.example/o.gif" width="1" height="1">"#;
        let styled = r#"<IMG SRC=o.gif style="width:1px;height:1px;border:0" />"#;
        let zero = "<img src=o.gif width=0 height=0>";
        for html in [
            format!("{link}{pixel}"),
            format!("{href}{styled}"),
            format!("{pixel}\n<p>{link}</p>"),
            format!(r#"<a href="https://x.example/a">Abmelden</a>{zero}"#),
        ] {
            assert!(unsubscribe_and_pixel(&[&html]), "{html}");
        }
        let logo = r#"<img src="logo.png" width="100" height="10">"#;
        for html in [
            link.to_owned(),
            pixel.to_owned(),
            format!("{link}{logo}"),
            format!("<p>To unsubscribe, reply STOP.</p>{pixel}"),
            r#"<img width="1" height="120">"#.to_owned() + link,
        ] {
            assert!(!unsubscribe_and_pixel(&[&html]), "{html}");
        }
    }
}
