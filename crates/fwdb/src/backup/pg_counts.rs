//! Row counts for full backups, recorded at one WAL position so that a
//! restore to exactly that position must reproduce them (`backup verify`).
//!
//! A base backup is fuzzy: it is consistent only at its end, and rows keep
//! changing while it is taken. Counts taken "around" it would not match a
//! restore. So, after the base backup, every table of every database is
//! locked in SHARE mode (writers wait; readers do not) just long enough to
//! read the WAL insert position and export a snapshot: every transaction
//! that wrote a counted table has then committed before that position, and
//! none can write one until the locks go. The counting itself runs on the
//! exported snapshots after the locks are released.

use super::manifest::Manifest;
use super::Backups;
use crate::error::{Error, ErrorKind, Result};
use crate::security::quote_existing;
use std::collections::BTreeMap;

/// Each try waits for the locks less than deadlock_timeout (1 s by default):
/// should an application transaction wait on us while we wait on it, our try
/// gives up first, and the application's transaction is never the one aborted.
const LOCK_TIMEOUT: &str = "300ms";
const LOCK_TRIES: u32 = 20;

/// One database whose tables are locked, in an open transaction.
struct Held {
    db: String,
    client: tokio_postgres::Client,
    snapshot: String,
    tables: Vec<(String, String)>,
}

impl Backups {
    /// Adds row counts (or why there are none) to the manifest of a full backup.
    /// Counts are a check of the backup, not the backup: when the backup role
    /// may not lock or read the tables, the backup stands and the manifest says why.
    pub(crate) async fn record_counts(&self, m: &mut Manifest) {
        match self.counts_at_one_position(&m.databases).await {
            Ok((lsn, counts)) => {
                m.counts_lsn = Some(lsn);
                m.counts.extend(counts);
            }
            Err(e) => {
                tracing::warn!(backup = %m.id, error = %e, "row counts not recorded");
                m.counts_note = Some(format!("row counts not recorded: {e}"));
            }
        }
    }

    async fn counts_at_one_position(&self, dbs: &[String]) -> Result<(String, BTreeMap<String, u64>)> {
        if dbs.is_empty() {
            return Err(Error::invalid_input("the backup lists no databases"));
        }
        // Connections cost a TLS and SCRAM handshake each: open them all at
        // once, and the readers before the locks, so the locks are held for as
        // short a time as possible.
        let (held, readers) = futures::try_join!(
            futures::future::try_join_all(dbs.iter().map(|db| self.hold_writes(db))),
            futures::future::try_join_all(dbs.iter().map(|db| self.reader(db))),
        )?;
        let lsn: String = held[0]
            .client
            .query_one("select pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(super::db_error("reading the WAL position".into()))?
            .get(0);
        futures::future::try_join_all(held.iter().zip(&readers).map(|(h, r)| import_snapshot(r, &h.db, &h.snapshot)))
            .await?;
        futures::future::try_join_all(held.iter().map(|h| async move {
            h.client.batch_execute("commit").await.map_err(super::db_error(format!("releasing the locks on {}", h.db)))
        }))
        .await?;
        close_segment(&held[0].client).await;
        let per_db = futures::future::try_join_all(held.iter().zip(&readers).map(|(h, c)| count_tables(h, c))).await?;
        let counts = per_db.into_iter().flatten().collect();
        Ok((lsn, counts))
    }

    /// Locks every user table of `db` in SHARE mode and exports a snapshot taken after the locks.
    async fn hold_writes(&self, db: &str) -> Result<Held> {
        let client =
            crate::postgres::connect(&self.backup_pg_config(db), crate::postgres::ConnectTarget::Primary).await?;
        let mut tries = 0;
        let tables = loop {
            tries += 1;
            match lock_tables(&client).await {
                Ok(t) => break t,
                Err(e)
                    if tries < LOCK_TRIES && e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
                {
                    client
                        .batch_execute("rollback")
                        .await
                        .map_err(super::db_error(format!("retrying the locks on {db}")))?;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(tries))).await;
                }
                Err(e) => {
                    return Err(Error::from(e).with_context(format!(
                    "locking the tables of {db} (the backup role needs to own them, or UPDATE on them; {tries} tries)"
                )))
                }
            }
        };
        let snapshot: String = client
            .query_one("select pg_export_snapshot()", &[])
            .await
            .map_err(super::db_error(format!("exporting a snapshot of {db}")))?
            .get(0);
        Ok(Held { db: db.to_string(), client, snapshot, tables })
    }

    /// A connection to `db` that will read an exported snapshot.
    async fn reader(&self, db: &str) -> Result<tokio_postgres::Client> {
        crate::postgres::connect(&self.backup_pg_config(db), crate::postgres::ConnectTarget::Primary).await
    }
}

/// Starts on `client` a read-only transaction that sees exactly the exported `snapshot`.
async fn import_snapshot(client: &tokio_postgres::Client, db: &str, snapshot: &str) -> Result<()> {
    if snapshot.contains('\'') {
        return Err(Error::new(ErrorKind::Internal, format!("unexpected snapshot id `{snapshot}`")));
    }
    client
        .batch_execute(&format!(
            "begin isolation level repeatable read read only; set transaction snapshot '{snapshot}'"
        ))
        .await
        .map_err(super::db_error(format!("importing the snapshot on {db}")))
}

/// `(db.schema.table, rows)` for every table `h` locked, read on the snapshot reader `c`.
async fn count_tables(h: &Held, c: &tokio_postgres::Client) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::with_capacity(h.tables.len());
    for (s, t) in &h.tables {
        let n = count_table(c, s, t).await.map_err(super::db_error(format!("counting rows of {}.{s}.{t}", h.db)))?;
        out.push((format!("{}.{s}.{t}", h.db), n));
    }
    Ok(out)
}

/// Closes the current WAL segment so the one holding the counts' position
/// is archived now rather than at the next archive_timeout; without
/// EXECUTE on pg_switch_wal a verify just waits longer for it.
async fn close_segment(client: &tokio_postgres::Client) {
    if let Err(e) = client.query_one("select pg_switch_wal()::text", &[]).await {
        tracing::info!(error = %e, "WAL segment not switched after the counts (needs EXECUTE on pg_switch_wal)");
    }
}

/// In a new transaction: every user table of the database locked in SHARE mode; the tables.
async fn lock_tables(
    client: &tokio_postgres::Client,
) -> std::result::Result<Vec<(String, String)>, tokio_postgres::Error> {
    // READ COMMITTED: the snapshot exported after this is taken after the locks, not at the table list.
    client
        .batch_execute(&format!("begin isolation level read committed; set local lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    let tables = user_tables(client).await?;
    if !tables.is_empty() {
        let list: Vec<String> =
            tables.iter().map(|(s, t)| format!("{}.{}", quote_existing(s), quote_existing(t))).collect();
        client.batch_execute(&format!("lock table {} in share mode", list.join(", "))).await?;
    }
    Ok(tables)
}

/// User tables (plain and partitioned), `(schema, table)`, sorted.
pub(crate) async fn user_tables(
    client: &tokio_postgres::Client,
) -> std::result::Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select n.nspname::text, c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') \
             and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%' order by 1, 2",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(crate) async fn count_table(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let n: i64 = client
        .query_one(&format!("select count(*) from {}.{}", quote_existing(schema), quote_existing(table)), &[])
        .await?
        .get(0);
    Ok(n as u64)
}

/// Compares counts found in a restored database `db` with what manifest `m` records for it.
pub(crate) fn compare_counts(m: &Manifest, db: &str, found: &BTreeMap<String, u64>) -> Result<(usize, u64)> {
    let prefix = format!("{db}.");
    let (mut tables, mut rows) = (0, 0);
    for (key, want) in m.counts.iter().filter(|(k, _)| k.starts_with(&prefix)) {
        let table = &key[prefix.len()..];
        match found.get(table) {
            Some(have) if have == want => {
                tables += 1;
                rows += want;
            }
            have => {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "restored table {db}.{table} has {} rows; the manifest of {} records {want}",
                        have.map(|h| h.to_string()).unwrap_or("no".into()),
                        m.id
                    ),
                ))
            }
        }
    }
    Ok((tables, rows))
}
