//! What `/metrics` shows, family by family, in the Prometheus text format
//! (through [`super::exposition`]). Names pass `promtool check metrics`; where
//! postgres_exporter or mongodb_exporter export the same thing, the name is
//! theirs or theirs made lint-clean (deploy/README.md maps each one).
//! `fwdb_*` is for what only fwdb knows (pools, router, query latency).

use super::collect::{MetricsSnapshot, MigrationGauge, MongoStats, PgServerStats, TopStatement};
use super::exposition::{count, expose, flag, Out, Res};
use super::query::QuerySnapshot;
use crate::error::Result;
use crate::postgres::{ClusterStatus, DurationHistogram, Lane, PoolStatus, ReplicaStatus, ShapeStatus};

/// Renders a snapshot in the Prometheus text format (content type [`super::CONTENT_TYPE`]).
pub fn render(s: &MetricsSnapshot) -> Result<String> {
    expose(s.clone(), write_snapshot)
}

fn write_snapshot(o: &mut Out<'_>, s: &MetricsSnapshot) -> Res {
    o.gauge("pg_up", "Whether the last scrape of the PostgreSQL primary succeeded.", flag(s.pg.is_some()))?;
    if let Some(pg) = &s.pg {
        pg_server(o, pg)?;
    }
    replication(o, &s.cluster)?;
    statements(o, &s.statements)?;
    pools(o, &s.cluster)?;
    read_shapes(o, &s.cluster.shapes)?;
    router(o, &s.cluster)?;
    queries(o, &s.queries)?;
    mongo(o, &s.mongo)?;
    migrations(o, &s.migrations)?;
    super::mongo::write_mongo_ops(o, &s.mongo_ops)?;
    super::backup::write_backups(o, &s.backups, s.at)?;
    process(o, s)
}

/// What the primary says about itself (postgres_exporter's pg_stat_activity, pg_stat_database, pg_stat_archiver).
fn pg_server(o: &mut Out<'_>, pg: &PgServerStats) -> Res {
    let mut f = o.gauges("pg_stat_activity_connections", "Client connections by database and state.")?;
    for (d, state, n) in &pg.activity {
        f.sample(&[("datname", d.as_str()), ("state", state.as_str())], *n)?;
    }
    o.gauge("pg_stat_activity_max_tx_duration", "Age of the oldest open transaction, seconds.", pg.max_tx_duration_s)?;
    o.gauge("pg_settings_max_connections", "max_connections of the primary.", pg.max_connections)?;
    let db = [("datname", pg.database.as_str())];
    let counters = [
        ("pg_stat_database_blks_hit", "Blocks found in shared buffers.", pg.blks_hit),
        ("pg_stat_database_blks_read", "Blocks read from disk.", pg.blks_read),
        ("pg_stat_database_deadlocks", "Deadlocks detected in this database.", pg.deadlocks),
        ("pg_stat_database_xact_commit", "Transactions committed.", pg.xact_commit),
        ("pg_stat_database_xact_rollback", "Transactions rolled back.", pg.xact_rollback),
    ];
    for (name, help, v) in counters {
        o.counters(name, help)?.sample(&db, count(v))?;
    }
    o.gauges("fwdb_pg_cache_hit_ratio", "blks_hit / (blks_hit + blks_read) of this database.")?
        .sample(&db, pg.cache_hit_ratio())?;
    o.gauges("pg_database_size_bytes", "Disk space used by the database.")?.sample(&db, pg.size_bytes)?;
    archiver(o, pg)?;
    let mut f = o.gauges("pg_replication_slots_active", "Whether a replication slot is in use.")?;
    for (slot, active) in &pg.slots {
        f.sample(&[("slot_name", slot.as_str())], flag(*active))?;
    }
    Ok(())
}

fn archiver(o: &mut Out<'_>, pg: &PgServerStats) -> Res {
    o.counter("pg_stat_archiver_archived", "WAL segments archived.", count(pg.archiver_archived))?;
    o.counter("pg_stat_archiver_failed", "Failed attempts to archive a WAL segment.", count(pg.archiver_failed))?;
    // The families are always announced; a sample only once something was archived (or failed).
    let mut f = o.gauges("pg_stat_archiver_last_archive_age", "Seconds since the last WAL segment was archived.")?;
    if let Some(age) = pg.last_archive_age_s {
        f.sample(&[], age)?;
    }
    let mut f =
        o.gauges("fwdb_pg_archiver_last_failure_age_seconds", "Seconds since archiving a WAL segment last failed.")?;
    if let Some(age) = pg.last_archive_failure_age_s {
        f.sample(&[], age)?;
    }
    Ok(())
}

/// The replicas with their `server` label (replica0, replica1...), in configuration order.
fn replicas(c: &ClusterStatus) -> Vec<(String, &ReplicaStatus)> {
    c.replicas.iter().enumerate().map(|(i, r)| (format!("replica{i}"), r)).collect()
}

fn replication(o: &mut Out<'_>, c: &ClusterStatus) -> Res {
    let replicas = replicas(c);
    let mut f = o.gauges("pg_replication_is_replica", "1 for a standby (in recovery), per server.")?;
    f.sample(&[("server", "primary")], 0)?;
    for (server, r) in &replicas {
        f.sample(&[("server", server), ("host", &r.host)], 1)?;
    }
    let mut f =
        o.gauges("pg_replication_lag_seconds", "Age of the last replayed transaction while behind, per replica.")?;
    for (server, r) in &replicas {
        if let Some(lag) = r.lag_seconds {
            f.sample(&[("server", server), ("host", &r.host)], lag)?;
        }
    }
    let mut f = o.gauges("pg_stat_replication_pg_wal_lsn_diff", "Bytes of WAL a replica has not replayed yet.")?;
    for (server, r) in &replicas {
        if let Some(lag) = r.lag_bytes {
            f.sample(&[("server", server), ("host", &r.host)], lag)?;
        }
    }
    Ok(())
}

fn statements(o: &mut Out<'_>, statements: &[TopStatement]) -> Res {
    let rows: Vec<(&TopStatement, String)> = statements.iter().map(|st| (st, short(&st.query))).collect();
    let mut f = o.counters("pg_stat_statements_calls", "Calls of the slowest statements (top N by mean time).")?;
    for (st, q) in &rows {
        f.sample(&[("queryid", &st.queryid), ("query", q)], count(st.calls))?;
    }
    let mut f = o.counters("pg_stat_statements_seconds", "Total execution time of the slowest statements.")?;
    for (st, q) in &rows {
        f.sample(&[("queryid", &st.queryid), ("query", q)], st.total_seconds)?;
    }
    let mut f = o.gauges("fwdb_pg_stat_statements_mean_seconds", "Mean execution time of the slowest statements.")?;
    for (st, q) in &rows {
        f.sample(&[("queryid", &st.queryid), ("query", q)], st.mean_ms / 1000.0)?;
    }
    Ok(())
}

/// The read shapes that took the most server time (a bounded few): what one
/// read of each costs and whether it shares connections (postgres/shapes.rs).
fn read_shapes(o: &mut Out<'_>, shapes: &[ShapeStatus]) -> Res {
    let rows: Vec<(&ShapeStatus, String)> = shapes.iter().map(|s| (s, short(&s.sql))).collect();
    let help = "Moving estimate of one read's server time, per statement shape (top shapes by time).";
    let mut f = o.gauges("fwdb_read_shape_estimate_seconds", help)?;
    for (s, q) in &rows {
        f.sample(&[("shape", q)], s.estimate_seconds)?;
    }
    let help = "Whether a shape's reads run on connections of their own (1) or share pipelined ones (0).";
    let mut f = o.gauges("fwdb_read_shape_own_connection", help)?;
    for (s, q) in &rows {
        f.sample(&[("shape", q)], flag(s.lane == Lane::Own))?;
    }
    let mut f = o.counters("fwdb_read_shape_reads", "Reads timed per statement shape (top shapes by time).")?;
    for (s, q) in &rows {
        f.sample(&[("shape", q)], s.reads)?;
    }
    Ok(())
}

/// One gauge per pool: name, help, and what it reads.
type PoolGauge = (&'static str, &'static str, fn(&PoolStatus) -> usize);

const POOL_GAUGES: [PoolGauge; 5] = [
    (
        "fwdb_pool_shared_connections",
        "Connections of a pool that reads share, pipelined (postgres.pool.multiplex); counted in in_use.",
        |p| p.shared,
    ),
    ("fwdb_pool_shared_reads", "Reads running on a pool's shared connections.", |p| p.shared_reads),
    ("fwdb_pool_size", "Open connections of a pool.", |p| p.size),
    ("fwdb_pool_max_size", "Maximum connections of a pool.", |p| p.max_size),
    ("fwdb_pool_waiting", "Callers waiting for a connection.", |p| p.waiting),
];

fn pools(o: &mut Out<'_>, c: &ClusterStatus) -> Res {
    let pools: Vec<(String, &PoolStatus)> = std::iter::once(("primary".to_string(), &c.primary.pool))
        .chain(replicas(c).into_iter().map(|(server, r)| (server, &r.pool)))
        .collect();
    let mut f = o.gauges("fwdb_pool_connections", "Pooled connections by state (idle, in_use).")?;
    for (p, st) in &pools {
        f.sample(&[("pool", p), ("state", "idle")], st.idle)?;
        f.sample(&[("pool", p), ("state", "in_use")], st.in_use)?;
    }
    for (name, help, read) in POOL_GAUGES {
        let mut f = o.gauges(name, help)?;
        for (p, st) in &pools {
            f.sample(&[("pool", p)], read(st))?;
        }
    }
    let mut f = o.counters("fwdb_pool_timeouts", "Checkouts that gave up after acquire_timeout.")?;
    for (p, st) in &pools {
        f.sample(&[("pool", p)], st.timeouts)?;
    }
    let help = "Time spent checking a connection out of a pool, failed checkouts included.";
    let mut f = o.histograms("fwdb_pool_acquire_duration_seconds", help)?;
    for (p, st) in &pools {
        let h = &st.acquire;
        f.sample(&[("pool", p)], h.sum_seconds, h.count, &per_bucket(h))?;
    }
    Ok(())
}

/// A cumulative histogram's buckets as counts of each bucket alone (the encoder adds them up again).
fn per_bucket(h: &DurationHistogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    h.buckets
        .iter()
        .map(|&(le, n)| {
            let own = n.saturating_sub(below);
            below = n;
            (le, own)
        })
        .collect()
}

fn router(o: &mut Out<'_>, c: &ClusterStatus) -> Res {
    o.gauge("fwdb_primary_up", "Whether the router has a primary that accepts writes.", flag(c.primary.up))?;
    o.counter(
        "fwdb_primary_drains",
        "Times the primary pool was drained (primary lost or changed).",
        c.primary.drains,
    )?;
    o.counter("fwdb_writes_unavailable", "Writes refused because no primary was known.", c.primary.writes_unavailable)?;
    let replicas = replicas(c);
    let mut f = o.gauges("fwdb_replica_ejected", "1 while a replica is left out of routing.")?;
    for (server, r) in &replicas {
        f.sample(&[("server", server), ("host", &r.host)], flag(r.ejected))?;
    }
    let mut f = o.gauges("fwdb_replica_eligible", "1 while a replica gets eventual reads.")?;
    for (server, r) in &replicas {
        f.sample(&[("server", server), ("host", &r.host)], flag(r.eligible))?;
    }
    let mut f = o.counters("fwdb_reads", "Reads served, by route.")?;
    f.sample(&[("route", "primary")], c.reads_primary)?;
    for (server, r) in &replicas {
        f.sample(&[("route", server)], r.reads)?;
    }
    o.counter("fwdb_read_retries", "Reads run again after losing their replica.", c.read_retries)?;
    o.counter("fwdb_tx_retries", "Transactions run again after 40001 / 40P01.", c.tx_retries)
}

/// Statements run by this process.
fn queries(o: &mut Out<'_>, q: &QuerySnapshot) -> Res {
    let help = "Statement latency by operation (verb and table), route and kind.";
    let mut f = o.histograms("fwdb_query_duration_seconds", help)?;
    for (op, route, kind, h) in &q.latency {
        f.sample(&[("operation", op), ("route", route), ("kind", kind)], h.sum, h.count, &h.per_bucket())?;
    }
    let mut f = o.counters("fwdb_query_errors", "Failed statements by operation, route and SQLSTATE class.")?;
    for (op, route, class, n) in &q.errors {
        f.sample(&[("operation", op), ("route", route), ("sqlstate_class", class)], *n)?;
    }
    o.counter("fwdb_slow_queries", "Statements slower than server.slow_query_threshold.", q.slow_total)
}

/// What MongoDB says about itself (mongodb_exporter's serverStatus and replSetGetStatus families).
fn mongo(o: &mut Out<'_>, m: &MongoStats) -> Res {
    o.gauge("mongodb_up", "Whether MongoDB answered serverStatus.", flag(m.up))?;
    let mut f = o.gauges("mongodb_ss_connections", "serverStatus connections, by kind.")?;
    for (kind, v) in &m.connections {
        f.sample(&[("conn_type", kind)], *v)?;
    }
    let mut f = o.counters("mongodb_ss_opcounters", "serverStatus opcounters, by operation.")?;
    for (op, v) in &m.opcounters {
        f.sample(&[("legacy_op_type", op)], *v)?;
    }
    let mut f =
        o.gauges("mongodb_rs_members_optime_date_seconds", "Last applied operation of each member, Unix seconds.")?;
    for (name, state, t, _) in &m.members {
        f.sample(&[("member_idx", name), ("member_state", state)], *t)?;
    }
    let mut f = o.gauges("fwdb_mongodb_replication_lag_seconds", "How far each member is behind the primary.")?;
    for (name, state, _, lag) in &m.members {
        f.sample(&[("member_idx", name), ("member_state", state)], *lag)?;
    }
    Ok(())
}

fn migrations(o: &mut Out<'_>, migrations: &[MigrationGauge]) -> Res {
    let mut f = o.gauges("fwdb_migrations_pending", "Migrations not applied, per store.")?;
    for g in migrations {
        f.sample(&[("store", &g.store)], g.pending)?;
    }
    let mut f = o.gauges("fwdb_migrations_applied", "Migrations in effect, per store.")?;
    for g in migrations {
        f.sample(&[("store", &g.store)], g.applied)?;
    }
    let mut f = o.gauges("fwdb_migration_version", "Newest migration version in effect, per store.")?;
    for g in migrations {
        f.sample(&[("store", &g.store)], g.current_version.unwrap_or(0))?;
    }
    let help = "Migrations needing attention, per store and state (failed, changed since applied, unknown here).";
    let mut f = o.gauges("fwdb_migrations_state", help)?;
    for g in migrations {
        for (state, n) in [("failed", g.failed), ("changed", g.changed), ("unknown", g.unknown)] {
            f.sample(&[("store", &g.store), ("state", state)], n)?;
        }
    }
    Ok(())
}

/// The backup catalog's age, the parts of the scrape that failed, and the process.
fn process(o: &mut Out<'_>, s: &MetricsSnapshot) -> Res {
    let help = "Age of the backup catalog read shown (cached, refreshed in the background); absent when backups are not configured.";
    let mut f = o.gauges("fwdb_backup_catalog_age_seconds", help)?;
    if let Some(age) = s.backups_catalog_age_seconds {
        f.sample(&[], age)?;
    }
    let parts = [
        ("pg", &s.pg_error),
        ("statements", &s.statements_error),
        ("mongodb", &s.mongo.error),
        ("migrations", &s.migrations_error),
        ("backups", &s.backups_error),
    ];
    let mut f = o.gauges("fwdb_scrape_errors", "1 per part of the last scrape that failed.")?;
    for (part, err) in parts {
        f.sample(&[("part", part)], flag(err.is_some()))?;
    }
    o.gauge("fwdb_uptime_seconds", "Seconds since the collector started.", s.uptime_seconds)?;
    o.gauge("fwdb_scrape_duration_seconds", "How long gathering this scrape took.", s.scrape_ms / 1000.0)
}

/// A statement's text on one line, at most 200 characters (label values stay small).
fn short(q: &str) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 200 {
        one.chars().take(199).collect::<String>() + "…"
    } else {
        one
    }
}
