//! The `strata` binary: parses the command line, sets up logging on stderr
//! (`RUST_LOG`), reads the storage settings, runs one subcommand and maps the
//! outcome to an exit code (0 ok, 1 failure, 2 invalid input).
//!
//! The composition root is the `strata-compose` crate (`backend` here); the modules are one subcommand
//! each, plus `output.rs` (writers and formatting) and `exit.rs` (exit codes).
//! `strata neon` is the `strata-neon-cli` crate's command group, mounted here.

mod cli;
mod doctor;
mod evolve;
mod exit;
mod generate;
mod ingest;
mod inspect;
mod interrupt;
mod output;
mod query;
mod report;
mod serve;
mod sync;

/// The composition root (the `strata-compose` crate): settings to stores.
use strata_compose as backend;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::backend::StorageConfig;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = cli::parse();
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
    #[cfg(feature = "neon-api")]
    if let Command::Neon(args) = &cli.command {
        return strata_neon_cli::run(args).await;
    }
    let storage = StorageConfig::from_env_and_flags(&cli.storage)?;
    match &cli.command {
        Command::Ingest(args) => ingest::run(args, &storage).await,
        Command::Query(args) => query::run(args, &storage).await,
        Command::Summary(args) => inspect::summary(args, &storage).await,
        Command::Migrate(args) => inspect::migrate(args, &storage).await,
        Command::Health(args) => inspect::health(args, &storage).await,
        Command::Doctor(args) => doctor::run(args, &storage).await,
        Command::Compact(args) => inspect::compact(args, &storage).await,
        Command::Generate(args) => generate::run(args, &storage).await,
        Command::Digest(args) => inspect::digest(args, &storage).await,
        Command::Evolve(args) => evolve::evolve(args, &storage).await,
        Command::Worker(args) => evolve::worker(args, &storage).await,
        Command::Runs(args) => evolve::runs(args, &storage).await,
        Command::Report(args) => report::run(args, &storage).await,
        Command::Serve(args) => serve::run(args, &storage).await,
        Command::Sync(args) => sync::sync(args, &storage).await,
        Command::Copy(args) => sync::compare(args, &storage, true).await,
        Command::Verify(args) => sync::compare(args, &storage, false).await,
        #[cfg(feature = "neon-api")]
        Command::Neon(_) => unreachable!("handled above: neon needs no store"),
    }
}

/// `println!` panics when stdout is a pipe whose reader has gone
/// (`strata query ... | head`); that is how such a pipeline ends, not a bug,
/// so the process exits 0 without a word, whatever command was printing.
/// Writers that return errors are handled by [`exit::report`] the same way.
fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if exit::is_closed_stdout_panic(message) {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactedStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Where log events go: stderr, each formatted event passed through
/// [`backend::redacted`] first, so that no library's log line (sqlx quotes
/// connection parameters) can print a password.
#[derive(Debug, Clone, Copy)]
struct RedactedStderr;

impl std::io::Write for RedactedStderr {
    /// The formatter hands over one whole event per call.
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let text = backend::redacted(&String::from_utf8_lossy(buffer));
        std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

#[cfg(test)]
#[path = "../unit-tests/backend.rs"]
mod backend_tests;
