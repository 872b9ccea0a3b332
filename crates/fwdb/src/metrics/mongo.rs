//! MongoDB operation latency (by operation and collection) and errors (by
//! server code), as `fwdb_mongo_op_duration_seconds` and
//! `fwdb_mongo_op_errors_total`. The MongoDB handle reports each operation
//! through [`MongoOpMetrics::record`] or [`MongoOpMetrics::observe`].

use super::exposition::{Out, Res};
use super::query::Histogram;
use crate::error::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct State {
    /// (operation, collection) → histogram.
    latency: BTreeMap<(String, String), Histogram>,
    /// (operation, collection, code) → count.
    errors: BTreeMap<(String, String, String), u64>,
}

/// What the MongoDB handle did, for `/metrics`. One per process, shared by `Arc`.
#[derive(Default)]
pub struct MongoOpMetrics {
    state: Mutex<State>,
}

/// What [`MongoOpMetrics`] holds, copied out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MongoOpSnapshot {
    /// (operation, collection, histogram).
    pub latency: Vec<(String, String, Histogram)>,
    /// (operation, collection, code, count).
    pub errors: Vec<(String, String, String, u64)>,
}

impl MongoOpMetrics {
    pub fn new() -> MongoOpMetrics {
        MongoOpMetrics::default()
    }

    /// One finished operation, e.g. `("find", "designs", 3 ms, None)`.
    /// `operation` should be the driver's verb (find, insert_one, update_one...) so label values stay few.
    pub fn record(&self, operation: &str, collection: &str, elapsed: Duration, error: Option<&Error>) {
        let key = (operation.to_string(), collection.to_string());
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = error {
            *st.errors.entry((key.0.clone(), key.1.clone(), mongo_error_code(e))).or_default() += 1;
        }
        st.latency.entry(key).or_default().observe(elapsed.as_secs_f64());
    }

    pub fn snapshot(&self) -> MongoOpSnapshot {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        MongoOpSnapshot {
            latency: st.latency.iter().map(|((o, c), h)| (o.clone(), c.clone(), h.clone())).collect(),
            errors: st.errors.iter().map(|((o, c, k), n)| (o.clone(), c.clone(), k.clone(), *n)).collect(),
        }
    }
}

impl crate::mongo::MongoObserver for MongoOpMetrics {
    fn record(&self, operation: &str, collection: &str, elapsed: Duration, error: Option<&Error>) {
        MongoOpMetrics::record(self, operation, collection, elapsed, error)
    }
}

/// The error's label: the server's code (`11000`, `112`...) when MongoDB sent
/// one, else what kind of failure it was (`network`, `timeout`, `validation`...).
pub fn mongo_error_code(e: &Error) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(m) = x.downcast_ref::<mongodb::error::Error>() {
            return driver_code(m);
        }
        cur = x.source();
    }
    format!("{:?}", e.kind()).to_lowercase()
}

fn driver_code(e: &mongodb::error::Error) -> String {
    use mongodb::error::{ErrorKind as M, WriteFailure};
    let code = match &*e.kind {
        M::Command(c) => Some(c.code),
        M::Write(WriteFailure::WriteError(w)) => Some(w.code),
        M::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        M::InsertMany(m) => m.write_errors.as_ref().and_then(|v| v.first()).map(|w| w.code),
        _ => None,
    };
    match code {
        Some(c) => c.to_string(),
        None if matches!(&*e.kind, M::Io(_) | M::ConnectionPoolCleared { .. }) => "network".into(),
        None if matches!(&*e.kind, M::ServerSelection { .. }) => "server_selection".into(),
        None => "driver".into(),
    }
}

/// `fwdb_mongo_op_duration_seconds` and `fwdb_mongo_op_errors_total`.
pub(super) fn write_mongo_ops(o: &mut Out<'_>, ops: &MongoOpSnapshot) -> Res {
    let mut f =
        o.histograms("fwdb_mongo_op_duration_seconds", "MongoDB operation latency by operation and collection.")?;
    for (op, coll, h) in &ops.latency {
        f.sample(&[("operation", op), ("collection", coll)], h.sum, h.count, &h.per_bucket())?;
    }
    let help = "Failed MongoDB operations by operation, collection and code (server code, or network, timeout...).";
    let mut f = o.counters("fwdb_mongo_op_errors", help)?;
    for (op, coll, code, n) in &ops.errors {
        f.sample(&[("operation", op), ("collection", coll), ("code", code)], *n)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn operations_are_timed_and_errors_counted_by_code() {
        let m = MongoOpMetrics::new();
        m.record("find", "designs", Duration::from_millis(1), None);
        let dup = mongodb::error::Error::custom("x");
        let err = Error::new(ErrorKind::Conflict, "duplicate key").with_source(dup);
        m.record("insert_one", "designs", Duration::from_millis(3), Some(&err));
        m.record("insert_one", "designs", Duration::from_millis(700), Some(&Error::new(ErrorKind::Timeout, "slow")));
        let s = m.snapshot();
        let counts: Vec<(&str, u64)> = s.latency.iter().map(|(o, _, h)| (o.as_str(), h.count)).collect();
        assert_eq!(counts, [("find", 1), ("insert_one", 2)]);
        let codes: Vec<&str> = s.errors.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(codes, ["driver", "timeout"]);

        let t = super::super::exposition::expose(s, write_mongo_ops).unwrap();
        assert!(t.contains("# TYPE fwdb_mongo_op_duration_seconds histogram\n"), "{t}");
        assert!(t.contains("fwdb_mongo_op_duration_seconds_bucket{operation=\"insert_one\",collection=\"designs\",le=\"0.005\"} 1\n"), "{t}");
        assert!(
            t.contains(
                "fwdb_mongo_op_duration_seconds_bucket{operation=\"insert_one\",collection=\"designs\",le=\"1\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("fwdb_mongo_op_duration_seconds_count{operation=\"insert_one\",collection=\"designs\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "fwdb_mongo_op_errors_total{operation=\"insert_one\",collection=\"designs\",code=\"timeout\"} 1\n"
            ),
            "{t}"
        );
    }
}
