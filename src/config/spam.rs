//! `[spam]`: how the verdicts of spam filters count, and the optional rspamd to ask.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Checker;
use crate::classify::SpamRules;

/// `[spam]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpam {
    headers: Option<bool>,
    review_score: Option<Spanned<f64>>,
    spam_score: Option<Spanned<f64>>,
    review_percent: Option<Spanned<f64>>,
    spam_percent: Option<Spanned<f64>>,
    dmarc: Option<bool>,
    rspamd_url: Option<Spanned<String>>,
    rspamd_timeout: Option<Spanned<String>>,
}

/// `[spam]`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpamConfig {
    /// What the classifier makes of the filters' headers.
    pub rules: SpamRules,
    /// An rspamd to ask about every message that would make a new lead; `None` asks none.
    pub rspamd: Option<Rspamd>,
}

/// `[spam] rspamd_url` and `rspamd_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rspamd {
    /// The host of rspamd's scanning worker (`127.0.0.1`).
    pub host: String,
    /// Its port (11333 unless the URL names another).
    pub port: u16,
    /// The longest wait for an answer; after it the lead is recorded for review.
    pub timeout: Duration,
}

impl Rspamd {
    /// The URL as the file gave it, for messages.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// rspamd's port for its scanning worker.
const RSPAMD_PORT: u16 = 11333;

pub(super) fn check_spam(ck: &mut Checker<'_>, raw: Option<&RawSpam>) -> SpamConfig {
    let d = SpamRules::default();
    let Some(raw) = raw else {
        return SpamConfig::default();
    };
    let mut number = |v: Option<&Spanned<f64>>, key: &str, default: f64, max: Option<f64>| {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if !n.is_finite() || max.is_some_and(|m| !(0.0..=m).contains(&n)) {
            let range = max.map_or("a finite number".to_owned(), |m| {
                format!("between 0 and {m}")
            });
            ck.at(v.span(), key, format!("must be {range}"));
            return default;
        }
        n
    };
    let review_score = number(
        raw.review_score.as_ref(),
        "spam.review_score",
        d.review_score,
        None,
    );
    let spam_score = number(
        raw.spam_score.as_ref(),
        "spam.spam_score",
        d.spam_score,
        None,
    );
    let review_percent = number(
        raw.review_percent.as_ref(),
        "spam.review_percent",
        d.review_percent,
        Some(100.0),
    );
    let spam_percent = number(
        raw.spam_percent.as_ref(),
        "spam.spam_percent",
        d.spam_percent,
        Some(100.0),
    );
    if review_score > spam_score
        && let Some(v) = raw.review_score.as_ref().or(raw.spam_score.as_ref())
    {
        ck.at(
            v.span(),
            "spam.review_score",
            format!("review_score ({review_score}) must not be above spam_score ({spam_score})"),
        );
    }
    if review_percent > spam_percent
        && let Some(v) = raw.review_percent.as_ref().or(raw.spam_percent.as_ref())
    {
        ck.at(
            v.span(),
            "spam.review_percent",
            format!(
                "review_percent ({review_percent}) must not be above spam_percent ({spam_percent})"
            ),
        );
    }
    let timeout = ck.duration(
        raw.rspamd_timeout.as_ref(),
        "spam.rspamd_timeout",
        Duration::from_secs(5),
    );
    let rspamd = raw
        .rspamd_url
        .as_ref()
        .and_then(|u| match rspamd_address(u.get_ref()) {
            Ok((host, port)) => Some(Rspamd {
                host,
                port,
                timeout,
            }),
            Err(why) => {
                ck.at(u.span(), "spam.rspamd_url", why);
                None
            }
        });
    SpamConfig {
        rules: SpamRules {
            headers: raw.headers.unwrap_or(d.headers),
            review_score,
            spam_score,
            review_percent,
            spam_percent,
            dmarc: raw.dmarc.unwrap_or(d.dmarc),
        },
        rspamd,
    }
}

/// `http://HOST[:PORT][/]`: rspamd's scanning worker speaks plain HTTP, on loopback or a
/// private network; the path is always `/checkv2`.
fn rspamd_address(text: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "'{text}' is not rspamd's address like \"http://127.0.0.1:11333\" (plain http, no path)"
        )
    };
    let rest = text
        .trim()
        .strip_prefix("http://")
        .ok_or_else(bad)?
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => RSPAMD_PORT,
            None => return Err(bad()),
        };
        (host.to_owned(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad())?),
            None => (rest.to_owned(), RSPAMD_PORT),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::rspamd_address;

    #[test]
    fn rspamd_addresses() {
        assert_eq!(
            rspamd_address("http://127.0.0.1:11333").unwrap(),
            ("127.0.0.1".to_owned(), 11333)
        );
        assert_eq!(
            rspamd_address("http://rspamd.lan/").unwrap(),
            ("rspamd.lan".to_owned(), 11333)
        );
        assert_eq!(
            rspamd_address("http://[::1]:8080").unwrap(),
            ("::1".to_owned(), 8080)
        );
        for bad in [
            "https://x:1",
            "http://",
            "http://x:0",
            "http://x:y",
            "http://x/checkv2",
            "127.0.0.1:11333",
            "http://[::1",
        ] {
            assert!(rspamd_address(bad).is_err(), "{bad}");
        }
    }
}
