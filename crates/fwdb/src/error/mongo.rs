//! MongoDB's errors, classified in one place: the server codes fwdb acts on
//! and the driver's labels.

use super::ErrorKind;
use mongodb::error::{Error as MongoError, ErrorKind as M, WriteFailure};

/// E11000: a unique index refused the document.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// DocumentValidationFailure: the collection's `$jsonSchema` refused it.
pub(crate) const DOCUMENT_VALIDATION_FAILURE: i32 = 121;
/// WriteConflict: a concurrent transaction changed the document.
pub(crate) const WRITE_CONFLICT: i32 = 112;

/// The kind of a driver error.
pub(crate) fn kind_of(e: &MongoError) -> ErrorKind {
    match (&*e.kind, server_code(e)) {
        (M::ServerSelection { .. }, _) => ErrorKind::Unavailable,
        (_, Some(DUPLICATE_KEY | WRITE_CONFLICT)) => ErrorKind::Conflict,
        (_, Some(DOCUMENT_VALIDATION_FAILURE)) => ErrorKind::Validation,
        _ => ErrorKind::Mongo,
    }
}

/// The server's error code, wherever the driver put it (a command error, a
/// write error, the first write error of a bulk insert).
pub(crate) fn server_code(e: &MongoError) -> Option<i32> {
    match &*e.kind {
        M::Command(c) => Some(c.code),
        M::Write(WriteFailure::WriteError(w)) => Some(w.code),
        M::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        M::InsertMany(m) => m.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        _ => None,
    }
}

pub(crate) fn is_duplicate_key(e: &MongoError) -> bool {
    server_code(e) == Some(DUPLICATE_KEY)
}

/// Running it again may succeed, as the driver's labels say.
pub(crate) fn is_retryable(e: &MongoError) -> bool {
    use mongodb::error::{RETRYABLE_WRITE_ERROR, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
    [TRANSIENT_TRANSACTION_ERROR, RETRYABLE_WRITE_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT]
        .iter()
        .any(|l| e.contains_label(l))
}
