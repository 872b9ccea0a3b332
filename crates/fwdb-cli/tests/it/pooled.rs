//! Pooled connections: the check on checkout, and their prepared
//! statements (prepared once per connection, prepared again after a schema
//! change made them stale, bounded per connection). What the server holds is
//! read from `pg_prepared_statements`, the connection's own view.

use crate::helpers::TestApp;
use fwdb::{PgCluster, PgConn, Route};

async fn primary_conn() -> (TestApp, PgCluster, PgConn) {
    let app = TestApp::spawn().await;
    // As the admin login: the stale-statement test changes a table it created.
    let mut cfg = app.config.postgres.as_admin();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 2;
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let conn = cluster.checkout(Route::Primary).await.expect("a connection");
    (app, cluster, conn)
}

/// Statements the server holds for this connection whose text contains `marker`.
async fn held(conn: &PgConn, marker: &str) -> i64 {
    // Simple protocol: counting must not prepare a statement of its own.
    let sql = format!("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%{marker}%' AND statement NOT LIKE '%pg_prepared_statements%'");
    let rows = conn.simple_query(&sql).await.expect("count");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_prepares_a_statement_once_however_often_it_runs() {
    let (_app, _cluster, conn) = primary_conn().await;
    for i in 0..5i32 {
        let rows = conn.query_cached("SELECT $1::int4 + 0 AS once_marker", &[&i]).await.expect("query");
        assert_eq!(rows[0].get::<_, i32>(0), i);
    }
    assert_eq!(held(&conn, "once_marker").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_made_stale_by_a_schema_change_is_prepared_again() {
    let (_app, _cluster, conn) = primary_conn().await;
    conn.batch_execute("CREATE TABLE stale_t (a int); INSERT INTO stale_t VALUES (1)").await.expect("table");
    let rows = conn.query_cached("SELECT * FROM stale_t", &[]).await.expect("first read");
    assert_eq!(rows[0].len(), 1);
    // The cached plan's result type changes: the server answers 0A000 until
    // the statement is prepared again.
    conn.batch_execute("ALTER TABLE stale_t ADD COLUMN b int DEFAULT 2").await.expect("alter");
    let rows = conn.query_cached("SELECT * FROM stale_t", &[]).await.expect("the read after the change");
    assert_eq!(rows[0].len(), 2);
    assert_eq!(rows[0].get::<_, Option<i32>>(1), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_keeps_at_most_512_statements_and_closes_the_rest_on_the_server() {
    let (_app, _cluster, conn) = primary_conn().await;
    for i in 0..600 {
        conn.prepare_cached(&format!("SELECT {i} AS bound_marker")).await.expect("prepare");
    }
    let n = held(&conn, "bound_marker").await;
    assert_eq!(n, 512, "statements held on the server");
    // The ones kept still run.
    let rows = conn.query_cached("SELECT 599 AS bound_marker", &[]).await.expect("a kept statement");
    assert_eq!(rows[0].get::<_, i32>(0), 599);
}

/// The last statement the backend behind `pid` ran, as another session sees it.
async fn last_statement(app: &TestApp, pid: i32) -> String {
    let rows =
        app.pg().await.query("SELECT query FROM pg_stat_activity WHERE pid = $1", &[&pid]).await.expect("activity");
    rows.first().map(|r| r.get(0)).expect("the backend is listed")
}

/// Checks out the only connection of a one-connection pool, runs a marked
/// statement on it, gives it back, checks it out again; returns what its
/// backend ran last.
async fn statement_after_a_second_checkout(app: &TestApp, verify: bool) -> String {
    let mut cfg = app.config.postgres.clone();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    cfg.routing.verify_on_checkout = verify;
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let conn = cluster.checkout(Route::Primary).await.expect("first checkout");
    let rows = conn.query("SELECT pg_backend_pid() AS checkout_marker", &[]).await.expect("marked statement");
    let pid: i32 = rows[0].get(0);
    drop(conn);
    let again = cluster.checkout(Route::Primary).await.expect("second checkout");
    let last = last_statement(app, pid).await;
    drop(again);
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_asks_the_server_only_when_verify_on_checkout_is_set() {
    let app = TestApp::spawn().await;
    let plain = statement_after_a_second_checkout(&app, false).await;
    assert!(plain.contains("checkout_marker"), "without verify_on_checkout a checkout sends nothing: {plain:?}");
    let verified = statement_after_a_second_checkout(&app, true).await;
    assert_eq!(verified, "", "with verify_on_checkout a checkout sends an empty query first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_backend_was_terminated_is_replaced_on_checkout() {
    let (app, cluster, conn) = primary_conn().await;
    let rows = conn.query("SELECT pg_backend_pid()", &[]).await.expect("pid");
    let pid: i32 = rows[0].get(0);
    app.pg().await.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.expect("terminate");
    // Given back only once its task has seen the socket close, so that the
    // next checkout meets a closed connection for certain.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !conn.is_closed() {
        assert!(std::time::Instant::now() < deadline, "the client never saw its backend terminated");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(conn);
    let conn = cluster.checkout(Route::Primary).await.expect("a checkout after the termination");
    let rows = conn.query("SELECT pg_backend_pid()", &[]).await.expect("a working connection");
    assert_ne!(rows[0].get::<_, i32>(0), pid, "a new backend");
}
