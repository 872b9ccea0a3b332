//! age encryption on the client: to X25519 recipients (the private key stays
//! off the database hosts) or with a passphrase (scrypt).

use crate::config::{read_secret_file, EncryptionConfig};
use crate::error::{Error, ErrorKind, Result};
use age::secrecy::SecretString;
use std::io::{Read, Write};

/// What a backup is encrypted to, and what (if given) decrypts it.
pub(crate) struct Keys {
    recipients: Vec<age::x25519::Recipient>,
    identities: Vec<age::x25519::Identity>,
    passphrase: Option<SecretString>,
}

impl Keys {
    pub fn from_config(e: &EncryptionConfig) -> Result<Keys> {
        let mut recipients = Vec::new();
        for (i, r) in e.recipients.iter().enumerate() {
            recipients.push(r.parse::<age::x25519::Recipient>().map_err(|err| {
                Error::invalid_input(format!(
                    "backup.encryption.recipients[{i}]: `{r}` is not an age public key: {err}"
                ))
            })?);
        }
        let mut identities = Vec::new();
        if let Some(path) = &e.identity_file {
            let text = std::fs::read_to_string(path)
                .map_err(|err| Error::io(format!("reading backup.encryption.identity_file {}", path.display()), err))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                identities.push(line.parse::<age::x25519::Identity>().map_err(|_| {
                    Error::invalid_input(format!(
                        "{} line {}: not an age secret key (AGE-SECRET-KEY-1...)",
                        path.display(),
                        n + 1
                    ))
                })?);
            }
        }
        let passphrase = match (&e.passphrase, &e.passphrase_file) {
            (Some(p), _) => Some(SecretString::from(p.expose().to_string())),
            (None, Some(path)) => {
                let s = read_secret_file(path).map_err(|err| {
                    Error::io(format!("reading backup.encryption.passphrase_file {}", path.display()), err)
                })?;
                Some(SecretString::from(s.expose().to_string()))
            }
            (None, None) => None,
        };
        if recipients.is_empty() && passphrase.is_none() {
            // A restore host may have only the identity: encrypt (WAL pushes, status records) to it.
            recipients.extend(identities.iter().map(|i| i.to_public()));
        }
        if recipients.is_empty() && passphrase.is_none() {
            return Err(Error::invalid_input(
                "backup.encryption: no age recipient and no passphrase configured; backups are always encrypted",
            ));
        }
        Ok(Keys { recipients, identities, passphrase })
    }

    /// A recipients-only key set (tests, `keygen`).
    #[cfg(test)]
    pub fn for_identity(id: age::x25519::Identity) -> Keys {
        Keys { recipients: vec![id.to_public()], identities: vec![id], passphrase: None }
    }

    pub fn encrypt<W: Write>(&self, out: W) -> Result<age::stream::StreamWriter<W>> {
        let enc = if !self.recipients.is_empty() {
            age::Encryptor::with_recipients(self.recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| Error::new(ErrorKind::Internal, "preparing age encryption").with_source(e))?
        } else {
            let p = self.passphrase.clone().expect("checked in from_config");
            age::Encryptor::with_user_passphrase(p)
        };
        enc.wrap_output(out).map_err(|e| Error::io("writing the age header", e))
    }

    /// Decrypts `input`; `what` names the object in errors.
    pub fn decrypt<R: Read>(&self, input: R, what: &str) -> Result<age::stream::StreamReader<R>> {
        let dec = age::Decryptor::new(input).map_err(|e| decrypt_error(what, e))?;
        let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
        for id in &self.identities {
            ids.push(Box::new(id.clone()));
        }
        if let Some(p) = &self.passphrase {
            ids.push(Box::new(age::scrypt::Identity::new(p.clone())));
        }
        if ids.is_empty() {
            return Err(Error::invalid_input(format!(
                "cannot decrypt {what}: no key to decrypt with; set backup.encryption.identity_file or a passphrase"
            )));
        }
        let scrypt = dec.is_scrypt();
        dec.decrypt(ids.iter().map(|b| b.as_ref() as &dyn age::Identity)).map_err(|e| match e {
            // An scrypt stanza that does not open is, almost always, the wrong passphrase.
            age::DecryptError::DecryptionFailed if scrypt => Error::new(
                ErrorKind::Validation,
                format!("cannot decrypt {what}: wrong key (the configured passphrase does not open it, or its header is corrupt)"),
            )
            .with_source(e),
            e => decrypt_error(what, e),
        })
    }
}

fn decrypt_error(what: &str, e: age::DecryptError) -> Error {
    let msg = match &e {
        age::DecryptError::NoMatchingKeys => {
            format!("cannot decrypt {what}: wrong key (none of the configured age identities or passphrase opens it)")
        }
        age::DecryptError::DecryptionFailed | age::DecryptError::InvalidHeader | age::DecryptError::InvalidMac => {
            format!("cannot decrypt {what}: the object is corrupt (age authentication failed)")
        }
        _ => format!("cannot decrypt {what}"),
    };
    Error::new(ErrorKind::Validation, msg).with_source(e)
}

/// A new X25519 key pair: (secret identity line, public recipient).
pub fn generate_key() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (id.to_string().expose_secret().to_string(), id.to_public().to_string())
}

/// Writes a new identity file at `path` (mode 0600, never over an existing
/// file) and returns its public key, for `backup.encryption.recipients`.
pub fn write_key(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let (secret, public) = generate_key();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    writeln!(f, "# public key: {public}\n{secret}").map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(public)
}
