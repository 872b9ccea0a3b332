//! Operating on a stack folder from any process: `status`, `down`, `purge`,
//! health checks. These read stack.json and the pid files, so they work on a
//! detached stack started by an earlier `fwdb dev up` as well as on a live
//! attached one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Result, TestkitError};
use crate::info::{load, Lifetime, MongoKind, StackInfo, STACK_JSON};
use crate::pg::{self, PgBinaries, StopMode};
use crate::process;
use crate::{layout, mongo, probe, wire, Node};

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    Postgres,
    Mongod,
    Secantus,
}

/// What `fwdb dev status` says of a server.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// The process exists and answered a probe.
    #[serde(rename = "running")]
    Running,
    /// The process exists but did not answer within the probe's timeout
    /// (frozen, hung, or still starting).
    #[serde(rename = "not answering")]
    NotAnswering,
    #[serde(rename = "down")]
    Down,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Running => "running",
            ServerState::NotAnswering => "not answering",
            ServerState::Down => "down",
        }
    }
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// "primary", "replica1", ..., "mongo".
    pub name: String,
    pub kind: ServerKind,
    pub port: u16,
    pub pid: Option<u32>,
    /// The server's process exists (it may still not answer: see `state`).
    pub running: bool,
    pub state: ServerState,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct StackStatus {
    pub dir: PathBuf,
    /// False when the folder has no stack.json.
    pub exists: bool,
    pub lifetime: Option<Lifetime>,
    pub servers: Vec<ServerStatus>,
    /// Server processes working in the folder that stack.json does not
    /// account for (left by a crash); `down` stops them.
    pub strays: Vec<u32>,
}

impl StackStatus {
    /// Every server's process exists (whether it answers or not).
    pub fn all_running(&self) -> bool {
        self.exists && !self.servers.is_empty() && self.servers.iter().all(|s| s.running)
    }

    /// Every server's process exists and answered its probe.
    pub fn all_answering(&self) -> bool {
        self.all_running() && self.servers.iter().all(|s| s.state == ServerState::Running)
    }

    pub fn any_running(&self) -> bool {
        self.servers.iter().any(|s| s.running) || !self.strays.is_empty()
    }
}

/// Each server of the stack in `dir`: pid, port, and whether it runs and
/// answers (each running server is probed, all at once, so a frozen one
/// costs one probe timeout, not one per server).
pub fn status(dir: &Path) -> Result<StackStatus> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Some(info) = load(&dir)? else {
        let strays = stray_servers(&dir, &[]);
        return Ok(StackStatus { dir, exists: false, lifetime: None, servers: Vec::new(), strays });
    };
    let mut found: Vec<(String, ServerKind, u16, Option<u32>)> = Vec::new();
    for node in info.pg_nodes() {
        found.push((node.name.clone(), ServerKind::Postgres, node.port, pg::running_pid(&node.data_dir)));
    }
    if let Some(m) = &info.mongo {
        let kind = match m.kind {
            MongoKind::Mongod => ServerKind::Mongod,
            MongoKind::Secantus => ServerKind::Secantus,
        };
        found.push(("mongo".into(), kind, m.port, mongo::running_pid(&dir, m)));
    }
    let servers: Vec<ServerStatus> = std::thread::scope(|scope| {
        let probes: Vec<_> = found
            .iter()
            .map(|(_, kind, port, pid)| {
                let (info, kind, port, running) = (&info, kind.clone(), *port, pid.is_some());
                scope.spawn(move || running && answers(info, &kind, port))
            })
            .collect();
        found
            .into_iter()
            .zip(probes)
            .map(|((name, kind, port, pid), probe)| {
                let answering = probe.join().unwrap_or(false);
                let state = match (pid.is_some(), answering) {
                    (false, _) => ServerState::Down,
                    (true, true) => ServerState::Running,
                    (true, false) => ServerState::NotAnswering,
                };
                ServerStatus { name, kind, port, pid, running: pid.is_some(), state }
            })
            .collect()
    });
    let known: Vec<u32> = servers.iter().filter_map(|s| s.pid).collect();
    let strays = stray_servers(&dir, &known);
    Ok(StackStatus { dir, exists: true, lifetime: Some(info.lifetime), servers, strays })
}

fn answers(info: &StackInfo, kind: &ServerKind, port: u16) -> bool {
    match kind {
        ServerKind::Postgres => probe::postgres_answers(info, port, probe::PROBE_TIMEOUT),
        ServerKind::Mongod | ServerKind::Secantus => probe::mongo_answers(port, probe::PROBE_TIMEOUT),
    }
}

/// Server processes in `dir` not in `known` nor children of a known one.
fn stray_servers(dir: &Path, known: &[u32]) -> Vec<u32> {
    let kids: Vec<u32> = known.iter().flat_map(|&p| process::children_of(p)).collect();
    process::processes_mentioning(dir)
        .into_iter()
        .filter(|p| p.is_server() && !known.contains(&p.pid) && !kids.contains(&p.pid))
        .map(|p| p.pid)
        .collect()
}

/// Stops everything listed in `dir/stack.json` (PostgreSQL: SIGINT, which is
/// what `pg_ctl stop -m fast` sends, then SIGKILL after 30 s; MongoDB: SIGTERM
/// then SIGKILL), then any other server process still working in the folder,
/// and removes stale pid files and sockets. The data stays: see [`purge`].
pub fn down(dir: &Path) -> Result<()> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if let Some(info) = load(&dir)? {
        stop_servers(&info, &mut HashMap::new(), StopMode::Fast, Duration::from_secs(30));
        clear_stale_files(&info);
    }
    kill_strays(&dir);
    Ok(())
}

/// [`down`], then deletes the stack folder and its data.
pub fn purge(dir: &Path) -> Result<()> {
    down(dir)?;
    if !dir.exists() {
        return Ok(());
    }
    let foreign = layout::foreign_entries(dir);
    if !dir.join(STACK_JSON).exists() && !foreign.is_empty() {
        return Err(TestkitError::NotAStackDir { dir: dir.to_path_buf() });
    }
    layout::remove_own_entries(dir, &[]);
    if foreign.is_empty() {
        std::fs::remove_dir(dir).map_err(|e| TestkitError::io(dir, e))?;
    }
    Ok(())
}

pub(crate) fn kill_strays(dir: &Path) {
    for p in process::processes_mentioning(dir) {
        if p.is_server() {
            process::signal(p.pid, libc::SIGKILL);
            process::wait_gone(p.pid, Duration::from_secs(5));
        }
    }
}

pub(crate) fn clear_stale_files(info: &StackInfo) {
    for node in info.pg_nodes() {
        pg::clear_stale(info, node);
    }
    if let Some(m) = &info.mongo {
        if mongo::running_pid(&info.dir, m).is_none() {
            let _ = std::fs::remove_file(mongo::pid_file(&info.dir));
        }
    }
}

/// The pid of `node`'s server: our child if we hold one, else from its pid file.
pub(crate) fn pid_of(info: &StackInfo, children: &HashMap<Node, Child>, node: Node) -> Option<u32> {
    if let Some(c) = children.get(&node) {
        return process::is_alive(c.id()).then_some(c.id());
    }
    match node {
        Node::Primary => pg::running_pid(&info.primary.data_dir),
        Node::Replica(i) => pg::running_pid(&info.replicas.get(i)?.data_dir),
        Node::Mongo => mongo::running_pid(&info.dir, info.mongo.as_ref()?),
    }
}

/// Stops the servers of `info`: replicas and MongoDB together, then the
/// primary (so that a fast shutdown does not wait on connected standbys).
/// Children we hold are reaped.
pub(crate) fn stop_servers(info: &StackInfo, children: &mut HashMap<Node, Child>, mode: StopMode, grace: Duration) {
    let mut first: Vec<Node> = (0..info.replicas.len()).map(Node::Replica).collect();
    if info.mongo.is_some() {
        first.push(Node::Mongo);
    }
    let phases: Vec<Vec<Node>> = match mode {
        StopMode::Immediate => vec![first.into_iter().chain([Node::Primary]).collect()],
        StopMode::Fast => vec![first, vec![Node::Primary]],
    };
    for phase in phases {
        let targets: Vec<(Node, u32)> = phase.iter().filter_map(|&n| Some((n, pid_of(info, children, n)?))).collect();
        stop_pids(&targets, mode, grace);
        for n in phase {
            if let Some(mut c) = children.remove(&n) {
                let _ = c.kill(); // no-op when already exited
                let _ = c.wait();
            }
        }
    }
}

/// Signals every target at once, then waits for them all; SIGKILL after
/// `grace`. PostgreSQL backends are waited for too.
pub(crate) fn stop_pids(targets: &[(Node, u32)], mode: StopMode, grace: Duration) {
    let kids: Vec<u32> =
        targets.iter().filter(|(n, _)| *n != Node::Mongo).flat_map(|(_, p)| process::children_of(*p)).collect();
    for &(node, pid) in targets {
        let sig = match (node, mode) {
            (Node::Mongo, StopMode::Fast) => libc::SIGTERM,
            (Node::Mongo, StopMode::Immediate) => libc::SIGKILL,
            (_, StopMode::Fast) => libc::SIGINT,
            (_, StopMode::Immediate) => libc::SIGQUIT,
        };
        process::signal(pid, sig);
    }
    // A paused (SIGSTOPped) server only acts on the signal once continued.
    for &(_, pid) in targets {
        process::signal(pid, libc::SIGCONT);
    }
    for &k in &kids {
        process::signal(k, libc::SIGCONT);
    }
    let deadline = Instant::now() + grace;
    for &(_, pid) in targets {
        let left = deadline.saturating_duration_since(Instant::now());
        if !process::wait_gone(pid, left) {
            process::signal(pid, libc::SIGKILL);
            process::wait_gone(pid, Duration::from_secs(5));
        }
    }
    for k in kids {
        if !process::wait_gone(k, Duration::from_millis(500)) {
            process::signal(k, libc::SIGKILL);
            process::wait_gone(k, Duration::from_secs(2));
        }
    }
}

/// One server's answer to a trivial query.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ServerHealth {
    pub name: String,
    pub addr: String,
    pub ok: bool,
    /// "select 1 -> 1", "ping ok", or the error.
    pub detail: String,
    pub millis: u64,
}

/// `select 1` on every PostgreSQL server (psql over the socket), `ping` on
/// MongoDB.
pub fn health(info: &StackInfo) -> Vec<ServerHealth> {
    let bins = PgBinaries { bin_dir: info.pg_bin_dir.clone(), version: info.pg_version };
    let mut out = Vec::new();
    for node in info.pg_nodes() {
        let t = Instant::now();
        let r = pg::psql(&bins, info, node.port, "postgres", "select 1");
        let (ok, detail) = match r {
            Ok(v) if v.trim() == "1" => (true, "select 1 -> 1".to_string()),
            Ok(v) => (false, format!("select 1 -> {v:?}")),
            Err(e) => (false, e.to_string()),
        };
        out.push(ServerHealth {
            name: node.name.clone(),
            addr: format!("{}:{}", info.host, node.port),
            ok,
            detail,
            millis: t.elapsed().as_millis() as u64,
        });
    }
    if let Some(m) = &info.mongo {
        let t = Instant::now();
        let (ok, detail) = match wire::ping(m.port) {
            Ok(()) => (true, "ping ok".to_string()),
            Err(e) => (false, format!("ping failed: {e}")),
        };
        out.push(ServerHealth {
            name: "mongo".into(),
            addr: format!("{}:{}", info.host, m.port),
            ok,
            detail,
            millis: t.elapsed().as_millis() as u64,
        });
    }
    out
}
