//! The one error type of the `fwdb` crate.
//!
//! Modelled on tokio-postgres: an opaque struct the caller asks questions of
//! (`is_not_found`, `is_conflict`, `is_retryable`, `is_timeout`, `code`)
//! instead of matching on a large public enum that could never grow.

pub(crate) mod mongo;
pub(crate) mod pg;

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, broadly. `#[non_exhaustive]` so new kinds are not breaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid; see [`Error::config_problems`].
    Config,
    /// Input was rejected before it reached a server.
    Validation,
    /// The row or document does not exist (or is soft-deleted).
    NotFound,
    /// A unique violation, a stale version, or another lost race.
    Conflict,
    /// A deadline passed: pool acquire, connect, statement, lock wait.
    Timeout,
    /// No server could be reached for the operation (e.g. no primary).
    Unavailable,
    /// PostgreSQL reported an error; see [`Error::code`].
    Postgres,
    /// MongoDB reported an error; see [`Error::mongo_labels`].
    Mongo,
    /// A migration could not be planned, applied or verified.
    Migration,
    /// A file or socket operation failed.
    Io,
    /// A bug or an impossible state: please report it.
    Internal,
}

/// One thing wrong with the configuration, with where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key, e.g. `postgres.pool.max_size`.
    pub key: String,
    /// Where the offending value came from, e.g. `fwdb.toml:12` or `env FWDB__POSTGRES__POOL__MAX_SIZE`.
    pub origin: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.origin, self.message)
    }
}

/// The error returned by everything in `fwdb`.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
    problems: Vec<ConfigProblem>,
    source: Option<BoxError>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner { kind, message: message.into(), problems: Vec::new(), source: None }))
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    pub(crate) fn config(problems: Vec<ConfigProblem>) -> Self {
        let mut msg = format!("invalid configuration ({} problem{})", problems.len(), plural(problems.len()));
        for p in &problems {
            msg.push_str("\n  - ");
            msg.push_str(&p.to_string());
        }
        let mut e = Error::new(ErrorKind::Config, msg);
        e.0.problems = problems;
        e
    }

    /// Input refused before it reached a server: `invalid <field>: <why>`.
    /// For a service's own rules (a document's, a request's), so its errors
    /// are classified like fwdb's (`kind()` is [`ErrorKind::Validation`]).
    pub fn validation(field: &str, why: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Validation, format!("invalid {field}: {why}"))
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Validation, message)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let kind = if source.kind() == std::io::ErrorKind::TimedOut { ErrorKind::Timeout } else { ErrorKind::Io };
        Error::new(kind, context).with_source(source)
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The problems behind a configuration error (empty for other kinds).
    pub fn config_problems(&self) -> &[ConfigProblem] {
        &self.0.problems
    }

    pub fn is_not_found(&self) -> bool {
        self.0.kind == ErrorKind::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.0.kind == ErrorKind::Conflict || self.code().is_some_and(pg::is_conflict)
    }

    pub fn is_timeout(&self) -> bool {
        self.0.kind == ErrorKind::Timeout || self.code().is_some_and(pg::is_timeout)
    }

    /// True when running the same operation again may succeed: a serialization
    /// failure, a deadlock, a lost connection, or a transient MongoDB error.
    pub fn is_retryable(&self) -> bool {
        if let Some(code) = self.code() {
            return pg::is_retryable(code);
        }
        if let Some(e) = self.pg_error() {
            return e.is_closed();
        }
        if let Some(m) = self.mongo_error() {
            return mongo::is_retryable(m);
        }
        self.0.kind == ErrorKind::Unavailable
    }

    /// The SQLSTATE, when PostgreSQL reported the error.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.pg_error().and_then(|e| e.code())
    }

    /// The MongoDB error labels (TransientTransactionError, ...), kept from the driver.
    pub fn mongo_labels(&self) -> Vec<String> {
        self.mongo_error().map(|m| m.labels().iter().cloned().collect()).unwrap_or_default()
    }

    fn pg_error(&self) -> Option<&tokio_postgres::Error> {
        self.find_source::<tokio_postgres::Error>()
    }

    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        self.find_source::<mongodb::error::Error>()
    }

    fn find_source<T: StdError + 'static>(&self) -> Option<&T> {
        let mut cur: Option<&(dyn StdError + 'static)> = self.0.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<T>() {
                return Some(t);
            }
            cur = e.source();
        }
        None
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("source", &self.0.source)
            .finish()
    }
}

impl fmt::Display for Error {
    /// The message, then every cause down the chain (the driver's own Display
    /// stops at its first level, which hides TLS and I/O reasons).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)?;
        if let Some(db) = self.pg_error().and_then(|e| e.as_db_error()) {
            write!(f, ": {} (SQLSTATE {})", db.message(), db.code().code())?;
            if let Some(detail) = db.detail() {
                write!(f, "; {detail}")?;
            }
            return Ok(());
        }
        let mut written = self.0.message.clone();
        let mut cur: Option<&(dyn StdError + 'static)> = self.0.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            let text = e.to_string();
            if !text.is_empty() && !written.contains(&text) {
                write!(f, ": {text}")?;
                written.push_str(&text);
            }
            cur = e.source();
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source.as_deref().map(|e| e as _)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::new(pg::kind_of(&e), "postgres").with_source(e)
    }
}

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        Error::new(mongo::kind_of(&e), "mongodb").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_lists_every_problem_with_its_origin() {
        let e = Error::config(vec![
            ConfigProblem {
                key: "postgres.pool.min_size".into(),
                origin: "fwdb.toml:3".into(),
                message: "above max_size".into(),
            },
            ConfigProblem {
                key: "mongo.uri".into(),
                origin: "env FWDB__MONGO__URI".into(),
                message: "malformed".into(),
            },
        ]);
        let text = e.to_string();
        assert!(text.contains("2 problems"), "{text}");
        assert!(text.contains("postgres.pool.min_size (fwdb.toml:3): above max_size"), "{text}");
        assert!(text.contains("env FWDB__MONGO__URI"), "{text}");
        assert_eq!(e.config_problems().len(), 2);
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn io_timeouts_are_timeouts_and_keep_their_cause() {
        let e = Error::io("reading x", std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert!(e.is_timeout());
        assert!(StdError::source(&e).is_some());
        assert!(!e.is_retryable());
    }
}
