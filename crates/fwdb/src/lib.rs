//! fwdb: the database infrastructure layer of the Fashion Wallet backend.
//!
//! Services link this crate; operators run the `fwdb` command built on it.
//! The modules mirror the architecture document (arch-infra-00): `config`,
//! `postgres`, `mongo`, `query`, `repo`, `migrate`, `health`, `metrics`,
//! `backup`, `security`. They are private; what services may use is
//! re-exported here.

mod config;
mod error;
mod health;
mod migrate;
mod mongo;
mod postgres;

pub use config::{
    redact_url_password, Config, LoadOptions, MongoConfig, MongoPoolConfig, MongoTlsConfig, Origin, PgHost, PoolConfig,
    PostgresConfig, Profile, ReadPreference, Secret, ShownValue, SslMode, TlsConfig, REDACTED,
};
pub use error::{ConfigProblem, Error, ErrorKind, Result};
pub use health::{check as check_health, HealthReport, Role as ServerRole, ServerHealth};
pub use mongo::{client as mongo_client, client_options as mongo_client_options, mongo_database};
pub use postgres::{connect, ConnectTarget};
pub use migrate::{
    new_migration, parse_version as parse_migration_version, Direction as MigrationDirection, DownOptions,
    Event as MigrationEvent, HistoryEntry as MigrationHistoryEntry, LintFinding, Migration, MigrationSet,
    MigrationSource, MigrationStatus, Migrator, Outcome as MigrationOutcome, Plan as MigrationPlan,
    PlanStep as MigrationPlanStep, Ran as MigrationRan, Report as MigrationReport, Script as MigrationScript,
    State as MigrationState, Status as StoreStatus, Store, UpOptions,
};
