//! The schedule of 13.1 (full daily at 02:00 UTC, incremental every 6 hours;
//! logical and MongoDB dumps when configured; from `backup.schedule`), the
//! incremental step (an incr or diff base backup, or only the WAL up to now archived), a verify drill after each full
//! backup, and what the catalog says about the last success of each job, for
//! `fwdb backup status` and the `fwdb_backup_*` metrics.

use super::manifest::BackupKind;
use super::BackupRuns;
use super::{wal, Backups};
use crate::config::IncrementalType;
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Jobs whose last success is recorded in storage (`status/<job>.json`).
pub const JOBS: [&str; 5] = ["full", "incremental", "logical", "mongo", "verify"];

/// The catalog's view of a job (plus `wal`: the newest archived WAL file).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobStatus {
    pub job: String,
    pub last_success: Option<DateTime<Utc>>,
    /// What succeeded last (a backup id, a WAL segment).
    pub last_detail: Option<String>,
    /// Stored (compressed, encrypted) bytes of what succeeded last, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_size_bytes: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// `wal`: segments missing from the archive after the oldest kept base backup's first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_segments: Option<u64>,
}

impl JobStatus {
    fn empty(job: &str) -> JobStatus {
        JobStatus {
            job: job.into(),
            last_success: None,
            last_detail: None,
            last_size_bytes: None,
            last_error: None,
            last_error_at: None,
            missing_segments: None,
        }
    }
}

fn status_key(job: &str) -> String {
    format!("status/{job}.json")
}

/// The kinds of backup whose manifests count as a run of `job`.
fn kinds_of(job: &str) -> Vec<BackupKind> {
    match job {
        "incremental" => vec![BackupKind::Diff, BackupKind::Incr],
        other => other.parse().into_iter().collect(),
    }
}

impl Backups {
    async fn job_status(&self, job: &str) -> Result<JobStatus> {
        match self.st.get(&status_key(job)).await {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::new(ErrorKind::Validation, format!("{} is unreadable", status_key(job))).with_source(e)
            }),
            Err(e) if e.is_not_found() => Ok(JobStatus::empty(job)),
            Err(e) => Err(e),
        }
    }

    /// Records the outcome of a job run.
    pub(crate) async fn record(&self, job: &str, outcome: std::result::Result<String, String>) -> Result<()> {
        let mut s = self.job_status(job).await?;
        match outcome {
            Ok(detail) => {
                s.last_success = Some(Utc::now());
                s.last_detail = Some(detail);
            }
            Err(e) => {
                s.last_error = Some(e);
                s.last_error_at = Some(Utc::now());
            }
        }
        let json =
            serde_json::to_vec_pretty(&s).map_err(|e| Error::new(ErrorKind::Internal, "status").with_source(e))?;
        self.st.put(&status_key(job), json).await
    }

    /// The last success of each job, then `wal`. Backups count from their
    /// manifests even when taken by hand (`fwdb backup create` from cron); the
    /// incremental step and verify drills from their records.
    pub async fn status(&self) -> Result<Vec<JobStatus>> {
        let all = self.list().await?;
        let mut out = Vec::new();
        for job in JOBS {
            let mut s = self.job_status(job).await?;
            let kinds = kinds_of(job);
            let newest = all.iter().rev().find(|m| kinds.contains(&m.kind));
            if let Some(m) = newest {
                if s.last_success.is_none_or(|t| t <= m.finished_at) {
                    s.last_success = Some(m.finished_at);
                    s.last_detail = Some(m.id.clone());
                    s.last_size_bytes = Some(m.stored_size());
                }
            }
            out.push(s);
        }
        out.push(self.wal_status(&all).await?);
        Ok(out)
    }

    /// The newest WAL file in the archive, as a job: continuous archiving's
    /// last success; a gap after the oldest kept base backup is its failure.
    async fn wal_status(&self, all: &[super::Manifest]) -> Result<JobStatus> {
        let mut s = JobStatus::empty("wal");
        let listed = self.st.list("wal").await?;
        if let Some(newest) = listed.iter().max_by_key(|l| l.modified) {
            s.last_success = Some(newest.modified);
            s.last_detail = newest.key.strip_prefix("wal/").map(|k| k.trim_end_matches(".zst.age").to_string());
            s.last_size_bytes = Some(newest.size);
        }
        let oldest = all.iter().filter(|m| m.kind.is_physical()).find_map(|m| Some((m.start_wal.clone()?, m)));
        if let Some((from, m)) = oldest {
            let names: Vec<String> = listed
                .iter()
                .filter_map(|l| Some(l.key.strip_prefix("wal/")?.strip_suffix(".zst.age")?.to_string()))
                .collect();
            let r = super::wal_verify::find_gaps(&names, &from, m.wal_segment_size.unwrap_or(16 << 20));
            s.missing_segments = Some(r.missing);
            if let Some((a, z)) = r.gaps.first() {
                s.last_error =
                    Some(format!("{} WAL segments missing from the archive, the first gap {a} .. {z}", r.missing));
                s.last_error_at = Some(Utc::now());
            }
        }
        Ok(s)
    }

    /// The incremental step of 13.1: closes the current WAL segment so that
    /// everything written until now reaches the archive, and waits (up to
    /// `timeout`) until that segment is in storage. Returns its name.
    pub async fn incremental(&self, timeout: Duration) -> Result<String> {
        let pg = self.backup_pg_config(&self.cfg.postgres.database);
        let client = crate::postgres::connect(&pg, crate::postgres::ConnectTarget::Primary).await?;
        let seg: String = client
            .query_one("select pg_walfile_name(pg_switch_wal())", &[])
            .await
            .map_err(super::db_error("switching WAL (needs superuser or EXECUTE on pg_switch_wal)".into()))?
            .get(0);
        wal::check_wal_name(&seg)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.st.exists(&wal::wal_key(&seg)).await? {
                self.record("incremental", Ok(seg.clone())).await?;
                return Ok(seg);
            }
            if std::time::Instant::now() > deadline {
                let row = client
                    .query_one("select coalesce(last_failed_wal, ''), failed_count from pg_stat_archiver", &[])
                    .await?;
                let (failed, count): (String, i64) = (row.get(0), row.get(1));
                let msg = format!(
                    "WAL {seg} did not reach {} within {}s; is archive_command `fwdb wal push %p`? (archiver: {count} failures, last {failed})",
                    self.st.url,
                    timeout.as_secs()
                );
                let _ = self.record("incremental", Err(msg.clone())).await;
                return Err(Error::new(ErrorKind::Timeout, msg));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs one scheduled job, records it, and for full backups runs the verify drill.
    pub async fn run_job(&self, job: &str) -> Result<String> {
        self.run_job_observed(job, &BackupRuns::default()).await
    }

    /// [`run_job`](Self::run_job), telling `runs` (what `/metrics` shows) as each step ends.
    async fn run_job_observed(&self, job: &str, runs: &BackupRuns) -> Result<String> {
        runs.started(job);
        let outcome = self.take(job).await;
        match &outcome {
            Ok((detail, size)) => runs.succeeded(job, detail, *size),
            Err(e) => runs.failed(job, &e.to_string()),
        }
        // The WAL-only incremental step records itself (it knows the segment it waited for).
        if !self.incremental_is_wal_only(job) {
            let record = outcome.as_ref().map(|(d, _)| d.clone()).map_err(|e| e.to_string());
            if let Err(e) = self.record(job, record).await {
                tracing::warn!(job, error = %e, "could not record the job's outcome in storage");
            }
        }
        let (detail, _) = outcome?;
        if job == "full" {
            self.drill(&detail, runs).await?;
        }
        Ok(detail)
    }

    fn incremental_is_wal_only(&self, job: &str) -> bool {
        job == "incremental" && self.cfg.backup.schedule.incremental_type == IncrementalType::Wal
    }

    /// One job's work: (what succeeded, its stored size when known).
    async fn take(&self, job: &str) -> Result<(String, Option<u64>)> {
        let kind = match (job, self.cfg.backup.schedule.incremental_type) {
            ("incremental", IncrementalType::Wal) => {
                return self.incremental(Duration::from_secs(300)).await.map(|seg| (seg, None))
            }
            ("incremental", IncrementalType::Diff) => Some(BackupKind::Diff),
            ("incremental", IncrementalType::Incr) => Some(BackupKind::Incr),
            (other, _) => other.parse().ok().filter(|k| !matches!(k, BackupKind::Diff | BackupKind::Incr)),
        };
        match kind {
            Some(kind) => self.create(kind).await.map(|m| (m.id.clone(), Some(m.stored_size()))),
            None => {
                Err(Error::invalid_input(format!("`{job}` is not a scheduled job (full, incremental, logical, mongo)")))
            }
        }
    }

    /// The verify drill after a full backup: a backup that cannot be restored is a failure.
    async fn drill(&self, id: &str, runs: &BackupRuns) -> Result<()> {
        runs.started("verify");
        let drill =
            self.verify(id).await.map(|r| format!("{}: {} checks", r.id, r.checks.len())).map_err(|e| e.to_string());
        match &drill {
            Ok(d) => runs.succeeded("verify", d, None),
            Err(e) => runs.failed("verify", e),
        }
        self.record("verify", drill.clone()).await?;
        drill.map(|_| ()).map_err(|e| Error::new(ErrorKind::Validation, format!("verify drill of {id} failed: {e}")))
    }

    /// Runs the schedule until `stop` resolves. Each job's outcome is logged
    /// and recorded in storage; a failure does not stop the schedule.
    pub async fn run_schedule<F: std::future::Future<Output = ()>>(&self, stop: F) -> Result<()> {
        self.run_schedule_observed(stop, &BackupRuns::default()).await
    }

    /// [`run_schedule`](Self::run_schedule), also telling `runs` (what `/metrics` shows).
    pub async fn run_schedule_observed<F: std::future::Future<Output = ()>>(
        &self,
        stop: F,
        runs: &BackupRuns,
    ) -> Result<()> {
        let jobs = self.cfg.backup.schedule.jobs();
        for (job, cron) in &jobs {
            super::parse_cron(cron).map_err(|e| Error::invalid_input(format!("backup.schedule.{job}: {e}")))?;
        }
        tokio::pin!(stop);
        loop {
            let now = Utc::now();
            let Some((when, job)) = next_job(&jobs, now)? else {
                // Nothing scheduled: wait for the stop like a schedule that never fires.
                stop.as_mut().await;
                return Ok(());
            };
            tracing::info!(job, at = %when, "next scheduled backup");
            let wait = (when - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            match self.run_job_observed(job, runs).await {
                Ok(detail) => tracing::info!(job, detail, "scheduled backup done"),
                Err(e) => tracing::error!(job, error = %e, "scheduled backup failed"),
            }
        }
    }
}

/// The job that fires first after `now`. On a tie the earlier in `jobs` wins:
/// a full backup covers the incremental step due at the same time.
fn next_job<'a>(jobs: &[(&'a str, &str)], now: DateTime<Utc>) -> Result<Option<(DateTime<Utc>, &'a str)>> {
    let mut best: Option<(DateTime<Utc>, &'a str)> = None;
    for (job, cron) in jobs {
        let at = super::next_run(cron, now).map_err(Error::invalid_input)?;
        if best.is_none_or(|(b, _)| at < b) {
            best = Some((at, job));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_run_is_counted_recorded_in_storage_and_shown_as_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.backup.storage = format!("file://{}", dir.path().display());
        cfg.backup.encryption.passphrase = Some(crate::config::Secret::new("test only"));
        // No primary: the logical dump fails at once, as a real run fails on an unreachable server.
        cfg.postgres.primary.clear();
        let b = Backups::open(&cfg).unwrap();
        let runs = BackupRuns::default();
        assert!(b.run_job_observed("logical", &runs).await.is_err());
        let run = &runs.snapshot()[0];
        assert_eq!((run.job.as_str(), run.failures, run.successes, run.running), ("logical", 1, 0, false));
        // Recorded in storage too, so a restarted process still knows.
        let status = b.status().await.unwrap();
        let logical = status.iter().find(|s| s.job == "logical").unwrap();
        assert!(logical.last_success.is_none() && logical.last_error_at.is_some(), "{logical:?}");
        let text =
            crate::metrics::render_backups(&crate::metrics::merge_backups(&status, &runs.snapshot()), 0.0).unwrap();
        assert!(text.contains("fwdb_backup_failures_total{kind=\"logical\"} 1\n"), "{text}");
        assert!(text.contains("fwdb_backup_last_failure_timestamp_seconds{kind=\"logical\"}"), "{text}");
        assert!(!text.contains("fwdb_backup_last_success_timestamp_seconds{kind=\"logical\"}"), "{text}");
    }

    #[test]
    fn the_first_job_to_fire_runs_and_a_full_backup_wins_a_tie() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T05:59:58Z").unwrap().with_timezone(&Utc);
        let jobs = [("full", "0 6 * * *"), ("incremental", "0 */6 * * *"), ("logical", "*/5 * * * * *")];
        let (when, job) = next_job(&jobs, at).unwrap().unwrap();
        assert_eq!((when.to_rfc3339().as_str(), job), ("2026-11-25T06:00:00+00:00", "full"));
        let (when, job) = next_job(&jobs[2..], at).unwrap().unwrap();
        assert_eq!((when.to_rfc3339().as_str(), job), ("2026-11-25T06:00:00+00:00", "logical"));
        assert!(next_job(&[], at).unwrap().is_none());
        assert!(next_job(&[("full", "nonsense")], at).is_err());
    }
}
