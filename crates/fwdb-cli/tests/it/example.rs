//! examples/design-service is built and run against this app's databases:
//! a design from MongoDB comes back with its avatar from PostgreSQL, in one
//! JSON casing; every error has one JSON shape; SIGTERM drains.

use crate::helpers::TestApp;
use fwdb::{Avatar, AvatarRepo, NewAvatar, NewUser, Repository, User, UserRepo, Uuid};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request on its own connection: the status and the body (parsed
/// as JSON, or `Null`). `Err` when the connection fails or gets no answer.
fn try_http_raw(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> Result<(u16, Value), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    let status: u16 =
        out.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status line in {out:?}"))?;
    let json = out.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Ok((status, json))
}

fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    try_http_raw(addr, method, path, "application/json", &body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
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
    let sources = [
        "examples/design-service/src",
        "examples/design-service/Cargo.toml",
        "crates/fwdb/src",
        "crates/fwdb/Cargo.toml",
    ];
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

/// A user and an avatar of theirs, in the app's PostgreSQL database.
async fn user_with_avatar(app: &TestApp) -> (User, Avatar) {
    let pg = crate::repo::client(app).await;
    let user = UserRepo::new()
        .create(&pg, &NewUser::new(format!("s{}@x.com", Uuid::new_v4().simple()), "S", "S"))
        .await
        .unwrap();
    let avatar = AvatarRepo::new().create(&pg, &NewAvatar::new(user.id, "service avatar")).await.unwrap();
    (user, avatar)
}

/// Starts the example on a free port with the app's settings (and `extra`
/// ones) but none of the admin login's: a service runs as the runtime login
/// only. Returns it and its address.
fn start_example(app: &TestApp, extra: &[(&str, &str)]) -> (Running, String) {
    let bin = design_service_binary();
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FWDB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(app.env.iter().filter(|(k, _)| !k.starts_with("FWDB__POSTGRES__ADMIN__")).map(|(k, v)| (k, v)))
        .envs(extra.iter().copied())
        .env("DESIGN_SERVICE_LISTEN", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = Running(cmd.spawn().expect("the example starts"));
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, addr)
}

/// Object keys anywhere in `v` that are not camelCase.
fn keys_not_in_camel_case(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let camel = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && k.chars().all(|c| c.is_ascii_alphanumeric());
                if !camel {
                    out.push(format!("{path}.{k}"));
                }
                keys_not_in_camel_case(v, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| keys_not_in_camel_case(v, &format!("{path}[{i}]"), out))
        }
        _ => {}
    }
}

fn assert_error_shape(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.1);
    assert_eq!(answer.1.as_object().map(|o| o.len()), Some(1), "nothing but `error`: {}", answer.1);
}

#[tokio::test]
async fn the_design_service_example_builds_runs_and_serves_both_stores() {
    let app = TestApp::migrated().await;
    let (user, avatar) = user_with_avatar(&app).await;
    let (child, addr) = start_example(&app, &[]);

    let uid = user.id.to_string();
    let aid = avatar.id.to_string();
    let (created, fetched, bad_id, missing, bad_body, stale) = tokio::task::spawn_blocking(move || {
        let created =
            http(&addr, "POST", "/designs", Some(&json!({"userId": uid, "name": "from the service", "avatarId": aid})));
        let id = created.1["design"]["id"].as_str().unwrap_or_default().to_string();
        let fetched = http(&addr, "GET", &format!("/designs/{id}"), None);
        let bad_id = http(&addr, "GET", "/designs/not-an-id", None);
        let missing = http(&addr, "GET", &format!("/designs/{}", Uuid::new_v4()), None);
        let bad_body = http(&addr, "POST", "/designs", Some(&json!({"userId": uid, "name": "x", "colour": "red"})));
        http(
            &addr,
            "PUT",
            &format!("/designs/{id}/name"),
            Some(&json!({"expectedVersion": 1, "changedBy": "svc", "name": "renamed"})),
        );
        let stale = http(
            &addr,
            "PUT",
            &format!("/designs/{id}/name"),
            Some(&json!({"expectedVersion": 1, "changedBy": "svc", "name": "again"})),
        );
        (created, fetched, bad_id, missing, bad_body, stale)
    })
    .await
    .unwrap();
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(fetched.0, 200, "{}", fetched.1);
    assert_eq!(fetched.1["design"]["name"], "from the service");
    assert_eq!(fetched.1["avatar"]["id"], avatar.id.to_string());
    assert_eq!(fetched.1["avatar"]["name"], "service avatar");
    assert_error_shape(&bad_id, 400, "invalid_input");
    assert!(bad_id.1["error"]["message"].as_str().unwrap().contains("malformed id"), "{}", bad_id.1);
    assert_error_shape(&missing, 404, "not_found");
    assert_error_shape(&bad_body, 400, "invalid_input");
    assert!(bad_body.1["error"]["message"].as_str().unwrap().contains("colour"), "{}", bad_body.1);
    assert_error_shape(&stale, 409, "conflict");
    drop(child);
}

#[tokio::test]
async fn a_design_and_its_avatar_come_back_in_one_json_casing() {
    let app = TestApp::migrated().await;
    let (user, avatar) = user_with_avatar(&app).await;
    let (child, addr) = start_example(&app, &[]);
    let body = json!({"userId": user.id, "name": "cased", "avatarId": avatar.id, "metadata": {"thumbnailUrl": "https://x/t.png"}});
    let fetched = tokio::task::spawn_blocking(move || {
        let created = http(&addr, "POST", "/designs", Some(&body));
        let id = created.1["design"]["id"].as_str().unwrap_or_default().to_string();
        http(&addr, "GET", &format!("/designs/{id}"), None)
    })
    .await
    .unwrap();
    assert_eq!(fetched.0, 200, "{}", fetched.1);
    assert_eq!(fetched.1["avatar"]["userId"], user.id.to_string(), "{}", fetched.1);
    assert_eq!(fetched.1["design"]["avatarId"], avatar.id.to_string(), "{}", fetched.1);
    let mut wrong = Vec::new();
    keys_not_in_camel_case(&fetched.1, "", &mut wrong);
    assert!(wrong.is_empty(), "keys not in camelCase: {wrong:?} in {}", fetched.1);
    drop(child);
}

#[tokio::test]
async fn every_error_of_the_example_has_one_json_shape_rejected_bodies_and_unknown_routes_included() {
    let app = TestApp::spawn().await;
    let (child, addr) = start_example(&app, &[]);
    let answers = tokio::task::spawn_blocking(move || {
        let ok = |r: Result<(u16, Value), String>| r.unwrap_or_else(|e| panic!("{e}"));
        vec![
            (ok(try_http_raw(&addr, "POST", "/designs", "application/json", "{\"userId\": ")), 400, "malformed_json"),
            (ok(try_http_raw(&addr, "POST", "/designs", "text/plain", "{}")), 415, "unsupported_media_type"),
            (ok(try_http_raw(&addr, "POST", "/designs", "application/json", "{}")), 400, "invalid_input"),
            (ok(try_http_raw(&addr, "GET", "/no/such/route", "application/json", "")), 404, "not_found"),
            (ok(try_http_raw(&addr, "DELETE", "/designs", "application/json", "")), 405, "method_not_allowed"),
        ]
    })
    .await
    .unwrap();
    for (answer, status, code) in &answers {
        assert_error_shape(answer, *status, code);
    }
    drop(child);
}

/// Backends of this database waiting for a lock.
async fn waiting_on_locks(pg: &tokio_postgres::Client) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    pg.query_one(sql, &[]).await.expect("pg_stat_activity").get(0)
}

#[tokio::test]
async fn sigterm_lets_the_requests_in_flight_finish_and_the_example_exits_0() {
    const IN_FLIGHT: usize = 4;
    let app = TestApp::migrated().await;
    let (user, avatar) = user_with_avatar(&app).await;
    // One open connection per request and no reads pipelined on a shared
    // one, so each request in flight shows up as one backend waiting.
    let in_flight = IN_FLIGHT.to_string();
    let (mut child, addr) = start_example(
        &app,
        &[("FWDB__POSTGRES__POOL__MULTIPLEX", "0"), ("FWDB__POSTGRES__POOL__MIN_SIZE", in_flight.as_str())],
    );

    // Creating a design checks its avatar on the primary: holding an
    // exclusive lock on the avatars keeps every such request in flight.
    let locker = app.pg().await;
    locker.batch_execute("BEGIN; LOCK TABLE avatar.avatars IN ACCESS EXCLUSIVE MODE").await.expect("lock the avatars");
    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let (addr, body) =
                (addr.clone(), json!({"userId": user.id, "name": format!("in flight {i}"), "avatarId": avatar.id}));
            std::thread::spawn(move || try_http_raw(&addr, "POST", "/designs", "application/json", &body.to_string()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting_on_locks(&locker).await < IN_FLIGHT as i64 {
        assert!(Instant::now() < deadline, "the requests never reached PostgreSQL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = child.0.id() as libc::pid_t;
    // SAFETY: signalling our own child, which we have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.0.try_wait().expect("try_wait").is_none(), "the example exited with requests in flight");
    locker.batch_execute("ROLLBACK").await.expect("release the lock");

    for (i, r) in requests.into_iter().enumerate() {
        let answer = r.join().expect("the request thread");
        let (status, body) = answer.unwrap_or_else(|e| panic!("request {i} in flight at SIGTERM failed: {e}"));
        assert_eq!(status, 201, "request {i}: {body}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the example did not exit after draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}
