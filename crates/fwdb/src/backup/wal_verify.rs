//! `fwdb wal verify` (as wal-g's wal-verify): every WAL segment from the
//! oldest kept base backup's first one to the newest archived one must be in
//! the archive; a missing one breaks point-in-time recovery past it, so it is
//! a failed check.

use super::{wal, Backups};
use crate::error::Result;

/// What `wal verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WalReport {
    /// The first segment a kept base backup needs.
    pub from: Option<String>,
    pub newest_archived: Option<String>,
    /// Segments checked (from `from` through the newest archived).
    pub checked: u64,
    /// Runs of missing segments: (first, last).
    pub gaps: Vec<(String, String)>,
    pub missing: u64,
    /// The segment the primary writes now, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_current: Option<String>,
    /// Finished segments on the primary not yet archived (archiving lag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_yet_archived: Option<u64>,
}

impl WalReport {
    pub fn ok(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// (timeline, position) of a segment name: position = log * per_log + segment.
fn position(name: &str, per_log: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let tl = u32::from_str_radix(&name[..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some((tl, log * per_log + seg))
}

fn name_of(tl: u32, pos: u64, per_log: u64) -> String {
    format!("{tl:08X}{:08X}{:08X}", pos / per_log, pos % per_log)
}

/// Gaps in `archived` (segment names) from `from` on. A position counts as
/// archived on any timeline: after a promotion the new timeline continues
/// where the old one stopped.
pub(crate) fn find_gaps(archived: &[String], from: &str, seg_size: u64) -> WalReport {
    let per_log = 0x1_0000_0000 / seg_size;
    let mut report = WalReport { from: Some(from.to_string()), ..Default::default() };
    let Some((from_tl, start)) = position(from, per_log) else { return report };
    let mut have: std::collections::BTreeMap<u64, u32> = Default::default();
    for (tl, pos) in archived.iter().filter_map(|n| position(n, per_log)) {
        let e = have.entry(pos).or_insert(tl);
        *e = (*e).max(tl);
    }
    let Some((&end, &end_tl)) = have.iter().next_back() else {
        report.gaps.push((from.to_string(), from.to_string()));
        report.missing = 1;
        return report;
    };
    report.newest_archived = Some(name_of(end_tl, end, per_log));
    let mut tl = from_tl;
    let mut run: Option<(u64, u64)> = None;
    for pos in start..=end {
        report.checked += 1;
        match have.get(&pos) {
            Some(t) => {
                if let Some((a, b)) = run.take() {
                    report.gaps.push((name_of(tl, a, per_log), name_of(tl, b, per_log)));
                }
                tl = *t;
            }
            None => {
                report.missing += 1;
                run = Some(run.map_or((pos, pos), |(a, _)| (a, pos)));
            }
        }
    }
    report
}

impl Backups {
    /// Checks the archive from the oldest kept base backup on; also asks the
    /// primary (when it answers) how far behind the archive is.
    pub async fn wal_verify(&self) -> Result<WalReport> {
        let all = self.list().await?;
        let oldest = all.iter().filter(|m| m.kind.is_physical()).find(|m| m.start_wal.is_some());
        let Some(m) = oldest else { return Ok(WalReport::default()) };
        let from = m.start_wal.clone().unwrap_or_default();
        let seg_size = m.wal_segment_size.unwrap_or(16 << 20);
        let names: Vec<String> = self.wal_list().await?.into_iter().map(|(n, _)| n).collect();
        let mut report = find_gaps(&names, &from, seg_size);
        if let Ok(current) = self.server_segment().await {
            let per_log = 0x1_0000_0000 / seg_size;
            let newest = report.newest_archived.as_deref().and_then(|n| position(n, per_log)).map(|p| p.1);
            if let (Some((_, now)), Some(newest)) = (position(&current, per_log), newest) {
                report.not_yet_archived = Some(now.saturating_sub(newest + 1));
            }
            report.server_current = Some(current);
        }
        Ok(report)
    }

    async fn server_segment(&self) -> Result<String> {
        let pg = self.backup_pg_config(&self.cfg.postgres.database);
        let client = crate::postgres::connect(&pg, crate::postgres::ConnectTarget::Primary).await?;
        let seg: String = client
            .query_one("select pg_walfile_name(pg_current_wal_lsn())", &[])
            .await
            .map_err(super::db_error("reading the current WAL segment".into()))?
            .get(0);
        wal::check_wal_name(&seg)?;
        Ok(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_runs_of_missing_positions_on_any_timeline() {
        let s = 16 << 20;
        let names: Vec<String> = [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000007",
            "00000001.history",
            "000000010000000000000004.00000028.backup",
            "0000000100000000000000FF",
            "000000020000000100000000",
            "000000020000000100000001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = find_gaps(&names[..3], "000000010000000000000003", s);
        assert_eq!(r.gaps, vec![("000000010000000000000005".into(), "000000010000000000000006".into())]);
        assert_eq!((r.missing, r.checked), (2, 5));
        assert!(!r.ok());
        // Across a log boundary and a timeline switch: nothing missing from FF on.
        let r = find_gaps(&names, "0000000100000000000000FF", s);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.newest_archived.as_deref(), Some("000000020000000100000001"));
        assert_eq!(r.checked, 3);
        // Nothing archived at all: the first segment is missing.
        assert_eq!(find_gaps(&[], "000000010000000000000003", s).missing, 1);
    }
}
