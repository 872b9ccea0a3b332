//! What the cluster reports about itself, for the health and metrics issue.

use super::executor::Consistency;
use super::pool::PoolStatus;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The state of a [`PgCluster`](super::PgCluster): pools, router, lag.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub primary: PrimaryStatus,
    pub replicas: Vec<ReplicaStatus>,
    /// Reads served by the primary (Strong, read-your-writes not yet replayed,
    /// or no replica qualified).
    pub reads_primary: u64,
    /// Reads that lost their replica and were run again elsewhere.
    pub read_retries: u64,
    /// Transactions run again after 40001 / 40P01.
    pub tx_retries: u64,
    /// The read shapes that took the most server time, with their time
    /// estimate and lane (postgres/shapes.rs), at most [`TOP_SHAPES`].
    pub shapes: Vec<super::ShapeStatus>,
}

/// Shapes in [`ClusterStatus::shapes`]: enough for the heavy hitters, few
/// enough to bound the metrics' label values.
pub const TOP_SHAPES: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct PrimaryStatus {
    /// The configured hosts, in the order they are tried.
    pub hosts: Vec<String>,
    /// `addr:port` of the server that accepted writes at the last probe.
    pub server: Option<String>,
    /// False while no host accepts writes (writes fail fast with `Unavailable`).
    pub up: bool,
    /// Why it is down, when it is.
    pub down_reason: Option<String>,
    /// Times the pool was drained because the primary was lost or changed.
    pub drains: u64,
    /// Writes that failed with `Unavailable` (no primary).
    pub writes_unavailable: u64,
    pub pool: PoolStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub host: String,
    /// Left out of routing (failed probes or a lost connection) until readmitted.
    pub ejected: bool,
    /// Why it is ejected or skipped, if it is.
    pub reason: Option<String>,
    /// Gets `Eventual` reads now (not ejected, a standby, within the lag limits).
    pub eligible: bool,
    pub replay_lsn: Option<String>,
    /// `pg_wal_lsn_diff(primary's pg_current_wal_lsn(), pg_last_wal_replay_lsn())` at the last probe.
    pub lag_bytes: Option<u64>,
    /// Age of the last replayed transaction while behind (0 when caught up).
    pub lag_seconds: Option<f64>,
    /// Reads served.
    pub reads: u64,
    /// Reads running now.
    pub outstanding: usize,
    pub pool: PoolStatus,
}

/// A cumulative histogram of durations, in the Prometheus sense.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DurationHistogram {
    /// (upper bound in seconds, observations at or below it), bounds ascending;
    /// the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl super::PgCluster {
    /// Pools, router and lag numbers.
    pub fn status(&self) -> ClusterStatus {
        let i = &self.inner;
        let ps = i.primary_state.lock().unwrap_or_else(|p| p.into_inner());
        let primary = PrimaryStatus {
            hosts: i.cfg.primary.iter().map(ToString::to_string).collect(),
            server: ps.server.clone(),
            up: ps.up,
            down_reason: ps.reason.clone(),
            drains: i.drains.load(Ordering::Relaxed),
            writes_unavailable: i.writes_unavailable.load(Ordering::Relaxed),
            pool: i.primary.status(),
        };
        drop(ps);
        let replicas = i
            .replicas
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let why_not = i.eligible(n, Consistency::Eventual).err();
                let eligible = why_not.is_none();
                let h = r.health.read();
                let reason = why_not;
                ReplicaStatus {
                    host: r.host.to_string(),
                    ejected: h.ejected,
                    reason,
                    eligible,
                    replay_lsn: h.replay_lsn.map(|l| l.to_string()),
                    lag_bytes: h.lag_bytes,
                    lag_seconds: h.lag_seconds,
                    reads: r.reads.load(Ordering::Relaxed),
                    outstanding: r.outstanding.load(Ordering::Relaxed),
                    pool: r.pool.status(),
                }
            })
            .collect();
        ClusterStatus {
            primary,
            replicas,
            reads_primary: i.reads_primary.load(Ordering::Relaxed),
            read_retries: i.read_retries.load(Ordering::Relaxed),
            tx_retries: i.tx_retries.load(Ordering::Relaxed),
            shapes: i.shapes.top(TOP_SHAPES),
        }
    }
}
