//! Diff and incr base backups on a private archiving stack: what they store,
//! restores of their chains (new folder and `--delta`), verify of every link,
//! and retention that keeps what a kept backup depends on.

use super::pitr::{as_server_user, scratch_servers_left, socket_client, ArchivingStack, Restored};
use super::{json, ok};
use crate::helpers::run;
use std::path::Path;

fn stored(m: &serde_json::Value) -> u64 {
    m["objects"].as_array().expect("objects").iter().map(|o| o["size"].as_u64().expect("size")).sum()
}

fn id(m: &serde_json::Value) -> String {
    m["id"].as_str().expect("id").to_string()
}

/// Rows of `marks` and of `big` on a restored server.
async fn counts(r: &serde_json::Value, db: &str) -> (i64, i64) {
    let client =
        socket_client(r["socket_dir"].as_str().expect("socket"), r["port"].as_u64().expect("port") as u16, db).await;
    let marks: i64 = client.query_one("select count(*) from marks", &[]).await.expect("marks").get(0);
    let big: i64 = client.query_one("select count(*) from big", &[]).await.expect("big").get(0);
    (marks, big)
}

fn stop(info: &fwdb_testkit::StackInfo, dir: &Path) {
    let out = as_server_user(info, &info.pg_bin_dir.join("pg_ctl"))
        .arg("-D")
        .arg(dir)
        .args(["-m", "fast", "-w", "stop"])
        .output()
        .expect("pg_ctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A full backup, then incr, diff and incr after small changes: each stores a
/// fraction of the full one and names its reference; the chain restores the
/// latest rows and verifies (pg_verifybackup on the assembled folder); a
/// missing link fails verify and restore by name.
#[tokio::test]
async fn an_incremental_after_a_small_change_stores_far_less_and_its_chain_restores_the_latest_rows() {
    let a = ArchivingStack::start(|b| format!("storage = \"file://{}\"", b.storage.display()), true).await;
    a.sql("CREATE TABLE big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g");
    a.sql("CREATE TABLE marks (v text)");
    // Data at rest, as most of a production cluster is: hint bits and the visibility map set, on disk.
    a.sql("VACUUM FREEZE big");
    a.sql("CHECKPOINT");
    // Files written in the second a backup starts are copied again by the next one (their time cannot
    // tell a write after the copy from one before): let that second pass.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let full = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    assert_eq!(full["kind"], "full");
    assert!(full["files"].as_array().is_some_and(|f| f.len() > 100), "no file list");

    a.sql("INSERT INTO marks VALUES ('A')");
    let incr1 = json(&mut a.fwdb(&["backup", "create", "--type", "incr"]));
    assert_eq!((incr1["kind"].as_str(), incr1["reference"].as_str()), (Some("incr"), Some(id(&full).as_str())));
    let (f, i) = (stored(&full), stored(&incr1));
    assert!(i * 10 < f, "an incr after one row stores {i} bytes, the full {f}");
    let files = incr1["files"].as_array().expect("files");
    let own = files.iter().filter(|e| e["backup"] == incr1["id"]).count();
    assert!(own * 5 < files.len(), "{own} of {} files stored again", files.len());

    a.sql("INSERT INTO marks SELECT 'B' FROM generate_series(1, 1000)");
    let diff = json(&mut a.fwdb(&["backup", "create", "--kind", "diff"]));
    assert_eq!(diff["reference"], full["id"], "a diff refers to the full backup");
    a.sql("INSERT INTO marks VALUES ('C'); DELETE FROM big WHERE g <= 10");
    let incr2 = json(&mut a.fwdb(&["backup", "create", "--kind", "incr"]));
    assert_eq!(incr2["reference"], diff["id"], "an incr refers to the newest base backup");
    // File level: the whole file of `big` is stored again for the rows deleted from its first page.
    assert!(stored(&incr2) < f, "incr2 stores {} bytes, the full {f}", stored(&incr2));
    a.sql("INSERT INTO marks VALUES ('after')");
    a.archive_now();

    // The full check of the last link: every object of the chain, then the chain
    // restored into scratch, pg_verifybackup on it, and the counts.
    let verified = ok(&mut a.fwdb(&["backup", "verify", &id(&incr2)]));
    assert!(verified.contains("chain of 3 backups"), "{verified}");
    assert!(
        verified.contains("backup successfully verified") && verified.contains("equal the manifest's"),
        "{verified}"
    );
    assert!(scratch_servers_left(&a).is_empty(), "a scratch server is still running");

    // Restoring the chain: the latest rows (the WAL after incr2 included).
    let target = a.b.dir.path().join("restored");
    let r = json(&mut a.fwdb(&["restore", "--latest", "--target-dir", target.to_str().unwrap()]));
    let _guard = Restored { dir: target.clone(), info: a.info.clone() };
    let chain: Vec<&str> = r["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(chain, vec![id(&full), id(&diff), id(&incr2)], "{r}");
    assert_eq!(counts(&r, &a.db).await, (1003, 299_990), "{r}");

    // A missing link: verify and restore both name it.
    let diff_manifest = a.b.storage.join("backups").join(id(&diff)).join("manifest.json");
    let aside = diff_manifest.with_extension("aside");
    std::fs::rename(&diff_manifest, &aside).expect("hide the diff's manifest");
    let (code, _, err) = run(&mut a.fwdb(&["backup", "verify", "--quick", &id(&incr2)]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("depends on backup {}, which is missing", id(&diff))), "{err}");
    let never = a.b.dir.path().join("never");
    let args = ["restore", "--latest", "--backup", &id(&incr2), "--target-dir", never.to_str().unwrap()];
    let (code, _, err) = run(&mut a.fwdb(&args));
    assert_ne!(code, 0);
    assert!(err.contains(&id(&diff)) && err.contains("missing"), "{err}");
    assert!(!never.exists(), "a refused restore left its folder");
    std::fs::rename(&aside, &diff_manifest).expect("put it back");

    // Retention with everything expired, after a newer full and diff: the newest incr (incr2) is kept,
    // and so is its whole chain, saying why; the first incr goes. The dry run deletes nothing.
    let full2 = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    let diff2 = json(&mut a.fwdb(&["backup", "create", "--kind", "diff"]));
    assert_eq!(diff2["reference"], full2["id"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let prune = |dry: bool| {
        let mut c = a.fwdb(&["backup", "prune"]);
        if dry {
            c.arg("--dry-run");
        }
        c.env("FWDB__BACKUP__RETENTION__FULL", "1s")
            .env("FWDB__BACKUP__RETENTION__INCREMENTAL", "1s")
            .env("FWDB__BACKUP__RETENTION__RECOVERY_WINDOW", "1s");
        c
    };
    let text = ok(&mut prune(true));
    assert!(text.contains(&format!("would delete  {}", id(&incr1))), "{text}");
    for (kept, by) in [(id(&full), id(&diff)), (id(&diff), id(&incr2))] {
        let line = text.lines().find(|l| l.starts_with(&format!("keep  {kept}"))).unwrap_or_default();
        assert!(line.contains(&format!("kept backup {by} depends on it")), "{kept}: {text}");
    }
    assert_eq!(json(&mut a.fwdb(&["backup", "list"])).as_array().unwrap().len(), 6, "a dry run deleted");
    let pruned = json(&mut prune(false));
    let deleted: Vec<&str> = pruned["deleted"].as_array().unwrap().iter().filter_map(|d| d["what"].as_str()).collect();
    assert!(deleted.contains(&id(&incr1).as_str()) && !deleted.contains(&id(&full).as_str()), "{pruned}");
    let left: Vec<String> = json(&mut a.fwdb(&["backup", "list"])).as_array().unwrap().iter().map(id).collect();
    assert_eq!(left, vec![id(&full), id(&diff), id(&incr2), id(&full2), id(&diff2)]);
    ok(&mut a.fwdb(&["backup", "verify", "--quick", &id(&incr2)]));
}

/// `restore --delta` over a stopped data folder rewrites only what differs:
/// a damaged relation file is rewritten, the rest is left alone, files the
/// backup lacks are removed, and the server comes back with every row.
#[tokio::test]
async fn a_delta_restore_rewrites_only_the_files_that_differ() {
    let a = ArchivingStack::start(|b| format!("storage = \"file://{}\"", b.storage.display()), true).await;
    a.sql("CREATE TABLE big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g");
    a.sql("CREATE TABLE marks (v text); INSERT INTO marks VALUES ('A')");
    let full = json(&mut a.fwdb(&["backup", "create", "--kind", "full"]));
    let target = a.b.dir.path().join("restored");
    let dir = target.to_str().unwrap();
    let args = ["restore", "--latest", "--backup", &id(&full), "--target-dir", dir];
    let r = json(&mut a.fwdb(&args));
    let _guard = Restored { dir: target.clone(), info: a.info.clone() };
    assert_eq!(counts(&r, &a.db).await, (1, 100_000));
    let client = socket_client(r["socket_dir"].as_str().unwrap(), r["port"].as_u64().unwrap() as u16, &a.db).await;
    let big_file: String = client.query_one("select pg_relation_filepath('big')", &[]).await.unwrap().get(0);
    drop(client);

    // Running: refused, untouched.
    let mut delta: Vec<&str> = args.to_vec();
    delta.push("--delta");
    let (code, _, err) = run(&mut a.fwdb(&delta));
    assert_ne!(code, 0);
    assert!(err.contains("a server is running"), "{err}");

    stop(&a.info, &target);
    // Damage a page of `big` as a bad disk would.
    let path = target.join(&big_file);
    let mut bytes = std::fs::read(&path).expect("relation file");
    for b in &mut bytes[8192 * 3 + 100..8192 * 3 + 200] {
        *b = 0xEE;
    }
    std::fs::write(&path, &bytes).expect("damage");
    let files_in_backup = full["files"].as_array().unwrap().len() as u64;
    let r = json(&mut a.fwdb(&delta));
    let f = &r["files"];
    let written = f["written"].as_u64().unwrap();
    assert!(written >= 1, "the damaged file was not rewritten: {r}");
    assert!(written * 4 < files_in_backup, "{written} of {files_in_backup} files rewritten: {r}");
    assert!(f["unchanged"].as_u64().unwrap() * 2 > files_in_backup, "{r}");
    assert!(f["removed"].as_u64().unwrap() >= 1, "the old WAL and logs stay: {r}");
    assert_eq!(counts(&r, &a.db).await, (1, 100_000), "{r}");
    let client = socket_client(r["socket_dir"].as_str().unwrap(), r["port"].as_u64().unwrap() as u16, &a.db).await;
    let sum: String = client.query_one("select md5(string_agg(h, '' order by g)) from big", &[]).await.unwrap().get(0);
    let want = a.sql("select md5(string_agg(h, '' order by g)) from big");
    assert_eq!(sum, want, "the damaged page survived the delta restore");

    // A folder that is not a data folder is refused.
    let other = a.b.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let (code, _, err) = run(&mut a.fwdb(&["restore", "--latest", "--delta", "--target-dir", other.to_str().unwrap()]));
    assert_ne!(code, 0);
    assert!(err.contains("not a PostgreSQL data folder"), "{err}");
    assert!(other.join("notes.txt").is_file());
}
