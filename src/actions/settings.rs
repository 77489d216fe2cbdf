//! `[handoff]`, `[[route]]` and the loop policy, as config builds them.

use std::time::Duration;

use super::route::Routing;
use super::trigger::Handoff;

/// Everything the lead actions are configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[[route]]`.
    pub routing: Routing,
    /// `[handoff]`.
    pub handoff: Handoff,
    /// `[policy] ooo_default_pause`.
    pub ooo_default_pause: Duration,
    /// `[policy] soft_bounce_limit`.
    pub soft_bounce_limit: u32,
    /// `[policy] soft_bounce_window`.
    pub soft_bounce_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            routing: Routing::default(),
            handoff: Handoff::default(),
            ooo_default_pause: Duration::from_secs(7 * 86_400),
            soft_bounce_limit: 3,
            soft_bounce_window: Duration::from_secs(7 * 86_400),
        }
    }
}
