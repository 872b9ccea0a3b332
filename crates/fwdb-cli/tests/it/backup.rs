//! Backups: logical (pg_dump) round trips, corruption, wrong keys, killed
//! runs, retention, and point-in-time recovery on a private stack.

use crate::helpers::{fwdb_command, run, TestApp};

/// S3 (moto) tests, under `backup::s3::`.
#[path = "s3.rs"]
mod s3;
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
    let (code, _, err) = run(b
        .cmd(&app.env)
        .env("FWDB__BACKUP__ENCRYPTION__IDENTITY_FILE", &other)
        .args(["restore", "logical", &id, "--database", &format!("{target}2")]));
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
    let n: i64 = client.query_one("select count(*) from pg_database where datname = $1", &[&db]).await.expect("q").get(0);
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
    let bin = fake_pg_bin(b.dir.path(), "while true; do head -c 1000000 /dev/urandom; sleep 0.05; done");
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
    let bin = fake_pg_bin(&b.dir.path().join("f2"), "head -c 3000000 /dev/urandom; echo 'pg_dump: error: boom' >&2; exit 1");
    let (code, _, err) =
        run(b.cmd(&app.env).env("FWDB__BACKUP__PG_BIN_DIR", &bin).args(["backup", "create", "--kind", "logical"]));
    assert_ne!(code, 0);
    assert!(err.contains("pg_dump") && err.contains("boom"), "{err}");
    let listed = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 0);
    let dumps: Vec<_> = walk(&b.storage).into_iter().filter(|p| p.to_string_lossy().ends_with(".dump.zst.age")).collect();
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
        .args(["backup", "list"]));
    assert_eq!(code, 2, "{err}");
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
    let first = json(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]))["id"].as_str().unwrap().to_string();
    let second = json(b.cmd(&app.env).args(["backup", "create", "--kind", "logical"]))["id"].as_str().unwrap().to_string();
    // A retention of one second: the older one goes, the newest stays whatever its age.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dry = json(b.cmd(&app.env).env("FWDB__BACKUP__RETENTION__INCREMENTAL", "1s").args(["backup", "prune", "--dry-run"]));
    assert_eq!(dry["deleted"][0]["what"], first.as_str(), "{dry}");
    assert_eq!(json(b.cmd(&app.env).args(["backup", "list"])).as_array().unwrap().len(), 2, "dry run deleted");
    let done = json(b.cmd(&app.env).env("FWDB__BACKUP__RETENTION__INCREMENTAL", "1s").args(["backup", "prune"]));
    assert_eq!(done["kept"][0]["what"], second.as_str(), "{done}");
    let left = json(b.cmd(&app.env).args(["backup", "list"]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], second.as_str());
    assert!(!b.storage.join("backups").join(&first).exists() || b.objects(&first).is_empty());
}

/// Runs `cmd` as the servers' OS user (when we are root).
fn as_server_user(info: &fwdb_testkit::StackInfo, program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(&info.run_as_user).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn give_to_server_user(info: &fwdb_testkit::StackInfo, path: &Path) {
    if unsafe { libc::geteuid() } == 0 {
        let st = Command::new("chown").arg("-R").arg(&info.run_as_user).arg(path).status().expect("chown");
        assert!(st.success());
    }
}

/// A restored server, stopped on drop.
struct Restored {
    dir: PathBuf,
    info: fwdb_testkit::StackInfo,
}

impl Drop for Restored {
    fn drop(&mut self) {
        let _ = as_server_user(&self.info, &self.info.pg_bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

async fn socket_client(socket: &str, port: u16, db: &str) -> tokio_postgres::Client {
    let mut c = tokio_postgres::Config::new();
    c.host_path(socket).port(port).user("postgres").dbname(db);
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("connect to the restored server");
    tokio::spawn(conn);
    client
}

/// Write A, note the time, write B: a point-in-time restore to that time has A and not B.
/// WAL reaches storage through `fwdb wal push` as archive_command, and comes back through
/// `fwdb wal fetch` as restore_command.
#[tokio::test]
async fn point_in_time_recovery_has_a_and_not_b() {
    use std::os::unix::fs::PermissionsExt;
    let stack = tokio::task::spawn_blocking(|| {
        fwdb_testkit::Stack::start(fwdb_testkit::StackOptions { replicas: 0, mongo: false, ..Default::default() })
    })
    .await
    .expect("join")
    .expect("a private stack");
    let info = stack.info().clone();
    let db = stack.create_database().expect("database");
    let b = BackupEnv::new(&stack);
    std::fs::set_permissions(b.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(&b.storage).expect("storage");
    // archive_command runs as the server's user: it reads this file and writes the storage.
    let cfg = b.dir.path().join("fwdb.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nstorage = \"file://{}\"\n[backup.encryption]\nrecipients = [\"{}\"]\nidentity_file = \"{}\"\n",
            b.storage.display(),
            b.recipient,
            b.identity.display()
        ),
    )
    .expect("config");
    give_to_server_user(&info, &b.storage);
    give_to_server_user(&info, &b.identity);
    give_to_server_user(&info, &cfg);
    let fwdb_bin = env!("CARGO_BIN_EXE_fwdb");
    let archive = format!("{fwdb_bin} --config {} wal push %p", cfg.display());
    stack
        .psql(fwdb_testkit::Node::Primary, "postgres", &format!("ALTER SYSTEM SET archive_command = '{archive}'"))
        .expect("archive_command");
    stack.psql(fwdb_testkit::Node::Primary, "postgres", "SELECT pg_reload_conf()").expect("reload");
    // The backup role (REPLICATION) may close WAL segments for the incremental step (docs/runbook.md).
    let grant = format!("GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {}", info.replication_user);
    stack.psql(fwdb_testkit::Node::Primary, &db, &grant).expect("grant");

    let mut env = info.env_vars(&db, &db);
    env.push(("FWDB__BACKUP__PG_USER".into(), info.replication_user.clone()));
    env.push(("FWDB__BACKUP__PG_PASSWORD".into(), info.replication_password.clone()));
    let mut base = fwdb_command();
    base.envs(env.iter().map(|(k, v)| (k, v))).env("FWDB__BACKUP__PG_BIN_DIR", &info.pg_bin_dir);
    let with = |args: &[&str]| {
        let mut c = fwdb_command();
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("FWDB__BACKUP__PG_BIN_DIR", &info.pg_bin_dir)
            .arg("--config")
            .arg(&cfg)
            .args(args);
        c
    };
    let m = json(&mut with(&["backup", "create", "--kind", "full"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert!(m["start_lsn"].is_string() && m["stop_lsn"].is_string(), "{m}");
    assert!(m["start_wal"].is_string(), "{m}");

    let sql = |s: &str| stack.psql(fwdb_testkit::Node::Primary, &db, s).expect(s);
    sql("CREATE TABLE marks (v text); INSERT INTO marks VALUES ('A')");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let t = sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    sql("INSERT INTO marks VALUES ('B')");
    let seg = sql("SELECT pg_walfile_name(pg_switch_wal())");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = sql("SELECT coalesce(last_archived_wal, '') || ' ' || failed_count FROM pg_stat_archiver");
        if state.split_whitespace().next().is_some_and(|w| w >= seg.as_str()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "WAL {seg} never archived: {state}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let wal = ok(&mut with(&["wal", "list"]));
    assert!(wal.contains(&seg), "{wal}");
    // Encrypted in storage too.
    let stored = std::fs::read(b.storage.join("wal").join(format!("{seg}.zst.age"))).expect("wal object");
    assert!(stored.starts_with(b"age-encryption.org/v1"));

    ok(&mut with(&["backup", "verify", &id]));

    // Bad input: clear errors, nothing laid out.
    let nowhere = b.dir.path().join("never");
    let never = nowhere.to_str().unwrap();
    for (args, expect) in [
        (vec!["restore", "--to-time", "2000-01-01T00:00:00Z", "--target-dir", never], "no full backup"),
        (vec!["restore", "--to-time", "yesterday", "--target-dir", never], "not an RFC 3339 time"),
        (vec!["restore", "--to-lsn", "zz", "--target-dir", never], "not an LSN"),
        (vec!["restore", "--target-dir", never], "--to-time T, --to-lsn L or --latest"),
        (vec!["restore", "--latest"], "--target-dir DIR is required"),
        (vec!["restore", "logical", id.as_str(), "--database", "x"], "is a full backup, not a logical one"),
        (vec!["backup", "verify", "no-such-id"], "no backup `no-such-id`"),
    ] {
        let (code, _, err) = run(&mut with(&args));
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert!(!nowhere.exists(), "a failed restore left {never}");

    let target = b.dir.path().join("restored");
    let r = json(&mut with(&["restore", "--to-time", &t, "--target-dir", target.to_str().unwrap()]));
    let _guard = Restored { dir: target.clone(), info: info.clone() };
    assert_eq!(r["started"], true, "{r}");
    assert_eq!(r["backup_id"], id.as_str());
    let port = r["port"].as_u64().unwrap() as u16;
    let client = socket_client(r["socket_dir"].as_str().unwrap(), port, &db).await;
    let rows: Vec<String> =
        client.query("select v from marks order by v", &[]).await.expect("marks").iter().map(|r| r.get(0)).collect();
    assert_eq!(rows, vec!["A".to_string()], "restored to {t}");
    let in_recovery: bool = client.query_one("select pg_is_in_recovery()", &[]).await.expect("q").get(0);
    assert!(!in_recovery, "promoted");
    assert!(r["timeline"].as_u64().unwrap() >= 2, "{r}");

    // Restoring into a folder that is not empty is refused, and nothing is touched.
    let (code, _, err) = run(&mut with(&["restore", "--latest", "--target-dir", target.to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    drop(base);

    // Prune: a second full backup; with full backups kept one second, the first goes, and so
    // does the WAL only it needed; the WAL the second needs stays, so it still verifies.
    let m2 = json(&mut with(&["backup", "create", "--kind", "full"]));
    let id2 = m2["id"].as_str().unwrap().to_string();
    let start2 = m2["start_wal"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pruned = json(with(&["backup", "prune"]).env("FWDB__BACKUP__RETENTION__FULL", "1s").env("FWDB__BACKUP__RETENTION__RECOVERY_WINDOW", "1s"));
    let deleted: Vec<String> = pruned["deleted"].as_array().unwrap().iter().map(|d| d["what"].as_str().unwrap().to_string()).collect();
    assert!(deleted.contains(&id), "{pruned}");
    assert!(!deleted.contains(&id2), "{pruned}");
    assert!(deleted.iter().any(|d| d.starts_with("wal/")), "no WAL pruned: {pruned}");
    for d in deleted.iter().filter_map(|d| d.strip_prefix("wal/")) {
        assert!(d[8..24] < start2[8..24], "{d} is needed by {id2} (starts at {start2})");
    }
    let listed = json(&mut with(&["backup", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let drilled = ok(&mut with(&["backup", "verify", &id2, "--drill"]));
    assert!(drilled.contains("restore drill: recovered"), "{drilled}");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("fwdb-drill-"))
        .filter(|e| !crate::helpers::processes_mentioning(&e.path()).is_empty())
        .collect();
    assert!(left.is_empty(), "a drill server is still running");

    // Incremental (13.1): the WAL up to now reaches storage; status and metrics show it.
    sql("INSERT INTO marks VALUES ('C')");
    let inc = json(&mut with(&["backup", "create", "--kind", "incremental"]));
    let seg = inc["wal"].as_str().unwrap();
    assert!(b.storage.join("wal").join(format!("{seg}.zst.age")).is_file(), "{inc}");
    let metrics = ok(&mut with(&["backup", "metrics"]));
    for job in ["full", "incremental"] {
        assert!(metrics.contains(&format!("fwdb_backup_last_success_age_seconds{{job=\"{job}\"}}")), "{metrics}");
    }
    let status = json(&mut with(&["backup", "status"]));
    assert_eq!(status[0]["job"], "full");
    assert_eq!(status[0]["last_detail"], id2.as_str());
}

/// Every document of every collection, in canonical Extended JSON, by _id.
async fn mongo_snapshot(db: &mongodb::Database) -> Vec<(String, Vec<String>, Vec<String>)> {
    use futures::TryStreamExt;
    let mut names = db.list_collection_names().await.expect("collections");
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let c = db.collection::<mongodb::bson::Document>(&n);
        let docs: Vec<mongodb::bson::Document> =
            c.find(mongodb::bson::doc! {}).sort(mongodb::bson::doc! {"_id": 1}).await.expect("find").try_collect().await.expect("docs");
        let docs = docs.into_iter().map(|d| mongodb::bson::Bson::Document(d).into_canonical_extjson().to_string()).collect();
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
        .create_index(mongodb::IndexModel::builder().keys(doc! {"email": 1}).options(mongodb::options::IndexOptions::builder().unique(true).build()).build())
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
    let prelude: serde_json::Value = serde_json::from_slice(&std::fs::read(exported.join("prelude.json")).expect("prelude")).expect("json");
    assert!(prelude["ServerVersion"].is_string(), "{prelude}");
    let dbdir = exported.join(&app.mongo_database);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dbdir.join("users.metadata.json")).expect("meta")).expect("json");
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
    let obj = b.objects(&id).into_iter().find(|p| p.to_string_lossy().ends_with("users.bson.zst.age")).expect("users object");
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

/// Benchmark, not a timed test (docs/benchmarks.md): backup throughput with
/// compression and encryption against raw pg_basebackup / pg_dump to local
/// disk on the same data. `FWDB_BENCH_ROWS` rows (default 1,000,000).
/// Run: cargo test -p fwdb-cli --test it backup::bench -- --ignored --nocapture
#[tokio::test]
#[ignore]
async fn bench_backup_throughput() {
    let rows: u64 = std::env::var("FWDB_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let stack = tokio::task::spawn_blocking(|| {
        fwdb_testkit::Stack::start(fwdb_testkit::StackOptions { replicas: 0, mongo: false, ..Default::default() })
    })
    .await
    .expect("join")
    .expect("a private stack");
    let info = stack.info().clone();
    let db = stack.create_database().expect("database");
    stack
        .psql(
            fwdb_testkit::Node::Primary,
            &db,
            &format!(
                "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS a, repeat(chr(65 + g % 26), 40) AS b, now() AS c, \
                 jsonb_build_object('k', g, 'v', md5((g*7)::text)) AS d FROM generate_series(1, {rows}) g; CHECKPOINT;"
            ),
        )
        .expect("data");
    let size = stack.psql(fwdb_testkit::Node::Primary, &db, "SELECT pg_database_size(current_database())").expect("size");
    let b = BackupEnv::new(&stack);
    let mut env = info.env_vars(&db, &db);
    env.push(("FWDB__BACKUP__PG_USER".into(), info.superuser.clone()));
    env.push(("FWDB__BACKUP__PG_PASSWORD".into(), info.superuser_password.clone()));
    if let Ok(level) = std::env::var("FWDB_BENCH_LEVEL") {
        env.push(("FWDB__BACKUP__COMPRESSION_LEVEL".into(), level));
    }
    let libpq = |c: &mut Command| {
        c.env("PGHOST", &info.socket_dir).env("PGPORT", info.primary.port.to_string()).env("PGUSER", &info.superuser);
    };
    let time = |c: &mut Command| {
        let t = std::time::Instant::now();
        ok(c);
        t.elapsed().as_secs_f64()
    };
    let raw_dir = b.dir.path().join("raw");
    let mut c = Command::new(info.pg_bin_dir.join("pg_basebackup"));
    c.arg("-D").arg(&raw_dir).args(["-F", "t", "-X", "none", "-c", "fast"]);
    libpq(&mut c);
    let raw_base = time(&mut c);
    let base_bytes: u64 = walk(&raw_dir).iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let ours_base = time(b.cmd(&env).args(["backup", "create", "--kind", "full"]));
    let mut c = Command::new(info.pg_bin_dir.join("pg_dump"));
    c.arg("-Fc").arg("-f").arg(b.dir.path().join("raw.dump")).arg(&db);
    libpq(&mut c);
    let raw_dump = time(&mut c);
    let dump_bytes = std::fs::metadata(b.dir.path().join("raw.dump")).expect("dump").len();
    let ours_dump = time(b.cmd(&env).args(["backup", "create", "--kind", "logical"]));
    let stored: u64 = walk(&b.storage).iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    println!("bench: {rows} rows, database {size} bytes, base backup tar {base_bytes} bytes, pg_dump -Fc {dump_bytes} bytes");
    println!("bench: pg_basebackup to disk {raw_base:.2} s; fwdb full (zstd + age, to a folder) {ours_base:.2} s; ratio {:.2}", raw_base / ours_base);
    println!("bench: pg_dump -Fc to disk {raw_dump:.2} s; fwdb logical {ours_dump:.2} s; ratio {:.2}", raw_dump / ours_dump);
    println!("bench: fwdb stored {stored} bytes for both backups");
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
