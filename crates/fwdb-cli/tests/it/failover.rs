//! Failover: the primary stops, a replica is promoted, and writes
//! resume on it through the same `PgCluster`, with the writes that failed
//! during the switch counted. Private stacks only.

use crate::routing::{eventually, private_stack};
use fwdb::{Consistency, ErrorKind, Executor, PgCluster, PgHost};
use fwdb_testkit::Node;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Attempt {
    id: i64,
    at: Instant,
    took: Duration,
    result: Result<(), (ErrorKind, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_fail_fast_without_a_primary_and_resume_on_the_promoted_replica_without_a_new_cluster() {
    failover(false).await;
}

/// A crash (SIGKILL) instead of a clean stop: replication is asynchronous, so
/// acknowledged writes may be lost; they are counted and printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_resume_on_the_promoted_replica_after_the_primary_crashes() {
    failover(true).await;
}

async fn failover(crash: bool) {
    let (stack, _db, mut cfg) = tokio::task::block_in_place(private_stack);
    let info = stack.info().clone();
    // The replica that will be promoted is listed among the primary hosts.
    cfg.primary = vec![PgHost::new(&info.host, info.primary.port), PgHost::new(&info.host, info.replicas[0].port)];
    let cluster = PgCluster::connect(&cfg).await.expect("cluster");
    assert_eq!(
        cluster.status().primary.server.as_deref(),
        Some(format!("{}:{}", info.host, info.primary.port).as_str())
    );
    crate::helpers::scratch_tables(&cfg, "create table w (id bigint primary key)").await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let t0 = Instant::now();
                let r = c.write("insert into w values ($1)", &[&id]).await;
                log.push(Attempt {
                    id,
                    at: t0,
                    took: t0.elapsed(),
                    result: r.map(|_| ()).map_err(|e| (e.kind(), e.to_string())),
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped_at = Instant::now();
    if crash {
        tokio::task::block_in_place(|| stack.kill_node(Node::Primary)).expect("kill the primary");
    } else {
        tokio::task::block_in_place(|| stack.stop_node(Node::Primary)).expect("stop the primary");
    }

    // No primary: a write fails with Unavailable, and the next one at once.
    let e1 = cluster.write("insert into w values (-1)", &[]).await.expect_err("no primary");
    assert_eq!(e1.kind(), ErrorKind::Unavailable, "{e1}");
    let t0 = Instant::now();
    let e2 = cluster.write("insert into w values (-2)", &[]).await.expect_err("no primary");
    let fast = t0.elapsed();
    assert_eq!(e2.kind(), ErrorKind::Unavailable, "{e2}");
    assert!(fast < Duration::from_millis(50), "a write fails fast while the primary is known down: {fast:?}");
    assert!(!cluster.status().primary.up);
    // Reads go on meanwhile (the replicas are up).
    cluster.read("select 1", &[], Consistency::Eventual).await.expect("reads survive the primary's loss");

    tokio::task::block_in_place(|| stack.promote(0)).expect("promote replica 1");
    let promoted_at = Instant::now();
    let resumed = eventually(Duration::from_secs(30), || cluster.status().primary.up).await;
    assert!(resumed, "a primary is found again: {:#?}", cluster.status().primary);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let log = writer.await.expect("writer");

    let ok: BTreeSet<i64> = log.iter().filter(|a| a.result.is_ok()).map(|a| a.id).collect();
    let failed: Vec<&Attempt> = log.iter().filter(|a| a.result.is_err()).collect();
    let fast_fails = failed.iter().filter(|a| a.took < Duration::from_millis(10)).count();
    let first_ok_after =
        log.iter().find(|a| a.at > promoted_at && a.result.is_ok()).map(|a| a.at.duration_since(promoted_at));
    let after_promotion_ok =
        log.iter().filter(|a| a.at > promoted_at + Duration::from_millis(200) && a.result.is_ok()).count();
    let rows = cluster.read("select id from w", &[], Consistency::Strong).await.expect("read back on the new primary");
    let present: BTreeSet<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
    let lost: Vec<i64> = ok.difference(&present).copied().collect();
    let st = cluster.status();
    println!(
        "failover ({}): {} writes attempted, {} failed during the switch ({} of them failed fast, kinds {:?}); \
         stop→promote {:?}; first write ok {:?} after promotion; {} acknowledged writes lost; primary now {:?}, drains {}",
        if crash { "primary killed" } else { "primary stopped" },
        log.len(),
        failed.len(),
        fast_fails,
        failed.iter().map(|a| format!("{:?}", a.result.as_ref().unwrap_err().0)).collect::<BTreeSet<_>>(),
        promoted_at.duration_since(stopped_at),
        first_ok_after,
        lost.len(),
        st.primary.server,
        st.primary.drains,
    );
    assert!(!failed.is_empty(), "some writes failed while there was no primary (else the test proved nothing)");
    assert!(
        failed
            .iter()
            .all(|a| a.at >= stopped_at - Duration::from_millis(50) && a.at <= promoted_at + Duration::from_secs(5)),
        "writes fail only during the switch"
    );
    assert!(after_promotion_ok >= 10, "writes resumed on the promoted replica ({after_promotion_ok} ok)");
    if !crash {
        // A clean (fast) shutdown sends all WAL to the connected standbys first.
        assert!(lost.is_empty(), "acknowledged writes missing on the new primary: {lost:?}");
    }
    assert_eq!(st.primary.server.as_deref(), Some(format!("{}:{}", info.host, info.replicas[0].port).as_str()));
    // The promoted replica is no longer a standby: it gets no replica reads.
    assert!(!st.replicas[0].eligible, "{:?}", st.replicas[0]);
}
