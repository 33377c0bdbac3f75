//! Readers: CSV and Parquet in, [`Chunk`]s out. A chunk holds the rows that
//! parsed as a [`BarBatch`] (built with [`BarBatchBuilder`], not yet
//! validated), the line or row each came from, and every problem found, so a
//! caller can report all of a file's problems in one pass.
//!
//! Columns are found by name, case-insensitively: symbol (or ticker);
//! timestamp (or date, datetime, time); open, high, low, close, volume;
//! optional vwap and trade_count; optional adj_close (or `Adj Close`,
//! `adjusted_close`), the vendor's split- and dividend-adjusted close, used
//! only with [`ReadOptions::adjust`]. Other columns are skipped and named in
//! [`Chunk::ignored_columns`]. A file without a symbol column needs
//! [`ReadOptions::symbol`], or a `symbol=` directory in its path when read
//! as a file of a Hive dataset ([`hive`]). Timestamps are read by `Timestamp::parse`, floats
//! exactly as `str::parse::<f64>` reads them.

mod columns;
mod csv_reader;
pub mod hive;
mod parquet_reader;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use strata_core::{BarBatch, BarBatchBuilder, Symbol, Timestamp};

use crate::error::FormatError;
use crate::format::BarFileFormat;
use crate::location::Location;

pub use csv_reader::{CsvChunks, csv};
pub use parquet_reader::{ParquetChunks, parquet};

/// How to read one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// The file's index, carried by every [`Location`] of the read.
    pub file: u32,
    /// The symbol of a file without a symbol column; a file with one is
    /// refused when this is set.
    pub symbol: Option<Symbol>,
    /// Data rows (good or bad) per chunk; at least 1.
    pub chunk_rows: usize,
    /// Applies the vendor's adjustment from the file's adjusted close column,
    /// row by row: factor = adj_close / close; open, high, low and vwap are
    /// multiplied by it, volume is divided by it, close becomes adj_close and
    /// trade_count is kept. A file without the column is a whole-file
    /// problem; a row whose adj_close is missing, not finite or not > 0 is a
    /// problem of its row. Off: the column is ignored like any other.
    pub adjust: bool,
}

impl Default for ReadOptions {
    /// File 0, no fixed symbol, 100,000 rows per chunk.
    fn default() -> Self {
        ReadOptions { file: 0, symbol: None, chunk_rows: 100_000, adjust: false }
    }
}

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: the row's line or row number, or the file as a whole.
    pub location: Location,
    /// The column at fault, by its bar field name, when there is one.
    pub column: Option<&'static str>,
    /// What is wrong, in words.
    pub message: String,
    /// True when the whole file is unusable (cannot be opened, has no usable
    /// header, cannot be read further) rather than one row.
    pub whole_file: bool,
}

/// Consecutive rows of one file. Rows that failed to parse are counted in
/// `rows` and described in `problems`; the others are in `batch`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The file's index ([`ReadOptions::file`]).
    pub file: u32,
    /// Data rows read, good or bad.
    pub rows: u64,
    /// The rows that parsed, in file order; not yet validated.
    pub batch: BarBatch,
    /// The line (CSV) or row (Parquet) number of each row of `batch`.
    pub numbers: Vec<u64>,
    /// Problems of the rows read (ordered by location) and of the file.
    pub problems: Vec<Problem>,
    /// Columns of the file that are not bar fields, by their names in the
    /// file; only on the first chunk of a file.
    pub ignored_columns: Vec<String>,
}

impl Chunk {
    /// The location of row `row` of [`Chunk::batch`].
    pub fn location(&self, row: usize) -> Location {
        Location { file: self.file, number: self.numbers[row] }
    }
}

/// Opens `path` and reads it as `format`. A file that cannot be opened gives
/// one chunk with a whole-file problem, like any other unusable file; the
/// only error is a format without a reader.
pub fn file(path: &Path, format: BarFileFormat, options: &ReadOptions) -> Result<FileChunks, FormatError> {
    let open = || File::open(path).map_err(|error| format!("cannot open: {error}"));
    let inner = match format {
        BarFileFormat::Csv => match open() {
            Ok(handle) => Inner::Csv(csv(BufReader::with_capacity(1 << 20, handle), options)),
            Err(message) => Inner::Failed(Some(ChunkBuilder::failed(options, 0, message))),
        },
        BarFileFormat::Parquet => match open() {
            Ok(handle) => Inner::Parquet(parquet(handle, options)),
            Err(message) => Inner::Failed(Some(ChunkBuilder::failed(options, 0, message))),
        },
        BarFileFormat::JsonLines => return Err(FormatError::Unreadable { format }),
    };
    Ok(FileChunks { inner })
}

/// The chunks of a file opened by [`file()`].
#[derive(Debug)]
pub struct FileChunks {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Csv(CsvChunks<BufReader<File>>),
    Parquet(ParquetChunks),
    Failed(Option<Chunk>),
}

impl Iterator for FileChunks {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        match &mut self.inner {
            Inner::Csv(chunks) => chunks.next(),
            Inner::Parquet(chunks) => chunks.next(),
            Inner::Failed(chunk) => chunk.take(),
        }
    }
}

/// Whether a column name is one the readers take for an adjusted close
/// (`adj_close`, `Adj Close`, `adjusted_close`, ..., any case): the column
/// [`ReadOptions::adjust`] applies, and ignores otherwise.
pub fn is_adjusted_close(name: &str) -> bool {
    columns::canonical_column(name) == Some("adj_close")
}

/// Problems of one row: (column, message).
type RowProblems = Vec<(Option<&'static str>, String)>;

/// One parsed row, borrowing its symbol from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowParts<'a> {
    symbol: &'a str,
    timestamp: Timestamp,
    /// open, high, low, close, volume
    values: [f64; 5],
    vwap: Option<f64>,
    trade_count: Option<i64>,
}

/// The chunk being read: rows go straight into Arrow builders.
#[derive(Debug)]
struct ChunkBuilder {
    file: u32,
    rows: u64,
    builder: BarBatchBuilder,
    numbers: Vec<u64>,
    problems: Vec<Problem>,
    ignored_columns: Vec<String>,
    /// Rows to reserve in each new builder.
    capacity: usize,
}

impl ChunkBuilder {
    fn new(options: &ReadOptions) -> Self {
        // Reserve for a typical chunk, not for an absurd --batch-rows.
        let capacity = options.chunk_rows.clamp(1, 1 << 16);
        ChunkBuilder {
            file: options.file,
            rows: 0,
            builder: BarBatchBuilder::with_capacity(0),
            numbers: Vec::new(),
            problems: Vec::new(),
            ignored_columns: Vec::new(),
            capacity,
        }
    }

    /// The one chunk of a file that cannot be used at all.
    fn failed(options: &ReadOptions, number: u64, message: String) -> Chunk {
        let mut chunk = ChunkBuilder::new(options);
        chunk.file_problem(number, message);
        chunk.take()
    }

    fn push(&mut self, number: u64, parsed: Result<RowParts<'_>, RowProblems>) {
        self.rows += 1;
        match parsed {
            Ok(row) => {
                if self.builder.is_empty() && self.numbers.capacity() == 0 {
                    self.builder = BarBatchBuilder::with_capacity(self.capacity);
                    self.numbers.reserve(self.capacity);
                }
                self.builder.push_parts(row.symbol, row.timestamp, row.values, row.vwap, row.trade_count);
                self.numbers.push(number);
            }
            Err(problems) => self.row_problems(number, problems),
        }
    }

    fn row_problems(&mut self, number: u64, problems: RowProblems) {
        let location = Location { file: self.file, number };
        self.problems.extend(problems.into_iter().map(|(column, message)| Problem {
            location,
            column,
            message,
            whole_file: false,
        }));
    }

    fn file_problem(&mut self, number: u64, message: String) {
        let location = Location { file: self.file, number };
        self.problems.push(Problem { location, column: None, message, whole_file: true });
    }

    /// True when there is nothing to hand out: no rows, problems or notes.
    fn is_empty(&self) -> bool {
        self.rows == 0 && self.problems.is_empty() && self.ignored_columns.is_empty()
    }

    /// Hands out the rows so far and starts an empty chunk of the same file.
    fn take(&mut self) -> Chunk {
        let builder = std::mem::replace(&mut self.builder, BarBatchBuilder::with_capacity(0));
        Chunk {
            file: self.file,
            rows: std::mem::take(&mut self.rows),
            batch: builder.finish(),
            numbers: std::mem::take(&mut self.numbers),
            problems: std::mem::take(&mut self.problems),
            ignored_columns: std::mem::take(&mut self.ignored_columns),
        }
    }

    /// Hands out `batch`, whose rows are numbered from `first`, with the
    /// problems and notes so far; no row may have been pushed yet.
    fn take_with(&mut self, batch: BarBatch, first: u64) -> Chunk {
        debug_assert!(self.rows == 0, "rows were pushed before a whole batch");
        let rows = batch.len() as u64;
        let mut chunk = self.take();
        chunk.rows = rows;
        chunk.batch = batch;
        chunk.numbers = (first..first + rows).collect();
        chunk
    }

    /// [`ChunkBuilder::take`], unless there is nothing to hand out.
    fn take_unless_empty(&mut self) -> Option<Chunk> {
        (!self.is_empty()).then(|| self.take())
    }
}

/// A float exactly as `str::parse::<f64>` reads it.
fn parse_float(text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err("value is empty".into());
    }
    text.parse::<f64>().map_err(|_| format!("{text:?} is not a number"))
}

/// Applies the vendor's adjustment to one row (see [`ReadOptions::adjust`]),
/// or says which column stops it. High and low stay on their side of the new
/// close when they were on it before: scaling rounds, and the close is the
/// vendor's own number rather than close × factor.
fn adjust_row(values: &mut [f64; 5], vwap: &mut Option<f64>, adj_close: f64) -> Result<(), (&'static str, String)> {
    if !adj_close.is_finite() || adj_close <= 0.0 {
        return Err(("adj_close", format!("adjusted close {adj_close} must be a finite number > 0 to adjust by it")));
    }
    let [open, high, low, close, volume] = *values;
    if !close.is_finite() || close <= 0.0 {
        return Err(("close", format!("close {close} must be a finite number > 0 to adjust by adj_close / close")));
    }
    let factor = adj_close / close;
    let mut new_high = high * factor;
    let mut new_low = low * factor;
    if high >= close {
        new_high = new_high.max(adj_close);
    }
    if low <= close {
        new_low = new_low.min(adj_close);
    }
    *values = [open * factor, new_high, new_low, adj_close, volume / factor];
    if let Some(vwap) = vwap {
        *vwap *= factor;
    }
    Ok(())
}

/// A whole number of trades.
fn parse_count(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|_| format!("{text:?} is not a whole number"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_one_whole_file_problem() {
        let options = ReadOptions { file: 3, ..ReadOptions::default() };
        let chunks: Vec<Chunk> =
            file(Path::new("/nonexistent/strata/bars.csv"), BarFileFormat::Csv, &options).unwrap().collect();
        assert_eq!(chunks.len(), 1);
        let problem = &chunks[0].problems[0];
        assert_eq!(problem.location, Location { file: 3, number: 0 });
        assert!(problem.whole_file);
        assert!(problem.message.starts_with("cannot open: "), "{}", problem.message);
    }

    #[test]
    fn adjusting_scales_prices_inverts_volume_and_keeps_the_order_of_prices() {
        let mut values = [118.56, 132.06, 118.5, 130.31, 9_616_100.0];
        let mut vwap = Some(125.0);
        adjust_row(&mut values, &mut vwap, 4.186662803811).unwrap();
        let factor = 4.186662803811 / 130.31;
        assert_eq!(values[3], 4.186662803811);
        assert!((values[0] - 118.56 * factor).abs() < 1e-12);
        assert!((values[4] - 9_616_100.0 / factor).abs() < 1e-3);
        assert!((vwap.unwrap() - 125.0 * factor).abs() < 1e-12);
        assert!(values[1] >= values[3] && values[2] <= values[0]);
        // A bar that closed at its high or low still does after rounding.
        for close in [0.1, 0.3, 7.77, 130.31, 1234.5678] {
            for adj in [0.07, 0.2999, 4.186662803811, 99.99] {
                let mut at_high = [close / 2.0, close, close / 3.0, close, 10.0];
                adjust_row(&mut at_high, &mut None, adj).unwrap();
                assert!(at_high[1] >= at_high[3] && at_high[2] <= at_high[3], "{close} {adj}: {at_high:?}");
                let mut at_low = [close * 2.0, close * 3.0, close, close, 10.0];
                adjust_row(&mut at_low, &mut None, adj).unwrap();
                assert!(at_low[2] <= at_low[3] && at_low[1] >= at_low[3], "{close} {adj}: {at_low:?}");
            }
        }
    }

    #[test]
    fn adjusting_refuses_a_bad_adjusted_close_or_close() {
        for adj in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let (column, message) = adjust_row(&mut [1.0, 2.0, 0.5, 1.5, 10.0], &mut None, adj).unwrap_err();
            assert_eq!(column, "adj_close");
            assert!(message.contains("must be a finite number > 0"), "{message}");
        }
        let (column, _) = adjust_row(&mut [1.0, 2.0, 0.5, 0.0, 10.0], &mut None, 1.0).unwrap_err();
        assert_eq!(column, "close");
    }

    #[test]
    fn adjusted_close_names_are_recognised() {
        assert!(
            is_adjusted_close("Adj Close") && is_adjusted_close(" adjusted_close") && is_adjusted_close("ADJ_CLOSE")
        );
        assert!(!is_adjusted_close("close") && !is_adjusted_close("adj"));
    }

    #[test]
    fn json_lines_cannot_be_read() {
        let error = file(Path::new("a.jsonl"), BarFileFormat::JsonLines, &ReadOptions::default()).unwrap_err();
        assert!(matches!(error, FormatError::Unreadable { format: BarFileFormat::JsonLines }));
    }
}
