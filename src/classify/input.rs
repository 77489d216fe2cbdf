//! The message as the stages read it: parsed once, with what several stages ask for
//! computed at most once, on first use.

use std::borrow::Cow;
use std::cell::OnceCell;

use mail_parser::Message;

use super::spam::Judgement;
use super::{Ctx, forms, parse};
use crate::domain::{EmailAddress, Person};

/// One parsed message and the rules, shared by every stage.
pub struct Input<'a> {
    pub msg: &'a Message<'a>,
    pub ctx: &'a Ctx<'a>,
    /// The decoded subject, empty when there is none.
    pub subject: &'a str,
    /// Message-IDs from In-Reply-To and References.
    pub references: &'a [String],
    /// The first valid `From` address.
    pub from: Option<parse::Named>,
    pub texts: Texts,
    recipients: OnceCell<Vec<EmailAddress>>,
    hosted_form: OnceCell<bool>,
    spam: OnceCell<Judgement>,
}

impl<'a> Input<'a> {
    pub fn new(
        msg: &'a Message<'a>,
        ctx: &'a Ctx<'a>,
        subject: &'a str,
        references: &'a [String],
    ) -> Self {
        Input {
            msg,
            ctx,
            subject,
            references,
            from: parse::first_address(msg, "From"),
            texts: Texts::new(parse::body_text(msg)),
            recipients: OnceCell::new(),
            hosted_form: OnceCell::new(),
            spam: OnceCell::new(),
        }
    }

    /// The `From` address, when valid.
    pub fn sender(&self) -> Option<&EmailAddress> {
        self.from.as_ref().map(|f| &f.email)
    }

    /// The body as text ([`parse::body_text`]).
    pub fn body(&self) -> &str {
        &self.texts.body
    }

    /// Recipient addresses in the order that best reveals which of our addresses was used.
    pub fn recipients(&self) -> &[EmailAddress] {
        self.recipients.get_or_init(|| {
            let mut out: Vec<EmailAddress> = Vec::new();
            for h in ["Delivered-To", "X-Original-To", "To", "Cc"] {
                for n in parse::addresses(self.msg, h) {
                    if !out.contains(&n.email) {
                        out.push(n.email);
                    }
                }
            }
            out
        })
    }

    /// Mail leadloop sent itself: it carries our `X-Leadloop-Origin` header (which the own-mail
    /// stage ignores it by) or one of our Message-IDs (`leadloop.…@our-domain`).
    pub fn sent_by_leadloop(&self) -> bool {
        parse::has_header(self.msg, "X-Leadloop-Origin")
            || parse::message_ids(self.msg, "Message-ID")
                .iter()
                .any(|id| self.ctx.is_our_message_id(id))
    }

    /// The first of our own addresses among the recipients ([`Self::recipients`]: the
    /// delivery headers, then `To` and `Cc`).
    pub fn delivered_to(&self) -> Option<&EmailAddress> {
        self.recipients().iter().find(|r| self.ctx.is_own(r))
    }

    /// Sent by a hosted form service. Such services send through bulk infrastructure, so
    /// their notifications may carry the headers newsletters carry.
    pub fn hosted_form(&self) -> bool {
        *self
            .hosted_form
            .get_or_init(|| self.sender().is_some_and(forms::hosted_service))
    }

    /// What the spam filters in front of the mailbox said, read once: the spam stage and the
    /// review of a new lead both ask.
    pub fn spam(&self) -> &Judgement {
        self.spam
            .get_or_init(|| super::spam::judge(self.msg, &self.ctx.rules.spam))
    }
}

/// The lead a named address stands for, before any form field adds to it.
pub fn person(n: &parse::Named) -> Person {
    Person {
        email: n.email.clone(),
        name: n.name.clone(),
        company: None,
        phone: None,
    }
}

/// Text derived from the body that several rules need, computed at most once per message.
///
/// `new_text` and the body's `Label: value` fields used to be recomputed by every rule that
/// asked (up to three form checks and three new-text readers per message); each is a pure
/// function of the body, so computing it once changes no decision.
pub struct Texts {
    body: String,
    /// The new text, and whether it holds every line of the body.
    new_text: OnceCell<(String, bool)>,
    fields: OnceCell<Vec<(String, String)>>,
}

impl Texts {
    fn new(body: String) -> Self {
        Texts {
            body,
            new_text: OnceCell::new(),
            fields: OnceCell::new(),
        }
    }

    /// [`parse::new_text_whole`] of the body.
    pub fn new_text(&self) -> &str {
        &self.new_text_whole().0
    }

    /// What the writer typed themselves: the new text without a signature below a `-- ` line.
    pub fn own_text(&self) -> &str {
        parse::without_signature(self.new_text())
    }

    fn new_text_whole(&self) -> &(String, bool) {
        self.new_text
            .get_or_init(|| parse::new_text_whole(&self.body))
    }

    /// [`forms::extract_fields`] of the body.
    pub fn fields(&self) -> &[(String, String)] {
        self.fields
            .get_or_init(|| forms::extract_fields(&self.body))
    }

    /// [`forms::extract_fields`] of the new text. When the new text kept every line of the
    /// body (an inquiry without quoted history, the usual case), its lines are the body's
    /// trimmed lines without leading and trailing blank ones, which `extract_fields` (which
    /// trims lines, finds no field on a blank line and finds no value on a trailing one)
    /// reads alike; the body's fields, often already extracted by the form check, are reused.
    pub fn new_text_fields(&self) -> Cow<'_, [(String, String)]> {
        let (text, whole) = self.new_text_whole();
        if *whole {
            Cow::Borrowed(self.fields())
        } else {
            Cow::Owned(forms::extract_fields(text))
        }
    }
}
