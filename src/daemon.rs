//! The long-running process: every part runs as a task under one [`CancellationToken`] and one
//! [`TaskTracker`], so a shutdown signal stops each task at a safe point (after the batch in
//! flight is recorded) and the process waits for all of them before it exits.
//!
//! The shutdown trigger is a parameter, so `main` passes SIGTERM/SIGINT and tests pass a token
//! of their own. The daemon tells systemd when it is ready and pets the watchdog when the unit
//! asks for one; SIGHUP reloads the configuration, keeping the running one if the new one has
//! problems.
//!
//! With `[http] listen`, the daemon also answers HTTP ([`crate::http`]). It binds the socket
//! before it tells systemd it is ready and keeps it across reloads (a reload that names another
//! address moves it there), so a health check or a one-click POST during a reload waits in the
//! socket's backlog rather than being refused. `[http] metrics_listen` is a second socket,
//! kept the same way, that serves `/metrics` and the health checks alone.
//!
//! One [`Metrics`] is built at start and handed to ingest, the scheduler and the sender of
//! every generation, so what they count survives a reload.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::actions::Actions;
use crate::actions::digest::{self, Digests};
use crate::actions::handoff::{Round, TemplateSource, Worker};
use crate::config::{Config, MailboxConfig, SmtpTransport, SourceConfig};
use crate::ingest::{ImapSource, IngestReport, LastRead, MaildirSource, Pipeline};
use crate::metrics::Metrics;
use crate::render::SenderData;
use crate::send::{SendReport, Sender};
use crate::sequence::schedule::{Scheduler, TickReport};
use crate::store::Store;

/// The options of the allocator the `leadloop` binary runs with (jemalloc, set up in
/// `main.rs`; the benchmark binary uses the same, so that it measures what runs in production).
///
/// Mail is parsed and classified on the blocking pool and freed on the writer's task: with
/// glibc's malloc every such thread keeps an arena of its own, and a long ingest's resident set
/// kept growing with the mailbox (47 MB after 10,000 messages, 80 MB after 100,000). Two
/// arenas, freed pages given back to the kernel after half a second, and a background thread
/// that does so while the daemon idles between polls keep it flat.
pub const MALLOC_CONF: &std::ffi::CStr =
    c"narenas:2,dirty_decay_ms:500,muzzy_decay_ms:0,background_thread:true";

/// The async runtime leadloop runs on.
///
/// The blocking pool, where messages are classified, gets one thread per core: more threads
/// would not classify faster, and each extra thread brings its own allocator arena, which
/// holds on to freed batch memory and inflates the resident set.
///
/// # Errors
/// The runtime cannot start (no threads or timers available).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores.max(2))
        .build()
}

/// Opens the store the configuration names, creating and migrating it as needed.
///
/// # Errors
/// The URL's secret cannot be read, or the database cannot be opened or migrated.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_with(config, config.database.max_connections).await
}

/// [`open_store`] with at most `connections` connections: a command that reads one query
/// after another (a report) reuses its one connection instead of opening another while the
/// first is on its way back to the pool.
///
/// # Errors
/// As [`open_store`].
pub async fn open_store_with(config: &Config, connections: u32) -> anyhow::Result<Store> {
    let url = config
        .database
        .url
        .resolve()
        .map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
    let store = Store::connect(url.expose(), connections)
        .await
        .context("opening the leads store")?;
    set_scorer(&store, config);
    Ok(store)
}

/// Scores leads by the configuration's `[[score]]` rules; without rules every score stays as
/// it is, and nothing is recomputed.
fn set_scorer(store: &Store, config: &Config) {
    store.set_scorer(if config.scoring.rules.is_empty() {
        None
    } else {
        Some(Arc::new(config.scoring.clone()))
    });
}

/// How often scores are recomputed when a rule decays with time.
const RESCORE_PERIOD: Duration = Duration::from_secs(3600);

/// Recomputes every score each hour while a `[[score]]` rule decays, since time alone then
/// moves scores.
async fn rescore_periodically(store: Store, token: CancellationToken) {
    let mut tick = tokio::time::interval(RESCORE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => match store.rescore_all(chrono::Utc::now()).await {
                Ok(changed) => tracing::debug!(changed, "scores recomputed"),
                Err(e) => warn!(error = %e, "recomputing scores failed; trying again in an hour"),
            },
            () = token.cancelled() => break,
        }
    }
}

/// An inbound source built from the configuration.
#[derive(Debug)]
pub enum Source {
    /// An IMAP mailbox.
    Imap(ImapSource),
    /// A Maildir folder.
    Maildir(MaildirSource),
}

/// The lead actions the configuration asks for.
pub fn actions(config: &Config) -> Actions {
    Actions::new(
        config.actions.clone(),
        config.sequences.enroll_rules(),
        config.sequences.enroll_rules(),
        config.rules().sales,
    )
}

/// [`actions`] for the messages of `mailbox`: its `owner` comes after the `[[route]]`s and
/// before `[handoff] default_owner`.
fn mailbox_actions(config: &Config, mailbox: &MailboxConfig) -> Actions {
    let mut settings = config.actions.clone();
    if let Some(owner) = &mailbox.owner {
        settings.routing.default_owner = Some(owner.clone());
    }
    Actions::new(
        settings,
        config.sequences.enroll_rules(),
        config.sequences.enroll_rules(),
        config.rules().sales,
    )
}

impl Source {
    /// Builds the source of the configuration's first mailbox, writing into `store`.
    ///
    /// # Errors
    /// The IMAP password cannot be read, or the TLS setup is unusable.
    pub fn new(config: &Config, store: Store) -> anyhow::Result<Source> {
        let mailbox = config
            .mailboxes
            .first()
            .context("the configuration has no mailbox")?;
        Self::build(
            config,
            mailbox,
            store,
            None,
            None,
            &Metrics::default(),
            None,
            None,
        )
    }

    /// The source of `mailbox` for one pass (`run --once`): mail that arrived before `since`
    /// is skipped, and the pass counts into `progress`.
    ///
    /// # Errors
    /// As [`Source::new`].
    pub fn once(
        config: &Config,
        mailbox: &MailboxConfig,
        store: Store,
        since: Option<chrono::NaiveDate>,
        progress: Option<crate::ingest::progress::Progress>,
    ) -> anyhow::Result<Source> {
        Self::build(
            config,
            mailbox,
            store,
            None,
            None,
            &Metrics::default(),
            since,
            progress,
        )
    }

    /// Builds the configured source; new leads that match a sequence are enrolled as their
    /// batch is recorded, and `wake` (the scheduler) is notified. Every successful read is
    /// told to `last_read`, when given (the readiness check). What is recorded is counted
    /// into `metrics`.
    ///
    /// # Errors
    /// The IMAP password cannot be read, or the TLS setup is unusable.
    pub fn enrolling(
        config: &Config,
        mailbox: &MailboxConfig,
        store: Store,
        wake: Option<Arc<Notify>>,
        last_read: Option<&LastRead>,
        metrics: &Metrics,
    ) -> anyhow::Result<Source> {
        Self::build(config, mailbox, store, wake, last_read, metrics, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        config: &Config,
        mailbox: &MailboxConfig,
        store: Store,
        wake: Option<Arc<Notify>>,
        last_read: Option<&LastRead>,
        metrics: &Metrics,
        since: Option<chrono::NaiveDate>,
        progress: Option<crate::ingest::progress::Progress>,
    ) -> anyhow::Result<Source> {
        // `--since` is the IMAP server's arrival date: a Maildir has none and reads everything.
        let since = since.filter(|_| matches!(mailbox.source, SourceConfig::Imap(_)));
        let rules = Arc::new(config.rules());
        let actions = Arc::new(mailbox_actions(config, mailbox));
        let pipeline = |store: Store, key: String, max_message_bytes: u64| {
            let pipeline = Pipeline::new(store, Arc::clone(&rules), key, max_message_bytes)
                .with_default_channel(mailbox.channel.clone())
                .with_actions(Arc::clone(&actions), wake.clone())
                .with_since(since)
                .with_progress(progress.clone())
                .with_metrics(metrics.clone())
                .with_rspamd(
                    config
                        .spam
                        .rspamd
                        .clone()
                        .map(crate::ingest::rspamd::Client::new),
                );
            match last_read {
                Some(last_read) => pipeline.with_last_read(last_read.clone()),
                None => pipeline,
            }
        };
        Ok(match &mailbox.source {
            SourceConfig::Imap(imap) => {
                let password = imap
                    .password
                    .resolve()
                    .map_err(|e| anyhow::anyhow!("{}.password: {e}", mailbox.table))?;
                let pipeline = pipeline(store, mailbox.key(), imap.max_message_bytes);
                Source::Imap(ImapSource::new(imap.clone(), password, pipeline)?)
            }
            SourceConfig::Maildir(md) => {
                let pipeline = pipeline(store, mailbox.key(), md.max_message_bytes);
                Source::Maildir(MaildirSource::new(
                    md.path.clone(),
                    pipeline,
                    md.poll_interval,
                    md.batch_size,
                    md.max_message_bytes,
                ))
            }
        })
    }

    /// Records everything waiting, then returns.
    ///
    /// # Errors
    /// Connection, protocol or store failures.
    pub async fn sync_once(&self, cancel: &CancellationToken) -> anyhow::Result<IngestReport> {
        Ok(match self {
            Source::Imap(s) => s.sync_once(cancel).await?,
            Source::Maildir(s) => s.sync_once(cancel).await?,
        })
    }

    /// Runs until `cancel` fires, retrying failures.
    pub async fn run(&self, cancel: CancellationToken) -> IngestReport {
        match self {
            Source::Imap(s) => s.run(cancel).await,
            Source::Maildir(s) => s.run(cancel).await,
        }
    }
}

/// The outbox sender `[smtp]` describes, or `None` when the configuration has no `[smtp]`
/// (then nothing is sent and outbox rows wait).
///
/// # Errors
/// The SMTP password cannot be read, or the TLS setup is unusable.
pub fn sender(config: &Config, store: Store) -> anyhow::Result<Option<Sender>> {
    let Some(smtp) = &config.smtp else {
        return Ok(None);
    };
    let password = match &smtp.transport {
        SmtpTransport::Smtp(server) => match &server.auth {
            Some((_, source)) => Some(
                source
                    .resolve()
                    .map_err(|e| anyhow::anyhow!("smtp.password: {e}"))?,
            ),
            None => None,
        },
        SmtpTransport::File(_) => None,
    };
    Ok(Some(Sender::new(smtp, password, store)?))
}

/// The sequence catalog's templates, for the hand-off worker (reloaded with the config).
struct CatalogTemplates(Arc<crate::sequence::Catalog>);

impl TemplateSource for CatalogTemplates {
    fn templates(&self) -> &crate::render::Templates {
        &self.0.templates
    }
}

/// The hand-off worker for this configuration: it sends as `[handoff] from` (default the
/// first `[[sender]]`), with Reply-To addresses under the sequences' inbox (or the first own
/// address). `None`, with a warning, when there is nobody to send as.
pub fn handoff_worker(config: &Config, store: Store, actions: Arc<Actions>) -> Option<Worker> {
    let settings = actions.settings();
    // Without [smtp] nothing leaves: notifications wait, queued, until it is configured.
    if !settings.handoff.enabled || config.smtp.is_none() {
        return None;
    }
    let sender = match &settings.handoff.sender {
        Some(name) => config.senders.iter().find(|s| s.name == *name),
        None => config.senders.first(),
    };
    let Some(sender) = sender else {
        warn!("no [[sender]] is configured: hand-offs to Sales wait until one is");
        return None;
    };
    let inbox = if config.sequences.sequences.is_empty() {
        config.identity.addresses.first().cloned()
    } else {
        Some(config.sequences.settings.inbox.clone())
    };
    let Some(inbox) = inbox else {
        warn!(
            "no [sequences] inbox or [identity] address: hand-offs to Sales wait until one is set"
        );
        return None;
    };
    let envelope_from = config.smtp.as_ref().and_then(|s| s.envelope_from.clone());
    Some(Worker::new(
        store,
        actions,
        Arc::new(CatalogTemplates(Arc::clone(&config.sequences))),
        SenderData {
            name: sender.name.clone(),
            address: sender.address.clone(),
            display_name: sender.display_name.clone(),
        },
        envelope_from,
        inbox,
    ))
}

/// The configured digests (`[[digest]]`), or `None` when there are none. Config checking
/// makes sure a digest has `[smtp]` and a sender.
pub fn digests(config: &Config, store: Store) -> Option<Digests> {
    if config.digests.is_empty() {
        return None;
    }
    Some(Digests::new(
        store,
        config.digests.clone(),
        config.sequences.settings.policy.timezone,
    ))
}

/// What `leadloop run --once` did.
#[derive(Debug, Clone)]
pub struct OnceReport {
    /// The mailbox pass.
    pub ingest: IngestReport,
    /// The sequence steps due now, when sequences are configured.
    pub scheduled: Option<TickReport>,
    /// Notifications to Sales (hand-offs, explanations) rendered and queued.
    pub handoffs: Option<Round>,
    /// The digests that were due (queued, or found sent already).
    pub digests: Vec<digest::Outcome>,
    /// The outbox pass, when `[smtp]` is configured.
    pub send: Option<SendReport>,
    /// The pause in force at the end, if sending is paused.
    pub pause: Option<crate::store::Pause>,
    /// The daemon that holds a mailbox's lease, when another one does: this run then read
    /// nothing from that mailbox.
    pub mailbox_held_by: Option<String>,
    /// Each mailbox's pass, in the configuration's order (`ingest` is their sum).
    pub mailboxes: Vec<MailboxOnce>,
}

/// What `leadloop run --once` did with one mailbox.
#[derive(Debug, Clone)]
pub struct MailboxOnce {
    /// The mailbox's name.
    pub name: String,
    /// Its pass.
    pub ingest: IngestReport,
    /// The daemon that holds its lease, when another one does: it was not read then.
    pub held_by: Option<String>,
}

/// How `leadloop run` runs, beyond what the configuration says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--dry-run`: everything happens in the database as usual, but nothing leaves. Every
    /// message is put in the outbox as `dry_run` (which no sender claims), no sender runs, and
    /// recorded mail is neither flagged nor moved (`after` waits for a real run), so a try-out
    /// of a new sequence on real mail changes nothing outside its database.
    pub dry_run: bool,
    /// `--since DATE` (with `--once`): mail that arrived before this day is skipped, and the
    /// cursor moves past it.
    pub since: Option<chrono::NaiveDate>,
}

impl RunOptions {
    /// The store as these options want it.
    fn store(self, store: Store) -> Store {
        if self.dry_run { store.dry_run() } else { store }
    }

    /// The sender for `config`, or none: a dry run sends nothing, not even what other
    /// processes queued.
    fn sender(self, config: &Config, store: Store) -> anyhow::Result<Option<Sender>> {
        if self.dry_run {
            return Ok(None);
        }
        sender(config, store)
    }

    /// Says once, loudly, that this run sends nothing.
    fn announce(self, config: &Config) {
        if self.dry_run {
            warn!(
                smtp = config.smtp.is_some(),
                "dry run: nothing is sent and the mailbox is not changed; messages go to the outbox as dry_run (leadloop outbox list --state dry_run)"
            );
        }
    }
}

/// The lease a daemon reads its mailbox under (`store::leases`): several daemons on one
/// database read each mailbox one at a time, and another takes over within two poll
/// intervals when the reader dies.
#[derive(Debug, Clone)]
struct Lease {
    /// The mailbox, as the cursor names it.
    mailbox: String,
    /// This daemon's name on the lease.
    holder: String,
    /// How long a lease lasts without renewal: one and a half poll intervals. The holder
    /// renews it every half interval, and a daemon standing by tries as often, so a dead
    /// holder's mailbox is read again within two intervals.
    ttl: Duration,
}

impl Lease {
    fn new(mailbox: &MailboxConfig) -> Lease {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = if host.is_empty() {
            "localhost".to_owned()
        } else {
            host
        };
        let holder = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let poll = mailbox
            .source
            .poll_interval()
            .max(Duration::from_millis(100));
        Lease {
            mailbox: mailbox.key(),
            holder,
            ttl: poll.saturating_mul(3) / 2,
        }
    }

    /// How often the holder renews and a daemon standing by tries.
    fn every(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes or renews the lease now; `Ok(Some(until))` when held until then.
    async fn take(&self, store: &Store) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let now = chrono::Utc::now();
        let until = now + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        Ok(store
            .take_mailbox_lease(&self.mailbox, &self.holder, now, until)
            .await?
            .then_some(until))
    }

    /// Takes the lease for one pass (`run --once`): when another daemon holds it, waits for
    /// its next renewal (half a poll interval) or for it to run out, whichever comes first.
    /// `Ok(Err(holder))` when the holder renewed it, so is alive and reading.
    async fn take_once(&self, store: &Store) -> anyhow::Result<Result<(), String>> {
        loop {
            if self.take(store).await?.is_some() {
                return Ok(Ok(()));
            }
            let Some(held) = store.mailbox_lease(&self.mailbox).await? else {
                continue;
            };
            let renewal = chrono::Utc::now()
                + chrono::Duration::from_std(self.every() + Duration::from_millis(250))
                    .unwrap_or_default();
            let wait = (held.expires_at.min(renewal) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
                .max(Duration::from_millis(10));
            info!(holder = %held.holder, "another daemon holds the mailbox lease; waiting {wait:?} to see whether it is alive");
            tokio::time::sleep(wait).await;
            match store.mailbox_lease(&self.mailbox).await? {
                Some(now) if now.holder != held.holder || now.expires_at > held.expires_at => {
                    return Ok(Err(now.holder));
                }
                _ => {}
            }
        }
    }

    async fn release(&self, store: &Store) {
        if let Err(e) = store
            .release_mailbox_lease(&self.mailbox, &self.holder)
            .await
        {
            warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot give up the mailbox lease; another daemon takes over when it runs out");
        }
    }
}

/// Reads the mailbox while this daemon holds its lease, and stands by while another daemon
/// does, until `cancel` fires. A standby daemon counts the mailbox as read (`/readyz`) while
/// the holder keeps its lease fresh: the mailbox is being read, just not here.
async fn read_under_lease(
    source: Arc<Source>,
    store: Store,
    lease: Lease,
    last_read: LastRead,
    cancel: CancellationToken,
) {
    let mut standing_by = false;
    loop {
        // Stand by until the lease is ours.
        let mut held_until = loop {
            match lease.take(&store).await {
                Ok(Some(until)) => break until,
                Ok(None) => {
                    let holder = store.mailbox_lease(&lease.mailbox).await.ok().flatten();
                    if let Some(h) = &holder
                        && h.expires_at > chrono::Utc::now()
                    {
                        last_read.mark();
                    }
                    if !standing_by {
                        info!(mailbox = %lease.mailbox, holder = holder.as_ref().map_or("?", |h| h.holder.as_str()), "another daemon reads the mailbox; standing by");
                        standing_by = true;
                    }
                }
                Err(e) => {
                    warn!(error = %format_args!("{e:#}"), "cannot take the mailbox lease; trying again");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(lease.every()) => {}
                () = cancel.cancelled() => return,
            }
        };
        if standing_by {
            info!(mailbox = %lease.mailbox, "the mailbox lease was free; reading the mailbox");
            standing_by = false;
        }
        let reading = cancel.child_token();
        let run = source.run(reading.clone());
        tokio::pin!(run);
        let lost = loop {
            tokio::select! {
                report = &mut run => {
                    info!(recorded = report.recorded, duplicates = report.duplicates, "ingest stopped");
                    break false;
                }
                () = tokio::time::sleep(lease.every()) => {
                    match lease.take(&store).await {
                        Ok(Some(until)) => held_until = until,
                        Ok(None) => {
                            warn!(mailbox = %lease.mailbox, "another daemon took the mailbox lease; this one stops reading");
                            reading.cancel();
                        }
                        // Without the database nothing is recorded anyway; reading stops only
                        // when the lease may have passed to another daemon.
                        Err(e) if chrono::Utc::now() + chrono::Duration::from_std(lease.every()).unwrap_or_default() >= held_until => {
                            warn!(error = %format_args!("{e:#}"), "cannot renew the mailbox lease before it runs out; this daemon stops reading");
                            reading.cancel();
                        }
                        Err(e) => warn!(error = %format_args!("{e:#}"), "cannot renew the mailbox lease; trying again"),
                    }
                }
            }
            if reading.is_cancelled() && !cancel.is_cancelled() {
                (&mut run).await;
                break true;
            }
        };
        if !lost {
            lease.release(&store).await;
            return;
        }
    }
}

/// Publishes, for `/readyz`, when the mailbox read longest ago was last read (`None` while
/// one has never been read), until `cancel` fires: the daemon is ready when every mailbox
/// is read.
async fn publish_oldest_read(
    reads: Vec<LastRead>,
    oldest: Arc<tokio::sync::watch::Sender<Option<std::time::Instant>>>,
    cancel: CancellationToken,
) {
    let mut receivers: Vec<_> = reads.iter().map(LastRead::subscribe).collect();
    loop {
        let reads: Vec<Option<std::time::Instant>> = receivers
            .iter_mut()
            .map(|r| *r.borrow_and_update())
            .collect();
        let value = reads
            .into_iter()
            .try_fold(None, |min: Option<std::time::Instant>, at| {
                let at = at?;
                Some(Some(min.map_or(at, |m| m.min(at))))
            })
            .flatten();
        oldest.send_replace(value);
        if receivers.is_empty() {
            return;
        }
        let changed =
            futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
        tokio::select! {
            (result, _, _) = changed => if result.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// Records the sequence files this configuration runs, for `leadloop plan`. A dry run
/// records nothing: it may be trying files the real daemon does not run. A failure is
/// logged: the plan then compares against an older record, and says when it was made.
async fn record_sequences(store: &Store, config: &Config, options: RunOptions) {
    if options.dry_run {
        return;
    }
    let files: Vec<(&str, &str)> = config
        .sequences
        .sequences
        .iter()
        .map(|s| (s.name.as_str(), s.source.as_str()))
        .collect();
    if let Err(e) = store
        .record_running_sequences(&files, chrono::Utc::now())
        .await
    {
        warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot record the running sequences; `leadloop plan` compares against an older record");
    }
}

/// How often the daemon removes message bodies older than `[retention] message_bodies`.
pub const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Processes what is waiting in the mailbox once, enqueues the sequence steps due now, sends
/// what is due in the outbox, and returns (`leadloop run --once`).
///
/// # Errors
/// The store, the mailbox or the SMTP setup cannot be used.
pub async fn run_once(
    config: &Config,
    options: RunOptions,
    progress: Option<crate::ingest::progress::Progress>,
    shutdown: CancellationToken,
) -> anyhow::Result<OnceReport> {
    options.announce(config);
    if options.since.is_some()
        && !config
            .mailboxes
            .iter()
            .any(|m| matches!(m.source, SourceConfig::Imap(_)))
    {
        anyhow::bail!(
            "--since reads by the IMAP server's arrival date; a Maildir source reads everything"
        );
    }
    let store = options.store(open_store(config).await?);
    let checkpoints = store.start_checkpoints();
    let sources = config
        .mailboxes
        .iter()
        .map(|m| Source::once(config, m, store.clone(), options.since, progress.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sender = options.sender(config, store.clone())?;
    record_sequences(&store, config, options).await;
    // Each mailbox in turn, under its lease: a daemon reading one leaves it to that daemon.
    let mut mailboxes = Vec::with_capacity(sources.len());
    let mut failed = None;
    for (mailbox, source) in config.mailboxes.iter().zip(&sources) {
        let lease = Lease::new(mailbox);
        let span = tracing::info_span!("mailbox", name = %mailbox.name);
        let read = async {
            match lease.take_once(&store).await {
                Ok(Ok(())) => {
                    let ingest = source.sync_once(&shutdown).await;
                    lease.release(&store).await;
                    ingest.map(|i| (i, None))
                }
                Ok(Err(holder)) => Ok((IngestReport::default(), Some(holder))),
                Err(e) => Err(e.context("taking the mailbox lease")),
            }
        };
        match tracing::Instrument::instrument(read, span).await {
            Ok((ingest, held_by)) => mailboxes.push(MailboxOnce {
                name: mailbox.name.clone(),
                ingest,
                held_by,
            }),
            Err(e) => {
                failed.get_or_insert(e.context(format!("mailbox {}", mailbox.name)));
            }
        }
    }
    let ingest = match failed {
        Some(e) => Err(e),
        None => {
            let mut total = IngestReport::default();
            for m in &mailboxes {
                total.merge(m.ingest);
            }
            Ok(total)
        }
    };
    let mailbox_held_by = mailboxes.iter().find_map(|m| m.held_by.clone());
    // While sending is paused, due steps stay with their enrollments (see the scheduler).
    let paused = matches!(store.sending_paused().await, Ok(Some(_)));
    let scheduled = match &ingest {
        Ok(_) if !config.sequences.sequences.is_empty() && !paused => {
            let scheduler = Scheduler::new(
                store.clone(),
                Arc::clone(&config.sequences),
                Arc::new(Notify::new()),
            );
            let _ = store.release_held(chrono::Utc::now()).await;
            Some(
                scheduler
                    .run_due(chrono::Utc::now())
                    .await
                    .context("scheduling due sequence steps"),
            )
        }
        _ => None,
    };
    let handoffs = match (
        &ingest,
        handoff_worker(config, store.clone(), Arc::new(actions(config))),
    ) {
        (Ok(_), Some(worker)) => Some(
            worker
                .run_pending(chrono::Utc::now())
                .await
                .context("queueing notifications to Sales"),
        ),
        _ => None,
    };
    // A due digest goes out from `run --once` too, before the outbox pass sends it.
    let digests = match (&ingest, digests(config, store.clone())) {
        (Ok(_), Some(d)) => Some(
            d.run_due(chrono::Utc::now())
                .await
                .context("sending due digests"),
        ),
        _ => None,
    };
    let send = match (&ingest, sender) {
        (Ok(_), Some(sender)) => Some(sender.drain(shutdown).await),
        _ => None,
    };
    if let Some(keep) = config.retention.message_bodies
        && let Ok(keep) = chrono::Duration::from_std(keep)
        && let Err(e) = store.drop_old_bodies(chrono::Utc::now() - keep).await
    {
        warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "retention: cannot remove old message bodies");
    }
    let pause = match store.sending_paused().await {
        Ok(pause) => pause,
        Err(e) => {
            warn!(error = %format_args!("{:#}", anyhow::Error::from(e)), "cannot read whether sending is paused");
            None
        }
    };
    checkpoints.stop().await;
    store.close().await;
    Ok(OnceReport {
        ingest: ingest?,
        scheduled: scheduled.transpose()?,
        handoffs: handoffs.transpose()?,
        digests: digests.transpose()?.unwrap_or_default(),
        send,
        pause,
        mailbox_held_by,
        mailboxes,
    })
}

/// Runs the daemon until `shutdown` fires. `reload` fires on SIGHUP.
///
/// # Errors
/// Start-up failures (store, source); once running, failures are retried and logged.
pub async fn run(
    config_path: &Path,
    config: Config,
    shutdown: CancellationToken,
    reload: tokio::sync::mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    run_with(config_path, config, RunOptions::default(), shutdown, reload).await
}

/// [`run`] with [`RunOptions`] (`leadloop run --dry-run`); they hold across reloads.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    config_path: &Path,
    config: Config,
    options: RunOptions,
    shutdown: CancellationToken,
    mut reload: tokio::sync::mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let mut config = config;
    options.announce(&config);
    let store = options.store(open_store(&config).await?);
    // When each mailbox was last read, by its key: kept across reloads. `/readyz` reads when
    // the one read longest ago was.
    let mut last_reads: std::collections::HashMap<String, LastRead> =
        std::collections::HashMap::new();
    let oldest_read = Arc::new(tokio::sync::watch::Sender::new(None));
    // What `/metrics` shows: counted by every generation's tasks, kept across reloads.
    let metrics = Metrics::new();
    // The HTTP sockets, bound before systemd hears we are ready and kept across reloads.
    let mut http_socket = match config.http.listen {
        Some(addr) => Some(HttpSocket::bind(LISTEN, addr)?),
        None => None,
    };
    let mut metrics_socket = match config.http.metrics_listen {
        Some(addr) => Some(HttpSocket::bind(METRICS_LISTEN, addr)?),
        None => None,
    };
    // Failed sign-ins to the web view count across reloads.
    let signin_limits = Arc::new(crate::http::SignInLimits::new());
    let tracker = TaskTracker::new();
    spawn_watchdog(&tracker, shutdown.clone());
    tracker.spawn(store.clone().checkpoints(shutdown.clone()));
    if let Some(keep) = config.retention.message_bodies {
        // The setting is read at start: a reload that changes it takes effect after a restart.
        tracker.spawn(
            store
                .clone()
                .retention(keep, RETENTION_EVERY, shutdown.clone()),
        );
    }
    // The first generation's parts are built before systemd hears we are ready: a source or
    // sender that cannot be built stops the start.
    let mut parts = Generation::prepare(&config, options, &store, &mut last_reads, &metrics)?;
    notify(&[sd_notify::NotifyState::Ready]);
    info!(config = %config_path.display(), "leadloop running");

    loop {
        // Each generation of tasks gets its own child token, so a reload stops just them.
        let generation = shutdown.child_token();
        let Generation {
            wake,
            sources,
            sender,
        } = parts;
        // The web view mails sign-in links through the same transport (none in a dry run).
        let link_sender = sender.clone();
        record_sequences(&store, &config, options).await;
        let tasks = TaskTracker::new();
        set_scorer(&store, &config);
        if config.scoring.rules.iter().any(|r| r.decay_per_week > 0.0) {
            tasks.spawn(rescore_periodically(store.clone(), generation.clone()));
        }
        if let Some(worker) = handoff_worker(&config, store.clone(), Arc::new(actions(&config))) {
            let token = generation.clone();
            tasks.spawn(async move {
                worker.run(token).await;
                info!("hand-off worker stopped");
            });
        }
        if let Some(digests) = digests(&config, store.clone()) {
            let token = generation.clone();
            tasks.spawn(async move {
                digests.run(token).await;
                info!("digests stopped");
            });
        }
        if !config.sequences.sequences.is_empty() {
            let scheduler = Scheduler::new(
                store.clone(),
                Arc::clone(&config.sequences),
                Arc::clone(&wake),
            )
            .with_metrics(metrics.clone());
            let token = generation.clone();
            tasks.spawn(async move {
                scheduler.run(token).await;
                info!("scheduler stopped");
            });
        }
        if let Some(sender) = sender {
            // The sender finishes the messages in flight when the token fires, so a SIGTERM
            // never leaves a message half handed over that it could have finished.
            let token = generation.clone();
            tasks.spawn(async move {
                let report = sender.run(token).await;
                info!(
                    sent = report.sent,
                    retried = report.retried,
                    failed = report.failed,
                    interrupted = report.interrupted,
                    suppressed = report.suppressed,
                    "sender stopped"
                );
            });
        }
        let app = |metrics: Option<Metrics>, web: crate::http::Web| {
            crate::http::App::with(
                store.clone(),
                oldest_read.subscribe(),
                config.poll_interval(),
                metrics,
                web,
            )
        };
        if let Some(socket) = &http_socket {
            let listener = socket.listener()?;
            let mut web = crate::http::Web::new(&config)
                .with_limits(Arc::clone(&signin_limits))
                .with_actions(Arc::new(actions(&config)))
                .with_scheduler(Arc::clone(&wake));
            if let Some(sender) = &link_sender {
                web = web.with_mailer(Arc::new(DirectSender(sender.clone())));
            }
            // With a metrics address of its own, the main listener shows no metrics.
            let app = app(metrics_socket.is_none().then(|| metrics.clone()), web);
            let token = generation.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::http::serve(listener, app, token).await {
                    error!(error = %e, "the http listener failed");
                }
                info!("http listener stopped");
            });
        }
        if let Some(socket) = &metrics_socket {
            let listener = socket.listener()?;
            let app = app(Some(metrics.clone()), crate::http::Web::default());
            let token = generation.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::http::serve_metrics(listener, app, token).await {
                    error!(error = %e, "the metrics listener failed");
                }
                info!("metrics listener stopped");
            });
        }
        tasks.spawn(publish_oldest_read(
            sources.iter().map(|m| m.last_read.clone()).collect(),
            Arc::clone(&oldest_read),
            generation.clone(),
        ));
        for mailbox in sources {
            let span = tracing::info_span!("mailbox", name = %mailbox.name);
            tasks.spawn(tracing::Instrument::instrument(
                read_under_lease(
                    mailbox.source,
                    store.clone(),
                    mailbox.lease,
                    mailbox.last_read,
                    generation.clone(),
                ),
                span,
            ));
        }
        tasks.close();

        // Wait for shutdown or a configuration that passes validation; a broken one is
        // refused and the running generation goes on untouched.
        let reloaded = loop {
            tokio::select! {
                () = shutdown.cancelled() => break None,
                Some(()) = reload.recv() => {
                    match sd_notify::NotifyState::monotonic_usec_now() {
                        Ok(now) => notify(&[sd_notify::NotifyState::Reloading, now]),
                        Err(_) => notify(&[sd_notify::NotifyState::Reloading]),
                    }
                    match Config::load(config_path) {
                        // The new mailboxes and sender are built while the running ones go
                        // on: one that cannot be (a password file that cannot be read, an
                        // unusable CA file) refuses the reload as a problem in the file does.
                        Ok(new) => match Generation::prepare(&new, options, &store, &mut last_reads, &metrics) {
                            Ok(next) => break Some((new, next)),
                            Err(e) => {
                                error!(error = %format_args!("{e:#}"), "reload refused: the configuration cannot be used; keeping the running one");
                                notify(&[sd_notify::NotifyState::Ready]);
                            }
                        },
                        Err(e) => {
                            error!(problems = %e, "reload refused: the configuration has problems; keeping the running one");
                            notify(&[sd_notify::NotifyState::Ready]);
                        }
                    }
                }
            }
        };
        generation.cancel();
        tasks.wait().await;
        match reloaded {
            Some((new, next)) if !shutdown.is_cancelled() => {
                if new.database.url != config.database.url {
                    warn!("the database setting changed; it takes effect after a restart");
                }
                http_socket = HttpSocket::reload(http_socket, LISTEN, new.http.listen);
                metrics_socket =
                    HttpSocket::reload(metrics_socket, METRICS_LISTEN, new.http.metrics_listen);
                info!("configuration reloaded");
                config = new;
                parts = next;
                last_reads.retain(|key, _| config.mailboxes.iter().any(|m| m.key() == *key));
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ => break,
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    tracker.close();
    tracker.wait().await;
    store.close().await;
    info!("leadloop stopped");
    Ok(())
}

/// What a generation of the daemon's tasks is built from that can fail: made from a new
/// configuration before the running generation stops, so a reload that cannot build them
/// leaves the running one alone.
struct Generation {
    /// Wakes the scheduler when a batch enrolls leads.
    wake: Arc<Notify>,
    /// One per `[[mailbox]]`, in the configuration's order.
    sources: Vec<MailboxReader>,
    sender: Option<Sender>,
}

/// A mailbox of a generation, ready to be read under its lease.
struct MailboxReader {
    name: String,
    source: Arc<Source>,
    lease: Lease,
    last_read: LastRead,
}

impl Generation {
    /// Builds the sources and sender of `config`. `last_reads` keeps each mailbox's last read
    /// by its key, so a mailbox that stays across a reload keeps it.
    fn prepare(
        config: &Config,
        options: RunOptions,
        store: &Store,
        last_reads: &mut std::collections::HashMap<String, LastRead>,
        metrics: &Metrics,
    ) -> anyhow::Result<Generation> {
        let wake = Arc::new(Notify::new());
        let mut sources = Vec::with_capacity(config.mailboxes.len());
        for mailbox in &config.mailboxes {
            let last_read = last_reads.entry(mailbox.key()).or_default().clone();
            let source = Source::enrolling(
                config,
                mailbox,
                store.clone(),
                Some(Arc::clone(&wake)),
                Some(&last_read),
                metrics,
            )
            .with_context(|| format!("mailbox {}", mailbox.name))?;
            sources.push(MailboxReader {
                name: mailbox.name.clone(),
                source: Arc::new(source),
                lease: Lease::new(mailbox),
                last_read,
            });
        }
        let sender = options
            .sender(config, store.clone())?
            .map(|s| s.with_metrics(metrics.clone()));
        Ok(Generation {
            wake,
            sources,
            sender,
        })
    }
}

/// The sender as the web view's way to mail sign-in links, past the outbox.
struct DirectSender(Sender);

impl crate::http::DirectMailer for DirectSender {
    fn send(
        &self,
        mail: crate::http::DirectMail,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>>
    {
        Box::pin(self.0.send_unrecorded(
            mail.envelope_from,
            mail.recipient,
            mail.message_id,
            mail.raw,
        ))
    }
}

/// The setting of the main HTTP socket, as errors name it.
const LISTEN: &str = "[http] listen";

/// The setting of the metrics socket, as errors name it.
const METRICS_LISTEN: &str = "[http] metrics_listen";

/// A bound `[http] listen` or `metrics_listen` socket. The daemon holds it for as long as the
/// address stays the same; each generation serves a duplicate of it, so between two
/// generations connections wait in its backlog.
#[derive(Debug)]
struct HttpSocket {
    /// The setting it is bound for ([`LISTEN`] or [`METRICS_LISTEN`]), for errors.
    key: &'static str,
    /// The address as configured (with port 0, not the port the system picked).
    configured: SocketAddr,
    socket: std::net::TcpListener,
}

impl HttpSocket {
    fn bind(key: &'static str, addr: SocketAddr) -> anyhow::Result<HttpSocket> {
        let socket = std::net::TcpListener::bind(addr)
            .with_context(|| format!("{key}: cannot listen on {addr}"))?;
        socket
            .set_nonblocking(true)
            .with_context(|| format!("{key}: {addr}"))?;
        if !addr.ip().is_loopback() {
            info!(%addr, "http listens beyond this machine; put a TLS reverse proxy in front of it");
        }
        Ok(HttpSocket {
            key,
            configured: addr,
            socket,
        })
    }

    /// A listener on the runtime for one generation.
    fn listener(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let socket = self
            .socket
            .try_clone()
            .with_context(|| format!("{}: duplicating the socket", self.key))?;
        tokio::net::TcpListener::from_std(socket)
            .with_context(|| format!("{}: the socket", self.key))
    }

    /// The socket for a reloaded configuration: the same one while the address is the same,
    /// none without `listen`, a new one for a new address. If the new address cannot be
    /// bound, the old one is kept (bound again if it had to be let go first).
    fn reload(
        old: Option<HttpSocket>,
        key: &'static str,
        listen: Option<SocketAddr>,
    ) -> Option<HttpSocket> {
        let addr = listen?;
        if old.as_ref().is_some_and(|o| o.configured == addr) {
            return old;
        }
        let first = match HttpSocket::bind(key, addr) {
            Ok(new) => return Some(new),
            Err(e) => e,
        };
        let Some(old) = old else {
            error!(error = %format_args!("{first:#}"), "no http listener until the address is free");
            return None;
        };
        // The new address may overlap the old one (the same port on another address of this
        // machine): let the old one go and try again.
        let was = old.configured;
        drop(old);
        match HttpSocket::bind(key, addr) {
            Ok(new) => Some(new),
            Err(e) => {
                error!(error = %format_args!("{e:#}"), "keeping the http listener where it was");
                HttpSocket::bind(key, was).ok()
            }
        }
    }
}

/// Pets systemd's watchdog at half the interval the unit asks for, while the runtime is alive.
fn spawn_watchdog(tracker: &TaskTracker, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled().filter(|d| !d.is_zero()) else {
        return;
    };
    let period = timeout / 2;
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => notify(&[sd_notify::NotifyState::Watchdog]),
                () = shutdown.cancelled() => break,
            }
        }
    });
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "cannot notify systemd");
    }
}
