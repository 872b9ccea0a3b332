//! Versions and history for any document type that opts in ([`Versioned`]):
//! [`VersionedRepository`] is then its only [`Repository`].
//!
//! Every change (update, soft delete and restore, a type's own transitions)
//! carries the version the caller read; the update's filter includes it, so a
//! stale version matches nothing and fails with a conflict (never a silent
//! overwrite). A change increments `version` and pushes a history entry
//! `{version, changedAt, changedBy, changes}` where `changes` holds the new
//! value of every field it set (version 1's entry holds every tracked field,
//! so any version can be rebuilt by folding entries forward). The document
//! keeps the last `history_limit` entries; older ones move to
//! [`Versioned::HISTORY_COLLECTION`] (`_id` = `<id>:<version, 10 digits>`,
//! which makes the move idempotent, plus [`Versioned::HISTORY_OWNER`], which
//! with `version` is the index history pages on).
//!
//! The trait's `delete` and `restore` carry no version: they are versioned
//! changes at the version read just before (a change landing in between
//! still conflicts), attributed to [`VersionedRepository::UNATTRIBUTED`].

use super::document::{check_size, date, decode, encode, Document, Tracked};
use super::exec::MongoExec;
use super::history::{entry_doc, HISTORY, VERSION};
use super::repository::{deleted, id_filter, live, not_deleted, not_found, MongoRepository};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{Page, Query};
use crate::repo::Repository;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use uuid::Uuid;

/// History entries kept in the document by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 20;

/// A document type with versions and history. The stored document has
/// `version` (from 1), `history` (the recent entries), the soft-delete field
/// and [`Document::UPDATED_AT`].
pub trait Versioned: Document<Mode = Tracked> {
    /// Where history entries beyond the document's limit move.
    const HISTORY_COLLECTION: &'static str;
    /// The field of a moved entry naming its document (`designId`).
    const HISTORY_OWNER: &'static str;
    /// The stored fields history records, in stored order: version 1's entry
    /// holds them all; [`VersionedRepository::at_version`] rebuilds them.
    const TRACKED: &'static [&'static str];

    /// Who version 1's history entry names.
    fn created_by(new: &Self::New) -> String;
    /// The version a patch was made from, and who makes it.
    fn patch_version(patch: &Self::Patch) -> (i64, &str);
}

/// The documents a versioned change may apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeScope {
    Live,
    Deleted,
}

/// One versioned change: the stored fields it sets, the documents it may
/// apply to, and an extra condition with the reason it failed.
#[derive(Debug, Clone)]
pub struct VersionedChange<'a> {
    pub changes: BsonDocument,
    pub scope: ChangeScope,
    pub guard: Option<(BsonDocument, &'a str)>,
}

impl VersionedChange<'_> {
    pub fn new(changes: BsonDocument, scope: ChangeScope) -> VersionedChange<'static> {
        VersionedChange { changes, scope, guard: None }
    }
}

/// The repository of a [`Versioned`] type. Cheap to clone; holds no connection.
pub struct VersionedRepository<T> {
    pub(crate) plain: MongoRepository<T>,
    pub(crate) history_limit: usize,
}

impl<T> Clone for VersionedRepository<T> {
    fn clone(&self) -> Self {
        VersionedRepository { plain: self.plain.clone(), history_limit: self.history_limit }
    }
}

impl<T> std::fmt::Debug for VersionedRepository<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedRepository")
            .field("type", &std::any::type_name::<T>())
            .field("history_limit", &self.history_limit)
            .finish()
    }
}

impl<T: Versioned> Default for VersionedRepository<T> {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn invalid<T: Document>(field: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Validation, format!("{}.{field}: {why}", T::MODEL))
}

pub(crate) fn check_version<T: Document>(v: i64) -> Result<()> {
    if v < 1 {
        return Err(invalid::<T>("version", format!("expected version {v} is not a version (they start at 1)")));
    }
    Ok(())
}

pub(crate) fn check_by<T: Document>(by: &str) -> Result<()> {
    if by.trim().is_empty() {
        return Err(invalid::<T>("changedBy", "must not be empty"));
    }
    if by.contains('\0') {
        return Err(invalid::<T>("changedBy", "must not contain NUL bytes"));
    }
    let n = by.chars().count();
    if n > 255 {
        return Err(invalid::<T>("changedBy", format!("{n} characters, at most 255")));
    }
    Ok(())
}

fn scoped<T: Document>(id: Uuid, scope: ChangeScope) -> BsonDocument {
    match scope {
        ChangeScope::Live => live::<T>(id),
        ChangeScope::Deleted => deleted::<T>(id),
    }
}

fn out_of_scope<T: Document>(id: Uuid, scope: ChangeScope) -> Error {
    match scope {
        ChangeScope::Live => {
            Error::new(ErrorKind::NotFound, format!("no live {} with id {id} (missing or soft-deleted)", T::MODEL))
        }
        ChangeScope::Deleted => not_deleted::<T>(id),
    }
}

fn is_deleted<T: Document>(d: &BsonDocument) -> bool {
    T::DELETED_AT.is_some_and(|f| !matches!(d.get(f), None | Some(Bson::Null)))
}

pub(crate) fn updated_at<T: Document>() -> &'static str {
    T::UPDATED_AT.unwrap_or("updatedAt")
}

/// The update of a versioned change: set the fields, increment the version,
/// append the history entry. A restore's null soft-delete field is recorded
/// in the history but removed from the document, which then looks like one
/// never deleted (a sparse index on it skips it).
fn versioned_update<T: Document>(expected: i64, now: DateTime<Utc>, by: &str, changes: BsonDocument) -> BsonDocument {
    let mut set = BsonDocument::new();
    let mut unset = BsonDocument::new();
    for (k, v) in &changes {
        if Some(k.as_str()) == T::DELETED_AT && *v == Bson::Null {
            unset.insert(k, "");
        } else {
            set.insert(k, v.clone());
        }
    }
    set.insert(updated_at::<T>(), date(now));
    let mut update = doc! {
        "$set": set,
        "$inc": { VERSION: 1i64 },
        "$push": { HISTORY: entry_doc(expected + 1, now, by, changes) },
    };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update
}

impl<T: Versioned> VersionedRepository<T> {
    /// Who the history names for the trait's `delete` and `restore`, which take no actor.
    pub const UNATTRIBUTED: &'static str = "fwdb:unattributed";

    pub fn new() -> Self {
        VersionedRepository { plain: MongoRepository::new(), history_limit: DEFAULT_HISTORY_LIMIT }
    }

    /// How many history entries the document keeps (at least 1); older ones
    /// move to [`Versioned::HISTORY_COLLECTION`].
    pub fn with_history_limit(mut self, n: usize) -> Self {
        self.history_limit = n.max(1);
        self
    }

    /// A query on this type (live documents, no order, no limit).
    pub fn query(&self) -> Query<T> {
        Query::new()
    }

    /// The documents of a query.
    pub async fn fetch<M: MongoExec>(&self, exec: &M, q: &Query<T>) -> Result<Vec<T>> {
        self.plain.fetch(exec, q, 0).await
    }

    /// The document version 1 stores: the model's fields, `version` 1 and
    /// the first history entry holding every tracked field; checked and
    /// within MongoDB's size limit.
    pub fn first_version(new: &T::New, id: Uuid, now: DateTime<Utc>) -> Result<BsonDocument> {
        T::check_new(new)?;
        let mut d = encode(&T::from_new(new, id, now))?;
        let mut content = BsonDocument::new();
        for f in T::TRACKED {
            content.insert(*f, d.get(*f).cloned().unwrap_or(Bson::Null));
        }
        d.insert(VERSION, 1i64);
        d.insert(HISTORY, vec![Bson::Document(entry_doc(1, now, &T::created_by(new), content))]);
        check_size(T::MODEL, &d)?;
        Ok(d)
    }

    /// Why a versioned change matched nothing: gone, stale, not in its scope
    /// (live or soft-deleted), or the state guard. A stale version comes
    /// first: whatever the document's state now, the caller decided on an old one.
    pub async fn diagnose<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        scope: ChangeScope,
        guard: &str,
    ) -> Error {
        let d = match exec.find_one(T::COLLECTION, id_filter(id)).await {
            Err(e) => return e,
            Ok(None) => return not_found::<T>(id),
            Ok(Some(d)) => d,
        };
        let name = T::MODEL;
        match super::history::get_i64::<T>(&d, VERSION) {
            Err(e) => e,
            Ok(v) if v != expected => Error::new(
                ErrorKind::Conflict,
                format!("{name} {id}: stale version {expected} (it is now at version {v}); read it again and retry"),
            ),
            Ok(_) if is_deleted::<T>(&d) != (scope == ChangeScope::Deleted) => {
                let state = if scope == ChangeScope::Live { "is soft-deleted" } else { "is not soft-deleted" };
                Error::new(ErrorKind::NotFound, format!("{name} {id} {state}"))
            }
            Ok(_) => Error::new(ErrorKind::Conflict, format!("{name} {id}: {guard}")),
        }
    }

    /// The versioned change every write goes through: it applies only to the
    /// version the caller read, increments it and records a history entry.
    pub async fn change<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        change: VersionedChange<'_>,
    ) -> Result<T> {
        check_version::<T>(expected)?;
        check_by::<T>(by)?;
        let mut filter = scoped::<T>(id, change.scope);
        filter.insert(VERSION, expected);
        let mut why = "the change is not allowed in its current state";
        if let Some((g, w)) = change.guard {
            filter.extend(g);
            why = w;
        }
        let update = versioned_update::<T>(expected, Utc::now(), by, change.changes);
        let Some(after) = exec.find_one_and_update(T::COLLECTION, filter, update).await? else {
            return Err(self.diagnose(exec, id, expected, change.scope, why).await);
        };
        decode(self.spill(exec, id, after).await?)
    }

    /// Soft-deletes at version `expected` (a versioned change: the version
    /// increments and the history records the soft-delete field).
    pub async fn soft_delete<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<T> {
        let field = soft_delete_field::<T>()?;
        self.change(exec, id, expected, by, VersionedChange::new(doc! { field: date(Utc::now()) }, ChangeScope::Live))
            .await
    }

    /// Brings back a soft-deleted document at version `expected` (a versioned
    /// change; the history records the field as null).
    pub async fn restore_deleted<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<T> {
        let field = soft_delete_field::<T>()?;
        self.change(exec, id, expected, by, VersionedChange::new(doc! { field: Bson::Null }, ChangeScope::Deleted))
            .await
    }

    /// The version of the document now, for the trait's delete and restore, which carry none.
    async fn current_version<M: MongoExec>(&self, exec: &M, id: Uuid, scope: ChangeScope) -> Result<i64> {
        let d =
            exec.find_one(T::COLLECTION, scoped::<T>(id, scope)).await?.ok_or_else(|| out_of_scope::<T>(id, scope))?;
        super::history::get_i64::<T>(&d, VERSION)
    }
}

fn soft_delete_field<T: Document>() -> Result<&'static str> {
    T::DELETED_AT.ok_or_else(|| Error::new(ErrorKind::Internal, format!("{} has no soft-delete field", T::MODEL)))
}

impl<T: Versioned, M: MongoExec> Repository<T, M> for VersionedRepository<T> {
    type New = T::New;
    type Patch = T::Patch;

    async fn find_by_id(&self, exec: &M, id: Uuid) -> Result<Option<T>> {
        self.plain.find_by_id_in(exec, id).await
    }

    async fn get(&self, exec: &M, id: Uuid) -> Result<T> {
        self.plain.find_by_id_in(exec, id).await?.ok_or_else(|| not_found::<T>(id))
    }

    async fn find_all(&self, exec: &M, query: &Query<T>) -> Result<Vec<T>> {
        self.plain.fetch(exec, query, 0).await
    }

    async fn find_page(&self, exec: &M, query: &Query<T>) -> Result<Page<T>> {
        self.plain.page(exec, query).await
    }

    async fn count(&self, exec: &M, query: &Query<T>) -> Result<u64> {
        self.plain.count_in(exec, query).await
    }

    async fn exists(&self, exec: &M, query: &Query<T>) -> Result<bool> {
        self.plain.exists_in(exec, query).await
    }

    /// Version 1, its history entry naming [`Versioned::created_by`].
    async fn create(&self, exec: &M, new: &T::New) -> Result<T> {
        let d = Self::first_version(new, Uuid::new_v4(), Utc::now())?;
        let out = decode(d.clone())?;
        exec.insert_one(T::COLLECTION, d).await?;
        Ok(out)
    }

    /// Checks all, then one `insertMany` (ordered). Atomic only inside a transaction.
    async fn create_many(&self, exec: &M, new: &[T::New]) -> Result<Vec<Uuid>> {
        let now = Utc::now();
        let mut ids = Vec::with_capacity(new.len());
        let mut docs = Vec::with_capacity(new.len());
        for (i, n) in new.iter().enumerate() {
            let id = Uuid::new_v4();
            let d =
                Self::first_version(n, id, now).map_err(|e| Error::new(e.kind(), format!("{} {i}: {e}", T::MODEL)))?;
            ids.push(id);
            docs.push(d);
        }
        if !docs.is_empty() {
            exec.insert_many(T::COLLECTION, docs).await?;
        }
        Ok(ids)
    }

    /// A versioned change from the patch's version (stale: a conflict).
    async fn update(&self, exec: &M, id: Uuid, patch: &T::Patch) -> Result<T> {
        T::check_patch(patch)?;
        let (expected, by) = T::patch_version(patch);
        self.change(exec, id, expected, by, VersionedChange::new(T::patch_fields(patch)?, ChangeScope::Live)).await
    }

    /// A versioned soft delete at the current version (the trait carries
    /// none), attributed to [`Self::UNATTRIBUTED`]; a change landing between
    /// the read and the write fails with the usual stale-version conflict.
    /// Callers that know the version and the actor use [`Self::soft_delete`].
    async fn delete(&self, exec: &M, id: Uuid) -> Result<()> {
        let v = self.current_version(exec, id, ChangeScope::Live).await?;
        self.soft_delete(exec, id, v, Self::UNATTRIBUTED).await.map(|_| ())
    }

    /// Like `delete`: at the current version; see [`Self::restore_deleted`].
    async fn restore(&self, exec: &M, id: Uuid) -> Result<T> {
        let v = self.current_version(exec, id, ChangeScope::Deleted).await?;
        self.restore_deleted(exec, id, v, Self::UNATTRIBUTED).await
    }

    /// The document and every history entry moved out of it.
    async fn purge(&self, exec: &M, id: Uuid) -> Result<()> {
        self.plain.purge_in(exec, id).await?;
        exec.delete_many(T::HISTORY_COLLECTION, doc! { T::HISTORY_OWNER: id.to_string() }).await?;
        Ok(())
    }

    async fn find_many_by_ids(&self, exec: &M, ids: &[Uuid]) -> Result<Vec<T>> {
        self.plain.by_ids(exec, ids).await
    }
}
