//! Backups (architecture 3.1, 13.1): PostgreSQL base backups with WAL
//! archiving and point-in-time recovery, pg_dump logical dumps, MongoDB dumps
//! in mongodump's layout; streamed, zstd-compressed, age-encrypted on the
//! client, to S3 or a folder, each described by a manifest written last.
//!
//! Layout in storage:
//! - `backups/<id>/manifest.json` (plain JSON, no secrets) and the objects
//!   `backups/<id>/<name>.zst.age`;
//! - `wal/<segment>.zst.age` (and `.history`, `.backup` files), pushed by
//!   `fwdb wal push` as PostgreSQL's archive_command.

mod crypto;
mod manifest;
mod mongo_archive;
mod mongo_dump;
mod pg_counts;
mod pg_layout;
mod pg_logical;
mod pg_physical;
mod pg_restore;
mod pg_scratch;
mod pg_tar;
mod pg_verify;
mod pgtools;
mod pipe;
mod retention;
mod runs;
mod schedule;
mod storage;
mod wal;
mod wal_async;
mod wal_verify;

pub use crate::config::{next_run, parse_cron};
pub use crypto::{generate_key, write_key};
pub use manifest::{BackupKind, FileEntry, Manifest, ObjectEntry};
pub use mongo_archive::crc64_ecma;
pub use pg_layout::LayoutReport;
pub use pg_restore::{PitrOptions, PitrReport, RecoveryTarget};
pub use pipe::Progress;
pub use retention::{PruneItem, PruneReport};
pub use runs::{BackupRuns, RunState};
pub use schedule::JobStatus;
pub use wal_verify::WalReport;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use std::sync::Arc;

/// Backups in the configured storage, with the configured keys.
pub struct Backups {
    st: storage::Storage,
    keys: Arc<crypto::Keys>,
    cfg: Config,
    progress: Progress,
    /// OS user that runs scratch servers of full verifies (PostgreSQL refuses root).
    run_as: Option<String>,
}

/// How far `verify` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyDepth {
    /// Every object's SHA-256, decryption and decompression only.
    Quick,
    /// Also a restore into scratch, checked with row or document counts
    /// against the manifest: a scratch server for full backups (after the
    /// WAL check, and pg_verifybackup on the restored folder before it
    /// starts), a scratch database for logical and MongoDB dumps.
    Full,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub kind: BackupKind,
    /// One line per check passed.
    pub checks: Vec<String>,
    /// pg_verifybackup's verdict on the scratch restore (full backups, full depth).
    pub pg_verifybackup: Option<String>,
}

impl Backups {
    pub fn open(cfg: &Config) -> Result<Backups> {
        let st = storage::Storage::open(&cfg.backup)?;
        let keys = Arc::new(crypto::Keys::from_config(&cfg.backup.encryption)?);
        Ok(Backups { st, keys, cfg: cfg.clone(), progress: pipe::no_progress(), run_as: default_run_as() })
    }

    /// Reports (object name, plain bytes so far) while streaming.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// The OS user for scratch servers [default: `postgres` when running as root, else none].
    pub fn with_run_as(mut self, user: Option<String>) -> Self {
        if user.is_some() {
            self.run_as = user;
        }
        self
    }

    pub fn storage_url(&self) -> &str {
        &self.st.url
    }

    fn encryption_name(&self) -> String {
        if self.cfg.backup.encryption.recipients.is_empty() {
            "age-scrypt".into()
        } else {
            "age-x25519".into()
        }
    }

    fn new_manifest(&self, kind: BackupKind, started_at: chrono::DateTime<chrono::Utc>) -> Manifest {
        Manifest {
            format_version: manifest::FORMAT_VERSION,
            id: manifest::new_id(kind, started_at),
            kind,
            servers: Vec::new(),
            versions: Vec::new(),
            tool_version: format!("fwdb {}", env!("CARGO_PKG_VERSION")),
            started_at,
            finished_at: started_at,
            start_lsn: None,
            stop_lsn: None,
            timeline: None,
            start_wal: None,
            databases: Vec::new(),
            counts: Default::default(),
            counts_lsn: None,
            counts_note: None,
            wal_segment_size: None,
            system_id: None,
            objects: Vec::new(),
            reference: None,
            files: Vec::new(),
            encryption: self.encryption_name(),
            compression: format!("zstd-{}", self.cfg.backup.compression_level),
        }
    }

    /// Streams one object of backup `id`.
    async fn put_object<R: std::io::Read + Send + 'static>(&self, id: &str, name: &str, src: R) -> Result<ObjectEntry> {
        let key = format!("{}/{name}.zst.age", manifest::dir_of(id));
        pipe::upload(&self.st, &self.keys, self.cfg.backup.compression_level, &key, name, src, self.progress.clone())
            .await
    }

    async fn get_object<W: std::io::Write + Send + 'static>(&self, o: &ObjectEntry, sink: W) -> Result<W> {
        pipe::download(&self.st, &self.keys, &o.key, Some(o), sink, self.progress.clone()).await
    }

    /// Written last: from now on the backup exists.
    async fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(m).map_err(|e| Error::new(ErrorKind::Internal, "manifest").with_source(e))?;
        self.st.put(&manifest::manifest_key(&m.id), json).await
    }

    /// Takes a backup of `kind` and returns its manifest.
    pub async fn create(&self, kind: BackupKind) -> Result<Manifest> {
        match kind {
            BackupKind::Logical => self.create_logical(None).await,
            BackupKind::Full | BackupKind::Diff | BackupKind::Incr => self.create_base(kind).await,
            BackupKind::Mongo => self.create_mongo().await,
        }
    }

    /// The manifest of backup `id`.
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        if id.is_empty() || id.contains('/') || id.contains("..") {
            return Err(Error::invalid_input(format!("`{id}` is not a backup id (see `fwdb backup list`)")));
        }
        let bytes = match self.st.get(&manifest::manifest_key(id)).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no backup `{id}` in {}: it has no manifest (never taken, pruned, or interrupted before it finished)", self.st.url),
                ))
            }
            Err(e) => return Err(e),
        };
        manifest::parse(id, &bytes)
    }

    /// Every complete backup (those with a manifest), oldest first.
    pub async fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for l in self.st.list("backups").await? {
            if let Some(id) =
                l.key.strip_prefix("backups/").and_then(|r| r.strip_suffix(&format!("/{}", manifest::MANIFEST)))
            {
                if !id.contains('/') {
                    out.push(self.manifest(id).await?);
                }
            }
        }
        out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The full check of backup `id` (what the drill after a scheduled full backup runs):
    /// `verify_with(id, VerifyDepth::Full)`.
    pub async fn verify(&self, id: &str) -> Result<VerifyReport> {
        self.verify_with(id, VerifyDepth::Full).await
    }

    /// Checks every object of backup `id` (stored checksum, decryption,
    /// decompression, plain checksum); at [`VerifyDepth::Full`] also restores
    /// it into scratch and compares counts with the manifest. A backup that
    /// fails a check is an error of kind Validation naming what failed.
    pub async fn verify_with(&self, id: &str, depth: VerifyDepth) -> Result<VerifyReport> {
        let m = self.manifest(id).await?;
        let mut checks = Vec::new();
        let mut pg_verifybackup = None;
        let chain = if m.kind.is_physical() { self.chain(&m).await? } else { vec![m.clone()] };
        if chain.len() > 1 {
            let ids: Vec<&str> = chain.iter().map(|c| c.id.as_str()).collect();
            checks.push(format!("chain of {} backups, every link in storage: {}", chain.len(), ids.join(" <- ")));
        }
        for c in &chain {
            for o in &c.objects {
                self.get_object(o, std::io::sink()).await?;
                let of = if c.id == m.id { String::new() } else { format!(" (of {})", c.id) };
                checks.push(format!(
                    "{}{of}: {} bytes stored, SHA-256 and decryption ok, {} bytes plain",
                    o.name, o.size, o.raw_size
                ));
            }
        }
        if depth == VerifyDepth::Full {
            match m.kind {
                BackupKind::Full | BackupKind::Diff | BackupKind::Incr => {
                    checks.push(self.check_wal_archived(&m).await?);
                    let (verdict, counted) = self.restore_and_count(&m).await?;
                    checks.push(verdict.clone());
                    checks.push(counted);
                    pg_verifybackup = Some(verdict);
                }
                BackupKind::Logical => checks.extend(self.verify_logical(&m).await?),
                BackupKind::Mongo => checks.extend(self.verify_mongo(&m).await?),
            }
        }
        Ok(VerifyReport { id: m.id, kind: m.kind, checks, pg_verifybackup })
    }

    async fn delete_backup(&self, id: &str) -> Result<()> {
        // The manifest first: a half-deleted backup is then no backup.
        self.st.delete(&manifest::manifest_key(id)).await?;
        for l in self.st.list(&manifest::dir_of(id)).await? {
            self.st.delete(&l.key).await?;
        }
        Ok(())
    }
}

/// PostgreSQL refuses to run as root: then scratch servers run as `postgres`.
fn default_run_as() -> Option<String> {
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    is_root.then(|| "postgres".to_string())
}

pub(crate) fn db_error(ctx: String) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |e| Error::from(e).with_context(ctx)
}

impl Error {
    pub(crate) fn with_context(self, ctx: String) -> Error {
        Error::new(self.kind(), ctx).with_source(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_13_1s() {
        let s = crate::config::ScheduleConfig::default();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T02:30:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(next_run(&s.full, at).unwrap().to_rfc3339(), "2026-11-26T02:00:00+00:00");
        assert_eq!(next_run(&s.incremental, at).unwrap().to_rfc3339(), "2026-11-25T06:00:00+00:00");
        assert!(parse_cron("every day").unwrap_err().contains("not a cron expression"));
        let every_2s = next_run("*/2 * * * * *", at).unwrap();
        assert_eq!(every_2s.to_rfc3339(), "2026-11-25T02:30:02+00:00");
    }
}
