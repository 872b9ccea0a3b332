//! `fwdb-bench pool`: the pool-crate comparison behind docs/pool-choice.md
//! (the cost of one checkout and return, warm pools, 1 / 16 / 64 tasks):
//! deadpool-postgres with each recycling method, fwdb's `PgPool`, and bb8
//! when built with `--features fwdb/bb8,fwdb/bb8-postgres`.
//! Usage: `cargo run --release -p fwdb-bench [--features fwdb/bb8,fwdb/bb8-postgres] -- pool [--checkouts N (64000)]`.

use crate::{plain_tcp, Res};
use fwdb_testkit::{Stack, StackOptions};

const USAGE: &str = "usage: fwdb-bench pool [--checkouts N per cell (64000)]";

pub fn main(args: Vec<String>) -> Res<()> {
    let mut checkouts = 64_000usize;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--checkouts" => checkouts = it.next().ok_or(USAGE)?.parse().map_err(|e| format!("--checkouts: {e}"))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    let stack = Stack::start(StackOptions { replicas: 0, mongo: false, ..Default::default() })?;
    let res = (|| -> Res<()> {
        let db = stack.create_database()?;
        let mut cfg = stack.info().config(&db, &db, &[])?;
        plain_tcp(&mut cfg);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let costs = rt.block_on(fwdb::measure_pool_checkout(&cfg.postgres, 10, &[1, 16, 64], checkouts))?;
        println!("| pool | tasks | checkouts | ns per checkout |\n| --- | ---: | ---: | ---: |");
        for c in costs {
            println!("| {} | {} | {} | {:.0} |", c.pool, c.tasks, c.checkouts, c.nanos_per_checkout);
        }
        Ok(())
    })();
    let _ = stack.stop();
    res
}
