//! The statements of `PgRepository`: built once per entity with sea-query
//! where their text depends only on the entity and the operation, and bound
//! to values borrowed from the caller.

use super::{PgRepository, Record};
use crate::error::{Error, Result};
use crate::model::ParamBox;
use crate::query::{col, Entity, Statement};
use sea_query::{Expr, ExprTrait, InsertStatement, SelectStatement, UpdateStatement};
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use tokio_postgres::types::{IsNull, ToSql, Type};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A statement and its parameters, borrowed from the caller's values.
pub struct Prepared<'a> {
    pub sql: Arc<str>,
    params: Vec<ParamBox<'a>>,
}

impl std::fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("sql", &self.sql).field("params", &self.params.len()).finish()
    }
}

impl<'a> Prepared<'a> {
    /// How many parameters are bound.
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
    }
}

/// A parameter borrowed as a trait object, bound as what it refers to.
#[derive(Debug)]
struct Borrowed<'a>(&'a (dyn ToSql + Sync));

impl ToSql for Borrowed<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, BoxError> {
        self.0.to_sql_checked(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut bytes::BytesMut) -> std::result::Result<IsNull, BoxError> {
        self.0.to_sql_checked(ty, out)
    }
}

fn borrowed<'a>(p: &'a (dyn ToSql + Sync)) -> ParamBox<'a> {
    Box::new(Borrowed(p))
}

/// The text of a statement whose shape depends only on the entity and the
/// operation, built once with sea-query and reused: the hot paths (find by id,
/// create, delete, restore, purge) pay no statement building per call.
pub(super) fn cached<T: Entity>(op: &'static str, build: impl FnOnce() -> String) -> Arc<str> {
    // Keyed by the struct, not the table: several structs may read one table, each its own columns.
    type Key = (TypeId, &'static str);
    static CACHE: OnceLock<RwLock<HashMap<Key, Arc<str>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (TypeId::of::<T>(), op);
    if let Some(sql) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return sql.clone();
    }
    let sql: Arc<str> = build().into();
    cache.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(sql).clone()
}

/// A placeholder for a cached statement's text: sea-query writes `$n`; the real
/// value is bound at run time.
pub(super) fn ph() -> Expr {
    Expr::val(sea_query::Value::Bool(Some(false)))
}

/// The columns `create` writes: the entity's, then the audit columns.
fn insert_columns<T: Record>() -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = T::INSERT.iter().map(|(c, _)| *c).collect();
    if T::AUDITED {
        cols.extend(["created_by", "updated_by"]);
    }
    cols
}

impl<T: Record> PgRepository<T> {
    pub(super) fn returning() -> sea_query::ReturningClause {
        sea_query::Query::returning().columns(T::FIELDS.iter().copied())
    }

    /// `id = $n` and, for a soft-deleting entity, live.
    pub(super) fn live() -> Expr {
        let mut e = col(T::ID.name()).eq(ph());
        if let Some(d) = T::DELETED_AT {
            e = e.and(Expr::col(d).is_null());
        }
        e
    }

    /// The statement `create` runs, after validation (for tests: `create` binds [`Record::new_params`]).
    pub fn create_statement<'a>(new: &'a T::New, actor: &'a Option<Uuid>) -> Result<Prepared<'a>> {
        T::check_new(new)?;
        let params = T::new_params(new, actor).as_ref().iter().map(|p| borrowed(*p)).collect();
        Ok(Prepared { sql: Self::create_sql(), params })
    }

    pub(super) fn create_sql() -> Arc<str> {
        cached::<T>("create", || {
            let cols = insert_columns::<T>();
            let n = cols.len();
            let mut q = InsertStatement::new();
            q.into_table((T::SCHEMA, T::TABLE))
                .columns(cols)
                .values_panic((0..n).map(|_| ph()))
                .returning(Self::returning());
            Statement::build(&q).sql
        })
    }

    /// The one statement `create_many` runs, and the ids it gives the rows.
    ///
    /// `INSERT INTO t (id, a, b, ...) SELECT unnest($1::uuid[]), unnest($2::text[]), ...`:
    /// one array parameter per column whatever the row count, so one statement
    /// of constant text (one plan, cached) and no 65,535-parameter limit, atomic
    /// like any statement. Chosen over multi-row VALUES (parameters grow with the
    /// rows, needing chunks, hence several statements) and over COPY (not
    /// available through `Executor`, no RETURNING, no ON CONFLICT later).
    /// Ids are made here (v4) so they come back in input order.
    pub fn create_many_statement(new: &[T::New], actor: Option<Uuid>) -> Result<(Prepared<'_>, Vec<Uuid>)> {
        if let Some((c, _)) = T::INSERT.iter().find(|(_, ty)| ty.ends_with("[]")) {
            // unnest flattens an array of arrays: such rows go through `create`, in a transaction.
            let msg = format!("{}: create_many cannot insert the array column {c}; use create", T::qualified_name());
            return Err(Error::invalid_input(msg));
        }
        for (i, n) in new.iter().enumerate() {
            T::check_new(n).map_err(|e| Error::invalid_input(format!("row {i}: {e}")))?;
        }
        let ids: Vec<Uuid> = new.iter().map(|_| Uuid::new_v4()).collect();
        let mut params: Vec<ParamBox<'_>> = vec![Box::new(ids.clone())];
        params.extend(T::new_columns(new));
        if T::AUDITED {
            params.extend([Box::new(actor) as ParamBox<'_>, Box::new(actor)]);
        }
        Ok((Prepared { sql: Self::create_many_sql(), params }, ids))
    }

    fn create_many_sql() -> Arc<str> {
        cached::<T>("create_many", || {
            // Set-returning functions in a select list advance in lockstep (PostgreSQL 10+):
            // `SELECT unnest($1::uuid[]), unnest($2::text[]), ...` is one row per index.
            let mut select = SelectStatement::new();
            select.expr(Expr::cust_with_exprs("unnest($1::uuid[])", [ph()]));
            for (_, ty) in T::INSERT {
                select.expr(Expr::cust_with_exprs(format!("unnest($1::{ty}[])"), [ph()]));
            }
            if T::AUDITED {
                select.expr(Expr::cust_with_exprs("$1::uuid", [ph()])).expr(Expr::cust_with_exprs("$1::uuid", [ph()]));
            }
            let mut cols = vec![T::ID.name()];
            cols.extend(insert_columns::<T>());
            let mut q = InsertStatement::new();
            match q.into_table((T::SCHEMA, T::TABLE)).columns(cols).select_from(select) {
                Ok(q) => Statement::build(q).sql,
                Err(e) => unreachable!("create_many has one expression per column: {e}"),
            }
        })
    }

    /// The statement `update` runs, or None for an empty patch (for tests).
    pub fn update_statement<'a>(
        id: &'a Uuid,
        patch: &'a T::Patch,
        actor: &'a Option<Uuid>,
    ) -> Result<Option<Prepared<'a>>> {
        T::check_patch(patch)?;
        let set = T::patch_params(patch);
        if set.is_empty() {
            return Ok(None);
        }
        let mut q = UpdateStatement::new();
        q.table((T::SCHEMA, T::TABLE)).values(set.iter().map(|(c, _)| (*c, ph())));
        let mut params: Vec<ParamBox<'a>> = set.into_iter().map(|(_, p)| borrowed(p)).collect();
        if T::AUDITED {
            q.value("updated_by", ph());
            params.push(Box::new(actor));
        }
        q.and_where(Self::live()).returning(Self::returning());
        params.push(Box::new(id));
        Ok(Some(Prepared { sql: Statement::build(&q).sql.into(), params }))
    }
}
