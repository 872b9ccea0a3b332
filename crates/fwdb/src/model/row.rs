//! Reading rows by column name and binding a row's fields: what the code
//! `#[derive(Entity)]` generates calls at run time.

use super::Field;
use crate::error::{Error, ErrorKind, Result};
use tokio_postgres::types::{ToSql, WasNull};
use tokio_postgres::{Column, Row};

/// A parameter borrowed from the caller's values (`create_many`'s arrays).
pub type ParamBox<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// Where each of `fields` is among a result's columns, resolved once per
/// result (not per row). Our own statements select the fields in order, which
/// one comparison per column confirms; any other order is looked up by name.
pub fn positions<const N: usize>(table: &str, fields: &[&str; N], columns: &[Column]) -> Result<[usize; N]> {
    let mut p = [0; N];
    let in_order = columns.len() >= N && fields.iter().zip(columns).all(|(f, c)| *f == c.name());
    for (i, f) in fields.iter().enumerate() {
        p[i] = if in_order {
            i
        } else {
            columns.iter().position(|c| c.name() == *f).ok_or_else(|| {
                Error::new(ErrorKind::Internal, format!("{table}: the result has no column {f} (the struct reads it)"))
            })?
        };
    }
    Ok(p)
}

/// Column `idx` of `row` as a `T`; a type the field cannot hold (a migration
/// changed the column) or a NULL in a field that is not an `Option` is an
/// error naming the table, the column and both types.
pub fn get<T: Field>(row: &Row, idx: usize, table: &str, column: &str) -> Result<T> {
    row.try_get::<_, T>(idx).map_err(|e| {
        let actual = row.columns().get(idx).map_or_else(|| "?".to_string(), |c| c.type_().to_string());
        let expected = std::any::type_name::<T>();
        let was_null = std::error::Error::source(&e).is_some_and(|s| s.is::<WasNull>());
        let why = if was_null {
            format!("{table}.{column} is NULL but its field is a {expected}, not an Option")
        } else {
            format!("{table}.{column} is a {actual} column, its field a {expected} (which reads {})", T::PG_TYPE)
        };
        Error::new(ErrorKind::Internal, why).with_source(e)
    })
}

/// A field as a statement parameter.
pub fn param<T: Field>(v: &T) -> &(dyn ToSql + Sync) {
    v
}

/// One column of many rows as an array parameter, borrowing the values.
pub fn column<'a, T: Field>(values: impl Iterator<Item = &'a T>) -> ParamBox<'a> {
    Box::new(values.collect::<Vec<&'a T>>())
}
