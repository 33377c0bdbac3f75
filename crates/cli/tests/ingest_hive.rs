//! `strata ingest DIR` where DIR is a Hive dataset partitioned by symbol, as
//! pandas writes it (`df.to_parquet(DIR, partition_cols=["symbol"])`, with
//! nanosecond zone-aware timestamps and an `__index_level_0__` column): the
//! rows land in the store exactly (`summary --json`, `query --format csv`),
//! a bad value is reported at its file and row with nothing written, and a
//! directory without a dataset is a clear usage error. The market data goes
//! to an `efs` store (a directory); market-data commands never open its
//! evolution state (a DuckDB file in this build's default pairing), but the
//! backend must be compiled in, hence the `duckdb` feature.
//!
//! Needs `STRATA_PYTHON` (a Python with pandas and pyarrow, as `.ci/run`
//! sets it); without it the tests print a notice and pass, unless
//! `STRATA_REQUIRE_SERVICES=1`, which fails them.
#![cfg(all(feature = "efs", feature = "duckdb"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::strata_in;

use strata_tests::python;

/// The rows written, as `strata query --format csv` prints them (header
/// `symbol,timestamp,open,high,low,close,volume,vwap,trade_count`; floats in
/// Rust's shortest round-trip form, which Python's `float()` reads exactly).
const ROWS: &str = "\
symbol,timestamp,open,high,low,close,volume,vwap,trade_count
AAPL,2023-12-29T14:30:00.123456Z,33.333333333333336,33.63336475592144,33.33333323333334,33.63333333333334,0,33.48334899462739,7
AAPL,2024-01-02T14:30:00Z,193.9,194.4,191.73,192.53,82488700,,
BRK.B,2024-01-02T14:30:00.000001Z,360.5,363.13,359.62,362.58,3871000.5,361.2,42
^GSPC,2023-12-29T21:00:00Z,4782.88,4788.43,4751.99,4769.83,3126060000,,
^GSPC,2024-01-02T21:00:00Z,4745.2,4754.33,4722.67,4742.83,3743050000,4740.1,
^GSPC,2024-01-03T21:00:00Z,4725.07,4729.29,4699.71,4704.81,3950760000,,1
";

/// Writes [`ROWS`] with pandas as a dataset partitioned by symbol, the
/// timestamps as nanoseconds in New York time; `missing_close` empties the
/// close of `^GSPC`'s second row (pandas writes NaN as a null).
const WRITER: &str = r#"
import io, sys
import pandas as pd
out, rows, missing_close = sys.argv[1], sys.stdin.read(), sys.argv[2] == "1"
frame = pd.read_csv(io.StringIO(rows), dtype={"symbol": str, "trade_count": "Int64"}, float_precision="round_trip")
frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]").dt.tz_convert("America/New_York")
if missing_close:
    frame.loc[4, "close"] = float("nan")
frame.index = pd.Index([10 * i + 5 for i in range(len(frame))])  # written as __index_level_0__
frame.to_parquet(out, partition_cols=["symbol"])
"#;

fn write_dataset(python: &Path, out: &Path, missing_close: bool) {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(WRITER)
        .arg(out)
        .arg(if missing_close { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {python:?}: {error}"));
    child.stdin.take().unwrap().write_all(ROWS.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "pandas failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// An efs store in `dir/store` (created), as environment variables.
fn efs_env(dir: &Path) -> Vec<(&'static str, String)> {
    let root = dir.join("store");
    std::fs::create_dir_all(&root).unwrap();
    vec![("STORAGE_BACKEND", "efs".to_string()), ("STRATA_EFS_ROOT", root.to_str().unwrap().to_string())]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(key, value)| (*key, value.as_str())).collect()
}

#[test]
fn a_pandas_dataset_ingests_exactly() {
    let Some(python) = python("a_pandas_dataset_ingests_exactly") else { return };
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("pandas-bars");
    write_dataset(&python, &dataset, false);
    let env = efs_env(dir.path());
    let env = pairs(&env);

    let ingest = strata_in(dir.path(), &env, &["ingest", dataset.to_str().unwrap()]).success();
    assert!(ingest.stdout.contains("ingested 6 rows (3 symbols) from 3 files into"), "{}", ingest.stdout);
    let notes: Vec<&str> = ingest.stderr.lines().filter(|line| line.contains("__index_level_0__")).collect();
    assert_eq!(notes.len(), 1, "one note for the dataset, not one per file:\n{}", ingest.stderr);
    assert!(notes[0].contains("pandas-bars: ignoring column"), "{}", notes[0]);

    let summary = strata_in(dir.path(), &env, &["summary", "--json"]).success().json();
    assert_eq!(summary["total_rows"], 6, "{summary}");
    let symbols: Vec<(&str, u64)> = summary["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["symbol"].as_str().unwrap(), entry["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(symbols, [("AAPL", 2), ("BRK.B", 1), ("^GSPC", 3)], "{summary}");

    let query = strata_in(dir.path(), &env, &["query", "AAPL", "BRK.B", "^GSPC", "--format", "csv"]).success();
    assert_eq!(query.stdout, ROWS, "the rows come back exactly (timestamps to the microsecond, float bits)");
}

#[test]
fn a_bad_row_is_reported_at_its_file_and_row_and_nothing_is_written() {
    let Some(python) = python("a_bad_row_is_reported_at_its_file_and_row_and_nothing_is_written") else { return };
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("bad");
    write_dataset(&python, &dataset, true);
    let env = efs_env(dir.path());
    let env = pairs(&env);
    let run = strata_in(dir.path(), &env, &["ingest", dataset.to_str().unwrap()]).exits(2);
    let line = run.stderr.lines().find(|line| line.contains("value is missing")).unwrap_or_else(|| {
        panic!("no problem line:\n{}", run.stderr);
    });
    assert!(line.contains("/symbol=%5EGSPC/") && line.contains(".parquet:row 2: column close"), "{line}");
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    let summary = strata_in(dir.path(), &env, &["summary", "--json"]).success().json();
    assert_eq!(summary["total_rows"], 0, "{summary}");
}

#[test]
fn a_directory_without_a_dataset_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("bars.parquet"), b"").unwrap();
    let env = efs_env(dir.path());
    let env = pairs(&env);
    let run = strata_in(dir.path(), &env, &["ingest", plain.to_str().unwrap()]).exits(2);
    assert!(run.stderr.contains("holds no *.parquet file inside a symbol=... directory"), "{}", run.stderr);
    let with_symbol = strata_in(dir.path(), &env, &["ingest", "--symbol", "AAPL", plain.to_str().unwrap()]).exits(2);
    assert!(with_symbol.stderr.contains("--symbol does not apply"), "{}", with_symbol.stderr);
}
