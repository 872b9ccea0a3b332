//! pg_verifybackup on a restored data folder: every file that
//! `backup_manifest` lists has its size and checksum, and (when the WAL was
//! copied into `pg_wal`) the WAL from the backup's start to its end parses.
//!
//! The drill runs it on the folder as laid out from `base.tar` plus the WAL
//! in `pg_wal`, before fwdb writes its recovery settings and before the server
//! starts: starting changes files the manifest covers (pg_control, relation
//! files), so a check afterwards would fail on a good backup. What a restore
//! writes later (`postgresql.auto.conf`, `recovery.signal`, the WAL in
//! `pg_wal`) is on pg_verifybackup's own ignore list, so an operator can also
//! check a `fwdb restore --no-start` folder without `--ignore`.

use super::pgtools;
use crate::config::BackupConfig;
use crate::error::{Error, ErrorKind, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// How many of pg_verifybackup's complaints an error quotes (a damaged backup can have thousands).
const QUOTED: usize = 10;

/// Runs pg_verifybackup on `dir`, a restore of backup `id`; with `parse_wal`,
/// also on the WAL in `dir/pg_wal`. The verdict, or an error of kind
/// Validation quoting what pg_verifybackup found (it names the files).
pub(crate) async fn verify_restore(cfg: &BackupConfig, id: &str, dir: &Path, parse_wal: bool) -> Result<String> {
    let mut cmd = Command::new(pgtools::tool(cfg, "pg_verifybackup")?);
    if !parse_wal {
        cmd.arg("--no-parse-wal");
    }
    cmd.arg(dir).stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "pg_verifybackup waiter").with_source(e))?
        .map_err(|e| Error::io("starting pg_verifybackup", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(verdict(&stdout, parse_wal)),
        // 1 is pg_verifybackup's answer for a backup that does not verify (and for one it cannot read).
        Some(1) => Err(Error::new(ErrorKind::Validation, problems(id, &stderr))),
        _ => Err(Error::new(
            ErrorKind::Io,
            format!("pg_verifybackup failed ({}):\n  {}", out.status, pgtools::tail(&out.stderr)),
        )),
    }
}

fn verdict(stdout: &str, parse_wal: bool) -> String {
    let said = stdout.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("exit 0");
    let what = if parse_wal {
        "every file of backup_manifest intact and the backup's WAL parsed from pg_wal"
    } else {
        "every file of backup_manifest intact (WAL not parsed)"
    };
    format!("pg_verifybackup on the scratch restore: {said} ({what})")
}

/// The error for a restore that does not match its manifest, quoting pg_verifybackup's first complaints.
fn problems(id: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("pg_verifybackup: "))
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !l.starts_with("Try \""))
        .collect();
    let mut text = format!("pg_verifybackup: the restore of backup {id} does not match its backup_manifest:");
    for l in lines.iter().take(QUOTED) {
        text.push_str("\n  ");
        text.push_str(l);
    }
    if lines.len() > QUOTED {
        text.push_str(&format!("\n  (and {} more)", lines.len() - QUOTED));
    }
    if lines.is_empty() {
        text.push_str("\n  (it said nothing on stderr)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_quotes_the_files_pg_verifybackup_names() {
        let stderr = "pg_verifybackup: error: checksum mismatch for file \"PG_VERSION\"\n\
                      pg_verifybackup: error: \"base/5/16384\" has size 0 on disk but size 8192 in the manifest\n";
        let text = problems("full-1", stderr);
        assert!(text.starts_with("pg_verifybackup: the restore of backup full-1 does not match"), "{text}");
        assert!(text.contains("\n  error: checksum mismatch for file \"PG_VERSION\""), "{text}");
        assert!(text.contains("\"base/5/16384\" has size 0"), "{text}");
        let many: String = (0..25)
            .map(|i| format!("pg_verifybackup: error: \"base/5/{i}\" is present in the manifest but not on disk\n"))
            .collect();
        let text = problems("full-1", &many);
        assert_eq!(text.lines().count(), 1 + QUOTED + 1, "{text}");
        assert!(text.ends_with("(and 15 more)"), "{text}");
    }

    #[test]
    fn the_verdict_says_whether_the_wal_was_parsed() {
        assert!(verdict("backup successfully verified\n", true)
            .contains("successfully verified (every file of backup_manifest intact and the backup's WAL"));
        assert!(verdict("", false).contains("exit 0 (every file of backup_manifest intact (WAL not parsed))"));
    }
}
