//! `strata report RUN`: a GA run as one self-contained HTML file (settings,
//! data window, fitness and diversity per generation, equity and drawdown in
//! and out of sample against buy and hold, the best genome's trades, gene
//! distributions, the best genomes), built by the `strata-report` crate.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use strata_core::StoreError;
use strata_core::evolution::RunId;
use strata_ga_coord::{GaError, StrategyRegistry};
use strata_report::{RenderOptions, ReportOptions, build_report, render_report};

use crate::backend::{Access, StorageConfig, build_stores};
use crate::exit::UsageError;

/// Shown after `strata report --help`.
pub(crate) const REPORT_AFTER_HELP: &str = "Examples:
  strata report RUN_ID                          writes RUN_ID.html here
  strata report RUN_ID --output runs/best.html
  strata report RUN_ID --output - > report.html
  strata runs list                              the run ids";

/// `strata report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Run id (see `strata runs list`).
    pub(crate) run: RunId,
    /// Where to write the HTML: a file (replaced if it exists), or `-` for stdout
    /// [default: RUN.html in the current directory].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Best genomes in the table (1 to 100).
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) top: u32,
    /// Best genomes whose equity curves are drawn, next to buy and hold (1 to 10).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub(crate) curves: u32,
}

/// Runs `strata report`.
pub(crate) async fn run(args: &ReportArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let stores = build_stores(storage, Access::Read).await?;
    let registry = StrategyRegistry::default();
    let options = ReportOptions { top: args.top as usize, curves: args.curves.min(args.top) as usize };
    let report = match build_report(stores.evolution.as_ref(), stores.market.as_ref(), &registry, &args.run, options)
        .await
    {
        Ok(report) => report,
        Err(GaError::Store(StoreError::NotFound { .. })) => {
            return Err(
                UsageError(format!("no run {} in {} (see `strata runs list`)", args.run, stores.description)).into()
            );
        }
        Err(error) => return Err(anyhow::Error::new(error).context(format!("cannot read run {}", args.run))),
    };
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let html = render_report(&report, &RenderOptions::default());
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{}.html", args.run)));
    if output.as_os_str() == "-" {
        std::io::stdout().lock().write_all(html.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::write(&output, html.as_bytes()).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "wrote {} ({} KB): run {} ({}), {} generation(s); open it in a browser, it needs no network",
        output.display(),
        html.len().div_ceil(1024),
        args.run,
        report.record.status,
        report.stats.len()
    );
    Ok(ExitCode::SUCCESS)
}
