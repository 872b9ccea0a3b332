//! The background probe: every `probe_interval`, on connections of its own
//! (so a saturated pool cannot starve it), it asks the primary whether it
//! still accepts writes and where its WAL is, and each replica whether it is
//! a standby and what it has replayed. Replicas are ejected and readmitted
//! from these answers; lag is computed from them, never guessed.
//!
//! Also here: the maintenance task (idle timeout, max lifetime, min_size).

use super::cluster::{lock, Inner};
use super::connect::{connect, ConnectTarget};
use super::executor::Lsn;
use crate::config::PostgresConfig;
use std::sync::Weak;
use std::time::Instant;
use tokio_postgres::Client;

pub(crate) struct Prober {
    cfg: PostgresConfig,
    primary: Option<Client>,
    primary_failures: u32,
    replicas: Vec<Option<Client>>,
}

struct ReplicaAnswer {
    in_recovery: bool,
    replay: Option<Lsn>,
    /// now() - pg_last_xact_replay_timestamp(), in seconds.
    replay_age: Option<f64>,
}

impl Prober {
    pub(crate) fn new(cfg: PostgresConfig, replicas: usize) -> Prober {
        Prober { cfg, primary: None, primary_failures: 0, replicas: (0..replicas).map(|_| None).collect() }
    }

    pub(crate) async fn run(mut self, inner: Weak<Inner>) {
        let every = self.cfg.routing.probe_interval;
        loop {
            tokio::time::sleep(every).await;
            let Some(inner) = inner.upgrade() else { return };
            self.round(&inner, false).await;
        }
    }

    /// One probe of every server. `first`: a failure ejects at once.
    pub(crate) async fn round(&mut self, inner: &Inner, first: bool) {
        let timeout = self.cfg.routing.probe_timeout;
        let cfg = &self.cfg;
        // The primary first: the replicas' lag is measured against its LSN.
        let primary_answer = probe_primary(cfg, &mut self.primary, timeout).await;
        match primary_answer {
            Ok((lsn, server)) => {
                self.primary_failures = 0;
                let mut st = lock(&inner.primary_state);
                if st.server.as_ref().is_some_and(|s| *s != server) {
                    tracing::warn!(old = ?st.server, new = %server, "the primary moved; its pooled connections are dropped");
                    inner.drains.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    inner.primary.drain();
                }
                if !st.up {
                    tracing::info!(%server, "the probe found a primary");
                }
                inner.set_primary_up(&mut st, true);
                st.reason = None;
                st.server = Some(server);
                st.lsn = Some(lsn);
            }
            Err((reason, definite)) => {
                self.primary = None;
                self.primary_failures += 1;
                // A demoted primary is down at once; a slow answer only after
                // eject_after_failures in a row (one late probe must not drain the pool).
                if definite || first || self.primary_failures >= cfg.routing.eject_after_failures {
                    inner.primary_down(format!("probe: {reason}"));
                }
            }
        }
        let primary_lsn = lock(&inner.primary_state).lsn;
        let answers = futures::future::join_all(
            self.replicas.iter_mut().enumerate().map(|(i, slot)| probe_replica(cfg, i, slot, timeout)),
        )
        .await;
        let r = &cfg.routing;
        for (i, answer) in answers.into_iter().enumerate() {
            let replica = &inner.replicas[i];
            match answer {
                Err(reason) => {
                    self.replicas[i] = None;
                    let eject = {
                        let mut h = replica.health.write();
                        h.successes = 0;
                        h.failures += 1;
                        h.lag_bytes = None;
                        h.lag_seconds = None;
                        first || h.failures >= r.eject_after_failures
                    };
                    if eject {
                        inner.eject(i, format!("probe: {reason}"));
                    }
                }
                Ok(a) => {
                    let mut h = replica.health.write();
                    h.failures = 0;
                    h.successes += 1;
                    h.in_recovery = a.in_recovery;
                    h.replay_lsn = a.replay;
                    let now = Instant::now();
                    match (a.replay, primary_lsn) {
                        (Some(rep), Some(p)) => {
                            let behind = p.0.saturating_sub(rep.0);
                            h.lag_bytes = Some(behind);
                            if behind == 0 {
                                h.last_caught_up = Some(now);
                                h.lag_seconds = Some(0.0);
                            } else {
                                // An idle primary makes the last replayed
                                // transaction old without any lag: count at most
                                // since this replica was last seen caught up.
                                let since = h.last_caught_up.map(|t| now.duration_since(t).as_secs_f64());
                                let age = a.replay_age.unwrap_or(0.0).max(0.0);
                                h.lag_seconds = Some(match since {
                                    Some(s) => s.min(age),
                                    None => age,
                                });
                            }
                        }
                        _ => {
                            h.lag_bytes = None;
                            h.lag_seconds = None;
                        }
                    }
                    if h.ejected && (first || h.successes >= r.readmit_after_successes) && a.in_recovery {
                        tracing::info!(replica = %replica.host, "replica readmitted");
                        h.ejected = false;
                        h.reason = None;
                    }
                }
            }
        }
    }
}

/// The primary's LSN and `addr:port`; or why not, and whether that is
/// definite (no host accepts writes, or the server is in recovery) rather
/// than a late answer.
async fn probe_primary(
    cfg: &PostgresConfig,
    slot: &mut Option<Client>,
    timeout: std::time::Duration,
) -> Result<(Lsn, String), (String, bool)> {
    let work = async {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(connect(cfg, ConnectTarget::Primary).await.map_err(|e| (e.to_string(), true))?);
        }
        let c = slot.as_ref().expect("just set");
        let row = c
            .query_one(
                "SELECT pg_is_in_recovery(), \
                 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
                 coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port(), 0)",
                &[],
            )
            .await
            .map_err(|e| {
                let e = crate::Error::from(e);
                (e.to_string(), super::cluster::server_lost(&e))
            })?;
        if row.get::<_, bool>(0) {
            return Err(("the primary is in recovery (demoted)".to_string(), true));
        }
        let lsn = row
            .get::<_, Option<String>>(1)
            .and_then(|t| Lsn::parse(&t))
            .ok_or(("no WAL position".to_string(), true))?;
        Ok((lsn, row.get::<_, String>(2)))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err((format!("no answer within {timeout:?}"), false)),
    }
}

async fn probe_replica(
    cfg: &PostgresConfig,
    i: usize,
    slot: &mut Option<Client>,
    timeout: std::time::Duration,
) -> Result<ReplicaAnswer, String> {
    let work = async {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(connect(cfg, ConnectTarget::Replica(i)).await.map_err(|e| e.to_string())?);
        }
        let c = slot.as_ref().expect("just set");
        let row = c
            .query_one(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                 extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
                &[],
            )
            .await
            .map_err(|e| crate::Error::from(e).to_string())?;
        Ok(ReplicaAnswer {
            in_recovery: row.get(0),
            replay: row.get::<_, Option<String>>(1).and_then(|t| Lsn::parse(&t)),
            replay_age: row.get(2),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Trims and refills the pools every `maintenance_interval`.
pub(crate) async fn maintenance(inner: Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => i.cfg.routing.maintenance_interval,
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else { return };
        let lifetime = i.cfg.pool.max_lifetime;
        let up = lock(&i.primary_state).up;
        if let Err(e) = i.primary.maintain(lifetime, up).await {
            tracing::debug!(error = %e, "primary pool refill failed");
        }
        for r in &i.replicas {
            let ejected = r.health.read().ejected;
            if let Err(e) = r.pool.maintain(lifetime, !ejected).await {
                tracing::debug!(replica = %r.host, error = %e, "replica pool refill failed");
            }
        }
    }
}
