//! Checks that need more than types: ranges, files, URLs, and the rules of
//! the production profile. Every problem names its key and origin.

use super::layers::{Layered, Origin};
use super::model::{Config, Profile, SslMode};
use super::read_secret_file;
use super::secret::REDACTED;
use crate::error::ConfigProblem;
use std::path::{Path, PathBuf};

struct Problems<'a> {
    layered: &'a Layered,
    out: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.out.push(ConfigProblem {
            key: key.into(),
            origin: self.layered.origin_of(key).to_string(),
            message: message.into(),
        });
    }

    fn file_exists(&mut self, key: &str, path: Option<&PathBuf>) {
        if let Some(p) = path {
            if !p.is_file() {
                self.add(key, format!("file not found: {}", p.display()));
            }
        }
    }
}

/// Reads `password_file`s into the passwords they stand for.
pub(super) fn resolve_secrets(config: &mut Config, layered: &mut Layered, problems: &mut Vec<ConfigProblem>) {
    let pg = &mut config.postgres;
    resolve_one("postgres", &mut pg.password, pg.password_file.as_deref(), layered, problems);
    let admin = &mut pg.admin;
    resolve_one("postgres.admin", &mut admin.password, admin.password_file.as_deref(), layered, problems);
    let mg = &mut config.mongo;
    resolve_one("mongo", &mut mg.password, mg.password_file.as_deref(), layered, problems);
}

fn resolve_one(
    section: &str,
    password: &mut Option<super::Secret>,
    file: Option<&Path>,
    layered: &mut Layered,
    problems: &mut Vec<ConfigProblem>,
) {
    let Some(file) = file else { return };
    let file_key = format!("{section}.password_file");
    let origin = layered.origin_of(&file_key);
    if password.is_some() {
        problems.push(ConfigProblem {
            key: file_key,
            origin: origin.to_string(),
            message: format!("both {section}.password and {section}.password_file are set; keep one"),
        });
        return;
    }
    match read_secret_file(file) {
        Ok(secret) => {
            *password = Some(secret);
            layered.set_origin(&format!("{section}.password"), toml::Value::String(REDACTED.into()), origin);
        }
        Err(e) => problems.push(ConfigProblem {
            key: file_key,
            origin: origin.to_string(),
            message: format!("cannot read {}: {e}", file.display()),
        }),
    }
}

pub(super) fn validate(config: &Config, layered: &Layered) -> Vec<ConfigProblem> {
    let mut p = Problems { layered, out: Vec::new() };
    postgres(config, &mut p);
    mongo(config, &mut p);
    backup(config, &mut p);
    security(config, &mut p);
    if config.profile == Profile::Production {
        production(config, &mut p);
    }
    p.out
}

fn postgres(config: &Config, p: &mut Problems<'_>) {
    let pg = &config.postgres;
    if pg.primary.is_empty() {
        p.add("postgres.primary", "at least one host is needed");
    }
    for (key, value) in
        [("postgres.database", &pg.database), ("postgres.user", &pg.user), ("postgres.admin.user", &pg.admin.user)]
    {
        if value.trim().is_empty() {
            p.add(key, "must not be empty");
        }
    }
    admin_login(config, p);
    pool_sizes(p, "postgres.pool", pg.pool.min_size, pg.pool.max_size);
    // The default is cut to half of a small pool (PoolConfig::shared_connections); a value given is checked.
    let set = !matches!(p.layered.origin_of("postgres.pool.multiplex"), Origin::Default);
    if set && pg.pool.multiplex > pg.pool.max_size / 2 {
        p.add(
            "postgres.pool.multiplex",
            format!(
                "multiplex ({}) is above half of max_size ({}): writes and transactions need connections of their own",
                pg.pool.multiplex, pg.pool.max_size
            ),
        );
    }
    if pg.pool.pipeline_depth == 0 {
        p.add("postgres.pool.pipeline_depth", "must be at least 1 (a shared connection holds one read or more)");
    }
    for (key, d) in [
        ("postgres.pool.acquire_timeout", pg.pool.acquire_timeout),
        ("postgres.connect_timeout", pg.connect_timeout),
        ("postgres.pool.max_lifetime", pg.pool.max_lifetime),
        ("postgres.pool.slow_read", pg.pool.slow_read),
    ] {
        if d.is_zero() {
            p.add(key, "must be longer than zero");
        }
    }
    routing(p, &pg.routing);
    let tls = &pg.tls;
    p.file_exists("postgres.tls.ca_file", tls.ca_file.as_ref());
    p.file_exists("postgres.tls.cert_file", tls.cert_file.as_ref());
    p.file_exists("postgres.tls.key_file", tls.key_file.as_ref());
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        p.add("postgres.tls.cert_file", "a client certificate needs both cert_file and key_file");
    }
    if tls.mode >= SslMode::VerifyCa && tls.ca_file.is_none() {
        p.add(
            "postgres.tls.ca_file",
            format!("tls.mode {} needs the CA certificate that signed the server's", tls.mode.as_str()),
        );
    }
    if tls.mode == SslMode::Disable && tls.cert_file.is_some() {
        p.add("postgres.tls.mode", "a client certificate is configured but TLS is disabled");
    }
}

/// The admin login is a login of its own, outside development: the runtime
/// login must not be able to change the schema (architecture 9.1).
fn admin_login(config: &Config, p: &mut Problems<'_>) {
    let pg = &config.postgres;
    if let Err(e) = super::validate_identifier(&pg.admin.user) {
        p.add("postgres.admin.user", e.to_string());
    }
    if pg.admin.user == pg.user && config.profile != Profile::Development {
        p.add(
            "postgres.admin.user",
            format!(
                "is the same login as postgres.user (`{}`): services would run with app_admin's privileges; give migrations a login of their own",
                pg.user
            ),
        );
    }
    p.file_exists("postgres.admin.cert_file", pg.admin.cert_file.as_ref());
    p.file_exists("postgres.admin.key_file", pg.admin.key_file.as_ref());
    if pg.admin.cert_file.is_some() != pg.admin.key_file.is_some() {
        p.add("postgres.admin.cert_file", "a client certificate needs both cert_file and key_file");
    }
}

fn routing(p: &mut Problems<'_>, r: &super::RoutingConfig) {
    for (key, d) in [
        ("postgres.routing.probe_interval", r.probe_interval),
        ("postgres.routing.probe_timeout", r.probe_timeout),
        ("postgres.routing.max_replica_lag", r.max_replica_lag),
        ("postgres.routing.maintenance_interval", r.maintenance_interval),
    ] {
        if d.is_zero() {
            p.add(key, "must be longer than zero");
        }
    }
    if r.probe_timeout > r.probe_interval.max(std::time::Duration::from_secs(60)) {
        p.add("postgres.routing.probe_timeout", "must not exceed the larger of probe_interval and 60s");
    }
    if r.max_replica_lag_bytes == 0 {
        p.add("postgres.routing.max_replica_lag_bytes", "must be at least 1 (every replica would always be skipped)");
    }
    for (key, n) in [
        ("postgres.routing.eject_after_failures", r.eject_after_failures),
        ("postgres.routing.readmit_after_successes", r.readmit_after_successes),
    ] {
        if n == 0 || n > 100 {
            p.add(key, format!("{n} is out of range 1-100"));
        }
    }
    if r.read_retries > 10 {
        p.add("postgres.routing.read_retries", format!("{} is out of range 0-10", r.read_retries));
    }
    if r.tx_max_attempts == 0 || r.tx_max_attempts > 100 {
        p.add("postgres.routing.tx_max_attempts", format!("{} is out of range 1-100 (1: no retry)", r.tx_max_attempts));
    }
    if r.tx_backoff_initial > r.tx_backoff_max {
        p.add("postgres.routing.tx_backoff_initial", "must not exceed tx_backoff_max");
    }
}

fn pool_sizes(p: &mut Problems<'_>, section: &str, min: u32, max: u32) {
    if max == 0 {
        p.add(&format!("{section}.max_size"), "must be at least 1");
    }
    if min > max {
        p.add(&format!("{section}.min_size"), format!("min_size ({min}) is above max_size ({max})"));
    }
}

fn mongo(config: &Config, p: &mut Problems<'_>) {
    let m = &config.mongo;
    if let Some(uri) = &m.uri {
        if let Err(e) = mongodb::options::ConnectionString::parse(uri) {
            p.add("mongo.uri", format!("malformed MongoDB connection string: {}", first_line(&e.to_string())));
        }
        if !m.hosts.is_empty() && !matches!(layered_origin(p, "mongo.hosts"), Origin::Default) {
            p.add("mongo.hosts", "set either mongo.uri or mongo.hosts, not both");
        }
    } else if m.hosts.is_empty() {
        p.add("mongo.hosts", "at least one host is needed (or set mongo.uri)");
    }
    if m.database.trim().is_empty() {
        p.add("mongo.database", "must not be empty");
    }
    pool_sizes(p, "mongo.pool", m.pool.min_size, m.pool.max_size);
    if m.pool.wait_timeout.is_zero() {
        p.add("mongo.pool.wait_timeout", "must be longer than zero");
    }
    const MECHANISMS: [&str; 4] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "MONGODB-X509", "PLAIN"];
    if !MECHANISMS.contains(&m.auth_mechanism.as_str()) {
        p.add(
            "mongo.auth_mechanism",
            format!("unknown mechanism `{}`; expected one of {}", m.auth_mechanism, MECHANISMS.join(", ")),
        );
    }
    if m.write_concern != "majority" && m.write_concern.parse::<u32>().is_err() {
        p.add("mongo.write_concern", format!("`{}` is neither \"majority\" nor a number of nodes", m.write_concern));
    }
    p.file_exists("mongo.tls.ca_file", m.tls.ca_file.as_ref());
    p.file_exists("mongo.tls.cert_key_file", m.tls.cert_key_file.as_ref());
}

fn layered_origin(p: &Problems<'_>, key: &str) -> Origin {
    p.layered.get(key).map(|(_, o)| o.clone()).unwrap_or(Origin::Default)
}

/// 9.2: verified TLS and SCRAM, and no passwords in files under version control.
fn production(config: &Config, p: &mut Problems<'_>) {
    let pg = &config.postgres;
    if pg.tls.mode != SslMode::VerifyFull {
        p.add(
            "postgres.tls.mode",
            format!("the production profile requires verify-full, not {}", pg.tls.mode.as_str()),
        );
    }
    if pg.password.is_none() {
        p.add("postgres.password", "the production profile requires SCRAM password authentication: set FWDB__POSTGRES__PASSWORD or postgres.password_file (trust authentication is refused)");
    }
    plaintext_in_file(p, "postgres.password");
    plaintext_in_file(p, "postgres.admin.password");
    let m = &config.mongo;
    let uri = m.uri.as_deref().unwrap_or_default();
    let uri_tls = uri.contains("tls=true") || uri.contains("ssl=true");
    if !m.tls.enabled && !uri_tls {
        p.add("mongo.tls.enabled", "the production profile requires TLS to MongoDB");
    }
    if m.auth_mechanism != "SCRAM-SHA-256" {
        p.add(
            "mongo.auth_mechanism",
            format!("the production profile requires SCRAM-SHA-256, not {}", m.auth_mechanism),
        );
    }
    let uri_has_credentials =
        uri.split_once("://").is_some_and(|(_, r)| r.split('/').next().unwrap_or("").contains('@'));
    if (m.user.is_none() || m.password.is_none()) && !uri_has_credentials {
        p.add("mongo.user", "the production profile requires authentication: set mongo.user and a password");
    }
    plaintext_in_file(p, "mongo.password");
    if uri_has_credentials && matches!(layered_origin(p, "mongo.uri"), Origin::File { .. }) {
        p.add(
            "mongo.uri",
            "a password in a config file is refused in production; pass the URI through FWDB__MONGO__URI",
        );
    }
}

fn plaintext_in_file(p: &mut Problems<'_>, key: &str) {
    if let Origin::File { .. } = layered_origin(p, key) {
        let section = key.strip_suffix(".password").unwrap_or(key);
        let var = section.replace('.', "__").to_uppercase();
        p.add(key, format!("a password written in a config file is refused in production; use {section}.password_file or FWDB__{var}__PASSWORD"));
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn backup(config: &Config, p: &mut Problems<'_>) {
    let b = &config.backup;
    if !(1..=19).contains(&b.compression_level) {
        p.add("backup.compression_level", format!("{} is not a zstd level; use 1 to 19", b.compression_level));
    }
    let s = &b.schedule;
    let crons = [("full", &s.full), ("incremental", &s.incremental), ("logical", &s.logical), ("mongo", &s.mongo)];
    for (key, cron) in crons.iter().filter(|(_, c)| !c.is_empty()).map(|(k, c)| (format!("backup.schedule.{k}"), c)) {
        if let Err(e) = super::parse_cron(cron) {
            p.add(&key, e);
        }
    }
    let r = &b.retention;
    for (key, d) in [
        ("backup.retention.full", r.full),
        ("backup.retention.incremental", r.incremental),
        ("backup.retention.recovery_window", r.recovery_window),
    ] {
        if d.is_zero() {
            p.add(key, "must be longer than zero");
        }
    }
    if let Some(d) = &b.pg_socket_dir {
        if !d.is_absolute() {
            p.add(
                "backup.pg_socket_dir",
                format!(
                    "{} is not an absolute path (the folder of the server's unix socket, e.g. /var/run/postgresql)",
                    d.display()
                ),
            );
        } else if !d.is_dir() {
            p.add("backup.pg_socket_dir", format!("folder not found: {}", d.display()));
        }
    }
    let e = &b.encryption;
    p.file_exists("backup.encryption.identity_file", e.identity_file.as_ref());
    p.file_exists("backup.encryption.passphrase_file", e.passphrase_file.as_ref());
    if e.passphrase.is_some() && e.passphrase_file.is_some() {
        p.add(
            "backup.encryption.passphrase_file",
            "both backup.encryption.passphrase and passphrase_file are set; keep one",
        );
    }
    for (i, r) in e.recipients.iter().enumerate() {
        if r.parse::<age::x25519::Recipient>().is_err() {
            p.add(&format!("backup.encryption.recipients[{i}]"), format!("`{r}` is not an age public key (age1...)"));
        }
    }
    if b.storage.is_empty() {
        return;
    }
    match super::StorageUrl::parse(&b.storage) {
        Err(msg) => p.add("backup.storage", msg),
        Ok(super::StorageUrl::S3 { .. }) => {
            if b.s3.access_key_id.is_some() != b.s3.secret_access_key.is_some() {
                p.add(
                    "backup.s3.secret_access_key",
                    "set both backup.s3.access_key_id and backup.s3.secret_access_key, or neither",
                );
            }
            if let Some(ep) = &b.s3.endpoint {
                if url::Url::parse(ep).is_err() {
                    p.add("backup.s3.endpoint", format!("`{ep}` is not a URL (e.g. http://127.0.0.1:9000)"));
                }
            }
        }
        Ok(super::StorageUrl::File(_)) => {}
    }
    if e.recipients.is_empty() && e.identity_file.is_none() && e.passphrase.is_none() && e.passphrase_file.is_none() {
        p.add(
            "backup.encryption",
            "backups are encrypted on the client: set backup.encryption.recipients (age public keys), identity_file, or a passphrase",
        );
    }
}

/// `[security]`: one of password / password_file per secret, files that exist,
/// and no plaintext password in a file under production.
fn security(config: &Config, p: &mut Problems<'_>) {
    let s = &config.security;
    if let Some(u) = &s.admin_user {
        if let Err(e) = super::validate_identifier(u) {
            p.add("security.admin_user", e.to_string());
        }
    }
    for (key, direct, file) in s.secret_keys() {
        let file_key = format!("{key}_file");
        if direct && file.is_some() {
            p.add(&file_key, format!("both {key} and {file_key} are set; keep one"));
        }
        if let Some(f) = file {
            if !f.is_file() {
                p.add(&file_key, format!("file not found: {}", f.display()));
            }
        }
        if direct && config.profile == Profile::Production {
            if let Origin::File { .. } = layered_origin(p, key) {
                p.add(key, format!("a password written in a config file is refused in production; use {file_key} or an FWDB__SECURITY__ variable"));
            }
        }
    }
}
