//! Starts a temporary stack, prints how long it took and the health of each
//! server, then stops it: `cargo run -p fwdb-testkit --example stack_up --
//! [--replicas N] [--no-mongo] [--runs K]`. Used to measure start-up time.

use std::time::Instant;

use fwdb_testkit::{Stack, StackOptions};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<usize>().ok())
    };
    let opts = StackOptions {
        replicas: value("--replicas").unwrap_or(2),
        mongo: !args.iter().any(|a| a == "--no-mongo"),
        ..Default::default()
    };
    let mut ok = true;
    for run in 1..=value("--runs").unwrap_or(1) {
        let t = Instant::now();
        let stack = match Stack::start(opts.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let up = t.elapsed();
        for h in stack.health() {
            ok &= h.ok;
            println!("run {run}: {:<9} {:<16} {} {}", h.name, h.addr, if h.ok { "ok" } else { "FAIL" }, h.detail);
        }
        let t = Instant::now();
        if let Err(e) = stack.stop() {
            eprintln!("error: {e}");
            ok = false;
        }
        println!("run {run}: up in {:.2} s, stopped in {:.2} s", up.as_secs_f64(), t.elapsed().as_secs_f64());
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
