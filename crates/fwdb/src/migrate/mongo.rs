//! The MongoDB backend. MongoDB cannot put DDL commands and a history write in
//! one transaction, so every migration runs as "non-atomic": a `started` row,
//! the commands in order, then `applied` or `failed`.

use std::sync::Mutex;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::engine::{emit, Backend, Event, EventSink};
use super::history::{runner_id, HistoryEntry, Outcome};
use super::mongo_lock::{bson_time, chrono_time, try_acquire, LeaseLock};
use super::source::{Script, Store};
use crate::error::{Error, ErrorKind, Result};

pub(crate) const HISTORY_COLLECTION: &str = "fwdb_migrations";
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

pub(crate) struct MongoBackend<'a> {
    db: &'a Database,
    lease: Duration,
    lock: Mutex<Option<LeaseLock>>,
}

impl<'a> MongoBackend<'a> {
    pub(crate) fn new(db: &'a Database, lease: Duration) -> Self {
        MongoBackend { db, lease, lock: Mutex::new(None) }
    }

    pub(crate) fn db(&self) -> &'a Database {
        self.db
    }

    fn history_coll(&self) -> mongodb::Collection<Document> {
        self.db.collection(HISTORY_COLLECTION)
    }

    fn poll_interval(&self) -> Duration {
        (self.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

impl Backend for MongoBackend<'_> {
    fn store(&self) -> Store {
        Store::Mongo
    }

    async fn lock(&self, events: &Option<EventSink>) -> Result<()> {
        let runner = runner_id();
        let owner = format!("{runner} {}", uuid::Uuid::new_v4());
        let mut last_holder = String::new();
        loop {
            match try_acquire(self.db, &owner, &runner, self.lease).await? {
                Ok(lock) => {
                    *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
                    emit(events, Event::LockAcquired { store: Store::Mongo });
                    return Ok(());
                }
                Err(holder) => {
                    let who = holder.runner.clone();
                    if who != last_holder {
                        emit(events, Event::WaitingForLock { store: Store::Mongo, holder: holder.to_string() });
                        last_holder = who;
                    }
                }
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }

    async fn unlock(&self) -> Result<()> {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        match lock {
            Some(l) => l.release().await,
            None => Ok(()),
        }
    }

    fn check_lock(&self) -> Result<()> {
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(LeaseLock::is_lost) {
            return Err(Error::new(
                ErrorKind::Migration,
                "lost the MongoDB migration lock (its lease could not be renewed); stopping before the next migration",
            ));
        }
        Ok(())
    }

    async fn ensure_history(&self) -> Result<()> {
        // A unique seq: should two runners ever both believe they hold the
        // lock, the second history write fails instead of doubling a row.
        let index = IndexModel::builder()
            .keys(doc! { "seq": 1 })
            .options(IndexOptions::builder().unique(true).name("seq_unique".to_owned()).build())
            .build();
        self.history_coll().create_index(index).await?;
        Ok(())
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let docs: Vec<Document> =
            self.history_coll().find(doc! {}).sort(doc! { "seq": 1 }).await?.try_collect().await?;
        docs.iter().map(entry_from_doc).collect()
    }

    async fn record(&self, e: &HistoryEntry) -> Result<()> {
        self.history_coll().insert_one(entry_to_doc(e)).await?;
        Ok(())
    }

    fn is_atomic(&self, _script: &Script) -> bool {
        false
    }

    async fn run_atomic(&self, script: &Script, _entry: HistoryEntry) -> Result<()> {
        Err(Error::new(ErrorKind::Internal, format!("{}: MongoDB migrations cannot run in a transaction", script.path)))
    }

    async fn run_plain(&self, script: &Script) -> Result<()> {
        for (i, (cmd, line)) in script.commands.iter().enumerate() {
            let result = self.db.run_command(cmd.clone()).await;
            if result.as_ref().is_err_and(|e| already_done(cmd, e)) {
                continue;
            }
            result.map_err(|e| {
                let name = cmd.keys().next().map(String::as_str).unwrap_or("?");
                Error::new(ErrorKind::Migration, format!("{}:{line}: command #{} ({name}) failed", script.path, i + 1))
                    .with_source(e)
            })?;
        }
        Ok(())
    }

    async fn leftovers(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn retries_interrupted(&self) -> bool {
        true
    }
}

/// A command whose goal is already reached: re-running a migration whose
/// runner died mid-way must not fail on what that runner already did.
fn already_done(cmd: &Document, e: &mongodb::error::Error) -> bool {
    let code = match &*e.kind {
        mongodb::error::ErrorKind::Command(c) => c.code,
        _ => return false,
    };
    let name = cmd.keys().next().map(String::as_str).unwrap_or_default();
    matches!((name, code), ("create", 48) | ("drop", 26) | ("dropIndexes", 27))
}

fn entry_to_doc(e: &HistoryEntry) -> Document {
    doc! {
        "seq": e.seq,
        "version": e.version,
        "name": &e.name,
        "checksum": &e.checksum,
        "outcome": e.outcome.as_str(),
        "reason": e.reason.clone().map_or(Bson::Null, Bson::String),
        "applied_at": bson_time(e.applied_at),
        "applied_by": &e.applied_by,
        "duration_ms": e.duration_ms,
        "error": e.error.clone().map_or(Bson::Null, Bson::String),
    }
}

fn entry_from_doc(d: &Document) -> Result<HistoryEntry> {
    let bad = |field: &str| {
        Error::new(ErrorKind::Migration, format!("{HISTORY_COLLECTION}: a row has no valid {field}: {d}"))
    };
    let int = |field: &str| match d.get(field) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) => Ok(*v as i64),
        _ => Err(bad(field)),
    };
    let text = |field: &str| d.get_str(field).map(str::to_owned).map_err(|_| bad(field));
    let opt = |field: &str| d.get_str(field).ok().map(str::to_owned);
    let outcome = text("outcome")?;
    Ok(HistoryEntry {
        seq: int("seq")?,
        version: int("version")?,
        name: text("name")?,
        checksum: text("checksum")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| bad("outcome"))?,
        reason: opt("reason"),
        applied_at: d.get_datetime("applied_at").map(|t| chrono_time(*t)).map_err(|_| bad("applied_at"))?,
        applied_by: text("applied_by")?,
        duration_ms: int("duration_ms")?,
        error: opt("error"),
    })
}
