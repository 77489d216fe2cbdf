//! Signing in and out.
//!
//! | route | answers |
//! |---|---|
//! | `GET /signin` | the sign-in form (email and password) and, with `[http] public_url` and `[smtp]`, a second form that emails a sign-in link; a signed-in person goes to `/` |
//! | `POST /signin` | the right password for a `[[user]]`: a new session and `303` to `/`; otherwise the form again (`401`), the same for an unknown address, a missing password and a wrong one |
//! | `POST /signin/link` | mails a one-time link `{public_url}/signin/link/TOKEN` to a `[[user]]`; the same page whether or not the address is one (`404` without `public_url`) |
//! | `GET /signin/link/TOKEN` | a page with a button; it changes nothing, because link scanners fetch every link in a message |
//! | `POST /signin/link/TOKEN` | uses the link up and signs in; a used, expired or unknown link is `404` |
//! | `POST /signout` | ends the session, `303` to `/signin` |
//!
//! **Limits.** Failed sign-ins are counted per address ([`FAILURES_PER_EMAIL`](super::auth::FAILURES_PER_EMAIL)) and per
//! client ([`FAILURES_PER_CLIENT`](super::auth::FAILURES_PER_CLIENT)) within
//! [`LIMIT_WINDOW`](super::auth::LIMIT_WINDOW); past either, `POST /signin` answers `429`
//! with `Retry-After`, even for the right password. Each link request counts against the same
//! limits, so the form cannot be used to flood someone's mailbox. The client is the peer's
//! address, or, when the peer is a loopback address (a reverse proxy on the same machine), the
//! last address of `X-Forwarded-For`.
//!
//! **Timing.** The password check runs on the blocking pool (argon2 is slow by design), and an
//! unknown address, or one without a password, is checked against a decoy hash, so every
//! failure takes as long as a wrong password. Links are mailed in the background, so the
//! answer does not wait for the mail server either.
//!
//! Sign-ins, sign-outs, failures (address only) and links sent are logged; passwords and
//! tokens never are.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use minijinja::context;
use tracing::{info, warn};

use super::auth::{DirectMail, Posted, SIGNIN_COOKIE, cookie_value, field, read_form, session_of};
use super::auth_secret::{
    decoy_hash, is_token, new_token, same_token, token_hash, verify_password,
};
use super::{App, page, view};
use crate::diagnostics::error_chain;
use crate::domain::{EmailAddress, MessageId};
use crate::store::NewSession;

/// How long a sign-in link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// What the link form answers, whoever the address is.
const LINK_SENT: &str = "If this address may sign in, a sign-in link is on its way to it. The link works once, within 15 minutes.";

/// `GET /signin`.
pub(super) async fn signin_form(State(app): State<App>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if session_of(&parts, &app).await.is_ok() {
        return Redirect::to(&app.0.web.home()).into_response();
    }
    form(&app, &parts.headers, StatusCode::OK, None, None, "")
}

/// The sign-in page with `error` or `notice`, reusing the pre-session token of the request
/// or setting a new one.
fn form(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
    email: &str,
) -> Response {
    let web = &app.0.web;
    let (csrf, fresh) = match cookie_value(headers, SIGNIN_COOKIE).filter(|t| is_token(t)) {
        Some(token) => (token.to_owned(), false),
        None => (new_token(), true),
    };
    let mut response = view::render(
        &web.base,
        status,
        "signin.html",
        context! {
            title => "Sign in",
            csrf => &csrf,
            error,
            notice,
            email,
            link => web.links(),
        },
    );
    if fresh {
        response
            .headers_mut()
            .append(header::SET_COOKIE, web.signin_cookie(&csrf));
    }
    response
}

/// Whether a sign-in form's `csrf` field matches its pre-session cookie.
fn signin_csrf_ok(headers: &HeaderMap, fields: &[(String, String)]) -> bool {
    match (cookie_value(headers, SIGNIN_COOKIE), field(fields, "csrf")) {
        (Some(cookie), Some(form)) => is_token(cookie) && same_token(cookie, form),
        _ => false,
    }
}

fn signin_csrf_refused(app: &App) -> Response {
    warn!("a sign-in form without its pre-session token was refused");
    view::message(
        &app.0.web.base,
        StatusCode::FORBIDDEN,
        None,
        "Not accepted",
        "This request did not come from our sign-in page. Open the sign-in page and try again.",
    )
}

/// Who the request comes from, for the per-client limit (module docs).
fn client_of(request: &Request) -> String {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = || {
        request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .map(str::to_owned)
    };
    match peer {
        Some(ip) if ip.is_loopback() => forwarded().unwrap_or_else(|| ip.to_string()),
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

/// The `429` page when the client or the address is over its limit.
fn over_limit(
    app: &App,
    headers: &HeaderMap,
    client: &str,
    email: &str,
    now: Instant,
) -> Option<Response> {
    let limits = &app.0.web.limits;
    let wait = [
        limits.by_client.check(&format!("client:{client}"), now),
        limits.by_email.check(&format!("email:{email}"), now),
    ]
    .into_iter()
    .filter_map(Result::err)
    .max();
    let wait = wait?;
    info!(user = %email, %client, "sign-in refused: too many failures");
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let mut response = form(
        app,
        headers,
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!(
            "Too many failed attempts. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )),
        None,
        email,
    );
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(response)
}

fn count_failure(app: &App, client: &str, email: &str, now: Instant) {
    let limits = &app.0.web.limits;
    limits.by_client.fail(&format!("client:{client}"), now);
    limits.by_email.fail(&format!("email:{email}"), now);
}

/// The address as typed, normalised when it is one (the limits count it that way).
fn typed_address(text: &str) -> String {
    EmailAddress::parse(text).map_or_else(|_| text.trim().to_lowercase(), |a| a.as_str().to_owned())
}

/// `POST /signin`.
pub(super) async fn signin(State(app): State<App>, request: Request) -> Response {
    let client = client_of(&request);
    let (parts, body) = request.into_parts();
    let fields = match read_form(&app.0.web.base, body).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    if !signin_csrf_ok(&parts.headers, &fields) {
        return signin_csrf_refused(&app);
    }
    let email = typed_address(field(&fields, "email").unwrap_or_default());
    let password = field(&fields, "password").unwrap_or_default().to_owned();
    let now = Instant::now();
    if let Some(response) = over_limit(&app, &parts.headers, &client, &email, now) {
        return response;
    }
    let web = &app.0.web;
    let user = web.user(&email).cloned();
    let hash = match &user {
        Some(u) => match app.0.store.password_hash(u.email.as_str()).await {
            Ok(hash) => hash,
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot read a password hash");
                return page::unavailable();
            }
        },
        None => None,
    };
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if known && matches => {
            info!(user = %user.email, role = %user.role, %client, "signed in with a password");
            start_session(&app, &user.email).await
        }
        _ => {
            count_failure(&app, &client, &email, now);
            info!(user = %email, %client, "failed sign-in");
            form(
                &app,
                &parts.headers,
                StatusCode::UNAUTHORIZED,
                Some("The address or the password is wrong."),
                None,
                &email,
            )
        }
    }
}

/// A new session for `email`: its cookie, and `303` to the home page.
async fn start_session(app: &App, email: &EmailAddress) -> Response {
    let web = &app.0.web;
    let token = new_token();
    let now = Utc::now();
    let lifetime = chrono::Duration::from_std(web.session_lifetime)
        .unwrap_or_else(|_| chrono::Duration::hours(12));
    let hash = token_hash(&token);
    let csrf = new_token();
    let store = &app.0.store;
    let created = store
        .create_session(&NewSession {
            token_hash: &hash,
            email: email.as_str(),
            csrf: &csrf,
            created_at: now,
            expires_at: now + lifetime,
        })
        .await;
    if let Err(e) = created {
        warn!(error = %error_chain(&e), "cannot record a session");
        return page::unavailable();
    }
    // Old sessions and links of anyone go now and then: at each sign-in.
    if let Err(e) = store.purge_signins(now).await {
        warn!(error = %error_chain(&e), "cannot remove expired sessions");
    }
    let mut response = Redirect::to(&web.home()).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, web.session_cookie(&token));
    headers.append(header::SET_COOKIE, web.clear_signin_cookie());
    response
}

/// `POST /signin/link`: mails a sign-in link to a configured user.
pub(super) async fn request_link(State(app): State<App>, request: Request) -> Response {
    if !app.0.web.links() {
        return page::not_found();
    }
    let client = client_of(&request);
    let (parts, body) = request.into_parts();
    let fields = match read_form(&app.0.web.base, body).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    if !signin_csrf_ok(&parts.headers, &fields) {
        return signin_csrf_refused(&app);
    }
    let email = typed_address(field(&fields, "email").unwrap_or_default());
    let now = Instant::now();
    if let Some(response) = over_limit(&app, &parts.headers, &client, &email, now) {
        return response;
    }
    count_failure(&app, &client, &email, now);
    if let Some(user) = app.0.web.user(&email) {
        let user = user.email.clone();
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = send_link(&app, &user).await {
                warn!(user = %user, error = %e, "cannot send a sign-in link");
            }
        });
    } else {
        info!(user = %email, %client, "a sign-in link was asked for an address not in [[user]]");
    }
    form(
        &app,
        &parts.headers,
        StatusCode::OK,
        None,
        Some(LINK_SENT),
        "",
    )
}

/// Records a link for `user` and mails it.
async fn send_link(app: &App, user: &EmailAddress) -> Result<(), String> {
    let web = &app.0.web;
    let (Some(base), Some(mailer), Some((from, name, envelope))) =
        (&web.public_url, &web.mailer, &web.link_from)
    else {
        return Err("sign-in links are not configured".to_owned());
    };
    let token = new_token();
    let now = Utc::now();
    let expires = now
        + chrono::Duration::from_std(LINK_LIFETIME)
            .unwrap_or_else(|_| chrono::Duration::minutes(15));
    app.0
        .store
        .create_signin_link(&token_hash(&token), user.as_str(), now, expires)
        .await
        .map_err(|e| error_chain(&e))?;
    let link = format!("{base}/signin/link/{token}");
    let mail = link_message(from, name.as_deref(), envelope, user, &link, now)?;
    let answer = mailer.send(mail).await?;
    info!(user = %user, %answer, "sign-in link sent");
    Ok(())
}

/// The message that carries a sign-in link.
fn link_message(
    from: &EmailAddress,
    display_name: Option<&str>,
    envelope_from: &EmailAddress,
    to: &EmailAddress,
    link: &str,
    now: chrono::DateTime<Utc>,
) -> Result<DirectMail, String> {
    let id = format!(
        "signin.{}.{}@{}",
        now.timestamp(),
        &new_token()[..16],
        from.domain()
    );
    let from_mailbox = lettre::message::Mailbox::new(
        display_name
            .map(crate::render::header_safe)
            .filter(|n| !n.is_empty()),
        from.as_str()
            .parse()
            .map_err(|e| format!("from {from}: {e}"))?,
    );
    let message = lettre::Message::builder()
        .from(from_mailbox)
        .to(to.as_str().parse().map_err(|e| format!("to {to}: {e}"))?)
        .subject("Your leadloop sign-in link")
        .message_id(Some(format!("<{id}>")))
        .date(now.into())
        .singlepart(lettre::message::SinglePart::plain(format!(
            "Open this link to sign in to leadloop:\n\n{link}\n\n\
             It works once, within 15 minutes. If you did not ask for it, ignore this message.\n"
        )))
        .map_err(|e| e.to_string())?;
    Ok(DirectMail {
        envelope_from: envelope_from.to_string(),
        recipient: to.to_string(),
        message_id: MessageId::new(id),
        raw: message.formatted(),
    })
}

/// A link that cannot sign anyone in.
fn link_invalid(app: &App) -> Response {
    view::message(
        &app.0.web.base,
        StatusCode::NOT_FOUND,
        None,
        "This link does not work",
        "A sign-in link works once, within 15 minutes of being sent. Ask for a new one.",
    )
}

/// `GET /signin/link/TOKEN`: the button, for a link that still works.
pub(super) async fn link_page(
    State(app): State<App>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if app.0.web.public_url.is_none() {
        return page::not_found();
    }
    if !is_token(&token) {
        return link_invalid(&app);
    }
    match app
        .0
        .store
        .signin_link_valid(&token_hash(&token), Utc::now())
        .await
    {
        Ok(true) => {}
        Ok(false) => return link_invalid(&app),
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot look up a sign-in link");
            return page::unavailable();
        }
    }
    let web = &app.0.web;
    let (csrf, fresh) = match cookie_value(&headers, SIGNIN_COOKIE).filter(|t| is_token(t)) {
        Some(t) => (t.to_owned(), false),
        None => (new_token(), true),
    };
    let mut response = view::render(
        &web.base,
        StatusCode::OK,
        "signin_link.html",
        context! { title => "Sign in", csrf => &csrf },
    );
    if fresh {
        response
            .headers_mut()
            .append(header::SET_COOKIE, web.signin_cookie(&csrf));
    }
    response
}

/// `POST /signin/link/TOKEN`: uses the link up and signs in.
pub(super) async fn link_signin(
    State(app): State<App>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    if app.0.web.public_url.is_none() {
        return page::not_found();
    }
    let (parts, body) = request.into_parts();
    let fields = match read_form(&app.0.web.base, body).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    if !signin_csrf_ok(&parts.headers, &fields) {
        return signin_csrf_refused(&app);
    }
    if !is_token(&token) {
        return link_invalid(&app);
    }
    let email = match app
        .0
        .store
        .use_signin_link(&token_hash(&token), Utc::now())
        .await
    {
        Ok(Some(email)) => email,
        Ok(None) => {
            info!("a used, expired or unknown sign-in link was refused");
            return link_invalid(&app);
        }
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot use a sign-in link");
            return page::unavailable();
        }
    };
    let Some(user) = app.0.web.user(&email).cloned() else {
        info!(user = %email, "a sign-in link of someone no longer in [[user]] was refused");
        return link_invalid(&app);
    };
    info!(user = %user.email, role = %user.role, "signed in with a link");
    start_session(&app, &user.email).await
}

/// `POST /signout`.
pub(super) async fn signout(State(app): State<App>, posted: Posted) -> Response {
    let web = &app.0.web;
    web.sessions.forget(posted.user.session());
    if let Err(e) = app.0.store.end_session(posted.user.session()).await {
        warn!(error = %error_chain(&e), "cannot end a session");
        return page::unavailable();
    }
    info!(user = %posted.user.email, "signed out");
    let mut response = Redirect::to(&web.signin()).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, web.clear_session_cookie());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_or_behind_a_local_proxy_the_forwarded_address() {
        let request = |peer: &str, forwarded: Option<&str>| {
            let mut builder = Request::builder().uri("/signin");
            if let Some(f) = forwarded {
                builder = builder.header("x-forwarded-for", f);
            }
            let mut r = builder.body(axum::body::Body::empty()).unwrap();
            r.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            r
        };
        // Anyone else may write the header: it counts only from a proxy on this machine.
        assert_eq!(
            client_of(&request("203.0.113.7:5000", Some("198.51.100.1"))),
            "203.0.113.7"
        );
        assert_eq!(
            client_of(&request("127.0.0.1:5000", Some("10.0.0.1, 198.51.100.1"))),
            "198.51.100.1"
        );
        assert_eq!(client_of(&request("[::1]:5000", None)), "::1");
    }

    #[test]
    fn the_link_message_carries_the_link_and_no_html() {
        let a = |s: &str| EmailAddress::parse(s).unwrap();
        let link = format!("https://leads.example.com/signin/link/{}", new_token());
        let mail = link_message(
            &a("hello@company.com"),
            Some("Team"),
            &a("bounces@company.com"),
            &a("ana@company.com"),
            &link,
            Utc::now(),
        )
        .unwrap();
        let text = String::from_utf8(mail.raw).unwrap();
        // Lines longer than 76 characters are quoted-printable, whose soft breaks a mail
        // client removes.
        assert!(text.replace("=\r\n", "").contains(&link), "{text}");
        assert!(
            text.contains("Subject: Your leadloop sign-in link"),
            "{text}"
        );
        assert!(text.contains("text/plain"), "{text}");
        assert_eq!(mail.envelope_from, "bounces@company.com");
        assert_eq!(mail.recipient, "ana@company.com");
        assert!(mail.message_id.as_str().ends_with("@company.com"));
    }
}
