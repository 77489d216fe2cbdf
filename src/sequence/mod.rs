//! Nurture sequences: the files marketing writes, the policy that paces them, and the
//! scheduler that turns due steps into outbox messages.
//!
//! - [`file`](mod@file): `sequences/NAME.toml` — who enters, the steps (by stable id), when to leave.
//! - [`time`]: delays (minutes, days, business days) in the lead's zone, and send windows.
//! - [`policy`]: caps per sender, domain and lead; the lead's time zone.
//! - [`schedule`]: the daemon task that claims due enrollments and enqueues their steps.
//!
//! [`Catalog`] is everything loaded and checked together: sequences, templates (every step
//! rendered against a sample lead at `leadloop check`), senders and policy.

pub mod file;
pub mod plan;
pub mod policy;
pub mod schedule;
pub mod time;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use file::{Enroll, Exit, Sequence, Step};
pub use policy::{Policy, Sender};
pub use time::{Delay, Windows};

use crate::diagnostics::Problem;
use crate::domain::{EmailAddress, EnrollmentId, Lead, SequenceName};
use crate::render::{self, MessageSpec, RenderError, Rendered, SenderData, Templates};
use crate::store::EnrollRule;

/// Template files larger than this are refused: a template is text someone wrote.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// `[sequences]` and friends from `leadloop.toml`, with paths resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder of `*.toml` sequence files.
    pub dir: PathBuf,
    /// Folder of templates.
    pub templates: PathBuf,
    /// The monitored inbox: unsubscribe and reply addresses are plus-addresses of it.
    pub inbox: EmailAddress,
    /// An https unsubscribe link with `{token}` where the enrollment's token goes.
    pub unsubscribe_url: Option<String>,
    /// Whether messages carry `Reply-To: inbox+reply-TOKEN@…`.
    pub reply_to_token: bool,
    /// Windows, caps, zones.
    pub policy: Policy,
    /// Sending identities; the first is the default.
    pub senders: Vec<Sender>,
    /// `[smtp] envelope_from`: the envelope sender (`MAIL FROM`) of every message, when set;
    /// otherwise each message's From address.
    pub envelope_from: Option<EmailAddress>,
    /// `[smtp] verp`: each enrollment's mail has its own envelope sender, a plus-address of
    /// the envelope sender with `bounce-TOKEN`, so a bounce names its lead whatever its format.
    pub verp: bool,
}

/// Every sequence with its templates, senders and policy, checked together.
#[derive(Debug)]
pub struct Catalog {
    /// Sequences, by name.
    pub sequences: Vec<Sequence>,
    /// Compiled templates and step subjects.
    pub templates: Templates,
    /// Where things live and how mail is paced.
    pub settings: Settings,
}

impl Catalog {
    /// A catalog with no sequences (no `[sequences]` section).
    pub fn empty() -> Catalog {
        Catalog {
            sequences: Vec::new(),
            templates: Templates::empty(),
            settings: Settings {
                dir: PathBuf::new(),
                templates: PathBuf::new(),
                inbox: EmailAddress::parse("leads@localhost").expect("a valid address"),
                unsubscribe_url: None,
                reply_to_token: false,
                policy: Policy::default(),
                senders: Vec::new(),
                envelope_from: None,
                verp: false,
            },
        }
    }

    /// The sequence named `name`.
    pub fn get(&self, name: &str) -> Option<&Sequence> {
        self.sequences.iter().find(|s| s.name == name)
    }

    /// The sender of a step: its `from`, else the first `[[sender]]`.
    pub fn sender(&self, step: &Step) -> Option<&Sender> {
        match &step.from {
            Some(name) => self.settings.senders.iter().find(|s| &s.name == name),
            None => self.settings.senders.first(),
        }
    }

    /// What ingest needs to enroll new leads and end enrollments on replies: one rule per
    /// sequence (a manual sequence's rule has no kinds, so it enrolls nobody by itself).
    pub fn enroll_rules(&self) -> Vec<EnrollRule> {
        self.sequences
            .iter()
            .map(|s| EnrollRule {
                sequence: SequenceName::new(s.name.clone()),
                kinds: if s.enroll.manual {
                    Vec::new()
                } else {
                    s.enroll.kinds.clone()
                },
                channels: s.enroll.channels.clone(),
                forms: s.enroll.forms.clone(),
                min_score: s.enroll.min_score,
                reenter: s.enroll.reenter,
                exits: self.exited_by(&s.name),
                exit_on_reply: s.exit.on_reply,
                on_status: if s.enroll.manual {
                    Vec::new()
                } else {
                    s.enroll.on_status.clone()
                },
            })
            .collect()
    }

    /// The sequences a lead leaves when it enters `name` (`[exit] on_enter`).
    pub fn exited_by(&self, name: &str) -> Vec<SequenceName> {
        self.sequences
            .iter()
            .filter(|s| s.name != name && s.exit.on_enter.iter().any(|e| e == name))
            .map(|s| SequenceName::new(s.name.clone()))
            .collect()
    }

    /// The Message-ID of a step sent to an enrollment: `leadloop.HASH@sender-domain`.
    ///
    /// Stable, so a re-render is the same message; `leadloop.` under the sender's domain is
    /// how the classifier knows the id as ours. HASH is 32 hex digits of SHA-256 over the
    /// enrollment's token, its id and the step id, so recipients see neither how many
    /// enrollments there are nor what the sequence's steps are called.
    pub fn message_id(enrollment: i64, step: &str, token: &str, sender: &Sender) -> String {
        let mut h = Sha256::new();
        h.update(b"leadloop message-id v1");
        // Length-prefixed, so no two (token, enrollment, step) give the same input.
        let enrollment = enrollment.to_string();
        for part in [token, enrollment.as_str(), step] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let mut id = String::with_capacity(9 + 32 + 1 + sender.address.domain().len());
        id.push_str("leadloop.");
        for b in &digest[..16] {
            let _ = write!(id, "{b:02x}");
        }
        id.push('@');
        id.push_str(sender.address.domain());
        id
    }

    /// Renders `step` of `sequence` for `lead`.
    ///
    /// # Errors
    /// The step's sender is not configured, or a template fails.
    pub fn render(
        &self,
        sequence: &Sequence,
        step: &Step,
        lead: &Lead,
        enrollment: EnrollmentId,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Rendered, RenderError> {
        let sender = self.sender(step).ok_or_else(|| {
            RenderError::Message(format!(
                "no [[sender]] named '{}'",
                step.from.as_deref().unwrap_or("")
            ))
        })?;
        let sender_data = SenderData {
            name: sender.name.clone(),
            address: sender.address.clone(),
            display_name: sender.display_name.clone(),
        };
        let url = self
            .settings
            .unsubscribe_url
            .as_ref()
            .map(|u| u.replace("{token}", token));
        let message_id = Self::message_id(enrollment.0, &step.id, token, sender);
        let key = subject_key(sequence, step);
        render::render(
            &self.templates,
            &MessageSpec {
                lead,
                sender: &sender_data,
                sequence: &sequence.name,
                step: &step.id,
                template: &step.template,
                subject_key: &key,
                message_id: &message_id,
                inbox: &self.settings.inbox,
                token,
                unsubscribe_url: url.as_deref(),
                reply_to_token: self.settings.reply_to_token,
                date: now,
            },
        )
    }

    /// Whether `step` applies to `lead` (`when`; no condition means yes).
    ///
    /// # Errors
    /// The expression fails on this lead's data.
    pub fn applies(&self, step: &Step, lead: &Lead) -> Result<bool, RenderError> {
        match &step.when {
            Some(expr) => self.templates.when(expr, lead),
            None => Ok(true),
        }
    }
}

fn subject_key(sequence: &Sequence, step: &Step) -> String {
    format!("{}/{}", sequence.name, step.id)
}

fn problem(file: &Path, pos: Option<(usize, usize)>, key: &str, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        key: Some(key.to_owned()),
        message,
    }
}

/// Reads every template file under `dir` as (name relative to `dir`, source).
fn read_templates(dir: &Path, problems: &mut Vec<Problem>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                problems.push(problem(
                    &d,
                    None,
                    "sequences.templates",
                    format!("cannot read the template folder: {e}"),
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "txt" | "html") {
                continue;
            }
            let Some(name) = path
                .strip_prefix(dir)
                .ok()
                .and_then(|p| p.to_str())
                .map(|p| p.replace('\\', "/"))
            else {
                continue;
            };
            if meta.len() > MAX_TEMPLATE_BYTES {
                problems.push(problem(
                    &path,
                    None,
                    "template",
                    format!("larger than {MAX_TEMPLATE_BYTES} bytes"),
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(src) => out.push((name, src)),
                Err(e) => problems.push(problem(
                    &path,
                    None,
                    "template",
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    out.sort();
    out
}

/// Loads and checks the sequences and templates `settings` name. Every problem is appended to
/// `problems`, each with its file and, where there is one, line and column.
pub fn load(settings: Settings, problems: &mut Vec<Problem>) -> Catalog {
    let before = problems.len();
    let mut templates = load_templates(&settings.templates, problems);
    let (sequences, spans) = read_sequences(&settings.dir, problems);
    if !sequences.is_empty() && settings.senders.is_empty() {
        problems.push(problem(
            &settings.dir,
            None,
            "sender",
            "sequences need at least one [[sender]] in leadloop.toml to send from".into(),
        ));
    }
    cross_check(&settings, &sequences, &spans, &mut templates, problems);
    let catalog = Catalog {
        sequences,
        templates,
        settings,
    };
    // Every step is rendered against a sample lead, so an undefined variable is found now,
    // not at 3 a.m.; only when nothing else is wrong, so one mistake is not reported twice.
    if problems.len() == before {
        try_on_the_sample_lead(&catalog, &spans, problems);
        // The hand-off and explanation templates, the user's where there are any, render
        // against sample data too: a broken override is found here, not when a lead replies.
        for e in catalog.templates.check_sales_templates() {
            problems.push(problem(
                &catalog.settings.templates,
                None,
                "template",
                format!("message to Sales: {e}"),
            ));
        }
    }
    catalog
}

/// The problems the sequence files in `dir` and the templates in `templates` have on their
/// own, without the senders and policy of a leadloop.toml (for `check` when that file cannot
/// be read as TOML).
pub fn check_files(dir: &Path, templates: &Path, problems: &mut Vec<Problem>) {
    load_templates(templates, problems);
    read_sequences(dir, problems);
}

/// Compiles every template under `dir`; none when any of them is broken.
fn load_templates(dir: &Path, problems: &mut Vec<Problem>) -> Templates {
    let files = read_templates(dir, problems);
    match Templates::new(files) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                let (file, msg) = match &e {
                    RenderError::Template { name, .. } => (dir.join(name), e.to_string()),
                    _ => (dir.to_owned(), e.to_string()),
                };
                problems.push(problem(&file, None, "template", msg));
            }
            Templates::empty()
        }
    }
}

/// Parses every `*.toml` in `dir`, in name order, with where their items sit.
fn read_sequences(dir: &Path, problems: &mut Vec<Problem>) -> (Vec<Sequence>, Vec<file::Spans>) {
    let mut sequences = Vec::new();
    let mut spans = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(problem(
                dir,
                None,
                "sequences.dir",
                format!("cannot read the sequence folder: {e}"),
            ));
            return (sequences, spans);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Some((seq, sp)) = file::parse(&text, &path, problems) {
                    sequences.push(seq);
                    spans.push(sp);
                }
            }
            Err(e) => problems.push(problem(
                &path,
                None,
                "sequence",
                format!("cannot read: {e}"),
            )),
        }
    }
    (sequences, spans)
}

/// What one file cannot know alone: the sequences its exits name, the templates, subjects and
/// conditions its steps use, and the senders they send from. Adds each step's subject to
/// `templates`.
fn cross_check(
    settings: &Settings,
    sequences: &[Sequence],
    spans: &[file::Spans],
    templates: &mut Templates,
    problems: &mut Vec<Problem>,
) {
    let names: Vec<String> = sequences.iter().map(|s| s.name.clone()).collect();
    for (seq, sp) in sequences.iter().zip(spans) {
        for (target, pos) in &sp.on_enter {
            if !names.contains(target) {
                problems.push(problem(
                    &seq.file,
                    Some(*pos),
                    "exit.on_enter",
                    format!("no sequence is named '{target}'"),
                ));
            }
        }
        for (i, (step, ssp)) in seq.steps.iter().zip(&sp.steps).enumerate() {
            let key = |k: &str| format!("step[{i}].{k}");
            if !templates.has_text(&step.template) {
                problems.push(problem(
                    &seq.file,
                    Some(ssp.template),
                    &key("template"),
                    format!(
                        "no template {}.txt in {}",
                        step.template,
                        settings.templates.display()
                    ),
                ));
            }
            if let Err(e) = templates.add_subject(&subject_key(seq, step), &step.subject) {
                problems.push(problem(
                    &seq.file,
                    Some(ssp.subject),
                    &key("subject"),
                    e.to_string(),
                ));
            }
            if let (Some(expr), Some(pos)) = (&step.when, ssp.when)
                && let Err(e) = templates.check_expression(expr)
            {
                problems.push(problem(&seq.file, Some(pos), &key("when"), e.to_string()));
            }
            if let (Some(from), Some(pos)) = (&step.from, ssp.from)
                && !settings.senders.iter().any(|s| &s.name == from)
            {
                problems.push(problem(
                    &seq.file,
                    Some(pos),
                    &key("from"),
                    format!("no [[sender]] is named '{from}'"),
                ));
            }
        }
    }
}

/// Decides and renders every step for [`render::sample_lead`].
fn try_on_the_sample_lead(catalog: &Catalog, spans: &[file::Spans], problems: &mut Vec<Problem>) {
    let sample = render::sample_lead();
    let now = Utc::now();
    for (seq, sp) in catalog.sequences.iter().zip(spans) {
        for (i, (step, ssp)) in seq.steps.iter().zip(&sp.steps).enumerate() {
            if let Err(e) = catalog.applies(step, &sample) {
                problems.push(problem(
                    &seq.file,
                    ssp.when,
                    &format!("step[{i}].when"),
                    format!("fails on the sample lead: {e}"),
                ));
            }
            if let Err(e) = catalog.render(seq, step, &sample, EnrollmentId(1), "sample", now) {
                problems.push(problem(
                    &seq.file,
                    Some(ssp.template),
                    &format!("step[{i}].template"),
                    format!("fails on the sample lead: {e}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Settings {
        Settings {
            dir: dir.join("sequences"),
            templates: dir.join("templates"),
            inbox: EmailAddress::parse("leads@company.com").unwrap(),
            unsubscribe_url: None,
            reply_to_token: true,
            policy: Policy::default(),
            senders: vec![Sender {
                name: "team".into(),
                address: EmailAddress::parse("hello@company.com").unwrap(),
                display_name: Some("Team".into()),
                per_minute: None,
                per_hour: None,
                per_day: None,
            }],
            envelope_from: None,
            verp: false,
        }
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const SEQ: &str = "[enroll]\nkinds = [\"inquiry\"]\n\n[[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Hi {{ lead.first_name }}\"\n";

    #[test]
    fn check_renders_every_step_against_the_sample_lead() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sequences/welcome.toml", SEQ);
        write(d.path(), "templates/hello.txt", "Hello {{ lead.nmae }}\n");
        let mut p = Vec::new();
        load(settings(d.path()), &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        let msg = p[0].to_string();
        assert!(
            msg.contains("welcome.toml:7:12: step[0].template: fails on the sample lead"),
            "{msg}"
        );
        assert!(msg.contains("hello.txt"), "{msg}");

        write(d.path(), "templates/hello.txt", "Hello {{ lead.name }}\n");
        let mut p = Vec::new();
        let c = load(settings(d.path()), &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.enroll_rules()[0].sequence, "welcome");
    }

    #[test]
    fn check_renders_the_users_hand_off_template_against_sample_data() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sequences/welcome.toml", SEQ);
        write(d.path(), "templates/hello.txt", "Hello {{ lead.name }}\n");
        write(
            d.path(),
            "templates/handoff.txt",
            "{{ lead.nosuch.field }}\n",
        );
        let mut p = Vec::new();
        load(settings(d.path()), &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        let msg = p[0].to_string();
        assert!(
            msg.contains("message to Sales") && msg.contains("handoff.txt"),
            "{msg}"
        );
        write(
            d.path(),
            "templates/handoff.txt",
            "{{ lead.email }} wrote: {{ why }}\n",
        );
        let mut p = Vec::new();
        load(settings(d.path()), &mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn message_ids_are_stable_opaque_and_ours() {
        let sender = &settings(Path::new("/")).senders[0];
        let id = Catalog::message_id(7, "hello", "k3y9token", sender);
        assert_eq!(id, Catalog::message_id(7, "hello", "k3y9token", sender));
        let (local, domain) = id.split_once('@').unwrap();
        assert_eq!(domain, "company.com");
        let hash = local.strip_prefix("leadloop.").unwrap();
        assert_eq!(hash.len(), 32, "{id}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(!id.contains("hello") && !id.contains("k3y9token"), "{id}");
        // Each input matters.
        for other in [
            Catalog::message_id(8, "hello", "k3y9token", sender),
            Catalog::message_id(7, "hello2", "k3y9token", sender),
            Catalog::message_id(7, "hello", "k3y9tokem", sender),
            Catalog::message_id(77, "hello", "k3y9token", sender),
        ] {
            assert_ne!(id, other);
        }
        // Field boundaries are part of the input.
        assert_ne!(
            Catalog::message_id(1, "23", "t", sender),
            Catalog::message_id(12, "3", "t", sender)
        );
    }

    #[test]
    fn missing_templates_senders_and_sequences_are_named() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "sequences/welcome.toml",
            &format!(
                "{SEQ}from = \"sales\"\nwhen = \"score >\"\n\n[exit]\non_enter = [\"onboarding\"]\n"
            ),
        );
        write(d.path(), "templates/other.txt", "x");
        let mut p = Vec::new();
        load(settings(d.path()), &mut p);
        let keys: Vec<_> = p.iter().map(|p| p.key.clone().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "exit.on_enter",
                "step[0].template",
                "step[0].when",
                "step[0].from"
            ],
            "{p:?}"
        );
    }
}
