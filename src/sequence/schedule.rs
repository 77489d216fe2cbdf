//! The scheduler: sleeps until the earliest enrollment is due (or until ingest enrolls
//! someone), claims the due enrollments with a lease, decides for each — wait, skip, exit,
//! hold, or render and enqueue the step — and records all of it in one transaction per batch.
//!
//! A tick reads only due rows (an index on `next_due_at`), so its cost follows the due work,
//! not the number of leads. The decision for one enrollment ([`decide`]) is pure: the clock,
//! the cap counters and the random jitter come in as arguments, so tests drive weeks of
//! schedule without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, error, info, info_span, warn};

use super::{Catalog, Policy};
use crate::diagnostics::error_chain;
use crate::domain::{EmailAddress, Lead, LeadId, MessageId, MessageKind, StepId};
use crate::metrics::Metrics;
use crate::store::{Enrollment, Outgoing, Settle, Store, StoreError, count_key};

/// Enrollments claimed per transaction: small enough that a batch's rows, leads and outbox
/// pages stay in SQLite's page cache from claim to settle (measured: lower peak memory at the
/// same throughput as 500), large enough that a commit serves many messages.
const BATCH: usize = 200;
/// How long a claim protects an enrollment from other schedulers: far longer than a batch
/// takes, short enough that a crashed daemon's claims come free soon. A claim that runs out
/// under a slow batch costs work twice, never a message twice: settling checks that the
/// claim is still this scheduler's, and a step enters the outbox once.
const LEASE: Duration = Duration::from_secs(20);
/// How often a scheduler waiting out a sending pause looks whether it was lifted.
const PAUSE_POLL: Duration = Duration::from_secs(1);
/// The longest sleep: another daemon sharing the database may enroll leads this one is not
/// told about; an index lookup once a minute finds them.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What one pass over the due enrollments did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Enrollments claimed.
    pub claimed: usize,
    /// Messages enqueued.
    pub enqueued: usize,
    /// Enrollments postponed (delay, window, cap).
    pub waiting: usize,
    /// Enrollments finished or exited.
    pub ended: usize,
    /// Enrollments held because a step failed to render.
    pub held: usize,
    /// Claims lost to another scheduler.
    pub lost: usize,
}

/// Cap counters as the batch uses them: loaded once, counted up in memory as it enqueues.
#[derive(Debug, Default)]
pub struct Usage(HashMap<(String, i64), u32>);

impl Usage {
    /// Counters as loaded from the store.
    pub fn new(counts: HashMap<(String, i64), u32>) -> Self {
        Usage(counts)
    }

    fn get(&self, key: &str, bucket: DateTime<Utc>) -> u32 {
        self.0.get(&count_key(key, bucket)).copied().unwrap_or(0)
    }

    fn add(&mut self, key: &str, bucket: DateTime<Utc>) {
        *self.0.entry(count_key(key, bucket)).or_default() += 1;
    }
}

/// The messages that end enrollments, per lead address: (kind, when recorded).
pub type StopMessages = HashMap<String, Vec<(MessageKind, DateTime<Utc>)>>;

/// Decides what happens to one claimed enrollment at `now`.
///
/// `roll` gives uniform random numbers in `[0, 1)` for the jitter.
pub fn decide(
    catalog: &Catalog,
    e: &Enrollment,
    lead: Option<&Lead>,
    stops: &StopMessages,
    usage: &mut Usage,
    now: DateTime<Utc>,
    roll: &mut dyn FnMut() -> f64,
) -> Settle {
    let Some(seq) = catalog.get(e.sequence.as_str()) else {
        return Settle::Hold {
            error: format!("sequence '{}' is not in the configuration", e.sequence),
        };
    };
    let Some(lead) = lead else {
        return Settle::Exit {
            reason: "the lead no longer exists".into(),
        };
    };
    if !lead.status.may_be_mailed() || seq.exit.on_status.contains(&lead.status) {
        return Settle::Exit {
            reason: format!("lead status is {}", lead.status),
        };
    }
    for (kind, at) in stops
        .get(lead.email.as_str())
        .map_or(&[][..], Vec::as_slice)
    {
        if *at < e.enrolled_at {
            continue;
        }
        match kind {
            MessageKind::Unsubscribe => {
                return Settle::Exit {
                    reason: "the lead asked to unsubscribe".into(),
                };
            }
            MessageKind::Reply if seq.exit.on_reply => {
                return Settle::Exit {
                    reason: "the lead replied".into(),
                };
            }
            _ => {}
        }
    }
    let policy: &Policy = &catalog.settings.policy;
    let tz = policy.lead_zone(&lead.fields);
    let mut done = e.steps_done.clone();
    let mut last_at = e.last_at;
    let mut waited = e.next_step.clone();
    loop {
        let Some(step) = seq.next_step(&done) else {
            return Settle::Done { steps_done: done };
        };
        // The stored due time already includes any postponement for this step; a step seen
        // for the first time (a new enrollment, an edited file) gets its delay computed.
        let due = match (&waited, e.next_due_at) {
            (Some(w), Some(d)) if w == step.id.as_str() => d,
            _ => step.delay.after(last_at, tz),
        };
        // An out-of-office or Sales' `not now` holds the step until then; the send window
        // below then picks the first open moment after it.
        let due = e.paused_until.map_or(due, |p| due.max(p));
        waited = None;
        if due > now {
            return Settle::Wait {
                steps_done: done,
                next_step: Some(StepId::new(step.id.clone())),
                due,
                last_at,
            };
        }
        match catalog.applies(step, lead) {
            Ok(true) => {}
            Ok(false) => {
                debug!(step = %step.id, "condition false: step skipped");
                done.push(StepId::new(step.id.clone()));
                last_at = due;
                continue;
            }
            Err(err) => {
                return Settle::Hold {
                    error: format!("step {}: when: {err}", step.id),
                };
            }
        }
        let wait = |until: DateTime<Utc>, roll: &mut dyn FnMut() -> f64| Settle::Wait {
            steps_done: done.clone(),
            next_step: Some(StepId::new(step.id.clone())),
            due: until + policy.jitter(roll()),
            last_at,
        };
        let open = policy.open_at(now, tz);
        if open > now {
            return wait(open, roll);
        }
        let Some(sender) = catalog.sender(step) else {
            return Settle::Hold {
                error: format!("step {}: no [[sender]] to send from", step.id),
            };
        };
        let budgets = policy.budgets(sender, &lead.email, lead.id.0, now);
        if let Some(until) = Policy::cap_wait(&budgets, |b| usage.get(&b.key, b.bucket)) {
            return wait(policy.open_at(until, tz), roll);
        }
        let rendered = match catalog.render(seq, step, lead, e.id, &e.token, now) {
            Ok(r) => r,
            Err(err) => {
                return Settle::Hold {
                    error: format!("step {}: {err}", step.id),
                };
            }
        };
        for b in &budgets {
            usage.add(&b.key, b.bucket);
        }
        done.push(StepId::new(step.id.clone()));
        let next = seq.next_step(&done);
        return Settle::Send {
            message: Box::new(Outgoing {
                lead_id: lead.id,
                step_id: StepId::new(step.id.clone()),
                from: sender.address.to_string(),
                envelope_from: envelope_sender(
                    catalog
                        .settings
                        .envelope_from
                        .as_ref()
                        .unwrap_or(&sender.address),
                    catalog.settings.verp.then_some(e.token.as_str()),
                ),
                recipient: rendered.to.to_string(),
                message_id: MessageId::new(rendered.message_id),
                raw: rendered.bytes,
            }),
            steps_done: done,
            next_step: next.map(|n| StepId::new(n.id.clone())),
            due: next.map(|n| n.delay.after(now, tz)),
            counts: budgets
                .into_iter()
                .map(|b| (b.key, b.bucket, b.cap))
                .collect(),
        };
    }
}

/// The envelope sender (`MAIL FROM`) of a step: `base`, or with VERP (`token` given) its
/// plus-address `local+bounce-TOKEN@domain`, where bounces name the enrollment they are about.
fn envelope_sender(base: &EmailAddress, token: Option<&str>) -> String {
    match token {
        Some(t) => base.with_tag(&format!("bounce-{t}")),
        None => base.to_string(),
    }
}

/// Claims, decides and records due enrollments.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    catalog: Arc<Catalog>,
    /// This scheduler's name on its leases, unique per process and generation.
    owner: String,
    /// Fired by ingest when it enrolls someone.
    wake: Arc<Notify>,
    batch: usize,
    /// Counts how late due enrollments are claimed, for `/metrics`.
    metrics: Metrics,
}

impl Scheduler {
    /// A scheduler for `catalog`'s sequences; `wake` is what ingest notifies.
    pub fn new(store: Store, catalog: Arc<Catalog>, wake: Arc<Notify>) -> Self {
        let owner = format!(
            "{}-{}-{:08x}",
            std::process::id(),
            Utc::now().timestamp_millis(),
            rand::random::<u32>()
        );
        Scheduler {
            store,
            catalog,
            owner,
            wake,
            batch: BATCH,
            metrics: Metrics::default(),
        }
    }

    /// Counts into `metrics` (the daemon's, shown at `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets how many enrollments one transaction claims (benchmarks, tests).
    #[must_use]
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// One batch: claim up to the batch size of due enrollments at `now`, decide, record.
    ///
    /// # Errors
    /// A store failure; claimed enrollments then come free when their lease ends.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
        let claimed = self
            .store
            .claim_due(&self.owner, now, LEASE, self.batch)
            .await?;
        let claimed_at = Utc::now();
        for due in claimed.iter().filter_map(|e| e.next_due_at) {
            self.metrics
                .claimed_late((claimed_at - due).to_std().unwrap_or_default());
        }
        let mut report = TickReport {
            claimed: claimed.len(),
            ..TickReport::default()
        };
        if claimed.is_empty() {
            return Ok(report);
        }
        let ids: Vec<LeadId> = claimed.iter().map(|e| e.lead_id).collect();
        let leads = self.store.leads_by_id(&ids).await?;
        let emails: Vec<&str> = leads.values().map(|l| l.email.as_str()).collect();
        let stops = self.store.stop_messages(&emails).await?;
        let mut keys = Vec::new();
        let policy = &self.catalog.settings.policy;
        for lead in leads.values() {
            for sender in &self.catalog.settings.senders {
                keys.extend(
                    policy
                        .budgets(sender, &lead.email, lead.id.0, now)
                        .into_iter()
                        .map(|b| (b.key, b.bucket)),
                );
            }
        }
        keys.sort();
        keys.dedup();
        let mut usage = Usage::new(self.store.send_counts(&keys).await?);
        let mut roll = || rand::random::<f64>();
        let mut items = Vec::with_capacity(claimed.len());
        for e in &claimed {
            let span = info_span!("enrollment", id = e.id.0, sequence = %e.sequence);
            let _guard = span.enter();
            let s = decide(
                &self.catalog,
                e,
                leads.get(&e.lead_id),
                &stops,
                &mut usage,
                now,
                &mut roll,
            );
            match &s {
                Settle::Wait { .. } => report.waiting += 1,
                Settle::Send { message, .. } => {
                    debug!(step = %message.step_id, message_id = %message.message_id, "step rendered");
                }
                Settle::Done { .. } | Settle::Exit { .. } => report.ended += 1,
                Settle::Hold { error } => {
                    warn!(%error, "step held: it is not sent until the problem is fixed");
                    report.held += 1;
                }
            }
            items.push((e.id, s));
        }
        let settled = self
            .store
            .settle_enrollments(&self.owner, &items, now)
            .await?;
        report.enqueued = settled.enqueued;
        report.lost = settled.lost;
        Ok(report)
    }

    /// Ticks until fewer than a batch of enrollments are due at `now`.
    ///
    /// # Errors
    /// A store failure.
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
        let mut total = TickReport::default();
        loop {
            let r = self.tick(now).await?;
            total.claimed += r.claimed;
            total.enqueued += r.enqueued;
            total.waiting += r.waiting;
            total.ended += r.ended;
            total.held += r.held;
            total.lost += r.lost;
            if r.claimed < self.batch {
                return Ok(total);
            }
        }
    }

    /// Runs until `cancel` fires: sleeps until the next enrollment is due or ingest wakes it.
    pub async fn run(&self, cancel: CancellationToken) {
        async {
            match self.store.release_held(Utc::now()).await {
                Ok(0) => {}
                Ok(n) => info!(enrollments = n, "held enrollments released for another try"),
                Err(e) => warn!(error = %error_chain(&e), "cannot release held enrollments"),
            }
            let mut backoff = Duration::from_secs(1);
            let mut paused = false;
            loop {
                // While sending is paused, steps stay with their enrollments rather than pile
                // up in the outbox: on resume each is decided afresh (send windows, caps, and a
                // reply that came meanwhile ends it instead of being followed by a stale step).
                match self.store.sending_paused().await {
                    Ok(Some(_)) => {
                        if !paused {
                            info!("sending is paused: due sequence steps wait");
                            paused = true;
                        }
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(PAUSE_POLL) => {}
                        }
                        continue;
                    }
                    Ok(None) => paused = false,
                    Err(e) => {
                        warn!(error = %error_chain(&e), "cannot read whether sending is paused");
                    }
                }
                let now = Utc::now();
                let sleep = match self.run_due(now).await {
                    Ok(r) => {
                        backoff = Duration::from_secs(1);
                        if r.claimed > 0 {
                            info!(
                                enqueued = r.enqueued,
                                waiting = r.waiting,
                                ended = r.ended,
                                held = r.held,
                                "due enrollments handled"
                            );
                        }
                        match self.store.next_enrollment_due().await {
                            // Due already, but claimed by another scheduler or just postponed
                            // by less than a tick: look again shortly, not in a busy loop.
                            Ok(Some(t)) if t <= Utc::now() => Duration::from_secs(1),
                            Ok(Some(t)) => (t - Utc::now()).to_std().unwrap_or(MAX_SLEEP),
                            Ok(None) => MAX_SLEEP,
                            Err(e) => {
                                error!(error = %error_chain(&e), "cannot read the next due time");
                                backoff
                            }
                        }
                    }
                    Err(e) => {
                        error!(error = %error_chain(&e), "scheduling failed; retrying");
                        let b = backoff;
                        backoff = (backoff * 2).min(MAX_SLEEP);
                        b
                    }
                };
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(sleep.min(MAX_SLEEP)) => {}
                }
            }
        }
        .instrument(info_span!("scheduler"))
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::{EmailAddress, EnrollmentId, EnrollmentState, LeadStatus, SequenceName};
    use crate::render::Templates;
    use crate::sequence::{Sender, Settings, file};
    use leadloop_testkit::clock::t0;

    const SEQ: &str = r#"
[enroll]
kinds = ["inquiry"]

[[step]]
id = "hello"
delay = "0m"
template = "t"
subject = "Hello"

[[step]]
id = "big"
delay = "1d"
template = "t"
subject = "For big companies"
when = "fields.size | int > 100"

[[step]]
id = "last"
delay = "2d"
template = "t"
subject = "Last"

[exit]
on_status = ["customer"]
"#;

    fn catalog(policy: Policy) -> Catalog {
        let mut problems = Vec::new();
        let (seq, _) = file::parse(SEQ, Path::new("welcome.toml"), &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let mut templates =
            Templates::new(vec![("t.txt".into(), "Hi {{ lead.name }}".into())]).unwrap();
        for s in &seq.steps {
            templates
                .add_subject(&format!("welcome/{}", s.id), &s.subject)
                .unwrap();
        }
        Catalog {
            sequences: vec![seq],
            templates,
            settings: Settings {
                dir: "sequences".into(),
                templates: "templates".into(),
                inbox: EmailAddress::parse("leads@company.com").unwrap(),
                unsubscribe_url: None,
                reply_to_token: false,
                policy,
                senders: vec![Sender {
                    name: "team".into(),
                    address: EmailAddress::parse("hello@company.com").unwrap(),
                    display_name: None,
                    per_minute: None,
                    per_hour: None,
                    per_day: None,
                }],
                envelope_from: None,
                verp: false,
            },
        }
    }

    fn lead(fields: serde_json::Value) -> Lead {
        Lead {
            id: LeadId(7),
            email: EmailAddress::parse("jane@acme.example").unwrap(),
            name: Some("Jane".into()),
            company: None,
            phone: None,
            channel: "direct".into(),
            status: LeadStatus::New,
            score: 0,
            owner: None,
            form: None,
            fields: fields.as_object().cloned().unwrap_or_default(),
            created_at: t0(),
            updated_at: t0(),
        }
    }

    fn enrollment(done: &[&str], next: Option<&str>, due: DateTime<Utc>) -> Enrollment {
        Enrollment {
            id: EnrollmentId(1),
            lead_id: LeadId(7),
            sequence: SequenceName::new("welcome"),
            state: EnrollmentState::Active,
            steps_done: done.iter().map(|s| StepId::new(*s)).collect(),
            next_step: next.map(StepId::new),
            next_due_at: Some(due),
            last_at: t0(),
            touches: i64::try_from(done.len()).unwrap(),
            token: "tok".into(),
            exit_reason: None,
            error: None,
            enrolled_at: t0() - Duration::days(1),
            paused_until: None,
        }
    }

    fn run(c: &Catalog, e: &Enrollment, l: &Lead, now: DateTime<Utc>) -> Settle {
        run_with_stops(c, e, l, &StopMessages::new(), now)
    }

    fn run_with_stops(
        c: &Catalog,
        e: &Enrollment,
        l: &Lead,
        stops: &StopMessages,
        now: DateTime<Utc>,
    ) -> Settle {
        decide(
            c,
            e,
            Some(l),
            stops,
            &mut Usage::default(),
            now,
            &mut || 0.0,
        )
    }

    #[test]
    fn a_false_condition_skips_the_step_and_the_next_counts_from_its_due_time() {
        let c = catalog(Policy {
            per_lead_per_day: None,
            ..Policy::default()
        });
        let small = lead(serde_json::json!({ "size": "20" }));
        let e = enrollment(&["hello"], Some("big"), t0() + Duration::days(1));
        match run(&c, &e, &small, t0() + Duration::days(1)) {
            Settle::Wait {
                steps_done,
                next_step,
                due,
                ..
            } => {
                assert_eq!(steps_done, ["hello", "big"]);
                assert_eq!(next_step.as_ref().map(StepId::as_str), Some("last"));
                assert_eq!(due, t0() + Duration::days(3));
            }
            other => panic!("{other:?}"),
        }
        let big = lead(serde_json::json!({ "size": "500" }));
        assert!(matches!(
            run(&c, &e, &big, t0() + Duration::days(1)),
            Settle::Send { ref next_step, .. } if next_step.as_ref().is_some_and(|n| n == "last")
        ));
        // A lead without the field: the condition fails to evaluate, and the step is held.
        let unknown = lead(serde_json::json!({}));
        assert!(matches!(
            run(&c, &e, &unknown, t0() + Duration::days(1)),
            Settle::Hold { ref error } if error.contains("step big")
        ));
    }

    #[test]
    fn status_and_unsubscribe_end_the_enrollment() {
        let c = catalog(Policy::default());
        let e = enrollment(&[], None, t0());
        let mut customer = lead(serde_json::json!({}));
        customer.status = LeadStatus::Customer;
        assert!(matches!(run(&c, &e, &customer, t0()), Settle::Exit { .. }));
        let l = lead(serde_json::json!({}));
        let stops = StopMessages::from([(
            l.email.to_string(),
            vec![(MessageKind::Unsubscribe, t0() - Duration::hours(1))],
        )]);
        let s = run_with_stops(&c, &e, &l, &stops, t0());
        assert!(matches!(s, Settle::Exit { ref reason } if reason.contains("unsubscribe")));
        // A reply from before the enrollment does not end it.
        let stops = StopMessages::from([(
            l.email.to_string(),
            vec![(MessageKind::Reply, t0() - Duration::days(2))],
        )]);
        let s = run_with_stops(&c, &e, &l, &stops, t0());
        assert!(matches!(s, Settle::Send { .. }), "{s:?}");
    }

    #[test]
    fn the_lead_cap_postpones_to_the_next_day_with_jitter() {
        let c = catalog(Policy {
            per_lead_per_day: Some(1),
            jitter: std::time::Duration::from_secs(600),
            ..Policy::default()
        });
        let l = lead(serde_json::json!({}));
        let e = enrollment(&[], None, t0());
        let mut usage = Usage::default();
        let first = decide(
            &c,
            &e,
            Some(&l),
            &StopMessages::new(),
            &mut usage,
            t0(),
            &mut || 0.5,
        );
        assert!(matches!(first, Settle::Send { .. }));
        let again = decide(
            &c,
            &e,
            Some(&l),
            &StopMessages::new(),
            &mut usage,
            t0(),
            &mut || 0.5,
        );
        match again {
            Settle::Wait { due, .. } => assert_eq!(
                due,
                Utc.with_ymd_and_hms(2026, 11, 28, 0, 5, 0).unwrap(),
                "midnight UTC plus half the jitter"
            ),
            other => panic!("{other:?}"),
        }
    }
}
