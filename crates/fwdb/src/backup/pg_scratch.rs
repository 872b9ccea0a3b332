//! The full check of a full backup (`backup verify`, and the drill after each
//! scheduled full backup): a restore into a scratch data folder on a free
//! port, with the WAL it needs copied from the archive, checked by
//! pg_verifybackup before it starts, started, row counts per table compared
//! with the manifest, then stopped and removed.

use super::manifest::Manifest;
use super::pg_counts::compare_counts;
use super::pg_restore::{PitrOptions, PitrReport, RecoveryTarget};
use super::{wal, Backups};
use crate::error::{Error, ErrorKind, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a verify waits for the WAL it needs to reach the archive: right
/// after a backup, the segment holding its counts may still be on its way.
const WAL_WAIT: Duration = Duration::from_secs(60);

/// The role that checks a scratch server over its unix socket (the bootstrap superuser).
const CHECK_USER: &str = "postgres";

impl Backups {
    /// Restores full backup `m` into a scratch folder, checks it, removes it:
    /// pg_verifybackup's verdict and the line on the counts.
    pub(crate) async fn restore_and_count(&self, m: &Manifest) -> Result<(String, String)> {
        let (target, upto) = scratch_target(m)?;
        let dir =
            std::env::temp_dir().join(format!("fwdb-verify-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
        let opts = PitrOptions {
            target,
            target_dir: dir.clone(),
            backup_id: Some(m.id.clone()),
            // The WAL is in pg_wal already; PostgreSQL insists on a command for archive recovery.
            restore_command: "false".into(),
            port: None,
            run_as: self.run_as.clone(),
            check_user: CHECK_USER.into(),
            start: true,
            prefetch_wal: Some(upto),
            verify_manifest: true,
            delta: false,
        };
        let result = match self.restore_pitr(&opts).await {
            Ok(r) => self.count_restored(m, &r).await.map(|line| (r.manifest_check.unwrap_or_default(), line)),
            Err(e) => Err(e),
        };
        if dir.join("postmaster.pid").exists() {
            if let Err(e) = self.stop_restored(&dir, self.run_as.as_deref()).await {
                tracing::warn!(dir = %dir.display(), error = %e, "stopping the scratch server");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        result.map(|(verdict, line)| (verdict, format!("{line}; stopped and removed")))
    }

    /// Sanity queries on the restored server: every database of the backup
    /// answers, and each table has the rows the manifest recorded.
    async fn count_restored(&self, m: &Manifest, r: &PitrReport) -> Result<String> {
        let missing: Vec<&String> = m.databases.iter().filter(|d| !r.databases.contains(d)).collect();
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("the restore of {} lacks databases {missing:?} that the manifest lists", m.id),
            ));
        }
        let (mut tables, mut rows) = (0, 0);
        for db in &m.databases {
            let client = scratch_client(&r.socket_dir, r.port, db).await?;
            let found = super::pg_logical::count_rows(&client).await?;
            let (t, n) = compare_counts(m, db, &found)?;
            tables += t;
            rows += n;
        }
        let dbs = m.databases.len();
        Ok(match (&m.counts_lsn, &m.counts_note) {
            (Some(lsn), _) => format!(
                "restored into a scratch server (port {}) up to {lsn}, where the counts were taken: {tables} tables, {rows} rows in {dbs} databases equal the manifest's",
                r.port
            ),
            (None, note) => format!(
                "restored into a scratch server (port {}) to the end of the backup: {dbs} databases answer; counts not compared ({})",
                r.port,
                note.as_deref().unwrap_or("the manifest records none")
            ),
        })
    }

    /// Copies the archived WAL from the backup's first segment through the one
    /// holding `upto` into `pg_wal`, and with `next` the segment after it when archived.
    pub(crate) async fn prefetch_wal(&self, m: &Manifest, upto: &str, next: bool, pg_wal: &Path) -> Result<()> {
        let names = segments_through(m, upto)?;
        self.wait_for_wal(m, &names, upto).await?;
        for name in &names {
            self.wal_fetch(name, &pg_wal.join(name)).await?;
        }
        if let Some(next) = names.last().filter(|_| next).and_then(|n| next_segment(n, seg_size(m))) {
            match self.wal_fetch(&next, &pg_wal.join(&next)).await {
                Err(e) if e.is_not_found() => {}
                other => other?,
            }
        }
        Ok(())
    }

    async fn wait_for_wal(&self, m: &Manifest, names: &[String], upto: &str) -> Result<()> {
        let deadline = Instant::now() + WAL_WAIT;
        loop {
            let listed = self.wal_list().await?;
            let newest = listed.last().map(|(n, _)| n.clone()).unwrap_or_else(|| "none".into());
            let have: std::collections::HashSet<String> = listed.into_iter().map(|(n, _)| n).collect();
            let missing: Vec<&String> = names.iter().filter(|n| !have.contains(*n)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "backup {} cannot be restored to {upto}: WAL {} missing from the archive after {}s (it holds {} files, the last {newest})",
                        m.id,
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                        WAL_WAIT.as_secs(),
                        have.len()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Where a scratch restore of `m` recovers to, and the LSN through which it needs WAL.
fn scratch_target(m: &Manifest) -> Result<(RecoveryTarget, String)> {
    let Some(l) = &m.counts_lsn else {
        return Ok((RecoveryTarget::Immediate, m.stop_lsn.clone().ok_or_else(|| no_positions(m))?));
    };
    let lsn = wal::parse_lsn(l)
        .ok_or_else(|| Error::invalid_input(format!("the manifest of {}: `{l}` is not an LSN", m.id)))?;
    let size = seg_size(m);
    // Counts taken right after a segment switch, with nothing written since: the
    // segment holding them may never be archived (a switch of an empty segment
    // does nothing), and no record at or past them exists. Then the state at
    // the counts is all the WAL before that segment: recover through it, no further.
    if lsn % size <= LONG_PAGE_HEADER && lsn >= size {
        let prev = (lsn / size) * size - 1;
        return Ok((RecoveryTarget::Latest, format!("{:X}/{:X}", prev >> 32, prev & 0xffff_ffff)));
    }
    Ok((RecoveryTarget::Lsn(l.clone()), l.clone()))
}

/// The size of the page header that starts every WAL segment (XLogLongPageHeaderData).
const LONG_PAGE_HEADER: u64 = 0x28;

fn no_positions(m: &Manifest) -> Error {
    Error::new(ErrorKind::Validation, format!("the manifest of {} records no WAL positions", m.id))
}

fn seg_size(m: &Manifest) -> u64 {
    m.wal_segment_size.unwrap_or(16 << 20)
}

/// Segment names from the backup's start to the one holding `upto`, on the backup's timeline.
fn segments_through(m: &Manifest, upto: &str) -> Result<Vec<String>> {
    let (Some(start), Some(tl)) = (m.start_lsn.as_deref().and_then(wal::parse_lsn), m.timeline) else {
        return Err(no_positions(m));
    };
    let end =
        wal::parse_lsn(upto).ok_or_else(|| Error::invalid_input(format!("`{upto}` is not an LSN (e.g. 0/3000060)")))?;
    let size = seg_size(m);
    (start / size..=end / size)
        .map(|s| {
            wal::segment_name(tl, &format!("{:X}/{:X}", (s * size) >> 32, (s * size) & 0xffff_ffff), size)
                .ok_or_else(|| no_positions(m))
        })
        .collect()
}

fn next_segment(name: &str, size: u64) -> Option<String> {
    let tl = u32::from_str_radix(name.get(..8)?, 16).ok()?;
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    let next = (log * (0x1_0000_0000 / size) + seg + 1) * size;
    wal::segment_name(tl, &format!("{:X}/{:X}", next >> 32, next & 0xffff_ffff), size)
}

async fn scratch_client(socket_dir: &Path, port: u16, db: &str) -> Result<tokio_postgres::Client> {
    let mut c = tokio_postgres::Config::new();
    c.host_path(socket_dir).port(port).user(CHECK_USER).dbname(db);
    let (client, conn) = c
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(super::db_error(format!("connecting to {db} on the scratch server")))?;
    tokio::spawn(conn);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_backup_and_the_next_one_follows() {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": "x", "kind": "full", "servers": [], "versions": [], "tool_version": "",
            "started_at": "2026-11-25T00:00:00Z", "finished_at": "2026-11-25T00:00:00Z",
            "start_lsn": "0/FE000028", "timeline": 1, "databases": [], "objects": [], "encryption": "", "compression": ""
        }))
        .unwrap();
        assert_eq!(
            segments_through(&m, "1/1000060").unwrap(),
            [
                "0000000100000000000000FE",
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert_eq!(next_segment("0000000100000000000000FF", 16 << 20).unwrap(), "000000010000000100000000");
        assert!(segments_through(&m, "zz").unwrap_err().to_string().contains("not an LSN"));
        // Counts in the middle of a segment: recover to them; at an untouched segment's start: through the one before.
        m.stop_lsn = Some("0/FE000100".into());
        m.counts_lsn = Some("1/1000060".into());
        assert_eq!(scratch_target(&m).unwrap(), (RecoveryTarget::Lsn("1/1000060".into()), "1/1000060".into()));
        m.counts_lsn = Some("1/1000028".into());
        assert_eq!(scratch_target(&m).unwrap(), (RecoveryTarget::Latest, "1/FFFFFF".into()));
        m.counts_lsn = None;
        assert_eq!(scratch_target(&m).unwrap(), (RecoveryTarget::Immediate, "0/FE000100".into()));
        m.start_lsn = None;
        assert!(segments_through(&m, "0/1").unwrap_err().to_string().contains("no WAL positions"));
    }
}
