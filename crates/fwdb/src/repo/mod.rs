//! Repositories (architecture 5.1): one trait, [`Repository`], implemented once
//! for every [`Record`] by [`PgRepository`], generic over the [`Executor`] it
//! runs on (the routed pool, a transaction, or a plain connection).
//!
//! Soft-deleted rows are invisible unless a query asks (`with_deleted`,
//! `only_deleted`). `created_by` / `updated_by` come from `exec.actor()`; wrap
//! any executor with [`with_actor`] to set one for a call.

mod actor;
mod conflict;
mod pg;
mod statements;

pub use crate::model::Record;
pub use actor::{with_actor, WithActor};
pub use statements::Prepared;

use crate::error::Result;
use crate::postgres::Consistency;
use crate::query::{Page, Query};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// The repository operations of architecture 5.1, store-independent: `T` is
/// the entity, `X` what the calls run on (for PostgreSQL any [`Executor`]: the
/// routed cluster, a transaction, a connection; for MongoDB any
/// [`crate::mongo::MongoExec`]: the [`crate::Mongo`] handle or a transaction).
/// Callers write `repo.find_by_id(&exec, id)` whatever the store.
pub trait Repository<T, X: ?Sized>: Send + Sync {
    /// What `create` takes.
    type New: Send + Sync;
    /// What `update` takes.
    type Patch: Send + Sync;
    /// The live row with this id.
    fn find_by_id(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<Option<T>>> + Send;
    /// The live row with this id, or a not-found error.
    fn get(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<T>> + Send;
    /// The rows the query selects (filter, order, limit, offset or cursor).
    fn find_all(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<Vec<T>>> + Send;
    /// One keyset page and the cursor of the next.
    fn find_page(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<Page<T>>> + Send;
    fn count(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<u64>> + Send;
    fn exists(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<bool>> + Send;
    /// Inserts one row; returns it as stored.
    fn create(&self, exec: &X, new: &Self::New) -> impl Future<Output = Result<T>> + Send;
    /// Inserts all rows at once (PostgreSQL: ONE statement, `INSERT ... SELECT * FROM
    /// unnest($1::uuid[], ...)`), all or none; returns their ids in input order.
    fn create_many(&self, exec: &X, new: &[Self::New]) -> impl Future<Output = Result<Vec<Uuid>>> + Send;
    /// Sets the fields the patch has on a live row; returns the row.
    fn update(&self, exec: &X, id: Uuid, patch: &Self::Patch) -> impl Future<Output = Result<T>> + Send;
    /// Soft delete: sets deleted_at on a live row.
    fn delete(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// Undoes a soft delete; returns the row.
    fn restore(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<T>> + Send;
    /// Hard delete, live or soft-deleted (for admins).
    fn purge(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// The live rows among these ids, in one query (`id = ANY($1)`, `_id: {$in}`); order not kept.
    fn find_many_by_ids(&self, exec: &X, ids: &[Uuid]) -> impl Future<Output = Result<Vec<T>>> + Send;
}

/// The PostgreSQL repository of entity `T`.
pub struct PgRepository<T> {
    pub(crate) consistency: Consistency,
    /// The hottest statements' text, looked up in the shared cache once per
    /// repository (and its clones) instead of once per call: that lookup
    /// (hashing the key, a read lock, an `Arc` clone) was a measurable part
    /// of a point read's CPU cost.
    hot: Arc<HotSql>,
    _t: PhantomData<fn() -> T>,
}

/// See [`PgRepository::hot`].
#[derive(Default)]
struct HotSql {
    find_by_id: OnceLock<Arc<str>>,
    create: OnceLock<Arc<str>>,
}

impl<T> Clone for PgRepository<T> {
    fn clone(&self) -> Self {
        PgRepository { consistency: self.consistency, hot: self.hot.clone(), _t: PhantomData }
    }
}

impl<T: Record> Default for PgRepository<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Record> PgRepository<T> {
    pub fn new() -> Self {
        PgRepository { consistency: Consistency::Eventual, hot: Arc::default(), _t: PhantomData }
    }

    /// The freshness of this repository's reads by id (queries carry their own).
    pub fn with_consistency(mut self, c: Consistency) -> Self {
        self.consistency = c;
        self
    }

    /// A query on this entity (live rows, no order, no limit).
    pub fn query(&self) -> Query<T> {
        Query::new().consistency(self.consistency)
    }
}
