//! The `leadloop` binary as users and scripts drive it.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{ConfigFile, leadloop, test_db};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The demo configuration pointed at a fresh database.
fn demo_config(dir: &Path, db_url: &str) -> PathBuf {
    ConfigFile::demo(dir, Path::new(env!("CARGO_MANIFEST_DIR")), db_url).write()
}

/// Under systemd the journal stamps every line, so leadloop leaves the time out of its own
/// text; but only when stderr really is the journal's stream, since `JOURNAL_STREAM` is also
/// inherited by children whose stderr went elsewhere.
#[tokio::test]
async fn log_lines_leave_the_time_to_the_journal() {
    use std::os::unix::fs::MetadataExt as _;
    let mut logs = Vec::new();
    for journal in [true, false] {
        let db = test_db().await;
        let dir = tempfile::tempdir().unwrap();
        let config = demo_config(dir.path(), &db.url);
        let log = dir.path().join("stderr");
        let file = std::fs::File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        // A stream that is not this file: another inode on the same device.
        let stream = format!("{}:{}", meta.dev(), meta.ino() + u64::from(!journal));
        let out = leadloop(&["run", "--once"])
            .config(&config)
            .log("info")
            .env("JOURNAL_STREAM", &stream)
            .stderr_to(file)
            .output();
        assert!(out.status.success(), "{}", stdout(&out));
        logs.push(std::fs::read_to_string(&log).unwrap());
    }
    let stamped = |line: &str| line.trim_start().starts_with(|c: char| c.is_ascii_digit());
    let (journal, elsewhere) = (&logs[0], &logs[1]);
    assert!(journal.contains("INFO"), "{journal}");
    assert!(!journal.lines().any(stamped), "{journal}");
    assert!(elsewhere.contains("INFO"), "{elsewhere}");
    assert!(elsewhere.lines().all(stamped), "{elsewhere}");
}

/// The shipped unit passes `systemd-analyze verify` and rates at most 2.0 in `systemd-analyze
/// security`, and keeps what the daemon relies on: readiness, the watchdog and credentials.
/// Where systemd's tools are not installed the test says SKIPPED.
#[test]
fn the_shipped_unit_verifies_and_is_hardened() {
    let unit = repo("config/systemd/leadloop.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for kept in [
        "Type=notify",
        "WatchdogSec=",
        "LoadCredential=imap-password:",
        "LoadCredential=smtp-password:",
        "DynamicUser=yes",
        "ExecStart=/usr/bin/leadloop run",
    ] {
        assert!(text.contains(kept), "the unit lost {kept}");
    }
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    // `verify` wants the programs where the unit names them: the test build stands in.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("leadloop.service");
    std::fs::write(
        &copy,
        text.replace("/usr/bin/leadloop", env!("CARGO_BIN_EXE_leadloop")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for leadloop.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(exposure <= 2.0, "exposure {exposure}: {report}");
}

#[test]
fn shipped_configurations_pass_check() {
    let out = leadloop(&[
        "check",
        "--config",
        repo("config/leadloop.toml").to_str().unwrap(),
    ])
    .output();
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // The production example names systemd credentials. Run by hand (as after installing the
    // package) they cannot be read and are left to the service, with a note per password.
    let production = repo("config/production.example.toml");
    let check = |credentials: Option<&Path>| {
        let mut run = leadloop(&["check"]).config(&production);
        if let Some(dir) = credentials {
            run = run.env("CREDENTIALS_DIRECTORY", dir.to_str().unwrap());
        }
        run.output()
    };
    let out = check(None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, key) in lines.iter().zip(["imap.password", "smtp.password"]) {
        assert!(line.contains(key) && line.contains("note:"), "{text}");
    }
    assert!(lines[2].contains(": ok ("), "{text}");
    // Inside the service ($CREDENTIALS_DIRECTORY set) a missing credential is a problem.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imap-password"), "secret\n").unwrap();
    let out = check(Some(dir.path()));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("smtp.password") && text.contains("smtp-password"),
        "{text}"
    );
    std::fs::write(dir.path().join("smtp-password"), "secret\n").unwrap();
    let out = check(Some(dir.path()));
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn check_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"sqlite://x.db\"\n\n[imap]\nhost = \"mail.example.com\"\ntls = \"none\"\nuser = \"leads@company.com\"\npassword = \"s3cret-value\"\nafter = \"trash\"\n",
    )
    .unwrap();
    let out = leadloop(&["check", "--config", path.to_str().unwrap()]).output();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let file = path.display().to_string();
    assert!(text.contains(&format!("{file}:6:7: imap.tls:")), "{text}");
    assert!(
        text.contains(&format!("{file}:8:12: imap.password:")),
        "{text}"
    );
    assert!(text.contains(&format!("{file}:9:9: imap.after:")), "{text}");
    assert!(
        !text.contains("s3cret-value"),
        "a secret was printed: {text}"
    );

    std::fs::write(
        &path,
        "[database]\nurl = \"sqlite://x.db\"\nmax_conections = 3\n",
    )
    .unwrap();
    let text = stdout(&leadloop(&["check", "--config", path.to_str().unwrap()]).output());
    assert!(
        text.contains(":3:1: max_conections: unknown field"),
        "{text}"
    );
}

#[test]
fn classify_explain_lays_out_the_decision_and_its_rules() {
    let bounce = repo("tests/fixtures/bounce_exim_text.eml");
    let form = repo("tests/fixtures/form_elementor.eml");
    let out = leadloop(&[
        "classify",
        "--explain",
        "--config",
        repo("config/leadloop.toml").to_str().unwrap(),
        bounce.to_str().unwrap(),
        form.to_str().unwrap(),
    ])
    .output();
    assert!(out.status.success());
    let text = stdout(&out);
    let (first, second) = text
        .split_once(&form.display().to_string())
        .expect("one block per file");
    assert!(first.contains("kind:        bounce"), "{first}");
    assert!(
        first.contains("bounce:      maria.lopez@exim-host.example hard (status 5.1.1)"),
        "{first}"
    );
    assert!(first.contains("because:\n    1. "), "{first}");
    assert!(second.contains("kind:        form"), "{second}");
    assert!(second.contains("lead:        kenji.sato@sato-foods.example (Kenji Sato)"));
    assert!(second.contains("utm_source: linkedin"), "{second}");
    assert!(
        second.contains("built-in form profile 'elementor'"),
        "{second}"
    );
    // --json and --explain are two views; asking for both is an error, not a guess.
    let both = leadloop(&["classify", "--json", "--explain", form.to_str().unwrap()]).output();
    assert!(!both.status.success());
}

#[test]
fn classify_json_prints_one_line_per_file_even_for_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.eml");
    std::fs::write(&garbage, b"\xff\xfe\x00\x00 not a message\r\n\r\n\x00").unwrap();
    let missing = dir.path().join("missing.eml");
    let inquiry = repo("config/demo/inbox/cur/1764230400.M1P100.demo:2,");
    let out = leadloop(&[
        "classify",
        "--json",
        "--config",
        repo("config/leadloop.toml").to_str().unwrap(),
        inquiry.to_str().unwrap(),
        garbage.to_str().unwrap(),
        missing.to_str().unwrap(),
    ])
    .output();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, file) in lines.iter().zip([&inquiry, &garbage, &missing]) {
        assert_eq!(line["file"], file.display().to_string());
        for key in [
            "kind",
            "lead",
            "fields",
            "channel",
            "bounce",
            "return_date",
            "reason",
            "evidence",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert_eq!(lines[0]["kind"], "inquiry");
    assert_eq!(
        lines[0]["lead"]["email"],
        "maria.keller@brightfield-logistics.de"
    );
    assert_eq!(lines[0]["lead"]["name"], "Maria Keller");
    assert_eq!(lines[2]["kind"], "ignored");
    assert!(lines[2]["reason"].as_str().unwrap().contains("cannot read"));
}

#[tokio::test]
async fn the_demo_runs_end_to_end() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &db.url);
    let config = config.to_str().unwrap();

    let out = leadloop(&["run", "--once", "--config", config]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).starts_with("6 messages read, 6 recorded"),
        "{}",
        stdout(&out)
    );

    let out = leadloop(&["leads", "list", "--json", "--config", config]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leads: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut got: Vec<(String, String)> = leads
        .iter()
        .map(|l| {
            (
                l["email"].as_str().unwrap().to_owned(),
                l["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "maria.keller@brightfield-logistics.de".to_owned(),
                "direct".to_owned()
            ),
            ("priya.nair@quantaworks.io".to_owned(), "direct".to_owned()),
            (
                "sam.ortiz@helio-energy.com".to_owned(),
                "webinar".to_owned()
            ),
            (
                "tom.baker@northwind-retail.co.uk".to_owned(),
                "linkedin".to_owned()
            ),
        ]
    );
    for l in &leads {
        for key in ["email", "name", "channel", "status", "created_at"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }

    // Running again records nothing twice.
    let out = leadloop(&["run", "--once", "--config", config]).output();
    assert!(
        stdout(&out).starts_with("6 messages read, 0 recorded, 6 already recorded"),
        "{}",
        stdout(&out)
    );

    let out = leadloop(&[
        "leads",
        "show",
        "priya.nair@quantaworks.io",
        "--config",
        config,
    ])
    .output();
    let text = stdout(&out);
    assert!(text.contains("owner    jonas@company.com"), "{text}");
    assert!(text.contains("forward"), "{text}");
    let out = leadloop(&["leads", "show", "nobody@example.com", "--config", config]).output();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn sequences_are_checked_previewed_simulated_and_enrolled_by_hand() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &db.url);
    let config = config.to_str().unwrap();

    // A broken sequence file: check names the file, line, column and key.
    let seqs = dir.path().join("sequences");
    std::fs::create_dir_all(&seqs).unwrap();
    std::fs::copy(
        repo("config/sequences/welcome.toml"),
        seqs.join("welcome.toml"),
    )
    .unwrap();
    std::fs::write(
        seqs.join("trial.toml"),
        "[enroll]\nmanual = true\n\n[[step]]\nid = \"one\"\ndelay = \"2 fortnights\"\ntemplate = \"nope\"\nsubject = \"x\"\n",
    )
    .unwrap();
    let broken_dir = dir.path().join("broken.toml");
    std::fs::write(
        &broken_dir,
        std::fs::read_to_string(config).unwrap().replace(
            &repo("config/sequences").display().to_string(),
            &seqs.display().to_string(),
        ),
    )
    .unwrap();
    let out = leadloop(&["check", "--config", broken_dir.to_str().unwrap()]).output();
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("trial.toml:6:9: step[0].delay: '2 fortnights' is not a delay"),
        "{text}"
    );

    // Preview against the sample lead shows the headers leadloop adds.
    let out = leadloop(&[
        "preview", "welcome", "--step", "welcome", "--sample", "--config", config,
    ])
    .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for want in [
        "Subject: Thanks for getting in touch, Sam",
        "List-Unsubscribe: <mailto:leads+unsubscribe-preview@company.com",
        "--- text ---",
        "--- html ---",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }

    // Simulate from a Friday evening with office-hours windows: the first step waits for
    // Monday morning in Berlin.
    let windowed = dir.path().join("windowed.toml");
    std::fs::write(
        &windowed,
        std::fs::read_to_string(config)
            .unwrap()
            .replace("windows = []", "windows = [\"* 9-16 * * Mon-Fri\"]"),
    )
    .unwrap();
    let out = leadloop(&[
        "simulate",
        "welcome",
        "--sample",
        "--from",
        "2026-11-27 21:00",
        "--config",
        windowed.to_str().unwrap(),
    ])
    .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("waits until Mon 2026-11-30 09:00 CET (outside the send window)"),
        "{text}"
    );

    // By hand: the demo's leads are enrolled by ingest; unenroll and enroll again.
    let out = leadloop(&["run", "--once", "--config", config]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lead = "tom.baker@northwind-retail.co.uk";
    let out = leadloop(&["enroll", lead, "welcome", "--config", config]).output();
    assert!(!out.status.success(), "already in it");
    let out = leadloop(&["unenroll", lead, "--config", config]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = leadloop(&["enroll", lead, "welcome", "--config", config]).output();
    assert!(
        !out.status.success(),
        "reenter = false: a lead goes through once"
    );
    let out = leadloop(&[
        "enroll",
        "nobody@example.org",
        "welcome",
        "--config",
        config,
    ])
    .output();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lead with address"));
    let out = leadloop(&["leads", "show", lead, "--config", config]).output();
    assert!(stdout(&out).contains("enrolled"), "{}", stdout(&out));

    // A test send of one step, through the demo's file transport.
    let out = leadloop(&[
        "send-test",
        "welcome",
        "--step",
        "offer",
        "--to",
        "me@example.org",
        "--config",
        config,
    ])
    .output();
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains("me@example.org"))
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains("Subject: A month free for Example Corp"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("From: \"Anna from Company\" <anna@company.com>"));
}

/// `leadloop backup FILE` copies a SQLite database in use; a configuration pointed at the
/// copy lists the same leads. On PostgreSQL it says to use pg_dump, and exits 2.
#[tokio::test]
async fn backup_copies_the_database_and_the_copy_restores() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &db.url);
    let run = |config: &Path, args: &[&str]| {
        let mut all = args.to_vec();
        let c = config.to_str().unwrap().to_owned();
        all.extend(["--config", &c]);
        leadloop(&all).output()
    };
    let out = run(&config, &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = stdout(&run(&config, &["leads", "list"]));
    let copy = dir.path().join("backup.db");
    let out = run(&config, &["backup", copy.to_str().unwrap()]);
    if db.url.starts_with("postgres") {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
        assert!(!copy.exists());
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("database copied to"));
    // A second backup to the same file is refused, and the copy is left as it was.
    let again = run(&config, &["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    // Restored: a configuration on the copy sees the same leads.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = demo_config(
        restored_dir.path(),
        &format!("sqlite://{}?mode=rw", copy.display()),
    );
    let after = stdout(&run(&restored, &["leads", "list"]));
    assert_eq!(after, before);
    assert!(before.lines().count() > 1, "{before}");
}

/// One `check` shows every mistake it can: a problem in leadloop.toml no longer hides those
/// of the sequence files, and neither does a file that is not even valid TOML.
#[test]
fn check_reports_leadloop_toml_and_sequence_problems_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let config = demo_config(dir.path(), &db);
    let seqs = dir.path().join("sequences");
    std::fs::create_dir_all(&seqs).unwrap();
    std::fs::copy(
        repo("config/sequences/welcome.toml"),
        seqs.join("welcome.toml"),
    )
    .unwrap();
    std::fs::write(
        seqs.join("trial.toml"),
        "[enroll]\nmanual = true\n\n[[step]]\nid = \"one\"\ndelay = \"2 fortnights\"\ntemplate = \"welcome\"\nsubject = \"x\"\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &repo("config/sequences").display().to_string(),
        &seqs.display().to_string(),
    );
    let delay = "trial.toml:6:9: step[0].delay: '2 fortnights' is not a delay";
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = leadloop(&["check", "--config", path.to_str().unwrap()]).output();
        assert_eq!(out.status.code(), Some(1));
        (path.display().to_string(), stdout(&out))
    };

    // A value leadloop.toml's own checks refuse.
    let zone = "timezone = \"Europe/Berlin\"";
    assert!(text.contains(zone));
    let (file, out) = check(
        "zone.toml",
        &text.replace(zone, "timezone = \"Mars/Olympus\""),
    );
    let line = text.lines().position(|l| l.starts_with(zone)).unwrap() + 1;
    assert!(
        out.contains(&format!(
            "{file}:{line}:12: policy.timezone: 'Mars/Olympus'"
        )),
        "{out}"
    );
    assert!(out.contains(delay), "{out}");
    // leadloop.toml's problems come first.
    assert!(out.find("policy.timezone").unwrap() < out.find(delay).unwrap());

    // A key serde refuses, and a file that is not TOML: the sequence files are still read.
    let poll = "poll_interval = \"10s\"";
    assert!(text.contains(poll));
    for (name, bad, key) in [
        ("unknown.toml", "poll_intervall = \"10s\"", "poll_intervall"),
        ("syntax.toml", "poll_interval = 10s", "10s"),
    ] {
        let (file, out) = check(name, &text.replace(poll, bad));
        let line = text.lines().position(|l| l.starts_with(poll)).unwrap() + 1;
        assert!(out.contains(&format!("{file}:{line}:")), "{out}");
        assert!(out.contains(&format!(": {key}: ")), "{out}");
        assert!(out.contains(delay), "{name}: {out}");
    }

    // Without a [sequences] table there is nothing more to read.
    let (_, out) = check(
        "nosequences.toml",
        "[database]\nurl = \"sqlite://x.db\"\nmax_conections = 3\n",
    );
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A lead that is not there is an error like any other: `error:` on stderr, exit code 1,
/// nothing on stdout.
#[tokio::test]
async fn an_unknown_lead_is_an_error_everywhere() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &db.url);
    let config = config.to_str().unwrap();
    let nobody = "nobody@example.org";
    for args in [
        &["leads", "show", nobody][..],
        &["leads", "show", nobody, "--json"],
        &["leads", "verdict", nobody, "qualified"],
        &["leads", "approve", nobody],
        &["leads", "status", nobody, "new"],
        &["score", "--explain", nobody],
        &["simulate", "welcome", "--lead", nobody],
    ] {
        let mut all = args.to_vec();
        all.extend(["--config", config]);
        let out = leadloop(&all).output();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines()
                .any(|l| l == format!("error: no lead with address {nobody}")),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

/// `leads show` gives times in the team's zone and says which; its timeline names the
/// sequence a lead entered and the sequence and step of what was sent to it. `simulate` for
/// a lead that has left the sequence says the plan is a fresh enrollment.
#[tokio::test]
async fn leads_show_and_simulate_say_what_a_new_user_asked() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &db.url);
    let config = config.to_str().unwrap();
    let out = leadloop(&["run", "--once", "--config", config]).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lead = "tom.baker@northwind-retail.co.uk";
    let text = stdout(&leadloop(&["leads", "show", lead, "--config", config]).output());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "  (times in Europe/Berlin)", "{text}");
    let timeline: Vec<&str> = lines
        .iter()
        .skip_while(|l| l.trim() != "timeline:")
        .skip(1)
        .map(|l| l.trim())
        .collect();
    let row = |kind: &str| {
        timeline
            .iter()
            .find(|l| l.split("  ").nth(1).map(str::trim) == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} row: {text}"))
            .split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("enrolled")[2], "welcome (by ingest)", "{text}");
    assert_eq!(row("sent")[2], "welcome/welcome", "{text}");

    // The times are the JSON's, in Berlin.
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &leadloop(&["leads", "show", lead, "--json", "--config", config]).output(),
    ))
    .unwrap();
    let sent = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "sent")
        .unwrap();
    assert_eq!(sent["detail"]["step_id"], "welcome");
    let at = chrono::DateTime::parse_from_rfc3339(sent["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        row("sent")[0],
        at.format("%Y-%m-%d %H:%M:%S").to_string(),
        "{text}"
    );

    // Still in the sequence: the plan needs no note.
    let simulate =
        || stdout(&leadloop(&["simulate", "welcome", "--lead", lead, "--config", config]).output());
    assert!(simulate().starts_with("welcome for "), "{}", simulate());
    let out = leadloop(&["unenroll", lead, "--config", config]).output();
    assert!(out.status.success());
    let text = simulate();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("note: {lead} left welcome on ")),
        "{text}"
    );
    assert!(
        first.ends_with(
            "(unenrolled by hand); this plans a fresh enrollment, which the sequence's reenter setting does not allow"
        ),
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().starts_with("welcome for "),
        "{text}"
    );
    // As JSON the plan stays one document; the note goes to stderr.
    let out = leadloop(&[
        "simulate", "welcome", "--lead", lead, "--format", "json", "--config", config,
    ])
    .output();
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows[0]["step"], "welcome", "{rows:?}");
    assert!(rows[0]["utc"].as_str().unwrap().ends_with('Z'), "{rows:?}");
    assert_eq!(rows.last().unwrap()["what"], "done", "{rows:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: "));
}
