//! `TestApp::spawn()`: a fresh PostgreSQL database and a fresh MongoDB
//! database on the shared local stack, and the configuration that reaches
//! them (zero-to-production's `spawn_app`). Every integration-test binary of
//! the workspace uses it; they share one stack per process.

use crate::Stack;

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

/// The stack every test of this process shares, started on first use.
pub async fn shared_stack() -> &'static Stack {
    tokio::task::spawn_blocking(crate::shared)
        .await
        .expect("starting the stack panicked")
        .expect("the local stack starts (see the error above for what to install)")
}

/// A superuser connection to `database` (unix socket, trust).
pub async fn superuser(stack: &Stack, database: &str) -> tokio_postgres::Client {
    let info = stack.info();
    let mut c = tokio_postgres::Config::new();
    c.host_path(&info.socket_dir).port(info.primary.port).user(&info.superuser).dbname(database);
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("superuser connection over the unix socket");
    tokio::spawn(conn);
    client
}
