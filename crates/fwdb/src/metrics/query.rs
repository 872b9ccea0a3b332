//! Query latency histograms (per operation and route), errors by SQLSTATE
//! class, the slow-query log and a short latency history for the status page.

use crate::postgres::{normalize_sql, operation_of, QueryEvent, QueryObserver};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Upper bounds of the latency buckets, in seconds (Prometheus' defaults, plus 1 ms).
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// How many slow statements are remembered (the log itself goes to tracing).
const SLOW_KEPT: usize = 50;
/// How many seconds of latency history the status page charts.
const HISTORY_SECONDS: usize = 120;

/// A cumulative histogram in the Prometheus sense.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Histogram {
    /// Counts per bucket of [`LATENCY_BUCKETS`] (not cumulative; rendering adds them up).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if self.buckets.len() != LATENCY_BUCKETS.len() {
            self.buckets = vec![0; LATENCY_BUCKETS.len()];
        }
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// (upper bound, count of that bucket alone) for every bound of [`LATENCY_BUCKETS`],
    /// empty buckets included, as the encoder takes them.
    pub(super) fn per_bucket(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS.iter().enumerate().map(|(i, le)| (*le, self.buckets.get(i).copied().unwrap_or(0))).collect()
    }
}

/// One statement over the threshold.
#[derive(Debug, Clone, Serialize)]
pub struct SlowQuery {
    /// Unix time, seconds.
    pub at: f64,
    pub duration_ms: f64,
    pub operation: String,
    pub route: String,
    pub statement: String,
    pub error: Option<String>,
}

/// One second of the latency history.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyPoint {
    /// Seconds before now (0 = the current second).
    pub age_s: u64,
    pub count: u64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Default)]
struct State {
    /// (operation, route, kind) → histogram.
    latency: BTreeMap<(String, String, String), Histogram>,
    /// (operation, route, SQLSTATE class) → count.
    errors: BTreeMap<(String, String, String), u64>,
    slow: VecDeque<SlowQuery>,
    slow_total: u64,
    /// (second since start, count, sum ms, max ms).
    history: VecDeque<(u64, u64, f64, f64)>,
}

/// A [`QueryObserver`] that keeps what `/metrics` and the status page show,
/// and writes the slow-query log (tracing target `fwdb::slow_query`, level warn).
pub struct QueryMetrics {
    threshold: Duration,
    started: Instant,
    state: Mutex<State>,
}

/// What [`QueryMetrics`] holds, copied out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuerySnapshot {
    pub slow_query_threshold_ms: f64,
    /// (operation, route, kind, histogram).
    pub latency: Vec<(String, String, String, Histogram)>,
    /// (operation, route, SQLSTATE class, count).
    pub errors: Vec<(String, String, String, u64)>,
    pub slow_total: u64,
    /// The most recent slow statements, newest first.
    pub slow: Vec<SlowQuery>,
    /// Per second, newest first, seconds without statements left out.
    pub history: Vec<LatencyPoint>,
}

impl QueryMetrics {
    pub fn new(slow_query_threshold: Duration) -> QueryMetrics {
        QueryMetrics { threshold: slow_query_threshold, started: Instant::now(), state: Mutex::new(State::default()) }
    }

    pub fn snapshot(&self) -> QuerySnapshot {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.started.elapsed().as_secs();
        QuerySnapshot {
            slow_query_threshold_ms: self.threshold.as_secs_f64() * 1000.0,
            latency: st.latency.iter().map(|((o, r, k), h)| (o.clone(), r.clone(), k.clone(), h.clone())).collect(),
            errors: st.errors.iter().map(|((o, r, c), n)| (o.clone(), r.clone(), c.clone(), *n)).collect(),
            slow_total: st.slow_total,
            slow: st.slow.iter().rev().cloned().collect(),
            history: st
                .history
                .iter()
                .rev()
                .filter(|(s, ..)| now - s < HISTORY_SECONDS as u64)
                .map(|&(s, count, sum, max)| LatencyPoint {
                    age_s: now - s,
                    count,
                    max_ms: max,
                    mean_ms: sum / count.max(1) as f64,
                })
                .collect(),
        }
    }
}

impl QueryObserver for QueryMetrics {
    fn on_query(&self, e: &QueryEvent<'_>) {
        let operation = operation_of(e.sql);
        let route = e.route.label();
        let secs = e.duration.as_secs_f64();
        let ms = secs * 1000.0;
        let slow = e.duration >= self.threshold;
        let normalized = slow.then(|| normalize_sql(e.sql));
        if let Some(text) = &normalized {
            tracing::warn!(target: "fwdb::slow_query", duration_ms = format!("{ms:.1}"), route = %route, operation = %operation, statement = %text, "slow query");
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.latency.entry((operation.clone(), route.clone(), e.kind.as_str().to_string())).or_default().observe(secs);
        if let Some(err) = e.error {
            let class =
                err.code().map(|c| c.code().chars().take(2).collect::<String>()).unwrap_or_else(|| "none".into());
            *st.errors.entry((operation.clone(), route.clone(), class)).or_default() += 1;
        }
        if let Some(statement) = normalized {
            st.slow_total += 1;
            let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            st.slow.push_back(SlowQuery {
                at,
                duration_ms: ms,
                operation,
                route,
                statement,
                error: e.error.map(|x| x.to_string()),
            });
            while st.slow.len() > SLOW_KEPT {
                st.slow.pop_front();
            }
        }
        let sec = self.started.elapsed().as_secs();
        match st.history.back_mut() {
            Some(last) if last.0 == sec => {
                last.1 += 1;
                last.2 += ms;
                last.3 = last.3.max(ms);
            }
            _ => st.history.push_back((sec, 1, ms, ms)),
        }
        while st.history.front().is_some_and(|f| sec - f.0 >= HISTORY_SECONDS as u64) {
            st.history.pop_front();
        }
    }
}
