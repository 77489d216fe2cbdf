//! `[[score]]`: lead scoring rules, checked into the lead actions' [`Scoring`].

use serde::Deserialize;
use toml::Spanned;

use super::Checker;
use crate::actions::score::{ScoreRule, Scoring, check_condition};

/// `[[score]]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScore {
    when: Spanned<String>,
    points: Spanned<i64>,
    reason: Option<Spanned<String>>,
    decay_per_week: Option<Spanned<f64>>,
}

pub(super) fn check_scoring(
    ck: &mut Checker<'_>,
    raw: &[Spanned<RawScore>],
    handoff_at: Option<i64>,
) -> Scoring {
    let mut rules = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let r = r.get_ref();
        let key = |k: &str| format!("score[{i}].{k}");
        if let Err(e) = check_condition(r.when.get_ref()) {
            ck.at(
                r.when.span(),
                &key("when"),
                format!(
                    "'{}' is not a condition leadloop can evaluate: {e}",
                    r.when.get_ref()
                ),
            );
        }
        let decay = match &r.decay_per_week {
            Some(d) if !d.get_ref().is_finite() || *d.get_ref() < 0.0 => {
                ck.at(d.span(), &key("decay_per_week"), "must be 0 or more");
                0.0
            }
            Some(d) => *d.get_ref(),
            None => 0.0,
        };
        let reason = match &r.reason {
            Some(reason) if reason.get_ref().trim().is_empty() => {
                ck.at(reason.span(), &key("reason"), "must not be empty");
                String::new()
            }
            Some(reason) => reason.get_ref().trim().to_owned(),
            // Without a label, the condition says why.
            None => r.when.get_ref().trim().to_owned(),
        };
        rules.push(ScoreRule {
            when: r.when.get_ref().clone(),
            points: *r.points.get_ref(),
            reason,
            decay_per_week: decay,
        });
    }
    Scoring { rules, handoff_at }
}
