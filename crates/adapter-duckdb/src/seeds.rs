//! A read-only [`MarketDataStore`] over the Python system's DuckDB file (the
//! "seeds layout"), so `strata copy` can move a team's bars into Strata.
//!
//! The seeds layout is one table `main.ohlcv_bars(symbol, timestamp, open,
//! high, low, close, volume, vwap, trade_count)` and no Strata
//! `schema_version` table. `timestamp` is `TIMESTAMP` (no zone: read as UTC)
//! or `TIMESTAMPTZ`; `trade_count` any integer type; the prices any number.
//!
//! Every statement is one of `DuckDbStore`'s own (`schema::bar_query`,
//! `schema::digest_query`, `schema::SUMMARY`, ...) behind a common table
//! expression named `ohlcv_bars` that presents the seeds table in Strata's
//! columns (`ts TIMESTAMPTZ`, `DOUBLE` prices, `BIGINT` trade counts). An
//! unqualified `ohlcv_bars` binds to that expression and the expression reads
//! `main.ohlcv_bars`, so queries, summaries and digests (computed inside
//! DuckDB) are exactly those of a Strata file holding the same bars.
//!
//! The file is opened with DuckDB's `READ_ONLY` access mode and without
//! extension autoloading (so no ICU: a `TIMESTAMP` cast to `TIMESTAMPTZ` is
//! taken as UTC, as in `DuckDbStore`). Writes and deletes are
//! `Unsupported`. Bars that Strata would refuse to store (a negative price, a
//! key twice) end the query with `InvalidInput` naming their symbol and
//! timestamp: they are never dropped silently.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params_from_iter};
use futures::StreamExt;
use futures::stream::BoxStream;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Result, StoreError, Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};
use tokio::sync::mpsc;

use crate::config::OpenMode;
use crate::error::{self, ResultExt};
use crate::file::{self, Found};
use crate::market::{self, QUERY_BATCH_ROWS, QUERY_CHANNEL_DEPTH};
use crate::schema::{self, BoundSql};
use crate::store::{absolute_path, open_connection, open_files, run_blocking};

/// The name this source prints (`Display`, health, its own errors).
const BACKEND: &str = "duckdb-seeds";

/// What a seeds source can do: read, and digest inside DuckDB. Nothing is
/// ever written, so no write-related fact holds.
const CAPABILITIES: Capabilities = Capabilities {
    durable: false,
    shared_across_hosts: false,
    server_side_digest: true,
    cheap_delete: false,
    transactions: false,
};

/// The columns of the seeds table, in canonical order.
const SEEDS_COLUMNS: [&str; 9] =
    ["symbol", "timestamp", "open", "high", "low", "close", "volume", "vwap", "trade_count"];

/// The columns of `main.ohlcv_bars` (lower-cased names and DuckDB types).
const TABLE_COLUMNS: &str = "SELECT lower(column_name), data_type FROM information_schema.columns
    WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = 'ohlcv_bars'";

/// Whether the DuckDB file at `path` is in the seeds layout: it has a table
/// `main.ohlcv_bars` with a `timestamp` column and no Strata
/// `schema_version` table.
///
/// `Ok(false)` for a missing file and for a DuckDB file of another layout
/// (a Strata store, say; a file this process has open as a `DuckDbStore` is
/// answered without being looked at). An error for a path holding something
/// other than a DuckDB database (never opened, left unchanged), for a file
/// another process holds for writing (`Unavailable`), and for one that
/// cannot be read. Blocks: call it from a blocking thread in async code.
pub fn is_seeds_layout(path: impl AsRef<Path>) -> Result<bool> {
    let path = match absolute_path(path.as_ref(), OpenMode::Read) {
        Ok(path) => path,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(other) => return Err(other),
    };
    let open_here = open_files();
    if open_here.get(&path).and_then(Weak::upgrade).is_some() {
        return Ok(false);
    }
    match file::inspect(&path)? {
        Found::Missing => Ok(false),
        Found::Database { .. } => {
            let connection = open_connection(&path, None, None, true)
                .map_err(|failure| error::open_error(&path, Duration::ZERO, failure))?;
            Ok(seeds_columns(&connection)?.is_ok())
        }
    }
}

/// The Python system's DuckDB file as a read-only market-data source.
///
/// Cheap to clone: clones share the open database. Do not open the same
/// file as a `DuckDbStore` while a source has it open.
#[derive(Clone)]
pub struct SeedsDuckDbSource {
    inner: Arc<Source>,
}

/// The shared state behind every clone.
struct Source {
    /// Absolute path of the file.
    path: PathBuf,
    /// The type of the `timestamp` column.
    timestamp: TimestampType,
    /// The statement prefix that presents the seeds table in Strata's columns.
    view: String,
    /// The connection new per-call connections are cloned from.
    origin: Mutex<Connection>,
}

/// The type of the seeds table's `timestamp` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampType {
    /// `TIMESTAMP`: wall-clock values, read as UTC.
    Naive,
    /// `TIMESTAMPTZ`: instants.
    Zoned,
}

impl TimestampType {
    /// From DuckDB's type name, or `None` for a type that is not read.
    fn of(data_type: &str) -> Option<Self> {
        match data_type.to_ascii_uppercase().as_str() {
            "TIMESTAMP" => Some(TimestampType::Naive),
            "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => Some(TimestampType::Zoned),
            _ => None,
        }
    }

    /// For health reports and messages.
    fn describe(self) -> &'static str {
        match self {
            TimestampType::Naive => "TIMESTAMP (no zone: read as UTC)",
            TimestampType::Zoned => "TIMESTAMPTZ",
        }
    }

    /// The `ts` column of the canonical view.
    fn as_ts(self) -> &'static str {
        match self {
            TimestampType::Naive => "CAST(\"timestamp\" AS TIMESTAMPTZ)",
            TimestampType::Zoned => "\"timestamp\"",
        }
    }
}

impl fmt::Display for SeedsDuckDbSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}

impl fmt::Debug for SeedsDuckDbSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeedsDuckDb({})", self.inner.path.display())
    }
}

impl SeedsDuckDbSource {
    /// Opens the seeds-layout DuckDB file at `path` read-only.
    ///
    /// `NotFound` when it does not exist; `InvalidInput` when the path holds
    /// something other than a DuckDB database (never opened), a DuckDB file
    /// of another layout (a Strata store: open it as a `DuckDbStore`), a
    /// seeds table lacking a column or with a `timestamp` column of another
    /// type than `TIMESTAMP`/`TIMESTAMPTZ`, or a file this process has open
    /// as a `DuckDbStore`; `Unavailable` when another process holds the file
    /// for writing.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        run_blocking("opening the seeds file", move || open_blocking(&path)).await
    }

    /// The file (absolute).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

fn open_blocking(path: &Path) -> Result<SeedsDuckDbSource> {
    let path = absolute_path(path, OpenMode::Read)?;
    // Held while opening, so a `DuckDbStore` of this process cannot open the file meanwhile.
    let open_here = open_files();
    if open_here.get(&path).and_then(Weak::upgrade).is_some() {
        return Err(StoreError::invalid(format!(
            "{} is open in this process as a Strata DuckDB store, so it is not in the seeds layout",
            path.display()
        )));
    }
    if file::inspect(&path)? == Found::Missing {
        return Err(StoreError::not_found(format!("seeds-layout DuckDB file {} (it does not exist)", path.display())));
    }
    let connection = open_connection(&path, None, None, true)
        .map_err(|failure| error::open_error(&path, Duration::ZERO, failure))?;
    let not_seeds = |why: String| {
        StoreError::invalid(format!(
            "{} is not in the seeds layout (the Python system's main.ohlcv_bars with a timestamp column): {why}",
            path.display()
        ))
    };
    let columns = seeds_columns(&connection)?.map_err(not_seeds)?;
    let timestamp = check_columns(&columns).map_err(not_seeds)?;
    tracing::debug!(path = %path.display(), timestamp = timestamp.describe(), "opened a seeds-layout DuckDB file");
    let view = canonical_view(timestamp);
    Ok(SeedsDuckDbSource { inner: Arc::new(Source { path, timestamp, view, origin: Mutex::new(connection) }) })
}

/// The columns of `main.ohlcv_bars` when the file is in the seeds layout,
/// or why it is not.
fn seeds_columns(connection: &Connection) -> Result<std::result::Result<Vec<(String, String)>, String>> {
    let has_version_table: bool = connection
        .query_row(schema::HAS_VERSION_TABLE, [], |row| row.get(0))
        .during("looking for the schema_version table")?;
    if has_version_table {
        return Ok(Err("it has Strata's schema_version table: it is a Strata store".to_string()));
    }
    let mut statement = connection.prepare(TABLE_COLUMNS).during("reading the columns of ohlcv_bars")?;
    let columns = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
        .during("reading the columns of ohlcv_bars")?
        .collect::<duckdb::Result<Vec<_>>>()
        .during("reading the columns of ohlcv_bars")?;
    Ok(if columns.is_empty() {
        Err("it has no table main.ohlcv_bars".to_string())
    } else if !columns.iter().any(|(name, _)| name == "timestamp") {
        Err("its ohlcv_bars has no timestamp column".to_string())
    } else {
        Ok(columns)
    })
}

/// The type of the `timestamp` column, once every seeds column is there.
fn check_columns(columns: &[(String, String)]) -> std::result::Result<TimestampType, String> {
    let missing: Vec<&str> =
        SEEDS_COLUMNS.into_iter().filter(|wanted| !columns.iter().any(|(name, _)| name == wanted)).collect();
    if !missing.is_empty() {
        return Err(format!("its ohlcv_bars lacks the column(s) {}", missing.join(", ")));
    }
    let data_type = columns.iter().find(|(name, _)| name == "timestamp").map(|(_, data_type)| data_type.as_str());
    let data_type = data_type.unwrap_or_default();
    TimestampType::of(data_type)
        .ok_or_else(|| format!("its timestamp column has type {data_type}; TIMESTAMP or TIMESTAMPTZ is read"))
}

/// The common table expression that presents `main.ohlcv_bars` in Strata's
/// columns under the name `ohlcv_bars`. Not materialised, so filters still
/// reach the table scan.
fn canonical_view(timestamp: TimestampType) -> String {
    format!(
        "WITH ohlcv_bars AS NOT MATERIALIZED (
            SELECT CAST(symbol AS VARCHAR) AS symbol, {ts} AS ts,
                   CAST(open AS DOUBLE) AS open, CAST(high AS DOUBLE) AS high, CAST(low AS DOUBLE) AS low,
                   CAST(close AS DOUBLE) AS close, CAST(volume AS DOUBLE) AS volume,
                   CAST(vwap AS DOUBLE) AS vwap, CAST(trade_count AS BIGINT) AS trade_count
            FROM main.ohlcv_bars)",
        ts = timestamp.as_ts()
    )
}

/// `sql` (one of `DuckDbStore`'s statements over an unqualified
/// `ohlcv_bars`) reading the seeds table through `view`: the view joins an
/// opening `WITH` list, or becomes one.
fn over_seeds(view: &str, sql: &str) -> String {
    let sql = sql.trim_start();
    match sql.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("WITH ") => format!("{view},\n{}", &sql[5..]),
        _ => format!("{view}\n{sql}"),
    }
}

impl Source {
    /// A connection of its own for one call.
    fn connection(&self) -> Result<Connection> {
        self.origin.lock().unwrap_or_else(PoisonError::into_inner).try_clone().during("opening a read connection")
    }

    /// `bound` reading the seeds table.
    fn over_seeds(&self, bound: BoundSql) -> BoundSql {
        BoundSql { sql: over_seeds(&self.view, &bound.sql), params: bound.params }
    }

    /// How messages name the table.
    fn table(&self) -> String {
        format!("ohlcv_bars of {}", self.path.display())
    }

    /// Runs a bar query and sends checked, bounded batches until the result
    /// ends, an error occurs (returned for the caller to send) or the
    /// consumer goes away.
    fn stream_query(&self, query: &BarQuery, sender: &mpsc::Sender<Result<BarBatch>>) -> Result<()> {
        let connection = self.connection()?;
        let BoundSql { sql, params } = self.over_seeds(schema::bar_query(query));
        let mut statement = connection.prepare(&sql).during("preparing the seeds bar query")?;
        let chunks = statement.stream_arrow(params_from_iter(params.iter())).during("running the seeds bar query")?;
        let mut check = strata_core::validate::SourceCheck::new(self.table());
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0;
        for chunk in chunks {
            let chunk = chunk.during("reading seeds bars")?;
            if chunk.num_rows() == 0 {
                continue;
            }
            pending_rows += chunk.num_rows();
            pending.push(chunk);
            if pending_rows >= QUERY_BATCH_ROWS {
                let batch = check.check(market::join(std::mem::take(&mut pending))?)?;
                pending_rows = 0;
                if sender.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
            }
        }
        if !pending.is_empty() {
            let _ = sender.blocking_send(Ok(check.check(market::join(pending)?)?));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl MarketDataStore for SeedsDuckDbSource {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn write_bars(&self, _batch: BarBatch) -> Result<WriteReport> {
        Err(StoreError::unsupported(BACKEND, "write_bars: a seeds-layout source is read-only"))
    }

    fn query_bars(&self, query: BarQuery) -> BoxStream<'static, Result<BarBatch>> {
        if query.is_trivially_empty() {
            return futures::stream::empty().boxed();
        }
        let source = Arc::clone(&self.inner);
        // The reader starts on the first poll, so building the stream needs no runtime.
        strata_store_kit::lazy_blocking_producer(QUERY_CHANNEL_DEPTH, BACKEND, move |sender| {
            source.stream_query(&query, sender)
        })
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let source = Arc::clone(&self.inner);
        run_blocking("summarising seeds bars", move || {
            let connection = source.connection()?;
            let sql = over_seeds(&source.view, schema::SUMMARY);
            let mut statement = connection.prepare(&sql).during("summarising seeds bars")?;
            let rows = statement
                .query_map([], |row| {
                    Ok(SymbolSummary {
                        symbol: row.get(0)?,
                        first: Timestamp(row.get(1)?),
                        last: Timestamp(row.get(2)?),
                        rows: row.get(3)?,
                    })
                })
                .during("summarising seeds bars")?;
            let symbols = rows.collect::<duckdb::Result<Vec<_>>>().during("summarising seeds bars")?;
            Ok(MarketSummary { symbols })
        })
        .await
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        if matches!((query.start, query.end), (Some(start), Some(end)) if start >= end) {
            return Ok(Vec::new());
        }
        let source = Arc::clone(&self.inner);
        run_blocking("computing seeds digests", move || {
            let connection = source.connection()?;
            market::digest(&connection, &source.over_seeds(schema::digest_query(&query)))
        })
        .await
    }

    async fn delete_bars(&self, _symbol: &Symbol, _range: TimeRange) -> Result<u64> {
        Err(StoreError::unsupported(BACKEND, "delete_bars: a seeds-layout source is read-only"))
    }

    async fn health(&self) -> Result<HealthReport> {
        let source = Arc::clone(&self.inner);
        run_blocking("checking the seeds file", move || {
            let connection = source.connection()?;
            let answer: i32 = connection.query_row("SELECT 1", [], |row| row.get(0)).during("running SELECT 1")?;
            let version = connection.version().during("reading the DuckDB version")?;
            let bars: i64 = connection
                .query_row(&over_seeds(&source.view, schema::COUNT_BARS), [], |row| row.get(0))
                .during("counting seeds bars")?;
            let status = if answer == 1 { HealthStatus::Healthy } else { HealthStatus::Down };
            let mut report = HealthReport::new(BACKEND, status)
                .with_detail("path", source.path.display().to_string())
                .with_detail(
                    "layout",
                    "seeds (the Python system's main.ohlcv_bars), read-only: writes and deletes are refused",
                )
                .with_detail("timestamp_column", source.timestamp.describe())
                .with_detail("duckdb_version", version);
            if let Ok(metadata) = std::fs::metadata(&source.path) {
                report = report.with_detail("file_bytes", metadata.len().to_string());
            }
            Ok(report.with_detail("bars", bars.to_string()))
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statements_read_the_seeds_table_through_the_view() {
        let view = canonical_view(TimestampType::Naive);
        let summary = over_seeds(&view, schema::SUMMARY);
        assert!(summary.starts_with("WITH ohlcv_bars AS NOT MATERIALIZED ("), "{summary}");
        assert!(summary.ends_with(schema::SUMMARY), "{summary}");
        let digest = over_seeds(&view, &schema::digest_query(&DigestQuery::default()).sql);
        assert_eq!(digest.matches("WITH").count(), 1, "one WITH list: {digest}");
        assert!(digest.contains("FROM main.ohlcv_bars),\nselected AS ("), "{digest}");
        assert!(view.contains("CAST(\"timestamp\" AS TIMESTAMPTZ) AS ts"), "{view}");
        assert!(canonical_view(TimestampType::Zoned).contains("\"timestamp\" AS ts"));
    }

    #[test]
    fn timestamp_types_are_recognised() {
        assert_eq!(TimestampType::of("TIMESTAMP"), Some(TimestampType::Naive));
        assert_eq!(TimestampType::of("TIMESTAMP WITH TIME ZONE"), Some(TimestampType::Zoned));
        assert_eq!(TimestampType::of("VARCHAR"), None);
        assert_eq!(TimestampType::of("TIMESTAMP_NS"), None);
        let columns: Vec<(String, String)> =
            SEEDS_COLUMNS.iter().map(|name| (name.to_string(), "DOUBLE".to_string())).collect();
        let message = check_columns(&columns[..7]).unwrap_err();
        assert!(message.contains("vwap, trade_count"), "{message}");
        assert!(check_columns(&columns).unwrap_err().contains("type DOUBLE"));
    }

    #[test]
    fn a_refusal_lists_at_most_twenty_bars() {
        let problems: Vec<String> = (0..25).map(|i| format!("A at {i}: open: bad")).collect();
        let message = strata_core::validate::source_refusal("t", &problems);
        assert_eq!(message.lines().count(), 1 + strata_core::validate::SHOWN_PROBLEMS + 1, "{message}");
        assert!(message.ends_with("... and 5 more"), "{message}");
    }
}
