//! The loop back from Sales, end to end over real servers: the daemon reads a private Dovecot
//! (IDLE), sends through Postfix's smtp-sink, and the tests APPEND what leads, their servers
//! and Sales write back: replies, out-of-office answers, bounces, verdicts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use leadloop::config::Config;
use leadloop::domain::{EmailAddress, EnrollmentState, LeadStatus};
use leadloop::sequence::schedule::Scheduler;
use leadloop::store::{OutboxEntry, OutboxState, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dovecot::Dovecot;
use crate::smtp_sink::SmtpSink;
use crate::support::{ConfigFile, TestDb, lead_by_email, test_db, wait_for};

/// A Dovecot, an smtp-sink, a database and a configuration with a two-step `welcome`
/// sequence (`a` at once, `b` a day later), a `retention` sequence entered on `customer`, a
/// `webinar` sequence entered by hand, Sales at sales@company.com as the default owner.
struct Loop {
    dovecot: Dovecot,
    sink: SmtpSink,
    db: TestDb,
    _dir: tempfile::TempDir,
    config_path: std::path::PathBuf,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("a.txt", "Hello {{ lead.first_name }}, step a.\n"),
    ("b.txt", "Step b.\n"),
    ("r1.txt", "Welcome aboard, {{ lead.first_name }}.\n"),
    ("w1.txt", "The webinar recording.\n"),
];

const SEQUENCES: &[(&str, &str)] = &[
    (
        "welcome",
        "[enroll]\nkinds = [\"inquiry\", \"form\", \"forward\"]\n\n\
         [[step]]\nid = \"a\"\ndelay = \"0m\"\ntemplate = \"a\"\nsubject = \"Welcome, {{ lead.name }}\"\n\n\
         [[step]]\nid = \"b\"\ndelay = \"1d\"\ntemplate = \"b\"\nsubject = \"Step b\"\n",
    ),
    (
        "retention",
        "[enroll]\non_status = [\"customer\"]\n\n\
         [[step]]\nid = \"r1\"\ndelay = \"0m\"\ntemplate = \"r1\"\nsubject = \"Welcome aboard\"\n",
    ),
    (
        "webinar",
        "[enroll]\nmanual = true\n\n\
         [[step]]\nid = \"w1\"\ndelay = \"0m\"\ntemplate = \"w1\"\nsubject = \"The recording\"\n",
    ),
];

impl Loop {
    async fn start() -> Loop {
        let dovecot = crate::support::start_dovecot().await;
        let sink = tokio::task::spawn_blocking(|| SmtpSink::start(&[]))
            .await
            .unwrap()
            .expect("starting smtp-sink");
        let db = test_db().await;
        let dir = tempfile::tempdir().unwrap();
        write_sequences(dir.path());
        let extra = format!(
            "idle = true\n\n\
             [identity]\naddresses = [\"leads@company.com\"]\ndomains = [\"company.com\"]\nsales = [\"sales@company.com\"]\n\n\
             [handoff]\ndefault_owner = \"sales@company.com\"\n\n\
             [sequences]\ndir = {:?}\ntemplates = {:?}\ninbox = \"leads@company.com\"\nreply_to_token = true\n\n\
             [policy]\nper_lead_per_day = 5\nsoft_bounce_limit = 3\n\n\
             [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n\
             envelope_from = \"bounces@company.com\"\nverp = true\n",
            dir.path().join("sequences").display().to_string(),
            dir.path().join("templates").display().to_string(),
            sink.port(),
        );
        let config_path = ConfigFile::new(dir.path(), &db.url)
            .imap(&dovecot, "implicit", &extra)
            .write();
        Loop {
            dovecot,
            sink,
            db,
            _dir: dir,
            config_path,
        }
    }

    fn config(&self) -> Config {
        Config::load(&self.config_path).expect("test configuration is valid")
    }

    async fn store(&self) -> Store {
        Store::connect(&self.db.url, 2).await.unwrap()
    }

    /// Runs the daemon until the returned token is cancelled.
    fn daemon(
        &self,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let shutdown = CancellationToken::new();
        let (_reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let (path, config, token) = (self.config_path.clone(), self.config(), shutdown.clone());
        let handle = tokio::spawn(async move {
            let _keep = _reload_tx;
            leadloop::daemon::run(&path, config, token, reload_rx).await
        });
        (shutdown, handle)
    }

    fn append(&self, raw: &str) {
        self.dovecot
            .append("INBOX", raw.replace('\n', "\r\n").as_bytes())
            .expect("APPEND");
    }

    /// Messages smtp-sink received for `to`, whole, as text with LF line ends.
    async fn received_for(&self, to: &str, n: usize) -> Vec<String> {
        let to = to.to_owned();
        wait_for(|| {
            let m: Vec<String> = self
                .sink
                .messages()
                .iter()
                .filter(|d| d.ends_with(b"\n\n"))
                .map(|d| String::from_utf8_lossy(d).replace("\r\n", "\n"))
                .filter(|d| rcpt_is(d, &to))
                .collect();
            async move { (m.len() >= n).then_some(m) }
        })
        .await
    }
}

/// Whether smtp-sink's dump names `to` as an envelope recipient (its `X-Rcpt-Args` line).
fn rcpt_is(dump: &str, to: &str) -> bool {
    let to = to.to_ascii_lowercase();
    dump.lines()
        .take_while(|l| !l.is_empty())
        .any(|l| l.starts_with("X-Rcpt-Args:") && l.to_ascii_lowercase().contains(&to))
}

fn write_sequences(dir: &Path) {
    std::fs::create_dir_all(dir.join("sequences")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for (name, text) in TEMPLATES {
        std::fs::write(dir.join("templates").join(name), text).unwrap();
    }
    for (name, text) in SEQUENCES {
        std::fs::write(dir.join("sequences").join(format!("{name}.toml")), text).unwrap();
    }
}

async fn outbox_to(store: &Store, to: &str) -> Vec<OutboxEntry> {
    let mut v: Vec<OutboxEntry> = store
        .list_outbox(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.recipient == to)
        .collect();
    v.sort_by_key(|e| e.id.0);
    v
}

/// The first step sent to `to`, once the server accepted it: its Message-ID.
async fn step_sent(store: &Store, to: &str) -> String {
    wait_for(|| async {
        outbox_to(store, to)
            .await
            .into_iter()
            .find(|e| e.state == OutboxState::Sent)
            .map(|e| e.message_id.to_string())
    })
    .await
}

fn inquiry(from: &str, id: &str) -> String {
    format!(
        "From: {from}\nTo: leads@company.com\nSubject: Pricing?\nMessage-ID: <{id}>\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\n\nWhat does it cost for 20 seats?\n"
    )
}

/// A header field's value in a dump (first occurrence), unfolded.
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\n\n").next().unwrap_or_default();
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

fn angle(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

async fn lead_json(s: &Loop, email: &str) -> serde_json::Value {
    let (code, out) = crate::support::run_cli(&s.config_path, &["leads", "show", email, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(out.trim()).expect("leads show --json is JSON")
}

/// The whole loop: an inquiry gets step a; the lead's reply (In-Reply-To) ends the sequence
/// and reaches Sales as a hand-off; Sales answers "unqualified: no budget" and the verdict,
/// its reason and comment, who and when are recorded and the status set. A second answer
/// that is no verdict gets one explanation; a third one gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_handed_off_and_sales_answer_is_recorded_and_acted_on() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    s.append(&inquiry("Jane Doe <jane@acme.example>", "q1@acme.example"));
    let step_a = step_sent(&store, "jane@acme.example").await;
    s.append(&format!(
        "From: Jane Doe <jane@acme.example>\nTo: leads@company.com\nSubject: Re: Welcome, Jane Doe\n\
         Message-ID: <r1@acme.example>\nIn-Reply-To: <{step_a}>\nReferences: <{step_a}>\n\
         Date: Fri, 27 Nov 2026 11:00:00 +0000\n\nYes, call me on Monday <script>alert(1)</script>.\n\n\
         On Fri, Team wrote:\n> Hello Jane, step a.\n"
    ));
    let handoff = s.received_for("sales@company.com", 1).await.remove(0);
    assert!(handoff.contains("jane@acme.example"), "{handoff}");
    assert!(handoff.contains("Yes, call me on Monday"), "{handoff}");
    // What the lead wrote is data: the HTML part shows it escaped, never as markup.
    let parsed = mail_parser::MessageParser::default()
        .parse(handoff.as_bytes())
        .expect("the hand-off parses");
    let html = parsed.body_html(0).expect("an HTML part");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;") || html.contains("&lt;script"),
        "{html}"
    );
    let reply_to = header(&handoff, "Reply-To").expect("a Reply-To");
    assert!(reply_to.contains("leads+handoff-"), "{reply_to}");
    let handoff_id = angle(header(&handoff, "Message-ID").expect("a Message-ID")).to_owned();
    assert_eq!(header(&handoff, "Auto-Submitted"), Some("auto-generated"));

    let jane = lead_json(&s, "jane@acme.example").await;
    assert_eq!(jane["status"], "engaged", "{jane}");
    assert_eq!(jane["enrollments"][0]["state"], "exited", "{jane}");
    assert_eq!(jane["verdict"], serde_json::Value::Null);
    assert_eq!(jane["suppressed"], false);
    let kinds: Vec<&str> = jane["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"reply") && kinds.contains(&"handoff"),
        "{kinds:?}"
    );

    // Sales answers the hand-off.
    s.append(&format!(
        "From: Sam Seller <sales@company.com>\nTo: {reply_to}\nSubject: Re: hand-off\n\
         Message-ID: <v1@company.com>\nIn-Reply-To: <{handoff_id}>\nReferences: <{handoff_id}>\n\
         Date: Fri, 27 Nov 2026 12:00:00 +0000\n\nUnqualified: no budget\n\nThey will come back in Q3.\n\n\
         On Fri, leadloop wrote:\n> Lead: Jane Doe\n"
    ));
    // `leads show` reads the lead, then its verdicts: wait for both to show the answer.
    let jane = wait_for(|| async {
        let v = lead_json(&s, "jane@acme.example").await;
        (!v["verdict"].is_null() && v["status"] != "engaged").then_some(v)
    })
    .await;
    assert_eq!(jane["status"], "unqualified", "{jane}");
    let v = &jane["verdict"];
    assert_eq!(v["verdict"], "unqualified");
    assert_eq!(v["reason"], "no budget");
    assert_eq!(v["comment"], "They will come back in Q3.");
    assert_eq!(v["by"], "sales@company.com");
    assert!(v["at"].as_str().is_some());
    assert_eq!(jane["verdicts"].as_array().unwrap().len(), 1);

    // An answer that holds no verdict gets one short explanation, to Sales only.
    for n in 2..=3 {
        s.append(&format!(
            "From: Sam Seller <sales@company.com>\nTo: {reply_to}\nSubject: Re: hand-off\n\
             Message-ID: <v{n}@company.com>\nIn-Reply-To: <{handoff_id}>\n\
             Date: Fri, 27 Nov 2026 12:0{n}:00 +0000\n\nmaybe later?\n"
        ));
        wait_for(|| async {
            (store.kind_counts().await.unwrap().get("feedback").copied() == Some(n)).then_some(())
        })
        .await;
    }
    let explanations = s.received_for("sales@company.com", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = s.received_for("sales@company.com", 2).await;
    assert_eq!(all.len(), 2, "one hand-off and one explanation, not two");
    let explanation = explanations
        .iter()
        .find(|m| !m.contains(&format!("<{handoff_id}>\nReply-To")) && m.contains("not a verdict"))
        .or_else(|| explanations.get(1))
        .unwrap();
    assert!(explanation.contains("qualified"), "{explanation}");
    assert_eq!(
        lead_json(&s, "jane@acme.example").await["verdicts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// A plain-text reply without In-Reply-To (from the lead's address) and a reply from another
/// address that answers our message both reach the lead; the second address becomes an alias
/// whose later mail reaches the same lead. A non-Sales answer to a hand-off records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_without_references_and_from_aliases_reach_the_lead() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    s.append(&inquiry("Bob <bob@acme.example>", "q2@acme.example"));
    let step_a = step_sent(&store, "bob@acme.example").await;
    // From his phone, another address, answering our message.
    s.append(&format!(
        "From: Bob <bob.mobile@phone.example>\nTo: leads@company.com\nSubject: Re: Welcome\n\
         Message-ID: <r2@phone.example>\nIn-Reply-To: <{step_a}>\nDate: Fri, 27 Nov 2026 11:00:00 +0000\n\n\
         Sounds good.\n"
    ));
    let handoff = s.received_for("sales@company.com", 1).await.remove(0);
    assert!(handoff.contains("bob@acme.example"), "{handoff}");
    let bob = lead_json(&s, "bob@acme.example").await;
    assert_eq!(
        bob["aliases"],
        serde_json::json!(["bob.mobile@phone.example"])
    );
    assert_eq!(bob["status"], "engaged");

    // A plain reply, no references, from a lead in a sequence: matched by address.
    s.append(&inquiry("Carol <carol@acme.example>", "q3@acme.example"));
    step_sent(&store, "carol@acme.example").await;
    s.append(
        "From: Carol <carol@acme.example>\nTo: leads+reply-nothing@company.com\nSubject: Re: Welcome\n\
         Message-ID: <r3@acme.example>\nDate: Fri, 27 Nov 2026 11:00:00 +0000\n\nPlease call me.\n",
    );
    let handoffs = s.received_for("sales@company.com", 2).await;
    assert!(handoffs.iter().any(|m| m.contains("carol@acme.example")));
    let carol = lead_json(&s, "carol@acme.example").await;
    assert_eq!(carol["enrollments"][0]["state"], "exited", "{carol}");

    // One person, two addresses: an inquiry sent from a private address with Reply-To the
    // work one is the work address's lead; a later reply from the private one reaches it.
    s.append(
        "From: Dana <dana.private@mail.example>\nReply-To: Dana Diaz <dana@acme.example>\n\
         To: leads@company.com\nSubject: Quote\nMessage-ID: <q9@mail.example>\n\
         Date: Fri, 27 Nov 2026 10:00:00 +0000\n\nPlease send a quote.\n",
    );
    step_sent(&store, "dana@acme.example").await;
    let dana = lead_json(&s, "dana@acme.example").await;
    assert_eq!(
        dana["aliases"],
        serde_json::json!(["dana.private@mail.example"])
    );
    assert_eq!(dana["name"], "Dana Diaz");
    s.append(
        "From: Dana <dana.private@mail.example>\nTo: leads@company.com\nSubject: Re: Quote\n\
         Message-ID: <r9@mail.example>\nDate: Fri, 27 Nov 2026 11:00:00 +0000\n\nAny news?\n",
    );
    let handoffs = s.received_for("sales@company.com", 3).await;
    assert!(
        handoffs
            .iter()
            .any(|m| m.contains("dana@acme.example") && m.contains("Any news?")),
        "{handoffs:?}"
    );
    assert!(
        lead_by_email(&store, "dana.private@mail.example")
            .await
            .is_none()
    );

    // Someone outside Sales answers Bob's hand-off with a verdict: nothing is recorded.
    let handoff_id = angle(header(&handoff, "Message-ID").unwrap()).to_owned();
    s.append(&format!(
        "From: Mallory <mallory@elsewhere.example>\nTo: leads@company.com\nSubject: Re: hand-off\n\
         Message-ID: <x1@elsewhere.example>\nIn-Reply-To: <{handoff_id}>\nDate: Fri, 27 Nov 2026 12:00:00 +0000\n\n\
         customer\n"
    ));
    wait_for(|| async {
        store
            .inbound(&leadloop::ingest::imap_mailbox_name(
                match &s.config().mailboxes[0].source {
                    leadloop::config::SourceConfig::Imap(i) => i,
                    leadloop::config::SourceConfig::Maildir(_) => unreachable!(),
                },
            ))
            .await
            .unwrap()
            .iter()
            .any(|m| m.dedupe_key == "mid:x1@elsewhere.example")
            .then_some(())
    })
    .await;
    let bob = lead_json(&s, "bob@acme.example").await;
    assert_eq!(bob["verdict"], serde_json::Value::Null, "{bob}");
    assert_eq!(bob["status"], "engaged");

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// An out-of-office with a return date pauses the enrollment: it is not a reply, Sales is not
/// told, and the next step goes out only after the date (checked with the scheduler's clock).
/// Hard and soft bounces: one hard bounce, or three soft ones, bounce and suppress the lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_office_pauses_and_bounces_suppress() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    s.append(&inquiry("Olga <olga@acme.example>", "q4@acme.example"));
    let step_a = step_sent(&store, "olga@acme.example").await;
    s.append(&format!(
        "From: Olga <olga@acme.example>\nTo: leads@company.com\nSubject: Automatic reply: Welcome\n\
         Auto-Submitted: auto-replied\nMessage-ID: <ooo1@acme.example>\nIn-Reply-To: <{step_a}>\n\
         Date: Fri, 27 Nov 2026 10:05:00 +0000\n\n\
         I am out of the office until 14 December 2026 with limited access to email.\n"
    ));
    // `leads show` reads the lead, its timeline and its enrollments one after the other: wait
    // until all show the pause.
    let paused = |v: &serde_json::Value| {
        !v["enrollments"][0]["paused_until"].is_null()
            && v["timeline"]
                .as_array()
                .is_some_and(|t| t.iter().any(|e| e["kind"] == "paused"))
    };
    let olga = wait_for(|| async {
        let v = lead_json(&s, "olga@acme.example").await;
        paused(&v).then_some(v)
    })
    .await;
    assert_eq!(olga["status"], "new", "an out-of-office is no reply");
    assert_eq!(olga["enrollments"][0]["state"], "active");
    let until: DateTime<Utc> = olga["enrollments"][0]["paused_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        until.date_naive(),
        NaiveDate::from_ymd_opt(2026, 12, 14).unwrap()
    );
    assert!(
        olga["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "paused")
    );

    // Bounces: a hard DSN for one lead, three soft ones for another.
    s.append(&inquiry("Hank <hank@acme.example>", "q5@acme.example"));
    s.append(&inquiry("Sid <sid@acme.example>", "q6@acme.example"));
    let hank_step = step_sent(&store, "hank@acme.example").await;
    step_sent(&store, "sid@acme.example").await;
    s.append(&dsn("hank@acme.example", "5.1.1", "failed", &hank_step, 1));
    for n in 1..=2 {
        s.append(&dsn("sid@acme.example", "4.2.2", "delayed", "none", n + 10));
    }
    wait_for(|| async {
        (store.kind_counts().await.unwrap().get("bounce").copied() == Some(3)).then_some(())
    })
    .await;
    let hank = lead_json(&s, "hank@acme.example").await;
    assert_eq!(hank["status"], "bounced", "{hank}");
    assert_eq!(hank["suppressed"], true);
    assert!(
        hank["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bounce")
    );
    let sid = lead_json(&s, "sid@acme.example").await;
    assert_eq!(
        sid["suppressed"], false,
        "two soft bounces are counted only"
    );

    // VERP: the step went out with MAIL FROM bounces+bounce-TOKEN@…; a bounce sent there
    // names the lead even when its failed recipient is an address leadloop never knew (a
    // forward at the lead's side).
    s.append(&inquiry("Vera <vera@acme.example>", "q10@acme.example"));
    step_sent(&store, "vera@acme.example").await;
    let sent = s.received_for("vera@acme.example", 1).await.remove(0);
    let vera = lead_json(&s, "vera@acme.example").await;
    let token = vera["enrollments"][0]["token"].as_str().unwrap().to_owned();
    let verp = format!("bounces+bounce-{token}@company.com");
    assert!(sent.contains(&format!("X-Mail-Args: <{verp}>")), "{sent}");
    s.append(&dsn_to(
        &verp,
        "v.old@mailhost.example",
        "5.1.1",
        "failed",
        "none",
        30,
    ));
    let vera = wait_for(|| async {
        let v = lead_json(&s, "vera@acme.example").await;
        (v["status"] == "bounced").then_some(v)
    })
    .await;
    assert_eq!(vera["suppressed"], true);
    s.append(&dsn("sid@acme.example", "4.2.2", "delayed", "none", 13));
    // `leads show` reads the lead, then the suppression list: wait for both.
    let sid = wait_for(|| async {
        let v = lead_json(&s, "sid@acme.example").await;
        (v["suppressed"] == true && v["status"] == "bounced").then_some(v)
    })
    .await;
    assert_eq!(sid["status"], "bounced", "{sid}");
    assert_eq!(sid["enrollments"][0]["state"], "exited");

    shutdown.cancel();
    daemon.await.unwrap().unwrap();

    // Olga's next step waits for her return: nothing before 14 December, step b after.
    let config = s.config();
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::clone(&config.sequences),
        Arc::new(Notify::new()),
    );
    let before = until - chrono::Duration::hours(1);
    let _ = scheduler.run_due(before).await.unwrap();
    let olga_steps = |v: Vec<OutboxEntry>| {
        v.into_iter()
            .filter_map(|e| e.step_id.map(String::from))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        olga_steps(outbox_to(&store, "olga@acme.example").await),
        ["a"]
    );
    let _ = scheduler
        .run_due(until + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        olga_steps(outbox_to(&store, "olga@acme.example").await),
        ["a", "b"]
    );
    let e = &store
        .enrollments(
            store
                .lead(&EmailAddress::parse("olga@acme.example").unwrap())
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap()[0];
    assert_eq!(e.state, EnrollmentState::Done);
}

/// A DSN naming three failed recipients acts for each: the two hard ones (an unknown user,
/// an unknown domain) bounce and suppress their leads at once; the full mailbox is soft even
/// with its 5.x.x status, so its lead is only counted. A fourth hard recipient that is no
/// lead is an address we mailed: it is suppressed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_naming_several_recipients_acts_for_each() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    for (who, id) in [
        ("Ada <ada@acme.example>", "m1@acme.example"),
        ("Ben <ben@beta.example>", "m2@beta.example"),
        ("Cy <cy@gamma.example>", "m3@gamma.example"),
    ] {
        s.append(&inquiry(who, id));
    }
    let ben_step = step_sent(&store, "ben@beta.example").await;
    step_sent(&store, "ada@acme.example").await;
    step_sent(&store, "cy@gamma.example").await;
    // The soft one first: the first hard failure is the bounce's `recipient`, and each
    // recipient is acted on by its own status.
    s.append(&dsn_many(
        &[
            (
                "ben@beta.example",
                "failed",
                "5.2.2",
                "552 5.2.2 Mailbox full",
            ),
            (
                "ada@acme.example",
                "failed",
                "5.1.1",
                "550 5.1.1 User unknown",
            ),
            (
                "cy@gamma.example",
                "failed",
                "5.4.4",
                "Host or domain name not found",
            ),
            (
                "dan@acme.example",
                "failed",
                "5.1.1",
                "550 5.1.1 User unknown",
            ),
        ],
        &ben_step,
        40,
    ));
    for lead in ["ada@acme.example", "cy@gamma.example"] {
        let v = wait_for(|| async {
            let v = lead_json(&s, lead).await;
            (v["suppressed"] == true && v["status"] == "bounced").then_some(v)
        })
        .await;
        assert_eq!(v["enrollments"][0]["state"], "exited", "{v}");
    }
    let reasons = |a: &str| {
        let a = EmailAddress::parse(a).unwrap();
        let store = store.clone();
        async move {
            store
                .suppressions_of(&a)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.reason)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        reasons("ada@acme.example").await,
        ["hard bounce (5.1.1, user_unknown)"]
    );
    assert_eq!(
        reasons("cy@gamma.example").await,
        ["hard bounce (5.4.4, host_unknown)"]
    );
    assert_eq!(
        reasons("dan@acme.example").await,
        ["hard bounce (5.1.1, user_unknown)"],
        "a hard failure of an address that is no lead"
    );
    let ben = lead_json(&s, "ben@beta.example").await;
    assert_eq!(
        ben["suppressed"], false,
        "a full mailbox is counted only: {ben}"
    );
    assert_ne!(ben["status"], "bounced", "{ben}");
    assert_eq!(ben["enrollments"][0]["state"], "active", "{ben}");
    // The message is on the timeline of the first failed recipient's lead; the others' get an
    // entry of their own, and Ben's soft failure is counted there.
    let has = |v: &serde_json::Value, kind: &str| {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == kind)
    };
    let ada = lead_json(&s, "ada@acme.example").await;
    assert!(has(&ada, "bounce"), "{ada}");
    assert!(has(&lead_json(&s, "cy@gamma.example").await, "bounce"));
    assert!(has(&ben, "bounce") && has(&ben, "soft_bounce"), "{ben}");

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// A DSN (RFC 3464) from our own MTA naming several recipients: (address, action, status,
/// diagnostic) each.
fn dsn_many(rcpts: &[(&str, &str, &str, &str)], original_id: &str, n: u32) -> String {
    let blocks: String = rcpts
        .iter()
        .map(|(rcpt, action, status, diag)| {
            format!(
                "Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n\
                 Diagnostic-Code: smtp; {diag}\n\n"
            )
        })
        .collect();
    let to: Vec<&str> = rcpts.iter().map(|r| r.0).collect();
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.company.com>\nTo: bounces@company.com\n\
         Subject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn{n}@mx.company.com>\n\
         Date: Fri, 27 Nov 2026 10:2{d}:00 +0000\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\n\n\
         --b{n}\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n\
         --b{n}\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.company.com\n\n{blocks}\
         --b{n}\nContent-Type: text/rfc822-headers\n\n\
         From: hello@company.com\nTo: {to}\nMessage-ID: <{original_id}>\nSubject: Welcome\n\n\
         --b{n}--\n",
        d = n % 10,
        to = to.join(", "),
    )
}

/// A DSN (RFC 3464) from our own MTA about `rcpt`.
fn dsn(rcpt: &str, status: &str, action: &str, original_id: &str, n: u32) -> String {
    dsn_to("bounces@company.com", rcpt, status, action, original_id, n)
}

/// A DSN to the envelope sender `to`.
fn dsn_to(to: &str, rcpt: &str, status: &str, action: &str, original_id: &str, n: u32) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.company.com>\nTo: {to}\n\
         Subject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn{n}@mx.company.com>\n\
         Date: Fri, 27 Nov 2026 10:1{d}:00 +0000\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\n\n\
         --b{n}\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n\
         --b{n}\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.company.com\n\n\
         Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n\
         Diagnostic-Code: smtp; {code} {status} mailbox problem\n\n\
         --b{n}\nContent-Type: text/rfc822-headers\n\n\
         From: hello@company.com\nTo: {rcpt}\nMessage-ID: <{original_id}>\nSubject: Welcome\n\n\
         --b{n}--\n",
        d = n % 10,
        code = if status.starts_with('5') { 550 } else { 452 },
    )
}

/// Sales' other verdicts by mail: `customer` enrolls the retention sequence and its first step
/// goes out; `nurture: webinar` enrolls that sequence; `nurture: nosuch` explains which exist.
/// The same verdicts from the terminal with `leads verdict`; `leads assign` changes the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_enrolls_retention_and_nurture_enrolls_the_named_sequence() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    for (who, id) in [
        ("Cid <cid@acme.example>", "q7"),
        ("Nia <nia@acme.example>", "q8"),
    ] {
        s.append(&inquiry(who, &format!("{id}@acme.example")));
    }
    for (n, lead) in ["cid@acme.example", "nia@acme.example"].iter().enumerate() {
        let step = step_sent(&store, lead).await;
        s.append(&format!(
            "From: {lead}\nTo: leads@company.com\nSubject: Re: Welcome\nMessage-ID: <rr{n}@acme.example>\n\
             In-Reply-To: <{step}>\nDate: Fri, 27 Nov 2026 11:00:00 +0000\n\nInterested.\n"
        ));
    }
    let handoffs = s.received_for("sales@company.com", 2).await;
    let id_for = |lead: &str| {
        let m = handoffs.iter().find(|m| m.contains(lead)).unwrap();
        angle(header(m, "Message-ID").unwrap()).to_owned()
    };
    let answer = |n: u32, id: &str, text: &str| {
        format!(
            "From: sales@company.com\nTo: leads@company.com\nSubject: Re: lead\nMessage-ID: <a{n}@company.com>\n\
             In-Reply-To: <{id}>\nDate: Fri, 27 Nov 2026 12:00:00 +0000\n\n{text}\n"
        )
    };
    s.append(&answer(1, &id_for("cid@acme.example"), "Won"));
    s.append(&answer(2, &id_for("nia@acme.example"), "nurture: nosuch"));
    // Cid is a customer, in retention, and its first step arrives.
    let r1 = s.received_for("cid@acme.example", 2).await;
    assert!(r1.iter().any(|m| m.contains("Welcome aboard")), "{r1:?}");
    let cid = lead_json(&s, "cid@acme.example").await;
    assert_eq!(cid["status"], "customer");
    assert_eq!(cid["verdict"]["verdict"], "customer");
    // Nia's answer named no sequence there is: an explanation lists them; nothing enrolled.
    let to_sales = s.received_for("sales@company.com", 3).await;
    assert!(
        to_sales
            .iter()
            .any(|m| m.contains("nosuch") && m.contains("webinar")),
        "{to_sales:?}"
    );
    s.append(&answer(3, &id_for("nia@acme.example"), "nurture: webinar"));
    let w1 = s.received_for("nia@acme.example", 2).await;
    assert!(
        w1.iter().any(|m| m.contains("The webinar recording")),
        "{w1:?}"
    );

    shutdown.cancel();
    daemon.await.unwrap().unwrap();

    // From the terminal.
    let (code, out) = crate::support::run_cli(
        &s.config_path,
        &[
            "leads",
            "verdict",
            "nia@acme.example",
            "qualified",
            "--comment",
            "demo booked",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = crate::support::run_cli(
        &s.config_path,
        &["leads", "assign", "nia@acme.example", "anna@company.com"],
    );
    assert_eq!(code, 0, "{out}");
    let nia = lead_json(&s, "nia@acme.example").await;
    assert_eq!(nia["status"], "qualified");
    assert_eq!(nia["verdict"]["comment"], "demo booked");
    assert_eq!(nia["owner"], "anna@company.com");
    assert_eq!(nia["verdicts"].as_array().unwrap().len(), 2);
    let lead = store
        .lead(&EmailAddress::parse("nia@acme.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, LeadStatus::Qualified);
    let (code, _) = crate::support::run_cli(
        &s.config_path,
        &["leads", "verdict", "nia@acme.example", "maybe"],
    );
    assert_ne!(code, 0, "a verdict that is not one is refused");

    // `not now` with nothing running: the last sequence starts again on the day.
    let (code, out) = crate::support::run_cli(
        &s.config_path,
        &[
            "leads",
            "verdict",
            "nia@acme.example",
            "not now: until 1 June 2027",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let nia = lead_json(&s, "nia@acme.example").await;
    let again = nia["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state"] == "active")
        .unwrap_or_else(|| panic!("{nia}"));
    assert_eq!(again["sequence"], "webinar");
    assert!(
        again["paused_until"]
            .as_str()
            .is_some_and(|p| p.starts_with("2027-06-01")),
        "{again}"
    );
    assert_eq!(nia["verdict"]["verdict"], "not_now");
    assert_eq!(nia["status"], "qualified", "not now keeps the status");
}

/// What a lead writes reaches Sales' inbox, so the hand-off is built to be inert and short: a
/// 5 MB reply with 10,000 quoted lines, an HTML part with a script and a remote image, and a
/// display name that decodes to a line break and a Bcc header give a hand-off of a few
/// kilobytes with none of it active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_reply_gives_a_short_inert_hand_off() {
    let s = Loop::start().await;
    let store = s.store().await;
    let (shutdown, daemon) = s.daemon();

    s.append(&inquiry("Eve <eve@evil.example>", "q11@evil.example"));
    let step_a = step_sent(&store, "eve@evil.example").await;
    let mut text = String::from("Call me.\n");
    for i in 0..2_000 {
        text.push_str(&format!("line {i} {}\n", "x".repeat(2_400)));
    }
    text.push_str("\nOn Fri, Team wrote:\n");
    for i in 0..10_000 {
        text.push_str(&format!("> quoted line {i}\n"));
    }
    let html = "<html><body><script>alert(1)</script><img src=\"http://tracker.example/p.gif\">\
                <p onclick=\"x()\">Hi</p></body></html>";
    s.append(&format!(
        "From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40evil=2Eexample?= <eve@evil.example>\n\
         To: leads@company.com\nSubject: Re: Welcome\nMessage-ID: <r11@evil.example>\n\
         In-Reply-To: <{step_a}>\nDate: Fri, 27 Nov 2026 11:00:00 +0000\nMIME-Version: 1.0\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\n\n\
         --alt\nContent-Type: text/plain; charset=utf-8\n\n{text}\n\
         --alt\nContent-Type: text/html; charset=utf-8\n\n{html}\n--alt--\n"
    ));
    let handoff = s.received_for("sales@company.com", 1).await.remove(0);
    assert!(handoff.len() < 64 * 1024, "{} bytes", handoff.len());
    let head = handoff.split("\n\n").next().unwrap_or_default();
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
        "{head}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(handoff.as_bytes())
        .expect("the hand-off parses");
    assert_eq!(
        parsed
            .to()
            .and_then(|t| t.first())
            .and_then(|a| a.address()),
        Some("sales@company.com")
    );
    let text = parsed.body_text(0).expect("a text part");
    assert!(text.contains("Call me."), "{text}");
    assert!(!text.contains("quoted line 9999"), "quotes are not shown");
    assert!(
        text.contains("more lines not shown") || text.contains("more not shown"),
        "the rest is cut, and said so"
    );
    let html = parsed.body_html(0).expect("an HTML part");
    for active in ["<script", "<img", "http://tracker", "onclick"] {
        assert!(!html.contains(active), "{active} in {html}");
    }

    shutdown.cancel();
    daemon.await.unwrap().unwrap();
}

/// Routing and hot triggers, through `run --once` on a Maildir: leads from a routed domain go
/// to the route's owners in turn (round robin), the rest to the default owner, forwards to the
/// colleague who forwarded them; a hot form hands its lead off at once, a lead that is not hot
/// is not handed off, and a second hot message within the interval gives no second hand-off.
#[tokio::test]
async fn owners_are_routed_and_hot_leads_are_handed_off_at_once() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    write_sequences(dir.path());
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .raw(&format!(
            "[identity]\naddresses = [\"leads@company.com\"]\ndomains = [\"company.com\"]\n\n\
             [handoff]\ndefault_owner = \"sales@company.com\"\nfields = {{ \"Budget\" = \"^[0-9]{{5,}}$\" }}\n\n\
             [[form]]\nname = \"quote\"\nfrom = [\"wordpress@company.com\"]\nsubject_contains = [\"New quote request\"]\n\
             email_fields = [\"Email\"]\nname_fields = [\"Name\"]\n\n\
             [[route]]\nname = \"germany\"\ndomains = [\"*.de\"]\nowners = [\"anna@company.com\", \"ben@company.com\"]\n\n\
             [sequences]\ndir = {:?}\ntemplates = {:?}\ninbox = \"leads@company.com\"\n\n\
             [[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
             [smtp]\ntransport = \"file:{}\"\n",
            dir.path().join("sequences").display().to_string(),
            dir.path().join("templates").display().to_string(),
            dir.path().join("outbox").display(),
        ))
        .write();
    let inbox = dir.path().join("inbox/new");
    let put = |name: &str, raw: String| std::fs::write(inbox.join(name), raw).unwrap();
    put("1", inquiry("Udo <udo@firma.de>", "d1@firma.de"));
    put("2", inquiry("Uta <uta@werk.de>", "d2@werk.de"));
    put("3", inquiry("Ugo <ugo@ditta.de>", "d3@ditta.de"));
    put("4", inquiry("Pat <pat@acme.example>", "d4@acme.example"));
    put(
        "5",
        "From: WordPress <wordpress@company.com>\nTo: leads@company.com\nSubject: New quote request\n\
         Message-ID: <d5@company.com>\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n\
         Name: Rich Rao\nEmail: rich@bigco.example\nBudget: 250000\n"
            .to_owned(),
    );
    put(
        "6",
        "From: Kim <kim@company.com>\nTo: leads@company.com\nSubject: Fwd: Question\n\
         Message-ID: <d6@company.com>\nDate: Fri, 27 Nov 2026 10:00:00 +0000\n\n\
         ---------- Forwarded message ---------\nFrom: Fay <fay@shop.example>\n\
         Date: Thu, 26 Nov 2026 at 09:00\nSubject: Question\nTo: <kim@company.com>\n\n\
         Do you ship to Norway?\n"
            .to_owned(),
    );
    let (code, out) = crate::support::run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    let owner = |email: &str| {
        let (_, out) = crate::support::run_cli(&config, &["leads", "show", email, "--json"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["owner"].as_str().map(str::to_owned)
    };
    let german: Vec<Option<String>> = ["udo@firma.de", "uta@werk.de", "ugo@ditta.de"]
        .iter()
        .map(|e| owner(e))
        .collect();
    let anna = Some("anna@company.com".to_owned());
    let ben = Some("ben@company.com".to_owned());
    assert_eq!(
        german.iter().filter(|o| **o == anna).count(),
        2,
        "{german:?}"
    );
    assert_eq!(
        german.iter().filter(|o| **o == ben).count(),
        1,
        "{german:?}"
    );
    assert_eq!(
        owner("pat@acme.example").as_deref(),
        Some("sales@company.com")
    );
    assert_eq!(
        owner("fay@shop.example").as_deref(),
        Some("kim@company.com")
    );

    let store = Store::connect(&db.url, 2).await.unwrap();
    let handoffs = outbox_to(&store, "sales@company.com").await;
    assert_eq!(handoffs.len(), 1, "only Rich is hot: {handoffs:?}");
    assert_eq!(handoffs[0].state, OutboxState::Sent);
    let rich = lead_json_at(&config, "rich@bigco.example");
    assert!(
        rich["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "handoff"
                && e["detail"]["why"].as_str().unwrap_or("").contains("Budget")),
        "{rich}"
    );

    // Rich writes again at once: hot again, but within the interval: no second hand-off.
    put(
        "7",
        "From: WordPress <wordpress@company.com>\nTo: leads@company.com\nSubject: New quote request\n\
         Message-ID: <d7@company.com>\nDate: Fri, 27 Nov 2026 10:05:00 +0000\n\n\
         Name: Rich Rao\nEmail: rich@bigco.example\nBudget: 300000\n"
            .to_owned(),
    );
    let (code, out) = crate::support::run_cli(&config, &["run", "--once"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(outbox_to(&store, "sales@company.com").await.len(), 1);
    let rich = lead_json_at(&config, "rich@bigco.example");
    assert!(
        rich["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "handoff" && e["detail"]["state"] == "skipped"),
        "{rich}"
    );
}

fn lead_json_at(config: &Path, email: &str) -> serde_json::Value {
    let (code, out) = crate::support::run_cli(config, &["leads", "show", email, "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(out.trim()).expect("leads show --json is JSON")
}

/// Two daemons' hand-off workers on one database never enqueue one notification twice: the
/// queue row is taken in the transaction that enqueues its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_enqueue_each_hand_off_once() {
    use leadloop::actions::handoff::{TemplateSource, Worker};
    use leadloop::actions::{Actions, Settings};
    use leadloop::render::{SenderData, Templates};
    use leadloop::store::{Change, LeadChange};

    struct NoTemplates(Templates);
    impl TemplateSource for NoTemplates {
        fn templates(&self) -> &Templates {
            &self.0
        }
    }

    let (store, _db) = crate::support::test_store().await;
    let emails: Vec<String> = (0..40).map(|i| format!("lead{i}@acme.example")).collect();
    crate::support::seed_leads(&store, &emails).await;
    let owner = EmailAddress::parse("sales@company.com").unwrap();
    let changes: Vec<LeadChange> = emails
        .iter()
        .map(|e| LeadChange {
            record: 0,
            lead: EmailAddress::parse(e).unwrap(),
            change: Change::Handoff { why: "test".into() },
        })
        .collect();
    store
        .apply_lead_changes(&changes, Utc::now())
        .await
        .unwrap();
    let mut settings = Settings::default();
    settings.routing.default_owner = Some(owner.clone());
    let actions = Arc::new(Actions::new(settings, Vec::new(), Vec::new(), Vec::new()));
    let worker = || {
        Worker::new(
            store.clone(),
            Arc::clone(&actions),
            Arc::new(NoTemplates(Templates::empty())),
            SenderData {
                name: "team".into(),
                address: EmailAddress::parse("hello@company.com").unwrap(),
                display_name: None,
            },
            None,
            EmailAddress::parse("leads@company.com").unwrap(),
        )
    };
    let (a, b) = (worker(), worker());
    let now = Utc::now();
    let (ra, rb) = tokio::join!(a.run_pending(now), b.run_pending(now));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.queued + rb.queued, 40, "{ra:?} {rb:?}");
    let queued = outbox_to(&store, "sales@company.com").await;
    assert_eq!(queued.len(), 40);
    let mut ids: Vec<String> = queued.iter().map(|e| e.message_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "one message per hand-off");
    assert!(store.pending_handoffs(10).await.unwrap().is_empty());
}
