//! The manifest: written last, so that a backup without one is no backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";
/// The newest manifest format this fwdb reads and writes (2: diff and incr backups, file lists).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A PostgreSQL base backup (pg_basebackup), restorable to any point
    /// covered by the archived WAL after it.
    Full,
    /// A base backup storing only the files changed since the last full
    /// backup; restored on top of it.
    Diff,
    /// A base backup storing only the files changed since the last base
    /// backup of any type; restored on top of its chain.
    Incr,
    /// pg_dump custom format, one object per database.
    Logical,
    /// A MongoDB dump in mongodump's directory layout.
    Mongo,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Diff => "diff",
            BackupKind::Incr => "incr",
            BackupKind::Logical => "logical",
            BackupKind::Mongo => "mongo",
        }
    }
}

impl BackupKind {
    /// A PostgreSQL base backup of any type (restorable with the archived WAL).
    pub fn is_physical(self) -> bool {
        matches!(self, BackupKind::Full | BackupKind::Diff | BackupKind::Incr)
    }
}

impl std::fmt::Display for BackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BackupKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(BackupKind::Full),
            "diff" => Ok(BackupKind::Diff),
            "incr" => Ok(BackupKind::Incr),
            "logical" => Ok(BackupKind::Logical),
            "mongo" => Ok(BackupKind::Mongo),
            _ => Err(format!("`{s}` is not a backup kind; use full, diff, incr, logical or mongo")),
        }
    }
}

/// One stored object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// What it holds, e.g. `base.tar`, `mydb.dump`, `mydb/users.bson`.
    pub name: String,
    /// Its key in storage.
    pub key: String,
    /// Stored (compressed, encrypted) size and SHA-256.
    pub size: u64,
    pub sha256: String,
    /// Plain size and SHA-256.
    pub raw_size: u64,
    pub raw_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub id: String,
    pub kind: BackupKind,
    /// host:port of each server read.
    pub servers: Vec<String>,
    /// Server versions, e.g. "PostgreSQL 15.8", "MongoDB 7.0".
    pub versions: Vec<String>,
    pub tool_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// WAL positions (full backups): restores need the WAL from start to stop at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// The first WAL segment this backup needs (full backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_wal: Option<String>,
    /// Databases in the backup.
    pub databases: Vec<String>,
    /// Row or document counts per table or collection (`db.table`), for sanity checks after a restore.
    #[serde(default)]
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Full backups: the WAL position at which `counts` hold, taken while
    /// writes to every table were briefly held off, so that a restore to
    /// exactly this position must reproduce them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_lsn: Option<String>,
    /// Full backups: why no counts were recorded (e.g. the backup role may not lock tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_note: Option<String>,
    /// Full backups: the server's WAL segment size (to name the segments a restore needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_segment_size: Option<u64>,
    /// Base backups: the cluster's system identifier; a diff or incr backup
    /// only refers to a backup of the same cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    pub objects: Vec<ObjectEntry>,
    /// Diff and incr backups: the backup this one was taken against (its
    /// reference); a restore needs it, and so on down to a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Base backups: every file of the data folder, with the backup that
    /// holds its bytes (see [`FileEntry`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// How it is encrypted: "age-x25519" or "age-scrypt".
    pub encryption: String,
    pub compression: String,
}

/// One regular file of a base backup's data folder. Plain (no content): it is
/// what the next diff or incr backup compares against, and a host that only
/// holds the public key can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Modification time (seconds since the epoch) as the server's tar header gave it.
    pub mtime: i64,
    /// The server's checksum from `backup_manifest` (`CRC32C:...`), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The backup whose `base.tar` holds these bytes.
    pub backup: String,
    /// When that backup started, by the server's clock (epoch seconds): a
    /// file last modified before then was copied whole.
    pub copied_at: i64,
}

impl Manifest {
    pub fn stored_size(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
    pub fn raw_size(&self) -> u64 {
        self.objects.iter().map(|o| o.raw_size).sum()
    }
}

/// `backups/<id>/`
pub fn dir_of(id: &str) -> String {
    format!("backups/{id}")
}

pub fn manifest_key(id: &str) -> String {
    format!("backups/{id}/{MANIFEST}")
}

/// A new, sortable backup id: `20261125T021500Z-full`.
pub fn new_id(kind: BackupKind, at: DateTime<Utc>) -> String {
    format!("{}-{}", at.format("%Y%m%dT%H%M%S%.3fZ"), kind)
}

/// Reads the manifest of backup `id`; one written by a newer fwdb is refused by name.
pub fn parse(id: &str, bytes: &[u8]) -> crate::error::Result<Manifest> {
    use crate::error::{Error, ErrorKind};
    #[derive(Deserialize)]
    struct Version {
        format_version: Option<u32>,
        tool_version: Option<String>,
    }
    let unreadable = |e: serde_json::Error| {
        Error::new(ErrorKind::Validation, format!("the manifest of backup {id} is unreadable")).with_source(e)
    };
    let v: Version = serde_json::from_slice(bytes).map_err(unreadable)?;
    if let Some(n) = v.format_version.filter(|n| *n > FORMAT_VERSION) {
        return Err(Error::new(
            ErrorKind::Validation,
            format!(
                "backup {id} was written by a newer fwdb ({}, manifest format {n}; this one reads up to {FORMAT_VERSION}): upgrade fwdb to restore it",
                v.tool_version.unwrap_or_default()
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(unreadable)
}
