//! Design documents (architecture 7.2) in the `designs` collection: the model,
//! its validation (in Rust, before any write, with field-level errors; the
//! server's $jsonSchema validator of the migrations checks again), and the
//! design repository: the same [`Repository`] trait as PostgreSQL, plus
//! versioned changes with history.
//!
//! Ids are UUIDs stored as their canonical text (`_id`, `userId`, `avatarId`,
//! `catalogItemIds`), the same ids PostgreSQL uses, so references between the
//! stores compare as strings.
//!
//! Versions: every change (update, layer edits, publish and archive, soft
//! delete and restore) carries the version the caller read; the update's
//! filter includes it, so a stale version matches nothing and fails with a
//! conflict (never a silent overwrite). A change increments `version` and
//! pushes a history entry `{version, changedAt, changedBy, changes}` where
//! `changes` holds the new value of every field it set (version 1's entry
//! holds the whole initial content, so any version can be rebuilt by folding
//! entries forward). The document keeps the last `history_limit` entries;
//! older ones move to `design_history` (`_id` = `<designId>:<version, 10
//! digits>`, which makes the move idempotent, plus `designId`, which with
//! `version` is the index `history` pages on; migration
//! `20240101000100_design_history`).

use super::exec::{as_str, FindSpec, MongoExec};
use crate::error::{Error, ErrorKind, Result};
use crate::query::bson::json_bson;
use crate::query::{Column, Entity, Page, Query, Value};
use crate::repo::Repository;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

pub const DESIGNS: &str = "designs";
pub const DESIGN_HISTORY: &str = "design_history";
/// MongoDB's limit on one document.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// History entries kept in the document by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 20;
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
pub const MAX_LAYERS: usize = 500;

/// `draft` → `published` → `archived`; a draft may be archived directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DesignStatus {
    #[default]
    Draft,
    Published,
    Archived,
}

impl DesignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DesignStatus::Draft => "draft",
            DesignStatus::Published => "published",
            DesignStatus::Archived => "archived",
        }
    }

    fn parse(s: &str) -> Option<DesignStatus> {
        match s {
            "draft" => Some(DesignStatus::Draft),
            "published" => Some(DesignStatus::Published),
            "archived" => Some(DesignStatus::Archived),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerType {
    Silhouette,
    Fabric,
    Pattern,
}

impl LayerType {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerType::Silhouette => "silhouette",
            LayerType::Fabric => "fabric",
            LayerType::Pattern => "pattern",
        }
    }
}

/// One layer of a design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: LayerType,
    #[serde(default)]
    pub data: serde_json::Value,
    pub order: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
}

/// One entry of a design's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: i64,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
    /// The new value of every field the change set (camelCase names).
    pub changes: serde_json::Value,
}

/// A design as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Design {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub status: DesignStatus,
    pub layers: Vec<Layer>,
    pub metadata: Metadata,
    pub avatar_id: Option<Uuid>,
    pub catalog_item_ids: Vec<Uuid>,
    pub version: i64,
    /// The recent entries (older ones are in `design_history`; see `DesignRepo::history`).
    pub history: Vec<HistoryEntry>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Design {
    pub const ID: Column<Design, Uuid> = Column::new("_id");
    pub const USER_ID: Column<Design, Uuid> = Column::new("userId");
    pub const NAME: Column<Design, String> = Column::new("name");
    pub const STATUS: Column<Design, String> = Column::new("status");
    /// Matches designs having this tag among theirs.
    pub const TAG: Column<Design, String> = Column::new("metadata.tags");
    pub const AVATAR_ID: Column<Design, Option<Uuid>> = Column::new("avatarId");
    pub const VERSION: Column<Design, i64> = Column::new("version");
    pub const CREATED_AT: Column<Design, DateTime<Utc>> = Column::new("createdAt");
    pub const UPDATED_AT: Column<Design, DateTime<Utc>> = Column::new("updatedAt");
    pub const DELETED_AT: Column<Design, Option<DateTime<Utc>>> = Column::new("deletedAt");
}

impl Entity for Design {
    const SCHEMA: &'static str = "mongodb";
    const TABLE: &'static str = DESIGNS;
    const FIELDS: &'static [&'static str] = &[
        "_id",
        "userId",
        "name",
        "status",
        "layers",
        "metadata",
        "avatarId",
        "catalogItemIds",
        "version",
        "history",
        "createdAt",
        "updatedAt",
        "deletedAt",
    ];
    const ID: Column<Self, Uuid> = Design::ID;
    const DELETED_AT: Option<&'static str> = Some("deletedAt");

    /// Designs live in MongoDB: a PostgreSQL row is never one.
    fn from_row(_: &tokio_postgres::Row) -> Result<Self> {
        Err(Error::new(ErrorKind::Internal, "designs are MongoDB documents: use DesignRepo, not a PostgreSQL executor"))
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        Some(match field {
            "_id" => Value::Uuid(self.id),
            "userId" => Value::Uuid(self.user_id),
            "name" => Value::String(self.name.clone()),
            "status" => Value::String(self.status.as_str().into()),
            "avatarId" => self.avatar_id.into(),
            "version" => Value::I64(self.version),
            "createdAt" => Value::Timestamp(self.created_at),
            "updatedAt" => Value::Timestamp(self.updated_at),
            "deletedAt" => self.deleted_at.into(),
            _ => return None,
        })
    }
}

/// A design to create. From JSON with [`NewDesign::from_json`] (unknown fields and malformed ids rejected).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewDesign {
    pub user_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub status: DesignStatus,
    #[serde(default)]
    pub layers: Vec<Layer>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub avatar_id: Option<Uuid>,
    #[serde(default)]
    pub catalog_item_ids: Vec<Uuid>,
}

impl NewDesign {
    pub fn new(user_id: Uuid, name: impl Into<String>) -> NewDesign {
        NewDesign {
            user_id,
            name: name.into(),
            status: DesignStatus::Draft,
            layers: Vec::new(),
            metadata: Metadata::default(),
            avatar_id: None,
            catalog_item_ids: Vec::new(),
        }
    }

    /// Parses and validates a request body; errors name the field (`design.avatarId: ...`).
    pub fn from_json(v: serde_json::Value) -> Result<NewDesign> {
        let new: NewDesign = from_json_value(v)?;
        new.validate()?;
        Ok(new)
    }

    /// Every rule checkable without a server (and more than the server's validator checks).
    pub fn validate(&self) -> Result<()> {
        self.check_fields()?;
        check_size(&self.to_doc(Uuid::nil(), Utc::now(), "validation"))
    }

    fn check_fields(&self) -> Result<()> {
        check_user(self.user_id)?;
        check_name(&self.name)?;
        check_layers(&self.layers)?;
        check_metadata(&self.metadata)
    }

    /// The content fields (those history records), as BSON.
    fn content(&self) -> Document {
        let mut d = doc! {
            "name": &self.name,
            "status": self.status.as_str(),
            "layers": layers_bson(&self.layers),
            "metadata": metadata_bson(&self.metadata),
            "catalogItemIds": ids_bson(&self.catalog_item_ids),
        };
        d.insert("avatarId", opt_id(self.avatar_id));
        d
    }

    fn to_doc(&self, id: Uuid, now: DateTime<Utc>, by: &str) -> Document {
        let content = self.content();
        let mut d = doc! { "_id": id.to_string(), "userId": self.user_id.to_string() };
        d.extend(content.clone());
        d.insert("version", 1i64);
        d.insert("history", vec![Bson::Document(entry_doc(1, now, by, content))]);
        d.insert("createdAt", date(now));
        d.insert("updatedAt", date(now));
        d
    }
}

/// A change to a design: the version read, who changes it, and the fields to set
/// (`None` leaves a field as it is; `avatar_id: Some(None)` clears it).
/// Status changes go through `publish` / `archive`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DesignPatch {
    pub expected_version: i64,
    pub changed_by: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub layers: Option<Vec<Layer>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default, with = "double_option")]
    pub avatar_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub catalog_item_ids: Option<Vec<Uuid>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl DesignPatch {
    pub fn new(expected_version: i64, changed_by: impl Into<String>) -> DesignPatch {
        DesignPatch { expected_version, changed_by: changed_by.into(), ..Default::default() }
    }

    pub fn from_json(v: serde_json::Value) -> Result<DesignPatch> {
        let p: DesignPatch = from_json_value(v)?;
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<()> {
        check_version(self.expected_version)?;
        check_by(&self.changed_by)?;
        if let Some(n) = &self.name {
            check_name(n)?;
        }
        if let Some(l) = &self.layers {
            check_layers(l)?;
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        check_size(&self.changes())
    }

    fn changes(&self) -> Document {
        let mut d = Document::new();
        if let Some(n) = &self.name {
            d.insert("name", n);
        }
        if let Some(l) = &self.layers {
            d.insert("layers", layers_bson(l));
        }
        if let Some(m) = &self.metadata {
            d.insert("metadata", metadata_bson(m));
        }
        if let Some(a) = self.avatar_id {
            d.insert("avatarId", opt_id(a));
        }
        if let Some(c) = &self.catalog_item_ids {
            d.insert("catalogItemIds", ids_bson(c));
        }
        d
    }
}

/// One page of a design's history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after_version` for the next page.
    pub next: Option<i64>,
}

// ---------- validation ----------

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Validation, format!("design.{field}: {why}"))
}

fn from_json_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let why =
            if inner.contains("UUID") || inner.contains("uuid") { format!("malformed id ({inner})") } else { inner };
        invalid(if path == "." { "(document)" } else { &path }, why)
    })
}

/// Parses a design id given as text (a path segment, a reference): a clear error when malformed.
pub fn parse_design_id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s.trim())
        .map_err(|_| invalid("_id", format!("malformed id `{}` (expected a UUID)", s.escape_debug())))
}

fn check_user(u: Uuid) -> Result<()> {
    if u.is_nil() {
        return Err(invalid("userId", "must not be the nil UUID"));
    }
    Ok(())
}

fn check_version(v: i64) -> Result<()> {
    if v < 1 {
        return Err(invalid("version", format!("expected version {v} is not a version (they start at 1)")));
    }
    Ok(())
}

fn check_by(by: &str) -> Result<()> {
    if by.trim().is_empty() {
        return Err(invalid("changedBy", "must not be empty"));
    }
    check_text("changedBy", by, 255)
}

fn check_text(field: &str, s: &str, max: usize) -> Result<()> {
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL bytes"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, format!("{n} characters, at most {max}")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    check_text("name", name, MAX_NAME_CHARS)
}

fn check_layers(layers: &[Layer]) -> Result<()> {
    if layers.len() > MAX_LAYERS {
        return Err(invalid("layers", format!("{} layers, at most {MAX_LAYERS}", layers.len())));
    }
    let mut ids = HashSet::new();
    let mut orders = HashSet::new();
    for (i, l) in layers.iter().enumerate() {
        let f = format!("layers[{i}]");
        if l.id.trim().is_empty() {
            return Err(invalid(&format!("{f}.id"), "must not be empty"));
        }
        check_text(&format!("{f}.id"), &l.id, 128)?;
        if !ids.insert(l.id.as_str()) {
            return Err(invalid(&format!("{f}.id"), format!("duplicate layer id `{}`", l.id)));
        }
        if l.order < 0 {
            return Err(invalid(&format!("{f}.order"), "must not be negative"));
        }
        if !orders.insert(l.order) {
            return Err(invalid(&format!("{f}.order"), format!("duplicate order {}", l.order)));
        }
        if let Some(key) = bad_key(&l.data) {
            return Err(invalid(
                &format!("{f}.data"),
                format!("key `{key}` (keys must not start with `$` or contain `.` or NUL)"),
            ));
        }
    }
    Ok(())
}

fn bad_key(j: &serde_json::Value) -> Option<String> {
    match j {
        serde_json::Value::Object(o) => o.iter().find_map(|(k, v)| {
            if k.starts_with('$') || k.contains('.') || k.contains('\0') {
                Some(k.clone())
            } else {
                bad_key(v)
            }
        }),
        serde_json::Value::Array(a) => a.iter().find_map(bad_key),
        _ => None,
    }
}

fn check_metadata(m: &Metadata) -> Result<()> {
    if m.tags.len() > MAX_TAGS {
        return Err(invalid("metadata.tags", format!("{} tags, at most {MAX_TAGS}", m.tags.len())));
    }
    for (i, t) in m.tags.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(invalid(&format!("metadata.tags[{i}]"), "must not be empty"));
        }
        check_text(&format!("metadata.tags[{i}]"), t, MAX_TAG_CHARS)?;
    }
    if let Some(d) = &m.description {
        check_text("metadata.description", d, MAX_DESCRIPTION_CHARS)?;
    }
    if let Some(u) = &m.thumbnail_url {
        match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
            _ => return Err(invalid("metadata.thumbnailUrl", format!("`{}` is not an http(s) URL", u.escape_debug()))),
        }
    }
    Ok(())
}

fn check_size(d: &Document) -> Result<()> {
    let n = mongodb::bson::to_vec(d).map(|v| v.len()).unwrap_or(usize::MAX);
    if n > MAX_DOCUMENT_BYTES {
        return Err(invalid(
            "(document)",
            format!("{n} bytes, over MongoDB's 16 MiB document limit ({MAX_DOCUMENT_BYTES} bytes)"),
        ));
    }
    Ok(())
}

// ---------- BSON ----------

fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(mongodb::bson::DateTime::from_millis(t.timestamp_millis()))
}

fn opt_id(id: Option<Uuid>) -> Bson {
    id.map_or(Bson::Null, |u| Bson::String(u.to_string()))
}

fn ids_bson(ids: &[Uuid]) -> Bson {
    Bson::Array(ids.iter().map(|u| Bson::String(u.to_string())).collect())
}

fn layers_bson(layers: &[Layer]) -> Bson {
    Bson::Array(
        layers
            .iter()
            .map(|l| {
                Bson::Document(
                    doc! { "id": &l.id, "type": l.kind.as_str(), "data": json_bson(&l.data), "order": l.order },
                )
            })
            .collect(),
    )
}

fn metadata_bson(m: &Metadata) -> Bson {
    let mut d = doc! { "tags": m.tags.clone() };
    d.insert("description", m.description.clone().map_or(Bson::Null, Bson::String));
    d.insert("thumbnailUrl", m.thumbnail_url.clone().map_or(Bson::Null, Bson::String));
    Bson::Document(d)
}

fn entry_doc(version: i64, at: DateTime<Utc>, by: &str, changes: Document) -> Document {
    doc! { "version": version, "changedAt": date(at), "changedBy": by, "changes": changes }
}

fn bad_doc(field: &str) -> Error {
    Error::new(ErrorKind::Mongo, format!("a stored design has a malformed `{field}`"))
}

fn get_uuid(d: &Document, f: &str) -> Result<Uuid> {
    as_str(d.get(f)).and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| bad_doc(f))
}

fn get_date(d: &Document, f: &str) -> Result<DateTime<Utc>> {
    match d.get(f) {
        Some(Bson::DateTime(t)) => DateTime::from_timestamp_millis(t.timestamp_millis()).ok_or_else(|| bad_doc(f)),
        _ => Err(bad_doc(f)),
    }
}

fn get_i64(d: &Document, f: &str) -> Result<i64> {
    match d.get(f) {
        Some(Bson::Int32(i)) => Ok(i64::from(*i)),
        Some(Bson::Int64(i)) => Ok(*i),
        Some(Bson::Double(x)) if x.fract() == 0.0 => Ok(*x as i64),
        _ => Err(bad_doc(f)),
    }
}

fn to_json(b: &Bson) -> serde_json::Value {
    b.clone().into_relaxed_extjson()
}

fn parse_layers(b: Option<&Bson>) -> Result<Vec<Layer>> {
    let Some(Bson::Array(a)) = b else { return Ok(Vec::new()) };
    a.iter()
        .map(|l| {
            let Bson::Document(l) = l else { return Err(bad_doc("layers")) };
            let kind = match as_str(l.get("type")) {
                Some("silhouette") => LayerType::Silhouette,
                Some("fabric") => LayerType::Fabric,
                Some("pattern") => LayerType::Pattern,
                _ => return Err(bad_doc("layers.type")),
            };
            Ok(Layer {
                id: as_str(l.get("id")).ok_or_else(|| bad_doc("layers.id"))?.to_string(),
                kind,
                data: l.get("data").map(to_json).unwrap_or(serde_json::Value::Null),
                order: get_i64(l, "order")?,
            })
        })
        .collect()
}

fn parse_metadata(b: Option<&Bson>) -> Metadata {
    let Some(Bson::Document(m)) = b else { return Metadata::default() };
    Metadata {
        tags: match m.get("tags") {
            Some(Bson::Array(a)) => a.iter().filter_map(|t| as_str(Some(t)).map(str::to_string)).collect(),
            _ => Vec::new(),
        },
        description: as_str(m.get("description")).map(str::to_string),
        thumbnail_url: as_str(m.get("thumbnailUrl")).map(str::to_string),
    }
}

fn parse_entry(e: &Document) -> Result<HistoryEntry> {
    Ok(HistoryEntry {
        version: get_i64(e, "version")?,
        changed_at: get_date(e, "changedAt")?,
        changed_by: as_str(e.get("changedBy")).unwrap_or_default().to_string(),
        changes: e.get("changes").map(to_json).unwrap_or(serde_json::Value::Null),
    })
}

fn history_docs(d: &Document) -> Vec<Document> {
    match d.get("history") {
        Some(Bson::Array(a)) => {
            a.iter().filter_map(|e| if let Bson::Document(e) = e { Some(e.clone()) } else { None }).collect()
        }
        _ => Vec::new(),
    }
}

/// A stored document as a [`Design`].
pub fn design_from_doc(d: &Document) -> Result<Design> {
    Ok(Design {
        id: get_uuid(d, "_id")?,
        user_id: get_uuid(d, "userId")?,
        name: as_str(d.get("name")).ok_or_else(|| bad_doc("name"))?.to_string(),
        status: as_str(d.get("status")).and_then(DesignStatus::parse).ok_or_else(|| bad_doc("status"))?,
        layers: parse_layers(d.get("layers"))?,
        metadata: parse_metadata(d.get("metadata")),
        avatar_id: match d.get("avatarId") {
            None | Some(Bson::Null) => None,
            _ => Some(get_uuid(d, "avatarId")?),
        },
        catalog_item_ids: match d.get("catalogItemIds") {
            Some(Bson::Array(a)) => a
                .iter()
                .map(|b| as_str(Some(b)).and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| bad_doc("catalogItemIds")))
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        },
        version: get_i64(d, "version")?,
        history: history_docs(d).iter().map(parse_entry).collect::<Result<_>>()?,
        created_at: get_date(d, "createdAt")?,
        updated_at: get_date(d, "updatedAt")?,
        deleted_at: match d.get("deletedAt") {
            None | Some(Bson::Null) => None,
            _ => Some(get_date(d, "deletedAt")?),
        },
    })
}

fn history_id(id: Uuid, version: i64) -> String {
    format!("{id}:{version:010}")
}

// ---------- the repository ----------

/// The design repository. Cheap to clone; holds no connection (the executor does).
#[derive(Debug, Clone)]
pub struct DesignRepo {
    history_limit: usize,
}

impl Default for DesignRepo {
    fn default() -> Self {
        DesignRepo::new()
    }
}

fn id_filter(id: Uuid) -> Document {
    doc! { "_id": id.to_string() }
}

fn live(id: Uuid) -> Document {
    doc! { "_id": id.to_string(), "deletedAt": Bson::Null }
}

fn not_found(id: Uuid) -> Error {
    Error::new(ErrorKind::NotFound, format!("no live design with id {id}"))
}

/// The designs a versioned change may apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Live,
    Deleted,
}

fn scoped(id: Uuid, scope: Scope) -> Document {
    match scope {
        Scope::Live => live(id),
        Scope::Deleted => doc! { "_id": id.to_string(), "deletedAt": { "$ne": Bson::Null } },
    }
}

fn is_deleted(d: &Document) -> bool {
    !matches!(d.get("deletedAt"), None | Some(Bson::Null))
}

fn out_of_scope(id: Uuid, scope: Scope) -> Error {
    match scope {
        Scope::Live => {
            Error::new(ErrorKind::NotFound, format!("no live design with id {id} (missing or soft-deleted)"))
        }
        Scope::Deleted => Error::new(ErrorKind::NotFound, format!("no soft-deleted design with id {id}")),
    }
}

/// One versioned change: the fields it sets (camelCase), the designs it may
/// apply to, and an extra condition with the reason it failed.
struct Change<'a> {
    changes: Document,
    scope: Scope,
    guard: Option<(Document, &'a str)>,
}

impl Change<'_> {
    fn new(changes: Document, scope: Scope) -> Change<'static> {
        Change { changes, scope, guard: None }
    }
}

/// The update of a versioned change: set the fields, increment the version,
/// append the history entry. A restore's `deletedAt: null` is recorded in the
/// history but removed from the document, which then looks like a design
/// never deleted (the sparse `deletedAt_1` index skips it).
fn versioned_update(expected: i64, now: DateTime<Utc>, by: &str, changes: Document) -> Document {
    let mut set = Document::new();
    let mut unset = Document::new();
    for (k, v) in &changes {
        if k == "deletedAt" && *v == Bson::Null {
            unset.insert(k, "");
        } else {
            set.insert(k, v.clone());
        }
    }
    set.insert("updatedAt", date(now));
    let mut update = doc! {
        "$set": set,
        "$inc": { "version": 1i64 },
        "$push": { "history": entry_doc(expected + 1, now, by, changes) },
    };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update
}

impl DesignRepo {
    /// Who the history names for the trait's `delete` and `restore`, which take no actor.
    pub const UNATTRIBUTED: &'static str = "fwdb:unattributed";

    pub fn new() -> DesignRepo {
        DesignRepo { history_limit: DEFAULT_HISTORY_LIMIT }
    }

    /// How many history entries the document keeps (at least 1); older ones move to `design_history`.
    pub fn with_history_limit(mut self, n: usize) -> DesignRepo {
        self.history_limit = n.max(1);
        self
    }

    /// A query on designs (live ones, no order, no limit).
    pub fn query(&self) -> Query<Design> {
        Query::new()
    }

    async fn fetch<M: MongoExec>(&self, exec: &M, q: &Query<Design>, extra: i64) -> Result<Vec<Design>> {
        let m = q.to_mongo()?;
        let spec = FindSpec { sort: Some(m.sort), limit: m.limit.map(|l| l + extra), skip: m.skip };
        exec.find(DESIGNS, m.filter, spec).await?.iter().map(design_from_doc).collect()
    }

    /// A user's live designs with this status, newest first (the `userId_1_status_1_createdAt_-1` index).
    pub async fn list_by_user<M: MongoExec>(
        &self,
        exec: &M,
        user: Uuid,
        status: DesignStatus,
        limit: i64,
    ) -> Result<Vec<Design>> {
        let q = self
            .query()
            .filter(Design::USER_ID.eq(user) & Design::STATUS.eq(status.as_str()))
            .order_by(Design::CREATED_AT, crate::query::Order::Desc)
            .limit(limit);
        self.fetch(exec, &q, 0).await
    }

    /// Live designs having this tag (the `metadata.tags_1` index), newest first.
    pub async fn list_by_tag<M: MongoExec>(&self, exec: &M, tag: &str, limit: i64) -> Result<Vec<Design>> {
        check_text("metadata.tags", tag, MAX_TAG_CHARS)?;
        let q = self
            .query()
            .filter(Design::TAG.eq(tag))
            .order_by(Design::CREATED_AT, crate::query::Order::Desc)
            .limit(limit);
        self.fetch(exec, &q, 0).await
    }

    /// Why a versioned change matched nothing: gone, stale, not in its scope
    /// (live or soft-deleted), or the state guard. A stale version comes
    /// first: whatever the design's state now, the caller decided on an old one.
    async fn diagnose<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, scope: Scope, guard: &str) -> Error {
        let d = match exec.find_one(DESIGNS, id_filter(id)).await {
            Err(e) => return e,
            Ok(None) => return not_found(id),
            Ok(Some(d)) => d,
        };
        match get_i64(&d, "version") {
            Err(e) => e,
            Ok(v) if v != expected => Error::new(
                ErrorKind::Conflict,
                format!("design {id}: stale version {expected} (it is now at version {v}); read it again and retry"),
            ),
            Ok(_) if is_deleted(&d) != (scope == Scope::Deleted) => {
                let state = if scope == Scope::Live { "is soft-deleted" } else { "is not soft-deleted" };
                Error::new(ErrorKind::NotFound, format!("design {id} {state}"))
            }
            Ok(_) => Error::new(ErrorKind::Conflict, format!("design {id}: {guard}")),
        }
    }

    /// The versioned change every write goes through: it applies only to the
    /// version the caller read, increments it and records a history entry.
    async fn change<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        change: Change<'_>,
    ) -> Result<Design> {
        check_version(expected)?;
        check_by(by)?;
        let mut filter = scoped(id, change.scope);
        filter.insert("version", expected);
        let mut why = "the change is not allowed in the design's current state";
        if let Some((g, w)) = change.guard {
            filter.extend(g);
            why = w;
        }
        let update = versioned_update(expected, Utc::now(), by, change.changes);
        let Some(after) = exec.find_one_and_update(DESIGNS, filter, update).await? else {
            return Err(self.diagnose(exec, id, expected, change.scope, why).await);
        };
        let after = self.spill(exec, id, after).await?;
        design_from_doc(&after)
    }

    /// Soft-deletes the design at version `expected` (a versioned change: the
    /// version increments and the history records `deletedAt`).
    pub async fn soft_delete<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        let changes = doc! { "deletedAt": date(Utc::now()) };
        self.change(exec, id, expected, by, Change::new(changes, Scope::Live)).await
    }

    /// Brings back a soft-deleted design at version `expected` (a versioned
    /// change; the history records `deletedAt: null`).
    pub async fn restore_deleted<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        self.change(exec, id, expected, by, Change::new(doc! { "deletedAt": Bson::Null }, Scope::Deleted)).await
    }

    /// The version of the design now, for the trait's delete and restore,
    /// which carry none.
    async fn current_version<M: MongoExec>(&self, exec: &M, id: Uuid, scope: Scope) -> Result<i64> {
        let d = exec.find_one(DESIGNS, scoped(id, scope)).await?.ok_or_else(|| out_of_scope(id, scope))?;
        get_i64(&d, "version")
    }

    /// Moves history entries beyond the limit to `design_history` (upserts: safe to repeat),
    /// then trims the document, only if no other change came in between.
    async fn spill<M: MongoExec>(&self, exec: &M, id: Uuid, mut d: Document) -> Result<Document> {
        // Counted in place: copying the entries only pays when some must move.
        if matches!(d.get("history"), Some(Bson::Array(a)) if a.len() <= self.history_limit) {
            return Ok(d);
        }
        let entries = history_docs(&d);
        if entries.len() <= self.history_limit {
            return Ok(d);
        }
        let cut = entries.len() - self.history_limit;
        for e in &entries[..cut] {
            let v = get_i64(e, "version")?;
            let mut row = e.clone();
            row.insert("designId", id.to_string());
            exec.update_one(DESIGN_HISTORY, doc! { "_id": history_id(id, v) }, doc! { "$setOnInsert": row }, true)
                .await?;
        }
        let keep: Vec<Bson> = entries[cut..].iter().cloned().map(Bson::Document).collect();
        let version = get_i64(&d, "version")?;
        exec.update_one(
            DESIGNS,
            doc! { "_id": id.to_string(), "version": version },
            doc! { "$set": { "history": keep.clone() } },
            false,
        )
        .await?;
        d.insert("history", keep);
        Ok(d)
    }

    /// Creates a design after checking, in PostgreSQL, that its avatar exists and is the same user's.
    pub async fn create_checked<M: MongoExec, E: crate::postgres::Executor>(
        &self,
        exec: &M,
        pg: &E,
        new: &NewDesign,
    ) -> Result<Design> {
        new.validate()?;
        if let Some(a) = new.avatar_id {
            check_avatar(pg, new.user_id, a).await?;
        }
        self.create(exec, new).await
    }

    /// Points a design at another avatar (or none), checking the avatar in PostgreSQL first.
    pub async fn move_to_avatar<M: MongoExec, E: crate::postgres::Executor>(
        &self,
        exec: &M,
        pg: &E,
        id: Uuid,
        expected: i64,
        by: &str,
        avatar: Option<Uuid>,
    ) -> Result<Design> {
        let current = Repository::<Design, M>::get(self, exec, id).await?;
        if let Some(a) = avatar {
            check_avatar(pg, current.user_id, a).await?;
        }
        let mut p = DesignPatch::new(expected, by);
        p.avatar_id = Some(avatar);
        Repository::<Design, M>::update(self, exec, id, &p).await
    }

    /// Adds a layer (its id must be new).
    pub async fn add_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer: Layer,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            layers.push(layer);
            Ok(())
        })
        .await
    }

    /// Replaces the layer with this id.
    pub async fn update_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer: Layer,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let slot = layers.iter_mut().find(|l| l.id == layer.id).ok_or_else(|| no_layer(&layer.id))?;
            *slot = layer;
            Ok(())
        })
        .await
    }

    /// Removes the layer with this id.
    pub async fn remove_layer<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer_id: &str,
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let before = layers.len();
            layers.retain(|l| l.id != layer_id);
            if layers.len() == before {
                return Err(no_layer(layer_id));
            }
            Ok(())
        })
        .await
    }

    /// Sets the layers' order to that of `layer_ids` (every layer, each once): order 0, 1, 2, ...
    pub async fn reorder_layers<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        layer_ids: &[&str],
    ) -> Result<Design> {
        self.edit_layers(exec, id, expected, by, |layers| {
            let distinct: HashSet<&&str> = layer_ids.iter().collect();
            if layer_ids.len() != layers.len() || distinct.len() != layer_ids.len() {
                return Err(invalid("layers", "a reorder must list every layer id exactly once"));
            }
            let mut out = Vec::with_capacity(layers.len());
            for (i, lid) in layer_ids.iter().enumerate() {
                let mut l = layers.iter().find(|l| l.id == *lid).cloned().ok_or_else(|| no_layer(lid))?;
                l.order = i as i64;
                out.push(l);
            }
            *layers = out;
            Ok(())
        })
        .await
    }

    async fn edit_layers<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        edit: impl FnOnce(&mut Vec<Layer>) -> Result<()>,
    ) -> Result<Design> {
        let current = Repository::<Design, M>::get(self, exec, id).await?;
        if current.version != expected {
            return Err(self.diagnose(exec, id, expected, Scope::Live, "").await);
        }
        let mut layers = current.layers;
        edit(&mut layers)?;
        layers.sort_by_key(|l| l.order);
        let mut p = DesignPatch::new(expected, by);
        p.layers = Some(layers);
        Repository::<Design, M>::update(self, exec, id, &p).await
    }

    /// draft → published.
    pub async fn publish<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        self.transition(exec, id, expected, by, &[DesignStatus::Draft], DesignStatus::Published).await
    }

    /// draft or published → archived.
    pub async fn archive<M: MongoExec>(&self, exec: &M, id: Uuid, expected: i64, by: &str) -> Result<Design> {
        self.transition(exec, id, expected, by, &[DesignStatus::Draft, DesignStatus::Published], DesignStatus::Archived)
            .await
    }

    async fn transition<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        expected: i64,
        by: &str,
        from: &[DesignStatus],
        to: DesignStatus,
    ) -> Result<Design> {
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let why = format!("only a design that is {} can become {}", allowed.join(" or "), to.as_str());
        let guard = doc! { "status": { "$in": allowed.clone() } };
        let change = Change { changes: doc! { "status": to.as_str() }, scope: Scope::Live, guard: Some((guard, &why)) };
        self.change(exec, id, expected, by, change).await
    }

    /// A design's history, oldest first, `limit` entries after `after_version` (0 for the start).
    pub async fn history<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        after_version: i64,
        limit: i64,
    ) -> Result<HistoryPage> {
        let (docs, next) = self.history_docs_page(exec, id, after_version, limit).await?;
        Ok(HistoryPage { entries: docs.iter().map(parse_entry).collect::<Result<_>>()?, next })
    }

    /// A page of history entries as stored (BSON), from `design_history`
    /// (the `designId_1_version_1` index) and then from the document.
    async fn history_docs_page<M: MongoExec>(
        &self,
        exec: &M,
        id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<Document>, Option<i64>)> {
        let limit = limit.clamp(1, 1000);
        let filter = doc! { "designId": id.to_string(), "version": { "$gt": after } };
        let spec = FindSpec { sort: Some(doc! { "version": 1 }), limit: Some(limit + 1), skip: None };
        let mut entries = exec.find(DESIGN_HISTORY, filter, spec).await?;
        if (entries.len() as i64) <= limit {
            let d = exec.find_one(DESIGNS, id_filter(id)).await?.ok_or_else(|| not_found(id))?;
            // A spill copies entries out before trimming the document: skip the overlap.
            let seen = match entries.last() {
                Some(e) => get_i64(e, "version")?,
                None => after,
            };
            for e in history_docs(&d) {
                if get_i64(&e, "version")? > seen {
                    entries.push(e);
                }
            }
        }
        if entries.len() as i64 <= limit {
            return Ok((entries, None));
        }
        entries.truncate(limit as usize);
        let next = entries.last().map(|e| get_i64(e, "version")).transpose()?;
        Ok((entries, next))
    }

    /// The design as it was at version `v`, rebuilt by folding its history's
    /// changes forward (as stored, so dates and numbers keep their BSON types).
    pub async fn at_version<M: MongoExec>(&self, exec: &M, id: Uuid, v: i64) -> Result<Design> {
        check_version(v)?;
        let current = exec.find_one(DESIGNS, id_filter(id)).await?.ok_or_else(|| not_found(id))?;
        let now = get_i64(&current, "version")?;
        if v > now {
            return Err(Error::new(ErrorKind::NotFound, format!("design {id} has no version {v} (latest is {now})")));
        }
        let mut state = doc! { "_id": id.to_string() };
        for f in ["userId", "createdAt"] {
            state.insert(f, current.get(f).cloned().unwrap_or(Bson::Null));
        }
        let mut after = 0;
        let mut last_at = None;
        loop {
            let (entries, next) = self.history_docs_page(exec, id, after, 1000).await?;
            for e in &entries {
                if get_i64(e, "version")? > v {
                    break;
                }
                if let Ok(changes) = e.get_document("changes") {
                    state.extend(changes.clone());
                }
                last_at = Some(e.get("changedAt").cloned().ok_or_else(|| bad_doc("history.changedAt"))?);
            }
            match next {
                Some(n) if n < v => after = n,
                _ => break,
            }
        }
        let Some(at) = last_at else {
            return Err(Error::new(ErrorKind::NotFound, format!("design {id}: the history of version {v} is missing")));
        };
        state.insert("version", v);
        state.insert("history", Bson::Array(Vec::new()));
        state.insert("updatedAt", at);
        design_from_doc(&state)
    }
}

fn no_layer(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("design has no layer with id `{}`", id.escape_debug()))
}

/// The avatar exists (live) in PostgreSQL and belongs to `user`.
pub async fn check_avatar<E: crate::postgres::Executor>(pg: &E, user: Uuid, avatar: Uuid) -> Result<()> {
    let repo = crate::repo::AvatarRepo::new().with_consistency(crate::postgres::Consistency::Strong);
    match Repository::<crate::repo::Avatar, E>::find_by_id(&repo, pg, avatar).await? {
        None => Err(invalid("avatarId", format!("avatar {avatar} does not exist (or is deleted)"))),
        Some(a) if a.user_id != user => Err(invalid("avatarId", format!("avatar {avatar} belongs to another user"))),
        Some(_) => Ok(()),
    }
}

impl<M: MongoExec> Repository<Design, M> for DesignRepo {
    type New = NewDesign;
    type Patch = DesignPatch;

    async fn find_by_id(&self, exec: &M, id: Uuid) -> Result<Option<Design>> {
        exec.find_one(DESIGNS, live(id)).await?.as_ref().map(design_from_doc).transpose()
    }

    async fn get(&self, exec: &M, id: Uuid) -> Result<Design> {
        self.find_by_id(exec, id).await?.ok_or_else(|| not_found(id))
    }

    async fn find_all(&self, exec: &M, query: &Query<Design>) -> Result<Vec<Design>> {
        self.fetch(exec, query, 0).await
    }

    async fn find_page(&self, exec: &M, query: &Query<Design>) -> Result<Page<Design>> {
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

    async fn count(&self, exec: &M, query: &Query<Design>) -> Result<u64> {
        exec.count(DESIGNS, query.mongo_filter()?).await
    }

    async fn exists(&self, exec: &M, query: &Query<Design>) -> Result<bool> {
        let m = query.to_mongo()?;
        Ok(!exec.find(DESIGNS, m.filter, FindSpec { sort: None, limit: Some(1), skip: None }).await?.is_empty())
    }

    async fn create(&self, exec: &M, new: &NewDesign) -> Result<Design> {
        new.check_fields()?;
        let d = new.to_doc(Uuid::new_v4(), Utc::now(), &new.user_id.to_string());
        check_size(&d)?;
        let design = design_from_doc(&d)?;
        exec.insert_one(DESIGNS, d).await?;
        Ok(design)
    }

    /// Validates all, then one `insertMany` (ordered). Atomic only inside a transaction.
    async fn create_many(&self, exec: &M, new: &[NewDesign]) -> Result<Vec<Uuid>> {
        for (i, n) in new.iter().enumerate() {
            n.validate().map_err(|e| Error::new(ErrorKind::Validation, format!("design {i}: {e}")))?;
        }
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let ids: Vec<Uuid> = new.iter().map(|_| Uuid::new_v4()).collect();
        let docs = new.iter().zip(&ids).map(|(n, id)| n.to_doc(*id, now, &n.user_id.to_string())).collect();
        exec.insert_many(DESIGNS, docs).await?;
        Ok(ids)
    }

    async fn update(&self, exec: &M, id: Uuid, patch: &DesignPatch) -> Result<Design> {
        patch.validate()?;
        self.change(exec, id, patch.expected_version, &patch.changed_by, Change::new(patch.changes(), Scope::Live))
            .await
    }

    /// A versioned change at the current version (the trait carries none),
    /// attributed to [`DesignRepo::UNATTRIBUTED`]; a change landing between the read and
    /// the write fails with the usual stale-version conflict. Callers that
    /// know the version and the actor use [`DesignRepo::soft_delete`].
    async fn delete(&self, exec: &M, id: Uuid) -> Result<()> {
        let v = self.current_version(exec, id, Scope::Live).await?;
        self.soft_delete(exec, id, v, Self::UNATTRIBUTED).await.map(|_| ())
    }

    /// Like `delete`: at the current version; see [`DesignRepo::restore_deleted`].
    async fn restore(&self, exec: &M, id: Uuid) -> Result<Design> {
        let v = self.current_version(exec, id, Scope::Deleted).await?;
        self.restore_deleted(exec, id, v, Self::UNATTRIBUTED).await
    }

    async fn purge(&self, exec: &M, id: Uuid) -> Result<()> {
        let n = exec.delete_one(DESIGNS, id_filter(id)).await?;
        if n == 0 {
            return Err(not_found(id));
        }
        exec.delete_many(DESIGN_HISTORY, doc! { "designId": id.to_string() }).await?;
        Ok(())
    }

    async fn find_many_by_ids(&self, exec: &M, ids: &[Uuid]) -> Result<Vec<Design>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = self.query().filter(Design::ID.in_(ids.iter().copied()));
        self.fetch(exec, &q, 0).await
    }
}
