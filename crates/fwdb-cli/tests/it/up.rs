//! `fwdb up` from a folder with no configuration: it starts the local stack,
//! reports every server healthy, and SIGTERM stops everything it started.

use crate::helpers::{fwdb_command, processes_mentioning};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test]
async fn fwdb_up_without_configuration_starts_the_stack_and_sigterm_leaves_no_process() {
    let work = tempfile::tempdir().expect("temp dir");
    let stack_dir = work.path().join("stack");
    let mut child = fwdb_command()
        .current_dir(work.path())
        .arg("up")
        .arg("--stack-dir")
        .arg(&stack_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fwdb up starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("mongodb");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .expect("reader");
    let table = lines.join("\n");
    assert_eq!(lines.iter().filter(|l| l.contains("healthy") && !l.contains("UNHEALTHY")).count(), 4, "{table}");
    assert!(!processes_mentioning(&stack_dir).is_empty(), "no server of the stack is running");

    // SAFETY: kill(2) with a pid we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "fwdb up exited with {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&stack_dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_mentioning(&stack_dir), Vec::<String>::new(), "servers left behind");
}
