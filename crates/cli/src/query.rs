//! `strata query`: bars of some symbols in a half-open time range, printed
//! as a table, CSV, JSON Lines or Parquet (see [`crate::output`] and
//! `strata_formats::write`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use futures::StreamExt;
use strata_core::suggest;
use strata_core::{BarQuery, Order};
use strata_formats::BarFileFormat;

use crate::backend::{Access, StorageConfig, build_market};
use crate::cli::QueryArgs;
use crate::exit::UsageError;
use crate::output::{Destination, OutputFormat, open_sink, stdout_is_terminal};

/// Runs `strata query`.
pub(crate) async fn run(args: &QueryArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let from_extension = || args.output.as_deref().and_then(BarFileFormat::from_path).map(OutputFormat::from);
    let format = args.format.or_else(from_extension).unwrap_or(OutputFormat::Table);
    if format == OutputFormat::Parquet && args.output.is_none() && stdout_is_terminal() {
        return Err(UsageError(
            "refusing to write binary Parquet to a terminal; pass --output FILE.parquet or redirect stdout \
             (strata query ... --format parquet > bars.parquet)"
                .into(),
        )
        .into());
    }
    crate::exit::check_window(args.start, args.end)?;
    let query = BarQuery {
        symbols: args.symbols.clone(),
        start: args.start,
        end: args.end,
        limit: args.limit,
        order: if args.desc { Order::Descending } else { Order::Ascending },
    };
    let stores = build_market(storage, Access::Read).await?;
    let mut sink = open_sink(format, &Destination::from_option(args.output.as_deref()))?;
    let mut batches = stores.market.query_bars(query);
    // The requested symbols no row has shown yet; once all have, batches are not scanned.
    let mut unseen: Vec<&str> = Vec::new();
    for symbol in &args.symbols {
        if !unseen.contains(&symbol.as_str()) {
            unseen.push(symbol.as_str());
        }
    }
    while let Some(batch) = batches.next().await {
        let batch = batch.with_context(|| format!("query on {} failed", stores.description))?;
        if !unseen.is_empty() {
            let columns = batch.columns();
            unseen.retain(|wanted| !(0..batch.len()).any(|row| columns.symbol.value(row) == *wanted));
        }
        sink.write_batch(&batch)?;
    }
    sink.finish()?;
    if !unseen.is_empty() && args.limit != Some(0) {
        // Only now, off the happy path: what the store holds, to say why nothing came back.
        match stores.market.summary().await {
            Ok(summary) => {
                for line in suggest::missing_symbol_hints(&unseen, &summary, &stores.description, LISTED_SYMBOLS) {
                    eprintln!("{line}");
                }
            }
            Err(error) => tracing::debug!(%error, "no symbol hints: the summary failed"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many stored symbols a hint lists when no name is close.
const LISTED_SYMBOLS: usize = 10;
