//! `[backup]`: where backups go, how they are encrypted and compressed, how
//! long they are kept, and when `fwdb up` takes them (architecture 13.1).

use super::model::duration_str;
use super::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {
    /// `file:///abs/path` or `s3://bucket/prefix`. Empty: backups are not configured.
    pub storage: String,
    pub s3: S3Config,
    pub encryption: EncryptionConfig,
    /// zstd level, 1..=19.
    pub compression_level: i32,
    /// Folder of pg_basebackup, pg_dump, pg_restore, pg_verifybackup, pg_ctl.
    /// Unset: the `PATH`, then the newest `/usr/lib/postgresql/*/bin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_bin_dir: Option<PathBuf>,
    /// The role base backups connect as (it needs REPLICATION). Unset: `postgres.admin.user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_password: Option<Secret>,
    /// When fwdb runs on the database host (as pgBackRest does): the folder of
    /// the primary's unix socket (e.g. `/var/run/postgresql`). pg_basebackup
    /// and pg_dump then connect through it instead of TCP + TLS, which spares
    /// the server encrypting every byte of a base backup. The server's
    /// pg_hba.conf must admit `backup.pg_user` on `local` (and `local
    /// replication`). Unset: the tools connect like the service does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_socket_dir: Option<PathBuf>,
    pub retention: RetentionConfig,
    pub schedule: ScheduleConfig,
    pub wal: WalConfig,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            // No default place: a backup written somewhere unexpected is worse than none.
            storage: String::new(),
            s3: S3Config::default(),
            encryption: EncryptionConfig::default(),
            // zstd level 1: the fastest level, so that a backup keeps up with pg_basebackup to local
            // disk (level 3 falls behind it, see docs/benchmarks.md), and on database pages only a
            // few percent larger than level 3.
            compression_level: 1,
            pg_bin_dir: None,
            pg_user: None,
            pg_password: None,
            pg_socket_dir: None,
            retention: RetentionConfig::default(),
            schedule: ScheduleConfig::default(),
            wal: WalConfig::default(),
        }
    }
}

/// Asynchronous WAL archiving: `fwdb wal archiver` runs beside the server and
/// pushes segments (in parallel, ahead of PostgreSQL's requests);
/// `fwdb wal push` (archive_command) hands each segment to it and returns once
/// it is in storage. Without a running archiver, `fwdb wal push` pushes itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WalConfig {
    /// Where `fwdb wal push` and the archiver meet: small request and status
    /// files only (no WAL is copied there). Unset: archiving is synchronous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Segments the archiver uploads at once.
    pub parallel: usize,
    /// How long `fwdb wal push` waits for the archiver before it fails (PostgreSQL then retries).
    #[serde(with = "duration_str")]
    pub push_timeout: Duration,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            spool_dir: None,
            // Uploads wait on the network far more than on the CPU.
            parallel: 4,
            // PostgreSQL retries a failed archive_command after a second: a minute covers a slow upload.
            push_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    /// Unset: AWS itself. Set for S3-compatible servers (MinIO, moto).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// Plain HTTP to the endpoint; only for local test servers.
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        // us-east-1: the region S3 assumes when none is named.
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
        }
    }
}

/// Client-side encryption with age: "encrypted" (13.1) must not depend on a bucket's settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct EncryptionConfig {
    /// age public keys (`age1...`) backups are encrypted to. The private key
    /// can then stay off the database hosts: only restores need it.
    pub recipients: Vec<String>,
    /// age identity file (`AGE-SECRET-KEY-1...` lines), needed to restore and verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// Or one passphrase (age scrypt) for both ways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    #[serde(with = "duration_str")]
    pub full: Duration,
    #[serde(with = "duration_str")]
    pub incremental: Duration,
    #[serde(with = "duration_str")]
    pub recovery_window: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        RetentionConfig {
            // 13.1: full backups are kept 30 days.
            full: Duration::from_secs(30 * DAY),
            // 13.1: incremental backups (logical dumps, MongoDB dumps, WAL) 7 days.
            incremental: Duration::from_secs(7 * DAY),
            // 13.1: point-in-time recovery reaches back 7 days.
            recovery_window: Duration::from_secs(7 * DAY),
        }
    }
}

/// When `fwdb up` takes backups. Each entry is a cron expression in UTC: 5
/// fields (`minute hour day month weekday`), or 6 with seconds first
/// (`*/5 * * * * *`: every 5 seconds, for drills and tests). Empty: that job
/// is not scheduled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleConfig {
    /// Full base backups, each followed by a verify drill.
    pub full: String,
    /// The incremental step (see `incremental_type`).
    pub incremental: String,
    /// What the incremental step takes: `incr` (a base backup of the files
    /// changed since the last base backup), `diff` (since the last full one),
    /// or `wal` (only closes the current WAL segment and waits until it is archived).
    pub incremental_type: IncrementalType,
    /// Logical dumps (pg_dump).
    pub logical: String,
    /// MongoDB dumps.
    pub mongo: String,
    /// Off by default: `fwdb up` takes backups only when asked to.
    pub enabled: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            // 13.1: daily at 2 AM UTC.
            full: "0 2 * * *".into(),
            // 13.1: every 6 hours.
            incremental: "0 */6 * * *".into(),
            // 13.1 asks for incremental backups: the smallest that still bounds replay time.
            incremental_type: IncrementalType::Incr,
            // 13.1 names no schedule for these: taken when an operator asks for them.
            logical: String::new(),
            mongo: String::new(),
            enabled: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncrementalType {
    Incr,
    Diff,
    Wal,
}

impl ScheduleConfig {
    /// (job, cron) of every scheduled job.
    pub fn jobs(&self) -> Vec<(&'static str, &str)> {
        [("full", &self.full), ("incremental", &self.incremental), ("logical", &self.logical), ("mongo", &self.mongo)]
            .into_iter()
            .filter(|(_, c)| !c.trim().is_empty())
            .map(|(j, c)| (j, c.as_str()))
            .collect()
    }
}

/// A parsed `backup.storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StorageUrl {
    pub fn parse(raw: &str) -> Result<StorageUrl, String> {
        let url = url::Url::parse(raw)
            .map_err(|e| format!("`{raw}` is not a URL ({e}); write file:///path or s3://bucket/prefix"))?;
        match url.scheme() {
            "file" => {
                if url.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(format!("`{raw}`: a file URL has no host; write file:///absolute/path"));
                }
                let path = url.to_file_path().map_err(|_| format!("`{raw}` is not an absolute file path"))?;
                Ok(StorageUrl::File(path))
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default().to_string();
                if bucket.is_empty() {
                    return Err(format!("`{raw}` names no bucket; write s3://bucket/prefix"));
                }
                Ok(StorageUrl::S3 { bucket, prefix: url.path().trim_matches('/').to_string() })
            }
            other => Err(format!("`{raw}`: unsupported scheme `{other}`; write file:///path or s3://bucket/prefix")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse_or_say_why_not() {
        assert_eq!(StorageUrl::parse("file:///var/b").unwrap(), StorageUrl::File("/var/b".into()));
        assert_eq!(
            StorageUrl::parse("s3://bk/a/b/").unwrap(),
            StorageUrl::S3 { bucket: "bk".into(), prefix: "a/b".into() }
        );
        assert!(StorageUrl::parse("/var/b").unwrap_err().contains("not a URL"));
        assert!(StorageUrl::parse("ftp://x/y").unwrap_err().contains("unsupported scheme"));
        assert!(StorageUrl::parse("s3:///x").unwrap_err().contains("bucket"));
    }
}
