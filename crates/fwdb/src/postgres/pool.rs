//! One connection pool per server, on deadpool-postgres (docs/pool-choice.md
//! says why). deadpool has no minimum size, no idle timeout and no maximum
//! lifetime of its own: [`PgPool::maintain`] (run by the cluster's
//! maintenance task) and a `pre_recycle` hook add them.

use super::conn::{Client, Manager};
use super::connect::{driver_config, ConnectTarget};
use super::mux::{Choice, Shared, SharedConn};
use super::shapes::{Lane, Shape, Shapes};
use super::status::DurationHistogram;
use super::tls;
use crate::config::PostgresConfig;
use crate::error::{Error, ErrorKind, Result};
use deadpool::managed::{Hook, HookError, TimeoutType, Timeouts};
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

type Pool = deadpool::managed::Pool<Manager>;
type PoolError = deadpool::managed::PoolError<tokio_postgres::Error>;
/// A checked-out connection; back in its pool when dropped.
pub(crate) type Object = deadpool::managed::Object<Manager>;

/// Numbers of one pool, for health and metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStatus {
    pub max_size: usize,
    /// Connections open (idle + in use).
    pub size: usize,
    pub idle: usize,
    pub in_use: usize,
    /// Callers waiting for a connection right now.
    pub waiting: usize,
    /// Checkouts that gave up after `acquire_timeout`, since start.
    pub timeouts: u64,
    /// Time spent in checkouts (waiting, connecting, recycling), since start,
    /// failed ones included.
    pub acquire: DurationHistogram,
    /// Connections (counted in `in_use`) that reads share, pipelined
    /// (`postgres.pool.multiplex`).
    pub shared: usize,
    /// Reads running on those now.
    pub shared_reads: usize,
}

/// Upper bounds of the checkout-time buckets, in nanoseconds: a checkout of
/// an idle connection takes microseconds, a wait up to `acquire_timeout`.
const ACQUIRE_BUCKETS_NS: [u64; 14] = [
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// A histogram of checkout times, updated without a lock (one per checkout).
#[derive(Default)]
struct AcquireTimes {
    /// Per bucket of [`ACQUIRE_BUCKETS_NS`], not cumulative; the last counts what exceeds them all.
    buckets: [AtomicU64; ACQUIRE_BUCKETS_NS.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl AcquireTimes {
    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = ACQUIRE_BUCKETS_NS.iter().position(|b| ns <= *b).unwrap_or(ACQUIRE_BUCKETS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DurationHistogram {
        let mut cum = 0;
        let buckets = ACQUIRE_BUCKETS_NS
            .iter()
            .zip(&self.buckets)
            .map(|(le, n)| {
                cum += n.load(Ordering::Relaxed);
                (*le as f64 / 1e9, cum)
            })
            .collect();
        // Read last: `count` then covers at least every bucket read (Prometheus wants +Inf >= each).
        let count = self
            .count
            .load(Ordering::Relaxed)
            .max(cum + self.buckets[ACQUIRE_BUCKETS_NS.len()].load(Ordering::Relaxed));
        DurationHistogram { buckets, count, sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

/// A connection checked out of a pool; back in the pool when dropped.
/// Derefs to [`tokio_postgres::Client`].
pub struct PgConn(pub(crate) Object);

impl super::mux::Conn for Object {
    fn is_closed(&self) -> bool {
        tokio_postgres::Client::is_closed(self)
    }
}

/// The connection a read runs on: its own, or one it shares (mux.rs).
/// Counted in its pool's reads in flight while it lives; when dropped, the
/// time the server spent on the read is added to its shape's estimate.
pub(crate) struct ReadConn<'a> {
    conn: Held,
    /// When the read could start: the checkout done, or the shared connection chosen.
    start: Instant,
    shapes: &'a Shapes,
    shape: Shape<'a>,
    _running: Running<'a>,
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        // Behind others on a shared connection, the server began this read
        // only once the one before it finished: that wait is not the shape's.
        let began = match &self.conn {
            Held::Own(_) => self.start,
            Held::Shared(s) => s.finished(now).max(self.start),
        };
        self.shapes.record(self.shape, now.saturating_duration_since(began));
    }
}

enum Held {
    Own(Object),
    Shared(SharedConn<Object>),
}

impl std::ops::Deref for ReadConn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        match &self.conn {
            Held::Own(o) => o,
            Held::Shared(s) => s,
        }
    }
}

/// One read in flight on a pool, until dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::ops::Deref for PgConn {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.0
    }
}

impl PgConn {
    /// Like `Client::prepare`, from this connection's statement cache.
    pub async fn prepare_cached(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        Ok(self.0.prepare_cached(sql).await?)
    }

    /// Runs `sql` as a cached prepared statement.
    pub async fn query_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        query_cached(&self.0, sql, params, true).await
    }
}

pub(crate) struct PgPool {
    pub(crate) label: String,
    pool: Pool,
    min_size: usize,
    idle_timeout: Duration,
    acquire_timeout: Duration,
    timeouts: AtomicU64,
    /// The pool's timeouts with a zero wait: deadpool's non-blocking checkout.
    no_wait: Timeouts,
    acquire: AcquireTimes,
    /// Connections created before `epoch` + this many nanoseconds are closed
    /// instead of reused; 0: never drained. An atomic, not a lock: the
    /// pre_recycle hook reads it on every return to the pool.
    drained_at: Arc<AtomicU64>,
    epoch: Instant,
    shared: Shared<Object>,
    /// Reads in flight through [`read_conn`](Self::read_conn), shared or not.
    reads: AtomicUsize,
}

impl PgPool {
    /// A pool for `target`; opens nothing yet (see [`fill`](Self::fill)).
    pub(crate) fn new(cfg: &PostgresConfig, target: ConnectTarget, label: String) -> Result<PgPool> {
        let driver = driver_config(cfg, &target)?;
        // The checkout check is conn::Manager's own; deadpool-postgres' is unused.
        let mc = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls::client_config(&cfg.tls)? {
            None => deadpool_postgres::Manager::from_config(driver, NoTls, mc),
            Some(rustls) => deadpool_postgres::Manager::from_config(
                driver,
                tokio_postgres_rustls::MakeRustlsConnect::new(rustls),
                mc,
            ),
        };
        let manager = Manager::new(manager, cfg.routing.verify_on_checkout);
        let drained_at: Arc<AtomicU64> = Arc::default();
        let drained = drained_at.clone();
        let epoch = Instant::now();
        let max_lifetime = cfg.pool.max_lifetime;
        let hosts = match target {
            ConnectTarget::Primary => cfg.primary.len().max(1) as u32,
            _ => 1,
        };
        let timeouts = Timeouts {
            wait: Some(cfg.pool.acquire_timeout),
            // The driver's connect_timeout applies per host.
            create: Some(cfg.connect_timeout * hosts + Duration::from_millis(500)),
            // Only the Verified check talks to the server; the Fast one
            // (`is_closed`) cannot hang, and a timeout there would only arm
            // a timer on every checkout.
            recycle: cfg.routing.verify_on_checkout.then_some(cfg.connect_timeout),
        };
        let no_wait = Timeouts { wait: Some(Duration::ZERO), ..timeouts };
        let pool = Pool::builder(manager)
            .max_size(cfg.pool.max_size as usize)
            // LIFO: the connection used last is hot (its backend's caches and
            // our prepared statements); FIFO spread calls over every cold
            // connection and ran at 0.34-0.51 of raw tokio-postgres at one task
            // (docs/benchmarks.md). It also lets connections above min_size
            // really idle, so idle_timeout can trim them.
            .queue_mode(deadpool::managed::QueueMode::Lifo)
            .timeouts(timeouts)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.age() > max_lifetime {
                    return Err(HookError::message("max_lifetime reached"));
                }
                let drained_ns = drained.load(Ordering::Acquire);
                if drained_ns > 0 && since(epoch, metrics.created) < drained_ns {
                    return Err(HookError::message("pool drained"));
                }
                Ok(())
            }))
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, "building a connection pool").with_source(e))?;
        Ok(PgPool {
            label,
            pool,
            min_size: cfg.pool.min_size as usize,
            idle_timeout: cfg.pool.idle_timeout,
            acquire_timeout: cfg.pool.acquire_timeout,
            timeouts: AtomicU64::new(0),
            no_wait,
            acquire: AcquireTimes::default(),
            drained_at,
            epoch,
            shared: Shared::new(
                cfg.pool.shared_connections() as usize,
                cfg.pool.slow_read,
                cfg.pool.pipeline_depth as usize,
            ),
            reads: AtomicUsize::new(0),
        })
    }

    /// Checks a connection out: `Timeout` after `acquire_timeout`,
    /// `Unavailable` when the server cannot be reached.
    pub(crate) async fn get(&self) -> Result<Object> {
        let start = Instant::now();
        // First without waiting: when a connection is free (the common case)
        // this skips arming the `acquire_timeout` timer, a measurable part of
        // a checkout's CPU cost. Only when none is free do we wait, timed.
        let mut res = self.pool.timeout_get(&self.no_wait).await;
        if matches!(res, Err(PoolError::Timeout(TimeoutType::Wait))) {
            // Boxed: waiting dwarfs an allocation, and this future would
            // otherwise double the size of every checkout's (moved by memcpy).
            res = Box::pin(self.pool.get()).await;
        }
        self.acquire.observe(start.elapsed());
        res.map_err(|e| self.pool_error(e))
    }

    /// A connection for a read of `shape`: a shared one (mux.rs) when its
    /// `lane` says so (it needs no session state of its own and its shape is
    /// fast), `postgres.pool.multiplex` is set and another read is in flight
    /// on this pool; else its own. A lone read gains nothing from
    /// pipelining, and on its own connection it ran about 5 % faster at one
    /// task (docs/benchmarks.md).
    pub(crate) async fn read_conn<'a>(
        &'a self,
        shapes: &'a Shapes,
        shape: Shape<'a>,
        lane: Lane,
    ) -> Result<ReadConn<'a>> {
        let others = self.reads.fetch_add(1, Ordering::AcqRel);
        let running = Running(&self.reads);
        let (conn, start) = if lane == Lane::Own || others == 0 || !self.shared.enabled() {
            let conn = self.get().await?;
            (Held::Own(conn), Instant::now())
        } else {
            let now = Instant::now();
            // The rare paths boxed: this future is copied whole on every await.
            match self.shared.choose(now) {
                Choice::Use(c) => (Held::Shared(c), now),
                Choice::Fill(i, generation) => match Box::pin(self.get()).await {
                    Ok(conn) => {
                        let now = Instant::now();
                        (Held::Shared(self.shared.put(i, generation, conn, now)), now)
                    }
                    Err(e) => {
                        self.shared.unfill(i);
                        return Err(e);
                    }
                },
                Choice::Checkout => (Held::Own(Box::pin(self.get()).await?), Instant::now()),
            }
        };
        Ok(ReadConn { conn, start, shapes, shape, _running: running })
    }

    fn pool_error(&self, e: PoolError) -> Error {
        match e {
            PoolError::Timeout(TimeoutType::Wait) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no free connection to the {} within {:?} (postgres.pool.acquire_timeout)",
                        self.label, self.acquire_timeout
                    ),
                )
            }
            PoolError::Timeout(t) => {
                Error::new(ErrorKind::Unavailable, format!("the {} did not answer in time ({t:?})", self.label))
            }
            PoolError::Backend(e) => {
                let auth = e.code().is_some_and(crate::error::pg::is_auth_failure);
                let kind = if auth { ErrorKind::Config } else { ErrorKind::Unavailable };
                let reason = tls::explain(&e).map(|r| format!(": {r}")).unwrap_or_default();
                Error::new(kind, format!("cannot connect to the {}{reason}", self.label)).with_source(e)
            }
            other => Error::new(ErrorKind::Unavailable, format!("the {} pool: {other}", self.label)),
        }
    }

    /// Opens connections until at least `min_size` are open. Idle ones are
    /// held meanwhile (deadpool creates only when none is free).
    pub(crate) async fn fill(&self) -> Result<()> {
        let st = self.pool.status();
        if st.size >= self.min_size {
            return Ok(());
        }
        let want = (st.available + (self.min_size - st.size)).min(st.max_size);
        let got = futures::future::join_all((0..want).map(|_| self.pool.get())).await;
        let mut first_err = None;
        for r in got {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(self.pool_error(e)),
            None => Ok(()),
        }
    }

    /// Closes idle connections past `idle_timeout` (keeping `min_size`) or
    /// past `max_lifetime`, then refills to `min_size`.
    pub(crate) async fn maintain(&self, max_lifetime: Duration, refill: bool) -> Result<()> {
        let st = self.pool.status();
        let mut removable = st.size.saturating_sub(self.min_size);
        let idle_timeout = self.idle_timeout;
        self.shared.retire(max_lifetime);
        self.pool.retain(|c, m| {
            if c.is_closed() || m.age() > max_lifetime {
                return false;
            }
            if removable > 0 && m.last_used() > idle_timeout {
                removable -= 1;
                return false;
            }
            true
        });
        if refill {
            self.fill().await
        } else {
            Ok(())
        }
    }

    /// Forgets every connection: idle ones are closed now, ones in use when
    /// they come back (after a failover or an ejection).
    pub(crate) fn drain(&self) {
        // +1: a connection created in the very nanosecond of the drain is drained too.
        self.drained_at.store(since(self.epoch, Instant::now()) + 1, Ordering::Release);
        self.shared.drain();
        self.pool.retain(|_, _| false);
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        let shared = self.shared.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            in_use: s.size.saturating_sub(s.available),
            waiting: s.waiting,
            timeouts: self.timeouts.load(Ordering::Relaxed),
            acquire: self.acquire.snapshot(),
            shared: shared.connections,
            shared_reads: shared.reads,
        }
    }
}

/// Nanoseconds from `epoch` to `t` (0 when `t` is earlier).
fn since(epoch: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `sql` as a cached prepared statement. Outside a transaction
/// (`may_retry`), a statement cached before a schema change is prepared again.
pub(crate) async fn query_cached(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    may_retry: bool,
) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await?;
    match c.query(&st, params).await {
        Err(e) if may_retry && stale_statement(&e) => {
            c.forget_statements();
            let st = c.prepare_cached(sql).await?;
            Ok(c.query(&st, params).await?)
        }
        r => Ok(r?),
    }
}

/// 0A000 "cached plan must not change result type", 26000 "prepared statement does not exist".
fn stale_statement(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(crate::error::pg::is_stale_statement)
}
