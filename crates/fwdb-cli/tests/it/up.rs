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

/// The value of `fwdb_backup_<family>{kind}` on a scrape, if present.
fn backup_gauge(scrape: &prometheus_parse::Scrape, family: &str, kind: &str) -> Option<f64> {
    crate::metrics::value(scrape, &format!("fwdb_backup_{family}"), &[("kind", kind)])
}

/// The schedule inside `fwdb up` fires (a logical dump every 2 s here) and its
/// runs show on /metrics; a MongoDB dump taken outside (`fwdb backup create`,
/// as from cron) shows too, from the storage catalog; SIGTERM leaves nothing running.
#[tokio::test]
async fn the_backup_schedule_fires_inside_up_and_metrics_show_scheduled_and_outside_backups() {
    use crate::backup::{json, BackupEnv};
    let app = crate::helpers::TestApp::migrated().await;
    let b = BackupEnv::new(app.stack);
    let outside = json(b.cmd(&app.env).args(["backup", "create", "--kind", "mongo"]));
    let outside_at =
        chrono::DateTime::parse_from_rfc3339(outside["finished_at"].as_str().expect("finished_at")).expect("a time");
    let outside_size: u64 =
        outside["objects"].as_array().expect("objects").iter().map(|o| o["size"].as_u64().unwrap_or(0)).sum();

    let mut cmd = b.cmd(&app.env);
    cmd.env("FWDB__BACKUP__SCHEDULE__ENABLED", "true")
        .env("FWDB__BACKUP__SCHEDULE__LOGICAL", "*/2 * * * * *")
        .env("FWDB__BACKUP__SCHEDULE__FULL", "")
        .env("FWDB__BACKUP__SCHEDULE__INCREMENTAL", "");
    let up = crate::serve::spawn_up(cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    let scrape = loop {
        let (code, text) = crate::serve::get(&format!("{}/metrics", up.url)).await;
        assert_eq!(code, 200, "{text}");
        let s = crate::metrics::parse(&text);
        if backup_gauge(&s, "last_success_timestamp_seconds", "logical").is_some()
            && backup_gauge(&s, "last_success_timestamp_seconds", "mongo").is_some()
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled logical backup (or no catalog) on /metrics within 120 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The schedule's run is in storage, with a manifest.
    let listed = json(b.cmd(&app.env).args(["backup", "list"]));
    let logical: Vec<&serde_json::Value> =
        listed.as_array().expect("list").iter().filter(|m| m["kind"] == "logical").collect();
    assert!(!logical.is_empty(), "the schedule wrote no logical backup: {listed}");
    assert!(backup_gauge(&scrape, "last_size_bytes", "logical").unwrap_or(0.0) > 0.0);
    assert_eq!(backup_gauge(&scrape, "failures_total", "logical"), Some(0.0));
    // The outside backup comes from the catalog, exactly.
    let mongo_at = backup_gauge(&scrape, "last_success_timestamp_seconds", "mongo").unwrap_or(0.0);
    assert!((mongo_at - outside_at.timestamp_millis() as f64 / 1000.0).abs() < 0.002, "{mongo_at} vs {outside_at}");
    assert_eq!(backup_gauge(&scrape, "last_size_bytes", "mongo"), Some(outside_size as f64));
    assert!(backup_gauge(&scrape, "last_success_age_seconds", "mongo").is_some());
    let (code, page) = crate::serve::get(&format!("{}/", up.url)).await;
    assert_eq!(code, 200);
    for kind in ["logical", "mongo"] {
        assert!(
            page.contains(&format!(r#"<tr class="backup" data-kind="{kind}">"#)),
            "the status page shows no {kind} backup:\n{page}"
        );
    }

    let pg = app.pg().await;
    let status = up.terminate();
    assert!(status.success(), "fwdb up exited with {status}");
    // Nothing of fwdb up is left: no pool connection, no pg_dump of a cut-off run.
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let row = pg
            .query_one(
                "select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                &[&app.pg_database],
            )
            .await
            .expect("pg_stat_activity");
        let n: i64 = row.get(0);
        if n == 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(left, 0, "connections of fwdb up (or its pg_dump) outlived it");
}
