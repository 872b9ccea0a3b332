//! Secrets that cannot be printed by accident.
//!
//! `Debug`, `Display` and `Serialize` all write `[redacted]`, so a secret can
//! not leak through a log line, an error message or `fwdb config show`; the
//! only way to the value is the explicit [`Secret::expose`].

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub const REDACTED: &str = "[redacted]";

#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret value. Call it only where the value goes to a server.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Hides the password of a `scheme://user:password@host` URL, for display.
pub fn redact_url_password(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else { return raw.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{hosts}{tail}"),
            None => raw.to_string(),
        },
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_its_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{REDACTED}\""));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn url_passwords_are_redacted_but_the_rest_is_kept() {
        assert_eq!(
            redact_url_password("mongodb://app:p%40ss:w@db1:27017,db2/?authSource=admin"),
            "mongodb://app:[redacted]@db1:27017,db2/?authSource=admin"
        );
        assert_eq!(redact_url_password("mongodb://db1/x"), "mongodb://db1/x");
        assert_eq!(redact_url_password("not a url"), "not a url");
    }
}
