//! libpq's sslmode semantics on rustls.
//!
//! tokio-postgres only knows disable/prefer/require and leaves verification
//! to the TLS connector, so the connector decides: prefer/require accept any
//! certificate (libpq does the same), verify-ca checks the chain against the
//! configured CA but not the host name, verify-full checks both.

use crate::config::{SslMode, TlsConfig};
use crate::error::{Error, ErrorKind, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The rustls configuration for `tls`, or `None` when TLS is disabled.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Option<ClientConfig>> {
    if tls.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, "TLS protocol versions").with_source(e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match tls.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(AcceptAny(provider)),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = load_roots(tls.ca_file.as_deref())?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::new(ErrorKind::Config, "postgres.tls.ca_file: unusable CA").with_source(e))?;
            if tls.mode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(load_certs(cert, "postgres.tls.cert_file")?, load_key(key)?).map_err(|e| {
                Error::new(ErrorKind::Config, "postgres.tls: client certificate and key do not match").with_source(e)
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let Some(path) = ca_file else {
        return Err(Error::new(ErrorKind::Config, "postgres.tls.ca_file is required for verify-ca and verify-full"));
    };
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "postgres.tls.ca_file")? {
        roots.add(cert).map_err(|e| {
            Error::new(ErrorKind::Config, format!("postgres.tls.ca_file {}: not a CA certificate", path.display()))
                .with_source(e)
        })?;
    }
    Ok(roots)
}

fn load_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("{key}: cannot read {}", path.display()), e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io(format!("{key}: {} is not PEM", path.display()), e))?;
    if certs.is_empty() {
        return Err(Error::new(ErrorKind::Config, format!("{key}: no certificate in {}", path.display())));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path)
        .map_err(|e| Error::io(format!("postgres.tls.key_file: cannot read {}", path.display()), e))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| Error::io(format!("postgres.tls.key_file: {} is not PEM", path.display()), e))?
        .ok_or_else(|| {
            Error::new(ErrorKind::Config, format!("postgres.tls.key_file: no private key in {}", path.display()))
        })
}

/// Says in words why a server's certificate was refused, when it was.
pub(crate) fn explain(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        // io::Error::source() skips the error it wraps, so look inside explicitly.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        let candidate =
            inner.and_then(|i| i.downcast_ref::<rustls::Error>()).or_else(|| e.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::AlertReceived(alert)) = candidate {
            use rustls::AlertDescription as A;
            match alert {
                A::CertificateExpired => return Some("the server refused our client certificate: it has expired"),
                A::BadCertificate | A::UnknownCA | A::CertificateUnknown => {
                    return Some("the server refused our client certificate (not signed by a CA it trusts?)")
                }
                A::CertificateRequired => {
                    return Some("the server requires a client certificate (postgres.tls.cert_file and key_file)")
                }
                _ => {}
            }
        }
        if let Some(rustls::Error::InvalidCertificate(c)) = candidate {
            return Some(match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "the server's certificate is not signed by the CA in postgres.tls.ca_file (wrong CA)"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet"
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    "the server's certificate does not name the host connected to (wrong host name)"
                }
                _ => "the server's certificate was refused",
            });
        }
        cur = e.source();
    }
    None
}

/// prefer/require: encrypt, verify nothing, as libpq does in those modes.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain must lead to the CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
