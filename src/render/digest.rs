//! The digest (`[[digest]]`): the reports of one period as a message to our own people, text
//! and HTML.
//!
//! The text part lays the tables out in plain columns; the HTML part has the same tables and,
//! per channel, a horizontal bar made of table cells with inline styles and `bgcolor`, the one
//! kind of chart Gmail and Outlook both keep (no images, no classes, no stylesheet). Everything
//! from data passes through [`bound::line`] (one line, bounded) and the HTML template's
//! auto-escaping, so a channel named `<script>` is shown as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use minijinja::{Environment, Value};

use super::sales::{self, Envelope};
use super::{RenderError, Rendered, SenderData, bound, template_error};
use crate::domain::EmailAddress;

/// The longest cell shown, in bytes.
const MAX_CELL_BYTES: usize = 60;

/// The text part's bar at its longest, in characters.
const TEXT_BAR: i64 = 30;

/// The built-in HTML template, compiled once (auto-escaping: its name ends in `.html`).
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = super::new_env();
    let _ = env.add_template("digest.html", include_str!("builtin/digest.html"));
    env
});

/// One report of the digest, as a table of text cells.
#[derive(Debug, Clone, Default)]
pub struct DigestTable {
    /// What it shows (`Leads by channel`).
    pub title: String,
    /// The column headers.
    pub columns: Vec<String>,
    /// Per column, whether it holds numbers (right-aligned).
    pub numeric: Vec<bool>,
    /// The rows, a cell per column.
    pub rows: Vec<Vec<String>>,
}

/// One channel's bar: its leads, and how many of them Sales called qualified or customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestBar {
    /// The channel.
    pub channel: String,
    /// Leads created in the period.
    pub leads: i64,
    /// Of those, qualified or customers.
    pub qualified: i64,
}

/// A lead waiting for Sales' verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestWaiting {
    /// The lead's address.
    pub email: String,
    /// Its name, if known.
    pub name: Option<String>,
    /// Who has it.
    pub owner: Option<String>,
    /// Its channel.
    pub channel: String,
    /// Whole days since it was handed off.
    pub days: i64,
}

/// One digest message to render.
#[derive(Debug, Clone)]
pub struct Digest<'a> {
    /// The `[[digest]] name`.
    pub name: &'a str,
    /// `week 2026-W48`, `month 2026-11`.
    pub label: &'a str,
    /// The days it covers, `Nov 23 – Nov 29`.
    pub range: &'a str,
    /// The team's time zone the periods are in.
    pub zone: &'a str,
    /// The reports, in the configured order.
    pub tables: &'a [DigestTable],
    /// Per channel, the bars (empty when the channels report is not asked for).
    pub bars: &'a [DigestBar],
    /// Leads waiting for a verdict longer than `waiting_after`.
    pub waiting: &'a [DigestWaiting],
    /// `waiting_after` as configured (`7d`).
    pub waiting_after: &'a str,
    /// Who sends it.
    pub sender: &'a SenderData,
    /// The recipient.
    pub to: &'a EmailAddress,
    /// Our Message-ID, without angle brackets.
    pub message_id: &'a str,
    /// The Date header.
    pub date: DateTime<Utc>,
}

/// The subject: `leadloop digest: week 2026-W48 (Nov 23 – Nov 29)`.
pub fn digest_subject(label: &str, range: &str) -> String {
    bound::line(&format!("leadloop digest: {label} ({range})"), 400)
}

fn cell(s: &str) -> String {
    bound::line(s, MAX_CELL_BYTES)
}

/// A table laid out in plain columns: numbers right-aligned, text left-aligned.
fn text_table(t: &DigestTable) -> String {
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let heads: Vec<String> = t.columns.iter().map(|c| cell(c)).collect();
    let mut widths: Vec<usize> = heads.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                s.push_str("  ");
            }
            if t.numeric.get(i).copied().unwrap_or(false) {
                let _ = write!(s, "{c:>w$}");
            } else {
                let _ = write!(s, "{c:<w$}");
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = format!("{}\n\n", cell(&t.title));
    out.push_str(&line(&heads));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    out.push('\n');
    if rows.is_empty() {
        out.push_str("(nothing in this period)\n");
    }
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// Percent of `part` in `whole`, rounded, so that bars of one digest compare.
fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    (part.clamp(0, whole) * 100 + whole / 2) / whole
}

/// The text part.
pub fn digest_text(d: &Digest<'_>) -> String {
    let mut out = format!(
        "leadloop digest \"{}\": {} ({}, {})\n\n",
        cell(d.name),
        d.label,
        d.range,
        d.zone
    );
    for t in d.tables {
        out.push_str(&text_table(t));
        out.push('\n');
    }
    if !d.bars.is_empty() {
        out.push_str("Leads per channel (# qualified or customer, = other leads)\n\n");
        let max = d.bars.iter().map(|b| b.leads).max().unwrap_or(0);
        let width = d
            .bars
            .iter()
            .map(|b| cell(&b.channel).chars().count())
            .max()
            .unwrap_or(0);
        for b in d.bars {
            let total = (b.leads * TEXT_BAR + max / 2) / max.max(1);
            let total = if b.leads > 0 { total.max(1) } else { 0 };
            let good = (b.qualified.clamp(0, b.leads) * total + b.leads / 2) / b.leads.max(1);
            let bar = format!(
                "{}{}",
                "#".repeat(usize::try_from(good).unwrap_or(0)),
                "=".repeat(usize::try_from(total - good).unwrap_or(0))
            );
            out.push_str(&format!(
                "{:<width$}  {bar} {}\n",
                cell(&b.channel),
                b.leads
            ));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Waiting for a verdict for more than {}: {}\n",
        d.waiting_after,
        d.waiting.len()
    );
    if !d.waiting.is_empty() {
        let t = DigestTable {
            title: "Handed off to Sales, no verdict yet".into(),
            columns: ["lead", "name", "owner", "channel", "days waiting"]
                .map(String::from)
                .to_vec(),
            numeric: vec![false, false, false, false, true],
            rows: d
                .waiting
                .iter()
                .map(|w| {
                    vec![
                        w.email.clone(),
                        w.name.clone().unwrap_or_else(|| "-".into()),
                        w.owner.clone().unwrap_or_else(|| "-".into()),
                        w.channel.clone(),
                        w.days.to_string(),
                    ]
                })
                .collect(),
        };
        out.push_str(&text_table(&t));
    }
    out
}

fn context(d: &Digest<'_>) -> Value {
    let tables: Vec<Value> = d
        .tables
        .iter()
        .map(|t| {
            let columns: Vec<Value> = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Value::from(BTreeMap::from([
                        ("name", Value::from(cell(c))),
                        (
                            "numeric",
                            Value::from(t.numeric.get(i).copied().unwrap_or(false)),
                        ),
                    ]))
                })
                .collect();
            let rows: Vec<Value> = t
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(i, c)| {
                            Value::from(BTreeMap::from([
                                ("text", Value::from(cell(c))),
                                (
                                    "numeric",
                                    Value::from(t.numeric.get(i).copied().unwrap_or(false)),
                                ),
                            ]))
                        })
                        .collect::<Vec<Value>>()
                        .into()
                })
                .collect();
            Value::from(BTreeMap::from([
                ("title", Value::from(cell(&t.title))),
                ("columns", Value::from(columns)),
                ("rows", Value::from(rows)),
            ]))
        })
        .collect();
    let max = d.bars.iter().map(|b| b.leads).max().unwrap_or(0);
    let bars: Vec<Value> = d
        .bars
        .iter()
        .map(|b| {
            let total = if b.leads > 0 {
                percent(b.leads, max).max(1)
            } else {
                0
            };
            let good = percent(b.qualified, b.leads) * total / 100;
            Value::from(BTreeMap::from([
                ("channel", Value::from(cell(&b.channel))),
                ("leads", Value::from(b.leads)),
                ("qualified", Value::from(b.qualified)),
                ("good_pct", Value::from(good)),
                ("rest_pct", Value::from(total - good)),
                ("empty_pct", Value::from(100 - total)),
            ]))
        })
        .collect();
    let waiting: Vec<Value> = d
        .waiting
        .iter()
        .map(|w| {
            Value::from(BTreeMap::from([
                ("email", Value::from(cell(&w.email))),
                (
                    "name",
                    Value::from(bound::opt_line(w.name.as_deref(), MAX_CELL_BYTES)),
                ),
                (
                    "owner",
                    Value::from(bound::opt_line(w.owner.as_deref(), MAX_CELL_BYTES)),
                ),
                ("channel", Value::from(cell(&w.channel))),
                ("days", Value::from(w.days)),
            ]))
        })
        .collect();
    Value::from(BTreeMap::from([
        ("name", Value::from(cell(d.name))),
        ("label", Value::from(d.label)),
        ("range", Value::from(d.range)),
        ("zone", Value::from(d.zone)),
        ("tables", Value::from(tables)),
        ("bars", Value::from(bars)),
        ("waiting", Value::from(waiting)),
        ("waiting_after", Value::from(d.waiting_after)),
    ]))
}

/// The HTML part.
///
/// # Errors
/// The built-in template fails (a bug the tests catch).
pub fn digest_html(d: &Digest<'_>) -> Result<String, RenderError> {
    ENV.get_template("digest.html")
        .and_then(|t| t.render(context(d)))
        .map_err(|e| template_error("built-in digest.html", &e))
}

/// Renders the digest for `d.to`: text and HTML, no Reply-To (answers reach the sender),
/// `Auto-Submitted: auto-generated` and `X-Leadloop-Origin`, no unsubscribe footer: it goes
/// to a colleague.
///
/// # Errors
/// The template fails, or an address is refused.
pub fn render_digest(d: &Digest<'_>) -> Result<Rendered, RenderError> {
    let subject = digest_subject(d.label, d.range);
    let text = digest_text(d);
    let html = digest_html(d)?;
    let bytes = sales::assemble(
        &Envelope {
            sender: d.sender,
            to: d.to,
            subject: &subject,
            message_id: d.message_id,
            reply_to: None,
            thread: &[],
            date: d.date,
        },
        &text,
        Some(&html),
    )?;
    Ok(Rendered {
        message_id: d.message_id.to_owned(),
        subject,
        text,
        html: Some(html),
        from: d.sender.address.clone(),
        to: d.to.clone(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_valid_head;
    use super::*;

    fn render(channel: &str) -> Rendered {
        let sender = SenderData {
            name: "team".into(),
            address: EmailAddress::parse("leads@company.com").unwrap(),
            display_name: Some("leadloop".into()),
        };
        let to = EmailAddress::parse("marketing@company.com").unwrap();
        let tables = [DigestTable {
            title: "Leads by channel".into(),
            columns: vec!["channel".into(), "leads".into()],
            numeric: vec![false, true],
            rows: vec![
                vec![channel.into(), "12".into()],
                vec!["ads".into(), "3".into()],
            ],
        }];
        let bars = [
            DigestBar {
                channel: channel.into(),
                leads: 12,
                qualified: 6,
            },
            DigestBar {
                channel: "ads".into(),
                leads: 3,
                qualified: 0,
            },
        ];
        let waiting = [DigestWaiting {
            email: "ada@park.example".into(),
            name: Some("Ada <b>Park</b>".into()),
            owner: Some("bob@company.com".into()),
            channel: channel.into(),
            days: 9,
        }];
        render_digest(&Digest {
            name: "weekly",
            label: "week 2026-W48",
            range: "Nov 23 – Nov 29",
            zone: "Europe/Berlin",
            tables: &tables,
            bars: &bars,
            waiting: &waiting,
            waiting_after: "7d",
            sender: &sender,
            to: &to,
            message_id: "leadloop.digest.1@company.com",
            date: DateTime::<Utc>::UNIX_EPOCH,
        })
        .unwrap()
    }

    #[test]
    fn names_from_data_are_escaped_in_html_and_plain_in_text() {
        let r = render("<script>alert(1)</script>");
        let html = r.html.as_deref().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>Park"), "{html}");
        assert!(
            r.text.contains("<script>alert(1)</script>     12\n"),
            "{}",
            r.text
        );
        assert_eq!(
            r.subject,
            "leadloop digest: week 2026-W48 (Nov 23 – Nov 29)"
        );
        assert_valid_head(&r.bytes);
        let raw = String::from_utf8_lossy(&r.bytes);
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(!raw.contains("Reply-To"), "{raw}");
        assert!(raw.contains("X-Leadloop-Origin: leadloop"), "{raw}");
    }

    #[test]
    fn bars_are_table_cells_with_inline_styles_scaled_to_the_largest_channel() {
        let r = render("web");
        let html = r.html.unwrap();
        assert!(!html.contains("class="), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<style"), "{html}");
        // web: 12 leads (100%), half qualified; ads: 3 leads, 25%, none qualified.
        assert!(html.contains("width=\"50%\" bgcolor=\"#2e7d32\""), "{html}");
        assert!(html.contains("width=\"25%\" bgcolor=\"#90caf9\""), "{html}");
        assert!(html.contains("width=\"75%\""), "{html}");
        assert!(
            r.text
                .contains(&format!("web  {}{} 12", "#".repeat(15), "=".repeat(15))),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(&format!("ads  {} 3", "=".repeat(8))),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("Waiting for a verdict for more than 7d: 1"),
            "{}",
            r.text
        );
        assert!(r.text.contains("ada@park.example"), "{}", r.text);
    }
}
