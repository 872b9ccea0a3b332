//! `stack.json`: everything needed to reach (and later stop) a stack.
//!
//! It holds passwords, so it is written with mode 0600, and `Debug` on these
//! types never prints them.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TestkitError};

pub const STACK_JSON: &str = "stack.json";

/// Whether the servers die with the process that started them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Lifetime {
    /// Servers die with this process, even if it is SIGKILLed: tests,
    /// `fwdb dev up --foreground`.
    #[default]
    Attached,
    /// Servers outlive this process: `fwdb dev up`; stop them with `down`.
    Detached,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PgNode {
    /// "primary", "replica1", "replica2"...
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// Postmaster pid when the stack was (re)started; the live truth is the
    /// first line of `data_dir/postmaster.pid`.
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MongoKind {
    /// A real `mongod` found on PATH.
    Mongod,
    /// The MongoDB-wire-compatible server from the PyPI package `secantusdb`.
    Secantus,
}

impl MongoKind {
    pub fn describe(self) -> &'static str {
        match self {
            MongoKind::Mongod => "mongod (MongoDB)",
            MongoKind::Secantus => "secantusdb (MongoDB-wire-compatible)",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MongoNode {
    pub kind: MongoKind,
    pub port: u16,
    /// `mongodb://127.0.0.1:P/?replicaSet=...`
    pub uri: String,
    /// The replica set name the server advertises ("rs0" for mongod,
    /// "secantus" for secantusdb).
    pub replica_set: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// Pid when the stack was (re)started; the live truth is `<dir>/mongo.pid`.
    pub pid: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Common name of the CA (needed to sign more certificates with its key).
    pub ca_common_name: String,
    /// SAN: localhost, 127.0.0.1, ::1.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// CN = the app user.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct StackInfo {
    /// Short random id; appears in PostgreSQL's `cluster_name` (so in `ps`).
    pub id: String,
    pub dir: PathBuf,
    pub lifetime: Lifetime,
    /// Pid of the process that started the stack (the owner of an attached stack).
    pub owner_pid: u32,
    /// PostgreSQL major version, e.g. 15.
    pub pg_version: u32,
    pub pg_bin_dir: PathBuf,
    /// The OS user that runs the servers and owns their files.
    pub run_as_user: String,
    /// "127.0.0.1"
    pub host: String,
    /// Unix socket folder of every PostgreSQL server (admin access, trust).
    pub socket_dir: PathBuf,
    pub superuser: String,
    pub superuser_password: String,
    /// The login services run as: a member of app_readwrite only.
    pub app_user: String,
    pub app_password: String,
    /// The login migrations and maintenance run as: a member of app_admin,
    /// owner of the stack's databases.
    pub admin_user: String,
    pub admin_password: String,
    pub replication_user: String,
    pub replication_password: String,
    pub primary: PgNode,
    pub replicas: Vec<PgNode>,
    pub archive_dir: PathBuf,
    pub tls: TlsFiles,
    pub mongo: Option<MongoNode>,
}

impl fmt::Debug for StackInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "<redacted>";
        f.debug_struct("StackInfo")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("lifetime", &self.lifetime)
            .field("owner_pid", &self.owner_pid)
            .field("pg_version", &self.pg_version)
            .field("pg_bin_dir", &self.pg_bin_dir)
            .field("run_as_user", &self.run_as_user)
            .field("host", &self.host)
            .field("socket_dir", &self.socket_dir)
            .field("superuser", &self.superuser)
            .field("superuser_password", &HIDDEN)
            .field("app_user", &self.app_user)
            .field("app_password", &HIDDEN)
            .field("admin_user", &self.admin_user)
            .field("admin_password", &HIDDEN)
            .field("replication_user", &self.replication_user)
            .field("replication_password", &HIDDEN)
            .field("primary", &self.primary)
            .field("replicas", &self.replicas)
            .field("archive_dir", &self.archive_dir)
            .field("tls", &self.tls)
            .field("mongo", &self.mongo)
            .finish()
    }
}

impl StackInfo {
    /// All PostgreSQL nodes, primary first.
    pub fn pg_nodes(&self) -> impl Iterator<Item = &PgNode> {
        std::iter::once(&self.primary).chain(self.replicas.iter())
    }

    /// `127.0.0.1:<port>` of the primary.
    pub fn primary_addr(&self) -> String {
        format!("{}:{}", self.host, self.primary.port)
    }

    /// `127.0.0.1:<port>` of each replica.
    pub fn replica_addrs(&self) -> Vec<String> {
        self.replicas.iter().map(|r| format!("{}:{}", self.host, r.port)).collect()
    }

    /// A libpq/tokio-postgres connection string for the app user on `port`,
    /// database `db`, without TLS parameters.
    pub fn app_conn_string(&self, port: u16, db: &str) -> String {
        format!("host={} port={} user={} password={} dbname={}", self.host, port, self.app_user, self.app_password, db)
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = self.dir.join(STACK_JSON);
        let tmp = self.dir.join(format!(".{STACK_JSON}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| TestkitError::io(&path, std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| TestkitError::io(&tmp, e))?;
        f.write_all(&json).map_err(|e| TestkitError::io(&tmp, e))?;
        drop(f);
        // Written then renamed, so a reader never sees half a file.
        std::fs::rename(&tmp, &path).map_err(|e| TestkitError::io(&path, e))
    }
}

/// Reads `dir/stack.json`; `Ok(None)` when there is none.
pub fn load(dir: &Path) -> Result<Option<StackInfo>> {
    let path = dir.join(STACK_JSON);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TestkitError::io(&path, e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| TestkitError::BadStackJson {
        path,
        dir: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(dir: &Path) -> StackInfo {
        let node = |name: &str, port| PgNode {
            name: name.into(),
            port,
            data_dir: dir.join("pg").join(name),
            log_file: dir.join("logs").join(format!("{name}.log")),
            pid: None,
        };
        StackInfo {
            id: "abc123".into(),
            dir: dir.to_path_buf(),
            lifetime: Lifetime::Detached,
            owner_pid: 1,
            pg_version: 15,
            pg_bin_dir: "/usr/lib/postgresql/15/bin".into(),
            run_as_user: "postgres".into(),
            host: "127.0.0.1".into(),
            socket_dir: dir.join("sock"),
            superuser: "postgres".into(),
            superuser_password: "supersecret-1".into(),
            app_user: "fwdb_app".into(),
            app_password: "appsecret-2".into(),
            admin_user: "fwdb_admin".into(),
            admin_password: "adminsecret-4".into(),
            replication_user: "replicator".into(),
            replication_password: "replsecret-3".into(),
            primary: node("primary", 5001),
            replicas: vec![node("replica1", 5002)],
            archive_dir: dir.join("wal_archive"),
            tls: TlsFiles {
                ca_cert: dir.join("tls/ca.crt"),
                ca_key: dir.join("tls/ca.key"),
                ca_common_name: "fwdb testkit CA abc123".into(),
                server_cert: dir.join("tls/server.crt"),
                server_key: dir.join("tls/server.key"),
                client_cert: dir.join("tls/client.crt"),
                client_key: dir.join("tls/client.key"),
            },
            mongo: None,
        }
    }

    #[test]
    fn debug_output_never_shows_passwords() {
        let info = sample(Path::new("/tmp/x"));
        let shown = format!("{info:?} {info:#?}");
        for secret in ["supersecret-1", "appsecret-2", "replsecret-3", "adminsecret-4"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn stack_json_round_trips_and_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let info = sample(dir.path());
        info.save().expect("save");
        let mode = std::fs::metadata(dir.path().join(STACK_JSON)).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).expect("load"), Some(info));
        assert_eq!(load(&dir.path().join("nothing-here")).expect("load"), None);
    }
}
