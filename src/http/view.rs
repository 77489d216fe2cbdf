//! The web view's pages for signed-in people, and how every page of the view is drawn.
//!
//! Pages are minijinja templates compiled into the binary (`templates/`), all extending one
//! layout, with HTML autoescaping on: whatever came from mail, forms or the configuration is
//! written as text. The pages load one stylesheet of our own (`/static/app.css`) and run no
//! script, which the Content-Security-Policy enforces.
//!
//! A page handler takes [`SignedIn`] (a GET) or [`Posted`] (a POST, its CSRF token checked)
//! and, for pages not everyone may see, calls [`SignedIn::require`]:
//!
//! ```ignore
//! async fn page(user: SignedIn, State(app): State<App>) -> Result<Response, Response> {
//!     user.require(Role::Admin)?;
//!     Ok(render(user.base(), StatusCode::OK, "page.html", context! {}))
//! }
//! ```
//!
//! | route | who | answers |
//! |---|---|---|
//! | `GET /` | signed in | the home page: who is signed in, as what, and where to go |
//! | `GET /leads` | signed in | the leads list: search (`q`), filters (`channel`, `status`, `owner`, `from`, `until`), order (`sort`) and `page`, 50 a page; the page links carry the position they start `after` or end `before` |
//! | `GET /leads/ID` | signed in | one lead: its card, form fields, verdicts, sequences and timeline, every text from mail shown as text |
//! | `POST /leads/ID/verdict` | signed in | records a verdict on the lead as the signed-in person, and acts on it as an answer to a hand-off would |
//! | `POST /leads/ID/owner` | signed in | gives the lead the form's `owner` |
//! | `POST /leads/ID/unenroll` | signed in | ends the lead's enrollment in the form's `sequence` |
//! | `POST /leads/ID/pause` | signed in | holds the next step of the lead's sequences until the form's `until` day |
//! | `POST /leads/ID/resume` | signed in | lifts the pause of the lead's paused sequences now |
//! | `GET /reports` | signed in | the channel, form, owner, sequence and reason reports with charts, over `since`, `until` and `by` (see `reports.rs`) |
//! | `GET /outbox` | admin | the interrupted and failed messages (see `outbox_page.rs`) |
//! | `GET /outbox/ID/retry`, `GET /outbox/ID/cancel` | admin | asks to confirm sending a message again, or not at all |
//! | `POST /outbox/ID/retry`, `POST /outbox/ID/cancel` | admin | does it, as `leadloop outbox retry|cancel` does |
//! | `GET /admin/users` | admin | `[[user]]` with role, whether a password is set and live sessions |
//! | `POST /admin/users/end-sessions` | admin | ends every session of the form's `email` |
//! | `GET /static/app.css` | anyone | the stylesheet |

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use minijinja::{Environment, Value, context};
use tracing::{error, info, warn};

use super::App;
use super::auth::{Posted, SignedIn};
use crate::config::Role;
use crate::diagnostics::error_chain;

/// The pages' stylesheet, served at `/static/app.css`.
const STYLESHEET: &str = include_str!("templates/app.css");

/// The templates, compiled once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("message.html", include_str!("templates/message.html")),
        ("signin.html", include_str!("templates/signin.html")),
        (
            "signin_link.html",
            include_str!("templates/signin_link.html"),
        ),
        ("home.html", include_str!("templates/home.html")),
        (
            "admin_users.html",
            include_str!("templates/admin_users.html"),
        ),
        ("leads.html", include_str!("templates/leads.html")),
        ("lead.html", include_str!("templates/lead.html")),
        ("reports.html", include_str!("templates/reports.html")),
        ("outbox.html", include_str!("templates/outbox.html")),
        (
            "outbox_confirm.html",
            include_str!("templates/outbox_confirm.html"),
        ),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // Caught by the tests that render every template; a broken one answers 500.
            error!(template = name, error = %e, "a built-in template does not compile");
        }
    }
    env
});

/// `template` rendered with `ctx` as an HTML answer with `status`; a 500 page if it fails.
/// `base` is the path of `[http] public_url` (empty at the root), which every link and form
/// of the pages starts with, so the view also works under a prefix a reverse proxy strips.
pub(super) fn render(base: &str, status: StatusCode, template: &str, ctx: Value) -> Response {
    let ctx = context! { base, ..ctx };
    let rendered = TEMPLATES.get_template(template).and_then(|t| t.render(ctx));
    match rendered {
        Ok(body) => html(status, body),
        Err(e) => {
            error!(template, error = %e, "cannot render a page");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong on our side.</p>\n"
                    .to_owned(),
            )
        }
    }
}

/// A page with a title and one paragraph, for the signed-in `user` if any (their menu shows).
pub(super) fn message(
    base: &str,
    status: StatusCode,
    user: Option<&SignedIn>,
    title: &str,
    text: &str,
) -> Response {
    let back = if user.is_some() {
        format!("{base}/")
    } else {
        format!("{base}/signin")
    };
    render(
        base,
        status,
        "message.html",
        context! {
            title,
            text,
            user => user.map(SignedIn::context),
            csrf => user.map(SignedIn::csrf),
            back,
            back_label => if user.is_some() { "Home" } else { "Sign in" },
        },
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `GET /static/app.css`.
pub(super) async fn stylesheet() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        STYLESHEET,
    )
        .into_response()
}

/// `GET /`: the home page.
pub(super) async fn home(user: SignedIn) -> Response {
    render(
        user.base(),
        StatusCode::OK,
        "home.html",
        context! { title => "Home", user => user.context(), csrf => user.csrf() },
    )
}

/// Leads a page of the list shows.
const LEADS_PER_PAGE: u32 = 50;

/// `GET /leads`: one page of the leads list. A filter that cannot be read (a date that is no
/// date) is named on the page, and the list shows without it.
pub(super) async fn leads(
    user: SignedIn,
    State(app): State<App>,
    uri: axum::http::Uri,
) -> Result<Response, Response> {
    let params = QueryParams::of(&uri);
    let get = |key: &str| params.get(key);
    let mut problems = Vec::new();
    let day = |key: &str, problems: &mut Vec<String>| {
        let text = get(key)?;
        match chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(d) => Some(d.and_time(chrono::NaiveTime::MIN).and_utc()),
            Err(_) => {
                problems.push(format!("{key}: '{text}' is not a date (YYYY-MM-DD)"));
                None
            }
        }
    };
    let status = match get("status") {
        Some(s) => match s.parse::<crate::domain::LeadStatus>() {
            Ok(st) => Some(st),
            Err(_) => {
                problems.push(format!("status: '{s}' is not a status"));
                None
            }
        },
        None => None,
    };
    let sort = get("sort")
        .and_then(|s| crate::store::LeadSort::parse(&s))
        .unwrap_or_default();
    let cursor = |key: &str, problems: &mut Vec<String>| {
        let text = get(key)?;
        let cursor = crate::store::LeadCursor::parse(sort, &text);
        if cursor.is_none() {
            problems.push(format!("{key}: not a position in this list"));
        }
        cursor
    };
    let query = crate::store::LeadQuery {
        search: get("q"),
        channel: get("channel"),
        status,
        owner: get("owner"),
        from: day("from", &mut problems),
        // The whole `until` day is included.
        until: day("until", &mut problems).map(|t| t + chrono::Duration::days(1)),
        sort,
        page: get("page")
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
            .min(100_000),
        after: cursor("after", &mut problems),
        before: cursor("before", &mut problems),
        per_page: LEADS_PER_PAGE,
    };
    let page = app.0.store.lead_page(&query).await.map_err(|e| {
        warn!(error = %error_chain(&e), "cannot read the leads list");
        super::page::unavailable()
    })?;
    // The same filters on another page, which starts right after (or ends right before) a
    // lead of this one: reading on from there costs as little on page 1,000 as on page 2.
    let link = |page: u32, position: Option<(&str, &crate::store::LeadLine)>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for key in ["q", "channel", "status", "owner", "from", "until", "sort"] {
            if let Some(v) = get(key) {
                q.append_pair(key, &v);
            }
        }
        q.append_pair("page", &page.to_string());
        if let Some((key, lead)) = position {
            q.append_pair(
                key,
                &crate::store::LeadCursor::of(query.sort, lead).to_param(),
            );
        }
        q.finish()
    };
    // Read back from a position, a page that turns out to be the first is numbered so.
    let number = if page.more_before == Some(false) {
        0
    } else {
        query.page
    };
    let prev = match (number, page.leads.first()) {
        (0, _) => None,
        // The first page is the one without a position.
        (1, _) | (_, None) => Some(link(number - 1, None)),
        (n, Some(first)) => Some(link(n - 1, Some(("before", first)))),
    };
    let next = match (page.more, page.leads.last()) {
        (true, Some(last)) => Some(link(number + 1, Some(("after", last)))),
        _ => None,
    };
    let rows = lead_rows(user.base(), &page.leads);
    Ok(render(
        user.base(),
        StatusCode::OK,
        "leads.html",
        context! {
            title => "Leads",
            user => user.context(),
            csrf => user.csrf(),
            q => context! {
                search => get("q").unwrap_or_default(),
                channel => get("channel").unwrap_or_default(),
                status => query.status.map(|s| s.as_str()).unwrap_or_default(),
                owner => get("owner").unwrap_or_default(),
                from => get("from").unwrap_or_default(),
                until => get("until").unwrap_or_default(),
                sort => query.sort.name(),
            },
            statuses => crate::domain::LeadStatus::NAMES.to_vec(),
            sorts => crate::store::LeadSort::ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            error => (!problems.is_empty()).then(|| problems.join("; ")),
            rows,
            page => number,
            prev,
            next,
        },
    ))
}

/// The list's table rows, written here rather than by the template: fifty rows of nine
/// values each, made into template values and looked up by name, cost more than reading the
/// page from the database. Every text is escaped as the template would (`HtmlEscape`).
/// `None` for no leads.
fn lead_rows(base: &str, leads: &[crate::store::LeadLine]) -> Option<Value> {
    use chrono::{Datelike as _, Timelike as _};
    use minijinja::HtmlEscape as E;
    use std::fmt::Write as _;
    fn text(t: &Option<String>) -> E<'_> {
        E(t.as_deref().unwrap_or_default())
    }
    if leads.is_empty() {
        return None;
    }
    let mut html = String::with_capacity(leads.len() * 256);
    for l in leads {
        let t = l.created_at;
        let _ = write!(
            html,
            "<tr>\n<td><a href=\"{}/leads/{}\">{}</a></td>\n<td>{}</td>\n<td>{}</td>\n\
             <td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td class=\"number\">{}</td>\n\
             <td>{:04}-{:02}-{:02} {:02}:{:02}</td>\n</tr>\n",
            E(base),
            l.id.0,
            E(&l.email),
            text(&l.name),
            text(&l.company),
            E(&l.channel),
            E(&l.status),
            text(&l.owner),
            l.score,
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
        );
    }
    Some(Value::from_safe_string(html))
}

/// The lead whose id is the path's `id`; an id that is no lead's gets the page any unknown
/// address gets.
async fn lead_by_id(app: &App, id: &str) -> Result<crate::domain::Lead, Response> {
    let id = crate::domain::LeadId(id.parse::<i64>().map_err(|_| super::page::not_found())?);
    app.0
        .store
        .lead_by_id(id)
        .await
        .map_err(|e| {
            warn!(error = %error_chain(&e), "cannot read a lead");
            super::page::unavailable()
        })?
        .ok_or_else(super::page::not_found)
}

/// `GET /leads/ID`: one lead's page. An id that is no lead's gets the same page as any
/// unknown address.
pub(super) async fn lead_page(
    user: SignedIn,
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Response> {
    let lead = lead_by_id(&app, &id).await?;
    let store = &app.0.store;
    let unavailable = |e: crate::store::StoreError| {
        warn!(error = %error_chain(&e), "cannot read a lead's page");
        super::page::unavailable()
    };
    let timeline = store.timeline(&lead).await.map_err(unavailable)?;
    let enrollments = store.enrollments(lead.id).await.map_err(unavailable)?;
    let verdicts = store.verdicts(lead.id).await.map_err(unavailable)?;
    let reasons = store.verdict_reasons(50).await.map_err(unavailable)?;
    let when = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let fields: Vec<Value> = lead
        .fields
        .iter()
        .map(|(k, v)| {
            let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            context! { name => k, value }
        })
        .collect();
    let timeline: Vec<Value> = timeline
        .iter()
        .map(|e| {
            context! {
                at => when(e.at),
                kind => &e.kind,
                subject => e.subject.as_deref().unwrap_or_default(),
                detail => if e.detail.is_null() { String::new() } else { e.detail.to_string() },
            }
        })
        .collect();
    let sequences: Vec<Value> = enrollments
        .iter()
        .map(|e| {
            context! {
                sequence => e.sequence.as_str(),
                state => e.state.as_str(),
                done => e.steps_done.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                next => e.next_step.as_ref().map(|s| s.as_str()).unwrap_or_default(),
                due => e.next_due_at.map(when).unwrap_or_default(),
                paused => e.paused_until.filter(|p| *p > Utc::now()).map(when).unwrap_or_default(),
            }
        })
        .collect();
    let verdicts: Vec<Value> = verdicts
        .iter()
        .map(|v| {
            context! {
                at => when(v.at),
                verdict => v.verdict.as_str(),
                reason => v.reason.as_deref().unwrap_or_default(),
                comment => v.comment.as_deref().unwrap_or_default(),
                by => &v.by,
            }
        })
        .collect();
    Ok(render(
        user.base(),
        StatusCode::OK,
        "lead.html",
        context! {
            title => lead.name.clone().unwrap_or_else(|| lead.email.to_string()),
            user => user.context(),
            csrf => user.csrf(),
            verdicts_taken => app.0.web.actions.is_some(),
            reasons,
            sequence_names => app.0.web.sequences.clone(),
            lead => context! {
                id => lead.id.0,
                email => lead.email.as_str(),
                name => lead.name.as_deref().unwrap_or_default(),
                company => lead.company.as_deref().unwrap_or_default(),
                phone => lead.phone.as_deref().unwrap_or_default(),
                channel => &lead.channel,
                status => lead.status.as_str(),
                owner => lead.owner.as_deref().unwrap_or_default(),
                score => lead.score,
                form => lead.form.as_deref().unwrap_or_default(),
                created => when(lead.created_at),
            },
            fields,
            verdicts,
            sequences,
            timeline,
        },
    ))
}

/// `POST /leads/ID/verdict`: a verdict from the lead's page, recorded with the signed-in
/// person as `by` and acted on as the daemon acts on one mailed by Sales. The form's
/// `verdict` (qualified, unqualified, customer, not now, nurture) is completed by `reason`,
/// `until` (not now) or `sequence` (nurture) into the words Sales would write.
pub(super) async fn give_verdict(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, Response> {
    let user = &posted.user;
    let Some(actions) = app.0.web.actions.clone() else {
        return Err(super::page::not_found());
    };
    let lead = lead_by_id(&app, &id).await?;
    let value = |name: &str| form_value(&posted, name);
    let kind = value("verdict").unwrap_or_default();
    let words = match kind.as_str() {
        "not now" => value("until").map(|u| format!("not now: until {u}")),
        "nurture" => value("sequence").map(|s| format!("nurture: {s}")),
        "qualified" | "unqualified" | "customer" => Some(match value("reason") {
            Some(r) => format!("{kind}: {r}"),
            None => kind.clone(),
        }),
        _ => None,
    };
    let now = Utc::now();
    let verdict = words
        .as_deref()
        .and_then(|w| crate::classify::read_verdict(w, now.date_naive()));
    let Some(mut verdict) = verdict else {
        return Err(bad_form(
            &posted,
            "Not a verdict",
            "Choose a verdict; \"not now\" needs a date and \"nurture\" a sequence.",
        ));
    };
    verdict.comment = value("comment");
    let changes = actions
        .verdict_changes(&verdict, user.email.as_str(), "web", now)
        .map_err(|problem| bad_form(&posted, "Not recorded", &problem))?;
    let what = format!("verdict {} given", verdict.kind);
    change_lead(&app, &posted, &lead, changes, &what).await
}

/// Applies `changes` to the lead of a page's form and sends the browser back to its page.
async fn change_lead(
    app: &App,
    posted: &Posted,
    lead: &crate::domain::Lead,
    changes: Vec<crate::store::Change>,
    what: &str,
) -> Result<Response, Response> {
    let changes: Vec<crate::store::LeadChange> = changes
        .into_iter()
        .map(|change| crate::store::LeadChange::by_hand(lead, change))
        .collect();
    app.0
        .store
        .apply_lead_changes(&changes, Utc::now())
        .await
        .map_err(|e| {
            warn!(error = %error_chain(&e), "cannot change a lead");
            super::page::unavailable()
        })?;
    info!(by = %posted.user.email, lead = %lead.email, "{what} in the view");
    Ok(Redirect::to(&format!("{}/leads/{}", posted.user.base(), lead.id.0)).into_response())
}

/// A one-line form field, trimmed; `None` when empty.
/// A page's query string, read once: a parameter's last value wins, trimmed, and an empty one
/// counts as absent (an emptied filter field in a form).
pub(super) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(super) fn of(uri: &axum::http::Uri) -> QueryParams {
        QueryParams(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

pub(super) fn form_value(posted: &Posted, name: &str) -> Option<String> {
    posted
        .field(name)
        .map(|v| v.lines().next().unwrap_or_default().trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A 400 page saying what is wrong with a form.
pub(super) fn bad_form(posted: &Posted, title: &str, text: &str) -> Response {
    message(
        posted.user.base(),
        StatusCode::BAD_REQUEST,
        Some(&posted.user),
        title,
        text,
    )
}

/// `POST /leads/ID/owner`: the form's `owner` owns the lead from now on (its hand-offs go to
/// them), recorded on the timeline with the signed-in person.
pub(super) async fn assign_owner(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, Response> {
    let lead = lead_by_id(&app, &id).await?;
    let owner = form_value(&posted, "owner")
        .and_then(|o| crate::domain::EmailAddress::parse(&o).ok())
        .ok_or_else(|| {
            bad_form(
                &posted,
                "Not an address",
                "The owner must be an email address.",
            )
        })?;
    let change = crate::store::Change::Owner {
        owner,
        by: posted.user.email.to_string(),
    };
    change_lead(&app, &posted, &lead, vec![change], "owner assigned").await
}

/// `POST /leads/ID/unenroll`: the lead leaves the form's `sequence`.
pub(super) async fn unenroll(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, Response> {
    let lead = lead_by_id(&app, &id).await?;
    let sequence = form_value(&posted, "sequence").ok_or_else(|| {
        bad_form(
            &posted,
            "No sequence",
            "Say which sequence the lead leaves.",
        )
    })?;
    let by = posted.user.email.to_string();
    let changes = vec![
        crate::store::Change::EndEnrollments {
            sequences: Some(vec![crate::domain::SequenceName::new(sequence.clone())]),
            reason: format!("unenrolled by {by}"),
        },
        crate::store::Change::Event {
            kind: "unenrolled",
            detail: serde_json::json!({ "sequence": sequence, "by": by }),
        },
    ];
    change_lead(&app, &posted, &lead, changes, "unenrolled").await
}

/// `POST /leads/ID/pause`: the lead's sequences hold their next step until the form's
/// `until` day (as an out-of-office does); then they go on.
pub(super) async fn pause_sequences(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, Response> {
    let lead = lead_by_id(&app, &id).await?;
    let until = form_value(&posted, "until")
        .and_then(|u| chrono::NaiveDate::parse_from_str(&u, "%Y-%m-%d").ok())
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .filter(|u| *u > Utc::now())
        .ok_or_else(|| {
            bad_form(
                &posted,
                "Not a date",
                "Pause until a day in the future (YYYY-MM-DD).",
            )
        })?;
    let change = crate::store::Change::Pause {
        until,
        reason: format!("paused by {}", posted.user.email),
    };
    change_lead(&app, &posted, &lead, vec![change], "sequences paused").await
}

/// `POST /leads/ID/resume`: the lead's paused sequences go on now, each as if it had not been
/// paused (a step whose time has passed is sent at the next open moment). A lead with no
/// paused sequence is told so and nothing changes.
pub(super) async fn resume_sequences(
    State(app): State<App>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, Response> {
    let lead = lead_by_id(&app, &id).await?;
    let now = Utc::now();
    let enrollments = app.0.store.enrollments(lead.id).await.map_err(|e| {
        warn!(error = %error_chain(&e), "cannot read a lead's sequences");
        super::page::unavailable()
    })?;
    let paused = enrollments.iter().any(|e| {
        e.state == crate::domain::EnrollmentState::Active && e.paused_until.is_some_and(|p| p > now)
    });
    if !paused {
        return Err(bad_form(
            &posted,
            "Nothing to resume",
            "None of the lead's sequences is paused.",
        ));
    }
    let change = crate::store::Change::Resume {
        by: posted.user.email.to_string(),
    };
    let done = change_lead(&app, &posted, &lead, vec![change], "sequences resumed").await;
    if let Some(wake) = &app.0.web.scheduler {
        wake.notify_one();
    }
    done
}

/// `GET /admin/users`: every configured user, whether they have a password and how many
/// sessions they have now.
pub(super) async fn admin_users(
    user: SignedIn,
    State(app): State<App>,
) -> Result<Response, Response> {
    user.require(Role::Admin)?;
    let store = &app.0.store;
    let now = Utc::now();
    let looked_up = async {
        Ok::<_, crate::store::StoreError>((
            store.with_password().await?,
            store.active_sessions(now).await?,
        ))
    }
    .await;
    let (passwords, sessions) = looked_up.map_err(|e| {
        warn!(error = %error_chain(&e), "cannot list the users' sessions");
        super::page::unavailable()
    })?;
    let users: Vec<Value> = app
        .0
        .web
        .users()
        .iter()
        .map(|u| {
            let email = u.email.as_str();
            context! {
                email,
                name => u.name.as_deref().unwrap_or_default(),
                role => u.role.as_str(),
                password => passwords.iter().any(|p| p == email),
                sessions => sessions.iter().find(|(e, _)| e == email).map_or(0, |(_, n)| *n),
            }
        })
        .collect();
    Ok(render(
        user.base(),
        StatusCode::OK,
        "admin_users.html",
        context! { title => "Users", user => user.context(), csrf => user.csrf(), users },
    ))
}

/// `POST /admin/users/end-sessions`: signs the form's `email` out everywhere.
pub(super) async fn end_sessions(
    State(app): State<App>,
    posted: Posted,
) -> Result<Response, Response> {
    posted.user.require(Role::Admin)?;
    let email = posted
        .field("email")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    app.0.web.sessions.forget_all_of(&email);
    match app.0.store.end_sessions(&email).await {
        Ok(ended) => {
            info!(by = %posted.user.email, user = %email, sessions = ended, "sessions ended by an admin");
            Ok(Redirect::to(&format!("{}/admin/users", posted.user.base())).into_response())
        }
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot end sessions");
            Err(super::page::unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_escapes() {
        let evil = "<script>alert(1)</script>\"'";
        let user = context! { name => evil, email => "a@b.example", role => "admin" };
        for (name, ctx) in [
            (
                "message.html",
                context! { title => evil, text => evil, back => "/", back_label => "Home", user => user.clone(), csrf => "t" },
            ),
            (
                "signin.html",
                context! { title => "Sign in", error => evil, notice => evil, email => evil, csrf => "t", link => true },
            ),
            (
                "signin_link.html",
                context! { title => "Sign in", csrf => "t" },
            ),
            (
                "home.html",
                context! { title => "Home", user => user.clone(), csrf => "t" },
            ),
            (
                "admin_users.html",
                context! { title => "Users", user => user.clone(), csrf => "t", users => vec![context! { email => evil, name => evil, role => "sales", password => true, sessions => 2 }] },
            ),
            (
                "lead.html",
                context! { title => evil, user => user.clone(), csrf => "t", verdicts_taken => true, reasons => vec![evil], sequence_names => vec![evil], lead => context! { id => 1, email => evil, name => evil, company => evil, phone => evil, channel => evil, status => "new", owner => evil, score => 1, form => evil, created => "x" }, fields => vec![context! { name => evil, value => evil }], verdicts => vec![context! { at => "x", verdict => "unqualified", reason => evil, comment => evil, by => evil }], sequences => vec![context! { sequence => evil, state => "active", done => evil, next => evil, due => "x", paused => "x" }], timeline => vec![context! { at => "x", kind => "inquiry", subject => evil, detail => evil }] },
            ),
            (
                "reports.html",
                context! { title => "Reports", user => user.clone(), csrf => "t", q => context! { since => evil, until => evil, by => "month" }, error => evil, range => evil, periods => true,
                bars => context! { width => 720, height => 240, left => 44, base_y => "204", label_y => "220", grid => vec![context! { y => "204", label => "0" }], groups => vec![context! { channel => evil, label_x => "60", bars => vec![context! { what => "leads", n => 3, x => "50", y => "10", width => "9", height => "194" }] }] },
                months => context! { width => 720, height => 240, left => 44, base_y => "204", label_y => "220", grid => vec![context! { y => "204", label => "0" }], ticks => vec![context! { x => "50", label => evil }], series => vec![context! { channel => evil, colour => 0, line => "1,2 3,4", points => vec![context! { x => "1", y => "2", n => 3, month => evil }] }] },
                channels => vec![context! { key => evil, period => evil, cells => vec![context! { col => "leads", text => "3" }, context! { col => "reply_rate", text => "50.0%", value => "0.5000" }], reasons => evil }],
                forms => Vec::<Value>::new(), owners => Vec::<Value>::new(),
                sequences => vec![context! { sequence => evil, step => evil, period => evil, cells => vec![context! { col => "sent", text => "1" }] }],
                reasons => vec![context! { reason => evil, period => evil, cells => vec![context! { col => "count", text => "1" }] }] },
            ),
            (
                "reports.html",
                context! { title => "Reports", user => user.clone(), csrf => "t", q => context! { since => "", until => "", by => "" }, range => "x", periods => false,
                months => context! { width => 720, height => 240, left => 44, base_y => "204", label_y => "220", grid => vec![context! { y => "204", label => "0" }], single => evil, series => vec![context! { channel => evil, colour => 0, line => "1,2", bar => context! { x => "50", y => "10", width => "60", height => "194", label_x => "80", value_y => "6" }, points => vec![context! { x => "1", y => "2", n => 3, month => evil }] }] },
                channels => Vec::<Value>::new(), forms => Vec::<Value>::new(), owners => Vec::<Value>::new(), sequences => Vec::<Value>::new(), reasons => Vec::<Value>::new() },
            ),
            (
                "outbox.html",
                context! { title => "Outbox", user => user.clone(), csrf => "t", listed => 200, messages => vec![context! { id => 4, recipient => evil, subject => evil, state => "interrupted", reason => evil, attempts => 1, when => "x", lead => 7, interrupted => true, retry => true, cancel => true }] },
            ),
            (
                "outbox_confirm.html",
                context! { title => evil, user => user.clone(), csrf => "t", decision => "retry", m => context! { id => 4, recipient => evil, subject => evil, state => "interrupted", reason => evil, attempts => 1, when => "x", created => "x", interrupted => true } },
            ),
            (
                "leads.html",
                context! { title => "Leads", user => user.clone(), csrf => "t", q => context! { search => evil, sort => "newest" }, statuses => vec!["new"], sorts => vec!["newest"], error => evil, page => 0, prev => None::<String>, next => Some("page=1"), rows => lead_rows("", &[crate::store::LeadLine { id: crate::domain::LeadId(1), email: evil.to_owned(), name: Some(evil.to_owned()), company: Some(evil.to_owned()), channel: evil.to_owned(), status: "new".to_owned(), owner: Some(evil.to_owned()), score: 1, created_at: Utc::now() }]) },
            ),
        ] {
            let html = TEMPLATES
                .get_template(name)
                .and_then(|t| t.render(ctx.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!html.contains("<script"), "{name}: {html}");
            assert!(html.contains("/static/app.css"), "{name}");
            if name != "signin_link.html" {
                assert!(html.contains("&lt;script&gt;"), "{name}: {html}");
            }
            let prefixed = TEMPLATES
                .get_template(name)
                .and_then(|t| t.render(context! { base => "/ll", ..ctx.clone() }))
                .unwrap()
                // minijinja writes `/` in a value as `&#x2f;`, which browsers read back.
                .replace("&#x2f;", "/");
            assert!(
                prefixed.contains("\"/ll/static/app.css\""),
                "{name}: {prefixed}"
            );
            assert!(
                !prefixed.contains("=\"/s"),
                "{name}: a link outside the prefix: {prefixed}"
            );
            if name.starts_with("signin") {
                assert!(html.contains("name=\"csrf\" value=\"t\""), "{name}");
            }
        }
    }
}
