//! What the backup schedule of this process did, job by job: written by the
//! schedule, read by the metrics collector and the status page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the schedule of this process did with one job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunState {
    pub job: String,
    pub running: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub last_detail: Option<String>,
    pub last_size_bytes: Option<u64>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub successes: u64,
    pub failures: u64,
}

/// The schedule's runs, shared by the schedule (writer) and the collector (reader).
#[derive(Debug, Default)]
pub struct BackupRuns {
    jobs: Mutex<BTreeMap<String, RunState>>,
}

impl BackupRuns {
    fn update(&self, job: &str, f: impl FnOnce(&mut RunState)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let st = jobs.entry(job.to_string()).or_insert_with(|| RunState { job: job.to_string(), ..Default::default() });
        f(st);
    }

    pub fn started(&self, job: &str) {
        self.update(job, |s| s.running = true);
    }

    pub fn succeeded(&self, job: &str, detail: &str, size: Option<u64>) {
        self.update(job, |s| {
            s.running = false;
            s.successes += 1;
            s.last_success = Some(Utc::now());
            s.last_detail = Some(detail.to_string());
            s.last_size_bytes = size;
        });
    }

    pub fn failed(&self, job: &str, error: &str) {
        self.update(job, |s| {
            s.running = false;
            s.failures += 1;
            s.last_failure = Some(Utc::now());
            s.last_error = Some(error.to_string());
        });
    }

    pub fn snapshot(&self) -> Vec<RunState> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}
