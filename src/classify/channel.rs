//! Marketing channel attribution: which campaign brought this lead.
//!
//! The monitored inbox is usually plus-addressed per campaign (`leads+webinar@`), and form
//! submissions carry `utm_source`; configured rules map both to channel names, and without a
//! rule the raw value is still better than nothing.

use crate::domain::EmailAddress;

use super::Rules;

/// The inputs attribution looks at.
pub struct Signals<'a> {
    /// Recipient addresses in header order (Delivered-To, X-Original-To, To, Cc).
    pub recipients: &'a [EmailAddress],
    pub utm_source: Option<&'a str>,
    pub form: Option<&'a str>,
}

/// Plus tags leadloop itself uses for routing replies and unsubscribes.
pub fn reserved_tag(tag: &str) -> bool {
    let t = tag.to_ascii_lowercase();
    t.starts_with("reply-") || t.starts_with("unsubscribe")
}

/// Our own address the message was sent to, preferring one with a plus tag (the tag carries
/// the channel; `Delivered-To` is often the untagged alias target).
pub fn our_recipient<'a>(
    rules: &Rules,
    recipients: &'a [EmailAddress],
) -> Option<&'a EmailAddress> {
    let ours = |r: &&EmailAddress| rules.own_addresses.iter().any(|o| o.same_mailbox(r));
    recipients
        .iter()
        .filter(ours)
        .find(|r| r.plus_tag().is_some())
        .or_else(|| recipients.iter().find(ours))
}

/// The channel and the evidence for it.
pub fn attribute(rules: &Rules, s: &Signals<'_>) -> (String, String) {
    let ours = our_recipient(rules, s.recipients);
    let tag = ours.and_then(|r| r.plus_tag());
    for rule in &rules.channels {
        if let Some(r) = ours
            && rule.recipients.iter().any(|x| x == r)
        {
            return (
                rule.name.clone(),
                format!("channel rule '{}' (recipient {r})", rule.name),
            );
        }
        if let Some(t) = tag
            && rule.plus_tags.iter().any(|x| x.eq_ignore_ascii_case(t))
        {
            return (
                rule.name.clone(),
                format!("channel rule '{}' (plus tag {t})", rule.name),
            );
        }
        if let Some(u) = s.utm_source
            && rule.utm_sources.iter().any(|x| x.eq_ignore_ascii_case(u))
        {
            return (
                rule.name.clone(),
                format!("channel rule '{}' (utm_source={u})", rule.name),
            );
        }
        if let Some(f) = s.form
            && rule.forms.iter().any(|x| x.eq_ignore_ascii_case(f))
        {
            return (
                rule.name.clone(),
                format!("channel rule '{}' (form {f})", rule.name),
            );
        }
    }
    if let Some(u) = s.utm_source {
        let u = u.to_lowercase();
        return (u.clone(), format!("channel from utm_source={u}"));
    }
    if let Some(t) = tag
        && !reserved_tag(t)
    {
        let t = t.to_lowercase();
        return (t.clone(), format!("channel from plus tag {t}"));
    }
    ("direct".into(), "channel direct (no rule matched)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ChannelRule;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn rules() -> Rules {
        Rules {
            own_addresses: vec![a("leads@company.com")],
            own_domains: vec!["company.com".into()],
            channels: vec![
                ChannelRule {
                    name: "events".into(),
                    recipients: vec![a("leads+expo@company.com")],
                    ..ChannelRule::default()
                },
                ChannelRule {
                    name: "webinar".into(),
                    plus_tags: vec!["Webinar".into()],
                    forms: vec!["webinar-signup".into()],
                    ..ChannelRule::default()
                },
                ChannelRule {
                    name: "linkedin".into(),
                    utm_sources: vec!["linkedin".into()],
                    ..ChannelRule::default()
                },
            ],
            ..Rules::default()
        }
    }

    fn attr(recipients: &[&str], utm: Option<&str>, form: Option<&str>) -> String {
        let r: Vec<EmailAddress> = recipients.iter().map(|s| a(s)).collect();
        let s = Signals {
            recipients: &r,
            utm_source: utm,
            form,
        };
        attribute(&rules(), &s).0
    }

    #[test]
    fn rules_in_order_then_raw_values() {
        assert_eq!(attr(&["leads+expo@company.com"], None, None), "events");
        assert_eq!(
            attr(&["leads+webinar@company.com"], Some("linkedin"), None),
            "webinar"
        );
        assert_eq!(
            attr(&["leads@company.com"], Some("LinkedIn"), None),
            "linkedin"
        );
        assert_eq!(
            attr(&["leads@company.com"], None, Some("webinar-signup")),
            "webinar"
        );
        assert_eq!(attr(&["leads@company.com"], Some("Google"), None), "google");
        assert_eq!(attr(&["leads+fair@company.com"], None, None), "fair");
        assert_eq!(attr(&["leads+reply-abc@company.com"], None, None), "direct");
        assert_eq!(attr(&["someone+tag@other.example"], None, None), "direct");
    }

    #[test]
    fn tagged_recipient_wins_over_untagged_alias() {
        assert_eq!(
            attr(
                &["leads@company.com", "leads+webinar@company.com"],
                None,
                None
            ),
            "webinar"
        );
    }
}
