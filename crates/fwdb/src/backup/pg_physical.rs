//! `--kind full`: pg_basebackup streamed as a tar into storage; point-in-time
//! recovery from it and the archived WAL into a new data folder.

use super::manifest::{BackupKind, Manifest};
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
    /// A new (absent or empty) folder.
    pub target_dir: PathBuf,
    /// A given full backup; default: the newest that ends before the target.
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
}

fn field<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let at = text.find(marker)? + marker.len();
    text[at..].split_whitespace().next()
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
        .ok_or_else(|| Error::validation(format!("--run-as {name}: no such user")))
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

impl Backups {
    pub(crate) async fn create_full(&self) -> Result<Manifest> {
        let started = Utc::now();
        let mut m = self.new_manifest(BackupKind::Full, started);
        let host = self.cfg.postgres.primary.first().ok_or_else(|| Error::validation("postgres.primary is empty"))?;
        m.servers.push(host.to_string());
        let client = crate::postgres::connect(&self.cfg.postgres, crate::postgres::ConnectTarget::Primary).await?;
        let v: String = client.query_one("show server_version", &[]).await?.get(0);
        m.versions.push(format!("PostgreSQL {v}"));
        let seg: String = client.query_one("show wal_segment_size", &[]).await?.get(0);
        let seg_size = parse_size(&seg).unwrap_or(16 << 20);
        let dbs = client
            .query("select datname::text from pg_database where datallowconn and not datistemplate order by 1", &[])
            .await?;
        m.databases = dbs.iter().map(|r| r.get(0)).collect();
        drop(client);

        let mut cmd = pgtools::command(&self.cfg.postgres, &self.cfg.backup, "pg_basebackup", "replication")?;
        // Tar to stdout, no WAL inside: the WAL comes from the archive (`fwdb wal push`);
        // the server waits until the backup's last segment is archived.
        cmd.args(["-D", "-", "-F", "t", "-X", "none", "-c", "fast", "-v", "--no-password"]);
        cmd.arg("-l").arg(format!("fwdb {}", m.id));
        let reader = pgtools::ChildReader::spawn(cmd, "pg_basebackup")?;
        let stderr = reader.stderr_text.clone();
        let (reader, facts) = TarWatch::new(reader);
        let entry = self.put_object(&m.id, "base.tar", reader).await?;
        let text = stderr.lock().unwrap().clone();
        let facts = facts.lock().unwrap().clone();
        m.start_lsn = facts.start_lsn();
        m.stop_lsn = facts.stop_lsn();
        m.timeline = facts.timeline();
        if let (Some(lsn), Some(tl)) = (&m.start_lsn, m.timeline) {
            m.start_wal = wal::segment_name(tl, lsn, seg_size);
        }
        if m.start_lsn.is_none() || m.stop_lsn.is_none() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("pg_basebackup did not report its WAL positions:\n  {}", pgtools::tail(text.as_bytes())),
            ));
        }
        m.objects.push(entry);
        m.wal_segment_size = Some(seg_size);
        self.record_counts(&mut m).await;
        m.finished_at = Utc::now();
        self.write_manifest(&m).await?;
        Ok(m)
    }

    /// Streams `base.tar` of backup `m` into `tar -x -C dir`.
    async fn extract_base(&self, m: &Manifest, dir: &Path) -> Result<()> {
        let obj = m
            .objects
            .iter()
            .find(|o| o.name == "base.tar")
            .ok_or_else(|| Error::validation(format!("backup {} has no base.tar", m.id)))?
            .clone();
        let mut child = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dir)
            .arg("-f")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("starting tar", e))?;
        let stdin = child.stdin.take().expect("piped");
        let fed = self.get_object(&obj, stdin).await.map(drop);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "tar waiter").with_source(e))?
            .map_err(|e| Error::io("waiting for tar", e))?;
        fed?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("extracting {} failed: {}", m.id, pgtools::tail(&out.stderr)),
            ));
        }
        Ok(())
    }

    /// The WAL from the start to the end of full backup `m` is in the archive
    /// (what every restore of it needs; the drill's pg_verifybackup parses it).
    pub(crate) async fn check_wal_archived(&self, m: &Manifest) -> Result<String> {
        let mut missing = Vec::new();
        if let (Some(start), Some(stop), Some(tl)) = (&m.start_lsn, &m.stop_lsn, m.timeline) {
            let seg = m.wal_segment_size.unwrap_or(16 << 20);
            let (a, b) = (wal::parse_lsn(start).unwrap_or(0) / seg, wal::parse_lsn(stop).unwrap_or(0) / seg);
            let have: std::collections::HashSet<String> = self.wal_list().await?.into_iter().map(|(n, _)| n).collect();
            for s in a..=b {
                let name = wal::segment_name(tl, &format!("{:X}/{:X}", (s * seg) >> 32, (s * seg) & 0xffff_ffff), seg)
                    .unwrap_or_default();
                if !have.contains(&name) {
                    missing.push(name);
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::Validation,
                format!("backup {} is not restorable: WAL {} missing from the archive", m.id, missing.join(", ")),
            ));
        }
        Ok("WAL from the start to the end of the backup is archived".to_string())
    }

    fn choose_full(&self, all: &[Manifest], target: &RecoveryTarget) -> Result<Manifest> {
        let fulls: Vec<&Manifest> = all.iter().filter(|m| m.kind == BackupKind::Full).collect();
        let fits = |m: &&&Manifest| match target {
            RecoveryTarget::Latest | RecoveryTarget::Immediate => true,
            RecoveryTarget::Time(t) => m.finished_at <= *t,
            RecoveryTarget::Lsn(l) => match (m.stop_lsn.as_deref().and_then(wal::parse_lsn), wal::parse_lsn(l)) {
                (Some(a), Some(b)) => a <= b,
                _ => false,
            },
        };
        fulls.iter().rev().find(fits).map(|m| (*m).clone()).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no full backup in {} ends before {target:?}; take one with `fwdb backup create --kind full`",
                    self.st.url
                ),
            )
        })
    }

    /// Point-in-time recovery into a new data folder, started and checked.
    pub async fn restore_pitr(&self, opts: &PitrOptions) -> Result<PitrReport> {
        if let RecoveryTarget::Lsn(l) = &opts.target {
            if wal::parse_lsn(l).is_none() {
                return Err(Error::validation(format!("--to-lsn `{l}` is not an LSN (e.g. 0/3000060)")));
            }
        }
        let dir = &opts.target_dir;
        if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
            return Err(Error::validation(format!(
                "--target-dir {} is not empty; restores go into a new folder",
                dir.display()
            )));
        }
        let m = match &opts.backup_id {
            Some(id) => {
                let m = self.manifest(id).await?;
                if m.kind != BackupKind::Full {
                    return Err(Error::validation(format!(
                        "backup {id} is a {} backup; point-in-time recovery needs a full one",
                        m.kind
                    )));
                }
                m
            }
            None => self.choose_full(&self.list().await?, &opts.target)?,
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let result = self.restore_pitr_into(&m, opts).await;
        // Nothing half-written: a folder is kept after a failure only when a server was
        // started in it (its log says why recovery failed).
        if result.is_err() && !dir.join("fwdb-restore.log").exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    async fn restore_pitr_into(&self, m: &Manifest, opts: &PitrOptions) -> Result<PitrReport> {
        use std::os::unix::fs::PermissionsExt;
        let dir = opts
            .target_dir
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", opts.target_dir.display()), e))?;
        // backup_manifest stays: PostgreSQL ignores it, and pg_verifybackup needs it.
        self.extract_base(m, &dir).await?;
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
        let target = match &opts.target {
            RecoveryTarget::Time(t) => format!("recovery_target_time = '{}'\n", t.format("%Y-%m-%d %H:%M:%S%.6f+00")),
            RecoveryTarget::Lsn(l) => format!("recovery_target_lsn = '{l}'\n"),
            RecoveryTarget::Latest => String::new(),
            RecoveryTarget::Immediate => "recovery_target = 'immediate'\n".to_string(),
        };
        let extra = format!(
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
            id = m.id,
            rc = opts.restore_command.replace('\'', "''"),
            sock = socket_dir.display(),
        );
        let auto = dir.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&extra);
        std::fs::write(&auto, conf).map_err(|e| Error::io(format!("writing {}", auto.display()), e))?;
        std::fs::write(dir.join("recovery.signal"), b"").map_err(|e| Error::io("writing recovery.signal", e))?;
        comment_out_includes(&dir.join("postgresql.conf"))?;
        let _ = std::fs::remove_file(dir.join("standby.signal"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("chmod 700", e))?;
        let ids = match &opts.run_as {
            Some(u) => {
                let ids = user_ids(u)?;
                let mut c = Command::new("chown");
                c.arg("-R").arg(format!("{}:{}", ids.0, ids.1)).arg(&dir);
                run_checked(c, "chown")?;
                Some(ids)
            }
            None => None,
        };
        let log_file = dir.join("fwdb-restore.log");
        let mut report = PitrReport {
            backup_id: m.id.clone(),
            target_dir: dir.clone(),
            port,
            socket_dir: socket_dir.clone(),
            started: false,
            timeline: None,
            databases: Vec::new(),
            log_file: log_file.clone(),
            manifest_check,
        };
        if !opts.start {
            return Ok(report);
        }
        let mut cmd = Command::new(pgtools::tool(&self.cfg.backup, "pg_ctl")?);
        cmd.arg("-D").arg(&dir).arg("-l").arg(&log_file).args(["-w", "-t", "600", "start"]);
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
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Postgres,
                format!("the restored server in {} did not start:\n  {}", dir.display(), pgtools::tail(log.as_bytes())),
            ));
        }
        report.started = true;
        // Checked: recovery reached its target and the server was promoted.
        let mut c = tokio_postgres::Config::new();
        c.host_path(&socket_dir).port(port).user(&opts.check_user).dbname("postgres");
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
                    let tl: i32 =
                        client.query_one("select timeline_id from pg_control_checkpoint()", &[]).await?.get(0);
                    report.timeline = Some(tl as u32);
                    let rows = client
                        .query("select datname::text from pg_database where not datistemplate order by 1", &[])
                        .await?;
                    report.databases = rows.iter().map(|r| r.get(0)).collect();
                    return Ok(report);
                }
                _ if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "the restored server in {} did not finish recovery:\n  {}",
                            dir.display(),
                            pgtools::tail(log.as_bytes())
                        ),
                    ));
                }
                _ => {
                    if !dir.join("postmaster.pid").exists() {
                        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
                        return Err(Error::new(
                            ErrorKind::Postgres,
                            format!(
                                "the restored server in {} stopped during recovery:\n  {}",
                                dir.display(),
                                pgtools::tail(log.as_bytes())
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
            }
        }
    }
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

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("MB") {
        (n, 1u64 << 20)
    } else if let Some(n) = s.strip_suffix("GB") {
        (n, 1u64 << 30)
    } else if let Some(n) = s.strip_suffix("kB") {
        (n, 1u64 << 10)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// What a pg_basebackup tar stream says about itself, read on the way through:
/// `backup_label` (start LSN, timeline) and `backup_manifest` (WAL range end).
#[derive(Default, Debug, Clone)]
pub(crate) struct TarFacts {
    pub label: String,
    /// The last bytes of backup_manifest (its WAL-Ranges are at the end).
    pub manifest_tail: Vec<u8>,
}

impl TarFacts {
    pub fn start_lsn(&self) -> Option<String> {
        field(&self.label, "START WAL LOCATION: ").map(str::to_string)
    }
    pub fn timeline(&self) -> Option<u32> {
        field(&self.label, "START TIMELINE: ").and_then(|t| t.parse().ok())
    }
    pub fn stop_lsn(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.manifest_tail);
        let at = text.rfind("\"End-LSN\"")?;
        let rest = &text[at + "\"End-LSN\"".len()..];
        let start = rest.find('"')? + 1;
        let end = start + rest[start..].find('"')?;
        Some(rest[start..end].to_string())
    }
}

/// Passes a tar stream through unchanged, collecting [`TarFacts`].
pub(crate) struct TarWatch<R> {
    inner: R,
    facts: std::sync::Arc<std::sync::Mutex<TarFacts>>,
    header: Vec<u8>,
    /// Bytes of the current entry's data (plus padding) still to pass.
    remaining: u64,
    /// Which file the current data belongs to: 1 label, 2 manifest, 0 other.
    current: u8,
    data_left: u64,
}

impl<R> TarWatch<R> {
    pub fn new(inner: R) -> (Self, std::sync::Arc<std::sync::Mutex<TarFacts>>) {
        let facts = std::sync::Arc::new(std::sync::Mutex::new(TarFacts::default()));
        (
            TarWatch {
                inner,
                facts: facts.clone(),
                header: Vec::with_capacity(512),
                remaining: 0,
                current: 0,
                data_left: 0,
            },
            facts,
        )
    }

    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.remaining == 0 {
                let take = (512 - self.header.len()).min(buf.len());
                self.header.extend_from_slice(&buf[..take]);
                buf = &buf[take..];
                if self.header.len() == 512 {
                    let h = std::mem::take(&mut self.header);
                    let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
                    let name = String::from_utf8_lossy(&h[..name_end]).to_string();
                    let size_field =
                        String::from_utf8_lossy(&h[124..136]).trim_matches(|c: char| c == '\0' || c == ' ').to_string();
                    let size = u64::from_str_radix(&size_field, 8).unwrap_or(0);
                    self.current = match name.trim_start_matches("./") {
                        "backup_label" => 1,
                        "backup_manifest" => 2,
                        _ => 0,
                    };
                    self.data_left = size;
                    self.remaining = size.div_ceil(512) * 512;
                }
                continue;
            }
            let take = (self.remaining.min(buf.len() as u64)) as usize;
            let data = (self.data_left.min(take as u64)) as usize;
            if data > 0 && self.current != 0 {
                let mut f = self.facts.lock().unwrap();
                if self.current == 1 {
                    f.label.push_str(&String::from_utf8_lossy(&buf[..data]));
                } else {
                    f.manifest_tail.extend_from_slice(&buf[..data]);
                    let excess = f.manifest_tail.len().saturating_sub(64 * 1024);
                    f.manifest_tail.drain(..excess);
                }
            }
            self.data_left -= data as u64;
            self.remaining -= take as u64;
            buf = &buf[take..];
        }
    }
}

impl<R: std::io::Read> std::io::Read for TarWatch<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.feed(&out[..n]);
        Ok(n)
    }
}

impl Backups {
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
