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
const TEST_OVERRIDES: [(&str, &str); 2] =
    [("FWDB__POSTGRES__POOL__MIN_SIZE", "1"), ("FWDB__MONGO__POOL__MIN_SIZE", "0")];

impl TestApp {
    pub async fn spawn() -> TestApp {
        let stack = shared_stack().await;
        let db = tokio::task::spawn_blocking(move || stack.create_database())
            .await
            .expect("create_database panicked")
            .expect("a fresh database on the local stack");
        let info = stack.info();
        let mut env = info.env_vars(&db, &db);
        env.extend(TEST_OVERRIDES.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = info.config(&db, &db, &TEST_OVERRIDES).expect("the stack's configuration loads");
        TestApp { stack, pg_database: db.clone(), mongo_database: db, env, config }
    }

    /// A fresh app whose databases have the whole Fashion Wallet schema (all
    /// migrations applied, as the admin login, and the role matrix's grants
    /// after them, as `fwdb migrate up` does).
    pub async fn migrated() -> TestApp {
        let app = TestApp::spawn().await;
        let lock = app.admin().await;
        let conn = app.admin().await;
        let pg = fwdb::MigrationSource::Embedded.load(fwdb::Store::Postgres).expect("embedded postgres migrations");
        let opts = fwdb::UpOptions::default();
        fwdb::Migrator::postgres(&lock, &conn, &pg)
            .expect("migrator")
            .up(&opts)
            .await
            .expect("postgres migrations apply");
        fwdb::apply_grants(&conn, &app.config).await.expect("the role matrix's grants apply after the migrations");
        let db = app.mongo().await;
        let mg = fwdb::MigrationSource::Embedded.load(fwdb::Store::Mongo).expect("embedded mongodb migrations");
        fwdb::Migrator::mongo(&db, &mg).expect("migrator").up(&opts).await.expect("mongodb migrations apply");
        app
    }

    /// The `fwdb` binary, with this app's settings and none of the caller's `FWDB__` variables.
    pub fn fwdb(&self) -> Command {
        let mut cmd = fwdb_command();
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// A connection as the admin login (app_admin: migrations, DDL), over TLS and SCRAM.
    pub async fn admin(&self) -> tokio_postgres::Client {
        fwdb::connect(&self.config.postgres.as_admin(), fwdb::ConnectTarget::Primary)
            .await
            .expect("an admin-login connection")
    }

    /// A connection as the runtime login (app_readwrite), over TLS and SCRAM.
    pub async fn runtime(&self) -> tokio_postgres::Client {
        fwdb::connect(&self.config.postgres, fwdb::ConnectTarget::Primary).await.expect("a runtime-login connection")
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

/// Creates a test's own tables (in `public`) as the admin login, as a
/// migration would, and lets the runtime login read and write them: the
/// role matrix's grants cover only the Fashion Wallet schemas.
pub async fn scratch_tables(pg: &fwdb::PostgresConfig, ddl: &str) {
    let admin = fwdb::connect(&pg.as_admin(), fwdb::ConnectTarget::Primary).await.expect("an admin-login connection");
    admin
        .batch_execute(&format!(
            "{ddl};\nGRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_readwrite;\n\
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_readwrite;"
        ))
        .await
        .expect("the test's tables");
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
    // Run from a temp folder, the testkit would not find the project's venv and would make another.
    cmd.env("FWDB_ROOT", fwdb_testkit::project_root());
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

/// Command lines of running processes that mention `path` (our servers' data folders).
pub fn processes_mentioning(path: &std::path::Path) -> Vec<String> {
    fwdb_testkit::processes_mentioning(path).into_iter().map(|p| format!("{} {}", p.pid, p.cmdline)).collect()
}

/// Kills a child process when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
