//! The MongoDB migration lock: one document with an owner and a lease.
//!
//! Taken with findOneAndUpdate only when it is free or its lease expired, so
//! exactly one runner wins; renewed by a task while its holder runs; left to
//! expire when the holder dies, so no lock is stuck for ever (migrate-mongo's
//! lock has no lease by default). Times are the runners' clocks: keep the
//! lease well above their skew (the default is 30 s).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, DateTime as BsonDateTime, Document};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};

use crate::error::Result;

pub(crate) const LOCK_COLLECTION: &str = "fwdb_migrations_lock";
const LOCK_ID: &str = "migrate";

pub(crate) struct LeaseLock {
    coll: Collection<Document>,
    owner: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// What `try_acquire` saw when it did not get the lock.
pub(crate) struct Holder {
    pub runner: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expires_at {
            Some(t) => write!(f, "{} (lease until {})", self.runner, t.format("%H:%M:%S%.3f UTC")),
            None => f.write_str(&self.runner),
        }
    }
}

pub(crate) fn bson_time(t: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_millis(t.timestamp_millis())
}

pub(crate) fn chrono_time(t: BsonDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

fn lease_end(lease: Duration) -> BsonDateTime {
    bson_time(Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30)))
}

/// One attempt: the lock, or who holds it.
pub(crate) async fn try_acquire(
    db: &Database,
    owner: &str,
    runner: &str,
    lease: Duration,
) -> Result<std::result::Result<LeaseLock, Holder>> {
    let coll = db.collection::<Document>(LOCK_COLLECTION);
    let now = bson_time(Utc::now());
    let free = doc! { "_id": LOCK_ID, "$or": [ { "owner": Bson::Null }, { "expires_at": { "$lt": now } } ] };
    let take =
        doc! { "$set": { "owner": owner, "runner": runner, "acquired_at": now, "expires_at": lease_end(lease) } };
    // Upsert creates the document on first use; when it exists but is held,
    // the upsert's insert collides on _id (E11000): that means "held".
    let taken = coll.find_one_and_update(free, take).upsert(true).return_document(ReturnDocument::After).await;
    match taken {
        Ok(Some(d)) if d.get_str("owner").ok() == Some(owner) => Ok(Ok(start_renewing(coll, owner.to_owned(), lease))),
        Ok(_) => Ok(Err(holder(&coll).await)),
        Err(e) if is_duplicate_key(&e) => Ok(Err(holder(&coll).await)),
        Err(e) => Err(e.into()),
    }
}

async fn holder(coll: &Collection<Document>) -> Holder {
    match coll.find_one(doc! { "_id": LOCK_ID }).await {
        Ok(Some(d)) => Holder {
            runner: d.get_str("runner").unwrap_or("another runner").to_owned(),
            expires_at: d.get_datetime("expires_at").ok().map(|t| chrono_time(*t)),
        },
        _ => Holder { runner: "another runner".into(), expires_at: None },
    }
}

pub(crate) use crate::error::mongo::is_duplicate_key;

/// Renews the lease every third of it. If a renewal finds another owner, or
/// none succeeds for a whole lease, the lock is marked lost and the runner
/// stops before its next migration.
fn start_renewing(coll: Collection<Document>, owner: String, lease: Duration) -> LeaseLock {
    let lost = Arc::new(AtomicBool::new(false));
    let (c, o, l) = (coll.clone(), owner.clone(), lost.clone());
    let renewer = tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(lease / 3).await;
            let renewed = c
                .update_one(doc! { "_id": LOCK_ID, "owner": &o }, doc! { "$set": { "expires_at": lease_end(lease) } })
                .await;
            match renewed {
                Ok(r) if r.matched_count == 1 => last_ok = tokio::time::Instant::now(),
                Ok(_) => break,
                Err(_) if last_ok.elapsed() < lease => continue,
                Err(_) => break,
            }
        }
        l.store(true, Ordering::SeqCst);
    });
    LeaseLock { coll, owner, lost, renewer }
}

impl LeaseLock {
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) async fn release(self) -> Result<()> {
        self.renewer.abort();
        self.coll
            .update_one(
                doc! { "_id": LOCK_ID, "owner": &self.owner },
                doc! { "$set": { "owner": Bson::Null, "expires_at": BsonDateTime::from_millis(0) } },
            )
            .await?;
        Ok(())
    }
}

impl Drop for LeaseLock {
    /// A lock dropped without `release` (a panic, a cancelled future) stops
    /// renewing and expires at the end of its lease.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
