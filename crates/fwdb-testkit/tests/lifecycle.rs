//! The testkit on its own: a private stack starts, answers, and leaves
//! nothing behind. (The fuller behaviour is tested in fwdb-cli's `stack` tests.)

use fwdb_testkit::{processes_mentioning, Node, Stack, StackOptions};

#[test]
fn a_private_stack_starts_answers_and_leaves_nothing_behind() {
    let stack = Stack::start(StackOptions::default()).expect("stack starts");
    let dir = stack.dir().to_path_buf();
    for h in stack.health() {
        assert!(h.ok, "{} unhealthy: {}", h.name, h.detail);
    }
    assert_eq!(stack.psql(Node::Replica(1), "postgres", "select pg_is_in_recovery()").expect("psql"), "t");
    stack.stop().expect("stop");
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!dir.exists(), "temp folder removed");
}

/// psql over TCP with TLS verify-full as the app user, optionally presenting a
/// client certificate; returns stdout or stderr.
fn tls_psql(
    info: &fwdb_testkit::StackInfo,
    cert: Option<(&std::path::Path, &std::path::Path)>,
    sql: &str,
) -> Result<String, String> {
    let mut conn = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=verify-full sslrootcert={}",
        info.primary.port,
        info.app_user,
        info.app_password,
        info.tls.ca_cert.display()
    );
    if let Some((c, k)) = cert {
        conn.push_str(&format!(" sslcert={} sslkey={}", c.display(), k.display()));
    }
    let out = std::process::Command::new(info.pg_bin_dir.join("psql"))
        .args(["-XAtq", "-d", &conn, "-c", sql])
        .env("HOME", "/nonexistent")
        .output()
        .expect("psql runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|s| s.trim_start().chars().next()).unwrap_or('?')
}

#[test]
fn fault_injection_and_certificates_work_on_a_private_stack() {
    let stack = Stack::start(StackOptions::default()).expect("stack starts");
    let info = stack.info().clone();

    // TLS: the generated client certificate, a newly issued one, an expired one.
    let dn = "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(
        tls_psql(&info, Some((&info.tls.client_cert, &info.tls.client_key)), dn).expect("client cert"),
        "/CN=fwdb_app"
    );
    let (c, k) = stack.issue_client_cert("someone", 30).expect("issue");
    assert_eq!(tls_psql(&info, Some((&c, &k)), dn).expect("issued cert"), "/CN=someone");
    let (c, k) = stack.issue_client_cert("expired", -1).expect("issue expired");
    let err = tls_psql(&info, Some((&c, &k)), "select 1").expect_err("an expired certificate is refused");
    assert!(err.contains("expired"), "{err}");

    // pause / resume
    let pid = stack.pid(Node::Replica(0)).expect("replica1 runs");
    stack.pause(Node::Replica(0)).expect("pause");
    assert_eq!(process_state(pid), 'T');
    stack.resume(Node::Replica(0)).expect("resume");
    assert_ne!(process_state(pid), 'T');

    // kill / start the primary: the replicas stream again
    stack.kill_node(Node::Primary).expect("kill");
    assert!(stack.psql(Node::Primary, "postgres", "select 1").is_err());
    stack.start_node(Node::Primary).expect("start again");
    let streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stack.psql(Node::Primary, "postgres", streaming).ok().as_deref() != Some("2") {
        assert!(std::time::Instant::now() < deadline, "replicas did not reconnect");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let db = stack.create_database().expect("a database after the crash");
    assert_eq!(stack.psql(Node::Replica(1), &db, "select 1").expect("visible on replica2"), "1");

    // stop / start MongoDB
    let port = info.mongo.as_ref().expect("mongo").port;
    stack.stop_node(Node::Mongo).expect("stop mongo");
    assert!(fwdb_testkit::mongo_ping(port).is_err());
    stack.start_node(Node::Mongo).expect("start mongo");
    fwdb_testkit::mongo_ping(port).expect("mongo answers again");

    // promote replica2
    stack.promote(1).expect("promote");
    assert_eq!(stack.psql(Node::Replica(1), "postgres", "select pg_is_in_recovery()").expect("psql"), "f");

    let dir = stack.dir().to_path_buf();
    drop(stack);
    assert!(processes_mentioning(&dir).is_empty());
    assert!(!dir.exists());
}
