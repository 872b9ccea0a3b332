//! The PostgreSQL backend.
//!
//! Two connections, on purpose. The advisory lock is a *session* lock taken
//! on a connection that then sits idle, never inside a transaction; the
//! migrations run on the other one. CREATE INDEX CONCURRENTLY waits for
//! every transaction with an older snapshot in the database to finish: had
//! the lock been taken with pg_advisory_xact_lock, or had the lock holder's
//! own transaction stayed open, the index build would wait for its own
//! runner for ever (Flyway's well-known deadlock). Waiting runners poll with
//! pg_try_advisory_lock, each poll a short statement, rather than block in
//! pg_advisory_lock: a blocked statement keeps its snapshot open, which the
//! index build would wait for, while that runner waits for the lock.

use std::time::Duration;

use chrono::Utc;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{Client, Row};

use super::engine::{emit, Backend, Event, EventSink};
use super::history::{HistoryEntry, Outcome};
use super::source::{Script, Store};
use super::sql::{position_to_line, split, Statement};
use crate::error::{Error, ErrorKind, Result};

/// The advisory lock key: "fwdbmigr" in ASCII. Advisory locks are per
/// database, so each database migrates independently.
pub(crate) const LOCK_KEY: i64 = 0x6677_6462_6d69_6772;
const POLL: Duration = Duration::from_millis(200);
const REPORT_EVERY: u32 = 50; // polls between two "still waiting" events (10 s)

pub(crate) struct PgBackend<'a> {
    lock: &'a Client,
    conn: &'a Client,
}

impl<'a> PgBackend<'a> {
    pub(crate) fn new(lock: &'a Client, conn: &'a Client) -> Self {
        PgBackend { lock, conn }
    }

    /// "pid 1234 (fwdb, 10.0.0.7) since 12:00:01", for the waiting message.
    async fn lock_holder(&self) -> String {
        let sql = "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), \
                   to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ') \
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                   WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND l.classid::text::bigint = $1 AND l.objid::text::bigint = $2 LIMIT 1";
        let (hi, lo) = (LOCK_KEY >> 32, LOCK_KEY & 0xffff_ffff);
        match self.lock.query_opt(sql, &[&hi, &lo]).await {
            Ok(Some(r)) => format!(
                "pid {} ({}, {}) connected since {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, Option<String>>(3).unwrap_or_default()
            ),
            _ => "another runner".into(),
        }
    }

    async fn exec(&self, script: &Script, stmt: &Statement<'_>, note: &str) -> Result<()> {
        self.conn.batch_execute(stmt.text).await.map_err(|e| statement_error(script, stmt, e, note))
    }
}

impl Backend for PgBackend<'_> {
    fn store(&self) -> Store {
        Store::Postgres
    }

    async fn lock(&self, events: &Option<EventSink>) -> Result<()> {
        let mut polls = 0u32;
        loop {
            let got: bool = self.lock.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]).await?.get(0);
            if got {
                emit(events, Event::LockAcquired { store: Store::Postgres });
                return Ok(());
            }
            if polls.is_multiple_of(REPORT_EVERY) {
                emit(events, Event::WaitingForLock { store: Store::Postgres, holder: self.lock_holder().await });
            }
            polls = polls.wrapping_add(1);
            tokio::time::sleep(POLL).await;
        }
    }

    async fn unlock(&self) -> Result<()> {
        self.lock.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await?;
        Ok(())
    }

    fn check_lock(&self) -> Result<()> {
        if self.lock.is_closed() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "lost the connection holding the migration lock; stopping before the next migration",
            ));
        }
        Ok(())
    }

    async fn ensure_history(&self) -> Result<()> {
        self.conn.batch_execute(HISTORY_DDL).await?;
        Ok(())
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let exists: bool =
            self.conn.query_one("SELECT to_regclass('fwdb_migrations.history') IS NOT NULL", &[]).await?.get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .conn
            .query(
                "SELECT seq, version, name, checksum, outcome, reason, applied_at, applied_by, duration_ms, error \
                 FROM fwdb_migrations.history ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn record(&self, e: &HistoryEntry) -> Result<()> {
        insert(self.conn, e).await
    }

    fn is_atomic(&self, script: &Script) -> bool {
        !script.no_transaction
    }

    async fn run_atomic(&self, script: &Script, mut entry: HistoryEntry) -> Result<()> {
        self.conn.batch_execute("BEGIN").await?;
        let result = async {
            for stmt in split(&script.text) {
                self.exec(script, &stmt, "rolled back: nothing of this migration was applied").await?;
            }
            entry.duration_ms = (Utc::now() - entry.applied_at).num_milliseconds();
            insert(self.conn, &entry).await?;
            self.conn.batch_execute("COMMIT").await.map_err(|e| {
                Error::new(
                    ErrorKind::Migration,
                    format!("{}: COMMIT failed (a deferred constraint?); rolled back", script.path),
                )
                .with_source(e)
            })
        }
        .await;
        if result.is_err() && !self.conn.is_closed() {
            // Harmless if COMMIT already ended the transaction.
            let _ = self.conn.batch_execute("ROLLBACK").await;
        }
        result
    }

    async fn run_plain(&self, script: &Script) -> Result<()> {
        for stmt in split(&script.text) {
            self.exec(script, &stmt, "outside a transaction").await?;
        }
        Ok(())
    }

    /// INVALID indexes: what a failed or killed CREATE INDEX CONCURRENTLY
    /// leaves behind. A retry with IF NOT EXISTS would keep the broken index.
    async fn leftovers(&self) -> Result<Vec<String>> {
        let rows = self
            .conn
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                format!("INVALID index {name}: DROP INDEX CONCURRENTLY IF EXISTS {name};")
            })
            .collect())
    }
}

const HISTORY_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS fwdb_migrations;
CREATE TABLE IF NOT EXISTS fwdb_migrations.history (
    seq         bigint PRIMARY KEY,
    version     bigint NOT NULL,
    name        text NOT NULL,
    checksum    text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('applied', 'failed', 'started', 'baseline', 'repaired', 'reverted')),
    reason      text,
    applied_at  timestamptz NOT NULL,
    applied_by  text NOT NULL,
    duration_ms bigint NOT NULL,
    error       text
);
COMMENT ON TABLE fwdb_migrations.history IS 'fwdb migrate: one row per event; the latest row of a version is its state';
";

async fn insert(conn: &Client, e: &HistoryEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO fwdb_migrations.history \
         (seq, version, name, checksum, outcome, reason, applied_at, applied_by, duration_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, session_user || ' / ' || $8, $9, $10)",
        &[
            &e.seq,
            &e.version,
            &e.name,
            &e.checksum,
            &e.outcome.as_str(),
            &e.reason,
            &e.applied_at,
            &e.applied_by,
            &e.duration_ms,
            &e.error,
        ],
    )
    .await?;
    Ok(())
}

fn entry_from_row(r: &Row) -> Result<HistoryEntry> {
    let outcome: String = r.try_get(4)?;
    Ok(HistoryEntry {
        seq: r.try_get(0)?,
        version: r.try_get(1)?,
        name: r.try_get(2)?,
        checksum: r.try_get(3)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| Error::new(ErrorKind::Migration, format!("history has an unknown outcome {outcome:?}")))?,
        reason: r.try_get(5)?,
        applied_at: r.try_get(6)?,
        applied_by: r.try_get(7)?,
        duration_ms: r.try_get(8)?,
        error: r.try_get(9)?,
    })
}

/// "file:line: ... statement" plus, through the source (fwdb::Error's
/// Display appends it), the server's message and SQLSTATE. The line is where the server points (a syntax
/// error, an unknown column), else the statement's first line.
fn statement_error(script: &Script, stmt: &Statement<'_>, e: tokio_postgres::Error, note: &str) -> Error {
    let line = match e.as_db_error().and_then(|d| d.position()) {
        Some(ErrorPosition::Original(p)) => position_to_line(&script.text, stmt.offset, stmt.text, *p),
        _ => stmt.line,
    };
    let mut snippet: String = stmt.text.lines().next().unwrap_or_default().chars().take(80).collect();
    if stmt.text.len() > snippet.len() {
        snippet.push_str(" ...");
    }
    Error::new(
        ErrorKind::Migration,
        format!("{}:{line}: in the statement starting on line {} ({note}): {snippet}", script.path, stmt.line),
    )
    .with_source(e)
}
