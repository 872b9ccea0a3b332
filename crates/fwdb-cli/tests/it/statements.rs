//! Prepared statements of a pooled connection (issue 4): prepared once per
//! connection, prepared again after a schema change made them stale, and
//! bounded per connection. What the server holds is read from
//! `pg_prepared_statements`, the connection's own view.

use crate::helpers::TestApp;
use fwdb::{PgCluster, PgConn, Route};

async fn primary_conn() -> (TestApp, PgCluster, PgConn) {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
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
