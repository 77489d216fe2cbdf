//! Lead scoring: `[[score]]` rules, each a condition over what is known of a lead, the points
//! it is worth and the reason Sales reads, optionally losing points with every week the lead
//! stays quiet.
//!
//! The conditions are template expressions (the language the message templates use), so a
//! team that writes `{{ lead.company }}` in a template writes `fields.budget | int >= 10000`
//! in a rule. They are checked when the configuration loads; at run time a rule that cannot be
//! evaluated for one lead (a value of the wrong type) simply does not match it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::store::{LeadScorer, ScoreFacts, ScoreReason, Scored};

/// One `[[score]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRule {
    /// The condition, a template expression.
    pub when: String,
    /// Points when it holds (negative points lower the score).
    pub points: i64,
    /// Why, as `leads show` and hand-offs say it.
    pub reason: String,
    /// Points lost per whole week since the lead's last message, down to zero.
    pub decay_per_week: f64,
}

/// `[[score]]` and `[handoff] min_score`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scoring {
    /// The rules, in file order.
    pub rules: Vec<ScoreRule>,
    /// A lead whose score reaches this is handed off.
    pub handoff_at: Option<i64>,
}

/// Evaluation steps one rule may take for one lead: plenty for any condition a person writes,
/// and a bound on one that would run away.
const FUEL: u64 = 10_000;

/// The environment rules are compiled and evaluated in. A missing value is falsy rather than an
/// error (`fields.budget` of a lead without a budget field just does not match), and an
/// unknown filter or a syntax error is reported when the configuration is checked.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
}

/// Checks one condition: it compiles and evaluates against a sample lead. The error says
/// what is wrong, for `leadloop check`.
///
/// # Errors
/// The expression does not parse, or fails on the sample.
pub fn check_condition(when: &str) -> Result<(), String> {
    let env = environment();
    let expr = env.compile_expression(when).map_err(|e| e.to_string())?;
    expr.eval(sample_context())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The names a condition can use, with a sample lead's values.
fn sample_context() -> Value {
    context! {
        lead => context! {
            email => "jane.doe@acme.example", domain => "acme.example", name => "Jane Doe",
            company => "Acme", phone => "+49 30 1234567", channel => "webinar",
            form => "demo-request", status => "new", owner => "sales@company.example",
        },
        fields => BTreeMap::from([("budget", "50000"), ("Budget", "50000")]),
        channel => "webinar", form => "demo-request", status => "new",
        domain => "acme.example",
        messages => BTreeMap::from([("inquiry", 1), ("reply", 1)]),
        events => BTreeMap::from([("sent", 2)]),
        replied => true, handed_off => false, handoffs => 0,
        days_quiet => 3, age_days => 10,
    }
}

impl Scoring {
    fn context(facts: &ScoreFacts, now: DateTime<Utc>) -> Value {
        let l = &facts.lead;
        // Labels as written (`Budget`) and in lower case (`budget`), so either spelling works.
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &l.fields {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.entry(k.to_lowercase()).or_insert_with(|| v.clone());
            fields.insert(k.clone(), v);
        }
        let days = |since: DateTime<Utc>| (now - since).num_days().max(0);
        context! {
            lead => context! {
                email => l.email.as_str(), domain => l.email.domain(), name => &l.name,
                company => &l.company, phone => &l.phone, channel => &l.channel,
                form => &l.form, status => l.status.as_str(), owner => &l.owner,
            },
            fields => fields,
            channel => &l.channel, form => &l.form, status => l.status.as_str(),
            domain => l.email.domain(),
            messages => &facts.messages, events => &facts.events,
            replied => facts.messages.get("reply").is_some_and(|n| *n > 0),
            handed_off => facts.handoffs > 0, handoffs => facts.handoffs,
            days_quiet => days(facts.last_activity), age_days => days(l.created_at),
        }
    }

    /// Each rule's verdict for this lead: `Some(points)` (after decay) when it holds, with the
    /// evaluation error when it could not be evaluated, for `score --explain`.
    pub fn explain(
        &self,
        facts: &ScoreFacts,
        now: DateTime<Utc>,
    ) -> Vec<(&ScoreRule, Result<Option<i64>, String>)> {
        let env = environment();
        let ctx = Self::context(facts, now);
        let weeks = (now - facts.last_activity).num_weeks().max(0) as f64;
        self.rules
            .iter()
            .map(|rule| {
                let held = env
                    .compile_expression(&rule.when)
                    .and_then(|e| e.eval(ctx.clone()))
                    .map(|v| v.is_true())
                    .map_err(|e| e.to_string());
                let points = held.map(|held| held.then(|| decayed(rule, weeks)));
                (rule, points)
            })
            .collect()
    }
}

/// A rule's points after `weeks` quiet weeks: closer to zero by `decay_per_week` a week,
/// never past it.
fn decayed(rule: &ScoreRule, weeks: f64) -> i64 {
    let lost = rule.decay_per_week * weeks;
    let p = rule.points as f64;
    let left = if p >= 0.0 {
        (p - lost).max(0.0)
    } else {
        (p + lost).min(0.0)
    };
    left.round() as i64
}

impl LeadScorer for Scoring {
    fn score(&self, facts: &ScoreFacts, now: DateTime<Utc>) -> Scored {
        let mut scored = Scored::default();
        for (rule, points) in self.explain(facts, now) {
            match points {
                Ok(Some(points)) if points != 0 => {
                    scored.score = scored.score.saturating_add(points);
                    scored.reasons.push(ScoreReason {
                        reason: rule.reason.clone(),
                        points,
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(
                    lead = %facts.lead.email,
                    rule = %rule.reason,
                    error = %e,
                    "score rule could not be evaluated; it does not count"
                ),
            }
        }
        scored
    }

    fn handoff_at(&self) -> Option<i64> {
        self.handoff_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, LeadId, LeadStatus};
    use crate::store::Lead;

    fn facts(
        fields: &[(&str, &str)],
        replies: i64,
        quiet_weeks: i64,
    ) -> (ScoreFacts, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2027-04-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let created = now - chrono::Duration::weeks(quiet_weeks);
        let lead = Lead {
            id: LeadId(1),
            email: EmailAddress::parse("jane@acme.example").unwrap(),
            name: Some("Jane".into()),
            company: None,
            phone: None,
            channel: "webinar".into(),
            status: LeadStatus::New,
            score: 0,
            owner: None,
            form: Some("demo-request".into()),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
                .collect(),
            created_at: created,
            updated_at: created,
        };
        let mut messages = BTreeMap::new();
        messages.insert("form".to_owned(), 1);
        if replies > 0 {
            messages.insert("reply".to_owned(), replies);
        }
        (
            ScoreFacts {
                lead,
                messages,
                events: BTreeMap::new(),
                handoffs: 0,
                last_activity: created,
                stored_reasons: Vec::new(),
            },
            now,
        )
    }

    fn rule(when: &str, points: i64, reason: &str) -> ScoreRule {
        ScoreRule {
            when: when.into(),
            points,
            reason: reason.into(),
            decay_per_week: 0.0,
        }
    }

    #[test]
    fn rules_add_up_with_their_reasons() {
        let scoring = Scoring {
            rules: vec![
                rule("fields.budget | int >= 10000", 20, "budget of 10k or more"),
                rule("replied", 25, "replied"),
                rule("channel == 'webinar'", 5, "webinar"),
                rule("lead.domain is endingwith('.gov')", -50, "public sector"),
            ],
            handoff_at: None,
        };
        let (f, now) = facts(&[("Budget", "50000")], 1, 0);
        let s = scoring.score(&f, now);
        assert_eq!(s.score, 50);
        assert_eq!(
            s.reasons
                .iter()
                .map(|r| r.reason.as_str())
                .collect::<Vec<_>>(),
            ["budget of 10k or more", "replied", "webinar"]
        );
        let (f, now) = facts(&[("Budget", "a lot")], 0, 0);
        assert_eq!(scoring.score(&f, now).score, 5);
    }

    #[test]
    fn points_decay_with_quiet_weeks_but_never_turn() {
        let mut r = rule("replied", 30, "replied");
        r.decay_per_week = 10.0;
        let scoring = Scoring {
            rules: vec![r],
            handoff_at: None,
        };
        for (weeks, want) in [(0, 30), (1, 20), (2, 10), (5, 0)] {
            let (f, now) = facts(&[], 1, weeks);
            assert_eq!(scoring.score(&f, now).score, want, "{weeks} weeks");
        }
    }

    #[test]
    fn conditions_are_checked() {
        assert!(check_condition("fields.budget | int >= 10000 and replied").is_ok());
        assert!(check_condition("messages.reply > 0").is_ok());
        assert!(check_condition("fields.budget >=").is_err());
        assert!(check_condition("lead.name | no_such_filter").is_err());
    }
}
