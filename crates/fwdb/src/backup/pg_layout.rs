//! Laying out a base backup's chain in a data folder: each file is written
//! once, from the backup that holds its newest copy (the last backup's file
//! list says which), so a chain costs no more disk writes than one full
//! backup. A delta restore also leaves alone the files whose checksum (the
//! server's CRC32C from `backup_manifest`) already matches, and removes the
//! files the backup does not have.

use super::manifest::{FileEntry, Manifest};
use super::Backups;
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// What a restore did to the data folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LayoutReport {
    pub written: u64,
    pub bytes_written: u64,
    /// Delta restores: files whose checksum already matched.
    pub unchanged: u64,
    /// Delta restores: files the backup does not have.
    pub removed: u64,
}

impl LayoutReport {
    fn add(&mut self, o: &LayoutReport) {
        self.written += o.written;
        self.bytes_written += o.bytes_written;
        self.unchanged += o.unchanged;
        self.removed += o.removed;
    }
}

/// Which entries of one backup's tar to write.
struct Plan {
    id: String,
    /// The newest backup's files by path; empty for a backup without a file list (all written).
    wanted: Arc<HashMap<String, FileEntry>>,
    delta: bool,
}

impl Plan {
    /// The entry for `path` when this backup holds its newest copy (or there is no list).
    fn wants(&self, path: &str) -> Option<Option<&FileEntry>> {
        if self.wanted.is_empty() {
            return Some(None);
        }
        self.wanted.get(path).filter(|f| f.backup == self.id).map(Some)
    }
}

impl Backups {
    /// Writes the files of `chain` (full backup first) into `dir`.
    pub(crate) async fn lay_out(&self, chain: &[Manifest], dir: &Path, delta: bool) -> Result<LayoutReport> {
        let newest = chain.last().ok_or_else(|| Error::new(ErrorKind::Internal, "an empty chain"))?;
        if delta && newest.files.is_empty() {
            return Err(Error::invalid_input(format!(
                "backup {} has no file list (taken by an older fwdb): --delta cannot compare; restore it into a new folder",
                newest.id
            )));
        }
        let wanted: Arc<HashMap<String, FileEntry>> =
            Arc::new(newest.files.iter().map(|f| (f.path.clone(), f.clone())).collect());
        let mut report = LayoutReport::default();
        for b in chain {
            let plan = Plan { id: b.id.clone(), wanted: wanted.clone(), delta };
            report.add(&self.extract(b, dir, plan).await?);
        }
        if delta {
            report.removed = remove_strays(dir, dir, &wanted)?;
        }
        Ok(report)
    }

    /// Streams `base.tar` of `b` through the entries `plan` wants into `dir`.
    async fn extract(&self, b: &Manifest, dir: &Path, plan: Plan) -> Result<LayoutReport> {
        let obj = b
            .objects
            .iter()
            .find(|o| o.name == "base.tar")
            .ok_or_else(|| Error::invalid_input(format!("backup {} has no base.tar", b.id)))?
            .clone();
        let (reader, writer) = std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
        let into = dir.to_path_buf();
        let id = b.id.clone();
        let worker = tokio::task::spawn_blocking(move || {
            unpack(reader, &into, &plan)
                .map_err(|e| Error::io(format!("extracting backup {id} into {}", into.display()), e))
        });
        let fed = self.get_object(&obj, writer).await.map(drop);
        let unpacked = worker.await.map_err(|e| Error::new(ErrorKind::Internal, "tar worker").with_source(e))?;
        // The download's error first: a corrupt object also cuts the tar short.
        fed?;
        unpacked
    }
}

fn unpack(reader: impl Read, dir: &Path, plan: &Plan) -> std::io::Result<LayoutReport> {
    let mut report = LayoutReport::default();
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_mtime(true);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut e = entry?;
        let path = e.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if !e.header().entry_type().is_file() {
            e.unpack_in(dir)?;
            continue;
        }
        let Some(listed) = plan.wants(&path) else { continue };
        let compare = plan.delta && !super::pg_tar::ALWAYS_STORED.contains(&path.as_str());
        if compare && listed.is_some_and(|f| same_on_disk(&dir.join(&path), f)) {
            report.unchanged += 1;
            continue;
        }
        report.bytes_written += e.header().size()?;
        e.unpack_in(dir)?;
        report.written += 1;
    }
    // Read to the end: the writer side must not block on what tar leaves after its end blocks.
    std::io::copy(&mut ar.into_inner(), &mut std::io::sink())?;
    Ok(report)
}

/// CRC32C as PostgreSQL writes it in `backup_manifest`: the four bytes in memory order, as hex.
pub(crate) fn crc32c_of(path: &Path) -> std::io::Result<String> {
    const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let mut d = CRC32C.digest();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        d.update(&buf[..n]);
    }
    Ok(hex::encode(d.finalize().to_le_bytes()))
}

fn same_on_disk(path: &Path, f: &FileEntry) -> bool {
    let Some(sum) = f.checksum.as_deref().and_then(|c| c.strip_prefix("CRC32C:")) else { return false };
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == f.size)
        && crc32c_of(path).is_ok_and(|c| c.eq_ignore_ascii_case(sum))
}

/// Removes the regular files under `at` that `wanted` does not list; how many.
fn remove_strays(root: &Path, at: &Path, wanted: &HashMap<String, FileEntry>) -> Result<u64> {
    let mut removed = 0;
    let entries = std::fs::read_dir(at).map_err(|e| Error::io(format!("reading {}", at.display()), e))?;
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            removed += remove_strays(root, &p, wanted)?;
        } else if t.is_file() {
            let rel = p.strip_prefix(root).map(|r| r.to_string_lossy().to_string()).unwrap_or_default();
            if !wanted.contains_key(&rel) {
                std::fs::remove_file(&p).map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_written_as_postgresql_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("PG_VERSION");
        std::fs::write(&p, "15\n").unwrap();
        // backup_manifest of a PostgreSQL 15 cluster: {"Path": "PG_VERSION", "Size": 3, "Checksum-Algorithm": "CRC32C", "Checksum": "..."}
        assert_eq!(crc32c_of(&p).unwrap(), "8a744722");
    }
}
