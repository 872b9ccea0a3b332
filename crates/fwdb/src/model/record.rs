//! What a repository needs of a table beyond reading it: derived with the table.

use super::ParamBox;
use crate::error::Result;
use crate::query::Entity;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// An entity the repositories can write: what a new row and a patch are,
/// how they are checked, and which unique constraint guards which field.
/// Derived by `#[derive(fwdb::Entity)]` (see [`crate::model`]).
pub trait Record: Entity {
    type New: Send + Sync;
    type Patch: Send + Sync + Default;
    /// The columns `create` writes, in order, each with its PostgreSQL type
    /// (`create_many` casts its arrays to it).
    const INSERT: &'static [(&'static str, &'static str)];
    /// Unique constraints (index names) and the field each guards.
    const UNIQUE: &'static [(&'static str, &'static str)];
    /// Whether `created_by` / `updated_by` are written from the executor's actor.
    const AUDITED: bool;

    /// Every rule checkable without a server; errors name the field.
    fn check_new(new: &Self::New) -> Result<()>;
    /// What [`Record::new_params`] gives: a fixed-size array, so binding a
    /// row allocates nothing.
    type NewParams<'a>: AsRef<[&'a (dyn ToSql + Sync)]> + Send;
    /// `create`'s parameters, borrowed from `new` (nothing copied): the
    /// fields of [`Record::INSERT`] in order, then, when [`Record::AUDITED`],
    /// `actor` twice (created_by, updated_by).
    fn new_params<'a>(new: &'a Self::New, actor: &'a Option<Uuid>) -> Self::NewParams<'a>;
    /// `create_many`'s parameters: one array per column of [`Record::INSERT`], borrowed from the rows.
    fn new_columns<'a>(rows: &'a [Self::New]) -> Vec<ParamBox<'a>>;
    fn check_patch(patch: &Self::Patch) -> Result<()>;
    /// The columns the patch sets and their values, borrowed (a `None` in a nullable field sets NULL).
    fn patch_params(patch: &Self::Patch) -> Vec<(&'static str, &(dyn ToSql + Sync))>;
}
