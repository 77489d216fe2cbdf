//! Lead scoring end to end through the binary: `[[score]]` rules score a lead as its messages
//! arrive, `min_score` enrollment sees the score of the message that made the lead, a reply
//! lifts the score over `[handoff] min_score` and Sales gets the lead with the reasons, and
//! `leadloop score --explain` adds it up.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{ConfigFile, TestDb, run_cli, test_db};

const RULES: &str = "\
[[score]]
when = \"fields.budget | int >= 10000\"
points = 20
reason = \"budget of 10k or more\"

[[score]]
when = \"replied\"
points = 25
reason = \"replied to our mail\"

[[score]]
when = \"lead.domain is endingwith('.edu')\"
points = -10
reason = \"education\"
";

fn config(dir: &Path, db: &TestDb, rules: &str) -> PathBuf {
    ConfigFile::new(dir, &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &[
                (
                    "welcome",
                    "[enroll]\nkinds = [\"inquiry\", \"form\"]\n\n\
                     [exit]\non_reply = false\n\n\
                     [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Welcome\"\n",
                ),
                (
                    "premium",
                    "[enroll]\nkinds = [\"inquiry\", \"form\"]\nmin_score = 20\n\n\
                     [[step]]\nid = \"p\"\ndelay = \"1d\"\ntemplate = \"a\"\nsubject = \"For you\"\n",
                ),
            ],
            &[("a.txt", "Hello {{ lead.first_name }}.\n")],
        )
        .raw(&format!(
            "[handoff]\non_reply = false\nmin_score = 40\ndefault_owner = \"sales@company.com\"\n\n{rules}"
        ))
        .write()
}

fn deliver(dir: &Path, name: &str, text: &str) {
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    std::fs::write(dir.join("inbox/new").join(format!("{name}.eml")), text).unwrap();
}

fn show(config: &Path, email: &str) -> Value {
    let (code, out) = run_cli(config, &["leads", "show", email, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn sequences(lead: &Value) -> Vec<String> {
    let mut s: Vec<String> = lead["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

fn reasons(lead: &Value) -> Vec<(String, i64)> {
    lead["score_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_owned(),
                r["points"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The outbox files (the file transport) whose text contains `needle`.
fn mail_containing(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir.join("outbox"))
        .map(|rd| {
            rd.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .filter(|m| m.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn scores_add_up_gate_enrollment_and_hand_off() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &db, RULES);
    let date = chrono::Utc::now().to_rfc2822();
    deliver(
        d,
        "form",
        &format!(
            "From: Website <forms@company-site.example>\nTo: leads@company.com\n\
             Reply-To: Ada Park <ada@park-industries.example>\nSubject: New submission: Quote\n\
             Date: {date}\nMessage-ID: <f1@company-site.example>\n\n\
             Name: Ada Park\nEmail: ada@park-industries.example\nBudget: 50000\nMessage: A quote please.\n"
        ),
    );
    deliver(
        d,
        "inquiry",
        &format!(
            "From: Ben Holt <ben@state-college.edu>\nTo: leads@company.com\nSubject: Licences\n\
             Date: {date}\nMessage-ID: <i1@state-college.edu>\n\nDo you have student licences?\n"
        ),
    );
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");

    let ada = show(&config, "ada@park-industries.example");
    assert_eq!(ada["score"], 20, "{ada}");
    assert_eq!(reasons(&ada), [("budget of 10k or more".to_owned(), 20)]);
    // The score of the message that made the lead already counted for `min_score = 20`.
    assert_eq!(sequences(&ada), ["premium", "welcome"]);
    let ben = show(&config, "ben@state-college.edu");
    assert_eq!(ben["score"], -10, "{ben}");
    assert_eq!(sequences(&ben), ["welcome"]);
    assert!(mail_containing(d, "sales@company.com").is_empty());

    // Ada answers our welcome: 20 + 25 = 45 reaches `[handoff] min_score = 40`.
    let welcome = mail_containing(d, "ada@park-industries.example");
    assert_eq!(welcome.len(), 1, "{welcome:?}");
    let our_id = welcome[0]
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("our Message-ID")
        .trim()
        .to_owned();
    deliver(
        d,
        "reply",
        &format!(
            "From: Ada Park <ada@park-industries.example>\nTo: hello@company.com\nSubject: Re: Welcome\n\
             Date: {date}\nMessage-ID: <r1@park-industries.example>\nIn-Reply-To: {our_id}\n\
             References: {our_id}\n\nYes, call me on Monday.\n"
        ),
    );
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    let ada = show(&config, "ada@park-industries.example");
    assert_eq!(ada["score"], 45, "{ada}");
    assert_eq!(
        reasons(&ada),
        [
            ("budget of 10k or more".to_owned(), 20),
            ("replied to our mail".to_owned(), 25)
        ]
    );
    let handoff = mail_containing(d, "sales@company.com");
    assert_eq!(handoff.len(), 1, "one hand-off: {handoff:?}");
    assert!(handoff[0].contains("scored 45"), "{}", handoff[0]);

    // Once over the line, the next change does not hand it off again.
    let (code, _) = run_cli(
        &config,
        &[
            "leads",
            "verdict",
            "ada@park-industries.example",
            "qualified",
        ],
    );
    assert_eq!(code, 0);
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mail_containing(d, "sales@company.com").len(), 1);

    let (code, out) = run_cli(
        &config,
        &["score", "--explain", "ada@park-industries.example"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("score 45"), "{out}");
    assert!(out.contains("+20  budget of 10k or more"), "{out}");
    assert!(out.contains("+25  replied to our mail"), "{out}");
    assert!(out.contains("education (does not hold"), "{out}");
    let (code, out) = run_cli(
        &config,
        &["score", "--explain", "ben@state-college.edu", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["score"], -10);
    assert_eq!(v["rules"].as_array().unwrap().len(), 3);
    assert_eq!(v["rules"][2]["holds"], true);
}

/// Rules are checked with the rest of the file, and scores follow edited rules on
/// `score --recompute`.
#[tokio::test]
async fn rules_are_checked_and_recomputed() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = config(
        d,
        &db,
        "[[score]]\nwhen = \"fields.budget >=\"\npoints = 5\n\n[[score]]\nwhen = \"replied\"\npoints = 5\ndecay_per_week = -1\n",
    );
    let (code, out) = run_cli(&bad, &["check"]);
    assert_ne!(code, 0);
    assert!(out.contains("score[0].when"), "{out}");
    assert!(out.contains("score[1].decay_per_week"), "{out}");

    let config = config(d, &db, RULES);
    let date = chrono::Utc::now().to_rfc2822();
    deliver(
        d,
        "inquiry",
        &format!(
            "From: Ben Holt <ben@state-college.edu>\nTo: leads@company.com\nSubject: Licences\n\
             Date: {date}\nMessage-ID: <i2@state-college.edu>\n\nStudent licences?\n"
        ),
    );
    let (code, out) = run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(show(&config, "ben@state-college.edu")["score"], -10);
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("points = -10", "points = -30");
    std::fs::write(&config, edited).unwrap();
    let (code, out) = run_cli(&config, &["score", "--recompute"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 scores changed"), "{out}");
    assert_eq!(show(&config, "ben@state-college.edu")["score"], -30);
}
