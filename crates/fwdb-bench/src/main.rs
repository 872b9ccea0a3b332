//! `fwdb-bench postgres`: the repository benchmark (a benchmark, not a timed
//! test). Starts a private local stack, applies the schema, and measures,
//! interleaved round by round (every contender once per round, in turn, the
//! order turning by one each round; ratios are medians of per-round ratios):
//!
//! - point read by primary key, a filtered list of 20 rows, a single insert
//!   (shared.users) at 1, 16 and 64 concurrent tasks, through fwdb's
//!   repository (`UserRepo` on a `PgCluster`, Strong and, with replicas,
//!   Eventual reads; Strong again with `postgres.pool.multiplex = 0`), raw
//!   tokio-postgres with prepared statements (one client per task, and the
//!   tasks sharing 8 clients), sqlx (`PgPool`) and SeaORM;
//! - a bulk insert of 10,000 rows through each, and through COPY FROM STDIN
//!   (tokio-postgres) and `psql \copy`;
//! - pgbench -S -M prepared at the same client counts (the server's ceiling);
//! - a pool checkout, uncontended and contended: bare deadpool-postgres against
//!   `PgCluster::checkout`.
//!
//! Every contender talks plain TCP with a SCRAM password to the same servers.
//! Usage: `cargo run --release -p fwdb-bench -- postgres [--rounds N] [--secs S] [--replicas N]`;
//! `--paired` (paired.rs) measures only the 0.95 target's contenders, in short
//! back-to-back slices, with an interval for each cell; `--pin` (pin.rs);
//! `mongo` and `backup` are in mongo.rs and backup.rs;
//! `mixed` (`postgres --mixed`, mixed.rs): fast reads beside slow ones.
//! The postgres benchmark itself: args.rs, contenders.rs, bulk.rs, postgres.rs.

mod args;
mod backup;
mod bulk;
mod contenders;
mod cpu;
mod mixed;
mod mongo;
mod paired;
mod pin;
mod pool;
mod postgres;
mod raw;

use contenders::{measure, Ctx, Op, Who};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = std::result::Result<T, BoxErr>;

/// Clients the tasks of `Who::RawShared` share: fwdb's default `postgres.pool.multiplex`.
const RAW_SHARED: usize = 8;

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The median of round-by-round ratios: each round's pair ran minutes apart
/// at most, under the same load, so this ratio moves less than the ratio of
/// medians when the machine's load changes between rounds.
fn paired_ratio(v: &[f64], base: &[f64]) -> f64 {
    let ratios: Vec<f64> = v.iter().zip(base).map(|(x, b)| x / b).collect();
    median(&ratios)
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> Res<()> {
    let rest = || std::env::args().skip(2);
    match std::env::args().nth(1).as_deref() {
        Some("mongo") => mongo::main(rest().collect()),
        Some("pool") => pool::main(rest().collect()),
        Some("backup") => backup::main(rest()),
        Some("mixed") => mixed::main(rest().collect()),
        Some("postgres") if rest().any(|a| a == "--mixed") => mixed::main(rest().filter(|a| a != "--mixed").collect()),
        _ => postgres::main(args::args()?),
    }
}

/// The same transport for every contender: plain TCP, SCRAM password, no TLS.
pub(crate) fn plain_tcp(cfg: &mut fwdb::Config) {
    cfg.postgres.tls.mode = fwdb::SslMode::Disable;
    cfg.postgres.tls.ca_file = None;
    cfg.postgres.tls.cert_file = None;
    cfg.postgres.tls.key_file = None;
}
