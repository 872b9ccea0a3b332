//! The MongoDB handle a service creates once ([`Mongo`]), the transaction
//! executor ([`MongoTx`]), and the trait both implement ([`MongoExec`]) so a
//! repository runs the same code in and out of a transaction.
//!
//! The driver has no wait-queue timeout (removed in 2.0): a burst above
//! `max_pool_size` waits for ever. Every operation here first takes a permit
//! of a semaphore sized like the pool, within `pool.wait_timeout`, else
//! fails with [`ErrorKind::Timeout`].

use super::client::client_options;
use crate::config::{Config, MongoConfig, Profile};
use crate::error::mongo as mongo_codes;
use crate::error::{Error, ErrorKind, Result};
use futures::future::BoxFuture;
use futures::TryStreamExt;
use mongodb::bson::Document;
use mongodb::options::{Acknowledgment, ReturnDocument, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// How often a transaction is run again after a TransientTransactionError, and
/// a commit retried after an UnknownTransactionCommitResult.
pub const MAX_TX_ATTEMPTS: u32 = 8;

/// Sort, limit and skip of a `find`.
#[derive(Debug, Clone, Default)]
pub struct FindSpec {
    pub sort: Option<Document>,
    pub limit: Option<i64>,
    pub skip: Option<u64>,
}

/// What a MongoDB repository runs on: the [`Mongo`] handle, or a [`MongoTx`].
pub trait MongoExec: Send + Sync {
    fn database(&self) -> &Database;
    fn find_one(&self, coll: &str, filter: Document) -> impl Future<Output = Result<Option<Document>>> + Send;
    fn find(&self, coll: &str, filter: Document, spec: FindSpec) -> impl Future<Output = Result<Vec<Document>>> + Send;
    fn count(&self, coll: &str, filter: Document) -> impl Future<Output = Result<u64>> + Send;
    fn insert_one(&self, coll: &str, doc: Document) -> impl Future<Output = Result<()>> + Send;
    fn insert_many(&self, coll: &str, docs: Vec<Document>) -> impl Future<Output = Result<()>> + Send;
    /// Updates one document; returns it as it is after the update (None: no match).
    fn find_one_and_update(
        &self,
        coll: &str,
        filter: Document,
        update: Document,
    ) -> impl Future<Output = Result<Option<Document>>> + Send;
    /// Updates one document; returns how many matched (with `upsert`, 1 also when inserted).
    fn update_one(
        &self,
        coll: &str,
        filter: Document,
        update: Document,
        upsert: bool,
    ) -> impl Future<Output = Result<u64>> + Send;
    fn delete_one(&self, coll: &str, filter: Document) -> impl Future<Output = Result<u64>> + Send;
    fn delete_many(&self, coll: &str, filter: Document) -> impl Future<Output = Result<u64>> + Send;
}

/// The MongoDB side of a service: one client (its pools) for the process,
/// the configured database, and the pool wait limit. Cheap to clone; create
/// it once at start-up and pass it around (no global).
#[derive(Clone)]
pub struct Mongo {
    client: Client,
    db: Database,
    permits: Arc<Semaphore>,
    max: u32,
    wait_timeout: Duration,
    ops: Option<Arc<dyn MongoObserver>>,
}

impl std::fmt::Debug for Mongo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mongo").field("database", &self.db.name()).field("max", &self.max).finish()
    }
}

impl Mongo {
    /// From the whole configuration: outside development, writes always wait for a majority.
    pub async fn connect(cfg: &Config) -> Result<Mongo> {
        Mongo::from_config(&cfg.mongo, cfg.profile).await
    }

    pub async fn from_config(cfg: &MongoConfig, profile: Profile) -> Result<Mongo> {
        let mut o = client_options(cfg).await?;
        if profile != Profile::Development {
            let mut wc = WriteConcern::default();
            wc.w = Some(Acknowledgment::Majority);
            o.write_concern = Some(wc);
        }
        let client = Client::with_options(o).map_err(Error::from)?;
        let max = cfg.pool.max_size.max(1);
        Ok(Mongo {
            db: client.database(&cfg.database),
            client,
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            wait_timeout: cfg.pool.wait_timeout,
            ops: None,
        })
    }

    /// Records every operation (this handle's and its transactions') in
    /// `ops`: `fwdb_mongo_op_duration_seconds` by operation and collection,
    /// the pool wait included, and errors by code. Give the same `ops` to the
    /// metrics collector (`Collector::with_mongo_ops`).
    pub fn with_op_metrics(mut self, ops: Arc<dyn MongoObserver>) -> Mongo {
        self.ops = Some(ops);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many operations may run at once (`pool.max_size`) and how many are free now.
    pub fn permits(&self) -> (u32, usize) {
        (self.max, self.permits.available_permits())
    }

    /// A slot of the pool within `pool.wait_timeout`, else a timeout error.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit> {
        // A free slot needs no timer (arming one takes a lock in the runtime's time driver).
        // No barging: tokio hands released permits straight to waiters.
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(self.wait_timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(Error::new(ErrorKind::Internal, "mongodb pool semaphore closed")),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "mongodb pool: no connection free within {:?} (pool.max_size {}, all in use)",
                    self.wait_timeout, self.max
                ),
            )),
        }
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Runs `work` in a transaction: commit on Ok, abort on Err. The whole
    /// closure runs again (up to [`MAX_TX_ATTEMPTS`]) on a TransientTransactionError;
    /// on an UnknownTransactionCommitResult only the commit is sent again, since
    /// the writes may already be committed and running the closure twice could
    /// apply them twice (the drivers' convenient-transaction spec).
    ///
    /// ```no_run
    /// # async fn demo(mongo: fwdb::Mongo, repo: fwdb::DesignRepo, new: fwdb::NewDesign) -> fwdb::Result<()> {
    /// use fwdb::Repository;
    /// // The closure may run more than once: each run gets its own clones.
    /// let design = mongo
    ///     .transaction(|tx| {
    ///         let (repo, new) = (repo.clone(), new.clone());
    ///         Box::pin(async move { repo.create(tx, &new).await })
    ///     })
    ///     .await?;
    /// # let _ = design; Ok(()) }
    /// ```
    pub async fn transaction<R, F>(&self, mut work: F) -> Result<R>
    where
        R: Send,
        F: for<'a> FnMut(&'a MongoTx) -> BoxFuture<'a, Result<R>> + Send,
    {
        let _permit = self.acquire().await?;
        let mut session = self.client.start_session().await.map_err(Error::from)?;
        let mut runs = 0;
        loop {
            runs += 1;
            session.start_transaction().await.map_err(Error::from)?;
            let tx = MongoTx { db: self.db.clone(), session: Mutex::new(session), ops: self.ops.clone() };
            let out = work(&tx).await;
            session = tx.session.into_inner();
            let value = match out {
                Ok(v) => v,
                Err(e) => {
                    // The error is what the caller needs; a failed abort only means the
                    // server will time the transaction out itself.
                    let _ = session.abort_transaction().await;
                    match tx_retry(TxPhase::Body, &e.mongo_labels(), false, TxAttempt { runs, commits: 0 }) {
                        TxRetry::RunAgain => {
                            backoff(runs).await;
                            continue;
                        }
                        TxRetry::CommitAgain | TxRetry::GiveUp => return Err(e),
                    }
                }
            };
            match commit(&mut session, runs).await? {
                Committed::Yes => return Ok(value),
                Committed::RunAgain => backoff(runs).await,
            }
        }
    }
}

/// What the handle reports of each finished operation: implemented by the
/// metrics (`fwdb::MongoOpMetrics`), so this module depends on no collector.
pub trait MongoObserver: Send + Sync {
    /// One operation, e.g. `("find", "designs", 3 ms, None)`.
    fn record(&self, operation: &str, collection: &str, elapsed: std::time::Duration, error: Option<&Error>);
}

/// Runs one operation, recording it when metrics are attached.
async fn observed<T>(
    ops: &Option<Arc<dyn MongoObserver>>,
    verb: &str,
    coll: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(m) = ops else { return work.await };
    let start = std::time::Instant::now();
    let out = work.await;
    m.record(verb, coll, start.elapsed(), out.as_ref().err());
    out
}

/// The outcome of [`commit`] that is not an error.
enum Committed {
    Yes,
    /// A TransientTransactionError at commit: nothing was committed, run the closure again.
    RunAgain,
}

/// Commits, sending the commit again (the driver marks the retry `w: majority`)
/// while the outcome is unknown.
async fn commit(session: &mut ClientSession, runs: u32) -> Result<Committed> {
    let mut commits = 0;
    loop {
        commits += 1;
        let Err(e) = session.commit_transaction().await else { return Ok(Committed::Yes) };
        let labels: Vec<String> = e.labels().iter().cloned().collect();
        match tx_retry(TxPhase::Commit, &labels, is_max_time_expired(&e), TxAttempt { runs, commits }) {
            TxRetry::CommitAgain => backoff(commits).await,
            TxRetry::RunAgain => return Ok(Committed::RunAgain),
            TxRetry::GiveUp => return Err(map_err(e)),
        }
    }
}

/// Where a transaction's error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxPhase {
    /// The closure (its reads and writes).
    Body,
    /// `commitTransaction`.
    Commit,
}

/// How often the closure ran and the commit was sent in the current run, counting the failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxAttempt {
    pub runs: u32,
    pub commits: u32,
}

/// What [`Mongo::transaction`] does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxRetry {
    /// Abort and run the whole closure in a new transaction.
    RunAgain,
    /// Send `commitTransaction` again; the closure's writes are not repeated.
    CommitAgain,
    /// Return the error.
    GiveUp,
}

/// The retry rule of the drivers' convenient-transaction spec, bounded by
/// [`MAX_TX_ATTEMPTS`] runs and as many commits per run:
/// an UnknownTransactionCommitResult at commit sends the commit again, unless
/// the server ran out of `maxCommitTimeMS` (retrying would only time out
/// again); otherwise a TransientTransactionError, in the closure or at
/// commit, runs the closure again; an UnknownTransactionCommitResult raised
/// by the closure is the caller's.
pub(crate) fn tx_retry(phase: TxPhase, labels: &[String], max_time_expired: bool, at: TxAttempt) -> TxRetry {
    let has = |l: &str| labels.iter().any(|x| x == l);
    if phase == TxPhase::Commit && has(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) && !max_time_expired {
        // Out of commits, the outcome stays unknown: running the closure again could apply it twice.
        return if at.commits < MAX_TX_ATTEMPTS { TxRetry::CommitAgain } else { TxRetry::GiveUp };
    }
    if has(mongodb::error::TRANSIENT_TRANSACTION_ERROR) && at.runs < MAX_TX_ATTEMPTS {
        return TxRetry::RunAgain;
    }
    TxRetry::GiveUp
}

/// MaxTimeMSExpired (50), as a command error or as the write concern error of a commit.
fn is_max_time_expired(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(50)
}

async fn backoff(attempt: u32) {
    let ms = 10u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2))).await;
}

/// The server error code of a driver error (command or write error), if any.
pub(crate) use crate::error::mongo::server_code;

/// A driver error as ours: a document the server's validator refused (121) is a validation error.
pub(crate) fn map_err(e: mongodb::error::Error) -> Error {
    match server_code(&e) {
        Some(mongo_codes::DOCUMENT_VALIDATION_FAILURE) => {
            Error::new(ErrorKind::Validation, "the server's $jsonSchema validator rejected the document").with_source(e)
        }
        Some(mongo_codes::DUPLICATE_KEY) => Error::new(ErrorKind::Conflict, "duplicate key").with_source(e),
        Some(mongo_codes::WRITE_CONFLICT) => Error::new(ErrorKind::Conflict, "write conflict").with_source(e),
        _ => Error::from(e),
    }
}

/// One operation on the handle: a pool slot, the driver call, the error mapped, the metrics.
macro_rules! run {
    ($self:ident, $verb:literal, $coll:expr, $op:expr) => {{
        observed(&$self.ops, $verb, $coll, async {
            let _permit = $self.acquire().await?;
            $op.await.map_err(map_err)
        })
        .await
    }};
}

/// One operation in a transaction: the session, the driver call, the error mapped, the metrics.
macro_rules! in_tx {
    ($self:ident, $verb:literal, $coll:expr, |$s:ident| $op:expr) => {{
        observed(&$self.ops, $verb, $coll, async {
            let mut $s = $self.session.lock().await;
            $op.await.map_err(map_err)
        })
        .await
    }};
}

impl MongoExec for Mongo {
    fn database(&self) -> &Database {
        &self.db
    }

    async fn find_one(&self, coll: &str, filter: Document) -> Result<Option<Document>> {
        run!(self, "find_one", coll, self.coll(coll).find_one(filter))
    }

    async fn find(&self, coll: &str, filter: Document, spec: FindSpec) -> Result<Vec<Document>> {
        observed(&self.ops, "find", coll, async {
            let _permit = self.acquire().await?;
            let c = self.coll(coll);
            let cursor = find_with(&c, filter, spec).await.map_err(map_err)?;
            cursor.try_collect().await.map_err(map_err)
        })
        .await
    }

    async fn count(&self, coll: &str, filter: Document) -> Result<u64> {
        run!(self, "count_documents", coll, self.coll(coll).count_documents(filter))
    }

    async fn insert_one(&self, coll: &str, doc: Document) -> Result<()> {
        run!(self, "insert_one", coll, self.coll(coll).insert_one(doc)).map(|_| ())
    }

    async fn insert_many(&self, coll: &str, docs: Vec<Document>) -> Result<()> {
        run!(self, "insert_many", coll, self.coll(coll).insert_many(docs)).map(|_| ())
    }

    async fn find_one_and_update(&self, coll: &str, filter: Document, update: Document) -> Result<Option<Document>> {
        run!(
            self,
            "find_one_and_update",
            coll,
            self.coll(coll).find_one_and_update(filter, update).return_document(ReturnDocument::After)
        )
    }

    async fn update_one(&self, coll: &str, filter: Document, update: Document, upsert: bool) -> Result<u64> {
        let r = run!(self, "update_one", coll, self.coll(coll).update_one(filter, update).upsert(upsert))?;
        Ok(r.matched_count + u64::from(r.upserted_id.is_some()))
    }

    async fn delete_one(&self, coll: &str, filter: Document) -> Result<u64> {
        run!(self, "delete_one", coll, self.coll(coll).delete_one(filter)).map(|r| r.deleted_count)
    }

    async fn delete_many(&self, coll: &str, filter: Document) -> Result<u64> {
        run!(self, "delete_many", coll, self.coll(coll).delete_many(filter)).map(|r| r.deleted_count)
    }
}

/// A `find` with the spec's sort, limit and skip.
fn find_with(c: &Collection<Document>, filter: Document, spec: FindSpec) -> mongodb::action::Find<'_, Document> {
    let mut f = c.find(filter);
    if let Some(x) = spec.sort {
        f = f.sort(x);
    }
    if let Some(l) = spec.limit {
        f = f.limit(l);
    }
    if let Some(x) = spec.skip {
        f = f.skip(x);
    }
    f
}

/// The executor inside [`Mongo::transaction`]: every operation runs in the session's transaction.
pub struct MongoTx {
    db: Database,
    session: Mutex<ClientSession>,
    ops: Option<Arc<dyn MongoObserver>>,
}

impl MongoTx {
    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

impl MongoExec for MongoTx {
    fn database(&self) -> &Database {
        &self.db
    }

    async fn find_one(&self, coll: &str, filter: Document) -> Result<Option<Document>> {
        in_tx!(self, "find_one", coll, |s| self.coll(coll).find_one(filter).session(&mut *s))
    }

    async fn find(&self, coll: &str, filter: Document, spec: FindSpec) -> Result<Vec<Document>> {
        observed(&self.ops, "find", coll, async {
            let mut s = self.session.lock().await;
            let c = self.coll(coll);
            let mut cursor = find_with(&c, filter, spec).session(&mut *s).await.map_err(map_err)?;
            cursor.stream(&mut s).try_collect().await.map_err(map_err)
        })
        .await
    }

    async fn count(&self, coll: &str, filter: Document) -> Result<u64> {
        in_tx!(self, "count_documents", coll, |s| self.coll(coll).count_documents(filter).session(&mut *s))
    }

    async fn insert_one(&self, coll: &str, doc: Document) -> Result<()> {
        in_tx!(self, "insert_one", coll, |s| self.coll(coll).insert_one(doc).session(&mut *s)).map(|_| ())
    }

    async fn insert_many(&self, coll: &str, docs: Vec<Document>) -> Result<()> {
        in_tx!(self, "insert_many", coll, |s| self.coll(coll).insert_many(docs).session(&mut *s)).map(|_| ())
    }

    async fn find_one_and_update(&self, coll: &str, filter: Document, update: Document) -> Result<Option<Document>> {
        in_tx!(self, "find_one_and_update", coll, |s| self
            .coll(coll)
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .session(&mut *s))
    }

    async fn update_one(&self, coll: &str, filter: Document, update: Document, upsert: bool) -> Result<u64> {
        let r = in_tx!(self, "update_one", coll, |s| self
            .coll(coll)
            .update_one(filter, update)
            .upsert(upsert)
            .session(&mut *s))?;
        Ok(r.matched_count + u64::from(r.upserted_id.is_some()))
    }

    async fn delete_one(&self, coll: &str, filter: Document) -> Result<u64> {
        in_tx!(self, "delete_one", coll, |s| self.coll(coll).delete_one(filter).session(&mut *s))
            .map(|r| r.deleted_count)
    }

    async fn delete_many(&self, coll: &str, filter: Document) -> Result<u64> {
        in_tx!(self, "delete_many", coll, |s| self.coll(coll).delete_many(filter).session(&mut *s))
            .map(|r| r.deleted_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::error::{TRANSIENT_TRANSACTION_ERROR as TRANSIENT, UNKNOWN_TRANSACTION_COMMIT_RESULT as UNKNOWN};

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn at(runs: u32, commits: u32) -> TxAttempt {
        TxAttempt { runs, commits }
    }

    #[test]
    fn an_unknown_commit_result_sends_the_commit_again_not_the_closure() {
        let unknown = labels(&[UNKNOWN]);
        assert_eq!(tx_retry(TxPhase::Commit, &unknown, false, at(1, 1)), TxRetry::CommitAgain);
        assert_eq!(tx_retry(TxPhase::Commit, &unknown, false, at(3, MAX_TX_ATTEMPTS - 1)), TxRetry::CommitAgain);
        // Bounded: the last commit's error is returned.
        assert_eq!(tx_retry(TxPhase::Commit, &unknown, false, at(1, MAX_TX_ATTEMPTS)), TxRetry::GiveUp);
        // maxCommitTimeMS ran out: another commit would too.
        assert_eq!(tx_retry(TxPhase::Commit, &unknown, true, at(1, 1)), TxRetry::GiveUp);
        // Raised by the closure, the label is not the commit's: the caller decides.
        assert_eq!(tx_retry(TxPhase::Body, &unknown, false, at(1, 0)), TxRetry::GiveUp);
    }

    #[test]
    fn a_transient_error_runs_the_closure_again_in_either_phase() {
        let transient = labels(&[TRANSIENT]);
        assert_eq!(tx_retry(TxPhase::Body, &transient, false, at(1, 0)), TxRetry::RunAgain);
        assert_eq!(tx_retry(TxPhase::Commit, &transient, false, at(1, 1)), TxRetry::RunAgain);
        assert_eq!(tx_retry(TxPhase::Body, &transient, false, at(MAX_TX_ATTEMPTS, 0)), TxRetry::GiveUp);
        assert_eq!(tx_retry(TxPhase::Commit, &transient, false, at(MAX_TX_ATTEMPTS, 1)), TxRetry::GiveUp);
    }

    #[test]
    fn both_labels_at_commit_retry_the_commit_and_never_rerun_an_unknown_outcome() {
        let both = labels(&[TRANSIENT, UNKNOWN]);
        assert_eq!(tx_retry(TxPhase::Commit, &both, false, at(1, 1)), TxRetry::CommitAgain);
        assert_eq!(tx_retry(TxPhase::Commit, &both, false, at(1, MAX_TX_ATTEMPTS)), TxRetry::GiveUp);
        // The commit timed out on the server: the transient label decides.
        assert_eq!(tx_retry(TxPhase::Commit, &both, true, at(1, 1)), TxRetry::RunAgain);
    }

    #[test]
    fn other_errors_are_returned_at_once() {
        for l in [labels(&[]), labels(&["RetryableWriteError"]), labels(&["NoWritesPerformed"])] {
            assert_eq!(tx_retry(TxPhase::Body, &l, false, at(1, 0)), TxRetry::GiveUp);
            assert_eq!(tx_retry(TxPhase::Commit, &l, false, at(1, 1)), TxRetry::GiveUp);
        }
    }
}
