//! Asking a running rspamd about the messages that would make new leads (`[spam]
//! rspamd_url`), through its scanning worker's HTTP API (`POST /checkv2`).
//!
//! The failure classes, and what each does to the message (never lost, never dropped):
//!
//! | what happens | who is at fault | the message |
//! |---|---|---|
//! | rspamd says `reject`, `add header`, `rewrite subject`, or a score at `spam_score` | the sender | ignored as spam, with rspamd's word as the reason |
//! | rspamd says `greylist`/`soft reject`, or a score at `review_score` | nobody knows | its new lead waits for review |
//! | refused connection, timeout, an HTTP error, an answer that is not rspamd's JSON | rspamd, the network, or our `rspamd_url` | its new lead waits for review, and the log says why, once per batch |
//!
//! Nothing is committed before rspamd answers (or the timeout passes): the batch is recorded
//! with its verdicts in one transaction, so a crash while asking reads the messages again.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::classify::{Judgement, SpamRules};
use crate::config::Rspamd;

/// At most this many questions to rspamd at once: it scans in parallel, but one batch must
/// not take all of a shared rspamd.
pub const CONCURRENCY: usize = 8;

/// rspamd's answers are a few kilobytes; anything far larger is not rspamd.
const MAX_ANSWER: usize = 1024 * 1024;

/// What rspamd made of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not spam.
    Clean,
    /// Suspicious: its new lead waits for review. The reason names rspamd's action and score.
    Review(String),
    /// Spam: the message is ignored with this reason.
    Spam(String),
    /// rspamd could not be asked or did not answer: the lead waits for review, never lost.
    Unavailable(String),
}

/// The part of rspamd's `/checkv2` answer leadloop reads.
#[derive(Debug, Deserialize)]
struct Answer {
    action: String,
    score: f64,
}

/// A client for one rspamd.
#[derive(Debug, Clone)]
pub struct Client {
    config: Rspamd,
}

impl Client {
    /// A client for the rspamd of `[spam] rspamd_url`.
    pub fn new(config: Rspamd) -> Self {
        Client { config }
    }

    /// The URL asked, for logs.
    pub fn url(&self) -> String {
        self.config.url()
    }

    /// Asks rspamd about one message, within `[spam] rspamd_timeout` for the whole exchange.
    pub async fn check(&self, message: Bytes, rules: &SpamRules) -> Verdict {
        match tokio::time::timeout(self.config.timeout, self.ask(message)).await {
            Ok(Ok(answer)) => judge(&answer, rules),
            Ok(Err(why)) => Verdict::Unavailable(why),
            Err(_) => Verdict::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(self.config.timeout)
            )),
        }
    }

    async fn ask(&self, message: Bytes) -> Result<Answer, String> {
        let host = self.config.host.as_str();
        let stream = TcpStream::connect((host, self.config.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.url()))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{}: {e}", self.url()))?;
        // The connection is driven beside the request and ends with it.
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = if host.contains(':') {
            format!("[{host}]:{}", self.config.port)
        } else {
            format!("{host}:{}", self.config.port)
        };
        let request = Request::post("/checkv2")
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_LENGTH, message.len())
            .body(Full::new(message))
            .map_err(|e| format!("building the request: {e}"))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("{}: {e}", self.url()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading rspamd's answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(body.get(..200).unwrap_or(&body));
                return Err(format!("rspamd answered HTTP {status}: {}", text.trim()));
            }
            serde_json::from_slice::<Answer>(&body)
                .map_err(|e| format!("rspamd's answer is not its JSON: {e}"))
        }
        .await;
        driver.abort();
        result
    }
}

/// rspamd's action first (its own thresholds), then its score against ours.
fn judge(a: &Answer, rules: &SpamRules) -> Verdict {
    let action = a.action.to_ascii_lowercase();
    let score = a.score;
    match action.as_str() {
        "reject" | "add header" | "rewrite subject" => {
            return Verdict::Spam(format!("spam (rspamd: {action}, score {score})"));
        }
        "soft reject" | "greylist" => {
            return Verdict::Review(format!("suspicious (rspamd: {action}, score {score})"));
        }
        _ => {}
    }
    if !score.is_finite() {
        return Verdict::Unavailable(format!("rspamd gave no usable score ({score})"));
    }
    match rules.judge_score("rspamd", score) {
        Judgement::Spam(reason) => Verdict::Spam(reason),
        Judgement::Review(reason) => Verdict::Review(reason),
        Judgement::Clean => Verdict::Clean,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer(action: &str, score: f64) -> Verdict {
        judge(
            &Answer {
                action: action.to_owned(),
                score,
            },
            &SpamRules::default(),
        )
    }

    #[test]
    fn actions_then_scores() {
        assert!(matches!(answer("reject", 15.0), Verdict::Spam(_)));
        assert!(matches!(answer("add header", 6.5), Verdict::Spam(_)));
        assert!(matches!(answer("greylist", 4.1), Verdict::Review(_)));
        assert!(matches!(answer("no action", 3.5), Verdict::Review(_)));
        assert!(matches!(answer("no action", 7.0), Verdict::Spam(_)));
        assert_eq!(answer("no action", 0.4), Verdict::Clean);
        assert_eq!(answer("no action", -2.0), Verdict::Clean);
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable_not_an_error() {
        // Bind and drop: the port is (almost surely) closed afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(Rspamd {
            host: "127.0.0.1".into(),
            port,
            timeout: Duration::from_secs(2),
        });
        let v = client
            .check(
                Bytes::from_static(b"Subject: x\r\n\r\nhi\r\n"),
                &SpamRules::default(),
            )
            .await;
        assert!(
            matches!(v, Verdict::Unavailable(ref why) if why.contains("cannot connect")),
            "{v:?}"
        );
    }
}
