//! Asynchronous WAL archiving on a private stack: `fwdb wal archiver` pushes
//! what archive_command hands over; killed with -9, archiving goes on
//! without it and the archive has no gap; `fwdb wal verify` finds a gap made
//! by hand.

use super::json;
use super::pitr::{give_to_server_user, ArchivingStack};
use crate::helpers::run;
use std::io::Read;

/// The archiver as a child process, killed (-9) on drop.
struct Archiver(std::process::Child);

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn archive_command_hands_segments_to_the_archiver_and_a_killed_archiver_leaves_no_gap() {
    let spool = std::sync::Arc::new(std::sync::Mutex::new(std::path::PathBuf::new()));
    let s2 = spool.clone();
    let a = ArchivingStack::start(
        move |b| {
            let dir = b.dir.path().join("spool");
            *s2.lock().unwrap() = dir.clone();
            format!(
                "storage = \"file://{}\"\n[backup.wal]\nspool_dir = \"{}\"\npush_timeout = \"30s\"",
                b.storage.display(),
                dir.display()
            )
        },
        true,
    )
    .await;
    let spool = spool.lock().unwrap().clone();
    std::fs::create_dir_all(&spool).unwrap();
    give_to_server_user(&a.info, &spool);
    a.sql("CREATE TABLE marks (v text)");
    // The first segments the synchronous way (no archiver yet): the archive's folders belong to the server's user.
    a.archive_now();
    let full = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    assert!(full["start_wal"].is_string());

    let mut cmd = a.fwdb(&["-v", "wal", "archiver"]);
    cmd.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut archiver = Archiver(cmd.spawn().expect("the archiver"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut segs = Vec::new();
    for i in 0..3 {
        a.sql(&format!("INSERT INTO marks VALUES ('{i}')"));
        segs.push(a.archive_now());
    }
    for s in &segs {
        assert!(a.b.storage.join("wal").join(format!("{s}.zst.age")).is_file(), "{s} not in storage");
    }
    // Each acknowledged segment's verdict was read and removed by its push.
    let left: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| segs.iter().any(|s| n.starts_with(s.as_str())))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // kill -9: archive_command notices the lock is gone and pushes by itself; nothing is skipped.
    archiver.0.kill().expect("kill");
    let _ = archiver.0.wait();
    let mut log = String::new();
    archiver.0.stderr.take().expect("stderr").read_to_string(&mut log).expect("log");
    for s in &segs {
        assert!(
            log.contains(s.as_str()) && log.contains("WAL pushed by the archiver"),
            "{s} not pushed by the archiver:\n{log}"
        );
    }
    for i in 3..5 {
        a.sql(&format!("INSERT INTO marks VALUES ('{i}')"));
        a.archive_now();
    }
    let v = json(&mut a.fwdb(&["wal", "verify"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["report"]["checked"].as_u64().unwrap() >= 5, "{v}");

    // A segment removed by hand is a gap: exit 1, named.
    let gone = &segs[1];
    std::fs::remove_file(a.b.storage.join("wal").join(format!("{gone}.zst.age"))).unwrap();
    let (code, out, err) = run(&mut a.fwdb(&["wal", "verify"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("GAP  {gone} .. {gone}")), "{out}");
    assert!(err.contains("1 segments missing"), "{err}");
    // The same in the metrics: a gauge to alert on, and a failure of the `wal` job.
    let (code, metrics, err) = run(&mut a.fwdb(&["backup", "metrics"]));
    assert_eq!(code, 0, "{err}");
    assert!(metrics.contains("fwdb_backup_wal_missing_segments 1\n"), "{metrics}");
    assert!(metrics.contains("fwdb_backup_last_failure_timestamp_seconds{kind=\"wal\"}"), "{metrics}");
}
