//! Every route of the listener, for everyone who may knock: someone signed out, Sales,
//! Marketing and an admin, over real HTTP against the daemon as it runs. One list names each
//! route with a real lead, outbox message, unsubscribe token and sign-in link, and the answer
//! each of them gets; every POST is also sent without its CSRF token, which is refused. The
//! list must name exactly the routes the router serves (`leadloop::http::ROUTES`, which the
//! router is built from), so a new route fails this test until its answers are written here.
//!
//! The one-click unsubscribe sent twice (and twice at once) recording one event is
//! `http::one_click_unsubscribe_acts_once_and_health_answers`.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Utc;
use leadloop::domain::{LeadId, MessageId, OutboxId};
use leadloop::store::{Claim, NewOutboxMessage, SendOutcome, Store};

use crate::support::{ConfigFile, lead_by_email, test_db, wait_for, with_config};
use crate::web_auth::{
    ANA, ANA_PASSWORD, Browser, Daemon, MIA, Reply, SAM, SAM_PASSWORD, USERS, free_port, users,
};

const MIA_PASSWORD: &str = "mia's long passphrase";

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Sales,
    Marketing,
    Admin,
}

const EVERYONE: [Who; 4] = [Who::Anonymous, Who::Sales, Who::Marketing, Who::Admin];

/// The answer expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// This status, wherever a redirect goes.
    Status(u16),
    /// `303 See Other` to this path.
    To(&'static str),
}
use Answer::{Status, To};

const SIGN_IN: Answer = To("/signin");

/// Which CSRF token a POST carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csrf {
    /// The session's, from the home page.
    Session,
    /// The pre-session token of the sign-in forms (cookie and field).
    SignIn,
    /// None: an RFC 8058 POST comes from a mail provider, not from one of our forms.
    Exempt,
}

/// One route: method, the router's path, the path asked with real ids, the form, and the
/// answer for each of [`EVERYONE`].
struct Route {
    method: &'static str,
    pattern: &'static str,
    path: String,
    form: Vec<(&'static str, String)>,
    csrf: Csrf,
    answers: [Answer; 4],
}

impl Route {
    fn get(pattern: &'static str, path: impl Into<String>, answers: [Answer; 4]) -> Route {
        Route {
            method: "GET",
            pattern,
            path: path.into(),
            form: Vec::new(),
            csrf: Csrf::Session,
            answers,
        }
    }

    fn post(
        pattern: &'static str,
        path: impl Into<String>,
        csrf: Csrf,
        form: &[(&'static str, &str)],
        answers: [Answer; 4],
    ) -> Route {
        Route {
            method: "POST",
            pattern,
            path: path.into(),
            form: form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            csrf,
            answers,
        }
    }

    fn answer(&self, who: Who) -> Answer {
        self.answers[EVERYONE.iter().position(|w| *w == who).unwrap()]
    }
}

/// Signed-in pages: the sign-in page for someone signed out, `page` for every role.
fn pages(page: Answer) -> [Answer; 4] {
    [SIGN_IN, page, page, page]
}

/// Admin pages: the sign-in page for someone signed out, refused to Sales and Marketing.
fn admin(page: Answer) -> [Answer; 4] {
    [SIGN_IN, Status(403), Status(403), page]
}

/// Signed-in POSTs: `401` for someone signed out.
fn posts(done: Answer) -> [Answer; 4] {
    [Status(401), done, done, done]
}

/// Admin POSTs.
fn admin_posts(done: Answer) -> [Answer; 4] {
    [Status(401), Status(403), Status(403), done]
}

fn everyone(answer: Answer) -> [Answer; 4] {
    [answer; 4]
}

/// The leads each role works on, so that one role's changes leave the next role's routes as
/// they were.
struct Fixture {
    /// A lead per role, in the order of [`EVERYONE`], each enrolled in `welcome`.
    leads: Vec<LeadId>,
    /// The unsubscribe token of another enrolled lead.
    token: String,
    /// An interrupted and a failed message.
    interrupted: OutboxId,
    failed: OutboxId,
    /// A live sign-in link's token.
    link: String,
}

/// The routes, in the order each person walks them: looking before changing, a pause before
/// its resume, and signing out last.
fn routes(f: &Fixture, who: Who) -> Vec<Route> {
    let lead = format!(
        "/leads/{}",
        f.leads[EVERYONE.iter().position(|w| *w == who).unwrap()].0
    );
    let until = (Utc::now() + chrono::Duration::days(10))
        .date_naive()
        .to_string();
    let retry = format!("/outbox/{}/retry", f.interrupted.0);
    let cancel = format!("/outbox/{}/cancel", f.failed.0);
    let link = format!("/signin/link/{}", f.link);
    let unsubscribe = format!("/u/{}", f.token);
    vec![
        Route::get("/healthz", "/healthz", everyone(Status(200))),
        Route::get("/readyz", "/readyz", everyone(Status(200))),
        Route::get("/metrics", "/metrics", everyone(Status(200))),
        Route::get("/static/app.css", "/static/app.css", everyone(Status(200))),
        Route::get("/u/{token}", &unsubscribe, everyone(Status(200))),
        Route::post(
            "/u/{token}",
            &unsubscribe,
            Csrf::Exempt,
            &[("List-Unsubscribe", "One-Click")],
            everyone(Status(200)),
        ),
        Route::get(
            "/signin",
            "/signin",
            [Status(200), To("/"), To("/"), To("/")],
        ),
        Route::post(
            "/signin",
            "/signin",
            Csrf::SignIn,
            &[("email", "nobody@company.com"), ("password", "not it")],
            everyone(Status(401)),
        ),
        Route::post(
            "/signin/link",
            "/signin/link",
            Csrf::SignIn,
            &[("email", "someone@company.com")],
            everyone(Status(200)),
        ),
        // The link works once: whoever posts it first (the first to walk the routes) is signed
        // in as Mia, and it is gone for everyone after.
        Route::get(
            "/signin/link/{token}",
            &link,
            [Status(200), Status(404), Status(404), Status(404)],
        ),
        Route::post(
            "/signin/link/{token}",
            &link,
            Csrf::SignIn,
            &[],
            [To("/"), Status(404), Status(404), Status(404)],
        ),
        Route::get("/", "/", pages(Status(200))),
        Route::get("/leads", "/leads?q=example", pages(Status(200))),
        Route::get("/leads/{id}", &lead, pages(Status(200))),
        Route::get("/reports", "/reports?by=month", pages(Status(200))),
        Route::get("/outbox", "/outbox", admin(Status(200))),
        Route::get("/outbox/{id}/{what}", &retry, admin(Status(200))),
        Route::get("/admin/users", "/admin/users", admin(Status(200))),
        Route::post(
            "/leads/{id}/pause",
            format!("{lead}/pause"),
            Csrf::Session,
            &[("until", &until)],
            posts(Status(303)),
        ),
        Route::post(
            "/leads/{id}/resume",
            format!("{lead}/resume"),
            Csrf::Session,
            &[],
            posts(Status(303)),
        ),
        Route::post(
            "/leads/{id}/owner",
            format!("{lead}/owner"),
            Csrf::Session,
            &[("owner", SAM)],
            posts(Status(303)),
        ),
        Route::post(
            "/leads/{id}/unenroll",
            format!("{lead}/unenroll"),
            Csrf::Session,
            &[("sequence", "welcome")],
            posts(Status(303)),
        ),
        Route::post(
            "/leads/{id}/verdict",
            format!("{lead}/verdict"),
            Csrf::Session,
            &[("verdict", "unqualified"), ("reason", "no budget")],
            posts(Status(303)),
        ),
        Route::post(
            "/outbox/{id}/{what}",
            &retry,
            Csrf::Session,
            &[],
            admin_posts(To("/outbox")),
        ),
        Route::post(
            "/outbox/{id}/{what}",
            &cancel,
            Csrf::Session,
            &[],
            admin_posts(To("/outbox")),
        ),
        Route::post(
            "/admin/users/end-sessions",
            "/admin/users/end-sessions",
            Csrf::Session,
            &[("email", "nobody@company.com")],
            admin_posts(To("/admin/users")),
        ),
        Route::post("/signout", "/signout", Csrf::Session, &[], posts(SIGN_IN)),
    ]
}

/// A message to `to` for the outbox.
fn message(lead: LeadId, to: &str, n: u32) -> NewOutboxMessage {
    let id = format!("r{n}.test@company.com");
    NewOutboxMessage {
        lead_id: Some(lead),
        enrollment_id: None,
        step_id: None,
        from: "hello@company.com".into(),
        envelope_from: "hello@company.com".into(),
        recipient: to.into(),
        message_id: MessageId::new(id.clone()),
        raw: format!(
            "From: hello@company.com\r\nTo: {to}\r\nSubject: Hello\r\nMessage-ID: <{id}>\r\n\r\nHello.\r\n"
        )
        .into_bytes(),
        due_at: Utc::now(),
    }
}

/// An interrupted and a failed message to `lead`, put there by the store's own paths.
async fn unfinished(store: &Store, lead: LeadId, to: &str) -> (OutboxId, OutboxId) {
    let mut ids = Vec::new();
    for n in 0..2 {
        let id = store
            .enqueue(&message(lead, to, n), Utc::now())
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    let claimed = store
        .settle_and_claim(
            &[],
            Claim {
                now: Utc::now() + chrono::Duration::seconds(1),
                limit: 2,
                lease: std::time::Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.messages.len(), 2);
    store
        .settle(
            &[
                (
                    ids[0],
                    SendOutcome::Interrupted {
                        error: "no reply to the end of data".into(),
                    },
                ),
                (
                    ids[1],
                    SendOutcome::Failed {
                        error: "550 5.1.1 no such user".into(),
                        bounce: None,
                    },
                ),
            ],
            Utc::now(),
        )
        .await
        .unwrap();
    (ids[0], ids[1])
}

/// The token of the sign-in link written to the file transport's `outbox`, once it is there.
async fn mailed_link(outbox: &Path, port: u16) -> String {
    let prefix = format!("http://127.0.0.1:{port}/signin/link/");
    wait_for(|| async {
        for entry in std::fs::read_dir(outbox).ok()? {
            let text = std::fs::read_to_string(entry.ok()?.path()).ok()?;
            let text = text.replace("=\r\n", "").replace("=\n", "");
            if let Some(at) = text.find(&prefix) {
                let token = text.get(at + prefix.len()..at + prefix.len() + 64)?;
                if token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Some(token.to_owned());
                }
            }
        }
        None
    })
    .await
}

/// The browser `who` asks with: a fresh one for someone signed out, so nothing they are
/// given carries over.
fn browser_of(who: Who, port: u16, signed_in: &[(Who, Browser)]) -> Browser {
    signed_in
        .iter()
        .find(|(w, _)| *w == who)
        .map_or_else(|| Browser::new(port), |(_, b)| b.clone())
}

/// Asks `route` as `browser` (with `csrf` in the form when given).
async fn ask(browser: &mut Browser, route: &Route, csrf: Option<&str>) -> Reply {
    if route.method == "GET" {
        return browser.get(&route.path).await;
    }
    let mut form: Vec<(&str, &str)> = route.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Some(token) = csrf {
        form.push(("csrf", token));
    }
    browser.post(&route.path, &form).await
}

fn check(reply: &Reply, expected: Answer, who: Who, route: &Route, what: &str) {
    let location = reply.header("location");
    let same = match expected {
        To(want) => reply.status == 303 && location == want,
        Status(status) => reply.status == status,
    };
    assert!(
        same,
        "{} {} ({what}) as {who:?}: expected {expected:?}, got {} {location}\n{}",
        route.method, route.path, reply.status, reply.body
    );
}

/// Every route for every role: signed out → the sign-in page (GET) or 401 (POST); Sales and
/// Marketing refused the admin pages with 403; every POST without its CSRF token refused
/// with 403 (401 signed out); the rest answers, with real ids, as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_it_should() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sequence = "[enroll]\nmanual = true\n\n[[step]]\nid = \"a\"\ndelay = \"3d\"\ntemplate = \"t\"\nsubject = \"s\"\n";
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(&[("welcome", sequence)], &[("t.txt", "Hi.\n")])
        .raw(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\n{USERS}\n"
        ))
        .write();
    for (who, password) in [
        (SAM, SAM_PASSWORD),
        (MIA, MIA_PASSWORD),
        (ANA, ANA_PASSWORD),
    ] {
        let (code, _, err) = users(&config, &["add", who], password);
        assert_eq!(code, 0, "{err}");
    }
    let people = ["anon", "sales", "marketing", "admin", "unsub"];
    let mut csv = String::from("email,name\n");
    for p in people {
        csv.push_str(&format!("{p}@example.org,{p}\n"));
    }
    let file = dir.path().join("leads.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");
    let store = Store::connect(&db.url, 2).await.unwrap();
    let mut leads = Vec::new();
    for p in people {
        let email = format!("{p}@example.org");
        let (code, out, err) = with_config(&config, &["enroll", &email, "welcome"]).run();
        assert_eq!(code, 0, "{out}{err}");
        leads.push(lead_by_email(&store, &email).await.unwrap().id);
    }
    let unsub = leads.pop().unwrap();
    let token = store.enrollments(unsub).await.unwrap()[0].token.clone();
    let (interrupted, failed) = unfinished(&store, leads[0], "anon@example.org").await;

    let daemon = Daemon::start(&config, port).await;
    wait_for(|| async { (Browser::new(port).get("/readyz").await.status == 200).then_some(()) })
        .await;
    // A live link, asked for Mia through the form.
    let mut asker = Browser::new(port);
    let csrf = asker.get("/signin").await.csrf();
    let sent = asker
        .post("/signin/link", &[("csrf", &csrf), ("email", MIA)])
        .await;
    assert_eq!(sent.status, 200, "{sent:?}");
    let link = mailed_link(&dir.path().join("outbox"), port).await;
    let fixture = Fixture {
        leads,
        token,
        interrupted,
        failed,
        link,
    };

    // The list is the router's.
    let listed: BTreeSet<(&str, &str)> = routes(&fixture, Who::Admin)
        .iter()
        .map(|r| (r.method, r.pattern))
        .collect();
    let served: BTreeSet<(&str, &str)> = leadloop::http::ROUTES.iter().copied().collect();
    let unlisted: Vec<_> = served.difference(&listed).collect();
    let unserved: Vec<_> = listed.difference(&served).collect();
    assert!(
        unlisted.is_empty() && unserved.is_empty(),
        "every route the router serves needs its answers here, and only those: \
         not listed {unlisted:?}, not served {unserved:?}"
    );

    let mut signed_in = Vec::new();
    for (who, email, password) in [
        (Who::Sales, SAM, SAM_PASSWORD),
        (Who::Marketing, MIA, MIA_PASSWORD),
        (Who::Admin, ANA, ANA_PASSWORD),
    ] {
        let mut b = Browser::new(port);
        assert_eq!(b.sign_in(email, password).await.status, 303, "{who:?}");
        signed_in.push((who, b));
    }

    let mut asked = 0;
    for who in EVERYONE {
        for route in routes(&fixture, who) {
            let mut browser = browser_of(who, port, &signed_in);
            let token = match route.csrf {
                Csrf::Session if route.method == "POST" && who != Who::Anonymous => {
                    Some(browser.get("/").await.csrf())
                }
                Csrf::Session => None,
                Csrf::SignIn => {
                    // The token of a sign-in page opened in this browser's name.
                    let mut fresh = Browser::new(port);
                    let form = fresh.get("/signin").await;
                    for (k, v) in fresh.cookies {
                        browser.cookies.insert(k, v);
                    }
                    Some(form.csrf())
                }
                Csrf::Exempt => None,
            };
            if route.method == "POST" && route.csrf != Csrf::Exempt {
                let refused = ask(&mut browser, &route, None).await;
                let expected = if who == Who::Anonymous && route.csrf == Csrf::Session {
                    Status(401)
                } else {
                    Status(403)
                };
                check(&refused, expected, who, &route, "without a CSRF token");
                // A token that is not the session's is no better.
                let wrong = "0".repeat(64);
                let refused = ask(&mut browser, &route, Some(&wrong)).await;
                check(&refused, expected, who, &route, "with another token");
            }
            let reply = ask(&mut browser, &route, token.as_deref()).await;
            check(
                &reply,
                route.answer(who),
                who,
                &route,
                "as the page sends it",
            );
            if route.method == "GET" {
                assert!(
                    reply
                        .header("content-security-policy")
                        .contains("default-src 'none'"),
                    "{} as {who:?}",
                    route.path
                );
            }
            asked += 1;
        }
    }
    assert_eq!(asked, 4 * served.len() + 4, "two outbox POSTs per person");

    // What the POSTs did, as the store has it: one verdict per role, none from the POSTs
    // without a token or signed out.
    for (i, who) in EVERYONE.iter().enumerate() {
        let verdicts = store.verdicts(fixture.leads[i]).await.unwrap();
        let expected = usize::from(*who != Who::Anonymous);
        assert_eq!(verdicts.len(), expected, "{who:?}: {verdicts:?}");
    }
    let state = async |id| store.outbox_entry(id).await.unwrap().unwrap().state;
    assert_ne!(
        state(interrupted).await,
        leadloop::domain::OutboxState::Interrupted,
        "the admin retried it"
    );
    assert_eq!(
        state(failed).await,
        leadloop::domain::OutboxState::Cancelled
    );
    store.close().await;
    daemon.stop().await;
}
