//! The store-independent rules: what to run, in which order, what to refuse,
//! and what to record. The PostgreSQL and MongoDB backends only know how to
//! lock, run a script and read or write their history.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use super::history::{runner_id, HistoryEntry, Outcome};
use super::lint::LintFinding;
use super::names::Direction;
use super::plan::{compute, describe_drift, MigrationStatus, State, Status};
use super::source::{Migration, MigrationSet, Script, Store};
use crate::error::{Error, ErrorKind, Result};

/// Progress while a command runs (waiting for the lock, each migration).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    WaitingForLock { store: Store, holder: String },
    LockAcquired { store: Store },
    Started { store: Store, version: i64, name: String, direction: Direction, index: usize, total: usize },
    Finished { store: Store, version: i64, name: String, direction: Direction, duration_ms: i64 },
}

pub(crate) type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

pub(crate) fn emit(sink: &Option<EventSink>, e: Event) {
    if let Some(f) = sink {
        f(&e);
    }
}

/// Options of `up`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Apply pending migrations up to and including this version only.
    pub to: Option<i64>,
    /// Run migrations the lint flags. The CLI sets it outside production.
    pub allow_destructive: bool,
    /// Run a failed (non-transactional) migration again, after its leftovers are cleaned up.
    pub retry_failed: bool,
}

/// Options of `down`.
#[derive(Debug, Clone)]
pub struct DownOptions {
    /// How many migrations to revert, newest first.
    pub steps: usize,
    pub allow_destructive: bool,
}

impl Default for DownOptions {
    fn default() -> Self {
        DownOptions { steps: 1, allow_destructive: false }
    }
}

/// What `up` or `down` ran.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub store: Store,
    pub ran: Vec<Ran>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    pub duration_ms: i64,
}

/// What `up` would do, without doing it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub store: Store,
    pub steps: Vec<PlanStep>,
    /// Why `up` would refuse to run (drift, a failed migration, flagged statements).
    pub blocked: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub version: i64,
    pub name: String,
    pub file: String,
    pub no_transaction: bool,
    /// Older than a migration already applied (merged from a branch).
    pub out_of_order: bool,
    pub findings: Vec<LintFinding>,
}

/// What a store must provide.
#[allow(async_fn_in_trait)]
pub(crate) trait Backend {
    fn store(&self) -> Store;
    async fn lock(&self, events: &Option<EventSink>) -> Result<()>;
    async fn unlock(&self) -> Result<()>;
    /// Fails when the lock was lost (connection closed, lease taken over).
    fn check_lock(&self) -> Result<()>;
    async fn ensure_history(&self) -> Result<()>;
    /// The history, empty when it does not exist yet; never creates it.
    async fn history(&self) -> Result<Vec<HistoryEntry>>;
    async fn record(&self, entry: &HistoryEntry) -> Result<()>;
    /// Whether `run_atomic` can run this script and its history row in one transaction.
    fn is_atomic(&self, script: &Script) -> bool;
    /// Runs the script and records `entry` (its duration filled in) in one transaction.
    async fn run_atomic(&self, script: &Script, entry: HistoryEntry) -> Result<()>;
    /// Runs the script's statements one after the other.
    async fn run_plain(&self, script: &Script) -> Result<()>;
    /// What a failed non-transactional script may have left behind, each with its fix.
    async fn leftovers(&self) -> Result<Vec<String>>;
    /// Whether a script whose runner died mid-way may simply run again
    /// (MongoDB: its commands tolerate "already exists"/"not found").
    fn retries_interrupted(&self) -> bool {
        false
    }
}

/// Runs `body` while holding the store's migration lock, and always releases it.
macro_rules! locked {
    ($b:expr, $events:expr, $body:expr) => {{
        $b.lock($events).await?;
        let result = $body.await;
        let unlocked = $b.unlock().await;
        let value = result?;
        unlocked?;
        Ok(value)
    }};
}

pub(crate) async fn status<B: Backend>(b: &B, set: &MigrationSet) -> Result<Status> {
    Ok(compute(set, &b.history().await?))
}

pub(crate) async fn plan<B: Backend>(b: &B, set: &MigrationSet, opts: &UpOptions) -> Result<Plan> {
    let status = status(b, set).await?;
    let retry = b.retries_interrupted();
    let steps = pending_steps(set, &status, opts, retry);
    let blocked = refusal(&status, opts, retry)
        .err()
        .or_else(|| check_destructive(steps.iter().map(|m| &m.up), opts.allow_destructive, "up").err())
        .map(|e| e.to_string());
    let newest = status.current_version().unwrap_or(i64::MIN);
    let steps = steps
        .into_iter()
        .map(|m| PlanStep {
            version: m.version,
            name: m.name.clone(),
            file: m.up.path.clone(),
            no_transaction: m.up.no_transaction,
            out_of_order: m.version < newest,
            findings: m.up.findings.clone(),
        })
        .collect();
    Ok(Plan { store: set.store(), steps, blocked })
}

pub(crate) async fn up<B: Backend>(
    b: &B,
    set: &MigrationSet,
    opts: &UpOptions,
    ev: &Option<EventSink>,
) -> Result<Report> {
    locked!(b, ev, up_locked(b, set, opts, ev))
}

async fn up_locked<B: Backend>(b: &B, set: &MigrationSet, opts: &UpOptions, ev: &Option<EventSink>) -> Result<Report> {
    b.ensure_history().await?;
    let history = b.history().await?;
    let status = compute(set, &history);
    let retry = b.retries_interrupted();
    if let Err(e) = refusal(&status, opts, retry) {
        return Err(with_failure_guidance(b, &status, e).await);
    }
    if opts.retry_failed {
        refuse_leftovers(b).await?;
    }
    let steps = pending_steps(set, &status, opts, retry);
    check_destructive(steps.iter().map(|m| &m.up), opts.allow_destructive, "up")?;
    let mut run = Runner { b, ev, seq: next_seq(&history), runner: runner_id(), total: steps.len() };
    let mut ran = Vec::new();
    for (i, m) in steps.into_iter().enumerate() {
        ran.push(run.apply(m, Direction::Up, i).await?);
    }
    Ok(Report { store: set.store(), ran })
}

pub(crate) async fn down<B: Backend>(
    b: &B,
    set: &MigrationSet,
    opts: &DownOptions,
    ev: &Option<EventSink>,
) -> Result<Report> {
    locked!(b, ev, down_locked(b, set, opts, ev))
}

async fn down_locked<B: Backend>(
    b: &B,
    set: &MigrationSet,
    opts: &DownOptions,
    ev: &Option<EventSink>,
) -> Result<Report> {
    b.ensure_history().await?;
    let history = b.history().await?;
    let status = compute(set, &history);
    let strict = UpOptions { retry_failed: false, ..UpOptions::default() };
    if let Err(e) = refusal(&status, &strict, false) {
        return Err(with_failure_guidance(b, &status, e).await);
    }
    let mut in_effect: Vec<&MigrationStatus> =
        status.migrations.iter().filter(|m| m.outcome.is_some_and(Outcome::is_in_effect)).collect();
    in_effect.sort_by_key(|m| std::cmp::Reverse(m.version));
    let mut targets = Vec::new();
    for m in in_effect.into_iter().take(opts.steps) {
        targets.push(revertible(set, m)?);
    }
    check_destructive(targets.iter().map(|m| &m.down), opts.allow_destructive, "down")?;
    let mut run = Runner { b, ev, seq: next_seq(&history), runner: runner_id(), total: targets.len() };
    let mut ran = Vec::new();
    for (i, m) in targets.into_iter().enumerate() {
        ran.push(run.apply(m, Direction::Down, i).await?);
    }
    Ok(Report { store: set.store(), ran })
}

fn revertible<'s>(set: &'s MigrationSet, m: &MigrationStatus) -> Result<&'s Migration> {
    if m.outcome == Some(Outcome::Baseline) {
        return Err(migration_error(format!(
            "{}_{} was recorded by baseline: its up never ran here, so fwdb will not run its down",
            m.version, m.name
        )));
    }
    set.get(m.version).ok_or_else(|| {
        migration_error(format!(
            "version {} ({}) is applied but this build has no file for it (applied by a newer release?); run down from that release",
            m.version, m.name
        ))
    })
}

/// `verify`: fails on drift or a failed migration, naming the files.
pub(crate) async fn verify<B: Backend>(b: &B, set: &MigrationSet) -> Result<Status> {
    let status = status(b, set).await?;
    match refusal(&status, &UpOptions::default(), b.retries_interrupted()) {
        Ok(()) => Ok(status),
        Err(e) => Err(with_failure_guidance(b, &status, e).await),
    }
}

/// `repair --accept VERSION --reason`: accepts a changed file's new checksum,
/// or records a failed migration as finished by hand.
pub(crate) async fn repair<B: Backend>(
    b: &B,
    set: &MigrationSet,
    version: i64,
    reason: &str,
    ev: &Option<EventSink>,
) -> Result<MigrationStatus> {
    if reason.trim().is_empty() {
        return Err(Error::invalid_input("repair needs --reason: say why the change is accepted"));
    }
    locked!(b, ev, async {
        b.ensure_history().await?;
        let history = b.history().await?;
        let status = compute(set, &history);
        let m = status
            .migrations
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| migration_error(format!("no migration with version {version} in {}", set.store())))?;
        if !matches!(m.state, State::Changed | State::Failed) {
            return Err(migration_error(format!(
                "{}_{} is {:?}: only a changed or failed migration can be repaired",
                m.version, m.name, m.state
            )));
        }
        let mig = set.get(version).ok_or_else(|| migration_error(format!("no file for version {version}")))?;
        let entry = HistoryEntry {
            seq: next_seq(&history),
            outcome: Outcome::Repaired,
            reason: Some(reason.trim().to_owned()),
            ..entry_for(mig, Outcome::Repaired, &runner_id())
        };
        b.record(&entry).await?;
        let after = compute(set, &b.history().await?);
        after
            .migrations
            .into_iter()
            .find(|m| m.version == version)
            .ok_or_else(|| migration_error("repair: row vanished"))
    })
}

/// `baseline VERSION`: records every migration up to VERSION as applied,
/// without running it, in a database that existed before fwdb.
pub(crate) async fn baseline<B: Backend>(
    b: &B,
    set: &MigrationSet,
    version: i64,
    reason: Option<&str>,
    ev: &Option<EventSink>,
) -> Result<usize> {
    if set.get(version).is_none() {
        return Err(migration_error(format!("no {} migration has version {version}", set.store())));
    }
    locked!(b, ev, async {
        b.ensure_history().await?;
        let history = b.history().await?;
        if !history.is_empty() {
            return Err(migration_error(format!(
                "baseline is for a database fwdb has never migrated, and {} already has {} history rows",
                set.store(),
                history.len()
            )));
        }
        let runner = runner_id();
        let mut seq = 1;
        for m in set.migrations().iter().filter(|m| m.version <= version) {
            let reason = reason.unwrap_or("baseline: the database predates fwdb").to_owned();
            b.record(&HistoryEntry { seq, reason: Some(reason), ..entry_for(m, Outcome::Baseline, &runner) }).await?;
            seq += 1;
        }
        Ok((seq - 1) as usize)
    })
}

/// Runs migrations one by one, numbering history rows as it goes.
struct Runner<'r, B> {
    b: &'r B,
    ev: &'r Option<EventSink>,
    seq: i64,
    runner: String,
    total: usize,
}

impl<B: Backend> Runner<'_, B> {
    async fn apply(&mut self, m: &Migration, dir: Direction, index: usize) -> Result<Ran> {
        self.b.check_lock()?;
        let (script, outcome) = match dir {
            Direction::Up => (&m.up, Outcome::Applied),
            Direction::Down => (&m.down, Outcome::Reverted),
        };
        let store = self.b.store();
        emit(
            self.ev,
            Event::Started {
                store,
                version: m.version,
                name: m.name.clone(),
                direction: dir,
                index,
                total: self.total,
            },
        );
        let started = Instant::now();
        let entry = HistoryEntry { seq: self.seq, ..entry_for(m, outcome, &self.runner) };
        if self.b.is_atomic(script) {
            self.b.run_atomic(script, entry).await?;
            self.seq += 1;
        } else {
            self.run_non_atomic(script, entry, started).await?;
        }
        let duration_ms = elapsed_ms(started);
        emit(self.ev, Event::Finished { store, version: m.version, name: m.name.clone(), direction: dir, duration_ms });
        Ok(Ran { version: m.version, name: m.name.clone(), direction: dir, duration_ms })
    }

    /// A `started` row first, so that a runner dying mid-way leaves a trace
    /// the next run reports, instead of silently re-running the script.
    async fn run_non_atomic(&mut self, script: &Script, entry: HistoryEntry, started: Instant) -> Result<()> {
        self.b.record(&HistoryEntry { outcome: Outcome::Started, ..entry.clone() }).await?;
        self.seq += 1;
        let result = self.run_plain_checked(script).await;
        let mut row = HistoryEntry { seq: self.seq, duration_ms: elapsed_ms(started), ..entry };
        if let Err(e) = &result {
            row.outcome = Outcome::Failed;
            row.error = Some(e.to_string());
        }
        self.b.record(&row).await?;
        self.seq += 1;
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed_now(script, e).await),
        }
    }

    async fn run_plain_checked(&self, script: &Script) -> Result<()> {
        self.b.run_plain(script).await?;
        self.b.check_lock()
    }

    async fn failed_now(&self, script: &Script, e: Error) -> Error {
        let leftovers = self.b.leftovers().await.unwrap_or_default();
        let mut msg = format!(
            "{}\n{} ran outside a transaction, so what ran before the failure took effect; it is recorded as failed.",
            e, script.path
        );
        push_next_steps(&mut msg, &leftovers, version_of(script));
        // No source: `e`'s text, already in msg, holds the server's message
        // and SQLSTATE, and Display would append them a second time.
        Error::new(ErrorKind::Migration, msg)
    }
}

fn version_of(script: &Script) -> String {
    std::path::Path::new(&script.path)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').next())
        .unwrap_or("VERSION")
        .to_owned()
}

fn push_next_steps(msg: &mut String, leftovers: &[String], version: String) {
    if !leftovers.is_empty() {
        msg.push_str("\nLeft behind in the database; clean up first:");
        for l in leftovers {
            msg.push_str("\n  ");
            msg.push_str(l);
        }
    }
    msg.push_str(&format!(
        "\nThen either fix the cause and run `fwdb migrate up --retry-failed` to run it again,\n\
         or, if you finished it by hand: `fwdb migrate repair --accept {version} --reason \"...\"`."
    ));
}

fn entry_for(m: &Migration, outcome: Outcome, runner: &str) -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        version: m.version,
        name: m.name.clone(),
        checksum: m.up.checksum.clone(),
        outcome,
        reason: None,
        applied_at: Utc::now(),
        applied_by: runner.to_owned(),
        duration_ms: 0,
        error: None,
    }
}

fn elapsed_ms(since: Instant) -> i64 {
    i64::try_from(since.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn next_seq(history: &[HistoryEntry]) -> i64 {
    history.iter().map(|e| e.seq).max().unwrap_or(0) + 1
}

/// Pending migrations in version order (a failed one too when retrying).
fn pending_steps<'s>(
    set: &'s MigrationSet,
    status: &Status,
    opts: &UpOptions,
    retry_interrupted: bool,
) -> Vec<&'s Migration> {
    status
        .migrations
        .iter()
        .filter(|m| {
            m.state == State::Pending
                || (m.state == State::Failed && (opts.retry_failed || (retry_interrupted && is_interrupted(m))))
        })
        .filter(|m| opts.to.is_none_or(|to| m.version <= to))
        .filter_map(|m| set.get(m.version))
        .collect()
}

fn is_interrupted(m: &MigrationStatus) -> bool {
    m.outcome == Some(Outcome::Started)
}

/// Drift always blocks; a failed migration blocks unless retried.
fn refusal(status: &Status, opts: &UpOptions, retry_interrupted: bool) -> Result<()> {
    let changed: Vec<String> = status.with_state(State::Changed).map(describe_drift).collect();
    if !changed.is_empty() {
        return Err(migration_error(format!(
            "{}: {} applied migration{} changed:\n  {}\nRestore the file{}, or if the change is intended: `fwdb migrate repair --accept VERSION --reason \"...\"`",
            status.store,
            changed.len(),
            if changed.len() == 1 { "" } else { "s" },
            changed.join("\n  "),
            if changed.len() == 1 { "" } else { "s" },
        )));
    }
    if !opts.retry_failed {
        if let Some(m) = status.with_state(State::Failed).find(|m| !(retry_interrupted && is_interrupted(m))) {
            return Err(migration_error(describe_failure(m)));
        }
    }
    Ok(())
}

fn describe_failure(m: &MigrationStatus) -> String {
    let file = m.file.as_deref().unwrap_or("?");
    let when = m.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
    let by = m.applied_by.as_deref().unwrap_or("?");
    match m.outcome {
        Some(Outcome::Started) => format!(
            "{file} (version {}) was interrupted: its runner ({by}) started it at {when} and died or lost its connection before it finished. It runs outside a transaction, so part of it may have taken effect.",
            m.version
        ),
        _ => format!(
            "{file} (version {}) failed at {when} ({by}): {}\nIt runs outside a transaction, so what ran before the failure took effect.",
            m.version,
            m.error.as_deref().unwrap_or("no error recorded")
        ),
    }
}

/// Adds the leftovers and the two ways forward to a "failed" refusal.
async fn with_failure_guidance<B: Backend>(b: &B, status: &Status, e: Error) -> Error {
    let Some(m) = status.with_state(State::Failed).next() else { return e };
    if status.count(State::Changed) > 0 {
        return e;
    }
    let leftovers = b.leftovers().await.unwrap_or_default();
    let mut msg = e.to_string();
    push_next_steps(&mut msg, &leftovers, m.version.to_string());
    Error::new(ErrorKind::Migration, msg)
}

async fn refuse_leftovers<B: Backend>(b: &B) -> Result<()> {
    let leftovers = b.leftovers().await?;
    if leftovers.is_empty() {
        return Ok(());
    }
    Err(migration_error(format!(
        "--retry-failed: clean up what the failed run left behind first (an IF NOT EXISTS would otherwise keep it):\n  {}",
        leftovers.join("\n  ")
    )))
}

fn check_destructive<'s>(scripts: impl Iterator<Item = &'s Script>, allow: bool, what: &str) -> Result<()> {
    if allow {
        return Ok(());
    }
    let findings: Vec<String> = scripts.flat_map(|s| s.findings.iter().map(|f| f.to_string())).collect();
    if findings.is_empty() {
        return Ok(());
    }
    Err(migration_error(format!(
        "refusing to run {what}: the lint flags {} statement{} that lose data or block writes:\n  {}\nReview them and pass --allow-destructive to run anyway.",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        findings.join("\n  ")
    )))
}

pub(crate) fn migration_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Migration, msg)
}
