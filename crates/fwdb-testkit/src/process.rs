//! Processes: which user runs the servers, how attached servers are spawned so
//! that they can never outlive us, signals, and /proc scans.

use std::ffi::{CStr, CString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};

/// The unprivileged account that owns the stack's files and runs the servers.
#[derive(Clone, Debug)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// True when it is the account we already run as: no uid switch, no chown.
    pub is_self: bool,
}

impl RunAs {
    /// PostgreSQL refuses to run as root, so when we are root the servers run
    /// as `postgres` (created by the Debian package) or else `nobody`.
    /// As a normal user, the servers simply run as that user.
    pub fn detect() -> Result<RunAs> {
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            let (name, uid, gid) =
                user_by_uid(euid).unwrap_or_else(|| (euid.to_string(), euid, unsafe { libc::getegid() }));
            return Ok(RunAs { name, uid, gid, is_self: true });
        }
        for candidate in ["postgres", "nobody"] {
            if let Some((name, uid, gid)) = user_by_name(candidate) {
                return Ok(RunAs { name, uid, gid, is_self: false });
            }
        }
        Err(TestkitError::NoServerUser {
            name: "postgres".into(),
            hint: "create one with `sudo useradd --system postgres`, or run as a normal user".into(),
        })
    }

    pub fn from_name(name: &str) -> Result<RunAs> {
        let euid = unsafe { libc::geteuid() };
        match user_by_name(name) {
            Some((name, uid, gid)) => Ok(RunAs { name, uid, gid, is_self: uid == euid }),
            None => Err(TestkitError::NoServerUser {
                name: name.into(),
                hint: "the stack was created by another machine or user; run `fwdb dev down --purge`".into(),
            }),
        }
    }

    /// Makes `cmd` run as this user. std applies setgid/setuid in the child
    /// before any `pre_exec` closure runs (which matters for PDEATHSIG, below).
    pub fn apply(&self, cmd: &mut Command) {
        if !self.is_self {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// Gives `path` to this user (no-op when we already are it).
    pub fn chown(&self, path: &Path) -> Result<()> {
        if self.is_self {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(|e| TestkitError::io(path, e))
    }
}

fn user_by_name(name: &str) -> Option<(String, u32, u32)> {
    let c = CString::new(name).ok()?;
    passwd_lookup(|pw, buf, res| unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), res) })
}

fn user_by_uid(uid: u32) -> Option<(String, u32, u32)> {
    passwd_lookup(|pw, buf, res| unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), res) })
}

fn passwd_lookup(
    f: impl Fn(*mut libc::passwd, &mut Vec<libc::c_char>, *mut *mut libc::passwd) -> libc::c_int,
) -> Option<(String, u32, u32)> {
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    // SAFETY: passwd is plain data; getpw*_r fills it and points into `buf`.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    let rc = f(&mut pw, &mut buf, &mut res);
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: on success pw_name is a valid NUL-terminated string inside buf.
    let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned();
    Some((name, pw.pw_uid, pw.pw_gid))
}

// ---------------------------------------------------------------------------
// Attached servers and the spawner thread
//
// An attached server must die with the process that started it, even when that
// process is SIGKILLed (a test binary killed by a timeout, `fwdb dev up
// --foreground` killed by its terminal). Linux offers exactly that:
// prctl(PR_SET_PDEATHSIG). Two traps:
//  * the "parent" of PDEATHSIG is the *thread* that forked, not the process:
//    a server spawned from a test's thread would be killed as soon as that test
//    finishes. So every attached server is spawned by ONE dedicated thread that
//    lives as long as the process (it waits on a channel whose sender is in a
//    static, so it never returns).
//  * changing credentials (setuid to `postgres`) clears the death signal.
//    std applies uid/gid in the child before `pre_exec` closures, so setting
//    PDEATHSIG inside pre_exec is after the switch and survives; exec keeps it.
// The child also checks that its parent is still us: if we died between fork
// and prctl, the signal would never come.
// ---------------------------------------------------------------------------

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<std::io::Result<Child>>,
}

static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> Result<&'static Mutex<mpsc::Sender<SpawnRequest>>> {
    if let Some(s) = SPAWNER.get() {
        return Ok(s);
    }
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    let started = std::thread::Builder::new().name("fwdb-testkit-spawner".into()).spawn(move || {
        // Never returns while the process lives: the sender is in a static.
        while let Ok(mut req) = rx.recv() {
            let _ = req.reply.send(req.cmd.spawn());
        }
        // Unreachable in practice; park rather than exit, so that the
        // children's parent thread stays alive.
        loop {
            std::thread::park();
        }
    });
    match started {
        Ok(_) => {}
        Err(e) => return Err(TestkitError::Spawn { program: "the testkit spawner thread".into(), source: e }),
    }
    // If another thread won the race, our thread simply idles; harmless.
    Ok(SPAWNER.get_or_init(|| Mutex::new(tx)))
}

/// Spawns `cmd` from the spawner thread, with `death_signal` delivered to it
/// when this process dies.
pub(crate) fn spawn_attached(mut cmd: Command, death_signal: libc::c_int) -> Result<Child> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let parent = std::process::id() as libc::pid_t;
    // Own process group: a Ctrl-C in the terminal goes to us only, and we stop
    // the servers in order instead of them each reacting on their own.
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls (prctl, getppid) in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // We were orphaned before the death signal was armed.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    {
        let sender = spawner()?.lock().unwrap_or_else(|p| p.into_inner());
        sender.send(SpawnRequest { cmd, reply: reply_tx }).map_err(|_| TestkitError::Spawn {
            program: program.clone(),
            source: std::io::Error::other("spawner thread is gone"),
        })?;
    }
    match reply_rx.recv() {
        Ok(Ok(child)) => Ok(child),
        Ok(Err(e)) => Err(TestkitError::Spawn { program, source: e }),
        Err(_) => Err(TestkitError::Spawn { program, source: std::io::Error::other("spawner thread is gone") }),
    }
}

/// Spawns `cmd` in a new session so that it outlives us (a detached server).
pub(crate) fn spawn_detached(mut cmd: Command) -> Result<Child> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| TestkitError::Spawn { program, source: e })
}

// ---------------------------------------------------------------------------
// Signals and liveness
// ---------------------------------------------------------------------------

pub(crate) fn signal(pid: u32, sig: libc::c_int) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Alive and not a zombie. (kill(pid, 0) succeeds on zombies, which would make
/// a killed-but-unreaped attached server look like it is still running.)
pub(crate) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) {
            Some(state) => state != "Z" && state != "X",
            None => true,
        },
        Err(_) => false,
    }
}

/// Waits until `pid` is gone (or a zombie). True if it went within `timeout`.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start time of a process in clock ticks since boot (field 22 of stat); with
/// the pid it identifies a process even after pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // after ")" come fields 3.. ; starttime is field 22 => index 19 here.
    after.split_whitespace().nth(19)?.parse().ok()
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T` stopped, ...), or
/// `None` when the process is gone.
pub(crate) fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    stat.rsplit(')').next().and_then(|s| s.trim_start().chars().next())
}

/// Direct children of `pid` (postgres backends are the postmaster's children;
/// they are session leaders of their own, so a process-group signal misses them).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    all_pids().into_iter().filter(|&p| parent_pid(p) == Some(pid)).collect()
}

/// A process seen in /proc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
    /// The executable's path, when readable.
    pub exe: Option<PathBuf>,
    /// The working directory, when readable.
    pub cwd: Option<PathBuf>,
}

impl ProcInfo {
    fn read(pid: u32) -> Option<ProcInfo> {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = raw
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        Some(ProcInfo {
            pid,
            cmdline,
            exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok(),
            cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
        })
    }

    /// Does this process belong to `dir`: its command line names the folder,
    /// or it works inside it? (postgres children rewrite their command line to
    /// "postgres: checkpointer", but keep the data folder as working directory.)
    pub fn mentions(&self, dir: &Path) -> bool {
        let d = dir.to_string_lossy();
        let d = d.trim_end_matches('/');
        if d.is_empty() {
            return false;
        }
        mentions_path(&self.cmdline, d) || self.cwd.as_deref().is_some_and(|c| c.starts_with(dir))
    }

    /// Is this one of the kinds of server the stack runs?
    pub fn is_server(&self) -> bool {
        let exe_name = self
            .exe
            .as_deref()
            .and_then(|e| e.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let first = self.cmdline.split_whitespace().next().unwrap_or("");
        exe_name == "postgres"
            || exe_name == "mongod"
            || first.ends_with("postgres")
            || first.starts_with("postgres:")
            || first.ends_with("mongod")
            || self.cmdline.contains("secantusd")
    }
}

/// `text` contains `dir` as a whole path (so `/tmp/stack-1` is not found in
/// `/tmp/stack-12`).
fn mentions_path(text: &str, dir: &str) -> bool {
    let mut from = 0;
    while let Some(i) = text[from..].find(dir) {
        let end = from + i + dir.len();
        match text[end..].chars().next() {
            None | Some('/') | Some(' ') | Some('\'') | Some('"') | Some('=') => return true,
            _ => from = end,
        }
    }
    false
}

/// Every live process (other than us) whose command line or working directory
/// mentions `dir`. Used by tests ("nothing left behind") and by `down`.
pub fn processes_mentioning(dir: &Path) -> Vec<ProcInfo> {
    let me = std::process::id();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    all_pids()
        .into_iter()
        .filter(|&p| p != me && is_alive(p))
        .filter_map(ProcInfo::read)
        .filter(|p| p.mentions(&dir))
        .collect()
}

pub(crate) fn proc_info(pid: u32) -> Option<ProcInfo> {
    ProcInfo::read(pid)
}

/// Runs a command to completion, turning failure into an error that carries
/// its output.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| TestkitError::Spawn { program, source: e })?;
    if !out.status.success() {
        let mut detail = String::from_utf8_lossy(&out.stderr).into_owned();
        if detail.trim().is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        return Err(TestkitError::CommandFailed { what: what.into(), detail: tail(&detail, 20) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => format!("last lines of {}:\n{}", path.display(), tail(&String::from_utf8_lossy(&bytes), n)),
        Err(_) => String::new(),
    }
}

/// Removes PG* variables inherited from the environment (PGHOST, PGOPTIONS,
/// PGSSLMODE...), which would silently redirect or alter our admin commands.
pub(crate) fn clean_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
}
