//! `leadloop form learn SAMPLE.eml [--name NAME]`: a `[[form]]` profile learned from one
//! notification, printed as TOML to paste into `leadloop.toml`; and what `check --sample`
//! says about which profile reads a sample.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use crate::classify::{self, FormSource, LearnedForm, Rules};
use crate::domain::{MessageKind, Person};

#[derive(Debug, Subcommand)]
pub enum FormCommand {
    /// Print a [[form]] profile learned from one notification, ready to paste into
    /// leadloop.toml, with what it reads from that notification.
    Learn {
        /// One notification of the form (.eml).
        sample: PathBuf,
        /// The profile's name (default: made from the subject or the sender).
        #[arg(long)]
        name: Option<String>,
    },
}

/// Runs a `form` subcommand. A sample that is no form notification is exit code 2 with
/// `error: …`, as a mistake in what was asked rather than a failure.
pub fn run(cmd: FormCommand, rules: &Rules) -> anyhow::Result<ExitCode> {
    match cmd {
        FormCommand::Learn { sample, name } => {
            let raw = read_sample(&sample)?;
            match classify::learn_form(&raw, rules, name.as_deref()) {
                Ok(learned) => {
                    let mut out = io::stdout().lock();
                    write_learned(&mut out, &sample, &learned)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", sample.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

fn read_sample(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .len();
    if size > super::CLASSIFY_MAX_BYTES {
        anyhow::bail!(
            "{} has {size} bytes, over the {}-byte limit",
            path.display(),
            super::CLASSIFY_MAX_BYTES
        );
    }
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// The `[[form]]` table as the configuration spells it; empty lists are left out.
#[derive(Serialize)]
struct FormTable<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    from: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    subject_contains: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    body_contains: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    email_fields: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    name_fields: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    company_fields: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    phone_fields: &'a [String],
}

#[derive(Serialize)]
struct Document<'a> {
    form: [FormTable<'a>; 1],
}

/// A value as a TOML string (quoted, escaped), clipped: safe inside a comment whatever the
/// message held, since a line break in it would end the comment.
fn quoted(s: &str) -> String {
    let clipped: String = s.chars().take(120).collect();
    let more = if clipped.len() < s.len() { "…" } else { "" };
    // Control characters and Unicode line breaks become spaces first: a string with a line
    // break may be written as a multi-line TOML string, which no comment can hold.
    let one_line: String = format!("{clipped}{more}")
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    toml::Value::String(one_line).to_string()
}

fn write_learned(out: &mut impl Write, sample: &Path, l: &LearnedForm) -> anyhow::Result<()> {
    let p = &l.profile;
    let doc = Document {
        form: [FormTable {
            name: &p.name,
            from: &p.from,
            subject_contains: &p.subject_contains,
            body_contains: &p.body_contains,
            email_fields: &p.email_fields,
            name_fields: &p.name_fields,
            company_fields: &p.company_fields,
            phone_fields: &p.phone_fields,
        }],
    };
    let table = toml::to_string(&doc)?;
    let file = quoted(&sample.display().to_string());
    writeln!(out, "# A form profile learned from {file}.")?;
    writeln!(
        out,
        "# Paste it into leadloop.toml; `leadloop check --sample FILE.eml` shows which profile reads a notification."
    )?;
    for n in &l.notes {
        let n: String = n
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        writeln!(out, "# Note: {n}")?;
    }
    write!(out, "{table}")?;
    writeln!(out)?;
    writeln!(out, "# From this notification it takes:")?;
    let lead = &l.lead;
    writeln!(out, "#   lead:    {}", quoted(lead.email.as_str()))?;
    for (what, v) in [
        ("name", &lead.name),
        ("company", &lead.company),
        ("phone", &lead.phone),
    ] {
        if let Some(v) = v {
            writeln!(out, "#   {:<8} {}", format!("{what}:"), quoted(v))?;
        }
    }
    writeln!(out, "# Its fields (label = value):")?;
    let role = |label: &str| {
        [
            (&p.email_fields, "email"),
            (&p.name_fields, "name"),
            (&p.company_fields, "company"),
            (&p.phone_fields, "phone"),
        ]
        .into_iter()
        .find(|(labels, _)| labels.iter().any(|l| l == label))
        .map_or(String::new(), |(_, r)| format!("   ({r})"))
    };
    for (label, value) in &l.fields {
        writeln!(out, "#   {label} = {}{}", quoted(value), role(label))?;
    }
    Ok(())
}

/// `check --sample`: for each sample, the profile that reads it under the checked
/// configuration and the submitter it takes. Returns false when a sample could not be read.
pub fn report_samples(
    out: &mut impl Write,
    samples: &[PathBuf],
    rules: &Rules,
) -> io::Result<bool> {
    let mut all_read = true;
    for sample in samples {
        let raw = match read_sample(sample) {
            Ok(raw) => raw,
            Err(e) => {
                writeln!(out, "{e:#}")?;
                all_read = false;
                continue;
            }
        };
        let c = classify::classify(&raw, rules);
        // A form's lead is its submitter; any other kind's lead is shown as a lead.
        let who = if c.kind == MessageKind::Form {
            "submitter"
        } else {
            "lead"
        };
        let lead = c
            .lead
            .as_ref()
            .map_or(String::new(), |p| format!("; {who} {}", person(p)));
        let verdict = match (c.kind, &c.form) {
            (MessageKind::Form, Some(f)) => match classify::form_source(f, rules) {
                FormSource::Configured => format!("[[form]] '{f}' wins"),
                FormSource::BuiltIn => format!("built-in form profile '{f}' wins"),
                FormSource::Shape => {
                    format!("no form profile; classified as form ('{f}', by its shape)")
                }
            },
            (kind, _) => format!(
                "no form profile; classified as {kind}{}",
                c.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(" ({r})"))
            ),
        };
        writeln!(out, "{}: {verdict}{lead}", sample.display())?;
    }
    Ok(all_read)
}

/// `jane@x.example (Jane Doe, Acme, +49 …)`.
fn person(p: &Person) -> String {
    let about: Vec<&str> = [&p.name, &p.company, &p.phone]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if about.is_empty() {
        p.email.to_string()
    } else {
        format!("{} ({})", p.email, about.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_stay_on_their_comment_line() {
        for v in [
            "a\nb",
            "a\r\n[database]",
            "x\u{2028}y",
            "tab\there",
            "\"q\" and \\",
        ] {
            let q = quoted(v);
            assert!(!q.contains(['\n', '\r', '\u{2028}']), "{q}");
            assert!(q.starts_with(['"', '\'']), "{q}");
        }
        assert_eq!(quoted("Jane"), "\"Jane\"");
        assert!(quoted(&"x".repeat(500)).chars().count() < 130);
    }
}
