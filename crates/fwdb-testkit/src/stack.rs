//! `Stack`: starting a whole stack (fresh or on existing data), and the
//! operations tests use on a running one (databases, SQL, fault injection).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::control::{self, stop_servers};
use crate::error::{Result, TestkitError};
use crate::info::{load, Lifetime, MongoKind, MongoNode, PgNode, StackInfo, TlsFiles};
use crate::mongo::{self, MongoServer};
use crate::pg::{self, PgBinaries, StopMode};
use crate::process::{self, RunAs};
use crate::{certs, layout, ports};

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
    info: StackInfo,
    bins: PgBinaries,
    user: RunAs,
    mongo_server: Option<MongoServer>,
    /// Created under $TMPDIR by us: stopped with an immediate shutdown and deleted.
    temp: bool,
    state: Mutex<State>,
}

struct State {
    /// Attached servers: our children, reaped when stopped.
    children: HashMap<Node, Child>,
    stopped: bool,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack").field("info", &self.info).field("temp", &self.temp).finish_non_exhaustive()
    }
}

/// Servers started so far during `start`, so that a failure half-way stops them.
#[derive(Default)]
struct Launched {
    servers: Mutex<Vec<(Node, u32, Option<Child>)>>,
}

impl Launched {
    fn add(&self, node: Node, pid: u32, child: Option<Child>) {
        self.servers.lock().unwrap_or_else(|p| p.into_inner()).push((node, pid, child));
    }

    fn kill_all(&self) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let targets: Vec<(Node, u32)> = servers.iter().map(|(n, p, _)| (*n, *p)).collect();
        control::stop_pids(&targets, StopMode::Immediate, Duration::from_secs(5));
        for (_, _, child) in servers.iter_mut() {
            if let Some(c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        servers.clear();
    }

    fn into_children(self) -> HashMap<Node, Child> {
        let servers = self.servers.into_inner().unwrap_or_else(|p| p.into_inner());
        servers.into_iter().filter_map(|(n, _, c)| Some((n, c?))).collect()
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    h.join().unwrap_or_else(|_| Err(TestkitError::CommandFailed { what: what.into(), detail: "the thread panicked".into() }))
}

fn mkdir(p: &Path, user: &RunAs) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| TestkitError::io(p, e))?;
    user.chown(p)
}

impl Stack {
    /// Starts a stack; prints "stack up in N.N s" to stderr.
    ///
    /// With `dir: Some(d)` where `d/stack.json` exists: if all its servers run,
    /// fails with "already running"; otherwise stops what is left of it and
    /// starts it again on its existing data.
    pub fn start(opts: StackOptions) -> Result<Stack> {
        let t0 = Instant::now();
        let bins = PgBinaries::find()?;
        let stack = match &opts.dir {
            None => {
                layout::sweep_temp_stacks();
                let dir = layout::new_temp_dir()?;
                let user = RunAs::detect()?;
                let r = Self::start_fresh(&opts, dir.clone(), true, bins, user);
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                r?
            }
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| TestkitError::io(d, e))?;
                let dir = d.canonicalize().map_err(|e| TestkitError::io(d, e))?;
                let _lock = layout::lock_dir(&dir)?;
                match load(&dir)? {
                    Some(info) => Self::restart(&opts, info, bins)?,
                    None => {
                        let foreign = layout::foreign_entries(&dir);
                        if !foreign.is_empty() {
                            return Err(TestkitError::NotAStackDir { dir });
                        }
                        // Remains of an interrupted first start: clean them.
                        control::kill_strays(&dir);
                        layout::remove_own_entries(&dir, &["logs", ".lock"]);
                        let user = RunAs::detect()?;
                        let r = Self::start_fresh(&opts, dir.clone(), false, bins, user);
                        if r.is_err() {
                            layout::remove_own_entries(&dir, &["logs", ".lock"]);
                        }
                        r?
                    }
                }
            }
        };
        eprintln!("fwdb-testkit: stack up in {:.1} s ({})", t0.elapsed().as_secs_f64(), stack.summary());
        Ok(stack)
    }

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

    fn start_fresh(opts: &StackOptions, dir: PathBuf, temp: bool, bins: PgBinaries, user: RunAs) -> Result<Stack> {
        layout::validate(&dir)?;
        layout::check_reachable(&dir, &user)?;
        user.chown(&dir)?;
        let id = random_hex(3);
        for sub in ["sock", "logs", "wal_archive", "pg", "tls"] {
            mkdir(&dir.join(sub), &user)?;
        }

        let mut preferred = opts.preferred_ports.iter().copied();
        let mut port = || preferred.next().map(Ok).unwrap_or_else(ports::pick_free_port);
        let pg_node = |name: &str, port: u16| PgNode {
            name: name.to_string(),
            port,
            data_dir: dir.join("pg").join(name),
            log_file: dir.join("logs").join(format!("{name}.log")),
            pid: None,
        };
        let primary = pg_node("primary", port()?);
        let mut replicas = Vec::new();
        for i in 0..opts.replicas {
            replicas.push(pg_node(&format!("replica{}", i + 1), port()?));
        }
        let mongo_server = opts.mongo.then(mongo::choose);
        let mongo_node = match &mongo_server {
            Some(srv) => {
                let p = port()?;
                Some(MongoNode {
                    kind: srv.kind(),
                    port: p,
                    uri: mongo::uri(p, srv.replica_set()),
                    replica_set: srv.replica_set().to_string(),
                    data_dir: dir.join("mongo"),
                    log_file: dir.join("logs").join("mongo.log"),
                    pid: None,
                })
            }
            None => None,
        };

        let tls: TlsFiles = certs::generate(&dir.join("tls"), &id, "fwdb_app")?;
        // The server reads these: owned by it, 0600 (PostgreSQL insists on
        // that for the key).
        for f in [&tls.server_cert, &tls.server_key, &tls.ca_cert] {
            user.chown(f)?;
        }

        let mut info = StackInfo {
            id,
            dir: dir.clone(),
            lifetime: opts.lifetime,
            owner_pid: std::process::id(),
            pg_version: bins.version,
            pg_bin_dir: bins.bin_dir.clone(),
            run_as_user: user.name.clone(),
            host: "127.0.0.1".into(),
            socket_dir: dir.join("sock"),
            superuser: "postgres".into(),
            superuser_password: random_hex(16),
            app_user: "fwdb_app".into(),
            app_password: random_hex(16),
            replication_user: "replicator".into(),
            replication_password: random_hex(16),
            primary,
            replicas,
            archive_dir: dir.join("wal_archive"),
            tls,
            mongo: mongo_node,
        };
        // Written before any server starts, so that `down` (or the next
        // start) can find them even if this process dies half-way.
        info.save()?;

        let launched = Launched::default();
        let lifetime = opts.lifetime;
        let result = std::thread::scope(|s| -> Result<()> {
            // MongoDB (and a first-time venv install) in parallel with initdb.
            let mongo_thread = match (&mongo_server, info.mongo.clone()) {
                (Some(srv), Some(mut node)) => {
                    let (dir, launched) = (&dir, &launched);
                    Some(s.spawn(move || -> Result<MongoNode> {
                        mongo::ensure_secantus(srv)?;
                        let started = mongo::start(srv, dir, &mut node, lifetime, true)?;
                        node.pid = Some(started.pid);
                        launched.add(Node::Mongo, started.pid, started.child);
                        Ok(node)
                    }))
                }
                _ => None,
            };

            let pg_result = (|| -> Result<()> {
                pg::initdb(&bins, &user, &info)?;
                pg::configure_primary(&info)?;
                let mut primary = info.primary.clone();
                let started = pg::start(&bins, &user, &info, &mut primary, lifetime, true)?;
                primary.pid = Some(started.pid);
                launched.add(Node::Primary, started.pid, started.child);
                info.primary = primary;
                info.save()?;
                pg::bootstrap_primary(&bins, &info)?;

                // Both base backups (and replica starts) in parallel.
                let handles: Vec<_> = info
                    .replicas
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, mut r)| {
                        let (snapshot, bins, user, launched) = (info.clone(), &bins, &user, &launched);
                        s.spawn(move || -> Result<PgNode> {
                            pg::basebackup(bins, user, &snapshot, &r)?;
                            let started = pg::start(bins, user, &snapshot, &mut r, lifetime, true)?;
                            r.pid = Some(started.pid);
                            launched.add(Node::Replica(i), started.pid, started.child);
                            Ok(r)
                        })
                    })
                    .collect();
                let mut first_err = None;
                let mut replicas = Vec::new();
                for h in handles {
                    match join(h, "starting a replica") {
                        Ok(r) => replicas.push(r),
                        Err(e) => first_err = first_err.or(Some(e)),
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
                info.replicas = replicas;
                pg::wait_streaming(&bins, &info, info.replicas.len(), Duration::from_secs(60))
            })();

            let mongo_result = mongo_thread.map(|h| join(h, "starting MongoDB"));
            pg_result?;
            if let Some(m) = mongo_result {
                info.mongo = Some(m?);
            }
            Ok(())
        });

        if let Err(e) = result.and_then(|_| info.save()) {
            launched.kill_all();
            control::kill_strays(&dir);
            return Err(e);
        }
        Ok(Stack {
            info,
            bins,
            user,
            mongo_server,
            temp,
            state: Mutex::new(State { children: launched.into_children(), stopped: false }),
        })
    }

    /// Starts a stack described by an existing stack.json again.
    fn restart(opts: &StackOptions, mut info: StackInfo, bins: PgBinaries) -> Result<Stack> {
        let dir = info.dir.clone();
        let st = control::status(&dir)?;
        if st.all_running() {
            return Err(TestkitError::AlreadyRunning { dir });
        }
        let unrecoverable = |reason: String| TestkitError::Unrecoverable { dir: dir.clone(), reason };
        if info.replicas.len() != opts.replicas || info.mongo.is_some() != opts.mongo {
            return Err(unrecoverable(format!(
                "it was created with {} replica(s) and {}, not {} and {}",
                info.replicas.len(),
                if info.mongo.is_some() { "MongoDB" } else { "no MongoDB" },
                opts.replicas,
                if opts.mongo { "MongoDB" } else { "no MongoDB" },
            )));
        }
        if info.pg_version != bins.version {
            return Err(unrecoverable(format!(
                "its data is for PostgreSQL {}, the binaries found are version {}",
                info.pg_version, bins.version
            )));
        }
        for node in info.pg_nodes() {
            if !node.data_dir.join("PG_VERSION").is_file() {
                return Err(unrecoverable(format!("{} has no data in {}", node.name, node.data_dir.display())));
            }
        }
        // Some servers are dead: stop the rest and clear what the crash left.
        if st.any_running() {
            control::down(&dir)?;
        }
        control::clear_stale_files(&info);

        let user = RunAs::from_name(&info.run_as_user)?;
        let mongo_server = match info.mongo.as_ref().map(|m| m.kind) {
            None => None,
            Some(kind) => {
                let srv = mongo::choose();
                if srv.kind() != kind {
                    return Err(unrecoverable(format!(
                        "its MongoDB data was made by {}, but now {} would run",
                        kind.describe(),
                        srv.kind().describe()
                    )));
                }
                Some(srv)
            }
        };
        info.lifetime = opts.lifetime;
        info.owner_pid = std::process::id();
        info.pg_bin_dir = bins.bin_dir.clone();

        let launched = Launched::default();
        let lifetime = opts.lifetime;
        let result = std::thread::scope(|s| -> Result<()> {
            let mongo_thread = match (&mongo_server, info.mongo.clone()) {
                (Some(srv), Some(mut node)) => {
                    let (dir, launched) = (&dir, &launched);
                    Some(s.spawn(move || -> Result<MongoNode> {
                        mongo::ensure_secantus(srv)?;
                        let started = mongo::start(srv, dir, &mut node, lifetime, true)?;
                        node.pid = Some(started.pid);
                        launched.add(Node::Mongo, started.pid, started.child);
                        Ok(node)
                    }))
                }
                _ => None,
            };
            let pg_result = (|| -> Result<()> {
                let mut primary = info.primary.clone();
                let started = pg::start(&bins, &user, &info, &mut primary, lifetime, true)?;
                primary.pid = Some(started.pid);
                launched.add(Node::Primary, started.pid, started.child);
                info.primary = primary;
                let mut replicas = Vec::new();
                for (i, mut r) in info.replicas.clone().into_iter().enumerate() {
                    // The primary may have moved to another port.
                    pg::configure_replica(&info, &r)?;
                    let started = pg::start(&bins, &user, &info, &mut r, lifetime, true)?;
                    r.pid = Some(started.pid);
                    launched.add(Node::Replica(i), started.pid, started.child);
                    replicas.push(r);
                }
                info.replicas = replicas;
                pg::wait_streaming(&bins, &info, info.replicas.len(), Duration::from_secs(60))
            })();
            let mongo_result = mongo_thread.map(|h| join(h, "starting MongoDB"));
            pg_result?;
            if let Some(m) = mongo_result {
                info.mongo = Some(m?);
            }
            Ok(())
        });
        if let Err(e) = result.and_then(|_| info.save()) {
            launched.kill_all();
            control::kill_strays(&dir);
            return Err(unrecoverable(e.to_string()));
        }
        Ok(Stack {
            info,
            bins,
            user,
            mongo_server,
            temp: false,
            state: Mutex::new(State { children: launched.into_children(), stopped: false }),
        })
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
        if st.stopped {
            return Ok(());
        }
        st.stopped = true;
        let (mode, grace) = if self.temp { (StopMode::Immediate, Duration::from_secs(5)) } else { (StopMode::Fast, Duration::from_secs(30)) };
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
            Node::Mongo => Err(TestkitError::NoSuchNode { node: "mongo".into(), why: "it is not a PostgreSQL server".into() }),
        }
    }

    fn check_node(&self, node: Node) -> Result<()> {
        match node {
            Node::Mongo if self.info.mongo.is_none() => {
                Err(TestkitError::NoSuchNode { node: "mongo".into(), why: "the stack was started with mongo: false".into() })
            }
            Node::Mongo => Ok(()),
            _ => self.pg_node(node).map(|_| ()),
        }
    }

    /// A new empty database on the primary, owned by the app user, with a
    /// unique name (`t_<16 hex>`): each test gets its own.
    pub fn create_database(&self) -> Result<String> {
        let name = format!("t_{}", random_hex(8));
        self.psql(Node::Primary, "postgres", &format!("CREATE DATABASE {name} OWNER {}", self.info.app_user))?;
        Ok(name)
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
        Ok(())
    }

    /// Starts a stopped (or killed) server again on its port.
    pub fn start_node(&self, node: Node) -> Result<()> {
        self.check_node(node)?;
        let mut st = self.state();
        if control::pid_of(&self.info, &st.children, node).is_some() {
            return Ok(());
        }
        if let Some(mut c) = st.children.remove(&node) {
            let _ = c.wait();
        }
        let lifetime = self.info.lifetime;
        let (pid, child) = match node {
            Node::Mongo => {
                let (Some(srv), Some(m)) = (&self.mongo_server, &self.info.mongo) else { unreachable!("checked by check_node") };
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
        Ok(())
    }

    /// SIGCONT: undoes [`pause`](Self::pause).
    pub fn resume(&self, node: Node) -> Result<()> {
        let pid = self.running_pid(node)?;
        for k in process::children_of(pid) {
            process::signal(k, libc::SIGCONT);
        }
        process::signal(pid, libc::SIGCONT);
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
