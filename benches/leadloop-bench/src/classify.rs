//! `classify`: the classifier alone, in this process, on one thread.
//!
//! The ingest benchmark measures the whole pipeline, whose time depends on the machine's other
//! work and on Dovecot. This one runs only what each message costs leadloop's classifier (the
//! same call ingest makes per message, and its dedupe key), so that its CPU time, and the
//! instruction count under `valgrind --tool=callgrind`, are repeatable. `--dump FILE` writes
//! every decision in full, one JSON line per message, to check that a change to the classifier
//! changes no decision.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use leadloop::classify::{Rules, classify};
use leadloop::domain::EmailAddress;
use serde_json::json;

use crate::corpus;
use crate::rss;

/// What `leadloop-bench classify` was asked to do.
pub struct Options {
    /// Read the `.eml` files of this directory (sorted by name) instead of generating.
    pub dir: Option<PathBuf>,
    /// Messages generated when no directory is given.
    pub messages: usize,
    pub seed: u64,
    /// Passes over the messages; the rate is over all of them.
    pub passes: usize,
    /// A leadloop configuration whose classifier rules are used instead of the bench's.
    pub config: Option<PathBuf>,
    /// Writes every decision of the first pass here.
    pub dump: Option<PathBuf>,
}

/// Classifies the messages `passes` times and prints the rate and the CPU time; the last line
/// is one JSON object.
pub fn run(o: &Options) -> Result<()> {
    let rules = match &o.config {
        Some(path) => leadloop::config::Config::load(path)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
            .rules(),
        None => bench_rules()?,
    };
    let messages = match &o.dir {
        Some(dir) => read_dir(dir)?,
        None => corpus::generate(o.messages, o.seed)
            .into_iter()
            .enumerate()
            .map(|(i, m)| (format!("{i:05}-{}", m.kind.expected_kind()), m.raw))
            .collect(),
    };
    let bytes: usize = messages.iter().map(|(_, raw)| raw.len()).sum();
    // Compiles the classifier's patterns, as the ingest pipeline does before its first batch.
    let _ = classify(b"From: a@example.org\r\n\r\nwarm up\r\n", &rules);

    if let Some(path) = &o.dump {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for (name, raw) in &messages {
            let c = classify(raw, &rules);
            let line = json!({
                "file": name,
                "dedupe_key": leadloop::ingest::dedupe_key(&c, raw),
                "verdict": c.verdict.as_ref().map(|v| format!("{v:?}")),
                "classification": c,
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }

    let passes = o.passes.max(1);
    let cpu_start = rss::cpu_seconds()?;
    let start = Instant::now();
    let mut keys = 0usize;
    for _ in 0..passes {
        for (_, raw) in &messages {
            let c = classify(raw, &rules);
            keys += leadloop::ingest::dedupe_key(&c, raw).len();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = rss::cpu_seconds()? - cpu_start;
    let classified = messages.len() * passes;
    let per_s = classified as f64 / elapsed.max(1e-9);
    let cpu_us = cpu * 1e6 / classified.max(1) as f64;
    println!(
        "classified {classified} messages ({} × {passes}, {:.1} MB each pass) on one thread: \
         {per_s:.0} msg/s, {cpu:.2} CPU-s ({cpu_us:.1} µs per message)",
        messages.len(),
        bytes as f64 / 1e6,
    );
    println!(
        "{}",
        json!({
            "bench": "classify",
            "messages": messages.len(),
            "passes": passes,
            "bytes": bytes,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "per_s": per_s,
            "cpu_us_per_message": cpu_us,
            "key_bytes": keys,
        })
    );
    Ok(())
}

/// The rules of the ingest benchmark's configuration (`[identity]` only).
fn bench_rules() -> Result<Rules> {
    Ok(Rules {
        own_addresses: vec![EmailAddress::parse(corpus::INBOX_ADDRESS)?],
        own_domains: vec!["company.com".into()],
        ..Rules::default()
    })
}

/// The `.eml` files of `dir`, sorted by name.
fn read_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let raw =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Ok((name, raw))
        })
        .collect()
}
