//! Point-in-time recovery on private stacks whose WAL reaches the backup
//! storage through `fwdb wal push` as archive_command and comes back through
//! `fwdb wal fetch` as restore_command: to a folder (`file://`) and to S3
//! (moto). Also the full `backup verify`: a restore into a scratch server
//! whose row counts must equal the manifest's.

use super::s3::Moto;
use super::{json, ok, BackupEnv};
use crate::helpers::{fwdb_command, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private stack (a primary only) archiving its WAL into a backup storage
/// through `fwdb --config FILE wal push %p`, with FILE readable by the
/// servers' OS user.
pub(super) struct ArchivingStack {
    pub(super) stack: fwdb_testkit::Stack,
    pub(super) info: fwdb_testkit::StackInfo,
    pub(super) db: String,
    pub(super) b: BackupEnv,
    cfg: PathBuf,
    env: Vec<(String, String)>,
}

impl ArchivingStack {
    /// `storage_toml`: the storage lines of the `[backup]` table (and a
    /// `[backup.s3]` table if needed). `backup_role_is_superuser`: the backup
    /// role may then lock and count every table (row counts in full backups);
    /// otherwise it is a role with REPLICATION only, as in docs/runbook.md.
    pub(super) async fn start(
        storage_toml: impl FnOnce(&BackupEnv) -> String,
        backup_role_is_superuser: bool,
    ) -> ArchivingStack {
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
        let cfg = b.dir.path().join("fwdb.toml");
        let text = format!(
            "[backup]\n{}\n[backup.encryption]\nrecipients = [\"{}\"]\nidentity_file = \"{}\"\n",
            storage_toml(&b),
            b.recipient,
            b.identity.display()
        );
        std::fs::write(&cfg, text).expect("config");
        // archive_command runs as the server's user: it reads this file and the key, and writes the storage.
        std::fs::create_dir_all(&b.storage).expect("storage");
        for p in [&b.storage, &b.identity, &cfg] {
            give_to_server_user(&info, p);
        }
        let archive = format!("{} --config {} wal push %p", env!("CARGO_BIN_EXE_fwdb"), cfg.display());
        stack
            .psql(fwdb_testkit::Node::Primary, "postgres", &format!("ALTER SYSTEM SET archive_command = '{archive}'"))
            .expect("archive_command");
        stack.psql(fwdb_testkit::Node::Primary, "postgres", "SELECT pg_reload_conf()").expect("reload");
        // The backup role may close WAL segments (docs/runbook.md, setting up).
        let grant = format!("GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {}", info.replication_user);
        stack.psql(fwdb_testkit::Node::Primary, &db, &grant).expect("grant");
        let mut env = info.env_vars(&db, &db);
        let (user, password) = if backup_role_is_superuser {
            (info.superuser.clone(), info.superuser_password.clone())
        } else {
            (info.replication_user.clone(), info.replication_password.clone())
        };
        env.push(("FWDB__BACKUP__PG_USER".into(), user));
        env.push(("FWDB__BACKUP__PG_PASSWORD".into(), password));
        env.push(("FWDB__BACKUP__PG_BIN_DIR".into(), info.pg_bin_dir.display().to_string()));
        // Scratch servers of `backup verify` go to this test's own temporary
        // folder, so the check that none is left sees no other test's.
        let tmp = info.dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("the test's temporary folder");
        env.push(("TMPDIR".into(), tmp.display().to_string()));
        ArchivingStack { stack, info, db, b, cfg, env }
    }

    /// `fwdb --config FILE ARGS...` for this stack.
    pub(super) fn fwdb(&self, args: &[&str]) -> Command {
        let mut c = fwdb_command();
        c.envs(self.env.iter().map(|(k, v)| (k, v))).arg("--config").arg(&self.cfg).args(args);
        c
    }

    pub(super) fn sql(&self, s: &str) -> String {
        self.stack.psql(fwdb_testkit::Node::Primary, &self.db, s).expect(s)
    }

    /// Closes the current WAL segment and waits until the archiver has stored it; its name.
    pub(super) fn archive_now(&self) -> String {
        let seg = self.sql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let state = self.sql("SELECT coalesce(last_archived_wal, '') || ' ' || failed_count FROM pg_stat_archiver");
            if state.split_whitespace().next().is_some_and(|w| w >= seg.as_str()) {
                return seg;
            }
            assert!(std::time::Instant::now() < deadline, "WAL {seg} never archived: {state}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Writes A, notes the time, writes B; archives everything. The time.
    fn write_a_note_the_time_write_b(&self) -> String {
        self.sql("INSERT INTO marks VALUES ('A')");
        std::thread::sleep(std::time::Duration::from_millis(1200));
        let t = self.sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
        std::thread::sleep(std::time::Duration::from_millis(1200));
        self.sql("INSERT INTO marks VALUES ('B')");
        self.archive_now();
        t
    }

    /// Restores to `t` into a new folder: the marks there, and the server (stopped on drop).
    async fn restore_to(&self, t: &str, folder: &str) -> (Vec<String>, serde_json::Value, Restored) {
        let target = self.b.dir.path().join(folder);
        let r = json(&mut self.fwdb(&["restore", "--to-time", t, "--target-dir", target.to_str().expect("path")]));
        let guard = Restored { dir: target, info: self.info.clone() };
        assert_eq!(r["started"], true, "{r}");
        let client = socket_client(
            r["socket_dir"].as_str().expect("socket"),
            r["port"].as_u64().expect("port") as u16,
            &self.db,
        )
        .await;
        let marks = client.query("select v from marks where v in ('A', 'B') order by v", &[]).await.expect("marks");
        let in_recovery: bool = client.query_one("select pg_is_in_recovery()", &[]).await.expect("q").get(0);
        assert!(!in_recovery, "promoted");
        (marks.iter().map(|r| r.get(0)).collect(), r, guard)
    }
}

/// Runs `cmd` as the servers' OS user (when we are root).
pub(super) fn as_server_user(info: &fwdb_testkit::StackInfo, program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.arg("-u").arg(&info.run_as_user).arg("--").arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(super) fn give_to_server_user(info: &fwdb_testkit::StackInfo, path: &Path) {
    if unsafe { libc::geteuid() } == 0 {
        let st = Command::new("chown").arg("-R").arg(&info.run_as_user).arg(path).status().expect("chown");
        assert!(st.success());
    }
}

/// A restored server, stopped on drop.
pub(super) struct Restored {
    pub(super) dir: PathBuf,
    pub(super) info: fwdb_testkit::StackInfo,
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

pub(super) async fn socket_client(socket: &str, port: u16, db: &str) -> tokio_postgres::Client {
    let mut c = tokio_postgres::Config::new();
    c.host_path(socket).port(port).user("postgres").dbname(db);
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("connect to the restored server");
    tokio::spawn(conn);
    client
}

/// Whether the server's log (with log_connections) shows fwdb's replication
/// connection arriving on the unix socket (`host=[local]`, same PID).
fn base_backup_came_through_the_socket(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).expect("the primary's log");
    let pid = |l: &str| l.split('[').nth(1).and_then(|p| p.split(']').next()).map(str::to_string);
    let local: Vec<String> =
        text.lines().filter(|l| l.contains("connection received: host=[local]")).filter_map(pid).collect();
    text.lines()
        .filter(|l| l.contains("replication connection authorized") && l.contains("application_name=fwdb backup"))
        .filter_map(pid)
        .any(|p| local.contains(&p))
}

/// Scratch servers of `backup verify` still running in this test's temporary
/// folder (there must be none after it).
pub(super) fn scratch_servers_left(a: &ArchivingStack) -> Vec<PathBuf> {
    std::fs::read_dir(a.info.dir.join("tmp"))
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("fwdb-verify-"))
        .map(|e| e.path())
        .filter(|p| !crate::helpers::processes_mentioning(p).is_empty())
        .collect()
}

/// Write A, note the time, write B: a point-in-time restore to that time has A and not B.
#[tokio::test]
async fn point_in_time_recovery_has_a_and_not_b() {
    let a = ArchivingStack::start(|b| format!("storage = \"file://{}\"", b.storage.display()), false).await;
    a.sql("CREATE TABLE marks (v text)");
    let m = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert!(m["start_lsn"].is_string() && m["stop_lsn"].is_string(), "{m}");
    assert!(m["start_wal"].is_string(), "{m}");
    // A role with REPLICATION only may not lock the tables: no counts, and the manifest says why.
    assert!(m["counts_lsn"].is_null(), "{m}");
    assert!(m["counts_note"].as_str().is_some_and(|n| n.contains("not recorded")), "{m}");

    let t = a.write_a_note_the_time_write_b();
    let wal = ok(&mut a.fwdb(&["wal", "list"]));
    let seg = a.sql("SELECT last_archived_wal FROM pg_stat_archiver");
    assert!(wal.contains(&seg), "{wal}");
    // Encrypted in storage too.
    let stored = std::fs::read(a.b.storage.join("wal").join(format!("{seg}.zst.age"))).expect("wal object");
    assert!(stored.starts_with(b"age-encryption.org/v1"));

    // The full verify restores into a scratch server even without counts: it must answer.
    let verified = ok(&mut a.fwdb(&["backup", "verify", &id]));
    assert!(verified.contains("pg_verifybackup") && verified.contains("counts not compared"), "{verified}");

    // Bad input: clear errors, nothing laid out.
    let nowhere = a.b.dir.path().join("never");
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
        let (code, _, err) = run(&mut a.fwdb(&args));
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert!(!nowhere.exists(), "a failed restore left {never}");

    let (marks, r, _restored) = a.restore_to(&t, "restored").await;
    assert_eq!(marks, vec!["A".to_string()], "restored to {t}");
    assert_eq!(r["backup_id"], id.as_str());
    assert!(r["timeline"].as_u64().unwrap() >= 2, "{r}");

    // Restoring into a folder that is not empty is refused, and nothing is touched.
    let target = a.b.dir.path().join("restored");
    let (code, _, err) = run(&mut a.fwdb(&["restore", "--latest", "--target-dir", target.to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");

    // Prune: a second full backup (by the superuser, so with row counts); with full backups
    // kept one second, the first goes, and so does the WAL only it needed; the WAL the second
    // needs stays, so it still verifies, down to its row counts.
    // It is taken as on the database host: pg_basebackup through the unix socket (backup.pg_socket_dir).
    a.sql("INSERT INTO marks SELECT 'C' FROM generate_series(1, 500)");
    let su = [
        ("FWDB__BACKUP__PG_USER", a.info.superuser.clone()),
        ("FWDB__BACKUP__PG_PASSWORD", a.info.superuser_password.clone()),
    ];
    a.stack
        .psql(fwdb_testkit::Node::Primary, "postgres", "ALTER SYSTEM SET log_connections = on")
        .expect("log_connections");
    a.stack.psql(fwdb_testkit::Node::Primary, "postgres", "SELECT pg_reload_conf()").expect("reload");
    let socket = [("FWDB__BACKUP__PG_SOCKET_DIR", a.info.socket_dir.display().to_string())];
    let m2 = json(a.fwdb(&["backup", "create", "--kind", "full"]).envs(su.clone()).envs(socket));
    assert!(base_backup_came_through_the_socket(&a.info.primary.log_file), "pg_basebackup did not use the unix socket");
    let id2 = m2["id"].as_str().unwrap().to_string();
    let marks_key = format!("{}.public.marks", a.db);
    assert_eq!(m2["counts"][&marks_key], 502, "{m2}");
    assert!(m2["counts_lsn"].is_string(), "{m2}");
    let start2 = m2["start_wal"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pruned = json(
        a.fwdb(&["backup", "prune"])
            .env("FWDB__BACKUP__RETENTION__FULL", "1s")
            .env("FWDB__BACKUP__RETENTION__RECOVERY_WINDOW", "1s"),
    );
    let deleted: Vec<String> =
        pruned["deleted"].as_array().unwrap().iter().map(|d| d["what"].as_str().unwrap().to_string()).collect();
    assert!(deleted.contains(&id), "{pruned}");
    assert!(!deleted.contains(&id2), "{pruned}");
    assert!(deleted.iter().any(|d| d.starts_with("wal/")), "no WAL pruned: {pruned}");
    for d in deleted.iter().filter_map(|d| d.strip_prefix("wal/")) {
        assert!(d[8..24] < start2[8..24], "{d} is needed by {id2} (starts at {start2})");
    }
    assert_eq!(json(&mut a.fwdb(&["backup", "list"])).as_array().unwrap().len(), 1);
    // Writes after the backup are not in what verify compares: the restore stops where the counts were taken.
    a.sql("INSERT INTO marks VALUES ('D')");
    let verified = ok(&mut a.fwdb(&["backup", "verify", &id2]));
    assert!(verified.contains("equal the manifest's") && verified.contains("stopped and removed"), "{verified}");
    assert!(scratch_servers_left(&a).is_empty(), "a scratch server is still running");

    // A manifest whose count differs from the restored table fails the full verify, not the quick one.
    let manifest = a.b.storage.join("backups").join(&id2).join("manifest.json");
    let mut mj: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    mj["counts"][&marks_key] = 503.into();
    std::fs::write(&manifest, serde_json::to_vec(&mj).expect("json")).expect("write manifest");
    let (code, _, err) = run(&mut a.fwdb(&["backup", "verify", &id2]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("restored table {marks_key} has 502 rows")) && err.contains("records 503"), "{err}");
    assert!(scratch_servers_left(&a).is_empty(), "a failed verify left its scratch server running");
    let quick = ok(&mut a.fwdb(&["backup", "verify", "--quick", &id2]));
    assert!(!quick.contains("scratch"), "{quick}");

    // Incremental (13.1): the WAL up to now reaches storage; status and metrics show it.
    let inc = json(
        a.fwdb(&["backup", "create", "--kind", "incremental"]).env("FWDB__BACKUP__SCHEDULE__INCREMENTAL_TYPE", "wal"),
    );
    let seg = inc["wal"].as_str().unwrap();
    assert!(a.b.storage.join("wal").join(format!("{seg}.zst.age")).is_file(), "{inc}");
    let metrics = ok(&mut a.fwdb(&["backup", "metrics"]));
    for job in ["full", "incremental"] {
        assert!(metrics.contains(&format!("fwdb_backup_last_success_age_seconds{{kind=\"{job}\"}}")), "{metrics}");
    }
    let status = json(&mut a.fwdb(&["backup", "status"]));
    assert_eq!(status[0]["job"], "full");
    assert_eq!(status[0]["last_detail"], id2.as_str());
}

/// The same through S3 (moto): base backup, WAL pushed and fetched, point-in-time restore,
/// and the full verify (scratch server, row counts) reading everything back from the bucket.
#[tokio::test]
async fn point_in_time_recovery_through_s3() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.expect("join");
    moto.create_bucket("fwdb-pitr");
    let s3 = format!(
        "storage = \"s3://fwdb-pitr/prod\"\n[backup.s3]\nendpoint = \"http://127.0.0.1:{}\"\nallow_http = true\nregion = \"us-east-1\"\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing-secret\"",
        moto.port
    );
    let a = ArchivingStack::start(|_| s3, true).await;
    a.sql("CREATE TABLE marks (v text); INSERT INTO marks SELECT 'seed' FROM generate_series(1, 1000)");
    let m = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["counts"][format!("{}.public.marks", a.db)], 1000, "{m}");

    let t = a.write_a_note_the_time_write_b();
    let seg = a.sql("SELECT last_archived_wal FROM pg_stat_archiver");
    let wal = ok(&mut a.fwdb(&["wal", "list"]));
    assert!(wal.contains(&seg), "{wal}");
    assert!(super::walk(&a.b.storage).is_empty(), "the folder storage was used instead of S3");

    let verified = ok(&mut a.fwdb(&["backup", "verify", &id]));
    assert!(verified.contains("equal the manifest's"), "{verified}");
    assert!(scratch_servers_left(&a).is_empty(), "a scratch server is still running");

    let (marks, r, _restored) = a.restore_to(&t, "restored").await;
    assert_eq!(marks, vec!["A".to_string()], "restored to {t} from S3: {r}");
}

/// A folder where `pg_verifybackup` is a wrapper that first changes one byte of
/// `PG_VERSION` in the folder it checks (a restore damaged on its way to disk),
/// then runs the real one; the other tools are the real ones.
fn pg_bin_damaging_pg_version(info: &fwdb_testkit::StackInfo, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("damaging-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for e in std::fs::read_dir(&info.pg_bin_dir).expect("pg bin dir").flatten() {
        if e.file_name() != "pg_verifybackup" {
            std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).expect("symlink");
        }
    }
    let real = info.pg_bin_dir.join("pg_verifybackup");
    let script = format!(
        "#!/bin/sh\nfor d; do :; done\nprintf 9 | dd of=\"$d/PG_VERSION\" bs=1 count=1 conv=notrunc 2>/dev/null\nexec '{}' \"$@\"\n",
        real.display()
    );
    let p = bin.join("pg_verifybackup");
    std::fs::write(&p, script).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// A restored base backup keeps its backup_manifest, so pg_verifybackup can check
/// it; the full verify runs pg_verifybackup, WAL included, on its scratch restore
/// before starting it, and fails naming the file that differs.
#[tokio::test]
async fn pg_verifybackup_checks_a_restore_and_the_verify_drill_runs_it() {
    let a = ArchivingStack::start(|b| format!("storage = \"file://{}\"", b.storage.display()), true).await;
    a.sql("CREATE TABLE marks (v text); INSERT INTO marks SELECT 'seed' FROM generate_series(1, 100)");
    let m = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    let id = m["id"].as_str().unwrap().to_string();

    // `fwdb restore --no-start`: the folder as restored, checked by PostgreSQL's own tool.
    let target = a.b.dir.path().join("laid-out");
    let r = json(&mut a.fwdb(&[
        "restore",
        "--latest",
        "--no-start",
        "--backup",
        &id,
        "--target-dir",
        target.to_str().unwrap(),
    ]));
    assert_eq!(r["started"], false, "{r}");
    assert!(target.join("backup_manifest").is_file(), "the restore removed backup_manifest");
    let verifybackup = a.info.pg_bin_dir.join("pg_verifybackup");
    // Its WAL is still in the archive (restore_command fetches it): files only.
    let (code, out, err) = run(Command::new(&verifybackup).arg("--no-parse-wal").arg(&target));
    assert_eq!(code, 0, "pg_verifybackup on the restored folder: {out}{err}");
    assert!(out.contains("backup successfully verified"), "{out}");
    std::fs::write(target.join("PG_VERSION"), "99\n").expect("change a file");
    let (code, _, err) = run(Command::new(&verifybackup).arg("--no-parse-wal").arg(&target));
    assert_ne!(code, 0);
    assert!(err.contains("PG_VERSION"), "{err}");

    // The drill: pg_verifybackup's verdict, with the WAL parsed, in text and JSON.
    let verified = ok(&mut a.fwdb(&["backup", "verify", &id]));
    assert!(
        verified.contains("ok  pg_verifybackup on the scratch restore: backup successfully verified"),
        "{verified}"
    );
    assert!(verified.contains("WAL parsed from pg_wal") && verified.contains("equal the manifest's"), "{verified}");
    let v = json(&mut a.fwdb(&["backup", "verify", &id]));
    assert!(v["pg_verifybackup"].as_str().is_some_and(|s| s.contains("successfully verified")), "{v}");

    // A scratch restore that differs from its manifest: exit 1 naming the file, no server started, nothing left.
    let bin = pg_bin_damaging_pg_version(&a.info, a.b.dir.path());
    let (code, out, err) =
        run(a.fwdb(&["backup", "verify", &id, "--format", "json"]).env("FWDB__BACKUP__PG_BIN_DIR", &bin));
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["ok"], false, "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains("pg_verifybackup") && e.contains("checksum mismatch for file \"PG_VERSION\""), "{v}");
    assert!(err.contains("failed verification") && err.contains("PG_VERSION"), "{err}");
    let scratch: Vec<_> = std::fs::read_dir(a.info.dir.join("tmp")).expect("tmp").flatten().map(|e| e.path()).collect();
    assert!(
        scratch.iter().all(|p| !p.file_name().unwrap().to_string_lossy().starts_with("fwdb-verify-")),
        "{scratch:?}"
    );
}
