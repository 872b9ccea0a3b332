//! Backups: logical (pg_dump) round trips, corruption, wrong keys, killed
//! runs, retention, progress output. Private stacks: point-in-time recovery
//! and the full verify (`backup::pitr::`), diff and incr chains and delta
//! restores (`backup::chain::`), asynchronous WAL archiving (`backup::wal_async::`);
//! S3 (moto) in `backup::s3::`.

use crate::helpers::{fwdb_command, run, TestApp};

#[path = "chain.rs"]
mod chain;
#[path = "pitr.rs"]
mod pitr;
#[path = "s3.rs"]
mod s3;
#[path = "wal_async.rs"]
mod wal_async;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A backup storage folder and an age key pair, with the `FWDB__BACKUP__` variables that use them.
pub struct BackupEnv {
    pub dir: tempfile::TempDir,
    pub storage: PathBuf,
    pub identity: PathBuf,
    pub recipient: String,
    pub env: Vec<(String, String)>,
}

impl BackupEnv {
    pub fn new(stack: &fwdb_testkit::Stack) -> BackupEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("store");
        let identity = dir.path().join("backup.key");
        let recipient = fwdb::write_backup_key(&identity).expect("a key");
        let info = stack.info();
        let env = vec![
            ("FWDB__BACKUP__STORAGE".to_string(), format!("file://{}", storage.display())),
            ("FWDB__BACKUP__ENCRYPTION__RECIPIENTS".into(), format!("[\"{recipient}\"]")),
            ("FWDB__BACKUP__ENCRYPTION__IDENTITY_FILE".into(), identity.display().to_string()),
            ("FWDB__BACKUP__PG_BIN_DIR".into(), info.pg_bin_dir.display().to_string()),
            ("FWDB__BACKUP__PG_USER".into(), info.superuser.clone()),
            ("FWDB__BACKUP__PG_PASSWORD".into(), info.superuser_password.clone()),
        ];
        BackupEnv { dir, storage, identity, recipient, env }
    }

    pub fn cmd(&self, app_env: &[(String, String)]) -> Command {
        let mut c = fwdb_command();
        c.envs(app_env.iter().map(|(k, v)| (k, v)));
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Every stored object file of backup `id`, except its manifest.
    pub fn objects(&self, id: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.storage.join("backups").join(id)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("backup folder").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n != "manifest.json") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }
}

pub fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{cmd:?} failed\nstdout: {out}\nstderr: {err}");
    out
}

pub fn json(cmd: &mut Command) -> serde_json::Value {
    let out = ok(cmd.arg("--format").arg("json"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// md5 of every row of every user table, in a stable order: equal when the data is.
pub async fn pg_checksums(client: &tokio_postgres::Client) -> Vec<(String, String)> {
    let tables = client
        .query(
            "select format('%I.%I', schemaname, tablename) from pg_tables \
             where schemaname not in ('pg_catalog', 'information_schema') order by 1",
            &[],
        )
        .await
        .expect("tables");
    let mut out = Vec::new();
    for t in tables {
        let name: String = t.get(0);
        let sql = format!("select coalesce(md5(string_agg(x::text, '|' order by x::text)), 'empty') from {name} x");
        let sum: String = client.query_one(&sql, &[]).await.expect("checksum").get(0);
        out.push((name, sum));
    }
    out
}

async fn superuser_on(app: &TestApp, db: &str) -> tokio_postgres::Client {
    crate::helpers::superuser(app.stack, db).await
}

async fn fill(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "create table people (id bigint primary key, name text, data jsonb, pic bytea, born timestamptz, note text);
             insert into people select g, 'name ' || g || ' ünï', jsonb_build_object('g', g, 'l', array[g, g*2]),
                 decode(md5(g::text), 'hex'), '2020-01-01'::timestamptz + g * interval '1 hour',
                 case when g % 7 = 0 then null else repeat('x', g % 50) end
             from generate_series(1, 5000) g;
             create schema shop;
             create table shop.orders (id serial primary key, person bigint references people(id), total numeric(12,2));
             insert into shop.orders (person, total) select (g % 5000) + 1, g * 1.25 from generate_series(1, 3000) g;
             create index on shop.orders (person);",
        )
        .await
        .expect("test data");
}

#[tokio::test]
async fn logical_backup_restores_every_row_and_detects_corruption_and_wrong_keys() {
    let app = TestApp::spawn().await;
    let src = superuser_on(&app, &app.pg_database).await;
    fill(&src).await;
    let b = BackupEnv::new(app.stack);

    let m = json(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]));
    let id = m["id"].as_str().expect("id").to_string();
    assert_eq!(m["kind"], "logical");
    assert_eq!(m["counts"][format!("{}.public.people", app.pg_database)], 5000);
    assert_eq!(m["objects"][0]["name"], format!("{}.dump", app.pg_database));
    assert!(m["objects"][0]["sha256"].as_str().unwrap().len() == 64);
    // Encrypted on the client: the stored bytes are an age file, not a pg_dump archive.
    let stored = std::fs::read(&b.objects(&id)[0]).expect("object");
    assert!(stored.starts_with(b"age-encryption.org/v1"), "not age-encrypted");
    assert!(!stored.windows(5).any(|w| w == b"PGDMP"));

    let listed = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    ok(b.cmd(&app.env).args(["backup", "verify", &id]));

    let target = format!("{}_restored", app.pg_database);
    let out = ok(b.cmd(&app.env).args(["restore", "logical", &id, "--database", &target]));
    assert!(out.contains("counts match"), "{out}");
    let restored = superuser_on(&app, &target).await;
    assert_eq!(pg_checksums(&src).await, pg_checksums(&restored).await);
    assert_eq!(pg_checksums(&src).await.len(), 2);

    // Restoring over an existing database is refused.
    let (code, _, err) = run(b.cmd(&app.env).args(["restore", "logical", &id, "--database", &target]));
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");

    // A wrong key fails clearly.
    let other = b.dir.path().join("other.key");
    fwdb::write_backup_key(&other).expect("key");
    let (code, _, err) = run(b.cmd(&app.env).env("FWDB__BACKUP__ENCRYPTION__IDENTITY_FILE", &other).args([
        "restore",
        "logical",
        &id,
        "--database",
        &format!("{target}2"),
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("wrong key"), "{err}");
    assert_database_absent(&src, &format!("{target}2")).await;

    // A flipped byte fails verify and restore, naming the object; nothing is left behind.
    let obj = &b.objects(&id)[0];
    let mut bytes = std::fs::read(obj).expect("object");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(obj, &bytes).expect("corrupt");
    let (code, _, err) = run(b.cmd(&app.env).args(["backup", "verify", &id]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checksum mismatch") && err.contains(".dump.zst.age"), "{err}");
    let (code, _, err) = run(b.cmd(&app.env).args(["restore", "logical", &id, "--database", &format!("{target}3")]));
    assert_ne!(code, 0);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_database_absent(&src, &format!("{target}3")).await;
}

async fn assert_database_absent(client: &tokio_postgres::Client, db: &str) {
    let n: i64 =
        client.query_one("select count(*) from pg_database where datname = $1", &[&db]).await.expect("q").get(0);
    assert_eq!(n, 0, "database {db} was left behind");
}

/// A fake pg_dump that writes forever (until its reader goes), or fails after writing a little.
fn fake_pg_bin(dir: &Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let p = bin.join("pg_dump");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[tokio::test]
async fn a_killed_or_failed_backup_leaves_no_manifest() {
    let app = TestApp::spawn().await;
    let b = BackupEnv::new(app.stack);
    // Killed while streaming.
    // The loop ends when a write fails (SIGPIPE once fwdb is gone): `while true` outlived the test
    // and burned CPU until the machine stopped.
    let bin = fake_pg_bin(b.dir.path(), "while head -c 1000000 /dev/urandom; do sleep 0.05; done");
    let mut child = b
        .cmd(&app.env)
        .env("FWDB__BACKUP__PG_BIN_DIR", &bin)
        .args(["backup", "create", "--kind", "logical"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("kill");
    child.wait().expect("wait");
    let listed = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    let manifests: Vec<_> = walk(&b.storage).into_iter().filter(|p| p.ends_with("manifest.json")).collect();
    assert!(manifests.is_empty(), "{manifests:?}");

    // Failing source: an error naming pg_dump, and no object and no manifest.
    let bin =
        fake_pg_bin(&b.dir.path().join("f2"), "head -c 3000000 /dev/urandom; echo 'pg_dump: error: boom' >&2; exit 1");
    let (code, _, err) =
        run(b.cmd(&app.env).env("FWDB__BACKUP__PG_BIN_DIR", &bin).args(["backup", "create", "--kind", "logical"]));
    assert_ne!(code, 0);
    assert!(err.contains("pg_dump") && err.contains("boom"), "{err}");
    let listed = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 0);
    let dumps: Vec<_> =
        walk(&b.storage).into_iter().filter(|p| p.to_string_lossy().ends_with(".dump.zst.age")).collect();
    assert!(dumps.is_empty(), "a failed upload was completed: {dumps:?}");
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn bad_backup_configuration_is_reported_by_key() {
    let app = TestApp::spawn().await;
    let (code, _, err) = run(app
        .fwdb()
        .env("FWDB__BACKUP__STORAGE", "ftp://somewhere/x")
        .env("FWDB__BACKUP__ENCRYPTION__IDENTITY_FILE", "/nonexistent/key")
        .env("FWDB__BACKUP__PG_SOCKET_DIR", "run/postgresql")
        .args(["backup", "list"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("backup.pg_socket_dir") && err.contains("run/postgresql is not an absolute path"), "{err}");
    assert!(err.contains("backup.storage") && err.contains("unsupported scheme"), "{err}");
    assert!(err.contains("backup.encryption.identity_file") && err.contains("/nonexistent/key"), "{err}");
    assert!(err.contains("backup.encryption"), "{err}");
    // Not configured at all: a clear error, not a backup somewhere unexpected.
    let (code, _, err) = run(app.fwdb().args(["backup", "list"]));
    assert_eq!(code, 2);
    assert!(err.contains("backup.storage is not set"), "{err}");
}

#[tokio::test]
async fn prune_keeps_the_newest_backup_of_each_kind() {
    let app = TestApp::spawn().await;
    let src = superuser_on(&app, &app.pg_database).await;
    src.batch_execute("create table t (v int); insert into t values (1)").await.expect("data");
    let b = BackupEnv::new(app.stack);
    let first =
        json(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]))["id"].as_str().unwrap().to_string();
    let second =
        json(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]))["id"].as_str().unwrap().to_string();
    // A retention of one second: the older one goes, the newest stays whatever its age.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dry =
        json(b.cmd(&app.env).env("FWDB__BACKUP__RETENTION__INCREMENTAL", "1s").args(["backup", "prune", "--dry-run"]));
    assert_eq!(dry["deleted"][0]["what"], first.as_str(), "{dry}");
    assert_eq!(json(b.cmd(&app.env).args(["backup", "list"])).as_array().unwrap().len(), 2, "dry run deleted");
    let done = json(b.cmd(&app.env).env("FWDB__BACKUP__RETENTION__INCREMENTAL", "1s").args(["backup", "prune"]));
    assert_eq!(done["kept"][0]["what"], second.as_str(), "{done}");
    let left = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], second.as_str());
    assert!(!b.storage.join("backups").join(&first).exists() || b.objects(&first).is_empty());
}

/// Every document of every collection, in canonical Extended JSON, by _id.
async fn mongo_snapshot(db: &mongodb::Database) -> Vec<(String, Vec<String>, Vec<String>)> {
    use futures::TryStreamExt;
    let mut names = db.list_collection_names().await.expect("collections");
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let c = db.collection::<mongodb::bson::Document>(&n);
        let docs: Vec<mongodb::bson::Document> = c
            .find(mongodb::bson::doc! {})
            .sort(mongodb::bson::doc! {"_id": 1})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("docs");
        let docs =
            docs.into_iter().map(|d| mongodb::bson::Bson::Document(d).into_canonical_extjson().to_string()).collect();
        let mut idx: Vec<String> = c.list_index_names().await.expect("indexes");
        idx.sort();
        out.push((n, docs, idx));
    }
    out
}

#[tokio::test]
async fn mongo_dump_restores_every_document_and_is_in_mongodump_layout() {
    use mongodb::bson::{doc, oid::ObjectId, Binary, DateTime};
    let app = TestApp::spawn().await;
    let db = app.mongo().await;
    let users = db.collection::<mongodb::bson::Document>("users");
    let docs: Vec<_> = (0..1500)
        .map(|i| {
            doc! {
                "_id": ObjectId::new(), "email": format!("u{i}@example.com"), "n": i, "f": i as f64 / 3.0,
                "when": DateTime::from_millis(1_700_000_000_000 + i as i64), "tags": ["a", format!("t{}", i % 5)],
                "nested": {"x": i % 2 == 0, "nothing": null}, "bin": Binary { subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: vec![i as u8; 8] },
                "big": i as i64 * 10_000_000_000, "s": "ünïcødé ✓",
            }
        })
        .collect();
    users.insert_many(docs).await.expect("insert");
    users
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"email": 1})
                .options(mongodb::options::IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect("index");
    db.collection::<mongodb::bson::Document>("empty_one").insert_one(doc! {"_id": 1}).await.expect("insert");
    db.collection::<mongodb::bson::Document>("empty_one").delete_one(doc! {"_id": 1}).await.expect("delete");

    let b = BackupEnv::new(app.stack);
    let m = json(b.cmd(&app.env).args(["backup", "create", "--kind", "mongo"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["counts"][format!("{}.users", app.mongo_database)], 1500, "{m}");

    let target = format!("{}_r", app.mongo_database);
    let out = ok(b.cmd(&app.env).args(["restore", "mongo", &id, "--database", &target]));
    assert!(out.contains("1500 documents"), "{out}");
    let client = fwdb::mongo_client(&app.config.mongo).await.expect("client");
    let restored = client.database(&target);
    assert_eq!(mongo_snapshot(&db).await, mongo_snapshot(&restored).await);
    ok(b.cmd(&app.env).args(["backup", "verify", &id]));

    // The export is mongodump's directory layout.
    let exported = b.dir.path().join("export");
    ok(b.cmd(&app.env).args(["backup", "export", &id, "--dir", exported.to_str().unwrap()]));
    let prelude: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exported.join("prelude.json")).expect("prelude")).expect("json");
    assert!(prelude["ServerVersion"].is_string(), "{prelude}");
    let dbdir = exported.join(&app.mongo_database);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dbdir.join("users.metadata.json")).expect("meta")).expect("json");
    assert_eq!(meta["collectionName"], "users");
    assert_eq!(meta["type"], "collection");
    assert!(meta["indexes"].as_array().expect("indexes").iter().any(|i| i["unique"] == true), "{meta}");
    let raw = std::fs::read(dbdir.join("users.bson")).expect("bson");
    let (mut at, mut n) = (0usize, 0);
    while at < raw.len() {
        let len = i32::from_le_bytes(raw[at..at + 4].try_into().unwrap()) as usize;
        mongodb::bson::Document::from_reader(&raw[at..at + len]).expect("a BSON document");
        at += len;
        n += 1;
    }
    assert_eq!(n, 1500);
    let empty_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dbdir.join("empty_one.metadata.json")).expect("meta")).expect("json");
    assert!(empty_meta["indexes"].is_array());

    // The archive form: magic, header, one prelude per namespace, segments, EOF with Go's CRC-64/ECMA.
    let archive = b.dir.path().join("dump.archive");
    ok(b.cmd(&app.env).args(["backup", "export", &id, "--archive", archive.to_str().unwrap()]));
    check_mongo_archive(&std::fs::read(&archive).expect("archive"), &app.mongo_database, &raw);

    // A flipped byte: restore fails naming the object, and leaves no collection behind.
    let obj =
        b.objects(&id).into_iter().find(|p| p.to_string_lossy().ends_with("users.bson.zst.age")).expect("users object");
    let mut bytes = std::fs::read(&obj).expect("read");
    let at = bytes.len() - 10;
    bytes[at] ^= 0x80;
    std::fs::write(&obj, &bytes).expect("write");
    let target2 = format!("{}_r2", app.mongo_database);
    let (code, _, err) = run(b.cmd(&app.env).args(["restore", "mongo", &id, "--database", &target2]));
    assert_ne!(code, 0);
    assert!(err.contains("checksum mismatch") && err.contains("users.bson"), "{err}");
    assert!(client.database(&target2).list_collection_names().await.expect("names").is_empty());
    let (code, _, err) = run(b.cmd(&app.env).args(["backup", "verify", &id]));
    assert_eq!(code, 1, "{err}");
}

/// Waits for `cmd` at most `secs` seconds (killing it then): (exit code, stdout, stderr), code -1 when killed.
fn run_within(cmd: &mut Command, secs: u64) -> (i32, String, String) {
    use std::io::Read;
    let mut child = crate::helpers::KillOnDrop(
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let code = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            break -1;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.0.stdout.take().expect("stdout").read_to_string(&mut out).expect("stdout");
    child.0.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    (code, out, err)
}

/// A MongoDB dump taken while a migration runner holds the lock keeps the
/// migration history but not the lock: the restored database migrates at once.
#[tokio::test]
async fn a_mongo_dump_keeps_the_migration_history_and_leaves_the_lock_out() {
    use mongodb::bson::{doc, Document};
    let app = TestApp::migrated().await;
    let db = app.mongo().await;
    let in_an_hour =
        mongodb::bson::DateTime::from_millis(mongodb::bson::DateTime::now().timestamp_millis() + 3_600_000);
    db.collection::<Document>("fwdb_migrations_lock")
        .update_one(
            doc! { "_id": "migrate" },
            doc! { "$set": { "owner": "busy-owner", "runner": "runner busy during the backup", "expires_at": in_an_hour } },
        )
        .upsert(true)
        .await
        .expect("hold the lock");
    let history = db.collection::<Document>("fwdb_migrations").count_documents(doc! {}).await.expect("history");
    assert!(history > 0);

    let b = BackupEnv::new(app.stack);
    let m = json(b.cmd(&app.env).args(["backup", "create", "--kind", "mongo"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["counts"][format!("{}.fwdb_migrations", app.mongo_database)], history, "{m}");
    let names: Vec<&str> =
        m["objects"].as_array().expect("objects").iter().filter_map(|o| o["name"].as_str()).collect();
    assert!(names.iter().any(|n| n.ends_with("/fwdb_migrations.bson")), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("fwdb_migrations_lock")), "{names:?}");

    let target = format!("{}_r", app.mongo_database);
    ok(b.cmd(&app.env).args(["restore", "mongo", &id, "--database", &target]));
    let restored_env = [("FWDB__MONGO__DATABASE", target.as_str())];
    let (code, out, err) =
        run(app.fwdb().envs(restored_env).args(["migrate", "status", "--db", "mongodb", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status is JSON");
    let states: Vec<&str> =
        status[0]["migrations"].as_array().expect("migrations").iter().filter_map(|m| m["state"].as_str()).collect();
    let embedded = fwdb::MigrationSource::Embedded
        .load(fwdb::Store::Mongo)
        .expect("embedded mongodb migrations")
        .migrations()
        .len();
    assert_eq!(states.len(), embedded, "{status}");
    assert!(states.iter().all(|s| *s == "applied"), "{states:?}");
    // No lock came back with the data: up takes it at once (a restored lock would hold it for an hour).
    let (code, out, err) = run_within(app.fwdb().envs(restored_env).args(["migrate", "up", "--db", "mongodb"]), 30);
    assert_eq!(code, 0, "migrate up on the restored database: {out}{err}");
    assert!(!err.contains("waiting for the migration lock"), "{err}");
    assert!(out.contains("nothing applied"), "{out}");
}

/// Reads a mongodump archive and checks it against the `users.bson` of the directory form.
fn check_mongo_archive(a: &[u8], db: &str, users_bson: &[u8]) {
    use mongodb::bson::Document;
    assert_eq!(&a[..4], &[0x6d, 0xe2, 0x99, 0x81], "magic");
    let mut at = 4;
    let next_doc = |at: &mut usize| -> Option<Document> {
        let len = i32::from_le_bytes(a[*at..*at + 4].try_into().unwrap());
        if len == -1 {
            *at += 4;
            return None;
        }
        let d = Document::from_reader(&a[*at..*at + len as usize]).expect("BSON");
        *at += len as usize;
        Some(d)
    };
    let header = next_doc(&mut at).expect("header");
    assert_eq!(header.get_str("version").unwrap(), "0.1");
    let mut namespaces = Vec::new();
    while let Some(ns) = next_doc(&mut at) {
        assert_eq!(ns.get_str("db").unwrap(), db);
        assert!(ns.get_str("metadata").unwrap().contains("\"collectionName\""));
        namespaces.push(ns.get_str("collection").unwrap().to_string());
    }
    assert!(namespaces.contains(&"users".to_string()), "{namespaces:?}");
    let mut users = Vec::new();
    let mut eofs = 0;
    while at < a.len() {
        let seg = next_doc(&mut at).expect("segment header");
        let coll = seg.get_str("collection").unwrap().to_string();
        if seg.get_bool("EOF").unwrap() {
            let crc = seg.get_i64("CRC").unwrap() as u64;
            let body = if coll == "users" { users.as_slice() } else { &[][..] };
            assert_eq!(crc, fwdb::crc64_ecma(0, body), "CRC of {coll}");
            assert_eq!(&a[at..at + 4], &[0xff; 4]);
            at += 4;
            eofs += 1;
            continue;
        }
        loop {
            let len = i32::from_le_bytes(a[at..at + 4].try_into().unwrap());
            if len == -1 {
                at += 4;
                break;
            }
            if coll == "users" {
                users.extend_from_slice(&a[at..at + len as usize]);
            }
            at += len as usize;
        }
    }
    assert_eq!(eofs, namespaces.len());
    assert!(users == users_bson, "the archive's users documents differ from users.bson");
}

/// stderr of `cmd` as JSON lines, checked: every line is one JSON object.
fn json_lines(err: &str) -> Vec<serde_json::Value> {
    err.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\nstderr: {err}")))
        .collect()
}

/// Progress ("progress bars with bytes per second in a terminal; quiet, or JSON, in CI"):
/// nothing on a non-terminal stderr by default; `--progress json` (or FWDB_PROGRESS=json) gives
/// JSON lines with bytes and bytes per second, one `done` line per object; on a terminal, a bar
/// showing bytes per second.
#[tokio::test]
async fn progress_is_quiet_without_a_terminal_and_json_lines_with_rates_on_request() {
    let app = TestApp::spawn().await;
    let src = superuser_on(&app, &app.pg_database).await;
    src.batch_execute("create table blobs (id int, body text); insert into blobs select g, repeat(md5(g::text), 60) from generate_series(1, 4000) g")
        .await
        .expect("data");
    let b = BackupEnv::new(app.stack);
    let (code, _, err) = run(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.trim().is_empty(), "progress on a non-terminal stderr: {err}");

    let (code, out, err) =
        run(b.cmd(&app.env).args(["--format", "json", "backup", "create", "--kind", "logical", "--progress", "json"]));
    assert_eq!(code, 0, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).expect("the manifest on stdout");
    let object = &m["objects"][0];
    let lines = json_lines(&err);
    let done: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "done").collect();
    assert_eq!(done.len(), 1, "{err}");
    assert_eq!(done[0]["object"], object["name"], "{err}");
    assert_eq!(done[0]["bytes"], object["raw_size"], "{err}");
    assert!(done[0]["bytes_per_sec"].as_u64().is_some_and(|r| r > 0), "{err}");
    assert!(lines.iter().any(|l| l["event"] == "progress" && l["bytes_per_sec"].is_u64()), "{err}");

    // Reading back goes through the same reporting: the environment variable works as the flag.
    let id = m["id"].as_str().expect("id");
    let (code, _, err) = run(b.cmd(&app.env).env("FWDB_PROGRESS", "json").args(["backup", "verify", "--quick", id]));
    assert_eq!(code, 0, "{err}");
    let lines = json_lines(&err);
    assert!(lines.iter().any(|l| l["event"] == "done" && l["bytes"] == object["raw_size"]), "{err}");

    // On a terminal (a pty from script(1)): a bar with a rate.
    let mut shell = String::new();
    for (k, v) in app.env.iter().chain(b.env.iter()) {
        shell.push_str(&format!("{k}='{}' ", v.replace('\'', "'\\''")));
    }
    shell.push_str(&format!("'{}' backup create --kind logical >/dev/null", env!("CARGO_BIN_EXE_fwdb")));
    let (code, out, err) = run(Command::new("script").args(["-qec", &shell, "/dev/null"]).env("TERM", "xterm"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("/s") && out.contains(".dump"), "no bar with a rate on a terminal: {out:?}");
}
