//! `fwdb up` serves HTTP: `/healthz`, `/readyz` (per server, with response
//! times; 503 when a required server is down, each check bounded by its
//! timeout) and drains on SIGTERM.

use crate::helpers::{KillOnDrop, TestApp};
use fwdb_testkit::{Node, Stack, StackOptions};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `fwdb up` and its base URL.
#[allow(dead_code)]
pub struct Up {
    pub child: KillOnDrop,
    pub url: String,
    pub lines: Receiver<String>,
    pub out: Vec<String>,
}

/// Starts `cmd` (an `fwdb` command) as `fwdb up --listen 127.0.0.1:0` and waits for its address.
pub fn spawn_up(mut cmd: Command) -> Up {
    let child = cmd
        .args(["up", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fwdb up starts");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("fwdb up never said where it listens:\n{}", out.join("\n")));
        out.push(line.clone());
        if let Some(rest) = line.strip_prefix("fwdb is up on ") {
            let url = rest.split(';').next().expect("an address").trim().to_string();
            assert!(url.starts_with("http://127.0.0.1:"), "{line}");
            return Up { child, url, lines: rx, out };
        }
    }
}

impl Up {
    /// SIGTERM, then the exit status (within 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the child we spawned.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.0.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "fwdb up did not exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let r = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let code = r.status().as_u16();
    (code, r.text().await.expect("body"))
}

fn server<'a>(body: &'a serde_json::Value, name_prefix: &str) -> &'a serde_json::Value {
    body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name_prefix)))
        .unwrap_or_else(|| panic!("no server {name_prefix} in {body}"))
}

#[tokio::test]
async fn up_serves_healthz_and_readyz_and_drains_on_sigterm() {
    let app = TestApp::migrated().await;
    let up = spawn_up(app.fwdb());
    let (code, body) = get(&format!("{}/healthz", up.url)).await;
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = get(&format!("{}/readyz", up.url)).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!(v["status"], "ready", "{body}");
    let servers = v["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 4, "primary, 2 replicas, mongodb: {body}");
    for s in servers {
        assert_eq!(s["healthy"], true, "{s}");
        assert!(s["response_ms"].as_f64().expect("response_ms") >= 0.0, "{s}");
    }
    let status = up.terminate();
    assert!(status.success(), "fwdb up exited with {status}");
}

#[tokio::test]
async fn a_stopped_replica_degrades_readiness_and_a_paused_primary_is_unhealthy_within_the_timeout() {
    let stack = tokio::task::spawn_blocking(|| {
        let s = Stack::start(StackOptions::default()).expect("a private stack starts");
        let db = s.create_database().expect("a database");
        (s, db)
    })
    .await
    .expect("join");
    let (stack, db) = stack;
    let mut cmd = crate::helpers::fwdb_command();
    cmd.envs(stack.info().env_vars(&db, &db));
    let timeout_ms = 500;
    cmd.env("FWDB__SERVER__CHECK_TIMEOUT", format!("{timeout_ms}ms"))
        .env("FWDB__POSTGRES__POOL__MIN_SIZE", "1")
        .env("FWDB__POSTGRES__ROUTING__PROBE_INTERVAL", "300ms");
    let up = spawn_up(cmd);
    let (code, body) = get(&format!("{}/readyz", up.url)).await;
    assert_eq!(code, 200, "{body}");

    // A replica stopped: readiness degrades (reads fall back to the primary) and the router ejects it.
    stack.stop_node(Node::Replica(0)).expect("replica 0 stops");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(&format!("{}/metrics", up.url)).await;
        let scrape = crate::metrics::parse(&text);
        let ejected = crate::metrics::value(&scrape, "fwdb_replica_ejected", &[("server", "replica0")]);
        if ejected == Some(1.0) {
            assert_eq!(crate::metrics::value(&scrape, "fwdb_replica_eligible", &[("server", "replica0")]), Some(0.0));
            assert_eq!(crate::metrics::value(&scrape, "fwdb_replica_ejected", &[("server", "replica1")]), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "replica 0 never ejected:\n{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, body) = get(&format!("{}/readyz", up.url)).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!((code, v["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(server(&v, "replica 0")["healthy"], false, "{body}");
    assert_eq!(server(&v, "replica 1")["healthy"], true, "{body}");
    assert_eq!(server(&v, "primary")["healthy"], true, "{body}");

    // The primary hung (SIGSTOP): its check answers "unhealthy" when its timeout passes, and readiness is 503.
    stack.pause(Node::Primary).expect("primary paused");
    let start = Instant::now();
    let (code, body) = get(&format!("{}/readyz", up.url)).await;
    let took = start.elapsed();
    stack.resume(Node::Primary).expect("primary resumed");
    let v: serde_json::Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!((code, v["status"].as_str()), (503, Some("unready")), "{body}");
    let primary = server(&v, "primary");
    assert_eq!(primary["healthy"], false, "{body}");
    assert!(primary["error"].as_str().unwrap_or("").contains("no answer within 500 ms"), "{body}");
    assert!(
        took < Duration::from_millis(timeout_ms + 1500),
        "readiness took {took:?} with a {timeout_ms} ms check timeout"
    );
    eprintln!("readiness with the primary paused answered in {took:?}");

    let status = up.terminate();
    assert!(status.success(), "fwdb up exited with {status}");
    tokio::task::spawn_blocking(move || stack.stop().expect("the private stack stops")).await.expect("join");
}
