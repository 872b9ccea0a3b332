//! `fwdb-bench backup`: backup throughput (a benchmark, not a timed test). On a private stack (PostgreSQL, no replicas) with one table of
//! `--rows` rows, it times raw `pg_basebackup -Ft` and `pg_dump -Fc` writing to
//! a local folder, and fwdb's full and logical backups (zstd + age, streamed
//! into a `file://` storage, every object hashed, the manifest written last;
//! the full one also records row counts at one WAL position), on the same data.
//! Each is timed on both transports, so every ratio compares like with like:
//! the unix socket (raw tools as the superuser; fwdb with
//! `backup.pg_socket_dir`, as when it runs on the database host) and TCP +
//! TLS verify-full (fwdb's configured connection; pg_basebackup given the
//! same libpq settings).
//!
//! Usage: `cargo run -p fwdb-bench -- backup [--rows N (1000000)] [--level L (backup.compression_level)] [--rounds N (1)]`.

use crate::Res;
use fwdb::{BackupKind, Backups};
use fwdb_testkit::{Node, Stack, StackInfo, StackOptions};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

struct Args {
    rows: u64,
    level: Option<i32>,
    rounds: usize,
}

fn args(mut it: impl Iterator<Item = String>) -> Res<Args> {
    let mut a = Args { rows: 1_000_000, level: None, rounds: 1 };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rows" => a.rows = it.next().ok_or("--rows N")?.parse().map_err(|e| format!("--rows: {e}"))?,
            "--level" => a.level = Some(it.next().ok_or("--level L")?.parse().map_err(|e| format!("--level: {e}"))?),
            "--rounds" => a.rounds = it.next().ok_or("--rounds N")?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "-h" | "--help" => {
                println!("usage: fwdb-bench backup [--rows N (1000000)] [--level L (zstd, default: backup.compression_level)] [--rounds N (1)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (see fwdb-bench backup --help)").into()),
        }
    }
    Ok(a)
}

pub fn main(argv: impl Iterator<Item = String>) -> Res<()> {
    let a = args(argv)?;
    eprintln!("load before start: {}", crate::uptime());
    let stack = Stack::start(StackOptions { replicas: 0, mongo: false, ..Default::default() })?;
    let res = run(&stack, &a);
    let _ = stack.stop();
    res
}

fn run(stack: &Stack, a: &Args) -> Res<()> {
    let info = stack.info().clone();
    let db = stack.create_database()?;
    let fill = format!(
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) AS a, repeat(chr(65 + g % 26), 40) AS b, now() AS c, \
         jsonb_build_object('k', g, 'v', md5((g*7)::text)) AS d FROM generate_series(1, {}) g; CHECKPOINT;",
        a.rows
    );
    stack.psql(Node::Primary, &db, &fill)?;
    let size = stack.psql(Node::Primary, &db, "SELECT pg_database_size(current_database())")?;
    let work = tempfile::tempdir()?;
    let cfg = backup_config(&info, &db, work.path(), a.level)?;
    // The same, run as on the database host: the tools use the unix socket, as the raw ones do.
    let mut local = cfg.clone();
    local.backup.pg_socket_dir = Some(info.socket_dir.clone());
    let rt = tokio::runtime::Runtime::new()?;
    println!("backup bench: {} rows, database {size} bytes, load {}", a.rows, crate::uptime());
    let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 1..=a.rounds {
        let raw = work.path().join(format!("raw{round}"));
        let (raw_base, base_bytes) = timed_tool(
            &info,
            "pg_basebackup",
            |c| {
                c.arg("-D").arg(raw.join("base")).args(["-F", "t", "-X", "none", "-c", "fast"]);
            },
            &raw.join("base"),
        )?;
        let tls = tls_env(&cfg)?;
        let (raw_tls, _) = timed_tool(
            &info,
            "pg_basebackup",
            |c| {
                c.envs(tls.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                c.arg("-D").arg(raw.join("base-tls")).args(["-F", "t", "-X", "none", "-c", "fast"]);
            },
            &raw.join("base-tls"),
        )?;
        let b = Backups::open(&cfg)?;
        let t = Instant::now();
        let full = rt.block_on(b.create(BackupKind::Full))?;
        let ours_base = t.elapsed().as_secs_f64();
        let t = Instant::now();
        rt.block_on(Backups::open(&local)?.create(BackupKind::Full))?;
        let ours_local = t.elapsed().as_secs_f64();
        let (raw_dump, dump_bytes) = timed_tool(
            &info,
            "pg_dump",
            |c| {
                c.arg("-Fc").arg("-f").arg(raw.join("raw.dump")).arg(&db);
            },
            &raw.join("raw.dump"),
        )?;
        let t = Instant::now();
        let logical = rt.block_on(Backups::open(&local)?.create_logical(None))?;
        let ours_dump = t.elapsed().as_secs_f64();
        let t = Instant::now();
        rt.block_on(b.create_logical(None))?;
        let ours_dump_tls = t.elapsed().as_secs_f64();
        println!(
            "round {round}: full, unix socket: pg_basebackup -Ft {raw_base:.2} s ({base_bytes} bytes), fwdb {ours_local:.2} s ({} stored): ratio {:.2}",
            full.stored_size(),
            raw_base / ours_local
        );
        println!(
            "round {round}: full, TCP + TLS:    pg_basebackup -Ft {raw_tls:.2} s, fwdb {ours_base:.2} s: ratio {:.2}",
            raw_tls / ours_base
        );
        println!(
            "round {round}: logical: pg_dump -Fc (unix socket) {raw_dump:.2} s ({dump_bytes} bytes), fwdb {ours_dump:.2} s over the socket ({} stored), {ours_dump_tls:.2} s over TLS: ratios {:.2}, {:.2}",
            logical.stored_size(),
            raw_dump / ours_dump,
            raw_dump / ours_dump_tls
        );
        for (k, v) in [
            ("1 pg_basebackup, socket", raw_base),
            ("2 fwdb full, socket", ours_local),
            ("3 pg_basebackup, TLS", raw_tls),
            ("4 fwdb full, TLS", ours_base),
            ("5 pg_dump, socket", raw_dump),
            ("6 fwdb logical, socket", ours_dump),
            ("7 fwdb logical, TLS", ours_dump_tls),
        ] {
            times.entry(k).or_default().push(v);
        }
    }
    summary(&times);
    Ok(())
}

/// Medians and minimums over the rounds, and the ratios of each. A base
/// backup ends by waiting for its last WAL segment to be archived, and the
/// server looks again only once a second: each run takes its copying time or
/// about one second more, whichever side it is. The minimum is the copying
/// time whenever one round of a contender did not wait.
fn summary(t: &std::collections::BTreeMap<&str, Vec<f64>>) {
    let stat = |k: &str| {
        let mut v = t.get(k).cloned().unwrap_or_default();
        v.sort_by(|a, b| a.total_cmp(b));
        (v.get(v.len() / 2).copied().unwrap_or(f64::NAN), v.first().copied().unwrap_or(f64::NAN))
    };
    println!("\nover {} rounds: median s / min s", t.values().next().map_or(0, Vec::len));
    for k in t.keys() {
        let (m, lo) = stat(k);
        println!("  {:<28} {m:.2} / {lo:.2}", &k[2..]);
    }
    for (what, raw, ours) in [
        ("full, socket", "1 pg_basebackup, socket", "2 fwdb full, socket"),
        ("full, TLS", "3 pg_basebackup, TLS", "4 fwdb full, TLS"),
        ("logical, socket", "5 pg_dump, socket", "6 fwdb logical, socket"),
        ("logical, TLS vs pg_dump on the socket", "5 pg_dump, socket", "7 fwdb logical, TLS"),
    ] {
        let ((rm, rl), (om, ol)) = (stat(raw), stat(ours));
        println!("  ratio {what}: {:.2} of medians, {:.2} of minimums", rm / om, rl / ol);
    }
}

/// fwdb's configuration for this stack, with backups to a folder under `work`.
fn backup_config(info: &StackInfo, db: &str, work: &Path, level: Option<i32>) -> Res<fwdb::Config> {
    let identity = work.join("backup.key");
    let recipient = fwdb::write_backup_key(&identity)?;
    let vars = [
        ("FWDB__BACKUP__STORAGE", format!("file://{}", work.join("store").display())),
        ("FWDB__BACKUP__ENCRYPTION__RECIPIENTS", format!("[\"{recipient}\"]")),
        ("FWDB__BACKUP__ENCRYPTION__IDENTITY_FILE", identity.display().to_string()),
        ("FWDB__BACKUP__PG_BIN_DIR", info.pg_bin_dir.display().to_string()),
        ("FWDB__BACKUP__PG_USER", info.superuser.clone()),
        ("FWDB__BACKUP__PG_PASSWORD", info.superuser_password.clone()),
    ];
    let mut extra: Vec<(&str, String)> = vars.to_vec();
    if let Some(l) = level {
        extra.push(("FWDB__BACKUP__COMPRESSION_LEVEL", l.to_string()));
    }
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(info.config(db, db, &extra)?)
}

/// libpq's settings for the connection fwdb's backups use (TCP + TLS as
/// configured), to time the raw tool on the same transport as well.
fn tls_env(cfg: &fwdb::Config) -> Res<Vec<(String, String)>> {
    let host = cfg.postgres.primary.first().ok_or("no primary in the configuration")?;
    let tls = &cfg.postgres.tls;
    let mut env = vec![
        ("PGHOST".to_string(), host.host.clone()),
        ("PGPORT".to_string(), host.port.to_string()),
        ("PGSSLMODE".to_string(), tls.mode.as_str().to_string()),
        // The app's client certificate is not the superuser's (as fwdb does).
        ("PGSSLCERT".to_string(), "/nonexistent".to_string()),
        ("PGSSLKEY".to_string(), "/nonexistent".to_string()),
    ];
    if let Some(ca) = &tls.ca_file {
        env.push(("PGSSLROOTCERT".to_string(), ca.display().to_string()));
    }
    Ok(env)
}

/// Runs one of PostgreSQL's tools over the unix socket as the superuser; its time and the bytes it wrote to `out`.
fn timed_tool(info: &StackInfo, tool: &str, args: impl FnOnce(&mut Command), out: &Path) -> Res<(f64, u64)> {
    let mut c = Command::new(info.pg_bin_dir.join(tool));
    c.env("PGHOST", &info.socket_dir).env("PGPORT", info.primary.port.to_string()).env("PGUSER", &info.superuser);
    c.env("PGPASSWORD", &info.superuser_password);
    args(&mut c);
    let t = Instant::now();
    let o = c.output()?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        return Err(format!("{tool} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok((secs, bytes_under(out)))
}

fn bytes_under(p: &Path) -> u64 {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| bytes_under(&e.path())).sum(),
        Err(_) => 0,
    }
}
