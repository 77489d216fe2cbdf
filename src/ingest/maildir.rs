//! The Maildir source: a folder with `new/` and `cur/`, read without being changed.
//!
//! It serves the out-of-the-box demo (a sample inbox shipped in the repository, which must stay
//! untouched) and a mailbox delivered on the same host. Maildir has no UIDs, so exactly-once
//! rests on the store's dedupe keys; files already handled in this process are remembered by
//! their unique base name so a poll does not parse them again.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{IngestError, IngestReport, Pipeline, RawMessage, header_part};
use crate::diagnostics::error_chain;

/// Reads a Maildir into a [`Pipeline`].
#[derive(Debug)]
pub struct MaildirSource {
    path: PathBuf,
    pipeline: Pipeline,
    poll_interval: Duration,
    batch_size: usize,
    max_message_bytes: u64,
    /// Unique names (the part before `:`) of files recorded by this process: a file that a mail
    /// client moves from `new/` to `cur/` keeps that part.
    done: Mutex<HashSet<String>>,
}

/// The stable name a Maildir's messages are recorded under.
pub fn mailbox_name(path: &Path) -> String {
    crate::config::maildir_key(path)
}

impl MaildirSource {
    /// A source for the Maildir at `path`.
    pub fn new(
        path: PathBuf,
        pipeline: Pipeline,
        poll_interval: Duration,
        batch_size: u32,
        max_message_bytes: u64,
    ) -> Self {
        MaildirSource {
            path,
            pipeline,
            poll_interval,
            batch_size: batch_size.max(1) as usize,
            max_message_bytes,
            done: Mutex::new(HashSet::new()),
        }
    }

    /// Records every file not yet recorded.
    ///
    /// # Errors
    /// The Maildir cannot be listed, or the store refused a batch.
    pub async fn sync_once(&self, cancel: &CancellationToken) -> Result<IngestReport, IngestError> {
        let files = self.pending_files()?;
        let mut report = IngestReport::default();
        for chunk in files.chunks(self.batch_size) {
            if cancel.is_cancelled() {
                break;
            }
            let mut batch = Vec::with_capacity(chunk.len());
            let mut names = Vec::with_capacity(chunk.len());
            for (name, path) in chunk {
                match read_message(path, self.max_message_bytes) {
                    Ok(m) => {
                        batch.push(m);
                        names.push(name.clone());
                    }
                    // Delivered and then removed by someone else between listing and reading.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(IngestError::Io {
                            path: path.display().to_string(),
                            source,
                        });
                    }
                }
            }
            report.merge(self.pipeline.record(0, None, batch).await?);
            let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            done.extend(names);
        }
        if report.fetched > 0 {
            info!(path = %self.path.display(), recorded = report.recorded, duplicates = report.duplicates, "maildir synced");
        }
        Ok(report)
    }

    /// Polls until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) -> IngestReport {
        let mut total = IngestReport::default();
        while !cancel.is_cancelled() {
            match self.sync_once(&cancel).await {
                Ok(r) => {
                    total.merge(r);
                    self.pipeline.mark_read();
                }
                Err(e) => {
                    warn!(error = %error_chain(&e), "maildir ingest failed; retrying")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = cancel.cancelled() => {}
            }
        }
        total
    }

    fn pending_files(&self) -> Result<Vec<(String, PathBuf)>, IngestError> {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let mut files = Vec::new();
        let mut found_dir = false;
        for sub in ["new", "cur"] {
            let dir = self.path.join(sub);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(IngestError::Io {
                        path: dir.display().to_string(),
                        source,
                    });
                }
            };
            found_dir = true;
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if file_name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let unique = file_name.split(':').next().unwrap_or(&file_name).to_owned();
                if !done.contains(&unique) {
                    files.push((unique, entry.path()));
                }
            }
        }
        if !found_dir {
            return Err(IngestError::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no new/ or cur/ folder: not a Maildir",
                ),
            });
        }
        // Maildir names start with the delivery time, so name order is arrival order.
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        Ok(files)
    }
}

fn read_message(path: &Path, limit: u64) -> std::io::Result<RawMessage> {
    let size = std::fs::metadata(path)?.len();
    if size <= limit {
        let bytes = std::fs::read(path)?;
        return Ok(RawMessage {
            uid: None,
            size,
            bytes,
            oversize: false,
        });
    }
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(1024 * 1024)
        .read_to_end(&mut head)?;
    let header = header_part(&head, head.len()).to_vec();
    Ok(RawMessage {
        uid: None,
        size,
        bytes: header,
        oversize: true,
    })
}
