//! `strata ingest`: CSV and Parquet files into the store, all or nothing.
//!
//! Pass 1 reads every file in chunks (`strata_formats::read`), checks every
//! row (`strata_formats::CrossFileKeys`: `BarBatch::validate` per chunk, plus
//! duplicate keys across chunks and files) and collects every problem with
//! its FILE:LINE. Any problem: the list is printed, nothing is written, exit
//! code 2. Pass 2 writes chunk by chunk through the port: the chunks pass 1
//! read when they fit in 256 MiB (about 3M bars), else the files read again,
//! a reader thread parsing the next chunk while the store writes the current
//! one. Memory stays bounded by that budget and the chunk size, except for
//! the duplicate-key index (about 16 bytes per row plus one string per symbol).
//!
//! A directory argument is a Hive dataset partitioned by symbol, as pandas
//! (`to_parquet(dir, partition_cols=["symbol"])`), pyarrow
//! (`write_to_dataset`) and polars (`write_parquet(dir, partition_by=...)`)
//! write it: every `*.parquet` file under it, each with the symbol of its
//! `symbol=` directory (`strata_formats::read::hive`), located by its own
//! path. Timestamps in any unit; one without a time zone is taken as UTC.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{BarBatch, Durability, MarketDataStore};
use strata_formats::inputs::{self, InputFile, Tally};
use strata_formats::{BarFileFormat, ReadOptions, SplitScan, SuspectedSplit};

use crate::backend::{Access, StorageBackend, StorageConfig, build_market};
use crate::cli::IngestArgs;
use crate::exit::UsageError;
use crate::inspect::print_summary;
use crate::output::{elapsed_and_rate, group_thousands, plural};

/// How many problems are printed before "... and N more".
const SHOWN_PROBLEMS: usize = 50;

/// How many suspected splits are noted before "... and N more".
const SHOWN_SPLITS: usize = 20;

/// Runs `strata ingest`.
pub(crate) async fn run(args: &IngestArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let started = Instant::now();
    storage.check_compiled_in()?;
    // From here on a signal stops the ingest between batches, never mid-batch.
    let mut interrupts = crate::interrupt::Interrupts::listen().context("cannot listen for Ctrl-C and SIGTERM")?;
    let forced = args.format.map(BarFileFormat::from);
    let files = inputs::resolve(&args.files, forced, args.symbol.is_some()).map_err(|error| {
        if error.is_usage() { anyhow::Error::new(UsageError(error.to_string())) } else { anyhow::Error::new(error) }
    })?;
    let options =
        ReadOptions { file: 0, symbol: args.symbol.clone(), chunk_rows: args.batch_rows as usize, adjust: args.adjust };

    let progress = progress_bar(None, "validating");
    let mut tally = Tally::new(&files, SHOWN_PROBLEMS);
    let mut splits = SplitScan::new();
    let mut kept = KeptChunks::new(&files);
    for file in &files {
        for chunk in file.read(&options)? {
            progress.inc(chunk.rows);
            tally.check(&chunk);
            splits.observe(&chunk.batch);
            kept.keep(chunk);
        }
    }
    progress.finish_and_clear();
    for note in tally.notes.iter().cloned().chain(split_notes(&splits.finish(), args.adjust)) {
        eprintln!("note: {note}");
    }
    if tally.problems > 0 {
        return Err(UsageError(problem_report(&tally)).into());
    }
    let (rows, symbols) = (tally.keys.rows(), tally.keys.symbols());
    drop(tally);
    let what = format!("{} ({}) from {}", plural_rows(rows), plural(symbols, "symbol", "symbols"), files_text(&files));
    if args.dry_run {
        println!("validated {what} {}; dry run, nothing written", elapsed_and_rate(rows, started.elapsed()));
        return Ok(ExitCode::SUCCESS);
    }

    let stores = build_market(storage, Access::Write).await?;
    warn_if_memory(storage);
    let journaled = match kept.into_batches() {
        Some(batches) => {
            let produce = move |sender: Sender| -> Result<()> {
                for batch in batches {
                    sender.blocking_send(batch).map_err(|_| anyhow!("the writer stopped"))?;
                }
                Ok(())
            };
            write_batches("ingest", produce, stores.market.clone(), rows, &mut interrupts).await?
        }
        None => write_files(files, options, stores.market.clone(), rows, &mut interrupts).await?,
    };
    println!(
        "{} {}",
        acknowledged("ingested", &what, journaled, &stores.description),
        elapsed_and_rate(rows, started.elapsed())
    );
    if args.summary {
        let summary = stores.market.summary().await.context("cannot read the store summary")?;
        print_summary(&summary, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a finished write says: "ingested X into S" only when every row is
/// committed in the store; rows a store only journaled for later (a hybrid
/// store whose primary is down) are said to be queued, never ingested.
pub(crate) fn acknowledged(verb: &str, what: &str, journaled: u64, store: &str) -> String {
    if journaled == 0 {
        format!("{verb} {what} into {store}")
    } else {
        format!(
            "accepted {what} for {store}: {} journaled, not yet in the primary store (they are written there when \
             it is back; `strata health` shows the queue)",
            plural_rows(journaled)
        )
    }
}

/// Tells the user that the memory backend forgets everything at exit.
pub(crate) fn warn_if_memory(storage: &StorageConfig) {
    if storage.backend == StorageBackend::Memory {
        eprintln!("note: the memory backend keeps bars only while this command runs");
    }
}

/// `17,185 rows`.
pub(crate) fn plural_rows(rows: u64) -> String {
    format!("{} {}", group_thousands(rows), if rows == 1 { "row" } else { "rows" })
}

fn files_text(files: &[InputFile]) -> String {
    match files {
        [one] => one.path.display().to_string(),
        _ => plural(files.len(), "file", "files"),
    }
}

/// A progress bar on stderr, shown only when stderr is a terminal.
pub(crate) fn progress_bar(total_rows: Option<u64>, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total_rows {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{msg:10} [{wide_bar}] {human_pos}/{human_len} rows, {per_sec:0}, {eta} left",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {msg:10} {human_pos} rows, {per_sec:0}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One note per overnight move that looks like an unadjusted split (at most
/// [`SHOWN_SPLITS`], then a count), each with what to do about it.
fn split_notes(found: &[SuspectedSplit], adjusted: bool) -> Vec<String> {
    let advice = if adjusted {
        "the file's adjusted close does not remove it; check the data"
    } else {
        "use --adjust with a file that has an adjusted close"
    };
    let mut notes: Vec<String> =
        found.iter().take(SHOWN_SPLITS).map(|suspected| format!("{suspected} {advice}")).collect();
    if found.len() > SHOWN_SPLITS {
        notes.push(format!(
            "... and {} more overnight moves that look like unadjusted splits",
            group_thousands((found.len() - SHOWN_SPLITS) as u64)
        ));
    }
    notes
}

/// The text printed when validation failed: counts, then the first
/// [`SHOWN_PROBLEMS`] problems, then how many more.
fn problem_report(tally: &Tally) -> String {
    let mut parts = Vec::new();
    if tally.bad_rows > 0 {
        parts.push(format!(
            "{} of {} {} invalid",
            group_thousands(tally.bad_rows),
            plural_rows(tally.keys.rows()),
            if tally.bad_rows == 1 { "is" } else { "are" }
        ));
    }
    if tally.bad_files > 0 {
        parts.push(format!("{} cannot be used", plural(tally.bad_files, "file", "files")));
    }
    let mut text =
        format!("{} ({}); nothing was written", parts.join(" and "), plural(tally.problems, "problem", "problems"));
    for line in &tally.shown {
        text.push_str("\n  ");
        text.push_str(line);
    }
    if tally.problems > tally.shown.len() {
        text.push_str(&format!("\n  ... and {} more", group_thousands((tally.problems - tally.shown.len()) as u64)));
    }
    text
}

/// Input kept in memory from pass 1 for pass 2 while it fits in
/// [`KEPT_BYTES`], so that a file is read and parsed once, not twice.
const KEPT_BYTES: usize = 256 << 20;

/// The chunks pass 1 read, kept for pass 2 (`None` once they outgrew [`KEPT_BYTES`]).
struct KeptChunks {
    locator: strata_formats::Locator,
    batches: Option<Vec<(BarBatch, String)>>,
    bytes: usize,
    budget: usize,
}

impl KeptChunks {
    fn new(files: &[InputFile]) -> Self {
        Self::with_budget(files, KEPT_BYTES)
    }

    fn with_budget(files: &[InputFile], budget: usize) -> Self {
        KeptChunks { locator: inputs::locator(files), batches: Some(Vec::new()), bytes: 0, budget }
    }

    /// Keeps `chunk`'s rows with where they come from, or gives up keeping once they are too big.
    fn keep(&mut self, chunk: strata_formats::Chunk) {
        let Some(batches) = self.batches.as_mut() else { return };
        if chunk.batch.is_empty() {
            return;
        }
        self.bytes += chunk.batch.record_batch().get_array_memory_size();
        if self.bytes > self.budget {
            self.batches = None;
            return;
        }
        let origin = self.locator.describe(chunk.location(0));
        batches.push((chunk.batch, origin));
    }

    /// The kept batches, when every one was kept.
    fn into_batches(self) -> Option<Vec<(BarBatch, String)>> {
        self.batches
    }
}

/// Pass 2: reads the files again on a blocking thread and writes each chunk
/// through the port while the next one is parsed.
async fn write_files(
    files: Vec<InputFile>,
    options: ReadOptions,
    market: Arc<dyn MarketDataStore>,
    total_rows: u64,
    interrupts: &mut crate::interrupt::Interrupts,
) -> Result<u64> {
    let produce = move |sender: Sender| -> Result<()> {
        let locator = inputs::locator(&files);
        for file in &files {
            for chunk in file.read(&options)? {
                if let Some(problem) = chunk.problems.first() {
                    return Err(anyhow!(
                        "{}: {} (the file changed after it was validated)",
                        locator.describe(problem.location),
                        problem.message
                    ));
                }
                if !chunk.batch.is_empty() {
                    let origin = locator.describe(chunk.location(0));
                    sender.blocking_send((chunk.batch, origin)).map_err(|_| anyhow!("the writer stopped"))?;
                }
            }
        }
        Ok(())
    };
    write_batches("ingest", produce, market, total_rows, interrupts).await
}

/// Where a producer sends batches, each with where it comes from (`data/a.csv:2`).
pub(crate) type Sender = tokio::sync::mpsc::Sender<(BarBatch, String)>;

/// Writes the batches `produce` sends (from a blocking thread, so reading or
/// generating the next batch overlaps writing this one) through `market`,
/// with a progress bar; a signal stops it between batches. Returns how many
/// rows the store only journaled (see [`acknowledged`]).
pub(crate) async fn write_batches(
    command: &str,
    produce: impl FnOnce(Sender) -> Result<()> + Send + 'static,
    market: Arc<dyn MarketDataStore>,
    total_rows: u64,
    interrupts: &mut crate::interrupt::Interrupts,
) -> Result<u64> {
    let progress = progress_bar(Some(total_rows), "writing");
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(BarBatch, String)>(2);
    let producer = tokio::task::spawn_blocking(move || produce(sender));
    let (mut written, mut journaled, mut write_error) = (0u64, 0u64, None);
    loop {
        // A signal is taken between batches: the batch being written finishes (or not) atomically.
        let next = tokio::select! {
            next = receiver.recv() => next,
            signal = interrupts.next() => {
                write_error = Some(anyhow::Error::new(crate::exit::Interrupted(format!(
                    "{signal}: {command} stopped after {} of {}; every batch is atomic and writes are upserts, so \
                     running the same {command} again completes it",
                    group_thousands(written),
                    plural_rows(total_rows)
                ))));
                break;
            }
        };
        let Some((batch, origin)) = next else { break };
        let rows = batch.len() as u64;
        match market.write_bars(batch).await {
            Ok(report) if report.durability == Durability::Journaled => journaled += report.rows,
            Ok(_) => {}
            Err(error) => {
                write_error = Some(anyhow::Error::new(error).context(format!(
                    "writing {} starting at {origin} failed; {} of {} were written before it (each batch is \
                     atomic and writes are upserts, so running the same {command} again is safe)",
                    plural_rows(rows),
                    group_thousands(written),
                    plural_rows(total_rows)
                )));
                break;
            }
        }
        written += rows;
        progress.inc(rows);
    }
    drop(receiver);
    progress.finish_and_clear();
    let produced = producer.await.context("the reader thread panicked")?;
    if let Some(error) = write_error {
        return Err(error);
    }
    produced?;
    Ok(journaled)
}

#[cfg(test)]
#[path = "../unit-tests/ingest.rs"]
mod tests;
