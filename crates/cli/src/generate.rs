//! `strata generate`: deterministic synthetic bars from
//! `strata_core::synthetic::SyntheticSpec`, to a CSV, JSON Lines or Parquet
//! file (the `strata_formats` writers) or straight into the store.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use strata_core::synthetic::SyntheticSpec;
use strata_formats::BarFileFormat;

use crate::backend::{Access, StorageConfig, build_market};
use crate::cli::GenerateArgs;
use crate::exit::UsageError;
use crate::ingest::{plural_rows, progress_bar, warn_if_memory, write_batches};
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
            let mut interrupts =
                crate::interrupt::Interrupts::listen().context("cannot listen for Ctrl-C and SIGTERM")?;
            let produce = move |sender: crate::ingest::Sender| -> Result<()> {
                for (number, batch) in spec.batches(BATCH_ROWS).enumerate() {
                    let origin = format!("generated batch {}", number + 1);
                    sender.blocking_send((batch, origin)).map_err(|_| anyhow::anyhow!("the writer stopped"))?;
                }
                Ok(())
            };
            let journaled =
                write_batches("generate --ingest", produce, stores.market.clone(), rows, &mut interrupts).await?;
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
    spec.check_range().map_err(UsageError)?;
    Ok(spec)
}

#[cfg(test)]
#[path = "../unit-tests/generate.rs"]
mod tests;
