//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! names follow postgres_exporter and mongodb_exporter where they overlap,
//! `fwdb_*` for what only fwdb knows (pools, router, query latency).

use super::collect::MetricsSnapshot;
use super::query::LATENCY_BUCKETS;
use crate::postgres::PoolStatus;
use std::fmt::Write;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub(super) struct Out {
    pub(super) text: String,
}

impl Out {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub(super) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

/// Renders a snapshot in the Prometheus text format.
pub fn render(s: &MetricsSnapshot) -> String {
    let mut o = Out { text: String::with_capacity(16 * 1024) };
    let c = &s.cluster;

    // --- PostgreSQL, postgres_exporter's names ---
    o.one("pg_up", "gauge", "Whether the last scrape of the PostgreSQL primary succeeded.", b(s.pg.is_some()));
    if let Some(pg) = &s.pg {
        let db = pg.database.as_str();
        o.family("pg_stat_activity_count", "gauge", "Client connections by database and state.");
        for (d, state, n) in &pg.activity {
            o.sample("pg_stat_activity_count", &[("datname", d), ("state", state)], *n as f64);
        }
        o.one("pg_stat_activity_max_tx_duration", "gauge", "Age of the oldest open transaction, seconds.", pg.max_tx_duration_s);
        o.one("pg_settings_max_connections", "gauge", "max_connections of the primary.", pg.max_connections as f64);
        o.family("pg_stat_database_blks_hit", "counter", "Blocks found in shared buffers.");
        o.sample("pg_stat_database_blks_hit", &[("datname", db)], pg.blks_hit as f64);
        o.family("pg_stat_database_blks_read", "counter", "Blocks read from disk.");
        o.sample("pg_stat_database_blks_read", &[("datname", db)], pg.blks_read as f64);
        o.family("pg_stat_database_deadlocks", "counter", "Deadlocks detected in this database.");
        o.sample("pg_stat_database_deadlocks", &[("datname", db)], pg.deadlocks as f64);
        o.family("pg_stat_database_xact_commit", "counter", "Transactions committed.");
        o.sample("pg_stat_database_xact_commit", &[("datname", db)], pg.xact_commit as f64);
        o.family("pg_stat_database_xact_rollback", "counter", "Transactions rolled back.");
        o.sample("pg_stat_database_xact_rollback", &[("datname", db)], pg.xact_rollback as f64);
        o.family("fwdb_pg_cache_hit_ratio", "gauge", "blks_hit / (blks_hit + blks_read) of this database.");
        o.sample("fwdb_pg_cache_hit_ratio", &[("datname", db)], pg.cache_hit_ratio());
        o.family("pg_database_size_bytes", "gauge", "Disk space used by the database.");
        o.sample("pg_database_size_bytes", &[("datname", db)], pg.size_bytes as f64);
        o.one("pg_stat_archiver_archived_count", "counter", "WAL segments archived.", pg.archiver_archived as f64);
        o.one("pg_stat_archiver_failed_count", "counter", "Failed attempts to archive a WAL segment.", pg.archiver_failed as f64);
        // The families are always announced; a sample only once something was archived (or failed).
        o.family("pg_stat_archiver_last_archive_age", "gauge", "Seconds since the last WAL segment was archived.");
        if let Some(age) = pg.last_archive_age_s {
            o.sample("pg_stat_archiver_last_archive_age", &[], age);
        }
        o.family("fwdb_pg_archiver_last_failure_age_seconds", "gauge", "Seconds since archiving a WAL segment last failed.");
        if let Some(age) = pg.last_archive_failure_age_s {
            o.sample("fwdb_pg_archiver_last_failure_age_seconds", &[], age);
        }
        o.family("pg_replication_slots_active", "gauge", "Whether a replication slot is in use.");
        for (slot, active) in &pg.slots {
            o.sample("pg_replication_slots_active", &[("slot_name", slot)], b(*active));
        }
    }
    o.family("pg_replication_is_replica", "gauge", "1 for a standby (in recovery), per server.");
    o.sample("pg_replication_is_replica", &[("server", "primary")], 0.0);
    for (i, r) in c.replicas.iter().enumerate() {
        o.sample("pg_replication_is_replica", &[("server", &format!("replica{i}")), ("host", &r.host)], 1.0);
    }
    o.family("pg_replication_lag_seconds", "gauge", "Age of the last replayed transaction while behind, per replica.");
    for (i, r) in c.replicas.iter().enumerate() {
        if let Some(l) = r.lag_seconds {
            o.sample("pg_replication_lag_seconds", &[("server", &format!("replica{i}")), ("host", &r.host)], l);
        }
    }
    o.family("pg_stat_replication_pg_wal_lsn_diff", "gauge", "Bytes of WAL a replica has not replayed yet.");
    for (i, r) in c.replicas.iter().enumerate() {
        if let Some(l) = r.lag_bytes {
            o.sample("pg_stat_replication_pg_wal_lsn_diff", &[("server", &format!("replica{i}")), ("host", &r.host)], l as f64);
        }
    }
    o.family("pg_stat_statements_calls_total", "counter", "Calls of the slowest statements (top N by mean time).");
    for st in &s.statements {
        o.sample("pg_stat_statements_calls_total", &[("queryid", &st.queryid), ("query", &short(&st.query))], st.calls as f64);
    }
    o.family("pg_stat_statements_seconds_total", "counter", "Total execution time of the slowest statements.");
    for st in &s.statements {
        o.sample("pg_stat_statements_seconds_total", &[("queryid", &st.queryid), ("query", &short(&st.query))], st.total_seconds);
    }
    o.family("fwdb_pg_stat_statements_mean_seconds", "gauge", "Mean execution time of the slowest statements.");
    for st in &s.statements {
        o.sample("fwdb_pg_stat_statements_mean_seconds", &[("queryid", &st.queryid), ("query", &short(&st.query))], st.mean_ms / 1000.0);
    }

    // --- pools and router ---
    let pools: Vec<(String, &PoolStatus)> = std::iter::once(("primary".to_string(), &c.primary.pool))
        .chain(c.replicas.iter().enumerate().map(|(i, r)| (format!("replica{i}"), &r.pool)))
        .collect();
    o.family("fwdb_pool_connections", "gauge", "Pooled connections by state (idle, in_use).");
    for (p, st) in &pools {
        o.sample("fwdb_pool_connections", &[("pool", p), ("state", "idle")], st.idle as f64);
        o.sample("fwdb_pool_connections", &[("pool", p), ("state", "in_use")], st.in_use as f64);
    }
    o.family("fwdb_pool_shared_connections", "gauge", "Connections of a pool that reads share, pipelined (postgres.pool.multiplex); counted in in_use.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_shared_connections", &[("pool", p)], st.shared as f64));
    o.family("fwdb_pool_shared_reads", "gauge", "Reads running on a pool's shared connections.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_shared_reads", &[("pool", p)], st.shared_reads as f64));
    o.family("fwdb_pool_size", "gauge", "Open connections of a pool.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_size", &[("pool", p)], st.size as f64));
    o.family("fwdb_pool_max_size", "gauge", "Maximum connections of a pool.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_max_size", &[("pool", p)], st.max_size as f64));
    o.family("fwdb_pool_waiting", "gauge", "Callers waiting for a connection.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_waiting", &[("pool", p)], st.waiting as f64));
    o.family("fwdb_pool_timeouts_total", "counter", "Checkouts that gave up after acquire_timeout.");
    pools.iter().for_each(|(p, st)| o.sample("fwdb_pool_timeouts_total", &[("pool", p)], st.timeouts as f64));
    o.family("fwdb_pool_acquire_duration_seconds", "histogram", "Time spent checking a connection out of a pool, failed checkouts included.");
    for (p, st) in &pools {
        let h = &st.acquire;
        for (le, n) in &h.buckets {
            o.sample("fwdb_pool_acquire_duration_seconds_bucket", &[("pool", p), ("le", &number(*le))], *n as f64);
        }
        o.sample("fwdb_pool_acquire_duration_seconds_bucket", &[("pool", p), ("le", "+Inf")], h.count as f64);
        o.sample("fwdb_pool_acquire_duration_seconds_sum", &[("pool", p)], h.sum_seconds);
        o.sample("fwdb_pool_acquire_duration_seconds_count", &[("pool", p)], h.count as f64);
    }
    o.one("fwdb_primary_up", "gauge", "Whether the router has a primary that accepts writes.", b(c.primary.up));
    o.one("fwdb_primary_drains_total", "counter", "Times the primary pool was drained (primary lost or changed).", c.primary.drains as f64);
    o.one("fwdb_writes_unavailable_total", "counter", "Writes refused because no primary was known.", c.primary.writes_unavailable as f64);
    o.family("fwdb_replica_ejected", "gauge", "1 while a replica is left out of routing.");
    for (i, r) in c.replicas.iter().enumerate() {
        o.sample("fwdb_replica_ejected", &[("server", &format!("replica{i}")), ("host", &r.host)], b(r.ejected));
    }
    o.family("fwdb_replica_eligible", "gauge", "1 while a replica gets eventual reads.");
    for (i, r) in c.replicas.iter().enumerate() {
        o.sample("fwdb_replica_eligible", &[("server", &format!("replica{i}")), ("host", &r.host)], b(r.eligible));
    }
    o.family("fwdb_reads_total", "counter", "Reads served, by route.");
    o.sample("fwdb_reads_total", &[("route", "primary")], c.reads_primary as f64);
    for (i, r) in c.replicas.iter().enumerate() {
        o.sample("fwdb_reads_total", &[("route", &format!("replica{i}"))], r.reads as f64);
    }
    o.one("fwdb_read_retries_total", "counter", "Reads run again after losing their replica.", c.read_retries as f64);
    o.one("fwdb_tx_retries_total", "counter", "Transactions run again after 40001 / 40P01.", c.tx_retries as f64);

    // --- statements run by this process ---
    let q = &s.queries;
    o.family("fwdb_query_duration_seconds", "histogram", "Statement latency by operation (verb and table), route and kind.");
    for (op, route, kind, h) in &q.latency {
        let labels = [("operation", op.as_str()), ("route", route.as_str()), ("kind", kind.as_str())];
        let mut cum = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cum += h.buckets.get(i).copied().unwrap_or(0);
            let le = number(*le);
            o.sample("fwdb_query_duration_seconds_bucket", &[labels[0], labels[1], labels[2], ("le", &le)], cum as f64);
        }
        o.sample("fwdb_query_duration_seconds_bucket", &[labels[0], labels[1], labels[2], ("le", "+Inf")], h.count as f64);
        o.sample("fwdb_query_duration_seconds_sum", &labels, h.sum);
        o.sample("fwdb_query_duration_seconds_count", &labels, h.count as f64);
    }
    o.family("fwdb_query_errors_total", "counter", "Failed statements by operation, route and SQLSTATE class.");
    for (op, route, class, n) in &q.errors {
        o.sample("fwdb_query_errors_total", &[("operation", op), ("route", route), ("sqlstate_class", class)], *n as f64);
    }
    o.one("fwdb_slow_queries_total", "counter", "Statements slower than server.slow_query_threshold.", q.slow_total as f64);

    // --- MongoDB, mongodb_exporter's names ---
    let m = &s.mongo;
    o.one("mongodb_up", "gauge", "Whether MongoDB answered serverStatus.", b(m.up));
    o.family("mongodb_ss_connections", "gauge", "serverStatus connections, by kind.");
    for (k, v) in &m.connections {
        o.sample("mongodb_ss_connections", &[("conn_type", k)], *v);
    }
    o.family("mongodb_ss_opcounters", "counter", "serverStatus opcounters, by operation.");
    for (k, v) in &m.opcounters {
        o.sample("mongodb_ss_opcounters", &[("legacy_op_type", k)], *v);
    }
    o.family("mongodb_rs_members_optimeDate", "gauge", "Last applied operation of each member, Unix seconds.");
    for (name, state, t, _) in &m.members {
        o.sample("mongodb_rs_members_optimeDate", &[("member_idx", name), ("member_state", state)], *t);
    }
    o.family("fwdb_mongodb_replication_lag_seconds", "gauge", "How far each member is behind the primary.");
    for (name, state, _, lag) in &m.members {
        o.sample("fwdb_mongodb_replication_lag_seconds", &[("member_idx", name), ("member_state", state)], *lag);
    }

    // --- migrations, process ---
    o.family("fwdb_migrations_pending", "gauge", "Migrations not applied, per store.");
    for g in &s.migrations {
        o.sample("fwdb_migrations_pending", &[("store", &g.store)], g.pending as f64);
    }
    o.family("fwdb_migrations_applied", "gauge", "Migrations in effect, per store.");
    for g in &s.migrations {
        o.sample("fwdb_migrations_applied", &[("store", &g.store)], g.applied as f64);
    }
    o.family("fwdb_migration_version", "gauge", "Newest migration version in effect, per store.");
    for g in &s.migrations {
        o.sample("fwdb_migration_version", &[("store", &g.store)], g.current_version.unwrap_or(0) as f64);
    }
    o.family("fwdb_migrations_state", "gauge", "Migrations needing attention, per store and state (failed, changed since applied, unknown here).");
    for g in &s.migrations {
        for (state, n) in [("failed", g.failed), ("changed", g.changed), ("unknown", g.unknown)] {
            o.sample("fwdb_migrations_state", &[("store", &g.store), ("state", state)], n as f64);
        }
    }
    super::mongo::write_mongo_ops(&mut o, &s.mongo_ops);
    super::backup::write_backups(&mut o, &s.backups, s.at);
    o.family("fwdb_backup_catalog_age_seconds", "gauge", "Age of the backup catalog read shown (cached, refreshed in the background); absent when backups are not configured.");
    if let Some(age) = s.backups_catalog_age_seconds {
        o.sample("fwdb_backup_catalog_age_seconds", &[], age);
    }
    o.family("fwdb_scrape_errors", "gauge", "1 per part of the last scrape that failed.");
    let parts = [("pg", &s.pg_error), ("statements", &s.statements_error), ("mongodb", &m.error), ("migrations", &s.migrations_error), ("backups", &s.backups_error)];
    for (part, err) in parts {
        o.sample("fwdb_scrape_errors", &[("part", part)], b(err.is_some()));
    }
    o.one("fwdb_uptime_seconds", "gauge", "Seconds since the collector started.", s.uptime_seconds);
    o.one("fwdb_scrape_duration_seconds", "gauge", "How long gathering this scrape took.", s.scrape_ms / 1000.0);
    o.text
}

/// A statement's text on one line, at most 200 characters (label values stay small).
fn short(q: &str) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 200 { one.chars().take(199).collect::<String>() + "…" } else { one }
}
