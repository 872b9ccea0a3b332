//! avatar.avatars: measurements as a JSONB object.

use super::{Record, SqlType};
use crate::error::Result;
use crate::query::{check, Column, Entity, Value};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

/// A user's avatar (avatar.avatars); the 3D model lives in MongoDB (`model_ref`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Avatar {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub status: String,
    /// Body measurements, a JSON object (`{}` when none).
    pub measurements: serde_json::Value,
    pub model_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl Avatar {
    pub const ID: Column<Avatar, Uuid> = Column::new("id");
    pub const USER_ID: Column<Avatar, Uuid> = Column::new("user_id");
    pub const NAME: Column<Avatar, String> = Column::new("name");
    pub const STATUS: Column<Avatar, String> = Column::new("status");
    pub const MEASUREMENTS: Column<Avatar, serde_json::Value> = Column::new("measurements");
    pub const MODEL_REF: Column<Avatar, Option<String>> = Column::new("model_ref");
    pub const CREATED_AT: Column<Avatar, DateTime<Utc>> = Column::new("created_at");
    pub const UPDATED_AT: Column<Avatar, DateTime<Utc>> = Column::new("updated_at");
    pub const DELETED_AT: Column<Avatar, Option<DateTime<Utc>>> = Column::new("deleted_at");
    pub const CREATED_BY: Column<Avatar, Option<Uuid>> = Column::new("created_by");
    pub const UPDATED_BY: Column<Avatar, Option<Uuid>> = Column::new("updated_by");
}

/// An avatar to create. `NewAvatar::new` gives status `pending`, no measurements, no model.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAvatar {
    pub user_id: Uuid,
    pub name: String,
    pub status: String,
    pub measurements: serde_json::Value,
    pub model_ref: Option<String>,
}

impl NewAvatar {
    pub fn new(user_id: Uuid, name: impl Into<String>) -> NewAvatar {
        NewAvatar {
            user_id,
            name: name.into(),
            status: "pending".into(),
            measurements: serde_json::json!({}),
            model_ref: None,
        }
    }
}

/// The fields to change; `None` leaves a field as it is; `model_ref: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvatarPatch {
    pub name: Option<String>,
    pub status: Option<String>,
    pub measurements: Option<serde_json::Value>,
    pub model_ref: Option<Option<String>>,
}

const FIELDS: &[&str] = &[
    "id",
    "user_id",
    "name",
    "status",
    "measurements",
    "model_ref",
    "created_at",
    "updated_at",
    "deleted_at",
    "created_by",
    "updated_by",
];

impl Entity for Avatar {
    const SCHEMA: &'static str = "avatar";
    const TABLE: &'static str = "avatars";
    const FIELDS: &'static [&'static str] = FIELDS;
    const ID: Column<Self, Uuid> = Avatar::ID;

    fn from_row(r: &Row) -> Result<Self> {
        Ok(Avatar {
            id: r.try_get(0)?,
            user_id: r.try_get(1)?,
            name: r.try_get(2)?,
            status: r.try_get(3)?,
            measurements: r.try_get::<_, Option<serde_json::Value>>(4)?.unwrap_or_else(|| serde_json::json!({})),
            model_ref: r.try_get(5)?,
            created_at: r.try_get(6)?,
            updated_at: r.try_get(7)?,
            deleted_at: r.try_get(8)?,
            created_by: r.try_get(9)?,
            updated_by: r.try_get(10)?,
        })
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        Some(match field {
            "id" => self.id.into(),
            "user_id" => self.user_id.into(),
            "name" => self.name.clone().into(),
            "status" => self.status.clone().into(),
            "model_ref" => self.model_ref.clone().into(),
            "created_at" => self.created_at.into(),
            "updated_at" => self.updated_at.into(),
            "deleted_at" => self.deleted_at.into(),
            "created_by" => self.created_by.into(),
            "updated_by" => self.updated_by.into(),
            _ => return None,
        })
    }
}

fn check_fields(
    name: Option<&str>,
    status: Option<&str>,
    m: Option<&serde_json::Value>,
    model_ref: Option<&str>,
) -> Result<()> {
    if let Some(s) = name {
        check::text("name", s, 255)?;
    }
    if let Some(s) = status {
        check::text("status", s, 50)?;
    }
    if let Some(m) = m {
        check::json_object("measurements", m)?;
    }
    check::opt_text("model_ref", model_ref, 255)
}

impl Record for Avatar {
    type New = NewAvatar;
    type Patch = AvatarPatch;
    const INSERT: &'static [(&'static str, SqlType)] = &[
        ("user_id", SqlType::Uuid),
        ("name", SqlType::Text),
        ("status", SqlType::Text),
        ("measurements", SqlType::Jsonb),
        ("model_ref", SqlType::Text),
    ];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("avatars_pkey", "id")];

    fn check_new(n: &NewAvatar) -> Result<()> {
        check_fields(Some(&n.name), Some(&n.status), Some(&n.measurements), n.model_ref.as_deref())
    }

    fn new_values(n: &NewAvatar) -> Vec<Value> {
        vec![
            n.user_id.into(),
            n.name.clone().into(),
            n.status.clone().into(),
            n.measurements.clone().into(),
            n.model_ref.clone().into(),
        ]
    }

    type NewParams<'a> = [&'a (dyn ToSql + Sync); 7];
    fn new_params<'a>(n: &'a NewAvatar, actor: &'a Option<Uuid>) -> Self::NewParams<'a> {
        [&n.user_id, &n.name, &n.status, &n.measurements, &n.model_ref, actor, actor]
    }

    fn check_patch(p: &AvatarPatch) -> Result<()> {
        check_fields(
            p.name.as_deref(),
            p.status.as_deref(),
            p.measurements.as_ref(),
            p.model_ref.as_ref().and_then(|m| m.as_deref()),
        )
    }

    fn patch_values(p: &AvatarPatch) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(x) = &p.name {
            v.push(("name", x.clone().into()));
        }
        if let Some(x) = &p.status {
            v.push(("status", x.clone().into()));
        }
        if let Some(x) = &p.measurements {
            v.push(("measurements", x.clone().into()));
        }
        if let Some(x) = &p.model_ref {
            v.push(("model_ref", x.clone().into()));
        }
        v
    }
}
