//! `Stack`: the operations tests use on a running stack (databases, SQL,
//! fault injection) and stopping it. Starting one is in `start.rs`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::certs;
use crate::control::{self, stop_servers};
use crate::error::{Result, TestkitError};
use crate::info::{Lifetime, MongoKind, PgNode, StackInfo};
use crate::mongo::{self, MongoServer};
use crate::pg::{self, PgBinaries, StopMode};
use crate::process::{self, RunAs};

/// How to start a stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Where the stack lives. `None`: a fresh folder under
    /// `$TMPDIR/fwdb-testkit`, deleted by `stop`.
    pub dir: Option<PathBuf>,
    /// Streaming replicas of the primary (default 2).
    pub replicas: usize,
    /// Start a MongoDB server too (default true).
    pub mongo: bool,
    pub lifetime: Lifetime,
    /// Ports to try first, in order: primary, replicas..., MongoDB. A port
    /// that turns out to be taken is replaced by a free one (tests use this to
    /// show that a taken port is skipped). Empty: free ports picked at random.
    pub preferred_ports: Vec<u16>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { dir: None, replicas: 2, mongo: true, lifetime: Lifetime::Attached, preferred_ports: Vec::new() }
    }
}

/// A server of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Primary,
    /// `info().replicas[i]` (0-based; named "replica{i+1}").
    Replica(usize),
    Mongo,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Primary => write!(f, "primary"),
            Node::Replica(i) => write!(f, "replica{}", i + 1),
            Node::Mongo => write!(f, "mongo"),
        }
    }
}

/// A running local stack. Attached stacks stop when dropped.
pub struct Stack {
    pub(crate) info: StackInfo,
    pub(crate) bins: PgBinaries,
    pub(crate) user: RunAs,
    pub(crate) mongo_server: Option<MongoServer>,
    /// Created under $TMPDIR by us: stopped with an immediate shutdown and deleted.
    pub(crate) temp: bool,
    pub(crate) state: Mutex<State>,
}

pub(crate) struct State {
    /// Attached servers: our children, reaped when stopped.
    pub(crate) children: HashMap<Node, Child>,
    /// Nodes stopped with SIGSTOP (they would hang a psql).
    pub(crate) paused: std::collections::HashSet<Node>,
    pub(crate) stopped: bool,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack").field("info", &self.info).field("temp", &self.temp).finish_non_exhaustive()
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Stack {
    /// "primary :p, replicas :p1 :p2, secantusdb :pm, in <dir>"
    pub fn summary(&self) -> String {
        let i = &self.info;
        let mut s = format!("PostgreSQL {} primary :{}", i.pg_version, i.primary.port);
        if !i.replicas.is_empty() {
            s.push_str(", replicas");
            for r in &i.replicas {
                s.push_str(&format!(" :{}", r.port));
            }
        }
        if let Some(m) = &i.mongo {
            s.push_str(&format!(", {} :{}", m.kind.describe(), m.port));
        }
        s.push_str(&format!(", in {}", i.dir.display()));
        s
    }

    pub fn info(&self) -> &StackInfo {
        &self.info
    }

    pub fn dir(&self) -> &Path {
        &self.info.dir
    }

    pub fn lifetime(&self) -> Lifetime {
        self.info.lifetime
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every server. A temporary stack gets an immediate shutdown and
    /// its folder is deleted; a stack in a chosen folder gets a fast (clean)
    /// shutdown and keeps its data. Idempotent; also done on drop for
    /// attached stacks.
    pub fn stop(&self) -> Result<()> {
        let mut st = self.state();
        self.stop_locked(&mut st)
    }

    /// `stop` for an `atexit` hook: it must not wait for a lock that a thread
    /// frozen by `exit` may hold. Without the lock, the servers are found
    /// through their pid files instead.
    pub(crate) fn stop_at_exit(&self) {
        match self.state.try_lock() {
            Ok(mut st) => drop(self.stop_locked(&mut st)),
            Err(std::sync::TryLockError::Poisoned(p)) => drop(self.stop_locked(&mut p.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => {
                let mut st = State { children: HashMap::new(), paused: Default::default(), stopped: false };
                drop(self.stop_locked(&mut st));
            }
        }
    }

    fn stop_locked(&self, st: &mut State) -> Result<()> {
        if st.stopped {
            return Ok(());
        }
        st.stopped = true;
        let (mode, grace) = if self.temp {
            (StopMode::Immediate, Duration::from_secs(5))
        } else {
            (StopMode::Fast, Duration::from_secs(30))
        };
        stop_servers(&self.info, &mut st.children, mode, grace);
        control::kill_strays(&self.info.dir);
        if self.temp {
            std::fs::remove_dir_all(&self.info.dir).map_err(|e| TestkitError::io(&self.info.dir, e))?;
        } else {
            control::clear_stale_files(&self.info);
        }
        Ok(())
    }

    fn pg_node(&self, node: Node) -> Result<&PgNode> {
        match node {
            Node::Primary => Ok(&self.info.primary),
            Node::Replica(i) => self.info.replicas.get(i).ok_or_else(|| TestkitError::NoSuchNode {
                node: node.to_string(),
                why: format!("the stack has {} replica(s); Replica(i) is 0-based", self.info.replicas.len()),
            }),
            Node::Mongo => {
                Err(TestkitError::NoSuchNode { node: "mongo".into(), why: "it is not a PostgreSQL server".into() })
            }
        }
    }

    fn check_node(&self, node: Node) -> Result<()> {
        match node {
            Node::Mongo if self.info.mongo.is_none() => Err(TestkitError::NoSuchNode {
                node: "mongo".into(),
                why: "the stack was started with mongo: false".into(),
            }),
            Node::Mongo => Ok(()),
            _ => self.pg_node(node).map(|_| ()),
        }
    }

    /// A new empty database on the primary, owned by the admin login, with a
    /// unique name (`t_<16 hex>`): each test gets its own.
    /// It exists on the running replicas too when this returns, so reads
    /// routed to a replica find it.
    pub fn create_database(&self) -> Result<String> {
        let name = format!("t_{}", random_hex(8));
        self.psql(Node::Primary, "postgres", &format!("CREATE DATABASE {name} OWNER {}", self.info.admin_user))?;
        self.wait_for_replicas()?;
        Ok(name)
    }

    /// Creates database `name` (owned by the admin login) unless it exists, and
    /// waits for the replicas to have it. `name` is a fixed identifier of
    /// ours (`fashion_wallet`), checked here because it is interpolated.
    pub fn ensure_database(&self, name: &str) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(TestkitError::Usage(format!("`{name}` is not a plain database name (a-z, 0-9, _)")));
        }
        let exists =
            self.psql(Node::Primary, "postgres", &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))?;
        if exists.trim().is_empty() {
            self.psql(Node::Primary, "postgres", &format!("CREATE DATABASE {name} OWNER {}", self.info.admin_user))?;
        }
        self.wait_for_replicas()
    }

    /// Waits until every running, unpaused replica has replayed all WAL the
    /// primary had written when called (replicas that were promoted count as
    /// caught up).
    pub fn wait_for_replicas(&self) -> Result<()> {
        let lsn = self.psql(Node::Primary, "postgres", "SELECT pg_current_wal_lsn()")?;
        let targets: Vec<&PgNode> = {
            let st = self.state();
            (0..self.info.replicas.len())
                .filter(|&i| {
                    !st.paused.contains(&Node::Replica(i))
                        && control::pid_of(&self.info, &st.children, Node::Replica(i)).is_some()
                })
                .map(|i| &self.info.replicas[i])
                .collect()
        };
        for r in targets {
            pg::wait_for_sql(
                &self.bins,
                &self.info,
                r.port,
                &format!("SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
                "t",
                &format!("{} replaying the primary's WAL up to {lsn}", r.name),
                Duration::from_secs(30),
            )?;
        }
        Ok(())
    }

    /// Runs `sql` (one or more statements) as the superuser over the unix
    /// socket; returns psql's `-XAtq` output (unaligned, tuples only, `|`
    /// between columns, one row per line).
    pub fn psql(&self, node: Node, db: &str, sql: &str) -> Result<String> {
        let n = self.pg_node(node)?;
        pg::psql(&self.bins, &self.info, n.port, db, sql)
    }

    /// Live pid of a server, if running.
    pub fn pid(&self, node: Node) -> Option<u32> {
        let st = self.state();
        control::pid_of(&self.info, &st.children, node)
    }

    /// Clean stop of one server (PostgreSQL fast shutdown, MongoDB SIGTERM).
    pub fn stop_node(&self, node: Node) -> Result<()> {
        self.check_node(node)?;
        let mut st = self.state();
        if let Some(pid) = control::pid_of(&self.info, &st.children, node) {
            control::stop_pids(&[(node, pid)], StopMode::Fast, Duration::from_secs(30));
        }
        if let Some(mut c) = st.children.remove(&node) {
            let _ = c.wait();
        }
        st.paused.remove(&node);
        Ok(())
    }

    /// Starts a stopped (or killed) server again on its port.
    pub fn start_node(&self, node: Node) -> Result<()> {
        self.check_node(node)?;
        let mut st = self.state();
        if control::pid_of(&self.info, &st.children, node).is_some() {
            return Ok(());
        }
        st.paused.remove(&node);
        if let Some(mut c) = st.children.remove(&node) {
            let _ = c.wait();
        }
        let lifetime = self.info.lifetime;
        let (pid, child) = match node {
            Node::Mongo => {
                let (Some(srv), Some(m)) = (&self.mongo_server, &self.info.mongo) else {
                    unreachable!("checked by check_node")
                };
                let mut m = m.clone();
                let started = mongo::start(srv, &self.info.dir, &mut m, lifetime, false)?;
                (started.pid, started.child)
            }
            _ => {
                let mut n = self.pg_node(node)?.clone();
                // After a kill, the old backends may hold shared memory for a
                // moment: retry briefly.
                let deadline = Instant::now() + Duration::from_secs(10);
                let started = loop {
                    match pg::start(&self.bins, &self.user, &self.info, &mut n, lifetime, false) {
                        Ok(s) => break s,
                        Err(e) if Instant::now() < deadline && !matches!(e, TestkitError::Spawn { .. }) => {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) => return Err(e),
                    }
                };
                (started.pid, started.child)
            }
        };
        let _ = pid;
        if let Some(c) = child {
            st.children.insert(node, c);
        }
        Ok(())
    }

    /// SIGKILL: a crash. For PostgreSQL the postmaster is killed, then its
    /// orphaned backends are waited for (they exit on their own), so that
    /// `start_node` can follow at once.
    pub fn kill_node(&self, node: Node) -> Result<()> {
        self.check_node(node)?;
        let mut st = self.state();
        if let Some(pid) = control::pid_of(&self.info, &st.children, node) {
            let kids = process::children_of(pid);
            process::signal(pid, libc::SIGKILL);
            process::wait_gone(pid, Duration::from_secs(5));
            for k in kids {
                if !process::wait_gone(k, Duration::from_secs(3)) {
                    process::signal(k, libc::SIGKILL);
                    process::wait_gone(k, Duration::from_secs(2));
                }
            }
        }
        if let Some(mut c) = st.children.remove(&node) {
            let _ = c.wait();
        }
        st.paused.remove(&node);
        Ok(())
    }

    fn running_pid(&self, node: Node) -> Result<u32> {
        self.check_node(node)?;
        let st = self.state();
        control::pid_of(&self.info, &st.children, node)
            .ok_or_else(|| TestkitError::NoSuchNode { node: node.to_string(), why: "it is not running".into() })
    }

    /// SIGSTOP: the server hangs (connections stay open, nothing answers).
    /// PostgreSQL backends are their own session leaders, so each is stopped
    /// individually after the postmaster.
    pub fn pause(&self, node: Node) -> Result<()> {
        let pid = self.running_pid(node)?;
        process::signal(pid, libc::SIGSTOP);
        for k in process::children_of(pid) {
            process::signal(k, libc::SIGSTOP);
        }
        self.state().paused.insert(node);
        // SIGSTOP is delivered asynchronously: return only once the server is
        // really frozen, so a fault test never races the signal.
        let deadline = Instant::now() + Duration::from_secs(5);
        while process::state_of(pid) != Some('T') {
            if Instant::now() > deadline {
                return Err(TestkitError::Timeout {
                    what: format!("{node:?} (pid {pid}) stopping after SIGSTOP"),
                    secs: 5,
                    detail: format!("process state {:?}", process::state_of(pid)),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// SIGCONT: undoes [`pause`](Self::pause).
    pub fn resume(&self, node: Node) -> Result<()> {
        let pid = self.running_pid(node)?;
        for k in process::children_of(pid) {
            process::signal(k, libc::SIGCONT);
        }
        process::signal(pid, libc::SIGCONT);
        self.state().paused.remove(&node);
        Ok(())
    }

    /// Promotes replica `replica` (0-based) to a primary (`pg_ctl promote`)
    /// and waits until it leaves recovery. It keeps its name and `Node`.
    pub fn promote(&self, replica: usize) -> Result<()> {
        let node = self.pg_node(Node::Replica(replica))?.clone();
        let mut cmd = std::process::Command::new(self.bins.tool("pg_ctl"));
        self.user.apply(&mut cmd);
        process::clean_pg_env(&mut cmd);
        cmd.current_dir(&node.data_dir).args(["promote", "-w", "-t", "60", "-s", "-D"]).arg(&node.data_dir);
        process::run(&mut cmd, &format!("pg_ctl promote of {}", node.name))?;
        pg::wait_for_sql(
            &self.bins,
            &self.info,
            node.port,
            "SELECT pg_is_in_recovery()",
            "f",
            &format!("{} leaving recovery", node.name),
            Duration::from_secs(60),
        )
    }

    /// A client certificate for `common_name` signed by the stack's CA;
    /// returns (cert, key) PEM paths. `valid_days` < 0: expired that many days ago.
    pub fn issue_client_cert(&self, common_name: &str, valid_days: i64) -> Result<(PathBuf, PathBuf)> {
        certs::issue_client(&self.info.tls, common_name, valid_days)
    }

    /// Health of every server (`select 1`, MongoDB ping).
    pub fn health(&self) -> Vec<control::ServerHealth> {
        control::health(&self.info)
    }

    /// Which MongoDB server runs, if any.
    pub fn mongo_kind(&self) -> Option<MongoKind> {
        self.info.mongo.as_ref().map(|m| m.kind)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.info.lifetime == Lifetime::Attached {
            let _ = self.stop();
        }
    }
}
