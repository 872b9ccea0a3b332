//! Reads that share connections (`postgres.pool.multiplex`):
//! concurrent reads are pipelined on at most that many connections per
//! server; a lone read checks a connection out as a pool would; a failing
//! read does not fail the reads pipelined with it; a read with a prelude (a
//! statement timeout of its own) runs on a connection of its own and leaves
//! nothing behind on the shared ones; losing a shared connection fails the
//! reads on it, and only those. And no read waits behind a slow one: a
//! shape shares once seen fast and leaves while slow, a busy connection that
//! makes no progress is not joined, a read marked heavy never shares.

use crate::helpers::TestApp;
use fwdb::{Consistency, Executor, Lane, PgCluster, ReadHint};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

async fn cluster_with(app: &TestApp, multiplex: u32, slow_read: Option<Duration>) -> PgCluster {
    let mut cfg = app.config.postgres.clone();
    // Idle connections at hand, as with the default min_size (10): a fill
    // takes one at once instead of connecting while the burst goes by.
    cfg.pool.min_size = 4;
    cfg.pool.max_size = 20;
    cfg.pool.multiplex = multiplex;
    if let Some(d) = slow_read {
        cfg.pool.slow_read = d;
    }
    PgCluster::connect(&cfg).await.expect("cluster")
}

/// The default rules: a read shares once its shape was seen fast. "Slow"
/// from 50 ms: a debug build beside a parallel suite on two cores takes
/// milliseconds for a point read; the slow reads here take 500 ms or more.
async fn cluster(app: &TestApp, multiplex: u32) -> PgCluster {
    cluster_with(app, multiplex, Some(Duration::from_millis(50))).await
}

/// Every read shares as soon as another is in flight, however long it takes
/// (vouched light, and nothing counts as slow): to look at pipelining itself
/// with reads that sleep.
async fn light_cluster(app: &TestApp, multiplex: u32) -> PgCluster {
    cluster_with(app, multiplex, Some(Duration::from_secs(60))).await.with_read_hint(ReadHint::Light)
}

const WHO: &str = "SELECT inet_server_port(), pg_backend_pid()";

/// (server port, backend pid) of each of `n` concurrent reads lasting `ms`.
async fn concurrent_reads(c: &PgCluster, n: usize, ms: u32, consistency: Consistency) -> Vec<(i32, i32)> {
    let sql = format!("{WHO}, pg_sleep({})::text", f64::from(ms) / 1000.0);
    let reads = (0..n).map(|_| c.read(&sql, &[], consistency));
    futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| {
            let rows = r.expect("a read");
            (rows[0].get(0), rows[0].get(1))
        })
        .collect()
}

async fn backend(c: &PgCluster) -> i32 {
    c.read(WHO, &[], Consistency::Strong).await.expect("a read")[0].get(1)
}

/// A read kept in flight on the primary for `secs`: while it runs, other
/// reads share connections (a lone read does not).
async fn a_read_in_flight(c: &PgCluster, secs: f64) -> tokio::task::JoinHandle<()> {
    let c = c.clone();
    let sql = format!("SELECT pg_sleep({secs})");
    let running = tokio::spawn(async move {
        c.read(&sql, &[], Consistency::Strong).await.expect("the read in flight");
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    running
}

/// A cluster sharing one connection per server, a read kept in flight for
/// `secs` (so that others share), and the backend of the shared connection.
async fn sharing_one_connection(secs: f64) -> (TestApp, PgCluster, tokio::task::JoinHandle<()>, i32) {
    let app = TestApp::spawn().await;
    let c = light_cluster(&app, 1).await;
    let running = a_read_in_flight(&c, secs).await;
    let shared_pid = backend(&c).await;
    (app, c, running, shared_pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_are_pipelined_on_at_most_multiplex_connections() {
    let app = TestApp::spawn().await;
    let shared = light_cluster(&app, 2).await;
    let pids: BTreeSet<(i32, i32)> = concurrent_reads(&shared, 16, 50, Consistency::Strong).await.into_iter().collect();
    // The first read found no other in flight and checked a connection out.
    assert!(pids.len() <= 3, "16 concurrent reads on {} backends, multiplex 2: {pids:?}", pids.len());
    let pool = shared.status().primary.pool;
    assert!(pool.shared >= 1 && pool.shared <= 2, "{pool:?}");
    assert_eq!(pool.shared_reads, 0, "no read in flight any more: {pool:?}");

    let own = light_cluster(&app, 0).await;
    let pids: BTreeSet<(i32, i32)> = concurrent_reads(&own, 16, 50, Consistency::Strong).await.into_iter().collect();
    assert!(pids.len() > 3, "multiplex 0: each concurrent read has a connection of its own: {pids:?}");
    assert_eq!(own.status().primary.pool.shared, 0);
    shared.close();
    own.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_caller_checks_a_connection_out_and_shares_none() {
    let app = TestApp::spawn().await;
    let c = cluster(&app, 4).await;
    let first = backend(&c).await;
    for _ in 0..20 {
        assert_eq!(backend(&c).await, first, "sequential reads stay on the warm connection");
    }
    assert_eq!(c.status().primary.pool.shared, 0, "nothing to pipeline with: no connection is set aside");
    let running = a_read_in_flight(&c, 0.5).await;
    assert_ne!(backend(&c).await, first, "with a read in flight, the next one shares another connection");
    assert_eq!(c.status().primary.pool.shared, 1);
    running.await.expect("the read in flight");
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_reads_share_connections_on_each_replica() {
    let app = TestApp::spawn().await;
    let c = light_cluster(&app, 1).await;
    let served = concurrent_reads(&c, 24, 20, Consistency::Eventual).await;
    let mut per_server: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    for (port, pid) in served {
        per_server.entry(port).or_default().insert(pid);
    }
    let primary_port = i32::from(app.config.postgres.primary[0].port);
    assert!(per_server.keys().any(|p| *p != primary_port), "some reads reach a replica: {per_server:?}");
    for (port, pids) in &per_server {
        // The first read on each server found no other in flight there and had one of its own.
        assert!(pids.len() <= 2, "server {port}: reads shared one connection (multiplex 1): {per_server:?}");
    }
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_does_not_fail_the_reads_pipelined_with_it() {
    let (_app, c, running, pid) = sharing_one_connection(2.0).await;
    let sql = |i: i32| format!("SELECT pg_backend_pid(), 10 / ({i} - 5), pg_sleep(0.01)::text");
    let texts: Vec<String> = (0..10).map(sql).collect();
    let reads = texts.iter().map(|s| c.read(s, &[], Consistency::Strong));
    let results = futures::future::join_all(reads).await;
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) => {
                assert_eq!(i, 5, "only the read dividing by zero fails: {e}");
                assert_eq!(e.code().map(|c| c.code()), Some("22012"), "{e}");
            }
            Ok(rows) => assert_eq!(rows[0].get::<_, i32>(0), pid, "read {i} ran on the shared connection"),
        }
    }
    assert!(results[5].is_err(), "10 / 0 must fail");
    assert_eq!(backend(&c).await, pid, "the shared connection is still in use after the error");
    running.await.expect("the read in flight");
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_its_own_statement_timeout_runs_on_a_connection_of_its_own() {
    let (_app, c, running, shared_pid) = sharing_one_connection(2.0).await;
    let setting = "SELECT pg_backend_pid(), current_setting('statement_timeout')";
    let timed = c.with_statement_timeout(std::time::Duration::from_millis(4321));
    let rows = timed.read(setting, &[], Consistency::Strong).await.expect("a read with a timeout");
    assert_ne!(rows[0].get::<_, i32>(0), shared_pid, "a read with a prelude does not share");
    assert_eq!(rows[0].get::<_, String>(1), "4321ms");
    let rows = c.read(setting, &[], Consistency::Strong).await.expect("a shared read");
    assert_eq!(rows[0].get::<_, i32>(0), shared_pid);
    assert_ne!(rows[0].get::<_, String>(1), "4321ms", "the timeout did not leak to the shared connection");

    let err = timed
        .with_statement_timeout(std::time::Duration::from_millis(50))
        .read("SELECT pg_sleep(2)", &[], Consistency::Strong)
        .await;
    let err = err.expect_err("the statement outlives its timeout");
    assert!(err.is_timeout(), "{err}");
    running.await.expect("the read in flight");
    c.close();
}

/// A fault test: the price of sharing, counted. Every read pipelined on a
/// shared connection fails when its backend is lost; reads after it get a
/// new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_shared_connection_fails_the_reads_pipelined_on_it_and_later_reads_get_another() {
    let (app, c, running, shared_pid) = sharing_one_connection(3.0).await;
    let reads: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(
                async move { c.read("SELECT pg_backend_pid(), pg_sleep(1)::text", &[], Consistency::Strong).await },
            )
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.pg()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&shared_pid])
        .await
        .expect("terminate the shared backend");
    let mut lost = 0;
    for r in futures::future::join_all(reads).await {
        match r.expect("the read's task") {
            Ok(rows) => panic!("a read survived the loss of its connection, on backend {}", rows[0].get::<_, i32>(0)),
            Err(e) => {
                lost += 1;
                eprintln!("read lost with its shared connection: {e}");
            }
        }
    }
    assert_eq!(lost, 5, "the five reads pipelined on the terminated backend");
    running.await.expect("the read on its own connection is not affected");

    // The loss marks the primary down until the next try (routing.primary_retry_interval).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let pid = loop {
        match c.read(WHO, &[], Consistency::Strong).await {
            Ok(rows) => break rows[0].get::<_, i32>(1),
            Err(e) => assert!(std::time::Instant::now() < deadline, "reads did not recover: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(pid, shared_pid, "a new backend");
    c.close();
}

/// A cluster sharing one connection per server with the default rules, a
/// read kept in flight for `secs`, and the backend of the shared connection
/// (the probe's shape run until it was seen fast and shares).
async fn one_shared_connection(app: &TestApp, secs: f64) -> (PgCluster, tokio::task::JoinHandle<()>, i32) {
    let c = cluster(app, 1).await;
    let running = a_read_in_flight(&c, secs).await;
    // Its first read (a prepare too, in a debug build on a busy machine) may
    // come out slow: a few more bring the estimate down.
    let mut reads = 0;
    while c.status().primary.pool.shared == 0 {
        backend(&c).await;
        reads += 1;
        assert!(reads < 30, "the probe's shape never shared: {:?}", c.status().shapes);
    }
    let shared_pid = backend(&c).await;
    assert_eq!(backend(&c).await, shared_pid, "seen fast, the shape shares one connection");
    (c, running, shared_pid)
}

/// `n` reads of the probe's shape at once, and how long they took together.
async fn a_burst(c: &PgCluster, n: usize) -> Duration {
    let t = Instant::now();
    for r in futures::future::join_all((0..n).map(|_| c.read(WHO, &[], Consistency::Strong))).await {
        r.expect("a fast read");
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fast_reads_does_not_wait_for_a_slow_read_in_flight() {
    let app = TestApp::spawn().await;
    let (c, running, _) = one_shared_connection(&app, 6.0).await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.read("SELECT pg_sleep(3)", &[], Consistency::Strong).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = a_burst(&c, 20).await;
    assert!(took < Duration::from_secs(1), "20 fast reads took {took:?} beside a 3 s read");
    slow.await.expect("the slow read's task").expect("the slow read");
    running.await.expect("the read in flight");
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_stuck_on_a_slow_read_is_not_joined() {
    let app = TestApp::spawn().await;
    let (c, running, shared_pid) = one_shared_connection(&app, 6.0).await;
    // Wrongly vouched light: it shares, and holds the shared connection.
    let slow = {
        let c = c.with_read_hint(ReadHint::Light);
        tokio::spawn(
            async move { c.read("SELECT pg_backend_pid(), pg_sleep(3)::text", &[], Consistency::Strong).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = a_burst(&c, 20).await;
    assert!(took < Duration::from_secs(1), "20 fast reads took {took:?} beside a 3 s read on their connection");
    let rows = slow.await.expect("the slow read's task").expect("the slow read");
    assert_eq!(rows[0].get::<_, i32>(0), shared_pid, "the slow read did hold the shared connection");
    running.await.expect("the read in flight");
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shape_observed_slow_moves_to_its_own_connection_and_back_once_fast() {
    let app = TestApp::spawn().await;
    let (c, running, shared_pid) = one_shared_connection(&app, 10.0).await;
    let shape = "SELECT pg_backend_pid(), pg_sleep($1)::text";
    let run = |secs: f64| {
        let c = c.clone();
        async move { c.read(shape, &[&secs], Consistency::Strong).await.expect("a read")[0].get::<_, i32>(0) }
    };
    let lane = || c.status().shapes.iter().find(|s| s.sql == shape).map(|s| s.lane);
    let mut reads = 0;
    while run(0.0).await != shared_pid {
        reads += 1;
        assert!(reads < 30, "the shape never shared: {:?}", c.status().shapes);
    }
    assert_eq!(lane(), Some(Lane::Shared));
    run(0.5).await;
    assert_ne!(run(0.0).await, shared_pid, "seen slow: a connection of its own");
    assert_eq!(lane(), Some(Lane::Own), "{:?}", c.status().shapes);
    let mut fast_runs = 1;
    while run(0.0).await != shared_pid {
        fast_runs += 1;
        assert!(fast_runs < 100, "the shape never came back to the shared connection");
    }
    assert!(fast_runs > 2, "back after {fast_runs} fast runs: one fast run should not undo a slow one");
    assert_eq!(lane(), Some(Lane::Shared));
    running.await.expect("the read in flight");
    c.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_marked_heavy_never_shares_a_connection() {
    let app = TestApp::spawn().await;
    let (c, running, shared_pid) = one_shared_connection(&app, 6.0).await;
    let heavy = c.with_read_hint(ReadHint::Heavy);
    for _ in 0..5 {
        let pid: i32 = heavy.read(WHO, &[], Consistency::Strong).await.expect("a heavy read")[0].get(1);
        assert_ne!(pid, shared_pid, "a heavy read of a shape seen fast still has a connection of its own");
    }
    let pids: BTreeSet<(i32, i32)> = concurrent_reads(&heavy, 6, 100, Consistency::Strong).await.into_iter().collect();
    assert_eq!(pids.len(), 6, "concurrent heavy reads share nothing: {pids:?}");
    assert!(pids.iter().all(|(_, pid)| *pid != shared_pid), "{pids:?}");
    assert_eq!(backend(&c).await, shared_pid, "unmarked reads of the shape still share");
    running.await.expect("the read in flight");
    c.close();
}
