//! The schedule of 13.1 (full daily at 02:00 UTC, incremental every 6 hours,
//! from `backup.schedule`), the incremental step (WAL up to now archived),
//! a verify drill after each full backup, and the time and age of the last
//! success of each as metrics.

use super::manifest::BackupKind;
use super::{wal, Backups};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Jobs whose last success is recorded.
pub const JOBS: [&str; 5] = ["full", "incremental", "logical", "mongo", "verify"];

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobStatus {
    pub job: String,
    pub last_success: Option<DateTime<Utc>>,
    /// What succeeded last (a backup id, a WAL segment).
    pub last_detail: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

fn status_key(job: &str) -> String {
    format!("status/{job}.json")
}

impl Backups {
    async fn job_status(&self, job: &str) -> Result<JobStatus> {
        match self.st.get(&status_key(job)).await {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::new(ErrorKind::Validation, format!("{} is unreadable", status_key(job))).with_source(e)),
            Err(e) if e.is_not_found() => Ok(JobStatus { job: job.into(), last_success: None, last_detail: None, last_error: None, last_error_at: None }),
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
        let json = serde_json::to_vec_pretty(&s).map_err(|e| Error::new(ErrorKind::Internal, "status").with_source(e))?;
        self.st.put(&status_key(job), json).await
    }

    /// The last success of each job. Backups count from their manifests even
    /// when taken by hand; the incremental step and verify drills from their records.
    pub async fn status(&self) -> Result<Vec<JobStatus>> {
        let all = self.list().await?;
        let mut out = Vec::new();
        for job in JOBS {
            let mut s = self.job_status(job).await?;
            let kind = match job {
                "full" => Some(BackupKind::Full),
                "logical" => Some(BackupKind::Logical),
                "mongo" => Some(BackupKind::Mongo),
                _ => None,
            };
            if let Some(k) = kind {
                if let Some(m) = all.iter().rev().find(|m| m.kind == k) {
                    if s.last_success.is_none_or(|t| t < m.finished_at) {
                        s.last_success = Some(m.finished_at);
                        s.last_detail = Some(m.id.clone());
                    }
                }
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Prometheus text: `fwdb_backup_last_success_timestamp_seconds{job}` and `..._age_seconds{job}`.
    pub async fn metrics(&self, now: DateTime<Utc>) -> Result<String> {
        let status = self.status().await?;
        let mut t = String::from(
            "# HELP fwdb_backup_last_success_timestamp_seconds Unix time of the last successful backup job.\n\
             # TYPE fwdb_backup_last_success_timestamp_seconds gauge\n",
        );
        for s in &status {
            if let Some(at) = s.last_success {
                t.push_str(&format!("fwdb_backup_last_success_timestamp_seconds{{job=\"{}\"}} {}\n", s.job, at.timestamp()));
            }
        }
        t.push_str(
            "# HELP fwdb_backup_last_success_age_seconds Seconds since the last successful backup job.\n\
             # TYPE fwdb_backup_last_success_age_seconds gauge\n",
        );
        for s in &status {
            if let Some(at) = s.last_success {
                t.push_str(&format!("fwdb_backup_last_success_age_seconds{{job=\"{}\"}} {}\n", s.job, (now - at).num_seconds().max(0)));
            }
        }
        let wal = self.wal_list().await?;
        t.push_str("# HELP fwdb_backup_wal_archived_files WAL files in the archive.\n# TYPE fwdb_backup_wal_archived_files gauge\n");
        t.push_str(&format!("fwdb_backup_wal_archived_files {}\n", wal.len()));
        Ok(t)
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
                let row = client.query_one("select coalesce(last_failed_wal, ''), failed_count from pg_stat_archiver", &[]).await?;
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
        let outcome = match job {
            "full" => self.create(BackupKind::Full).await.map(|m| m.id),
            "incremental" => self.incremental(Duration::from_secs(300)).await,
            other => return Err(Error::validation(format!("`{other}` is not a scheduled job (full, incremental)"))),
        };
        match &outcome {
            Ok(detail) => {
                if job != "incremental" {
                    self.record(job, Ok(detail.clone())).await?;
                }
                if job == "full" {
                    let drill = self.verify(detail).await.map(|r| format!("{}: {} checks", r.id, r.checks.len())).map_err(|e| e.to_string());
                    self.record("verify", drill.clone()).await?;
                    if let Err(e) = drill {
                        return Err(Error::new(ErrorKind::Validation, format!("verify drill of {detail} failed: {e}")));
                    }
                }
            }
            Err(e) => {
                if job != "incremental" {
                    let _ = self.record(job, Err(e.to_string())).await;
                }
            }
        }
        outcome
    }

    /// Runs the schedule until `stop` resolves. Each job's outcome is logged
    /// and recorded; a failure does not stop the schedule.
    pub async fn run_schedule<F: std::future::Future<Output = ()>>(&self, stop: F) -> Result<()> {
        let s = &self.cfg.backup.schedule;
        super::parse_cron(&s.full).map_err(Error::validation)?;
        super::parse_cron(&s.incremental).map_err(Error::validation)?;
        tokio::pin!(stop);
        loop {
            let now = Utc::now();
            let nf = super::next_run(&s.full, now).map_err(Error::validation)?;
            let ni = super::next_run(&s.incremental, now).map_err(Error::validation)?;
            // When both fire together the full backup covers the incremental step.
            let (when, job) = if nf <= ni { (nf, "full") } else { (ni, "incremental") };
            tracing::info!(job, at = %when, "next scheduled backup");
            let wait = (when - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            match self.run_job(job).await {
                Ok(detail) => tracing::info!(job, detail, "scheduled backup done"),
                Err(e) => tracing::error!(job, error = %e, "scheduled backup failed"),
            }
        }
    }
}
