//! `fwdb config show|check`.

use super::{exit, load};
use crate::cli::{ConfigCommand, Format, GlobalArgs};
use crate::output::{print_json, print_table};
use std::process::ExitCode;

pub async fn run(cmd: ConfigCommand, global: &GlobalArgs) -> ExitCode {
    let config = match load(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        ConfigCommand::Show => {
            let shown = config.show();
            if global.format == Format::Json {
                print_json(&shown);
            } else {
                let rows: Vec<Vec<String>> = shown.into_iter().map(|s| vec![s.key, s.value, s.origin]).collect();
                print_table(&["KEY", "VALUE", "ORIGIN"], &rows);
            }
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { connect: false } => {
            if global.format == Format::Json {
                print_json(&serde_json::json!({ "valid": true, "profile": config.profile }));
            } else {
                println!("configuration is valid (profile {})", config.profile);
            }
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { connect: true } => check_connections(&config, global.format).await,
    }
}

async fn check_connections(config: &fwdb::Config, format: Format) -> ExitCode {
    let report = fwdb::check_health(config, config.postgres.connect_timeout).await;
    super::up::print_health(&report, format);
    exit(report.healthy)
}
