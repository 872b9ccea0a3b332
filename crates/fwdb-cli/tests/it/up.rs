//! `fwdb up` from a folder with no configuration: it starts the local stack,
//! reports every server healthy, applies the migrations, and SIGTERM stops
//! everything it started.

use crate::helpers::{fwdb_command, processes_mentioning, KillOnDrop};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test]
async fn fwdb_up_without_configuration_starts_the_stack_migrates_and_sigterm_leaves_no_process() {
    let work = tempfile::tempdir().expect("temp dir");
    let stack_dir = work.path().join("stack");
    let child = fwdb_command()
        .current_dir(work.path())
        .arg("up")
        .arg("--stack-dir")
        .arg(&stack_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fwdb up starts");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    // Read every line (closing the pipe early would break the child's later writes).
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lines.iter().any(|l: &String| l.starts_with("fwdb is up")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("fwdb up never said it was up:\n{}", lines.join("\n")),
        }
    }
    let out = lines.join("\n");
    assert_eq!(lines.iter().filter(|l| l.contains(" healthy ")).count(), 4, "{out}");
    assert!(out.contains("PostgreSQL: applied ") && out.contains("MongoDB: applied "), "{out}");
    assert!(!processes_mentioning(&stack_dir).is_empty(), "no server of the stack is running");

    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.0.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "fwdb up exited with {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&stack_dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_mentioning(&stack_dir), Vec::<String>::new(), "servers left behind");
}
