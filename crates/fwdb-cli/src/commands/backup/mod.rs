//! `fwdb backup create|list|verify|prune|export|status|metrics|schedule|keygen`;
//! `fwdb wal` in wal.rs, `fwdb restore` in restore.rs.

mod args;
mod progress;
mod restore;
mod wal;

pub use args::{BackupCommand, CreateArgs, KindArg, PitrArgs, ProgressMode, RestoreArgs, RestoreWhat, WalCommand};
pub use restore::run_restore;
pub use wal::run_wal;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use fwdb::{BackupKind, BackupManifest, Backups};
use progress::Reporter;

use crate::output::{print_json, print_table, EXIT_FAILED};

/// Backups with progress reporting as `mode` asks; call [`Reporter::finish`] after a success.
fn open(config: &fwdb::Config, mode: ProgressMode) -> Result<(Backups, Reporter), fwdb::Error> {
    let b = Backups::open(config)?;
    let reporter = Reporter::new(mode);
    let b = match &reporter.0 {
        Some(r) => {
            let r = r.clone();
            b.with_progress(Arc::new(move |name: &str, bytes: u64| r.update(name, bytes)))
        }
        None => b,
    };
    Ok((b, reporter))
}

fn human(bytes: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn restores_to(m: &BackupManifest) -> String {
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    match m.kind {
        BackupKind::Full => format!("any time from {} on (with archived WAL)", at(m.finished_at)),
        BackupKind::Diff | BackupKind::Incr => format!(
            "any time from {} on (with archived WAL and {})",
            at(m.finished_at),
            m.reference.as_deref().unwrap_or("its reference")
        ),
        BackupKind::Logical | BackupKind::Mongo => {
            format!("databases {} as of {}", m.databases.join(", "), at(m.started_at))
        }
    }
}

fn humantime_short(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Runs a backup command.
pub async fn run(cmd: BackupCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    match cmd {
        BackupCommand::Keygen { out } => keygen(&out, json),
        BackupCommand::Create(args) => create(args, config, json).await,
        BackupCommand::Export { id, dir, archive, progress } => export(config, &id, dir, archive, progress, json).await,
        BackupCommand::Status => status(config, json).await,
        BackupCommand::Metrics => {
            let b = Backups::open(config)?;
            print!("{}", fwdb::backup_catalog_text(&b, chrono::Utc::now()).await?);
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Schedule => schedule(config).await,
        BackupCommand::List => list(config, json).await,
        BackupCommand::Verify { id, quick, drill: _, run_as, progress } => {
            verify(config, &id, quick, run_as, progress, json).await
        }
        BackupCommand::Prune { dry_run } => prune(config, dry_run, json).await,
    }
}

fn keygen(out: &Path, json: bool) -> Result<ExitCode, fwdb::Error> {
    let public = fwdb::write_backup_key(out)?;
    if json {
        print_json(&serde_json::json!({ "identity_file": out, "recipient": public }));
    } else {
        println!("{public}");
        eprintln!("identity written to {} (keep it off the database hosts; restores need it)", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(args: CreateArgs, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let (b, progress) = open(config, args.progress)?;
    let kind = match args.kind {
        KindArg::Incremental => return incremental_step(&b, config, json).await,
        KindArg::Full => BackupKind::Full,
        KindArg::Diff => BackupKind::Diff,
        KindArg::Incr => BackupKind::Incr,
        KindArg::Logical => BackupKind::Logical,
        KindArg::Mongo => BackupKind::Mongo,
    };
    let started = std::time::Instant::now();
    let m = if kind == BackupKind::Logical && !args.databases.is_empty() {
        b.create_logical(Some(args.databases)).await?
    } else {
        b.create(kind).await?
    };
    let secs = started.elapsed().as_secs_f64();
    progress.finish();
    if json {
        print_json(&m);
        return Ok(ExitCode::SUCCESS);
    }
    let against = m.reference.as_deref().map(|r| format!(" against {r}")).unwrap_or_default();
    let files = if m.files.is_empty() {
        String::new()
    } else {
        let stored = m.files.iter().filter(|f| f.backup == m.id).count();
        format!(", {stored} of {} files stored", m.files.len())
    };
    println!(
        "{} backup {}{against}: {} plain, {} stored{files}, {:.1} s ({}/s) in {}",
        m.kind,
        m.id,
        human(m.raw_size()),
        human(m.stored_size()),
        secs,
        human((m.raw_size() as f64 / secs.max(0.001)) as u64),
        b.storage_url()
    );
    Ok(ExitCode::SUCCESS)
}

/// `--kind incremental`: the scheduled step, as backup.schedule.incremental_type says.
async fn incremental_step(b: &Backups, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let detail = b.run_job("incremental").await?;
    let wal_only = config.backup.schedule.incremental_type == fwdb::IncrementalType::Wal;
    match (json, wal_only) {
        (true, true) => print_json(&serde_json::json!({ "kind": "incremental", "wal": detail })),
        (true, false) => print_json(&serde_json::json!({ "kind": "incremental", "id": detail })),
        (false, true) => println!("incremental: WAL up to {detail} is archived in {}", b.storage_url()),
        (false, false) => println!("incremental: backup {detail} in {}", b.storage_url()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    config: &fwdb::Config,
    id: &str,
    dir: Option<PathBuf>,
    archive: Option<PathBuf>,
    progress: ProgressMode,
    json: bool,
) -> Result<ExitCode, fwdb::Error> {
    let (b, progress) = open(config, progress)?;
    let files = match (dir, archive) {
        (_, Some(file)) => {
            b.export_mongo_archive(id, &file).await?;
            vec![file]
        }
        (Some(dir), None) => b.export(id, &dir).await?,
        (None, None) => {
            eprintln!("error: say where: --dir DIR or --archive FILE");
            return Ok(ExitCode::from(crate::output::EXIT_ERROR));
        }
    };
    progress.finish();
    if json {
        print_json(&files);
    } else {
        for f in &files {
            println!("{}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let st = Backups::open(config)?.status().await?;
    if json {
        print_json(&st);
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = st
        .iter()
        .map(|s| {
            vec![
                s.job.clone(),
                s.last_success.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or("never".into()),
                s.last_success.map(|t| humantime_short((now - t).to_std().unwrap_or_default())).unwrap_or("-".into()),
                s.last_detail.clone().unwrap_or_default(),
                s.last_error.clone().map(|e| e.lines().next().unwrap_or("").to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["JOB", "LAST SUCCESS", "AGE", "WHAT", "LAST ERROR"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C.
pub(super) async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn schedule(config: &fwdb::Config) -> Result<ExitCode, fwdb::Error> {
    let b = Backups::open(config)?;
    let s = &config.backup.schedule;
    eprintln!(
        "backup schedule: full \"{}\", incremental ({:?}) \"{}\" (UTC), to {}",
        s.full,
        s.incremental_type,
        s.incremental,
        b.storage_url()
    );
    b.run_schedule(stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn list(config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let mut all = Backups::open(config)?.list().await?;
    if json {
        // File lists are for the next backup and restores, not for reading.
        for m in &mut all {
            m.files.clear();
        }
        print_json(&all);
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|m| {
            let age = (now - m.finished_at).to_std().unwrap_or_default();
            vec![m.id.clone(), m.kind.to_string(), humantime_short(age), human(m.stored_size()), restores_to(m)]
        })
        .collect();
    print_table(&["ID", "KIND", "AGE", "SIZE", "RESTORES TO"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn verify(
    config: &fwdb::Config,
    id: &str,
    quick: bool,
    run_as: Option<String>,
    progress: ProgressMode,
    json: bool,
) -> Result<ExitCode, fwdb::Error> {
    let (b, progress) = open(config, progress)?;
    let b = b.with_run_as(run_as);
    let depth = if quick { fwdb::VerifyDepth::Quick } else { fwdb::VerifyDepth::Full };
    match b.verify_with(id, depth).await {
        Ok(r) => {
            progress.finish();
            if json {
                print_json(
                    &serde_json::json!({ "id": r.id, "ok": true, "checks": r.checks, "pg_verifybackup": r.pg_verifybackup }),
                );
            } else {
                for c in &r.checks {
                    println!("ok  {c}");
                }
                println!("backup {} is good", r.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == fwdb::ErrorKind::Validation => {
            if json {
                print_json(&serde_json::json!({ "id": id, "ok": false, "error": e.to_string() }));
            }
            eprintln!("error: backup {id} failed verification: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(e) => Err(e),
    }
}

async fn prune(config: &fwdb::Config, dry_run: bool, json: bool) -> Result<ExitCode, fwdb::Error> {
    let r = Backups::open(config)?.prune(dry_run, chrono::Utc::now()).await?;
    if json {
        print_json(&r);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for i in &r.deleted {
        println!("{verb}  {}  ({})", i.what, i.reason);
    }
    for i in &r.kept {
        println!("keep  {}  ({})", i.what, i.reason);
    }
    Ok(ExitCode::SUCCESS)
}
