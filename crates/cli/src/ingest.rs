//! `strata ingest`: CSV and Parquet files into the store, all or nothing.
//!
//! Pass 1 reads every file in chunks (`strata_formats::read`), checks every
//! row (`strata_formats::CrossFileKeys`: `BarBatch::validate` per chunk, plus
//! duplicate keys across chunks and files) and collects every problem with
//! its FILE:LINE. Any problem: the list is printed, nothing is written, exit
//! code 2. Pass 2 reads the files again and writes chunk by chunk through the
//! port, a reader thread parsing the next chunk while the store writes the
//! current one. Memory stays bounded by the chunk size, except for the
//! duplicate-key index (about 16 bytes per row plus one string per symbol).
//!
//! A directory argument is a Hive dataset partitioned by symbol, as pandas
//! (`to_parquet(dir, partition_cols=["symbol"])`), pyarrow
//! (`write_to_dataset`) and polars (`write_parquet(dir, partition_by=...)`)
//! write it: every `*.parquet` file under it, each with the symbol of its
//! `symbol=` directory (`strata_formats::read::hive`), located by its own
//! path. Timestamps in any unit; one without a time zone is taken as UTC.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{BarBatch, Durability, MarketDataStore};
use strata_formats::read::hive::{self, DatasetFile};
use strata_formats::read::{self, FileChunks, ReadOptions};
use strata_formats::{BarFileFormat, Chunk, CrossFileKeys, Locator, SplitScan, SuspectedSplit};

use crate::backend::{Access, StorageBackend, StorageConfig, build_market};
use crate::cli::{IngestArgs, InputFormat};
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
    let files = resolve_inputs(&args.files, args.format, args.symbol.is_some())?;
    let options =
        ReadOptions { file: 0, symbol: args.symbol.clone(), chunk_rows: args.batch_rows as usize, adjust: args.adjust };

    let progress = progress_bar(None, "validating");
    let mut validator = Validator::new(&files);
    let mut splits = SplitScan::new();
    for file in &files {
        for chunk in read_file(file, &options)? {
            progress.inc(chunk.rows);
            validator.check(&chunk);
            splits.observe(&chunk.batch);
        }
    }
    progress.finish_and_clear();
    for note in &validator.notes {
        eprintln!("note: {note}");
    }
    for note in split_notes(&splits.finish(), args.adjust) {
        eprintln!("note: {note}");
    }
    if validator.problems > 0 {
        return Err(UsageError(validator.report()).into());
    }
    let rows = validator.keys.rows();
    let symbols = validator.keys.symbols();
    drop(validator);
    let what = format!("{} ({}) from {}", plural_rows(rows), plural(symbols, "symbol", "symbols"), files_text(&files));
    if args.dry_run {
        println!("validated {what} {}; dry run, nothing written", elapsed_and_rate(rows, started.elapsed()));
        return Ok(ExitCode::SUCCESS);
    }

    let stores = build_market(storage, Access::Write).await?;
    warn_if_memory(storage);
    let journaled = write_files(files, options, stores.market.clone(), rows, &mut interrupts).await?;
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

/// One input file and how to read it.
#[derive(Debug, Clone)]
struct InputFile {
    /// Position in the list of files (arguments, datasets expanded), used in locations.
    index: u32,
    path: PathBuf,
    format: BarFileFormat,
    /// A file of a Hive dataset: its symbol (from its path) and the dataset's directory.
    dataset: Option<(DatasetFile, PathBuf)>,
}

/// The most files one ingest reads: a location keeps 16 bits for the file.
const MAX_FILES: usize = 1 << 16;

/// Picks each file's format from `--format` or its extension, and expands
/// each directory (a Hive dataset partitioned by symbol) into its files.
fn resolve_inputs(paths: &[PathBuf], format: Option<InputFormat>, fixed_symbol: bool) -> Result<Vec<InputFile>> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let index = u32::try_from(files.len()).context("too many files")?;
        if path.is_dir() {
            files.extend(dataset_inputs(path, format, fixed_symbol, index)?);
            continue;
        }
        let from_extension = || BarFileFormat::from_path(path).filter(|format| format.is_readable());
        let format = match format.map(BarFileFormat::from).or_else(from_extension) {
            Some(format) => format,
            None => {
                return Err(UsageError(format!(
                    "cannot tell the format of {} from its extension; name it .csv or .parquet, or pass --format csv|parquet",
                    path.display()
                ))
                .into());
            }
        };
        files.push(InputFile { index, path: path.clone(), format, dataset: None });
    }
    if files.len() > MAX_FILES {
        return Err(UsageError(format!(
            "{} files to read; one ingest reads at most {}: split the load",
            group_thousands(files.len() as u64),
            group_thousands(MAX_FILES as u64)
        ))
        .into());
    }
    Ok(files)
}

/// The files of the Hive dataset in `dir`, numbered from `first`.
fn dataset_inputs(dir: &Path, format: Option<InputFormat>, fixed_symbol: bool, first: u32) -> Result<Vec<InputFile>> {
    if format.is_some_and(|format| BarFileFormat::from(format) != BarFileFormat::Parquet) {
        return Err(UsageError(format!(
            "{} is a directory, read as a Parquet dataset; drop --format or pass --format parquet",
            dir.display()
        ))
        .into());
    }
    if fixed_symbol {
        return Err(UsageError(format!(
            "--symbol does not apply to the dataset {}: each file's symbol comes from its symbol=... directory; \
             drop --symbol",
            dir.display()
        ))
        .into());
    }
    let listed = hive::dataset_files(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if !listed.iter().any(|file| file.symbol.is_ok()) {
        return Err(UsageError(format!(
            "{} holds no *.parquet file inside a symbol=... directory; a directory is read as a Hive dataset \
             partitioned by symbol (DIR/symbol=AAPL/....parquet, as pandas' to_parquet(DIR, \
             partition_cols=[\"symbol\"]) writes it); pass CSV or Parquet files otherwise",
            dir.display()
        ))
        .into());
    }
    let mut files = Vec::with_capacity(listed.len());
    for (offset, file) in listed.into_iter().enumerate() {
        let index =
            u32::try_from(offset).ok().and_then(|offset| first.checked_add(offset)).context("too many files")?;
        let path = file.path.clone();
        files.push(InputFile { index, path, format: BarFileFormat::Parquet, dataset: Some((file, dir.to_path_buf())) });
    }
    Ok(files)
}

/// Reads one file chunk by chunk. Problems of the whole file (cannot open,
/// no usable header) arrive as chunk problems too.
fn read_file(file: &InputFile, options: &ReadOptions) -> Result<FileChunks> {
    let options = ReadOptions { file: file.index, ..options.clone() };
    match &file.dataset {
        Some((dataset_file, _)) => Ok(hive::file(dataset_file, &options)),
        None => Ok(read::file(&file.path, file.format, &options)?),
    }
}

/// Names the files in locations: `data/a.csv:17`, `data/b.parquet:row 17`.
fn locator(files: &[InputFile]) -> Locator {
    Locator::new(files.iter().map(|file| (file.path.clone(), file.format)))
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

/// `data/a.csv: ignoring column "note"`, and for an adjusted close
/// `data/a.csv: ignoring column "Adj Close" (--adjust applies an adjusted close)`.
fn ignored_note(path: &Path, columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|n| format!("{n:?}")).collect();
    let hint = if columns.iter().any(|name| read::is_adjusted_close(name)) {
        " (--adjust applies an adjusted close)"
    } else {
        ""
    };
    format!("{}: ignoring column{} {}{hint}", path.display(), if names.len() == 1 { "" } else { "s" }, names.join(", "))
}

/// Pass 1: checks chunks with [`CrossFileKeys`] and keeps the report: counts,
/// the first [`SHOWN_PROBLEMS`] problems as text, and notes.
struct Validator {
    keys: CrossFileKeys,
    locator: Locator,
    /// Paths by file index, for notes: a dataset's directory for its files
    /// (one note for all of them).
    paths: Vec<PathBuf>,
    /// Problems found; only the first [`SHOWN_PROBLEMS`] are kept as text.
    problems: usize,
    bad_rows: u64,
    bad_files: usize,
    shown: Vec<String>,
    notes: Vec<String>,
}

impl Validator {
    fn new(files: &[InputFile]) -> Self {
        let locator = locator(files);
        Validator {
            keys: CrossFileKeys::new(locator.clone()),
            locator,
            paths: files.iter().map(|file| file.dataset.as_ref().map_or(&file.path, |(_, dir)| dir).clone()).collect(),
            problems: 0,
            bad_rows: 0,
            bad_files: 0,
            shown: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn check(&mut self, chunk: &Chunk) {
        if !chunk.ignored_columns.is_empty() {
            let note = ignored_note(&self.paths[chunk.file as usize], &chunk.ignored_columns);
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
        let mut previous = None;
        for problem in self.keys.check(chunk) {
            if problem.whole_file {
                self.bad_files += 1;
            } else if previous != Some(problem.location) {
                self.bad_rows += 1;
                previous = Some(problem.location);
            }
            self.problems += 1;
            if self.shown.len() < SHOWN_PROBLEMS {
                let column = problem.column.map(|column| format!("column {column}: ")).unwrap_or_default();
                self.shown.push(format!("{}: {column}{}", self.locator.describe(problem.location), problem.message));
            }
        }
    }

    /// The text printed when validation failed.
    fn report(&self) -> String {
        let mut parts = Vec::new();
        if self.bad_rows > 0 {
            parts.push(format!(
                "{} of {} {} invalid",
                group_thousands(self.bad_rows),
                plural_rows(self.keys.rows()),
                if self.bad_rows == 1 { "is" } else { "are" }
            ));
        }
        if self.bad_files > 0 {
            parts.push(format!("{} cannot be used", plural(self.bad_files, "file", "files")));
        }
        let mut text =
            format!("{} ({}); nothing was written", parts.join(" and "), plural(self.problems, "problem", "problems"));
        for line in &self.shown {
            text.push_str("\n  ");
            text.push_str(line);
        }
        if self.problems > self.shown.len() {
            text.push_str(&format!("\n  ... and {} more", group_thousands((self.problems - self.shown.len()) as u64)));
        }
        text
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
    let progress = progress_bar(Some(total_rows), "writing");
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(BarBatch, String)>(2);
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        let locator = locator(&files);
        for file in &files {
            for chunk in read_file(file, &options)? {
                if let Some(problem) = chunk.problems.first() {
                    return Err(anyhow!(
                        "{}: {} (the file changed after it was validated)",
                        locator.describe(problem.location),
                        problem.message
                    ));
                }
                if chunk.batch.is_empty() {
                    continue;
                }
                let origin = locator.describe(chunk.location(0));
                sender.blocking_send((chunk.batch, origin)).map_err(|_| anyhow!("the writer stopped"))?;
            }
        }
        Ok(())
    });
    let mut written = 0u64;
    let mut journaled = 0u64;
    let mut write_error = None;
    loop {
        // A signal is taken between batches: the batch being written finishes (or not) atomically.
        let next = tokio::select! {
            next = receiver.recv() => next,
            signal = interrupts.next() => {
                write_error = Some(anyhow::Error::new(crate::exit::Interrupted(format!(
                    "{signal}: ingest stopped after {} of {}; every batch is atomic and writes are upserts, so \
                     running the same ingest again completes it",
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
                     atomic and writes are upserts, so running the same ingest again is safe)",
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
    let read_result = reader.await.context("the reader thread panicked")?;
    if let Some(error) = write_error {
        return Err(error);
    }
    read_result?;
    Ok(journaled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_flag_or_a_readable_extension() {
        let paths = [PathBuf::from("a.CSV"), PathBuf::from("b.pq")];
        let formats: Vec<BarFileFormat> =
            resolve_inputs(&paths, None, false).unwrap().iter().map(|f| f.format).collect();
        assert_eq!(formats, vec![BarFileFormat::Csv, BarFileFormat::Parquet]);
        let error = resolve_inputs(&[PathBuf::from("bars.json")], None, false).unwrap_err();
        assert!(error.to_string().starts_with("cannot tell the format of bars.json"), "{error}");
        let forced = resolve_inputs(&[PathBuf::from("bars.json")], Some(InputFormat::Csv), false).unwrap();
        assert_eq!(forced[0].format, BarFileFormat::Csv);
    }

    #[test]
    fn a_directory_is_a_hive_dataset_of_its_parquet_files() {
        let directory = tempfile::tempdir().unwrap();
        let dataset = directory.path().join("bars");
        for part in ["symbol=%5EGSPC/year=2020/a.parquet", "symbol=AAPL/b.parquet"] {
            let path = dataset.join(part);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        std::fs::write(dataset.join("_SUCCESS"), b"").unwrap();
        let csv = directory.path().join("a.csv");
        let files = resolve_inputs(&[csv.clone(), dataset.clone(), csv], None, false).unwrap();
        let listed: Vec<(u32, Option<String>)> = files
            .iter()
            .map(|f| (f.index, f.dataset.as_ref().map(|(d, _)| d.symbol.as_ref().unwrap().to_string())))
            .collect();
        assert_eq!(listed, vec![(0, None), (1, Some("^GSPC".to_string())), (2, Some("AAPL".to_string())), (3, None)]);
        assert_eq!(files[1].format, BarFileFormat::Parquet);
        let validator = Validator::new(&files);
        assert_eq!(validator.paths[2], dataset, "notes name the dataset");

        let error = resolve_inputs(std::slice::from_ref(&dataset), None, true).unwrap_err();
        assert!(error.to_string().starts_with("--symbol does not apply to the dataset"), "{error}");
        let error = resolve_inputs(std::slice::from_ref(&dataset), Some(InputFormat::Csv), false).unwrap_err();
        assert!(error.to_string().contains("is a directory, read as a Parquet dataset"), "{error}");
        let empty = directory.path().join("empty");
        std::fs::create_dir_all(empty.join("year=2020")).unwrap();
        std::fs::write(empty.join("year=2020/a.parquet"), b"").unwrap();
        let error = resolve_inputs(&[empty], None, false).unwrap_err();
        assert!(error.to_string().contains("holds no *.parquet file inside a symbol=... directory"), "{error}");
    }

    #[test]
    fn split_notes_give_advice_and_are_capped() {
        let suspected = SuspectedSplit {
            symbol: "AAPL".into(),
            timestamp: "2005-02-28".parse().unwrap(),
            ratio: 44.68 / 88.99,
            split: strata_formats::splits::SplitRatio { new: 2, old: 1 },
        };
        assert_eq!(
            split_notes(std::slice::from_ref(&suspected), false),
            vec![
                "AAPL 2005-02-28 opens at 0.50x the previous close: an unadjusted 2:1 split? use --adjust with a \
                 file that has an adjusted close"
                    .to_string()
            ]
        );
        assert!(split_notes(std::slice::from_ref(&suspected), true)[0].ends_with("does not remove it; check the data"));
        let many = split_notes(&vec![suspected; SHOWN_SPLITS + 3], false);
        let note = ignored_note(Path::new("a.csv"), &["Adj Close".to_string(), "note".to_string()]);
        assert_eq!(note, "a.csv: ignoring columns \"Adj Close\", \"note\" (--adjust applies an adjusted close)");
        assert_eq!(many.len(), SHOWN_SPLITS + 1);
        assert_eq!(many[SHOWN_SPLITS], "... and 3 more overnight moves that look like unadjusted splits");
    }

    #[test]
    fn the_report_shows_fifty_problems_and_counts_the_rest() {
        let mut text = String::from("symbol,timestamp,open,high,low,close,volume,note\n");
        for day in 1..=28 {
            text.push_str(&format!("A,2020-02-{day:02},x,y,1,1,1,\n"));
        }
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("many.csv");
        std::fs::write(&path, text).unwrap();
        let files = [InputFile { index: 0, path, format: BarFileFormat::Csv, dataset: None }];
        let mut validator = Validator::new(&files);
        let options = ReadOptions { chunk_rows: 10, ..ReadOptions::default() };
        for chunk in read_file(&files[0], &options).unwrap() {
            validator.check(&chunk);
        }
        let report = validator.report();
        assert!(report.starts_with("28 of 28 rows are invalid (56 problems); nothing was written"), "{report}");
        assert_eq!(report.lines().count(), 1 + SHOWN_PROBLEMS + 1, "{report}");
        assert!(report.ends_with("\n  ... and 6 more"), "{report}");
        assert!(report.contains("many.csv:26: column high: \"y\" is not a number"), "{report}");
        assert_eq!(validator.notes.len(), 1);
        assert!(validator.notes[0].ends_with("many.csv: ignoring column \"note\""), "{}", validator.notes[0]);
    }
}
