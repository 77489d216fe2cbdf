//! The classifier against real-looking mail: every fixture in `tests/fixtures` with its
//! expected decision in `expected.toml`, and generated hostile input that must never panic.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use leadloop::classify::{ChannelRule, Classification, FormProfile, Rules, classify};
use leadloop::domain::{EmailAddress, FailedRecipient, MessageKind};

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("test address")
}

fn rules() -> Rules {
    Rules {
        own_addresses: vec![addr("leads@company.com")],
        own_domains: vec!["company.com".into()],
        sales: vec![addr("sales@company.com")],
        channels: vec![
            ChannelRule {
                name: "webinar".into(),
                plus_tags: vec!["webinar".into()],
                ..ChannelRule::default()
            },
            ChannelRule {
                name: "linkedin".into(),
                utm_sources: vec!["linkedin".into()],
                ..ChannelRule::default()
            },
        ],
        forms: vec![
            FormProfile {
                name: "partner-portal".into(),
                from: vec!["partners.example.net".into()],
                email_fields: vec!["Contact email".into()],
                name_fields: vec!["Contact".into()],
                company_fields: vec!["Org".into()],
                ..FormProfile::default()
            },
            FormProfile {
                name: "booth-scans".into(),
                body_contains: vec!["ExpoHost lead retrieval".into()],
                email_fields: vec!["Work address".into()],
                name_fields: vec!["Visitor".into()],
                ..FormProfile::default()
            },
        ],
        ..Rules::default()
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Compares one expected key with the classification; returns a message on mismatch.
fn check(key: &str, want: &toml::Value, c: &Classification) -> Option<String> {
    let want_s = match want {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let got: Option<String> = match key {
        "kind" => Some(c.kind.as_str().to_owned()),
        "lead" => c.lead.as_ref().map(|p| p.email.to_string()),
        "name" => c.lead.as_ref().and_then(|p| p.name.clone()),
        "company" => c.lead.as_ref().and_then(|p| p.company.clone()),
        "phone" => c.lead.as_ref().and_then(|p| p.phone.clone()),
        "channel" => c.channel.clone(),
        "owner" => c.owner.as_ref().map(ToString::to_string),
        "form" => c.form.clone(),
        "subject" => c.subject.clone(),
        "message_id" => c.message_id.clone(),
        "bounce_recipient" => c
            .bounce
            .as_ref()
            .and_then(|b| b.recipient.as_ref())
            .map(ToString::to_string),
        "permanent" => c.bounce.as_ref().map(|b| b.permanent.to_string()),
        "status" => c.bounce.as_ref().and_then(|b| b.status.clone()),
        "return_date" => c.return_date.map(|d| d.to_string()),
        "verdict" => c.fields.get("verdict").cloned(),
        "feedback_reason" => c.fields.get("feedback_reason").cloned(),
        "reason" => c
            .bounce
            .as_ref()
            .and_then(|b| b.recipients.first())
            .map(|r| r.reason.as_str().to_owned()),
        "recipients" => {
            let want: Vec<String> = want
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let got: Vec<String> = c
                .bounce
                .as_ref()
                .map(|b| b.recipients.iter().map(recipient_line).collect())
                .unwrap_or_default();
            return (got != want).then(|| format!("recipients: expected {want:?}, got {got:?}"));
        }
        "reason_contains" => {
            return match &c.reason {
                Some(r) if r.contains(&want_s) => None,
                other => Some(format!("reason {other:?} does not contain {want_s:?}")),
            };
        }
        "review_contains" => {
            return match &c.review {
                Some(r) if r.contains(&want_s) => None,
                other => Some(format!("review {other:?} does not contain {want_s:?}")),
            };
        }
        "references_contains" => {
            return if c.references.iter().any(|r| r == &want_s) {
                None
            } else {
                Some(format!("references {:?} lack {want_s:?}", c.references))
            };
        }
        other => return Some(format!("unknown key {other:?} in expected.toml")),
    };
    (got.as_deref() != Some(want_s.as_str()))
        .then(|| format!("{key}: expected {want_s:?}, got {got:?}"))
}

/// A failed recipient as `expected.toml` lists it: `address action hard|soft reason status`
/// (`-` for no status).
fn recipient_line(r: &FailedRecipient) -> String {
    format!(
        "{} {} {} {} {}",
        r.address,
        r.action,
        if r.permanent { "hard" } else { "soft" },
        r.reason,
        r.status.as_deref().unwrap_or("-")
    )
}

#[test]
fn fixtures_classify_as_expected() {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("expected.toml")).expect("expected.toml");
    let doc: toml::Table = toml::from_str(&text).expect("expected.toml parses");
    let cases = doc
        .get("case")
        .and_then(|c| c.as_array())
        .expect("[[case]] entries");
    let rules = rules();
    let mut failures = String::new();
    let mut listed = Vec::new();
    // Per expected kind: fixtures, and fixtures whose every expectation held.
    let mut per_kind: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    // Per checked key (kind, lead, bounce_recipient, permanent, reason, recipients,
    // return_date): checks, passes.
    let mut per_key: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    // Per category of mail (the fixture name's prefix): kind, failed recipients, hard/soft,
    // and the leads made of messages that must make none.
    let mut per_category: std::collections::BTreeMap<String, Accuracy> = Default::default();
    for case in cases {
        let case = case.as_table().expect("case is a table");
        let file = case
            .get("file")
            .and_then(|f| f.as_str())
            .expect("case has a file");
        listed.push(file.to_owned());
        let raw = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let c = classify(&raw, &rules);
        let mut problems: Vec<String> = case
            .iter()
            .filter(|(k, _)| k.as_str() != "file")
            .filter_map(|(k, v)| check(k, v, &c))
            .collect();
        if !case.contains_key("lead")
            && let Some(p) = &c.lead
        {
            problems.push(format!("lead: expected none, got {}", p.email));
        }
        // A lead held for review without a reason to expect it is a lead not nurtured.
        if !case.contains_key("review_contains")
            && let Some(r) = &c.review
        {
            problems.push(format!("review: expected none, got {r:?}"));
        }
        for key in [
            "kind",
            "lead",
            "bounce_recipient",
            "permanent",
            "reason",
            "recipients",
            "return_date",
        ] {
            if let Some(v) = case.get(key) {
                let e = per_key.entry(key.to_owned()).or_default();
                e.0 += 1;
                e.1 += usize::from(check(key, v, &c).is_none());
            }
        }
        let kind = case
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_owned();
        let a = per_category.entry(category(file, case)).or_default();
        a.messages += 1;
        a.kind += usize::from(kind == c.kind.as_str());
        for key in ["recipients", "bounce_recipient"] {
            if let Some(v) = case.get(key) {
                a.recipient.0 += 1;
                a.recipient.1 += usize::from(check(key, v, &c).is_none());
                break;
            }
        }
        if let Some(v) = case.get("lead") {
            a.lead.0 += 1;
            a.lead.1 += usize::from(check("lead", v, &c).is_none());
        }
        if let Some(v) = case.get("permanent") {
            a.hard_soft.0 += 1;
            a.hard_soft.1 += usize::from(check("permanent", v, &c).is_none());
        }
        let should_lead = kind
            .parse::<MessageKind>()
            .is_ok_and(MessageKind::creates_lead);
        let made_lead = c.kind.creates_lead() && c.lead.is_some();
        if made_lead && !should_lead {
            a.false_leads.push(file.to_owned());
        }
        let e = per_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += usize::from(problems.is_empty());
        if !problems.is_empty() {
            let _ = writeln!(
                failures,
                "{file}:\n  {}\n  evidence: {:?}",
                problems.join("\n  "),
                c.evidence
            );
        }
    }
    // The figures are printed for `cargo test --test it classify -- --nocapture`.
    let mut report = String::from("fixture accuracy by expected kind (all expectations held):\n");
    for (kind, (n, ok)) in &per_kind {
        let _ = writeln!(report, "  {kind:<12} {ok:>3}/{n:<3}");
    }
    report.push_str("by expectation:\n");
    for (key, (n, ok)) in &per_key {
        let _ = writeln!(report, "  {key:<16} {ok:>3}/{n:<3}");
    }
    report.push_str(
        "by category: kind, lead address, failed recipient, hard/soft right; false leads (messages that became leads and must not)\n",
    );
    let ratio = |(n, ok): (usize, usize)| {
        if n == 0 {
            "-".to_owned()
        } else {
            format!("{ok}/{n}")
        }
    };
    for (category, a) in &per_category {
        let _ = writeln!(
            report,
            "  {category:<12} kind {:>7}  lead {:>7}  recipient {:>5}  hard/soft {:>5}  false leads {}",
            ratio((a.messages, a.kind)),
            ratio(a.lead),
            ratio(a.recipient),
            ratio(a.hard_soft),
            a.false_leads.len()
        );
        for f in &a.false_leads {
            let _ = writeln!(failures, "{f}: became a lead, and must not");
        }
    }
    eprint!("{report}");
    // Every fixture must be covered, so a new .eml cannot silently go unchecked.
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".eml") && !listed.contains(&name) {
            let _ = writeln!(failures, "{name}: no [[case]] in expected.toml");
        }
    }
    assert!(failures.is_empty(), "fixture mismatches:\n{failures}");
}

/// What the accuracy report counts for one category of fixtures.
#[derive(Default)]
struct Accuracy {
    messages: usize,
    /// Messages whose kind is the expected one.
    kind: usize,
    /// (checked, right): the failed recipients of bounces.
    recipient: (usize, usize),
    /// (checked, right): the lead's address.
    lead: (usize, usize),
    /// (checked, right): hard or soft.
    hard_soft: (usize, usize),
    /// Messages that became leads although their expected kind makes none.
    false_leads: Vec<String>,
}

/// A fixture's category: `category` in its case, else its name's prefix, with the prefixes of
/// one kind of mail brought together.
fn category(file: &str, case: &toml::Table) -> String {
    if let Some(c) = case.get("category").and_then(|c| c.as_str()) {
        return c.to_owned();
    }
    let prefix = file.split(['_', '.']).next().unwrap_or(file);
    match prefix {
        "newsletter" => "bulk",
        "leadloop" | "loop" => "own",
        "mail" | "missing" | "ignored" => "robust",
        other => other,
    }
    .to_owned()
}

/// Every decision carries its evidence and the message's identity.
#[test]
fn decisions_record_evidence_and_identity() {
    let raw = std::fs::read(fixtures().join("inquiry_plain.eml")).expect("fixture");
    let c = classify(&raw, &rules());
    assert!(!c.evidence.is_empty());
    assert!(c.date.is_some());
    assert_eq!(c.kind, MessageKind::Inquiry);
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

/// Hostile and broken input: each must yield some decision without panicking. The scans are
/// bounded, so even the large inputs finish quickly.
#[test]
fn bad_input_never_panics() {
    let rules = rules();
    let header = "From: Jane <jane@example.org>\nTo: leads@company.com\nSubject: hi\n";
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("whitespace", b"\r\n\r\n  \r\n".to_vec()),
        (
            "truncated MIME",
            crlf(&format!(
                "{header}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"never\"\n\n--never\nContent-Type: text/plain\n\nhello, the boundary never closes"
            )),
        ),
        (
            "missing From",
            crlf("To: leads@company.com\nSubject: hi\n\nhello\n"),
        ),
        (
            "garbage charset",
            crlf(&format!(
                "{header}Content-Type: text/plain; charset=x-unknown-garbage\n\nhello\n"
            )),
        ),
        ("NUL bytes", {
            let mut v = crlf(header);
            v.extend_from_slice(b"\r\nhel\0lo\0\0 Email: \0x@y.z\r\n");
            v
        }),
        (
            "mbox From line",
            crlf(&format!(
                "From jane@example.org Fri Apr  2 09:15:00 2027\n{header}\nhello\n"
            )),
        ),
        (
            "no headers",
            b"just some text without any header at all".to_vec(),
        ),
        ("binary noise", (0..=255u8).cycle().take(10_000).collect()),
    ];
    let mut eight_bit = b"From: J\xe4ne \xff\xfe <jane@example.org>\r\nSubject: \xc3\x28 \x80\x81\r\nTo: leads@company.com\r\n\r\nbody\r\n".to_vec();
    eight_bit.extend_from_slice(b"\xf0\x28\x8c\x28\r\n");
    inputs.push(("8-bit headers", eight_bit));

    let long_line = format!("{header}X-Long: {}\n\nhello\n", "a".repeat(100 * 1024));
    inputs.push(("100 KB header line", crlf(&long_line)));
    let long_subject = format!(
        "From: Jane <jane@example.org>\nTo: leads@company.com\nSubject: Out of Office {}\n\nback on 14 April\n",
        "ü".repeat(50 * 1024)
    );
    inputs.push(("100 KB subject", crlf(&long_subject)));

    let mut big = crlf(&format!(
        "{header}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nsee attachment\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
    ));
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while big.len() < 30 * 1024 * 1024 {
        big.extend_from_slice(line.as_bytes());
    }
    big.extend_from_slice(b"--b--\r\n");
    inputs.push(("30 MB base64 attachment", big));

    let five_mb_line = format!(
        "{header}Content-Type: text/html\n\n<p>{}</p>\n",
        "<b>x</b> Email: a@b.example ".repeat(5 * 1024 * 1024 / 28)
    );
    inputs.push(("5 MB single line", crlf(&five_mb_line)));
    let mut fifty = crlf(&format!(
        "{header}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nhello, a quote please\n--b\nContent-Type: text/plain\n\n"
    ));
    while fifty.len() < 50 * 1024 * 1024 {
        fifty.extend_from_slice(
            b"Name: x Email: y@z.example utm_source=a&utm_medium=b On Mon wrote:\r\n",
        );
    }
    fifty.extend_from_slice(b"--b--\r\n");
    inputs.push(("50 MB message", fifty));

    let mut nested = String::from(header);
    nested.push_str("MIME-Version: 1.0\n");
    for i in 0..200 {
        let _ = write!(
            nested,
            "Content-Type: multipart/mixed; boundary=\"n{i}\"\n\n--n{i}\n"
        );
    }
    nested.push_str("Content-Type: text/plain\n\nName: X\nEmail: x@example.org\n");
    for i in (0..200).rev() {
        let _ = writeln!(nested, "--n{i}--");
    }
    inputs.push(("200 nested multiparts", crlf(&nested)));

    let mut rfc822 = String::from(header);
    for i in 0..200 {
        let _ = write!(
            rfc822,
            "Content-Type: message/rfc822\n\nFrom: Level {i} <l{i}@example.org>\nSubject: level {i}\n"
        );
    }
    rfc822.push_str("\nthe end\n");
    inputs.push(("200 nested message/rfc822", crlf(&rfc822)));

    let many_labels: String = (0..50_000)
        .map(|i| format!("Label {i}: value {i}\n"))
        .collect();
    inputs.push((
        "huge form",
        crlf(&format!(
            "From: noreply@forms.example\nTo: leads@company.com\nSubject: form\n\n{many_labels}"
        )),
    ));

    // Where the right answer is clear, check it, not just the absence of a panic.
    let expected = [
        ("empty", MessageKind::Ignored),
        ("whitespace", MessageKind::Ignored),
        ("missing From", MessageKind::Ignored),
        ("no headers", MessageKind::Ignored),
        ("truncated MIME", MessageKind::Inquiry),
        ("garbage charset", MessageKind::Inquiry),
        ("mbox From line", MessageKind::Inquiry),
        ("8-bit headers", MessageKind::Inquiry),
        ("NUL bytes", MessageKind::Inquiry),
        ("100 KB header line", MessageKind::Inquiry),
        ("30 MB base64 attachment", MessageKind::Inquiry),
        ("50 MB message", MessageKind::Inquiry),
        ("100 KB subject", MessageKind::Autoreply),
    ];
    for (what, raw) in inputs {
        let started = std::time::Instant::now();
        let c = classify(&raw, &rules);
        // Generous for an unoptimised build on a shared machine; a hang or a quadratic scan
        // takes minutes.
        let took = started.elapsed();
        assert!(took.as_secs() < 20, "{what}: took {took:?}");
        if let Some((_, kind)) = expected.iter().find(|(w, _)| *w == what) {
            assert_eq!(c.kind, *kind, "{what}: {:?}", c.evidence);
        }
        assert!(
            !c.evidence.is_empty() || c.reason.is_some(),
            "{what}: decision without evidence"
        );
        if c.kind == MessageKind::Ignored {
            assert!(c.reason.is_some(), "{what}: ignored without a reason");
        }
        if let Some(r) = &c.reason {
            assert!(!r.contains("internal error"), "{what}: {r}");
        }
    }
}

/// Truncated and corrupted copies of every fixture: a cheap, deterministic stand-in for
/// fuzzing that exercises the parsers on half-messages and flipped bytes.
#[test]
fn corrupted_fixtures_never_panic() {
    let rules = rules();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let raw = std::fs::read(&path).expect("fixture");
        let mut variants: Vec<Vec<u8>> =
            (1..8).map(|k| raw[..raw.len() * k / 8].to_vec()).collect();
        for _ in 0..8 {
            let mut v = raw.clone();
            for _ in 0..16 {
                let i = next() % v.len().max(1);
                if let Some(b) = v.get_mut(i) {
                    *b = (next() % 256) as u8;
                }
            }
            variants.push(v);
        }
        for v in variants {
            let c = classify(&v, &rules);
            assert!(
                c.reason
                    .as_deref()
                    .is_none_or(|r| !r.contains("internal error")),
                "{}: a corrupted copy hit an internal error",
                path.display()
            );
        }
    }
}

#[test]
fn forwards_keep_the_original_text_without_the_colleagues_note() {
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let inline = classify(&read("forward_gmail.eml"), &rules());
    assert_eq!(inline.kind, MessageKind::Forward);
    let text = inline.original_text.as_deref().unwrap_or_default();
    assert!(
        text.contains("please send a quote for 20 licences"),
        "{text:?}"
    );
    assert!(!text.contains("Can someone take this?"), "{text:?}");

    let attached = classify(&read("forward_attached.eml"), &rules());
    assert_eq!(attached.kind, MessageKind::Forward);
    let text = attached.original_text.unwrap_or_default();
    assert!(text.contains("shall we work together"), "{text:?}");

    let inquiry = classify(&read("inquiry_plain.eml"), &rules());
    assert_eq!(inquiry.original_text, None);
}
