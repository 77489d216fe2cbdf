//! Cron expressions as users write them in leadloop's files: send windows and digest
//! schedules read them alike.

use std::str::FromStr as _;

use chrono::Utc;

/// Parses a cron expression of five fields (minute hour day month weekday; seconds are 0) or
/// of the six or seven the `cron` crate reads (seconds first, year last). Weekdays must be
/// names (`Mon-Fri`): cron dialects number them differently (the `cron` crate counts from
/// Sunday = 1, classic cron from Sunday = 0), and a name cannot be misread.
///
/// # Errors
/// Why the expression is not usable, quoting it.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let e = expr.trim();
    let fields = e.split_whitespace().count();
    if !(5..=7).contains(&fields) {
        return Err(format!(
            "'{e}' has {fields} fields; write five (\"0 8 * * Mon\": minute hour day month weekday) or six with seconds first"
        ));
    }
    let weekday = e.split_whitespace().nth(if fields == 5 { 4 } else { 5 });
    if weekday.is_some_and(|w| w.contains(|c: char| c.is_ascii_digit())) {
        return Err(format!(
            "'{e}': write weekdays as names (Mon-Fri), not numbers, which cron dialects count differently"
        ));
    }
    let full = if fields == 5 {
        format!("0 {e}")
    } else {
        e.to_owned()
    };
    let s = cron::Schedule::from_str(&full)
        .map_err(|err| format!("'{e}' is not a cron expression: {err}"))?;
    if s.upcoming(Utc).next().is_none() {
        return Err(format!("'{e}' never matches"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::parse_cron;

    #[test]
    fn five_six_and_seven_fields_weekday_names_only() {
        assert!(parse_cron("0 8 * * Mon").is_ok());
        assert!(parse_cron("0 0 8 * * Mon").is_ok());
        assert!(parse_cron("0 0 8 * * Mon 2030").is_ok());
        assert!(parse_cron("* 9-16 * * Mon-Fri").is_ok());
        assert!(parse_cron("0 8 * * 1").unwrap_err().contains("names"));
        assert!(parse_cron("0 8 *").unwrap_err().contains("3 fields"));
        assert!(
            parse_cron("0 99 * * Mon")
                .unwrap_err()
                .contains("not a cron expression")
        );
        assert!(
            parse_cron("0 0 0 1 1 * 2001")
                .unwrap_err()
                .contains("never matches")
        );
    }
}
