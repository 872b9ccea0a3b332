//! Cron expressions of the backup schedule: checked when the configuration
//! loads, evaluated by the schedule.

/// Checks a cron expression (5 fields, or 6 with seconds first; UTC).
pub fn parse_cron(expr: &str) -> std::result::Result<(), String> {
    next_run(expr, chrono::Utc::now()).map(|_| ())
}

/// The next time `expr` fires after `after`.
pub fn next_run(
    expr: &str,
    after: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    use croner::parser::{CronParser, Seconds};
    // Seconds are optional so that tests (and drills) can schedule every few seconds.
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("`{expr}` is not a cron expression ({e}); e.g. \"0 2 * * *\""))?;
    cron.find_next_occurrence(&after, false).map_err(|e| format!("`{expr}` never fires ({e})"))
}
