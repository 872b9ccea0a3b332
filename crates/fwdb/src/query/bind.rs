//! Binding the values of a built statement: our [`Value`] becomes a sea-query
//! value for building, and sea-query's values become tokio-postgres parameters
//! here, each checked against the parameter type the server inferred.

use super::value::Value;
use bytes::BytesMut;
use sea_query::{ArrayType, Value as Sv};
use std::error::Error as StdError;
use tokio_postgres::types::{IsNull, ToSql, Type};
use uuid::Uuid;

type BoxError = Box<dyn StdError + Sync + Send>;

/// Our value as sea-query's (`Value::Null` has none: it is written as the NULL keyword).
pub(crate) fn to_sea(v: &Value) -> Sv {
    match v {
        Value::Null => Sv::String(None),
        Value::Bool(b) => Sv::Bool(Some(*b)),
        Value::I64(i) => Sv::BigInt(Some(*i)),
        Value::F64(f) => Sv::Double(Some(*f)),
        Value::Decimal(d) => Sv::Decimal(Some(*d)),
        Value::String(s) => Sv::String(Some(s.clone())),
        Value::Uuid(u) => Sv::Uuid(Some(*u)),
        Value::Timestamp(t) => Sv::ChronoDateTimeUtc(Some(*t)),
        Value::Date(d) => Sv::ChronoDate(Some(*d)),
        Value::Json(j) => Sv::Json(Some(Box::new(j.clone()))),
        Value::StringList(l) => {
            Sv::Array(ArrayType::String, Some(Box::new(l.iter().map(|s| Sv::String(Some(s.clone()))).collect())))
        }
        Value::UuidList(l) => {
            Sv::Array(ArrayType::Uuid, Some(Box::new(l.iter().map(|u| Sv::Uuid(Some(*u))).collect())))
        }
    }
}

/// One bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    /// A NULL of whatever type the server expects.
    Null,
    One(Sv),
    Strings(Vec<Option<String>>),
    Uuids(Vec<Option<Uuid>>),
    Jsons(Vec<Option<serde_json::Value>>),
    Decimals(Vec<Option<rust_decimal::Decimal>>),
}

impl Bind {
    /// Our value as a parameter, without going through a statement build.
    pub(crate) fn of(v: &Value) -> Bind {
        match v {
            Value::Null => Bind::Null,
            v => Bind::from_sea(to_sea(v)),
        }
    }

    pub(crate) fn from_sea(v: Sv) -> Bind {
        match v {
            Sv::Array(ArrayType::String, items) => Bind::Strings(
                items
                    .map(|b| b.into_iter().map(|i| if let Sv::String(s) = i { s } else { None }).collect())
                    .unwrap_or_default(),
            ),
            Sv::Array(ArrayType::Uuid, items) => Bind::Uuids(
                items
                    .map(|b| b.into_iter().map(|i| if let Sv::Uuid(u) = i { u } else { None }).collect())
                    .unwrap_or_default(),
            ),
            Sv::Array(ArrayType::Json, items) => Bind::Jsons(
                items
                    .map(|b| b.into_iter().map(|i| if let Sv::Json(j) = i { j.map(|j| *j) } else { None }).collect())
                    .unwrap_or_default(),
            ),
            Sv::Array(ArrayType::Decimal, items) => Bind::Decimals(
                items
                    .map(|b| b.into_iter().map(|i| if let Sv::Decimal(d) = i { d } else { None }).collect())
                    .unwrap_or_default(),
            ),
            other => Bind::One(other),
        }
    }
}

impl ToSql for Bind {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.to_sql_checked(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Bind::Null => Ok(IsNull::Yes),
            Bind::Strings(v) => v.to_sql_checked(ty, out),
            Bind::Uuids(v) => v.to_sql_checked(ty, out),
            Bind::Jsons(v) => v.to_sql_checked(ty, out),
            Bind::Decimals(v) => v.to_sql_checked(ty, out),
            Bind::One(v) => match v {
                Sv::Bool(x) => x.to_sql_checked(ty, out),
                // A filter's integer is an i64 whatever the column's width: narrowed here, checked.
                Sv::BigInt(x) => match *ty {
                    Type::INT4 => x.map(i32::try_from).transpose()?.to_sql_checked(ty, out),
                    Type::INT2 => x.map(i16::try_from).transpose()?.to_sql_checked(ty, out),
                    _ => x.to_sql_checked(ty, out),
                },
                Sv::Double(x) => match *ty {
                    Type::FLOAT4 => x.map(|f| f as f32).to_sql_checked(ty, out),
                    _ => x.to_sql_checked(ty, out),
                },
                Sv::ChronoDate(x) => x.to_sql_checked(ty, out),
                Sv::Decimal(x) => x.to_sql_checked(ty, out),
                Sv::String(x) => x.as_deref().to_sql_checked(ty, out),
                Sv::Uuid(x) => x.to_sql_checked(ty, out),
                Sv::ChronoDateTimeUtc(x) => x.to_sql_checked(ty, out),
                Sv::Json(x) => x.as_deref().to_sql_checked(ty, out),
                // sea-query itself may add small integers (e.g. LIMIT); widen them.
                Sv::Int(x) => match *ty {
                    Type::INT8 => x.map(i64::from).to_sql_checked(ty, out),
                    _ => x.to_sql_checked(ty, out),
                },
                Sv::BigUnsigned(x) => x.map(|u| i64::try_from(u).unwrap_or(i64::MAX)).to_sql_checked(ty, out),
                Sv::Unsigned(x) => x.map(i64::from).to_sql_checked(ty, out),
                other => Err(format!("fwdb cannot bind a {other:?} parameter").into()),
            },
        }
    }
}
