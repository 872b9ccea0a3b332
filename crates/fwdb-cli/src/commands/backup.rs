//! `fwdb backup create|list|verify|prune|keygen`, `fwdb wal push|fetch`,
//! `fwdb restore [--to-time|--to-lsn|--latest]`, `fwdb restore logical|mongo`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use fwdb::{BackupKind, BackupManifest, Backups, PitrOptions, RecoveryTarget};

use crate::output::{print_json, print_table, EXIT_FAILED};

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Take a backup: full (pg_basebackup + archived WAL), logical (pg_dump) or mongo
    Create(CreateArgs),
    /// Complete backups (those with a manifest): age, size, kind, what each restores to
    List,
    /// Check every object (SHA-256, decryption), then restore it into scratch (full: pg_verifybackup on it first) and compare counts with the manifest
    Verify {
        /// A backup id from `fwdb backup list`
        id: String,
        /// Checksums, decryption and decompression only: no restore
        #[arg(long)]
        quick: bool,
        /// Accepted for compatibility: the restore into scratch is the default now
        #[arg(long, hide = true, conflicts_with = "quick")]
        drill: bool,
        /// OS user to run the scratch server [default: postgres when root]
        #[arg(long, value_name = "USER")]
        run_as: Option<String>,
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "FWDB_PROGRESS")]
        progress: ProgressMode,
    },
    /// Delete what the retention policy (backup.retention) no longer keeps
    Prune {
        /// Show what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Decrypt every object of a backup into a folder (a MongoDB dump becomes one mongorestore reads)
    Export {
        /// A backup id from `fwdb backup list`
        id: String,
        /// A new folder
        #[arg(long, value_name = "DIR", required_unless_present = "archive", conflicts_with = "archive")]
        dir: Option<PathBuf>,
        /// MongoDB dumps: one mongodump archive file instead (`mongorestore --archive=FILE`)
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "FWDB_PROGRESS")]
        progress: ProgressMode,
    },
    /// Last success (time, age) of each job: full, incremental, logical, mongo, verify drill
    Status,
    /// The same as Prometheus metrics (fwdb_backup_last_success_age_seconds{job}, ...)
    Metrics,
    /// Run the schedule of backup.schedule (full daily 02:00 UTC, incremental every 6 h) until SIGTERM/Ctrl-C
    Schedule,
    /// Create an age key pair: the identity file (secret, for restores) and its public key (for backups)
    Keygen {
        /// Where to write the identity file (mode 0600); it must not exist
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Full,
    /// The WAL up to now: closes the current segment and waits until it is archived
    Incremental,
    Logical,
    Mongo,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Databases of a logical backup [default: postgres.database]
    #[arg(long = "database", value_name = "NAME")]
    pub databases: Vec<String>,
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "FWDB_PROGRESS")]
    pub progress: ProgressMode,
}

/// How streaming progress is shown, on stderr (stdout stays the result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar with bytes per second when stderr is a terminal, else nothing (quiet in CI)
    Auto,
    /// One JSON object per line: `progress` at most once a second per object, `done` per object
    Json,
    /// Nothing
    None,
}

#[derive(Debug, clap::Subcommand)]
pub enum WalCommand {
    /// archive_command: `fwdb wal push %p`
    Push {
        /// The WAL file (%p)
        path: PathBuf,
    },
    /// restore_command: `fwdb wal fetch %f %p`; exit 1 when the file was never archived
    Fetch {
        /// The WAL file name (%f)
        name: String,
        /// Where to put it (%p)
        dest: PathBuf,
    },
    /// Archived WAL files
    List,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub what: Option<RestoreWhat>,
    #[command(flatten)]
    pub pitr: PitrArgs,
    #[arg(long, value_enum, global = true, default_value_t = ProgressMode::Auto, env = "FWDB_PROGRESS")]
    pub progress: ProgressMode,
}

#[derive(Debug, clap::Args)]
pub struct PitrArgs {
    /// Recover to this time (RFC 3339, e.g. 2026-11-25T02:00:00Z)
    #[arg(long, value_name = "TIME", conflicts_with_all = ["to_lsn", "latest"])]
    pub to_time: Option<String>,
    /// Recover to this WAL position (e.g. 0/3000060)
    #[arg(long, value_name = "LSN", conflicts_with = "latest")]
    pub to_lsn: Option<String>,
    /// Recover everything archived
    #[arg(long)]
    pub latest: bool,
    /// A new folder for the restored server's data
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// The full backup to start from [default: the newest ending before the target]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Port of the restored server [default: a free one]
    #[arg(long)]
    pub port: Option<u16>,
    /// OS user to own the folder and run the server (PostgreSQL refuses root) [default: postgres when root]
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Role that checks the restored server over its unix socket
    #[arg(long, value_name = "ROLE", default_value = "postgres")]
    pub check_user: String,
    /// Lay out the folder only; do not start the server
    #[arg(long)]
    pub no_start: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum RestoreWhat {
    /// Restore a logical backup into a new database
    Logical(NamedRestore),
    /// Restore a MongoDB dump into a new database
    Mongo(NamedRestore),
}

#[derive(Debug, clap::Args)]
pub struct NamedRestore {
    /// A backup id from `fwdb backup list`
    pub id: String,
    /// The new database to restore into (it must not exist)
    #[arg(long, value_name = "NAME")]
    pub database: String,
    /// Which database of the backup [default: its only one]
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
}

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
    match m.kind {
        BackupKind::Full => {
            format!("any time from {} on (with archived WAL)", m.finished_at.format("%Y-%m-%d %H:%M:%SZ"))
        }
        BackupKind::Logical => {
            format!("databases {} as of {}", m.databases.join(", "), m.started_at.format("%Y-%m-%d %H:%M:%SZ"))
        }
        BackupKind::Mongo => {
            format!("databases {} as of {}", m.databases.join(", "), m.started_at.format("%Y-%m-%d %H:%M:%SZ"))
        }
    }
}

/// Runs a backup command. The `--config` file is not needed here any more: scratch
/// restores of `verify` copy their WAL from the archive themselves.
pub async fn run_with_file(
    cmd: BackupCommand,
    config: &fwdb::Config,
    json: bool,
    _config_file: Option<&Path>,
) -> Result<ExitCode, fwdb::Error> {
    match cmd {
        BackupCommand::Keygen { out } => {
            let public = fwdb::write_backup_key(&out)?;
            if json {
                print_json(&serde_json::json!({ "identity_file": out, "recipient": public }));
            } else {
                println!("{public}");
                eprintln!("identity written to {} (keep it off the database hosts; restores need it)", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Create(args) => {
            let (b, progress) = open(config, args.progress)?;
            if args.kind == KindArg::Incremental {
                let seg = b.run_job("incremental").await?;
                if json {
                    print_json(&serde_json::json!({ "kind": "incremental", "wal": seg }));
                } else {
                    println!("incremental: WAL up to {seg} is archived in {}", b.storage_url());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let kind = match args.kind {
                KindArg::Incremental => unreachable!("handled above"),
                KindArg::Full => BackupKind::Full,
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
            } else {
                println!(
                    "{} backup {}: {} plain, {} stored, {} objects, {:.1} s ({}/s) in {}",
                    m.kind,
                    m.id,
                    human(m.raw_size()),
                    human(m.stored_size()),
                    m.objects.len(),
                    secs,
                    human((m.raw_size() as f64 / secs.max(0.001)) as u64),
                    b.storage_url()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Export { id, dir, archive, progress } => {
            let (b, progress) = open(config, progress)?;
            let files = match (dir, archive) {
                (_, Some(file)) => {
                    b.export_mongo_archive(&id, &file).await?;
                    vec![file]
                }
                (Some(dir), None) => b.export(&id, &dir).await?,
                (None, None) => unreachable!("clap requires one"),
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
        BackupCommand::Status => {
            let b = Backups::open(config)?;
            let st = b.status().await?;
            if json {
                print_json(&st);
            } else {
                let now = chrono::Utc::now();
                let rows: Vec<Vec<String>> = st
                    .iter()
                    .map(|s| {
                        vec![
                            s.job.clone(),
                            s.last_success
                                .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
                                .unwrap_or("never".into()),
                            s.last_success
                                .map(|t| humantime_short((now - t).to_std().unwrap_or_default()))
                                .unwrap_or("-".into()),
                            s.last_detail.clone().unwrap_or_default(),
                            s.last_error
                                .clone()
                                .map(|e| e.lines().next().unwrap_or("").to_string())
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                print_table(&["JOB", "LAST SUCCESS", "AGE", "WHAT", "LAST ERROR"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Metrics => {
            let b = Backups::open(config)?;
            print!("{}", b.metrics(chrono::Utc::now()).await?);
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Schedule => {
            let b = Backups::open(config)?;
            let stop = async {
                #[cfg(unix)]
                {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                    }
                }
            };
            eprintln!(
                "backup schedule: full \"{}\", incremental \"{}\" (UTC), to {}",
                config.backup.schedule.full,
                config.backup.schedule.incremental,
                b.storage_url()
            );
            b.run_schedule(stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List => {
            let b = Backups::open(config)?;
            let all = b.list().await?;
            if json {
                print_json(&all);
            } else {
                let now = chrono::Utc::now();
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|m| {
                        let age = (now - m.finished_at).to_std().unwrap_or_default();
                        vec![
                            m.id.clone(),
                            m.kind.to_string(),
                            humantime_short(age),
                            human(m.stored_size()),
                            restores_to(m),
                        ]
                    })
                    .collect();
                print_table(&["ID", "KIND", "AGE", "SIZE", "RESTORES TO"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify { id, quick, drill: _, run_as, progress } => {
            let (b, progress) = open(config, progress)?;
            let b = b.with_run_as(run_as);
            let depth = if quick { fwdb::VerifyDepth::Quick } else { fwdb::VerifyDepth::Full };
            let outcome = b.verify_with(&id, depth).await;
            if outcome.is_ok() {
                progress.finish();
            }
            match outcome {
                Ok(r) => {
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
        BackupCommand::Prune { dry_run } => {
            let b = Backups::open(config)?;
            let r = b.prune(dry_run, chrono::Utc::now()).await?;
            if json {
                print_json(&r);
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                for i in &r.deleted {
                    println!("{verb}  {}  ({})", i.what, i.reason);
                }
                for i in &r.kept {
                    println!("keep  {}  ({})", i.what, i.reason);
                }
            }
            Ok(ExitCode::SUCCESS)
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

pub async fn run_wal(cmd: WalCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let b = Backups::open(config)?;
    match cmd {
        WalCommand::Push { path } => {
            b.wal_push(&path).await?;
            Ok(ExitCode::SUCCESS)
        }
        WalCommand::Fetch { name, dest } => match b.wal_fetch(&name, &dest).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.is_not_found() => {
                eprintln!("{e}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
            Err(e) => Err(e),
        },
        WalCommand::List => {
            let all = b.wal_list().await?;
            if json {
                print_json(&all.iter().map(|(n, s)| serde_json::json!({"name": n, "size": s})).collect::<Vec<_>>());
            } else {
                for (n, s) in all {
                    println!("{n}  {}", human(s));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_restore(
    args: RestoreArgs,
    config: &fwdb::Config,
    json: bool,
    config_file: Option<&Path>,
) -> Result<ExitCode, fwdb::Error> {
    let (b, progress) = open(config, args.progress)?;
    let b = b.with_run_as(args.pitr.run_as.clone());
    let done = run_restore_with(args, &b, json, config_file).await;
    if matches!(done, Ok(ExitCode::SUCCESS)) {
        progress.finish();
    }
    done
}

async fn run_restore_with(
    args: RestoreArgs,
    b: &Backups,
    json: bool,
    config_file: Option<&Path>,
) -> Result<ExitCode, fwdb::Error> {
    match args.what {
        Some(RestoreWhat::Logical(r)) => {
            let counts = b.restore_logical(&r.id, &r.database, r.from.as_deref()).await?;
            if json {
                print_json(&serde_json::json!({ "id": r.id, "database": r.database, "counts": counts }));
            } else {
                println!(
                    "restored {} into database {}: {} tables, {} rows, counts match the manifest",
                    r.id,
                    r.database,
                    counts.len(),
                    counts.values().sum::<u64>()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(RestoreWhat::Mongo(r)) => {
            let counts = b.restore_mongo(&r.id, &r.database, r.from.as_deref()).await?;
            if json {
                print_json(&serde_json::json!({ "id": r.id, "database": r.database, "counts": counts }));
            } else {
                println!(
                    "restored {} into MongoDB database {}: {} collections, {} documents, counts match the manifest",
                    r.id,
                    r.database,
                    counts.len(),
                    counts.values().sum::<u64>()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let p = args.pitr;
            let target = if let Some(t) = &p.to_time {
                match chrono::DateTime::parse_from_rfc3339(t) {
                    Ok(t) => RecoveryTarget::Time(t.with_timezone(&chrono::Utc)),
                    Err(e) => {
                        eprintln!("error: --to-time `{t}` is not an RFC 3339 time (e.g. 2026-11-25T02:00:00Z): {e}");
                        return Ok(ExitCode::from(crate::output::EXIT_ERROR));
                    }
                }
            } else if let Some(l) = &p.to_lsn {
                RecoveryTarget::Lsn(l.clone())
            } else if p.latest {
                RecoveryTarget::Latest
            } else {
                eprintln!("error: say what to restore to: --to-time T, --to-lsn L or --latest (or `restore logical|mongo ID`)");
                return Ok(ExitCode::from(crate::output::EXIT_ERROR));
            };
            let Some(target_dir) = p.target_dir else {
                eprintln!("error: --target-dir DIR is required: a new folder for the restored server");
                return Ok(ExitCode::from(crate::output::EXIT_ERROR));
            };
            let rc = restore_command(config_file);
            let run_as = p.run_as.or_else(default_run_as);
            let opts = PitrOptions {
                target,
                target_dir,
                backup_id: p.backup,
                restore_command: rc,
                port: p.port,
                run_as,
                check_user: p.check_user,
                start: !p.no_start,
                prefetch_wal: None,
                verify_manifest: false,
            };
            let r = b.restore_pitr(&opts).await?;
            if json {
                print_json(&r);
            } else {
                println!(
                    "restored from {} into {}; {} on port {} (socket {}), timeline {}, databases: {}",
                    r.backup_id,
                    r.target_dir.display(),
                    if r.started { "running and promoted" } else { "not started" },
                    r.port,
                    r.socket_dir.display(),
                    r.timeline.map(|t| t.to_string()).unwrap_or("-".into()),
                    r.databases.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `restore_command` for a restored server: this very binary, with the same configuration file.
fn restore_command(config_file: Option<&Path>) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fwdb"));
    let mut rc = format!("\"{}\"", exe.display());
    if let Some(c) = config_file {
        let c = c.canonicalize().unwrap_or_else(|_| c.to_path_buf());
        rc.push_str(&format!(" --config \"{}\"", c.display()));
    }
    rc.push_str(" wal fetch \"%f\" \"%p\"");
    rc
}

/// PostgreSQL refuses to run as root: then its servers run as `postgres`.
fn default_run_as() -> Option<String> {
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    is_root.then(|| "postgres".to_string())
}

/// Progress of the objects streamed by one command: a bar or JSON lines on stderr.
struct Reporter(Option<Arc<ProgressState>>);

struct ProgressState {
    bar: Option<indicatif::ProgressBar>,
    current: std::sync::Mutex<Option<ObjectProgress>>,
}

struct ObjectProgress {
    name: String,
    started: std::time::Instant,
    last_line: std::time::Instant,
    bytes: u64,
}

impl Reporter {
    fn new(mode: ProgressMode) -> Reporter {
        let bar = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                Some(bar)
            }
            ProgressMode::Json => None,
            ProgressMode::Auto | ProgressMode::None => return Reporter(None),
        };
        Reporter(Some(Arc::new(ProgressState { bar, current: std::sync::Mutex::new(None) })))
    }

    /// Reports the last object as done (after a success: a failed run's last object is not).
    fn finish(&self) {
        if let Some(st) = &self.0 {
            st.close_current();
            if let Some(bar) = &st.bar {
                bar.finish_and_clear();
            }
        }
    }
}

impl ProgressState {
    fn update(&self, name: &str, bytes: u64) {
        if let Some(bar) = &self.bar {
            if bar.message() != name {
                bar.set_message(name.to_string());
                bar.reset();
            }
            bar.set_position(bytes);
            return;
        }
        let now = std::time::Instant::now();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_some_and(|c| c.name != name) {
            if let Some(done) = cur.take() {
                json_line("done", &done, now);
            }
        }
        let c = cur.get_or_insert_with(|| ObjectProgress {
            name: name.to_string(),
            started: now,
            last_line: now,
            bytes: 0,
        });
        let first = c.bytes == 0;
        c.bytes = bytes;
        // A line a second per object at most: CI logs stay short however big the backup.
        if first || now.duration_since(c.last_line) >= std::time::Duration::from_secs(1) {
            c.last_line = now;
            json_line("progress", c, now);
        }
    }

    fn close_current(&self) {
        if self.bar.is_none() {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(done) = cur.take() {
                json_line("done", &done, std::time::Instant::now());
            }
        }
    }
}

fn json_line(event: &str, p: &ObjectProgress, now: std::time::Instant) {
    let secs = now.duration_since(p.started).as_secs_f64();
    let rate = if secs > 0.0 { (p.bytes as f64 / secs) as u64 } else { p.bytes };
    eprintln!(
        "{}",
        serde_json::json!({ "event": event, "object": p.name, "bytes": p.bytes, "elapsed_s": (secs * 1000.0).round() / 1000.0, "bytes_per_sec": rate })
    );
}
