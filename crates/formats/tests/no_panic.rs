//! No panic on any input (issue 16) for the bar file readers: CSV and
//! Parquet bytes of every kind (random bytes; valid files written by this
//! crate's writers, then truncated, bit-flipped, spliced and cut; headers
//! with aliases, BOMs, CRLF and duplicates; fields with odd timestamps and
//! numbers; columns of the wrong type; huge fields and lines) either give
//! rows or problems, and every problem names its line (CSV), its row and
//! column (Parquet) or its file. The chunks then go through what a load does
//! with them (`CrossFileKeys`, `BarBatch::validate`, `SplitScan`), which
//! must not panic either.
//!
//! Each property runs a bounded number of cases by default, so `cargo test`
//! stays quick; `STRATA_FUZZ_CASES=20000 cargo test -p strata-formats --test
//! no_panic` runs a long round, and `STRATA_FUZZ_SAVE=DIR` keeps the input
//! of a read that panics in `DIR` (see [`saving_on_panic`]). Inputs that
//! ever failed are kept, minimised, in `tests/corpus/csv/` and
//! `tests/corpus/parquet/` and replayed by [`corpus_replays`].

use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array, DictionaryArray, Float32Array,
    Float64Array, Int32Array, Int64Array, LargeStringArray, NullArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{Field, Int32Type, Schema};
use parquet::arrow::ArrowWriter;
use proptest::prelude::*;
use proptest::test_runner::Config;
use strata_core::{Bar, BarBatch, Symbol, Timestamp};
use strata_formats::read::{self, Chunk, ReadOptions};
use strata_formats::write::{CsvWriter, ParquetWriter};
use strata_formats::{BarFileFormat, CrossFileKeys, Location, Locator, SplitScan};

/// `STRATA_FUZZ_CASES` when set, else `default` cases per property; no
/// failure files (regressions go to `tests/corpus/` by hand, minimised).
fn config(default: u32) -> Config {
    let cases = std::env::var("STRATA_FUZZ_CASES").ok().and_then(|text| text.parse().ok()).unwrap_or(default);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// The path problems are described with; what matters is that it is named.
const CSV_PATH: &str = "vendor/bars.csv";
const PARQUET_PATH: &str = "vendor/bars.parquet";

// ----------------------------------------------------------------- checks

/// Runs `read` on `bytes`; with `STRATA_FUZZ_SAVE=DIR` set, an input whose
/// read panics is written to `DIR/<test name>.<extension>` before the panic
/// goes on. Proptest shrinks a failure by trying smaller inputs, each one
/// that fails replacing the last, so the file left at the end is the
/// minimised input to add to `tests/corpus/`.
fn saving_on_panic<T>(bytes: &[u8], extension: &str, read: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(value) => value,
        Err(panic) => {
            if let Some(dir) = std::env::var_os("STRATA_FUZZ_SAVE") {
                let test = std::thread::current().name().unwrap_or("unnamed").replace("::", "-");
                let _ = std::fs::write(Path::new(&dir).join(format!("{test}.{extension}")), bytes);
            }
            std::panic::resume_unwind(panic)
        }
    }
}

/// Reads `bytes` as CSV with `options` and checks every chunk and problem.
fn check_csv(bytes: &[u8], options: &ReadOptions) -> Result<(), TestCaseError> {
    let chunks: Vec<Chunk> = saving_on_panic(bytes, "csv", || read::csv(bytes, options).collect());
    check_chunks(&chunks, options, Format::Csv)
}

/// Reads `bytes` as a Parquet file with `options` (through a temporary
/// file, as the reader takes a file) and checks every chunk and problem.
fn check_parquet(bytes: &[u8], options: &ReadOptions) -> Result<(), TestCaseError> {
    let mut file = tempfile::tempfile().expect("temporary file");
    file.write_all(bytes).expect("temporary file written");
    file.seek(SeekFrom::Start(0)).expect("temporary file rewound");
    let chunks: Vec<Chunk> = saving_on_panic(bytes, "parquet", || read::parquet(file, options).collect());
    check_chunks(&chunks, options, Format::Parquet)
}

/// Reads `bytes` as a file of a Hive dataset whose path gives `symbol`.
fn check_hive_parquet(bytes: &[u8], symbol: &Symbol, options: &ReadOptions) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let partition = dir.path().join(read::hive::symbol_dir_name(symbol.as_str()));
    std::fs::create_dir(&partition).expect("partition directory");
    std::fs::write(partition.join("part-0.parquet"), bytes).expect("dataset file written");
    let files = read::hive::dataset_files(dir.path()).expect("dataset listed");
    prop_assert_eq!(files.len(), 1);
    prop_assert_eq!(files[0].symbol.as_ref().ok(), Some(symbol));
    let chunks: Vec<Chunk> = saving_on_panic(bytes, "parquet", || read::hive::file(&files[0], options).collect());
    check_chunks(&chunks, &ReadOptions { symbol: Some(symbol.clone()), ..options.clone() }, Format::Parquet)?;
    for chunk in &chunks {
        let symbols = chunk.batch.columns().symbol;
        prop_assert!(symbols.iter().all(|value| value == Some(symbol.as_str())), "{symbols:?}");
    }
    Ok(())
}

/// What a read was of: lines counted exactly (CSV with `\n` line ends),
/// CSV with carriage returns, or Parquet rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// CSV with any line ends (LF, CRLF, CR: the reader reads CR and CRLF as LF), held to exact lines.
    Csv,
    Parquet,
}

/// What every read must give, whatever the input:
/// - chunks of the file that was asked for, at most `chunk_rows` rows each;
/// - every row either in the batch (with its line or row number, in file
///   order) or named by at least one problem, never dropped silently;
/// - every problem located in the file: a CSV problem at a line (the header
///   is line 1), a Parquet row problem at a row and a column, and each one
///   described by the locator as `path:line` / `path:row N` / `path`;
/// - the rows survive what a load does next: cross-file key checks,
///   validation and the split scan, and their messages print.
fn check_chunks(chunks: &[Chunk], options: &ReadOptions, format: Format) -> Result<(), TestCaseError> {
    let (path, file_format) = match format {
        Format::Parquet => (PARQUET_PATH, BarFileFormat::Parquet),
        _ => (CSV_PATH, BarFileFormat::Csv),
    };
    let first_data_line = if format == Format::Csv { 2 } else { 1 };
    let locator = Locator::new((0..=options.file).map(|_| (PathBuf::from(path), file_format)));
    let mut keys = CrossFileKeys::new(locator.clone());
    let mut splits = SplitScan::new();
    let mut last_number = 0;
    for (index, chunk) in chunks.iter().enumerate() {
        prop_assert_eq!(chunk.file, options.file);
        prop_assert!(
            chunk.rows <= options.chunk_rows.max(1) as u64,
            "{} rows in a chunk of {}",
            chunk.rows,
            options.chunk_rows
        );
        prop_assert_eq!(chunk.numbers.len(), chunk.batch.len());
        prop_assert!(index == 0 || chunk.ignored_columns.is_empty(), "ignored columns after the first chunk");
        let mut bad_rows = BTreeSet::new();
        for problem in &chunk.problems {
            prop_assert_eq!(problem.location.file, options.file);
            prop_assert!(!problem.message.is_empty(), "a problem without a message");
            let described = locator.describe(problem.location);
            prop_assert!(described.starts_with(path), "{described}");
            if problem.whole_file {
                if format != Format::Parquet {
                    prop_assert!(problem.location.number >= 1, "a CSV file problem without a line: {problem:?}");
                }
                continue;
            }
            bad_rows.insert(problem.location.number);
            prop_assert!(
                problem.location.number >= first_data_line,
                "a row problem at line or row {}: {problem:?}",
                problem.location.number
            );
            if format == Format::Parquet {
                prop_assert!(problem.column.is_some(), "a Parquet row problem without a column: {problem:?}");
                prop_assert_eq!(described, format!("{path}:row {}", problem.location.number));
            } else {
                prop_assert_eq!(described, format!("{path}:{}", problem.location.number));
            }
        }
        let kept = chunk.batch.len() as u64;
        prop_assert_eq!(
            chunk.rows,
            kept + bad_rows.len() as u64,
            "rows read = rows kept + rows with problems ({:?})",
            chunk.problems
        );
        for (row, number) in chunk.numbers.iter().enumerate() {
            prop_assert!(*number >= first_data_line, "a kept row at line or row {number}");
            prop_assert!(*number > last_number, "row numbers go backwards: {} after {}", number, last_number);
            prop_assert!(!bad_rows.contains(number), "row {} is both kept and refused", number);
            prop_assert_eq!(chunk.location(row), Location { file: options.file, number: *number });
            last_number = *number;
        }
        if let Some(symbol) = &options.symbol {
            let symbols = chunk.batch.columns().symbol;
            prop_assert!(symbols.iter().all(|value| value == Some(symbol.as_str())), "{symbols:?}");
        }
        for problem in keys.check(chunk) {
            let _ = format!("{}: {}", locator.describe(problem.location), problem.message);
        }
        if let Err(report) = chunk.batch.validate() {
            let _ = report.to_string();
        }
        splits.observe(&chunk.batch);
        let _ = chunk.batch.to_bars();
    }
    for split in splits.finish() {
        let _ = split.to_string();
    }
    Ok(())
}

// ----------------------------------------------------------------- inputs

/// Read options of every kind: any file index, a fixed symbol or none,
/// tiny and default chunks, with and without `--adjust`.
fn options() -> impl Strategy<Value = ReadOptions> + Clone {
    (
        prop_oneof![Just(0u32), 0u32..4, Just(u32::from(u16::MAX))],
        prop::option::weighted(0.3, prop::sample::select(vec!["AAPL", "^GSPC", "BRK.B"])),
        prop_oneof![Just(0usize), 1usize..4, Just(100_000)],
        prop::bool::weighted(0.2),
    )
        .prop_map(|(file, symbol, chunk_rows, adjust)| ReadOptions {
            file,
            symbol: symbol.map(|symbol| Symbol::new(symbol).expect("a valid symbol")),
            chunk_rows,
            adjust,
        })
}

/// A bar that passes validation (a small pool of symbols and days).
fn good_bar() -> impl Strategy<Value = Bar> + Clone {
    (
        prop::sample::select(vec!["AAPL", "^GSPC", "BRK.B", "EURUSD=X"]),
        0i64..10,
        1.0f64..500.0,
        0.0f64..1e9,
        prop::option::of(Just(())),
        prop::option::of(0i64..1_000_000),
    )
        .prop_map(|(symbol, day, price, volume, vwap, trade_count)| Bar {
            symbol: symbol.into(),
            timestamp: Timestamp(946_684_800_000_000 + day * Timestamp::MICROS_PER_DAY + day * 1_234_567),
            open: price,
            high: price * 1.25,
            low: price * 0.75,
            close: price * 1.1,
            volume,
            vwap: vwap.map(|()| price),
            trade_count,
        })
}

/// Bars of any value: any float, any timestamp the writers can print.
fn any_bar() -> impl Strategy<Value = Bar> + Clone {
    (good_bar(), [any::<f64>(), any::<f64>(), any::<f64>(), any::<f64>(), any::<f64>()], any::<i64>()).prop_map(
        |(bar, [open, high, low, close, volume], micros)| Bar {
            timestamp: Timestamp(micros),
            open,
            high,
            low,
            close,
            volume,
            ..bar
        },
    )
}

fn bars() -> impl Strategy<Value = Vec<Bar>> {
    prop::collection::vec(prop_oneof![4 => good_bar(), 1 => any_bar()], 0..12)
}

/// The columns this crate's writers write.
fn written_columns() -> Vec<String> {
    strata_core::schema::COLUMNS.map(str::to_owned).to_vec()
}

fn csv_bytes(bars: &[Bar]) -> Vec<u8> {
    let mut writer = CsvWriter::new(Vec::new()).expect("CSV header written");
    writer.write(&BarBatch::from_bars(bars)).expect("CSV written");
    writer.finish().expect("CSV finished")
}

fn parquet_bytes(bars: &[Bar]) -> Vec<u8> {
    let mut writer = ParquetWriter::new(Vec::new()).expect("Parquet writer");
    writer.write(&BarBatch::from_bars(bars)).expect("Parquet written");
    writer.finish().expect("Parquet finished")
}

/// Odd things to splice into a file.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            &b"\xef\xbb\xbf"[..],
            b"\r\n",
            b"\r",
            b"\n",
            b"\"",
            b"\"\"",
            b",",
            b",,,,",
            b"\0",
            b"\xff",
            b"\xc3",
            b"\xed\xa0\x80",
            b"NaN",
            b"-inf",
            b"1e309",
            b"-0",
            b"0x10",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"2016-12-31T23:59:60Z",
            b"10000-01-01",
            b"0000-01-01T00:00:00+25:00",
            b"2020-01-02T03:04:05.123456789012Z",
            b"\xe2\x80\xae",
            b"PAR1",
            b"\x00\x00\x00\x00",
            b"\xff\xff\xff\x7f",
            b"\x15\x04\x15",
        ])
        .prop_map(<[u8]>::to_vec),
        timestamp_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..16),
    ]
}

/// One way to damage a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep the first `at` bytes (an interrupted download).
    Truncate(prop::sample::Index),
    /// Flip one bit.
    FlipBit(prop::sample::Index, u8),
    /// Overwrite one byte.
    SetByte(prop::sample::Index, u8),
    /// Insert bytes.
    Insert(prop::sample::Index, Vec<u8>),
    /// Remove up to `len` bytes.
    Remove(prop::sample::Index, usize),
    /// Repeat a stretch of the file at another place.
    Splice(prop::sample::Index, prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> + Clone {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        1 => at().prop_map(Mutation::Truncate),
        4 => (at(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        2 => (at(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        2 => (at(), token()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (at(), 1usize..64).prop_map(|(at, len)| Mutation::Remove(at, len)),
        1 => (at(), at(), 1usize..64).prop_map(|(from, to, len)| Mutation::Splice(from, to, len)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Insert(_, inserted) = mutation {
            bytes.extend_from_slice(inserted);
        }
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Truncate(at) => bytes.truncate(at.index(len)),
        Mutation::FlipBit(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::SetByte(at, byte) => bytes[at.index(len)] = *byte,
        Mutation::Insert(at, inserted) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Remove(at, remove) => {
            let at = at.index(len);
            bytes.drain(at..(at + remove).min(len));
        }
        Mutation::Splice(from, to, copy) => {
            let from = from.index(len);
            let copied: Vec<u8> = bytes[from..(from + copy).min(len)].to_vec();
            let to = to.index(len + 1);
            bytes.splice(to..to, copied);
        }
    }
}

/// Damages the column chunks of a Parquet file only, in place (bit flips and
/// byte writes), so the footer still parses and the damage reaches the page
/// decoders instead of stopping at the metadata.
fn damage_pages(bytes: &mut [u8], edits: &[(prop::sample::Index, u8, bool)]) {
    let len = bytes.len();
    if len < 12 {
        return;
    }
    let footer = u32::from_le_bytes([bytes[len - 8], bytes[len - 7], bytes[len - 6], bytes[len - 5]]) as usize;
    let Some(end) = len.checked_sub(8 + footer).filter(|end| *end > 4) else { return };
    for (at, value, flip) in edits {
        let at = 4 + at.index(end - 4);
        if *flip {
            bytes[at] ^= 1 << (value % 8);
        } else {
            bytes[at] = *value;
        }
    }
}

fn page_edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, bool)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..4)
}

/// Timestamp-like text: RFC 3339 and its relatives with parts out of range
/// (year 0 and 10000, negative years, leap second 60, twelve fractional
/// digits, offsets such as +25:00), epoch numbers and plain dates.
fn timestamp_text() -> impl Strategy<Value = String> + Clone {
    let year = prop::sample::select(vec![
        "0000", "1899", "1900", "1970", "2020", "2199", "2200", "9999", "10000", "-0001", "+2020",
    ]);
    let two = prop::sample::select(vec!["00", "01", "12", "13", "23", "24", "29", "31", "32", "59", "60", "61", ""]);
    let fraction = prop::sample::select(vec!["", ".", ".5", ".123456", ".123456789", ".123456789012", ",5"]);
    let separator = prop::sample::select(vec!["T", "t", " ", ""]);
    let zone = prop::sample::select(vec![
        "", "Z", "z", "+00:00", "-05:30", "+23:59", "+25:00", "-99:99", "+0530", "+05", " UTC",
    ]);
    let full = (year, two.clone(), two.clone(), separator, two.clone(), two.clone(), two, fraction, zone).prop_map(
        |(year, month, day, separator, hour, minute, second, fraction, zone)| {
            format!("{year}-{month}-{day}{separator}{hour}:{minute}:{second}{fraction}{zone}")
        },
    );
    let date = (prop::sample::select(vec!["1999", "2020", "0000", "10000"]), 0u32..14, 0u32..33)
        .prop_map(|(year, month, day)| format!("{year}-{month:02}-{day:02}"));
    let epoch = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        Just("1577836800".to_owned()),
        Just("1577836800000".to_owned()),
    ];
    prop_oneof![4 => full, 2 => date, 1 => epoch, 1 => "\\PC{0,24}"]
}

/// Number-like text: what vendors put where a number belongs.
fn number_text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => (0.01f64..1000.0).prop_map(|n| n.to_string()),
        2 => any::<f64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec![
            "", " ", "0", "-0", "+1", "1.", ".5", "1e5", "1E-320", "1e309", "-1e309", "NaN", "nan", "inf", "-infinity",
            "Infinity", "1,000", "1_000", "0x10", "１", "1.2.3", "--1", "\"1\"", "null", "N/A", "-", "9223372036854775807",
            "9223372036854775808", "-9223372036854775809", "4.9e-324", "2.2250738585072014e-308",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// Timestamps as vendors write them, all valid.
fn good_timestamp_text() -> impl Strategy<Value = String> + Clone {
    (0i64..40, 0i64..86_400, prop::sample::select(vec![0, 1, 2, 3])).prop_map(|(day, second, form)| {
        let timestamp = Timestamp(946_684_800_000_000 + day * Timestamp::MICROS_PER_DAY + second * 1_000_000);
        let text = timestamp.to_string();
        match form {
            0 => text[..10].to_owned(),
            1 => text.replace('T', " ").replace('Z', ""),
            2 => text.replace('Z', "+00:00"),
            _ => text,
        }
    })
}

/// Prices and volumes as vendors write them, all valid numbers.
fn good_number_text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![(0.5f64..500.0).prop_map(|n| n.to_string()), (0u32..100_000).prop_map(|n| n.to_string())]
}

/// Column names a vendor's header may use, aliases and mistakes included.
fn column_name() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        "symbol",
        "Ticker",
        "SYMBOL",
        "timestamp",
        "Date",
        "datetime",
        "time",
        "open",
        "Open",
        "high",
        "HIGH",
        "low",
        "close",
        "Close",
        "volume",
        "Volume",
        "vwap",
        "trade_count",
        "adj_close",
        "Adj Close",
        "adjusted_close",
        "note",
        "",
        " ",
        "\u{feff}symbol",
        " open ",
        "\"close\"",
        "open\u{0}",
        "Äpfel",
    ])
    .prop_map(str::to_owned)
}

/// A header that maps (so rows are parsed), with the symbol column or not.
fn usable_header() -> impl Strategy<Value = Vec<String>> {
    (
        prop::bool::ANY,
        prop::sample::select(vec!["timestamp", "Date", "datetime", "time"]),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(with_symbol, time, vwap, trade_count, adj_close, note)| {
            let mut names: Vec<String> = Vec::new();
            if with_symbol {
                names.push("symbol".into());
            }
            names.push(time.into());
            names.extend(["open", "high", "low", "close", "volume"].map(String::from));
            for (wanted, name) in
                [(vwap, "vwap"), (trade_count, "trade_count"), (adj_close, "Adj Close"), (note, "note")]
            {
                if wanted {
                    names.push(name.into());
                }
            }
            names
        })
        .prop_flat_map(|names| Just(names).prop_shuffle())
}

/// One field: mostly a good value of the kind its column wants, often an
/// odd one of that kind, sometimes anything.
fn field(name: &str) -> BoxedStrategy<String> {
    let fitting: BoxedStrategy<String> = match canonical(name) {
        Some("symbol") => prop_oneof![
            8 => Just("AAPL".to_owned()),
            1 => prop::sample::select(vec!["^GSPC", "BRK.B", "", " AAPL ", "aapl", "A/B"]).prop_map(str::to_owned),
            1 => "\\PC{0,40}",
        ]
        .boxed(),
        Some("timestamp") => prop_oneof![3 => good_timestamp_text(), 2 => timestamp_text()].boxed(),
        Some("trade_count") => prop_oneof![3 => (0i64..1000).prop_map(|n| n.to_string()), 1 => number_text()].boxed(),
        _ => prop_oneof![3 => good_number_text(), 2 => number_text()].boxed(),
    };
    prop_oneof![
        40 => fitting,
        2 => "\\PC{0,16}",
        1 => Just(String::new()),
        1 => Just("\"quoted, with a comma\"".to_owned()),
        1 => Just("\"a \"\"quote\"\" and\na line break\"".to_owned()),
    ]
    .boxed()
}

/// The bar field a column name stands for, as the readers map names (a
/// copy of the rule, for the generators only).
fn canonical(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_start_matches('\u{feff}').trim().to_ascii_lowercase();
    Some(match name.as_str() {
        "symbol" | "ticker" => "symbol",
        "timestamp" | "date" | "datetime" | "time" => "timestamp",
        "open" | "high" | "low" | "close" | "volume" => "price",
        "vwap" => "vwap",
        "trade_count" => "trade_count",
        _ if read::is_adjusted_close(&name) => "adj_close",
        _ => return None,
    })
}

/// Read options that fit `names` nine times in ten: a fixed symbol exactly
/// when there is no symbol column, `--adjust` only with an adjusted close
/// (half the time); else any options.
fn options_for(names: &[String]) -> impl Strategy<Value = ReadOptions> + use<> {
    let has_symbol = names.iter().any(|name| canonical(name) == Some("symbol"));
    let has_adjusted_close = names.iter().any(|name| canonical(name) == Some("adj_close"));
    (options(), prop::bool::weighted(0.9), any::<bool>()).prop_map(move |(options, fit, adjust)| {
        if !fit {
            return options;
        }
        ReadOptions {
            symbol: (!has_symbol).then(|| Symbol::new("AAPL").expect("a valid symbol")),
            adjust: has_adjusted_close && adjust,
            ..options
        }
    })
}

/// A structured CSV file and options that usually fit it: a header
/// (usable or arbitrary), rows of fields chosen per column with odd values,
/// LF, CRLF or CR line ends, maybe a BOM, rows with too few or too many fields.
fn structured_csv() -> impl Strategy<Value = (Vec<u8>, ReadOptions)> {
    let header = prop_oneof![4 => usable_header(), 1 => prop::collection::vec(column_name(), 0..10)];
    let newline = prop_oneof![4 => Just("\n"), 1 => Just("\r\n"), 1 => Just("\r")];
    (header, newline, prop::bool::weighted(0.2), prop::bool::weighted(0.5))
        .prop_flat_map(|(header, newline, bom, final_newline)| {
            let row = header.iter().map(|name| field(name)).collect::<Vec<_>>();
            let width_change = prop_oneof![8 => Just(0i32), 1 => -2i32..0, 1 => 1i32..3];
            let rows = prop::collection::vec((row, width_change), 0..8);
            let options = options_for(&header);
            (Just(header), Just(newline), Just(bom), Just(final_newline), rows, options)
        })
        .prop_map(|(header, newline, bom, final_newline, rows, options)| {
            let mut text = String::new();
            if bom {
                text.push('\u{feff}');
            }
            text.push_str(&header.join(","));
            for (mut fields, width_change) in rows {
                text.push_str(newline);
                if width_change < 0 {
                    fields.truncate(fields.len().saturating_sub(width_change.unsigned_abs() as usize));
                } else {
                    fields.extend((0..width_change).map(|_| "1".to_owned()));
                }
                text.push_str(&fields.join(","));
            }
            if final_newline {
                text.push_str(newline);
            }
            (text.into_bytes(), options)
        })
}

/// A Parquet column for the bar field `name` stands for, of `rows` values:
/// mostly a type that can hold the field (the canonical one, other numbers,
/// text, timestamps of any unit and zone, dates) with mostly good values,
/// sometimes extreme values (i64::MAX timestamps, i32::MAX dates); when
/// `wild`, also types that cannot hold it (booleans, binary, nulls, ...).
fn parquet_column(name: &str, rows: usize, wild: bool) -> BoxedStrategy<ArrayRef> {
    let field = canonical(name);
    let micros = prop_oneof![
        6 => (0i64..20).prop_map(|day| 946_684_800_000_000 + day * Timestamp::MICROS_PER_DAY),
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]),
    ];
    let values = prop::collection::vec(prop::option::weighted(0.95, micros), rows);
    let good_float = prop_oneof![6 => 0.5f64..100.0, 1 => any::<f64>()];
    let floats = prop::collection::vec(prop::option::weighted(0.95, good_float), rows);
    let text = match field {
        Some("timestamp") => prop_oneof![3 => good_timestamp_text(), 1 => timestamp_text()].boxed(),
        Some("symbol") => prop_oneof![6 => Just("AAPL".to_owned()), 1 => "\\PC{0,12}"].boxed(),
        _ => prop_oneof![3 => good_number_text(), 1 => number_text()].boxed(),
    };
    let texts = prop::collection::vec(prop::option::weighted(0.95, text), rows);
    let zone = prop::option::of(prop::sample::select(vec!["UTC", "+02:00", "-23:59", "Etc/UTC", "America/New_York"]));
    let float64 = floats.clone().prop_map(|v| Arc::new(Float64Array::from(v)) as ArrayRef);
    let float32 =
        floats.prop_map(|v| Arc::new(v.into_iter().map(|v| v.map(|v| v as f32)).collect::<Float32Array>()) as ArrayRef);
    let int64 = values.clone().prop_map(|v| Arc::new(Int64Array::from(v)) as ArrayRef);
    let int32 = values
        .clone()
        .prop_map(|v| Arc::new(v.into_iter().map(|v| v.map(|v| v as i32)).collect::<Int32Array>()) as ArrayRef);
    let uint64 = values
        .clone()
        .prop_map(|v| Arc::new(v.into_iter().map(|v| v.map(|v| v as u64)).collect::<UInt64Array>()) as ArrayRef);
    let decimal = values.clone().prop_map(|v| {
        let array = Decimal128Array::from(v.into_iter().map(|v| v.map(i128::from)).collect::<Vec<_>>());
        Arc::new(array.with_precision_and_scale(38, 6).expect("a decimal type")) as ArrayRef
    });
    let utf8 = texts.clone().prop_map(|v| Arc::new(StringArray::from(v)) as ArrayRef);
    let large_utf8 = texts.clone().prop_map(|v| Arc::new(LargeStringArray::from(v)) as ArrayRef);
    let dictionary = texts
        .prop_map(|v| Arc::new(v.iter().map(|v| v.as_deref()).collect::<DictionaryArray<Int32Type>>()) as ArrayRef);
    let micros_zoned = (values.clone(), zone.clone()).prop_map(|(v, zone)| {
        let array = TimestampMicrosecondArray::from(v);
        Arc::new(match zone {
            Some(zone) => array.with_timezone(zone),
            None => array,
        }) as ArrayRef
    });
    let seconds = (values.clone(), zone).prop_map(|(v, zone)| {
        let array = TimestampSecondArray::from(v.into_iter().map(|v| v.map(|v| v / 1_000_000)).collect::<Vec<_>>());
        Arc::new(match zone {
            Some(zone) => array.with_timezone(zone),
            None => array,
        }) as ArrayRef
    });
    let raw_seconds = values.clone().prop_map(|v| Arc::new(TimestampSecondArray::from(v)) as ArrayRef);
    let millis = values.clone().prop_map(|v| Arc::new(TimestampMillisecondArray::from(v)) as ArrayRef);
    let nanos = values.clone().prop_map(|v| Arc::new(TimestampNanosecondArray::from(v)) as ArrayRef);
    let days = prop::collection::vec(
        prop::option::weighted(
            0.95,
            prop_oneof![6 => 10_950i32..11_000, 1 => any::<i32>(), 1 => Just(i32::MAX), 1 => Just(i32::MIN)],
        ),
        rows,
    )
    .prop_map(|v| Arc::new(Date32Array::from(v)) as ArrayRef);
    let date64 = values.prop_map(|v| Arc::new(Date64Array::from(v)) as ArrayRef);
    let booleans = prop::collection::vec(prop::option::of(any::<bool>()), rows)
        .prop_map(|v| Arc::new(BooleanArray::from(v)) as ArrayRef);
    let binary = prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..8)), rows)
        .prop_map(|v| Arc::new(v.iter().map(|v| v.as_deref()).collect::<BinaryArray>()) as ArrayRef);
    let nulls = Just(Arc::new(NullArray::new(rows)) as ArrayRef);
    match (field, wild) {
        (Some("timestamp"), false) => prop_oneof![
            6 => micros_zoned, 2 => utf8, 1 => large_utf8, 1 => dictionary, 2 => seconds, 1 => raw_seconds, 1 => millis,
            1 => nanos, 2 => days, 1 => date64,
        ]
        .boxed(),
        (Some("timestamp"), true) => prop_oneof![
            2 => micros_zoned, 1 => utf8, 1 => days, 1 => raw_seconds, 1 => int64, 1 => float64, 1 => booleans, 1 => nulls,
        ]
        .boxed(),
        (Some("symbol"), false) => prop_oneof![8 => utf8, 1 => large_utf8, 2 => dictionary].boxed(),
        (Some("symbol"), true) => prop_oneof![2 => utf8, 1 => dictionary, 1 => int64, 1 => binary, 1 => nulls].boxed(),
        (Some("trade_count"), false) => prop_oneof![6 => int64, 1 => int32, 1 => uint64, 2 => utf8].boxed(),
        (Some("trade_count"), true) => prop_oneof![1 => int64, 1 => utf8, 1 => float64, 1 => booleans, 1 => nulls].boxed(),
        (_, false) => prop_oneof![
            8 => float64, 1 => float32, 1 => int64, 1 => int32, 1 => uint64, 1 => decimal, 2 => utf8, 1 => large_utf8,
            1 => dictionary,
        ]
        .boxed(),
        (_, true) => prop_oneof![
            2 => float64, 1 => utf8, 1 => decimal, 1 => booleans, 1 => binary, 1 => micros_zoned, 1 => nulls,
        ]
        .boxed(),
    }
}

/// A Parquet file with bar-like column names and columns of any type,
/// (in three files of ten, some of a type that cannot hold its field),
/// written with arrow's own writer (not this crate's, which writes only
/// the canonical schema), and options that usually fit it. Cases whose
/// schema arrow's writer refuses are skipped.
fn typed_parquet() -> impl Strategy<Value = (Vec<u8>, ReadOptions)> {
    let rows = prop_oneof![1 => Just(0usize), 6 => 1usize..8];
    let names = prop_oneof![4 => usable_header(), 1 => prop::collection::vec(column_name(), 0..8)];
    (rows, names, prop::bool::weighted(0.3))
        .prop_flat_map(|(rows, names, wild)| {
            let columns = names.iter().map(|name| parquet_column(name, rows, wild)).collect::<Vec<_>>();
            let options = options_for(&names);
            (Just(names), columns, options)
        })
        .prop_filter_map("arrow's writer refuses the schema", |(names, columns, options)| {
            let mut seen = BTreeSet::new();
            let fields: Vec<Field> = names
                .iter()
                .zip(&columns)
                .map(|(name, column)| {
                    // Parquet needs distinct names; repeat a name with a suffix.
                    let mut name = name.clone();
                    while !seen.insert(name.clone()) {
                        name.push('_');
                    }
                    Field::new(name, column.data_type().clone(), true)
                })
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let batch = if columns.is_empty() {
                RecordBatch::new_empty(schema.clone())
            } else {
                RecordBatch::try_new(schema.clone(), columns).ok()?
            };
            let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).ok()?;
            writer.write(&batch).ok()?;
            Some((writer.into_inner().ok()?, options))
        })
}

/// Bytes that start like Parquet: the magic, random bytes, a footer length and the magic.
fn parquet_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(any::<u8>(), 0..256), any::<u32>()).prop_map(|(body, footer)| {
        let mut bytes = b"PAR1".to_vec();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&(footer % 300).to_le_bytes());
        bytes.extend_from_slice(b"PAR1");
        bytes
    })
}

// ------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn csv_of_random_bytes_gives_rows_or_problems(bytes in prop::collection::vec(any::<u8>(), 0..2048), options in options()) {
        check_csv(&bytes, &options)?;
    }

    #[test]
    fn csv_of_random_text_gives_rows_or_problems(
        text in prop_oneof![
            "\\PC{0,200}",
            "(symbol,timestamp,open,high,low,close,volume\r?\n)?([A-Z,0-9:.\" -]{0,40}\r?\n){0,8}",
        ],
        options in options(),
    ) {
        check_csv(text.as_bytes(), &options)?;
    }

    #[test]
    fn written_csv_reads_back_exactly(bars in prop::collection::vec(good_bar(), 0..12)) {
        let options = ReadOptions::default();
        let chunks: Vec<Chunk> = read::csv(csv_bytes(&bars).as_slice(), &options).collect();
        check_chunks(&chunks, &options, Format::Csv)?;
        let read: Vec<Bar> = chunks.iter().flat_map(|chunk| chunk.batch.to_bars()).collect();
        prop_assert_eq!(read, bars);
    }

    #[test]
    fn damaged_csv_gives_rows_or_problems(
        bars in bars(),
        mutations in prop::collection::vec(mutation(), 1..6),
        options in options_for(&written_columns()),
    ) {
        let mut bytes = csv_bytes(&bars);
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_csv(&bytes, &options)?;
    }

    #[test]
    fn csv_with_odd_headers_and_fields_gives_rows_or_problems((bytes, options) in structured_csv()) {
        check_csv(&bytes, &options)?;
    }

    #[test]
    fn damaged_structured_csv_gives_rows_or_problems(
        (bytes, options) in structured_csv(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = bytes;
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_csv(&bytes, &options)?;
    }
}

proptest! {
    // Each Parquet case writes and reads a file: fewer cases by default.
    #![proptest_config(config(128))]

    #[test]
    fn parquet_of_random_bytes_is_a_file_problem(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), parquet_like_bytes()],
        options in options(),
    ) {
        check_parquet(&bytes, &options)?;
    }

    #[test]
    fn written_parquet_reads_back_exactly(bars in prop::collection::vec(good_bar(), 0..12)) {
        let options = ReadOptions { chunk_rows: 5, ..ReadOptions::default() };
        let mut file = tempfile::tempfile().expect("temporary file");
        file.write_all(&parquet_bytes(&bars)).expect("written");
        let chunks: Vec<Chunk> = read::parquet(file, &options).collect();
        check_chunks(&chunks, &options, Format::Parquet)?;
        let read: Vec<Bar> = chunks.iter().flat_map(|chunk| chunk.batch.to_bars()).collect();
        prop_assert_eq!(read, bars);
    }

    #[test]
    fn damaged_parquet_gives_rows_or_problems(
        bars in bars(),
        mutations in prop::collection::vec(mutation(), 1..4),
        options in options_for(&written_columns()),
    ) {
        let mut bytes = parquet_bytes(&bars);
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_parquet(&bytes, &options)?;
    }

    #[test]
    fn parquet_with_damaged_pages_gives_rows_or_problems(
        (bytes, options) in prop_oneof![
            typed_parquet(),
            (bars(), options_for(&written_columns())).prop_map(|(bars, options)| (parquet_bytes(&bars), options)),
        ],
        edits in page_edits(),
    ) {
        let mut bytes = bytes;
        damage_pages(&mut bytes, &edits);
        check_parquet(&bytes, &options)?;
    }

    #[test]
    fn parquet_with_columns_of_any_type_gives_rows_or_problems((bytes, options) in typed_parquet()) {
        check_parquet(&bytes, &options)?;
    }

    #[test]
    fn damaged_parquet_with_columns_of_any_type_gives_rows_or_problems(
        (bytes, options) in typed_parquet(),
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        let mut bytes = bytes;
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        check_parquet(&bytes, &options)?;
    }
}

proptest! {
    // A dataset file needs a directory per case: fewer cases still.
    #![proptest_config(config(48))]

    #[test]
    fn hive_files_of_any_content_give_rows_or_problems(
        bytes in prop_oneof![typed_parquet().prop_map(|(bytes, _)| bytes), bars().prop_map(|bars| parquet_bytes(&bars))],
        mutations in prop::collection::vec(mutation(), 0..2),
        symbol in prop::sample::select(vec!["AAPL", "^GSPC", "EURUSD=X"]),
        options in options(),
    ) {
        let mut bytes = bytes;
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let options = ReadOptions { symbol: None, ..options };
        check_hive_parquet(&bytes, &Symbol::new(symbol).expect("a valid symbol"), &options)?;
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn hive_path_values_decode_or_refuse_any_text(text in prop_oneof!["\\PC{0,24}", "(%[0-9A-Fa-f+-]{0,2}|[A-Z^=/.])*", any::<String>()]) {
        let _ = read::hive::decode_value(&text);
        prop_assert_eq!(read::hive::decode_value(&read::hive::encode_value(&text)), Some(text.clone()));
        let path = PathBuf::from(format!("data/symbol={text}/part-0.parquet"));
        if let Some(Err(message)) = read::hive::symbol_from_path(&path) {
            prop_assert!(message.starts_with("the partition value"), "{message}");
        }
    }
}

// ---------------------------------------------------- edges and the corpus

/// A field of 1 MiB, a line of 100,000 fields, 1 MiB without a line break,
/// and a header of 10,000 columns: each is rows or problems, quickly.
#[test]
fn huge_fields_and_lines_give_rows_or_problems() {
    let header = "symbol,timestamp,open,high,low,close,volume\n";
    let huge_field =
        format!("{header}A,2020-01-02,{},2,0.5,1.5,10\nA,2020-01-03,1,2,0.5,1.5,10\n", "9".repeat(1 << 20));
    let huge_symbol = format!("{header}{},2020-01-02,1,2,0.5,1.5,10\n", "A".repeat(1 << 20));
    let wide_line = format!("{header}A,2020-01-02{}\n", ",1".repeat(100_000));
    let no_newline = "x".repeat(1 << 20);
    let quoted_forever = format!("{header}A,\"2020-01-02{}", "\n".repeat(1 << 16));
    let wide_header = format!("{}\n1\n", (0..10_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","));
    for (name, text) in [
        ("huge field", huge_field),
        ("huge symbol", huge_symbol),
        ("wide line", wide_line),
        ("no line break", no_newline),
        ("unterminated quote", quoted_forever),
        ("wide header", wide_header),
    ] {
        for options in [
            ReadOptions::default(),
            ReadOptions { symbol: Some(Symbol::new("A").expect("symbol")), chunk_rows: 1, ..ReadOptions::default() },
        ] {
            let started = std::time::Instant::now();
            if let Err(failure) = check_csv(text.as_bytes(), &options) {
                panic!("{name}: {failure}");
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{name} took {:?}", started.elapsed());
        }
    }
}

/// BOMs, CRLF and a bare CR end lines as vendors write them; the rows parse.
#[test]
fn boms_and_line_endings_are_read() {
    for text in [
        "\u{feff}Date,Open,High,Low,Close,Volume\r\n2020-01-02,1,2,0.5,1.5,10\r\n",
        "Date,Open,High,Low,Close,Volume\r2020-01-02,1,2,0.5,1.5,10\r",
        "\u{feff}\"Date\",\"Open\",\"High\",\"Low\",\"Close\",\"Volume\"\n\"2020-01-02\",\"1\",\"2\",\"0.5\",\"1.5\",\"10\"",
    ] {
        let options = ReadOptions { symbol: Some(Symbol::new("A").expect("symbol")), ..ReadOptions::default() };
        let chunks: Vec<Chunk> = read::csv(text.as_bytes(), &options).collect();
        if let Err(failure) = check_chunks(&chunks, &options, Format::Csv) {
            panic!("{text:?}: {failure}");
        }
        assert_eq!(chunks.iter().map(|chunk| chunk.batch.len()).sum::<usize>(), 1, "{text:?}: {chunks:?}");
    }
}

/// Replays `tests/corpus/csv/*` and `tests/corpus/parquet/*`: inputs that
/// once failed a property (the Parquet files made the reader panic, the CSV
/// files show the CR and CRLF line count gap of [`Format`]), read with the
/// options of the file name (`symbol-` fixes the symbol AAPL, `adjust-` sets
/// `--adjust`, `rows1-` reads one row per chunk, `hive-` reads the file as
/// one of a Hive dataset partitioned as `symbol=AAPL`), and through
/// `read::file` as a user's file is.
#[test]
fn corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut replayed = 0;
    for (parser, format) in [("csv", BarFileFormat::Csv), ("parquet", BarFileFormat::Parquet)] {
        let Ok(entries) = std::fs::read_dir(root.join(parser)) else { continue };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
            let symbol = Symbol::new("AAPL").expect("symbol");
            let options = ReadOptions {
                symbol: name.contains("symbol-").then(|| symbol.clone()),
                adjust: name.contains("adjust-"),
                chunk_rows: if name.contains("rows1-") { 1 } else { 100_000 },
                ..ReadOptions::default()
            };
            let bytes = std::fs::read(&path).expect("corpus file");
            let result = match format {
                BarFileFormat::Csv => check_csv(&bytes, &options),
                _ if name.starts_with("hive-") => check_hive_parquet(&bytes, &symbol, &options),
                _ => check_parquet(&bytes, &options),
            };
            if let Err(failure) = result {
                panic!("{}: {failure}", path.display());
            }
            let chunks: Vec<Chunk> = read::file(&path, format, &options).expect("a readable format").collect();
            assert!(chunks.iter().all(|chunk| chunk.numbers.len() == chunk.batch.len()), "{}", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 5, "{replayed} corpus files under {}", root.display());
}
