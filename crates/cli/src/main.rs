//! `acr-webhook`: the project's native command line.
//!
//! Subcommands live in the library (`acr_webhook_cli::<name>`), each with a `clap::Args`
//! struct and a `run` function; to add one, add a variant to [`Command`] and an arm to
//! [`run`].

use acr_webhook_cli::{compose, export, init, instantiate_timing, precompile, replay, up};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The acr-webhook command line.
#[derive(Debug, Parser)]
#[command(name = "acr-webhook", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the application described by a spin.toml, like `spin up`.
    Up(up::UpArgs),
    /// Create the Cosmos DB database and container the app's variables name (idempotent).
    Init(init::InitArgs),
    /// Send again the deliveries an ACR webhook recorded (`az acr webhook list-events -o json`):
    /// the failed ones, or every one with --all.
    Replay(replay::ReplayArgs),
    /// Write every stored event of the filters, newest first, as CSV or NDJSON, read through
    /// the read API (the read key comes from ACR_WEBHOOK_READ_KEY).
    Export(export::ExportArgs),
    /// Time pre-instantiation and per-request instantiate + handle without I/O (benchmarks).
    #[command(hide = true)]
    BenchInstantiate(instantiate_timing::InstantiateTimingArgs),
    /// Compile a component and write wasmtime's serialized form to stdout (`up` runs it as a
    /// child process so that the server never holds the compiler's memory).
    #[command(name = precompile::SUBCOMMAND, hide = true)]
    Precompile(precompile::PrecompileArgs),
    /// Plug a Spin variables adapter into the app: the component for stock wasi:http hosts
    /// (`make wasi-http`).
    #[command(hide = true)]
    Compose(compose::ComposeArgs),
}

/// Dispatches to the subcommand.
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up::run(args),
        Command::Init(args) => init::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Export(args) => export::run(args),
        Command::BenchInstantiate(args) => instantiate_timing::run(args),
        Command::Precompile(args) => precompile::run(args),
        Command::Compose(args) => compose::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
