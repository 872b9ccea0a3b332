//! Input checks shared by the query builder and the repositories. Every error
//! is `ErrorKind::Validation` and names the field; none contains the value
//! (it may be long, hostile or secret).

use crate::error::{Error, Result};

pub(crate) fn invalid(field: &str, why: &str) -> Error {
    Error::validation(field, why)
}

/// PostgreSQL text cannot hold U+0000.
pub(crate) fn no_nul(field: &str, s: &str) -> Result<()> {
    // A byte search (word at a time): a char pattern goes through a
    // searcher, which cost more than the scan itself on short fields.
    if s.as_bytes().contains(&0) {
        return Err(invalid(field, "contains a NUL byte, which PostgreSQL text cannot store"));
    }
    Ok(())
}

/// Non-blank, at most `max` characters (VARCHAR limits count characters), no NUL.
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<()> {
    no_nul(field, s)?;
    // A visible ASCII first character settles "not blank" without trimming.
    let starts_visible = s.as_bytes().first().is_some_and(u8::is_ascii_graphic);
    if !starts_visible && s.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    max_chars(field, s, max)
}

/// At most `max` characters. A character is at least one byte, so a string
/// of at most `max` bytes needs no counting (nearly every value).
fn max_chars(field: &str, s: &str, max: usize) -> Result<()> {
    if s.len() <= max {
        return Ok(());
    }
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, &format!("{n} characters, at most {max} allowed")));
    }
    Ok(())
}

/// An address a person can receive mail at: `local@domain.tld`, no spaces or
/// control characters, at most 255 characters (the column is varchar(255)).
pub(crate) fn email(field: &str, s: &str) -> Result<()> {
    if plain_email(s.as_bytes()) {
        return Ok(());
    }
    email_rules(field, s)
}

/// One pass accepting what nearly every address is: printable ASCII, one
/// `@`, a local part of 1 to 64 bytes, a dotted domain of letters, digits
/// and inner hyphens, at most 255 bytes. Only ever says yes to addresses
/// [`email_rules`] accepts; anything else goes there, which decides (and
/// words the error) as it always did.
fn plain_email(b: &[u8]) -> bool {
    if b.len() > 255 {
        return false;
    }
    let Some(at) = b.iter().position(|&c| c == b'@') else { return false };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // Printable ASCII (0x21..=0x7e) has no space, control byte or NUL.
    !local.is_empty() && local.len() <= 64 && local.iter().all(u8::is_ascii_graphic) && plain_domain(domain)
}

/// Labels of ASCII letters and digits with inner hyphens, at least two, no `@`.
fn plain_domain(d: &[u8]) -> bool {
    let mut dots = 0;
    let mut prev = b'.';
    for &c in d {
        let ok = match c {
            b'.' => prev != b'.' && prev != b'-',
            b'-' => prev != b'.',
            c => c.is_ascii_alphanumeric(),
        };
        if !ok {
            return false;
        }
        dots += usize::from(c == b'.');
        prev = c;
    }
    dots > 0 && prev != b'.' && prev != b'-'
}

/// Every rule of [`email`], in the order that picks its error message.
fn email_rules(field: &str, s: &str) -> Result<()> {
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

/// JSON whose strings (keys included) hold no NUL, which jsonb cannot store.
pub(crate) fn json_strings(field: &str, v: &serde_json::Value) -> Result<()> {
    match v {
        serde_json::Value::String(s) => no_nul(field, s),
        serde_json::Value::Array(a) => a.iter().try_for_each(|v| json_strings(field, v)),
        serde_json::Value::Object(o) => o.iter().try_for_each(|(k, v)| {
            no_nul(field, k)?;
            json_strings(field, v)
        }),
        _ => Ok(()),
    }
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
    fn length_limits_count_characters_not_bytes() {
        // 100 characters, 300 bytes: within a limit of 100.
        text("first_name", &"中".repeat(100), 100).unwrap();
        text("first_name", &format!("Zoë{}", "é".repeat(97)), 100).unwrap();
        let e = text("first_name", &"中".repeat(101), 100).unwrap_err();
        assert_eq!(e.to_string(), text_error("first_name", "101 characters, at most 100 allowed"));
        text("first_name", &"a".repeat(100), 100).unwrap();
        assert!(text("first_name", &"a".repeat(101), 100).is_err());
        max_chars("model_ref", &"é".repeat(255), 255).unwrap();
        assert!(max_chars("model_ref", &"é".repeat(256), 255).is_err());
    }

    fn text_error(field: &str, why: &str) -> String {
        invalid(field, why).to_string()
    }

    #[test]
    fn blank_is_any_whitespace_and_leading_whitespace_is_not_blank() {
        for blank in ["", " ", "\t\n", "\u{a0}", "\u{2003} \u{3000}"] {
            let e = text("name", blank, 100).unwrap_err();
            assert_eq!(e.to_string(), text_error("name", "must not be empty"), "{blank:?}");
        }
        for ok in [" a", "\ta", "\u{a0}a", "é", "-"] {
            text("name", ok, 100).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn a_nul_is_reported_before_any_other_fault() {
        let nul = text_error("name", "contains a NUL byte, which PostgreSQL text cannot store");
        for bad in ["\0".to_string(), format!("{}\0", "x".repeat(200)), " \0 ".into(), "a\0".into()] {
            assert_eq!(text("name", &bad, 100).unwrap_err().to_string(), nul, "{bad:?}");
            assert_eq!(no_nul("name", &bad).unwrap_err().to_string(), nul, "{bad:?}");
        }
        let nul = text_error("email", "contains a NUL byte, which PostgreSQL text cannot store");
        for bad in ["\0a@x.com", "a@x.com\0", "a\0@x.com"] {
            assert_eq!(email("email", bad).unwrap_err().to_string(), nul, "{bad:?}");
        }
    }

    /// The one-pass check of plain addresses decides exactly like the full
    /// rules, error message included, on every string of up to 5 characters
    /// from an alphabet of the characters that matter, and at the length limits.
    #[test]
    fn the_email_fast_path_agrees_with_the_full_rules() {
        let alphabet = ["a", "Z", "9", "-", ".", "@", " ", "\0", "\t", "é", "+"];
        let mut words = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..5 {
            words = words.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
            all.extend(words.iter().cloned());
        }
        for (l, d) in [(64, 10), (65, 10), (64, 190), (64, 191), (1, 253), (1, 254)] {
            all.push(format!("{}@{}.com", "a".repeat(l), "b".repeat(d - 4)));
            all.push(format!("{}@{}.com", "é".repeat(l), "b".repeat(d - 4)));
        }
        all.extend(
            ["a@x.com", "a@-x.com", "a@x-.com", "a@x.c-m", "a@x.com.", "a@.x.com", "a@x..com", "a.b@c.d"]
                .map(String::from),
        );
        let mut accepted = 0;
        for s in &all {
            let fast = email("email", s).map_err(|e| e.to_string());
            let full = email_rules("email", s).map_err(|e| e.to_string());
            assert_eq!(fast, full, "{s:?}");
            accepted += usize::from(fast.is_ok());
        }
        assert!(accepted > 100, "the corpus holds valid addresses too ({accepted})");
    }

    #[test]
    fn nul_bytes_are_rejected_with_a_message_that_says_why() {
        let e = text("name", "a\0b", 100).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(no_nul("model_ref", "x\0").is_err());
        assert!(json_strings("measurements", &serde_json::json!({"k\u{0}": 1})).is_err());
        assert!(json_strings("measurements", &serde_json::json!({"k": ["a\u{0}"]})).is_err());
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
