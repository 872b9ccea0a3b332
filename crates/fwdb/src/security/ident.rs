//! Identifiers (role, schema, database names) that SQL cannot bind as
//! parameters: validated against a strict pattern first, then quoted anyway.

use crate::error::{Error, ErrorKind, Result};

/// PostgreSQL truncates identifiers to 63 bytes; a longer name would silently
/// name something else.
const MAX_IDENT: usize = 63;

/// Accepts `[a-z_][a-z0-9_]{0,62}`: lower case so that quoted and unquoted
/// spellings name the same object, nothing that needs escaping, nothing
/// reserved for the system (`pg_` prefix).
pub fn validate_identifier(name: &str) -> Result<&str> {
    let bad = |why: &str| {
        Err(Error::new(ErrorKind::Validation, format!("{:?} is not an acceptable identifier: {why}", shorten(name))))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_IDENT {
        return bad("longer than 63 bytes");
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('0');
    if !(first.is_ascii_lowercase() || first == '_') {
        return bad("it must start with a-z or _");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return bad("only a-z, 0-9 and _ are allowed");
    }
    if name.starts_with("pg_") {
        return bad("the pg_ prefix is reserved");
    }
    Ok(name)
}

fn shorten(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

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
