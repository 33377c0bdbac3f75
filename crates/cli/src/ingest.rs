//! `strata ingest`: CSV and Parquet files into the store, all or nothing.
//!
//! Pass 1 reads every file in chunks, parses and validates every row
//! (`BarBatch::validate` per chunk, plus duplicate keys across chunks and
//! files) and collects every problem with its FILE:LINE. Any problem: the
//! list is printed, nothing is written, exit code 2. Pass 2 reads the files
//! again and writes chunk by chunk through the port, a reader thread parsing
//! the next chunk while the store writes the current one. Memory stays
//! bounded by the chunk size, except for the duplicate-key index (about 16
//! bytes per row plus one string per symbol).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata_core::{Bar, BarBatch, MarketDataStore, Symbol, Timestamp};

use crate::backend::{StorageBackend, StorageConfig, build_stores};
use crate::cli::{IngestArgs, InputFormat};
use crate::exit::UsageError;
use crate::inspect::print_summary;
use crate::output::{elapsed_and_rate, group_thousands, plural};

/// How many problems are printed before "... and N more".
const SHOWN_PROBLEMS: usize = 50;

/// Runs `strata ingest`.
pub(crate) async fn run(args: &IngestArgs, storage: &StorageConfig) -> Result<ExitCode> {
    let started = Instant::now();
    storage.check_compiled_in()?;
    let files = resolve_inputs(&args.files, args.format)?;
    let options = ReadOptions { symbol: args.symbol.clone(), chunk_rows: args.batch_rows as usize };

    let progress = progress_bar(None, "validating");
    let mut validator = Validator::new(&files);
    for file in &files {
        read_file(file, &options, &mut |chunk| {
            progress.inc(chunk.rows);
            validator.check(chunk);
            Ok(())
        })?;
    }
    progress.finish_and_clear();
    for note in &validator.notes {
        eprintln!("note: {note}");
    }
    if validator.problems > 0 {
        return Err(UsageError(validator.report()).into());
    }
    let rows = validator.rows;
    let symbols = validator.keys.len();
    drop(validator);
    let what = format!("{} ({}) from {}", plural_rows(rows), plural(symbols, "symbol", "symbols"), files_text(&files));
    if args.dry_run {
        println!("validated {what} {}; dry run, nothing written", elapsed_and_rate(rows, started.elapsed()));
        return Ok(ExitCode::SUCCESS);
    }

    let stores = build_stores(storage).await?;
    warn_if_memory(storage);
    write_files(files, options, stores.market.clone(), rows).await?;
    println!("ingested {what} into {} {}", stores.description, elapsed_and_rate(rows, started.elapsed()));
    if args.summary {
        let summary = stores.market.summary().await.context("cannot read the store summary")?;
        print_summary(&summary, false)?;
    }
    Ok(ExitCode::SUCCESS)
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
    /// Position in the argument list, used in locations.
    index: u32,
    path: PathBuf,
    format: InputFormat,
}

/// What every read needs besides the file.
#[derive(Debug, Clone)]
struct ReadOptions {
    /// The symbol of files without a symbol column.
    symbol: Option<Symbol>,
    /// Rows per chunk.
    chunk_rows: usize,
}

/// Picks each file's format from `--format` or its extension.
fn resolve_inputs(paths: &[PathBuf], format: Option<InputFormat>) -> Result<Vec<InputFile>> {
    let mut files = Vec::with_capacity(paths.len());
    for (index, path) in paths.iter().enumerate() {
        let format = match format.or_else(|| format_from_extension(path)) {
            Some(format) => format,
            None => {
                return Err(UsageError(format!(
                    "cannot tell the format of {} from its extension; name it .csv or .parquet, or pass --format csv|parquet",
                    path.display()
                ))
                .into());
            }
        };
        let index = u32::try_from(index).context("too many files")?;
        files.push(InputFile { index, path: path.clone(), format });
    }
    Ok(files)
}

fn format_from_extension(path: &Path) -> Option<InputFormat> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "csv" => Some(InputFormat::Csv),
        "parquet" | "pq" => Some(InputFormat::Parquet),
        _ => None,
    }
}

/// A place in the input: a CSV line or a Parquet row, both counted from 1.
/// `number == 0` means the file as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Location {
    file: u32,
    number: u64,
}

impl Location {
    /// Packs into one `u64` for the duplicate-key index (file in the top 16 bits).
    fn pack(self) -> u64 {
        (u64::from(self.file) << 48) | (self.number & ((1 << 48) - 1))
    }

    fn unpack(packed: u64) -> Self {
        Location { file: (packed >> 48) as u32, number: packed & ((1 << 48) - 1) }
    }
}

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    location: Location,
    /// The column at fault, when there is one.
    column: Option<&'static str>,
    message: String,
    /// True when the whole file is unusable (cannot open, bad header) rather than one row.
    whole_file: bool,
}

/// Rows read from one file, in order. Rows that failed to parse are counted
/// in `rows` and described in `problems`; the others are in `bars`.
#[derive(Debug, Default)]
struct Chunk {
    file: u32,
    /// Data rows read, good or bad.
    rows: u64,
    bars: Vec<Bar>,
    /// The location number of each bar.
    numbers: Vec<u64>,
    problems: Vec<Problem>,
    /// Things worth telling the user once (ignored columns).
    notes: Vec<String>,
}

impl Chunk {
    fn new(file: u32) -> Self {
        Chunk { file, ..Chunk::default() }
    }

    fn push(&mut self, number: u64, parsed: Result<Bar, Vec<(Option<&'static str>, String)>>) {
        self.rows += 1;
        match parsed {
            Ok(bar) => {
                self.bars.push(bar);
                self.numbers.push(number);
            }
            Err(problems) => {
                let location = Location { file: self.file, number };
                self.problems.extend(problems.into_iter().map(|(column, message)| Problem {
                    location,
                    column,
                    message,
                    whole_file: false,
                }));
            }
        }
    }

    fn file_problem(&mut self, number: u64, message: String) {
        let location = Location { file: self.file, number };
        self.problems.push(Problem { location, column: None, message, whole_file: true });
    }

    /// Hands out the rows so far and starts an empty chunk of the same file.
    fn take(&mut self) -> Chunk {
        std::mem::replace(self, Chunk::new(self.file))
    }
}

/// Reads one file and passes its rows to `sink` chunk by chunk. Problems of
/// the whole file (cannot open, no usable header) arrive as a chunk problem
/// too; an `Err` comes only from `sink`.
fn read_file(file: &InputFile, options: &ReadOptions, sink: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
    match file.format {
        InputFormat::Csv => read_csv(file, options, sink),
        InputFormat::Parquet => read_parquet(file, options, sink),
    }
}

/// Which input column feeds which bar field, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnMap {
    symbol: Option<usize>,
    timestamp: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: usize,
    vwap: Option<usize>,
    trade_count: Option<usize>,
    /// Columns that are not bar fields, by their original name.
    ignored: Vec<String>,
    /// Number of columns in the input.
    width: usize,
}

/// The bar field a column name stands for (case-insensitive; `date`,
/// `datetime` and `time` mean the timestamp, `ticker` the symbol).
fn canonical_column(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
    Some(match name.as_str() {
        "symbol" | "ticker" => "symbol",
        "timestamp" | "date" | "datetime" | "time" => "timestamp",
        "open" => "open",
        "high" => "high",
        "low" => "low",
        "close" => "close",
        "volume" => "volume",
        "vwap" => "vwap",
        "trade_count" => "trade_count",
        _ => return None,
    })
}

impl ColumnMap {
    /// Maps column names (a CSV header or a Parquet schema) to bar fields.
    /// `fixed_symbol` says whether `--symbol` was given.
    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>, fixed_symbol: bool) -> Result<Self, String> {
        let names: Vec<&str> = names.into_iter().collect();
        let mut found: HashMap<&'static str, usize> = HashMap::new();
        let mut ignored = Vec::new();
        for (index, name) in names.iter().enumerate() {
            match canonical_column(name) {
                Some(field) => {
                    if let Some(previous) = found.insert(field, index) {
                        return Err(format!(
                            "columns {:?} and {:?} both hold the {field}; keep one",
                            names[previous], name
                        ));
                    }
                }
                None => ignored.push(name.to_string()),
            }
        }
        if names.iter().all(|name| name.trim().is_empty()) {
            return Err("the file is empty or its header line is blank; expected a header such as \
                        symbol,timestamp,open,high,low,close,volume"
                .into());
        }
        let missing: Vec<&str> = ["timestamp", "open", "high", "low", "close", "volume"]
            .into_iter()
            .filter(|field| !found.contains_key(field))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing column{} {}; found {} (names match case-insensitively; the timestamp may also be \
                 called date, datetime or time)",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
            ));
        }
        let symbol = found.get("symbol").copied();
        match (symbol, fixed_symbol) {
            (None, false) => {
                return Err("there is no symbol column; pass --symbol SYMBOL to load a file of one symbol".into());
            }
            (Some(_), true) => {
                return Err("the file has a symbol column, so --symbol does not apply; drop --symbol".into());
            }
            _ => {}
        }
        Ok(ColumnMap {
            symbol,
            timestamp: found["timestamp"],
            open: found["open"],
            high: found["high"],
            low: found["low"],
            close: found["close"],
            volume: found["volume"],
            vwap: found.get("vwap").copied(),
            trade_count: found.get("trade_count").copied(),
            ignored,
            width: names.len(),
        })
    }

    fn ignored_note(&self, path: &Path) -> Option<String> {
        (!self.ignored.is_empty()).then(|| {
            let names: Vec<String> = self.ignored.iter().map(|n| format!("{n:?}")).collect();
            format!(
                "{}: ignoring column{} {}",
                path.display(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )
        })
    }
}

/// Problems of one row: (column, message).
type RowProblems = Vec<(Option<&'static str>, String)>;

fn read_csv(file: &InputFile, options: &ReadOptions, sink: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
    let mut chunk = Chunk::new(file.index);
    let handle = match File::open(&file.path) {
        Ok(handle) => handle,
        Err(error) => {
            chunk.file_problem(0, format!("cannot open: {error}"));
            return sink(chunk);
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::with_capacity(1 << 20, handle));
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(error) => {
            chunk.file_problem(1, format!("cannot read the header: {error}"));
            return sink(chunk);
        }
    };
    let map = match ColumnMap::from_names(header.iter(), options.symbol.is_some()) {
        Ok(map) => map,
        Err(message) => {
            chunk.file_problem(1, message);
            return sink(chunk);
        }
    };
    chunk.notes.extend(map.ignored_note(&file.path));
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                chunk.push(line, parse_csv_row(&record, &map, options.symbol.as_ref()));
            }
            Err(error) => {
                let line = error.position().map_or(0, csv::Position::line);
                match error.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => {
                        chunk.push(line, Err(vec![(None, format!("field {} is not valid UTF-8", err.field() + 1))]));
                    }
                    _ => {
                        let line = line.max(reader.position().line());
                        chunk.file_problem(line, format!("cannot read further: {error}"));
                        break;
                    }
                }
            }
        }
        if chunk.rows >= options.chunk_rows as u64 {
            sink(chunk.take())?;
        }
    }
    sink(chunk)
}

/// Parses one CSV record into a bar, or lists everything wrong with it.
fn parse_csv_row(
    record: &csv::StringRecord,
    map: &ColumnMap,
    fixed_symbol: Option<&Symbol>,
) -> Result<Bar, RowProblems> {
    if record.len() != map.width {
        return Err(vec![(None, format!("has {} fields; the header has {}", record.len(), map.width))]);
    }
    let mut problems = RowProblems::new();
    let field = |index: usize| record.get(index).unwrap_or_default();
    let symbol = match (map.symbol, fixed_symbol) {
        (Some(index), _) => field(index).to_string(),
        (None, Some(symbol)) => symbol.as_str().to_string(),
        (None, None) => String::new(),
    };
    let timestamp = match field(map.timestamp) {
        "" => {
            problems.push((Some("timestamp"), "value is empty".into()));
            None
        }
        text => Timestamp::parse(text).map_err(|message| problems.push((Some("timestamp"), message))).ok(),
    };
    let mut number = |column: &'static str, index: usize| -> Option<f64> {
        parse_float(field(index)).map_err(|message| problems.push((Some(column), message))).ok()
    };
    let open = number("open", map.open);
    let high = number("high", map.high);
    let low = number("low", map.low);
    let close = number("close", map.close);
    let volume = number("volume", map.volume);
    let vwap = match map.vwap.map(field) {
        None | Some("") => Some(None),
        Some(text) => parse_float(text).map(Some).map_err(|message| problems.push((Some("vwap"), message))).ok(),
    };
    let trade_count = match map.trade_count.map(field) {
        None | Some("") => Some(None),
        Some(text) => parse_count(text).map(Some).map_err(|message| problems.push((Some("trade_count"), message))).ok(),
    };
    match (timestamp, open, high, low, close, volume, vwap, trade_count) {
        (
            Some(timestamp),
            Some(open),
            Some(high),
            Some(low),
            Some(close),
            Some(volume),
            Some(vwap),
            Some(trade_count),
        ) if problems.is_empty() => Ok(Bar { symbol, timestamp, open, high, low, close, volume, vwap, trade_count }),
        _ => Err(problems),
    }
}

/// A float exactly as `str::parse::<f64>` reads it.
fn parse_float(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err("value is empty".into());
    }
    text.parse::<f64>().map_err(|_| format!("{text:?} is not a number"))
}

fn parse_count(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|_| format!("{text:?} is not a whole number"))
}

fn read_parquet(file: &InputFile, options: &ReadOptions, sink: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
    let mut chunk = Chunk::new(file.index);
    let opened = File::open(&file.path).map_err(|error| format!("cannot open: {error}")).and_then(|handle| {
        ParquetRecordBatchReaderBuilder::try_new(handle)
            .map_err(|error| format!("not a readable Parquet file: {error}"))
    });
    let builder = match opened {
        Ok(builder) => builder,
        Err(message) => {
            chunk.file_problem(0, message);
            return sink(chunk);
        }
    };
    let schema = builder.schema().clone();
    let map = match ColumnMap::from_names(schema.fields().iter().map(|f| f.name().as_str()), options.symbol.is_some())
        .and_then(|map| check_parquet_types(&schema, &map).map(|()| map))
    {
        Ok(map) => map,
        Err(message) => {
            chunk.file_problem(0, message);
            return sink(chunk);
        }
    };
    chunk.notes.extend(map.ignored_note(&file.path));
    let reader = match builder.with_batch_size(options.chunk_rows).build() {
        Ok(reader) => reader,
        Err(error) => {
            chunk.file_problem(0, format!("cannot read: {error}"));
            return sink(chunk);
        }
    };
    let mut row_number = 0u64;
    for batch in reader {
        let columns = batch
            .map_err(|error| format!("cannot read past row {row_number}: {error}"))
            .and_then(|batch| ParquetColumns::new(&batch, &map).map(|columns| (columns, batch.num_rows())));
        let (columns, rows) = match columns {
            Ok(columns) => columns,
            Err(message) => {
                chunk.file_problem(0, message);
                break;
            }
        };
        for row in 0..rows {
            row_number += 1;
            chunk.push(row_number, columns.bar(row, options.symbol.as_ref()));
        }
        sink(chunk.take())?;
    }
    sink(chunk)
}

/// Refuses column types that cannot hold the field.
fn check_parquet_types(schema: &arrow::datatypes::Schema, map: &ColumnMap) -> Result<(), String> {
    let check = |index: Option<usize>, field: &str, accepts: fn(&DataType) -> bool, expected: &str| {
        let Some(index) = index else { return Ok(()) };
        let column = schema.field(index);
        if accepts(column.data_type()) {
            Ok(())
        } else {
            Err(format!(
                "column {:?} (the {field}) has type {}; expected {expected}",
                column.name(),
                column.data_type()
            ))
        }
    };
    check(map.symbol, "symbol", is_text, "a string")?;
    check(
        Some(map.timestamp),
        "timestamp",
        |t| is_text(t) || matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64),
        "a timestamp, a date or a string",
    )?;
    for (index, field) in [
        (Some(map.open), "open"),
        (Some(map.high), "high"),
        (Some(map.low), "low"),
        (Some(map.close), "close"),
        (Some(map.volume), "volume"),
        (map.vwap, "vwap"),
    ] {
        check(index, field, |t| is_text(t) || is_number(t), "a number or a string")?;
    }
    check(map.trade_count, "trade_count", |t| is_text(t) || t.is_integer(), "an integer or a string")
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric() && !matches!(data_type, DataType::Float16)
}

/// One column of floats: numbers, or text to parse per row.
enum FloatColumn {
    Numbers(Float64Array),
    Text(StringArray),
}

enum TimestampColumn {
    Micros(TimestampMicrosecondArray),
    Text(StringArray),
}

enum CountColumn {
    Numbers(Int64Array),
    Text(StringArray),
}

/// A Parquet batch's columns, cast to what the bar fields need.
struct ParquetColumns {
    symbol: Option<StringArray>,
    timestamp: TimestampColumn,
    prices: [FloatColumn; 5],
    vwap: Option<FloatColumn>,
    trade_count: Option<CountColumn>,
}

fn cast_text(batch: &RecordBatch, index: usize) -> Result<StringArray, String> {
    let column = cast(batch.column(index), &DataType::Utf8).map_err(|error| error.to_string())?;
    Ok(column.as_string::<i32>().clone())
}

fn float_column(batch: &RecordBatch, index: usize) -> Result<FloatColumn, String> {
    if is_text(batch.column(index).data_type()) {
        return cast_text(batch, index).map(FloatColumn::Text);
    }
    let column = cast(batch.column(index), &DataType::Float64).map_err(|error| error.to_string())?;
    Ok(FloatColumn::Numbers(column.as_primitive::<Float64Type>().clone()))
}

impl ParquetColumns {
    fn new(batch: &RecordBatch, map: &ColumnMap) -> Result<Self, String> {
        let timestamp = if is_text(batch.column(map.timestamp).data_type()) {
            TimestampColumn::Text(cast_text(batch, map.timestamp)?)
        } else {
            let target = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let column = cast(batch.column(map.timestamp), &target).map_err(|error| error.to_string())?;
            TimestampColumn::Micros(column.as_primitive::<TimestampMicrosecondType>().clone())
        };
        let trade_count = match map.trade_count {
            None => None,
            Some(index) if is_text(batch.column(index).data_type()) => {
                Some(CountColumn::Text(cast_text(batch, index)?))
            }
            Some(index) => {
                let column = cast(batch.column(index), &DataType::Int64).map_err(|error| error.to_string())?;
                Some(CountColumn::Numbers(column.as_primitive::<Int64Type>().clone()))
            }
        };
        Ok(ParquetColumns {
            symbol: map.symbol.map(|index| cast_text(batch, index)).transpose()?,
            timestamp,
            prices: [
                float_column(batch, map.open)?,
                float_column(batch, map.high)?,
                float_column(batch, map.low)?,
                float_column(batch, map.close)?,
                float_column(batch, map.volume)?,
            ],
            vwap: map.vwap.map(|index| float_column(batch, index)).transpose()?,
            trade_count,
        })
    }

    fn bar(&self, row: usize, fixed_symbol: Option<&Symbol>) -> Result<Bar, RowProblems> {
        let mut problems = RowProblems::new();
        let missing = || "value is missing".to_string();
        let symbol = match (&self.symbol, fixed_symbol) {
            (Some(column), _) if column.is_valid(row) => column.value(row).to_string(),
            (Some(_), _) => {
                problems.push((Some("symbol"), missing()));
                String::new()
            }
            (None, Some(symbol)) => symbol.as_str().to_string(),
            (None, None) => String::new(),
        };
        let timestamp = match &self.timestamp {
            TimestampColumn::Micros(column) if column.is_valid(row) => Ok(Timestamp(column.value(row))),
            TimestampColumn::Text(column) if column.is_valid(row) => Timestamp::parse(column.value(row)),
            _ => Err(missing()),
        }
        .map_err(|message| problems.push((Some("timestamp"), message)))
        .ok();
        let float = |column: &FloatColumn| -> Option<Result<f64, String>> {
            match column {
                FloatColumn::Numbers(values) => values.is_valid(row).then(|| Ok(values.value(row))),
                FloatColumn::Text(values) => values.is_valid(row).then(|| parse_float(values.value(row).trim())),
            }
        };
        let mut prices = [0.0; 5];
        let mut prices_ok = true;
        for ((slot, column), name) in
            prices.iter_mut().zip(&self.prices).zip(["open", "high", "low", "close", "volume"])
        {
            match float(column).unwrap_or_else(|| Err(missing())) {
                Ok(value) => *slot = value,
                Err(message) => {
                    problems.push((Some(name), message));
                    prices_ok = false;
                }
            }
        }
        let vwap = match self.vwap.as_ref().and_then(float).transpose() {
            Ok(vwap) => vwap,
            Err(message) => {
                problems.push((Some("vwap"), message));
                None
            }
        };
        let trade_count = match &self.trade_count {
            Some(CountColumn::Numbers(values)) if values.is_valid(row) => Ok(Some(values.value(row))),
            Some(CountColumn::Text(values)) if values.is_valid(row) => parse_count(values.value(row).trim()).map(Some),
            _ => Ok(None),
        }
        .map_err(|message| problems.push((Some("trade_count"), message)))
        .ok()
        .flatten();
        match timestamp {
            Some(timestamp) if prices_ok && problems.is_empty() => {
                let [open, high, low, close, volume] = prices;
                Ok(Bar { symbol, timestamp, open, high, low, close, volume, vwap, trade_count })
            }
            _ => Err(problems),
        }
    }
}

/// Turns a [`Location`] into text for messages.
#[derive(Debug, Clone)]
struct Locator {
    /// Paths and formats by file index.
    files: Vec<(PathBuf, InputFormat)>,
}

impl Locator {
    fn new(files: &[InputFile]) -> Self {
        Locator { files: files.iter().map(|file| (file.path.clone(), file.format)).collect() }
    }

    /// `data/a.csv:17`, `data/b.parquet:row 17`, or `data/a.csv` for the whole file.
    fn describe(&self, location: Location) -> String {
        let (path, format) = &self.files[location.file as usize];
        match (location.number, format) {
            (0, _) => path.display().to_string(),
            (number, InputFormat::Csv) => format!("{}:{number}", path.display()),
            (number, InputFormat::Parquet) => format!("{}:row {number}", path.display()),
        }
    }
}

/// Pass 1: checks chunks, remembers every key, and collects problems.
struct Validator {
    locator: Locator,
    /// Every key seen, with the location it was first seen at (packed).
    keys: HashMap<String, HashMap<i64, u64>>,
    rows: u64,
    /// Problems found; only the first [`SHOWN_PROBLEMS`] are kept as text.
    problems: usize,
    bad_rows: u64,
    bad_files: usize,
    shown: Vec<String>,
    notes: Vec<String>,
}

impl Validator {
    fn new(files: &[InputFile]) -> Self {
        Validator {
            locator: Locator::new(files),
            keys: HashMap::new(),
            rows: 0,
            problems: 0,
            bad_rows: 0,
            bad_files: 0,
            shown: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn check(&mut self, chunk: Chunk) {
        let Chunk { file, rows, bars, numbers, mut problems, notes } = chunk;
        self.rows += rows;
        self.notes.extend(notes);
        let mut unique_bars = Vec::with_capacity(bars.len());
        let mut unique_numbers = Vec::with_capacity(bars.len());
        for (bar, number) in bars.into_iter().zip(numbers) {
            let location = Location { file, number };
            let per_symbol = match self.keys.get_mut(bar.symbol.as_str()) {
                Some(per_symbol) => per_symbol,
                None => self.keys.entry(bar.symbol.clone()).or_default(),
            };
            match per_symbol.entry(bar.timestamp.micros()) {
                Entry::Occupied(first) => {
                    let first = Location::unpack(*first.get());
                    let message = format!(
                        "({}, {}) appears twice; first at {}",
                        bar.symbol,
                        bar.timestamp,
                        self.locator.describe(first)
                    );
                    problems.push(Problem { location, column: Some("timestamp"), message, whole_file: false });
                }
                Entry::Vacant(slot) => {
                    slot.insert(location.pack());
                    unique_bars.push(bar);
                    unique_numbers.push(number);
                }
            }
        }
        if let Err(report) = BarBatch::from_bars(&unique_bars).validate() {
            problems.extend(report.errors.into_iter().map(|error| Problem {
                location: Location { file, number: unique_numbers[error.row] },
                column: Some(error.column),
                message: error.reason,
                whole_file: false,
            }));
        }
        problems.sort_by_key(|problem| problem.location);
        let mut previous = None;
        for problem in problems {
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
                plural_rows(self.rows),
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
) -> Result<()> {
    let progress = progress_bar(Some(total_rows), "writing");
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<(BarBatch, String)>(2);
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        let locator = Locator::new(&files);
        for file in &files {
            read_file(file, &options, &mut |chunk| {
                if let Some(problem) = chunk.problems.first() {
                    return Err(anyhow!(
                        "{}: {} (the file changed after it was validated)",
                        locator.describe(problem.location),
                        problem.message
                    ));
                }
                let Some(first) = chunk.numbers.first() else { return Ok(()) };
                let origin = locator.describe(Location { file: chunk.file, number: *first });
                let batch = BarBatch::from_bars(&chunk.bars);
                sender.blocking_send((batch, origin)).map_err(|_| anyhow!("the writer stopped"))
            })?;
        }
        Ok(())
    });
    let mut written = 0u64;
    let mut write_error = None;
    while let Some((batch, origin)) = receiver.recv().await {
        let rows = batch.len() as u64;
        if let Err(error) = market.write_bars(batch).await {
            write_error = Some(anyhow::Error::new(error).context(format!(
                "writing {} starting at {origin} failed; {} of {} were written before it (each batch is \
                 atomic and writes are upserts, so running the same ingest again is safe)",
                plural_rows(rows),
                group_thousands(written),
                plural_rows(total_rows)
            )));
            break;
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
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(header: &str, fixed_symbol: bool) -> Result<ColumnMap, String> {
        ColumnMap::from_names(header.split(','), fixed_symbol)
    }

    #[test]
    fn header_mapping_is_case_insensitive_and_knows_aliases() {
        let columns = map("Date,Open,High,Low,Close,Adj Close,Volume", true).unwrap();
        assert_eq!((columns.timestamp, columns.open, columns.close, columns.volume), (0, 1, 4, 6));
        assert_eq!(columns.symbol, None);
        assert_eq!(columns.ignored, vec!["Adj Close".to_string()]);
        let columns = map("\u{feff}SYMBOL, DateTime ,open,high,low,close,volume,VWAP,Trade_Count", false).unwrap();
        assert_eq!(
            (columns.symbol, columns.timestamp, columns.vwap, columns.trade_count),
            (Some(0), 1, Some(7), Some(8))
        );
        assert!(columns.ignored.is_empty());
        assert_eq!(map("ticker,time,open,high,low,close,volume", false).unwrap().symbol, Some(0));
    }

    #[test]
    fn header_mapping_explains_what_is_wrong() {
        let missing = map("symbol,timestamp,open,high,volume", false).unwrap_err();
        assert!(missing.contains("missing columns low, close"), "{missing}");
        let twice = map("symbol,date,timestamp,open,high,low,close,volume", false).unwrap_err();
        assert!(twice.contains("\"date\" and \"timestamp\""), "{twice}");
        let no_symbol = map("date,open,high,low,close,volume", false).unwrap_err();
        assert!(no_symbol.contains("--symbol"), "{no_symbol}");
        let both = map("symbol,date,open,high,low,close,volume", true).unwrap_err();
        assert!(both.contains("drop --symbol"), "{both}");
        assert!(map("", false).unwrap_err().contains("empty"));
    }

    /// What reading one CSV text produced: chunk sizes, problems as (line, column), bars.
    type ReadResult = (Vec<u64>, Vec<(u64, Option<&'static str>)>, Vec<Bar>);

    /// Reads CSV text as a file.
    fn read_text(text: &str, symbol: Option<&str>, chunk_rows: usize) -> ReadResult {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("input.csv");
        std::fs::write(&path, text).unwrap();
        let file = InputFile { index: 0, path, format: InputFormat::Csv };
        let options = ReadOptions { symbol: symbol.map(|s| Symbol::new(s).unwrap()), chunk_rows };
        let (mut sizes, mut problems, mut bars) = (Vec::new(), Vec::new(), Vec::new());
        read_file(&file, &options, &mut |chunk| {
            sizes.push(chunk.rows);
            problems.extend(chunk.problems.iter().map(|p| (p.location.number, p.column)));
            bars.extend(chunk.bars);
            Ok(())
        })
        .unwrap();
        (sizes, problems, bars)
    }

    #[test]
    fn csv_line_numbers_count_the_header_as_line_one() {
        let text = "symbol,timestamp,open,high,low,close,volume\n\
                    A,2020-01-01,1,2,0.5,1.5,10\n\
                    A,2020-01-02,x,2,0.5,1.5,10\n\
                    A,2020-01-03,1,2,0.5,1.5\n\
                    \"A\",\"2020-01-04\",1,2,0.5,1.5,\"1\n0\"\n\
                    A,not a date,1,2,0.5,1.5,\n";
        let (sizes, problems, bars) = read_text(text, None, 2);
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(
            problems,
            vec![(3, Some("open")), (4, None), (5, Some("volume")), (7, Some("timestamp")), (7, Some("volume"))]
        );
        assert_eq!(bars.len(), 1);
    }

    #[test]
    fn csv_numbers_parse_exactly_like_rust() {
        let text = "Date,Open,High,Low,Close,Volume,vwap,trade_count\n\
                    1999-01-04,1229.22998,1248.810059,1219.099976,1228.099976,877000000,,\n\
                    1999-01-05,0.08388999999999999,0.09,0.08,0.085,0.5,0.085,12\n";
        let (_, problems, bars) = read_text(text, Some("^GSPC"), 100);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(bars[0].symbol, "^GSPC");
        assert_eq!(bars[0].open.to_bits(), "1229.22998".parse::<f64>().unwrap().to_bits());
        assert_eq!(bars[0].volume, 877_000_000.0);
        assert_eq!((bars[0].vwap, bars[0].trade_count), (None, None));
        assert_eq!(bars[1].open.to_bits(), 0.08388999999999999f64.to_bits());
        assert_eq!((bars[1].vwap, bars[1].trade_count), (Some(0.085), Some(12)));
    }

    #[test]
    fn duplicates_across_chunks_are_reported_with_the_first_location() {
        let files = [InputFile { index: 0, path: "a.csv".into(), format: InputFormat::Csv }];
        let mut validator = Validator::new(&files);
        let bar = Bar {
            symbol: "A".into(),
            timestamp: Timestamp(0),
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
            vwap: None,
            trade_count: None,
        };
        for line in [2, 3] {
            let mut chunk = Chunk::new(0);
            chunk.push(line, Ok(bar.clone()));
            validator.check(chunk);
        }
        assert_eq!(validator.problems, 1);
        assert!(validator.shown[0].starts_with("a.csv:3: column timestamp:"), "{}", validator.shown[0]);
        assert!(validator.shown[0].ends_with("first at a.csv:2"), "{}", validator.shown[0]);
    }

    #[test]
    fn the_report_shows_fifty_problems_and_counts_the_rest() {
        let mut text = String::from("symbol,timestamp,open,high,low,close,volume\n");
        for day in 1..=28 {
            text.push_str(&format!("A,2020-02-{day:02},x,y,1,1,1\n"));
        }
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("many.csv");
        std::fs::write(&path, text).unwrap();
        let files = [InputFile { index: 0, path, format: InputFormat::Csv }];
        let mut validator = Validator::new(&files);
        let options = ReadOptions { symbol: None, chunk_rows: 10 };
        read_file(&files[0], &options, &mut |chunk| {
            validator.check(chunk);
            Ok(())
        })
        .unwrap();
        let report = validator.report();
        assert!(report.starts_with("28 of 28 rows are invalid (56 problems); nothing was written"), "{report}");
        assert_eq!(report.lines().count(), 1 + SHOWN_PROBLEMS + 1, "{report}");
        assert!(report.ends_with("\n  ... and 6 more"), "{report}");
        assert!(report.contains("many.csv:26: column high: \"y\" is not a number"), "{report}");
    }

    #[test]
    fn locations_pack_losslessly() {
        let location = Location { file: 7, number: 123_456_789_012 };
        assert_eq!(Location::unpack(location.pack()), location);
    }
}
