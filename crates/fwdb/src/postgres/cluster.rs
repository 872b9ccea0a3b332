//! `PgCluster`: a pool per server and the router between them (architecture
//! 4.2 and 8.2). Writes and transactions go to the primary; reads go to the
//! replicas that the probe (probe.rs) finds healthy and close enough behind.

use super::conn::Client;
use super::connect::ConnectTarget;
use super::executor::{Actor, Consistency, Executor, Lsn, Params};
use super::observe::QueryKind;
use super::pool::{query_cached, PgConn, PgPool, ReadConn};
use super::replica_health::{HealthCell, ReplicaHealth};
use super::shapes::{Lane, ReadHint, Shape, Shapes};
use crate::config::{PgHost, PostgresConfig};
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;
use tokio_postgres::Row;

/// The PostgreSQL servers of one configuration, pooled and routed. Cheap to
/// clone; clones share pools and background tasks, which stop when the last
/// clone is dropped. Each handle keeps track of its own writes, for
/// [`Consistency::ReadOwnWrites`] ([`read_your_writes`](Self::read_your_writes));
/// [`session`](Self::session) makes a handle with a fresh record.
#[derive(Clone)]
pub struct PgCluster {
    pub(crate) inner: Arc<Inner>,
    own: Arc<OwnWrites>,
    actor: Option<Actor>,
    statement_timeout: Option<std::time::Duration>,
    pub(crate) hint: ReadHint,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("primary", &self.inner.cfg.primary)
            .field("replicas", &self.inner.cfg.replicas)
            .finish()
    }
}

/// Where a checkout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Primary,
    Replica(usize),
}

/// What a handle knows about its own writes. A write only counts itself: no
/// statement is added to it. The WAL position covering the writes is asked of
/// the primary when a read-your-writes read needs it and the count moved
/// since the last time (one round trip per write-then-read, none per write).
#[derive(Default)]
struct OwnWrites {
    /// Writes and commits finished through this handle.
    done: AtomicU64,
    /// The value `done` had when `lsn` was last read from the primary.
    covered: AtomicU64,
    /// A WAL position at or after the commit of the first `covered` writes.
    lsn: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) cfg: PostgresConfig,
    pub(crate) primary: PgPool,
    pub(crate) replicas: Vec<Replica>,
    pub(crate) primary_state: Mutex<PrimaryState>,
    /// `primary_state.up`, readable without the lock: a checkout while the
    /// primary is up takes no lock (set only with `primary_state` held).
    primary_up: AtomicBool,
    pub(crate) rr: AtomicUsize,
    pub(crate) reads_primary: AtomicU64,
    pub(crate) read_retries: AtomicU64,
    pub(crate) tx_retries: AtomicU64,
    pub(crate) drains: AtomicU64,
    pub(crate) writes_unavailable: AtomicU64,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) observers: super::observe::Observers,
    pub(crate) shapes: Shapes,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

pub(crate) struct PrimaryState {
    pub(crate) up: bool,
    pub(crate) reason: Option<String>,
    pub(crate) last_attempt: Option<Instant>,
    pub(crate) server: Option<String>,
    /// The primary's `pg_current_wal_lsn()` at the last probe.
    pub(crate) lsn: Option<Lsn>,
}

pub(crate) struct Replica {
    pub(crate) host: PgHost,
    pub(crate) pool: PgPool,
    pub(crate) outstanding: AtomicUsize,
    pub(crate) reads: AtomicU64,
    pub(crate) health: HealthCell,
    /// Woken when the replica is ejected, so reads in flight on it stop
    /// waiting for a server that may never answer (a stopped or cut-off one
    /// cannot even run out its statement_timeout) and go elsewhere.
    pub(crate) ejected_signal: tokio::sync::Notify,
}

pub(crate) use super::replica_health::lock;

impl PgCluster {
    /// Builds the pools, opens `min_size` connections to the primary (an
    /// error when no configured primary host accepts writes) and to each
    /// reachable replica, probes every server once, and starts the probe and
    /// maintenance tasks on the current runtime.
    pub async fn connect(cfg: &PostgresConfig) -> Result<PgCluster> {
        let primary = PgPool::new(cfg, ConnectTarget::Primary, "primary".into())?;
        let mut replicas = Vec::new();
        for (i, host) in cfg.replicas.iter().enumerate() {
            replicas.push(Replica {
                host: host.clone(),
                pool: PgPool::new(cfg, ConnectTarget::Replica(i), format!("replica {i} ({host})"))?,
                outstanding: AtomicUsize::new(0),
                reads: AtomicU64::new(0),
                health: HealthCell::new(
                    ReplicaHealth { in_recovery: true, ..Default::default() },
                    (&cfg.routing).into(),
                ),
                ejected_signal: tokio::sync::Notify::new(),
            });
        }
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            primary,
            replicas,
            primary_state: Mutex::new(PrimaryState {
                up: true,
                reason: None,
                last_attempt: None,
                server: None,
                lsn: None,
            }),
            primary_up: AtomicBool::new(true),
            rr: AtomicUsize::new(0),
            reads_primary: AtomicU64::new(0),
            read_retries: AtomicU64::new(0),
            tx_retries: AtomicU64::new(0),
            drains: AtomicU64::new(0),
            writes_unavailable: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            observers: Default::default(),
            shapes: Shapes::new(cfg.pool.slow_read),
        });
        inner.primary.fill().await?;
        let fills = inner.replicas.iter().map(|r| r.pool.fill());
        for (i, r) in futures::future::join_all(fills).await.into_iter().enumerate() {
            if let Err(e) = r {
                tracing::warn!(replica = i, error = %e, "replica unreachable at start");
                inner.eject(i, format!("unreachable at start: {e}"));
            }
        }
        let mut probe = super::probe::Prober::new(cfg.clone(), inner.replicas.len());
        probe.round(&inner, true).await;
        let tasks = vec![
            tokio::spawn(probe.run(Arc::downgrade(&inner))),
            tokio::spawn(super::probe::maintenance(Arc::downgrade(&inner))),
        ];
        *lock(&inner.tasks) = tasks;
        Ok(PgCluster { inner, own: Arc::default(), actor: None, statement_timeout: None, hint: ReadHint::Auto })
    }

    /// A handle on the same pools with its own record of writes (for
    /// [`Consistency::ReadOwnWrites`]).
    pub fn session(&self) -> PgCluster {
        PgCluster { own: Arc::default(), ..self.clone() }
    }

    /// A handle whose [`Executor::actor`] is `actor` (same pools, same record of writes).
    /// Its writes run with `fwdb.actor` set (SET LOCAL), so triggers see it.
    pub fn with_actor(&self, actor: Actor) -> PgCluster {
        PgCluster { actor: Some(actor), ..self.clone() }
    }

    /// A handle whose reads and writes run with this `statement_timeout`
    /// instead of `postgres.statement_timeout` (SET LOCAL in a transaction of
    /// their own, pipelined: no extra round trip). For a transaction, use
    /// `TxOptions::statement_timeout`.
    pub fn with_statement_timeout(&self, timeout: std::time::Duration) -> PgCluster {
        PgCluster { statement_timeout: Some(timeout), ..self.clone() }
    }

    /// What must precede a statement of this handle, if anything.
    fn prelude(&self, write: bool) -> Option<String> {
        let actor = self.actor.filter(|_| write);
        if actor.is_none() && self.statement_timeout.is_none() {
            return None;
        }
        let mut sql = String::from(if write { "BEGIN" } else { "BEGIN READ ONLY" });
        if let Some(a) = actor {
            // A Uuid's text form is hex and dashes: nothing to escape.
            sql.push_str(&format!("; SELECT set_config('fwdb.actor', '{}', true)", a.0));
        }
        if let Some(d) = self.statement_timeout {
            sql.push_str(&format!("; SET LOCAL statement_timeout = {}", d.as_millis()));
        }
        Some(sql)
    }

    /// The entry of `sql`'s shape and the lane a read of it takes: a read
    /// with a prelude never shares (`postgres.pool.multiplex`).
    fn lane(&self, sql: &str) -> (Shape<'_>, Lane) {
        let (shape, lane) = self.inner.shapes.lane(sql, self.hint);
        (shape, if self.statement_timeout.is_none() { lane } else { Lane::Own })
    }

    /// Runs a read on `conn`, wrapped in this handle's prelude when it has one.
    async fn run_on(&self, conn: &Client, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        match self.prelude(false) {
            None => query_cached(conn, sql, params, true).await,
            // Boxed, as the other rare paths of a statement: a future is as
            // large as its largest path and is copied whole on each await.
            Some(prelude) => Box::pin(with_prelude(conn, &prelude, sql, params)).await,
        }
    }

    /// A WAL position at or after the commit of every write and transaction
    /// made through this handle (`Lsn(0)` before any). Asks the primary
    /// (one round trip) when there were writes since it last did.
    pub async fn last_write_lsn(&self) -> Result<Lsn> {
        let done = self.own.done.load(Ordering::Acquire);
        if done > self.own.covered.load(Ordering::Acquire) {
            // Read after those writes were acknowledged, so it is at or past
            // their commit records (with synchronous_commit on, flushed).
            let lsn = self.inner.current_lsn().await?;
            self.own.lsn.fetch_max(lsn.0, Ordering::AcqRel);
            self.own.covered.fetch_max(done, Ordering::AcqRel);
        }
        Ok(Lsn(self.own.lsn.load(Ordering::Acquire)))
    }

    /// [`Consistency::ReadOwnWrites`]: reads through this handle see its own
    /// writes, from a replica that has replayed them or else the primary.
    pub fn read_your_writes(&self) -> Consistency {
        Consistency::ReadOwnWrites
    }

    /// Counts a write or commit (finished or failed: a failed one may have
    /// committed before its connection broke, and counting costs only an
    /// extra position lookup).
    pub(crate) fn note_write(&self) {
        self.own.done.fetch_add(1, Ordering::AcqRel);
    }

    /// `ReadOwnWrites` as a position, or `Strong` when no replica could
    /// serve it anyway (no lookup then); other levels as they are.
    async fn resolve(&self, consistency: Consistency) -> Result<Consistency> {
        if consistency != Consistency::ReadOwnWrites {
            return Ok(consistency);
        }
        if self.inner.pick(Consistency::ReadYourWrites(Lsn(0)), &[]).is_none() {
            return Ok(Consistency::Strong);
        }
        Ok(Consistency::ReadYourWrites(self.last_write_lsn().await?))
    }

    /// The configuration the cluster was built from.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.cfg
    }

    /// A connection of one pool, for work the router does not cover.
    pub async fn checkout(&self, route: Route) -> Result<PgConn> {
        match route {
            Route::Primary => Ok(PgConn(self.inner.primary_conn().await?)),
            Route::Replica(i) => {
                let r = self.inner.replicas.get(i).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!("postgres.replicas has no entry {i} ({} configured)", self.inner.replicas.len()),
                    )
                })?;
                Ok(PgConn(r.pool.get().await?))
            }
        }
    }

    /// Where a read with `consistency` would go now. `ReadOwnWrites` with
    /// writes not yet located (no read since them) answers `Primary`: this
    /// does not ask the primary where they are.
    pub fn route_for(&self, consistency: Consistency) -> Route {
        let consistency = match consistency {
            Consistency::ReadOwnWrites
                if self.own.done.load(Ordering::Acquire) > self.own.covered.load(Ordering::Acquire) =>
            {
                return Route::Primary
            }
            Consistency::ReadOwnWrites => Consistency::ReadYourWrites(Lsn(self.own.lsn.load(Ordering::Acquire))),
            c => c,
        };
        match self.inner.pick(consistency, &[]) {
            Some(i) => Route::Replica(i),
            None => Route::Primary,
        }
    }

    /// Stops the background tasks and closes every pooled connection.
    /// Other clones fail afterwards.
    pub fn close(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        self.inner.primary.drain();
        for r in &self.inner.replicas {
            r.pool.drain();
        }
    }

    async fn route_read(&self, sql: &str, params: Params<'_>, consistency: Consistency) -> Result<Vec<Row>> {
        let inner = &self.inner;
        let consistency = match consistency {
            Consistency::ReadOwnWrites => Box::pin(self.resolve(consistency)).await?,
            c => c,
        };
        let (shape, lane) = self.lane(sql);
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let pick = if tried.len() as u32 >= inner.cfg.routing.read_retries {
                None
            } else {
                inner.pick(consistency, &tried)
            };
            let Some(i) = pick else {
                inner.reads_primary.fetch_add(1, Ordering::Relaxed);
                let conn = inner.primary_read_conn(shape, lane).await?;
                let start = inner.observers.start();
                let r = self.run_on(&conn, sql, params).await;
                inner.observers.finish(start, Route::Primary, QueryKind::Read, sql, &r);
                if let Err(e) = &r {
                    inner.check_primary_error(e);
                }
                return r;
            };
            let r = &inner.replicas[i];
            // Registered before the read starts: an ejection from here on wakes it.
            let ejected = r.ejected_signal.notified();
            r.outstanding.fetch_add(1, Ordering::AcqRel);
            let read = async {
                let conn = r.pool.read_conn(&inner.shapes, shape, lane).await?;
                let start = inner.observers.start();
                let res = self.run_on(&conn, sql, params).await;
                inner.observers.finish(start, Route::Replica(i), QueryKind::Read, sql, &res);
                res
            };
            // A read is idempotent: abandoning it on an ejected replica and
            // running it elsewhere is safe.
            let res = tokio::select! {
                res = read => Some(res),
                () = ejected => None,
            };
            r.outstanding.fetch_sub(1, Ordering::AcqRel);
            let Some(res) = res else {
                tracing::warn!(replica = %r.host, "replica ejected while a read was in flight on it; retrying elsewhere");
                inner.read_retries.fetch_add(1, Ordering::Relaxed);
                tried.push(i);
                continue;
            };
            match res {
                Ok(rows) => {
                    r.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(rows);
                }
                Err(e) if server_lost(&e) => {
                    tracing::warn!(replica = %r.host, error = %e, "replica lost during a read; ejected, retrying elsewhere");
                    inner.eject(i, format!("lost during a read: {e}"));
                    inner.read_retries.fetch_add(1, Ordering::Relaxed);
                    tried.push(i);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn route_write(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let inner = &self.inner;
        let conn = inner.primary_conn().await?;
        let start = inner.observers.start();
        let res = match self.prelude(true) {
            None => {
                async {
                    let st = conn.prepare_cached(sql).await?;
                    Ok(conn.query(&st, params).await?)
                }
                .await
            }
            Some(begin) => Box::pin(with_prelude(&conn, &begin, sql, params)).await,
        };
        inner.observers.finish(start, Route::Primary, QueryKind::Write, sql, &res);
        self.note_write();
        if let Err(e) = &res {
            inner.check_primary_error(e);
        }
        res
    }

    /// Runs `f` in a transaction on the primary; see [`super::tx`].
    pub async fn transaction<T, F, Fut>(&self, opts: super::tx::TxOptions, f: F) -> Result<T>
    where
        F: FnMut(super::tx::Tx) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        super::tx::run(self, opts, f).await
    }
}

impl Inner {
    /// A primary connection; fails at once while the primary is known down
    /// and was tried less than `primary_retry_interval` ago.
    pub(crate) async fn primary_conn(&self) -> Result<super::pool::Object> {
        self.on_primary(self.primary.get()).await
    }

    /// [`primary_conn`](Self::primary_conn) for a read, shared when its `lane` says so.
    async fn primary_read_conn<'a>(&'a self, shape: Shape<'a>, lane: Lane) -> Result<ReadConn<'a>> {
        self.on_primary(self.primary.read_conn(&self.shapes, shape, lane)).await
    }

    /// Runs `get`, a checkout of the primary pool, with the primary's state:
    /// refused while it is down and was tried lately, marked up or down by the outcome.
    async fn on_primary<T>(&self, get: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        if !self.primary_up.load(Ordering::Acquire) {
            self.may_try_primary()?;
        }
        match get.await {
            Ok(c) => {
                if !self.primary_up.load(Ordering::Acquire) {
                    let mut st = lock(&self.primary_state);
                    if !st.up {
                        tracing::info!("a primary accepts writes again");
                        self.set_primary_up(&mut st, true);
                        st.reason = None;
                    }
                }
                Ok(c)
            }
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                self.writes_unavailable.fetch_add(1, Ordering::Relaxed);
                self.primary_down(e.to_string());
                // The next try is an interval after this one ended, not began.
                lock(&self.primary_state).last_attempt = Some(Instant::now());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The slow path of a checkout while the primary is down: an error if it
    /// was tried less than `primary_retry_interval` ago, else the attempt is noted.
    fn may_try_primary(&self) -> Result<()> {
        let mut st = lock(&self.primary_state);
        if st.up {
            return Ok(());
        }
        if st.last_attempt.is_some_and(|t| t.elapsed() < self.cfg.routing.primary_retry_interval) {
            self.writes_unavailable.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "no PostgreSQL primary among {}: {}",
                    hosts(&self.cfg.primary),
                    st.reason.clone().unwrap_or_else(|| "down".into())
                ),
            ));
        }
        st.last_attempt = Some(Instant::now());
        Ok(())
    }

    /// Sets `up` and its lock-free copy together (`st` is `primary_state`, held).
    pub(crate) fn set_primary_up(&self, st: &mut PrimaryState, up: bool) {
        st.up = up;
        self.primary_up.store(up, Ordering::Release);
    }

    /// The primary's `pg_current_wal_lsn()` now.
    async fn current_lsn(&self) -> Result<Lsn> {
        let conn = self.primary_conn().await?;
        let rows = query_cached(&conn, "SELECT pg_current_wal_lsn()::text", &[], true).await;
        if let Err(e) = &rows {
            self.check_primary_error(e);
        }
        let text: Option<String> = rows?.first().map(|r| r.try_get(0)).transpose()?;
        text.as_deref().and_then(Lsn::parse).ok_or_else(|| {
            Error::new(ErrorKind::Internal, format!("pg_current_wal_lsn() gave {text:?}, not a position"))
        })
    }

    /// After an error on a primary connection: a lost server or a read-only
    /// one (demoted, 25006) means the primary is gone.
    pub(crate) fn check_primary_error(&self, e: &Error) {
        if server_lost(e) || e.code().is_some_and(crate::error::pg::is_read_only) {
            self.primary_down(e.to_string());
        }
    }

    pub(crate) fn primary_down(&self, reason: String) {
        let mut st = lock(&self.primary_state);
        if st.up {
            tracing::warn!(%reason, "primary lost; its pooled connections are dropped");
            self.set_primary_up(&mut st, false);
            st.last_attempt = Some(Instant::now());
            self.drains.fetch_add(1, Ordering::Relaxed);
            self.primary.drain();
        }
        st.reason = Some(reason);
    }
}

/// The server is gone (not the statement's fault): the connection closed,
/// an I/O error, a connection-class SQLSTATE, or a shutdown.
pub(crate) fn server_lost(e: &Error) -> bool {
    if e.kind() == ErrorKind::Unavailable {
        return true;
    }
    if let Some(code) = e.code() {
        return crate::error::pg::is_server_gone(code);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        if let Some(pg) = s.downcast_ref::<tokio_postgres::Error>() {
            if pg.is_closed() {
                return true;
            }
        }
        if s.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cur = s.source();
    }
    false
}

fn hosts(h: &[PgHost]) -> String {
    h.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl Executor for PgCluster {
    async fn read(&self, sql: &str, params: Params<'_>, consistency: Consistency) -> Result<Vec<Row>> {
        self.route_read(sql, params, consistency).await
    }

    async fn write(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.route_write(sql, params).await
    }

    fn actor(&self) -> Option<Actor> {
        self.actor
    }
}

/// `sql` in a transaction of its own after `prelude` (BEGIN and SET LOCALs):
/// an actor must be visible to triggers (`current_setting('fwdb.actor',
/// true)`) and a timeout must apply to this statement alone, without leaking
/// to the connection's next user. The three requests are sent together
/// (tokio-postgres pipelines them in this order): no extra round trip.
async fn with_prelude(conn: &Client, prelude: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
    let st = conn.prepare_cached(sql).await?;
    let (begin, rows, end) =
        futures::join!(conn.batch_execute(prelude), conn.query(&st, params), conn.batch_execute("COMMIT"));
    begin?;
    let rows = rows?;
    end?;
    Ok(rows)
}
