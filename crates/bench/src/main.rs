//! `acr-webhook-bench`: the benchmark behind `make bench` (see BENCHMARKS.md).
//!
//! - `run` (what `make bench` calls): starts the local store, `acr-webhook up` and the
//!   Node.js baseline receiver (with `@azure/cosmos`) on free loopback ports, drives the
//!   bare write, the receiver and the baseline with the same load at each concurrency,
//!   reads each receiver's CPU time and peak RSS from /proc, adds the component figures
//!   (`acr-webhook bench-instantiate`) and the signing bench, and prints one table with
//!   every ratio taken from this one run.
//! - `bare-write`: the native client that sends the same signed creates straight to the
//!   store (the floor); `run` starts it as a child process so that its cost is its own.

mod bare;
mod procfs;
mod run;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The acr-webhook benchmark.
#[derive(Debug, Parser)]
#[command(name = "acr-webhook-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local stack, measure everything, print the table.
    Run(run::RunArgs),
    /// The floor: signed creates straight to the store, prints `BARE_RESULT {json}`.
    BareWrite(bare::BareArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::BareWrite(args) => bare::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
