//! The pure parts of the lead actions; what they do with the store is tested end to end in
//! `tests/it/sales.rs`.

use std::time::Duration;

use super::*;

#[test]
fn durations_are_spoken_in_their_largest_whole_unit() {
    assert_eq!(spoken(Duration::from_secs(7 * 86_400)), "7 days");
    assert_eq!(spoken(Duration::from_secs(86_400)), "1 day");
    assert_eq!(spoken(Duration::from_secs(36 * 3_600)), "36 hours");
    assert_eq!(spoken(Duration::from_secs(90 * 60)), "90 minutes");
    assert_eq!(spoken(Duration::from_secs(61)), "61 seconds");
}

#[test]
fn plus_tokens_are_read_by_their_tag() {
    let a = EmailAddress::parse("leads+handoff-abc123@company.com").unwrap();
    assert_eq!(token(Some(&a), HANDOFF_TAG), Some("abc123"));
    assert_eq!(token(Some(&a), REPLY_TAG), None);
    let b = EmailAddress::parse("leads+Handoff-XyZ@company.com").unwrap();
    assert!(token(Some(&b), HANDOFF_TAG).is_some());
    let empty = EmailAddress::parse("leads+handoff-@company.com").unwrap();
    assert_eq!(token(Some(&empty), HANDOFF_TAG), None);
    assert_eq!(token(None, HANDOFF_TAG), None);
}

fn actions(sequences: Vec<EnrollRule>) -> Actions {
    Actions::new(
        Settings::default(),
        Vec::new(),
        sequences,
        vec![EmailAddress::parse("sales@company.com").unwrap()],
    )
}

fn rule(name: &str, on_status: Vec<LeadStatus>) -> EnrollRule {
    EnrollRule {
        sequence: SequenceName::new(name),
        kinds: Vec::new(),
        channels: Vec::new(),
        forms: Vec::new(),
        min_score: None,
        reenter: false,
        exits: Vec::new(),
        exit_on_reply: true,
        on_status,
    }
}

fn verdict(kind: VerdictKind, target: Option<VerdictTarget>) -> Verdict {
    Verdict {
        kind,
        reason: None,
        comment: None,
        target,
    }
}

#[test]
fn a_customer_verdict_sets_the_status_and_enters_the_sequences_entered_on_it() {
    let a = actions(vec![
        rule("welcome", Vec::new()),
        rule("retention", vec![LeadStatus::Customer]),
    ]);
    let now = Utc::now();
    let changes = a
        .verdict_changes(
            &verdict(VerdictKind::Customer, None),
            "sales@company.com",
            "mail",
            now,
        )
        .unwrap();
    assert!(matches!(&changes[0], Change::Verdict { by, .. } if by == "sales@company.com"));
    assert_eq!(changes[1], Change::Status(LeadStatus::Customer));
    assert!(
        matches!(&changes[2], Change::Enroll { rule, .. } if rule.sequence.as_str() == "retention")
    );
    assert_eq!(changes.len(), 3);
}

#[test]
fn nurture_enters_a_known_sequence_again_and_explains_an_unknown_one() {
    let a = actions(vec![
        rule("welcome", Vec::new()),
        rule("webinar", Vec::new()),
    ]);
    let now = Utc::now();
    let seq = |n: &str| Some(VerdictTarget::Sequence(SequenceName::new(n)));
    let changes = a
        .verdict_changes(
            &verdict(VerdictKind::Nurture, seq("webinar")),
            "s",
            "mail",
            now,
        )
        .unwrap();
    assert!(matches!(&changes[1], Change::Enroll { rule, .. } if rule.reenter));
    let problem = a
        .verdict_changes(
            &verdict(VerdictKind::Nurture, seq("webinr")),
            "s",
            "mail",
            now,
        )
        .unwrap_err();
    assert!(
        problem.contains("\"webinr\"") && problem.contains("welcome, webinar"),
        "{problem}"
    );
}

#[test]
fn not_now_pauses_until_the_date_and_owner_reassigns() {
    let a = actions(Vec::new());
    let now = Utc::now();
    let day = now.date_naive() + chrono::Duration::days(30);
    let changes = a
        .verdict_changes(
            &verdict(VerdictKind::NotNow, Some(VerdictTarget::Until(day))),
            "s",
            "cli",
            now,
        )
        .unwrap();
    assert_eq!(
        changes[1],
        Change::NotNow {
            until: start_of(day)
        }
    );
    let bob = EmailAddress::parse("bob@company.com").unwrap();
    let changes = a
        .verdict_changes(
            &verdict(VerdictKind::Owner, Some(VerdictTarget::Owner(bob.clone()))),
            "s",
            "cli",
            now,
        )
        .unwrap();
    assert!(matches!(&changes[1], Change::Owner { owner, .. } if *owner == bob));
}
