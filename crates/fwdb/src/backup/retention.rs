//! `fwdb backup prune`: the retention of 13.1 (full 30 days, incremental 7
//! days, a 7-day recovery window). Never deletes the newest full backup, a
//! backup that a kept diff or incr backup depends on, nor WAL that a kept
//! base backup needs.

use super::manifest::{BackupKind, Manifest};
use super::{wal, Backups};
use crate::error::Result;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneItem {
    /// A backup id, `wal/<name>`, or `backups/<id>/` of an interrupted run.
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub kept: Vec<PruneItem>,
    pub deleted: Vec<PruneItem>,
}

fn age_of(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Which backups to keep at `now`, with why; the rest go.
pub(crate) fn plan(
    all: &[Manifest],
    r: &crate::config::RetentionConfig,
    now: DateTime<Utc>,
) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let newest_full = all.iter().filter(|m| m.kind == BackupKind::Full).map(|m| m.id.clone()).next_back();
    let window_start = now - age_of(r.recovery_window);
    // The newest full backup taken before the window opens: PITR to the window's start needs it.
    let window_base = all
        .iter()
        .filter(|m| m.kind == BackupKind::Full && m.finished_at <= window_start)
        .map(|m| m.id.clone())
        .next_back();
    let newest_of = |k: BackupKind| all.iter().filter(|m| m.kind == k).map(|m| m.id.clone()).next_back();
    for m in all {
        let (keep, why) = match m.kind {
            BackupKind::Full => {
                if Some(&m.id) == newest_full.as_ref() {
                    (true, "the newest full backup".to_string())
                } else if m.started_at > now - age_of(r.full) {
                    (true, format!("younger than backup.retention.full ({})", humantime::format_duration(r.full)))
                } else if Some(&m.id) == window_base.as_ref() {
                    (true, "base of the recovery window".to_string())
                } else {
                    (false, format!("older than backup.retention.full ({})", humantime::format_duration(r.full)))
                }
            }
            k => {
                if Some(&m.id) == newest_of(k).as_ref() {
                    (true, format!("the newest {k} backup"))
                } else if m.started_at > now - age_of(r.incremental) {
                    (
                        true,
                        format!(
                            "younger than backup.retention.incremental ({})",
                            humantime::format_duration(r.incremental)
                        ),
                    )
                } else {
                    (
                        false,
                        format!(
                            "older than backup.retention.incremental ({})",
                            humantime::format_duration(r.incremental)
                        ),
                    )
                }
            }
        };
        out.push((m.id.clone(), keep, why));
    }
    keep_what_kept_ones_depend_on(all, &mut out);
    out
}

/// A kept diff or incr backup keeps its reference, and so on down to its full
/// backup, whatever their age: without them it cannot be restored.
fn keep_what_kept_ones_depend_on(all: &[Manifest], decisions: &mut [(String, bool, String)]) {
    let at: std::collections::HashMap<&str, usize> = all.iter().enumerate().map(|(i, m)| (m.id.as_str(), i)).collect();
    // Newest first: a reference is always older than what depends on it, so one pass reaches every link.
    for i in (0..all.len()).rev() {
        let (Some(parent), true) = (all[i].reference.as_deref(), decisions[i].1) else { continue };
        let Some(&p) = at.get(parent) else { continue };
        if !decisions[p].1 {
            decisions[p].1 = true;
            decisions[p].2 = format!("kept backup {} depends on it ({})", all[i].id, decisions[p].2);
        }
    }
}

impl Backups {
    pub async fn prune(&self, dry_run: bool, now: DateTime<Utc>) -> Result<PruneReport> {
        let all = self.list().await?;
        let mut report = PruneReport { dry_run, ..Default::default() };
        let decisions = plan(&all, &self.cfg.backup.retention, now);
        let kept_bases: Vec<&Manifest> = all
            .iter()
            .filter(|m| m.kind.is_physical() && decisions.iter().any(|(id, k, _)| *k && *id == m.id))
            .collect();
        for (id, keep, reason) in decisions {
            let item = PruneItem { what: id.clone(), reason };
            if keep {
                report.kept.push(item);
            } else {
                if !dry_run {
                    self.delete_backup(&id).await?;
                }
                report.deleted.push(item);
            }
        }
        // WAL before the oldest kept base backup's first segment is needed by no kept backup.
        let oldest_needed = kept_bases
            .iter()
            .filter_map(|m| m.start_wal.as_deref().and_then(wal::segment_position))
            .min()
            .map(str::to_string);
        if let Some(floor) = oldest_needed {
            for (name, _) in self.wal_list().await? {
                let Some(pos) = wal::segment_position(&name) else { continue };
                // Timeline history files are tiny and needed to follow timelines: kept.
                if name.ends_with(".history") || pos >= floor.as_str() {
                    continue;
                }
                if !dry_run {
                    self.st.delete(&wal::wal_key(&name)).await?;
                }
                report.deleted.push(PruneItem {
                    what: format!("wal/{name}"),
                    reason: format!("before {floor}, the first segment any kept base backup needs"),
                });
            }
        }
        // Interrupted runs: objects without a manifest, older than a day (a day: never a run in progress).
        let ids: std::collections::HashSet<String> = all.iter().map(|m| m.id.clone()).collect();
        let mut orphans: std::collections::BTreeMap<String, DateTime<Utc>> = Default::default();
        for l in self.st.list("backups").await? {
            let Some(id) = l.key.strip_prefix("backups/").and_then(|r| r.split('/').next()) else { continue };
            if !ids.contains(id) {
                let e = orphans.entry(id.to_string()).or_insert(l.modified);
                *e = (*e).max(l.modified);
            }
        }
        for (id, modified) in orphans {
            if modified < now - chrono::Duration::days(1) {
                if !dry_run {
                    for l in self.st.list(&format!("backups/{id}")).await? {
                        self.st.delete(&l.key).await?;
                    }
                }
                report
                    .deleted
                    .push(PruneItem { what: format!("backups/{id}/"), reason: "interrupted (no manifest)".into() });
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: BackupKind, days_ago: i64, now: DateTime<Utc>) -> Manifest {
        let at = now - chrono::Duration::days(days_ago);
        Manifest {
            format_version: 1,
            id: super::super::manifest::new_id(kind, at),
            kind,
            servers: vec![],
            versions: vec![],
            tool_version: String::new(),
            started_at: at,
            finished_at: at,
            start_lsn: None,
            stop_lsn: None,
            timeline: None,
            start_wal: None,
            databases: vec![],
            counts: Default::default(),
            counts_lsn: None,
            counts_note: None,
            wal_segment_size: None,
            system_id: None,
            objects: vec![],
            reference: None,
            files: vec![],
            encryption: String::new(),
            compression: String::new(),
        }
    }

    #[test]
    fn policy_keeps_what_13_1_promises() {
        let now = Utc::now();
        let r = crate::config::RetentionConfig::default();
        let all = vec![
            m(BackupKind::Full, 40, now),
            m(BackupKind::Full, 31, now),
            m(BackupKind::Full, 29, now),
            m(BackupKind::Full, 1, now),
            m(BackupKind::Logical, 8, now),
            m(BackupKind::Logical, 6, now),
            m(BackupKind::Mongo, 20, now),
        ];
        let d = plan(&all, &r, now);
        let keep: Vec<bool> = d.iter().map(|x| x.1).collect();
        assert_eq!(keep, vec![false, false, true, true, false, true, true], "{d:?}");
        // Only old full backups: the newest is kept whatever its age.
        let d = plan(&[m(BackupKind::Full, 90, now), m(BackupKind::Full, 60, now)], &r, now);
        assert_eq!(d.iter().map(|x| x.1).collect::<Vec<_>>(), vec![false, true]);
    }

    #[test]
    fn a_kept_incremental_keeps_its_whole_chain_and_says_so() {
        let now = Utc::now();
        let r = crate::config::RetentionConfig::default();
        let full = m(BackupKind::Full, 45, now);
        let mut diff = m(BackupKind::Diff, 40, now);
        diff.reference = Some(full.id.clone());
        let mut incr = m(BackupKind::Incr, 3, now);
        incr.reference = Some(diff.id.clone());
        let old_full = m(BackupKind::Full, 50, now);
        // The base of the recovery window, so that the chain's full backup has no other reason to stay.
        let window_base = m(BackupKind::Full, 20, now);
        let newest_full = m(BackupKind::Full, 1, now);
        let all = vec![old_full, full.clone(), diff.clone(), incr, window_base, newest_full];
        let d = plan(&all, &r, now);
        assert_eq!(d.iter().map(|x| x.1).collect::<Vec<_>>(), vec![false, true, true, true, true, true], "{d:?}");
        assert!(d[1].2.starts_with(&format!("kept backup {} depends on it", diff.id)), "{}", d[1].2);
    }
}
