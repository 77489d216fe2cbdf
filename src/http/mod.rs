//! The HTTP listener (`[http]`): health checks for systemd and load balancers, and the
//! one-click unsubscribe link (RFC 8058) our messages carry.
//!
//! | route | answers |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process runs and serves requests |
//! | `GET /readyz` | `200 ready` when the database answers and the mailbox was read successfully within the last [`READ_POLLS`] poll intervals (at least [`MIN_STALE_AFTER`]); `503` with the reason otherwise, also before the first read |
//! | `GET /u/TOKEN` | a small page with a button that confirms (a form that POSTs); it changes nothing, because link scanners fetch every link in a message |
//! | `POST /u/TOKEN` | with the body `List-Unsubscribe=One-Click`, unsubscribes the lead of the enrollment with this token, once (see `http/unsubscribe.rs`) |
//! | `GET /metrics` | the daemon's metrics for Prometheus (see `http/metrics.rs`); on `metrics_listen` instead when that is set |
//!
//! None of them needs a sign-in, and none shows anything about a lead: the token is the only
//! key, and a token nobody has gets the same page as any other unknown address (404). Every
//! answer says `Cache-Control: no-store` and carries a strict Content-Security-Policy; the pages
//! load nothing from elsewhere and run no script.
//!
//! The web view for the people in `[[user]]` answers on the same listener: signing in and
//! out (`auth.rs`, `auth_pages.rs`) and the pages (`view.rs`), which all need a sign-in.
//! Every route is one line of one table ([`ROUTES`]), which the router is built from; the
//! integration tests walk that table for every role.
//!
//! The server is one of the daemon's tasks, on the daemon's runtime, under its generation's
//! cancellation token: on shutdown or reload it stops accepting, finishes the requests under
//! way (for at most [`DRAIN`]) and returns. The daemon keeps the listening socket itself
//! across reloads, so connections that arrive during one wait in the backlog instead of
//! being refused.

mod auth;
mod auth_limit;
mod auth_pages;
mod auth_secret;
mod metrics;
mod outbox_page;
mod page;
mod reports;
mod session_cache;
mod unsubscribe;
mod view;

pub use auth::{DirectMail, DirectMailer, Posted, SignInLimits, SignedIn, Web};
pub use auth_secret::{MIN_PASSWORD_CHARS, PasswordError, hash_password};

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::store::Store;

/// The mailbox counts as read when its last successful read is at most this many poll
/// intervals old.
pub const READ_POLLS: u32 = 3;

/// ... and at least this long, so a short `poll_interval` does not make a slow pass look like
/// a dead reader.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(30);

/// How long `/readyz` waits for the database before it says the database does not answer.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a stopping server waits for the requests under way.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The largest request body read (an RFC 8058 body is 26 bytes).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// The leads store: readiness, tokens, and the unsubscribe itself.
    store: Store,
    /// When the mailbox was last read successfully, as ingest reports it.
    last_read: watch::Receiver<Option<Instant>>,
    /// A last read older than this makes the daemon not ready.
    stale_after: Duration,
    /// What `/metrics` shows; `None` where it is not served (a `metrics_listen` serves it).
    metrics: Option<Metrics>,
    /// The web view: who may sign in, and how.
    web: Web,
}

impl App {
    /// Handlers on `store`, judging the mailbox reader by `last_read` (ingest's
    /// [`LastRead`](crate::ingest::LastRead)) against the source's `poll_interval`; nobody
    /// can sign in to the view.
    pub fn new(
        store: Store,
        last_read: watch::Receiver<Option<Instant>>,
        poll_interval: Duration,
    ) -> App {
        App::with(store, last_read, poll_interval, None, Web::default())
    }

    /// [`App::new`] that also answers `/metrics` with `metrics`, when given.
    pub fn with_metrics(
        store: Store,
        last_read: watch::Receiver<Option<Instant>>,
        poll_interval: Duration,
        metrics: Option<Metrics>,
    ) -> App {
        App::with(store, last_read, poll_interval, metrics, Web::default())
    }

    /// [`App::new`] with the web view of `web`.
    pub fn with_web(
        store: Store,
        last_read: watch::Receiver<Option<Instant>>,
        poll_interval: Duration,
        web: Web,
    ) -> App {
        App::with(store, last_read, poll_interval, None, web)
    }

    /// [`App::new`] with `/metrics` (when given) and the web view of `web`.
    pub fn with(
        store: Store,
        last_read: watch::Receiver<Option<Instant>>,
        poll_interval: Duration,
        metrics: Option<Metrics>,
        web: Web,
    ) -> App {
        App(Arc::new(Inner {
            store,
            last_read,
            stale_after: stale_after(poll_interval),
            metrics,
            web,
        }))
    }
}

/// How old the last successful read may be for the mailbox reader to count as healthy.
pub fn stale_after(poll_interval: Duration) -> Duration {
    poll_interval
        .saturating_mul(READ_POLLS)
        .max(MIN_STALE_AFTER)
}

/// Declares the route table once: [`ROUTES`] lists it and [`router`] serves exactly it, so
/// nothing answers that the list does not name (the route × role test walks the list).
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route of the listener as (method, path), paths in axum's syntax (`{id}` is a
        /// segment). The web view's routes are described in `view.rs`, the sign-in routes in
        /// `auth_pages.rs`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];

        /// The router of [`ROUTES`].
        fn table() -> Router<App> {
            Router::new()$(.route($path, route_table!(@$method $handler)))*
        }
    };
    (@GET $handler:expr) => { axum::routing::get($handler) };
    (@POST $handler:expr) => { axum::routing::post($handler) };
}

route_table! {
    GET "/healthz" => healthz,
    GET "/readyz" => readyz,
    GET "/metrics" => metrics::scrape,
    GET "/u/{token}" => unsubscribe::confirm,
    POST "/u/{token}" => unsubscribe::one_click,
    GET "/static/app.css" => view::stylesheet,
    GET "/signin" => auth_pages::signin_form,
    POST "/signin" => auth_pages::signin,
    POST "/signin/link" => auth_pages::request_link,
    GET "/signin/link/{token}" => auth_pages::link_page,
    POST "/signin/link/{token}" => auth_pages::link_signin,
    POST "/signout" => auth_pages::signout,
    GET "/" => view::home,
    GET "/leads" => view::leads,
    GET "/leads/{id}" => view::lead_page,
    POST "/leads/{id}/verdict" => view::give_verdict,
    POST "/leads/{id}/owner" => view::assign_owner,
    POST "/leads/{id}/unenroll" => view::unenroll,
    POST "/leads/{id}/pause" => view::pause_sequences,
    POST "/leads/{id}/resume" => view::resume_sequences,
    GET "/reports" => reports::reports,
    GET "/outbox" => outbox_page::outbox,
    GET "/outbox/{id}/{what}" => outbox_page::confirm,
    POST "/outbox/{id}/{what}" => outbox_page::decide,
    GET "/admin/users" => view::admin_users,
    POST "/admin/users/end-sessions" => view::end_sessions,
}

/// Every route of [`ROUTES`], with the headers every answer carries.
pub fn router(app: App) -> Router {
    table()
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` fires, then lets the requests under way finish
/// for at most [`DRAIN`].
///
/// # Errors
/// The listener's address cannot be read.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_routes(listener, router(app), shutdown).await
}

/// [`serve`] for the `metrics_listen` address: `/metrics` and the health checks alone.
///
/// # Errors
/// The listener's address cannot be read.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_routes(listener, metrics::router(app), shutdown).await
}

async fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    info!(%addr, "http listening");
    // The peer's address is what the sign-in limit counts per client.
    let service = routes.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    tokio::select! {
        done = server => done,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN).await;
        } => {
            warn!(%addr, "http requests still under way after {DRAIN:?}; leaving them");
            Ok(())
        }
    }
}

/// `/healthz`: the process is up and answers.
async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".to_owned())
}

/// `/readyz`: the database answers and the mailbox reader works.
async fn readyz(State(app): State<App>) -> Response {
    match not_ready(&app).await {
        None => text(StatusCode::OK, "ready\n".to_owned()),
        Some(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Why the daemon is not ready, or `None` when it is.
async fn not_ready(app: &App) -> Option<String> {
    match tokio::time::timeout(DATABASE_TIMEOUT, app.0.store.ping()).await {
        Err(_) => return Some(format!("database: no answer within {DATABASE_TIMEOUT:?}")),
        Ok(Err(e)) => {
            debug!(error = %crate::diagnostics::error_chain(&e), "readiness: database unreachable");
            return Some("database: unreachable".to_owned());
        }
        Ok(Ok(())) => {}
    }
    let last = *app.0.last_read.borrow();
    match last {
        None => Some("mailbox: not read yet".to_owned()),
        Some(at) if at.elapsed() > app.0.stale_after => Some(format!(
            "mailbox: last read {}s ago (more than {}s)",
            at.elapsed().as_secs(),
            app.0.stale_after.as_secs()
        )),
        Some(_) => None,
    }
}

/// Any other address: the same neutral page an unknown token gets.
async fn not_found() -> Response {
    page::not_found()
}

/// A short plain-text answer (the health checks).
fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The headers every answer carries: nothing is cached or framed, nothing but our own
/// inline style is loaded, forms post only to us, and no Referer leaves (a page's address
/// holds a token).
async fn common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailbox_may_miss_a_few_polls_and_never_less_than_the_floor() {
        assert_eq!(
            stale_after(Duration::from_secs(60)),
            Duration::from_secs(180)
        );
        assert_eq!(stale_after(Duration::from_secs(1)), MIN_STALE_AFTER);
        assert_eq!(stale_after(Duration::MAX), Duration::MAX);
    }
}
