//! MongoDB: a real `mongod` when one is on PATH, otherwise the
//! MongoDB-wire-compatible server of the PyPI package `secantusdb`, installed
//! into a project-local venv on first use.
//!
//! Both run as the invoking user (MongoDB servers do not refuse root, and the
//! venv belongs to that user); their files live in the stack folder.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};
use crate::info::{Lifetime, MongoKind, MongoNode};
use crate::ports;
use crate::process;
use crate::wire::{self, Bson, Field};

pub const SECANTUS_REQUIREMENT: &str = "secantusdb==0.7.0b3";
/// The replica set name secantusdb advertises in `hello` (not configurable).
pub const SECANTUS_SET: &str = "secantus";
/// The replica set name we give a real mongod.
pub const MONGOD_SET: &str = "rs0";

/// Which server will run, and from where.
#[derive(Clone, Debug)]
pub(crate) enum MongoServer {
    Mongod {
        bin: PathBuf,
    },
    /// `bin` may not exist yet: [`ensure_secantus`] installs it.
    Secantus {
        bin: PathBuf,
        venv: Option<PathBuf>,
    },
}

impl MongoServer {
    pub fn kind(&self) -> MongoKind {
        match self {
            MongoServer::Mongod { .. } => MongoKind::Mongod,
            MongoServer::Secantus { .. } => MongoKind::Secantus,
        }
    }

    pub fn replica_set(&self) -> &'static str {
        match self {
            MongoServer::Mongod { .. } => MONGOD_SET,
            MongoServer::Secantus { .. } => SECANTUS_SET,
        }
    }
}

/// The official driver accepts `?replicaSet=<name>` against both servers:
/// both advertise themselves as the primary of a one-member set whose host is
/// `127.0.0.1:P` (checked with the `mongodb` crate in fwdb-cli's stack tests),
/// so the driver discovers and uses the primary as with a real deployment.
pub(crate) fn uri(port: u16, set: &str) -> String {
    format!("mongodb://127.0.0.1:{port}/?replicaSet={set}")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The folder whose `.fwdb/venv` holds secantusdb: `$FWDB_ROOT`, else the
/// nearest ancestor of the current folder that has `crates/fwdb-testkit` (the
/// fwdb checkout: tests run from a crate folder), else the current folder.
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os("FWDB_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors().find(|a| a.join("crates/fwdb-testkit").is_dir()).map(Path::to_path_buf).unwrap_or(cwd)
}

/// Picks the server: mongod on PATH, else `$FWDB_SECANTUS_BIN`, else the venv's
/// `secantusd-py` (installed later if missing).
pub(crate) fn choose() -> MongoServer {
    // There is no mongod on the machine this was written on, so that path is
    // untested here; it follows MongoDB's documented single-node replica set
    // setup (--replSet, then replSetInitiate).
    if let Some(bin) = find_on_path("mongod") {
        return MongoServer::Mongod { bin };
    }
    if let Some(bin) = std::env::var_os("FWDB_SECANTUS_BIN").filter(|v| !v.is_empty()) {
        return MongoServer::Secantus { bin: PathBuf::from(bin), venv: None };
    }
    let venv = project_root().join(".fwdb").join("venv");
    MongoServer::Secantus { bin: venv.join("bin").join("secantusd-py"), venv: Some(venv) }
}

/// Makes sure the venv with secantusdb exists. Several test binaries may start
/// at once: an exclusive flock on `.fwdb/venv.lock` makes one of them install
/// while the others wait, then find it ready.
pub(crate) fn ensure_secantus(server: &MongoServer) -> Result<()> {
    let MongoServer::Secantus { bin, venv } = server else { return Ok(()) };
    let Some(venv) = venv else {
        // FWDB_SECANTUS_BIN: the user's own install.
        return if bin.is_file() {
            Ok(())
        } else {
            Err(TestkitError::io(
                bin,
                std::io::Error::new(std::io::ErrorKind::NotFound, "FWDB_SECANTUS_BIN points to no file"),
            ))
        };
    };
    let marker = venv.join(".fwdb-installed");
    let ready = || bin.is_file() && std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == SECANTUS_REQUIREMENT);
    if ready() {
        return Ok(());
    }
    let fwdb_dir = venv.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&fwdb_dir).map_err(|e| TestkitError::io(&fwdb_dir, e))?;
    let lock_path = fwdb_dir.join("venv.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| TestkitError::io(&lock_path, e))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(TestkitError::io(&lock_path, std::io::Error::last_os_error()));
    }
    if ready() {
        return Ok(()); // another process installed it while we waited
    }
    let python = find_on_path("python3").ok_or(TestkitError::PythonMissing)?;
    let log = fwdb_dir.join("venv-install.log");
    eprintln!("fwdb-testkit: installing the MongoDB-compatible server ({SECANTUS_REQUIREMENT}) into {} (once; about a minute)...", venv.display());
    // A venv with a working pip is kept: scripts/setup.sh installs other tools
    // into it (moto), and pip install below is idempotent. Only a half-made one
    // (no pip: an interrupted `python3 -m venv`) is started afresh; its scripts
    // embed its path, so it is built in place rather than renamed into place.
    let has_pip = venv.join("bin").join("pip").is_file();
    if venv.exists() && !has_pip {
        std::fs::remove_dir_all(venv).map_err(|e| TestkitError::io(venv, e))?;
    }
    let log_file = || OpenOptions::new().create(true).append(true).open(&log).map_err(|e| TestkitError::io(&log, e));
    let fail = |detail: String| TestkitError::VenvInstall { venv: venv.clone(), log: log.clone(), detail };
    let status = Command::new(&python)
        .args(["-m", "venv"])
        .arg(venv)
        .stdin(Stdio::null())
        .stdout(log_file()?)
        .stderr(log_file()?)
        .status()
        .map_err(|_| TestkitError::PythonMissing)?;
    if !status.success() {
        return Err(fail(format!(
            "`python3 -m venv` exited with {status} (on Debian, `sudo apt-get install python3-venv`)\n{}",
            process::log_tail(&log, 10)
        )));
    }
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", "--pre", SECANTUS_REQUIREMENT])
        .stdin(Stdio::null())
        .stdout(log_file()?)
        .stderr(log_file()?)
        .status()
        .map_err(|e| fail(format!("could not run pip: {e}")))?;
    if !status.success() || !bin.is_file() {
        return Err(fail(format!("pip exited with {status}\n{}", process::log_tail(&log, 10))));
    }
    std::fs::write(&marker, SECANTUS_REQUIREMENT).map_err(|e| TestkitError::io(&marker, e))?;
    Ok(())
}

/// `<stack dir>/mongo.pid`: the live pid of the stack's MongoDB server (the
/// counterpart of postgres' postmaster.pid, which secantusdb does not write).
pub(crate) fn pid_file(stack_dir: &Path) -> PathBuf {
    stack_dir.join("mongo.pid")
}

/// The live MongoDB server of this node, if any (checked against pid reuse).
pub(crate) fn running_pid(stack_dir: &Path, node: &MongoNode) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(stack_dir)).ok()?.trim().parse().ok()?;
    let p = process::proc_info(pid)?;
    let data = node.data_dir.canonicalize().unwrap_or_else(|_| node.data_dir.clone());
    (process::is_alive(pid) && p.is_server() && p.mentions(&data)).then_some(pid)
}

pub(crate) struct StartedMongo {
    pub pid: u32,
    pub child: Option<Child>,
}

/// Starts the server for `node` (picking another port if its port is taken
/// and `may_move`), waits until it answers, and for mongod initiates the
/// replica set.
pub(crate) fn start(
    server: &MongoServer,
    stack_dir: &Path,
    node: &mut MongoNode,
    lifetime: Lifetime,
    may_move: bool,
) -> Result<StartedMongo> {
    const ATTEMPTS: usize = 5;
    std::fs::create_dir_all(&node.data_dir).map_err(|e| TestkitError::io(&node.data_dir, e))?;
    for attempt in 1..=ATTEMPTS {
        let from = std::fs::metadata(&node.log_file).map(|m| m.len()).unwrap_or(0);
        let mut cmd = match server {
            MongoServer::Mongod { bin } => {
                let mut c = Command::new(bin);
                c.args([
                    "--replSet",
                    MONGOD_SET,
                    "--bind_ip",
                    "127.0.0.1",
                    "--port",
                    &node.port.to_string(),
                    "--dbpath",
                ])
                .arg(&node.data_dir);
                c
            }
            MongoServer::Secantus { bin, .. } => {
                let mut c = Command::new(bin);
                c.args(["--host", "127.0.0.1", "--port", &node.port.to_string(), "--storage-path"]).arg(&node.data_dir);
                c
            }
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_file)
            .map_err(|e| TestkitError::io(&node.log_file, e))?;
        let log2 = log.try_clone().map_err(|e| TestkitError::io(&node.log_file, e))?;
        cmd.current_dir(stack_dir).stdin(Stdio::null()).stdout(log).stderr(log2);
        let mut child = match lifetime {
            // SIGKILL, not SIGTERM: secantusdb takes ~3 s to shut down on
            // SIGTERM, and both servers recover from their journal on restart.
            Lifetime::Attached => process::spawn_attached(cmd, libc::SIGKILL)?,
            Lifetime::Detached => process::spawn_detached(cmd)?,
        };
        let pid = child.id();
        let pidf = pid_file(stack_dir);
        std::fs::write(&pidf, format!("{pid}\n")).map_err(|e| TestkitError::io(&pidf, e))?;
        match wait_ready(&mut child, node, from) {
            Ok(()) => {
                if let MongoServer::Mongod { .. } = server {
                    if let Err(e) = initiate_replica_set(node.port) {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(e);
                    }
                }
                let child = match lifetime {
                    Lifetime::Attached => Some(child),
                    // Not ours to reap: it outlives us in its own session.
                    Lifetime::Detached => None,
                };
                return Ok(StartedMongo { pid, child });
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&pidf);
                let log = std::fs::read(&node.log_file)
                    .map(|b| String::from_utf8_lossy(&b[(from as usize).min(b.len())..]).into_owned())
                    .unwrap_or_default();
                let taken = log.contains("Address already in use") || log.contains("Errno 98");
                if taken && may_move && attempt < ATTEMPTS {
                    node.port = ports::pick_free_port()?;
                    node.uri = uri(node.port, server.replica_set());
                    continue;
                }
                return Err(e);
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Ready = the process lives and answers `ping` on its port. (secantusdb also
/// logs "secantus listening on" when it binds, ~1-2 s after start.)
fn wait_ready(child: &mut Child, node: &MongoNode, _log_from: u64) -> Result<()> {
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(TestkitError::CommandFailed {
                what: format!("MongoDB server on port {}", node.port),
                detail: format!("it exited ({status})\n{}", process::log_tail(&node.log_file, 15)),
            });
        }
        match wire::ping(node.port) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: format!("MongoDB answering ping on port {}", node.port),
                secs: timeout.as_secs(),
                detail: format!("{last}\n{}", process::log_tail(&node.log_file, 15)),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// mongod only: `replSetInitiate` with itself as the one member (harmless if
/// already initiated, e.g. on restart), then wait until it is primary.
fn initiate_replica_set(port: u16) -> Result<()> {
    let config = Bson::Doc(vec![
        ("_id".into(), Bson::Str(MONGOD_SET.into())),
        (
            "members".into(),
            Bson::Array(vec![Bson::Doc(vec![
                ("_id".into(), Bson::Int(0)),
                ("host".into(), Bson::Str(format!("127.0.0.1:{port}"))),
            ])]),
        ),
    ]);
    // The answer is "already initialized" on a restart: not an error.
    let _ = wire::command(port, "admin", vec![("replSetInitiate".into(), config)], Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(reply) = wire::command(port, "admin", vec![("hello".into(), Bson::Int(1))], Duration::from_secs(2)) {
            if wire::get(&reply, "isWritablePrimary") == Some(&Field::Bool(true)) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: format!("mongod on port {port} becoming replica set primary"),
                secs: 30,
                detail: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
