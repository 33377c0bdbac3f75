//! A read-only [`MarketDataStore`] over the Python system's PostgreSQL or
//! TimescaleDB table (the "seeds layout"), so `strata copy` can move a
//! team's bars into Strata.
//!
//! The seeds layout is a table `<schema>.ohlcv_bars(symbol, timestamp, open,
//! high, low, close, volume, vwap, trade_count)` (schema `public` in the
//! Python system) in a schema without Strata's `strata_migrations`.
//! `timestamp` is `timestamp` (no zone: read as UTC, whatever the session's
//! `TimeZone`) or `timestamptz`; `trade_count` any integer type; the prices
//! any number (cast to `float8`).
//!
//! The source connects exactly as [`crate::NeonStore`] does (the same
//! [`NeonConfig`], probe, pool, `transact!` transactions with `SET LOCAL`
//! timeouts and retries, binary `COPY` reads decoded straight into Arrow), but
//! never migrates or writes anything. Results follow [`BarQuery`]'s contract
//! (symbols in byte order through `COLLATE "C"`, half-open ranges, a
//! per-symbol limit). The digest is [`strata_core::digest`]'s, computed in
//! Rust over the streamed rows, so it equals every Strata store's for equal
//! bars. Writes and deletes are `Unsupported`. Bars that Strata would refuse
//! to store (a negative price, a key twice) end the query with
//! `InvalidInput` naming their symbol and timestamp: they are never dropped
//! silently. URLs are printed only through [`crate::redact`].

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::BoxStream;
use strata_core::digest::DigestAccumulator;
use strata_core::{
    BarBatch, BarQuery, Capabilities, DayDigest, DigestQuery, HealthReport, HealthStatus, MarketDataStore,
    MarketSummary, Order, Result, StoreError, Symbol, SymbolSummary, TimeRange, Timestamp, WriteReport,
};

use crate::config::NeonConfig;
use crate::error::describe;
use crate::schema::{string_literal, timestamp_literal};
use crate::store::{Idempotency, NeonStore, connect, transact};

/// The schema the Python system keeps `ohlcv_bars` in.
pub const DEFAULT_SCHEMA: &str = "public";

/// The name this source prints (`Display`, health, its own errors).
const BACKEND: &str = "neon-seeds";

/// What a seeds source can do: be read from any host. Nothing is ever
/// written, and the digest is computed from streamed rows.
const CAPABILITIES: Capabilities = Capabilities {
    durable: false,
    shared_across_hosts: true,
    server_side_digest: false,
    cheap_delete: false,
    transactions: false,
};

/// The columns of the seeds table, in canonical order.
const SEEDS_COLUMNS: [&str; 9] =
    ["symbol", "timestamp", "open", "high", "low", "close", "volume", "vwap", "trade_count"];

/// The columns of `<schema>.ohlcv_bars` (names and types); bind the schema as `$1`.
const TABLE_COLUMNS: &str = "SELECT column_name::text, data_type::text FROM information_schema.columns
    WHERE table_schema = $1 AND table_name = 'ohlcv_bars'";

/// Whether the schema has Strata's migration bookkeeping; bind the schema as `$1`.
const HAS_STRATA_MIGRATIONS: &str = "SELECT EXISTS (SELECT 1 FROM information_schema.tables
    WHERE table_schema = $1 AND table_name = 'strata_migrations')";

/// Whether `schema` of the database at `url` is in the seeds layout: it has a
/// table `ohlcv_bars` with a `timestamp` column, and no Strata
/// `strata_migrations` table.
///
/// `Ok(false)` when the schema or the table is missing or has another
/// layout (a Strata schema, say); `InvalidInput` for a malformed URL or
/// schema name; `Unavailable` when the server cannot be reached (after the
/// retry budget). Messages never show a password.
pub async fn detect(url: &str, schema: &str) -> Result<bool> {
    detect_with_config(NeonConfig::from_url(url)?.with_schema(schema)?).await
}

/// [`detect`] with a full configuration (TLS, pooler, timeouts); the schema
/// is `config.schema`.
pub async fn detect_with_config(config: NeonConfig) -> Result<bool> {
    let store = NeonStore { inner: Arc::new(connect(config).await?) };
    let layout = read_layout(&store).await;
    store.close().await;
    Ok(layout?.is_ok())
}

/// The Python system's `ohlcv_bars` on PostgreSQL/TimescaleDB as a
/// read-only market-data source.
///
/// Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct SeedsPgSource {
    /// `NeonStore`'s pool and its transaction and `COPY` machinery; none of
    /// its own tables is ever read, and nothing calls its ports.
    connection: NeonStore,
    /// The table read and the SQL over it.
    table: SeedsTable,
}

/// A seeds table: its name and the type of its `timestamp` column, and the SQL that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeedsTable {
    /// `<schema>.ohlcv_bars` (the schema is a validated identifier).
    name: String,
    /// The type of the `timestamp` column.
    timestamp: TimestampType,
}

/// The type of the seeds table's `timestamp` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampType {
    /// `timestamp without time zone`: wall-clock values, read as UTC.
    Naive,
    /// `timestamp with time zone`: instants.
    Zoned,
}

impl TimestampType {
    /// From `information_schema`'s type name, or `None` for a type that is not read.
    fn of(data_type: &str) -> Option<Self> {
        match data_type {
            "timestamp without time zone" => Some(TimestampType::Naive),
            "timestamp with time zone" => Some(TimestampType::Zoned),
            _ => None,
        }
    }

    /// For health reports and messages.
    fn describe(self) -> &'static str {
        match self {
            TimestampType::Naive => "timestamp (no zone: read as UTC)",
            TimestampType::Zoned => "timestamptz",
        }
    }

    /// `value` (of the column's type) as a `timestamptz`, independent of the session's `TimeZone`.
    fn as_instant(self, value: &str) -> String {
        match self {
            TimestampType::Naive => format!("({value} AT TIME ZONE 'UTC')"),
            TimestampType::Zoned => value.to_string(),
        }
    }

    /// A `timestamptz` literal as a value of the column's type, so that
    /// comparisons use the column's index.
    fn literal(self, micros: i64) -> String {
        match self {
            TimestampType::Naive => format!("({} AT TIME ZONE 'UTC')", timestamp_literal(micros)),
            TimestampType::Zoned => timestamp_literal(micros),
        }
    }
}

impl fmt::Display for SeedsPgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BACKEND)
    }
}

impl fmt::Debug for SeedsPgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedsPgSource")
            .field("url", &self.connection.config().redacted_url())
            .field("table", &self.table.name)
            .field("timestamp", &self.table.timestamp)
            .finish()
    }
}

impl SeedsPgSource {
    /// Connects to the database at `url` and opens `<schema>.ohlcv_bars`
    /// ([`DEFAULT_SCHEMA`] in the Python system) read-only.
    ///
    /// `InvalidInput` for a malformed URL or schema name, and for a schema
    /// that is not in the seeds layout (no `ohlcv_bars`, a Strata schema, a
    /// missing column, a `timestamp` column of another type);
    /// `Unavailable` when the server cannot be reached. Messages never show
    /// a password.
    pub async fn open(url: &str, schema: &str) -> Result<Self> {
        Self::open_with_config(NeonConfig::from_url(url)?.with_schema(schema)?).await
    }

    /// [`SeedsPgSource::open`] with a full configuration (TLS, pooler,
    /// timeouts, batch size); the schema is `config.schema`.
    pub async fn open_with_config(config: NeonConfig) -> Result<Self> {
        let mut inner = connect(config).await?;
        inner.metrics_label = crate::telemetry::SEEDS_LABEL;
        let inner = Arc::new(inner);
        crate::telemetry::sample_pool(&inner);
        let connection = NeonStore { inner };
        let columns = match read_layout(&connection).await {
            Ok(Ok(columns)) => columns,
            Ok(Err(why)) => {
                connection.close().await;
                return Err(not_seeds(&connection, &why));
            }
            Err(error) => {
                connection.close().await;
                return Err(error);
            }
        };
        let timestamp = match check_columns(&columns) {
            Ok(timestamp) => timestamp,
            Err(why) => {
                connection.close().await;
                return Err(not_seeds(&connection, &why));
            }
        };
        let table = SeedsTable { name: format!("{}.ohlcv_bars", connection.config().schema), timestamp };
        tracing::debug!(
            url = %connection.config().redacted_url(),
            table = %table.name,
            timestamp = timestamp.describe(),
            "opened a seeds-layout table"
        );
        Ok(SeedsPgSource { connection, table })
    }

    /// The table read, `<schema>.ohlcv_bars`.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.connection.close().await;
    }

    /// The rows of a `COPY` statement as bounded batches, unchecked.
    fn stream(&self, sql: String) -> BoxStream<'static, Result<BarBatch>> {
        let connection = self.connection.clone();
        // The reader starts on the first poll, so building the stream needs no runtime.
        strata_store_kit::lazy_producer(strata_store_kit::DEFAULT_DEPTH, move |sender| async move {
            connection.stream_copy(&sql, &sender).await
        })
    }
}

impl SeedsTable {
    /// The nine canonical columns, in order and in the types the `COPY` decoder reads.
    fn select_list(&self) -> String {
        format!(
            "symbol::text AS symbol, {ts} AS ts, open::float8 AS open, high::float8 AS high, low::float8 AS low, \
             close::float8 AS close, volume::float8 AS volume, vwap::float8 AS vwap, trade_count::int8 AS trade_count",
            ts = self.timestamp.as_instant("\"timestamp\"")
        )
    }

    /// `WHERE` text for symbols and a half-open range, on the table's own
    /// columns (literals spliced: `COPY` takes no parameters; symbols are
    /// validated, timestamps are integers).
    fn filter(&self, symbols: &[Symbol], start: Option<Timestamp>, end: Option<Timestamp>) -> String {
        let mut conditions = Vec::new();
        if !symbols.is_empty() {
            let list: Vec<String> = symbols.iter().map(|symbol| string_literal(symbol.as_str())).collect();
            conditions.push(format!("symbol IN ({})", list.join(", ")));
        }
        if let Some(start) = start {
            conditions.push(format!("\"timestamp\" >= {}", self.timestamp.literal(start.micros())));
        }
        if let Some(end) = end {
            conditions.push(format!("\"timestamp\" < {}", self.timestamp.literal(end.micros())));
        }
        if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
    }

    /// The `COPY (SELECT ...) TO STDOUT (FORMAT binary)` of a bar query:
    /// symbols in byte order, timestamps in `order`, at most `limit` rows per
    /// symbol (a window function).
    fn query_copy_sql(&self, query: &BarQuery) -> String {
        let direction = match query.order {
            Order::Ascending => "ASC",
            Order::Descending => "DESC",
        };
        let (table, columns) = (&self.name, self.select_list());
        let filter = self.filter(&query.symbols, query.start, query.end);
        let select = match query.limit {
            None => {
                format!(
                    "SELECT {columns} FROM {table}{filter} ORDER BY symbol COLLATE \"C\", \"timestamp\" {direction}"
                )
            }
            Some(limit) => format!(
                "SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count FROM (
                    SELECT {columns}, row_number() OVER (PARTITION BY symbol ORDER BY \"timestamp\" {direction}) AS n
                    FROM {table}{filter}) AS numbered
                 WHERE n <= {limit} ORDER BY symbol COLLATE \"C\", ts {direction}"
            ),
        };
        format!("COPY ({select}) TO STDOUT (FORMAT binary)")
    }

    /// The `COPY` of the rows a digest covers, in no particular order.
    fn digest_copy_sql(&self, query: &DigestQuery) -> String {
        let filter = self.filter(&query.symbols, query.start, query.end);
        format!("COPY (SELECT {} FROM {}{filter}) TO STDOUT (FORMAT binary)", self.select_list(), self.name)
    }

    /// Per symbol in byte order: first and last timestamp (epoch microseconds) and rows.
    fn summary_sql(&self) -> String {
        format!(
            "SELECT symbol::text, (extract(epoch FROM {first}) * 1000000)::bigint,
                    (extract(epoch FROM {last}) * 1000000)::bigint, count(*)::bigint
             FROM {table} GROUP BY symbol ORDER BY symbol COLLATE \"C\"",
            first = self.timestamp.as_instant("min(\"timestamp\")"),
            last = self.timestamp.as_instant("max(\"timestamp\")"),
            table = self.name
        )
    }
}

/// The columns of the seeds table when the schema is in the seeds layout, or why it is not.
async fn read_layout(store: &NeonStore) -> Result<std::result::Result<Vec<(String, String)>, String>> {
    let schema_name = store.config().schema.clone();
    let (has_migrations, columns) =
        transact!(store.inner, "reading the seeds table's columns", Idempotency::Idempotent, |c| {
            let has_migrations: bool = sqlx::query_scalar(HAS_STRATA_MIGRATIONS)
                .bind(&schema_name)
                .persistent(false)
                .fetch_one(&mut *c)
                .await?;
            let columns: Vec<(String, String)> =
                sqlx::query_as(TABLE_COLUMNS).bind(&schema_name).persistent(false).fetch_all(&mut *c).await?;
            Ok((has_migrations, columns))
        })?;
    Ok(if has_migrations {
        Err(format!("schema {schema_name} has Strata's strata_migrations table: it is a Strata schema"))
    } else if columns.is_empty() {
        Err(format!("there is no table {schema_name}.ohlcv_bars"))
    } else if !columns.iter().any(|(name, _)| name == "timestamp") {
        Err(format!("{schema_name}.ohlcv_bars has no timestamp column"))
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
        .ok_or_else(|| format!("its timestamp column has type {data_type}; timestamp or timestamptz is read"))
}

/// The refusal of a schema that is not in the seeds layout (the URL redacted).
fn not_seeds(store: &NeonStore, why: &str) -> StoreError {
    StoreError::invalid(format!(
        "schema {} of {} is not in the seeds layout (the Python system's ohlcv_bars with a timestamp column): {why}",
        store.config().schema,
        store.config().redacted_url()
    ))
}

#[async_trait::async_trait]
impl MarketDataStore for SeedsPgSource {
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
        let mut check = strata_core::validate::SourceCheck::new(format!(
            "{} of {}",
            self.table.name,
            self.connection.config().redacted_url()
        ));
        self.stream(self.table.query_copy_sql(&query))
            .map(move |item| item.and_then(|batch| check.check(batch)))
            // The first error ends the stream.
            .scan(false, |failed, item| {
                let next = if *failed { None } else { Some(item) };
                *failed = next.as_ref().is_some_and(Result::is_err);
                futures::future::ready(next)
            })
            .boxed()
    }

    async fn summary(&self) -> Result<MarketSummary> {
        let sql = self.table.summary_sql();
        let rows = transact!(self.connection.inner, "summarising seeds bars", Idempotency::Idempotent, |c| {
            let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(&sql).persistent(false).fetch_all(&mut *c).await?;
            Ok(rows)
        })?;
        let symbols = rows
            .into_iter()
            .map(|(symbol, first, last, count)| SymbolSummary {
                symbol,
                first: Timestamp(first),
                last: Timestamp(last),
                rows: count as u64,
            })
            .collect();
        Ok(MarketSummary { symbols })
    }

    async fn digest(&self, query: DigestQuery) -> Result<Vec<DayDigest>> {
        if matches!((query.start, query.end), (Some(start), Some(end)) if start >= end) {
            return Ok(Vec::new());
        }
        let mut stream = self.stream(self.table.digest_copy_sql(&query));
        let mut digests = DigestAccumulator::new();
        while let Some(batch) = stream.next().await {
            digests.add_batch(&batch?);
        }
        Ok(digests.finish())
    }

    async fn delete_bars(&self, _symbol: &Symbol, _range: TimeRange) -> Result<u64> {
        Err(StoreError::unsupported(BACKEND, "delete_bars: a seeds-layout source is read-only"))
    }

    async fn health(&self) -> Result<HealthReport> {
        let started = Instant::now();
        let outcome = transact!(self.connection.inner, "checking health", Idempotency::Idempotent, |c| {
            let round_trip = Instant::now();
            sqlx::query("SELECT 1").persistent(false).execute(&mut *c).await?;
            let latency = round_trip.elapsed();
            let (server, database): (String, String) =
                sqlx::query_as("SELECT current_setting('server_version'), current_database()::text")
                    .persistent(false)
                    .fetch_one(&mut *c)
                    .await?;
            Ok((latency, server, database))
        });
        let config = self.connection.config();
        let report = |status| {
            HealthReport::new(BACKEND, status)
                .with_detail("url", config.redacted_url())
                .with_detail("table", self.table.name.clone())
                .with_detail(
                    "layout",
                    "seeds (the Python system's ohlcv_bars), read-only: writes and deletes are refused",
                )
                .with_detail("timestamp_column", self.table.timestamp.describe())
        };
        Ok(match outcome {
            Ok((latency, server, database)) => report(HealthStatus::Healthy)
                .with_detail("round_trip_ms", format!("{:.2}", latency.as_secs_f64() * 1e3))
                .with_detail("server_version", server)
                .with_detail("database", database)
                .with_detail("check_ms", format!("{:.1}", started.elapsed().as_secs_f64() * 1e3)),
            Err(error) => report(HealthStatus::Down).with_detail("error", describe(&error)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(timestamp: TimestampType) -> SeedsTable {
        SeedsTable { name: "public.ohlcv_bars".into(), timestamp }
    }

    #[test]
    fn naive_timestamps_are_read_and_compared_as_utc() {
        let naive = table(TimestampType::Naive);
        let query = BarQuery::default().between(Timestamp(0), Timestamp(86_400_000_000));
        let sql = naive.query_copy_sql(&query);
        assert!(sql.contains("(\"timestamp\" AT TIME ZONE 'UTC') AS ts"), "{sql}");
        assert!(
            sql.contains("\"timestamp\" >= ('1970-01-01 00:00:00.000000+00'::timestamptz AT TIME ZONE 'UTC')"),
            "{sql}"
        );
        assert!(sql.contains("ORDER BY symbol COLLATE \"C\", \"timestamp\" ASC"), "{sql}");
        let zoned = table(TimestampType::Zoned).query_copy_sql(&query);
        assert!(zoned.contains("\"timestamp\" AS ts") && zoned.contains("\"timestamp\" < '1970-01-02"), "{zoned}");
        let summary = naive.summary_sql();
        assert!(summary.contains("extract(epoch FROM (min(\"timestamp\") AT TIME ZONE 'UTC'))"), "{summary}");
        assert!(summary.contains("ORDER BY symbol COLLATE \"C\""), "{summary}");
    }

    #[test]
    fn a_limit_is_per_symbol_in_the_query_order() {
        let latest = BarQuery { limit: Some(3), order: Order::Descending, ..BarQuery::default() };
        let sql = table(TimestampType::Zoned).query_copy_sql(&latest);
        assert!(sql.contains("row_number() OVER (PARTITION BY symbol ORDER BY \"timestamp\" DESC)"), "{sql}");
        assert!(sql.contains("WHERE n <= 3 ORDER BY symbol COLLATE \"C\", ts DESC"), "{sql}");
    }

    #[test]
    fn only_timestamp_types_are_read() {
        assert_eq!(TimestampType::of("timestamp without time zone"), Some(TimestampType::Naive));
        assert_eq!(TimestampType::of("timestamp with time zone"), Some(TimestampType::Zoned));
        assert_eq!(TimestampType::of("date"), None);
        let columns: Vec<(String, String)> =
            SEEDS_COLUMNS.iter().map(|name| (name.to_string(), "text".to_string())).collect();
        assert!(check_columns(&columns[1..]).err().unwrap_or_default().contains("lacks the column(s) symbol"));
        assert!(check_columns(&columns).err().unwrap_or_default().contains("has type text"));
    }
}
