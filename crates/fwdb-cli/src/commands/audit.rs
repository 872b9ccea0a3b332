//! `fwdb audit tail`: the newest rows of the audit log, optionally followed.

use std::process::ExitCode;
use std::time::Duration;

use crate::output::print_table;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Print the newest audit rows (oldest of them first); --follow keeps printing new ones
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// How many rows
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Only this table: `schema.table` or `table`
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Only changes by this actor (user id or database role)
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes of this row id
    #[arg(long, value_name = "ID")]
    pub row_id: Option<String>,
    /// Keep polling for new rows until interrupted
    #[arg(long)]
    pub follow: bool,
    /// Polling interval with --follow
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub interval_ms: u64,
}

pub async fn run(cmd: AuditCommand, config: &fwdb::Config, json: bool) -> Result<ExitCode, fwdb::Error> {
    let AuditCommand::Tail(args) = cmd;
    // Only app_admin reads the audit schema (architecture 9.1): as the admin login.
    let client = fwdb::connect(&config.postgres.as_admin(), fwdb::ConnectTarget::Primary).await?;
    let mut q = fwdb::AuditQuery {
        limit: args.limit,
        actor: args.actor.clone(),
        row_id: args.row_id.clone(),
        ..Default::default()
    };
    if let Some(t) = &args.table {
        q = q.table(t);
    }
    let mut rows = fwdb::query_audit(&client, &q).await?;
    rows.reverse();
    print(&rows, json, true);
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = rows.last().map(|r| r.id).unwrap_or(0);
    if last == 0 {
        // Nothing matched yet: start after the newest row of the whole log.
        last = fwdb::query_audit(&client, &fwdb::AuditQuery { limit: 1, ..Default::default() })
            .await?
            .first()
            .map(|r| r.id)
            .unwrap_or(0);
    }
    loop {
        tokio::time::sleep(Duration::from_millis(args.interval_ms.max(50))).await;
        let more =
            fwdb::query_audit(&client, &fwdb::AuditQuery { after_id: Some(last), limit: 1000, ..q.clone() }).await?;
        if let Some(r) = more.last() {
            last = r.id;
        }
        print(&more, json, false);
    }
}

fn print(rows: &[fwdb::AuditEntry], json: bool, header: bool) {
    if json {
        // One JSON object per line, so that --follow output can be streamed.
        for r in rows {
            match serde_json::to_string(r) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: {e}"),
            }
        }
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let changed = match (&r.old, &r.new) {
                (_, Some(serde_json::Value::Object(n))) if r.op == "UPDATE" => {
                    n.keys().cloned().collect::<Vec<_>>().join(",")
                }
                _ => String::new(),
            };
            vec![
                r.id.to_string(),
                r.at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                format!("{}.{}", r.schema, r.table),
                r.op.clone(),
                r.row_id.clone().unwrap_or_default(),
                r.actor.clone(),
                r.txid.to_string(),
                changed,
            ]
        })
        .collect();
    if header {
        print_table(&["id", "at", "table", "op", "row", "actor", "txid", "changed"], &cells);
    } else {
        for c in cells {
            println!("{}", c.join("  "));
        }
    }
}
