//! avatar.avatars: measurements as a JSONB object.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A user's avatar (avatar.avatars); the 3D model lives in MongoDB (`model_ref`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, crate::Entity)]
#[fwdb(schema = "avatar", table = "avatars", soft_delete, audit)]
pub struct Avatar {
    pub id: Uuid,
    pub user_id: Uuid,
    #[fwdb(not_blank, length(max = 255))]
    pub name: String,
    #[fwdb(not_blank, length(max = 50))]
    pub status: String,
    /// Body measurements, a JSON object (`{}` when none).
    #[fwdb(check = "super::object")]
    pub measurements: serde_json::Value,
    #[fwdb(length(max = 255))]
    pub model_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl NewAvatar {
    /// An avatar with status `pending`, no measurements, no model.
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
