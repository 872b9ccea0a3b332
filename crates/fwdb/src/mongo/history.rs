//! The history of a [`Versioned`] document: entries in the document and,
//! beyond its limit, in [`Versioned::HISTORY_COLLECTION`]; pages through both;
//! past versions rebuilt from them.

use super::bson_fields;
use super::document::{date, decode, decode_as, Document};
use super::exec::{FindSpec, MongoExec};
use super::repository::id_filter;
use super::versioned::{check_version, updated_at, Versioned, VersionedRepository};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The stored version field.
pub(crate) const VERSION: &str = "version";
/// The stored field of the recent history entries.
pub(crate) const HISTORY: &str = "history";

/// One entry of a document's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(with = "bson_fields::int")]
    pub version: i64,
    #[serde(with = "bson_fields::date")]
    pub changed_at: DateTime<Utc>,
    #[serde(default)]
    pub changed_by: String,
    /// The new value of every field the change set (stored names).
    #[serde(default, with = "bson_fields::json")]
    pub changes: serde_json::Value,
}

/// One page of a document's history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after_version` for the next page.
    pub next: Option<i64>,
}

pub(crate) fn entry_doc(version: i64, at: DateTime<Utc>, by: &str, changes: BsonDocument) -> BsonDocument {
    doc! { VERSION: version, "changedAt": date(at), "changedBy": by, "changes": changes }
}

fn bad_doc<T: Document>(d: &BsonDocument, field: &str) -> Error {
    let id = super::document::shown_id(d);
    Error::new(ErrorKind::Mongo, format!("{} document {id}: field `{field}` is not an integer", T::COLLECTION))
}

pub(crate) fn get_i64<T: Document>(d: &BsonDocument, f: &str) -> Result<i64> {
    super::document::as_i64(d.get(f)).ok_or_else(|| bad_doc::<T>(d, f))
}

fn history_id(id: Uuid, version: i64) -> String {
    format!("{id}:{version:010}")
}

fn history_docs(d: &BsonDocument) -> Vec<BsonDocument> {
    match d.get(HISTORY) {
        Some(Bson::Array(a)) => a.iter().filter_map(|e| e.as_document().cloned()).collect(),
        _ => Vec::new(),
    }
}

fn parse_entry<T: Document>(e: BsonDocument) -> Result<HistoryEntry> {
    let what = format!("{} history entry {}", T::MODEL, super::document::shown_id(&e));
    decode_as(e, &what, "history entry", "_id")
}

impl<T: Versioned> VersionedRepository<T> {
    /// Moves history entries beyond the limit to the history collection
    /// (upserts: safe to repeat), then trims the document, only if no other
    /// change came in between.
    pub(crate) async fn spill<M: MongoExec>(&self, exec: &M, id: Uuid, mut d: BsonDocument) -> Result<BsonDocument> {
        // Counted in place: copying the entries only pays when some must move.
        if matches!(d.get(HISTORY), Some(Bson::Array(a)) if a.len() <= self.history_limit) {
            return Ok(d);
        }
        let entries = history_docs(&d);
        if entries.len() <= self.history_limit {
            return Ok(d);
        }
        let cut = entries.len() - self.history_limit;
        for e in &entries[..cut] {
            let v = get_i64::<T>(e, VERSION)?;
            let mut row = e.clone();
            row.insert(T::HISTORY_OWNER, id.to_string());
            let filter = doc! { "_id": history_id(id, v) };
            exec.update_one(T::HISTORY_COLLECTION, filter, doc! { "$setOnInsert": row }, true).await?;
        }
        let keep: Vec<Bson> = entries[cut..].iter().cloned().map(Bson::Document).collect();
        let version = get_i64::<T>(&d, VERSION)?;
        let filter = doc! { "_id": id.to_string(), VERSION: version };
        exec.update_one(T::COLLECTION, filter, doc! { "$set": { HISTORY: keep.clone() } }, false).await?;
        d.insert(HISTORY, keep);
        Ok(d)
    }

    /// A document's history, oldest first, `limit` entries after `after_version` (0 for the start).
    pub async fn history<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        after_version: i64,
        limit: i64,
    ) -> Result<HistoryPage> {
        let (docs, next) = self.history_docs_page(exec, id, after_version, limit).await?;
        Ok(HistoryPage { entries: docs.into_iter().map(parse_entry::<T>).collect::<Result<_>>()?, next })
    }

    /// A page of history entries as stored (BSON), from the history
    /// collection (its owner-and-version index) and then from the document.
    async fn history_docs_page<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<BsonDocument>, Option<i64>)> {
        let limit = limit.clamp(1, 1000);
        let filter = doc! { T::HISTORY_OWNER: id.to_string(), VERSION: { "$gt": after } };
        let spec = FindSpec { sort: Some(doc! { VERSION: 1 }), limit: Some(limit + 1), skip: None };
        let mut entries = exec.find(T::HISTORY_COLLECTION, filter, spec).await?;
        if (entries.len() as i64) <= limit {
            let d = exec.find_one(T::COLLECTION, id_filter(id)).await?.ok_or_else(|| missing::<T>(id))?;
            // A spill copies entries out before trimming the document: skip the overlap.
            let seen = match entries.last() {
                Some(e) => get_i64::<T>(e, VERSION)?,
                None => after,
            };
            for e in history_docs(&d) {
                if get_i64::<T>(&e, VERSION)? > seen {
                    entries.push(e);
                }
            }
        }
        if entries.len() as i64 <= limit {
            return Ok((entries, None));
        }
        entries.truncate(limit as usize);
        let next = entries.last().map(|e| get_i64::<T>(e, VERSION)).transpose()?;
        Ok((entries, next))
    }

    /// The document as it was at version `v`: its untracked fields as now,
    /// the tracked ones rebuilt by folding its history's changes forward (as
    /// stored, so dates and numbers keep their BSON types).
    pub async fn at_version<M: MongoExec>(&self, exec: &M, id: Uuid, v: i64) -> Result<T> {
        check_version::<T>(v)?;
        let current = exec.find_one(T::COLLECTION, id_filter(id)).await?.ok_or_else(|| missing::<T>(id))?;
        let now = get_i64::<T>(&current, VERSION)?;
        if v > now {
            let msg = format!("{} {id} has no version {v} (latest is {now})", T::MODEL);
            return Err(Error::new(ErrorKind::NotFound, msg));
        }
        let changing = |k: &str| {
            T::TRACKED.contains(&k) || [VERSION, HISTORY, updated_at::<T>()].contains(&k) || Some(k) == T::DELETED_AT
        };
        let mut state: BsonDocument = current.into_iter().filter(|(k, _)| !changing(k)).collect();
        let mut after = 0;
        let mut last_at = None;
        loop {
            let (entries, next) = self.history_docs_page(exec, id, after, 1000).await?;
            for e in &entries {
                if get_i64::<T>(e, VERSION)? > v {
                    break;
                }
                if let Ok(changes) = e.get_document("changes") {
                    state.extend(changes.clone());
                }
                last_at = e.get("changedAt").cloned();
            }
            match next {
                Some(n) if n < v => after = n,
                _ => break,
            }
        }
        let Some(at) = last_at else {
            let msg = format!("{} {id}: the history of version {v} is missing", T::MODEL);
            return Err(Error::new(ErrorKind::NotFound, msg));
        };
        if let Some(f) = T::DELETED_AT {
            if matches!(state.get(f), Some(Bson::Null)) {
                state.remove(f);
            }
        }
        state.insert(VERSION, v);
        state.insert(HISTORY, Bson::Array(Vec::new()));
        state.insert(updated_at::<T>(), at);
        decode(state)
    }
}

fn missing<T: Document>(id: Uuid) -> Error {
    super::repository::not_found::<T>(id)
}
