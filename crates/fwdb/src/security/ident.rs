//! Identifiers (role, schema, database names) that SQL cannot bind as
//! parameters: validated against a strict pattern first, then quoted anyway.

pub use crate::config::validate_identifier;
use crate::error::{Error, ErrorKind, Result};

/// `"name"`, validated first; quoted anyway.
pub fn quote_ident(name: &str) -> Result<String> {
    validate_identifier(name)?;
    Ok(quote_existing(name))
}

/// Quotes a name that already names an object (read from the catalog, or
/// a database the caller created): any characters, `"` doubled.
pub(crate) fn quote_existing(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// A string literal: `'...'` with `'` doubled, backslashes kept literal
/// (standard_conforming_strings) by using the E'' form only when needed.
/// Refuses NUL, which PostgreSQL cannot store.
pub fn quote_literal(value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(Error::new(ErrorKind::Validation, "a NUL character cannot be sent to PostgreSQL"));
    }
    if value.contains('\\') {
        Ok(format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''")))
    } else {
        Ok(format!("'{}'", value.replace('\'', "''")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_hostile_ones_are_refused() {
        for ok in ["app_admin", "avatar_service", "_x", "t_0123456789abcdef"] {
            assert_eq!(quote_ident(ok).unwrap(), format!("\"{ok}\""));
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Robert",
            "x\"; DROP ROLE postgres; --",
            "a b",
            "x'y",
            "pg_signal_backend",
            "1abc",
            "é",
            "a-b",
            "a\0b",
            "x;y",
            &long,
            "public\u{202e}",
            "a.b",
            "$1",
        ] {
            assert!(validate_identifier(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn literals_double_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert_eq!(quote_literal("a\\'b").unwrap(), "E'a\\\\''b'");
        assert!(quote_literal("a\0").is_err());
    }
}
