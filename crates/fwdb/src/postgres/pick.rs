//! Which replica serves a read, and taking one out of rotation.

use super::cluster::Inner;
use super::executor::Consistency;
use std::sync::atomic::Ordering;

impl Inner {
    /// The replica for a read, or `None` for the primary: the eligible one
    /// with the fewest reads in flight, ties taken in turn.
    pub(crate) fn pick(&self, consistency: Consistency, exclude: &[usize]) -> Option<usize> {
        if consistency == Consistency::Strong || self.replicas.is_empty() {
            return None;
        }
        let n = self.replicas.len();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if exclude.contains(&i) || !self.replicas[i].health.serves(consistency) {
                continue;
            }
            let load = self.replicas[i].outstanding.load(Ordering::Acquire);
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Whether replica `i` may serve a read of `consistency`; if not, why.
    pub(crate) fn eligible(&self, i: usize, consistency: Consistency) -> std::result::Result<(), String> {
        self.replicas[i].health.why_not(consistency)
    }

    pub(crate) fn eject(&self, i: usize, reason: String) {
        let r = &self.replicas[i];
        let mut h = r.health.write();
        h.successes = 0;
        if !h.ejected {
            h.ejected = true;
            tracing::warn!(replica = %r.host, %reason, "replica ejected");
            r.pool.drain();
            r.ejected_signal.notify_waiters();
        }
        h.reason = Some(reason);
    }
}
