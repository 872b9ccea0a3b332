//! `fwdb wal push|fetch|list|verify|archiver`.

use super::{human, stop_signal, WalCommand};
use crate::output::{print_json, EXIT_FAILED};
use fwdb::Backups;
use std::process::ExitCode;

pub async fn run_wal(cmd: WalCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let b = Backups::open(config)?;
    match cmd {
        WalCommand::Push { path } => {
            b.wal_push_via_archiver(&path).await?;
            Ok(ExitCode::SUCCESS)
        }
        WalCommand::Fetch { name, dest } => match b.wal_fetch(&name, &dest).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.is_not_found() => {
                eprintln!("{e}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
            Err(e) => Err(e),
        },
        WalCommand::List => {
            let all = b.wal_list().await?;
            if json {
                print_json(&all.iter().map(|(n, s)| serde_json::json!({"name": n, "size": s})).collect::<Vec<_>>());
            } else {
                for (n, s) in all {
                    println!("{n}  {}", human(s));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WalCommand::Verify => verify(&b, json).await,
        WalCommand::Archiver { pg_wal } => {
            let spool = config.backup.wal.spool_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
            eprintln!(
                "WAL archiver: spool {spool}, {} uploads at once, to {}",
                config.backup.wal.parallel,
                b.storage_url()
            );
            b.wal_archiver(pg_wal, stop_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(b: &Backups, json: bool) -> Result<ExitCode, fwdb::Error> {
    let r = b.wal_verify().await?;
    let code = if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) };
    if json {
        print_json(&serde_json::json!({ "ok": r.ok(), "report": r }));
        return Ok(code);
    }
    let Some(from) = &r.from else {
        println!("no base backup: nothing to check");
        return Ok(code);
    };
    let newest = r.newest_archived.as_deref().unwrap_or("none");
    println!("checked {} segments from {from} (oldest kept base backup) to {newest}", r.checked);
    for (a, z) in &r.gaps {
        println!("GAP  {a} .. {z}");
    }
    if let (Some(cur), Some(lag)) = (&r.server_current, r.not_yet_archived) {
        println!("the primary writes {cur}; {lag} finished segments not archived yet");
    }
    if r.ok() {
        println!("no gap");
    } else {
        eprintln!(
            "error: {} segments missing from the archive: point-in-time recovery stops before the first gap",
            r.missing
        );
    }
    Ok(code)
}
