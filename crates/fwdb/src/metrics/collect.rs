//! One scrape: the cluster's own status (pools, router, lag) plus what the
//! servers say about themselves, each query bounded by `server.scrape_timeout`
//! so a hung server costs a scrape that long at most, never a hang.

use super::backup::{merge_backups, BackupCatalog, BackupGauge};
use super::mongo::{MongoOpMetrics, MongoOpSnapshot};
use super::query::{QueryMetrics, QuerySnapshot};
use crate::backup::BackupRuns;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::postgres::{connect, ClusterStatus, ConnectTarget, PgCluster, Route};
use mongodb::bson::{doc, Bson, Document};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the primary says about itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgServerStats {
    pub database: String,
    pub max_connections: i64,
    /// (datname, state, count) from pg_stat_activity, client backends.
    pub activity: Vec<(String, String, i64)>,
    /// The oldest open transaction, seconds (0 when none).
    pub max_tx_duration_s: f64,
    pub blks_hit: i64,
    pub blks_read: i64,
    pub deadlocks: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub size_bytes: i64,
    pub archiver_archived: i64,
    pub archiver_failed: i64,
    /// Seconds since the last segment was archived (None: never).
    pub last_archive_age_s: Option<f64>,
    /// Seconds since archiving last failed (None: never).
    pub last_archive_failure_age_s: Option<f64>,
    /// (slot name, active) of replication slots.
    pub slots: Vec<(String, bool)>,
}

impl PgServerStats {
    /// blks_hit / (blks_hit + blks_read); 1 when nothing was read yet.
    pub fn cache_hit_ratio(&self) -> f64 {
        let total = self.blks_hit + self.blks_read;
        if total == 0 {
            1.0
        } else {
            self.blks_hit as f64 / total as f64
        }
    }
}

/// One line of pg_stat_statements.
#[derive(Debug, Clone, Serialize)]
pub struct TopStatement {
    pub queryid: String,
    pub query: String,
    pub calls: i64,
    pub total_seconds: f64,
    pub mean_ms: f64,
    pub rows: i64,
}

/// What MongoDB says about itself (serverStatus, replSetGetStatus).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MongoStats {
    pub up: bool,
    pub error: Option<String>,
    pub version: Option<String>,
    /// current, available, totalCreated, active...
    pub connections: Vec<(String, f64)>,
    /// insert, query, update, delete, getmore, command.
    pub opcounters: Vec<(String, f64)>,
    /// (member, state, optime as Unix seconds, lag behind the primary in seconds).
    pub members: Vec<(String, String, f64, f64)>,
}

/// Migration state of one store.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationGauge {
    pub store: String,
    pub applied: usize,
    pub pending: usize,
    /// Failed outside a transaction: needs an operator.
    pub failed: usize,
    /// Applied, but the file changed since (drift).
    pub changed: usize,
    /// Applied here, but no file for it (a newer release, or deleted).
    pub unknown: usize,
    pub current_version: Option<i64>,
}

/// Everything `/metrics`, `fwdb metrics` and the status page show.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// Unix time of the scrape.
    pub at: f64,
    pub uptime_seconds: f64,
    pub scrape_ms: f64,
    pub cluster: ClusterStatus,
    pub pg: Option<PgServerStats>,
    pub pg_error: Option<String>,
    pub statements: Vec<TopStatement>,
    pub statements_error: Option<String>,
    pub mongo: MongoStats,
    pub migrations: Vec<MigrationGauge>,
    pub migrations_error: Option<String>,
    pub queries: QuerySnapshot,
    /// MongoDB operations of this process (empty unless a [`MongoOpMetrics`] is attached).
    pub mongo_ops: MongoOpSnapshot,
    /// The last success and failures of each backup job (empty when backups are not configured).
    pub backups: Vec<BackupGauge>,
    /// Why the backup catalog could not be read (the gauges then show the last good read).
    pub backups_error: Option<String>,
    /// Age of the catalog read shown (it is cached; see `metrics::CATALOG_MAX_AGE`).
    pub backups_catalog_age_seconds: Option<f64>,
}

/// Gathers [`MetricsSnapshot`]s for one configuration. Build one per process.
pub struct Collector {
    config: Config,
    cluster: PgCluster,
    mongo: mongodb::Client,
    queries: Option<Arc<QueryMetrics>>,
    mongo_ops: Option<Arc<MongoOpMetrics>>,
    backup_runs: Option<Arc<BackupRuns>>,
    backup_catalog: Option<BackupCatalog>,
    started: Instant,
    /// A connection to the `postgres` database, for pg_stat_statements when
    /// the extension is not installed in ours (it is cluster-wide anyway).
    stmt_conn: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl Collector {
    pub fn new(
        config: Config,
        cluster: PgCluster,
        mongo: mongodb::Client,
        queries: Option<Arc<QueryMetrics>>,
    ) -> Collector {
        Collector {
            config,
            cluster,
            mongo,
            queries,
            mongo_ops: None,
            backup_runs: None,
            backup_catalog: None,
            started: Instant::now(),
            stmt_conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Shows the MongoDB operations recorded by `ops`.
    pub fn with_mongo_ops(mut self, ops: Arc<MongoOpMetrics>) -> Collector {
        self.mongo_ops = Some(ops);
        self
    }

    /// Shows backups: what the schedule of this process did (`runs`) and what the storage holds (`catalog`).
    pub fn with_backups(mut self, runs: Option<Arc<BackupRuns>>, catalog: Option<BackupCatalog>) -> Collector {
        self.backup_runs = runs;
        self.backup_catalog = catalog;
        self
    }

    pub fn cluster(&self) -> &PgCluster {
        &self.cluster
    }

    pub fn mongo(&self) -> &mongodb::Client {
        &self.mongo
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn queries(&self) -> Option<&Arc<QueryMetrics>> {
        self.queries.as_ref()
    }

    /// One scrape; every part runs at once, each within `server.scrape_timeout`.
    pub async fn collect(&self) -> MetricsSnapshot {
        let start = Instant::now();
        let limit = self.config.server.scrape_timeout;
        let (pg, statements, mongo, migrations, backups) = futures::join!(
            bounded(limit, self.pg_stats()),
            bounded(limit, self.top_statements()),
            self.mongo_stats(limit),
            bounded(limit, self.migrations()),
            self.backups(limit),
        );
        let (backups, backups_error, backups_catalog_age_seconds) = backups;
        let (pg, pg_error) = split(pg);
        let (statements, statements_error) = split(statements);
        let (migrations, migrations_error) = split(migrations);
        MetricsSnapshot {
            at: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            scrape_ms: start.elapsed().as_secs_f64() * 1000.0,
            cluster: self.cluster.status(),
            pg,
            pg_error,
            statements: statements.unwrap_or_default(),
            statements_error,
            mongo,
            migrations: migrations.unwrap_or_default(),
            migrations_error,
            queries: self.queries.as_ref().map(|q| q.snapshot()).unwrap_or_default(),
            mongo_ops: self.mongo_ops.as_ref().map(|m| m.snapshot()).unwrap_or_default(),
            backups,
            backups_error,
            backups_catalog_age_seconds,
        }
    }

    /// Backup gauges: the schedule's runs and the catalog, whose read waits at most
    /// `CATALOG_WAIT` (bounded by `limit`): a slow bucket shows the previous read.
    async fn backups(&self, limit: Duration) -> (Vec<BackupGauge>, Option<String>, Option<f64>) {
        const CATALOG_WAIT: Duration = Duration::from_millis(500);
        let runs = self.backup_runs.as_ref().map(|r| r.snapshot()).unwrap_or_default();
        let Some(catalog) = &self.backup_catalog else {
            return (merge_backups(&[], &runs), None, None);
        };
        match catalog.view(CATALOG_WAIT.min(limit)).await {
            Some(v) => (merge_backups(&v.jobs, &runs), v.error.clone(), Some(v.read_at.elapsed().as_secs_f64())),
            None => (merge_backups(&[], &runs), Some("the backup catalog has not been read yet".into()), None),
        }
    }

    async fn pg_stats(&self) -> Result<PgServerStats> {
        let conn = self.cluster.checkout(Route::Primary).await?;
        // Sent together on one connection (tokio-postgres pipelines them).
        let (settings, activity, db, archiver, slots) = futures::join!(
            conn.query_one("select current_database()::text, current_setting('max_connections')::int8", &[]),
            conn.query(
                "select coalesce(datname::text, ''), coalesce(state, 'unknown'), count(*)::int8,
                        coalesce(extract(epoch from max(now() - xact_start)), 0)::float8
                   from pg_stat_activity where backend_type = 'client backend' group by 1, 2",
                &[]
            ),
            conn.query_one(
                "select blks_hit, blks_read, deadlocks, xact_commit, xact_rollback, pg_database_size(datid)
                   from pg_stat_database where datname = current_database()",
                &[]
            ),
            conn.query_one(
                "select archived_count, failed_count, extract(epoch from now() - last_archived_time)::float8,
                        extract(epoch from now() - last_failed_time)::float8 from pg_stat_archiver",
                &[]
            ),
            conn.query("select slot_name::text, active from pg_replication_slots", &[]),
        );
        let settings = settings?;
        let activity = activity?;
        let db = db?;
        let archiver = archiver?;
        Ok(PgServerStats {
            database: settings.get(0),
            max_connections: settings.get(1),
            max_tx_duration_s: activity.iter().map(|r| r.get::<_, f64>(3)).fold(0.0, f64::max),
            activity: activity.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect(),
            blks_hit: db.get(0),
            blks_read: db.get(1),
            deadlocks: db.get(2),
            xact_commit: db.get(3),
            xact_rollback: db.get(4),
            size_bytes: db.get(5),
            archiver_archived: archiver.get(0),
            archiver_failed: archiver.get(1),
            last_archive_age_s: archiver.get(2),
            last_archive_failure_age_s: archiver.get(3),
            slots: slots.map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect()).unwrap_or_default(),
        })
    }

    async fn top_statements(&self) -> Result<Vec<TopStatement>> {
        const SQL: &str = "select s.queryid::text, s.query, s.calls, (s.total_exec_time / 1000)::float8, s.mean_exec_time::float8, s.rows
                             from pg_stat_statements s join pg_database d on d.oid = s.dbid
                            where d.datname = $1 order by s.mean_exec_time desc limit $2";
        let db = self.config.postgres.database.as_str();
        let n = self.config.server.top_statements as i64;
        let read = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| TopStatement {
                    queryid: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    query: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    calls: r.get(2),
                    total_seconds: r.get(3),
                    mean_ms: r.get(4),
                    rows: r.get(5),
                })
                .collect()
        };
        let conn = self.cluster.checkout(Route::Primary).await?;
        match conn.query(SQL, &[&db, &n]).await {
            Ok(rows) => return Ok(read(rows)),
            Err(e) if e.code().is_some_and(crate::error::pg::is_undefined_table) => {}
            Err(e) => return Err(e.into()),
        }
        drop(conn);
        // Not installed in our database: the view of the `postgres` database shows the same data.
        let mut guard = self.stmt_conn.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let mut cfg = self.config.postgres.clone();
            cfg.database = "postgres".into();
            *guard = Some(connect(&cfg, ConnectTarget::Primary).await?);
        }
        let client = guard.as_ref().ok_or_else(|| Error::new(ErrorKind::Unavailable, "no connection"))?;
        Ok(read(client.query(SQL, &[&db, &n]).await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, "pg_stat_statements is not installed in this database nor in `postgres`")
                .with_source(e)
        })?))
    }

    async fn mongo_stats(&self, limit: Duration) -> MongoStats {
        let admin = self.mongo.database("admin");
        let status = bounded(limit, async { Ok(admin.run_command(doc! { "serverStatus": 1 }).await?) });
        let rs = bounded(limit, async { Ok(admin.run_command(doc! { "replSetGetStatus": 1 }).await?) });
        let (status, rs) = futures::join!(status, rs);
        let mut out = MongoStats::default();
        match status {
            Ok(s) => {
                out.up = true;
                out.version = s.get_str("version").ok().map(str::to_string);
                out.connections = numbers(s.get_document("connections").ok());
                out.opcounters = numbers(s.get_document("opcounters").ok());
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        if let Ok(rs) = rs {
            let members = rs
                .get_array("members")
                .map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>())
                .unwrap_or_default();
            let optime = |m: &Document| m.get_datetime("optimeDate").map(|d| d.timestamp_millis() as f64 / 1000.0).ok();
            let primary = members.iter().find(|m| m.get_str("stateStr") == Ok("PRIMARY")).and_then(|m| optime(m));
            out.members = members
                .iter()
                .filter_map(|m| {
                    let t = optime(m)?;
                    Some((
                        m.get_str("name").unwrap_or("?").to_string(),
                        m.get_str("stateStr").unwrap_or("?").to_string(),
                        t,
                        primary.map(|p| (p - t).max(0.0)).unwrap_or(0.0),
                    ))
                })
                .collect();
        }
        out
    }

    async fn migrations(&self) -> Result<Vec<MigrationGauge>> {
        use crate::migrate::{MigrationSource, Migrator, State, Store};
        let mut out = Vec::new();
        let pg_set = MigrationSource::Embedded.load(Store::Postgres)?;
        let conn = self.cluster.checkout(Route::Primary).await?;
        let status = Migrator::postgres(&conn, &conn, &pg_set)?.status().await?;
        out.push(MigrationGauge {
            store: "postgres".into(),
            applied: status.count(State::Applied),
            pending: status.count(State::Pending),
            failed: status.count(State::Failed),
            changed: status.count(State::Changed),
            unknown: status.count(State::Unknown),
            current_version: status.current_version(),
        });
        drop(conn);
        let mongo_set = MigrationSource::Embedded.load(Store::Mongo)?;
        let db = self.mongo.database(&self.config.mongo.database);
        let status = Migrator::mongo(&db, &mongo_set)?.status().await?;
        out.push(MigrationGauge {
            store: "mongodb".into(),
            applied: status.count(State::Applied),
            pending: status.count(State::Pending),
            failed: status.count(State::Failed),
            changed: status.count(State::Changed),
            unknown: status.count(State::Unknown),
            current_version: status.current_version(),
        });
        Ok(out)
    }
}

async fn bounded<T>(limit: Duration, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(Error::new(ErrorKind::Unavailable, format!("no answer within {} ms", limit.as_millis())))
    })
}

fn split<T>(r: Result<T>) -> (Option<T>, Option<String>) {
    match r {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

fn numbers(d: Option<&Document>) -> Vec<(String, f64)> {
    d.map(|d| {
        d.iter()
            .filter_map(|(k, v)| {
                let n = match v {
                    Bson::Int32(i) => *i as f64,
                    Bson::Int64(i) => *i as f64,
                    Bson::Double(f) => *f,
                    _ => return None,
                };
                Some((k.clone(), n))
            })
            .collect()
    })
    .unwrap_or_default()
}
