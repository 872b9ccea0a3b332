//! Backups to S3 for real: against moto's S3-compatible server (PyPI
//! `moto[server]`, installed into .fwdb/venv by scripts/setup.sh), started on
//! a free port and killed on drop.

use super::{json, ok, pg_checksums, BackupEnv};
use crate::helpers::{run, TestApp};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn start() -> Moto {
        let root = fwdb_testkit::project_root();
        let bin = root.join(".fwdb/venv/bin/moto_server");
        assert!(bin.is_file(), "{} is missing: run scripts/setup.sh (it installs moto[server])", bin.display());
        let port = fwdb_testkit::pick_free_port().expect("a free port");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !fwdb_testkit::is_listening(port) {
            assert!(std::time::Instant::now() < deadline, "moto_server did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("request");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "bucket {name} not created: {reply}");
    }

    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        vec![
            ("FWDB__BACKUP__STORAGE".into(), format!("s3://{bucket}/fwdb/backups")),
            ("FWDB__BACKUP__S3__ENDPOINT".into(), format!("http://127.0.0.1:{}", self.port)),
            ("FWDB__BACKUP__S3__ALLOW_HTTP".into(), "true".into()),
            ("FWDB__BACKUP__S3__REGION".into(), "us-east-1".into()),
            ("FWDB__BACKUP__S3__ACCESS_KEY_ID".into(), "testing".into()),
            ("FWDB__BACKUP__S3__SECRET_ACCESS_KEY".into(), "testing-secret".into()),
        ]
    }
}

#[tokio::test]
async fn logical_backup_round_trips_through_s3() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.expect("join");
    moto.create_bucket("fwdb-test");
    let app = TestApp::spawn().await;
    let src = crate::helpers::superuser(app.stack, &app.pg_database).await;
    src.batch_execute(
        "create table notes (id int primary key, body text);
         insert into notes select g, repeat(md5(g::text), 20) from generate_series(1, 20000) g;",
    )
    .await
    .expect("data");
    let b = BackupEnv::new(app.stack);
    let s3 = moto.env("fwdb-test");
    let cmd = |args: &[&str]| {
        let mut c = b.cmd(&app.env);
        c.envs(s3.iter().map(|(k, v)| (k, v))).args(args);
        c
    };
    let m = json(&mut cmd(&["backup", "create", "--kind", "logical"]));
    let id = m["id"].as_str().unwrap().to_string();
    assert!(!b.storage.exists(), "the folder storage was used instead of S3");
    let listed = json(&mut cmd(&["backup", "list"]));
    assert_eq!(listed[0]["id"], id.as_str());
    ok(&mut cmd(&["backup", "verify", &id]));
    let target = format!("{}_s3", app.pg_database);
    ok(&mut cmd(&["restore", "logical", &id, "--database", &target]));
    let restored = crate::helpers::superuser(app.stack, &target).await;
    assert_eq!(pg_checksums(&src).await, pg_checksums(&restored).await);

    // WAL through S3: a 16 MiB segment (a multipart upload), back byte for byte; pushing it again
    // is fine, pushing other content under its name is refused; a missing one exits 1.
    let seg_dir = b.dir.path().join("pg_wal");
    std::fs::create_dir_all(&seg_dir).expect("mkdir");
    let seg = seg_dir.join("000000010000000000000007");
    let content: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&seg, &content).expect("segment");
    ok(&mut cmd(&["wal", "push", seg.to_str().unwrap()]));
    ok(&mut cmd(&["wal", "push", seg.to_str().unwrap()]));
    let back = b.dir.path().join("fetched");
    ok(&mut cmd(&["wal", "fetch", "000000010000000000000007", back.to_str().unwrap()]));
    assert!(std::fs::read(&back).expect("fetched") == content, "WAL changed on the way");
    std::fs::write(&seg, b"other").expect("overwrite");
    let (code, _, err) = run(&mut cmd(&["wal", "push", seg.to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("already archived") && err.contains("different content"), "{err}");
    let (code, _, err) = run(&mut cmd(&["wal", "fetch", "000000010000000000000099", back.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not in the WAL archive"), "{err}");

    // Secrets never printed: not in config show, not in errors.
    let (_, out, err) = run(&mut cmd(&["config", "show"]));
    assert!(!out.contains("testing-secret") && !err.contains("testing-secret"), "{out}{err}");
    // A bucket that does not exist: a clear error naming the storage.
    let mut c = b.cmd(&app.env);
    c.envs(moto.env("no-such-bucket").iter().map(|(k, v)| (k, v))).args(["backup", "create", "--kind", "logical"]);
    let (code, _, err) = run(&mut c);
    assert_ne!(code, 0);
    assert!(err.contains("s3://no-such-bucket/fwdb/backups"), "{err}");
}
