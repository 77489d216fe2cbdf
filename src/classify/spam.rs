//! The verdicts spam filters in front of the mailbox wrote into the message's headers, read
//! against the team's thresholds (`[spam]`).
//!
//! Every filter speaks its own dialect: a flag (`X-Spam-Flag: YES`), an action
//! (`X-Rspamd-Action: add header`), points on SpamAssassin's scale (SpamAssassin, rspamd, Exim,
//! Barracuda, Mimecast), a percentage (Proofpoint's `spamscore`), Microsoft's spam confidence
//! level, or DMARC's policy in `Authentication-Results`. Each is read into one [`Judgement`],
//! and the worst of them counts: filters disagree mostly because one of them knew more.
//!
//! Headers only ever make a message *worse*: a sender can forge any of them, and a forged
//! "not spam" must not let a spammer through, while a forged "spam" only hides the forger.

use mail_parser::Message;

use super::parse;

/// How the verdicts of upstream spam filters count (`[spam]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpamRules {
    /// Read the filters' headers at all.
    pub headers: bool,
    /// Points (SpamAssassin's scale, also rspamd's, Exim's, Barracuda's and Mimecast's) at or
    /// above which a message that would make a new lead makes one waiting for review.
    pub review_score: f64,
    /// Points at or above which the message is spam: recorded, ignored, no lead.
    pub spam_score: f64,
    /// Proofpoint `spamscore` (0–100) at or above which a new lead waits for review.
    pub review_percent: f64,
    /// Proofpoint `spamscore` at or above which the message is spam.
    pub spam_percent: f64,
    /// DMARC `fail` for a sender domain that publishes `p=reject` is spam, and one that
    /// publishes `p=quarantine` waits for review.
    pub dmarc: bool,
}

impl Default for SpamRules {
    fn default() -> Self {
        SpamRules {
            headers: true,
            review_score: 3.0,
            spam_score: 6.0,
            review_percent: 50.0,
            spam_percent: 90.0,
            dmarc: true,
        }
    }
}

/// What the headers say, worst first when compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Nothing against it (or nothing said).
    Clean,
    /// Suspicious: a new lead from it waits for a person's approval. The reason names the
    /// header and the figure.
    Review(String),
    /// Spam: ignored with the reason.
    Spam(String),
}

impl Judgement {
    fn rank(&self) -> u8 {
        match self {
            Judgement::Clean => 0,
            Judgement::Review(_) => 1,
            Judgement::Spam(_) => 2,
        }
    }

    /// The worse of two; the first on a tie, so the earliest header read explains it.
    fn worst(self, other: Judgement) -> Judgement {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// How many fields of one name are read: a message relayed through many filters has a few,
/// a hostile one may have thousands.
const MAX_FIELDS: usize = 8;

/// Reads every filter's verdict the message carries; the worst counts.
pub fn judge(msg: &Message<'_>, rules: &SpamRules) -> Judgement {
    if !rules.headers {
        return Judgement::Clean;
    }
    let mut j = Judgement::Clean;
    // One look at the header names first: most mail carries no filter's header, and asking for
    // each of them by name would read every header once per filter.
    let filtered = parse::header_names(msg).any(|n| {
        n.as_bytes()
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-"))
            && READERS.iter().any(|(name, _)| n.eq_ignore_ascii_case(name))
    });
    for (name, read) in READERS.iter().filter(|_| filtered) {
        for value in parse::header_values(msg, name, MAX_FIELDS) {
            j = j.worst(read(name, value.trim(), rules));
            if j.rank() == 2 {
                return j;
            }
        }
    }
    if rules.dmarc
        // The topmost Authentication-Results is our own border's: lower ones are hearsay.
        && let Some(ar) = parse::header(msg, "Authentication-Results")
    {
        j = j.worst(dmarc(&ar));
    }
    j
}

type Reader = fn(&str, &str, &SpamRules) -> Judgement;

/// Header name and how to read it, in the order their reasons are preferred.
const READERS: &[(&str, Reader)] = &[
    ("X-Spam-Flag", flag),
    ("X-Spam", flag),
    ("X-Barracuda-Spam-Flag", flag),
    ("X-Spam-Status", status),
    ("X-Barracuda-Spam-Status", status),
    ("X-Rspamd-Action", rspamd_action),
    ("X-Spamd-Result", spamd_result),
    ("X-Rspamd-Score", points),
    ("X-Spam-Score", points),
    ("X-Spam_score", points),
    ("X-Spam_score_int", tenths),
    ("X-Barracuda-Spam-Score", points),
    ("X-Mimecast-Spam-Score", points),
    ("X-Proofpoint-Spam-Details", proofpoint),
    ("X-MS-Exchange-Organization-SCL", scl),
    ("X-Forefront-Antispam-Report", forefront),
    ("X-Microsoft-Antispam-Mailbox-Delivery", microsoft_delivery),
];

/// `YES`/`Yes, …`: the filter's own decision.
fn flag(name: &str, v: &str, _: &SpamRules) -> Judgement {
    if starts_with_yes(v) {
        Judgement::Spam(format!("spam ({name}: Yes)"))
    } else {
        Judgement::Clean
    }
}

fn starts_with_yes(v: &str) -> bool {
    v.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("yes"))
        && !v[3..].starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// SpamAssassin's and Barracuda's `Yes|No, score=4.2 required=5.0 …` (`SCORE=` for
/// Barracuda): `Yes` is spam; under `No` the score is compared with ours.
fn status(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    if starts_with_yes(v) {
        return Judgement::Spam(format!("spam ({name}: Yes)"));
    }
    match number_after(v, "score=") {
        Some(score) => rules.judge_score(name, score),
        None => Judgement::Clean,
    }
}

/// rspamd's action: `reject`, `add header` and `rewrite subject` are spam; `greylist` and
/// `soft reject` mean rspamd itself was unsure.
fn rspamd_action(name: &str, v: &str, _: &SpamRules) -> Judgement {
    match v.to_ascii_lowercase().as_str() {
        "reject" | "add header" | "add_header" | "rewrite subject" | "rewrite_subject" => {
            Judgement::Spam(format!("spam ({name}: {v})"))
        }
        "greylist" | "soft reject" | "soft_reject" => {
            Judgement::Review(format!("suspicious ({name}: {v})"))
        }
        _ => Judgement::Clean,
    }
}

/// rspamd's `default: False [4.20 / 15.00]; SYMBOL(…) …`: `True` is spam, else the score.
fn spamd_result(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    let lower = v.to_ascii_lowercase();
    let verdict = lower
        .split_once(':')
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or(&lower);
    if verdict.starts_with("true") {
        return Judgement::Spam(format!("spam ({name}: True)"));
    }
    let score = v
        .split_once('[')
        .and_then(|(_, rest)| leading_number(rest.trim_start()));
    match score {
        Some(score) => rules.judge_score(name, score),
        None => Judgement::Clean,
    }
}

/// A bare score on SpamAssassin's scale (`4.2`, or Barracuda's `4.12`).
fn points(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    match leading_number(v) {
        Some(score) => rules.judge_score(name, score),
        None => Judgement::Clean,
    }
}

/// Exim's `X-Spam_score_int`: the score times ten.
fn tenths(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    match leading_number(v) {
        Some(score) => rules.judge_score(name, score / 10.0),
        None => Judgement::Clean,
    }
}

impl SpamRules {
    /// A score on SpamAssassin's scale from `source` (a header's name, `rspamd`) against
    /// `review_score` and `spam_score`.
    pub fn judge_score(&self, source: &str, score: f64) -> Judgement {
        if score >= self.spam_score {
            Judgement::Spam(format!(
                "spam ({source}: score {score} is at least spam_score {})",
                self.spam_score
            ))
        } else if score >= self.review_score {
            Judgement::Review(format!(
                "suspicious ({source}: score {score} is at least review_score {})",
                self.review_score
            ))
        } else {
            Judgement::Clean
        }
    }
}

/// Proofpoint's `rule=spam policy=… score=… spamscore=93 …`: its own `rule=spam` is spam,
/// else the `spamscore` percentage against ours.
fn proofpoint(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    let lower = v.to_ascii_lowercase();
    if lower
        .split_whitespace()
        .any(|w| w == "rule=spam" || w == "rule=bulk_spam")
    {
        return Judgement::Spam(format!("spam ({name}: rule=spam)"));
    }
    let Some(score) = number_after(&lower, "spamscore=") else {
        return Judgement::Clean;
    };
    if score >= rules.spam_percent {
        Judgement::Spam(format!(
            "spam ({name}: spamscore {score} is at least spam_percent {})",
            rules.spam_percent
        ))
    } else if score >= rules.review_percent {
        Judgement::Review(format!(
            "suspicious ({name}: spamscore {score} is at least review_percent {})",
            rules.review_percent
        ))
    } else {
        Judgement::Clean
    }
}

/// Microsoft's spam confidence level: 5 and above is junk, by Microsoft's own definition
/// (`-1` is a trusted sender, 0 and 1 not spam).
fn scl(name: &str, v: &str, _: &SpamRules) -> Judgement {
    match v.trim().parse::<i32>() {
        Ok(level) if level >= 5 => {
            Judgement::Spam(format!("spam ({name}: spam confidence level {level})"))
        }
        _ => Judgement::Clean,
    }
}

/// Exchange Online's `…;SCL:5;SRV:;IPV:NLI;SFV:SPM;…`: the filter verdict `SFV:SPM` or a
/// spam confidence level of 5 or more.
fn forefront(name: &str, v: &str, rules: &SpamRules) -> Judgement {
    for item in v.split(';') {
        let Some((key, value)) = item.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key.eq_ignore_ascii_case("SFV") && value.eq_ignore_ascii_case("SPM") {
            return Judgement::Spam(format!("spam ({name}: SFV:SPM)"));
        }
        if key.eq_ignore_ascii_case("SCL") {
            let j = scl(name, value, rules);
            if j != Judgement::Clean {
                return j;
            }
        }
    }
    Judgement::Clean
}

/// Exchange Online's delivery decision: `dest:J` is the junk folder.
fn microsoft_delivery(name: &str, v: &str, _: &SpamRules) -> Judgement {
    let junk = v.split(';').any(|item| {
        item.split_once(':').is_some_and(|(k, val)| {
            k.trim().eq_ignore_ascii_case("dest") && val.trim().eq_ignore_ascii_case("J")
        })
    });
    if junk {
        Judgement::Spam(format!("spam ({name}: dest:J, the junk folder)"))
    } else {
        Judgement::Clean
    }
}

/// `dmarc=fail (p=REJECT sp=REJECT dis=NONE) header.from=…` (Google and most servers) or
/// `dmarc=fail action=oreject header.from=…` (Microsoft): the sender's domain says mail that
/// fails must be refused, so whoever wrote this is not who the From says.
fn dmarc(ar: &str) -> Judgement {
    let lower = ar.to_ascii_lowercase();
    for part in lower.split(';') {
        let part = part.trim();
        let Some(result) = part.strip_prefix("dmarc=") else {
            continue;
        };
        if !result.starts_with("fail") {
            return Judgement::Clean;
        }
        let from = part
            .split_whitespace()
            .find_map(|w| w.strip_prefix("header.from="))
            .unwrap_or("the sender's domain");
        let policy = part
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .find_map(|w| w.strip_prefix("p=").or_else(|| w.strip_prefix("action=")));
        return match policy {
            Some("reject" | "oreject") => Judgement::Spam(format!(
                "spam (Authentication-Results: dmarc=fail, and {from} publishes p=reject)"
            )),
            Some("quarantine" | "oquarantine") => Judgement::Review(format!(
                "suspicious (Authentication-Results: dmarc=fail, and {from} publishes p=quarantine)"
            )),
            _ => Judgement::Clean,
        };
    }
    Judgement::Clean
}

/// The number right after `key` (any case) in `v`.
fn number_after(v: &str, key: &str) -> Option<f64> {
    let lower = v.to_ascii_lowercase();
    let at = lower.find(key)? + key.len();
    leading_number(v.get(at..)?)
}

/// A leading decimal number (`-1.5`, `4`, `12.30`); `None` for none or a non-finite one.
fn leading_number(v: &str) -> Option<f64> {
    let end = v
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(v.len(), |(i, _)| i);
    v.get(..end)?.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn judged(headers: &str) -> Judgement {
        judged_with(headers, &SpamRules::default())
    }

    fn judged_with(headers: &str, rules: &SpamRules) -> Judgement {
        let raw = format!(
            "{headers}From: a@example.org\r\nTo: b@company.com\r\nSubject: hi\r\n\r\nhello\r\n"
        );
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        judge(&msg, rules)
    }

    fn kind(j: &Judgement) -> &'static str {
        match j {
            Judgement::Clean => "clean",
            Judgement::Review(_) => "review",
            Judgement::Spam(_) => "spam",
        }
    }

    #[test]
    fn each_dialect() {
        let cases = [
            ("X-Spam-Flag: YES\r\n", "spam"),
            ("X-Spam-Flag: NO\r\n", "clean"),
            ("X-Spam: yes\r\n", "spam"),
            ("X-Spam: Yesterday\r\n", "clean"),
            ("X-Spam-Status: Yes, score=9.1 required=5.0\r\n", "spam"),
            (
                "X-Spam-Status: No, score=4.2 required=5.0 tests=HTML_MESSAGE\r\n",
                "review",
            ),
            ("X-Spam-Status: No, score=0.4 required=5.0\r\n", "clean"),
            ("X-Spam-Status: No, score=-1.9 required=5.0\r\n", "clean"),
            ("X-Rspamd-Action: add header\r\n", "spam"),
            ("X-Rspamd-Action: greylist\r\n", "review"),
            ("X-Rspamd-Action: no action\r\n", "clean"),
            (
                "X-Spamd-Result: default: False [3.40 / 15.00]; R_SPF_ALLOW(-0.20)[+ip4]\r\n",
                "review",
            ),
            ("X-Spamd-Result: default: True [16.00 / 15.00]\r\n", "spam"),
            ("X-Spamd-Result: default: False [0.10 / 15.00]\r\n", "clean"),
            ("X-Rspamd-Score: 7.5\r\n", "spam"),
            ("X-Spam_score: 3.5\r\n", "review"),
            ("X-Spam_score_int: 71\r\n", "spam"),
            ("X-Spam_score_int: 12\r\n", "clean"),
            ("X-Barracuda-Spam-Score: 4.12\r\n", "review"),
            (
                "X-Barracuda-Spam-Status: No, SCORE=1.00 using per-user scores of TAG_LEVEL=3.5 QUARANTINE_LEVEL=1000.0 KILL_LEVEL=6.0\r\n",
                "clean",
            ),
            (
                "X-Barracuda-Spam-Status: Yes, SCORE=8.00 using global scores\r\n",
                "spam",
            ),
            ("X-Mimecast-Spam-Score: 9\r\n", "spam"),
            (
                "X-Proofpoint-Spam-Details: rule=notspam policy=default score=0 spamscore=0 suspectscore=0\r\n",
                "clean",
            ),
            (
                "X-Proofpoint-Spam-Details: rule=notspam policy=default score=60 spamscore=60\r\n",
                "review",
            ),
            (
                "X-Proofpoint-Spam-Details: rule=spam policy=default score=99 spamscore=99\r\n",
                "spam",
            ),
            ("X-MS-Exchange-Organization-SCL: 6\r\n", "spam"),
            ("X-MS-Exchange-Organization-SCL: -1\r\n", "clean"),
            (
                "X-Forefront-Antispam-Report: CIP:192.0.2.1;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;\r\n",
                "clean",
            ),
            (
                "X-Forefront-Antispam-Report: CIP:192.0.2.1;CTRY:;LANG:en;SCL:5;SRV:;IPV:NLI;SFV:SPM;\r\n",
                "spam",
            ),
            (
                "X-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;dest:J;\r\n",
                "spam",
            ),
            (
                "X-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;dest:I;\r\n",
                "clean",
            ),
            (
                "Authentication-Results: mx.company.com; dkim=none; spf=fail smtp.mailfrom=bank.example; dmarc=fail (p=REJECT sp=REJECT dis=NONE) header.from=bank.example\r\n",
                "spam",
            ),
            (
                "Authentication-Results: mx.company.com; dmarc=fail action=oreject header.from=bank.example\r\n",
                "spam",
            ),
            (
                "Authentication-Results: mx.company.com; dmarc=fail (p=QUARANTINE) header.from=shop.example\r\n",
                "review",
            ),
            (
                "Authentication-Results: mx.company.com; dmarc=fail (p=NONE) header.from=small.example\r\n",
                "clean",
            ),
            (
                "Authentication-Results: mx.company.com; dmarc=pass (p=REJECT) header.from=bank.example\r\n",
                "clean",
            ),
            ("X-Spam-Score: garbage\r\n", "clean"),
            ("X-Spam-Score: NaN\r\n", "clean"),
        ];
        for (headers, want) in cases {
            assert_eq!(kind(&judged(headers)), want, "{headers}");
        }
    }

    #[test]
    fn the_worst_verdict_counts() {
        let j = judged(
            "X-Spam-Status: No, score=0.1 required=5.0\r\nX-Spam-Status: No, score=4.0 required=5.0\r\n",
        );
        assert!(matches!(j, Judgement::Review(r) if r.contains("4")));
        let j = judged("X-Rspamd-Action: no action\r\nX-Spam-Flag: YES\r\n");
        assert!(matches!(j, Judgement::Spam(_)));
    }

    #[test]
    fn only_the_topmost_authentication_results_counts() {
        let j = judged(
            "Authentication-Results: mx.company.com; dmarc=pass header.from=bank.example\r\nAuthentication-Results: relay.example; dmarc=fail (p=REJECT) header.from=bank.example\r\n",
        );
        assert_eq!(j, Judgement::Clean);
    }

    #[test]
    fn thresholds_and_switches_are_the_teams() {
        let strict = SpamRules {
            review_score: 1.0,
            spam_score: 4.0,
            ..SpamRules::default()
        };
        assert_eq!(
            kind(&judged_with(
                "X-Spam-Status: No, score=4.2 required=5.0\r\n",
                &strict
            )),
            "spam"
        );
        assert_eq!(
            kind(&judged_with(
                "X-Spam-Status: No, score=1.5 required=5.0\r\n",
                &strict
            )),
            "review"
        );
        let off = SpamRules {
            headers: false,
            ..SpamRules::default()
        };
        assert_eq!(judged_with("X-Spam-Flag: YES\r\n", &off), Judgement::Clean);
        let no_dmarc = SpamRules {
            dmarc: false,
            ..SpamRules::default()
        };
        assert_eq!(
            judged_with(
                "Authentication-Results: mx; dmarc=fail (p=REJECT) header.from=b.example\r\n",
                &no_dmarc
            ),
            Judgement::Clean
        );
    }

    #[test]
    fn hostile_values_never_panic() {
        for v in [
            "",
            "-",
            "+",
            ".",
            "score=",
            "score=-",
            "[",
            "default:",
            "é",
            "Y",
            "Ye",
            "yes\u{301}",
        ] {
            let _ = judged(&format!(
                "X-Spam-Status: {v}\r\nX-Spamd-Result: {v}\r\nX-Proofpoint-Spam-Details: {v}\r\nX-Forefront-Antispam-Report: {v}\r\nAuthentication-Results: {v}\r\n"
            ));
        }
    }
}
