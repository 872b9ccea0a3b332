//! `fwdb`: operate the Fashion Wallet databases. A thin layer over the
//! `fwdb` library: parse the command line, load the configuration, call the
//! library, print the result as text or JSON, choose the exit code.

mod cli;
mod commands;
mod output;
mod serve;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(output::EXIT_ERROR);
        }
    };
    runtime.block_on(commands::run(cli))
}
