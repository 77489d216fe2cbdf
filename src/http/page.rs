//! The few HTML pages the listener shows: whole documents with one inline style and no
//! script, nothing loaded from elsewhere, and every text escaped. None of them says anything
//! about a lead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The pages' only style, inline; [`CONTENT_SECURITY_POLICY`] allows exactly this text by its
/// hash.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}button{font:inherit;padding:.5rem 1.25rem}";

/// Nothing may load but the inline [`STYLE`] (allowed by its SHA-256) and the view's own
/// stylesheet (`/static/app.css`, from this origin), forms post only to this origin, no
/// script runs, and no page may be framed.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'sha256-eag4JM2E/9y4PBcpONLWwVHGeST8SnrEgd3Jaqvihzw=' 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The confirm button's form: it posts what a mail client's one-click POST holds, to the
/// page's own address.
const CONFIRM_FORM: &str = "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>";

/// `GET /u/TOKEN`: asks before anything changes.
pub(super) fn confirm() -> Response {
    page(
        StatusCode::OK,
        "Unsubscribe",
        "Press the button to stop receiving these emails.",
        Some(CONFIRM_FORM),
    )
}

/// After `POST /u/TOKEN`, the first time and every time after.
pub(super) fn unsubscribed() -> Response {
    page(
        StatusCode::OK,
        "You are unsubscribed",
        "You will not receive any more of these emails.",
        None,
    )
}

/// An unknown token, or any other address: says nothing about what exists.
pub(super) fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
        None,
    )
}

/// A POST without `List-Unsubscribe=One-Click`.
pub(super) fn not_one_click() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Unsubscribe",
        "This request did not confirm the unsubscribe. Open the link in a browser and press the button.",
        None,
    )
}

/// The database failed; the client may try again.
pub(super) fn unavailable() -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "Something went wrong on our side. Please try again in a few minutes.",
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// A whole page: `title` as heading, one paragraph, and optionally a form (trusted markup).
fn page(status: StatusCode, title: &str, text: &str, form: Option<&str>) -> Response {
    let title = escape(title);
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{title}</title><style>{STYLE}</style></head>\n\
         <body><h1>{title}</h1><p>{}</p>{}</body></html>\n",
        escape(text),
        form.unwrap_or_default()
    );
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

/// `s` as HTML text or attribute value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_style() {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        assert!(
            CONTENT_SECURITY_POLICY.contains(&format!("style-src 'sha256-{hash}'")),
            "update the hash in CONTENT_SECURITY_POLICY to {hash}"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
