//! [`Document`]: what a MongoDB model declares so the generic repositories
//! ([`super::MongoRepository`], [`super::VersionedRepository`]) can store it,
//! and the one encoder and decoder every document type shares.
//!
//! The model is serde-based: its `Serialize`/`Deserialize` are the stored
//! form (with the [`super::bson_fields`] helpers for ids, dates and free
//! JSON) and, unchanged, its JSON form for APIs. Two conventions keep both
//! forms natural:
//! - the id field is named `id` in the struct's serde form and stored as
//!   `_id` (the repository renames it both ways), as its UUID text;
//! - a soft-delete field ([`Entity::DELETED_AT`]) that is null is not
//!   stored at all (the sparse index on it skips live documents).
//!
//! Reading is lenient where serde is (an Int32 where an i64 is expected, a
//! missing optional field, an extra field another client wrote); anything
//! else fails with an error naming the collection, the document id and the
//! field path.

use crate::error::{Error, ErrorKind, Result};
use crate::query::Entity;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// MongoDB's limit on one document.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// A MongoDB model. Everything here is an associated const or a plain
/// function of the model's own types, so a derive can write it.
///
/// `Entity` gives the typed columns (`ID` is `_id`), the field values a
/// cursor needs, and the soft-delete field (`DELETED_AT`, `None` for none),
/// so one [`crate::Query`] compiles to this collection's filter and sort.
pub trait Document: Entity + Serialize + DeserializeOwned {
    /// The collection the documents live in.
    const COLLECTION: &'static str = Self::TABLE;
    /// The model's name in messages (`no live design with id ...`).
    const MODEL: &'static str = Self::COLLECTION;
    /// The stored field every write sets to its time, if any.
    const UPDATED_AT: Option<&'static str> = None;
    /// Which repository writes it: [`Plain`] ([`super::MongoRepository`]),
    /// or [`Tracked`] ([`super::VersionedRepository`], with [`super::Versioned`]),
    /// so a versioned type can never be written past its version check.
    type Mode: WriteMode;
    /// What `create` takes.
    type New: Send + Sync;
    /// What `update` takes.
    type Patch: Send + Sync;

    /// Every rule on a new document checkable without a server; errors name the field.
    fn check_new(_new: &Self::New) -> Result<()> {
        Ok(())
    }
    /// The document `create` stores, with its new id and the time of the write.
    fn from_new(new: &Self::New, id: Uuid, now: DateTime<Utc>) -> Self;
    /// Every rule on a patch checkable without a server.
    fn check_patch(_patch: &Self::Patch) -> Result<()> {
        Ok(())
    }
    /// The stored fields the patch sets, with their stored values (usually
    /// [`super::bson_fields::to_document`] of a serde struct whose unset fields are skipped).
    fn patch_fields(patch: &Self::Patch) -> Result<bson::Document>;
}

mod sealed {
    pub trait Sealed {}
}

/// How a document type is written: [`Plain`] or [`Tracked`].
pub trait WriteMode: sealed::Sealed + Send + Sync + 'static {}

/// Written by [`super::MongoRepository`]: plain `$set`s.
#[derive(Debug, Clone, Copy)]
pub enum Plain {}
/// Written by [`super::VersionedRepository`] only: every change checks and
/// increments the version and records history.
#[derive(Debug, Clone, Copy)]
pub enum Tracked {}

impl sealed::Sealed for Plain {}
impl sealed::Sealed for Tracked {}
impl WriteMode for Plain {}
impl WriteMode for Tracked {}

/// The document as stored: `id` becomes `_id` (first), a null soft-delete field is left out.
pub fn encode<T: Document>(value: &T) -> Result<bson::Document> {
    let mut fields =
        super::bson_fields::to_document(value).map_err(|e| Error::new(e.kind(), format!("{}: {e}", T::MODEL)))?;
    let mut d = bson::Document::new();
    if let Some(id) = fields.remove("id") {
        d.insert("_id", id);
    }
    if let Some(f) = T::DELETED_AT {
        if matches!(fields.get(f), Some(Bson::Null)) {
            fields.remove(f);
        }
    }
    d.extend(fields);
    Ok(d)
}

/// The id of a stored document, for messages.
pub(crate) fn shown_id(d: &bson::Document) -> String {
    match d.get("_id") {
        Some(Bson::String(s)) => s.clone(),
        Some(b) => b.to_string(),
        None => "(no _id)".into(),
    }
}

/// A stored document as `T`: errors name the collection, the document id and the field.
pub fn decode<T: Document>(mut d: bson::Document) -> Result<T> {
    let shown = shown_id(&d);
    if let Some(id) = d.remove("_id") {
        d.insert("id", id);
    }
    decode_as(d, &format!("{} document {shown}", T::COLLECTION), T::MODEL, "id")
}

/// A stored value as `V` (read as the driver reads bytes: not human-readable);
/// an error names `what`, the field, and says it does not match `model`.
/// `id_key` is shown as `_id`.
pub(crate) fn decode_as<V: DeserializeOwned>(d: bson::Document, what: &str, model: &str, id_key: &str) -> Result<V> {
    #[allow(deprecated)] // The option is the only way to read a `Bson` value as the driver reads bytes.
    let options = bson::DeserializerOptions::builder().human_readable(false).build();
    let de = bson::Deserializer::new_with_options(Bson::Document(d), options);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == id_key { "_id".to_string() } else { path };
        Error::new(
            ErrorKind::Mongo,
            format!("{what}: field `{field}` does not match the {model} model: {}", e.into_inner()),
        )
    })
}

/// Rejects a document over MongoDB's 16 MiB limit before it is sent.
pub fn check_size(what: &str, d: &bson::Document) -> Result<()> {
    let n = bson::to_vec(d).map(|v| v.len()).unwrap_or(usize::MAX);
    if n > MAX_DOCUMENT_BYTES {
        return Err(Error::new(
            ErrorKind::Validation,
            format!("{what}.(document): {n} bytes, over MongoDB's 16 MiB document limit ({MAX_DOCUMENT_BYTES} bytes)"),
        ));
    }
    Ok(())
}

/// A BSON date of `t` (millisecond precision, as stored).
pub(crate) fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis()))
}

/// `Bson` as an integer when it is one (Int32, Int64, or a whole double).
pub(crate) fn as_i64(b: Option<&Bson>) -> Option<i64> {
    match b {
        Some(Bson::Int32(i)) => Some(i64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i),
        Some(Bson::Double(x)) if x.fract() == 0.0 => Some(*x as i64),
        _ => None,
    }
}
