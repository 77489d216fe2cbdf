//! State transitions and the migrations' partial indexes (`WHERE state IN ('pending', 'retry')`)
//! spell states as SQL literals: a bound parameter would keep SQLite from using those indexes.
//! The names are the enums' own, so a renamed or misspelt value would silently match no row;
//! this test reads every SQL text of the store and the migrations and parses each such literal
//! with the enum it belongs to.

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::{EnrollmentState, HandoffState, LeadStatus, OutboxState};

/// Every file whose text holds SQL that names a state.
const SOURCES: &[(&str, &str)] = &[
    ("store/mod.rs", include_str!("mod.rs")),
    ("store/batch.rs", include_str!("batch.rs")),
    ("store/enrollments.rs", include_str!("enrollments.rs")),
    ("store/outbox.rs", include_str!("outbox.rs")),
    ("store/sending.rs", include_str!("sending.rs")),
    ("store/sales.rs", include_str!("sales.rs")),
    ("store/suppressions.rs", include_str!("suppressions.rs")),
    ("store/report.rs", include_str!("report.rs")),
    ("store/data.rs", include_str!("data.rs")),
    ("store/running.rs", include_str!("running.rs")),
    (
        "sqlite/initial",
        include_str!("../../migrations/sqlite/20261127000001_initial.sql"),
    ),
    (
        "sqlite/outbox",
        include_str!("../../migrations/sqlite/20261127000002_outbox.sql"),
    ),
    (
        "sqlite/enrollments",
        include_str!("../../migrations/sqlite/20261127000003_enrollments.sql"),
    ),
    (
        "sqlite/sales_loop",
        include_str!("../../migrations/sqlite/20261206000001_sales_loop.sql"),
    ),
    (
        "postgres/sales_loop",
        include_str!("../../migrations/postgres/20261206000001_sales_loop.sql"),
    ),
    (
        "sqlite/reports",
        include_str!("../../migrations/sqlite/20261207000001_reports.sql"),
    ),
    (
        "postgres/reports",
        include_str!("../../migrations/postgres/20261207000001_reports.sql"),
    ),
    (
        "postgres/initial",
        include_str!("../../migrations/postgres/20261127000001_initial.sql"),
    ),
    (
        "postgres/outbox",
        include_str!("../../migrations/postgres/20261127000002_outbox.sql"),
    ),
    (
        "postgres/enrollments",
        include_str!("../../migrations/postgres/20261127000003_enrollments.sql"),
    ),
];

/// `state = 'x'`, `state <> 'x'`, `state IN ('x', 'y')`, `status DEFAULT 'x'`, with an
/// optional table prefix (`outbox.state`, `e.state`) and the column's type in between for
/// `DEFAULT`.
static NAMED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:(\w+)\.)?(state|status)\b(?:\s+TEXT\s+NOT\s+NULL)?\s*(?:=|<>|!=|\bIN\b|\bDEFAULT\b)\s*(\(\s*'[^']*'(?:\s*,\s*'[^']*')*\s*\)|'[^']*')",
    )
    .expect("static regex")
});

static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'([^']*)'").expect("static regex"));

/// Whether `name` is a value of the enum that `column` (with its table prefix, if any) holds.
fn known(file: &str, prefix: Option<&str>, column: &str, name: &str) -> bool {
    if column.eq_ignore_ascii_case("status") {
        return name.parse::<LeadStatus>().is_ok();
    }
    let outbox = prefix.is_some_and(|p| p.eq_ignore_ascii_case("outbox") || p == "o")
        || (prefix.is_none() && file.contains("outbox"));
    let enrollments = prefix.is_some_and(|p| p == "e") || file.contains("enrollments");
    let handoffs = prefix.is_some_and(|p| p == "h");
    let any = || {
        name.parse::<OutboxState>().is_ok()
            || name.parse::<EnrollmentState>().is_ok()
            || name.parse::<HandoffState>().is_ok()
    };
    match (outbox, enrollments, handoffs) {
        (true, false, false) => name.parse::<OutboxState>().is_ok(),
        (false, true, false) => name.parse::<EnrollmentState>().is_ok(),
        (false, false, true) => name.parse::<HandoffState>().is_ok(),
        // A file that speaks of several: the name must be a value of one of them.
        _ => any(),
    }
}

/// Every state or status literal in `text` that names no value, as `file: literal`.
fn unknown_names(file: &str, text: &str) -> (usize, Vec<String>) {
    let mut seen = 0;
    let mut bad = Vec::new();
    for c in NAMED.captures_iter(text) {
        let prefix = c.get(1).map(|m| m.as_str());
        let column = &c[2];
        for q in QUOTED.captures_iter(&c[3]) {
            seen += 1;
            if !known(file, prefix, column, &q[1]) {
                bad.push(format!("{file}: {column} '{}'", &q[1]));
            }
        }
    }
    (seen, bad)
}

#[test]
fn every_state_named_in_sql_is_one_the_code_knows() {
    let mut seen = 0;
    let mut bad = Vec::new();
    for (file, text) in SOURCES {
        let (n, b) = unknown_names(file, text);
        seen += n;
        bad.extend(b);
    }
    assert!(
        bad.is_empty(),
        "SQL names states the code does not know:\n{}",
        bad.join("\n")
    );
    // The store's queries name dozens of states; finding few means the pattern went blind.
    assert!(seen > 40, "only {seen} state literals found");
}

#[test]
fn a_misspelt_state_is_reported() {
    let (n, bad) = unknown_names(
        "store/outbox.rs",
        "UPDATE outbox SET state = 'sent' WHERE state IN ('sending', 'interupted') AND status <> 'vip'",
    );
    assert_eq!(n, 4);
    assert_eq!(
        bad,
        [
            "store/outbox.rs: state 'interupted'",
            "store/outbox.rs: status 'vip'"
        ]
    );
}
