//! The hand-off worker: renders queued notifications to our own people and enqueues them.
//!
//! Ingest queues a hand-off (or an explanation) in the transaction that records the message
//! behind it, so none is lost to a crash. This worker, woken by that transaction, builds the
//! lead card from the store, renders it and puts it in the outbox in one transaction with the
//! queue row's new state; the outbox sender takes it from there over `[smtp]`. Two workers on
//! one database never enqueue one notification twice: the queue row is taken first.
//!
//! The limits that keep Sales' inbox sane are applied here, where the history is known: at
//! most one hand-off per lead per `[handoff] interval`, and never two explanations in a row
//! to the same person about the same lead.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{Actions, HANDOFF_TAG};
use crate::domain::{EmailAddress, HandoffKind, Lead, MessageId};
use crate::render::{self, CardEvent, CardMessage, CardSent, SenderData, Templates};
use crate::store::{HandoffOutcome, NewOutboxMessage, PendingHandoff, Store, StoreError};

/// Notifications handled per round.
const BATCH: i64 = 100;

/// How often the worker looks without being woken (another daemon's ingest queued one).
const POLL: Duration = Duration::from_secs(5);

/// Where the worker finds the templates (the sequence catalog, reloaded with the config).
pub trait TemplateSource: Send + Sync {
    /// The compiled templates.
    fn templates(&self) -> &Templates;
}

/// Renders and enqueues notifications to our own people.
pub struct Worker {
    store: Store,
    actions: Arc<Actions>,
    templates: Arc<dyn TemplateSource>,
    sender: SenderData,
    envelope_from: Option<EmailAddress>,
    /// The monitored inbox: Reply-To addresses are plus-addresses of it.
    inbox: EmailAddress,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("sender", &self.sender.address)
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Notifications put in the outbox.
    pub queued: usize,
    /// Notifications skipped (interval, no owner, an explanation just sent).
    pub skipped: usize,
    /// Notifications left pending because they could not be rendered.
    pub failed: usize,
}

/// What became of one pending notification in this worker.
enum Handled {
    /// This worker recorded its outcome.
    Settled(HandoffOutcome),
    /// Another worker recorded one first.
    Taken,
    /// It could not be rendered; it stays pending.
    Unrendered,
}

/// A notification's Message-ID: `leadloop.HASH@inbox-domain`, stable per queue row.
fn message_id(token: &str, inbox: &EmailAddress) -> String {
    let mut h = Sha256::new();
    h.update(b"leadloop hand-off message-id v1");
    h.update(token.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("leadloop.{hex}@{}", inbox.domain())
}

impl Worker {
    /// A worker sending as `sender` (envelope `envelope_from` when set), with Reply-To
    /// addresses under `inbox`.
    pub fn new(
        store: Store,
        actions: Arc<Actions>,
        templates: Arc<dyn TemplateSource>,
        sender: SenderData,
        envelope_from: Option<EmailAddress>,
        inbox: EmailAddress,
    ) -> Worker {
        Worker {
            store,
            actions,
            templates,
            sender,
            envelope_from,
            inbox,
        }
    }

    /// Handles every pending notification.
    ///
    /// # Errors
    /// A failed query; what was handled before it stays handled.
    pub async fn run_pending(&self, now: DateTime<Utc>) -> Result<Round, StoreError> {
        let mut total = Round::default();
        loop {
            let pending = self.store.pending_handoffs(BATCH).await?;
            let n = pending.len();
            let mut progress = false;
            for p in pending {
                let span = info_span!("handoff", id = p.id, kind = %p.kind, lead = %p.lead_id);
                match self.handle(&p, now).instrument(span).await? {
                    Handled::Settled(HandoffOutcome::Queued(_)) => {
                        total.queued += 1;
                        progress = true;
                    }
                    Handled::Settled(HandoffOutcome::Skipped(_)) => {
                        total.skipped += 1;
                        progress = true;
                    }
                    // Another worker settled it first: it is done, by them.
                    Handled::Taken => progress = true,
                    Handled::Unrendered => total.failed += 1,
                }
            }
            if usize::try_from(BATCH).is_ok_and(|b| n < b) || !progress {
                return Ok(total);
            }
        }
    }

    /// Runs until `cancel` fires: handles what is pending whenever woken, and every few
    /// seconds for what another daemon's ingest queued.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            match self.run_pending(Utc::now()).await {
                Ok(r) if r != Round::default() => {
                    info!(
                        queued = r.queued,
                        skipped = r.skipped,
                        failed = r.failed,
                        "notifications to Sales handled"
                    );
                }
                Ok(_) => {}
                Err(e) => error!(
                    error = %crate::diagnostics::error_chain(&e),
                    "cannot read the hand-off queue"
                ),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.store.handoffs_woken() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Renders one notification and records its outcome.
    async fn handle(&self, p: &PendingHandoff, now: DateTime<Utc>) -> Result<Handled, StoreError> {
        let leads = self.store.leads_by_id(&[p.lead_id]).await?;
        let Some(lead) = leads.get(&p.lead_id) else {
            let outcome = HandoffOutcome::Skipped("the lead no longer exists".into());
            return self.settle(p, outcome, now).await;
        };
        let outcome = match p.kind {
            HandoffKind::Handoff => self.handoff(p, lead, now).await?,
            HandoffKind::Explain => self.explanation(p, lead, now).await?,
        };
        match outcome {
            Ok(o) => self.settle(p, o, now).await,
            Err(e) => {
                error!(error = %e, "cannot render the notification; it waits until the templates are fixed");
                Ok(Handled::Unrendered)
            }
        }
    }

    /// Records the outcome, unless another worker settled the notification first.
    async fn settle(
        &self,
        p: &PendingHandoff,
        outcome: HandoffOutcome,
        now: DateTime<Utc>,
    ) -> Result<Handled, StoreError> {
        if !self.store.finish_handoff(p, &outcome, now).await? {
            debug!("another worker settled it first");
            return Ok(Handled::Taken);
        }
        match &outcome {
            HandoffOutcome::Queued(m) => info!(to = %m.recipient, "queued"),
            HandoffOutcome::Skipped(why) => debug!(why, "skipped"),
        }
        Ok(Handled::Settled(outcome))
    }

    /// The lead card for the lead's owner, unless one went out within the interval.
    async fn handoff(
        &self,
        p: &PendingHandoff,
        lead: &Lead,
        now: DateTime<Utc>,
    ) -> Result<Result<HandoffOutcome, String>, StoreError> {
        let settings = self.actions.settings();
        let owner = lead
            .owner
            .as_deref()
            .and_then(|o| EmailAddress::parse(o).ok())
            .or_else(|| settings.routing.default_owner.clone());
        let Some(owner) = owner else {
            warn!("the lead has no owner and [handoff] default_owner is not set: nobody to tell");
            return Ok(Ok(HandoffOutcome::Skipped(
                "the lead has no owner and [handoff] default_owner is not set".into(),
            )));
        };
        if let Some(last) = self.store.last_handoff_queued(lead.id).await?
            && now.signed_duration_since(last).to_std().unwrap_or_default()
                < settings.handoff.interval
        {
            return Ok(Ok(HandoffOutcome::Skipped(format!(
                "a hand-off about this lead went out at {}, within [handoff] interval",
                last.format("%Y-%m-%d %H:%M UTC")
            ))));
        }
        let timeline = self.store.timeline(lead).await?;
        let events: Vec<CardEvent> = timeline
            .iter()
            .filter(|e| e.kind != "sent")
            .map(|e| CardEvent {
                at: e.at,
                kind: e.kind.clone(),
                summary: e.subject.clone().unwrap_or_default(),
            })
            .collect();
        let sent: Vec<CardSent> = self
            .store
            .sent_steps(lead.id)
            .await?
            .into_iter()
            .map(|(at, sequence, step)| CardSent {
                at,
                sequence,
                step,
                subject: None,
            })
            .collect();
        let reply = p.cause.as_ref().and_then(|c| {
            c.text.clone().map(|text| CardMessage {
                subject: c.subject.clone(),
                text,
                at: c.at,
            })
        });
        let (reply_to, id) = match self.addresses(p) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let references: Vec<String> = p
            .cause
            .as_ref()
            .and_then(|c| c.message_id.clone())
            .into_iter()
            .collect();
        let card = render::HandoffCard {
            lead,
            owner: &owner,
            sender: &self.sender,
            why: &p.why,
            reply: reply.as_ref(),
            timeline: &events,
            sent: &sent,
            message_id: &id,
            reply_to: &reply_to,
            references: &references,
            date: now,
        };
        Ok(render::render_handoff(self.templates.templates(), &card)
            .map(|r| self.queued(r, now))
            .map_err(|e| e.to_string()))
    }

    /// A short reply to a Sales answer that held no usable verdict, unless the last message
    /// to that person about the lead was one already.
    async fn explanation(
        &self,
        p: &PendingHandoff,
        lead: &Lead,
        now: DateTime<Utc>,
    ) -> Result<Result<HandoffOutcome, String>, StoreError> {
        let Some(to) = p
            .recipient
            .as_deref()
            .and_then(|r| EmailAddress::parse(r).ok())
        else {
            return Ok(Ok(HandoffOutcome::Skipped("no recipient".into())));
        };
        if self
            .store
            .last_notification_to(lead.id, to.as_str())
            .await?
            == Some(HandoffKind::Explain)
        {
            return Ok(Ok(HandoffOutcome::Skipped(format!(
                "the last message to {to} about this lead was an explanation already"
            ))));
        }
        let (reply_to, id) = match self.addresses(p) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let subject = p.cause.as_ref().and_then(|c| c.subject.clone());
        let in_reply_to = p.cause.as_ref().and_then(|c| c.message_id.clone());
        let e = render::Explanation {
            to: &to,
            sender: &self.sender,
            lead_email: &lead.email,
            problem: &p.why,
            subject: subject.as_deref(),
            in_reply_to: in_reply_to.as_deref(),
            reply_to: &reply_to,
            message_id: &id,
            date: now,
        };
        Ok(render::render_explanation(self.templates.templates(), &e)
            .map(|r| self.queued(r, now))
            .map_err(|e| e.to_string()))
    }

    /// A notification's Reply-To (`inbox+handoff-TOKEN@…`, which maps an answer back to the
    /// lead) and its Message-ID, both from its token.
    fn addresses(&self, p: &PendingHandoff) -> Result<(EmailAddress, String), String> {
        let reply_to =
            EmailAddress::parse(&self.inbox.with_tag(&format!("{HANDOFF_TAG}{}", p.token)))
                .map_err(|e| format!("cannot build a Reply-To from {}: {e}", self.inbox))?;
        Ok((reply_to, message_id(&p.token, &self.inbox)))
    }

    fn queued(&self, r: render::Rendered, now: DateTime<Utc>) -> HandoffOutcome {
        HandoffOutcome::Queued(Box::new(NewOutboxMessage {
            // Not a message to a lead: a refusal of our colleague's address harms no lead.
            lead_id: None,
            enrollment_id: None,
            step_id: None,
            from: self.sender.address.to_string(),
            envelope_from: self
                .envelope_from
                .as_ref()
                .unwrap_or(&self.sender.address)
                .to_string(),
            recipient: r.to.to_string(),
            message_id: MessageId::new(r.message_id),
            raw: r.bytes,
            due_at: now,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_ids_are_stable_and_ours() {
        let inbox = EmailAddress::parse("leads@company.com").unwrap();
        let a = message_id("abc", &inbox);
        assert_eq!(a, message_id("abc", &inbox));
        assert_ne!(a, message_id("abd", &inbox));
        assert!(
            a.starts_with("leadloop.") && a.ends_with("@company.com"),
            "{a}"
        );
        assert_eq!(
            inbox.with_tag(&format!("{HANDOFF_TAG}abc")),
            "leads+handoff-abc@company.com"
        );
    }
}
