//! `strata generate`: deterministic synthetic bars from
//! `strata_core::synthetic::SyntheticSpec`, to a CSV, JSON Lines or Parquet
//! file (the `strata_formats` writers) or straight into the store.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use strata_core::Durability;
use strata_core::bar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use strata_core::synthetic::SyntheticSpec;
use strata_formats::BarFileFormat;

use crate::backend::{Access, StorageConfig, build_market};
use crate::cli::GenerateArgs;
use crate::exit::UsageError;
use crate::ingest::{plural_rows, progress_bar, warn_if_memory};
use crate::inspect::print_summary;
use crate::output::{Destination, elapsed_and_rate, open_file_sink, plural};

/// Rows per generated batch.
const BATCH_ROWS: usize = 100_000;

/// Runs `strata generate`.
pub(crate) async fn run(args: &GenerateArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let started = Instant::now();
    let spec = spec_for(args)?;
    let rows = spec.total_rows() as u64;
    let what = format!("{} ({})", plural_rows(rows), plural(spec.symbols.len(), "symbol", "symbols"));
    match &args.output {
        Some(path) => {
            let format = match BarFileFormat::from_path(path) {
                Some(format) => format,
                None => {
                    return Err(UsageError(format!(
                        "cannot tell the format of {} from its extension; name it .csv or .parquet",
                        path.display()
                    ))
                    .into());
                }
            };
            let progress = progress_bar(Some(rows), "generating");
            let mut sink = open_file_sink(format, &Destination::File(path.clone()))?;
            for batch in spec.batches(BATCH_ROWS) {
                sink.write_batch(&batch)?;
                progress.inc(batch.len() as u64);
            }
            sink.finish()?;
            progress.finish_and_clear();
            println!("generated {what} into {} {}", path.display(), elapsed_and_rate(rows, started.elapsed()));
        }
        None => {
            let stores = build_market(storage, Access::Write).await?;
            warn_if_memory(storage);
            let progress = progress_bar(Some(rows), "writing");
            let (mut written, mut journaled) = (0u64, 0u64);
            for batch in spec.batches(BATCH_ROWS) {
                let batch_rows = batch.len() as u64;
                let report = stores
                    .market
                    .write_bars(batch)
                    .await
                    .with_context(|| format!("writing to {} failed after {} rows", stores.description, written))?;
                if report.durability == Durability::Journaled {
                    journaled += report.rows;
                }
                written += batch_rows;
                progress.inc(batch_rows);
            }
            progress.finish_and_clear();
            let said = crate::ingest::acknowledged("generated", &what, journaled, &stores.description);
            println!("{said} {}", elapsed_and_rate(rows, started.elapsed()));
            if args.summary {
                let summary = stores.market.summary().await.context("cannot read the store summary")?;
                print_summary(&summary, false)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The generator spec, refusing sizes whose timestamps leave the valid range.
fn spec_for(args: &GenerateArgs) -> Result<SyntheticSpec> {
    let spec = SyntheticSpec {
        start: args.start,
        interval_micros: args.interval.0,
        ..SyntheticSpec::minutes(args.symbols, args.bars, args.seed)
    };
    let last = i64::try_from(args.bars.saturating_sub(1))
        .ok()
        .and_then(|steps| steps.checked_mul(spec.interval_micros))
        .and_then(|span| spec.start.micros().checked_add(span));
    match last {
        Some(last) if spec.start >= MIN_TIMESTAMP && last < MAX_TIMESTAMP.micros() => Ok(spec),
        _ => Err(UsageError(format!(
            "{} bars every {} s from {} run past {MAX_TIMESTAMP} (or start before {MIN_TIMESTAMP}); use fewer bars, \
             a shorter --interval or an earlier --start",
            args.bars,
            spec.interval_micros as f64 / 1e6,
            spec.start
        ))
        .into()),
    }
}

#[cfg(test)]
#[path = "../unit-tests/generate.rs"]
mod tests;
