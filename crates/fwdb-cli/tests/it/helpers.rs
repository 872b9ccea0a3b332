//! `TestApp::spawn()`: a fresh PostgreSQL database and a fresh MongoDB
//! database on the shared local stack, the configuration that reaches them,
//! and the `fwdb` command set up for them.

#![allow(dead_code)]

use fwdb_testkit::Stack;
use std::process::Command;

pub struct TestApp {
    pub stack: &'static Stack,
    pub pg_database: String,
    pub mongo_database: String,
    /// The `FWDB__...` variables of this app (also given to `fwdb()`).
    pub env: Vec<(String, String)>,
    pub config: fwdb::Config,
}

/// Small pools: many tests share one stack, each with pools of its own.
const TEST_OVERRIDES: [(&str, &str); 2] = [("FWDB__POSTGRES__POOL__MIN_SIZE", "1"), ("FWDB__MONGO__POOL__MIN_SIZE", "0")];

impl TestApp {
    pub async fn spawn() -> TestApp {
        let stack = shared_stack().await;
        let db = tokio::task::spawn_blocking(move || stack.create_database())
            .await
            .expect("create_database panicked")
            .expect("a fresh database on the local stack");
        wait_for_replicas(stack, &db).await;
        let info = stack.info();
        let mut env = info.env_vars(&db, &db);
        env.extend(TEST_OVERRIDES.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = info.config(&db, &db, &TEST_OVERRIDES).expect("the stack's configuration loads");
        TestApp { stack, pg_database: db.clone(), mongo_database: db, env, config }
    }

    /// The `fwdb` binary, with this app's settings and none of the caller's `FWDB__` variables.
    pub fn fwdb(&self) -> Command {
        let mut cmd = fwdb_command();
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// A superuser connection to this app's PostgreSQL database (unix socket, trust).
    pub async fn pg(&self) -> tokio_postgres::Client {
        superuser(self.stack, &self.pg_database).await
    }

    /// This app's MongoDB database.
    pub async fn mongo(&self) -> mongodb::Database {
        fwdb::mongo_database(&self.config.mongo).await.expect("a MongoDB client")
    }
}

/// A new database reaches the replicas a moment after the primary has it;
/// tests that read from replicas need it there first.
async fn wait_for_replicas(stack: &'static Stack, db: &str) {
    let sql = format!("select count(*) from pg_database where datname = '{db}'");
    for i in 0..stack.info().replicas.len() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let node = fwdb_testkit::Node::Replica(i);
            let sql = sql.clone();
            let seen = tokio::task::spawn_blocking(move || stack.psql(node, "postgres", &sql)).await.expect("join");
            if seen.map(|s| s.trim() == "1").unwrap_or(false) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "database {db} never reached replica {i}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

pub async fn shared_stack() -> &'static Stack {
    tokio::task::spawn_blocking(fwdb_testkit::shared)
        .await
        .expect("starting the stack panicked")
        .expect("the local stack starts (see the error above for what to install)")
}

/// `fwdb` with a clean environment: no `FWDB__` or `FWDB_PROFILE` from the caller, run in an empty folder.
pub fn fwdb_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwdb"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FWDB_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

pub async fn superuser(stack: &Stack, database: &str) -> tokio_postgres::Client {
    let info = stack.info();
    let mut c = tokio_postgres::Config::new();
    c.host_path(&info.socket_dir).port(info.primary.port).user(&info.superuser).dbname(database);
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("superuser connection over the unix socket");
    tokio::spawn(conn);
    client
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("the command runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Command lines of running processes that mention `path` (our servers put their data folder in theirs).
pub fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(&needle))
        .collect()
}
