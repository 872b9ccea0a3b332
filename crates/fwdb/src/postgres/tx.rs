//! Transactions (architecture 5.1) as a closure:
//!
//! ```no_run
//! # async fn demo(cluster: fwdb::PgCluster, actor: fwdb::Actor, v: i64) -> fwdb::Result<()> {
//! use fwdb::TxOptions;
//! let id = cluster.transaction(TxOptions::default().actor(actor), |tx| async move {
//!     let row = tx.query("INSERT INTO t (v) VALUES ($1) RETURNING id", &[&v]).await?;
//!     tx.savepoint(|tx| async move { tx.execute("UPDATE t SET v = v + 1", &[]).await }).await.ok();
//!     Ok(row[0].get::<_, i64>(0))
//! }).await?;
//! # let _ = id; Ok(()) }
//! ```
//!
//! Commit when the closure returns `Ok`; roll back when it returns `Err`,
//! panics (the panic then continues), or when the whole future is dropped
//! (the connection rolls back in the background before it returns to the
//! pool). A serialization failure (40001) or a deadlock (40P01), from the
//! closure or from COMMIT, runs the closure again on a new transaction, up to
//! `tx_max_attempts`, with exponential backoff and jitter. [`Tx`] is an owned
//! handle (clone it freely; do not keep it after the closure returns).

use super::cluster::{lock, server_lost, Inner, PgCluster, Route};
use super::executor::{Actor, Consistency, Executor, Params};
use super::observe::QueryKind;
use super::pool::query_cached;
use super::pool::Object;
use crate::config::RoutingConfig;
use crate::error::{Error, ErrorKind, Result};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::Row;

/// PostgreSQL's isolation levels (READ UNCOMMITTED is READ COMMITTED there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    #[default]
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl IsolationLevel {
    fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

/// How to run a transaction.
#[derive(Debug, Clone, Default)]
pub struct TxOptions {
    pub isolation: IsolationLevel,
    pub read_only: bool,
    /// Visible to SQL as `current_setting('fwdb.actor', true)` and to repositories as `Executor::actor`.
    pub actor: Option<Actor>,
    /// `SET LOCAL statement_timeout` for this transaction only.
    pub statement_timeout: Option<Duration>,
    /// `None`: `postgres.routing.tx_max_attempts`. 1: never retried.
    pub max_attempts: Option<u32>,
}

impl TxOptions {
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = level;
        self
    }
    pub fn serializable(self) -> Self {
        self.isolation(IsolationLevel::Serializable)
    }
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.statement_timeout = Some(d);
        self
    }
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
}

const ACTIVE: u8 = 0;
const FINISHED: u8 = 1;
const BROKEN: u8 = 2;

/// One transaction on one primary connection. Every statement, reads
/// included, runs on it.
#[derive(Clone)]
pub struct Tx {
    inner: Arc<TxInner>,
}

struct TxInner {
    conn: Option<Object>,
    cluster: Arc<Inner>,
    actor: Mutex<Option<Actor>>,
    state: AtomicU8,
    savepoints: AtomicU32,
    attempt: u32,
    read_only: bool,
}

impl Drop for TxInner {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        match self.state.load(Ordering::Acquire) {
            FINISHED => drop(conn),
            BROKEN => drop(Object::take(conn)),
            _ => match tokio::runtime::Handle::try_current() {
                // Dropped mid-way: roll back before the connection is reused;
                // if that fails, close it (the server then rolls back).
                Ok(h) => {
                    h.spawn(async move {
                        if conn.batch_execute("ROLLBACK").await.is_err() {
                            drop(Object::take(conn));
                        }
                    });
                }
                Err(_) => drop(Object::take(conn)),
            },
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("attempt", &self.inner.attempt).field("actor", &*lock(&self.inner.actor)).finish()
    }
}

impl Tx {
    async fn begin(conn: Object, opts: &TxOptions, cluster: Arc<Inner>, attempt: u32) -> Result<Tx> {
        let mut sql =
            format!("BEGIN ISOLATION LEVEL {}{}", opts.isolation.sql(), if opts.read_only { " READ ONLY" } else { "" });
        if let Some(a) = opts.actor {
            // A Uuid's text form is hex and dashes: nothing to escape.
            sql.push_str(&format!("; SELECT set_config('fwdb.actor', '{}', true)", a.0));
        }
        if let Some(d) = opts.statement_timeout {
            sql.push_str(&format!("; SET LOCAL statement_timeout = {}", d.as_millis()));
        }
        let tx = Tx {
            inner: Arc::new(TxInner {
                conn: Some(conn),
                cluster,
                actor: Mutex::new(opts.actor),
                state: AtomicU8::new(ACTIVE),
                savepoints: AtomicU32::new(0),
                attempt,
                read_only: opts.read_only,
            }),
        };
        if let Err(e) = tx.client().batch_execute(&sql).await {
            let e = tx.fail(e.into());
            tx.inner.state.store(BROKEN, Ordering::Release);
            return Err(e);
        }
        Ok(tx)
    }

    fn conn(&self) -> &super::conn::Client {
        self.inner.conn.as_ref().expect("a live transaction has its connection")
    }

    /// The connection, for what this API does not cover. Do not COMMIT or
    /// ROLLBACK on it.
    pub fn client(&self) -> &tokio_postgres::Client {
        self.conn()
    }

    /// 1 on the first run of the closure, 2 on the first retry...
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    fn check_active(&self) -> Result<()> {
        match self.inner.state.load(Ordering::Acquire) {
            ACTIVE => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Internal,
                "this transaction has ended; a Tx must not be used after its closure returns",
            )),
        }
    }

    /// Notes what an error means for the transaction and the primary.
    fn fail(&self, e: Error) -> Error {
        // 25006 in a READ ONLY transaction is the caller's write, not a demoted primary.
        let demoted = !self.inner.read_only && e.code().is_some_and(crate::error::pg::is_read_only);
        if server_lost(&e) || demoted {
            self.inner.state.store(BROKEN, Ordering::Release);
            self.inner.cluster.check_primary_error(&e);
        }
        e
    }

    /// Runs a statement (as a cached prepared statement) and returns its rows.
    pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.query_as(QueryKind::TxWrite, sql, params).await
    }

    async fn query_as(&self, kind: QueryKind, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.check_active()?;
        self.observed(kind, sql, query_cached(self.conn(), sql, params, false)).await.map_err(|e| self.fail(e))
    }

    /// Times `work` for the cluster's query observers (metrics, slow log):
    /// statements inside transactions are as visible as routed ones.
    async fn observed<T>(
        &self,
        kind: QueryKind,
        sql: &str,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let observers = &self.inner.cluster.observers;
        let start = observers.start();
        let out = work.await;
        observers.finish(start, Route::Primary, kind, sql, &out);
        out
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        self.check_active()?;
        let run = async {
            let st = self.conn().prepare_cached(sql).await?;
            Ok::<_, Error>(self.conn().execute(&st, params).await?)
        };
        self.observed(QueryKind::TxWrite, sql, run).await.map_err(|e| self.fail(e))
    }

    /// Sets the actor for the rest of the transaction (SQL sees it as
    /// `current_setting('fwdb.actor', true)`).
    pub async fn set_actor(&self, actor: Actor) -> Result<()> {
        self.check_active()?;
        let id = actor.0.to_string();
        self.conn()
            .execute("SELECT set_config('fwdb.actor', $1, true)", &[&id])
            .await
            .map_err(|e| self.fail(e.into()))?;
        *lock(&self.inner.actor) = Some(actor);
        Ok(())
    }

    /// `SET LOCAL statement_timeout`: a per-call override of `postgres.statement_timeout`.
    pub async fn set_statement_timeout(&self, d: Duration) -> Result<()> {
        self.check_active()?;
        let sql = format!("SET LOCAL statement_timeout = {}", d.as_millis());
        self.conn().batch_execute(&sql).await.map_err(|e| self.fail(e.into()))
    }

    /// Runs `f` inside a savepoint: released on `Ok`; on `Err` or panic,
    /// rolled back to, leaving the outer transaction's work intact.
    pub async fn savepoint<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Tx) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.check_active()?;
        let name = format!("fwdb_sp_{}", self.inner.savepoints.fetch_add(1, Ordering::AcqRel) + 1);
        self.conn().batch_execute(&format!("SAVEPOINT {name}")).await.map_err(|e| self.fail(e.into()))?;
        let undo = format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}");
        match AssertUnwindSafe(f(self.clone())).catch_unwind().await {
            Ok(Ok(v)) => {
                self.conn()
                    .batch_execute(&format!("RELEASE SAVEPOINT {name}"))
                    .await
                    .map_err(|e| self.fail(e.into()))?;
                Ok(v)
            }
            Ok(Err(e)) => {
                if let Err(u) = self.conn().batch_execute(&undo).await {
                    tracing::warn!(error = %u, "rolling back to a savepoint failed");
                    self.fail(u.into());
                }
                Err(e)
            }
            Err(panic) => {
                let _ = self.conn().batch_execute(&undo).await;
                std::panic::resume_unwind(panic)
            }
        }
    }

    async fn rollback(&self) {
        if self.inner.state.load(Ordering::Acquire) != ACTIVE {
            return;
        }
        match self.conn().batch_execute("ROLLBACK").await {
            Ok(()) => self.inner.state.store(FINISHED, Ordering::Release),
            Err(e) => {
                tracing::debug!(error = %e, "ROLLBACK failed; the connection is closed instead");
                self.inner.state.store(BROKEN, Ordering::Release);
            }
        }
    }

    /// COMMIT. PostgreSQL answers COMMIT in a failed transaction with a
    /// silent ROLLBACK; the `SELECT 1` before it turns that into an error
    /// (25P02) when the closure ignored an error and still returned `Ok`.
    async fn commit(&self) -> Result<()> {
        self.check_active()?;
        let commit = async { Ok::<_, Error>(self.conn().batch_execute("SELECT 1; COMMIT").await?) };
        let res = match self.observed(QueryKind::TxWrite, "COMMIT", commit).await {
            Err(e) if e.code().is_some_and(crate::error::pg::is_in_failed_transaction) => {
                self.rollback().await;
                return Err(Error::new(
                    ErrorKind::Postgres,
                    "the transaction failed earlier (an error inside it was ignored) and was rolled back, not committed",
                )
                .with_source(e));
            }
            other => other,
        };
        // A failed COMMIT ends the transaction too.
        self.inner.state.store(FINISHED, Ordering::Release);
        res.map_err(|e| self.fail(e))
    }
}

impl Executor for Tx {
    async fn read(&self, sql: &str, params: Params<'_>, _: Consistency) -> Result<Vec<Row>> {
        self.query_as(QueryKind::TxRead, sql, params).await
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.query_as(QueryKind::TxWrite, sql, params).await
    }

    fn actor(&self) -> Option<Actor> {
        *lock(&self.inner.actor)
    }
}

/// 40001 serialization_failure, 40P01 deadlock_detected.
fn worth_retrying(e: &Error) -> bool {
    e.code().is_some_and(crate::error::pg::is_serialization_failure)
}

/// `initial * 2^(attempt-1)`, capped, then a uniformly random part of it
/// between half and all (so that two colliding transactions drift apart).
pub(crate) fn backoff(r: &RoutingConfig, attempt: u32) -> Duration {
    let exp = r.tx_backoff_initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(r.tx_backoff_max).as_micros() as u64;
    Duration::from_micros(fastrand::u64(cap / 2..=cap))
}

pub(crate) async fn run<T, F, Fut>(cluster: &PgCluster, opts: TxOptions, mut f: F) -> Result<T>
where
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let inner = &cluster.inner;
    let routing = &inner.cfg.routing;
    let max = opts.max_attempts.unwrap_or(routing.tx_max_attempts).max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = inner.primary_conn().await?;
        let tx = Tx::begin(conn, &opts, inner.clone(), attempt).await?;
        let err = match AssertUnwindSafe(f(tx.clone())).catch_unwind().await {
            Err(panic) => {
                tx.rollback().await;
                drop(tx);
                std::panic::resume_unwind(panic)
            }
            Ok(Err(e)) => {
                tx.rollback().await;
                e
            }
            Ok(Ok(v)) => {
                let res = tx.commit().await;
                if !opts.read_only {
                    // Located only if a read-your-writes read asks (PgCluster::last_write_lsn).
                    cluster.note_write();
                }
                match res {
                    Ok(()) => return Ok(v),
                    Err(e) => e,
                }
            }
        };
        drop(tx);
        if attempt < max && worth_retrying(&err) {
            inner.tx_retries.fetch_add(1, Ordering::Relaxed);
            let wait = backoff(routing, attempt);
            tracing::debug!(attempt, ?wait, error = %err, "transaction retried");
            tokio::time::sleep(wait).await;
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let r = RoutingConfig {
            tx_backoff_initial: Duration::from_millis(10),
            tx_backoff_max: Duration::from_millis(50),
            ..Default::default()
        };
        for _ in 0..100 {
            let b1 = backoff(&r, 1);
            assert!(b1 >= Duration::from_millis(5) && b1 <= Duration::from_millis(10), "{b1:?}");
            let b2 = backoff(&r, 2);
            assert!(b2 >= Duration::from_millis(10) && b2 <= Duration::from_millis(20), "{b2:?}");
            let b9 = backoff(&r, 9);
            assert!(b9 >= Duration::from_millis(25) && b9 <= Duration::from_millis(50), "{b9:?}");
        }
    }
}
