//! Hive datasets written by pandas (`df.to_parquet(dir, partition_cols=["symbol"])`),
//! pyarrow (`pq.write_to_dataset`) and polars (`df.write_parquet(dir,
//! partition_by="symbol")`), the Python packages `.ci/run` installs and names
//! in `STRATA_PYTHON`, read back through `strata_formats::read::hive` with
//! exactly the rows written: symbols from the paths (`^GSPC`, `BRK.B`,
//! `EURUSD=X`, `7203`), timestamps to the microsecond whatever the unit and
//! zone they were written with, every float bit for bit, nulls kept.
//!
//! Without `STRATA_PYTHON` the tests print a notice and pass, unless
//! `STRATA_REQUIRE_SERVICES=1` (as `cargo xtask test` sets), which fails them.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use strata_core::{Bar, Timestamp};
use strata_formats::read::ReadOptions;
use strata_formats::read::hive::{self, DatasetFile};
use strata_formats::{BarFileFormat, Chunk, Locator};

use strata_tests::python;

/// Reads the rows Rust gives on stdin (CSV: symbol, micros, prices as
/// Rust prints floats, which `float()` parses exactly; empty = null) and
/// writes them as a dataset under `sys.argv[1]` with the writer `sys.argv[2]`.
const WRITER: &str = r#"
import csv, sys
out, writer = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(sys.stdin))
symbols = [r["symbol"] for r in rows]
micros = [int(r["micros"]) for r in rows]
def floats(key):
    return [float(r[key]) for r in rows]
def optional(key, kind):
    return [kind(r[key]) if r[key] != "" else None for r in rows]

if writer in ("pandas", "pandas-missing-close"):
    import pandas as pd
    stamps = pd.to_datetime(pd.Series(micros, dtype="int64"), unit="us", utc=True)
    frame = pd.DataFrame({
        "symbol": symbols,
        # nanoseconds, zone-aware in a zone that is not UTC: the instant counts
        "timestamp": stamps.astype("datetime64[ns, UTC]").dt.tz_convert("America/New_York"),
        "open": floats("open"), "high": floats("high"), "low": floats("low"),
        "close": floats("close"), "volume": floats("volume"),
        "vwap": optional("vwap", float),
        "trade_count": pd.array(optional("trade_count", int), dtype="Int64"),
    })
    if writer == "pandas-missing-close":
        gspc = [i for i, s in enumerate(symbols) if s == "^GSPC"]
        frame.loc[gspc[1], "close"] = float("nan")
    # Not a RangeIndex: pandas writes it as a column, __index_level_0__.
    frame.index = pd.Index([3 * i + 1 for i in range(len(frame))])
    assert str(frame["timestamp"].dtype) == "datetime64[ns, America/New_York]", frame["timestamp"].dtype
    frame.to_parquet(out, partition_cols=["symbol"])
elif writer == "pyarrow":
    import datetime, pyarrow as pa, pyarrow.parquet as pq
    epoch = datetime.datetime(1970, 1, 1)
    table = pa.table({
        "symbol": pa.array(symbols).dictionary_encode(),
        # nanoseconds without a zone: taken as UTC
        "timestamp": pa.array([m * 1000 for m in micros], pa.timestamp("ns")),
        "open": floats("open"), "high": floats("high"), "low": floats("low"),
        "close": floats("close"), "volume": floats("volume"),
        "vwap": pa.array(optional("vwap", float), pa.float64()),
        "trade_count": pa.array(optional("trade_count", int), pa.int64()),
        "year": [(epoch + datetime.timedelta(microseconds=m)).year for m in micros],
    })
    assert pa.types.is_dictionary(table.schema.field("symbol").type)
    pq.write_to_dataset(table, out, partition_cols=["symbol", "year"])
elif writer == "polars":
    import polars as pl
    frame = pl.DataFrame({
        "Symbol": pl.Series(symbols, dtype=pl.Categorical),
        "Timestamp": pl.Series(micros, dtype=pl.Int64),
        "Open": floats("open"), "High": floats("high"), "Low": floats("low"),
        "Close": floats("close"), "Volume": floats("volume"),
        "VWAP": pl.Series(optional("vwap", float), dtype=pl.Float64),
        "Trade_Count": pl.Series(optional("trade_count", int), dtype=pl.Int64),
    }).with_columns(
        # microseconds since the epoch -> ms precision would lose digits, so
        # nanoseconds in Tokyo time
        pl.from_epoch("Timestamp", time_unit="us").dt.cast_time_unit("ns")
        .dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo")
    )
    frame.write_parquet(out, partition_by="Symbol")
else:
    raise SystemExit("unknown writer " + writer)
"#;

/// Bars with awkward values: non-terminating binary fractions, a
/// microsecond that is not a round millisecond, `-0.0` and zero volume,
/// huge volumes, missing vwap and trade_count; two years.
fn bars() -> Vec<Bar> {
    let symbols = ["AAPL", "^GSPC", "BRK.B", "EURUSD=X", "7203"];
    let days = ["2023-12-29T14:30:00Z", "2023-12-31T23:59:59.999999Z", "2024-01-01T00:00:00Z", "2024-06-28T20:00:00Z"];
    let mut out = Vec::new();
    for (index, symbol) in symbols.iter().enumerate() {
        for (k, day) in days.iter().enumerate() {
            let open = 100.0 / 3.0 + index as f64 + k as f64 * 0.1;
            let close = if k % 2 == 0 { open + (0.1 + 0.2) } else { open - 0.7 };
            let (low, high) = (open.min(close) - 1e-7, open.max(close) + std::f64::consts::PI * 1e-5);
            out.push(Bar {
                symbol: symbol.to_string(),
                timestamp: Timestamp::parse(day).unwrap().plus_micros((index * 7_919 + k * 104_729) as i64),
                open,
                high,
                low,
                close,
                volume: [0.0, -0.0, 1e15 + 0.5, 1.0 / 7.0][k % 4],
                vwap: (k % 2 == 0).then_some((low + high) / 2.0),
                trade_count: (k % 3 != 2).then_some((k * 1_000 + index) as i64),
            });
        }
    }
    out
}

/// The CSV the writer script reads.
fn csv_of(bars: &[Bar]) -> String {
    let mut text = String::from("symbol,micros,open,high,low,close,volume,vwap,trade_count\n");
    for bar in bars {
        let vwap = bar.vwap.map(|v| v.to_string()).unwrap_or_default();
        let trades = bar.trade_count.map(|v| v.to_string()).unwrap_or_default();
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{vwap},{trades}\n",
            bar.symbol,
            bar.timestamp.micros(),
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume
        ));
    }
    text
}

/// Writes `bars` with `writer` into a new dataset directory under `directory`.
fn write_dataset(python: &Path, writer: &str, bars: &[Bar], directory: &Path) -> PathBuf {
    let out = directory.join(writer);
    let run = || {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = Command::new(python)
            .arg("-c")
            .arg(WRITER)
            .arg(&out)
            .arg(writer)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {python:?}: {error}"));
        child.stdin.take().unwrap().write_all(csv_of(bars).as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let mut output = run();
    // The Python writer is the reference, not the code under test: once, under
    // a loaded CI machine, pandas aborted in C++ ("terminate called without an
    // active exception", SIGABRT). A writer killed by a signal is run again
    // once; an error it reports is never retried.
    if output.status.code().is_none() {
        eprintln!("{writer} died ({}); running it again:\n{}", output.status, String::from_utf8_lossy(&output.stderr));
        output = run();
    }
    assert!(
        output.status.success(),
        "{writer} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Every chunk of every file of the dataset, files numbered in listing order.
fn read_dataset(dir: &Path) -> (Vec<DatasetFile>, Vec<Chunk>) {
    let files = hive::dataset_files(dir).unwrap();
    assert!(!files.is_empty(), "{dir:?} holds no file");
    let mut chunks = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let options = ReadOptions { file: index as u32, chunk_rows: 3, ..ReadOptions::default() };
        chunks.extend(hive::file(file, &options));
    }
    (files, chunks)
}

fn sorted(mut bars: Vec<Bar>) -> Vec<Bar> {
    bars.sort_by(|a, b| (&a.symbol, a.timestamp).cmp(&(&b.symbol, b.timestamp)));
    bars
}

/// Asserts bit-for-bit equality (`Bar`'s `==` takes `-0.0` for `0.0`).
fn assert_same_bars(writer: &str, got: &[Bar], expected: &[Bar]) {
    assert_eq!(got.len(), expected.len(), "{writer}: row count");
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(got, expected, "{writer}");
        let bits = |bar: &Bar| {
            ([bar.open, bar.high, bar.low, bar.close, bar.volume].map(f64::to_bits), bar.vwap.map(f64::to_bits))
        };
        assert_eq!(bits(got), bits(expected), "{writer}: float bits of {got:?}");
    }
}

#[test]
fn datasets_written_by_pandas_pyarrow_and_polars_read_back_exactly() {
    let Some(python) = python("datasets_written_by_pandas_pyarrow_and_polars_read_back_exactly") else { return };
    let directory = tempfile::tempdir().unwrap();
    let expected = sorted(bars());
    for writer in ["pandas", "pyarrow", "polars"] {
        let dataset = write_dataset(&python, writer, &expected, directory.path());
        let (files, chunks) = read_dataset(&dataset);
        let problems: Vec<_> = chunks.iter().flat_map(|chunk| chunk.problems.clone()).collect();
        assert!(problems.is_empty(), "{writer}: {problems:?}");
        let ignored: Vec<String> = chunks.iter().flat_map(|chunk| chunk.ignored_columns.clone()).collect();
        let expected_ignored: Vec<String> = match writer {
            "pandas" => vec!["__index_level_0__".to_string(); files.len()],
            _ => Vec::new(),
        };
        assert_eq!(ignored, expected_ignored, "{writer}: ignored columns");
        let paths: Vec<String> = files.iter().map(|file| file.path.display().to_string()).collect();
        match writer {
            // pyarrow and pandas percent-encode the value; polars writes it as it is.
            "pandas" | "pyarrow" => assert!(paths.iter().any(|p| p.contains("symbol=%5EGSPC")), "{paths:?}"),
            _ => assert!(paths.iter().any(|p| p.contains("Symbol=^GSPC")), "{paths:?}"),
        }
        if writer == "pyarrow" {
            assert!(paths.iter().all(|p| p.contains("/year=")), "a second partition level: {paths:?}");
        }
        let got = sorted(chunks.iter().flat_map(|chunk| chunk.batch.to_bars()).collect());
        assert_same_bars(writer, &got, &expected);
        let rows: u64 = chunks.iter().map(|chunk| chunk.rows).sum();
        assert_eq!(rows, expected.len() as u64, "{writer}");
        eprintln!("{writer}: {} files, {} rows, equal to what was written", files.len(), got.len());
    }
}

#[test]
fn a_bad_value_is_reported_at_its_file_and_row() {
    let Some(python) = python("a_bad_value_is_reported_at_its_file_and_row") else { return };
    let directory = tempfile::tempdir().unwrap();
    let dataset = write_dataset(&python, "pandas-missing-close", &sorted(bars()), directory.path());
    let (files, chunks) = read_dataset(&dataset);
    let locator = Locator::new(files.iter().map(|file| (file.path.clone(), BarFileFormat::Parquet)));
    let problems: Vec<(String, Option<&str>, &str)> = chunks
        .iter()
        .flat_map(|chunk| chunk.problems.iter())
        .map(|problem| (locator.describe(problem.location), problem.column, problem.message.as_str()))
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (location, column, message) = &problems[0];
    assert!(location.contains("/symbol=%5EGSPC/") && location.ends_with(".parquet:row 2"), "{location}");
    assert_eq!((*column, *message), (Some("close"), "value is missing"));
    let rows: usize = chunks.iter().map(|chunk| chunk.batch.len()).sum();
    assert_eq!(rows, bars().len() - 1, "the other rows read");
}
