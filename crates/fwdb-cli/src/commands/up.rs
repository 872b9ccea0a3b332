//! `fwdb up`: the main job. Connects to the configured databases (with no
//! configuration at all, starts the local stack as its embedded default),
//! reports their health, applies pending migrations (production's safety
//! rules kept), and runs until SIGTERM or Ctrl-C, then stops cleanly.

use super::{exit, fail, load_options};
use crate::cli::{Format, GlobalArgs, UpArgs};
use crate::output::{print_json, print_table};
use fwdb_testkit::{Lifetime, Stack, StackOptions};
use std::process::ExitCode;
use std::time::Duration;

/// The database `fwdb up` creates on a local stack it starts.
const LOCAL_DATABASE: &str = "fashion_wallet";

pub async fn run(args: UpArgs, global: &GlobalArgs) -> ExitCode {
    let (config, stack) = if is_unconfigured(global) {
        match start_local_stack(&args).await {
            Ok(pair) => pair,
            Err(code) => return code,
        }
    } else {
        match fwdb::Config::load(load_options(global)) {
            Ok(c) => (c, None),
            Err(e) => return fail(&e),
        }
    };
    let report = fwdb::check_health(&config, config.postgres.connect_timeout).await;
    print_health(&report, global.format);
    let code = match super::migrate::up_all(&config, global.format == Format::Json).await {
        Ok(code) if code != ExitCode::SUCCESS => code,
        Err(e) => fail(&e),
        Ok(_) if args.once => exit(report.healthy),
        Ok(_) => wait_for_shutdown(global.format).await,
    };
    if let Some(stack) = stack {
        eprintln!("stopping the local stack");
        if let Err(e) = tokio::task::spawn_blocking(move || stack.stop()).await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            return fail(&e);
        }
    }
    code
}

/// No `--config`, no `fwdb.toml` here, no `FWDB__` variable: nothing to connect to but our own stack.
fn is_unconfigured(global: &GlobalArgs) -> bool {
    global.config.is_none()
        && !std::path::Path::new("fwdb.toml").exists()
        && !std::env::vars().any(|(k, _)| k.starts_with("FWDB__"))
}

async fn start_local_stack(args: &UpArgs) -> Result<(fwdb::Config, Option<Stack>), ExitCode> {
    eprintln!("no configuration found: starting the local stack in {}", args.stack_dir.display());
    let opts = StackOptions { dir: Some(args.stack_dir.clone()), lifetime: Lifetime::Attached, ..Default::default() };
    let stack = tokio::task::spawn_blocking(move || {
        let stack = Stack::start(opts)?;
        stack.ensure_database(LOCAL_DATABASE)?;
        Ok::<_, fwdb_testkit::TestkitError>(stack)
    })
    .await
    .map_err(|e| fail(&e))?
    .map_err(|e| fail(&e))?;
    let config = stack.info().config(LOCAL_DATABASE, LOCAL_DATABASE, &[]).map_err(|e| fail(&e))?;
    Ok((config, Some(stack)))
}

async fn wait_for_shutdown(format: Format) -> ExitCode {
    if format == Format::Text {
        println!("fwdb is up; SIGTERM or Ctrl-C stops it");
    }
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Give in-flight work a moment; later issues drain pools and the HTTP server here.
    tokio::time::sleep(Duration::from_millis(50)).await;
    ExitCode::SUCCESS
}

/// Prints a health report as a table (one line per server) or JSON.
pub fn print_health(report: &fwdb::HealthReport, format: Format) {
    if format == Format::Json {
        print_json(report);
        return;
    }
    let rows: Vec<Vec<String>> = report
        .servers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.healthy { "healthy".into() } else { "UNHEALTHY".into() },
                format!("{:.1} ms", s.response_ms),
                s.error.clone().or_else(|| s.detail.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["SERVER", "STATUS", "RESPONSE", "DETAIL"], &rows);
}
