//! [`MongoRepository`]: the [`Repository`] of any [`Document`] type, on any
//! [`MongoExec`] (the [`super::Mongo`] handle or a transaction), the same
//! trait [`crate::PgRepository`] implements for tables.
//!
//! Why not the driver's typed `Collection<T>`: a model's serde id is `id`
//! (so its JSON form stays natural) while MongoDB's is `_id`, and a document
//! that does not match its model must fail naming its id and field, which
//! the driver's cursor decoding cannot say. So documents travel as BSON
//! documents through [`MongoExec`] and are converted by [`super::document`].
//!
//! A [`super::Versioned`] type has no plain repository, so its writes cannot
//! skip the version check; its repository is [`super::VersionedRepository`]:
//!
//! ```compile_fail
//! # async fn demo(db: fwdb::Mongo, id: fwdb::Uuid) -> fwdb::Result<()> {
//! use fwdb::Repository;
//! fwdb::MongoRepository::<fwdb::Design>::new().delete(&db, id).await
//! # }
//! ```
//! ```no_run
//! # async fn demo(db: fwdb::Mongo, id: fwdb::Uuid) -> fwdb::Result<()> {
//! use fwdb::Repository;
//! fwdb::VersionedRepository::<fwdb::Design>::new().delete(&db, id).await
//! # }
//! ```

use super::document::{check_size, date, decode, encode, Document, Plain};
use super::exec::{FindSpec, MongoExec};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{Page, Query};
use crate::repo::Repository;
use chrono::Utc;
use mongodb::bson::{doc, Bson};
use std::marker::PhantomData;
use uuid::Uuid;

/// The repository of document type `T`. Holds no connection (the executor
/// does); cheap to clone.
pub struct MongoRepository<T> {
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for MongoRepository<T> {
    fn clone(&self) -> Self {
        MongoRepository { _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for MongoRepository<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoRepository").field("type", &std::any::type_name::<T>()).finish()
    }
}

impl<T: Document> Default for MongoRepository<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// `{_id: <id text>}`.
pub(crate) fn id_filter(id: Uuid) -> mongodb::bson::Document {
    doc! { "_id": id.to_string() }
}

/// The document with this id, if live (no soft-delete field, or null).
pub(crate) fn live<T: Document>(id: Uuid) -> mongodb::bson::Document {
    let mut f = id_filter(id);
    if let Some(d) = T::DELETED_AT {
        f.insert(d, Bson::Null);
    }
    f
}

/// The document with this id, if soft-deleted.
pub(crate) fn deleted<T: Document>(id: Uuid) -> mongodb::bson::Document {
    let mut f = id_filter(id);
    if let Some(d) = T::DELETED_AT {
        f.insert(d, doc! { "$ne": Bson::Null });
    }
    f
}

pub(crate) fn not_found<T: Document>(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("no live {} with id {id}", T::MODEL))
}

pub(crate) fn not_deleted<T: Document>(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("no soft-deleted {} with id {id}", T::MODEL))
}

impl<T: Document> MongoRepository<T> {
    pub fn new() -> Self {
        MongoRepository { _t: PhantomData }
    }

    /// A query on this type (live documents, no order, no limit).
    pub fn query(&self) -> Query<T> {
        Query::new()
    }

    /// The documents of a query, `extra` more than its limit (a page's look-ahead).
    pub(crate) async fn fetch<M: MongoExec>(&self, exec: &M, q: &Query<T>, extra: i64) -> Result<Vec<T>> {
        let m = q.to_mongo()?;
        let spec = FindSpec { sort: Some(m.sort), limit: m.limit.map(|l| l + extra), skip: m.skip };
        exec.find(T::COLLECTION, m.filter, spec).await?.into_iter().map(decode).collect()
    }

    pub(crate) async fn find_by_id_in<M: MongoExec>(&self, exec: &M, id: Uuid) -> Result<Option<T>> {
        exec.find_one(T::COLLECTION, live::<T>(id)).await?.map(decode).transpose()
    }

    pub(crate) async fn page<M: MongoExec>(&self, exec: &M, query: &Query<T>) -> Result<Page<T>> {
        let limit = query.page_limit()?;
        let q = query.clone().limit(limit);
        let mut items = self.fetch(exec, &q, 1).await?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|l| query.cursor_for(l)).transpose()?
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub(crate) async fn count_in<M: MongoExec>(&self, exec: &M, query: &Query<T>) -> Result<u64> {
        exec.count(T::COLLECTION, query.mongo_filter()?).await
    }

    pub(crate) async fn exists_in<M: MongoExec>(&self, exec: &M, query: &Query<T>) -> Result<bool> {
        let filter = query.mongo_filter()?;
        let spec = FindSpec { sort: None, limit: Some(1), skip: None };
        Ok(!exec.find(T::COLLECTION, filter, spec).await?.is_empty())
    }

    pub(crate) async fn by_ids<M: MongoExec>(&self, exec: &M, ids: &[Uuid]) -> Result<Vec<T>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.fetch(exec, &self.query().filter(T::ID.in_(ids.iter().copied())), 0).await
    }

    /// Hard delete, live or soft-deleted.
    pub(crate) async fn purge_in<M: MongoExec>(&self, exec: &M, id: Uuid) -> Result<()> {
        if exec.delete_one(T::COLLECTION, id_filter(id)).await? == 0 {
            return Err(Error::new(ErrorKind::NotFound, format!("no {} with id {id}", T::MODEL)));
        }
        Ok(())
    }

    /// A new document, checked and encoded.
    fn new_doc(new: &T::New, id: Uuid) -> Result<mongodb::bson::Document> {
        T::check_new(new)?;
        let d = encode(&T::from_new(new, id, Utc::now()))?;
        check_size(T::MODEL, &d)?;
        Ok(d)
    }
}

/// The plain repository writes: for [`Plain`] types only; a versioned type's
/// writes go through [`super::VersionedRepository`].
impl<T: Document<Mode = Plain>, M: MongoExec> Repository<T, M> for MongoRepository<T> {
    type New = T::New;
    type Patch = T::Patch;

    async fn find_by_id(&self, exec: &M, id: Uuid) -> Result<Option<T>> {
        self.find_by_id_in(exec, id).await
    }

    async fn get(&self, exec: &M, id: Uuid) -> Result<T> {
        self.find_by_id_in(exec, id).await?.ok_or_else(|| not_found::<T>(id))
    }

    async fn find_all(&self, exec: &M, query: &Query<T>) -> Result<Vec<T>> {
        self.fetch(exec, query, 0).await
    }

    async fn find_page(&self, exec: &M, query: &Query<T>) -> Result<Page<T>> {
        self.page(exec, query).await
    }

    async fn count(&self, exec: &M, query: &Query<T>) -> Result<u64> {
        self.count_in(exec, query).await
    }

    async fn exists(&self, exec: &M, query: &Query<T>) -> Result<bool> {
        self.exists_in(exec, query).await
    }

    /// Returns the document as stored (decoded from what was written).
    async fn create(&self, exec: &M, new: &T::New) -> Result<T> {
        let d = Self::new_doc(new, Uuid::new_v4())?;
        let out = decode(d.clone())?;
        exec.insert_one(T::COLLECTION, d).await?;
        Ok(out)
    }

    /// Checks all, then one `insertMany` (ordered). Atomic only inside a transaction.
    async fn create_many(&self, exec: &M, new: &[T::New]) -> Result<Vec<Uuid>> {
        let mut docs = Vec::with_capacity(new.len());
        let mut ids = Vec::with_capacity(new.len());
        for (i, n) in new.iter().enumerate() {
            let id = Uuid::new_v4();
            let d = Self::new_doc(n, id).map_err(|e| Error::new(e.kind(), format!("{} {i}: {e}", T::MODEL)))?;
            ids.push(id);
            docs.push(d);
        }
        if !docs.is_empty() {
            exec.insert_many(T::COLLECTION, docs).await?;
        }
        Ok(ids)
    }

    /// Sets the patch's fields (and [`Document::UPDATED_AT`]) on a live document.
    async fn update(&self, exec: &M, id: Uuid, patch: &T::Patch) -> Result<T> {
        T::check_patch(patch)?;
        let mut set = T::patch_fields(patch)?;
        if set.is_empty() {
            return self.get(exec, id).await;
        }
        if let Some(u) = T::UPDATED_AT {
            set.insert(u, date(Utc::now()));
        }
        let after = exec.find_one_and_update(T::COLLECTION, live::<T>(id), doc! { "$set": set }).await?;
        after.map(decode).transpose()?.ok_or_else(|| not_found::<T>(id))
    }

    /// Soft delete (sets the soft-delete field); a hard delete for a type without one.
    async fn delete(&self, exec: &M, id: Uuid) -> Result<()> {
        let Some(field) = T::DELETED_AT else { return self.purge_in(exec, id).await };
        let now = date(Utc::now());
        let mut set = doc! { field: now.clone() };
        if let Some(u) = T::UPDATED_AT {
            set.insert(u, now);
        }
        if exec.update_one(T::COLLECTION, live::<T>(id), doc! { "$set": set }, false).await? == 0 {
            return Err(not_found::<T>(id));
        }
        Ok(())
    }

    /// Removes the soft-delete field: the document looks like one never deleted.
    async fn restore(&self, exec: &M, id: Uuid) -> Result<T> {
        let Some(field) = T::DELETED_AT else { return self.get(exec, id).await };
        let mut update = doc! { "$unset": { field: "" } };
        if let Some(u) = T::UPDATED_AT {
            update.insert("$set", doc! { u: date(Utc::now()) });
        }
        let after = exec.find_one_and_update(T::COLLECTION, deleted::<T>(id), update).await?;
        after.map(decode).transpose()?.ok_or_else(|| not_deleted::<T>(id))
    }

    async fn purge(&self, exec: &M, id: Uuid) -> Result<()> {
        self.purge_in(exec, id).await
    }

    async fn find_many_by_ids(&self, exec: &M, ids: &[Uuid]) -> Result<Vec<T>> {
        self.by_ids(exec, ids).await
    }
}
