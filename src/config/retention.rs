//! `[retention]`: how long stored message bodies are kept.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Checker;

/// The shortest `message_bodies`: a body must outlive the hand-off and reply that read it.
const SHORTEST: Duration = Duration::from_secs(24 * 3600);

/// `[retention]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    message_bodies: Option<Spanned<String>>,
}

/// `[retention]`, checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Bodies older than this are removed by the daemon; `None` keeps them.
    pub message_bodies: Option<Duration>,
}

pub(super) fn check_retention(ck: &mut Checker<'_>, raw: Option<&RawRetention>) -> RetentionConfig {
    let Some(v) = raw.and_then(|r| r.message_bodies.as_ref()) else {
        return RetentionConfig::default();
    };
    let key = "retention.message_bodies";
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if d >= SHORTEST => RetentionConfig {
            message_bodies: Some(d),
        },
        Ok(_) => {
            ck.at(v.span(), key, "must be at least 1d");
            RetentionConfig::default()
        }
        Err(e) => {
            ck.at(
                v.span(),
                key,
                format!("'{}' is not a duration like \"90d\": {e}", v.get_ref()),
            );
            RetentionConfig::default()
        }
    }
}
