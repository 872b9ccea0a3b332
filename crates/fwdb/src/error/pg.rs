//! PostgreSQL's errors, classified in one place: every SQLSTATE fwdb acts on
//! is named here, through tokio-postgres' `SqlState` constants.

use super::ErrorKind;
use tokio_postgres::error::SqlState;

/// The kind of a driver error.
pub(crate) fn kind_of(e: &tokio_postgres::Error) -> ErrorKind {
    match e.code() {
        Some(c) if is_conflict(c) => ErrorKind::Conflict,
        Some(c) if is_timeout(c) => ErrorKind::Timeout,
        _ if e.is_closed() => ErrorKind::Unavailable,
        _ => ErrorKind::Postgres,
    }
}

/// A unique or exclusion constraint refused the row: another one holds its key.
pub(crate) fn is_conflict(c: &SqlState) -> bool {
    *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::EXCLUSION_VIOLATION
}

/// A row refers to no row, or a row is still referred to.
pub(crate) fn is_foreign_key_violation(c: &SqlState) -> bool {
    *c == SqlState::FOREIGN_KEY_VIOLATION
}

/// `statement_timeout` (query_canceled) or `lock_timeout` / NOWAIT.
pub(crate) fn is_timeout(c: &SqlState) -> bool {
    *c == SqlState::QUERY_CANCELED || *c == SqlState::LOCK_NOT_AVAILABLE
}

/// Running it again may succeed: a serialization failure, a deadlock, or a
/// connection-class error.
pub(crate) fn is_retryable(c: &SqlState) -> bool {
    is_serialization_failure(c) || c.code().starts_with("08")
}

/// What a transaction is retried on: 40001 and 40P01.
pub(crate) fn is_serialization_failure(c: &SqlState) -> bool {
    *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
}

/// The server went away: a connection-class error or a shutdown.
pub(crate) fn is_server_gone(c: &SqlState) -> bool {
    c.code().starts_with("08")
        || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(c)
}

/// A write reached a server in recovery: a demoted primary.
pub(crate) fn is_read_only(c: &SqlState) -> bool {
    *c == SqlState::READ_ONLY_SQL_TRANSACTION
}

/// A password or role the server refused.
pub(crate) fn is_auth_failure(c: &SqlState) -> bool {
    *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
}

/// A cached prepared statement the server no longer accepts ("cached plan
/// must not change result type", "prepared statement does not exist").
pub(crate) fn is_stale_statement(c: &SqlState) -> bool {
    *c == SqlState::FEATURE_NOT_SUPPORTED || *c == SqlState::INVALID_SQL_STATEMENT_NAME
}

/// A relation that does not exist (yet: a table a migration creates).
pub(crate) fn is_undefined_table(c: &SqlState) -> bool {
    *c == SqlState::UNDEFINED_TABLE
}

/// A transaction that an earlier error aborted.
pub(crate) fn is_in_failed_transaction(c: &SqlState) -> bool {
    *c == SqlState::IN_FAILED_SQL_TRANSACTION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sqlstate_fwdb_acts_on_has_one_meaning() {
        assert!(is_conflict(&SqlState::UNIQUE_VIOLATION) && is_conflict(&SqlState::EXCLUSION_VIOLATION));
        assert!(
            !is_conflict(&SqlState::FOREIGN_KEY_VIOLATION)
                && is_foreign_key_violation(&SqlState::FOREIGN_KEY_VIOLATION)
        );
        assert!(is_timeout(&SqlState::QUERY_CANCELED) && is_timeout(&SqlState::LOCK_NOT_AVAILABLE));
        assert!(is_retryable(&SqlState::T_R_DEADLOCK_DETECTED) && is_retryable(&SqlState::CONNECTION_FAILURE));
        assert!(!is_retryable(&SqlState::UNIQUE_VIOLATION));
        assert!(is_server_gone(&SqlState::ADMIN_SHUTDOWN) && !is_server_gone(&SqlState::QUERY_CANCELED));
    }
}
