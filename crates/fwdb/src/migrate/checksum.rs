//! Checksums of migration files: SHA-256, hex.

use sha2::{Digest, Sha256};

/// SHA-256 of a migration file, hex-encoded. CRLF line endings count as LF so
/// that a checkout with `core.autocrlf` does not look like a changed file.
pub(crate) fn checksum(text: &str) -> String {
    let mut hasher = Sha256::new();
    if text.contains("\r\n") {
        hasher.update(text.replace("\r\n", "\n").as_bytes());
    } else {
        hasher.update(text.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits, for messages.
pub(crate) fn short(sum: &str) -> &str {
    sum.get(..12).unwrap_or(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(checksum("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn any_change_changes_the_sum_but_line_endings_do_not() {
        let a = checksum("CREATE TABLE t (id int);\nSELECT 1;\n");
        assert_ne!(a, checksum("CREATE TABLE t (id bigint);\nSELECT 1;\n"));
        assert_ne!(a, checksum("CREATE TABLE t (id int);\nSELECT 1;\n\n"));
        assert_eq!(a, checksum("CREATE TABLE t (id int);\r\nSELECT 1;\r\n"));
        assert_eq!(short(&a).len(), 12);
    }
}
