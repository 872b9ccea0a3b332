//! SCRAM-SHA-256 password verifiers computed on the client (RFC 5802/7677,
//! PostgreSQL's `rolpassword` format), so the plain password never travels
//! in a statement that a server log could record. New verifiers come from
//! `postgres_protocol` (what tokio-postgres itself uses, SASLprep included);
//! checking one against a password recomputes it with its own salt and
//! iteration count through the RustCrypto `pbkdf2` and `hmac` crates.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey` string PostgreSQL stores
/// for `password`, with a fresh random salt.
pub fn scram_sha_256_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac.finalize().into_bytes().to_vec())
}

/// The verifier of `password` for a given salt and iteration count.
fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac_sha256(&salted, b"Client Key")?;
    let stored_key = Sha256::digest(&client_key);
    let server_key = hmac_sha256(&salted, b"Server Key")?;
    Some(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    ))
}

/// Whether `stored` (a `rolpassword`) is the SCRAM verifier of `password`.
/// A password that SASLprep would change reads as not matching: `roles
/// apply` then writes a fresh verifier, which is harmless.
pub(crate) fn verifier_matches(stored: &str, password: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else { return false };
    let Some((iter_salt, _keys)) = rest.split_once('$') else { return false };
    let Some((iter, salt)) = iter_salt.split_once(':') else { return false };
    let (Ok(iter), Ok(salt)) = (iter.parse::<u32>(), b64.decode(salt)) else { return false };
    if iter == 0 || iter > 1_000_000 {
        return false;
    }
    verifier_with_salt(password, &salt, iter).is_some_and(|v| v == stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_verifier_has_postgres_format_and_matches_its_password_only() {
        let v = scram_sha_256_verifier("pw");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(verifier_matches(&v, "pw"));
        assert!(!verifier_matches(&v, "pw2"));
        assert!(!verifier_matches("md5abc", "pw"));
    }

    #[test]
    fn a_verifier_made_by_postgresql_15_matches_its_password() {
        // `SET password_encryption = 'scram-sha-256'; CREATE ROLE r PASSWORD 'secret'`, then rolpassword.
        let stored = "SCRAM-SHA-256$4096:/kZUPggOotjNNQedOubFmg==$5NhWvJ7F2BhrVeFNi7cWrIPVVhN4FoE7+3HfDVvieyc=:bNTgY9rFoAT4/y43lGtiHKlGcIGKaWiABRTlAQhx2pQ=";
        assert!(verifier_matches(stored, "secret"));
        assert!(!verifier_matches(stored, "Secret"));
    }
}
