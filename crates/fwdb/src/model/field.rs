//! The Rust types a table's fields may have, and what fwdb needs of each.

use crate::error::Result;
use crate::query::{check, LabelPath, Value};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, Json, ToSql};
use uuid::Uuid;

/// A Rust type a field of a `#[derive(Entity)]` struct may have: it reads
/// from and binds to its PostgreSQL type, names that type (for `create_many`'s
/// array casts), gives its value to filters and cursors, and checks what
/// PostgreSQL would refuse (a NUL in text, a malformed label path).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a column type fwdb maps to PostgreSQL",
    label = "this field's type",
    note = "supported: bool, i16, i32, i64, f32, f64, Decimal, String, Uuid, DateTime<Utc>, NaiveDate, \
            serde_json::Value, Json<T>, LabelPath (ltree), Vec<T> of these, and Option of each"
)]
pub trait Field: ToSql + for<'a> FromSql<'a> + Send + Sync + 'static {
    /// The PostgreSQL type, as a cast writes it (`text`, `int4`, `ltree[]`).
    const PG_TYPE: &'static str;
    /// The type of an array of it (`text[]`); empty where PostgreSQL has none (arrays of arrays).
    const PG_ARRAY: &'static str;
    /// The value a rule checks: the field itself, or what an `Option` holds.
    type Inner: ?Sized;

    /// The value rules apply to, `None` for a NULL.
    fn present(&self) -> Option<&Self::Inner>;

    /// Its value in a filter or a cursor.
    fn to_value(&self) -> Value;

    /// What PostgreSQL would refuse, found before any SQL (errors name `field`).
    fn check(&self, field: &str) -> Result<()> {
        let _ = field;
        Ok(())
    }
}

macro_rules! scalar {
    ($($t:ty => $pg:literal, |$s:ident| $value:expr;)*) => {$(
        impl Field for $t {
            const PG_TYPE: &'static str = $pg;
            const PG_ARRAY: &'static str = concat!($pg, "[]");
            type Inner = $t;
            fn present(&self) -> Option<&$t> {
                Some(self)
            }
            fn to_value(&self) -> Value {
                let $s = self;
                $value
            }
        }
    )*};
}

scalar! {
    bool => "boolean", |s| Value::Bool(*s);
    i16 => "int2", |s| Value::I64(i64::from(*s));
    i32 => "int4", |s| Value::I64(i64::from(*s));
    i64 => "int8", |s| Value::I64(*s);
    f32 => "float4", |s| Value::F64(f64::from(*s));
    f64 => "float8", |s| Value::F64(*s);
    Decimal => "numeric", |s| Value::Decimal(*s);
    Uuid => "uuid", |s| Value::Uuid(*s);
    DateTime<Utc> => "timestamptz", |s| Value::Timestamp(*s);
    NaiveDate => "date", |s| Value::Date(*s);
}

impl Field for String {
    const PG_TYPE: &'static str = "text";
    const PG_ARRAY: &'static str = "text[]";
    type Inner = str;
    fn present(&self) -> Option<&str> {
        Some(self)
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    fn check(&self, field: &str) -> Result<()> {
        check::no_nul(field, self)
    }
}

impl Field for LabelPath {
    const PG_TYPE: &'static str = "ltree";
    const PG_ARRAY: &'static str = "ltree[]";
    type Inner = LabelPath;
    fn present(&self) -> Option<&LabelPath> {
        Some(self)
    }
    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
    fn check(&self, field: &str) -> Result<()> {
        check::label_path(field, self.as_str())
    }
}

impl Field for serde_json::Value {
    const PG_TYPE: &'static str = "jsonb";
    const PG_ARRAY: &'static str = "jsonb[]";
    type Inner = serde_json::Value;
    fn present(&self) -> Option<&serde_json::Value> {
        Some(self)
    }
    fn to_value(&self) -> Value {
        Value::Json(self.clone())
    }
    fn check(&self, field: &str) -> Result<()> {
        check::json_strings(field, self)
    }
}

/// A typed JSON document stored as jsonb.
impl<T> Field for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    const PG_TYPE: &'static str = "jsonb";
    const PG_ARRAY: &'static str = "jsonb[]";
    type Inner = T;
    fn present(&self) -> Option<&T> {
        Some(&self.0)
    }
    fn to_value(&self) -> Value {
        serde_json::to_value(&self.0).map_or(Value::Null, Value::Json)
    }
}

impl<T: Field> Field for Option<T> {
    const PG_TYPE: &'static str = T::PG_TYPE;
    const PG_ARRAY: &'static str = T::PG_ARRAY;
    type Inner = T::Inner;
    fn present(&self) -> Option<&T::Inner> {
        self.as_ref().and_then(Field::present)
    }
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Field::to_value)
    }
    fn check(&self, field: &str) -> Result<()> {
        self.as_ref().map_or(Ok(()), |v| v.check(field))
    }
}

/// A PostgreSQL array (`text[]`, `int4[]`, ...). Arrays order no query and
/// key no cursor: their value in a filter is NULL.
impl<T: Field> Field for Vec<T> {
    const PG_TYPE: &'static str = T::PG_ARRAY;
    const PG_ARRAY: &'static str = "";
    type Inner = [T];
    fn present(&self) -> Option<&[T]> {
        Some(self)
    }
    fn to_value(&self) -> Value {
        Value::Null
    }
    fn check(&self, field: &str) -> Result<()> {
        self.iter().try_for_each(|v| v.check(field))
    }
}

/// An integer bound of a `range` rule, in the field's type (saturating).
pub trait Bound: Sized {
    fn from_i128(v: i128) -> Self;
}

/// A fractional bound of a `range` rule: integer fields do not take one.
pub trait FloatBound: Sized {
    fn from_f64(v: f64) -> Self;
}

macro_rules! int_bound {
    ($($t:ty),*) => {$(
        impl Bound for $t {
            fn from_i128(v: i128) -> Self {
                <$t>::try_from(v).unwrap_or(if v < 0 { <$t>::MIN } else { <$t>::MAX })
            }
        }
    )*};
}
int_bound!(i16, i32, i64);

impl Bound for f32 {
    fn from_i128(v: i128) -> Self {
        v as f32
    }
}
impl Bound for f64 {
    fn from_i128(v: i128) -> Self {
        v as f64
    }
}
impl Bound for Decimal {
    fn from_i128(v: i128) -> Self {
        Decimal::try_from_i128_with_scale(v, 0).unwrap_or(if v < 0 { Decimal::MIN } else { Decimal::MAX })
    }
}
impl FloatBound for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl FloatBound for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}
impl FloatBound for Decimal {
    fn from_f64(v: f64) -> Self {
        Decimal::from_f64_retain(v).unwrap_or_default()
    }
}
