//! What the probe knows of a replica, and whether it may serve a read.
//!
//! The probe writes a replica's health a few times a second at most; the
//! router reads it on every replica read. So the state lives behind a mutex
//! for the writers and the status page, and each writer, when it lets go,
//! publishes the router's two answers into atomics: routing a read takes no
//! lock.

use super::executor::{Consistency, Lsn};
use crate::config::RoutingConfig;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct ReplicaHealth {
    pub(crate) ejected: bool,
    pub(crate) reason: Option<String>,
    pub(crate) failures: u32,
    pub(crate) successes: u32,
    pub(crate) in_recovery: bool,
    pub(crate) replay_lsn: Option<Lsn>,
    pub(crate) lag_bytes: Option<u64>,
    pub(crate) lag_seconds: Option<f64>,
    pub(crate) last_caught_up: Option<Instant>,
}

/// The lag limits of `postgres.routing`, copied so a cell needs no config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LagLimits {
    pub(crate) bytes: u64,
    pub(crate) time: Duration,
}

impl From<&RoutingConfig> for LagLimits {
    fn from(r: &RoutingConfig) -> Self {
        LagLimits { bytes: r.max_replica_lag_bytes, time: r.max_replica_lag }
    }
}

impl ReplicaHealth {
    /// Whether this replica may serve a read of `consistency`; if not, why.
    pub(crate) fn why_not(&self, consistency: Consistency, limits: LagLimits) -> Result<(), String> {
        if self.ejected {
            return Err(self.reason.clone().unwrap_or_else(|| "ejected".into()));
        }
        if !self.in_recovery {
            return Err("not a standby (promoted?)".into());
        }
        match consistency {
            Consistency::Strong => Err("strong reads go to the primary".into()),
            // Turned into a position (`resolve`) before routing.
            Consistency::ReadOwnWrites => Err("own writes not located yet".into()),
            Consistency::ReadYourWrites(lsn) => match self.replay_lsn {
                Some(r) if r >= lsn => Ok(()),
                _ => Err(format!("has not replayed {lsn} yet")),
            },
            Consistency::Eventual => match (self.lag_bytes, self.lag_seconds) {
                (Some(b), _) if b > limits.bytes => Err(format!("lags {b} bytes (max {})", limits.bytes)),
                (_, Some(s)) if s > limits.time.as_secs_f64() => Err(format!("lags {s:.1} s (max {:?})", limits.time)),
                (None, _) => Err("lag not measured yet".into()),
                _ => Ok(()),
            },
        }
    }
}

/// A replica's health and the router's lock-free view of it.
pub(crate) struct HealthCell {
    state: Mutex<ReplicaHealth>,
    limits: LagLimits,
    /// May serve an Eventual read, as of the last write.
    eventual: AtomicBool,
    /// 0: may serve no read; otherwise the replayed position + 1, for
    /// read-your-writes. (A position of u64::MAX, 16 EiB of WAL, is kept as
    /// one less: such a replica would send that one read to the primary.)
    replayed: AtomicU64,
}

impl HealthCell {
    pub(crate) fn new(initial: ReplicaHealth, limits: LagLimits) -> HealthCell {
        let cell = HealthCell {
            state: Mutex::new(initial),
            limits,
            eventual: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
        };
        drop(cell.write());
        cell
    }

    /// For reading only: writes through this guard are not published.
    pub(crate) fn read(&self) -> MutexGuard<'_, ReplicaHealth> {
        lock(&self.state)
    }

    /// For changing; the router sees the change when the guard is dropped.
    pub(crate) fn write(&self) -> HealthWrite<'_> {
        HealthWrite { cell: self, guard: lock(&self.state) }
    }

    /// Whether the replica may serve a read of `consistency`, without a lock.
    /// Agrees with [`ReplicaHealth::why_not`] as of the last write.
    pub(crate) fn serves(&self, consistency: Consistency) -> bool {
        match consistency {
            Consistency::Eventual => self.eventual.load(Ordering::Acquire),
            Consistency::ReadYourWrites(lsn) => match self.replayed.load(Ordering::Acquire) {
                0 => false,
                r => r > lsn.0, // r - 1 >= lsn
            },
            Consistency::Strong | Consistency::ReadOwnWrites => false,
        }
    }

    pub(crate) fn why_not(&self, consistency: Consistency) -> Result<(), String> {
        self.read().why_not(consistency, self.limits)
    }
}

/// A write lock on a [`HealthCell`] that publishes on release.
pub(crate) struct HealthWrite<'a> {
    cell: &'a HealthCell,
    guard: MutexGuard<'a, ReplicaHealth>,
}

impl std::ops::Deref for HealthWrite<'_> {
    type Target = ReplicaHealth;
    fn deref(&self) -> &ReplicaHealth {
        &self.guard
    }
}

impl std::ops::DerefMut for HealthWrite<'_> {
    fn deref_mut(&mut self) -> &mut ReplicaHealth {
        &mut self.guard
    }
}

impl Drop for HealthWrite<'_> {
    fn drop(&mut self) {
        let h = &*self.guard;
        let eventual = h.why_not(Consistency::Eventual, self.cell.limits).is_ok();
        let replayed = match (h.ejected, h.in_recovery, h.replay_lsn) {
            (false, true, Some(lsn)) => lsn.0.saturating_add(1),
            _ => 0,
        };
        // Still under the lock, so two writers publish in their lock order.
        self.cell.eventual.store(eventual, Ordering::Release);
        self.cell.replayed.store(replayed, Ordering::Release);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LagLimits {
        LagLimits { bytes: 1000, time: Duration::from_secs(5) }
    }

    /// Every combination of the fields the rules read.
    fn states() -> Vec<ReplicaHealth> {
        let mut v = Vec::new();
        for ejected in [false, true] {
            for in_recovery in [false, true] {
                for replay_lsn in [None, Some(Lsn(0)), Some(Lsn(500)), Some(Lsn(u64::MAX - 1))] {
                    for lag_bytes in [None, Some(0), Some(1000), Some(1001)] {
                        for lag_seconds in [None, Some(0.0), Some(5.0), Some(5.1)] {
                            v.push(ReplicaHealth {
                                ejected,
                                in_recovery,
                                replay_lsn,
                                lag_bytes,
                                lag_seconds,
                                ..Default::default()
                            });
                        }
                    }
                }
            }
        }
        v
    }

    fn consistencies() -> Vec<Consistency> {
        let mut v = vec![Consistency::Strong, Consistency::Eventual, Consistency::ReadOwnWrites];
        v.extend([0, 1, 499, 500, 501, u64::MAX - 1, u64::MAX].map(|l| Consistency::ReadYourWrites(Lsn(l))));
        v
    }

    #[test]
    fn the_lock_free_answer_agrees_with_the_rules_for_every_state() {
        let cell = HealthCell::new(ReplicaHealth::default(), limits());
        for s in states() {
            let expected: Vec<bool> = consistencies().iter().map(|c| s.why_not(*c, limits()).is_ok()).collect();
            let state = format!("{:?}", (s.ejected, s.in_recovery, s.replay_lsn, s.lag_bytes, s.lag_seconds));
            *cell.write() = s;
            let got: Vec<bool> = consistencies().iter().map(|c| cell.serves(*c)).collect();
            assert_eq!(got, expected, "state {state}");
        }
    }

    #[test]
    fn the_last_possible_position_errs_towards_the_primary() {
        let at_max = ReplicaHealth { in_recovery: true, replay_lsn: Some(Lsn(u64::MAX)), ..Default::default() };
        let cell = HealthCell::new(at_max, limits());
        assert!(cell.serves(Consistency::ReadYourWrites(Lsn(u64::MAX - 1))));
        assert!(!cell.serves(Consistency::ReadYourWrites(Lsn(u64::MAX))));
    }

    #[test]
    fn a_new_cell_publishes_its_initial_state() {
        let ready = ReplicaHealth {
            in_recovery: true,
            replay_lsn: Some(Lsn(7)),
            lag_bytes: Some(0),
            lag_seconds: Some(0.0),
            ..Default::default()
        };
        let cell = HealthCell::new(ready, limits());
        assert!(cell.serves(Consistency::Eventual));
        assert!(cell.serves(Consistency::ReadYourWrites(Lsn(7))));
        assert!(!cell.serves(Consistency::ReadYourWrites(Lsn(8))));
    }

    #[test]
    fn an_ejection_reaches_the_router_when_its_write_ends() {
        let ready = ReplicaHealth {
            in_recovery: true,
            replay_lsn: Some(Lsn(7)),
            lag_bytes: Some(0),
            lag_seconds: Some(0.0),
            ..Default::default()
        };
        let cell = HealthCell::new(ready, limits());
        cell.write().ejected = true;
        assert!(!cell.serves(Consistency::Eventual), "an ejection is published when its guard drops");
        assert!(cell.why_not(Consistency::Eventual).is_err());
    }
}
