//! `fwdb restore [--to-time|--to-lsn|--latest] [--delta]`, `fwdb restore logical|mongo ID`.

use super::{open, PitrArgs, RestoreArgs, RestoreWhat};
use crate::output::{print_json, EXIT_ERROR};
use fwdb::{Backups, PitrOptions, RecoveryTarget};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub async fn run_restore(
    args: RestoreArgs,
    config: &fwdb::Config,
    json: bool,
    config_file: Option<&Path>,
) -> Result<ExitCode, fwdb::Error> {
    let (b, progress) = open(config, args.progress)?;
    let b = b.with_run_as(args.pitr.run_as.clone());
    let done = match args.what {
        Some(RestoreWhat::Logical(r)) => {
            let counts = b.restore_logical(&r.id, &r.database, r.from.as_deref()).await?;
            print_counts(json, &r.id, &r.database, &counts, "");
            Ok(ExitCode::SUCCESS)
        }
        Some(RestoreWhat::Mongo(r)) => {
            let counts = b.restore_mongo(&r.id, &r.database, r.from.as_deref()).await?;
            print_counts(json, &r.id, &r.database, &counts, "MongoDB ");
            Ok(ExitCode::SUCCESS)
        }
        None => pitr(args.pitr, &b, json, config_file).await,
    };
    if matches!(done, Ok(ExitCode::SUCCESS)) {
        progress.finish();
    }
    done
}

fn print_counts(json: bool, id: &str, db: &str, counts: &std::collections::BTreeMap<String, u64>, what: &str) {
    if json {
        print_json(&serde_json::json!({ "id": id, "database": db, "counts": counts }));
        return;
    }
    let (items, rows) = if what.is_empty() { ("tables", "rows") } else { ("collections", "documents") };
    println!(
        "restored {id} into {what}database {db}: {} {items}, {} {rows}, counts match the manifest",
        counts.len(),
        counts.values().sum::<u64>()
    );
}

/// The recovery target the flags name; an error line when they name none or a bad one.
fn target(p: &PitrArgs) -> Result<RecoveryTarget, String> {
    if let Some(t) = &p.to_time {
        return chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| RecoveryTarget::Time(t.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("--to-time `{t}` is not an RFC 3339 time (e.g. 2026-11-25T02:00:00Z): {e}"));
    }
    if let Some(l) = &p.to_lsn {
        return Ok(RecoveryTarget::Lsn(l.clone()));
    }
    if p.latest {
        return Ok(RecoveryTarget::Latest);
    }
    Err("say what to restore to: --to-time T, --to-lsn L or --latest (or `restore logical|mongo ID`)".into())
}

async fn pitr(p: PitrArgs, b: &Backups, json: bool, config_file: Option<&Path>) -> Result<ExitCode, fwdb::Error> {
    let target = match target(&p) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let Some(target_dir) = p.target_dir else {
        eprintln!("error: --target-dir DIR is required: a new folder for the restored server");
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let opts = PitrOptions {
        target,
        target_dir,
        backup_id: p.backup,
        restore_command: restore_command(config_file),
        port: p.port,
        run_as: p.run_as.or_else(default_run_as),
        check_user: p.check_user,
        start: !p.no_start,
        prefetch_wal: None,
        verify_manifest: false,
        delta: p.delta,
    };
    let r = b.restore_pitr(&opts).await?;
    if json {
        print_json(&r);
        return Ok(ExitCode::SUCCESS);
    }
    let f = &r.files;
    let delta = if p.delta { format!(", {} unchanged, {} removed", f.unchanged, f.removed) } else { String::new() };
    println!(
        "restored from {} ({}) into {}: {} files written{delta}; {} on port {} (socket {}), timeline {}, databases: {}",
        r.backup_id,
        r.chain.join(" <- "),
        r.target_dir.display(),
        f.written,
        if r.started { "running and promoted" } else { "not started" },
        r.port,
        r.socket_dir.display(),
        r.timeline.map(|t| t.to_string()).unwrap_or("-".into()),
        r.databases.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `restore_command` for a restored server: this very binary, with the same configuration file.
fn restore_command(config_file: Option<&Path>) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fwdb"));
    let mut rc = format!("\"{}\"", exe.display());
    if let Some(c) = config_file {
        let c = c.canonicalize().unwrap_or_else(|_| c.to_path_buf());
        rc.push_str(&format!(" --config \"{}\"", c.display()));
    }
    rc.push_str(" wal fetch \"%f\" \"%p\"");
    rc
}

/// PostgreSQL refuses to run as root: then its servers run as `postgres`.
fn default_run_as() -> Option<String> {
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    is_root.then(|| "postgres".to_string())
}
