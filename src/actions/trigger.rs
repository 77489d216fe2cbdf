//! When Sales is told about a lead: `[handoff]`.

use crate::domain::Classification;

/// `[handoff]`.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Whether hand-offs are sent at all.
    pub enabled: bool,
    /// Whether a reply hands the lead off.
    pub on_reply: bool,
    /// At most one hand-off per lead per interval.
    pub interval: std::time::Duration,
    /// The `[[sender]]` hand-offs go out as.
    pub sender: Option<String>,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            enabled: true,
            on_reply: true,
            interval: std::time::Duration::from_secs(86_400),
            sender: None,
        }
    }
}

impl Handoff {
    /// Why the lead of `c` is hot.
    pub fn hot(&self, _c: &Classification) -> Option<String> {
        None
    }
}
