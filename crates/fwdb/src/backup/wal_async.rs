//! Asynchronous WAL archiving, as pgBackRest's `archive-async`: a long-lived
//! archiver (`fwdb wal archiver`) holds one configuration and one storage
//! client, watches `pg_wal/archive_status` for segments PostgreSQL marked
//! `.ready`, and uploads them oldest first, several at once, ahead of
//! PostgreSQL's requests. `fwdb wal push` (archive_command) then only hands
//! its segment over through the spool folder and waits for the archiver's
//! verdict.
//!
//! Durability: the archiver writes `<segment>.ok` only after the upload
//! completed (S3 multipart completion, a rename into the folder), and push
//! exits 0 only on that file: a segment is acknowledged to PostgreSQL exactly
//! when a synchronous push would have acknowledged it. Nothing but small
//! status files is kept in the spool, so losing the spool (or the archiver,
//! killed at any point) loses no WAL: PostgreSQL keeps the segment and asks
//! again, and with no archiver holding the lock, push uploads it itself.

use super::{wal, Backups};
use crate::error::{Error, ErrorKind, Result};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOCK: &str = "archiver.lock";
/// How often the archiver looks for work, and push for its verdict.
const POLL: Duration = Duration::from_millis(25);
/// Status files of segments nobody asks about any more (pushed ahead, then archived by a fallback push).
const STALE: Duration = Duration::from_secs(24 * 3600);
/// Names of pushed segments the archiver remembers (far more than pg_wal holds ready at once).
const REMEMBERED: usize = 4096;

fn status(spool: &Path, name: &str, ext: &str) -> PathBuf {
    spool.join(format!("{name}.{ext}"))
}

/// Writes `bytes` to `path` atomically (temporary file, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The archiver's lock on the spool: held for its whole life, so its absence
/// means no archiver (the kernel drops it when the process dies, even by kill -9).
#[derive(Debug)]
pub(crate) struct SpoolLock {
    _file: std::fs::File,
}

fn lock_file(spool: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(spool).map_err(|e| Error::io(format!("creating the WAL spool {}", spool.display()), e))?;
    let p = spool.join(LOCK);
    // Read-only is enough for flock: then the server's user and root (the archiver) share the file,
    // whoever created it.
    match std::fs::File::open(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p)
        }
        other => other,
    }
    .map_err(|e| Error::io(format!("opening {}", p.display()), e))
}

fn try_lock(f: &std::fs::File) -> bool {
    // SAFETY: flock on a file descriptor this function's caller owns.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether an archiver holds the spool's lock now.
fn archiver_running(spool: &Path) -> Result<bool> {
    let f = lock_file(spool)?;
    // Taking it (released when `f` closes) proves nobody holds it.
    Ok(!try_lock(&f))
}

impl SpoolLock {
    fn take(spool: &Path) -> Result<SpoolLock> {
        let f = lock_file(spool)?;
        if !try_lock(&f) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("another WAL archiver is running on {}", spool.display()),
            ));
        }
        Ok(SpoolLock { _file: f })
    }
}

/// What one push asks of the archiver: the segment's absolute path.
fn request(spool: &Path, path: &Path, name: &str) -> Result<()> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
    write_atomic(&status(spool, name, "want"), abs.to_string_lossy().as_bytes())
        .map_err(|e| Error::io(format!("writing to the WAL spool {}", spool.display()), e))
}

impl Backups {
    /// archive_command with `backup.wal.spool_dir` set: hands `path` to the
    /// running archiver and returns once it is in storage; pushes it directly
    /// when no archiver runs.
    pub async fn wal_push_via_archiver(&self, path: &Path) -> Result<bool> {
        let Some(spool) = self.cfg.backup.wal.spool_dir.clone() else {
            self.wal_push(path).await?;
            return Ok(false);
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        wal::check_wal_name(&name)?;
        if !archiver_running(&spool)? {
            tracing::info!(segment = %name, "no WAL archiver running: pushing directly");
            self.wal_push(path).await?;
            return Ok(false);
        }
        let (ok, err) = (status(&spool, &name, "ok"), status(&spool, &name, "error"));
        if !ok.exists() {
            request(&spool, path, &name)?;
        }
        let deadline = Instant::now() + self.cfg.backup.wal.push_timeout;
        let mut checked = Instant::now();
        loop {
            if ok.exists() {
                let _ = std::fs::remove_file(&ok);
                let _ = std::fs::remove_file(status(&spool, &name, "want"));
                return Ok(true);
            }
            if let Ok(msg) = std::fs::read_to_string(&err) {
                let _ = std::fs::remove_file(&err);
                return Err(Error::new(ErrorKind::Io, format!("the WAL archiver could not push {name}: {msg}")));
            }
            if checked.elapsed() > Duration::from_secs(1) {
                checked = Instant::now();
                // The archiver died (its lock went with it): nobody else will push this segment.
                if !archiver_running(&spool)? {
                    tracing::info!(segment = %name, "the WAL archiver stopped: pushing directly");
                    self.wal_push(path).await?;
                    let _ = std::fs::remove_file(status(&spool, &name, "want"));
                    return Ok(false);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the WAL archiver did not push {name} within {:?}", self.cfg.backup.wal.push_timeout),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The archiver: runs until `stop` resolves. `pg_wal`: the server's WAL
    /// folder, to push ahead of requests (else learnt from the first request).
    pub async fn wal_archiver<F: std::future::Future<Output = ()>>(
        &self,
        pg_wal: Option<PathBuf>,
        stop: F,
    ) -> Result<()> {
        let spool = self.cfg.backup.wal.spool_dir.clone().ok_or_else(|| {
            Error::invalid_input("backup.wal.spool_dir is not set: the archiver and `fwdb wal push` meet there")
        })?;
        let _lock = SpoolLock::take(&spool)?;
        let mut pg_wal = pg_wal;
        let mut pushed = std::collections::BTreeSet::new();
        tokio::pin!(stop);
        loop {
            let work = not_pushed_yet(&spool, pending(&spool, &mut pg_wal)?, &pushed);
            if work.is_empty() {
                tokio::select! {
                    _ = &mut stop => return Ok(()),
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            let pushing = self.push_all(&spool, work);
            tokio::select! {
                // A stop in the middle of uploads: none acknowledged, PostgreSQL asks again.
                _ = &mut stop => return Ok(()),
                done = pushing => pushed.extend(done),
            }
            while pushed.len() > REMEMBERED {
                pushed.pop_first();
            }
            sweep(&spool);
        }
    }

    /// Pushes `work` (name -> path), oldest first, `backup.wal.parallel` at once, writing each
    /// verdict; the names pushed.
    async fn push_all(&self, spool: &Path, work: BTreeMap<String, (PathBuf, bool)>) -> Vec<String> {
        let parallel = self.cfg.backup.wal.parallel.max(1);
        let done = futures::stream::iter(work)
            .map(|(name, (path, _))| async move {
                let verdict = match self.wal_push(&path).await {
                    Ok(()) => {
                        tracing::info!(segment = %name, "WAL pushed by the archiver");
                        write_atomic(&status(spool, &name, "ok"), b"")
                    }
                    Err(e) => {
                        tracing::warn!(segment = %name, error = %e, "WAL push failed");
                        write_atomic(&status(spool, &name, "error"), e.to_string().as_bytes())
                    }
                };
                if let Err(e) = &verdict {
                    tracing::error!(segment = %name, error = %e, "writing to the WAL spool");
                }
                verdict.ok().map(|()| name)
            })
            .buffered(parallel)
            .collect::<Vec<Option<String>>>()
            .await;
        done.into_iter().flatten().collect()
    }
}

/// Segments the archiver pushed are not pushed again while PostgreSQL still
/// lists them (`.ready` until its archive_command returns); a new request for
/// one gets its verdict at once.
fn not_pushed_yet(
    spool: &Path,
    mut work: BTreeMap<String, (PathBuf, bool)>,
    pushed: &std::collections::BTreeSet<String>,
) -> BTreeMap<String, (PathBuf, bool)> {
    work.retain(|name, (_, requested)| {
        if !pushed.contains(name) {
            return true;
        }
        if *requested {
            let _ = write_atomic(&status(spool, name, "ok"), b"");
        }
        false
    });
    work
}

/// Segments to push: every request in the spool, and every `.ready` segment
/// of `pg_wal`, less those already pushed (`.ok`) or failed and not asked again.
fn pending(spool: &Path, pg_wal: &mut Option<PathBuf>) -> Result<BTreeMap<String, (PathBuf, bool)>> {
    let mut work = BTreeMap::new();
    let mut done = std::collections::HashSet::new();
    let entries = std::fs::read_dir(spool).map_err(|e| Error::io(format!("reading {}", spool.display()), e))?;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        if let Some(name) = file.strip_suffix(".want") {
            let Ok(path) = std::fs::read_to_string(e.path()) else { continue };
            let path = PathBuf::from(path);
            if pg_wal.is_none() {
                *pg_wal = path.parent().map(Path::to_path_buf);
            }
            work.insert(name.to_string(), (path, true));
        } else if let Some(name) = file.strip_suffix(".ok").or_else(|| file.strip_suffix(".error")) {
            done.insert(name.to_string());
        }
    }
    if let Some(dir) = pg_wal.as_deref() {
        for name in ready(dir) {
            work.entry(name.clone()).or_insert_with(|| (dir.join(&name), false));
        }
    }
    work.retain(|name, _| !done.contains(name));
    Ok(work)
}

/// Segments PostgreSQL marked ready for archiving in `pg_wal/archive_status`.
fn ready(pg_wal: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pg_wal.join("archive_status")) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ready").map(str::to_string))
        .filter(|n| wal::check_wal_name(n).is_ok())
        .collect()
}

/// Removes status files nobody will read: old verdicts of segments pushed ahead.
fn sweep(spool: &Path) {
    let Ok(entries) = std::fs::read_dir(spool) else { return };
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE);
        let name = e.file_name().to_string_lossy().to_string();
        if old && (name.ends_with(".ok") || name.ends_with(".error")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_ready_segments_are_pending_until_a_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let pg_wal = dir.path().join("pg_wal");
        std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
        std::fs::create_dir_all(&spool).unwrap();
        let seg = |n: u32| format!("0000000100000000000000{n:02X}");
        for n in [3, 4, 5] {
            std::fs::write(pg_wal.join("archive_status").join(format!("{}.ready", seg(n))), b"").unwrap();
        }
        std::fs::write(pg_wal.join("archive_status").join("garbage.ready"), b"").unwrap();
        let mut learnt = None;
        assert!(pending(&spool, &mut learnt).unwrap().is_empty(), "no request yet, no folder known");
        request(&spool, &pg_wal.join(seg(3)), &seg(3)).unwrap();
        let work = pending(&spool, &mut learnt).unwrap();
        assert_eq!(learnt.as_deref(), Some(pg_wal.as_path()));
        assert_eq!(work.keys().cloned().collect::<Vec<_>>(), vec![seg(3), seg(4), seg(5)]);
        write_atomic(&status(&spool, &seg(4), "ok"), b"").unwrap();
        write_atomic(&status(&spool, &seg(5), "error"), b"x").unwrap();
        assert_eq!(pending(&spool, &mut learnt).unwrap().keys().cloned().collect::<Vec<_>>(), vec![seg(3)]);
    }

    #[test]
    fn the_lock_tells_whether_an_archiver_runs_and_dies_with_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!archiver_running(dir.path()).unwrap());
        let lock = SpoolLock::take(dir.path()).unwrap();
        assert!(archiver_running(dir.path()).unwrap());
        assert!(SpoolLock::take(dir.path()).unwrap_err().to_string().contains("another WAL archiver"));
        drop(lock);
        assert!(!archiver_running(dir.path()).unwrap());
    }
}
