//! Tables declared once, by a derive: `#[derive(fwdb::Entity)]` (the Fashion Wallet tables, in `crate::entities`, are written this way).
//!
//! ```ignore
//! #[derive(Debug, Clone, PartialEq, serde::Serialize, fwdb::Entity)]
//! #[fwdb(schema = "catalog", table = "collections", soft_delete, audit)]
//! pub struct Collection {
//!     pub id: Uuid,                                   // the primary key (or mark one #[fwdb(id)])
//!     #[fwdb(unique = "idx_collections_slug", not_blank, length(max = 80))]
//!     pub slug: String,
//!     #[fwdb(range(min = 0))]
//!     pub price: Decimal,
//!     pub active: bool,
//!     pub created_at: DateTime<Utc>,                  // created_at, updated_at, created_by, updated_by: `audit`
//!     pub updated_at: DateTime<Utc>,
//!     pub created_by: Option<Uuid>,
//!     pub updated_by: Option<Uuid>,
//!     pub deleted_at: Option<DateTime<Utc>>,          // `soft_delete`
//! }
//! ```
//!
//! generates:
//! - a typed column per field, named in capitals (`Collection::SLUG`, a
//!   `Column<Collection, String>`), offering only the operators its type allows;
//! - `NewCollection` (the fields `create` writes: all but the primary key, the
//!   audit and soft-delete fields and those marked `generated`) and
//!   `CollectionPatch` (each of those as an `Option`; `Some(None)` sets a
//!   nullable column to NULL); rename them with `new = "..."`, `patch = "..."`;
//! - [`Entity`] (rows read by column name, positions resolved once per result)
//!   and [`crate::repo::Record`] (what `PgRepository<Collection>` needs).
//!
//! On the struct: `schema` (default `public`), `table` (required),
//! `soft_delete` (delete sets `deleted_at`; reads skip such rows), `audit`
//! (`created_by` / `updated_by` written from the executor's actor, the
//! timestamps by the server), `new`, `patch`.
//!
//! On a field: `id`, `column = "..."` (its column's name when it differs),
//! `generated` (written by the server: a default, a trigger), `unique =
//! "constraint"` (named in conflict errors), and the rules checked before any
//! SQL, each error naming the field: `not_blank`, `email`, `length(min = ..,
//! max = ..)` (characters, or items of an array), `range(min = .., max = ..)`,
//! `check = "path::to::fn"` (a `fn(&T) -> Result<(), impl Display>` saying
//! why a value is refused). Rules apply to what an `Option` holds; NULL passes.
//!
//! Field types: see [`Field`]. Every text field is also checked for NUL
//! bytes, every label path for its syntax, before any SQL.

mod field;
mod record;
mod row;
pub mod rules;

pub use crate::query::{Column, Entity};
pub use field::{Bound, Field, FloatBound};
pub use fwdb_derive::Entity;
pub use record::Record;
pub use row::ParamBox;
pub use tokio_postgres::types::Json;

/// What the generated code uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use super::field::{Bound, Field, FloatBound};
    pub use super::row::{column, get, param, positions, ParamBox};
    pub use super::rules;
    pub use super::Record;
    pub use crate::error::Result;
    pub use crate::query::{Column, Entity, Value};
    pub use tokio_postgres::types::ToSql;
    pub use tokio_postgres::Row;
    pub use uuid::Uuid;
}
