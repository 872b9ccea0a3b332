//! The command line of `fwdb-bench postgres`.

use crate::Res;

/// The task counts of every cell.
pub(crate) const CONCURRENCY: [usize; 3] = [1, 16, 64];

pub(crate) struct Args {
    pub(crate) rounds: usize,
    pub(crate) secs: Option<f64>,
    pub(crate) replicas: usize,
    /// Only the 0.95 target's contenders, in short back-to-back slices (paired.rs).
    pub(crate) paired: bool,
    /// Servers on one CPU, the client on the other (pin.rs).
    pub(crate) pin: bool,
    /// `postgres.pool.multiplex` of fwdb's cluster (the other fwdb contender has 0).
    pub(crate) multiplex: u32,
    /// The task counts of `--paired` (all of [`CONCURRENCY`] unless `--tasks`).
    pub(crate) tasks: Vec<usize>,
}

impl Args {
    /// Seconds per cell; with `--paired`, per slice (two slices per contender and round).
    pub(crate) fn secs(&self) -> f64 {
        self.secs.unwrap_or(if self.paired { 0.4 } else { 1.0 })
    }
}

pub(crate) const USAGE: &str = "usage: fwdb-bench postgres [--rounds N (3)] [--secs S per cell (1.0)] [--replicas N (2)]
                           [--paired: raw, bare LIFO pool and fwdb Strong (plain, multiplexed) only, slices of --secs (0.4) ordered ABCDDCBA]
                           [--pin: the servers on CPU 1, this client on CPU 0]
                           [--tasks 1,16,64: the task counts of --paired]
                           [--multiplex N (8, the default): postgres.pool.multiplex of fwdb's cluster; \"multiplex 0\" has 0]
       fwdb-bench mixed [--fast N] [--slow N] [--kind sleep,scan,none] [--secs S] [--reps N]   (also: postgres --mixed)
       fwdb-bench mongo [--rounds N (11)] [--ops N (200)]
       fwdb-bench backup [--rows N (1000000)] [--level L] [--rounds N (1)]
       fwdb-bench pool [--checkouts N (64000)]   (bb8 too with --features fwdb/bb8,fwdb/bb8-postgres)
(each subcommand takes --help)";

pub(crate) fn args() -> Res<Args> {
    let mut a = Args {
        rounds: 3,
        secs: None,
        replicas: 2,
        paired: false,
        pin: false,
        multiplex: 8,
        tasks: CONCURRENCY.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    let mut what = None;
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rounds" => a.rounds = it.next().ok_or("--rounds N")?.parse()?,
            "--secs" => a.secs = Some(it.next().ok_or("--secs S")?.parse()?),
            "--paired" => a.paired = true,
            "--pin" => a.pin = true,
            "--multiplex" => a.multiplex = it.next().ok_or("--multiplex N")?.parse()?,
            "--tasks" => {
                let list = it.next().ok_or("--tasks N[,N...]")?;
                a.tasks = list
                    .split(',')
                    .map(|t| t.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--tasks {list}: {e}"))?;
            }
            "--replicas" => a.replicas = it.next().ok_or("--replicas N")?.parse()?,
            "postgres" => what = Some(x),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if what.is_none() {
        return Err(USAGE.into());
    }
    Ok(a)
}
