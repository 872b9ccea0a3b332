//! PostgreSQL: finding the server binaries, creating the clusters (initdb,
//! pg_basebackup), starting and stopping servers, and admin SQL through psql
//! over the unix socket (trust auth, superuser): no client library, so the
//! testkit works the same from any runtime or none.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};
use crate::info::{Lifetime, PgNode, StackInfo};
pub use crate::pg_bins::{PgBinaries, MIN_PG_VERSION};
use crate::ports;
use crate::process::{self, clean_pg_env, RunAs};

/// A command for a server tool, run as the server user, inside the stack
/// folder (the server user may not be allowed into our working directory),
/// with inherited PG* variables removed.
fn tool_cmd(bins: &PgBinaries, user: &RunAs, tool: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(bins.tool(tool));
    user.apply(&mut cmd);
    cmd.current_dir(cwd);
    // Not the invoking user's HOME: libpq (pg_basebackup, and the replicas'
    // WAL receivers) would try ~/.postgresql/postgresql.crt there and fail
    // with "permission denied" when that home is root's.
    cmd.env("HOME", cwd);
    clean_pg_env(&mut cmd);
    cmd.env("LC_MESSAGES", "C"); // log lines we look for are in English
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `sql` with psql over the unix socket as the superuser; returns the
/// unaligned, tuples-only output (`-XAtq`) without its final newline.
pub(crate) fn psql(bins: &PgBinaries, info: &StackInfo, port: u16, db: &str, sql: &str) -> Result<String> {
    let mut cmd = Command::new(bins.tool("psql"));
    clean_pg_env(&mut cmd);
    // A paused (SIGSTOPped) server accepts the TCP/unix connection but never
    // answers: without a timeout psql would wait forever.
    cmd.env("PGCONNECT_TIMEOUT", "10");
    cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&info.socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", &info.superuser, "-d", db, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| TestkitError::Spawn { program: "psql".into(), source: e })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows up as psql's own error below.
        let _ = stdin.write_all(sql.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| TestkitError::Spawn { program: "psql".into(), source: e })?;
    if !out.status.success() {
        return Err(TestkitError::CommandFailed {
            what: format!("psql on port {port}, database {db}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    while s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// Retries `psql` until it succeeds (servers may still be opening up).
pub(crate) fn wait_for_sql(
    bins: &PgBinaries,
    info: &StackInfo,
    port: u16,
    sql: &str,
    expect: &str,
    what: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match psql(bins, info, port, "postgres", sql) {
            Ok(out) if out.trim() == expect => return Ok(()),
            Ok(out) => last = format!("last answer: {out:?}, waiting for {expect:?}"),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout { what: what.into(), secs: timeout.as_secs(), detail: last });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Cluster creation
// ---------------------------------------------------------------------------

/// Quotes a value for postgresql.conf.
fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes a value inside a libpq connection string.
fn conninfo_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// initdb for the primary. `-N`: no fsync of the new files (test stack).
pub(crate) fn initdb(bins: &PgBinaries, user: &RunAs, info: &StackInfo) -> Result<()> {
    let pwfile = info.dir.join(".pwfile");
    crate::certs::write_private(&pwfile, info.superuser_password.as_bytes())?;
    user.chown(&pwfile)?;
    let mut cmd = tool_cmd(bins, user, "initdb", &info.dir);
    cmd.arg("-D")
        .arg(&info.primary.data_dir)
        .args(["-N", "--auth-local=trust", "--auth-host=scram-sha-256", "-U", &info.superuser, "-E", "UTF8"])
        .arg(format!("--pwfile={}", pwfile.display()));
    // C.UTF-8 (glibc >= 2.35 ships it) gives Unicode-aware upper()/lower();
    // plain C is the fallback that exists everywhere.
    if Path::new("/usr/lib/locale/C.utf8").exists() {
        cmd.arg("--locale=C.UTF-8");
    } else {
        cmd.arg("--locale=C");
    }
    let res = process::run(&mut cmd, "initdb of the primary");
    let _ = std::fs::remove_file(&pwfile);
    res.map(|_| ())
}

/// Appends the stack's settings to the primary's postgresql.conf and replaces
/// pg_hba.conf. Replicas inherit both through pg_basebackup.
pub(crate) fn configure_primary(info: &StackInfo) -> Result<()> {
    let data = &info.primary.data_dir;
    let archive = info.archive_dir.display().to_string();
    // Shell-quoted path inside a conf-quoted string: test ! -f '<a>/%f' && cp %p '<a>/%f'
    let archive_cmd = format!("test ! -f '{archive}/%f' && cp %p '{archive}/%f'");
    let conf = format!(
        r#"

# ---- fwdb-testkit ----------------------------------------------------------
# The port is not set here: each server gets `-p <port>` on its command line,
# from stack.json, so that a replica copied from this folder gets its own.
listen_addresses = '127.0.0.1'
unix_socket_directories = {sock}
ssl = on
ssl_cert_file = {cert}
ssl_key_file = {key}
# Client certificates signed by the stack's CA are verified when presented.
ssl_ca_file = {ca}
shared_preload_libraries = 'pg_stat_statements'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
archive_mode = on
archive_command = {archive_cmd}
password_encryption = 'scram-sha-256'
max_connections = 300
# A throwaway test stack: its data is recreated at will, and fsync dominates
# start-up and test time on small virtual disks. Never copy this to production.
fsync = off
# Logs go to stderr, which the testkit points at logs/<node>.log (pg_ctl -l
# for detached servers); no logging collector, one file per server.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
"#,
        sock = conf_quote(&info.socket_dir.display().to_string()),
        cert = conf_quote(&info.tls.server_cert.display().to_string()),
        key = conf_quote(&info.tls.server_key.display().to_string()),
        ca = conf_quote(&info.tls.ca_cert.display().to_string()),
        archive_cmd = conf_quote(&archive_cmd),
    );
    let conf_path = data.join("postgresql.conf");
    let mut f = OpenOptions::new().append(true).open(&conf_path).map_err(|e| TestkitError::io(&conf_path, e))?;
    f.write_all(conf.as_bytes()).map_err(|e| TestkitError::io(&conf_path, e))?;

    // Unix socket: trust (admin through psql). TCP: scram-sha-256 only, with or
    // without TLS (the `hostssl` lines document that TLS is accepted; `host`
    // also matches TLS connections).
    let hba = "\
# TYPE   DATABASE     USER  ADDRESS        METHOD
local    all          all                  trust
local    replication  all                  trust
hostssl  all          all   127.0.0.1/32   scram-sha-256
hostssl  all          all   ::1/128        scram-sha-256
host     all          all   127.0.0.1/32   scram-sha-256
host     all          all   ::1/128        scram-sha-256
hostssl  replication  all   127.0.0.1/32   scram-sha-256
hostssl  replication  all   ::1/128        scram-sha-256
host     replication  all   127.0.0.1/32   scram-sha-256
host     replication  all   ::1/128        scram-sha-256
";
    let hba_path = data.join("pg_hba.conf");
    std::fs::write(&hba_path, hba).map_err(|e| TestkitError::io(&hba_path, e))?;
    set_auto_conf(data, &[("cluster_name", conf_quote(&format!("fwdb-{}-{}", info.id, info.primary.name)))])
}

/// Roles and extensions, once the primary is up.
pub(crate) fn bootstrap_primary(bins: &PgBinaries, info: &StackInfo) -> Result<()> {
    // Passwords are random hex: no quoting issue. Sent on stdin, not argv.
    // The roles of fwdb's privilege matrix (architecture 9.1), so the two
    // logins start least-privileged and `fwdb migrate up` can grant; the
    // service roles get passwords from `fwdb roles apply`.
    let groups: String = fwdb::privilege_matrix()
        .iter()
        .map(|r| format!("CREATE ROLE {} {};\n", r.name, if r.login { "LOGIN" } else { "NOLOGIN" }))
        .collect();
    let sql = format!(
        "CREATE ROLE {repl} WITH REPLICATION LOGIN PASSWORD '{repl_pw}';\n\
         {groups}\
         CREATE ROLE {app} WITH LOGIN PASSWORD '{app_pw}' IN ROLE app_readwrite;\n\
         CREATE ROLE {admin} WITH LOGIN CREATEDB PASSWORD '{admin_pw}' IN ROLE app_admin;\n\
         CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n",
        repl = info.replication_user,
        repl_pw = info.replication_password,
        app = info.app_user,
        app_pw = info.app_password,
        admin = info.admin_user,
        admin_pw = info.admin_password,
    );
    psql(bins, info, info.primary.port, "postgres", &sql).map(|_| ()).map_err(|e| match e {
        // psql quotes the failing statement on syntax errors: keep the
        // passwords out of the error.
        TestkitError::CommandFailed { what, detail } => TestkitError::CommandFailed {
            what,
            detail: detail
                .replace(&info.app_password, "<redacted>")
                .replace(&info.admin_password, "<redacted>")
                .replace(&info.replication_password, "<redacted>"),
        },
        other => other,
    })
}

/// Sets `key = value` lines in postgresql.auto.conf, replacing earlier ones
/// for the same keys (pg_basebackup -R writes there too, and that file is
/// read last, so it is where per-node values must live).
pub(crate) fn set_auto_conf(data_dir: &Path, settings: &[(&str, String)]) -> Result<()> {
    let path = data_dir.join("postgresql.auto.conf");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out: String = old
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            !settings.iter().any(|(k, _)| *k == key)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for (k, v) in settings {
        out.push_str(&format!("{k} = {v}\n"));
    }
    // Rewritten in place: keeps the file's owner (the server user) and mode.
    std::fs::write(&path, out).map_err(|e| TestkitError::io(&path, e))
}

/// Per-replica settings: how to reach the primary (TCP, SCRAM, verify-full
/// TLS against the stack's CA), which slot to use, and its name in `ps`.
pub(crate) fn configure_replica(info: &StackInfo, replica: &PgNode) -> Result<()> {
    let conninfo = format!(
        "host={} port={} user={} password={} application_name={} sslmode=verify-full sslrootcert={}",
        info.host,
        info.primary.port,
        info.replication_user,
        info.replication_password,
        replica.name,
        conninfo_quote(&info.tls.ca_cert.display().to_string()),
    );
    set_auto_conf(
        &replica.data_dir,
        &[
            ("primary_conninfo", conf_quote(&conninfo)),
            ("primary_slot_name", conf_quote(&replica.name)),
            ("cluster_name", conf_quote(&format!("fwdb-{}-{}", info.id, replica.name))),
        ],
    )
}

/// Copies the primary into a new replica folder with its own slot.
pub(crate) fn basebackup(bins: &PgBinaries, user: &RunAs, info: &StackInfo, replica: &PgNode) -> Result<()> {
    let mut cmd = tool_cmd(bins, user, "pg_basebackup", &info.dir);
    let conn = format!(
        "host={} port={} user={} sslmode=verify-full sslrootcert={}",
        info.host,
        info.primary.port,
        info.replication_user,
        conninfo_quote(&info.tls.ca_cert.display().to_string())
    );
    // The password goes through the environment, not the command line (which
    // any local user can read in /proc).
    cmd.env("PGPASSWORD", &info.replication_password).arg("-D").arg(&replica.data_dir).args([
        "-d",
        &conn,
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "-C",
        "-S",
        &replica.name,
        "--no-sync",
    ]);
    // Rarely, on a loaded machine, the WAL stream of a base backup is cut
    // ("SSL connection has been closed unexpectedly"): start that replica's
    // copy over (slot and folder) rather than fail the whole stack.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match process::run(&mut cmd, &format!("pg_basebackup for {}", replica.name)) {
            Ok(_) => return configure_replica(info, replica),
            Err(TestkitError::CommandFailed { what, detail }) => {
                tracing::warn!(replica = %replica.name, attempt, %detail, "pg_basebackup failed");
                if attempt == ATTEMPTS {
                    let primary_log = process::log_tail(&info.primary.log_file, 15);
                    return Err(TestkitError::CommandFailed { what, detail: format!("{detail}\n{primary_log}") });
                }
                drop_slot(bins, info, &replica.name);
                let _ = std::fs::remove_dir_all(&replica.data_dir);
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Drops replication slot `name` on the primary, waiting (up to 5 s) for the
/// walsender of a failed backup to release it first.
fn drop_slot(bins: &PgBinaries, info: &StackInfo, name: &str) {
    let sql = format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{name}' AND NOT active;\n\
         SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{name}';"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match psql(bins, info, info.primary.port, "postgres", &sql) {
            Ok(out) if out.lines().last() == Some("0") => return,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

// ---------------------------------------------------------------------------
// Starting and stopping
// ---------------------------------------------------------------------------

/// The postmaster's pid and status ("starting", "ready", "standby",
/// "stopping") from `postmaster.pid`, as pg_ctl reads it.
pub(crate) fn read_postmaster_pid(data_dir: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let status = text.lines().nth(7).unwrap_or("").trim().to_string();
    Some((pid, status))
}

/// The live postmaster of `data_dir`, if any (pid file present, process alive
/// and really a postgres working in that folder: pids get reused).
pub(crate) fn running_pid(data_dir: &Path) -> Option<u32> {
    let (pid, _) = read_postmaster_pid(data_dir)?;
    if !process::is_alive(pid) {
        return None;
    }
    let p = process::proc_info(pid)?;
    let data = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    (p.is_server() && p.mentions(&data)).then_some(pid)
}

/// Removes a `postmaster.pid` whose server is gone, and its socket files: a
/// crashed run leaves them, and a reused pid would make postgres refuse to start.
pub(crate) fn clear_stale(info: &StackInfo, node: &PgNode) {
    if running_pid(&node.data_dir).is_none() {
        let _ = std::fs::remove_file(node.data_dir.join("postmaster.pid"));
        let sock = info.socket_dir.join(format!(".s.PGSQL.{}", node.port));
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(info.socket_dir.join(format!(".s.PGSQL.{}.lock", node.port)));
    }
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The part of a log file written since `from`.
fn log_since(path: &Path, from: u64) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b[(from as usize).min(b.len())..]).into_owned())
        .unwrap_or_default()
}

fn is_bind_failure(log: &str) -> bool {
    log.contains("could not bind")
        || log.contains("Address already in use")
        || log.contains("could not create any TCP/IP sockets")
}

/// A started PostgreSQL server: the child when attached.
pub(crate) struct StartedPg {
    pub pid: u32,
    pub child: Option<Child>,
}

/// Starts `node`. When its port turns out to be taken and `may_move` is true,
/// picks another port (updating `node.port`) and tries again.
pub(crate) fn start(
    bins: &PgBinaries,
    user: &RunAs,
    info: &StackInfo,
    node: &mut PgNode,
    lifetime: Lifetime,
    may_move: bool,
) -> Result<StartedPg> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        clear_stale(info, node);
        let from = log_len(&node.log_file);
        let outcome = match lifetime {
            Lifetime::Attached => start_attached(bins, user, node),
            Lifetime::Detached => start_detached(bins, user, node),
        };
        match outcome {
            Ok(started) => return Ok(started),
            Err(e) => {
                let log = log_since(&node.log_file, from);
                if is_bind_failure(&log) && may_move && attempt < ATTEMPTS {
                    let old = node.port;
                    node.port = ports::pick_free_port()?;
                    tracing::info!(node = %node.name, old, new = node.port, "port taken, trying another");
                    continue;
                }
                if is_bind_failure(&log) {
                    return Err(TestkitError::CommandFailed {
                        what: format!("starting PostgreSQL {} on port {}", node.name, node.port),
                        detail: format!("the port is taken by another program\n{}", process::tail(&log, 10)),
                    });
                }
                return Err(e);
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| TestkitError::io(path, e))
}

/// `postgres -D` as our child, through the spawner thread (see process.rs):
/// SIGQUIT (immediate shutdown) reaches it when we die.
fn start_attached(bins: &PgBinaries, user: &RunAs, node: &PgNode) -> Result<StartedPg> {
    let log = open_log(&node.log_file)?;
    let log2 = log.try_clone().map_err(|e| TestkitError::io(&node.log_file, e))?;
    let mut cmd = tool_cmd(bins, user, "postgres", &node.data_dir);
    cmd.arg("-D").arg(&node.data_dir).arg("-p").arg(node.port.to_string()).stdout(log).stderr(log2);
    let mut child = process::spawn_attached(cmd, libc::SIGQUIT)?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(TestkitError::CommandFailed {
                what: format!("PostgreSQL {} (port {})", node.name, node.port),
                detail: format!("the server exited ({status})\n{}", process::log_tail(&node.log_file, 15)),
            });
        }
        if let Some((p, status)) = read_postmaster_pid(&node.data_dir) {
            if p == pid && (status == "ready" || status == "standby") {
                return Ok(StartedPg { pid, child: Some(child) });
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestkitError::Timeout {
                what: format!("PostgreSQL {} accepting connections", node.name),
                secs: 60,
                detail: process::log_tail(&node.log_file, 15),
            });
        }
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// `pg_ctl start -w`: pg_ctl puts the server in its own session, so it
/// survives us.
fn start_detached(bins: &PgBinaries, user: &RunAs, node: &PgNode) -> Result<StartedPg> {
    // pg_ctl opens the log as the server user: make sure it may append.
    drop(open_log(&node.log_file)?);
    user.chown(&node.log_file)?;
    let mut cmd = tool_cmd(bins, user, "pg_ctl", &node.data_dir);
    cmd.args(["start", "-w", "-t", "60", "-s", "-D"])
        .arg(&node.data_dir)
        .arg("-l")
        .arg(&node.log_file)
        .args(["-o", &format!("-p {}", node.port)])
        .stdout(Stdio::null());
    if let Err(e) = process::run(&mut cmd, &format!("pg_ctl start of {} (port {})", node.name, node.port)) {
        return Err(match e {
            TestkitError::CommandFailed { what, detail } => TestkitError::CommandFailed {
                what,
                detail: format!("{detail}\n{}", process::log_tail(&node.log_file, 15)),
            },
            other => other,
        });
    }
    match read_postmaster_pid(&node.data_dir) {
        Some((pid, _)) => Ok(StartedPg { pid, child: None }),
        None => Err(TestkitError::CommandFailed {
            what: format!("pg_ctl start of {}", node.name),
            detail: "it reported success but wrote no postmaster.pid".into(),
        }),
    }
}

/// How to stop a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// SIGINT: disconnect clients, checkpoint, exit. Keeps data consistent.
    Fast,
    /// SIGQUIT: exit at once (crash recovery at next start). For throwaway stacks.
    Immediate,
}

/// Waits until the primary reports `n` replicas streaming.
pub(crate) fn wait_streaming(bins: &PgBinaries, info: &StackInfo, n: usize, timeout: Duration) -> Result<()> {
    wait_for_sql(
        bins,
        info,
        info.primary.port,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        &n.to_string(),
        &format!("{n} replica(s) streaming from the primary"),
        timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_auto_conf_replaces_earlier_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("postgresql.auto.conf"), "# header\nprimary_conninfo = 'old'\nother = 1\n")
            .expect("write");
        set_auto_conf(dir.path(), &[("primary_conninfo", "'new'".into())]).expect("set");
        let text = std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).expect("read");
        assert_eq!(text, "# header\nother = 1\nprimary_conninfo = 'new'\n");
    }
}
