//! `fwdb health`: every server's health, as a table or JSON; exit 0 when
//! every server is healthy, 1 when one is not, 2 when fwdb cannot even try.

use super::exit;
use crate::cli::{Format, HealthArgs};
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(args: HealthArgs, config: &fwdb::Config, format: Format) -> ExitCode {
    let timeout = args.timeout.map(Duration::from_millis).unwrap_or(config.server.check_timeout);
    let report = fwdb::check_health(config, timeout).await;
    super::up::print_health(&report, format);
    exit(report.healthy)
}
