//! Where a stack lives on disk: temporary folders for tests (and sweeping
//! those left by dead processes), checks on user-chosen folders, and the
//! locks that keep two starters from racing on one folder.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, TestkitError};
use crate::process::{self, RunAs};

/// Entries a stack folder may contain. A folder with only these (and no
/// stack.json) is the remains of an interrupted start and may be cleaned.
pub(crate) const OWN_ENTRIES: &[&str] = &[
    "stack.json",
    ".stack.json.tmp",
    ".lock",
    ".pwfile",
    "owner",
    "pg",
    "tls",
    "logs",
    "sock",
    "wal_archive",
    "mongo",
    "mongo.pid",
];

/// `$TMPDIR/fwdb-testkit`: parent of all temporary stacks.
pub(crate) fn temp_root() -> PathBuf {
    std::env::temp_dir().join("fwdb-testkit")
}

/// Creates `$TMPDIR/fwdb-testkit/stack-<pid>-<rand>` and records its owner
/// (pid and process start time, so a reused pid is not mistaken for it).
pub(crate) fn new_temp_dir() -> Result<PathBuf> {
    let root = temp_root();
    std::fs::create_dir_all(&root).map_err(|e| TestkitError::io(&root, e))?;
    // Sticky and world-writable like /tmp: stacks of different users (and the
    // unprivileged server user) share it.
    let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777));
    let me = std::process::id();
    let dir = root.join(format!("stack-{me}-{:08x}", rand::random::<u32>()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| TestkitError::io(&dir, e))?;
    let owner = format!("{me} {}\n", process::start_time(me).unwrap_or(0));
    std::fs::write(dir.join("owner"), owner).map_err(|e| TestkitError::io(dir.join("owner"), e))?;
    dir.canonicalize().map_err(|e| TestkitError::io(&dir, e))
}

/// Is the process that created temp stack `dir` still alive?
fn owner_alive(dir: &Path) -> bool {
    let from_file = std::fs::read_to_string(dir.join("owner")).ok().and_then(|s| {
        let mut it = s.split_whitespace();
        Some((it.next()?.parse::<u32>().ok()?, it.next()?.parse::<u64>().ok()?))
    });
    match from_file {
        Some((pid, start)) => process::is_alive(pid) && (start == 0 || process::start_time(pid) == Some(start)),
        None => {
            // Created a moment ago and the owner file is not written yet?
            // Fall back to the pid in the name.
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match name.strip_prefix("stack-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok()) {
                Some(pid) => process::is_alive(pid),
                None => true, // not ours: leave it alone
            }
        }
    }
}

/// Removes temporary stacks whose owning process is dead (a killed test
/// binary), stopping any server still running from them first.
pub(crate) fn sweep_temp_stacks() {
    let Ok(rd) = std::fs::read_dir(temp_root()) else { return };
    for entry in rd.flatten() {
        let dir = entry.path();
        let is_stack = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("stack-"));
        if !is_stack || owner_alive(&dir) {
            continue;
        }
        let _ = crate::control::down(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Refuses folders the stack cannot work in: PostgreSQL's unix socket path
/// has a 107-byte limit, and quotes would break the generated configuration.
pub(crate) fn validate(dir: &Path) -> Result<()> {
    let s = dir.to_string_lossy();
    if s.contains('\'') || s.contains('\n') || s.contains('"') || s.contains('\\') {
        return Err(TestkitError::InvalidDir(format!(
            "the stack folder {} contains a quote, backslash or newline, which PostgreSQL's configuration cannot hold: choose another --dir",
            dir.display()
        )));
    }
    let sock = dir.join("sock").join(".s.PGSQL.65535.lock");
    if sock.as_os_str().len() > 107 {
        return Err(TestkitError::InvalidDir(format!(
            "the stack folder {} is too deep: PostgreSQL's socket path {} would exceed 107 bytes. Choose a shorter --dir",
            dir.display(),
            sock.display()
        )));
    }
    Ok(())
}

/// The server user must be able to walk down to `dir` (e.g. not through a
/// 0700 /root when running as root).
pub(crate) fn check_reachable(dir: &Path, user: &RunAs) -> Result<()> {
    if user.is_self {
        return Ok(());
    }
    for anc in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(anc) else { continue };
        let mode = meta.mode();
        let ok = mode & 0o001 != 0
            || (meta.uid() == user.uid && mode & 0o100 != 0)
            || (meta.gid() == user.gid && mode & 0o010 != 0);
        if !ok {
            return Err(TestkitError::InvalidDir(format!(
                "the database servers run as `{}` (PostgreSQL refuses root), which cannot enter {} (mode {:o}). \
                 Choose a stack folder it can reach (for tests: TMPDIR=/tmp), or allow it with `chmod o+x {}`",
                user.name,
                anc.display(),
                mode & 0o7777,
                anc.display()
            )));
        }
    }
    Ok(())
}

/// What is in `dir` besides the stack's own entries.
pub(crate) fn foreign_entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !OWN_ENTRIES.contains(&n.as_str()))
        .collect()
}

/// Removes the stack's own entries from `dir` (all but `keep`).
pub(crate) fn remove_own_entries(dir: &Path, keep: &[&str]) {
    for name in OWN_ENTRIES {
        if keep.contains(name) {
            continue;
        }
        let p = dir.join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&p);
            }
            Err(_) => {}
        }
    }
}

/// An exclusive lock on `dir/.lock`, held while a stack in `dir` starts.
pub(crate) struct DirLock {
    _file: std::fs::File,
}

pub(crate) fn lock_dir(dir: &Path) -> Result<DirLock> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| TestkitError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(TestkitError::io(&path, std::io::Error::last_os_error()));
    }
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_folders_postgres_cannot_use() {
        assert!(validate(Path::new("/tmp/it's")).is_err());
        let deep = format!("/tmp/{}", "d".repeat(100));
        let msg = validate(Path::new(&deep)).expect_err("too deep").to_string();
        assert!(msg.contains("107 bytes"), "{msg}");
        assert!(validate(Path::new("/tmp/fwdb-testkit/stack-1-abcd")).is_ok());
    }

    #[test]
    fn a_folder_with_only_stack_entries_is_recognised() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("pg")).expect("mkdir");
        std::fs::write(dir.path().join("mongo.pid"), "1").expect("write");
        assert!(foreign_entries(dir.path()).is_empty());
        std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        assert_eq!(foreign_entries(dir.path()), vec!["notes.txt".to_string()]);
        remove_own_entries(dir.path(), &[]);
        assert!(!dir.path().join("pg").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
