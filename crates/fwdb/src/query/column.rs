//! Typed columns: `User::EMAIL: Column<User, String>`. A column offers only the
//! operators its type allows, so a filter cannot compare an email with a
//! number, ask whether a non-null field is null, or name a field by a string.

use super::filter::{Condition, Filter, Op};
use super::value::{Kind, LabelPath, Value};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::marker::PhantomData;
use uuid::Uuid;

/// The Rust type of a field: what its comparisons take, and its kind.
pub trait ColumnType: 'static {
    /// What comparisons with this column take.
    type Arg: Into<Value>;
    const KIND: Kind;
    const NULLABLE: bool = false;
}

/// Types with an order: `lt`, `le`, `gt`, `ge`, and keyset pagination.
pub trait Ordered: ColumnType {}
/// Text: `like`, `ilike`, `eq_ignore_case`, trigram similarity.
pub trait Textual: ColumnType<Arg = String> {}
/// JSON documents: containment.
pub trait JsonDoc: ColumnType<Arg = serde_json::Value> {}
/// Label paths: descendants.
pub trait Labels: ColumnType<Arg = LabelPath> {}
/// Types whose values can be listed for `in_`.
pub trait Listable: ColumnType {
    fn list(items: Vec<Self::Arg>) -> Value;
}

macro_rules! column_type {
    ($($t:ty => $kind:ident),* $(,)?) => { $(impl ColumnType for $t { type Arg = $t; const KIND: Kind = Kind::$kind; })* };
}
column_type!(String => Text, Uuid => Uuid, Decimal => Decimal, DateTime<Utc> => Timestamp, bool => Bool, i64 => I64,
             i32 => I64, i16 => I64, f64 => F64, f32 => F64, NaiveDate => Date,
             serde_json::Value => Json, LabelPath => Ltree);

impl<T: ColumnType> ColumnType for Option<T> {
    type Arg = T::Arg;
    const KIND: Kind = T::KIND;
    const NULLABLE: bool = true;
}

impl Ordered for String {}
impl Ordered for Uuid {}
impl Ordered for Decimal {}
impl Ordered for DateTime<Utc> {}
impl Ordered for i64 {}
impl Ordered for i32 {}
impl Ordered for i16 {}
impl Ordered for f64 {}
impl Ordered for f32 {}
impl Ordered for NaiveDate {}
impl Ordered for LabelPath {}
impl<T: Ordered> Ordered for Option<T> {}
impl Textual for String {}
impl Textual for Option<String> {}
impl JsonDoc for serde_json::Value {}
impl JsonDoc for Option<serde_json::Value> {}

/// A typed JSON document filters like any jsonb column (`contains`).
impl<T: 'static> ColumnType for tokio_postgres::types::Json<T> {
    type Arg = serde_json::Value;
    const KIND: Kind = Kind::Json;
}
impl<T: 'static> JsonDoc for tokio_postgres::types::Json<T> {}
impl<T: 'static> JsonDoc for Option<tokio_postgres::types::Json<T>> {}
impl Labels for LabelPath {}
impl Listable for String {
    fn list(items: Vec<String>) -> Value {
        Value::StringList(items)
    }
}
impl Listable for Option<String> {
    fn list(items: Vec<String>) -> Value {
        Value::StringList(items)
    }
}
impl Listable for Uuid {
    fn list(items: Vec<Uuid>) -> Value {
        Value::UuidList(items)
    }
}
impl Listable for Option<Uuid> {
    fn list(items: Vec<Uuid>) -> Value {
        Value::UuidList(items)
    }
}

/// A field of entity `E` whose Rust type is `T`.
pub struct Column<E, T> {
    name: &'static str,
    _p: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Column<E, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, T> Copy for Column<E, T> {}

impl<E, T> std::fmt::Debug for Column<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

/// Every field has a column, whatever its type; the operators need a [`ColumnType`].
impl<E, T> Column<E, T> {
    /// For entity definitions only: the field's name in the store.
    pub const fn new(name: &'static str) -> Self {
        Column { name, _p: PhantomData }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<E, T: ColumnType> Column<E, T> {
    pub fn kind(&self) -> Kind {
        T::KIND
    }

    pub fn is_nullable(&self) -> bool {
        T::NULLABLE
    }

    fn cond(self, op: Op, value: Value) -> Filter<E> {
        Filter::cond(Condition { field: self.name, kind: T::KIND, op, value })
    }

    pub fn eq(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Eq, v.into().into())
    }

    pub fn ne(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Ne, v.into().into())
    }
}

impl<E, T: Listable> Column<E, T> {
    /// One of these values (an empty list matches nothing).
    pub fn in_<I: IntoIterator<Item = V>, V: Into<T::Arg>>(self, values: I) -> Filter<E> {
        let list = T::list(values.into_iter().map(Into::into).collect());
        self.cond(Op::In, list)
    }
}

impl<E, T: Ordered> Column<E, T> {
    pub fn lt(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Lt, v.into().into())
    }
    pub fn le(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Le, v.into().into())
    }
    pub fn gt(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Gt, v.into().into())
    }
    pub fn ge(self, v: impl Into<T::Arg>) -> Filter<E> {
        self.cond(Op::Ge, v.into().into())
    }
}

impl<E, T: Textual> Column<E, T> {
    /// SQL LIKE: `%` any run, `_` one character, `\` escapes.
    pub fn like(self, pattern: impl Into<String>) -> Filter<E> {
        self.cond(Op::Like, Value::String(pattern.into()))
    }
    /// LIKE ignoring case.
    pub fn ilike(self, pattern: impl Into<String>) -> Filter<E> {
        self.cond(Op::ILike, Value::String(pattern.into()))
    }
    /// Equal ignoring case (what a lower(...) index serves).
    pub fn eq_ignore_case(self, v: impl Into<String>) -> Filter<E> {
        self.cond(Op::EqIgnoreCase, Value::String(v.into()))
    }
    /// Trigram similarity above the store's threshold (pg_trgm `%`, default 0.3).
    pub fn similar_to(self, text: impl Into<String>) -> Filter<E> {
        self.cond(Op::Similar, Value::String(text.into()))
    }
}

impl<E, T: ColumnType> Column<E, Option<T>> {
    pub fn is_null(self) -> Filter<E> {
        self.cond(Op::IsNull, Value::Null)
    }
    pub fn is_not_null(self) -> Filter<E> {
        self.cond(Op::IsNotNull, Value::Null)
    }
}

impl<E, T: JsonDoc> Column<E, T> {
    /// The document contains this one (every key/value of `doc` is present).
    pub fn contains(self, doc: serde_json::Value) -> Filter<E> {
        self.cond(Op::JsonContains, Value::Json(doc))
    }
}

impl<E, T: Labels> Column<E, T> {
    /// The path is `ancestor` or below it (ltree `<@`).
    pub fn descendant_of(self, ancestor: impl Into<LabelPath>) -> Filter<E> {
        self.cond(Op::Descendant, ancestor.into().into())
    }
}
