//! Feeds arbitrary bytes to the classifier and to `form learn`: the classifier must decide,
//! never panic, and never report the internal error its unwind guard would turn a panic into;
//! learning must answer or refuse.
#![no_main]

use std::sync::LazyLock;

use leadloop::classify::{ChannelRule, FormProfile, INTERNAL_ERROR, Rules, classify, learn_form};
use leadloop::domain::EmailAddress;
use libfuzzer_sys::fuzz_target;

/// Rules with own addresses, Sales, a channel and a form profile, so every path is reachable.
static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let addr = |s: &str| EmailAddress::parse(s).expect("static address");
    Rules {
        own_addresses: vec![addr("leads@company.com")],
        own_domains: vec!["company.com".into()],
        sales: vec![addr("sales@company.com")],
        channels: vec![ChannelRule {
            name: "webinar".into(),
            plus_tags: vec!["webinar".into()],
            utm_sources: vec!["linkedin".into()],
            ..ChannelRule::default()
        }],
        forms: vec![FormProfile {
            name: "partner-portal".into(),
            from: vec!["partners.example.net".into()],
            body_contains: vec!["Lead captured".into()],
            email_fields: vec!["Contact email".into()],
            ..FormProfile::default()
        }],
        ..Rules::default()
    }
});

fuzz_target!(|data: &[u8]| {
    let c = classify(data, &RULES);
    // The reason may quote the message, so only the guard's exact reason means a panic.
    assert_ne!(
        c.reason.as_deref(),
        Some(INTERNAL_ERROR),
        "the classifier panicked"
    );
    assert!(!c.evidence.is_empty() || c.reason.is_some());
    // `form learn` reads a file a user hands it: it must refuse, never panic.
    let _ = learn_form(data, &RULES, None);
});
