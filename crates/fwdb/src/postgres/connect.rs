//! Single connections built from the configuration. Pools (a later layer)
//! are made of these.

use super::tls;
use crate::config::{PgHost, PostgresConfig, SslMode};
use crate::error::{Error, ErrorKind, Result};
use tokio_postgres::config::{SslMode as PgSslMode, TargetSessionAttrs};
use tokio_postgres::{Client, NoTls};

/// Which server a connection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTarget {
    /// The first of `postgres.primary` that accepts writes.
    Primary,
    /// `postgres.replicas[i]`.
    Replica(usize),
    /// Any one server, as given.
    Host(PgHost),
}

/// The driver's configuration for `target`, TLS aside.
pub(crate) fn driver_config(cfg: &PostgresConfig, target: &ConnectTarget) -> Result<tokio_postgres::Config> {
    let hosts: Vec<PgHost> = match target {
        ConnectTarget::Primary => cfg.primary.clone(),
        ConnectTarget::Replica(i) => vec![cfg.replicas.get(*i).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("postgres.replicas has no entry {i} ({} configured)", cfg.replicas.len()),
            )
        })?],
        ConnectTarget::Host(h) => vec![h.clone()],
    };
    let mut c = tokio_postgres::Config::new();
    for h in &hosts {
        c.host(&h.host).port(h.port);
    }
    c.dbname(&cfg.database)
        .user(&cfg.user)
        .application_name(&cfg.application_name)
        .connect_timeout(cfg.connect_timeout)
        .options(format!("-c statement_timeout={}", cfg.statement_timeout.as_millis()));
    if let Some(pw) = &cfg.password {
        c.password(pw.expose());
    }
    if *target == ConnectTarget::Primary {
        c.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    c.ssl_mode(match cfg.tls.mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    Ok(c)
}

/// Opens one connection to `target` and drives it on the current runtime.
pub async fn connect(cfg: &PostgresConfig, target: ConnectTarget) -> Result<Client> {
    let driver = driver_config(cfg, &target)?;
    let where_ = describe(cfg, &target);
    let client_cert = cfg.tls.cert_file.is_some();
    let client = match tls::client_config(&cfg.tls)? {
        None => {
            let (client, conn) = driver.connect(NoTls).await.map_err(|e| connect_error(e, &where_, client_cert))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "postgres connection ended");
                }
            });
            client
        }
        Some(rustls) => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls);
            let (client, conn) = driver.connect(tls).await.map_err(|e| connect_error(e, &where_, client_cert))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "postgres connection ended");
                }
            });
            client
        }
    };
    Ok(client)
}

fn describe(cfg: &PostgresConfig, target: &ConnectTarget) -> String {
    let hosts = match target {
        ConnectTarget::Primary => cfg.primary.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        ConnectTarget::Replica(i) => cfg.replicas.get(*i).map(ToString::to_string).unwrap_or_default(),
        ConnectTarget::Host(h) => h.to_string(),
    };
    format!("{hosts} (database {}, user {}, sslmode {})", cfg.database, cfg.user, cfg.tls.mode.as_str())
}

fn connect_error(e: tokio_postgres::Error, where_: &str, client_cert: bool) -> Error {
    let auth_failed = e.code().is_some_and(crate::error::pg::is_auth_failure);
    let kind = if auth_failed { ErrorKind::Config } else { ErrorKind::Unavailable };
    let mut reason = tls::explain(&e).map(|r| format!(": {r}")).unwrap_or_default();
    if auth_failed && client_cert {
        // With clientcert=verify-full, a certificate whose CN is not the user also
        // fails as "password authentication failed": say so.
        reason = format!("{reason} (a client certificate is configured: its CN must equal the user name)");
    }
    Error::new(kind, format!("cannot connect to PostgreSQL at {where_}{reason}")).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_connections_ask_for_a_writable_server_and_carry_the_statement_timeout() {
        let cfg = PostgresConfig { primary: vec![PgHost::new("a", 1), PgHost::new("b", 2)], ..Default::default() };
        let c = driver_config(&cfg, &ConnectTarget::Primary).unwrap();
        assert_eq!(c.get_ports(), &[1, 2]);
        assert_eq!(c.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(c.get_options(), Some("-c statement_timeout=30000"));
        let r = driver_config(&cfg, &ConnectTarget::Replica(0));
        assert!(r.unwrap_err().to_string().contains("no entry 0"));
    }

    #[test]
    fn the_driver_config_debug_hides_the_password() {
        let cfg = PostgresConfig { password: Some(crate::config::Secret::new("s3cr3t-pw")), ..Default::default() };
        let c = driver_config(&cfg, &ConnectTarget::Primary).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    }
}
