//! `fwdb migrate` against the local stack: the schema, concurrency, drift,
//! failures, CONCURRENTLY, the MongoDB validator and lock lease.

use crate::helpers::{run, TestApp};
use fwdb::{DownOptions, MigrationSource, Migrator, Store, UpOptions};
use mongodb::bson::{doc, Bson, Document};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPO_MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");

fn embedded_count(store: Store) -> usize {
    MigrationSource::Embedded.load(store).expect("the embedded migrations load").migrations().len()
}

/// A migrations folder of our own, for tests that need to change files.
fn temp_migrations(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir_all(dir.path().join("postgres")).expect("postgres/");
    std::fs::create_dir_all(dir.path().join("mongodb")).expect("mongodb/");
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    dir
}

fn write(root: &Path, name: &str, text: &str) {
    let sub = if name.ends_with(".json") { "mongodb" } else { "postgres" };
    std::fs::write(root.join(sub).join(name), text).expect("write a migration");
}

fn copy_repo_migrations() -> tempfile::TempDir {
    let dir = temp_migrations(&[]);
    for sub in ["postgres", "mongodb"] {
        for entry in std::fs::read_dir(Path::new(REPO_MIGRATIONS).join(sub)).expect("migrations/") {
            let entry = entry.expect("an entry");
            std::fs::copy(entry.path(), dir.path().join(sub).join(entry.file_name())).expect("copy");
        }
    }
    dir
}

fn migrate(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    run(app.fwdb().arg("migrate").args(args))
}

fn dir_arg(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

/// (version, outcome, reason) of every PostgreSQL history row, in order.
async fn pg_history(app: &TestApp) -> Vec<(i64, String, Option<String>)> {
    let rows = app
        .pg()
        .await
        .query("SELECT version, outcome, reason FROM fwdb_migrations.history ORDER BY seq", &[])
        .await
        .expect("history");
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

async fn mongo_history(app: &TestApp) -> Vec<(i64, String)> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = app
        .mongo()
        .await
        .collection::<Document>("fwdb_migrations")
        .find(doc! {})
        .sort(doc! { "seq": 1 })
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("history docs");
    docs.iter()
        .map(|d| (d.get_i64("version").unwrap_or_default(), d.get_str("outcome").unwrap_or_default().to_owned()))
        .collect()
}

/// Each version appears with outcome `applied` exactly once.
fn assert_applied_once<V: std::fmt::Debug + Ord + Clone>(rows: &[(V, String)], expected: usize) {
    let mut applied: Vec<V> = rows.iter().filter(|(_, o)| o == "applied").map(|(v, _)| v.clone()).collect();
    let n = applied.len();
    applied.dedup();
    assert_eq!(n, applied.len(), "a migration was applied twice: {rows:?}");
    assert_eq!(n, expected, "{rows:?}");
}

async fn pg_one<T: for<'a> tokio_postgres::types::FromSql<'a>>(app: &TestApp, sql: &str) -> T {
    app.pg().await.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

#[tokio::test]
async fn fresh_database_gets_the_whole_schema_and_up_twice_is_a_noop() {
    let app = TestApp::spawn().await;
    let (code, out, err) = migrate(&app, &["up"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");

    let ext: i64 =
        pg_one(&app, "SELECT count(*) FROM pg_extension WHERE extname IN ('uuid-ossp','pgcrypto','pg_trgm','ltree')")
            .await;
    assert_eq!(ext, 4);
    let schemas: i64 = pg_one(
        &app,
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('shared','avatar','catalog','design','audit')",
    )
    .await;
    assert_eq!(schemas, 5);
    for table in ["shared.users", "avatar.avatars", "catalog.items", "audit.log"] {
        let comment: Option<String> =
            pg_one(&app, &format!("SELECT obj_description('{table}'::regclass, 'pg_class')")).await;
        assert!(comment.is_some(), "{table} has no comment");
    }
    let cols: Vec<String> = app
        .pg()
        .await
        .query("SELECT column_name::text FROM information_schema.columns WHERE table_schema='shared' AND table_name='users' ORDER BY 1", &[])
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for c in [
        "id",
        "email",
        "first_name",
        "last_name",
        "role",
        "created_at",
        "updated_at",
        "deleted_at",
        "created_by",
        "updated_by",
    ] {
        assert!(cols.iter().any(|x| x == c), "shared.users lacks {c}: {cols:?}");
    }
    // The 6.2 index, built CONCURRENTLY by a no-transaction migration: valid, unique, partial.
    let valid: bool = pg_one(&app, "SELECT indisvalid AND indisunique AND indpred IS NOT NULL FROM pg_index WHERE indexrelid = 'shared.idx_users_email'::regclass").await;
    assert!(valid);

    // Email unique among live rows, ignoring case; updated_at kept by the trigger.
    let pg = app.pg().await;
    pg.batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('ann@x.com', 'Ann', 'A')")
        .await
        .expect("insert");
    let dup = pg
        .batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('ANN@x.com', 'Ann', 'B')")
        .await;
    assert_eq!(dup.expect_err("duplicate live email").code().map(|c| c.code()), Some("23505"));
    pg.batch_execute("UPDATE shared.users SET deleted_at = now() WHERE email = 'ann@x.com'")
        .await
        .expect("soft delete");
    pg.batch_execute("INSERT INTO shared.users (email, first_name, last_name) VALUES ('ann@x.com', 'Ann', 'C')")
        .await
        .expect("a deleted account frees its email");
    pg.batch_execute(
        "UPDATE shared.users SET created_at = now() - interval '1 day', updated_at = now() - interval '1 day'",
    )
    .await
    .expect("backdate");
    pg.batch_execute("UPDATE shared.users SET first_name = 'Anna'").await.expect("update");
    let fresh: bool = pg_one(&app, "SELECT bool_and(updated_at > now() - interval '1 minute') FROM shared.users").await;
    assert!(fresh, "the trigger keeps updated_at current");
    let neg = pg
        .batch_execute(
            "INSERT INTO catalog.items (sku, name, category_path, price) VALUES ('s', 'Dress', 'women.dresses', -1)",
        )
        .await;
    assert_eq!(neg.expect_err("negative price").code().map(|c| c.code()), Some("23514"));

    // MongoDB: designs with its three indexes.
    let names = index_names(&app).await;
    for n in ["userId_1_status_1_createdAt_-1", "metadata.tags_1", "deletedAt_1"] {
        assert!(names.contains(&n.to_owned()), "{names:?}");
    }

    let before = (pg_history(&app).await.len(), mongo_history(&app).await.len());
    let (code, out, err) = migrate(&app, &["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("nothing applied"), "{out}");
    assert_eq!(before, (pg_history(&app).await.len(), mongo_history(&app).await.len()), "a second up wrote history");

    let (code, out, err) = migrate(&app, &["status", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status is JSON");
    let states: Vec<&str> = status
        .as_array()
        .expect("an array per database")
        .iter()
        .flat_map(|s| s["migrations"].as_array().into_iter().flatten())
        .filter_map(|m| m["state"].as_str())
        .collect();
    assert_eq!(states.len(), embedded_count(Store::Postgres) + embedded_count(Store::Mongo));
    assert!(states.iter().all(|s| *s == "applied"), "{states:?}");
}

async fn index_names(app: &TestApp) -> Vec<String> {
    app.mongo().await.collection::<Document>("designs").list_index_names().await.expect("designs indexes")
}

#[tokio::test]
async fn eight_concurrent_processes_apply_each_migration_once() {
    let app = TestApp::spawn().await;
    let children: Vec<_> = (0..8)
        .map(|_| {
            app.fwdb()
                .args(["migrate", "up"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn fwdb")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("fwdb runs");
        assert!(out.status.success(), "a runner failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pg: Vec<(i64, String)> = pg_history(&app).await.into_iter().map(|(v, o, _)| (v, o)).collect();
    assert_applied_once(&pg, embedded_count(Store::Postgres));
    assert_applied_once(&mongo_history(&app).await, embedded_count(Store::Mongo));
}

#[tokio::test]
async fn eight_concurrent_library_runners_apply_each_migration_once() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let config = app.config.clone();
        tasks.push(tokio::spawn(async move {
            let set = MigrationSource::Embedded.load(Store::Postgres)?;
            let lock = fwdb::connect(&config.postgres.as_admin(), fwdb::ConnectTarget::Primary).await?;
            let conn = fwdb::connect(&config.postgres.as_admin(), fwdb::ConnectTarget::Primary).await?;
            let pg = Migrator::postgres(&lock, &conn, &set)?.up(&UpOptions::default()).await?.ran.len();
            let set = MigrationSource::Embedded.load(Store::Mongo)?;
            let db = fwdb::mongo_database(&config.mongo).await?;
            let mongo = Migrator::mongo(&db, &set)?.up(&UpOptions::default()).await?.ran.len();
            Ok::<_, fwdb::Error>((pg, mongo))
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (pg, mongo) = t.await.expect("task").expect("every runner succeeds");
        total = (total.0 + pg, total.1 + mongo);
    }
    assert_eq!(total, (embedded_count(Store::Postgres), embedded_count(Store::Mongo)));
    let pg: Vec<(i64, String)> = pg_history(&app).await.into_iter().map(|(v, o, _)| (v, o)).collect();
    assert_applied_once(&pg, embedded_count(Store::Postgres));
    assert_applied_once(&mongo_history(&app).await, embedded_count(Store::Mongo));
}

fn pg_dump(app: &TestApp) -> String {
    let info = app.stack.info();
    let out = std::process::Command::new(info.pg_bin_dir.join("pg_dump"))
        .args(["--schema-only", "--no-owner", "-h"])
        .arg(&info.socket_dir)
        .args(["-p", &info.primary.port.to_string(), "-U", &info.superuser, "-d", &app.pg_database])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    // pg_dump's \restrict lines carry a random key per run.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn mongo_schema(app: &TestApp) -> String {
    use futures::TryStreamExt;
    let db = app.mongo().await;
    let specs: Vec<_> = db.list_collections().await.expect("collections").try_collect().await.expect("specs");
    let mut out: Vec<String> = specs
        .into_iter()
        .filter(|s| !s.name.starts_with("fwdb_"))
        .map(|s| format!("{} {:?}", s.name, s.options.validator))
        .collect();
    if out.iter().any(|s| s.starts_with("designs ")) {
        let mut idx = index_names(app).await;
        idx.sort();
        out.push(format!("{idx:?}"));
    }
    out.sort();
    out.join("\n")
}

#[tokio::test]
async fn every_up_has_a_working_down() {
    let app = TestApp::spawn().await;
    let (code, _, err) = migrate(&app, &["up"]);
    assert_eq!(code, 0, "{err}");
    let (pg_a, mongo_a) = (pg_dump(&app), mongo_schema(&app).await);
    assert!(pg_a.contains("CREATE TABLE shared.users"));

    let (code, out, err) = migrate(&app, &["down", "--steps", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    let left: i64 = pg_one(
        &app,
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('shared','avatar','catalog','design','audit')",
    )
    .await;
    assert_eq!(left, 0, "down left schemas behind");
    assert_eq!(mongo_schema(&app).await, "", "down left collections behind");

    let (code, _, err) = migrate(&app, &["up"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(pg_dump(&app), pg_a, "PostgreSQL schema differs after up, down, up");
    assert_eq!(mongo_schema(&app).await, mongo_a, "MongoDB schema differs after up, down, up");
}

const GOOD_UP: &str = "CREATE TABLE good (id int PRIMARY KEY);\n";
const BAD_UP: &str =
    "-- creates a table, then fails\nCREATE TABLE doomed (id int);\n\nINSERT INTO doomed\n  VALUES (no_such_column);\n";

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind_and_names_file_line_and_sqlstate() {
    let app = TestApp::spawn().await;
    let dir = temp_migrations(&[
        ("20240101000000_good.up.sql", GOOD_UP),
        ("20240101000000_good.down.sql", "DROP TABLE good;"),
        ("20240102000000_bad.up.sql", BAD_UP),
        ("20240102000000_bad.down.sql", "DROP TABLE doomed;"),
    ]);
    let (code, _, err) = migrate(&app, &["up", "--db", "postgres", "--dir", &dir_arg(&dir)]);
    assert_ne!(code, 0);
    assert!(err.contains("20240102000000_bad.up.sql:5:"), "file and line of the bad column: {err}");
    assert!(err.contains("42703"), "SQLSTATE: {err}");
    assert!(err.contains("statement starting on line 4"), "{err}");
    let doomed: Option<String> = pg_one(&app, "SELECT to_regclass('public.doomed')::text").await;
    assert_eq!(doomed, None, "the failed migration's table was left behind");
    let history = pg_history(&app).await;
    assert_eq!(history, vec![(20240101000000, "applied".into(), None)], "only the good one is recorded");
}

#[tokio::test]
async fn a_failed_no_transaction_migration_says_what_to_do() {
    let app = TestApp::spawn().await;
    let up = "-- fwdb:no-transaction\nCREATE TABLE dup (id int);\nINSERT INTO dup VALUES (1), (1);\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS dup_id ON dup (id);\n";
    let dir = temp_migrations(&[
        ("20240101000000_dup.up.sql", up),
        ("20240101000000_dup.down.sql", "DROP TABLE IF EXISTS dup;"),
    ]);
    let args = ["up", "--db", "postgres", "--dir", &dir_arg(&dir)];
    let (code, _, err) = migrate(&app, &args);
    assert_ne!(code, 0);
    assert!(err.contains("20240101000000_dup.up.sql:4:") && err.contains("23505"), "{err}");
    // The next run explains instead of showing a bare dirty flag.
    let (code, _, err) = migrate(&app, &args);
    assert_ne!(code, 0);
    assert!(err.contains("INVALID index public.dup_id: DROP INDEX CONCURRENTLY IF EXISTS public.dup_id;"), "{err}");
    assert!(err.contains("--retry-failed") && err.contains("repair --accept 20240101000000"), "{err}");
    let mut retry = args.to_vec();
    retry.push("--retry-failed");
    let (code, _, err) = migrate(&app, &retry);
    assert_ne!(code, 0, "retry refused while the invalid index is there");
    assert!(err.contains("clean up"), "{err}");
    // Clean up, fix the data, retry: it runs again and is recorded applied.
    app.pg().await.batch_execute("DROP INDEX public.dup_id; DROP TABLE dup;").await.expect("cleanup");
    write(
        dir.path(),
        "20240101000000_dup.up.sql",
        &up.replace("(1), (1)", "(1), (2)").replace("CREATE TABLE dup", "CREATE TABLE IF NOT EXISTS dup"),
    );
    let (code, _, err) = migrate(&app, &retry);
    assert_eq!(code, 0, "fixed and retried: {err}");
    let history = pg_history(&app).await;
    assert_eq!(history.last().map(|r| r.1.as_str()), Some("applied"), "{history:?}");
}

#[tokio::test]
async fn a_changed_file_is_caught_and_repair_records_the_reason() {
    let app = TestApp::spawn().await;
    let dir = copy_repo_migrations();
    let d = dir_arg(&dir);
    let (code, _, err) = migrate(&app, &["up", "--dir", &d]);
    assert_eq!(code, 0, "{err}");
    let file = "20240101000100_users.up.sql";
    let path = dir.path().join("postgres").join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("Core user accounts", "Core user accounts (all of them)")).expect("edit");

    let (code, out, _) = migrate(&app, &["verify", "--dir", &d]);
    assert_eq!(code, 1, "verify fails on drift: {out}");
    assert!(out.contains(file), "verify names the file: {out}");
    let (code, _, err) = migrate(&app, &["up", "--dir", &d]);
    assert_ne!(code, 0, "up refuses on drift");
    assert!(err.contains(file) && err.contains("repair --accept"), "{err}");

    let reason = "comment reworded after review";
    let (code, out, err) = migrate(&app, &["repair", "--dir", &d, "--accept", "20240101000100", "--reason", reason]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = migrate(&app, &["verify", "--dir", &d]);
    assert_eq!(code, 0, "{out}{err}");
    let history = pg_history(&app).await;
    let last = history.last().expect("a row");
    assert_eq!((last.0, last.1.as_str(), last.2.as_deref()), (20240101000100, "repaired", Some(reason)));
}

#[tokio::test]
async fn a_concurrently_migration_runs_while_other_runners_wait() {
    let app = TestApp::spawn().await;
    // The runner holding the lock builds an index CONCURRENTLY, which waits
    // for every older snapshot in the database; the waiting runners must
    // hold none, or the build would wait for them while they wait for it.
    let dir = temp_migrations(&[
        ("20240101000000_t.up.sql", "CREATE TABLE t (id int);\nINSERT INTO t SELECT generate_series(1, 20000);\n"),
        ("20240101000000_t.down.sql", "DROP TABLE t;"),
        (
            "20240101000001_t_idx.up.sql",
            "-- fwdb:no-transaction\nSELECT pg_sleep(1.5);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n",
        ),
        ("20240101000001_t_idx.down.sql", "-- fwdb:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_id;\n"),
    ]);
    let d = dir_arg(&dir);
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|_| {
            app.fwdb()
                .args(["migrate", "up", "--db", "postgres", "--dir", &d])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("fwdb runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(started.elapsed() < Duration::from_secs(60), "runners took {:?}", started.elapsed());
    let valid: bool = pg_one(&app, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.t_id'::regclass").await;
    assert!(valid);
    let pg: Vec<(i64, String)> = pg_history(&app).await.into_iter().map(|(v, o, _)| (v, o)).collect();
    assert_applied_once(&pg, 2);
}

#[tokio::test]
async fn destructive_migrations_need_permission() {
    let app = TestApp::spawn().await;
    let dir = temp_migrations(&[
        ("20240101000000_t.up.sql", "CREATE TABLE t (id int, note text);\n"),
        ("20240101000000_t.down.sql", "DROP TABLE t;"),
        ("20240101000001_drop_note.up.sql", "ALTER TABLE t DROP COLUMN note;\n"),
        ("20240101000001_drop_note.down.sql", "ALTER TABLE t ADD COLUMN note text;"),
    ]);
    let set = MigrationSource::Dir(dir.path().to_owned()).load(Store::Postgres).expect("load");
    let (lock, conn) = (app.pg().await, app.pg().await);
    let m = Migrator::postgres(&lock, &conn, &set).expect("migrator");
    let plan = m.plan(&UpOptions::default()).await.expect("plan");
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(plan.steps[1].findings[0].rule, "drop-column");
    assert!(plan.blocked.as_deref().is_some_and(|b| b.contains("drop-column")), "{plan:?}");
    let e = m.up(&UpOptions::default()).await.expect_err("flagged up refused");
    assert!(e.to_string().contains("20240101000001_drop_note.up.sql:1: [drop-column]"), "{e}");
    assert!(pg_history(&app).await.is_empty(), "nothing ran");
    m.up(&UpOptions { to: Some(20240101000000), ..Default::default() }).await.expect("up --to the safe one");
    m.up(&UpOptions { allow_destructive: true, ..Default::default() }).await.expect("allowed");
    let e = m.down(&DownOptions { steps: 2, allow_destructive: false }).await.expect_err("down drops a table");
    assert!(e.to_string().contains("drop-table"), "{e}");
    m.down(&DownOptions { steps: 2, allow_destructive: true }).await.expect("allowed down");
    assert!(m.status().await.expect("status").migrations.iter().all(|s| s.state == fwdb::MigrationState::Pending));
}

#[tokio::test]
async fn baseline_records_without_running() {
    let app = TestApp::spawn().await;
    let (code, out, err) =
        migrate(&app, &["baseline", "20240101000200", "--db", "postgres", "--reason", "restored from the old system"]);
    assert_eq!(code, 0, "{out}{err}");
    let history = pg_history(&app).await;
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history.iter().all(|(_, o, r)| o == "baseline" && r.as_deref() == Some("restored from the old system")));
    let users: Option<String> = pg_one(&app, "SELECT to_regclass('shared.users')::text").await;
    assert_eq!(users, None, "baseline ran nothing");
}

fn valid_design() -> Document {
    doc! {
        "userId": "user-1",
        "name": "Evening dress",
        "status": "draft",
        "layers": [ { "id": "l1", "type": "silhouette", "data": { "any": "thing" }, "order": 1 } ],
        "metadata": { "tags": ["evening"], "description": "d", "thumbnailUrl": "https://x/y.png" },
        "avatarId": "a1",
        "catalogItemIds": ["c1"],
        "version": 1,
        "history": [ { "version": 1, "changedAt": mongodb::bson::DateTime::now(), "changedBy": "user-1", "changes": {} } ],
        "createdAt": mongodb::bson::DateTime::now(),
        "updatedAt": mongodb::bson::DateTime::now(),
    }
}

fn with(mut d: Document, key: &str, value: impl Into<Bson>) -> Document {
    d.insert(key, value.into());
    d
}

fn without(mut d: Document, key: &str) -> Document {
    d.remove(key);
    d
}

#[tokio::test]
async fn the_designs_validator_rejects_each_broken_rule() {
    let app = TestApp::spawn().await;
    let (code, _, err) = migrate(&app, &["up", "--db", "mongodb"]);
    assert_eq!(code, 0, "{err}");
    let designs = app.mongo().await.collection::<Document>("designs");
    designs.insert_one(valid_design()).await.expect("a valid design is accepted");
    let layer = |l: Document| with(valid_design(), "layers", vec![Bson::Document(l)]);
    let cases: Vec<(&str, Document)> = vec![
        ("userId required", without(valid_design(), "userId")),
        ("name required", without(valid_design(), "name")),
        ("status required", without(valid_design(), "status")),
        ("createdAt required", without(valid_design(), "createdAt")),
        ("userId is a string", with(valid_design(), "userId", 42)),
        ("name at least 1", with(valid_design(), "name", "")),
        ("name at most 255", with(valid_design(), "name", "n".repeat(256))),
        ("status enum", with(valid_design(), "status", "deleted")),
        ("layers is an array", with(valid_design(), "layers", "l1")),
        ("layer type enum", layer(doc! { "id": "l", "type": "texture", "order": 1 })),
        ("layer id required", layer(doc! { "type": "fabric", "order": 1 })),
        ("layer order required", layer(doc! { "id": "l", "type": "fabric" })),
        ("layer order is a number", layer(doc! { "id": "l", "type": "fabric", "order": "first" })),
        ("tags are strings", with(valid_design(), "metadata", doc! { "tags": [1] })),
        ("catalogItemIds are strings", with(valid_design(), "catalogItemIds", vec![Bson::Int32(7)])),
        ("version is a number", with(valid_design(), "version", "one")),
        ("createdAt is a date", with(valid_design(), "createdAt", "yesterday")),
        ("deletedAt is a date", with(valid_design(), "deletedAt", "now")),
        (
            "history changedAt is a date",
            with(valid_design(), "history", vec![Bson::Document(doc! { "version": 1, "changedAt": "x" })]),
        ),
    ];
    for (rule, design) in cases {
        let e = designs.insert_one(design).await.expect_err(rule);
        assert!(e.to_string().contains("121") || e.to_string().contains("failed validation"), "{rule}: {e}");
    }
    assert_eq!(designs.count_documents(doc! {}).await.expect("count"), 1);
}

#[tokio::test]
async fn a_dead_mongo_runners_lock_expires_and_the_next_runner_proceeds() {
    let app = TestApp::spawn().await;
    // The lock document exactly as a runner killed mid-migration leaves it:
    // owned, its lease running out in 3 s, nobody renewing it.
    let expires = mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() + 3000);
    app.mongo()
        .await
        .collection::<Document>("fwdb_migrations_lock")
        .insert_one(
            doc! { "_id": "migrate", "owner": "dead-owner", "runner": "killed-runner pid 1", "expires_at": expires },
        )
        .await
        .expect("plant the lock");
    let started = Instant::now();
    let (code, out, err) = migrate(&app, &["up", "--db", "mongodb", "--lock-lease", "2s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("killed-runner pid 1"), "says who it waits for: {err}");
    assert!(started.elapsed() >= Duration::from_millis(2500), "it did not wait for the lease: {:?}", started.elapsed());
    assert_applied_once(&mongo_history(&app).await, embedded_count(Store::Mongo));
    let lock =
        app.mongo().await.collection::<Document>("fwdb_migrations_lock").find_one(doc! {}).await.expect("lock doc");
    assert_eq!(lock.and_then(|d| d.get("owner").cloned()), Some(Bson::Null), "released after use");
}

#[tokio::test]
async fn a_killed_mongo_runner_is_replaced() {
    let app = TestApp::spawn().await;
    // A runner that will be killed while it waits: it holds nothing, and the
    // next one must not be blocked by it. Then one killed while holding the
    // lock: its lease (1 s) runs out and the next runner proceeds.
    let mut holder =
        app.fwdb().args(["migrate", "up", "--db", "mongodb", "--lock-lease", "1s"]).spawn().expect("spawn");
    let db = app.mongo().await;
    let locks = db.collection::<Document>("fwdb_migrations_lock");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Kill it as soon as it has taken the lock (it may also finish first: both end the same way).
    while Instant::now() < deadline {
        if let Ok(Some(d)) = locks.find_one(doc! { "owner": { "$ne": Bson::Null } }).await {
            let _ = d;
            let _ = holder.kill();
            break;
        }
        if holder.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = holder.kill();
    let _ = holder.wait();
    // Whether it died before, during or after its migration, the next runner
    // gets the lock once the lease ends and leaves every migration applied once
    // (MongoDB re-runs an interrupted migration: its commands tolerate "exists").
    let (code, out, err) = migrate(&app, &["up", "--db", "mongodb", "--lock-lease", "1s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_applied_once(&mongo_history(&app).await, embedded_count(Store::Mongo));
}

#[test]
fn new_creates_a_pair_the_loader_accepts() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(crate::helpers::fwdb_command().args(["migrate", "new", "add items colour", "--dir"]).arg(dir.path()));
    assert_eq!(out.0, 0, "{out:?}");
    let set = MigrationSource::Dir(PathBuf::from(dir.path())).load(Store::Postgres).expect("loads");
    assert_eq!(set.migrations().len(), 1);
    assert_eq!(set.migrations()[0].name(), "add_items_colour");
}
