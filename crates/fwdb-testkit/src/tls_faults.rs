//! Fault injection for TLS and authentication tests, meant for a private
//! stack (they change server files): replace the server certificate, put
//! lines at the top of pg_hba.conf, reload.

use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Result, TestkitError};
use crate::stack::{Node, Stack};

fn cert_err(e: rcgen::Error) -> TestkitError {
    TestkitError::Cert(e.to_string())
}

/// Same CA parameters as certs.rs (rebuilt from the common name).
fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "fwdb testkit");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p
}

impl Stack {
    /// Replaces every PostgreSQL server's certificate with one signed by the
    /// stack's CA for `sans` (DNS names or IP addresses), valid `valid_days`
    /// from now (< 0: expired that many days ago), and reloads the servers.
    pub fn replace_server_cert(&self, sans: &[&str], valid_days: i64) -> Result<()> {
        let tls = &self.info.tls;
        let ca_pem = std::fs::read_to_string(&tls.ca_key).map_err(|e| TestkitError::io(&tls.ca_key, e))?;
        let ca_key = KeyPair::from_pem(&ca_pem).map_err(cert_err)?;
        let issuer = Issuer::new(ca_params(&tls.ca_common_name), &ca_key);
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, sans.first().copied().unwrap_or("server"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        if valid_days >= 0 {
            p.not_before = now - Duration::hours(1);
            p.not_after = now + Duration::days(valid_days);
        } else {
            p.not_after = now + Duration::days(valid_days);
            p.not_before = p.not_after - Duration::days(1);
        }
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
        // Key first then certificate would leave a moment where they do not
        // match; the reload happens only after both are written.
        crate::certs::write_private(&tls.server_key, key.serialize_pem().as_bytes())?;
        self.user.chown(&tls.server_key)?;
        crate::certs::write_private(&tls.server_cert, cert.pem().as_bytes())?;
        self.user.chown(&tls.server_cert)?;
        self.reload_all()
    }

    /// Puts `lines` at the top of the primary's pg_hba.conf (first match
    /// wins) and reloads it.
    pub fn prepend_hba(&self, lines: &[&str]) -> Result<()> {
        let path = self.info.primary.data_dir.join("pg_hba.conf");
        let old = std::fs::read_to_string(&path).map_err(|e| TestkitError::io(&path, e))?;
        let new = format!("{}\n{old}", lines.join("\n"));
        write_keeping_owner(&path, &new)?;
        self.reload(Node::Primary)
    }

    /// `pg_reload_conf()` on one server; fails when the reloaded pg_hba.conf is invalid.
    pub fn reload(&self, node: Node) -> Result<()> {
        let out = self.psql(
            node,
            "postgres",
            "SELECT pg_reload_conf(); SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL",
        )?;
        if out.lines().last().map(str::trim) != Some("0") {
            return Err(TestkitError::Usage(format!("pg_hba.conf of {node} has errors after reload: {out}")));
        }
        // The postmaster reloads asynchronously; new connections see the change a moment later.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(())
    }

    fn reload_all(&self) -> Result<()> {
        self.reload(Node::Primary)?;
        for i in 0..self.info.replicas.len() {
            if self.pid(Node::Replica(i)).is_some() {
                self.reload(Node::Replica(i))?;
            }
        }
        Ok(())
    }
}

fn write_keeping_owner(path: &Path, contents: &str) -> Result<()> {
    // Overwrite in place: owner and mode stay those of the server user.
    std::fs::write(path, contents).map_err(|e| TestkitError::io(path, e))
}
