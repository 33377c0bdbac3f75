//! The `strata` binary: parses the command line, sets up logging on stderr
//! (`RUST_LOG`), reads the storage settings, runs one subcommand and maps the
//! outcome to an exit code (0 ok, 1 failure, 2 invalid input).
//!
//! `backend.rs` is the composition root; the other modules are one subcommand
//! each, plus `output.rs` (writers and formatting) and `exit.rs` (exit codes).

mod backend;
mod bench;
#[cfg(feature = "memory")]
mod bench_ga;
#[cfg(feature = "neon")]
mod bench_neon;
mod cli;
mod evolve;
mod exit;
mod generate;
mod ingest;
mod inspect;
#[cfg(feature = "neon-api")]
mod neon;
mod output;
mod query;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::backend::StorageConfig;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&anyhow::Error::new(error).context("cannot start the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Bench(args) = &cli.command {
        bench::run(args).await?;
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(feature = "neon-api")]
    if let Command::Neon(args) = &cli.command {
        return neon::run(args).await;
    }
    let storage = StorageConfig::from_env_and_flags(&cli.storage)?;
    match &cli.command {
        Command::Ingest(args) => ingest::run(args, &storage).await,
        Command::Query(args) => query::run(args, &storage).await,
        Command::Summary(args) => inspect::summary(args, &storage).await,
        Command::Migrate(args) => inspect::migrate(args, &storage).await,
        Command::Health(args) => inspect::health(args, &storage).await,
        Command::Generate(args) => generate::run(args, &storage).await,
        Command::Digest(args) => inspect::digest(args, &storage).await,
        Command::Evolve(args) => evolve::evolve(args, &storage).await,
        Command::Worker(args) => evolve::worker(args, &storage).await,
        Command::Runs(args) => evolve::runs(args, &storage).await,
        Command::Bench(_) => unreachable!("handled above: bench builds its own stores"),
        #[cfg(feature = "neon-api")]
        Command::Neon(_) => unreachable!("handled above: neon needs no store"),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
