//! What each statement shape's reads cost, learned as they run, and which
//! lane a read takes from it: a shared, pipelined connection (mux.rs) or one
//! of its own.
//!
//! A pipeline is a queue: a read sent behind a slow one waits for it. So a
//! shape shares only once it has been seen to be fast: its first read runs on
//! a connection of its own and is timed, and a shape whose moving estimate
//! rises above `postgres.pool.slow_read` leaves the shared connections until
//! it falls below half of that (the gap keeps a shape near the limit from
//! flapping). The shape is the statement's text: the repositories and the
//! query builder reuse theirs, so a shape is a handful of texts per service.
//!
//! The table is a fixed array indexed by the text's hash, without a lock: a
//! read costs one hash of its text and a few atomic operations. Two shapes
//! whose hashes meet in one entry take turns in it (each arrival of the other
//! starts it afresh, unknown, so on a connection of its own): safe, only
//! slower, and rare with a few dozen shapes.

use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Entries of the table (a power of two).
const ENTRIES: usize = 256;

/// How a caller marks a read ([`PgCluster::with_read_hint`](super::PgCluster::with_read_hint)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadHint {
    /// The lane its shape has earned: shared once seen fast, not while slow.
    #[default]
    Auto,
    /// Never shares a connection (a search, an export, a report): known
    /// before its first run, and whatever a fast run of its shape taught.
    Heavy,
    /// Shares even before its shape was timed, and whatever its estimate:
    /// the caller vouches that it is quick (a statement whose text changes
    /// with every call is never learned).
    Light,
}

/// Where a read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Pipelined on a shared connection, when another read is in flight.
    Shared,
    /// On a connection of its own.
    Own,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Shared => "shared",
            Lane::Own => "own",
        }
    }
}

/// One shape, as the status page and /metrics show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShapeStatus {
    pub sql: String,
    /// The moving estimate of one read's time on the server.
    pub estimate_seconds: f64,
    /// Reads timed since the shape took its entry.
    pub reads: u64,
    /// The lane its reads take now (without a hint).
    pub lane: Lane,
}

struct Entry {
    /// The text's hash; 0: empty.
    key: AtomicU64,
    /// Nanoseconds; 0: not timed yet.
    estimate: AtomicU64,
    reads: AtomicU64,
    slow: AtomicBool,
    sql: ArcSwapOption<String>,
}

/// The shapes of one cluster.
pub(crate) struct Shapes {
    entries: Box<[Entry]>,
    hasher: foldhash::fast::FixedState,
    slow_ns: u64,
}

/// A read's entry in the table, for timing it.
#[derive(Clone, Copy)]
pub(crate) struct Shape<'a> {
    entry: &'a Entry,
    key: u64,
}

impl Shapes {
    pub(crate) fn new(slow_read: Duration) -> Shapes {
        let entries = (0..ENTRIES)
            .map(|_| Entry {
                key: AtomicU64::new(0),
                estimate: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                slow: AtomicBool::new(false),
                sql: ArcSwapOption::empty(),
            })
            .collect();
        Shapes { entries, hasher: foldhash::fast::FixedState::with_seed(0), slow_ns: nanos(slow_read) }
    }

    /// `sql`'s entry (taken over when another shape held it) and the lane
    /// a read of it with `hint` takes.
    pub(crate) fn lane(&self, sql: &str, hint: ReadHint) -> (Shape<'_>, Lane) {
        let key = self.hasher.hash_one(sql).max(1);
        let entry = &self.entries[(key as usize) & (ENTRIES - 1)];
        let known = if entry.key.load(Ordering::Acquire) == key {
            entry.estimate.load(Ordering::Relaxed) > 0 && !entry.slow.load(Ordering::Relaxed)
        } else {
            self.take(entry, key, sql);
            false
        };
        let lane = match hint {
            ReadHint::Auto if known => Lane::Shared,
            ReadHint::Light => Lane::Shared,
            _ => Lane::Own,
        };
        (Shape { entry, key }, lane)
    }

    /// The rare path: a new shape (or one back after another took its entry).
    #[cold]
    fn take(&self, entry: &Entry, key: u64, sql: &str) {
        entry.key.store(key, Ordering::Release);
        entry.estimate.store(0, Ordering::Relaxed);
        entry.reads.store(0, Ordering::Relaxed);
        entry.slow.store(false, Ordering::Relaxed);
        entry.sql.store(Some(Arc::new(sql.to_owned())));
    }

    /// Counts a read of `shape` that kept the server busy for `took`.
    pub(crate) fn record(&self, shape: Shape<'_>, took: Duration) {
        let e = shape.entry;
        if e.key.load(Ordering::Acquire) != shape.key {
            return; // another shape took the entry meanwhile
        }
        let ns = nanos(took).max(1);
        let old = e.estimate.load(Ordering::Relaxed);
        // A quarter of the way to each new time: a slow read moves the
        // estimate at once, a run of fast ones brings it back within a dozen.
        // Concurrent updates may lose one another's step: a moving estimate
        // does not need them all.
        let new = if old == 0 { ns } else { old - old / 4 + ns / 4 };
        e.estimate.store(new, Ordering::Relaxed);
        e.reads.fetch_add(1, Ordering::Relaxed);
        let slow = e.slow.load(Ordering::Relaxed);
        if !slow && new > self.slow_ns {
            e.slow.store(true, Ordering::Relaxed);
        } else if slow && new < self.slow_ns / 2 {
            e.slow.store(false, Ordering::Relaxed);
        }
    }

    /// Up to `n` shapes, those that took the most server time first.
    pub(crate) fn top(&self, n: usize) -> Vec<ShapeStatus> {
        let mut all: Vec<(u128, ShapeStatus)> = self
            .entries
            .iter()
            .filter_map(|e| {
                let sql = e.sql.load_full()?;
                let estimate = e.estimate.load(Ordering::Relaxed);
                let reads = e.reads.load(Ordering::Relaxed);
                if estimate == 0 || e.key.load(Ordering::Acquire) == 0 {
                    return None;
                }
                let lane = if e.slow.load(Ordering::Relaxed) { Lane::Own } else { Lane::Shared };
                let status =
                    ShapeStatus { sql: sql.as_ref().clone(), estimate_seconds: estimate as f64 / 1e9, reads, lane };
                Some((u128::from(estimate) * u128::from(reads.max(1)), status))
            })
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.0));
        all.into_iter().take(n).map(|(_, s)| s).collect()
    }
}

impl super::PgCluster {
    /// A handle (same pools, same record of writes) whose reads take `hint`
    /// into account: [`ReadHint::Heavy`] for a read that must not hold up
    /// others on a shared connection even before its shape was timed.
    pub fn with_read_hint(&self, hint: ReadHint) -> super::PgCluster {
        let mut c = self.clone();
        c.hint = hint;
        c
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn lane(s: &Shapes, sql: &str) -> Lane {
        s.lane(sql, ReadHint::Auto).1
    }

    fn run(s: &Shapes, sql: &str, took: Duration) {
        let (shape, _) = s.lane(sql, ReadHint::Auto);
        s.record(shape, took);
    }

    #[test]
    fn a_shape_shares_only_once_it_was_seen_fast() {
        let s = Shapes::new(5 * MS);
        assert_eq!(lane(&s, "SELECT 1"), Lane::Own, "not timed yet");
        run(&s, "SELECT 1", MS / 10);
        assert_eq!(lane(&s, "SELECT 1"), Lane::Shared);
        assert_eq!(lane(&s, "SELECT 2"), Lane::Own, "another shape is not");
    }

    #[test]
    fn a_slow_shape_leaves_the_shared_connections_and_comes_back_once_fast_again() {
        let s = Shapes::new(5 * MS);
        run(&s, "q", MS / 10);
        run(&s, "q", 100 * MS);
        assert_eq!(lane(&s, "q"), Lane::Own, "one slow read is enough");
        let mut fast_reads = 0;
        while lane(&s, "q") == Lane::Own {
            run(&s, "q", MS / 10);
            fast_reads += 1;
            assert!(fast_reads < 50, "never came back");
        }
        assert!(fast_reads > 3, "not back at the first fast read: {fast_reads}");
        let top = s.top(5);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].lane, Lane::Shared);
        assert!(top[0].estimate_seconds < 0.0025, "{top:?}");
    }

    #[test]
    fn a_shape_near_the_limit_does_not_flap() {
        let s = Shapes::new(5 * MS);
        run(&s, "q", 6 * MS);
        assert_eq!(lane(&s, "q"), Lane::Own);
        for _ in 0..20 {
            run(&s, "q", 4 * MS);
            assert_eq!(lane(&s, "q"), Lane::Own, "4 ms is under the limit but above half of it");
        }
    }

    #[test]
    fn hints_override_what_was_learned() {
        let s = Shapes::new(5 * MS);
        run(&s, "fast", MS / 10);
        assert_eq!(s.lane("fast", ReadHint::Heavy).1, Lane::Own);
        assert_eq!(s.lane("never seen", ReadHint::Light).1, Lane::Shared);
        run(&s, "slow", 100 * MS);
        assert_eq!(s.lane("slow", ReadHint::Light).1, Lane::Shared);
    }

    #[test]
    fn the_top_shapes_are_those_that_took_most_time() {
        let s = Shapes::new(5 * MS);
        for _ in 0..10 {
            run(&s, "often", MS);
        }
        run(&s, "once", 100 * MS);
        run(&s, "rare", MS / 10);
        let top: Vec<String> = s.top(2).into_iter().map(|t| t.sql).collect();
        assert_eq!(top, ["once", "often"]);
    }
}
