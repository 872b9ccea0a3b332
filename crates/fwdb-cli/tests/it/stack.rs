//! The local stack (fwdb-testkit) and `fwdb dev`: replication, archiving,
//! extensions, authentication, MongoDB, free ports, and that no server is ever
//! left behind. Tests that disturb a stack start a private one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fwdb_testkit::{Lifetime, Node, PgBinaries, Stack, StackOptions, TestkitError};

/// The binary's shared stack, started from a blocking thread when called
/// from async code (the testkit is synchronous).
fn shared() -> &'static Stack {
    fwdb_testkit::shared().expect("the local stack starts (see the error for what to install)")
}

async fn shared_async() -> &'static Stack {
    tokio::task::spawn_blocking(shared).await.expect("starting the shared stack panicked")
}

/// Polls `f` until it returns true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh folder for a stack of our own in a chosen folder. It is under the
/// testkit's temporary root, so if this test binary is killed half-way, the
/// next run stops what is left there (detached servers outlive us by design).
fn scratch_dir() -> PathBuf {
    fwdb_testkit::temp_stack_dir().expect("a temporary folder").join("dev")
}

fn remove_scratch(dir: &Path) {
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir_all(parent);
    }
}

/// Server processes (not us, not zombies) still working in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fwdb_testkit::processes_mentioning(dir).into_iter().map(|p| format!("{} {}", p.pid, p.cmdline)).collect()
}

fn small_stack(dir: Option<PathBuf>, replicas: usize, mongo: bool, lifetime: Lifetime) -> Stack {
    Stack::start(StackOptions { dir, replicas, mongo, lifetime, ..Default::default() }).expect("a private stack starts")
}

#[test]
fn both_replicas_stream_from_the_primary() {
    let stack = shared();
    for i in 0..2 {
        let in_recovery =
            stack.psql(Node::Replica(i), "postgres", "SELECT pg_is_in_recovery()").expect("psql on a replica");
        assert_eq!(in_recovery, "t", "replica{} is a standby", i + 1);
    }
    assert_eq!(stack.psql(Node::Primary, "postgres", "SELECT pg_is_in_recovery()").expect("psql"), "f");
    let rows = stack
        .psql(Node::Primary, "postgres", "SELECT application_name || ':' || state FROM pg_stat_replication ORDER BY 1")
        .expect("pg_stat_replication");
    assert_eq!(rows, "replica1:streaming\nreplica2:streaming");
}

#[test]
fn a_row_written_on_the_primary_appears_on_both_replicas() {
    let stack = shared();
    let db = stack.create_database().expect("a database of our own");
    let marker = format!("row-{}", std::process::id());
    stack
        .psql(Node::Primary, &db, &format!("CREATE TABLE t (v text); INSERT INTO t VALUES ('{marker}');"))
        .expect("write on the primary");
    for i in 0..2 {
        let seen = eventually(Duration::from_secs(10), || {
            stack.psql(Node::Replica(i), &db, "SELECT v FROM t").map(|v| v == marker).unwrap_or(false)
        });
        assert!(seen, "replica{} did not receive the row", i + 1);
    }
}

#[test]
fn wal_archiving_puts_a_segment_in_the_archive_after_pg_switch_wal() {
    let stack = shared();
    let db = stack.create_database().expect("a database of our own");
    let segment = stack
        .psql(
            Node::Primary,
            &db,
            "CREATE TABLE w (i int); INSERT INTO w VALUES (1); SELECT pg_walfile_name(pg_current_wal_lsn());",
        )
        .expect("current WAL file");
    stack.psql(Node::Primary, &db, "SELECT pg_switch_wal();").expect("pg_switch_wal");
    let archived = stack.info().archive_dir.join(&segment);
    assert!(
        eventually(Duration::from_secs(15), || archived.is_file()),
        "{} never appeared in the archive",
        archived.display()
    );
}

#[test]
fn pg_stat_statements_is_preloaded_and_queryable() {
    let stack = shared();
    let preload = stack.psql(Node::Primary, "postgres", "SHOW shared_preload_libraries").expect("show");
    assert!(preload.contains("pg_stat_statements"), "{preload}");
    let n =
        stack.psql(Node::Primary, "postgres", "SELECT count(*) >= 0 FROM pg_stat_statements").expect("query the view");
    assert_eq!(n, "t");
}

#[tokio::test]
async fn the_app_role_password_is_stored_as_scram_sha_256_and_opens_a_tcp_session() {
    let stack = shared_async().await;
    let info = stack.info();
    let stored = stack
        .psql(
            Node::Primary,
            "postgres",
            &format!("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{}'", info.app_user),
        )
        .expect("pg_authid");
    assert_eq!(stored, "t");

    let conn = info.app_conn_string(info.primary.port, "postgres");
    let (client, connection) =
        tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.expect("SCRAM login over TCP");
    tokio::spawn(connection);
    let one: i32 = client.query_one("SELECT 1", &[]).await.expect("select 1").get(0);
    assert_eq!(one, 1);

    let wrong =
        format!("host={} port={} user={} password=wrong dbname=postgres", info.host, info.primary.port, info.app_user);
    let err = tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await.err().expect("a wrong password is refused");
    let code = err.as_db_error().map(|e| e.code().clone());
    assert_eq!(code, Some(tokio_postgres::error::SqlState::INVALID_PASSWORD), "{err:?}");
}

#[tokio::test]
async fn mongodb_answers_a_ping_and_runs_a_transaction() {
    use mongodb::bson::{doc, Document};
    let stack = shared_async().await;
    let m = stack.info().mongo.clone().expect("the shared stack runs MongoDB");
    // The replicaSet= form (not directConnection) works: the server advertises
    // itself as the primary of a one-member set at 127.0.0.1:<port>.
    assert!(m.uri.contains(&format!("replicaSet={}", m.replica_set)), "{}", m.uri);
    let client = mongodb::Client::with_uri_str(&m.uri).await.expect("a client");
    client.database("admin").run_command(doc! { "ping": 1 }).await.expect("ping");

    let db = client.database(&format!("t_{}", std::process::id()));
    db.create_collection("items").await.expect("create collection");
    let items = db.collection::<Document>("items");
    let mut session = client.start_session().await.expect("a session");
    session.start_transaction().await.expect("start transaction");
    items.insert_one(doc! { "sku": "a" }).session(&mut session).await.expect("insert in transaction");
    items.insert_one(doc! { "sku": "b" }).session(&mut session).await.expect("insert in transaction");
    session.commit_transaction().await.expect("commit");
    assert_eq!(items.count_documents(doc! {}).await.expect("count"), 2);
    db.drop().await.expect("drop");
}

#[test]
fn a_port_held_by_another_listener_is_skipped() {
    let held_pg = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let held_mongo = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let (p1, p2) = (held_pg.local_addr().expect("addr").port(), held_mongo.local_addr().expect("addr").port());
    let stack = Stack::start(StackOptions {
        replicas: 0,
        mongo: true,
        // The stack must try exactly these first, fail to bind, and move on.
        preferred_ports: vec![p1, p2],
        ..Default::default()
    })
    .expect("the stack starts despite the taken ports");
    let info = stack.info();
    assert_ne!(info.primary.port, p1);
    assert_ne!(info.mongo.as_ref().expect("mongo").port, p2);
    assert_eq!(stack.psql(Node::Primary, "postgres", "SELECT 1").expect("psql"), "1");
    fwdb_testkit::mongo_ping(info.mongo.as_ref().expect("mongo").port).expect("mongo answers");
    stack.stop().expect("stop");
}

#[test]
fn stopping_an_attached_stack_leaves_no_process_mentioning_its_folder() {
    let stack = small_stack(None, 1, true, Lifetime::Attached);
    let dir = stack.dir().to_path_buf();
    assert!(!leftovers(&dir).is_empty(), "the servers show up in /proc while running");
    stack.stop().expect("stop");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
    assert!(!dir.exists(), "a temporary stack's folder is deleted");
}

#[test]
fn down_stops_a_detached_stack_and_leaves_no_process_behind() {
    let dir = scratch_dir();
    let stack = small_stack(Some(dir.clone()), 1, true, Lifetime::Detached);
    let dir = stack.dir().to_path_buf();
    drop(stack); // detached: the servers keep running
    let st = fwdb_testkit::status(&dir).expect("status");
    assert!(st.all_running(), "{st:?}");

    fwdb_testkit::down(&dir).expect("down");
    let st = fwdb_testkit::status(&dir).expect("status");
    assert!(!st.any_running(), "{st:?}");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
    fwdb_testkit::purge(&dir).expect("purge");
    assert!(!dir.exists());
    remove_scratch(&dir);
}

#[test]
fn a_dev_folder_left_by_a_crashed_run_starts_again_on_its_data() {
    let dir = scratch_dir();
    let stack = small_stack(Some(dir.clone()), 1, false, Lifetime::Detached);
    let db = stack.create_database().expect("db");
    stack.psql(Node::Primary, &db, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42);").expect("write");

    // While it runs, a second start is refused with a pointer to `fwdb dev status`.
    let again = Stack::start(StackOptions {
        dir: Some(dir.clone()),
        replicas: 1,
        mongo: false,
        lifetime: Lifetime::Detached,
        ..Default::default()
    });
    match again {
        Err(e @ TestkitError::AlreadyRunning { .. }) => assert!(e.to_string().contains("fwdb dev status"), "{e}"),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }

    // Crash: the replica dies (SIGKILL), the primary survives.
    stack.kill_node(Node::Replica(0)).expect("kill");
    drop(stack);

    let restarted = small_stack(Some(dir.clone()), 1, false, Lifetime::Detached);
    assert_eq!(restarted.psql(Node::Primary, &db, "SELECT v FROM kept").expect("read"), "42");
    assert!(eventually(Duration::from_secs(10), || {
        restarted.psql(Node::Replica(0), &db, "SELECT v FROM kept").map(|v| v == "42").unwrap_or(false)
    }));
    fwdb_testkit::purge(&dir).expect("purge");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
    remove_scratch(&dir);
}

fn fwdb() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwdb"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FWDB_")) {
        cmd.env_remove(k);
    }
    // The venv with the MongoDB-compatible server lives in the checkout.
    cmd.env("FWDB_ROOT", fwdb_testkit::project_root());
    cmd
}

#[test]
fn a_killed_owner_of_an_attached_stack_leaves_no_server_behind() {
    let dir = scratch_dir();
    let mut owner = fwdb()
        .args(["dev", "up", "--foreground", "--replicas", "1", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fwdb dev up --foreground starts");
    let up =
        eventually(Duration::from_secs(120), || fwdb_testkit::status(&dir).map(|s| s.all_running()).unwrap_or(false));
    if !up {
        let _ = owner.kill();
        panic!("the stack did not come up: {:?}", fwdb_testkit::status(&dir));
    }

    // While it runs: `status` says so, `env` gives the settings.
    let status = fwdb().args(["dev", "status", "--dir"]).arg(&dir).output().expect("fwdb dev status");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stdout));
    let env = fwdb().args(["dev", "env", "--dir"]).arg(&dir).output().expect("fwdb dev env");
    let env = String::from_utf8_lossy(&env.stdout);
    let info = fwdb_testkit::load(&dir).expect("load").expect("stack.json");
    assert!(env.contains(&format!("FWDB__POSTGRES__PRIMARY={}", info.primary_addr())), "{env}");
    assert!(env.contains("FWDB__POSTGRES__TLS__MODE=verify-full"), "{env}");
    assert!(env.contains("FWDB__MONGO__DATABASE=fashion_wallet"), "{env}");

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap it");
    let gone = eventually(Duration::from_secs(5), || leftovers(&dir).is_empty());
    assert!(gone, "servers outlived their owner: {:?}", leftovers(&dir));

    let status = fwdb().args(["dev", "status", "--dir"]).arg(&dir).output().expect("fwdb dev status");
    assert_eq!(status.status.code(), Some(1), "status exits 1 when servers are down");
    let purge = fwdb().args(["dev", "down", "--purge", "--dir"]).arg(&dir).output().expect("fwdb dev down --purge");
    assert!(purge.status.success(), "{}", String::from_utf8_lossy(&purge.stderr));
    assert!(!dir.exists());
    remove_scratch(&dir);
}

/// `fwdb dev status` of the stack in `dir`: its exit code, and its text or JSON.
fn dev_status(dir: &Path, json: bool) -> (Option<i32>, String) {
    let mut cmd = fwdb();
    if json {
        cmd.args(["--format", "json"]);
    }
    let out = cmd.args(["dev", "status", "--dir"]).arg(dir).output().expect("fwdb dev status");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The STATE column of each server's row of `fwdb dev status`.
fn states_in_text(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let state = ["not answering", "running", "down"].into_iter().find(|s| l.trim_end().ends_with(s))?;
            Some((name.to_string(), state.to_string()))
        })
        .collect()
}

fn states_in_json(json: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["servers"]
        .as_array()
        .expect("a servers list")
        .iter()
        .map(|s| {
            (s["name"].as_str().unwrap_or_default().to_string(), s["state"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn dev_status_says_a_frozen_server_is_not_answering_and_running_again_once_resumed() {
    let dir = scratch_dir();
    let stack = small_stack(Some(dir.clone()), 0, true, Lifetime::Attached);
    let dir = stack.dir().to_path_buf();
    let pair = |a: &str, b: &str| vec![("primary".to_string(), a.to_string()), ("mongo".to_string(), b.to_string())];

    let (code, text) = dev_status(&dir, false);
    assert_eq!((code, states_in_text(&text)), (Some(0), pair("running", "running")), "{text}");

    stack.pause(Node::Primary).expect("SIGSTOP the primary");
    stack.pause(Node::Mongo).expect("SIGSTOP MongoDB");
    let (code, text) = dev_status(&dir, false);
    assert_eq!((code, states_in_text(&text)), (Some(1), pair("not answering", "not answering")), "{text}");
    let (code, json) = dev_status(&dir, true);
    assert_eq!((code, states_in_json(&json)), (Some(1), pair("not answering", "not answering")), "{json}");

    stack.resume(Node::Primary).expect("SIGCONT the primary");
    let (code, text) = dev_status(&dir, false);
    assert_eq!((code, states_in_text(&text)), (Some(1), pair("running", "not answering")), "{text}");
    stack.resume(Node::Mongo).expect("SIGCONT MongoDB");
    let (code, json) = dev_status(&dir, true);
    assert_eq!((code, states_in_json(&json)), (Some(0), pair("running", "running")), "{json}");

    stack.stop().expect("stop");
    remove_scratch(&dir);
}

#[test]
fn missing_postgresql_binaries_give_an_error_naming_the_package_and_fwdb_pg_bin() {
    let err = PgBinaries::find_with(Some("/nonexistent".into())).expect_err("no binaries there");
    let msg = err.to_string();
    assert!(matches!(err, TestkitError::PgBinariesNotFound { .. }), "{err:?}");
    assert!(msg.contains("sudo apt-get install postgresql"), "{msg}");
    assert!(msg.contains("FWDB_PG_BIN"), "{msg}");
}
