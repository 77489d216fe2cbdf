//! `[smtp] transport = "file:DIR"`: each message becomes one `.eml` file, for the demo and
//! for staging setups that must never mail anyone.
//!
//! The file is named after the Message-ID, so a message written twice (retried by hand after
//! an interruption) replaces its own file instead of making a second one, and is written under
//! a temporary name and renamed, so a reader never sees half a message.

use std::path::{Path, PathBuf};

use crate::store::OutboxMessage;

/// Writes `m` as `DIR/<Message-ID>.eml` and says where.
pub(super) async fn write(dir: &Path, m: &OutboxMessage) -> std::io::Result<String> {
    tokio::fs::create_dir_all(dir).await?;
    let name: String = m
        .message_id
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() || name.starts_with('.') {
        format!("outbox-{}", m.id)
    } else {
        name
    };
    let path: PathBuf = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    tokio::fs::write(&tmp, &m.raw).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(format!("written to {}", path.display()))
}
