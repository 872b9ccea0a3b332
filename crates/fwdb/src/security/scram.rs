//! SCRAM-SHA-256 password verifiers computed on the client (RFC 5802/7677,
//! PostgreSQL's `rolpassword` format), so the plain password never travels
//! in a statement that a server log could record.

use base64::Engine;
use sha2::{Digest, Sha256};

const ITERATIONS: u32 = 4096;
const BLOCK: usize = 64;

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    let out = h.finalize();
    let mut a = [0u8; 32];
    a.copy_from_slice(out.as_slice());
    a
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let ih = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih.as_slice());
    let out = outer.finalize();
    let mut a = [0u8; 32];
    a.copy_from_slice(out.as_slice());
    a
}

/// PBKDF2-HMAC-SHA256 with one output block (Hi() of RFC 5802).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut acc = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (a, b) in acc.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    acc
}

fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    // PostgreSQL applies SASLprep; for ASCII passwords it is the identity.
    let salted = hi(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = sha256(&client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", b64.encode(salt), b64.encode(stored_key), b64.encode(server_key))
}

/// The `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey` string PostgreSQL stores
/// for `password`, with a fresh random salt.
pub fn scram_sha_256_verifier(password: &str) -> String {
    let salt = *uuid::Uuid::new_v4().as_bytes();
    verifier_with_salt(password, &salt, ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let out = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(out), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn verifier_has_postgres_format() {
        let v = scram_sha_256_verifier("pw");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("pw$"));
    }
}

/// Whether `stored` (a `rolpassword`) is the SCRAM verifier of `password`.
pub(crate) fn verifier_matches(stored: &str, password: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else { return false };
    let Some((iter_salt, _keys)) = rest.split_once('$') else { return false };
    let Some((iter, salt)) = iter_salt.split_once(':') else { return false };
    let (Ok(iter), Ok(salt)) = (iter.parse::<u32>(), b64.decode(salt)) else { return false };
    if iter == 0 || iter > 1_000_000 {
        return false;
    }
    verifier_with_salt(password, &salt, iter) == stored
}
