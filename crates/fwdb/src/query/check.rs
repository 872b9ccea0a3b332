//! Input checks shared by the query builder and the repositories. Every error
//! is `ErrorKind::Validation` and names the field; none contains the value
//! (it may be long, hostile or secret).

use crate::error::{Error, Result};

pub(crate) fn invalid(field: &str, why: &str) -> Error {
    Error::validation(format!("invalid {field}: {why}"))
}

/// PostgreSQL text cannot hold U+0000.
pub(crate) fn no_nul(field: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(invalid(field, "contains a NUL byte, which PostgreSQL text cannot store"));
    }
    Ok(())
}

/// Non-blank, at most `max` characters (VARCHAR limits count characters), no NUL.
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<()> {
    no_nul(field, s)?;
    if s.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, &format!("{n} characters, at most {max} allowed")));
    }
    Ok(())
}

/// Optional text: may be empty, at most `max` characters, no NUL.
pub(crate) fn opt_text(field: &str, s: Option<&str>, max: usize) -> Result<()> {
    let Some(s) = s else { return Ok(()) };
    no_nul(field, s)?;
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, &format!("{n} characters, at most {max} allowed")));
    }
    Ok(())
}

/// An address a person can receive mail at: `local@domain.tld`, no spaces or
/// control characters, at most 255 characters (the column is varchar(255)).
pub(crate) fn email(field: &str, s: &str) -> Result<()> {
    no_nul(field, s)?;
    // Nearly every address is ASCII: then a byte is a character, so the
    // counts are lengths and the scans need no UTF-8 decoding (this check
    // was the largest CPU cost of an insert besides the driver). For ASCII,
    // whitespace-or-control is exactly space or an ASCII control byte, and
    // alphanumeric is ASCII alphanumeric: the same rules either way.
    let ascii = s.is_ascii();
    let n = if ascii { s.len() } else { s.chars().count() };
    if n > 255 {
        return Err(invalid(field, &format!("{n} characters, at most 255 allowed")));
    }
    let spaced = if ascii {
        s.bytes().any(|b| b == b' ' || b.is_ascii_control())
    } else {
        s.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if spaced {
        return Err(invalid(field, "not an email address (spaces or control characters)"));
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err(invalid(field, "not an email address (no @)"));
    };
    let domain_chars_ok = if ascii {
        domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    } else {
        domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && domain_chars_ok;
    let local_len = if ascii { local.len() } else { local.chars().count() };
    if local.is_empty() || local_len > 64 || !domain_ok {
        return Err(invalid(field, "not an email address"));
    }
    Ok(())
}

/// An ltree path: labels of ASCII letters, digits and `_` (1 to 255 each), separated by dots.
pub(crate) fn label_path(field: &str, s: &str) -> Result<()> {
    no_nul(field, s)?;
    if s.is_empty() {
        return Err(invalid(field, "empty label path"));
    }
    for label in s.split('.') {
        if label.is_empty() || label.len() > 255 || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid(field, "malformed label path: dot-separated labels of letters, digits and _"));
        }
    }
    Ok(())
}

/// A JSON object whose strings hold no NUL.
pub(crate) fn json_object(field: &str, v: &serde_json::Value) -> Result<()> {
    if !v.is_object() {
        return Err(invalid(field, "must be a JSON object"));
    }
    for s in super::Value::Json(v.clone()).strings() {
        no_nul(field, s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_without_an_at_or_a_domain_or_with_spaces_are_rejected_naming_the_field() {
        for bad in ["", "plain", "@x.com", "a@", "a@b", "a b@x.com", "a@x..com", " a@x.com", "a@x.com\0", "a@b@c.com"] {
            let e = email("email", bad).unwrap_err();
            assert!(e.to_string().contains("email"), "{bad:?}: {e}");
            assert_eq!(e.kind(), crate::ErrorKind::Validation);
        }
        let long = format!("{}@x.com", "a".repeat(250));
        assert!(email("email", &long).is_err());
        for ok in ["ann@example.com", "o'brien@x.co.uk", "ann+tag@sub.example.org", "josé@exämple.de"] {
            email("email", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn names_must_be_non_blank_and_within_the_varchar_limit_counted_in_characters() {
        assert!(text("first_name", "", 100).is_err());
        assert!(text("first_name", "   ", 100).is_err());
        assert!(text("first_name", &"é".repeat(100), 100).is_ok());
        let e = text("first_name", &"é".repeat(101), 100).unwrap_err();
        assert!(e.to_string().contains("first_name") && e.to_string().contains("101"), "{e}");
    }

    #[test]
    fn nul_bytes_are_rejected_with_a_message_that_says_why() {
        let e = text("name", "a\0b", 100).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(opt_text("model_ref", Some("x\0"), 10).is_err());
        assert!(json_object("measurements", &serde_json::json!({"k\u{0}": 1})).is_err());
        assert!(json_object("measurements", &serde_json::json!({"k": ["a\u{0}"]})).is_err());
    }

    #[test]
    fn label_paths_accept_dotted_labels_and_reject_everything_else() {
        for ok in ["women", "women.dresses.evening", "a_1.B2"] {
            label_path("category_path", ok).unwrap();
        }
        for bad in ["", ".", "a..b", "a.", "a b", "a-b'c", "women.dresses'; DROP TABLE x; --", "é"] {
            assert!(label_path("category_path", bad).is_err(), "{bad:?}");
        }
    }
}
