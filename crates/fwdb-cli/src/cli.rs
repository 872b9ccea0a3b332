//! The command line, declared with clap.

use crate::commands::{
    audit::AuditCommand,
    backup::{BackupCommand, RestoreArgs, WalCommand},
    check::CheckCommand,
    dev::DevCommand,
    migrate::MigrateCommand,
    roles::RolesCommand,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// fwdb: the database layer of Fashion Wallet (PostgreSQL + MongoDB).
///
/// Configuration is read from built-in defaults, then fwdb.toml (or
/// --config), then the profile's section of that file, then FWDB__*
/// environment variables (FWDB__POSTGRES__POOL__MAX_SIZE=50).
#[derive(Debug, Parser)]
#[command(name = "fwdb", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./fwdb.toml when present]
    #[arg(long, global = true, value_name = "PATH", env = "FWDB_CONFIG")]
    pub config: Option<PathBuf>,
    /// development, staging or production [default: $FWDB_PROFILE, else development]
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Option<fwdb::Profile>,
    /// How to print data
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// More log output (-v info, -vv debug); logs go to stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run fwdb: connect, apply pending migrations, report health, until SIGTERM.
    /// With no configuration at all it starts the local stack first.
    Up(UpArgs),
    /// Show or check the effective configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Versioned schema migrations for PostgreSQL and MongoDB
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Consistency checks across the two stores: `check refs` (dangling references)
    #[command(subcommand)]
    Check(CheckCommand),
    /// Every server's health (primary, replicas, MongoDB); exit 0 healthy, 1 not
    Health(HealthArgs),
    /// One scrape of what `fwdb up` serves on /metrics; exit 0 when the servers answered
    Metrics(MetricsArgs),
    /// Database roles and privileges of architecture 9.1: apply, check against the matrix
    #[command(subcommand)]
    Roles(RolesCommand),
    /// The audit log of changes to the shared, avatar and catalog tables
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Backups: full (base backup + WAL), logical (pg_dump), MongoDB; encrypted, to S3 or a folder
    #[command(subcommand)]
    Backup(BackupCommand),
    /// WAL archiving: archive_command `fwdb wal push %p`, restore_command `fwdb wal fetch %f %p`
    #[command(subcommand)]
    Wal(WalCommand),
    /// Point-in-time recovery into a new folder, or `restore logical|mongo ID --database NAME`
    Restore(RestoreArgs),
    /// A local PostgreSQL (primary + replicas) and MongoDB stack for development
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the local stack keeps its data when fwdb starts one
    #[arg(long, value_name = "DIR", default_value = ".fwdb/up")]
    pub stack_dir: PathBuf,
    /// Exit after start-up instead of waiting for SIGTERM (for smoke tests)
    #[arg(long)]
    pub once: bool,
    /// Serve HTTP here instead of server.listen (port 0: a free one, printed on stdout)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Each server's check gives up after this many milliseconds [default: server.check_timeout]
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Print the Prometheus text format (what /metrics serves)
    #[arg(long)]
    pub prometheus: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value (secrets redacted) and where it came from
    Show,
    /// Validate the configuration; exit 0 when valid, 2 when not
    Check {
        /// Also connect to every configured server
        #[arg(long)]
        connect: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_is_declared_consistently() {
        Cli::command().debug_assert();
    }
}
