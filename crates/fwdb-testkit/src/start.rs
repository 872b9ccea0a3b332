//! Starting a stack: a fresh one (initdb, base backups, MongoDB, in
//! parallel where possible) or one described by an existing stack.json
//! (started again on its data after a crash or `fwdb dev down`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::control;
use crate::error::{Result, TestkitError};
use crate::info::{load, MongoNode, PgNode, StackInfo, TlsFiles};
use crate::mongo;
use crate::pg::{self, PgBinaries, StopMode};
use crate::process::RunAs;
use crate::stack::{random_hex, Node, Stack, StackOptions, State};
use crate::{certs, layout, ports};

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
fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    h.join().unwrap_or_else(|_| {
        Err(TestkitError::CommandFailed { what: what.into(), detail: "the thread panicked".into() })
    })
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
                        layout::remove_own_entries(&dir, &["logs", ".lock", "owner"]);
                        let user = RunAs::detect()?;
                        let r = Self::start_fresh(&opts, dir.clone(), false, bins, user);
                        if r.is_err() {
                            layout::remove_own_entries(&dir, &["logs", ".lock", "owner"]);
                        }
                        r?
                    }
                }
            }
        };
        eprintln!("fwdb-testkit: stack up in {:.1} s ({})", t0.elapsed().as_secs_f64(), stack.summary());
        Ok(stack)
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
            admin_user: "fwdb_admin".into(),
            admin_password: random_hex(16),
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
            state: Mutex::new(State { children: launched.into_children(), paused: Default::default(), stopped: false }),
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
            state: Mutex::new(State { children: launched.into_children(), paused: Default::default(), stopped: false }),
        })
    }
}
