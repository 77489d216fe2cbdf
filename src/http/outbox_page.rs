//! The outbox page (admins): the messages waiting for a person's decision, and the two
//! decisions, as `leadloop outbox retry|cancel` make them.
//!
//! Each decision takes two steps: a GET shows what is about to happen to which message (and
//! changes nothing), and the form on that page POSTs it, with the session's CSRF token. The
//! store makes the change only from the states the CLI allows, so a second POST, or one for a
//! message the sender has moved on meanwhile, is refused with the CLI's words. An
//! `interrupted` message may have reached the server before the sender stopped: its confirm
//! page says so, as the CLI's help does, and nothing retries it but this person's decision.
//! Each decision is an event on the message's lead with the admin as `by`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use minijinja::{Value, context};
use tracing::{info, warn};

use super::App;
use super::auth::{Posted, SignedIn};
use super::view::{message, render};
use crate::config::Role;
use crate::diagnostics::error_chain;
use crate::domain::{OutboxId, OutboxState};
use crate::store::{OutboxEntry, Transition};

/// Messages the page lists at most.
const LISTED: usize = 200;

/// What a person may decide about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Retry,
    Cancel,
}

impl Decision {
    fn parse(s: &str) -> Option<Decision> {
        match s {
            "retry" => Some(Decision::Retry),
            "cancel" => Some(Decision::Cancel),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Decision::Retry => "retry",
            Decision::Cancel => "cancel",
        }
    }

    /// What the message will be, in the CLI's words (`message 4 queued again`).
    fn verb(self) -> &'static str {
        match self {
            Decision::Retry => "queued again",
            Decision::Cancel => "cancelled",
        }
    }

    /// Whether a message in `state` may be decided so (the store's own rule decides).
    fn allowed(self, state: OutboxState) -> bool {
        match self {
            Decision::Retry => matches!(
                state,
                OutboxState::Failed | OutboxState::Interrupted | OutboxState::Cancelled
            ),
            Decision::Cancel => matches!(
                state,
                OutboxState::Pending
                    | OutboxState::Retry
                    | OutboxState::Interrupted
                    | OutboxState::Failed
            ),
        }
    }
}

fn when(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// One message as the pages show it.
fn entry(e: &OutboxEntry, subject: Option<&str>) -> Value {
    context! {
        id => e.id.0,
        recipient => &e.recipient,
        subject => subject.unwrap_or_default(),
        state => e.state.as_str(),
        reason => e.last_error.as_deref().unwrap_or_default(),
        attempts => e.attempts,
        when => when(e.updated_at),
        created => when(e.created_at),
        lead => e.lead_id.map(|l| l.0),
        interrupted => e.state == OutboxState::Interrupted,
        retry => Decision::Retry.allowed(e.state),
        cancel => Decision::Cancel.allowed(e.state),
    }
}

fn unavailable(e: &crate::store::StoreError) -> Response {
    warn!(error = %error_chain(e), "cannot read the outbox");
    super::page::unavailable()
}

/// `GET /outbox`: the interrupted and failed messages, most recently changed first.
pub(super) async fn outbox(user: SignedIn, State(app): State<App>) -> Result<Response, Response> {
    user.require(Role::Admin)?;
    let rows = app
        .0
        .store
        .outbox_to_decide(LISTED)
        .await
        .map_err(|e| unavailable(&e))?;
    let messages: Vec<Value> = rows
        .iter()
        .map(|(e, subject)| entry(e, subject.as_deref()))
        .collect();
    Ok(render(
        user.base(),
        StatusCode::OK,
        "outbox.html",
        context! {
            title => "Outbox",
            user => user.context(),
            csrf => user.csrf(),
            messages,
            listed => LISTED,
        },
    ))
}

/// The message of the path's `id` and the decision of its `what`; `None` (the page any
/// unknown address gets) for anything else.
fn target(id: &str, what: &str) -> Option<(OutboxId, Decision)> {
    Some((OutboxId(id.parse().ok()?), Decision::parse(what)?))
}

/// `GET /outbox/ID/retry|cancel`: what the decision will do to which message, and the button
/// that does it. Changes nothing.
pub(super) async fn confirm(
    user: SignedIn,
    State(app): State<App>,
    Path((id, what)): Path<(String, String)>,
) -> Result<Response, Response> {
    user.require(Role::Admin)?;
    let (id, decision) = target(&id, &what).ok_or_else(super::page::not_found)?;
    let found = app
        .0
        .store
        .outbox_entry(id)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(super::page::not_found)?;
    if !decision.allowed(found.state) {
        return Err(refused(&user, id, found.state, decision));
    }
    let subject = app
        .0
        .store
        .outbox_subject(id)
        .await
        .map_err(|e| unavailable(&e))?;
    let title = match decision {
        Decision::Retry => format!("Send message {} again?", id.0),
        Decision::Cancel => format!("Cancel message {}?", id.0),
    };
    Ok(render(
        user.base(),
        StatusCode::OK,
        "outbox_confirm.html",
        context! {
            title,
            user => user.context(),
            csrf => user.csrf(),
            decision => decision.name(),
            m => entry(&found, subject.as_deref()),
        },
    ))
}

/// `POST /outbox/ID/retry|cancel`: the decision, made by the store as for the CLI, with the
/// signed-in admin as `by`; back to the outbox page.
pub(super) async fn decide(
    State(app): State<App>,
    Path((id, what)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Response> {
    let user = &posted.user;
    user.require(Role::Admin)?;
    let (id, decision) = target(&id, &what).ok_or_else(super::page::not_found)?;
    let by = user.email.to_string();
    let store = &app.0.store;
    let now = Utc::now();
    let done = match decision {
        Decision::Retry => store.retry_outbox(id, &by, now).await,
        Decision::Cancel => store.cancel_outbox(id, &by, now).await,
    }
    .map_err(|e| {
        warn!(error = %error_chain(&e), "cannot change an outbox message");
        super::page::unavailable()
    })?;
    match done {
        Transition::Done => {
            info!(by = %user.email, id = id.0, "outbox message {} in the view", decision.verb());
            Ok(Redirect::to(&format!("{}/outbox", user.base())).into_response())
        }
        Transition::NotFound => Err(super::page::not_found()),
        Transition::Refused(state) => Err(refused(user, id, state, decision)),
    }
}

/// The CLI's refusal (`message 4 is sent: it cannot be queued again`), as a 409 page.
fn refused(user: &SignedIn, id: OutboxId, state: OutboxState, decision: Decision) -> Response {
    message(
        user.base(),
        StatusCode::CONFLICT,
        Some(user),
        "Not changed",
        &format!(
            "Message {} is {state}: it cannot be {}.",
            id.0,
            decision.verb()
        ),
    )
}
