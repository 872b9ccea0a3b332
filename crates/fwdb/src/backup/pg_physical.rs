//! Base backups: pg_basebackup streamed as a tar into storage. A full backup
//! stores every file; a diff or incr backup stores only the files changed
//! since its reference (see pg_tar), and lists every file with the backup that
//! holds it. Restores assemble the chain (see pg_restore).

use super::manifest::{BackupKind, FileEntry, Manifest};
use super::pg_restore::RecoveryTarget;
use super::pg_tar::{self, TarFilter};
use super::{pgtools, wal, Backups};
use crate::error::{Error, ErrorKind, Result};
use chrono::Utc;

/// What the server says before a base backup starts.
struct ServerFacts {
    version: String,
    seg_size: u64,
    databases: Vec<String>,
    system_id: Option<String>,
    /// The server's clock now, epoch seconds: the backup starts after it.
    now: i64,
}

impl Backups {
    async fn server_facts(&self) -> Result<ServerFacts> {
        let client = crate::postgres::connect(&self.cfg.postgres, crate::postgres::ConnectTarget::Primary).await?;
        let version: String = client.query_one("show server_version", &[]).await?.get(0);
        let seg: String = client.query_one("show wal_segment_size", &[]).await?.get(0);
        let dbs = client
            .query("select datname::text from pg_database where datallowconn and not datistemplate order by 1", &[])
            .await?;
        // Readable by every role since PostgreSQL 10; a role that may not read it just skips the check.
        let system_id = client
            .query_one("select system_identifier::text from pg_control_system()", &[])
            .await
            .ok()
            .map(|r| r.get(0));
        let now: i64 = client.query_one("select extract(epoch from now())::bigint", &[]).await?.get(0);
        Ok(ServerFacts {
            version,
            seg_size: parse_size(&seg).unwrap_or(16 << 20),
            databases: dbs.iter().map(|r| r.get(0)).collect(),
            system_id,
            now,
        })
    }

    /// The backup a `kind` backup is taken against: none for a full backup;
    /// the newest full (diff) or newest base backup of any type (incr) of the
    /// same cluster. None when there is none: the backup is then taken full.
    async fn reference_for(&self, kind: BackupKind, system_id: Option<&str>) -> Result<Option<Manifest>> {
        if kind == BackupKind::Full {
            return Ok(None);
        }
        let all = self.list().await?;
        let fits = |m: &&Manifest| {
            (m.kind == BackupKind::Full || (kind == BackupKind::Incr && m.kind.is_physical()))
                && !m.files.is_empty()
                && m.system_id.as_deref() == system_id
        };
        Ok(all.iter().rev().find(fits).cloned())
    }

    /// Takes a base backup of `kind` (full, diff or incr) and returns its manifest.
    pub(crate) async fn create_base(&self, kind: BackupKind) -> Result<Manifest> {
        let started = Utc::now();
        let host =
            self.cfg.postgres.primary.first().ok_or_else(|| Error::invalid_input("postgres.primary is empty"))?;
        let facts = self.server_facts().await?;
        let reference = self.reference_for(kind, facts.system_id.as_deref()).await?;
        let kind = if reference.is_none() && kind != BackupKind::Full {
            tracing::warn!(%kind, "no earlier base backup of this cluster to compare with: taking a full backup");
            BackupKind::Full
        } else {
            kind
        };
        let mut m = self.new_manifest(kind, started);
        m.servers.push(host.to_string());
        m.versions.push(format!("PostgreSQL {}", facts.version));
        m.databases = facts.databases.clone();
        m.system_id = facts.system_id.clone();
        m.wal_segment_size = Some(facts.seg_size);
        m.reference = reference.as_ref().map(|r| r.id.clone());
        let ref_files = reference.map(|r| r.files).unwrap_or_default();
        let stream = self.stream_base(&mut m, &ref_files, facts.now).await;
        let stream = match stream {
            Ok(()) => Ok(()),
            Err(e) => {
                // Nothing half-written: the objects of a backup that will never have a manifest go.
                let _ = self.delete_backup(&m.id).await;
                Err(e)
            }
        };
        stream?;
        self.record_counts(&mut m).await;
        m.finished_at = Utc::now();
        self.write_manifest(&m).await?;
        Ok(m)
    }

    /// Streams pg_basebackup's tar, less the files `reference` holds unchanged, into `base.tar` of `m`.
    async fn stream_base(&self, m: &mut Manifest, reference: &[FileEntry], server_now: i64) -> Result<()> {
        let mut cmd = pgtools::command(&self.cfg.postgres, &self.cfg.backup, "pg_basebackup", "replication")?;
        // Tar to stdout, no WAL inside: the WAL comes from the archive (`fwdb wal push`);
        // the server waits until the backup's last segment is archived.
        cmd.args(["-D", "-", "-F", "t", "-X", "none", "-c", "fast", "-v", "--no-password"]);
        cmd.arg("-l").arg(format!("fwdb {}", m.id));
        let reader = pgtools::ChildReader::spawn(cmd, "pg_basebackup")?;
        let stderr = reader.stderr_text.clone();
        let (reader, facts) = TarFilter::new(reader, reference);
        let entry = self.put_object(&m.id, "base.tar", reader).await?;
        let text = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let facts = facts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        m.start_lsn = facts.start_lsn();
        m.stop_lsn = facts.stop_lsn();
        m.timeline = facts.timeline();
        if let (Some(lsn), Some(tl), Some(seg)) = (&m.start_lsn, m.timeline, m.wal_segment_size) {
            m.start_wal = wal::segment_name(tl, lsn, seg);
        }
        if m.start_lsn.is_none() || m.stop_lsn.is_none() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("pg_basebackup did not report its WAL positions:\n  {}", pgtools::tail(text.as_bytes())),
            ));
        }
        let changed = pg_tar::changed_behind_time(&facts, reference);
        if !changed.is_empty() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} of backup {}: {} changed although size and modification time did not; take a full backup",
                    m.kind,
                    m.id,
                    changed.join(", ")
                ),
            ));
        }
        m.objects.push(entry);
        // The label's time is later (after the checkpoint) than the one read before starting: files the
        // checkpoint wrote are then not copied again by the next backup. The earlier one when unreadable.
        let copied_at = facts.start_time().unwrap_or(server_now).max(server_now);
        m.files = pg_tar::file_list(&facts, reference, &m.id, copied_at);
        Ok(())
    }

    /// The chain of base backup `m`, full backup first, `m` last. Every link
    /// must be in storage: a backup whose reference is gone cannot be restored.
    pub(crate) async fn chain(&self, m: &Manifest) -> Result<Vec<Manifest>> {
        let mut chain = vec![m.clone()];
        while let Some(parent) = chain.last().and_then(|c| c.reference.clone()) {
            let child = chain.last().map(|c| c.id.clone()).unwrap_or_default();
            if chain.len() > 10_000 || chain.iter().any(|c| c.id == parent) {
                return Err(Error::invalid_input(format!("the chain of backup {} loops at {parent}", m.id)));
            }
            let p = self.manifest(&parent).await.map_err(|e| {
                let kind = if e.is_not_found() { ErrorKind::Validation } else { e.kind() };
                Error::new(
                    kind,
                    format!(
                        "backup {} cannot be restored: {child} depends on backup {parent}, which is missing ({e})",
                        m.id
                    ),
                )
            })?;
            chain.push(p);
        }
        chain.reverse();
        Ok(chain)
    }

    /// The WAL from the start to the end of base backup `m` is in the archive
    /// (what every restore of it needs; the drill's pg_verifybackup parses it).
    pub(crate) async fn check_wal_archived(&self, m: &Manifest) -> Result<String> {
        let mut missing = Vec::new();
        if let (Some(start), Some(stop), Some(tl)) = (&m.start_lsn, &m.stop_lsn, m.timeline) {
            let seg = m.wal_segment_size.unwrap_or(16 << 20);
            let (a, b) = (wal::parse_lsn(start).unwrap_or(0) / seg, wal::parse_lsn(stop).unwrap_or(0) / seg);
            let have: std::collections::HashSet<String> = self.wal_list().await?.into_iter().map(|(n, _)| n).collect();
            for s in a..=b {
                let name = wal::segment_name(tl, &wal::format_lsn(s * seg), seg).unwrap_or_default();
                if !have.contains(&name) {
                    missing.push(name);
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("backup {} is not restorable: WAL {} missing from the archive", m.id, missing.join(", ")),
            ));
        }
        Ok("WAL from the start to the end of the backup is archived".to_string())
    }

    /// The newest base backup that ends before `target`.
    pub(crate) fn choose_base(&self, all: &[Manifest], target: &RecoveryTarget) -> Result<Manifest> {
        let fits = |m: &&Manifest| {
            m.kind.is_physical()
                && match target {
                    RecoveryTarget::Latest | RecoveryTarget::Immediate => true,
                    RecoveryTarget::Time(t) => m.finished_at <= *t,
                    RecoveryTarget::Lsn(l) => {
                        match (m.stop_lsn.as_deref().and_then(wal::parse_lsn), wal::parse_lsn(l)) {
                            (Some(a), Some(b)) => a <= b,
                            _ => false,
                        }
                    }
                }
        };
        all.iter().rev().find(fits).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no full backup in {} ends before {target:?}; take one with `fwdb backup create --kind full`",
                    self.st.url
                ),
            )
        })
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("MB") {
        (n, 1u64 << 20)
    } else if let Some(n) = s.strip_suffix("GB") {
        (n, 1u64 << 30)
    } else if let Some(n) = s.strip_suffix("kB") {
        (n, 1u64 << 10)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}
