//! examples/design-service is built and run against this app's databases:
//! a design from MongoDB comes back with its avatar from PostgreSQL.

use crate::helpers::TestApp;
use fwdb::{AvatarRepo, NewAvatar, NewUser, Repository, UserRepo, Uuid};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the example");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    let json = out.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example's binary. `cargo test --workspace` (scripts/test.sh) builds it next to
/// `fwdb` in the same invocation (examples/design-service has an integration test, so
/// cargo builds its binary); a targeted run (`cargo test -p fwdb-cli --test it example::`)
/// builds it here when it is missing or older than its sources or fwdb's.
fn design_service_binary() -> std::path::PathBuf {
    let root = fwdb_testkit::project_root();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_fwdb")).with_file_name("design-service");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = ["examples/design-service/src", "examples/design-service/Cargo.toml", "crates/fwdb/src", "crates/fwdb/Cargo.toml"];
    let newest = sources.iter().filter_map(|s| newest_mtime(&root.join(s))).max();
    if built.is_some() && built >= newest {
        return bin;
    }
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "design-service"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(build.success(), "examples/design-service builds");
    bin
}

fn newest_mtime(p: &std::path::Path) -> Option<std::time::SystemTime> {
    let m = std::fs::metadata(p).ok()?;
    if m.is_file() {
        return m.modified().ok();
    }
    std::fs::read_dir(p).ok()?.flatten().filter_map(|e| newest_mtime(&e.path())).max()
}

#[tokio::test]
async fn the_design_service_example_builds_runs_and_serves_both_stores() {
    let bin = design_service_binary();

    let app = TestApp::migrated().await;
    let pg = crate::repo::client(&app).await;
    let user = UserRepo::new().create(&pg, &NewUser::new(format!("s{}@x.com", Uuid::new_v4().simple()), "S", "S")).await.unwrap();
    let avatar = AvatarRepo::new().create(&pg, &NewAvatar::new(user.id, "service avatar")).await.unwrap();

    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FWDB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(app.env.iter().map(|(k, v)| (k, v)))
        .env("DESIGN_SERVICE_LISTEN", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Running(cmd.spawn().expect("the example starts"));
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected first line: {line}")).to_string();

    let addr2 = addr.clone();
    let uid = user.id.to_string();
    let aid = avatar.id.to_string();
    let (created, fetched, bad_id, missing, bad_body, stale) = tokio::task::spawn_blocking(move || {
        let created = http(&addr2, "POST", "/designs", Some(&json!({"userId": uid, "name": "from the service", "avatarId": aid})));
        let id = created.1["design"]["id"].as_str().unwrap_or_default().to_string();
        let fetched = http(&addr2, "GET", &format!("/designs/{id}"), None);
        let bad_id = http(&addr2, "GET", "/designs/not-an-id", None);
        let missing = http(&addr2, "GET", &format!("/designs/{}", Uuid::new_v4()), None);
        let bad_body = http(&addr2, "POST", "/designs", Some(&json!({"userId": uid, "name": "x", "colour": "red"})));
        http(&addr2, "PUT", &format!("/designs/{id}/name"), Some(&json!({"expectedVersion": 1, "changedBy": "svc", "name": "renamed"})));
        let stale = http(&addr2, "PUT", &format!("/designs/{id}/name"), Some(&json!({"expectedVersion": 1, "changedBy": "svc", "name": "again"})));
        (created, fetched, bad_id, missing, bad_body, stale)
    })
    .await
    .unwrap();
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(fetched.0, 200, "{}", fetched.1);
    assert_eq!(fetched.1["design"]["name"], "from the service");
    assert_eq!(fetched.1["avatar"]["id"], avatar.id.to_string());
    assert_eq!(fetched.1["avatar"]["name"], "service avatar");
    assert_eq!(bad_id.0, 400);
    assert!(bad_id.1["error"].as_str().unwrap().contains("malformed id"), "{}", bad_id.1);
    assert_eq!(missing.0, 404);
    assert_eq!(bad_body.0, 400);
    assert!(bad_body.1["error"].as_str().unwrap().contains("colour"), "{}", bad_body.1);
    assert_eq!(stale.0, 409, "{}", stale.1);
    drop(child);
}
