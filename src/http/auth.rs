//! Who is signed in: sessions, the extractors pages use, roles and CSRF.
//!
//! **Sessions.** Signing in (by password or by a one-time link, `auth_pages.rs`) creates a
//! session row keyed by the SHA-256 of a random token and sets the token as the cookie
//! `leadloop_session` (`HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when
//! `[http] public_url` is https). It lasts `[http] session_lifetime`; an expired one is refused
//! and deleted. Every request looks the session's user up in `[[user]]` as loaded now, so
//! taking someone out of the configuration (and reloading) ends their access at once, and a
//! changed role applies at once.
//!
//! **Pages.** A handler takes [`SignedIn`] for a GET; without a live session a GET answers
//! `303 See Other` to `/signin`, anything else `401`. A role check is
//! [`SignedIn::require`]: `admin` passes every check, `sales` and `marketing` only their own;
//! a refusal is `403`.
//!
//! **CSRF.** Every session has its own random token, which every form of its pages carries
//! in the hidden field `csrf`. A POST handler takes [`Posted`], which reads the form and
//! answers `403` when the field is missing or wrong; [`SignedIn`] alone refuses every method
//! but GET and HEAD with `403`, so a POST handler cannot forget the check. The session cookie
//! is `SameSite=Strict` on top, so a browser does not send it with another site's request.
//! The sign-in forms, which have no session yet, use a double submit: `GET /signin` sets a
//! random pre-session cookie `leadloop_signin` (`HttpOnly`, `SameSite=Strict`, one hour) and
//! puts the same token in the form; a POST whose field and cookie differ is refused with `403`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use minijinja::{Value, context};
use tracing::{info, warn};

use super::auth_limit::Limiter;
use super::auth_secret::{is_token, same_token, token_hash};
use super::session_cache::SessionCache;
use super::{App, MAX_BODY_BYTES, page, view};
use crate::config::{Config, Role, WebUser};
use crate::diagnostics::error_chain;
use crate::domain::{EmailAddress, MessageId};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "leadloop_session";

/// The pre-session cookie of the sign-in forms (double-submit CSRF).
pub const SIGNIN_COOKIE: &str = "leadloop_signin";

/// How long the pre-session cookie lives: long enough to fill in the form.
const SIGNIN_COOKIE_LIFETIME: Duration = Duration::from_secs(3600);

/// Failed sign-ins allowed per address within [`LIMIT_WINDOW`].
pub const FAILURES_PER_EMAIL: usize = 5;

/// Failed sign-ins allowed per client within [`LIMIT_WINDOW`]: more than per address, so that
/// a team behind one NAT address does not lock itself out with a few typos.
pub const FAILURES_PER_CLIENT: usize = 20;

/// How long a failed sign-in counts against the limits.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The sign-in rate limits, kept by the daemon across reloads.
#[derive(Debug)]
pub struct SignInLimits {
    /// Failures (and link requests) per sign-in address.
    pub(super) by_email: Limiter,
    /// Failures (and link requests) per client address.
    pub(super) by_client: Limiter,
}

impl SignInLimits {
    /// Five failures per address and twenty per client, each within 15 minutes.
    pub fn new() -> SignInLimits {
        SignInLimits {
            by_email: Limiter::new(FAILURES_PER_EMAIL, LIMIT_WINDOW),
            by_client: Limiter::new(FAILURES_PER_CLIENT, LIMIT_WINDOW),
        }
    }
}

impl Default for SignInLimits {
    fn default() -> SignInLimits {
        SignInLimits::new()
    }
}

/// A message that is sent at once and kept nowhere: a sign-in link is a secret, so it must
/// not wait in the outbox (the database keeps only its hash).
#[derive(Debug, Clone)]
pub struct DirectMail {
    /// The envelope sender.
    pub envelope_from: String,
    /// The one recipient.
    pub recipient: String,
    /// Its Message-ID, without angle brackets.
    pub message_id: MessageId,
    /// The whole message.
    pub raw: Vec<u8>,
}

/// What hands a [`DirectMail`] to `[smtp]`; the daemon gives the view its sender.
pub trait DirectMailer: Send + Sync {
    /// Sends `mail` now; the server's answer, or why it failed.
    fn send(
        &self,
        mail: DirectMail,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// What the view needs from the configuration and the daemon.
#[derive(Clone)]
pub struct Web {
    /// `[[user]]`: who may sign in, looked up on every request.
    users: Vec<WebUser>,
    /// `[http] public_url`: the base of sign-in links; without it, there are none.
    pub(super) public_url: Option<String>,
    /// The path of `public_url` ("" at the root): what the pages' links and the cookies'
    /// paths start with.
    pub(super) base: String,
    /// Whether cookies say `Secure` (the public URL is https).
    secure: bool,
    /// `[http] session_lifetime`.
    pub(super) session_lifetime: Duration,
    /// Who sign-in links come from: the address and display name, and the envelope sender.
    pub(super) link_from: Option<(EmailAddress, Option<String>, EmailAddress)>,
    /// What sends sign-in links; `None` without `[smtp]`.
    pub(super) mailer: Option<Arc<dyn DirectMailer>>,
    /// The sign-in rate limits.
    pub(super) limits: Arc<SignInLimits>,
    /// What a verdict given on a lead's page does (the daemon's own rules); `None` where the
    /// view takes no verdicts.
    pub(super) actions: Option<Arc<crate::actions::Actions>>,
    /// The sequences a `nurture` verdict may name.
    pub(super) sequences: Vec<String>,
    /// The sessions looked up in the last few seconds.
    pub(super) sessions: Arc<SessionCache>,
    /// `[policy] timezone`: where the reports' days, weeks and months start, as for
    /// `leadloop report`.
    pub(super) zone: chrono_tz::Tz,
    /// Wakes the scheduler, so a sequence resumed on a lead's page goes on at once rather
    /// than at the scheduler's next look.
    pub(super) scheduler: Option<Arc<tokio::sync::Notify>>,
}

impl fmt::Debug for Web {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Web")
            .field("users", &self.users.len())
            .field("public_url", &self.public_url)
            .field("session_lifetime", &self.session_lifetime)
            .field("mailer", &self.mailer.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Web {
    /// Nobody may sign in.
    fn default() -> Web {
        Web {
            users: Vec::new(),
            public_url: None,
            base: String::new(),
            secure: false,
            session_lifetime: crate::config::DEFAULT_SESSION_LIFETIME,
            link_from: None,
            mailer: None,
            limits: Arc::new(SignInLimits::new()),
            actions: None,
            sequences: Vec::new(),
            zone: chrono_tz::Tz::UTC,
            scheduler: None,
            sessions: Arc::new(SessionCache::default()),
        }
    }
}

impl Web {
    /// The view for `config`: its users, public URL, session lifetime, and the sender of
    /// sign-in links (the first `[[sender]]`, else the first `[identity] addresses`).
    pub fn new(config: &Config) -> Web {
        let public_url = config.http.public_url.clone();
        let from = match config.senders.first() {
            Some(s) => Some((s.address.clone(), s.display_name.clone())),
            None => config.identity.addresses.first().map(|a| (a.clone(), None)),
        };
        let link_from = from.map(|(address, name)| {
            let envelope = config
                .smtp
                .as_ref()
                .and_then(|s| s.envelope_from.clone())
                .unwrap_or_else(|| address.clone());
            (address, name, envelope)
        });
        Web {
            users: config.users.clone(),
            base: public_url.as_deref().map(url_path).unwrap_or_default(),
            secure: public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            public_url,
            session_lifetime: config.http.session_lifetime,
            link_from,
            mailer: None,
            limits: Arc::new(SignInLimits::new()),
            actions: None,
            sequences: config
                .sequences
                .sequences
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            zone: config.sequences.settings.policy.timezone,
            scheduler: None,
            sessions: Arc::new(SessionCache::default()),
        }
    }

    /// Wakes the scheduler through `wake` after a change that makes a step due.
    #[must_use]
    pub fn with_scheduler(mut self, wake: Arc<tokio::sync::Notify>) -> Web {
        self.scheduler = Some(wake);
        self
    }

    /// Takes verdicts on lead pages, acting on them as `actions` say.
    #[must_use]
    pub fn with_actions(mut self, actions: Arc<crate::actions::Actions>) -> Web {
        self.actions = Some(actions);
        self
    }

    /// Sends sign-in links with `mailer`.
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<dyn DirectMailer>) -> Web {
        self.mailer = Some(mailer);
        self
    }

    /// Counts failures in `limits` (shared across reloads).
    #[must_use]
    pub fn with_limits(mut self, limits: Arc<SignInLimits>) -> Web {
        self.limits = limits;
        self
    }

    /// The configured users.
    pub(super) fn users(&self) -> &[WebUser] {
        &self.users
    }

    /// The configured user with this address (any case).
    pub(super) fn user(&self, email: &str) -> Option<&WebUser> {
        self.users
            .iter()
            .find(|u| u.email.as_str().eq_ignore_ascii_case(email.trim()))
    }

    /// Whether sign-in links can be sent: a public URL to point them at, a sender, and
    /// someone to send as.
    pub(super) fn links(&self) -> bool {
        self.public_url.is_some() && self.mailer.is_some() && self.link_from.is_some()
    }

    /// Where the home page is.
    pub(super) fn home(&self) -> String {
        format!("{}/", self.base)
    }

    /// Where the sign-in page is.
    pub(super) fn signin(&self) -> String {
        format!("{}/signin", self.base)
    }

    /// The session cookie's path: the whole view.
    fn cookie_path(&self) -> String {
        if self.base.is_empty() {
            "/".to_owned()
        } else {
            self.base.clone()
        }
    }

    /// `Set-Cookie` for a new session token.
    pub(super) fn session_cookie(&self, token: &str) -> HeaderValue {
        cookie(
            SESSION_COOKIE,
            token,
            &self.cookie_path(),
            self.session_lifetime.as_secs(),
            self.secure,
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub(super) fn clear_session_cookie(&self) -> HeaderValue {
        cookie(SESSION_COOKIE, "", &self.cookie_path(), 0, self.secure)
    }

    /// `Set-Cookie` for the sign-in forms' pre-session token.
    pub(super) fn signin_cookie(&self, token: &str) -> HeaderValue {
        cookie(
            SIGNIN_COOKIE,
            token,
            &self.signin(),
            SIGNIN_COOKIE_LIFETIME.as_secs(),
            self.secure,
        )
    }

    /// `Set-Cookie` that removes the pre-session token.
    pub(super) fn clear_signin_cookie(&self) -> HeaderValue {
        cookie(SIGNIN_COOKIE, "", &self.signin(), 0, self.secure)
    }
}

/// The path of a URL checked as `[http] public_url` is (`https://host[:port]/path`), without
/// a trailing `/`.
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map(|at| rest[at..].trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names, paths and hex tokens only: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request, if any.
pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The person a request comes from.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Their address (as `[[user]]` has it).
    pub email: EmailAddress,
    /// Their name, or their address when `[[user]]` gives none.
    pub name: String,
    /// Their role now.
    pub role: Role,
    /// The session's CSRF token, which its forms carry.
    csrf: String,
    /// The session's key (the SHA-256 of its token), to end it.
    session: String,
    /// The view's path prefix (`Web::base`), for links and redirects.
    base: String,
}

impl SignedIn {
    /// `Err(403 page)` unless the person has `role`; an admin has every role.
    ///
    /// # Errors
    /// The answer to send instead of the page.
    #[allow(clippy::result_large_err)]
    pub fn require(&self, role: Role) -> Result<(), Response> {
        if self.role == role || self.role == Role::Admin {
            return Ok(());
        }
        info!(user = %self.email, role = %self.role, needs = %role, "a page was refused for its role");
        Err(view::message(
            &self.base,
            StatusCode::FORBIDDEN,
            Some(self),
            "Not allowed",
            "Your role does not give access to this page.",
        ))
    }

    /// The token every form of this session carries in its `csrf` field.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The session's key, to end it.
    pub(super) fn session(&self) -> &str {
        &self.session
    }

    /// The view's path prefix, for links and redirects.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// What the layout shows of them.
    pub(super) fn context(&self) -> Value {
        context! {
            email => self.email.as_str(),
            name => &self.name,
            role => self.role.as_str(),
        }
    }
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<SignedIn, Response> {
        let user = session_of(parts, app).await?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            // A handler that changes something takes `Posted`, which checks the form's token.
            return Err(csrf_refused(&user));
        }
        Ok(user)
    }
}

/// A POST from a signed-in page: who sent it and its form fields, its CSRF token checked.
#[derive(Debug)]
pub struct Posted {
    /// Who sent it.
    pub user: SignedIn,
    /// The form's fields, in order.
    fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }
}

impl FromRequest<App> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, app: &App) -> Result<Posted, Response> {
        let (parts, body) = request.into_parts();
        let user = session_of(&parts, app).await?;
        let fields = read_form(&user.base, body).await?;
        match field(&fields, "csrf") {
            Some(token) if same_token(token, &user.csrf) => Ok(Posted { user, fields }),
            _ => Err(csrf_refused(&user)),
        }
    }
}

/// The fields of a form body (`application/x-www-form-urlencoded`).
pub(super) async fn read_form(base: &str, body: Body) -> Result<Vec<(String, String)>, Response> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            view::message(
                base,
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                "Too large",
                "The form was larger than any of ours.",
            )
        })?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The first value of field `name`.
pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn csrf_refused(user: &SignedIn) -> Response {
    warn!(user = %user.email, "a request without a valid CSRF token was refused");
    view::message(
        &user.base,
        StatusCode::FORBIDDEN,
        Some(user),
        "Not accepted",
        "This request did not come from one of our forms. Go back, reload the page and try again.",
    )
}

/// The live session of the request and its user, or the answer for someone signed out.
pub(super) async fn session_of(parts: &Parts, app: &App) -> Result<SignedIn, Response> {
    let web = &app.0.web;
    let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
        return Err(signed_out(parts, web, false));
    };
    if !is_token(token) {
        return Err(signed_out(parts, web, true));
    }
    let hash = token_hash(token);
    let store = &app.0.store;
    let now = Utc::now();
    let row = match web.sessions.get(&hash, now) {
        Some(row) => row,
        None => match store.session(&hash, now).await {
            Ok(Some(row)) => {
                web.sessions.put(&hash, &row);
                row
            }
            Ok(None) => return Err(signed_out(parts, web, true)),
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot look up a session");
                return Err(page::unavailable());
            }
        },
    };
    let Some(user) = web.user(&row.email) else {
        // Taken out of `[[user]]`: the session ends with the access.
        web.sessions.forget(&hash);
        if let Err(e) = store.end_session(&hash).await {
            warn!(error = %error_chain(&e), "cannot end a session");
        }
        info!(user = %row.email, "a session of someone no longer in [[user]] was ended");
        return Err(signed_out(parts, web, true));
    };
    Ok(SignedIn {
        email: user.email.clone(),
        name: user.display_name().to_owned(),
        role: user.role,
        csrf: row.csrf,
        session: hash,
        base: web.base.clone(),
    })
}

/// A GET of a page goes to the sign-in page; anything else is `401`. A cookie that names no
/// live session is removed.
fn signed_out(parts: &Parts, web: &Web, stale_cookie: bool) -> Response {
    let mut response = if parts.method == Method::GET || parts.method == Method::HEAD {
        Redirect::to(&web.signin()).into_response()
    } else {
        view::message(
            &web.base,
            StatusCode::UNAUTHORIZED,
            None,
            "Signed out",
            "Sign in first, then try again.",
        )
    };
    if stale_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, web.clear_session_cookie());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_a_path_prefix_links_and_cookies_keep_to_it() {
        assert_eq!(url_path("https://leads.company.com"), "");
        assert_eq!(url_path("http://127.0.0.1:8025"), "");
        assert_eq!(url_path("https://company.com/leadloop"), "/leadloop");
        assert_eq!(url_path("https://company.com/a/b/"), "/a/b");
        let web = Web {
            base: "/leadloop".to_owned(),
            ..Web::default()
        };
        assert_eq!(web.home(), "/leadloop/");
        assert_eq!(web.signin(), "/leadloop/signin");
        let session = web.session_cookie("tok");
        assert!(
            session.to_str().unwrap().contains("; Path=/leadloop;"),
            "{session:?}"
        );
        let pre = web.signin_cookie("tok");
        assert!(
            pre.to_str().unwrap().contains("; Path=/leadloop/signin;"),
            "{pre:?}"
        );
        let root = Web::default();
        assert_eq!(
            (root.home().as_str(), root.signin().as_str()),
            ("/", "/signin")
        );
    }

    #[test]
    fn cookies_are_read_among_others_and_written_strict() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; leadloop_session=abc"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("leadloop_signin=def"),
        );
        assert_eq!(cookie_value(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&headers, SIGNIN_COOKIE), Some("def"));
        assert_eq!(cookie_value(&headers, "leadloop"), None);

        let web = Web {
            secure: true,
            ..Web::default()
        };
        assert_eq!(
            web.session_cookie("tok").to_str().unwrap(),
            "leadloop_session=tok; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = Web::default();
        assert!(
            !plain
                .session_cookie("tok")
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            plain
                .clear_session_cookie()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}
