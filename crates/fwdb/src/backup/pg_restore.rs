//! Point-in-time recovery from a base backup's chain and the archived WAL,
//! into a new data folder (or, with `delta`, over an existing one), started
//! and checked.

use super::manifest::Manifest;
use super::pg_layout::LayoutReport;
use super::{pgtools, wal, Backups};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    Time(DateTime<Utc>),
    Lsn(String),
    /// Everything archived.
    Latest,
    /// The end of the base backup: its earliest consistent state.
    Immediate,
}

#[derive(Debug, Clone)]
pub struct PitrOptions {
    pub target: RecoveryTarget,
    /// A new (absent or empty) folder; with `delta`, an existing data folder.
    pub target_dir: PathBuf,
    /// A given base backup (full, diff or incr); default: the newest that ends before the target.
    pub backup_id: Option<String>,
    /// The restore_command PostgreSQL will run, e.g. `/usr/bin/fwdb wal fetch "%f" "%p"`.
    pub restore_command: String,
    /// Port of the restored server; default: a free one.
    pub port: Option<u16>,
    /// OS user that owns the folder and runs the server (needed when running as root).
    pub run_as: Option<String>,
    /// Role used to check the restored server over its unix socket.
    pub check_user: String,
    /// Start and check it (else: only lay out the folder).
    pub start: bool,
    /// Copy the archived WAL from the backup's start through the segment
    /// holding this LSN into `pg_wal` before starting (then `restore_command`
    /// is not needed: scratch restores use this).
    pub prefetch_wal: Option<String>,
    /// Run pg_verifybackup on the folder before anything in it is changed
    /// (with the prefetched WAL when there is some); a mismatch fails the restore.
    pub verify_manifest: bool,
    /// Restore over the stopped data folder in `target_dir`, rewriting only the
    /// files whose checksum differs from the backup's and removing the files
    /// the backup does not have.
    pub delta: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PitrReport {
    pub backup_id: String,
    pub target_dir: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub started: bool,
    pub timeline: Option<u32>,
    pub databases: Vec<String>,
    pub log_file: PathBuf,
    /// pg_verifybackup's verdict, when [`PitrOptions::verify_manifest`] asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_check: Option<String>,
    /// The backups restored, full first.
    pub chain: Vec<String>,
    /// Files written, left as they were (delta) and removed.
    pub files: LayoutReport,
}

fn user_ids(name: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .next()
        .ok_or_else(|| Error::invalid_input(format!("--run-as {name}: no such user")))
}

fn run_checked(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| Error::io(format!("starting {what}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Io, format!("{what} failed ({}):\n  {}", out.status, pgtools::tail(&out.stderr))))
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("finding a free port", e))?;
    Ok(l.local_addr().map_err(|e| Error::io("finding a free port", e))?.port())
}

/// Refuses a target folder the restore may not write: a non-empty one (new
/// folders), or for a delta restore anything but a stopped data folder.
fn check_target(dir: &Path, delta: bool) -> Result<()> {
    let has_entries = dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true);
    if !delta {
        if has_entries {
            return Err(Error::invalid_input(format!(
                "--target-dir {} is not empty; restores go into a new folder (or use --delta over a stopped data folder)",
                dir.display()
            )));
        }
        return Ok(());
    }
    if has_entries && !dir.join("PG_VERSION").is_file() {
        return Err(Error::invalid_input(format!(
            "--delta: {} is not a PostgreSQL data folder (no PG_VERSION); refusing to rewrite it",
            dir.display()
        )));
    }
    if dir.join("postmaster.pid").exists() {
        return Err(Error::invalid_input(format!(
            "--delta: a server is running in {} (postmaster.pid); stop it first",
            dir.display()
        )));
    }
    Ok(())
}

impl Backups {
    /// Point-in-time recovery into a new data folder (or over a stopped one
    /// with `delta`), started and checked.
    pub async fn restore_pitr(&self, opts: &PitrOptions) -> Result<PitrReport> {
        if let RecoveryTarget::Lsn(l) = &opts.target {
            if wal::parse_lsn(l).is_none() {
                return Err(Error::invalid_input(format!("--to-lsn `{l}` is not an LSN (e.g. 0/3000060)")));
            }
        }
        let dir = &opts.target_dir;
        check_target(dir, opts.delta)?;
        let m = match &opts.backup_id {
            Some(id) => {
                let m = self.manifest(id).await?;
                if !m.kind.is_physical() {
                    return Err(Error::invalid_input(format!(
                        "backup {id} is a {} backup; point-in-time recovery needs a base backup (full, diff or incr)",
                        m.kind
                    )));
                }
                m
            }
            None => self.choose_base(&self.list().await?, &opts.target)?,
        };
        let chain = self.chain(&m).await?;
        let existed = dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let result = self.restore_pitr_into(&chain, opts).await;
        // Nothing half-written: a new folder is kept after a failure only when a server was
        // started in it (its log says why recovery failed). A delta restore's folder was the
        // operator's: kept, and the next restore (delta or not) lays it out again.
        if result.is_err() && !existed && !dir.join("fwdb-restore.log").exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    async fn restore_pitr_into(&self, chain: &[Manifest], opts: &PitrOptions) -> Result<PitrReport> {
        let m = chain.last().ok_or_else(|| Error::new(ErrorKind::Internal, "an empty chain"))?;
        let dir = opts
            .target_dir
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", opts.target_dir.display()), e))?;
        // backup_manifest stays: PostgreSQL ignores it, and pg_verifybackup needs it.
        let files = self.lay_out(chain, &dir, opts.delta).await?;
        std::fs::create_dir_all(dir.join("pg_wal")).map_err(|e| Error::io("creating pg_wal", e))?;
        if let Some(upto) = &opts.prefetch_wal {
            // Recovery to an LSN stops at the first record at or past it, which may start in the next segment.
            let next = matches!(opts.target, RecoveryTarget::Lsn(_) | RecoveryTarget::Immediate);
            self.prefetch_wal(m, upto, next, &dir.join("pg_wal")).await?;
        }
        // Before any file of the backup is changed (see pg_verify).
        let manifest_check = if opts.verify_manifest {
            Some(super::pg_verify::verify_restore(&self.cfg.backup, &m.id, &dir, opts.prefetch_wal.is_some()).await?)
        } else {
            None
        };
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let socket_dir = if dir.as_os_str().len() < 90 { dir.clone() } else { std::env::temp_dir() };
        write_recovery_settings(&dir, &m.id, opts, port, &socket_dir)?;
        let ids = own_folder(&dir, opts.run_as.as_deref())?;
        let mut report = PitrReport {
            backup_id: m.id.clone(),
            target_dir: dir.clone(),
            port,
            socket_dir,
            started: false,
            timeline: None,
            databases: Vec::new(),
            log_file: dir.join("fwdb-restore.log"),
            manifest_check,
            chain: chain.iter().map(|c| c.id.clone()).collect(),
            files,
        };
        if opts.start {
            self.start_server(&report, ids).await?;
            report.started = true;
            wait_promoted(&mut report, &opts.check_user).await?;
        }
        Ok(report)
    }

    async fn start_server(&self, r: &PitrReport, ids: Option<(u32, u32)>) -> Result<()> {
        let mut cmd = Command::new(pgtools::tool(&self.cfg.backup, "pg_ctl")?);
        cmd.arg("-D").arg(&r.target_dir).arg("-l").arg(&r.log_file).args(["-w", "-t", "600", "start"]);
        if let Some((uid, gid)) = ids {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "pg_ctl waiter").with_source(e))?
            .map_err(|e| Error::io("starting pg_ctl", e))?;
        if !out.status.success() {
            return Err(server_error(ErrorKind::Postgres, r, "did not start"));
        }
        Ok(())
    }

    /// Stops a server started by [`Backups::restore_pitr`] in `dir`.
    pub async fn stop_restored(&self, dir: &Path, run_as: Option<&str>) -> Result<()> {
        let mut cmd = Command::new(pgtools::tool(&self.cfg.backup, "pg_ctl")?);
        cmd.arg("-D").arg(dir).args(["-m", "fast", "-w", "stop"]).stdin(Stdio::null());
        if let Some(u) = run_as {
            use std::os::unix::process::CommandExt;
            let (uid, gid) = user_ids(u)?;
            cmd.uid(uid).gid(gid);
        }
        tokio::task::spawn_blocking(move || run_checked(cmd, "pg_ctl stop"))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "pg_ctl waiter").with_source(e))?
    }
}

fn server_error(kind: ErrorKind, r: &PitrReport, what: &str) -> Error {
    let log = std::fs::read_to_string(&r.log_file).unwrap_or_default();
    Error::new(
        kind,
        format!("the restored server in {} {what}:\n  {}", r.target_dir.display(), pgtools::tail(log.as_bytes())),
    )
}

/// Waits until recovery reached its target and the server was promoted; fills in timeline and databases.
async fn wait_promoted(r: &mut PitrReport, check_user: &str) -> Result<()> {
    let mut c = tokio_postgres::Config::new();
    c.host_path(&r.socket_dir).port(r.port).user(check_user).dbname("postgres");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let attempt = async {
            let (client, conn) = c.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let rec: bool = client.query_one("select pg_is_in_recovery()", &[]).await?.get(0);
            Ok::<_, tokio_postgres::Error>((client, rec))
        }
        .await;
        match attempt {
            Ok((client, false)) => {
                let tl: i32 = client.query_one("select timeline_id from pg_control_checkpoint()", &[]).await?.get(0);
                r.timeline = Some(tl as u32);
                let rows = client
                    .query("select datname::text from pg_database where not datistemplate order by 1", &[])
                    .await?;
                r.databases = rows.iter().map(|r| r.get(0)).collect();
                return Ok(());
            }
            _ if Instant::now() > deadline => {
                return Err(server_error(ErrorKind::Timeout, r, "did not finish recovery"))
            }
            _ if !r.target_dir.join("postmaster.pid").exists() => {
                return Err(server_error(ErrorKind::Postgres, r, "stopped during recovery"))
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn recovery_settings(id: &str, opts: &PitrOptions, port: u16, socket_dir: &Path) -> String {
    let target = match &opts.target {
        RecoveryTarget::Time(t) => format!("recovery_target_time = '{}'\n", t.format("%Y-%m-%d %H:%M:%S%.6f+00")),
        RecoveryTarget::Lsn(l) => format!("recovery_target_lsn = '{l}'\n"),
        RecoveryTarget::Latest => String::new(),
        RecoveryTarget::Immediate => "recovery_target = 'immediate'\n".to_string(),
    };
    format!(
        "\n# Added by fwdb restore of backup {id}\n\
         restore_command = '{rc}'\n{target}\
         recovery_target_action = 'promote'\n\
         recovery_target_timeline = 'current'\n\
         # The original server's replication and TLS settings do not apply to the\n\
         # copy: overridden here (read last), so postgresql.conf stays as backed up.\n\
         primary_conninfo = ''\n\
         primary_slot_name = ''\n\
         ssl = off\n\
         port = {port}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{sock}'\n\
         # A restored copy must never archive into the production archive.\n\
         archive_mode = off\n\
         hot_standby = on\n\
         cluster_name = 'fwdb-restore-{id}'\n",
        rc = opts.restore_command.replace('\'', "''"),
        sock = socket_dir.display(),
    )
}

/// Appends the recovery settings to postgresql.auto.conf and asks for archive recovery.
fn write_recovery_settings(dir: &Path, id: &str, opts: &PitrOptions, port: u16, socket_dir: &Path) -> Result<()> {
    let auto = dir.join("postgresql.auto.conf");
    let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
    conf.push_str(&recovery_settings(id, opts, port, socket_dir));
    std::fs::write(&auto, conf).map_err(|e| Error::io(format!("writing {}", auto.display()), e))?;
    std::fs::write(dir.join("recovery.signal"), b"").map_err(|e| Error::io("writing recovery.signal", e))?;
    comment_out_includes(&dir.join("postgresql.conf"))?;
    let _ = std::fs::remove_file(dir.join("standby.signal"));
    Ok(())
}

/// chmod 700, and chown to `run_as` when given: its (uid, gid).
fn own_folder(dir: &Path, run_as: Option<&str>) -> Result<Option<(u32, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io("chmod 700", e))?;
    let Some(u) = run_as else { return Ok(None) };
    let ids = user_ids(u)?;
    let mut c = Command::new("chown");
    c.arg("-R").arg(format!("{}:{}", ids.0, ids.1)).arg(dir);
    run_checked(c, "chown")?;
    Ok(Some(ids))
}

/// `include` lines may name files of the original server's host that the
/// copy cannot read, and no later setting can undo an include: they are
/// commented out. Only then is postgresql.conf rewritten (pg_verifybackup
/// reports it as changed: `--ignore postgresql.conf`).
fn comment_out_includes(conf: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(conf) else {
        return Ok(());
    };
    let is_include = |l: &str| l.trim_start().starts_with("include");
    if !text.lines().any(is_include) {
        return Ok(());
    }
    let kept: String = text
        .lines()
        .map(|l| if is_include(l) { format!("# (fwdb restore) {l}\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(conf, kept).map_err(|e| Error::io(format!("writing {}", conf.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_conf_is_left_byte_for_byte_unless_it_has_includes() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("postgresql.conf");
        let plain = "ssl = on\r\nssl_cert_file = '/etc/ssl/server.pem'\nprimary_conninfo = 'host=a'\n#include 'x.conf'";
        std::fs::write(&conf, plain).unwrap();
        comment_out_includes(&conf).unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), plain);
        std::fs::write(&conf, "port = 5432\n  include '/etc/other/host.conf'\ninclude_dir 'conf.d'\n").unwrap();
        comment_out_includes(&conf).unwrap();
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "port = 5432\n# (fwdb restore)   include '/etc/other/host.conf'\n# (fwdb restore) include_dir 'conf.d'\n"
        );
        comment_out_includes(&dir.path().join("absent.conf")).unwrap();
    }
}
