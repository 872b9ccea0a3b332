//! Connections that concurrent reads share (`postgres.pool.multiplex`).
//!
//! tokio-postgres pipelines the statements of every caller of one client:
//! each is sent as soon as it is issued and the server answers them in
//! order. A pool that lends a connection to one caller at a time gives that
//! up: 64 callers keep 64 backends, each woken for one statement at a time,
//! on a server with a few cores. A read outside a transaction, with no
//! prelude, needs nothing of its connection's session, so a few connections
//! per server are taken out of the pool and shared by such reads. Writes,
//! transactions and reads with a prelude still check a connection out for
//! themselves.
//!
//! A read shares only while another read is in flight on the same pool
//! (pool.rs), and only when its shape has been seen to be fast (shapes.rs):
//! alone, or slow, or not timed yet, it checks a connection out as before.
//! It takes the idle filled slot of lowest index, so sequential bursts land
//! on the same warm connections. A slot is filled (a checkout from the pool,
//! kept) only when every filled one is busy. The price is head-of-line
//! blocking: a read waits for those sent before it on its connection. So a
//! busy connection is joined only while it makes progress (a read finished
//! on it, or its first began, less than the stall limit ago: the read at its
//! head is not a slow one) and holds fewer reads than the depth limit;
//! when none qualifies the read checks a connection out for itself.

use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection as this module needs it (the pool's `Object`; a stand-in in
/// the unit tests, which check the picking rules without a server).
pub(crate) trait Conn {
    fn is_closed(&self) -> bool;
}

/// The shared connections of one pool.
pub(crate) struct Shared<C> {
    slots: Box<[Slot<C>]>,
    /// A busy connection on which nothing finished for this long is not joined.
    stall_ns: u64,
    /// Nor is one with this many reads in flight.
    depth: usize,
    /// Bumped by every drain: a fill that began before one does not keep its
    /// connection (it may reach the server the drain left).
    generation: AtomicU64,
}

struct Slot<C> {
    lent: ArcSwapOption<Lent<C>>,
    /// Set while one caller fills the slot, so a burst fills it once.
    filling: AtomicBool,
}

/// A connection taken out of the pool for shared reads; back in the pool
/// (through its `pre_recycle` checks) once the slot and every read let go.
struct Lent<C> {
    conn: C,
    in_flight: AtomicUsize,
    since: Instant,
    /// Nanoseconds after `since` when a read last finished here or the
    /// first of a busy spell began: the head of the pipeline started then.
    progress: AtomicU64,
}

impl<C> Lent<C> {
    fn at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.since).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A shared connection held by one read.
pub(crate) struct SharedConn<C>(Arc<Lent<C>>);

impl<C> SharedConn<C> {
    fn hold(lent: Arc<Lent<C>>, now: Instant) -> SharedConn<C> {
        if lent.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            lent.progress.store(lent.at(now), Ordering::Release);
        }
        SharedConn(lent)
    }

    /// Notes that this read finished at `now`; returns when the server
    /// could start on it at the earliest: the previous finish (or the start
    /// of the busy spell) on this connection, since answers come in order.
    pub(crate) fn finished(&self, now: Instant) -> Instant {
        let prev = self.0.progress.swap(self.0.at(now), Ordering::AcqRel);
        self.0.since + Duration::from_nanos(prev)
    }
}

impl<C> Drop for SharedConn<C> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C> std::ops::Deref for SharedConn<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0.conn
    }
}

/// What a read should do for a connection.
pub(crate) enum Choice<C> {
    Use(SharedConn<C>),
    /// Slot `.0` is this caller's to fill (its `filling` flag is taken):
    /// check a connection out, [`Shared::put`] it there, use it.
    Fill(usize, u64),
    /// Nothing shared to use yet and every empty slot is being filled (or
    /// none is configured): check a connection out for this read alone.
    Checkout,
}

/// Numbers for [`super::PoolStatus`].
pub(crate) struct SharedStatus {
    pub(crate) connections: usize,
    pub(crate) reads: usize,
}

impl<C: Conn> Shared<C> {
    /// `slots` connections at most; a busy one is joined while a read
    /// finished on it within `stall` and it holds fewer than `depth` reads.
    pub(crate) fn new(slots: usize, stall: Duration, depth: usize) -> Shared<C> {
        Shared {
            slots: (0..slots).map(|_| Slot { lent: ArcSwapOption::empty(), filling: AtomicBool::new(false) }).collect(),
            stall_ns: u64::try_from(stall.as_nanos()).unwrap_or(u64::MAX),
            depth: depth.max(1),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The idle filled slot of lowest index; else an empty slot to fill;
    /// else, of the busy slots that make progress and are not full, the one
    /// with the fewest reads in flight; else a checkout.
    pub(crate) fn choose(&self, now: Instant) -> Choice<C> {
        let mut best: Option<(usize, usize)> = None;
        let mut empty: Option<usize> = None;
        for (i, s) in self.slots.iter().enumerate() {
            let g = s.lent.load();
            match g.as_ref() {
                Some(l) if !l.conn.is_closed() => {
                    let n = l.in_flight.load(Ordering::Acquire);
                    if n > 0 && !self.joinable(l, n, now) {
                        continue;
                    }
                    if best.is_none_or(|(_, b)| n < b) {
                        best = Some((i, n));
                    }
                    if n == 0 {
                        break;
                    }
                }
                // A closed connection is forgotten here, where it is found.
                Some(_) => {
                    s.lent.compare_and_swap(&*g, None);
                    empty.get_or_insert(i);
                }
                None => {
                    empty.get_or_insert(i);
                }
            }
        }
        let busy = best.is_none_or(|(_, n)| n > 0);
        if let Some(i) = empty.filter(|_| busy) {
            if !self.slots[i].filling.swap(true, Ordering::AcqRel) {
                return Choice::Fill(i, self.generation.load(Ordering::Acquire));
            }
        }
        match best.and_then(|(i, _)| self.slots[i].lent.load_full()) {
            Some(l) => Choice::Use(SharedConn::hold(l, now)),
            None => Choice::Checkout,
        }
    }

    /// Whether a read may queue on `l`, busy with `n` reads: not past the
    /// depth limit, and its head (the oldest read in flight) not stuck.
    fn joinable(&self, l: &Lent<C>, n: usize, now: Instant) -> bool {
        n < self.depth && l.at(now).saturating_sub(l.progress.load(Ordering::Acquire)) <= self.stall_ns
    }

    /// Ends a [`Choice::Fill`]: keeps `conn` in slot `i` unless the pool was
    /// drained since the fill began; either way it serves this read.
    pub(crate) fn put(&self, i: usize, generation: u64, conn: C, now: Instant) -> SharedConn<C> {
        let lent = Arc::new(Lent { conn, in_flight: AtomicUsize::new(0), since: now, progress: AtomicU64::new(0) });
        if self.generation.load(Ordering::Acquire) == generation {
            self.slots[i].lent.store(Some(lent.clone()));
        }
        self.slots[i].filling.store(false, Ordering::Release);
        SharedConn::hold(lent, now)
    }

    /// Ends a [`Choice::Fill`] whose checkout failed.
    pub(crate) fn unfill(&self, i: usize) {
        self.slots[i].filling.store(false, Ordering::Release);
    }

    /// Lets go of every shared connection: reads in flight finish on theirs.
    pub(crate) fn drain(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for s in self.slots.iter() {
            s.lent.store(None);
        }
    }

    /// Lets go of connections that are closed or older than `max_lifetime`.
    pub(crate) fn retire(&self, max_lifetime: Duration) {
        for s in self.slots.iter() {
            let g = s.lent.load();
            if g.as_ref().is_some_and(|l| l.conn.is_closed() || l.since.elapsed() > max_lifetime) {
                s.lent.compare_and_swap(&*g, None);
            }
        }
    }

    pub(crate) fn status(&self) -> SharedStatus {
        let mut st = SharedStatus { connections: 0, reads: 0 };
        for s in self.slots.iter() {
            if let Some(l) = s.lent.load().as_ref() {
                st.connections += 1;
                st.reads += l.in_flight.load(Ordering::Relaxed);
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        id: usize,
        closed: Arc<AtomicBool>,
    }

    impl Conn for Fake {
        fn is_closed(&self) -> bool {
            self.closed.load(Ordering::Relaxed)
        }
    }

    fn fake(id: usize) -> Fake {
        Fake { id, closed: Arc::default() }
    }

    /// Shared connections that are joined however long their reads take.
    fn shared(n: usize) -> Shared<Fake> {
        Shared::new(n, Duration::from_secs(3600), 64)
    }

    /// Runs `choose` and, for a fill, puts connection `id` there.
    fn take(s: &Shared<Fake>, id: usize) -> Option<SharedConn<Fake>> {
        match s.choose(Instant::now()) {
            Choice::Use(c) => Some(c),
            Choice::Fill(i, g) => Some(s.put(i, g, fake(id), Instant::now())),
            Choice::Checkout => None,
        }
    }

    #[test]
    fn sequential_reads_keep_to_the_first_connection() {
        let s = shared(4);
        for _ in 0..5 {
            let c = take(&s, 7).map(|c| c.id);
            assert_eq!(c, Some(7));
        }
        assert_eq!(s.status().connections, 1, "one caller at a time fills one slot");
        assert_eq!(s.status().reads, 0);
    }

    #[test]
    fn a_slot_is_filled_only_while_every_filled_one_is_busy_and_never_past_the_limit() {
        let s = shared(2);
        let a = take(&s, 1).expect("fills slot 0");
        let b = take(&s, 2).expect("slot 0 is busy: fills slot 1");
        assert_eq!((a.id, b.id), (1, 2));
        // Both busy, none left to fill: the one with the fewest reads in flight.
        let c = take(&s, 3).expect("shares a connection");
        assert!(c.id == 1 || c.id == 2);
        let d = take(&s, 4).expect("shares the other one");
        assert_ne!(c.id, d.id, "the less busy connection is taken");
        assert_eq!(s.status().connections, 2);
        assert_eq!(s.status().reads, 4);
        drop((a, c));
        let e = take(&s, 5).expect("an idle connection");
        assert_eq!(e.id, 1, "an idle connection is taken before a busy one");
    }

    #[test]
    fn while_the_only_empty_slot_is_being_filled_a_busy_connection_is_shared() {
        let s = shared(2);
        let a = take(&s, 1).expect("fills slot 0");
        let Choice::Fill(i, _) = s.choose(Instant::now()) else { panic!("slot 1 should be filled") };
        assert_eq!(i, 1);
        // Someone else is filling slot 1: share slot 0 rather than wait.
        assert_eq!(take(&s, 9).map(|c| c.id), Some(1));
        s.unfill(i);
        drop(a);
    }

    #[test]
    fn with_nothing_filled_and_every_slot_being_filled_a_read_checks_out_its_own() {
        let s: Shared<Fake> = shared(1);
        let Choice::Fill(i, _) = s.choose(Instant::now()) else { panic!("slot 0 should be filled") };
        assert!(matches!(s.choose(Instant::now()), Choice::Checkout));
        s.unfill(i);
        assert!(matches!(s.choose(Instant::now()), Choice::Fill(0, _)), "a failed fill frees the slot");
    }

    #[test]
    fn a_closed_connection_is_replaced() {
        let s = shared(1);
        let closed = Arc::new(AtomicBool::new(false));
        let Choice::Fill(i, g) = s.choose(Instant::now()) else { panic!("slot 0 should be filled") };
        drop(s.put(i, g, Fake { id: 1, closed: closed.clone() }, Instant::now()));
        closed.store(true, Ordering::Relaxed);
        assert_eq!(take(&s, 2).map(|c| c.id), Some(2));
    }

    #[test]
    fn a_fill_that_began_before_a_drain_serves_its_read_but_is_not_kept() {
        let s = shared(1);
        let Choice::Fill(i, g) = s.choose(Instant::now()) else { panic!("slot 0 should be filled") };
        s.drain();
        let c = s.put(i, g, fake(1), Instant::now());
        assert_eq!(c.id, 1);
        assert_eq!(s.status().connections, 0);
        drop(c);
        assert_eq!(take(&s, 2).map(|c| c.id), Some(2));
    }

    #[test]
    fn drain_and_retire_let_go_of_kept_connections() {
        let s = shared(2);
        let held = take(&s, 1).expect("fills slot 0");
        drop(take(&s, 2));
        s.drain();
        assert_eq!(s.status().connections, 0);
        assert_eq!(held.id, 1, "a read in flight keeps its connection");
        drop(held);
        drop(take(&s, 3));
        s.retire(Duration::from_secs(3600));
        assert_eq!(s.status().connections, 1, "young and open: kept");
        s.retire(Duration::ZERO);
        assert_eq!(s.status().connections, 0, "past max_lifetime: let go");
    }

    #[test]
    fn a_connection_whose_head_read_is_stuck_is_not_joined() {
        let s = Shared::new(2, Duration::from_millis(5), 64);
        let t0 = Instant::now();
        let slow = match s.choose(t0) {
            Choice::Fill(i, g) => s.put(i, g, fake(1), t0),
            _ => panic!("slot 0 should be filled"),
        };
        let Choice::Fill(i, g) = s.choose(t0) else { panic!("slot 1 should be filled") };
        let other = s.put(i, g, fake(2), t0);
        let soon = t0 + Duration::from_millis(1);
        let Choice::Use(c) = s.choose(soon) else { panic!("both progress: one is joined") };
        assert_eq!(c.id, 1, "the fewest in flight, the lowest index");
        drop(c);
        // Slot 1 finishes a read 20 ms in; slot 0's has run for 20 ms.
        let later = t0 + Duration::from_millis(20);
        assert_eq!(other.finished(later), t0, "the server began it with the busy spell");
        let keep = match s.choose(later) {
            Choice::Use(c) => c,
            _ => panic!("slot 1 progresses"),
        };
        assert_eq!(keep.id, 2, "slot 0, stuck on its first read, is passed over");
        drop((other, keep));
        let third = match s.choose(later) {
            Choice::Use(c) => c,
            _ => panic!("slot 1 is idle"),
        };
        assert_eq!(third.id, 2);
        let fourth = match s.choose(later + Duration::from_millis(10)) {
            Choice::Checkout => None,
            _ => Some(()),
        };
        assert!(fourth.is_none(), "every shared connection is stuck: a connection of its own");
        drop((slow, third));
    }

    #[test]
    fn a_connection_at_the_depth_limit_is_not_joined() {
        let s = Shared::new(1, Duration::from_secs(3600), 2);
        let a = take(&s, 1).expect("fills slot 0");
        let b = take(&s, 2).expect("joins slot 0");
        assert_eq!(b.id, 1);
        assert!(take(&s, 3).is_none(), "two in flight: a connection of its own");
        drop((a, b));
    }
}
