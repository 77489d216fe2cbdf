//! What an edit of the sequence files does to the leads already in them (`leadloop plan`),
//! before the daemon is reloaded: like `terraform plan`, the difference between what the
//! running files would do and what the edited ones will do, lead by lead, summed up per
//! sequence.
//!
//! The edited side is the scheduler's own decision ([`decide`]) played forward in time for
//! each enrollment: the same step order, `when` conditions, send windows, exit rules and
//! templates rendered for the real lead, so a template that fails for some leads shows here
//! and not at 3 a.m. The running side is the step the daemon has recorded as next for the
//! enrollment, and the steps the running file has after it (by id, as [`Sequence::next_step`]
//! walks them).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Catalog;
use super::file::Sequence;
use super::schedule::{StopMessages, Usage, decide};
use crate::domain::{EnrollmentState, Lead, StepId};
use crate::store::{Enrollment, Settle};

/// How many decisions one enrollment's future may take: a sequence has at most a few dozen
/// steps, each postponed a few times by windows.
const MAX_DECISIONS: usize = 1000;

/// How an enrollment ends under the edited files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every step is sent (or skipped).
    Done,
    /// An exit rule ends it (the reason, as the scheduler words it).
    Leaves(String),
    /// The scheduler would hold it: a template or `when` that fails, a sequence gone.
    Held(String),
}

/// One enrollment's future under the edited files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlook {
    /// The steps it will be sent, with when.
    pub path: Vec<(StepId, DateTime<Utc>)>,
    /// How it ends.
    pub end: End,
}

/// Plays the scheduler forward for `e` from `now` under `catalog`, without writing anything.
/// Other leads' sends do not count against this one's caps, and replies that have not come
/// yet do not end it.
pub fn outlook(
    catalog: &Catalog,
    e: &Enrollment,
    lead: Option<&Lead>,
    now: DateTime<Utc>,
) -> Outlook {
    let mut e = e.clone();
    let mut now = now;
    let stops = StopMessages::new();
    let mut usage = Usage::default();
    let mut path = Vec::new();
    for _ in 0..MAX_DECISIONS {
        match decide(catalog, &e, lead, &stops, &mut usage, now, &mut || 0.0) {
            Settle::Wait {
                steps_done,
                next_step,
                due,
                last_at,
            } => {
                e.steps_done = steps_done;
                e.next_step = next_step;
                e.next_due_at = Some(due);
                e.last_at = last_at;
                now = due.max(now);
            }
            Settle::Send {
                message,
                steps_done,
                next_step,
                due,
                ..
            } => {
                path.push((message.step_id, now));
                e.steps_done = steps_done;
                e.next_step = next_step;
                e.last_at = now;
                match due {
                    Some(d) => {
                        e.next_due_at = Some(d);
                        now = d.max(now);
                    }
                    None => {
                        return Outlook {
                            path,
                            end: End::Done,
                        };
                    }
                }
            }
            Settle::Done { .. } => {
                return Outlook {
                    path,
                    end: End::Done,
                };
            }
            Settle::Exit { reason } => {
                return Outlook {
                    path,
                    end: End::Leaves(reason),
                };
            }
            Settle::Hold { error } => {
                return Outlook {
                    path,
                    end: End::Held(error),
                };
            }
        }
    }
    Outlook {
        path,
        end: End::Held(format!("no end after {MAX_DECISIONS} decisions")),
    }
}

/// The steps the running file `old` has left for an enrollment that has done `done`, in order.
pub fn remaining(old: &Sequence, done: &[StepId]) -> Vec<StepId> {
    let mut done = done.to_vec();
    let mut out = Vec::new();
    while let Some(step) = old.next_step(&done) {
        let id = StepId::new(step.id.clone());
        done.push(id.clone());
        out.push(id);
    }
    out
}

/// What the edit does to one sequence's enrollments.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SequencePlan {
    /// The sequence.
    pub name: String,
    /// `changed`, `unchanged` (the file is the same text), `new` (not running yet) or
    /// `removed` (running, gone from the edited files).
    pub status: &'static str,
    /// Enrollments under way (active or held).
    pub open: u64,
    /// Per step a lead gets next, before and after the edit: `(done)`, `(held)`,
    /// `(leaves)` where no step comes.
    pub next: Vec<NextStep>,
    /// Steps the running file would still send to some leads that the edited one will not.
    pub never_sent: Vec<NeverSent>,
    /// Steps the running file does not have, with how many leads get them and when the first
    /// goes out.
    pub new_steps: Vec<NewStep>,
    /// Leads that leave the sequence under the edited files, by reason.
    pub leaving: Vec<Leaving>,
    /// Leads the scheduler would hold (a template that fails for them), by error.
    pub errors: Vec<PlanError>,
}

/// `before → after` for some leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    /// The step next before the edit.
    pub before: String,
    /// The step next after it.
    pub after: String,
    /// How many leads.
    pub leads: u64,
}

/// A step some leads will no longer get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeverSent {
    /// The step's id in the running file.
    pub step: String,
    /// How many leads would have got it.
    pub leads: u64,
    /// Whether the edited file no longer has the step at all (else a `when`, an exit rule or
    /// a changed order skips it).
    pub removed: bool,
}

/// A step the running file does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewStep {
    /// Its id.
    pub step: String,
    /// How many leads already enrolled will get it.
    pub leads: u64,
    /// When the first of them goes out.
    pub first_at: DateTime<Utc>,
}

/// Leads that leave, for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaving {
    /// Why.
    pub reason: String,
    /// How many.
    pub leads: u64,
}

/// Leads held for one error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    /// The error, as the scheduler would record it.
    pub error: String,
    /// How many leads.
    pub leads: u64,
    /// A few of their addresses.
    pub examples: Vec<String>,
}

/// How many addresses an error names.
const EXAMPLES: usize = 3;

/// Sums enrollments up into [`SequencePlan`]s.
#[derive(Debug)]
pub struct Planner {
    running: HashMap<String, Sequence>,
    sequences: BTreeMap<String, Acc>,
}

#[derive(Debug, Default)]
struct Acc {
    open: u64,
    next: BTreeMap<(String, String), u64>,
    never_sent: BTreeMap<String, (u64, bool)>,
    new_steps: BTreeMap<String, (u64, DateTime<Utc>)>,
    leaving: BTreeMap<String, u64>,
    errors: BTreeMap<String, (u64, Vec<String>)>,
}

impl Planner {
    /// A plan of `edited` against the `running` sequence files.
    pub fn new(running: Vec<Sequence>) -> Planner {
        Planner {
            running: running.into_iter().map(|s| (s.name.clone(), s)).collect(),
            sequences: BTreeMap::new(),
        }
    }

    /// Adds one enrollment (with its lead, if it still exists) to the plan.
    pub fn add(
        &mut self,
        edited: &Catalog,
        e: &Enrollment,
        lead: Option<&Lead>,
        now: DateTime<Utc>,
    ) {
        let name = e.sequence.as_str();
        let future = outlook(edited, e, lead, now);
        let old = self.running.get(name);
        let old_path = old.map(|s| remaining(s, &e.steps_done)).unwrap_or_default();
        let before = match (e.state, &e.next_step) {
            (EnrollmentState::Held, _) => "(held)".to_owned(),
            (_, Some(step)) => step.as_str().to_owned(),
            (_, None) => old_path
                .first()
                .map_or_else(|| "(done)".to_owned(), |s| s.as_str().to_owned()),
        };
        let after = match (future.path.first(), &future.end) {
            (Some((step, _)), _) => step.as_str().to_owned(),
            (None, End::Done) => "(done)".to_owned(),
            (None, End::Leaves(_)) => "(leaves)".to_owned(),
            (None, End::Held(_)) => "(held)".to_owned(),
        };
        let new_file = edited.get(name);
        let acc = self.sequences.entry(name.to_owned()).or_default();
        acc.open += 1;
        *acc.next.entry((before, after)).or_default() += 1;
        for step in &old_path {
            if !future.path.iter().any(|(s, _)| s == step) {
                let removed = new_file.is_none_or(|f| f.step(step.as_str()).is_none());
                acc.never_sent
                    .entry(step.as_str().to_owned())
                    .or_insert((0, removed))
                    .0 += 1;
            }
        }
        for (step, at) in &future.path {
            if old.is_none_or(|o| o.step(step.as_str()).is_none()) {
                let entry = acc
                    .new_steps
                    .entry(step.as_str().to_owned())
                    .or_insert((0, *at));
                entry.0 += 1;
                entry.1 = entry.1.min(*at);
            }
        }
        match future.end {
            End::Done => {}
            End::Leaves(reason) => *acc.leaving.entry(reason).or_default() += 1,
            End::Held(error) => {
                let entry = acc.errors.entry(error).or_default();
                entry.0 += 1;
                if entry.1.len() < EXAMPLES
                    && let Some(lead) = lead
                {
                    entry.1.push(lead.email.to_string());
                }
            }
        }
    }

    /// The plan, one entry per sequence that is running, edited, or has enrollments.
    pub fn finish(mut self, edited: &Catalog) -> Vec<SequencePlan> {
        for s in &edited.sequences {
            self.sequences.entry(s.name.clone()).or_default();
        }
        for name in self.running.keys() {
            self.sequences.entry(name.clone()).or_default();
        }
        self.sequences
            .into_iter()
            .map(|(name, acc)| {
                let status = match (self.running.get(&name), edited.get(&name)) {
                    (None, _) => "new",
                    (Some(_), None) => "removed",
                    (Some(old), Some(new)) if old.source == new.source => "unchanged",
                    (Some(_), Some(_)) => "changed",
                };
                SequencePlan {
                    status,
                    open: acc.open,
                    next: acc
                        .next
                        .into_iter()
                        .map(|((before, after), leads)| NextStep {
                            before,
                            after,
                            leads,
                        })
                        .collect(),
                    never_sent: acc
                        .never_sent
                        .into_iter()
                        .map(|(step, (leads, removed))| NeverSent {
                            step,
                            leads,
                            removed,
                        })
                        .collect(),
                    new_steps: acc
                        .new_steps
                        .into_iter()
                        .map(|(step, (leads, first_at))| NewStep {
                            step,
                            leads,
                            first_at,
                        })
                        .collect(),
                    leaving: acc
                        .leaving
                        .into_iter()
                        .map(|(reason, leads)| Leaving { reason, leads })
                        .collect(),
                    errors: acc
                        .errors
                        .into_iter()
                        .map(|(error, (leads, examples))| PlanError {
                            error,
                            leads,
                            examples,
                        })
                        .collect(),
                    name,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(text: &str) -> Sequence {
        let mut problems = Vec::new();
        let (s, _) = super::super::file::parse(text, std::path::Path::new("s.toml"), &mut problems)
            .expect("a valid sequence");
        assert!(problems.is_empty(), "{problems:?}");
        s
    }

    fn ids(v: &[StepId]) -> Vec<&str> {
        v.iter().map(StepId::as_str).collect()
    }

    #[test]
    fn the_running_file_has_the_steps_after_the_last_one_done_left() {
        let step = |id: &str| {
            format!(
                "[[step]]\nid = \"{id}\"\ndelay = \"1d\"\ntemplate = \"t\"\nsubject = \"s\"\n\n"
            )
        };
        let s = sequence(&format!(
            "[enroll]\nmanual = true\n\n{}",
            ["a", "b", "c", "d"].map(step).concat()
        ));
        assert_eq!(ids(&remaining(&s, &[])), ["a", "b", "c", "d"]);
        assert_eq!(ids(&remaining(&s, &[StepId::new("a")])), ["b", "c", "d"]);
        // A step done that the file no longer has does not count; the last one it has does.
        let done = [StepId::new("b"), StepId::new("gone")];
        assert_eq!(ids(&remaining(&s, &done)), ["c", "d"]);
        let all = ["a", "b", "c", "d"].map(StepId::new);
        assert!(remaining(&s, &all).is_empty());
    }
}
