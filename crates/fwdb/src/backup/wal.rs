//! `fwdb wal push %p` (archive_command) and `fwdb wal fetch %f %p`
//! (restore_command): WAL files, compressed and encrypted one by one, in
//! `wal/` of the backup storage.

use super::{pipe, Backups};
use crate::error::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

pub(crate) fn wal_key(name: &str) -> String {
    format!("wal/{name}.zst.age")
}

/// WAL file names are hex with an optional `.history`, `.backup` or `.partial` suffix.
pub(crate) fn check_wal_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_hexdigit() || c == '.' || c.is_ascii_lowercase())
        && name.chars().take(8).all(|c| c.is_ascii_hexdigit())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!("`{name}` is not a WAL file name (e.g. 000000010000000000000003)")))
    }
}

/// The position part (log + segment, 16 hex digits) of a segment name.
pub(crate) fn segment_position(name: &str) -> Option<&str> {
    (name.len() >= 24 && name[..24].chars().all(|c| c.is_ascii_hexdigit())).then(|| &name[8..24])
}

/// The segment file holding `lsn` (e.g. `0/3000028`) on `timeline`.
pub(crate) fn segment_name(timeline: u32, lsn: &str, seg_size: u64) -> Option<String> {
    let (hi, lo) = lsn.split_once('/')?;
    let pos = (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
    let seg = pos / seg_size;
    let per_log = 0x1_0000_0000 / seg_size;
    Some(format!("{timeline:08X}{:08X}{:08X}", seg / per_log, seg % per_log))
}

pub(crate) fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// `0/3000028` for a position.
pub(crate) fn format_lsn(pos: u64) -> String {
    format!("{:X}/{:X}", pos >> 32, pos & 0xffff_ffff)
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut h = HashSink(Sha256::new());
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(hex::encode(h.0.finalize()))
}

struct HashSink(Sha256);
impl std::io::Write for HashSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Backups {
    /// Archives one WAL file (`%p`). Pushing the same file again succeeds;
    /// a different file under an archived name is refused, as PostgreSQL asks.
    pub async fn wal_push(&self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::invalid_input(format!("{} is not a WAL file path", path.display())))?;
        check_wal_name(name)?;
        let key = wal_key(name);
        if self.st.exists(&key).await? {
            let stored =
                pipe::download(&self.st, &self.keys, &key, None, HashSink(Sha256::new()), pipe::no_progress()).await?;
            if hex::encode(stored.0.finalize()) == file_sha256(path)? {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{name} is already archived in {} with different content; refusing to overwrite it",
                    self.st.url
                ),
            ));
        }
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        pipe::upload(&self.st, &self.keys, self.cfg.backup.compression_level, &key, name, f, self.progress.clone())
            .await?;
        Ok(())
    }

    /// Restores archived WAL file `name` to `dest` (`%f %p`); a NotFound
    /// error when it was never archived (PostgreSQL then stops asking).
    pub async fn wal_fetch(&self, name: &str, dest: &Path) -> Result<()> {
        check_wal_name(name)?;
        let key = wal_key(name);
        if !self.st.exists(&key).await? {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{name} is not in the WAL archive of {}", self.st.url),
            ));
        }
        let tmp = dest
            .with_file_name(format!(".{}.fwdb-partial", dest.file_name().and_then(|n| n.to_str()).unwrap_or("wal")));
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        match pipe::download(&self.st, &self.keys, &key, None, f, self.progress.clone()).await {
            Ok(f) => {
                f.sync_all().map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
                std::fs::rename(&tmp, dest).map_err(|e| Error::io(format!("renaming to {}", dest.display()), e))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Names of archived WAL files, sorted.
    pub async fn wal_list(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .st
            .list("wal")
            .await?
            .into_iter()
            .filter_map(|l| {
                let n = l.key.strip_prefix("wal/")?.strip_suffix(".zst.age")?.to_string();
                Some((n, l.size))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_follow_postgres() {
        let s = 16 * 1024 * 1024;
        assert_eq!(segment_name(1, "0/3000028", s).unwrap(), "000000010000000000000003");
        assert_eq!(segment_name(2, "1/FF000000", s).unwrap(), "0000000200000001000000FF");
        assert!(check_wal_name("000000010000000000000003").is_ok());
        assert!(check_wal_name("00000002.history").is_ok());
        assert!(check_wal_name("000000010000000000000003.00000028.backup").is_ok());
        assert!(check_wal_name("../etc/passwd").is_err());
        assert!(check_wal_name("").is_err());
    }
}
