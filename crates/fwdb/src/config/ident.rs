//! The names SQL cannot bind as parameters (roles, schemas, databases) must
//! match a strict pattern: checked when the configuration loads, and again
//! by every statement that writes one.

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
