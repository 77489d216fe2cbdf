//! What a user sees for the common IMAP setup mistakes, against a real Dovecot.

use crate::dovecot::Dovecot;
use crate::support::{ConfigFile, leadloop, test_db};

async fn run_with(imap: impl Fn(&Dovecot) -> String) -> String {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .unwrap()
        .expect("starting Dovecot");
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("imap-password");
    std::fs::write(&password, format!("{}\n", dovecot.password())).unwrap();
    let config = ConfigFile::new(dir.path(), &db.url)
        .raw(&format!(
            "\n[imap]\nhost = \"{}\"\nuser = \"{}\"\npassword_file = \"{}\"\n{}\n",
            dovecot.host(),
            dovecot.user(),
            password.display(),
            imap(&dovecot)
        ))
        .identity(&["leads@company.com"], &["company.com"])
        .write();
    let out = leadloop(&["run", "--once"]).config(&config).output();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the error names the fix and says each cause once.
fn assert_says(stderr: &str, fix: &str, cause: &str) {
    assert!(stderr.contains(fix), "{stderr}");
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
    assert!(!stderr.contains("Some("), "{stderr}");
}

#[tokio::test]
async fn implicit_tls_on_the_plain_port_points_to_starttls() {
    let said = run_with(|d| {
        format!(
            "port = {}\ntls = \"implicit\"\nca_file = \"{}\"",
            d.plain_port(),
            d.ca_pem_path().display()
        )
    })
    .await;
    assert_says(&said, "set imap.tls = \"starttls\"", "InvalidContentType");
}

#[tokio::test]
async fn an_untrusted_certificate_points_to_ca_file() {
    for tls in ["implicit", "starttls"] {
        let said = run_with(|d| {
            let port = if tls == "implicit" {
                d.tls_port()
            } else {
                d.plain_port()
            };
            format!("port = {port}\ntls = \"{tls}\"")
        })
        .await;
        assert_says(&said, "set imap.ca_file", "UnknownIssuer");
    }
}

#[tokio::test]
async fn no_tls_on_the_tls_port_points_to_implicit() {
    let said = run_with(|d| format!("port = {}\ntls = \"none\"", d.tls_port())).await;
    assert_says(&said, "set imap.tls = \"implicit\"", "no greeting");
}
