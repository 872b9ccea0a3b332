//! TLS material generated at stack start (rcgen, no openssl CLI): a CA, a
//! server certificate for localhost / 127.0.0.1 / ::1, and a client
//! certificate for the app user, so that `verify-full` and client
//! certificates can be tested for real.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Result, TestkitError};
use crate::info::TlsFiles;

fn cert_err(e: rcgen::Error) -> TestkitError {
    TestkitError::Cert(e.to_string())
}

/// The CA's parameters. Rebuilding them from the common name gives the same
/// issuer name and key usages, which (with the saved key) is all rcgen needs to
/// sign more certificates later, without parsing the CA certificate back.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "fwdb testkit");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p
}

fn leaf_params(
    common_name: &str,
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
    valid_days: i64,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![eku];
    p.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    if valid_days >= 0 {
        // An hour of slack for clocks that disagree slightly.
        p.not_before = now - Duration::hours(1);
        p.not_after = now + Duration::days(valid_days);
    } else {
        // Already expired: valid for one day, ending |valid_days| days ago.
        p.not_after = now + Duration::days(valid_days);
        p.not_before = p.not_after - Duration::days(1);
    }
    Ok(p)
}

/// Writes `contents` to `path` with mode 0600 (replacing any previous file).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TestkitError::io(path, e))?;
    f.write_all(contents).map_err(|e| TestkitError::io(path, e))
}

/// Generates the CA, server and client certificates into `tls_dir`.
pub(crate) fn generate(tls_dir: &Path, stack_id: &str, client_cn: &str) -> Result<TlsFiles> {
    let ca_common_name = format!("fwdb testkit CA {stack_id}");
    let ca_key = KeyPair::generate().map_err(cert_err)?;
    let ca_cert = ca_params(&ca_common_name).self_signed(&ca_key).map_err(cert_err)?;
    let issuer = Issuer::new(ca_params(&ca_common_name), &ca_key);

    let server_key = KeyPair::generate().map_err(cert_err)?;
    let server =
        leaf_params("localhost", &["localhost", "127.0.0.1", "::1"], ExtendedKeyUsagePurpose::ServerAuth, 3650)?
            .signed_by(&server_key, &issuer)
            .map_err(cert_err)?;

    let client_key = KeyPair::generate().map_err(cert_err)?;
    let client = leaf_params(client_cn, &[], ExtendedKeyUsagePurpose::ClientAuth, 3650)?
        .signed_by(&client_key, &issuer)
        .map_err(cert_err)?;

    let files = TlsFiles {
        ca_cert: tls_dir.join("ca.crt"),
        ca_key: tls_dir.join("ca.key"),
        ca_common_name,
        server_cert: tls_dir.join("server.crt"),
        server_key: tls_dir.join("server.key"),
        client_cert: tls_dir.join("client.crt"),
        client_key: tls_dir.join("client.key"),
    };
    write_private(&files.ca_cert, ca_cert.pem().as_bytes())?;
    write_private(&files.ca_key, ca_key.serialize_pem().as_bytes())?;
    write_private(&files.server_cert, server.pem().as_bytes())?;
    write_private(&files.server_key, server_key.serialize_pem().as_bytes())?;
    write_private(&files.client_cert, client.pem().as_bytes())?;
    write_private(&files.client_key, client_key.serialize_pem().as_bytes())?;
    Ok(files)
}

/// Signs a new client certificate with the stack's CA; returns (cert, key).
/// `valid_days` < 0 gives a certificate that expired that many days ago.
pub(crate) fn issue_client(tls: &TlsFiles, common_name: &str, valid_days: i64) -> Result<(PathBuf, PathBuf)> {
    let ca_pem = std::fs::read_to_string(&tls.ca_key).map_err(|e| TestkitError::io(&tls.ca_key, e))?;
    let ca_key = KeyPair::from_pem(&ca_pem).map_err(cert_err)?;
    let issuer = Issuer::new(ca_params(&tls.ca_common_name), &ca_key);
    let key = KeyPair::generate().map_err(cert_err)?;
    let cert = leaf_params(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth, valid_days)?
        .signed_by(&key, &issuer)
        .map_err(cert_err)?;

    let dir = tls.ca_key.parent().unwrap_or(Path::new(".")).to_path_buf();
    let safe: String =
        common_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    let stem = format!("client-{safe}-{:08x}", rand::random::<u32>());
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    write_private(&cert_path, cert.pem().as_bytes())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_that_can_sign_more_client_certificates_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = generate(dir.path(), "t1", "fwdb_app").expect("generate");
        for p in [&tls.ca_cert, &tls.server_cert, &tls.server_key, &tls.client_cert, &tls.client_key] {
            let text = std::fs::read_to_string(p).expect("read");
            assert!(text.starts_with("-----BEGIN"), "{} is PEM", p.display());
        }
        let (cert, key) = issue_client(&tls, "someone else", -2).expect("issue");
        assert!(cert.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("client-someone_else-")));
        assert!(key.exists());
    }
}
