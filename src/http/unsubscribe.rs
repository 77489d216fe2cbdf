//! One-click unsubscribe (RFC 8058) at `/u/TOKEN`.
//!
//! TOKEN is the enrollment's token, the same one the mailto address of `List-Unsubscribe`
//! carries (`INBOX+unsubscribe-TOKEN@…`), so the link names the lead without saying who it is.
//!
//! - `GET` shows a page with a button and changes nothing: mail filters and link scanners
//!   fetch every link in a message, and a fetch must not unsubscribe anyone.
//! - `POST` with the body `List-Unsubscribe=One-Click` (what a mail client sends for the
//!   `List-Unsubscribe-Post` header, and what the button sends) does what an unsubscribe by
//!   mail does — every enrollment of the lead ends, its address is suppressed, the lead is
//!   `unsubscribed` — with an `unsubscribed` event on its timeline saying it came by link, in
//!   one transaction ([`Store::unsubscribe_once`](crate::store::Store::unsubscribe_once)).
//!   A lead already unsubscribed and suppressed is left alone, so a second POST changes
//!   nothing and records nothing; both get the same page.
//!
//! An unknown token gets the same 404 page as any unknown address, and no answer holds anything
//! about the lead.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use chrono::Utc;
use tracing::{info, warn};

use super::{App, page};
use crate::diagnostics::error_chain;
use crate::store::{KnownLead, StoreError};

/// What the timeline's `unsubscribed` event says of where the request came from.
const VIA: &str = "one-click link";

/// The longest token looked up; tokens are 16 hex digits.
const MAX_TOKEN_LEN: usize = 64;

/// `GET /u/TOKEN`: the confirm page, or 404 for a token nobody has.
pub(super) async fn confirm(State(app): State<App>, Path(token): Path<String>) -> Response {
    match lead_of(&app, &token).await {
        Ok(Some(_)) => page::confirm(),
        Ok(None) => page::not_found(),
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot look up an unsubscribe token");
            page::unavailable()
        }
    }
}

/// `POST /u/TOKEN` with `List-Unsubscribe=One-Click`: unsubscribes the token's lead, once.
pub(super) async fn one_click(
    State(app): State<App>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !asks_one_click(content_type, &body) {
        return page::not_one_click();
    }
    let lead = match lead_of(&app, &token).await {
        Ok(Some(lead)) => lead,
        Ok(None) => return page::not_found(),
        Err(e) => {
            warn!(error = %error_chain(&e), "cannot look up an unsubscribe token");
            return page::unavailable();
        }
    };
    let changes = crate::actions::unsubscribe_by_link(&lead.email);
    let detail = serde_json::json!({ "via": VIA });
    match app
        .0
        .store
        .unsubscribe_once(&lead.email, &changes, &detail, Utc::now())
        .await
    {
        Ok(true) => {
            info!(lead = lead.id.0, "unsubscribed by the one-click link");
            page::unsubscribed()
        }
        Ok(false) => page::unsubscribed(),
        Err(e) => {
            warn!(error = %error_chain(&e), lead = lead.id.0, "cannot record a one-click unsubscribe");
            page::unavailable()
        }
    }
}

/// The lead of the enrollment with this token; `None` for a token nobody has (or one that
/// cannot be a token).
async fn lead_of(app: &App, token: &str) -> Result<Option<KnownLead>, StoreError> {
    if token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Ok(None);
    }
    let token = token.to_ascii_lowercase();
    let store = &app.0.store;
    let Some(&id) = store
        .enrollment_tokens(&[token.as_str()])
        .await?
        .get(&token)
    else {
        return Ok(None);
    };
    Ok(store.known_leads(&[id]).await?.remove(&id))
}

/// Whether a POST body holds `List-Unsubscribe=One-Click`, as RFC 8058 has clients send it:
/// `application/x-www-form-urlencoded` (what every client and our button send; assumed when
/// no type is given) or `multipart/form-data`.
fn asks_one_click(content_type: &str, body: &[u8]) -> bool {
    let is = |key: &str, value: &str| {
        key.trim().eq_ignore_ascii_case("List-Unsubscribe")
            && value.trim().eq_ignore_ascii_case("One-Click")
    };
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("multipart/form-data") {
        return boundary(content_type).is_some_and(|b| {
            form_parts(body, &b)
                .into_iter()
                .any(|(name, value)| is(&name, &String::from_utf8_lossy(value)))
        });
    }
    form_urlencoded::parse(body).any(|(k, v)| is(&k, &v))
}

/// The `boundary` parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// The `(name, value)` of each part of a `multipart/form-data` body.
fn form_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<(String, &'a [u8])> {
    let delimiter = format!("--{boundary}").into_bytes();
    split(body, delimiter)
        .skip(1)
        .filter_map(|part| {
            let part = part.strip_prefix(b"\r\n").unwrap_or(part);
            let head_end = find(part, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&part[..head_end]);
            let value = &part[head_end + 4..];
            let value = value.strip_suffix(b"\r\n").unwrap_or(value);
            let name = head.lines().find_map(|line| {
                let (field, rest) = line.split_once(':')?;
                if !field.trim().eq_ignore_ascii_case("Content-Disposition") {
                    return None;
                }
                rest.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
                })
            })?;
            Some((name, value))
        })
        .collect()
}

/// `haystack` cut at every occurrence of `needle`.
fn split(haystack: &[u8], needle: Vec<u8>) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(haystack);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, &needle) {
            Some(at) => {
                rest = Some(&current[at + needle.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_8058_body_is_recognised_in_both_encodings() {
        assert!(asks_one_click(
            "application/x-www-form-urlencoded",
            b"List-Unsubscribe=One-Click"
        ));
        assert!(asks_one_click("", b"List-Unsubscribe=One-Click"));
        assert!(asks_one_click(
            "application/x-www-form-urlencoded; charset=utf-8",
            b"a=b&List-Unsubscribe=One-Click"
        ));
        assert!(!asks_one_click("application/x-www-form-urlencoded", b""));
        assert!(!asks_one_click(
            "application/x-www-form-urlencoded",
            b"List-Unsubscribe=Later"
        ));
        let multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(asks_one_click(
            "multipart/form-data; boundary=XyZ",
            multipart
        ));
        assert!(asks_one_click(
            "multipart/form-data; boundary=\"XyZ\"",
            multipart
        ));
        assert!(!asks_one_click("multipart/form-data", multipart));
        assert!(!asks_one_click(
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nOne-Click\r\n--XyZ--\r\n"
        ));
    }
}
