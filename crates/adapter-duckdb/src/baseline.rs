//! Engine-only baselines for `strata bench`: DuckDB doing the same load and
//! read as [`crate::DuckDbStore`] but without validation, primary key,
//! upsert, or conversion to the canonical schema. The ratio of the store's
//! throughput to these numbers is Strata's overhead over the raw engine.

use std::path::Path;
use std::time::{Duration, Instant};

use duckdb::Connection;
use duckdb::arrow::record_batch::RecordBatch;
use strata_core::{Result, StoreError};

const TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_bars (symbol VARCHAR, ts TIMESTAMPTZ, open DOUBLE, high DOUBLE, \
                     low DOUBLE, close DOUBLE, volume DOUBLE, vwap DOUBLE, trade_count BIGINT)";

fn failed(what: &str, error: duckdb::Error) -> StoreError {
    StoreError::Internal { backend: "duckdb", what: format!("baseline: {what}"), source: Some(Box::new(error)) }
}

/// Appends `batches` (canonical bar schema) into a keyless table of a DuckDB
/// file at `path` in one transaction; returns the time taken (open excluded).
pub fn raw_append(path: &Path, batches: &[RecordBatch]) -> Result<Duration> {
    let mut connection = Connection::open(path).map_err(|e| failed("open", e))?;
    connection.execute_batch(TABLE).map_err(|e| failed("create table", e))?;
    let started = Instant::now();
    let transaction = connection.transaction().map_err(|e| failed("begin", e))?;
    {
        let mut appender = transaction.appender("raw_bars").map_err(|e| failed("appender", e))?;
        for batch in batches {
            appender.append_record_batch(batch.clone()).map_err(|e| failed("append", e))?;
        }
        appender.flush().map_err(|e| failed("flush", e))?;
    }
    transaction.commit().map_err(|e| failed("commit", e))?;
    Ok(started.elapsed())
}

/// Reads one symbol's rows in `[start, end)` (microseconds) from the table
/// written by [`raw_append`] as Arrow; returns (rows, time taken).
pub fn raw_range_query(path: &Path, symbol: &str, start: i64, end: i64) -> Result<(usize, Duration)> {
    let connection = Connection::open(path).map_err(|e| failed("open", e))?;
    let started = Instant::now();
    let mut statement = connection
        .prepare(
            "SELECT * FROM raw_bars WHERE symbol = ? AND ts >= make_timestamp(?)::TIMESTAMPTZ AND ts < make_timestamp(?)::TIMESTAMPTZ \
             ORDER BY ts",
        )
        .map_err(|e| failed("prepare", e))?;
    let rows = statement
        .query_arrow(duckdb::params![symbol, start, end])
        .map_err(|e| failed("query", e))?
        .map(|batch| batch.num_rows())
        .sum();
    Ok((rows, started.elapsed()))
}
