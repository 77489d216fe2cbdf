//! Sign-in to the web view over real HTTP on loopback, against the daemon as it runs: passwords
//! set with `leadloop users add|passwd` (the binary, `--password-stdin`), the sign-in form and
//! its CSRF double submit, the session cookie's flags, roles (sales is refused the admin page),
//! CSRF on every POST of a signed-in page, the rate limit, sessions that expire, a password
//! change and a removal from `[[user]]` that sign people out, and a one-time link mailed through
//! a Postfix smtp-sink and followed from the captured message, once.
//!
//! The client is a few lines of HTTP/1.1 over a `TcpStream` that keeps cookies like a browser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leadloop::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::smtp_sink::SmtpSink;
use crate::support::{ConfigFile, TestDb, test_db, with_config};

pub(crate) const ANA: &str = "ana@company.com";
pub(crate) const SAM: &str = "sam@company.com";
pub(crate) const MIA: &str = "mia@company.com";
pub(crate) const ANA_PASSWORD: &str = "ana's long passphrase";
pub(crate) const SAM_PASSWORD: &str = "sam's long passphrase";

/// An answer: status, headers (names in lower case; repeated ones joined by "\n"), body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The `Set-Cookie` line for cookie `name`, if the answer sets it.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.header("set-cookie")
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// A browser's part: one cookie jar, one request per connection.
#[derive(Debug, Clone)]
pub(crate) struct Browser {
    port: u16,
    pub(crate) cookies: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn new(port: u16) -> Browser {
        Browser {
            port,
            cookies: BTreeMap::new(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, None).await
    }

    /// POSTs `fields` form-encoded.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request("POST", path, Some(body)).await
    }

    async fn request(&mut self, method: &str, path: &str, body: Option<String>) -> Reply {
        self.try_request(method, path, body)
            .await
            .expect("a complete answer")
    }

    /// The answer, or `None` when the connection closed without one (a server stopping for a
    /// reload closes connections it has not read a request from).
    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Option<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let body = body.unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if method == "POST" {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
            .await
            .expect("an answer in time")
            .ok()?;
        let raw = String::from_utf8(raw).expect("a UTF-8 answer");
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in lines.filter_map(|l| l.split_once(':')) {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "set-cookie"
                && let Some((name, rest)) = v.split_once('=')
            {
                let value = rest.split(';').next().unwrap_or_default().to_owned();
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value);
                }
            }
            headers
                .entry(k)
                .and_modify(|old| {
                    old.push('\n');
                    old.push_str(&v);
                })
                .or_insert(v);
        }
        Some(Reply {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    /// Signs in through the form; the answer to the POST.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> Reply {
        let form = self.get("/signin").await;
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = form.csrf();
        self.post(
            "/signin",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// [`Browser::sign_in`], or `None` when a connection closed without an answer.
    async fn try_sign_in(&mut self, email: &str, password: &str) -> Option<Reply> {
        let form = self.try_request("GET", "/signin", None).await?;
        let csrf = form.csrf();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .finish();
        self.try_request("POST", "/signin", Some(body)).await
    }

    /// The home page's CSRF token (the session's).
    async fn session_csrf(&mut self) -> String {
        let home = self.get("/").await;
        assert_eq!(home.status, 200, "{home:?}");
        home.csrf()
    }
}

/// Asserts `reply` sends the browser to the sign-in page.
pub(crate) fn to_signin(reply: &Reply) {
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(reply.header("location"), "/signin", "{reply:?}");
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `browser`'s session, ended in the database by a command, to stop working: the
/// daemon keeps a session it looked up for five seconds, so within that of `ended`.
async fn ended_within_seconds(browser: &Browser, ended: std::time::Instant) {
    wait_for("a session ended by a command", || {
        let mut b = browser.clone();
        async move {
            let r = b.try_request("GET", "/", None).await?;
            (r.status == 303).then_some(())
        }
    })
    .await;
    let took = ended.elapsed();
    assert!(took < Duration::from_secs(7), "{took:?}");
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `[[user]]` tables: Ana the admin, Sam in Sales, Mia in Marketing (without a password).
pub(crate) const USERS: &str = "[[user]]\nemail = \"Ana@company.com\"\nname = \"Ana <Admin> Lima\"\nrole = \"admin\"\n\n\
     [[user]]\nemail = \"sam@company.com\"\nrole = \"sales\"\n\n\
     [[user]]\nemail = \"mia@company.com\"\nrole = \"marketing\"\n";

/// A configuration reading an empty Maildir, listening on `port`; `http` and `extra` are
/// appended to `[http]` and after it.
pub(crate) fn write_config(dir: &Path, db: &TestDb, port: u16, http: &str, extra: &str) -> PathBuf {
    ConfigFile::new(dir, &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .raw(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n\n{extra}\n"
        ))
        .write()
}

/// `leadloop users ARGS --password-stdin` with `password` on stdin.
pub(crate) fn users(config: &Path, args: &[&str], password: &str) -> (i32, String, String) {
    let mut all = vec!["users"];
    all.extend_from_slice(args);
    all.push("--password-stdin");
    with_config(config, &all).run_with_stdin(&format!("{password}\n"))
}

/// `leadloop users list --json`, by address.
fn listed(config: &Path) -> BTreeMap<String, serde_json::Value> {
    let (code, out, err) = with_config(config, &["users", "list", "--json"]).run();
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .map(|v| (v["email"].as_str().unwrap().to_owned(), v))
        .collect()
}

/// The daemon, in this process, with its shutdown and reload handles.
pub(crate) struct Daemon {
    shutdown: CancellationToken,
    reload: mpsc::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    pub(crate) async fn start(config_path: &Path, port: u16) -> Daemon {
        let config = Config::load(config_path).expect("a valid test configuration");
        let shutdown = CancellationToken::new();
        let (reload, reload_rx) = mpsc::channel(1);
        let task = {
            let (path, token) = (config_path.to_owned(), shutdown.clone());
            tokio::spawn(
                async move { leadloop::daemon::run(&path, config, token, reload_rx).await },
            )
        };
        wait_for("the listener", || async {
            TcpStream::connect(("127.0.0.1", port)).await.ok()
        })
        .await;
        Daemon {
            shutdown,
            reload,
            task,
        }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().expect("the daemon stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_sessions_roles_csrf_and_the_rate_limit() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No public_url: no sign-in links.
    let config = write_config(dir.path(), &db, port, "", USERS);

    // Passwords: only for configured users, once with `add`, at least 12 characters.
    let (code, out, err) = users(&config, &["add", "ANA@company.com"], ANA_PASSWORD);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("password set for ana@company.com (admin)"),
        "{out}"
    );
    let (code, _, err) = users(&config, &["add", ANA], "another long password");
    assert_eq!(code, 1);
    assert!(
        err.contains("use `leadloop users passwd ana@company.com`"),
        "{err}"
    );
    let (code, _, err) = users(&config, &["add", "nobody@company.com"], SAM_PASSWORD);
    assert_eq!(code, 1);
    assert!(
        err.contains("nobody@company.com is not a [[user]]"),
        "{err}"
    );
    let (code, _, err) = users(&config, &["add", SAM], "tiny-pw");
    assert_eq!(code, 1);
    assert!(err.contains("at least 12 characters"), "{err}");
    assert!(
        !err.contains("tiny-pw"),
        "the password is never echoed: {err}"
    );
    let (code, _, err) = users(&config, &["passwd", SAM], SAM_PASSWORD);
    assert_eq!(code, 1, "passwd needs a first password");
    assert!(
        err.contains("use `leadloop users add sam@company.com`"),
        "{err}"
    );
    let (code, _, err) = users(&config, &["add", SAM], SAM_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let list = listed(&config);
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list[ANA]["role"], "admin");
    assert_eq!(list[ANA]["password"], true);
    assert_eq!(list[MIA]["password"], false);
    assert_eq!(list[SAM]["sessions"], 0);
    let (code, table, _) = with_config(&config, &["users", "list"]).run();
    assert_eq!(code, 0);
    assert!(
        table.contains("not set") && table.contains("marketing"),
        "{table}"
    );

    let daemon = Daemon::start(&config, port).await;
    let mut anon = Browser::new(port);

    // Signed out: a page's GET goes to the sign-in page, anything else is 401.
    to_signin(&anon.get("/").await);
    to_signin(&anon.get("/admin/users").await);
    for path in ["/admin/users/end-sessions", "/signout"] {
        let r = anon.post(path, &[("email", SAM)]).await;
        assert_eq!(r.status, 401, "{path}: {r:?}");
    }
    let mut forged = Browser::new(port);
    forged.cookies.insert(
        "leadloop_session".into(),
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
    );
    to_signin(&forged.get("/").await);

    // The sign-in page: a strict policy, a pre-session cookie, no link form without public_url.
    let form = anon.get("/signin").await;
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src") && csp.contains("'self'"),
        "{csp}"
    );
    assert!(!form.body.contains("<script"), "{}", form.body);
    let pre = form
        .set_cookie("leadloop_signin")
        .expect("a pre-session cookie");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    assert!(!form.body.contains("/signin/link"), "{}", form.body);
    let r = anon
        .post("/signin/link", &[("csrf", &form.csrf()), ("email", ANA)])
        .await;
    assert_eq!(r.status, 404, "no links without public_url");
    let css = anon.get("/static/app.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));

    // A sign-in form without its token, or from a browser without the cookie: 403.
    let r = anon
        .post("/signin", &[("email", SAM), ("password", SAM_PASSWORD)])
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let mut cookieless = Browser::new(port);
    let r = cookieless
        .post(
            "/signin",
            &[
                ("csrf", &form.csrf()),
                ("email", SAM),
                ("password", SAM_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.set_cookie("leadloop_session").is_none());

    // Wrong password, unknown address, user without password: the same page, no session.
    let mut wrong = Vec::new();
    for (email, password) in [
        (SAM, "not sam's password"),
        ("nobody@company.com", SAM_PASSWORD),
        (MIA, "any long password"),
    ] {
        let mut b = Browser::new(port);
        let r = b.sign_in(email, password).await;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.set_cookie("leadloop_session").is_none(), "{r:?}");
        assert!(!b.cookies.contains_key("leadloop_session"));
        assert!(
            r.body.contains("The address or the password is wrong."),
            "{}",
            r.body
        );
        wrong.push(
            r.body
                .replace(email, "ADDRESS")
                .replace(&b.cookies["leadloop_signin"], "T"),
        );
    }
    assert!(wrong.windows(2).all(|w| w[0] == w[1]), "{wrong:#?}");
    // ... after about the same time: an unknown address is checked against a decoy hash. The
    // fastest of three each, so a busy machine does not decide.
    let fastest = |email: &'static str| async move {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let mut b = Browser::new(port);
            let form = b.get("/signin").await;
            let start = std::time::Instant::now();
            let r = b
                .post(
                    "/signin",
                    &[
                        ("csrf", &form.csrf()),
                        ("email", email),
                        ("password", "wrong wrong wrong"),
                    ],
                )
                .await;
            best = best.min(start.elapsed());
            assert_eq!(r.status, 401);
        }
        best
    };
    let (wrong_password, unknown) = (fastest(ANA).await, fastest("nobody@company.com").await);
    eprintln!("sign-in failure: wrong password {wrong_password:?}, unknown address {unknown:?}");
    assert!(
        unknown * 3 > wrong_password,
        "{unknown:?} vs {wrong_password:?}"
    );

    // The right password: a session cookie that no script reads and no other site sends.
    let mut sam = Browser::new(port);
    let r = sam.sign_in("Sam@Company.com", SAM_PASSWORD).await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), "/");
    let cookie = r.set_cookie("leadloop_session").expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    assert!(
        !sam.cookies.contains_key("leadloop_signin"),
        "the pre-session cookie is gone"
    );
    let home = sam.get("/").await;
    assert_eq!(home.status, 200, "{home:?}");
    assert!(home.body.contains("sam@company.com") && home.body.contains("sales"));
    assert!(!home.body.contains("/admin/users"), "{}", home.body);
    // Signed in, the sign-in page sends them home.
    assert_eq!(sam.get("/signin").await.header("location"), "/");

    // Sales may not see the admin page, nor use its form.
    let r = sam.get("/admin/users").await;
    assert_eq!(r.status, 403, "{r:?}");
    let sam_csrf = sam.session_csrf().await;
    let r = sam
        .post(
            "/admin/users/end-sessions",
            &[("csrf", &sam_csrf), ("email", ANA)],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");

    // The admin sees every user, with her name escaped.
    let mut ana = Browser::new(port);
    assert_eq!(ana.sign_in(ANA, ANA_PASSWORD).await.status, 303);
    let page = ana.get("/admin/users").await;
    assert_eq!(page.status, 200, "{page:?}");
    for text in [SAM, MIA, "marketing", "not set", "Ana &lt;Admin&gt; Lima"] {
        assert!(page.body.contains(text), "{text}:\n{}", page.body);
    }
    assert!(!page.body.contains("<Admin>"), "{}", page.body);
    assert_eq!(listed(&config)[SAM]["sessions"], 1);

    // A POST without the session's token, or with another session's, changes nothing.
    let r = ana
        .post("/admin/users/end-sessions", &[("email", SAM)])
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = ana
        .post(
            "/admin/users/end-sessions",
            &[("csrf", &sam_csrf), ("email", SAM)],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(sam.get("/").await.status, 200, "Sam is still signed in");
    // With it, Sam's sessions end.
    let ana_csrf = ana.session_csrf().await;
    let r = ana
        .post(
            "/admin/users/end-sessions",
            &[("csrf", &ana_csrf), ("email", SAM)],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, "/admin/users"),
        "{r:?}"
    );
    to_signin(&sam.get("/").await);
    assert_eq!(listed(&config)[SAM]["sessions"], 0);

    // Signing out needs the token too, and ends the session at once, also for a copy of the
    // cookie the daemon saw a moment ago.
    assert_eq!(ana.post("/signout", &[]).await.status, 403);
    let mut ana_copy = ana.clone();
    assert_eq!(ana_copy.get("/").await.status, 200);
    let r = ana.post("/signout", &[("csrf", &ana_csrf)]).await;
    to_signin(&r);
    assert!(!ana.cookies.contains_key("leadloop_session"));
    to_signin(&ana.get("/").await);
    to_signin(&ana_copy.get("/").await);

    // Five failures for one address (one was above): the sixth try is refused, even with the
    // right password.
    let mut guesser = Browser::new(port);
    for i in 0..4 {
        let r = guesser
            .sign_in(SAM, &format!("guess number {i} for sam"))
            .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let r = guesser.sign_in(SAM, SAM_PASSWORD).await;
    assert_eq!(r.status, 429, "{r:?}");
    let wait: u64 = r
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((800..=900).contains(&wait), "{wait}");
    assert!(r.set_cookie("leadloop_session").is_none());
    // Another address is not held back by Sam's.
    assert_eq!(
        Browser::new(port).sign_in(ANA, ANA_PASSWORD).await.status,
        303
    );

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_by_expiry_password_change_and_removal() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &db, port, "session_lifetime = \"2s\"", USERS);
    for (who, password) in [(ANA, ANA_PASSWORD), (SAM, SAM_PASSWORD)] {
        let (code, _, err) = users(&config, &["add", who], password);
        assert_eq!(code, 0, "{err}");
    }
    let daemon = Daemon::start(&config, port).await;

    // A session lasts session_lifetime.
    let mut sam = Browser::new(port);
    let r = sam.sign_in(SAM, SAM_PASSWORD).await;
    assert!(
        r.set_cookie("leadloop_session")
            .unwrap()
            .contains("Max-Age=2"),
        "{r:?}"
    );
    assert_eq!(sam.get("/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    to_signin(&sam.get("/").await);
    assert_eq!(listed(&config)[SAM]["sessions"], 0);

    // Longer sessions from a reload on.
    write_config(dir.path(), &db, port, "session_lifetime = \"1h\"", USERS);
    daemon.reload.send(()).await.unwrap();
    wait_for("sessions of an hour after the reload", || {
        let mut b = Browser::new(port);
        async move {
            let r = b.try_sign_in(ANA, ANA_PASSWORD).await?;
            r.set_cookie("leadloop_session")
                .is_some_and(|c| c.contains("Max-Age=3600"))
                .then_some(())
        }
    })
    .await;

    // A new password ends every session of Sam's, and only the new one works.
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    let mut sam_elsewhere = Browser::new(port);
    assert_eq!(sam_elsewhere.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    let mut ana = Browser::new(port);
    assert_eq!(ana.sign_in(ANA, ANA_PASSWORD).await.status, 303);
    assert_eq!(sam.get("/").await.status, 200);
    assert_eq!(sam_elsewhere.get("/").await.status, 200);
    let (code, out, err) = users(&config, &["passwd", SAM], "sam's newer passphrase");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 sessions ended"), "{out}");
    let ended = std::time::Instant::now();
    ended_within_seconds(&sam, ended).await;
    ended_within_seconds(&sam_elsewhere, ended).await;
    to_signin(&sam.get("/").await);
    to_signin(&sam_elsewhere.get("/").await);
    assert_eq!(ana.get("/").await.status, 200, "Ana's session is hers");
    assert_eq!(
        Browser::new(port).sign_in(SAM, SAM_PASSWORD).await.status,
        401
    );
    assert_eq!(sam.sign_in(SAM, "sam's newer passphrase").await.status, 303);

    // Taken out of [[user]]: signed out at the first request after the reload.
    let without_ana = USERS.replace("email = \"Ana@company.com\"", "email = \"ann@company.com\"");
    write_config(
        dir.path(),
        &db,
        port,
        "session_lifetime = \"1h\"",
        &without_ana,
    );
    daemon.reload.send(()).await.unwrap();
    wait_for("Ana signed out by the reload", || {
        let mut ana = ana.clone();
        async move {
            let r = ana.try_request("GET", "/", None).await?;
            (r.status == 303).then_some(())
        }
    })
    .await;
    assert_eq!(
        Browser::new(port).sign_in(ANA, ANA_PASSWORD).await.status,
        401
    );
    assert_eq!(sam.get("/").await.status, 200, "Sam is still in [[user]]");

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_sign_in_link_works_once() {
    let sink = tokio::task::spawn_blocking(|| SmtpSink::start(&[]))
        .await
        .unwrap()
        .expect("starting smtp-sink");
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &db,
        port,
        &format!("public_url = \"http://127.0.0.1:{port}\""),
        &format!(
            "{USERS}\n[[sender]]\nname = \"team\"\naddress = \"hello@company.com\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n",
            sink.port()
        ),
    );
    let daemon = Daemon::start(&config, port).await;

    // The same answer for a user and for anyone else; only the user gets mail.
    let mut browser = Browser::new(port);
    let form = browser.get("/signin").await;
    assert!(
        form.body.contains("Email me a sign-in link"),
        "{}",
        form.body
    );
    let csrf = form.csrf();
    assert_eq!(
        browser.post("/signin/link", &[("email", MIA)]).await.status,
        403
    );
    let known = browser
        .post("/signin/link", &[("csrf", &csrf), ("email", MIA)])
        .await;
    let unknown = browser
        .post(
            "/signin/link",
            &[("csrf", &csrf), ("email", "nobody@company.com")],
        )
        .await;
    assert_eq!(known.status, 200, "{known:?}");
    assert!(
        known.body.contains("a sign-in link is on its way"),
        "{}",
        known.body
    );
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let message = wait_for("the link in smtp-sink", || async {
        sink.messages().into_iter().next()
    })
    .await;
    let message = String::from_utf8(message).unwrap();
    assert!(message.contains("To: mia@company.com"), "{message}");
    assert!(message.contains("From: hello@company.com"), "{message}");
    let token = link_tokens(&sink, port).pop().expect("the link");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "nothing for an unknown address");
    let path = format!("/signin/link/{token}");

    // A GET, twice (a link scanner, then the person), changes nothing.
    let mut mia = Browser::new(port);
    for _ in 0..2 {
        let page = mia.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert!(
            page.body.contains("<form method=\"post\">"),
            "{}",
            page.body
        );
        assert!(page.set_cookie("leadloop_session").is_none());
    }
    // The button without its token does nothing either.
    assert_eq!(mia.post(&path, &[]).await.status, 403);
    let csrf = mia.get(&path).await.csrf();
    let r = mia.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.header("location")), (303, "/"), "{r:?}");
    let home = mia.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("mia@company.com") && home.body.contains("marketing"));
    assert_eq!(
        mia.get("/admin/users").await.status,
        403,
        "marketing is no admin"
    );

    // Used once, the link is gone.
    let mut again = Browser::new(port);
    assert_eq!(again.get(&path).await.status, 404);
    let csrf = again.get("/signin").await.csrf();
    let r = again.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.set_cookie("leadloop_session").is_none());

    // A new password voids the links not used yet, and ends the sessions.
    let (code, _, err) = users(&config, &["add", MIA], "mia's long passphrase");
    assert_eq!(code, 0, "{err}");
    let csrf = again.get("/signin").await.csrf();
    let r = again
        .post("/signin/link", &[("csrf", &csrf), ("email", MIA)])
        .await;
    assert_eq!(r.status, 200);
    let second = wait_for("a second link", || async {
        link_tokens(&sink, port).into_iter().find(|t| *t != token)
    })
    .await;
    let second = format!("/signin/link/{second}");
    assert_eq!(again.get(&second).await.status, 200);
    let (code, out, err) = users(&config, &["passwd", MIA], "mia's newer passphrase");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 session ended"), "{out}");
    ended_within_seconds(&mia, std::time::Instant::now()).await;
    assert_eq!(again.get(&second).await.status, 404);

    daemon.stop().await;
}

/// The tokens of the sign-in links smtp-sink received, read as a mail client would
/// (quoted-printable soft line breaks removed).
fn link_tokens(sink: &SmtpSink, port: u16) -> Vec<String> {
    let prefix = format!("http://127.0.0.1:{port}/signin/link/");
    sink.messages()
        .into_iter()
        .filter_map(|m| {
            let text = String::from_utf8(m)
                .ok()?
                .replace("=\r\n", "")
                .replace("=\n", "");
            let at = text.find(&prefix)? + prefix.len();
            let token = text.get(at..at + 64)?;
            token
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| token.to_owned())
        })
        .collect()
}

/// The leads list: signed-in people only, 50 a page, search across address, name and company,
/// filters kept across pages, and whatever came from outside written as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leads_list_searches_filters_pages_and_escapes() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &db, port, "", USERS);
    let (code, _, err) = users(&config, &["add", SAM], SAM_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let mut csv = String::from("email,name,company,channel,owner\n");
    for n in 0..60 {
        let company = if n % 2 == 0 { "Acme" } else { "Globex 50%" };
        let channel = if n % 3 == 0 { "fair" } else { "web" };
        csv.push_str(&format!(
            "p{n}@example.org,Person {n},{company},{channel},sam@company.com\n"
        ));
    }
    csv.push_str(
        "x@evil.example,<script>alert(1)</script>,\"\"\"><img src=x onerror=alert(2)>\",web,\n",
    );
    let file = dir.path().join("leads.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");

    let daemon = Daemon::start(&config, port).await;
    let mut anon = Browser::new(port);
    to_signin(&anon.get("/leads").await);
    let mut sam = Browser::new(port);
    let reply = sam.sign_in(SAM, SAM_PASSWORD).await;
    assert_eq!(reply.status, 303, "{reply:?}");
    let rows = |r: &Reply| r.body.matches("<tr>").count() - 1;

    let first = sam.get("/leads").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(rows(&first), 50, "{}", first.body);
    assert!(first.body.contains("rel=\"next\""), "{}", first.body);
    let second = sam.get("/leads?page=1").await;
    assert_eq!(rows(&second), 11, "{}", second.body);
    assert!(!second.body.contains("rel=\"next\""));
    assert!(second.body.contains("rel=\"prev\""));

    // Search: any part of the company, case aside, `%` taken literally; filters combine and
    // the next page keeps them.
    let globex = sam.get("/leads?q=GLOBEX+50%25").await;
    assert_eq!(rows(&globex), 30, "{}", globex.body);
    let acme_fair = sam.get("/leads?q=acme&channel=fair").await;
    assert_eq!(rows(&acme_fair), 10, "{}", acme_fair.body);
    let percent = sam.get("/leads?q=%25").await;
    assert_eq!(
        rows(&percent),
        30,
        "only the companies with a % sign: {}",
        percent.body
    );
    let owned = sam.get("/leads?owner=SAM@company.com&sort=email").await;
    assert_eq!(rows(&owned), 50);
    assert!(
        owned
            .body
            .contains("owner=SAM%40company.com&amp;sort=email&amp;page=1"),
        "{}",
        owned.body
    );
    let bad = sam.get("/leads?from=yesterday").await;
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("is not a date"), "{}", bad.body);
    assert_eq!(rows(&bad), 50, "the list shows without the broken filter");

    // What came from outside is text.
    let evil = sam.get("/leads?q=evil").await;
    assert_eq!(rows(&evil), 1, "{}", evil.body);
    assert!(!evil.body.contains("<script>alert"), "{}", evil.body);
    assert!(!evil.body.contains("<img"), "{}", evil.body);
    assert!(
        evil.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        evil.body
    );
    assert!(
        evil.body.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{}",
        evil.body
    );

    // The lead's page, from the list's link: its card as text, its timeline with the import.
    let at = evil
        .body
        .find("href=\"/leads/")
        .expect("a link to the lead")
        + 6;
    let href = evil.body[at..evil.body[at..].find('"').unwrap() + at].to_owned();
    let page = sam.get(&href).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("x@evil.example"), "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<h2>Timeline</h2>"), "{}", page.body);
    assert_eq!(sam.get("/leads/999999").await.status, 404);
    assert_eq!(sam.get("/leads/not-a-number").await.status, 404);

    // A verdict from the page: CSRF-checked, recorded with Sam as `by`, shown on the page.
    let verdict_path = format!("{href}/verdict");
    let refused = sam
        .post(
            &verdict_path,
            &[("verdict", "unqualified"), ("reason", "no budget")],
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let csrf = page.csrf();
    let given = sam
        .post(
            &verdict_path,
            &[
                ("csrf", csrf.as_str()),
                ("verdict", "unqualified"),
                ("reason", "no budget"),
                ("comment", "<b>call back</b> next year"),
            ],
        )
        .await;
    assert_eq!(given.status, 303, "{given:?}");
    assert_eq!(given.header("location"), href);
    let page = sam.get(&href).await;
    assert!(
        page.body.contains("<td>unqualified</td><td>no budget</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("sam@company.com"), "{}", page.body);
    assert!(
        page.body.contains("&lt;b&gt;call back&lt;&#x2f;b&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<option value=\"no budget\">"),
        "the reason is offered again: {}",
        page.body
    );
    let (_, shown, _) = with_config(&config, &["leads", "show", "x@evil.example", "--json"]).run();
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "unqualified", "{shown}");
    assert_eq!(shown["verdicts"][0]["by"], "sam@company.com", "{shown}");
    assert_eq!(shown["verdicts"][0]["source"], "web", "{shown}");
    let nonsense = sam
        .post(
            &verdict_path,
            &[("csrf", csrf.as_str()), ("verdict", "not now")],
        )
        .await;
    assert_eq!(nonsense.status, 400, "not now needs a date: {nonsense:?}");
    to_signin(&anon.get(&href).await);
    daemon.stop().await;
}

/// The leads shown on a list page, as their addresses, in the page's order.
fn listed_emails(reply: &Reply) -> Vec<String> {
    reply
        .body
        .split("<td><a href=\"/leads/")
        .skip(1)
        .map(|row| {
            let start = row.find('>').unwrap() + 1;
            row[start..row.find("</a>").unwrap()].to_owned()
        })
        .collect()
}

/// The path of a list page's link with `rel`, as a browser reads it.
fn page_link(reply: &Reply, rel: &str) -> Option<String> {
    let end = reply.body.find(&format!("\" rel=\"{rel}\""))?;
    let start = reply.body[..end].rfind("href=\"").unwrap() + 6;
    Some(
        reply.body[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/"),
    )
}

/// The list's links go on from the last lead of the page (and back from its first), in every
/// order: following them shows every lead once, in order, the same pages as counting pages
/// does, and the same pages backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leads_list_pages_on_from_a_position() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &db, port, "", USERS);
    let (code, _, err) = users(&config, &["add", SAM], SAM_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let mut csv = String::from("email,name,channel\n");
    // Imported in one go, so many leads share their creation time and the id decides.
    let order = [7, 3, 129, 0, 64]
        .into_iter()
        .chain((8..129).filter(|n| *n != 64))
        .chain([1, 2, 4, 5, 6]);
    for n in order {
        csv.push_str(&format!("p{n:03}@example.org,Person {n},web\n"));
    }
    csv.push_str("other@example.org,Other,fair\n");
    let file = dir.path().join("leads.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");

    let daemon = Daemon::start(&config, port).await;
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    for sort in ["newest", "oldest", "email"] {
        let mut pages = Vec::new();
        let mut path = format!("/leads?channel=web&sort={sort}");
        loop {
            let reply = sam.get(&path).await;
            assert_eq!(reply.status, 200, "{path}: {reply:?}");
            pages.push((path.clone(), listed_emails(&reply)));
            match page_link(&reply, "next") {
                Some(next) => {
                    assert!(next.contains("after="), "{next}");
                    path = next;
                }
                None => break,
            }
        }
        let sizes: Vec<usize> = pages.iter().map(|(_, p)| p.len()).collect();
        assert_eq!(sizes, [50, 50, 30], "{sort}: {pages:?}");
        let all: Vec<String> = pages.iter().flat_map(|(_, p)| p.clone()).collect();
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 130, "{sort}: every lead once");
        assert!(!all.contains(&"other@example.org".to_owned()));
        if sort == "email" {
            assert_eq!(all, distinct, "in address order");
        }
        // Counting pages shows the same ones.
        for (n, (_, page)) in pages.iter().enumerate() {
            let counted = sam
                .get(&format!("/leads?channel=web&sort={sort}&page={n}"))
                .await;
            assert_eq!(&listed_emails(&counted), page, "{sort} page {n}");
        }
        // And back from the last page, page by page.
        let mut path = pages[2].0.clone();
        for n in (0..2).rev() {
            let reply = sam.get(&path).await;
            path = page_link(&reply, "prev").expect("a previous page");
            let back = sam.get(&path).await;
            assert_eq!(
                listed_emails(&back),
                pages[n].1,
                "{sort} back to page {n}: {path}"
            );
            assert!(
                back.body.contains(&format!("Page {}", n + 1)),
                "{}",
                back.body
            );
            assert_eq!(path.contains("before="), n > 0, "{path}");
        }
        assert!(page_link(&sam.get(&path).await, "prev").is_none());
    }
    // A position that is none shows the first page and says so.
    let odd = sam.get("/leads?after=nonsense&sort=newest").await;
    assert_eq!(odd.status, 200);
    assert!(odd.body.contains("not a position"), "{}", odd.body);
    assert_eq!(listed_emails(&odd).len(), 50);
    daemon.stop().await;
}

/// The lead page's other changes: a new owner, leaving a sequence and pausing them, each
/// CSRF-checked and on the timeline with the signed-in person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_unenroll_and_pause_from_the_lead_page() {
    let db = test_db().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let step = |id: &str| {
        format!(
            "[enroll]\nmanual = true\n\n[[step]]\nid = \"{id}\"\ndelay = \"3d\"\ntemplate = \"t\"\nsubject = \"s\"\n"
        )
    };
    let (welcome, later) = (step("a"), step("b"));
    let config = ConfigFile::new(dir.path(), &db.url)
        .maildir("inbox")
        .identity(&["leads@company.com"], &["company.com"])
        .nurture(
            &[("welcome", &welcome), ("later", &later)],
            &[("t.txt", "Hi.\n")],
        )
        .raw(&format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n{USERS}\n"
        ))
        .write();
    let (code, _, err) = users(&config, &["add", SAM], SAM_PASSWORD);
    assert_eq!(code, 0, "{err}");
    let file = dir.path().join("one.csv");
    std::fs::write(&file, "email,name\nlee@example.org,Lee\n").unwrap();
    let (code, out, err) = with_config(&config, &["import", file.to_str().unwrap()]).run();
    assert_eq!(code, 0, "{out}{err}");
    for seq in ["welcome", "later"] {
        let (code, out, err) = with_config(&config, &["enroll", "lee@example.org", seq]).run();
        assert_eq!(code, 0, "{out}{err}");
    }
    let daemon = Daemon::start(&config, port).await;
    let mut sam = Browser::new(port);
    assert_eq!(sam.sign_in(SAM, SAM_PASSWORD).await.status, 303);
    let list = sam.get("/leads?q=lee").await;
    let at = list
        .body
        .find("href=\"/leads/")
        .expect("a link to the lead")
        + 6;
    let href = list.body[at..list.body[at..].find('"').unwrap() + at].to_owned();
    let page = sam.get(&href).await;
    let csrf = page.csrf();
    assert!(page.body.contains("Unenroll"), "{}", page.body);

    assert_eq!(
        sam.post(&format!("{href}/owner"), &[("owner", "mia@company.com")])
            .await
            .status,
        403
    );
    let r = sam
        .post(
            &format!("{href}/owner"),
            &[("csrf", &csrf), ("owner", "mia@company.com")],
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let r = sam
        .post(
            &format!("{href}/owner"),
            &[("csrf", &csrf), ("owner", "not an address")],
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = sam
        .post(
            &format!("{href}/unenroll"),
            &[("csrf", &csrf), ("sequence", "welcome")],
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    let r = sam
        .post(
            &format!("{href}/pause"),
            &[("csrf", &csrf), ("until", &tomorrow)],
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let r = sam
        .post(
            &format!("{href}/pause"),
            &[("csrf", &csrf), ("until", "2001-01-01")],
        )
        .await;
    assert_eq!(r.status, 400, "a day in the past: {r:?}");

    let (_, shown, _) = with_config(&config, &["leads", "show", "lee@example.org", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["owner"], "mia@company.com", "{v}");
    let text = v.to_string();
    assert!(text.contains("unenrolled by sam@company.com"), "{v}");
    assert!(text.contains("paused by sam@company.com"), "{v}");
    let page = sam.get(&href).await;
    assert!(page.body.contains("exited"), "{}", page.body);
    daemon.stop().await;
}
