//! The design model (architecture 7.2): the stored document, what creates
//! and changes one, and its [`Document`] and [`Versioned`] declarations.
//! The serde attributes are the stored form (see [`crate::bson_fields`])
//! and, as they are, the JSON form for APIs (camelCase).

use super::{DESIGNS, DESIGN_HISTORY};
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::bson_fields;
use crate::mongo::document::{Document, Tracked};
use crate::mongo::history::HistoryEntry;
use crate::mongo::versioned::Versioned;
use crate::query::{Column, Entity, Value};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// One layer of a design. Requests with fields it does not have are
/// rejected (`NewDesign::from_json`); stored ones are read past them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: LayerType,
    #[serde(default, with = "bson_fields::json")]
    pub data: serde_json::Value,
    #[serde(with = "bson_fields::int")]
    pub order: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
}

/// A design as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Design {
    #[serde(with = "bson_fields::uuid_text")]
    pub id: Uuid,
    #[serde(with = "bson_fields::uuid_text")]
    pub user_id: Uuid,
    pub name: String,
    pub status: DesignStatus,
    #[serde(default)]
    pub layers: Vec<Layer>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default, with = "bson_fields::uuid_list_text")]
    pub catalog_item_ids: Vec<Uuid>,
    #[serde(default, with = "bson_fields::opt_uuid_text")]
    pub avatar_id: Option<Uuid>,
    #[serde(with = "bson_fields::int")]
    pub version: i64,
    /// The recent entries (older ones are in `design_history`; see `DesignRepo::history`).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(with = "bson_fields::date")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "bson_fields::date")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, with = "bson_fields::opt_date")]
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

impl Document for Design {
    const COLLECTION: &'static str = DESIGNS;
    const MODEL: &'static str = "design";
    const UPDATED_AT: Option<&'static str> = Some("updatedAt");
    type Mode = Tracked;
    type New = NewDesign;
    type Patch = DesignPatch;

    fn check_new(new: &NewDesign) -> Result<()> {
        new.check_fields()
    }

    fn from_new(new: &NewDesign, id: Uuid, now: DateTime<Utc>) -> Design {
        Design {
            id,
            user_id: new.user_id,
            name: new.name.clone(),
            status: new.status,
            layers: new.layers.clone(),
            metadata: new.metadata.clone(),
            catalog_item_ids: new.catalog_item_ids.clone(),
            avatar_id: new.avatar_id,
            version: 1,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn check_patch(patch: &DesignPatch) -> Result<()> {
        patch.validate()
    }

    fn patch_fields(patch: &DesignPatch) -> Result<mongodb::bson::Document> {
        patch.changes()
    }
}

impl Versioned for Design {
    const HISTORY_COLLECTION: &'static str = DESIGN_HISTORY;
    const HISTORY_OWNER: &'static str = "designId";
    const TRACKED: &'static [&'static str] = &["name", "status", "layers", "metadata", "catalogItemIds", "avatarId"];

    fn created_by(new: &NewDesign) -> String {
        new.user_id.to_string()
    }

    fn patch_version(patch: &DesignPatch) -> (i64, &str) {
        (patch.expected_version, &patch.changed_by)
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

/// The stored fields a [`DesignPatch`] sets (unset ones skipped).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Changes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<&'a Vec<Layer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_item_ids: Option<Vec<String>>,
}

impl DesignPatch {
    pub fn new(expected_version: i64, changed_by: impl Into<String>) -> DesignPatch {
        DesignPatch { expected_version, changed_by: changed_by.into(), ..Default::default() }
    }

    /// The stored fields this patch sets, as BSON.
    pub(crate) fn changes(&self) -> Result<mongodb::bson::Document> {
        bson_fields::to_document(&Changes {
            name: self.name.as_ref(),
            layers: self.layers.as_ref(),
            metadata: self.metadata.as_ref(),
            avatar_id: self.avatar_id.map(|a| a.map(|u| u.to_string())),
            catalog_item_ids: self.catalog_item_ids.as_ref().map(|c| c.iter().map(Uuid::to_string).collect()),
        })
    }
}
