//! `[handoff]`, `[[route]]` and the loop policy, as config builds them.
//!
//! Everything the lead actions need from the configuration, in one value: `config` builds it
//! from `leadloop.toml` (this layer may not read `config`), and ingest and the CLI hand it in.

use std::time::Duration;

use super::route::Routing;
use super::trigger::Handoff;

/// What the lead actions are configured to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who owns a new lead (`[[route]]`, `[handoff] default_owner`).
    pub routing: Routing,
    /// When Sales is told about a lead (`[handoff]`).
    pub handoff: Handoff,
    /// How long an out-of-office reply without a return date pauses the lead's sequences
    /// (`[policy] ooo_default_pause`).
    pub ooo_default_pause: Duration,
    /// Soft bounces within `soft_bounce_window` after which an address is suppressed like a
    /// hard bounce (`[policy] soft_bounce_limit`), at least 1.
    pub soft_bounce_limit: u32,
    /// The window soft bounces are counted in (`[policy] soft_bounce_window`).
    pub soft_bounce_window: Duration,
}

impl Default for Settings {
    /// No routes or default owner, [`Handoff::default`], a week's pause, three soft bounces
    /// in a week.
    fn default() -> Self {
        Settings {
            routing: Routing::default(),
            handoff: Handoff::default(),
            ooo_default_pause: Duration::from_secs(7 * 24 * 3600),
            soft_bounce_limit: 3,
            soft_bounce_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
