//! `fwdb dev up|down|status|env`: the local stack (PostgreSQL primary +
//! streaming replicas, MongoDB) for development, without Docker. All the work
//! is in `fwdb-testkit`; this file parses options and prints.
//!
//! Synchronous on purpose (the testkit is): the caller runs it on a blocking
//! thread.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fwdb_testkit::{Lifetime, ServerHealth, ShutdownSignal, Stack, StackOptions, TestkitError};
use serde::Serialize;

use crate::output::{print_json, print_table, EXIT_ERROR, EXIT_FAILED};

/// The MongoDB database the application uses (architecture, section 7.2).
/// The database `dev up` creates on both stores, and `dev env` points at.
const DATABASE: &str = "fashion_wallet";

#[derive(Debug, clap::Subcommand)]
pub enum DevCommand {
    /// Start the stack in the background (stop it with `fwdb dev down`)
    ///
    /// PostgreSQL primary with streaming replicas, TLS, WAL archiving and
    /// pg_stat_statements, plus MongoDB (mongod when on PATH, else the
    /// MongoDB-compatible secantusdb). Started again on its data when the
    /// folder already holds a stopped stack.
    Up {
        /// Folder holding the stack's data, logs, certificates and stack.json
        #[arg(long, value_name = "DIR", default_value = ".fwdb/dev")]
        dir: PathBuf,
        /// Stay in the foreground and stop the stack on Ctrl-C or SIGTERM;
        /// the servers also die if this process is killed
        #[arg(long)]
        foreground: bool,
        /// Number of streaming replicas of the primary
        #[arg(long, value_name = "N", default_value_t = 2)]
        replicas: usize,
        /// Do not start a MongoDB server
        #[arg(long)]
        no_mongo: bool,
    },
    /// Stop every server of the stack (and any stray one left in its folder by a crash)
    Down {
        #[arg(long, value_name = "DIR", default_value = ".fwdb/dev")]
        dir: PathBuf,
        /// Also delete the stack's folder and all its data
        #[arg(long)]
        purge: bool,
    },
    /// Show each server: running, not answering (its process exists but a
    /// probe got no answer: frozen or hung) or down; pid, port. Exits 1
    /// unless every server runs and answers
    Status {
        #[arg(long, value_name = "DIR", default_value = ".fwdb/dev")]
        dir: PathBuf,
    },
    /// Print the connection settings as FWDB__ variables
    ///
    /// To load them into a shell: `set -a; eval "$(fwdb dev env)"; set +a`.
    Env {
        #[arg(long, value_name = "DIR", default_value = ".fwdb/dev")]
        dir: PathBuf,
    },
}

pub fn run(cmd: DevCommand, json: bool) -> Result<ExitCode, TestkitError> {
    match cmd {
        DevCommand::Up { dir, foreground, replicas, no_mongo } => up(dir, foreground, replicas, !no_mongo, json),
        DevCommand::Down { dir, purge } => down(&dir, purge, json),
        DevCommand::Status { dir } => status(&dir, json),
        DevCommand::Env { dir } => env(&dir, json),
    }
}

#[derive(Serialize)]
struct UpReport<'a> {
    dir: &'a Path,
    lifetime: Lifetime,
    postgres_version: u32,
    primary: String,
    replicas: Vec<String>,
    mongo: Option<MongoReport<'a>>,
    health: &'a [ServerHealth],
}

#[derive(Serialize)]
struct MongoReport<'a> {
    server: &'static str,
    uri: &'a str,
}

fn up(dir: PathBuf, foreground: bool, replicas: usize, mongo: bool, json: bool) -> Result<ExitCode, TestkitError> {
    // Registered before the start, so that a Ctrl-C during start-up is not
    // lost: it stops the stack as soon as it is up.
    let mut signals = if foreground { Some(ShutdownSignal::register()?) } else { None };
    let lifetime = if foreground { Lifetime::Attached } else { Lifetime::Detached };
    let stack = Stack::start(StackOptions { dir: Some(dir), replicas, mongo, lifetime, ..Default::default() })?;
    // `fwdb dev env` points at this database, so `fwdb migrate up` after it migrates the right one.
    stack.ensure_database(DATABASE)?;
    let info = stack.info();
    let health = stack.health();
    let healthy = health.iter().all(|h| h.ok);

    if json {
        print_json(&UpReport {
            dir: &info.dir,
            lifetime,
            postgres_version: info.pg_version,
            primary: info.primary_addr(),
            replicas: info.replica_addrs(),
            mongo: info.mongo.as_ref().map(|m| MongoReport { server: m.kind.describe(), uri: &m.uri }),
            health: &health,
        });
    } else {
        println!("stack up in {}", info.dir.display());
        let replicas = info.replica_addrs();
        println!(
            "  PostgreSQL {}  primary {}{}",
            info.pg_version,
            info.primary_addr(),
            if replicas.is_empty() { String::new() } else { format!(", replicas {}", replicas.join(", ")) }
        );
        match &info.mongo {
            Some(m) => println!("  MongoDB       {} on {}:{} ({})", m.kind.describe(), info.host, m.port, m.uri),
            None => println!("  MongoDB       not started (--no-mongo)"),
        }
        for h in &health {
            println!(
                "  {:<9} {:<16} {:<4} {} ({} ms)",
                h.name,
                h.addr,
                if h.ok { "ok" } else { "FAIL" },
                h.detail,
                h.millis
            );
        }
        if foreground {
            println!("running in the foreground: Ctrl-C stops the stack");
        } else {
            let d = info.dir.display();
            println!("connection settings: fwdb dev env --dir {d}; stop with: fwdb dev down --dir {d}");
        }
    }

    if let Some(signals) = signals.as_mut() {
        let sig = signals.wait();
        eprintln!("signal {sig} received: stopping the stack");
        stack.stop()?;
        eprintln!("stack stopped");
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}

fn down(dir: &Path, purge: bool, json: bool) -> Result<ExitCode, TestkitError> {
    let existed = fwdb_testkit::load(dir)?.is_some();
    if purge {
        fwdb_testkit::purge(dir)?;
    } else {
        fwdb_testkit::down(dir)?;
    }
    if json {
        print_json(&serde_json::json!({ "dir": dir, "stack_found": existed, "stopped": true, "purged": purge }));
    } else if purge {
        println!("stack in {} stopped and deleted", dir.display());
    } else if existed {
        println!("stack in {} stopped (data kept; `fwdb dev up` restarts it, `--purge` deletes it)", dir.display());
    } else {
        println!("no stack in {} (stray servers, if any, were stopped)", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(dir: &Path, json: bool) -> Result<ExitCode, TestkitError> {
    let st = fwdb_testkit::status(dir)?;
    if json {
        print_json(&st);
    } else if !st.exists {
        println!("no stack in {}: start one with `fwdb dev up --dir {}`", dir.display(), dir.display());
    } else {
        let rows: Vec<Vec<String>> = st
            .servers
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.port.to_string(),
                    s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    s.state.as_str().to_string(),
                ]
            })
            .collect();
        print_table(&["SERVER", "KIND", "PORT", "PID", "STATE"], &rows);
        if !st.strays.is_empty() {
            println!("stray server processes in the folder: {:?} (`fwdb dev down` stops them)", st.strays);
        }
    }
    Ok(if st.all_answering() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) })
}

/// Single-quotes a value for the shell when it has characters the shell
/// would interpret (`[`, `"`, `?`, spaces...), so `eval` gives it back intact.
fn shell_value(v: &str) -> String {
    let plain = v.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain && !v.is_empty() {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

fn env(dir: &Path, json: bool) -> Result<ExitCode, TestkitError> {
    let Some(info) = fwdb_testkit::load(dir)? else {
        eprintln!("error: no stack in {}: start one with `fwdb dev up --dir {}`", dir.display(), dir.display());
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    // One source with the test helpers: StackInfo::env_vars (testkit's config.rs).
    let vars = info.env_vars(DATABASE, DATABASE);
    if json {
        let map: serde_json::Map<String, serde_json::Value> =
            vars.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        print_json(&map);
    } else {
        for (k, v) in vars {
            println!("{k}={}", shell_value(&v));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_the_shell_would_mangle_are_quoted() {
        assert_eq!(shell_value("127.0.0.1:5432"), "127.0.0.1:5432");
        assert_eq!(shell_value(r#"["127.0.0.1:1","127.0.0.1:2"]"#), r#"'["127.0.0.1:1","127.0.0.1:2"]'"#);
        assert_eq!(
            shell_value("mongodb://127.0.0.1:1/?replicaSet=secantus"),
            "'mongodb://127.0.0.1:1/?replicaSet=secantus'"
        );
        assert_eq!(shell_value("it's"), r"'it'\''s'");
    }
}
