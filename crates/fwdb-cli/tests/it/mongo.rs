//! `Mongo::transaction` against commit failures injected by the server: a
//! `failCommand` failpoint on `commitTransaction` (secantusdb's
//! `configureFailPoint`, a test-only command, enabled on a private stack).
//! An UnknownTransactionCommitResult sends the commit again without running
//! the closure again; a TransientTransactionError at commit runs it again.
//! (A TransientTransactionError inside the closure, from a real write
//! conflict between two sessions, is `mongo_tx.rs`.)

use fwdb::{DesignRepo, Mongo, MongoExec, NewDesign, Repository, Uuid};
use fwdb_testkit::{MongoKind, Node, Stack, StackOptions};
use mongodb::bson::doc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A private stack whose MongoDB server accepts `configureFailPoint`, and the
/// configuration that reaches it. None when the server is a real mongod (it
/// would need `--setParameter enableTestCommands=1`, which the testkit does
/// not pass).
fn failpoint_stack() -> Option<(Stack, fwdb::Config)> {
    let stack = Stack::start(StackOptions { replicas: 0, ..Default::default() }).expect("a private stack starts");
    if stack.mongo_kind() != Some(MongoKind::Secantus) {
        eprintln!("skipped: failpoints are set up for secantusdb only");
        return None;
    }
    // secantusdb reads ./secantusd.toml from its working folder, the stack's.
    stack.kill_node(Node::Mongo).expect("stop the MongoDB server");
    std::fs::write(stack.dir().join("secantusd.toml"), "[server]\nenable_test_commands = true\n")
        .expect("secantusd.toml");
    stack.start_node(Node::Mongo).expect("start it with test commands");
    let config = stack.info().config("postgres", "fwdb_tx", &[("FWDB__MONGO__POOL__MIN_SIZE", "0")]).expect("config");
    Some((stack, config))
}

/// Arms (or with `mode: "off"`, disarms) a failCommand failpoint on
/// `commitTransaction` for the clients named `app` only.
async fn fail_commit(admin: &mongodb::Database, app: &str, mode: mongodb::bson::Bson, labels: &[&str]) {
    let data = doc! { "failCommands": ["commitTransaction"], "errorCode": 91, "errorLabels": labels, "appName": app };
    admin
        .run_command(doc! { "configureFailPoint": "failCommand", "mode": mode, "data": data })
        .await
        .expect("configureFailPoint (test commands enabled)");
}

/// Creates one design named `name` in a transaction; counts the closure's runs.
async fn create_in_tx(db: &Mongo, name: &str, runs: &Arc<AtomicU32>) -> fwdb::Result<Uuid> {
    let repo = DesignRepo::new();
    db.transaction(|tx| {
        let (repo, runs, name) = (repo.clone(), runs.clone(), name.to_string());
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(repo.create(tx, &NewDesign::new(Uuid::new_v4(), name)).await?.id)
        })
    })
    .await
}

async fn count_named(db: &Mongo, name: &str) -> u64 {
    db.count("designs", doc! { "name": name }).await.expect("count")
}

#[tokio::test]
async fn mongo_commit_failures_retry_the_commit_or_the_closure_as_their_label_says() {
    let Some((stack, config)) = tokio::task::spawn_blocking(failpoint_stack).await.expect("stack thread") else {
        return;
    };
    let db = Mongo::connect(&config).await.expect("the handle");
    let app = config.mongo.app_name.clone();
    let raw = mongodb::Client::with_uri_str(&stack.info().mongo.as_ref().expect("a MongoDB node").uri)
        .await
        .expect("raw client");
    let admin = raw.database("admin");
    let times = |n: i32| mongodb::bson::Bson::Document(doc! { "times": n });

    // Three unknown commit results, then the commit goes through: the closure
    // ran once, only the commit was sent again.
    fail_commit(&admin, &app, times(3), &["UnknownTransactionCommitResult"]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let id = create_in_tx(&db, "unknown then committed", &runs).await.expect("committed after commit retries");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the closure must not run again on an unknown commit result");
    assert!(DesignRepo::new().find_by_id(&db, id).await.expect("read").is_some());
    assert_eq!(count_named(&db, "unknown then committed").await, 1);

    // The outcome stays unknown: the error (with its label) after MAX_TX_ATTEMPTS commits, the closure still once.
    fail_commit(&admin, &app, "alwaysOn".into(), &["UnknownTransactionCommitResult"]).await;
    let runs = Arc::new(AtomicU32::new(0));
    let e = create_in_tx(&db, "never committed", &runs).await.expect_err("every commit fails");
    fail_commit(&admin, &app, "off".into(), &[]).await;
    assert!(e.mongo_labels().iter().any(|l| l == "UnknownTransactionCommitResult"), "{e}: {:?}", e.mongo_labels());
    assert!(e.is_retryable(), "{e}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(count_named(&db, "never committed").await, 0);

    // A transient error at commit: nothing was committed, the closure runs again, once more only.
    fail_commit(&admin, &app, times(1), &["TransientTransactionError"]).await;
    let runs = Arc::new(AtomicU32::new(0));
    create_in_tx(&db, "transient at commit", &runs).await.expect("committed on the second run");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(count_named(&db, "transient at commit").await, 1, "the first run's write was not committed");

    // Disarmed: a transaction commits at the first attempt.
    let runs = Arc::new(AtomicU32::new(0));
    create_in_tx(&db, "plain", &runs).await.expect("commits");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn mongo_operations_are_recorded_by_operation_and_collection_with_errors_by_code() {
    let app = crate::helpers::TestApp::migrated().await;
    let ops = Arc::new(fwdb::MongoOpMetrics::new());
    let db = Mongo::connect(&app.config).await.expect("the handle").with_op_metrics(ops.clone());
    let repo = DesignRepo::new();
    let user = Uuid::new_v4();
    let d = repo.create(&db, &NewDesign::new(user, "measured")).await.expect("create");
    assert!(repo.find_by_id(&db, d.id).await.expect("find").is_some());
    assert_eq!(repo.list_by_user(&db, user, fwdb::DesignStatus::Draft, 10).await.expect("list").len(), 1);
    let mut p = fwdb::DesignPatch::new(1, "m");
    p.name = Some("measured again".into());
    repo.update(&db, d.id, &p).await.expect("update");
    // A duplicate _id: an error, counted under the server's code.
    let stored = db.find_one("designs", doc! {"_id": d.id.to_string()}).await.expect("read").expect("stored");
    let dup = db.insert_one("designs", stored).await.expect_err("duplicate _id");
    assert!(dup.is_conflict(), "{dup}");
    // Operations inside a transaction count too.
    let id = d.id;
    db.transaction(|tx| {
        let repo = repo.clone();
        Box::pin(async move { repo.get(tx, id).await })
    })
    .await
    .expect("the transaction");

    let snap = ops.snapshot();
    let count =
        |op: &str| snap.latency.iter().find(|(o, c, _)| o == op && c == "designs").map_or(0, |(_, _, h)| h.count);
    assert_eq!(count("insert_one"), 2, "{:?}", snap.latency);
    assert_eq!(count("find_one"), 3, "plain, before the duplicate, in the transaction: {:?}", snap.latency);
    assert_eq!(count("find"), 1);
    assert_eq!(count("find_one_and_update"), 1);
    assert!(snap.latency.iter().all(|(_, _, h)| h.sum > 0.0));
    assert_eq!(snap.errors, [("insert_one".to_string(), "designs".to_string(), "11000".to_string(), 1)]);
}
