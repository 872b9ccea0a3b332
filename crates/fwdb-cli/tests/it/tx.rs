//! Transactions (architecture 5.1): commit, rollback on error, on
//! panic and on drop, retry of a serialization failure, savepoints, the
//! actor as SQL sees it, a per-transaction statement timeout.

use crate::helpers::TestApp;
use futures::FutureExt;
use fwdb::{Actor, Consistency, Error, Executor, PgCluster, Route, TxOptions};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn setup(max_size: u32) -> (TestApp, PgCluster) {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = max_size;
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    crate::helpers::scratch_tables(&cfg, "create table t (id int primary key, v int not null default 0)").await;
    (app, cluster)
}

async fn ids(app: &TestApp) -> Vec<i32> {
    let rows = app.pg().await.query("select id from t order by id", &[]).await.expect("select");
    rows.iter().map(|r| r.get(0)).collect()
}

fn insert_sql() -> &'static str {
    "insert into t (id) values ($1)"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_commits_when_the_closure_returns_ok_and_records_its_lsn() {
    let (app, cluster) = setup(4).await;
    let before = cluster.last_write_lsn().await.expect("position");
    let n = cluster
        .transaction(TxOptions::default(), |tx| async move {
            tx.execute(insert_sql(), &[&1i32]).await?;
            tx.execute(insert_sql(), &[&2i32]).await?;
            let rows = tx.read("select count(*) from t", &[], Consistency::Eventual).await?;
            Ok(rows[0].get::<_, i64>(0))
        })
        .await
        .expect("commit");
    assert_eq!(n, 2, "reads inside the transaction see its own writes");
    assert_eq!(ids(&app).await, vec![1, 2]);
    assert!(cluster.last_write_lsn().await.expect("position") > before, "the commit counts as a write of this handle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolls_back_when_the_closure_returns_an_error() {
    let (app, cluster) = setup(4).await;
    let err = cluster
        .transaction(TxOptions::default(), |tx| async move {
            tx.execute(insert_sql(), &[&1i32]).await?;
            tx.execute(insert_sql(), &[&1i32]).await?; // duplicate key
            Ok(())
        })
        .await
        .expect_err("a unique violation");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(ids(&app).await, Vec::<i32>::new(), "the first insert was rolled back too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolls_back_when_the_closure_panics_and_the_panic_goes_on() {
    let (app, cluster) = setup(1).await;
    let outcome = std::panic::AssertUnwindSafe(cluster.transaction(TxOptions::default(), |tx| async move {
        tx.execute(insert_sql(), &[&7i32]).await?;
        if tx.attempt() > 0 {
            panic!("boom inside a transaction");
        }
        Ok(())
    }))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "the panic reaches the caller");
    assert_eq!(ids(&app).await, Vec::<i32>::new());
    // The one connection went back to the pool clean (not inside the old transaction).
    cluster
        .transaction(TxOptions::default(), |tx| async move { tx.execute(insert_sql(), &[&8i32]).await.map(|_| ()) })
        .await
        .expect("the pool still works");
    assert_eq!(ids(&app).await, vec![8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_future_is_dropped_rolls_back() {
    let (app, cluster) = setup(1).await;
    let (inserted_tx, inserted) = tokio::sync::oneshot::channel::<()>();
    let inserted_tx = Arc::new(std::sync::Mutex::new(Some(inserted_tx)));
    let fut = cluster.transaction(TxOptions::default(), move |tx| {
        let signal = inserted_tx.clone();
        async move {
            tx.execute(insert_sql(), &[&1i32]).await?;
            if let Some(s) = signal.lock().unwrap().take() {
                let _ = s.send(());
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    });
    tokio::select! {
        _ = fut => panic!("the transaction cannot finish"),
        _ = inserted => {}
    }
    // The future is dropped here, mid-transaction. With max_size 1 the next
    // transaction gets the same connection, after its rollback.
    cluster
        .transaction(TxOptions::default(), |tx| async move { tx.execute(insert_sql(), &[&2i32]).await.map(|_| ()) })
        .await
        .expect("the connection came back to the pool");
    assert_eq!(ids(&app).await, vec![2], "the dropped transaction's insert never committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provoked_serialization_failure_is_retried_to_success() {
    let (app, cluster) = setup(4).await;
    cluster.write("insert into t (id, v) values (1, 0), (2, 0)", &[]).await.expect("rows");
    // Write skew: each reads both rows, then updates a different one. Both
    // read before either writes (first attempts only), so SERIALIZABLE must
    // fail one of them with 40001.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let run = |target: i32| {
        let (c, barrier, attempts) = (cluster.clone(), barrier.clone(), attempts.clone());
        async move {
            c.transaction(TxOptions::default().serializable(), move |tx| {
                let (barrier, attempts) = (barrier.clone(), attempts.clone());
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let sum: i64 = tx.query("select sum(v)::int8 from t", &[]).await?[0].get(0);
                    if tx.attempt() == 1 {
                        barrier.wait().await;
                    }
                    tx.execute("update t set v = v + 1 where id = $1", &[&target]).await?;
                    Ok(sum)
                }
            })
            .await
        }
    };
    let (a, b) = tokio::join!(run(1), run(2));
    let (a, b) = (a.expect("first transaction"), b.expect("second transaction"));
    let total = attempts.load(Ordering::SeqCst);
    println!("sums seen {a}, {b}; closure runs {total}; retries {}", cluster.status().tx_retries);
    assert!(total >= 3, "one of the two ran again ({total} runs)");
    assert!(cluster.status().tx_retries >= 1);
    assert_eq!(a.max(b), 1, "the retried one saw the other's committed update");
    let rows = app.pg().await.query("select v from t order by id", &[]).await.expect("select");
    assert_eq!(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), vec![1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_errors_are_not_retried() {
    let (_app, cluster) = setup(2).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let err: Error = cluster
        .transaction(TxOptions::default(), move |tx| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tx.query("select 1/0", &[]).await.map(|_| ())
            }
        })
        .await
        .expect_err("division by zero");
    assert_eq!(err.code().map(|c| c.code()), Some("22012"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_rolled_back_keeps_the_outer_work() {
    let (app, cluster) = setup(2).await;
    cluster
        .transaction(TxOptions::default(), |tx| async move {
            tx.execute(insert_sql(), &[&1i32]).await?;
            let inner = tx
                .savepoint(|tx| async move {
                    tx.execute(insert_sql(), &[&2i32]).await?;
                    tx.execute(insert_sql(), &[&1i32]).await?; // duplicate: fails the savepoint
                    Ok(())
                })
                .await;
            assert!(inner.expect_err("the nested work fails").is_conflict());
            let kept = tx
                .savepoint(|tx| async move {
                    tx.savepoint(|tx| async move { tx.execute(insert_sql(), &[&4i32]).await }).await
                })
                .await?;
            assert_eq!(kept, 1);
            tx.execute(insert_sql(), &[&3i32]).await?;
            Ok(())
        })
        .await
        .expect("the outer transaction commits");
    assert_eq!(ids(&app).await, vec![1, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_of_a_transaction_is_visible_to_sql_and_to_repositories() {
    let (_app, cluster) = setup(1).await;
    // The uuid crate is fwdb's; its type is inferred from Actor's field.
    let a = Actor(serde_json::from_str("\"6f1c2a9e-0b7d-4c1e-9a55-3d2f1e0c4b6a\"").expect("uuid"));
    let b = Actor(serde_json::from_str("\"0e8d4b1a-7c2f-4f3a-8b6d-5a9c1e2f3d4b\"").expect("uuid"));
    let (seen_a, seen_b, exec_actor) = cluster
        .transaction(TxOptions::default().actor(a), move |tx| async move {
            let q = "select current_setting('fwdb.actor', true)";
            let seen_a: Option<String> = tx.query(q, &[]).await?[0].get(0);
            tx.set_actor(b).await?;
            let seen_b: Option<String> = tx.query(q, &[]).await?[0].get(0);
            Ok((seen_a, seen_b, tx.actor()))
        })
        .await
        .expect("tx");
    assert_eq!(seen_a, Some(a.0.to_string()));
    assert_eq!(seen_b, Some(b.0.to_string()));
    assert_eq!(exec_actor, Some(b));
    // SET LOCAL: gone after the transaction, on the same (only) connection.
    let conn = cluster.checkout(Route::Primary).await.expect("conn");
    let after: Option<String> =
        conn.query_one("select current_setting('fwdb.actor', true)", &[]).await.expect("q").get(0);
    assert!(after.as_deref().unwrap_or("").is_empty(), "no actor leaks out of the transaction: {after:?}");
    drop(conn);
    // A write through a handle with an actor: triggers see it, the next user does not.
    let with_a = cluster.with_actor(a);
    assert_eq!(with_a.actor(), Some(a));
    let rows = with_a
        .write("insert into t (id) values (1) returning current_setting('fwdb.actor', true)", &[])
        .await
        .expect("write with actor");
    assert_eq!(rows[0].get::<_, Option<String>>(0), Some(a.0.to_string()));
    let rows = cluster
        .write("insert into t (id) values (2) returning current_setting('fwdb.actor', true)", &[])
        .await
        .expect("write");
    assert!(rows[0].get::<_, Option<String>>(0).unwrap_or_default().is_empty(), "the actor did not leak");
    let err = with_a.write("insert into t (id) values (1)", &[]).await.expect_err("duplicate");
    assert!(err.is_conflict(), "{err}");
    with_a
        .write("insert into t (id) values (3)", &[])
        .await
        .expect("the connection is usable after a failed write with an actor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_set_on_a_transaction_applies_to_it_alone() {
    let (_app, cluster) = setup(1).await;
    let err = cluster
        .transaction(TxOptions::default().statement_timeout(Duration::from_millis(100)), |tx| async move {
            tx.query("select pg_sleep(2)", &[]).await.map(|_| ())
        })
        .await
        .expect_err("cancelled by the statement timeout");
    assert!(err.is_timeout(), "{err}");
    cluster
        .transaction(TxOptions::default(), |tx| async move { tx.query("select pg_sleep(0.3)", &[]).await.map(|_| ()) })
        .await
        .expect("the next transaction has the normal timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_transaction_refuses_writes_without_marking_the_primary_down() {
    let (_app, cluster) = setup(2).await;
    let err = cluster
        .transaction(TxOptions::default().read_only(), |tx| async move {
            tx.execute(insert_sql(), &[&1i32]).await.map(|_| ())
        })
        .await
        .expect_err("read only");
    assert_eq!(err.code().map(|c| c.code()), Some("25006"));
    assert!(cluster.status().primary.up);
    cluster.write(insert_sql(), &[&1i32]).await.expect("writes still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_error_was_ignored_is_not_reported_as_committed() {
    let (app, cluster) = setup(1).await;
    let err = cluster
        .transaction(TxOptions::default(), |tx| async move {
            tx.execute(insert_sql(), &[&1i32]).await?;
            let _ignored = tx.execute(insert_sql(), &[&1i32]).await; // duplicate, ignored
            Ok(())
        })
        .await
        .expect_err("PostgreSQL rolled it back: Ok would be a lie");
    assert_eq!(err.code().map(|c| c.code()), Some("25P02"), "{err}");
    assert_eq!(ids(&app).await, Vec::<i32>::new());
    cluster.write(insert_sql(), &[&2i32]).await.expect("the connection is clean");
    assert_eq!(ids(&app).await, vec![2]);
}
