//! Sequence files: `sequences/NAME.toml`, one sequence each, validated with file, line and
//! column for every problem, the way `leadloop.toml` is.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::time::Delay;
use crate::diagnostics::{Problem, line_col};
use crate::domain::{LeadStatus, MessageKind, StepId, Verdict, VerdictKind};

/// One nurture sequence.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Its name: the file name without `.toml`; what `enroll` and enrollments refer to.
    pub name: String,
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// Which leads enter.
    pub enroll: Enroll,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// When a lead leaves before the last step.
    pub exit: Exit,
    /// The file's text as it was read: the daemon records the sequences it runs, and
    /// `leadloop plan` compares an edit against them.
    pub source: String,
}

/// `[enroll]`: which new leads enter the sequence on their own.
#[derive(Debug, Clone, Default)]
pub struct Enroll {
    /// Only by `leadloop enroll`, never automatically.
    pub manual: bool,
    /// Message kinds that enroll (inquiry, form, forward).
    pub kinds: Vec<MessageKind>,
    /// Only leads first attributed to one of these channels (empty: any).
    pub channels: Vec<String>,
    /// Only leads from one of these forms (empty: any).
    pub forms: Vec<String>,
    /// Only leads with at least this score.
    pub min_score: Option<i64>,
    /// Whether a lead that went through the sequence may enter it again.
    pub reenter: bool,
    /// Leads whose status a Sales verdict sets to one of these enter (`customer` for an
    /// onboarding or retention sequence).
    pub on_status: Vec<LeadStatus>,
}

/// `[[step]]`.
#[derive(Debug, Clone)]
pub struct Step {
    /// Stable id: enrollments remember steps by it, so editing the file mid-flight is safe.
    pub id: String,
    /// Wait after the previous step (or the enrollment).
    pub delay: Delay,
    /// Template name (`templates/NAME.txt`, optional `NAME.html`).
    pub template: String,
    /// The subject, itself a template.
    pub subject: String,
    /// A minijinja expression; when false the step is skipped.
    pub when: Option<String>,
    /// The `[[sender]]` to send from (default: the first one).
    pub from: Option<String>,
    /// Line of the step in its file, for messages about it found later.
    pub line: usize,
}

/// `[exit]`.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Leave when the lead replies (default true).
    pub on_reply: bool,
    /// Leave when the lead's status becomes one of these.
    pub on_status: Vec<LeadStatus>,
    /// Leave when the lead enters one of these sequences.
    pub on_enter: Vec<String>,
}

impl Default for Exit {
    fn default() -> Self {
        Exit {
            on_reply: true,
            on_status: Vec::new(),
            on_enter: Vec::new(),
        }
    }
}

impl Sequence {
    /// The step with this id, if the file still has it.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The step an enrollment does next, given the ids it has done (or skipped) in order.
    ///
    /// Steps are found by id, not position, so an edited file never resends a step: the next
    /// step is the first one not done that comes after the latest done step still in the file.
    /// Steps removed from the file are never considered; a step inserted before that point is
    /// not sent to leads already past it.
    pub fn next_step<'a>(&'a self, done: &[StepId]) -> Option<&'a Step> {
        let start = done
            .iter()
            .rev()
            .find_map(|d| self.steps.iter().position(|s| d == s.id.as_str()))
            .map_or(0, |p| p + 1);
        self.steps[start.min(self.steps.len())..]
            .iter()
            .find(|s| !done.iter().any(|d| d == s.id.as_str()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSequence {
    description: Option<String>,
    #[serde(default)]
    enroll: Option<Spanned<RawEnroll>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    exit: Option<RawExit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnroll {
    #[serde(default)]
    manual: bool,
    #[serde(default)]
    kinds: Vec<Spanned<String>>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    forms: Vec<String>,
    min_score: Option<i64>,
    #[serde(default)]
    reenter: bool,
    #[serde(default)]
    on_status: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    delay: Spanned<String>,
    template: Spanned<String>,
    subject: Spanned<String>,
    when: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExit {
    #[serde(default = "yes")]
    on_reply: bool,
    #[serde(default)]
    on_status: Vec<Spanned<String>>,
    #[serde(default)]
    on_enter: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// Where each item of a sequence file sits, for problems found after parsing (templates that
/// do not exist, senders that are not configured).
#[derive(Debug, Clone, Default)]
pub struct Spans {
    /// Per step: (template, subject, when, from) positions as (line, column).
    pub steps: Vec<StepSpans>,
    /// `[exit] on_enter` entries.
    pub on_enter: Vec<(String, (usize, usize))>,
}

/// Positions of a step's keys.
#[derive(Debug, Clone, Default)]
pub struct StepSpans {
    /// `template`.
    pub template: (usize, usize),
    /// `subject`.
    pub subject: (usize, usize),
    /// `when`.
    pub when: Option<(usize, usize)>,
    /// `from`.
    pub from: Option<(usize, usize)>,
}

/// A valid step id or sequence name: lower-case letters, digits, `-` and `_`, so it can sit in
/// a Message-ID and a database key without quoting.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses one sequence file's text. Problems are appended to `problems`; `None` when the
/// file is unusable.
pub fn parse(text: &str, file: &Path, problems: &mut Vec<Problem>) -> Option<(Sequence, Spans)> {
    let place = Place { file, text };
    let at = |problems: &mut Vec<Problem>, span: Range<usize>, key: &str, msg: String| {
        place.at(problems, span, key, msg);
    };
    let pos = |span: Range<usize>| place.pos(span);

    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_id(&name) {
        at(
            problems,
            0..0,
            "sequence",
            format!(
                "the file name '{name}' must be a sequence name of lower-case letters, digits, '-' and '_'"
            ),
        );
    }
    let raw: RawSequence = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem::from_toml(file, text, &e));
            return None;
        }
    };
    let _ = raw.description;

    let enroll = check_enroll(&place, raw.enroll, problems);
    let mut spans = Spans::default();
    let steps = check_steps(&place, raw.step, problems, &mut spans);

    let exit = match raw.exit {
        None => Exit::default(),
        Some(x) => {
            let on_status = check_statuses(
                &place,
                &x.on_status,
                "exit.on_status",
                LeadStatus::exit_statuses(),
                problems,
            );
            // A status that both enrolls and exits would end every enrollment it starts.
            for st in &x.on_status {
                if let Ok(status) = st.get_ref().parse::<LeadStatus>()
                    && enroll.on_status.contains(&status)
                {
                    at(
                        problems,
                        st.span(),
                        "exit.on_status",
                        format!(
                            "'{status}' is in [enroll] on_status too: a lead entering on it would leave at once"
                        ),
                    );
                }
            }
            let mut on_enter = Vec::new();
            for e in &x.on_enter {
                let v = e.get_ref().trim().to_owned();
                spans.on_enter.push((v.clone(), pos(e.span())));
                on_enter.push(v);
            }
            Exit {
                on_reply: x.on_reply,
                on_status,
                on_enter,
            }
        }
    };

    Some((
        Sequence {
            name,
            file: file.to_owned(),
            enroll,
            steps,
            exit,
            source: text.to_owned(),
        },
        spans,
    ))
}

/// The sequence file being parsed, to place its problems.
struct Place<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Place<'_> {
    fn at(&self, problems: &mut Vec<Problem>, span: Range<usize>, key: &str, msg: String) {
        problems.push(Problem::at(self.file, self.text, span, key, msg));
    }

    fn pos(&self, span: Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }
}

/// `[enroll]`: a sequence says which leads enter, or that it is entered only by hand.
fn check_enroll(
    place: &Place<'_>,
    raw: Option<Spanned<RawEnroll>>,
    problems: &mut Vec<Problem>,
) -> Enroll {
    let Some(e) = raw else {
        place.at(
            problems,
            0..0,
            "enroll",
            "missing [enroll]: say which leads enter (kinds = [\"inquiry\"], …) or manual = true"
                .into(),
        );
        return Enroll::default();
    };
    let span = e.span();
    let e = e.into_inner();
    let mut kinds = Vec::new();
    for k in &e.kinds {
        match k.get_ref().parse::<MessageKind>() {
            Ok(kind) if kind.creates_lead() => kinds.push(kind),
            Ok(kind) => place.at(
                problems,
                k.span(),
                "enroll.kinds",
                format!("'{kind}' messages do not create leads; use inquiry, form or forward"),
            ),
            Err(_) => place.at(
                problems,
                k.span(),
                "enroll.kinds",
                format!("'{}' is not one of inquiry, form, forward", k.get_ref()),
            ),
        }
    }
    let on_status = check_statuses(
        place,
        &e.on_status,
        "enroll.on_status",
        &verdict_statuses(),
        problems,
    );
    if e.manual
        && !(kinds.is_empty()
            && e.channels.is_empty()
            && e.forms.is_empty()
            && e.on_status.is_empty())
    {
        place.at(
            problems,
            span.clone(),
            "enroll.manual",
            "a manual sequence takes no kinds, channels, forms or on_status".into(),
        );
    }
    if !e.manual && e.kinds.is_empty() && e.on_status.is_empty() {
        place.at(
            problems,
            span,
            "enroll.kinds",
            "give the kinds that enroll (inquiry, form, forward), the statuses that do (on_status), or manual = true".into(),
        );
    }
    Enroll {
        manual: e.manual,
        kinds,
        channels: e.channels.iter().map(|c| c.trim().to_lowercase()).collect(),
        forms: e.forms.iter().map(|f| f.trim().to_owned()).collect(),
        min_score: e.min_score,
        reenter: e.reenter,
        on_status,
    }
}

/// The statuses a Sales verdict can give a lead: the ones `[enroll] on_status` may name
/// (leadloop's own `unsubscribed` and `bounced` end mail, they never start it).
fn verdict_statuses() -> Vec<LeadStatus> {
    VerdictKind::ALL
        .iter()
        .filter_map(|k| Verdict::judgement(*k, None).status())
        .collect()
}

/// `on_status` lists: each entry one of `allowed`, any case.
fn check_statuses(
    place: &Place<'_>,
    raw: &[Spanned<String>],
    key: &str,
    allowed: &[LeadStatus],
    problems: &mut Vec<Problem>,
) -> Vec<LeadStatus> {
    let mut out = Vec::new();
    for st in raw {
        let v = st.get_ref().trim().to_lowercase();
        match allowed.iter().find(|s| s.as_str() == v) {
            Some(status) => out.push(*status),
            None => place.at(
                problems,
                st.span(),
                key,
                format!(
                    "'{v}' is not one of {}",
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    out
}

/// `[[step]]`s, in file order, with where their keys sit recorded in `spans`.
fn check_steps(
    place: &Place<'_>,
    raw: Vec<Spanned<RawStep>>,
    problems: &mut Vec<Problem>,
    spans: &mut Spans,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    if raw.is_empty() {
        place.at(
            problems,
            0..0,
            "step",
            "a sequence needs at least one [[step]]".into(),
        );
    }
    for (i, s) in raw.into_iter().enumerate() {
        let step = check_step(place, i, s, &steps, problems, spans);
        steps.push(step);
    }
    steps
}

/// One `[[step]]`, the `i`th; `earlier` are the ones before it, whose ids it must not reuse.
fn check_step(
    place: &Place<'_>,
    i: usize,
    s: Spanned<RawStep>,
    earlier: &[Step],
    problems: &mut Vec<Problem>,
    spans: &mut Spans,
) -> Step {
    let line = place.pos(s.span()).0;
    let s = s.into_inner();
    let key = |k: &str| format!("step[{i}].{k}");
    let id = s.id.get_ref().trim().to_owned();
    if !valid_id(&id) {
        place.at(
            problems,
            s.id.span(),
            &key("id"),
            format!("'{id}' must be lower-case letters, digits, '-' and '_' (at most 64)"),
        );
    } else if earlier.iter().any(|o| o.id == id) {
        place.at(
            problems,
            s.id.span(),
            &key("id"),
            format!("step id '{id}' is used twice; ids must be unique and stable"),
        );
    }
    let delay = match s.delay.get_ref().parse::<Delay>() {
        Ok(d) => d,
        Err(e) => {
            place.at(problems, s.delay.span(), &key("delay"), e);
            Delay::Minutes(0)
        }
    };
    let template = s.template.get_ref().trim().to_owned();
    if template.is_empty() || template.contains(['/', '\\', '.']) {
        place.at(
            problems,
            s.template.span(),
            &key("template"),
            format!("'{template}' must be a template name without folder or extension"),
        );
    }
    if s.subject.get_ref().trim().is_empty() {
        place.at(
            problems,
            s.subject.span(),
            &key("subject"),
            "must not be empty".into(),
        );
    }
    spans.steps.push(StepSpans {
        template: place.pos(s.template.span()),
        subject: place.pos(s.subject.span()),
        when: s.when.as_ref().map(|w| place.pos(w.span())),
        from: s.from.as_ref().map(|f| place.pos(f.span())),
    });
    Step {
        id,
        delay,
        template,
        subject: s.subject.into_inner(),
        when: s
            .when
            .map(Spanned::into_inner)
            .filter(|w| !w.trim().is_empty()),
        from: s.from.map(|f| f.into_inner().trim().to_owned()),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "Welcome new inquiries"

[enroll]
kinds = ["inquiry", "form"]
channels = ["Webinar"]
min_score = 5

[[step]]
id = "welcome"
delay = "0m"
template = "welcome"
subject = "Thanks, {{ lead.first_name }}"

[[step]]
id = "case-study"
delay = "2bd"
template = "case_study"
subject = "How others did it"
when = "score >= 10"
from = "sales"

[exit]
on_status = ["qualified", "customer"]
on_enter = ["onboarding"]
"#;

    fn parse_ok(text: &str) -> Sequence {
        let mut p = Vec::new();
        let s = parse(text, Path::new("sequences/welcome.toml"), &mut p);
        assert!(p.is_empty(), "{p:?}");
        s.unwrap().0
    }

    #[test]
    fn a_complete_file_parses() {
        let s = parse_ok(GOOD);
        assert_eq!(s.name, "welcome");
        assert_eq!(s.enroll.kinds, [MessageKind::Inquiry, MessageKind::Form]);
        assert_eq!(s.enroll.channels, ["webinar"]);
        assert_eq!(s.steps[1].delay, Delay::BusinessDays(2));
        assert_eq!(s.steps[1].line, 15);
        assert!(s.exit.on_reply, "replies exit by default");
        assert_eq!(s.exit.on_enter, ["onboarding"]);
    }

    #[test]
    fn problems_carry_line_column_and_key() {
        let text = GOOD
            .replace("delay = \"2bd\"", "delay = \"soon\"")
            .replace("\"customer\"]", "\"customer\", \"happy\"]")
            .replace("id = \"case-study\"", "id = \"welcome\"");
        let mut p = Vec::new();
        parse(&text, Path::new("s/welcome.toml"), &mut p);
        let got: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            got[0],
            "s/welcome.toml:16:6: step[1].id: step id 'welcome' is used twice; ids must be unique and stable"
        );
        assert!(
            got[1].starts_with("s/welcome.toml:17:9: step[1].delay: 'soon'"),
            "{got:?}"
        );
        assert!(
            got[2].starts_with("s/welcome.toml:24:39: exit.on_status: 'happy'"),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_kinds_are_refused() {
        let mut p = Vec::new();
        parse(
            &GOOD.replace("min_score = 5", "min_scor = 5"),
            Path::new("welcome.toml"),
            &mut p,
        );
        assert_eq!(p[0].key.as_deref(), Some("min_scor"), "{p:?}");
        p.clear();
        parse(
            &GOOD.replace("\"inquiry\", \"form\"", "\"reply\""),
            Path::new("welcome.toml"),
            &mut p,
        );
        assert_eq!(p[0].key.as_deref(), Some("enroll.kinds"));
        assert_eq!(p[0].line, Some(5));
    }

    const RETENTION: &str = r#"
[enroll]
on_status = ["Customer"]

[[step]]
id = "thanks"
delay = "1d"
template = "retention_thanks"
subject = "Thank you"

[exit]
on_status = ["unsubscribed", "bounced"]
"#;

    #[test]
    fn a_sequence_may_be_entered_on_a_status_alone() {
        let s = parse_ok(RETENTION);
        assert_eq!(s.enroll.on_status, [LeadStatus::Customer]);
        assert!(s.enroll.kinds.is_empty() && !s.enroll.manual);
        assert!(parse_ok(GOOD).enroll.on_status.is_empty());
        let both = GOOD.replace(
            "min_score = 5",
            "min_score = 5\non_status = [\"unqualified\"]",
        );
        assert_eq!(parse_ok(&both).enroll.on_status, [LeadStatus::Unqualified]);
    }

    #[test]
    fn enroll_statuses_are_the_verdicts_and_are_checked() {
        let one = |text: &str| {
            let mut p = Vec::new();
            parse(text, Path::new("s/retention.toml"), &mut p);
            assert_eq!(p.len(), 1, "{p:?}");
            p.remove(0).to_string()
        };
        assert_eq!(
            one(&RETENTION.replace("\"Customer\"", "\"customer\", \"bounced\"")),
            "s/retention.toml:3:26: enroll.on_status: 'bounced' is not one of qualified, unqualified, customer"
        );
        assert_eq!(
            one(&RETENTION.replace("\"Customer\"", "\"happy\"")),
            "s/retention.toml:3:14: enroll.on_status: 'happy' is not one of qualified, unqualified, customer"
        );
        assert_eq!(
            one(&RETENTION.replace("[enroll]", "[enroll]\nmanual = true")),
            "s/retention.toml:2:1: enroll.manual: a manual sequence takes no kinds, channels, forms or on_status"
        );
        assert_eq!(
            one(&RETENTION.replace("on_status = [\"unsubscribed\"", "on_status = [\"customer\"")),
            "s/retention.toml:12:14: exit.on_status: 'customer' is in [enroll] on_status too: a lead entering on it would leave at once"
        );
        assert!(
            one(&RETENTION.replace("on_status = [\"Customer\"]", "reenter = true"))
                .contains("enroll.kinds: give the kinds that enroll (inquiry, form, forward), the statuses that do (on_status), or manual = true"),
        );
    }

    #[test]
    fn next_step_follows_ids_through_edits() {
        let mut s = parse_ok(GOOD);
        let done = |ids: &[&str]| ids.iter().map(|s| StepId::new(*s)).collect::<Vec<_>>();
        assert_eq!(s.next_step(&[]).unwrap().id, "welcome");
        assert_eq!(s.next_step(&done(&["welcome"])).unwrap().id, "case-study");
        assert!(s.next_step(&done(&["welcome", "case-study"])).is_none());

        // A step inserted before the lead's position is not sent to it; one after it is.
        let mut early = s.steps[0].clone();
        early.id = "early".into();
        let mut late = s.steps[0].clone();
        late.id = "offer".into();
        s.steps.insert(0, early);
        s.steps.push(late);
        assert_eq!(s.next_step(&done(&["welcome"])).unwrap().id, "case-study");
        assert_eq!(
            s.next_step(&done(&["welcome", "case-study"])).unwrap().id,
            "offer"
        );

        // The step the lead was waiting for is removed: the following one comes next, and
        // a removed step that was done is never sent again.
        s.steps.retain(|st| st.id != "case-study");
        assert_eq!(s.next_step(&done(&["welcome"])).unwrap().id, "offer");
        s.steps.retain(|st| st.id != "welcome");
        assert_eq!(s.next_step(&done(&["welcome"])).unwrap().id, "early");
    }
}
