//! Unique violations as conflicts that name the constraint and the field.

use super::Record;
use crate::error::{Error, ErrorKind};

/// Maps a unique violation (23505) of `T`'s table to `ErrorKind::Conflict`
/// naming the constraint and the field; other errors pass unchanged. The cause
/// is kept (its detail shows the duplicate key, e.g. an email: never a secret
/// in these tables).
pub(crate) fn map<T: Record>(e: Error) -> Error {
    let Some(db) = db_error(&e) else { return e };
    if crate::error::pg::is_foreign_key_violation(db.code()) {
        // A reference to no row (create/update), or a row still referenced (purge).
        let constraint = db.constraint().unwrap_or("?").to_string();
        let field = field_of::<T>(&constraint, db.detail());
        let msg = format!("{}: foreign key {constraint} (field {field}) is violated", T::qualified_name());
        return Error::new(ErrorKind::Postgres, msg).with_source(e);
    }
    if !crate::error::pg::is_conflict(db.code()) {
        return e;
    }
    let constraint = db.constraint().unwrap_or("?").to_string();
    let field = field_of::<T>(&constraint, db.detail());
    Error::new(
        ErrorKind::Conflict,
        format!(
            "conflict: {} already has a live row with this {field} (unique constraint {constraint}, field {field})",
            T::qualified_name()
        ),
    )
    .with_source(e)
}

fn db_error(e: &Error) -> Option<&tokio_postgres::error::DbError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(pg) = c.downcast_ref::<tokio_postgres::Error>() {
            return pg.as_db_error();
        }
        cur = c.source();
    }
    None
}

/// The field a constraint guards: from the entity's table, else the first of its
/// fields named in the detail's `Key (...)`.
pub(crate) fn field_of<T: Record>(constraint: &str, detail: Option<&str>) -> String {
    // PostgreSQL names foreign keys `<table>_<column>_fkey`.
    if let Some(f) = constraint.strip_prefix(&format!("{}_", T::TABLE)).and_then(|r| r.strip_suffix("_fkey")) {
        if T::FIELDS.contains(&f) {
            return f.to_string();
        }
    }
    if let Some((_, f)) = T::UNIQUE.iter().find(|(c, _)| *c == constraint) {
        return f.to_string();
    }
    let key = detail.and_then(|d| d.strip_prefix("Key (")).and_then(|d| d.split(")=(").next()).unwrap_or("");
    T::FIELDS
        .iter()
        .find(|f| key.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == **f))
        .map(|f| f.to_string())
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::field_of;
    use crate::entities::{Avatar, Item, User};

    #[test]
    fn a_constraint_is_traced_to_the_field_it_guards() {
        assert_eq!(
            field_of::<User>("idx_users_email", Some("Key (lower(email::text))=(a@b.co) already exists.")),
            "email"
        );
        assert_eq!(field_of::<Item>("idx_items_sku", None), "sku");
        assert_eq!(field_of::<Avatar>("avatars_user_id_fkey", None), "user_id");
        assert_eq!(
            field_of::<Item>("some_new_index", Some("Key (lower(currency::text))=(EUR) already exists.")),
            "currency"
        );
        assert_eq!(field_of::<User>("mystery", None), "?");
    }
}
