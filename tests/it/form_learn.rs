//! `leadloop form learn`: a profile learned from one notification, pasted into the
//! configuration as printed, passes `check`, wins in `check --sample`, makes `classify` read
//! the notification as that form with the submitter as lead, and makes the daemon record the
//! submitter as a lead of that form.

use std::path::{Path, PathBuf};

use crate::support::{ConfigFile, leadloop, run_cli, test_db};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One template per style, with the submitter its notification names and the company and
/// phone the learned labels must find.
struct Sample {
    file: &'static str,
    lead: &'static str,
    company: Option<&'static str>,
    phone: Option<&'static str>,
}

const SAMPLES: &[Sample] = &[
    // Plain `Label: value` lines, from the site's own mailer.
    Sample {
        file: "form_learn_plain.eml",
        lead: "olivia.bennett@bennett-farms.example",
        company: Some("Bennett Farms Ltd"),
        phone: Some("+44 1632 960418"),
    },
    // An HTML table only, from an address no list calls a machine's.
    Sample {
        file: "form_learn_html_table.eml",
        lead: "marcus.lindgren@lindgren-bygg.example",
        company: Some("Lindgren Bygg AB"),
        phone: Some("+46 70 123 45 67"),
    },
    // Each value on the line below its label.
    Sample {
        file: "form_learn_next_line.eml",
        lead: "hannah.okafor@okafor-consulting.example",
        company: Some("Okafor Consulting"),
        phone: None,
    },
    // French labels (`Adresse électronique`, `Numéro de portable`).
    Sample {
        file: "form_learn_french.eml",
        lead: "elodie.marchand@marchand-archi.example",
        company: Some("Marchand Architectes"),
        phone: Some("06 12 34 56 78"),
    },
    // Spanish labels, sent from the visitor's own address.
    Sample {
        file: "form_learn_es_visitor.eml",
        lead: "lucia.ortega@ortega-viajes.example",
        company: Some("Ortega Viajes S.L."),
        phone: Some("612 345 678"),
    },
];

/// The value of `name = "…"` in the printed `[[form]]`.
fn profile_name(printed: &str) -> String {
    let doc: toml::Table = toml::from_str(printed).expect("the printed profile is TOML");
    doc["form"][0]["name"]
        .as_str()
        .expect("the profile has a name")
        .to_owned()
}

#[tokio::test]
async fn learned_profiles_load_win_and_make_each_sample_a_form_of_that_name() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let base = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let base_text = std::fs::read_to_string(&base).unwrap();
    let mut config_text = base_text.clone();
    // Without --sample, check says what it always said: one line.
    let (code, out) = run_cli(&base, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(": ok (0 channel rules, 0 form profiles"),
        "{out}"
    );
    let mut names = Vec::new();
    for s in SAMPLES {
        let sample = fixture(s.file);
        let sample = sample.to_str().unwrap();
        // Without the profile, no configured profile reads it.
        let (code, out) = run_cli(&base, &["check", "--sample", sample]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(": no form profile") || out.contains("built-in"),
            "{out}"
        );

        let (code, printed) = run_cli(&base, &["form", "learn", sample]);
        assert_eq!(code, 0, "{}: {printed}", s.file);
        assert!(printed.starts_with("# "), "a commented header: {printed}");
        assert!(
            printed.contains(&format!("#   lead:    \"{}\"", s.lead)),
            "{printed}"
        );
        let name = profile_name(&printed);

        // Pasted alone into the configuration: it loads and it wins.
        let alone = dir.path().join(format!("{name}.toml"));
        std::fs::write(&alone, format!("{base_text}\n{printed}")).unwrap();
        let (code, out) = run_cli(&alone, &["check", "--sample", sample]);
        assert_eq!(code, 0, "{}:\n{printed}\n{out}", s.file);
        assert!(
            out.contains(": ok (0 channel rules, 1 form profiles"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "{sample}: [[form]] '{name}' wins; submitter {}",
                s.lead
            )),
            "{out}"
        );

        let (code, out) = run_cli(&alone, &["classify", "--json", sample]);
        assert_eq!(code, 0);
        let c: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
        assert_eq!(c["kind"], "form", "{}: {c}", s.file);
        assert_eq!(c["form"], name.as_str(), "{}: {c}", s.file);
        assert_eq!(c["lead"]["email"], s.lead, "{}: {c}", s.file);
        assert_eq!(c["lead"]["company"].as_str(), s.company, "{}: {c}", s.file);
        assert_eq!(c["lead"]["phone"].as_str(), s.phone, "{}: {c}", s.file);

        config_text = format!("{config_text}\n{printed}");
        names.push(name);
    }
    // All of them in one configuration: each sample still goes to its own profile.
    std::fs::write(&base, &config_text).unwrap();
    let mut args = vec!["check"];
    let paths: Vec<String> = SAMPLES
        .iter()
        .map(|s| fixture(s.file).display().to_string())
        .collect();
    for p in &paths {
        args.extend(["--sample", p.as_str()]);
    }
    let (code, out) = run_cli(&base, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 form profiles"), "{out}");
    for ((s, name), p) in SAMPLES.iter().zip(&names).zip(&paths) {
        assert!(
            out.contains(&format!(
                "{p}: [[form]] '{name}' wins; submitter {}",
                s.lead
            )),
            "{out}"
        );
    }

    // And the daemon records each submitter as a lead of its form.
    for s in SAMPLES {
        std::fs::copy(
            fixture(s.file),
            dir.path()
                .join("inbox/new")
                .join(s.file.replace(".eml", "")),
        )
        .unwrap();
    }
    let (code, out) = run_cli(&base, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&base, &["leads", "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let leads: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(leads.len(), SAMPLES.len(), "{out}");
    for (s, name) in SAMPLES.iter().zip(&names) {
        let lead = leads
            .iter()
            .find(|l| l["email"] == s.lead)
            .unwrap_or_else(|| panic!("no lead {} in {out}", s.lead));
        assert_eq!(lead["form"], name.as_str(), "{lead}");
    }
}

#[test]
fn what_is_no_form_notification_is_an_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.toml");
    for (file, says) in [
        ("bounce_exim_text.eml", "not a form notification"),
        ("inquiry_plain.eml", "no fields found"),
    ] {
        let sample = fixture(file);
        let (code, out, err) = leadloop(&["form", "learn", sample.to_str().unwrap()])
            .config(&none)
            .run();
        assert_eq!(code, 2, "{file}: {out}{err}");
        assert!(out.is_empty(), "{file}: nothing to paste: {out}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{file}: {err}"
        );
    }
    let (code, _, err) = leadloop(&["form", "learn", "missing.eml"])
        .config(&none)
        .run();
    assert_ne!(code, 0);
    assert!(err.contains("missing.eml"), "{err}");
}

#[test]
fn a_name_given_is_the_profiles_name() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.toml");
    let sample = fixture("form_learn_french.eml");
    let (code, printed, err) = leadloop(&[
        "form",
        "learn",
        sample.to_str().unwrap(),
        "--name",
        "devis atelier",
    ])
    .config(&none)
    .run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(profile_name(&printed), "devis atelier");
    // Values from the message are quoted in the comments, so none can end a comment.
    for line in printed.lines() {
        assert!(
            line.starts_with('#') || line.is_empty() || !line.contains("Élodie"),
            "{line}"
        );
    }
}
