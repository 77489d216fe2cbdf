//! Reports that are neither bounces nor people: read receipts and abuse reports.

use crate::classify::decision::Decision;
use crate::classify::input::Input;
use crate::classify::parse;

pub fn decide(m: &Input<'_>, ev: &mut Vec<String>) -> Option<Decision> {
    let (ct, report) = parse::root(m.msg).and_then(parse::content_type)?;
    let report = report?;
    if ct != "multipart/report"
        || (report != "disposition-notification" && report != "feedback-report")
    {
        return None;
    }
    ev.push(format!("multipart/report; report-type={report}"));
    Some(Decision::ignored(if report == "feedback-report" {
        "abuse report (feedback-report)"
    } else {
        "read receipt (disposition-notification)"
    }))
}
