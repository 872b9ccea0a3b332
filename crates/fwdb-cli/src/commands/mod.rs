//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod check;
pub mod check_queries;
pub mod config;
pub mod dev;
pub mod health;
pub mod metrics;
pub mod migrate;
pub mod roles;
pub mod up;

use crate::cli::{Cli, Command, Format, GlobalArgs};
use crate::output::{EXIT_ERROR, EXIT_FAILED};
use std::process::ExitCode;

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.format == Format::Json;
    match cli.command {
        Command::Config(cmd) => config::run(cmd, &cli.global).await,
        Command::Up(args) => up::run(args, &cli.global).await,
        Command::Dev(cmd) => {
            let outcome = tokio::task::spawn_blocking(move || dev::run(cmd, json)).await;
            match outcome {
                Ok(Ok(code)) => code,
                Ok(Err(e)) => fail(&e),
                Err(e) => fail(&e),
            }
        }
        Command::Backup(cmd) => match load(&cli.global) {
            Ok(config) => backup::run(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Wal(cmd) => match load(&cli.global) {
            Ok(config) => backup::run_wal(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Restore(args) => match load(&cli.global) {
            Ok(config) => backup::run_restore(args, &config, json, cli.global.config.as_deref())
                .await
                .unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Check(cmd) => match load(&cli.global) {
            Ok(config) => check::run(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Migrate(cmd) => match load(&cli.global) {
            Ok(config) => migrate::run(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Health(args) => match load(&cli.global) {
            Ok(config) => health::run(args, &config, cli.global.format).await,
            Err(code) => code,
        },
        Command::Metrics(args) => match load(&cli.global) {
            Ok(config) => metrics::run(args, &config, cli.global.format).await,
            Err(code) => code,
        },
        Command::Roles(cmd) => match load(&cli.global) {
            Ok(config) => roles::run(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
        Command::Audit(cmd) => match load(&cli.global) {
            Ok(config) => audit::run(cmd, &config, json).await.unwrap_or_else(|e| fail(&e)),
            Err(code) => code,
        },
    }
}

/// Loads the configuration, or prints why it cannot and gives the exit code.
pub fn load(global: &GlobalArgs) -> Result<fwdb::Config, ExitCode> {
    fwdb::Config::load(load_options(global)).map_err(|e| fail(&e))
}

pub fn load_options(global: &GlobalArgs) -> fwdb::LoadOptions {
    fwdb::LoadOptions { file: global.config.clone(), profile: global.profile, ..Default::default() }
}

/// Prints an error (with its causes) and gives the exit code for it.
pub fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_ERROR)
}

pub fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}
