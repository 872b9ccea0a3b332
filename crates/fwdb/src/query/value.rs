//! The values of the query AST: store-independent (the SQL compiler binds them
//! as parameters; the MongoDB compiler turns them into BSON).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A value compared against a field. Never interpolated into a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    Decimal(Decimal),
    String(String),
    Uuid(Uuid),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Json(serde_json::Value),
    StringList(Vec<String>),
    UuidList(Vec<Uuid>),
}

/// The kind of a field, which decides the operators its column offers and how
/// a cursor value of that field is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    I64,
    F64,
    Decimal,
    Text,
    Uuid,
    Timestamp,
    Date,
    Json,
    /// A dotted label path (PostgreSQL `ltree`).
    Ltree,
}

impl Value {
    /// The kind this value can be compared with, if it is a scalar.
    pub fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Value::Null, _)
                | (Value::Bool(_), Kind::Bool)
                | (Value::I64(_), Kind::I64)
                | (Value::F64(_), Kind::F64)
                | (Value::Date(_), Kind::Date)
                | (Value::Decimal(_), Kind::Decimal)
                | (Value::String(_), Kind::Text | Kind::Ltree)
                | (Value::Uuid(_), Kind::Uuid)
                | (Value::Timestamp(_), Kind::Timestamp)
                | (Value::Json(_), Kind::Json)
        )
    }

    /// Every string this value holds (to check for NUL bytes and the like).
    pub(crate) fn strings(&self) -> Vec<&str> {
        match self {
            Value::String(s) => vec![s.as_str()],
            Value::StringList(l) => l.iter().map(String::as_str).collect(),
            Value::Json(j) => {
                let mut out = Vec::new();
                json_strings(j, &mut out);
                out
            }
            _ => Vec::new(),
        }
    }
}

fn json_strings<'a>(j: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match j {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k);
            json_strings(v, out)
        }),
        _ => {}
    }
}

macro_rules! from {
    ($($t:ty => $v:ident),* $(,)?) => { $(impl From<$t> for Value { fn from(x: $t) -> Value { Value::$v(x.into()) } })* };
}
from!(bool => Bool, i64 => I64, i32 => I64, i16 => I64, f64 => F64, f32 => F64, NaiveDate => Date, Decimal => Decimal, String => String, &str => String,
      Uuid => Uuid, DateTime<Utc> => Timestamp, serde_json::Value => Json, Vec<String> => StringList, Vec<Uuid> => UuidList);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(x: Option<T>) -> Value {
        x.map_or(Value::Null, Into::into)
    }
}

/// A dotted label path such as `women.dresses.evening` (PostgreSQL `ltree`).
/// Checked when used: labels of letters, digits and `_`, separated by dots.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct LabelPath(pub String);

impl LabelPath {
    pub fn new(path: impl Into<String>) -> LabelPath {
        LabelPath(path.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LabelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for LabelPath {
    fn from(s: &str) -> Self {
        LabelPath(s.to_string())
    }
}

impl From<String> for LabelPath {
    fn from(s: String) -> Self {
        LabelPath(s)
    }
}

impl From<LabelPath> for Value {
    fn from(p: LabelPath) -> Value {
        Value::String(p.0)
    }
}

/// An ltree travels as text (postgres-types handles ltree's binary format).
impl tokio_postgres::types::ToSql for LabelPath {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.as_str().to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for LabelPath {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        String::from_sql(ty, raw).map(LabelPath)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <String as tokio_postgres::types::FromSql<'_>>::accepts(ty)
    }
}
