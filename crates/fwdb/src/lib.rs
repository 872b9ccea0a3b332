//! fwdb: the database infrastructure layer of the Fashion Wallet backend.
//!
//! Services link this crate; operators run the `fwdb` command built on it.
//! The modules mirror the architecture document (arch-infra-00): `config`,
//! `postgres`, `mongo`, `query`, `repo`, `migrate`, `health`, `metrics`,
//! `backup`, `security`. They are private; what services may use is
//! re-exported here.

// The derives' generated code names `::fwdb::...`, in this crate too.
extern crate self as fwdb;

mod backup;
mod config;
mod entities;
mod error;
mod health;
mod metrics;
mod migrate;
pub mod model;
mod mongo;
mod postgres;
mod query;
mod refs;
mod repo;
mod security;

// Configuration and errors.
pub use config::RoutingConfig;
pub use config::ServerConfig;
pub use config::{
    redact_url_password, Config, LoadOptions, MongoConfig, MongoPoolConfig, MongoTlsConfig, Origin, PgHost, PoolConfig,
    PostgresConfig, Profile, ReadPreference, Secret, ShownValue, SslMode, TlsConfig, REDACTED,
};
pub use config::{AdminLogin, SecurityConfig};
pub use config::{
    BackupConfig, EncryptionConfig, IncrementalType, RetentionConfig, S3Config, ScheduleConfig, StorageUrl,
};
pub use error::{ConfigProblem, Error, ErrorKind, Result};

// PostgreSQL: connections, the routed cluster, transactions.
pub use postgres::{connect, Actor, ConnectTarget, Consistency, Executor, Lsn, Params};
pub use postgres::{
    measure_pool_checkout, CheckoutCost, ClusterStatus, DurationHistogram, IsolationLevel, PgCluster, PgConn,
    PoolStatus, PrimaryStatus, ReplicaStatus, Route, Tx, TxOptions,
};
pub use postgres::{normalize_sql, operation_of, QueryEvent, QueryKind, QueryObserver};
pub use postgres::{Lane, ReadHint, ShapeStatus};

// The typed query builder and the repositories (both stores).
pub use entities::{
    Avatar, AvatarPatch, AvatarRepo, Item, ItemPatch, ItemRepo, NewAvatar, NewItem, NewUser, User, UserPatch, UserRepo,
};
pub use fwdb_derive::Entity;
pub use query::bson::{filter_doc as mongo_filter_doc, json_bson, like_regex, value_bson, MongoQuery};
pub use query::{
    escape_like, Column, ColumnType, Condition, Deleted, Entity, Filter, FilterNode, FindOptions, JsonDoc,
    Kind as FieldKind, LabelPath, Labels, Listable, Op, Order, Ordered, Page, Query, Statement, Textual, Value,
    MAX_LIMIT,
};
pub use repo::{with_actor, PgRepository, Prepared, Record, Repository, WithActor};

/// Types of the repository API, re-exported so callers need no extra dependencies.
pub use rust_decimal::Decimal;
pub use uuid::Uuid;

// MongoDB: the client, the generic repositories, design documents.
pub use mongo::{
    bson_fields, ChangeScope, Document, MongoRepository, Plain, Tracked, Versioned, VersionedChange,
    VersionedRepository,
};
pub use mongo::{client as mongo_client, client_options as mongo_client_options, mongo_database, MongoObserver};
pub use mongo::{
    design_from_doc, parse_design_id, Design, DesignPatch, DesignRepo, DesignStatus, FindSpec,
    HistoryEntry as DesignHistoryEntry, HistoryPage as DesignHistoryPage, Layer, LayerType, Metadata as DesignMetadata,
    Mongo, MongoExec, MongoTx, NewDesign, DEFAULT_HISTORY_LIMIT, DESIGNS, DESIGN_HISTORY, MAX_DOCUMENT_BYTES,
    MAX_TX_ATTEMPTS,
};
pub use refs::check_avatar;

// Migrations of both stores.
pub use migrate::{
    new_migration, parse_version as parse_migration_version, Direction as MigrationDirection, DownOptions,
    Event as MigrationEvent, HistoryEntry as MigrationHistoryEntry, LintFinding, Migration, MigrationSet,
    MigrationSource, MigrationStatus, Migrator, Outcome as MigrationOutcome, Plan as MigrationPlan,
    PlanStep as MigrationPlanStep, Ran as MigrationRan, Report as MigrationReport, Script as MigrationScript,
    State as MigrationState, Status as StoreStatus, Store, UpOptions,
};

// Health and metrics.
pub use health::{
    check as check_health, check_cluster as check_cluster_health, HealthReport, Role as ServerRole, ServerHealth,
};
pub use metrics::{
    backup_catalog_text, mongo_error_code, render as render_metrics, BackupCatalog, BackupGauge, BackupRuns,
    Collector as MetricsCollector, Histogram, LatencyPoint, MetricsSnapshot, MigrationGauge, MongoOpMetrics,
    MongoOpSnapshot, MongoStats, PgServerStats, QueryMetrics, QuerySnapshot, SlowQuery, TopStatement,
    CONTENT_TYPE as METRICS_CONTENT_TYPE,
};

// Backups and recovery.
pub use backup::{
    crc64_ecma, generate_key as generate_backup_key, next_run as next_cron_run, write_key as write_backup_key,
    BackupKind, Backups, FileEntry as BackupFile, JobStatus as BackupJobStatus, LayoutReport,
    Manifest as BackupManifest, ObjectEntry as BackupObject, PitrOptions, PitrReport, Progress as BackupProgress,
    PruneItem, PruneReport, RecoveryTarget, VerifyDepth, VerifyReport, WalReport,
};

// Roles, privileges, audit.
pub use security::{
    apply_grants, apply_roles, check_roles, connect_admin, privilege_matrix, query_audit, quote_ident, quote_literal,
    scram_sha_256_verifier, validate_identifier, Access, ApplyReport, AuditEntry, AuditQuery, ColumnGrant,
    RoleDifference, RoleSpec, GROUP_ROLES, LOGIN_ROLES, SECURED_SCHEMAS, USER_DIRECTORY,
};
