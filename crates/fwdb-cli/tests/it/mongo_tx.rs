//! `Mongo::transaction` retries the whole closure on a TransientTransactionError
//! (here a write conflict with a transaction held open by the raw driver).

use crate::helpers::TestApp;
use fwdb::{DesignPatch, DesignRepo, Mongo, MongoExec, NewDesign, Repository, Uuid};
use mongodb::bson::doc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[tokio::test]
async fn mongo_tx_a_write_conflict_is_retried_and_then_commits() {
    let app = TestApp::migrated().await;
    let db = Mongo::connect(&app.config).await.unwrap();
    let repo = DesignRepo::new();
    let d = repo.create(&db, &NewDesign::new(Uuid::new_v4(), "contended")).await.unwrap();

    // A raw transaction touches the document and stays open for a while.
    let mut raw = db.client().start_session().await.unwrap();
    raw.start_transaction().await.unwrap();
    db.database()
        .collection::<mongodb::bson::Document>("designs")
        .update_one(doc! {"_id": d.id.to_string()}, doc! {"$set": {"metadata.description": "held"}})
        .session(&mut raw)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        raw.commit_transaction().await.unwrap();
    });

    let attempts = Arc::new(AtomicU32::new(0));
    let out = db
        .transaction(|tx| {
            let (repo, attempts) = (repo.clone(), attempts.clone());
            Box::pin(async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                let current = repo.get(tx, d.id).await?;
                let mut p = DesignPatch::new(current.version, "tx");
                p.name = Some("renamed in a retried transaction".into());
                repo.update(tx, d.id, &p).await
            })
        })
        .await;
    release.await.unwrap();
    let n = attempts.load(Ordering::SeqCst);
    match out {
        Ok(after) => {
            assert_eq!(after.name, "renamed in a retried transaction");
            eprintln!("transaction attempts: {n}");
        }
        Err(e) => panic!("after {n} attempt(s): {e} (labels {:?})", e.mongo_labels()),
    }
    assert_eq!(repo.get(&db, d.id).await.unwrap().version, 2);
    assert!(n > 1 && n <= fwdb::MAX_TX_ATTEMPTS, "the conflict was retried: {n} attempts");
    assert_eq!(db.count("designs", doc! {"metadata.description": "held"}).await.unwrap(), 1);
}
