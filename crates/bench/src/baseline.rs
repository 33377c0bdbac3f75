//! Raw DuckDB operations without Strata's layers (validation, staging table,
//! upsert, canonical batches, blocking pool): the baseline a
//! `strata_adapter_duckdb::DuckDbStore` is compared with.
//!
//! Each function opens its own connection to `path`: use a file that no
//! store in this process has open.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params};

/// Creates the baseline table (no key, so no index to maintain).
const CREATE_RAW_BARS: &str = "CREATE TABLE IF NOT EXISTS raw_bars (
    symbol VARCHAR, ts TIMESTAMPTZ, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE,
    volume DOUBLE, vwap DOUBLE, trade_count BIGINT)";

/// Appends `batches` (in the canonical bar schema) to a plain table of the
/// file at `path` with the Arrow appender, in autocommit mode. Returns the
/// time the appends and the final flush took.
pub(crate) fn raw_append(path: &Path, batches: &[RecordBatch]) -> Result<Duration> {
    let connection = Connection::open(path).context("opening the baseline file")?;
    connection.execute_batch(CREATE_RAW_BARS).context("creating the baseline table")?;
    let started = Instant::now();
    let mut appender = connection.appender("raw_bars").context("opening the baseline appender")?;
    for batch in batches {
        appender.append_record_batch(batch.clone()).context("appending to the baseline table")?;
    }
    appender.flush().context("flushing the baseline appender")?;
    Ok(started.elapsed())
}

/// Reads `symbol`'s rows in `[start_micros, end_micros)` from the table
/// [`raw_append`] filled, ordered by time, as Arrow. Returns the row count
/// and the time the query took.
pub(crate) fn raw_range_query(
    path: &Path,
    symbol: &str,
    start_micros: i64,
    end_micros: i64,
) -> Result<(usize, Duration)> {
    let connection = Connection::open(path).context("opening the baseline file")?;
    let started = Instant::now();
    let mut statement = connection
        .prepare(
            "SELECT * FROM raw_bars
             WHERE symbol = ? AND ts >= CAST(make_timestamp(?) AS TIMESTAMPTZ) AND ts < CAST(make_timestamp(?) AS TIMESTAMPTZ)
             ORDER BY ts",
        )
        .context("preparing the baseline query")?;
    let mut rows = 0;
    for batch in
        statement.stream_arrow(params![symbol, start_micros, end_micros]).context("running the baseline query")?
    {
        rows += batch.context("reading the baseline query")?.num_rows();
    }
    Ok((rows, started.elapsed()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strata_core::synthetic::SyntheticSpec;

    use super::*;

    #[test]
    fn appends_then_reads_a_range() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("baseline.duckdb");
        let spec = SyntheticSpec::minutes(2, 1000, 3);
        let batches: Vec<RecordBatch> = spec.batches(300).map(|batch| batch.into_record_batch()).collect();
        raw_append(&path, &batches).unwrap();
        let start = spec.start.micros();
        let (rows, _) = raw_range_query(&path, "SYN001", start, start + 100 * spec.interval_micros).unwrap();
        assert_eq!(rows, 100);
    }
}
