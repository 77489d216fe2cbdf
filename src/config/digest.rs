//! `[[digest]]`: reports mailed on a schedule, checked into the digests' [`DigestSpec`]s.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Checker, SmtpConfig};
use crate::actions::digest::{DigestPeriod, DigestReport, DigestSpec, parse_schedule};
use crate::render::SenderData;
use crate::sequence::{self, Sender};

/// `[[digest]]` as the file gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDigest {
    name: Spanned<String>,
    schedule: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    reports: Option<Spanned<Vec<Spanned<String>>>>,
    period: Option<Spanned<String>>,
    waiting_after: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
}

/// The default `waiting_after`.
const WAITING_AFTER: &str = "7d";

pub(super) fn check_digests(
    ck: &mut Checker<'_>,
    raw: &[Spanned<RawDigest>],
    senders: &[Sender],
    smtp: Option<&SmtpConfig>,
) -> Vec<DigestSpec> {
    let mut out: Vec<DigestSpec> = Vec::new();
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let key = |k: &str| format!("digest[{i}].{k}");
        if smtp.is_none() {
            ck.at(
                spanned.span(),
                &format!("digest[{i}]"),
                "a digest is sent through [smtp], which is not configured",
            );
        }
        let name = r.name.get_ref().trim().to_owned();
        if !sequence::file::valid_id(&name) {
            ck.at(
                r.name.span(),
                &key("name"),
                "must be lower-case letters, digits, '-' and '_'",
            );
        } else if out.iter().any(|d| d.name == name) {
            ck.at(
                r.name.span(),
                &key("name"),
                format!("digest '{name}' is defined twice"),
            );
        }
        let schedule = match parse_schedule(r.schedule.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                ck.at(r.schedule.span(), &key("schedule"), e);
                None
            }
        };
        let mut to = Vec::new();
        for a in r.to.get_ref() {
            if let Some(a) = ck.address(a, &key("to")) {
                to.push(a);
            }
        }
        if r.to.get_ref().is_empty() {
            ck.at(r.to.span(), &key("to"), "name at least one recipient");
        }
        let mut reports = Vec::new();
        match &r.reports {
            None => reports.push(DigestReport::Channels),
            Some(list) => {
                if list.get_ref().is_empty() {
                    ck.at(list.span(), &key("reports"), "name at least one report");
                }
                for rep in list.get_ref() {
                    match rep.get_ref().parse::<DigestReport>() {
                        Ok(x) if reports.contains(&x) => {
                            ck.at(
                                rep.span(),
                                &key("reports"),
                                format!("'{}' is named twice", x.as_str()),
                            );
                        }
                        Ok(x) => reports.push(x),
                        Err(e) => ck.at(rep.span(), &key("reports"), e),
                    }
                }
            }
        }
        let period = match &r.period {
            None => DigestPeriod::default(),
            Some(p) => p.get_ref().parse().unwrap_or_else(|e: String| {
                ck.at(p.span(), &key("period"), e);
                DigestPeriod::default()
            }),
        };
        let waiting_after = ck.duration(
            r.waiting_after.as_ref(),
            &key("waiting_after"),
            Duration::from_secs(7 * 24 * 3600),
        );
        let waiting_after_text = r
            .waiting_after
            .as_ref()
            .map_or(WAITING_AFTER, |w| w.get_ref().trim())
            .to_owned();
        let sender = match &r.from {
            Some(f) => {
                let found = senders.iter().find(|s| s.name == f.get_ref().trim());
                if found.is_none() {
                    ck.at(
                        f.span(),
                        &key("from"),
                        format!(
                            "there is no [[sender]] named '{}'; known: {}",
                            f.get_ref(),
                            senders
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                found
            }
            None => {
                let first = senders.first();
                if first.is_none() {
                    ck.at(
                        spanned.span(),
                        &key("from"),
                        "a digest needs a [[sender]] to send as",
                    );
                }
                first
            }
        };
        let (Some(schedule), Some(sender)) = (schedule, sender) else {
            continue;
        };
        out.push(DigestSpec {
            name,
            schedule,
            to,
            reports,
            period,
            waiting_after,
            waiting_after_text,
            sender: SenderData {
                name: sender.name.clone(),
                address: sender.address.clone(),
                display_name: sender.display_name.clone(),
            },
            envelope_from: smtp.and_then(|s| s.envelope_from.clone()),
        });
    }
    out
}
