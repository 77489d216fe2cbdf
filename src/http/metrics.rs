//! `GET /metrics`: the daemon's metrics in the Prometheus text format (`docs/metrics.md`).
//!
//! The numbers counted in the process are written as they are; the database's state counts
//! are read first when the last read is older than [`DATABASE_MAX_AGE`] (see
//! [`crate::metrics`]). If the database does not answer within [`DATABASE_TIMEOUT`], the
//! scrape still answers, with the counts as last read (or without them before a first read),
//! so Prometheus sees the process even while its database is down; `/readyz` is the place
//! that says so.
//!
//! With `[http] metrics_listen`, [`router`] serves `/metrics` and the health checks on that
//! address alone, and the main listener answers `/metrics` with its 404.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::warn;

use super::{App, DATABASE_TIMEOUT};
use crate::diagnostics::error_chain;
use crate::metrics::{CONTENT_TYPE, DATABASE_MAX_AGE, DatabaseCounts};
use crate::store::StateCounts;

/// The routes of the `metrics_listen` address: `/metrics` and the health checks, nothing that
/// touches a lead.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(super::healthz))
        .route("/readyz", get(super::readyz))
        .fallback(super::not_found)
        .layer(axum::middleware::map_response(super::common_headers))
        .with_state(app)
}

/// `GET /metrics`.
pub(super) async fn scrape(State(app): State<App>) -> Response {
    let Some(metrics) = &app.0.metrics else {
        return super::page::not_found();
    };
    let store = &app.0.store;
    let read = || async {
        match tokio::time::timeout(DATABASE_TIMEOUT, store.state_counts()).await {
            Ok(Ok(counts)) => Ok(database_counts(counts)),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {DATABASE_TIMEOUT:?}")),
        }
    };
    if let Err(why) = metrics.refresh_database(DATABASE_MAX_AGE, read).await {
        warn!(error = %why, "metrics: cannot read the database's counts; showing the last ones");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        metrics.encode(),
    )
        .into_response()
}

fn database_counts(c: StateCounts) -> DatabaseCounts {
    DatabaseCounts {
        enrollments: c.enrollments,
        outbox: c.outbox,
        handed_off: c.handed_off,
        judged: c.judged,
    }
}
