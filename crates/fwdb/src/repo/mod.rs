//! Repositories (architecture 5.1): one trait, [`Repository`], implemented once
//! for every [`Record`] by [`PgRepository`], generic over the [`Executor`] it
//! runs on (the routed pool, a transaction, or a plain connection).
//!
//! Soft-deleted rows are invisible unless a query asks (`with_deleted`,
//! `only_deleted`). `created_by` / `updated_by` come from `exec.actor()`; wrap
//! any executor with [`with_actor`] to set one for a call.

mod actor;
mod avatars;
mod conflict;
mod items;
mod users;

pub use actor::{with_actor, WithActor};
pub use avatars::{Avatar, AvatarPatch, NewAvatar};
pub use items::{Item, ItemPatch, NewItem};
pub use users::{NewUser, User, UserPatch};

use crate::error::Result;
use crate::postgres::{Consistency, Executor};
use crate::query::{col, val};
use crate::query::{not_found, Bind, Entity, Page, Query, Statement, Value};
use sea_query::{Expr, ExprTrait, InsertStatement, SelectStatement, UpdateStatement};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, RwLock};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The PostgreSQL type of a written field: how `create_many` sends its column as an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Uuid,
    Jsonb,
    Numeric,
    Ltree,
}

impl SqlType {
    fn array(self) -> &'static str {
        match self {
            SqlType::Text => "text[]",
            SqlType::Uuid => "uuid[]",
            SqlType::Jsonb => "jsonb[]",
            SqlType::Numeric => "numeric[]",
            SqlType::Ltree => "ltree[]",
        }
    }
}

/// An entity the repositories can write: what a new row and a patch are,
/// how they are checked, and which unique constraint guards which field.
pub trait Record: Entity {
    type New: Send + Sync;
    type Patch: Send + Sync + Default;
    /// The fields `create` writes, in the order of [`Record::new_values`].
    const INSERT: &'static [(&'static str, SqlType)];
    /// Unique constraints (index names) and the field each guards.
    const UNIQUE: &'static [(&'static str, &'static str)];

    /// Every rule checkable without a server; errors name the field.
    fn check_new(new: &Self::New) -> Result<()>;
    fn new_values(new: &Self::New) -> Vec<Value>;
    /// What [`Record::new_params`] gives: a fixed-size array, so binding a
    /// row allocates nothing.
    type NewParams<'a>: AsRef<[&'a (dyn ToSql + Sync)]> + Send;
    /// `create`'s parameters, borrowed from `new` (nothing copied): the
    /// fields of [`Record::INSERT`] in order, as [`Record::new_values`] has
    /// them, then `actor` twice (created_by, updated_by).
    fn new_params<'a>(new: &'a Self::New, actor: &'a Option<Uuid>) -> Self::NewParams<'a>;
    fn check_patch(patch: &Self::Patch) -> Result<()>;
    /// The fields the patch sets (`Value::Null` sets NULL).
    fn patch_values(patch: &Self::Patch) -> Vec<(&'static str, Value)>;
}

/// The repository operations of architecture 5.1, store-independent: `T` is
/// the entity, `X` what the calls run on (for PostgreSQL any [`Executor`]: the
/// routed cluster, a transaction, a connection; for MongoDB any
/// [`crate::mongo::MongoExec`]: the [`crate::Mongo`] handle or a transaction).
/// Callers write `repo.find_by_id(&exec, id)` whatever the store.
pub trait Repository<T, X: ?Sized>: Send + Sync {
    /// What `create` takes.
    type New: Send + Sync;
    /// What `update` takes.
    type Patch: Send + Sync;
    /// The live row with this id.
    fn find_by_id(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<Option<T>>> + Send;
    /// The live row with this id, or a not-found error.
    fn get(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<T>> + Send;
    /// The rows the query selects (filter, order, limit, offset or cursor).
    fn find_all(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<Vec<T>>> + Send;
    /// One keyset page and the cursor of the next.
    fn find_page(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<Page<T>>> + Send;
    fn count(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<u64>> + Send;
    fn exists(&self, exec: &X, query: &Query<T>) -> impl Future<Output = Result<bool>> + Send;
    /// Inserts one row; returns it as stored.
    fn create(&self, exec: &X, new: &Self::New) -> impl Future<Output = Result<T>> + Send;
    /// Inserts all rows at once (PostgreSQL: ONE statement, `INSERT ... SELECT * FROM
    /// unnest($1::uuid[], ...)`), all or none; returns their ids in input order.
    fn create_many(&self, exec: &X, new: &[Self::New]) -> impl Future<Output = Result<Vec<Uuid>>> + Send;
    /// Sets the fields the patch has on a live row; returns the row.
    fn update(&self, exec: &X, id: Uuid, patch: &Self::Patch) -> impl Future<Output = Result<T>> + Send;
    /// Soft delete: sets deleted_at on a live row.
    fn delete(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// Undoes a soft delete; returns the row.
    fn restore(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<T>> + Send;
    /// Hard delete, live or soft-deleted (for admins).
    fn purge(&self, exec: &X, id: Uuid) -> impl Future<Output = Result<()>> + Send;
    /// The live rows among these ids, in one query (`id = ANY($1)`, `_id: {$in}`); order not kept.
    fn find_many_by_ids(&self, exec: &X, ids: &[Uuid]) -> impl Future<Output = Result<Vec<T>>> + Send;
}

/// The PostgreSQL repository of entity `T`.
pub struct PgRepository<T> {
    consistency: Consistency,
    /// The hottest statements' text, looked up in the shared cache once per
    /// repository (and its clones) instead of once per call: that lookup
    /// (hashing the key, a read lock, an `Arc` clone) was a measurable part
    /// of a point read's CPU cost.
    hot: Arc<HotSql>,
    _t: PhantomData<fn() -> T>,
}

/// See [`PgRepository::hot`].
#[derive(Default)]
struct HotSql {
    find_by_id: OnceLock<Arc<str>>,
    create: OnceLock<Arc<str>>,
}

pub type UserRepo = PgRepository<User>;
pub type AvatarRepo = PgRepository<Avatar>;
pub type ItemRepo = PgRepository<Item>;

impl<T> Clone for PgRepository<T> {
    fn clone(&self) -> Self {
        PgRepository { consistency: self.consistency, hot: self.hot.clone(), _t: PhantomData }
    }
}

impl<T: Record> Default for PgRepository<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Record> PgRepository<T> {
    pub fn new() -> Self {
        PgRepository { consistency: Consistency::Eventual, hot: Arc::default(), _t: PhantomData }
    }

    /// The freshness of this repository's reads by id (queries carry their own).
    pub fn with_consistency(mut self, c: Consistency) -> Self {
        self.consistency = c;
        self
    }

    /// A query on this entity (live rows, no order, no limit).
    pub fn query(&self) -> Query<T> {
        Query::new().consistency(self.consistency)
    }

    fn returning() -> sea_query::ReturningClause {
        sea_query::Query::returning().columns(T::FIELDS.iter().copied())
    }

    fn live(id: Uuid) -> Expr {
        let mut e = col(T::ID.name()).eq(val(&Value::Uuid(id)));
        if let Some(d) = T::DELETED_AT {
            e = e.and(Expr::col(d).is_null());
        }
        e
    }

    async fn write_one<E: Executor>(exec: &E, st: Statement, id: Uuid) -> Result<T> {
        let rows = exec.write(&st.sql, &st.params()).await.map_err(conflict::map::<T>)?;
        match rows.first() {
            Some(r) => T::from_row(r),
            None => Err(not_found(&T::qualified_name(), id)),
        }
    }

    /// The statement `create` runs (for tests).
    pub fn create_statement(new: &T::New, actor: Option<Uuid>) -> Result<Statement> {
        let params = Self::create_params(new, actor)?;
        Ok(Statement { sql: Self::create_sql().to_string(), params })
    }

    /// The parameters of [`Self::create_statement`], after validation
    /// (`create` itself binds [`Record::new_params`]).
    fn create_params(new: &T::New, actor: Option<Uuid>) -> Result<Vec<Bind>> {
        T::check_new(new)?;
        let values = T::new_values(new);
        let mut params = Vec::with_capacity(values.len() + 2);
        params.extend(values.into_iter().map(Bind::from_value));
        params.extend([Bind::of(&actor.into()), Bind::of(&actor.into())]);
        Ok(params)
    }

    fn create_sql() -> Arc<str> {
        cached::<T>("create", || {
            let mut cols: Vec<&'static str> = T::INSERT.iter().map(|(c, _)| *c).collect();
            cols.extend(["created_by", "updated_by"]);
            let n = cols.len();
            let mut q = InsertStatement::new();
            q.into_table((T::SCHEMA, T::TABLE))
                .columns(cols)
                .values_panic((0..n).map(|_| ph()))
                .returning(Self::returning());
            Statement::build(&q).sql
        })
    }

    fn find_by_id_sql() -> Arc<str> {
        cached::<T>("find_by_id", || match Query::<T>::new().filter(T::ID.eq(Uuid::nil())).to_sql() {
            Ok(st) => st.sql,
            Err(e) => unreachable!("a query by id always builds: {e}"),
        })
    }

    /// The one statement `create_many` runs, and the ids it gives the rows (for tests).
    ///
    /// `INSERT INTO t (id, a, b, ...) SELECT unnest($1::uuid[]), unnest($2::text[]), ...`:
    /// one array parameter per column whatever the row count, so one statement
    /// of constant text (one plan, cached) and no 65,535-parameter limit, atomic
    /// like any statement. Chosen over multi-row VALUES (parameters grow with the
    /// rows, needing chunks, hence several statements) and over COPY (not
    /// available through [`Executor`], no RETURNING, no ON CONFLICT later).
    /// Ids are made here (v4) so they come back in input order.
    pub fn create_many_statement(new: &[T::New], actor: Option<Uuid>) -> Result<(Statement, Vec<Uuid>)> {
        for (i, n) in new.iter().enumerate() {
            T::check_new(n).map_err(|e| crate::error::Error::validation(format!("row {i}: {e}")))?;
        }
        let sql = cached::<T>("create_many", || {
            // Set-returning functions in a select list advance in lockstep (PostgreSQL 10+):
            // `SELECT unnest($1::uuid[]), unnest($2::text[]), ...` is one row per index.
            let mut select = SelectStatement::new();
            select.expr(Expr::cust_with_exprs("unnest($1::uuid[])", [ph()]));
            for (_, ty) in T::INSERT {
                select.expr(Expr::cust_with_exprs(format!("unnest($1::{})", ty.array()), [ph()]));
            }
            select.expr(Expr::cust_with_exprs("$1::uuid", [ph()])).expr(Expr::cust_with_exprs("$1::uuid", [ph()]));
            let mut cols: Vec<&'static str> = vec![T::ID.name()];
            cols.extend(T::INSERT.iter().map(|(c, _)| *c));
            cols.extend(["created_by", "updated_by"]);
            let mut q = InsertStatement::new();
            match q.into_table((T::SCHEMA, T::TABLE)).columns(cols).select_from(select) {
                Ok(q) => Statement::build(q).sql,
                Err(e) => unreachable!("create_many has one expression per column: {e}"),
            }
        });
        let ids: Vec<Uuid> = new.iter().map(|_| Uuid::new_v4()).collect();
        let mut columns: Vec<Bind> = T::INSERT
            .iter()
            .map(|(_, ty)| match ty {
                SqlType::Text | SqlType::Ltree => Bind::Strings(Vec::with_capacity(new.len())),
                SqlType::Uuid => Bind::Uuids(Vec::with_capacity(new.len())),
                SqlType::Jsonb => Bind::Jsons(Vec::with_capacity(new.len())),
                SqlType::Numeric => Bind::Decimals(Vec::with_capacity(new.len())),
            })
            .collect();
        for n in new {
            for ((field, _), (column, v)) in T::INSERT.iter().zip(columns.iter_mut().zip(T::new_values(n))) {
                match (column, v) {
                    (Bind::Strings(c), Value::String(s)) => c.push(Some(s)),
                    (Bind::Strings(c), Value::Null) => c.push(None),
                    (Bind::Uuids(c), Value::Uuid(u)) => c.push(Some(u)),
                    (Bind::Uuids(c), Value::Null) => c.push(None),
                    (Bind::Jsons(c), Value::Json(j)) => c.push(Some(j)),
                    (Bind::Jsons(c), Value::Null) => c.push(None),
                    (Bind::Decimals(c), Value::Decimal(d)) => c.push(Some(d)),
                    (Bind::Decimals(c), Value::Null) => c.push(None),
                    (_, v) => {
                        return Err(crate::error::Error::new(
                            crate::ErrorKind::Internal,
                            format!("{}: value {v:?} does not fit the type of {field}", T::qualified_name()),
                        ))
                    }
                }
            }
        }
        let mut params = vec![Bind::Uuids(ids.iter().map(|u| Some(*u)).collect())];
        params.extend(columns);
        params.extend([Bind::of(&actor.into()), Bind::of(&actor.into())]);
        Ok((Statement { sql: sql.to_string(), params }, ids))
    }

    /// The statement `update` runs, or None for an empty patch (for tests).
    pub fn update_statement(id: Uuid, patch: &T::Patch, actor: Option<Uuid>) -> Result<Option<Statement>> {
        T::check_patch(patch)?;
        let set = T::patch_values(patch);
        if set.is_empty() {
            return Ok(None);
        }
        let mut q = UpdateStatement::new();
        q.table((T::SCHEMA, T::TABLE))
            .values(set.iter().map(|(c, v)| (*c, val(v))))
            .value("updated_by", val(&actor.into()))
            .and_where(Self::live(id))
            .returning(Self::returning());
        Ok(Some(Statement::build(&q)))
    }
}

/// The text of a statement whose shape depends only on the entity and the
/// operation, built once with sea-query and reused: the hot paths (find by id,
/// create, delete, restore, purge) pay no statement building per call.
fn cached<T: Entity>(op: &'static str, build: impl FnOnce() -> String) -> Arc<str> {
    type Key = (&'static str, &'static str, &'static str);
    static CACHE: OnceLock<RwLock<HashMap<Key, Arc<str>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (T::SCHEMA, T::TABLE, op);
    if let Some(sql) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return sql.clone();
    }
    let sql: Arc<str> = build().into();
    cache.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(sql).clone()
}

/// A placeholder for a cached statement's text: sea-query writes `$n`; the real
/// value is bound at run time.
fn ph() -> Expr {
    Expr::val(sea_query::Value::Bool(Some(false)))
}

impl<T: Record, E: Executor> Repository<T, E> for PgRepository<T> {
    type New = T::New;
    type Patch = T::Patch;

    async fn find_by_id(&self, exec: &E, id: Uuid) -> Result<Option<T>> {
        let sql = self.hot.find_by_id.get_or_init(Self::find_by_id_sql);
        let rows = exec.read(sql, &[&id], self.consistency).await?;
        rows.first().map(T::from_row).transpose()
    }

    async fn get(&self, exec: &E, id: Uuid) -> Result<T> {
        self.find_by_id(exec, id).await?.ok_or_else(|| not_found(&T::qualified_name(), id))
    }

    async fn find_all(&self, exec: &E, query: &Query<T>) -> Result<Vec<T>> {
        query.fetch(exec).await
    }

    async fn find_page(&self, exec: &E, query: &Query<T>) -> Result<Page<T>> {
        query.fetch_page(exec).await
    }

    async fn count(&self, exec: &E, query: &Query<T>) -> Result<u64> {
        query.count(exec).await
    }

    async fn exists(&self, exec: &E, query: &Query<T>) -> Result<bool> {
        query.exists(exec).await
    }

    async fn create(&self, exec: &E, new: &T::New) -> Result<T> {
        T::check_new(new)?;
        let actor = exec.actor().map(|a| a.0);
        let params = T::new_params(new, &actor);
        let sql = self.hot.create.get_or_init(Self::create_sql);
        let rows = exec.write(sql, params.as_ref()).await.map_err(conflict::map::<T>)?;
        let row = rows
            .first()
            .ok_or_else(|| crate::error::Error::new(crate::ErrorKind::Internal, "INSERT returned no row"))?;
        T::from_row(row)
    }

    async fn create_many(&self, exec: &E, new: &[T::New]) -> Result<Vec<Uuid>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let (st, ids) = Self::create_many_statement(new, exec.actor().map(|a| a.0))?;
        exec.write(&st.sql, &st.params()).await.map_err(conflict::map::<T>)?;
        Ok(ids)
    }

    async fn update(&self, exec: &E, id: Uuid, patch: &T::Patch) -> Result<T> {
        match Self::update_statement(id, patch, exec.actor().map(|a| a.0))? {
            // Nothing to write: the row as the primary has it (as a write would return it).
            None => self.clone().with_consistency(Consistency::Strong).get(exec, id).await,
            Some(st) => Self::write_one(exec, st, id).await,
        }
    }

    async fn delete(&self, exec: &E, id: Uuid) -> Result<()> {
        let Some(d) = T::DELETED_AT else { return self.purge(exec, id).await };
        let sql = cached::<T>("delete", || {
            let mut q = UpdateStatement::new();
            q.table((T::SCHEMA, T::TABLE))
                .value(d, Expr::current_timestamp())
                .value("updated_by", ph())
                .and_where(col(T::ID.name()).eq(ph()))
                .and_where(Expr::col(d).is_null())
                .returning_col(T::ID.name());
            Statement::build(&q).sql
        });
        let actor = exec.actor().map(|a| a.0);
        let rows = exec.write(&sql, &[&actor, &id]).await.map_err(conflict::map::<T>)?;
        if rows.is_empty() {
            return Err(not_found(&T::qualified_name(), id));
        }
        Ok(())
    }

    async fn restore(&self, exec: &E, id: Uuid) -> Result<T> {
        let Some(d) = T::DELETED_AT else { return self.get(exec, id).await };
        let sql = cached::<T>("restore", || {
            let mut q = UpdateStatement::new();
            q.table((T::SCHEMA, T::TABLE))
                .value(d, Expr::null())
                .value("updated_by", ph())
                .and_where(col(T::ID.name()).eq(ph()))
                .and_where(Expr::col(d).is_not_null())
                .returning(Self::returning());
            Statement::build(&q).sql
        });
        let st = Statement::with_values(sql.to_string(), &[exec.actor().map(|a| a.0).into(), id.into()]);
        Self::write_one(exec, st, id).await.map_err(|e| {
            if e.is_not_found() {
                not_found(&format!("soft-deleted {}", T::qualified_name()), id)
            } else {
                e
            }
        })
    }

    async fn purge(&self, exec: &E, id: Uuid) -> Result<()> {
        let sql = cached::<T>("purge", || {
            let mut q = sea_query::DeleteStatement::new();
            q.from_table((T::SCHEMA, T::TABLE)).and_where(col(T::ID.name()).eq(ph())).returning_col(T::ID.name());
            Statement::build(&q).sql
        });
        let rows = exec.write(&sql, &[&id]).await.map_err(conflict::map::<T>)?;
        if rows.is_empty() {
            return Err(not_found(&T::qualified_name(), id));
        }
        Ok(())
    }

    async fn find_many_by_ids(&self, exec: &E, ids: &[Uuid]) -> Result<Vec<T>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.query().filter(T::ID.in_(ids.iter().copied())).fetch(exec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rust_decimal::Decimal;
    use tokio_postgres::types::{IsNull, Kind, Type};

    fn encoded(p: &(dyn ToSql + Sync), ty: &Type) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        match p.to_sql_checked(ty, &mut out) {
            Ok(IsNull::No) => Some(out.to_vec()),
            Ok(IsNull::Yes) => None,
            Err(e) => panic!("{ty}: {e}"),
        }
    }

    fn server_type(ty: SqlType) -> Type {
        match ty {
            SqlType::Text => Type::TEXT,
            SqlType::Uuid => Type::UUID,
            SqlType::Jsonb => Type::JSONB,
            SqlType::Numeric => Type::NUMERIC,
            // An extension's type: the driver knows it by name only.
            SqlType::Ltree => Type::new("ltree".into(), 16_400, Kind::Simple, "public".into()),
        }
    }

    /// `create` binds borrowed fields; `create_statement` and `create_many`
    /// bind the owned values: the server must receive the same bytes.
    fn binds_as_values<T: Record>(new: &T::New) {
        let actor = Some(Uuid::new_v4());
        let params = T::new_params(new, &actor);
        let params = params.as_ref();
        let values = T::new_values(new);
        assert_eq!(params.len(), T::INSERT.len() + 2, "{}", T::qualified_name());
        assert_eq!(values.len(), T::INSERT.len(), "{}", T::qualified_name());
        for (((field, ty), p), v) in T::INSERT.iter().zip(params).zip(values) {
            let ty = server_type(*ty);
            assert_eq!(encoded(*p, &ty), encoded(&Bind::from_value(v), &ty), "{}.{field}", T::qualified_name());
        }
        for p in &params[T::INSERT.len()..] {
            assert_eq!(encoded(*p, &Type::UUID), encoded(&actor, &Type::UUID));
        }
    }

    #[test]
    fn borrowed_insert_parameters_encode_like_the_owned_values() {
        binds_as_values::<User>(&NewUser::new("zoë@example.com", "Zoë", "O'Brien"));
        let item = NewItem::new("SKU-1", "Dress", "women.dresses", Decimal::new(1999, 2));
        binds_as_values::<Item>(&item);
        binds_as_values::<Item>(&NewItem {
            description: Some("long".into()),
            attributes: serde_json::json!({"size": ["S", "M"]}),
            ..item
        });
        let avatar = NewAvatar::new(Uuid::new_v4(), "me");
        binds_as_values::<Avatar>(&avatar);
        binds_as_values::<Avatar>(&NewAvatar {
            model_ref: Some("m/1".into()),
            measurements: serde_json::json!({"height": 170}),
            ..avatar
        });
    }
}
