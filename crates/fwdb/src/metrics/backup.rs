//! Backup metrics: the last success (time, age, size) and the failures of each
//! backup job, from two sources merged at scrape time:
//! - [`crate::backup::BackupRuns`], what the schedule inside this process did (it knows its
//!   failures, which leave no manifest);
//! - [`BackupCatalog`], what the storage says (manifests, status records, WAL),
//!   so that backups taken outside (`fwdb backup create` from cron) count too.
//!   Reading a catalog on S3 costs one request per backup: it is cached and
//!   refreshed in the background, so a slow bucket never makes a scrape slow.

use super::exposition::{expose, flag, Out, Res};
use crate::backup::{Backups, JobStatus, RunState};
use crate::error::Result;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a catalog read stays fresh: backups are hours apart, and an S3 LIST costs money.
pub const CATALOG_MAX_AGE: Duration = Duration::from_secs(60);
/// The longest a catalog read may take before it is given up (its flag would otherwise stay set).
const CATALOG_READ_LIMIT: Duration = Duration::from_secs(120);
/// The order in which jobs are shown.
const ORDER: [&str; 6] = ["full", "incremental", "logical", "mongo", "verify", "wal"];

/// Prometheus text of the catalog alone (`fwdb backup metrics`, e.g. for
/// node_exporter's textfile collector): the same `fwdb_backup_*` families as `/metrics`.
pub async fn backup_catalog_text(backups: &Backups, now: DateTime<Utc>) -> Result<String> {
    let status = backups.status().await?;
    render_backups(&merge_backups(&status, &[]), now.timestamp_millis() as f64 / 1000.0)
}

/// One read of the catalog.
#[derive(Debug, Clone)]
pub struct CatalogView {
    pub read_at: Instant,
    /// The last good read (kept when a later read fails).
    pub jobs: Vec<JobStatus>,
    pub error: Option<String>,
}

type Loader = Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<JobStatus>>> + Send + Sync>;

/// The storage catalog, read at most every `max_age`, in the background.
#[derive(Clone)]
pub struct BackupCatalog {
    load: Loader,
    view: Arc<tokio::sync::watch::Sender<Option<Arc<CatalogView>>>>,
    reading: Arc<AtomicBool>,
    max_age: Duration,
}

impl BackupCatalog {
    /// The catalog of `backups` (`Backups::status`), fresh for [`CATALOG_MAX_AGE`].
    pub fn of(backups: Arc<Backups>) -> BackupCatalog {
        BackupCatalog::with_loader(CATALOG_MAX_AGE, move || {
            let b = backups.clone();
            Box::pin(async move { b.status().await })
        })
    }

    /// A catalog read by `load` (tests give a loader of their own).
    pub fn with_loader(
        max_age: Duration,
        load: impl Fn() -> BoxFuture<'static, Result<Vec<JobStatus>>> + Send + Sync + 'static,
    ) -> BackupCatalog {
        let (tx, _) = tokio::sync::watch::channel(None);
        BackupCatalog { load: Arc::new(load), view: Arc::new(tx), reading: Arc::new(AtomicBool::new(false)), max_age }
    }

    /// The freshest view there is, without holding a scrape: a fresh view at
    /// once; a stale one at once too, while a read refreshes it in the
    /// background for the next scrape. Only the call that starts the very first
    /// read waits for it, at most `wait`; so a hung bucket costs one scrape
    /// `wait`, and later scrapes show "not read yet" until it answers.
    pub async fn view(&self, wait: Duration) -> Option<Arc<CatalogView>> {
        // Subscribed before looking, so a read that ends after the look is seen as a change.
        let mut rx = self.view.subscribe();
        let current = rx.borrow_and_update().clone();
        if current.as_ref().is_some_and(|v| v.read_at.elapsed() < self.max_age) {
            return current;
        }
        let started = self.refresh();
        if current.is_some() || !started {
            return current;
        }
        match tokio::time::timeout(wait, rx.changed()).await {
            Ok(Ok(())) => rx.borrow().clone(),
            _ => current,
        }
    }

    /// Starts a read in the background unless one is running; true when this call started it.
    pub fn refresh(&self) -> bool {
        if self.reading.swap(true, Ordering::AcqRel) {
            return false;
        }
        let (load, view, reading) = (self.load.clone(), self.view.clone(), self.reading.clone());
        let previous = view.borrow().as_ref().map(|v| v.jobs.clone()).unwrap_or_default();
        tokio::spawn(async move {
            let (jobs, error) = match tokio::time::timeout(CATALOG_READ_LIMIT, load()).await {
                Ok(Ok(jobs)) => (jobs, None),
                Ok(Err(e)) => (previous, Some(e.to_string())),
                Err(_) => {
                    (previous, Some(format!("reading the backup catalog took over {} s", CATALOG_READ_LIMIT.as_secs())))
                }
            };
            view.send_replace(Some(Arc::new(CatalogView { read_at: Instant::now(), jobs, error })));
            reading.store(false, Ordering::Release);
        });
        true
    }
}

/// One job as `/metrics` shows it: the newest of what the catalog and the schedule know.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BackupGauge {
    /// full, incremental, logical, mongo, verify (the drill after a full backup) or wal.
    pub kind: String,
    /// Unix seconds.
    pub last_success: Option<f64>,
    pub last_detail: Option<String>,
    pub last_size_bytes: Option<u64>,
    /// Unix seconds of the last failure (the schedule's, or recorded in storage).
    pub last_failure: Option<f64>,
    pub last_error: Option<String>,
    /// Failed runs of this process's schedule.
    pub failures: u64,
    pub running: bool,
    /// `wal`: segments missing from the archive (a gap breaks point-in-time recovery).
    pub missing_segments: Option<u64>,
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn later(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Merges the catalog's jobs and the schedule's runs, one gauge per job known to either.
pub fn merge_backups(catalog: &[JobStatus], runs: &[RunState]) -> Vec<BackupGauge> {
    let mut out: BTreeMap<String, BackupGauge> = BTreeMap::new();
    for c in catalog {
        let g = out.entry(c.job.clone()).or_insert_with(|| BackupGauge { kind: c.job.clone(), ..Default::default() });
        g.last_success = c.last_success.map(unix);
        g.last_detail = c.last_detail.clone();
        g.last_size_bytes = c.last_size_bytes;
        g.last_failure = c.last_error_at.map(unix);
        g.last_error = c.last_error.clone();
        g.missing_segments = c.missing_segments;
    }
    for r in runs {
        let g = out.entry(r.job.clone()).or_insert_with(|| BackupGauge { kind: r.job.clone(), ..Default::default() });
        let ours = r.last_success.map(unix);
        if ours.is_some() && later(ours, g.last_success) == ours {
            g.last_detail = r.last_detail.clone();
            g.last_size_bytes = r.last_size_bytes;
        }
        g.last_success = later(ours, g.last_success);
        let failed = r.last_failure.map(unix);
        if failed.is_some() && later(failed, g.last_failure) == failed {
            g.last_error = r.last_error.clone();
        }
        g.last_failure = later(failed, g.last_failure);
        g.failures = r.failures;
        g.running = r.running;
    }
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
    let mut v: Vec<BackupGauge> =
        out.into_values().filter(|g| g.last_success.is_some() || g.last_failure.is_some() || g.running).collect();
    v.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(a.kind.cmp(&b.kind)));
    v
}

/// The `fwdb_backup_*` families; `now` in Unix seconds gives the ages.
pub(super) fn write_backups(o: &mut Out<'_>, gauges: &[BackupGauge], now: f64) -> Res {
    let successes: Vec<(&BackupGauge, f64)> = gauges.iter().filter_map(|g| g.last_success.map(|t| (g, t))).collect();
    let mut f =
        o.gauges("fwdb_backup_last_success_timestamp_seconds", "Unix time of the last successful backup, by kind.")?;
    for (g, t) in &successes {
        f.sample(&[("kind", &g.kind)], *t)?;
    }
    let mut f =
        o.gauges("fwdb_backup_last_success_age_seconds", "Seconds since the last successful backup, by kind.")?;
    for (g, t) in &successes {
        f.sample(&[("kind", &g.kind)], (now - t).max(0.0))?;
    }
    let help = "Stored (compressed, encrypted) size of the last successful backup, by kind.";
    let mut f = o.gauges("fwdb_backup_last_size_bytes", help)?;
    for (g, n) in gauges.iter().filter_map(|g| g.last_size_bytes.map(|n| (g, n))) {
        f.sample(&[("kind", &g.kind)], n)?;
    }
    let mut f =
        o.gauges("fwdb_backup_last_failure_timestamp_seconds", "Unix time of the last failed backup, by kind.")?;
    for (g, t) in gauges.iter().filter_map(|g| g.last_failure.map(|t| (g, t))) {
        f.sample(&[("kind", &g.kind)], t)?;
    }
    let mut f = o.counters("fwdb_backup_failures", "Backups of this process's schedule that failed, by kind.")?;
    for g in gauges {
        f.sample(&[("kind", &g.kind)], g.failures)?;
    }
    let mut f = o.gauges("fwdb_backup_running", "1 while the schedule runs a backup of this kind.")?;
    for g in gauges {
        f.sample(&[("kind", &g.kind)], flag(g.running))?;
    }
    // Only once the catalog knows a base backup to count from: no empty family.
    let missing: Vec<u64> = gauges.iter().filter_map(|g| g.missing_segments).collect();
    if !missing.is_empty() {
        let help =
            "WAL segments missing from the archive after the oldest kept base backup's first one (alert above 0).";
        let mut f = o.gauges("fwdb_backup_wal_missing_segments", help)?;
        for n in missing {
            f.sample(&[], n)?;
        }
    }
    Ok(())
}

/// The `fwdb_backup_*` families alone, in the Prometheus text format.
pub fn render_backups(gauges: &[BackupGauge], now: f64) -> Result<String> {
    expose((gauges.to_vec(), now), |o, (gauges, now)| write_backups(o, gauges, *now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupRuns;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn catalog_full(t: &str, id: &str, size: u64) -> JobStatus {
        JobStatus {
            job: "full".into(),
            last_success: Some(at(t)),
            last_detail: Some(id.into()),
            last_size_bytes: Some(size),
            last_error: None,
            last_error_at: None,
            missing_segments: None,
        }
    }

    #[test]
    fn the_newest_success_wins_and_the_schedules_failures_are_counted() {
        // The catalog knows a backup taken by cron at 03:00; the schedule failed at 02:00 and succeeded at 02:30.
        let catalog = vec![catalog_full("2026-11-25T03:00:00Z", "cron", 700)];
        let runs = vec![RunState {
            job: "full".into(),
            last_success: Some(at("2026-11-25T02:30:00Z")),
            last_detail: Some("scheduled".into()),
            last_size_bytes: Some(500),
            last_failure: Some(at("2026-11-25T02:00:00Z")),
            last_error: Some("disk full".into()),
            failures: 1,
            successes: 1,
            running: false,
        }];
        let g = merge_backups(&catalog, &runs);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].last_success, Some(unix(at("2026-11-25T03:00:00Z"))));
        assert_eq!((g[0].last_detail.as_deref(), g[0].last_size_bytes), (Some("cron"), Some(700)));
        assert_eq!((g[0].failures, g[0].last_error.as_deref()), (1, Some("disk full")));

        // A newer scheduled run wins over the (stale) catalog.
        let mut newer = runs.clone();
        newer[0].last_success = Some(at("2026-11-25T04:00:00Z"));
        let g = merge_backups(&catalog, &newer);
        assert_eq!((g[0].last_detail.as_deref(), g[0].last_size_bytes), (Some("scheduled"), Some(500)));

        let now = unix(at("2026-11-25T05:00:00Z"));
        let text = render_backups(&g, now).unwrap();
        assert!(text.contains("fwdb_backup_last_success_timestamp_seconds{kind=\"full\"} 1795579200.0\n"), "{text}");
        assert!(text.contains("fwdb_backup_last_success_age_seconds{kind=\"full\"} 3600.0\n"), "{text}");
        assert!(text.contains("fwdb_backup_last_size_bytes{kind=\"full\"} 500\n"), "{text}");
        assert!(text.contains("fwdb_backup_last_failure_timestamp_seconds{kind=\"full\"} 1795572000.0\n"), "{text}");
        assert!(text.contains("fwdb_backup_failures_total{kind=\"full\"} 1\n"), "{text}");
    }

    #[test]
    fn jobs_never_run_are_left_out_and_the_order_is_stable() {
        let mut empty = catalog_full("2026-11-25T03:00:00Z", "x", 1);
        empty.job = "logical".into();
        empty.last_success = None;
        let runs = BackupRuns::default();
        runs.failed("mongo", "no server");
        runs.succeeded("wal", "000000010000000000000003", Some(10));
        let g = merge_backups(&[catalog_full("2026-11-25T03:00:00Z", "x", 1), empty], &runs.snapshot());
        let kinds: Vec<&str> = g.iter().map(|g| g.kind.as_str()).collect();
        assert_eq!(kinds, ["full", "mongo", "wal"]);
        assert_eq!((g[1].failures, g[1].last_success), (1, None));
    }

    /// A catalog whose reads wait for the gate `open`, counting them.
    fn gated(
        max_age: Duration,
        open: &tokio::sync::watch::Receiver<bool>,
        loads: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> BackupCatalog {
        let (open, loads) = (open.clone(), loads.clone());
        BackupCatalog::with_loader(max_age, move || {
            let mut gate = open.clone();
            let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                // Like a bucket that does not answer until the test says so.
                let _ = gate.wait_for(|open| *open).await;
                Ok(vec![catalog_full("2026-11-25T03:00:00Z", &format!("read {n}"), 1)])
            })
        })
    }

    /// Polls until the catalog shows a view whose detail passes `want` (reads run on other tasks).
    async fn until_read(catalog: &BackupCatalog, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..10_000 {
            let detail = catalog.view(Duration::ZERO).await.and_then(|v| v.jobs[0].last_detail.clone());
            if let Some(d) = detail.filter(|d| want(d)) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the catalog never showed the read expected");
    }

    #[tokio::test]
    async fn a_slow_catalog_does_not_hold_scrapes_and_reads_are_cached() {
        let (open_tx, open_rx) = tokio::sync::watch::channel(false);
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let catalog = gated(Duration::from_secs(3600), &open_rx, &loads);
        // The first read hangs: the scrape that started it gives up, the next ones do not wait at all.
        assert!(catalog.view(Duration::from_millis(20)).await.is_none());
        assert!(catalog.view(Duration::from_secs(3600)).await.is_none(), "a scrape waited for a read it did not start");
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one read at a time");
        open_tx.send_replace(true);
        until_read(&catalog, |d| d == "read 1").await;
        // Fresh: answered from the cache, no second read.
        assert!(catalog.view(Duration::ZERO).await.is_some());
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_view_is_shown_at_once_while_a_read_refreshes_it() {
        let (open_tx, open_rx) = tokio::sync::watch::channel(true);
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let catalog = gated(Duration::ZERO, &open_rx, &loads);
        until_read(&catalog, |d| d == "read 1").await;
        open_tx.send_replace(false);
        // Stale (max_age 0) and the bucket hangs: the old view comes back without waiting for the new read.
        let old = catalog
            .view(Duration::from_secs(3600))
            .await
            .and_then(|v| v.jobs[0].last_detail.clone())
            .expect("the stale view");
        open_tx.send_replace(true);
        // The read started in the background ends and replaces it.
        until_read(&catalog, |d| d != old).await;
    }
}
