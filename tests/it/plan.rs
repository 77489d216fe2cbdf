//! `leadloop plan`: an edit of the sequence files measured against the leads already in them,
//! through the binary, on a history made by the daemon itself (`run --once` over a Maildir,
//! steps written to files). The edit has one change of each kind: a reworded step, a removed
//! step, a new step, a new exit rule, a step whose template fails for real leads but not for
//! the sample lead `check` tries, and a removed sequence.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{ConfigFile, TestDb, run_cli, test_db};

const WELCOME_V1: &str = "[enroll]\nkinds = [\"inquiry\"]\n\n\
    [[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Welcome\"\n\n\
    [[step]]\nid = \"offer\"\ndelay = \"2d\"\ntemplate = \"plain\"\nsubject = \"An offer\"\n\n\
    [[step]]\nid = \"case-study\"\ndelay = \"5d\"\ntemplate = \"plain\"\nsubject = \"A case study\"\n";

const WELCOME_V2: &str = "[enroll]\nkinds = [\"inquiry\"]\n\n\
    [exit]\non_status = [\"customer\"]\n\n\
    [[step]]\nid = \"hello\"\ndelay = \"0m\"\ntemplate = \"hello\"\nsubject = \"Welcome, and thank you\"\n\n\
    [[step]]\nid = \"webinar\"\ndelay = \"1d\"\ntemplate = \"plain\"\nsubject = \"Join our webinar\"\n\n\
    [[step]]\nid = \"case-study\"\ndelay = \"5d\"\ntemplate = \"plain\"\nsubject = \"A case study\"\n\n\
    [[step]]\nid = \"survey\"\ndelay = \"20d\"\ntemplate = \"survey\"\nsubject = \"Two questions\"\n";

const TRIAL: &str = "[enroll]\nmanual = true\n\n\
    [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"plain\"\nsubject = \"Your trial\"\n\n\
    [[step]]\nid = \"b\"\ndelay = \"3d\"\ntemplate = \"plain\"\nsubject = \"Your trial, day 3\"\n";

/// Fine for the sample lead (it has a form), undefined `fields.budget` for leads without one.
const SURVEY: &str =
    "{% if lead.form %}Thanks for the form.{% else %}Your budget: {{ fields.budget }}{% endif %}\n";

fn config(dir: &Path, db: &TestDb, welcome: &str, trial: Option<&str>) -> PathBuf {
    let mut sequences = vec![("welcome", welcome)];
    if let Some(t) = trial {
        sequences.push(("trial", t));
    }
    ConfigFile::new(dir, &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &sequences,
            &[
                ("hello.txt", "Hello {{ lead.first_name }}.\n"),
                ("plain.txt", "Hello again.\n"),
                ("survey.txt", SURVEY),
            ],
        )
        .write()
}

fn deliver(dir: &Path, n: &str) {
    let text = format!(
        "From: {n} <{n}@example.org>\r\nTo: leads@company.com\r\nSubject: A question\r\n\
         Message-ID: <{n}-q@example.org>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\n\
         Could you send me a quote?\r\n"
    );
    std::fs::write(dir.join("inbox/new").join(format!("{n}.eml")), text).unwrap();
}

fn plan(config: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let (code, out) = run_cli(config, &args);
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, v)
}

fn sequence<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {plan}"))
}

/// `[[before, after, leads]]`, sorted.
fn next(s: &Value) -> Vec<(String, String, u64)> {
    let mut v: Vec<_> = s["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["before"].as_str().unwrap().to_owned(),
                n["after"].as_str().unwrap().to_owned(),
                n["leads"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_what_an_edit_does_to_enrolled_leads() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let running = config(dir.path(), &db, WELCOME_V1, Some(TRIAL));
    // A copy of the running configuration elsewhere, for --against.
    let copy = tempfile::tempdir().unwrap();
    let against = config(copy.path(), &db, WELCOME_V1, Some(TRIAL));

    // Before any daemon ran, there is nothing to compare with.
    let (code, out) = run_cli(&running, &["plan"]);
    assert_eq!(code, 1, "{out}");

    for n in ["ana", "bob", "cy"] {
        deliver(dir.path(), n);
    }
    let (code, out) = run_cli(&running, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 sequence steps enqueued"), "{out}");
    let (code, out) = run_cli(&running, &["enroll", "ana@example.org", "trial"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&running, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");

    // Nothing edited yet: no change for anyone.
    let (code, v) = plan(&running, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["changes"], false, "{v}");
    assert_eq!(v["against"], "running", "{v}");
    assert_eq!(sequence(&v, "welcome")["status"], "unchanged", "{v}");
    assert_eq!(
        next(sequence(&v, "welcome")),
        [("offer".into(), "offer".into(), 3)]
    );
    let (_, text) = run_cli(&running, &["plan"]);
    assert!(text.contains("no change for any lead"), "{text}");

    // cy becomes a customer; the edit makes customers leave welcome.
    let (code, out) = run_cli(
        &running,
        &["leads", "verdict", "cy@example.org", "customer"],
    );
    assert_eq!(code, 0, "{out}");

    // The edit, in place, as someone editing the files in git would do before a reload.
    let seq_dir = dir.path().join("sequences");
    std::fs::write(seq_dir.join("welcome.toml"), WELCOME_V2).unwrap();
    std::fs::remove_file(seq_dir.join("trial.toml")).unwrap();
    let (code, out) = run_cli(&running, &["check"]);
    assert_eq!(code, 0, "the sample lead passes the edited files: {out}");

    for (code, v) in [
        plan(&running, &[]),
        plan(&running, &["--against", against.to_str().unwrap()]),
    ] {
        assert_eq!(code, 1, "a step fails for real leads: {v}");
        assert_eq!(v["changes"], true, "{v}");
        let welcome = sequence(&v, "welcome");
        assert_eq!(welcome["status"], "changed", "{v}");
        assert_eq!(welcome["open"], 3, "{v}");
        assert_eq!(
            next(welcome),
            [
                ("offer".into(), "(leaves)".into(), 1),
                ("offer".into(), "webinar".into(), 2)
            ],
            "{v}"
        );
        let never: Vec<(&str, u64, bool)> = welcome["never_sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["step"].as_str().unwrap(),
                    s["leads"].as_u64().unwrap(),
                    s["removed"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(never, [("case-study", 1, false), ("offer", 3, true)], "{v}");
        let new = &welcome["new_steps"].as_array().unwrap();
        assert_eq!(new.len(), 1, "{v}");
        assert_eq!(new[0]["step"], "webinar");
        assert_eq!(new[0]["leads"], 2);
        // A day after the welcome went out, which was today.
        let first: chrono::DateTime<chrono::Utc> =
            new[0]["first_at"].as_str().unwrap().parse().unwrap();
        let in_hours = (first - chrono::Utc::now()).num_hours();
        assert!((20..=24).contains(&in_hours), "{first}");
        assert_eq!(welcome["leaving"][0]["leads"], 1, "{v}");
        assert!(
            welcome["leaving"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("customer"),
            "{v}"
        );
        let errors = welcome["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(errors[0]["leads"], 2);
        assert!(
            errors[0]["error"].as_str().unwrap().contains("survey"),
            "{v}"
        );
        let mut examples: Vec<&str> = errors[0]["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        examples.sort_unstable();
        assert_eq!(examples, ["ana@example.org", "bob@example.org"]);

        let trial = sequence(&v, "trial");
        assert_eq!(trial["status"], "removed", "{v}");
        // ana's trial step waits for the per-lead pace, after today's welcome.
        let trial_next = next(trial);
        assert_eq!(trial_next.len(), 1, "{v}");
        assert_eq!(
            (trial_next[0].1.as_str(), trial_next[0].2),
            ("(held)", 1),
            "{v}"
        );
        let gone = trial["never_sent"].as_array().unwrap();
        assert!(
            gone.iter()
                .any(|s| s["step"] == "b" && s["removed"] == true),
            "{v}"
        );
        assert!(
            trial["errors"][0]["error"]
                .as_str()
                .unwrap()
                .contains("not in the configuration"),
            "{v}"
        );
    }
    let (code, text) = run_cli(&running, &["plan"]);
    eprintln!("{text}");
    assert_eq!(code, 1);
    assert!(
        text.contains("never sent: offer to 3 leads (removed from the file)"),
        "{text}"
    );
    assert!(
        text.contains("new step: webinar to 2 leads, the first"),
        "{text}"
    );

    // Plan changed nothing: the leads' next steps are as they were.
    let (_, out) = run_cli(&running, &["leads", "show", "bob@example.org", "--json"]);
    assert!(out.contains("offer"), "{out}");
}
