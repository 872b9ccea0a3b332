//! The typed query builder (architecture 5.2): a store-independent filter AST
//! (`filter`, `value`), typed columns that offer only the operators their type
//! allows (`column`), keyset cursors (`cursor`), and the PostgreSQL compiler
//! (`sql`, through sea-query; every value a bound parameter).

mod bind;
pub(crate) mod bson;
pub(crate) mod check;
mod column;
mod cursor;
mod filter;
mod shape;
mod sql;
mod value;

pub use column::{Column, ColumnType, JsonDoc, Labels, Listable, Ordered, Textual};
pub use filter::{Condition, Filter, FilterNode, Op};
pub use sql::Statement;
pub use value::{Kind, LabelPath, Value};

pub(crate) use bind::Bind;
pub(crate) use sql::{col, val};

use crate::error::{Error, Result};
use crate::postgres::{Consistency, Executor};
use cursor::Key;
use sea_query::{Cond, Expr, ExprTrait, SelectStatement};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use tokio_postgres::Row;
use uuid::Uuid;

/// The most rows one query may ask for.
pub const MAX_LIMIT: i64 = 10_000;

/// A stored entity: where it lives, how a row becomes one, and its field values
/// (for cursors). Derived with `#[derive(fwdb::Entity)]` (see [`crate::model`]).
pub trait Entity: Sized + Send + Sync + 'static {
    const SCHEMA: &'static str;
    const TABLE: &'static str;
    /// The fields read back, in order.
    const FIELDS: &'static [&'static str];
    /// The primary key, a uuid.
    const ID: Column<Self, Uuid>;
    /// The soft-delete timestamp, if the entity has one.
    const DELETED_AT: Option<&'static str> = Some("deleted_at");

    fn from_row(row: &Row) -> Result<Self>;
    /// Many rows of one result (derived entities resolve the column positions once).
    fn from_rows(rows: &[Row]) -> Result<Vec<Self>> {
        rows.iter().map(Self::from_row).collect()
    }
    fn id(&self) -> Uuid;
    /// The value of one of `FIELDS` (those that can order a query).
    fn field_value(&self, field: &str) -> Option<Value>;

    /// `schema.table`.
    fn qualified_name() -> String {
        format!("{}.{}", Self::SCHEMA, Self::TABLE)
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// Which rows a query sees with respect to soft deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    /// Live rows only (the default).
    #[default]
    Exclude,
    /// Live and soft-deleted rows.
    Include,
    /// Soft-deleted rows only.
    Only,
}

/// One page of a keyset walk: the rows and, when more follow, the cursor for `after`.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A fluent query on entity `E` (also the `FindOptions` of the repositories).
pub struct Query<E> {
    filter: Option<FilterNode>,
    order: Vec<Key>,
    limit: Option<i64>,
    offset: Option<i64>,
    after: Option<String>,
    deleted: Deleted,
    consistency: Consistency,
    /// The statement text of each shape this query has run, once known:
    /// a query kept and run again (a list endpoint's) skips building its
    /// shape key and the shared cache lookup. Every builder method that can
    /// change the text clears it (see `reshaped`).
    memo: [OnceLock<Arc<str>>; 4],
    _e: PhantomData<fn() -> E>,
}

/// The options of `find_all`: a [`Query`].
pub type FindOptions<E> = Query<E>;

impl<E> Clone for Query<E> {
    fn clone(&self) -> Self {
        Query {
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            after: self.after.clone(),
            deleted: self.deleted,
            consistency: self.consistency,
            memo: self.memo.clone(),
            _e: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for Query<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("after", &self.after.is_some())
            .field("deleted", &self.deleted)
            .finish()
    }
}

impl<E: Entity> Default for Query<E> {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Rows { extra: i64 },
    Count,
    Exists,
}

impl Shape {
    /// Its slot in `Query::memo`.
    fn slot(self) -> usize {
        match self {
            Shape::Rows { extra: 0 } => 0,
            Shape::Rows { .. } => 1,
            Shape::Count => 2,
            Shape::Exists => 3,
        }
    }
}

impl<E: Entity> Query<E> {
    pub fn new() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            after: None,
            deleted: Deleted::Exclude,
            consistency: Consistency::Eventual,
            memo: Default::default(),
            _e: PhantomData,
        }
    }

    /// Adds a filter (ANDed with those given before).
    pub fn filter(mut self, f: Filter<E>) -> Self {
        self.reshaped();
        self.filter = Some(match self.filter.take() {
            None => f.into_node(),
            Some(FilterNode::And(mut v)) => {
                v.push(f.into_node());
                FilterNode::And(v)
            }
            Some(n) => FilterNode::And(vec![n, f.into_node()]),
        });
        self
    }

    /// Orders by a column; the id is always the last key, so every ordering is total.
    pub fn order_by<T: Ordered>(mut self, column: Column<E, T>, order: Order) -> Self {
        self.reshaped();
        self.order.push(Key { field: column.name(), kind: T::KIND, desc: order == Order::Desc });
        self
    }

    /// At most `n` rows (0 to [`MAX_LIMIT`]; other values are a validation error when run).
    pub fn limit(mut self, n: i64) -> Self {
        self.reshaped();
        self.limit = Some(n);
        self
    }

    /// Skips `n` rows (not with `after`).
    pub fn offset(mut self, n: i64) -> Self {
        self.reshaped();
        self.offset = Some(n);
        self
    }

    /// Continues after the row a [`Page::next`] cursor was made from (same ordering required).
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.reshaped();
        self.after = Some(cursor.into());
        self
    }

    /// Sees soft-deleted rows too.
    pub fn with_deleted(mut self) -> Self {
        self.reshaped();
        self.deleted = Deleted::Include;
        self
    }

    /// Sees only soft-deleted rows.
    pub fn only_deleted(mut self) -> Self {
        self.reshaped();
        self.deleted = Deleted::Only;
        self
    }

    /// How fresh the rows must be (default: any replica in bounds).
    pub fn consistency(mut self, c: Consistency) -> Self {
        self.consistency = c;
        self
    }

    /// Forgets the memoized statement texts: the query's shape may change.
    fn reshaped(&mut self) {
        self.memo = Default::default();
    }

    pub fn filter_node(&self) -> Option<&FilterNode> {
        self.filter.as_ref()
    }

    /// The keys of the ordering, the id last.
    fn keys(&self) -> Vec<Key> {
        let mut keys = self.order.clone();
        if !keys.iter().any(|k| k.field == E::ID.name()) {
            keys.push(Key { field: E::ID.name(), kind: E::ID.kind(), desc: false });
        }
        keys
    }

    /// Every check that needs no server: limit, offset, cursor, filter values.
    pub fn validate(&self) -> Result<()> {
        self.validate_but_cursor()?;
        if let Some(c) = &self.after {
            cursor::decode(c, &E::qualified_name(), &self.keys())?;
        }
        Ok(())
    }

    fn validate_but_cursor(&self) -> Result<()> {
        self.limit_checked()?;
        if let Some(o) = self.offset {
            if o < 0 {
                return Err(check::invalid("offset", "must not be negative"));
            }
        }
        if self.after.is_some() && self.offset.is_some() {
            return Err(check::invalid("offset", "use a cursor or an offset, not both"));
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }

    fn limit_checked(&self) -> Result<Option<i64>> {
        match self.limit {
            Some(n) if !(0..=MAX_LIMIT).contains(&n) => {
                Err(check::invalid("limit", &format!("{n} is out of range 0..={MAX_LIMIT}")))
            }
            l => Ok(l),
        }
    }

    fn where_cond(&self) -> Result<Cond> {
        let mut cond = Cond::all();
        if let Some(f) = &self.filter {
            f.validate()?;
            cond = cond.add(sql::node(f));
        }
        if let Some(d) = E::DELETED_AT {
            match self.deleted {
                Deleted::Exclude => cond = cond.add(Expr::col(d).is_null()),
                Deleted::Include => {}
                Deleted::Only => cond = cond.add(Expr::col(d).is_not_null()),
            }
        }
        if let Some(c) = &self.after {
            let keys = self.keys();
            let values = cursor::decode(c, &E::qualified_name(), &keys)?;
            cond = cond.add(keyset(&keys, &values));
        }
        Ok(cond)
    }

    fn select(&self, shape: Shape) -> Result<SelectStatement> {
        self.validate()?;
        let mut q = SelectStatement::new();
        q.from((E::SCHEMA, E::TABLE)).cond_where(self.where_cond()?);
        match shape {
            Shape::Count => {
                q.expr(Expr::cust("count(*)"));
            }
            Shape::Exists => {
                q.expr(Expr::cust("1"));
            }
            Shape::Rows { .. } => {
                q.columns(E::FIELDS.iter().copied());
                for k in self.keys() {
                    q.order_by(k.field, if k.desc { sea_query::Order::Desc } else { sea_query::Order::Asc });
                }
            }
        }
        Ok(q)
    }

    /// The LIMIT written into the text of `shape`'s statement, if any.
    fn limit_of(&self, shape: Shape) -> Result<Option<i64>> {
        Ok(match shape {
            Shape::Rows { extra } => self.limit_checked()?.map(|l| l + extra),
            Shape::Exists => Some(1),
            Shape::Count => None,
        })
    }

    /// `select` built with sea-query, then LIMIT as a number in the text and
    /// OFFSET as a parameter. Why the LIMIT is not a parameter: with `LIMIT $n`
    /// PostgreSQL cannot cost a generic plan (it assumes 10 % of the rows), so
    /// it plans the statement again on every execution (pg_prepared_statements
    /// shows custom_plans only), which cost lists ~20 % of their throughput
    /// (docs/benchmarks.md). It is an integer checked to 0..=MAX_LIMIT, never
    /// caller text, and a page size has few values (each is one statement).
    fn build(&self, shape: Shape) -> Result<Statement> {
        let mut st = Statement::build(&self.select(shape)?);
        if let Some(l) = self.limit_of(shape)? {
            st.sql.push_str(&format!(" LIMIT {l}"));
        }
        if let (Shape::Rows { .. }, Some(o)) = (shape, self.offset) {
            st.params.push(shape::count_value(o as u64));
            st.sql.push_str(&format!(" OFFSET ${}", st.params.len()));
        }
        Ok(st)
    }

    /// The statement `fetch` runs: for tests and logs (values are parameters, not in the text).
    pub fn to_sql(&self) -> Result<Statement> {
        self.build(Shape::Rows { extra: 0 })
    }

    /// The statement of `shape` for this query: its text from the shape
    /// cache (built with sea-query on the shape's first use, see `shape`),
    /// and its values, validated.
    fn prepared(&self, shape: Shape) -> Result<(Arc<str>, Vec<Bind>)> {
        self.validate_but_cursor()?;
        // Without a cursor (decoded and checked on every run) the text is
        // the one memoized; the limit is still checked as below.
        let memo = &self.memo[shape.slot()];
        if let (None, Some(sql)) = (&self.after, memo.get()) {
            self.limit_of(shape)?;
            return Ok((sql.clone(), self.values(shape, &[], None)));
        }
        let keys = self.keys();
        let after = match &self.after {
            Some(c) => Some(cursor::decode(c, &E::qualified_name(), &keys)?),
            None => None,
        };
        let key = shape::key(&shape::KeyParts {
            // Several structs may read one table, each its own columns.
            entity: std::any::type_name::<E>(),
            table: E::TABLE,
            kind: match shape {
                Shape::Rows { .. } => 'R',
                Shape::Count => 'C',
                Shape::Exists => 'E',
            },
            deleted: self.deleted as u8,
            filter: self.filter.as_ref(),
            keys: &keys,
            limit: self.limit_of(shape)?,
            offset: self.offset.is_some(),
            after: after.is_some(),
        });
        let values = self.values(shape, &keys, after.as_deref());
        if let Some(sql) = shape::get(&key) {
            if after.is_none() {
                let _ = memo.set(sql.clone());
            }
            return Ok((sql, values));
        }
        let st = self.build(shape)?;
        let sql: Arc<str> = st.sql.into();
        if st.params == values {
            if after.is_none() {
                let _ = memo.set(sql.clone());
            }
            shape::put(key, sql.clone());
        } else {
            tracing::debug!(%sql, "query shape not cached: its values do not walk in sea-query's order");
        }
        Ok((sql, st.params))
    }

    /// The parameters of `shape` in the order `build` binds them: the
    /// filter's, the cursor's, then OFFSET.
    fn values(&self, shape: Shape, keys: &[Key], after: Option<&[Value]>) -> Vec<Bind> {
        let mut values = Vec::new();
        if let Some(f) = &self.filter {
            shape::filter_values(f, &mut values);
        }
        if let Some(a) = after {
            shape::keyset_values(keys, a, &mut values);
        }
        if let (Shape::Rows { .. }, Some(o)) = (shape, self.offset) {
            values.push(shape::count_value(o as u64));
        }
        values
    }

    async fn run<X: Executor>(&self, exec: &X, shape: Shape) -> Result<Vec<Row>> {
        let (sql, values) = self.prepared(shape)?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            values.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        exec.read(&sql, &params, self.consistency).await
    }

    /// The matching rows.
    pub async fn fetch<X: Executor>(&self, exec: &X) -> Result<Vec<E>> {
        let rows = self.run(exec, Shape::Rows { extra: 0 }).await?;
        E::from_rows(&rows)
    }

    /// One page of at most `limit` rows (default 100) and the cursor of the next, if any.
    pub async fn fetch_page<X: Executor>(&self, exec: &X) -> Result<Page<E>> {
        let mut q = self.clone();
        if q.limit.is_none() {
            q.limit = Some(100);
            q.reshaped();
        }
        let limit = q.limit_checked()?.unwrap_or(100) as usize;
        let rows = q.run(exec, Shape::Rows { extra: 1 }).await?;
        let mut items = E::from_rows(&rows)?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| self.cursor_for(last)).transpose()?
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// The cursor continuing after `row` in this query's ordering.
    pub fn cursor_for(&self, row: &E) -> Result<String> {
        let keys = self.keys();
        let values = keys
            .iter()
            .map(|k| {
                row.field_value(k.field).filter(|v| !matches!(v, Value::Null)).ok_or_else(|| {
                    check::invalid("order", &format!("{} cannot key a cursor (null or unknown)", k.field))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(cursor::encode(&E::qualified_name(), &keys, &values))
    }

    /// How many rows match the filter, the soft-delete scope and the cursor (limit and offset ignored).
    pub async fn count<X: Executor>(&self, exec: &X) -> Result<u64> {
        let rows = self.run(exec, Shape::Count).await?;
        let n: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        Ok(n as u64)
    }

    /// Whether any row matches.
    pub async fn exists<X: Executor>(&self, exec: &X) -> Result<bool> {
        Ok(!self.run(exec, Shape::Exists).await?.is_empty())
    }

    /// The server's plan for `fetch` (EXPLAIN, or EXPLAIN ANALYZE which runs the query).
    pub async fn explain<X: Executor>(&self, exec: &X, analyze: bool) -> Result<String> {
        let st = self.build(Shape::Rows { extra: 0 })?;
        let sql = format!("{} {}", if analyze { "EXPLAIN (ANALYZE, BUFFERS)" } else { "EXPLAIN" }, st.sql);
        let rows = exec.read(&sql, &st.params(), self.consistency).await?;
        let lines = rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }
}

/// Rows after the cursor's: `(a, b, id) > ($1, $2, $3)` when every key goes the
/// same way (one row comparison, which an index on those columns serves), else
/// `a > $1 OR (a = $1 AND (b < $2 OR ...))`.
fn keyset(keys: &[Key], values: &[Value]) -> Expr {
    if keys.iter().all(|k| k.desc == keys[0].desc) {
        let cols = Expr::tuple(keys.iter().map(|k| col(k.field)));
        let vals = Expr::tuple(values.iter().map(val));
        return if keys[0].desc { cols.lt(vals) } else { cols.gt(vals) };
    }
    let mut expr: Option<Expr> = None;
    for (k, v) in keys.iter().zip(values).rev() {
        let beyond = if k.desc { col(k.field).lt(val(v)) } else { col(k.field).gt(val(v)) };
        expr = Some(match expr {
            None => beyond,
            Some(rest) => beyond.or(col(k.field).eq(val(v)).and(rest)),
        });
    }
    expr.unwrap_or_else(|| Expr::cust("TRUE"))
}

/// `s` as a LIKE pattern matching itself literally (`\`, `%` and `_` escaped):
/// `User::LAST_NAME.like(format!("{}%", escape_like(prefix)))`.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn not_found(entity: &str, id: Uuid) -> Error {
    Error::new(crate::error::ErrorKind::NotFound, format!("no live {entity} row with id {id}"))
}

#[cfg(test)]
mod tests;
