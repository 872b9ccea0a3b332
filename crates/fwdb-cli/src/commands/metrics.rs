//! `fwdb metrics`: one scrape of what `/metrics` serves, in a terminal: a
//! table by default, `--format json`, or `--prometheus` for the text format.
//! Exit 0 when the primary and MongoDB answered, 1 when not.

use super::{exit, fail};
use crate::cli::{Format, MetricsArgs};
use crate::output::{print_json, print_table};
use std::process::ExitCode;

pub async fn run(args: MetricsArgs, config: &fwdb::Config, format: Format) -> ExitCode {
    let cluster = match fwdb::PgCluster::connect(&config.postgres).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mongo = match fwdb::mongo_client(&config.mongo).await {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let catalog = catalog(config);
    if let Some(c) = &catalog {
        // One scrape, not a server: worth waiting for the catalog (up to the scrape timeout).
        c.view(config.server.scrape_timeout).await;
    }
    let collector =
        fwdb::MetricsCollector::new(config.clone(), cluster.clone(), mongo, None).with_backups(None, catalog);
    let s = collector.collect().await;
    cluster.close();
    let ok = s.pg.is_some() && s.mongo.up && s.cluster.primary.up;
    if args.prometheus {
        match fwdb::render_metrics(&s) {
            Ok(text) => print!("{text}"),
            Err(e) => return fail(&e),
        }
    } else if format == Format::Json {
        print_json(&s);
    } else {
        print_snapshot(&s);
    }
    exit(ok)
}

/// The backup catalog, when `backup.storage` is set: one scrape waits for its read.
fn catalog(config: &fwdb::Config) -> Option<fwdb::BackupCatalog> {
    if config.backup.storage.is_empty() {
        return None;
    }
    match fwdb::Backups::open(config) {
        Ok(b) => Some(fwdb::BackupCatalog::of(std::sync::Arc::new(b))),
        Err(e) => {
            eprintln!("warning: backups unavailable: {e}");
            None
        }
    }
}

fn print_snapshot(s: &fwdb::MetricsSnapshot) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |k: &str, v: String| rows.push(vec![k.to_string(), v]);
    match &s.pg {
        Some(pg) => {
            let conns: i64 = pg.activity.iter().map(|a| a.2).sum();
            add("postgres.connections", format!("{conns} / {} max", pg.max_connections));
            for (db, state, n) in pg.activity.iter().filter(|a| a.0 == pg.database) {
                add(&format!("postgres.connections.{state}"), format!("{n} ({db})"));
            }
            add("postgres.cache_hit_ratio", format!("{:.2}%", pg.cache_hit_ratio() * 100.0));
            add("postgres.deadlocks", pg.deadlocks.to_string());
            add("postgres.oldest_transaction", format!("{:.1} s", pg.max_tx_duration_s));
            add("postgres.database_size", format!("{:.1} MiB", pg.size_bytes as f64 / 1048576.0));
            add("postgres.archiver.failed", pg.archiver_failed.to_string());
            add(
                "postgres.archiver.last_archive_age",
                pg.last_archive_age_s.map(|a| format!("{a:.0} s")).unwrap_or_else(|| "never".into()),
            );
        }
        None => add("postgres", format!("unavailable: {}", s.pg_error.clone().unwrap_or_default())),
    }
    let c = &s.cluster;
    add(
        "primary",
        if c.primary.up { "up".into() } else { format!("DOWN: {}", c.primary.down_reason.clone().unwrap_or_default()) },
    );
    let pool = |p: &fwdb::PoolStatus| {
        format!(
            "{} in use ({} shared by {} reads), {} idle, {} waiting, {} max, {} timeouts",
            p.in_use, p.shared, p.shared_reads, p.idle, p.waiting, p.max_size, p.timeouts
        )
    };
    add("pool.primary", pool(&c.primary.pool));
    for (i, r) in c.replicas.iter().enumerate() {
        add(&format!("pool.replica{i}"), pool(&r.pool));
        let state = if r.ejected {
            "EJECTED"
        } else if r.eligible {
            "eligible"
        } else {
            "skipped"
        };
        add(
            &format!("replica{i}"),
            format!(
                "{state}, lag {} bytes / {} s, {} reads{}",
                r.lag_bytes.map(|b| b.to_string()).unwrap_or_else(|| "?".into()),
                r.lag_seconds.map(|s| format!("{s:.2}")).unwrap_or_else(|| "?".into()),
                r.reads,
                r.reason.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
            ),
        );
    }
    add("reads.primary", c.reads_primary.to_string());
    let m = &s.mongo;
    add(
        "mongodb",
        if m.up {
            format!("up {}", m.version.clone().unwrap_or_default())
        } else {
            format!("DOWN: {}", m.error.clone().unwrap_or_default())
        },
    );
    for (k, v) in &m.connections {
        add(&format!("mongodb.connections.{k}"), v.to_string());
    }
    for (k, v) in &m.opcounters {
        add(&format!("mongodb.opcounters.{k}"), v.to_string());
    }
    for g in &s.migrations {
        add(&format!("migrations.{}", g.store), format!("{} applied, {} pending", g.applied, g.pending));
    }
    for b in &s.backups {
        let age = b
            .last_success
            .map(|t| format!("{:.0} s ago", (s.at - t).max(0.0)))
            .unwrap_or_else(|| "never succeeded".into());
        let failed = if b.failures > 0 { format!(", {} failures", b.failures) } else { String::new() };
        add(
            &format!("backup.{}", b.kind),
            format!("{age}{}{failed}", b.last_detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()),
        );
    }
    if let Some(e) = &s.backups_error {
        add("backup.catalog", format!("unavailable: {e}"));
    }
    add("scrape", format!("{:.1} ms", s.scrape_ms));
    print_table(&["METRIC", "VALUE"], &rows);
    if !s.statements.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .statements
            .iter()
            .map(|t| {
                let q: String = t.query.split_whitespace().collect::<Vec<_>>().join(" ");
                vec![format!("{:.1} ms", t.mean_ms), t.calls.to_string(), q.chars().take(80).collect()]
            })
            .collect();
        print_table(&["MEAN", "CALLS", "SLOWEST STATEMENTS"], &rows);
    }
}
