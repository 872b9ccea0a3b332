//! Query observation: a hook the cluster calls after every routed statement
//! (read or write), with its duration, route and outcome. `fwdb up` hangs
//! the query-latency histograms and the slow-query log on it
//! (`crate::metrics::QueryMetrics`); services may add their own.
//!
//! The time measured is the statement's, connection checkout excluded (the
//! pools time checkouts themselves: `PoolStatus::acquire`); for writes it
//! includes the statement cache lookup.

use super::cluster::{PgCluster, Route};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Whether a statement went through [`Executor::read`](super::Executor::read)
/// or `write`, on the routed cluster or inside a transaction. Statements run
/// directly through `Tx::query`/`Tx::execute`, and COMMIT, count as `TxWrite`:
/// the transaction cannot tell whether they write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    Read,
    Write,
    TxRead,
    TxWrite,
}

impl QueryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryKind::Read => "read",
            QueryKind::Write => "write",
            QueryKind::TxRead => "tx_read",
            QueryKind::TxWrite => "tx_write",
        }
    }
}

/// One statement that ran.
#[derive(Debug)]
pub struct QueryEvent<'a> {
    pub sql: &'a str,
    pub kind: QueryKind,
    pub route: Route,
    pub duration: Duration,
    /// The error, when it failed.
    pub error: Option<&'a Error>,
}

/// Told about every statement a [`PgCluster`] runs. Called inline: keep it cheap.
pub trait QueryObserver: Send + Sync + 'static {
    fn on_query(&self, event: &QueryEvent<'_>);
}

/// The observers of one cluster (shared by its clones). `any` lets a cluster
/// without observers skip the clock and the lock; with observers, a call
/// takes the read lock once and clones one `Arc` (no allocation).
#[derive(Default)]
pub(crate) struct Observers {
    any: AtomicBool,
    list: RwLock<Arc<[Arc<dyn QueryObserver>]>>,
}

impl Observers {
    /// The start of a statement, when anyone listens (else no clock is read).
    /// Paired with [`Observers::finish`] rather than wrapping the statement's
    /// future: a wrapper holds the future, so every call's future would grow
    /// by the statement's and be copied once more (memcpy) on each await.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.any.load(Ordering::Acquire).then(Instant::now)
    }

    /// Tells every observer how the statement begun at `start` went.
    pub(crate) fn finish<T>(&self, start: Option<Instant>, route: Route, kind: QueryKind, sql: &str, out: &Result<T>) {
        let Some(start) = start else { return };
        let event = QueryEvent { sql, kind, route, duration: start.elapsed(), error: out.as_ref().err() };
        let list = self.list.read().map(|v| v.clone()).unwrap_or_else(|p| p.into_inner().clone());
        for o in list.iter() {
            o.on_query(&event);
        }
    }

    fn add(&self, observer: Arc<dyn QueryObserver>) {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Arc<dyn QueryObserver>> = list.iter().cloned().collect();
        v.push(observer);
        *list = v.into();
        self.any.store(true, Ordering::Release);
    }
}

impl PgCluster {
    /// Adds an observer told about every read and write of this cluster and its clones.
    pub fn add_query_observer(&self, observer: Arc<dyn QueryObserver>) {
        self.inner.observers.add(observer);
    }
}

impl Route {
    /// `primary` or `replica0`, `replica1`...: the `route` label of metrics.
    pub fn label(self) -> String {
        match self {
            Route::Primary => "primary".into(),
            Route::Replica(i) => format!("replica{i}"),
        }
    }
}

/// A statement's text with its literals replaced by `?` and its whitespace
/// collapsed, so that one shape is one line of the slow log.
pub fn normalize_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut last_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A string literal ('' escapes a quote).
                while let Some(n) = chars.next() {
                    if n == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                last_space = false;
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            c if c.is_whitespace() => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            c if c.is_ascii_digit() && !out.ends_with(|p: char| p.is_alphanumeric() || p == '_' || p == '$') => {
                while chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '.') {
                    chars.next();
                }
                out.push('?');
                last_space = false;
            }
            c => {
                out.push(c);
                last_space = false;
            }
        }
    }
    out.trim().to_string()
}

/// A short name for what a statement does, used as the `operation` label:
/// its verb and first table, `select users`, `insert items`, `update avatars`.
/// Repositories issue one shape per operation, so this is per repository operation.
pub fn operation_of(sql: &str) -> String {
    // The words outside parentheses: a CTE's body or a subquery does not name the statement.
    let mut words: Vec<String> = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in sql.chars().chain(std::iter::once(' ')) {
        match c {
            '(' | ')' | ',' | ';' => {
                if depth == 0 && !cur.is_empty() {
                    words.push(std::mem::take(&mut cur).to_ascii_lowercase());
                }
                cur.clear();
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
            }
            c if c.is_whitespace() => {
                if depth == 0 && !cur.is_empty() {
                    words.push(std::mem::take(&mut cur).to_ascii_lowercase());
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    let Some(first) = words.first() else { return "empty".into() };
    let verb = if first == "with" {
        words
            .iter()
            .find(|w| matches!(w.as_str(), "select" | "insert" | "update" | "delete"))
            .cloned()
            .unwrap_or_else(|| first.clone())
    } else {
        first.clone()
    };
    let after = match verb.as_str() {
        "select" | "delete" => "from",
        "insert" => "into",
        "update" => "update",
        _ => return verb,
    };
    let table = words.iter().skip_while(|w| *w != after).nth(1).map(|t| {
        let t = t.trim_matches('"');
        t.rsplit('.').next().unwrap_or(t).trim_matches('"').to_string()
    });
    match table {
        Some(t) if !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_') => format!("{verb} {t}"),
        _ => verb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_normalize_and_name_their_operation() {
        assert_eq!(
            normalize_sql("SELECT *  FROM users\n WHERE id = $1 AND name = 'it''s' AND n > 42 -- c\n"),
            "SELECT * FROM users WHERE id = $1 AND name = ? AND n > ?"
        );
        assert_eq!(normalize_sql("select t1.a from t1"), "select t1.a from t1");
        assert_eq!(operation_of("SELECT a FROM public.\"users\" WHERE x"), "select users");
        assert_eq!(operation_of("insert into items (a) values ($1)"), "insert items");
        assert_eq!(operation_of("UPDATE avatars SET x = 1"), "update avatars");
        assert_eq!(operation_of("select pg_sleep(0.2)"), "select");
        assert_eq!(operation_of("with x as (select 1) delete from t using x"), "delete t");
    }
}
