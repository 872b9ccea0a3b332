//! The command line of `fwdb backup`, `fwdb wal` and `fwdb restore`.

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Take a backup: full, diff or incr (base backups + archived WAL), logical (pg_dump) or mongo
    Create(CreateArgs),
    /// Complete backups (those with a manifest): age, size, kind, what each restores to
    List,
    /// Check every object of the backup and of every backup it depends on (SHA-256, decryption), then restore it into scratch (full: pg_verifybackup on it first) and compare counts with the manifest
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
    /// Delete what the retention policy (backup.retention) no longer keeps; never a backup a kept one depends on
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
    /// Every file of the cluster (pg_basebackup)
    Full,
    /// Only the files changed since the last full backup
    Diff,
    /// Only the files changed since the last base backup of any type
    Incr,
    /// The scheduled incremental step (backup.schedule.incremental_type: incr, diff or wal)
    Incremental,
    Logical,
    Mongo,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What to take (`--type` as in pgBackRest)
    #[arg(long, value_enum, visible_alias = "type")]
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
    /// archive_command: `fwdb wal push %p` (through `fwdb wal archiver` when backup.wal.spool_dir is set and it runs)
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
    /// Gaps in the archive from the oldest kept base backup on (exit 1 when there is one), and the archiving lag
    Verify,
    /// The asynchronous archiver: pushes segments PostgreSQL marked ready, in parallel, until SIGTERM/Ctrl-C
    Archiver {
        /// The server's pg_wal folder, to push ahead of archive_command [default: learnt from its first request]
        #[arg(long, value_name = "DIR")]
        pg_wal: Option<PathBuf>,
    },
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
    /// A new folder for the restored server's data (with --delta: a stopped data folder)
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Restore over the stopped data folder in --target-dir, rewriting only the files whose checksum differs
    #[arg(long)]
    pub delta: bool,
    /// The base backup (full, diff or incr) to start from [default: the newest ending before the target]
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
