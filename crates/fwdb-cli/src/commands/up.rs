//! `fwdb up`: the main job. Connects to the configured databases (with no
//! configuration at all, starts the local stack as its embedded default),
//! reports their health, applies pending migrations (production's safety
//! rules kept), then serves HTTP (`/healthz`, `/readyz`, `/metrics`, the
//! status page `/`, see `crate::serve`) until SIGTERM or Ctrl-C, when it
//! stops accepting, lets in-flight requests finish (`server.drain_timeout`),
//! closes its pools and stops the stack it started.

use super::{exit, fail, load_options};
use crate::cli::{Format, GlobalArgs, UpArgs};
use crate::output::{print_json, print_table};
use fwdb_testkit::{Lifetime, Stack, StackOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The database `fwdb up` creates on a local stack it starts.
const LOCAL_DATABASE: &str = "fashion_wallet";

pub async fn run(args: UpArgs, global: &GlobalArgs) -> ExitCode {
    let local = is_unconfigured(global);
    let (mut config, stack) = if local {
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
    if let Some(l) = &args.listen {
        config.server.listen = l.clone();
    }
    let report = fwdb::check_health(&config, config.postgres.connect_timeout).await;
    print_health(&report, global.format);
    let code = match super::migrate::up_all(&config, global.format == Format::Json).await {
        Ok(code) if code != ExitCode::SUCCESS => code,
        Err(e) => fail(&e),
        Ok(_) if args.once => exit(report.healthy),
        Ok(_) => serve_until_shutdown(&config, local && args.listen.is_none(), global.format).await,
    };
    if let Some(stack) = stack {
        eprintln!("stopping the local stack");
        if let Err(e) = tokio::task::spawn_blocking(move || stack.stop())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
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

/// Connects the pools, binds `server.listen` and serves until SIGTERM or Ctrl-C, then drains.
/// `fallback_port`: the address is only the default (local stack), so a taken port is replaced by a free one.
async fn serve_until_shutdown(config: &fwdb::Config, fallback_port: bool, format: Format) -> ExitCode {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let cluster = match fwdb::PgCluster::connect(&config.postgres).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mongo = match fwdb::mongo_client(&config.mongo).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let queries = std::sync::Arc::new(fwdb::QueryMetrics::new(config.server.slow_query_threshold));
    cluster.add_query_observer(queries.clone());
    let listener = match tokio::net::TcpListener::bind(&config.server.listen).await {
        Ok(l) => l,
        Err(e) if fallback_port && e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!("warning: {} is taken; serving on a free port instead", config.server.listen);
            match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => return fail(&e),
            }
        }
        Err(e) => return fail(&format!("cannot listen on {} (server.listen): {e}", config.server.listen)),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let (backups, catalog) = open_backups(config);
    let runs = std::sync::Arc::new(fwdb::BackupRuns::default());
    let collector = fwdb::MetricsCollector::new(config.clone(), cluster.clone(), mongo, Some(queries))
        .with_backups(Some(runs.clone()), catalog);
    let state = crate::serve::AppState::new(collector);
    let sampler = crate::serve::spawn_sampler(state.clone(), Duration::from_secs(5));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = crate::serve::router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    if format == Format::Text {
        println!("fwdb is up on http://{addr}; SIGTERM or Ctrl-C stops it");
    } else {
        println!("{}", serde_json::json!({ "up": true, "listen": addr.to_string() }));
    }
    let (schedule_stop, schedule) = start_backup_schedule(config, backups, runs);
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = schedule_stop.send(());
    if let Some(job) = schedule {
        // A backup in progress is not cut: the schedule stops after it.
        let _ = job.await;
    }
    eprintln!("stopping: draining HTTP requests");
    state.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.abort();
    let _ = stop_tx.send(());
    let drained = tokio::time::timeout(config.server.drain_timeout, server).await;
    cluster.close();
    match drained {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => fail(&e),
        Ok(Err(e)) => fail(&e),
        Err(_) => {
            eprintln!(
                "warning: requests still running after {:?} (server.drain_timeout) were cut",
                config.server.drain_timeout
            );
            ExitCode::SUCCESS
        }
    }
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

/// The configured backup storage, and its catalog for `/metrics` (read once now,
/// so the first scrape finds it). None when `backup.storage` is not set.
fn open_backups(config: &fwdb::Config) -> (Option<Arc<fwdb::Backups>>, Option<fwdb::BackupCatalog>) {
    if config.backup.storage.is_empty() {
        return (None, None);
    }
    match fwdb::Backups::open(config) {
        Ok(b) => {
            let b = Arc::new(b);
            let catalog = fwdb::BackupCatalog::of(b.clone());
            catalog.refresh();
            (Some(b), Some(catalog))
        }
        Err(e) => {
            eprintln!("warning: backups unavailable (no backup metrics, no schedule): {e}");
            (None, None)
        }
    }
}

/// 13.1's schedule (full daily, incremental every 6 h; logical and MongoDB dumps
/// when configured) inside `fwdb up`, when `backup.schedule.enabled`; each run is
/// told to `runs` for `/metrics`. It stops when the returned sender fires.
fn start_backup_schedule(
    config: &fwdb::Config,
    backups: Option<Arc<fwdb::Backups>>,
    runs: Arc<fwdb::BackupRuns>,
) -> (tokio::sync::oneshot::Sender<()>, Option<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    if !config.backup.schedule.enabled {
        return (tx, None);
    }
    let Some(backups) = backups else {
        eprintln!("warning: backup schedule not started: backup.storage is not set or cannot be opened");
        return (tx, None);
    };
    let jobs: Vec<String> =
        config.backup.schedule.jobs().iter().map(|(job, cron)| format!("{job} \"{cron}\"")).collect();
    eprintln!("backup schedule (UTC): {}", jobs.join(", "));
    let job = tokio::spawn(async move {
        if let Err(e) = backups
            .run_schedule_observed(
                async move {
                    let _ = rx.await;
                },
                &runs,
            )
            .await
        {
            tracing::error!(error = %e, "the backup schedule stopped");
        }
    });
    (tx, Some(job))
}
