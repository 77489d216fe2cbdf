//! When Sales is told about a lead: `[handoff]`.
//!
//! A hand-off is a notification to the lead's owner with what the lead wrote, sent when the
//! lead is hot: it replied to one of our messages, or its inquiry came through a form,
//! channel or with a field value that says "talk to me now". This module decides whether a
//! message makes its lead hot and says why, in words Sales reads in the notification. Pure:
//! how often a lead is handed off (`interval`) needs the lead's history, which the caller
//! has.

use std::time::Duration;

use super::route::{FieldMatch, any_equal};
use crate::domain::{Classification, MessageKind};

/// `[handoff]`: whether and when hot leads are handed to Sales.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Hand-offs are sent at all.
    pub enabled: bool,
    /// A lead's reply to one of our messages makes it hot.
    pub on_reply: bool,
    /// Submissions of these form profiles are hot.
    pub forms: Vec<String>,
    /// Leads of these channels (lower-case) are hot.
    pub channels: Vec<String>,
    /// A field whose value matches is hot (`Budget` = `^[0-9]{5,}$`).
    pub fields: Vec<FieldMatch>,
    /// A lead whose `[[score]]` reaches this is hot: the store hands it off when its score
    /// crosses it, since only the store sees the score after a change.
    pub min_score: Option<i64>,
    /// At most one hand-off per lead per this long, however many hot messages it sends.
    pub interval: Duration,
    /// The `[[sender]]` hand-offs are sent as; `None` means the first.
    pub sender: Option<String>,
}

impl Default for Handoff {
    /// On, for replies only, at most daily, from the first sender.
    fn default() -> Self {
        Handoff {
            enabled: true,
            on_reply: true,
            forms: Vec::new(),
            channels: Vec::new(),
            fields: Vec::new(),
            min_score: None,
            interval: Duration::from_secs(24 * 3600),
            sender: None,
        }
    }
}

impl Handoff {
    /// Why the message `c` makes its lead hot, or `None` when it does not (or hand-offs are
    /// off). For inquiries, forms and forwards every reason that applies, joined by `; `:
    /// `submitted the form demo-request`, `came from channel webinar`, `field Budget is
    /// "50000"`. A reply is hot with `on_reply` (`replied to our message`). Other kinds never
    /// are.
    pub fn hot(&self, c: &Classification) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if c.kind == MessageKind::Reply {
            return self.on_reply.then(|| "replied to our message".to_owned());
        }
        if !c.kind.creates_lead() {
            return None;
        }
        let mut reasons = Vec::new();
        if let Some(form) = c.form.as_deref().filter(|f| any_equal(&self.forms, f)) {
            reasons.push(format!("submitted the form {form}"));
        }
        if let Some(channel) = c
            .channel
            .as_deref()
            .filter(|ch| any_equal(&self.channels, ch))
        {
            reasons.push(format!("came from channel {channel}"));
        }
        for f in &self.fields {
            if let Some((label, value)) = f.matched(c) {
                reasons.push(format!("field {label} is {value:?}"));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;
    use crate::domain::{EmailAddress, Person};

    fn message(kind: MessageKind) -> Classification {
        let mut c = Classification::ignored("test");
        c.kind = kind;
        c.lead = Some(Person {
            email: EmailAddress::parse("jane@example.org").unwrap(),
            name: None,
            company: None,
            phone: None,
        });
        c
    }

    fn hot_config() -> Handoff {
        Handoff {
            forms: vec!["demo-request".into()],
            channels: vec!["webinar".into()],
            fields: vec![FieldMatch {
                label: "Budget".into(),
                pattern: Regex::new("^[0-9]{5,}$").unwrap(),
            }],
            ..Handoff::default()
        }
    }

    #[test]
    fn the_default_hands_off_replies_only_at_most_daily() {
        let h = Handoff::default();
        assert!(h.enabled && h.on_reply);
        assert_eq!(h.interval, Duration::from_secs(86_400));
        assert_eq!(
            h.hot(&message(MessageKind::Reply)).as_deref(),
            Some("replied to our message")
        );
        let mut c = message(MessageKind::Form);
        c.form = Some("demo-request".into());
        c.channel = Some("webinar".into());
        assert_eq!(h.hot(&c), None, "nothing else is hot by default");
    }

    #[test]
    fn a_hot_form_says_so() {
        let mut c = message(MessageKind::Form);
        c.form = Some("demo-request".into());
        assert_eq!(
            hot_config().hot(&c).as_deref(),
            Some("submitted the form demo-request")
        );
        c.form = Some("contact-page".into());
        assert_eq!(hot_config().hot(&c), None);
    }

    #[test]
    fn a_hot_channel_says_so_ignoring_case() {
        let mut c = message(MessageKind::Inquiry);
        c.channel = Some("Webinar".into());
        assert_eq!(
            hot_config().hot(&c).as_deref(),
            Some("came from channel Webinar")
        );
        c.channel = Some("direct".into());
        assert_eq!(hot_config().hot(&c), None);
    }

    #[test]
    fn a_hot_field_value_says_so_and_reasons_add_up() {
        let mut c = message(MessageKind::Form);
        c.fields.insert("budget".into(), "5000".into());
        assert_eq!(hot_config().hot(&c), None, "too small");
        c.fields.insert("budget".into(), "50000".into());
        assert_eq!(
            hot_config().hot(&c).as_deref(),
            Some("field budget is \"50000\"")
        );
        c.form = Some("demo-request".into());
        assert_eq!(
            hot_config().hot(&c).as_deref(),
            Some("submitted the form demo-request; field budget is \"50000\"")
        );
    }

    #[test]
    fn forwards_count_and_other_kinds_and_disabled_handoffs_never_do() {
        let mut c = message(MessageKind::Forward);
        c.channel = Some("webinar".into());
        assert!(hot_config().hot(&c).is_some());
        for kind in [
            MessageKind::Autoreply,
            MessageKind::Bounce,
            MessageKind::Feedback,
            MessageKind::Unsubscribe,
            MessageKind::Ignored,
        ] {
            c.kind = kind;
            assert_eq!(hot_config().hot(&c), None, "{kind}");
        }
        c.kind = MessageKind::Forward;
        let off = Handoff {
            enabled: false,
            ..hot_config()
        };
        assert_eq!(off.hot(&c), None);
        assert_eq!(off.hot(&message(MessageKind::Reply)), None);
        let no_replies = Handoff {
            on_reply: false,
            ..hot_config()
        };
        assert_eq!(no_replies.hot(&message(MessageKind::Reply)), None);
    }
}
