//! Finding the PostgreSQL server binaries (`$FWDB_PG_BIN`, `pg_config`,
//! Debian's `/usr/lib/postgresql/*/bin`) and checking their version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Result, TestkitError};

pub const MIN_PG_VERSION: u32 = 15;
const TOOLS: [&str; 5] = ["postgres", "initdb", "pg_ctl", "pg_basebackup", "psql"];

/// The folder with the PostgreSQL server tools, and its major version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    pub version: u32,
}

impl PgBinaries {
    /// `$FWDB_PG_BIN`, else `pg_config --bindir`, else the highest
    /// `/usr/lib/postgresql/*/bin`, else `/usr/local/pgsql/bin`.
    pub fn find() -> Result<PgBinaries> {
        Self::find_with(std::env::var_os("FWDB_PG_BIN"))
    }

    /// As [`find`](Self::find), with the value of `FWDB_PG_BIN` given
    /// explicitly (so tests need not change the process environment). When it
    /// is set, it is the only place looked at: the user asked for it.
    pub fn find_with(fwdb_pg_bin: Option<OsString>) -> Result<PgBinaries> {
        let candidates: Vec<(String, PathBuf)> = match fwdb_pg_bin.filter(|v| !v.is_empty()) {
            Some(dir) => vec![(format!("FWDB_PG_BIN={}", PathBuf::from(&dir).display()), PathBuf::from(dir))],
            None => default_candidates(),
        };
        let mut searched = Vec::new();
        let mut too_old: Option<PgBinaries> = None;
        for (label, dir) in candidates {
            let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !is_executable(&dir.join(t))).collect();
            if !missing.is_empty() {
                searched.push(format!("{label} (missing {})", missing.join(", ")));
                continue;
            }
            match server_version(&dir) {
                Some(v) if v >= MIN_PG_VERSION => return Ok(PgBinaries { bin_dir: dir, version: v }),
                Some(v) => {
                    searched.push(format!("{label} (version {v})"));
                    if too_old.as_ref().is_none_or(|o| o.version < v) {
                        too_old = Some(PgBinaries { bin_dir: dir, version: v });
                    }
                }
                None => searched.push(format!("{label} (`postgres --version` failed)")),
            }
        }
        match too_old {
            Some(old) => Err(TestkitError::PgTooOld { found: old.version, dir: old.bin_dir }),
            None => Err(TestkitError::PgBinariesNotFound {
                searched: if searched.is_empty() {
                    "nowhere: no candidate folder exists".into()
                } else {
                    searched.join("; ")
                },
            }),
        }
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn default_candidates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(o) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output() {
        let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !dir.is_empty() {
            out.push(("pg_config --bindir".to_string(), PathBuf::from(dir)));
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    for (_, dir) in versions {
        out.push((dir.display().to_string(), dir));
    }
    out.push(("/usr/local/pgsql/bin".into(), PathBuf::from("/usr/local/pgsql/bin")));
    out
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// "postgres (PostgreSQL) 15.20 (Debian ...)" -> 15.
fn server_version(bin_dir: &Path) -> Option<u32> {
    let out = Command::new(bin_dir.join("postgres")).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn parse_version(text: &str) -> Option<u32> {
    let after = text.split(')').nth(1)?.trim_start();
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_server_version_line() {
        assert_eq!(parse_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"), Some(15));
        assert_eq!(parse_version("postgres (PostgreSQL) 17beta1\n"), Some(17));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn a_missing_fwdb_pg_bin_folder_gives_an_error_naming_the_package() {
        let err = PgBinaries::find_with(Some("/nonexistent".into())).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("sudo apt-get install postgresql"), "{msg}");
        assert!(msg.contains("FWDB_PG_BIN"), "{msg}");
        assert!(msg.contains("/nonexistent"), "{msg}");
    }
}
