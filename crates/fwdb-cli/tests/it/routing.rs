//! Pools and read/write routing: warm pools, acquire timeouts,
//! reads spread over the replicas, a stopped replica left out without a
//! failed read (reads in flight on it moved elsewhere), a lagging replica skipped, read-your-writes. Tests that stop
//! servers or pause replay start a private stack.

use crate::helpers::TestApp;
use fwdb::{Consistency, Executor, PgCluster, PostgresConfig, Route};
use fwdb_testkit::{Node, Stack, StackOptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A private stack (PostgreSQL only, two replicas) with a fresh database,
/// and a configuration for it with fast probes.
pub(crate) fn private_stack() -> (Stack, String, PostgresConfig) {
    let stack = Stack::start(StackOptions { mongo: false, ..Default::default() }).expect("a private stack starts");
    let db = stack.create_database().expect("a database");
    wait_on_replicas(&stack, &db);
    let cfg = stack.info().config(&db, &db, &[("FWDB__POSTGRES__POOL__MIN_SIZE", "2")]).expect("config").postgres;
    (stack, db, fast_probes(cfg))
}

pub(crate) fn fast_probes(mut cfg: PostgresConfig) -> PostgresConfig {
    cfg.routing.probe_interval = Duration::from_millis(100);
    cfg.routing.probe_timeout = Duration::from_millis(1000);
    cfg.routing.eject_after_failures = 1;
    cfg.routing.readmit_after_successes = 2;
    cfg.routing.primary_retry_interval = Duration::from_millis(100);
    cfg
}

fn wait_on_replicas(stack: &Stack, db: &str) {
    for i in 0..stack.info().replicas.len() {
        let ok = eventually_blocking(Duration::from_secs(15), || {
            stack
                .psql(Node::Replica(i), "postgres", &format!("select count(*) from pg_database where datname = '{db}'"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false)
        });
        assert!(ok, "database {db} never reached replica {i}");
    }
}

fn eventually_blocking(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub(crate) async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Which server answered: its port (`inet_server_port()`).
pub(crate) async fn served_by(cluster: &PgCluster, c: Consistency) -> fwdb::Result<i32> {
    let rows = cluster.read("select inet_server_port()", &[], c).await?;
    Ok(rows[0].get(0))
}

fn ports(stack: &Stack) -> (i32, i32, i32) {
    let i = stack.info();
    (i.primary.port as i32, i.replicas[0].port as i32, i.replicas[1].port as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_size_connections_are_open_after_connect_on_every_server() {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
    cfg.pool.min_size = 4;
    cfg.application_name = format!("minsize-{}", app.pg_database);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let sql = format!("select count(*) from pg_stat_activity where application_name = '{}'", cfg.application_name);
    let on = |node: Node| app.stack.psql(node, "postgres", &sql).expect("psql").trim().parse::<i64>().expect("a count");
    let (p, r0, r1) = tokio::task::block_in_place(|| (on(Node::Primary), on(Node::Replica(0)), on(Node::Replica(1))));
    // +1 on each: the probe's own connection.
    assert_eq!((p, r0, r1), (5, 5, 5), "min_size 4 pooled + 1 probe connection per server");
    let st = cluster.status();
    assert_eq!(st.primary.pool.size, 4);
    assert_eq!(st.primary.pool.idle, 4);
    assert!(st.replicas.iter().all(|r| r.pool.size == 4), "{st:#?}");
    let json = serde_json::to_value(&st).expect("ClusterStatus serializes");
    assert_eq!(json["primary"]["pool"]["idle"], 4, "{json}");
    assert_eq!(json["replicas"][1]["ejected"], false, "{json}");
    // Never more than max_size.
    let mut cfg2 = cfg.clone();
    cfg2.pool.min_size = 2;
    cfg2.pool.max_size = 2;
    cfg2.pool.acquire_timeout = Duration::from_millis(200);
    let small = PgCluster::connect(&cfg2).await.expect("cluster");
    let a = small.checkout(Route::Primary).await.expect("1st");
    let b = small.checkout(Route::Primary).await.expect("2nd");
    assert!(small.checkout(Route::Primary).await.is_err(), "a third connection beyond max_size 2");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_from_a_full_pool_times_out_with_a_timeout_error() {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    cfg.pool.acquire_timeout = Duration::from_millis(300);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let held = cluster.checkout(Route::Primary).await.expect("the only connection");
    let t0 = Instant::now();
    let err = cluster.write("select 1", &[]).await.expect_err("no connection is free");
    let waited = t0.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.kind(), fwdb::ErrorKind::Timeout);
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(cluster.status().primary.pool.timeouts, 1);
    assert_eq!(cluster.status().primary.pool.in_use, 1);
    drop(held);
    cluster.write("select 1", &[]).await.expect("free again");
    // A timed-out checkout is not a lost primary.
    assert!(cluster.status().primary.up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_reads_spread_over_both_replicas_and_strong_reads_go_to_the_primary() {
    let app = TestApp::spawn().await;
    let mut cfg = fast_probes(app.config.postgres.clone());
    // Other tests load the shared stack: lag is not this test's subject.
    cfg.routing.max_replica_lag_bytes = u64::MAX;
    cfg.routing.max_replica_lag = Duration::from_secs(3600);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let (p, r0, r1) = ports(app.stack);
    let mut by_port: HashMap<i32, u32> = HashMap::new();
    for _ in 0..200 {
        *by_port.entry(served_by(&cluster, Consistency::Eventual).await.expect("read")).or_default() += 1;
    }
    println!("200 eventual reads by server port: {by_port:?} (primary {p}, replicas {r0}, {r1})");
    assert_eq!(by_port.get(&p), None, "no eventual read on the primary while both replicas are fine");
    let (a, b) = (by_port.get(&r0).copied().unwrap_or(0), by_port.get(&r1).copied().unwrap_or(0));
    assert!(a >= 60 && b >= 60, "both replicas get a fair share: {a} / {b}");
    let st = cluster.status();
    assert_eq!(st.replicas[0].reads + st.replicas[1].reads, 200);
    assert_eq!(st.reads_primary, 0);
    for _ in 0..10 {
        assert_eq!(served_by(&cluster, Consistency::Strong).await.expect("strong read"), p);
    }
    assert_eq!(cluster.status().reads_primary, 10);
    // Concurrent reads: least outstanding keeps both busy.
    let futs = (0..64).map(|_| {
        let c = cluster.clone();
        async move {
            c.read("select inet_server_port(), pg_sleep(0.02)", &[], Consistency::Eventual)
                .await
                .map(|r| r[0].get::<_, i32>(0))
        }
    });
    let served: Vec<i32> = futures::future::try_join_all(futs).await.expect("concurrent reads");
    assert!(served.contains(&r0) && served.contains(&r1), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_replica_gets_no_reads_and_no_read_fails() {
    let (stack, _db, cfg) = tokio::task::block_in_place(private_stack);
    let (_, r0, r1) = ports(&stack);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    // Readers running throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let c = cluster.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed, mut seen) = (0u32, Vec::new(), Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match served_by(&c, Consistency::Eventual).await {
                        Ok(port) => {
                            ok += 1;
                            seen.push((Instant::now(), port));
                        }
                        Err(e) => failed.push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, failed, seen)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| stack.stop_node(Node::Replica(1))).expect("stop replica 2");
    let stopped_at = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || cluster.status().replicas[1].ejected).await,
        "the stopped replica is ejected"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed, mut after) = (0, Vec::new(), HashMap::<i32, u32>::new());
    for r in readers {
        let (o, f, seen) = r.await.expect("reader");
        ok += o;
        failed.extend(f);
        for (t, port) in seen {
            if t > stopped_at {
                *after.entry(port).or_default() += 1;
            }
        }
    }
    let st = cluster.status();
    println!(
        "{ok} reads ok, {} failed; after the stop by port {after:?}; read retries {}",
        failed.len(),
        st.read_retries
    );
    assert!(failed.is_empty(), "no read fails: {failed:?}");
    assert_eq!(after.get(&r1), None, "the stopped replica served no read after it stopped");
    assert!(after.get(&r0).copied().unwrap_or(0) > 50, "the other replica took the reads: {after:?}");
    assert!(st.replicas[1].reason.is_some());
    // Started again: probed healthy, readmitted, and gets reads again.
    tokio::task::block_in_place(|| stack.start_node(Node::Replica(1))).expect("start replica 2");
    assert!(
        eventually(Duration::from_secs(20), || cluster.status().replicas[1].eligible).await,
        "readmitted: {:#?}",
        cluster.status().replicas[1]
    );
    let mut back = 0;
    for _ in 0..40 {
        if served_by(&cluster, Consistency::Eventual).await.expect("read") == r1 {
            back += 1;
        }
    }
    assert!(back > 0, "the readmitted replica gets reads again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_replica_is_skipped_and_read_your_writes_sees_its_own_write() {
    let (stack, db, mut cfg) = tokio::task::block_in_place(private_stack);
    cfg.routing.max_replica_lag_bytes = 256 * 1024;
    cfg.routing.max_replica_lag = Duration::from_secs(30);
    let (p, r0, r1) = ports(&stack);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    crate::helpers::scratch_tables(&cfg, "create table t (id bigint primary key, pad text)").await;
    assert!(eventually(Duration::from_secs(5), || cluster.status().replicas.iter().all(|r| r.eligible)).await);

    // Replica 1 stops replaying; about 2 MB of WAL follows on the primary.
    tokio::task::block_in_place(|| stack.psql(Node::Replica(0), &db, "select pg_wal_replay_pause()"))
        .expect("pause replay");
    cluster
        .write("insert into t select g, repeat('x', 1000) from generate_series(1, 2000) g", &[])
        .await
        .expect("bulk insert");
    assert!(
        eventually(Duration::from_secs(5), || !cluster.status().replicas[0].eligible).await,
        "the probe sees the lag: {:#?}",
        cluster.status().replicas[0]
    );
    let st = cluster.status();
    println!("lagging replica: {:?}", st.replicas[0]);
    assert!(st.replicas[0].lag_bytes.unwrap_or(0) > 256 * 1024, "{:?}", st.replicas[0]);
    assert!(!st.replicas[0].ejected, "lagging is not failing: skipped, not ejected");
    // Replica 1 replays the same bulk insert: under load it may still be catching up.
    assert!(
        eventually(Duration::from_secs(15), || cluster.status().replicas[1].eligible).await,
        "the replica that keeps up becomes eligible: {:#?}",
        cluster.status().replicas[1]
    );
    let mut by_port: HashMap<i32, u32> = HashMap::new();
    for _ in 0..50 {
        *by_port.entry(served_by(&cluster, Consistency::Eventual).await.expect("read")).or_default() += 1;
    }
    assert_eq!(by_port, HashMap::from([(r1, 50)]), "all eventual reads on the replica that keeps up (r0 {r0})");

    // Both replicas paused: read-your-writes must still see the write. The
    // write adds no statement; the read asks the primary where the write is.
    tokio::task::block_in_place(|| stack.psql(Node::Replica(1), &db, "select pg_wal_replay_pause()"))
        .expect("pause replay");
    let me = cluster.session();
    me.write("insert into t values (100000, 'mine')", &[]).await.expect("my write");
    assert_eq!(me.route_for(me.read_your_writes()), Route::Primary, "a write not located yet: the primary");
    let rows = me
        .read("select pad, inet_server_port() from t where id = 100000", &[], me.read_your_writes())
        .await
        .expect("read");
    let lsn = me.last_write_lsn().await.expect("the write's position");
    assert!(lsn.0 > 0, "the read located the write: {lsn}");
    assert_eq!(rows.len(), 1, "read-your-writes sees its own write");
    assert_eq!(rows[0].get::<_, String>(0), "mine");
    assert_eq!(rows[0].get::<_, i32>(1), p, "served by the primary: no replica has replayed {lsn}");

    // Replay resumes: the replicas catch up and serve read-your-writes again.
    resume(&stack, &db);
    assert!(eventually(Duration::from_secs(10), || cluster.status().replicas.iter().all(|r| r.eligible)).await);
    assert!(
        eventually(Duration::from_secs(10), || matches!(me.route_for(me.read_your_writes()), Route::Replica(_))).await,
        "a replica that replayed {lsn} qualifies"
    );
    let rows =
        me.read("select inet_server_port() from t where id = 100000", &[], me.read_your_writes()).await.expect("read");
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].get::<_, i32>(0), p);

    // A second write after the first was located: its position is asked
    // again, so paused replicas do not qualify with the old one.
    pause(&stack, &db);
    me.write("insert into t values (100001, 'mine too')", &[]).await.expect("my second write");
    let rows = me
        .read("select pad, inet_server_port() from t where id = 100001", &[], me.read_your_writes())
        .await
        .expect("read");
    assert_eq!(rows.len(), 1, "read-your-writes sees the second write");
    assert_eq!(rows[0].get::<_, i32>(1), p, "served by the primary");
    assert!(me.last_write_lsn().await.expect("position") > lsn);
    // Another session's reads do not wait for my writes.
    let other = cluster.session();
    assert_eq!(other.last_write_lsn().await.expect("no writes"), fwdb::Lsn(0));
    assert!(matches!(other.route_for(other.read_your_writes()), Route::Replica(_)), "no writes of its own to wait for");
    resume(&stack, &db);
}

fn pause(stack: &Stack, db: &str) {
    tokio::task::block_in_place(|| {
        stack.psql(Node::Replica(0), db, "select pg_wal_replay_pause()").expect("pause");
        stack.psql(Node::Replica(1), db, "select pg_wal_replay_pause()").expect("pause");
    });
}

fn resume(stack: &Stack, db: &str) {
    tokio::task::block_in_place(|| {
        stack.psql(Node::Replica(0), db, "select pg_wal_replay_resume()").expect("resume");
        stack.psql(Node::Replica(1), db, "select pg_wal_replay_resume()").expect("resume");
    });
}

/// Eight slow reads (each answers its server's port), spread over both
/// replicas; returns once some are running on replica 2.
async fn slow_reads_in_flight_on_replica_2(cluster: &PgCluster) -> Vec<tokio::task::JoinHandle<fwdb::Result<i32>>> {
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let c = cluster.clone();
            tokio::spawn(async move {
                c.read("select inet_server_port(), pg_sleep(1.5)", &[], Consistency::Eventual)
                    .await
                    .map(|r| r[0].get::<_, i32>(0))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(cluster.status().replicas[1].outstanding > 0, "reads are in flight on replica 2");
    reads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_in_flight_on_a_replica_that_dies_is_retried_on_another_server() {
    let (stack, _db, mut cfg) = tokio::task::block_in_place(private_stack);
    // Probes far apart: the router itself must notice the death.
    cfg.routing.probe_interval = Duration::from_secs(30);
    let (_, r0, r1) = ports(&stack);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let reads = slow_reads_in_flight_on_replica_2(&cluster).await;
    tokio::task::block_in_place(|| stack.kill_node(Node::Replica(1))).expect("kill replica 2");
    let mut served = Vec::new();
    for r in reads {
        served.push(r.await.expect("join").expect("no read fails"));
    }
    let st = cluster.status();
    println!("served by {served:?}; read retries {}", st.read_retries);
    assert!(served.iter().all(|p| *p == r0), "every read finished on the surviving replica (r1 {r1}): {served:?}");
    assert!(st.read_retries >= 1, "the reads on the dead replica were retried");
    assert!(st.replicas[1].ejected, "the router ejected the dead replica without waiting for a probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_in_flight_on_a_stopped_replica_moves_to_another_server_once_the_probe_ejects_it() {
    let (stack, _db, cfg) = tokio::task::block_in_place(private_stack);
    let (_, r0, r1) = ports(&stack);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let reads = slow_reads_in_flight_on_replica_2(&cluster).await;
    // SIGSTOP: the connection stays open and the server never answers, nor
    // runs out a statement_timeout; only the probe can tell.
    tokio::task::block_in_place(|| stack.pause(Node::Replica(1))).expect("stop replica 2");
    let mut served = Vec::new();
    let mut hung = 0;
    for r in reads {
        // A guard against hanging, not a measurement: without the
        // abandonment these reads wait until the replica is resumed.
        match tokio::time::timeout(Duration::from_secs(30), r).await {
            Ok(res) => served.push(res.expect("join").expect("no read fails")),
            Err(_) => hung += 1,
        }
    }
    tokio::task::block_in_place(|| stack.resume(Node::Replica(1))).expect("resume replica 2");
    let st = cluster.status();
    println!("served by {served:?}, {hung} still waiting; read retries {}", st.read_retries);
    assert_eq!(hung, 0, "reads still waiting on the stopped replica");
    assert!(served.iter().all(|p| *p == r0), "every read finished on the other replica (r1 {r1}): {served:?}");
    assert!(st.read_retries >= 1, "the reads on the stopped replica were moved");
    assert!(
        st.replicas[1].reason.as_deref().is_some_and(|r| r.starts_with("probe")),
        "ejected by the probe: {:?}",
        st.replicas[1].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_above_min_size_are_closed_and_old_ones_replaced() {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
    cfg.replicas.clear();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 5;
    cfg.pool.idle_timeout = Duration::from_millis(200);
    cfg.routing.maintenance_interval = Duration::from_millis(100);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let held: Vec<_> =
        futures::future::try_join_all((0..5).map(|_| cluster.checkout(Route::Primary))).await.expect("five");
    let first_pids: Vec<i32> = {
        let mut v = Vec::new();
        for c in &held {
            v.push(c.query_one("select pg_backend_pid()", &[]).await.expect("pid").get(0));
        }
        v
    };
    drop(held);
    assert_eq!(cluster.status().primary.pool.size, 5);
    assert!(
        eventually(Duration::from_secs(5), || cluster.status().primary.pool.size == 1).await,
        "{:?}",
        cluster.status().primary.pool
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.status().primary.pool.size, 1, "never below min_size");

    // max_lifetime: the connection is replaced, not reused.
    let mut cfg = cfg.clone();
    cfg.pool.max_lifetime = Duration::from_millis(300);
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let pid = |c: fwdb::PgConn| async move {
        c.query_one("select pg_backend_pid()", &[]).await.expect("pid").get::<_, i32>(0)
    };
    let a = pid(cluster.checkout(Route::Primary).await.expect("conn")).await;
    assert_eq!(pid(cluster.checkout(Route::Primary).await.expect("conn")).await, a, "reused while young");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = pid(cluster.checkout(Route::Primary).await.expect("conn")).await;
    assert_ne!(a, b, "replaced after max_lifetime");
    assert!(!first_pids.contains(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_call_statement_timeout_applies_to_that_call_alone() {
    let app = TestApp::spawn().await;
    let mut cfg = app.config.postgres.clone();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    let quick = cluster.with_statement_timeout(Duration::from_millis(100));
    for c in [Consistency::Strong, Consistency::Eventual] {
        let e = quick.read("select pg_sleep(1)", &[], c).await.expect_err("cancelled");
        assert!(e.is_timeout(), "{c:?}: {e}");
    }
    let e = quick.write("select pg_sleep(1)", &[]).await.expect_err("cancelled");
    assert!(e.is_timeout(), "{e}");
    let st = cluster.status();
    assert!(st.replicas.iter().all(|r| !r.ejected), "a cancelled statement is not a lost server: {st:#?}");
    assert!(st.primary.up);
    // The same (only) connections, back at the configured timeout.
    let shown: String = cluster.write("show statement_timeout", &[]).await.expect("show")[0].get(0);
    assert_eq!(shown, "30s");
    cluster.read("select pg_sleep(0.3)", &[], Consistency::Strong).await.expect("the normal timeout again");
    let rows = quick.read("select 1", &[], Consistency::Eventual).await.expect("a quick read passes");
    assert_eq!(rows[0].get::<_, i32>(0), 1);
}
