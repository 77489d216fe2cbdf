//! `GET /metrics`: the daemon's metrics in the Prometheus text format (`docs/metrics.md`).
//!
//! The numbers counted in the process are written as they are. The database's state counts
//! are read first when they are due ([`crate::metrics`]: at most every
//! [`DATABASE_INTERVAL`], fewer on a large database); the scrape waits for that read for at
//! most [`DATABASE_TIMEOUT`] and otherwise answers with the counts as last read (without them
//! before a first read), so a slow or unreachable database never makes a scrape slow or fail.
//! `/readyz` is the place that says the database is down.
//!
//! With `[http] metrics_listen`, [`router`] serves `/metrics` and the health checks on that
//! address alone, and the main listener answers `/metrics` with its 404.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{App, DATABASE_TIMEOUT};
use crate::diagnostics::error_chain;
use crate::metrics::{CONTENT_TYPE, DATABASE_INTERVAL, DatabaseCounts};
use crate::store::StateCounts;

/// How long the database's counts may take before the read gives up (a read that takes longer
/// than [`DATABASE_TIMEOUT`] goes on after the scrape has answered).
const COUNTS_TIMEOUT: Duration = Duration::from_secs(60);

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
    let store = app.0.store.clone();
    let read = || async move {
        match tokio::time::timeout(COUNTS_TIMEOUT, store.state_counts()).await {
            Ok(Ok(counts)) => Ok(database_counts(counts)),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {COUNTS_TIMEOUT:?}")),
        }
    };
    metrics
        .refresh_database(DATABASE_INTERVAL, DATABASE_TIMEOUT, read)
        .await;
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
