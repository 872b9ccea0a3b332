//! The typed configuration. Every default lives in a `Default` impl here,
//! each with the reason for its value.

use super::secret::{redact_url_password, Secret};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Which deployment this process runs in (architecture 11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Staging,
    Production,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Development, Profile::Staging, Profile::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Staging => "staging",
            Profile::Production => "production",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown profile `{s}`; expected development, staging or production"))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole configuration of fwdb.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Config {
    /// Chosen by `--profile` or `FWDB_PROFILE`; not a key of the file.
    #[serde(skip)]
    pub profile: Profile,
    #[serde(default)]
    pub postgres: PostgresConfig,
    #[serde(default)]
    pub mongo: MongoConfig,
    #[serde(default)]
    pub backup: super::backup::BackupConfig,
    #[serde(default)]
    pub security: super::security::SecurityConfig,
    #[serde(default)]
    pub server: super::server::ServerConfig,
    /// Where each value came from, for errors and `fwdb config show`.
    #[serde(skip)]
    pub(crate) provenance: super::Provenance,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConfig {
    /// One host, or several tried in order: after a failover the first that
    /// accepts writes is the primary (target_session_attrs=read-write).
    #[serde(deserialize_with = "one_or_many")]
    pub primary: Vec<PgHost>,
    pub replicas: Vec<PgHost>,
    pub database: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub application_name: String,
    #[serde(with = "duration_str")]
    pub connect_timeout: Duration,
    #[serde(with = "duration_str")]
    pub statement_timeout: Duration,
    pub pool: PoolConfig,
    pub tls: TlsConfig,
    pub routing: super::routing::RoutingConfig,
    pub admin: AdminLogin,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            // The conventional local server; real deployments always set this.
            primary: vec![PgHost::new("127.0.0.1", 5432)],
            // No replicas: reads go to the primary until some are configured.
            replicas: Vec::new(),
            database: "fashion_wallet".into(),
            // The application role of 9.1, never a superuser.
            user: "fwdb_app".into(),
            password: None,
            password_file: None,
            // Shows up in pg_stat_activity, so operators can tell our sessions apart.
            application_name: "fwdb".into(),
            // Long enough for a TLS handshake to a busy server, short enough
            // that a dead host fails over to the next one quickly.
            connect_timeout: Duration::from_secs(5),
            // 4.2's 30 s: no request of a web service should run longer.
            statement_timeout: Duration::from_secs(30),
            pool: PoolConfig::default(),
            tls: TlsConfig::default(),
            routing: super::routing::RoutingConfig::default(),
            admin: AdminLogin::default(),
        }
    }
}

/// `[postgres.admin]`: the login that migrations and maintenance run as
/// (`fwdb migrate`, the migration step of `fwdb up`, `fwdb audit`, backups
/// unless `backup.pg_user` is set). It is a member of app_admin; `user`
/// above, which services run as, is only a member of app_readwrite
/// (architecture 9.1), so a compromised service cannot drop or truncate.
/// Services never need these credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminLogin {
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// A client certificate of this login, for servers that require one
    /// (`postgres.tls.cert_file` is the runtime login's and is not offered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl Default for AdminLogin {
    fn default() -> Self {
        // The migrator that `fwdb roles apply` makes a member of app_admin.
        AdminLogin { user: "fwdb_admin".into(), password: None, password_file: None, cert_file: None, key_file: None }
    }
}

impl PostgresConfig {
    /// The same servers and TLS, as the admin login of `[postgres.admin]`.
    pub fn as_admin(&self) -> PostgresConfig {
        let mut pg = self.clone();
        pg.user = self.admin.user.clone();
        pg.password = self.admin.password.clone();
        pg.password_file = None;
        pg.tls.cert_file = self.admin.cert_file.clone();
        pg.tls.key_file = self.admin.key_file.clone();
        pg
    }
}

/// A `host:port` pair. `host` alone means port 5432.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgHost {
    pub host: String,
    pub port: u16,
}

impl PgHost {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        PgHost { host: host.into(), port }
    }
}

impl FromStr for PgHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
            (h, after.strip_prefix(':'))
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(format!("`{s}` is not a host name, expected host:port"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{s}`: `{p}` is not a port (1-65535)"))?,
            None => 5432,
        };
        Ok(PgHost::new(host, port))
    }
}

impl fmt::Display for PgHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for PgHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PgHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Accepts `"h:p"` as well as `["h1:p", "h2:p"]`, so an environment variable can hold one host.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PgHost>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PgHost),
        Many(Vec<PgHost>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(h)) => Ok(vec![h]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(de::Error::custom("expected \"host:port\" or a list of them")),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    pub min_size: u32,
    pub max_size: u32,
    #[serde(with = "duration_str")]
    pub acquire_timeout: Duration,
    #[serde(with = "duration_str")]
    pub idle_timeout: Duration,
    #[serde(with = "duration_str")]
    pub max_lifetime: Duration,
    /// Connections per server that reads outside transactions share,
    /// pipelined (0: every read checks out a connection of its own).
    pub multiplex: u32,
    /// A read shape whose moving time estimate is above this does not share
    /// (until it falls below half), nor is a shared connection joined on
    /// which no read finished for this long.
    #[serde(with = "duration_str")]
    pub slow_read: Duration,
    /// Reads in flight on one shared connection at most.
    pub pipeline_depth: u32,
}

impl PoolConfig {
    /// The connections reads share: `multiplex`, at most half of `max_size`
    /// so that writes and transactions always have connections of their own.
    pub fn shared_connections(&self) -> u32 {
        self.multiplex.min(self.max_size / 2)
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            // 4.2: ten warm connections absorb a burst without connect latency.
            min_size: 10,
            // 4.2: a hundred per server per process; size max_connections for it.
            max_size: 100,
            // 4.2: a request waiting longer than 30 s for a connection has failed anyway.
            acquire_timeout: Duration::from_secs(30),
            // Connections above min_size are closed after 10 idle minutes.
            idle_timeout: Duration::from_secs(600),
            // Recycled every 30 minutes so server-side memory and DNS changes are picked up.
            max_lifetime: Duration::from_secs(1800),
            // Reads pipelined on up to 8 connections per server: at 64
            // concurrent point reads this ran at 1.7x the throughput of one
            // connection per caller on a 2-core server (docs/benchmarks.md),
            // and one process still spreads its reads over 8 backends (cores).
            // Head-of-line blocking is the price: 0 turns it off.
            multiplex: 8,
            // A fast read waits at most about this long behind a stranger: a
            // few times a point read's time under load (docs/pool-choice.md).
            slow_read: Duration::from_millis(5),
            // Twice the share of 64 tasks over 8 connections.
            pipeline_depth: 16,
        }
    }
}

/// libpq's sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified: protects from passive sniffing only.
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TlsConfig {
    /// `prefer` by default, as libpq does; production requires verify-full.
    pub mode: SslMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MongoConfig {
    /// A full connection string; or leave it out and give `hosts`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redacted_uri")]
    pub uri: Option<String>,
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
    pub database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub auth_source: String,
    pub auth_mechanism: String,
    pub app_name: String,
    pub read_preference: ReadPreference,
    /// `majority`, or a number of nodes.
    pub write_concern: String,
    pub pool: MongoPoolConfig,
    pub tls: MongoTlsConfig,
}

impl Default for MongoConfig {
    fn default() -> Self {
        MongoConfig {
            uri: None,
            // The conventional local server; real deployments always set this.
            hosts: vec!["127.0.0.1:27017".into()],
            replica_set: None,
            database: "fashion_wallet".into(),
            user: None,
            password: None,
            password_file: None,
            // 9.2: users live in the admin database.
            auth_source: "admin".into(),
            // 9.2: the only mechanism we allow in production.
            auth_mechanism: "SCRAM-SHA-256".into(),
            app_name: "fwdb".into(),
            // Design documents are edited with optimistic versions: read what was written.
            read_preference: ReadPreference::Primary,
            // A write acknowledged by a majority survives a failover.
            write_concern: "majority".into(),
            pool: MongoPoolConfig::default(),
            tls: MongoTlsConfig::default(),
        }
    }
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.uri.as_deref().map(redact_url_password))
            .field("hosts", &self.hosts)
            .field("replica_set", &self.replica_set)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("auth_source", &self.auth_source)
            .field("auth_mechanism", &self.auth_mechanism)
            .field("read_preference", &self.read_preference)
            .field("write_concern", &self.write_concern)
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .finish()
    }
}

fn redacted_uri<S: Serializer>(uri: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match uri {
        Some(u) => s.serialize_str(&redact_url_password(u)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ReadPreference {
    #[default]
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
    Nearest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MongoPoolConfig {
    pub min_size: u32,
    pub max_size: u32,
    #[serde(with = "duration_str")]
    pub wait_timeout: Duration,
}

impl Default for MongoPoolConfig {
    fn default() -> Self {
        MongoPoolConfig {
            // As for PostgreSQL (4.2): warm connections for the first burst.
            min_size: 10,
            max_size: 100,
            // The driver has no wait-queue timeout; fwdb enforces this one.
            wait_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MongoTlsConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// One PEM file with the client certificate and its key, as the driver wants it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_key_file: Option<PathBuf>,
}

/// Durations as humantime strings ("30s", "10m", "1h 30m").
pub(crate) mod duration_str {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| de::Error::custom(format!("`{s}` is not a duration ({e}); write e.g. \"30s\" or \"10m\"")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_and_without_port() {
        assert_eq!("db:6000".parse::<PgHost>().unwrap(), PgHost::new("db", 6000));
        assert_eq!("db".parse::<PgHost>().unwrap(), PgHost::new("db", 5432));
        assert_eq!("[::1]:5433".parse::<PgHost>().unwrap(), PgHost::new("::1", 5433));
        assert!("db:99999".parse::<PgHost>().unwrap_err().contains("not a port"));
        assert!("db:0".parse::<PgHost>().is_err());
        assert!("".parse::<PgHost>().is_err());
        assert!("http://x/y".parse::<PgHost>().is_err());
    }

    #[test]
    fn ipv6_hosts_print_in_brackets() {
        assert_eq!(PgHost::new("::1", 5433).to_string(), "[::1]:5433");
    }

    #[test]
    fn the_architecture_defaults_are_the_defaults() {
        let p = PoolConfig::default();
        assert_eq!((p.min_size, p.max_size, p.acquire_timeout), (10, 100, Duration::from_secs(30)));
    }
}
