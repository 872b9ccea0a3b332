//! Running PostgreSQL's own tools (pg_dump, pg_basebackup, ...) with the
//! connection settings of the configuration, passed through libpq's
//! environment variables (never on the command line, where `ps` shows them).

use crate::config::{BackupConfig, PostgresConfig};
use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;
use std::process::Command;

pub(crate) fn bin_dir(cfg: &BackupConfig) -> Option<PathBuf> {
    if let Some(d) = &cfg.pg_bin_dir {
        return Some(d.clone());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok().map(|v| (v, e.path().join("bin"))))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

pub(crate) fn tool(cfg: &BackupConfig, name: &str) -> Result<PathBuf> {
    if let Some(d) = bin_dir(cfg) {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::new(
        ErrorKind::Unavailable,
        format!("{name} not found (looked in backup.pg_bin_dir, /usr/lib/postgresql/*/bin and PATH); install PostgreSQL's client tools or set backup.pg_bin_dir"),
    ))
}

/// Who connects: the backup role when configured (base backups need
/// REPLICATION), else the admin login (a logical backup reads every schema,
/// audit included, which the runtime login cannot).
pub(crate) fn user_and_password(pg: &PostgresConfig, b: &BackupConfig) -> (String, Option<String>) {
    match &b.pg_user {
        Some(u) => (u.clone(), b.pg_password.as_ref().map(|s| s.expose().to_string())),
        None => (pg.admin.user.clone(), pg.admin.password.as_ref().map(|s| s.expose().to_string())),
    }
}

/// `cmd` set up to reach the primary (the first configured host, or its
/// socket in `backup.pg_socket_dir`) as `user`.
pub(crate) fn command(pg: &PostgresConfig, b: &BackupConfig, name: &str, database: &str) -> Result<Command> {
    let mut cmd = Command::new(tool(b, name)?);
    let host = pg.primary.first().ok_or_else(|| Error::invalid_input("postgres.primary is empty"))?;
    let (user, password) = user_and_password(pg, b);
    cmd.env("PGPORT", host.port.to_string()).env("PGUSER", user).env("PGDATABASE", database);
    cmd.env("PGAPPNAME", "fwdb backup").env("PGCONNECT_TIMEOUT", pg.connect_timeout.as_secs().max(1).to_string());
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    if let Some(dir) = &b.pg_socket_dir {
        // libpq never uses TLS on a unix socket; say so rather than leave a
        // verify-full that reads as if it applied.
        cmd.env("PGHOST", dir).env("PGSSLMODE", "disable");
        for var in ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"] {
            cmd.env_remove(var);
        }
        return Ok(cmd);
    }
    cmd.env("PGHOST", &host.host);
    let tls = &pg.tls;
    cmd.env("PGSSLMODE", tls.mode.as_str());
    for (var, v) in [("PGSSLROOTCERT", &tls.ca_file), ("PGSSLCERT", &tls.cert_file), ("PGSSLKEY", &tls.key_file)] {
        match v {
            Some(p) => cmd.env(var, p),
            None => cmd.env_remove(var),
        };
    }
    // The runtime login's client certificate is not offered for another role.
    let (cert, key) = match &b.pg_user {
        Some(u) if *u == pg.user => (tls.cert_file.clone(), tls.key_file.clone()),
        Some(_) => (None, None),
        None => (pg.admin.cert_file.clone(), pg.admin.key_file.clone()),
    };
    match (cert, key) {
        (Some(c), Some(k)) => cmd.env("PGSSLCERT", c).env("PGSSLKEY", k),
        _ => cmd.env("PGSSLCERT", "/nonexistent").env("PGSSLKEY", "/nonexistent"),
    };
    Ok(cmd)
}

/// The first lines of a tool's stderr, for an error message.
pub(crate) fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(8)..].join("\n  ")
}

/// A child's stdout as a reader that fails at its end when the child failed,
/// so an upload fed from it is aborted rather than completed.
pub(crate) struct ChildReader {
    name: String,
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    /// Filled when the child has exited: its stderr.
    pub stderr_text: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ChildReader {
    pub fn spawn(mut cmd: Command, name: &str) -> Result<ChildReader> {
        use std::process::Stdio;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::io(format!("starting {name}"), e))?;
        let stdout = child.stdout.take().expect("piped");
        widen_pipe(&stdout);
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut v);
            v
        });
        Ok(ChildReader { name: name.into(), child, stdout, stderr: Some(stderr), stderr_text: Default::default() })
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let status = self.child.wait()?;
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        *self.stderr_text.lock().unwrap() = String::from_utf8_lossy(&err).into_owned();
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("{} failed ({status}):\n  {}", self.name, tail(&err))))
        }
    }
}

/// The tools write in blocks of a few KiB; through Linux's default 64 KiB
/// pipe the reader is woken for every few of them, and on a small machine
/// each wake-up is a context switch away from the server and the compressor.
/// A 1 MiB pipe (the unprivileged ceiling, /proc/sys/fs/pipe-max-size) lets
/// one read take up to a megabyte. Best effort: the default pipe still works.
#[cfg(target_os = "linux")]
fn widen_pipe(p: &std::process::ChildStdout) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl with an integer argument on a descriptor this process owns.
    unsafe { libc::fcntl(p.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe(_: &std::process::ChildStdout) {}

impl std::io::Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && self.stderr.is_some() {
            self.finish()?;
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SslMode;

    fn env_of(cmd: &Command, key: &str) -> Option<String> {
        cmd.get_envs().find(|(k, _)| *k == key).and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn tools_connect_through_the_socket_folder_without_tls_when_one_is_configured() {
        let mut pg = PostgresConfig::default();
        pg.tls.mode = SslMode::VerifyFull;
        pg.tls.ca_file = Some("/etc/fwdb/ca.pem".into());
        let mut b = BackupConfig { pg_bin_dir: Some("/bin".into()), ..Default::default() };
        let tcp = command(&pg, &b, "sh", "app").expect("a command");
        assert_eq!(env_of(&tcp, "PGHOST").as_deref(), Some("127.0.0.1"));
        assert_eq!(env_of(&tcp, "PGSSLMODE").as_deref(), Some("verify-full"));
        assert_eq!(env_of(&tcp, "PGSSLROOTCERT").as_deref(), Some("/etc/fwdb/ca.pem"));

        b.pg_socket_dir = Some("/var/run/postgresql".into());
        let local = command(&pg, &b, "sh", "app").expect("a command");
        assert_eq!(env_of(&local, "PGHOST").as_deref(), Some("/var/run/postgresql"));
        assert_eq!(env_of(&local, "PGSSLMODE").as_deref(), Some("disable"));
        assert_eq!(env_of(&local, "PGSSLROOTCERT"), None);
        // The socket file is named after the port: the primary's.
        assert_eq!(env_of(&local, "PGPORT").as_deref(), Some("5432"));
        assert_eq!(env_of(&local, "PGDATABASE").as_deref(), Some("app"));
    }
}
