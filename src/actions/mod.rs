//! Lead actions: what a classified message does to its lead beyond recording it.
//!
//! `classify` says what a message is; the store records it. In between, this module decides
//! what follows for the lead: which owner it is routed to ([`route`]), whether Sales is told
//! ([`trigger`]), what Sales' verdict changes, how long an out-of-office pauses its sequences,
//! and when bounces suppress its address. Ingest calls [`Actions::plan`] for every batch, and
//! the CLI [`Actions::verdict`] for the same verdicts typed by a person, so both act alike.
//!
//! The decisions are [`LeadChange`]s the store applies in the batch's own transaction, and
//! only for messages new to the store: a batch replayed after a crash changes nothing twice.
//! Nothing here sends mail: a hand-off or an explanation is queued, and the [`handoff`]
//! worker renders and enqueues it. Nothing is ever sent in reply to an auto-reply, a bounce,
//! bulk mail or our own mail: only replies, hot leads and Sales' answers queue anything, and
//! only to our own people.

pub mod digest;
pub mod handoff;
pub mod route;
pub mod score;
pub mod settings;
pub mod trigger;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::domain::{
    BounceReason, Classification, EmailAddress, LeadId, LeadStatus, MessageKind, Person,
    SequenceName, Verdict, VerdictKind, VerdictTarget,
};
use crate::store::{
    Change, EnrollRule, InboundRecord, KnownLead, Lead, LeadChange, OurMessage, SOFT_BOUNCE, Store,
    StoreError, start_of,
};

pub use route::{Assignment, Routing};
pub use settings::Settings;
pub use trigger::Handoff;

/// Why an unsubscribe request ends enrollments and suppresses the address.
const UNSUBSCRIBE_REASON: &str = "the lead asked to unsubscribe";

/// What an unsubscribe request made by link (the one-click URL of RFC 8058, or its confirm
/// page) changes for the lead with this address: what one by mail changes. Every enrollment
/// ends, the address is suppressed and the lead is `unsubscribed`, applied together by
/// [`Store::unsubscribe_once`].
pub fn unsubscribe_by_link(lead: &EmailAddress) -> Vec<LeadChange> {
    [
        Change::EndEnrollments {
            sequences: None,
            reason: UNSUBSCRIBE_REASON.to_owned(),
        },
        Change::Suppress {
            reason: UNSUBSCRIBE_REASON.to_owned(),
        },
        Change::Status(LeadStatus::Unsubscribed),
    ]
    .into_iter()
    .map(|change| LeadChange {
        record: 0,
        lead: lead.clone(),
        change,
    })
    .collect()
}

/// The plus tag of our hand-off Reply-To addresses (`inbox+handoff-TOKEN@…`).
pub const HANDOFF_TAG: &str = "handoff-";

/// The plus tag of our nurture Reply-To addresses (`inbox+reply-TOKEN@…`).
const REPLY_TAG: &str = "reply-";

/// The plus tag of VERP envelope senders (`bounces+bounce-TOKEN@…`, `[smtp] verp`): a bounce
/// sent there names the enrollment it is about, whatever the bounce's own format.
pub const BOUNCE_TAG: &str = "bounce-";

/// What the lead actions know of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    settings: Settings,
    /// Sequences new leads enter from messages (ingest's `[enroll]` rules).
    enroll: Vec<EnrollRule>,
    /// Every sequence, for `nurture:` and `[enroll] on_status`.
    sequences: Vec<EnrollRule>,
    /// `[identity] sales`, route owners and the default owner: whose answers are verdicts.
    sales: Vec<EmailAddress>,
}

/// What one lookup round found for a batch.
#[derive(Debug, Default)]
struct Known {
    by_address: HashMap<String, KnownLead>,
    by_id: HashMap<LeadId, KnownLead>,
    messages: HashMap<String, OurMessage>,
    handoff_tokens: HashMap<String, LeadId>,
    enrollment_tokens: HashMap<String, LeadId>,
    soft_bounces: HashMap<String, u32>,
}

impl Known {
    /// The lead with this address or alias (also when the address is a lead's own address
    /// that was found through one of its aliases, or by a Message-ID or token).
    fn lead_by_address(&self, a: &EmailAddress) -> Option<&KnownLead> {
        self.by_address.get(a.as_str())
    }

    fn lead(&self, id: LeadId) -> Option<&KnownLead> {
        self.by_id.get(&id)
    }

    /// The first of `references` that is one of our messages.
    fn our_message<'a>(&'a self, references: &[String]) -> Option<&'a OurMessage> {
        references
            .iter()
            .find_map(|r| self.messages.get(r.as_str()))
    }
}

/// One failed recipient of a bounce, as the lead actions read it.
struct Failed<'b> {
    address: &'b EmailAddress,
    permanent: bool,
    status: Option<&'b str>,
    /// `None` for a bounce recorded before reasons were.
    reason: Option<BounceReason>,
}

impl Failed<'_> {
    /// `5.1.1, user_unknown`, as suppressions and enrollments record why.
    fn describe(&self) -> String {
        let status = self.status.unwrap_or("no status");
        match self.reason {
            Some(r) => format!("{status}, {r}"),
            None => status.to_owned(),
        }
    }

    /// The timeline entry of this failure.
    fn detail(&self, message_id: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "address": self.address,
            "permanent": self.permanent,
            "status": self.status,
            "reason": self.reason,
            "message_id": message_id,
        })
    }
}

/// The lead whose address (or alias) the `i`th failed recipient is.
fn known_lead_of<'k>(failed: &[Failed<'_>], i: usize, known: &'k Known) -> Option<&'k KnownLead> {
    failed.get(i).and_then(|f| known.lead_by_address(f.address))
}

/// The token of a plus-address with this tag prefix (`inbox+handoff-TOKEN@…`).
fn token<'a>(to: Option<&'a EmailAddress>, tag: &str) -> Option<&'a str> {
    let t = to?.plus_tag()?;
    t.get(..tag.len())
        .filter(|p| p.eq_ignore_ascii_case(tag))
        .map(|_| &t[tag.len()..])
        .filter(|t| !t.is_empty())
}

fn person(email: &EmailAddress) -> Person {
    Person {
        email: email.clone(),
        name: None,
        company: None,
        phone: None,
    }
}

/// A duration as a person says it: `7 days`, `36 hours`, `90 minutes`.
fn spoken(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => (s / 86_400, "day"),
        _ if s >= 3_600 && s.is_multiple_of(3_600) => (s / 3_600, "hour"),
        _ if s >= 60 && s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `std::time::Duration` as a chrono duration, saturating.
fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Actions {
    /// Lead actions with these settings, ingest's enroll rules, every sequence's rule (for
    /// `nurture:` and `[enroll] on_status`) and the Sales addresses.
    pub fn new(
        settings: Settings,
        enroll: Vec<EnrollRule>,
        sequences: Vec<EnrollRule>,
        sales: Vec<EmailAddress>,
    ) -> Actions {
        Actions {
            settings,
            enroll,
            sequences,
            sales,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Ingest's enroll rules.
    pub fn enroll_rules(&self) -> &[EnrollRule] {
        &self.enroll
    }

    /// Decides what a batch's messages change for their leads, reading what it needs from
    /// the store (which lead an address, a Message-ID or a token belongs to; recent soft
    /// bounces). It also points messages about a known lead at that lead (an alias's reply,
    /// a bounce, Sales' answer), so they are on its timeline.
    ///
    /// # Errors
    /// A failed query; nothing is decided then, and the batch is not recorded.
    pub async fn plan(
        &self,
        store: &Store,
        records: &mut [InboundRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadChange>, StoreError> {
        let known = self.look_up(store, records, now).await?;
        let mut changes = Vec::new();
        // Soft bounces of this batch, per lead, added to those already recorded.
        let mut soft: HashMap<String, u32> = HashMap::new();
        for (i, r) in records.iter_mut().enumerate() {
            let c = &mut r.classification;
            let mut push = |lead: &EmailAddress, change: Change| {
                changes.push(LeadChange {
                    record: i,
                    lead: lead.clone(),
                    change,
                });
            };
            if c.kind == MessageKind::Inquiry {
                Self::known_writer(c, &known);
            }
            match c.kind {
                MessageKind::Inquiry | MessageKind::Form | MessageKind::Forward => {
                    self.new_lead(c, &mut push);
                }
                MessageKind::Reply => self.reply(c, &known, &mut push),
                MessageKind::Unsubscribe => self.unsubscribe(c, &known, &mut push),
                MessageKind::Autoreply => self.autoreply(c, &known, now, &mut push),
                MessageKind::Bounce => self.bounce(c, &known, &mut soft, &mut push),
                MessageKind::Feedback => self.feedback(c, &known, now, &mut push),
                MessageKind::Ignored => {}
            }
        }
        Ok(changes)
    }

    /// One round of reads for everything the batch's messages may be about. A batch of new
    /// inquiries only (the common case) reads nothing.
    async fn look_up(
        &self,
        store: &Store,
        records: &[InboundRecord],
        now: DateTime<Utc>,
    ) -> Result<Known, StoreError> {
        let mut addresses: HashSet<&str> = HashSet::new();
        let mut ids: HashSet<&str> = HashSet::new();
        let mut handoff_tokens: HashSet<&str> = HashSet::new();
        let mut enrollment_tokens: HashSet<&str> = HashSet::new();
        let mut any_bounce = false;
        for r in records {
            let c = &r.classification;
            match c.kind {
                MessageKind::Reply
                | MessageKind::Unsubscribe
                | MessageKind::Autoreply
                | MessageKind::Feedback
                | MessageKind::Bounce
                | MessageKind::Inquiry => {}
                _ => continue,
            }
            if let Some(p) = &c.lead {
                addresses.insert(p.email.as_str());
            }
            // An inquiry needs only its writer looked up (a lead's alias, a lead written to).
            if c.kind == MessageKind::Inquiry {
                continue;
            }
            if let Some(b) = &c.bounce {
                any_bounce = true;
                // Every failed recipient: each may be a lead.
                for a in b
                    .recipient
                    .iter()
                    .chain(b.recipients.iter().map(|r| &r.address))
                {
                    addresses.insert(a.as_str());
                }
            }
            ids.extend(c.references.iter().map(String::as_str));
            handoff_tokens.extend(token(c.delivered_to.as_ref(), HANDOFF_TAG));
            enrollment_tokens.extend(token(c.delivered_to.as_ref(), REPLY_TAG));
            enrollment_tokens.extend(token(c.delivered_to.as_ref(), BOUNCE_TAG));
        }
        let mut known = Known::default();
        if addresses.is_empty()
            && ids.is_empty()
            && handoff_tokens.is_empty()
            && enrollment_tokens.is_empty()
        {
            return Ok(known);
        }
        fn list<'a>(s: &HashSet<&'a str>) -> Vec<&'a str> {
            s.iter().copied().collect()
        }
        // Independent reads, side by side on the pool's connections: a batch waits for the
        // slowest, not the sum.
        let (addresses, ids) = (list(&addresses), list(&ids));
        let (handoff_tokens, enrollment_tokens) = (list(&handoff_tokens), list(&enrollment_tokens));
        (
            known.by_address,
            known.messages,
            known.handoff_tokens,
            known.enrollment_tokens,
        ) = tokio::try_join!(
            store.leads_by_address(&addresses),
            store.our_messages(&ids),
            store.handoff_tokens(&handoff_tokens),
            store.enrollment_tokens(&enrollment_tokens),
        )?;
        let mut lead_ids: Vec<LeadId> = known
            .messages
            .values()
            .flat_map(|m| m.to_lead.into_iter().chain(m.about.map(|(_, l)| l)))
            .chain(known.handoff_tokens.values().copied())
            .chain(known.enrollment_tokens.values().copied())
            .collect();
        lead_ids.sort_unstable();
        lead_ids.dedup();
        known.by_id = store.known_leads(&lead_ids).await?;
        for l in known.by_address.values() {
            known.by_id.entry(l.id).or_insert_with(|| l.clone());
        }
        // Every lead found is known by its own address too: a message about a lead found
        // through an alias, a Message-ID or a token names it by that address later on.
        for l in known.by_id.values() {
            known
                .by_address
                .entry(l.email.to_string())
                .or_insert_with(|| l.clone());
        }
        if any_bounce && !known.by_id.is_empty() {
            let mut emails: Vec<&str> = known.by_id.values().map(|l| l.email.as_str()).collect();
            emails.sort_unstable();
            emails.dedup();
            let since = now - span(self.settings.soft_bounce_window);
            known.soft_bounces = store.soft_bounces_since(&emails, since).await?;
        }
        Ok(known)
    }

    /// An inquiry from an address leadloop knows: from an alias, it is about the lead the
    /// alias belongs to; from a lead leadloop has written to, it is that lead answering (a
    /// phone's mail app that drops In-Reply-To, a new message instead of a reply), so it is
    /// recorded as a reply.
    fn known_writer(c: &mut Classification, known: &Known) {
        let Some(lead) = c
            .lead
            .as_ref()
            .and_then(|p| known.lead_by_address(&p.email))
        else {
            return;
        };
        if let Some(p) = c.lead.as_mut()
            && p.email != lead.email
        {
            c.evidence.push(format!(
                "{} is an address of the lead {}",
                p.email, lead.email
            ));
            p.email = lead.email.clone();
        }
        if lead.mailed {
            c.evidence.push(
                "reply: a lead leadloop has written to wrote again, without references".into(),
            );
            c.kind = MessageKind::Reply;
        }
    }

    /// A message that creates or updates a lead: its owner, and a hand-off when it is hot.
    fn new_lead(&self, c: &mut Classification, push: &mut impl FnMut(&EmailAddress, Change)) {
        let Some(lead) = c.lead.as_ref().map(|p| p.email.clone()) else {
            return;
        };
        if let Some(alias) = &c.alias {
            push(&lead, Change::Alias(alias.clone()));
        }
        match self.settings.routing.assign(c) {
            Some(Assignment::Forwarder(_)) | None => {}
            Some(Assignment::Default(owner)) => c.owner = Some(owner),
            Some(Assignment::Route { name, owners }) => match owners.as_slice() {
                [one] => c.owner = Some(one.clone()),
                [] => {}
                _ => push(
                    &lead,
                    Change::AssignNext {
                        route: name,
                        owners,
                    },
                ),
            },
        }
        let handoff = &self.settings.handoff;
        // A lead waiting for review is nobody's to call yet: approving it hands it off.
        if handoff.enabled
            && c.review.is_none()
            && let Some(why) = handoff.hot(c)
        {
            push(&lead, Change::Handoff { why });
        }
    }

    /// The lead a message from `sender` that answers `references` (or was sent to one of our
    /// plus-addresses) is about: the sender's own lead (or the lead it is an alias of), else
    /// the lead our answered message went to. The second is `true` when the sender was not
    /// known as that lead's address.
    fn answering_lead<'k>(
        &self,
        c: &Classification,
        sender: Option<&EmailAddress>,
        known: &'k Known,
    ) -> Option<(&'k KnownLead, bool)> {
        if let Some(l) = sender.and_then(|s| known.lead_by_address(s)) {
            return Some((l, false));
        }
        let to_lead = known
            .our_message(&c.references)
            .and_then(|m| m.to_lead)
            .or_else(|| {
                token(c.delivered_to.as_ref(), REPLY_TAG)
                    .and_then(|t| known.enrollment_tokens.get(t).copied())
            })?;
        known.lead(to_lead).map(|l| (l, true))
    }

    /// A lead answered: its reply-exiting sequences end, it is engaged, its owner is told.
    fn reply(
        &self,
        c: &mut Classification,
        known: &Known,
        push: &mut impl FnMut(&EmailAddress, Change),
    ) {
        let sender = c.lead.as_ref().map(|p| p.email.clone());
        // An answer to a hand-off from someone who is not Sales (classify found no Sales
        // sender) is recorded, and changes nothing.
        if let Some(m) = known.our_message(&c.references)
            && m.about.is_some()
            && m.to_lead.is_none()
        {
            let who = sender
                .as_ref()
                .map_or("an unknown sender".to_owned(), |s| s.to_string());
            c.reason = Some(format!(
                "answers a notification to our own people, from {who}, who is not Sales: nothing changes"
            ));
            c.lead = None;
            return;
        }
        let Some((lead, new_address)) = self.answering_lead(c, sender.as_ref(), known) else {
            return;
        };
        let email = lead.email.clone();
        if new_address && let Some(s) = &sender {
            push(&email, Change::Alias(s.clone()));
        }
        c.lead = Some(person(&email));
        let on_reply: Vec<SequenceName> = self
            .enroll
            .iter()
            .filter(|r| r.exit_on_reply)
            .map(|r| r.sequence.clone())
            .collect();
        if !on_reply.is_empty() {
            push(
                &email,
                Change::EndEnrollments {
                    sequences: Some(on_reply),
                    reason: "the lead replied".to_owned(),
                },
            );
        }
        push(&email, Change::Engaged);
        let handoff = &self.settings.handoff;
        if handoff.enabled && handoff.on_reply {
            let why = match &c.subject {
                Some(s) => format!("replied: \"{}\"", crate::render::header_safe(s)),
                None => "replied".to_owned(),
            };
            push(&email, Change::Handoff { why });
        }
    }

    /// A request to stop: every enrollment ends, the address is suppressed, the lead is
    /// `unsubscribed`, at once.
    fn unsubscribe(
        &self,
        c: &mut Classification,
        known: &Known,
        push: &mut impl FnMut(&EmailAddress, Change),
    ) {
        let Some(sender) = c.lead.as_ref().map(|p| p.email.clone()) else {
            return;
        };
        // The sender's own address is suppressed whatever lead it belongs to; the lead it is
        // an alias of leaves its sequences too.
        let lead = known
            .lead_by_address(&sender)
            .map_or(sender.clone(), |l| l.email.clone());
        c.lead = Some(person(&lead));
        if !self.enroll.is_empty() {
            push(
                &lead,
                Change::EndEnrollments {
                    sequences: None,
                    reason: UNSUBSCRIBE_REASON.to_owned(),
                },
            );
        }
        for a in [&sender, &lead] {
            push(
                a,
                Change::Suppress {
                    reason: UNSUBSCRIBE_REASON.to_owned(),
                },
            );
        }
        push(&lead, Change::Status(LeadStatus::Unsubscribed));
    }

    /// An out-of-office from an enrolled lead: its next step waits until the return date,
    /// or `ooo_default_pause` when none could be read. It never counts as a reply.
    fn autoreply(
        &self,
        c: &mut Classification,
        known: &Known,
        now: DateTime<Utc>,
        push: &mut impl FnMut(&EmailAddress, Change),
    ) {
        let sender = c.lead.as_ref().map(|p| p.email.clone());
        let Some((lead, _)) = self.answering_lead(c, sender.as_ref(), known) else {
            return;
        };
        let email = lead.email.clone();
        c.lead = Some(person(&email));
        let (until, reason) = match c.return_date {
            Some(d) if start_of(d) > now => (start_of(d), format!("out of office until {d}")),
            _ => (
                now + span(self.settings.ooo_default_pause),
                "out of office, no return date".to_owned(),
            ),
        };
        push(&email, Change::Pause { until, reason });
    }

    /// A delivery failure: for each failed recipient that is a lead, a hard failure bounces
    /// and suppresses it at once, soft ones after `soft_bounce_limit` within
    /// `soft_bounce_window`. The first recipient that is no lead's address is taken for the
    /// lead the bounced message (by its Message-ID) or the VERP address names, as before
    /// bounces named several recipients. Another failed recipient that is no lead is an
    /// address we mailed too: a hard failure suppresses it. A bounce that names no lead at
    /// all changes nothing, nor does a bounce of a notification to our own people.
    ///
    /// The message is recorded on the first lead's timeline.
    fn bounce(
        &self,
        c: &mut Classification,
        known: &Known,
        soft: &mut HashMap<String, u32>,
        push: &mut impl FnMut(&EmailAddress, Change),
    ) {
        let Some(bounce) = c.bounce.clone() else {
            return;
        };
        let ours = known.our_message(&c.references);
        if ours.is_some_and(|m| m.to_lead.is_none() && m.about.is_some()) {
            c.reason = Some("a notification to our own people bounced: no lead changes".into());
            return;
        }
        let verp = token(c.delivered_to.as_ref(), BOUNCE_TAG)
            .and_then(|t| known.enrollment_tokens.get(t).copied());
        // Every failed recipient; a bounce recorded before recipients were listed names only
        // the first.
        let failed: Vec<Failed<'_>> = if bounce.recipients.is_empty() {
            bounce
                .recipient
                .iter()
                .map(|address| Failed {
                    address,
                    permanent: bounce.permanent,
                    status: bounce.status.as_deref(),
                    reason: None,
                })
                .collect()
        } else {
            bounce
                .recipients
                .iter()
                .map(|r| Failed {
                    address: &r.address,
                    permanent: r.permanent,
                    status: r.status.as_deref(),
                    reason: Some(r.reason),
                })
                .collect()
        };
        let named = known_lead_of(&failed, 0, known)
            .or_else(|| ours.and_then(|m| m.to_lead).and_then(|id| known.lead(id)))
            .or_else(|| verp.and_then(|id| known.lead(id)));
        let leads: Vec<Option<&KnownLead>> = (0..failed.len())
            .map(|i| known_lead_of(&failed, i, known).or(if i == 0 { named } else { None }))
            .collect();
        let Some(first) = leads.iter().flatten().next().copied() else {
            return;
        };
        c.lead = Some(person(&first.email));
        let mut done: Vec<&EmailAddress> = Vec::new();
        for (f, lead) in failed.iter().zip(leads) {
            let Some(lead) = lead else {
                if f.permanent {
                    push(
                        f.address,
                        Change::Suppress {
                            reason: format!("hard bounce ({})", f.describe()),
                        },
                    );
                }
                continue;
            };
            // One decision per lead and bounce, by its first failed address.
            if done.contains(&&lead.email) {
                continue;
            }
            done.push(&lead.email);
            // The message is on the first lead's timeline; a bounce naming others goes on
            // theirs as an entry of its own.
            if lead.email != first.email {
                push(
                    &lead.email,
                    Change::Event {
                        kind: "bounce",
                        detail: f.detail(c.message_id.as_deref()),
                    },
                );
            }
            self.bounce_lead(&lead.email, f, known, soft, push, c.message_id.as_deref());
        }
    }

    /// One failed recipient of a known lead: hard, the lead is bounced, suppressed (with the
    /// failed address, when the lead was found through its bounced message) and its sequences
    /// end; soft, it counts toward the limit.
    fn bounce_lead(
        &self,
        email: &EmailAddress,
        f: &Failed<'_>,
        known: &Known,
        soft: &mut HashMap<String, u32>,
        push: &mut impl FnMut(&EmailAddress, Change),
        message_id: Option<&str>,
    ) {
        let dead = |reason: String, push: &mut dyn FnMut(&EmailAddress, Change)| {
            push(
                email,
                Change::EndEnrollments {
                    sequences: None,
                    reason: reason.clone(),
                },
            );
            if f.address != email {
                push(
                    f.address,
                    Change::Suppress {
                        reason: reason.clone(),
                    },
                );
            }
            push(email, Change::Suppress { reason });
            push(email, Change::Status(LeadStatus::Bounced));
        };
        if f.permanent {
            dead(format!("hard bounce ({})", f.describe()), push);
            return;
        }
        let count = soft
            .entry(email.to_string())
            .or_insert_with(|| known.soft_bounces.get(email.as_str()).copied().unwrap_or(0));
        *count += 1;
        // Counted on the lead's timeline, where the next bounce's count starts from.
        push(
            email,
            Change::Event {
                kind: SOFT_BOUNCE,
                detail: f.detail(message_id),
            },
        );
        let limit = self.settings.soft_bounce_limit.max(1);
        if *count == limit {
            let window = spoken(self.settings.soft_bounce_window);
            dead(
                format!(
                    "{count} soft bounces within {window} (last {})",
                    f.describe()
                ),
                push,
            );
        }
    }

    /// Sales answered a notification: record the verdict and act on it, or explain once.
    fn feedback(
        &self,
        c: &mut Classification,
        known: &Known,
        now: DateTime<Utc>,
        push: &mut impl FnMut(&EmailAddress, Change),
    ) {
        let about = known
            .our_message(&c.references)
            .and_then(|m| m.about.map(|(_, l)| l))
            .or_else(|| {
                token(c.delivered_to.as_ref(), HANDOFF_TAG)
                    .and_then(|t| known.handoff_tokens.get(t).copied())
            });
        let Some(lead) = about.and_then(|id| known.lead(id)) else {
            c.reason = Some("an answer from Sales to no hand-off leadloop knows".into());
            return;
        };
        let email = lead.email.clone();
        c.lead = Some(person(&email));
        let Some(by) = c.sender.clone() else {
            return;
        };
        let is_owner = lead
            .owner
            .as_deref()
            .and_then(|o| EmailAddress::parse(o).ok())
            .is_some_and(|o| o.same_mailbox(&by));
        if !is_owner && !self.sales.iter().any(|s| s.same_mailbox(&by)) {
            c.reason = Some(format!(
                "{by} is neither the lead's owner nor a Sales address: no verdict recorded"
            ));
            return;
        }
        let Some(verdict) = c.verdict.clone() else {
            push(
                &email,
                Change::Explain {
                    to: by,
                    problem: "the first line of the answer is not a verdict leadloop understands"
                        .to_owned(),
                },
            );
            return;
        };
        match self.verdict_changes(&verdict, by.as_str(), "mail", now) {
            Ok(list) => {
                for change in list {
                    push(&email, change);
                }
            }
            Err(problem) => push(&email, Change::Explain { to: by, problem }),
        }
    }

    /// What approving a lead that waited for review does: what ingest would have done had
    /// its first message (of `kind`) not been suspicious. It enters the sequences that
    /// message meets (`[enroll]` kinds, forms, channels, min_score) and, when it is hot, is
    /// handed off to its owner.
    pub fn approval_changes(&self, lead: &Lead, kind: MessageKind, by: &str) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .enroll
            .iter()
            .filter(|r| {
                r.kinds.contains(&kind)
                    && (r.forms.is_empty()
                        || lead.form.as_ref().is_some_and(|f| r.forms.contains(f)))
                    && (r.channels.is_empty() || r.channels.contains(&lead.channel))
                    && r.min_score.is_none_or(|min| lead.score >= min)
            })
            .map(|r| Change::Enroll {
                rule: r.clone(),
                by: format!("approved by {by}"),
            })
            .collect();
        let mut c = Classification::ignored("");
        c.kind = kind;
        c.reason = None;
        c.lead = Some(person(&lead.email));
        c.channel = Some(lead.channel.clone());
        c.form.clone_from(&lead.form);
        c.fields = lead
            .fields
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect();
        if let Some(why) = self.settings.handoff.hot(&c) {
            out.push(Change::Handoff { why });
        }
        out
    }

    /// What a verdict on a lead changes: the verdict recorded, then its status and
    /// the sequences entered on it, a pause, a sequence, an owner. `Err` explains a verdict
    /// that cannot be acted on (a sequence that does not exist).
    ///
    /// # Errors
    /// The verdict names a sequence there is none of; the text says which exist.
    pub fn verdict_changes(
        &self,
        verdict: &Verdict,
        by: &str,
        source: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Change>, String> {
        let mut out = vec![Change::Verdict {
            verdict: verdict.clone(),
            by: by.to_owned(),
            source,
        }];
        if let Some(status) = verdict.status() {
            out.push(Change::Status(status));
            out.extend(
                self.sequences
                    .iter()
                    .filter(|r| r.on_status.contains(&status))
                    .map(|r| Change::Enroll {
                        rule: r.clone(),
                        by: format!("verdict {}", verdict.kind),
                    }),
            );
        }
        match (&verdict.kind, &verdict.target) {
            (VerdictKind::NotNow, Some(VerdictTarget::Until(d))) => {
                let until = start_of(*d).max(now);
                out.push(Change::NotNow { until });
            }
            (VerdictKind::Nurture, Some(VerdictTarget::Sequence(name))) => {
                let Some(rule) = self.sequences.iter().find(|r| r.sequence == *name) else {
                    let known: Vec<&str> =
                        self.sequences.iter().map(|r| r.sequence.as_str()).collect();
                    return Err(format!(
                        "there is no sequence \"{name}\"; known sequences: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                };
                out.push(Change::Enroll {
                    rule: EnrollRule {
                        // Sales chose it: a lead that went through it before enters again.
                        reenter: true,
                        ..rule.clone()
                    },
                    by: format!("nurture by {by}"),
                });
            }
            (VerdictKind::Owner, Some(VerdictTarget::Owner(owner))) => {
                out.push(Change::Owner {
                    owner: owner.clone(),
                    by: by.to_owned(),
                });
            }
            _ => {}
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
