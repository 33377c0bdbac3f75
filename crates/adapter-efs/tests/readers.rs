//! pyarrow, pandas, polars and DuckDB (the Python packages `.ci/run` installs
//! into a virtual environment and names in `STRATA_PYTHON`) read a dataset
//! Strata wrote, the way the crate docs tell a user to ("Reading the dataset
//! from Python": `ROOT/bars` read the plain way, and with the partition
//! types for datasets whose every symbol is all digits, where the plain
//! readers would type `symbol` as an integer), and give back exactly the rows `EfsStore` returns: same
//! symbols (also `BRK.B`, `^GSPC`, `EURUSD=X`, all-digit tickers), same
//! timestamps to the microsecond, same float bits. External readers see an
//! upserted key twice until its partition is compacted (documented), so full
//! equality is asserted after `compact_all`; before it, append-only
//! partitions must already match exactly.
//!
//! Without `STRATA_PYTHON` the tests print a notice and pass, unless
//! `STRATA_REQUIRE_SERVICES=1` (as `cargo xtask test` sets), which fails them.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use chrono::Datelike as _;
use strata_adapter_efs::{EfsConfig, EfsStore};
use strata_core::{Bar, BarBatch, BarQuery, MarketDataStore, MarketDataStoreExt, Timestamp};

/// Shared by every reader script: `emit` prints one JSON line per row with
/// the symbol and its Python type, the timestamp as integer microseconds
/// since the epoch (UTC), and every float as `repr` (which round-trips the
/// bits; Rust parses it back exactly). NaN (pandas' null in a float column)
/// and `None` print as null.
const PRELUDE: &str = r#"
import json, math, sys
bars = sys.argv[1]

def num(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else repr(value)

def count(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)

def emit(rows):
    out = []
    for symbol, micros, o, h, l, c, v, vwap, trades in rows:
        out.append(json.dumps({
            "symbol": str(symbol), "symbol_type": type(symbol).__name__, "micros": int(micros),
            "open": num(o), "high": num(h), "low": num(l), "close": num(c), "volume": num(v),
            "vwap": num(vwap), "trade_count": count(trades),
        }))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))

COLUMNS = ["symbol", "micros", "open", "high", "low", "close", "volume", "vwap", "trade_count"]
"#;

/// The readers, each as a user would call it on `ROOT/bars`: the plain way
/// the crate docs show (`plain`: right whenever one symbol is not all
/// digits), and with the partition types the docs give for datasets whose
/// symbols may all be digits.
const READERS: [(&str, bool, &str); 8] = [
    (
        "pyarrow",
        true,
        r#"
import pyarrow as pa, pyarrow.dataset as ds
table = ds.dataset(bars, format="parquet", partitioning="hive").to_table()
print(table.schema, file=sys.stderr)
assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC"), table.schema.field("timestamp").type
table = table.append_column("micros", table.column("timestamp").cast(pa.int64()))
emit(zip(*(table.column(name).to_pylist() for name in COLUMNS)))
"#,
    ),
    (
        "pandas",
        true,
        r#"
import pandas as pd
frame = pd.read_parquet(bars)
print(frame.dtypes, file=sys.stderr)
assert str(frame["timestamp"].dt.tz) == "UTC", frame["timestamp"].dtype
frame["micros"] = (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
emit(zip(*(frame[name].tolist() for name in COLUMNS)))
"#,
    ),
    (
        "polars",
        true,
        r#"
import polars as pl
frame = pl.scan_parquet(bars).with_columns(pl.col("timestamp").dt.epoch("us").alias("micros")).collect()
print(frame.schema, file=sys.stderr)
assert frame.schema["timestamp"] == pl.Datetime("us", "UTC"), frame.schema["timestamp"]
emit(zip(*(frame[name].to_list() for name in COLUMNS)))
"#,
    ),
    (
        "duckdb",
        true,
        r#"
import duckdb
glob = (bars + "/**/*.parquet").replace("'", "''")
relation = duckdb.sql("select *, epoch_us(timestamp) as micros from read_parquet('" + glob + "', hive_partitioning = true)")
types = dict(zip(relation.columns, map(str, relation.types)))
print(types, file=sys.stderr)
assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE", types["timestamp"]
emit(relation.select(*COLUMNS).fetchall())
"#,
    ),
    (
        "pyarrow (partition types)",
        false,
        r#"
import pyarrow as pa, pyarrow.dataset as ds
hive = ds.partitioning(pa.schema([("symbol", pa.string()), ("year", pa.int32())]), flavor="hive")
table = ds.dataset(bars, format="parquet", partitioning=hive).to_table()
print(table.schema, file=sys.stderr)
table = table.append_column("micros", table.column("timestamp").cast(pa.int64()))
emit(zip(*(table.column(name).to_pylist() for name in COLUMNS)))
"#,
    ),
    (
        "pandas (partition types)",
        false,
        r#"
import pandas as pd, pyarrow as pa, pyarrow.dataset as ds
hive = ds.partitioning(pa.schema([("symbol", pa.string()), ("year", pa.int32())]), flavor="hive")
frame = pd.read_parquet(bars, partitioning=hive)
print(frame.dtypes, file=sys.stderr)
frame["micros"] = (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
emit(zip(*(frame[name].tolist() for name in COLUMNS)))
"#,
    ),
    (
        "polars (hive_schema)",
        false,
        r#"
import polars as pl
frame = pl.scan_parquet(bars, hive_schema={"symbol": pl.String, "year": pl.Int32}).collect()
print(frame.schema, file=sys.stderr)
frame = frame.with_columns(pl.col("timestamp").dt.epoch("us").alias("micros"))
emit(zip(*(frame[name].to_list() for name in COLUMNS)))
"#,
    ),
    (
        "duckdb (hive_types)",
        false,
        r#"
import duckdb
glob = (bars + "/**/*.parquet").replace("'", "''")
relation = duckdb.sql(
    "select *, epoch_us(timestamp) as micros from read_parquet('" + glob + "', "
    "hive_partitioning = true, hive_types = {'symbol': 'VARCHAR', 'year': 'INTEGER'})"
)
print(dict(zip(relation.columns, map(str, relation.types))), file=sys.stderr)
emit(relation.select(*COLUMNS).fetchall())
"#,
    ),
];

use strata_tests::python;

/// One row as compared: symbol, microseconds, the bits of open, high, low,
/// close, volume and vwap, trade count.
type Row = (String, i64, [u64; 5], Option<u64>, Option<i64>);

fn row_of(bar: &Bar) -> Row {
    (
        bar.symbol.clone(),
        bar.timestamp.micros(),
        [bar.open, bar.high, bar.low, bar.close, bar.volume].map(f64::to_bits),
        bar.vwap.map(f64::to_bits),
        bar.trade_count,
    )
}

/// Runs one reader over `bars` (the dataset, `ROOT/bars`) and parses its rows (sorted); panics with the
/// script's stderr when it fails or a row is not the expected shape.
fn read_with(python: &Path, reader: &str, script: &str, bars: &Path) -> Vec<Row> {
    let output = Command::new(python)
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .arg(bars)
        .output()
        .unwrap_or_else(|error| panic!("starting {python:?}: {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{reader} failed ({}):\n{stderr}", output.status);
    let float = |line: &str, value: &serde_json::Value, column: &str| -> Option<u64> {
        match &value[column] {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some(
                text.parse::<f64>().unwrap_or_else(|error| panic!("{reader}: {column} in {line}: {error}")).to_bits(),
            ),
            other => panic!("{reader}: {column} is {other} in {line}"),
        }
    };
    let mut rows: Vec<Row> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let symbol = value["symbol"].as_str().unwrap().to_string();
            assert_eq!(
                value["symbol_type"], "str",
                "{reader} gives symbol {symbol:?} as a Python {} (schema on stderr:\n{stderr})",
                value["symbol_type"]
            );
            let prices = ["open", "high", "low", "close", "volume"].map(|column| {
                float(line, &value, column).unwrap_or_else(|| panic!("{reader}: {column} is null in {line}"))
            });
            (
                symbol,
                value["micros"].as_i64().unwrap(),
                prices,
                float(line, &value, "vwap"),
                value["trade_count"].as_i64(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Asserts two sorted row lists are equal, naming the first difference.
fn assert_same_rows(reader: &str, what: &str, got: &[Row], expected: &[Row]) {
    if got == expected {
        return;
    }
    let first = got.iter().zip(expected).position(|(a, b)| a != b);
    let got_symbols: BTreeSet<&str> = got.iter().map(|row| row.0.as_str()).collect();
    let expected_symbols: BTreeSet<&str> = expected.iter().map(|row| row.0.as_str()).collect();
    panic!(
        "{reader} ({what}): {} rows, Strata {}; symbols {got_symbols:?}, Strata {expected_symbols:?}; first difference: {:?} vs Strata {:?}",
        got.len(),
        expected.len(),
        first.map(|index| &got[index]),
        first.map(|index| &expected[index]),
    );
}

/// A bar with awkward values: non-terminating binary fractions, a
/// microsecond that is not a round millisecond, `-0.0` and zero volume, nulls.
fn bar(symbol: &str, timestamp: &str, index: usize, k: usize, bump: f64) -> Bar {
    let open = 100.0 / 3.0 + index as f64 + k as f64 * 0.1 + bump;
    let close = if k.is_multiple_of(2) { open + (0.1 + 0.2) } else { open - 0.7 };
    let (low, high) = (open.min(close) - 1e-7, open.max(close) + std::f64::consts::PI * 1e-5);
    let volume = [0.0, -0.0, 1e15 + 0.5, 12_345.678, 1.0 / 7.0][k % 5];
    Bar {
        symbol: symbol.to_string(),
        timestamp: Timestamp::parse(timestamp).unwrap().plus_micros((index * 7_919 + k * 104_729) as i64),
        open,
        high,
        low,
        close,
        volume,
        vwap: k.is_multiple_of(2).then_some((low + high) / 2.0),
        trade_count: (k % 3 != 2).then_some((k * 1_000 + index) as i64),
    }
}

const DAYS: [&str; 5] = ["2023-12-28", "2023-12-29", "2023-12-31", "2024-01-01", "2024-06-28"];

/// Bars of each symbol on [`DAYS`] (two years).
fn initial(symbols: &[&str]) -> Vec<Bar> {
    let mut out = Vec::new();
    for (index, symbol) in symbols.iter().enumerate() {
        for (k, day) in DAYS.iter().enumerate() {
            out.push(bar(symbol, day, index, k, 0.0));
        }
    }
    out
}

/// Writes `batches` in order, checks Strata against last-write-wins, then
/// runs the readers (all, or only those given the partition types when
/// `plain` is false) before and after `compact_all`. `upserted` names the
/// (symbol, year) partitions whose keys a later batch rewrote.
fn check_readers(test: &str, symbols: &[&str], batches: &[Vec<Bar>], upserted: &[(&str, i32)], plain: bool) {
    let Some(python) = python(test) else { return };
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = runtime.block_on(EfsStore::open(EfsConfig::new(root))).unwrap();
    let mut expected = BTreeMap::new();
    for batch in batches {
        runtime.block_on(store.write_bars(BarBatch::from_bars(batch))).unwrap();
        for bar in batch {
            expected.insert((bar.symbol.clone(), bar.timestamp.micros()), row_of(bar));
        }
    }
    let strata: Vec<Row> =
        runtime.block_on(store.collect_bars(BarQuery::default())).unwrap().iter().map(row_of).collect();
    let expected: Vec<Row> = expected.into_values().collect();
    assert_same_rows("strata", "before compaction", &strata, &expected);
    let written: BTreeSet<&str> = strata.iter().map(|row| row.0.as_str()).collect();
    assert_eq!(written, symbols.iter().copied().collect(), "every symbol written");

    let year = |micros: i64| Timestamp::from_micros(micros).day().year();
    let is_upserted = |row: &Row| upserted.contains(&(row.0.as_str(), year(row.1)));
    let bars = root.join("bars");
    for (symbol, year) in upserted {
        let dir =
            bars.join(format!("symbol={}", strata_adapter_efs::encode_symbol(symbol))).join(format!("year={year}"));
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            .count();
        assert!(files >= 2, "{dir:?} holds {files} data files before compaction; the test needs an uncompacted upsert");
    }
    let (append_only, rewritten): (Vec<Row>, Vec<Row>) = strata.iter().cloned().partition(|row| !is_upserted(row));
    let rewritten_keys: BTreeSet<(String, i64)> = rewritten.iter().map(|row| (row.0.clone(), row.1)).collect();
    let readers: Vec<(&str, &str)> =
        READERS.iter().filter(|reader| plain || !reader.1).map(|(name, _, script)| (*name, *script)).collect();
    for &(reader, script) in &readers {
        let rows = read_with(&python, reader, script, &bars);
        let (got_append_only, got_rewritten): (Vec<Row>, Vec<Row>) =
            rows.into_iter().partition(|row| !is_upserted(row));
        assert_same_rows(reader, "append-only partitions before compaction", &got_append_only, &append_only);
        let keys: BTreeSet<(String, i64)> = got_rewritten.iter().map(|row| (row.0.clone(), row.1)).collect();
        assert_eq!(keys, rewritten_keys, "{reader}: the keys of upserted partitions before compaction");
        eprintln!(
            "{test}: {reader} before compaction: {} rows ({} in upserted partitions, Strata {})",
            got_append_only.len() + got_rewritten.len(),
            got_rewritten.len(),
            rewritten.len()
        );
    }

    runtime.block_on(store.compact_all()).unwrap();
    let compacted: Vec<Row> =
        runtime.block_on(store.collect_bars(BarQuery::default())).unwrap().iter().map(row_of).collect();
    assert_same_rows("strata", "after compaction", &compacted, &expected);
    for &(reader, script) in &readers {
        let rows = read_with(&python, reader, script, &bars);
        assert_same_rows(reader, "after compaction", &rows, &compacted);
        eprintln!("{test}: {reader} after compaction: {} rows, equal to Strata's", rows.len());
    }
}

#[test]
fn python_readers_give_back_odd_symbols_and_exact_values() {
    let symbols = ["AAPL", "BRK.B", "7203", "0050", "^GSPC", "EURUSD=X", "BTC-USD"];
    let first = initial(&symbols);
    // An upsert of `^GSPC`'s 2024 keys (a partition with two files, the
    // same keys in both), new keys for `BRK.B` 2024 (two files, no
    // duplicate), and one rewritten `7203` key of 2023.
    let mut second: Vec<Bar> = first
        .iter()
        .filter(|bar| bar.symbol == "^GSPC" && bar.timestamp >= Timestamp::parse("2024-01-01").unwrap())
        .map(|bar| Bar {
            close: bar.close + 0.25,
            high: bar.high + 0.25,
            volume: 42.5,
            vwap: None,
            trade_count: Some(7),
            ..bar.clone()
        })
        .collect();
    second.push(bar("BRK.B", "2024-07-01", 1, 3, 0.5));
    second.push(bar("BRK.B", "2024-12-31", 1, 4, 0.5));
    let third = vec![Bar { open: 1.0 / 3.0, low: 1.0 / 3.0, trade_count: None, ..first[12].clone() }];
    assert_eq!(third[0].symbol, "7203");
    check_readers(
        "python_readers_give_back_odd_symbols_and_exact_values",
        &symbols,
        &[first, second, third],
        &[("^GSPC", 2024), ("7203", 2023)],
        true,
    );
}

#[test]
fn python_readers_keep_all_digit_symbols_as_strings() {
    // Every symbol numeric: the case where readers' partition-type inference
    // would type `symbol` as an integer (and `0050` would become 50).
    let symbols = ["7203", "0050", "6758"];
    let first = initial(&symbols);
    let second = vec![Bar { close: first[3].close + 1.0, high: first[3].high + 1.0, ..first[3].clone() }];
    check_readers(
        "python_readers_keep_all_digit_symbols_as_strings",
        &symbols,
        &[first, second],
        &[("7203", 2024)],
        false,
    );
}
